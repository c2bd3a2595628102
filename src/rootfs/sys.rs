//! The few Linux calls the unpacker needs, each relative to a directory file
//! descriptor and none following a symlink in its last component.
//!
//! rustix makes each call safe; this file only picks the flags (never
//! following a symlink) and turns its errors into `io::Error`.

use std::ffi::{CStr, CString, OsStr};
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;

use rustix::fs::{self as rfs, AtFlags, FileType, Mode, OFlags, Timespec, Timestamps, XattrFlags};
use rustix::io::Errno;

/// A time as seconds and nanoseconds since the epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Time {
    pub secs: i64,
    pub nanos: u32,
}

impl Time {
    fn timespec(self) -> Timespec {
        Timespec {
            tv_sec: self.secs,
            tv_nsec: self.nanos.into(),
        }
    }
}

fn timestamps(atime: Time, mtime: Time) -> Timestamps {
    Timestamps {
        last_access: atime.timespec(),
        last_modification: mtime.timespec(),
    }
}

/// What `lstat` says about a name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Dir,
    Symlink,
    Other,
}

/// Turns a name into a C string; a NUL byte inside is an `InvalidInput` error.
pub(crate) fn cstring(name: &[u8]) -> io::Result<CString> {
    CString::new(name).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL byte in name"))
}

/// A path component as a C string.
pub(crate) fn cname(name: &OsStr) -> io::Result<CString> {
    cstring(name.as_bytes())
}

fn open_at(dir: BorrowedFd, name: &CStr, flags: OFlags, mode: Mode) -> io::Result<OwnedFd> {
    Ok(rustix::io::retry_on_intr(|| {
        rfs::openat(dir, name, flags | OFlags::CLOEXEC, mode)
    })?)
}

/// Opens a directory by path (following symlinks: the caller chose it) as an
/// `O_PATH` handle, usable as the base of every `*at` call.
pub(crate) fn open_root(path: &std::path::Path) -> io::Result<OwnedFd> {
    let c = cstring(path.as_os_str().as_bytes())?;
    open_at(
        rfs::CWD,
        &c,
        OFlags::PATH | OFlags::DIRECTORY,
        Mode::empty(),
    )
}

/// Opens the directory `name` in `dir` as an `O_PATH` handle; a symlink
/// (or anything but a directory) fails with `ENOTDIR`.
pub(crate) fn open_dir_path(dir: BorrowedFd, name: &CStr) -> io::Result<OwnedFd> {
    open_at(
        dir,
        name,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW,
        Mode::empty(),
    )
}

/// Opens the directory `name` in `dir` for reading (so its mode, times and
/// attributes can be changed through the descriptor); never a symlink.
pub(crate) fn open_dir_read(dir: BorrowedFd, name: &CStr) -> io::Result<File> {
    open_at(
        dir,
        name,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW,
        Mode::empty(),
    )
    .map(File::from)
}

/// Creates the regular file `name` in `dir`; fails if anything (a symlink
/// included) is already there.
pub(crate) fn create_file(dir: BorrowedFd, name: &CStr) -> io::Result<File> {
    let flags = OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW;
    open_at(dir, name, flags, Mode::from_raw_mode(0o600)).map(File::from)
}

/// The kind of `name` in `dir` without following it, or `None` if absent.
pub(crate) fn kind_at(dir: BorrowedFd, name: &CStr) -> io::Result<Option<Kind>> {
    match rfs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) => Ok(Some(match FileType::from_raw_mode(st.st_mode) {
            FileType::Directory => Kind::Dir,
            FileType::Symlink => Kind::Symlink,
            _ => Kind::Other,
        })),
        Err(Errno::NOENT) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// What `lstat` says about `name` in `dir` in full, or `None` if absent.
pub(crate) fn stat_at(dir: BorrowedFd, name: &CStr) -> io::Result<Option<rfs::Stat>> {
    match rfs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) => Ok(Some(st)),
        Err(Errno::NOENT) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Opens the regular file `name` in `dir` for reading; never a symlink.
pub(crate) fn open_file_read(dir: BorrowedFd, name: &CStr) -> io::Result<File> {
    open_at(
        dir,
        name,
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NOCTTY,
        Mode::empty(),
    )
    .map(File::from)
}

/// The target of the symlink `name` in `dir`, as bytes.
pub(crate) fn readlink_at(dir: BorrowedFd, name: &CStr) -> io::Result<Vec<u8>> {
    Ok(rfs::readlinkat(dir, name, Vec::new())?.into_bytes())
}

/// An extended attribute of an open file or directory, or `None` when it
/// has none by that name.
pub(crate) fn fgetxattr(file: &File, name: &CStr) -> io::Result<Option<Vec<u8>>> {
    let mut buf = vec![0u8; 256];
    loop {
        match rfs::fgetxattr(file, name, &mut buf[..]) {
            Ok(n) => {
                buf.truncate(n);
                return Ok(Some(buf));
            }
            Err(Errno::NODATA) => return Ok(None),
            Err(Errno::RANGE) if buf.len() < 1 << 16 => buf.resize(buf.len() * 16, 0),
            Err(e) => return Err(e.into()),
        }
    }
}

/// `mkdirat`.
pub(crate) fn mkdir(dir: BorrowedFd, name: &CStr, mode: u32) -> io::Result<()> {
    Ok(rfs::mkdirat(dir, name, Mode::from_raw_mode(mode))?)
}

/// `symlinkat`: `name` in `dir` pointing at `target`, which is never resolved.
pub(crate) fn symlink(target: &CStr, dir: BorrowedFd, name: &CStr) -> io::Result<()> {
    Ok(rfs::symlinkat(target, dir, name)?)
}

/// `linkat` without `AT_SYMLINK_FOLLOW`: a symlink target is linked itself.
pub(crate) fn link(
    old_dir: BorrowedFd,
    old: &CStr,
    new_dir: BorrowedFd,
    new: &CStr,
) -> io::Result<()> {
    Ok(rfs::linkat(old_dir, old, new_dir, new, AtFlags::empty())?)
}

/// `mknodat` (fifos, character and block devices): `mode` holds the file
/// type and the permission bits.
pub(crate) fn mknod(
    dir: BorrowedFd,
    name: &CStr,
    mode: u32,
    major: u32,
    minor: u32,
) -> io::Result<()> {
    Ok(rfs::mknodat(
        dir,
        name,
        FileType::from_raw_mode(mode),
        Mode::from_raw_mode(mode),
        rfs::makedev(major, minor),
    )?)
}

fn owner(uid: u32, gid: u32) -> (Option<rustix::fs::Uid>, Option<rustix::fs::Gid>) {
    // -1 means "leave unchanged" to the kernel, never an owner to set.
    (
        (uid != u32::MAX).then(|| rustix::fs::Uid::from_raw(uid)),
        (gid != u32::MAX).then(|| rustix::fs::Gid::from_raw(gid)),
    )
}

/// `fchownat(AT_SYMLINK_NOFOLLOW)`.
pub(crate) fn chown_at(dir: BorrowedFd, name: &CStr, uid: u32, gid: u32) -> io::Result<()> {
    let (uid, gid) = owner(uid, gid);
    Ok(rfs::chownat(
        dir,
        name,
        uid,
        gid,
        AtFlags::SYMLINK_NOFOLLOW,
    )?)
}

/// `fchown`.
pub(crate) fn fchown(file: &File, uid: u32, gid: u32) -> io::Result<()> {
    let (uid, gid) = owner(uid, gid);
    Ok(rfs::fchown(file, uid, gid)?)
}

/// `fchmodat` following nothing but the last component, which the caller
/// has just created itself and knows is not a symlink (Linux has no
/// `AT_SYMLINK_NOFOLLOW` for chmod before 6.6, and a symlink has no mode).
pub(crate) fn chmod_at(dir: BorrowedFd, name: &CStr, mode: u32) -> io::Result<()> {
    Ok(rfs::chmodat(
        dir,
        name,
        Mode::from_raw_mode(mode),
        AtFlags::empty(),
    )?)
}

/// `fchmod`.
pub(crate) fn fchmod(file: &File, mode: u32) -> io::Result<()> {
    Ok(rfs::fchmod(file, Mode::from_raw_mode(mode))?)
}

/// `utimensat(AT_SYMLINK_NOFOLLOW)`.
pub(crate) fn utimes_at(dir: BorrowedFd, name: &CStr, atime: Time, mtime: Time) -> io::Result<()> {
    Ok(rfs::utimensat(
        dir,
        name,
        &timestamps(atime, mtime),
        AtFlags::SYMLINK_NOFOLLOW,
    )?)
}

/// `futimens`.
pub(crate) fn futimes(file: &File, atime: Time, mtime: Time) -> io::Result<()> {
    Ok(rfs::futimens(file, &timestamps(atime, mtime))?)
}

/// `fsetxattr` on an open file or directory.
pub(crate) fn fsetxattr(file: &File, name: &CStr, value: &[u8]) -> io::Result<()> {
    Ok(rfs::fsetxattr(file, name, value, XattrFlags::empty())?)
}

/// `lsetxattr` on `name` in `dir`, reached as `/proc/self/fd/DIR/NAME`: the
/// kernel resolves the descriptor itself (no path walk from `/`), and `l`
/// leaves a symlink in the last component unfollowed. Used for symlinks,
/// fifos and devices, which cannot be opened for their attributes.
pub(crate) fn lsetxattr_at(
    dir: BorrowedFd,
    name: &CStr,
    attr: &CStr,
    value: &[u8],
) -> io::Result<()> {
    let mut path = format!("/proc/self/fd/{}/", dir.as_raw_fd()).into_bytes();
    path.extend_from_slice(name.to_bytes());
    let path = cstring(&path)?;
    Ok(rfs::lsetxattr(
        path.as_c_str(),
        attr,
        value,
        XattrFlags::empty(),
    )?)
}

/// `unlinkat`; `dir_entry` removes an empty directory.
pub(crate) fn unlink(dir: BorrowedFd, name: &CStr, dir_entry: bool) -> io::Result<()> {
    let flags = if dir_entry {
        AtFlags::REMOVEDIR
    } else {
        AtFlags::empty()
    };
    Ok(rfs::unlinkat(dir, name, flags)?)
}

/// `syncfs`: flushes the file system holding `file`.
pub(crate) fn syncfs(file: &File) -> io::Result<()> {
    Ok(rfs::syncfs(file)?)
}

/// Whether this process runs with an effective user ID of 0.
pub(crate) fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// The names in a directory (without `.` and `..`), from the start whatever
/// was read through `dir` before: the listing opens the directory anew.
pub(crate) fn list(dir: &File) -> io::Result<Vec<CString>> {
    let mut names = Vec::new();
    for entry in rfs::Dir::read_from(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        if name.to_bytes() != b"." && name.to_bytes() != b".." {
            names.push(name.to_owned());
        }
    }
    Ok(names)
}

/// Removes `name` from `dir`, whatever it is, without following a symlink
/// anywhere: a directory is emptied through descriptors, depth first.
pub(crate) fn remove_tree(dir: BorrowedFd, name: &CStr) -> io::Result<()> {
    match kind_at(dir, name)? {
        None => Ok(()),
        Some(Kind::Dir) => {
            // A directory the layer made read-only (or unreadable) is opened
            // up first: without root, its mode would stop the removal.
            let sub = match open_dir_read(dir, name) {
                Err(e) if e.raw_os_error() == Some(libc::EACCES) => {
                    chmod_at(dir, name, 0o700)?;
                    open_dir_read(dir, name)?
                }
                other => other?,
            };
            let _ = fchmod(&sub, 0o700);
            for child in list(&sub)? {
                remove_tree(sub.as_fd(), &child)?;
            }
            unlink(dir, name, true)
        }
        Some(_) => unlink(dir, name, false),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    #[test]
    fn open_dir_path_refuses_a_symlink() {
        let tmp = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink("/etc", tmp.path().join("l")).unwrap();
        let root = open_root(tmp.path()).unwrap();
        let err = open_dir_path(root.as_fd(), c"l").unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::ENOTDIR));
        assert_eq!(kind_at(root.as_fd(), c"l").unwrap(), Some(Kind::Symlink));
        assert_eq!(kind_at(root.as_fd(), c"none").unwrap(), None);
    }

    #[test]
    fn remove_tree_does_not_follow_symlinks() {
        let tmp = tempfile::tempdir().unwrap();
        let outside = tmp.path().join("outside");
        std::fs::create_dir(&outside).unwrap();
        std::fs::write(outside.join("keep"), b"x").unwrap();
        let inside = tmp.path().join("inside");
        std::fs::create_dir_all(inside.join("t/u")).unwrap();
        std::fs::write(inside.join("t/u/f"), b"x").unwrap();
        std::os::unix::fs::symlink(&outside, inside.join("t/link")).unwrap();
        let root = open_root(&inside).unwrap();
        remove_tree(root.as_fd(), c"t").unwrap();
        assert!(!inside.join("t").exists());
        assert!(outside.join("keep").exists());
    }

    #[test]
    fn remove_tree_removes_read_only_directories() {
        let tmp = tempfile::tempdir().unwrap();
        let top = tmp.path().join("t");
        std::fs::create_dir_all(top.join("ro/none")).unwrap();
        std::fs::write(top.join("ro/f"), b"x").unwrap();
        let mode = |p: &std::path::Path, m| {
            std::fs::set_permissions(p, std::os::unix::fs::PermissionsExt::from_mode(m)).unwrap()
        };
        mode(&top.join("ro/none"), 0o000);
        mode(&top.join("ro"), 0o555);
        let root = open_root(tmp.path()).unwrap();
        remove_tree(root.as_fd(), c"t").unwrap();
        assert!(!top.exists());
    }

    #[test]
    fn list_reads_every_name() {
        let tmp = tempfile::tempdir().unwrap();
        for n in ["a", "b", "c"] {
            std::fs::write(tmp.path().join(n), b"").unwrap();
        }
        let root = open_root(tmp.path()).unwrap();
        let dir = open_dir_read(root.as_fd(), c".").unwrap();
        let mut names = list(&dir).unwrap();
        names.sort();
        assert_eq!(
            names,
            vec![c"a".to_owned(), c"b".to_owned(), c"c".to_owned()]
        );
        // A second listing through the same descriptor starts over.
        assert_eq!(list(&dir).unwrap().len(), 3);
    }
}
