//! Plugin artifacts kept for offline use. A plugin pulled from a registry
//! (an OCI artifact, not an image: nothing lists it) keeps its manifest,
//! byte for byte, under `.strata/plugins/artifacts/sha256/<hex>` and its
//! blobs in `blobs/` like any other. Collection treats those manifests as
//! roots beside `index.json`, so a later `rmi` never takes a plugin a
//! pipeline pinned; deleting the record lets the next collection sweep its
//! blobs.

use std::path::PathBuf;

use crate::digest::{self, Digest};
use crate::image::RawManifest;

use super::blobs::{self, IngestError, Scan};
use super::{Store, StoreError};

impl Store {
    fn artifacts_dir(&self) -> PathBuf {
        self.private().join("plugins/artifacts/sha256")
    }

    /// The manifest of a kept plugin artifact, when kept and intact (its
    /// bytes hash to `digest`).
    pub fn kept_artifact(&self, digest: &Digest) -> Option<Vec<u8>> {
        let bytes = std::fs::read(self.artifacts_dir().join(digest.digest())).ok()?;
        (&digest::sha256_of(&bytes) == digest).then_some(bytes)
    }

    /// Keeps a plugin artifact: `blobs` (its component, and whatever else
    /// of it the caller has) go into `blobs/`, hashed on the way, and the
    /// manifest is recorded; all under the lock, so no collection runs
    /// between the blobs landing and the record that keeps them.
    pub fn keep_artifact(&self, manifest: &RawManifest, blobs: &[&[u8]]) -> Result<(), StoreError> {
        let mut staged = Vec::with_capacity(blobs.len());
        let result = (|| {
            for bytes in blobs {
                let s = blobs::ingest(&self.ingest_dir(), &mut &bytes[..], Scan::No, &|_| {})
                    .map_err(|e| match e {
                        IngestError::Store(e) => e,
                        IngestError::Read(e) => StoreError::io("read", &self.ingest_dir(), e),
                    })?;
                staged.push(s);
            }
            let _guard = self.lock()?;
            for s in &staged {
                let dest = self.blob_path(&s.digest);
                if dest.exists() {
                    let _ = std::fs::remove_file(&s.path);
                } else {
                    std::fs::rename(&s.path, &dest)
                        .map_err(|e| StoreError::io("rename into place", &dest, e))?;
                }
            }
            blobs::sync_dir(&self.root.join("blobs/sha256"))?;
            let dir = self.artifacts_dir();
            std::fs::create_dir_all(&dir).map_err(|e| StoreError::io("create", &dir, e))?;
            blobs::write_atomic(
                &self.ingest_dir(),
                &dir.join(manifest.digest.digest()),
                &manifest.bytes,
            )
        })();
        for s in &staged {
            let _ = std::fs::remove_file(&s.path);
        }
        result
    }

    /// The blobs kept plugin artifacts name (their config and layers), for
    /// collection.
    pub(crate) fn artifact_blobs(&self) -> Vec<Digest> {
        #[derive(serde::Deserialize)]
        struct Named {
            digest: String,
        }
        #[derive(serde::Deserialize)]
        struct Doc {
            config: Option<Named>,
            #[serde(default)]
            layers: Vec<Named>,
        }
        let Ok(listing) = std::fs::read_dir(self.artifacts_dir()) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for entry in listing.flatten() {
            let Ok(bytes) = std::fs::read(entry.path()) else {
                continue;
            };
            if let Ok(doc) = serde_json::from_slice::<Doc>(&bytes) {
                out.extend(
                    doc.config
                        .into_iter()
                        .chain(doc.layers)
                        .filter_map(|n| digest::parse(&n.digest).ok()),
                );
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(layer: &[u8]) -> RawManifest {
        let doc = serde_json::json!({
            "schemaVersion": 2,
            "config": {"mediaType": "application/vnd.wasm.config.v0+json",
                       "digest": digest::sha256_of(b"{}").to_string(), "size": 2},
            "layers": [{"mediaType": "application/wasm",
                        "digest": digest::sha256_of(layer).to_string(), "size": layer.len()}],
        });
        RawManifest::new(
            serde_json::to_vec(&doc).unwrap(),
            crate::image::OCI_MANIFEST.into(),
        )
    }

    #[test]
    fn a_kept_artifact_survives_collection_until_its_record_goes() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let component = b"\0asm component bytes".as_slice();
        let m = manifest(component);
        assert!(store.kept_artifact(&m.digest).is_none());
        store.keep_artifact(&m, &[component]).unwrap();
        assert_eq!(store.kept_artifact(&m.digest).unwrap(), m.bytes);
        let layer = digest::sha256_of(component);
        assert_eq!(store.read_blob(&layer).unwrap(), component);
        // Nothing staged is left behind.
        assert_eq!(std::fs::read_dir(store.ingest_dir()).unwrap().count(), 0);
        store.gc().unwrap();
        assert!(store.has_blob(&layer));
        std::fs::remove_file(store.artifacts_dir().join(m.digest.digest())).unwrap();
        let report = store.gc().unwrap();
        assert_eq!(report.removed, vec![layer.clone()]);
        assert!(!store.has_blob(&layer));
    }

    #[test]
    fn a_record_that_does_not_hash_to_its_name_is_not_kept() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let m = manifest(b"x");
        store.keep_artifact(&m, &[b"x"]).unwrap();
        std::fs::write(store.artifacts_dir().join(m.digest.digest()), b"{}").unwrap();
        assert!(store.kept_artifact(&m.digest).is_none());
    }
}
