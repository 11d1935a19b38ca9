//! A small, bounded cache of recent successful password verifications.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

/// SHA-256 of (user, 0, password, 0, PHC string): never the plaintext password.
pub(super) type CacheKey = [u8; 32];

/// Builds the cache key for one verification.
///
/// The PHC string is part of the key so that a password change in the config (the
/// directory is swapped live) makes old entries unreachable without any invalidation step.
/// The 0 separators keep ("ab", "c") and ("a", "bc") apart; user names and passwords from
/// a Basic header cannot contain NUL in practice, and even if they did the PHC string
/// (which the attacker does not choose) is still part of the key.
pub(super) fn cache_key(user: &str, password: &str, phc: &str) -> CacheKey {
    let mut h = Sha256::new();
    h.update(user.as_bytes());
    h.update([0]);
    h.update(password.as_bytes());
    h.update([0]);
    h.update(phc.as_bytes());
    h.finalize().into()
}

/// Successful verifications, each valid until its expiry.
///
/// Only successes are stored, so a flood of wrong passwords cannot push real users out.
/// A std mutex is enough: every critical section is a map operation, never an await.
#[derive(Debug)]
pub(super) struct VerifyCache {
    ttl: Duration,
    max_entries: usize,
    entries: Mutex<HashMap<CacheKey, Instant>>,
}

impl VerifyCache {
    /// A cache keeping entries for `ttl`, at most `max_entries` (0 disables caching).
    pub(super) fn new(ttl: Duration, max_entries: usize) -> Self {
        VerifyCache {
            ttl,
            max_entries,
            entries: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<CacheKey, Instant>> {
        // The map holds no invariant a panicking holder could break halfway, so a
        // poisoned lock is still usable.
        crate::sync::lock(&self.entries)
    }

    /// True if `key` was verified and has not expired at `now`; drops it if expired.
    pub(super) fn contains(&self, key: &CacheKey, now: Instant) -> bool {
        let mut entries = self.lock();
        match entries.get(key) {
            Some(&expiry) if now < expiry => true,
            Some(_) => {
                entries.remove(key);
                false
            }
            None => false,
        }
    }

    /// Records a successful verification made at `now`.
    ///
    /// When full, expired entries go first; if none expired, the single oldest entry goes.
    /// That scan is O(n), but an insert only follows an argon2 verification that costs far
    /// more than scanning 10 000 entries, and unlike clearing everything it does not make
    /// every active user re-verify at once (which could trip the `Busy` throttle).
    pub(super) fn insert(&self, key: CacheKey, now: Instant) {
        if self.max_entries == 0 || self.ttl.is_zero() {
            return;
        }
        let Some(expiry) = now.checked_add(self.ttl) else {
            return;
        };
        let mut entries = self.lock();
        if entries.len() >= self.max_entries && !entries.contains_key(&key) {
            entries.retain(|_, &mut e| now < e);
            while entries.len() >= self.max_entries {
                // Same TTL for all, so the earliest expiry is the oldest entry.
                let oldest = entries.iter().min_by_key(|(_, &e)| e).map(|(k, _)| *k);
                match oldest {
                    Some(k) => entries.remove(&k),
                    None => break,
                };
            }
        }
        entries.insert(key, expiry);
    }

    /// Number of entries, expired ones included (for stats and tests).
    pub(super) fn len(&self) -> usize {
        self.lock().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TTL: Duration = Duration::from_secs(60);

    #[test]
    fn key_separates_fields_and_depends_on_the_hash() {
        let k = cache_key("alice", "pw", "$argon2id$A");
        assert_eq!(k, cache_key("alice", "pw", "$argon2id$A"));
        assert_ne!(k, cache_key("alice", "pw", "$argon2id$B"));
        assert_ne!(k, cache_key("alice", "pwx", "$argon2id$A"));
        assert_ne!(k, cache_key("bob", "pw", "$argon2id$A"));
        assert_ne!(cache_key("ab", "c", "h"), cache_key("a", "bc", "h"));
        assert_ne!(cache_key("a", "b:c", "h"), cache_key("a:b", "c", "h"));
    }

    #[test]
    fn miss_then_hit_until_expiry() {
        let c = VerifyCache::new(TTL, 10);
        let t0 = Instant::now();
        let k = cache_key("alice", "pw", "h");
        assert!(!c.contains(&k, t0));
        c.insert(k, t0);
        assert!(c.contains(&k, t0));
        assert!(c.contains(&k, t0 + TTL - Duration::from_millis(1)));
        assert!(!c.contains(&k, t0 + TTL));
        // The expired entry was dropped on lookup.
        assert_eq!(c.len(), 0);
    }

    #[test]
    fn disabled_by_zero_entries_or_zero_ttl() {
        let t0 = Instant::now();
        let k = cache_key("alice", "pw", "h");
        for c in [
            VerifyCache::new(TTL, 0),
            VerifyCache::new(Duration::ZERO, 10),
        ] {
            c.insert(k, t0);
            assert!(!c.contains(&k, t0));
            assert_eq!(c.len(), 0);
        }
    }

    #[test]
    fn full_cache_evicts_expired_entries_first() {
        let c = VerifyCache::new(TTL, 3);
        let t0 = Instant::now();
        let keys: Vec<_> = (0..4)
            .map(|i| cache_key(&format!("u{i}"), "pw", "h"))
            .collect();
        c.insert(keys[0], t0);
        c.insert(keys[1], t0 + TTL / 2);
        c.insert(keys[2], t0 + TTL / 2);
        // keys[0] has expired by now; it goes, the other two stay.
        let t1 = t0 + TTL + Duration::from_secs(1);
        c.insert(keys[3], t1);
        assert_eq!(c.len(), 3);
        assert!(!c.contains(&keys[0], t1));
        assert!(c.contains(&keys[1], t1) && c.contains(&keys[2], t1) && c.contains(&keys[3], t1));
    }

    #[test]
    fn full_cache_without_expired_entries_evicts_the_oldest() {
        let c = VerifyCache::new(TTL, 3);
        let t0 = Instant::now();
        let keys: Vec<_> = (0..5)
            .map(|i| cache_key(&format!("u{i}"), "pw", "h"))
            .collect();
        for (i, k) in keys.iter().enumerate() {
            c.insert(*k, t0 + Duration::from_secs(i as u64));
            assert!(c.len() <= 3);
        }
        let now = t0 + Duration::from_secs(5);
        assert!(!c.contains(&keys[0], now) && !c.contains(&keys[1], now));
        assert!(keys[2..].iter().all(|k| c.contains(k, now)));
        // Re-inserting a present key when full refreshes it without evicting anything.
        c.insert(keys[2], now);
        assert!(keys[2..].iter().all(|k| c.contains(k, now)));
    }
}
