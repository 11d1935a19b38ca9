//! Hashing an open file into its manifest: one read, two digests.
//!
//! The chunk digests and the whole-file digest are two independent SHA-256
//! streams over the same bytes. For a large file they run on two threads fed
//! by one reader (each block is read once and shared), so a manifest costs
//! about one SHA-256 pass of wall time instead of two when a second core is
//! free. Small files are hashed on the calling thread.

use super::chunker::ChunkHasher;
use super::manifest::root_of;
use super::{Digest, FileManifest};
use sha2::{Digest as _, Sha256};
use std::fs::File;
use std::io::Read;
use std::os::unix::fs::FileExt;
use std::sync::mpsc::sync_channel;
use std::sync::Arc;

/// Below this size the threads cost more than they save.
const PARALLEL_FROM: u64 = 8 << 20;
/// Read size of the parallel reader.
const BLOCK: usize = 1 << 20;
/// Blocks queued per hasher: bounds memory at a few MiB.
const QUEUE: usize = 4;

/// Reads a file from offset 0 with `pread`, so a shared descriptor's file
/// position is never touched.
struct PosReader<'a> {
    file: &'a File,
    pos: u64,
}

impl Read for PosReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.file.read_at(buf, self.pos)?;
        self.pos += n as u64;
        Ok(n)
    }
}

/// Hash an open file from its start. Blocking.
pub fn compute_file(file: &File, chunk_size: u64) -> std::io::Result<FileManifest> {
    assert!(chunk_size > 0, "chunk_size must be positive");
    if file.metadata()?.len() < PARALLEL_FROM {
        return FileManifest::compute(PosReader { file, pos: 0 }, chunk_size);
    }
    let (to_whole, whole_rx) = sync_channel::<Arc<Vec<u8>>>(QUEUE);
    let (to_chunks, chunks_rx) = sync_channel::<Arc<Vec<u8>>>(QUEUE);
    std::thread::scope(|s| {
        let whole = s.spawn(move || {
            let mut h = Sha256::new();
            for block in whole_rx {
                h.update(&block[..]);
            }
            Digest::from(h.finalize())
        });
        let chunks = s.spawn(move || {
            let mut out: Vec<Digest> = Vec::new();
            let mut chunker = ChunkHasher::new(chunk_size, u64::MAX, 0);
            for block in chunks_rx {
                chunker.update(&block, |c| out.push(c.digest));
            }
            out.extend(chunker.finish().map(|c| c.digest));
            out
        });
        // The reader: this thread. Dropping the senders ends both hashers.
        let mut size = 0u64;
        let read = (|| -> std::io::Result<()> {
            loop {
                let buf = crate::io::read_at(file, size, BLOCK)?;
                if buf.is_empty() {
                    return Ok(());
                }
                size += buf.len() as u64;
                let block = Arc::new(buf);
                // A hasher only stops early by panicking; the join below reports it.
                if to_whole.send(block.clone()).is_err() || to_chunks.send(block).is_err() {
                    return Ok(());
                }
            }
        })();
        drop((to_whole, to_chunks));
        let sha256 = whole.join().expect("whole-file hasher");
        let chunks = chunks.join().expect("chunk hasher");
        read?;
        Ok(FileManifest {
            size,
            chunk_size,
            sha256,
            root: root_of(&chunks),
            chunks,
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parallel_and_sequential_agree() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let data: Vec<u8> = (0..PARALLEL_FROM as usize + 3 * BLOCK + 4321)
            .map(|i| (i * 31 % 257) as u8)
            .collect();
        std::fs::write(&path, &data).unwrap();
        let file = File::open(&path).unwrap();
        for chunk in [4096, 1 << 20, 3 << 20, 64 << 20] {
            let seq = FileManifest::compute(&data[..], chunk).unwrap();
            let par = compute_file(&file, chunk).unwrap();
            assert_eq!(par, seq, "chunk size {chunk}");
        }
        let small = dir.path().join("s");
        std::fs::write(&small, b"abc").unwrap();
        let m = compute_file(&File::open(&small).unwrap(), 4096).unwrap();
        assert_eq!(m, FileManifest::compute(&b"abc"[..], 4096).unwrap());
    }
}
