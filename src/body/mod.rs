//! The response body: file bytes streamed with bounded memory, and the
//! wrappers that add what a body itself need not know.
//!
//! - [`ResponseBody`] only streams bytes: nothing, a small buffer, or file
//!   ranges read through a [`BlockSource`].
//! - [`cut::Cuttable`] stops a body when a [`cut::CutSignal`] fires (the
//!   transfer registry's revocation guard is one).
//! - [`logged::Logged`] writes the request's access-log record.
//!
//! File ranges are read in blocks ([`FileStream`]), at most [`READ_AHEAD`]
//! in flight per response and all within one server-wide [`Budget`], so a
//! slow client applies backpressure all the way down to the disk reads, a
//! 10 GiB file streams in a few MiB, and stalled clients pin at most the
//! budget. Reads go through a [`BlockSource`]: the
//! integrity layer plugs in here so that a block is verified before any byte
//! of it is yielded. An error ends the body: hyper then closes the HTTP/1.1
//! connection short of `Content-Length` or resets the HTTP/2 stream, which
//! is exactly the cut-off a client can detect.

pub mod budget;
pub mod cut;
pub mod logged;
mod stream;

pub use budget::Budget;
pub use cut::{CutSignal, Cuttable};
pub use logged::Logged;
pub use stream::{FileStream, READ_AHEAD};

use bytes::Bytes;
use http_body::{Frame, SizeHint};
use std::fmt;
use std::fs::File;
use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

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
    /// The in-flight budget stayed full: the response could not start.
    Busy,
    /// The bytes live elsewhere (an object store) and cannot be had now;
    /// worth retrying shortly.
    Unavailable(String),
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
            BodyError::Busy => f.write_str("too many file bytes in flight"),
            BodyError::Unavailable(why) => write!(f, "content unavailable: {why}"),
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

/// A read that waits on the network rather than on a disk.
pub type ReadFuture = Pin<Box<dyn Future<Output = Result<Bytes, BodyError>> + Send>>;

/// Where a body's file bytes come from. `read` is blocking and runs on the
/// blocking pool.
pub trait BlockSource: Send + Sync + 'static {
    /// Exactly `len` bytes at `offset`, or an error. `offset..offset+len` never
    /// crosses a multiple of [`BlockSource::block_size`].
    fn read(&self, offset: u64, len: usize) -> Result<Bytes, BodyError>;
    /// The same, answered from memory without blocking, when the source can;
    /// `None` sends the read to the blocking pool.
    fn read_cached(&self, _offset: u64, _len: usize) -> Option<Result<Bytes, BodyError>> {
        None
    }
    /// The same as a task on the async threads, for a source whose reads
    /// wait on the network (an object store): such a wait must not hold a
    /// blocking-pool thread. `None` (the default): use [`BlockSource::read`].
    fn read_async(&self, _offset: u64, _len: usize) -> Option<ReadFuture> {
        None
    }
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
            Kind::File(f) => f.is_done(),
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
