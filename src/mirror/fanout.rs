//! One source read feeding several targets: a sink that stands for many.
//! Each blob is read once and streamed to every target that lacks it, in
//! parallel through bounded pipes; a target that no longer needs the bytes
//! (it mounted the blob instead) simply stops reading.

use std::io::{self, Read};
use std::sync::Mutex;

use oci_spec::image::Descriptor;

use crate::digest::Digest;
use crate::image::RawManifest;
use crate::pipe;
use crate::progress::BlobKind;
use crate::reference::Reference;
use crate::transport::{Presence, Sink, TransportError};

/// A target and the names its manifests get there.
pub struct Branch<'a> {
    /// The target.
    pub sink: &'a dyn Sink,
    /// The names the top manifest gets in this target.
    pub names: Vec<Reference>,
    /// Which ledger (target registry) it belongs to: branches of the same
    /// registry never stream the same blob at once (one uploads, the
    /// others mount).
    pub registry: usize,
}

/// Several targets as one sink. Names given to [`Sink::put_manifest`] are
/// ignored: each branch carries its own.
pub struct FanOut<'a> {
    branches: Vec<Branch<'a>>,
    /// Per blob, which branches lack it.
    needs: Mutex<std::collections::HashMap<Digest, Vec<bool>>>,
}

impl<'a> FanOut<'a> {
    /// A sink writing to every branch.
    pub fn new(branches: Vec<Branch<'a>>) -> FanOut<'a> {
        FanOut {
            branches,
            needs: Mutex::new(std::collections::HashMap::new()),
        }
    }

    fn needs(&self, d: &Digest) -> Vec<bool> {
        self.needs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(d)
            .cloned()
            .unwrap_or_else(|| vec![true; self.branches.len()])
    }
}

impl Sink for FanOut<'_> {
    fn place(&self) -> String {
        self.branches
            .iter()
            .map(|b| b.sink.place())
            .collect::<Vec<_>>()
            .join(", ")
    }

    fn parallelism(&self) -> usize {
        self.branches
            .iter()
            .map(|b| b.sink.parallelism())
            .min()
            .unwrap_or(1)
    }

    fn verifies_digests(&self) -> bool {
        false
    }

    fn has_blob(&self, d: &Descriptor) -> Result<Presence, TransportError> {
        let mut need = Vec::with_capacity(self.branches.len());
        let mut mounted = None;
        for b in &self.branches {
            match b.sink.has_blob(d)? {
                Presence::Absent => need.push(true),
                Presence::Present => need.push(false),
                Presence::Mounted { from } => {
                    mounted.get_or_insert(from);
                    need.push(false);
                }
            }
        }
        let any = need.iter().any(|n| *n);
        self.needs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(d.digest().clone(), need);
        Ok(match (any, mounted) {
            (true, _) => Presence::Absent,
            (false, Some(from)) => Presence::Mounted { from },
            (false, None) => Presence::Present,
        })
    }

    fn put_blob(
        &self,
        d: &Descriptor,
        kind: &BlobKind,
        content: &mut (dyn Read + Send),
        progress: &(dyn Fn(u64) + Sync),
    ) -> Result<(), TransportError> {
        let need = self.needs(d.digest());
        // The first branch of each registry streams; the others of that
        // registry go after it and find the blob landed (a mount).
        let mut streams: Vec<usize> = Vec::new();
        let mut later: Vec<usize> = Vec::new();
        for (i, b) in self.branches.iter().enumerate() {
            if !need[i] {
                continue;
            }
            if streams
                .iter()
                .any(|&s| self.branches[s].registry == b.registry)
            {
                later.push(i);
            } else {
                streams.push(i);
            }
        }
        if let [only] = streams.as_slice() {
            self.branches[*only]
                .sink
                .put_blob(d, kind, content, progress)?;
        } else if !streams.is_empty() {
            tee(
                streams.iter().map(|&i| self.branches[i].sink).collect(),
                d,
                kind,
                content,
                progress,
            )?;
        }
        for i in later {
            // Nothing left to read: the blob is there to mount by now.
            self.branches[i]
                .sink
                .put_blob(d, kind, &mut io::empty(), &|_| {})?;
        }
        Ok(())
    }

    fn put_manifest(&self, m: &RawManifest, names: &[Reference]) -> Result<(), TransportError> {
        for b in &self.branches {
            // Children go by digest; the top one under the branch's names.
            let names = if names.is_empty() { &[][..] } else { &b.names };
            b.sink.put_manifest(m, names)?;
        }
        Ok(())
    }

    fn commit(&self) -> Result<(), TransportError> {
        for b in &self.branches {
            b.sink.commit()?;
        }
        Ok(())
    }
}

/// Streams `content` into several sinks at once, each on its own thread
/// behind a bounded pipe. A sink that stops reading (it mounted instead)
/// is dropped from the feed; the first error wins.
fn tee(
    sinks: Vec<&dyn Sink>,
    d: &Descriptor,
    kind: &BlobKind,
    content: &mut (dyn Read + Send),
    progress: &(dyn Fn(u64) + Sync),
) -> Result<(), TransportError> {
    std::thread::scope(|s| {
        let mut senders = Vec::new();
        let mut handles = Vec::new();
        for (i, sink) in sinks.into_iter().enumerate() {
            let (tx, mut rx) = pipe::pipe(4);
            senders.push(Some(tx));
            handles.push(s.spawn(move || {
                let noop = |_: u64| {};
                let report: &(dyn Fn(u64) + Sync) = if i == 0 { progress } else { &noop };
                let result = sink.put_blob(d, kind, &mut rx, report);
                // Drain, so the feeder never blocks on a sink that is done.
                let _ = io::copy(&mut rx, &mut io::sink());
                result
            }));
        }
        let mut read_error = None;
        loop {
            match pipe::read_chunk(content, pipe::CHUNK) {
                Ok(chunk) if chunk.is_empty() => break,
                Ok(chunk) => {
                    for tx in senders.iter_mut() {
                        if let Some(t) = tx
                            && t.send(chunk.clone()).is_err()
                        {
                            *tx = None;
                        }
                    }
                }
                Err(e) => {
                    read_error = Some(e);
                    break;
                }
            }
        }
        drop(senders);
        let results: Vec<Result<(), TransportError>> = handles
            .into_iter()
            .map(|h| {
                h.join().unwrap_or_else(|_| {
                    Err(TransportError::io(
                        "fan-out",
                        io::Error::other("a target's upload panicked"),
                    ))
                })
            })
            .collect();
        if let Some(e) = read_error {
            return Err(TransportError::from_content(
                e,
                |reason| TransportError::Corrupt {
                    place: "source".into(),
                    what: crate::transport::blob_noun(kind),
                    digest: d.digest().clone(),
                    reason,
                },
                || format!("read blob {}", d.digest()),
            ));
        }
        results.into_iter().collect()
    })
}
