//! The one chunk hasher: bytes of a file in, one SHA-256 per chunk out.
//!
//! The server (hashing a file into its manifest), `publish` and the client
//! (verifying chunks as they arrive) all cut a byte stream into the same
//! chunks; this is the single place that knows where a chunk ends. It works
//! in file coordinates: it starts at a chunk boundary, and the last chunk of
//! the file ends at the file's size, so a short final chunk completes by
//! itself.

use super::Digest;
use sha2::{Digest as _, Sha256};

/// Default chunk size for integrity: 1 MiB.
pub const DEFAULT_CHUNK_SIZE: u64 = 1 << 20;
/// Smallest chunk size accepted (4 KiB): smaller chunks make manifests huge.
pub const MIN_CHUNK_SIZE: u64 = 4 << 10;
/// Largest chunk size accepted (64 MiB): a chunk is read whole before sending.
pub const MAX_CHUNK_SIZE: u64 = 64 << 20;

/// Cuts a stream of file bytes into chunks and hashes each.
pub struct ChunkHasher {
    chunk_size: u64,
    /// File size: the last chunk ends here. `u64::MAX` when not known yet.
    size: u64,
    /// File offset of the next byte.
    pos: u64,
    hasher: Sha256,
}

/// A chunk whose last byte was fed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Completed {
    /// Zero-based chunk index.
    pub index: u64,
    /// SHA-256 of its bytes.
    pub digest: Digest,
}

impl ChunkHasher {
    /// Hash chunks of `chunk_size` bytes of a file of `size` bytes (or
    /// `u64::MAX` when the size is learnt only at the end), starting with
    /// chunk `first`.
    pub fn new(chunk_size: u64, size: u64, first: u64) -> Self {
        assert!(chunk_size > 0, "chunk_size must be positive");
        ChunkHasher {
            chunk_size,
            size,
            pos: first.saturating_mul(chunk_size),
            hasher: Sha256::new(),
        }
    }

    /// File offset of the next byte to be fed.
    pub fn position(&self) -> u64 {
        self.pos
    }

    /// Index of the chunk the next byte belongs to; at the end of the file,
    /// the number of chunks.
    pub fn chunk(&self) -> u64 {
        if self.pos >= self.size {
            self.size.div_ceil(self.chunk_size)
        } else {
            self.pos / self.chunk_size
        }
    }

    /// Bytes still missing from the current chunk (0 at the end of the file).
    pub fn wanted(&self) -> u64 {
        let end = ((self.chunk() + 1).saturating_mul(self.chunk_size)).min(self.size);
        end.saturating_sub(self.pos)
    }

    /// Feed at most the rest of the current chunk from `data`. Returns how
    /// many bytes were taken and the chunk those bytes completed, if any.
    /// Callers loop until `data` is used up (or stop at the first chunk they
    /// judge bad).
    pub fn take(&mut self, data: &[u8]) -> (usize, Option<Completed>) {
        let n = (self.wanted() as usize).min(data.len());
        self.hasher.update(&data[..n]);
        self.pos += n as u64;
        let at_end = self.pos % self.chunk_size == 0 || self.pos == self.size;
        let done = (n > 0 && at_end).then(|| self.complete());
        (n, done)
    }

    /// Feed all of `data`, calling `done` for every chunk it completes.
    /// Returns the bytes taken: fewer than `data.len()` only at the end of the file.
    pub fn update(&mut self, mut data: &[u8], mut done: impl FnMut(Completed)) -> usize {
        let mut taken = 0;
        while !data.is_empty() {
            let (n, c) = self.take(data);
            if n == 0 {
                break;
            }
            taken += n;
            data = &data[n..];
            if let Some(c) = c {
                done(c);
            }
        }
        taken
    }

    /// End of the stream: the partial last chunk, if bytes of one were fed
    /// (for a stream whose size was not known in advance).
    pub fn finish(mut self) -> Option<Completed> {
        (self.pos % self.chunk_size != 0 && self.pos < self.size).then(|| self.complete())
    }

    fn complete(&mut self) -> Completed {
        let index = (self.pos - 1) / self.chunk_size;
        Completed {
            index,
            digest: std::mem::take(&mut self.hasher).finalize().into(),
        }
    }
}

/// SHA-256 of one whole chunk held in memory, compared with the manifest's.
pub fn chunk_matches(expected: &Digest, data: &[u8]) -> bool {
    let d: Digest = Sha256::digest(data).into();
    d == *expected
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digests(data: &[u8], c: usize) -> Vec<Digest> {
        data.chunks(c).map(|x| Sha256::digest(x).into()).collect()
    }

    #[test]
    fn known_size_completes_the_short_last_chunk() {
        let data: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
        let mut h = ChunkHasher::new(1024, data.len() as u64, 0);
        let mut got = Vec::new();
        for piece in data.chunks(700) {
            assert_eq!(h.update(piece, |c| got.push(c)), piece.len());
        }
        let want = digests(&data, 1024);
        assert_eq!(got.len(), want.len());
        for (i, c) in got.iter().enumerate() {
            assert_eq!((c.index, c.digest), (i as u64, want[i]));
        }
        assert_eq!(h.wanted(), 0);
        assert_eq!(h.update(b"more", |_| panic!()), 0, "nothing past the end");
        assert!(h.finish().is_none());
    }

    #[test]
    fn unknown_size_gives_the_tail_at_finish_and_can_start_mid_file() {
        let data = vec![7u8; 2500];
        let mut h = ChunkHasher::new(1000, u64::MAX, 0);
        let mut n = 0;
        h.update(&data, |_| n += 1);
        assert_eq!(n, 2);
        let tail = h.finish().unwrap();
        assert_eq!(tail.index, 2);
        assert_eq!(tail.digest, digests(&data, 1000)[2]);

        let mut h = ChunkHasher::new(1000, 2500, 2);
        assert_eq!((h.position(), h.wanted()), (2000, 500));
        let (n, c) = h.take(&data[2000..]);
        assert_eq!((n, c.unwrap().index), (500, 2));
        assert!(chunk_matches(&digests(&data, 1000)[2], &data[2000..]));
    }
}
