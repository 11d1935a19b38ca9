//! A fetch killed half-way resumes: verified chunks are re-checked from disk
//! and only the rest is fetched; a file that changed on the server restarts.

mod support;

use std::os::unix::fs::FileExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use support::*;

const CHUNK: usize = 16 * 1024;
const CHUNKS: usize = 64;

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn ranged_requests(server: &Server) -> usize {
    server
        .log()
        .lines()
        .filter(|l| l.contains("path=/pub/big.bin ") && l.contains("status=206"))
        .count()
}

/// Start a slow fetch, wait until its state lists at least `min` chunks, kill it.
/// Returns the verified chunks the state file lists after the kill.
fn fetch_and_kill(site: &Site, server: &Server, out: &Path, min: usize) -> Vec<u64> {
    let mut child = Command::new(env!("CARGO_BIN_EXE_distpoint"))
        .args([
            "fetch",
            &server.url("/pub/big.bin"),
            "-o",
            s(out),
            "--connections",
            "2",
        ])
        .args([
            "--limit-rate",
            "200000",
            "--cacert",
            s(&site.path("certs/ca.crt")),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let state = format!("{}.part.state", out.display());
    let end = Instant::now() + Duration::from_secs(30);
    loop {
        assert!(Instant::now() < end, "the fetch never got half-way");
        if let Some(v) = listed(&state) {
            if v.len() >= min {
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(
        !out.exists(),
        "nothing at PATH before the download is complete"
    );
    listed(&state).unwrap()
}

fn listed(state: &str) -> Option<Vec<u64>> {
    let text = std::fs::read_to_string(state).ok()?;
    let v: serde_json::Value = serde_json::from_str(&text).ok()?;
    Some(
        v["verified"]
            .as_array()?
            .iter()
            .flat_map(|r| r[0].as_u64().unwrap()..r[1].as_u64().unwrap())
            .collect(),
    )
}

fn rerun(site: &Site, server: &Server, out: &Path) -> serde_json::Value {
    let o = Command::new(env!("CARGO_BIN_EXE_distpoint"))
        .args(["fetch", &server.url("/pub/big.bin"), "-o", s(out), "--json"])
        .args(["--cacert", s(&site.path("certs/ca.crt"))])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(0), "{err}");
    serde_json::from_str(String::from_utf8_lossy(&o.stdout).trim()).unwrap()
}

fn start(site: &Site) -> Server {
    site.start(&format!(
        "{}[[vpath]]\nurl = \"/pub\"\ndir = \"content/pub\"\nanonymous = true\nchunk_size = {CHUNK}\n",
        site.head()
    ))
}

#[test]
fn a_killed_fetch_resumes_fetching_only_the_missing_chunks() {
    let site = Site::new();
    let body = data(CHUNK * CHUNKS, 7);
    site.file("content/pub/big.bin", &body);
    let server = start(&site);
    let out = site.path("big.bin");
    let done = fetch_and_kill(&site, &server, &out, CHUNKS / 4);
    assert!(done.len() < CHUNKS, "killed before the end");
    server.wait_quiet(Duration::from_secs(10));
    let before = ranged_requests(&server);

    // Damage one verified chunk on disk: the rerun must notice and fetch it again.
    let part = std::fs::OpenOptions::new()
        .write(true)
        .open(site.path("big.bin.part"))
        .unwrap();
    part.write_all_at(b"XXXX", done[0] * CHUNK as u64 + 10)
        .unwrap();
    drop(part);

    let v = rerun(&site, &server, &out);
    assert_eq!(
        std::fs::read(&out).unwrap(),
        body,
        "byte-identical after resuming"
    );
    let resumed = done.len() as u64 - 1;
    assert_eq!(v["chunks_resumed"].as_u64(), Some(resumed), "{v}");
    assert_eq!(
        v["chunks_fetched"].as_u64(),
        Some(CHUNKS as u64 - resumed),
        "{v}"
    );
    server.wait_quiet(Duration::from_secs(10));
    assert_eq!(
        ranged_requests(&server) - before,
        CHUNKS - resumed as usize,
        "only the chunks not verified before were requested"
    );
    assert!(!site.path("big.bin.part").exists());
    assert!(!site.path("big.bin.part.state").exists());
}

#[test]
fn a_file_changed_on_the_server_restarts_cleanly() {
    let site = Site::new();
    site.file("content/pub/big.bin", &data(CHUNK * CHUNKS, 8));
    let server = start(&site);
    let out = site.path("big.bin");
    let done = fetch_and_kill(&site, &server, &out, 8);
    assert!(!done.is_empty());

    // A new version, replaced by rename as a publisher would.
    let new = data(CHUNK * CHUNKS - 100, 9);
    site.file("content/pub/big.bin.new", &new);
    std::fs::rename(
        site.path("content/pub/big.bin.new"),
        site.path("content/pub/big.bin"),
    )
    .unwrap();

    let v = rerun(&site, &server, &out);
    assert_eq!(
        std::fs::read(&out).unwrap(),
        new,
        "the new version, whole, no mix"
    );
    assert_eq!(v["chunks_resumed"].as_u64(), Some(0), "{v}");
}
