//! `server.listen` changes: bind the new addresses, close the old ones.
//!
//! The reload publishes the configured addresses on a watch channel; the
//! server runs [`follow`] with a function that binds one address and starts
//! its accept loop. Closing an address stops accepting there; connections
//! already accepted on it go on. New addresses are bound before old ones are
//! closed, so a typo never leaves the server reachable nowhere; an address
//! that overlaps one being closed is retried once that one is gone.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{error, info};

/// Binds an address and starts accepting on it until the returned token is
/// cancelled; returns the bound address too (it differs for port 0).
pub trait Bind: Send + 'static {
    /// Bind `addr` and start its accept loop.
    fn bind(&self, addr: SocketAddr) -> std::io::Result<(SocketAddr, CancellationToken)>;
}

impl<F> Bind for F
where
    F: Fn(SocketAddr) -> std::io::Result<(SocketAddr, CancellationToken)> + Send + 'static,
{
    fn bind(&self, addr: SocketAddr) -> std::io::Result<(SocketAddr, CancellationToken)> {
        self(addr)
    }
}

/// How often, and how far apart, a bind that failed is retried after the
/// old listeners were closed (their sockets close as their loops end).
const RETRIES: u32 = 20;
const RETRY_PAUSE: Duration = Duration::from_millis(50);

/// Keep the running listeners equal to the configured addresses until
/// `shutdown`. `running` holds the listeners started at launch.
pub async fn follow(
    mut desired: watch::Receiver<Vec<SocketAddr>>,
    mut running: BTreeMap<SocketAddr, CancellationToken>,
    binder: impl Bind,
    shutdown: CancellationToken,
) {
    loop {
        tokio::select! {
            changed = desired.changed() => if changed.is_err() { return },
            _ = shutdown.cancelled() => return,
        }
        let want: BTreeSet<SocketAddr> = desired.borrow_and_update().iter().copied().collect();
        let mut failed = Vec::new();
        let new: Vec<SocketAddr> = want
            .iter()
            .filter(|a| !running.contains_key(a))
            .copied()
            .collect();
        for addr in new {
            match binder.bind(addr) {
                Ok((bound, token)) => {
                    info!(target: "distpoint::live", "now listening on https://{bound}");
                    running.insert(addr, token);
                }
                Err(e) => failed.push((addr, e)),
            }
        }
        let gone: Vec<SocketAddr> = running
            .keys()
            .filter(|a| !want.contains(a))
            .copied()
            .collect();
        for addr in gone {
            if let Some(token) = running.remove(&addr) {
                token.cancel();
                info!(target: "distpoint::live",
                    "stopped listening on {addr} (connections already open there go on)");
            }
        }
        for (addr, first_error) in failed {
            let mut result = Err(first_error);
            for _ in 0..RETRIES {
                tokio::time::sleep(RETRY_PAUSE).await;
                result = binder.bind(addr);
                if result.is_ok() {
                    break;
                }
            }
            match result {
                Ok((bound, token)) => {
                    info!(target: "distpoint::live", "now listening on https://{bound}");
                    running.insert(addr, token);
                }
                Err(e) => error!(target: "distpoint::live",
                    "cannot listen on {addr}: {e}; it is not served until a reload binds it"),
            }
        }
    }
}
