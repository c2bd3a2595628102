//! Writing into an OCI image layout as one transaction.

use std::collections::HashSet;
use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use oci_spec::image::{Descriptor, ImageManifest};
use serde_json::{Map, Value, json};

use crate::digest::{Digest, Hasher};
use crate::image::{self, Index, ManifestKind, RawManifest};
use crate::progress::BlobKind;
use crate::reference::Reference;
use crate::transport::store::{ANNOTATION_IMAGE_NAME, ANNOTATION_REF_NAME};
use crate::transport::{Presence, Sink, TransportError};

use super::source::check_layout_file;
use super::{LayoutError, OCI_LAYOUT_FILE, blob_path, disk, is_ref_name};

/// A blob written to the ingest area, checked and fsynced, not yet in place.
#[derive(Debug)]
struct Staged {
    path: PathBuf,
    digest: Digest,
}

/// What [`LayoutSink::create`] made, so that a sink dropped without commit
/// can take it away again.
#[derive(Debug, Default)]
struct Made {
    dir: bool,
    private: bool,
    ingest: bool,
}

/// A transaction writing into an OCI image layout (made when missing).
///
/// Blobs stream into `.strata/ingest/` inside the layout, are checked
/// against their size and digest and fsynced; [`Sink::commit`] then, under
/// the layout's lock, renames them into `blobs/`, writes `oci-layout` if
/// the layout is new, and replaces `index.json` atomically. Each top-level
/// manifest gets an entry named by the sink's reference
/// ([`LayoutSink::with_reference`], written verbatim, as skopeo does for
/// `oci:DIR:REF`) or else by the tag of each name it was given; an entry
/// already carrying that `org.opencontainers.image.ref.name` is replaced.
/// A manifest with no name gets an unnamed entry unless one points at it
/// already. Dropped without commit, the sink removes what it staged and
/// leaves the layout as it was.
pub struct LayoutSink {
    dir: PathBuf,
    reference: Option<String>,
    staged: Mutex<Vec<Staged>>,
    manifests: Mutex<Vec<(RawManifest, Vec<Reference>)>>,
    made: Made,
    committed: Mutex<bool>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl LayoutSink {
    /// A sink writing into the layout at `dir`. A missing directory is
    /// created, and so is an existing empty one made a layout at commit; an
    /// existing directory that is neither empty nor a layout is refused.
    pub fn create(dir: impl Into<PathBuf>) -> Result<LayoutSink, LayoutError> {
        let dir: PathBuf = dir.into();
        let mut made = Made::default();
        match fs::metadata(&dir) {
            Ok(m) if !m.is_dir() => {
                return Err(LayoutError::NotALayout {
                    dir,
                    reason: "it is not a directory".into(),
                });
            }
            Ok(_) => {
                if dir.join("oci-layout").exists() {
                    check_layout_file(&dir)?;
                } else if !is_empty_but_ours(&dir)? {
                    return Err(LayoutError::NotALayout {
                        dir,
                        reason: "it has no oci-layout file and is not empty; name a new or empty directory".into(),
                    });
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                fs::create_dir_all(&dir).map_err(|e| LayoutError::io("create", &dir, e))?;
                made.dir = true;
            }
            Err(e) => return Err(LayoutError::io("open", &dir, e)),
        }
        let private = dir.join(".strata");
        made.private = !private.exists();
        made.ingest = !private.join("ingest").exists();
        let sink = LayoutSink {
            dir,
            reference: None,
            staged: Mutex::new(Vec::new()),
            manifests: Mutex::new(Vec::new()),
            made,
            committed: Mutex::new(false),
        };
        sink.ensure_ingest()?;
        Ok(sink)
    }

    /// Names every top-level image this sink writes `reference`, verbatim
    /// (skopeo's `oci:DIR:REF`), instead of the tags of the names it is given.
    pub fn with_reference(mut self, reference: &str) -> Result<LayoutSink, LayoutError> {
        if !is_ref_name(reference) {
            return Err(LayoutError::InvalidRefName {
                name: reference.to_string(),
            });
        }
        self.reference = Some(reference.to_string());
        Ok(self)
    }

    /// The layout's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn ingest_dir(&self) -> PathBuf {
        self.dir.join(".strata/ingest")
    }

    fn ensure_ingest(&self) -> Result<(), LayoutError> {
        let ingest = self.ingest_dir();
        fs::create_dir_all(&ingest).map_err(|e| LayoutError::io("create", &ingest, e))
    }

    fn is_staged(&self, digest: &Digest) -> bool {
        lock(&self.staged).iter().any(|s| &s.digest == digest)
    }

    /// True when the layout has the blob with the size it should have.
    fn has_in_place(&self, d: &Descriptor) -> bool {
        fs::metadata(blob_path(&self.dir, d.digest()))
            .is_ok_and(|m| m.is_file() && m.len() == d.size())
    }

    fn corrupt(&self, kind: &BlobKind, digest: &Digest, reason: String) -> TransportError {
        TransportError::Corrupt {
            place: self.place(),
            what: kind_name(kind),
            digest: digest.clone(),
            reason,
        }
    }

    /// Streams a blob into a temporary file, hashing it; checks size and
    /// digest; fsyncs. The file is removed on any failure.
    fn stage(
        &self,
        d: &Descriptor,
        kind: &BlobKind,
        content: &mut (dyn Read + Send),
        progress: &(dyn Fn(u64) + Sync),
    ) -> Result<Staged, TransportError> {
        if d.digest().algorithm().as_ref() != "sha256" {
            return Err(self.corrupt(
                kind,
                d.digest(),
                "strata verifies sha256 digests only".into(),
            ));
        }
        let (path, mut file) = disk::create_temp(&self.ingest_dir(), "blob")?;
        let result = (|| {
            let mut hasher = Hasher::new();
            // One byte past the announced size is enough to tell it is too long.
            let mut limited = content.take(d.size().saturating_add(1));
            let mut buf = vec![0u8; 1 << 20];
            loop {
                let n = match limited.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => n,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(e) => {
                        return Err(TransportError::io(
                            format!(
                                "{}: reading {} {}",
                                self.place(),
                                kind_name(kind),
                                d.digest()
                            ),
                            e,
                        ));
                    }
                };
                hasher.update(&buf[..n]);
                file.write_all(&buf[..n])
                    .map_err(|e| LayoutError::io("write", &path, e))?;
                progress(hasher.len().min(d.size()));
            }
            if hasher.len() != d.size() {
                let reason = if hasher.len() > d.size() {
                    format!(
                        "longer than the {} bytes its descriptor announces",
                        d.size()
                    )
                } else {
                    format!(
                        "{} bytes where its descriptor announces {}",
                        hasher.len(),
                        d.size()
                    )
                };
                return Err(self.corrupt(kind, d.digest(), reason));
            }
            let got = hasher.finish();
            if &got != d.digest() {
                return Err(self.corrupt(
                    kind,
                    d.digest(),
                    format!("content does not match its digest (it hashes to {got})"),
                ));
            }
            file.sync_all()
                .map_err(|e| LayoutError::io("sync", &path, e))?;
            Ok(())
        })();
        match result {
            Ok(()) => Ok(Staged {
                path,
                digest: d.digest().clone(),
            }),
            Err(e) => {
                let _ = fs::remove_file(&path);
                Err(e)
            }
        }
    }

    /// The names a top-level manifest gets in `index.json`: the sink's
    /// reference, or the tag of each name (with the full name beside it).
    fn entry_names(&self, names: &[Reference]) -> Vec<(String, Option<String>)> {
        if let Some(r) = &self.reference {
            return vec![(r.clone(), None)];
        }
        let mut out: Vec<(String, Option<String>)> = Vec::new();
        for n in names {
            if let Some(tag) = n.tag()
                && !out.iter().any(|(t, _)| t == tag)
            {
                out.push((tag.to_string(), Some(n.to_string())));
            }
        }
        out
    }

    /// Renames staged blobs into `blobs/`, under the lock. A blob already
    /// there with the right size is kept and the staged copy dropped.
    fn move_blobs_in(&self) -> Result<(), TransportError> {
        let staged = std::mem::take(&mut *lock(&self.staged));
        let mut dirs = HashSet::new();
        let mut result = Ok(());
        for blob in &staged {
            if result.is_err() {
                let _ = fs::remove_file(&blob.path);
                continue;
            }
            let dest = blob_path(&self.dir, &blob.digest);
            let parent = dest.parent().map(Path::to_path_buf).unwrap_or_default();
            if dirs.insert(parent.clone())
                && let Err(e) = fs::create_dir_all(&parent)
            {
                result = Err(LayoutError::io("create", &parent, e));
                let _ = fs::remove_file(&blob.path);
                continue;
            }
            let size = fs::metadata(&blob.path).map(|m| m.len()).ok();
            let there = fs::metadata(&dest).ok().map(|m| m.len());
            if there.is_some() && there == size {
                let _ = fs::remove_file(&blob.path);
            } else if let Err(e) = fs::rename(&blob.path, &dest) {
                result = Err(LayoutError::io("rename into place", &dest, e));
                let _ = fs::remove_file(&blob.path);
            }
        }
        result?;
        for dir in &dirs {
            disk::sync_dir(dir)?;
        }
        Ok(())
    }

    /// Every blob the recorded manifests need, for the commit's check.
    fn needed(
        &self,
        manifests: &[(RawManifest, Vec<Reference>)],
    ) -> Result<Vec<Descriptor>, TransportError> {
        let mut needed = Vec::new();
        for (m, _) in manifests {
            needed.push(m.descriptor());
            match m.kind().map_err(|e| self.image_err(e))? {
                ManifestKind::Image => {
                    let parsed: ImageManifest = serde_json::from_slice(&m.bytes)
                        .map_err(|e| self.corrupt(&BlobKind::Manifest, &m.digest, e.to_string()))?;
                    needed.push(parsed.config().clone());
                    needed.extend(parsed.layers().iter().cloned());
                }
                ManifestKind::Index => {
                    let index = Index::new(m.clone()).map_err(|e| self.image_err(e))?;
                    needed.extend(index.children().iter().cloned());
                }
            }
        }
        Ok(needed)
    }

    fn image_err(&self, e: image::ImageError) -> TransportError {
        TransportError::Image {
            place: self.place(),
            source: Box::new(e),
        }
    }

    /// Reads `index.json` as generic JSON, so that fields and annotations
    /// strata does not know survive the rewrite; a new layout starts empty.
    fn read_index(&self) -> Result<Map<String, Value>, LayoutError> {
        let path = self.dir.join("index.json");
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut fresh = Map::new();
                fresh.insert("schemaVersion".into(), json!(2));
                fresh.insert("mediaType".into(), json!(image::OCI_INDEX));
                fresh.insert("manifests".into(), json!([]));
                return Ok(fresh);
            }
            Err(e) => return Err(LayoutError::io("read", &path, e)),
        };
        let bad = |reason: String| LayoutError::BadDocument {
            path: path.clone(),
            reason,
        };
        let value: Value = serde_json::from_slice(&bytes).map_err(|e| bad(e.to_string()))?;
        let Value::Object(mut index) = value else {
            return Err(bad("not a JSON object".into()));
        };
        match index.get("manifests") {
            Some(Value::Array(_)) => {}
            None | Some(Value::Null) => {
                index.insert("manifests".into(), json!([]));
            }
            Some(_) => return Err(bad("\"manifests\" is not a list".into())),
        }
        Ok(index)
    }
}

/// True when `dir` is empty but for strata's own `.strata/` (left by an
/// earlier attempt).
fn is_empty_but_ours(dir: &Path) -> Result<bool, LayoutError> {
    let entries = fs::read_dir(dir).map_err(|e| LayoutError::io("read", dir, e))?;
    for e in entries {
        let e = e.map_err(|e| LayoutError::io("read", dir, e))?;
        if e.file_name() != ".strata" {
            return Ok(false);
        }
    }
    Ok(true)
}

fn kind_name(kind: &BlobKind) -> &'static str {
    match kind {
        BlobKind::Layer { .. } => "layer",
        BlobKind::Config => "config",
        BlobKind::Manifest => "manifest",
    }
}

fn ref_name_of(entry: &Value) -> Option<&str> {
    entry.get("annotations")?.get(ANNOTATION_REF_NAME)?.as_str()
}

fn digest_of(entry: &Value) -> Option<&str> {
    entry.get("digest")?.as_str()
}

/// An `index.json` entry for `m`, named `ref_name` (with the full name as
/// `io.containerd.image.name` when known).
fn entry_for(m: &RawManifest, name: Option<&(String, Option<String>)>) -> Value {
    let mut entry = json!({
        "mediaType": m.media_type,
        "digest": m.digest.to_string(),
        "size": m.bytes.len(),
    });
    if let Some((ref_name, full)) = name {
        let mut ann = Map::new();
        if let Some(full) = full {
            ann.insert(ANNOTATION_IMAGE_NAME.into(), json!(full));
        }
        ann.insert(ANNOTATION_REF_NAME.into(), json!(ref_name));
        entry["annotations"] = Value::Object(ann);
    }
    entry
}

/// True when some recorded index names `digest` as a child.
fn is_child(manifests: &[(RawManifest, Vec<Reference>)], digest: &Digest) -> bool {
    manifests.iter().any(|(m, _)| {
        m.kind().ok() == Some(ManifestKind::Index)
            && Index::new(m.clone())
                .is_ok_and(|i| i.children().iter().any(|c| c.digest() == digest))
    })
}

impl Sink for LayoutSink {
    fn place(&self) -> String {
        format!("layout {}", self.dir.display())
    }

    fn parallelism(&self) -> usize {
        4
    }

    fn verifies_digests(&self) -> bool {
        true
    }

    fn has_blob(&self, d: &Descriptor) -> Result<Presence, TransportError> {
        Ok(Presence::from_bool(
            self.is_staged(d.digest()) || self.has_in_place(d),
        ))
    }

    fn put_blob(
        &self,
        d: &Descriptor,
        kind: &BlobKind,
        content: &mut (dyn Read + Send),
        progress: &(dyn Fn(u64) + Sync),
    ) -> Result<(), TransportError> {
        let staged = self.stage(d, kind, content, progress)?;
        lock(&self.staged).push(staged);
        Ok(())
    }

    fn put_manifest(&self, m: &RawManifest, names: &[Reference]) -> Result<(), TransportError> {
        let d = m.descriptor();
        if !self.is_staged(&m.digest) && !self.has_in_place(&d) {
            self.put_blob(&d, &BlobKind::Manifest, &mut &m.bytes[..], &|_| {})?;
        }
        lock(&self.manifests).push((m.clone(), names.to_vec()));
        Ok(())
    }

    fn commit(&self) -> Result<(), TransportError> {
        let manifests = lock(&self.manifests).clone();
        let needed = self.needed(&manifests)?;
        let _guard = disk::lock(&self.dir.join(".strata/lock"))?;
        self.move_blobs_in()?;
        // A blob skipped because the layout had it may have been removed
        // since (a garbage collection by another tool); naming a manifest
        // whose blobs are gone would leave a broken layout.
        for d in &needed {
            if !self.has_in_place(d) {
                return Err(TransportError::BlobNotFound {
                    place: self.place(),
                    digest: d.digest().clone(),
                });
            }
        }
        let layout_file = self.dir.join("oci-layout");
        if !layout_file.exists() {
            disk::write_atomic(&self.ingest_dir(), &layout_file, OCI_LAYOUT_FILE)?;
        }
        let mut index = self.read_index()?;
        let Some(Value::Array(entries)) = index.get_mut("manifests") else {
            unreachable!("read_index makes \"manifests\" a list")
        };
        for (m, names) in &manifests {
            if is_child(&manifests, &m.digest) {
                continue;
            }
            let digest = m.digest.to_string();
            let wanted = self.entry_names(names);
            if wanted.is_empty() {
                if !entries.iter().any(|e| digest_of(e) == Some(&digest)) {
                    entries.push(entry_for(m, None));
                }
                continue;
            }
            for name in &wanted {
                entries.retain(|e| {
                    let same_name = ref_name_of(e) == Some(name.0.as_str());
                    let unnamed_same = ref_name_of(e).is_none() && digest_of(e) == Some(&digest);
                    !same_name && !unnamed_same
                });
                entries.push(entry_for(m, Some(name)));
            }
        }
        let bytes =
            serde_json::to_vec(&Value::Object(index)).map_err(|e| LayoutError::BadDocument {
                path: self.dir.join("index.json"),
                reason: e.to_string(),
            })?;
        disk::write_atomic(&self.ingest_dir(), &self.dir.join("index.json"), &bytes)?;
        *lock(&self.committed) = true;
        Ok(())
    }
}

impl Drop for LayoutSink {
    fn drop(&mut self) {
        for s in lock(&self.staged).drain(..) {
            let _ = fs::remove_file(&s.path);
        }
        // Directories are removed only when empty: another writer may
        // have started using them meanwhile.
        let private = self.dir.join(".strata");
        if self.made.ingest {
            let _ = fs::remove_dir(private.join("ingest"));
        }
        if *lock(&self.committed) {
            return;
        }
        // A lock file left by a failed commit stays: removing it could let
        // a process waiting on the old file and one making a new file both
        // hold "the" lock.
        if self.made.private {
            let _ = fs::remove_dir(&private);
        }
        if self.made.dir {
            let _ = fs::remove_dir(self.dir.join("blobs/sha256"));
            let _ = fs::remove_dir(self.dir.join("blobs"));
            let _ = fs::remove_dir(&self.dir);
        }
    }
}
