//! Writing images into the store as one transaction.

use std::collections::HashSet;
use std::io::Read;
use std::sync::Mutex;

use oci_spec::image::{Descriptor, ImageManifest};

use crate::digest::Digest;
use crate::image::{Index, ManifestKind, RawManifest};
use crate::progress::BlobKind;
use crate::reference::Reference;
use crate::transport::{BlobReader, Presence, Sink, Source, TransportError};

use super::blobs::{self, IngestError, Staged};
use super::index::NameChange;
use super::meta::LayerInfo;
use super::{Store, StoreError};

/// A transaction writing into the store: blobs are staged (verified and
/// fsynced in the ingest area) as they arrive; [`Sink::commit`] moves them
/// into place and updates `index.json` under the lock, all at once.
/// Dropped without commit, it removes what it staged.
pub struct StoreSink<'a> {
    store: &'a Store,
    staged: Mutex<Vec<(Staged, Option<LayerInfo>)>>,
    /// Blobs found already in the store, each hard-linked into the ingest
    /// area: a collection running meanwhile (an `rmi` beside this write)
    /// may delete a blob no name reaches yet, and the link brings it back
    /// at commit instead of failing the write.
    pins: Mutex<Vec<(Digest, std::path::PathBuf)>>,
    manifests: Mutex<Vec<(RawManifest, Vec<Reference>)>>,
    changes: Mutex<Vec<NameChange>>,
    defer_compressed_scans: bool,
    list_unnamed: bool,
}

impl Store {
    /// Starts a write transaction.
    pub fn sink(&self) -> StoreSink<'_> {
        StoreSink {
            store: self,
            staged: Mutex::new(Vec::new()),
            pins: Mutex::new(Vec::new()),
            manifests: Mutex::new(Vec::new()),
            changes: Mutex::new(Vec::new()),
            defer_compressed_scans: false,
            list_unnamed: true,
        }
    }
}

impl StoreSink<'_> {
    /// Stores compressed layers as soon as their bytes are verified, and
    /// leaves decompressing them (for diff ID and size) to their first use:
    /// a pull runs at download speed, as skopeo's and containerd's do, and a
    /// mirror that only passes images on never decompresses at all.
    pub fn defer_compressed_scans(mut self) -> Self {
        self.defer_compressed_scans = true;
        self
    }

    /// Takes a blob already written, hashed and synced in the store's
    /// ingest area (a transformed layer, whose digest was known only once
    /// written): it goes into place at commit like any other, with its
    /// layer record when given.
    pub(crate) fn adopt(
        &self,
        path: std::path::PathBuf,
        digest: Digest,
        size: u64,
        layer: Option<LayerInfo>,
    ) {
        lock(&self.staged).push((
            blobs::Staged {
                path,
                digest,
                size,
                layer: None,
            },
            layer,
        ));
    }

    /// Leaves manifests given no name out of `index.json`: their blobs go
    /// into the store (a transform's results, copied out next) but they are
    /// not images anyone listed, and a later collection may remove them.
    pub fn unlisted(mut self) -> Self {
        self.list_unnamed = false;
        self
    }

    /// How names moved in the last commit (for docker's load messages).
    pub fn name_changes(&self) -> Vec<NameChange> {
        lock(&self.changes).clone()
    }

    fn corrupt(&self, kind: &BlobKind, digest: &Digest, reason: String) -> TransportError {
        TransportError::Corrupt {
            place: self.place(),
            what: crate::transport::blob_noun(kind),
            digest: digest.clone(),
            reason,
        }
    }

    /// True when the blob is in the store; it is then pinned (see `pins`).
    fn present(&self, digest: &Digest) -> bool {
        let path = self.store.blob_path(digest);
        if !path.is_file() {
            return false;
        }
        if lock(&self.pins).iter().any(|(d, _)| d == digest) {
            return true;
        }
        let pin = blobs::temp_path(&self.store.ingest_dir(), "pin");
        match std::fs::hard_link(&path, &pin) {
            Ok(()) => lock(&self.pins).push((digest.clone(), pin)),
            // Gone between the two calls: not present after all.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return false,
            // No links here: the commit's own check still catches a race.
            Err(_) => {}
        }
        true
    }

    fn is_staged(&self, digest: &Digest) -> bool {
        lock(&self.staged).iter().any(|(s, _)| &s.digest == digest)
    }

    /// Every blob the recorded manifests need, for the commit's final check.
    fn needed(
        &self,
        manifests: &[(RawManifest, Vec<Reference>)],
    ) -> Result<HashSet<Digest>, TransportError> {
        let mut needed = HashSet::new();
        for (m, _) in manifests {
            needed.insert(m.digest.clone());
            match m.kind().map_err(|e| TransportError::Image {
                place: self.place(),
                source: Box::new(e),
            })? {
                ManifestKind::Image => {
                    let parsed: ImageManifest = serde_json::from_slice(&m.bytes)
                        .map_err(|e| self.corrupt(&BlobKind::Manifest, &m.digest, e.to_string()))?;
                    needed.insert(parsed.config().digest().clone());
                    needed.extend(parsed.layers().iter().map(|l| l.digest().clone()));
                }
                ManifestKind::Index => {
                    let index = Index::new(m.clone()).map_err(|e| TransportError::Image {
                        place: self.place(),
                        source: Box::new(e),
                    })?;
                    needed.extend(index.children().iter().map(|c| c.digest().clone()));
                }
            }
        }
        Ok(needed)
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Sink for StoreSink<'_> {
    fn place(&self) -> String {
        format!("store {}", self.store.root().display())
    }

    fn parallelism(&self) -> usize {
        4
    }

    fn verifies_digests(&self) -> bool {
        true
    }

    fn has_blob(&self, d: &Descriptor) -> Result<Presence, TransportError> {
        let there = self.is_staged(d.digest()) || self.present(d.digest());
        Ok(Presence::from_bool(there))
    }

    fn put_blob(
        &self,
        d: &Descriptor,
        kind: &BlobKind,
        content: &mut (dyn Read + Send),
        progress: &(dyn Fn(u64) + Sync),
    ) -> Result<(), TransportError> {
        let scan = match kind {
            BlobKind::Layer { .. } if self.defer_compressed_scans => blobs::Scan::Uncompressed,
            BlobKind::Layer { .. } => blobs::Scan::Always,
            _ => blobs::Scan::No,
        };
        let staged = blobs::ingest(&self.store.ingest_dir(), content, scan, progress).map_err(
            |e| match e {
                // A broken download is not a corrupt blob: only a digest or
                // size mismatch is.
                IngestError::Read(e) => TransportError::from_content(
                    e,
                    |reason| self.corrupt(kind, d.digest(), reason),
                    || {
                        format!(
                            "{}: read {} {}",
                            self.place(),
                            crate::transport::blob_noun(kind),
                            d.digest()
                        )
                    },
                ),
                IngestError::Store(e) => TransportError::Store(e),
            },
        )?;
        let discard = |err: TransportError| {
            let _ = std::fs::remove_file(&staged.path);
            Err(err)
        };
        if staged.size != d.size() {
            return discard(self.corrupt(
                kind,
                d.digest(),
                format!(
                    "{} bytes where its descriptor announces {}",
                    staged.size,
                    d.size()
                ),
            ));
        }
        if &staged.digest != d.digest() {
            return discard(self.corrupt(
                kind,
                d.digest(),
                format!(
                    "content does not match its digest (it hashes to {})",
                    staged.digest
                ),
            ));
        }
        let info = match (kind, &staged.layer) {
            (BlobKind::Layer { .. }, Some(Err(e))) => {
                return discard(self.corrupt(kind, d.digest(), e.to_string()));
            }
            (BlobKind::Layer { diff_id }, Some(Ok(stats))) => {
                let found = stats
                    .diff_id
                    .clone()
                    .unwrap_or_else(|| staged.digest.clone());
                if &found != diff_id {
                    return discard(self.corrupt(kind, d.digest(), format!("uncompressed content hashes to {found}, but the image config expects diff ID {diff_id}")));
                }
                Some(LayerInfo {
                    diff_id: found,
                    size: stats.unpacked_size,
                })
            }
            _ => None,
        };
        lock(&self.staged).push((staged, info));
        Ok(())
    }

    fn put_manifest(&self, m: &RawManifest, names: &[Reference]) -> Result<(), TransportError> {
        if !self.is_staged(&m.digest) && !self.present(&m.digest) {
            let d = m.descriptor();
            self.put_blob(&d, &BlobKind::Manifest, &mut &m.bytes[..], &|_| {})?;
        }
        lock(&self.manifests).push((m.clone(), names.to_vec()));
        Ok(())
    }

    fn commit(&self) -> Result<(), TransportError> {
        let manifests = lock(&self.manifests).clone();
        let needed = self.needed(&manifests)?;
        let store = self.store;
        let _guard = store.lock()?;
        let mut staged = std::mem::take(&mut *lock(&self.staged));
        for (blob, info) in &staged {
            let dest = store.blob_path(&blob.digest);
            if dest.exists() {
                let _ = std::fs::remove_file(&blob.path);
            } else {
                std::fs::rename(&blob.path, &dest)
                    .map_err(|e| StoreError::io("rename into place", &dest, e))?;
            }
            if let Some(info) = info {
                store.write_layer_info(&blob.digest, info)?;
            }
        }
        staged.clear();
        // A pinned blob a collection took meanwhile comes back.
        for (digest, pin) in lock(&self.pins).drain(..) {
            let dest = store.blob_path(&digest);
            if needed.contains(&digest) && !dest.exists() {
                std::fs::rename(&pin, &dest)
                    .map_err(|e| StoreError::io("rename into place", &dest, e))?;
            } else {
                let _ = std::fs::remove_file(&pin);
            }
        }
        blobs::sync_dir(&store.root.join("blobs/sha256"))?;
        for d in &needed {
            if !store.has_blob(d) {
                return Err(StoreError::Raced(d.clone()).into());
            }
        }
        let changes = store.update_entries_locked(|entries| {
            let mut changes = Vec::new();
            for (m, names) in &manifests {
                let d = m.descriptor();
                if names.is_empty() && self.list_unnamed {
                    // Children of an index are reached through it; only a
                    // top-level image or index with no name becomes a
                    // dangling entry.
                    if !is_child(&manifests, &m.digest) {
                        entries.ensure_present(&d);
                    }
                }
                let id = serde_json::from_slice::<ImageManifest>(&m.bytes)
                    .ok()
                    .map(|p| p.config().digest().clone());
                for name in names {
                    let change = entries.set_name(name, &d);
                    if let (Some(prev), Some(id)) = (&change.previous, &id) {
                        store.forget_if_same_image(entries, prev, id);
                    }
                    changes.push(change);
                }
            }
            Ok(changes)
        })?;
        *lock(&self.changes) = changes;
        Ok(())
    }
}

/// True when some recorded index names `digest` as a child.
fn is_child(manifests: &[(RawManifest, Vec<Reference>)], digest: &Digest) -> bool {
    manifests.iter().any(|(m, _)| {
        m.kind().ok() == Some(ManifestKind::Index)
            && Index::new(m.clone())
                .is_ok_and(|i| i.children().iter().any(|c| c.digest() == digest))
    })
}

impl Drop for StoreSink<'_> {
    fn drop(&mut self) {
        for (blob, _) in lock(&self.staged).drain(..) {
            let _ = std::fs::remove_file(&blob.path);
        }
        for (_, pin) in lock(&self.pins).drain(..) {
            let _ = std::fs::remove_file(&pin);
        }
    }
}

impl Source for Store {
    fn place(&self) -> String {
        format!("store {}", self.root().display())
    }

    fn open_blob(&self, d: &Descriptor) -> Result<BlobReader<'_>, TransportError> {
        Ok(Box::new(Store::open_blob(self, d.digest())?))
    }

    fn verified_at_rest(&self) -> bool {
        true
    }

    fn blob_file(&self, d: &Descriptor) -> Option<std::fs::File> {
        let file = Store::open_blob(self, d.digest()).ok()?;
        let len = file.metadata().ok()?.len();
        (len == d.size()).then_some(file)
    }
}

#[cfg(test)]
mod tests {
    use oci_spec::image::MediaType;

    use super::*;
    use crate::transport::registry::RegistryError;

    /// A content stream that gives some bytes, then fails with `error`.
    struct Failing(Option<std::io::Error>);

    impl Read for Failing {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            match self.0.take() {
                Some(e) => Err(e),
                None => {
                    buf[0] = b'x';
                    Ok(1)
                }
            }
        }
    }

    fn put(error: std::io::Error) -> TransportError {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path().join("store")).unwrap();
        let sink = store.sink();
        let d = Descriptor::new(MediaType::ImageConfig, 10, crate::digest::sha256_of(b"c"));
        let mut content = Failing(Some(error));
        let e = sink
            .put_blob(&d, &BlobKind::Config, &mut content, &|_| {})
            .unwrap_err();
        // Nothing is left in the ingest area either way.
        assert_eq!(std::fs::read_dir(store.ingest_dir()).unwrap().count(), 0);
        e
    }

    #[test]
    fn a_broken_download_is_reported_as_itself_not_as_corruption() {
        let broken = RegistryError::Connection {
            registry: "r".into(),
            what: "download blob sha256:c".into(),
            detail: "connection reset".into(),
            retryable: true,
        };
        let e = put(std::io::Error::other(broken));
        assert!(matches!(e, TransportError::Registry(_)), "{e:?}");
        assert!(e.is_retryable() && !e.retries_exhausted());
        assert!(e.to_string().contains("connection reset"), "{e}");
    }

    #[test]
    fn a_digest_mismatch_stays_corruption() {
        let e = put(crate::digest::invalid_data(
            "content does not match its digest".into(),
        ));
        assert!(
            matches!(e, TransportError::Corrupt { what: "config", .. }),
            "{e:?}"
        );
        assert!(!e.is_retryable());
    }

    #[test]
    fn another_read_error_keeps_its_cause() {
        let e = put(std::io::Error::from_raw_os_error(libc::EIO));
        assert!(matches!(e, TransportError::Io { .. }), "{e:?}");
        assert!(!e.is_retryable());
        assert!(e.to_string().contains("read config"), "{e}");
    }

    #[test]
    fn a_blob_found_present_survives_a_collection_before_commit() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("store");
        let ctx = crate::command::Context::new(
            root.clone(),
            crate::transport::registry::Registries::new(&[]),
        );
        let archive = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/hello.tar");
        let request = crate::command::load::LoadRequest {
            input: Some(archive),
            quiet: true,
            transform: Vec::new(),
        };
        crate::command::load::run(&ctx, &request, &crate::command::BufferUi::default()).unwrap();
        let store = Store::open(root).unwrap();
        let image = store.lookup("strata-demo/hello:1.0").unwrap().image;
        let name = Reference::parse("again:1").unwrap();
        let sink = store.sink();
        // The engine asks, finds everything there, and sends nothing.
        assert_eq!(
            sink.has_blob(image.config_descriptor()).unwrap(),
            Presence::Present
        );
        for l in image.layers() {
            assert_eq!(sink.has_blob(&l.descriptor).unwrap(), Presence::Present);
        }
        sink.put_manifest(image.manifest(), std::slice::from_ref(&name))
            .unwrap();
        // Meanwhile the image goes, and its blobs with it.
        store.remove("strata-demo/hello:1.0", false).unwrap();
        assert!(!store.has_blob(image.id()));
        sink.commit().unwrap();
        let back = store.lookup("again:1").unwrap();
        assert_eq!(back.id(), image.id());
        assert!(store.check(false).unwrap().problems.is_empty());
        drop(sink);
        assert_eq!(std::fs::read_dir(store.ingest_dir()).unwrap().count(), 0);
    }
}
