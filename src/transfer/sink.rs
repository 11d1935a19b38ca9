//! Where verified chunks go. A [`Sink`] only ever receives bytes that have
//! matched their digest; [`FileSink`] is the one every caller uses today: a
//! work file at the final length (`PATH.part` for `fetch`, a staging file for
//! a replica), written at offsets, then made durable and renamed into place.
//!
//! [`LocalChunks`] is the other end: a caller that holds chunks locally
//! (a replica's served version, a prestaged seed) offers them by digest
//! before anything is fetched.

use crate::integrity::Digest;
use std::fmt;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

/// Receives verified chunks. Methods are called on blocking threads.
pub trait Sink: Send + Sync {
    /// Write the bytes of verified chunk `index`, which start at `offset`.
    fn write_chunk(&self, index: u64, offset: u64, data: &[u8]) -> io::Result<()>;
    /// Read `len` bytes at `offset` back (to re-check what a previous run wrote).
    fn read_at(&self, offset: u64, len: usize) -> io::Result<Vec<u8>>;
}

/// Offers chunks held locally, by digest. The engine hashes what it gets
/// before using it, so a wrong answer costs only a fetch.
pub trait LocalChunks: Send + Sync {
    /// The `len` bytes of a chunk whose SHA-256 is `digest`, if held here.
    /// Called on a blocking thread.
    fn chunk(&self, digest: &Digest, len: u64) -> Option<Vec<u8>>;
}

/// A file operation that failed; names the path and keeps the cause.
#[derive(Debug)]
pub struct SinkError {
    /// The file or folder at fault.
    pub path: PathBuf,
    /// What was being done ("create", "sync", …).
    pub action: &'static str,
    /// The cause.
    pub source: io::Error,
}

impl fmt::Display for SinkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: cannot {}: {}",
            self.path.display(),
            self.action,
            self.source
        )
    }
}

impl std::error::Error for SinkError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}

fn at<'a>(path: &'a Path, action: &'static str) -> impl FnOnce(io::Error) -> SinkError + 'a {
    move |source| SinkError {
        path: path.to_path_buf(),
        action,
        source,
    }
}

/// Dirty bytes after which a background `fdatasync` starts, so that the
/// final sync has little left to wait for (the kernel would otherwise keep
/// up to a tenth of RAM dirty until then).
const FLUSH_EVERY: u64 = 64 << 20;

/// Bytes per `pwrite`.
const WRITE_PIECE: usize = 16 << 10;

/// A work file at its final length, written at chunk offsets.
#[derive(Debug)]
pub struct FileSink {
    file: Arc<File>,
    path: PathBuf,
    dirty: AtomicU64,
    flushing: Arc<AtomicBool>,
}

impl FileSink {
    /// Open (or create) the work file and give it its final length. With
    /// `fresh` the old content is dropped; otherwise it is kept, as it holds
    /// chunks a previous run verified.
    pub fn open(path: &Path, size: u64, fresh: bool) -> Result<FileSink, SinkError> {
        let file = OpenOptions::new()
            .create(true)
            .truncate(fresh)
            .read(true)
            .write(true)
            .open(path)
            .map_err(at(path, "create"))?;
        file.set_len(size).map_err(at(path, "size"))?;
        Ok(FileSink {
            file: Arc::new(file),
            path: path.to_path_buf(),
            dirty: AtomicU64::new(0),
            flushing: Arc::new(AtomicBool::new(false)),
        })
    }

    /// The work file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Make the work file durable and move it to `to` atomically; then make
    /// the rename itself durable by syncing the folder.
    pub fn finish(&self, to: &Path) -> Result<(), SinkError> {
        self.file.sync_all().map_err(at(&self.path, "sync"))?;
        std::fs::rename(&self.path, to).map_err(at(to, "rename the download into place"))?;
        // A folder fsync is what makes the new name survive a crash.
        crate::io::sync_dir(parent(to));
        Ok(())
    }
}

impl Sink for FileSink {
    fn write_chunk(&self, _index: u64, offset: u64, data: &[u8]) -> io::Result<()> {
        // In small writes: for a large one the kernel allocates large page
        // cache folios and copies into them at a fraction of the speed
        // (measured here: 1 MiB writes cost about three times the system
        // time of 16 KiB ones; 64 KiB ones already more).
        let mut at = offset;
        for piece in data.chunks(WRITE_PIECE) {
            self.file.write_all_at(piece, at)?;
            at += piece.len() as u64;
        }
        let dirty = self.dirty.fetch_add(data.len() as u64, Ordering::Relaxed) + data.len() as u64;
        if dirty >= FLUSH_EVERY && !self.flushing.swap(true, Ordering::AcqRel) {
            self.dirty.store(0, Ordering::Relaxed);
            // On a thread of its own: writes go on meanwhile. Its result does
            // not matter: `finish` syncs everything and reports failure.
            let (file, flushing) = (self.file.clone(), self.flushing.clone());
            std::thread::spawn(move || {
                let _ = file.sync_data();
                flushing.store(false, Ordering::Release);
            });
        }
        Ok(())
    }

    fn read_at(&self, offset: u64, len: usize) -> io::Result<Vec<u8>> {
        let mut buf = vec![0u8; len];
        self.file.read_exact_at(&mut buf, offset)?;
        Ok(buf)
    }
}

/// The folder that holds `path` (`.` for a bare name).
pub fn parent(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_sink_writes_at_offsets_and_renames_into_place() {
        let dir = tempfile::tempdir().unwrap();
        let part = dir.path().join("out.bin.part");
        let done = dir.path().join("out.bin");
        let s = FileSink::open(&part, 10, true).unwrap();
        s.write_chunk(1, 4, b"abc").unwrap();
        assert_eq!(s.read_at(3, 5).unwrap(), b"\0abc\0");
        s.finish(&done).unwrap();
        assert!(!part.exists());
        assert_eq!(std::fs::read(&done).unwrap().len(), 10);
        let e = FileSink::open(&dir.path().join("no/such/x"), 1, true).unwrap_err();
        assert!(e.to_string().contains("no/such/x: cannot create"), "{e}");
        assert!(std::error::Error::source(&e).is_some());
    }
}
