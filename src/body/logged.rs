//! The access-log wrapper: counts the bytes a body yields and records how it
//! ended; the record is written when the body is dropped.

use super::{BodyError, StopReason};
use crate::logging::{AccessLog, CutKind};
use bytes::Bytes;
use http_body::{Frame, SizeHint};
use std::pin::Pin;
use std::task::{ready, Context, Poll};

/// A body that writes its request's access-log record when dropped
/// (finished, cut, or abandoned by the client).
pub struct Logged<B: StopReason> {
    inner: B,
    log: AccessLog,
}

impl<B: StopReason> Logged<B> {
    /// Log `inner` with `log`.
    pub fn new(inner: B, log: AccessLog) -> Self {
        Logged { inner, log }
    }
}

impl<B: StopReason> Drop for Logged<B> {
    fn drop(&mut self) {
        // A revoked transfer whose client stopped reading is never polled
        // again: its connection is closed and the body dropped. Record it as
        // the cut it is, not as a client that went away.
        if let Some(why) = self.inner.stop_reason() {
            self.log.cut_if_unfinished(CutKind::Revoked, why);
        }
    }
}

/// What kind of cut a body error is, for the metrics.
fn cut_kind(e: &BodyError) -> CutKind {
    match e {
        BodyError::Cut(_) => CutKind::Revoked,
        BodyError::Integrity { .. } => CutKind::Integrity,
        BodyError::Changed => CutKind::Changed,
        BodyError::Io(_)
        | BodyError::Truncated { .. }
        | BodyError::Busy
        | BodyError::Unavailable(_) => CutKind::Error,
    }
}

impl<B> http_body::Body for Logged<B>
where
    B: http_body::Body<Data = Bytes, Error = BodyError> + StopReason + Unpin,
{
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let this = self.get_mut();
        let next = ready!(Pin::new(&mut this.inner).poll_frame(cx));
        match &next {
            Some(Ok(frame)) => {
                let n = frame.data_ref().map_or(0, Bytes::len);
                this.log.add_bytes(n as u64);
            }
            Some(Err(BodyError::Cut(why))) => this.log.cut(CutKind::Revoked, why.clone()),
            Some(Err(e)) => this.log.cut(cut_kind(e), e.to_string()),
            None => {}
        }
        // hyper stops polling once the exact size hint is reached, so the
        // end is recognised here rather than by a final `None`.
        if this.inner.is_end_stream() && !matches!(next, Some(Err(_))) {
            this.log.complete();
        }
        Poll::Ready(next)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
