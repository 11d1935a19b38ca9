//! Issue 12, item 2: memory for HTTP/2 streams stalled by a zero window must
//! be bounded in total. A client that sets SETTINGS_INITIAL_WINDOW_SIZE = 0
//! and opens many downloads lets the server send nothing; the server must
//! not read ahead chunk buffers for all of them.

mod attack;
mod support;

use std::time::{Duration, Instant};

use attack::*;
use distpoint::transfer::Protocol;
use support::{data, rss_kib, Site};

const CONNS: usize = 4;
const STREAMS: u32 = 128;
/// The bound the fix must meet: all stalled streams together.
const MAX_GROWTH_MIB: u64 = 256;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zero_window_streams_do_not_pin_unbounded_memory() {
    let site = Site::new();
    site.file("content/pub/big.bin", &data(8 << 20, 3));
    let server = site.start(&format!(
        "{}[[vpath]]\nurl = \"/pub\"\ndir = \"content/pub\"\nanonymous = true\n",
        site.head()
    ));
    let pid = server.pid();
    let rss_before = rss_kib(pid);
    let threads_before = thread_count(pid);
    let mut conns = Vec::new();
    for _ in 0..CONNS {
        let mut s = tls_stream(&site, server.addr, Protocol::Http2).await;
        let mut start = PREFACE.to_vec();
        start.extend(frame(SETTINGS, 0, 0, &[0, 4, 0, 0, 0, 0])); // INITIAL_WINDOW_SIZE = 0
        start.extend(frame(SETTINGS, ACK, 0, &[]));
        let block = get_block("localhost", "/pub/big.bin");
        for i in 0..STREAMS {
            start.extend(frame(HEADERS, END_STREAM | END_HEADERS, 1 + 2 * i, &block));
        }
        send(&mut s, &start).await;
        conns.push(s);
    }
    // Wait for the server's memory to stop growing (or 15 s).
    let end = Instant::now() + Duration::from_secs(15);
    let (mut last, mut stable_since) = (rss_kib(pid), Instant::now());
    while Instant::now() < end && stable_since.elapsed() < Duration::from_secs(2) {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let now = rss_kib(pid);
        if now > last + 4096 {
            (last, stable_since) = (now, Instant::now());
        }
    }
    let rss = rss_kib(pid);
    let threads = thread_count(pid);
    let growth_mib = rss.saturating_sub(rss_before) / 1024;
    println!(
        "{CONNS} connections x {STREAMS} zero-window streams: RSS {} -> {} MiB (+{growth_mib} MiB), threads {threads_before} -> {threads}",
        rss_before / 1024,
        rss / 1024
    );
    assert!(
        growth_mib <= MAX_GROWTH_MIB,
        "stalled streams pin {growth_mib} MiB (bound {MAX_GROWTH_MIB} MiB)"
    );
    drop(conns);
}
