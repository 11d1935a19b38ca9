//! Conditionals → range → body for one prepared file: first decide what the
//! answer is ([`decide`]), then render it ([`render`]). The decision needs
//! no file and no socket, so it is unit-tested on its own.

use crate::body::{Budget, FileStream, ResponseBody};
use crate::error::RequestError;
use crate::http::{self as sem, ByteRange, Precondition, RangePlan, Segment, Validators};
use crate::integrity::{repr_digest, Prepared};
use http::{header, HeaderMap, HeaderValue, Method, Response, StatusCode};
use std::sync::Arc;

/// What a request for an existing, verified file gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// `304`: the client's copy is current.
    NotModified,
    /// `200` with the whole file (or only its headers, for `HEAD`).
    Full,
    /// `206` with one range.
    Single(ByteRange),
    /// `206` `multipart/byteranges`.
    Multi(Vec<ByteRange>),
}

/// RFC 9110 §13.2.2: preconditions in order, then the `Range` header (GET only).
pub fn decide(
    method: &Method,
    headers: &HeaderMap,
    validators: &Validators,
    size: u64,
) -> Result<Answer, RequestError> {
    let honor_range = match sem::evaluate_preconditions(method, headers, validators) {
        Precondition::Failed => return Err(RequestError::PreconditionFailed),
        Precondition::NotModified => return Ok(Answer::NotModified),
        Precondition::Proceed { honor_range } => honor_range && *method == Method::GET,
    };
    if !honor_range {
        return Ok(Answer::Full);
    }
    match sem::plan_range(headers.get(header::RANGE), size) {
        RangePlan::Unsatisfiable => Err(RequestError::RangeNotSatisfiable { size }),
        RangePlan::Full => Ok(Answer::Full),
        RangePlan::Single(r) => Ok(Answer::Single(r)),
        RangePlan::Multi(ranges) => Ok(Answer::Multi(ranges)),
    }
}

/// The response for `answer`: headers, and (unless `head`) a body that reads
/// the file through its verifying source. The first chunk is read and
/// verified before the headers go out, so a mismatch there is a clean `503`
/// rather than a cut.
pub async fn render(
    answer: Answer,
    prepared: Prepared,
    name: &str,
    head: bool,
    budget: &Arc<Budget>,
) -> Result<Response<ResponseBody>, RequestError> {
    let v = &prepared.validators;
    let etag = HeaderValue::from_str(&v.etag).map_err(http::Error::from)?;
    let last_modified = sem::http_date(v.last_modified);
    if answer == Answer::NotModified {
        return Ok(Response::builder()
            .status(StatusCode::NOT_MODIFIED)
            .header(header::ETAG, etag)
            .header(header::LAST_MODIFIED, last_modified)
            .body(ResponseBody::empty())?);
    }
    let size = prepared.manifest.size;
    let content_type = mime_guess::from_path(name)
        .first_raw()
        .unwrap_or("application/octet-stream");
    let builder = Response::builder()
        .header(header::ACCEPT_RANGES, "bytes")
        .header(header::ETAG, etag)
        .header(header::LAST_MODIFIED, last_modified)
        .header("repr-digest", repr_digest(&prepared.manifest));
    let whole = ByteRange {
        start: 0,
        end: size,
    };
    let (builder, segments, len) = match answer {
        Answer::NotModified | Answer::Full => (
            builder
                .status(StatusCode::OK)
                .header(header::CONTENT_TYPE, content_type),
            if size > 0 {
                vec![Segment::File(whole)]
            } else {
                vec![]
            },
            size,
        ),
        Answer::Single(r) => (
            builder
                .status(StatusCode::PARTIAL_CONTENT)
                .header(header::CONTENT_TYPE, content_type)
                .header(header::CONTENT_RANGE, sem::content_range(r, size)),
            vec![Segment::File(r)],
            r.len(),
        ),
        Answer::Multi(ranges) => {
            let body = sem::multipart(&ranges, size, content_type, &sem::new_boundary());
            (
                builder
                    .status(StatusCode::PARTIAL_CONTENT)
                    .header(header::CONTENT_TYPE, body.content_type),
                body.segments,
                body.len,
            )
        }
    };
    let body = if head {
        ResponseBody::empty()
    } else {
        let mut stream = FileStream::new(prepared.source, segments, budget.clone());
        stream.prime().await?;
        ResponseBody::file(stream)
    };
    Ok(builder.header(header::CONTENT_LENGTH, len).body(body)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    fn v() -> Validators {
        Validators {
            etag: "\"abc\"".into(),
            last_modified: UNIX_EPOCH + Duration::from_secs(1_700_000_000),
        }
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, val) in pairs {
            h.insert(*k, HeaderValue::from_str(val).unwrap());
        }
        h
    }

    #[test]
    fn preconditions_come_before_the_range() {
        let get = Method::GET;
        let h = headers(&[("if-match", "\"other\""), ("range", "bytes=0-1")]);
        assert!(matches!(
            decide(&get, &h, &v(), 10),
            Err(RequestError::PreconditionFailed)
        ));
        let h = headers(&[("if-none-match", "\"abc\""), ("range", "bytes=0-1")]);
        assert_eq!(decide(&get, &h, &v(), 10).unwrap(), Answer::NotModified);
        let h = headers(&[("range", "bytes=0-1")]);
        assert_eq!(
            decide(&get, &h, &v(), 10).unwrap(),
            Answer::Single(ByteRange { start: 0, end: 2 })
        );
    }

    #[test]
    fn head_and_stale_if_range_ignore_the_range() {
        let h = headers(&[("range", "bytes=0-1")]);
        assert_eq!(decide(&Method::HEAD, &h, &v(), 10).unwrap(), Answer::Full);
        let h = headers(&[("range", "bytes=0-1"), ("if-range", "\"old\"")]);
        assert_eq!(decide(&Method::GET, &h, &v(), 10).unwrap(), Answer::Full);
        let h = headers(&[("range", "bytes=20-")]);
        assert!(matches!(
            decide(&Method::GET, &h, &v(), 10),
            Err(RequestError::RangeNotSatisfiable { size: 10 })
        ));
    }
}
