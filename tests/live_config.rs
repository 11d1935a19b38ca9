//! Live configuration against the real binary: the config file is edited on
//! disk (in place and by write-then-rename) while clients keep talking.

mod support;

use bytes::Bytes;
use distpoint::transfer::{Conn, Protocol};
use http_body_util::Empty;
use std::path::Path;
use std::time::{Duration, Instant};
use support::*;

const H1: &[Protocol] = &[Protocol::Http1];

/// Overwrite the file where it is (same inode), as `echo > file` does.
fn write_in_place(path: &Path, body: &str) {
    std::fs::write(path, body).unwrap();
}

/// Write a temporary file and rename it over the target, as many editors do.
fn write_by_rename(path: &Path, body: &str) {
    let tmp = path.with_extension("toml.tmp~");
    std::fs::write(&tmp, body).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

fn anon_path(url: &str, dir: &str) -> String {
    format!("[[vpath]]\nurl = \"{url}\"\ndir = \"{dir}\"\nanonymous = true\n")
}

async fn get(conn: &mut Conn, server: &Server, path: &str, auth: Option<&str>) -> Got {
    let mut r = req("GET", &server.url(path));
    if let Some(a) = auth {
        r = r.header("authorization", a);
    }
    let resp = conn
        .send(r.body(Empty::<Bytes>::new()).unwrap())
        .await
        .expect("send on keep-alive connection");
    read(resp).await
}

/// Evaluate `cond` (an async expression) every 10 ms until it is true; the
/// time it took, or panic after `limit`.
macro_rules! within {
    ($limit:expr, $what:expr, $cond:expr) => {{
        let start = Instant::now();
        loop {
            if $cond {
                break start.elapsed();
            }
            assert!(
                start.elapsed() < $limit,
                "{} did not happen within {:?}",
                $what,
                $limit
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }};
}

#[tokio::test]
async fn removed_path_is_404_at_once_and_keep_alive_goes_on() {
    let site = Site::new();
    site.file("content/a/f.txt", b"aaa");
    site.file("content/b/f.txt", b"bbb");
    let both = format!(
        "{}{}{}",
        site.head(),
        anon_path("/a", "content/a"),
        anon_path("/b", "content/b")
    );
    let only_b = format!("{}{}", site.head(), anon_path("/b", "content/b"));
    let server = site.start(&both);
    let cfg = site.path("distpoint.toml");
    let mut conn = Conn::connect(server.addr, "localhost", site.tls(false, H1))
        .await
        .unwrap();
    assert_eq!(get(&mut conn, &server, "/a/f.txt", None).await.status, 200);

    for (i, write) in [write_in_place, write_by_rename].into_iter().enumerate() {
        write(&cfg, &only_b);
        let took = within!(Duration::from_secs(2), "removed path 404", {
            let mut c = Conn::connect(server.addr, "localhost", site.tls(false, H1))
                .await
                .unwrap();
            get(&mut c, &server, "/a/f.txt", None).await.status == 404
        });
        eprintln!("round {i}: removal in force after {took:?}");
        // The old keep-alive connection sees the new config too, and still works.
        assert_eq!(get(&mut conn, &server, "/a/f.txt", None).await.status, 404);
        let b = get(&mut conn, &server, "/b/f.txt", None).await;
        assert_eq!((b.status, b.body.as_slice()), (200, &b"bbb"[..]));
        assert!(server.wait_log("path removed: /a", Duration::from_secs(1)));

        write(&cfg, &both);
        within!(Duration::from_secs(2), "re-added path 200", {
            get(&mut conn, &server, "/a/f.txt", None).await.status == 200
        });
    }
}

#[tokio::test]
async fn anonymous_off_gives_401_and_user_removed_from_allow_gives_403() {
    let site = Site::new();
    site.file("content/p/f.txt", b"ppp");
    let users = format!("{}{}", site.user("alice"), site.user("bob"));
    let vp = |anonymous: bool, allow: &str| {
        format!(
            "{}{users}[[vpath]]\nurl = \"/p\"\ndir = \"content/p\"\nanonymous = {anonymous}\nallow = [{allow}]\n",
            site.head()
        )
    };
    let server = site.start(&vp(true, "\"user:alice\", \"user:bob\""));
    let cfg = site.path("distpoint.toml");
    let alice = basic("alice", PASSWORD);
    let mut conn = Conn::connect(server.addr, "localhost", site.tls(false, H1))
        .await
        .unwrap();
    assert_eq!(get(&mut conn, &server, "/p/f.txt", None).await.status, 200);

    write_in_place(&cfg, &vp(false, "\"user:alice\", \"user:bob\""));
    within!(Duration::from_secs(2), "anonymous off → 401", {
        get(&mut conn, &server, "/p/f.txt", None).await.status == 401
    });
    assert_eq!(
        get(&mut conn, &server, "/p/f.txt", Some(&alice))
            .await
            .status,
        200
    );
    assert!(server.wait_log("anonymous true -> false", Duration::from_secs(1)));

    write_by_rename(&cfg, &vp(false, "\"user:bob\""));
    within!(Duration::from_secs(2), "alice removed → 403", {
        get(&mut conn, &server, "/p/f.txt", Some(&alice))
            .await
            .status
            == 403
    });
    let bob = basic("bob", PASSWORD);
    assert_eq!(
        get(&mut conn, &server, "/p/f.txt", Some(&bob)).await.status,
        200
    );
    let log = server.log();
    assert!(
        log.contains("allow [user:alice, user:bob] -> [user:bob]"),
        "{log}"
    );
    assert!(
        !log.contains("$argon2"),
        "password hashes must never be logged"
    );
}

#[tokio::test]
async fn invalid_change_keeps_running_config_and_names_the_line() {
    let site = Site::new();
    site.file("content/a/f.txt", b"aaa");
    let good = format!("{}{}", site.head(), anon_path("/a", "content/a"));
    let server = site.start(&good);
    let cfg = site.path("distpoint.toml");
    let line = good.lines().count() + 4;
    let bad = format!("{good}[[vpath]]\nurl = \"/b\"\ndir = \"content/a\"\nanonymous = maybe\n");
    write_by_rename(&cfg, &bad);
    let needle = format!("distpoint.toml:{line}:");
    assert!(
        server.wait_log(&needle, Duration::from_secs(2)),
        "the error names the line: {}",
        server.log()
    );
    assert!(server.log().contains("ERROR"));
    let tls = site.tls(false, H1);
    let got = fetch(&server, tls.clone(), req("GET", &server.url("/a/f.txt"))).await;
    assert_eq!(got.status, 200, "the running config stays");

    // Watching goes on: the next valid change applies.
    let next = format!("{}{}", site.head(), anon_path("/c", "content/a"));
    write_in_place(&cfg, &next);
    within!(Duration::from_secs(2), "next valid change", {
        fetch(&server, tls.clone(), req("GET", &server.url("/c/f.txt")))
            .await
            .status
            == 200
    });

    // SIGHUP reloads too.
    let ok = std::process::Command::new("kill")
        .args(["-HUP", &server.pid().to_string()])
        .status()
        .unwrap();
    assert!(ok.success());
    assert!(server.wait_log("config reloaded (SIGHUP)", Duration::from_secs(2)));

    // A listen change binds the new address and closes the old one.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let moved: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    write_in_place(&cfg, &next.replace("127.0.0.1:0", &moved.to_string()));
    assert!(
        server.wait_log(
            &format!("now listening on https://{moved}"),
            Duration::from_secs(2)
        ),
        "{}",
        server.log()
    );
    assert!(server.wait_log("stopped listening on 127.0.0.1:0", Duration::from_secs(1)));
    let mut conn = Conn::connect(moved, "localhost", tls.clone())
        .await
        .unwrap();
    let url = format!("https://{moved}/c/f.txt");
    let resp = conn
        .send(req("GET", &url).body(Empty::<Bytes>::new()).unwrap())
        .await
        .unwrap();
    assert_eq!(read(resp).await.status, 200);
    within!(Duration::from_secs(1), "old address closed", {
        tokio::net::TcpStream::connect(server.addr).await.is_err()
    });
}
