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

/// Verifies the bytes of chunks `first..end` of a file, fed in any pieces.
pub struct ChunkStream {
    manifest: Arc<FileManifest>,
    end: u64,
    hasher: ChunkHasher,
}

impl ChunkStream {
    /// Expect chunks `first..end`.
    pub fn new(manifest: Arc<FileManifest>, first: u64, end: u64) -> ChunkStream {
        ChunkStream {
            hasher: ChunkHasher::new(manifest.chunk_size, manifest.size, first),
            manifest,
            end,
        }
    }

    /// Feed bytes up to the end of the current chunk: returns how many of
    /// `data` were taken and, when they completed the chunk, its index (it
    /// matched). The caller feeds the rest of `data` next. A mismatch is an
    /// error and the stream is then unusable.
    pub fn take(&mut self, data: &[u8]) -> Result<(usize, Option<u64>), VerifyError> {
        if data.is_empty() {
            return Ok((0, None));
        }
        if self.is_complete() {
            return Err(VerifyError::TooLong);
        }
        let (n, completed) = self.hasher.take(data);
        if n == 0 {
            return Err(VerifyError::TooLong);
        }
        match completed {
            Some(c) if c.digest != self.manifest.chunks[c.index as usize] => {
                Err(VerifyError::Mismatch { index: c.index })
            }
            Some(c) => Ok((n, Some(c.index))),
            None => Ok((n, None)),
        }
    }

    /// Feed the next bytes; returns the chunks completed (and verified) by them.
    /// The first mismatch is an error and the stream is then unusable.
    pub fn push(&mut self, mut data: &[u8]) -> Result<Vec<u64>, VerifyError> {
        let mut done = Vec::new();
        while !data.is_empty() {
            let (n, completed) = self.take(data)?;
            data = &data[n..];
            done.extend(completed);
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
        let mut s = ChunkStream::new(m.clone(), 2, 10);
        let mut seen = Vec::new();
        for piece in data[2048..].chunks(700) {
            seen.extend(s.push(piece).unwrap());
        }
        assert_eq!(seen, (2..10).collect::<Vec<_>>());
        assert!(s.is_complete());
        assert_eq!(s.push(b"x").unwrap_err(), VerifyError::TooLong);
    }

    #[test]
    fn the_first_bad_chunk_is_named_when_its_last_byte_arrives() {
        let (mut data, m) = sample();
        data[3 * 1024 + 17] ^= 0xff;
        let mut s = ChunkStream::new(m.clone(), 0, 10);
        // Chunks 0..3 pass; the error comes with the last byte of chunk 3, not before.
        assert_eq!(s.push(&data[..4 * 1024 - 1]).unwrap().len(), 3);
        assert_eq!(
            s.push(&data[4 * 1024 - 1..4 * 1024]).unwrap_err(),
            VerifyError::Mismatch { index: 3 }
        );
        // take() stops at the chunk's end, so a caller knows which bytes it holds.
        let mut t = ChunkStream::new(m.clone(), 0, 10);
        assert_eq!(t.take(&data[..1500]).unwrap(), (1024, Some(0)));
        assert_eq!(t.take(&data[1024..1500]).unwrap(), (476, None));
        assert!(chunk_matches(&m, 0, &data[..1024]));
        assert!(!chunk_matches(&m, 3, &data[3072..4096]));
        assert!(!chunk_matches(&m, 99, b""));
    }
}
