//! Writing layers to disk: one layer as an overlayfs layer directory
//! ([`unpack_layer`]), or a stack of layers applied into one tree
//! ([`flatten`]).
//!
//! Both stream: the decompressor feeds the tar reader, which feeds each file
//! to disk through a fixed buffer, so no file and no layer is ever held in
//! memory (only the names an archive wrote, to apply whiteouts right).
//!
//! Metadata is applied in the order that keeps it: owner, then mode (a
//! `chown` clears setuid and setgid bits), then extended attributes, then
//! times (writing content changes them). A directory's mode and times wait
//! until the whole layer (or stack) is written, deepest first, since adding
//! entries changes its mtime and a read-only mode would stop the writing.

use std::collections::{BTreeMap, HashSet};
use std::ffi::{CStr, CString, OsStr};
use std::fs::File;
use std::io::{self, BufRead, Read, Seek, SeekFrom, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use tar::EntryType;

use super::path::{Special, normalize, special};
use super::report::{UnpackOptions, UnpackReport, UnpackWarning, WarningKind};
use super::sys::{self, Kind, Time};
use super::{Refusal, RootfsError};
use crate::compression;
use crate::digest::{Digest, HashingReader};

/// The attribute overlayfs reads to hide a lower directory's content.
const OPAQUE_XATTR: &CStr = c"trusted.overlay.opaque";
/// Size of the copy buffer for file content.
const COPY_BUFFER: usize = 128 * 1024;

mod expected;

#[cfg(test)]
mod tests;
mod whiteout;

pub use expected::{CompareOptions, Difference, EntryKind, ExpectedTree, Mismatch};

/// Unpacks one layer (compressed or not) into `dest` as an overlayfs layer
/// directory: `.wh.NAME` becomes a `0:0` character device `NAME`,
/// `.wh..wh..opq` sets `trusted.overlay.opaque=y` on its directory (both
/// need root). `label` names the layer in errors and warnings.
///
/// `dest` is created if missing and should be empty: the layer is written as
/// it is, a hard link may point only at a file of the same layer, and
/// directories the archive does not list are created `0755`. On error,
/// `dest` holds part of the layer.
pub fn unpack_layer<R: BufRead + Send>(
    layer: R,
    label: &str,
    dest: &Path,
    options: &UnpackOptions,
) -> Result<UnpackReport, RootfsError> {
    let mut applier = Applier::new(dest, Mode::Overlay, options)?;
    let (_, decoded) = decode(layer, label)?;
    applier.apply_layer(label, decoded)?;
    applier.finish()
}

/// Unpacks one layer like [`unpack_layer`], hashing the uncompressed tar on
/// the way: returns its digest (the layer's diff ID) too.
pub(crate) fn unpack_layer_hashed<R: BufRead + Send>(
    layer: R,
    label: &str,
    dest: &Path,
    options: &UnpackOptions,
) -> Result<(UnpackReport, Digest), RootfsError> {
    let mut applier = Applier::new(dest, Mode::Overlay, options)?;
    let (_, decoded) = decode(layer, label)?;
    let hashing = applier.apply_layer(label, HashingReader::new(decoded))?;
    let (diff_id, _, _) = hashing.finish();
    Ok((applier.finish()?, diff_id))
}

/// Applies a stack of layers, lowest first, into one tree at `dest`, each
/// given with its label for errors. OCI whiteouts delete: `.wh.NAME`
/// removes `NAME` from lower layers, `.wh..wh..opq` empties its directory of
/// what lower layers put there, and neither touches what the same layer
/// adds, wherever it sits in the archive (the image spec's rule). A later
/// entry replaces an earlier one, except that a directory over a directory
/// merges. No whiteout appears in the result and no root is needed (see
/// [`UnpackOptions::as_root`] for what root adds).
///
/// `dest` is created if missing; what it already holds is treated as the
/// lowest layer. On error, `dest` holds part of the stack.
pub fn flatten<R, L, I>(
    layers: I,
    dest: &Path,
    options: &UnpackOptions,
) -> Result<UnpackReport, RootfsError>
where
    R: BufRead + Send,
    L: AsRef<str>,
    I: IntoIterator<Item = (L, R)>,
{
    let mut applier = Applier::new(dest, Mode::Flatten, options)?;
    for (label, layer) in layers {
        let (_, decoded) = decode(layer, label.as_ref())?;
        applier.apply_layer(label.as_ref(), decoded)?;
    }
    applier.finish()
}

fn decode<'a, R: BufRead + Send + 'a>(
    layer: R,
    label: &str,
) -> Result<(compression::Compression, Box<dyn Read + Send + 'a>), RootfsError> {
    compression::auto_decoder(layer).map_err(|source| RootfsError::LayerRead {
        layer: label.to_string(),
        source,
    })
}

/// Which way whiteouts go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Converted to overlayfs whiteouts.
    Overlay,
    /// Applied: what they name is deleted.
    Flatten,
}

/// An entry's metadata, read before its content.
struct Meta {
    mode: u32,
    uid: u32,
    gid: u32,
    atime: Time,
    mtime: Time,
    xattrs: Vec<(Vec<u8>, Vec<u8>)>,
}

/// A directory's mode and times, applied at the end.
struct DirMeta {
    mode: u32,
    atime: Time,
    mtime: Time,
    layer: String,
    entry: String,
}

/// Where a directory walk ended.
enum Walk {
    /// The directory, as an `O_PATH` descriptor.
    Dir(OwnedFd),
    /// A component does not exist (only when not creating).
    Missing,
    /// This prefix is a symlink.
    Symlink(PathBuf),
    /// This prefix is something other than a directory.
    NotDir(PathBuf),
}

/// Where an attribute goes.
enum Target<'a> {
    /// An open file or directory.
    File(&'a File),
    /// A name in a directory (symlinks, fifos, devices).
    At(BorrowedFd<'a>, &'a CStr),
}

struct Applier {
    root: OwnedFd,
    mode: Mode,
    as_root: bool,
    /// The last directory walked to, reused while entries stay in it.
    /// Dropped whenever a directory is removed.
    cache: Option<(PathBuf, OwnedFd)>,
    /// Directories whose mode and times are applied at the end.
    dirs: BTreeMap<PathBuf, DirMeta>,
    report: UnpackReport,
    buf: Vec<u8>,
    // The layer and entry at hand, for errors.
    label: String,
    entry: String,
    count: u64,
    /// Paths this layer wrote, with their ancestors: what its whiteouts
    /// must not touch.
    touched: HashSet<PathBuf>,
    /// Overlay whiteouts this layer created: a directory later made there
    /// in the same layer must hide the lower one, so it is made opaque.
    whited: HashSet<PathBuf>,
    /// Attribute names already warned about in this layer.
    warned_xattrs: HashSet<Vec<u8>>,
}

impl Applier {
    fn new(dest: &Path, mode: Mode, options: &UnpackOptions) -> Result<Self, RootfsError> {
        std::fs::create_dir_all(dest).map_err(|e| RootfsError::io("create", dest, e))?;
        let root = sys::open_root(dest).map_err(|e| RootfsError::io("open", dest, e))?;
        Ok(Applier {
            root,
            mode,
            as_root: options.as_root,
            cache: None,
            dirs: BTreeMap::new(),
            report: UnpackReport {
                owners_preserved: options.as_root,
                ..UnpackReport::default()
            },
            buf: Vec::new(),
            label: String::new(),
            entry: String::new(),
            count: 0,
            touched: HashSet::new(),
            whited: HashSet::new(),
            warned_xattrs: HashSet::new(),
        })
    }

    // ----- errors -----

    fn refuse(&self, reason: Refusal) -> RootfsError {
        RootfsError::Refused {
            layer: self.label.clone(),
            entry: self.entry.clone(),
            reason,
        }
    }

    fn fail(&self, op: &'static str, source: io::Error) -> RootfsError {
        RootfsError::Entry {
            layer: self.label.clone(),
            entry: self.entry.clone(),
            op,
            source,
        }
    }

    fn tar_err(&self, source: io::Error) -> RootfsError {
        RootfsError::LayerTar {
            layer: self.label.clone(),
            entries: self.count,
            source,
        }
    }

    fn needs_root(&self, what: &'static str) -> RootfsError {
        RootfsError::NeedsRoot {
            layer: self.label.clone(),
            entry: self.entry.clone(),
            what,
        }
    }

    fn warn(&mut self, kind: WarningKind) {
        self.report.warnings.push(UnpackWarning {
            layer: self.label.clone(),
            entry: self.entry.clone(),
            kind,
        });
    }

    fn name(&self, name: &OsStr) -> Result<CString, RootfsError> {
        sys::cname(name).map_err(|_| self.refuse(Refusal::NulByte))
    }

    // ----- layers and entries -----

    /// Applies every entry of one uncompressed layer, then reads the stream
    /// to its end (so a hashing reader below sees all of it) and returns it.
    fn apply_layer<R: Read>(&mut self, label: &str, r: R) -> Result<R, RootfsError> {
        self.label = label.to_string();
        self.entry.clear();
        self.count = 0;
        self.touched.clear();
        self.whited.clear();
        self.warned_xattrs.clear();
        let mut archive = tar::Archive::new(r);
        let entries = archive.entries().map_err(|e| self.tar_err(e))?;
        for entry in entries {
            let mut entry = entry.map_err(|e| self.tar_err(e))?;
            self.count += 1;
            self.apply_entry(&mut entry)?;
        }
        self.entry.clear();
        let mut rest = archive.into_inner();
        io::copy(&mut rest, &mut io::sink()).map_err(|source| RootfsError::LayerRead {
            layer: self.label.clone(),
            source,
        })?;
        self.report.entries += self.count;
        Ok(rest)
    }

    fn apply_entry<R: Read>(&mut self, entry: &mut tar::Entry<R>) -> Result<(), RootfsError> {
        let raw = entry.path_bytes().into_owned();
        self.entry = String::from_utf8_lossy(&raw).into_owned();
        let Some(kind) = entry_kind(entry.header(), &raw) else {
            return Ok(());
        };
        let rel = normalize(&raw).map_err(|r| self.refuse(r))?;
        // AUFS bookkeeping directories (`.wh..wh.plnk/…`) are not content.
        if let Some(first) = rel.iter().next()
            && special(first.as_bytes()) == Special::AufsMeta
        {
            return Ok(());
        }
        let Some(name) = rel.file_name() else {
            return if kind == EntryType::Directory {
                let meta = self.meta(entry)?;
                self.root_dir(meta)
            } else {
                Err(self.refuse(Refusal::Root))
            };
        };
        match special(name.as_bytes()) {
            Special::None => {}
            Special::AufsMeta => return Ok(()),
            Special::Opaque => return self.opaque(&rel),
            Special::Whiteout(target) => {
                let target = OsStr::from_bytes(target).to_os_string();
                let (uid, gid) = self.owner(entry)?;
                return self.whiteout(&rel, &target, uid, gid);
            }
        }
        match kind {
            EntryType::Directory => {
                let meta = self.meta(entry)?;
                self.make_dir(&rel, meta)?;
            }
            EntryType::Regular | EntryType::Continuous | EntryType::GNUSparse => {
                let meta = self.meta(entry)?;
                self.make_file(&rel, meta, entry)?;
            }
            EntryType::Symlink => {
                let meta = self.meta(entry)?;
                let target = entry.link_name_bytes().unwrap_or_default().into_owned();
                self.make_symlink(&rel, &target, meta)?;
            }
            EntryType::Link => {
                let target = entry.link_name_bytes().unwrap_or_default().into_owned();
                self.make_hardlink(&rel, &target)?;
            }
            EntryType::Char | EntryType::Block | EntryType::Fifo => {
                let meta = self.meta(entry)?;
                let dev = if kind == EntryType::Fifo {
                    // A fifo has no numbers; some writers leave them blank.
                    (0, 0)
                } else {
                    let h = entry.header();
                    let major = h.device_major().map_err(|e| self.tar_err(e))?;
                    let minor = h.device_minor().map_err(|e| self.tar_err(e))?;
                    (major.unwrap_or(0), minor.unwrap_or(0))
                };
                self.make_node(&rel, kind, dev, meta)?;
            }
            other => {
                self.warn(WarningKind::UnsupportedEntry {
                    type_flag: other.as_byte(),
                });
                return Ok(());
            }
        }
        self.touch(&rel);
        Ok(())
    }

    fn owner<R: Read>(&self, entry: &tar::Entry<R>) -> Result<(u32, u32), RootfsError> {
        read_owner(entry).map_err(|e| self.tar_err(e))
    }

    fn meta<R: Read>(&self, entry: &mut tar::Entry<R>) -> Result<Meta, RootfsError> {
        read_meta(entry).map_err(|e| self.tar_err(e))
    }

    /// Records that this layer wrote `rel` (and so its ancestors).
    fn touch(&mut self, rel: &Path) {
        let mut p = rel.to_path_buf();
        while self.touched.insert(p.clone()) && p.pop() {}
    }

    // ----- walking -----

    /// Reaches the directory `dir` (relative to the root) one component at a
    /// time, never following a symlink; missing directories are created
    /// (`0755`) when `create`.
    fn walk(&mut self, dir: &Path, create: bool) -> Result<Walk, RootfsError> {
        let dup = |fd: &OwnedFd, this: &Self| {
            fd.try_clone()
                .map_err(|e| this.fail("duplicate a descriptor", e))
        };
        let (mut cur, mut prefix) = match &self.cache {
            Some((p, fd)) if dir.starts_with(p) => (dup(fd, self)?, p.clone()),
            _ => (dup(&self.root, self)?, PathBuf::new()),
        };
        let skip = prefix.components().count();
        for comp in dir.iter().skip(skip) {
            prefix.push(comp);
            let name = self.name(comp)?;
            cur = match sys::open_dir_path(cur.as_fd(), &name) {
                Ok(fd) => fd,
                Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
                    if !create {
                        return Ok(Walk::Missing);
                    }
                    self.implicit_dir(cur.as_fd(), &name)?
                }
                Err(e) if e.raw_os_error() == Some(libc::ENOTDIR) => {
                    match sys::kind_at(cur.as_fd(), &name).map_err(|e| self.fail("inspect", e))? {
                        Some(Kind::Symlink) => return Ok(Walk::Symlink(prefix)),
                        Some(Kind::Other)
                            if create
                                && self.mode == Mode::Overlay
                                && self.whited.contains(&prefix) =>
                        {
                            // `.wh.a` then `a/x` in one layer: the new `a`
                            // replaces the whiteout and hides the lower one.
                            sys::unlink(cur.as_fd(), &name, false)
                                .map_err(|e| self.fail("remove a whiteout", e))?;
                            let fd = self.implicit_dir(cur.as_fd(), &name)?;
                            self.set_opaque(&fd)?;
                            fd
                        }
                        _ => return Ok(Walk::NotDir(prefix)),
                    }
                }
                Err(e) => return Err(self.fail("open a directory", e)),
            };
        }
        self.cache = Some((dir.to_path_buf(), dup(&cur, self)?));
        Ok(Walk::Dir(cur))
    }

    /// Creates a directory the archive did not list (a parent it skipped).
    fn implicit_dir(&self, parent: BorrowedFd, name: &CStr) -> Result<OwnedFd, RootfsError> {
        match sys::mkdir(parent, name, 0o755) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {}
            Err(e) => return Err(self.fail("create a parent directory", e)),
        }
        sys::open_dir_path(parent, name).map_err(|e| self.fail("open a directory", e))
    }

    /// Walks to the parent of an entry that is about to be written, creating
    /// it if needed; a symlink or a non-directory on the way is refused.
    fn parent_of(&mut self, rel: &Path) -> Result<OwnedFd, RootfsError> {
        let parent = rel.parent().unwrap_or(Path::new(""));
        match self.walk(parent, true)? {
            Walk::Dir(fd) => Ok(fd),
            Walk::Symlink(p) => Err(self.refuse(Refusal::SymlinkParent(shown(&p)))),
            Walk::NotDir(p) => Err(self.refuse(Refusal::NotADirectory(shown(&p)))),
            Walk::Missing => Err(self.fail(
                "create a parent directory",
                io::Error::from_raw_os_error(libc::ENOENT),
            )),
        }
    }

    /// Clears the way for a new entry at `rel`: walks to its parent and
    /// removes what is there, except a directory when `keep_dir` (a
    /// directory over a directory merges). Returns the parent, the name and
    /// whether a directory was kept.
    fn place(
        &mut self,
        rel: &Path,
        keep_dir: bool,
    ) -> Result<(OwnedFd, CString, bool), RootfsError> {
        let parent = self.parent_of(rel)?;
        let name = self.name(rel.file_name().unwrap_or_default())?;
        let kept = match sys::kind_at(parent.as_fd(), &name).map_err(|e| self.fail("inspect", e))? {
            None => false,
            Some(Kind::Dir) if keep_dir => true,
            Some(kind) => {
                self.clear(parent.as_fd(), &name, rel, kind)?;
                false
            }
        };
        Ok((parent, name, kept))
    }

    /// Removes `name` (at `rel`) from `parent`, a whole tree if a directory.
    fn clear(
        &mut self,
        parent: BorrowedFd,
        name: &CStr,
        rel: &Path,
        kind: Kind,
    ) -> Result<(), RootfsError> {
        if kind == Kind::Dir {
            self.cache = None;
            sys::remove_tree(parent, name).map_err(|e| self.fail("remove a directory", e))?;
            let doomed: Vec<PathBuf> = self
                .dirs
                .range(rel.to_path_buf()..)
                .take_while(|(p, _)| p.starts_with(rel))
                .map(|(p, _)| p.clone())
                .collect();
            for p in doomed {
                self.dirs.remove(&p);
            }
            Ok(())
        } else {
            sys::unlink(parent, name, false).map_err(|e| self.fail("remove", e))
        }
    }

    // ----- entries -----

    fn root_dir(&mut self, meta: Meta) -> Result<(), RootfsError> {
        let dir = sys::open_dir_read(self.root.as_fd(), c".").map_err(|e| self.fail("open", e))?;
        self.dir_meta(&dir, PathBuf::new(), meta)
    }

    fn make_dir(&mut self, rel: &Path, meta: Meta) -> Result<(), RootfsError> {
        let (parent, name, kept) = self.place(rel, true)?;
        if !kept {
            sys::mkdir(parent.as_fd(), &name, 0o700)
                .map_err(|e| self.fail("create a directory", e))?;
        }
        let dir = sys::open_dir_read(parent.as_fd(), &name)
            .map_err(|e| self.fail("open a directory", e))?;
        if !kept && self.mode == Mode::Overlay && self.whited.contains(rel) {
            // This layer deleted the lower `rel`, then made a new one.
            self.set_opaque(&dir)?;
        }
        self.dir_meta(&dir, rel.to_path_buf(), meta)
    }

    /// Owner and attributes now, mode and times at the end.
    fn dir_meta(&mut self, dir: &File, rel: PathBuf, meta: Meta) -> Result<(), RootfsError> {
        if self.as_root {
            sys::fchown(dir, meta.uid, meta.gid).map_err(|e| self.fail("set the owner", e))?;
        }
        self.set_xattrs(Target::File(dir), &meta.xattrs)?;
        let pending = DirMeta {
            mode: meta.mode,
            atime: meta.atime,
            mtime: meta.mtime,
            layer: self.label.clone(),
            entry: self.entry.clone(),
        };
        self.dirs.insert(rel, pending);
        Ok(())
    }

    fn make_file<R: Read>(
        &mut self,
        rel: &Path,
        meta: Meta,
        data: &mut R,
    ) -> Result<(), RootfsError> {
        let (parent, name, _) = self.place(rel, false)?;
        let mut file =
            sys::create_file(parent.as_fd(), &name).map_err(|e| self.fail("create", e))?;
        self.copy(data, &mut file)?;
        if self.as_root {
            sys::fchown(&file, meta.uid, meta.gid).map_err(|e| self.fail("set the owner", e))?;
        }
        sys::fchmod(&file, meta.mode).map_err(|e| self.fail("set the mode", e))?;
        self.set_xattrs(Target::File(&file), &meta.xattrs)?;
        sys::futimes(&file, meta.atime, meta.mtime).map_err(|e| self.fail("set the times", e))
    }

    /// Copies an entry's content, seeking over whole zero blocks so that a
    /// sparse file stays sparse.
    fn copy<R: Read>(&mut self, data: &mut R, file: &mut File) -> Result<(), RootfsError> {
        let mut buf = std::mem::take(&mut self.buf);
        buf.resize(COPY_BUFFER, 0);
        let result = self.copy_with(data, file, &mut buf);
        self.buf = buf;
        result
    }

    fn copy_with<R: Read>(
        &self,
        data: &mut R,
        file: &mut File,
        buf: &mut [u8],
    ) -> Result<(), RootfsError> {
        let mut len = 0u64;
        let mut holes = false;
        loop {
            let n = fill(data, buf).map_err(|e| self.tar_err(e))?;
            if n == 0 {
                break;
            }
            let chunk = &buf[..n];
            if n == buf.len() && chunk.iter().all(|&b| b == 0) {
                file.seek(SeekFrom::Current(n as i64))
                    .map_err(|e| self.fail("write", e))?;
                holes = true;
            } else {
                file.write_all(chunk).map_err(|e| self.fail("write", e))?;
            }
            len += n as u64;
        }
        if holes {
            file.set_len(len).map_err(|e| self.fail("write", e))?;
        }
        Ok(())
    }

    fn make_symlink(&mut self, rel: &Path, target: &[u8], meta: Meta) -> Result<(), RootfsError> {
        let target = sys::cstring(target).map_err(|_| self.refuse(Refusal::NulByte))?;
        let (parent, name, _) = self.place(rel, false)?;
        let at = parent.as_fd();
        sys::symlink(&target, at, &name).map_err(|e| self.fail("create a symlink", e))?;
        if self.as_root {
            sys::chown_at(at, &name, meta.uid, meta.gid)
                .map_err(|e| self.fail("set the owner", e))?;
        }
        self.set_xattrs(Target::At(at, &name), &meta.xattrs)?;
        sys::utimes_at(at, &name, meta.atime, meta.mtime).map_err(|e| self.fail("set the times", e))
    }

    /// A hard link keeps its target's metadata (the inode is shared; the
    /// link's own header says nothing more).
    fn make_hardlink(&mut self, rel: &Path, raw_target: &[u8]) -> Result<(), RootfsError> {
        let target = String::from_utf8_lossy(raw_target).into_owned();
        let target_rel = normalize(raw_target).map_err(|reason| {
            self.refuse(Refusal::LinkTarget {
                target: target.clone(),
                reason: Box::new(reason),
            })
        })?;
        let Some(target_name) = target_rel.file_name() else {
            return Err(self.refuse(Refusal::LinkToDirectory(target)));
        };
        if target_rel == rel {
            return Err(self.refuse(Refusal::LinkToItself));
        }
        let target_name = self.name(target_name)?;
        let target_dir = match self.walk(target_rel.parent().unwrap_or(Path::new("")), false)? {
            Walk::Dir(fd) => fd,
            Walk::Symlink(p) => {
                return Err(self.refuse(Refusal::LinkTarget {
                    target,
                    reason: Box::new(Refusal::SymlinkParent(shown(&p))),
                }));
            }
            Walk::Missing | Walk::NotDir(_) => {
                return Err(self.refuse(Refusal::LinkTargetMissing(target)));
            }
        };
        match sys::kind_at(target_dir.as_fd(), &target_name).map_err(|e| self.fail("inspect", e))? {
            None => return Err(self.refuse(Refusal::LinkTargetMissing(target))),
            Some(Kind::Dir) => return Err(self.refuse(Refusal::LinkToDirectory(target))),
            Some(_) => {}
        }
        let (parent, name, _) = self.place(rel, false)?;
        match sys::link(target_dir.as_fd(), &target_name, parent.as_fd(), &name) {
            Ok(()) => Ok(()),
            // Clearing the way removed the target (it was inside `rel`).
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
                Err(self.refuse(Refusal::LinkTargetMissing(target)))
            }
            Err(e) => Err(self.fail("create a hard link", e)),
        }
    }

    fn make_node(
        &mut self,
        rel: &Path,
        kind: EntryType,
        (major, minor): (u32, u32),
        meta: Meta,
    ) -> Result<(), RootfsError> {
        let (parent, name, _) = self.place(rel, false)?;
        let at = parent.as_fd();
        let file_type = match kind {
            EntryType::Char => libc::S_IFCHR,
            EntryType::Block => libc::S_IFBLK,
            _ => libc::S_IFIFO,
        };
        if file_type != libc::S_IFIFO && !self.as_root {
            // What was there is gone all the same: the path is now absent.
            self.warn(WarningKind::DeviceSkipped);
            return Ok(());
        }
        sys::mknod(at, &name, file_type, major, minor)
            .map_err(|e| self.fail("create a device node or fifo", e))?;
        if self.as_root {
            sys::chown_at(at, &name, meta.uid, meta.gid)
                .map_err(|e| self.fail("set the owner", e))?;
        }
        sys::chmod_at(at, &name, meta.mode).map_err(|e| self.fail("set the mode", e))?;
        self.set_xattrs(Target::At(at, &name), &meta.xattrs)?;
        sys::utimes_at(at, &name, meta.atime, meta.mtime).map_err(|e| self.fail("set the times", e))
    }

    // ----- attributes -----

    fn set_xattrs(
        &mut self,
        target: Target,
        xattrs: &[(Vec<u8>, Vec<u8>)],
    ) -> Result<(), RootfsError> {
        for (name, value) in xattrs {
            if name.starts_with(b"trusted.overlay.") {
                self.skip_xattr(name, "overlayfs attributes come only from whiteouts".into());
                continue;
            }
            if !self.as_root && !name.starts_with(b"user.") {
                self.skip_xattr(name, "not root".into());
                continue;
            }
            let Ok(cname) = sys::cstring(name) else {
                self.skip_xattr(name, "NUL byte in its name".into());
                continue;
            };
            let set = match target {
                Target::File(f) => sys::fsetxattr(f, &cname, value),
                Target::At(dir, entry) => sys::lsetxattr_at(dir, entry, &cname, value),
            };
            match set {
                Ok(()) => {}
                Err(e) if matches!(e.raw_os_error(), Some(libc::EOPNOTSUPP | libc::EPERM)) => {
                    self.skip_xattr(name, e.to_string());
                }
                Err(e) => return Err(self.fail("set an extended attribute", e)),
            }
        }
        Ok(())
    }

    fn skip_xattr(&mut self, name: &[u8], reason: String) {
        if self.warned_xattrs.insert(name.to_vec()) {
            let name = String::from_utf8_lossy(name).into_owned();
            self.warn(WarningKind::XattrSkipped { name, reason });
        }
    }

    // ----- the end -----

    /// Applies directories' modes and times, deepest first (a parent's
    /// after its children, which change it), and returns the report.
    fn finish(mut self) -> Result<UnpackReport, RootfsError> {
        let dirs = std::mem::take(&mut self.dirs);
        for (rel, pending) in dirs.into_iter().rev() {
            self.label = pending.layer;
            self.entry = pending.entry;
            let Walk::Dir(fd) = self.walk(&rel, false)? else {
                continue;
            };
            let dir = sys::open_dir_read(fd.as_fd(), c".")
                .map_err(|e| self.fail("open a directory", e))?;
            sys::fchmod(&dir, pending.mode).map_err(|e| self.fail("set the mode", e))?;
            sys::futimes(&dir, pending.atime, pending.mtime)
                .map_err(|e| self.fail("set the times", e))?;
        }
        Ok(self.report)
    }
}

/// An entry's owner from its header.
fn read_owner<R: Read>(entry: &tar::Entry<R>) -> io::Result<(u32, u32)> {
    let h = entry.header();
    let id = |v: io::Result<u64>| -> io::Result<u32> {
        let v = v?;
        u32::try_from(v).map_err(|_| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("owner ID {v} is out of range"),
            )
        })
    };
    Ok((id(h.uid())?, id(h.gid())?))
}

/// Reads an entry's metadata: PAX records first (they override the
/// header's times and carry the extended attributes).
fn read_meta<R: Read>(entry: &mut tar::Entry<R>) -> io::Result<Meta> {
    let mut xattrs = Vec::new();
    let (mut pax_mtime, mut pax_atime) = (None, None);
    if let Some(records) = entry.pax_extensions()? {
        for record in records {
            let record = record?;
            let key = record.key_bytes();
            if let Some(name) = key.strip_prefix(b"SCHILY.xattr.") {
                xattrs.push((name.to_vec(), record.value_bytes().to_vec()));
            } else if key == b"mtime" {
                pax_mtime = parse_pax_time(record.value_bytes());
            } else if key == b"atime" {
                pax_atime = parse_pax_time(record.value_bytes());
            }
        }
    }
    let (uid, gid) = read_owner(entry)?;
    let h = entry.header();
    let mode = h.mode()? & 0o7777;
    let mtime = pax_mtime.unwrap_or_else(|| whole_secs(h.mtime().unwrap_or(0)));
    let gnu_atime = h
        .as_gnu()
        .and_then(|g| g.atime().ok())
        .filter(|&t| t != 0)
        .map(whole_secs);
    let atime = pax_atime.or(gnu_atime).unwrap_or(mtime);
    Ok(Meta {
        mode,
        uid,
        gid,
        atime,
        mtime,
        xattrs,
    })
}

/// A path for messages.
fn shown(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

fn whole_secs(secs: u64) -> Time {
    Time {
        secs: i64::try_from(secs).unwrap_or(i64::MAX),
        nanos: 0,
    }
}

/// Parses a PAX time: decimal seconds, maybe negative, maybe with a fraction.
fn parse_pax_time(v: &[u8]) -> Option<Time> {
    let s = std::str::from_utf8(v).ok()?;
    let (neg, s) = match s.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s),
    };
    let (int, frac) = s.split_once('.').unwrap_or((s, ""));
    if int.is_empty()
        || !int.bytes().all(|b| b.is_ascii_digit())
        || !frac.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let secs: i64 = int.parse().ok()?;
    let digits: String = frac.chars().chain(std::iter::repeat('0')).take(9).collect();
    let nanos: u32 = digits.parse().ok()?;
    Some(if !neg {
        Time { secs, nanos }
    } else if nanos == 0 {
        Time {
            secs: -secs,
            nanos: 0,
        }
    } else {
        Time {
            secs: -secs - 1,
            nanos: 1_000_000_000 - nanos,
        }
    })
}

/// Reads until `buf` is full or the stream ends.
fn fill<R: Read>(r: &mut R, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// An entry's kind as the unpacker treats it: `None` for the headers that
/// only describe the next entry (PAX, GNU long names); a directory for a
/// name with a trailing slash in an old tar that had no type for it.
fn entry_kind(header: &tar::Header, raw: &[u8]) -> Option<EntryType> {
    let kind = header.entry_type();
    if matches!(
        kind,
        EntryType::XGlobalHeader
            | EntryType::XHeader
            | EntryType::GNULongName
            | EntryType::GNULongLink
    ) {
        return None;
    }
    if header.as_bytes()[156] == 0 && raw.ends_with(b"/") {
        return Some(EntryType::Directory);
    }
    Some(kind)
}
