//! Progress events. The library never prints: it reports what it does
//! here, and the command line decides how to show it.

use crate::digest::Digest;

/// What a blob is to the image being copied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BlobKind {
    /// A filesystem layer with its expected diff ID.
    Layer {
        /// Digest of the uncompressed tar, from the image config.
        diff_id: Digest,
    },
    /// An image config.
    Config,
    /// A manifest or index.
    Manifest,
}

/// One thing that happened while copying.
#[derive(Debug, Clone)]
pub enum Event {
    /// A blob will be transferred (the sink lacks it). Sent for every such
    /// blob in image order, before any transfer starts.
    BlobQueued {
        /// The blob's digest.
        digest: Digest,
        /// What the blob is.
        kind: BlobKind,
        /// Its size in bytes.
        size: u64,
    },
    /// A blob transfer starts.
    BlobStart {
        /// The blob's digest.
        digest: Digest,
        /// What the blob is.
        kind: BlobKind,
        /// Its size in bytes.
        size: u64,
    },
    /// More bytes of a blob moved.
    BlobProgress {
        /// The blob's digest.
        digest: Digest,
        /// Bytes moved so far.
        done: u64,
        /// Total bytes.
        size: u64,
    },
    /// A blob is in place. For a blob the sink already had (or mounted),
    /// sent in image order before any transfer starts.
    BlobDone {
        /// The blob's digest.
        digest: Digest,
        /// What the blob is.
        kind: BlobKind,
        /// How the sink came to have it.
        outcome: Outcome,
    },
    /// Every blob is in place; the manifests are written next.
    WritingManifests,
}

/// How a blob reached the sink.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Its bytes were copied.
    Moved,
    /// The sink already had it; nothing moved.
    Present,
    /// The sink linked it from another repository of the same registry.
    Mounted {
        /// The repository it came from.
        from: String,
    },
}

/// Receives progress events; implementations must be cheap and thread-safe,
/// since blob transfers report from several threads.
pub trait Progress: Send + Sync {
    /// Handles one event.
    fn event(&self, event: Event);
}

/// Ignores every event.
pub struct Silent;

impl Progress for Silent {
    fn event(&self, _: Event) {}
}
