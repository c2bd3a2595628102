//! Plugins as OCI artifacts. `strata plugin push` writes the CNCF TAG
//! Runtime's Wasm OCI artifact layout: an image manifest whose config is
//! `application/vnd.wasm.config.v0+json` (created, author, architecture
//! `wasm`, os `wasip2`, the layers' digests, and the component's exports,
//! imports and world) and whose one layer is the component itself,
//! `application/wasm`. Pulling also takes the layouts that came before it:
//! wasm-to-oci's (`application/vnd.wasm.config.v1+json` with one
//! `application/vnd.wasm.content.layer.v1+wasm` layer, as Kubewarden's
//! policies are published) and wasme's, which Istio's `WasmPlugin` pulls
//! (`application/vnd.module.wasm.config.v1+json` with one
//! `application/vnd.module.wasm.content.layer.v1+wasm` layer, beside which
//! only its runtime configuration may travel).
//!
//! A pipeline names a plugin image pinned by digest: the digest says which
//! bytes run, whatever a tag says later.

use oci_spec::image::{Descriptor, MediaType};
use serde::{Deserialize, Serialize};

use crate::digest::{self, Digest};
use crate::image::{ManifestKind, OCI_MANIFEST, RawManifest};
use crate::reference::{Reference, ReferenceError};
use crate::transport::TransportError;
use crate::transport::registry::RegistryError;
use crate::transport::registry::settings::SettingsError;
use crate::transport::store::StoreError;

/// The config media type of the CNCF layout.
pub const CONFIG_V0: &str = "application/vnd.wasm.config.v0+json";
/// The layer media type of the CNCF layout.
pub const LAYER_WASM: &str = "application/wasm";
/// wasm-to-oci's config media type (Kubewarden's policies).
pub const CONFIG_WASM_TO_OCI: &str = "application/vnd.wasm.config.v1+json";
/// wasm-to-oci's layer media type.
pub const LAYER_WASM_TO_OCI: &str = "application/vnd.wasm.content.layer.v1+wasm";
/// wasme's config media type (Istio's `WasmPlugin` images).
pub const CONFIG_WASME: &str = "application/vnd.module.wasm.config.v1+json";
/// wasme's layer media type.
pub const LAYER_WASME: &str = "application/vnd.module.wasm.content.layer.v1+wasm";

/// The largest component strata pulls: far above any plugin, low enough
/// that a hostile manifest cannot make strata hold gigabytes.
pub const MAX_COMPONENT: u64 = 1 << 30;

/// Errors getting a plugin from an artifact. Each names the reference.
#[derive(Debug, thiserror::Error)]
pub enum ArtifactError {
    /// The reference does not parse.
    #[error("{reference}: {source}")]
    Reference {
        /// The reference as written.
        reference: String,
        /// Why it does not parse.
        #[source]
        source: ReferenceError,
    },
    /// The reference has no digest.
    #[error(
        "{reference}: not pinned by digest: name a plugin image as REPOSITORY@sha256:… (or REPOSITORY:TAG@sha256:…)"
    )]
    NotPinned {
        /// The reference as written.
        reference: String,
    },
    /// The manifest is not one of the Wasm artifact layouts.
    #[error("{reference}: not a WebAssembly artifact ({detail})")]
    NotWasm {
        /// The reference.
        reference: String,
        /// What it is instead.
        detail: String,
    },
    /// The component layer announces more than strata takes.
    #[error("{reference}: its component announces {size} bytes, more than the {max} strata takes")]
    TooLarge {
        /// The reference.
        reference: String,
        /// The announced size.
        size: u64,
        /// The limit.
        max: u64,
    },
    /// No client for the registry.
    #[error("{reference}: {source}")]
    Settings {
        /// The reference.
        reference: String,
        /// Why.
        #[source]
        source: SettingsError,
    },
    /// The registry failed (a manifest that is not there, or not the
    /// digest asked for).
    #[error("{reference}: {source}")]
    Registry {
        /// The reference.
        reference: String,
        /// What failed.
        #[source]
        source: Box<RegistryError>,
    },
    /// Opening the component's blob failed.
    #[error("{reference}: {source}")]
    Transport {
        /// The reference.
        reference: String,
        /// What failed.
        #[source]
        source: Box<TransportError>,
    },
    /// The component's bytes did not arrive whole, or are not its digest.
    #[error("{reference}: component {digest}: {source}")]
    Download {
        /// The reference.
        reference: String,
        /// The layer's digest.
        digest: Digest,
        /// What went wrong (a digest or size mismatch says so).
        #[source]
        source: std::io::Error,
    },
    /// The store could not be read.
    #[error("{reference}: {source}")]
    Store {
        /// The reference.
        reference: String,
        /// What failed.
        #[source]
        source: StoreError,
    },
}

/// A reference pinned by digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pinned {
    /// The reference (its tag, if any, is only a label).
    pub reference: Reference,
    /// The manifest's digest.
    pub digest: Digest,
}

/// Parses a plugin image reference, which must carry a sha256 digest.
pub fn pinned(text: &str) -> Result<Pinned, ArtifactError> {
    let reference = Reference::parse(text).map_err(|source| ArtifactError::Reference {
        reference: text.to_string(),
        source,
    })?;
    let digest = reference
        .digest()
        .and_then(|d| digest::parse(d).ok())
        .ok_or_else(|| ArtifactError::NotPinned {
            reference: text.to_string(),
        })?;
    Ok(Pinned { reference, digest })
}

/// True when `text` reads as an image reference with a tag or digest: how
/// the command line tells `--transform REGISTRY/REPO@sha256:…` from a file
/// (one that exists wins). A tag without a digest reads as a reference
/// too, so that it is refused as unpinned rather than as a missing file.
pub fn is_reference(text: &str) -> bool {
    Reference::parse(text).is_ok_and(|r| !r.is_name_only())
}

/// A plugin's name from its reference: the repository's last component.
pub fn short_name(reference: &Reference) -> String {
    reference
        .path()
        .rsplit('/')
        .next()
        .unwrap_or("plugin")
        .to_string()
}

/// Which layout an artifact follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// The CNCF TAG Runtime's (`application/vnd.wasm.config.v0+json`).
    Cncf,
    /// wasm-to-oci's (Kubewarden).
    WasmToOci,
    /// wasme's (Istio).
    Wasme,
}

#[derive(Deserialize)]
struct ManifestDoc {
    config: Option<DescriptorDoc>,
    #[serde(default)]
    layers: Vec<DescriptorDoc>,
}

#[derive(Deserialize, Serialize, Clone)]
struct DescriptorDoc {
    #[serde(rename = "mediaType")]
    media_type: String,
    digest: String,
    size: u64,
}

/// The component layer of a Wasm artifact's manifest, or what the manifest
/// is instead (for [`ArtifactError::NotWasm`]).
pub fn wasm_layer(manifest: &RawManifest) -> Result<(Layout, Descriptor), String> {
    if manifest.kind().ok() == Some(ManifestKind::Index) {
        return Err(format!(
            "an image index ({}), not an image manifest",
            manifest.media_type
        ));
    }
    let doc: ManifestDoc = serde_json::from_slice(&manifest.bytes)
        .map_err(|e| format!("the manifest does not parse: {e}"))?;
    let config = doc
        .config
        .ok_or_else(|| "the manifest names no config".to_string())?;
    let (layout, wanted) = match config.media_type.as_str() {
        CONFIG_V0 => (Layout::Cncf, LAYER_WASM),
        CONFIG_WASM_TO_OCI => (Layout::WasmToOci, LAYER_WASM_TO_OCI),
        CONFIG_WASME => (Layout::Wasme, LAYER_WASME),
        other => return Err(format!("config media type {other}")),
    };
    let wasm: Vec<&DescriptorDoc> = doc
        .layers
        .iter()
        .filter(|l| l.media_type == wanted)
        .collect();
    // wasme images may carry their runtime configuration as a layer; the
    // other layouts hold the component alone (the CNCF layout says a
    // consumer of this version should refuse more than one layer).
    let extra = doc.layers.iter().find(|l| {
        l.media_type != wanted && !(layout == Layout::Wasme && l.media_type == CONFIG_WASME)
    });
    if let Some(extra) = extra {
        return Err(format!(
            "config {} with a layer of media type {}; a plugin artifact holds one {wanted} layer",
            config.media_type, extra.media_type
        ));
    }
    let layer = match wasm.as_slice() {
        [one] => *one,
        [] => return Err(format!("no {wanted} layer")),
        many => {
            return Err(format!(
                "{} {wanted} layers; a plugin artifact holds one",
                many.len()
            ));
        }
    };
    let digest =
        digest::parse(&layer.digest).map_err(|e| format!("its {wanted} layer's digest: {e}"))?;
    Ok((
        layout,
        Descriptor::new(MediaType::from(wanted), layer.size, digest),
    ))
}

/// What a component says about itself, for the artifact's config.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ComponentFacts {
    /// Every export, by name.
    pub exports: Vec<String>,
    /// Every import, by name.
    pub imports: Vec<String>,
    /// The world it implements (`strata:plugin/config-transform@0.1.0`),
    /// when it implements one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ConfigDoc<'a> {
    created: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    author: Option<&'a str>,
    architecture: &'static str,
    os: &'static str,
    layer_digests: Vec<String>,
    component: &'a ComponentFacts,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ManifestOut {
    schema_version: u32,
    media_type: &'static str,
    config: DescriptorDoc,
    layers: Vec<DescriptorDoc>,
}

/// An artifact ready to push: the config, the component's descriptor, and
/// the manifest naming both.
#[derive(Debug, Clone)]
pub struct Package {
    /// The config blob.
    pub config: Vec<u8>,
    /// Its descriptor.
    pub config_descriptor: Descriptor,
    /// The component layer's descriptor (its bytes are the file's).
    pub layer: Descriptor,
    /// The manifest.
    pub manifest: RawManifest,
}

/// Packs a component in the CNCF layout. `created` is RFC 3339.
pub fn package(
    component: &[u8],
    facts: &ComponentFacts,
    created: &str,
    author: Option<&str>,
) -> Package {
    let layer_digest = digest::sha256_of(component);
    let config = serde_json::to_vec(&ConfigDoc {
        created,
        author,
        architecture: "wasm",
        // A component targets WASI preview 2 in the layout's terms, whatever
        // it imports (os must be a GOOS-like value; wasip1 is for modules).
        os: "wasip2",
        layer_digests: vec![layer_digest.to_string()],
        component: facts,
    })
    .expect("a config serializes");
    let config_digest = digest::sha256_of(&config);
    let layer = DescriptorDoc {
        media_type: LAYER_WASM.to_string(),
        digest: layer_digest.to_string(),
        size: component.len() as u64,
    };
    let config_doc = DescriptorDoc {
        media_type: CONFIG_V0.to_string(),
        digest: config_digest.to_string(),
        size: config.len() as u64,
    };
    let manifest = serde_json::to_vec(&ManifestOut {
        schema_version: 2,
        media_type: OCI_MANIFEST,
        config: config_doc,
        layers: vec![layer],
    })
    .expect("a manifest serializes");
    Package {
        config_descriptor: Descriptor::new(
            MediaType::from(CONFIG_V0),
            config.len() as u64,
            config_digest,
        ),
        layer: Descriptor::new(
            MediaType::from(LAYER_WASM),
            component.len() as u64,
            layer_digest,
        ),
        config,
        manifest: RawManifest::new(manifest, OCI_MANIFEST.to_string()),
    }
}

/// Checks that `bytes` are a WebAssembly component (not a core module),
/// by its preamble alone: nothing is compiled.
pub fn check_component(bytes: &[u8]) -> Result<(), String> {
    if !bytes.starts_with(b"\0asm") || bytes.len() < 8 {
        return Err("not a WebAssembly file".into());
    }
    // The preamble's version and layer: 1.0 layer 0 is a core module,
    // version 0x0d layer 1 a component.
    match bytes[4..8] {
        [0x0d, 0x00, 0x01, 0x00] => Ok(()),
        [0x01, 0x00, 0x00, 0x00] => Err(
            "a core WebAssembly module, not a component (make one with `wasm-tools component new`)"
                .into(),
        ),
        _ => Err(format!(
            "a WebAssembly binary of an unknown version or layer ({:02x?})",
            &bytes[4..8]
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const COMPONENT: &[u8] = b"\0asm\x0d\x00\x01\x00rest of it";

    fn manifest(config: &str, layers: &[&str]) -> RawManifest {
        let d = |mt: &str, n: u8| {
            serde_json::json!({
                "mediaType": mt,
                "digest": digest::sha256_of(&[n]).to_string(),
                "size": 10 + n as u64,
            })
        };
        let doc = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": d(config, 0),
            "layers": layers.iter().enumerate().map(|(i, mt)| d(mt, i as u8 + 1)).collect::<Vec<_>>(),
        });
        RawManifest::new(serde_json::to_vec(&doc).unwrap(), OCI_MANIFEST.into())
    }

    #[test]
    fn the_cncf_layout_gives_its_one_layer() {
        let (layout, layer) = wasm_layer(&manifest(CONFIG_V0, &[LAYER_WASM])).unwrap();
        assert_eq!(layout, Layout::Cncf);
        assert_eq!(layer.digest(), &digest::sha256_of(&[1]));
        assert_eq!(layer.size(), 11);
        assert_eq!(layer.media_type().to_string(), LAYER_WASM);
    }

    #[test]
    fn the_older_layouts_are_taken() {
        let (layout, layer) =
            wasm_layer(&manifest(CONFIG_WASM_TO_OCI, &[LAYER_WASM_TO_OCI])).unwrap();
        assert_eq!(layout, Layout::WasmToOci);
        assert_eq!(layer.size(), 11);
        // wasme's runtime configuration travels as a layer beside the module.
        let (layout, layer) =
            wasm_layer(&manifest(CONFIG_WASME, &[CONFIG_WASME, LAYER_WASME])).unwrap();
        assert_eq!(layout, Layout::Wasme);
        assert_eq!(layer.digest(), &digest::sha256_of(&[2]));
    }

    #[test]
    fn an_image_is_not_a_wasm_artifact() {
        let e = wasm_layer(&manifest(
            "application/vnd.oci.image.config.v1+json",
            &["application/vnd.oci.image.layer.v1.tar+gzip"],
        ))
        .unwrap_err();
        assert_eq!(
            e,
            "config media type application/vnd.oci.image.config.v1+json"
        );
        let index = RawManifest::new(
            br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}"#.to_vec(),
            "application/vnd.oci.image.index.v1+json".into(),
        );
        assert!(
            wasm_layer(&index)
                .unwrap_err()
                .starts_with("an image index")
        );
    }

    #[test]
    fn layers_must_be_one_component_of_the_layouts_type() {
        let two = wasm_layer(&manifest(CONFIG_V0, &[LAYER_WASM, LAYER_WASM])).unwrap_err();
        assert_eq!(
            two,
            "2 application/wasm layers; a plugin artifact holds one"
        );
        let none = wasm_layer(&manifest(CONFIG_V0, &[])).unwrap_err();
        assert_eq!(none, "no application/wasm layer");
        // A layer of another layout's type under this config is refused.
        let mixed = wasm_layer(&manifest(CONFIG_V0, &[LAYER_WASM_TO_OCI])).unwrap_err();
        assert!(
            mixed.contains("layer of media type application/vnd.wasm.content.layer.v1+wasm"),
            "{mixed}"
        );
        let extra = wasm_layer(&manifest(
            CONFIG_WASM_TO_OCI,
            &[LAYER_WASM_TO_OCI, "application/json"],
        ))
        .unwrap_err();
        assert!(extra.contains("application/json"), "{extra}");
    }

    #[test]
    fn references_must_be_pinned() {
        let hex = "a".repeat(64);
        let p = pinned(&format!("127.0.0.1:5000/plugins/stamp@sha256:{hex}")).unwrap();
        assert_eq!(p.digest.digest(), hex);
        assert_eq!(p.reference.path(), "plugins/stamp");
        assert_eq!(short_name(&p.reference), "stamp");
        assert!(is_reference(&format!("reg.example/x:v1@sha256:{hex}")));
        assert!(is_reference("reg.example/x:v1"));
        let e = pinned("127.0.0.1:5000/plugins/stamp:v1").unwrap_err();
        assert!(matches!(e, ArtifactError::NotPinned { .. }));
        assert!(
            e.to_string()
                .starts_with("127.0.0.1:5000/plugins/stamp:v1: not pinned by digest"),
            "{e}"
        );
        assert!(matches!(
            pinned("Bad/Name@sha256:00").unwrap_err(),
            ArtifactError::Reference { .. }
        ));
        assert!(!is_reference("plugins/stamp/stamp.wasm"));
        assert!(!is_reference("/abs/stamp.wasm"));
    }

    #[test]
    fn a_package_follows_the_cncf_layout() {
        let facts = ComponentFacts {
            exports: vec!["strata:plugin/config-transformer@0.1.0".into()],
            imports: vec!["strata:plugin/log@0.1.0".into()],
            target: Some("strata:plugin/config-transform@0.1.0".into()),
        };
        let p = package(COMPONENT, &facts, "2026-01-02T03:04:05Z", Some("A <a@b>"));
        let config: serde_json::Value = serde_json::from_slice(&p.config).unwrap();
        assert_eq!(config["architecture"], "wasm");
        assert_eq!(config["os"], "wasip2");
        assert_eq!(config["created"], "2026-01-02T03:04:05Z");
        assert_eq!(config["author"], "A <a@b>");
        assert_eq!(
            config["layerDigests"][0],
            digest::sha256_of(COMPONENT).to_string()
        );
        assert_eq!(
            config["component"]["target"],
            "strata:plugin/config-transform@0.1.0"
        );
        assert_eq!(config["component"]["imports"][0], "strata:plugin/log@0.1.0");
        assert_eq!(p.config_descriptor.digest(), &digest::sha256_of(&p.config));
        let m: serde_json::Value = serde_json::from_slice(&p.manifest.bytes).unwrap();
        assert_eq!(m["mediaType"], OCI_MANIFEST);
        assert_eq!(m["config"]["mediaType"], CONFIG_V0);
        assert!(m.get("artifactType").is_none());
        assert_eq!(p.manifest.digest, digest::sha256_of(&p.manifest.bytes));
        // What push writes, pull takes.
        let (layout, layer) = wasm_layer(&p.manifest).unwrap();
        assert_eq!((layout, layer), (Layout::Cncf, p.layer.clone()));
        // No author, no key.
        let q = package(COMPONENT, &ComponentFacts::default(), "x", None);
        let config: serde_json::Value = serde_json::from_slice(&q.config).unwrap();
        assert!(config.get("author").is_none());
        assert!(config["component"].get("target").is_none());
    }

    #[test]
    fn components_are_told_from_modules_by_their_preamble() {
        assert!(check_component(COMPONENT).is_ok());
        assert!(
            check_component(b"\0asm\x01\x00\x00\x00")
                .unwrap_err()
                .contains("core WebAssembly module")
        );
        assert_eq!(
            check_component(b"PK\x03\x04").unwrap_err(),
            "not a WebAssembly file"
        );
        assert!(check_component(b"\0asm\x0e\x00\x01\x00").is_err());
    }
}
