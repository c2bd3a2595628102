//! Mounting an image's root filesystem as one directory, as `podman image
//! mount` does: overlayfs over the image's layers, each unpacked once into
//! the store's layer cache; or, where overlayfs cannot be used (not root,
//! no kernel support, or asked), a flattened copy.

use std::ffi::CString;
use std::io::{self, BufReader};
use std::path::{Path, PathBuf};

use rustix::mount::{MountFlags, UnmountFlags};

use crate::image::Image;
use crate::reference::{self, Reference};
use crate::rootfs::{self, CacheOptions, CacheRequest, LayerCache, RootfsError, UnpackOptions};
use crate::transport::store::{MountKind, MountRecord, Store, StoreError};

/// How to mount.
#[derive(Debug, Clone, Default)]
pub struct MountOptions {
    /// Where the tree appears (default: a directory in the store).
    pub target: Option<PathBuf>,
    /// Writable: an upper and a work directory kept for this mount.
    pub rw: bool,
    /// Write a flattened copy instead of an overlay mount.
    pub flatten: bool,
    /// Layers unpacked at once.
    pub jobs: usize,
}

/// Errors mounting or unmounting.
#[derive(Debug, thiserror::Error)]
pub enum MountError {
    /// Unpacking a layer failed.
    #[error(transparent)]
    Rootfs(#[from] RootfsError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The target has something in it already.
    #[error("mount target {0} is not an empty directory")]
    TargetNotEmpty(PathBuf),
    /// A file operation failed.
    #[error("cannot {action} {}: {source}", path.display())]
    Io {
        /// What was being done.
        action: &'static str,
        /// Where.
        path: PathBuf,
        /// What the system said.
        #[source]
        source: io::Error,
    },
    /// The kernel refused to unmount (something still uses the tree).
    #[error("cannot unmount {}: {source}", target.display())]
    Busy {
        /// The mount point.
        target: PathBuf,
        /// What the kernel said.
        #[source]
        source: io::Error,
    },
    /// Nothing mounted answers to the name or path.
    #[error("{0} is not mounted")]
    NotMounted(String),
}

fn io_err<'p>(action: &'static str, path: &'p Path) -> impl FnOnce(io::Error) -> MountError + 'p {
    move |source| MountError::Io {
        action,
        path: path.to_path_buf(),
        source,
    }
}

/// What [`mount`] did.
#[derive(Debug, Clone)]
pub struct Mounted {
    /// The record kept in the store.
    pub record: MountRecord,
    /// Why a flattened copy was written instead of an overlay mount, when
    /// overlayfs was wanted but could not be used.
    pub fallback: Option<String>,
    /// True when the image was already mounted and that mount is returned.
    pub existing: bool,
}

fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// A fresh name for a mount's state directory.
fn mount_id() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    // The owner first: a sweep tells a mount under way from an abandoned one.
    format!("{}-{nanos:x}", std::process::id())
}

/// Removes what `mount`s killed before they recorded their mount left in the
/// store: their state directories, after detaching any overlay still
/// mounted from one (found in the mount table by the state path, as its
/// mount point or in its options, whatever `--target` it had). Returns the
/// directories removed. A flattened copy in a `--target` outside the store
/// is not the store's to find.
pub fn sweep_abandoned(store: &Store) -> Result<Vec<PathBuf>, MountError> {
    let _guard = store.lock()?;
    let records = store.mounts()?;
    let abandoned = store.abandoned_mount_states(&records);
    if abandoned.is_empty() {
        return Ok(abandoned);
    }
    let table = crate::mountinfo::read();
    let mut removed = Vec::new();
    for state in abandoned {
        let mut points = crate::mountinfo::using(&table, &state);
        // Deepest first, so a mount inside another goes before it.
        points.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
        for point in &points {
            let _ = rustix::mount::unmount(point, UnmountFlags::DETACH);
        }
        if remove_tree(&state).is_ok() {
            removed.push(state);
        }
    }
    Ok(removed)
}

/// Prepares the target: it must not exist or be an empty directory. Returns
/// the directories made for it, outermost first (none when it existed), so
/// a failed mount can take back exactly what it made.
fn prepare_target(target: &Path) -> Result<Vec<PathBuf>, MountError> {
    match std::fs::read_dir(target) {
        Ok(mut entries) => {
            if entries.next().is_some() {
                return Err(MountError::TargetNotEmpty(target.to_path_buf()));
            }
            Ok(Vec::new())
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let mut missing: Vec<PathBuf> = target
                .ancestors()
                .take_while(|p| !p.as_os_str().is_empty() && std::fs::symlink_metadata(p).is_err())
                .map(Path::to_path_buf)
                .collect();
            missing.reverse();
            let mut made = Vec::new();
            for dir in missing {
                match std::fs::create_dir(&dir) {
                    Ok(()) => made.push(dir),
                    // Made meanwhile by someone else: not ours to remove.
                    Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                    Err(e) => {
                        if let Some(outermost) = made.first() {
                            let _ = remove_tree(outermost);
                        }
                        return Err(MountError::Io {
                            action: "create",
                            path: dir,
                            source: e,
                        });
                    }
                }
            }
            Ok(made)
        }
        Err(e) => Err(MountError::Io {
            action: "read",
            path: target.to_path_buf(),
            source: e,
        }),
    }
}

/// Undoes a failed mount's writes to its target: the directories it made
/// are removed with everything in them; a directory that was there (empty,
/// as the mount requires) is emptied and kept.
fn take_back(target: &Path, made: &[PathBuf]) {
    match made.first() {
        Some(outermost) => {
            let _ = remove_tree(outermost);
        }
        None => {
            let _ = clear_dir(target);
        }
    }
}

/// Mounts `image` (named `name` in listings).
pub fn mount(
    store: &Store,
    image: &Image,
    name: &str,
    options: &MountOptions,
) -> Result<Mounted, MountError> {
    if options.target.is_none()
        && let Some(existing) = store.mounts()?.into_iter().find(|m| {
            m.image == *image.id()
                && m.kind == wanted_kind(options)
                && m.target.starts_with(store.mounts_dir())
        })
    {
        return Ok(Mounted {
            record: existing,
            fallback: None,
            existing: true,
        });
    }
    let state = store.mounts_dir().join(mount_id());
    std::fs::create_dir_all(&state).map_err(io_err("create", &state))?;
    let target = options
        .target
        .clone()
        .unwrap_or_else(|| state.join("merged"));
    let made = match prepare_target(&target) {
        Ok(made) => made,
        Err(e) => {
            let _ = std::fs::remove_dir_all(&state);
            return Err(e);
        }
    };
    let result = build(store, image, &state, &target, options).and_then(|(kind, fallback)| {
        let record = MountRecord {
            image: image.id().clone(),
            name: name.to_string(),
            target: target.clone(),
            kind,
            state: state.clone(),
        };
        // Recorded only while the image is still there: an `rmi` that ran
        // meanwhile would otherwise leave a record of a removed image.
        let recorded = store.update_mounts(|records| {
            if !store.list()?.iter().any(|i| i.id() == image.id()) {
                return Err(StoreError::Raced(image.id().clone()));
            }
            records.push(record.clone());
            Ok(())
        });
        if let Err(e) = recorded {
            if kind != MountKind::Flattened {
                let _ = rustix::mount::unmount(&target, UnmountFlags::DETACH);
            }
            return Err(e.into());
        }
        Ok(Mounted {
            record,
            fallback,
            existing: false,
        })
    });
    if result.is_err() {
        // Only what this mount made goes: the state directory, and in the
        // target what `prepare_target` made or found empty.
        if !target.starts_with(&state) {
            take_back(&target, &made);
        }
        let _ = remove_tree(&state);
    }
    result
}

/// Writes the tree: an overlay mount, or a flattened copy (asked, or where
/// overlayfs cannot be used, then with the reason).
fn build(
    store: &Store,
    image: &Image,
    state: &Path,
    target: &Path,
    options: &MountOptions,
) -> Result<(MountKind, Option<String>), MountError> {
    if options.flatten {
        flatten_into(store, image, target)?;
        return Ok((MountKind::Flattened, None));
    }
    if !is_root() {
        flatten_into(store, image, target)?;
        return Ok((
            MountKind::Flattened,
            Some("overlayfs needs root".to_string()),
        ));
    }
    match overlay(store, image, state, target, options) {
        Ok(kind) => Ok((kind, None)),
        // Only errors that mean "no overlayfs here" fall back; any other is
        // a real problem to report.
        Err(OverlayError::Mount(e)) if overlay_unavailable(&e) => {
            flatten_into(store, image, target)?;
            Ok((
                MountKind::Flattened,
                Some(format!("the kernel refused an overlay mount ({e})")),
            ))
        }
        Err(OverlayError::Mount(e)) => Err(MountError::Io {
            action: "mount overlayfs on",
            path: target.to_path_buf(),
            source: e,
        }),
        Err(OverlayError::Other(e)) => Err(e),
    }
}

/// True for the errors a kernel gives when overlayfs cannot be used here:
/// no such file system, not permitted (a user namespace), or options it
/// does not support.
fn overlay_unavailable(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::ENODEV | libc::EPERM | libc::EOPNOTSUPP | libc::EINVAL)
    )
}

fn wanted_kind(options: &MountOptions) -> MountKind {
    if options.flatten {
        MountKind::Flattened
    } else if options.rw {
        MountKind::OverlayRw
    } else {
        MountKind::Overlay
    }
}

enum OverlayError {
    /// The mount call itself failed: fall back to a flattened copy.
    Mount(io::Error),
    /// Anything else: report it.
    Other(MountError),
}

impl From<MountError> for OverlayError {
    fn from(e: MountError) -> Self {
        OverlayError::Other(e)
    }
}

/// Unpacks the layers into the cache (those not there yet, in parallel) and
/// mounts overlayfs over them.
fn overlay(
    store: &Store,
    image: &Image,
    state: &Path,
    target: &Path,
    options: &MountOptions,
) -> Result<MountKind, OverlayError> {
    let cache = LayerCache::new(store.layer_cache_dir());
    let mut requests = Vec::new();
    for layer in image.layers() {
        let store = store.clone();
        let digest = layer.descriptor.digest().clone();
        requests.push(CacheRequest {
            diff_id: layer.diff_id.clone(),
            label: digest.to_string(),
            open: Box::new(move || {
                let file = store.open_blob(&digest).map_err(io::Error::other)?;
                Ok(Box::new(BufReader::with_capacity(crate::pipe::CHUNK, file))
                    as Box<dyn io::BufRead + Send>)
            }),
        });
    }
    let jobs = if options.jobs == 0 {
        CacheOptions::default().jobs
    } else {
        options.jobs
    };
    let cached = cache
        .unpack(
            requests,
            &CacheOptions {
                jobs,
                unpack: UnpackOptions { as_root: true },
            },
        )
        .map_err(|e| OverlayError::Other(e.into()))?;
    // Short links keep the mount options under the kernel's page-size
    // limit for images with many layers.
    let links = state.join("l");
    std::fs::create_dir_all(&links).map_err(io_err("create", &links))?;
    let mut lowers = Vec::new();
    for (i, layer) in cached.iter().enumerate().rev() {
        let link = links.join(i.to_string());
        std::os::unix::fs::symlink(&layer.path, &link).map_err(io_err("create", &link))?;
        lowers.push(link);
    }
    if lowers.len() == 1 && !options.rw {
        // A read-only overlay needs two lower directories.
        let empty = state.join("empty");
        std::fs::create_dir_all(&empty).map_err(io_err("create", &empty))?;
        lowers.push(empty);
    }
    if lowers.is_empty() {
        let empty = state.join("empty");
        std::fs::create_dir_all(&empty).map_err(io_err("create", &empty))?;
        lowers.push(empty.clone());
        lowers.push(empty);
    }
    let lowerdir = lowers
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(":");
    let (data, flags, kind) = if options.rw {
        let upper = state.join("upper");
        let work = state.join("work");
        for d in [&upper, &work] {
            std::fs::create_dir_all(d).map_err(io_err("create", d))?;
        }
        (
            format!(
                "lowerdir={lowerdir},upperdir={},workdir={}",
                upper.display(),
                work.display()
            ),
            MountFlags::empty(),
            MountKind::OverlayRw,
        )
    } else {
        (
            format!("lowerdir={lowerdir}"),
            MountFlags::RDONLY,
            MountKind::Overlay,
        )
    };
    let data = CString::new(data).map_err(|_| MountError::Io {
        action: "mount overlayfs on",
        path: target.to_path_buf(),
        source: io::Error::new(io::ErrorKind::InvalidInput, "a layer path has a NUL byte"),
    })?;
    rustix::mount::mount("overlay", target, "overlay", flags, data.as_c_str())
        .map_err(|e| OverlayError::Mount(e.into()))?;
    Ok(kind)
}

/// Writes the image's layers, whiteouts applied, into `target`.
fn flatten_into(store: &Store, image: &Image, target: &Path) -> Result<(), MountError> {
    let mut layers = Vec::new();
    for layer in image.layers() {
        // Checked against the config first: a pulled layer is verified on
        // first use, and this may be it.
        store.layer_info_for(layer)?;
        let file = store.open_blob(layer.descriptor.digest())?;
        layers.push((
            layer.descriptor.digest().to_string(),
            BufReader::with_capacity(crate::pipe::CHUNK, file),
        ));
    }
    rootfs::flatten(layers, target, &UnpackOptions::default())?;
    Ok(())
}

/// A mount as listed: its record and the names its image has now (none
/// when the image is untagged or gone).
#[derive(Debug, Clone)]
pub struct Listed {
    /// The record kept in the store.
    pub record: MountRecord,
    /// The image's current names (tags and digests), in the store's order.
    pub names: Vec<Reference>,
}

/// Every mount, in mount order, with its image's current names: a name it
/// was mounted by may have been removed since, or others added.
pub fn list(store: &Store) -> Result<Vec<Listed>, MountError> {
    let records = store.mounts()?;
    if records.is_empty() {
        return Ok(Vec::new());
    }
    let images = store.list()?;
    Ok(records
        .into_iter()
        .map(|record| {
            let names = images
                .iter()
                .find(|i| i.id() == &record.image)
                .map(|i| i.names.clone())
                .unwrap_or_default();
            Listed { record, names }
        })
        .collect())
}

/// Finds the mounts `what` refers to: a mount's directory; else the mounts
/// of the image it names, by ID (full, or a unique prefix) or by any name
/// the image has now. A full ID finds an image's mounts even once the image
/// itself is gone.
pub fn find(store: &Store, what: &str) -> Result<Vec<MountRecord>, MountError> {
    let records = store.mounts()?;
    let as_path = std::fs::canonicalize(what).ok();
    let by_path: Vec<MountRecord> = records
        .iter()
        .filter(|m| {
            as_path
                .as_ref()
                .is_some_and(|p| std::fs::canonicalize(&m.target).ok().as_ref() == Some(p))
                || m.target == Path::new(what)
        })
        .cloned()
        .collect();
    if !by_path.is_empty() {
        return Ok(by_path);
    }
    let of = |id: &crate::digest::Digest| -> Vec<MountRecord> {
        records.iter().filter(|m| &m.image == id).cloned().collect()
    };
    let hex = what.strip_prefix("sha256:").unwrap_or(what);
    let mounted = if reference::is_full_id(what) {
        records
            .iter()
            .find(|m| m.image.digest() == hex)
            .map(|m| of(&m.image))
            .unwrap_or_default()
    } else if let Ok(found) = store.lookup(what) {
        of(found.id())
    } else if reference::is_id_prefix(what) {
        // A prefix of the ID of a mounted image no longer in the store.
        let mut ids: Vec<&crate::digest::Digest> = records
            .iter()
            .map(|m| &m.image)
            .filter(|id| id.digest().starts_with(hex))
            .collect();
        ids.sort_by(|a, b| a.digest().cmp(b.digest()));
        ids.dedup();
        match ids.as_slice() {
            [id] => of(id),
            _ => Vec::new(),
        }
    } else {
        Vec::new()
    };
    if mounted.is_empty() {
        return Err(MountError::NotMounted(what.to_string()));
    }
    Ok(mounted)
}

/// Unmounts (or removes the flattened copy) and forgets the mount.
///
/// The record goes first: a process killed half-way leaves at worst a tree
/// no record names, never a record of a tree that is gone. When the kernel refuses, the record is put back.
pub fn unmount(store: &Store, record: &MountRecord) -> Result<(), MountError> {
    store.update_mounts(|records| {
        records.retain(|m| m.target != record.target);
        Ok(())
    })?;
    if let Err(e) = release(record) {
        store.update_mounts(|records| {
            records.push(record.clone());
            Ok(())
        })?;
        return Err(e);
    }
    Ok(())
}

/// Undoes a mount on disk: the overlay is unmounted, a flattened copy
/// removed, and the mount's state directory (upper and work directories
/// included) deleted. The store's record is the caller's to drop.
pub fn release(record: &MountRecord) -> Result<(), MountError> {
    match record.kind {
        MountKind::Overlay | MountKind::OverlayRw => {
            match rustix::mount::unmount(&record.target, UnmountFlags::empty()) {
                // EINVAL: not mounted (any more): only the cleanup is left.
                Ok(()) | Err(rustix::io::Errno::INVAL) => {}
                Err(e) => {
                    return Err(MountError::Busy {
                        target: record.target.clone(),
                        source: e.into(),
                    });
                }
            }
        }
        MountKind::Flattened => {
            if !record.target.starts_with(&record.state) {
                clear_dir(&record.target)?;
            }
        }
    }
    if record.state.exists() {
        remove_tree(&record.state)?;
    }
    Ok(())
}

/// Removes everything inside `dir`, keeping `dir`.
fn clear_dir(dir: &Path) -> Result<(), MountError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => {
            return Err(MountError::Io {
                action: "read",
                path: dir.to_path_buf(),
                source: e,
            });
        }
    };
    for entry in entries.flatten() {
        let p = entry.path();
        if entry.file_type().map(|t| t.is_dir()).unwrap_or(false) {
            remove_tree(&p)?;
        } else {
            std::fs::remove_file(&p).map_err(io_err("remove", &p))?;
        }
    }
    Ok(())
}

/// `remove_dir_all`, first making directories writable so an image's
/// read-only directories do not stop a non-root user.
fn remove_tree(path: &Path) -> Result<(), MountError> {
    if std::fs::remove_dir_all(path).is_ok() || !path.exists() {
        return Ok(());
    }
    make_writable(path);
    std::fs::remove_dir_all(path).map_err(io_err("remove", path))
}

fn make_writable(dir: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700));
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                make_writable(&e.path());
            }
        }
    }
}
