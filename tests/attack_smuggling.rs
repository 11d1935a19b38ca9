//! Request smuggling over HTTP/1.1: ambiguous framing must never let a
//! second request hide in the first one's body.
//!
//! Each attempt sends one request with ambiguous framing (Content-Length
//! and Transfer-Encoding together, two different Content-Lengths, an
//! obfuscated Transfer-Encoding, an obs-folded header) whose body, read the
//! other way, is a complete second request for a protected file. The
//! server must answer at most one request on that connection before it
//! closes, never the smuggled one (`/private/secret.txt` would be `401`),
//! and refuse the ambiguous one with `400` (or answer it as the single
//! request it is and close).

mod attack;
mod support;

use std::sync::Arc;
use std::time::Duration;

use attack::*;
use distpoint::transfer::Protocol;

/// The hidden request: a GET for a protected file (401 if ever answered).
const SMUGGLED: &str = "GET /private/secret.txt HTTP/1.1\r\nHost: localhost\r\n\r\n";

fn attempts() -> Vec<(&'static str, String)> {
    let n = SMUGGLED.len();
    vec![
        (
            "CL.TE",
            format!("POST /pub/small.txt HTTP/1.1\r\nHost: localhost\r\nContent-Length: {}\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n{SMUGGLED}", 5 + n),
        ),
        (
            "TE.CL",
            format!("POST /pub/small.txt HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n{:x}\r\n{SMUGGLED}\r\n0\r\n\r\n", n),
        ),
        (
            "double Content-Length",
            format!("GET /pub/small.txt HTTP/1.1\r\nHost: localhost\r\nContent-Length: 0\r\nContent-Length: {n}\r\n\r\n{SMUGGLED}"),
        ),
        (
            "Content-Length list",
            format!("GET /pub/small.txt HTTP/1.1\r\nHost: localhost\r\nContent-Length: 0, {n}\r\n\r\n{SMUGGLED}"),
        ),
        (
            "obfuscated TE (space before colon)",
            format!("POST /pub/small.txt HTTP/1.1\r\nHost: localhost\r\nContent-Length: {n}\r\nTransfer-Encoding : chunked\r\n\r\n{SMUGGLED}"),
        ),
        (
            "obfuscated TE (xchunked)",
            format!("POST /pub/small.txt HTTP/1.1\r\nHost: localhost\r\nContent-Length: {}\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n{SMUGGLED}", 5 + n),
        ),
        (
            "obfuscated TE (chunked, identity)",
            format!("POST /pub/small.txt HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n{SMUGGLED}"),
        ),
        (
            "obfuscated TE (tab, case)",
            format!("POST /pub/small.txt HTTP/1.1\r\nHost: localhost\r\nContent-Length: {}\r\nTransfer-Encoding:\tCHUNKED\r\n\r\n0\r\n\r\n{SMUGGLED}", 5 + n),
        ),
        (
            "obs-fold Transfer-Encoding",
            format!("POST /pub/small.txt HTTP/1.1\r\nHost: localhost\r\nContent-Length: {}\r\nTransfer-Encoding:\r\n chunked\r\n\r\n0\r\n\r\n{SMUGGLED}", 5 + n),
        ),
        (
            "obs-fold header",
            format!("GET /pub/small.txt HTTP/1.1\r\nHost: localhost\r\nX-Folded: a\r\n b\r\n\r\n{SMUGGLED}"),
        ),
        (
            "bare LF line ends",
            format!("GET /pub/small.txt HTTP/1.1\nHost: localhost\nContent-Length: {n}\n\n{SMUGGLED}"),
        ),
    ]
}

/// Status codes of every response in `bytes` (HTTP/1.1 status lines at the
/// start of a response; bodies here are short text, never containing one).
fn statuses(bytes: &[u8]) -> Vec<u16> {
    let text = String::from_utf8_lossy(bytes);
    text.match_indices("HTTP/1.1 ")
        .filter_map(|(i, _)| text[i + 9..].get(..3)?.parse().ok())
        .collect()
}

/// Send one attempt; returns the statuses of the responses before the close.
async fn attempt(site: &support::Site, addr: std::net::SocketAddr, raw: &str) -> (Vec<u16>, bool) {
    let mut s = tls_stream(site, addr, Protocol::Http1).await;
    send(&mut s, raw.as_bytes()).await;
    let (bytes, closed) = read_until_closed(&mut s, Duration::from_secs(4)).await;
    (statuses(&bytes), closed)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_smuggled_request_is_ever_answered() {
    let (site, server) = start("");
    let site = Arc::new(site);
    // The control: a plain pipelined pair is answered twice (so the counting works).
    let (codes, _) = attempt(
        &site,
        server.addr,
        &format!("GET /pub/small.txt HTTP/1.1\r\nHost: localhost\r\n\r\n{SMUGGLED}"),
    )
    .await;
    assert_eq!(codes, [200, 401], "pipelining control");
    for (name, raw) in attempts() {
        let (codes, closed) = attempt(&site, server.addr, &raw).await;
        println!("ATTACK smuggling {name}: statuses {codes:?}, connection closed: {closed}");
        assert!(
            codes.len() <= 1,
            "{name}: {codes:?} — a smuggled request was answered"
        );
        assert!(
            !codes.contains(&401),
            "{name}: the hidden request reached the server"
        );
        assert!(
            closed,
            "{name}: the connection stays open after ambiguous framing"
        );
    }
    // And the same attempts in a loop while an honest client downloads.
    let (s2, addr) = (site.clone(), server.addr);
    let answered = under_attack(
        "request smuggling",
        &site,
        &server,
        Protocol::Http1,
        Duration::from_millis(2500),
        async move {
            let end = std::time::Instant::now() + Duration::from_millis(2800);
            let (mut tries, mut smuggled) = (0usize, 0usize);
            while std::time::Instant::now() < end {
                for (_, raw) in attempts() {
                    let (codes, _) = attempt(&s2, addr, &raw).await;
                    tries += 1;
                    smuggled += usize::from(codes.len() > 1 || codes.contains(&401));
                }
            }
            (tries, smuggled)
        },
    )
    .await;
    println!(
        "ATTACK smuggling: {} attempts during the window, {} smuggled requests answered",
        answered.0, answered.1
    );
    assert_eq!(answered.1, 0);
}
