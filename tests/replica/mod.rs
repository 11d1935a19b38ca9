//! Shared harness of the replica tests (`tests/replica_*.rs`): tiers of real
//! servers, each with its own PKI made at test time, non-repeating content,
//! `publish`, `sync` and `status` through the real binary, the control
//! socket for waiting on a replica, and bytes counted in an upstream's
//! access log.
#![allow(dead_code)]

use crate::support::{dp, Server, Site, PASSWORD};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Content that never repeats a chunk (xorshift64*): `support::data`
/// repeats every 128 KiB, which would let chunk reuse hide fetches.
pub fn unique(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        out.extend_from_slice(&x.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
    }
    out.truncate(len);
    out
}

pub fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// `distpoint publish DIR --key KEY --sequence N [extra…]`; the package hash.
pub fn publish(dir: &Path, key: &Path, sequence: u64, extra: &[&str]) -> String {
    let seq = sequence.to_string();
    let mut args = vec!["publish", s(dir), "--key", s(key), "--sequence", &seq];
    args.extend_from_slice(extra);
    let (code, out, err) = dp(&args);
    assert_eq!(code, 0, "publish: {err}");
    out.lines()
        .find_map(|l| l.strip_prefix("package "))
        .unwrap()
        .trim()
        .to_string()
}

/// The upstream tier: a site that publishes and signs `/pkg` from
/// `content/pkg`, readable by `allow`.
pub struct Origin {
    pub site: Site,
    pub key: PathBuf,
    pub server: Option<Server>,
}

impl Origin {
    /// A site with a publisher key; the package folder is `content/pkg`.
    pub fn new() -> Origin {
        let site = Site::new();
        let key = site.path("publisher.key");
        let (code, _, err) = dp(&["publish", "--gen-key", s(&key)]);
        assert_eq!(code, 0, "{err}");
        std::fs::create_dir_all(site.path("content/pkg")).unwrap();
        Origin {
            site,
            key,
            server: None,
        }
    }

    pub fn pkg(&self) -> PathBuf {
        self.site.path("content/pkg")
    }

    pub fn public_key(&self) -> PathBuf {
        self.site.path("publisher.key.pub")
    }

    /// Start serving `/pkg` to `allow` (e.g. `["cert:region01"]`), checking
    /// the publisher's signature itself.
    pub fn start(&mut self, allow: &[&str]) -> &Server {
        self.start_with(allow, true)
    }

    /// The same; without `keys` the site serves whatever manifest it has
    /// (an expired one too), so the replica's own checks are seen.
    pub fn start_with(&mut self, allow: &[&str], keys: bool) -> &Server {
        let allow: Vec<String> = allow.iter().map(|a| format!("{a:?}")).collect();
        let keys = if keys {
            "publisher_keys = [\"publisher.key.pub\"]\n"
        } else {
            ""
        };
        let body = format!(
            "{}[[vpath]]\nurl = \"/pkg\"\ndir = \"content/pkg\"\nintegrity = \"published\"\n\
             {keys}allow = [{}]\n",
            self.site.head(),
            allow.join(", ")
        );
        self.server = Some(self.site.start(&body));
        self.server.as_ref().unwrap()
    }

    pub fn server(&self) -> &Server {
        self.server.as_ref().unwrap()
    }
}

/// A replica tier: its own site folder and PKI, `/pkg` a replica of `upstream`.
pub struct Replica {
    pub site: Site,
    pub config: PathBuf,
    pub server: Option<Server>,
}

/// How a replica reaches its upstream.
pub enum Login<'a> {
    /// A client certificate issued by the upstream's CA with this CN.
    Cert(&'a Site, &'a str),
    /// A Basic account at the upstream.
    Basic(&'a str),
    /// Nothing (the upstream path is anonymous).
    None,
}

impl Replica {
    /// Write the config: `/pkg` replicates `sources`, trusting `upstream`'s
    /// CA, signed by `key`; `users` are accounts of this tier; `upstream_extra`
    /// goes into `[vpath.upstream]`, `vpath_extra` into `[[vpath]]`.
    pub fn new(
        upstream: &Site,
        sources: &[String],
        key: &Path,
        login: Login<'_>,
        vpath_extra: &str,
        upstream_extra: &str,
    ) -> Replica {
        let site = Site::new();
        std::fs::create_dir_all(site.path("replica/pkg")).unwrap();
        std::fs::create_dir_all(site.path("keys")).unwrap();
        std::fs::copy(key, site.path("keys/site.pub")).unwrap();
        std::fs::write(
            site.path("keys/upstream-ca.crt"),
            upstream.pki.ca.cert_pem(),
        )
        .unwrap();
        let login = match login {
            Login::Cert(issuer, cn) => {
                let pair = issuer.pki.ca.issue_client(cn).unwrap();
                std::fs::write(site.path("keys/me.crt"), &pair.cert).unwrap();
                std::fs::write(site.path("keys/me.key"), &pair.key).unwrap();
                "client_cert = \"keys/me.crt\"\nclient_key = \"keys/me.key\"\n".to_string()
            }
            Login::Basic(user) => {
                std::fs::write(site.path("keys/password"), format!("{PASSWORD}\n")).unwrap();
                format!("user = \"{user}\"\npassword_file = \"keys/password\"\n")
            }
            Login::None => String::new(),
        };
        let sources: Vec<String> = sources.iter().map(|u| format!("{u:?}")).collect();
        let body = format!(
            "{head}{users}[[vpath]]\nurl = \"/pkg\"\ndir = \"replica/pkg\"\nintegrity = \"published\"\n\
             publisher_keys = [\"keys/site.pub\"]\n{vpath_extra}\
             [vpath.upstream]\nsources = [{sources}]\nca = \"keys/upstream-ca.crt\"\n{login}{upstream_extra}",
            head = site.head(),
            users = site.user("branch01"),
            sources = sources.join(", "),
        );
        let config = site.config(&body);
        Replica {
            site,
            config,
            server: None,
        }
    }

    pub fn start(&mut self) -> &Server {
        self.server = Some(Server::start(&self.config));
        self.server.as_ref().unwrap()
    }

    pub fn start_with_env(&mut self, env: &[(&str, &std::ffi::OsStr)]) -> &Server {
        self.server = Some(Server::start_with_env(&self.config, env));
        self.server.as_ref().unwrap()
    }

    pub fn server(&self) -> &Server {
        self.server.as_ref().unwrap()
    }

    pub fn state_dir(&self) -> PathBuf {
        self.site.path("state")
    }

    /// `distpoint sync --config … --json`: (exit code, the replica's status).
    pub fn sync(&self) -> (i32, Value) {
        let (code, out, err) = dp(&["sync", "--config", s(&self.config), "--json"]);
        let v: Value = serde_json::from_str(out.trim())
            .unwrap_or_else(|e| panic!("sync output {out:?} ({e}); stderr {err}"));
        (code, v["replicas"][0].clone())
    }

    /// The replica's status from the control socket (blocking, so that it
    /// works inside and outside a runtime).
    pub fn status(&self) -> Value {
        use std::io::{BufRead, Write};
        let path = distpoint::replica::control::socket_path(&self.state_dir());
        let mut sock = std::os::unix::net::UnixStream::connect(&path)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        sock.write_all(b"{\"cmd\":\"status\"}\n").unwrap();
        let mut line = String::new();
        std::io::BufReader::new(sock).read_line(&mut line).unwrap();
        let v: Value = serde_json::from_str(&line).unwrap();
        v["replicas"][0].clone()
    }

    /// Wait until the status satisfies `pred`.
    pub fn wait_status(
        &self,
        what: &str,
        timeout: Duration,
        pred: impl Fn(&Value) -> bool,
    ) -> Value {
        let end = Instant::now() + timeout;
        loop {
            let st = self.status();
            if pred(&st) {
                return st;
            }
            assert!(
                Instant::now() < end,
                "{what}: status {st}\nlog:\n{}",
                self.server().log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The version folders beneath `replica/pkg/.distpoint/versions`.
    pub fn versions(&self) -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> =
            std::fs::read_dir(self.site.path("replica/pkg/.distpoint/versions"))
                .map(|d| d.flatten().map(|e| e.path()).collect())
                .unwrap_or_default();
        v.sort();
        v
    }
}

/// Content bytes an upstream sent to `principal` for paths under `prefix`,
/// from its access log (`principal=… path=… bytes=N`).
pub fn bytes_sent(log: &str, principal: &str, prefix: &str) -> u64 {
    log.lines()
        .filter(|l| l.contains("distpoint::access"))
        .filter(|l| field(l, "principal") == Some(principal))
        .filter(|l| field(l, "path").is_some_and(|p| p.starts_with(prefix) && !p.ends_with('/')))
        .filter_map(|l| field(l, "bytes").and_then(|b| b.parse::<u64>().ok()))
        .sum()
}

/// Requests an upstream saw from `principal` (any path).
pub fn requests_from(log: &str, principal: &str) -> usize {
    log.lines()
        .filter(|l| l.contains("distpoint::access"))
        .filter(|l| field(l, "principal") == Some(principal))
        .count()
}

fn field<'a>(line: &'a str, name: &str) -> Option<&'a str> {
    let at = line.find(&format!(" {name}="))? + name.len() + 2;
    let rest = &line[at..];
    Some(rest.split(' ').next().unwrap_or("").trim_matches('"'))
}
