//! Verify on send: the [`BlockSource`] that hashes every chunk before any
//! byte of it is handed to the HTTP layer.
//!
//! Reads are planned on chunk boundaries (`block_size() = chunk_size`), so
//! one read never spans two chunks. A read that starts or ends inside a chunk
//! still reads and hashes the whole chunk and returns only the bytes asked
//! for. A mismatch returns [`BodyError::Integrity`]; the body then ends and
//! the client sees the response cut short.
//!
//! With `verify = "cached"`, a chunk whose digest is in the verified-chunk
//! cache is sent from there: those bytes were hashed as themselves (see
//! [`super::cache`]), so nothing is read from the disk, whatever it holds now.

use super::cache::{ChunkCache, Verified};
use super::quarantine::Quarantine;
use super::store::AutoStore;
use super::FileManifest;
use crate::body::{read_exact_at, BlockSource, BodyError};
use crate::resolve::FileIdentity;
use crate::vpath::Verify;
use bytes::Bytes;
use prometheus_client::metrics::counter::Counter;
use std::fs::File;
use std::path::PathBuf;
use std::sync::Arc;
use tracing::{error, warn};

/// What a mismatch means, by integrity mode.
pub enum Trust {
    /// `auto`: the disk is trusted, so a mismatch means the file changed
    /// after it was hashed. The transfer is bound to the identity the
    /// manifest was made for and is cut as soon as the file has another.
    Auto {
        /// Where the manifest came from (dropped on mismatch).
        store: Arc<AutoStore>,
    },
    /// `published`: the disk is not trusted; a mismatch is tampering.
    Published {
        /// Where the file is quarantined on mismatch.
        quarantine: Arc<Quarantine>,
        /// The file's path (quarantine key).
        path: PathBuf,
    },
}

/// A file read through its manifest.
pub struct VerifiedFile {
    file: Arc<File>,
    manifest: Arc<FileManifest>,
    /// Auto mode: the identity the manifest was computed for.
    expected: FileIdentity,
    verify: Verify,
    cache: Arc<ChunkCache>,
    trust: Trust,
    /// URL path, for logs.
    label: String,
    /// Chunks hashed and found to match.
    verified: Counter,
    /// Chunks that did not match (and were not sent).
    refused: Counter,
}

impl VerifiedFile {
    /// Serve `file` checked against `manifest`.
    pub fn new(
        file: Arc<File>,
        manifest: Arc<FileManifest>,
        expected: FileIdentity,
        verify: Verify,
        cache: Arc<ChunkCache>,
        trust: Trust,
        label: String,
    ) -> Self {
        VerifiedFile {
            file,
            manifest,
            expected,
            verify,
            cache,
            trust,
            label,
            verified: Counter::default(),
            refused: Counter::default(),
        }
    }

    /// The same file, counting verified chunks into `verified` and
    /// mismatches into `refused`.
    pub fn counting(mut self, verified: Counter, refused: Counter) -> Self {
        self.verified = verified;
        self.refused = refused;
        self
    }

    fn fstat(&self) -> Result<FileIdentity, BodyError> {
        FileIdentity::of(&self.file).map_err(BodyError::Io)
    }

    fn changed(&self) -> BodyError {
        BodyError::Changed
    }

    /// A chunk did not match: act by mode and return the body error.
    fn mismatch(&self, chunk: u64, now: FileIdentity) -> BodyError {
        self.refused.inc();
        match &self.trust {
            Trust::Auto { store } => {
                warn!(
                    file = %self.label,
                    chunk,
                    "chunk does not match the file's manifest: file changed, transfer cut"
                );
                store.invalidate(&self.expected, self.manifest.chunk_size);
                self.changed()
            }
            Trust::Published { quarantine, path } => {
                error!(
                    file = %self.label,
                    path = %path.display(),
                    chunk,
                    "integrity failure: chunk does not match the published manifest; \
                     transfer cut, file quarantined"
                );
                quarantine.add(path.clone(), now, self.manifest.root, Some(chunk));
                BodyError::Integrity { chunk }
            }
        }
    }
}

impl VerifiedFile {
    /// Auto mode: the file must still be the version the manifest is for.
    fn check_version(&self) -> Result<FileIdentity, BodyError> {
        let now = self.fstat()?;
        if matches!(self.trust, Trust::Auto { .. }) && now != self.expected {
            return Err(self.changed());
        }
        Ok(now)
    }

    /// `len` bytes at `offset` of a verified chunk that starts at `start`.
    /// A small piece of a large chunk is copied out, so that it does not
    /// keep the whole chunk's buffer alive while it waits to be sent.
    fn piece(chunk: Bytes, start: u64, offset: u64, len: usize) -> Bytes {
        let from = (offset - start) as usize;
        if len < chunk.len() / 4 {
            Bytes::copy_from_slice(&chunk[from..from + len])
        } else {
            chunk.slice(from..from + len)
        }
    }
}

impl BlockSource for VerifiedFile {
    fn read_cached(&self, offset: u64, len: usize) -> Option<Result<Bytes, BodyError>> {
        if self.verify != Verify::Cached {
            return None;
        }
        let m = &self.manifest;
        let chunk = offset / m.chunk_size;
        let bytes = self.cache.get(m.chunks.get(chunk as usize)?)?;
        // The bytes are the ones that were hashed; in auto mode the file must
        // still be the version they belong to (a new version cuts).
        Some(
            self.check_version()
                .map(|_| Self::piece(bytes, m.chunk_range(chunk).0, offset, len)),
        )
    }

    fn read(&self, offset: u64, len: usize) -> Result<Bytes, BodyError> {
        if let Some(answer) = self.read_cached(offset, len) {
            return answer;
        }
        let m = &self.manifest;
        let chunk = offset / m.chunk_size;
        let (start, end) = m.chunk_range(chunk);
        let auto = matches!(self.trust, Trust::Auto { .. });
        let before = self.check_version()?;
        let data = match read_exact_at(&self.file, start, (end - start) as usize) {
            Ok(d) => d,
            // A published file shorter than its manifest has been tampered with.
            Err(BodyError::Truncated { .. }) if !auto => return Err(self.mismatch(chunk, before)),
            Err(BodyError::Truncated { .. }) => return Err(self.changed()),
            Err(e) => return Err(e),
        };
        let digest = m
            .chunks
            .get(chunk as usize)
            .ok_or(BodyError::Truncated { offset })?;
        let Some(verified) = Verified::check(data, digest) else {
            return Err(self.mismatch(chunk, self.fstat().unwrap_or(before)));
        };
        self.verified.inc();
        if self.verify == Verify::Cached {
            self.cache.insert(&verified);
        }
        Ok(Self::piece(verified.into_bytes(), start, offset, len))
    }

    fn block_size(&self) -> u64 {
        self.manifest.chunk_size
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::FileExt;

    const C: u64 = 4096;

    fn setup(verify: Verify) -> (tempfile::TempDir, Vec<u8>, VerifiedFile, Arc<Quarantine>) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        // Period 251: no two chunks are alike (the cache is keyed by content).
        let data: Vec<u8> = (0..3 * C + 100).map(|i| (i * 13 % 251) as u8).collect();
        std::fs::write(&path, &data).unwrap();
        let file = File::open(&path).unwrap();
        let identity = FileIdentity::of(&file).unwrap();
        let manifest = Arc::new(FileManifest::compute(&data[..], C).unwrap());
        let quarantine = Arc::new(Quarantine::default());
        let trust = Trust::Published {
            quarantine: quarantine.clone(),
            path: path.clone(),
        };
        let v = VerifiedFile::new(
            Arc::new(file),
            manifest,
            identity,
            verify,
            Arc::default(),
            trust,
            "/f".into(),
        );
        (dir, data, v, quarantine)
    }

    #[test]
    fn reads_inside_chunks_return_only_the_asked_bytes() {
        let (_d, data, v, _) = setup(Verify::Always);
        assert_eq!(v.block_size(), C);
        assert_eq!(&v.read(10, 5).unwrap()[..], &data[10..15]);
        assert_eq!(
            &v.read(C + 1, (C - 1) as usize).unwrap()[..],
            &data[C as usize + 1..2 * C as usize]
        );
        assert_eq!(&v.read(3 * C, 100).unwrap()[..], &data[3 * C as usize..]);
    }

    #[test]
    fn a_cached_chunk_is_sent_as_it_was_hashed_whatever_the_disk_holds_now() {
        let (d, data, v, q) = setup(Verify::Cached);
        assert_eq!(
            &v.read(C, 10).unwrap()[..],
            &data[C as usize..C as usize + 10]
        );
        // A change the file's identity may not show (a write through a
        // shared mapping leaves mtime and ctime alone after the first).
        let w = File::options()
            .write(true)
            .open(d.path().join("f"))
            .unwrap();
        w.write_all_at(b"XXXX", C).unwrap();
        assert_eq!(
            &v.read(C, 10).unwrap()[..],
            &data[C as usize..C as usize + 10],
            "the verified bytes, not the disk's"
        );
        assert!(q.get(&d.path().join("f")).is_none());
        // Without the cache, the changed chunk is read, fails, and is refused.
        let (d, _, v, q) = setup(Verify::Always);
        let w = File::options()
            .write(true)
            .open(d.path().join("f"))
            .unwrap();
        assert!(v.read(C, 10).is_ok());
        w.write_all_at(b"XXXX", C).unwrap();
        assert!(matches!(
            v.read(C, 10),
            Err(BodyError::Integrity { chunk: 1 })
        ));
        assert!(q.get(&d.path().join("f")).is_some());
    }

    #[test]
    fn a_tampered_chunk_is_refused_and_quarantined() {
        let (d, data, v, q) = setup(Verify::Cached);
        let path = d.path().join("f");
        let w = File::options().write(true).open(&path).unwrap();
        w.write_all_at(b"X", C + 7).unwrap();
        assert_eq!(
            &v.read(0, 10).unwrap()[..],
            &data[..10],
            "chunk 0 is intact"
        );
        assert!(matches!(
            v.read(C + 100, 10),
            Err(BodyError::Integrity { chunk: 1 })
        ));
        assert!(q.get(&path).is_some());
        w.set_len(2 * C).unwrap();
        assert!(matches!(
            v.read(3 * C, 100),
            Err(BodyError::Integrity { chunk: 3 })
        ));
    }
}
