//! The few Linux calls the unpacker needs, each relative to a directory file
//! descriptor and none following a symlink in its last component.
//!
//! This is the only file in `rootfs` with `unsafe`: every function here is a
//! thin, checked wrapper around one `libc` call.

use std::ffi::{CStr, CString, OsStr};
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;

/// A time as seconds and nanoseconds since the epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Time {
    pub secs: i64,
    pub nanos: u32,
}

impl Time {
    fn timespec(self) -> libc::timespec {
        libc::timespec {
            tv_sec: self.secs as libc::time_t,
            tv_nsec: self.nanos as libc::c_long,
        }
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

fn check(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

fn open_at(
    dir: BorrowedFd,
    name: &CStr,
    flags: libc::c_int,
    mode: libc::mode_t,
) -> io::Result<OwnedFd> {
    loop {
        // SAFETY: `name` is a valid C string and `dir` an open descriptor; the
        // returned descriptor is new and owned by nobody else.
        let fd = unsafe {
            libc::openat(
                dir.as_raw_fd(),
                name.as_ptr(),
                flags | libc::O_CLOEXEC,
                mode as libc::c_uint,
            )
        };
        match check(fd) {
            Ok(fd) => return Ok(unsafe { OwnedFd::from_raw_fd(fd) }),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
}

/// Opens a directory by path (following symlinks: the caller chose it) as an
/// `O_PATH` handle, usable as the base of every `*at` call.
pub(crate) fn open_root(path: &std::path::Path) -> io::Result<OwnedFd> {
    let c = cstring(path.as_os_str().as_bytes())?;
    // SAFETY: AT_FDCWD is always a valid base.
    let cwd = unsafe { BorrowedFd::borrow_raw(libc::AT_FDCWD) };
    open_at(cwd, &c, libc::O_PATH | libc::O_DIRECTORY, 0)
}

/// Opens the directory `name` in `dir` as an `O_PATH` handle; a symlink
/// (or anything but a directory) fails with `ENOTDIR`.
pub(crate) fn open_dir_path(dir: BorrowedFd, name: &CStr) -> io::Result<OwnedFd> {
    open_at(
        dir,
        name,
        libc::O_PATH | libc::O_DIRECTORY | libc::O_NOFOLLOW,
        0,
    )
}

/// Opens the directory `name` in `dir` for reading (so its mode, times and
/// attributes can be changed through the descriptor); never a symlink.
pub(crate) fn open_dir_read(dir: BorrowedFd, name: &CStr) -> io::Result<File> {
    open_at(
        dir,
        name,
        libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW,
        0,
    )
    .map(File::from)
}

/// Creates the regular file `name` in `dir`; fails if anything (a symlink
/// included) is already there.
pub(crate) fn create_file(dir: BorrowedFd, name: &CStr) -> io::Result<File> {
    let flags = libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW;
    open_at(dir, name, flags, 0o600).map(File::from)
}

/// The kind of `name` in `dir` without following it, or `None` if absent.
pub(crate) fn kind_at(dir: BorrowedFd, name: &CStr) -> io::Result<Option<Kind>> {
    let mut st = std::mem::MaybeUninit::<libc::stat>::uninit();
    // SAFETY: `st` is written by the call before it is read.
    let ret = unsafe {
        libc::fstatat(
            dir.as_raw_fd(),
            name.as_ptr(),
            st.as_mut_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        )
    };
    match check(ret) {
        Ok(_) => {
            // SAFETY: fstatat succeeded, so `st` is initialised.
            let mode = unsafe { st.assume_init() }.st_mode & libc::S_IFMT;
            Ok(Some(match mode {
                libc::S_IFDIR => Kind::Dir,
                libc::S_IFLNK => Kind::Symlink,
                _ => Kind::Other,
            }))
        }
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(None),
        Err(e) => Err(e),
    }
}

/// `mkdirat`.
pub(crate) fn mkdir(dir: BorrowedFd, name: &CStr, mode: u32) -> io::Result<()> {
    // SAFETY: plain syscall on valid arguments.
    check(unsafe { libc::mkdirat(dir.as_raw_fd(), name.as_ptr(), mode as libc::mode_t) }).map(drop)
}

/// `symlinkat`: `name` in `dir` pointing at `target`, which is never resolved.
pub(crate) fn symlink(target: &CStr, dir: BorrowedFd, name: &CStr) -> io::Result<()> {
    // SAFETY: plain syscall on valid arguments.
    check(unsafe { libc::symlinkat(target.as_ptr(), dir.as_raw_fd(), name.as_ptr()) }).map(drop)
}

/// `linkat` without `AT_SYMLINK_FOLLOW`: a symlink target is linked itself.
pub(crate) fn link(
    old_dir: BorrowedFd,
    old: &CStr,
    new_dir: BorrowedFd,
    new: &CStr,
) -> io::Result<()> {
    // SAFETY: plain syscall on valid arguments.
    check(unsafe {
        libc::linkat(
            old_dir.as_raw_fd(),
            old.as_ptr(),
            new_dir.as_raw_fd(),
            new.as_ptr(),
            0,
        )
    })
    .map(drop)
}

/// `mknodat` (fifos, character and block devices).
pub(crate) fn mknod(
    dir: BorrowedFd,
    name: &CStr,
    mode: u32,
    major: u32,
    minor: u32,
) -> io::Result<()> {
    let dev = libc::makedev(major, minor);
    // SAFETY: plain syscall on valid arguments.
    check(unsafe { libc::mknodat(dir.as_raw_fd(), name.as_ptr(), mode as libc::mode_t, dev) })
        .map(drop)
}

/// `fchownat(AT_SYMLINK_NOFOLLOW)`.
pub(crate) fn chown_at(dir: BorrowedFd, name: &CStr, uid: u32, gid: u32) -> io::Result<()> {
    // SAFETY: plain syscall on valid arguments.
    check(unsafe {
        libc::fchownat(
            dir.as_raw_fd(),
            name.as_ptr(),
            uid,
            gid,
            libc::AT_SYMLINK_NOFOLLOW,
        )
    })
    .map(drop)
}

/// `fchown`.
pub(crate) fn fchown(file: &File, uid: u32, gid: u32) -> io::Result<()> {
    // SAFETY: plain syscall on valid arguments.
    check(unsafe { libc::fchown(file.as_raw_fd(), uid, gid) }).map(drop)
}

/// `fchmodat` following nothing but the last component, which the caller
/// has just created itself and knows is not a symlink (Linux has no
/// `AT_SYMLINK_NOFOLLOW` for chmod before 6.6, and a symlink has no mode).
pub(crate) fn chmod_at(dir: BorrowedFd, name: &CStr, mode: u32) -> io::Result<()> {
    // SAFETY: plain syscall on valid arguments.
    check(unsafe { libc::fchmodat(dir.as_raw_fd(), name.as_ptr(), mode as libc::mode_t, 0) })
        .map(drop)
}

/// `fchmod`.
pub(crate) fn fchmod(file: &File, mode: u32) -> io::Result<()> {
    // SAFETY: plain syscall on valid arguments.
    check(unsafe { libc::fchmod(file.as_raw_fd(), mode as libc::mode_t) }).map(drop)
}

/// `utimensat(AT_SYMLINK_NOFOLLOW)`.
pub(crate) fn utimes_at(dir: BorrowedFd, name: &CStr, atime: Time, mtime: Time) -> io::Result<()> {
    let times = [atime.timespec(), mtime.timespec()];
    // SAFETY: `times` holds the two timespecs the call reads.
    check(unsafe {
        libc::utimensat(
            dir.as_raw_fd(),
            name.as_ptr(),
            times.as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        )
    })
    .map(drop)
}

/// `futimens`.
pub(crate) fn futimes(file: &File, atime: Time, mtime: Time) -> io::Result<()> {
    let times = [atime.timespec(), mtime.timespec()];
    // SAFETY: `times` holds the two timespecs the call reads.
    check(unsafe { libc::futimens(file.as_raw_fd(), times.as_ptr()) }).map(drop)
}

/// `fsetxattr` on an open file or directory.
pub(crate) fn fsetxattr(file: &File, name: &CStr, value: &[u8]) -> io::Result<()> {
    // SAFETY: `value` is valid for `value.len()` bytes.
    check(unsafe {
        libc::fsetxattr(
            file.as_raw_fd(),
            name.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        )
    })
    .map(drop)
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
    // SAFETY: `value` is valid for `value.len()` bytes.
    check(unsafe {
        libc::lsetxattr(
            path.as_ptr(),
            attr.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        )
    })
    .map(drop)
}

/// `unlinkat`; `dir_entry` removes an empty directory.
pub(crate) fn unlink(dir: BorrowedFd, name: &CStr, dir_entry: bool) -> io::Result<()> {
    let flags = if dir_entry { libc::AT_REMOVEDIR } else { 0 };
    // SAFETY: plain syscall on valid arguments.
    check(unsafe { libc::unlinkat(dir.as_raw_fd(), name.as_ptr(), flags) }).map(drop)
}

/// `syncfs`: flushes the file system holding `file`.
pub(crate) fn syncfs(file: &File) -> io::Result<()> {
    // SAFETY: plain syscall on a valid descriptor.
    check(unsafe { libc::syncfs(file.as_raw_fd()) }).map(drop)
}

/// Whether this process runs with an effective user ID of 0.
pub(crate) fn is_root() -> bool {
    // SAFETY: geteuid cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// The names in a directory (without `.` and `..`).
pub(crate) fn list(dir: &File) -> io::Result<Vec<CString>> {
    // fdopendir takes the descriptor it is given, so it gets a duplicate.
    let fd: OwnedFd = dir.try_clone()?.into();
    // SAFETY: `fd` is an open directory descriptor whose ownership passes to
    // the DIR stream, closed below.
    let stream = unsafe { libc::fdopendir(fd.as_raw_fd()) };
    if stream.is_null() {
        return Err(io::Error::last_os_error());
    }
    std::mem::forget(fd);
    struct Stream(*mut libc::DIR);
    impl Drop for Stream {
        fn drop(&mut self) {
            // SAFETY: the stream came from fdopendir and is closed once.
            unsafe { libc::closedir(self.0) };
        }
    }
    let stream = Stream(stream);
    // The descriptor may have been read before: start from the beginning.
    // SAFETY: valid stream.
    unsafe { libc::rewinddir(stream.0) };
    let mut names = Vec::new();
    loop {
        // readdir reports errors only through errno, so clear it first.
        // SAFETY: errno is thread-local; the stream is valid.
        let entry = unsafe {
            *libc::__errno_location() = 0;
            libc::readdir(stream.0)
        };
        if entry.is_null() {
            let err = io::Error::last_os_error();
            return match err.raw_os_error() {
                Some(0) | None => Ok(names),
                Some(_) => Err(err),
            };
        }
        // SAFETY: readdir returned a valid entry whose d_name is NUL-terminated.
        let name = unsafe { CStr::from_ptr((*entry).d_name.as_ptr()) };
        if name.to_bytes() != b"." && name.to_bytes() != b".." {
            names.push(name.to_owned());
        }
    }
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
                remove_tree(std::os::fd::AsFd::as_fd(&sub), &child)?;
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
