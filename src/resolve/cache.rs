//! The open-file cache: a file opened safely once is reused while its path
//! still names the same inode.
//!
//! Opening a file the safe way costs about a dozen system calls (the
//! folder, `openat2`, the `O_PATH` reopen through `/proc`, `fstat`s,
//! `fcntl`s, `close`s) and a hop to the blocking pool. nginx's
//! `open_file_cache` keeps descriptors for the same reason. Here a cached
//! descriptor is only ever one that [`open_beneath`] opened, and it is
//! reused only after one `stat` of its path shows the same device and inode:
//! a path that now names another file (a rename-replace, a new symlink, a
//! removed file) misses, and is resolved again with every rule. The `stat`
//! follows symlinks without the beneath rule, but it only *compares*; it
//! never opens what it finds.
//!
//! The identity handed out is that `stat`'s, of the same inode, so an in-place
//! change (new size, mtime, ctime) is a new version for the integrity layer
//! exactly as with a fresh open.

use super::identity::{FileIdentity, ResolvedFile};
use super::open::{check_segments, open_beneath};
use super::ResolveError;
use quick_cache::sync::Cache;
use std::path::Path;

/// Descriptors kept at most by default: each is an open file.
pub const DEFAULT_ENTRIES: usize = 256;

/// Safely opened files, by folder and relative path.
pub struct OpenFiles {
    cache: Option<Cache<String, ResolvedFile>>,
}

fn key(dir: &Path, segments: &[String]) -> String {
    // NUL can appear in neither a path nor a (checked) segment.
    let mut k = dir.as_os_str().to_string_lossy().into_owned();
    k.push('\0');
    k.push_str(&segments.join("/"));
    k
}

impl OpenFiles {
    /// A cache of at most `entries` descriptors (0: none, every request opens).
    pub fn new(entries: usize) -> Self {
        OpenFiles {
            cache: (entries > 0).then(|| Cache::new(entries)),
        }
    }

    /// The file opened earlier for `segments` beneath `dir`, if the path
    /// still names it: one `stat`, no open, no blocking-pool hop. `None`
    /// means: resolve it with [`OpenFiles::open`].
    pub fn revalidate(&self, dir: &Path, segments: &[String]) -> Option<ResolvedFile> {
        let cache = self.cache.as_ref()?;
        check_segments(segments).ok()?;
        let k = key(dir, segments);
        let cached = cache.get(&k)?;
        let now = std::fs::metadata(dir.join(segments.join("/")))
            .ok()
            .map(|m| FileIdentity::from_metadata(&m));
        match now {
            Some(id) if (id.dev, id.ino) == (cached.identity.dev, cached.identity.ino) => {
                Some(ResolvedFile {
                    file: cached.file,
                    identity: id,
                })
            }
            _ => {
                cache.remove(&k);
                None
            }
        }
    }

    /// Resolve `segments` beneath `dir` with every rule ([`open_beneath`];
    /// blocking) and remember the result.
    pub fn open(&self, dir: &Path, segments: &[String]) -> Result<ResolvedFile, ResolveError> {
        let opened = open_beneath(dir, segments)?;
        if let Some(cache) = &self.cache {
            cache.insert(key(dir, segments), opened.clone());
        }
        Ok(opened)
    }
}

impl Default for OpenFiles {
    fn default() -> Self {
        OpenFiles::new(DEFAULT_ENTRIES)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn segs(p: &str) -> Vec<String> {
        p.split('/').map(String::from).collect()
    }

    fn read(r: &ResolvedFile) -> String {
        let mut s = String::new();
        let mut f = &*r.file;
        use std::io::Seek;
        f.seek(std::io::SeekFrom::Start(0)).unwrap();
        f.read_to_string(&mut s).unwrap();
        s
    }

    #[test]
    fn a_path_is_reused_only_while_it_names_the_same_file() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("dir");
        std::fs::create_dir_all(dir.join("sub")).unwrap();
        std::fs::write(dir.join("sub/a.txt"), "one").unwrap();
        std::fs::write(tmp.path().join("outside.txt"), "outside").unwrap();
        let files = OpenFiles::new(16);
        let p = segs("sub/a.txt");
        assert!(files.revalidate(&dir, &p).is_none(), "nothing cached yet");
        let first = files.open(&dir, &p).unwrap();
        let hit = files.revalidate(&dir, &p).expect("same inode");
        assert_eq!(read(&hit), "one");
        // Changed in place: same inode, new identity.
        std::fs::write(dir.join("sub/a.txt"), "one, longer").unwrap();
        let hit = files.revalidate(&dir, &p).expect("same inode");
        assert_ne!(hit.identity, first.identity);
        assert_eq!(hit.identity.size, 11);
        // Replaced by a symlink out of the folder: a miss, and the full
        // resolution refuses it.
        std::fs::remove_file(dir.join("sub/a.txt")).unwrap();
        std::os::unix::fs::symlink(tmp.path().join("outside.txt"), dir.join("sub/a.txt")).unwrap();
        assert!(files.revalidate(&dir, &p).is_none());
        assert!(files.open(&dir, &p).is_err());
        // Removed: a miss.
        std::fs::remove_file(dir.join("sub/a.txt")).unwrap();
        assert!(files.revalidate(&dir, &p).is_none());
        // Unsafe segments never reach the cache.
        assert!(files.revalidate(&dir, &segs("../outside.txt")).is_none());
    }
}
