//! Chunk k of n tampered on the server (published mode): fetch stops at
//! chunk k, exits 2 naming exactly it (with one connection or several: the
//! server names the chunk in its `Distpoint-Integrity` header), having
//! fetched about k + 1 + N chunks at most, and leaves nothing at PATH.

mod support;

use std::path::Path;
use std::process::Command;
use support::*;

const CHUNK: usize = 4096;
const CHUNKS: usize = 48;

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn a_tampered_chunk_stops_the_fetch_with_exit_2_naming_it() {
    let site = Site::new();
    let body = data(CHUNK * CHUNKS, 5);
    // One copy per protocol: a tampered file stays quarantined once found.
    let paths = [
        site.file("content/pkg/app1.bin", &body),
        site.file("content/pkg/app2.bin", &body),
    ];
    let out = Command::new(env!("CARGO_BIN_EXE_distpoint"))
        .args([
            "publish",
            s(&site.path("content/pkg")),
            "--chunk-size",
            &CHUNK.to_string(),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let root = distpoint::integrity::hex(
        &distpoint::integrity::FileManifest::compute(&body[..], CHUNK as u64)
            .unwrap()
            .root,
    );
    let k = 20usize;
    for p in &paths {
        tamper(p, k * CHUNK + 100, b"evil");
    }
    let server = site.start(&format!(
        "{}[[vpath]]\nurl = \"/pkg\"\ndir = \"content/pkg\"\nanonymous = true\nintegrity = \"published\"\n",
        site.head()
    ));
    // One connection and four: with four, requests for the chunks just below
    // k may reach the server after it quarantined the file and be refused
    // too, but every refusal names chunk k in its header.
    for (file, proto, n) in [("app1.bin", "--http1", 1usize), ("app2.bin", "--http2", 4)] {
        let dest = site.path(file);
        let o = Command::new(env!("CARGO_BIN_EXE_distpoint"))
            .args([
                "fetch",
                &server.url(&format!("/pkg/{file}")),
                "-o",
                s(&dest),
                "--expect",
                &root,
            ])
            .args(["--connections", &n.to_string(), proto, "--json"])
            .args(["--cacert", s(&site.path("certs/ca.crt"))])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{err}");
        let v: serde_json::Value =
            serde_json::from_str(String::from_utf8_lossy(&o.stdout).trim()).unwrap();
        let named = v["chunk"].as_u64().unwrap() as usize;
        assert_eq!(named, k, "chunk {named} named with {n} connections; {err}");
        assert!(err.contains(&format!("chunk {named} of {CHUNKS}")), "{err}");
        assert!(err.contains("quarantined"), "{err}");
        let fetched = v["bytes_fetched"].as_u64().unwrap();
        assert!(
            fetched <= ((k + 1 + n) * CHUNK) as u64,
            "{fetched} bytes fetched, more than (k+1+N) chunks"
        );
        assert!(!dest.exists(), "nothing unverified at PATH");
    }
}
