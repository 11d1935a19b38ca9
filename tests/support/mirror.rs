//! A programmable source for fetch tests: an in-test TLS server (h2 and
//! HTTP/1.1) that serves a good manifest but whatever content it is told
//! to, changes its file on cue, refuses, or quarantines like distpoint —
//! and records what it was asked, so tests can check what the client did
//! after it misbehaved. distpoint's own server never sends a bad chunk,
//! so this is how the client's own checks are seen.

use super::{identity, Site};
use bytes::Bytes;
use distpoint::integrity::FileManifest;
use http::{Request, Response, StatusCode};
use http_body_util::{combinators::BoxBody, BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use std::collections::VecDeque;
use std::future::Future as _;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

/// What the lying server serves, and what it saw.
pub struct Lie {
    /// Chunk size of the manifest.
    pub chunk: usize,
    /// The manifest of the good content.
    pub manifest: String,
    /// What it serves as content.
    pub served: Vec<u8>,
    /// Its ETag.
    pub etag: String,
    /// After this many content requests, serve `later` with another ETag
    /// (and its manifest).
    pub switch_after: Option<(u64, Vec<u8>, String)>,
    /// Answer this many content requests with `503` + `Retry-After: 0` first.
    pub unavailable_first: u64,
    /// Quarantine at this chunk, as distpoint does: a response that reaches
    /// it is cut just before it, and every later request is a `503` with
    /// the notice text and this `Distpoint-Integrity` value, if any.
    pub quarantine_at: Option<(usize, Option<&'static str>)>,
    /// The tampered chunk in `served`, to record when it goes out.
    pub bad_chunk: Option<usize>,
    /// Tamper with the first chunk of this content request (0-based): its
    /// last byte is flipped in that answer only. The chunk is recorded in
    /// `bad_chunk` and the moment in `at_bad`.
    pub tamper_request: Option<u64>,
    /// The chunk `tamper_request` spoiled.
    pub tampered: Mutex<Option<usize>>,
    /// Content requests received.
    pub requests: AtomicU64,
    /// Content bytes sent.
    pub bytes_sent: AtomicU64,
    /// Connections open now.
    pub open: AtomicU64,
    /// When the bad chunk first went out: (requests received so far,
    /// connections open then).
    pub at_bad: Mutex<Option<(u64, u64)>>,
    quarantined: AtomicBool,
}

/// A server serving a manifest of `good` and the content `served`.
pub fn lie(good: &[u8], served: Vec<u8>, chunk: usize) -> Lie {
    Lie {
        chunk,
        manifest: FileManifest::compute(good, chunk as u64).unwrap().to_json(),
        served,
        etag: "\"v1\"".into(),
        switch_after: None,
        unavailable_first: 0,
        quarantine_at: None,
        bad_chunk: None,
        tamper_request: None,
        tampered: Mutex::new(None),
        requests: AtomicU64::new(0),
        bytes_sent: AtomicU64::new(0),
        open: AtomicU64::new(0),
        at_bad: Mutex::new(None),
        quarantined: AtomicBool::new(false),
    }
}

type Body = BoxBody<Bytes, std::io::Error>;

fn full(b: impl Into<Bytes>) -> Body {
    Full::new(b.into()).map_err(|never| match never {}).boxed()
}

/// Data, then (once the data has had time to go out) an error: the body
/// is cut short of its Content-Length (HTTP/1.1 closes the connection,
/// HTTP/2 resets the stream).
struct Cut {
    frames: VecDeque<Result<Frame<Bytes>, std::io::Error>>,
    pause: Pin<Box<tokio::time::Sleep>>,
}

impl futures_core::Stream for Cut {
    type Item = Result<Frame<Bytes>, std::io::Error>;
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if matches!(self.frames.front(), Some(Err(_))) && self.pause.as_mut().poll(cx).is_pending()
        {
            return Poll::Pending;
        }
        Poll::Ready(self.frames.pop_front())
    }
}

fn quarantine_notice(header: Option<&'static str>) -> Response<Body> {
    let mut b = Response::builder().status(StatusCode::SERVICE_UNAVAILABLE);
    if let Some(v) = header {
        b = b.header("distpoint-integrity", v);
    }
    let text = "503 Service Unavailable: this file failed its integrity check and is quarantined\n";
    b.body(full(text)).unwrap()
}

fn respond(lie: &Lie, req: &Request<Incoming>) -> Response<Body> {
    if req.uri().query() == Some("manifest") {
        let manifest = match &lie.switch_after {
            Some((after, later, _)) if lie.requests.load(Ordering::SeqCst) >= *after => {
                FileManifest::compute(&later[..], lie.chunk as u64)
                    .unwrap()
                    .to_json()
            }
            _ => lie.manifest.clone(),
        };
        return Response::builder()
            .header("content-type", "application/json")
            .body(full(manifest))
            .unwrap();
    }
    let n = lie.requests.fetch_add(1, Ordering::SeqCst);
    if n < lie.unavailable_first {
        return Response::builder()
            .status(StatusCode::SERVICE_UNAVAILABLE)
            .header("retry-after", "0")
            .body(full("busy\n"))
            .unwrap();
    }
    if let Some((_, header)) = lie.quarantine_at {
        if lie.quarantined.load(Ordering::SeqCst) {
            return quarantine_notice(header);
        }
    }
    let (body, etag) = match &lie.switch_after {
        Some((after, later, tag)) if n >= *after => (later, tag),
        _ => (&lie.served, &lie.etag),
    };
    let if_range = req.headers().get("if-range").and_then(|v| v.to_str().ok());
    let range = req
        .headers()
        .get("range")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("bytes="))
        .and_then(|v| v.split_once('-'))
        .map(|(a, b)| (a.parse::<usize>().unwrap(), b.parse::<usize>().unwrap()));
    let (a, b, status) = match range {
        Some((a, b)) if if_range.is_none_or(|t| t == etag) => (a, b, StatusCode::PARTIAL_CONTENT),
        _ => (0, body.len() - 1, StatusCode::OK),
    };
    if let Some(k) = lie.bad_chunk {
        if a <= k * lie.chunk && (k + 1) * lie.chunk - 1 <= b {
            let mut g = lie.at_bad.lock().unwrap();
            g.get_or_insert((n + 1, lie.open.load(Ordering::SeqCst)));
        }
    }
    let mut resp = Response::builder()
        .status(status)
        .header("etag", etag.as_str());
    if status == StatusCode::PARTIAL_CONTENT {
        resp = resp.header("content-range", format!("bytes {a}-{b}/{}", body.len()));
    }
    let resp = resp.header("content-length", b + 1 - a);
    if let Some((q, header)) = lie.quarantine_at {
        let cut_at = q * lie.chunk;
        if cut_at <= a {
            lie.quarantined.store(true, Ordering::SeqCst);
            return quarantine_notice(header);
        }
        if cut_at <= b {
            lie.quarantined.store(true, Ordering::SeqCst);
            lie.bytes_sent
                .fetch_add((cut_at - a) as u64, Ordering::SeqCst);
            let frames = VecDeque::from([
                Ok(Frame::data(Bytes::copy_from_slice(&body[a..cut_at]))),
                Err(std::io::Error::other("quarantined mid-transfer")),
            ]);
            let pause = Box::pin(tokio::time::sleep(std::time::Duration::from_millis(100)));
            return resp
                .body(StreamBody::new(Cut { frames, pause }).boxed())
                .unwrap();
        }
    }
    lie.bytes_sent
        .fetch_add((b + 1 - a) as u64, Ordering::SeqCst);
    let mut bytes = body[a..=b].to_vec();
    if lie.tamper_request == Some(n) {
        let k = a / lie.chunk;
        let last = ((k + 1) * lie.chunk).min(body.len()) - 1 - a;
        bytes[last] ^= 1;
        *lie.tampered.lock().unwrap() = Some(k);
        lie.at_bad
            .lock()
            .unwrap()
            .get_or_insert((n + 1, lie.open.load(Ordering::SeqCst)));
    }
    resp.body(full(bytes)).unwrap()
}

/// Serve `lie` over TLS (h2 and HTTP/1.1) on an ephemeral port, on a
/// thread of its own; returns the file's URL (`https://localhost:PORT/PATH`).
pub fn serve(site: &Site, lie: Arc<Lie>, path: &str) -> String {
    let (chain, key) = identity(&site.pki.server);
    let mut config = rustls::ServerConfig::builder_with_provider(distpoint::tls::provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .unwrap();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    listener.set_nonblocking(true).unwrap();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            loop {
                let (tcp, _) = listener.accept().await.unwrap();
                let (acceptor, lie) = (acceptor.clone(), lie.clone());
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    lie.open.fetch_add(1, Ordering::SeqCst);
                    let l = lie.clone();
                    let service = hyper::service::service_fn(move |req| {
                        let r = respond(&l, &req);
                        async move { Ok::<_, std::convert::Infallible>(r) }
                    });
                    let _ = hyper_util::server::conn::auto::Builder::new(
                        hyper_util::rt::TokioExecutor::new(),
                    )
                    .serve_connection(hyper_util::rt::TokioIo::new(tls), service)
                    .await;
                    lie.open.fetch_sub(1, Ordering::SeqCst);
                });
            }
        });
    });
    format!("https://localhost:{}/{path}", addr.port())
}
