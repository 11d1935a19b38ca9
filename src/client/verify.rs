//! Verifying a chunk-aligned byte stream against a manifest, chunk by chunk,
//! as the bytes arrive: each chunk is judged the moment its last byte is in.

use crate::integrity::FileManifest;
use sha2::{Digest as _, Sha256};
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
    next: u64,
    end: u64,
    hasher: Sha256,
    filled: u64,
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
            manifest,
            next: first,
            end,
            hasher: Sha256::new(),
            filled: 0,
            keep: keep.then(|| Vec::with_capacity(cap)),
        }
    }

    fn current_len(&self) -> u64 {
        let (s, e) = self.manifest.chunk_range(self.next);
        e - s
    }

    /// Feed the next bytes; returns the chunks completed (and verified) by them.
    /// The first mismatch is an error and the stream is then unusable.
    pub fn push(&mut self, mut data: &[u8]) -> Result<Vec<VerifiedChunk>, VerifyError> {
        let mut done = Vec::new();
        while !data.is_empty() {
            if self.next >= self.end {
                return Err(VerifyError::TooLong);
            }
            let want = (self.current_len() - self.filled) as usize;
            let take = want.min(data.len());
            let (head, rest) = data.split_at(take);
            self.hasher.update(head);
            if let Some(buf) = &mut self.keep {
                buf.extend_from_slice(head);
            }
            self.filled += take as u64;
            data = rest;
            if self.filled == self.current_len() {
                let digest: [u8; 32] = std::mem::take(&mut self.hasher).finalize().into();
                let index = self.next;
                if digest != self.manifest.chunks[index as usize] {
                    return Err(VerifyError::Mismatch { index });
                }
                let data = self.keep.as_mut().map(|b| {
                    let cap = b.capacity();
                    std::mem::replace(b, Vec::with_capacity(cap))
                });
                done.push(VerifiedChunk { index, data });
                self.next += 1;
                self.filled = 0;
            }
        }
        Ok(done)
    }

    /// The chunk the next byte belongs to.
    pub fn next_chunk(&self) -> u64 {
        self.next
    }

    /// True once every expected chunk has arrived.
    pub fn is_complete(&self) -> bool {
        self.next >= self.end
    }
}

/// Check one whole chunk held in memory (used when re-checking a resumed file).
pub fn chunk_matches(manifest: &FileManifest, index: u64, data: &[u8]) -> bool {
    let d: [u8; 32] = Sha256::digest(data).into();
    manifest
        .chunks
        .get(index as usize)
        .is_some_and(|want| *want == d)
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
