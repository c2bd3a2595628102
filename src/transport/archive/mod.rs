//! Image archives: docker's current `docker save` layout (an OCI layout
//! plus `manifest.json` and `repositories`) or a plain OCI archive on
//! output; those, the legacy layout (`<id>/layer.tar` and `<id>.json` named
//! by `manifest.json`) and plain OCI archives on input, compressed or not.

mod members;
mod read;
#[cfg(test)]
mod tests;
mod write;

use std::io;

pub use read::{ArchiveImage, ArchiveSource, Input};
pub use write::{ArchiveLayout, ArchiveSink, OutputCompression};

/// Errors reading or writing an archive. `archive` names the file (or
/// "standard input") so every message says which archive was at fault.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    /// The archive could not be opened.
    #[error("cannot open {archive}: {source}")]
    Open {
        /// The archive.
        archive: String,
        /// The error.
        #[source]
        source: io::Error,
    },
    /// Reading or writing failed.
    #[error("{archive}: {source}")]
    Io {
        /// The archive.
        archive: String,
        /// The error.
        #[source]
        source: io::Error,
    },
    /// The input is not an image archive at all.
    #[error("{archive} is not an image archive: {reason}")]
    NotAnArchive {
        /// The archive.
        archive: String,
        /// What was found instead.
        reason: String,
    },
    /// The tar stream is damaged.
    #[error("{archive} is corrupt: {reason}")]
    Corrupt {
        /// The archive.
        archive: String,
        /// What the tar reader said.
        reason: String,
    },
    /// The archive ends before a member's data does.
    #[error("{archive} is truncated: member {member} needs {need} bytes but only {have} are left")]
    Truncated {
        /// The archive.
        archive: String,
        /// The cut member.
        member: String,
        /// Bytes the member announces.
        need: u64,
        /// Bytes present.
        have: u64,
    },
    /// A member that a manifest names is not in the archive.
    #[error("{archive}: {what} names {member}, which the archive does not contain")]
    Missing {
        /// The archive.
        archive: String,
        /// Which document names it ("manifest.json", "manifest sha256:…").
        what: String,
        /// The missing member or blob.
        member: String,
    },
    /// A JSON member does not parse.
    #[error("{archive}: {member} is invalid: {reason}")]
    BadDocument {
        /// The archive.
        archive: String,
        /// The member.
        member: String,
        /// What the parser said.
        reason: String,
    },
    /// No image in the archive carries the name asked for.
    #[error("{archive}: no image named {reference:?} (the archive has {available})")]
    NoImage {
        /// The archive.
        archive: String,
        /// The name asked for.
        reference: String,
        /// The names it has, for the message.
        available: String,
    },
    /// No name was given and the archive holds several images.
    #[error("{archive} holds {count} images ({names}); name the one to use")]
    Ambiguous {
        /// The archive.
        archive: String,
        /// How many images.
        count: usize,
        /// Their names, for the message.
        names: String,
    },
    /// A name that the OCI annotation grammar does not allow.
    #[error("{archive}: invalid image name {name:?} for an OCI archive")]
    InvalidRefName {
        /// The archive.
        archive: String,
        /// The name.
        name: String,
    },
    /// The archive holds something strata cannot carry.
    #[error("{archive}: {reason}")]
    Unsupported {
        /// The archive.
        archive: String,
        /// What is unsupported.
        reason: String,
    },
}
