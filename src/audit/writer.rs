//! The audit writer thread: daily files, retention, and failures that are
//! logged and counted instead of stopping anything.
//!
//! Each line is one `write` to a file opened with `O_APPEND`, so a crash
//! loses at most the line being written. A write that fails part-way (a full
//! disk) is truncated back to the end of the last whole line, so the file
//! stays one JSON object per line.

use super::{AuditCounters, AuditSettings, Event, Message};
use serde::Serialize;
use std::fs::File;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant, SystemTime};
use time::macros::format_description;
use time::{Date, OffsetDateTime};
use tracing::{error, info, warn};

/// How often the writer wakes without events, to apply retention when the
/// UTC day has changed.
const WAKE: Duration = Duration::from_secs(600);

/// While failing, how often the failure is logged again.
const RELOG: Duration = Duration::from_secs(60);

const PREFIX: &str = "audit-";
const SUFFIX: &str = ".jsonl";

/// The UTC day of `at`, as `YYYY-MM-DD`.
pub(super) fn day_of(at: SystemTime) -> String {
    format_day(OffsetDateTime::from(at).date())
}

fn format_day(d: Date) -> String {
    d.format(format_description!("[year]-[month]-[day]"))
        .expect("a date formats")
}

/// RFC 3339 UTC with milliseconds.
fn timestamp(at: SystemTime) -> String {
    OffsetDateTime::from(at)
        .format(format_description!(
            "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
        ))
        .expect("a time formats")
}

/// The day a file name `audit-YYYY-MM-DD.jsonl` is for; `None` for any other name.
fn day_of_name(name: &str) -> Option<Date> {
    let day = name.strip_prefix(PREFIX)?.strip_suffix(SUFFIX)?;
    Date::parse(day, format_description!("[year]-[month]-[day]")).ok()
}

#[derive(Serialize)]
struct Line<'a> {
    ts: String,
    #[serde(flatten)]
    event: &'a Event,
}

/// Why lines are being lost, while they are.
struct Failing {
    lost: u64,
    logged: Instant,
}

pub(super) struct Writer {
    settings: AuditSettings,
    counters: AuditCounters,
    /// The file of the day being written.
    open: Option<(Date, File)>,
    failing: Option<Failing>,
    /// The day retention last ran.
    retained: Option<Date>,
}

impl Writer {
    pub(super) fn new(settings: AuditSettings, counters: AuditCounters) -> Self {
        Writer {
            settings,
            counters,
            open: None,
            failing: None,
            retained: None,
        }
    }

    pub(super) fn run(mut self, rx: Receiver<Message>) {
        self.retention(SystemTime::now());
        loop {
            match rx.recv_timeout(WAKE) {
                Ok(message) => self.handle(message),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => return,
            }
            self.retention(SystemTime::now());
        }
    }

    fn handle(&mut self, message: Message) {
        match message {
            Message::Event(at, event) => self.write(at, &event),
            Message::Flush(done) => {
                let _ = done.send(());
            }
        }
    }

    fn write(&mut self, at: SystemTime, event: &Event) {
        let mut line = serde_json::to_string(&Line {
            ts: timestamp(at),
            event,
        })
        .expect("events serialize");
        line.push('\n');
        let day = OffsetDateTime::from(at).date();
        match self.append(day, line.as_bytes()) {
            Ok(()) => {
                self.counters.written.inc();
                if let Some(f) = self.failing.take() {
                    warn!(target: "distpoint::audit", dir = %self.settings.dir.display(),
                        lost = f.lost, "audit log writable again; events were lost meanwhile");
                }
            }
            Err((path, e)) => {
                self.counters.write_errors.inc();
                self.open = None;
                self.failed(&path, &e);
            }
        }
    }

    /// Append `line` to the file of `day`, whole or not at all.
    fn append(&mut self, day: Date, line: &[u8]) -> Result<(), (PathBuf, std::io::Error)> {
        let path = self.path_of(day);
        if self.open.as_ref().map(|(d, _)| *d) != Some(day) {
            let file = open(&self.settings.dir, &path).map_err(|e| (path.clone(), e))?;
            self.open = Some((day, file));
        }
        let (_, file) = self.open.as_mut().expect("opened above");
        let end = file.metadata().map(|m| m.len()).ok();
        if let Err(e) = file.write_all(line) {
            // Keep the file whole lines: cut off what part of this one got in.
            if let Some(end) = end {
                let _ = file.set_len(end);
            }
            return Err((path, e));
        }
        Ok(())
    }

    fn failed(&mut self, path: &Path, e: &std::io::Error) {
        let now = Instant::now();
        match &mut self.failing {
            None => {
                self.failing = Some(Failing {
                    lost: 1,
                    logged: now,
                });
                error!(target: "distpoint::audit", file = %path.display(),
                    "cannot write the audit log: {e}; serving goes on, audit events are lost until it works \
                     again (counted in distpoint_audit_write_errors_total)");
            }
            Some(f) => {
                f.lost += 1;
                if now.duration_since(f.logged) >= RELOG {
                    f.logged = now;
                    error!(target: "distpoint::audit", file = %path.display(), lost = f.lost,
                        "the audit log is still not writable: {e}");
                }
            }
        }
    }

    fn path_of(&self, day: Date) -> PathBuf {
        self.settings
            .dir
            .join(format!("{PREFIX}{}{SUFFIX}", format_day(day)))
    }

    /// Once per UTC day: remove the files of days more than
    /// `retention_days` before today. Only names this writer makes are
    /// touched.
    fn retention(&mut self, now: SystemTime) {
        let today = OffsetDateTime::from(now).date();
        if self.retained == Some(today) {
            return;
        }
        self.retained = Some(today);
        let dir = &self.settings.dir;
        let keep_from = today - time::Duration::days(self.settings.retention_days.into());
        let entries = match std::fs::read_dir(dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return,
            Err(e) => {
                error!(target: "distpoint::audit", dir = %dir.display(),
                    "audit retention: cannot list the folder: {e}");
                return;
            }
        };
        let mut removed = 0;
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(day) = name.to_str().and_then(day_of_name) else {
                continue;
            };
            if day >= keep_from {
                continue;
            }
            match std::fs::remove_file(entry.path()) {
                Ok(()) => removed += 1,
                Err(e) => error!(target: "distpoint::audit", file = %entry.path().display(),
                    "audit retention: cannot remove an expired file: {e}"),
            }
        }
        if removed > 0 {
            info!(target: "distpoint::audit", dir = %dir.display(), removed,
                retention_days = self.settings.retention_days,
                "audit retention: removed files older than the retention period");
        }
    }
}

/// Make `dir` and its parents, 0750.
pub(super) fn make_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o750)
        .create(dir)
}

/// Open (creating folder and file) for appending; the log names principals
/// and addresses, so neither is world-readable.
fn open(dir: &Path, path: &Path) -> std::io::Result<File> {
    make_dir(dir)?;
    std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o640)
        .open(path)
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    #[test]
    fn names_and_stamps_are_utc() {
        let at = SystemTime::UNIX_EPOCH + Duration::from_millis(1_717_243_200_123);
        assert_eq!(day_of(at), "2024-06-01");
        assert_eq!(timestamp(at), "2024-06-01T12:00:00.123Z");
        assert_eq!(
            day_of_name("audit-2024-06-01.jsonl"),
            Some(Date::from_calendar_date(2024, time::Month::June, 1).unwrap())
        );
        assert_eq!(day_of_name("audit-2024-06-01.jsonl.gz"), None);
        assert_eq!(day_of_name("notes-2024-06-01.jsonl"), None);
        assert_eq!(day_of_name("audit-2024-13-01.jsonl"), None);
    }
}
