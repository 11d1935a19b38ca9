//! `integrity = "auto"`: manifests the server computes itself, keyed by file
//! identity and persisted under `state_dir/manifests/`.
//!
//! A file is hashed by whoever asks first: the background hasher
//! (`live::prehash`, at start and on change) or a request, which then waits;
//! concurrent askers for the same version share one hashing job. The
//! persisted manifests make hashing a one-time cost per file version, across
//! restarts.

use super::hashing::compute_file;
use super::{hex, sha256, FileManifest};
use crate::resolve::FileIdentity;
use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::OnceCell;
use tracing::{info, warn};

/// Why no manifest could be had for a file version.
#[derive(Debug)]
pub enum StoreError {
    /// Reading the file failed.
    Io(std::io::Error),
    /// The file changed while it was being hashed; the caller should retry.
    Changed,
}

impl std::fmt::Display for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StoreError::Io(e) => write!(f, "cannot hash file: {e}"),
            StoreError::Changed => f.write_str("file changed while it was being hashed"),
        }
    }
}

impl std::error::Error for StoreError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            StoreError::Io(e) => Some(e),
            StoreError::Changed => None,
        }
    }
}

/// A file changed this recently may change again without its identity
/// moving (timestamps are coarse: "racy git"), so its manifest is kept in
/// memory only, never persisted under its identity.
pub const RACY_WINDOW: Duration = Duration::from_secs(2);

/// The time of day, injectable so that tests need not wait out [`RACY_WINDOW`].
pub type Clock = fn() -> SystemTime;

/// Whether `id` changed within [`RACY_WINDOW`] of `now` (or in its future:
/// a clock stepped back).
pub fn is_racy(id: &FileIdentity, now: SystemTime) -> bool {
    let now = now.duration_since(UNIX_EPOCH).unwrap_or_default();
    let ctime = Duration::new(
        u64::try_from(id.ctime_sec).unwrap_or(0),
        u32::try_from(id.ctime_nsec.clamp(0, 999_999_999)).unwrap_or(0),
    );
    !matches!(now.checked_sub(ctime), Some(age) if age >= RACY_WINDOW)
}

type Cell = Arc<OnceCell<Arc<FileManifest>>>;
/// Files remembered in memory at most (a bound on memory, not correctness).
const MAX_FILES: usize = 100_000;
/// (device, inode, chunk size).
type SlotKey = (u64, u64, u64);

/// Manifests of auto-mode files.
pub struct AutoStore {
    dir: PathBuf,
    clock: Clock,
    /// (device, inode, chunk size) → the latest version seen and its manifest.
    slots: Mutex<HashMap<SlotKey, (FileIdentity, Cell)>>,
    reused: AtomicU64,
    hashed: AtomicU64,
}

/// File name of a persisted manifest: a digest of identity and chunk size.
fn key_of(id: &FileIdentity, chunk_size: u64) -> String {
    let mut b = Vec::with_capacity(64);
    for v in [id.dev, id.ino, id.size, chunk_size] {
        b.extend_from_slice(&v.to_le_bytes());
    }
    for v in [id.mtime_sec, id.mtime_nsec, id.ctime_sec, id.ctime_nsec] {
        b.extend_from_slice(&v.to_le_bytes());
    }
    hex(&sha256(&b)[..16])
}

impl AutoStore {
    /// A store persisting under `state_dir/manifests`.
    pub fn new(state_dir: &Path) -> Self {
        AutoStore {
            dir: state_dir.join("manifests"),
            clock: SystemTime::now,
            slots: Mutex::new(HashMap::new()),
            reused: AtomicU64::new(0),
            hashed: AtomicU64::new(0),
        }
    }

    /// The same store, telling the time with `clock`.
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// Manifests taken from `state_dir` instead of hashing (since start).
    pub fn reused(&self) -> u64 {
        self.reused.load(Ordering::Relaxed)
    }

    /// Files hashed (since start).
    pub fn hashed(&self) -> u64 {
        self.hashed.load(Ordering::Relaxed)
    }

    /// The manifest of `file`, which had `identity` when opened. Waits for
    /// the hashing if this version is new.
    pub async fn get(
        self: &Arc<Self>,
        file: &Arc<File>,
        identity: FileIdentity,
        chunk_size: u64,
        label: &str,
    ) -> Result<Arc<FileManifest>, StoreError> {
        let cell = {
            let mut slots = crate::sync::lock(&self.slots);
            if slots.len() >= MAX_FILES {
                // Deleted files leave entries behind; start over rather than grow.
                slots.clear();
            }
            let slot = slots
                .entry((identity.dev, identity.ino, chunk_size))
                .or_insert_with(|| (identity, Cell::default()));
            if slot.0 != identity {
                // A new version replaces the old one: memory stays one per file.
                *slot = (identity, Cell::default());
            }
            slot.1.clone()
        };
        let m = cell
            .get_or_try_init(|| {
                let (this, file, label) = (self.clone(), file.clone(), label.to_string());
                async move {
                    tokio::task::spawn_blocking(move || {
                        this.load_or_compute(&file, identity, chunk_size, &label)
                    })
                    .await
                    .map_err(|e| StoreError::Io(std::io::Error::other(e)))?
                }
            })
            .await?;
        Ok(m.clone())
    }

    fn load_or_compute(
        &self,
        file: &File,
        identity: FileIdentity,
        chunk_size: u64,
        label: &str,
    ) -> Result<Arc<FileManifest>, StoreError> {
        let path = self
            .dir
            .join(format!("{}.json", key_of(&identity, chunk_size)));
        if let Ok(text) = std::fs::read_to_string(&path) {
            match FileManifest::from_json(&text) {
                Ok(m) if m.size == identity.size && m.chunk_size == chunk_size => {
                    self.reused.fetch_add(1, Ordering::Relaxed);
                    info!(file = label, "reused persisted manifest");
                    return Ok(Arc::new(m));
                }
                _ => warn!(file = label, "ignoring an invalid persisted manifest"),
            }
        }
        let started = Instant::now();
        let m = compute_file(file, chunk_size).map_err(StoreError::Io)?;
        // Bytes read while the file changed may belong to no single version.
        let after = FileIdentity::of(file).map_err(StoreError::Io)?;
        if after != identity || m.size != identity.size {
            return Err(StoreError::Changed);
        }
        self.hashed.fetch_add(1, Ordering::Relaxed);
        info!(
            file = label,
            bytes = m.size,
            ms = started.elapsed().as_millis() as u64,
            "hashed file"
        );
        // A file changed within the last clock ticks could change again
        // without its identity moving: keep that manifest in memory only
        // (every send is still hashed against it), never on disk.
        if !is_racy(&identity, (self.clock)()) {
            if let Err(e) = self.persist(&path, &m) {
                warn!(file = label, "cannot persist manifest: {e}");
            }
        }
        Ok(Arc::new(m))
    }

    fn persist(&self, path: &Path, m: &FileManifest) -> std::io::Result<()> {
        std::fs::create_dir_all(&self.dir)?;
        let tmp = path.with_extension(format!("tmp{}", std::process::id()));
        std::fs::write(&tmp, m.to_json())?;
        std::fs::rename(&tmp, path)
    }

    /// Drop the manifest of `identity` (its content did not match it).
    pub fn invalidate(&self, identity: &FileIdentity, chunk_size: u64) {
        let mut slots = crate::sync::lock(&self.slots);
        let key = (identity.dev, identity.ino, chunk_size);
        if slots.get(&key).is_some_and(|s| s.0 == *identity) {
            slots.remove(&key);
        }
        let _ = std::fs::remove_file(
            self.dir
                .join(format!("{}.json", key_of(identity, chunk_size))),
        );
    }
}
