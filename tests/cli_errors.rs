//! CLI errors name the file or flag at fault and say what to do; `bench`
//! exits 3 when no request succeeded and says why.

mod support;

use std::process::{Command, Output};
use support::*;

fn distpoint(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_distpoint"))
        .args(args)
        .output()
        .unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn key_files_of_the_wrong_kind_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("site.pem");
    let key_s = key.to_str().unwrap();
    assert!(distpoint(&["publish", "--gen-key", key_s]).status.success());
    let public = format!("{key_s}.pub");
    let garbage = dir.path().join("garbage.pem");
    std::fs::write(&garbage, "not a key at all\n").unwrap();
    std::fs::create_dir(dir.path().join("pkg")).unwrap();
    std::fs::write(dir.path().join("pkg/a.txt"), "a").unwrap();
    let pkg = dir.path().join("pkg");
    let pkg = pkg.to_str().unwrap();

    let out = distpoint(&["publish", pkg, "--key", &public]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains(&format!("--key {public}")) && err.contains("this is a public key"),
        "{err}"
    );

    let out = distpoint(&["publish", pkg, "--key", garbage.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains(&garbage.display().to_string()) && err.contains("found no PEM block"),
        "{err}"
    );

    let missing = dir.path().join("missing.pem");
    let out = distpoint(&["publish", pkg, "--key", missing.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains(&missing.display().to_string()));

    // The client side: a private key where the public one belongs.
    let out = distpoint(&[
        "fetch",
        "--package",
        "https://127.0.0.1:1/pkg",
        "-o",
        dir.path().join("out").to_str().unwrap(),
        "--publisher-key",
        key_s,
    ]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains(&format!("--publisher-key {key_s}")) && err.contains("this is a private key"),
        "{err}"
    );
    // The right kinds work.
    assert!(distpoint(&["publish", pkg, "--key", key_s])
        .status
        .success());
}

fn anonymous_site() -> (Site, Server) {
    let site = Site::new();
    site.file("content/pub/a.bin", &data(100_000, 1));
    let server = site.start(&format!(
        "{}[[vpath]]\nurl = \"/pub\"\ndir = \"content/pub\"\nanonymous = true\n",
        site.head()
    ));
    (site, server)
}

#[test]
fn fetch_from_a_private_ca_without_cacert_says_how_to_trust_it() {
    let (site, server) = anonymous_site();
    let url = server.url("/pub/a.bin");
    let out_file = site.path("a.bin");
    let out = distpoint(&["fetch", &url, "-o", out_file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(3));
    let err = stderr(&out);
    assert!(
        err.contains("not issued by a CA in the system bundle") && err.contains("--cacert FILE"),
        "{err}"
    );
    // A --cacert that is the wrong CA is named.
    let other = tempfile::tempdir().unwrap();
    assert!(
        distpoint(&["certs", "dev", "--out", other.path().to_str().unwrap()])
            .status
            .success()
    );
    let wrong = other.path().join("ca.crt");
    let out = distpoint(&[
        "fetch",
        &url,
        "-o",
        out_file.to_str().unwrap(),
        "--cacert",
        wrong.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(3));
    let err = stderr(&out);
    assert!(
        err.contains(&format!("not issued by the CA in {}", wrong.display())),
        "{err}"
    );
    // With the right CA it works.
    let ca = site.path("certs/ca.crt");
    let out = distpoint(&[
        "fetch",
        &url,
        "-o",
        out_file.to_str().unwrap(),
        "--cacert",
        ca.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}

#[test]
fn bench_exits_3_when_no_request_succeeded_and_names_the_tls_reason() {
    let (site, server) = anonymous_site();
    let url = server.url("/pub/a.bin");
    // No --cacert: every handshake fails on the unknown CA.
    let out = distpoint(&[
        "bench",
        &url,
        "--requests",
        "4",
        "--duration",
        "5",
        "--json",
    ]);
    assert_eq!(out.status.code(), Some(3));
    let err = stderr(&out);
    assert!(
        err.contains("no request succeeded")
            && err.contains("tls: ")
            && err.contains("not issued by a CA")
            && err.contains("--cacert"),
        "{err}"
    );
    // The report is still printed.
    let v: serde_json::Value =
        serde_json::from_str(String::from_utf8_lossy(&out.stdout).trim()).unwrap();
    assert_eq!(v["requests"], 0);

    // Only errors from the server: exit 3 as well, with the counts.
    let ca = site.path("certs/ca.crt");
    let missing = server.url("/pub/missing.bin");
    let out = distpoint(&[
        "bench",
        &missing,
        "--requests",
        "3",
        "--cacert",
        ca.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(3));
    assert!(stderr(&out).contains("status 404: 3"), "{}", stderr(&out));

    // Nothing listening: exit 3, naming the address.
    drop(server);
    let out = distpoint(&[
        "bench",
        &url,
        "--requests",
        "2",
        "--duration",
        "2",
        "--cacert",
        ca.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(3));
    assert!(stderr(&out).contains("connect"), "{}", stderr(&out));

    // One success is enough for exit 0.
    let (site, server) = anonymous_site();
    let ca = site.path("certs/ca.crt");
    let out = distpoint(&[
        "bench",
        &server.url("/pub/a.bin"),
        &server.url("/pub/missing.bin"),
        "--requests",
        "4",
        "--cacert",
        ca.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}
