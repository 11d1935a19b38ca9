//! Logs through the real binary: `[log] format = "json"` writes one JSON
//! object per line (the access log as target `distpoint::access`), `RUST_LOG`
//! filters by target, a reload switches the format, and the last line says
//! the server stopped.

mod support;

use distpoint::transfer::Protocol;
use serde_json::Value;
use std::time::Duration;
use support::*;

const H1: &[Protocol] = &[Protocol::Http1];
const WAIT: Duration = Duration::from_secs(20);

fn config(site: &Site, log: &str) -> String {
    site.file("pub/hello.txt", b"hello\n");
    std::fs::create_dir_all(site.path("priv")).unwrap();
    format!(
        "{}{}[[vpath]]\nurl = \"/pub\"\ndir = \"pub\"\nanonymous = true\n\
         [[vpath]]\nurl = \"/priv\"\ndir = \"priv\"\nallow = [\"user:alice\"]\n{log}",
        site.head(),
        site.user("alice")
    )
}

fn parse(line: &str) -> Value {
    let v: Value =
        serde_json::from_str(line).unwrap_or_else(|e| panic!("not a JSON object ({e}): {line}"));
    assert!(v.is_object(), "{line}");
    v
}

#[tokio::test(flavor = "multi_thread")]
async fn json_logs_are_one_object_per_line_and_the_last_says_stopped() {
    let site = Site::new();
    let server = site.start(&config(&site, "[log]\nformat = \"json\"\n"));
    let tls = || site.tls(false, H1);
    assert_eq!(
        fetch(&server, tls(), req("GET", &server.url("/pub/hello.txt")))
            .await
            .status,
        200
    );
    assert_eq!(
        fetch(&server, tls(), req("GET", &server.url("/nowhere")))
            .await
            .status,
        404
    );
    let wrong =
        req("GET", &server.url("/priv/x")).header("authorization", basic("alice", "s3cret-guess"));
    assert_eq!(fetch(&server, tls(), wrong).await.status, 401);
    assert!(server.wait_log_count("distpoint::access", 3, WAIT));
    let (status, log) = server.terminate_and_log();
    assert!(status.success());

    let lines: Vec<Value> = log.lines().map(parse).collect();
    for l in &lines {
        for key in ["timestamp", "level", "target"] {
            assert!(l[key].is_string(), "{key} missing in {l}");
        }
    }
    let access: Vec<&Value> = lines
        .iter()
        .filter(|l| l["target"] == "distpoint::access")
        .collect();
    assert_eq!(access.len(), 3, "{log}");
    let ok = access
        .iter()
        .find(|l| l["path"] == "/pub/hello.txt")
        .unwrap();
    assert_eq!(
        (ok["status"].as_u64(), ok["bytes"].as_u64()),
        (Some(200), Some(6))
    );
    assert_eq!(
        (ok["proto"].as_str(), ok["outcome"].as_str()),
        (Some("h1"), Some("complete"))
    );
    assert!(ok["ms"].is_number() && ok["peer"].as_str().unwrap().starts_with("127.0.0.1:"));
    let refused = access.iter().find(|l| l["status"] == 401).unwrap();
    assert!(
        refused["detail"]
            .as_str()
            .unwrap()
            .contains("wrong password"),
        "{refused}"
    );
    assert!(
        !log.contains("s3cret-guess") && !log.contains("YWxpY2U6"),
        "no credential is logged"
    );
    let last = lines.last().unwrap();
    assert_eq!(last["message"], "stopped", "{last}");
}

#[tokio::test(flavor = "multi_thread")]
async fn rust_log_filters_targets_and_a_reload_switches_to_json() {
    let site = Site::new();
    let text = config(&site, "");
    let path = site.config(&text);
    // The access log off by its target, everything else at info.
    let filter = std::ffi::OsStr::new("info,distpoint::access=off");
    let server = Server::start_with_env(&path, &[("RUST_LOG", filter)]);
    let tls = || site.tls(false, H1);
    assert_eq!(
        fetch(&server, tls(), req("GET", &server.url("/pub/hello.txt")))
            .await
            .status,
        200
    );
    std::fs::write(&path, config(&site, "[log]\nformat = \"json\"\n")).unwrap();
    assert!(
        server.wait_log("config change: log.format text -> json", WAIT),
        "{}",
        server.log()
    );
    let before = server.log().lines().count();
    assert_eq!(
        fetch(&server, tls(), req("GET", &server.url("/pub/hello.txt")))
            .await
            .status,
        200
    );
    let (status, log) = server.terminate_and_log();
    assert!(status.success());
    assert!(
        !log.contains("distpoint::access"),
        "filtered out by RUST_LOG:\n{log}"
    );
    let lines: Vec<&str> = log.lines().collect();
    assert!(
        lines[..before].iter().any(|l| l.contains(" INFO ")),
        "text before the switch"
    );
    let after: Vec<Value> = lines[before..].iter().map(|l| parse(l)).collect();
    assert!(!after.is_empty());
    assert_eq!(after.last().unwrap()["message"], "stopped");
}
