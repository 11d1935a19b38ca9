//! Logging: the tracing subscriber and the one-line-per-request access log.
//!
//! The access log names the principal, never a credential: the
//! `Authorization` header, passwords and keys are never passed to tracing.

use std::net::SocketAddr;
use std::time::Instant;
use tracing_subscriber::EnvFilter;

/// Install the global subscriber: human-readable lines on stderr, level from
/// `RUST_LOG` (default `info`).
pub fn init() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(true)
        .try_init();
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
}

#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    /// The body was sent to its end (or had none).
    Complete,
    /// The body ended with an error (the client saw a cut-off).
    Cut(String),
    /// The client went away before the end.
    Abandoned,
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
        }
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
    }

    /// The body reached its end.
    pub fn complete(&mut self) {
        self.outcome = Outcome::Complete;
    }

    /// The body was cut by the server.
    pub fn cut(&mut self, why: String) {
        self.outcome = Outcome::Cut(why);
    }

    /// The body was dropped early because the server cut it (for example its
    /// connection was closed after a revocation); a finished body stays complete.
    pub fn cut_if_unfinished(&mut self, why: String) {
        if self.outcome == Outcome::Abandoned {
            self.outcome = Outcome::Cut(why);
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
        let ms = self.start.elapsed().as_secs_f64() * 1000.0;
        let outcome = match &self.outcome {
            Outcome::Complete => "complete",
            Outcome::Cut(_) => "cut",
            Outcome::Abandoned => "abandoned",
        };
        let detail = match (&self.outcome, &self.reason) {
            (Outcome::Cut(why), _) => why.as_str(),
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
            ms = format_args!("{ms:.1}"),
            outcome,
            detail,
        );
    }
}
