//! Rollback and freeze for `distpoint fetch --package`: a package manifest
//! that has expired, that is older than `--min-sequence`, or that is older
//! than (or as old as, with other bytes) what an earlier run wrote into the
//! same folder is refused before any file is requested.
//!
//! The highest sequence seen per package prefix is kept in
//! `DIR/.distpoint/sequences.json`, written (atomically) only after every
//! file of that release was verified, so a rerun into the same folder cannot
//! be rolled back by a compromised server or mirror.

use crate::integrity::PackageManifest;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// The folder inside an output folder that belongs to the client.
pub const STATE_DIR: &str = ".distpoint";

/// The file, inside [`STATE_DIR`], that remembers the releases taken.
const FILE: &str = "sequences.json";

/// What was taken last for one package prefix.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Taken {
    /// The manifest's sequence.
    pub sequence: u64,
    /// SHA-256 of its bytes (hex).
    pub package_hash: String,
}

/// Why a manifest is refused (an integrity failure: exit 2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// `expires` (plus the clock-skew allowance) is past.
    Expired(String),
    /// `expires` is not RFC 3339.
    BadExpiry(String),
    /// Lower than `--min-sequence` or than a release taken before.
    Lower {
        /// The manifest's sequence.
        got: u64,
        /// The lowest sequence accepted.
        floor: u64,
        /// Where the floor comes from.
        why: &'static str,
    },
    /// The sequence taken before, with other bytes.
    Replaced(u64, String),
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::Expired(at) => write!(f, "the package manifest expired at {at}"),
            Refusal::BadExpiry(e) => write!(f, "the package manifest's expires is invalid: {e}"),
            Refusal::Lower { got, floor, why } => {
                write!(
                    f,
                    "sequence {got} is lower than {floor} ({why}): a rollback"
                )
            }
            Refusal::Replaced(seq, hash) => write!(
                f,
                "sequence {seq} was taken before as package {hash}, and these bytes differ"
            ),
        }
    }
}

impl std::error::Error for Refusal {}

/// The releases remembered in one output folder.
#[derive(Debug, Default)]
pub struct Memory {
    path: PathBuf,
    taken: BTreeMap<String, Taken>,
}

impl Memory {
    /// Read `output/.distpoint/sequences.json` (empty when absent). A file
    /// that does not parse is an error: silently forgetting would re-open
    /// the rollback it exists to close.
    pub fn load(output: &Path) -> std::io::Result<Memory> {
        let path = output.join(STATE_DIR).join(FILE);
        let taken = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
                std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("{}: {e}", path.display()),
                )
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
            Err(e) => return Err(e),
        };
        Ok(Memory { path, taken })
    }

    /// What was taken for `prefix`, if anything.
    pub fn get(&self, prefix: &str) -> Option<&Taken> {
        self.taken.get(prefix)
    }

    /// Check `package` (whose bytes hash to `hash`) for `prefix`.
    pub fn check(
        &self,
        prefix: &str,
        package: &PackageManifest,
        hash: &str,
        min_sequence: Option<u64>,
        now: SystemTime,
    ) -> Result<(), Refusal> {
        match package.expired(now) {
            Ok(true) => {
                return Err(Refusal::Expired(
                    package.expires.clone().unwrap_or_default(),
                ))
            }
            Ok(false) => {}
            Err(e) => return Err(Refusal::BadExpiry(e.to_string())),
        }
        let got = package.sequence();
        if let Some(floor) = min_sequence.filter(|&m| got < m) {
            return Err(Refusal::Lower {
                got,
                floor,
                why: "--min-sequence",
            });
        }
        if let Some(t) = self.get(prefix) {
            if got < t.sequence {
                return Err(Refusal::Lower {
                    got,
                    floor: t.sequence,
                    why: "taken before into this folder",
                });
            }
            if got == t.sequence && t.package_hash != hash {
                return Err(Refusal::Replaced(got, t.package_hash.clone()));
            }
        }
        Ok(())
    }

    /// Remember `taken` for `prefix` (never lowering it) and write the file
    /// atomically ([`crate::io::replace_file`]).
    pub fn record(&mut self, prefix: &str, taken: Taken) -> std::io::Result<()> {
        if self
            .get(prefix)
            .is_some_and(|t| t.sequence > taken.sequence)
        {
            return Ok(());
        }
        self.taken.insert(prefix.to_string(), taken);
        let dir = self.path.parent().expect("a file inside STATE_DIR");
        std::fs::create_dir_all(dir)?;
        let bytes = serde_json::to_vec_pretty(&self.taken).map_err(std::io::Error::other)?;
        crate::io::replace_file(&self.path, &bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(sequence: u64, expires: Option<&str>) -> PackageManifest {
        PackageManifest {
            version: 1,
            chunk_size: 1 << 20,
            sequence: Some(sequence),
            expires: expires.map(str::to_string),
            files: BTreeMap::new(),
        }
    }

    #[test]
    fn refuses_expired_lower_and_replaced_releases() {
        let dir = tempfile::tempdir().unwrap();
        let mut m = Memory::load(dir.path()).unwrap();
        let now = humantime::parse_rfc3339("2026-12-01T12:00:00Z").unwrap();
        let p = "https://h/pkg";
        // Within the 5-minute skew allowance: taken; past it: refused.
        let fresh = manifest(5, Some("2026-12-01T11:56:00Z"));
        assert_eq!(m.check(p, &fresh, "aa", None, now), Ok(()));
        let stale = manifest(5, Some("2026-12-01T11:54:00Z"));
        assert!(matches!(
            m.check(p, &stale, "aa", None, now),
            Err(Refusal::Expired(_))
        ));
        assert!(matches!(
            m.check(p, &manifest(4, None), "aa", Some(5), now),
            Err(Refusal::Lower { floor: 5, .. })
        ));
        m.record(
            p,
            Taken {
                sequence: 7,
                package_hash: "aa".into(),
            },
        )
        .unwrap();
        // Read back from disk, as a rerun would.
        let m = Memory::load(dir.path()).unwrap();
        assert!(matches!(
            m.check(p, &manifest(6, None), "bb", None, now),
            Err(Refusal::Lower { floor: 7, .. })
        ));
        assert_eq!(
            m.check(p, &manifest(7, None), "bb", None, now),
            Err(Refusal::Replaced(7, "aa".into()))
        );
        assert_eq!(m.check(p, &manifest(7, None), "aa", None, now), Ok(()));
        assert_eq!(m.check(p, &manifest(8, None), "cc", None, now), Ok(()));
        // Another prefix has its own floor.
        assert_eq!(
            m.check("https://h/other", &manifest(1, None), "dd", None, now),
            Ok(())
        );
    }

    #[test]
    fn a_corrupt_memory_is_an_error_not_a_reset() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join(STATE_DIR)).unwrap();
        std::fs::write(dir.path().join(STATE_DIR).join(FILE), b"{not json").unwrap();
        let err = Memory::load(dir.path()).unwrap_err();
        assert!(err.to_string().contains("sequences.json"), "{err}");
    }
}
