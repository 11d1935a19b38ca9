//! Cutting a running body: a signal from outside (a revocation) stops it
//! before its next block.
//!
//! The body knows only the [`CutSignal`] trait; what fires it (the transfer
//! registry, on a config change) lives in the runtime state above.

use super::{BodyError, StopReason};
use bytes::Bytes;
use http_body::{Frame, SizeHint};
use std::pin::Pin;
use std::task::{ready, Context, Poll};

/// What can stop a body that is being sent.
pub trait CutSignal: Send + Unpin + 'static {
    /// Ready with the reason once the body must stop; registers the waker
    /// so that a cut wakes the body even between reads.
    fn poll_cut(&mut self, cx: &mut Context<'_>) -> Poll<String>;
    /// The body sent a block (a signal may spare a body that has sent none).
    fn block_sent(&mut self);
    /// Why the body was cut, if it was.
    fn reason(&self) -> Option<String>;
}

/// A body that a [`CutSignal`] can stop.
pub struct Cuttable<B> {
    inner: B,
    signal: Option<Box<dyn CutSignal>>,
}

impl<B> Cuttable<B> {
    /// A body nothing can cut (error answers, documents).
    pub fn never(inner: B) -> Self {
        Cuttable {
            inner,
            signal: None,
        }
    }

    /// A body `signal` can cut.
    pub fn new(inner: B, signal: impl CutSignal) -> Self {
        Cuttable {
            inner,
            signal: Some(Box::new(signal)),
        }
    }
}

impl<B> StopReason for Cuttable<B> {
    fn stop_reason(&self) -> Option<String> {
        self.signal.as_ref().and_then(|s| s.reason())
    }
}

impl<B> http_body::Body for Cuttable<B>
where
    B: http_body::Body<Data = Bytes, Error = BodyError> + Unpin,
{
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let this = self.get_mut();
        if let Some(Poll::Ready(why)) = this.signal.as_mut().map(|s| s.poll_cut(cx)) {
            return Poll::Ready(Some(Err(BodyError::Cut(why))));
        }
        let next = ready!(Pin::new(&mut this.inner).poll_frame(cx));
        if let (Some(s), Some(Ok(_))) = (&mut this.signal, &next) {
            s.block_sent();
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
