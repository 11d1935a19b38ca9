//! The client's own check, against a server that lies: an in-test TLS
//! server (`support::mirror`) serves a good manifest but a tampered chunk k
//! (or changes the file under a running download, or quarantines it).
//! distpoint's server never does that, so this is the only way to see the
//! client catch a bad chunk itself.

mod support;

use distpoint::integrity::{hex, FileManifest};
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use support::mirror::{self, Lie};
use support::*;

const CHUNK: usize = 8192;
const CHUNKS: usize = 64;

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn lie(good: &[u8], served: Vec<u8>) -> Lie {
    mirror::lie(good, served, CHUNK)
}

fn serve(site: &Site, lie: Arc<Lie>) -> String {
    mirror::serve(site, lie, "f.bin")
}

fn fetch(site: &Site, url: &str, out: &Path, extra: &[&str]) -> (i32, serde_json::Value, String) {
    let o = Command::new(env!("CARGO_BIN_EXE_distpoint"))
        .args(["fetch", url, "-o", s(out), "--json"])
        .args(extra)
        .args(["--cacert", s(&site.path("certs/ca.crt"))])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    let v = serde_json::from_str(String::from_utf8_lossy(&o.stdout).trim()).unwrap_or_default();
    (o.status.code().unwrap_or(-1), v, err)
}

#[test]
fn the_client_catches_a_bad_chunk_itself_and_stops_within_k_plus_1_plus_n_chunks() {
    let site = Site::new();
    let good = data(CHUNK * CHUNKS, 1);
    let root = hex(&FileManifest::compute(&good[..], CHUNK as u64).unwrap().root);
    for (k, n, proto) in [
        (0usize, 1usize, "--http1"),
        (17, 4, "--http2"),
        (40, 8, "--http1"),
    ] {
        let mut bad = good.clone();
        bad[k * CHUNK + CHUNK - 1] ^= 1; // the very last byte of chunk k
        let lie = Arc::new(lie(&good, bad));
        let url = serve(&site, lie.clone());
        let out = site.path(&format!("f{k}.bin"));
        let n_s = n.to_string();
        let (code, v, err) = fetch(
            &site,
            &url,
            &out,
            &["--expect", &root, "--connections", &n_s, proto],
        );
        assert_eq!(code, 2, "{err}");
        assert_eq!(v["chunk"], k as u64, "{v}");
        assert!(err.contains(&format!("chunk {k} of {CHUNKS}")), "{err}");
        assert!(err.contains("does not match the manifest"), "{err}");
        let fetched = v["bytes_fetched"].as_u64().unwrap();
        let bound = ((k + 1 + n) * CHUNK) as u64;
        assert!(
            fetched <= bound,
            "fetched {fetched} > (k+1+N) chunks = {bound}"
        );
        assert!(!out.exists(), "nothing unverified at PATH");
        // The work file never holds the bad chunk: only verified chunks are written.
        if let Ok(part) = std::fs::read(site.path(&format!("f{k}.bin.part"))) {
            let c = &part[k * CHUNK..(k + 1) * CHUNK];
            assert!(c.iter().all(|&b| b == 0) || c == &good[k * CHUNK..(k + 1) * CHUNK]);
        }
    }
}

#[test]
fn a_file_that_changes_mid_download_restarts_from_the_manifest() {
    let site = Site::new();
    let v1 = data(CHUNK * CHUNKS, 2);
    let v2 = data(CHUNK * CHUNKS - 300, 3);
    let changing = || {
        // After 10 content requests the file is a new version with another
        // ETag (and manifest): If-Range makes the server answer 200.
        let mut l = lie(&v1, v1.clone());
        l.switch_after = Some((10, v2.clone(), "\"v2\"".into()));
        Arc::new(l)
    };
    let out = site.path("f.bin");
    let (code, v, err) = fetch(
        &site,
        &serve(&site, changing()),
        &out,
        &["--connections", "2"],
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        std::fs::read(&out).unwrap(),
        v2,
        "the new version whole, no mix"
    );
    assert_eq!(v["restarts"], 1, "{v}");
    assert_eq!(v["chunks_resumed"], 0, "{v}");

    // Pinned to the old version: the new manifest fails --expect.
    let root1 = hex(&FileManifest::compute(&v1[..], CHUNK as u64).unwrap().root);
    let out = site.path("g.bin");
    let (code, _, err) = fetch(
        &site,
        &serve(&site, changing()),
        &out,
        &["--expect", &root1],
    );
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("does not match --expect"), "{err}");
    assert!(!out.exists());
}

#[test]
fn transient_errors_are_retried_with_bounded_backoff() {
    let site = Site::new();
    let good = data(CHUNK * 8, 4);
    // A few 503s: retried, and the download completes.
    let mut l = lie(&good, good.clone());
    l.unavailable_first = 3;
    let out = site.path("a.bin");
    let (code, v, err) = fetch(
        &site,
        &serve(&site, Arc::new(l)),
        &out,
        &["--connections", "1"],
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(std::fs::read(&out).unwrap(), good);
    assert_eq!(v["chunks_fetched"], 8, "{v}");

    // A server that never recovers: bounded retries, then exit 3 and a clear line.
    let mut l = lie(&good, good.clone());
    l.unavailable_first = u64::MAX;
    let out = site.path("b.bin");
    let t = std::time::Instant::now();
    let (code, _, err) = fetch(
        &site,
        &serve(&site, Arc::new(l)),
        &out,
        &["--connections", "2"],
    );
    assert_eq!(code, 3, "{err}");
    assert!(
        err.contains("HTTP 503") && err.contains("gave up after 6 attempts"),
        "{err}"
    );
    assert!(t.elapsed() < std::time::Duration::from_secs(30));
    assert!(!out.exists());
}

#[test]
fn a_quarantine_503_names_the_chunk_in_its_header_or_falls_back_to_the_body_text() {
    let site = Site::new();
    let good = data(CHUNK * CHUNKS, 5);
    let root = hex(&FileManifest::compute(&good[..], CHUNK as u64).unwrap().root);
    // At chunk 6 the server quarantines the file, as distpoint does: the
    // response that reaches it is cut before it, and every later request is
    // refused. With the header, the chunk named is the server's, however far
    // it is from the chunks in flight; without it (or with an index outside
    // the file) the client falls back to the chunk that was cut (or the
    // lowest refused): 6.
    for (i, header, named) in [
        (0, Some("quarantined; chunk=30"), 30u64),
        (1, Some("quarantined"), 6),
        (2, Some("quarantined; chunk=4000"), 6),
        (3, None, 6),
    ] {
        let mut l = lie(&good, good.clone());
        l.quarantine_at = Some((6, header));
        let out = site.path(&format!("q{i}.bin"));
        let (code, v, err) = fetch(
            &site,
            &serve(&site, Arc::new(l)),
            &out,
            &["--expect", &root, "--connections", "1", "--http1"],
        );
        assert_eq!(code, 2, "{header:?}: {err}");
        assert_eq!(v["chunk"], named, "{header:?}: {v}");
        assert!(err.contains(&format!("chunk {named} of {CHUNKS}")), "{err}");
        assert!(err.contains("quarantined"), "{err}");
        assert!(!out.exists());
    }
}
