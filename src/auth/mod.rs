//! Authentication (HTTP Basic with argon2id, client-certificate CNs) and authorization
//! (allow lists of typed principals).
//!
//! The pipeline calls [`Authenticator::authenticate`] with the current [`Directory`]
//! snapshot, then [`Directory::is_allowed`] with the path's allow list.

mod basic;
mod cache;
mod principal;
mod throttle;

use std::fmt;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

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
use throttle::{ClientKey, FailureTable};

/// How many requests may wait for a verification slot, per slot, before `Busy`.
///
/// One default-params verification takes roughly 20–50 ms on one core, so 32 waiting per
/// slot means a wait of about one second at worst. Waiting longer helps nobody: the client
/// does better with `503` + `Retry-After`, and an unbounded queue would let a flood of bad
/// passwords hold memory and delay every real user indefinitely. Scaling with the number
/// of slots keeps that bound the same on any machine.
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
}

impl fmt::Display for AuthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AuthError::Malformed => "malformed Authorization header (expected Basic credentials)",
            AuthError::UnknownUser => "unknown user",
            AuthError::WrongPassword => "wrong password",
            AuthError::Busy => "too many password verifications waiting",
            AuthError::Throttled { .. } => "too many failed attempts from this client: locked out",
        })
    }
}

impl std::error::Error for AuthError {}

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
    /// Lock-outs started.
    pub lockouts: u64,
    /// Clients with recent failures being tracked (bounded).
    pub failing_clients: usize,
}

/// A lock-out as it starts, for a [`LockoutHook`].
#[derive(Debug)]
pub struct LockoutStarted<'a> {
    /// The request's peer.
    pub peer: IpAddr,
    /// What is locked out: the IPv4 address or the IPv6 /64.
    pub client: &'a str,
    /// Failures counted in the window.
    pub failures: u32,
    /// How long it lasts.
    pub duration: Duration,
}

/// Told of each lock-out as it starts. The server counts lock-outs in its metrics and
/// writes them to the audit log through this.
#[derive(Clone)]
pub struct LockoutHook(Arc<dyn Fn(&LockoutStarted<'_>) + Send + Sync>);

impl LockoutHook {
    /// A hook that calls `f`.
    pub fn new(f: impl Fn(&LockoutStarted<'_>) + Send + Sync + 'static) -> Self {
        LockoutHook(Arc::new(f))
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
    /// One permit per verification allowed to run at once (argon2 is CPU-bound).
    slots: Arc<Semaphore>,
    /// Requests waiting for a permit right now.
    waiting: AtomicUsize,
    max_waiting: usize,
    verifications: AtomicU64,
    cache_hits: AtomicU64,
    busy: AtomicU64,
    /// Clients that failed recently, and who is locked out.
    failures: FailureTable,
    throttled: AtomicU64,
    lockouts: AtomicU64,
    on_lockout: Option<LockoutHook>,
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
        let slots = max_concurrent.max(1);
        Authenticator {
            cache: VerifyCache::new(ttl, max_entries),
            slots: Arc::new(Semaphore::new(slots)),
            waiting: AtomicUsize::new(0),
            max_waiting: slots * MAX_WAITING_PER_SLOT,
            verifications: AtomicU64::new(0),
            cache_hits: AtomicU64::new(0),
            busy: AtomicU64::new(0),
            failures: FailureTable::new(ThrottleSettings::default()),
            throttled: AtomicU64::new(0),
            lockouts: AtomicU64::new(0),
            on_lockout: None,
        }
    }

    /// The same authenticator with other failure-throttling settings.
    pub fn with_throttle(mut self, settings: ThrottleSettings) -> Self {
        self.failures = FailureTable::new(settings);
        self
    }

    /// The same authenticator, telling `hook` of every lock-out.
    pub fn with_lockout_hook(mut self, hook: LockoutHook) -> Self {
        self.on_lockout = Some(hook);
        self
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> AuthStats {
        AuthStats {
            verifications: self.verifications.load(Ordering::Relaxed),
            cache_hits: self.cache_hits.load(Ordering::Relaxed),
            busy: self.busy.load(Ordering::Relaxed),
            cached: self.cache.len(),
            throttled: self.throttled.load(Ordering::Relaxed),
            lockouts: self.lockouts.load(Ordering::Relaxed),
            failing_clients: self.failures.len(),
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
    /// Wrong passwords and unknown users count against `peer` (its /64 for IPv6); a client
    /// over the limit gets `Err(Throttled)` for every Basic attempt, cached successes
    /// included, until its lock-out ends. Requests without Basic are never throttled.
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
        let client = ClientKey::of(peer);
        // Before the cache too: if cached successes bypassed a lock-out, a locked-out
        // guesser would learn at network speed whether a guess is a recently used password.
        self.check_lockout(client)?;
        let phc = dir.password_hash(creds.user()).map(str::to_owned);
        let key = phc
            .as_deref()
            .map(|phc| cache_key(creds.user(), creds.password(), phc));
        let (user, password) = creds.into_parts();
        if key.is_some_and(|key| self.cache.contains(&key, Instant::now())) {
            self.cache_hits.fetch_add(1, Ordering::Relaxed);
            return Ok(Identity {
                user: Some(user),
                cert,
            });
        }

        let permit = self.acquire_slot().await?;
        // Again after the wait: a burst queued before the lock-out must not all run argon2.
        self.check_lockout(client)?;
        self.verifications.fetch_add(1, Ordering::Relaxed);
        // The permit moves into the blocking task, so the concurrency bound holds even if
        // this request is cancelled while argon2 runs.
        let verdict = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            basic::verify(phc.as_deref(), &password)
        })
        .await
        // A panic or runtime shutdown proves nothing about the password: fail closed.
        .unwrap_or(Verdict::Mismatch);

        match verdict {
            Verdict::Match => {
                if let Some(key) = key {
                    self.cache.insert(key, Instant::now());
                }
                Ok(Identity {
                    user: Some(user),
                    cert,
                })
            }
            Verdict::Mismatch => Err(self.failed(peer, client, AuthError::WrongPassword)),
            Verdict::UnknownUser => Err(self.failed(peer, client, AuthError::UnknownUser)),
        }
    }

    /// `Err(Throttled)` if `client` is locked out now.
    fn check_lockout(&self, client: ClientKey) -> Result<(), AuthError> {
        match self.failures.locked(client, Instant::now()) {
            None => Ok(()),
            Some(retry_after) => {
                self.throttled.fetch_add(1, Ordering::Relaxed);
                Err(AuthError::Throttled { retry_after })
            }
        }
    }

    /// Counts a failed verification; logs once when it starts a lock-out. The request
    /// itself still gets `error` (its credentials were checked and are wrong).
    fn failed(&self, peer: IpAddr, client: ClientKey, error: AuthError) -> AuthError {
        if let Some(l) = self.failures.record_failure(client, Instant::now()) {
            self.lockouts.fetch_add(1, Ordering::Relaxed);
            // Never the user name, password or header: only who, how often, how long.
            tracing::warn!(
                %peer,
                %client,
                failures = l.failures,
                lockout_secs = l.duration.as_secs(),
                strike = l.strike,
                "too many failed Basic authentications: client locked out"
            );
            if let Some(hook) = &self.on_lockout {
                (hook.0)(&LockoutStarted {
                    peer,
                    client: &client.to_string(),
                    failures: l.failures,
                    duration: l.duration,
                });
            }
        }
        error
    }

    /// Waits for a verification slot, or refuses at once if too many are waiting already.
    async fn acquire_slot(&self) -> Result<OwnedSemaphorePermit, AuthError> {
        // Tokio's semaphore is fair: this only succeeds when nobody is queued.
        if let Ok(permit) = self.slots.clone().try_acquire_owned() {
            return Ok(permit);
        }
        // Held until this function returns, i.e. while queued for the semaphore.
        let waiting = WaitingGuard::enter(&self.waiting);
        if waiting.position >= self.max_waiting {
            self.busy.fetch_add(1, Ordering::Relaxed);
            return Err(AuthError::Busy);
        }
        // The semaphore is never closed; if it were, refusing is the safe answer.
        self.slots
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| AuthError::Busy)
    }
}

/// Counts a request as waiting for as long as it lives, including when its future is
/// dropped mid-wait (client gone), so the count cannot leak.
struct WaitingGuard<'a> {
    counter: &'a AtomicUsize,
    /// How many were waiting before this one.
    position: usize,
}

impl<'a> WaitingGuard<'a> {
    fn enter(counter: &'a AtomicUsize) -> Self {
        let position = counter.fetch_add(1, Ordering::AcqRel);
        WaitingGuard { counter, position }
    }
}

impl Drop for WaitingGuard<'_> {
    fn drop(&mut self) {
        self.counter.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::basic::tests::cheap_hash;
    use super::*;
    use ::http::HeaderValue;
    use base64::Engine as _;
    use std::collections::BTreeMap;

    const PW: &str = "pa:ss word";
    const PEER: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 7));

    fn basic(user: &str, password: &str) -> HeaderValue {
        let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        HeaderValue::from_str(&format!("Basic {token}")).unwrap()
    }

    fn dir_with(users: &[(&str, &str)]) -> Directory {
        let users = users
            .iter()
            .map(|(u, h)| (u.to_string(), h.to_string()))
            .collect();
        Directory::new(users, BTreeMap::new())
    }

    fn auth() -> Authenticator {
        Authenticator::new(Duration::from_secs(60), 100, 2)
    }

    #[tokio::test]
    async fn no_header_gives_the_certificate_or_anonymous() {
        let a = auth();
        let d = dir_with(&[]);
        let id = a.authenticate(PEER, &d, None, None).await.unwrap();
        assert!(id.is_anonymous());
        let id = a
            .authenticate(PEER, &d, None, Some("client01"))
            .await
            .unwrap();
        assert_eq!(
            id,
            Identity {
                user: None,
                cert: Some("client01".into())
            }
        );
        assert_eq!(a.stats().verifications, 0);
    }

    #[tokio::test]
    async fn malformed_header_is_refused_even_with_a_certificate() {
        let a = auth();
        let d = dir_with(&[("alice", &cheap_hash(PW))]);
        for raw in ["Bearer x", "YWxpY2U6cHc=", "Basic !!", "Basic YWxpY2U="] {
            let v = HeaderValue::from_str(raw).unwrap();
            let got = a.authenticate(PEER, &d, Some(&v), Some("client01")).await;
            assert_eq!(got, Err(AuthError::Malformed), "{raw}");
        }
        // Parsing failures never reach argon2.
        assert_eq!(a.stats().verifications, 0);
    }

    #[tokio::test]
    async fn unknown_user_still_spends_a_verification() {
        let a = auth();
        let d = dir_with(&[("alice", &cheap_hash(PW))]);
        let got = a
            .authenticate(PEER, &d, Some(&basic("mallory", PW)), None)
            .await;
        assert_eq!(got, Err(AuthError::UnknownUser));
        assert_eq!(a.stats().verifications, 1);
        // Case matters: "Alice" is someone else.
        let got = a
            .authenticate(PEER, &d, Some(&basic("Alice", PW)), None)
            .await;
        assert_eq!(got, Err(AuthError::UnknownUser));
    }

    #[tokio::test]
    async fn wrong_or_empty_password_is_refused_even_with_a_certificate() {
        let a = auth();
        let d = dir_with(&[("alice", &cheap_hash(PW))]);
        for wrong in ["pa", "pa:ss", "pa:ss word ", ""] {
            let got = a
                .authenticate(PEER, &d, Some(&basic("alice", wrong)), Some("client01"))
                .await;
            assert_eq!(got, Err(AuthError::WrongPassword), "{wrong:?}");
        }
        // Failures are not cached.
        assert_eq!(a.stats().cached, 0);
    }

    #[tokio::test]
    async fn password_with_colon_works_and_keeps_the_certificate() {
        let a = auth();
        let d = dir_with(&[("alice", &cheap_hash(PW))]);
        let id = a
            .authenticate(PEER, &d, Some(&basic("alice", PW)), None)
            .await
            .unwrap();
        assert_eq!(
            id,
            Identity {
                user: Some("alice".into()),
                cert: None
            }
        );
        let id = a
            .authenticate(PEER, &d, Some(&basic("alice", PW)), Some("c1"))
            .await
            .unwrap();
        assert_eq!(id.to_string(), "user:alice+cert:c1");
    }

    #[tokio::test]
    async fn unusable_hash_in_directory_is_a_wrong_password() {
        let a = auth();
        let d = dir_with(&[(
            "alice",
            "$argon2i$v=19$m=256,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2g",
        )]);
        let got = a
            .authenticate(PEER, &d, Some(&basic("alice", PW)), None)
            .await;
        assert_eq!(got, Err(AuthError::WrongPassword));
    }

    #[tokio::test]
    async fn cache_hit_does_not_verify_again() {
        let a = auth();
        let d = dir_with(&[("alice", &cheap_hash(PW))]);
        for _ in 0..3 {
            a.authenticate(PEER, &d, Some(&basic("alice", PW)), None)
                .await
                .unwrap();
        }
        let s = a.stats();
        assert_eq!((s.verifications, s.cache_hits, s.cached), (1, 2, 1));
        // A wrong password is not answered from the cache.
        let got = a
            .authenticate(PEER, &d, Some(&basic("alice", "nope")), None)
            .await;
        assert_eq!(got, Err(AuthError::WrongPassword));
        assert_eq!(a.stats().verifications, 2);
    }

    #[tokio::test]
    async fn changed_hash_invalidates_and_removed_user_is_refused() {
        let a = auth();
        let old = dir_with(&[("alice", &cheap_hash(PW))]);
        a.authenticate(PEER, &old, Some(&basic("alice", PW)), None)
            .await
            .unwrap();
        // Password changed in the config: the old password no longer works.
        let new = dir_with(&[("alice", &cheap_hash("new password"))]);
        let got = a
            .authenticate(PEER, &new, Some(&basic("alice", PW)), None)
            .await;
        assert_eq!(got, Err(AuthError::WrongPassword));
        a.authenticate(PEER, &new, Some(&basic("alice", "new password")), None)
            .await
            .unwrap();
        // Same password re-hashed (new salt): verified afresh, not served from the cache.
        let rehashed = dir_with(&[("alice", &cheap_hash(PW))]);
        a.authenticate(PEER, &rehashed, Some(&basic("alice", PW)), None)
            .await
            .unwrap();
        assert_eq!(a.stats().verifications, 4);
        assert_eq!(a.stats().cache_hits, 0);
        // User removed: refused although a success is still cached for the old snapshot.
        let got = a
            .authenticate(PEER, &dir_with(&[]), Some(&basic("alice", PW)), None)
            .await;
        assert_eq!(got, Err(AuthError::UnknownUser));
        assert_eq!(a.stats().cache_hits, 0);
    }

    #[tokio::test]
    async fn cached_success_expires_after_the_ttl() {
        let a = Authenticator::new(Duration::from_millis(100), 100, 1);
        let d = dir_with(&[("alice", &cheap_hash(PW))]);
        a.authenticate(PEER, &d, Some(&basic("alice", PW)), None)
            .await
            .unwrap();
        a.authenticate(PEER, &d, Some(&basic("alice", PW)), None)
            .await
            .unwrap();
        assert_eq!((a.stats().verifications, a.stats().cache_hits), (1, 1));
        tokio::time::sleep(Duration::from_millis(150)).await;
        a.authenticate(PEER, &d, Some(&basic("alice", PW)), None)
            .await
            .unwrap();
        assert_eq!((a.stats().verifications, a.stats().cache_hits), (2, 1));
    }

    async fn wait_for_waiting(a: &Authenticator, n: usize) {
        for _ in 0..500 {
            if a.waiting.load(Ordering::Acquire) == n {
                return;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        panic!(
            "expected {n} waiting, have {}",
            a.waiting.load(Ordering::Acquire)
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn busy_when_the_queue_is_full() {
        let a = Arc::new(Authenticator::new(Duration::from_secs(60), 100, 1));
        let d = Arc::new(dir_with(&[("alice", &cheap_hash(PW))]));
        // Warm the cache, then occupy the only slot so every verification has to queue.
        a.authenticate(PEER, &d, Some(&basic("alice", PW)), None)
            .await
            .unwrap();
        let held = a.slots.clone().acquire_owned().await.unwrap();
        let queued: Vec<_> = (0..MAX_WAITING_PER_SLOT)
            .map(|i| {
                let (a, d) = (a.clone(), d.clone());
                tokio::spawn(async move {
                    let wrong = format!("wrong{i}");
                    // One client each, so the failure throttle stays out of this test.
                    let peer = IpAddr::from([198, 51, 100, i as u8]);
                    a.authenticate(peer, &d, Some(&basic("alice", &wrong)), None)
                        .await
                })
            })
            .collect();
        wait_for_waiting(&a, MAX_WAITING_PER_SLOT).await;
        let got = a
            .authenticate(PEER, &d, Some(&basic("alice", "x")), None)
            .await;
        assert_eq!(got, Err(AuthError::Busy));
        let got = a
            .authenticate(PEER, &d, Some(&basic("bob", "x")), None)
            .await;
        assert_eq!(got, Err(AuthError::Busy));
        assert_eq!(a.stats().busy, 2);
        // A cached success needs no slot, so it still gets through.
        a.authenticate(PEER, &d, Some(&basic("alice", PW)), None)
            .await
            .unwrap();
        // Releasing the slot lets every queued request finish normally.
        drop(held);
        for q in queued {
            assert_eq!(q.await.unwrap(), Err(AuthError::WrongPassword));
        }
        assert_eq!(a.waiting.load(Ordering::Acquire), 0);
        assert_eq!(a.slots.available_permits(), 1);
    }

    #[tokio::test]
    async fn cancelled_waiter_leaves_the_queue() {
        let a = Authenticator::new(Duration::from_secs(60), 100, 1);
        let d = dir_with(&[("alice", &cheap_hash(PW))]);
        let held = a.slots.clone().acquire_owned().await.unwrap();
        let waited = tokio::time::timeout(
            Duration::from_millis(50),
            a.authenticate(PEER, &d, Some(&basic("alice", PW)), None),
        )
        .await;
        assert!(waited.is_err(), "should still be queued");
        assert_eq!(a.waiting.load(Ordering::Acquire), 0);
        drop(held);
        a.authenticate(PEER, &d, Some(&basic("alice", PW)), None)
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn errors_never_show_the_password_or_header() {
        let a = auth();
        let secret = "hunter2-Secret";
        let d = dir_with(&[("alice", &cheap_hash(PW))]);
        let header = basic("alice", secret);
        let token = header.to_str().unwrap()["Basic ".len()..].to_owned();
        let mut errors = vec![AuthError::Malformed, AuthError::Busy];
        errors.push(
            a.authenticate(PEER, &d, Some(&header), None)
                .await
                .unwrap_err(),
        );
        errors.push(
            a.authenticate(PEER, &d, Some(&basic("bob", secret)), None)
                .await
                .unwrap_err(),
        );
        assert!(
            errors.contains(&AuthError::WrongPassword) && errors.contains(&AuthError::UnknownUser)
        );
        for e in errors {
            let shown = format!("{e} {e:?}");
            assert!(
                !shown.contains(secret) && !shown.contains(&token),
                "{shown}"
            );
            assert!(!e.to_string().is_empty());
        }
        assert_eq!(AuthError::UnknownUser.to_string(), "unknown user");
    }

    #[tokio::test]
    async fn repeated_failures_lock_the_client_out_without_argon2() {
        let a = auth().with_throttle(ThrottleSettings {
            failures_per_minute: 3,
            lockout_max: Duration::from_secs(1),
            max_clients: 10,
        });
        let d = dir_with(&[("alice", &cheap_hash(PW))]);
        let right = basic("alice", PW);
        a.authenticate(PEER, &d, Some(&right), None).await.unwrap();
        for (user, pw) in [("alice", "x"), ("mallory", PW), ("alice", "y")] {
            let got = a.authenticate(PEER, &d, Some(&basic(user, pw)), None).await;
            assert!(got.is_err_and(|e| !matches!(e, AuthError::Throttled { .. })));
        }
        let before = a.stats();
        assert_eq!((before.lockouts, before.failing_clients), (1, 1));
        // Locked: the right password is refused too, even though it is cached.
        let got = a.authenticate(PEER, &d, Some(&right), None).await;
        assert!(
            matches!(got, Err(AuthError::Throttled { retry_after }) if retry_after <= Duration::from_secs(1))
        );
        let after = a.stats();
        assert_eq!(after.verifications, before.verifications, "no argon2");
        assert_eq!((after.cache_hits, after.throttled), (0, 1));
        // Malformed headers and requests without Basic are not throttled.
        let bad = HeaderValue::from_static("Basic !!");
        assert_eq!(
            a.authenticate(PEER, &d, Some(&bad), None).await,
            Err(AuthError::Malformed)
        );
        assert!(a.authenticate(PEER, &d, None, Some("c1")).await.is_ok());
        // Another client is not affected.
        let other = IpAddr::from([192, 0, 2, 8]);
        a.authenticate(other, &d, Some(&right), None).await.unwrap();
        // The lock-out ends by itself.
        tokio::time::sleep(Duration::from_millis(1050)).await;
        a.authenticate(PEER, &d, Some(&right), None).await.unwrap();
    }

    #[test]
    fn defaults() {
        let a = Authenticator::default();
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        assert_eq!(a.slots.available_permits(), cores);
        assert_eq!(a.max_waiting, cores * MAX_WAITING_PER_SLOT);
        assert_eq!(a.stats(), AuthStats::default());
        // Zero concurrency would deadlock every request; it means one.
        assert_eq!(
            Authenticator::new(Duration::ZERO, 0, 0)
                .slots
                .available_permits(),
            1
        );
    }
}
