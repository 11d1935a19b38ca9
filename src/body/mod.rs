//! The response body: file bytes streamed with bounded memory, and the
//! wrappers that add what a body itself need not know.
//!
//! - [`ResponseBody`] only streams bytes: nothing, a small buffer, or file
//!   ranges read through a [`BlockSource`].
//! - [`cut::Cuttable`] stops a body when a [`cut::CutSignal`] fires (the
//!   transfer registry's revocation guard is one).
//! - [`logged::Logged`] writes the request's access-log record.
//!
//! File ranges are read in blocks off the async threads (`spawn_blocking`
//! with `pread`), at most [`READ_AHEAD`] blocks in flight per response, so a
//! slow client applies backpressure all the way down to the disk reads and a
//! 10 GiB file streams in a few MiB. Reads go through a [`BlockSource`]: the
//! integrity layer plugs in here so that a block is verified before any byte
//! of it is yielded. An error ends the body: hyper then closes the HTTP/1.1
//! connection short of `Content-Length` or resets the HTTP/2 stream, which
//! is exactly the cut-off a client can detect.

pub mod cut;
pub mod logged;

pub use cut::{CutSignal, Cuttable};
pub use logged::Logged;

use crate::http::{ByteRange, Segment};
use bytes::Bytes;
use http_body::{Frame, SizeHint};
use std::collections::VecDeque;
use std::fmt;
use std::fs::File;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use tokio::task::JoinHandle;

/// Blocks read ahead of the one being sent.
pub const READ_AHEAD: usize = 2;

/// Why a body stopped before its end.
#[derive(Debug)]
pub enum BodyError {
    /// Reading the file failed.
    Io(std::io::Error),
    /// The file ended before the bytes promised by `Content-Length`.
    Truncated {
        /// Offset where the read came up short.
        offset: u64,
    },
    /// A chunk did not match its expected hash; nothing of it was sent.
    Integrity {
        /// Zero-based chunk index.
        chunk: u64,
    },
    /// The file changed on disk after its manifest was made (auto mode).
    Changed,
    /// The transfer was cut (access revoked, shutdown).
    Cut(String),
}

impl fmt::Display for BodyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BodyError::Io(e) => write!(f, "read error: {e}"),
            BodyError::Truncated { offset } => {
                write!(f, "file shorter than announced at offset {offset}")
            }
            BodyError::Integrity { chunk } => write!(f, "chunk {chunk} failed verification"),
            BodyError::Changed => {
                f.write_str("transfer cut: file changed on disk during the transfer")
            }
            BodyError::Cut(why) => write!(f, "transfer cut: {why}"),
        }
    }
}

impl std::error::Error for BodyError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            BodyError::Io(e) => Some(e),
            _ => None,
        }
    }
}

/// Where a body's file bytes come from. `read` is blocking and runs on the
/// blocking pool.
pub trait BlockSource: Send + Sync + 'static {
    /// Exactly `len` bytes at `offset`, or an error. `offset..offset+len` never
    /// crosses a multiple of [`BlockSource::block_size`].
    fn read(&self, offset: u64, len: usize) -> Result<Bytes, BodyError>;
    /// The alignment reads are planned on.
    fn block_size(&self) -> u64;
}

/// `pread` exactly `len` bytes at `offset` into a fresh buffer; a file that
/// ends earlier is [`BodyError::Truncated`].
pub fn read_exact_at(file: &File, offset: u64, len: usize) -> Result<Bytes, BodyError> {
    let buf = crate::io::read_at(file, offset, len).map_err(BodyError::Io)?;
    if buf.len() < len {
        return Err(BodyError::Truncated {
            offset: offset + buf.len() as u64,
        });
    }
    Ok(Bytes::from(buf))
}

enum Pending {
    Ready(Bytes),
    Read(JoinHandle<Result<Bytes, BodyError>>),
}

/// A streamed sequence of literal bytes and file ranges.
pub struct FileStream {
    source: Arc<dyn BlockSource>,
    segments: VecDeque<Segment>,
    inflight: VecDeque<Pending>,
    remaining: u64,
}

impl FileStream {
    /// Stream `segments`, reading file ranges from `source`.
    pub fn new(source: Arc<dyn BlockSource>, segments: Vec<Segment>) -> Self {
        let remaining = segments
            .iter()
            .map(|s| match s {
                Segment::Bytes(b) => b.len() as u64,
                Segment::File(r) => r.end - r.start,
            })
            .sum();
        FileStream {
            source,
            segments: segments.into(),
            inflight: VecDeque::new(),
            remaining,
        }
    }

    /// Next piece of the plan: literal bytes, or one block-aligned read.
    fn next_piece(&mut self) -> Option<Pending> {
        loop {
            match self.segments.pop_front()? {
                Segment::Bytes(b) if b.is_empty() => continue,
                Segment::Bytes(b) => return Some(Pending::Ready(b)),
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
                    let source = self.source.clone();
                    let (offset, len) = (r.start, (end - r.start) as usize);
                    return Some(Pending::Read(tokio::task::spawn_blocking(move || {
                        source.read(offset, len)
                    })));
                }
            }
        }
    }

    /// Read the first block now, so that a failure shows before the
    /// response head is sent; it is then sent from memory.
    pub async fn prime(&mut self) -> Result<(), BodyError> {
        while let Some(piece) = self.next_piece() {
            match piece {
                Pending::Ready(b) => self.inflight.push_back(Pending::Ready(b)),
                Pending::Read(handle) => {
                    let bytes = handle
                        .await
                        .map_err(|e| BodyError::Io(std::io::Error::other(e)))??;
                    self.inflight.push_back(Pending::Ready(bytes));
                    return Ok(());
                }
            }
        }
        Ok(())
    }

    fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Bytes, BodyError>>> {
        while self.inflight.len() < READ_AHEAD {
            match self.next_piece() {
                Some(p) => self.inflight.push_back(p),
                None => break,
            }
        }
        let bytes = match self.inflight.front_mut() {
            None => return Poll::Ready(None),
            Some(Pending::Ready(b)) => std::mem::take(b),
            Some(Pending::Read(handle)) => match ready!(Pin::new(handle).poll(cx)) {
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

enum Kind {
    Empty,
    Full(Option<Bytes>),
    File(FileStream),
}

/// Every response's bytes: nothing, a small buffer, or a streamed file.
pub struct ResponseBody {
    kind: Kind,
}

impl ResponseBody {
    /// No body (HEAD, 304, errors without text).
    pub fn empty() -> Self {
        ResponseBody { kind: Kind::Empty }
    }

    /// A small in-memory body.
    pub fn full(bytes: impl Into<Bytes>) -> Self {
        ResponseBody {
            kind: Kind::Full(Some(bytes.into())),
        }
    }

    /// A streamed file body.
    pub fn file(stream: FileStream) -> Self {
        ResponseBody {
            kind: Kind::File(stream),
        }
    }
}

/// A body that can say why it was stopped, when it is dropped before its
/// end (for the access log of a transfer whose connection was closed).
pub trait StopReason {
    /// Why the body was stopped early, if it was.
    fn stop_reason(&self) -> Option<String>;
}

impl StopReason for ResponseBody {
    fn stop_reason(&self) -> Option<String> {
        None
    }
}

impl http_body::Body for ResponseBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let next = match &mut self.get_mut().kind {
            Kind::Empty => None,
            Kind::Full(b) => b.take().map(Ok),
            Kind::File(f) => ready!(f.poll_next(cx)),
        };
        Poll::Ready(next.map(|r| r.map(Frame::data)))
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Empty => true,
            Kind::Full(b) => b.is_none(),
            Kind::File(f) => f.remaining == 0 && f.inflight.is_empty() && f.segments.is_empty(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Empty => SizeHint::with_exact(0),
            Kind::Full(b) => SizeHint::with_exact(b.as_ref().map_or(0, |b| b.len() as u64)),
            Kind::File(f) => SizeHint::with_exact(f.remaining),
        }
    }
}
