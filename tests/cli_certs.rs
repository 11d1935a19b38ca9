//! `certs dev` never overwrites without `--force`; `serve` with
//! `dev_certs = true` renews an expired dev certificate.

mod support;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, SystemTime};
use support::*;

fn certs_dev(out: &Path, force: bool) -> std::process::Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_distpoint"));
    cmd.args(["certs", "dev", "--out"]).arg(out);
    if force {
        cmd.arg("--force");
    }
    cmd.output().unwrap()
}

#[test]
fn certs_dev_refuses_to_overwrite_and_names_the_files_unless_forced() {
    let dir = tempfile::tempdir().unwrap();
    assert!(certs_dev(dir.path(), false).status.success());
    let ca = std::fs::read(dir.path().join("ca.crt")).unwrap();
    let out = certs_dev(dir.path(), false);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&dir.path().join("ca.crt").display().to_string())
            && err.contains("server.key")
            && err.contains("--force"),
        "{err}"
    );
    assert_eq!(
        std::fs::read(dir.path().join("ca.crt")).unwrap(),
        ca,
        "untouched"
    );

    // One file is enough to refuse: nothing of a half-present PKI is replaced.
    let other = tempfile::tempdir().unwrap();
    std::fs::write(other.path().join("client.key"), "mine").unwrap();
    let out = certs_dev(other.path(), false);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("client.key"));
    assert!(!other.path().join("ca.crt").exists());
    assert_eq!(
        std::fs::read_to_string(other.path().join("client.key")).unwrap(),
        "mine"
    );

    let out = certs_dev(dir.path(), true);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_ne!(
        std::fs::read(dir.path().join("ca.crt")).unwrap(),
        ca,
        "replaced"
    );
}

/// A dev-shaped PKI (issuer organization "distpoint dev") whose server
/// certificate expired yesterday, written as `serve` names the files.
fn write_expired_dev_pki(certs: &Path) {
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "distpoint dev CA");
    ca_params.distinguished_name.push(
        DnType::OrganizationName,
        distpoint::devcerts::DEV_ORGANIZATION,
    );
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_key = KeyPair::generate().unwrap();
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);
    let mut params = CertificateParams::new(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
    let yesterday = SystemTime::now() - Duration::from_secs(86_400);
    params.not_before = (yesterday - Duration::from_secs(86_400)).into();
    params.not_after = yesterday.into();
    let key = KeyPair::generate().unwrap();
    let cert = params.signed_by(&key, &issuer).unwrap();
    std::fs::write(certs.join("ca.crt"), ca_cert.pem()).unwrap();
    std::fs::write(certs.join("server.crt"), cert.pem()).unwrap();
    std::fs::write(certs.join("server.key"), key.serialize_pem()).unwrap();
}

#[test]
fn serve_with_dev_certs_renews_an_expired_dev_certificate() {
    let site = Site::new();
    write_expired_dev_pki(&site.path("certs"));
    let old_ca = std::fs::read(site.path("certs/ca.crt")).unwrap();
    site.file("content/pub/hello.txt", b"hello");
    let config = format!(
        "{}dev_certs = true\n[[vpath]]\nurl = \"/pub\"\ndir = \"content/pub\"\nanonymous = true\n",
        site.head()
    );
    let server = site.start(&config);
    assert!(
        server.wait_log("had expired", Duration::from_secs(10)),
        "{}",
        server.log()
    );
    assert_ne!(std::fs::read(site.path("certs/ca.crt")).unwrap(), old_ca);
    let ca = site.path("certs/ca.crt");
    let (code, body, err) = curl(&[
        "-sS",
        "-f",
        "--cacert",
        ca.to_str().unwrap(),
        &server.url("/pub/hello.txt"),
    ]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(body, b"hello");
}

#[test]
fn serve_never_replaces_an_expired_certificate_it_did_not_make() {
    let site = Site::new();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params
        .distinguished_name
        .push(DnType::OrganizationName, "Example Corp");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_key = KeyPair::generate().unwrap();
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);
    let mut params = CertificateParams::new(vec!["localhost".into()]).unwrap();
    params.not_after = (SystemTime::now() - Duration::from_secs(3600)).into();
    let key = KeyPair::generate().unwrap();
    let cert = params.signed_by(&key, &issuer).unwrap();
    std::fs::write(site.path("certs/ca.crt"), ca_cert.pem()).unwrap();
    std::fs::write(site.path("certs/server.crt"), cert.pem()).unwrap();
    std::fs::write(site.path("certs/server.key"), key.serialize_pem()).unwrap();
    site.file("content/pub/hello.txt", b"hello");
    let config = format!(
        "{}dev_certs = true\n[[vpath]]\nurl = \"/pub\"\ndir = \"content/pub\"\nanonymous = true\n",
        site.head()
    );
    let server = site.start(&config);
    // An expired certificate fails the handshake; the server logs why.
    let (code, _, _) = curl(&["-sS", "-k", &server.url("/pub/hello.txt")]);
    assert_eq!(code, 0, "curl -k ignores the expiry");
    assert!(server.wait_log("distpoint::access", Duration::from_secs(10)));
    assert!(!server.log().contains("had expired"), "{}", server.log());
    assert_eq!(
        std::fs::read_to_string(site.path("certs/server.crt")).unwrap(),
        cert.pem(),
        "a certificate not made by a dev CA is never replaced"
    );
}
