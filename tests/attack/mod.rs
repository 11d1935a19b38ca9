//! Shared harness of the attack tests (`tests/attack_*.rs`): a server with
//! tight limits, an honest client whose throughput is measured before and
//! during an attack, raw TLS streams, hand-written HTTP/2 frames, and the
//! server's file descriptors and threads from `/proc`.
//!
//! Raw HTTP/2 is written by hand (9-byte frame heads, HPACK literals) over a
//! tokio-rustls stream rather than with the `h2` crate: `h2` is a correct
//! client and refuses to send the malformed or abusive sequences these tests
//! need (CONTINUATION without end, resets of streams it never opened, HPACK
//! references past a header list limit).
#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use distpoint::transfer::{Conn, Protocol};
use http_body_util::Empty;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

use super::support::*;

/// Size of the file the honest client downloads again and again.
pub const HONEST_BYTES: usize = 2 << 20;

/// Lowest honest share of throughput the tests accept. The target is 50 %,
/// printed beside the figure; the assertion is far looser so that it cannot
/// flake on a 2-core machine shared with builds, where the attacker's own
/// TLS work takes CPU from the server.
pub const MIN_SHARE: f64 = 0.10;

/// A site with a file for the honest client and tight limits, and its server.
pub fn start(extra_server_keys: &str) -> (Site, Server) {
    let site = Site::new();
    site.file("content/pub/big.bin", &data(HONEST_BYTES, 11));
    site.file("content/pub/small.txt", b"small\n");
    site.file("content/private/secret.txt", b"secret\n");
    let head = site.head().replace(
        "[server]\n",
        &format!(
            "[server]\nhandshake_timeout_secs = 2\nheader_read_timeout_secs = 2\nidle_timeout_secs = 5\n{extra_server_keys}"
        ),
    );
    let body = format!(
        "{head}{}[[vpath]]\nurl = \"/pub\"\ndir = \"content/pub\"\nanonymous = true\n\
         [[vpath]]\nurl = \"/private\"\ndir = \"content/private\"\nallow = [\"user:alice\"]\n",
        site.user("alice")
    );
    let server = site.start(&body);
    (site, server)
}

/// Bytes per second one honest client gets for `dur`: back-to-back GETs of
/// the big file over one connection (a new one if the server closed it).
pub async fn honest_throughput(
    site: &Site,
    server: &Server,
    proto: Protocol,
    dur: Duration,
) -> f64 {
    let tls = site.tls(false, &[proto]);
    let url = server.url("/pub/big.bin");
    let start = Instant::now();
    let mut bytes = 0usize;
    let mut conn: Option<Conn> = None;
    while start.elapsed() < dur {
        if conn.is_none() {
            conn = tokio::time::timeout(
                Duration::from_secs(5),
                Conn::connect(server.addr, "localhost", tls.clone()),
            )
            .await
            .ok()
            .and_then(Result::ok);
            if conn.is_none() {
                continue;
            }
        }
        let c = conn.as_mut().unwrap();
        let r = req("GET", &url).body(Empty::new()).unwrap();
        match tokio::time::timeout(Duration::from_secs(10), async {
            let resp = c.send(r).await.ok()?;
            Some(read(resp).await)
        })
        .await
        {
            Ok(Some(got)) if got.status == 200 && !got.cut => bytes += got.body.len(),
            _ => conn = None,
        }
    }
    bytes as f64 / start.elapsed().as_secs_f64()
}

/// Measure the honest client for `dur` alone, then again while `attack`
/// runs; print and check the share. Returns the attack's own result.
pub async fn under_attack<F, T>(
    name: &str,
    site: &Site,
    server: &Server,
    proto: Protocol,
    dur: Duration,
    attack: F,
) -> T
where
    F: std::future::Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    let before = honest_throughput(site, server, proto, dur).await;
    let task = tokio::spawn(attack);
    // Let the attack get going before measuring.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let during = honest_throughput(site, server, proto, dur).await;
    let result = task.await.expect("attack task");
    let share = during / before;
    println!(
        "ATTACK {name}: honest client ({proto:?}) {:.0} MB/s before, {:.0} MB/s during = {:.0} % of before (target >= 50 %)",
        before / 1e6,
        during / 1e6,
        share * 100.0
    );
    assert!(
        share >= MIN_SHARE,
        "{name}: honest client got {:.0} % of its throughput",
        share * 100.0
    );
    result
}

/// A TLS stream to the server with the given ALPN protocols.
pub async fn tls_stream(site: &Site, addr: SocketAddr, proto: Protocol) -> TlsStream<TcpStream> {
    let tls: Arc<rustls::ClientConfig> = site.tls(false, &[proto]);
    let tcp = TcpStream::connect(addr).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    TlsConnector::from(tls).connect(name, tcp).await.unwrap()
}

/// Read until the peer closes or `limit` passes; returns what was read and
/// whether the peer closed (EOF or reset) within the limit.
pub async fn read_until_closed<S: AsyncReadExt + Unpin>(
    s: &mut S,
    limit: Duration,
) -> (Vec<u8>, bool) {
    let mut out = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    let end = tokio::time::Instant::now() + limit;
    loop {
        match tokio::time::timeout_at(end, s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return (out, true),
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
            Err(_) => return (out, false),
        }
    }
}

/// Open file descriptors of a process.
pub fn fd_count(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count()
}

/// Threads of a process.
pub fn thread_count(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .count()
}

/// Wait until `f()` is at most `bound`, up to `limit`; returns the last value.
pub fn settle(limit: Duration, bound: usize, f: impl Fn() -> usize) -> usize {
    let end = Instant::now() + limit;
    loop {
        let v = f();
        if v <= bound || Instant::now() >= end {
            return v;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

// ---- HTTP/2 by hand (RFC 9113 §4.1, RFC 7541) ----

/// The client connection preface.
pub const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
pub const DATA: u8 = 0x0;
pub const HEADERS: u8 = 0x1;
pub const RST_STREAM: u8 = 0x3;
pub const SETTINGS: u8 = 0x4;
pub const GOAWAY: u8 = 0x7;
pub const WINDOW_UPDATE: u8 = 0x8;
pub const CONTINUATION: u8 = 0x9;
pub const END_STREAM: u8 = 0x1;
pub const END_HEADERS: u8 = 0x4;
pub const ACK: u8 = 0x1;

/// One frame: 9-byte head and payload.
pub fn frame(ty: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = payload.len() as u32;
    let mut f = vec![(len >> 16) as u8, (len >> 8) as u8, len as u8, ty, flags];
    f.extend_from_slice(&(stream & 0x7fff_ffff).to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// HPACK integer with an N-bit prefix, first byte ORed with `first`.
pub fn hpack_int(first: u8, prefix_bits: u8, mut v: usize) -> Vec<u8> {
    let max = (1usize << prefix_bits) - 1;
    if v < max {
        return vec![first | v as u8];
    }
    let mut out = vec![first | max as u8];
    v -= max;
    while v >= 128 {
        out.push((v % 128) as u8 | 0x80);
        v /= 128;
    }
    out.push(v as u8);
    out
}

fn hpack_str(s: &[u8]) -> Vec<u8> {
    let mut out = hpack_int(0, 7, s.len());
    out.extend_from_slice(s);
    out
}

/// A literal header field without indexing, new name (RFC 7541 §6.2.2).
pub fn literal(name: &str, value: &[u8]) -> Vec<u8> {
    let mut out = vec![0x00];
    out.extend(hpack_str(name.as_bytes()));
    out.extend(hpack_str(value));
    out
}

/// A literal header field with incremental indexing, new name (§6.2.1):
/// it enters the dynamic table at index 62.
pub fn literal_indexed(name: &str, value: &[u8]) -> Vec<u8> {
    let mut out = vec![0x40];
    out.extend(hpack_str(name.as_bytes()));
    out.extend(hpack_str(value));
    out
}

/// An indexed header field (§6.1).
pub fn indexed(index: usize) -> Vec<u8> {
    hpack_int(0x80, 7, index)
}

/// The header block of `GET path` over https with authority `host`.
pub fn get_block(host: &str, path: &str) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend(indexed(2)); // :method GET
    b.extend(indexed(7)); // :scheme https
    b.extend(literal(":path", path.as_bytes()));
    b.extend(literal(":authority", host.as_bytes()));
    b
}

/// Preface plus an empty SETTINGS frame, and the ACK of the server's.
pub fn client_start() -> Vec<u8> {
    let mut out = PREFACE.to_vec();
    out.extend(frame(SETTINGS, 0, 0, &[]));
    out.extend(frame(SETTINGS, ACK, 0, &[]));
    out
}

/// Frames in a byte stream from the server: (type, flags, stream, payload).
pub fn parse_frames(bytes: &[u8]) -> Vec<(u8, u8, u32, Vec<u8>)> {
    let mut out = Vec::new();
    let mut at = 0;
    while at + 9 <= bytes.len() {
        let len = (usize::from(bytes[at]) << 16)
            | (usize::from(bytes[at + 1]) << 8)
            | usize::from(bytes[at + 2]);
        if at + 9 + len > bytes.len() {
            break;
        }
        let sid = u32::from_be_bytes(bytes[at + 5..at + 9].try_into().unwrap()) & 0x7fff_ffff;
        out.push((
            bytes[at + 3],
            bytes[at + 4],
            sid,
            bytes[at + 9..at + 9 + len].to_vec(),
        ));
        at += 9 + len;
    }
    out
}

/// The error code of the first GOAWAY among `frames`.
pub fn goaway_code(frames: &[(u8, u8, u32, Vec<u8>)]) -> Option<u32> {
    frames
        .iter()
        .find(|f| f.0 == GOAWAY && f.3.len() >= 8)
        .map(|f| u32::from_be_bytes(f.3[4..8].try_into().unwrap()))
}

/// Write all of `bytes`, ignoring a peer that already closed.
pub async fn send<S: AsyncWriteExt + Unpin>(s: &mut S, bytes: &[u8]) -> bool {
    s.write_all(bytes).await.is_ok() && s.flush().await.is_ok()
}
