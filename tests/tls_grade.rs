//! TLS grade: sslyze's Mozilla compliance checks against the real server.
//!
//! - The certificates `distpoint certs dev` writes, with the default
//!   `min_version = "1.2"`, are compliant with Mozilla's "intermediate"
//!   configuration (protocols, ciphers, curves, certificate lifetime and
//!   path validation against the dev CA).
//! - With `min_version = "1.3"` and a server certificate of under 90 days,
//!   the server is compliant with "modern". The same server with the
//!   365-day dev certificate is not (the lifetime rule), which shows the
//!   checker is live.
//!
//! sslyze comes from PyPI (`.ci/run` installs it) and runs as
//! `python3 -m sslyze`; `$SSLYZE` names another command.

mod support;

use std::path::Path;
use std::process::Command;
use std::time::Instant;
use support::*;

/// Run sslyze's compliance check; returns (compliant, the compliance section).
fn sslyze(profile: &str, ca: &Path, server: &Server) -> (bool, String) {
    let start = Instant::now();
    let mut cmd = match std::env::var("SSLYZE") {
        Ok(program) => Command::new(program),
        Err(_) => {
            let mut c = Command::new("python3");
            c.args(["-m", "sslyze"]);
            c
        }
    };
    let out = cmd
        .arg("--certinfo_ca_file")
        .arg(ca)
        .arg(format!("--mozilla_config={profile}"))
        .arg(server.addr.to_string())
        .output()
        .expect("python3 runs (.ci/run installs sslyze with pip; set SSLYZE=PATH)");
    let text = String::from_utf8_lossy(&out.stdout);
    let section = text
        .split("COMPLIANCE AGAINST TLS CONFIGURATION")
        .nth(1)
        .unwrap_or_else(|| panic!("no compliance section:\n{text}"))
        .trim()
        .to_string();
    let compliant = section.contains("OK - Compliant.");
    assert_eq!(compliant, out.status.success(), "{section}");
    println!(
        "sslyze {profile}: {} in {:.1} s",
        if compliant {
            "compliant"
        } else {
            "NOT compliant"
        },
        start.elapsed().as_secs_f64()
    );
    (compliant, section)
}

fn config(site: &Site, min_version: &str) -> String {
    format!(
        "[server]\nlisten = [\"127.0.0.1:0\"]\nstate_dir = \"state\"\n\
         [tls]\ncert = \"dev/server.crt\"\nkey = \"dev/server.key\"\nclient_ca = \"dev/ca.crt\"\n\
         min_version = \"{min_version}\"\n\
         [[vpath]]\nurl = \"/pub\"\ndir = \"content\"\nanonymous = true\n{}",
        site.user("alice")
    )
}

/// `distpoint certs dev --out DIR`, the real command.
fn certs_dev(dir: &Path) {
    let out = Command::new(env!("CARGO_BIN_EXE_distpoint"))
        .args(["certs", "dev", "--out"])
        .arg(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn dev_certificates_are_mozilla_intermediate_compliant() {
    let site = Site::new();
    site.file("content/hello.txt", b"hello\n");
    certs_dev(&site.path("dev"));
    let server = site.start(&config(&site, "1.2"));
    let (ok, section) = sslyze("intermediate", &site.path("dev/ca.crt"), &server);
    assert!(ok, "{section}");
}

#[test]
fn tls13_only_is_mozilla_modern_compliant() {
    let site = Site::new();
    site.file("content/hello.txt", b"hello\n");
    certs_dev(&site.path("dev"));
    let ca = site.path("dev/ca.crt");

    // The dev certificate lives a year: modern's lifetime rule refuses it.
    let server = site.start(&config(&site, "1.3"));
    let (ok, section) = sslyze("modern", &ca, &server);
    assert!(
        !ok && section.contains("maximum_certificate_lifespan"),
        "{section}"
    );
    drop(server);

    // An 89-day certificate from a CA of the same profile passes.
    let pki = distpoint::devcerts::DevCa::new("distpoint dev CA").unwrap();
    let short = pki
        .issue_server_for_days(&["localhost", "127.0.0.1", "::1"], 89)
        .unwrap();
    std::fs::write(&ca, pki.cert_pem()).unwrap();
    std::fs::write(site.path("dev/server.crt"), &short.cert).unwrap();
    std::fs::write(site.path("dev/server.key"), &short.key).unwrap();
    let server = site.start(&config(&site, "1.3"));
    let (ok, section) = sslyze("modern", &ca, &server);
    assert!(ok, "{section}");
}
