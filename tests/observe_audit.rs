//! The audit log through the real binary: the events, their format (one
//! JSON object per line, `ts` and `event` first), no secrets, retention at
//! start, and a folder that cannot be written never stops serving.

mod support;

use distpoint::transfer::Protocol;
use serde_json::Value;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant, SystemTime};
use support::*;

const WAIT: Duration = Duration::from_secs(20);
const H1: &[Protocol] = &[Protocol::Http1];
const CHUNK: usize = 4096;

/// Every line of every audit file in `dir`, parsed (each must parse).
fn events(dir: &Path) -> Vec<Value> {
    let mut names: Vec<_> = std::fs::read_dir(dir)
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    names.sort();
    let mut out = Vec::new();
    for p in names {
        let text = std::fs::read_to_string(&p).unwrap();
        for line in text.lines() {
            let v: Value = serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("{}: not one JSON object: {e}: {line}", p.display()));
            out.push(v);
        }
    }
    out
}

/// Wait for an event named `name` that `pred` accepts; returns it.
fn wait_event(dir: &Path, name: &str, pred: impl Fn(&Value) -> bool) -> Value {
    let end = Instant::now() + WAIT;
    loop {
        if let Some(e) = events(dir)
            .into_iter()
            .find(|e| e["event"] == name && pred(e))
        {
            return e;
        }
        assert!(
            Instant::now() < end,
            "no {name} event; the log has:\n{:#?}",
            events(dir)
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn day_file(days_ago: u64) -> String {
    let at = SystemTime::now() - Duration::from_secs(days_ago * 86_400);
    distpoint::audit::file_name(at)
}

#[tokio::test(flavor = "multi_thread")]
async fn security_events_are_audited_as_json_lines_and_old_files_expire() {
    let site = Site::new();
    let audit = site.path("audit-log");
    std::fs::create_dir_all(&audit).unwrap();
    std::fs::write(
        audit.join(day_file(45)),
        "{\"ts\":\"old\",\"event\":\"old\"}\n",
    )
    .unwrap();
    std::fs::write(
        audit.join(day_file(3)),
        "{\"ts\":\"recent\",\"event\":\"recent\"}\n",
    )
    .unwrap();
    let original = data(4 * CHUNK, 9);
    let file = site.file("content/pkg/app.bin", &original);
    std::fs::create_dir_all(site.path("priv")).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_distpoint"))
        .args([
            "publish",
            site.path("content/pkg").to_str().unwrap(),
            "--chunk-size",
            "4096",
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    let head = site.head().replace(
        "state_dir = \"state\"\n",
        "state_dir = \"state\"\nauth_failures_per_minute = 2\n",
    );
    let paths = "[[vpath]]\nurl = \"/pkg\"\ndir = \"content/pkg\"\nanonymous = true\nintegrity = \"published\"\n\
                 [[vpath]]\nurl = \"/priv\"\ndir = \"priv\"\nallow = [\"user:alice\"]\n";
    // An absolute `dir` is used as it is (a relative one is under state_dir).
    let audit_cfg = format!(
        "[audit]\ndir = {:?}\nretention_days = 30\n",
        audit.to_str().unwrap()
    );
    let config = format!("{head}{}{paths}{audit_cfg}", site.user("alice"));
    let server = site.start(&config);

    // Retention at start: the 45-day-old file goes, the 3-day-old one stays.
    let end = Instant::now() + WAIT;
    while audit.join(day_file(45)).exists() {
        assert!(
            Instant::now() < end,
            "the expired audit file was not removed"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(audit.join(day_file(3)).exists());

    let tls = || site.tls(false, H1);
    let wrong =
        req("GET", &server.url("/priv/x")).header("authorization", basic("alice", "not-it"));
    assert_eq!(fetch(&server, tls(), wrong).await.status, 401);
    let e = wait_event(&audit, "auth_failed", |_| true);
    assert_eq!(
        (e["principal"].as_str(), e["path"].as_str()),
        (Some("user:alice"), Some("/priv/x"))
    );
    assert_eq!(e["reason"], "wrong password");
    assert!(e["peer"].as_str().unwrap().starts_with("127.0.0.1:"));
    // The second failure within a minute locks the client out.
    let unknown =
        req("GET", &server.url("/priv/x")).header("authorization", basic("mallory", "guess"));
    assert_eq!(fetch(&server, tls(), unknown).await.status, 401);
    let e = wait_event(&audit, "locked_out", |_| true);
    assert_eq!(
        (e["peer"].as_str(), e["failures"].as_u64()),
        (Some("127.0.0.1"), Some(2))
    );
    assert!(e["lockout_secs"].as_u64().unwrap() >= 1);
    let unknown = wait_event(&audit, "auth_failed", |e| e["reason"] == "unknown user");
    assert!(
        unknown.get("principal").is_none(),
        "an unknown name is never written"
    );

    assert_eq!(
        fetch(
            &server,
            site.tls(true, H1),
            req("GET", &server.url("/priv/x"))
        )
        .await
        .status,
        403
    );
    let e = wait_event(&audit, "forbidden", |_| true);
    assert_eq!(
        (e["principal"].as_str(), e["path"].as_str()),
        (Some("cert:client01"), Some("/priv/x"))
    );

    // Quarantine, then its release once the bytes match again.
    tamper(&file, 2 * CHUNK + 1, b"!");
    let got = fetch_cut(&server, tls(), req("GET", &server.url("/pkg/app.bin"))).await;
    assert!(got.is_none_or(|g| g.cut), "cut before the bad chunk");
    let e = wait_event(&audit, "quarantined", |_| true);
    assert_eq!(e["chunk"], 2);
    assert_eq!(e["file"].as_str(), file.to_str());
    std::fs::write(&file, &original).unwrap();
    let got = fetch(&server, tls(), req("GET", &server.url("/pkg/app.bin"))).await;
    assert_eq!(got.status, 200);
    wait_event(&audit, "quarantine_released", |e| {
        e["file"].as_str() == file.to_str()
    });

    // A config change: the diff is written, never the new password hash.
    let new_hash = distpoint::auth::hash_password("another password").unwrap();
    let changed = config
        .replace(&site.hash, &new_hash)
        .replace("allow = [\"user:alice\"]", "allow = []");
    std::fs::write(site.path("distpoint.toml"), &changed).unwrap();
    let e = wait_event(&audit, "config_changed", |_| true);
    let changes = e["changes"].to_string();
    assert!(
        changes.contains("user password changed: alice"),
        "{changes}"
    );
    assert!(changes.contains("path changed: /priv"), "{changes}");
    std::fs::write(
        site.path("distpoint.toml"),
        format!("{changed}[[vpath]]\nurl = 7\n"),
    )
    .unwrap();
    let e = wait_event(&audit, "config_rejected", |_| true);
    assert!(
        e["reason"].as_str().unwrap().contains("distpoint.toml:"),
        "{e}"
    );

    // A new certificate for new handshakes.
    let renewed = site
        .pki
        .ca
        .issue_server(&["localhost", "127.0.0.1"])
        .unwrap();
    std::fs::write(site.path("certs/server.key.new"), &renewed.key).unwrap();
    std::fs::write(site.path("certs/server.crt.new"), &renewed.cert).unwrap();
    std::fs::rename(
        site.path("certs/server.key.new"),
        site.path("certs/server.key"),
    )
    .unwrap();
    std::fs::rename(
        site.path("certs/server.crt.new"),
        site.path("certs/server.crt"),
    )
    .unwrap();
    let e = wait_event(&audit, "certificate_reloaded", |_| true);
    assert_eq!(e["fingerprint"].as_str().unwrap().len(), 64);
    assert!(e["not_after"].as_str().unwrap().ends_with('Z'));

    // Every line: `ts` (RFC 3339 UTC) and `event`, and no secret anywhere.
    for e in events(&audit).iter().filter(|e| e["ts"] != "recent") {
        let ts = e["ts"].as_str().unwrap();
        assert!(ts.ends_with('Z') && ts.contains('T'), "{e}");
        assert!(e["event"].is_string());
    }
    let all: String = std::fs::read_dir(&audit)
        .unwrap()
        .flatten()
        .map(|f| std::fs::read_to_string(f.path()).unwrap())
        .collect();
    for secret in [
        "not-it",
        "guess",
        "mallory",
        "another password",
        "argon2",
        "BEGIN",
    ] {
        assert!(!all.contains(secret), "{secret} in the audit log");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unwritable_audit_folder_is_logged_and_serving_goes_on() {
    let site = Site::new();
    site.file("pub/hello.txt", b"hello\n");
    std::fs::create_dir_all(site.path("priv")).unwrap();
    // The folder's parent is a regular file: nobody, root included, can create it.
    site.file("state/blocker", b"");
    let config = format!(
        "{}{}[[vpath]]\nurl = \"/pub\"\ndir = \"pub\"\nanonymous = true\n\
         [[vpath]]\nurl = \"/priv\"\ndir = \"priv\"\nallow = [\"user:alice\"]\n\
         [audit]\ndir = \"blocker/audit\"\n[metrics]\nanonymous = true\n",
        site.head(),
        site.user("alice")
    );
    let server = site.start(&config);
    let tls = || site.tls(true, H1);
    for _ in 0..3 {
        assert_eq!(
            fetch(&server, tls(), req("GET", &server.url("/priv/x")))
                .await
                .status,
            403
        );
    }
    assert!(
        server.wait_log("cannot write the audit log", WAIT),
        "{}",
        server.log()
    );
    assert_eq!(
        server.log_count("cannot write the audit log"),
        1,
        "logged once, not per event"
    );
    let got = fetch(&server, tls(), req("GET", &server.url("/pub/hello.txt"))).await;
    assert_eq!((got.status, got.body.as_slice()), (200, &b"hello\n"[..]));
    let end = Instant::now() + WAIT;
    loop {
        let got = fetch(
            &server,
            tls(),
            req("GET", &server.url("/.well-known/distpoint/metrics")),
        )
        .await;
        let text = String::from_utf8(got.body).unwrap();
        if text.contains("distpoint_audit_write_errors_total 3") {
            break;
        }
        assert!(Instant::now() < end, "{text}");
        std::thread::sleep(Duration::from_millis(20));
    }
}
