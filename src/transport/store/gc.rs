//! Garbage collection: mark every blob reachable from `index.json` (and
//! from kept plugin artifacts), sweep the rest. Runs under the exclusive
//! lock, after the index change that made blobs unreachable.

use std::collections::HashSet;

use crate::digest::{self, Digest};
use crate::image::{Index, ManifestKind};

use super::{Store, StoreError, blobs};

/// What a collection removed.
#[derive(Debug, Default, Clone)]
pub struct GcReport {
    /// Blobs deleted.
    pub removed: Vec<Digest>,
    /// Bytes freed.
    pub bytes: u64,
}

impl Store {
    /// Deletes blobs that nothing in `index.json` references any more.
    pub fn gc(&self) -> Result<GcReport, StoreError> {
        let _guard = self.lock()?;
        self.gc_locked()
    }

    pub(crate) fn gc_locked(&self) -> Result<GcReport, StoreError> {
        let (live, diff_ids) = self.mark()?;
        self.sweep_layer_cache(&diff_ids)?;
        self.sweep_ingest();
        let dir = self.root.join("blobs/sha256");
        let mut report = GcReport::default();
        let listing = std::fs::read_dir(&dir).map_err(|e| StoreError::io("list", &dir, e))?;
        for entry in listing {
            let entry = entry.map_err(|e| StoreError::io("list", &dir, e))?;
            let name = entry.file_name();
            let Some(d) = name
                .to_str()
                .and_then(|n| digest::parse(&format!("sha256:{n}")).ok())
            else {
                continue;
            };
            if live.contains(&d) {
                continue;
            }
            let size = entry.metadata().map(|m| m.len()).unwrap_or(0);
            let path = entry.path();
            std::fs::remove_file(&path).map_err(|e| StoreError::io("remove", &path, e))?;
            self.drop_meta(&d);
            report.bytes += size;
            report.removed.push(d);
        }
        Ok(report)
    }

    /// Every blob reachable from the index. A manifest that is missing or
    /// unreadable keeps what can still be read reachable rather than failing:
    /// collection must never delete more because something else is broken.
    fn mark(&self) -> Result<(HashSet<Digest>, HashSet<Digest>), StoreError> {
        let mut live = HashSet::new();
        let mut diff_ids = HashSet::new();
        // Kept plugin artifacts are roots too (they are no images to list).
        live.extend(self.artifact_blobs());
        let mut todo: Vec<oci_spec::image::Descriptor> = self.entries()?.descriptors().to_vec();
        // So are the images running commands read (save, push, copy, mount).
        todo.extend(self.lease_roots());
        self.reach(todo, &mut live, &mut diff_ids);
        Ok((live, diff_ids))
    }

    /// The diff IDs of the images that live leases hold (a mount under way
    /// among them).
    pub(super) fn leased_diff_ids(&self) -> HashSet<Digest> {
        let (mut live, mut diff_ids) = (HashSet::new(), HashSet::new());
        self.reach(self.lease_roots(), &mut live, &mut diff_ids);
        diff_ids
    }

    /// Adds to `live` every blob reachable from `todo`, and to `diff_ids`
    /// the diff IDs of the images among them; what cannot be read is
    /// passed over.
    fn reach(
        &self,
        mut todo: Vec<oci_spec::image::Descriptor>,
        live: &mut HashSet<Digest>,
        diff_ids: &mut HashSet<Digest>,
    ) {
        while let Some(d) = todo.pop() {
            if !live.insert(d.digest().clone()) {
                continue;
            }
            let Ok(manifest) = self.read_manifest(&d) else {
                continue;
            };
            match manifest.kind() {
                Ok(ManifestKind::Image) => {
                    if let Ok(m) =
                        serde_json::from_slice::<oci_spec::image::ImageManifest>(&manifest.bytes)
                    {
                        live.insert(m.config().digest().clone());
                        if let Ok(config) = self.read_blob(m.config().digest())
                            && let Ok(c) = crate::image::parse_config(&config)
                        {
                            diff_ids.extend(
                                c.rootfs()
                                    .diff_ids()
                                    .iter()
                                    .filter_map(|d| digest::parse(d).ok()),
                            );
                        }
                        live.extend(m.layers().iter().map(|l| l.digest().clone()));
                    }
                }
                Ok(ManifestKind::Index) => {
                    if let Ok(index) = Index::new(manifest) {
                        todo.extend(index.children().iter().cloned());
                    }
                }
                Err(_) => {}
            }
        }
    }

    /// Removes what killed strata processes left in the ingest area: a
    /// temporary file whose maker no longer runs is never committed. Cheap
    /// (one directory listing, one signal-0 per file, no lock: a file of a
    /// live process is never touched), so every writing command starts
    /// with it. Returns the bytes freed.
    pub fn sweep_ingest(&self) -> u64 {
        let Ok(listing) = std::fs::read_dir(self.ingest_dir()) else {
            return 0;
        };
        let mut freed = 0;
        for entry in listing.flatten() {
            let name = entry.file_name();
            let Some(pid) = name.to_str().and_then(blobs::temp_owner) else {
                continue;
            };
            if pid != std::process::id() && !blobs::process_alive(pid) {
                let size = entry.metadata().map(|m| m.len()).unwrap_or(0);
                if std::fs::remove_file(entry.path()).is_ok() {
                    freed += size;
                }
            }
        }
        freed
    }

    /// Removes unpacked layers (kept for mounts) that no image has any more.
    fn sweep_layer_cache(&self, live: &HashSet<Digest>) -> Result<(), StoreError> {
        let dir = self.layer_cache_dir().join("sha256");
        let Ok(listing) = std::fs::read_dir(&dir) else {
            return Ok(());
        };
        let cache = crate::rootfs::LayerCache::new(self.layer_cache_dir());
        for entry in listing.flatten() {
            let name = entry.file_name();
            let Some(d) = name
                .to_str()
                .and_then(|n| digest::parse(&format!("sha256:{n}")).ok())
            else {
                continue;
            };
            if !live.contains(&d) {
                cache.remove(&d).map_err(|e| {
                    StoreError::io(
                        "remove",
                        &entry.path(),
                        std::io::Error::other(e.to_string()),
                    )
                })?;
            }
        }
        Ok(())
    }
}
