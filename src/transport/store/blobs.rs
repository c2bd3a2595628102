//! Blobs on disk: paths, reading, and ingest (write to a temporary file,
//! hash while writing, fsync, rename into place later).

use std::fs::{self, File};
use std::io::{self, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::compression::Compression;
use crate::digest::{Digest, Hasher};
use crate::pipe;
use crate::rootfs::{self, LayerStats, RootfsError};

use super::{Store, StoreError};

pub(crate) use crate::pipe::CHUNK;

impl Store {
    /// Where a blob lives (whether or not it is there).
    pub fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.root
            .join("blobs")
            .join(digest.algorithm().as_ref())
            .join(digest.digest())
    }

    /// True when the blob is in the store.
    pub fn has_blob(&self, digest: &Digest) -> bool {
        self.blob_path(digest).is_file()
    }

    /// Opens a blob for reading.
    pub fn open_blob(&self, digest: &Digest) -> Result<File, StoreError> {
        let path = self.blob_path(digest);
        File::open(&path).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => StoreError::MissingBlob(digest.clone()),
            _ => StoreError::io("open", &path, e),
        })
    }

    /// Reads a small blob (manifest or config) whole.
    pub fn read_blob(&self, digest: &Digest) -> Result<Vec<u8>, StoreError> {
        let mut out = Vec::new();
        self.open_blob(digest)?
            .read_to_end(&mut out)
            .map_err(|e| StoreError::io("read", &self.blob_path(digest), e))?;
        Ok(out)
    }

    /// The ingest area: temporary files on the store's filesystem.
    pub fn ingest_dir(&self) -> PathBuf {
        self.private().join("ingest")
    }
}

/// A unique temporary path in `dir`.
pub fn temp_path(dir: &Path, what: &str) -> PathBuf {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    dir.join(format!("{what}-{}-{n}-{nanos:08x}", std::process::id()))
}

/// The process that made a [`temp_path`] name, if the name is one.
pub(crate) fn temp_owner(name: &str) -> Option<u32> {
    let mut parts = name.rsplitn(4, '-');
    let _nanos = parts.next()?;
    let _n = parts.next()?;
    parts.next()?.parse().ok()
}

/// True while a process with this ID runs.
pub(crate) fn process_alive(pid: u32) -> bool {
    // Signal 0 only checks that the process exists; EPERM means it does
    // (someone else's). A number that is no process ID names none.
    let Some(pid) = i32::try_from(pid)
        .ok()
        .and_then(rustix::process::Pid::from_raw)
    else {
        return false;
    };
    matches!(
        rustix::process::test_kill_process(pid),
        Ok(()) | Err(rustix::io::Errno::PERM)
    )
}

/// Writes a small file atomically: temporary file, fsync, rename.
pub(crate) fn write_atomic(tmp_dir: &Path, dest: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    let tmp = temp_path(tmp_dir, "write");
    let result = (|| {
        let mut f = File::create(&tmp).map_err(|e| StoreError::io("create", &tmp, e))?;
        f.write_all(bytes)
            .map_err(|e| StoreError::io("write", &tmp, e))?;
        f.sync_all().map_err(|e| StoreError::io("sync", &tmp, e))?;
        fs::rename(&tmp, dest).map_err(|e| StoreError::io("rename into place", dest, e))?;
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

/// Makes a directory's entries durable (renames into it survive a crash).
pub(crate) fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| StoreError::io("sync", dir, e))
}

/// A blob written to the ingest area, hashed and fsynced, not yet in place.
#[derive(Debug)]
pub(crate) struct Staged {
    /// The temporary file.
    pub path: PathBuf,
    /// The digest of what was written.
    pub digest: Digest,
    /// Bytes written.
    pub size: u64,
    /// For layers: what the tar holds, or why it is not a valid layer.
    pub layer: Option<Result<LayerStats, RootfsError>>,
}

/// Why an ingest failed: the content (a bad layer) or the disk.
#[derive(Debug)]
pub(crate) enum IngestError {
    /// Reading the content failed (including a source's digest check).
    Read(io::Error),
    /// Writing to the store failed.
    Store(StoreError),
}

/// Which blobs are scanned as layers while they stream in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scan {
    /// Not a layer.
    No,
    /// A layer, scanned whatever its compression.
    Always,
    /// A layer, scanned now only when uncompressed (a cheap tar walk); a
    /// compressed one is decompressed later, on first need.
    Uncompressed,
}

/// Streams `content` into a temporary file in `dir`, hashing it; for a
/// layer (see [`Scan`]), a second thread decompresses and walks the tar at
/// the same time, so its diff ID and unpacked size come with no second read.
/// The file is removed again on any failure.
pub(crate) fn ingest(
    dir: &Path,
    content: &mut dyn Read,
    scan: Scan,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<Staged, IngestError> {
    let path = temp_path(dir, "blob");
    let result = ingest_to(&path, content, scan, progress);
    if result.is_err() {
        let _ = fs::remove_file(&path);
    }
    result
}

fn ingest_to(
    path: &Path,
    content: &mut dyn Read,
    scan: Scan,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<Staged, IngestError> {
    let store_err = |action, e| IngestError::Store(StoreError::io(action, path, e));
    let mut file = File::create(path).map_err(|e| store_err("create", e))?;
    let mut hasher = Hasher::new();
    let (tx, rx) = pipe::pipe(4);
    // The first chunk tells whether the layer is compressed.
    let mut first = Some(pipe::read_chunk(content, CHUNK).map_err(IngestError::Read)?);
    let scan_now = match scan {
        Scan::No => false,
        Scan::Always => true,
        Scan::Uncompressed => first
            .as_deref()
            .is_some_and(|c| Compression::detect(c) == Compression::None),
    };
    let layer = std::thread::scope(|s| {
        let scanner = scan_now
            .then(|| s.spawn(move || rootfs::scan_layer(BufReader::with_capacity(CHUNK, rx))));
        let mut tx = scanner.is_some().then_some(tx);
        loop {
            let chunk = match first.take() {
                Some(c) => c,
                None => pipe::read_chunk(content, CHUNK).map_err(IngestError::Read)?,
            };
            if chunk.is_empty() {
                break;
            }
            hasher.update(&chunk);
            file.write_all(&chunk).map_err(|e| store_err("write", e))?;
            progress(hasher.len());
            if let Some(t) = &tx
                && t.send(chunk).is_err()
            {
                // The scanner gave up on a bad tar; reading on lets the
                // digest check, which says more, speak first.
                tx = None;
            }
        }
        drop(tx);
        Ok(scanner.map(|h| {
            h.join().unwrap_or_else(|_| {
                Err(RootfsError::Read(io::Error::other(
                    "layer scanner panicked",
                )))
            })
        }))
    })?;
    file.sync_all().map_err(|e| store_err("sync", e))?;
    let size = hasher.len();
    Ok(Staged {
        path: path.to_path_buf(),
        digest: hasher.finish(),
        size,
        layer,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temporary_names_carry_their_maker() {
        let p = temp_path(Path::new("/x"), "blob");
        let name = p.file_name().unwrap().to_str().unwrap();
        assert_eq!(temp_owner(name), Some(std::process::id()));
        assert_eq!(temp_owner("spool-12-3-0000abcd"), Some(12));
        assert_eq!(temp_owner("notes.txt"), None);
        assert!(process_alive(std::process::id()));
        assert!(
            process_alive(1),
            "init is someone else's: EPERM or not, alive"
        );
        let mut ended = std::process::Command::new("true").spawn().unwrap();
        ended.wait().unwrap();
        assert!(!process_alive(ended.id()));
        assert!(!process_alive(u32::MAX), "no process ID at all");
    }
}
