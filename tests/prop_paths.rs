//! Property test: a resolved path is always beneath `dir`.
//!
//! Request paths are made of pieces that have broken file servers before
//! (`..` in every spelling, encoded separators, NUL, overlong UTF-8, DOS
//! names, trailing dots) and of names in a fixture whose served folder holds
//! symlinks leading out of it (relative, absolute, through `/proc`). Files
//! inside start with `INSIDE`, files outside with `OUTSIDE`. Whatever path
//! is asked for, nothing outside is ever read: checked on the resolver
//! itself (many cases: by the kernel's name for the opened descriptor and by
//! content) and through the real server over TLS (by the body).

mod support;

use std::io::Read;
use std::os::unix::fs::symlink;
use std::path::Path;

use distpoint::resolve::{decode_segments, open_beneath};
use distpoint::transfer::{Conn, Protocol};
use http_body_util::Empty;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use support::*;

const PIECES: &[&str] = &[
    "a.txt",
    "sub",
    "b.txt",
    "deeper",
    "c%20d%2B%25.bin",
    "link-in",
    "up-in",
    "link-out",
    "dir-out",
    "x.txt",
    "up-out",
    "abs",
    "magic",
    "cwd",
    "secret.txt",
    "outside",
    "served",
    "..",
    ".",
    "%2e%2e",
    "%2E",
    "%2e",
    ".%2e",
    "%2f",
    "%5c",
    "..%2fsecret.txt",
    "%2e%2e%2f",
    "%00",
    "a.txt%00",
    "",
    "%C3%BCn%C3%AF",
    "c%C3%B4de.txt",
    "%c0%ae%c0%ae",
    "%e0%80%ae",
    "CON",
    "nul.txt",
    "a.txt.",
    "a.txt%20",
    "PROGRA~1",
    "a.txt%3a%3a$DATA",
    "%252e%252e",
    "%",
    "%zz",
    "pub",
    "~",
    "..\\..",
    "%5c..%5csecret.txt",
];

/// served/ with files and traps, and files outside it. Returns served/.
fn fixture(root: &Path) -> std::path::PathBuf {
    let served = root.join("served");
    let w = |p: &Path, text: &str| {
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    };
    w(&served.join("a.txt"), "INSIDE a");
    w(&served.join("sub/b.txt"), "INSIDE b");
    w(&served.join("sub/deeper/c d+%.bin"), "INSIDE c");
    w(&served.join("ünï/côde.txt"), "INSIDE u");
    w(&root.join("secret.txt"), "OUTSIDE secret");
    w(&root.join("outside/x.txt"), "OUTSIDE x");
    symlink("a.txt", served.join("link-in")).unwrap();
    symlink("../a.txt", served.join("sub/up-in")).unwrap();
    symlink("../secret.txt", served.join("link-out")).unwrap();
    symlink("../outside", served.join("dir-out")).unwrap();
    symlink("../../secret.txt", served.join("sub/up-out")).unwrap();
    symlink(root.join("secret.txt"), served.join("abs")).unwrap();
    symlink("/proc/self/root/etc/passwd", served.join("magic")).unwrap();
    symlink("/proc/self/cwd", served.join("cwd")).unwrap();
    served.canonicalize().unwrap()
}

/// Paths that name a file inside, so that the generator reaches real opens.
const FILES: &[&str] = &[
    "a.txt",
    "sub/b.txt",
    "sub/deeper/c%20d%2B%25.bin",
    "link-in",
    "sub/up-in",
    "%C3%BCn%C3%AF/c%C3%B4de.txt",
    "link-out",
    "dir-out/x.txt",
    "sub/up-out",
    "abs",
    "magic",
];

fn request_path() -> impl Strategy<Value = String> {
    let pieces = prop::collection::vec(prop::sample::select(PIECES), 0..5);
    (
        pieces,
        prop::sample::select(FILES),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(|(pieces, file, lead, append)| {
            let mut all: Vec<&str> = pieces;
            if append || all.is_empty() {
                all.push(file);
            }
            format!("{}{}", if lead { "/" } else { "" }, all.join("/"))
        })
}

#[test]
fn the_resolver_opens_nothing_outside_dir() {
    let root = tempfile::tempdir().unwrap();
    let served = fixture(root.path());
    let opened = std::cell::Cell::new(0u32);
    let mut runner = TestRunner::new(Config {
        cases: 5000,
        failure_persistence: None,
        ..Config::default()
    });
    runner
        .run(&request_path(), |raw| {
            let Ok(segments) = decode_segments(&raw) else {
                return Ok(());
            };
            let Ok(mut f) = open_beneath(&served, &segments) else {
                return Ok(());
            };
            opened.set(opened.get() + 1);
            let fd = std::os::fd::AsRawFd::as_raw_fd(&f.file);
            let real = std::fs::read_link(format!("/proc/self/fd/{fd}")).unwrap();
            prop_assert!(
                real.starts_with(&served),
                "{} opened {}",
                raw,
                real.display()
            );
            let mut text = String::new();
            f.file.read_to_string(&mut text).unwrap();
            prop_assert!(text.starts_with("INSIDE"), "{} read {:?}", raw, text);
            Ok(())
        })
        .unwrap();
    // The generator must reach real files too, or the property is empty.
    let opened = opened.get();
    eprintln!("resolver: {opened} of 5000 paths opened a file, all inside");
    assert!(opened > 50, "only {opened} paths opened a file");
}

#[test]
fn the_server_sends_nothing_from_outside_dir() {
    let site = Site::new();
    let served = fixture(site.dir.path());
    let server = site.start(&format!(
        "{}[[vpath]]\nurl = \"/pub\"\ndir = \"{}\"\nanonymous = true\n",
        site.head(),
        served.display()
    ));
    let rt = tokio::runtime::Runtime::new().unwrap();
    let ok = std::cell::Cell::new(0u32);
    for proto in [Protocol::Http1, Protocol::Http2] {
        let tls = site.tls(false, &[proto]);
        // One connection while it lasts (`run` takes an `Fn`, hence the lock).
        let conn = tokio::sync::Mutex::new(
            rt.block_on(Conn::connect(server.addr, "localhost", tls.clone()))
                .unwrap(),
        );
        let mut runner = TestRunner::new(Config {
            cases: 300,
            failure_persistence: None,
            ..Config::default()
        });
        runner
            .run(&request_path(), |raw| {
                let url = format!("https://{}/pub/{}", server.addr, raw);
                // What hyper's client cannot even send is no test case.
                let Ok(uri) = url.parse::<http::Uri>() else {
                    return Ok(());
                };
                let r = req("GET", &uri.to_string());
                let got = rt.block_on(async {
                    let mut conn = conn.lock().await;
                    match conn.send(r.body(Empty::new()).unwrap()).await {
                        Ok(resp) => Some(read(resp).await),
                        Err(_) => None,
                    }
                });
                let Some(got) = got else {
                    // The server closed the connection on a request it refused: reconnect.
                    *conn.blocking_lock() = rt
                        .block_on(Conn::connect(server.addr, "localhost", tls.clone()))
                        .unwrap();
                    return Ok(());
                };
                if got.status == 200 {
                    ok.set(ok.get() + 1);
                    prop_assert!(
                        got.body.starts_with(b"INSIDE"),
                        "{} sent {:?}",
                        raw,
                        String::from_utf8_lossy(&got.body)
                    );
                } else {
                    prop_assert!(!String::from_utf8_lossy(&got.body).contains("OUTSIDE"));
                    prop_assert!(
                        got.status == 404 || got.status == 400,
                        "{} gave {}",
                        raw,
                        got.status
                    );
                }
                Ok(())
            })
            .unwrap();
    }
    let ok = ok.get();
    eprintln!("server: {ok} of 600 requests got a 200, all from inside");
    assert!(ok > 5, "only {ok} requests got a file");
}
