//! Per-client throttling of failed Basic authentications (online password guessing).
//!
//! A client is its IP address, or its /64 for IPv6 (one subscriber usually gets a whole
//! /64, so per-address counting would let it rotate addresses for free). After
//! `max_failures` failures inside one [`WINDOW`], the client is locked out: its Basic
//! attempts are refused without running argon2. Each further lock-out of the same client
//! doubles, from [`FIRST_LOCKOUT`] up to the configured maximum.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// The window failures are counted in ("failures per minute").
pub(super) const WINDOW: Duration = Duration::from_secs(60);

/// The first lock-out of a client; later ones double (capped by the configured maximum).
pub(super) const FIRST_LOCKOUT: Duration = Duration::from_secs(15);

/// Default: failures per [`WINDOW`] before a lock-out. Generous for a person mistyping or a
/// script with a stale password retrying a few times, far below what guessing needs.
pub const DEFAULT_FAILURES_PER_MINUTE: u32 = 10;

/// Default cap of one lock-out.
pub const DEFAULT_LOCKOUT_MAX: Duration = Duration::from_secs(300);

/// Default bound on tracked clients. One entry is a few dozen bytes, so this is ~2 MB.
pub const DEFAULT_MAX_CLIENTS: usize = 50_000;

/// How to throttle; see the module documentation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThrottleSettings {
    /// Failures within one minute that lock a client out (at least 1).
    pub failures_per_minute: u32,
    /// The longest one lock-out lasts.
    pub lockout_max: Duration,
    /// Most clients tracked at once; the least recently failing are forgotten first.
    pub max_clients: usize,
}

impl Default for ThrottleSettings {
    fn default() -> Self {
        ThrottleSettings {
            failures_per_minute: DEFAULT_FAILURES_PER_MINUTE,
            lockout_max: DEFAULT_LOCKOUT_MAX,
            max_clients: DEFAULT_MAX_CLIENTS,
        }
    }
}

/// The unit failures are counted for: an IPv4 address or an IPv6 /64.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) struct ClientKey(IpAddr);

impl ClientKey {
    /// The key for a peer address.
    pub(super) fn of(ip: IpAddr) -> ClientKey {
        // A dual-stack listener sees IPv4 clients as ::ffff:a.b.c.d; grouping those by /64
        // would put every IPv4 client in one bucket, so they count as plain IPv4.
        match ip.to_canonical() {
            IpAddr::V4(v4) => ClientKey(IpAddr::V4(v4)),
            IpAddr::V6(v6) => {
                let prefix = u128::from(v6) & !((1u128 << 64) - 1);
                ClientKey(IpAddr::V6(Ipv6Addr::from(prefix)))
            }
        }
    }
}

impl std::fmt::Display for ClientKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            IpAddr::V4(a) => write!(f, "{a}"),
            IpAddr::V6(a) => write!(f, "{a}/64"),
        }
    }
}

/// A lock-out that just started (for the one WARN line per lock-out).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Lockout {
    /// Failures counted in the window that triggered it.
    pub failures: u32,
    /// How long it lasts.
    pub duration: Duration,
    /// The how-manieth lock-out of this client (1 = first).
    pub strike: u32,
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    window_start: Instant,
    failures: u32,
    /// Lock-outs so far; sets the next one's length. Forgotten with the entry.
    strikes: u32,
    locked_until: Option<Instant>,
    /// Last failure or end of the lock-out, whichever is later: the entry's age.
    last_active: Instant,
}

impl Entry {
    fn locked_at(&self, now: Instant) -> Option<Duration> {
        self.locked_until
            .filter(|&until| now < until)
            .map(|until| until - now)
    }
}

/// The bounded table of clients that failed recently.
///
/// Only failures create entries, so real users cost nothing here. A std mutex is enough:
/// every critical section is a map operation, never an await.
#[derive(Debug)]
pub(super) struct FailureTable {
    settings: ThrottleSettings,
    entries: Mutex<HashMap<ClientKey, Entry>>,
}

impl FailureTable {
    pub(super) fn new(settings: ThrottleSettings) -> Self {
        FailureTable {
            settings: ThrottleSettings {
                failures_per_minute: settings.failures_per_minute.max(1),
                lockout_max: settings.lockout_max.max(Duration::from_secs(1)),
                max_clients: settings.max_clients.max(1),
            },
            entries: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<ClientKey, Entry>> {
        // Every update leaves the map consistent, so a poisoned lock is still usable.
        crate::sync::lock(&self.entries)
    }

    /// An entry with no failures or lock-out left to remember at `now`: past the window,
    /// past its lock-out, and quiet for long enough that its strikes may be forgotten.
    fn is_stale(&self, e: &Entry, now: Instant) -> bool {
        let quiet = WINDOW.max(self.settings.lockout_max);
        now.saturating_duration_since(e.last_active) >= quiet
    }

    /// `Some(time left)` if `key` is locked out at `now`.
    pub(super) fn locked(&self, key: ClientKey, now: Instant) -> Option<Duration> {
        self.lock().get(&key).and_then(|e| e.locked_at(now))
    }

    /// Records one failed verification; returns the lock-out it starts, if any.
    ///
    /// A success never clears the count: otherwise one valid account would let a client
    /// guess the passwords of others without limit.
    pub(super) fn record_failure(&self, key: ClientKey, now: Instant) -> Option<Lockout> {
        let mut entries = self.lock();
        if !entries.contains_key(&key) && entries.len() >= self.settings.max_clients {
            self.make_room(&mut entries, now);
        }
        let e = entries.entry(key).or_insert(Entry {
            window_start: now,
            failures: 0,
            strikes: 0,
            locked_until: None,
            last_active: now,
        });
        if self.is_stale(e, now) {
            e.strikes = 0;
        }
        if e.locked_at(now).is_some() {
            // A check that began before the lock-out: it is already refused; do not extend.
            return None;
        }
        if now.saturating_duration_since(e.window_start) >= WINDOW {
            e.window_start = now;
            e.failures = 0;
        }
        e.failures += 1;
        e.last_active = e.last_active.max(now);
        if e.failures < self.settings.failures_per_minute {
            return None;
        }
        e.strikes = e.strikes.saturating_add(1);
        let doubling = 1u32 << (e.strikes - 1).min(16);
        let duration = FIRST_LOCKOUT
            .saturating_mul(doubling)
            .min(self.settings.lockout_max);
        let lockout = Lockout {
            failures: e.failures,
            duration,
            strike: e.strikes,
        };
        e.locked_until = now.checked_add(duration);
        e.last_active = e.locked_until.unwrap_or(now);
        e.failures = 0;
        e.window_start = e.last_active;
        Some(lockout)
    }

    /// Frees one slot: stale entries go first, then the one active longest ago that is not
    /// locked, and a locked one only when every entry is locked. A spray of fresh addresses
    /// thus pushes out other sprayed addresses before it can free a locked-out guesser.
    fn make_room(&self, entries: &mut HashMap<ClientKey, Entry>, now: Instant) {
        entries.retain(|_, e| !self.is_stale(e, now));
        if entries.len() < self.settings.max_clients {
            return;
        }
        // O(n), but only after an argon2 verification that costs far more.
        let victim = entries
            .iter()
            .min_by_key(|(_, e)| (e.locked_at(now).is_some(), e.last_active))
            .map(|(k, _)| *k);
        if let Some(k) = victim {
            entries.remove(&k);
        }
    }

    /// Clients tracked now (for stats and tests).
    pub(super) fn len(&self) -> usize {
        self.lock().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(failures: u32, max_secs: u64, max_clients: usize) -> FailureTable {
        FailureTable::new(ThrottleSettings {
            failures_per_minute: failures,
            lockout_max: Duration::from_secs(max_secs),
            max_clients,
        })
    }

    fn v4(last: u8) -> ClientKey {
        ClientKey::of(IpAddr::from([192, 0, 2, last]))
    }

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[test]
    fn locks_out_after_the_limit_within_the_window() {
        let t = table(3, 300, 10);
        let t0 = Instant::now();
        assert_eq!(t.record_failure(v4(1), t0), None);
        assert_eq!(t.record_failure(v4(1), t0 + secs(1)), None);
        assert_eq!(t.locked(v4(1), t0 + secs(1)), None);
        let l = t.record_failure(v4(1), t0 + secs(2)).unwrap();
        assert_eq!((l.failures, l.duration, l.strike), (3, FIRST_LOCKOUT, 1));
        assert_eq!(t.locked(v4(1), t0 + secs(2)), Some(FIRST_LOCKOUT));
        assert_eq!(t.locked(v4(1), t0 + secs(12)), Some(secs(5)));
        // Other clients are not affected.
        assert_eq!(t.locked(v4(2), t0 + secs(2)), None);
        // Failures finishing while locked do not extend it or log again.
        assert_eq!(t.record_failure(v4(1), t0 + secs(3)), None);
        assert_eq!(t.locked(v4(1), t0 + secs(2) + FIRST_LOCKOUT), None);
    }

    #[test]
    fn failures_spread_over_more_than_the_window_never_lock() {
        let t = table(3, 300, 10);
        let t0 = Instant::now();
        for i in 0..10 {
            // Two per window, windows back to back.
            let at = t0 + WINDOW * i;
            assert_eq!(t.record_failure(v4(1), at), None);
            assert_eq!(t.record_failure(v4(1), at + secs(30)), None);
        }
    }

    #[test]
    fn lockouts_double_up_to_the_cap_then_are_forgotten() {
        let t = table(1, 100, 10);
        let mut now = Instant::now();
        let mut seen = Vec::new();
        for _ in 0..5 {
            let l = t.record_failure(v4(1), now).unwrap();
            seen.push(l.duration.as_secs());
            now += l.duration;
            assert_eq!(t.locked(v4(1), now), None, "expired");
        }
        assert_eq!(seen, [15, 30, 60, 100, 100]);
        // Quiet for the longer of the window and the cap: back to the first length.
        now += secs(100);
        assert_eq!(
            t.record_failure(v4(1), now).unwrap().duration,
            FIRST_LOCKOUT
        );
    }

    #[test]
    fn cap_below_the_first_lockout_is_the_lockout() {
        let t = table(2, 2, 10);
        let t0 = Instant::now();
        t.record_failure(v4(1), t0);
        assert_eq!(t.record_failure(v4(1), t0).unwrap().duration, secs(2));
        assert!(t.locked(v4(1), t0 + secs(1)).is_some());
        assert_eq!(t.locked(v4(1), t0 + secs(2)), None);
    }

    #[test]
    fn table_is_bounded_and_keeps_locked_clients() {
        let t = table(2, 300, 4);
        let t0 = Instant::now();
        t.record_failure(v4(0), t0);
        t.record_failure(v4(0), t0).unwrap();
        // A spray of one failure each from many addresses.
        for i in 1..=200u8 {
            t.record_failure(v4(i), t0 + Duration::from_millis(u64::from(i)));
            assert!(t.len() <= 4);
        }
        assert!(t.locked(v4(0), t0 + secs(1)).is_some(), "still locked");
        // The most recent sprayed ones survive, the oldest were evicted.
        assert_eq!(t.len(), 4);
        let at = t0 + secs(1);
        assert_eq!(t.record_failure(v4(200), at).unwrap().failures, 2);
        assert_eq!(t.record_failure(v4(1), at), None, "v4(1) was forgotten");
    }

    #[test]
    fn full_table_drops_stale_entries_first() {
        let t = table(5, 60, 2);
        let t0 = Instant::now();
        t.record_failure(v4(1), t0);
        t.record_failure(v4(2), t0 + secs(100));
        t.record_failure(v4(3), t0 + secs(120));
        assert_eq!(t.len(), 2);
        // v4(2) stayed: two failures now make it count 2.
        t.record_failure(v4(2), t0 + secs(121));
        let l = (0..3)
            .filter_map(|_| t.record_failure(v4(2), t0 + secs(121)))
            .next();
        assert_eq!(l.map(|l| l.failures), Some(5));
    }

    #[test]
    fn ipv6_counts_per_64_and_mapped_ipv4_as_ipv4() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:ffff:1:2:3".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(ClientKey::of(a), ClientKey::of(b));
        assert_ne!(ClientKey::of(a), ClientKey::of(c));
        assert_eq!(ClientKey::of(a).to_string(), "2001:db8:1:2::/64");
        let mapped: IpAddr = "::ffff:192.0.2.1".parse().unwrap();
        let other: IpAddr = "::ffff:192.0.2.2".parse().unwrap();
        assert_eq!(ClientKey::of(mapped), v4(1));
        assert_ne!(ClientKey::of(mapped), ClientKey::of(other));

        let t = table(2, 300, 10);
        let t0 = Instant::now();
        t.record_failure(ClientKey::of(a), t0);
        assert!(t.record_failure(ClientKey::of(b), t0).is_some());
        assert!(t.locked(ClientKey::of(a), t0).is_some());
        assert!(t.locked(ClientKey::of(c), t0).is_none());
    }
}
