//! What unpacking is told and what it tells back.

use std::fmt;

use super::sys;

/// How to unpack.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnpackOptions {
    /// Use root's powers: set every entry's owner, create device nodes, set
    /// any extended attribute, create overlayfs whiteouts. Defaults to
    /// whether the process's effective user ID is 0.
    ///
    /// Without them, as rootless tools do: every entry belongs to the
    /// unpacking user ([`UnpackReport::owners_preserved`] is false), device
    /// nodes are skipped with a warning (a rootless container bind-mounts
    /// its devices instead), only `user.*` attributes are set (others are
    /// skipped with a warning), and an OCI whiteout in
    /// [`unpack_layer`](super::unpack_layer) is an error, since overlayfs
    /// whiteouts need root ([`flatten`](super::flatten) needs none).
    pub as_root: bool,
}

impl Default for UnpackOptions {
    fn default() -> Self {
        UnpackOptions {
            as_root: sys::is_root(),
        }
    }
}

/// What unpacking did, beyond writing what the layers said.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UnpackReport {
    /// Tar entries read, over every layer.
    pub entries: u64,
    /// Whether entries got the owners the archive gave them (only as root).
    pub owners_preserved: bool,
    /// What was skipped.
    pub warnings: Vec<UnpackWarning>,
}

/// Something an archive asked for that was skipped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnpackWarning {
    /// The caller's label for the layer.
    pub layer: String,
    /// The entry's name as the archive wrote it.
    pub entry: String,
    /// What was skipped.
    pub kind: WarningKind,
}

/// What was skipped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WarningKind {
    /// A character or block device was not created (not root).
    DeviceSkipped,
    /// An extended attribute was not set: not root, not supported by the
    /// file system, or in the overlayfs namespace (`trusted.overlay.*`), which
    /// only strata's own whiteout conversion writes. Reported once per
    /// attribute name and layer.
    XattrSkipped {
        /// The attribute's name.
        name: String,
        /// Why.
        reason: String,
    },
    /// An entry of a type strata does not write (its tar type flag).
    UnsupportedEntry {
        /// The tar type flag.
        type_flag: u8,
    },
}

impl fmt::Display for UnpackWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "layer {}: entry {:?}: ", self.layer, self.entry)?;
        match &self.kind {
            WarningKind::DeviceSkipped => write!(f, "device node skipped (not root)"),
            WarningKind::XattrSkipped { name, reason } => {
                write!(f, "extended attribute {name:?} skipped: {reason}")
            }
            WarningKind::UnsupportedEntry { type_flag } => {
                write!(f, "entry type {:?} skipped", char::from(*type_flag))
            }
        }
    }
}
