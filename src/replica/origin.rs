//! The sources of a replica, in priority order: each answers for the
//! package manifest, its signature, and every file as an engine
//! [`Source`]. [`open`] is the one place a source URL becomes an
//! [`Origin`]: a distpoint server (`https://`) here, a bucket (`s3://`) in
//! [`super::store_origin`].

use super::error::{OriginError, SyncError};
use super::source::{Counted, Origin, Traffic};
use super::store_origin::StoreOrigin;
use crate::config::Upstream;
use crate::objstore::StoreSettings;
use crate::transfer::document::{self, DocumentError, DOCUMENT_LIMIT};
use crate::transfer::source::BoxFuture;
use crate::transfer::{Client, ClientOptions, HttpSource, Protocol, Source, Target, Tuning};
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use std::collections::BTreeMap;
use std::sync::Arc;

/// Characters left as they are in a path segment (RFC 3986 unreserved).
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

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
        Counted::source(Arc::new(inner), &self.traffic)
    }
}
