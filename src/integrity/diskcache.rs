//! A serve-through path's local chunk cache: verified chunks from the
//! object store kept on disk (`cache_dir`), at most `cache_bytes` of them,
//! the least recently used evicted first.
//!
//! Files are named by their chunk's SHA-256 (`cache_dir/ab/ab12…`), so a
//! chunk shared by several files is kept once. The disk is not trusted: a
//! chunk read from here is hashed again before it is sent, exactly like a
//! chunk of a published `dir` (the caller does that, and calls
//! [`DiskCache::remove`] on a mismatch).
//!
//! The bound holds at every moment: room is made (least recently used
//! files deleted) before a new file is written, under the index lock, and a
//! file is written beside its final name and renamed into place. Recency is
//! kept in memory; after a restart the files' modification times order them.
//!
//! The index is a map and an ordered map (the LRU order): a few dozen lines,
//! where a cache crate would still need its evictions turned into file
//! deletions that keep the bound exact.

use super::{hex, parse_digest, Digest};
use bytes::Bytes;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::SystemTime;
use tracing::warn;

#[derive(Debug, Clone, Copy)]
struct Entry {
    tick: u64,
    size: u64,
    /// False while its file is being written: counted, not yet readable
    /// nor evictable.
    ready: bool,
}

#[derive(Default)]
struct Index {
    entries: HashMap<Digest, Entry>,
    /// tick → digest, oldest first.
    order: BTreeMap<u64, Digest>,
    used: u64,
    next: u64,
}

impl Index {
    fn touch(&mut self, d: &Digest) -> Option<Entry> {
        let e = self.entries.get_mut(d)?;
        self.order.remove(&e.tick);
        e.tick = self.next;
        self.order.insert(self.next, *d);
        self.next += 1;
        Some(*e)
    }

    fn insert(&mut self, d: Digest, size: u64, ready: bool) {
        self.entries.insert(
            d,
            Entry {
                tick: self.next,
                size,
                ready,
            },
        );
        self.order.insert(self.next, d);
        self.next += 1;
        self.used += size;
    }

    fn forget(&mut self, d: &Digest) -> Option<Entry> {
        let e = self.entries.remove(d)?;
        self.order.remove(&e.tick);
        self.used -= e.size;
        Some(e)
    }

    /// The least recently used file that is written.
    fn oldest(&self) -> Option<Digest> {
        self.order
            .values()
            .find(|d| self.entries.get(*d).is_some_and(|e| e.ready))
            .copied()
    }
}

/// Verified chunks on disk, within a byte bound.
pub struct DiskCache {
    dir: PathBuf,
    index: Mutex<Index>,
    capacity: Mutex<u64>,
}

impl DiskCache {
    /// The cache in `dir` (created if missing) holding at most `capacity`
    /// bytes; files already there are taken in, oldest first, and the
    /// excess evicted.
    pub fn open(dir: &Path, capacity: u64) -> std::io::Result<DiskCache> {
        std::fs::create_dir_all(dir)?;
        let mut found: Vec<(SystemTime, Digest, u64)> = Vec::new();
        for shard in std::fs::read_dir(dir)?.filter_map(Result::ok) {
            if !shard.file_type().is_ok_and(|t| t.is_dir()) {
                continue;
            }
            for f in std::fs::read_dir(shard.path())?.filter_map(Result::ok) {
                let name = f.file_name();
                let name = name.to_string_lossy();
                match (parse_digest(&name), f.metadata()) {
                    (Some(d), Ok(m)) if m.is_file() => {
                        found.push((m.modified().unwrap_or(SystemTime::UNIX_EPOCH), d, m.len()))
                    }
                    // Left over from a write that did not finish.
                    _ => {
                        let _ = std::fs::remove_file(f.path());
                    }
                }
            }
        }
        found.sort();
        let mut index = Index::default();
        for (_, d, size) in found {
            index.insert(d, size, true);
        }
        let cache = DiskCache {
            dir: dir.to_path_buf(),
            index: Mutex::new(index),
            capacity: Mutex::new(capacity),
        };
        cache.set_capacity(capacity);
        Ok(cache)
    }

    fn path(&self, d: &Digest) -> PathBuf {
        let name = hex(d);
        self.dir.join(&name[..2]).join(name)
    }

    /// Change the bound (a config reload); evicts down to it at once.
    pub fn set_capacity(&self, capacity: u64) {
        *crate::sync::lock(&self.capacity) = capacity;
        let mut index = crate::sync::lock(&self.index);
        self.make_room(&mut index, 0, capacity);
    }

    /// Delete least recently used files until `more` bytes fit; false when
    /// they cannot (the rest is being written).
    fn make_room(&self, index: &mut Index, more: u64, capacity: u64) -> bool {
        while index.used + more > capacity {
            let Some(victim) = index.oldest() else {
                return false;
            };
            index.forget(&victim);
            if let Err(e) = std::fs::remove_file(self.path(&victim)) {
                if e.kind() != std::io::ErrorKind::NotFound {
                    warn!(dir = %self.dir.display(), "cannot evict a cached chunk: {e}");
                }
            }
        }
        true
    }

    /// The bytes kept for `digest`, unverified (blocking). A file that
    /// cannot be read is forgotten.
    pub fn get(&self, digest: &Digest) -> Option<Bytes> {
        if !crate::sync::lock(&self.index).touch(digest)?.ready {
            return None;
        }
        match std::fs::read(self.path(digest)) {
            Ok(b) => Some(Bytes::from(b)),
            Err(_) => {
                crate::sync::lock(&self.index).forget(digest);
                None
            }
        }
    }

    /// Keep `bytes`, which the caller verified as `digest` (blocking).
    /// Nothing is kept when it is larger than the whole cache or cannot be
    /// written (logged).
    pub fn put(&self, digest: &Digest, bytes: &[u8]) {
        let capacity = *crate::sync::lock(&self.capacity);
        let size = bytes.len() as u64;
        let path = self.path(digest);
        {
            let mut index = crate::sync::lock(&self.index);
            if index.touch(digest).is_some()
                || size > capacity
                || !self.make_room(&mut index, size, capacity)
            {
                return;
            }
            // Counted before it is written, so that the bound holds while it is.
            index.insert(*digest, size, false);
        }
        let tmp = path.with_extension("part");
        let written = path
            .parent()
            .map_or(Ok(()), std::fs::create_dir_all)
            .and_then(|()| std::fs::write(&tmp, bytes));
        let mut index = crate::sync::lock(&self.index);
        let renamed = written.and_then(|()| std::fs::rename(&tmp, &path));
        match (renamed, index.entries.get_mut(digest)) {
            (Ok(()), Some(e)) => e.ready = true,
            (Ok(()), None) => {
                let _ = std::fs::remove_file(&path);
            }
            (Err(e), _) => {
                warn!(dir = %self.dir.display(), "cannot keep a verified chunk in the cache: {e}");
                let _ = std::fs::remove_file(&tmp);
                index.forget(digest);
            }
        }
    }

    /// Drop the file kept for `digest` (it failed its hash). One being
    /// written is left to its writer, so its bytes stay counted until its
    /// file is there.
    pub fn remove(&self, digest: &Digest) {
        let mut index = crate::sync::lock(&self.index);
        if index.entries.get(digest).is_some_and(|e| e.ready) {
            index.forget(digest);
            let _ = std::fs::remove_file(self.path(digest));
        }
    }

    /// Chunk bytes held now.
    pub fn used(&self) -> u64 {
        crate::sync::lock(&self.index).used
    }

    /// The folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::integrity::sha256;

    fn on_disk(dir: &Path) -> u64 {
        let mut total = 0;
        for shard in std::fs::read_dir(dir).unwrap().filter_map(Result::ok) {
            for f in std::fs::read_dir(shard.path())
                .unwrap()
                .filter_map(Result::ok)
            {
                total += f.metadata().unwrap().len();
            }
        }
        total
    }

    #[test]
    fn the_least_recently_used_go_first_and_the_bound_holds_on_disk() {
        let tmp = tempfile::tempdir().unwrap();
        let c = DiskCache::open(tmp.path(), 3000).unwrap();
        let chunk = |i: u8| vec![i; 1000];
        let d: Vec<Digest> = (0..5).map(|i| sha256(&chunk(i))).collect();
        for (i, digest) in d.iter().enumerate().take(3) {
            c.put(digest, &chunk(i as u8));
        }
        assert_eq!(c.used(), 3000);
        // Chunk 0 used again: chunk 1 is now the least recently used.
        assert_eq!(c.get(&d[0]).unwrap(), chunk(0));
        c.put(&d[3], &chunk(3));
        assert!(c.get(&d[1]).is_none(), "evicted");
        assert!(c.get(&d[0]).is_some() && c.get(&d[2]).is_some());
        assert!(on_disk(tmp.path()) <= 3000);
        c.put(&d[4], &vec![9; 4000]);
        assert!(c.get(&d[4]).is_none(), "larger than the whole cache");
        c.remove(&d[0]);
        assert!(c.get(&d[0]).is_none());
        assert_eq!(c.used(), on_disk(tmp.path()));
        // Reopened smaller: what is there is taken in and cut to the bound.
        drop(c);
        let again = DiskCache::open(tmp.path(), 1000).unwrap();
        assert_eq!(again.used(), 1000);
        assert_eq!(on_disk(tmp.path()), 1000);
    }
}
