//! An HTTPS server as a [`Source`]: distpoint, nginx, a CDN, anything that
//! answers ranged `GET`s. Nothing about its `ETag` is assumed: the strong
//! `ETag` of its first answer (or its `Last-Modified`) goes back in
//! `If-Range`, and only this server's own answers are compared with it.

use super::conn::{ClientError, Conn, Tuning};
use super::endpoint::{Client, Target};
use super::response::{content_range, quarantine_notice, read_all, retry_after, transient_status};
use super::source::{
    BoxFuture, ReadError, ReadErrorKind, ReadRequest, Reader, Reply, Source, Validator,
};
use bytes::Bytes;
use futures_core::Stream;
use http::{HeaderMap, StatusCode};
use http_body::Body as _;
use hyper::body::Incoming;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

/// One file on one HTTPS server.
pub struct HttpSource {
    client: Client,
    target: Target,
    tuning: Tuning,
}

impl HttpSource {
    /// The file at `target`, reached with `client`'s trust and credentials.
    pub fn new(client: Client, target: Target, tuning: Tuning) -> HttpSource {
        HttpSource {
            client,
            target,
            tuning,
        }
    }
}

/// Classify a connection-level failure: settings and TLS are final, the rest transient.
pub fn client_failure(url: &str, e: ClientError) -> ReadError {
    let kind = if e.is_settings() {
        ReadErrorKind::Settings
    } else if e.is_tls() {
        ReadErrorKind::Tls
    } else {
        ReadErrorKind::Transient {
            wait: std::time::Duration::ZERO,
        }
    };
    ReadError::caused(kind, format!("{url}: {e}"), e)
}

impl Source for HttpSource {
    fn name(&self) -> &str {
        &self.target.url
    }

    fn open(&self) -> BoxFuture<'_, Result<Box<dyn Reader>, ReadError>> {
        Box::pin(async move {
            let conn = self
                .client
                .connect_tuned(&self.target, self.tuning)
                .await
                .map_err(|e| client_failure(&self.target.authority, e))?;
            Ok(Box::new(HttpReader {
                conn,
                client: self.client.clone(),
                target: self.target.clone(),
                url: Arc::from(self.target.url.as_str()),
            }) as Box<dyn Reader>)
        })
    }
}

struct HttpReader {
    conn: Conn,
    client: Client,
    target: Target,
    url: Arc<str>,
}

impl Reader for HttpReader {
    fn read<'a>(&'a mut self, req: ReadRequest<'a>) -> BoxFuture<'a, Result<Reply, ReadError>> {
        Box::pin(self.read_range(req))
    }

    fn protocol(&self) -> Option<&'static str> {
        Some(self.conn.protocol.name())
    }
}

impl HttpReader {
    async fn read_range(&mut self, req: ReadRequest<'_>) -> Result<Reply, ReadError> {
        let url = &*self.url;
        let mut b = self.client.get(&self.target, self.conn.protocol).header(
            http::header::RANGE,
            format!("bytes={}-{}", req.start, req.end - 1),
        );
        if let Some(v) = req.validator {
            // If the copy changed since this validator, the server answers
            // 200 with the whole new file instead of a range of the old one.
            b = b.header(http::header::IF_RANGE, v.as_str());
        }
        let request = Client::build(b).map_err(|e| client_failure(url, e))?;
        let resp = self
            .conn
            .send(request)
            .await
            .map_err(|e| client_failure(url, e))?;
        let status = resp.status();
        match status {
            StatusCode::PARTIAL_CONTENT => check_range(url, resp.headers(), &req)?,
            StatusCode::OK if req.validator.is_some() => {
                return Err(ReadError::new(
                    ReadErrorKind::Changed,
                    format!("{url}: answered 200 to If-Range: its copy changed"),
                ))
            }
            // A server that ignores Range is fine for a read of the whole file.
            StatusCode::OK if req.start == 0 && req.end == req.size => {
                check_length(url, resp.headers(), req.size)?
            }
            StatusCode::OK => {
                return Err(ReadError::new(
                    ReadErrorKind::Protocol,
                    format!("{url}: answered 200 to a Range request (it does not serve ranges)"),
                ))
            }
            StatusCode::RANGE_NOT_SATISFIABLE => {
                return Err(ReadError::new(
                    ReadErrorKind::Changed,
                    format!("{url}: 416 Range Not Satisfiable: its copy is shorter than the manifest's {} bytes", req.size),
                ))
            }
            s if transient_status(s) => return Err(refusal(url, resp).await),
            s => {
                return Err(ReadError::new(
                    ReadErrorKind::Status(s.as_u16()),
                    format!("{url}: HTTP {}", status_line(s)),
                ))
            }
        }
        Ok(Reply {
            validator: validator_of(resp.headers()),
            body: Box::pin(HttpBody {
                inner: resp.into_body(),
                url: self.url.clone(),
            }),
        })
    }
}

/// `404 Not Found`, or the bare code when it has no reason phrase.
pub fn status_line(s: StatusCode) -> String {
    match s.canonical_reason() {
        Some(r) => format!("{} {r}", s.as_u16()),
        None => s.as_u16().to_string(),
    }
}

/// A transient status: a quarantine notice (distpoint), or a pause to retry after.
async fn refusal(url: &str, resp: http::Response<Incoming>) -> ReadError {
    let status = resp.status();
    let wait = retry_after(resp.headers());
    let headers = resp.headers().clone();
    let body = read_all(resp, 4096)
        .await
        .map(|w| w.body)
        .unwrap_or_default();
    if let Some(notice) = quarantine_notice(&headers, &body) {
        return ReadError::new(
            ReadErrorKind::Quarantined {
                chunk: notice.chunk,
            },
            format!(
                "{url}: the server reports that the file failed its integrity check (quarantined)"
            ),
        );
    }
    ReadError::new(
        ReadErrorKind::Transient { wait },
        format!("{url}: HTTP {}", status_line(status)),
    )
}

fn check_range(url: &str, h: &HeaderMap, req: &ReadRequest<'_>) -> Result<(), ReadError> {
    match content_range(h) {
        Some((a, b, size)) if a == req.start && b + 1 == req.end && size == req.size => Ok(()),
        Some((_, _, size)) if size != req.size => Err(ReadError::new(
            ReadErrorKind::Changed,
            format!(
                "{url}: its copy has {size} bytes, the manifest says {}",
                req.size
            ),
        )),
        _ => Err(ReadError::new(
            ReadErrorKind::Protocol,
            format!(
                "{url}: unexpected Content-Range for bytes {}-{}",
                req.start,
                req.end - 1
            ),
        )),
    }
}

fn check_length(url: &str, h: &HeaderMap, size: u64) -> Result<(), ReadError> {
    let len = h
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    match len {
        Some(n) if n != size => Err(ReadError::new(
            ReadErrorKind::Changed,
            format!("{url}: its copy has {n} bytes, the manifest says {size}"),
        )),
        _ => Ok(()),
    }
}

/// The validator an answer carries: a strong `ETag`, else `Last-Modified`.
/// (A weak tag may not be used in `If-Range`.)
pub fn validator_of(h: &HeaderMap) -> Option<Validator> {
    let text = |name| {
        h.get(name)
            .and_then(|v: &http::HeaderValue| v.to_str().ok())
    };
    match text(http::header::ETAG) {
        Some(t) if !t.starts_with("W/") => Some(Validator::ETag(t.to_string())),
        _ => text(http::header::LAST_MODIFIED).map(|d| Validator::LastModified(d.to_string())),
    }
}

/// A response body as a stream of data pieces; a body cut short is a
/// transient error.
struct HttpBody {
    inner: Incoming,
    url: Arc<str>,
}

impl Stream for HttpBody {
    type Item = Result<Bytes, ReadError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        loop {
            return match Pin::new(&mut self.inner).poll_frame(cx) {
                Poll::Pending => Poll::Pending,
                Poll::Ready(None) => Poll::Ready(None),
                Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(ReadError::caused(
                    ReadErrorKind::Transient {
                        wait: std::time::Duration::ZERO,
                    },
                    format!("{}: transfer cut: {e}", self.url),
                    e,
                )))),
                Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                    Ok(d) => Poll::Ready(Some(Ok(d))),
                    // Trailers carry no content.
                    Err(_) => continue,
                },
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strong_etags_are_preferred_and_weak_ones_fall_back_to_the_date() {
        let mut h = HeaderMap::new();
        h.insert(
            "last-modified",
            "Tue, 01 Jul 2025 10:00:00 GMT".parse().unwrap(),
        );
        assert_eq!(
            validator_of(&h),
            Some(Validator::LastModified(
                "Tue, 01 Jul 2025 10:00:00 GMT".into()
            ))
        );
        h.insert("etag", "W/\"weak\"".parse().unwrap());
        assert!(matches!(validator_of(&h), Some(Validator::LastModified(_))));
        h.insert("etag", "\"5f3a-1000\"".parse().unwrap());
        assert_eq!(
            validator_of(&h),
            Some(Validator::ETag("\"5f3a-1000\"".into()))
        );
        let req = ReadRequest {
            start: 0,
            end: 10,
            size: 100,
            validator: None,
        };
        h.insert("content-range", "bytes 0-9/100".parse().unwrap());
        assert!(check_range("u", &h, &req).is_ok());
        h.insert("content-range", "bytes 0-9/99".parse().unwrap());
        assert_eq!(
            check_range("u", &h, &req).unwrap_err().kind,
            ReadErrorKind::Changed
        );
        h.insert("content-range", "bytes 1-10/100".parse().unwrap());
        assert_eq!(
            check_range("u", &h, &req).unwrap_err().kind,
            ReadErrorKind::Protocol
        );
    }
}
