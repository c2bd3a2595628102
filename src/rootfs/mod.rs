//! Layer tar streams: what a layer holds, scanned or written to disk.
//!
//! - [`scan_layer`] runs while a layer streams into the store: diff ID and
//!   docker's unpacked size in one pass.
//! - [`unpack_layer`] writes one layer into a directory meant as an
//!   overlayfs layer: OCI whiteouts become overlayfs ones (a `0:0` character
//!   device, the `trusted.overlay.opaque` attribute).
//! - [`flatten`] applies a stack of layers into one tree, OCI whiteouts
//!   deleting what lower layers put there.
//! - [`ExpectedTree`] foresees from a layer's stream what [`unpack_layer`]
//!   writes, and compares a directory with it (`system check` on the cache).
//! - [`LayerCache`] unpacks layers in parallel into a directory per diff ID,
//!   each complete or absent, shared safely between strata processes.
//!
//! # Safety against hostile archives
//!
//! Nothing an archive says can make the unpacker write outside its
//! destination. Every name is made relative first: a leading `/` is dropped
//! (as docker does) and a `..` component anywhere is refused. Then every
//! operation is made relative to a directory descriptor reached from the
//! destination one component at a time with `openat(O_DIRECTORY |
//! O_NOFOLLOW)`, and every final step is a call that does not follow a
//! symlink in its last component (`O_CREAT|O_EXCL|O_NOFOLLOW`, `mkdirat`,
//! `symlinkat`, `linkat` without `AT_SYMLINK_FOLLOW`, `mknodat`,
//! `fchownat`/`utimensat` with `AT_SYMLINK_NOFOLLOW`, attributes through the
//! open descriptor or `lsetxattr` on `/proc/self/fd/N/NAME`). So the check and
//! the write are the same walk: there is no window between a check on a path
//! and a use of it.
//!
//! A symlink in the middle of a name is refused, not resolved: an entry
//! `a/passwd` after `a -> /etc` is an error, wherever `a` points, and so is a
//! hard link whose target's path crosses a symlink (or a whiteout whose
//! directory is one). Resolving links inside the root (as containerd's
//! `RootPath` does) would be safe too, but it silently rewrites where the
//! archive said a file goes, and layers from real builders never name a path
//! through a symlink: they are walked from a file system, where such a path
//! is not an entry. (A per-layer unpack sees only its own layer: a symlink
//! from a lower layer is invisible there, and the entry makes a real
//! directory in the upper layer, as docker's overlay2 driver does.) Symlinks
//! themselves may point anywhere: their target is data, never followed.
//!
//! Every refusal is a [`RootfsError::Refused`] naming the layer (a label the
//! caller gives, usually its digest) and the entry as the archive wrote it.

mod apply;
mod cache;
pub(crate) mod path;
mod report;
mod scan;
mod sys;
#[cfg(test)]
mod testing;

use std::io;
use std::path::PathBuf;

pub use apply::{
    CompareOptions, Difference, EntryKind, ExpectedTree, Mismatch, flatten, unpack_layer,
};
pub use cache::{CacheOptions, CacheRequest, CachedLayer, LayerCache, LayerOpener, unpack_cached};
pub use report::{UnpackOptions, UnpackReport, UnpackWarning, WarningKind};
pub use scan::{LayerStats, scan_layer};

use crate::digest::Digest;

/// Errors reading, scanning or unpacking layers.
#[derive(Debug, thiserror::Error)]
pub enum RootfsError {
    /// The stream could not be decompressed or read (scanning).
    #[error("cannot read the layer stream: {0}")]
    Read(#[source] io::Error),
    /// The decompressed stream is not a valid tar archive (scanning).
    #[error("the layer is not a valid tar archive (after {entries} entries): {source}")]
    Tar {
        /// Entries read before the failure.
        entries: u64,
        /// What the tar reader said.
        #[source]
        source: io::Error,
    },
    /// A layer being unpacked could not be opened, decompressed or read.
    #[error("layer {layer}: cannot read the layer stream: {source}")]
    LayerRead {
        /// The caller's label for the layer.
        layer: String,
        /// What failed.
        #[source]
        source: io::Error,
    },
    /// A layer being unpacked is not a valid tar archive.
    #[error("layer {layer}: not a valid tar archive (after {entries} entries): {source}")]
    LayerTar {
        /// The caller's label for the layer.
        layer: String,
        /// Entries read before the failure.
        entries: u64,
        /// What the tar reader said.
        #[source]
        source: io::Error,
    },
    /// An entry would land outside the destination, or through a symlink,
    /// or is otherwise something strata will not write.
    #[error("layer {layer}: refusing entry {entry:?}: {reason}")]
    Refused {
        /// The caller's label for the layer.
        layer: String,
        /// The entry's name as the archive wrote it.
        entry: String,
        /// Why.
        reason: Refusal,
    },
    /// An entry needs privileges the unpacker does not have (or was told not
    /// to use).
    #[error("layer {layer}: entry {entry:?}: {what} needs root")]
    NeedsRoot {
        /// The caller's label for the layer.
        layer: String,
        /// The entry's name as the archive wrote it.
        entry: String,
        /// What could not be done.
        what: &'static str,
    },
    /// A file system call failed while writing an entry.
    #[error("layer {layer}: entry {entry:?}: cannot {op}: {source}")]
    Entry {
        /// The caller's label for the layer.
        layer: String,
        /// The entry's name as the archive wrote it.
        entry: String,
        /// What was being done.
        op: &'static str,
        /// What the system said.
        #[source]
        source: io::Error,
    },
    /// The layer's content does not hash to the diff ID it was asked for.
    #[error("layer {layer}: its content has diff ID {actual}, not {expected}")]
    DiffIdMismatch {
        /// The caller's label for the layer.
        layer: String,
        /// The diff ID the caller gave.
        expected: Digest,
        /// The digest of what was read.
        actual: Digest,
    },
    /// A cache was asked for a layer by a digest that is not sha256.
    #[error("layer {layer}: diff ID {diff_id} is not a sha256 digest")]
    BadDiffId {
        /// The caller's label for the layer.
        layer: String,
        /// The digest given.
        diff_id: String,
    },
    /// The destination or the cache could not be prepared or updated.
    #[error("cannot {op} {}: {source}", path.display())]
    Io {
        /// What was being done.
        op: &'static str,
        /// Where.
        path: PathBuf,
        /// What the system said.
        #[source]
        source: io::Error,
    },
}

impl RootfsError {
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        RootfsError::Io {
            op,
            path: path.into(),
            source,
        }
    }
}

/// Why an entry was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The name has a `..` component.
    #[error("its name has a `..` component")]
    DotDot,
    /// The name has a NUL byte (only a PAX record can carry one).
    #[error("its name has a NUL byte")]
    NulByte,
    /// A directory on the way is a symlink.
    #[error("{0:?} on its path is a symlink, and strata never writes through one")]
    SymlinkParent(String),
    /// A directory on the way is a file, device or anything but a directory.
    #[error("{0:?} on its path is not a directory")]
    NotADirectory(String),
    /// A non-directory entry names the destination itself.
    #[error("it would replace the root directory")]
    Root,
    /// A whiteout without a name, or naming `.` or `..`.
    #[error("it is a whiteout of nothing")]
    EmptyWhiteout,
    /// A hard link whose target is refused.
    #[error("its hard link target {target:?} is refused: {reason}")]
    LinkTarget {
        /// The target as the archive wrote it.
        target: String,
        /// Why the target is refused.
        reason: Box<Refusal>,
    },
    /// A hard link whose target is not in the destination.
    #[error("its hard link target {0:?} does not exist (in this layer or below)")]
    LinkTargetMissing(String),
    /// A hard link to a directory.
    #[error("its hard link target {0:?} is a directory")]
    LinkToDirectory(String),
    /// A hard link to itself.
    #[error("it is a hard link to itself")]
    LinkToItself,
}
