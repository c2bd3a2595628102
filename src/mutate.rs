//! Builders that make new documents from old ones. Nothing is patched in
//! place: a changed image or index is a new document with a new digest,
//! and every field the builder does not own is carried over as it was
//! (unknown fields and annotations included).

use serde_json::Value;

use crate::image::{ImageError, Index, Platform, RawManifest};

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

#[cfg(test)]
mod tests {
    use super::*;

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
