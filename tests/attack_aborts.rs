//! 2,000 aborted requests leave no file descriptor and no thread behind.
//!
//! Four kinds, 500 each, 50 at a time, while an honest client downloads:
//! an HTTP/1.1 download dropped after its first bytes; HTTP/2 streams
//! cancelled with RST_STREAM after their first DATA (ten per connection, then
//! the connection dropped); a TLS handshake and then nothing but a close;
//! a bare TCP connect and close. Afterwards the server's open descriptors
//! (`/proc/PID/fd`: sockets, files being served) must come back to what
//! they were before, and its threads (`/proc/PID/task`: the blocking pool
//! that reads chunks) too, once the pool's idle threads have timed out.

mod attack;
mod support;

use std::sync::Arc;
use std::time::Duration;

use attack::*;
use distpoint::transfer::Protocol;
use support::Site;
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

const PER_KIND: usize = 500;
const AT_ONCE: usize = 50;

async fn h1_dropped(site: &Site, addr: std::net::SocketAddr) {
    let mut s = tls_stream(site, addr, Protocol::Http1).await;
    send(
        &mut s,
        b"GET /pub/big.bin HTTP/1.1\r\nHost: localhost\r\n\r\n",
    )
    .await;
    let mut buf = [0u8; 4096];
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf)).await;
    // Dropped mid-body.
}

async fn h2_cancelled(site: &Site, addr: std::net::SocketAddr) {
    let mut s = tls_stream(site, addr, Protocol::Http2).await;
    send(&mut s, &client_start()).await;
    let block = get_block("localhost", "/pub/big.bin");
    let mut buf = vec![0u8; 32 * 1024];
    for i in 0..10u32 {
        let sid = 1 + 2 * i;
        send(
            &mut s,
            &frame(HEADERS, END_STREAM | END_HEADERS, sid, &block),
        )
        .await;
        // Wait for some of the answer, then cancel the stream.
        let _ = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf)).await;
        send(&mut s, &frame(RST_STREAM, 0, sid, &8u32.to_be_bytes())).await;
    }
}

async fn tls_then_close(site: &Site, addr: std::net::SocketAddr) {
    drop(tls_stream(site, addr, Protocol::Http2).await);
}

async fn tcp_then_close(addr: std::net::SocketAddr) {
    drop(TcpStream::connect(addr).await.unwrap());
}

/// Run all 2,000 aborts (the h2 kind counts each cancelled stream) and
/// return how many were made.
async fn aborts(site: Arc<Site>, addr: std::net::SocketAddr) -> usize {
    let sem = Arc::new(tokio::sync::Semaphore::new(AT_ONCE));
    let mut tasks = Vec::new();
    for i in 0..PER_KIND * 4 {
        let (site, sem) = (site.clone(), sem.clone());
        // h2 connections carry ten streams each: 50 connections make 500 aborts.
        if i % 4 == 1 && i / 4 >= PER_KIND / 10 {
            continue;
        }
        tasks.push(tokio::spawn(async move {
            let _permit = sem.acquire().await.unwrap();
            match i % 4 {
                0 => h1_dropped(&site, addr).await,
                1 => h2_cancelled(&site, addr).await,
                2 => tls_then_close(&site, addr).await,
                _ => tcp_then_close(addr).await,
            }
            if i % 4 == 1 {
                10
            } else {
                1
            }
        }));
    }
    let mut made = 0;
    for t in tasks {
        made += t.await.unwrap();
    }
    made
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aborted_requests_leave_nothing_behind() {
    let (site, server) = start("");
    let site = Arc::new(site);
    let pid = server.pid();
    // Warm up: both protocols once, so the pools exist before the baseline.
    honest_throughput(&site, &server, Protocol::Http1, Duration::from_millis(300)).await;
    honest_throughput(&site, &server, Protocol::Http2, Duration::from_millis(300)).await;
    // The warm-up's connections closed: the server's fds are back at rest.
    server.wait_quiet(Duration::from_secs(10));
    let (fds_before, threads_before) = (fd_count(pid), thread_count(pid));

    let (s2, addr) = (site.clone(), server.addr);
    let made = under_attack(
        "2,000 aborted requests",
        &site,
        &server,
        Protocol::Http1,
        Duration::from_millis(2500),
        async move { aborts(s2, addr).await },
    )
    .await;
    let fds_peak = fd_count(pid);
    let threads_peak = thread_count(pid);
    // Closed connections are noticed at once; idle blocking threads leave after 10 s.
    let fds_after = tokio::task::spawn_blocking(move || {
        settle(Duration::from_secs(15), fds_before, || fd_count(pid))
    })
    .await
    .unwrap();
    let threads_after = tokio::task::spawn_blocking(move || {
        settle(Duration::from_secs(30), threads_before, || {
            thread_count(pid)
        })
    })
    .await
    .unwrap();
    println!(
        "ATTACK 2,000 aborted requests: {made} aborts; fds {fds_before} before, {fds_peak} right after, {fds_after} settled; threads {threads_before} before, {threads_peak} right after, {threads_after} settled"
    );
    assert!(made >= 2000);
    assert!(
        fds_after <= fds_before,
        "descriptors left behind: {fds_before} -> {fds_after}"
    );
    assert!(
        threads_after <= threads_before,
        "threads left behind: {threads_before} -> {threads_after}"
    );
    assert!(!server.log().contains("panicked"), "{}", server.log());
    let got = support::fetch(
        &server,
        site.tls(false, &[Protocol::Http2]),
        support::req("GET", &server.url("/pub/small.txt")),
    )
    .await;
    assert_eq!(got.status, 200, "still serving");
}
