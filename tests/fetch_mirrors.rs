//! `distpoint fetch` from several sources: nginx (Debian's) as a plain
//! mirror with validators unlike distpoint's, interrupted and resumed; three
//! sources of which one tampers with a chunk; every source bad at the same
//! chunk; a mirror whose file changes mid-run; only dead sources.

mod support;

use distpoint::integrity::{hex, FileManifest};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::nginx::Nginx;
use support::*;

const CHUNK: usize = 16 * 1024;

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

struct Run {
    code: i32,
    json: serde_json::Value,
    err: String,
}

fn fetch(site: &Site, args: &[&str]) -> Run {
    let o = Command::new(env!("CARGO_BIN_EXE_distpoint"))
        .arg("fetch")
        .args(args)
        .args(["--json", "--cacert", s(&site.path("certs/ca.crt"))])
        .output()
        .unwrap();
    Run {
        code: o.status.code().unwrap_or(-1),
        json: serde_json::from_str(String::from_utf8_lossy(&o.stdout).trim()).unwrap_or_default(),
        err: String::from_utf8_lossy(&o.stderr).into_owned(),
    }
}

/// The manifest of `body` in a file, and its root.
fn manifest_file(site: &Site, name: &str, body: &[u8]) -> (PathBuf, String) {
    let m = FileManifest::compute(body, CHUNK as u64).unwrap();
    (site.file(name, m.to_json().as_bytes()), hex(&m.root))
}

/// A distpoint server with `/pub` (anonymous, CHUNK-sized chunks).
fn distpoint(site: &Site) -> Server {
    std::fs::create_dir_all(site.path("content/pub")).unwrap();
    site.start(&format!(
        "{}[[vpath]]\nurl = \"/pub\"\ndir = \"content/pub\"\nanonymous = true\nchunk_size = {CHUNK}\n",
        site.head()
    ))
}

/// Ranged requests in an nginx log, and the `If-Range` values they carried.
fn ranged(log: &[String]) -> (Vec<&String>, Vec<String>) {
    let lines: Vec<&String> = log.iter().filter(|l| l.starts_with("206 ")).collect();
    let tags = lines
        .iter()
        .filter_map(|l| l.rsplit('"').nth(1))
        .filter(|v| *v != "-")
        .map(str::to_string)
        .collect();
    (lines, tags)
}

fn bytes_of(line: &str) -> usize {
    line.split(' ').nth(1).unwrap().parse().unwrap()
}

#[test]
fn nginx_is_a_plain_mirror_with_validators_of_its_own() {
    let site = Site::new();
    let body = data(CHUNK * 256 + 77, 1);
    site.file("mirror/pub/app.bin", &body);
    site.file("content/pub/app.bin", &body);
    let (manifest, root) = manifest_file(&site, "app.manifest.json", &body);
    let server = distpoint(&site);

    // nginx's own ETag (`"mtime-size"`): first answers teach it, later
    // requests send it back in If-Range.
    let tagged = Nginx::start(&site, &site.path("mirror"), "");
    let out = site.path("a.bin");
    let r = fetch(
        &site,
        &[
            &tagged.url("pub/app.bin"),
            "-o",
            s(&out),
            "--manifest",
            s(&manifest),
            "--expect",
            &root,
            "--connections",
            "2",
            "--http1",
        ],
    );
    assert_eq!(r.code, 0, "{}", r.err);
    assert_eq!(std::fs::read(&out).unwrap(), body, "byte-identical");
    assert!(!r.err.contains("trusting"), "{}", r.err);
    let src = &r.json["sources"][0];
    assert_eq!(src["dropped"], false, "{}", r.json);
    assert_eq!(src["chunks"], 257, "{}", r.json);
    assert_eq!(src["protocol"], "HTTP/1.1", "{}", r.json);
    let log = tagged.wait_log(257, Duration::from_secs(10));
    let (lines, tags) = ranged(&log);
    assert_eq!(lines.len(), 257, "one request per chunk: {log:?}");
    assert!(log.iter().all(|l| l.starts_with("206 ")), "{log:?}");
    assert!(
        tags.len() >= 255,
        "If-Range after the first answers: {log:?}"
    );
    let tag = &tags[0];
    assert!(tags.iter().all(|t| t == tag), "one validator: {tags:?}");
    // nginx logs the quotes of the tag as \x22.
    assert!(
        tag.starts_with("\\x22") && tag.contains('-'),
        "nginx's ETag: {tag}"
    );

    // No ETag at all: Last-Modified is the validator. The manifest comes
    // from another server (distpoint's ?manifest), the bytes from nginx, in
    // runs of chunks on one HTTP/2 connection.
    let dated = Nginx::start(&site, &site.path("mirror"), "etag off;");
    let out = site.path("b.bin");
    let r = fetch(
        &site,
        &[
            &dated.url("pub/app.bin"),
            "-o",
            s(&out),
            "--manifest",
            &server.url("/pub/app.bin?manifest"),
            "--expect",
            &root,
            "--connections",
            "1",
            "--http2",
        ],
    );
    assert_eq!(r.code, 0, "{}", r.err);
    assert_eq!(std::fs::read(&out).unwrap(), body);
    let src = &r.json["sources"][0];
    assert_eq!(src["protocol"], "HTTP/2", "{}", r.json);
    let requests = src["requests"].as_u64().unwrap() as usize;
    assert!(
        requests < 20,
        "runs of chunks, not one request each: {}",
        r.json
    );
    let log = dated.wait_log(requests, Duration::from_secs(10));
    let (lines, tags) = ranged(&log);
    assert_eq!(lines.len(), requests, "{log:?}");
    assert_eq!(lines.iter().map(|l| bytes_of(l)).sum::<usize>(), body.len());
    assert_eq!(tags.len(), requests - 1, "{log:?}");
    assert!(tags.iter().all(|t| t.ends_with(" GMT")), "a date: {tags:?}");

    // Without --manifest, a plain server cannot be used: a clear error.
    let r = fetch(
        &site,
        &[&tagged.url("pub/app.bin"), "-o", s(&site.path("c.bin"))],
    );
    assert_eq!(r.code, 2, "{}", r.err);
    assert!(r.err.contains("--manifest"), "{}", r.err);
    assert!(!site.path("c.bin").exists());
}

/// Start a fetch limited to `rate` bytes/s; wait until its state lists at
/// least `min` chunks.
fn start_slow(site: &Site, args: &[&str], out: &Path, rate: &str, min: usize) -> Child {
    let child = Command::new(env!("CARGO_BIN_EXE_distpoint"))
        .arg("fetch")
        .args(args)
        .args(["-o", s(out), "--limit-rate", rate])
        .args(["--cacert", s(&site.path("certs/ca.crt"))])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let state = format!("{}.part.state", out.display());
    let end = Instant::now() + Duration::from_secs(30);
    while listed(&state).map_or(0, |v| v.len()) < min {
        assert!(Instant::now() < end, "the fetch never got that far");
        std::thread::sleep(Duration::from_millis(20));
    }
    child
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

#[test]
fn a_fetch_from_nginx_killed_half_way_resumes_from_another_nginx() {
    let site = Site::new();
    let body = data(CHUNK * 64, 2);
    site.file("mirror/app.bin", &body);
    let (manifest, root) = manifest_file(&site, "app.manifest.json", &body);
    let first = Nginx::start(&site, &site.path("mirror"), "");
    let out = site.path("app.bin");
    let m = ["--manifest", s(&manifest), "--expect", &root];
    let url = first.url("app.bin");
    let args = [&[url.as_str(), "--connections", "2"][..], &m[..]].concat();
    let mut child = start_slow(&site, &args, &out, "200000", 16);
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(
        !out.exists(),
        "nothing at PATH before the download is complete"
    );
    let done = listed(&format!("{}.part.state", out.display())).unwrap();
    assert!(done.len() < 64);
    assert!(!first.log().is_empty());

    // The rerun resumes from the work file; a second nginx (Last-Modified
    // only) serves exactly the chunks that are missing.
    let second = Nginx::start(&site, &site.path("mirror"), "etag off;");
    let url = second.url("app.bin");
    let r = fetch(
        &site,
        &[&[url.as_str(), "-o", s(&out)][..], &m[..]].concat(),
    );
    assert_eq!(r.code, 0, "{}", r.err);
    assert_eq!(
        std::fs::read(&out).unwrap(),
        body,
        "byte-identical after resuming"
    );
    let resumed = done.len() as u64;
    assert_eq!(r.json["chunks_resumed"], resumed, "{}", r.json);
    assert_eq!(r.json["chunks_fetched"], 64 - resumed, "{}", r.json);
    let asked = r.json["sources"][0]["requests"].as_u64().unwrap() as usize;
    let log = second.wait_log(asked, Duration::from_secs(10));
    let (lines, _) = ranged(&log);
    assert_eq!(lines.len(), asked, "{log:?}");
    let sent: usize = lines.iter().map(|l| bytes_of(l)).sum();
    assert_eq!(
        sent,
        (64 - resumed as usize) * CHUNK,
        "only the missing chunks"
    );
    assert!(!site.path("app.bin.part").exists());
    assert!(!site.path("app.bin.part.state").exists());
}

#[test]
fn one_of_three_sources_tampers_with_a_chunk_and_is_dropped_at_once() {
    let site = Site::new();
    let chunks = 512;
    let body = data(CHUNK * chunks, 3);
    site.file("content/pub/app.bin", &body);
    site.file("mirror/app.bin", &body);
    let root = hex(&FileManifest::compute(&body[..], CHUNK as u64).unwrap().root);
    let server = distpoint(&site);
    let nginx = Nginx::start(&site, &site.path("mirror"), "");
    // The liar serves good chunks, then spoils the one its 3rd request asks for.
    let mut l = mirror::lie(&body, body.clone(), CHUNK);
    l.tamper_request = Some(2);
    let liar = Arc::new(l);
    let liar_url = mirror::serve(&site, liar.clone(), "app.bin");
    let out = site.path("app.bin");
    let r = fetch(
        &site,
        &[
            &server.url("/pub/app.bin"),
            "--mirror",
            &nginx.url("app.bin"),
            "--mirror",
            &liar_url,
            "-o",
            s(&out),
            "--expect",
            &root,
            "--connections",
            "2",
        ],
    );
    assert_eq!(r.code, 0, "{}", r.err);
    assert_eq!(std::fs::read(&out).unwrap(), body, "byte-identical");
    let k = liar
        .tampered
        .lock()
        .unwrap()
        .unwrap_or_else(|| panic!("the liar got no 3rd request: {} {}", r.json, r.err));
    assert!(
        r.err.contains(&format!(
            "dropped source {liar_url}: chunk {k} does not match the manifest"
        )),
        "{}",
        r.err
    );
    let sources = r.json["sources"].as_array().unwrap();
    assert_eq!(sources.len(), 3);
    assert_eq!(sources[2]["dropped"], true, "{}", r.json);
    assert_eq!(sources[2]["drop_kind"], "bad_chunk", "{}", r.json);
    assert_eq!(sources[2]["chunks_refused"], 1, "{}", r.json);
    // Two good answers before the bad one; one of them may have been in
    // flight on its other connection, and abandoned with the source.
    assert!(sources[2]["chunks"].as_u64().unwrap() >= 1, "{}", r.json);
    for good in &sources[..2] {
        assert_eq!(good["dropped"], false, "{}", r.json);
        assert!(good["chunks"].as_u64().unwrap() > 0, "{}", r.json);
    }
    let total: u64 = sources.iter().map(|s| s["chunks"].as_u64().unwrap()).sum();
    assert_eq!(
        total, chunks as u64,
        "every chunk verified once: {}",
        r.json
    );
    // After its bad chunk, the liar got at most the requests that were
    // already on their way: one per connection it had open then.
    let (seen, open) = liar.at_bad.lock().unwrap().unwrap();
    let after = liar.requests.load(Ordering::SeqCst) - seen;
    assert!(
        after <= open,
        "{after} requests after the bad chunk, {open} connections open"
    );
}

#[test]
fn every_source_bad_at_the_same_chunk_exits_2_and_leaves_no_file() {
    let site = Site::new();
    let chunks = 32;
    let good = data(CHUNK * chunks, 4);
    let mut bad = good.clone();
    let k = 9;
    bad[k * CHUNK + 5] ^= 0x40;
    site.file("mirror/app.bin", &bad);
    let (manifest, root) = manifest_file(&site, "app.manifest.json", &good);
    let nginx = Nginx::start(&site, &site.path("mirror"), "");
    let liar_url = mirror::serve(&site, Arc::new(mirror::lie(&good, bad, CHUNK)), "app.bin");
    let out = site.path("app.bin");
    let r = fetch(
        &site,
        &[
            &nginx.url("app.bin"),
            "--mirror",
            &liar_url,
            "-o",
            s(&out),
            "--manifest",
            s(&manifest),
            "--expect",
            &root,
        ],
    );
    assert_eq!(r.code, 2, "{}", r.err);
    assert_eq!(r.json["chunk"], k as u64, "{}", r.json);
    assert!(
        r.err.contains(&format!("chunk {k} of {chunks}")),
        "{}",
        r.err
    );
    assert!(r.err.contains("does not match the manifest"), "{}", r.err);
    for url in [nginx.url("app.bin"), liar_url] {
        assert!(
            r.err.contains(&format!("dropped source {url}")),
            "{}",
            r.err
        );
    }
    assert!(!out.exists(), "nothing unverified at PATH");
    // The work file never holds the bad chunk: only verified chunks are written.
    if let Ok(part) = std::fs::read(site.path("app.bin.part")) {
        let c = &part[k * CHUNK..(k + 1) * CHUNK];
        assert!(c.iter().all(|&b| b == 0), "chunk {k} was written");
    }
}

#[test]
fn a_mirror_whose_file_changes_mid_run_is_dropped_and_the_others_finish() {
    let site = Site::new();
    let chunks = 128;
    let body = data(CHUNK * chunks, 5);
    site.file("content/pub/app.bin", &body);
    site.file("mirror/app.bin", &body);
    let root = hex(&FileManifest::compute(&body[..], CHUNK as u64).unwrap().root);
    let server = distpoint(&site);
    let nginx = Nginx::start(&site, &site.path("mirror"), "");
    let out = site.path("app.bin");
    let args = [
        server.url("/pub/app.bin"),
        "--mirror".into(),
        nginx.url("app.bin"),
        "--expect".into(),
        root,
        "--connections".into(),
        "2".into(),
        "--json".into(),
    ];
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let child = start_slow(&site, &args, &out, "400000", 16);
    // A new version on the mirror, put in place by rename as a publisher
    // would: nginx's ETag changes, so If-Range gets the whole new file (200).
    site.file("mirror/app.bin.new", &data(CHUNK * chunks - 1000, 6));
    std::fs::rename(site.path("mirror/app.bin.new"), site.path("mirror/app.bin")).unwrap();
    let o = wait_output(child, Duration::from_secs(60));
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(0), "{err}");
    assert_eq!(
        std::fs::read(&out).unwrap(),
        body,
        "the manifest's version, whole"
    );
    let v: serde_json::Value =
        serde_json::from_str(String::from_utf8_lossy(&o.stdout).trim()).unwrap();
    let mirror = &v["sources"][1];
    assert_eq!(mirror["drop_kind"], "changed", "{v}");
    assert!(
        err.contains(&format!("dropped source {}: ", nginx.url("app.bin"))),
        "{err}"
    );
    assert_eq!(v["sources"][0]["dropped"], false, "{v}");
    assert_eq!(v["restarts"], 0, "the primary did not change: no restart");
}

fn wait_output(child: Child, limit: Duration) -> std::process::Output {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    rx.recv_timeout(limit)
        .expect("the fetch finished in time")
        .unwrap()
}

#[test]
fn only_dead_sources_exit_3_naming_each() {
    let site = Site::new();
    let body = data(CHUNK * 4, 7);
    let (manifest, root) = manifest_file(&site, "app.manifest.json", &body);
    let dead = || {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        format!("https://127.0.0.1:{port}/app.bin")
    };
    let (a, b) = (dead(), dead());
    let out = site.path("app.bin");
    let t = Instant::now();
    let r = fetch(
        &site,
        &[
            &a,
            "--mirror",
            &b,
            "-o",
            s(&out),
            "--manifest",
            s(&manifest),
            "--expect",
            &root,
        ],
    );
    assert_eq!(r.code, 3, "{}", r.err);
    assert!(t.elapsed() < Duration::from_secs(30));
    for url in [&a, &b] {
        assert!(
            r.err.contains(&format!("dropped source {url}")),
            "{}",
            r.err
        );
    }
    assert!(r.err.contains("gave up after 6 attempts"), "{}", r.err);
    for src in r.json["sources"].as_array().unwrap() {
        assert_eq!(src["drop_kind"], "network", "{}", r.json);
    }
    assert!(!out.exists());
}
