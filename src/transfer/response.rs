//! Reading HTTP responses as a download client: small bodies whole, the
//! headers a ranged download depends on (`Content-Range`, `Retry-After`,
//! validators), and what a distpoint server says when it has quarantined a
//! file.

use super::conn::ClientError;
use crate::integrity::quarantine;
use http::{HeaderMap, StatusCode};
use http_body_util::BodyExt as _;
use std::time::Duration;

/// A small response read whole.
#[derive(Debug)]
pub struct Whole {
    /// The status.
    pub status: StatusCode,
    /// The headers.
    pub headers: HeaderMap,
    /// The body.
    pub body: Vec<u8>,
}

/// Read a small response body whole (manifests, signatures, error bodies),
/// refusing more than `limit` bytes.
pub async fn read_all(
    resp: http::Response<hyper::body::Incoming>,
    limit: usize,
) -> Result<Whole, ClientError> {
    let status = resp.status();
    let headers = resp.headers().clone();
    let mut body = resp.into_body();
    let mut out = Vec::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(ClientError::Http)?;
        if let Ok(d) = frame.into_data() {
            if out.len() + d.len() > limit {
                return Err(ClientError::TooLarge { limit });
            }
            out.extend_from_slice(&d);
        }
    }
    Ok(Whole {
        status,
        headers,
        body: out,
    })
}

/// How long the server asked us to wait (`Retry-After` seconds), capped at 5 s.
pub fn retry_after(headers: &HeaderMap) -> Duration {
    headers
        .get(http::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(|s| Duration::from_secs(s.min(5)))
        .unwrap_or_default()
}

/// True for statuses worth retrying.
pub fn transient_status(s: StatusCode) -> bool {
    matches!(s.as_u16(), 408 | 429 | 500 | 502 | 503 | 504)
}

/// Parse `Content-Range: bytes A-B/SIZE` into `(A, B, SIZE)`.
pub fn content_range(h: &HeaderMap) -> Option<(u64, u64, u64)> {
    let v = h.get(http::header::CONTENT_RANGE)?.to_str().ok()?;
    let rest = v.strip_prefix("bytes ")?;
    let (range, size) = rest.split_once('/')?;
    let (a, b) = range.split_once('-')?;
    Some((a.parse().ok()?, b.parse().ok()?, size.parse().ok()?))
}

/// The words a distpoint server puts in the `503` body of a file it has
/// quarantined after one of its chunks failed the server's own check.
const QUARANTINE_NOTICE: &[u8] = b"failed its integrity check";

/// How a quarantine `503` identified itself: by the `Distpoint-Integrity`
/// header, or (servers that predate it) only by its body text. `None` when
/// the response is not a quarantine notice at all.
pub fn quarantine_notice(headers: &HeaderMap, body: &[u8]) -> Option<quarantine::Notice> {
    quarantine::parse_header(headers).or_else(|| {
        body.windows(QUARANTINE_NOTICE.len())
            .any(|w| w == QUARANTINE_NOTICE)
            .then_some(quarantine::Notice { chunk: None })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_range_retry_after_and_quarantine_notices_parse() {
        let mut h = HeaderMap::new();
        h.insert("content-range", "bytes 10-19/100".parse().unwrap());
        h.insert("retry-after", "120".parse().unwrap());
        assert_eq!(content_range(&h), Some((10, 19, 100)));
        assert_eq!(retry_after(&h), Duration::from_secs(5));
        assert!(transient_status(StatusCode::SERVICE_UNAVAILABLE));
        assert!(!transient_status(StatusCode::NOT_FOUND));
        assert_eq!(quarantine_notice(&h, b"busy"), None);
        let n = quarantine_notice(&h, b"this file failed its integrity check").unwrap();
        assert_eq!(n.chunk, None);
        h.insert(
            "distpoint-integrity",
            "quarantined; chunk=7".parse().unwrap(),
        );
        assert_eq!(quarantine_notice(&h, b"").unwrap().chunk, Some(7));
    }
}
