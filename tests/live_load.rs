//! A keep-alive load running through 20 config reloads: no request is lost
//! and no answer is wrong.

mod support;

use bytes::Bytes;
use distpoint::transfer::{Conn, Protocol};
use http_body_util::Empty;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::*;

fn anon_path(url: &str, dir: &str) -> String {
    format!("[[vpath]]\nurl = \"{url}\"\ndir = \"{dir}\"\nanonymous = true\n")
}

#[derive(Default)]
struct Counts {
    ok: AtomicUsize,
    not_found: AtomicUsize,
}

async fn worker(
    addr: std::net::SocketAddr,
    tls: Arc<rustls::ClientConfig>,
    counts: Arc<Counts>,
    stop: Arc<AtomicBool>,
) {
    let mut conn = Conn::connect(addr, "localhost", tls.clone()).await.unwrap();
    let mut i = 0u64;
    while !stop.load(Ordering::Relaxed) {
        i += 1;
        let (path, body) = if i % 2 == 0 {
            ("/stable/s.txt", &b"stable"[..])
        } else {
            ("/flip/f.txt", &b"flip"[..])
        };
        let url = format!("https://{addr}{path}");
        let resp = conn
            .send(req("GET", &url).body(Empty::<Bytes>::new()).unwrap())
            .await
            .unwrap_or_else(|e| panic!("request {i} to {path} lost: {e:?}"));
        let got = read(resp).await;
        match (path, got.status, got.cut) {
            (_, 200, false) => {
                assert_eq!(got.body, body, "wrong body for {path}");
                counts.ok.fetch_add(1, Ordering::Relaxed);
            }
            ("/flip/f.txt", 404, false) => {
                counts.not_found.fetch_add(1, Ordering::Relaxed);
            }
            _ => panic!("wrong answer for {path}: {} cut={}", got.status, got.cut),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keep_alive_load_through_20_reloads_loses_nothing() {
    let site = Site::new();
    site.file("content/stable/s.txt", b"stable");
    site.file("content/flip/f.txt", b"flip");
    let with_flip = format!(
        "{}{}{}",
        site.head(),
        anon_path("/stable", "content/stable"),
        anon_path("/flip", "content/flip")
    );
    let without = format!("{}{}", site.head(), anon_path("/stable", "content/stable"));
    let server = site.start(&with_flip);
    let cfg = site.path("distpoint.toml");
    let counts = Arc::new(Counts::default());
    let stop = Arc::new(AtomicBool::new(false));
    let mut workers = Vec::new();
    for proto in [
        Protocol::Http1,
        Protocol::Http2,
        Protocol::Http1,
        Protocol::Http2,
    ] {
        workers.push(tokio::spawn(worker(
            server.addr,
            site.tls(false, &[proto]),
            counts.clone(),
            stop.clone(),
        )));
    }
    let start = Instant::now();
    for i in 0..20 {
        let body = if i % 2 == 0 { &without } else { &with_flip };
        if i % 4 < 2 {
            std::fs::write(&cfg, body).unwrap();
        } else {
            let tmp = site.path("distpoint.toml.swp");
            std::fs::write(&tmp, body).unwrap();
            std::fs::rename(&tmp, &cfg).unwrap();
        }
        let deadline = Instant::now() + Duration::from_secs(2);
        while server.log().matches("config reloaded").count() < i + 1 {
            assert!(
                Instant::now() < deadline,
                "reload {i} not applied: {}",
                server.log()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        // Requests run under this config before the next change.
        let answered =
            || counts.ok.load(Ordering::Relaxed) + counts.not_found.load(Ordering::Relaxed);
        let target = answered() + 20;
        while answered() < target {
            assert!(
                Instant::now() < deadline,
                "no requests answered after reload {i}"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    // Enough requests in total, and some after the last reload.
    while counts.ok.load(Ordering::Relaxed) + counts.not_found.load(Ordering::Relaxed) < 1000 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        if w.await.is_err() {
            panic!("a worker failed; server log:\n{}", server.log());
        }
    }
    let (ok, nf) = (
        counts.ok.load(Ordering::Relaxed),
        counts.not_found.load(Ordering::Relaxed),
    );
    // A response smaller than one block is sent whole even when its path is
    // removed while it is on its way, so none of these is ever cut.
    eprintln!(
        "{} requests through 20 reloads in {:?}: {ok} ok, {nf} 404 (path removed)",
        ok + nf,
        start.elapsed()
    );
    assert!(ok + nf >= 1000);
    assert!(nf > 0, "the removed path answered 404 at some point");
}
