//! HTTP/2 floods: rapid reset (CVE-2023-44487), CONTINUATION flood
//! (CVE-2024-27316 and kin) and an HPACK bomb, written frame by frame over
//! real TLS. Each must leave the server answering an honest client, bounded
//! in memory, and — for the floods that cannot be legitimate — closing the
//! attacking connection.

mod attack;
mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use attack::*;
use distpoint::transfer::Protocol;
use support::{rss_kib, Site};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const WINDOW: Duration = Duration::from_millis(2500);

/// Reads server frames until EOF or `limit`, returning them and whether the server closed.
async fn collect_frames<R: AsyncReadExt + Unpin>(
    r: &mut R,
    limit: Duration,
) -> (Vec<(u8, u8, u32, Vec<u8>)>, bool) {
    let mut buf = Vec::new();
    let mut frames = Vec::new();
    let mut chunk = vec![0u8; 64 * 1024];
    let end = tokio::time::Instant::now() + limit;
    let closed = loop {
        match tokio::time::timeout_at(end, r.read(&mut chunk)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break true,
            Ok(Ok(n)) => {
                buf.extend_from_slice(&chunk[..n]);
                // Keep only frame heads and small payloads; DATA is dropped.
                let parsed = parse_frames(&buf);
                let used: usize = parsed.iter().map(|f| 9 + f.3.len()).sum();
                buf.drain(..used);
                frames.extend(parsed.into_iter().map(|mut f| {
                    if f.0 == DATA {
                        f.3 = Vec::new();
                    }
                    f
                }));
            }
            Err(_) => break false,
        }
    };
    (frames, closed)
}

/// What one attacking connection achieved.
#[derive(Debug, Default)]
struct Round {
    /// Streams opened (rapid reset, HPACK bomb) or bytes sent (CONTINUATION).
    units: usize,
    closed: bool,
    goaway: Option<u32>,
    /// Streams the server answered with HEADERS or RST_STREAM.
    answered: usize,
    /// DATA frames the server sent on streams.
    data_frames: usize,
}

/// Run `round` on `parallel` connections at a time, again and again, until
/// `dur` has passed; so the attack lasts the whole measurement window. The
/// tests use one at a time: attacker and server share the machine's two
/// cores, so each attacking connection's own TLS work is taken from the
/// server too.
async fn rounds_for<F, Fut>(dur: Duration, parallel: usize, round: F) -> Vec<Round>
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Round> + Send + 'static,
{
    let round = Arc::new(round);
    let end = Instant::now() + dur;
    let mut workers = Vec::new();
    for _ in 0..parallel {
        let round = round.clone();
        workers.push(tokio::spawn(async move {
            let mut out = Vec::new();
            while Instant::now() < end {
                out.push(round().await);
            }
            out
        }));
    }
    let mut all = Vec::new();
    for w in workers {
        all.extend(w.await.unwrap());
    }
    all
}

/// `round` against `server` over and over for the whole measurement
/// window, while [`under_attack`] measures the honest client's HTTP/2
/// throughput before and during.
async fn flood<R, Fut>(
    name: &str,
    site: &Arc<Site>,
    server: &support::Server,
    round: R,
) -> Vec<Round>
where
    R: Fn(Arc<Site>, std::net::SocketAddr) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Round> + Send + 'static,
{
    let (s2, addr) = (site.clone(), server.addr);
    under_attack(name, site, server, Protocol::Http2, WINDOW, async move {
        rounds_for(WINDOW + Duration::from_millis(300), 1, move || {
            round(s2.clone(), addr)
        })
        .await
    })
    .await
}

fn summary(rounds: &[Round]) -> (usize, usize, usize, Vec<Option<u32>>) {
    let units = rounds.iter().map(|r| r.units).sum();
    let max = rounds.iter().map(|r| r.units).max().unwrap_or(0);
    let closed = rounds.iter().filter(|r| r.closed).count();
    let mut codes: Vec<_> = rounds.iter().map(|r| r.goaway).collect();
    codes.sort();
    codes.dedup();
    (units, max, closed, codes)
}

/// Frames from the server on one connection, read in the background.
type Reader = tokio::task::JoinHandle<(Vec<(u8, u8, u32, Vec<u8>)>, bool)>;

async fn attacker(
    site: &Site,
    addr: std::net::SocketAddr,
    read_limit: Duration,
) -> (
    tokio::io::WriteHalf<tokio_rustls::client::TlsStream<tokio::net::TcpStream>>,
    Reader,
) {
    let stream = tls_stream(site, addr, Protocol::Http2).await;
    let (mut r, w) = tokio::io::split(stream);
    let reader = tokio::spawn(async move { collect_frames(&mut r, read_limit).await });
    (w, reader)
}

fn finish(units: usize, frames: Vec<(u8, u8, u32, Vec<u8>)>, closed: bool) -> Round {
    let answered = frames
        .iter()
        .filter(|f| (f.0 == HEADERS || f.0 == RST_STREAM) && f.2 % 2 == 1)
        .map(|f| f.2)
        .collect::<std::collections::BTreeSet<_>>()
        .len();
    let data_frames = frames.iter().filter(|f| f.0 == DATA && f.2 != 0).count();
    Round {
        units,
        closed,
        goaway: goaway_code(&frames),
        answered,
        data_frames,
    }
}

/// HEADERS + RST_STREAM(CANCEL) pairs for the big file, 100 per write, up to
/// 20,000 streams or 2 s, or until the server closes.
async fn rapid_reset_round(site: Arc<Site>, addr: std::net::SocketAddr) -> Round {
    let (mut w, reader) = attacker(&site, addr, Duration::from_secs(6)).await;
    let block = get_block("localhost", "/pub/big.bin");
    let mut ok = send(&mut w, &client_start()).await;
    let stop = Instant::now() + Duration::from_secs(2);
    let (mut sid, mut sent) = (1u32, 0usize);
    while ok && Instant::now() < stop && sent < 20_000 {
        let mut batch = Vec::new();
        for _ in 0..100 {
            batch.extend(frame(HEADERS, END_STREAM | END_HEADERS, sid, &block));
            batch.extend(frame(RST_STREAM, 0, sid, &8u32.to_be_bytes())); // CANCEL
            sid += 2;
        }
        ok = send(&mut w, &batch).await;
        sent += if ok { 100 } else { 0 };
    }
    let _ = w.shutdown().await;
    let (frames, closed) = reader.await.unwrap();
    finish(sent, frames, closed)
}

/// HEADERS without END_HEADERS, then 16 KB CONTINUATION frames of new
/// header fields, up to 64 MiB or 5 s, or until the server closes.
async fn continuation_round(site: Arc<Site>, addr: std::net::SocketAddr) -> Round {
    let (mut w, reader) = attacker(&site, addr, Duration::from_secs(8)).await;
    let started = Instant::now();
    let mut ok = send(&mut w, &client_start()).await
        && send(
            &mut w,
            &frame(HEADERS, 0, 1, &get_block("localhost", "/pub/small.txt")),
        )
        .await;
    let (mut bytes, mut n) = (0usize, 0u32);
    while ok && bytes < 64 << 20 && started.elapsed() < Duration::from_secs(5) {
        let mut batch = Vec::new();
        for _ in 0..16 {
            batch.extend(frame(
                CONTINUATION,
                0,
                1,
                &literal(&format!("x-flood-{n}"), &[b'a'; 16_000]),
            ));
            n += 1;
        }
        ok = send(&mut w, &batch).await;
        bytes += if ok { batch.len() } else { 0 };
    }
    let (frames, closed) = reader.await.unwrap();
    finish(bytes, frames, closed)
}

/// Header blocks that put a 4000-byte field into the dynamic table and
/// reference it 1000 times (about 4 MB decoded from 5 KB), up to 500 or 2 s.
async fn hpack_bomb_round(site: Arc<Site>, addr: std::net::SocketAddr) -> Round {
    let (mut w, reader) = attacker(&site, addr, Duration::from_secs(5)).await;
    let mut ok = send(&mut w, &client_start()).await;
    let (mut sid, mut sent) = (1u32, 0usize);
    let started = Instant::now();
    while ok && sent < 500 && started.elapsed() < Duration::from_secs(2) {
        let mut block = get_block("localhost", "/pub/big.bin");
        block.extend(literal_indexed("x-bomb", &[b'b'; 4000]));
        for _ in 0..1000 {
            block.extend(indexed(62));
        }
        ok = send(
            &mut w,
            &frame(HEADERS, END_STREAM | END_HEADERS, sid, &block),
        )
        .await;
        sent += usize::from(ok);
        sid += 2;
    }
    let _ = w.shutdown().await;
    let (frames, closed) = reader.await.unwrap();
    finish(sent, frames, closed)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rapid_reset_leaves_the_server_serving() {
    let (site, server) = start("");
    let site = Arc::new(site);
    let pid = server.pid();
    let rss_before = rss_kib(pid);
    let rounds = flood("HTTP/2 rapid reset", &site, &server, rapid_reset_round).await;
    let rss_after = rss_kib(pid);
    let (streams, most, closed, codes) = summary(&rounds);
    println!(
        "ATTACK HTTP/2 rapid reset: {streams} streams opened and reset (written) on {} connections (at most {most} on one); {closed} connections closed by the server, GOAWAY codes {codes:?}; RSS {} -> {} MiB",
        rounds.len(),
        rss_before / 1024,
        rss_after / 1024
    );
    assert!(streams >= 400, "the attack ran");
    assert!(
        rss_after < rss_before + 256 * 1024,
        "RSS grew from {rss_before} to {rss_after} KiB"
    );
    let got = support::fetch(
        &server,
        site.tls(false, &[Protocol::Http2]),
        support::req("GET", &server.url("/pub/small.txt")),
    )
    .await;
    assert_eq!(got.status, 200, "still serving");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn continuation_flood_is_cut_off() {
    let (site, server) = start("");
    let site = Arc::new(site);
    let rounds = flood(
        "HTTP/2 CONTINUATION flood",
        &site,
        &server,
        continuation_round,
    )
    .await;
    let (bytes, most, closed, codes) = summary(&rounds);
    println!(
        "ATTACK HTTP/2 CONTINUATION flood: {} connections wrote {} MiB of endless header block; each was cut after at most {} KiB (written, counting what the kernel buffered); {closed} closed by the server, GOAWAY codes {codes:?}",
        rounds.len(),
        bytes >> 20,
        most >> 10
    );
    assert_eq!(closed, rounds.len(), "a flooding connection stayed open");
    assert!(
        most < 4 << 20,
        "{most} bytes of CONTINUATION accepted on one connection"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hpack_bomb_is_refused_without_memory_growth() {
    let (site, server) = start("");
    let site = Arc::new(site);
    let pid = server.pid();
    let rss_before = rss_kib(pid);
    let rounds = flood("HPACK bomb", &site, &server, hpack_bomb_round).await;
    let rss_after = rss_kib(pid);
    let (sent, most, closed, codes) = summary(&rounds);
    let data: usize = rounds.iter().map(|r| r.data_frames).sum();
    let answered: usize = rounds.iter().map(|r| r.answered).sum();
    println!(
        "ATTACK HPACK bomb: {sent} header blocks of ~4 MB decoded size written on {} connections (at most {most} on one), {answered} streams answered (431 or reset), {data} DATA frames; {closed} connections closed by the server, GOAWAY codes {codes:?}; RSS {} -> {} MiB",
        rounds.len(),
        rss_before / 1024,
        rss_after / 1024
    );
    assert!(sent >= 10, "the attack ran");
    assert_eq!(data, 0, "a bombed request was served");
    assert!(
        rss_after < rss_before + 128 * 1024,
        "RSS grew from {rss_before} to {rss_after} KiB"
    );
}
