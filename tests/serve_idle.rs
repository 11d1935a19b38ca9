//! Idle means no request and no response bytes: HTTP/2 housekeeping (PINGs
//! and their answers) does not keep a connection open, and a download
//! stalled at a zero window is idle too.

mod support;

use bytes::Bytes;
use distpoint::transfer::Protocol;
use http_body_util::Empty;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use rustls::pki_types::ServerName;
use std::time::{Duration, Instant};
use support::*;

/// An HTTP/2 connection made with hyper's own client, tuned by `tune`.
async fn h2(
    server: &Server,
    site: &Site,
    tune: impl FnOnce(&mut hyper::client::conn::http2::Builder<TokioExecutor>),
) -> hyper::client::conn::http2::SendRequest<Empty<Bytes>> {
    let tcp = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let tls = tokio_rustls::TlsConnector::from(site.tls(false, &[Protocol::Http2]))
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap();
    let mut b = hyper::client::conn::http2::Builder::new(TokioExecutor::new());
    b.timer(TokioTimer::new());
    tune(&mut b);
    let (sender, conn) = b.handshake(TokioIo::new(tls)).await.unwrap();
    tokio::spawn(conn);
    sender
}

/// `GET path` on `sender`'s connection, once it is ready.
async fn get(
    sender: &mut hyper::client::conn::http2::SendRequest<Empty<Bytes>>,
    server: &Server,
    path: &str,
) -> hyper::Response<hyper::body::Incoming> {
    sender.ready().await.unwrap();
    let req = http::Request::get(server.url(path))
        .body(Empty::new())
        .unwrap();
    sender.send_request(req).await.unwrap()
}

/// Wait until the server closes `sender`'s connection; how long it took.
async fn closed_within(
    sender: &hyper::client::conn::http2::SendRequest<Empty<Bytes>>,
    limit: Duration,
) -> Duration {
    let start = Instant::now();
    while !sender.is_closed() {
        assert!(start.elapsed() < limit, "still open after {limit:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    start.elapsed()
}

fn site_with(idle: u64) -> (Site, Server) {
    let site = Site::new();
    site.file("content/pub/small.txt", b"small\n");
    site.file("content/pub/big.bin", &data(8 << 20, 3));
    let server = site.start(&format!(
        "{}[[vpath]]\nurl = \"/pub\"\ndir = \"content/pub\"\nanonymous = true\n",
        site.head().replacen(
            "[server]\n",
            &format!("[server]\nidle_timeout_secs = {idle}\n"),
            1
        )
    ));
    (site, server)
}

#[tokio::test]
async fn a_connection_that_only_answers_and_sends_pings_is_closed_when_idle() {
    let (site, server) = site_with(1);
    // PINGs every 100 ms: ten times within the idle timeout.
    let mut sender = h2(&server, &site, |b| {
        b.keep_alive_interval(Duration::from_millis(100))
            .keep_alive_timeout(Duration::from_secs(5))
            .keep_alive_while_idle(true);
    })
    .await;
    let resp = get(&mut sender, &server, "/pub/small.txt").await;
    assert_eq!(read(resp).await.status, 200);
    let took = closed_within(&sender, Duration::from_secs(10)).await;
    assert!(took >= Duration::from_millis(800), "closed early: {took:?}");
    eprintln!("PING-only connection closed {took:?} after its last response");
}

#[tokio::test]
async fn a_download_stalled_at_a_zero_window_is_idle_too() {
    let (site, server) = site_with(1);
    // The client never opens its stream window: no DATA can be sent.
    let mut sender = h2(&server, &site, |b| {
        b.initial_stream_window_size(0)
            .keep_alive_interval(Duration::from_millis(100))
            .keep_alive_while_idle(true);
    })
    .await;
    let resp = get(&mut sender, &server, "/pub/big.bin").await;
    assert_eq!(resp.status(), 200);
    let took = closed_within(&sender, Duration::from_secs(10)).await;
    assert!(took >= Duration::from_millis(800), "closed early: {took:?}");
    drop(resp);
}

#[tokio::test]
async fn a_slow_but_moving_download_is_not_idle() {
    let (site, server) = site_with(1);
    let mut sender = h2(&server, &site, |_| {}).await;
    let resp = get(&mut sender, &server, "/pub/big.bin").await;
    assert_eq!(resp.status(), 200);
    // Read a frame every 100 ms: for 2.5 s, past the 1 s idle timeout.
    use http_body_util::BodyExt;
    let mut body = resp.into_body();
    let start = Instant::now();
    while start.elapsed() < Duration::from_millis(2500) {
        let frame = body.frame().await.expect("open").expect("not cut");
        assert!(frame.is_data() || frame.is_trailers());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(!sender.is_closed());
}
