//! The copy engine: the one place that moves image bytes from a source to
//! a sink. It skips blobs the sink has, moves the rest in parallel (as far
//! as the sink allows), checks digests as bytes flow unless the sink checks
//! them itself, retries what is worth retrying and nobody retried yet, and
//! writes manifests last.

use std::collections::HashSet;
use std::io::Read;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use oci_spec::image::Descriptor;

use crate::cancel::Cancel;
use crate::digest::{Digest, VerifyingReader};
use crate::image::{Image, Index};
use crate::progress::{BlobKind, Event, Outcome, Progress};
use crate::reference::Reference;
use crate::transport::registry::PlatformChoice;
use crate::transport::registry::retry::{Attempts, RetryPolicy};
use crate::transport::{Presence, Sink, Source, TransportError};

/// What to copy: one image, or an index with the children to carry.
#[derive(Debug, Clone)]
pub enum Copyable {
    /// A single-platform image.
    Image(Box<Image>),
    /// A multi-platform index and its children (all of them, or the chosen ones).
    Index(Box<Index>, Vec<Image>),
}

impl Copyable {
    /// The digest of the top-level manifest or index.
    pub fn digest(&self) -> &Digest {
        match self {
            Copyable::Image(i) => &i.manifest().digest,
            Copyable::Index(i, _) => &i.manifest().digest,
        }
    }

    /// The images whose blobs move.
    pub fn images(&self) -> &[Image] {
        match self {
            Copyable::Image(i) => std::slice::from_ref(&**i),
            Copyable::Index(_, children) => children,
        }
    }

    /// Applies a platform choice to an index whose children are all at
    /// hand: one platform keeps only that child (the index is dropped, as
    /// a pull of one platform does); all keeps everything. An image passes
    /// through unchanged. `place` names the source in the error.
    pub fn choose(self, choice: &PlatformChoice, place: &str) -> Result<Copyable, TransportError> {
        let (index, children, want) = match (self, choice) {
            (Copyable::Index(index, children), PlatformChoice::One(want)) => {
                (index, children, want)
            }
            (other, _) => return Ok(other),
        };
        let no_platform = || TransportError::NoPlatform {
            place: place.to_string(),
            wanted: want.to_string(),
            available: platform_list(&index),
        };
        let chosen = index.select(want).ok_or_else(no_platform)?;
        children
            .into_iter()
            .find(|c| &c.manifest().digest == chosen.digest())
            .map(|c| Copyable::Image(Box::new(c)))
            .ok_or_else(no_platform)
    }
}

/// An index's platforms as one line for messages.
pub(crate) fn platform_list(index: &Index) -> String {
    let all: Vec<String> = index.platforms().iter().map(|p| p.to_string()).collect();
    if all.is_empty() {
        "none".into()
    } else {
        all.join(", ")
    }
}

/// How to copy.
#[derive(Debug, Clone)]
pub struct CopyOptions {
    /// Blobs moved at once, at most (the sink may allow fewer).
    pub parallelism: usize,
    /// How a blob whose transfer failed with a retryable error that nobody
    /// retried yet (a streamed upload, which the registry client sends only
    /// once) is moved again: the source reopened, the sink written anew.
    /// The registry clients' policy, so both spend the same attempts.
    pub retry: RetryPolicy,
    /// Stops the copy at the next blob or chunk when set.
    pub cancel: Cancel,
}

impl Default for CopyOptions {
    fn default() -> Self {
        CopyOptions {
            parallelism: 3,
            retry: RetryPolicy::default(),
            cancel: Cancel::new(),
        }
    }
}

/// What a copy did.
#[derive(Debug, Default, Clone)]
pub struct CopyReport {
    /// Blobs moved.
    pub copied: Vec<Digest>,
    /// Blobs the sink already had.
    pub skipped: Vec<Digest>,
    /// Bytes moved.
    pub bytes: u64,
}

/// Copies an image or index from `source` to `sink`, naming it `names`.
/// The sink is not committed: the caller commits once after all copies.
pub fn copy(
    source: &dyn Source,
    sink: &dyn Sink,
    what: &Copyable,
    names: &[Reference],
    options: &CopyOptions,
    progress: &dyn Progress,
) -> Result<CopyReport, TransportError> {
    let mut report = CopyReport::default();
    let mut todo: Vec<(Descriptor, BlobKind)> = Vec::new();
    let mut seen = HashSet::new();
    for image in what.images() {
        let blobs = image
            .layers()
            .iter()
            .map(|l| {
                (
                    l.descriptor.clone(),
                    BlobKind::Layer {
                        diff_id: l.diff_id.clone(),
                    },
                )
            })
            .chain(std::iter::once((
                image.config_descriptor().clone(),
                BlobKind::Config,
            )));
        for (d, kind) in blobs {
            if !seen.insert(d.digest().clone()) {
                continue;
            }
            let outcome = match sink.has_blob(&d)? {
                Presence::Absent => {
                    progress.event(Event::BlobQueued {
                        digest: d.digest().clone(),
                        kind: kind.clone(),
                        size: d.size(),
                    });
                    todo.push((d, kind));
                    continue;
                }
                Presence::Present => Outcome::Present,
                Presence::Mounted { from } => Outcome::Mounted { from },
            };
            progress.event(Event::BlobDone {
                digest: d.digest().clone(),
                kind,
                outcome,
            });
            report.skipped.push(d.digest().clone());
        }
    }
    transfer_all(source, sink, &todo, options, progress)?;
    report.bytes = todo.iter().map(|(d, _)| d.size()).sum();
    report.copied = todo.into_iter().map(|(d, _)| d.digest().clone()).collect();
    for image in what.images() {
        let top = matches!(what, Copyable::Image(_));
        sink.put_manifest(image.manifest(), if top { names } else { &[] })?;
    }
    if let Copyable::Index(index, _) = what {
        sink.put_manifest(index.manifest(), names)?;
    }
    Ok(report)
}

/// Moves blobs with bounded parallelism; the first failure stops the rest.
fn transfer_all(
    source: &dyn Source,
    sink: &dyn Sink,
    todo: &[(Descriptor, BlobKind)],
    options: &CopyOptions,
    progress: &dyn Progress,
) -> Result<(), TransportError> {
    let workers = options
        .parallelism
        .min(sink.parallelism())
        .min(todo.len())
        .max(1);
    let next = AtomicUsize::new(0);
    let failed = AtomicBool::new(false);
    let first_error: Mutex<Option<TransportError>> = Mutex::new(None);
    std::thread::scope(|s| {
        for _ in 0..workers {
            s.spawn(|| {
                while !failed.load(Ordering::Relaxed) {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some((d, kind)) = todo.get(i) else { break };
                    if options.cancel.is_cancelled() {
                        failed.store(true, Ordering::Relaxed);
                        first_error
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .get_or_insert(TransportError::Cancelled);
                        break;
                    }
                    if let Err(e) = transfer(source, sink, d, kind, options, progress) {
                        failed.store(true, Ordering::Relaxed);
                        first_error
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .get_or_insert(e);
                    }
                }
            });
        }
    });
    match first_error.into_inner().unwrap_or_else(|p| p.into_inner()) {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

fn transfer(
    source: &dyn Source,
    sink: &dyn Sink,
    d: &Descriptor,
    kind: &BlobKind,
    options: &CopyOptions,
    progress: &dyn Progress,
) -> Result<(), TransportError> {
    let digest = d.digest().clone();
    let size = d.size();
    progress.event(Event::BlobStart {
        digest: digest.clone(),
        kind: kind.clone(),
        size,
    });
    let report = |done: u64| {
        progress.event(Event::BlobProgress {
            digest: digest.clone(),
            done,
            size,
        });
    };
    let mut attempts = Attempts::new(options.retry);
    loop {
        let result = (|| {
            if !sink.verifies_digests()
                && source.verified_at_rest()
                && let Some(file) = source.blob_file(d)
            {
                return sink.put_blob_file(d, kind, file, &report);
            }
            let reader = Box::new(options.cancel.reader(source.open_blob(d)?));
            let mut reader: Box<dyn Read + Send + '_> = if sink.verifies_digests() {
                reader
            } else if source.verified_at_rest() {
                Box::new(SizeCheckingReader {
                    inner: reader,
                    left: size,
                    digest: &digest,
                })
            } else {
                Box::new(VerifyingReader::new(reader, digest.clone(), size))
            };
            sink.put_blob(d, kind, &mut reader, &report)
        })();
        match result {
            Ok(()) => break,
            // What the registry client already retried is not tried again:
            // retries would multiply.
            Err(e) if e.is_retryable() && !e.retries_exhausted() => {
                match attempts.failed(e.retry_after()) {
                    Some(wait) => std::thread::sleep(wait),
                    None => return Err(e),
                }
            }
            Err(e) => return Err(e),
        }
    }
    progress.event(Event::BlobDone {
        digest,
        kind: kind.clone(),
        outcome: Outcome::Moved,
    });
    Ok(())
}

/// Checks only that a trusted blob has the size its descriptor says.
struct SizeCheckingReader<'d, R> {
    inner: R,
    left: u64,
    digest: &'d Digest,
}

impl<R: Read> Read for SizeCheckingReader<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n as u64 > self.left {
            return Err(crate::digest::invalid_data(format!(
                "{} is larger than its descriptor says",
                self.digest
            )));
        }
        self.left -= n as u64;
        if n == 0 && self.left > 0 && !buf.is_empty() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                format!(
                    "{} is {} bytes shorter than its descriptor says",
                    self.digest, self.left
                ),
            ));
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;
    use std::time::Duration;

    use oci_spec::image::MediaType;

    use super::*;
    use crate::image::RawManifest;
    use crate::progress::Silent;
    use crate::transport::BlobReader;
    use crate::transport::registry::RegistryError;

    const LAYER: &[u8] = b"layer bytes";

    fn image() -> (Image, Vec<u8>) {
        let layer = crate::digest::sha256_of(LAYER);
        let config = serde_json::to_vec(&serde_json::json!({
            "architecture": "amd64", "os": "linux",
            "rootfs": {"type": "layers", "diff_ids": [layer.to_string()]},
        }))
        .unwrap();
        let m = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                       "size": config.len(), "digest": crate::digest::sha256_of(&config).to_string()},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                        "size": LAYER.len(), "digest": layer.to_string()}],
        });
        let raw = RawManifest::new(
            serde_json::to_vec(&m).unwrap(),
            MediaType::ImageManifest.to_string(),
        );
        (Image::new(raw, config.clone()).unwrap(), config)
    }

    struct Blobs(Vec<u8>);

    impl Source for Blobs {
        fn place(&self) -> String {
            "memory".into()
        }
        fn open_blob(&self, d: &Descriptor) -> Result<BlobReader<'_>, TransportError> {
            let bytes = if d.size() == LAYER.len() as u64 {
                LAYER.to_vec()
            } else {
                self.0.clone()
            };
            Ok(Box::new(std::io::Cursor::new(bytes)))
        }
    }

    /// A sink whose layer writes fail as scripted, then succeed.
    struct Flaky {
        failures: Mutex<VecDeque<TransportError>>,
        layer_writes: AtomicUsize,
    }

    impl Flaky {
        fn new(failures: impl IntoIterator<Item = TransportError>) -> Flaky {
            Flaky {
                failures: Mutex::new(failures.into_iter().collect()),
                layer_writes: AtomicUsize::new(0),
            }
        }
    }

    impl Sink for Flaky {
        fn place(&self) -> String {
            "flaky".into()
        }
        fn parallelism(&self) -> usize {
            1
        }
        fn verifies_digests(&self) -> bool {
            true
        }
        fn has_blob(&self, _: &Descriptor) -> Result<Presence, TransportError> {
            Ok(Presence::Absent)
        }
        fn put_blob(
            &self,
            _: &Descriptor,
            kind: &BlobKind,
            content: &mut (dyn Read + Send),
            _: &(dyn Fn(u64) + Sync),
        ) -> Result<(), TransportError> {
            std::io::copy(content, &mut std::io::sink()).unwrap();
            if !matches!(kind, BlobKind::Layer { .. }) {
                return Ok(());
            }
            self.layer_writes.fetch_add(1, Ordering::SeqCst);
            match self.failures.lock().unwrap().pop_front() {
                Some(e) => Err(e),
                None => Ok(()),
            }
        }
        fn put_manifest(&self, _: &RawManifest, _: &[Reference]) -> Result<(), TransportError> {
            Ok(())
        }
        fn commit(&self) -> Result<(), TransportError> {
            Ok(())
        }
    }

    fn broken_upload() -> TransportError {
        RegistryError::Connection {
            registry: "r".into(),
            what: "upload blob".into(),
            detail: "connection reset".into(),
            retryable: true,
        }
        .into()
    }

    fn run(sink: &Flaky) -> Result<CopyReport, TransportError> {
        let (img, config) = image();
        let options = CopyOptions {
            parallelism: 1,
            retry: RetryPolicy {
                attempts: 3,
                base: Duration::from_millis(1),
                max: Duration::from_millis(2),
            },
            cancel: Cancel::new(),
        };
        copy(
            &Blobs(config),
            sink,
            &Copyable::Image(Box::new(img)),
            &[],
            &options,
            &Silent,
        )
    }

    #[test]
    fn an_upload_nobody_retried_is_moved_again() {
        let sink = Flaky::new([broken_upload(), broken_upload()]);
        run(&sink).unwrap();
        assert_eq!(sink.layer_writes.load(Ordering::SeqCst), 3);
    }

    #[test]
    fn retries_stop_at_the_policys_attempts() {
        let sink = Flaky::new((0..10).map(|_| broken_upload()));
        assert!(run(&sink).unwrap_err().is_retryable());
        assert_eq!(sink.layer_writes.load(Ordering::SeqCst), 3);
    }

    #[test]
    fn what_the_client_already_retried_or_is_corrupt_is_not_retried() {
        let exhausted: TransportError = RegistryError::Exhausted {
            attempts: 5,
            last: Box::new(RegistryError::Status {
                registry: "r".into(),
                what: "download blob".into(),
                status: 503,
                errors: vec![],
                retry_after: None,
            }),
        }
        .into();
        let sink = Flaky::new([exhausted]);
        assert!(run(&sink).unwrap_err().retries_exhausted());
        assert_eq!(sink.layer_writes.load(Ordering::SeqCst), 1);
        let corrupt = TransportError::Corrupt {
            place: "flaky".into(),
            what: "layer",
            digest: crate::digest::sha256_of(LAYER),
            reason: "content does not match its digest".into(),
        };
        let sink = Flaky::new([corrupt]);
        assert!(matches!(
            run(&sink).unwrap_err(),
            TransportError::Corrupt { .. }
        ));
        assert_eq!(sink.layer_writes.load(Ordering::SeqCst), 1);
    }
}
