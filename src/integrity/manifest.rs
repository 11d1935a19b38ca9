//! The manifest formats (README "Integrity"), their JSON forms, and hashing a file
//! into a manifest.

use super::chunker::ChunkHasher;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use std::collections::BTreeMap;
use std::fmt;
use std::io::Read;

/// A raw SHA-256 digest.
pub type Digest = [u8; 32];

/// Lower-case hex of bytes.
pub fn hex(bytes: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(HEX[(b >> 4) as usize] as char);
        s.push(HEX[(b & 15) as usize] as char);
    }
    s
}

/// Parse 64 hex digits into a digest.
pub fn parse_digest(s: &str) -> Option<Digest> {
    if s.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, pair) in s.as_bytes().chunks(2).enumerate() {
        let hi = (pair[0] as char).to_digit(16)?;
        let lo = (pair[1] as char).to_digit(16)?;
        out[i] = (hi * 16 + lo) as u8;
    }
    Some(out)
}

/// Why a manifest could not be used.
#[derive(Debug)]
pub enum ManifestError {
    /// Not valid JSON of the expected shape.
    Json(String),
    /// A digest is not 64 hex digits.
    BadDigest(String),
    /// The fields contradict each other (chunk count vs size, root vs chunks).
    Inconsistent(String),
}

impl fmt::Display for ManifestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ManifestError::Json(e) => write!(f, "invalid manifest JSON: {e}"),
            ManifestError::BadDigest(d) => write!(f, "invalid SHA-256 hex digest {d:?}"),
            ManifestError::Inconsistent(e) => write!(f, "inconsistent manifest: {e}"),
        }
    }
}

impl std::error::Error for ManifestError {}

/// Number of chunks of a file of `size` bytes (an empty file has none).
pub fn chunk_count(size: u64, chunk_size: u64) -> u64 {
    size.div_ceil(chunk_size)
}

/// `root = SHA-256(d1 || … || dn)`; for no chunks, SHA-256 of nothing.
pub fn root_of(chunks: &[Digest]) -> Digest {
    let mut h = Sha256::new();
    for c in chunks {
        h.update(c);
    }
    h.finalize().into()
}

/// SHA-256 of bytes.
pub fn sha256(bytes: &[u8]) -> Digest {
    Sha256::digest(bytes).into()
}

/// The manifest of one file (`GET FILE?manifest`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileManifest {
    /// File size in bytes.
    pub size: u64,
    /// Chunk size in bytes (the last chunk may be shorter).
    pub chunk_size: u64,
    /// SHA-256 of the whole file.
    pub sha256: Digest,
    /// SHA-256 over the concatenated raw chunk digests.
    pub root: Digest,
    /// SHA-256 of each chunk.
    pub chunks: Vec<Digest>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileManifestJson {
    size: u64,
    chunk_size: u64,
    sha256: String,
    root: String,
    chunks: Vec<String>,
}

fn digest_field(s: &str) -> Result<Digest, ManifestError> {
    parse_digest(s).ok_or_else(|| ManifestError::BadDigest(s.to_string()))
}

impl FileManifest {
    /// Hash everything `reader` yields, reading it once for both the chunk
    /// digests and the whole-file digest. Blocking.
    pub fn compute(mut reader: impl Read, chunk_size: u64) -> std::io::Result<FileManifest> {
        assert!(chunk_size > 0, "chunk_size must be positive");
        let mut whole = Sha256::new();
        let mut chunks = Vec::new();
        let mut buf = vec![0u8; chunk_size.min(1 << 20) as usize];
        let mut size = 0u64;
        let mut chunker = ChunkHasher::new(chunk_size, u64::MAX, 0);
        loop {
            let n = match reader.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            whole.update(&buf[..n]);
            chunker.update(&buf[..n], |c| chunks.push(c.digest));
            size += n as u64;
        }
        chunks.extend(chunker.finish().map(|c| c.digest));
        Ok(FileManifest {
            size,
            chunk_size,
            sha256: whole.finalize().into(),
            root: root_of(&chunks),
            chunks,
        })
    }

    /// Byte range `[start, end)` of chunk `index`.
    pub fn chunk_range(&self, index: u64) -> (u64, u64) {
        let start = index * self.chunk_size;
        (start, (start + self.chunk_size).min(self.size))
    }

    /// Check that the fields agree: chunk count matches size, root matches chunks.
    pub fn check(&self) -> Result<(), ManifestError> {
        if self.chunk_size == 0 {
            return Err(ManifestError::Inconsistent("chunk_size is 0".into()));
        }
        if chunk_count(self.size, self.chunk_size) != self.chunks.len() as u64 {
            return Err(ManifestError::Inconsistent(format!(
                "{} chunks listed, {} expected for {} bytes",
                self.chunks.len(),
                chunk_count(self.size, self.chunk_size),
                self.size
            )));
        }
        if root_of(&self.chunks) != self.root {
            return Err(ManifestError::Inconsistent(
                "root does not match the chunk digests".into(),
            ));
        }
        if self.size == 0 && self.sha256 != sha256(b"") {
            return Err(ManifestError::Inconsistent(
                "empty file with a non-empty sha256".into(),
            ));
        }
        Ok(())
    }

    /// The JSON form clients get from `FILE?manifest`.
    pub fn to_json(&self) -> String {
        let j = FileManifestJson {
            size: self.size,
            chunk_size: self.chunk_size,
            sha256: hex(&self.sha256),
            root: hex(&self.root),
            chunks: self.chunks.iter().map(|c| hex(c)).collect(),
        };
        serde_json::to_string(&j).expect("manifest serializes")
    }

    /// Parse and check the JSON form of `FILE?manifest`.
    pub fn from_json(text: &str) -> Result<FileManifest, ManifestError> {
        let j: FileManifestJson =
            serde_json::from_str(text).map_err(|e| ManifestError::Json(e.to_string()))?;
        FileManifest::from_hex(j.size, j.chunk_size, &j.sha256, &j.root, &j.chunks)
    }

    /// Build and check a manifest from its hex fields.
    fn from_hex(
        size: u64,
        chunk_size: u64,
        sha256: &str,
        root: &str,
        chunks: &[String],
    ) -> Result<FileManifest, ManifestError> {
        let m = FileManifest {
            size,
            chunk_size,
            sha256: digest_field(sha256)?,
            root: digest_field(root)?,
            chunks: chunks
                .iter()
                .map(|c| digest_field(c))
                .collect::<Result<_, _>>()?,
        };
        m.check()?;
        Ok(m)
    }
}

/// One file of a published package.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PackageEntry {
    /// Size in bytes.
    pub size: u64,
    /// Whole-file SHA-256, hex.
    pub sha256: String,
    /// Chunk root, hex.
    pub root: String,
    /// Chunk digests, hex.
    pub chunks: Vec<String>,
}

/// `DIR/.distpoint/manifest.json` as `distpoint publish` writes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PackageManifest {
    /// Format version: 1.
    pub version: u32,
    /// Chunk size of every file.
    pub chunk_size: u64,
    /// Release number: a replica never goes back to a lower one (default
    /// at publish: the Unix time). Absent in older manifests: 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sequence: Option<u64>,
    /// RFC 3339 time after which the package must not be taken (freeze).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires: Option<String>,
    /// Relative path (forward slashes) → entry.
    pub files: BTreeMap<String, PackageEntry>,
}

/// How far past `expires` a manifest is still taken (clock skew).
pub const EXPIRY_SKEW: std::time::Duration = std::time::Duration::from_secs(300);

impl PackageManifest {
    /// The release number (0 when the manifest has none).
    pub fn sequence(&self) -> u64 {
        self.sequence.unwrap_or(0)
    }

    /// When the package expires, if it does; an `expires` that does not
    /// parse is an error.
    pub fn expires_at(&self) -> Result<Option<std::time::SystemTime>, ManifestError> {
        self.expires
            .as_deref()
            .map(|e| {
                humantime::parse_rfc3339_weak(e).map_err(|_| {
                    ManifestError::Inconsistent(format!("expires {e:?} is not RFC 3339"))
                })
            })
            .transpose()
    }

    /// True when `expires` is more than [`EXPIRY_SKEW`] before `now`.
    pub fn expired(&self, now: std::time::SystemTime) -> Result<bool, ManifestError> {
        Ok(self.expires_at()?.is_some_and(|at| at + EXPIRY_SKEW < now))
    }

    /// The manifest of one listed file, checked.
    pub fn file(&self, rel: &str) -> Option<Result<FileManifest, ManifestError>> {
        let e = self.files.get(rel)?;
        Some(FileManifest::from_hex(
            e.size,
            self.chunk_size,
            &e.sha256,
            &e.root,
            &e.chunks,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_file_has_no_chunks_and_root_is_sha256_of_nothing() {
        let m = FileManifest::compute(&b""[..], 4096).unwrap();
        assert!(m.chunks.is_empty());
        assert_eq!(m.root, sha256(b""));
        assert_eq!(m.sha256, sha256(b""));
        m.check().unwrap();
    }

    #[test]
    fn chunks_and_root_match_an_independent_computation() {
        let data: Vec<u8> = (0..10_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let m = FileManifest::compute(&data[..], 4096).unwrap();
        let expect: Vec<Digest> = data.chunks(4096).map(sha256).collect();
        assert_eq!(m.chunks, expect);
        let cat: Vec<u8> = expect.iter().flatten().copied().collect();
        assert_eq!(m.root, sha256(&cat));
        assert_eq!(m.sha256, sha256(&data));
        assert_eq!(m.chunk_range(2), (8192, 10_000));
        let back = FileManifest::from_json(&m.to_json()).unwrap();
        assert_eq!(back, m);
    }

    #[test]
    fn inconsistent_json_is_refused() {
        let data = vec![1u8; 5000];
        let mut m = FileManifest::compute(&data[..], 4096).unwrap();
        m.root[0] ^= 1;
        assert!(FileManifest::from_json(&m.to_json()).is_err());
        assert!(FileManifest::from_json("{\"size\":1}").is_err());
        assert_eq!(parse_digest("zz"), None);
    }
}
