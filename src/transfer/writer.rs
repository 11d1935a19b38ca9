//! A worker's writes of verified chunks, off the network path: each goes to
//! a blocking thread while the worker reads on, a few at a time, in order.
//! Buffers come back and are reused: a fresh 1 MiB allocation per chunk
//! costs more in page faults than the hashing.

use super::sink::Sink;
use std::collections::VecDeque;
use std::io;
use std::sync::Arc;
use tokio::task::JoinHandle;

/// Writes a worker may have in flight before it waits for the oldest.
const MAX_PENDING: usize = 4;

struct Written {
    buf: Vec<u8>,
    result: io::Result<()>,
}

/// The writes of one worker.
pub struct Writer {
    sink: Arc<dyn Sink>,
    pending: VecDeque<(u64, JoinHandle<Written>)>,
    free: Vec<Vec<u8>>,
    capacity: usize,
}

impl Writer {
    /// Writes into `sink`, with buffers of `capacity` bytes (one chunk).
    pub fn new(sink: Arc<dyn Sink>, capacity: usize) -> Writer {
        Writer {
            sink,
            pending: VecDeque::new(),
            free: Vec::new(),
            capacity,
        }
    }

    /// An empty buffer for the next chunk.
    pub fn buffer(&mut self) -> Vec<u8> {
        self.free
            .pop()
            .unwrap_or_else(|| Vec::with_capacity(self.capacity))
    }

    /// Write verified chunk `index` (its bytes start at `offset`).
    pub fn submit(&mut self, index: u64, offset: u64, buf: Vec<u8>) {
        let sink = self.sink.clone();
        let handle = tokio::task::spawn_blocking(move || {
            let result = sink.write_chunk(index, offset, &buf);
            Written { buf, result }
        });
        self.pending.push_back((index, handle));
    }

    /// The next finished write, oldest first: waits for it when `block` (or
    /// when too many are pending), `None` when none is finished or pending.
    pub async fn next_done(&mut self, block: bool) -> Option<(u64, io::Result<()>)> {
        let (_, front) = self.pending.front()?;
        if !(block || front.is_finished() || self.pending.len() > MAX_PENDING) {
            return None;
        }
        let (index, handle) = self.pending.pop_front()?;
        match handle.await {
            Ok(w) => {
                let mut buf = w.buf;
                buf.clear();
                self.free.push(buf);
                Some((index, w.result))
            }
            Err(e) => Some((index, Err(io::Error::other(e)))),
        }
    }
}
