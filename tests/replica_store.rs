//! A replica whose upstream is an object store (`s3://` in `[vpath.upstream]
//! sources`, reached through `[origins.BUCKET]`): it pulls a signed package
//! from a real S3-compatible store (Garage), byte-identical with the
//! bucket's manifest bytes; an object tampered with in the bucket never
//! reaches the served folder, which keeps the last good version.

mod replica;
mod support;

use distpoint::transfer::Protocol;
use replica::*;
use std::io::Write;
use std::process::Command;
use std::time::Duration;
use support::garage::Garage;
use support::*;

const LONG: Duration = Duration::from_secs(60);

/// `distpoint publish` of the site's package to `s3://packages/pkg`.
fn publish_to_bucket(site: &Origin, g: &Garage, sequence: u64) {
    let out = Command::new(env!("CARGO_BIN_EXE_distpoint"))
        .args(["publish", s(&site.pkg()), "--chunk-size", "16384"])
        .args(["--key", s(&site.key), "--sequence", &sequence.to_string()])
        .args(["--to", "s3://packages/pkg"])
        .envs(g.env())
        .env("HOME", "/nonexistent")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_replica_pulls_from_a_bucket_and_refuses_a_tampered_object() {
    let g = Garage::start("packages");
    let site = Origin::new();
    let (setup, data) = (unique(300_000, 1), unique(70_000, 2));
    site.site.file("content/pkg/setup.exe", &setup);
    site.site.file("content/pkg/sub/data.bin", &data);
    publish_to_bucket(&site, &g, 5);

    let mut region = Replica::new(
        &site.site,
        &["s3://packages/pkg".to_string()],
        &site.public_key(),
        Login::None,
        "anonymous = true\n",
        "interval_secs = 3600\n",
    );
    let origins = g.origin_table(region.site.dir.path());
    std::fs::OpenOptions::new()
        .append(true)
        .open(&region.config)
        .unwrap()
        .write_all(origins.as_bytes())
        .unwrap();
    let (code, out, err) = dp(&["check-config", "--config", s(&region.config)]);
    assert_eq!(code, 0, "{out}{err}");
    region.start();
    let st = region.wait_status("first sync from the bucket", LONG, |s| {
        s["last_result"] == "ok"
    });
    assert_eq!(st["sequence"], 5, "{st}");

    // Byte-identical, with the bucket's exact manifest bytes.
    let r = region.server();
    let tls = region.site.tls(false, &[Protocol::Http1]);
    for (path, want) in [("/pkg/setup.exe", &setup), ("/pkg/sub/data.bin", &data)] {
        let got = fetch(r, tls.clone(), req("GET", &r.url(path))).await;
        assert_eq!(got.status, 200, "{path}");
        assert!(got.body == *want, "{path} differs");
    }
    let bucket = g.store("pkg");
    let manifest = bucket
        .get_optional(&distpoint::integrity::upload::manifest_key())
        .await
        .unwrap()
        .unwrap();
    let got = fetch(r, tls.clone(), req("GET", &r.url("/pkg/?manifest"))).await;
    assert!(got.body == manifest[..], "manifest bytes differ");

    // A new release whose setup.exe is then replaced in the bucket by
    // other bytes of the same size: refused, and version 5 keeps serving.
    site.site.file("content/pkg/setup.exe", &unique(300_000, 3));
    publish_to_bucket(&site, &g, 6);
    bucket
        .put("setup.exe", unique(300_000, 4).into())
        .await
        .unwrap();
    let (code, st) = region.sync();
    assert_eq!(code, 2, "{st}");
    assert_eq!(st["last_result"], "refused", "{st}");
    assert_eq!(st["sequence"], 5, "{st}");
    let got = fetch(r, tls.clone(), req("GET", &r.url("/pkg/setup.exe"))).await;
    assert!(got.body == setup, "the served version changed");
    assert!(
        r.log().contains("s3://packages/pkg"),
        "the refusal names the source: {}",
        r.log()
    );
}
