//! The request pipeline, in the order SPEC.md fixes:
//! route → authenticate → authorize → resolve → conditionals → range → body.
//!
//! Each step is one call here, so the whole order of checks reads at once.
//! Every step returns a typed error; [`RequestError::into_response`] is the
//! one place errors become status codes.

use crate::auth::Identity;
use crate::body::{FileStream, PlainFile, ResponseBody};
use crate::config::Config;
use crate::error::RequestError;
use crate::http::{self as sem, Precondition, RangePlan, Segment, Validators};
use crate::logging::AccessLog;
use crate::resolve::{self, FileIdentity, ResolvedFile};
use crate::server::{ConnInfo, ServerState};
use crate::vpath::Vpath;
use http::{header, HeaderMap, HeaderValue, Method, Request, Response, StatusCode};
use sha2::{Digest, Sha256};
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
    let segments = decode_path(req.uri().path())?;
    let (vpath, rest) = config
        .vpaths
        .route(&segments)
        .ok_or(RequestError::NoRoute)?;
    let identity = state
        .auth
        .authenticate(
            &config.directory,
            req.headers().get(header::AUTHORIZATION),
            conn.cert_cn.as_deref(),
        )
        .await?;
    log.principal(identity.to_string());
    authorize(config, vpath, &identity)?;
    let file = open(vpath, rest).await?;
    let response = respond(&method, req.headers(), file, rest)?;
    // The body remembers what authorized it, so a config change can cut it.
    let authority = crate::live::Authority::new(vpath, &segments, identity);
    let transfer = crate::live::track(state, authority, conn.close.clone())?;
    log.status(response.status(), None);
    Ok(response.map(|body| body.with_transfer(transfer)))
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

/// A strong validator for one file version.
fn etag_of(id: &FileIdentity) -> String {
    let mut h = Sha256::new();
    for v in [id.dev, id.ino, id.size] {
        h.update(v.to_le_bytes());
    }
    for v in [id.mtime_sec, id.mtime_nsec, id.ctime_sec, id.ctime_nsec] {
        h.update(v.to_le_bytes());
    }
    let digest = h.finalize();
    let hex: String = digest[..12].iter().map(|b| format!("{b:02x}")).collect();
    format!("\"{hex}\"")
}

/// Conditionals, then range, then the body.
fn respond(
    method: &Method,
    headers: &HeaderMap,
    file: ResolvedFile,
    rest: &[String],
) -> Result<Response<ResponseBody>, RequestError> {
    let size = file.identity.size;
    let validators = Validators {
        etag: etag_of(&file.identity),
        last_modified: file.identity.modified(),
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
        .header(header::LAST_MODIFIED, last_modified);
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
        ResponseBody::file(FileStream::new(
            Arc::new(PlainFile::new(file.file)),
            segments,
        ))
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
