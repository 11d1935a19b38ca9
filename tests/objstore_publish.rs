//! `distpoint publish DIR --to s3://BUCKET/PREFIX` against a real
//! S3-compatible store (Garage): the prefix holds exactly what a distpoint
//! path serves, a republish uploads only what changed and removes what is
//! gone; and `fetch` takes chunks from `s3://` sources.

mod support;

use std::path::Path;
use std::process::Command;
use support::garage::Garage;
use support::*;

const CHUNK: usize = 16 * 1024;

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Run the binary; (exit code, stdout, stderr).
fn distpoint(args: &[&str], env: &[(&str, String)]) -> (i32, String, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_distpoint"));
    cmd.args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    // Nothing from the machine's own AWS settings.
    cmd.env("HOME", "/nonexistent").env_remove("AWS_PROFILE");
    let out = cmd.output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Runtime::new().unwrap()
}

fn listing(g: &Garage, prefix: &str) -> Vec<String> {
    let mut names: Vec<String> = rt()
        .block_on(g.store(prefix).list())
        .unwrap()
        .into_iter()
        .map(|o| o.rel)
        .collect();
    names.sort();
    names
}

fn object(g: &Garage, prefix: &str, rel: &str) -> Vec<u8> {
    rt().block_on(g.store(prefix).get_optional(rel))
        .unwrap()
        .unwrap_or_else(|| panic!("no object {rel}"))
        .to_vec()
}

#[test]
fn publish_to_uploads_what_a_path_serves_then_only_what_changed() {
    let g = Garage::start("packages");
    let site = Site::new();
    let a = data(10 * CHUNK + 123, 1);
    site.file("content/pkg/a.bin", &a);
    site.file("content/pkg/sub/b.txt", b"version 1\n");
    site.file("content/pkg/empty", b"");
    site.file("content/pkg/.hidden", b"never published");
    let dir = site.path("content/pkg");
    let key = site.path("publisher.key");
    assert_eq!(distpoint(&["publish", "--gen-key", s(&key)], &[]).0, 0);
    let endpoint = g.endpoint();
    let first = [
        "publish",
        s(&dir),
        "--chunk-size",
        "16384",
        "--key",
        s(&key),
        "--to",
        "s3://packages/PKG00001",
        "--endpoint",
        &endpoint,
        "--region",
        "garage",
    ];
    let env = vec![
        ("AWS_ACCESS_KEY_ID", g.key_id.clone()),
        ("AWS_SECRET_ACCESS_KEY", g.secret.clone()),
    ];
    let (code, out, err) = distpoint(&first, &env);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("uploaded 3 file(s)"), "{out}");
    assert_eq!(
        listing(&g, "PKG00001"),
        [
            ".distpoint/manifest.json",
            ".distpoint/manifest.json.sig",
            "a.bin",
            "empty",
            "sub/b.txt"
        ]
    );
    let meta = site.path("content/pkg/.distpoint");
    assert_eq!(
        object(&g, "PKG00001", ".distpoint/manifest.json"),
        std::fs::read(meta.join("manifest.json")).unwrap()
    );
    assert_eq!(
        object(&g, "PKG00001", ".distpoint/manifest.json.sig"),
        std::fs::read(meta.join("manifest.json.sig")).unwrap()
    );
    assert_eq!(object(&g, "PKG00001", "a.bin"), a);
    manifest_written_last(&g, "PKG00001");

    // Republish, the settings from a config's [origins.packages] this
    // time: one file changed, one gone, one new, one as it was; unsigned.
    site.file("content/pkg/sub/b.txt", b"version 2\n");
    std::fs::remove_file(site.path("content/pkg/empty")).unwrap();
    site.file("content/pkg/c.bin", &data(3 * CHUNK, 2));
    let config = site.config(&format!(
        "{}{}",
        site.head(),
        g.origin_table(site.dir.path())
    ));
    let second = [
        "publish",
        s(&dir),
        "--chunk-size",
        "16384",
        "--to",
        "s3://packages/PKG00001",
        "--config",
        s(&config),
    ];
    let (code, out, err) = distpoint(&second, &[]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("uploaded 2 file(s)")
            && out.contains("1 unchanged")
            && out.contains("1 stale object(s) removed"),
        "{out}"
    );
    assert_eq!(
        listing(&g, "PKG00001"),
        [".distpoint/manifest.json", "a.bin", "c.bin", "sub/b.txt"],
        "the old signature and the removed file are gone"
    );
    assert_eq!(object(&g, "PKG00001", "sub/b.txt"), b"version 2\n");
    manifest_written_last(&g, "PKG00001");
    let a_before = meta_of(&g, "PKG00001", "a.bin");
    // Nothing changed: nothing but the manifest is uploaded.
    let (code, out, _) = distpoint(&second, &[]);
    assert_eq!(code, 0);
    assert!(
        out.contains("uploaded 0 file(s)") && out.contains("3 unchanged"),
        "{out}"
    );
    assert_eq!(
        meta_of(&g, "PKG00001", "a.bin").last_modified,
        a_before.last_modified,
        "an unchanged file is not written again"
    );
    manifest_written_last(&g, "PKG00001");
}

fn meta_of(g: &Garage, prefix: &str, rel: &str) -> distpoint::objstore::ObjectInfo {
    rt().block_on(g.store(prefix).list())
        .unwrap()
        .into_iter()
        .find(|o| o.rel == rel)
        .unwrap_or_else(|| panic!("no object {rel}"))
}

/// The manifest is the newest object of the prefix: written after every
/// file it lists (and after its signature).
fn manifest_written_last(g: &Garage, prefix: &str) {
    let objects = rt().block_on(g.store(prefix).list()).unwrap();
    let manifest = objects
        .iter()
        .find(|o| o.rel == ".distpoint/manifest.json")
        .expect("a manifest");
    for o in &objects {
        assert!(
            o.last_modified <= manifest.last_modified,
            "{} is newer than the manifest",
            o.rel
        );
    }
}

#[test]
fn publish_to_names_what_is_wrong_with_the_location_or_the_store() {
    let site = Site::new();
    site.file("content/pkg/a.bin", b"a");
    let dir = site.path("content/pkg");
    let keys = vec![
        ("AWS_ACCESS_KEY_ID", "GK000".to_string()),
        ("AWS_SECRET_ACCESS_KEY", "secret".to_string()),
    ];
    let (code, _, err) = distpoint(&["publish", s(&dir), "--to", "https://x/y"], &keys);
    assert_eq!(code, 1);
    assert!(err.contains("--to") && err.contains("s3://"), "{err}");
    let plain = [
        "publish",
        s(&dir),
        "--to",
        "s3://packages/p",
        "--endpoint",
        "http://192.0.2.1:3900",
    ];
    let (code, _, err) = distpoint(&plain, &keys);
    assert_eq!(code, 1);
    assert!(
        err.contains("--endpoint") && err.contains("loopback"),
        "{err}"
    );
    // Nothing listens there: a network failure, naming the location.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let endpoint = format!("http://127.0.0.1:{port}");
    let dead = [
        "publish",
        s(&dir),
        "--to",
        "s3://packages/p",
        "--endpoint",
        &endpoint,
    ];
    let (code, _, err) = distpoint(&dead, &keys);
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("s3://packages/p"), "{err}");
}

#[test]
fn fetch_takes_chunks_from_s3_sources_for_a_file_and_a_package() {
    let g = Garage::start("packages");
    let site = Site::new();
    let a = data(12 * CHUNK + 5, 3);
    site.file("content/pkg/a.bin", &a);
    site.file("content/pkg/sub/b.txt", b"bee\n");
    let dir = site.path("content/pkg");
    let to = [
        "publish",
        s(&dir),
        "--chunk-size",
        "16384",
        "--to",
        "s3://packages/PKG2",
    ];
    let env = g.env();
    let (code, out, err) = distpoint(&to, &env);
    assert_eq!(code, 0, "{out}{err}");
    let hash = out
        .lines()
        .find_map(|l| l.strip_prefix("package "))
        .unwrap()
        .to_string();
    let server = site.start(&format!(
        "{}[[vpath]]\nurl = \"/pkg\"\ndir = \"content/pkg\"\nanonymous = true\nintegrity = \"published\"\n",
        site.head()
    ));
    let ca = site.path("certs/ca.crt");
    // The file's manifest from distpoint; the primary does not have the
    // file (404, dropped), so every chunk comes from the bucket.
    let manifest = site.path("a.manifest.json");
    let (code, body, _) = curl(&[
        "-sf",
        "--cacert",
        s(&ca),
        &server.url("/pkg/a.bin?manifest"),
    ]);
    assert_eq!(code, 0);
    std::fs::write(&manifest, body).unwrap();
    std::fs::create_dir_all(site.path("out")).unwrap();
    let out_file = site.path("out/a.bin");
    let fetch = [
        "fetch",
        &server.url("/pkg/not-here.bin"),
        "--manifest",
        s(&manifest),
        "--mirror",
        "s3://packages/PKG2/a.bin",
        "--cacert",
        s(&ca),
        "-o",
        s(&out_file),
        "--json",
    ];
    let (code, out, err) = distpoint(&fetch, &env);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(std::fs::read(&out_file).unwrap(), a);
    let report: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    let s3 = &report["sources"][1];
    assert_eq!(s3["url"], "s3://packages/PKG2/a.bin", "{report}");
    assert_eq!(s3["chunks"], 13, "{report}");

    // A whole package from distpoint and the bucket's prefix.
    let out_dir = site.path("out/pkg");
    let package = [
        "fetch",
        "--package",
        &server.url("/pkg"),
        "--mirror",
        "s3://packages/PKG2",
        "--expect",
        &hash,
        "--cacert",
        s(&ca),
        "-o",
        s(&out_dir),
        "--json",
    ];
    let (code, out, err) = distpoint(&package, &env);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(std::fs::read(out_dir.join("a.bin")).unwrap(), a);
    assert_eq!(std::fs::read(out_dir.join("sub/b.txt")).unwrap(), b"bee\n");
    let report: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(
        report["sources"][1]["url"], "s3://packages/PKG2",
        "{report}"
    );

    // The object tampered with in the bucket (same size, every chunk):
    // each chunk from it fails its hash, the bucket is dropped, and the
    // file is still had whole from distpoint itself.
    let mut bad = a.clone();
    for c in 0..13 {
        bad[c * CHUNK] ^= 0x80;
    }
    rt().block_on(g.store("PKG2").put("a.bin", bad.into()))
        .unwrap();
    let with_good = |primary: &str, to: &Path| -> Vec<String> {
        let mut args: Vec<String> = fetch.iter().map(|a| a.to_string()).collect();
        args[1] = primary.to_string();
        let at = args.iter().position(|a| a == s(&out_file)).unwrap();
        args[at] = s(to).to_string();
        args
    };
    let good = site.path("out/good.bin");
    let args = with_good(&server.url("/pkg/a.bin"), &good);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (code, out, err) = distpoint(&args, &env);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(std::fs::read(&good).unwrap(), a);
    assert!(
        err.contains("dropped source s3://packages/PKG2/a.bin") && err.contains("does not match"),
        "{err}"
    );
    let report: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(report["sources"][1]["drop_kind"], "bad_chunk", "{report}");
    assert!(
        report["sources"][1]["chunks_refused"].as_u64() >= Some(1),
        "{report}"
    );
    // The bucket the only source with the bytes: nothing unverified is
    // written. (Exit 3, not 2: the engine reports the last source's failure,
    // the primary's 404.)
    let bad_out = site.path("out/bad.bin");
    let args = with_good(&server.url("/pkg/not-here.bin"), &bad_out);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (code, out, err) = distpoint(&args, &env);
    assert_eq!(code, 3, "{out}{err}");
    assert!(err.contains("s3://packages/PKG2/a.bin: chunk"), "{err}");
    assert!(!bad_out.exists(), "nothing unverified written");
}
