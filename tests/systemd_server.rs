//! The real server tells a service manager when it is ready, reloading and
//! stopping (`Type=notify`), over a `NOTIFY_SOCKET` the test owns.

mod support;

use std::os::unix::net::UnixDatagram;
use std::time::Duration;
use support::notify_lines as recv;
use support::*;

#[test]
fn ready_after_binding_reloading_then_ready_on_a_change_stopping_on_sigterm() {
    let site = Site::new();
    site.file("content/pub/f.txt", b"f");
    let body = format!(
        "{}[[vpath]]\nurl = \"/pub\"\ndir = \"content/pub\"\nanonymous = true\n",
        site.head()
    );
    let config = site.config(&body);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notify");
    let sock = UnixDatagram::bind(&path).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let server = Server::start_with_env(&config, &[("NOTIFY_SOCKET", path.as_os_str())]);

    let ready = recv(&sock);
    assert_eq!(ready[0], "READY=1");
    let addr = server.addr.to_string();
    assert!(
        ready[1].starts_with("STATUS=serving on") && ready[1].contains(&addr),
        "{ready:?}"
    );

    // A config change is a reload: RELOADING=1 (with the monotonic time), then READY=1.
    std::fs::write(&config, format!("{body}\n# changed\n")).unwrap();
    let reloading = recv(&sock);
    assert_eq!(reloading[0], "RELOADING=1");
    assert!(reloading[1].starts_with("MONOTONIC_USEC="), "{reloading:?}");
    assert_eq!(recv(&sock), ["READY=1", "STATUS=serving; config reloaded"]);

    let status = server.terminate();
    assert!(status.success());
    assert_eq!(recv(&sock), ["STOPPING=1", "STATUS=draining transfers"]);
}
