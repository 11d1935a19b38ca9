//! What can go wrong in a fetch, and the exit code of each: 1 usage or
//! config, 2 integrity (no source could deliver a chunk that verifies, or
//! the manifest does not match `--expect`), 3 network or HTTP failures of
//! every source that was left.

use super::output::OutputError;
use crate::transfer::document::DocumentError;
use crate::transfer::{ClientError, SourceReport, TransferError};
use std::fmt;
use std::path::Path;

/// Why a fetch failed. Every message names the URL, file or key at fault.
#[derive(Debug)]
pub enum FetchError {
    /// Bad arguments (exit 1).
    Usage(String),
    /// Client settings (exit 1) or a connection that failed for good (exit 3).
    Client(ClientError),
    /// The destination cannot be written: missing folder, no space (exit 1).
    Output(OutputError),
    /// The manifest does not match `--expect` (or is invalid), or a chunk
    /// could not be had from any source without failing its hash (exit 2).
    Integrity {
        /// What did not match.
        message: String,
        /// The chunk at fault, when a chunk is.
        chunk: Option<u64>,
        /// Content bytes received in this run, from all sources.
        bytes_fetched: u64,
        /// What each source did.
        sources: Vec<SourceReport>,
    },
    /// The server answered with an error status that retrying will not cure (exit 3).
    Http {
        /// The URL asked for.
        url: String,
        /// The status code.
        status: u16,
    },
    /// Network or HTTP failures of every source that was left (exit 3).
    Unavailable {
        /// What happened, per source.
        message: String,
        /// What each source did.
        sources: Vec<SourceReport>,
    },
}

impl FetchError {
    /// The process exit code for this error.
    pub fn exit_code(&self) -> u8 {
        match self {
            FetchError::Usage(_) | FetchError::Output(_) => 1,
            FetchError::Client(e) if e.is_settings() => 1,
            FetchError::Integrity { .. } => 2,
            FetchError::Client(_) | FetchError::Http { .. } | FetchError::Unavailable { .. } => 3,
        }
    }

    /// An integrity failure that is not about a chunk (nothing fetched yet).
    pub fn integrity(message: String) -> FetchError {
        FetchError::Integrity {
            message,
            chunk: None,
            bytes_fetched: 0,
            sources: Vec::new(),
        }
    }

    /// The per-source figures, when the failure came from a transfer.
    pub fn sources(&self) -> &[SourceReport] {
        match self {
            FetchError::Integrity { sources, .. } | FetchError::Unavailable { sources, .. } => {
                sources
            }
            _ => &[],
        }
    }

    /// The error as the engine reported it, with its figures; `part` is
    /// the work file the engine wrote to.
    pub fn from_transfer(e: TransferError, sources: Vec<SourceReport>, part: &Path) -> FetchError {
        let bytes_fetched = sources.iter().map(|s| s.bytes).sum();
        match e {
            TransferError::Integrity { chunk, message } => FetchError::Integrity {
                message,
                chunk: Some(chunk),
                bytes_fetched,
                sources,
            },
            TransferError::Unavailable { message } => FetchError::Unavailable { message, sources },
            TransferError::Settings(e) => FetchError::Usage(e.to_string()),
            TransferError::Sink { chunk, source } => FetchError::Output(OutputError {
                path: part.to_path_buf(),
                problem: format!("cannot write chunk {chunk}"),
                source: Some(source),
            }),
            TransferError::Task(_) => FetchError::Unavailable {
                message: e.to_string(),
                sources,
            },
        }
    }
}

impl From<ClientError> for FetchError {
    fn from(e: ClientError) -> FetchError {
        FetchError::Client(e)
    }
}

impl From<OutputError> for FetchError {
    fn from(e: OutputError) -> FetchError {
        FetchError::Output(e)
    }
}

impl From<DocumentError> for FetchError {
    fn from(e: DocumentError) -> FetchError {
        match e {
            DocumentError::Client { source, .. } if source.is_settings() => {
                FetchError::Client(source)
            }
            DocumentError::Status { url, status } => FetchError::Http {
                url,
                status: status.as_u16(),
            },
            DocumentError::Quarantined { chunk, .. } => FetchError::Integrity {
                message: e.to_string(),
                chunk,
                bytes_fetched: 0,
                sources: Vec::new(),
            },
            other => FetchError::Unavailable {
                message: other.to_string(),
                sources: Vec::new(),
            },
        }
    }
}

fn status_hint(status: u16) -> &'static str {
    match status {
        401 => " (credentials missing or wrong: --user with DISTPOINT_PASSWORD, or --cert/--key)",
        403 => " (this identity may not read the path)",
        404 => " (no such file on the server)",
        _ => "",
    }
}

impl fmt::Display for FetchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FetchError::Usage(m) => f.write_str(m),
            FetchError::Client(e) => write!(f, "{e}"),
            FetchError::Output(e) => write!(f, "{e}"),
            FetchError::Unavailable { message, .. } => f.write_str(message),
            FetchError::Integrity {
                message,
                bytes_fetched,
                ..
            } => write!(
                f,
                "integrity failure: {message}; {bytes_fetched} content bytes fetched"
            ),
            FetchError::Http { url, status } => {
                let reason = http::StatusCode::from_u16(*status)
                    .ok()
                    .and_then(|s| s.canonical_reason())
                    .unwrap_or("");
                write!(f, "{url}: HTTP {status} {reason}{}", status_hint(*status))
            }
        }
    }
}

impl std::error::Error for FetchError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            FetchError::Client(e) => Some(e),
            FetchError::Output(e) => Some(e),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_follow_the_spec() {
        assert_eq!(FetchError::Usage("x".into()).exit_code(), 1);
        assert_eq!(
            FetchError::from(ClientError::settings("bad URL")).exit_code(),
            1
        );
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        assert_eq!(FetchError::from(ClientError::Io(refused)).exit_code(), 3);
        let i = FetchError::Integrity {
            message: "chunk 3 of 9 does not match".into(),
            chunk: Some(3),
            bytes_fetched: 10,
            sources: Vec::new(),
        };
        assert_eq!(i.exit_code(), 2);
        assert!(i.to_string().contains("chunk 3"));
        let h = FetchError::Http {
            url: "https://h/x".into(),
            status: 404,
        };
        assert_eq!(h.exit_code(), 3);
        assert_eq!(
            h.to_string(),
            "https://h/x: HTTP 404 Not Found (no such file on the server)"
        );
        let t = FetchError::from_transfer(
            TransferError::Unavailable {
                message: "https://h/x: connection refused".into(),
            },
            vec![SourceReport::default()],
            Path::new("x.part"),
        );
        assert_eq!(t.exit_code(), 3);
        assert_eq!(t.sources().len(), 1);
    }
}
