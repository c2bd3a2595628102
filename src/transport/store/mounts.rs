//! The store's record of mounted images, so `mount` can list them, `umount`
//! can find them and `rmi` can refuse to delete what is in use.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::digest::Digest;

use super::{Store, StoreError, blobs};

/// One mounted image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MountRecord {
    /// The image ID.
    pub image: Digest,
    /// The name it was mounted by, as given. Listings show the image's
    /// current names instead: this one may have been removed since.
    pub name: String,
    /// Where the tree is.
    pub target: PathBuf,
    /// How it was made.
    pub kind: MountKind,
    /// The per-mount directory (upper and work directories, or the
    /// flattened copy), removed on unmount.
    pub state: PathBuf,
}

/// How a mounted tree was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MountKind {
    /// overlayfs over the cached layers, read-only.
    Overlay,
    /// overlayfs with an upper directory: writable, changes kept per mount.
    OverlayRw,
    /// A flattened copy written to the target (no overlayfs).
    Flattened,
}

impl Store {
    pub(super) fn mounts_path(&self) -> PathBuf {
        self.private().join("mounts.json")
    }

    /// Where per-mount state lives.
    pub fn mounts_dir(&self) -> PathBuf {
        self.private().join("mounts")
    }

    /// Where unpacked layers are cached, by diff ID.
    pub fn layer_cache_dir(&self) -> PathBuf {
        self.private().join("rootfs")
    }

    /// The mounts recorded, in mount order.
    pub fn mounts(&self) -> Result<Vec<MountRecord>, StoreError> {
        let path = self.mounts_path();
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| StoreError::CorruptIndex {
                path,
                reason: e.to_string(),
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(e) => Err(StoreError::io("read", &path, e)),
        }
    }

    /// Changes the mount records under the store's lock.
    pub fn update_mounts<R>(
        &self,
        change: impl FnOnce(&mut Vec<MountRecord>) -> Result<R, StoreError>,
    ) -> Result<R, StoreError> {
        let _guard = self.lock()?;
        self.update_mounts_locked(change)
    }

    /// Per-mount directories no record names whose owner (the process ID
    /// before the dash in the name) is gone: what a `mount` killed before it
    /// recorded its mount leaves. Names of another form are never listed.
    /// Call under the lock, with the records read under it.
    pub(crate) fn abandoned_mount_states(&self, records: &[MountRecord]) -> Vec<PathBuf> {
        let Ok(listing) = std::fs::read_dir(self.mounts_dir()) else {
            return Vec::new();
        };
        listing
            .flatten()
            .map(|e| e.path())
            .filter(|path| !records.iter().any(|r| &r.state == path))
            .filter(|path| {
                let owner = path
                    .file_name()
                    .and_then(|n| n.to_str())
                    .and_then(|n| n.split_once('-'))
                    .and_then(|(pid, _)| pid.parse::<u32>().ok());
                owner.is_some_and(|pid| pid != std::process::id() && !blobs::process_alive(pid))
            })
            .collect()
    }

    pub(crate) fn update_mounts_locked<R>(
        &self,
        change: impl FnOnce(&mut Vec<MountRecord>) -> Result<R, StoreError>,
    ) -> Result<R, StoreError> {
        let mut records = self.mounts()?;
        let result = change(&mut records)?;
        let bytes = serde_json::to_vec_pretty(&records).unwrap_or_default();
        blobs::write_atomic(&self.ingest_dir(), &self.mounts_path(), &bytes)?;
        Ok(result)
    }
}
