//! Integrity: chunk manifests, hashing and verification on send.
//!
//! The README's "Integrity" section is the contract: a file is cut into `chunk_size`
//! chunks, each hashed with SHA-256; `root = SHA-256(d1 || … || dn)` over
//! the raw digests is what a client is told out of band.
//!
//! [`IntegrityState::prepare`] turns an opened file into its manifest and a
//! [`verify::VerifiedFile`] body source; the pipeline never reads a file any
//! other way.

pub mod cache;
pub mod chunker;
pub mod counters;
pub mod diskcache;
mod error;
pub mod hashing;
pub mod keys;
pub mod manifest;
pub mod metalink;
pub mod modified;
pub mod object;
pub mod origin;
pub mod publish;
pub mod published;
pub mod quarantine;
pub mod store;
pub mod upload;
pub mod verify;

pub use chunker::{DEFAULT_CHUNK_SIZE, MAX_CHUNK_SIZE, MIN_CHUNK_SIZE};
pub use counters::Counters;
pub use error::IntegrityError;
pub use manifest::{
    hex, parse_digest, sha256, Digest, FileManifest, ManifestError, PackageEntry, PackageManifest,
};

use crate::audit::Audit;
use crate::body::BlockSource;
use crate::http::Validators;
use crate::resolve::{FileIdentity, ResolvedFile};
use crate::vpath::{Integrity, Vpath};
use cache::ChunkCache;
use modified::LastModified;
use published::{Package, PackageStore};
use quarantine::Quarantine;
use std::path::Path;
use std::sync::Arc;
use store::{AutoStore, StoreError};
use tracing::{error, info};
use verify::{Trust, VerifiedFile};

/// Everything integrity keeps between requests.
pub struct IntegrityState {
    /// Auto-mode manifests.
    pub store: Arc<AutoStore>,
    /// Chunks already verified (for `verify = "cached"`).
    pub cache: Arc<ChunkCache>,
    /// Published packages.
    pub packages: Arc<PackageStore>,
    /// Published files that failed verification.
    pub quarantine: Arc<Quarantine>,
    /// The `Last-Modified` given to each path's content (never backwards).
    pub modified: LastModified,
    /// Serve-through paths: their stores, packages and chunk caches.
    pub origins: Arc<origin::Origins>,
    /// Chunks verified and refused, files quarantined.
    pub counters: Counters,
}

/// A file ready to be served: its manifest, the identity of the version
/// opened, its validators, and its verifying body source.
pub struct Prepared {
    /// The manifest every byte sent is checked against.
    pub manifest: Arc<FileManifest>,
    /// The identity of the file that was opened (and that the manifest is for).
    pub identity: FileIdentity,
    /// `ETag` (from the manifest root) and `Last-Modified` of this version.
    pub validators: Validators,
    /// Reads the file chunk by chunk, verified.
    pub source: Arc<dyn BlockSource>,
}

/// A strong validator for one file version: 128 bits of its manifest root,
/// so the same bytes give the same ETag across restarts, inode changes and
/// servers, and any change of content gives another.
pub fn etag_of(m: &FileManifest) -> String {
    format!("\"{}\"", &hex(&m.root)[..32])
}

/// `Repr-Digest` (RFC 9530) of the whole file.
pub fn repr_digest(m: &FileManifest) -> String {
    use base64::Engine;
    format!(
        "sha-256=:{}:",
        base64::engine::general_purpose::STANDARD.encode(m.sha256)
    )
}

impl IntegrityState {
    /// State persisting under `state_dir`, keeping at most `cache_bytes` of
    /// verified chunks in memory, counting into `counters`; quarantines and
    /// their release go to `audit`.
    pub fn new(state_dir: &Path, cache_bytes: u64, counters: Counters, audit: Audit) -> Self {
        let quarantine =
            Quarantine::load(state_dir).observed(audit, counters.quarantined_files.clone());
        IntegrityState {
            store: Arc::new(AutoStore::new(state_dir)),
            cache: Arc::new(ChunkCache::new(cache_bytes)),
            packages: Arc::default(),
            quarantine: Arc::new(quarantine),
            modified: LastModified::load(state_dir),
            origins: Arc::default(),
            counters,
        }
    }

    /// The published package of `vpath`; `503` when it is unavailable.
    pub async fn package(&self, vpath: &Arc<Vpath>) -> Result<Arc<Package>, IntegrityError> {
        if vpath.origin.is_some() {
            let origin = self.origin(vpath).await?;
            return origin
                .package()
                .await
                .map_err(|cause| IntegrityError::Unavailable { cause });
        }
        let loaded = match self.packages.current(vpath) {
            Some(current) => current,
            // Changed or never loaded: read and check it off the async threads.
            None => {
                let (packages, vpath) = (self.packages.clone(), vpath.clone());
                tokio::task::spawn_blocking(move || packages.get(&vpath)).await?
            }
        };
        loaded.map_err(|cause| IntegrityError::Unavailable { cause })
    }

    /// The manifest of a resolved file and a verifying source to send it from.
    /// `rest` is the path below `vpath`; `label` names the file in logs.
    pub async fn prepare(
        &self,
        vpath: &Arc<Vpath>,
        rest: &[String],
        resolved: ResolvedFile,
        label: &str,
    ) -> Result<Prepared, IntegrityError> {
        let file = resolved.file;
        let identity = resolved.identity;
        let path = vpath.dir.join(rest.join("/"));
        let (manifest, trust) = match vpath.integrity {
            Integrity::Auto => {
                let m = self
                    .store
                    .get(&file, identity, vpath.chunk_size, label)
                    .await
                    .map_err(|e| match e {
                        StoreError::Changed => IntegrityError::Changed,
                        StoreError::Io(e) => IntegrityError::Io(e),
                    })?;
                let store = self.store.clone();
                (m, Trust::Auto { store })
            }
            Integrity::Published => {
                let package = self.package(vpath).await?;
                let m = package
                    .files
                    .get(&rest.join("/"))
                    .cloned()
                    .ok_or(IntegrityError::NotListed)?;
                self.check_quarantine(&path, &file, identity, &m, label)
                    .await?;
                let quarantine = self.quarantine.clone();
                let path = path.clone();
                (m, Trust::Published { quarantine, path })
            }
        };
        let source = VerifiedFile::new(
            file,
            manifest.clone(),
            identity,
            vpath.verify,
            self.cache.clone(),
            trust,
            label.to_string(),
        )
        .counting(
            self.counters.chunks_verified.clone(),
            self.counters.refused_on(&vpath.url),
        );
        Ok(Prepared {
            validators: Validators {
                etag: etag_of(&manifest),
                last_modified: self.modified.of(&path, &manifest.root, identity.modified()),
            },
            manifest,
            identity,
            source: Arc::new(source),
        })
    }

    /// A serve-through path's state (its store client and chunk cache are
    /// made on first use, off the async threads).
    async fn origin(&self, vpath: &Arc<Vpath>) -> Result<Arc<origin::OriginPath>, IntegrityError> {
        let (origins, vp) = (self.origins.clone(), vpath.clone());
        tokio::task::spawn_blocking(move || origins.get(&vp))
            .await?
            .map_err(|cause| IntegrityError::Unavailable { cause })
    }

    /// The manifest of a serve-through path's file and a source that reads
    /// it from the object store, verified; as [`IntegrityState::prepare`]
    /// does for a file of a `dir`.
    pub async fn prepare_origin(
        &self,
        vpath: &Arc<Vpath>,
        rest: &[String],
        label: &str,
    ) -> Result<Prepared, IntegrityError> {
        let origin = self.origin(vpath).await?;
        let package = origin
            .package()
            .await
            .map_err(|cause| IntegrityError::Unavailable { cause })?;
        let rel = rest.join("/");
        let m = package
            .files
            .get(&rel)
            .cloned()
            .ok_or(IntegrityError::NotListed)?;
        let location = std::path::PathBuf::from(origin.store().url().join(&rel));
        // A listed file the store does not hold is missing, as from a `dir`.
        let object = origin.object(&rel).ok_or(IntegrityError::Missing)?;
        let mut identity = object::object_identity(&object);
        if object.size != m.size {
            error!(file = label, object = %location.display(), size = object.size, expected = m.size,
                "integrity failure: object size does not match the published manifest; object quarantined");
            let chunk = self.quarantine.add(location, identity, m.root, None);
            return Err(IntegrityError::Quarantined { chunk });
        }
        if let Some(r) = self.quarantine.get(&location) {
            // Quarantined: still so while the object is the one that failed.
            let now = origin.store().head(&rel).await;
            match now {
                Ok(o) if object::object_identity(&o) != r.identity || r.root != m.root => {
                    self.quarantine.remove(&location);
                    identity = object::object_identity(&o);
                    info!(file = label, object = %location.display(),
                        "object changed (or republished): quarantine lifted; every chunk is verified as it is sent");
                }
                _ => return Err(IntegrityError::Quarantined { chunk: r.chunk }),
            }
        }
        let source = object::ObjectFile::new(
            origin,
            rel,
            m.clone(),
            vpath.verify,
            self.cache.clone(),
            self.quarantine.clone(),
            label.to_string(),
        )
        .counting(
            self.counters.chunks_verified.clone(),
            self.counters.refused_on(&vpath.url),
            self.counters.store_read_on(&vpath.url),
        );
        Ok(Prepared {
            validators: Validators {
                etag: etag_of(&m),
                last_modified: self.modified.of(&location, &m.root, object.last_modified),
            },
            manifest: m,
            identity,
            source: Arc::new(source),
        })
    }

    /// `503` while a quarantined file is unchanged; after any change (or a
    /// republish) re-hash it whole and lift the quarantine if it matches.
    async fn check_quarantine(
        &self,
        path: &Path,
        file: &Arc<std::fs::File>,
        identity: FileIdentity,
        m: &Arc<FileManifest>,
        label: &str,
    ) -> Result<(), IntegrityError> {
        let size_ok = identity.size == m.size;
        match self.quarantine.get(path) {
            None if size_ok => return Ok(()),
            None => {
                error!(
                    file = label,
                    path = %path.display(),
                    size = identity.size,
                    expected = m.size,
                    "integrity failure: size does not match the published manifest; file quarantined"
                );
                // No chunk is named: a wrong size says nothing about which
                // chunk differs, and hashing the file to find out is not
                // worth it on a request path.
                let chunk = self
                    .quarantine
                    .add(path.to_path_buf(), identity, m.root, None);
                return Err(IntegrityError::Quarantined { chunk });
            }
            Some(r) if r.identity == identity && r.root == m.root => {
                return Err(IntegrityError::Quarantined { chunk: r.chunk })
            }
            Some(_) => {}
        }
        let (f, chunk_size) = (file.clone(), m.chunk_size);
        let computed = tokio::task::spawn_blocking(move || {
            let m = hashing::compute_file(&f, chunk_size)?;
            Ok::<_, std::io::Error>((m, FileIdentity::of(&f)?))
        })
        .await??;
        let (now, after) = computed;
        if size_ok && after == identity && now.chunks == m.chunks {
            self.quarantine.remove(path);
            info!(file = label, path = %path.display(), "content matches the published manifest again: quarantine lifted");
            return Ok(());
        }
        error!(
            file = label,
            path = %path.display(),
            "integrity failure: changed file still does not match the published manifest; stays quarantined"
        );
        // The whole file was just hashed, so the first bad chunk is known
        // (none when the listed chunks all match and the file is only longer).
        let bad = (0..m.chunks.len()).find(|&i| now.chunks.get(i) != Some(&m.chunks[i]));
        let chunk = self
            .quarantine
            .add(path.to_path_buf(), after, m.root, bad.map(|i| i as u64));
        Err(IntegrityError::Quarantined { chunk })
    }
}
