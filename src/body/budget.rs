//! The global budget for file bytes in flight.
//!
//! Every file piece a response has read (or is reading) and not yet handed
//! to the HTTP layer holds part of one server-wide budget
//! (`[server] max_inflight_bytes`). A response may read ahead only while the
//! budget has room, and one that cannot start at all waits for it (and gives
//! up with `503` after [`START_WAIT`]). So the memory that stalled clients
//! can pin — an HTTP/2 stream whose window stays at 0 is never polled and
//! keeps its first chunk — is a number the operator chose, not one the
//! clients choose.

use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::PollSemaphore;

/// The budget is counted in units of this many bytes.
const UNIT: u64 = 4096;

/// How long a response waits for budget before its first block.
pub const START_WAIT: Duration = Duration::from_secs(5);

/// Bytes of file data that may be in flight at once, server-wide.
#[derive(Debug)]
pub struct Budget {
    sem: Arc<Semaphore>,
    bytes: u64,
}

/// A share of the budget, given back when dropped.
#[derive(Debug)]
pub struct Held {
    _permit: Option<OwnedSemaphorePermit>,
}

impl Budget {
    /// A budget of `bytes` (rounded up to whole units).
    pub fn new(bytes: u64) -> Arc<Budget> {
        let units = bytes.div_ceil(UNIT).clamp(1, Semaphore::MAX_PERMITS as u64) as usize;
        Arc::new(Budget {
            sem: Arc::new(Semaphore::new(units)),
            bytes,
        })
    }

    /// The configured bound, in bytes.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Bytes free now.
    pub fn available(&self) -> u64 {
        self.sem.available_permits() as u64 * UNIT
    }

    fn units(&self, len: usize) -> u32 {
        let total = self.bytes.div_ceil(UNIT).max(1);
        // A piece larger than the whole budget takes all of it.
        (len as u64)
            .div_ceil(UNIT)
            .clamp(1, total)
            .min(u32::MAX as u64) as u32
    }

    /// A share for `len` bytes, if there is room now.
    pub fn try_take(&self, len: usize) -> Option<Held> {
        self.sem
            .clone()
            .try_acquire_many_owned(self.units(len))
            .ok()
            .map(|p| Held { _permit: Some(p) })
    }

    /// A waiter for shares of this budget (one per stream).
    pub fn waiter(&self) -> PollSemaphore {
        PollSemaphore::new(self.sem.clone())
    }

    /// Wait (registering `cx`) for a share for `len` bytes.
    pub fn poll_take(
        &self,
        waiter: &mut PollSemaphore,
        cx: &mut Context<'_>,
        len: usize,
    ) -> Poll<Held> {
        match waiter.poll_acquire_many(cx, self.units(len)) {
            Poll::Ready(Some(p)) => Poll::Ready(Held { _permit: Some(p) }),
            // The semaphore is never closed; count it as free rather than hang.
            Poll::Ready(None) => Poll::Ready(Held { _permit: None }),
            Poll::Pending => Poll::Pending,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_are_given_back_when_dropped() {
        let b = Budget::new(64 << 10);
        let one = b.try_take(40 << 10).unwrap();
        assert!(b.try_take(40 << 10).is_none(), "over budget");
        let small = b.try_take(1).unwrap();
        assert_eq!(b.available(), (64 << 10) - (40 << 10) - UNIT);
        drop((one, small));
        assert_eq!(b.available(), 64 << 10);
        // A piece larger than the whole budget can still be sent alone.
        assert!(b.try_take(1 << 20).is_some());
    }
}
