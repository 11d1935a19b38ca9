//! Replica paths in runtime state: per path, the version served now and
//! the figures `distpoint status` (and the metrics) read.
//!
//! A replica's content is an immutable version folder, never the path's
//! `dir` itself. A request takes the current [`Version`] once, at its start
//! ([`Replicas::content`]), and uses that one folder for both the package
//! manifest and the file, so a switch can never pair the new file with the
//! old manifest (or the reverse). The switch is one pointer swap; the old
//! version is *retired*, and its folder is removed when the last request
//! that holds it ends (the transfer guard holds it for the whole body).

use crate::vpath::Vpath;
use arc_swap::ArcSwapOption;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::SystemTime;

/// One complete, verified version of a replicated package, in its folder.
#[derive(Debug)]
pub struct Version {
    /// The folder: the package's files and `.distpoint/manifest.json` (+ `.sig`).
    pub dir: PathBuf,
    /// SHA-256 of the manifest bytes (hex).
    pub package_hash: String,
    /// The manifest's release number.
    pub sequence: u64,
    retired: AtomicBool,
}

impl Version {
    /// A version in `dir`.
    pub fn new(dir: PathBuf, package_hash: String, sequence: u64) -> Version {
        Version {
            dir,
            package_hash,
            sequence,
            retired: AtomicBool::new(false),
        }
    }

    /// Mark it replaced: its folder goes when the last holder lets go.
    pub fn retire(&self) {
        self.retired.store(true, Ordering::Release);
    }
}

impl Drop for Version {
    fn drop(&mut self) {
        if self.retired.load(Ordering::Acquire) {
            match std::fs::remove_dir_all(&self.dir) {
                Ok(()) => {
                    tracing::info!(dir = %self.dir.display(), "replica: removed the old version")
                }
                Err(e) => {
                    tracing::warn!(dir = %self.dir.display(), "replica: cannot remove the old version: {e}")
                }
            }
        }
    }
}

/// What `distpoint status` shows of one replica.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ReplicaStatus {
    /// The path's URL prefix.
    pub url: String,
    /// Package hash served now.
    pub package_hash: Option<String>,
    /// Its sequence.
    pub sequence: Option<u64>,
    /// When the last sync started.
    #[serde(serialize_with = "time_opt")]
    pub last_attempt: Option<SystemTime>,
    /// `ok`, `unchanged`, `refused` or `failed`.
    pub last_result: Option<String>,
    /// What the last sync did or why it failed, one line.
    pub last_message: Option<String>,
    /// When a sync last succeeded (switched or found the version current).
    #[serde(serialize_with = "time_opt")]
    pub last_success: Option<SystemTime>,
    /// Bytes fetched over the network in the last sync (documents and content).
    pub bytes_fetched: u64,
    /// Content bytes copied from local disk instead, in the last sync.
    pub bytes_reused: u64,
    /// When the next sync is due.
    #[serde(serialize_with = "time_opt")]
    pub next_attempt: Option<SystemTime>,
    /// A sync is running now.
    pub syncing: bool,
    /// Failures in a row.
    pub failures: u32,
}

fn time_opt<S: serde::Serializer>(t: &Option<SystemTime>, s: S) -> Result<S::Ok, S::Error> {
    match t {
        Some(t) => s.serialize_str(&humantime::format_rfc3339_seconds(*t).to_string()),
        None => s.serialize_none(),
    }
}

/// One replica path's runtime state.
#[derive(Debug)]
pub struct ReplicaSlot {
    current: ArcSwapOption<Version>,
    status: Mutex<ReplicaStatus>,
    /// Bytes fetched over the network by the running sync so far (live).
    pub fetching: Arc<AtomicU64>,
}

impl ReplicaSlot {
    fn new(url: &str) -> ReplicaSlot {
        ReplicaSlot {
            current: ArcSwapOption::empty(),
            status: Mutex::new(ReplicaStatus {
                url: url.to_string(),
                ..Default::default()
            }),
            fetching: Arc::new(AtomicU64::new(0)),
        }
    }

    /// The version served now, if any.
    pub fn current(&self) -> Option<Arc<Version>> {
        self.current.load_full()
    }

    /// Serve `version` from now on; the previous one is retired.
    pub fn switch(&self, version: Arc<Version>) {
        let (hash, seq) = (version.package_hash.clone(), version.sequence);
        if let Some(old) = self.current.swap(Some(version)) {
            old.retire();
        }
        self.update(|s| {
            s.package_hash = Some(hash);
            s.sequence = Some(seq);
        });
    }

    /// A copy of the status.
    pub fn status(&self) -> ReplicaStatus {
        crate::sync::lock(&self.status).clone()
    }

    /// Change the status.
    pub fn update(&self, f: impl FnOnce(&mut ReplicaStatus)) {
        f(&mut crate::sync::lock(&self.status));
    }
}

/// A request's view of a path's content: the path as configured, or (for
/// a replica) the same path pointing at the version it holds.
#[derive(Debug)]
pub struct Served {
    /// The path to open files and the package beneath.
    pub vpath: Arc<Vpath>,
    /// The version held for the request's lifetime (replicas only).
    pub hold: Option<Arc<Version>>,
}

/// Every replica path of the running server.
#[derive(Debug, Default)]
pub struct Replicas {
    slots: RwLock<BTreeMap<String, Arc<ReplicaSlot>>>,
    any: AtomicBool,
}

impl Replicas {
    /// The slot of the replica at `url`, if it is one.
    pub fn slot(&self, url: &str) -> Option<Arc<ReplicaSlot>> {
        if !self.any.load(Ordering::Acquire) {
            return None;
        }
        let slots = self.slots.read().unwrap_or_else(|p| p.into_inner());
        slots.get(url).cloned()
    }

    /// The slot of `url`, made if new.
    pub fn ensure(&self, url: &str) -> Arc<ReplicaSlot> {
        let mut slots = self.slots.write().unwrap_or_else(|p| p.into_inner());
        let slot = slots
            .entry(url.to_string())
            .or_insert_with(|| Arc::new(ReplicaSlot::new(url)))
            .clone();
        self.any.store(true, Ordering::Release);
        slot
    }

    /// Forget replicas whose URL is not in `keep` (removed from the config).
    pub fn retain(&self, keep: &BTreeSet<String>) {
        let mut slots = self.slots.write().unwrap_or_else(|p| p.into_inner());
        slots.retain(|url, _| keep.contains(url));
        self.any.store(!slots.is_empty(), Ordering::Release);
    }

    /// Every replica's status, by URL.
    pub fn statuses(&self) -> Vec<ReplicaStatus> {
        let slots = self.slots.read().unwrap_or_else(|p| p.into_inner());
        slots.values().map(|s| s.status()).collect()
    }

    /// What a request routed to `vpath` reads: for a replica with a
    /// version, that version's folder (taken once, held by the caller).
    pub fn content(&self, vpath: &Arc<Vpath>) -> Served {
        let version = self.slot(&vpath.url).and_then(|s| s.current());
        match version {
            Some(v) => Served {
                vpath: Arc::new(Vpath {
                    dir: v.dir.clone(),
                    ..(**vpath).clone()
                }),
                hold: Some(v),
            },
            None => Served {
                vpath: vpath.clone(),
                hold: None,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_retired_version_is_removed_when_its_last_holder_lets_go() {
        let tmp = tempfile::tempdir().unwrap();
        let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
        std::fs::create_dir(&a).unwrap();
        std::fs::create_dir(&b).unwrap();
        let replicas = Replicas::default();
        let slot = replicas.ensure("/r");
        slot.switch(Arc::new(Version::new(a.clone(), "aa".into(), 1)));
        let held = slot.current().unwrap();
        slot.switch(Arc::new(Version::new(b.clone(), "bb".into(), 2)));
        assert!(a.exists(), "a request still holds the old version");
        drop(held);
        assert!(!a.exists() && b.exists());
        assert_eq!(slot.status().sequence, Some(2));
        // The served version stays when the state goes away (shutdown).
        drop(replicas);
        drop(slot);
        assert!(b.exists());
    }
}
