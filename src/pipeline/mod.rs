//! The request pipeline, in the order the README's "HTTP behaviour" fixes:
//! route → authenticate → authorize → resolve → conditionals → range → body.
//! The metrics page is one more route: authenticated and authorized the same
//! way, then rendered.
//!
//! Each step is one call in [`serve`], so the whole order of checks reads at
//! once. Every step returns a typed error; [`RequestError::into_response`]
//! is the one place errors become status codes, and [`handle`] the one place
//! the status is logged.
//!
//! [`handle`] takes runtime state and what is known about the connection,
//! not a socket, so tests drive it in-process with `Request::builder()`.

mod documents;
mod metrics;
mod refusal;
mod respond;

#[cfg(test)]
mod tests;

pub use documents::Query;
pub use respond::{decide, Answer};

use crate::auth::{Identity, PrincipalRef};
use crate::body::{Cuttable, Logged, ResponseBody};
use crate::config::{Config, MetricsSettings};
use crate::error::RequestError;
use crate::logging::AccessLog;
use crate::resolve::{self, OpenFiles, ResolvedFile};
use crate::state::{Authority, ConnInfo, ServerState};
use crate::vpath::Vpath;
use http::{header, HeaderMap, HeaderValue, Method, Request, Response, StatusCode};
use std::convert::Infallible;
use std::sync::Arc;

/// Every response body: bytes, cut by a revocation, logged when dropped.
pub type Outgoing = Logged<Cuttable<ResponseBody>>;

/// Answer one request. Never fails: errors become responses here.
pub async fn handle<B>(
    state: Arc<ServerState>,
    conn: Arc<ConnInfo>,
    req: Request<B>,
) -> Result<Response<Outgoing>, Infallible> {
    let proto = match req.version() {
        http::Version::HTTP_2 => "h2",
        _ => "h1",
    };
    let mut log = AccessLog::new(conn.peer, proto, req.method(), req.uri().path())
        .observed(state.tally(proto));
    // One snapshot for the whole request: it sees the old config or the new one, never a mix.
    let config = state.config.load_full();
    let head_only = req.method() == Method::HEAD;
    let (mut response, refusal) = match serve(&state, &config, &conn, &req, &mut log).await {
        Ok(response) => (response, None),
        Err(e) => {
            refusal::record(&state, &conn, &req, log.principal_name(), &e);
            let response = e.into_response(head_only).map(Cuttable::never);
            (response, Some(e.to_string()))
        }
    };
    log.status(response.status(), refusal);
    security_headers(response.headers_mut());
    if head_only || response.status() == StatusCode::NOT_MODIFIED {
        log = log.no_body();
    }
    Ok(response.map(|body| Logged::new(body, log)))
}

/// The steps, in order.
async fn serve<B>(
    state: &ServerState,
    config: &Config,
    conn: &ConnInfo,
    req: &Request<B>,
    log: &mut AccessLog,
) -> Result<Response<Cuttable<ResponseBody>>, RequestError> {
    let method = allowed_method(req.method())?;
    single_headers(req)?;
    let route = Route::of(config, req.uri())?;
    log.route(route.url());
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
    authorize(config, route.access(), &identity)?;
    let head = method == Method::HEAD;
    let (target, vpath) = match route {
        Route::Metrics(_) => return Ok(metrics::page(&state.metrics, req.headers(), head)?),
        Route::Content(target, vpath) => (target, vpath),
    };
    let rest = target.below(vpath);
    // The content as of now: for a replica, the version taken once here is
    // the folder of both the package manifest and the file.
    let served = state.replicas.content(vpath);
    let content = &served.vpath;
    if target.package {
        let response = documents::package(&state.integrity, content, rest, target.query, head);
        return Ok(response.await?.map(Cuttable::never));
    }
    let path = req.uri().path();
    let prepared = match &vpath.origin {
        // Serve-through: the file is an object in the store, not on disk.
        Some(_) if rest.is_empty() => {
            return Err(RequestError::NotFound(resolve::ResolveError::NotRegular))
        }
        Some(_) => state.integrity.prepare_origin(vpath, rest, path).await?,
        None => {
            let file = open(&state.files, content, rest).await?;
            state.integrity.prepare(content, rest, file, path).await?
        }
    };
    let name = rest.last().map(String::as_str).unwrap_or("");
    let response = match target.query {
        Query::Manifest | Query::Metalink => {
            // The configured public name, never the client's Host header.
            let url = format!("{}{path}", state.public_url(config));
            documents::about_file(target.query, &prepared, name, &url, head)
        }
        Query::Signature | Query::None => {
            let answer = decide(
                &method,
                req.headers(),
                &prepared.validators,
                prepared.manifest.size,
            )?;
            respond::render(answer, prepared, name, head, &state.budget).await?
        }
    };
    // The body remembers what authorized it, so a config change can cut it.
    let authority = Authority::new(vpath, &target.segments, identity);
    let mut transfer = state.track(authority, conn.close.clone())?;
    if let Some(version) = served.hold {
        transfer.hold(version);
    }
    Ok(response.map(|body| Cuttable::new(body, transfer)))
}

/// Where a request goes.
enum Route<'c> {
    /// The metrics page (`[metrics] url`, matched exactly).
    Metrics(&'c MetricsSettings),
    /// A file or document under a virtual path.
    Content(Target, &'c Arc<Vpath>),
}

impl<'c> Route<'c> {
    /// The metrics URL first (exactly as sent: it never reaches the file
    /// system), then the longest vpath prefix of the decoded path.
    fn of(config: &'c Config, uri: &http::Uri) -> Result<Route<'c>, RequestError> {
        if let Some(m) = config.metrics.as_ref().filter(|m| m.url == uri.path()) {
            return Ok(Route::Metrics(m));
        }
        let target = Target::of(uri)?;
        let (vpath, _) = config
            .vpaths
            .route(&target.segments)
            .ok_or(RequestError::NoRoute)?;
        Ok(Route::Content(target, vpath))
    }

    /// The configured URL routed to (the metrics' path label).
    fn url(&self) -> &str {
        match self {
            Route::Metrics(m) => &m.url,
            Route::Content(_, vpath) => &vpath.url,
        }
    }

    /// Whether it is anonymous, and who may read it otherwise.
    fn access(&self) -> (bool, &[PrincipalRef]) {
        match self {
            Route::Metrics(m) => (m.anonymous, &m.allow),
            Route::Content(_, vpath) => (vpath.anonymous, &vpath.allow),
        }
    }
}

/// What the request URI names: decoded path segments and the query.
struct Target {
    segments: Vec<String>,
    query: Query,
    /// `URL/?manifest` or `URL/?signature`: the published path itself.
    package: bool,
}

impl Target {
    /// The segments below `vpath` (which it was routed to).
    fn below(&self, vpath: &Vpath) -> &[String] {
        &self.segments[vpath.segments.len()..]
    }

    fn of(uri: &http::Uri) -> Result<Target, RequestError> {
        let query = Query::of(uri.query());
        let raw = uri.path();
        // `URL/?manifest` and `URL/?signature` name a published path itself; the
        // decoder refuses a trailing '/', so it is taken off here, for these only.
        let package = matches!(query, Query::Manifest | Query::Signature) && raw.ends_with('/');
        let path = match raw.strip_suffix('/') {
            Some(p) if package && !p.is_empty() => p,
            _ => raw,
        };
        Ok(Target {
            segments: decode_path(path)?,
            query,
            package,
        })
    }
}

fn allowed_method(method: &Method) -> Result<Method, RequestError> {
    match *method {
        Method::GET | Method::HEAD => Ok(method.clone()),
        _ => Err(RequestError::MethodNotAllowed),
    }
}

/// Split the URL path into decoded segments; nothing unsafe survives this.
/// Exactly one leading `/`: `//pub/x` is not a second spelling of `/pub/x`.
fn decode_path(path: &str) -> Result<Vec<String>, RequestError> {
    if !path.starts_with('/') {
        return Err(RequestError::NoRoute);
    }
    if path == "/" {
        return Ok(Vec::new());
    }
    resolve::decode_segments(path).map_err(RequestError::BadPath)
}

/// Headers that must appear at most once: two `Authorization`s could be
/// judged differently by a proxy and by us, two `Range`s or `Host`s make the
/// request ambiguous.
fn single_headers<B>(req: &Request<B>) -> Result<(), RequestError> {
    for name in [header::AUTHORIZATION, header::RANGE, header::HOST] {
        if req.headers().get_all(&name).iter().nth(1).is_some() {
            return Err(RequestError::BadRequest(name));
        }
    }
    Ok(())
}

/// Anonymous only where the path says so; otherwise the principal must be allowed.
fn authorize(
    config: &Config,
    (anonymous, allow): (bool, &[PrincipalRef]),
    identity: &Identity,
) -> Result<(), RequestError> {
    if anonymous {
        return Ok(());
    }
    if identity.is_anonymous() {
        return Err(RequestError::NoCredentials);
    }
    if config.directory.is_allowed(identity, allow) {
        Ok(())
    } else {
        Err(RequestError::NotAllowed)
    }
}

/// Open the file beneath the path's folder: a file opened before is reused
/// after one `stat` shows the path still names it; anything else is
/// resolved with every rule, off the async threads.
async fn open(
    files: &Arc<OpenFiles>,
    vpath: &Vpath,
    rest: &[String],
) -> Result<ResolvedFile, RequestError> {
    if rest.is_empty() {
        // The path's own folder: there are no listings.
        return Err(RequestError::NotFound(resolve::ResolveError::NotRegular));
    }
    if let Some(hit) = files.revalidate(&vpath.dir, rest) {
        return Ok(hit);
    }
    let (files, dir, rest) = (files.clone(), vpath.dir.clone(), rest.to_vec());
    tokio::task::spawn_blocking(move || files.open(&dir, &rest))
        .await?
        .map_err(RequestError::NotFound)
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
