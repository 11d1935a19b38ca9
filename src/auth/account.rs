//! The per-account rule: failed checks at one account are counted across all clients,
//! and once an account has had its limit in a window, only clients that have not failed
//! may try it until the window is over.
//!
//! Clients that failed are the guessers: refusing them bounds the guesses at an account to
//! the limit per window however many addresses they come from, while the real user, from an
//! address that has not failed, is never locked out of the account by someone else's
//! guessing. Checks already running count against the limit, so that it holds with as many
//! checks in flight as there are verification slots.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::keys::{AccountKey, ClientKey};
use super::throttle::{FailureTable, Lockout, Strike, ThrottleSettings};

/// `Retry-After` for a refusal that only the checks running now cause: they take well
/// under a second.
const RUNNING_RETRY: Duration = Duration::from_secs(1);

/// Failures per account, and the password checks running now.
#[derive(Debug)]
pub(super) struct AccountGuard {
    table: FailureTable<AccountKey>,
    /// (account, client) of every check running now: at most one per verification slot.
    running: Mutex<Vec<(AccountKey, ClientKey)>>,
}

impl AccountGuard {
    /// The limit is `settings.failures_per_minute` per account; a guard lasts until the
    /// window of its failures is over, and at least 15 s doubling per repeat up to
    /// `settings.lockout_max`.
    pub(super) fn new(settings: ThrottleSettings) -> Arc<Self> {
        Arc::new(AccountGuard {
            table: FailureTable::holding_windows(settings),
            running: Mutex::new(Vec::new()),
        })
    }

    fn running(&self) -> MutexGuard<'_, Vec<(AccountKey, ClientKey)>> {
        crate::sync::lock(&self.running)
    }

    /// Before a request queues for a check: `Err(time left)` if `account` is guarded and
    /// the client has failed (`client_failed`).
    pub(super) fn check(
        &self,
        account: AccountKey,
        client_failed: bool,
        now: Instant,
    ) -> Result<(), Duration> {
        match self.table.locked(account, now) {
            Some(left) if client_failed => Err(left),
            _ => Ok(()),
        }
    }

    /// When the check would start: the same rule, with the checks running at `account`
    /// counted as failures, and a client that has not failed limited to one check at a time
    /// at a guarded account (its first answer decides whether it has failed). On `Ok` the
    /// check counts as running until the returned [`Running`] is dropped.
    pub(super) fn start(
        self: &Arc<Self>,
        account: AccountKey,
        client: ClientKey,
        client_failed: bool,
        now: Instant,
    ) -> Result<Running, Duration> {
        let mut running = self.running();
        let (locked, failures) = self.table.status(account, now);
        let here = running.iter().filter(|(a, _)| *a == account).count();
        let at_limit = failures as usize + here >= self.table.limit() as usize;
        let guarded = locked.or(at_limit.then_some(RUNNING_RETRY));
        if let Some(left) = guarded {
            if client_failed {
                return Err(left);
            }
            if running.contains(&(account, client)) {
                return Err(RUNNING_RETRY.min(left));
            }
        }
        running.push((account, client));
        Ok(Running {
            guard: self.clone(),
            account,
            client,
        })
    }

    /// Counts a failed check at `account`; returns the guard it starts, if any.
    pub(super) fn record_failure(&self, account: AccountKey, now: Instant) -> Option<Lockout> {
        self.table.record(account, Strike::Failed, now)
    }

    /// Accounts with recent failures being tracked (bounded).
    pub(super) fn len(&self) -> usize {
        self.table.len()
    }

    /// Checks running now.
    #[cfg(test)]
    pub(super) fn running_len(&self) -> usize {
        self.running().len()
    }
}

/// A check counted as running at its account; dropping it (the check ended, or its task
/// was cancelled) ends that.
#[derive(Debug)]
pub(super) struct Running {
    guard: Arc<AccountGuard>,
    account: AccountKey,
    client: ClientKey,
}

impl Drop for Running {
    fn drop(&mut self) {
        let mut running = self.guard.running();
        if let Some(i) = running
            .iter()
            .position(|&e| e == (self.account, self.client))
        {
            running.swap_remove(i);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::IpAddr;

    fn guard(limit: u32) -> Arc<AccountGuard> {
        AccountGuard::new(ThrottleSettings {
            failures_per_minute: limit,
            lockout_max: Duration::from_secs(300),
            max_clients: 100,
        })
    }

    fn client(last: u8) -> ClientKey {
        ClientKey::of(IpAddr::from([198, 51, 100, last]))
    }

    const FAILED: bool = true;
    const FRESH: bool = false;

    #[test]
    fn at_the_limit_only_clients_without_failures_may_try() {
        let g = guard(3);
        let (alice, bob) = (AccountKey::of("alice"), AccountKey::of("bob"));
        let t0 = Instant::now();
        for i in 0..2 {
            drop(g.start(alice, client(i), FAILED, t0).unwrap());
            assert_eq!(g.record_failure(alice, t0), None);
        }
        assert_eq!(g.check(alice, FAILED, t0), Ok(()));
        drop(g.start(alice, client(2), FAILED, t0).unwrap());
        let l = g
            .record_failure(alice, t0 + Duration::from_secs(1))
            .unwrap();
        // Three failures in a second: guarded until the minute is over.
        assert_eq!((l.failures, l.duration), (3, Duration::from_secs(59)));
        let later = t0 + Duration::from_secs(30);
        assert_eq!(g.check(alice, FAILED, later), Err(Duration::from_secs(30)));
        assert_eq!(
            g.start(alice, client(9), FAILED, later).unwrap_err(),
            Duration::from_secs(30)
        );
        // A client that has not failed is checked: the real user is not locked out.
        assert_eq!(g.check(alice, FRESH, later), Ok(()));
        assert!(g.start(alice, client(9), FRESH, later).is_ok());
        // Other accounts are not affected.
        assert!(g.start(bob, client(0), FAILED, later).is_ok());
        // The window is over: failed clients may try again.
        let after = t0 + Duration::from_secs(60);
        assert_eq!(g.check(alice, FAILED, after), Ok(()));
        assert!(g.start(alice, client(0), FAILED, after).is_ok());
    }

    #[test]
    fn running_checks_count_against_the_limit() {
        let g = guard(3);
        let alice = AccountKey::of("alice");
        let t0 = Instant::now();
        g.record_failure(alice, t0);
        // One failure and two running: a third failed client must wait for their answers.
        let a = g.start(alice, client(1), FAILED, t0).unwrap();
        let b = g.start(alice, client(2), FAILED, t0).unwrap();
        assert_eq!(
            g.start(alice, client(3), FAILED, t0).unwrap_err(),
            RUNNING_RETRY
        );
        // A fresh client still may.
        let c = g.start(alice, client(4), FRESH, t0).unwrap();
        assert_eq!(g.running_len(), 3);
        // b succeeded (the real user from a failed address): room again.
        drop(b);
        drop(c);
        assert!(g.start(alice, client(3), FAILED, t0).is_ok());
        drop(a);
    }

    #[test]
    fn a_fresh_client_gets_one_check_at_a_time_at_a_guarded_account() {
        let g = guard(1);
        let alice = AccountKey::of("alice");
        let t0 = Instant::now();
        g.record_failure(alice, t0).unwrap();
        let first = g.start(alice, client(7), FRESH, t0).unwrap();
        assert_eq!(
            g.start(alice, client(7), FRESH, t0).unwrap_err(),
            RUNNING_RETRY
        );
        drop(first);
        assert_eq!(g.running_len(), 0);
        assert!(g.start(alice, client(7), FRESH, t0).is_ok());
        // Below the limit (counting running checks): several at once.
        let g = guard(3);
        let _x = g.start(alice, client(7), FRESH, t0).unwrap();
        let _y = g.start(alice, client(7), FRESH, t0).unwrap();
        let _z = g.start(alice, client(7), FRESH, t0).unwrap();
        // Three running make it "at the limit": a fourth from the same client waits.
        assert!(g.start(alice, client(7), FRESH, t0).is_err());
        assert!(g.start(alice, client(8), FRESH, t0).is_ok());
    }

    #[test]
    fn guards_double_on_repeat() {
        let g = guard(1);
        let alice = AccountKey::of("alice");
        let mut now = Instant::now();
        let mut seen = Vec::new();
        for _ in 0..4 {
            let l = g.record_failure(alice, now).unwrap();
            seen.push(l.duration.as_secs());
            now += l.duration;
        }
        // Each lasts until its window is over (60 s) and at least 15 s doubling.
        assert_eq!(seen, [60, 60, 60, 120]);
        assert_eq!(g.len(), 1);
    }
}
