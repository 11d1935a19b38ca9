//! `integrity = "published"`: the package manifest written by `distpoint
//! publish`, its signature, and the publisher keys that must have made it.
//!
//! The manifest is re-read whenever `manifest.json`, its `.sig` or a key
//! file changes identity (checked with `stat` on each request, which costs
//! microseconds), so a republish takes effect at once and without a restart.
//! A path whose manifest is missing, unreadable, invalid or (with
//! `publisher_keys`) not signed by one of the keys is unavailable as a whole;
//! the reason is logged once per change, not per request.

use super::keys::PublicKey;
use super::{FileManifest, PackageManifest};
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
}

type Stamp = Vec<Option<FileIdentity>>;
/// A path's folder and its publisher keys.
type PackageKey = (PathBuf, Vec<PathBuf>);

struct Loaded {
    stamp: Stamp,
    result: Result<Arc<Package>, String>,
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

impl PackageStore {
    /// The package of `vpath`, or why the path is unavailable. Blocking
    /// (a few `stat`s; a read when something changed).
    pub fn get(&self, vpath: &Vpath) -> Result<Arc<Package>, String> {
        let meta = vpath.dir.join(META_DIR);
        let files: Vec<PathBuf> = [meta.join(MANIFEST_FILE), meta.join(SIGNATURE_FILE)]
            .into_iter()
            .chain(vpath.publisher_keys.iter().cloned())
            .collect();
        let stamp: Stamp = files.iter().map(|p| stat(p)).collect();
        let key = (vpath.dir.clone(), vpath.publisher_keys.clone());
        if let Some(l) = self.loaded.lock().expect("package lock").get(&key) {
            if l.stamp == stamp {
                return l.result.clone();
            }
        }
        let result = load(vpath, &meta).map(Arc::new);
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
        self.loaded
            .lock()
            .expect("package lock")
            .insert(key, loaded);
        result
    }
}

fn load(vpath: &Vpath, meta: &Path) -> Result<Package, String> {
    let manifest_path = meta.join(MANIFEST_FILE);
    let bytes = std::fs::read(&manifest_path)
        .map_err(|e| format!("cannot read {}: {e}", manifest_path.display()))?;
    let sig_path = meta.join(SIGNATURE_FILE);
    let signature = match std::fs::read(&sig_path) {
        Ok(s) => Some(s),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(format!("cannot read {}: {e}", sig_path.display())),
    };
    if !vpath.publisher_keys.is_empty() {
        let sig = signature
            .as_deref()
            .ok_or_else(|| format!("{} is missing (publisher_keys is set)", sig_path.display()))?;
        let mut keys = Vec::new();
        for k in &vpath.publisher_keys {
            keys.push(PublicKey::load(k).map_err(|e| format!("publisher key: {e}"))?);
        }
        if !keys.iter().any(|k| k.verify(&bytes, sig)) {
            return Err(format!(
                "{} does not verify with any publisher key",
                sig_path.display()
            ));
        }
    }
    let manifest: PackageManifest = serde_json::from_slice(&bytes)
        .map_err(|e| format!("invalid {}: {e}", manifest_path.display()))?;
    if manifest.version != 1 {
        return Err(format!("unsupported manifest version {}", manifest.version));
    }
    if !(MIN_CHUNK_SIZE..=MAX_CHUNK_SIZE).contains(&manifest.chunk_size) {
        return Err(format!("unsupported chunk_size {}", manifest.chunk_size));
    }
    let mut files = HashMap::new();
    for rel in manifest.files.keys() {
        let m = manifest
            .file(rel)
            .expect("listed")
            .map_err(|e| format!("entry {rel:?}: {e}"))?;
        files.insert(rel.clone(), Arc::new(m));
    }
    Ok(Package {
        bytes: Bytes::from(bytes),
        signature: signature.map(Bytes::from),
        files,
    })
}
