//! Branch distribution points: paths that replicate a published package
//! from upstream sources (README "Branch distribution point").
//!
//! - [`task`]: one loop per replica (at start, on the interval, on
//!   `SIGUSR1` and on `distpoint sync`; backoff after failures).
//! - [`sync`]: one sync — [`check`] the manifest from the sources in
//!   priority order ([`origin`], [`store_origin`]) before any content request, assemble a new
//!   version in [`staging`] from local chunks ([`index`]) and the sources
//!   through the transfer engine, within the [`gate`]'s windows and the rate
//!   limit, then switch in one swap (runtime state, `state::replicas`).
//! - [`control`]: the local control socket for `distpoint sync` / `status`.
//!
//! [`Replication`] keeps one task per replica in the config, starting and
//! stopping them as the config changes.

pub mod check;
pub mod control;
pub mod error;
pub mod gate;
pub mod index;
pub mod origin;
pub mod source;
pub mod staging;
pub mod store_origin;
pub mod sync;
pub mod task;

use crate::state::replicas::ReplicaStatus;
use crate::state::ServerState;
use error::SyncRequestError;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use task::Trigger;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

/// How often the config is checked for replicas added or removed.
const RECONCILE_EVERY: Duration = Duration::from_millis(500);

/// The running replicas of a server.
pub struct Replication {
    shared: Arc<ServerState>,
    tasks: Mutex<BTreeMap<String, (mpsc::UnboundedSender<Trigger>, CancellationToken)>>,
    shutdown: CancellationToken,
}

impl Replication {
    /// Start a task per replica in the config, the control socket, and a
    /// watch on the config that starts and stops tasks as it changes.
    pub fn start(shared: Arc<ServerState>, shutdown: CancellationToken) -> Arc<Replication> {
        let r = Arc::new(Replication {
            shared,
            tasks: Mutex::new(BTreeMap::new()),
            shutdown,
        });
        r.reconcile();
        let state_dir = r.shared.config.load().server.state_dir.clone();
        control::serve(r.clone(), &state_dir, r.shutdown.clone());
        let w = r.clone();
        tokio::spawn(async move {
            let mut seen = w.shared.config.load_full();
            loop {
                tokio::select! {
                    _ = w.shutdown.cancelled() => return,
                    _ = tokio::time::sleep(RECONCILE_EVERY) => {}
                }
                let now = w.shared.config.load_full();
                if !Arc::ptr_eq(&now, &seen) {
                    seen = now;
                    w.reconcile();
                }
            }
        });
        r
    }

    /// Start tasks for new replicas, stop those of removed ones.
    fn reconcile(&self) {
        let config = self.shared.config.load_full();
        let want: BTreeSet<String> = config.upstreams.keys().cloned().collect();
        let mut tasks = crate::sync::lock(&self.tasks);
        tasks.retain(|url, (_, stop)| {
            let keep = want.contains(url);
            if !keep {
                stop.cancel();
                tracing::info!(replica = %url, "replica removed from the config: its sync stops");
            }
            keep
        });
        self.shared.replicas.retain(&want);
        for url in want {
            if tasks.contains_key(&url) {
                continue;
            }
            let (tx, rx) = mpsc::unbounded_channel();
            let stop = self.shutdown.child_token();
            tokio::spawn(task::run(
                self.shared.clone(),
                url.clone(),
                rx,
                stop.clone(),
            ));
            tasks.insert(url, (tx, stop));
        }
    }

    /// Ask every replica for a sync now (`SIGUSR1`); nobody waits.
    pub fn trigger_all(&self) {
        for (tx, _) in crate::sync::lock(&self.tasks).values() {
            let _ = tx.send(Trigger::default());
        }
    }

    /// Every replica's status.
    pub fn statuses(&self) -> Vec<ReplicaStatus> {
        self.shared.replicas.statuses()
    }

    /// Sync the replica at `url` (or all), and wait for their results.
    pub async fn sync(&self, url: Option<&str>) -> Result<Vec<ReplicaStatus>, SyncRequestError> {
        let waits: Vec<oneshot::Receiver<ReplicaStatus>> = {
            let tasks = crate::sync::lock(&self.tasks);
            let chosen: Vec<_> = match url {
                Some(u) => {
                    let u = u.trim_end_matches('/');
                    let t = tasks
                        .get(u)
                        .ok_or_else(|| SyncRequestError::NotAReplica(u.to_string()))?;
                    vec![t]
                }
                None => tasks.values().collect(),
            };
            chosen
                .into_iter()
                .map(|(tx, _)| {
                    let (reply, wait) = oneshot::channel();
                    let _ = tx.send(Trigger { reply: Some(reply) });
                    wait
                })
                .collect()
        };
        let mut out = Vec::new();
        for w in waits {
            out.push(w.await.map_err(|_| SyncRequestError::Stopped)?);
        }
        Ok(out)
    }
}
