//! `distpoint fetch` end to end against the real server: byte-identical
//! downloads, `--expect` checked before any content, authentication, clear
//! errors with the SPEC exit codes.

mod support;

use std::path::Path;
use std::process::Command;
use support::*;

const CHUNK: usize = 16 * 1024;

fn root_of(bytes: &[u8]) -> String {
    let m = distpoint::integrity::FileManifest::compute(bytes, CHUNK as u64).unwrap();
    distpoint::integrity::hex(&m.root)
}

struct Run {
    code: i32,
    out: String,
    err: String,
}

fn fetch(site: &Site, args: &[&str], password: Option<&str>) -> Run {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_distpoint"));
    cmd.arg("fetch")
        .args(args)
        .arg("--cacert")
        .arg(site.path("certs/ca.crt"));
    match password {
        Some(p) => cmd.env("DISTPOINT_PASSWORD", p),
        None => cmd.env_remove("DISTPOINT_PASSWORD"),
    };
    let out = cmd.output().unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        out: String::from_utf8_lossy(&out.stdout).into_owned(),
        err: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn config(site: &Site) -> String {
    std::fs::create_dir_all(site.path("content/pub")).unwrap();
    std::fs::create_dir_all(site.path("content/private")).unwrap();
    format!(
        "{}{}[groups]\nclients = [\"cert:client01\"]\n\
         [[vpath]]\nurl = \"/pub\"\ndir = \"content/pub\"\nanonymous = true\nchunk_size = {CHUNK}\n\
         [[vpath]]\nurl = \"/private\"\ndir = \"content/private\"\nallow = [\"user:alice\", \"group:clients\"]\nchunk_size = {CHUNK}\n",
        site.head(),
        site.user("alice")
    )
}

/// Access-log lines of requests for `path` (the log shows the path without the query).
fn requests_for(log: &str, path: &str) -> Vec<String> {
    let needle = format!("path={path} ");
    log.lines()
        .filter(|l| l.contains(&needle))
        .map(str::to_string)
        .collect()
}

/// A numeric `name=N` field of an access-log line.
fn field(line: &str, name: &str) -> usize {
    let key = format!(" {name}=");
    let at = line
        .find(&key)
        .unwrap_or_else(|| panic!("no {name} in {line}"))
        + key.len();
    line[at..]
        .split(|c: char| !c.is_ascii_digit())
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap()
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn good_files_arrive_byte_identical_over_both_protocols() {
    let site = Site::new();
    let body = data(CHUNK * 20 + 123, 1);
    site.file("content/pub/app.bin", &body);
    site.file("content/pub/empty.bin", b"");
    let server = site.start(&config(&site));
    let url = server.url("/pub/app.bin");
    let root = root_of(&body);
    let mut requests = 0;
    for (i, (proto, conns)) in [("--http1", "1"), ("--http2", "4"), ("--http1", "8")]
        .into_iter()
        .enumerate()
    {
        let out = site.path(&format!("dl/app{i}.bin"));
        std::fs::create_dir_all(out.parent().unwrap()).unwrap();
        let r = fetch(
            &site,
            &[
                &url,
                "-o",
                s(&out),
                "--expect",
                &root,
                "--connections",
                conns,
                proto,
                "--json",
            ],
            None,
        );
        assert_eq!(r.code, 0, "{}", r.err);
        assert_eq!(std::fs::read(&out).unwrap(), body, "byte-identical");
        let v: serde_json::Value = serde_json::from_str(r.out.trim()).expect("JSON summary");
        assert_eq!(v["ok"], true);
        assert_eq!(v["root"], root.as_str());
        assert_eq!(v["chunks"], 21);
        assert_eq!(v["chunks_fetched"], 21);
        assert_eq!(v["expected_root_checked"], true);
        let source = &v["sources"][0];
        assert_eq!(source["bytes"], body.len() as u64, "{v}");
        assert_eq!(source["chunks"], 21, "{v}");
        assert_eq!(source["dropped"], false, "{v}");
        let asked = source["requests"].as_u64().unwrap();
        if conns == "1" {
            // Alone, a connection asks for runs of chunks.
            assert!(asked < 21, "{v}");
        } else {
            // Several: one chunk per request, lowest first.
            assert_eq!(asked, 21, "{v}");
        }
        requests += asked as usize;
        assert!(!r.err.contains("trusting"), "{}", r.err);
        // Nothing left beside it.
        assert!(!site.path(&format!("dl/app{i}.bin.part")).exists());
        assert!(!site.path(&format!("dl/app{i}.bin.part.state")).exists());
    }
    // One manifest request per run, then ranged requests that cover every
    // chunk exactly once: the server sent each byte once per run.
    let ranged = |log: &str| {
        requests_for(log, "/pub/app.bin")
            .into_iter()
            .filter(|l| l.contains("status=206"))
            .collect::<Vec<_>>()
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while ranged(&server.log()).len() < requests && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let log = server.log();
    let reqs = requests_for(&log, "/pub/app.bin");
    let ranged = ranged(&log);
    assert_eq!(ranged.len(), requests, "{log}");
    assert_eq!(reqs.len(), requests + 3, "{log}");
    let sent: usize = ranged.iter().map(|l| field(l, "bytes")).sum();
    assert_eq!(sent, 3 * body.len(), "{log}");

    // Without --expect it says plainly that it trusts the server's manifest.
    let out = site.path("dl/plain.bin");
    let r = fetch(&site, &[&url, "-o", s(&out)], None);
    assert_eq!(r.code, 0, "{}", r.err);
    assert!(
        r.err
            .contains("no --expect given: trusting the server's own manifest"),
        "{}",
        r.err
    );
    assert!(
        r.out.contains("21 chunks verified") && r.out.contains(&root),
        "{}",
        r.out
    );
    assert_eq!(std::fs::read(&out).unwrap(), body);

    // An empty file: no chunks, no content request, an empty file.
    let out = site.path("dl/empty.bin");
    let r = fetch(
        &site,
        &[
            &server.url("/pub/empty.bin"),
            "-o",
            s(&out),
            "--expect",
            &root_of(b""),
        ],
        None,
    );
    assert_eq!(r.code, 0, "{}", r.err);
    assert_eq!(std::fs::read(&out).unwrap(), b"");
}

#[test]
fn a_wrong_expect_exits_2_before_any_content_request() {
    let site = Site::new();
    let body = data(CHUNK * 5, 2);
    site.file("content/pub/app.bin", &body);
    let server = site.start(&config(&site));
    let out = site.path("app.bin");
    let wrong = root_of(b"something else");
    let r = fetch(
        &site,
        &[
            &server.url("/pub/app.bin"),
            "-o",
            s(&out),
            "--expect",
            &wrong,
        ],
        None,
    );
    assert_eq!(r.code, 2, "{}", r.err);
    assert!(r.err.contains("does not match --expect"), "{}", r.err);
    assert!(r.err.contains("/pub/app.bin"), "{}", r.err);
    assert!(!out.exists());
    assert!(!site.path("app.bin.part").exists());
    // Once the server has closed the client's connections, its access log
    // is complete: the manifest was the only request for the file.
    server.wait_quiet(std::time::Duration::from_secs(10));
    let log = server.log();
    let reqs = requests_for(&log, "/pub/app.bin");
    assert_eq!(reqs.len(), 1, "{log}");
    assert!(!reqs[0].contains("status=206"));
    let manifest_len = distpoint::integrity::FileManifest::compute(&body[..], CHUNK as u64)
        .unwrap()
        .to_json()
        .len();
    assert!(
        reqs[0].contains(&format!("bytes={manifest_len} ")),
        "{}",
        reqs[0]
    );

    // A malformed --expect is a usage error.
    let r = fetch(
        &site,
        &[
            &server.url("/pub/app.bin"),
            "-o",
            s(&out),
            "--expect",
            "xyz",
        ],
        None,
    );
    assert_eq!(r.code, 1, "{}", r.err);
}

#[test]
fn basic_and_client_certificate_authentication() {
    let site = Site::new();
    let body = data(CHUNK * 3 + 5, 3);
    site.file("content/private/p.bin", &body);
    let server = site.start(&config(&site));
    let url = server.url("/private/p.bin");
    let root = root_of(&body);

    let out = site.path("a.bin");
    let r = fetch(
        &site,
        &[&url, "-o", s(&out), "--expect", &root, "--user", "alice"],
        Some(PASSWORD),
    );
    assert_eq!(r.code, 0, "{}", r.err);
    assert_eq!(std::fs::read(&out).unwrap(), body);
    assert!(!r.err.contains(PASSWORD) && !r.out.contains(PASSWORD));

    let cert = site.file("client.crt", site.pki.client.cert.as_bytes());
    let key = site.file("client.key", site.pki.client.key.as_bytes());
    let out = site.path("b.bin");
    let r = fetch(
        &site,
        &[
            &url,
            "-o",
            s(&out),
            "--expect",
            &root,
            "--cert",
            s(&cert),
            "--key",
            s(&key),
        ],
        None,
    );
    assert_eq!(r.code, 0, "{}", r.err);
    assert_eq!(std::fs::read(&out).unwrap(), body);

    // No credentials: 401 at once (no retries), exit 3, a clear line.
    let out = site.path("c.bin");
    let t = std::time::Instant::now();
    let r = fetch(&site, &[&url, "-o", s(&out)], None);
    assert_eq!(r.code, 3, "{}", r.err);
    assert!(r.err.contains("HTTP 401"), "{}", r.err);
    assert!(t.elapsed() < std::time::Duration::from_secs(5));
    assert!(!out.exists());
    // Wrong password: 401; the password never shows.
    let r = fetch(
        &site,
        &[&url, "-o", s(&out), "--user", "alice"],
        Some("wrong horse"),
    );
    assert_eq!(r.code, 3);
    assert!(!r.err.contains("wrong horse"));
    // --user without the password in the environment is a usage error.
    let r = fetch(&site, &[&url, "-o", s(&out), "--user", "alice"], None);
    assert_eq!(r.code, 1, "{}", r.err);
    assert!(r.err.contains("DISTPOINT_PASSWORD"), "{}", r.err);
}

#[test]
fn clear_errors_for_missing_files_bad_destinations_and_untrusted_servers() {
    let site = Site::new();
    site.file("content/pub/app.bin", &data(1000, 4));
    let server = site.start(&config(&site));

    let r = fetch(
        &site,
        &[&server.url("/pub/nope.bin"), "-o", s(&site.path("x"))],
        None,
    );
    assert_eq!(r.code, 3, "{}", r.err);
    assert!(
        r.err.contains("HTTP 404") && r.err.contains("/pub/nope.bin"),
        "{}",
        r.err
    );

    // An unusable destination is refused before any request.
    let before = requests_for(&server.log(), "/pub/app.bin").len();
    let r = fetch(
        &site,
        &[
            &server.url("/pub/app.bin"),
            "-o",
            s(&site.path("no/such/dir/x")),
        ],
        None,
    );
    assert_eq!(r.code, 1, "{}", r.err);
    assert!(r.err.contains("no/such/dir"), "{}", r.err);
    server.wait_quiet(std::time::Duration::from_secs(10));
    assert_eq!(requests_for(&server.log(), "/pub/app.bin").len(), before);

    // A server whose certificate does not chain to --cacert: TLS error, exit 3, no retries.
    let other = distpoint::devcerts::DevCa::new("other CA").unwrap();
    let ca = site.file("other-ca.crt", other.cert_pem().as_bytes());
    let out = Command::new(env!("CARGO_BIN_EXE_distpoint"))
        .args([
            "fetch",
            &server.url("/pub/app.bin"),
            "-o",
            s(&site.path("y")),
            "--cacert",
            s(&ca),
        ])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(err.contains("TLS"), "{err}");

    // Plain http:// is refused.
    let r = fetch(
        &site,
        &["http://127.0.0.1:1/x", "-o", s(&site.path("z"))],
        None,
    );
    assert_eq!(r.code, 1, "{}", r.err);
}
