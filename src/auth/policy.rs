//! The throttling policy: which Basic attempts may reach a password check, and what a
//! failed check or a busy refusal counts toward.
//!
//! In order: a locked-out client is refused (`429`); then a client that has failed, trying
//! an account that has had its limit of failures in the window, is refused (`429`); only
//! then the cache and the queue. When a check's slot comes up both rules are applied again
//! (a burst queued before a lock-out or a guard must not all run argon2), and a failed check
//! counts for its client and its account.

use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use super::account::{AccountGuard, Running};
use super::keys::{AccountKey, ClientKey};
use super::throttle::{FailureTable, Strike, ThrottleSettings};
use super::{AuthError, Clock, Lockout, LockoutHook};

/// Who is trying which account.
#[derive(Debug, Clone, Copy)]
pub(super) struct Attempt {
    /// The peer address (for logs).
    pub peer: IpAddr,
    /// Its address or /64.
    pub client: ClientKey,
    /// The user name it presented.
    pub account: AccountKey,
}

impl Attempt {
    /// The attempt of `peer` at the account `user`.
    pub(super) fn new(peer: IpAddr, user: &str) -> Attempt {
        Attempt {
            peer,
            client: ClientKey::of(peer),
            account: AccountKey::of(user),
        }
    }
}

/// Counters of the policy's decisions.
#[derive(Debug, Default)]
pub(super) struct PolicyStats {
    /// Refused because the client is locked out.
    pub throttled: AtomicU64,
    /// Refused because the client has failed and the account is guarded.
    pub account_refusals: AtomicU64,
    /// Client lock-outs started.
    pub lockouts: AtomicU64,
    /// Account guards started.
    pub guards: AtomicU64,
}

/// Failures per client and per account; shared with the blocking task that runs a check,
/// so that a failure counts even if its request is gone by then.
#[derive(Debug)]
pub(super) struct Policy {
    clients: FailureTable<ClientKey>,
    accounts: Arc<AccountGuard>,
    clock: Clock,
    pub stats: PolicyStats,
    /// Told of each lock-out and guard (set once, by the server).
    pub on_lockout: std::sync::OnceLock<LockoutHook>,
}

impl Policy {
    /// The same limits for clients and for accounts.
    pub(super) fn new(settings: ThrottleSettings, clock: Clock) -> Policy {
        Policy {
            clients: FailureTable::new(settings),
            accounts: AccountGuard::new(settings),
            clock,
            stats: PolicyStats::default(),
            on_lockout: std::sync::OnceLock::new(),
        }
    }

    /// Before the cache and the queue: the client's lock-out, then the account's guard.
    /// The cache comes after both, so that a refused guesser cannot learn at network speed
    /// whether a guess is a recently used password.
    pub(super) fn admit(&self, a: &Attempt) -> Result<(), AuthError> {
        let now = self.clock.now();
        self.check_lockout(a, now)?;
        let failed = self.clients.has_failed(a.client, now);
        self.accounts
            .check(a.account, failed, now)
            .map_err(|left| self.refused_at_guard(a, left))
    }

    /// When the check's slot comes up: both rules again, the account's with its running
    /// checks; the check counts as running until the returned value is dropped.
    pub(super) fn start(&self, a: &Attempt) -> Result<Running, AuthError> {
        let now = self.clock.now();
        self.check_lockout(a, now)?;
        let failed = self.clients.has_failed(a.client, now);
        self.accounts
            .start(a.account, a.client, failed, now)
            .map_err(|left| self.refused_at_guard(a, left))
    }

    fn check_lockout(&self, a: &Attempt, now: std::time::Instant) -> Result<(), AuthError> {
        match self.clients.locked(a.client, now) {
            None => Ok(()),
            Some(retry_after) => {
                self.stats.throttled.fetch_add(1, Ordering::Relaxed);
                Err(AuthError::Throttled { retry_after })
            }
        }
    }

    /// A client that has failed tried a guarded account: it keeps counting as failed, so
    /// that a persistent guesser never becomes new again.
    fn refused_at_guard(&self, a: &Attempt, retry_after: std::time::Duration) -> AuthError {
        self.clients.refresh(a.client, self.clock.now());
        self.stats.account_refusals.fetch_add(1, Ordering::Relaxed);
        AuthError::AccountGuarded { retry_after }
    }

    /// A check failed: counts for the client and the account; logs a lock-out or guard it
    /// starts. `user` is the account's name if it exists (unknown names are never logged:
    /// they are sometimes a password typed into the wrong field).
    pub(super) fn failed(&self, a: &Attempt, user: Option<&str>) {
        let now = self.clock.now();
        self.strike(a, Strike::Failed);
        if let Some(g) = self.accounts.record_failure(a.account, now) {
            self.stats.guards.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(
                user = user.unwrap_or("(unknown user)"),
                peer = %a.peer,
                failures = g.failures,
                guard_secs = g.duration.as_secs(),
                strike = g.strike,
                "too many failed Basic authentications at one account: account guarded \
                 (clients that have failed may not try it)"
            );
            if let Some(hook) = self.on_lockout.get() {
                hook.tell(&Lockout::Account {
                    peer: a.peer,
                    user,
                    failures: g.failures,
                    duration: g.duration,
                });
            }
        }
    }

    /// A request was refused as busy: it counts toward the client's lock-out.
    pub(super) fn busy(&self, a: &Attempt) {
        self.strike(a, Strike::Busy);
    }

    fn strike(&self, a: &Attempt, strike: Strike) {
        let Some(l) = self.clients.record(a.client, strike, self.clock.now()) else {
            return;
        };
        self.stats.lockouts.fetch_add(1, Ordering::Relaxed);
        // Never the user name, password or header: only who, how often, how long.
        tracing::warn!(
            peer = %a.peer,
            client = %a.client,
            failures = l.failures,
            busy = l.busy,
            lockout_secs = l.duration.as_secs(),
            strike = l.strike,
            "too many failed Basic authentications: client locked out"
        );
        if let Some(hook) = self.on_lockout.get() {
            hook.tell(&Lockout::Client {
                peer: a.peer,
                client: &a.client.to_string(),
                failures: l.failures,
                duration: l.duration,
            });
        }
    }

    /// (clients, accounts) with recent failures being tracked.
    pub(super) fn tracked(&self) -> (usize, usize) {
        (self.clients.len(), self.accounts.len())
    }
}
