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
//!
//! Every quarantine `503` carries [`HEADER`] (`Distpoint-Integrity:
//! quarantined; chunk=K`) naming the chunk that failed, so that a client
//! with several requests in flight can name the bad chunk exactly instead of
//! guessing from which of its requests were refused.

use super::{hex, parse_digest, Digest};
use crate::audit::{Audit, Event};
use crate::resolve::FileIdentity;
use prometheus_client::metrics::gauge::Gauge;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use tracing::warn;

/// The response header that marks a quarantine `503` (lower case, as the
/// `http` crate wants header names).
pub const HEADER: &str = "distpoint-integrity";

/// The value of [`HEADER`]: `quarantined; chunk=K`, or just `quarantined`
/// when no single chunk is known to be at fault (the file's size is wrong).
pub fn header_value(chunk: Option<u64>) -> http::HeaderValue {
    let text = match chunk {
        Some(k) => format!("quarantined; chunk={k}"),
        None => "quarantined".to_string(),
    };
    http::HeaderValue::try_from(text).expect("ASCII digits and letters")
}

/// What a [`HEADER`] says: the file is quarantined, and which chunk failed
/// if the server knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Notice {
    /// The chunk that failed the server's check, if one is known.
    pub chunk: Option<u64>,
}

/// Parse [`HEADER`] from a response. `None` when it is absent or does not
/// say `quarantined` (a server that predates the header, or something else
/// entirely); parameters other than `chunk` are ignored, so that the
/// format can grow.
pub fn parse_header(headers: &http::HeaderMap) -> Option<Notice> {
    let value = headers.get(HEADER)?.to_str().ok()?;
    let mut parts = value.split(';').map(str::trim);
    if !parts.next()?.eq_ignore_ascii_case("quarantined") {
        return None;
    }
    let chunk = parts
        .filter_map(|p| p.split_once('='))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("chunk"))
        .and_then(|(_, v)| v.trim().parse::<u64>().ok());
    Some(Notice { chunk })
}

/// One quarantined file: what it looked like when it failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Record {
    /// Identity of the file when the mismatch was found.
    pub identity: FileIdentity,
    /// Root of the manifest it failed against.
    pub root: Digest,
    /// The lowest chunk found not to match, if one is known (`None` for a
    /// file whose size alone is wrong, and for records written before the
    /// index was kept).
    pub chunk: Option<u64>,
}

/// The quarantine set, keyed by file path.
#[derive(Default)]
pub struct Quarantine {
    files: Mutex<HashMap<PathBuf, Record>>,
    /// Where the set is persisted (`None`: memory only).
    file: Option<PathBuf>,
    /// Quarantines and releases are audit events.
    audit: Audit,
    /// The number of files quarantined now.
    count: Gauge,
}

/// One persisted record.
#[derive(Serialize, Deserialize)]
struct Saved {
    path: String,
    id: [i64; 7],
    root: String,
    /// Absent in records written by older versions, hence the default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    chunk: Option<u64>,
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
            chunk: r.chunk,
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
        Some((
            PathBuf::from(&self.path),
            Record {
                identity,
                root,
                chunk: self.chunk,
            },
        ))
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
            audit: Audit::default(),
            count: Gauge::default(),
        }
    }

    /// The same set, writing quarantines and releases to `audit` and keeping
    /// `count` at the number of files quarantined.
    pub fn observed(mut self, audit: Audit, count: Gauge) -> Self {
        count.set(crate::sync::lock(&self.files).len() as i64);
        self.audit = audit;
        self.count = count;
        self
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

    /// Quarantine `path`, found as `identity`, failing `root` at `chunk`
    /// (`None`: no particular chunk known). Returns the chunk now recorded.
    ///
    /// While the file stays as it was found, the lowest bad chunk seen is
    /// kept: concurrent transfers may each find a different bad chunk, and
    /// every `503` should name the same one, the first.
    pub fn add(
        &self,
        path: PathBuf,
        identity: FileIdentity,
        root: Digest,
        chunk: Option<u64>,
    ) -> Option<u64> {
        let mut files = crate::sync::lock(&self.files);
        let old = files.get(&path).copied();
        let chunk = match old {
            Some(o) if o.identity == identity && o.root == root => match (o.chunk, chunk) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            },
            _ => chunk,
        };
        let record = Record {
            identity,
            root,
            chunk,
        };
        if old != Some(record) {
            let new_finding = !matches!(old, Some(o) if o.identity == identity && o.root == root);
            if new_finding {
                self.audit.record(Event::Quarantined {
                    file: path.display().to_string(),
                    chunk,
                    reason: match chunk {
                        Some(k) => format!("chunk {k} does not match the published manifest"),
                        None => "the file does not match the published manifest".into(),
                    },
                });
            }
            files.insert(path, record);
            self.count.set(files.len() as i64);
            self.save(&files);
        }
        chunk
    }

    /// The record of `path`, if quarantined.
    pub fn get(&self, path: &Path) -> Option<Record> {
        crate::sync::lock(&self.files).get(path).copied()
    }

    /// Lift the quarantine of `path`.
    pub fn remove(&self, path: &Path) -> bool {
        let mut files = crate::sync::lock(&self.files);
        let removed = files.remove(path).is_some();
        if removed {
            self.audit.record(Event::QuarantineReleased {
                file: path.display().to_string(),
            });
            self.count.set(files.len() as i64);
            self.save(&files);
        }
        removed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identity(size: u64) -> FileIdentity {
        FileIdentity {
            dev: 1,
            ino: 2,
            size,
            mtime_sec: 3,
            mtime_nsec: 4,
            ctime_sec: 5,
            ctime_nsec: 6,
        }
    }

    #[test]
    fn header_round_trips_and_tolerates_other_forms() {
        let mut h = http::HeaderMap::new();
        assert_eq!(parse_header(&h), None);
        h.insert(HEADER, header_value(Some(17)));
        assert_eq!(h[HEADER], "quarantined; chunk=17");
        assert_eq!(parse_header(&h), Some(Notice { chunk: Some(17) }));
        h.insert(HEADER, header_value(None));
        assert_eq!(parse_header(&h), Some(Notice { chunk: None }));
        h.insert(HEADER, "Quarantined ; x=1; CHUNK = 4".parse().unwrap());
        assert_eq!(parse_header(&h), Some(Notice { chunk: Some(4) }));
        h.insert(HEADER, "quarantined; chunk=-1".parse().unwrap());
        assert_eq!(parse_header(&h), Some(Notice { chunk: None }));
        h.insert(HEADER, "ok; chunk=4".parse().unwrap());
        assert_eq!(parse_header(&h), None);
    }

    #[test]
    fn the_lowest_chunk_is_kept_and_persisted_and_old_records_load() {
        let dir = tempfile::tempdir().unwrap();
        let q = Quarantine::load(dir.path());
        let p = PathBuf::from("/c/a.bin");
        let root = [7u8; 32];
        assert_eq!(q.add(p.clone(), identity(10), root, Some(5)), Some(5));
        assert_eq!(q.add(p.clone(), identity(10), root, Some(3)), Some(3));
        assert_eq!(q.add(p.clone(), identity(10), root, Some(9)), Some(3));
        assert_eq!(q.add(p.clone(), identity(10), root, None), Some(3));
        let again = Quarantine::load(dir.path());
        assert_eq!(again.get(&p).unwrap().chunk, Some(3), "persisted");
        // A new identity is a new finding: its own chunk, even if higher.
        assert_eq!(q.add(p.clone(), identity(11), root, Some(8)), Some(8));

        // A record from before the index was kept still loads, without one.
        let old = format!(
            r#"[{{"path":"/c/b.bin","id":[1,2,10,3,4,5,6],"root":"{}"}}]"#,
            hex(&root)
        );
        std::fs::write(dir.path().join("quarantine.json"), old).unwrap();
        let r = Quarantine::load(dir.path())
            .get(Path::new("/c/b.bin"))
            .unwrap();
        assert_eq!((r.identity, r.chunk), (identity(10), None));
    }
}
