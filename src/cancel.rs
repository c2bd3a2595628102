//! Cooperative cancellation: a flag a long operation checks between
//! pieces of work (each blob, each chunk, each tag), set when a pipeline
//! step's timeout passes. Nothing is interrupted half-written: work stops
//! at the next check and unwinds through the usual error paths, so a
//! store or registry is left as after any other failure.

use std::io::{self, Read};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// A shared cancellation flag; clones see the same flag.
#[derive(Debug, Clone, Default)]
pub struct Cancel(Arc<AtomicBool>);

impl Cancel {
    /// A flag nobody has set.
    pub fn new() -> Cancel {
        Cancel::default()
    }

    /// Asks every holder to stop.
    pub fn cancel(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    /// True once [`Cancel::cancel`] was called.
    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }

    /// An I/O error when cancelled, for readers and loops.
    pub fn check(&self) -> io::Result<()> {
        if self.is_cancelled() {
            return Err(io::Error::new(io::ErrorKind::Interrupted, "cancelled"));
        }
        Ok(())
    }

    /// Wraps a reader so it fails at its next read once cancelled.
    pub fn reader<R: Read>(&self, inner: R) -> CancelReader<R> {
        CancelReader {
            inner,
            cancel: self.clone(),
        }
    }
}

/// A reader that stops when its [`Cancel`] is set.
pub struct CancelReader<R> {
    inner: R,
    cancel: Cancel,
}

impl<R: Read> Read for CancelReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.cancel.check()?;
        self.inner.read(buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cancelled_reader_stops() {
        let c = Cancel::new();
        let mut r = c.reader(&b"abcdef"[..]);
        let mut buf = [0u8; 2];
        assert_eq!(r.read(&mut buf).unwrap(), 2);
        c.clone().cancel();
        let e = r.read(&mut buf).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::Interrupted);
    }
}
