//! The store's lock: an advisory file lock beside the layout, so that
//! several strata processes update `index.json` one at a time.

use std::fs::{File, OpenOptions};

use super::{Store, StoreError};

/// Holds the lock until dropped.
#[derive(Debug)]
pub(crate) struct LockGuard {
    file: File,
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        // Closing the file releases the lock too; unlocking first is explicit.
        let _ = self.file.unlock();
    }
}

impl Store {
    /// Takes the exclusive lock, waiting for other holders.
    pub(crate) fn lock(&self) -> Result<LockGuard, StoreError> {
        let path = self.private().join("lock");
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| StoreError::io("open", &path, e))?;
        file.lock().map_err(|e| StoreError::io("lock", &path, e))?;
        Ok(LockGuard { file })
    }
}
