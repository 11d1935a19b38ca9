//! The server restricts itself with Landlock after start-up: it can read
//! only beneath the folders its config named then, and write only beneath
//! `state_dir`. A folder added later is unreadable until a restart, and the
//! reload says so.

mod support;

use distpoint::transfer::Protocol;
use std::time::Duration;
use support::*;

#[tokio::test]
async fn a_folder_outside_the_start_up_ruleset_cannot_be_read_until_a_restart() {
    let site = Site::new();
    site.file("content/pub/in.txt", b"inside");
    // A folder outside the site (the config's own folder is readable).
    let elsewhere = tempfile::tempdir().unwrap();
    std::fs::write(elsewhere.path().join("out.txt"), b"outside").unwrap();
    let base = format!(
        "{}[[vpath]]\nurl = \"/pub\"\ndir = \"content/pub\"\nanonymous = true\n",
        site.head()
    );
    let server = site.start(&base);
    assert!(
        server.wait_log("sandboxed (Landlock)", Duration::from_secs(5)),
        "{}",
        server.log()
    );
    let tls = site.tls(false, &[Protocol::Http1]);
    let got = fetch(&server, tls.clone(), req("GET", &server.url("/pub/in.txt"))).await;
    assert_eq!(got.body, b"inside");

    let added = format!(
        "{base}[[vpath]]\nurl = \"/late\"\ndir = {:?}\nanonymous = true\n",
        elsewhere.path().to_str().unwrap()
    );
    std::fs::write(site.path("distpoint.toml"), &added).unwrap();
    assert!(
        server.wait_log(
            "is outside the sandbox made at start",
            Duration::from_secs(5)
        ),
        "{}",
        server.log()
    );
    // The path exists in the config, but the kernel refuses the read.
    let got = fetch(
        &server,
        tls.clone(),
        req("GET", &server.url("/late/out.txt")),
    )
    .await;
    assert_ne!(got.status, 200, "the sandbox let a read through");
    assert!(!got.body.windows(7).any(|w| w == b"outside"));

    // A restart makes a ruleset that covers it.
    server.terminate();
    let server = site.start(&added);
    let got = fetch(&server, tls, req("GET", &server.url("/late/out.txt"))).await;
    assert_eq!((got.status, got.body.as_slice()), (200, &b"outside"[..]));
}
