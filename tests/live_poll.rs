//! The polling watcher (inotify unavailable, or `DISTPOINT_WATCH=poll` for
//! network file systems) applies changes too.

mod support;

use distpoint::transfer::Protocol;
use std::time::{Duration, Instant};
use support::*;

#[tokio::test]
async fn polling_watcher_applies_changes() {
    // This file's only test: the variable is inherited by the server it starts.
    std::env::set_var("DISTPOINT_WATCH", "poll");
    let site = Site::new();
    site.file("content/a/f.txt", b"aaa");
    let path =
        |url: &str| format!("[[vpath]]\nurl = \"{url}\"\ndir = \"content/a\"\nanonymous = true\n");
    let server = site.start(&format!("{}{}", site.head(), path("/a")));
    assert!(server.wait_log("DISTPOINT_WATCH=poll", Duration::from_secs(1)));
    let tls = site.tls(false, &[Protocol::Http1]);
    let written = Instant::now();
    let tmp = site.path("distpoint.toml.tmp");
    std::fs::write(&tmp, format!("{}{}", site.head(), path("/b"))).unwrap();
    std::fs::rename(&tmp, site.path("distpoint.toml")).unwrap();
    loop {
        let got = fetch(&server, tls.clone(), req("GET", &server.url("/b/f.txt"))).await;
        if got.status == 200 {
            break;
        }
        assert!(
            written.elapsed() < Duration::from_secs(2),
            "{}",
            server.log()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    eprintln!(
        "polling watcher: change in force after {:?}",
        written.elapsed()
    );
    let got = fetch(&server, tls, req("GET", &server.url("/a/f.txt"))).await;
    assert_eq!(got.status, 404);
}
