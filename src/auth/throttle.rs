//! Counting failed Basic authentications per key (a client, an account) and locking a
//! key out when they come too fast (online password guessing).
//!
//! After `failures_per_minute` strikes inside one [`WINDOW`], the key is locked out. Each
//! further lock-out of the same key doubles, from [`FIRST_LOCKOUT`] up to the configured
//! maximum. A table can also remember which keys failed recently ([`FailureTable::has_failed`]),
//! which the per-account rule uses to tell guessing clients from the others.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// The window failures are counted in ("failures per minute").
pub(super) const WINDOW: Duration = Duration::from_secs(60);

/// The first lock-out of a key; later ones double (capped by the configured maximum).
pub(super) const FIRST_LOCKOUT: Duration = Duration::from_secs(15);

/// Default: failures per [`WINDOW`] before a lock-out. Generous for a person mistyping or a
/// script with a stale password retrying a few times, far below what guessing needs.
pub const DEFAULT_FAILURES_PER_MINUTE: u32 = 10;

/// Default cap of one lock-out.
pub const DEFAULT_LOCKOUT_MAX: Duration = Duration::from_secs(300);

/// Default bound on tracked clients (and, separately, accounts). One entry is under a
/// hundred bytes, so this is a few MB.
pub const DEFAULT_MAX_CLIENTS: usize = 50_000;

/// How to throttle; see the module documentation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThrottleSettings {
    /// Failures within one minute that lock a client out, and that guard an account (at
    /// least 1).
    pub failures_per_minute: u32,
    /// The longest one lock-out lasts.
    pub lockout_max: Duration,
    /// Most clients (and accounts) tracked at once; the least recently failing are
    /// forgotten first.
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

/// One event that counts toward a lock-out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Strike {
    /// A password check that failed (wrong password, unknown user). The key then counts
    /// as having failed for a while.
    Failed,
    /// A request refused with `503` because too many checks were waiting. Counted, so that
    /// a flooder that only ever gets `503` is locked out too, but it is no guess.
    Busy,
}

/// A lock-out that just started (for the one WARN line per lock-out).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Lockout {
    /// Strikes counted in the window that triggered it.
    pub failures: u32,
    /// How many of them were [`Strike::Busy`].
    pub busy: u32,
    /// How long it lasts.
    pub duration: Duration,
    /// The how-manieth lock-out of this key (1 = first).
    pub strike: u32,
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    window_start: Instant,
    failures: u32,
    busy: u32,
    /// Lock-outs so far; sets the next one's length. Forgotten with the entry.
    strikes: u32,
    locked_until: Option<Instant>,
    /// Until when the key counts as having failed (see [`FailureTable::has_failed`]).
    failed_until: Option<Instant>,
    /// Last strike, refresh or end of the lock-out, whichever is latest: the entry's age.
    last_active: Instant,
}

impl Entry {
    fn new(now: Instant) -> Entry {
        Entry {
            window_start: now,
            failures: 0,
            busy: 0,
            strikes: 0,
            locked_until: None,
            failed_until: None,
            last_active: now,
        }
    }

    fn locked_at(&self, now: Instant) -> Option<Duration> {
        self.locked_until
            .filter(|&until| now < until)
            .map(|until| until - now)
    }

    fn failed_at(&self, now: Instant) -> bool {
        self.failed_until.is_some_and(|until| now < until)
    }
}

/// The bounded table of keys that failed recently.
///
/// Only strikes create entries, so real users cost nothing here. A std mutex is enough:
/// every critical section is a map operation, never an await.
#[derive(Debug)]
pub(super) struct FailureTable<K> {
    settings: ThrottleSettings,
    /// A lock-out lasts at least until the window that triggered it is over, so that no
    /// more than the limit are counted in one window (accounts).
    hold_window: bool,
    entries: Mutex<HashMap<K, Entry>>,
}

impl<K: Copy + Eq + Hash> FailureTable<K> {
    /// Lock-outs of `FIRST_LOCKOUT`, doubling (clients).
    pub(super) fn new(settings: ThrottleSettings) -> Self {
        FailureTable {
            settings: ThrottleSettings {
                failures_per_minute: settings.failures_per_minute.max(1),
                lockout_max: settings.lockout_max.max(Duration::from_secs(1)),
                max_clients: settings.max_clients.max(1),
            },
            hold_window: false,
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// Lock-outs that also last until the end of the window whose strikes triggered them
    /// (accounts: at most the limit per window, however fast the strikes came).
    pub(super) fn holding_windows(settings: ThrottleSettings) -> Self {
        FailureTable {
            hold_window: true,
            ..FailureTable::new(settings)
        }
    }

    /// The limit per window.
    pub(super) fn limit(&self) -> u32 {
        self.settings.failures_per_minute
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<K, Entry>> {
        // Every update leaves the map consistent, so a poisoned lock is still usable.
        crate::sync::lock(&self.entries)
    }

    /// How long a key stays remembered after its last activity: the longer of the window
    /// and the longest lock-out, so that neither a count nor a strike is forgotten early.
    fn memory(&self) -> Duration {
        WINDOW.max(self.settings.lockout_max)
    }

    /// An entry with no failures, lock-out or strikes left to remember at `now`.
    fn is_stale(&self, e: &Entry, now: Instant) -> bool {
        now.saturating_duration_since(e.last_active) >= self.memory()
    }

    /// `Some(time left)` if `key` is locked out at `now`.
    pub(super) fn locked(&self, key: K, now: Instant) -> Option<Duration> {
        self.lock().get(&key).and_then(|e| e.locked_at(now))
    }

    /// `(time left in a lock-out, strikes counted in the current window)` of `key`.
    pub(super) fn status(&self, key: K, now: Instant) -> (Option<Duration>, u32) {
        match self.lock().get(&key) {
            None => (None, 0),
            Some(e) => {
                let in_window = now.saturating_duration_since(e.window_start) < WINDOW;
                (e.locked_at(now), if in_window { e.failures } else { 0 })
            }
        }
    }

    /// True if `key` had a [`Strike::Failed`], or a [`refresh`](Self::refresh), within the
    /// memory period (the longer of the window and the longest lock-out) before `now`.
    pub(super) fn has_failed(&self, key: K, now: Instant) -> bool {
        self.lock().get(&key).is_some_and(|e| e.failed_at(now))
    }

    /// A key that has failed tried again and was refused: it keeps counting as having
    /// failed for another memory period (so a persistent guesser never becomes new again).
    pub(super) fn refresh(&self, key: K, now: Instant) {
        let memory = self.memory();
        if let Some(e) = self.lock().get_mut(&key).filter(|e| e.failed_at(now)) {
            e.failed_until = now.checked_add(memory);
            e.last_active = e.last_active.max(now);
        }
    }

    /// Records one strike; returns the lock-out it starts, if any.
    ///
    /// A success never clears the count: otherwise one valid account would let a client
    /// guess the passwords of others without limit.
    pub(super) fn record(&self, key: K, strike: Strike, now: Instant) -> Option<Lockout> {
        let memory = self.memory();
        let mut entries = self.lock();
        if !entries.contains_key(&key) && entries.len() >= self.settings.max_clients {
            self.make_room(&mut entries, now);
        }
        let e = entries.entry(key).or_insert_with(|| Entry::new(now));
        if self.is_stale(e, now) {
            e.strikes = 0;
        }
        e.last_active = e.last_active.max(now);
        if strike == Strike::Failed {
            e.failed_until = now.checked_add(memory);
        }
        if e.locked_at(now).is_some() {
            // A check that began before the lock-out: it is already refused; do not extend.
            return None;
        }
        if now.saturating_duration_since(e.window_start) >= WINDOW {
            e.window_start = now;
            e.failures = 0;
            e.busy = 0;
        }
        e.failures += 1;
        e.busy += u32::from(strike == Strike::Busy);
        if e.failures < self.settings.failures_per_minute {
            return None;
        }
        e.strikes = e.strikes.saturating_add(1);
        let doubling = 1u32 << (e.strikes - 1).min(16);
        let mut duration = FIRST_LOCKOUT
            .saturating_mul(doubling)
            .min(self.settings.lockout_max);
        if self.hold_window {
            duration = duration.max((e.window_start + WINDOW).saturating_duration_since(now));
        }
        let lockout = Lockout {
            failures: e.failures,
            busy: e.busy,
            duration,
            strike: e.strikes,
        };
        e.locked_until = now.checked_add(duration);
        e.last_active = e.locked_until.unwrap_or(now);
        e.failures = 0;
        e.busy = 0;
        e.window_start = e.last_active;
        Some(lockout)
    }

    /// Frees one slot: stale entries go first, then the one active longest ago that is not
    /// locked, and a locked one only when every entry is locked. A spray of fresh addresses
    /// thus pushes out other sprayed addresses before it can free a locked-out guesser.
    fn make_room(&self, entries: &mut HashMap<K, Entry>, now: Instant) {
        entries.retain(|_, e| !self.is_stale(e, now));
        if entries.len() < self.settings.max_clients {
            return;
        }
        // O(n), but only after an argon2 verification (or a refusal) that costs far more.
        let victim = entries
            .iter()
            .min_by_key(|(_, e)| (e.locked_at(now).is_some(), e.last_active))
            .map(|(k, _)| *k);
        if let Some(k) = victim {
            entries.remove(&k);
        }
    }

    /// Keys tracked now (for stats and tests).
    pub(super) fn len(&self) -> usize {
        self.lock().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(failures: u32, max_secs: u64, max_clients: usize) -> ThrottleSettings {
        ThrottleSettings {
            failures_per_minute: failures,
            lockout_max: Duration::from_secs(max_secs),
            max_clients,
        }
    }

    fn table(failures: u32, max_secs: u64, max_clients: usize) -> FailureTable<u8> {
        FailureTable::new(settings(failures, max_secs, max_clients))
    }

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    const F: Strike = Strike::Failed;

    #[test]
    fn locks_out_after_the_limit_within_the_window() {
        let t = table(3, 300, 10);
        let t0 = Instant::now();
        assert_eq!(t.record(1, F, t0), None);
        assert_eq!(t.record(1, F, t0 + secs(1)), None);
        assert_eq!(t.locked(1, t0 + secs(1)), None);
        assert_eq!(t.status(1, t0 + secs(1)), (None, 2));
        let l = t.record(1, F, t0 + secs(2)).unwrap();
        assert_eq!((l.failures, l.duration, l.strike), (3, FIRST_LOCKOUT, 1));
        assert_eq!(t.locked(1, t0 + secs(2)), Some(FIRST_LOCKOUT));
        assert_eq!(t.locked(1, t0 + secs(12)), Some(secs(5)));
        // Other keys are not affected.
        assert_eq!(t.locked(2, t0 + secs(2)), None);
        // Failures finishing while locked do not extend it or log again.
        assert_eq!(t.record(1, F, t0 + secs(3)), None);
        assert_eq!(t.locked(1, t0 + secs(2) + FIRST_LOCKOUT), None);
    }

    #[test]
    fn failures_spread_over_more_than_the_window_never_lock() {
        let t = table(3, 300, 10);
        let t0 = Instant::now();
        for i in 0..10 {
            // Two per window, windows back to back.
            let at = t0 + WINDOW * i;
            assert_eq!(t.record(1, F, at), None);
            assert_eq!(t.record(1, F, at + secs(30)), None);
        }
        assert_eq!(t.status(1, t0 + WINDOW * 10 + secs(1)), (None, 0));
    }

    #[test]
    fn busy_refusals_count_toward_the_lockout_but_are_no_failure() {
        let t = table(3, 300, 10);
        let t0 = Instant::now();
        assert_eq!(t.record(1, Strike::Busy, t0), None);
        assert_eq!(t.record(1, Strike::Busy, t0), None);
        assert!(!t.has_failed(1, t0), "a 503 is not a guess");
        let l = t.record(1, Strike::Busy, t0 + secs(1)).unwrap();
        assert_eq!((l.failures, l.busy), (3, 3));
        assert!(t.locked(1, t0 + secs(1)).is_some());
        // Mixed: the busy share is reported.
        t.record(2, F, t0);
        t.record(2, Strike::Busy, t0);
        let l = t.record(2, F, t0).unwrap();
        assert_eq!((l.failures, l.busy), (3, 1));
    }

    #[test]
    fn a_failure_is_remembered_and_refreshed_by_refused_attempts() {
        let t = table(10, 300, 10);
        let t0 = Instant::now();
        assert!(!t.has_failed(1, t0));
        t.record(1, F, t0);
        assert!(t.has_failed(1, t0 + secs(299)));
        assert!(
            !t.has_failed(1, t0 + secs(300)),
            "forgotten after the memory"
        );
        t.record(2, F, t0);
        t.refresh(2, t0 + secs(200));
        assert!(t.has_failed(2, t0 + secs(499)));
        assert!(!t.has_failed(2, t0 + secs(500)));
        // A key that never failed is not made failed by a refresh.
        t.refresh(3, t0);
        assert!(!t.has_failed(3, t0));
        // The memory is at least the window, whatever the lock-out cap.
        let short = table(10, 2, 10);
        short.record(1, F, t0);
        assert!(short.has_failed(1, t0 + secs(59)));
        assert!(!short.has_failed(1, t0 + secs(60)));
    }

    #[test]
    fn lockouts_double_up_to_the_cap_then_are_forgotten() {
        let t = table(1, 100, 10);
        let mut now = Instant::now();
        let mut seen = Vec::new();
        for _ in 0..5 {
            let l = t.record(1, F, now).unwrap();
            seen.push(l.duration.as_secs());
            now += l.duration;
            assert_eq!(t.locked(1, now), None, "expired");
        }
        assert_eq!(seen, [15, 30, 60, 100, 100]);
        // Quiet for the longer of the window and the cap: back to the first length.
        now += secs(100);
        assert_eq!(t.record(1, F, now).unwrap().duration, FIRST_LOCKOUT);
    }

    #[test]
    fn holding_windows_keeps_the_lock_until_the_window_is_over() {
        let t = FailureTable::<u8>::holding_windows(settings(3, 300, 10));
        let t0 = Instant::now();
        t.record(1, F, t0);
        t.record(1, F, t0 + secs(1));
        // Three in 2 s: locked until the minute that began at t0 is over, not just 15 s.
        let l = t.record(1, F, t0 + secs(2)).unwrap();
        assert_eq!(l.duration, secs(58));
        assert!(t.locked(1, t0 + secs(59)).is_some());
        assert_eq!(t.locked(1, t0 + secs(60)), None);
        // Slow enough failures: the doubled lock-out is the longer one.
        let at = t0 + secs(60);
        t.record(1, F, at);
        t.record(1, F, at + secs(30));
        let l = t.record(1, F, at + secs(50)).unwrap();
        assert_eq!((l.duration, l.strike), (secs(30), 2));
    }

    #[test]
    fn cap_below_the_first_lockout_is_the_lockout() {
        let t = table(2, 2, 10);
        let t0 = Instant::now();
        t.record(1, F, t0);
        assert_eq!(t.record(1, F, t0).unwrap().duration, secs(2));
        assert!(t.locked(1, t0 + secs(1)).is_some());
        assert_eq!(t.locked(1, t0 + secs(2)), None);
    }

    #[test]
    fn table_is_bounded_and_keeps_locked_keys() {
        let t = table(2, 300, 4);
        let t0 = Instant::now();
        t.record(0, F, t0);
        t.record(0, F, t0).unwrap();
        // A spray of one failure each from many addresses.
        for i in 1..=200u8 {
            t.record(i, F, t0 + Duration::from_millis(u64::from(i)));
            assert!(t.len() <= 4);
        }
        assert!(t.locked(0, t0 + secs(1)).is_some(), "still locked");
        // The most recent sprayed ones survive, the oldest were evicted.
        assert_eq!(t.len(), 4);
        let at = t0 + secs(1);
        assert_eq!(t.record(200, F, at).unwrap().failures, 2);
        assert_eq!(t.record(1, F, at), None, "1 was forgotten");
    }

    #[test]
    fn full_table_drops_stale_entries_first() {
        let t = table(5, 60, 2);
        let t0 = Instant::now();
        t.record(1, F, t0);
        t.record(2, F, t0 + secs(100));
        t.record(3, F, t0 + secs(120));
        assert_eq!(t.len(), 2);
        // 2 stayed: two failures now make it count 2.
        t.record(2, F, t0 + secs(121));
        let l = (0..3).filter_map(|_| t.record(2, F, t0 + secs(121))).next();
        assert_eq!(l.map(|l| l.failures), Some(5));
    }
}
