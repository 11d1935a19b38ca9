//! `[origins.BUCKET]` and serve-through keys: what is accepted, and every
//! refusal named at file:line:col.

use crate::config::Config;
use std::fs;

struct Fixture {
    dir: tempfile::TempDir,
}

const HEAD: &str = "[server]\nlisten = [\"127.0.0.1:0\"]\nstate_dir = \"state\"\n\
    [tls]\ncert = \"certs/server.crt\"\nkey = \"certs/server.key\"\n";

/// A serve-through path with every key, signed by `site.pub`.
const PATH: &str = "[[vpath]]\nurl = \"/pkg\"\norigin = \"s3://packages/PKG00001\"\n\
    integrity = \"published\"\npublisher_keys = [\"site.pub\"]\nanonymous = true\n\
    cache_dir = \"cache\"\ncache_bytes = 1048576\ninterval_secs = 5\n";

const ORIGIN: &str = "[origins.packages]\nendpoint = \"http://127.0.0.1:3900\"\n\
    region = \"garage\"\naccess_key_file = \"s3.key\"\nsecret_key_file = \"s3.secret\"\n";

impl Fixture {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        crate::devcerts::write_dev_certs(&dir.path().join("certs")).unwrap();
        crate::integrity::keys::generate_key_files(&dir.path().join("site")).unwrap();
        fs::write(dir.path().join("s3.key"), "GK0123\n").unwrap();
        fs::write(dir.path().join("s3.secret"), "s3cr3t\n").unwrap();
        Fixture { dir }
    }

    fn parse(&self, body: &str) -> Result<Config, String> {
        let path = self.dir.path().join("distpoint.toml");
        fs::write(&path, format!("{HEAD}{body}")).unwrap();
        Config::load(&path).map_err(|e| e.to_string())
    }

    fn refused(&self, body: &str) -> String {
        self.parse(body).expect_err("the config should be refused")
    }
}

#[test]
fn a_serve_through_path_with_its_origin_table_is_accepted() {
    let f = Fixture::new();
    let c = f.parse(&format!("{PATH}{ORIGIN}")).unwrap();
    let vp = c.vpaths.iter().next().unwrap();
    let o = vp.origin.as_ref().unwrap();
    assert_eq!(o.url.bucket, "packages");
    assert_eq!((o.cache_bytes, o.interval.as_secs()), (1 << 20, 5));
    assert_eq!(vp.dir, f.dir.path().join("cache"));
    let s = &c.origins["packages"];
    assert_eq!(s.endpoint.as_deref(), Some("http://127.0.0.1:3900"));
    assert_eq!(s.region.as_deref(), Some("garage"));
    // The cache is written, the key files read again on reload.
    let rules = c.sandbox_rules();
    assert!(rules.write.contains(&f.dir.path().join("cache")));
    assert!(rules.read.contains(&f.dir.path().join("s3.secret")));
    assert!(
        !format!("{c:?}").contains("s3cr3t"),
        "no secret in Debug output"
    );
}

#[test]
fn serve_through_refusals_name_the_key_at_fault() {
    let f = Fixture::new();
    let cases: [(String, &str, &str); 8] = [
        (
            PATH.replace("publisher_keys = [\"site.pub\"]\n", "") + ORIGIN,
            "distpoint.toml:9:10",
            "needs publisher_keys",
        ),
        (
            PATH.replace("integrity = \"published\"", "integrity = \"auto\"") + ORIGIN,
            "distpoint.toml:10:13",
            "integrity = \"published\"",
        ),
        (
            PATH.replace("cache_dir = \"cache\"\n", "") + ORIGIN,
            "distpoint.toml:9:10",
            "needs cache_dir",
        ),
        (
            PATH.replace("cache_bytes = 1048576", "cache_bytes = 10") + ORIGIN,
            "distpoint.toml:14:15",
            "cache_bytes must be between",
        ),
        (
            PATH.replace("interval_secs = 5", "interval_secs = 0") + ORIGIN,
            "distpoint.toml:15:17",
            "interval_secs must be between",
        ),
        (
            PATH.replace("origin = ", "dir = \".\"\norigin = ") + ORIGIN,
            "distpoint.toml:9:7",
            "dir and origin exclude each other",
        ),
        (
            format!(
                "{PATH}{}",
                ORIGIN.replace("http://127.0.0.1", "http://192.0.2.1")
            ),
            "distpoint.toml:17:12",
            "loopback",
        ),
        (
            format!(
                "{PATH}{}",
                ORIGIN.replace("secret_key_file = \"s3.secret\"\n", "")
            ),
            "distpoint.toml:16:1",
            "go together",
        ),
    ];
    for (body, at, why) in cases {
        let e = f.refused(&body);
        assert!(e.contains(at) && e.contains(why), "{at} {why}: {e}");
    }
    let e = f.refused("[[vpath]]\nurl = \"/a\"\ndir = \".\"\ncache_dir = \"c\"\n");
    assert!(e.contains("need origin"), "{e}");
    let e = f.refused(&PATH.replace("s3://packages/PKG00001", "https://x/y"));
    assert!(
        e.contains("distpoint.toml:9:10") && e.contains("s3://"),
        "{e}"
    );
}

#[test]
fn a_serve_through_path_cannot_also_be_a_replica() {
    let f = Fixture::new();
    let up = "[vpath.upstream]\nsources = [\"https://site:8443/pkg\"]\n";
    let e = f.refused(&format!("{PATH}{up}{ORIGIN}"));
    assert!(
        e.contains("distpoint.toml:16:1:") && e.contains("cannot also serve through"),
        "{e}"
    );
}
