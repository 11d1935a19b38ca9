//! Config parsing and validation: every error names file:line:col.

use super::*;
use crate::integrity::DEFAULT_CHUNK_SIZE;
use std::fs;

struct Fixture {
    dir: tempfile::TempDir,
}

impl Fixture {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir(dir.path().join("content")).unwrap();
        crate::devcerts::write_dev_certs(&dir.path().join("certs")).unwrap();
        Fixture { dir }
    }

    fn parse(&self, body: &str) -> Result<Config, ConfigError> {
        let path = self.dir.path().join("distpoint.toml");
        fs::write(&path, body).unwrap();
        Config::load(&path)
    }
}

const HEAD: &str = r#"[server]
listen = ["127.0.0.1:0"]
[tls]
cert = "certs/server.crt"
key = "certs/server.key"
client_ca = "certs/ca.crt"
"#;

fn with(extra: &str) -> String {
    format!("{HEAD}{extra}")
}

fn err(f: &Fixture, body: &str) -> String {
    let e = f.parse(body).expect_err("config should be refused");
    e.to_string()
}

#[test]
fn unknown_key_is_an_error_with_position() {
    let f = Fixture::new();
    let e = err(
        &f,
        &with("[[vpath]]\nurl = \"/a\"\ndir = \"content\"\nanonymus = true\n"),
    );
    assert!(e.contains("distpoint.toml:10:1:"), "{e}");
    assert!(e.contains("anonymus"), "{e}");
}

#[test]
fn missing_dir_key_is_an_error() {
    let f = Fixture::new();
    let e = err(&f, &with("[[vpath]]\nurl = \"/a\"\n"));
    assert!(e.contains("dir"), "{e}");
    assert!(e.contains("distpoint.toml:"), "{e}");
}

#[test]
fn nonexistent_dir_is_an_error_at_the_value() {
    let f = Fixture::new();
    let e = err(&f, &with("[[vpath]]\nurl = \"/a\"\ndir = \"nope\"\n"));
    assert!(e.contains("distpoint.toml:9:7:"), "{e}");
}

#[test]
fn allow_naming_unknown_user_or_group_is_an_error() {
    let f = Fixture::new();
    let e = err(
        &f,
        &with("[[vpath]]\nurl = \"/a\"\ndir = \"content\"\nallow = [\"user:bob\"]\n"),
    );
    assert!(
        e.contains("distpoint.toml:10:10:") && e.contains("unknown user"),
        "{e}"
    );
    let e = err(
        &f,
        &with("[[vpath]]\nurl = \"/a\"\ndir = \"content\"\nallow = [\"group:g\"]\n"),
    );
    assert!(e.contains("unknown group"), "{e}");
    let e = err(
        &f,
        &with("[[vpath]]\nurl = \"/a\"\ndir = \"content\"\nallow = [\"alice\"]\n"),
    );
    assert!(e.contains("user:NAME"), "{e}");
}

#[test]
fn unreadable_key_is_an_error() {
    let f = Fixture::new();
    fs::write(f.dir.path().join("certs/server.key"), "not a key").unwrap();
    let e = err(&f, HEAD);
    assert!(
        e.contains("distpoint.toml:5:7:") && e.contains("private key"),
        "{e}"
    );
    assert!(
        !e.contains("not a key"),
        "key material must not be echoed: {e}"
    );
}

#[test]
fn bad_values_are_refused() {
    let f = Fixture::new();
    for (extra, needle) in [
        ("[[vpath]]\nurl = \"a\"\ndir = \"content\"\n", "must start with '/'"),
        ("[[vpath]]\nurl = \"/a/../b\"\ndir = \"content\"\n", "not a safe path"),
        ("[[vpath]]\nurl = \"/a\"\ndir = \"content\"\nintegrity = \"x\"\n", "integrity"),
        ("[[vpath]]\nurl = \"/a\"\ndir = \"content\"\nverify = \"x\"\n", "verify"),
        ("[[vpath]]\nurl = \"/a\"\ndir = \"content\"\nchunk_size = 1\n", "chunk_size"),
        ("[[vpath]]\nurl = \"/a\"\ndir = \"content\"\n[[vpath]]\nurl = \"/a/\"\ndir = \"content\"\n", "twice"),
        ("[users.alice]\npassword_hash = \"plain\"\n", "password_hash"),
    ] {
        let e = err(&f, &with(extra));
        assert!(e.contains(needle), "{extra:?}: {e}");
        assert!(e.contains("distpoint.toml:"), "{e}");
    }
    let e = err(&f, &HEAD.replace("127.0.0.1:0", "localhost"));
    assert!(
        e.contains("distpoint.toml:2:11:") && e.contains("listen"),
        "{e}"
    );
    let e = err(&f, &format!("{HEAD}min_version = \"1.1\"\n"));
    assert!(e.contains("min_version"), "{e}");
}

#[test]
fn syntax_error_has_position() {
    let f = Fixture::new();
    let e = err(&f, "[server\nlisten = 1\n");
    assert!(e.contains("distpoint.toml:1:"), "{e}");
}

#[test]
fn valid_config_resolves_relative_paths_and_groups() {
    let f = Fixture::new();
    let hash = crate::auth::hash_password("pw").unwrap();
    let c = f
        .parse(&with(&format!(
            "[users.alice]\npassword_hash = \"{hash}\"\n[groups]\nclients = [\"user:alice\", \"cert:client01\"]\n\
             [[vpath]]\nurl = \"/SMS_DP_SMSPKG$/PKG00001\"\ndir = \"content\"\nallow = [\"group:clients\"]\n"
        )))
        .unwrap();
    let vp = c.vpaths.get("/SMS_DP_SMSPKG$/PKG00001").unwrap();
    assert_eq!(vp.dir, f.dir.path().join("content"));
    assert_eq!(vp.chunk_size, DEFAULT_CHUNK_SIZE);
    let d = c.describe();
    assert!(
        d.contains("cert:client01") && d.contains("user:alice"),
        "{d}"
    );
    assert_eq!(c.tls.cert, f.dir.path().join("certs/server.crt"));
}

#[test]
fn auth_throttle_keys_have_defaults_and_are_validated() {
    let f = Fixture::new();
    let c = f.parse(HEAD).unwrap();
    assert_eq!(c.server.limits.auth_failures_per_minute, 10);
    assert_eq!(c.server.limits.auth_lockout_max, Duration::from_secs(300));
    let body = HEAD.replace(
        "[tls]",
        "auth_failures_per_minute = 3\nauth_lockout_max_secs = 2\n[tls]",
    );
    let limits = f.parse(&body).unwrap().server.limits;
    assert_eq!(limits.auth_failures_per_minute, 3);
    assert_eq!(limits.auth_lockout_max, Duration::from_secs(2));
    let throttle = limits.auth_throttle();
    assert_eq!(
        (throttle.failures_per_minute, throttle.lockout_max),
        (3, Duration::from_secs(2))
    );
    // Zero would lock out on no failure at all, or never lift: both are refused with a position.
    for (line, needle) in [
        ("auth_failures_per_minute = 0", "between 1 and 10000"),
        ("auth_lockout_max_secs = 0", "between 1 and 86400 seconds"),
        (
            "auth_lockout_max_secs = 86401",
            "between 1 and 86400 seconds",
        ),
    ] {
        let e = err(&f, &HEAD.replace("[tls]", &format!("{line}\n[tls]")));
        assert!(e.contains("distpoint.toml:3:") && e.contains(needle), "{e}");
    }
}

#[test]
fn warnings_name_what_validates_but_exposes_more_than_meant() {
    let f = Fixture::new();
    fs::create_dir_all(f.dir.path().join("content/pub/private")).unwrap();
    let c = f
        .parse(&with(
        "[[vpath]]\nurl = \"/pub\"\ndir = \"content/pub\"\nanonymous = true\nallow = [\"cert:x\"]\n\
         [[vpath]]\nurl = \"/private\"\ndir = \"content/pub/private\"\nallow = [\"cert:x\"]\n\
         [[vpath]]\nurl = \"/all\"\ndir = \"/\"\nallow = [\"cert:x\"]\n",
    ))
        .unwrap();
    let w = c.warnings().join("\n");
    assert!(
        w.contains("/pub: anonymous = true, so its allow list has no effect"),
        "{w}"
    );
    assert!(
        w.contains("/private: its folder") && w.contains("which /pub serves anonymously"),
        "{w}"
    );
    assert!(
        w.contains("/all: dir = \"/\" serves the whole file system"),
        "{w}"
    );
    assert_eq!(c.warnings().len(), 3, "{w}");
}

#[test]
fn metrics_audit_and_log_sections_validate_with_positions() {
    let f = Fixture::new();
    let c = f.parse(&with("")).unwrap();
    assert!(c.metrics.is_none() && c.audit.is_none());
    assert_eq!(c.log_format, LogFormat::Text);

    let c = f
        .parse(&with(
            "[metrics]\nallow = [\"cert:prometheus\"]\n[audit]\n[log]\nformat = \"json\"\n",
        ))
        .unwrap();
    let m = c.metrics.as_ref().unwrap();
    assert_eq!(m.url, DEFAULT_METRICS_URL);
    assert!(!m.anonymous);
    let a = c.audit.as_ref().unwrap();
    assert_eq!(a.dir, c.server.state_dir.join("audit"));
    assert_eq!(a.retention_days, 30);
    assert_eq!(c.log_format, LogFormat::Json);
    let abs = f.dir.path().join("elsewhere");
    let c = f
        .parse(&with(&format!(
            "[audit]\ndir = {:?}\nretention_days = 7\n",
            abs.to_str().unwrap()
        )))
        .unwrap();
    assert_eq!(c.audit.unwrap().dir, abs, "an absolute dir stays");

    for (body, at, says) in [
        ("[metrics]\nurl = \"metrics\"\n", "8:7:", "absolute path"),
        ("[metrics]\nurl = \"/m?x=1\"\n", "8:7:", "no query"),
        ("[metrics]\nurl = \"/a/../m\"\n", "8:7:", "'..'"),
        ("[metrics]\nurl = \"/a%2fb\"\n", "8:7:", "escapes"),
        (
            "[metrics]\nallow = [\"user:nobody\"]\n",
            "8:10:",
            "unknown user",
        ),
        ("[metrics]\nanonymus = true\n", "8:1:", "anonymus"),
        (
            "[audit]\nretention_days = 0\n",
            "8:18:",
            "between 1 and 3650",
        ),
        ("[audit]\ndir = \"\"\n", "8:7:", "must not be empty"),
        ("[log]\nformat = \"xml\"\n", "8:10:", "\"text\" or \"json\""),
    ] {
        let e = err(&f, &with(body));
        assert!(e.contains(&format!("distpoint.toml:{at}")), "{body}: {e}");
        assert!(e.contains(says), "{body}: {e}");
    }
    let e = err(
        &f,
        &with("[[vpath]]\nurl = \"/m\"\ndir = \"content\"\n[metrics]\nurl = \"/m\"\n"),
    );
    assert!(
        e.contains("distpoint.toml:11:7:") && e.contains("also a vpath url"),
        "{e}"
    );
}

#[test]
fn anonymous_or_unreadable_metrics_are_warned_about() {
    let f = Fixture::new();
    let c = f.parse(&with("[metrics]\nanonymous = true\n")).unwrap();
    assert!(c
        .warnings()
        .iter()
        .any(|w| w.contains("metrics are anonymous")));
    let c = f.parse(&with("[metrics]\n")).unwrap();
    assert!(c
        .warnings()
        .iter()
        .any(|w| w.contains("nobody can read them")));
    let c = f
        .parse(&with("[metrics]\nallow = [\"cert:prometheus\"]\n"))
        .unwrap();
    assert!(c.warnings().is_empty());
}

#[test]
fn public_url_is_https_host_and_port_only() {
    let f = Fixture::new();
    for good in [
        "https://dp.example.org",
        "https://dp.example.org:8443/",
        "https://[::1]:8443",
    ] {
        let c = f
            .parse(&with("").replacen(
                "[server]\n",
                &format!("[server]\npublic_url = {good:?}\n"),
                1,
            ))
            .unwrap_or_else(|e| panic!("{good}: {e}"));
        assert_eq!(
            c.server.public_url.as_deref(),
            Some(good.trim_end_matches('/'))
        );
    }
    for bad in [
        "http://dp.example.org",
        "https://dp.example.org/pkg",
        "https://",
        "dp.example.org",
        "https://u@h",
    ] {
        let e = err(
            &f,
            &with("").replacen(
                "[server]\n",
                &format!("[server]\npublic_url = {bad:?}\n"),
                1,
            ),
        );
        assert!(e.contains("public_url") && e.contains(":2:"), "{bad}: {e}");
    }
}

#[test]
fn a_replica_must_be_published_and_vouched_for() {
    let f = Fixture::new();
    let vp = "[[vpath]]\nurl = \"/r\"\ndir = \"content\"\n";
    let up = "[vpath.upstream]\nsources = [\"https://site:8443/pkg\"]\n";
    let e = err(&f, &with(&format!("{vp}{up}")));
    assert!(
        e.contains("distpoint.toml:10:1:") && e.contains("integrity = \"published\""),
        "{e}"
    );
    let e = err(&f, &with(&format!("{vp}integrity = \"published\"\n{up}")));
    assert!(
        e.contains("distpoint.toml:11:1:") && e.contains("expect"),
        "{e}"
    );
    let hash = "ab".repeat(32);
    let ok = f
        .parse(&with(&format!(
            "{vp}integrity = \"published\"\n{up}expect = \"{hash}\"\nwindows = [\"22:00-06:00\"]\n\
             rate_limit = 100000\ninterval_secs = 60\n"
        )))
        .unwrap();
    let u = &ok.upstreams["/r"];
    assert_eq!(u.sources, vec!["https://site:8443/pkg".to_string()]);
    assert_eq!(u.interval, Duration::from_secs(60));
    assert_eq!(u.windows[0].to_string(), "22:00-06:00");
    assert!(ok
        .sandbox_rules()
        .write
        .contains(&f.dir.path().join("content")));
    for (extra, line, what) in [
        ("expect = \"xyz\"\n", 13, "64-digit"),
        (
            &format!("expect = \"{hash}\"\nwindows = [\"22-06\"]\n") as &str,
            14,
            "HH:MM",
        ),
        (
            &format!("expect = \"{hash}\"\ninterval_secs = 1\n"),
            14,
            "interval_secs",
        ),
        (
            &format!("expect = \"{hash}\"\nuser = \"b\"\n"),
            11,
            "password_file",
        ),
        (&format!("expect = \"{hash}\"\nsurces = []\n"), 14, "surces"),
    ] {
        let e = err(
            &f,
            &with(&format!("{vp}integrity = \"published\"\n{up}{extra}")),
        );
        assert!(
            e.contains(&format!("distpoint.toml:{line}:")) && e.contains(what),
            "{e}"
        );
    }
    let e = err(
        &f,
        &with(&format!(
            "{vp}integrity = \"published\"\n[vpath.upstream]\nsources = [\"http://site/pkg\"]\nexpect = \"{hash}\"\n"
        )),
    );
    assert!(
        e.contains("distpoint.toml:12:12:") && e.contains("https://"),
        "{e}"
    );
    // A bucket is a source too; a malformed one is refused where it stands.
    let bucket = |src: &str| {
        with(&format!(
            "{vp}integrity = \"published\"\n[vpath.upstream]\nsources = [\"https://site/pkg\", \"{src}\"]\nexpect = \"{hash}\"\n"
        ))
    };
    let ok = f.parse(&bucket("s3://packages/pkg/")).unwrap();
    assert_eq!(ok.upstreams["/r"].sources[1], "s3://packages/pkg");
    let e = err(&f, &bucket("s3://Bad_Bucket/pkg"));
    assert!(
        e.contains("distpoint.toml:12:") && e.contains("bucket name"),
        "{e}"
    );
}
