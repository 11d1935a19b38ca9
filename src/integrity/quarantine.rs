//! Published files that failed verification.
//!
//! A quarantined file answers `503` while it stays exactly as it was found
//! (same identity, same published manifest). Any change to the file (new
//! ctime, so also a restore that puts the old mtime back) or a republish
//! makes the next request re-hash the whole file against the manifest: a
//! match lifts the quarantine, a mismatch renews it. Re-checking only on an
//! identity change means a quarantined file costs nothing while it stays
//! tampered, however often it is asked for.
//!
//! Records are kept in `state_dir/quarantine.json` so that a restart does
//! not serve the intact chunks of a known-bad file again. (Without the
//! record, verification on send would still refuse the bad chunk itself.)

use super::{hex, parse_digest, Digest};
use crate::resolve::FileIdentity;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use tracing::warn;

/// One quarantined file: what it looked like when it failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Record {
    /// Identity of the file when the mismatch was found.
    pub identity: FileIdentity,
    /// Root of the manifest it failed against.
    pub root: Digest,
}

/// The quarantine set, keyed by file path.
#[derive(Default)]
pub struct Quarantine {
    files: Mutex<HashMap<PathBuf, Record>>,
    /// Where the set is persisted (`None`: memory only).
    file: Option<PathBuf>,
}

/// One persisted record.
#[derive(Serialize, Deserialize)]
struct Saved {
    path: String,
    id: [i64; 7],
    root: String,
}

impl Saved {
    fn of(path: &Path, r: &Record) -> Option<Saved> {
        let i = &r.identity;
        Some(Saved {
            path: path.to_str()?.to_string(),
            id: [
                i.dev as i64,
                i.ino as i64,
                i.size as i64,
                i.mtime_sec,
                i.mtime_nsec,
                i.ctime_sec,
                i.ctime_nsec,
            ],
            root: hex(&r.root),
        })
    }

    fn record(&self) -> Option<(PathBuf, Record)> {
        let [dev, ino, size, mtime_sec, mtime_nsec, ctime_sec, ctime_nsec] = self.id;
        let identity = FileIdentity {
            dev: dev as u64,
            ino: ino as u64,
            size: size as u64,
            mtime_sec,
            mtime_nsec,
            ctime_sec,
            ctime_nsec,
        };
        let root = parse_digest(&self.root)?;
        Some((PathBuf::from(&self.path), Record { identity, root }))
    }
}

impl Quarantine {
    /// The set persisted in `state_dir/quarantine.json` (empty if none).
    pub fn load(state_dir: &Path) -> Self {
        let file = state_dir.join("quarantine.json");
        let saved: Vec<Saved> = match std::fs::read(&file) {
            Ok(b) => serde_json::from_slice(&b).unwrap_or_else(|e| {
                warn!(file = %file.display(), "ignoring an unreadable quarantine record: {e}");
                Vec::new()
            }),
            Err(_) => Vec::new(),
        };
        Quarantine {
            files: Mutex::new(saved.iter().filter_map(Saved::record).collect()),
            file: Some(file),
        }
    }

    fn save(&self, files: &HashMap<PathBuf, Record>) {
        let Some(file) = &self.file else { return };
        let saved: Vec<Saved> = files.iter().filter_map(|(p, r)| Saved::of(p, r)).collect();
        let json = serde_json::to_vec(&saved).expect("records serialize");
        let tmp = file.with_extension("tmp");
        let written = file
            .parent()
            .map_or(Ok(()), std::fs::create_dir_all)
            .and_then(|()| std::fs::write(&tmp, json))
            .and_then(|()| std::fs::rename(&tmp, file));
        if let Err(e) = written {
            warn!(file = %file.display(), "cannot persist the quarantine record: {e}");
        }
    }

    /// Quarantine `path`, found as `identity`, failing `root`.
    pub fn add(&self, path: PathBuf, identity: FileIdentity, root: Digest) {
        let mut files = self.files.lock().expect("quarantine lock");
        let record = Record { identity, root };
        if files.insert(path, record) != Some(record) {
            self.save(&files);
        }
    }

    /// The record of `path`, if quarantined.
    pub fn get(&self, path: &Path) -> Option<Record> {
        self.files
            .lock()
            .expect("quarantine lock")
            .get(path)
            .copied()
    }

    /// Lift the quarantine of `path`.
    pub fn remove(&self, path: &Path) -> bool {
        let mut files = self.files.lock().expect("quarantine lock");
        let removed = files.remove(path).is_some();
        if removed {
            self.save(&files);
        }
        removed
    }
}
