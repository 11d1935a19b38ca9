//! The verified-chunk cache behind `verify = "cached"`.
//!
//! # What it trusts, and why that is safe
//!
//! An entry says: "chunk *i* of the file with identity *I* (device, inode,
//! size, mtime, ctime) was read and matched digest *d* of manifest *root*".
//! A later send of that chunk skips the hash only if `fstat` on the open
//! descriptor gives exactly *I* both **before and after** the bytes are read.
//!
//! - Any write to the file updates its ctime, and the kernel does so *before*
//!   it copies the new data in, so a write that could have touched the bytes
//!   we read shows up in the second `fstat`.
//! - ctime cannot be set from user space: `touch -d`/`utimensat` set mtime
//!   (and atime) but stamp ctime with the current time. So an in-place change
//!   that restores size and mtime still changes the identity, and the cache
//!   misses: the chunk is hashed again before it is sent.
//! - A rename-replace gives a new inode; a copy onto another device a new
//!   device: both miss.
//! - Timestamps are coarse (one clock tick), so two writes within one tick
//!   can leave ctime unchanged ("racy git"). Chunks of a file whose ctime is
//!   within [`RACY_WINDOW`] of the time of verification are therefore never
//!   cached: such a file is hashed on every send until it has been quiet for
//!   that long, and any write after an entry was made moves ctime to a later
//!   tick than the one recorded.
//!
//! What it does not defend against: someone who can set the system clock
//! back or write the block device underneath the file system (root on the
//! server). `verify = "always"` exists for disks that are not trusted that far.

use super::Digest;
use crate::resolve::FileIdentity;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A file changed this recently is never trusted from the cache.
pub const RACY_WINDOW: Duration = Duration::from_secs(2);

/// Files remembered at most; beyond that the cache starts over (a bound on
/// memory, not a correctness matter).
const MAX_FILES: usize = 100_000;

/// Whether `id` changed so recently that a further write might not move its ctime.
pub fn is_racy(id: &FileIdentity) -> bool {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let ctime = Duration::new(
        u64::try_from(id.ctime_sec).unwrap_or(0),
        u32::try_from(id.ctime_nsec.clamp(0, 999_999_999)).unwrap_or(0),
    );
    // A ctime in the future (clock stepped back) is treated as racy too.
    !matches!(now.checked_sub(ctime), Some(age) if age >= RACY_WINDOW)
}

struct Entry {
    identity: FileIdentity,
    root: Digest,
    verified: Vec<u64>,
}

/// Chunks known to match their manifest, per file version.
#[derive(Default)]
pub struct ChunkCache {
    /// Keyed by (device, inode): a new identity of the same file replaces
    /// the old entry, so stale versions are dropped, not accumulated.
    files: Mutex<HashMap<(u64, u64), Entry>>,
}

impl ChunkCache {
    /// Whether chunk `index` was verified against `root` for exactly `identity`.
    pub fn is_verified(&self, identity: &FileIdentity, root: &Digest, index: u64) -> bool {
        let files = crate::sync::lock(&self.files);
        files
            .get(&(identity.dev, identity.ino))
            .filter(|e| e.identity == *identity && e.root == *root)
            .and_then(|e| e.verified.get((index / 64) as usize))
            .is_some_and(|word| word & (1 << (index % 64)) != 0)
    }

    /// Record that chunk `index` of `identity` matched `root`'s digest. Does
    /// nothing for a racy identity (see the module docs).
    pub fn mark(&self, identity: &FileIdentity, root: &Digest, index: u64) {
        if is_racy(identity) {
            return;
        }
        let mut files = crate::sync::lock(&self.files);
        if files.len() >= MAX_FILES && !files.contains_key(&(identity.dev, identity.ino)) {
            files.clear();
        }
        let entry = files
            .entry((identity.dev, identity.ino))
            .or_insert_with(|| Entry {
                identity: *identity,
                root: *root,
                verified: Vec::new(),
            });
        if entry.identity != *identity || entry.root != *root {
            *entry = Entry {
                identity: *identity,
                root: *root,
                verified: Vec::new(),
            };
        }
        let word = (index / 64) as usize;
        if entry.verified.len() <= word {
            entry.verified.resize(word + 1, 0);
        }
        entry.verified[word] |= 1 << (index % 64);
    }

    /// Forget everything about the file `identity` belongs to.
    pub fn forget(&self, identity: &FileIdentity) {
        crate::sync::lock(&self.files).remove(&(identity.dev, identity.ino));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(ctime_sec: i64) -> FileIdentity {
        FileIdentity {
            dev: 1,
            ino: 2,
            size: 3,
            mtime_sec: 4,
            mtime_nsec: 0,
            ctime_sec,
            ctime_nsec: 0,
        }
    }

    #[test]
    fn entries_are_per_identity_and_root() {
        let c = ChunkCache::default();
        let old = id(1000);
        c.mark(&old, &[1; 32], 70);
        assert!(c.is_verified(&old, &[1; 32], 70));
        assert!(!c.is_verified(&old, &[1; 32], 6));
        assert!(!c.is_verified(&old, &[2; 32], 70));
        let changed = id(1001);
        assert!(!c.is_verified(&changed, &[1; 32], 70));
        c.mark(&changed, &[1; 32], 0);
        assert!(!c.is_verified(&old, &[1; 32], 70), "old version dropped");
    }

    #[test]
    fn racy_files_are_not_cached() {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
        let fresh = id(now.as_secs() as i64);
        assert!(is_racy(&fresh));
        let c = ChunkCache::default();
        c.mark(&fresh, &[1; 32], 0);
        assert!(!c.is_verified(&fresh, &[1; 32], 0));
        assert!(is_racy(&id(now.as_secs() as i64 + 100)));
        assert!(!is_racy(&id(1000)));
    }
}
