//! Leases: what a running command reads stays in the store until it ends.
//!
//! A `save` streams blobs one after another for as long as its reader
//! takes; an `rmi` of the same image meanwhile would collect the blobs not
//! yet opened and cut the archive short. A lease is a small file under
//! `.strata/leases/`, named for the process that holds it, listing the
//! manifests (or indexes) it reads. Collection treats every lease whose
//! process still runs as a root, as it treats `index.json`; a lease whose
//! process is gone (killed before it could remove it) counts for nothing
//! and is removed by the next collection.

use std::path::PathBuf;

use oci_spec::image::Descriptor;

use super::blobs::{self, temp_path, write_atomic};
use super::{Store, StoreError};

/// Keeps the blobs of some images in the store while it lives; dropping it
/// ends the lease.
#[derive(Debug)]
pub struct Lease {
    path: PathBuf,
}

impl Drop for Lease {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

impl Store {
    pub(super) fn leases_dir(&self) -> PathBuf {
        self.private().join("leases")
    }

    /// Takes a lease on these manifests or indexes and everything they
    /// reference. Made under the store's lock, after checking that each
    /// is still here: a collection that ran between finding an image and
    /// leasing it is an error asking to run again, never a half-read image.
    pub fn lease(&self, roots: &[Descriptor]) -> Result<Lease, StoreError> {
        self.take_lease(roots, true)
    }

    /// Takes a lease on manifests a transaction has staged but not yet
    /// committed, such as a transform's results committed unlisted: taken
    /// before the commit, it leaves no moment in which a collection could
    /// take them between the commit and their use.
    pub fn lease_staged(&self, roots: &[Descriptor]) -> Result<Lease, StoreError> {
        self.take_lease(roots, false)
    }

    fn take_lease(&self, roots: &[Descriptor], present: bool) -> Result<Lease, StoreError> {
        let dir = self.leases_dir();
        let bytes = serde_json::to_vec(roots)
            .map_err(|e| StoreError::io("write", &dir, std::io::Error::other(e.to_string())))?;
        let _guard = self.lock()?;
        if present && let Some(gone) = roots.iter().find(|d| !self.has_blob(d.digest())) {
            return Err(StoreError::Raced(gone.digest().clone()));
        }
        let path = temp_path(&dir, "lease");
        write_atomic(&self.ingest_dir(), &path, &bytes)?;
        Ok(Lease { path })
    }

    /// The roots of every live lease; leases of processes that are gone are
    /// removed. Called by collection, under the lock.
    pub(crate) fn lease_roots(&self) -> Vec<Descriptor> {
        let Ok(listing) = std::fs::read_dir(self.leases_dir()) else {
            return Vec::new();
        };
        let mut roots = Vec::new();
        for entry in listing.flatten() {
            let name = entry.file_name();
            let Some(pid) = name.to_str().and_then(blobs::temp_owner) else {
                continue;
            };
            if pid != std::process::id() && !blobs::process_alive(pid) {
                let _ = std::fs::remove_file(entry.path());
                continue;
            }
            // An unreadable lease of a live process still means "keep":
            // it cannot say what, so its blobs may go; nothing else can be
            // done without failing every collection.
            if let Ok(bytes) = std::fs::read(entry.path())
                && let Ok(ds) = serde_json::from_slice::<Vec<Descriptor>>(&bytes)
            {
                roots.extend(ds);
            }
        }
        roots
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transport::store::StoredImage;

    /// A store holding one small image named `lease/me:1`, its blobs
    /// written in place as another tool would.
    fn store_with_image() -> (tempfile::TempDir, Store, StoredImage) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path().join("store")).unwrap();
        let put = |bytes: &[u8]| {
            let d = crate::digest::sha256_of(bytes);
            std::fs::write(store.blob_path(&d), bytes).unwrap();
            d
        };
        let layer = put(b"layer bytes");
        let config = serde_json::to_vec(&serde_json::json!({
            "architecture": "amd64", "os": "linux",
            "rootfs": {"type": "layers", "diff_ids": [layer.to_string()]},
        }))
        .unwrap();
        let manifest = serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                       "size": config.len(), "digest": put(&config).to_string()},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                        "size": 11, "digest": layer.to_string()}],
        }))
        .unwrap();
        let index = serde_json::json!({
            "schemaVersion": 2,
            "manifests": [{
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "size": manifest.len(), "digest": put(&manifest).to_string(),
                "annotations": {
                    "io.containerd.image.name": "docker.io/lease/me:1",
                    "org.opencontainers.image.ref.name": "1",
                },
            }],
        });
        std::fs::write(store.index_path(), serde_json::to_vec(&index).unwrap()).unwrap();
        let image = store.lookup("lease/me:1").unwrap();
        (dir, store, image)
    }

    fn blobs_of(store: &Store, image: &StoredImage) -> Vec<crate::digest::Digest> {
        let mut all = vec![image.descriptor.digest().clone(), image.id().clone()];
        all.extend(
            image
                .image
                .layers()
                .iter()
                .map(|l| l.descriptor.digest().clone()),
        );
        assert!(all.iter().all(|d| store.has_blob(d)));
        all
    }

    #[test]
    fn a_leased_image_outlives_its_removal_until_the_lease_ends() {
        let (_dir, store, image) = store_with_image();
        let all = blobs_of(&store, &image);
        let lease = store
            .lease(std::slice::from_ref(&image.descriptor))
            .unwrap();
        store.remove("lease/me:1", false).unwrap();
        assert!(store.list().unwrap().is_empty());
        store.gc().unwrap();
        assert!(all.iter().all(|d| store.has_blob(d)), "leased blobs kept");
        drop(lease);
        store.gc().unwrap();
        assert!(all.iter().all(|d| !store.has_blob(d)), "collected after");
    }

    #[test]
    fn a_lease_of_a_dead_process_counts_for_nothing_and_is_removed() {
        let (_dir, store, image) = store_with_image();
        let all = blobs_of(&store, &image);
        let dir = store.leases_dir();
        std::fs::create_dir_all(&dir).unwrap();
        // No process has this ID (above the kernel's pid_max).
        let dead = dir.join("lease-4194305-0-00000000");
        std::fs::write(
            &dead,
            serde_json::to_vec(std::slice::from_ref(&image.descriptor)).unwrap(),
        )
        .unwrap();
        store.remove("lease/me:1", false).unwrap();
        assert!(all.iter().all(|d| !store.has_blob(d)));
        assert!(!dead.exists());
    }

    #[test]
    fn manifests_not_yet_committed_may_be_leased_as_staged() {
        let (_dir, store, image) = store_with_image();
        let all = blobs_of(&store, &image);
        // As a transform's results are: unlisted once committed.
        let staged = store
            .lease_staged(std::slice::from_ref(&image.descriptor))
            .unwrap();
        std::fs::write(store.index_path(), br#"{"schemaVersion":2,"manifests":[]}"#).unwrap();
        store.gc().unwrap();
        assert!(all.iter().all(|d| store.has_blob(d)), "kept by the lease");
        drop(staged);
        store.gc().unwrap();
        assert!(all.iter().all(|d| !store.has_blob(d)));
        // Not there at all: a staged lease is taken, a plain one refused.
        let absent = Descriptor::new(
            oci_spec::image::MediaType::ImageManifest,
            2,
            crate::digest::sha256_of(b"{}"),
        );
        store.lease_staged(std::slice::from_ref(&absent)).unwrap();
        assert!(store.lease(std::slice::from_ref(&absent)).is_err());
    }

    #[test]
    fn leasing_an_image_already_collected_asks_to_run_again() {
        let (_dir, store, image) = store_with_image();
        store.remove("lease/me:1", false).unwrap();
        let e = store
            .lease(std::slice::from_ref(&image.descriptor))
            .unwrap_err();
        assert!(matches!(e, StoreError::Raced(_)), "{e:?}");
        assert_eq!(std::fs::read_dir(store.leases_dir()).unwrap().count(), 0);
    }
}
