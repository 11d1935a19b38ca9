//! Reuse by content: an index from chunk digest to a place on local disk
//! that should hold those bytes — the version served now, every other
//! published path of this server, the files of this sync already staged,
//! and a prestaged seed folder (hashed here, since it has no manifest).
//! The engine hashes whatever [`LocalChunks::chunk`] returns before using
//! it, so a stale or tampered place costs only a fetch.

use crate::integrity::published::{MANIFEST_FILE, META_DIR};
use crate::integrity::{Digest, FileManifest, PackageManifest};
use crate::transfer::LocalChunks;
use std::collections::HashMap;
use std::os::unix::fs::FileExt as _;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

#[derive(Debug, Clone)]
struct Place {
    path: PathBuf,
    offset: u64,
    len: u64,
}

/// Chunks held on local disk, by digest.
#[derive(Debug, Default)]
pub struct LocalIndex {
    places: Mutex<HashMap<Digest, Place>>,
}

impl LocalIndex {
    /// Index every chunk of `m`, the manifest of the file at `path`.
    pub fn add_file(&self, path: &Path, m: &FileManifest) {
        let mut places = crate::sync::lock(&self.places);
        for (i, d) in m.chunks.iter().enumerate() {
            let (start, end) = m.chunk_range(i as u64);
            places.entry(*d).or_insert_with(|| Place {
                path: path.to_path_buf(),
                offset: start,
                len: end - start,
            });
        }
    }

    /// Index a published folder by its `.distpoint/manifest.json` (the
    /// manifest is not trusted: what it points at is hashed before use).
    /// Returns how many files it listed.
    pub fn add_published(&self, dir: &Path) -> usize {
        let Ok(bytes) = std::fs::read(dir.join(META_DIR).join(MANIFEST_FILE)) else {
            return 0;
        };
        let Ok(package) = serde_json::from_slice::<PackageManifest>(&bytes) else {
            return 0;
        };
        let mut n = 0;
        for rel in package.files.keys() {
            if let Some(Ok(m)) = package.file(rel) {
                if super::check::safe_relative(rel) {
                    self.add_file(&dir.join(rel), &m);
                    n += 1;
                }
            }
        }
        n
    }

    /// Hash every regular file beneath `seed` (no dotfiles, no symlinks)
    /// in chunks of `chunk_size` and index them. Blocking; returns the
    /// bytes hashed.
    pub fn add_seed(&self, seed: &Path, chunk_size: u64) -> std::io::Result<u64> {
        let mut hashed = 0;
        let mut folders = vec![seed.to_path_buf()];
        while let Some(folder) = folders.pop() {
            for entry in std::fs::read_dir(&folder)? {
                let entry = entry?;
                if entry.file_name().to_string_lossy().starts_with('.') {
                    continue;
                }
                let kind = entry.file_type()?;
                if kind.is_dir() {
                    folders.push(entry.path());
                } else if kind.is_file() {
                    let f = std::fs::File::open(entry.path())?;
                    let m = FileManifest::compute(std::io::BufReader::new(f), chunk_size)?;
                    hashed += m.size;
                    self.add_file(&entry.path(), &m);
                }
            }
        }
        Ok(hashed)
    }

    /// How many distinct chunks are indexed.
    pub fn len(&self) -> usize {
        crate::sync::lock(&self.places).len()
    }

    /// True when nothing is indexed.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl LocalChunks for LocalIndex {
    fn chunk(&self, digest: &Digest, len: u64) -> Option<Vec<u8>> {
        let place = crate::sync::lock(&self.places).get(digest).cloned()?;
        if place.len != len {
            return None;
        }
        let f = std::fs::File::open(&place.path).ok()?;
        let mut buf = vec![0u8; len as usize];
        f.read_exact_at(&mut buf, place.offset).ok()?;
        Some(buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_are_found_by_digest_in_files_and_seeds() {
        let tmp = tempfile::tempdir().unwrap();
        let data: Vec<u8> = (0..20_000u32).map(|i| (i * 31 % 253) as u8).collect();
        let seed = tmp.path().join("seed");
        std::fs::create_dir_all(seed.join("sub")).unwrap();
        std::fs::write(seed.join("sub/a.bin"), &data).unwrap();
        std::fs::write(seed.join(".hidden"), b"not indexed").unwrap();
        let idx = LocalIndex::default();
        assert_eq!(idx.add_seed(&seed, 4096).unwrap(), 20_000);
        let m = FileManifest::compute(&data[..], 4096).unwrap();
        assert_eq!(idx.chunk(&m.chunks[2], 4096).unwrap(), &data[8192..12288]);
        // The last chunk is shorter; a wrong length is no match.
        assert_eq!(
            idx.chunk(&m.chunks[4], 20_000 - 16384).unwrap(),
            &data[16384..]
        );
        assert!(idx.chunk(&m.chunks[4], 4096).is_none());
        assert!(idx.chunk(&[7u8; 32], 4096).is_none());
        assert_eq!(idx.add_published(tmp.path()), 0);
    }
}
