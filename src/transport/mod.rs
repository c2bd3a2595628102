//! Places images come from and go to. Each is a [`Source`], a [`Sink`] or
//! both; the copy engine ([`crate::copy`]) joins them.

pub mod address;
pub mod archive;
pub mod layout;
pub mod registry;
pub mod store;

use std::io::{self, Read};

use oci_spec::image::Descriptor;

use crate::digest::{Digest, VerifyingReader};
use crate::image::{ImageError, RawManifest};
use crate::progress::BlobKind;
use crate::reference::Reference;

/// Errors any source or sink can report.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// The place has no blob with that digest.
    #[error("{place}: blob {digest} not found")]
    BlobNotFound {
        /// Which source or sink.
        place: String,
        /// The missing digest.
        digest: Digest,
    },
    /// A blob's bytes did not match its digest, size or diff ID.
    #[error("{place}: {what} {digest}: {reason}")]
    Corrupt {
        /// Which source or sink.
        place: String,
        /// "layer", "config" or "manifest".
        what: &'static str,
        /// The blob's digest.
        digest: Digest,
        /// What did not match.
        reason: String,
    },
    /// A document in the place is invalid.
    #[error("{place}: {source}")]
    Image {
        /// Which source or sink.
        place: String,
        /// The document error.
        #[source]
        source: Box<ImageError>,
    },
    /// A registry failed.
    #[error(transparent)]
    Registry(Box<registry::RegistryError>),
    /// An index has no image for the platform asked for.
    #[error("{place}: no image for platform {wanted} (the index has {available})")]
    NoPlatform {
        /// The repository.
        place: String,
        /// The platform asked for.
        wanted: String,
        /// The platforms it has.
        available: String,
    },
    /// The local store failed.
    #[error(transparent)]
    Store(#[from] store::StoreError),
    /// An archive could not be read or written.
    #[error(transparent)]
    Archive(#[from] archive::ArchiveError),
    /// The operation was cancelled (a pipeline step's timeout passed).
    #[error("cancelled")]
    Cancelled,
    /// An OCI image layout could not be read or written.
    #[error(transparent)]
    Layout(#[from] layout::LayoutError),
    /// An I/O error, with what was being done.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The error.
        #[source]
        source: io::Error,
    },
}

impl TransportError {
    /// Wraps an I/O error with what was being done.
    pub fn io(context: impl Into<String>, source: io::Error) -> Self {
        TransportError::Io {
            context: context.into(),
            source,
        }
    }

    /// True when trying again may succeed (a dropped connection, a busy
    /// server). Local files and bad content never are. Whether someone
    /// already retried it shows in [`TransportError::retries_exhausted`].
    pub fn is_retryable(&self) -> bool {
        match self {
            TransportError::Registry(e) => e.is_retryable(),
            _ => false,
        }
    }

    /// True when the registry client already spent its retries on this
    /// failure: retrying it again would multiply the requests.
    pub fn retries_exhausted(&self) -> bool {
        match self {
            TransportError::Registry(e) => e.retries_exhausted(),
            _ => false,
        }
    }

    /// How long the registry asked to wait before trying again.
    pub fn retry_after(&self) -> Option<std::time::Duration> {
        match self {
            TransportError::Registry(e) => e.retry_after(),
            _ => None,
        }
    }

    /// What a failed read of a blob's content stream means. A registry
    /// source's failure, carried inside the I/O error, comes back out as
    /// itself, so whether it is retryable (and already retried) survives; a
    /// digest or size mismatch (`InvalidData`, or a stream that ends before
    /// its size) is corruption, made by `corrupt` from the reason; anything
    /// else is an I/O error reading the source, in `context`.
    pub fn from_content(
        e: io::Error,
        corrupt: impl FnOnce(String) -> TransportError,
        context: impl FnOnce() -> String,
    ) -> TransportError {
        let e = match e.downcast::<registry::RegistryError>() {
            Ok(r) => return TransportError::Registry(Box::new(r)),
            Err(e) => e,
        };
        match e.kind() {
            io::ErrorKind::InvalidData | io::ErrorKind::UnexpectedEof => corrupt(e.to_string()),
            _ => TransportError::io(context(), e),
        }
    }
}

/// How messages name a blob of this kind.
pub fn blob_noun(kind: &BlobKind) -> &'static str {
    match kind {
        BlobKind::Layer { .. } => "layer",
        BlobKind::Config => "config",
        BlobKind::Manifest => "manifest",
    }
}

/// Whether a sink has a blob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Presence {
    /// It must be sent.
    Absent,
    /// It is there.
    Present,
    /// It is there now: linked from another repository without its bytes.
    Mounted {
        /// The repository it came from.
        from: String,
    },
}

impl Presence {
    /// `Present` or `Absent`.
    pub fn from_bool(there: bool) -> Presence {
        if there {
            Presence::Present
        } else {
            Presence::Absent
        }
    }
}

/// A blob reader handed from a source to a sink.
pub type BlobReader<'a> = Box<dyn Read + Send + 'a>;

/// A place images are read from.
pub trait Source: Send + Sync {
    /// How the place is named in messages ("archive /tmp/x.tar").
    fn place(&self) -> String;

    /// Opens a blob as a byte stream. The stream is not verified here; the
    /// copy engine (or [`Source::read_small_blob`]) checks digest and size.
    fn open_blob(&self, descriptor: &Descriptor) -> Result<BlobReader<'_>, TransportError>;

    /// True when the place checked every blob's digest as it was stored
    /// (a content-addressed store), so copying out need not hash again.
    fn verified_at_rest(&self) -> bool {
        false
    }

    /// The blob as a file of exactly its size, when the place keeps blobs
    /// as files: a sink may then copy it inside the kernel.
    fn blob_file(&self, _descriptor: &Descriptor) -> Option<std::fs::File> {
        None
    }

    /// Reads a small blob (a manifest or config) whole, verified.
    fn read_small_blob(&self, descriptor: &Descriptor) -> Result<Vec<u8>, TransportError> {
        const LIMIT: u64 = 64 << 20;
        let digest = descriptor.digest().clone();
        if descriptor.size() > LIMIT {
            return Err(TransportError::Corrupt {
                place: self.place(),
                what: "document",
                digest,
                reason: format!(
                    "announces {} bytes, more than a manifest or config may have",
                    descriptor.size()
                ),
            });
        }
        let mut out = Vec::with_capacity(descriptor.size() as usize);
        VerifyingReader::new(
            self.open_blob(descriptor)?,
            digest.clone(),
            descriptor.size(),
        )
        .read_to_end(&mut out)
        .map_err(|e| {
            TransportError::from_content(
                e,
                |reason| TransportError::Corrupt {
                    place: self.place(),
                    what: "document",
                    digest: digest.clone(),
                    reason,
                },
                || format!("{}: read {digest}", self.place()),
            )
        })?;
        Ok(out)
    }
}

/// A place images are written to.
///
/// Call order is part of the contract: blobs first ([`Sink::put_blob`],
/// each skipped when [`Sink::has_blob`] says so), then each image's
/// manifest ([`Sink::put_manifest`]), children before the index that names
/// them; then [`Sink::commit`] once. Nothing is visible to readers of the
/// place before commit; a sink dropped without commit leaves the place as
/// it was.
pub trait Sink: Send + Sync {
    /// How the place is named in messages.
    fn place(&self) -> String;

    /// How many blobs may be written at once (1 for a sequential stream).
    fn parallelism(&self) -> usize;

    /// True when the sink computes and checks digests itself, so the copy
    /// engine need not hash a second time.
    fn verifies_digests(&self) -> bool;

    /// Whether the blob is already there (and need not be sent). A registry
    /// may also obtain it here without its bytes, by a cross-repository mount.
    fn has_blob(&self, descriptor: &Descriptor) -> Result<Presence, TransportError>;

    /// Writes a blob from `content`; `progress` is told the bytes written so far.
    fn put_blob(
        &self,
        descriptor: &Descriptor,
        kind: &BlobKind,
        content: &mut (dyn Read + Send),
        progress: &(dyn Fn(u64) + Sync),
    ) -> Result<(), TransportError>;

    /// Records a manifest (or index) and the names it should carry.
    fn put_manifest(
        &self,
        manifest: &RawManifest,
        names: &[Reference],
    ) -> Result<(), TransportError>;

    /// Writes a blob from a file already checked to have the blob's size
    /// and trusted to have its digest ([`Source::verified_at_rest`]). Sinks
    /// that can copy file to file inside the kernel override this.
    fn put_blob_file(
        &self,
        descriptor: &Descriptor,
        kind: &BlobKind,
        file: std::fs::File,
        progress: &(dyn Fn(u64) + Sync),
    ) -> Result<(), TransportError> {
        let mut content = file;
        self.put_blob(descriptor, kind, &mut content, progress)
    }

    /// Makes everything written visible at once.
    fn commit(&self) -> Result<(), TransportError>;
}
