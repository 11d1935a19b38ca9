//! Running transfers and what authorized each of them.
//!
//! The registry is runtime state shared by the request pipeline (which
//! registers every body) and the live reload (which revokes).
//!
//! Every response body registers here with its [`Authority`]: the path it was
//! routed to, that path's folder, and the identity that was let in. After a
//! config swap, [`TransferRegistry::revoke`] re-checks every entry against the
//! new config and cuts those the new config would refuse. The entry goes away
//! when the body is dropped (finished, cut, or abandoned).

use crate::auth::Identity;
use crate::body::CutSignal;
use crate::config::Config;
use crate::vpath::Vpath;
use prometheus_client::metrics::gauge::Gauge;
use std::collections::{BTreeSet, HashMap};
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};

/// How long a cut transfer may take to notice before its whole connection is
/// closed. A body is only polled when the client makes room for more bytes; a
/// client that stopped reading would otherwise keep a revoked transfer open.
pub const CLOSE_GRACE: Duration = Duration::from_millis(300);

/// What let a transfer start: re-checked against every new config.
#[derive(Debug, Clone)]
pub struct Authority {
    /// The decoded request path, to find which vpath it falls under now.
    pub segments: Vec<String>,
    /// The configured URL of the vpath it was routed to.
    pub url: String,
    /// That vpath's folder at the time.
    pub dir: PathBuf,
    /// Who was let in (anonymous when empty).
    pub identity: Identity,
}

impl Authority {
    /// The authority of a request routed to `vpath` for `identity`.
    pub fn new(vpath: &Vpath, segments: &[String], identity: Identity) -> Self {
        Authority {
            segments: segments.to_vec(),
            url: vpath.url.clone(),
            dir: vpath.dir.clone(),
            identity,
        }
    }

    /// `Ok` if `config` would still let this transfer start; otherwise why not.
    /// `new_passwords` names users whose password changed: their running
    /// transfers were authorized by a credential that is no longer valid.
    pub fn check(&self, config: &Config, new_passwords: &BTreeSet<String>) -> Result<(), Revoked> {
        let Some((vp, _)) = config.vpaths.route(&self.segments) else {
            return Err(Revoked::PathRemoved(self.url.clone()));
        };
        if vp.url != self.url {
            // A path was removed or a longer one added: the rules are another path's now.
            return Err(Revoked::Rerouted(self.url.clone(), vp.url.clone()));
        }
        if vp.dir != self.dir {
            return Err(Revoked::DirChanged(self.url.clone()));
        }
        if vp.anonymous {
            return Ok(());
        }
        if self.identity.is_anonymous() {
            return Err(Revoked::NoLongerAnonymous(self.url.clone()));
        }
        if let Some(user) = &self.identity.user {
            if !config.directory.has_user(user) {
                return Err(Revoked::UserRemoved(user.clone()));
            }
            if new_passwords.contains(user) {
                return Err(Revoked::PasswordChanged(user.clone()));
            }
        }
        if config.directory.is_allowed(&self.identity, &vp.allow) {
            Ok(())
        } else {
            Err(Revoked::NotAllowed(
                self.identity.to_string(),
                self.url.clone(),
            ))
        }
    }
}

/// Why a new config no longer allows a transfer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Revoked {
    /// Its path (URL) is gone.
    PathRemoved(String),
    /// Its request now falls under another path (old URL, new URL).
    Rerouted(String, String),
    /// Its path serves another folder.
    DirChanged(String),
    /// It ran anonymously and the path is no longer anonymous.
    NoLongerAnonymous(String),
    /// Its Basic user is gone.
    UserRemoved(String),
    /// Its Basic user's password changed.
    PasswordChanged(String),
    /// Its principals are no longer on the path's allow list (principals, URL).
    NotAllowed(String, String),
}

impl std::fmt::Display for Revoked {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Revoked::PathRemoved(u) => write!(f, "path {u} was removed"),
            Revoked::Rerouted(a, b) => write!(f, "now falls under path {b} instead of {a}"),
            Revoked::DirChanged(u) => write!(f, "the dir of path {u} changed"),
            Revoked::NoLongerAnonymous(u) => write!(f, "path {u} is no longer anonymous"),
            Revoked::UserRemoved(u) => write!(f, "user {u} was removed"),
            Revoked::PasswordChanged(u) => write!(f, "the password of user {u} changed"),
            Revoked::NotAllowed(who, u) => write!(f, "{who} is no longer allowed on path {u}"),
        }
    }
}

impl std::error::Error for Revoked {}

struct Entry {
    authority: Authority,
    cut: CancellationToken,
    reason: Arc<OnceLock<String>>,
    /// Closes the transfer's whole connection (see [`CLOSE_GRACE`]).
    connection: CancellationToken,
}

#[derive(Default)]
struct Inner {
    next: AtomicU64,
    entries: Mutex<HashMap<u64, Entry>>,
    /// The number of entries, for the metrics.
    running: Gauge,
}

impl Inner {
    fn entries(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Entry>> {
        crate::sync::lock(&self.entries)
    }
}

/// All transfers currently running, shared by every connection.
#[derive(Clone, Default)]
pub struct TransferRegistry {
    inner: Arc<Inner>,
}

impl TransferRegistry {
    /// An empty registry that keeps `running` at the number of transfers.
    pub fn counting(running: Gauge) -> Self {
        TransferRegistry {
            inner: Arc::new(Inner {
                running,
                ..Inner::default()
            }),
        }
    }

    /// Register a transfer. `connection` is cancelled to close its connection
    /// if a cut is not noticed within [`CLOSE_GRACE`]. Drop the guard to end it.
    pub fn register(&self, authority: Authority, connection: CancellationToken) -> TransferGuard {
        let id = self.inner.next.fetch_add(1, Ordering::Relaxed);
        let cut = CancellationToken::new();
        let reason = Arc::new(OnceLock::new());
        self.inner.entries().insert(
            id,
            Entry {
                authority,
                cut: cut.clone(),
                reason: reason.clone(),
                connection,
            },
        );
        self.inner.running.inc();
        TransferGuard {
            id,
            inner: self.inner.clone(),
            cut: Box::pin(cut.cancelled_owned()),
            reason,
            started: false,
            hold: None,
        }
    }

    /// How many transfers are running.
    pub fn len(&self) -> usize {
        self.inner.entries().len()
    }

    /// True when no transfer is running.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Cut every transfer that `config` would refuse; returns each cut
    /// transfer's principal and reason, for the log.
    pub fn revoke(&self, config: &Config, new_passwords: &BTreeSet<String>) -> Vec<String> {
        let mut cut = Vec::new();
        for (id, entry) in self.inner.entries().iter() {
            if let Err(why) = entry.authority.check(config, new_passwords) {
                cut.push(format!("{} ({})", entry.authority.identity, why));
                self.cut_one(*id, entry, why.to_string());
            }
        }
        cut
    }

    fn cut_one(&self, id: u64, entry: &Entry, why: String) {
        let _ = entry.reason.set(why);
        entry.cut.cancel();
        let inner = self.inner.clone();
        let connection = entry.connection.clone();
        // Needs a runtime: revocation always runs inside the server's.
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                tokio::time::sleep(CLOSE_GRACE).await;
                if inner.entries().contains_key(&id) {
                    connection.cancel();
                }
            });
        }
    }
}

/// A registered transfer: held by its response body, which polls it for a cut.
pub struct TransferGuard {
    id: u64,
    inner: Arc<Inner>,
    cut: Pin<Box<WaitForCancellationFutureOwned>>,
    reason: Arc<OnceLock<String>>,
    started: bool,
    hold: Option<Arc<dyn std::any::Any + Send + Sync>>,
}

impl TransferGuard {
    /// Keep `value` alive as long as the transfer runs (a replica's
    /// version folder is removed only when its last transfer ends).
    pub fn hold(&mut self, value: Arc<dyn std::any::Any + Send + Sync>) {
        self.hold = Some(value);
    }
}

impl CutSignal for TransferGuard {
    /// Ready with the reason once the transfer has been cut.
    ///
    /// A body that has not sent its first block yet is never cut: it was
    /// authorized and answered under the config in force when it started,
    /// and it sends that one block (then is cut before the next). Cutting it
    /// earlier would turn a complete small answer into a reset HTTP/2 stream
    /// whose headers never arrive, or a closed HTTP/1.1 connection.
    fn poll_cut(&mut self, cx: &mut Context<'_>) -> Poll<String> {
        if !self.started {
            return Poll::Pending;
        }
        match self.cut.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(
                self.reason()
                    .unwrap_or_else(|| "access revoked by a config change: unknown".to_string()),
            ),
            Poll::Pending => Poll::Pending,
        }
    }

    /// The body sent a block: from now on a revocation cuts it.
    fn block_sent(&mut self) {
        self.started = true;
    }

    /// Why the transfer was revoked, if it was (for the access log of a body
    /// that was dropped, e.g. when its stalled connection was closed).
    fn reason(&self) -> Option<String> {
        self.reason
            .get()
            .map(|r| format!("access revoked by a config change: {r}"))
    }
}

impl Drop for TransferGuard {
    fn drop(&mut self) {
        self.inner.entries().remove(&self.id);
        self.inner.running.dec();
    }
}

impl std::fmt::Debug for TransferGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TransferGuard")
            .field("id", &self.id)
            .finish()
    }
}
