//! Small generated answers: `?manifest`, `?metalink`, and a published
//! path's own `URL/?manifest` and `URL/?signature`.

use crate::body::ResponseBody;
use crate::error::RequestError;
use crate::integrity::{metalink, IntegrityState, Prepared};
use crate::resolve::ResolveError;
use crate::vpath::{Integrity, Vpath};
use http::{header, Response, StatusCode};
use std::sync::Arc;

/// What a query string asks for; anything unknown is the file itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Query {
    /// The file.
    None,
    /// `?manifest`: the chunk manifest (or, on `URL/`, the package manifest).
    Manifest,
    /// `?metalink`: Metalink 4 with per-piece hashes.
    Metalink,
    /// `?signature` on `URL/`: the package manifest's signature.
    Signature,
}

impl Query {
    /// The query of a request URI.
    pub fn of(q: Option<&str>) -> Query {
        match q {
            Some("manifest") => Query::Manifest,
            Some("metalink") => Query::Metalink,
            Some("signature") => Query::Signature,
            _ => Query::None,
        }
    }
}

/// A small in-memory document.
pub fn document(content_type: &'static str, body: Vec<u8>, head: bool) -> Response<ResponseBody> {
    let len = body.len();
    let body = if head {
        ResponseBody::empty()
    } else {
        ResponseBody::full(body)
    };
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, content_type)
        .header(header::CONTENT_LENGTH, len)
        .header(header::CACHE_CONTROL, "no-cache")
        .body(body)
        .expect("valid headers")
}

/// `FILE?manifest` or `FILE?metalink` for a prepared file; `url` is the
/// file's absolute URL for the Metalink `<url>`.
pub fn about_file(
    query: Query,
    prepared: &Prepared,
    name: &str,
    url: &str,
    head: bool,
) -> Response<ResponseBody> {
    if query == Query::Metalink {
        let doc = metalink::render(&prepared.manifest, name, url);
        let mut response = document(metalink::CONTENT_TYPE, doc.into_bytes(), head);
        // Saved as NAME.meta4, not under the file's own name, by clients
        // that store what they get.
        let disposition = format!("attachment; filename=\"{}.meta4\"", ascii_name(name));
        if let Ok(v) = http::HeaderValue::from_str(&disposition) {
            response
                .headers_mut()
                .insert(header::CONTENT_DISPOSITION, v);
        }
        return response;
    }
    let json = prepared.manifest.to_json().into_bytes();
    document("application/json", json, head)
}

/// `URL/?manifest` (the exact `manifest.json` bytes) and `URL/?signature`.
pub async fn package(
    integrity: &IntegrityState,
    vpath: &Arc<Vpath>,
    rest: &[String],
    query: Query,
    head: bool,
) -> Result<Response<ResponseBody>, RequestError> {
    let not_found = || RequestError::NotFound(ResolveError::NotFound);
    if !rest.is_empty() || vpath.integrity != Integrity::Published {
        return Err(not_found());
    }
    let package = integrity.package(vpath).await?;
    Ok(match query {
        Query::Signature => {
            let sig = package.signature.clone().ok_or_else(not_found)?;
            document("application/octet-stream", sig.to_vec(), head)
        }
        _ => document("application/json", package.bytes.to_vec(), head),
    })
}

/// `name` for a quoted `filename=`: printable ASCII, without quotes or
/// backslashes (anything else becomes `_`).
fn ascii_name(name: &str) -> String {
    name.chars()
        .map(|c| match c {
            ' '..='~' if c != '"' && c != '\\' => c,
            _ => '_',
        })
        .collect()
}
