//! Only configured virtual paths exist, and nothing escapes a path's folder by
//! any spelling or symlink.

mod support;

use distpoint::transfer::Protocol;
use support::*;

const SECRET: &[u8] = b"TOP-SECRET-OUTSIDE-CONTENT";

/// /pub (anonymous) serves content/pub; a secret sits next to it and in a
/// private path.
fn site() -> (Site, Server) {
    let site = Site::new();
    site.file("content/pub/hello.txt", b"hello world\n");
    site.file("content/pub/sub/deep.txt", b"deep\n");
    site.file("content/pub/a+b c.txt", b"plus and space\n");
    site.file("content/pub/Paquet été.msi", b"non-ascii\n");
    site.file("content/pub/.hidden", SECRET);
    site.file("content/pub-private/x.txt", SECRET);
    site.file("content/secret.txt", SECRET);
    site.file("outside.txt", SECRET);
    std::os::unix::fs::symlink(site.path("outside.txt"), site.path("content/pub/link-out"))
        .unwrap();
    std::os::unix::fs::symlink("../secret.txt", site.path("content/pub/link-up")).unwrap();
    std::os::unix::fs::symlink("hello.txt", site.path("content/pub/link-in")).unwrap();
    let body = format!(
        "{}{}[[vpath]]\nurl = \"/pub\"\ndir = \"content/pub\"\nanonymous = true\n\
         [[vpath]]\nurl = \"/pub-private\"\ndir = \"content/pub-private\"\nallow = [\"user:alice\"]\n",
        site.head(),
        site.user("alice")
    );
    let server = site.start(&body);
    (site, server)
}

#[tokio::test]
async fn every_traversal_spelling_is_404_and_leaks_nothing() {
    let (site, server) = site();
    let spellings = [
        "/pub/../secret.txt",
        "/pub/./hello.txt",
        "/pub/%2e%2e/secret.txt",
        "/pub/%2E%2e/secret.txt",
        "/pub/.%2e/secret.txt",
        "/pub/%252e%252e/secret.txt",
        "/pub/%c0%ae%c0%ae/secret.txt",
        "/pub/%c0%af..%c0%afsecret.txt",
        "/pub/..%2fsecret.txt",
        "/pub/sub%2f..%2f..%2fsecret.txt",
        "/pub/..%5csecret.txt",
        "/pub/..\\secret.txt",
        "/pub/hello.txt%00",
        "/pub/hello.txt%00.jpg",
        "/pub/hello%0a.txt",
        "/pub/%7f",
        "/pub/.hidden",
        "/pub/%2ehidden",
        "/pub/c:",
        "/pub/C:secret.txt",
        "/pub/CON",
        "/pub/con.txt",
        "/pub/NUL.txt",
        "/pub/Lpt1",
        "/pub/hello.txt.",
        "/pub/hello.txt%20",
        "/pub//hello.txt",
        "/pub/hello.txt/",
        "/pub/link-out",
        "/pub/link-up",
        "/pub/sub",
        "/pub/sub/",
        "/pub",
        "/pub/",
        "/",
        "/secret.txt",
        "/content/secret.txt",
        "/pubx/hello.txt",
        "/PUB/hello.txt",
    ];
    for proto in [Protocol::Http1, Protocol::Http2] {
        let tls = site.tls(false, &[proto]);
        for path in spellings {
            let got = fetch(&server, tls.clone(), req("GET", &server.url(path))).await;
            assert_eq!(got.status, 404, "{proto:?} {path}");
            assert!(
                !got.body.windows(SECRET.len()).any(|w| w == SECRET),
                "{path} leaked"
            );
        }
    }
}

#[tokio::test]
async fn curl_path_as_is_cannot_escape_either() {
    let (site, server) = site();
    let ca = site.path("certs/ca.crt");
    for path in [
        "/pub/../secret.txt",
        "/pub/../../outside.txt",
        "/pub/%2e%2e/%2e%2e/outside.txt",
    ] {
        let (code, out, err) = curl(&[
            "-sS",
            "--path-as-is",
            "--cacert",
            ca.to_str().unwrap(),
            "-w",
            "%{http_code}",
            &server.url(path),
        ]);
        assert_eq!(code, 0, "{err}");
        assert!(
            out.ends_with(b"404"),
            "{path}: {}",
            String::from_utf8_lossy(&out)
        );
        assert!(!out.windows(SECRET.len()).any(|w| w == SECRET));
    }
}

#[tokio::test]
async fn prefixes_match_whole_segments_and_the_longest_wins() {
    let (site, server) = site();
    let tls = site.tls(false, &[Protocol::Http2]);
    // /pub-private is its own path and needs credentials: /pub does not swallow it.
    let got = fetch(
        &server,
        tls.clone(),
        req("GET", &server.url("/pub-private/x.txt")),
    )
    .await;
    assert_eq!(got.status, 401);
    let got = fetch(
        &server,
        tls.clone(),
        req("GET", &server.url("/pub-privatex/x.txt")),
    )
    .await;
    assert_eq!(got.status, 404);
}

#[tokio::test]
async fn unusual_but_legal_names_and_inner_symlinks_are_served() {
    let (site, server) = site();
    let tls = site.tls(false, &[Protocol::Http1]);
    for (path, body) in [
        ("/pub/sub/deep.txt", &b"deep\n"[..]),
        ("/pub/a+b%20c.txt", b"plus and space\n"),
        ("/pub/Paquet%20%C3%A9t%C3%A9.msi", b"non-ascii\n"),
        ("/pub/link-in", b"hello world\n"),
    ] {
        let got = fetch(&server, tls.clone(), req("GET", &server.url(path))).await;
        assert_eq!(got.status, 200, "{path}");
        assert_eq!(got.body, body, "{path}");
    }
}

#[tokio::test]
async fn symlink_swapped_in_after_start_is_still_refused() {
    let (site, server) = site();
    let tls = site.tls(false, &[Protocol::Http1]);
    // Replace a served file by a symlink pointing outside: the open itself refuses it.
    let target = site.path("content/pub/hello.txt");
    std::fs::remove_file(&target).unwrap();
    std::os::unix::fs::symlink(site.path("outside.txt"), &target).unwrap();
    let got = fetch(&server, tls, req("GET", &server.url("/pub/hello.txt"))).await;
    assert_eq!(got.status, 404);
    assert!(!got.body.windows(SECRET.len()).any(|w| w == SECRET));
}
