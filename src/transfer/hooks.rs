//! What a caller of the engine can watch and hold back: progress and drops
//! ([`Events`]), and when a new request may start ([`Gate`]).

use super::report::DropReason;
use super::source::BoxFuture;

/// What a caller hears while a run goes on. Every method has a default
/// that does nothing.
pub trait Events: Send + Sync {
    /// A chunk of `bytes` is verified and written; `done` chunks in all.
    fn verified(&self, _bytes: u64, _done: u64) {}
    /// A source is dropped for the rest of the run.
    fn dropped(&self, _source: &str, _reason: &DropReason) {}
    /// The verified chunks as `[start, end)` runs: at most every 200 ms, and
    /// once at the end of the run whatever its outcome (to save resume state).
    fn checkpoint(&self, _verified: &[(u64, u64)]) {}
}

/// Events nobody listens to.
pub struct Quiet;

impl Events for Quiet {}

/// Admits each new request: a replica's time windows wait here. Requests
/// already running are not affected.
pub trait Gate: Send + Sync {
    /// Resolves when a new request may start.
    fn admit(&self) -> BoxFuture<'_, ()>;
}
