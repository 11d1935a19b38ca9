//! Verify on send for a serve-through path: the [`BlockSource`] that reads
//! a file's chunks from the object store, verifies each before any byte of
//! it is handed on, and keeps verified chunks in memory (the server's
//! verified-chunk cache, as for a `dir`) and on disk (the path's
//! `cache_dir`).
//!
//! A chunk comes from, in order: memory (bytes hashed as themselves, sent
//! as they are); `cache_dir` (hashed again: the disk is not trusted); the
//! store (a ranged `GET`, hashed). Store reads wait on the network, so they
//! run as tasks on the async threads ([`BlockSource::read_async`]) and never
//! hold a blocking-pool thread for a store's latency or timeout; hashing and
//! the cache's file reads and writes, which are short and CPU- or
//! disk-bound, go to the blocking pool.
//!
//! A chunk from the store that fails its hash is never sent. It is logged
//! and read once more; if it fails again the store's manifest is checked (a
//! republish between two checks looks like this): a new version answers
//! `503` to retry, the same version quarantines the object (`503` with
//! `Distpoint-Integrity` until the object changes or is republished).

use super::cache::{ChunkCache, Verified};
use super::origin::OriginPath;
use super::quarantine::Quarantine;
use super::{Digest, FileManifest};
use crate::body::{BlockSource, BodyError, ReadFuture};
use crate::objstore::{ObjectInfo, StoreErrorKind};
use crate::resolve::FileIdentity;
use crate::vpath::Verify;
use bytes::Bytes;
use prometheus_client::metrics::counter::Counter;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::UNIX_EPOCH;
use tracing::{error, warn};

/// The identity a quarantine record keeps for an object: its size, time and
/// entity tag (as the inode), so that any rewrite of it is a change.
pub fn object_identity(o: &ObjectInfo) -> FileIdentity {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    o.etag.hash(&mut h);
    let t = o
        .last_modified
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    FileIdentity {
        dev: 0,
        ino: h.finish(),
        size: o.size,
        mtime_sec: t.as_secs() as i64,
        mtime_nsec: i64::from(t.subsec_nanos()),
        ctime_sec: t.as_secs() as i64,
        ctime_nsec: i64::from(t.subsec_nanos()),
    }
}

/// One file of a serve-through path, read through its manifest.
pub struct ObjectFile {
    inner: Arc<Inner>,
}

struct Inner {
    origin: Arc<OriginPath>,
    rel: String,
    manifest: Arc<FileManifest>,
    verify: Verify,
    memory: Arc<ChunkCache>,
    quarantine: Arc<Quarantine>,
    /// The object's URL: the quarantine key.
    location: PathBuf,
    /// URL path, for logs.
    label: String,
    /// Chunks hashed and found good before being sent.
    verified: Counter,
    /// Chunks that failed their hash (from the store or the disk cache).
    refused: Counter,
    /// Bytes read from the store.
    store_read: Counter,
}

impl ObjectFile {
    /// Serve `rel` of `origin`, checked against `manifest`.
    pub fn new(
        origin: Arc<OriginPath>,
        rel: String,
        manifest: Arc<FileManifest>,
        verify: Verify,
        memory: Arc<ChunkCache>,
        quarantine: Arc<Quarantine>,
        label: String,
    ) -> ObjectFile {
        let location = PathBuf::from(origin.store().url().join(&rel));
        ObjectFile {
            inner: Arc::new(Inner {
                origin,
                rel,
                manifest,
                verify,
                memory,
                quarantine,
                location,
                label,
                verified: Counter::default(),
                refused: Counter::default(),
                store_read: Counter::default(),
            }),
        }
    }

    /// Count verified and refused chunks, and bytes read from the store,
    /// into these (the server's metrics).
    pub fn counting(mut self, verified: Counter, refused: Counter, store_read: Counter) -> Self {
        if let Some(inner) = Arc::get_mut(&mut self.inner) {
            inner.verified = verified;
            inner.refused = refused;
            inner.store_read = store_read;
        }
        self
    }
}

/// `len` bytes at `offset` of a verified chunk that starts at `start` (a
/// small piece of a large chunk is copied out, so it does not pin the chunk).
fn piece(chunk: Bytes, start: u64, offset: u64, len: usize) -> Bytes {
    let from = (offset - start) as usize;
    if len < chunk.len() / 4 {
        Bytes::copy_from_slice(&chunk[from..from + len])
    } else {
        chunk.slice(from..from + len)
    }
}

/// Hash `bytes` off the async threads.
async fn verified(bytes: Bytes, digest: Digest) -> Result<Option<Verified>, BodyError> {
    tokio::task::spawn_blocking(move || Verified::check(bytes, &digest))
        .await
        .map_err(|e| BodyError::Io(std::io::Error::other(e)))
}

impl Inner {
    fn keep(&self, v: &Verified, from_store: bool) {
        if self.verify == Verify::Cached {
            self.memory.insert(v);
        }
        if from_store {
            // Written in the background: the client need not wait for the disk.
            let (cache, v) = (self.origin.cache().clone(), v.clone());
            tokio::task::spawn_blocking(move || cache.put(v.digest(), v.bytes()));
        }
    }

    async fn read(self: Arc<Self>, offset: u64, len: usize) -> Result<Bytes, BodyError> {
        let m = &self.manifest;
        let chunk = offset / m.chunk_size;
        let (start, end) = m.chunk_range(chunk);
        let digest = *m
            .chunks
            .get(chunk as usize)
            .ok_or(BodyError::Truncated { offset })?;
        let cache = self.origin.cache().clone();
        let on_disk = tokio::task::spawn_blocking(move || cache.get(&digest))
            .await
            .map_err(|e| BodyError::Io(std::io::Error::other(e)))?;
        if let Some(bytes) = on_disk {
            match verified(bytes, digest).await? {
                Some(v) => {
                    self.verified.inc();
                    self.keep(&v, false);
                    return Ok(piece(v.into_bytes(), start, offset, len));
                }
                None => {
                    self.refused.inc();
                    warn!(file = %self.label, chunk, dir = %self.origin.cache().dir().display(),
                        "a cached chunk does not match its hash; dropped, reading it from the store");
                    self.origin.cache().remove(&digest);
                }
            }
        }
        let mut found = None;
        for attempt in 1..=2 {
            let (info, bytes) = self
                .origin
                .store()
                .get_range(&self.rel, start..end, None)
                .await
                .map_err(|e| {
                    let why = match e.kind {
                        StoreErrorKind::NotFound => "the object is missing from the store",
                        _ => "the object store cannot be read",
                    };
                    warn!(file = %self.label, chunk, "{why}: {e}");
                    BodyError::Unavailable(format!("{why}: {e}"))
                })?;
            self.store_read.inc_by(bytes.len() as u64);
            let sized = info.size == m.size && bytes.len() as u64 == end - start;
            if sized {
                if let Some(v) = verified(bytes, digest).await? {
                    self.verified.inc();
                    self.keep(&v, true);
                    return Ok(piece(v.into_bytes(), start, offset, len));
                }
            }
            self.refused.inc();
            error!(
                file = %self.label,
                object = %self.location.display(),
                chunk,
                attempt,
                "integrity failure: a chunk from the object store does not match the published manifest; not sent"
            );
            found = Some(info);
        }
        if self.origin.recheck().await {
            return Err(BodyError::Unavailable(
                "the object store holds a new version of the package".into(),
            ));
        }
        let info = found.expect("both attempts failed");
        error!(file = %self.label, object = %self.location.display(), chunk,
            "object quarantined: transfer cut");
        self.quarantine.add(
            self.location.clone(),
            object_identity(&info),
            m.root,
            Some(chunk),
        );
        Err(BodyError::Integrity { chunk })
    }
}

impl BlockSource for ObjectFile {
    fn read_cached(&self, offset: u64, len: usize) -> Option<Result<Bytes, BodyError>> {
        if self.inner.verify != Verify::Cached {
            return None;
        }
        let m = &self.inner.manifest;
        let chunk = offset / m.chunk_size;
        let bytes = self.inner.memory.get(m.chunks.get(chunk as usize)?)?;
        Some(Ok(piece(bytes, m.chunk_range(chunk).0, offset, len)))
    }

    fn read_async(&self, offset: u64, len: usize) -> Option<ReadFuture> {
        Some(Box::pin(self.inner.clone().read(offset, len)))
    }

    /// Only for callers outside the async body (which uses `read_async`):
    /// runs the same read to its end on the current runtime.
    fn read(&self, offset: u64, len: usize) -> Result<Bytes, BodyError> {
        tokio::runtime::Handle::current().block_on(self.inner.clone().read(offset, len))
    }

    fn block_size(&self) -> u64 {
        self.inner.manifest.chunk_size
    }
}
