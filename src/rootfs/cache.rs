//! Unpacked layers on disk, one directory per diff ID, ready to be stacked
//! as overlayfs lower directories.
//!
//! ```text
//! CACHE/sha256/<hex>/          a complete unpacked layer (overlayfs whiteouts)
//! CACHE/tmp/<hex>.<pid>.<n>/   a layer being unpacked, or a crash's leftover
//! CACHE/locks/<hex>.lock       held (flock) while that layer is unpacked
//! ```
//!
//! A layer is unpacked into `tmp/`, its content checked against its diff ID,
//! flushed (`syncfs`), then renamed into `sha256/`: so a directory there is
//! always complete, a crash leaves only a temporary directory, and nothing
//! inside the layer directory is strata's own (it is exactly the layer, as
//! overlayfs must see it). Strata processes unpacking the same layer take
//! its lock in turn; the second finds the directory in place and reuses it.
//! A holder of the lock clears the temporary directories of its layer, which
//! only a crashed holder can have left.
//!
//! A cache is for one privilege level: layers unpacked without root have no
//! owners, devices or overlay whiteouts, so root and rootless users need
//! separate cache roots.

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead};
use std::os::fd::AsFd;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

use super::apply::unpack_layer_hashed;
use super::report::{UnpackOptions, UnpackReport};
use super::{RootfsError, sys};
use crate::digest::Digest;

/// Opens a layer's blob (compressed or not) when the cache needs it.
pub type LayerOpener = Box<dyn FnOnce() -> io::Result<Box<dyn BufRead + Send>> + Send>;

/// A layer wanted in the cache.
pub struct CacheRequest {
    /// The layer's diff ID (digest of its uncompressed tar): the cache key,
    /// checked against the content as it is unpacked.
    pub diff_id: Digest,
    /// The name used in errors and warnings (usually the blob digest).
    pub label: String,
    /// Opens the blob; called only if the layer is not cached yet.
    pub open: LayerOpener,
}

impl std::fmt::Debug for CacheRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CacheRequest")
            .field("diff_id", &self.diff_id)
            .field("label", &self.label)
            .finish_non_exhaustive()
    }
}

/// How to fill the cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheOptions {
    /// Layers unpacked at once (at least 1).
    pub jobs: usize,
    /// How each layer is unpacked.
    pub unpack: UnpackOptions,
}

impl Default for CacheOptions {
    fn default() -> Self {
        CacheOptions {
            jobs: std::thread::available_parallelism().map_or(1, |n| n.get()),
            unpack: UnpackOptions::default(),
        }
    }
}

/// A layer in the cache.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CachedLayer {
    /// Its diff ID.
    pub diff_id: Digest,
    /// Its directory (`CACHE/sha256/<hex>`).
    pub path: PathBuf,
    /// What unpacking it reported, or `None` when it was already there (or
    /// appeared twice in one request, for the second).
    pub report: Option<UnpackReport>,
}

/// A directory of unpacked layers keyed by diff ID.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerCache {
    root: PathBuf,
}

/// Numbers temporary directories within this process.
static TEMP_SEQ: AtomicU64 = AtomicU64::new(0);

impl LayerCache {
    /// A cache rooted at `root` (created when first needed).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        LayerCache { root: root.into() }
    }

    /// The cache's root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where the layer with this diff ID lives (whether or not it is there),
    /// or `None` for a digest that is not sha256.
    pub fn layer_path(&self, diff_id: &Digest) -> Option<PathBuf> {
        hex_of(diff_id).map(|hex| self.root.join("sha256").join(hex))
    }

    /// The layer's directory if it is in the cache (and so complete).
    pub fn get(&self, diff_id: &Digest) -> Option<PathBuf> {
        self.layer_path(diff_id).filter(|p| is_dir(p))
    }

    /// Makes sure every requested layer is in the cache, unpacking those
    /// that are not, up to `options.jobs` at once; a diff ID requested twice
    /// is unpacked once. Returns the layers in request order. On error (the
    /// first in request order), layers already finished stay cached and no
    /// new one is started.
    pub fn unpack(
        &self,
        requests: Vec<CacheRequest>,
        options: &CacheOptions,
    ) -> Result<Vec<CachedLayer>, RootfsError> {
        let mut slot_of = Vec::with_capacity(requests.len());
        let mut first: HashMap<Digest, usize> = HashMap::new();
        let mut work: Vec<Mutex<Option<CacheRequest>>> = Vec::new();
        for req in requests {
            if let Some(&slot) = first.get(&req.diff_id) {
                // Asked for twice: unpacked once, its second opener unused.
                slot_of.push(slot);
                continue;
            }
            first.insert(req.diff_id.clone(), work.len());
            slot_of.push(work.len());
            work.push(Mutex::new(Some(req)));
        }
        let results: Vec<Mutex<Option<Result<CachedLayer, RootfsError>>>> =
            work.iter().map(|_| Mutex::new(None)).collect();
        let next = AtomicUsize::new(0);
        let failed = AtomicBool::new(false);
        let workers = options.jobs.max(1).min(work.len());
        std::thread::scope(|s| {
            for _ in 0..workers {
                s.spawn(|| {
                    loop {
                        if failed.load(Ordering::SeqCst) {
                            break;
                        }
                        let i = next.fetch_add(1, Ordering::SeqCst);
                        let Some(cell) = work.get(i) else { break };
                        let Some(req) = cell.lock().unwrap_or_else(|e| e.into_inner()).take()
                        else {
                            continue;
                        };
                        let result = self.ensure(req, &options.unpack);
                        if result.is_err() {
                            failed.store(true, Ordering::SeqCst);
                        }
                        *results[i].lock().unwrap_or_else(|e| e.into_inner()) = Some(result);
                    }
                });
            }
        });
        let mut done: Vec<Option<Result<CachedLayer, RootfsError>>> = results
            .into_iter()
            .map(|m| m.into_inner().unwrap_or_else(|e| e.into_inner()))
            .collect();
        // The first error in request order wins.
        for &slot in &slot_of {
            if matches!(done[slot], Some(Err(_)))
                && let Some(Err(e)) = done[slot].take()
            {
                return Err(e);
            }
        }
        let mut out = Vec::with_capacity(slot_of.len());
        let mut reported = vec![false; done.len()];
        for slot in slot_of {
            let Some(Ok(layer)) = &done[slot] else {
                unreachable!("every slot ran when none failed");
            };
            let mut layer = layer.clone();
            if std::mem::replace(&mut reported[slot], true) {
                layer.report = None;
            }
            out.push(layer);
        }
        Ok(out)
    }

    /// Makes sure one layer is in the cache, unpacking it on this thread if
    /// it is not.
    pub fn ensure(
        &self,
        request: CacheRequest,
        options: &UnpackOptions,
    ) -> Result<CachedLayer, RootfsError> {
        let CacheRequest {
            diff_id,
            label,
            open,
        } = request;
        let Some(hex) = hex_of(&diff_id) else {
            return Err(RootfsError::BadDiffId {
                layer: label,
                diff_id: diff_id.to_string(),
            });
        };
        let path = self.root.join("sha256").join(&hex);
        let hit = |path: PathBuf| CachedLayer {
            diff_id: diff_id.clone(),
            path,
            report: None,
        };
        if is_dir(&path) {
            return Ok(hit(path));
        }
        let layers = self.root.join("sha256");
        let tmp_root = self.root.join("tmp");
        for dir in [&layers, &tmp_root, &self.root.join("locks")] {
            fs::create_dir_all(dir).map_err(|e| RootfsError::io("create", dir, e))?;
        }
        let _lock = self.lock(&hex)?;
        if is_dir(&path) {
            return Ok(hit(path));
        }
        clear_stale(&tmp_root, &hex);
        let tmp = self.temp_path(&hex);
        fs::create_dir(&tmp).map_err(|e| RootfsError::io("create", &tmp, e))?;
        // The layer's root directory, unless the layer sets it: a lower
        // directory's root is the container's `/`.
        fs::set_permissions(&tmp, fs::Permissions::from_mode(0o755))
            .map_err(|e| RootfsError::io("set the mode of", &tmp, e))?;
        let result = (|| {
            let blob = open().map_err(|source| RootfsError::LayerRead {
                layer: label.clone(),
                source,
            })?;
            let (report, actual) = unpack_layer_hashed(blob, &label, &tmp, options)?;
            if actual != diff_id {
                return Err(RootfsError::DiffIdMismatch {
                    layer: label.clone(),
                    expected: diff_id.clone(),
                    actual,
                });
            }
            let dir = File::open(&tmp).map_err(|e| RootfsError::io("open", &tmp, e))?;
            sys::syncfs(&dir).map_err(|e| RootfsError::io("flush", &tmp, e))?;
            match fs::rename(&tmp, &path) {
                Ok(()) => {}
                // Someone not holding the lock put it there first: theirs wins.
                Err(_) if is_dir(&path) => {
                    remove_quietly(&tmp);
                    return Ok(None);
                }
                Err(e) => return Err(RootfsError::io("rename into place", &tmp, e)),
            }
            sync_dir(&layers);
            Ok(Some(report))
        })();
        match result {
            Ok(report) => Ok(CachedLayer {
                diff_id: diff_id.clone(),
                path,
                report,
            }),
            Err(e) => {
                remove_quietly(&tmp);
                Err(e)
            }
        }
    }

    /// Removes a layer from the cache; false if it was not there. Nothing
    /// may still use it (an overlay mount, say): the caller checks.
    pub fn remove(&self, diff_id: &Digest) -> Result<bool, RootfsError> {
        let Some(hex) = hex_of(diff_id) else {
            return Ok(false);
        };
        let path = self.root.join("sha256").join(&hex);
        if !is_dir(&path) {
            return Ok(false);
        }
        let tmp_root = self.root.join("tmp");
        fs::create_dir_all(&tmp_root).map_err(|e| RootfsError::io("create", &tmp_root, e))?;
        let _lock = self.lock(&hex)?;
        if !is_dir(&path) {
            return Ok(false);
        }
        // Out of sight at once (a reader never sees a half-deleted layer),
        // then deleted, still under the lock: the next holder would clear
        // it as a leftover otherwise.
        let doomed = self.temp_path(&hex);
        fs::rename(&path, &doomed).map_err(|e| RootfsError::io("remove", &path, e))?;
        remove_tree(&doomed).map_err(|e| RootfsError::io("remove", &doomed, e))?;
        Ok(true)
    }

    fn lock(&self, hex: &str) -> Result<File, RootfsError> {
        let locks = self.root.join("locks");
        fs::create_dir_all(&locks).map_err(|e| RootfsError::io("create", &locks, e))?;
        let path = locks.join(format!("{hex}.lock"));
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| RootfsError::io("open", &path, e))?;
        file.lock().map_err(|e| RootfsError::io("lock", &path, e))?;
        Ok(file)
    }

    fn temp_path(&self, hex: &str) -> PathBuf {
        let n = TEMP_SEQ.fetch_add(1, Ordering::Relaxed);
        self.root
            .join("tmp")
            .join(format!("{hex}.{}.{n}", std::process::id()))
    }
}

/// Fills the cache at `cache_root` with every requested layer: see
/// [`LayerCache::unpack`].
pub fn unpack_cached(
    cache_root: &Path,
    requests: Vec<CacheRequest>,
    options: &CacheOptions,
) -> Result<Vec<CachedLayer>, RootfsError> {
    LayerCache::new(cache_root).unpack(requests, options)
}

/// The hex of a sha256 digest, checked to be 64 lowercase hex digits (it
/// becomes a file name).
fn hex_of(d: &Digest) -> Option<String> {
    let hex = d.digest();
    let ok = d.algorithm().as_ref() == "sha256"
        && hex.len() == 64
        && hex
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    ok.then(|| hex.to_string())
}

fn is_dir(p: &Path) -> bool {
    fs::symlink_metadata(p).is_ok_and(|m| m.is_dir())
}

/// Removes leftovers of crashed unpacks of this layer (the caller holds its
/// lock, so no live process is writing them).
fn clear_stale(tmp_root: &Path, hex: &str) {
    let Ok(entries) = fs::read_dir(tmp_root) else {
        return;
    };
    let prefix = format!("{hex}.");
    for entry in entries.flatten() {
        if entry.file_name().to_string_lossy().starts_with(&prefix) {
            remove_quietly(&entry.path());
        }
    }
}

fn remove_quietly(p: &Path) {
    let _ = remove_tree(p);
}

/// Removes a tree without following symlinks, whatever its modes.
fn remove_tree(p: &Path) -> io::Result<()> {
    let Some(parent) = p.parent() else {
        return Ok(());
    };
    let Some(name) = p.file_name() else {
        return Ok(());
    };
    let dir = sys::open_root(parent)?;
    sys::remove_tree(dir.as_fd(), &sys::cname(name)?)
}

fn sync_dir(p: &Path) {
    if let Ok(d) = File::open(p) {
        let _ = d.sync_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::digest::sha256_of;
    use crate::rootfs::testing::{Layer, cannot_run, listing};
    use crate::rootfs::{UnpackOptions, flatten};
    use std::io::Write;
    use std::process::Command;
    use std::sync::atomic::AtomicUsize;
    use std::sync::{Arc, Barrier};

    fn options(jobs: usize) -> CacheOptions {
        CacheOptions {
            jobs,
            unpack: UnpackOptions::default(),
        }
    }

    /// A request whose opener counts its calls.
    fn request(layer: &[u8], opened: &Arc<AtomicUsize>) -> CacheRequest {
        let blob = layer.to_vec();
        let opened = Arc::clone(opened);
        CacheRequest {
            diff_id: sha256_of(layer),
            label: format!("layer-{}", layer.len()),
            open: Box::new(move || {
                opened.fetch_add(1, Ordering::SeqCst);
                Ok(Box::new(io::Cursor::new(blob)) as Box<dyn BufRead + Send>)
            }),
        }
    }

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    #[test]
    fn unpacks_in_parallel_once_and_reuses() {
        let tmp = tempfile::tempdir().unwrap();
        let layers: Vec<Vec<u8>> = (0..5)
            .map(|i| Layer::new().file(&format!("f{i}"), b"x").build())
            .collect();
        let opened = Arc::new(AtomicUsize::new(0));
        let mut reqs: Vec<CacheRequest> = layers.iter().map(|l| request(l, &opened)).collect();
        // The same layer twice, as images with repeated empty layers have.
        reqs.push(request(&layers[0], &opened));
        let got = unpack_cached(tmp.path(), reqs, &options(3)).unwrap();
        assert_eq!(opened.load(Ordering::SeqCst), 5);
        assert_eq!(got.len(), 6);
        for (i, layer) in got.iter().enumerate() {
            let want = sha256_of(&layers[i % 5]);
            assert_eq!(layer.diff_id, want);
            assert_eq!(layer.path, tmp.path().join("sha256").join(want.digest()));
            assert!(layer.path.join(format!("f{}", i % 5)).is_file());
        }
        assert!(got[0].report.is_some());
        assert!(got[5].report.is_none());
        // Root of a layer directory: traversable by everyone.
        let mode = fs::metadata(&got[0].path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o755);
        assert_eq!(fs::read_dir(tmp.path().join("tmp")).unwrap().count(), 0);

        let again: Vec<CacheRequest> = layers.iter().map(|l| request(l, &opened)).collect();
        let got = unpack_cached(tmp.path(), again, &options(3)).unwrap();
        assert_eq!(opened.load(Ordering::SeqCst), 5, "nothing reopened");
        assert!(got.iter().all(|l| l.report.is_none()));
    }

    #[test]
    fn a_wrong_diff_id_leaves_nothing_behind() {
        let tmp = tempfile::tempdir().unwrap();
        let tar = Layer::new().file("f", b"x").build();
        let other = sha256_of(b"something else");
        let opened = Arc::new(AtomicUsize::new(0));
        let mut req = request(&tar, &opened);
        req.diff_id = other.clone();
        req.label = "sha256:blob".into();
        let err = LayerCache::new(tmp.path())
            .ensure(req, &UnpackOptions::default())
            .unwrap_err();
        assert!(
            matches!(&err, RootfsError::DiffIdMismatch { layer, expected, actual }
                if layer == "sha256:blob" && *expected == other && *actual == sha256_of(&tar)),
            "{err}"
        );
        assert!(LayerCache::new(tmp.path()).get(&other).is_none());
        assert_eq!(fs::read_dir(tmp.path().join("sha256")).unwrap().count(), 0);
        assert_eq!(fs::read_dir(tmp.path().join("tmp")).unwrap().count(), 0);
    }

    #[test]
    fn the_first_error_in_request_order_wins() {
        let tmp = tempfile::tempdir().unwrap();
        let good = Layer::new().file("ok", b"x").build();
        let bad = Layer::new().file("../escape", b"x").build();
        let opened = Arc::new(AtomicUsize::new(0));
        let reqs = vec![request(&good, &opened), request(&bad, &opened)];
        let err = unpack_cached(tmp.path(), reqs, &options(1)).unwrap_err();
        assert!(matches!(err, RootfsError::Refused { .. }), "{err}");
        // The good layer stays cached; the bad one left no trace.
        assert!(LayerCache::new(tmp.path()).get(&sha256_of(&good)).is_some());
        assert!(LayerCache::new(tmp.path()).get(&sha256_of(&bad)).is_none());
        assert_eq!(fs::read_dir(tmp.path().join("tmp")).unwrap().count(), 0);
    }

    #[test]
    fn concurrent_processes_unpack_a_layer_once() {
        let tmp = tempfile::tempdir().unwrap();
        let layer = gzip(&Layer::new().file("big", &vec![7u8; 1 << 20]).build());
        let diff_id = sha256_of(&Layer::new().file("big", &vec![7u8; 1 << 20]).build());
        let opened = Arc::new(AtomicUsize::new(0));
        let barrier = Arc::new(Barrier::new(4));
        let handles: Vec<_> = (0..4)
            .map(|_| {
                let (root, layer, diff_id) =
                    (tmp.path().to_path_buf(), layer.clone(), diff_id.clone());
                let (opened, barrier) = (Arc::clone(&opened), Arc::clone(&barrier));
                std::thread::spawn(move || {
                    // Separate caches, as separate processes would have.
                    let cache = LayerCache::new(root);
                    let req = CacheRequest {
                        diff_id,
                        label: "L".into(),
                        open: Box::new(move || {
                            opened.fetch_add(1, Ordering::SeqCst);
                            std::thread::sleep(std::time::Duration::from_millis(100));
                            Ok(Box::new(io::Cursor::new(layer)) as Box<dyn BufRead + Send>)
                        }),
                    };
                    barrier.wait();
                    cache.ensure(req, &UnpackOptions::default()).unwrap()
                })
            })
            .collect();
        let got: Vec<CachedLayer> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        assert_eq!(opened.load(Ordering::SeqCst), 1);
        assert_eq!(got.iter().filter(|l| l.report.is_some()).count(), 1);
        assert!(got.iter().all(|l| l.path == got[0].path));
        assert_eq!(fs::read(got[0].path.join("big")).unwrap().len(), 1 << 20);
    }

    #[test]
    fn a_crashed_unpack_is_cleared_and_redone() {
        let tmp = tempfile::tempdir().unwrap();
        let layer = Layer::new().file("f", b"x").build();
        let hex = sha256_of(&layer).digest().to_string();
        let stale = tmp.path().join("tmp").join(format!("{hex}.99999.0"));
        fs::create_dir_all(stale.join("half")).unwrap();
        let opened = Arc::new(AtomicUsize::new(0));
        let cache = LayerCache::new(tmp.path());
        let got = cache
            .ensure(request(&layer, &opened), &UnpackOptions::default())
            .unwrap();
        assert!(!stale.exists());
        assert!(got.path.join("f").is_file());
        assert!(cache.remove(&sha256_of(&layer)).unwrap());
        assert!(!got.path.exists());
        assert!(!cache.remove(&sha256_of(&layer)).unwrap());
    }

    /// The point of the cache: layers unpacked one by one, stacked by
    /// overlayfs, show the same tree as the layers flattened.
    #[test]
    fn overlay_of_cached_layers_matches_flatten() {
        if !sys::is_root() {
            cannot_run(
                "rootfs::cache::tests::overlay_of_cached_layers_matches_flatten",
                "overlay mounts need root",
            );
            return;
        }
        let l0 = Layer::new()
            .dir("etc/")
            .file("etc/a", b"a")
            .file("etc/b", b"b")
            .dir("opt/")
            .file("opt/x", b"x")
            .dir("opt/sub/")
            .file("opt/sub/y", b"y")
            .file("f", b"f")
            .symlink("lnk", "etc/a")
            .dir("d/")
            .file("d/old", b"o")
            .build();
        let l1 = Layer::new()
            .file("etc/.wh.a", b"")
            .dir("opt/")
            .file("opt/.wh..wh..opq", b"")
            .file("opt/new", b"n")
            .dir("f/")
            .file("f/inner", b"i")
            .file(".wh.d", b"")
            .dir("d/")
            .file("d/new", b"n")
            .build();
        let l2 = Layer::new()
            .file("etc/a", b"again")
            .file("etc/c", b"c")
            .hardlink("etc/c2", "etc/c")
            .file(".wh.lnk", b"")
            .build();
        let layers = [l0, l1, l2];

        let tmp = tempfile::tempdir().unwrap();
        let flat = tmp.path().join("flat");
        let stack = layers.iter().map(|l| ("L", &l[..]));
        flatten(stack, &flat, &UnpackOptions::default()).unwrap();

        let opened = Arc::new(AtomicUsize::new(0));
        let reqs = layers.iter().map(|l| request(l, &opened)).collect();
        let cached = unpack_cached(&tmp.path().join("cache"), reqs, &options(2)).unwrap();
        let lower: Vec<String> = cached
            .iter()
            .rev()
            .map(|l| l.path.display().to_string())
            .collect();
        let merged = tmp.path().join("merged");
        fs::create_dir(&merged).unwrap();
        let status = Command::new("mount")
            .args(["-t", "overlay", "overlay", "-o"])
            .arg(format!("lowerdir={}", lower.join(":")))
            .arg(&merged)
            .status();
        if !status.as_ref().is_ok_and(|s| s.success()) {
            cannot_run(
                "rootfs::cache::tests::overlay_of_cached_layers_matches_flatten",
                &format!("the overlay mount failed ({status:?})"),
            );
            return;
        }
        let seen = listing(&merged);
        let _ = Command::new("umount").arg(&merged).status();
        assert_eq!(seen, listing(&flat));
        assert!(
            seen.contains(&"etc/a file 644 \"again\"".to_string()),
            "{seen:?}"
        );
        assert!(
            seen.contains(&"d/new file 644 \"n\"".to_string()),
            "{seen:?}"
        );
        assert!(
            !seen
                .iter()
                .any(|l| l.contains("d/old") || l.contains("opt/x") || l.contains("lnk"))
        );
    }
}
