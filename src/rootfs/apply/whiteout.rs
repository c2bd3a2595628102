//! OCI whiteouts: converted to overlayfs ones (`Mode::Overlay`) or
//! applied (`Mode::Flatten`), never written as files.
//!
//! The image spec's rule decides both: a whiteout applies to lower layers
//! only. So whatever this layer wrote (recorded in `touched`, with its
//! ancestors) survives its own layer's whiteouts, wherever they sit in the
//! archive: `.wh.NAME` over a directory the layer wrote only empties it of
//! lower content, and `.wh..wh..opq` removes from its directory what is not
//! this layer's, descending into the directories this layer wrote into.

use std::ffi::OsStr;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use super::{Applier, Mode, OPAQUE_XATTR, Walk, shown};
use crate::rootfs::sys::{self, Kind};
use crate::rootfs::{Refusal, RootfsError};

impl Applier {
    /// `DIR/.wh..wh..opq`.
    pub(super) fn opaque(&mut self, marker: &Path) -> Result<(), RootfsError> {
        let dir_rel = marker.parent().unwrap_or(Path::new("")).to_path_buf();
        match self.mode {
            Mode::Overlay => {
                if !self.as_root {
                    return Err(
                        self.needs_root("an overlayfs opaque directory (trusted.overlay.opaque)")
                    );
                }
                let fd = match self.walk(&dir_rel, true)? {
                    Walk::Dir(fd) => fd,
                    Walk::Symlink(p) => return Err(self.refuse(Refusal::SymlinkParent(shown(&p)))),
                    Walk::NotDir(p) => return Err(self.refuse(Refusal::NotADirectory(shown(&p)))),
                    Walk::Missing => {
                        let missing = io::Error::from_raw_os_error(libc::ENOENT);
                        return Err(self.fail("create a parent directory", missing));
                    }
                };
                self.set_opaque(&fd)
            }
            Mode::Flatten => match self.walk(&dir_rel, false)? {
                Walk::Dir(fd) => self.prune(&dir_rel, &fd),
                Walk::Symlink(p) => Err(self.refuse(Refusal::SymlinkParent(shown(&p)))),
                Walk::Missing | Walk::NotDir(_) => Ok(()),
            },
        }
    }

    /// `DIR/.wh.NAME`.
    pub(super) fn whiteout(
        &mut self,
        marker: &Path,
        target: &OsStr,
        uid: u32,
        gid: u32,
    ) -> Result<(), RootfsError> {
        if target.is_empty() || target == "." || target == ".." {
            return Err(self.refuse(Refusal::EmptyWhiteout));
        }
        let dir_rel = marker.parent().unwrap_or(Path::new(""));
        let target_rel = dir_rel.join(target);
        let name = self.name(target)?;
        let create = self.mode == Mode::Overlay;
        if create && !self.as_root {
            return Err(self.needs_root("an overlayfs whiteout (a 0:0 character device)"));
        }
        let dir = match self.walk(dir_rel, create)? {
            Walk::Dir(fd) => fd,
            Walk::Symlink(p) => return Err(self.refuse(Refusal::SymlinkParent(shown(&p)))),
            Walk::NotDir(p) if create => return Err(self.refuse(Refusal::NotADirectory(shown(&p)))),
            // Nothing below to delete.
            Walk::NotDir(_) | Walk::Missing => return Ok(()),
        };
        let existing = sys::kind_at(dir.as_fd(), &name).map_err(|e| self.fail("inspect", e))?;
        if self.touched.contains(&target_rel) {
            // The same layer wrote `NAME`: it stays; only a directory's
            // lower content goes.
            if existing == Some(Kind::Dir) {
                let sub = sys::open_dir_path(dir.as_fd(), &name)
                    .map_err(|e| self.fail("open a directory", e))?;
                match self.mode {
                    Mode::Overlay => self.set_opaque(&sub)?,
                    Mode::Flatten => self.prune(&target_rel, &sub)?,
                }
            }
            return Ok(());
        }
        if let Some(kind) = existing {
            self.clear(dir.as_fd(), &name, &target_rel, kind)?;
        }
        if self.mode == Mode::Overlay {
            sys::mknod(dir.as_fd(), &name, libc::S_IFCHR, 0, 0)
                .map_err(|e| self.fail("create a whiteout device", e))?;
            sys::chown_at(dir.as_fd(), &name, uid, gid)
                .map_err(|e| self.fail("set the owner", e))?;
            self.whited.insert(target_rel);
        }
        Ok(())
    }

    /// Removes from the directory `dir_rel` everything lower layers put
    /// there, keeping what this layer wrote (and descending into the
    /// directories it wrote into).
    fn prune(&mut self, dir_rel: &Path, fd: &OwnedFd) -> Result<(), RootfsError> {
        let dir =
            sys::open_dir_read(fd.as_fd(), c".").map_err(|e| self.fail("open a directory", e))?;
        let names = sys::list(&dir).map_err(|e| self.fail("list a directory", e))?;
        for name in names {
            let child = dir_rel.join(OsStr::from_bytes(name.to_bytes()));
            let kind = sys::kind_at(dir.as_fd(), &name).map_err(|e| self.fail("inspect", e))?;
            let Some(kind) = kind else { continue };
            if !self.touched.contains(&child) {
                self.clear(dir.as_fd(), &name, &child, kind)?;
            } else if kind == Kind::Dir {
                let sub = sys::open_dir_path(dir.as_fd(), &name)
                    .map_err(|e| self.fail("open a directory", e))?;
                self.prune(&child, &sub)?;
            }
        }
        Ok(())
    }

    /// Sets `trusted.overlay.opaque=y` on a directory (given as any descriptor).
    pub(super) fn set_opaque(&self, dir: &impl AsFd) -> Result<(), RootfsError> {
        let file =
            sys::open_dir_read(dir.as_fd(), c".").map_err(|e| self.fail("open a directory", e))?;
        sys::fsetxattr(&file, OPAQUE_XATTR, b"y")
            .map_err(|e| self.fail("set trusted.overlay.opaque", e))
    }
}
