//! gzip on several cores: the stream is cut into blocks, each block is
//! compressed on a worker thread as a gzip member of its own, and the
//! members are written in order. Concatenated members are one valid gzip
//! stream (RFC 1952, as pigz and Go's readers take it), so a big layer
//! compresses about as many times faster as there are cores, at the cost of
//! a little ratio at block edges.

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread::JoinHandle;

use flate2::Compression;
use flate2::write::GzEncoder;

/// The size of each independently compressed block.
pub const BLOCK: usize = 1 << 20;

/// A writer compressing to gzip on `workers` threads.
pub struct ParallelGzip<W: Write> {
    out: Option<W>,
    level: u32,
    block: Vec<u8>,
    next_seq: u64,
    written_seq: u64,
    to_workers: Option<SyncSender<(u64, Vec<u8>)>>,
    from_workers: Receiver<(u64, io::Result<Vec<u8>>)>,
    workers: Vec<JoinHandle<()>>,
    done: BTreeMap<u64, Vec<u8>>,
    in_flight: usize,
    max_in_flight: usize,
}

impl<W: Write> ParallelGzip<W> {
    /// Compresses into `out` at `level` (1 fastest, 9 smallest) on
    /// `workers` threads (at least one).
    pub fn new(out: W, level: u32, workers: usize) -> ParallelGzip<W> {
        let workers_n = workers.max(1);
        let (tx, rx) = sync_channel::<(u64, Vec<u8>)>(workers_n);
        let rx = std::sync::Arc::new(std::sync::Mutex::new(rx));
        let (done_tx, done_rx) = sync_channel::<(u64, io::Result<Vec<u8>>)>(workers_n * 2);
        let handles = (0..workers_n)
            .map(|_| {
                let rx = rx.clone();
                let done_tx = done_tx.clone();
                std::thread::spawn(move || {
                    loop {
                        let job = rx.lock().unwrap_or_else(|p| p.into_inner()).recv();
                        let Ok((seq, data)) = job else { break };
                        let mut enc = GzEncoder::new(
                            Vec::with_capacity(data.len() / 2),
                            Compression::new(level),
                        );
                        let result = enc.write_all(&data).and_then(|()| enc.finish());
                        if done_tx.send((seq, result)).is_err() {
                            break;
                        }
                    }
                })
            })
            .collect();
        ParallelGzip {
            out: Some(out),
            level,
            block: Vec::with_capacity(BLOCK),
            next_seq: 0,
            written_seq: 0,
            to_workers: Some(tx),
            from_workers: done_rx,
            workers: handles,
            done: BTreeMap::new(),
            in_flight: 0,
            max_in_flight: workers_n * 2,
        }
    }

    /// The compression level.
    pub fn level(&self) -> u32 {
        self.level
    }

    fn send_block(&mut self) -> io::Result<()> {
        if self.block.is_empty() {
            return Ok(());
        }
        while self.in_flight >= self.max_in_flight {
            self.collect_one()?;
        }
        let data = std::mem::replace(&mut self.block, Vec::with_capacity(BLOCK));
        let tx = self
            .to_workers
            .as_ref()
            .ok_or_else(|| io::Error::other("compression finished"))?;
        tx.send((self.next_seq, data))
            .map_err(|_| io::Error::other("a compression worker stopped"))?;
        self.next_seq += 1;
        self.in_flight += 1;
        Ok(())
    }

    /// Waits for one block to come back and writes what is ready in order.
    fn collect_one(&mut self) -> io::Result<()> {
        let (seq, result) = self
            .from_workers
            .recv()
            .map_err(|_| io::Error::other("a compression worker stopped"))?;
        self.in_flight -= 1;
        self.done.insert(seq, result?);
        while let Some(member) = self.done.remove(&self.written_seq) {
            self.out_mut()?.write_all(&member)?;
            self.written_seq += 1;
        }
        Ok(())
    }

    /// Compresses what is left, writes every member, and gives the writer
    /// back.
    pub fn finish(mut self) -> io::Result<W> {
        self.send_block()?;
        if self.next_seq == 0 {
            // An empty stream is still one (empty) gzip member.
            let empty = GzEncoder::new(Vec::new(), Compression::new(self.level)).finish()?;
            self.out_mut()?.write_all(&empty)?;
        }
        while self.in_flight > 0 {
            self.collect_one()?;
        }
        self.to_workers = None;
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
        let mut out = self
            .out
            .take()
            .ok_or_else(|| io::Error::other("compression finished"))?;
        out.flush()?;
        Ok(out)
    }

    fn out_mut(&mut self) -> io::Result<&mut W> {
        self.out
            .as_mut()
            .ok_or_else(|| io::Error::other("compression finished"))
    }
}

impl<W: Write> Write for ParallelGzip<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let room = BLOCK - self.block.len();
        let n = room.min(buf.len());
        self.block.extend_from_slice(&buf[..n]);
        if self.block.len() == BLOCK {
            self.send_block()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<W: Write> Drop for ParallelGzip<W> {
    fn drop(&mut self) {
        // Unfinished (an error elsewhere): stop the workers.
        self.to_workers = None;
        while self.in_flight > 0 && self.from_workers.recv().is_ok() {
            self.in_flight -= 1;
        }
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn roundtrip(data: &[u8], workers: usize) {
        let mut w = ParallelGzip::new(Vec::new(), 1, workers);
        for chunk in data.chunks(70_001) {
            w.write_all(chunk).unwrap();
        }
        let packed = w.finish().unwrap();
        let mut out = Vec::new();
        flate2::read::MultiGzDecoder::new(&packed[..])
            .read_to_end(&mut out)
            .unwrap();
        assert_eq!(out, data);
    }

    #[test]
    fn members_in_order_make_the_stream() {
        let data: Vec<u8> = (0..5 * BLOCK + 12345)
            .map(|i| (i * 7 % 251) as u8)
            .collect();
        roundtrip(&data, 1);
        roundtrip(&data, 3);
        roundtrip(&[], 2);
        roundtrip(b"tiny", 4);
    }
}
