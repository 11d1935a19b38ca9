//! One bucket and prefix, through `object_store`'s S3 client.

use super::{StoreSettings, StoreUrl};
use bytes::Bytes;
use futures_util::stream::{BoxStream, StreamExt, TryStreamExt};
use object_store::aws::AmazonS3Builder;
use object_store::path::Path as ObjectPath;
use object_store::{
    BackoffConfig, ClientOptions, GetOptions, GetRange, ObjectStore, ObjectStoreExt, PutPayload,
    RetryConfig, WriteMultipart,
};
use std::fmt;
use std::ops::Range;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// Files at most this large are uploaded in one `PUT`; larger ones in parts
/// of this size.
const PART_BYTES: usize = 16 << 20;
/// Parts of one upload in flight at once.
const PARTS_IN_FLIGHT: usize = 4;

/// What a failure means for the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreErrorKind {
    /// No such object (or bucket).
    NotFound,
    /// The object is not the version the request was bound to (`If-Match`).
    Changed,
    /// The store refused the credentials or the access.
    Denied,
    /// The store could not be reached or kept failing (after retries).
    Unreachable,
    /// The settings cannot make a client (a bad CA file, for example).
    Settings,
    /// Anything else the store answered.
    Other,
}

/// A failed store operation: what kind, which object, and the cause.
#[derive(Debug)]
pub struct StoreError {
    /// What the caller should make of it.
    pub kind: StoreErrorKind,
    /// `s3://bucket/key: what happened`.
    pub message: String,
    source: Option<object_store::Error>,
}

impl StoreError {
    fn new(kind: StoreErrorKind, message: String) -> StoreError {
        StoreError {
            kind,
            message,
            source: None,
        }
    }

    fn of(location: &str, e: object_store::Error) -> StoreError {
        use object_store::Error as E;
        let kind = match &e {
            E::NotFound { .. } => StoreErrorKind::NotFound,
            E::Precondition { .. } => StoreErrorKind::Changed,
            E::PermissionDenied { .. } | E::Unauthenticated { .. } => StoreErrorKind::Denied,
            E::Generic { .. } => StoreErrorKind::Unreachable,
            _ => StoreErrorKind::Other,
        };
        StoreError {
            kind,
            message: format!("{location}: {}", one_line(&e)),
            source: Some(e),
        }
    }
}

/// An error and its causes on one line (object_store nests them).
fn one_line(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let more = c.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        cause = c.source();
    }
    text
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for StoreError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_ref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

/// What the store says about one object.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ObjectInfo {
    /// Its path below the store's prefix.
    pub rel: String,
    /// Its size.
    pub size: u64,
    /// Its entity tag, when the store gives one.
    pub etag: Option<String>,
    /// When it was written.
    pub last_modified: SystemTime,
}

impl ObjectInfo {
    fn of(rel: String, m: &object_store::ObjectMeta) -> ObjectInfo {
        ObjectInfo {
            rel,
            size: m.size,
            etag: m.e_tag.clone(),
            last_modified: SystemTime::from(m.last_modified),
        }
    }
}

/// How long an operation may keep trying.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Patience {
    /// A request waits on it (serve-through): fail within seconds, so that
    /// the client gets `503` + `Retry-After` instead of a hang.
    Quick,
    /// A command or a background job: retry as `object_store` does by
    /// default (up to 10 times within 3 minutes).
    Patient,
}

/// One bucket and key prefix.
#[derive(Clone)]
pub struct Store {
    url: StoreUrl,
    inner: Arc<dyn ObjectStore>,
}

impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Store({})", self.url)
    }
}

impl Store {
    /// A client for `url` with `settings`. Makes no request.
    pub fn new(
        url: &StoreUrl,
        settings: &StoreSettings,
        patience: Patience,
    ) -> Result<Store, StoreError> {
        // reqwest's rustls takes the process's default crypto provider: the
        // same ring the rest of distpoint uses (already installed is fine).
        let _ = rustls::crypto::ring::default_provider().install_default();
        let settings_error = |what: String| StoreError::new(StoreErrorKind::Settings, what);
        let mut b = match (&settings.access_key, &settings.secret_key) {
            (Some(a), Some(s)) => {
                let b = AmazonS3Builder::new()
                    .with_access_key_id(a.expose())
                    .with_secret_access_key(s.expose());
                match &settings.session_token {
                    Some(t) => b.with_token(t.expose()),
                    None => b,
                }
            }
            // No key given: object_store's own chain (web identity,
            // container and instance credentials).
            _ => AmazonS3Builder::from_env(),
        };
        b = b
            .with_bucket_name(&url.bucket)
            .with_region(settings.region.as_deref().unwrap_or("us-east-1"));
        let mut options = ClientOptions::new();
        if let Some(e) = &settings.endpoint {
            let plain = e.starts_with("http://");
            b = b
                .with_endpoint(e)
                .with_allow_http(plain)
                .with_virtual_hosted_style_request(false);
            options = options.with_allow_http(plain);
        }
        if let Some(pem) = &settings.ca_pem {
            let certs = object_store::Certificate::from_pem_bundle(pem)
                .map_err(|e| settings_error(format!("{url}: CA certificates: {e}")))?;
            for c in certs {
                options = options.with_root_certificate(c);
            }
        }
        let retry = match patience {
            Patience::Quick => {
                options = options
                    .with_connect_timeout(Duration::from_secs(2))
                    .with_timeout(Duration::from_secs(30));
                RetryConfig {
                    backoff: BackoffConfig {
                        init_backoff: Duration::from_millis(100),
                        max_backoff: Duration::from_millis(500),
                        base: 2.0,
                    },
                    max_retries: 1,
                    retry_timeout: Duration::from_secs(3),
                }
            }
            Patience::Patient => {
                options = options
                    .with_connect_timeout(Duration::from_secs(10))
                    .with_timeout(Duration::from_secs(300));
                RetryConfig::default()
            }
        };
        let inner = b
            .with_client_options(options)
            .with_retry(retry)
            .build()
            .map_err(|e| settings_error(format!("{url}: {}", one_line(&e))))?;
        Ok(Store {
            url: url.clone(),
            inner: Arc::new(inner),
        })
    }

    /// The location this store reads and writes.
    pub fn url(&self) -> &StoreUrl {
        &self.url
    }

    fn path(&self, rel: &str) -> ObjectPath {
        ObjectPath::from(self.url.key(rel))
    }

    /// Bytes `range` of `rel`, in one piece, and what the store says of the
    /// object. With `if_match`, an object with another entity tag is
    /// [`StoreErrorKind::Changed`].
    pub async fn get_range(
        &self,
        rel: &str,
        range: Range<u64>,
        if_match: Option<&str>,
    ) -> Result<(ObjectInfo, Bytes), StoreError> {
        let (info, stream) = self.get_stream(rel, range, if_match).await?;
        let parts: Vec<Bytes> = stream.try_collect().await?;
        let bytes = match parts.len() {
            1 => parts.into_iter().next().unwrap_or_default(),
            _ => Bytes::from(parts.concat()),
        };
        Ok((info, bytes))
    }

    /// Bytes `range` of `rel` as a stream.
    pub async fn get_stream(
        &self,
        rel: &str,
        range: Range<u64>,
        if_match: Option<&str>,
    ) -> Result<(ObjectInfo, BoxStream<'static, Result<Bytes, StoreError>>), StoreError> {
        let location = self.url.join(rel);
        let options = GetOptions {
            range: Some(GetRange::Bounded(range)),
            if_match: if_match.map(str::to_string),
            ..GetOptions::default()
        };
        let got = self
            .inner
            .get_opts(&self.path(rel), options)
            .await
            .map_err(|e| StoreError::of(&location, e))?;
        let info = ObjectInfo::of(rel.to_string(), &got.meta);
        let stream = got
            .into_stream()
            .map(move |r| r.map_err(|e| StoreError::of(&location, e)))
            .boxed();
        Ok((info, stream))
    }

    /// The whole of `rel` unless its entity tag is still `if_none_match`
    /// (`Ok(None)`: not modified).
    pub async fn get_if_changed(
        &self,
        rel: &str,
        if_none_match: Option<&str>,
    ) -> Result<Option<(ObjectInfo, Bytes)>, StoreError> {
        let location = self.url.join(rel);
        let options = GetOptions {
            if_none_match: if_none_match.map(str::to_string),
            ..GetOptions::default()
        };
        let got = match self.inner.get_opts(&self.path(rel), options).await {
            Ok(g) => g,
            Err(object_store::Error::NotModified { .. }) => return Ok(None),
            Err(e) => return Err(StoreError::of(&location, e)),
        };
        let info = ObjectInfo::of(rel.to_string(), &got.meta);
        let bytes = got
            .bytes()
            .await
            .map_err(|e| StoreError::of(&location, e))?;
        Ok(Some((info, bytes)))
    }

    /// The whole of `rel`, or `None` when there is no such object.
    pub async fn get_optional(&self, rel: &str) -> Result<Option<Bytes>, StoreError> {
        match self.get_if_changed(rel, None).await {
            Ok(got) => Ok(got.map(|(_, b)| b)),
            Err(e) if e.kind == StoreErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// What the store says about `rel`.
    pub async fn head(&self, rel: &str) -> Result<ObjectInfo, StoreError> {
        let m = self
            .inner
            .head(&self.path(rel))
            .await
            .map_err(|e| StoreError::of(&self.url.join(rel), e))?;
        Ok(ObjectInfo::of(rel.to_string(), &m))
    }

    /// Every object below the prefix.
    pub async fn list(&self) -> Result<Vec<ObjectInfo>, StoreError> {
        let root = self.url.to_string();
        let prefix =
            (!self.url.prefix.is_empty()).then(|| ObjectPath::from(self.url.prefix.as_str()));
        let strip = match &prefix {
            Some(p) => format!("{}/", p.as_ref()),
            None => String::new(),
        };
        let metas: Vec<object_store::ObjectMeta> = self
            .inner
            .list(prefix.as_ref())
            .try_collect()
            .await
            .map_err(|e| StoreError::of(&root, e))?;
        Ok(metas
            .iter()
            .filter_map(|m| {
                let key = m.location.as_ref();
                let rel = key.strip_prefix(strip.as_str())?;
                Some(ObjectInfo::of(rel.to_string(), m))
            })
            .collect())
    }

    /// Write `bytes` as `rel`.
    pub async fn put(&self, rel: &str, bytes: Bytes) -> Result<(), StoreError> {
        self.inner
            .put(&self.path(rel), PutPayload::from(bytes))
            .await
            .map(|_| ())
            .map_err(|e| StoreError::of(&self.url.join(rel), e))
    }

    /// Upload the file at `path` as `rel`: one `PUT` up to [`PART_BYTES`],
    /// a multipart upload above.
    pub async fn put_file(&self, rel: &str, path: &Path) -> Result<(), StoreError> {
        use tokio::io::AsyncReadExt;
        let location = self.url.join(rel);
        let io = |e: std::io::Error| {
            StoreError::new(StoreErrorKind::Other, format!("{}: {e}", path.display()))
        };
        let mut file = tokio::fs::File::open(path).await.map_err(io)?;
        let size = file.metadata().await.map_err(io)?.len();
        if size <= PART_BYTES as u64 {
            let mut buf = Vec::with_capacity(size as usize);
            file.read_to_end(&mut buf).await.map_err(io)?;
            return self.put(rel, Bytes::from(buf)).await;
        }
        let upload = self
            .inner
            .put_multipart(&self.path(rel))
            .await
            .map_err(|e| StoreError::of(&location, e))?;
        let mut writer = WriteMultipart::new_with_chunk_size(upload, PART_BYTES);
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = file.read(&mut buf).await.map_err(io)?;
            if n == 0 {
                break;
            }
            writer
                .wait_for_capacity(PARTS_IN_FLIGHT)
                .await
                .map_err(|e| StoreError::of(&location, e))?;
            writer.write(&buf[..n]);
        }
        writer
            .finish()
            .await
            .map(|_| ())
            .map_err(|e| StoreError::of(&location, e))
    }

    /// Remove `rel` (no error when it is not there).
    pub async fn delete(&self, rel: &str) -> Result<(), StoreError> {
        match self.inner.delete(&self.path(rel)).await {
            Ok(()) => Ok(()),
            Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(StoreError::of(&self.url.join(rel), e)),
        }
    }
}
