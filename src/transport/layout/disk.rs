//! File operations a layout writer needs to be crash-safe: atomic small
//! files, durable renames, and the advisory lock.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::transport::store::temp_path;

use super::LayoutError;

/// Writes a small file atomically: a temporary file in `tmp_dir` (on the
/// same filesystem), fsync, rename, fsync of the directory.
pub(super) fn write_atomic(tmp_dir: &Path, dest: &Path, bytes: &[u8]) -> Result<(), LayoutError> {
    let (tmp, mut f) = create_temp(tmp_dir, "write")?;
    let result = (|| {
        f.write_all(bytes)
            .map_err(|e| LayoutError::io("write", &tmp, e))?;
        f.sync_all().map_err(|e| LayoutError::io("sync", &tmp, e))?;
        fs::rename(&tmp, dest).map_err(|e| LayoutError::io("rename into place", dest, e))?;
        if let Some(parent) = dest.parent() {
            sync_dir(parent)?;
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Creates a new temporary file in `dir`, making `dir` if it is missing.
/// Another writer of the same layout removes the ingest directory when it
/// ends and finds it empty, which can happen between making the directory
/// and creating the file: then it is made again.
pub(super) fn create_temp(dir: &Path, prefix: &str) -> Result<(PathBuf, File), LayoutError> {
    let mut tries = 0;
    loop {
        let path = temp_path(dir, prefix);
        match File::create(&path) {
            Ok(f) => return Ok((path, f)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && tries < 8 => {
                tries += 1;
                fs::create_dir_all(dir).map_err(|e| LayoutError::io("create", dir, e))?;
            }
            Err(e) => return Err(LayoutError::io("create", &path, e)),
        }
    }
}

/// Makes a directory's entries durable (renames into it survive a crash).
pub(super) fn sync_dir(dir: &Path) -> Result<(), LayoutError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| LayoutError::io("sync", dir, e))
}

/// An exclusive advisory lock, held until dropped.
#[derive(Debug)]
pub(super) struct Lock {
    file: File,
}

impl Drop for Lock {
    fn drop(&mut self) {
        let _ = self.file.unlock();
    }
}

/// Takes the lock on `path`, creating the file, waiting for other holders.
pub(super) fn lock(path: &Path) -> Result<Lock, LayoutError> {
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .map_err(|e| LayoutError::io("open", path, e))?;
    file.lock().map_err(|e| LayoutError::io("lock", path, e))?;
    Ok(Lock { file })
}
