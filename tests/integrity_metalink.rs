//! `?metalink`: a Metalink 4 document aria2c downloads through, checking
//! every piece.

mod support;

use distpoint::transfer::Protocol;
use sha2::{Digest, Sha256};
use std::process::Command;
use support::*;

const CHUNK: usize = 16 << 10;

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn config(site: &Site) -> String {
    format!(
        "{}[[vpath]]\nurl = \"/pub\"\ndir = \"content/pub\"\nanonymous = true\nchunk_size = {CHUNK}\n",
        site.head()
    )
}

#[tokio::test]
async fn metalink_lists_size_hash_pieces_and_this_servers_url() {
    let site = Site::new();
    let content: Vec<u8> = (0..5 * CHUNK + 3).map(|i| (i * 7 % 256) as u8).collect();
    site.file("content/pub/a&b.bin", &content);
    let server = site.start(&config(&site));
    let got = fetch(
        &server,
        site.tls(false, &[Protocol::Http2]),
        req("GET", &server.url("/pub/a%26b.bin?metalink")),
    )
    .await;
    assert_eq!(got.status, 200);
    assert_eq!(
        got.header("content-type"),
        Some("application/metalink4+xml")
    );
    let doc = String::from_utf8(got.body.clone()).unwrap();
    assert!(doc.contains("<file name=\"a&amp;b.bin\">"), "{doc}");
    assert!(doc.contains(&format!("<size>{}</size>", content.len())));
    assert!(doc.contains(&format!(
        "<hash type=\"sha-256\">{}</hash>",
        hex(&Sha256::digest(&content))
    )));
    assert!(doc.contains(&format!("<pieces type=\"sha-256\" length=\"{CHUNK}\">")));
    for c in content.chunks(CHUNK) {
        assert!(doc.contains(&format!("<hash>{}</hash>", hex(&Sha256::digest(c)))));
    }
    assert!(doc.contains(&format!("<url>https://{}/pub/a%26b.bin</url>", server.addr)));
    // Saved under its own name by a client that stores what it gets.
    assert_eq!(
        got.header("content-disposition"),
        Some("attachment; filename=\"a&b.bin.meta4\"")
    );

    // The client's Host header never becomes the URL in the document.
    let spoofed = http::Request::builder()
        .uri("/pub/a%26b.bin?metalink")
        .header(http::header::HOST, "evil.example");
    let got = fetch(&server, site.tls(false, &[Protocol::Http1]), spoofed).await;
    let doc = String::from_utf8(got.body).unwrap();
    assert!(!doc.contains("evil.example"), "{doc}");
    assert!(doc.contains(&format!("<url>https://{}/pub/a%26b.bin</url>", server.addr)));

    // The configured public name when there is one.
    let named = config(&site).replacen(
        "[server]\n",
        "[server]\npublic_url = \"https://dp.example.org:8443/\"\n",
        1,
    );
    server.terminate();
    let server = site.start(&named);
    let got = fetch(
        &server,
        site.tls(false, &[Protocol::Http2]),
        req("GET", &server.url("/pub/a%26b.bin?metalink")),
    )
    .await;
    let doc = String::from_utf8(got.body).unwrap();
    assert!(
        doc.contains("<url>https://dp.example.org:8443/pub/a%26b.bin</url>"),
        "{doc}"
    );
}

#[tokio::test]
async fn aria2c_downloads_through_the_metalink_and_gets_an_identical_file() {
    let site = Site::new();
    let content: Vec<u8> = (0..40 * CHUNK + 1000).map(|i| (i % 253) as u8).collect();
    site.file("content/pub/pkg.bin", &content);
    let server = site.start(&config(&site));
    let out = site.path("download");
    std::fs::create_dir_all(&out).unwrap();
    let status = Command::new("aria2c")
        .arg(format!(
            "--ca-certificate={}",
            site.path("certs/ca.crt").display()
        ))
        .arg(format!("--dir={}", out.display()))
        .args([
            "--follow-metalink=mem",
            "--realtime-chunk-checksum=true",
            "--console-log-level=warn",
            "--summary-interval=0",
            "--split=4",
        ])
        .arg(server.url("/pub/pkg.bin?metalink"))
        .status()
        .expect("aria2c is installed (.ci/run installs it)");
    assert!(
        status.success(),
        "aria2c failed; server log:\n{}",
        server.log()
    );
    let downloaded = std::fs::read(out.join("pkg.bin")).unwrap();
    assert!(downloaded == content, "aria2c's file differs");
}
