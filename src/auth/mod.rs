//! Authentication (HTTP Basic with argon2id, client-certificate CNs) and authorization
//! (allow lists of typed principals).
//!
//! The pipeline calls [`Authenticator::authenticate`] with the current [`Directory`]
//! snapshot, then [`Directory::is_allowed`] with the path's allow list.
//!
//! A Basic attempt goes through, in order: the client's lock-out and the account's guard
//! (`policy`), the cache of recent successes (`cache`), the fair queue of checks (`queue`),
//! both rules again, argon2 (`basic`); a failure counts for the client and the account
//! (`throttle`, `account`).

mod account;
mod basic;
mod cache;
mod keys;
mod policy;
mod principal;
mod queue;
mod throttle;

#[cfg(test)]
mod tests;

use std::fmt;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub use basic::{
    check_password_hash, hash_password, parse_basic, BasicCredentials, HashCheckError,
    HashPasswordError,
};
pub use principal::{
    check_group_member, check_user_name, Directory, Identity, NameError, ParsePrincipalError,
    Principal, PrincipalRef,
};

pub use throttle::{
    ThrottleSettings, DEFAULT_FAILURES_PER_MINUTE, DEFAULT_LOCKOUT_MAX, DEFAULT_MAX_CLIENTS,
};

use basic::Verdict;
use cache::{cache_key, VerifyCache};
use policy::{Attempt, Policy};
use queue::{Busy, FairQueue};

/// How many requests may wait for a verification slot, per slot, before `Busy`.
///
/// One default-params verification takes roughly 20–50 ms on one core, so 32 waiting per
/// slot means a wait of about one second at worst, and a client not checked lately waits
/// only for the checks running now (see `queue`). Waiting longer helps nobody: the client
/// does better with `503` + `Retry-After`, and an unbounded queue would let a flood of bad
/// passwords hold memory. Scaling with the number of slots keeps that bound the same on
/// any machine.
const MAX_WAITING_PER_SLOT: usize = 32;

/// Why a request's credentials were not accepted.
///
/// `Display` never includes the password or the header value; the user name is not part
/// of it either (callers that want it can log [`BasicCredentials::user`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthError {
    /// An Authorization header is present but is not valid Basic (bad base64, no colon,
    /// not UTF-8, empty user name, other scheme).
    Malformed,
    /// No such user in the current config.
    UnknownUser,
    /// The password does not match (or the account's hash is unusable).
    WrongPassword,
    /// Too many verifications are waiting: answer `503` with `Retry-After`.
    Busy,
    /// This client failed too often and is locked out for `retry_after` more: answer `429`
    /// with `Retry-After`. The credentials were not checked.
    Throttled {
        /// Time left in the lock-out.
        retry_after: Duration,
    },
    /// The account had too many failed checks in the last minute (from any clients), and
    /// this client has failed recently, so it may not try the account for `retry_after`:
    /// answer `429` with `Retry-After`. The credentials were not checked.
    AccountGuarded {
        /// Time left in the account's guard.
        retry_after: Duration,
    },
}

impl fmt::Display for AuthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AuthError::Malformed => "malformed Authorization header (expected Basic credentials)",
            AuthError::UnknownUser => "unknown user",
            AuthError::WrongPassword => "wrong password",
            AuthError::Busy => "too many password verifications waiting",
            AuthError::Throttled { .. } => "too many failed attempts from this client: locked out",
            AuthError::AccountGuarded { .. } => {
                "too many failed attempts at this account, and this client has failed: refused"
            }
        })
    }
}

impl std::error::Error for AuthError {}

/// Where the authenticator reads the time: the system clock, or one a test moves by hand.
#[derive(Clone)]
struct Clock(Arc<dyn Fn() -> Instant + Send + Sync>);

impl Clock {
    fn system() -> Clock {
        Clock(Arc::new(Instant::now))
    }

    fn now(&self) -> Instant {
        (self.0)()
    }
}

impl fmt::Debug for Clock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Clock")
    }
}

/// Counters for logs and tests: how the authenticator has been answering.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AuthStats {
    /// argon2 verifications started (real accounts and the unknown-user dummy).
    pub verifications: u64,
    /// Requests answered from the cache of recent successes.
    pub cache_hits: u64,
    /// Requests refused with [`AuthError::Busy`].
    pub busy: u64,
    /// Entries currently in the cache (expired ones included until evicted).
    pub cached: usize,
    /// Requests refused with [`AuthError::Throttled`] (argon2 not run).
    pub throttled: u64,
    /// Requests refused with [`AuthError::AccountGuarded`] (argon2 not run).
    pub account_refusals: u64,
    /// Client lock-outs started.
    pub lockouts: u64,
    /// Account guards started.
    pub account_guards: u64,
    /// Clients with recent failures being tracked (bounded).
    pub failing_clients: usize,
    /// Accounts with recent failures being tracked (bounded).
    pub failing_accounts: usize,
    /// Verifications running now.
    pub running: usize,
    /// Requests waiting for a verification slot now.
    pub waiting: usize,
}

/// A lock-out or account guard as it starts, for a [`LockoutHook`]. Never a password; a
/// user name only when the account exists.
#[derive(Debug)]
pub enum Lockout<'a> {
    /// A client failed too often: its Basic attempts are refused for `duration`.
    Client {
        /// The request's peer.
        peer: IpAddr,
        /// What is locked out: the IPv4 address or the IPv6 /64.
        client: &'a str,
        /// Failures counted in the window.
        failures: u32,
        /// How long it lasts.
        duration: Duration,
    },
    /// An account failed too often: clients that have failed may not try it for `duration`.
    Account {
        /// The peer whose failure started it.
        peer: IpAddr,
        /// The account's name, if it exists.
        user: Option<&'a str>,
        /// Failures counted in the window.
        failures: u32,
        /// How long it lasts.
        duration: Duration,
    },
}

/// Told of each lock-out and account guard as it starts. The server counts them in its
/// metrics and writes them to the audit log through this.
#[derive(Clone)]
pub struct LockoutHook(Arc<dyn Fn(&Lockout<'_>) + Send + Sync>);

impl LockoutHook {
    /// A hook that calls `f`.
    pub fn new(f: impl Fn(&Lockout<'_>) + Send + Sync + 'static) -> Self {
        LockoutHook(Arc::new(f))
    }

    fn tell(&self, lockout: &Lockout<'_>) {
        (self.0)(lockout)
    }
}

impl fmt::Debug for LockoutHook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("LockoutHook")
    }
}

/// Verifies Basic credentials with argon2id, caching successful verifications briefly.
#[derive(Debug)]
pub struct Authenticator {
    cache: VerifyCache,
    /// Verification slots (argon2 is CPU-bound) and the fair queue for them.
    queue: FairQueue,
    /// Lock-outs of clients, guards of accounts.
    policy: Arc<Policy>,
    clock: Clock,
    verifications: AtomicU64,
    cache_hits: AtomicU64,
    busy: AtomicU64,
}

impl Default for Authenticator {
    /// TTL 60 s, 10 000 cache entries, one verification per available core, default
    /// [`ThrottleSettings`].
    fn default() -> Self {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        Authenticator::new(Duration::from_secs(60), 10_000, cores)
    }
}

impl Authenticator {
    /// Caches successes for `ttl` (at most `max_entries`; 0 disables the cache) and runs at
    /// most `max_concurrent` verifications at once (at least 1), with up to 32 requests per
    /// slot waiting before [`AuthError::Busy`]. Failures are throttled with the default
    /// [`ThrottleSettings`]; see [`Authenticator::with_throttle`].
    pub fn new(ttl: Duration, max_entries: usize, max_concurrent: usize) -> Self {
        Authenticator::with_clock(ttl, max_entries, max_concurrent, Clock::system())
    }

    fn with_clock(ttl: Duration, max_entries: usize, max_concurrent: usize, clock: Clock) -> Self {
        let slots = max_concurrent.max(1);
        Authenticator {
            cache: VerifyCache::new(ttl, max_entries),
            queue: FairQueue::new(slots, slots * MAX_WAITING_PER_SLOT, clock.clone()),
            policy: Arc::new(Policy::new(ThrottleSettings::default(), clock.clone())),
            clock,
            verifications: AtomicU64::new(0),
            cache_hits: AtomicU64::new(0),
            busy: AtomicU64::new(0),
        }
    }

    /// The same authenticator with other failure-throttling settings (for clients and
    /// accounts alike).
    pub fn with_throttle(mut self, settings: ThrottleSettings) -> Self {
        let hook = self.policy.on_lockout.get().cloned();
        self.policy = Arc::new(Policy::new(settings, self.clock.clone()));
        if let Some(hook) = hook {
            let _ = self.policy.on_lockout.set(hook);
        }
        self
    }

    /// The same authenticator, telling `hook` of every lock-out and account guard.
    pub fn with_lockout_hook(self, hook: LockoutHook) -> Self {
        let _ = self.policy.on_lockout.set(hook);
        self
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> AuthStats {
        let p = &self.policy.stats;
        let (failing_clients, failing_accounts) = self.policy.tracked();
        let (running, waiting) = self.queue.load();
        AuthStats {
            verifications: self.verifications.load(Ordering::Relaxed),
            cache_hits: self.cache_hits.load(Ordering::Relaxed),
            busy: self.busy.load(Ordering::Relaxed),
            cached: self.cache.len(),
            throttled: p.throttled.load(Ordering::Relaxed),
            account_refusals: p.account_refusals.load(Ordering::Relaxed),
            lockouts: p.lockouts.load(Ordering::Relaxed),
            account_guards: p.guards.load(Ordering::Relaxed),
            failing_clients,
            failing_accounts,
            running,
            waiting,
        }
    }

    /// Verify the request's credentials. `peer` = the client's address; `authorization` =
    /// the raw Authorization header if any; `cert_cn` = CN of a client certificate that TLS
    /// already verified.
    ///
    /// No Authorization header → `Identity { user: None, cert: cert_cn }`. A header that is
    /// not Basic or is malformed → `Err(Malformed)`. Basic with bad credentials → `Err` even
    /// if a certificate is present: a request that claims to be a user and fails is refused
    /// rather than silently downgraded to its certificate.
    ///
    /// Wrong passwords and unknown users count against `peer` (its /64 for IPv6) and against
    /// the account; a client over the limit gets `Err(Throttled)` for every Basic attempt,
    /// cached successes included, until its lock-out ends, and a client that has failed
    /// gets `Err(AccountGuarded)` at an account over the limit. Requests without Basic are
    /// never throttled.
    pub async fn authenticate(
        &self,
        peer: IpAddr,
        dir: &Directory,
        authorization: Option<&::http::HeaderValue>,
        cert_cn: Option<&str>,
    ) -> Result<Identity, AuthError> {
        let cert = cert_cn.map(str::to_owned);
        let Some(value) = authorization else {
            return Ok(Identity { user: None, cert });
        };
        let creds = parse_basic(value)?;
        let attempt = Attempt::new(peer, creds.user());
        self.policy.admit(&attempt)?;
        let phc = dir.password_hash(creds.user()).map(str::to_owned);
        let key = phc
            .as_deref()
            .map(|phc| cache_key(creds.user(), creds.password(), phc));
        let (user, password) = creds.into_parts();
        if key.is_some_and(|key| self.cache.contains(&key, self.clock.now())) {
            self.cache_hits.fetch_add(1, Ordering::Relaxed);
            return Ok(Identity {
                user: Some(user),
                cert,
            });
        }
        match self.verify(attempt, phc, &user, password).await? {
            Verdict::Match => {
                if let Some(key) = key {
                    self.cache.insert(key, self.clock.now());
                }
                Ok(Identity {
                    user: Some(user),
                    cert,
                })
            }
            Verdict::Mismatch => Err(AuthError::WrongPassword),
            Verdict::UnknownUser => Err(AuthError::UnknownUser),
        }
    }

    /// Waits for a slot, applies the rules again, runs argon2 on a blocking thread and
    /// counts a failure there. `Err` for a refusal (busy, lock-out, guard).
    async fn verify(
        &self,
        attempt: Attempt,
        phc: Option<String>,
        user: &str,
        password: String,
    ) -> Result<Verdict, AuthError> {
        let slot = match self.queue.acquire(attempt.client).await {
            Ok(slot) => slot,
            Err(Busy) => {
                self.busy.fetch_add(1, Ordering::Relaxed);
                self.policy.busy(&attempt);
                return Err(AuthError::Busy);
            }
        };
        // Again after the wait: a burst queued before a lock-out or guard must not all run.
        let running = self.policy.start(&attempt)?;
        self.verifications.fetch_add(1, Ordering::Relaxed);
        let policy = self.policy.clone();
        let known = phc.is_some().then(|| user.to_owned());
        // The slot and the running mark move into the blocking task, so the bounds hold even
        // if this request is cancelled while argon2 runs, and a failure counts even then
        // (a guesser cannot dodge the count by hanging up). It is counted before either is
        // released, so that the next check to start sees it.
        let verdict = tokio::task::spawn_blocking(move || {
            let verdict = basic::verify(phc.as_deref(), &password);
            if verdict != Verdict::Match {
                policy.failed(&attempt, known.as_deref());
            }
            drop(running);
            drop(slot);
            verdict
        })
        .await;
        // A panic or runtime shutdown proves nothing about the password: fail closed.
        Ok(verdict.unwrap_or(Verdict::Mismatch))
    }
}
