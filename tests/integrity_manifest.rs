//! `?manifest`, ETag/Repr-Digest, verified ranges and persisted manifests in
//! `auto` mode, checked against a computation made here from the bytes.

mod support;

use base64::Engine;
use distpoint::transfer::Protocol;
use sha2::{Digest, Sha256};
use support::*;

const CHUNK: usize = 4096;

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// (sha256 hex, root hex, chunk hexes) computed independently of the server.
fn expected(data: &[u8], chunk: usize) -> (String, String, Vec<String>) {
    let digests: Vec<[u8; 32]> = data
        .chunks(chunk)
        .map(|c| Sha256::digest(c).into())
        .collect();
    let mut root = Sha256::new();
    for d in &digests {
        root.update(d);
    }
    (
        hex(&Sha256::digest(data)),
        hex(&root.finalize()),
        digests.iter().map(|d| hex(d)).collect(),
    )
}

fn data(len: usize, seed: u32) -> Vec<u8> {
    let mut x = seed.wrapping_mul(2654435761).max(1);
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

fn config(site: &Site, extra: &str) -> String {
    format!(
        "{}{}[[vpath]]\nurl = \"/pub\"\ndir = \"content/pub\"\nanonymous = true\nchunk_size = {CHUNK}\n{extra}\
         [[vpath]]\nurl = \"/private\"\ndir = \"content/pub\"\nallow = [\"user:alice\"]\nchunk_size = {CHUNK}\n",
        site.head(),
        site.user("alice")
    )
}

#[tokio::test]
async fn manifest_matches_an_independent_computation() {
    let site = Site::new();
    let big = data(10 * CHUNK + 123, 1);
    site.file("content/pub/big.bin", &big);
    site.file("content/pub/empty.bin", b"");
    site.file("content/pub/exact.bin", &data(2 * CHUNK, 2));
    let server = site.start(&config(&site, ""));
    let tls = site.tls(false, &[Protocol::Http1]);
    for (name, content) in [
        ("big.bin", big.clone()),
        ("empty.bin", vec![]),
        ("exact.bin", data(2 * CHUNK, 2)),
    ] {
        let got = fetch(
            &server,
            tls.clone(),
            req("GET", &server.url(&format!("/pub/{name}?manifest"))),
        )
        .await;
        assert_eq!(got.status, 200, "{name}");
        assert_eq!(got.header("content-type"), Some("application/json"));
        let j: serde_json::Value = serde_json::from_slice(&got.body).unwrap();
        let (sha, root, chunks) = expected(&content, CHUNK);
        assert_eq!(j["size"], content.len() as u64, "{name}");
        assert_eq!(j["chunk_size"], CHUNK as u64);
        assert_eq!(j["sha256"], sha.as_str(), "{name}");
        assert_eq!(j["root"], root.as_str(), "{name}");
        let listed: Vec<String> = j["chunks"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c.as_str().unwrap().to_string())
            .collect();
        assert_eq!(listed, chunks, "{name}");

        // The file itself: ETag from the root, Repr-Digest of the whole file.
        let got = fetch(
            &server,
            tls.clone(),
            req("GET", &server.url(&format!("/pub/{name}"))),
        )
        .await;
        assert_eq!(got.status, 200);
        assert_eq!(got.body, content);
        let etag = format!("\"{}\"", &root[..32]);
        assert_eq!(got.header("etag"), Some(etag.as_str()));
        let digest = base64::engine::general_purpose::STANDARD.encode(Sha256::digest(&content));
        assert_eq!(
            got.header("repr-digest"),
            Some(format!("sha-256=:{digest}:").as_str())
        );
    }
}

#[tokio::test]
async fn manifest_has_the_files_access_rules() {
    let site = Site::new();
    site.file("content/pub/a.bin", &data(5000, 3));
    let server = site.start(&config(&site, ""));
    let tls = site.tls(false, &[Protocol::Http2]);
    let got = fetch(
        &server,
        tls.clone(),
        req("GET", &server.url("/private/a.bin?manifest")),
    )
    .await;
    assert_eq!(got.status, 401);
    let got = fetch(
        &server,
        tls.clone(),
        req("GET", &server.url("/private/a.bin?manifest"))
            .header("authorization", basic("alice", PASSWORD)),
    )
    .await;
    assert_eq!(got.status, 200);
    let got = fetch(
        &server,
        tls.clone(),
        req("GET", &server.url("/pub/missing.bin?manifest")),
    )
    .await;
    assert_eq!(got.status, 404);
    // A trailing '/' is for published paths' package manifest only.
    let got = fetch(&server, tls, req("GET", &server.url("/pub/?manifest"))).await;
    assert_eq!(got.status, 404);
}

#[tokio::test]
async fn ranges_inside_and_across_chunks_are_exact() {
    let site = Site::new();
    let content = data(6 * CHUNK + 17, 4);
    site.file("content/pub/r.bin", &content);
    for verify in ["cached", "always"] {
        let server = site.start(&config(&site, &format!("verify = \"{verify}\"\n")));
        for proto in [Protocol::Http1, Protocol::Http2] {
            let tls = site.tls(false, &[proto]);
            for (a, b) in [
                (1, 2),
                (100, 3 * CHUNK + 5),
                (CHUNK, 2 * CHUNK - 1),
                (6 * CHUNK, 6 * CHUNK + 16),
            ] {
                let got = fetch(
                    &server,
                    tls.clone(),
                    req("GET", &server.url("/pub/r.bin")).header("range", format!("bytes={a}-{b}")),
                )
                .await;
                assert_eq!(got.status, 206, "{verify} {a}-{b}");
                assert_eq!(got.body, &content[a..=b], "{verify} {a}-{b}");
                assert!(!got.cut);
            }
            let got = fetch(
                &server,
                tls.clone(),
                req("GET", &server.url("/pub/r.bin")).header("range", "bytes=0-9,5000-5009"),
            )
            .await;
            assert_eq!(got.status, 206);
            let text = String::from_utf8_lossy(&got.body);
            assert!(text.contains("Content-Range: bytes 5000-5009/"), "{text}");
        }
    }
}

#[tokio::test]
async fn conditionals_use_the_root_etag() {
    let site = Site::new();
    site.file("content/pub/c.bin", &data(5000, 6));
    let server = site.start(&config(&site, ""));
    let tls = site.tls(false, &[Protocol::Http1]);
    let got = fetch(&server, tls.clone(), req("HEAD", &server.url("/pub/c.bin"))).await;
    let etag = got.header("etag").unwrap().to_string();
    assert!(got.header("repr-digest").is_some());
    let got = fetch(
        &server,
        tls,
        req("GET", &server.url("/pub/c.bin")).header("if-none-match", &etag),
    )
    .await;
    assert_eq!(got.status, 304);
}
