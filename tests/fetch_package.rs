//! `distpoint fetch --package`: a published, signed package, checked by its
//! hash and its publisher's signature before any file is fetched.

mod support;

use std::path::Path;
use support::*;

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn a_signed_package_is_fetched_whole_and_verified() {
    let site = Site::new();
    let files: Vec<(&str, Vec<u8>)> = vec![
        ("setup.exe", data(50_000, 1)),
        ("sub/dir/data file.bin", data(9_000, 2)),
        ("empty", Vec::new()),
    ];
    for (rel, body) in &files {
        site.file(&format!("content/pkg/{rel}"), body);
    }
    let key = site.path("publisher.key");
    let (code, _, err) = dp(&["publish", "--gen-key", s(&key)]);
    assert_eq!(code, 0, "{err}");
    let (code, out, err) = dp(&[
        "publish",
        s(&site.path("content/pkg")),
        "--chunk-size",
        "4096",
        "--key",
        s(&key),
    ]);
    assert_eq!(code, 0, "{err}");
    let hash = out
        .lines()
        .find_map(|l| l.strip_prefix("package "))
        .unwrap()
        .trim()
        .to_string();
    let public = site.path("publisher.key.pub");
    let server = site.start(&format!(
        "{}[[vpath]]\nurl = \"/pkg\"\ndir = \"content/pkg\"\nanonymous = true\nintegrity = \"published\"\n\
         publisher_keys = [{:?}]\n",
        site.head(),
        s(&public)
    ));
    let ca = site.path("certs/ca.crt");
    let prefix = server.url("/pkg");

    let dest = site.path("dl");
    let (code, out, err) = dp(&[
        "fetch",
        "--package",
        &prefix,
        "-o",
        s(&dest),
        "--expect",
        &hash,
        "--publisher-key",
        s(&public),
        "--cacert",
        s(&ca),
        "--json",
    ]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v["package_hash"], hash.as_str());
    assert_eq!(v["signature_checked"], true);
    assert_eq!(v["files"].as_array().unwrap().len(), 3);
    for (rel, body) in &files {
        assert_eq!(&std::fs::read(dest.join(rel)).unwrap(), body, "{rel}");
    }

    // A wrong package hash: exit 2 and no file requested or written.
    let before = server
        .log()
        .lines()
        .filter(|l| l.contains("status=206"))
        .count();
    let wrong = "0".repeat(64);
    let dest2 = site.path("dl2");
    let (code, _, err) = dp(&[
        "fetch",
        "--package",
        &prefix,
        "-o",
        s(&dest2),
        "--expect",
        &wrong,
        "--cacert",
        s(&ca),
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("does not match --expect"), "{err}");
    assert!(!dest2.join("setup.exe").exists());

    // Another publisher's key: the signature does not verify, exit 2.
    let other = site.path("other.key");
    let (code, _, err) = dp(&["publish", "--gen-key", s(&other)]);
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = dp(&[
        "fetch",
        "--package",
        &prefix,
        "-o",
        s(&dest2),
        "--publisher-key",
        s(&site.path("other.key.pub")),
        "--cacert",
        s(&ca),
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("signature does not verify"), "{err}");
    assert!(!dest2.join("setup.exe").exists());
    server.wait_quiet(std::time::Duration::from_secs(10));
    let after = server
        .log()
        .lines()
        .filter(|l| l.contains("status=206"))
        .count();
    assert_eq!(
        before, after,
        "no content requested after a failed package check"
    );
}
