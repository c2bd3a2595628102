//! A bounded pipe between two threads, carrying chunks: one side reads a
//! stream and sends chunks, the other reads them back as a stream. It lets
//! one read feed two consumers (file and tar scanner) and turns a borrowed
//! reader into an owned one (an HTTP request body), with memory bounded by
//! the chunks in flight.

use std::io::{self, Read};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};

/// The chunk size used across strata for streaming blob bytes.
pub const CHUNK: usize = 1 << 20;

/// A new pipe holding at most `depth` chunks in flight.
pub fn pipe(depth: usize) -> (SyncSender<Vec<u8>>, PipeReader) {
    let (tx, rx) = sync_channel(depth);
    (
        tx,
        PipeReader {
            rx,
            current: Vec::new(),
            pos: 0,
        },
    )
}

/// The reading end: the chunks, in order, as a byte stream that ends when
/// the sender is dropped.
pub struct PipeReader {
    rx: Receiver<Vec<u8>>,
    current: Vec<u8>,
    pos: usize,
}

impl Read for PipeReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.current.len() {
            match self.rx.recv() {
                Ok(chunk) => {
                    self.current = chunk;
                    self.pos = 0;
                }
                Err(_) => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len() - self.pos);
        buf[..n].copy_from_slice(&self.current[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// Reads up to `limit` bytes (at most one [`CHUNK`]), retrying short reads so
/// chunks stay large. An empty result means end of stream.
pub fn read_chunk(r: &mut dyn Read, limit: usize) -> io::Result<Vec<u8>> {
    let mut buf = vec![0u8; limit.min(CHUNK)];
    let mut filled = 0;
    while filled < buf.len() {
        match r.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    buf.truncate(filled);
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_come_out_as_the_stream_that_went_in() {
        let (tx, mut rx) = pipe(2);
        let sender = std::thread::spawn(move || {
            for i in 0..10u8 {
                tx.send(vec![i; 1000]).unwrap();
            }
        });
        let mut out = Vec::new();
        rx.read_to_end(&mut out).unwrap();
        sender.join().unwrap();
        assert_eq!(out.len(), 10_000);
        assert_eq!(out[9_999], 9);
    }

    #[test]
    fn read_chunk_fills_across_short_reads() {
        let data = vec![7u8; 3000];
        let mut r = io::Read::chain(&data[..1000], &data[1000..]);
        assert_eq!(read_chunk(&mut r, 2500).unwrap().len(), 2500);
        assert_eq!(read_chunk(&mut r, 2500).unwrap().len(), 500);
        assert!(read_chunk(&mut r, 2500).unwrap().is_empty());
    }
}
