//! `Last-Modified` that never goes backwards for a path.
//!
//! BITS resumes a download with `If-Unmodified-Since: <the Last-Modified it
//! saw>`. If a file is replaced by one with an *older* mtime (a restore from
//! backup, a copy that keeps timestamps, a rollback), the file's own mtime
//! would pass that check and the job would resume into a mix of two
//! versions. So the `Last-Modified` of a path is its mtime, unless the path
//! served other content before at that time or later: then it is one second
//! after the previous one. The record (path → content root and the
//! `Last-Modified` given to it) persists in `state_dir/last_modified.jsonl`,
//! so a restart cannot send it backwards either. Identical content keeps
//! its `Last-Modified`, whatever its mtime does.
//!
//! The file is append-only (one JSON line per new record, the last line for
//! a path wins), so the first request for each of many files costs one small
//! write, not a rewrite of the whole record; it is compacted at start.

use super::Digest;
use crate::integrity::hex;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tracing::warn;

#[derive(Serialize, Deserialize)]
struct Saved {
    path: String,
    root: String,
    secs: u64,
}

/// The `Last-Modified` given to each path's current content.
pub struct LastModified {
    seen: Mutex<HashMap<PathBuf, (Digest, u64)>>,
    file: Option<PathBuf>,
}

fn secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

impl LastModified {
    /// The record persisted under `state_dir` (empty if none), compacted.
    pub fn load(state_dir: &Path) -> Self {
        let file = state_dir.join("last_modified.jsonl");
        let mut seen = HashMap::new();
        let mut lines = 0usize;
        if let Ok(text) = std::fs::read_to_string(&file) {
            for line in text.lines().filter(|l| !l.trim().is_empty()) {
                lines += 1;
                match serde_json::from_str::<Saved>(line) {
                    Ok(s) => {
                        if let Some(root) = super::parse_digest(&s.root) {
                            seen.insert(PathBuf::from(s.path), (root, s.secs));
                        }
                    }
                    Err(e) => {
                        warn!(file = %file.display(), "ignoring a bad Last-Modified record: {e}")
                    }
                }
            }
        }
        let this = LastModified {
            seen: Mutex::new(seen),
            file: Some(file),
        };
        if lines > crate::sync::lock(&this.seen).len() {
            this.compact();
        }
        this
    }

    /// The `Last-Modified` of `path` holding content `root` with `mtime`.
    pub fn of(&self, path: &Path, root: &Digest, mtime: SystemTime) -> SystemTime {
        let mut seen = crate::sync::lock(&self.seen);
        let m = secs(mtime);
        let given = match seen.get(path) {
            Some((r, s)) if r == root => return UNIX_EPOCH + Duration::from_secs(*s),
            Some((_, before)) if *before >= m => before + 1,
            _ => m,
        };
        seen.insert(path.to_path_buf(), (*root, given));
        drop(seen);
        self.append(path, root, given);
        UNIX_EPOCH + Duration::from_secs(given)
    }

    fn line(path: &Path, root: &Digest, secs: u64) -> Option<String> {
        let saved = Saved {
            path: path.to_str()?.to_string(),
            root: hex(root),
            secs,
        };
        serde_json::to_string(&saved).ok().map(|l| l + "\n")
    }

    fn append(&self, path: &Path, root: &Digest, secs: u64) {
        use std::io::Write;
        let (Some(file), Some(line)) = (&self.file, Self::line(path, root, secs)) else {
            return;
        };
        let written = file
            .parent()
            .map_or(Ok(()), std::fs::create_dir_all)
            .and_then(|()| {
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(file)
            })
            .and_then(|mut f| f.write_all(line.as_bytes()));
        if let Err(e) = written {
            warn!(file = %file.display(), "cannot persist the Last-Modified record: {e}");
        }
    }

    fn compact(&self) {
        let Some(file) = &self.file else { return };
        let seen = crate::sync::lock(&self.seen);
        let text: String = seen
            .iter()
            .filter_map(|(p, (r, s))| Self::line(p, r, *s))
            .collect();
        let tmp = file.with_extension("tmp");
        let written = std::fs::write(&tmp, text).and_then(|()| std::fs::rename(&tmp, file));
        if let Err(e) = written {
            warn!(file = %file.display(), "cannot compact the Last-Modified record: {e}");
        }
    }
}

impl Default for LastModified {
    /// A record kept in memory only.
    fn default() -> Self {
        LastModified {
            seen: Mutex::default(),
            file: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(s)
    }

    #[test]
    fn never_backwards_for_new_content_and_stable_for_the_same() {
        let dir = tempfile::tempdir().unwrap();
        let lm = LastModified::load(dir.path());
        let p = Path::new("/srv/pkg/a.bin");
        assert_eq!(lm.of(p, &[1; 32], t(1000)), t(1000));
        // Same content, mtime touched either way: unchanged.
        assert_eq!(lm.of(p, &[1; 32], t(900)), t(1000));
        assert_eq!(lm.of(p, &[1; 32], t(5000)), t(1000));
        // Older content restored with its old mtime: after the last one.
        assert_eq!(lm.of(p, &[2; 32], t(500)), t(1001));
        // Newer content: its own mtime.
        assert_eq!(lm.of(p, &[3; 32], t(2000)), t(2000));
        // Other paths are independent.
        assert_eq!(lm.of(Path::new("/srv/pkg/b.bin"), &[2; 32], t(500)), t(500));
        // A restart keeps the record.
        let again = LastModified::load(dir.path());
        assert_eq!(again.of(p, &[1; 32], t(1000)), t(2001));
    }
}
