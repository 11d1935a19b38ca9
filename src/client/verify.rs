//! Verifying a chunk-aligned byte stream against a manifest, chunk by chunk,
//! as the bytes arrive: each chunk is judged the moment its last byte is in.

use crate::integrity::chunker::{self, ChunkHasher};
use crate::integrity::FileManifest;
use std::fmt;
use std::sync::Arc;

/// Why a stream did not verify.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VerifyError {
    /// Chunk `index` does not hash to the manifest's digest.
    Mismatch {
        /// Chunk index (0-based).
        index: u64,
    },
    /// The server sent more bytes than the requested chunks hold.
    TooLong,
}

impl fmt::Display for VerifyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            VerifyError::Mismatch { index } => {
                write!(f, "chunk {index} does not match the manifest")
            }
            VerifyError::TooLong => write!(f, "the server sent more bytes than requested"),
        }
    }
}

impl std::error::Error for VerifyError {}

/// A chunk whose last byte has arrived and whose digest matched.
#[derive(Debug)]
pub struct VerifiedChunk {
    /// Chunk index.
    pub index: u64,
    /// Its bytes, when the stream keeps them (fetch writes them; bench drops them).
    pub data: Option<Vec<u8>>,
}

/// Verifies the bytes of chunks `first..end` of a file, fed in any pieces.
pub struct ChunkStream {
    manifest: Arc<FileManifest>,
    end: u64,
    hasher: ChunkHasher,
    keep: Option<Vec<u8>>,
}

impl ChunkStream {
    /// Expect chunks `first..end`; with `keep`, hand each verified chunk's bytes back.
    pub fn new(manifest: Arc<FileManifest>, first: u64, end: u64, keep: bool) -> ChunkStream {
        let cap = if keep {
            manifest.chunk_size.min(manifest.size) as usize
        } else {
            0
        };
        ChunkStream {
            hasher: ChunkHasher::new(manifest.chunk_size, manifest.size, first),
            manifest,
            end,
            keep: keep.then(|| Vec::with_capacity(cap)),
        }
    }

    /// Feed the next bytes; returns the chunks completed (and verified) by them.
    /// The first mismatch is an error and the stream is then unusable.
    pub fn push(&mut self, mut data: &[u8]) -> Result<Vec<VerifiedChunk>, VerifyError> {
        let mut done = Vec::new();
        while !data.is_empty() {
            if self.is_complete() {
                return Err(VerifyError::TooLong);
            }
            let (n, completed) = self.hasher.take(data);
            if n == 0 {
                return Err(VerifyError::TooLong);
            }
            if let Some(buf) = &mut self.keep {
                buf.extend_from_slice(&data[..n]);
            }
            data = &data[n..];
            if let Some(c) = completed {
                if c.digest != self.manifest.chunks[c.index as usize] {
                    return Err(VerifyError::Mismatch { index: c.index });
                }
                let data = self.keep.as_mut().map(|b| {
                    let cap = b.capacity();
                    std::mem::replace(b, Vec::with_capacity(cap))
                });
                done.push(VerifiedChunk {
                    index: c.index,
                    data,
                });
            }
        }
        Ok(done)
    }

    /// The chunk the next byte belongs to.
    pub fn next_chunk(&self) -> u64 {
        self.hasher.chunk()
    }

    /// True once every expected chunk has arrived.
    pub fn is_complete(&self) -> bool {
        self.next_chunk() >= self.end
    }
}

/// Check one whole chunk held in memory (used when re-checking a resumed file).
pub fn chunk_matches(manifest: &FileManifest, index: u64, data: &[u8]) -> bool {
    manifest
        .chunks
        .get(index as usize)
        .is_some_and(|want| chunker::chunk_matches(want, data))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> (Vec<u8>, Arc<FileManifest>) {
        let data: Vec<u8> = (0..10_000u32).map(|i| (i * 31 % 253) as u8).collect();
        let m = FileManifest::compute(&data[..], 1024).unwrap();
        (data, Arc::new(m))
    }

    #[test]
    fn verifies_chunks_fed_in_odd_pieces() {
        let (data, m) = sample();
        let mut s = ChunkStream::new(m.clone(), 2, 10, true);
        let mut seen = Vec::new();
        for piece in data[2048..].chunks(700) {
            for c in s.push(piece).unwrap() {
                let (a, b) = m.chunk_range(c.index);
                assert_eq!(c.data.as_deref(), Some(&data[a as usize..b as usize]));
                seen.push(c.index);
            }
        }
        assert_eq!(seen, (2..10).collect::<Vec<_>>());
        assert!(s.is_complete());
        assert_eq!(s.push(b"x").unwrap_err(), VerifyError::TooLong);
    }

    #[test]
    fn the_first_bad_chunk_is_named_when_its_last_byte_arrives() {
        let (mut data, m) = sample();
        data[3 * 1024 + 17] ^= 0xff;
        let mut s = ChunkStream::new(m.clone(), 0, 10, false);
        // Chunks 0..3 pass; the error comes with the last byte of chunk 3, not before.
        assert_eq!(s.push(&data[..4 * 1024 - 1]).unwrap().len(), 3);
        assert_eq!(
            s.push(&data[4 * 1024 - 1..4 * 1024]).unwrap_err(),
            VerifyError::Mismatch { index: 3 }
        );
        assert!(chunk_matches(&m, 0, &data[..1024]));
        assert!(!chunk_matches(&m, 3, &data[3072..4096]));
        assert!(!chunk_matches(&m, 99, b""));
    }
}
