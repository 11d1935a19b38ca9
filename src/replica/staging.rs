//! Where a replica keeps its versions, on disk:
//!
//! - staging: `STATE_DIR/replicas/SLUG/staging/PACKAGE_HASH/` — the version
//!   being assembled: `REL.part` work files with `REL.part.state` resume
//!   lists (the engine's), renamed to `REL` once complete, then the
//!   manifest bytes and signature in `.distpoint/`. A killed sync finds
//!   the same folder for the same package and resumes.
//! - versions: `DIR/.distpoint/versions/SEQUENCE-HASH16/`, each complete and
//!   never changed once there (the server never serves `.distpoint/`
//!   through the path itself; requests reach a version only through the
//!   replica registry).
//! - `DIR/.distpoint/current`: the id of the version served, replaced
//!   atomically, read at start.

use crate::integrity::published::{MANIFEST_FILE, META_DIR, SIGNATURE_FILE};
use crate::integrity::{hex, sha256, PackageManifest};
use crate::io::{replace_file, sync_dir};
use crate::state::replicas::Version;
use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};

/// The folders of one replica.
#[derive(Debug, Clone)]
pub struct Layout {
    /// `STATE_DIR/replicas/SLUG`.
    pub home: PathBuf,
    /// The path's `dir`.
    pub dir: PathBuf,
}

/// A folder name for a URL: its safe characters and a short hash.
fn slug(url: &str) -> String {
    let safe: String = url
        .trim_matches('/')
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .take(48)
        .collect();
    format!("{safe}-{}", &hex(&sha256(url.as_bytes()))[..12])
}

impl Layout {
    /// The layout of the replica at `url` serving from `dir`.
    pub fn new(state_dir: &Path, url: &str, dir: &Path) -> Layout {
        Layout {
            home: state_dir.join("replicas").join(slug(url)),
            dir: dir.to_path_buf(),
        }
    }

    /// Staging for the package with this hash.
    pub fn staging(&self, hash: &str) -> PathBuf {
        self.home.join("staging").join(hash)
    }

    fn versions(&self) -> PathBuf {
        self.dir.join(META_DIR).join("versions")
    }

    fn pointer(&self) -> PathBuf {
        self.dir.join(META_DIR).join("current")
    }

    /// The version named by `current`, if it is there and readable.
    pub fn load_current(&self) -> Option<Version> {
        let id = fs::read_to_string(self.pointer()).ok()?;
        let dir = self.versions().join(id.trim());
        version_of(&dir)
    }

    /// Remove staging folders of other packages (an abandoned candidate).
    pub fn clean_staging(&self, keep: &str) {
        let Ok(entries) = fs::read_dir(self.home.join("staging")) else {
            return;
        };
        for e in entries.flatten() {
            if e.file_name() != keep {
                let _ = fs::remove_dir_all(e.path());
            }
        }
    }

    /// Remove version folders other than `keep` (left by a crash between
    /// a switch and the removal of the old version).
    pub fn clean_versions(&self, keep: Option<&Path>) {
        let Ok(entries) = fs::read_dir(self.versions()) else {
            return;
        };
        for e in entries.flatten() {
            if Some(e.path().as_path()) != keep {
                let _ = fs::remove_dir_all(e.path());
            }
        }
    }

    /// Make a complete staging folder a version: moved (or, across file
    /// systems, copied) beneath `DIR/.distpoint/versions/`, then named in
    /// `current`. Blocking.
    pub fn install(&self, staging: &Path, id: &str) -> io::Result<PathBuf> {
        let versions = self.versions();
        fs::create_dir_all(&versions)?;
        let to = versions.join(id);
        if to.exists() {
            fs::remove_dir_all(&to)?;
        }
        match fs::rename(staging, &to) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(18) => {
                // EXDEV: state_dir and dir are on different file systems.
                let tmp = versions.join(format!("{id}.copying"));
                let _ = fs::remove_dir_all(&tmp);
                copy_tree(staging, &tmp)?;
                fs::rename(&tmp, &to)?;
                fs::remove_dir_all(staging)?;
            }
            Err(e) => return Err(e),
        }
        sync_dir(&versions);
        let pointer = self.pointer();
        replace_file(&pointer, id.as_bytes())?;
        Ok(to)
    }
}

/// Write the manifest bytes and signature into a staging folder.
pub fn write_manifest(staging: &Path, bytes: &[u8], signature: Option<&[u8]>) -> io::Result<()> {
    let meta = staging.join(META_DIR);
    fs::create_dir_all(&meta)?;
    write_durable(&meta.join(MANIFEST_FILE), bytes)?;
    if let Some(sig) = signature {
        write_durable(&meta.join(SIGNATURE_FILE), sig)?;
    }
    sync_dir(&meta);
    Ok(())
}

fn write_durable(path: &Path, bytes: &[u8]) -> io::Result<()> {
    fs::write(path, bytes)?;
    File::open(path)?.sync_all()
}

/// The version in `dir`, from its manifest bytes.
pub fn version_of(dir: &Path) -> Option<Version> {
    let bytes = fs::read(dir.join(META_DIR).join(MANIFEST_FILE)).ok()?;
    let m: PackageManifest = serde_json::from_slice(&bytes).ok()?;
    Some(Version::new(
        dir.to_path_buf(),
        hex(&sha256(&bytes)),
        m.sequence(),
    ))
}

/// The id of a version folder: `SEQUENCE-HASH16`.
pub fn version_id(sequence: u64, hash: &str) -> String {
    format!("{sequence}-{}", &hash[..16.min(hash.len())])
}

fn copy_tree(from: &Path, to: &Path) -> io::Result<()> {
    fs::create_dir_all(to)?;
    for e in fs::read_dir(from)? {
        let e = e?;
        let target = to.join(e.file_name());
        if e.file_type()?.is_dir() {
            copy_tree(&e.path(), &target)?;
        } else {
            fs::copy(e.path(), &target)?;
            File::open(&target)?.sync_all()?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_staged_folder_becomes_the_current_version() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("replica");
        fs::create_dir(&dir).unwrap();
        let l = Layout::new(&tmp.path().join("state"), "/SMS_DP_SMSPKG$/PKG1", &dir);
        assert!(l.home.ends_with(format!(
            "SMS_DP_SMSPKG__PKG1-{}",
            &hex(&sha256(b"/SMS_DP_SMSPKG$/PKG1"))[..12]
        )));
        let bytes = br#"{"version":1,"chunk_size":4096,"sequence":9,"files":{}}"#;
        let hash = hex(&sha256(bytes));
        let staging = l.staging(&hash);
        fs::create_dir_all(&staging).unwrap();
        fs::write(staging.join("a.txt"), "a").unwrap();
        write_manifest(&staging, bytes, None).unwrap();
        assert!(l.load_current().is_none());
        let at = l.install(&staging, &version_id(9, &hash)).unwrap();
        assert!(!staging.exists());
        let v = l.load_current().unwrap();
        assert_eq!(
            (v.dir.clone(), v.sequence, v.package_hash.clone()),
            (at.clone(), 9, hash)
        );
        assert_eq!(fs::read_to_string(at.join("a.txt")).unwrap(), "a");
        l.clean_versions(Some(&at));
        assert!(at.exists());
    }
}
