//! TLS only: plaintext gets no content, old protocol versions are refused.

mod support;

use distpoint::transfer::Protocol;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;
use support::*;

fn site(extra_tls: &str) -> (Site, Server) {
    let site = Site::new();
    site.file("content/pub/hello.txt", b"hello world\n");
    let body = format!(
        "{}{extra_tls}[[vpath]]\nurl = \"/pub\"\ndir = \"content/pub\"\nanonymous = true\n",
        site.head()
    );
    let server = site.start(&body);
    (site, server)
}

fn raw_exchange(server: &Server, bytes: &[u8]) -> Vec<u8> {
    let mut s = TcpStream::connect(server.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(bytes).unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    out
}

#[test]
fn plaintext_http_on_the_port_gets_no_content() {
    let (_site, server) = site("");
    let out = raw_exchange(
        &server,
        b"GET /pub/hello.txt HTTP/1.1\r\nHost: localhost\r\n\r\n",
    );
    assert!(!out.starts_with(b"HTTP/"), "no HTTP response: {out:?}");
    assert!(!out.windows(5).any(|w| w == b"hello"));
    // At most a TLS alert record (content type 21).
    assert!(out.is_empty() || out[0] == 21, "{out:?}");
}

/// A TLS 1.1 ClientHello with no supported_versions extension.
fn tls11_client_hello() -> Vec<u8> {
    let mut body = vec![0x03, 0x02];
    body.extend_from_slice(&[0x42; 32]);
    body.push(0); // session id
    body.extend_from_slice(&[0x00, 0x04, 0xc0, 0x13, 0x00, 0x2f]); // ECDHE-RSA-AES128-SHA, AES128-SHA
    body.extend_from_slice(&[0x01, 0x00]); // null compression
    let mut hs = vec![0x01, 0, (body.len() >> 8) as u8, body.len() as u8];
    hs.extend_from_slice(&body);
    let mut rec = vec![0x16, 0x03, 0x01, (hs.len() >> 8) as u8, hs.len() as u8];
    rec.extend_from_slice(&hs);
    rec
}

#[test]
fn tls_1_1_is_refused() {
    let (_site, server) = site("");
    let out = raw_exchange(&server, &tls11_client_hello());
    // Either silence or a fatal alert; never a ServerHello (handshake record, type 22).
    assert!(out.is_empty() || out[0] == 21, "{out:?}");
    if out.len() >= 7 {
        assert_eq!(out[5], 2, "fatal alert");
        // rustls answers protocol_version (70) or handshake_failure (40).
        assert!([40, 70].contains(&out[6]), "alert {}", out[6]);
    }
}

#[test]
fn curl_with_tls_1_1_max_fails() {
    let (site, server) = site("");
    let ca = site.path("certs/ca.crt");
    let (code, out, _) = curl(&[
        "-sS",
        "--tlsv1.0",
        "--tls-max",
        "1.1",
        "--cacert",
        ca.to_str().unwrap(),
        &server.url("/pub/hello.txt"),
    ]);
    assert_ne!(code, 0);
    assert!(out.is_empty());
}

#[tokio::test]
async fn min_version_1_3_refuses_a_tls_1_2_client() {
    let (site, server) = site("min_version = \"1.3\"\n");
    let mut roots = rustls::RootCertStore::empty();
    for c in site.pki.ca_der() {
        roots.add(c).unwrap();
    }
    let tls12 = rustls::ClientConfig::builder_with_provider(distpoint::tls::provider())
        .with_protocol_versions(&[&rustls::version::TLS12])
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    assert!(distpoint::transfer::Conn::connect(
        server.addr,
        "localhost",
        std::sync::Arc::new(tls12)
    )
    .await
    .is_err());
    // TLS 1.3 works.
    let got = fetch(
        &server,
        site.tls(false, &[Protocol::Http1]),
        req("GET", &server.url("/pub/hello.txt")),
    )
    .await;
    assert_eq!(got.status, 200);
}

#[tokio::test]
async fn alpn_selects_http2_or_http1() {
    let (site, server) = site("");
    for (offer, want) in [
        (Protocol::Http2, Protocol::Http2),
        (Protocol::Http1, Protocol::Http1),
    ] {
        let c =
            distpoint::transfer::Conn::connect(server.addr, "localhost", site.tls(false, &[offer]))
                .await
                .unwrap();
        assert_eq!(c.protocol, want);
    }
    let ca = site.path("certs/ca.crt");
    let (code, out, err) = curl(&[
        "-sS",
        "--http2",
        "-w",
        "%{http_version}",
        "-o",
        "/dev/null",
        "--cacert",
        ca.to_str().unwrap(),
        &server.url("/pub/hello.txt"),
    ]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, b"2");
}
