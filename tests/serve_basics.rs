//! The server end to end: TLS, routing, authentication, HTTP semantics.

mod support;

use distpoint::transfer::Protocol;
use support::*;

const BOTH: &[Protocol] = &[Protocol::Http2, Protocol::Http1];

fn site_with_paths() -> Site {
    let site = Site::new();
    site.file("content/pub/hello.txt", b"hello world\n");
    site.file("content/private/secret.bin", &[7u8; 1000]);
    site
}

fn config(site: &Site) -> String {
    format!(
        "{}{}[groups]\nclients = [\"cert:client01\"]\n\
         [[vpath]]\nurl = \"/pub\"\ndir = \"content/pub\"\nanonymous = true\n\
         [[vpath]]\nurl = \"/private\"\ndir = \"content/private\"\nallow = [\"user:alice\", \"group:clients\"]\n",
        site.head(),
        site.user("alice")
    )
}

#[tokio::test]
async fn anonymous_path_serves_and_private_path_needs_credentials() {
    let site = site_with_paths();
    let server = site.start(&config(&site));
    for proto in [Protocol::Http1, Protocol::Http2] {
        let tls = site.tls(false, &[proto]);
        let got = fetch(
            &server,
            tls.clone(),
            req("GET", &server.url("/pub/hello.txt")),
        )
        .await;
        assert_eq!(got.status, 200);
        assert_eq!(got.body, b"hello world\n");
        assert_eq!(got.header("content-length"), Some("12"));

        let got = fetch(
            &server,
            tls.clone(),
            req("GET", &server.url("/private/secret.bin")),
        )
        .await;
        assert_eq!(got.status, 401);
        assert_eq!(
            got.header("www-authenticate"),
            Some("Basic realm=\"distpoint\"")
        );

        let got = fetch(
            &server,
            tls.clone(),
            req("GET", &server.url("/private/secret.bin"))
                .header("authorization", basic("alice", PASSWORD)),
        )
        .await;
        assert_eq!(got.status, 200);
        assert_eq!(got.body, vec![7u8; 1000]);

        let got = fetch(
            &server,
            site.tls(true, BOTH),
            req("GET", &server.url("/private/secret.bin")),
        )
        .await;
        assert_eq!(
            got.status, 200,
            "client certificate cert:client01 is in group clients"
        );
    }
}
