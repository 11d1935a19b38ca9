//! Release numbers and expiry in the package manifest (`publish --sequence
//! N --expires …`): both covered by the hash and the signature; a path with
//! publisher keys does not serve an expired release.

mod support;

use distpoint::transfer::Protocol;
use support::*;

fn manifest(site: &Site) -> serde_json::Value {
    let bytes = std::fs::read(site.path("content/pkg/.distpoint/manifest.json")).unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

#[tokio::test]
async fn sequence_and_expiry_are_written_signed_and_an_expired_release_is_not_served() {
    let site = Site::new();
    site.file("content/pkg/a.bin", &data(10_000, 1));
    let key = site.path("publisher.key");
    let (code, _, err) = dp(&["publish", "--gen-key", key.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    let pkg = site.path("content/pkg");
    let (pkg, key_s) = (pkg.to_str().unwrap(), key.to_str().unwrap());

    // Defaults: the sequence is the Unix time, no expiry.
    let (code, out, err) = dp(&["publish", pkg, "--key", key_s]);
    assert_eq!(code, 0, "{err}");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let seq = manifest(&site)["sequence"].as_u64().unwrap();
    assert!(seq.abs_diff(now) < 60, "{seq} vs {now}");
    assert!(out.contains(&format!("sequence {seq}")), "{out}");
    assert!(manifest(&site).get("expires").is_none());

    let server = site.start(&format!(
        "{}[[vpath]]\nurl = \"/pkg\"\ndir = \"content/pkg\"\nanonymous = true\n\
         integrity = \"published\"\npublisher_keys = [\"publisher.key.pub\"]\n",
        site.head()
    ));
    let tls = site.tls(false, &[Protocol::Http1]);
    let url = server.url("/pkg/a.bin");
    assert_eq!(
        fetch(&server, tls.clone(), req("GET", &url)).await.status,
        200
    );

    // An explicit sequence and an expiry in 30 days: still served.
    let (code, _, err) = dp(&[
        "publish",
        pkg,
        "--key",
        key_s,
        "--sequence",
        "42",
        "--expires",
        "30d",
    ]);
    assert_eq!(code, 0, "{err}");
    let m = manifest(&site);
    assert_eq!(m["sequence"], 42);
    let expires = humantime::parse_rfc3339(m["expires"].as_str().unwrap()).unwrap();
    let in_30d = std::time::SystemTime::now() + std::time::Duration::from_secs(30 * 86_400);
    assert!(expires <= in_30d && expires + std::time::Duration::from_secs(120) > in_30d);
    assert_eq!(
        fetch(&server, tls.clone(), req("GET", &url)).await.status,
        200
    );

    // Expired long ago: the signed freeze makes the path unavailable.
    let (code, _, err) = dp(&[
        "publish",
        pkg,
        "--key",
        key_s,
        "--expires",
        "2020-01-01T00:00:00Z",
    ]);
    assert_eq!(code, 0, "{err}");
    let got = fetch(&server, tls.clone(), req("GET", &url)).await;
    assert_eq!(got.status, 503);
    assert!(got.header("retry-after").is_some());
    assert!(
        server.wait_log(
            "expired at 2020-01-01T00:00:00Z",
            std::time::Duration::from_secs(5)
        ),
        "{}",
        server.log()
    );

    // A bad --expires is a usage error naming the flag.
    let (code, _, err) = dp(&["publish", pkg, "--expires", "next tuesday"]);
    assert!(code != 0 && err.contains("--expires"), "{err}");
}

#[test]
fn fetch_package_refuses_rollbacks_replaced_releases_and_expired_manifests() {
    let site = Site::new();
    site.file("content/pkg/a.bin", &data(10_000, 1));
    let pkg = site.path("content/pkg");
    let publish = |seq: &str, extra: &[&str]| {
        let mut args = vec!["publish", pkg.to_str().unwrap(), "--sequence", seq];
        args.extend_from_slice(extra);
        let (code, _, err) = dp(&args);
        assert_eq!(code, 0, "{err}");
    };
    publish("10", &[]);
    // No publisher keys: the server hands out whatever it has, expired or
    // not, so what is seen here is the client's own refusal.
    let server = site.start(&format!(
        "{}[[vpath]]\nurl = \"/pkg\"\ndir = \"content/pkg\"\nanonymous = true\n\
         integrity = \"published\"\n",
        site.head()
    ));
    let prefix = server.url("/pkg");
    let ca = site.path("certs/ca.crt");
    let (dest, dest2) = (site.path("dl"), site.path("dl2"));
    let get = |dest: &std::path::Path, extra: &[&str]| {
        let mut args = vec![
            "fetch",
            "--package",
            &prefix,
            "-o",
            dest.to_str().unwrap(),
            "--cacert",
            ca.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        let (code, _, err) = dp(&args);
        (code, err)
    };
    let (code, err) = get(&dest, &[]);
    assert_eq!(code, 0, "{err}");
    let memory: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dest.join(".distpoint/sequences.json")).unwrap())
            .unwrap();
    assert_eq!(memory[prefix.as_str()]["sequence"], 10, "{memory}");

    // An older release (other bytes, lower sequence) into the same folder.
    site.file("content/pkg/a.bin", &data(10_000, 2));
    publish("9", &[]);
    let (code, err) = get(&dest, &[]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("sequence 9 is lower than 10"), "{err}");
    assert_eq!(std::fs::read(dest.join("a.bin")).unwrap(), data(10_000, 1));

    // The same sequence with other bytes.
    publish("10", &[]);
    let (code, err) = get(&dest, &[]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("sequence 10 was taken before"), "{err}");

    // A fresh folder takes it, unless --min-sequence says otherwise.
    let (code, err) = get(&dest2, &["--min-sequence", "11"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--min-sequence"), "{err}");
    assert!(!dest2.join("a.bin").exists());

    // Expired (past the 5-minute allowance) is refused; a newer live one is taken.
    publish("12", &["--expires", "2020-01-01T00:00:00Z"]);
    let (code, err) = get(&dest, &[]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("expired at 2020-01-01T00:00:00Z"), "{err}");
    publish("12", &[]);
    let (code, err) = get(&dest, &["--min-sequence", "11"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(std::fs::read(dest.join("a.bin")).unwrap(), data(10_000, 2));
    server.wait_quiet(std::time::Duration::from_secs(10));
}
