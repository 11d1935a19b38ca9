//! Identity of an opened file version.

use std::os::unix::fs::MetadataExt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Identity of a file version: any change of any field means a new version.
///
/// `ctime` is included because it changes on every write and metadata change
/// and, unlike `mtime`, cannot be set back by a user (`touch -d`), so an
/// in-place rewrite that restores size and mtime is still seen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FileIdentity {
    /// Device the file lives on (`st_dev`).
    pub dev: u64,
    /// Inode number (`st_ino`); a rename-replace gives a new one.
    pub ino: u64,
    /// Size in bytes (`st_size`).
    pub size: u64,
    /// Last modification, whole seconds since the Unix epoch.
    pub mtime_sec: i64,
    /// Last modification, nanoseconds within the second.
    pub mtime_nsec: i64,
    /// Last status change, whole seconds since the Unix epoch.
    pub ctime_sec: i64,
    /// Last status change, nanoseconds within the second.
    pub ctime_nsec: i64,
}

impl FileIdentity {
    /// Identity of an open file, from `fstat` on its descriptor (never from
    /// a path, so it describes exactly the file that will be read).
    pub fn of(file: &std::fs::File) -> std::io::Result<Self> {
        Ok(Self::from_metadata(&file.metadata()?))
    }

    /// Identity from metadata already taken from an open descriptor.
    pub(crate) fn from_metadata(m: &std::fs::Metadata) -> Self {
        Self {
            dev: m.dev(),
            ino: m.ino(),
            size: m.size(),
            mtime_sec: m.mtime(),
            mtime_nsec: m.mtime_nsec(),
            ctime_sec: m.ctime(),
            ctime_nsec: m.ctime_nsec(),
        }
    }

    /// The modification time as a `SystemTime` (for `Last-Modified`).
    pub fn modified(&self) -> SystemTime {
        // The kernel keeps nsec in 0..1e9; clamp anyway rather than panic.
        let nsec = u32::try_from(self.mtime_nsec.clamp(0, 999_999_999)).unwrap_or(0);
        let secs = Duration::from_secs(self.mtime_sec.unsigned_abs());
        let whole = if self.mtime_sec >= 0 {
            UNIX_EPOCH.checked_add(secs)
        } else {
            UNIX_EPOCH.checked_sub(secs)
        };
        whole
            .and_then(|t| t.checked_add(Duration::from_nanos(u64::from(nsec))))
            .unwrap_or(UNIX_EPOCH)
    }
}

/// An open regular file and its identity, taken from the same descriptor
/// after the open (no check-then-open race).
#[derive(Debug, Clone)]
pub struct ResolvedFile {
    /// The file, open read-only, close-on-exec, in blocking mode; shared
    /// (the open-file cache and every response reading it hold it).
    pub file: std::sync::Arc<std::fs::File>,
    /// Identity of `file` at the time it was opened.
    pub identity: FileIdentity,
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn fixture() -> (tempfile::TempDir, std::path::PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.bin");
        std::fs::write(&path, b"first version").unwrap();
        (dir, path)
    }

    #[test]
    fn identity_equals_fstat() {
        let (_dir, path) = fixture();
        let file = std::fs::File::open(&path).unwrap();
        let st = rustix::fs::fstat(&file).unwrap();
        let id = FileIdentity::of(&file).unwrap();
        #[allow(clippy::unnecessary_cast)] // field types differ between targets
        let expected = FileIdentity {
            dev: st.st_dev as u64,
            ino: st.st_ino as u64,
            size: st.st_size as u64,
            mtime_sec: st.st_mtime as i64,
            mtime_nsec: st.st_mtime_nsec as i64,
            ctime_sec: st.st_ctime as i64,
            ctime_nsec: st.st_ctime_nsec as i64,
        };
        assert_eq!(id, expected);
    }

    #[test]
    fn identity_changes_when_content_is_rewritten() {
        let (_dir, path) = fixture();
        let before = FileIdentity::of(&std::fs::File::open(&path).unwrap()).unwrap();
        std::thread::sleep(Duration::from_millis(20));
        std::fs::OpenOptions::new()
            .write(true)
            .truncate(true)
            .open(&path)
            .unwrap()
            .write_all(b"second, longer version")
            .unwrap();
        let after = FileIdentity::of(&std::fs::File::open(&path).unwrap()).unwrap();
        assert_ne!(before, after);
    }

    #[test]
    fn size_changes_when_content_is_rewritten() {
        let (_dir, path) = fixture();
        let before = FileIdentity::of(&std::fs::File::open(&path).unwrap()).unwrap();
        std::fs::write(&path, b"second, longer version").unwrap();
        let after = FileIdentity::of(&std::fs::File::open(&path).unwrap()).unwrap();
        assert_eq!((before.size, after.size), (13, 22));
    }

    #[test]
    fn same_size_rewrite_with_restored_mtime_still_changes_ctime() {
        let (_dir, path) = fixture();
        let file = std::fs::File::open(&path).unwrap();
        let before = FileIdentity::of(&file).unwrap();
        std::thread::sleep(Duration::from_millis(20));
        let w = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        (&w).write_all(b"FIRST VERSION").unwrap();
        w.set_modified(before.modified()).unwrap();
        let after = FileIdentity::of(&file).unwrap();
        assert_ne!(
            (before.ctime_sec, before.ctime_nsec),
            (after.ctime_sec, after.ctime_nsec)
        );
    }

    #[test]
    fn mtime_changes_when_content_is_rewritten() {
        let (_dir, path) = fixture();
        let file = std::fs::File::open(&path).unwrap();
        let before = FileIdentity::of(&file).unwrap();
        std::thread::sleep(Duration::from_millis(20));
        std::fs::write(&path, b"FIRST VERSION").unwrap();
        let after = FileIdentity::of(&file).unwrap();
        assert_ne!(
            (before.mtime_sec, before.mtime_nsec),
            (after.mtime_sec, after.mtime_nsec)
        );
    }

    #[test]
    fn ctime_changes_on_chmod_and_mtime_does_not() {
        use std::os::unix::fs::PermissionsExt;
        let (_dir, path) = fixture();
        let file = std::fs::File::open(&path).unwrap();
        let before = FileIdentity::of(&file).unwrap();
        std::thread::sleep(Duration::from_millis(20));
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        let after = FileIdentity::of(&file).unwrap();
        assert!(
            (before.ctime_sec, before.ctime_nsec) != (after.ctime_sec, after.ctime_nsec)
                && (before.mtime_sec, before.mtime_nsec) == (after.mtime_sec, after.mtime_nsec),
            "{before:?} -> {after:?}"
        );
    }

    #[test]
    fn modified_matches_std() {
        let (_dir, path) = fixture();
        let file = std::fs::File::open(&path).unwrap();
        let id = FileIdentity::of(&file).unwrap();
        assert_eq!(id.modified(), file.metadata().unwrap().modified().unwrap());
    }

    #[test]
    fn modified_before_the_epoch() {
        let id = FileIdentity {
            dev: 0,
            ino: 0,
            size: 0,
            mtime_sec: -2,
            mtime_nsec: 500_000_000,
            ctime_sec: 0,
            ctime_nsec: 0,
        };
        assert_eq!(id.modified(), UNIX_EPOCH - Duration::from_millis(1500));
    }
}
