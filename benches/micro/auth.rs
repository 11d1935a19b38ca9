//! The credential cache (`distpoint::auth`): what a request with Basic
//! credentials pays once its password was verified recently, against one
//! without credentials.

use distpoint::auth::{hash_password, parse_basic, Authenticator, Directory};
use divan::{black_box, Bencher};
use http::HeaderValue;
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::OnceLock;

const PEER: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7));

/// One argon2 hash with the default parameters, made once for every benchmark.
fn directory() -> &'static Directory {
    static DIR: OnceLock<Directory> = OnceLock::new();
    DIR.get_or_init(|| {
        let mut users = BTreeMap::new();
        users.insert("alice".to_string(), hash_password("correct horse").unwrap());
        Directory::new(users, BTreeMap::new())
    })
}

fn header(user: &str, password: &str) -> HeaderValue {
    use base64::Engine;
    let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    HeaderValue::from_str(&format!("Basic {token}")).unwrap()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
}

/// Basic credentials verified within the TTL: parse, lock-out check, cache key
/// (SHA-256), cache lookup. argon2 does not run.
#[divan::bench]
fn cached_basic(bencher: Bencher) {
    let rt = runtime();
    let auth = Authenticator::default();
    let dir = directory();
    let value = header("alice", "correct horse");
    rt.block_on(auth.authenticate(PEER, dir, Some(&value), None))
        .unwrap();
    bencher.bench(|| {
        rt.block_on(auth.authenticate(PEER, dir, black_box(Some(&value)), None))
            .unwrap()
    });
}

/// No Authorization header (anonymous paths, client certificates).
#[divan::bench]
fn no_credentials(bencher: Bencher) {
    let rt = runtime();
    let auth = Authenticator::default();
    let dir = directory();
    bencher.bench(|| {
        rt.block_on(auth.authenticate(PEER, dir, None, black_box(Some("client01"))))
            .unwrap()
    });
}

/// Decoding the header alone.
#[divan::bench]
fn parse(bencher: Bencher) {
    let value = header("alice", "correct horse");
    bencher.bench(|| parse_basic(black_box(&value)).unwrap());
}
