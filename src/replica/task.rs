//! The loop of one replica: sync at start, every `interval_secs`, and when
//! asked (`SIGUSR1`, `distpoint sync`); after a failure, again after a
//! backoff that starts at 10 s and doubles up to the interval. A scheduled
//! sync outside the windows waits for one to open; one asked for outside
//! them answers so at once.

use super::error::SyncError;
use super::gate::Windows;
use super::staging::Layout;
use super::sync::{self, SyncJob};
use crate::audit::Event;
use crate::config::upstream::MIN_INTERVAL_SECS;
use crate::integrity::counters::PathLabel;
use crate::state::metrics::ReplicaMetrics;
use crate::state::replicas::{ReplicaSlot, ReplicaStatus};
use crate::state::ServerState;
use crate::vpath::Integrity;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tracing::{error, info};

/// A request for a sync now; the reply is the status after it.
#[derive(Debug, Default)]
pub struct Trigger {
    /// Where to send the status once the sync is over, if anyone waits.
    pub reply: Option<oneshot::Sender<ReplicaStatus>>,
}

/// The pause after `failures` failures in a row: 10 s doubling, at most `interval`.
pub fn backoff(failures: u32, interval: Duration) -> Duration {
    let base = Duration::from_secs(MIN_INTERVAL_SECS);
    let pause = base.saturating_mul(1u32 << failures.saturating_sub(1).min(16));
    pause.min(interval).max(base)
}

/// Run the replica at `url` until `stop`.
pub async fn run(
    shared: Arc<ServerState>,
    url: String,
    mut triggers: mpsc::UnboundedReceiver<Trigger>,
    stop: CancellationToken,
) {
    let slot = shared.replicas.ensure(&url);
    restore(&shared, &url, &slot);
    let mut failures = 0u32;
    let mut due = Instant::now();
    loop {
        let mut waiting = Vec::new();
        let manual = tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep_until(due.into()) => false,
            t = triggers.recv() => match t {
                None => return,
                Some(t) => { waiting.extend(t.reply); true }
            },
        };
        while let Ok(t) = triggers.try_recv() {
            waiting.extend(t.reply);
        }
        let config = shared.config.load_full();
        let (Some(vp), Some(up)) = (config.vpaths.get(&url), config.upstreams.get(&url)) else {
            return;
        };
        let windows = Windows(up.windows.clone());
        if !manual && !windows.open_now() {
            slot.update(|s| s.next_attempt = None);
            // One asked for meanwhile is answered at once (outside the windows).
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = windows.wait_open() => {}
                t = triggers.recv() => match t {
                    None => return,
                    Some(t) => waiting.extend(t.reply),
                },
            }
        }
        slot.update(|s| {
            s.syncing = true;
            s.last_attempt = Some(SystemTime::now());
        });
        let layout = Layout::new(&config.server.state_dir, &url, &vp.dir);
        let others = config
            .vpaths
            .iter()
            .filter(|o| o.url != url && o.integrity == Integrity::Published && o.origin.is_none())
            .map(|o| shared.replicas.content(o).vpath.dir.clone())
            .collect();
        let job = SyncJob {
            url: &url,
            publisher_keys: &vp.publisher_keys,
            upstream: up,
            layout: &layout,
            slot: &slot,
            others,
            stores: &config.origins,
        };
        let out = sync::run(&job).await;
        let now = SystemTime::now();
        let pause = match &out.result {
            Ok(switched) => {
                failures = 0;
                let word = if *switched { "ok" } else { "unchanged" };
                info!(replica = %url, result = word, fetched = out.fetched, reused = out.reused, "replica: sync done");
                if *switched {
                    let st = slot.status();
                    shared.audit.record(Event::ReplicaSwitched {
                        path: url.clone(),
                        package: st.package_hash.unwrap_or_default(),
                        sequence: st.sequence.unwrap_or_default(),
                    });
                }
                slot.update(|s| {
                    s.last_result = Some(word.into());
                    s.last_message = Some(if *switched {
                        "switched to a new version".into()
                    } else {
                        "the version served is current".into()
                    });
                    s.last_success = Some(now);
                });
                up.interval
            }
            Err(e @ SyncError::OutsideWindows(_)) => {
                slot.update(|s| {
                    s.last_result = Some(e.kind().into());
                    s.last_message = Some(e.to_string());
                });
                due.saturating_duration_since(Instant::now())
            }
            Err(e) => {
                failures += 1;
                error!(replica = %url, result = e.kind(), "replica: sync failed, keeping the version served: {e}");
                if e.kind() == "refused" {
                    shared.audit.record(Event::ReplicaRefused {
                        path: url.clone(),
                        reason: e.to_string(),
                    });
                }
                slot.update(|s| {
                    s.last_result = Some(e.kind().into());
                    s.last_message = Some(e.to_string());
                });
                backoff(failures, up.interval)
            }
        };
        due = Instant::now() + pause;
        slot.update(|s| {
            s.syncing = false;
            s.failures = failures;
            s.bytes_fetched = out.fetched;
            s.bytes_reused = out.reused;
            s.next_attempt = Some(now + pause);
        });
        let status = slot.status();
        record(&shared.metrics.replicas, &url, &status);
        for w in waiting {
            let _ = w.send(status.clone());
        }
    }
}

/// The replica's figures in the metrics, from its status after a sync:
/// the bytes of that sync are added, the sequence and last success set.
fn record(m: &ReplicaMetrics, url: &str, status: &ReplicaStatus) {
    let label = PathLabel {
        path: url.to_string(),
    };
    m.bytes_fetched
        .get_or_create(&label)
        .inc_by(status.bytes_fetched);
    m.bytes_reused
        .get_or_create(&label)
        .inc_by(status.bytes_reused);
    if let Some(seq) = status.sequence {
        m.sequence
            .get_or_create(&label)
            .set(i64::try_from(seq).unwrap_or(i64::MAX));
    }
    let unix = |t: SystemTime| {
        t.duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
    };
    if let Some(t) = status.last_success {
        m.last_success
            .get_or_create(&label)
            .set(i64::try_from(unix(t)).unwrap_or(i64::MAX));
    }
}

/// At start: serve the version named in `current`, drop leftovers.
fn restore(shared: &ServerState, url: &str, slot: &ReplicaSlot) {
    let config = shared.config.load();
    let Some(vp) = config.vpaths.get(url) else {
        return;
    };
    let layout = Layout::new(&config.server.state_dir, url, &vp.dir);
    match layout.load_current() {
        Some(v) => {
            info!(replica = url, package = %v.package_hash, sequence = v.sequence, "replica: serving the version kept from before");
            let dir = v.dir.clone();
            slot.switch(Arc::new(v));
            layout.clean_versions(Some(&dir));
        }
        None => info!(
            replica = url,
            "replica: no version yet; the path answers 503 until the first sync"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_is_at_least_ten_seconds_and_at_most_the_interval() {
        let i = Duration::from_secs(300);
        assert_eq!(backoff(1, i), Duration::from_secs(10));
        assert_eq!(backoff(2, i), Duration::from_secs(20));
        assert_eq!(backoff(5, i), Duration::from_secs(160));
        assert_eq!(backoff(9, i), i);
        assert_eq!(backoff(40, i), i);
        assert_eq!(backoff(3, Duration::from_secs(10)), Duration::from_secs(10));
    }
}
