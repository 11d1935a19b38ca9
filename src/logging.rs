//! Logging: the tracing subscriber (text or JSON lines on stderr) and the
//! one-line-per-request access log (target `distpoint::access`).
//!
//! The access log names the principal, never a credential: the
//! `Authorization` header, passwords and keys are never passed to tracing.
//! The same record feeds the metrics: a [`RequestObserver`] set by the server
//! learns a request's route, its body bytes as they are sent, and how it
//! ended.

use std::net::SocketAddr;
use std::sync::OnceLock;
use std::time::Instant;
use tracing_subscriber::layer::{Layered, SubscriberExt};
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{reload, EnvFilter, Layer, Registry};

/// `[log] format`: how lines are written to stderr.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum LogFormat {
    /// One human-readable line per event.
    #[default]
    Text,
    /// One JSON object per line (`timestamp`, `level`, `target`, then the
    /// event's fields, `message` among them), for log shippers.
    Json,
}

impl LogFormat {
    /// Every format, the default first.
    pub const ALL: &'static [LogFormat] = &[LogFormat::Text, LogFormat::Json];

    /// The spelling in the config.
    pub fn as_str(self) -> &'static str {
        match self {
            LogFormat::Text => "text",
            LogFormat::Json => "json",
        }
    }
}

type Filtered = Layered<EnvFilter, Registry>;
type Output = Box<dyn Layer<Filtered> + Send + Sync>;

/// The output layer, swapped when the config names another format.
static OUTPUT: OnceLock<reload::Handle<Output, Filtered>> = OnceLock::new();

fn output(format: LogFormat) -> Output {
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let layer = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_target(true);
    match format {
        LogFormat::Text => Box::new(layer.with_ansi(ansi)),
        LogFormat::Json => Box::new(
            layer
                .json()
                .flatten_event(true)
                .with_current_span(false)
                .with_span_list(false),
        ),
    }
}

/// Install the global subscriber: text lines on stderr, level from
/// `RUST_LOG` (default `info`). [`set_format`] switches to JSON once the
/// config is read.
pub fn init() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let (layer, handle) = reload::Layer::new(output(LogFormat::Text));
    if tracing_subscriber::registry()
        .with(filter)
        .with(layer)
        .try_init()
        .is_ok()
    {
        let _ = OUTPUT.set(handle);
    }
}

/// Write every later line in `format` (no effect before [`init`]).
pub fn set_format(format: LogFormat) {
    if let Some(handle) = OUTPUT.get() {
        let _ = handle.reload(output(format));
    }
}

/// Why the server cut a response body short.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CutKind {
    /// A config change revoked the transfer.
    Revoked,
    /// A chunk failed verification (published mode: tampering).
    Integrity,
    /// The file changed on disk during the transfer (auto mode).
    Changed,
    /// Reading failed.
    Error,
}

impl CutKind {
    /// Every kind.
    pub const ALL: &'static [CutKind] = &[
        CutKind::Revoked,
        CutKind::Integrity,
        CutKind::Changed,
        CutKind::Error,
    ];

    /// The name in logs and metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            CutKind::Revoked => "revoked",
            CutKind::Integrity => "integrity",
            CutKind::Changed => "changed",
            CutKind::Error => "error",
        }
    }
}

/// How a response ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The body was sent to its end (or had none).
    Complete,
    /// The body ended with an error (the client saw a cut-off), and why.
    Cut(CutKind, String),
    /// The client went away before the end.
    Abandoned,
}

/// A finished request, as a [`RequestObserver`] is told of it.
#[derive(Debug)]
pub struct Finished<'a> {
    /// The client.
    pub peer: SocketAddr,
    /// `h1` or `h2`.
    pub proto: &'static str,
    /// Who it was authenticated as (`-`: not authenticated).
    pub principal: &'a str,
    /// The request path as sent.
    pub path: &'a str,
    /// The response status.
    pub status: u16,
    /// Body bytes handed to the connection.
    pub bytes: u64,
    /// How it ended.
    pub outcome: &'a Outcome,
}

/// Learns what the access log learns (the server's metrics): set per request.
pub trait RequestObserver: Send + std::fmt::Debug {
    /// The request was routed to the configured URL `url` (a vpath's, or
    /// the metrics page's).
    fn routed(&mut self, url: &str);
    /// `n` more body bytes were handed to the connection.
    fn bytes(&mut self, n: u64);
    /// The request ended (its record is being written).
    fn finished(&mut self, request: &Finished<'_>);
}

/// The access-log record of one request, written once when dropped.
#[derive(Debug)]
pub struct AccessLog {
    start: Instant,
    peer: SocketAddr,
    proto: &'static str,
    method: String,
    path: String,
    principal: String,
    status: u16,
    bytes: u64,
    outcome: Outcome,
    reason: Option<String>,
    observer: Option<Box<dyn RequestObserver>>,
}

impl AccessLog {
    /// Start a record for a request.
    pub fn new(peer: SocketAddr, proto: &'static str, method: &http::Method, path: &str) -> Self {
        AccessLog {
            start: Instant::now(),
            peer,
            proto,
            method: method.to_string(),
            path: path.to_string(),
            principal: "-".into(),
            status: 0,
            bytes: 0,
            outcome: Outcome::Abandoned,
            reason: None,
            observer: None,
        }
    }

    /// The same record, also told to `observer`.
    pub fn observed(mut self, observer: Box<dyn RequestObserver>) -> Self {
        self.observer = Some(observer);
        self
    }

    /// The request was routed to the configured URL `url`.
    pub fn route(&mut self, url: &str) {
        if let Some(o) = &mut self.observer {
            o.routed(url);
        }
    }

    /// Who the request was authenticated as so far (`-`: nobody yet).
    pub fn principal_name(&self) -> &str {
        &self.principal
    }

    /// Who the request was authenticated as.
    pub fn principal(&mut self, who: String) {
        self.principal = who;
    }

    /// The response status, and why it was refused if it was.
    pub fn status(&mut self, status: http::StatusCode, reason: Option<String>) {
        self.status = status.as_u16();
        self.reason = reason;
    }

    /// Body bytes handed to the connection.
    pub fn add_bytes(&mut self, n: u64) {
        self.bytes += n;
        if let Some(o) = &mut self.observer {
            o.bytes(n);
        }
    }

    /// The body reached its end.
    pub fn complete(&mut self) {
        self.outcome = Outcome::Complete;
    }

    /// The body was cut by the server.
    pub fn cut(&mut self, kind: CutKind, why: String) {
        self.outcome = Outcome::Cut(kind, why);
    }

    /// The body was dropped early because the server cut it (for example its
    /// connection was closed after a revocation); a finished body stays complete.
    pub fn cut_if_unfinished(&mut self, kind: CutKind, why: String) {
        if self.outcome == Outcome::Abandoned {
            self.outcome = Outcome::Cut(kind, why);
        }
    }

    /// Mark a response without body as complete.
    pub fn no_body(mut self) -> Self {
        self.outcome = Outcome::Complete;
        self
    }
}

impl Drop for AccessLog {
    fn drop(&mut self) {
        // Tenths of a millisecond: a number in JSON, short in text.
        let ms = (self.start.elapsed().as_secs_f64() * 10_000.0).round() / 10.0;
        let outcome = match &self.outcome {
            Outcome::Complete => "complete",
            Outcome::Cut(..) => "cut",
            Outcome::Abandoned => "abandoned",
        };
        let detail = match (&self.outcome, &self.reason) {
            (Outcome::Cut(_, why), _) => why.as_str(),
            (_, Some(r)) => r.as_str(),
            _ => "",
        };
        tracing::info!(
            target: "distpoint::access",
            peer = %self.peer,
            proto = self.proto,
            principal = %self.principal,
            method = %self.method,
            path = %self.path,
            status = self.status,
            bytes = self.bytes,
            ms,
            outcome,
            detail,
        );
        if let Some(mut o) = self.observer.take() {
            o.finished(&Finished {
                peer: self.peer,
                proto: self.proto,
                principal: &self.principal,
                path: &self.path,
                status: self.status,
                bytes: self.bytes,
                outcome: &self.outcome,
            });
        }
    }
}
