//! One source read feeding several targets: a sink that stands for many.
//! Each blob is read once and streamed to every target that lacks it, in
//! parallel through bounded pipes.
//!
//! Two run-wide bounds keep that safe and small. [`Flights`]: one check or
//! transfer of a given blob at a time in the whole run, so a transfer never waits,
//! with its source half-read, for another transfer of the same blob (two
//! fan-outs each uploading the blob to one registry and waiting for the
//! other's upload to the other registry would wait forever); the second
//! one finds the blob landed and mounts it. [`Gate`]: blob streams in
//! flight at once, which is what bounds memory, whatever the number of
//! tags copied at once.

use std::collections::HashSet;
use std::io::{self, Read};
use std::sync::{Condvar, Mutex};

use oci_spec::image::Descriptor;

use crate::digest::Digest;
use crate::image::RawManifest;
use crate::pipe;
use crate::progress::BlobKind;
use crate::reference::Reference;
use crate::transport::{Presence, Sink, TransportError};

use super::ledger::LedgerSink;

/// Blobs being transferred right now, run-wide.
#[derive(Debug, Default)]
pub struct Flights {
    busy: Mutex<HashSet<Digest>>,
    changed: Condvar,
}

/// A blob's transfer slot; dropping it frees the blob for the next.
pub struct Flight<'a> {
    flights: &'a Flights,
    digest: Digest,
}

impl Flights {
    /// Waits until no other transfer of `digest` runs, then takes it.
    pub fn enter(&self, digest: &Digest) -> Flight<'_> {
        let mut busy = self.busy.lock().unwrap_or_else(|p| p.into_inner());
        while busy.contains(digest) {
            busy = self.changed.wait(busy).unwrap_or_else(|p| p.into_inner());
        }
        busy.insert(digest.clone());
        Flight {
            flights: self,
            digest: digest.clone(),
        }
    }
}

impl Drop for Flight<'_> {
    fn drop(&mut self) {
        self.flights
            .busy
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&self.digest);
        self.flights.changed.notify_all();
    }
}

/// A counting semaphore: streams in flight at once.
#[derive(Debug)]
pub struct Gate {
    free: Mutex<usize>,
    changed: Condvar,
}

/// A place in the gate, given back on drop.
pub struct Pass<'a>(&'a Gate);

impl Gate {
    /// A gate letting `n` through at once.
    pub fn new(n: usize) -> Gate {
        Gate {
            free: Mutex::new(n.max(1)),
            changed: Condvar::new(),
        }
    }

    /// Waits for a place.
    pub fn enter(&self) -> Pass<'_> {
        let mut free = self.free.lock().unwrap_or_else(|p| p.into_inner());
        while *free == 0 {
            free = self.changed.wait(free).unwrap_or_else(|p| p.into_inner());
        }
        *free -= 1;
        Pass(self)
    }
}

impl Drop for Pass<'_> {
    fn drop(&mut self) {
        *self.0.free.lock().unwrap_or_else(|p| p.into_inner()) += 1;
        self.0.changed.notify_one();
    }
}

/// A target and the names its top manifest gets there.
pub struct Branch<'a> {
    /// The target repository.
    pub sink: &'a LedgerSink,
    /// The names the top manifest gets in this target.
    pub names: Vec<Reference>,
}

/// Several targets as one sink. Names given to [`Sink::put_manifest`] are
/// only a sign of the top manifest: each branch carries its own.
pub struct FanOut<'a> {
    branches: Vec<Branch<'a>>,
    flights: &'a Flights,
    gate: &'a Gate,
    /// Per blob, which branches lacked it when asked.
    needs: Mutex<std::collections::HashMap<Digest, Vec<bool>>>,
}

impl<'a> FanOut<'a> {
    /// A sink writing to every branch, within the run's bounds.
    pub fn new(branches: Vec<Branch<'a>>, flights: &'a Flights, gate: &'a Gate) -> FanOut<'a> {
        FanOut {
            branches,
            flights,
            gate,
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
        // In the blob's flight too: two tags of one repository sharing a
        // layer would otherwise both find it missing and both mount it, and
        // a registry rewriting a blob link while a manifest naming it is
        // stored may refuse that manifest ("digest invalid"). The second
        // one finds it in the ledger and asks nothing.
        let _flight = self.flights.enter(d.digest());
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
        let _flight = self.flights.enter(d.digest());
        // Another transfer may have landed it meanwhile: mount where it can.
        let mut streams: Vec<&LedgerSink> = Vec::new();
        let mut seen_registries: Vec<&str> = Vec::new();
        let mut later: Vec<&LedgerSink> = Vec::new();
        for (b, needed) in self.branches.iter().zip(self.needs(d.digest())) {
            if !needed || b.sink.mount_known(d.digest()) {
                continue;
            }
            // One branch per registry streams; the others of that registry
            // mount from it afterwards.
            if seen_registries.contains(&b.sink.registry()) {
                later.push(b.sink);
            } else {
                seen_registries.push(b.sink.registry());
                streams.push(b.sink);
            }
        }
        if !streams.is_empty() {
            let _pass = self.gate.enter();
            match streams.as_slice() {
                [only] => only.put_blob(d, kind, content, progress)?,
                _ => tee(&streams, d, kind, content, progress)?,
            }
        }
        for sink in later {
            // The blob has landed in its registry: this is a mount.
            sink.put_blob(d, kind, &mut io::empty(), &|_| {})?;
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
/// behind a bounded pipe; the first error wins. Every sink here uploads
/// (none waits for anything before reading: the flight is held), so the
/// feed never stalls on a sink that is not reading.
fn tee(
    sinks: &[&LedgerSink],
    d: &Descriptor,
    kind: &BlobKind,
    content: &mut (dyn Read + Send),
    progress: &(dyn Fn(u64) + Sync),
) -> Result<(), TransportError> {
    std::thread::scope(|s| {
        let mut senders = Vec::new();
        let mut handles = Vec::new();
        for (i, sink) in sinks.iter().enumerate() {
            let (tx, mut rx) = pipe::pipe(2);
            senders.push(Some(tx));
            handles.push(s.spawn(move || {
                let noop = |_: u64| {};
                let report: &(dyn Fn(u64) + Sync) = if i == 0 { progress } else { &noop };
                let result = sink.put_blob(d, kind, &mut rx, report);
                // Drain, so the feeder never blocks on a sink that stopped.
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_flight_per_blob() {
        let flights = Flights::default();
        let d = crate::digest::sha256_of(b"x");
        let other = crate::digest::sha256_of(b"y");
        let first = flights.enter(&d);
        // Another blob is not held up.
        drop(flights.enter(&other));
        std::thread::scope(|s| {
            let waiter = s.spawn(|| {
                let _second = flights.enter(&d);
            });
            std::thread::sleep(std::time::Duration::from_millis(50));
            assert!(!waiter.is_finished(), "the second transfer waits");
            drop(first);
            waiter.join().unwrap();
        });
    }

    #[test]
    fn the_gate_bounds_passes() {
        let gate = Gate::new(2);
        let a = gate.enter();
        let _b = gate.enter();
        std::thread::scope(|s| {
            let third = s.spawn(|| drop(gate.enter()));
            std::thread::sleep(std::time::Duration::from_millis(50));
            assert!(!third.is_finished());
            drop(a);
            third.join().unwrap();
        });
    }
}
