//! The request pipeline, in the order SPEC.md fixes:
//! route → authenticate → authorize → resolve → conditionals → range → body.
//!
//! Each step is one call here, so the whole order of checks reads at once.
//! Every step returns a typed error; [`RequestError::into_response`] is the
//! one place errors become status codes.

use crate::auth::Identity;
use crate::body::{BodyError, FileStream, ResponseBody};
use crate::config::Config;
use crate::error::RequestError;
use crate::http::{self as sem, Precondition, RangePlan, Segment, Validators};
use crate::integrity::{hex, metalink, FileManifest, Prepared};
use crate::logging::AccessLog;
use crate::resolve::{self, ResolvedFile};
use crate::server::{ConnInfo, ServerState};
use crate::vpath::{Integrity, Vpath};
use base64::Engine;
use http::{header, HeaderMap, HeaderValue, Method, Request, Response, StatusCode};
use std::convert::Infallible;
use std::sync::Arc;

/// Answer one request. Never fails: errors become responses here.
pub async fn handle<B>(
    state: Arc<ServerState>,
    conn: Arc<ConnInfo>,
    req: Request<B>,
) -> Result<Response<ResponseBody>, Infallible> {
    let proto = match req.version() {
        http::Version::HTTP_2 => "h2",
        _ => "h1",
    };
    let mut log = AccessLog::new(conn.peer, proto, req.method(), req.uri().path());
    // One snapshot for the whole request: it sees the old config or the new one, never a mix.
    let config = state.config.load_full();
    let head_only = req.method() == Method::HEAD;
    let mut response = match serve(&state, &config, &conn, &req, &mut log).await {
        Ok(response) => response,
        Err(e) => {
            let response = e.into_response(head_only);
            log.status(response.status(), Some(e.to_string()));
            response
        }
    };
    security_headers(response.headers_mut());
    if head_only || response.status() == StatusCode::NOT_MODIFIED {
        log = log.no_body();
    }
    Ok(response.map(|body| body.with_log(log)))
}

async fn serve<B>(
    state: &ServerState,
    config: &Config,
    conn: &ConnInfo,
    req: &Request<B>,
    log: &mut AccessLog,
) -> Result<Response<ResponseBody>, RequestError> {
    let method = allowed_method(req.method())?;
    let query = Query::of(req.uri().query());
    let raw_path = req.uri().path();
    // `URL/?manifest` and `URL/?signature` name a published path itself; the
    // decoder refuses a trailing '/', so it is taken off here, for these only.
    let package_request =
        matches!(query, Query::Manifest | Query::Signature) && raw_path.ends_with('/');
    let path = match raw_path.strip_suffix('/') {
        Some(p) if package_request && !p.is_empty() => p,
        _ => raw_path,
    };
    let segments = decode_path(path)?;
    let (vpath, rest) = config
        .vpaths
        .route(&segments)
        .ok_or(RequestError::NoRoute)?;
    let identity = state
        .auth
        .authenticate(
            conn.peer.ip(),
            &config.directory,
            req.headers().get(header::AUTHORIZATION),
            conn.cert_cn.as_deref(),
        )
        .await?;
    log.principal(identity.to_string());
    authorize(config, vpath, &identity)?;
    let head = method == Method::HEAD;
    if package_request {
        let response = package_document(state, vpath, rest, query, head).await?;
        log.status(response.status(), None);
        return Ok(response);
    }
    let file = open(vpath, rest).await?;
    let prepared = state
        .integrity
        .prepare(vpath, rest, file, req.uri().path())
        .await?;
    let response = match query {
        Query::Manifest => {
            let json = prepared.manifest.to_json().into_bytes();
            document("application/json", json, head)
        }
        Query::Metalink => {
            let url = format!("https://{}{}", authority(req), req.uri().path());
            let name = rest.last().map(String::as_str).unwrap_or("");
            let doc = metalink::render(&prepared.manifest, name, &url);
            document(metalink::CONTENT_TYPE, doc.into_bytes(), head)
        }
        Query::Signature | Query::None => respond(&method, req.headers(), prepared, rest).await?,
    };
    // The body remembers what authorized it, so a config change can cut it.
    let authority = crate::live::Authority::new(vpath, &segments, identity);
    let transfer = crate::live::track(state, authority, conn.close.clone())?;
    log.status(response.status(), None);
    Ok(response.map(|body| body.with_transfer(transfer)))
}

/// What a query string asks for; anything unknown is the file itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Query {
    None,
    Manifest,
    Metalink,
    Signature,
}

impl Query {
    fn of(q: Option<&str>) -> Query {
        match q {
            Some("manifest") => Query::Manifest,
            Some("metalink") => Query::Metalink,
            Some("signature") => Query::Signature,
            _ => Query::None,
        }
    }
}

/// The host the client addressed: `:authority` (HTTP/2) or `Host`.
fn authority<B>(req: &Request<B>) -> String {
    req.uri()
        .authority()
        .cloned()
        .or_else(|| {
            req.headers()
                .get(header::HOST)
                .and_then(|h| h.to_str().ok())
                .and_then(|h| h.parse::<http::uri::Authority>().ok())
        })
        .map_or_else(|| "localhost".into(), |a| a.to_string())
}

/// A small generated document (manifest, metalink, signature).
fn document(content_type: &'static str, body: Vec<u8>, head: bool) -> Response<ResponseBody> {
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

/// `URL/?manifest` (exact `manifest.json` bytes) and `URL/?signature`.
async fn package_document(
    state: &ServerState,
    vpath: &Arc<Vpath>,
    rest: &[String],
    query: Query,
    head: bool,
) -> Result<Response<ResponseBody>, RequestError> {
    let not_found = || RequestError::NotFound(resolve::ResolveError::NotFound);
    if !rest.is_empty() || vpath.integrity != Integrity::Published {
        return Err(not_found());
    }
    let package = state.integrity.package(vpath).await?;
    Ok(match query {
        Query::Signature => {
            let sig = package.signature.clone().ok_or_else(not_found)?;
            document("application/octet-stream", sig.to_vec(), head)
        }
        _ => document("application/json", package.bytes.to_vec(), head),
    })
}

fn allowed_method(method: &Method) -> Result<Method, RequestError> {
    match *method {
        Method::GET | Method::HEAD => Ok(method.clone()),
        _ => Err(RequestError::MethodNotAllowed),
    }
}

/// Split the URL path into decoded segments; nothing unsafe survives this.
fn decode_path(path: &str) -> Result<Vec<String>, RequestError> {
    let rest = path.strip_prefix('/').ok_or(RequestError::NoRoute)?;
    if rest.is_empty() {
        return Ok(Vec::new());
    }
    resolve::decode_segments(rest).map_err(RequestError::BadPath)
}

/// Anonymous only where the path says so; otherwise the principal must be allowed.
fn authorize(config: &Config, vpath: &Vpath, identity: &Identity) -> Result<(), RequestError> {
    if vpath.anonymous {
        return Ok(());
    }
    if identity.is_anonymous() {
        return Err(RequestError::NoCredentials);
    }
    if config.directory.is_allowed(identity, &vpath.allow) {
        Ok(())
    } else {
        Err(RequestError::NotAllowed)
    }
}

/// Open the file beneath the path's folder, off the async threads.
async fn open(vpath: &Vpath, rest: &[String]) -> Result<ResolvedFile, RequestError> {
    if rest.is_empty() {
        // The path's own folder: there are no listings.
        return Err(RequestError::NotFound(resolve::ResolveError::NotRegular));
    }
    let dir = vpath.dir.clone();
    let rest = rest.to_vec();
    tokio::task::spawn_blocking(move || resolve::open_beneath(&dir, &rest))
        .await
        .map_err(|e| RequestError::Internal(e.to_string()))?
        .map_err(RequestError::NotFound)
}

/// A strong validator for one file version: 128 bits of its manifest root,
/// so the same bytes give the same ETag across restarts, inode changes and
/// servers, and any change of content gives another.
fn etag_of(m: &FileManifest) -> String {
    format!("\"{}\"", &hex(&m.root)[..32])
}

/// `Repr-Digest` (RFC 9530) of the whole file.
fn repr_digest(m: &FileManifest) -> String {
    format!(
        "sha-256=:{}:",
        base64::engine::general_purpose::STANDARD.encode(m.sha256)
    )
}

/// Conditionals, then range, then the body.
async fn respond(
    method: &Method,
    headers: &HeaderMap,
    prepared: Prepared,
    rest: &[String],
) -> Result<Response<ResponseBody>, RequestError> {
    let manifest = &prepared.manifest;
    let size = manifest.size;
    let validators = Validators {
        etag: etag_of(manifest),
        last_modified: prepared.source.identity().modified(),
    };
    let etag = HeaderValue::from_str(&validators.etag)
        .map_err(|e| RequestError::Internal(e.to_string()))?;
    let last_modified = sem::http_date(validators.last_modified);
    let honor_range = match sem::evaluate_preconditions(method, headers, &validators) {
        Precondition::Failed => return Err(RequestError::PreconditionFailed),
        Precondition::NotModified => {
            return Ok(Response::builder()
                .status(StatusCode::NOT_MODIFIED)
                .header(header::ETAG, etag)
                .header(header::LAST_MODIFIED, last_modified)
                .body(ResponseBody::empty())
                .expect("valid headers"))
        }
        Precondition::Proceed { honor_range } => honor_range && *method == Method::GET,
    };
    let plan = if honor_range {
        sem::plan_range(headers.get(header::RANGE), size)
    } else {
        RangePlan::Full
    };
    let name = rest.last().map(String::as_str).unwrap_or("");
    let content_type = mime_guess::from_path(name)
        .first_raw()
        .unwrap_or("application/octet-stream");
    let builder = Response::builder()
        .header(header::ACCEPT_RANGES, "bytes")
        .header(header::ETAG, etag)
        .header(header::LAST_MODIFIED, last_modified)
        .header("repr-digest", repr_digest(manifest));
    let (builder, segments, len) = match plan {
        RangePlan::Unsatisfiable => return Err(RequestError::RangeNotSatisfiable { size }),
        RangePlan::Full => {
            let segments = if size > 0 {
                vec![Segment::File(sem::ByteRange {
                    start: 0,
                    end: size,
                })]
            } else {
                vec![]
            };
            (
                builder
                    .status(StatusCode::OK)
                    .header(header::CONTENT_TYPE, content_type),
                segments,
                size,
            )
        }
        RangePlan::Single(r) => (
            builder
                .status(StatusCode::PARTIAL_CONTENT)
                .header(header::CONTENT_TYPE, content_type)
                .header(header::CONTENT_RANGE, sem::content_range(r, size)),
            vec![Segment::File(r)],
            r.end - r.start,
        ),
        RangePlan::Multi(ranges) => {
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
    let body = if *method == Method::HEAD {
        ResponseBody::empty()
    } else {
        let mut stream = FileStream::new(prepared.source, segments);
        // The first chunk is read and verified before the headers go out,
        // so a mismatch there is a clean 503 rather than a cut.
        stream.prime().await.map_err(|e| match e {
            BodyError::Integrity { chunk } => RequestError::Quarantined { chunk: Some(chunk) },
            BodyError::Cut(why) => RequestError::Unavailable(why),
            other => RequestError::Internal(other.to_string()),
        })?;
        ResponseBody::file(stream)
    };
    builder
        .header(header::CONTENT_LENGTH, len)
        .body(body)
        .map_err(|e| RequestError::Internal(e.to_string()))
}

/// Headers every response carries.
fn security_headers(h: &mut HeaderMap) {
    h.insert(
        header::STRICT_TRANSPORT_SECURITY,
        HeaderValue::from_static("max-age=31536000"),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    // Packages may contain HTML or SVG; never let them run script on this origin.
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; sandbox"),
    );
}
