//! The pipeline in-process: requests built with `Request::builder()`, no
//! socket, no TLS. The subprocess tests in `tests/` show what only a real
//! connection can; these show the order of checks and the bodies fast.

use super::*;
use crate::state::ServerState;
use http_body_util::BodyExt;
use std::fs;
use std::net::SocketAddr;

mod observe;

struct Fixture {
    dir: tempfile::TempDir,
    state: Arc<ServerState>,
}

const ALICE_HASH: &str = "$argon2id$v=19$m=8,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA";

impl Fixture {
    fn new(paths: &str) -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        for d in ["pub", "priv"] {
            fs::create_dir_all(dir.path().join(d)).unwrap();
        }
        fs::write(dir.path().join("pub/hello.txt"), b"hello, world\n").unwrap();
        fs::write(dir.path().join("priv/secret.bin"), vec![7u8; 10_000]).unwrap();
        // TLS files are only read by the accept loop; validation needs them to exist.
        crate::devcerts::write_dev_certs(&dir.path().join("certs")).unwrap();
        let text = format!(
            "[server]\nlisten = [\"127.0.0.1:0\"]\n[tls]\ncert = \"certs/server.crt\"\n\
             key = \"certs/server.key\"\n[users.alice]\npassword_hash = \"{ALICE_HASH}\"\n{paths}"
        );
        let path = dir.path().join("distpoint.toml");
        fs::write(&path, &text).unwrap();
        let config = Config::parse(&path, &text).unwrap_or_else(|e| panic!("{e}"));
        Fixture {
            state: Arc::new(ServerState::new(config)),
            dir,
        }
    }

    async fn get(&self, req: http::request::Builder) -> (StatusCode, HeaderMap, Vec<u8>) {
        self.get_as(req, None).await
    }

    /// The same from a connection that showed a client certificate with `cert_cn`.
    async fn get_as(
        &self,
        req: http::request::Builder,
        cert_cn: Option<&str>,
    ) -> (StatusCode, HeaderMap, Vec<u8>) {
        let conn = Arc::new(ConnInfo::new(
            SocketAddr::from(([127, 0, 0, 1], 40000)),
            cert_cn.map(str::to_string),
        ));
        let resp = handle(self.state.clone(), conn, req.body(()).unwrap())
            .await
            .unwrap();
        let (parts, body) = resp.into_parts();
        let bytes = body.collect().await.unwrap().to_bytes().to_vec();
        (parts.status, parts.headers, bytes)
    }
}

const PATHS: &str = "[[vpath]]\nurl = \"/pub\"\ndir = \"pub\"\nanonymous = true\n\
                     [[vpath]]\nurl = \"/priv\"\ndir = \"priv\"\nallow = [\"user:alice\"]\n";

fn get(uri: &str) -> http::request::Builder {
    Request::builder().uri(uri)
}

#[tokio::test]
async fn an_anonymous_file_comes_whole_with_validators_and_digest() {
    let f = Fixture::new(PATHS);
    let (status, h, body) = f.get(get("/pub/hello.txt")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, b"hello, world\n");
    assert_eq!(h[header::CONTENT_LENGTH], "13");
    assert!(h[header::ETAG].to_str().unwrap().starts_with('"'));
    assert!(h["repr-digest"].to_str().unwrap().starts_with("sha-256=:"));
    assert_eq!(h[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
    assert!(
        f.state.transfers.is_empty(),
        "the transfer ended with its body"
    );
}

#[tokio::test]
async fn the_order_of_checks_is_route_then_auth_then_resolve() {
    let f = Fixture::new(PATHS);
    assert_eq!(f.get(get("/nowhere/x")).await.0, StatusCode::NOT_FOUND);
    // Credentials are asked for before the file is looked up: no oracle.
    let (status, h, _) = f.get(get("/priv/missing")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(h.contains_key(header::WWW_AUTHENTICATE));
    let (status, h, _) = f.get(get("/pub/x").method(Method::POST)).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(h[header::ALLOW], "GET, HEAD");
    assert_eq!(
        f.get(get("/pub/..%2fpriv/secret.bin")).await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        f.get(get("/pub")).await.0,
        StatusCode::NOT_FOUND,
        "no listings"
    );
}

#[tokio::test]
async fn ranges_and_conditionals_answer_from_the_verified_file() {
    let f = Fixture::new(PATHS);
    let (status, h, body) = f
        .get(get("/pub/hello.txt").header("range", "bytes=7-11"))
        .await;
    assert_eq!(status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(body, b"world");
    assert_eq!(h[header::CONTENT_RANGE], "bytes 7-11/13");
    let etag = h[header::ETAG].clone();
    let (status, _, body) = f
        .get(get("/pub/hello.txt").header("if-none-match", etag))
        .await;
    assert_eq!((status, body.len()), (StatusCode::NOT_MODIFIED, 0));
    let (status, h, _) = f
        .get(get("/pub/hello.txt").header("range", "bytes=99-"))
        .await;
    assert_eq!(status, StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(h[header::CONTENT_RANGE], "bytes */13");
    let (status, h, body) = f.get(get("/pub/hello.txt").method(Method::HEAD)).await;
    assert_eq!((status, body.len()), (StatusCode::OK, 0));
    assert_eq!(h[header::CONTENT_LENGTH], "13");
}

#[tokio::test]
async fn a_manifest_is_served_under_the_files_rules() {
    let f = Fixture::new(PATHS);
    let (status, h, body) = f.get(get("/pub/hello.txt?manifest")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(h[header::CONTENT_TYPE], "application/json");
    let m: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(m["size"], 13);
    assert_eq!(
        f.get(get("/priv/secret.bin?manifest")).await.0,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn a_revoked_transfer_is_cut_after_its_first_block() {
    let f = Fixture::new(
        "[[vpath]]\nurl = \"/pub\"\ndir = \"pub\"\nanonymous = true\nchunk_size = 4096\n",
    );
    fs::write(f.dir.path().join("pub/big.bin"), vec![1u8; 64 * 1024]).unwrap();
    let conn = Arc::new(ConnInfo::new(
        SocketAddr::from(([127, 0, 0, 1], 40001)),
        None,
    ));
    let req = get("/pub/big.bin").body(()).unwrap();
    let resp = handle(f.state.clone(), conn, req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(f.state.transfers.len(), 1, "the body is registered");
    let mut body = resp.into_body();
    let first = body.frame().await.unwrap().unwrap();
    assert_eq!(first.data_ref().unwrap().len(), 4096);
    // The path stops being anonymous: the running transfer is revoked.
    let text = fs::read_to_string(f.dir.path().join("distpoint.toml")).unwrap();
    let text = text.replace("anonymous = true", "anonymous = false");
    let path = f.dir.path().join("distpoint.toml");
    let config = Arc::new(Config::parse(&path, &text).unwrap());
    f.state.config.store(config.clone());
    assert_eq!(
        f.state.transfers.revoke(&config, &Default::default()).len(),
        1
    );
    let cut = body.frame().await.unwrap().unwrap_err();
    assert!(cut.to_string().contains("no longer anonymous"), "{cut}");
    drop(body);
    assert!(f.state.transfers.is_empty());
}

#[tokio::test]
async fn a_restart_reuses_the_persisted_manifest_of_a_quiet_file() {
    use crate::integrity::store::AutoStore;
    // A clock past the racy window: the file just written counts as quiet.
    fn later() -> std::time::SystemTime {
        std::time::SystemTime::now() + std::time::Duration::from_secs(10)
    }
    let f = Fixture::new(PATHS);
    let state_dir = f.state.config.load().server.state_dir.clone();
    let restart = |f: &Fixture| {
        let config = Config::load(&f.state.config.load().path).unwrap();
        let mut state = ServerState::new(config);
        state.integrity.store = Arc::new(AutoStore::new(&state_dir).with_clock(later));
        Fixture {
            dir: tempfile::tempdir().unwrap(),
            state: Arc::new(state),
        }
    };
    let first = restart(&f);
    let (status, h, _) = first.get(get("/pub/hello.txt")).await;
    assert_eq!(status, StatusCode::OK);
    let etag = h[header::ETAG].clone();
    assert_eq!(
        (
            first.state.integrity.store.hashed(),
            first.state.integrity.store.reused()
        ),
        (1, 0)
    );
    assert_eq!(
        fs::read_dir(state_dir.join("manifests")).unwrap().count(),
        1
    );
    let second = restart(&f);
    let (status, h, _) = second.get(get("/pub/hello.txt")).await;
    assert_eq!((status, &h[header::ETAG]), (StatusCode::OK, &etag));
    assert_eq!(
        (
            second.state.integrity.store.hashed(),
            second.state.integrity.store.reused()
        ),
        (0, 1)
    );
    // With the real clock the file is too fresh to persist: a third state
    // hashes it again rather than trust an identity that may still move.
    fs::remove_dir_all(state_dir.join("manifests")).unwrap();
    let (status, _, _) = f.get(get("/pub/hello.txt")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        !state_dir.join("manifests").exists()
            || fs::read_dir(state_dir.join("manifests")).unwrap().count() == 0
    );
}

#[tokio::test]
async fn one_spelling_per_url_and_one_of_each_sensitive_header() {
    let f = Fixture::new(PATHS);
    assert_eq!(f.get(get("/pub/hello.txt")).await.0, StatusCode::OK);
    for uri in ["//pub/hello.txt", "/pub//hello.txt", "///pub/hello.txt"] {
        assert_eq!(f.get(get(uri)).await.0, StatusCode::NOT_FOUND, "{uri}");
    }
    for name in ["authorization", "range", "host"] {
        let req = get("/pub/hello.txt").header(name, "a").header(name, "b");
        assert_eq!(f.get(req).await.0, StatusCode::BAD_REQUEST, "{name}");
    }
}
