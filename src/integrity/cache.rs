//! The verified-chunk cache behind `verify = "cached"`.
//!
//! # What it holds, and why that is safe
//!
//! An entry is the bytes of one chunk, keyed by their SHA-256, put there by
//! the code that hashed *those very bytes* ([`Verified::check`] is the only
//! way to make an entry). A send that finds its chunk's digest here sends
//! the cached bytes: no byte leaves the server that was not hashed as itself.
//!
//! The earlier design trusted the file's identity (device, inode, size,
//! mtime, ctime) to prove that bytes read later were the bytes hashed
//! earlier. It cannot: a write through a shared memory mapping changes
//! mtime/ctime only on a page's first write, so later writes before
//! writeback leave the identity as it was. Bytes in memory cannot change
//! under us; bytes on disk can.
//!
//! Keyed by content, the cache is shared by every file and every path that
//! holds the same chunk, and survives renames and republishes of identical
//! content. A mismatch can never be cached, so nothing is invalidated on a
//! change: chunks of the old version simply age out.
//!
//! # Memory
//!
//! Bounded by the total size of the cached chunks (`[server]
//! chunk_cache_bytes`). The policy is quick_cache's CLOCK-Pro-like one, which
//! resists scans: one large file read once does not flush the chunks that
//! many clients ask for.

use super::chunker::chunk_matches;
use super::Digest;
use bytes::Bytes;
use quick_cache::sync::Cache;
use quick_cache::Weighter;

/// Bytes of one chunk that were hashed and matched `digest`.
#[derive(Clone)]
pub struct Verified {
    digest: Digest,
    bytes: Bytes,
}

impl Verified {
    /// Hash `bytes`; `Some` only if they match `expected`.
    pub fn check(bytes: Bytes, expected: &Digest) -> Option<Verified> {
        chunk_matches(expected, &bytes).then(|| Verified {
            digest: *expected,
            bytes,
        })
    }

    /// The digest they matched.
    pub fn digest(&self) -> &Digest {
        &self.digest
    }

    /// The verified bytes.
    pub fn bytes(&self) -> &Bytes {
        &self.bytes
    }

    /// The bytes, to send.
    pub fn into_bytes(self) -> Bytes {
        self.bytes
    }
}

#[derive(Clone)]
struct ByLen;

impl Weighter<Digest, Bytes> for ByLen {
    fn weight(&self, _key: &Digest, val: &Bytes) -> u64 {
        // An empty chunk (never made: empty files have none) would weigh 0,
        // which quick_cache treats as pinned; count every entry as at least 1.
        (val.len() as u64).max(1)
    }
}

/// Verified chunk bytes, by digest, within a byte budget.
pub struct ChunkCache {
    inner: Option<Cache<Digest, Bytes, ByLen>>,
    capacity: u64,
}

impl ChunkCache {
    /// A cache of at most `capacity` bytes of chunk data; 0 turns it off.
    pub fn new(capacity: u64) -> Self {
        // quick_cache sizes its tables from an estimate of the entry count;
        // 256 KiB per chunk is a middle guess (chunks are 4 KiB to 64 MiB).
        let estimated = (capacity / (256 << 10)).clamp(16, 1 << 20) as usize;
        ChunkCache {
            inner: (capacity > 0).then(|| Cache::with_weighter(estimated, capacity, ByLen)),
            capacity,
        }
    }

    /// The verified bytes of the chunk whose digest is `digest`, if held.
    pub fn get(&self, digest: &Digest) -> Option<Bytes> {
        self.inner.as_ref()?.get(digest)
    }

    /// Keep `chunk` (it may be evicted at once if it does not fit).
    pub fn insert(&self, chunk: &Verified) {
        if let Some(c) = &self.inner {
            if (chunk.bytes.len() as u64) <= self.capacity {
                c.insert(chunk.digest, chunk.bytes.clone());
            }
        }
    }

    /// Bytes held now.
    pub fn weight(&self) -> u64 {
        self.inner.as_ref().map_or(0, |c| c.weight())
    }

    /// The configured bound.
    pub fn capacity(&self) -> u64 {
        self.capacity
    }
}

impl Default for ChunkCache {
    fn default() -> Self {
        ChunkCache::new(DEFAULT_CAPACITY)
    }
}

/// Used when no config says otherwise (unit tests); the server's default
/// depends on the machine (see `config`).
const DEFAULT_CAPACITY: u64 = 64 << 20;

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::{Digest as _, Sha256};

    fn digest(b: &[u8]) -> Digest {
        Sha256::digest(b).into()
    }

    #[test]
    fn only_bytes_that_hash_to_their_key_get_in() {
        let c = ChunkCache::new(1 << 20);
        let good = Bytes::from_static(b"chunk bytes");
        let d = digest(&good);
        assert!(Verified::check(Bytes::from_static(b"other bytes"), &d).is_none());
        let v = Verified::check(good.clone(), &d).unwrap();
        c.insert(&v);
        assert_eq!(c.get(&d).unwrap(), good);
        assert!(c.get(&digest(b"x")).is_none());
    }

    #[test]
    fn the_budget_holds_whatever_is_inserted() {
        let c = ChunkCache::new(64 << 10);
        for i in 0..100u32 {
            let b = Bytes::from(vec![i as u8; 4096]);
            let d = digest(&b);
            c.insert(&Verified::check(b, &d).unwrap());
            assert!(c.weight() <= 64 << 10, "{} after {i}", c.weight());
        }
        let big = Bytes::from(vec![1u8; 128 << 10]);
        let d = digest(&big);
        c.insert(&Verified::check(big, &d).unwrap());
        assert!(c.get(&d).is_none(), "larger than the whole cache");
        let off = ChunkCache::new(0);
        let b = Bytes::from_static(b"y");
        off.insert(&Verified::check(b.clone(), &digest(&b)).unwrap());
        assert!(off.get(&digest(&b)).is_none());
    }
}
