//! Writes of verified chunks, off the network path: one writer thread per
//! run takes them in order while the workers read on. One thread, because
//! the file system serialises writes to a file anyway (several writers only
//! spin on its lock). Buffers come back and are reused: a fresh 1 MiB
//! allocation per chunk costs more in page faults than the hashing.

use super::sink::Sink;
use std::collections::VecDeque;
use std::io;
use std::sync::mpsc;
use std::sync::Arc;
use tokio::sync::oneshot;

/// Writes a worker may have queued before it waits for the oldest.
const MAX_PENDING: usize = 4;

type Done = (Vec<u8>, io::Result<()>);

struct Write {
    index: u64,
    offset: u64,
    buf: Vec<u8>,
    done: oneshot::Sender<Done>,
}

/// The writer thread of a run; it ends when the last handle is dropped.
#[derive(Clone)]
pub struct WriteThread {
    tx: mpsc::Sender<Write>,
}

impl WriteThread {
    /// Start the thread writing into `sink`.
    pub fn start(sink: Arc<dyn Sink>) -> WriteThread {
        let (tx, rx) = mpsc::channel::<Write>();
        std::thread::Builder::new()
            .name("distpoint-write".into())
            .spawn(move || {
                for w in rx {
                    let result = sink.write_chunk(w.index, w.offset, &w.buf);
                    // A worker that is gone no longer cares.
                    let _ = w.done.send((w.buf, result));
                }
            })
            .expect("a thread can be started");
        WriteThread { tx }
    }
}

/// The writes of one worker.
pub struct Writer {
    thread: WriteThread,
    pending: VecDeque<(u64, oneshot::Receiver<Done>)>,
    free: Vec<Vec<u8>>,
    capacity: usize,
}

impl Writer {
    /// Writes through `thread`, with buffers of `capacity` bytes (one chunk).
    pub fn new(thread: WriteThread, capacity: usize) -> Writer {
        Writer {
            thread,
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
        let (done, rx) = oneshot::channel();
        let w = Write {
            index,
            offset,
            buf,
            done,
        };
        if let Err(mpsc::SendError(w)) = self.thread.tx.send(w) {
            let _ = w
                .done
                .send((w.buf, Err(io::Error::other("the writer thread is gone"))));
        }
        self.pending.push_back((index, rx));
    }

    /// The next finished write, oldest first: waits for it when `block` (or
    /// when too many are pending), `None` when none is finished or pending.
    pub async fn next_done(&mut self, block: bool) -> Option<(u64, io::Result<()>)> {
        let (_, front) = self.pending.front_mut()?;
        let ready = match front.try_recv() {
            Ok(done) => Some(done),
            Err(oneshot::error::TryRecvError::Empty) => None,
            Err(oneshot::error::TryRecvError::Closed) => Some((
                Vec::new(),
                Err(io::Error::other("the writer thread is gone")),
            )),
        };
        let done = match ready {
            Some(d) => d,
            None if block || self.pending.len() > MAX_PENDING => {
                let (_, rx) = self.pending.front_mut()?;
                rx.await.unwrap_or_else(|_| {
                    (
                        Vec::new(),
                        Err(io::Error::other("the writer thread is gone")),
                    )
                })
            }
            None => return None,
        };
        let (index, _) = self.pending.pop_front()?;
        let (mut buf, result) = done;
        if buf.capacity() > 0 {
            buf.clear();
            self.free.push(buf);
        }
        Some((index, result))
    }
}
