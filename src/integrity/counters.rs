//! What integrity counts as it happens: chunks verified before sending,
//! chunks refused, files in quarantine.
//!
//! Plain metric handles: the server registers them in its metrics registry
//! (runtime state, above this layer); the defaults count into nothing
//! registered, for tests and tools.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;

/// A metric label naming a configured URL prefix (never a file below it).
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PathLabel {
    /// The vpath's configured URL.
    pub path: String,
}

/// Integrity's metric handles.
#[derive(Debug, Clone, Default)]
pub struct Counters {
    /// Chunks read from disk, hashed and found to match before being sent.
    pub chunks_verified: Counter,
    /// Chunks that did not match their manifest and were not sent, by vpath.
    pub chunks_refused: Family<PathLabel, Counter>,
    /// Published files quarantined now.
    pub quarantined_files: Gauge,
    /// Bytes of chunks read from object stores (serve-through paths), by vpath.
    pub store_read_bytes: Family<PathLabel, Counter>,
}

impl Counters {
    /// The refusal counter of the vpath `url`.
    pub fn refused_on(&self, url: &str) -> Counter {
        self.chunks_refused
            .get_or_create(&PathLabel { path: url.into() })
            .clone()
    }

    /// The store-read byte counter of the serve-through vpath `url`.
    pub fn store_read_on(&self, url: &str) -> Counter {
        self.store_read_bytes
            .get_or_create(&PathLabel { path: url.into() })
            .clone()
    }
}
