//! Resume state of a download: which chunks of the work file have been
//! verified, for which version of the file (its manifest root). Kept in a
//! small JSON file beside the work file and replaced atomically, so a crash
//! leaves either the old or the new list. A rerun does not trust the list
//! blindly: it re-hashes those chunks from disk ([`recheck`]: a crash may
//! have lost writes that the list mentions). No source's validator is kept:
//! every chunk is checked against the manifest, whoever serves it.

use super::sink::Sink;
use crate::integrity::{chunker, hex, FileManifest};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The files a download of `path` works in.
#[derive(Debug, Clone)]
pub struct WorkFiles {
    /// The final file, written only by the atomic rename.
    pub path: PathBuf,
    /// Verified chunks in progress: `PATH.part`.
    pub part: PathBuf,
    /// The list of verified chunks: `PATH.part.state`.
    pub state: PathBuf,
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

impl WorkFiles {
    /// The work files of a download to `path`.
    pub fn for_path(path: &Path) -> WorkFiles {
        WorkFiles {
            path: path.to_path_buf(),
            part: with_suffix(path, ".part"),
            state: with_suffix(path, ".part.state"),
        }
    }
}

/// What the state file records.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResumeState {
    /// Format version: 1.
    pub version: u32,
    /// The URL downloaded (informational).
    pub url: String,
    /// File size per the manifest.
    pub size: u64,
    /// Chunk size per the manifest.
    pub chunk_size: u64,
    /// Manifest root (hex): the version of the file these chunks belong to.
    pub root: String,
    /// Verified chunks as `[start, end)` runs of indices.
    pub verified: Vec<(u64, u64)>,
}

impl ResumeState {
    /// A fresh state for this manifest.
    pub fn new(url: &str, m: &FileManifest) -> ResumeState {
        ResumeState {
            version: 1,
            url: url.to_string(),
            size: m.size,
            chunk_size: m.chunk_size,
            root: hex(&m.root),
            verified: Vec::new(),
        }
    }

    /// True if this state describes the same version of the file as `m`.
    pub fn matches(&self, m: &FileManifest) -> bool {
        self.version == 1
            && self.size == m.size
            && self.chunk_size == m.chunk_size
            && self.root == hex(&m.root)
    }

    /// Verified chunk indices (below `n`, the manifest's count).
    pub fn chunks(&self, n: u64) -> BTreeSet<u64> {
        self.verified
            .iter()
            .flat_map(|&(s, e)| s..e.min(n))
            .collect()
    }

    /// Record a set of verified chunks as runs.
    pub fn set_chunks(&mut self, chunks: &BTreeSet<u64>) {
        let mut runs: Vec<(u64, u64)> = Vec::new();
        for &c in chunks {
            match runs.last_mut() {
                Some((_, e)) if *e == c => *e += 1,
                _ => runs.push((c, c + 1)),
            }
        }
        self.verified = runs;
    }

    /// Record verified chunks given as runs.
    pub fn set_runs(&mut self, runs: &[(u64, u64)]) {
        self.verified = runs.to_vec();
    }

    /// Read a state file; `None` when absent or unreadable (start afresh).
    pub fn load(path: &Path) -> Option<ResumeState> {
        let text = std::fs::read_to_string(path).ok()?;
        serde_json::from_str(&text).ok()
    }

    /// Write the state atomically (temporary file, then rename).
    pub fn save(&self, path: &Path) -> std::io::Result<()> {
        let tmp = with_suffix(path, ".tmp");
        let text = serde_json::to_string(self).map_err(std::io::Error::other)?;
        std::fs::write(&tmp, text)?;
        std::fs::rename(&tmp, path)
    }
}

/// Re-hash from the sink the chunks a previous run claimed; keep those
/// that match the manifest.
pub async fn recheck(
    sink: Arc<dyn Sink>,
    m: Arc<FileManifest>,
    claimed: BTreeSet<u64>,
) -> BTreeSet<u64> {
    if claimed.is_empty() {
        return claimed;
    }
    tokio::task::spawn_blocking(move || {
        claimed
            .into_iter()
            .filter(|&c| {
                let (s, e) = m.chunk_range(c);
                let want = &m.chunks[c as usize];
                sink.read_at(s, (e - s) as usize)
                    .is_ok_and(|data| chunker::chunk_matches(want, &data))
            })
            .collect()
    })
    .await
    // A failed re-check only means fetching those chunks again.
    .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunk_runs_round_trip_through_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let files = WorkFiles::for_path(&dir.path().join("x.bin"));
        assert_eq!(files.part, dir.path().join("x.bin.part"));
        assert_eq!(files.state, dir.path().join("x.bin.part.state"));
        let m = FileManifest::compute(&[9u8; 5000][..], 1000).unwrap();
        let mut st = ResumeState::new("https://h/x.bin", &m);
        let set: BTreeSet<u64> = [0, 1, 2, 4].into_iter().collect();
        st.set_chunks(&set);
        assert_eq!(st.verified, vec![(0, 3), (4, 5)]);
        st.save(&files.state).unwrap();
        let back = ResumeState::load(&files.state).unwrap();
        assert_eq!(back, st);
        assert!(back.matches(&m));
        assert_eq!(back.chunks(5), set);
        assert_eq!(back.chunks(2), [0, 1].into_iter().collect());
        let other = FileManifest::compute(&[8u8; 5000][..], 1000).unwrap();
        assert!(!back.matches(&other));
        std::fs::write(&files.state, "garbage").unwrap();
        assert!(ResumeState::load(&files.state).is_none());
    }
}
