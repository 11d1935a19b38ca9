//! The audit log: security-relevant events as JSON lines, one file per UTC
//! day, kept for `retention_days`.
//!
//! A primitive: it knows events, files and days, nothing of the server. The
//! server hands an [`Audit`] handle to whoever sees an event happen.
//!
//! [`Audit::record`] never blocks and never fails: it puts the event on a
//! bounded channel to one writer thread ([`writer`]) and returns. When the
//! channel is full the event is dropped and counted, and when the folder is
//! unwritable (or the disk full) the writer logs it, counts the lost lines
//! and tries again with the next event. Serving never waits for the audit
//! log, and never stops because of it.
//!
//! A line is `{"ts":"2025-06-01T12:00:00.123Z","event":"forbidden",...}` with
//! the fields of its [`Event`]. Nothing secret is ever an event field: no
//! password, no `Authorization` header, no key, no password hash.

mod writer;

use prometheus_client::metrics::counter::Counter;
use serde::Serialize;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::mpsc::{SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

/// Default `[audit] retention_days`.
pub const DEFAULT_RETENTION_DAYS: u32 = 30;

/// Events that may wait for the writer before new ones are dropped.
pub const QUEUE_LEN: usize = 4096;

/// `[audit]`, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditSettings {
    /// The folder of the daily files (absolute).
    pub dir: PathBuf,
    /// Files for days longer ago than this are removed.
    pub retention_days: u32,
}

/// One audit event. Serialized with its name as `"event"`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// Credentials were given and are not valid (wrong password, unknown
    /// user, malformed header).
    AuthFailed {
        /// The client.
        peer: SocketAddr,
        /// `user:NAME` when the user exists (a wrong password). An unknown
        /// name is left out: it may be a password typed into the user field.
        #[serde(skip_serializing_if = "Option::is_none")]
        principal: Option<String>,
        /// The request path.
        path: String,
        /// Why.
        reason: String,
    },
    /// A client failed too often and is locked out.
    LockedOut {
        /// The client.
        peer: std::net::IpAddr,
        /// What is locked out: the IPv4 address or the IPv6 /64.
        client: String,
        /// Failures that led to it.
        failures: u32,
        /// How long it lasts.
        lockout_secs: u64,
    },
    /// An account failed too often (from any clients): clients that have
    /// failed may not try it for a while.
    AccountGuarded {
        /// The peer whose failure started it.
        peer: std::net::IpAddr,
        /// `user:NAME` when the account exists.
        #[serde(skip_serializing_if = "Option::is_none")]
        principal: Option<String>,
        /// Failures that led to it.
        failures: u32,
        /// How long it lasts.
        guard_secs: u64,
    },
    /// Authenticated, and not allowed on the path (`403`).
    Forbidden {
        /// The client.
        peer: SocketAddr,
        /// Who it was.
        principal: String,
        /// The request path.
        path: String,
    },
    /// A published file failed verification and is quarantined.
    Quarantined {
        /// The file on disk.
        file: String,
        /// The lowest chunk found bad, when one is known.
        #[serde(skip_serializing_if = "Option::is_none")]
        chunk: Option<u64>,
        /// Why.
        reason: String,
    },
    /// A quarantined file matches its manifest again.
    QuarantineReleased {
        /// The file on disk.
        file: String,
    },
    /// A new config is in force: what changed, in the words of the log.
    ConfigChanged {
        /// Changes in force now.
        changes: Vec<String>,
        /// Changes that wait for a restart.
        #[serde(skip_serializing_if = "Vec::is_empty")]
        restart_needed: Vec<String>,
    },
    /// A changed config did not validate; the running one stays.
    ConfigRejected {
        /// The error (`file:line:col: message`).
        reason: String,
    },
    /// New handshakes use a new server certificate.
    CertificateReloaded {
        /// SHA-256 fingerprint of the new leaf certificate.
        fingerprint: String,
        /// Its expiry (RFC 3339).
        #[serde(skip_serializing_if = "Option::is_none")]
        not_after: Option<String>,
    },
    /// New handshakes verify client certificates against a new CA.
    ClientCaReloaded {},
    /// A changed TLS file could not be used; the old material stays.
    TlsReloadFailed {
        /// Why.
        reason: String,
    },
    /// A running transfer was cut because a config change revoked it.
    TransferCut {
        /// The client.
        peer: SocketAddr,
        /// Who it was.
        principal: String,
        /// The request path.
        path: String,
        /// What revoked it.
        reason: String,
        /// Body bytes sent before the cut.
        bytes: u64,
    },
    /// A replica path switched to a new, verified package version.
    ReplicaSwitched {
        /// The replica's configured URL prefix.
        path: String,
        /// The package hash served now.
        package: String,
        /// Its sequence.
        sequence: u64,
    },
    /// A replica refused what a source offered (rollback, expired manifest,
    /// bad signature, a chunk that does not verify) and kept its version.
    ReplicaRefused {
        /// The replica's configured URL prefix.
        path: String,
        /// Why, naming the source.
        reason: String,
    },
}

/// What the writer counts; registered in the metrics by the server.
#[derive(Debug, Clone, Default)]
pub struct AuditCounters {
    /// Events dropped because the writer was behind (queue full).
    pub dropped: Counter,
    /// Events lost because the file could not be written.
    pub write_errors: Counter,
    /// Events written.
    pub written: Counter,
}

enum Message {
    Event(SystemTime, Event),
    /// Write what is queued, then answer.
    Flush(SyncSender<()>),
}

/// A handle to the audit log; cheap to clone. The default handle is off:
/// it records nothing.
#[derive(Clone, Default)]
pub struct Audit {
    inner: Option<Arc<Inner>>,
}

struct Inner {
    tx: SyncSender<Message>,
    counters: AuditCounters,
    /// When a drop was last logged, so a flood logs once a minute.
    last_drop_log: Mutex<Option<std::time::Instant>>,
}

impl std::fmt::Debug for Audit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Audit")
            .field("on", &self.inner.is_some())
            .finish()
    }
}

impl Audit {
    /// Start the writer thread for `settings`. Retention runs first, then
    /// once a day. Never fails: a folder that cannot be made is logged and
    /// retried with every event.
    pub fn start(settings: &AuditSettings, counters: AuditCounters) -> Audit {
        Self::start_with_queue(settings, counters, QUEUE_LEN)
    }

    fn start_with_queue(settings: &AuditSettings, counters: AuditCounters, queue: usize) -> Audit {
        let (tx, rx) = std::sync::mpsc::sync_channel(queue);
        let writer = writer::Writer::new(settings.clone(), counters.clone());
        let spawned = std::thread::Builder::new()
            .name("distpoint-audit".into())
            .spawn(move || writer.run(rx));
        if let Err(e) = spawned {
            tracing::error!(target: "distpoint::audit", "cannot start the audit writer: {e}; no audit log");
            return Audit::default();
        }
        Audit {
            inner: Some(Arc::new(Inner {
                tx,
                counters,
                last_drop_log: Mutex::new(None),
            })),
        }
    }

    /// True when events are written somewhere.
    pub fn is_on(&self) -> bool {
        self.inner.is_some()
    }

    /// Queue `event`, stamped now. Never blocks.
    pub fn record(&self, event: Event) {
        let Some(inner) = &self.inner else { return };
        match inner.tx.try_send(Message::Event(SystemTime::now(), event)) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                inner.counters.dropped.inc();
                let mut last = crate::sync::lock(&inner.last_drop_log);
                let now = std::time::Instant::now();
                if last.is_none_or(|t| now.duration_since(t) >= Duration::from_secs(60)) {
                    *last = Some(now);
                    tracing::error!(target: "distpoint::audit",
                        dropped = inner.counters.dropped.get(),
                        "audit writer is behind: events dropped (counted in distpoint_audit_events_dropped_total)");
                }
            }
            Err(TrySendError::Disconnected(_)) => {
                inner.counters.write_errors.inc();
            }
        }
    }

    /// Wait up to `timeout` until every event queued so far is written (or
    /// given up on). For shutdown and tests.
    pub fn flush(&self, timeout: Duration) -> bool {
        let Some(inner) = &self.inner else {
            return true;
        };
        let (done, wait) = std::sync::mpsc::sync_channel(1);
        let deadline = std::time::Instant::now() + timeout;
        let mut message = Message::Flush(done);
        // The queue may be full: retry until there is room or time is up.
        loop {
            match inner.tx.try_send(message) {
                Ok(()) => break,
                Err(TrySendError::Full(m)) if std::time::Instant::now() < deadline => {
                    message = m;
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err(_) => return false,
            }
        }
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        wait.recv_timeout(left).is_ok()
    }
}

/// Make the audit folder (and its parents) if missing, mode 0750: before a
/// sandbox is set up, which can name only folders that exist.
pub fn make_dir(dir: &std::path::Path) -> std::io::Result<()> {
    writer::make_dir(dir)
}

/// The file name for the UTC day of `at`: `audit-YYYY-MM-DD.jsonl`.
pub fn file_name(at: SystemTime) -> String {
    format!("audit-{}.jsonl", writer::day_of(at))
}

#[cfg(test)]
mod tests;
