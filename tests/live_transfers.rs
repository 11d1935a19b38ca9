//! Running transfers under a changing config, and certificate rotation,
//! against the real binary.

mod support;

use bytes::Bytes;
use distpoint::transfer::{Conn, Protocol};
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::*;

/// Larger than every buffer between a stalled client and the server's disk
/// reads (socket buffers, hyper's buffers, the test client's 16 MiB HTTP/2 window).
const BIG: usize = 48 << 20;

fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}

fn anon_path(url: &str, dir: &str) -> String {
    format!("[[vpath]]\nurl = \"{url}\"\ndir = \"{dir}\"\nanonymous = true\n")
}

/// Start a download and read its first frame, then leave it unread.
async fn start(server: &Server, site: &Site, proto: Protocol, path: &str) -> (Conn, Incoming) {
    let mut conn = Conn::connect(server.addr, "localhost", site.tls(false, &[proto]))
        .await
        .unwrap();
    let resp = conn
        .send(
            req("GET", &server.url(path))
                .body(Empty::<Bytes>::new())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let mut body = resp.into_body();
    let first = body.frame().await.unwrap().unwrap();
    assert!(first.is_data());
    (conn, body)
}

/// Read the rest: (bytes received including the first frame's?, cut).
async fn drain(mut body: Incoming) -> (usize, bool) {
    let mut n = 0;
    while let Some(frame) = body.frame().await {
        match frame {
            Ok(f) => n += f.into_data().map(|d| d.len()).unwrap_or(0),
            Err(_) => return (n, true),
        }
    }
    (n, false)
}

/// The access-log record of a transfer cut because `/a` was removed.
const CUT_RECORD: &str =
    "outcome=\"cut\" detail=\"access revoked by a config change: path /a was removed";

#[tokio::test]
async fn stalled_download_on_removed_path_is_cut_and_others_go_on() {
    let site = Site::new();
    site.file("content/a/big.bin", &pattern(BIG));
    site.file("content/b/big.bin", &pattern(BIG));
    let both = format!(
        "{}{}{}",
        site.head(),
        anon_path("/a", "content/a"),
        anon_path("/b", "content/b")
    );
    let server = site.start(&both);
    let cfg = site.path("distpoint.toml");
    for proto in [Protocol::Http1, Protocol::Http2] {
        let (_ca, doomed) = start(&server, &site, proto, "/a/big.bin").await;
        let (_cb, kept) = start(&server, &site, proto, "/b/big.bin").await;
        // Both clients now stop reading; the server fills their socket
        // buffers and then waits.
        let since = Instant::now();
        while send_queues(server.addr.port())
            .iter()
            .filter(|&&q| q > 0)
            .count()
            < 2
        {
            assert!(
                since.elapsed() < Duration::from_secs(5),
                "buffers never filled"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let before = server.log_count("cut running transfer");
        let cut_records = server.log_count(CUT_RECORD);
        let written = Instant::now();
        std::fs::write(
            &cfg,
            format!("{}{}", site.head(), anon_path("/b", "content/b")),
        )
        .unwrap();
        let deadline = written + Duration::from_secs(2);
        while server.log().matches("cut running transfer").count() == before {
            assert!(
                Instant::now() < deadline,
                "no cut within 2 s: {}",
                server.log()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        eprintln!(
            "{proto:?}: cut logged {:?} after the write",
            written.elapsed()
        );
        // The server is done with the doomed transfer when its access-log
        // record says so: it noticed the cut, or closed the connection of a
        // client that is not reading after the grace.
        assert!(
            server.wait_log_count(CUT_RECORD, cut_records + 1, Duration::from_secs(2)),
            "{proto:?}: the cut transfer did not end: {}",
            server.log()
        );
        let (got, cut) = drain(doomed).await;
        assert!(cut, "{proto:?}: the removed path's transfer must be cut");
        assert!(got < BIG, "{proto:?}: cut short, got {got} bytes");
        eprintln!(
            "{proto:?}: cut transfer delivered {} of {BIG} bytes; total {:?}",
            got,
            written.elapsed()
        );
        let (got, cut) = drain(kept).await;
        assert!(!cut, "{proto:?}: the kept path's transfer goes on");
        assert!(
            got > 0 && got < BIG,
            "{proto:?}: rest of the kept transfer: {got}"
        );
        // Logged once the re-added path is in force.
        let added = server.log_count("path added: /a");
        std::fs::write(&cfg, &both).unwrap();
        assert!(server.wait_log_count("path added: /a", added + 1, Duration::from_secs(2)));
    }
    assert!(server.log().contains("path /a was removed"));
}

/// The leaf certificate the server presents on a new handshake.
async fn server_cert(server: &Server, tls: Arc<rustls::ClientConfig>) -> Vec<u8> {
    let tcp = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let name = ServerName::try_from("localhost").unwrap();
    let stream = tokio_rustls::TlsConnector::from(tls)
        .connect(name, tcp)
        .await
        .unwrap();
    stream.get_ref().1.peer_certificates().unwrap()[0]
        .as_ref()
        .to_vec()
}

fn der(pem: &str) -> Vec<u8> {
    CertificateDer::from_pem_slice(pem.as_bytes())
        .unwrap()
        .as_ref()
        .to_vec()
}

#[tokio::test]
async fn certificate_rotation_is_seen_on_the_next_handshake() {
    let site = Site::new();
    site.file("content/a/f.txt", b"aaa");
    let server = site.start(&format!("{}{}", site.head(), anon_path("/a", "content/a")));
    let tls = site.tls(false, &[Protocol::Http1]);
    assert_eq!(
        server_cert(&server, tls.clone()).await,
        der(&site.pki.server.cert)
    );

    // Rotate: new key and certificate, the key written first, both in place.
    let next = site
        .pki
        .ca
        .issue_server(&["localhost", "127.0.0.1"])
        .unwrap();
    let written = Instant::now();
    std::fs::write(site.path("certs/server.key"), &next.key).unwrap();
    std::fs::write(site.path("certs/server.crt"), &next.cert).unwrap();
    loop {
        if server_cert(&server, tls.clone()).await == der(&next.cert) {
            break;
        }
        assert!(
            written.elapsed() < Duration::from_secs(2),
            "new certificate not served: {}",
            server.log()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    eprintln!(
        "new certificate served {:?} after the write",
        written.elapsed()
    );
    assert!(server.wait_log("TLS certificate reloaded", Duration::from_secs(1)));

    // A certificate whose key is not there (mismatch) keeps the old pair in force.
    let third = site.pki.ca.issue_server(&["localhost"]).unwrap();
    let tmp = site.path("certs/server.crt.new");
    std::fs::write(&tmp, &third.cert).unwrap();
    std::fs::rename(&tmp, site.path("certs/server.crt")).unwrap();
    assert!(
        server.wait_log("TLS reload failed", Duration::from_secs(2)),
        "{}",
        server.log()
    );
    assert_eq!(server_cert(&server, tls.clone()).await, der(&next.cert));
    let got = fetch(&server, tls.clone(), req("GET", &server.url("/a/f.txt"))).await;
    assert_eq!(got.status, 200);

    // A broken key file keeps it too.
    let failed = server.log_count("TLS reload failed");
    std::fs::write(site.path("certs/server.key"), "not a key").unwrap();
    assert!(
        server.wait_log_count("TLS reload failed", failed + 1, Duration::from_secs(2)),
        "{}",
        server.log()
    );
    assert_eq!(server_cert(&server, tls.clone()).await, der(&next.cert));
    assert!(
        !server.log().contains("BEGIN PRIVATE KEY"),
        "keys are never logged"
    );
}

#[tokio::test]
async fn slowly_read_download_is_cut_when_anonymous_goes_off() {
    let site = Site::new();
    site.file("content/a/big.bin", &pattern(BIG));
    let anon = format!("{}{}", site.head(), anon_path("/a", "content/a"));
    let server = site.start(&anon);
    for proto in [Protocol::Http1, Protocol::Http2] {
        let reloads = server.log_count("config reloaded");
        std::fs::write(site.path("distpoint.toml"), &anon).unwrap();
        // The first round rewrites the same text: a reload with no changes.
        assert!(server.wait_log_count("config reloaded", reloads + 1, Duration::from_secs(2)));
        let (_conn, mut body) = start(&server, &site, proto, "/a/big.bin").await;
        let before = server
            .log()
            .matches("access revoked by a config change")
            .count();
        // A slow client: one frame every 10 ms. Bytes already in the network
        // buffers still arrive after the cut, so the cut is timed at the server.
        let mut written: Option<Instant> = None;
        let mut got = 0usize;
        let cut = loop {
            match body.frame().await {
                Some(Ok(f)) => got += f.into_data().map(|d| d.len()).unwrap_or(0),
                Some(Err(_)) => break true,
                None => break false,
            }
            if written.is_some() {
                // Cut at the server: drain what the buffers still hold.
                continue;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
            if got > (1 << 20) {
                let off = anon.replace("anonymous = true", "anonymous = false");
                let tmp = site.path("distpoint.toml.new");
                std::fs::write(&tmp, off).unwrap();
                std::fs::rename(&tmp, site.path("distpoint.toml")).unwrap();
                written = Some(Instant::now());
                let revoked = || {
                    server
                        .log()
                        .matches("access revoked by a config change")
                        .count()
                };
                while revoked() == before {
                    assert!(
                        written.unwrap().elapsed() < Duration::from_secs(2),
                        "{proto:?}: no cut within 2 s: {}",
                        server.log()
                    );
                    // Keep reading slowly while waiting: the body is only
                    // polled (and cut) when the client makes room.
                    match body.frame().await {
                        Some(Ok(f)) => got += f.into_data().map(|d| d.len()).unwrap_or(0),
                        _ => break,
                    }
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                eprintln!(
                    "{proto:?}: slow download cut by the server {:?} after the write",
                    written.unwrap().elapsed()
                );
            }
        };
        assert!(written.is_some(), "the config was changed");
        assert!(cut, "{proto:?}: the anonymous transfer must be cut");
        assert!(got < BIG);
        let got = fetch(
            &server,
            site.tls(false, &[proto]),
            req("GET", &server.url("/a/big.bin")),
        )
        .await;
        assert_eq!(got.status, 401);
    }
    assert!(server.log().contains("path /a is no longer anonymous"));
}

#[tokio::test]
async fn client_ca_rotation_applies_to_new_handshakes() {
    let site = Site::new();
    site.file("content/a/f.txt", b"aaa");
    let body = format!(
        "{}[[vpath]]\nurl = \"/a\"\ndir = \"content/a\"\nallow = [\"cert:client01\", \"cert:client02\"]\n",
        site.head()
    );
    let server = site.start(&body);
    let ca2 = distpoint::devcerts::DevCa::new("second CA").unwrap();
    let client2 = ca2.issue_client("client02").unwrap();
    let tls2 = distpoint::transfer::client_config(
        &site.pki.ca_der(),
        Some(identity(&client2)),
        &[Protocol::Http1],
    )
    .unwrap();
    // Not trusted yet: the server refuses the handshake (with TLS 1.3 the
    // client learns it at its first request).
    assert!(try_get(&server, tls2.clone()).await.is_none());

    // A keep-alive connection identified by a certificate of the first CA.
    let mut old_conn = Conn::connect(server.addr, "localhost", site.tls(true, &[Protocol::Http1]))
        .await
        .unwrap();
    let resp = old_conn
        .send(
            req("GET", &server.url("/a/f.txt"))
                .body(Empty::<Bytes>::new())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(read(resp).await.status, 200);

    let written = Instant::now();
    std::fs::write(site.path("certs/ca.crt"), ca2.cert_pem()).unwrap();
    let got = loop {
        if let Some(got) = try_get(&server, tls2.clone()).await {
            break got;
        }
        assert!(
            written.elapsed() < Duration::from_secs(2),
            "new client CA not in force: {}",
            server.log()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!((got.status, got.body.as_slice()), (200, &b"aaa"[..]));
    eprintln!(
        "new client CA in force {:?} after the write",
        written.elapsed()
    );
    assert!(server.wait_log("TLS client CA reloaded", Duration::from_secs(1)));
    // The first CA is no longer trusted: its keep-alive connection is closed
    // and a new one with its certificate is refused.
    assert!(
        server.wait_log("not trusted by the new client CA", Duration::from_secs(2)),
        "{}",
        server.log()
    );
    let again = old_conn
        .send(
            req("GET", &server.url("/a/f.txt"))
                .body(Empty::<Bytes>::new())
                .unwrap(),
        )
        .await;
    assert!(again.is_err(), "the old connection is closed");
    assert!(try_get(&server, site.tls(true, &[Protocol::Http1]))
        .await
        .is_none());
}

/// GET /a/f.txt on a new connection; `None` if the connection or request fails.
async fn try_get(server: &Server, tls: Arc<rustls::ClientConfig>) -> Option<Got> {
    let mut conn = Conn::connect(server.addr, "localhost", tls).await.ok()?;
    let resp = conn
        .send(
            req("GET", &server.url("/a/f.txt"))
                .body(Empty::<Bytes>::new())
                .unwrap(),
        )
        .await
        .ok()?;
    Some(read(resp).await)
}
