//! The core image types: manifests, configs, layers and indexes, as read
//! from any source. The small documents are parsed when an image is opened,
//! so their accessors cannot fail; only layer bytes stay lazy, behind the
//! source that offers them.

use std::fmt;

use oci_spec::image::{Descriptor, ImageConfiguration, ImageIndex, ImageManifest, MediaType};

use crate::digest::{self, Digest};

/// OCI image manifest media type.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// OCI image index media type.
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// OCI image config media type.
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
/// OCI uncompressed layer media type.
pub const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar";
/// OCI gzip layer media type.
pub const OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
/// OCI zstd layer media type.
pub const OCI_LAYER_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
/// Docker schema 2 manifest media type.
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// Docker manifest list media type.
pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// Docker image config media type.
pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
/// Docker schema 1 manifest media types, which strata refuses.
pub const DOCKER_SCHEMA1: [&str; 2] = [
    "application/vnd.docker.distribution.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v1+prettyjws",
];

/// Errors in image documents: manifests, configs and indexes that do not
/// parse or do not agree with each other.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    /// A document is not valid JSON of the expected shape.
    #[error("{what} {digest} is not valid: {reason}")]
    Invalid {
        /// "manifest", "config" or "index".
        what: &'static str,
        /// The document's digest.
        digest: Digest,
        /// What the parser said.
        reason: String,
    },
    /// Docker schema 1 manifests are obsolete and unsupported.
    #[error(
        "manifest {0} is a Docker schema 1 manifest, which strata does not support; re-push the image with a current tool"
    )]
    Schema1(Digest),
    /// The manifest and config disagree about the layers.
    #[error(
        "manifest {manifest} lists {layers} layers but its config {config} has {diff_ids} diff IDs"
    )]
    LayerCount {
        /// The manifest digest.
        manifest: Digest,
        /// The config digest.
        config: Digest,
        /// Layers in the manifest.
        layers: usize,
        /// Diff IDs in the config.
        diff_ids: usize,
    },
    /// The config's history claims more layers than the image has (docker's
    /// words; docker refuses to store such an image).
    #[error("too many non-empty layers in History section")]
    HistoryLayers,
    /// The config bytes are not the blob the manifest names.
    #[error("config for manifest {manifest} does not match its digest {expected}")]
    ConfigDigest {
        /// The manifest digest.
        manifest: Digest,
        /// The digest the manifest names.
        expected: Digest,
    },
}

/// What kind of document a manifest blob is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ManifestKind {
    /// A single-platform image manifest (OCI or Docker schema 2).
    Image,
    /// A multi-platform index (OCI index or Docker manifest list).
    Index,
}

/// Classifies a media type, or `None` when it is neither kind.
pub fn manifest_kind(media_type: &str) -> Option<ManifestKind> {
    match media_type {
        OCI_MANIFEST | DOCKER_MANIFEST => Some(ManifestKind::Image),
        OCI_INDEX | DOCKER_MANIFEST_LIST => Some(ManifestKind::Index),
        _ => None,
    }
}

/// Finds a manifest's media type: the document's own `mediaType`, else the
/// descriptor's, else by shape (umoci writes manifests without the field).
pub fn sniff_media_type(bytes: &[u8], descriptor_type: Option<&str>) -> String {
    #[derive(serde::Deserialize)]
    struct Probe {
        #[serde(rename = "mediaType")]
        media_type: Option<String>,
        manifests: Option<serde_json::Value>,
        #[serde(rename = "schemaVersion")]
        schema_version: Option<u32>,
    }
    let probe: Option<Probe> = serde_json::from_slice(bytes).ok();
    if let Some(Probe {
        media_type: Some(mt),
        ..
    }) = &probe
    {
        return mt.clone();
    }
    if let Some(mt) = descriptor_type {
        return mt.to_string();
    }
    match probe {
        Some(Probe {
            schema_version: Some(1),
            ..
        }) => DOCKER_SCHEMA1[0].to_string(),
        Some(Probe {
            manifests: Some(_), ..
        }) => OCI_INDEX.to_string(),
        _ => OCI_MANIFEST.to_string(),
    }
}

/// A manifest or index document exactly as stored, with its digest and
/// media type. Keeping the original bytes is what lets a plain copy keep
/// the digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawManifest {
    /// The document bytes.
    pub bytes: Vec<u8>,
    /// Their digest.
    pub digest: Digest,
    /// The media type.
    pub media_type: String,
}

impl RawManifest {
    /// Wraps bytes whose digest is computed here.
    pub fn new(bytes: Vec<u8>, media_type: String) -> Self {
        let digest = digest::sha256_of(&bytes);
        Self {
            bytes,
            digest,
            media_type,
        }
    }

    /// A descriptor pointing at this document.
    pub fn descriptor(&self) -> Descriptor {
        Descriptor::new(
            MediaType::from(self.media_type.as_str()),
            self.bytes.len() as u64,
            self.digest.clone(),
        )
    }

    /// Which kind of document this is, refusing schema 1 and unknown types.
    pub fn kind(&self) -> Result<ManifestKind, ImageError> {
        if DOCKER_SCHEMA1.contains(&self.media_type.as_str()) {
            return Err(ImageError::Schema1(self.digest.clone()));
        }
        manifest_kind(&self.media_type).ok_or_else(|| ImageError::Invalid {
            what: "manifest",
            digest: self.digest.clone(),
            reason: format!("unsupported media type {:?}", self.media_type),
        })
    }
}

/// One layer of an image: where its blob is and what it unpacks to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layer {
    /// The blob's descriptor from the manifest.
    pub descriptor: Descriptor,
    /// The digest of the uncompressed tar, from the config.
    pub diff_id: Digest,
}

/// A single-platform image: manifest and config parsed, layers lazy.
#[derive(Debug, Clone)]
pub struct Image {
    manifest: RawManifest,
    parsed: ImageManifest,
    config_bytes: Vec<u8>,
    config: ImageConfiguration,
    config_json: serde_json::Value,
    layers: Vec<Layer>,
}

impl Image {
    /// Opens an image from its manifest and config bytes, checking that they
    /// agree (config digest, layer count).
    pub fn new(manifest: RawManifest, config_bytes: Vec<u8>) -> Result<Image, ImageError> {
        if manifest.kind()? != ManifestKind::Image {
            return Err(ImageError::Invalid {
                what: "manifest",
                digest: manifest.digest.clone(),
                reason: "an index where an image manifest was expected".into(),
            });
        }
        let parsed = parse_manifest(&manifest)?;
        let config_digest = parsed.config().digest().clone();
        if digest::sha256_of(&config_bytes) != config_digest {
            return Err(ImageError::ConfigDigest {
                manifest: manifest.digest.clone(),
                expected: config_digest,
            });
        }
        let invalid_config = |reason: String| ImageError::Invalid {
            what: "config",
            digest: config_digest.clone(),
            reason,
        };
        let config = parse_config(&config_bytes).map_err(|e| invalid_config(e.to_string()))?;
        let config_json: serde_json::Value =
            serde_json::from_slice(&config_bytes).map_err(|e| invalid_config(e.to_string()))?;
        let diff_ids = config.rootfs().diff_ids();
        if diff_ids.len() != parsed.layers().len() {
            return Err(ImageError::LayerCount {
                manifest: manifest.digest.clone(),
                config: config_digest,
                layers: parsed.layers().len(),
                diff_ids: diff_ids.len(),
            });
        }
        let mut layers = Vec::with_capacity(diff_ids.len());
        for (descriptor, diff_id) in parsed.layers().iter().zip(diff_ids) {
            let diff_id = digest::parse(diff_id).map_err(|e| invalid_config(e.to_string()))?;
            layers.push(Layer {
                descriptor: descriptor.clone(),
                diff_id,
            });
        }
        Ok(Image {
            manifest,
            parsed,
            config_bytes,
            config,
            config_json,
            layers,
        })
    }

    /// The manifest as stored.
    pub fn manifest(&self) -> &RawManifest {
        &self.manifest
    }
    /// The parsed manifest.
    pub fn parsed_manifest(&self) -> &ImageManifest {
        &self.parsed
    }
    /// The image ID: the config's digest, as docker defines it.
    pub fn id(&self) -> &Digest {
        self.parsed.config().digest()
    }
    /// The config descriptor.
    pub fn config_descriptor(&self) -> &Descriptor {
        self.parsed.config()
    }
    /// The config bytes exactly as stored.
    pub fn config_bytes(&self) -> &[u8] {
        &self.config_bytes
    }
    /// Checks that the history has no more non-empty entries than the
    /// image has layers, as docker does before storing an image (`history`
    /// would show rows for layers that do not exist).
    pub fn check_history(&self) -> Result<(), ImageError> {
        let non_empty = self
            .config
            .history()
            .iter()
            .flatten()
            .filter(|h| !h.empty_layer().unwrap_or(false))
            .count();
        if non_empty > self.layers.len() {
            return Err(ImageError::HistoryLayers);
        }
        Ok(())
    }
    /// The parsed config.
    pub fn config(&self) -> &ImageConfiguration {
        &self.config
    }
    /// The config's labels (none when it has no `config` or no labels).
    pub fn labels(&self) -> std::collections::HashMap<String, String> {
        self.config
            .config()
            .as_ref()
            .and_then(|c| c.labels().clone())
            .unwrap_or_default()
    }
    /// The config as generic JSON, for fields docker has and OCI lacks.
    pub fn config_json(&self) -> &serde_json::Value {
        &self.config_json
    }
    /// The layers, base first.
    pub fn layers(&self) -> &[Layer] {
        &self.layers
    }
    /// The image's platform as its config states it.
    pub fn platform(&self) -> Platform {
        Platform {
            os: self.config.os().to_string(),
            architecture: self.config.architecture().to_string(),
            variant: self.config.variant().clone(),
        }
    }
    /// Layer chain IDs, base first, as docker names layers in `rmi` output.
    pub fn chain_ids(&self) -> Vec<Digest> {
        chain_ids(self.layers.iter().map(|l| &l.diff_id))
    }
}

/// Parses an image config as docker reads it: `Cmd`, `Entrypoint` and
/// `Shell` may be one string (docker's `StrSlice`), which means a list of
/// one. The bytes themselves are not changed, so the image ID is not.
pub fn parse_config(bytes: &[u8]) -> Result<ImageConfiguration, serde_json::Error> {
    let mut value: serde_json::Value = serde_json::from_slice(bytes)?;
    if let Some(config) = value.get_mut("config").and_then(|c| c.as_object_mut()) {
        for key in ["Cmd", "Entrypoint", "Shell"] {
            if let Some(v) = config.get_mut(key)
                && v.is_string()
            {
                *v = serde_json::Value::Array(vec![v.take()]);
            }
        }
    }
    serde_json::from_value(value)
}

/// Docker's layer chain IDs: the first is the base diff ID, each next one
/// the digest of "PARENT_CHAIN DIFF_ID".
pub fn chain_ids<'a>(diff_ids: impl Iterator<Item = &'a Digest>) -> Vec<Digest> {
    let mut out: Vec<Digest> = Vec::new();
    for d in diff_ids {
        let next = match out.last() {
            None => d.clone(),
            Some(parent) => digest::sha256_of(format!("{parent} {d}").as_bytes()),
        };
        out.push(next);
    }
    out
}

fn parse_manifest(m: &RawManifest) -> Result<ImageManifest, ImageError> {
    serde_json::from_slice(&m.bytes).map_err(|e| ImageError::Invalid {
        what: "manifest",
        digest: m.digest.clone(),
        reason: e.to_string(),
    })
}

/// A multi-platform image: an OCI index or Docker manifest list.
#[derive(Debug, Clone)]
pub struct Index {
    manifest: RawManifest,
    parsed: ImageIndex,
}

impl Index {
    /// Parses an index document.
    pub fn new(manifest: RawManifest) -> Result<Index, ImageError> {
        let parsed = serde_json::from_slice(&manifest.bytes).map_err(|e| ImageError::Invalid {
            what: "index",
            digest: manifest.digest.clone(),
            reason: e.to_string(),
        })?;
        Ok(Index { manifest, parsed })
    }
    /// The document as stored.
    pub fn manifest(&self) -> &RawManifest {
        &self.manifest
    }
    /// The child descriptors.
    pub fn children(&self) -> &[Descriptor] {
        self.parsed.manifests()
    }
    /// The platforms the children declare, as `os/arch[/variant]`, for messages.
    pub fn platforms(&self) -> Vec<Platform> {
        self.children()
            .iter()
            .filter_map(|d| d.platform().as_ref().map(Platform::from_oci))
            .collect()
    }
    /// The child that best fits `want`: an exact match (variant included when
    /// asked for), else the same OS and architecture.
    pub fn select(&self, want: &Platform) -> Option<&Descriptor> {
        let of = |d: &Descriptor| d.platform().as_ref().map(Platform::from_oci);
        let children = self
            .children()
            .iter()
            .filter(|d| manifest_kind(d.media_type().as_ref()) == Some(ManifestKind::Image));
        let mut fallback = None;
        for d in children {
            let Some(p) = of(d) else { continue };
            if p.os == want.os && p.architecture == want.architecture {
                if want.variant.is_none() || p.variant == want.variant {
                    return Some(d);
                }
                fallback.get_or_insert(d);
            }
        }
        fallback
    }
}

/// An OS, architecture and optional variant, as in `linux/arm64/v8`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Platform {
    /// Operating system, as Go's GOOS.
    pub os: String,
    /// CPU architecture, as Go's GOARCH.
    pub architecture: String,
    /// CPU variant, such as `v8`.
    pub variant: Option<String>,
}

impl Platform {
    /// The platform strata runs on.
    pub fn host() -> Platform {
        let architecture = match std::env::consts::ARCH {
            "x86_64" => "amd64",
            "aarch64" => "arm64",
            "x86" => "386",
            "powerpc64" => "ppc64le",
            other => other,
        };
        Platform {
            os: "linux".into(),
            architecture: architecture.into(),
            variant: None,
        }
    }

    /// Whether `other` is this platform: OS and architecture equal, and the
    /// variant too when this one names it.
    pub fn matches(&self, other: &Platform) -> bool {
        self.os == other.os
            && self.architecture == other.architecture
            && (self.variant.is_none() || self.variant == other.variant)
    }

    /// Parses `os/arch[/variant]`.
    pub fn parse(s: &str) -> Option<Platform> {
        let mut parts = s.split('/');
        let os = parts.next().filter(|p| !p.is_empty())?.to_string();
        let architecture = parts.next().filter(|p| !p.is_empty())?.to_string();
        let variant = parts.next().map(str::to_string);
        if parts.next().is_some() {
            return None;
        }
        Some(Platform {
            os,
            architecture,
            variant,
        })
    }

    fn from_oci(p: &oci_spec::image::Platform) -> Platform {
        Platform {
            os: p.os().to_string(),
            architecture: p.architecture().to_string(),
            variant: p.variant().clone(),
        }
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config_with(diff_ids: &[&str]) -> Vec<u8> {
        serde_json::to_vec(&serde_json::json!({
            "architecture": "amd64", "os": "linux",
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
        }))
        .unwrap()
    }

    #[test]
    fn a_command_may_be_one_string_as_docker_has_it() {
        let config = br#"{"architecture":"amd64","os":"linux","config":{"Cmd":"cat /etc/motd","Entrypoint":["/bin/sh","-c"],"Shell":null},"rootfs":{"type":"layers","diff_ids":[]}}"#;
        let parsed = parse_config(config).unwrap();
        let c = parsed.config().as_ref().unwrap();
        assert_eq!(c.cmd().as_deref(), Some(&["cat /etc/motd".to_string()][..]));
        assert_eq!(c.entrypoint().as_ref().unwrap().len(), 2);
        assert!(parse_config(br#"{"config":{"Cmd":7}}"#).is_err());
    }

    #[test]
    fn a_history_may_not_claim_more_layers_than_the_image_has() {
        let layer = digest::sha256_of(b"l").to_string();
        let with_history = |history: serde_json::Value| {
            let config = serde_json::to_vec(&serde_json::json!({
                "architecture": "amd64", "os": "linux",
                "rootfs": {"type": "layers", "diff_ids": [layer]},
                "history": history,
            }))
            .unwrap();
            Image::new(manifest_for(&config, &[&layer]), config).unwrap()
        };
        let one = serde_json::json!({"created_by": "ADD"});
        let empty = serde_json::json!({"created_by": "ENV", "empty_layer": true});
        with_history(serde_json::json!([one, empty, empty]))
            .check_history()
            .unwrap();
        let e = with_history(serde_json::json!([one, empty, one]))
            .check_history()
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "too many non-empty layers in History section"
        );
    }

    fn manifest_for(config: &[u8], layers: &[&str]) -> RawManifest {
        let layers: Vec<_> = layers
            .iter()
            .map(|d| serde_json::json!({"mediaType": OCI_LAYER, "size": 1, "digest": d}))
            .collect();
        let m = serde_json::json!({
            "schemaVersion": 2, "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "size": config.len(), "digest": digest::sha256_of(config).to_string()},
            "layers": layers,
        });
        RawManifest::new(serde_json::to_vec(&m).unwrap(), OCI_MANIFEST.into())
    }

    #[test]
    fn image_pairs_layers_with_diff_ids() {
        let a = format!("sha256:{}", "a".repeat(64));
        let b = format!("sha256:{}", "b".repeat(64));
        let config = config_with(&[&a, &b]);
        let img = Image::new(manifest_for(&config, &[&b, &a]), config.clone()).unwrap();
        assert_eq!(img.layers().len(), 2);
        assert_eq!(img.layers()[0].diff_id.to_string(), a);
        assert_eq!(img.id(), &digest::sha256_of(&config));
        assert_eq!(img.chain_ids()[0].to_string(), a);
        assert_eq!(
            img.chain_ids()[1],
            digest::sha256_of(format!("{a} {b}").as_bytes())
        );
    }

    #[test]
    fn image_refuses_mismatched_layer_count_and_config() {
        let a = format!("sha256:{}", "a".repeat(64));
        let config = config_with(&[&a]);
        let err = Image::new(manifest_for(&config, &[&a, &a]), config.clone()).unwrap_err();
        assert!(
            matches!(
                err,
                ImageError::LayerCount {
                    layers: 2,
                    diff_ids: 1,
                    ..
                }
            ),
            "{err}"
        );
        let err = Image::new(manifest_for(&config, &[&a]), b"{}".to_vec()).unwrap_err();
        assert!(matches!(err, ImageError::ConfigDigest { .. }), "{err}");
    }

    #[test]
    fn media_type_is_sniffed_when_missing() {
        assert_eq!(
            sniff_media_type(br#"{"schemaVersion":2,"config":{}}"#, None),
            OCI_MANIFEST
        );
        assert_eq!(
            sniff_media_type(br#"{"schemaVersion":2,"manifests":[]}"#, None),
            OCI_INDEX
        );
        assert_eq!(
            sniff_media_type(br#"{"schemaVersion":2}"#, Some(DOCKER_MANIFEST)),
            DOCKER_MANIFEST
        );
        let m = RawManifest::new(
            br#"{"schemaVersion":1}"#.to_vec(),
            sniff_media_type(br#"{"schemaVersion":1}"#, None),
        );
        assert!(matches!(m.kind(), Err(ImageError::Schema1(_))));
    }

    #[test]
    fn platform_parses_and_prints() {
        let p = Platform::parse("linux/arm64/v8").unwrap();
        assert_eq!(p.variant.as_deref(), Some("v8"));
        assert_eq!(p.to_string(), "linux/arm64/v8");
        assert!(Platform::parse("linux").is_none());
        assert!(Platform::parse("a/b/c/d").is_none());
    }
}
