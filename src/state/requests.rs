//! Each request's record, as the metrics and the audit log see it: the
//! [`RequestObserver`] the pipeline attaches to every access-log record.

use super::metrics::{status_class, BytesLabels, Metrics, ReasonLabel, RequestLabels};
use crate::audit::{Audit, Event};
use crate::logging::{CutKind, Finished, Outcome, RequestObserver};
use prometheus_client::metrics::counter::Counter;
use std::sync::Arc;

/// The `path` label of bytes sent before (or without) a route.
const UNROUTED: &str = "-";

/// Counts one request: its body bytes as they go, its status and any cut
/// when it ends; a cut by revocation is an audit event.
#[derive(Debug)]
pub struct RequestTally {
    metrics: Arc<Metrics>,
    audit: Audit,
    proto: &'static str,
    /// The bytes counter of the route (resolved once per request).
    bytes: Option<Counter>,
}

impl RequestTally {
    /// A tally for a request over `proto` (`h1`, `h2`).
    pub fn new(metrics: Arc<Metrics>, audit: Audit, proto: &'static str) -> Self {
        RequestTally {
            metrics,
            audit,
            proto,
            bytes: None,
        }
    }

    fn bytes_counter(&self, path: &str) -> Counter {
        let labels = BytesLabels {
            path: path.to_string(),
            proto: self.proto,
        };
        self.metrics.response_bytes.get_or_create(&labels).clone()
    }
}

impl RequestObserver for RequestTally {
    fn routed(&mut self, url: &str) {
        self.bytes = Some(self.bytes_counter(url));
    }

    fn bytes(&mut self, n: u64) {
        if self.bytes.is_none() {
            self.bytes = Some(self.bytes_counter(UNROUTED));
        }
        if let Some(c) = &self.bytes {
            c.inc_by(n);
        }
    }

    fn finished(&mut self, r: &Finished<'_>) {
        let labels = RequestLabels {
            class: status_class(r.status),
            proto: self.proto,
        };
        self.metrics.requests.get_or_create(&labels).inc();
        let Outcome::Cut(kind, why) = r.outcome else {
            return;
        };
        self.metrics
            .transfers_cut
            .get_or_create(&ReasonLabel {
                reason: kind.as_str(),
            })
            .inc();
        if *kind == CutKind::Revoked {
            self.audit.record(Event::TransferCut {
                peer: r.peer,
                principal: r.principal.to_string(),
                path: r.path.to_string(),
                reason: why.clone(),
                bytes: r.bytes,
            });
        }
    }
}
