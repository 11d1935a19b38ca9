//! Live configuration: the running server always equals the config file.
//!
//! - [`watch`]: the config file, the TLS files and `SIGHUP` trigger reloads.
//! - [`reload`]: validate, swap atomically, log what changed ([`diff`]).
//! - [`registry`]: every running transfer remembers what authorized it and
//!   is cut within a second when a new config no longer would.
//! - [`certs`]: certificate, key and client CA rotate for new handshakes.

pub mod certs;
pub mod diff;
pub mod registry;
pub mod reload;
pub mod watch;

pub use certs::TlsState;
pub use registry::{Authority, TransferGuard, TransferRegistry};

use crate::server::ServerState;
use tokio_util::sync::CancellationToken;

/// Register a transfer authorized by `authority`. `connection` closes its
/// connection if a cut is not noticed in time.
///
/// The request authorized itself against a config snapshot taken at its
/// start; if a swap happened since, the revocation pass may have run before
/// this registration, so the authority is checked once more against the
/// config in force now (which a swap stores before it revokes).
pub fn track(
    state: &ServerState,
    authority: Authority,
    connection: CancellationToken,
) -> TransferGuard {
    let guard = state.transfers.register(authority.clone(), connection);
    if let Err(why) = authority.check(&state.config.load(), &Default::default()) {
        state.transfers.cut(&guard, why);
    }
    guard
}
