//! Live configuration: the running server always equals the config file.
//!
//! - [`watch`]: the config file, the TLS files and `SIGHUP` trigger reloads.
//! - [`reload`]: validate, swap atomically, log what changed ([`diff`]).
//! - [`listen`]: listen addresses follow `server.listen`.
//! - [`prehash`]: auto paths' files hashed in the background, at start and on change.
//!
//! What a reload changes is runtime state ([`crate::state`]): the config
//! snapshot, the TLS configuration (certificate, key and client CA rotate
//! for new handshakes), and the transfer registry, where every running
//! transfer remembers what authorized it and is cut within a second when a
//! new config no longer would.

pub mod diff;
pub mod listen;
pub mod prehash;
pub mod reload;
pub mod watch;

#[cfg(test)]
mod tests;
