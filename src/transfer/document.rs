//! Small documents a download starts with: a file's `?manifest`, a
//! package's `manifest.json` and signature. Fetched whole, with the same
//! retry policy as chunks; a distpoint server's quarantine notice is an
//! integrity answer, not a passing overload.

use super::conn::ClientError;
use super::endpoint::{Client, Target};
use super::http_source::status_line;
use super::response::{quarantine_notice, read_all, retry_after, transient_status, Whole};
use super::retry::{backoff, MAX_ATTEMPTS};
use http::StatusCode;
use std::fmt;

/// Largest document accepted (a 1 TiB file in 1 MiB chunks is ~70 MB of JSON).
pub const DOCUMENT_LIMIT: usize = 256 << 20;

/// Why a document could not be had.
#[derive(Debug)]
pub enum DocumentError {
    /// Settings or TLS: retrying will not help.
    Client {
        /// The URL asked for.
        url: String,
        /// The cause.
        source: ClientError,
    },
    /// A status that retrying will not change (`404` included).
    Status {
        /// The URL asked for.
        url: String,
        /// The status.
        status: StatusCode,
    },
    /// A distpoint server reports the file quarantined.
    Quarantined {
        /// The URL asked for.
        url: String,
        /// The chunk it names, if any.
        chunk: Option<u64>,
    },
    /// Transient failures outlasted the retries.
    GaveUp {
        /// The last failure, naming the URL.
        last: String,
    },
}

impl fmt::Display for DocumentError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DocumentError::Client { url, source } => write!(f, "{url}: {source}"),
            DocumentError::Status { url, status } => {
                write!(f, "{url}: HTTP {}", status_line(*status))
            }
            DocumentError::Quarantined { url, chunk } => {
                let which = match chunk {
                    Some(k) => format!("chunk {k} of the file"),
                    None => "the file".to_string(),
                };
                write!(
                    f,
                    "{url}: the server reports that {which} failed its integrity check (quarantined)"
                )
            }
            DocumentError::GaveUp { last } => {
                write!(f, "{last} (gave up after {MAX_ATTEMPTS} attempts)")
            }
        }
    }
}

impl std::error::Error for DocumentError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            DocumentError::Client { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// GET `target` whole (at most `limit` bytes), retrying transient failures.
/// Only a `200` is a document; every other final status is an error.
pub async fn get(client: &Client, target: &Target, limit: usize) -> Result<Whole, DocumentError> {
    let url = &target.url;
    let mut last = String::new();
    for attempt in 1..=MAX_ATTEMPTS {
        if attempt > 1 {
            tokio::time::sleep(backoff(attempt - 1)).await;
        }
        let fail = |source: ClientError| DocumentError::Client {
            url: url.clone(),
            source,
        };
        let mut conn = match client.connect(target).await {
            Ok(c) => c,
            Err(e) if e.is_settings() || e.is_tls() => {
                return Err(DocumentError::Client {
                    url: target.authority.clone(),
                    source: e,
                })
            }
            Err(e) => {
                last = format!("{}: {e}", target.authority);
                continue;
            }
        };
        let req = Client::build(client.get(target, conn.protocol)).map_err(fail)?;
        let whole = match conn.send(req).await {
            Ok(resp) => read_all(resp, limit).await,
            Err(e) => Err(e),
        };
        let whole = match whole {
            Ok(w) => w,
            Err(e @ ClientError::TooLarge { .. }) => return Err(fail(e)),
            Err(e) => {
                last = format!("{url}: {e}");
                continue;
            }
        };
        match whole.status {
            StatusCode::OK => return Ok(whole),
            StatusCode::SERVICE_UNAVAILABLE => {
                if let Some(n) = quarantine_notice(&whole.headers, &whole.body) {
                    return Err(DocumentError::Quarantined {
                        url: url.clone(),
                        chunk: n.chunk,
                    });
                }
            }
            s if transient_status(s) => {}
            status => {
                return Err(DocumentError::Status {
                    url: url.clone(),
                    status,
                })
            }
        }
        last = format!("{url}: HTTP {}", status_line(whole.status));
        tokio::time::sleep(retry_after(&whole.headers)).await;
    }
    Err(DocumentError::GaveUp { last })
}
