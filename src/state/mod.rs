//! Runtime state: what the request pipeline, the accept loop and the live
//! reload share while the server runs.
//!
//! It sits below all three, so that each of them imports it and none of them
//! imports another:
//!
//! - [`ServerState`]: what every request can reach — the config snapshot,
//!   the credential checker, integrity state and the transfer registry. It
//!   holds no socket, so the pipeline can be driven in-process in tests.
//! - [`ConnInfo`]: what is known about one connection once TLS is up.
//! - [`registry`]: running transfers and what authorized each.
//! - [`replicas`]: each replica path's served version and status.
//! - [`certs`]: the live TLS configuration new handshakes use.
//! - [`metrics`]: every metric family; [`requests`]: each request's tally.
//! - the [`Audit`] handle every layer that sees an audit event writes to.
//! - [`Runtime`]: the process-wide rest (TLS, listen addresses).

pub mod certs;
pub mod metrics;
pub mod registry;
pub mod replicas;
pub mod requests;

pub use certs::TlsState;
pub use metrics::Metrics;
pub use registry::{Authority, Revoked, TransferGuard, TransferRegistry};

use crate::audit::{Audit, Event};
use crate::auth::{Authenticator, Lockout, LockoutHook};
use crate::body::Budget;
use crate::config::Config;
use crate::integrity::IntegrityState;
use crate::resolve::OpenFiles;
use arc_swap::ArcSwap;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// What every request can reach.
pub struct ServerState {
    /// The running configuration, swapped whole.
    pub config: ArcSwap<Config>,
    /// Basic-credential verification with its cache.
    pub auth: Authenticator,
    /// Manifests, verified-chunk cache, published packages, quarantine.
    pub integrity: IntegrityState,
    /// Transfers running now and what authorized each (cut on revocation).
    pub transfers: TransferRegistry,
    /// File bytes in flight, server-wide.
    pub budget: Arc<Budget>,
    /// Files opened safely, reused while their paths name them.
    pub files: Arc<OpenFiles>,
    /// The addresses the listeners were bound to at start (port 0 resolved).
    pub bound: Vec<SocketAddr>,
    /// Replica paths: the version each serves, and its status.
    pub replicas: replicas::Replicas,
    /// Every metric family.
    pub metrics: Arc<Metrics>,
    /// The audit log (off without `[audit]`).
    pub audit: Audit,
}

impl ServerState {
    /// State for `config`, persisting under its `state_dir` (read once:
    /// moving it under a running server is not supported).
    /// The audit writer starts here when the config has `[audit]` (read
    /// once too).
    pub fn new(config: Config) -> Self {
        let limits = &config.server.limits;
        let metrics = Arc::new(Metrics::new());
        let audit = match &config.audit {
            Some(settings) => Audit::start(settings, metrics.audit.clone()),
            None => Audit::default(),
        };
        let integrity = IntegrityState::new(
            &config.server.state_dir,
            limits.chunk_cache_bytes,
            metrics.integrity.clone(),
            audit.clone(),
        );
        ServerState {
            // Throttling settings are limits: read once, a change needs a restart.
            auth: Authenticator::default()
                .with_throttle(limits.auth_throttle())
                .with_lockout_hook(lockout_hook(&metrics, &audit)),
            integrity,
            transfers: TransferRegistry::counting(metrics.transfers_running.clone()),
            budget: Budget::new(limits.max_inflight_bytes),
            files: Arc::new(OpenFiles::default()),
            bound: Vec::new(),
            replicas: replicas::Replicas::default(),
            config: ArcSwap::from_pointee(config),
            metrics,
            audit,
        }
    }

    /// The observer of one request's access-log record (metrics, audit).
    pub fn tally(&self, proto: &'static str) -> Box<requests::RequestTally> {
        Box::new(requests::RequestTally::new(
            self.metrics.clone(),
            self.audit.clone(),
            proto,
        ))
    }

    /// The same state, knowing the addresses its listeners are bound to.
    pub fn with_bound(mut self, bound: Vec<SocketAddr>) -> Self {
        self.bound = bound;
        self
    }

    /// `https://host[:port]` for URLs the server writes: `public_url`, or
    /// the first bound listener (the first configured one before binding).
    pub fn public_url(&self, config: &Config) -> String {
        if let Some(u) = &config.server.public_url {
            return u.clone();
        }
        let addr = self.bound.first().or(config.server.listen.first());
        addr.map_or_else(|| "https://localhost".into(), |a| format!("https://{a}"))
    }

    /// Register a transfer authorized by `authority`. `connection` closes its
    /// connection if a cut is not noticed in time.
    ///
    /// The request authorized itself against a config snapshot taken at its
    /// start; if a swap happened since, the revocation pass may have run before
    /// this registration, so the authority is checked once more against the
    /// config in force now (a swap stores the config before it revokes). The
    /// response has not started yet, so a refused request gets the new config's
    /// answer instead of a cut body (which would close an HTTP/1.1 connection).
    pub fn track(
        &self,
        authority: Authority,
        connection: CancellationToken,
    ) -> Result<TransferGuard, Revoked> {
        let guard = self.transfers.register(authority.clone(), connection);
        authority.check(&self.config.load(), &Default::default())?;
        Ok(guard)
    }
}

/// Each lock-out and account guard is counted and audited as it starts.
fn lockout_hook(metrics: &Metrics, audit: &Audit) -> LockoutHook {
    let (lockouts, guards) = (
        metrics.auth_lockouts.clone(),
        metrics.auth_account_guards.clone(),
    );
    let audit = audit.clone();
    LockoutHook::new(move |l| match *l {
        Lockout::Client {
            peer,
            client,
            failures,
            duration,
        } => {
            lockouts.inc();
            audit.record(Event::LockedOut {
                peer,
                client: client.to_string(),
                failures,
                lockout_secs: duration.as_secs(),
            });
        }
        Lockout::Account {
            peer,
            user,
            failures,
            duration,
        } => {
            guards.inc();
            audit.record(Event::AccountGuarded {
                peer,
                principal: user.map(|u| format!("user:{u}")),
                failures,
                guard_secs: duration.as_secs(),
            });
        }
    })
}

/// What is known about a connection once TLS is up.
#[derive(Debug)]
pub struct ConnInfo {
    /// The client's address.
    pub peer: SocketAddr,
    /// Subject CN of a client certificate verified against `client_ca`.
    pub cert_cn: Option<String>,
    /// Cancelled to close the connection (a revoked transfer on it is stuck).
    pub close: CancellationToken,
}

impl ConnInfo {
    /// A connection from `peer`, identified by `cert_cn` if it showed a certificate.
    pub fn new(peer: SocketAddr, cert_cn: Option<String>) -> Self {
        ConnInfo {
            peer,
            cert_cn,
            close: CancellationToken::new(),
        }
    }
}

/// The process-wide state: the request-visible part and what only the
/// accept loop and the live reload use.
pub struct Runtime {
    /// What requests reach.
    pub shared: Arc<ServerState>,
    /// The TLS configuration new handshakes use (certificates rotate).
    pub tls: TlsState,
    /// The configured listen addresses; the listeners follow it.
    pub listen: tokio::sync::watch::Sender<Vec<SocketAddr>>,
    /// The sandbox made at start, if one is in force: a reload cannot widen it.
    pub sandbox: Option<crate::sandbox::Rules>,
}

impl Runtime {
    /// Put the served certificate's expiry into the metrics (at start and
    /// after every certificate change).
    pub fn publish_cert_expiry(&self) {
        if let Some(t) = self.tls.not_after() {
            self.shared.metrics.cert_expiry.set(t);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::{AuditCounters, AuditSettings};
    use crate::auth::{Directory, ThrottleSettings};
    use std::net::IpAddr;
    use std::time::Duration;

    #[tokio::test]
    async fn lockouts_and_account_guards_are_counted_and_audited() {
        let tmp = tempfile::tempdir().unwrap();
        let metrics = Metrics::new();
        let settings = AuditSettings {
            dir: tmp.path().to_path_buf(),
            retention_days: 30,
        };
        let audit = Audit::start(&settings, AuditCounters::default());
        let auth = Authenticator::default()
            .with_lockout_hook(lockout_hook(&metrics, &audit))
            .with_throttle(ThrottleSettings {
                failures_per_minute: 2,
                ..ThrottleSettings::default()
            });
        let hash = crate::auth::hash_password("right").unwrap();
        let users = [
            ("alice".to_string(), hash.clone()),
            ("bob".to_string(), hash),
        ];
        let dir = Directory::new(users.into(), Default::default());
        let wrong = http::HeaderValue::from_static("Basic YWxpY2U6d3Jvbmc="); // alice:wrong
                                                                              // Two clients fail at alice once each: the account is guarded, no client locked out.
        for peer in ["192.0.2.1", "192.0.2.2"] {
            let peer: IpAddr = peer.parse().unwrap();
            assert!(auth
                .authenticate(peer, &dir, Some(&wrong), None)
                .await
                .is_err());
        }
        // The first client fails a second time, at bob: it is locked out.
        let first: IpAddr = "192.0.2.1".parse().unwrap();
        let bob = http::HeaderValue::from_static("Basic Ym9iOndyb25n"); // bob:wrong
        assert!(auth
            .authenticate(first, &dir, Some(&bob), None)
            .await
            .is_err());
        assert_eq!(metrics.auth_account_guards.get(), 1);
        assert_eq!(metrics.auth_lockouts.get(), 1);
        assert!(audit.flush(Duration::from_secs(10)));
        let text = std::fs::read_to_string(
            tmp.path()
                .join(crate::audit::file_name(std::time::SystemTime::now())),
        )
        .unwrap();
        let events: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        let guard = events
            .iter()
            .find(|e| e["event"] == "account_guarded")
            .unwrap();
        assert_eq!(guard["principal"], "user:alice");
        assert_eq!(guard["failures"], 2);
        let lock = events.iter().find(|e| e["event"] == "locked_out").unwrap();
        assert_eq!(
            (lock["peer"].as_str(), lock["client"].as_str()),
            (Some("192.0.2.1"), Some("192.0.2.1"))
        );
        assert!(!text.contains("wrong"), "no password in the audit log");
    }
}
