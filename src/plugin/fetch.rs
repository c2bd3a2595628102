//! Getting a plugin's component from an artifact pinned by digest: from
//! the store when a run kept it before (offline), else from its registry
//! (the manifest by digest, checked against it; the component verified
//! against its layer's digest as its bytes arrive), then kept.

use std::io::Read;

use crate::digest::{self, VerifyingReader};
use crate::image::{RawManifest, sniff_media_type};
use crate::transport::Source;
use crate::transport::registry::{Registries, Repository};
use crate::transport::store::Store;

use super::artifact::{self, ArtifactError, MAX_COMPONENT, Pinned};

/// The component of the artifact `reference` names (which must be pinned
/// by digest), from `store` when kept there, else from its registry.
pub fn fetch(
    registries: &Registries,
    store: &Store,
    reference: &str,
) -> Result<Vec<u8>, ArtifactError> {
    let pinned = artifact::pinned(reference)?;
    if let Some(bytes) = kept(store, &pinned) {
        return Ok(bytes);
    }
    let (manifest, bytes) = download(registries, reference, &pinned)?;
    // A store that cannot keep it costs a download next run, nothing more.
    let _ = store.keep_artifact(&manifest, &[&bytes]);
    Ok(bytes)
}

/// The component kept in the store, checked again against its digests.
fn kept(store: &Store, pinned: &Pinned) -> Option<Vec<u8>> {
    let bytes = store.kept_artifact(&pinned.digest)?;
    let media_type = sniff_media_type(&bytes, None);
    let manifest = RawManifest::new(bytes, media_type);
    let (_, layer) = artifact::wasm_layer(&manifest).ok()?;
    let component = store.read_blob(layer.digest()).ok()?;
    (component.len() as u64 == layer.size() && &digest::sha256_of(&component) == layer.digest())
        .then_some(component)
}

/// The artifact's manifest and component, from its registry.
fn download(
    registries: &Registries,
    reference: &str,
    pinned: &Pinned,
) -> Result<(RawManifest, Vec<u8>), ArtifactError> {
    let r = &pinned.reference;
    let client = registries
        .client(r.domain())
        .map_err(|source| ArtifactError::Settings {
            reference: reference.to_string(),
            source,
        })?;
    // Asked by digest, the client checks the bytes against it.
    let manifest = client
        .get_manifest(r.path(), pinned.digest.as_ref())
        .map_err(|source| ArtifactError::Registry {
            reference: reference.to_string(),
            source: Box::new(source),
        })?;
    let (_, layer) = artifact::wasm_layer(&manifest).map_err(|detail| ArtifactError::NotWasm {
        reference: reference.to_string(),
        detail,
    })?;
    if layer.size() > MAX_COMPONENT {
        return Err(ArtifactError::TooLarge {
            reference: reference.to_string(),
            size: layer.size(),
            max: MAX_COMPONENT,
        });
    }
    let repo = Repository::new(client, r.path());
    let stream = repo
        .open_blob(&layer)
        .map_err(|source| ArtifactError::Transport {
            reference: reference.to_string(),
            source: Box::new(source),
        })?;
    let mut bytes = Vec::with_capacity(layer.size() as usize);
    VerifyingReader::new(stream, layer.digest().clone(), layer.size())
        .read_to_end(&mut bytes)
        .map_err(|source| ArtifactError::Download {
            reference: reference.to_string(),
            digest: layer.digest().clone(),
            source,
        })?;
    Ok((manifest, bytes))
}
