//! Slow clients: slowloris (request heads trickled a byte at a time) and TLS
//! handshake stalls (connect and say nothing, or half a ClientHello). The
//! server's deadlines (`header_read_timeout_secs`, `handshake_timeout_secs`,
//! both 2 s here) must close every such connection, and an honest client
//! must keep most of its throughput meanwhile.

mod attack;
mod support;

use std::time::{Duration, Instant};

use attack::*;
use distpoint::transfer::Protocol;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

const CONNS: usize = 200;
const WINDOW: Duration = Duration::from_millis(2500);

/// Seconds until each connection was closed by the server (None: still open at `limit`).
async fn wait_closed<S: tokio::io::AsyncRead + Unpin + Send + 'static>(
    streams: Vec<S>,
    started: Instant,
    limit: Duration,
) -> Vec<Option<f64>> {
    let tasks: Vec<_> = streams
        .into_iter()
        .map(|mut s| {
            tokio::spawn(async move {
                let (_, closed) = read_until_closed(&mut s, limit).await;
                closed.then(|| started.elapsed().as_secs_f64())
            })
        })
        .collect();
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.unwrap());
    }
    out
}

fn report(name: &str, closed: &[Option<f64>], deadline_secs: f64) {
    let done: Vec<f64> = closed.iter().flatten().copied().collect();
    let max = done.iter().copied().fold(0.0, f64::max);
    println!(
        "ATTACK {name}: {} of {} stalled connections closed by the server, the last after {max:.1} s (deadline {deadline_secs} s)",
        done.len(),
        closed.len()
    );
    assert_eq!(done.len(), closed.len(), "{name}: connections left open");
    assert!(
        max < deadline_secs + 3.0,
        "{name}: closed only after {max:.1} s"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slowloris_connections_are_closed_and_honest_clients_keep_going() {
    let (site, server) = start("");
    let site = std::sync::Arc::new(site);
    let (s2, addr) = (site.clone(), server.addr);
    let closed = under_attack(
        "slowloris",
        &site,
        &server,
        Protocol::Http1,
        WINDOW,
        async move {
            let started = Instant::now();
            let mut streams = Vec::new();
            for _ in 0..CONNS {
                let mut s = tls_stream(&s2, addr, Protocol::Http1).await;
                s.write_all(b"GET /pub/small.txt HTTP/1.1\r\nHost: localhost\r\nX-Slow: ")
                    .await
                    .unwrap();
                s.flush().await.unwrap();
                streams.push(s);
            }
            // Trickle: one byte per connection every 300 ms, until the server hangs up.
            let mut ended = vec![false; streams.len()];
            let stop = Instant::now() + Duration::from_secs(8);
            while Instant::now() < stop && !ended.iter().all(|e| *e) {
                for (s, e) in streams.iter_mut().zip(ended.iter_mut()) {
                    if !*e && (s.write_all(b"a").await.is_err() || s.flush().await.is_err()) {
                        *e = true;
                    }
                }
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
            wait_closed(streams, started, Duration::from_secs(2)).await
        },
    )
    .await;
    report("slowloris", &closed, 2.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_handshakes_are_closed_and_honest_clients_keep_going() {
    let (site, server) = start("");
    let addr = server.addr;
    let closed = under_attack(
        "TLS handshake stall",
        &site,
        &server,
        Protocol::Http2,
        WINDOW,
        async move {
            let started = Instant::now();
            let mut streams = Vec::new();
            for i in 0..CONNS {
                let mut tcp = TcpStream::connect(addr).await.unwrap();
                if i % 2 == 1 {
                    // A TLS record head announcing a 512-byte ClientHello, and 4 bytes of it.
                    tcp.write_all(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc])
                        .await
                        .unwrap();
                }
                streams.push(tcp);
            }
            wait_closed(streams, started, Duration::from_secs(8)).await
        },
    )
    .await;
    report("TLS handshake stall", &closed, 2.0);
}
