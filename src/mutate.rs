//! Builders that make new documents from old ones. Nothing is patched in
//! place: a changed image or index is a new document with a new digest,
//! and every field the builder does not own is carried over as it was
//! (unknown fields and annotations included).

use oci_spec::image::Descriptor;
use serde_json::Value;

use crate::digest::{self, Digest};
use crate::image::{self as img, Image, ImageError, Index, Platform, RawManifest};

/// Docker's annotation on an attestation manifest naming the image it is
/// about: kept with that image, dropped with it.
const ATTESTATION_OF: &str = "vnd.docker.reference.digest";

/// A new index holding only the children for `platforms` (each child
/// matches when OS and architecture agree, and the variant too when the
/// wanted platform names one), and attestation manifests about them.
/// Returns `None` when every child is kept: the index is unchanged and
/// keeps its digest. An index left with no image is an error.
pub fn index_for_platforms(
    index: &Index,
    platforms: &[Platform],
) -> Result<Option<Index>, ImageError> {
    let invalid = |reason: String| ImageError::Invalid {
        what: "index",
        digest: index.manifest().digest.clone(),
        reason,
    };
    let mut doc: Value =
        serde_json::from_slice(&index.manifest().bytes).map_err(|e| invalid(e.to_string()))?;
    let Some(children) = doc.get_mut("manifests").and_then(Value::as_array_mut) else {
        return Err(invalid("no manifests list".into()));
    };
    let matches = |child: &Value| -> bool {
        let Some(p) = child.get("platform") else {
            return false;
        };
        let field = |k: &str| p.get(k).and_then(Value::as_str);
        platforms.iter().any(|want| {
            field("os") == Some(want.os.as_str())
                && field("architecture") == Some(want.architecture.as_str())
                && (want.variant.is_none() || field("variant") == want.variant.as_deref())
        })
    };
    let kept_images: Vec<String> = children
        .iter()
        .filter(|c| matches(c))
        .filter_map(|c| c.get("digest").and_then(Value::as_str).map(str::to_string))
        .collect();
    if kept_images.is_empty() {
        let have: Vec<String> = index.platforms().iter().map(ToString::to_string).collect();
        return Err(invalid(format!(
            "has none of the platforms asked for (it has {})",
            have.join(", ")
        )));
    }
    let before = children.len();
    children.retain(|c| {
        matches(c)
            || c.pointer(&format!(
                "/annotations/{}",
                ATTESTATION_OF.replace('/', "~1")
            ))
            .and_then(Value::as_str)
            .is_some_and(|of| kept_images.iter().any(|k| k == of))
    });
    if children.len() == before {
        return Ok(None);
    }
    // Compact, as registries and Go tools write JSON.
    let bytes = serde_json::to_vec(&doc).map_err(|e| invalid(e.to_string()))?;
    let made = RawManifest::new(bytes, index.manifest().media_type.clone());
    Index::new(made).map(Some)
}

/// An image config whose `rootfs.diff_ids` are `diff_ids` (the layers a
/// transform made), every other field as it was. The bytes come back
/// unchanged when the diff IDs already are these, so an image whose layers
/// no plugin touched keeps its config digest.
pub fn config_with_diff_ids(config: &[u8], diff_ids: &[Digest]) -> Result<Vec<u8>, ImageError> {
    let invalid = |reason: String| ImageError::Invalid {
        what: "config",
        digest: digest::sha256_of(config),
        reason,
    };
    let mut doc: Value = serde_json::from_slice(config).map_err(|e| invalid(e.to_string()))?;
    let wanted: Vec<Value> = diff_ids
        .iter()
        .map(|d| Value::String(d.to_string()))
        .collect();
    let Some(ids) = doc.pointer_mut("/rootfs/diff_ids") else {
        return Err(invalid("no rootfs.diff_ids".into()));
    };
    if ids.as_array() == Some(&wanted) {
        return Ok(config.to_vec());
    }
    *ids = Value::Array(wanted);
    serde_json::to_vec(&doc).map_err(|e| invalid(e.to_string()))
}

/// A new image manifest with `config` and `layers` (in the old layers'
/// order) in place of the old descriptors; every other field, and each
/// descriptor's annotations but those about the old bytes, carried over.
pub fn manifest_with(
    old: &RawManifest,
    config: &Descriptor,
    layers: &[Descriptor],
) -> Result<RawManifest, ImageError> {
    let invalid = |reason: String| ImageError::Invalid {
        what: "manifest",
        digest: old.digest.clone(),
        reason,
    };
    let mut doc: Value = serde_json::from_slice(&old.bytes).map_err(|e| invalid(e.to_string()))?;
    doc["config"] = descriptor_json(&doc["config"], config);
    let Some(list) = doc.get_mut("layers").and_then(Value::as_array_mut) else {
        return Err(invalid("no layers list".into()));
    };
    if list.len() != layers.len() {
        return Err(invalid(format!(
            "has {} layers, {} given",
            list.len(),
            layers.len()
        )));
    }
    for (slot, d) in list.iter_mut().zip(layers) {
        *slot = descriptor_json(slot, d);
    }
    let bytes = serde_json::to_vec(&doc).map_err(|e| invalid(e.to_string()))?;
    Ok(RawManifest::new(bytes, old.media_type.clone()))
}

/// A new index whose image children are `children`, in order; other
/// children (attestations) stay as they were.
pub fn index_with_children(index: &Index, children: &[Image]) -> Result<Index, ImageError> {
    let invalid = |reason: String| ImageError::Invalid {
        what: "index",
        digest: index.manifest().digest.clone(),
        reason,
    };
    let mut doc: Value =
        serde_json::from_slice(&index.manifest().bytes).map_err(|e| invalid(e.to_string()))?;
    let Some(list) = doc.get_mut("manifests").and_then(Value::as_array_mut) else {
        return Err(invalid("no manifests list".into()));
    };
    let mut made = children.iter();
    for slot in list.iter_mut() {
        let is_image = slot
            .get("mediaType")
            .and_then(Value::as_str)
            .and_then(img::manifest_kind)
            == Some(img::ManifestKind::Image);
        if !is_image {
            continue;
        }
        let Some(child) = made.next() else { break };
        *slot = descriptor_json(slot, &child.manifest().descriptor());
    }
    let bytes = serde_json::to_vec(&doc).map_err(|e| invalid(e.to_string()))?;
    Index::new(RawManifest::new(bytes, index.manifest().media_type.clone()))
}

/// A descriptor in JSON: the old one's other fields (annotations, …) kept,
/// media type, size and digest the new ones. An annotation that speaks of
/// the old bytes would be wrong now, and goes.
fn descriptor_json(old: &Value, d: &Descriptor) -> Value {
    let mut v = old.clone();
    if !v.is_object() {
        v = Value::Object(Default::default());
    }
    v["mediaType"] = Value::String(d.media_type().to_string());
    v["size"] = Value::from(d.size());
    v["digest"] = Value::String(d.digest().to_string());
    if let Some(a) = v.get_mut("annotations").and_then(Value::as_object_mut) {
        a.remove("org.opencontainers.image.layer.diff_id");
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    const B: &str = "sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

    fn digest(s: &str) -> Digest {
        s.parse().unwrap()
    }

    #[test]
    fn a_config_gets_new_diff_ids_and_keeps_the_rest() {
        let old = br#"{"architecture":"amd64","config":{"Labels":{"a":"b"}},"rootfs":{"type":"layers","diff_ids":["sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"]},"x-unknown":1}"#;
        assert_eq!(
            config_with_diff_ids(old, &[digest(A)]).unwrap(),
            old.to_vec()
        );
        let new = config_with_diff_ids(old, &[digest(B)]).unwrap();
        let doc: Value = serde_json::from_slice(&new).unwrap();
        assert_eq!(doc["rootfs"]["diff_ids"][0], B);
        assert_eq!(doc["config"]["Labels"]["a"], "b");
        assert_eq!(doc["x-unknown"], 1);
        let e = config_with_diff_ids(b"{}", &[digest(A)]).unwrap_err();
        assert!(e.to_string().contains("no rootfs.diff_ids"), "{e}");
    }

    #[test]
    fn a_manifest_gets_new_descriptors_and_keeps_its_annotations() {
        let old = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "size": 1, "digest": A},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "size": 1, "digest": A,
                        "annotations": {"keep": "me", "org.opencontainers.image.layer.diff_id": A}}],
            "annotations": {"org.example": "kept"}
        });
        let old = RawManifest::new(
            serde_json::to_vec(&old).unwrap(),
            "application/vnd.oci.image.manifest.v1+json".into(),
        );
        let config = Descriptor::new(
            "application/vnd.oci.image.config.v1+json".into(),
            7,
            digest(B),
        );
        let layer = Descriptor::new(img::OCI_LAYER_GZIP.into(), 9, digest(B));
        let new = manifest_with(&old, &config, std::slice::from_ref(&layer)).unwrap();
        assert_ne!(new.digest, old.digest);
        let doc: Value = serde_json::from_slice(&new.bytes).unwrap();
        assert_eq!(doc["config"]["size"], 7);
        assert_eq!(doc["layers"][0]["digest"], B);
        assert_eq!(doc["layers"][0]["mediaType"], img::OCI_LAYER_GZIP);
        assert_eq!(
            doc["layers"][0]["annotations"],
            serde_json::json!({"keep": "me"})
        );
        assert_eq!(doc["annotations"]["org.example"], "kept");
        let e = manifest_with(&old, &config, &[layer.clone(), layer]).unwrap_err();
        assert!(e.to_string().contains("has 1 layers, 2 given"), "{e}");
    }

    fn index() -> Index {
        let doc = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": [
                {"mediaType": "application/vnd.oci.image.manifest.v1+json", "size": 1,
                 "digest": "sha256:1111111111111111111111111111111111111111111111111111111111111111",
                 "platform": {"os": "linux", "architecture": "amd64"}},
                {"mediaType": "application/vnd.oci.image.manifest.v1+json", "size": 1,
                 "digest": "sha256:2222222222222222222222222222222222222222222222222222222222222222",
                 "platform": {"os": "linux", "architecture": "arm64", "variant": "v8"}},
                {"mediaType": "application/vnd.oci.image.manifest.v1+json", "size": 1,
                 "digest": "sha256:3333333333333333333333333333333333333333333333333333333333333333",
                 "platform": {"os": "unknown", "architecture": "unknown"},
                 "annotations": {"vnd.docker.reference.digest": "sha256:2222222222222222222222222222222222222222222222222222222222222222",
                                 "vnd.docker.reference.type": "attestation-manifest"}}
            ],
            "annotations": {"org.example": "kept"}
        });
        Index::new(RawManifest::new(
            serde_json::to_vec(&doc).unwrap(),
            "application/vnd.oci.image.index.v1+json".into(),
        ))
        .unwrap()
    }

    #[test]
    fn a_subset_is_a_new_index_with_its_attestations() {
        let old = index();
        let arm = [Platform::parse("linux/arm64").unwrap()];
        let new = index_for_platforms(&old, &arm).unwrap().unwrap();
        assert_ne!(new.manifest().digest, old.manifest().digest);
        let digests: Vec<String> = new
            .children()
            .iter()
            .map(|c| c.digest().to_string())
            .collect();
        assert_eq!(digests.len(), 2);
        assert!(digests[0].starts_with("sha256:2222"));
        assert!(
            digests[1].starts_with("sha256:3333"),
            "the attestation of arm64 stays"
        );
        let doc: Value = serde_json::from_slice(&new.manifest().bytes).unwrap();
        assert_eq!(doc["annotations"]["org.example"], "kept");
    }

    #[test]
    fn all_platforms_kept_means_unchanged() {
        let old = index();
        let both = [
            Platform::parse("linux/amd64").unwrap(),
            Platform::parse("linux/arm64").unwrap(),
        ];
        assert!(index_for_platforms(&old, &both).unwrap().is_none());
    }

    #[test]
    fn no_match_is_an_error_naming_what_there_is() {
        let e = index_for_platforms(&index(), &[Platform::parse("linux/s390x").unwrap()])
            .unwrap_err()
            .to_string();
        assert!(e.contains("linux/amd64, linux/arm64/v8"), "{e}");
    }
}
