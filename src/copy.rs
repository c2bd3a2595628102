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
    let mut blobs: Vec<(Descriptor, BlobKind)> = Vec::new();
    let mut seen = HashSet::new();
    for image in what.images() {
        let layers = image.layers().iter().map(|l| {
            (
                l.descriptor.clone(),
                BlobKind::Layer {
                    diff_id: l.diff_id.clone(),
                },
            )
        });
        let config = std::iter::once((image.config_descriptor().clone(), BlobKind::Config));
        for (d, kind) in layers.chain(config) {
            if seen.insert(d.digest().clone()) {
                blobs.push((d, kind));
            }
        }
    }
    let presence = check_all(sink, &blobs, options)?;
    // Reported in image order, whichever check finished first.
    let mut todo: Vec<(Descriptor, BlobKind)> = Vec::new();
    for ((d, kind), presence) in blobs.into_iter().zip(presence) {
        let outcome = match presence {
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
    transfer_all(source, sink, &todo, options, progress)?;
    report.bytes = todo.iter().map(|(d, _)| d.size()).sum();
    report.copied = todo.into_iter().map(|(d, _)| d.digest().clone()).collect();
    progress.event(Event::WritingManifests);
    for image in what.images() {
        let top = matches!(what, Copyable::Image(_));
        sink.put_manifest(image.manifest(), if top { names } else { &[] })?;
    }
    if let Copyable::Index(index, _) = what {
        sink.put_manifest(index.manifest(), names)?;
    }
    Ok(report)
}

/// Asks the sink about every blob, as many at once as blobs may move (a
/// registry answers each with a round trip or two: a HEAD, maybe a mount).
/// The answers come back in the order of `blobs`; on failure, the error of
/// the earliest failing blob, so the message does not depend on timing.
fn check_all(
    sink: &dyn Sink,
    blobs: &[(Descriptor, BlobKind)],
    options: &CopyOptions,
) -> Result<Vec<Presence>, TransportError> {
    let workers = options
        .parallelism
        .min(sink.parallelism())
        .min(blobs.len())
        .max(1);
    if workers == 1 {
        return blobs
            .iter()
            .map(|(d, _)| {
                if options.cancel.is_cancelled() {
                    return Err(TransportError::Cancelled);
                }
                sink.has_blob(d)
            })
            .collect();
    }
    let next = AtomicUsize::new(0);
    let failed = AtomicBool::new(false);
    let answers: Mutex<Vec<Option<Result<Presence, TransportError>>>> =
        Mutex::new((0..blobs.len()).map(|_| None).collect());
    std::thread::scope(|s| {
        for _ in 0..workers {
            s.spawn(|| {
                while !failed.load(Ordering::Relaxed) {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some((d, _)) = blobs.get(i) else { break };
                    let answer = if options.cancel.is_cancelled() {
                        Err(TransportError::Cancelled)
                    } else {
                        sink.has_blob(d)
                    };
                    if answer.is_err() {
                        failed.store(true, Ordering::Relaxed);
                    }
                    answers.lock().unwrap_or_else(|p| p.into_inner())[i] = Some(answer);
                }
            });
        }
    });
    let answers = answers.into_inner().unwrap_or_else(|p| p.into_inner());
    let mut out = Vec::with_capacity(blobs.len());
    for answer in answers {
        match answer {
            Some(Ok(p)) => out.push(p),
            Some(Err(e)) => return Err(e),
            // Blobs are taken in order and each taken one is answered, so
            // an unasked blob comes after the failure that stopped the rest.
            None => return Err(TransportError::Cancelled),
        }
    }
    Ok(out)
}

/// Moves blobs with bounded parallelism; the first failure stops the rest.
/// In parallel, the largest blobs start first: the copy takes as long as
/// its longest transfer, which should not wait behind small ones. One at a
/// time (a stream such as an archive), they go in image order.
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
    let mut order: Vec<&(Descriptor, BlobKind)> = todo.iter().collect();
    if workers > 1 {
        order.sort_by_key(|(d, _)| std::cmp::Reverse(d.size()));
    }
    let next = AtomicUsize::new(0);
    let failed = AtomicBool::new(false);
    let first_error: Mutex<Option<TransportError>> = Mutex::new(None);
    std::thread::scope(|s| {
        for _ in 0..workers {
            s.spawn(|| {
                while !failed.load(Ordering::Relaxed) {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some((d, kind)) = order.get(i) else { break };
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

/// Content that does not match its digest or size came so from the source;
/// a sink that checks it only noticed. The error names the source (the
/// archive being loaded), not the store it was refused by.
fn blame_source(e: TransportError, source: &dyn Source, sink: &dyn Sink) -> TransportError {
    match e {
        TransportError::Corrupt {
            place,
            what,
            digest,
            reason,
        } if place == sink.place() => TransportError::Corrupt {
            place: source.place(),
            what,
            digest,
            reason,
        },
        other => other,
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
            Err(e) => return Err(blame_source(e, source, sink)),
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
        // The sink noticed; the error names where the bytes came from.
        assert!(matches!(
            run(&sink).unwrap_err(),
            TransportError::Corrupt { place, .. } if place == "memory"
        ));
        assert_eq!(sink.layer_writes.load(Ordering::SeqCst), 1);
    }
}

#[cfg(test)]
mod check_tests {
    use std::time::Duration;

    use std::sync::atomic::AtomicU64;

    use super::*;
    use crate::image::RawManifest;
    use crate::transport::layout::LayoutSource;
    use crate::transport::layout::testing::{entry, image_blobs, layout};

    /// A sink that has every other blob, answers later blobs sooner, and
    /// counts checks in flight; one digest may fail its check.
    struct SlowSink {
        order: Mutex<Vec<Digest>>,
        in_flight: AtomicUsize,
        most: AtomicUsize,
        fail: Option<Digest>,
        received: AtomicU64,
        started: Mutex<Vec<Digest>>,
        /// Whether odd-numbered blobs are there already.
        has_odd: bool,
    }

    impl SlowSink {
        fn new(order: Vec<Digest>, fail: Option<Digest>) -> SlowSink {
            SlowSink {
                order: Mutex::new(order),
                in_flight: AtomicUsize::new(0),
                most: AtomicUsize::new(0),
                fail,
                received: AtomicU64::new(0),
                started: Mutex::new(Vec::new()),
                has_odd: true,
            }
        }
    }

    impl Sink for SlowSink {
        fn place(&self) -> String {
            "slow".into()
        }
        fn parallelism(&self) -> usize {
            8
        }
        fn verifies_digests(&self) -> bool {
            false
        }
        fn has_blob(&self, d: &Descriptor) -> Result<Presence, TransportError> {
            let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
            self.most.fetch_max(now, Ordering::SeqCst);
            let order = self.order.lock().unwrap().clone();
            let i = order.iter().position(|o| o == d.digest()).unwrap();
            std::thread::sleep(Duration::from_millis(20 * (order.len() - i) as u64));
            self.in_flight.fetch_sub(1, Ordering::SeqCst);
            if self.fail.as_ref() == Some(d.digest()) {
                return Err(TransportError::BlobNotFound {
                    place: format!("check {i}"),
                    digest: d.digest().clone(),
                });
            }
            Ok(Presence::from_bool(self.has_odd && i % 2 == 1))
        }
        fn put_blob(
            &self,
            d: &Descriptor,
            _: &BlobKind,
            content: &mut (dyn Read + Send),
            _: &(dyn Fn(u64) + Sync),
        ) -> Result<(), TransportError> {
            self.started.lock().unwrap().push(d.digest().clone());
            // Long enough that a worker that started later has also started
            // before this one finishes and takes another blob.
            std::thread::sleep(Duration::from_millis(50));
            let n = std::io::copy(content, &mut std::io::sink())
                .map_err(|e| TransportError::io("drain", e))?;
            self.received.fetch_add(n, Ordering::SeqCst);
            Ok(())
        }
        fn put_manifest(&self, _: &RawManifest, _: &[Reference]) -> Result<(), TransportError> {
            Ok(())
        }
        fn commit(&self) -> Result<(), TransportError> {
            Ok(())
        }
    }

    #[derive(Default)]
    struct Recorder(Mutex<Vec<String>>);

    impl Progress for Recorder {
        fn event(&self, event: Event) {
            let line = match event {
                Event::BlobQueued { digest, .. } => format!("queued {digest}"),
                Event::BlobDone {
                    digest,
                    outcome: Outcome::Present,
                    ..
                } => format!("present {digest}"),
                Event::WritingManifests => "manifests".into(),
                _ => return,
            };
            self.0.lock().unwrap().push(line);
        }
    }

    fn image(dir: &std::path::Path) -> Copyable {
        let m = image_blobs(dir, "amd64", &["a", "b", "c", "d", "e"]);
        layout(dir, vec![entry(&m, Some("v1"))]);
        LayoutSource::open(dir)
            .unwrap()
            .resolve(Some("v1"), &PlatformChoice::All)
            .unwrap()
    }

    fn blobs_of(what: &Copyable) -> Vec<Digest> {
        let image = &what.images()[0];
        let mut out: Vec<Digest> = image
            .layers()
            .iter()
            .map(|l| l.descriptor.digest().clone())
            .collect();
        out.push(image.config_descriptor().digest().clone());
        out
    }

    #[test]
    fn blob_checks_run_in_parallel_and_report_in_image_order() {
        let tmp = tempfile::tempdir().unwrap();
        let what = image(tmp.path());
        let source = LayoutSource::open(tmp.path()).unwrap();
        let order = blobs_of(&what);
        let sink = SlowSink::new(order.clone(), None);
        let progress = Recorder::default();
        let options = CopyOptions {
            parallelism: 4,
            ..CopyOptions::default()
        };
        let report = copy(&source, &sink, &what, &[], &options, &progress).unwrap();
        let most = sink.most.load(Ordering::SeqCst);
        assert!((2..=4).contains(&most), "{most} checks at once");
        let expected: Vec<String> = order
            .iter()
            .enumerate()
            .map(|(i, d)| {
                if i % 2 == 1 {
                    format!("present {d}")
                } else {
                    format!("queued {d}")
                }
            })
            .chain(std::iter::once("manifests".to_string()))
            .collect();
        assert_eq!(*progress.0.lock().unwrap(), expected);
        assert_eq!(report.copied.len(), 3);
        let odd: Vec<Digest> = order.iter().skip(1).step_by(2).cloned().collect();
        assert_eq!(report.skipped, odd);
        assert_eq!(sink.received.load(Ordering::SeqCst), report.bytes);
    }

    #[test]
    fn in_parallel_the_largest_blobs_start_first() {
        let tmp = tempfile::tempdir().unwrap();
        let small = "s".repeat(10);
        let middle = "m".repeat(3000);
        let large = "l".repeat(9000);
        let m = image_blobs(tmp.path(), "amd64", &[&small, &middle, &large]);
        layout(tmp.path(), vec![entry(&m, Some("v1"))]);
        let source = LayoutSource::open(tmp.path()).unwrap();
        let what = source.resolve(Some("v1"), &PlatformChoice::All).unwrap();
        let layers: Vec<Digest> = blobs_of(&what)[..3].to_vec();
        let run = |parallelism| {
            // Nothing present: every blob moves.
            let sink = SlowSink {
                has_odd: false,
                ..SlowSink::new(blobs_of(&what), None)
            };
            let options = CopyOptions {
                parallelism,
                ..CopyOptions::default()
            };
            copy(
                &source,
                &sink,
                &what,
                &[],
                &options,
                &crate::progress::Silent,
            )
            .unwrap();
            sink.started.into_inner().unwrap()
        };
        // One at a time: image order (config last).
        assert_eq!(run(1)[..3], layers[..]);
        // Two at a time: the two largest go first, in either order.
        let started = run(2);
        assert!(
            started[..2].contains(&layers[1]) && started[..2].contains(&layers[2]),
            "{started:?}"
        );
    }

    #[test]
    fn a_failed_check_stops_the_copy_with_the_earliest_error() {
        let tmp = tempfile::tempdir().unwrap();
        let what = image(tmp.path());
        let source = LayoutSource::open(tmp.path()).unwrap();
        let order = blobs_of(&what);
        let sink = SlowSink::new(order.clone(), Some(order[1].clone()));
        let progress = Recorder::default();
        let options = CopyOptions {
            parallelism: 6,
            ..CopyOptions::default()
        };
        let e = copy(&source, &sink, &what, &[], &options, &progress).unwrap_err();
        assert!(e.to_string().starts_with("check 1:"), "{e}");
        assert!(progress.0.lock().unwrap().is_empty());
        assert_eq!(sink.received.load(Ordering::SeqCst), 0);
        // One at a time, the same.
        let options = CopyOptions {
            parallelism: 1,
            ..CopyOptions::default()
        };
        let e = copy(&source, &sink, &what, &[], &options, &progress).unwrap_err();
        assert!(e.to_string().starts_with("check 1:"), "{e}");
        assert_eq!(sink.most.load(Ordering::SeqCst), 6);
    }
}
