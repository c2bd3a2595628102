//! The tree a layer unpacks to, foreseen from its stream without writing
//! anything, and compared with a directory that is said to hold it (a layer
//! in the store's cache).
//!
//! [`ExpectedTree::read`] follows [`unpack_layer`](super::unpack_layer) as
//! the cache runs it (as root, into an overlay layer directory), entry by
//! entry and with the same rules: a later entry replaces an earlier one, a
//! directory over a directory merges, `.wh.NAME` becomes a `0:0` character
//! device and `.wh..wh..opq` the `trusted.overlay.opaque=y` attribute, both
//! sparing what the same layer wrote, directories the archive skips are
//! made on the way, and an entry the unpacker refuses ends the layer. It
//! keeps names and metadata, and for a regular file its size and SHA-256,
//! never its content: memory grows with the entry count (as the unpacker's
//! own record of the names it wrote does), not with the layer's size.
//!
//! [`ExpectedTree::compare`] then walks the directory through descriptors,
//! never following a symlink, in path order (names sorted bytewise, a
//! directory before its content), and stops at the first difference: an
//! entry missing, one the layer does not have, another kind, size, content
//! (hashed), mode, symlink target, device numbers, modification time, hard
//! links that are not the layer's, an opaque attribute that is not the
//! layer's; owners and the overlay attribute only when asked (reading
//! `trusted.*` needs root, and only root's unpacking keeps owners).
//!
//! Left out, because the unpacker does not decide them: access times; the
//! owner, mode and times of a directory the archive does not list (made on
//! the way, under the unpacking process's umask); the time of the layer's
//! root (renamed into the cache after it is set); extended attributes other
//! than the opaque marker (the unpacker skips those the file system
//! refuses, so their absence proves nothing).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::ffi::{CStr, CString, OsStr, OsString};
use std::fmt;
use std::fs::File;
use std::io::{self, BufRead, Read};
use std::os::fd::AsFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use sha2::{Digest as _, Sha256};
use tar::EntryType;

use super::{COPY_BUFFER, Meta, OPAQUE_XATTR, decode, fill, read_meta, read_owner, shown};
use crate::digest::{Digest, HashingReader};
use crate::rootfs::path::{Special, normalize, special};
use crate::rootfs::sys::{self, Time};
use crate::rootfs::{Refusal, RootfsError};

/// What an entry is, as messages name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    /// A directory.
    Directory,
    /// A regular file.
    File,
    /// A symbolic link.
    Symlink,
    /// A character device.
    CharDevice,
    /// A block device.
    BlockDevice,
    /// A named pipe.
    Fifo,
    /// An overlayfs whiteout (a `0:0` character device).
    Whiteout,
    /// A socket (never written by the unpacker).
    Socket,
}

impl fmt::Display for EntryKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            EntryKind::Directory => "a directory",
            EntryKind::File => "a regular file",
            EntryKind::Symlink => "a symlink",
            EntryKind::CharDevice => "a character device",
            EntryKind::BlockDevice => "a block device",
            EntryKind::Fifo => "a fifo",
            EntryKind::Whiteout => "a whiteout (a 0:0 character device)",
            EntryKind::Socket => "a socket",
        })
    }
}

/// How an entry of the directory differs from the layer's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mismatch {
    /// The layer has an entry the directory lacks.
    Missing {
        /// What the layer has there.
        expected: EntryKind,
    },
    /// The directory has an entry the layer does not.
    Extra {
        /// What is there.
        found: EntryKind,
    },
    /// Another kind of entry.
    Kind {
        /// What is there.
        found: EntryKind,
        /// What the layer has.
        expected: EntryKind,
    },
    /// A regular file of another size.
    Size {
        /// Its size.
        found: u64,
        /// The layer's.
        expected: u64,
    },
    /// A regular file of the same size and other bytes.
    Content,
    /// Other permission bits (with setuid, setgid and sticky).
    Mode {
        /// Its mode.
        found: u32,
        /// The layer's.
        expected: u32,
    },
    /// Another owner.
    Owner {
        /// Its user and group.
        found: (u32, u32),
        /// The layer's.
        expected: (u32, u32),
    },
    /// Another modification time, as seconds and nanoseconds.
    Mtime {
        /// Its time.
        found: (i64, u32),
        /// The layer's.
        expected: (i64, u32),
    },
    /// A symlink pointing elsewhere.
    LinkTarget {
        /// Its target.
        found: String,
        /// The layer's.
        expected: String,
    },
    /// A device with other numbers.
    Device {
        /// Its major and minor numbers.
        found: (u32, u32),
        /// The layer's.
        expected: (u32, u32),
    },
    /// `trusted.overlay.opaque` is not what the layer makes it.
    Opaque {
        /// Its value, if set.
        found: Option<String>,
        /// Whether the layer makes the directory opaque.
        expected: bool,
    },
    /// The layer makes this a hard link of an earlier path; it is not.
    NotLinked {
        /// The earlier path.
        with: PathBuf,
    },
    /// This is a hard link of an earlier path; the layer does not link them.
    Linked {
        /// The earlier path.
        with: PathBuf,
    },
    /// The entry cannot be read.
    Unreadable(String),
    /// The unpacker refuses the layer at this entry: no tree comes from it.
    Unpackable(String),
}

/// A path (relative to the layer's root) shown as the layer's absolute path.
fn in_layer(p: &Path) -> String {
    format!("/{}", p.display())
}

impl fmt::Display for Mismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Mismatch::Missing { expected } => write!(f, "missing: the layer has {expected} here"),
            Mismatch::Extra { found } => write!(f, "{found} the layer does not have"),
            Mismatch::Kind { found, expected } => {
                write!(f, "{found} where the layer has {expected}")
            }
            Mismatch::Size { found, expected } => {
                write!(f, "{found} bytes where the layer has {expected}")
            }
            Mismatch::Content => write!(f, "its content differs from the layer's"),
            Mismatch::Mode { found, expected } => {
                write!(f, "mode {found:o} where the layer says {expected:o}")
            }
            Mismatch::Owner { found, expected } => write!(
                f,
                "owner {}:{} where the layer says {}:{}",
                found.0, found.1, expected.0, expected.1
            ),
            Mismatch::Mtime { found, expected } => write!(
                f,
                "modified at {}.{:09} where the layer says {}.{:09} (seconds since 1970)",
                found.0, found.1, expected.0, expected.1
            ),
            Mismatch::LinkTarget { found, expected } => {
                write!(
                    f,
                    "symlink to {found:?} where the layer's points to {expected:?}"
                )
            }
            Mismatch::Device { found, expected } => write!(
                f,
                "device {}:{} where the layer has {}:{}",
                found.0, found.1, expected.0, expected.1
            ),
            Mismatch::Opaque { found, expected } => match (found, expected) {
                (None, _) => write!(
                    f,
                    "not opaque (no trusted.overlay.opaque) where the layer makes it so"
                ),
                (Some(v), true) => write!(f, "trusted.overlay.opaque is {v:?}, not \"y\""),
                (Some(v), false) => write!(
                    f,
                    "opaque (trusted.overlay.opaque={v:?}) where the layer does not make it so"
                ),
            },
            Mismatch::NotLinked { with } => write!(
                f,
                "not a hard link of {}, as the layer makes it",
                in_layer(with)
            ),
            Mismatch::Linked { with } => write!(
                f,
                "a hard link of {}, which the layer does not make it",
                in_layer(with)
            ),
            Mismatch::Unreadable(reason) => write!(f, "cannot be read: {reason}"),
            Mismatch::Unpackable(reason) => write!(
                f,
                "the unpacker refuses this entry of the layer ({reason}), so no tree comes from it"
            ),
        }
    }
}

/// The first entry of a directory that is not as its layer has it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Difference {
    /// The entry, relative to the layer's root (empty for the root).
    pub path: PathBuf,
    /// What differs.
    pub what: Mismatch,
}

impl fmt::Display for Difference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", in_layer(&self.path), self.what)
    }
}

/// What [`ExpectedTree::compare`] looks at beyond the tree's shape,
/// content, modes and times.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CompareOptions {
    /// Compare owners (only root's unpacking sets them).
    pub owners: bool,
    /// Compare `trusted.overlay.opaque` (only root can read it).
    pub overlay_attrs: bool,
}

impl Default for CompareOptions {
    fn default() -> Self {
        let root = sys::is_root();
        CompareOptions {
            owners: root,
            overlay_attrs: root,
        }
    }
}

/// Metadata the unpacker sets on an entry.
#[derive(Debug, Clone, Copy)]
struct Attrs {
    mode: u32,
    uid: u32,
    gid: u32,
    mtime: Time,
}

impl Attrs {
    fn of(m: &Meta) -> Attrs {
        Attrs {
            mode: m.mode,
            uid: m.uid,
            gid: m.gid,
            mtime: m.mtime,
        }
    }
}

/// An inode that is not a directory (hard links share one).
#[derive(Debug)]
enum Leaf {
    File {
        size: u64,
        sha256: [u8; 32],
        attrs: Attrs,
    },
    Symlink {
        target: Vec<u8>,
        attrs: Attrs,
    },
    Device {
        kind: EntryKind,
        major: u32,
        minor: u32,
        attrs: Attrs,
    },
    Whiteout {
        uid: u32,
        gid: u32,
    },
}

impl Leaf {
    fn kind(&self) -> EntryKind {
        match self {
            Leaf::File { .. } => EntryKind::File,
            Leaf::Symlink { .. } => EntryKind::Symlink,
            Leaf::Device { kind, .. } => *kind,
            Leaf::Whiteout { .. } => EntryKind::Whiteout,
        }
    }
}

#[derive(Debug, Default)]
struct Dir {
    children: BTreeMap<OsString, Node>,
    opaque: bool,
    /// Set when the archive lists the directory (else it was made on the way).
    listed: Option<Attrs>,
}

#[derive(Debug)]
enum Node {
    Dir(Dir),
    /// An index into the leaves.
    Leaf(usize),
}

/// The tree [`unpack_layer`](super::unpack_layer) writes for a layer, as
/// root, into a layer directory of the cache: see the module's notes.
#[derive(Debug)]
pub struct ExpectedTree {
    root: Dir,
    leaves: Vec<Leaf>,
    /// How many paths name each leaf.
    links: Vec<u32>,
    diff_id: Digest,
    /// The entry the unpacker refuses (as the archive wrote it), and why.
    refused: Option<(String, String)>,
}

/// Why foreseeing stopped.
enum Stop {
    /// The unpacker would refuse the entry: the reason.
    Refused(String),
    /// The archive is broken.
    Tar(io::Error),
}

impl From<io::Error> for Stop {
    fn from(e: io::Error) -> Self {
        Stop::Tar(e)
    }
}

impl From<Refusal> for Stop {
    fn from(r: Refusal) -> Self {
        Stop::Refused(r.to_string())
    }
}

impl ExpectedTree {
    /// Reads a whole layer (compressed or not) and foresees what unpacking
    /// it writes. A broken archive is an error; an entry the unpacker would
    /// refuse is not (the tree then matches no directory), and the stream
    /// is read to its end all the same, so the diff ID is the layer's.
    pub fn read<R: BufRead + Send>(layer: R, label: &str) -> Result<ExpectedTree, RootfsError> {
        let (_, decoded) = decode(layer, label)?;
        let mut hashing = HashingReader::new(decoded);
        let mut builder = Builder::default();
        let mut refused = None;
        let mut count = 0u64;
        let tar_err = |entries, source| RootfsError::LayerTar {
            layer: label.to_string(),
            entries,
            source,
        };
        {
            let mut archive = tar::Archive::new(&mut hashing);
            let entries = archive.entries().map_err(|e| tar_err(count, e))?;
            for entry in entries {
                let mut entry = entry.map_err(|e| tar_err(count, e))?;
                count += 1;
                match builder.entry(&mut entry) {
                    Ok(()) => {}
                    Err(Stop::Tar(e)) => return Err(tar_err(count, e)),
                    Err(Stop::Refused(reason)) => {
                        let name = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
                        refused = Some((name, reason));
                        break;
                    }
                }
            }
        }
        io::copy(&mut hashing, &mut io::sink()).map_err(|source| RootfsError::LayerRead {
            layer: label.to_string(),
            source,
        })?;
        let (diff_id, _, _) = hashing.finish();
        let mut links = vec![0u32; builder.leaves.len()];
        count_links(&builder.root, &mut links);
        Ok(ExpectedTree {
            root: builder.root,
            leaves: builder.leaves,
            links,
            diff_id,
            refused,
        })
    }

    /// The layer's diff ID (the digest of its uncompressed tar).
    pub fn diff_id(&self) -> &Digest {
        &self.diff_id
    }

    /// Compares the directory `dir` with the tree: the first difference in
    /// path order, or `None` when they agree. An error means `dir` itself
    /// could not be opened; what cannot be read inside it is a difference.
    pub fn compare(
        &self,
        dir: &Path,
        options: &CompareOptions,
    ) -> Result<Option<Difference>, RootfsError> {
        if let Some((entry, reason)) = &self.refused {
            return Ok(Some(Difference {
                path: PathBuf::from(entry.trim_start_matches('/')),
                what: Mismatch::Unpackable(reason.clone()),
            }));
        }
        let root = sys::open_root(dir).map_err(|e| RootfsError::io("open", dir, e))?;
        let file =
            sys::open_dir_read(root.as_fd(), c".").map_err(|e| RootfsError::io("open", dir, e))?;
        let st = sys::stat_at(root.as_fd(), c".")
            .map_err(|e| RootfsError::io("inspect", dir, e))?
            .ok_or_else(|| RootfsError::io("inspect", dir, io::ErrorKind::NotFound.into()))?;
        let mut walk = Comparer {
            tree: self,
            options: *options,
            by_leaf: HashMap::new(),
            by_inode: HashMap::new(),
            buf: vec![0u8; COPY_BUFFER],
        };
        Ok(walk.dir(&file, &st, &self.root, Path::new("")).err())
    }
}

fn count_links(dir: &Dir, links: &mut [u32]) {
    for node in dir.children.values() {
        match node {
            Node::Dir(d) => count_links(d, links),
            Node::Leaf(i) => links[*i] += 1,
        }
    }
}

/// Where a walk down the foreseen tree ended.
enum Reach<'a> {
    Dir(&'a mut Dir),
    Missing,
    Symlink(PathBuf),
    NotDir(PathBuf),
}

/// The unpacker's walk: one component at a time, never through a symlink,
/// making missing directories when `create`, and (when `create`) replacing
/// a whiteout this layer made by an opaque directory.
fn walk<'a>(
    root: &'a mut Dir,
    leaves: &[Leaf],
    whited: &HashSet<PathBuf>,
    dir: &Path,
    create: bool,
) -> Reach<'a> {
    let mut cur = root;
    let mut prefix = PathBuf::new();
    for comp in dir.iter() {
        prefix.push(comp);
        let make = match cur.children.get(comp) {
            Some(Node::Dir(_)) => None,
            None if create => Some(false),
            None => return Reach::Missing,
            Some(Node::Leaf(i)) => match leaves[*i] {
                Leaf::Symlink { .. } => return Reach::Symlink(prefix),
                _ if create && whited.contains(&prefix) => Some(true),
                _ => return Reach::NotDir(prefix),
            },
        };
        if let Some(opaque) = make {
            let made = Dir {
                opaque,
                ..Dir::default()
            };
            cur.children.insert(comp.to_os_string(), Node::Dir(made));
        }
        let Some(Node::Dir(next)) = cur.children.get_mut(comp) else {
            unreachable!("a directory was just found or made there");
        };
        cur = next;
    }
    Reach::Dir(cur)
}

/// Follows the unpacker's entry handling (`Applier` in overlay mode, as
/// root) on the foreseen tree.
#[derive(Default)]
struct Builder {
    root: Dir,
    leaves: Vec<Leaf>,
    touched: HashSet<PathBuf>,
    whited: HashSet<PathBuf>,
    buf: Vec<u8>,
}

impl Builder {
    fn entry<R: Read>(&mut self, entry: &mut tar::Entry<R>) -> Result<(), Stop> {
        let raw = entry.path_bytes().into_owned();
        let Some(kind) = super::entry_kind(entry.header(), &raw) else {
            return Ok(());
        };
        let rel = normalize(&raw)?;
        if let Some(first) = rel.iter().next()
            && special(first.as_bytes()) == Special::AufsMeta
        {
            return Ok(());
        }
        let Some(name) = rel.file_name() else {
            if kind != EntryType::Directory {
                return Err(Refusal::Root.into());
            }
            self.root.listed = Some(Attrs::of(&read_meta(entry)?));
            return Ok(());
        };
        match special(name.as_bytes()) {
            Special::None => {}
            Special::AufsMeta => return Ok(()),
            Special::Opaque => return self.opaque(&rel),
            Special::Whiteout(target) => {
                let target = OsStr::from_bytes(target).to_os_string();
                let (uid, gid) = read_owner(entry)?;
                return self.whiteout(&rel, &target, uid, gid);
            }
        }
        match kind {
            EntryType::Directory => {
                let attrs = Attrs::of(&read_meta(entry)?);
                self.make_dir(&rel, attrs)?;
            }
            EntryType::Regular | EntryType::Continuous | EntryType::GNUSparse => {
                let attrs = Attrs::of(&read_meta(entry)?);
                let (size, sha256) = self.digest(entry)?;
                self.put(
                    &rel,
                    Leaf::File {
                        size,
                        sha256,
                        attrs,
                    },
                )?;
            }
            EntryType::Symlink => {
                let attrs = Attrs::of(&read_meta(entry)?);
                let target = entry.link_name_bytes().unwrap_or_default().into_owned();
                if target.contains(&0) {
                    return Err(Refusal::NulByte.into());
                }
                self.put(&rel, Leaf::Symlink { target, attrs })?;
            }
            EntryType::Link => {
                let target = entry.link_name_bytes().unwrap_or_default().into_owned();
                self.hardlink(&rel, &target)?;
            }
            EntryType::Char | EntryType::Block | EntryType::Fifo => {
                let attrs = Attrs::of(&read_meta(entry)?);
                let (kind, major, minor) = match kind {
                    EntryType::Fifo => (EntryKind::Fifo, 0, 0),
                    other => {
                        let h = entry.header();
                        let major = h.device_major()?.unwrap_or(0);
                        let minor = h.device_minor()?.unwrap_or(0);
                        let kind = if other == EntryType::Char {
                            EntryKind::CharDevice
                        } else {
                            EntryKind::BlockDevice
                        };
                        (kind, major, minor)
                    }
                };
                self.put(
                    &rel,
                    Leaf::Device {
                        kind,
                        major,
                        minor,
                        attrs,
                    },
                )?;
            }
            // Skipped with a warning by the unpacker.
            _ => return Ok(()),
        }
        let mut p = rel;
        while self.touched.insert(p.clone()) && p.pop() {}
        Ok(())
    }

    /// Size and SHA-256 of an entry's content, read through a fixed buffer.
    fn digest<R: Read>(&mut self, data: &mut R) -> io::Result<(u64, [u8; 32])> {
        self.buf.resize(COPY_BUFFER, 0);
        let mut hasher = Sha256::new();
        let mut size = 0u64;
        loop {
            let n = fill(data, &mut self.buf)?;
            if n == 0 {
                break;
            }
            hasher.update(&self.buf[..n]);
            size += n as u64;
        }
        Ok((size, hasher.finalize().into()))
    }

    /// Clears the way for an entry at `rel` (a directory there is kept
    /// when `keep_dir`); gives its parent and whether a directory was kept.
    fn place(&mut self, rel: &Path, keep_dir: bool) -> Result<(&mut Dir, bool), Stop> {
        let parent = rel.parent().unwrap_or(Path::new(""));
        let dir = match walk(&mut self.root, &self.leaves, &self.whited, parent, true) {
            Reach::Dir(d) => d,
            Reach::Symlink(p) => return Err(Refusal::SymlinkParent(shown(&p)).into()),
            Reach::NotDir(p) => return Err(Refusal::NotADirectory(shown(&p)).into()),
            Reach::Missing => return Err(Refusal::NotADirectory(shown(parent)).into()),
        };
        let name = rel.file_name().unwrap_or_default();
        let kept = match dir.children.get(name) {
            None => false,
            Some(Node::Dir(_)) if keep_dir => true,
            Some(_) => {
                dir.children.remove(name);
                false
            }
        };
        Ok((dir, kept))
    }

    fn put(&mut self, rel: &Path, leaf: Leaf) -> Result<(), Stop> {
        let index = self.leaves.len();
        self.leaves.push(leaf);
        let (dir, _) = self.place(rel, false)?;
        let name = rel.file_name().unwrap_or_default().to_os_string();
        dir.children.insert(name, Node::Leaf(index));
        Ok(())
    }

    fn make_dir(&mut self, rel: &Path, attrs: Attrs) -> Result<(), Stop> {
        let opaque = self.whited.contains(rel);
        let (dir, kept) = self.place(rel, true)?;
        let name = rel.file_name().unwrap_or_default();
        match dir.children.get_mut(name) {
            Some(Node::Dir(d)) if kept => d.listed = Some(attrs),
            _ => {
                let made = Dir {
                    children: BTreeMap::new(),
                    opaque,
                    listed: Some(attrs),
                };
                dir.children.insert(name.to_os_string(), Node::Dir(made));
            }
        }
        Ok(())
    }

    fn hardlink(&mut self, rel: &Path, raw_target: &[u8]) -> Result<(), Stop> {
        let target = String::from_utf8_lossy(raw_target).into_owned();
        let target_rel = normalize(raw_target).map_err(|reason| Refusal::LinkTarget {
            target: target.clone(),
            reason: Box::new(reason),
        })?;
        let Some(target_name) = target_rel.file_name() else {
            return Err(Refusal::LinkToDirectory(target).into());
        };
        if target_rel == rel {
            return Err(Refusal::LinkToItself.into());
        }
        let parent = target_rel.parent().unwrap_or(Path::new(""));
        let index = match walk(&mut self.root, &self.leaves, &self.whited, parent, false) {
            Reach::Dir(d) => match d.children.get(target_name) {
                None => return Err(Refusal::LinkTargetMissing(target).into()),
                Some(Node::Dir(_)) => return Err(Refusal::LinkToDirectory(target).into()),
                Some(Node::Leaf(i)) => *i,
            },
            Reach::Symlink(p) => {
                return Err(Refusal::LinkTarget {
                    target,
                    reason: Box::new(Refusal::SymlinkParent(shown(&p))),
                }
                .into());
            }
            Reach::Missing | Reach::NotDir(_) => {
                return Err(Refusal::LinkTargetMissing(target).into());
            }
        };
        // Clearing the way for `rel` would remove the target (inside it),
        // or walking to `rel` would go through it: the link cannot be made.
        if target_rel.starts_with(rel) || rel.starts_with(&target_rel) {
            return Err(Refusal::LinkTargetMissing(target).into());
        }
        let (dir, _) = self.place(rel, false)?;
        let name = rel.file_name().unwrap_or_default().to_os_string();
        dir.children.insert(name, Node::Leaf(index));
        Ok(())
    }

    /// `DIR/.wh..wh..opq`.
    fn opaque(&mut self, marker: &Path) -> Result<(), Stop> {
        let dir_rel = marker.parent().unwrap_or(Path::new(""));
        match walk(&mut self.root, &self.leaves, &self.whited, dir_rel, true) {
            Reach::Dir(d) => {
                d.opaque = true;
                Ok(())
            }
            Reach::Symlink(p) => Err(Refusal::SymlinkParent(shown(&p)).into()),
            Reach::NotDir(p) => Err(Refusal::NotADirectory(shown(&p)).into()),
            Reach::Missing => Err(Refusal::NotADirectory(shown(dir_rel)).into()),
        }
    }

    /// `DIR/.wh.NAME`.
    fn whiteout(&mut self, marker: &Path, target: &OsStr, uid: u32, gid: u32) -> Result<(), Stop> {
        if target.is_empty() || target == "." || target == ".." {
            return Err(Refusal::EmptyWhiteout.into());
        }
        let dir_rel = marker.parent().unwrap_or(Path::new(""));
        let target_rel = dir_rel.join(target);
        let spared = self.touched.contains(&target_rel);
        let index = self.leaves.len();
        let dir = match walk(&mut self.root, &self.leaves, &self.whited, dir_rel, true) {
            Reach::Dir(d) => d,
            Reach::Symlink(p) => return Err(Refusal::SymlinkParent(shown(&p)).into()),
            Reach::NotDir(p) => return Err(Refusal::NotADirectory(shown(&p)).into()),
            Reach::Missing => return Err(Refusal::NotADirectory(shown(dir_rel)).into()),
        };
        if spared {
            // The same layer wrote it: only a directory's lower content goes.
            if let Some(Node::Dir(d)) = dir.children.get_mut(target) {
                d.opaque = true;
            }
            return Ok(());
        }
        dir.children
            .insert(target.to_os_string(), Node::Leaf(index));
        self.leaves.push(Leaf::Whiteout { uid, gid });
        self.whited.insert(target_rel);
        Ok(())
    }
}

/// Walks a directory beside the foreseen tree.
struct Comparer<'t> {
    tree: &'t ExpectedTree,
    options: CompareOptions,
    /// Per leaf met on disk: its inode and first path.
    by_leaf: HashMap<usize, ((u64, u64), PathBuf)>,
    /// Per inode met: its leaf and first path.
    by_inode: HashMap<(u64, u64), (usize, PathBuf)>,
    buf: Vec<u8>,
}

type Found = Result<(), Difference>;

fn differs(path: &Path, what: Mismatch) -> Found {
    Err(Difference {
        path: path.to_path_buf(),
        what,
    })
}

fn unreadable(path: &Path, e: io::Error) -> Difference {
    Difference {
        path: path.to_path_buf(),
        what: Mismatch::Unreadable(e.to_string()),
    }
}

fn kind_of(st: &rustix::fs::Stat) -> EntryKind {
    match rustix::fs::FileType::from_raw_mode(st.st_mode) {
        rustix::fs::FileType::Directory => EntryKind::Directory,
        rustix::fs::FileType::Symlink => EntryKind::Symlink,
        rustix::fs::FileType::CharacterDevice => EntryKind::CharDevice,
        rustix::fs::FileType::BlockDevice => EntryKind::BlockDevice,
        rustix::fs::FileType::Fifo => EntryKind::Fifo,
        rustix::fs::FileType::Socket => EntryKind::Socket,
        _ => EntryKind::File,
    }
}

fn mode_of(st: &rustix::fs::Stat) -> u32 {
    st.st_mode & 0o7777
}

fn mtime_of(st: &rustix::fs::Stat) -> (i64, u32) {
    #[allow(clippy::unnecessary_cast)]
    (st.st_mtime as i64, st.st_mtime_nsec as u32)
}

fn device_of(st: &rustix::fs::Stat) -> (u32, u32) {
    #[allow(clippy::unnecessary_cast)]
    let dev = st.st_rdev as u64;
    (rustix::fs::major(dev), rustix::fs::minor(dev))
}

impl Comparer<'_> {
    fn dir(&mut self, file: &File, st: &rustix::fs::Stat, node: &Dir, rel: &Path) -> Found {
        let is_root = rel.as_os_str().is_empty();
        match node.listed {
            Some(a) => self.attrs(st, &a, rel, true)?,
            // The cache makes a layer's root 0755 unless the layer lists it.
            None if is_root && mode_of(st) != 0o755 => {
                return differs(
                    rel,
                    Mismatch::Mode {
                        found: mode_of(st),
                        expected: 0o755,
                    },
                );
            }
            None => {}
        }
        if self.options.overlay_attrs {
            let found = sys::fgetxattr(file, OPAQUE_XATTR).map_err(|e| unreadable(rel, e))?;
            let agrees = match &found {
                Some(v) => node.opaque && v.as_slice() == b"y",
                None => !node.opaque,
            };
            if !agrees {
                return differs(
                    rel,
                    Mismatch::Opaque {
                        found: found.map(|v| String::from_utf8_lossy(&v).into_owned()),
                        expected: node.opaque,
                    },
                );
            }
        }
        let mut names = sys::list(file).map_err(|e| unreadable(rel, e))?;
        names.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
        let mut disk = names.into_iter().peekable();
        let mut model = node.children.iter().peekable();
        loop {
            let order = match (disk.peek(), model.peek()) {
                (None, None) => break,
                (Some(_), None) => std::cmp::Ordering::Less,
                (None, Some(_)) => std::cmp::Ordering::Greater,
                (Some(d), Some((m, _))) => d.as_bytes().cmp(m.as_bytes()),
            };
            match order {
                std::cmp::Ordering::Less => {
                    let name = disk.next().unwrap_or_default();
                    let path = rel.join(OsStr::from_bytes(name.as_bytes()));
                    let found = match sys::stat_at(file.as_fd(), &name) {
                        Ok(Some(st)) => kind_of(&st),
                        Ok(None) => continue,
                        Err(e) => return Err(unreadable(&path, e)),
                    };
                    return differs(&path, Mismatch::Extra { found });
                }
                std::cmp::Ordering::Greater => {
                    let Some((name, node)) = model.next() else {
                        return Ok(());
                    };
                    let expected = match node {
                        Node::Dir(_) => EntryKind::Directory,
                        Node::Leaf(i) => self.tree.leaves[*i].kind(),
                    };
                    return differs(&rel.join(name), Mismatch::Missing { expected });
                }
                std::cmp::Ordering::Equal => {
                    let (Some(name), Some((_, node))) = (disk.next(), model.next()) else {
                        return Ok(());
                    };
                    self.child(file, &name, node, rel)?;
                }
            }
        }
        // Last: a change inside a directory changes its time too, and the
        // change itself says more.
        match node.listed {
            Some(a) if !is_root => self.mtime(st, a.mtime, rel),
            _ => Ok(()),
        }
    }

    fn child(&mut self, parent: &File, name: &CString, node: &Node, rel: &Path) -> Found {
        let path = rel.join(OsStr::from_bytes(name.as_bytes()));
        let st = match sys::stat_at(parent.as_fd(), name) {
            Ok(Some(st)) => st,
            Ok(None) => {
                let expected = match node {
                    Node::Dir(_) => EntryKind::Directory,
                    Node::Leaf(i) => self.tree.leaves[*i].kind(),
                };
                return differs(&path, Mismatch::Missing { expected });
            }
            Err(e) => return Err(unreadable(&path, e)),
        };
        let found = kind_of(&st);
        match node {
            Node::Dir(d) => {
                if found != EntryKind::Directory {
                    return differs(
                        &path,
                        Mismatch::Kind {
                            found,
                            expected: EntryKind::Directory,
                        },
                    );
                }
                let sub =
                    sys::open_dir_read(parent.as_fd(), name).map_err(|e| unreadable(&path, e))?;
                self.dir(&sub, &st, d, &path)
            }
            Node::Leaf(i) => self.leaf(parent, name, &st, *i, &path),
        }
    }

    fn leaf(
        &mut self,
        parent: &File,
        name: &CStr,
        st: &rustix::fs::Stat,
        index: usize,
        path: &Path,
    ) -> Found {
        let leaf = &self.tree.leaves[index];
        let found = kind_of(st);
        let expected = leaf.kind();
        let same_kind = found == expected
            || (expected == EntryKind::Whiteout && found == EntryKind::CharDevice);
        if !same_kind {
            return differs(path, Mismatch::Kind { found, expected });
        }
        #[allow(clippy::unnecessary_cast)]
        let (inode, nlink) = ((st.st_dev as u64, st.st_ino as u64), st.st_nlink as u64);
        if self.tree.links[index] > 1 || nlink > 1 {
            if let Some((first_inode, first)) = self.by_leaf.get(&index) {
                if *first_inode != inode {
                    return differs(
                        path,
                        Mismatch::NotLinked {
                            with: first.clone(),
                        },
                    );
                }
                // The same inode, checked at its first path.
                return Ok(());
            }
            if let Some((other, first)) = self.by_inode.get(&inode)
                && *other != index
            {
                return differs(
                    path,
                    Mismatch::Linked {
                        with: first.clone(),
                    },
                );
            }
            self.by_leaf.insert(index, (inode, path.to_path_buf()));
            self.by_inode.insert(inode, (index, path.to_path_buf()));
        }
        match leaf {
            Leaf::File {
                size,
                sha256,
                attrs,
            } => {
                #[allow(clippy::unnecessary_cast)]
                let found = st.st_size as u64;
                if found != *size {
                    return differs(
                        path,
                        Mismatch::Size {
                            found,
                            expected: *size,
                        },
                    );
                }
                if self.hash(parent, name).map_err(|e| unreadable(path, e))? != *sha256 {
                    return differs(path, Mismatch::Content);
                }
                self.attrs(st, attrs, path, true)?;
                self.mtime(st, attrs.mtime, path)
            }
            Leaf::Symlink { target, attrs } => {
                let found =
                    sys::readlink_at(parent.as_fd(), name).map_err(|e| unreadable(path, e))?;
                if found != *target {
                    return differs(
                        path,
                        Mismatch::LinkTarget {
                            found: String::from_utf8_lossy(&found).into_owned(),
                            expected: String::from_utf8_lossy(target).into_owned(),
                        },
                    );
                }
                // A symlink has no mode of its own.
                self.attrs(st, attrs, path, false)?;
                self.mtime(st, attrs.mtime, path)
            }
            Leaf::Device {
                kind,
                major,
                minor,
                attrs,
            } => {
                if *kind != EntryKind::Fifo && device_of(st) != (*major, *minor) {
                    return differs(
                        path,
                        Mismatch::Device {
                            found: device_of(st),
                            expected: (*major, *minor),
                        },
                    );
                }
                self.attrs(st, attrs, path, true)?;
                self.mtime(st, attrs.mtime, path)
            }
            Leaf::Whiteout { uid, gid } => {
                if device_of(st) != (0, 0) {
                    return differs(
                        path,
                        Mismatch::Device {
                            found: device_of(st),
                            expected: (0, 0),
                        },
                    );
                }
                let attrs = Attrs {
                    mode: 0,
                    uid: *uid,
                    gid: *gid,
                    mtime: Time { secs: 0, nanos: 0 },
                };
                self.attrs(st, &attrs, path, true)
            }
        }
    }

    /// Mode (unless `with_mode` is false) and, when asked, owner.
    fn attrs(&self, st: &rustix::fs::Stat, a: &Attrs, path: &Path, with_mode: bool) -> Found {
        if with_mode && mode_of(st) != a.mode {
            return differs(
                path,
                Mismatch::Mode {
                    found: mode_of(st),
                    expected: a.mode,
                },
            );
        }
        // u32::MAX tells the unpacker to leave that ID as it was.
        let uid_differs = a.uid != u32::MAX && st.st_uid != a.uid;
        let gid_differs = a.gid != u32::MAX && st.st_gid != a.gid;
        if self.options.owners && (uid_differs || gid_differs) {
            return differs(
                path,
                Mismatch::Owner {
                    found: (st.st_uid, st.st_gid),
                    expected: (a.uid, a.gid),
                },
            );
        }
        Ok(())
    }

    fn mtime(&self, st: &rustix::fs::Stat, expected: Time, path: &Path) -> Found {
        let found = mtime_of(st);
        let expected = (expected.secs, expected.nanos);
        if found != expected {
            return differs(path, Mismatch::Mtime { found, expected });
        }
        Ok(())
    }

    /// SHA-256 of a regular file's content, read through a fixed buffer.
    fn hash(&mut self, parent: &File, name: &CStr) -> io::Result<[u8; 32]> {
        let mut file = sys::open_file_read(parent.as_fd(), name)?;
        let mut hasher = Sha256::new();
        loop {
            let n = fill(&mut file, &mut self.buf)?;
            if n == 0 {
                break;
            }
            hasher.update(&self.buf[..n]);
        }
        Ok(hasher.finalize().into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rootfs::testing::{Layer, cannot_run};
    use crate::rootfs::{CacheRequest, LayerCache, UnpackOptions};
    use std::fs;
    use std::os::unix::fs::PermissionsExt;

    /// The layer unpacked into a cache as `mount` does it, with its tree
    /// foreseen from the same bytes.
    fn cached(layer: &[u8]) -> (tempfile::TempDir, PathBuf, ExpectedTree) {
        let tmp = tempfile::tempdir().unwrap();
        let blob = layer.to_vec();
        let request = CacheRequest {
            diff_id: crate::digest::sha256_of(layer),
            label: "L".into(),
            open: Box::new(move || Ok(Box::new(io::Cursor::new(blob)) as Box<dyn BufRead + Send>)),
        };
        let got = LayerCache::new(tmp.path())
            .ensure(request, &UnpackOptions::default())
            .unwrap();
        let tree = ExpectedTree::read(layer, "L").unwrap();
        (tmp, got.path, tree)
    }

    fn first(tree: &ExpectedTree, dir: &Path) -> Option<String> {
        tree.compare(dir, &CompareOptions::default())
            .unwrap()
            .map(|d| d.to_string())
    }

    fn plain() -> Vec<u8> {
        Layer::new()
            .dir("etc/")
            .file("etc/a", b"alpha")
            .file("etc/b", b"bravo")
            .custom(EntryType::Regular, "bin/tool", 0o4755, b"#!", &[], |_| {})
            .custom(
                EntryType::Regular,
                "t",
                0o600,
                b"timed",
                &[("mtime", b"1600000000.25")],
                |_| {},
            )
            .symlink("etc/link", "a")
            .hardlink("etc/a2", "etc/a")
            .file("empty", b"")
            .dir("d/")
            .file("d/x", b"replaced")
            .file("d/x", b"again")
            .build()
    }

    #[test]
    fn a_tree_matching_its_layer_passes_and_the_diff_id_is_the_tars() {
        let layer = plain();
        let (_tmp, dir, tree) = cached(&layer);
        assert_eq!(*tree.diff_id(), crate::digest::sha256_of(&layer));
        assert_eq!(first(&tree, &dir), None);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut gz, &layer).unwrap();
        let gz = gz.finish().unwrap();
        let from_gzip = ExpectedTree::read(&gz[..], "L").unwrap();
        assert_eq!(*from_gzip.diff_id(), crate::digest::sha256_of(&layer));
        assert_eq!(first(&from_gzip, &dir), None);
    }

    #[test]
    fn each_change_is_found_at_its_path() {
        let layer = plain();
        type Change = fn(&Path);
        let cases: [(Change, &str); 7] = [
            (
                |d| {
                    let p = d.join("etc/b");
                    let mode = fs::metadata(&p).unwrap().permissions();
                    fs::write(&p, b"brave").unwrap();
                    fs::set_permissions(&p, mode).unwrap();
                },
                "/etc/b: its content differs from the layer's",
            ),
            (
                |d| {
                    fs::set_permissions(d.join("etc/b"), fs::Permissions::from_mode(0o666)).unwrap()
                },
                "/etc/b: mode 666 where the layer says 644",
            ),
            (
                |d| fs::remove_file(d.join("etc/b")).unwrap(),
                "/etc/b: missing: the layer has a regular file here",
            ),
            (
                |d| fs::write(d.join("etc/c"), b"new").unwrap(),
                "/etc/c: a regular file the layer does not have",
            ),
            (
                |d| {
                    fs::remove_file(d.join("etc/link")).unwrap();
                    std::os::unix::fs::symlink("b", d.join("etc/link")).unwrap();
                },
                "/etc/link: symlink to \"b\" where the layer's points to \"a\"",
            ),
            (
                |d| fs::write(d.join("etc/b"), b"longer").unwrap(),
                "/etc/b: 6 bytes where the layer has 5",
            ),
            (
                |d| {
                    fs::remove_file(d.join("etc/a2")).unwrap();
                    fs::write(d.join("etc/a2"), b"alpha").unwrap();
                },
                "/etc/a2: not a hard link of /etc/a, as the layer makes it",
            ),
        ];
        for (change, want) in cases {
            let (_tmp, dir, tree) = cached(&layer);
            change(&dir);
            assert_eq!(first(&tree, &dir).as_deref(), Some(want));
        }
    }

    #[test]
    fn times_and_kinds_are_compared() {
        let layer = plain();
        let (_tmp, dir, tree) = cached(&layer);
        let t = File::open(dir.join("t")).unwrap();
        t.set_modified(std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_600_000_000))
            .unwrap();
        assert_eq!(
            first(&tree, &dir).as_deref(),
            Some(
                "/t: modified at 1600000000.000000000 where the layer says \
                 1600000000.250000000 (seconds since 1970)"
            )
        );
        let (_tmp, dir, tree) = cached(&layer);
        File::open(dir.join("d"))
            .unwrap()
            .set_modified(std::time::UNIX_EPOCH)
            .unwrap();
        assert_eq!(
            first(&tree, &dir).as_deref(),
            Some(
                "/d: modified at 0.000000000 where the layer says \
                 1600000000.000000000 (seconds since 1970)"
            )
        );
        let (_tmp, dir, tree) = cached(&layer);
        fs::remove_file(dir.join("empty")).unwrap();
        fs::create_dir(dir.join("empty")).unwrap();
        assert_eq!(
            first(&tree, &dir).as_deref(),
            Some("/empty: a directory where the layer has a regular file")
        );
    }

    #[test]
    fn a_layer_the_unpacker_refuses_matches_no_tree() {
        let layer = Layer::new()
            .file("ok", b"x")
            .file("../escape", b"x")
            .build();
        let tree = ExpectedTree::read(&layer[..], "L").unwrap();
        assert_eq!(*tree.diff_id(), crate::digest::sha256_of(&layer));
        let tmp = tempfile::tempdir().unwrap();
        let got = tree
            .compare(tmp.path(), &CompareOptions::default())
            .unwrap()
            .unwrap();
        assert!(matches!(got.what, Mismatch::Unpackable(_)), "{got}");
        assert!(
            got.to_string()
                .starts_with("/../escape: the unpacker refuses")
        );
    }

    /// Whiteouts in every form the unpacker writes them, and the layers the
    /// unpacker's own tests find tricky: the foreseen tree must be the one
    /// written, so a sound cache entry is never reported.
    #[test]
    fn whiteouts_and_tricky_layers_match_what_the_unpacker_writes() {
        if !sys::is_root() {
            cannot_run(
                "rootfs::apply::expected::tests::whiteouts_and_tricky_layers_match_what_the_unpacker_writes",
                "overlay whiteouts need root",
            );
            return;
        }
        let layers = [
            Layer::new()
                .dir("etc/")
                .file("etc/.wh.gone", b"")
                .dir("opaque/")
                .file("opaque/.wh..wh..opq", b"")
                .file("opaque/kept", b"k")
                .file(".wh.redone", b"")
                .dir("redone/")
                .file("new/.wh..wh..opq", b"")
                .build(),
            Layer::new().file(".wh.a", b"").file("a/x", b"x").build(),
            Layer::new()
                .file("d/own", b"o")
                .file("d/.wh.own", b"")
                .dir("e/")
                .file("e/f", b"f")
                .file(".wh.e", b"")
                .build(),
            Layer::new()
                .file("x", b"file")
                .dir("x/")
                .file("x/y", b"y")
                .symlink("s", "x")
                .file("s", b"now a file")
                .file(".wh..wh.plnk/123", b"aufs")
                .hardlink("h", "x/y")
                .file("x/y", b"replaced after the link")
                .dir("./")
                .build(),
            Layer::new()
                .device("dev/null", EntryType::Char, 1, 3)
                .device("dev/fifo", EntryType::Fifo, 0, 0)
                .custom(EntryType::Regular, "owned", 0o640, b"o", &[], |h| {
                    h.set_uid(1000);
                    h.set_gid(1001);
                })
                .build(),
        ];
        for layer in &layers {
            let (_tmp, dir, tree) = cached(layer);
            assert_eq!(first(&tree, &dir), None, "{:?}", tree);
        }
        // What differs in whiteouts is found too.
        let (_tmp, dir, tree) = cached(&layers[0]);
        fs::remove_file(dir.join("etc/gone")).unwrap();
        fs::write(dir.join("etc/gone"), b"").unwrap();
        assert_eq!(
            first(&tree, &dir).as_deref(),
            Some(
                "/etc/gone: a regular file where the layer has a whiteout (a 0:0 character device)"
            )
        );
        let (_tmp, dir, tree) = cached(&layers[0]);
        rustix::fs::removexattr(dir.join("opaque"), OPAQUE_XATTR).unwrap();
        assert_eq!(
            first(&tree, &dir).as_deref(),
            Some("/opaque: not opaque (no trusted.overlay.opaque) where the layer makes it so")
        );
        let (_tmp, dir, tree) = cached(&layers[4]);
        std::os::unix::fs::chown(dir.join("owned"), Some(0), Some(0)).unwrap();
        assert_eq!(
            first(&tree, &dir).as_deref(),
            Some("/owned: owner 0:0 where the layer says 1000:1001")
        );
    }
}
