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
//! - [`Runtime`]: the process-wide rest (TLS, listen addresses).

pub mod certs;
pub mod registry;
pub mod replicas;

pub use certs::TlsState;
pub use registry::{Authority, Revoked, TransferGuard, TransferRegistry};

use crate::auth::Authenticator;
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
}

impl ServerState {
    /// State for `config`, persisting under its `state_dir` (read once:
    /// moving it under a running server is not supported).
    pub fn new(config: Config) -> Self {
        let limits = &config.server.limits;
        ServerState {
            // Throttling settings are limits: read once, a change needs a restart.
            auth: Authenticator::default().with_throttle(limits.auth_throttle()),
            integrity: IntegrityState::new(&config.server.state_dir, limits.chunk_cache_bytes),
            transfers: TransferRegistry::default(),
            budget: Budget::new(limits.max_inflight_bytes),
            files: Arc::new(OpenFiles::default()),
            bound: Vec::new(),
            replicas: replicas::Replicas::default(),
            config: ArcSwap::from_pointee(config),
        }
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
