//! The sources of a replica, in priority order: each answers for the
//! package manifest, its signature, and every file as an engine
//! [`Source`]. [`open`] is the one place a source URL becomes an
//! [`Origin`]: a distpoint server (`https://`) here, a bucket (`s3://`) in
//! [`super::store_origin`].

use super::error::{OriginError, SyncError};
use super::store_origin::StoreOrigin;
use crate::config::Upstream;
use crate::objstore::StoreSettings;
use crate::transfer::document::{self, DocumentError, DOCUMENT_LIMIT};
use crate::transfer::source::{BoxFuture, ReadRequest, Reader, Reply};
use crate::transfer::{
    Client, ClientOptions, HttpSource, Protocol, RateLimit, ReadError, Source, Target, Tuning,
};
use bytes::Bytes;
use futures_core::Stream;
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use std::collections::BTreeMap;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

/// Characters left as they are in a path segment (RFC 3986 unreserved).
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

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

/// The sources of `upstream`, in its order, and a message for each that
/// cannot even be addressed (an unsupported scheme, a bad URL).
pub type Opened = (Vec<Arc<dyn Origin>>, Vec<String>);

/// The sources of `upstream`, in its order; see [`Opened`].
/// `stores` are the config's `[origins.BUCKET]` settings for `s3://` sources
/// (a bucket without one is reached with the `AWS_*` environment).
pub fn open(
    upstream: &Upstream,
    traffic: &Traffic,
    stores: &BTreeMap<String, StoreSettings>,
) -> Result<Opened, SyncError> {
    let client = client(upstream)?;
    let tuning = match &traffic.rate {
        Some(r) => Tuning::for_rate(r.bytes_per_s()),
        None => Tuning::default(),
    };
    let (mut origins, mut failed) = (Vec::new(), Vec::new());
    for url in &upstream.sources {
        let scheme = url.split_once("://").map_or("", |(s, _)| s);
        let origin: Result<Arc<dyn Origin>, OriginError> = match scheme {
            "https" => HttpsOrigin::new(client.clone(), url, tuning, traffic.clone())
                .map(|o| Arc::new(o) as Arc<dyn Origin>),
            "s3" => StoreOrigin::new(url, stores, traffic.clone())
                .map(|o| Arc::new(o) as Arc<dyn Origin>),
            other => Err(OriginError::Address {
                url: url.clone(),
                reason: format!("{other}:// sources are not supported"),
                source: None,
            }),
        };
        match origin {
            Ok(o) => origins.push(o),
            Err(e) => failed.push(e.to_string()),
        }
    }
    Ok((origins, failed))
}

/// The HTTPS client of a replica: its CA, client certificate, Basic user.
fn client(u: &Upstream) -> Result<Client, SyncError> {
    let password = match &u.user {
        Some((_, file)) => {
            let text = std::fs::read_to_string(file).map_err(|e| {
                SyncError::Settings(format!("password_file {}: {e}", file.display()))
            })?;
            Some(text.trim_end_matches(['\n', '\r']).to_string())
        }
        None => None,
    };
    let opts = ClientOptions {
        cacert: u.ca.clone(),
        cert: u.client_cert.as_ref().map(|(c, _)| c.clone()),
        key: u.client_cert.as_ref().map(|(_, k)| k.clone()),
        user: u.user.as_ref().map(|(n, _)| n.clone()),
        password,
        // One request at a time per connection: HTTP/1.1 costs less CPU.
        protocols: vec![Protocol::Http1, Protocol::Http2],
    };
    Client::new(&opts).map_err(|e| SyncError::Settings(e.to_string()))
}

/// A distpoint server's published path (or any server that answers
/// `PREFIX/?manifest` and `PREFIX/?signature` the same way).
struct HttpsOrigin {
    client: Client,
    prefix: String,
    base: Target,
    tuning: Tuning,
    traffic: Traffic,
}

impl HttpsOrigin {
    fn new(
        client: Client,
        prefix: &str,
        tuning: Tuning,
        traffic: Traffic,
    ) -> Result<Self, OriginError> {
        let prefix = prefix.trim_end_matches('/').to_string();
        let base = Target::parse(&format!("{prefix}/")).map_err(|e| OriginError::Address {
            url: prefix.clone(),
            reason: String::new(),
            source: Some(Box::new(e)),
        })?;
        Ok(HttpsOrigin {
            client,
            prefix,
            base,
            tuning,
            traffic,
        })
    }

    async fn document(&self, query: &str) -> Result<Option<Vec<u8>>, OriginError> {
        let target = self
            .base
            .with_path(&format!("{}?{query}", self.base.path()));
        match document::get(&self.client, &target, DOCUMENT_LIMIT).await {
            Ok(w) => {
                self.traffic.document(w.body.len()).await;
                Ok(Some(w.body))
            }
            Err(DocumentError::Status { status, .. }) if status == http::StatusCode::NOT_FOUND => {
                Ok(None)
            }
            Err(source) => Err(OriginError::Document {
                url: self.prefix.clone(),
                source: Box::new(source),
            }),
        }
    }
}

impl Origin for HttpsOrigin {
    fn name(&self) -> &str {
        &self.prefix
    }

    fn manifest(&self) -> BoxFuture<'_, Result<Option<Vec<u8>>, OriginError>> {
        Box::pin(self.document("manifest"))
    }

    fn signature(&self) -> BoxFuture<'_, Result<Option<Vec<u8>>, OriginError>> {
        Box::pin(self.document("signature"))
    }

    fn file(&self, rel: &str) -> Arc<dyn Source> {
        let encoded: Vec<String> = rel
            .split('/')
            .map(|s| utf8_percent_encode(s, SEGMENT).to_string())
            .collect();
        let url = format!("{}/{}", self.prefix, encoded.join("/"));
        let target = self
            .base
            .with_path(&format!("{}{}", self.base.path(), encoded.join("/")));
        let target = Target { url, ..target };
        let inner = HttpSource::new(self.client.clone(), target, self.tuning);
        Arc::new(Counted {
            inner: Arc::new(inner),
            bytes: self.traffic.bytes.clone(),
        })
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
