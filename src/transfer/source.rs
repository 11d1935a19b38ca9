//! What the engine downloads from: a **source** answers ranged reads of one
//! file. distpoint, nginx, a CDN or (later) an object store are each one
//! implementation; the engine knows nothing of HTTP.
//!
//! A source hands out [`Reader`]s (for HTTP: one connection each). A read
//! asks for `[start, end)` of a file the manifest says is `size` bytes, and
//! may carry the [`Validator`] the source gave on its first answer: a source
//! whose copy no longer matches it says [`ReadErrorKind::Changed`] instead
//! of sending other bytes.

use bytes::Bytes;
use futures_core::Stream;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

/// A boxed, sendable future (sources are used as trait objects).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The body of a reply: the requested bytes, in order, in pieces of any size.
pub type ByteStream = Pin<Box<dyn Stream<Item = Result<Bytes, ReadError>> + Send>>;

/// What identifies one version of a source's copy of the file: its own
/// `ETag` (strong) or, failing that, its `Last-Modified`. Used only with the
/// source that gave it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Validator {
    /// A strong entity tag, quotes included.
    ETag(String),
    /// An HTTP date.
    LastModified(String),
}

impl Validator {
    /// The header value that carries it in `If-Range`.
    pub fn as_str(&self) -> &str {
        match self {
            Validator::ETag(s) | Validator::LastModified(s) => s,
        }
    }

    /// True when `other` describes another version. Validators of
    /// different kinds cannot be compared and are not taken as a change.
    pub fn conflicts_with(&self, other: &Validator) -> bool {
        match (self, other) {
            (Validator::ETag(a), Validator::ETag(b))
            | (Validator::LastModified(a), Validator::LastModified(b)) => a != b,
            _ => false,
        }
    }
}

/// One ranged read.
#[derive(Debug, Clone, Copy)]
pub struct ReadRequest<'a> {
    /// First byte.
    pub start: u64,
    /// One past the last byte.
    pub end: u64,
    /// The whole file's size per the manifest.
    pub size: u64,
    /// The validator this source gave before, if any.
    pub validator: Option<&'a Validator>,
}

/// A source's answer to a read: its validator and the bytes.
pub struct Reply {
    /// The version marker this answer carried.
    pub validator: Option<Validator>,
    /// Exactly `end - start` bytes when all goes well.
    pub body: ByteStream,
}

/// A place the file can be read from.
pub trait Source: Send + Sync {
    /// How messages and reports name it (its URL).
    fn name(&self) -> &str;
    /// Open a reader (a connection).
    fn open(&self) -> BoxFuture<'_, Result<Box<dyn Reader>, ReadError>>;
}

/// One connection to a source: reads one range at a time.
pub trait Reader: Send {
    /// Start a read; the reply's body streams the bytes.
    fn read<'a>(&'a mut self, req: ReadRequest<'a>) -> BoxFuture<'a, Result<Reply, ReadError>>;
    /// The protocol spoken, for reports (`HTTP/2`), if the notion applies.
    fn protocol(&self) -> Option<&'static str> {
        None
    }
}

/// What kind of failure a read met; the engine's policy follows from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadErrorKind {
    /// Worth retrying on this source after a pause: connection refused or
    /// cut, `503`, `429`… `wait` is what the source asked for.
    Transient {
        /// The pause the source asked for (`Retry-After`), capped.
        wait: Duration,
    },
    /// The source's copy is not the manifest's file any more: `200` to
    /// `If-Range`, another size, `416`.
    Changed,
    /// A distpoint server refuses the file as quarantined; the chunk it
    /// names, when it does.
    Quarantined {
        /// The chunk the server names in `Distpoint-Integrity`.
        chunk: Option<u64>,
    },
    /// A status that retrying will not change (`401`, `403`, `404`…).
    Status(u16),
    /// TLS failed: retrying will not make the certificate trusted.
    Tls,
    /// The answer makes no sense for the request (wrong `Content-Range`,
    /// more bytes than asked for).
    Protocol,
    /// The client's own settings are wrong (a URL, a certificate file).
    Settings,
}

/// Why a read failed: a kind, a message naming the source, and the cause.
#[derive(Debug)]
pub struct ReadError {
    /// What the engine should make of it.
    pub kind: ReadErrorKind,
    /// One line naming the source and what happened.
    pub message: String,
    source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

impl ReadError {
    /// An error of `kind` with a message and no underlying cause.
    pub fn new(kind: ReadErrorKind, message: impl Into<String>) -> ReadError {
        ReadError {
            kind,
            message: message.into(),
            source: None,
        }
    }

    /// The same, keeping `cause` as its `source()`.
    pub fn caused(
        kind: ReadErrorKind,
        message: impl Into<String>,
        cause: impl std::error::Error + Send + Sync + 'static,
    ) -> ReadError {
        ReadError {
            kind,
            message: message.into(),
            source: Some(Box::new(cause)),
        }
    }

    /// A transient failure with no requested pause.
    pub fn transient(message: impl Into<String>) -> ReadError {
        ReadError::new(
            ReadErrorKind::Transient {
                wait: Duration::ZERO,
            },
            message,
        )
    }
}

impl fmt::Display for ReadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ReadError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validators_compare_only_with_their_own_kind() {
        let a = Validator::ETag("\"a\"".into());
        let b = Validator::ETag("\"b\"".into());
        let d = Validator::LastModified("Tue, 01 Jul 2025 10:00:00 GMT".into());
        assert!(a.conflicts_with(&b));
        assert!(!a.conflicts_with(&a.clone()));
        assert!(!a.conflicts_with(&d));
        assert_eq!(d.as_str(), "Tue, 01 Jul 2025 10:00:00 GMT");
        let e = ReadError::caused(
            ReadErrorKind::Tls,
            "https://h/: TLS",
            std::io::Error::other("bad certificate"),
        );
        assert!(std::error::Error::source(&e).is_some());
        assert_eq!(e.to_string(), "https://h/: TLS");
    }
}
