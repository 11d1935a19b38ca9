//! A streamed sequence of literal bytes and file ranges with bounded memory.
//!
//! File ranges are read one block at a time (a block never crosses a
//! multiple of the source's block size), at most [`READ_AHEAD`] blocks in
//! flight per response and only while the server-wide [`Budget`] has room,
//! so a slow client applies backpressure all the way down to the disk reads
//! and a 10 GiB file streams in a few MiB. A block the source can answer
//! from memory is taken at once; the others are read off the async threads
//! (`spawn_blocking`), or, for a source whose reads wait on the network, in
//! a task of their own.

use super::budget::{Budget, Held, START_WAIT};
use super::{BlockSource, BodyError};
use crate::http::{ByteRange, Segment};
use bytes::Bytes;
use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use tokio::task::JoinHandle;
use tokio_util::sync::PollSemaphore;

/// Blocks read ahead of the one being sent.
pub const READ_AHEAD: usize = 2;

/// The next thing the plan yields.
enum Piece {
    Bytes(Bytes),
    File { offset: u64, len: usize },
}

enum Pending {
    Ready(Bytes, Option<Held>),
    Read(JoinHandle<Result<Bytes, BodyError>>, Held),
    Failed(BodyError),
}

/// A streamed sequence of literal bytes and file ranges.
pub struct FileStream {
    source: Arc<dyn BlockSource>,
    budget: Arc<Budget>,
    waiter: PollSemaphore,
    segments: VecDeque<Segment>,
    inflight: VecDeque<Pending>,
    pub(super) remaining: u64,
}

impl FileStream {
    /// Stream `segments`, reading file ranges from `source` within `budget`.
    pub fn new(source: Arc<dyn BlockSource>, segments: Vec<Segment>, budget: Arc<Budget>) -> Self {
        let remaining = segments
            .iter()
            .map(|s| match s {
                Segment::Bytes(b) => b.len() as u64,
                Segment::File(r) => r.end - r.start,
            })
            .sum();
        FileStream {
            source,
            waiter: budget.waiter(),
            budget,
            segments: segments.into(),
            inflight: VecDeque::new(),
            remaining,
        }
    }

    /// True when everything was yielded.
    pub(super) fn is_done(&self) -> bool {
        self.remaining == 0 && self.inflight.is_empty() && self.segments.is_empty()
    }

    /// Take the next piece of the plan: literal bytes, or one block-aligned range.
    fn pop_piece(&mut self) -> Option<Piece> {
        loop {
            match self.segments.pop_front()? {
                Segment::Bytes(b) if b.is_empty() => continue,
                Segment::Bytes(b) => return Some(Piece::Bytes(b)),
                Segment::File(r) if r.start >= r.end => continue,
                Segment::File(r) => {
                    let block = self.source.block_size().max(1);
                    let boundary = (r.start / block + 1).saturating_mul(block);
                    let end = r.end.min(boundary);
                    if end < r.end {
                        self.segments.push_front(Segment::File(ByteRange {
                            start: end,
                            end: r.end,
                        }));
                    }
                    let len = (end - r.start) as usize;
                    return Some(Piece::File {
                        offset: r.start,
                        len,
                    });
                }
            }
        }
    }

    fn unpop(&mut self, offset: u64, len: usize) {
        let range = ByteRange {
            start: offset,
            end: offset + len as u64,
        };
        match self.segments.front_mut() {
            Some(Segment::File(next)) if next.start == range.end => next.start = range.start,
            _ => self.segments.push_front(Segment::File(range)),
        }
    }

    /// Start reads until [`READ_AHEAD`] are in flight, the plan ends, or the
    /// budget is full. Pending only when nothing is in flight and the budget
    /// has no room yet (the waker is registered with it).
    fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        while self.inflight.len() < READ_AHEAD {
            let Some(piece) = self.pop_piece() else { break };
            let (offset, len) = match piece {
                Piece::Bytes(b) => {
                    self.inflight.push_back(Pending::Ready(b, None));
                    continue;
                }
                Piece::File { offset, len } => (offset, len),
            };
            let held = match self.budget.try_take(len) {
                Some(h) => h,
                None if self.inflight.is_empty() => {
                    match self.budget.poll_take(&mut self.waiter, cx, len) {
                        Poll::Ready(h) => h,
                        Poll::Pending => {
                            self.unpop(offset, len);
                            return Poll::Pending;
                        }
                    }
                }
                None => {
                    self.unpop(offset, len);
                    break;
                }
            };
            let pending = match self.source.read_cached(offset, len) {
                Some(Ok(bytes)) => Pending::Ready(bytes, Some(held)),
                Some(Err(e)) => Pending::Failed(e),
                None => {
                    let read = match self.source.read_async(offset, len) {
                        Some(fetch) => tokio::spawn(fetch),
                        None => {
                            let source = self.source.clone();
                            tokio::task::spawn_blocking(move || source.read(offset, len))
                        }
                    };
                    Pending::Read(read, held)
                }
            };
            self.inflight.push_back(pending);
        }
        Poll::Ready(())
    }

    /// Read the first block now, so that a failure shows before the
    /// response head is sent; it is then sent from memory. Waits at most
    /// [`START_WAIT`] for room in the budget.
    pub async fn prime(&mut self) -> Result<(), BodyError> {
        let first = std::future::poll_fn(|cx| {
            ready!(self.poll_fill(cx));
            // Literal bytes first (a multipart head), then the first file block.
            let at = self
                .inflight
                .iter()
                .position(|p| !matches!(p, Pending::Ready(_, None)));
            let Some(at) = at else {
                return Poll::Ready(Ok(()));
            };
            match &mut self.inflight[at] {
                Pending::Ready(..) => Poll::Ready(Ok(())),
                Pending::Failed(_) => match self.inflight.remove(at) {
                    Some(Pending::Failed(e)) => Poll::Ready(Err(e)),
                    _ => unreachable!("matched as failed"),
                },
                Pending::Read(handle, _) => {
                    let result = ready!(Pin::new(handle).poll(cx));
                    let Some(Pending::Read(_, held)) = self.inflight.remove(at) else {
                        unreachable!("matched as a read")
                    };
                    let bytes = result.map_err(|e| BodyError::Io(std::io::Error::other(e)))??;
                    self.inflight.insert(at, Pending::Ready(bytes, Some(held)));
                    Poll::Ready(Ok(()))
                }
            }
        });
        tokio::time::timeout(START_WAIT, first)
            .await
            .map_err(|_| BodyError::Busy)?
    }

    /// The next bytes to send.
    pub(super) fn poll_next(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Bytes, BodyError>>> {
        ready!(self.poll_fill(cx));
        let bytes = match self.inflight.front_mut() {
            None => return Poll::Ready(None),
            Some(Pending::Ready(b, _)) => std::mem::take(b),
            Some(Pending::Failed(_)) => match self.inflight.pop_front() {
                Some(Pending::Failed(e)) => return Poll::Ready(Some(Err(e))),
                _ => unreachable!("matched as failed"),
            },
            Some(Pending::Read(handle, _)) => match ready!(Pin::new(handle).poll(cx)) {
                Ok(Ok(b)) => b,
                Ok(Err(e)) => return Poll::Ready(Some(Err(e))),
                Err(join) => {
                    return Poll::Ready(Some(Err(BodyError::Io(std::io::Error::other(join)))))
                }
            },
        };
        self.inflight.pop_front();
        self.remaining = self.remaining.saturating_sub(bytes.len() as u64);
        Poll::Ready(Some(Ok(bytes)))
    }
}
