//! Manifest calls beyond fetching and storing: asking whether a tag
//! exists and what it names (one HEAD, the cheapest way to tell that a
//! mirror is up to date), deleting by digest, and the OCI 1.1 referrers
//! API with its tag-scheme fallback.

use std::io::Read;

use reqwest::StatusCode;
use reqwest::header::{ACCEPT, CONTENT_TYPE};

use crate::digest::{self, Digest};
use crate::image::RawManifest;

use super::auth::repository_scope;
use super::client::{Client, MANIFEST_ACCEPT};
use super::error::RegistryError;

/// What a HEAD on a manifest says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestHead {
    /// The manifest's digest (`Docker-Content-Digest`).
    pub digest: Digest,
    /// Its media type.
    pub media_type: String,
    /// Its size in bytes.
    pub size: u64,
}

/// The media type of an OCI image index, which the referrers API answers.
const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";

impl Client {
    /// What `reference` (a tag or digest) names in `repository`, from one
    /// HEAD request; `None` when it does not exist. A registry that sends
    /// no `Docker-Content-Digest` is asked with a GET instead.
    pub fn head_manifest(
        &self,
        repository: &str,
        reference: &str,
    ) -> Result<Option<ManifestHead>, RegistryError> {
        let what = format!("check manifest {repository}:{reference}");
        let scope = repository_scope(repository, &["pull"]);
        let resp = self.send(
            &what,
            &scope,
            &|h, base| {
                h.head(format!("{base}/v2/{repository}/manifests/{reference}"))
                    .header(ACCEPT, MANIFEST_ACCEPT)
            },
            &|s| s.is_success() || s == StatusCode::NOT_FOUND,
        )?;
        if resp.status() == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        let header = |name: &str| {
            resp.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let media_type = header(CONTENT_TYPE.as_str())
            .map(|v| v.split(';').next().unwrap_or(&v).trim().to_string())
            .unwrap_or_default();
        let size = header("content-length")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        match header("docker-content-digest").and_then(|d| digest::parse(&d).ok()) {
            Some(digest) => Ok(Some(ManifestHead {
                digest,
                media_type,
                size,
            })),
            None => {
                let m = self.get_manifest(repository, reference)?;
                Ok(Some(ManifestHead {
                    size: m.bytes.len() as u64,
                    digest: m.digest,
                    media_type: m.media_type,
                }))
            }
        }
    }

    /// Deletes the manifest `digest` from `repository` (with every tag
    /// naming it: the distribution API deletes by digest only).
    pub fn delete_manifest(&self, repository: &str, digest: &Digest) -> Result<(), RegistryError> {
        let what = format!("delete manifest {repository}@{digest}");
        let scope = repository_scope(repository, &["pull", "push", "delete"]);
        self.send(
            &what,
            &scope,
            &|h, base| h.delete(format!("{base}/v2/{repository}/manifests/{digest}")),
            &|s| s.is_success(),
        )?;
        Ok(())
    }

    /// The manifests that name `subject` as their subject, as an OCI index
    /// from the referrers API; `None` when the registry has no referrers
    /// API (it answers 404 or 405), so the caller falls back to the
    /// `sha256-<hex>` tag.
    pub fn referrers(
        &self,
        repository: &str,
        subject: &Digest,
    ) -> Result<Option<RawManifest>, RegistryError> {
        let what = format!("list referrers of {repository}@{subject}");
        let scope = repository_scope(repository, &["pull"]);
        let resp = self.send(
            &what,
            &scope,
            &|h, base| {
                h.get(format!("{base}/v2/{repository}/referrers/{subject}"))
                    .header(ACCEPT, OCI_INDEX)
            },
            &|s| {
                s.is_success() || s == StatusCode::NOT_FOUND || s == StatusCode::METHOD_NOT_ALLOWED
            },
        )?;
        let is_index = resp
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with(OCI_INDEX));
        if !resp.status().is_success() || !is_index {
            return Ok(None);
        }
        let mut bytes = Vec::new();
        resp.take(16 << 20)
            .read_to_end(&mut bytes)
            .map_err(|e| self.bad(&what, format!("cannot read the answer: {e}")))?;
        Ok(Some(RawManifest::new(bytes, OCI_INDEX.to_string())))
    }
}

/// The tag under which registries without the referrers API keep the
/// referrers index of `subject` (the OCI 1.1 fallback scheme).
pub fn referrers_tag(subject: &Digest) -> String {
    format!("{}-{}", subject.algorithm(), subject.digest())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fallback_tag_scheme() {
        let d = digest::sha256_of(b"x");
        assert_eq!(referrers_tag(&d), format!("sha256-{}", d.digest()));
    }
}
