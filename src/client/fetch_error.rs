//! What can go wrong in a fetch, and the exit code of each (SPEC.md:
//! 1 usage or config, 2 integrity, 3 network/HTTP that retries did not cure).

use std::fmt;

/// Why a fetch failed. Every message names the URL, file or key at fault.
#[derive(Debug)]
pub enum FetchError {
    /// Bad arguments or client settings (exit 1).
    Usage(String),
    /// The destination cannot be written: missing folder, no space (exit 1).
    Output(String),
    /// The manifest does not match `--expect`, or a chunk does not match the
    /// manifest (exit 2).
    Integrity {
        /// What did not match.
        message: String,
        /// The first bad chunk, when a chunk is at fault.
        chunk: Option<u64>,
        /// Content bytes received from the server in this run.
        bytes_fetched: u64,
    },
    /// The server answered with an error status that retrying will not cure (exit 3).
    Http {
        /// The URL asked for.
        url: String,
        /// The status code.
        status: u16,
    },
    /// Network or TLS failure, or transient errors that outlasted the retries (exit 3).
    Network(String),
}

impl FetchError {
    /// The process exit code for this error.
    pub fn exit_code(&self) -> u8 {
        match self {
            FetchError::Usage(_) | FetchError::Output(_) => 1,
            FetchError::Integrity { .. } => 2,
            FetchError::Http { .. } | FetchError::Network(_) => 3,
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
            FetchError::Usage(m) | FetchError::Output(m) | FetchError::Network(m) => f.write_str(m),
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

impl std::error::Error for FetchError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_follow_the_spec() {
        assert_eq!(FetchError::Usage("x".into()).exit_code(), 1);
        let i = FetchError::Integrity {
            message: "chunk 3 of 9 does not match".into(),
            chunk: Some(3),
            bytes_fetched: 10,
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
    }
}
