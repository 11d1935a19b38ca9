//! What a transfer did, per source: bytes and chunks received, chunks
//! refused, and whether and why the source was dropped.

use std::fmt;
use std::time::Duration;

/// Why a source was dropped for the rest of a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DropReason {
    /// It sent a chunk that failed its hash.
    BadChunk {
        /// The chunk.
        chunk: u64,
    },
    /// A distpoint server refused the file as quarantined.
    Quarantined {
        /// The chunk it named (or, failing that, the lowest it cut or refused).
        chunk: Option<u64>,
    },
    /// Its copy is not the manifest's file (`200` to `If-Range`, another
    /// size, `416`, another validator).
    Changed(String),
    /// A status retrying will not change.
    Status(String),
    /// TLS failed.
    Tls(String),
    /// Answers that make no sense for the request.
    Protocol(String),
    /// Transient failures outlasted the retries.
    GaveUp {
        /// Failures in a row.
        attempts: u32,
        /// The last one.
        last: String,
    },
}

impl DropReason {
    /// True when the source served bytes that are not the manifest's (or
    /// said so itself): an integrity reason, as opposed to a network one.
    pub fn is_integrity(&self) -> bool {
        matches!(
            self,
            DropReason::BadChunk { .. } | DropReason::Quarantined { .. }
        )
    }

    /// The chunk at fault, for integrity reasons.
    pub fn chunk(&self) -> Option<u64> {
        match self {
            DropReason::BadChunk { chunk } => Some(*chunk),
            DropReason::Quarantined { chunk } => *chunk,
            _ => None,
        }
    }

    /// A short machine name for `--json`.
    pub fn kind(&self) -> &'static str {
        match self {
            DropReason::BadChunk { .. } => "bad_chunk",
            DropReason::Quarantined { .. } => "quarantined",
            DropReason::Changed(_) => "changed",
            DropReason::Status(_) => "http_status",
            DropReason::Tls(_) => "tls",
            DropReason::Protocol(_) => "protocol",
            DropReason::GaveUp { .. } => "network",
        }
    }
}

impl fmt::Display for DropReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DropReason::BadChunk { chunk } => {
                write!(f, "chunk {chunk} does not match the manifest")
            }
            DropReason::Quarantined { chunk: Some(k) } => write!(
                f,
                "the server reports the file quarantined (chunk {k} failed its integrity check)"
            ),
            DropReason::Quarantined { chunk: None } => {
                f.write_str("the server reports the file quarantined")
            }
            DropReason::Changed(m)
            | DropReason::Status(m)
            | DropReason::Tls(m)
            | DropReason::Protocol(m) => f.write_str(m),
            DropReason::GaveUp { attempts, last } => {
                write!(f, "{last} (gave up after {attempts} attempts)")
            }
        }
    }
}

/// One source's figures for a run.
#[derive(Debug, Clone, Default)]
pub struct SourceReport {
    /// Its name (URL).
    pub name: String,
    /// Content bytes received from it.
    pub bytes: u64,
    /// Chunks received from it that verified (and were written).
    pub chunks: u64,
    /// Chunks refused: they failed their hash, or the source refused them as quarantined.
    pub refused: u64,
    /// Requests sent to it.
    pub requests: u64,
    /// The protocol of its first connection.
    pub protocol: Option<&'static str>,
    /// Why it was dropped, if it was.
    pub dropped: Option<DropReason>,
}

impl SourceReport {
    /// The `--json` object.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "url": self.name,
            "bytes": self.bytes,
            "chunks": self.chunks,
            "chunks_refused": self.refused,
            "requests": self.requests,
            "protocol": self.protocol,
            "dropped": self.dropped.is_some(),
            "drop_kind": self.dropped.as_ref().map(DropReason::kind),
            "drop_reason": self.dropped.as_ref().map(ToString::to_string),
        })
    }
}

/// The figures of one engine run.
#[derive(Debug, Clone, Default)]
pub struct TransferReport {
    /// Per source, in the order given.
    pub sources: Vec<SourceReport>,
    /// Chunks verified before the run (resumed).
    pub chunks_resumed: u64,
    /// Chunks taken from [`super::LocalChunks`].
    pub chunks_local: u64,
    /// Bytes of those.
    pub bytes_local: u64,
    /// Chunks fetched and verified in this run.
    pub chunks_fetched: u64,
    /// Wall time of the run.
    pub elapsed: Duration,
}

impl TransferReport {
    /// Content bytes received from all sources.
    pub fn bytes_fetched(&self) -> u64 {
        self.sources.iter().map(|s| s.bytes).sum()
    }

    /// The protocol of the first source that had a connection.
    pub fn protocol(&self) -> Option<&'static str> {
        self.sources.iter().find_map(|s| s.protocol)
    }

    /// The per-source objects for `--json`.
    pub fn sources_json(&self) -> serde_json::Value {
        self.sources.iter().map(SourceReport::to_json).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_say_why_and_sort_integrity_from_network() {
        let bad = DropReason::BadChunk { chunk: 7 };
        assert!(bad.is_integrity());
        assert_eq!(bad.chunk(), Some(7));
        assert_eq!(bad.to_string(), "chunk 7 does not match the manifest");
        let gave = DropReason::GaveUp {
            attempts: 6,
            last: "https://h/x: HTTP 503 Service Unavailable".into(),
        };
        assert!(!gave.is_integrity());
        assert!(gave.to_string().ends_with("(gave up after 6 attempts)"));
        let r = SourceReport {
            name: "https://h/x".into(),
            dropped: Some(bad),
            ..Default::default()
        };
        let v = r.to_json();
        assert_eq!(v["dropped"], true);
        assert_eq!(v["drop_kind"], "bad_chunk");
    }
}
