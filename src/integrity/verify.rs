//! Verify on send: the [`BlockSource`] that hashes every chunk before any
//! byte of it is handed to the HTTP layer.
//!
//! Reads are planned on chunk boundaries (`block_size() = chunk_size`), so
//! one read never spans two chunks. A read that starts or ends inside a chunk
//! still reads and hashes the whole chunk and returns only the bytes asked
//! for. A mismatch returns [`BodyError::Integrity`]; the body then ends and
//! the client sees the response cut short.

use super::cache::ChunkCache;
use super::quarantine::Quarantine;
use super::store::AutoStore;
use super::{sha256, FileManifest};
use crate::body::{read_exact_at, BlockSource, BodyError};
use crate::resolve::FileIdentity;
use crate::vpath::Verify;
use bytes::Bytes;
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
        }
    }

    /// Identity of the file when it was opened.
    pub fn identity(&self) -> FileIdentity {
        self.expected
    }

    fn fstat(&self) -> Result<FileIdentity, BodyError> {
        FileIdentity::of(&self.file).map_err(BodyError::Io)
    }

    fn changed(&self) -> BodyError {
        BodyError::Cut("file changed on disk during the transfer".into())
    }

    /// A chunk did not match: act by mode and return the body error.
    fn mismatch(&self, chunk: u64, now: FileIdentity) -> BodyError {
        match &self.trust {
            Trust::Auto { store } => {
                warn!(
                    file = %self.label,
                    chunk,
                    "chunk does not match the file's manifest: file changed, transfer cut"
                );
                store.invalidate(&self.expected, self.manifest.chunk_size);
                self.cache.forget(&now);
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
                quarantine.add(path.clone(), now, self.manifest.root);
                self.cache.forget(&now);
                BodyError::Integrity { chunk }
            }
        }
    }
}

impl BlockSource for VerifiedFile {
    fn read(&self, offset: u64, len: usize) -> Result<Bytes, BodyError> {
        let m = &self.manifest;
        let chunk = offset / m.chunk_size;
        let (start, end) = m.chunk_range(chunk);
        let auto = matches!(self.trust, Trust::Auto { .. });
        let before = self.fstat()?;
        if auto && before != self.expected {
            return Err(self.changed());
        }
        if self.verify == Verify::Cached && self.cache.is_verified(&before, &m.root, chunk) {
            let bytes = read_exact_at(&self.file, offset, len)?;
            // Unchanged identity after the read means no write touched these
            // bytes (see `cache` for why ctime guarantees that).
            if self.fstat()? == before {
                return Ok(bytes);
            }
            if auto {
                return Err(self.changed());
            }
        }
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
        if sha256(&data) != *digest {
            return Err(self.mismatch(chunk, self.fstat().unwrap_or(before)));
        }
        if self.verify == Verify::Cached && self.fstat()? == before {
            self.cache.mark(&before, &m.root, chunk);
        }
        let from = (offset - start) as usize;
        Ok(data.slice(from..from + len))
    }

    fn block_size(&self) -> u64 {
        self.manifest.chunk_size
    }
}
