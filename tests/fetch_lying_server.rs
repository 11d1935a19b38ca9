//! The client's own check, against a server that lies: an in-test TLS
//! server serves a good manifest but a tampered chunk k (or changes the
//! file under a running download). distpoint's server never does that, so
//! this is the only way to see the client catch a bad chunk itself.

mod support;

use bytes::Bytes;
use distpoint::integrity::{hex, FileManifest};
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use support::*;

const CHUNK: usize = 8192;
const CHUNKS: usize = 64;

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// What the lying server serves: a manifest of `good`, content from `served`.
struct Lie {
    manifest: String,
    served: Vec<u8>,
    etag: String,
    /// After this many content requests, switch to `later` with another ETag.
    switch_after: Option<(u64, Vec<u8>, String)>,
    requests: AtomicU64,
    bytes_sent: AtomicU64,
    /// Answer this many content requests with `503` + `Retry-After: 0` first.
    unavailable_first: u64,
    /// After this many content requests, answer every one as a quarantined
    /// file: `503` with the notice text, and this `Distpoint-Integrity`
    /// value if any (a server that predates the header sends none).
    quarantine_after: Option<(u64, Option<&'static str>)>,
}

fn respond(lie: &Lie, req: &Request<Incoming>) -> Response<Full<Bytes>> {
    if req.uri().query() == Some("manifest") {
        let manifest = match &lie.switch_after {
            Some((after, later, _)) if lie.requests.load(Ordering::SeqCst) >= *after => {
                FileManifest::compute(&later[..], CHUNK as u64)
                    .unwrap()
                    .to_json()
            }
            _ => lie.manifest.clone(),
        };
        return Response::new(Full::new(Bytes::from(manifest)));
    }
    let n = lie.requests.fetch_add(1, Ordering::SeqCst);
    if n < lie.unavailable_first {
        return Response::builder()
            .status(StatusCode::SERVICE_UNAVAILABLE)
            .header("retry-after", "0")
            .body(Full::new(Bytes::from_static(b"busy\n")))
            .unwrap();
    }
    if let Some((after, header)) = lie.quarantine_after {
        if n >= after {
            let mut b = Response::builder().status(StatusCode::SERVICE_UNAVAILABLE);
            if let Some(v) = header {
                b = b.header("distpoint-integrity", v);
            }
            let text = "503 Service Unavailable: this file failed its integrity check and is quarantined\n";
            return b
                .body(Full::new(Bytes::from_static(text.as_bytes())))
                .unwrap();
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
    match range {
        Some((a, b)) if if_range.map_or(true, |t| t == etag) => {
            lie.bytes_sent
                .fetch_add((b + 1 - a) as u64, Ordering::SeqCst);
            Response::builder()
                .status(StatusCode::PARTIAL_CONTENT)
                .header("etag", etag.as_str())
                .header("content-range", format!("bytes {a}-{b}/{}", body.len()))
                .body(Full::new(Bytes::copy_from_slice(&body[a..=b])))
                .unwrap()
        }
        _ => {
            lie.bytes_sent
                .fetch_add(body.len() as u64, Ordering::SeqCst);
            Response::builder()
                .header("etag", etag.as_str())
                .body(Full::new(Bytes::from(body.clone())))
                .unwrap()
        }
    }
}

/// Serve `lie` over TLS (h2 and HTTP/1.1) on an ephemeral port, on a thread.
fn serve(site: &Site, lie: Arc<Lie>) -> String {
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
                    let service = hyper::service::service_fn(move |req| {
                        let r = respond(&lie, &req);
                        async move { Ok::<_, std::convert::Infallible>(r) }
                    });
                    let _ = hyper_util::server::conn::auto::Builder::new(
                        hyper_util::rt::TokioExecutor::new(),
                    )
                    .serve_connection(hyper_util::rt::TokioIo::new(tls), service)
                    .await;
                });
            }
        });
    });
    format!("https://localhost:{}/f.bin", addr.port())
}

fn lie(good: &[u8], served: Vec<u8>) -> Lie {
    Lie {
        manifest: FileManifest::compute(good, CHUNK as u64).unwrap().to_json(),
        served,
        etag: "\"v1\"".into(),
        switch_after: None,
        requests: AtomicU64::new(0),
        bytes_sent: AtomicU64::new(0),
        unavailable_first: 0,
        quarantine_after: None,
    }
}

fn fetch(site: &Site, url: &str, out: &Path, extra: &[&str]) -> (i32, serde_json::Value, String) {
    let o = Command::new(env!("CARGO_BIN_EXE_distpoint"))
        .args(["fetch", url, "-o", s(out), "--json"])
        .args(extra)
        .args(["--cacert", s(&site.path("certs/ca.crt"))])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    let v = serde_json::from_str(String::from_utf8_lossy(&o.stdout).trim()).unwrap_or_default();
    (o.status.code().unwrap_or(-1), v, err)
}

#[test]
fn the_client_catches_a_bad_chunk_itself_and_stops_within_k_plus_1_plus_n_chunks() {
    let site = Site::new();
    let good = data(CHUNK * CHUNKS, 1);
    let root = hex(&FileManifest::compute(&good[..], CHUNK as u64).unwrap().root);
    for (k, n, proto) in [
        (0usize, 1usize, "--http1"),
        (17, 4, "--http2"),
        (40, 8, "--http1"),
    ] {
        let mut bad = good.clone();
        bad[k * CHUNK + CHUNK - 1] ^= 1; // the very last byte of chunk k
        let lie = Arc::new(lie(&good, bad));
        let url = serve(&site, lie.clone());
        let out = site.path(&format!("f{k}.bin"));
        let n_s = n.to_string();
        let (code, v, err) = fetch(
            &site,
            &url,
            &out,
            &["--expect", &root, "--connections", &n_s, proto],
        );
        assert_eq!(code, 2, "{err}");
        assert_eq!(v["chunk"], k as u64, "{v}");
        assert!(err.contains(&format!("chunk {k} of {CHUNKS}")), "{err}");
        assert!(err.contains("does not match the manifest"), "{err}");
        let fetched = v["bytes_fetched"].as_u64().unwrap();
        let bound = ((k + 1 + n) * CHUNK) as u64;
        assert!(
            fetched <= bound,
            "fetched {fetched} > (k+1+N) chunks = {bound}"
        );
        assert!(!out.exists(), "nothing unverified at PATH");
        // The work file never holds the bad chunk: only verified chunks are written.
        if let Ok(part) = std::fs::read(site.path(&format!("f{k}.bin.part"))) {
            let c = &part[k * CHUNK..(k + 1) * CHUNK];
            assert!(c.iter().all(|&b| b == 0) || c == &good[k * CHUNK..(k + 1) * CHUNK]);
        }
    }
}

#[test]
fn a_file_that_changes_mid_download_restarts_from_the_manifest() {
    let site = Site::new();
    let v1 = data(CHUNK * CHUNKS, 2);
    let v2 = data(CHUNK * CHUNKS - 300, 3);
    let changing = || {
        // After 10 content requests the file is a new version with another
        // ETag (and manifest): If-Range makes the server answer 200.
        let mut l = lie(&v1, v1.clone());
        l.switch_after = Some((10, v2.clone(), "\"v2\"".into()));
        Arc::new(l)
    };
    let out = site.path("f.bin");
    let (code, v, err) = fetch(
        &site,
        &serve(&site, changing()),
        &out,
        &["--connections", "2"],
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        std::fs::read(&out).unwrap(),
        v2,
        "the new version whole, no mix"
    );
    assert_eq!(v["restarts"], 1, "{v}");
    assert_eq!(v["chunks_resumed"], 0, "{v}");

    // Pinned to the old version: the new manifest fails --expect.
    let root1 = hex(&FileManifest::compute(&v1[..], CHUNK as u64).unwrap().root);
    let out = site.path("g.bin");
    let (code, _, err) = fetch(
        &site,
        &serve(&site, changing()),
        &out,
        &["--expect", &root1],
    );
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("does not match --expect"), "{err}");
    assert!(!out.exists());
}

#[test]
fn transient_errors_are_retried_with_bounded_backoff() {
    let site = Site::new();
    let good = data(CHUNK * 8, 4);
    // A few 503s: retried, and the download completes.
    let mut l = lie(&good, good.clone());
    l.unavailable_first = 3;
    let out = site.path("a.bin");
    let (code, v, err) = fetch(
        &site,
        &serve(&site, Arc::new(l)),
        &out,
        &["--connections", "1"],
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(std::fs::read(&out).unwrap(), good);
    assert_eq!(v["chunks_fetched"], 8, "{v}");

    // A server that never recovers: bounded retries, then exit 3 and a clear line.
    let mut l = lie(&good, good.clone());
    l.unavailable_first = u64::MAX;
    let out = site.path("b.bin");
    let t = std::time::Instant::now();
    let (code, _, err) = fetch(
        &site,
        &serve(&site, Arc::new(l)),
        &out,
        &["--connections", "2"],
    );
    assert_eq!(code, 3, "{err}");
    assert!(
        err.contains("HTTP 503") && err.contains("gave up after 6 attempts"),
        "{err}"
    );
    assert!(t.elapsed() < std::time::Duration::from_secs(30));
    assert!(!out.exists());
}

#[test]
fn a_quarantine_503_names_the_chunk_in_its_header_or_falls_back_to_the_body_text() {
    let site = Site::new();
    let good = data(CHUNK * CHUNKS, 5);
    let root = hex(&FileManifest::compute(&good[..], CHUNK as u64).unwrap().root);
    // After 6 chunks every request is refused. With the header, the chunk
    // named is the server's, however far it is from the chunks in flight;
    // without it (or with an index outside the file) the client falls back
    // to the lowest chunk refused, 6 with one connection.
    for (i, header, named) in [
        (0, Some("quarantined; chunk=30"), 30u64),
        (1, Some("quarantined"), 6),
        (2, Some("quarantined; chunk=4000"), 6),
        (3, None, 6),
    ] {
        let mut l = lie(&good, good.clone());
        l.quarantine_after = Some((6, header));
        let out = site.path(&format!("q{i}.bin"));
        let (code, v, err) = fetch(
            &site,
            &serve(&site, Arc::new(l)),
            &out,
            &["--expect", &root, "--connections", "1", "--http1"],
        );
        assert_eq!(code, 2, "{header:?}: {err}");
        assert_eq!(v["chunk"], named, "{header:?}: {v}");
        assert!(err.contains(&format!("chunk {named} of {CHUNKS}")), "{err}");
        assert!(err.contains("quarantined"), "{err}");
        assert!(!out.exists());
    }
}
