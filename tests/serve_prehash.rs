//! Background hashing (`[server] prehash`): the files of an `auto` path are
//! hashed at start and when they are written, renamed or moved in, before
//! anyone asks, so a first request does not wait; dotfiles and symlinks
//! out of the folder are never read; `prehash = false` leaves the hashing to
//! the first request.

mod support;

use distpoint::transfer::Protocol;
use std::time::Duration;
use support::*;

const T: Duration = Duration::from_secs(30);

fn config(site: &Site) -> String {
    format!(
        "{}[[vpath]]\nurl = \"/pub\"\ndir = \"content/pub\"\nanonymous = true\n",
        site.head()
    )
}

#[tokio::test]
async fn files_are_hashed_before_their_first_request() {
    let site = Site::new();
    site.file("content/pub/old.bin", &data(3 << 20, 1));
    site.file("content/pub/.secret.bin", &data(1000, 9));
    site.file("outside/passwd.bin", &data(1000, 8));
    std::os::unix::fs::symlink(
        site.path("outside/passwd.bin"),
        site.path("content/pub/link.bin"),
    )
    .unwrap();
    let server = site.start(&config(&site));
    // The start-up sweep: every served file, and nothing else.
    assert!(
        server.wait_log("prehash: every file known", T),
        "{}",
        server.log()
    );
    assert!(
        server.log().contains("file=\"/pub/old.bin\""),
        "{}",
        server.log()
    );

    // A file written in place, a folder moved in, a file renamed into place.
    site.file("content/pub/written.bin", &data(2 << 20, 2));
    site.file("staging/tree/deep/setup.exe", &data(5 << 20, 3));
    std::fs::rename(site.path("staging/tree"), site.path("content/pub/tree")).unwrap();
    site.file("staging/renamed.bin", &data(1 << 20, 4));
    std::fs::rename(
        site.path("staging/renamed.bin"),
        site.path("content/pub/renamed.bin"),
    )
    .unwrap();
    for f in [
        "/pub/written.bin",
        "/pub/tree/deep/setup.exe",
        "/pub/renamed.bin",
    ] {
        assert!(
            server.wait_log(&format!("file=\"{f}\""), T),
            "{f} not hashed: {}",
            server.log()
        );
    }
    let hashed = server.log_count("hashed file");
    assert_eq!(hashed, 4, "{}", server.log());

    // The first requests find the manifests: no hashing on their path.
    let tls = site.tls(false, &[Protocol::Http1]);
    let got = fetch(
        &server,
        tls.clone(),
        req("GET", &server.url("/pub/tree/deep/setup.exe")),
    )
    .await;
    assert_eq!(got.status, 200);
    assert_eq!(got.body, data(5 << 20, 3));
    assert!(got.header("repr-digest").is_some());
    let got = fetch(
        &server,
        tls.clone(),
        req("GET", &server.url("/pub/written.bin")),
    )
    .await;
    assert_eq!(got.status, 200);
    assert!(
        server.wait_log_count("distpoint::access", 2, T),
        "{}",
        server.log()
    );
    assert_eq!(server.log_count("hashed file"), hashed, "{}", server.log());
    // Never read: the dotfile, the symlink out of the folder.
    let log = server.log();
    assert!(
        !log.contains(".secret") && !log.contains("link.bin"),
        "{log}"
    );
    assert!(!log.contains("passwd"), "{log}");
}

#[tokio::test]
async fn without_prehash_the_first_request_hashes() {
    let site = Site::new();
    site.file("content/pub/a.bin", &data(1 << 20, 1));
    let body = config(&site).replacen("[server]\n", "[server]\nprehash = false\n", 1);
    let server = site.start(&body);
    let tls = site.tls(false, &[Protocol::Http1]);
    // Nothing is hashed until asked for: the request is what makes it happen.
    assert_eq!(server.log_count("hashed file"), 0, "{}", server.log());
    let got = fetch(&server, tls, req("GET", &server.url("/pub/a.bin"))).await;
    assert_eq!(got.status, 200);
    assert!(
        server.wait_log("file=\"/pub/a.bin\"", T),
        "{}",
        server.log()
    );
    assert_eq!(server.log_count("hashed file"), 1, "{}", server.log());
    assert!(!server.log().contains("prehash"), "{}", server.log());
}
