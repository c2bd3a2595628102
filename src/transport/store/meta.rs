//! strata's own small records beside the layout: per layer blob, its diff
//! ID and unpacked size (learned while it streamed in); per image, when it
//! was last tagged.

use std::io::BufReader;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::digest::Digest;
use crate::rootfs;

use super::{Store, StoreError, blobs};

/// What the store knows of a layer blob.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LayerInfo {
    /// Digest of the uncompressed tar.
    pub diff_id: Digest,
    /// Unpacked size as docker counts it.
    pub size: u64,
}

#[derive(Debug, Default, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ImageMeta {
    #[serde(skip_serializing_if = "Option::is_none")]
    last_tag_time: Option<String>,
}

/// What a transform made of an input, remembered so the same input and
/// transform are not worked again (a base layer shared by many tags).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TransformRecord {
    /// The blob (layer or manifest) made.
    pub digest: Digest,
    /// Its size.
    pub size: u64,
    /// Its media type.
    pub media_type: String,
    /// For a layer, its diff ID.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub diff_id: Option<Digest>,
}

impl Store {
    fn transform_path(&self, key: &Digest) -> PathBuf {
        self.private()
            .join("transforms")
            .join(format!("{}.json", key.digest()))
    }

    /// What the transform identified by `key` made before, if its result
    /// is still in the store.
    pub fn transform_record(&self, key: &Digest) -> Option<TransformRecord> {
        let bytes = std::fs::read(self.transform_path(key)).ok()?;
        let record: TransformRecord = serde_json::from_slice(&bytes).ok()?;
        self.has_blob(&record.digest).then_some(record)
    }

    /// Remembers what the transform identified by `key` made.
    pub fn write_transform_record(
        &self,
        key: &Digest,
        record: &TransformRecord,
    ) -> Result<(), StoreError> {
        let path = self.transform_path(key);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| StoreError::io("create", dir, e))?;
        }
        let bytes = serde_json::to_vec(record).unwrap_or_default();
        blobs::write_atomic(&self.ingest_dir(), &path, &bytes)
    }

    pub(super) fn layer_meta_path(&self, blob: &Digest) -> PathBuf {
        self.private()
            .join("layers")
            .join(format!("{}.json", blob.digest()))
    }

    fn image_meta_path(&self, id: &Digest) -> PathBuf {
        self.private()
            .join("images")
            .join(format!("{}.json", id.digest()))
    }

    pub(crate) fn write_layer_info(
        &self,
        blob: &Digest,
        info: &LayerInfo,
    ) -> Result<(), StoreError> {
        let bytes = serde_json::to_vec(info).unwrap_or_default();
        blobs::write_atomic(&self.ingest_dir(), &self.layer_meta_path(blob), &bytes)
    }

    /// The diff ID and unpacked size of a layer blob. Recorded at ingest;
    /// a blob another tool put in the layout is scanned once and recorded.
    pub fn layer_info(&self, blob: &Digest) -> Result<LayerInfo, StoreError> {
        let path = self.layer_meta_path(blob);
        if let Ok(bytes) = std::fs::read(&path)
            && let Ok(info) = serde_json::from_slice::<LayerInfo>(&bytes)
        {
            return Ok(info);
        }
        let file = self.open_blob(blob)?;
        let stats =
            rootfs::scan_layer(BufReader::with_capacity(blobs::CHUNK, file)).map_err(|e| {
                StoreError::Corrupt {
                    what: "layer",
                    digest: blob.clone(),
                    reason: e.to_string(),
                }
            })?;
        let info = LayerInfo {
            diff_id: stats.diff_id.unwrap_or_else(|| blob.clone()),
            size: stats.unpacked_size,
        };
        self.write_layer_info(blob, &info)?;
        Ok(info)
    }

    /// A layer's record, checked against the diff ID the image's config
    /// expects: a layer stored without its scan (a pulled compressed layer)
    /// is verified here, on first use.
    pub fn layer_info_for(&self, layer: &crate::image::Layer) -> Result<LayerInfo, StoreError> {
        let info = self.layer_info(layer.descriptor.digest())?;
        if info.diff_id != layer.diff_id {
            return Err(StoreError::Corrupt {
                what: "layer",
                digest: layer.descriptor.digest().clone(),
                reason: format!(
                    "its uncompressed content hashes to {}, but the image config expects diff ID {}",
                    info.diff_id, layer.diff_id
                ),
            });
        }
        Ok(info)
    }

    fn sources_path(&self, blob: &Digest) -> PathBuf {
        self.private()
            .join("layers")
            .join(format!("{}.sources.json", blob.digest()))
    }

    /// Repositories (`registry/path`) known to hold the blob: where it was
    /// pulled from or pushed to, for cross-repository mounts on push.
    pub fn layer_sources(&self, blob: &Digest) -> Vec<String> {
        std::fs::read(self.sources_path(blob))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default()
    }

    /// Records that `repository` holds the blob.
    pub fn add_layer_source(&self, blob: &Digest, repository: &str) -> Result<(), StoreError> {
        let mut sources = self.layer_sources(blob);
        if sources.iter().any(|s| s == repository) {
            return Ok(());
        }
        sources.push(repository.to_string());
        let bytes = serde_json::to_vec(&sources).unwrap_or_default();
        blobs::write_atomic(&self.ingest_dir(), &self.sources_path(blob), &bytes)
    }

    /// When the image was last tagged by `tag`, as RFC 3339 text.
    pub fn last_tag_time(&self, id: &Digest) -> Option<String> {
        let bytes = std::fs::read(self.image_meta_path(id)).ok()?;
        serde_json::from_slice::<ImageMeta>(&bytes)
            .ok()?
            .last_tag_time
    }

    pub(crate) fn set_last_tag_time(&self, id: &Digest, when: String) -> Result<(), StoreError> {
        let meta = ImageMeta {
            last_tag_time: Some(when),
        };
        let bytes = serde_json::to_vec(&meta).unwrap_or_default();
        blobs::write_atomic(&self.ingest_dir(), &self.image_meta_path(id), &bytes)
    }

    /// Forgets the records of blobs and images that are gone.
    pub(crate) fn drop_meta(&self, blob: &Digest) {
        let _ = std::fs::remove_file(self.layer_meta_path(blob));
        let _ = std::fs::remove_file(self.sources_path(blob));
        let _ = std::fs::remove_file(self.image_meta_path(blob));
    }
}
