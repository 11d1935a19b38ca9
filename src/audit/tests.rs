use super::*;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(10);

fn settings(dir: &std::path::Path) -> AuditSettings {
    AuditSettings {
        dir: dir.to_path_buf(),
        retention_days: 30,
    }
}

fn forbidden(path: &str) -> Event {
    Event::Forbidden {
        peer: "192.0.2.7:40000".parse().unwrap(),
        principal: "cert:client01".into(),
        path: path.into(),
    }
}

fn lines(dir: &std::path::Path) -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(dir.join(file_name(SystemTime::now()))).unwrap();
    text.lines()
        .map(|l| serde_json::from_str(l).expect("every line is one JSON object"))
        .collect()
}

#[test]
fn events_are_json_lines_in_the_file_of_the_utc_day() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("audit");
    let counters = AuditCounters::default();
    let audit = Audit::start(&settings(&dir), counters.clone());
    audit.record(forbidden("/pkg/a.bin"));
    audit.record(Event::ClientCaReloaded {});
    audit.record(Event::AuthFailed {
        peer: "[2001:db8::1]:443".parse().unwrap(),
        principal: None,
        path: "/pkg/b.bin".into(),
        reason: "unknown user".into(),
    });
    assert!(audit.flush(WAIT));
    let got = lines(&dir);
    assert_eq!(got.len(), 3);
    assert_eq!(got[0]["event"], "forbidden");
    assert_eq!(got[0]["principal"], "cert:client01");
    assert_eq!(got[0]["path"], "/pkg/a.bin");
    assert_eq!(got[0]["peer"], "192.0.2.7:40000");
    let ts = got[0]["ts"].as_str().unwrap();
    assert!(
        ts.ends_with('Z') && ts.len() == 24,
        "RFC 3339 UTC with ms: {ts}"
    );
    assert_eq!(got[1]["event"], "client_ca_reloaded");
    assert_eq!(got[2]["event"], "auth_failed");
    assert!(got[2].get("principal").is_none(), "absent, not null");
    assert_eq!(counters.written.get(), 3);
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(dir.join(file_name(SystemTime::now())))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o007, 0, "not world-readable");
}

#[test]
fn retention_removes_only_expired_audit_files() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let day = |days_ago: u64| file_name(SystemTime::now() - Duration::from_secs(days_ago * 86_400));
    for name in [day(31), day(400), day(30), day(1)] {
        std::fs::write(dir.join(name), "{}\n").unwrap();
    }
    std::fs::write(dir.join("notes.txt"), "mine").unwrap();
    std::fs::write(dir.join("audit-1999-01-01.jsonl.gz"), "mine").unwrap();
    let audit = Audit::start(&settings(dir), AuditCounters::default());
    // Retention runs before the first event is written.
    assert!(audit.flush(WAIT));
    assert!(!dir.join(day(31)).exists());
    assert!(!dir.join(day(400)).exists());
    for kept in [day(30), day(1)] {
        assert!(dir.join(&kept).exists(), "{kept} is within 30 days");
    }
    assert!(dir.join("notes.txt").exists());
    assert!(dir.join("audit-1999-01-01.jsonl.gz").exists());
}

#[test]
fn an_unwritable_folder_loses_events_counted_and_recovers() {
    let tmp = tempfile::tempdir().unwrap();
    // A regular file where the folder should be: even root cannot create it.
    let blocker = tmp.path().join("blocker");
    std::fs::write(&blocker, "").unwrap();
    let dir = blocker.join("audit");
    let counters = AuditCounters::default();
    let audit = Audit::start(&settings(&dir), counters.clone());
    audit.record(forbidden("/lost"));
    assert!(audit.flush(WAIT));
    assert_eq!(counters.write_errors.get(), 1);
    std::fs::remove_file(&blocker).unwrap();
    audit.record(forbidden("/kept"));
    assert!(audit.flush(WAIT));
    assert_eq!(counters.written.get(), 1);
    assert_eq!(lines(&dir)[0]["path"], "/kept");
}

#[test]
fn a_full_disk_keeps_the_file_whole_lines() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let today = dir.join(file_name(SystemTime::now()));
    std::os::unix::fs::symlink("/dev/full", &today).unwrap();
    let counters = AuditCounters::default();
    let audit = Audit::start(&settings(dir), counters.clone());
    audit.record(forbidden("/a"));
    audit.record(forbidden("/b"));
    assert!(audit.flush(WAIT));
    assert_eq!(
        counters.write_errors.get(),
        2,
        "ENOSPC is counted, not fatal"
    );
}

#[test]
fn a_writer_that_is_behind_drops_and_counts() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    // Opening a FIFO for writing blocks until a reader comes: the writer is stuck.
    let fifo = dir.join(file_name(SystemTime::now()));
    let cwd = rustix::fs::CWD;
    rustix::fs::mkfifoat(cwd, &fifo, rustix::fs::Mode::from_raw_mode(0o600)).unwrap();
    let counters = AuditCounters::default();
    let audit = Audit::start_with_queue(&settings(dir), counters.clone(), 2);
    for i in 0..10 {
        audit.record(forbidden(&format!("/{i}")));
    }
    // The first is taken by the writer (stuck in open), two wait: seven or more dropped.
    assert!(
        counters.dropped.get() >= 7,
        "dropped {}",
        counters.dropped.get()
    );
    // Unblock the writer: what was queued is written.
    let reader = std::thread::spawn(move || std::fs::read_to_string(fifo).unwrap());
    assert!(audit.flush(WAIT));
    let written = counters.written.get();
    assert!((1..=3).contains(&written), "written {written}");
    // The writer closes the FIFO when the last handle goes: the reader sees the end.
    drop(audit);
    let text = reader.join().unwrap();
    assert_eq!(text.lines().count() as u64, written);
    assert_eq!(written + counters.dropped.get(), 10);
}
