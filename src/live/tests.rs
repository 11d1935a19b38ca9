//! Unit tests: what a new config revokes, what the diff says, TLS reloads.

use super::diff::ConfigDiff;
use crate::auth::Identity;
use crate::body::CutSignal;
use crate::config::Config;
use crate::state::{Authority, Revoked, TlsState, TransferRegistry};
use std::collections::BTreeSet;
use std::fs;
use std::path::Path;
use tokio_util::sync::CancellationToken;

struct Fixture {
    dir: tempfile::TempDir,
    hash: String,
}

impl Fixture {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        for d in ["content/a", "content/b"] {
            fs::create_dir_all(dir.path().join(d)).unwrap();
        }
        crate::devcerts::write_dev_certs(&dir.path().join("certs")).unwrap();
        // Validation only parses the PHC string; a cheap hash keeps debug tests fast.
        let hash = "$argon2id$v=19$m=8,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA".to_string();
        Fixture { dir, hash }
    }

    fn config(&self, body: &str) -> Config {
        let head = "[server]\nlisten = [\"127.0.0.1:0\"]\n[tls]\ncert = \"certs/server.crt\"\n\
                    key = \"certs/server.key\"\nclient_ca = \"certs/ca.crt\"\n";
        let users = format!(
            "[users.alice]\npassword_hash = \"{h}\"\n[users.bob]\npassword_hash = \"{h}\"\n",
            h = self.hash
        );
        let path = self.dir.path().join("distpoint.toml");
        fs::write(&path, format!("{head}{users}{body}")).unwrap();
        Config::load(&path).unwrap_or_else(|e| panic!("{e}"))
    }
}

const BASE: &str = "[groups]\nops = [\"user:bob\"]\n\
    [[vpath]]\nurl = \"/a\"\ndir = \"content/a\"\nallow = [\"user:alice\", \"group:ops\"]\n\
    [[vpath]]\nurl = \"/pub\"\ndir = \"content/b\"\nanonymous = true\n";

fn segs(p: &str) -> Vec<String> {
    p.split('/')
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect()
}

fn authority(config: &Config, path: &str, user: Option<&str>) -> Authority {
    let segments = segs(path);
    let (vp, _) = config.vpaths.route(&segments).unwrap();
    let identity = Identity {
        user: user.map(String::from),
        cert: None,
    };
    Authority::new(vp, &segments, identity)
}

#[test]
fn unchanged_config_revokes_nothing() {
    let f = Fixture::new();
    let c = f.config(BASE);
    let none = BTreeSet::new();
    assert_eq!(
        authority(&c, "/a/x", Some("alice")).check(&c, &none),
        Ok(())
    );
    assert_eq!(authority(&c, "/a/x", Some("bob")).check(&c, &none), Ok(()));
    assert_eq!(authority(&c, "/pub/x", None).check(&c, &none), Ok(()));
}

#[test]
fn each_kind_of_revocation() {
    let f = Fixture::new();
    let old = f.config(BASE);
    let none = BTreeSet::new();
    let alice = authority(&old, "/a/x", Some("alice"));
    let bob = authority(&old, "/a/x", Some("bob"));
    let anon = authority(&old, "/pub/x", None);

    let removed = f.config(&BASE.replace("url = \"/a\"", "url = \"/z\""));
    assert_eq!(
        alice.check(&removed, &none),
        Err(Revoked::PathRemoved("/a".into()))
    );

    let moved = f.config(&BASE.replace("dir = \"content/a\"", "dir = \"content/b\""));
    assert_eq!(
        alice.check(&moved, &none),
        Err(Revoked::DirChanged("/a".into()))
    );

    let closed = f.config(&BASE.replace("anonymous = true", "anonymous = false"));
    assert_eq!(
        anon.check(&closed, &none),
        Err(Revoked::NoLongerAnonymous("/pub".into()))
    );

    let only_ops = f.config(&BASE.replace("\"user:alice\", ", ""));
    assert!(matches!(
        alice.check(&only_ops, &none),
        Err(Revoked::NotAllowed(..))
    ));
    assert_eq!(bob.check(&only_ops, &none), Ok(()), "bob is untouched");

    let bob_out = f.config(&BASE.replace("ops = [\"user:bob\"]", "ops = []"));
    assert!(matches!(
        bob.check(&bob_out, &none),
        Err(Revoked::NotAllowed(..))
    ));
    assert_eq!(alice.check(&bob_out, &none), Ok(()));

    let pw: BTreeSet<String> = ["alice".to_string()].into();
    assert_eq!(
        alice.check(&old, &pw),
        Err(Revoked::PasswordChanged("alice".into()))
    );

    // A longer path added above a running transfer: its rules changed.
    let nested = f.config(&format!(
        "{BASE}[[vpath]]\nurl = \"/pub/x\"\ndir = \"content/a\"\nallow = [\"user:alice\"]\n"
    ));
    assert!(matches!(
        anon.check(&nested, &none),
        Err(Revoked::Rerouted(..))
    ));
}

#[tokio::test]
async fn registry_cuts_only_revoked_transfers_and_forgets_dropped_ones() {
    let f = Fixture::new();
    let old = f.config(BASE);
    let reg = TransferRegistry::default();
    let conn = CancellationToken::new();
    let mut alice = reg.register(authority(&old, "/a/x", Some("alice")), conn.clone());
    let mut bob = reg.register(authority(&old, "/a/x", Some("bob")), conn.clone());
    let gone = reg.register(authority(&old, "/pub/x", None), conn.clone());
    drop(gone);
    assert_eq!(reg.len(), 2);

    let new = f.config(&BASE.replace("\"user:alice\", ", ""));
    let cut = reg.revoke(&new, &BTreeSet::new());
    assert_eq!(cut.len(), 1, "{cut:?}");
    assert!(cut[0].contains("user:alice"), "{cut:?}");

    let waker = noop_waker();
    let mut cx = std::task::Context::from_waker(&waker);
    alice.block_sent();
    bob.block_sent();
    assert!(alice.poll_cut(&mut cx).is_ready());
    assert!(bob.poll_cut(&mut cx).is_pending());

    // A cut transfer still registered after the grace closes its connection.
    tokio::time::sleep(crate::state::registry::CLOSE_GRACE * 2).await;
    assert!(conn.is_cancelled());
    drop((alice, bob));
    assert!(reg.is_empty());
}

/// A waker that does nothing (`Waker::noop` needs a newer Rust than the MSRV).
fn noop_waker() -> std::task::Waker {
    struct Noop;
    impl std::task::Wake for Noop {
        fn wake(self: std::sync::Arc<Self>) {}
    }
    std::sync::Arc::new(Noop).into()
}

#[test]
fn diff_names_paths_users_and_groups_but_never_hashes() {
    let f = Fixture::new();
    let old = f.config(BASE);
    let new_body = BASE
        .replace(
            "anonymous = true",
            "anonymous = false\nallow = [\"user:bob\"]",
        )
        .replace("ops = [\"user:bob\"]", "ops = [\"user:alice\"]")
        .replace("url = \"/a\"", "url = \"/a2\"");
    let new = f.config(&new_body);
    let d = ConfigDiff::between(&old, &new);
    let all = d.applied.join("\n");
    assert!(all.contains("path added: /a2"), "{all}");
    assert!(all.contains("path removed: /a"), "{all}");
    assert!(
        all.contains("path changed: /pub: anonymous true -> false; allow [] -> [user:bob]"),
        "{all}"
    );
    assert!(
        all.contains("group changed: ops: [user:bob] -> [user:alice]"),
        "{all}"
    );
    assert!(!all.contains("argon2"), "{all}");
    assert!(d.need_restart.is_empty());
}

#[test]
fn listen_changes_apply_and_limit_changes_need_a_restart() {
    let f = Fixture::new();
    let old = f.config(BASE);
    let path = f.dir.path().join("distpoint.toml");
    let text = fs::read_to_string(&path).unwrap();
    let new = Config::parse(&path, &text.replace("127.0.0.1:0", "127.0.0.1:9443")).unwrap();
    let d = ConfigDiff::between(&old, &new);
    assert_eq!(d.applied.len(), 1, "{:?}", d.applied);
    assert!(d.applied[0].contains("127.0.0.1:9443"), "{:?}", d.applied);
    assert!(d.need_restart.is_empty());

    let slower = text.replace("[tls]", "idle_timeout_secs = 5\n[tls]");
    let new = Config::parse(&path, &slower).unwrap();
    let d = ConfigDiff::between(&old, &new);
    assert!(d.applied.is_empty(), "{:?}", d.applied);
    assert_eq!(d.need_restart.len(), 1, "{:?}", d.need_restart);
}

fn write_pair(dir: &Path, pair: &crate::devcerts::PemPair) {
    fs::write(dir.join("server.crt"), &pair.cert).unwrap();
    fs::write(dir.join("server.key"), &pair.key).unwrap();
}

#[test]
fn tls_reload_swaps_good_material_and_keeps_old_on_bad() {
    let f = Fixture::new();
    let c = f.config(BASE);
    let tls = TlsState::new(&c.tls).unwrap();
    let first = tls.fingerprint();
    let certs = f.dir.path().join("certs");
    let ca = crate::devcerts::DevCa::new("other CA").unwrap();

    let next = ca.issue_server(&["localhost"]).unwrap();
    write_pair(&certs, &next);
    let change = tls.reload(&c.tls).unwrap();
    assert_eq!(change.new_cert.as_deref(), Some(tls.fingerprint().as_str()));
    assert_ne!(tls.fingerprint(), first);
    assert!(!change.verifier);

    // Certificate and key that do not belong together: nothing changes.
    let other = ca.issue_server(&["localhost"]).unwrap();
    let before = tls.fingerprint();
    fs::write(certs.join("server.crt"), &other.cert).unwrap();
    assert!(tls.reload(&c.tls).is_err());
    assert_eq!(tls.fingerprint(), before);

    // A new client CA builds a new verifier and retires the old generation.
    let client = crate::tls::load_cert_chain(&certs.join("client.crt")).unwrap();
    let first_ca = fs::read_to_string(certs.join("ca.crt")).unwrap();
    let before = tls.generation();
    assert!(before.trusts(&client));
    write_pair(&certs, &next);
    fs::write(certs.join("ca.crt"), ca.cert_pem()).unwrap();
    let change = tls.reload(&c.tls).unwrap();
    assert!(change.verifier && change.new_cert.is_none());
    assert!(before.replaced.is_cancelled());
    assert!(!tls.generation().trusts(&client), "the first CA is gone");

    // A bundle that still holds the first CA keeps trusting its clients.
    fs::write(certs.join("ca.crt"), format!("{}{first_ca}", ca.cert_pem())).unwrap();
    tls.reload(&c.tls).unwrap();
    assert!(tls.generation().trusts(&client));
}
