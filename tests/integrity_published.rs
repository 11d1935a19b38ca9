//! `integrity = "published"`: `distpoint publish`, signatures made and
//! checked with OpenSSL-format keys, tampering caught before a bad chunk is
//! sent, quarantine, and recovery.

mod support;

use distpoint::transfer::Protocol;
use sha2::{Digest, Sha256};
use std::path::Path;
use std::process::Command;
use std::time::Duration;
use support::*;

const CHUNK: usize = 4096;

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn data(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u32).wrapping_mul(31).wrapping_add(seed as u32) as u8 ^ (i >> 8) as u8)
        .collect()
}

fn distpoint(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_distpoint"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn openssl(args: &[&str]) -> (bool, Vec<u8>) {
    let out = Command::new("openssl").args(args).output().unwrap();
    (out.status.success(), out.stdout)
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn publish(site: &Site, key: Option<&Path>) -> String {
    let dir = site.path("content/pkg");
    let mut args = vec!["publish", s(&dir), "--chunk-size", "4096"];
    if let Some(k) = key {
        args.extend(["--key", s(k)]);
    }
    let (ok, out, err) = distpoint(&args);
    assert!(ok, "publish failed: {err}");
    out
}

fn config(site: &Site, keys: &[&Path]) -> String {
    let keys: Vec<String> = keys.iter().map(|k| format!("{:?}", s(k))).collect();
    format!(
        "{}[[vpath]]\nurl = \"/pkg\"\ndir = \"content/pkg\"\nanonymous = true\nintegrity = \"published\"\n\
         publisher_keys = [{}]\n\
         [[vpath]]\nurl = \"/other\"\ndir = \"content/other\"\nanonymous = true\n",
        site.head(),
        keys.join(", ")
    )
}

#[test]
fn publish_writes_the_spec_manifest_and_an_openssl_compatible_signature() {
    let site = Site::new();
    let a = data(5 * CHUNK + 10, 1);
    site.file("content/pkg/a.bin", &a);
    site.file("content/pkg/sub/b.txt", b"hello\n");
    site.file("content/pkg/empty", b"");
    site.file("content/pkg/.hidden", b"not listed");
    // A key pair made by distpoint must be what OpenSSL makes and reads.
    let key = site.path("publisher.key");
    let (ok, _, err) = distpoint(&["publish", "--gen-key", s(&key)]);
    assert!(ok, "{err}");
    let (ok, public) = openssl(&["pkey", "-in", s(&key), "-pubout"]);
    assert!(ok);
    assert_eq!(
        public,
        std::fs::read(site.path("publisher.key.pub")).unwrap()
    );

    let out = publish(&site, Some(&key));
    let manifest_path = site.path("content/pkg/.distpoint/manifest.json");
    let bytes = std::fs::read(&manifest_path).unwrap();
    assert!(
        out.contains(&format!("package {}", hex(&Sha256::digest(&bytes)))),
        "{out}"
    );
    let j: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(j["version"], 1);
    assert_eq!(j["chunk_size"], CHUNK as u64);
    let files = j["files"].as_object().unwrap();
    let names: Vec<&str> = files.keys().map(String::as_str).collect();
    assert_eq!(names, ["a.bin", "empty", "sub/b.txt"]);
    let e = &files["a.bin"];
    let digests: Vec<Vec<u8>> = a
        .chunks(CHUNK)
        .map(|c| Sha256::digest(c).to_vec())
        .collect();
    let root = hex(&Sha256::digest(digests.concat()));
    assert_eq!(e["root"], root.as_str());
    assert_eq!(e["sha256"], hex(&Sha256::digest(&a)).as_str());
    assert_eq!(e["size"], a.len() as u64);
    assert_eq!(e["chunks"].as_array().unwrap().len(), 6);
    assert!(out.contains(&format!("{root}  a.bin")), "{out}");
    assert_eq!(files["empty"]["root"], hex(&Sha256::digest(b"")).as_str());

    let sig = site.path("content/pkg/.distpoint/manifest.json.sig");
    assert_eq!(std::fs::read(&sig).unwrap().len(), 64);
    let (ok, _) = openssl(&[
        "pkeyutl",
        "-verify",
        "-pubin",
        "-inkey",
        s(&site.path("publisher.key.pub")),
        "-rawin",
        "-in",
        s(&manifest_path),
        "-sigfile",
        s(&sig),
    ]);
    assert!(ok, "openssl does not verify the signature");
}

#[tokio::test]
async fn tampered_chunk_is_never_sent_and_the_file_is_quarantined_until_restored() {
    let site = Site::new();
    let a = data(8 * CHUNK, 2);
    let path = site.file("content/pkg/a.bin", &a);
    site.file("content/other/x", b"x");
    publish(&site, None);
    site.file("content/pkg/unlisted.bin", b"added after publishing");
    let server = site.start(&config(&site, &[]));
    let tls = site.tls(false, &[Protocol::Http1]);
    let url = server.url("/pkg/a.bin");

    let got = fetch(&server, tls.clone(), req("GET", &url)).await;
    assert_eq!((got.status, got.body == a), (200, true));
    let got = fetch(&server, tls.clone(), req("GET", &url)).await;
    assert_eq!((got.status, got.body == a), (200, true), "from the cache");
    let got = fetch(
        &server,
        tls.clone(),
        req("GET", &server.url("/pkg/unlisted.bin")),
    )
    .await;
    assert_eq!(got.status, 404, "only listed files are served");
    let got = fetch(
        &server,
        tls.clone(),
        req("GET", &server.url("/pkg/?manifest")),
    )
    .await;
    assert_eq!(
        got.body,
        std::fs::read(site.path("content/pkg/.distpoint/manifest.json")).unwrap()
    );
    let got = fetch(
        &server,
        tls.clone(),
        req("GET", &server.url("/pkg/?signature")),
    )
    .await;
    assert_eq!(got.status, 404, "unsigned package has no signature");

    // Chunk 3 changes, size and mtime restored. The server holds every chunk
    // as it hashed it: it goes on sending exactly the published bytes.
    tamper(&path, 3 * CHUNK + 100, b"EVIL");
    let got = fetch(&server, tls.clone(), req("GET", &url)).await;
    assert_eq!((got.status, got.cut, got.body == a), (200, false, true));
    assert!(!server.log().contains("integrity failure"));

    // Without the verified chunks in memory, the disk is read, and the
    // tampered chunk is found.
    server.terminate();
    let no_cache =
        config(&site, &[]).replacen("[server]\n", "[server]\nchunk_cache_bytes = 0\n", 1);
    let server = site.start(&no_cache);
    let url = server.url("/pkg/a.bin");
    // Before the mismatch is known, a range in an intact chunk is served:
    // every chunk that is sent has been verified.
    let got = fetch(
        &server,
        tls.clone(),
        req("GET", &url).header("range", "bytes=0-99"),
    )
    .await;
    assert_eq!((got.status, &got.body[..]), (206, &a[..100]));

    if let Some(got) = fetch_cut(&server, tls.clone(), req("GET", &url)).await {
        assert_eq!(got.status, 200, "chunk 0 is fine, so the headers go out");
        assert!(got.cut, "the response must be cut");
        assert!(got.body.len() <= 3 * CHUNK, "no byte of chunk 3 was sent");
        assert_eq!(got.body, a[..got.body.len()]);
    }
    assert!(server.wait_log("integrity failure", Duration::from_secs(5)));
    let log = server.log();
    assert!(log.contains("chunk=3") && log.contains("a.bin"), "{log}");

    // Quarantined: 503 with a plain message and a header naming the bad
    // chunk, for ranges in intact chunks too, and for HEAD and `?manifest`.
    for (method, range, query) in [
        ("GET", None, ""),
        ("GET", Some("bytes=0-99"), ""),
        ("GET", Some("bytes=12300-12400"), ""),
        ("HEAD", None, ""),
        ("GET", None, "?manifest"),
    ] {
        let mut r = req(method, &format!("{url}{query}"));
        if let Some(v) = range {
            r = r.header("range", v);
        }
        let got = fetch(&server, tls.clone(), r).await;
        assert_eq!(got.status, 503, "{method} {range:?} {query}");
        assert_eq!(
            got.headers["distpoint-integrity"], "quarantined; chunk=3",
            "{method} {range:?} {query}"
        );
        if method == "GET" {
            assert!(String::from_utf8_lossy(&got.body).contains("quarantined"));
        }
    }
    let got = fetch(&server, tls.clone(), req("GET", &server.url("/other/x"))).await;
    assert_eq!(got.status, 200, "other paths are unaffected");

    // Restore the bytes: the file matches again and is served.
    tamper(&path, 3 * CHUNK + 100, &a[3 * CHUNK + 100..3 * CHUNK + 104]);
    let got = fetch(&server, tls.clone(), req("GET", &url)).await;
    assert_eq!((got.status, got.cut, got.body == a), (200, false, true));
    assert!(server.log().contains("quarantine lifted"));

    // A range inside a tampered chunk is refused before any header (HTTP/2 too).
    tamper(&path, 5 * CHUNK, b"EVIL");
    let tls2 = site.tls(false, &[Protocol::Http2]);
    let got = fetch(
        &server,
        tls2.clone(),
        req("GET", &url).header("range", "bytes=20490-20500"),
    )
    .await;
    assert_eq!(got.status, 503);
    assert_eq!(
        got.headers["distpoint-integrity"], "quarantined; chunk=5",
        "the 503 sent before any header names the chunk too"
    );
    // HTTP/2: a mismatch after the headers resets the stream.
    tamper(&path, 5 * CHUNK, &a[5 * CHUNK..5 * CHUNK + 4]);
    let got = fetch(&server, tls2.clone(), req("GET", &url)).await;
    assert_eq!((got.status, got.body == a), (200, true));
    tamper(&path, 6 * CHUNK, b"EVIL");
    if let Some(got) = fetch_cut(&server, tls2, req("GET", &url)).await {
        assert!(got.cut && got.body.len() <= 6 * CHUNK && got.body == a[..got.body.len()]);
    }
    assert!(server.wait_log("chunk=6", Duration::from_secs(5)));
}

#[tokio::test]
async fn quarantine_survives_a_restart() {
    let site = Site::new();
    let a = data(4 * CHUNK, 4);
    let path = site.file("content/pkg/a.bin", &a);
    site.file("content/other/x", b"x");
    publish(&site, None);
    tamper(&path, 2 * CHUNK, b"EVIL");
    let tls = site.tls(false, &[Protocol::Http1]);
    {
        let server = site.start(&config(&site, &[]));
        let got = fetch_cut(&server, tls.clone(), req("GET", &server.url("/pkg/a.bin"))).await;
        assert!(got.is_none_or(|g| g.cut && g.body.len() <= 2 * CHUNK));
        assert!(server.wait_log("integrity failure", Duration::from_secs(5)));
        server.terminate();
    }
    let saved = std::fs::read_to_string(site.path("state/quarantine.json")).unwrap();
    assert!(saved.contains(r#""chunk":2"#), "{saved}");
    let server = site.start(&config(&site, &[]));
    let got = fetch(
        &server,
        tls,
        req("GET", &server.url("/pkg/a.bin")).header("range", "bytes=0-99"),
    )
    .await;
    assert_eq!(got.status, 503, "still quarantined after the restart");
    assert_eq!(
        got.headers["distpoint-integrity"], "quarantined; chunk=2",
        "the chunk comes from the persisted record"
    );
}

#[tokio::test]
async fn a_quarantine_record_without_a_chunk_still_loads_and_a_wrong_size_names_none() {
    let site = Site::new();
    let a = data(4 * CHUNK, 6);
    let path = site.file("content/pkg/a.bin", &a);
    let short = site.file("content/pkg/b.bin", &data(3 * CHUNK, 7));
    site.file("content/other/x", b"x");
    publish(&site, None);
    tamper(&path, CHUNK, b"EVIL");
    let tls = site.tls(false, &[Protocol::Http1]);
    let ranged =
        |server: &Server| req("GET", &server.url("/pkg/a.bin")).header("range", "bytes=0-99");
    {
        let server = site.start(&config(&site, &[]));
        let got = fetch(&server, tls.clone(), ranged(&server)).await;
        assert_eq!(got.status, 206, "chunk 0 is intact: sent");
        let got = fetch(
            &server,
            tls.clone(),
            req("GET", &server.url("/pkg/a.bin")).header("range", "bytes=5000-5099"),
        )
        .await;
        assert_eq!(got.status, 503);
        assert_eq!(got.headers["distpoint-integrity"], "quarantined; chunk=1");
        server.terminate();
    }
    // Make the record look like one written before the chunk index was kept.
    let file = site.path("state/quarantine.json");
    let mut saved: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    for r in saved.as_array_mut().unwrap() {
        assert_eq!(r["chunk"], 1, "{r}");
        r.as_object_mut().unwrap().remove("chunk");
    }
    std::fs::write(&file, serde_json::to_vec(&saved).unwrap()).unwrap();
    // b.bin is cut short: a wrong size names no chunk.
    std::fs::File::options()
        .write(true)
        .open(&short)
        .unwrap()
        .set_len(2 * CHUNK as u64)
        .unwrap();
    let server = site.start(&config(&site, &[]));
    let got = fetch(&server, tls.clone(), ranged(&server)).await;
    assert_eq!(got.status, 503, "the old record still quarantines");
    assert_eq!(got.headers["distpoint-integrity"], "quarantined");
    let got = fetch(&server, tls, req("GET", &server.url("/pkg/b.bin"))).await;
    assert_eq!(got.status, 503);
    assert_eq!(got.headers["distpoint-integrity"], "quarantined");
}

#[tokio::test]
async fn signature_must_verify_with_a_publisher_key() {
    let site = Site::new();
    let a = data(3 * CHUNK, 3);
    site.file("content/pkg/a.bin", &a);
    site.file("content/other/x", b"x");
    let key = site.path("k.pem");
    let public = site.path("k.pub");
    assert!(openssl(&["genpkey", "-algorithm", "ed25519", "-out", s(&key)]).0);
    assert!(openssl(&["pkey", "-in", s(&key), "-pubout", "-out", s(&public)]).0);
    publish(&site, Some(&key));
    let server = site.start(&config(&site, &[&public]));
    let tls = site.tls(false, &[Protocol::Http1]);
    let url = server.url("/pkg/a.bin");
    let got = fetch(&server, tls.clone(), req("GET", &url)).await;
    assert_eq!(
        (got.status, got.body == a),
        (200, true),
        "good signature serves"
    );
    let sig_path = site.path("content/pkg/.distpoint/manifest.json.sig");
    let got = fetch(
        &server,
        tls.clone(),
        req("GET", &server.url("/pkg/?signature")),
    )
    .await;
    assert_eq!(got.body, std::fs::read(&sig_path).unwrap());

    // A bad signature makes the whole path 503, logged; other paths serve.
    let mut sig = std::fs::read(&sig_path).unwrap();
    sig[10] ^= 1;
    std::fs::write(&sig_path, &sig).unwrap();
    for u in ["/pkg/a.bin", "/pkg/a.bin?manifest", "/pkg/?manifest"] {
        let got = fetch(&server, tls.clone(), req("GET", &server.url(u))).await;
        assert_eq!(got.status, 503, "{u}");
    }
    assert!(server.wait_log("published path unavailable", Duration::from_secs(5)));
    let got = fetch(&server, tls.clone(), req("GET", &server.url("/other/x"))).await;
    assert_eq!(got.status, 200);

    // Missing signature: still 503. Re-signing fixes it without a restart.
    std::fs::remove_file(&sig_path).unwrap();
    let got = fetch(&server, tls.clone(), req("GET", &url)).await;
    assert_eq!(got.status, 503);
    publish(&site, Some(&key));
    let got = fetch(&server, tls.clone(), req("GET", &url)).await;
    assert_eq!((got.status, got.body == a), (200, true));

    // Signed by someone else: 503.
    let other = site.path("other.pem");
    assert!(openssl(&["genpkey", "-algorithm", "ed25519", "-out", s(&other)]).0);
    publish(&site, Some(&other));
    let got = fetch(&server, tls, req("GET", &url)).await;
    assert_eq!(got.status, 503);
}

#[test]
fn a_publisher_key_that_does_not_parse_is_a_config_error_at_the_key() {
    let site = Site::new();
    site.file("content/pkg/a.bin", b"a");
    site.file("content/other/x", b"x");
    let bad = site.file(
        "bad.pub",
        b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n",
    );
    let body = config(&site, &[&bad]);
    let line = body
        .lines()
        .position(|l| l.starts_with("publisher_keys"))
        .unwrap()
        + 1;
    let cfg = site.config(&body);
    let (ok, _, err) = distpoint(&["check-config", "--config", s(&cfg)]);
    assert!(!ok);
    let at = format!("distpoint.toml:{line}:19: publisher key");
    assert!(
        err.contains(&at) && err.contains("not an Ed25519 key"),
        "{err}"
    );
}

#[tokio::test]
async fn a_missing_manifest_makes_only_that_path_503() {
    let site = Site::new();
    site.file("content/pkg/a.bin", b"never published");
    site.file("content/other/x", b"x");
    let server = site.start(&config(&site, &[]));
    let tls = site.tls(false, &[Protocol::Http2]);
    let got = fetch(&server, tls.clone(), req("GET", &server.url("/pkg/a.bin"))).await;
    assert_eq!(got.status, 503);
    let got = fetch(&server, tls.clone(), req("HEAD", &server.url("/pkg/a.bin"))).await;
    assert_eq!(got.status, 503);
    assert!(server.wait_log("published path unavailable", Duration::from_secs(5)));
    let got = fetch(&server, tls.clone(), req("GET", &server.url("/other/x"))).await;
    assert_eq!((got.status, &got.body[..]), (200, &b"x"[..]));
    // Publishing takes effect without a restart.
    publish(&site, None);
    let got = fetch(&server, tls, req("GET", &server.url("/pkg/a.bin"))).await;
    assert_eq!((got.status, &got.body[..]), (200, &b"never published"[..]));
}
