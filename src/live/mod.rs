//! Live configuration: the running server always equals the config file.
//!
//! - [`watch`]: the config file, the TLS files and `SIGHUP` trigger reloads.
//! - [`reload`]: validate, swap atomically, log what changed ([`diff`]).
//! - [`registry`]: every running transfer remembers what authorized it and
//!   is cut within a second when a new config no longer would (before its
//!   next block; a body whose client stopped reading has its connection
//!   closed after [`registry::CLOSE_GRACE`]).
//! - [`certs`]: certificate, key and client CA rotate for new handshakes.
//! - [`listen`]: listen addresses follow `server.listen`.

pub mod certs;
pub mod diff;
pub mod listen;
pub mod registry;
pub mod reload;
pub mod watch;

pub use certs::TlsState;
pub use registry::{Authority, Revoked, TransferGuard, TransferRegistry};

use crate::server::ServerState;
use tokio_util::sync::CancellationToken;

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
    state: &ServerState,
    authority: Authority,
    connection: CancellationToken,
) -> Result<TransferGuard, Revoked> {
    let guard = state.transfers.register(authority.clone(), connection);
    authority.check(&state.config.load(), &Default::default())?;
    Ok(guard)
}

#[cfg(test)]
mod tests;
