//! `integrity = "published"`: the package manifest written by `distpoint
//! publish`, its signature, and the publisher keys that must have made it.
//!
//! The manifest is re-read whenever `manifest.json`, its `.sig` or a key
//! file changes identity (checked with `stat` on each request, which costs
//! microseconds), so a republish takes effect at once and without a restart.
//! A path whose manifest is missing, unreadable, invalid or (with
//! `publisher_keys`) not signed by one of the keys is unavailable as a whole;
//! the reason is logged once per change, not per request.

use super::keys::{KeyError, PublicKey};
use super::{FileManifest, ManifestError, PackageManifest};
use super::{MAX_CHUNK_SIZE, MIN_CHUNK_SIZE};
use crate::resolve::FileIdentity;
use crate::vpath::Vpath;
use bytes::Bytes;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use tracing::{error, info};

/// Folder inside a published package that holds its manifest.
pub const META_DIR: &str = ".distpoint";
/// The package manifest's file name.
pub const MANIFEST_FILE: &str = "manifest.json";
/// The signature's file name.
pub const SIGNATURE_FILE: &str = "manifest.json.sig";

/// A loaded, checked package.
#[derive(Debug)]
pub struct Package {
    /// The exact bytes of `manifest.json`.
    pub bytes: Bytes,
    /// The raw signature, when there is one.
    pub signature: Option<Bytes>,
    /// Each listed file's manifest, by relative path.
    pub files: HashMap<String, Arc<FileManifest>>,
    /// Its release number (0 when it has none).
    pub sequence: u64,
    /// When it expires, if it does.
    pub expires: Option<std::time::SystemTime>,
}

/// Why a published path's manifest cannot be used; the path is then `503`.
#[derive(Debug)]
pub enum PackageError {
    /// A manifest, signature or key file could not be read.
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// `publisher_keys` is set and there is no signature file.
    MissingSignature(PathBuf),
    /// A publisher key could not be loaded.
    Key(KeyError),
    /// The signature verifies with none of the publisher keys.
    BadSignature(PathBuf),
    /// `manifest.json` is not a valid package manifest.
    Invalid {
        /// The manifest file.
        path: PathBuf,
        /// The parse error.
        source: serde_json::Error,
    },
    /// A manifest format version this server does not know.
    Version(u32),
    /// A chunk size outside the supported limits.
    ChunkSize(u64),
    /// The manifest expired (its `expires`, with 5 minutes' skew, is past)
    /// and the path has publisher keys: a frozen release is not served.
    Expired(String),
    /// A package-level field is invalid.
    Field(ManifestError),
    /// A serve-through path's object store could not give the manifest.
    Store(crate::objstore::StoreError),
    /// One file entry is inconsistent.
    Entry {
        /// Its relative path.
        rel: String,
        /// What is wrong.
        source: ManifestError,
    },
}

impl std::fmt::Display for PackageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PackageError::Read { path, source } => {
                write!(f, "cannot read {}: {source}", path.display())
            }
            PackageError::MissingSignature(p) => {
                write!(f, "{} is missing (publisher_keys is set)", p.display())
            }
            PackageError::Key(e) => write!(f, "publisher key: {e}"),
            PackageError::BadSignature(p) => {
                write!(f, "{} does not verify with any publisher key", p.display())
            }
            PackageError::Invalid { path, source } => {
                write!(f, "invalid {}: {source}", path.display())
            }
            PackageError::Version(v) => write!(f, "unsupported manifest version {v}"),
            PackageError::ChunkSize(c) => write!(f, "unsupported chunk_size {c}"),
            PackageError::Expired(at) => write!(f, "the package manifest expired at {at}"),
            PackageError::Field(e) => write!(f, "{e}"),
            PackageError::Store(e) => write!(f, "{e}"),
            PackageError::Entry { rel, source } => write!(f, "entry {rel:?}: {source}"),
        }
    }
}

impl std::error::Error for PackageError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            PackageError::Read { source, .. } => Some(source),
            PackageError::Key(e) => Some(e),
            PackageError::Invalid { source, .. } => Some(source),
            PackageError::Store(e) => Some(e),
            PackageError::Entry { source, .. } | PackageError::Field(source) => Some(source),
            _ => None,
        }
    }
}

type Stamp = Vec<Option<FileIdentity>>;
/// A path's folder and its publisher keys.
type PackageKey = (PathBuf, Vec<PathBuf>);

struct Loaded {
    stamp: Stamp,
    result: Result<Arc<Package>, Arc<PackageError>>,
}

/// Loaded packages, one per path folder.
#[derive(Default)]
pub struct PackageStore {
    loaded: Mutex<HashMap<PackageKey, Arc<Loaded>>>,
}

fn stat(path: &Path) -> Option<FileIdentity> {
    std::fs::metadata(path)
        .ok()
        .map(|m| FileIdentity::from_metadata(&m))
}

/// The files whose identities say whether a loaded package is current.
fn stamp_of(vpath: &Vpath) -> Stamp {
    let meta = vpath.dir.join(META_DIR);
    [meta.join(MANIFEST_FILE), meta.join(SIGNATURE_FILE)]
        .iter()
        .chain(vpath.publisher_keys.iter())
        .map(|p| stat(p))
        .collect()
}

impl PackageStore {
    /// The package of `vpath` as loaded before, if none of its files changed
    /// since: a few `stat`s and no read, cheap enough for the async threads.
    pub fn current(&self, vpath: &Vpath) -> Option<Result<Arc<Package>, Arc<PackageError>>> {
        let stamp = stamp_of(vpath);
        let key = (vpath.dir.clone(), vpath.publisher_keys.clone());
        let loaded = crate::sync::lock(&self.loaded);
        let l = loaded.get(&key)?;
        (l.stamp == stamp).then(|| unexpired(vpath, l.result.clone()))
    }

    /// The package of `vpath`, or why the path is unavailable. Blocking
    /// (a few `stat`s; a read when something changed).
    pub fn get(&self, vpath: &Vpath) -> Result<Arc<Package>, Arc<PackageError>> {
        if let Some(current) = self.current(vpath) {
            return current;
        }
        let meta = vpath.dir.join(META_DIR);
        let stamp = stamp_of(vpath);
        let key = (vpath.dir.clone(), vpath.publisher_keys.clone());
        let result = load(vpath, &meta).map(Arc::new).map_err(Arc::new);
        match &result {
            Ok(p) => info!(
                vpath = %vpath.url,
                files = p.files.len(),
                signed = p.signature.is_some(),
                "loaded published manifest"
            ),
            Err(why) => error!(vpath = %vpath.url, "published path unavailable: {why}"),
        }
        let loaded = Arc::new(Loaded {
            stamp,
            result: result.clone(),
        });
        crate::sync::lock(&self.loaded).insert(key, loaded);
        unexpired(vpath, result)
    }
}

/// A path with publisher keys does not serve an expired release (a freeze
/// the publisher signed); checked on every use, since time moves on.
pub fn unexpired(
    vpath: &Vpath,
    loaded: Result<Arc<Package>, Arc<PackageError>>,
) -> Result<Arc<Package>, Arc<PackageError>> {
    let package = loaded?;
    let now = std::time::SystemTime::now();
    match package.expires {
        Some(at) if !vpath.publisher_keys.is_empty() && at + super::manifest::EXPIRY_SKEW < now => {
            Err(Arc::new(PackageError::Expired(
                humantime::format_rfc3339_seconds(at).to_string(),
            )))
        }
        _ => Ok(package),
    }
}

fn load(vpath: &Vpath, meta: &Path) -> Result<Package, PackageError> {
    let manifest_path = meta.join(MANIFEST_FILE);
    let bytes = std::fs::read(&manifest_path).map_err(|source| PackageError::Read {
        path: manifest_path.clone(),
        source,
    })?;
    let sig_path = meta.join(SIGNATURE_FILE);
    let signature = match std::fs::read(&sig_path) {
        Ok(s) => Some(s),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(source) => {
            return Err(PackageError::Read {
                path: sig_path,
                source,
            })
        }
    };
    check(vpath, bytes, signature, &manifest_path, &sig_path)
}

/// Check a package manifest's exact bytes and its signature as `vpath`
/// requires, wherever they were read from (`manifest_path` and `sig_path`
/// name them in errors).
pub fn check(
    vpath: &Vpath,
    bytes: Vec<u8>,
    signature: Option<Vec<u8>>,
    manifest_path: &Path,
    sig_path: &Path,
) -> Result<Package, PackageError> {
    if !vpath.publisher_keys.is_empty() {
        let sig = signature
            .as_deref()
            .ok_or_else(|| PackageError::MissingSignature(sig_path.to_path_buf()))?;
        let mut keys = Vec::new();
        for k in &vpath.publisher_keys {
            keys.push(PublicKey::load(k).map_err(PackageError::Key)?);
        }
        if !keys.iter().any(|k| k.verify(&bytes, sig)) {
            return Err(PackageError::BadSignature(sig_path.to_path_buf()));
        }
    }
    let manifest: PackageManifest =
        serde_json::from_slice(&bytes).map_err(|source| PackageError::Invalid {
            path: manifest_path.to_path_buf(),
            source,
        })?;
    if manifest.version != 1 {
        return Err(PackageError::Version(manifest.version));
    }
    if !(MIN_CHUNK_SIZE..=MAX_CHUNK_SIZE).contains(&manifest.chunk_size) {
        return Err(PackageError::ChunkSize(manifest.chunk_size));
    }
    let mut files = HashMap::new();
    for rel in manifest.files.keys() {
        let m = manifest
            .file(rel)
            .expect("listed")
            .map_err(|source| PackageError::Entry {
                rel: rel.clone(),
                source,
            })?;
        files.insert(rel.clone(), Arc::new(m));
    }
    let expires = manifest.expires_at().map_err(PackageError::Field)?;
    Ok(Package {
        bytes: Bytes::from(bytes),
        signature: signature.map(Bytes::from),
        files,
        sequence: manifest.sequence(),
        expires,
    })
}
