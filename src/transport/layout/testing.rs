//! Small images written straight into layout directories, for tests.

use std::path::Path;

use serde_json::{Value, json};

use super::{OCI_LAYOUT_FILE, blob_path};
use crate::digest::sha256_of;
use crate::image::{self, RawManifest};
use crate::transport::store::ANNOTATION_REF_NAME;

/// A layer tar holding one file.
pub(crate) fn layer(name: &str, data: &[u8]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_ustar();
    h.set_size(data.len() as u64);
    h.set_mode(0o644);
    h.set_mtime(1_600_000_000);
    h.set_cksum();
    b.append_data(&mut h, name, data).unwrap();
    b.into_inner().unwrap()
}

pub(crate) fn put(dir: &Path, bytes: &[u8]) -> String {
    let d = sha256_of(bytes);
    let p = blob_path(dir, &d);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, bytes).unwrap();
    d.to_string()
}

/// Writes an image's blobs (one layer per payload) into `dir`; returns
/// its manifest, written without a `mediaType` field as umoci does, so
/// that the media type comes from the index entry.
pub(crate) fn image_blobs(dir: &Path, arch: &str, payloads: &[&str]) -> RawManifest {
    let layers: Vec<Vec<u8>> = payloads.iter().map(|p| layer("f", p.as_bytes())).collect();
    let config = serde_json::to_vec(&json!({
        "architecture": arch, "os": "linux",
        "config": {"Cmd": ["/f"]},
        "rootfs": {"type": "layers", "diff_ids": layers.iter().map(|l| sha256_of(l).to_string()).collect::<Vec<_>>()},
    }))
    .unwrap();
    let descs: Vec<Value> = layers
        .iter()
        .map(|l| json!({"mediaType": image::OCI_LAYER, "digest": put(dir, l), "size": l.len()}))
        .collect();
    let manifest = serde_json::to_vec_pretty(&json!({
        "schemaVersion": 2,
        "config": {"mediaType": image::OCI_CONFIG, "digest": put(dir, &config), "size": config.len()},
        "layers": descs,
    }))
    .unwrap();
    put(dir, &manifest);
    RawManifest::new(manifest, image::OCI_MANIFEST.into())
}

pub(crate) fn index_blob(dir: &Path, children: &[(&RawManifest, &str)]) -> RawManifest {
    let manifests: Vec<Value> = children
        .iter()
        .map(|(m, arch)| {
            json!({"mediaType": m.media_type, "digest": m.digest.to_string(), "size": m.bytes.len(),
                   "platform": {"os": "linux", "architecture": arch}})
        })
        .collect();
    let bytes = serde_json::to_vec(&json!({
        "schemaVersion": 2, "mediaType": image::OCI_INDEX, "manifests": manifests,
    }))
    .unwrap();
    put(dir, &bytes);
    RawManifest::new(bytes, image::OCI_INDEX.into())
}

pub(crate) fn entry(m: &RawManifest, name: Option<&str>) -> Value {
    let mut e =
        json!({"mediaType": m.media_type, "digest": m.digest.to_string(), "size": m.bytes.len()});
    if let Some(n) = name {
        e["annotations"] = json!({ANNOTATION_REF_NAME: n});
    }
    e
}

/// Makes `dir` a layout whose index lists `entries`.
pub(crate) fn layout(dir: &Path, entries: Vec<Value>) {
    std::fs::create_dir_all(dir.join("blobs/sha256")).unwrap();
    std::fs::write(dir.join("oci-layout"), OCI_LAYOUT_FILE).unwrap();
    std::fs::write(
        dir.join("index.json"),
        serde_json::to_vec(&json!({"schemaVersion": 2, "manifests": entries})).unwrap(),
    )
    .unwrap();
}
