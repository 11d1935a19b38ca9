//! `distpoint fetch --package` from several sources: a distpoint server
//! and an nginx copy of the package folder in which one chunk was tampered
//! with; and nginx alone, with the package manifest (and its signature)
//! taken from the copy's `.distpoint/` folder.

mod support;

use std::path::Path;
use support::nginx::Nginx;
use support::*;

const CHUNK: usize = 4096;

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), target).unwrap();
        }
    }
}

#[test]
fn a_package_comes_whole_from_a_good_server_and_a_tampered_mirror() {
    let site = Site::new();
    let files: Vec<(&str, Vec<u8>)> = vec![
        ("setup.exe", data(CHUNK * 400 + 11, 1)),
        ("sub/data.bin", data(CHUNK * 10, 2)),
        ("empty", Vec::new()),
    ];
    for (rel, body) in &files {
        site.file(&format!("content/pkg/{rel}"), body);
    }
    let key = site.path("publisher.key");
    assert_eq!(dp(&["publish", "--gen-key", s(&key)]).0, 0);
    let (code, out, err) = dp(&[
        "publish",
        s(&site.path("content/pkg")),
        "--chunk-size",
        &CHUNK.to_string(),
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
    // The mirror is a plain copy of the published folder (`.distpoint/`
    // included); there, every chunk of setup.exe from chunk 5 on is
    // tampered with, so that the mirror surely serves one.
    copy_dir(&site.path("content/pkg"), &site.path("mirror/good"));
    copy_dir(&site.path("content/pkg"), &site.path("mirror/pkg"));
    let k = 5;
    for c in k..400 {
        tamper(&site.path("mirror/pkg/setup.exe"), c * CHUNK + 9, b"evil");
    }
    let server = site.start(&format!(
        "{}[[vpath]]\nurl = \"/pkg\"\ndir = \"content/pkg\"\nanonymous = true\nintegrity = \"published\"\n\
         publisher_keys = [{:?}]\n",
        site.head(),
        s(&public)
    ));
    let nginx = Nginx::start(&site, &site.path("mirror"), "");
    let ca = site.path("certs/ca.crt");
    let fetch = |args: &[&str]| {
        let mut all = vec!["fetch", "--json", "--cacert", s(&ca)];
        all.extend_from_slice(args);
        dp(&all)
    };

    let dest = site.path("dl");
    let (code, out, err) = fetch(&[
        "--package",
        &server.url("/pkg"),
        "--mirror",
        &nginx.url("pkg"),
        "-o",
        s(&dest),
        "--expect",
        &hash,
        "--publisher-key",
        s(&public),
        "--connections",
        "2",
    ]);
    assert_eq!(code, 0, "{err}");
    for (rel, body) in &files {
        assert_eq!(&std::fs::read(dest.join(rel)).unwrap(), body, "{rel}");
    }
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v["signature_checked"], true, "{v}");
    let sources = v["sources"].as_array().unwrap();
    assert_eq!(sources[0]["dropped"], false, "{v}");
    // The mirror was dropped at its first bad chunk, named on stderr, and
    // not asked for the package's later files.
    assert_eq!(sources[1]["dropped"], true, "{v}");
    assert_eq!(sources[1]["drop_kind"], "bad_chunk", "{v}");
    assert_eq!(sources[1]["chunks_refused"], 1, "{v}");
    assert!(
        err.contains(&format!(
            "dropped source {}: chunk ",
            nginx.url("pkg/setup.exe")
        )),
        "{err}"
    );
    assert!(err.contains("does not match the manifest"), "{err}");
    let log = nginx.log();
    assert!(
        log.iter().any(|l| l.ends_with(" /pkg/setup.exe")),
        "{log:?}"
    );
    assert!(
        !log.iter().any(|l| l.ends_with(" /pkg/sub/data.bin")),
        "{log:?}"
    );
    let lines_before = log.len();

    // nginx alone, tampered copy, manifest and signature from its
    // `.distpoint/` folder: exit 2 naming the chunk, no file in place.
    let manifest = nginx.url("pkg/.distpoint/manifest.json");
    let dest2 = site.path("dl2");
    let (code, out, err) = fetch(&[
        "--package",
        &nginx.url("pkg"),
        "--manifest",
        &manifest,
        "-o",
        s(&dest2),
        "--publisher-key",
        s(&public),
        "--connections",
        "1",
    ]);
    assert_eq!(code, 2, "{err}");
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v["chunk"], k as u64, "{v}");
    assert!(err.contains("does not match the manifest"), "{err}");
    assert!(!dest2.join("setup.exe").exists());
    assert!(nginx.log().len() > lines_before);

    // The good copy: the whole package from nginx, signature checked.
    let dest3 = site.path("dl3");
    let (code, out, err) = fetch(&[
        "--package",
        &nginx.url("good"),
        "--manifest",
        &nginx.url("good/.distpoint/manifest.json"),
        "-o",
        s(&dest3),
        "--expect",
        &hash,
        "--publisher-key",
        s(&public),
    ]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v["signature_checked"], true, "{v}");
    for (rel, body) in &files {
        assert_eq!(&std::fs::read(dest3.join(rel)).unwrap(), body, "{rel}");
    }
}
