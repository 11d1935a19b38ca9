//! `check-config` refuses what `serve` refuses, warns about unpublished
//! paths, and the default config is found in the documented order.

mod support;

use std::path::Path;
use std::process::{Command, Output};
use support::*;

fn check(config: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_distpoint"))
        .args(["check-config", "--config"])
        .arg(config)
        .output()
        .unwrap()
}

fn anonymous_pub(site: &Site) -> String {
    site.file("content/pub/hello.txt", b"hello");
    format!(
        "{}[[vpath]]\nurl = \"/pub\"\ndir = \"content/pub\"\nanonymous = true\n",
        site.head()
    )
}

#[test]
fn a_key_that_does_not_match_its_certificate_is_refused_in_plain_words() {
    let site = Site::new();
    let config = site.config(&anonymous_pub(&site));
    assert_eq!(check(&config).status.code(), Some(0));
    // The client's key next to the server's certificate.
    std::fs::write(site.path("certs/server.key"), &site.pki.client.key).unwrap();
    let out = check(&config);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&site.path("certs/server.key").display().to_string())
            && err.contains(&site.path("certs/server.crt").display().to_string())
            && err.contains("does not belong to the certificate"),
        "{err}"
    );
    assert!(!err.contains("KeyMismatch"), "{err}");
    assert!(out.stdout.is_empty(), "no OK on a refused config");
    // serve refuses the same config at start.
    let out = Command::new(env!("CARGO_BIN_EXE_distpoint"))
        .args(["serve", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn a_published_path_without_a_manifest_is_a_warning() {
    let site = Site::new();
    site.file("content/pkg/a.bin", b"payload");
    let body = format!(
        "{}[[vpath]]\nurl = \"/pkg\"\ndir = \"content/pkg\"\nanonymous = true\nintegrity = \"published\"\n",
        anonymous_pub(&site)
    );
    let config = site.config(&body);
    let out = check(&config);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "a warning, not an error: {err}");
    assert!(
        err.contains("warning: /pkg")
            && err.contains("manifest.json")
            && err.contains("distpoint publish"),
        "{err}"
    );
    assert!(!err.contains("warning: /pub"), "{err}");
    // Once published, the warning goes.
    let published = Command::new(env!("CARGO_BIN_EXE_distpoint"))
        .arg("publish")
        .arg(site.path("content/pkg"))
        .output()
        .unwrap();
    assert!(published.status.success());
    let out = check(&config);
    assert_eq!(out.status.code(), Some(0));
    assert!(
        !String::from_utf8_lossy(&out.stderr).contains("warning"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `bin/distpoint` in a fake install prefix, with `etc/distpoint/distpoint.toml` beside it.
fn install(prefix: &Path, site: &Site) -> std::path::PathBuf {
    std::fs::create_dir_all(prefix.join("bin")).unwrap();
    let bin = prefix.join("bin/distpoint");
    std::fs::copy(env!("CARGO_BIN_EXE_distpoint"), &bin).unwrap();
    let etc = prefix.join("etc/distpoint");
    std::fs::create_dir_all(&etc).unwrap();
    // Absolute paths: the config no longer sits in the site folder.
    let body = anonymous_pub(site).replace(
        "\"certs/",
        &format!("\"{}/certs/", site.dir.path().display()),
    );
    let body = body.replace(
        "\"content/",
        &format!("\"{}/content/", site.dir.path().display()),
    );
    std::fs::write(etc.join("distpoint.toml"), body).unwrap();
    bin
}

#[test]
fn the_default_config_is_searched_in_order_and_named() {
    let site = Site::new();
    let prefix = tempfile::tempdir().unwrap();
    let bin = install(prefix.path(), &site);
    let installed = prefix.path().join("etc/distpoint/distpoint.toml");
    let elsewhere = tempfile::tempdir().unwrap();

    // 2. Beside the install, when the current folder has no config/.
    let out = Command::new(&bin)
        .arg("check-config")
        .current_dir(elsewhere.path())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(
        err.contains(&format!("using config {}", installed.display())),
        "{err}"
    );
    assert!(
        err.contains("/etc/distpoint/distpoint.toml"),
        "lists the order: {err}"
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains(&format!("{}: OK", installed.display())));

    // 1. config/distpoint.toml in the current folder comes first.
    std::fs::create_dir(elsewhere.path().join("config")).unwrap();
    std::fs::write(
        elsewhere.path().join("config/distpoint.toml"),
        std::fs::read_to_string(&installed).unwrap(),
    )
    .unwrap();
    let out = Command::new(&bin)
        .arg("check-config")
        .current_dir(elsewhere.path())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("using config config/distpoint.toml"), "{err}");

    // --config wins over both, and nothing is said about a search.
    let out = Command::new(&bin)
        .args(["check-config", "--config"])
        .arg(&installed)
        .current_dir(elsewhere.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert!(!String::from_utf8_lossy(&out.stderr).contains("first found"));

    // serve logs which file it uses.
    let server_dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(&bin)
        .arg("serve")
        .current_dir(server_dir.path())
        .env("RUST_LOG", "info")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let first = std::io::BufRead::lines(std::io::BufReader::new(stderr))
        .next()
        .unwrap()
        .unwrap();
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        first.contains(&format!("using config {}", installed.display())),
        "{first}"
    );
}

#[test]
fn no_config_anywhere_names_every_place_searched() {
    if Path::new("/etc/distpoint/distpoint.toml").exists() {
        // This machine has a system config, which the search would find.
        return;
    }
    let elsewhere = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_distpoint"))
        .arg("check-config")
        .current_dir(elsewhere.path())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("config/distpoint.toml")
            && err.contains("etc/distpoint/distpoint.toml, /etc/distpoint/distpoint.toml")
            && err.contains("--config"),
        "{err}"
    );
}
