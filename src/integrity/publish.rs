//! `distpoint publish DIR`: hash a package folder and write its manifest
//! (and signature).

use super::hashing::compute_file;
use super::keys::{KeyError, PrivateKey};
use super::published::{MANIFEST_FILE, META_DIR, SIGNATURE_FILE};
use super::{hex, sha256, Digest, FileManifest, PackageEntry, PackageManifest};
use super::{MAX_CHUNK_SIZE, MIN_CHUNK_SIZE};
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

/// Why publishing failed.
#[derive(Debug)]
pub enum PublishError {
    /// A file or folder could not be read or written.
    Io(PathBuf, std::io::Error),
    /// A file name is not UTF-8 (the manifest's keys are JSON strings).
    NotUtf8(PathBuf),
    /// The chunk size is out of range.
    ChunkSize(u64),
    /// The signing key could not be used.
    Key(KeyError),
}

impl fmt::Display for PublishError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PublishError::Io(p, e) => write!(f, "{}: {e}", p.display()),
            PublishError::NotUtf8(p) => write!(f, "{}: file name is not UTF-8", p.display()),
            PublishError::ChunkSize(c) => write!(
                f,
                "chunk size {c} must be between {MIN_CHUNK_SIZE} and {MAX_CHUNK_SIZE} bytes"
            ),
            PublishError::Key(e) => write!(f, "signing key: {e}"),
        }
    }
}

impl std::error::Error for PublishError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            PublishError::Io(_, e) => Some(e),
            PublishError::Key(e) => Some(e),
            _ => None,
        }
    }
}

/// What `publish` wrote.
#[derive(Debug)]
pub struct Published {
    /// SHA-256 of the exact `manifest.json` bytes.
    pub package_hash: Digest,
    /// Each file's relative path and root, sorted.
    pub roots: Vec<(String, Digest)>,
    /// Path of `manifest.json`.
    pub manifest_path: PathBuf,
    /// Path of the signature, when signed.
    pub signature_path: Option<PathBuf>,
    /// The release number written.
    pub sequence: u64,
}

/// Every regular file under `dir`, except dotfiles, dot-folders (so also
/// `.distpoint/`) and symlinks, as (relative path with `/`, full path).
fn list(dir: &Path) -> Result<Vec<(String, PathBuf)>, PublishError> {
    let mut out = Vec::new();
    let mut todo = vec![(String::new(), dir.to_path_buf())];
    while let Some((prefix, folder)) = todo.pop() {
        let entries =
            std::fs::read_dir(&folder).map_err(|e| PublishError::Io(folder.clone(), e))?;
        for entry in entries {
            let entry = entry.map_err(|e| PublishError::Io(folder.clone(), e))?;
            let path = entry.path();
            let name = entry
                .file_name()
                .into_string()
                .map_err(|_| PublishError::NotUtf8(path.clone()))?;
            if name.starts_with('.') {
                continue; // the server never serves dotfiles
            }
            let kind = entry
                .file_type()
                .map_err(|e| PublishError::Io(path.clone(), e))?;
            let rel = format!("{prefix}{name}");
            if kind.is_dir() {
                todo.push((format!("{rel}/"), path));
            } else if kind.is_file() {
                out.push((rel, path));
            }
        }
    }
    out.sort();
    Ok(out)
}

/// Hash `files` on every core, each file read once.
fn hash_all(
    files: &[(String, PathBuf)],
    chunk_size: u64,
) -> Result<Vec<FileManifest>, PublishError> {
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<Result<FileManifest, PublishError>>>> =
        Mutex::new((0..files.len()).map(|_| None).collect());
    let workers = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(files.len().max(1));
    std::thread::scope(|s| {
        for _ in 0..workers {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some((_, path)) = files.get(i) else { break };
                let r = std::fs::File::open(path)
                    .and_then(|f| compute_file(&f, chunk_size))
                    .map_err(|e| PublishError::Io(path.clone(), e));
                crate::sync::lock(&results)[i] = Some(r);
            });
        }
    });
    results
        .into_inner()
        .expect("results lock")
        .into_iter()
        .map(|r| r.expect("every file hashed"))
        .collect()
}

fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), PublishError> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes).map_err(|e| PublishError::Io(tmp.clone(), e))?;
    std::fs::rename(&tmp, path).map_err(|e| PublishError::Io(path.to_path_buf(), e))
}

/// What a release says about itself besides its files.
#[derive(Debug, Clone, Default)]
pub struct Release {
    /// Release number (`None`: the current Unix time).
    pub sequence: Option<u64>,
    /// Expiry, if the package must not be taken after a time.
    pub expires: Option<std::time::SystemTime>,
}

/// Hash `dir` and write `dir/.distpoint/manifest.json`, signed with `key`
/// when given (otherwise any old signature is removed: it would not match).
pub fn publish(
    dir: &Path,
    chunk_size: u64,
    key: Option<&PrivateKey>,
    release: &Release,
) -> Result<Published, PublishError> {
    if !(MIN_CHUNK_SIZE..=MAX_CHUNK_SIZE).contains(&chunk_size) {
        return Err(PublishError::ChunkSize(chunk_size));
    }
    let files = list(dir)?;
    let manifests = hash_all(&files, chunk_size)?;
    let mut entries = BTreeMap::new();
    let mut roots = Vec::new();
    for ((rel, _), m) in files.iter().zip(&manifests) {
        roots.push((rel.clone(), m.root));
        entries.insert(
            rel.clone(),
            PackageEntry {
                size: m.size,
                sha256: hex(&m.sha256),
                root: hex(&m.root),
                chunks: m.chunks.iter().map(|c| hex(c)).collect(),
            },
        );
    }
    let now = std::time::SystemTime::now();
    let manifest = PackageManifest {
        version: 1,
        chunk_size,
        sequence: Some(release.sequence.unwrap_or_else(|| {
            now.duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs())
        })),
        expires: release
            .expires
            .map(|t| humantime::format_rfc3339_seconds(t).to_string()),
        files: entries,
    };
    let mut bytes = serde_json::to_vec_pretty(&manifest).expect("manifest serializes");
    bytes.push(b'\n');
    let meta = dir.join(META_DIR);
    std::fs::create_dir_all(&meta).map_err(|e| PublishError::Io(meta.clone(), e))?;
    let manifest_path = meta.join(MANIFEST_FILE);
    let sig_path = meta.join(SIGNATURE_FILE);
    // Signature first: a server that sees the new manifest then finds the
    // signature that goes with it.
    let signature_path = match key {
        Some(k) => {
            let sig = k.sign(&bytes).map_err(PublishError::Key)?;
            write_atomic(&sig_path, &sig)?;
            Some(sig_path)
        }
        None => {
            match std::fs::remove_file(&sig_path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(PublishError::Io(sig_path, e)),
            }
            None
        }
    };
    write_atomic(&manifest_path, &bytes)?;
    Ok(Published {
        sequence: manifest.sequence(),
        package_hash: sha256(&bytes),
        roots,
        manifest_path,
        signature_path,
    })
}
