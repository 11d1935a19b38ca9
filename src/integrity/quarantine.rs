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
//! Records live in memory: after a restart, verification on send finds the
//! same mismatch again before any byte of the bad chunk is sent.

use super::Digest;
use crate::resolve::FileIdentity;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

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
}

impl Quarantine {
    /// Quarantine `path`, found as `identity`, failing `root`.
    pub fn add(&self, path: PathBuf, identity: FileIdentity, root: Digest) {
        self.files
            .lock()
            .expect("quarantine lock")
            .insert(path, Record { identity, root });
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
        self.files
            .lock()
            .expect("quarantine lock")
            .remove(path)
            .is_some()
    }
}
