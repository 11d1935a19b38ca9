//! The atomic switch: readers hammering a replica while it switches
//! versions see only whole old or whole new files (never a mix, never a
//! false quarantine); a transfer running on the old version finishes on
//! it, and the old version's folder goes when that transfer ends.

mod replica;
mod support;

use bytes::Bytes;
use distpoint::transfer::{Conn, Protocol};
use http_body_util::{BodyExt, Empty};
use replica::*;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::*;

const LONG: Duration = Duration::from_secs(60);
const SMALL: usize = 300_000;

fn content(version: u64) -> (Vec<u8>, Vec<u8>) {
    (
        unique(SMALL, version * 10 + 1),
        unique(8 << 20, version * 10 + 2),
    )
}

fn write_version(site: &Origin, version: u64) -> String {
    let (a, big) = content(version);
    site.site.file("content/pkg/a.bin", &a);
    site.site.file("content/pkg/big.bin", &big);
    publish(&site.pkg(), &site.key, version, &["--chunk-size", "65536"])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn readers_during_switches_see_whole_old_or_whole_new_files() {
    let mut site = Origin::new();
    write_version(&site, 1);
    site.start(&["cert:region01"]);
    let mut region = Replica::new(
        &site.site,
        &[site.server().url("/pkg")],
        &site.public_key(),
        Login::Cert(&site.site, "region01"),
        "anonymous = true\n",
        "",
    );
    region.start();
    region.wait_status("first sync", LONG, |s| s["sequence"] == 1);
    let addr = region.server().addr;
    let url = region.server().url("/pkg/a.bin");
    let tls = region.site.tls(false, &[Protocol::Http1]);
    let known: Arc<Vec<Vec<u8>>> = Arc::new((1..=5).map(|v| content(v).0).collect());

    // Readers, each on its own keep-alive connection.
    let stop = Arc::new(AtomicBool::new(false));
    let mut readers = Vec::new();
    for _ in 0..4 {
        let (stop, tls, url, known) = (stop.clone(), tls.clone(), url.clone(), known.clone());
        readers.push(tokio::spawn(async move {
            let mut seen = [0u32; 5];
            let mut conn = Conn::connect(addr, "localhost", tls).await.unwrap();
            while !stop.load(Ordering::Relaxed) {
                let r = req("GET", &url).body(Empty::<Bytes>::new()).unwrap();
                let got = read(conn.send(r).await.unwrap()).await;
                assert_eq!(got.status, 200, "{:?}", String::from_utf8_lossy(&got.body));
                assert!(!got.cut);
                let v = known.iter().position(|k| *k == got.body);
                let v =
                    v.unwrap_or_else(|| panic!("a mix: {} bytes of no version", got.body.len()));
                seen[v] += 1;
            }
            seen
        }));
    }

    // A slow transfer of the old big file, held open across a switch.
    let mut slow = Conn::connect(addr, "localhost", tls.clone()).await.unwrap();
    let resp = slow
        .send(
            req("GET", &region.server().url("/pkg/big.bin"))
                .body(Empty::<Bytes>::new())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let mut body = resp.into_body();
    let mut old = Vec::new();
    while old.is_empty() {
        if let Some(Ok(f)) = body.frame().await {
            old.extend_from_slice(f.data_ref().map(|d| &d[..]).unwrap_or_default());
        }
    }

    for v in 2..=5u64 {
        write_version(&site, v);
        let cfg = region.config.clone();
        let (code, out, err) = tokio::task::spawn_blocking(move || {
            dp(&["sync", "--config", cfg.to_str().unwrap(), "--json"])
        })
        .await
        .unwrap();
        assert_eq!(code, 0, "{out} {err}");
        // Let the readers see this version.
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    stop.store(true, Ordering::Relaxed);
    let mut total = [0u32; 5];
    for r in readers {
        let seen = r.await.unwrap();
        for (t, s) in total.iter_mut().zip(seen) {
            *t += s;
        }
    }
    eprintln!("responses per version during the switches: {total:?}");
    assert!(total.iter().filter(|&&n| n > 0).count() >= 3, "{total:?}");
    assert!(
        !region.server().log().contains("quarantined"),
        "{}",
        region.server().log()
    );

    // The slow transfer is still on version 1, whose folder is still there.
    assert_eq!(region.versions().len(), 2, "{:?}", region.versions());
    while let Some(f) = body.frame().await {
        old.extend_from_slice(f.unwrap().data_ref().map(|d| &d[..]).unwrap_or_default());
    }
    assert!(
        old == content(1).1,
        "the running transfer did not finish on its version"
    );
    drop(body);
    drop(slow);
    let end = Instant::now() + LONG;
    while region.versions().len() != 1 {
        assert!(
            Instant::now() < end,
            "old version kept: {:?}",
            region.versions()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let got = fetch(
        region.server(),
        tls,
        req("GET", &region.server().url("/pkg/big.bin")),
    )
    .await;
    assert!(got.body == content(5).1);
}
