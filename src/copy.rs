//! The copy engine: the one place that moves image bytes from a source to
//! a sink. It skips blobs the sink has, moves the rest in parallel (as far
//! as the sink allows), checks digests as bytes flow unless the sink checks
//! them itself, retries what is worth retrying, and writes manifests last.

use std::collections::HashSet;
use std::io::Read;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use oci_spec::image::Descriptor;

use crate::cancel::Cancel;
use crate::digest::{Digest, VerifyingReader};
use crate::image::{Image, Index};
use crate::progress::{BlobKind, Event, Outcome, Progress};
use crate::reference::Reference;
use crate::transport::registry::PlatformChoice;
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
    /// Attempts per blob for retryable errors.
    pub attempts: u32,
    /// Stops the copy at the next blob or chunk when set.
    pub cancel: Cancel,
}

impl Default for CopyOptions {
    fn default() -> Self {
        CopyOptions {
            parallelism: 3,
            attempts: 3,
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
    let mut attempt = 1;
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
            Err(e) if e.is_retryable() && attempt < options.attempts => {
                std::thread::sleep(Duration::from_millis(200 << attempt));
                attempt += 1;
            }
            Err(e) => return Err(e),
            Ok(()) => break,
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
