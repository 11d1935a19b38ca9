//! The metrics registry: every family the server exposes, in one place.
//!
//! Built on `prometheus-client`. Each family is created and registered here;
//! the code where an event happens holds a handle and counts it there (the
//! accept loop, the transfer registry, integrity, the audit writer, the
//! reload, and — through [`super::requests`] — each request's record).
//!
//! Labels carry only values the server chooses or the config names: a status
//! class, a protocol, a reason from a fixed list, a vpath's configured URL.
//! Never a user name, a password, a client address, or a path below a vpath.

use crate::audit::AuditCounters;
use crate::integrity;
use crate::integrity::counters::PathLabel;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::Registry;

/// Labels of `distpoint_requests_total`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// `2xx`, `4xx`, …
    pub class: &'static str,
    /// `h1` or `h2`.
    pub proto: &'static str,
}

/// Labels of `distpoint_response_bytes_total`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct BytesLabels {
    /// The configured URL the request was routed to (`-`: none).
    pub path: String,
    /// `h1` or `h2`.
    pub proto: &'static str,
}

/// A label from a fixed list of reasons.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    /// Why.
    pub reason: &'static str,
}

/// Labels of `distpoint_config_reloads_total`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReloadLabels {
    /// `config` (the file) or `tls` (certificate, key, client CA).
    pub kind: &'static str,
    /// `applied` or `rejected`.
    pub result: &'static str,
}

/// Per-replica figures, one label set per replica vpath, set by each
/// replica's sync loop after every sync (`replica::task`).
#[derive(Debug, Clone, Default)]
pub struct ReplicaMetrics {
    /// Unix time of the last successful sync.
    pub last_success: Family<PathLabel, Gauge>,
    /// `sequence` of the package served now.
    pub sequence: Family<PathLabel, Gauge>,
    /// Bytes fetched from sources.
    pub bytes_fetched: Family<PathLabel, Counter>,
    /// Bytes reused from local copies instead of fetched.
    pub bytes_reused: Family<PathLabel, Counter>,
}

/// Every metric the server exposes.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    /// Requests finished, by status class and protocol.
    pub requests: Family<RequestLabels, Counter>,
    /// Body bytes handed to connections, by vpath and protocol.
    pub response_bytes: Family<BytesLabels, Counter>,
    /// Connections open now (handshaking included).
    pub connections_open: Gauge,
    /// Connections accepted.
    pub connections_accepted: Counter,
    /// TLS handshakes that failed or timed out.
    pub handshake_failures: Counter,
    /// Response bodies being sent now.
    pub transfers_running: Gauge,
    /// Responses cut short by the server, by reason.
    pub transfers_cut: Family<ReasonLabel, Counter>,
    /// Chunks verified, chunks refused, files quarantined.
    pub integrity: integrity::Counters,
    /// Credentials refused, by reason.
    pub auth_failures: Family<ReasonLabel, Counter>,
    /// Lock-outs started.
    pub auth_lockouts: Counter,
    /// Account guards started.
    pub auth_account_guards: Counter,
    /// Basic attempts refused (`429`) because their client was locked out.
    pub auth_lockout_refusals: Counter,
    /// Config and TLS reloads, by kind and result.
    pub reloads: Family<ReloadLabels, Counter>,
    /// `notAfter` of the certificate served now, Unix seconds.
    pub cert_expiry: Gauge,
    /// The audit writer's counts.
    pub audit: AuditCounters,
    /// Per-replica figures.
    pub replicas: ReplicaMetrics,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    /// Every family, registered under the prefix `distpoint`.
    pub fn new() -> Self {
        let mut m = Metrics {
            registry: Registry::with_prefix("distpoint"),
            requests: Family::default(),
            response_bytes: Family::default(),
            connections_open: Gauge::default(),
            connections_accepted: Counter::default(),
            handshake_failures: Counter::default(),
            transfers_running: Gauge::default(),
            transfers_cut: Family::default(),
            integrity: integrity::Counters::default(),
            auth_failures: Family::default(),
            auth_lockouts: Counter::default(),
            auth_account_guards: Counter::default(),
            auth_lockout_refusals: Counter::default(),
            reloads: Family::default(),
            cert_expiry: Gauge::default(),
            audit: AuditCounters::default(),
            replicas: ReplicaMetrics::default(),
        };
        m.register();
        m
    }

    fn register(&mut self) {
        let r = &mut self.registry;
        r.register(
            "build",
            "Version of the running binary",
            Info::new(vec![("version", env!("CARGO_PKG_VERSION"))]),
        );
        let started = Gauge::<i64>::default();
        started.set(unix_now());
        r.register(
            "start_time_seconds",
            "Unix time the server started",
            started,
        );
        r.register(
            "requests",
            "Requests answered, by status class and protocol (counted when the response ends)",
            self.requests.clone(),
        );
        r.register(
            "response_bytes",
            "Response body bytes handed to connections, by configured URL prefix and protocol",
            self.response_bytes.clone(),
        );
        r.register(
            "connections_open",
            "TLS connections open now, handshaking included",
            self.connections_open.clone(),
        );
        r.register(
            "connections_accepted",
            "TCP connections accepted",
            self.connections_accepted.clone(),
        );
        r.register(
            "tls_handshake_failures",
            "TLS handshakes that failed or timed out",
            self.handshake_failures.clone(),
        );
        r.register(
            "transfers_running",
            "Response bodies being sent now",
            self.transfers_running.clone(),
        );
        r.register(
            "transfers_cut",
            "Responses cut short by the server: revoked (config change), integrity (chunk refused), \
             changed (file changed on disk), error (read failure)",
            self.transfers_cut.clone(),
        );
        r.register(
            "chunks_verified",
            "Chunks read from disk, hashed and found to match their manifest before being sent",
            self.integrity.chunks_verified.clone(),
        );
        r.register(
            "chunks_refused",
            "Chunks that did not match their manifest and were not sent (integrity failures), by URL prefix",
            self.integrity.chunks_refused.clone(),
        );
        r.register(
            "quarantined_files",
            "Published files quarantined now",
            self.integrity.quarantined_files.clone(),
        );
        r.register(
            "store_read_bytes",
            "Bytes of chunks read from the object store by serve-through paths, by URL prefix",
            self.integrity.store_read_bytes.clone(),
        );
        r.register(
            "auth_failures",
            "Credentials refused: wrong_password, unknown_user, malformed",
            self.auth_failures.clone(),
        );
        r.register(
            "auth_lockouts",
            "Clients locked out after repeated failed Basic authentications",
            self.auth_lockouts.clone(),
        );
        r.register(
            "auth_account_guards",
            "Accounts guarded after repeated failures from any clients (clients that failed may not try them)",
            self.auth_account_guards.clone(),
        );
        r.register(
            "auth_lockout_refusals",
            "Basic attempts refused with 429: their client is locked out, or it has failed and the account is guarded",
            self.auth_lockout_refusals.clone(),
        );
        r.register(
            "config_reloads",
            "Reloads of the config file (kind=config) and TLS files (kind=tls), by result",
            self.reloads.clone(),
        );
        r.register(
            "tls_certificate_expiry_timestamp_seconds",
            "notAfter of the server certificate served now, Unix time",
            self.cert_expiry.clone(),
        );
        r.register(
            "audit_events_written",
            "Audit events written",
            self.audit.written.clone(),
        );
        r.register(
            "audit_events_dropped",
            "Audit events dropped because the writer was behind",
            self.audit.dropped.clone(),
        );
        r.register(
            "audit_write_errors",
            "Audit events lost because the audit folder could not be written",
            self.audit.write_errors.clone(),
        );
        let rep = &self.replicas;
        r.register(
            "replica_last_success_timestamp_seconds",
            "Unix time of a replica's last successful sync",
            rep.last_success.clone(),
        );
        r.register(
            "replica_package_sequence",
            "Sequence of the package a replica serves",
            rep.sequence.clone(),
        );
        r.register(
            "replica_bytes_fetched",
            "Bytes a replica fetched from its sources",
            rep.bytes_fetched.clone(),
        );
        r.register(
            "replica_bytes_reused",
            "Bytes a replica reused from local copies instead of fetching",
            rep.bytes_reused.clone(),
        );
    }

    /// Count one refusal of credentials (`reason` from a fixed list).
    pub fn auth_failure(&self, reason: &'static str) {
        self.auth_failures
            .get_or_create(&ReasonLabel { reason })
            .inc();
    }

    /// Count one reload of `kind` (`config`, `tls`) with `result` (`applied`, `rejected`).
    pub fn reload(&self, kind: &'static str, result: &'static str) {
        self.reloads
            .get_or_create(&ReloadLabels { kind, result })
            .inc();
    }

    /// The exposition: OpenMetrics text when `openmetrics`, else the
    /// Prometheus text format 0.0.4. Returns the body and its content type.
    pub fn encode(&self, openmetrics: bool) -> (String, &'static str) {
        let mut out = String::new();
        let content_type = if openmetrics {
            prometheus_client::encoding::text::encode(&mut out, &self.registry)
                .expect("writing to a String cannot fail");
            "application/openmetrics-text; version=1.0.0; charset=utf-8"
        } else {
            prometheus_client::encoding::prometheus_text::encode(&mut out, &self.registry)
                .expect("writing to a String cannot fail");
            prometheus_client::encoding::prometheus_text::CONTENT_TYPE
        };
        (out, content_type)
    }
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// The status class label of `status`.
pub fn status_class(status: u16) -> &'static str {
    match status {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        500..=599 => "5xx",
        _ => "other",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_are_named_and_typed() {
        let m = Metrics::new();
        m.requests
            .get_or_create(&RequestLabels {
                class: status_class(206),
                proto: "h2",
            })
            .inc();
        m.auth_failure("wrong_password");
        m.reload("config", "applied");
        let (text, ty) = m.encode(false);
        assert!(ty.starts_with("text/plain; version=0.0.4"));
        assert!(text.contains("# TYPE distpoint_requests_total counter"));
        assert!(text.contains("distpoint_requests_total{class=\"2xx\",proto=\"h2\"} 1"));
        assert!(text.contains("distpoint_auth_failures_total{reason=\"wrong_password\"} 1"));
        assert!(
            text.contains("distpoint_config_reloads_total{kind=\"config\",result=\"applied\"} 1")
        );
        assert!(text.contains("# TYPE distpoint_transfers_running gauge"));
        assert!(text.contains("distpoint_build_info{version="));
        let (open, ty) = m.encode(true);
        assert!(ty.starts_with("application/openmetrics-text"));
        assert!(open.ends_with("# EOF\n"));
    }

    #[test]
    fn the_dashboard_asks_only_for_families_that_exist() {
        let m = Metrics::new();
        // Give every family a sample, so that each appears in the text.
        let path = PathLabel { path: "/p".into() };
        m.replicas.last_success.get_or_create(&path).set(1);
        m.replicas.sequence.get_or_create(&path).set(1);
        m.replicas.bytes_fetched.get_or_create(&path).inc();
        m.replicas.bytes_reused.get_or_create(&path).inc();
        m.integrity.refused_on("/p").inc();
        m.transfers_cut
            .get_or_create(&ReasonLabel { reason: "revoked" })
            .inc();
        m.auth_failure("malformed");
        m.reload("tls", "applied");
        m.response_bytes
            .get_or_create(&BytesLabels {
                path: "/p".into(),
                proto: "h1",
            })
            .inc();
        m.requests
            .get_or_create(&RequestLabels {
                class: "2xx",
                proto: "h1",
            })
            .inc();
        let (text, _) = m.encode(false);
        let exposed: std::collections::BTreeSet<&str> = text
            .lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| l.split(['{', ' ']).next())
            .collect();
        let dashboard = include_str!("../../contrib/grafana-dashboard.json");
        let mut asked = 0;
        for (i, _) in dashboard.match_indices("distpoint_") {
            let name: String = dashboard[i..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            assert!(
                exposed.contains(name.as_str()),
                "the dashboard asks for {name}, not exposed: {exposed:?}"
            );
            asked += 1;
        }
        assert!(asked > 15, "{asked} queries");
    }
}
