//! Any OCI image layout directory, as skopeo's `oci:DIR[:REF]` names it:
//! `oci-layout`, `index.json` and `blobs/<alg>/<hex>`, whichever tool wrote
//! it. [`LayoutSource`] reads one; [`LayoutSink`] writes into one, making it
//! when missing, as a transaction.
//!
//! An image is named by the `org.opencontainers.image.ref.name` annotation of
//! its `index.json` entry. skopeo and umoci write the tag alone (`v1`),
//! strata's store the full reference; a lookup matches either.
//!
//! A sink keeps its own files under `.strata/` in the layout, the paths
//! strata's store uses, so that writing into a store directory cooperates
//! with the store: staged blobs in `.strata/ingest/` (same filesystem, so
//! they are renamed into place at commit) and `.strata/lock`, an advisory
//! lock held while blobs move in and `index.json` is rewritten. Other tools
//! ignore the directory.

mod disk;
mod sink;
mod source;

use std::collections::HashSet;
use std::io;
use std::path::{Path, PathBuf};

use oci_spec::image::Descriptor;

use crate::digest::Digest;
use crate::reference::Reference;
use crate::transport::store::{ANNOTATION_REF_NAME, entry_name};

pub use sink::LayoutSink;
pub use source::LayoutSource;

/// Errors reading or writing an OCI image layout. Each names the directory
/// or file at fault.
#[derive(Debug, thiserror::Error)]
pub enum LayoutError {
    /// A file operation failed.
    #[error("cannot {action} {path}: {source}")]
    Io {
        /// What was being done ("read", "create", "rename").
        action: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The error.
        #[source]
        source: io::Error,
    },
    /// The directory is not an OCI image layout (or one strata cannot read).
    #[error("{dir} is not an OCI image layout: {reason}")]
    NotALayout {
        /// The directory.
        dir: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// `oci-layout` or `index.json` does not parse.
    #[error("{path} is invalid: {reason}")]
    BadDocument {
        /// The file.
        path: PathBuf,
        /// What the parser said.
        reason: String,
    },
    /// No entry of `index.json` carries the name asked for.
    #[error("{dir}: no image named {reference:?} (the layout has {available})")]
    NotFound {
        /// The directory (or archive).
        dir: PathBuf,
        /// The name asked for.
        reference: String,
        /// The names it has, for the message.
        available: String,
    },
    /// No name was given and the layout holds several images.
    #[error("{dir} holds {count} images ({names}); name the one to use")]
    Ambiguous {
        /// The directory (or archive).
        dir: PathBuf,
        /// How many images.
        count: usize,
        /// Their names, for the message.
        names: String,
    },
    /// No name was given and the layout holds no image.
    #[error("{dir} holds no image")]
    Empty {
        /// The directory (or archive).
        dir: PathBuf,
    },
    /// A name that the OCI annotation grammar does not allow.
    #[error(
        "invalid image name {name:?} for an OCI layout: use letters, digits and . _ - : @ + between them, and / between components"
    )]
    InvalidRefName {
        /// The name.
        name: String,
    },
    /// An index lists another index as a child.
    #[error("{dir}: index {digest} nests another index, which strata does not copy")]
    NestedIndex {
        /// The directory.
        dir: PathBuf,
        /// The outer index.
        digest: Digest,
    },
}

impl LayoutError {
    fn io(action: &'static str, path: &Path, source: io::Error) -> Self {
        LayoutError::Io {
            action,
            path: path.to_path_buf(),
            source,
        }
    }
}

/// The contents of a fresh `oci-layout` file.
pub const OCI_LAYOUT_FILE: &[u8] = br#"{"imageLayoutVersion":"1.0.0"}"#;

/// Where a blob lives in a layout rooted at `dir`.
pub fn blob_path(dir: &Path, digest: &Digest) -> PathBuf {
    dir.join("blobs")
        .join(digest.algorithm().as_ref())
        .join(digest.digest())
}

/// True when `name` fits the grammar of `org.opencontainers.image.ref.name`
/// (the one skopeo checks for `oci:DIR:REF`): components separated by `/`,
/// each runs of letters and digits joined by one of `-._:@+` or by `--`.
pub fn is_ref_name(name: &str) -> bool {
    !name.is_empty() && name.split('/').all(is_ref_component)
}

fn is_ref_component(c: &str) -> bool {
    let bytes = c.as_bytes();
    let (Some(first), Some(last)) = (bytes.first(), bytes.last()) else {
        return false;
    };
    if !first.is_ascii_alphanumeric() || !last.is_ascii_alphanumeric() {
        return false;
    }
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i].is_ascii_alphanumeric() {
            i += 1;
            continue;
        }
        let start = i;
        while i < bytes.len() && !bytes[i].is_ascii_alphanumeric() {
            i += 1;
        }
        let sep = &c[start..i];
        if !(sep == "--" || (sep.len() == 1 && "-._:@+".contains(sep))) {
            return false;
        }
    }
    true
}

/// An image a layout or archive offers, as far as choosing one by name goes.
#[derive(Debug, Clone)]
pub(crate) struct Candidate<'a> {
    /// `org.opencontainers.image.ref.name` values, as written.
    pub ref_names: Vec<String>,
    /// Full names (from `io.containerd.image.name`, a full ref.name, or
    /// `manifest.json`).
    pub names: Vec<Reference>,
    /// The manifest or index digest.
    pub digest: &'a Digest,
}

impl<'a> Candidate<'a> {
    /// A candidate for one `index.json` entry.
    pub fn of_entry(d: &'a Descriptor) -> Candidate<'a> {
        let ref_names = d
            .annotations()
            .as_ref()
            .and_then(|a| a.get(ANNOTATION_REF_NAME))
            .cloned()
            .into_iter()
            .collect();
        Candidate {
            ref_names,
            names: entry_name(d).into_iter().collect(),
            digest: d.digest(),
        }
    }

    /// How the image is named in messages: the ref name one would type,
    /// with the full name beside it when that says more.
    fn label(&self) -> String {
        match (self.ref_names.first(), self.names.first()) {
            (Some(r), Some(n)) if *r != n.to_string() => format!("{r} ({n})"),
            (Some(r), _) => r.clone(),
            (None, Some(n)) => n.to_string(),
            (None, None) => format!("unnamed {}", self.digest),
        }
    }
}

/// Picks the image `reference` names among `candidates` and returns its
/// position: an exact ref.name first, then a reference equal once
/// normalised (`debian:bookworm` finds `docker.io/library/debian:bookworm`),
/// then a manifest digest. Without a reference, the only image (entries
/// with one digest count once).
pub(crate) fn choose(
    dir: &Path,
    candidates: &[Candidate<'_>],
    reference: Option<&str>,
) -> Result<usize, LayoutError> {
    let Some(wanted) = reference else {
        let digests: HashSet<&Digest> = candidates.iter().map(|c| c.digest).collect();
        return match digests.len() {
            0 => Err(LayoutError::Empty {
                dir: dir.to_path_buf(),
            }),
            1 => Ok(0),
            count => Err(LayoutError::Ambiguous {
                dir: dir.to_path_buf(),
                count,
                names: labels(candidates),
            }),
        };
    };
    if let Some(i) = candidates
        .iter()
        .position(|c| c.ref_names.iter().any(|n| n == wanted))
    {
        return Ok(i);
    }
    if let Ok(r) = Reference::parse(wanted) {
        let r = r.with_default_tag();
        if let Some(i) = candidates.iter().position(|c| c.names.contains(&r)) {
            return Ok(i);
        }
    }
    if let Some(i) = candidates.iter().position(|c| c.digest.as_ref() == wanted) {
        return Ok(i);
    }
    Err(LayoutError::NotFound {
        dir: dir.to_path_buf(),
        reference: wanted.to_string(),
        available: if candidates.is_empty() {
            "no images".into()
        } else {
            labels(candidates)
        },
    })
}

fn labels(candidates: &[Candidate<'_>]) -> String {
    let mut out: Vec<String> = Vec::new();
    for c in candidates {
        let l = c.label();
        if !out.contains(&l) {
            out.push(l);
        }
    }
    out.join(", ")
}

#[cfg(test)]
pub(crate) mod testing;
#[cfg(test)]
mod tests;
