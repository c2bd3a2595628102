//! The local image store: an OCI image layout on disk that needs no daemon.
//!
//! Layout under the root:
//! - `oci-layout`, `index.json`, `blobs/sha256/…`: a plain OCI image layout,
//!   so skopeo and umoci read it. Each name is a descriptor in `index.json`
//!   whose annotations carry the full reference (`io.containerd.image.name`
//!   and `org.opencontainers.image.ref.name`); an image with no name left is
//!   kept as one descriptor without them (docker's dangling `<none>`).
//! - `.strata/`: strata's own bookkeeping, ignored by other tools: the lock
//!   file, the ingest area (same filesystem, so a verified blob is renamed
//!   into place), small metadata files (layer sizes, tag times), and the
//!   manifests of plugin artifacts kept for offline use.
//!
//! Writers stage blobs in the ingest area, verified and fsynced, then take the
//! exclusive lock only to rename them into place and replace `index.json`
//! atomically. Garbage collection runs under the same lock, so it never
//! removes a blob a concurrent writer is about to reference.

mod artifacts;
mod blobs;
mod check;
mod gc;
mod images;
mod index;
mod lease;
mod lock;
mod meta;
mod mounts;
mod ops;
mod sink;

use std::io;
use std::path::{Path, PathBuf};

pub use blobs::temp_path;
pub use check::{CheckReport, Problem};
pub use gc::GcReport;
pub use images::{LookupError, StoredImage, Target, lookup_in};
pub use index::{ANNOTATION_IMAGE_NAME, ANNOTATION_REF_NAME, NameChange, entry_name, named};
pub use lease::Lease;
pub use meta::{LayerInfo, TransformRecord};
pub use mounts::{MountKind, MountRecord};
pub use ops::{Removal, RemoveError, TagError};
pub use sink::StoreSink;

use crate::digest::Digest;
use crate::image::ImageError;

/// Errors from the local store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A file operation failed.
    #[error("store: cannot {action} {path}: {source}")]
    Io {
        /// What was being done ("read", "create", "rename").
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The error.
        #[source]
        source: io::Error,
    },
    /// `index.json` cannot be parsed; nothing was changed.
    #[error("store: {path} is corrupt: {reason}; the store was left as it is")]
    CorruptIndex {
        /// The index file.
        path: PathBuf,
        /// What the parser said.
        reason: String,
    },
    /// A blob the index needs is missing.
    #[error("store: blob {0} is missing from the store")]
    MissingBlob(Digest),
    /// A blob's bytes are not what its name says.
    #[error("store: {what} {digest}: {reason}")]
    Corrupt {
        /// "layer", "config" or "manifest".
        what: &'static str,
        /// The blob's digest.
        digest: Digest,
        /// What did not match.
        reason: String,
    },
    /// A stored document does not parse.
    #[error("store: {0}")]
    Image(#[from] Box<ImageError>),
    /// A blob needed by a commit was removed by another process meanwhile.
    #[error(
        "store: blob {0} was removed by another strata process during this operation; run it again"
    )]
    Raced(Digest),
}

impl From<ImageError> for StoreError {
    fn from(e: ImageError) -> Self {
        StoreError::Image(Box::new(e))
    }
}

impl StoreError {
    fn io(action: &'static str, path: &Path, source: io::Error) -> Self {
        StoreError::Io {
            action,
            path: path.to_path_buf(),
            source,
        }
    }
}

/// A local image store rooted at a directory.
#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
}

impl Store {
    /// Opens the store at `root`, creating an empty layout when there is none.
    pub fn open(root: impl Into<PathBuf>) -> Result<Store, StoreError> {
        let root: PathBuf = root.into();
        // Absolute, so paths the store hands out (mount points, overlay
        // layers) mean the same from any working directory.
        let root = std::path::absolute(&root).map_err(|e| StoreError::io("resolve", &root, e))?;
        let store = Store { root };
        store.init()?;
        Ok(store)
    }

    /// The store's root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn private(&self) -> PathBuf {
        self.root.join(".strata")
    }

    fn init(&self) -> Result<(), StoreError> {
        for dir in [
            self.root.join("blobs/sha256"),
            self.private().join("ingest"),
            self.private().join("layers"),
            self.private().join("images"),
            self.leases_dir(),
        ] {
            std::fs::create_dir_all(&dir).map_err(|e| StoreError::io("create", &dir, e))?;
        }
        let layout = self.root.join("oci-layout");
        if !layout.exists() {
            blobs::write_atomic(
                &self.private().join("ingest"),
                &layout,
                br#"{"imageLayoutVersion":"1.0.0"}"#,
            )?;
        }
        let index = self.index_path();
        if !index.exists() {
            let _guard = self.lock()?;
            if !index.exists() {
                blobs::write_atomic(
                    &self.private().join("ingest"),
                    &index,
                    br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}"#,
                )?;
            }
        }
        Ok(())
    }

    fn index_path(&self) -> PathBuf {
        self.root.join("index.json")
    }
}
