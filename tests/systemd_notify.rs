//! `distpoint::systemd` speaks the sd_notify protocol: datagrams of
//! `KEY=VALUE` lines on the unix socket `NOTIFY_SOCKET` names, and nothing
//! at all without it. One test in its own binary, because it sets the
//! process environment.

mod support;

use std::os::unix::net::UnixDatagram;
use std::time::Duration;
use support::notify_lines as recv;

#[test]
fn notifications_reach_the_socket_and_are_no_ops_without_one() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notify");
    let sock = UnixDatagram::bind(&path).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();

    // Not started by systemd: nothing is sent, and nothing fails.
    std::env::remove_var("NOTIFY_SOCKET");
    assert!(!distpoint::systemd::enabled());
    distpoint::systemd::ready("serving").unwrap();
    distpoint::systemd::stopping("bye").unwrap();
    sock.set_nonblocking(true).unwrap();
    let mut buf = [0u8; 64];
    assert_eq!(
        sock.recv(&mut buf).unwrap_err().kind(),
        std::io::ErrorKind::WouldBlock,
        "nothing may be sent without NOTIFY_SOCKET"
    );
    sock.set_nonblocking(false).unwrap();

    std::env::set_var("NOTIFY_SOCKET", &path);
    assert!(distpoint::systemd::enabled());
    distpoint::systemd::ready("serving 2 paths on 127.0.0.1:8443").unwrap();
    assert_eq!(
        recv(&sock),
        ["READY=1", "STATUS=serving 2 paths on 127.0.0.1:8443"]
    );

    distpoint::systemd::reloading().unwrap();
    let msg = recv(&sock);
    assert_eq!(msg[0], "RELOADING=1");
    let usec: u64 = msg[1]
        .strip_prefix("MONOTONIC_USEC=")
        .expect("reload carries the monotonic time")
        .parse()
        .unwrap();
    assert!(usec > 0);

    distpoint::systemd::status("config reloaded").unwrap();
    assert_eq!(recv(&sock), ["STATUS=config reloaded"]);

    distpoint::systemd::stopping("draining 3 transfers").unwrap();
    assert_eq!(recv(&sock), ["STOPPING=1", "STATUS=draining 3 transfers"]);

    // The variable stays set for the next notification.
    assert!(distpoint::systemd::enabled());

    // A socket that has gone away is an error for the caller to log, not a panic.
    drop(sock);
    assert!(distpoint::systemd::ready("again").is_err());
}
