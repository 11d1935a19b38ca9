//! Why the integrity layer refused to serve a file.
//!
//! These are the integrity layer's own answers; the request layer maps them
//! to HTTP status codes (`error.rs`), in the one place that does that.

use super::published::PackageError;
use std::fmt;
use std::sync::Arc;

/// Why a file cannot be served as verified content now.
#[derive(Debug)]
pub enum IntegrityError {
    /// A published path's file that its manifest does not list.
    NotListed,
    /// A published file that failed verification and is quarantined.
    Quarantined {
        /// The lowest chunk known not to match, when one is known.
        chunk: Option<u64>,
    },
    /// The file changed while its manifest was being made (auto mode).
    Changed,
    /// A serve-through path's listed file is not in the object store.
    Missing,
    /// The path's published manifest cannot be used (missing, unreadable,
    /// invalid, or not signed by a publisher key).
    Unavailable {
        /// What is wrong with it.
        cause: Arc<PackageError>,
    },
    /// Reading or hashing the file failed.
    Io(std::io::Error),
}

impl fmt::Display for IntegrityError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IntegrityError::NotListed => f.write_str("not listed in the published manifest"),
            IntegrityError::Quarantined { .. } => {
                f.write_str("file quarantined after an integrity failure")
            }
            IntegrityError::Changed => f.write_str("file changed while being hashed"),
            IntegrityError::Missing => f.write_str("listed file missing from the object store"),
            IntegrityError::Unavailable { cause } => {
                write!(f, "published manifest unavailable: {cause}")
            }
            IntegrityError::Io(e) => write!(f, "integrity I/O: {e}"),
        }
    }
}

impl std::error::Error for IntegrityError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            IntegrityError::Unavailable { cause } => Some(cause.as_ref()),
            IntegrityError::Io(e) => Some(e),
            _ => None,
        }
    }
}

impl From<std::io::Error> for IntegrityError {
    fn from(e: std::io::Error) -> Self {
        IntegrityError::Io(e)
    }
}

/// A blocking task that panicked or was cancelled: an I/O failure of the
/// request, not a reason to stop the server.
impl From<tokio::task::JoinError> for IntegrityError {
    fn from(e: tokio::task::JoinError) -> Self {
        IntegrityError::Io(std::io::Error::other(e))
    }
}
