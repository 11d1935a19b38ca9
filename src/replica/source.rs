//! What a replica source is ([`Origin`]: manifest, signature, files as
//! engine sources) and what the sources of one sync share ([`Traffic`]: the
//! byte count and the rate limit; [`Counted`] sources add to it). The kinds
//! of source are [`super::origin`] (`https://`) and
//! [`super::store_origin`] (`s3://`).

use super::error::OriginError;
use crate::transfer::source::{BoxFuture, ReadRequest, Reader, Reply};
use crate::transfer::{RateLimit, ReadError, Source};
use bytes::Bytes;
use futures_core::Stream;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

/// One source of a replica's package.
pub trait Origin: Send + Sync {
    /// The package URL prefix, for messages and reports.
    fn name(&self) -> &str;
    /// The exact bytes of the package manifest; `Ok(None)` when the source has none.
    fn manifest(&self) -> BoxFuture<'_, Result<Option<Vec<u8>>, OriginError>>;
    /// The raw signature; `Ok(None)` when the package is not signed there.
    fn signature(&self) -> BoxFuture<'_, Result<Option<Vec<u8>>, OriginError>>;
    /// One file of the package (its path relative to the package, `/`-separated).
    fn file(&self, rel: &str) -> Arc<dyn Source>;
}

/// What every source of one sync shares: the traffic count and the rate limit.
#[derive(Clone)]
pub struct Traffic {
    /// Bytes received over the network in this sync.
    pub bytes: Arc<AtomicU64>,
    /// The replica's limit, shared by documents and content.
    pub rate: Option<Arc<RateLimit>>,
}

impl Traffic {
    /// Count (and pay for) `n` bytes of a small document.
    pub(super) async fn document(&self, n: usize) {
        self.bytes.fetch_add(n as u64, Ordering::Relaxed);
        if let Some(r) = &self.rate {
            r.take(n as u64).await;
        }
    }
}

/// A source whose received bytes are counted (the replica's status).
pub(super) struct Counted {
    inner: Arc<dyn Source>,
    bytes: Arc<AtomicU64>,
}

impl Counted {
    /// `inner`, its bytes counted into `traffic`.
    pub(super) fn source(inner: Arc<dyn Source>, traffic: &Traffic) -> Arc<dyn Source> {
        Arc::new(Counted {
            inner,
            bytes: traffic.bytes.clone(),
        })
    }
}

impl Source for Counted {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn open(&self) -> BoxFuture<'_, Result<Box<dyn Reader>, ReadError>> {
        Box::pin(async move {
            let reader = self.inner.open().await?;
            Ok(Box::new(CountedReader {
                inner: reader,
                bytes: self.bytes.clone(),
            }) as Box<dyn Reader>)
        })
    }
}

struct CountedReader {
    inner: Box<dyn Reader>,
    bytes: Arc<AtomicU64>,
}

impl Reader for CountedReader {
    fn read<'a>(&'a mut self, req: ReadRequest<'a>) -> BoxFuture<'a, Result<Reply, ReadError>> {
        Box::pin(async move {
            let reply = self.inner.read(req).await?;
            Ok(Reply {
                validator: reply.validator,
                body: Box::pin(CountedBody {
                    inner: reply.body,
                    bytes: self.bytes.clone(),
                }),
            })
        })
    }

    fn protocol(&self) -> Option<&'static str> {
        self.inner.protocol()
    }
}

struct CountedBody {
    inner: crate::transfer::source::ByteStream,
    bytes: Arc<AtomicU64>,
}

impl Stream for CountedBody {
    type Item = Result<Bytes, ReadError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let next = self.inner.as_mut().poll_next(cx);
        if let Poll::Ready(Some(Ok(d))) = &next {
            self.bytes.fetch_add(d.len() as u64, Ordering::Relaxed);
        }
        next
    }
}
