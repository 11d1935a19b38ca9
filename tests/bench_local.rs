//! `distpoint bench` against a local server: sane figures, valid JSON.

mod support;

use std::process::Command;
use support::*;

fn bench(site: &Site, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_distpoint"))
        .arg("bench")
        .args(args)
        .arg("--cacert")
        .arg(site.path("certs/ca.crt"))
        .env("DISTPOINT_PASSWORD", PASSWORD)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn config(site: &Site) -> String {
    format!(
        "{}{}[[vpath]]\nurl = \"/pub\"\ndir = \"content/pub\"\nanonymous = true\n\
         [[vpath]]\nurl = \"/private\"\ndir = \"content/private\"\nallow = [\"user:alice\"]\n",
        site.head(),
        site.user("alice")
    )
}

#[test]
fn bench_reports_sane_figures_as_json_and_text() {
    let site = Site::new();
    let size = 256 * 1024u64;
    site.file("content/pub/a.bin", &vec![3u8; size as usize]);
    site.file("content/private/b.bin", &vec![4u8; 1000]);
    let server = site.start(&config(&site));
    let url = server.url("/pub/a.bin");

    for proto in ["--http1", "--http2"] {
        let (code, out, err) = bench(
            &site,
            &[
                &url,
                "--connections",
                "2",
                "--duration",
                "5",
                "--requests",
                "20",
                "--json",
                proto,
            ],
        );
        assert_eq!(code, 0, "{err}");
        let v: serde_json::Value = serde_json::from_str(out.trim()).expect("valid JSON");
        assert_eq!(v["requests"], 20, "{out}");
        assert_eq!(v["bytes"].as_u64(), Some(20 * size), "{out}");
        assert_eq!(v["errors"].as_object().unwrap().len(), 0, "{out}");
        assert_eq!(v["connections"], 2);
        let want = if proto == "--http1" {
            "HTTP/1.1"
        } else {
            "HTTP/2"
        };
        assert_eq!(v["protocol"], want);
        let gbps = v["gb_per_s"].as_f64().unwrap();
        assert!(gbps > 0.0 && gbps < 1000.0, "{out}");
        assert!((v["gbit_per_s"].as_f64().unwrap() - gbps * 8.0).abs() < 1e-9);
        let lat = &v["latency_ms"];
        let (p50, p99, max) = (
            lat["p50"].as_f64().unwrap(),
            lat["p99"].as_f64().unwrap(),
            lat["max"].as_f64().unwrap(),
        );
        assert!(p50 > 0.0 && p50 <= p99 && p99 <= max, "{out}");
    }

    // Ranges: each request brings at most the range size.
    let (code, out, err) = bench(
        &site,
        &[&url, "--requests", "10", "--range-size", "10000", "--json"],
    );
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v["requests"], 10, "{out}");
    assert!(v["bytes"].as_u64().unwrap() <= 100_000, "{out}");

    // Text form, and errors counted by kind.
    let (code, out, err) = bench(
        &site,
        &[
            &url,
            &server.url("/pub/missing.bin"),
            "--duration",
            "5",
            "--requests",
            "10",
        ],
    );
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("GB/s") && out.contains("Gbit/s") && out.contains("p99"),
        "{out}"
    );
    assert!(out.contains("status 404: 5"), "{out}");
    assert!(out.contains("requests: 5 ok"), "{out}");

    // Basic authentication; the password never appears in the output.
    let private = server.url("/private/b.bin");
    let (code, out, err) = bench(
        &site,
        &[&private, "--requests", "3", "--json", "--user", "alice"],
    );
    assert_eq!(code, 0, "{err}");
    assert!(!out.contains(PASSWORD) && !err.contains(PASSWORD));
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v["requests"], 3, "{out}");
    let (_, out, _) = bench(&site, &[&private, "--requests", "3", "--json"]);
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v["errors"]["status 401"], 3, "{out}");

    // A bad URL is a usage error.
    let (code, _, err) = bench(&site, &["http://127.0.0.1/x", "--requests", "1"]);
    assert_eq!(code, 1);
    assert!(err.contains("https"), "{err}");
}
