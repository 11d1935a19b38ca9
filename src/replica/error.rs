//! Why a sync did not switch to a new version. Every variant keeps the
//! last good version serving; the task logs it, shows it in `status` and
//! retries with backoff.

use crate::transfer::document::DocumentError;
use crate::transfer::{ClientError, TransferError};
use std::fmt;
use std::path::{Path, PathBuf};

/// A refusal of a package manifest a source offered: integrity, not network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The manifest bytes do not hash to `upstream.expect`.
    Hash {
        /// What they hash to.
        got: String,
    },
    /// Publisher keys are configured and the source has no signature.
    Unsigned,
    /// The signature verifies with none of the publisher keys.
    BadSignature,
    /// Not a valid package manifest.
    Invalid(String),
    /// Its sequence is lower than the one served (rollback).
    Rollback {
        /// The offered sequence.
        offered: u64,
        /// The served one.
        served: u64,
    },
    /// The same sequence as the one served, with other bytes.
    SameSequence(u64),
    /// More than 5 minutes past its `expires` (freeze).
    Expired(String),
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::Hash { got } => {
                write!(f, "package hash {got} does not match upstream.expect")
            }
            Refusal::Unsigned => f.write_str("the package is not signed (publisher_keys is set)"),
            Refusal::BadSignature => {
                f.write_str("the signature does not verify with any publisher key")
            }
            Refusal::Invalid(e) => write!(f, "invalid package manifest: {e}"),
            Refusal::Rollback { offered, served } => write!(
                f,
                "sequence {offered} is lower than the {served} served (rollback refused)"
            ),
            Refusal::SameSequence(s) => write!(
                f,
                "sequence {s} is the one served, with different bytes (refused)"
            ),
            Refusal::Expired(at) => write!(f, "the package manifest expired at {at} (refused)"),
        }
    }
}

/// Why a sync failed.
#[derive(Debug)]
pub enum SyncError {
    /// Every source's manifest was refused or unreachable, and at least one
    /// was refused: (source, reason) for each refusal.
    Refused(Vec<(String, Refusal)>),
    /// No source could be asked (network, HTTP, TLS), and none was refused.
    Unreachable(Vec<String>),
    /// The client settings (CA, certificate, password file) are unusable.
    Settings(String),
    /// Outside the configured windows: nothing was asked.
    OutsideWindows(String),
    /// A file could not be had from the sources.
    Transfer {
        /// The file (relative path).
        file: String,
        /// Why.
        source: TransferError,
    },
    /// Staging or the version folder could not be written.
    Disk {
        /// The file or folder at fault.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The sync task failed (a bug).
    Task(String),
}

impl SyncError {
    /// The status word: `refused` for integrity refusals and bad chunks,
    /// `waiting` outside the windows, else `failed`.
    pub fn kind(&self) -> &'static str {
        match self {
            SyncError::Refused(_) => "refused",
            SyncError::Transfer {
                source: TransferError::Integrity { .. },
                ..
            } => "refused",
            SyncError::OutsideWindows(_) => "waiting",
            _ => "failed",
        }
    }

    /// A disk error at `path`.
    pub fn disk(path: &Path) -> impl FnOnce(std::io::Error) -> SyncError + '_ {
        move |source| SyncError::Disk {
            path: path.to_path_buf(),
            source,
        }
    }
}

impl fmt::Display for SyncError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SyncError::Refused(all) => {
                let each: Vec<String> = all.iter().map(|(s, r)| format!("{s}: {r}")).collect();
                write!(f, "refused: {}", each.join("; "))
            }
            SyncError::Unreachable(all) => write!(f, "no source answered: {}", all.join("; ")),
            SyncError::Settings(m) => write!(f, "upstream settings: {m}"),
            SyncError::OutsideWindows(m) => f.write_str(m),
            SyncError::Transfer { file, source } => write!(f, "{file}: {source}"),
            SyncError::Disk { path, source } => write!(f, "{}: {source}", path.display()),
            SyncError::Task(m) => write!(f, "sync task failed: {m}"),
        }
    }
}

impl std::error::Error for SyncError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            SyncError::Transfer { source, .. } => Some(source),
            SyncError::Disk { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// Why a source could not be asked, or did not answer for a document.
#[derive(Debug)]
pub enum OriginError {
    /// The source URL cannot be used (an unsupported scheme, a bad URL).
    Address {
        /// The source as configured.
        url: String,
        /// Why, when it is not a client error.
        reason: String,
        /// The client's error, if that is why.
        source: Option<Box<ClientError>>,
    },
    /// `?manifest` or `?signature` failed (network, TLS, HTTP status).
    Document {
        /// The source's package prefix.
        url: String,
        /// What failed.
        source: Box<DocumentError>,
    },
    /// The manifest or signature object could not be read from a store.
    Store {
        /// The source's `s3://BUCKET/PREFIX`.
        url: String,
        /// What the store said.
        source: Box<crate::objstore::StoreError>,
    },
}

impl fmt::Display for OriginError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OriginError::Address {
                url,
                reason,
                source,
            } => match source {
                Some(e) => write!(f, "{url}: {e}"),
                None => write!(f, "{url}: {reason}"),
            },
            OriginError::Document { source, .. } => write!(f, "{source}"),
            OriginError::Store { url, source } => write!(f, "{url}: {source}"),
        }
    }
}

impl std::error::Error for OriginError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            OriginError::Address { source, .. } => source
                .as_ref()
                .map(|e| e as &(dyn std::error::Error + 'static)),
            OriginError::Document { source, .. } => Some(source.as_ref()),
            OriginError::Store { source, .. } => Some(source.as_ref()),
        }
    }
}

/// Why `distpoint sync` could not be answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SyncRequestError {
    /// The URL prefix asked for is not a replica path.
    NotAReplica(String),
    /// The replica's task ended before it answered (shutdown, or removed from the config).
    Stopped,
}

impl fmt::Display for SyncRequestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SyncRequestError::NotAReplica(u) => {
                write!(f, "{u} is not a replica path of this server")
            }
            SyncRequestError::Stopped => f.write_str("the replica stopped"),
        }
    }
}

impl std::error::Error for SyncRequestError {}
