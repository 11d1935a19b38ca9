//! Issue 12, item 5: the low-severity findings, one test each.
//!
//! - a leading `//` is not a second spelling of a URL (`404`);
//! - a symlink inside `dir` to a dotfile does not serve the dotfile;
//! - repeated `Authorization`, `Range` or `Host` headers are `400`;
//! - `max_connections` holds exactly, whatever the number of listeners;
//! - `check-config` warns about risky layouts.

mod attack;
mod support;

use std::process::Command;
use std::time::Duration;

use attack::*;
use distpoint::transfer::Protocol;
use support::*;

fn status_line(bytes: &[u8]) -> u16 {
    let text = String::from_utf8_lossy(bytes);
    text.strip_prefix("HTTP/1.1 ")
        .and_then(|t| t.get(..3))
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {text:?}"))
}

async fn raw_h1(site: &Site, server: &Server, request: &str) -> u16 {
    let mut s = tls_stream(site, server.addr, Protocol::Http1).await;
    send(&mut s, request.as_bytes()).await;
    let (bytes, _) = read_until_closed(&mut s, Duration::from_secs(3)).await;
    status_line(&bytes)
}

#[tokio::test]
async fn a_leading_double_slash_is_not_found() {
    let (site, server) = start("");
    for proto in [Protocol::Http1, Protocol::Http2] {
        let tls = site.tls(false, &[proto]);
        let plain = fetch(
            &server,
            tls.clone(),
            req("GET", &server.url("/pub/small.txt")),
        )
        .await;
        assert_eq!(plain.status, 200);
        let double = fetch(&server, tls, req("GET", &server.url("//pub/small.txt"))).await;
        assert_eq!(
            double.status, 404,
            "{proto:?}: //pub/small.txt is a second spelling"
        );
    }
}

#[tokio::test]
async fn a_symlink_to_a_dotfile_is_not_served() {
    let site = Site::new();
    site.file("content/pub/.env", b"SECRET=1\n");
    std::os::unix::fs::symlink(".env", site.path("content/pub/env.txt")).unwrap();
    let server = site.start(&format!(
        "{}[[vpath]]\nurl = \"/pub\"\ndir = \"content/pub\"\nanonymous = true\n",
        site.head()
    ));
    let got = fetch(
        &server,
        site.tls(false, &[Protocol::Http2]),
        req("GET", &server.url("/pub/env.txt")),
    )
    .await;
    assert_eq!(
        got.status,
        404,
        "the dotfile was served through a symlink: {:?}",
        String::from_utf8_lossy(&got.body)
    );
}

#[tokio::test]
async fn repeated_singleton_headers_are_bad_requests() {
    let (site, server) = start("");
    let cases = [
        (
            "Authorization",
            format!(
                "GET /private/secret.txt HTTP/1.1\r\nHost: localhost\r\nAuthorization: {}\r\nAuthorization: {}\r\nConnection: close\r\n\r\n",
                basic("alice", PASSWORD),
                basic("mallory", "x")
            ),
        ),
        (
            "Range",
            "GET /pub/big.bin HTTP/1.1\r\nHost: localhost\r\nRange: bytes=0-9\r\nRange: bytes=100-\r\nConnection: close\r\n\r\n".to_string(),
        ),
        (
            "Host",
            "GET /pub/small.txt HTTP/1.1\r\nHost: localhost\r\nHost: evil.example\r\nConnection: close\r\n\r\n".to_string(),
        ),
    ];
    let mut wrong = Vec::new();
    for (name, request) in cases {
        let status = raw_h1(&site, &server, &request).await;
        println!("repeated {name}: {status}");
        if status != 400 {
            wrong.push(format!("repeated {name} got {status}"));
        }
    }
    assert!(wrong.is_empty(), "{wrong:?}");
}

#[tokio::test]
async fn max_connections_is_exact_with_two_listeners() {
    let site = Site::new();
    site.file("content/pub/small.txt", b"small\n");
    let head = site.head().replace(
        "listen = [\"127.0.0.1:0\"]\n",
        "listen = [\"127.0.0.1:0\", \"[::1]:0\"]\nmax_connections = 3\nhandshake_timeout_secs = 5\n",
    );
    let server = site.start(&format!(
        "{head}[[vpath]]\nurl = \"/pub\"\ndir = \"content/pub\"\nanonymous = true\n"
    ));
    let tls = site.tls(false, &[Protocol::Http1]);
    let mut open = Vec::new();
    for i in 0..3 {
        let c = tokio::time::timeout(
            Duration::from_secs(3),
            distpoint::transfer::Conn::connect(server.addr, "localhost", tls.clone()),
        )
        .await;
        match c {
            Ok(Ok(c)) => open.push(c),
            _ => panic!(
                "connection {} of max_connections = 3 was not accepted (2 listeners)",
                i + 1
            ),
        }
    }
    // And the fourth waits.
    let fourth = tokio::time::timeout(
        Duration::from_secs(1),
        distpoint::transfer::Conn::connect(server.addr, "localhost", tls),
    )
    .await;
    assert!(fourth.is_err(), "a fourth connection was accepted");
}

#[test]
fn check_config_warns_about_risky_layouts() {
    let site = Site::new();
    std::fs::create_dir_all(site.path("content/pub/private")).unwrap();
    let cases = [
        (
            "protected dir inside an anonymous one",
            "[[vpath]]\nurl = \"/pub\"\ndir = \"content/pub\"\nanonymous = true\n\
             [[vpath]]\nurl = \"/private\"\ndir = \"content/pub/private\"\nallow = [\"user:alice\"]\n",
        ),
        ("dir = \"/\"", "[[vpath]]\nurl = \"/all\"\ndir = \"/\"\nallow = [\"user:alice\"]\n"),
        (
            "anonymous = true beside an allow list",
            "[[vpath]]\nurl = \"/pub\"\ndir = \"content/pub\"\nanonymous = true\nallow = [\"user:alice\"]\n",
        ),
    ];
    let mut silent = Vec::new();
    for (name, vpaths) in cases {
        let config = site.config(&format!("{}{}{vpaths}", site.head(), site.user("alice")));
        let out = Command::new(env!("CARGO_BIN_EXE_distpoint"))
            .args(["check-config", "--config"])
            .arg(&config)
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        println!("{name}: exit {:?}\n{text}", out.status.code());
        if !text.to_lowercase().contains("warning") {
            silent.push(name);
        }
    }
    assert!(
        silent.is_empty(),
        "check-config gave no warning for: {silent:?}"
    );
}
