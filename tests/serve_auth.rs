//! Authentication and authorization: anonymous only where a path says so,
//! Basic against argon2id hashes, client certificates, groups, allow lists.

mod support;

use distpoint::devcerts::DevCa;
use distpoint::transfer::{client_config, Protocol};
use std::time::Duration;
use support::*;

fn config(site: &Site) -> String {
    format!(
        "{}{}{}[groups]\nops = [\"user:bob\", \"cert:client01\"]\n\
         [[vpath]]\nurl = \"/a\"\ndir = \"content/a\"\nallow = [\"user:alice\"]\n\
         [[vpath]]\nurl = \"/ops\"\ndir = \"content/ops\"\nallow = [\"group:ops\"]\n\
         [[vpath]]\nurl = \"/nobody\"\ndir = \"content/a\"\n",
        site.head(),
        site.user("alice"),
        site.user("bob"),
    )
}

fn site() -> (Site, Server) {
    let site = Site::new();
    site.file("content/a/f.txt", b"for alice\n");
    site.file("content/ops/f.txt", b"for ops\n");
    let server = site.start(&config(&site));
    (site, server)
}

#[tokio::test]
async fn no_credentials_is_401_even_for_missing_files_and_head() {
    let (site, server) = site();
    let tls = site.tls(false, &[Protocol::Http1]);
    for (m, path) in [
        ("GET", "/a/f.txt"),
        ("GET", "/a/missing.txt"),
        ("HEAD", "/a/f.txt"),
    ] {
        let got = fetch(&server, tls.clone(), req(m, &server.url(path))).await;
        assert_eq!(got.status, 401, "{m} {path}");
        assert_eq!(
            got.header("www-authenticate"),
            Some("Basic realm=\"distpoint\"")
        );
    }
}

#[tokio::test]
async fn basic_credentials_are_checked() {
    let (site, server) = site();
    let tls = site.tls(false, &[Protocol::Http2]);
    let url = server.url("/a/f.txt");
    let with = |auth: String| req("GET", &url).header("authorization", auth);
    assert_eq!(
        fetch(&server, tls.clone(), with(basic("alice", PASSWORD)))
            .await
            .body,
        b"for alice\n"
    );
    assert_eq!(
        fetch(&server, tls.clone(), with(basic("alice", "Tr0ub4dor&3")))
            .await
            .status,
        401,
        "wrong password"
    );
    assert_eq!(
        fetch(&server, tls.clone(), with(basic("mallory", PASSWORD)))
            .await
            .status,
        401,
        "unknown user"
    );
    assert_eq!(
        fetch(&server, tls.clone(), with("Basic !!!".into()))
            .await
            .status,
        401,
        "malformed"
    );
    assert_eq!(
        fetch(&server, tls.clone(), with("Bearer abc".into()))
            .await
            .status,
        401,
        "other scheme"
    );
    // Authenticated but not allowed.
    assert_eq!(
        fetch(&server, tls.clone(), with(basic("bob", PASSWORD)))
            .await
            .status,
        403
    );
    // Missing file, authorized: 404 only after authentication.
    let got = fetch(
        &server,
        tls.clone(),
        req("GET", &server.url("/a/none")).header("authorization", basic("alice", PASSWORD)),
    )
    .await;
    assert_eq!(got.status, 404);
    // Groups.
    let got = fetch(
        &server,
        tls.clone(),
        req("GET", &server.url("/ops/f.txt")).header("authorization", basic("bob", PASSWORD)),
    )
    .await;
    assert_eq!(got.status, 200);
    // A path with an empty allow list and no anonymous serves nobody.
    let got = fetch(
        &server,
        tls.clone(),
        req("GET", &server.url("/nobody/f.txt")).header("authorization", basic("alice", PASSWORD)),
    )
    .await;
    assert_eq!(got.status, 403);
    // The log names principals and reasons, never the credentials.
    let log = server.log();
    assert!(log.contains("principal=user:alice"), "{log}");
    assert!(
        !log.contains(PASSWORD)
            && !log.contains("Tr0ub4dor")
            && !log.contains(&basic("alice", PASSWORD)[6..]),
        "{log}"
    );
    assert!(!log.to_lowercase().contains("authorization:"));
}

#[tokio::test]
async fn client_certificates_give_cert_principals() {
    let (site, server) = site();
    let tls = site.tls(true, &[Protocol::Http1]);
    let got = fetch(&server, tls.clone(), req("GET", &server.url("/ops/f.txt"))).await;
    assert_eq!(got.status, 200, "cert:client01 is in group ops");
    let got = fetch(&server, tls, req("GET", &server.url("/a/f.txt"))).await;
    assert_eq!(got.status, 403, "cert:client01 is not user:alice");
}

#[tokio::test]
async fn a_certificate_named_like_a_user_grants_nothing_of_that_user() {
    let (site, server) = site();
    let alice_cert = site.pki.ca.issue_client("alice").unwrap();
    let tls = client_config(
        &site.pki.ca_der(),
        Some(identity(&alice_cert)),
        &[Protocol::Http2],
    )
    .unwrap();
    let got = fetch(&server, tls, req("GET", &server.url("/a/f.txt"))).await;
    assert_eq!(got.status, 403, "cert:alice is not user:alice");
}

#[tokio::test]
async fn a_certificate_from_another_ca_is_refused() {
    let (site, server) = site();
    let rogue_ca = DevCa::new("rogue CA").unwrap();
    let rogue = rogue_ca.issue_client("client01").unwrap();
    let tls = client_config(
        &site.pki.ca_der(),
        Some(identity(&rogue)),
        &[Protocol::Http1],
    )
    .unwrap();
    let conn = distpoint::transfer::Conn::connect(server.addr, "localhost", tls).await;
    match conn {
        Err(_) => {}
        Ok(mut c) => {
            // TLS 1.3 reports the client-certificate rejection after the handshake.
            let r = c
                .send(
                    req("GET", &server.url("/ops/f.txt"))
                        .body(http_body_util::Empty::new())
                        .unwrap(),
                )
                .await;
            assert!(r.is_err(), "a rogue certificate must not get a response");
        }
    }
}

#[tokio::test]
async fn repeated_failures_lock_the_client_out_for_a_while() {
    let site = Site::new();
    site.file("content/a/f.txt", b"for alice\n");
    site.file("content/ops/f.txt", b"for ops\n");
    site.file("content/pub/f.txt", b"for all\n");
    let body = config(&site).replace(
        "[tls]",
        "auth_failures_per_minute = 3\nauth_lockout_max_secs = 2\n[tls]",
    ) + "[[vpath]]\nurl = \"/pub\"\ndir = \"content/pub\"\nanonymous = true\n";
    let server = site.start(&body);
    let tls = site.tls(false, &[Protocol::Http1]);
    let get = |path: &str, auth: Option<String>| {
        let r = req("GET", &server.url(path));
        match auth {
            Some(a) => r.header("authorization", a),
            None => r,
        }
    };
    let alice = || Some(basic("alice", PASSWORD));
    // A success first, so alice's password is in the verification cache.
    let got = fetch(&server, tls.clone(), get("/a/f.txt", alice())).await;
    assert_eq!(got.status, 200);
    // One failure at each of three accounts: the count is per client, across accounts
    // (and no account reaches the limit, so its guard stays out of this test).
    for (user, wrong) in [
        ("alice", "guess1"),
        ("bob", "guess2"),
        ("mallory", "guess3"),
    ] {
        let got = fetch(
            &server,
            tls.clone(),
            get("/a/f.txt", Some(basic(user, wrong))),
        )
        .await;
        assert_eq!(got.status, 401, "{wrong}");
    }
    // Locked: even the right (and cached) password is refused, with a hint when to retry.
    let got = fetch(&server, tls.clone(), get("/a/f.txt", alice())).await;
    assert_eq!(got.status, 429);
    let retry: u64 = got.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=2).contains(&retry), "{retry}");
    assert!(got.header("www-authenticate").is_none());
    // The lock-out is per client, not per user: bob from the same address is refused too.
    let got = fetch(
        &server,
        tls.clone(),
        get("/ops/f.txt", Some(basic("bob", PASSWORD))),
    )
    .await;
    assert_eq!(got.status, 429);
    // Requests without Basic are not throttled: anonymous paths and client certificates.
    let got = fetch(&server, tls.clone(), get("/pub/f.txt", None)).await;
    assert_eq!((got.status, got.body.as_slice()), (200, &b"for all\n"[..]));
    let with_cert = site.tls(true, &[Protocol::Http2]);
    let got = fetch(&server, with_cert, get("/ops/f.txt", None)).await;
    assert_eq!(got.status, 200);
    // One WARN per lock-out, naming the peer and never the credentials.
    assert!(server.wait_log("locked out", Duration::from_secs(5)));
    let log = server.log();
    let warns: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("client locked out"))
        .collect();
    assert_eq!(warns.len(), 1, "{log}");
    assert!(
        warns[0].contains("WARN") && warns[0].contains("127.0.0.1"),
        "{log}"
    );
    assert!(
        !log.contains(PASSWORD) && !log.contains("guess") && !log.contains("alice:"),
        "{log}"
    );
    // After the lock-out the right password works again: until then every
    // try is a 429 (the lock-out here is 2 s).
    let locked = std::time::Instant::now();
    let got = loop {
        let got = fetch(&server, tls.clone(), get("/a/f.txt", alice())).await;
        if got.status != 429 {
            break got;
        }
        assert!(
            locked.elapsed() < Duration::from_secs(10),
            "still locked out"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(
        (got.status, got.body.as_slice()),
        (200, &b"for alice\n"[..])
    );
}
