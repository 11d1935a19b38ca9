//! Streaming: bounded memory for huge files, graceful shutdown, limits.

mod support;

use bytes::Bytes;
use distpoint::transfer::{Conn, Protocol};
use http_body_util::{BodyExt, Empty};
use std::time::{Duration, Instant};
use support::*;

const BIG: u64 = 1 << 30;

fn site(extra_server: &str) -> (Site, Server) {
    let site = Site::new();
    site.file("content/pub/small.txt", b"small\n");
    let f = std::fs::File::create(site.path("content/pub/sparse.bin")).unwrap();
    f.set_len(BIG).unwrap();
    let head = site
        .head()
        .replace("[tls]", &format!("{extra_server}[tls]"));
    let body =
        format!("{head}[[vpath]]\nurl = \"/pub\"\ndir = \"content/pub\"\nanonymous = true\n");
    let server = site.start(&body);
    (site, server)
}

#[tokio::test]
async fn a_1_gib_sparse_file_streams_with_flat_memory() {
    let (site, server) = site("");
    for proto in [Protocol::Http1, Protocol::Http2] {
        let mut conn = Conn::connect(server.addr, "localhost", site.tls(false, &[proto]))
            .await
            .unwrap();
        let warm = conn
            .send(
                req("GET", &server.url("/pub/small.txt"))
                    .body(Empty::<Bytes>::new())
                    .unwrap(),
            )
            .await
            .unwrap();
        read(warm).await;
        let baseline = rss_kib(server.pid());
        let resp = conn
            .send(
                req("GET", &server.url("/pub/sparse.bin"))
                    .body(Empty::<Bytes>::new())
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(resp.headers()["content-length"], BIG.to_string().as_str());
        let mut body = resp.into_body();
        let (mut n, mut peak, mut frames) = (0u64, baseline, 0u64);
        while let Some(f) = body.frame().await {
            let f = f.expect("no error mid-body");
            if let Ok(d) = f.into_data() {
                assert!(d.iter().all(|&b| b == 0));
                n += d.len() as u64;
            }
            frames += 1;
            if frames % 256 == 0 {
                peak = peak.max(rss_kib(server.pid()));
            }
        }
        assert_eq!(n, BIG, "{proto:?}");
        let grew = peak.saturating_sub(baseline);
        eprintln!(
            "{proto:?}: RSS baseline {baseline} KiB, peak {peak} KiB over a {BIG}-byte transfer"
        );
        assert!(
            grew < 48 * 1024,
            "{proto:?}: RSS grew by {grew} KiB streaming 1 GiB"
        );
    }
}

#[tokio::test]
async fn sigterm_lets_a_running_transfer_finish_and_refuses_new_connections() {
    let (site, server) = site("");
    let tls = site.tls(false, &[Protocol::Http1]);
    let mut conn = Conn::connect(server.addr, "localhost", tls.clone())
        .await
        .unwrap();
    let resp = conn
        .send(
            req("GET", &server.url("/pub/sparse.bin"))
                .header("range", "bytes=0-199999999")
                .body(Empty::<Bytes>::new())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(resp.status(), 206);
    let mut body = resp.into_body();
    // Read a little, then ask the server to stop.
    let first = body.frame().await.unwrap().unwrap().into_data().unwrap();
    let addr = server.addr;
    let pid = server.pid();
    std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    assert!(server.wait_log("shutting down: no new connections", Duration::from_secs(5)));
    assert!(
        Conn::connect(addr, "localhost", tls).await.is_err(),
        "no new connections while draining"
    );
    let mut n = first.len() as u64;
    while let Some(f) = body.frame().await {
        n += f
            .expect("the running transfer is not cut")
            .into_data()
            .map(|d| d.len() as u64)
            .unwrap_or(0);
    }
    assert_eq!(n, 200_000_000);
    let started = Instant::now();
    let status = server.terminate();
    assert!(status.success(), "{status:?}");
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[tokio::test]
async fn a_silent_client_is_dropped_after_the_handshake_timeout() {
    let (_site, server) = site("handshake_timeout_secs = 1\n");
    let mut s = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let mut buf = [0u8; 16];
    let started = Instant::now();
    let r = tokio::time::timeout(
        Duration::from_secs(5),
        tokio::io::AsyncReadExt::read(&mut s, &mut buf),
    )
    .await;
    assert!(
        matches!(r, Ok(Ok(0)) | Ok(Err(_))),
        "server closed the connection: {r:?}"
    );
    assert!(started.elapsed() >= Duration::from_millis(900));
}

#[tokio::test]
async fn oversized_request_headers_are_refused() {
    let (site, server) = site("");
    let tls = site.tls(false, &[Protocol::Http1]);
    let mut conn = Conn::connect(server.addr, "localhost", tls).await.unwrap();
    let huge = "x".repeat(64 * 1024);
    let r = conn
        .send(
            req("GET", &server.url("/pub/small.txt"))
                .header("x-big", huge)
                .body(Empty::<Bytes>::new())
                .unwrap(),
        )
        .await;
    // A 431, or the connection closed: both are refusals.
    if let Ok(resp) = r {
        assert_eq!(resp.status(), 431);
    }
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed_after_idle_timeout() {
    let (site, server) = site("idle_timeout_secs = 1\n");
    let mut conn = Conn::connect(
        server.addr,
        "localhost",
        site.tls(false, &[Protocol::Http2]),
    )
    .await
    .unwrap();
    let r = conn
        .send(
            req("GET", &server.url("/pub/small.txt"))
                .body(Empty::<Bytes>::new())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(read(r).await.status, 200);
    // Wait for the server to close it; nothing is sent meanwhile, which
    // would reset its idle clock.
    let idle = Instant::now();
    while !conn.is_closed() {
        assert!(idle.elapsed() < Duration::from_secs(10), "still open");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let waited = idle.elapsed();
    assert!(
        waited >= Duration::from_millis(900),
        "closed after {waited:?}, before the 1 s idle timeout"
    );
    let r = conn
        .send(
            req("GET", &server.url("/pub/small.txt"))
                .body(Empty::<Bytes>::new())
                .unwrap(),
        )
        .await;
    assert!(r.is_err(), "the idle connection was closed by the server");
}

#[tokio::test]
async fn connections_beyond_max_connections_wait_for_a_free_slot() {
    let (site, server) = site("max_connections = 2\n");
    let tls = site.tls(false, &[Protocol::Http1]);
    let a = Conn::connect(server.addr, "localhost", tls.clone())
        .await
        .unwrap();
    let _b = Conn::connect(server.addr, "localhost", tls.clone())
        .await
        .unwrap();
    let third = tokio::time::timeout(
        Duration::from_millis(700),
        Conn::connect(server.addr, "localhost", tls.clone()),
    )
    .await;
    assert!(
        third.is_err(),
        "the third handshake waits while two connections are open"
    );
    drop(a);
    let third = tokio::time::timeout(
        Duration::from_secs(5),
        Conn::connect(server.addr, "localhost", tls),
    )
    .await;
    assert!(matches!(third, Ok(Ok(_))), "a slot freed up");
}

#[tokio::test]
async fn max_connections_counts_connections_not_listeners() {
    let site = Site::new();
    site.file("content/pub/small.txt", b"small\n");
    // Two listeners and room for two connections, both taken on one listener.
    let head = site
        .head()
        .replace(
            "listen = [\"127.0.0.1:0\"]",
            "listen = [\"127.0.0.1:0\", \"127.0.0.2:0\"]",
        )
        .replacen("[server]\n", "[server]\nmax_connections = 2\n", 1);
    let server = site.start(&format!(
        "{head}[[vpath]]\nurl = \"/pub\"\ndir = \"content/pub\"\nanonymous = true\n"
    ));
    let addrs = server.addrs(2);
    let tls = site.tls(false, &[Protocol::Http1]);
    let deadline = Duration::from_secs(5);
    let first = tokio::time::timeout(deadline, Conn::connect(addrs[0], "localhost", tls.clone()));
    let first = first.await.expect("first served").unwrap();
    let second = tokio::time::timeout(deadline, Conn::connect(addrs[0], "localhost", tls.clone()));
    let second = second
        .await
        .expect("the second is served too: two slots")
        .unwrap();
    // A third, on the other listener, waits for a slot.
    let third = tokio::time::timeout(
        Duration::from_millis(700),
        Conn::connect(addrs[1], "localhost", tls.clone()),
    )
    .await;
    assert!(
        third.is_err(),
        "a third connection is not served while two are open"
    );
    drop((first, second));
    let third = tokio::time::timeout(deadline, Conn::connect(addrs[1], "localhost", tls)).await;
    assert!(matches!(third, Ok(Ok(_))), "a slot freed up");
}

#[tokio::test]
async fn ipv6_listeners_work() {
    let site = Site::new();
    site.file("content/pub/small.txt", b"small\n");
    let head = site.head().replace("127.0.0.1:0", "[::1]:0");
    let server = site.start(&format!(
        "{head}[[vpath]]\nurl = \"/pub\"\ndir = \"content/pub\"\nanonymous = true\n"
    ));
    assert!(server.addr.is_ipv6());
    let got = fetch(
        &server,
        site.tls(false, &[Protocol::Http2]),
        req("GET", &server.url("/pub/small.txt")),
    )
    .await;
    assert_eq!(got.body, b"small\n");
}

#[tokio::test]
async fn a_slow_request_head_is_cut_at_the_header_read_timeout() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (site, server) = site("header_read_timeout_secs = 1\n");
    let tcp = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let mut tls = tokio_rustls::TlsConnector::from(site.tls(false, &[Protocol::Http1]))
        .connect(name, tcp)
        .await
        .unwrap();
    // Slowloris: half a request head, then nothing.
    tls.write_all(b"GET /pub/small.txt HTTP/1.1\r\nHost: localhost\r\n")
        .await
        .unwrap();
    tls.flush().await.unwrap();
    let started = Instant::now();
    let mut buf = Vec::new();
    let r = tokio::time::timeout(Duration::from_secs(5), tls.read_to_end(&mut buf)).await;
    assert!(r.is_ok(), "the server closed the connection");
    assert!(started.elapsed() >= Duration::from_millis(900));
    assert!(
        !String::from_utf8_lossy(&buf).contains("small"),
        "no content was served"
    );
}
