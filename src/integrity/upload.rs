//! `distpoint publish DIR --to s3://BUCKET/PREFIX`: after `publish` wrote
//! the manifest, make `PREFIX` hold exactly what a distpoint path with that
//! `dir` serves: every listed file under its relative path, and
//! `.distpoint/manifest.json` (and `.sig`).
//!
//! Only files that differ are uploaded: a file is unchanged when the
//! manifest already in the store lists it with the same size and chunk
//! digests and the store holds an object of that size. The signature goes
//! up before the manifest and the manifest last, so a reader never sees a
//! manifest whose files are not there yet. Objects below the prefix that the
//! new manifest does not list are removed afterwards.

use super::published::{MANIFEST_FILE, META_DIR, SIGNATURE_FILE};
use super::{PackageEntry, PackageManifest};
use crate::objstore::{ObjectInfo, Store, StoreError};
use bytes::Bytes;
use futures_util::stream::{self, StreamExt, TryStreamExt};
use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};

/// Files uploaded at once.
const UPLOADS_IN_FLIGHT: usize = 4;

/// Why an upload failed.
#[derive(Debug)]
pub enum UploadError {
    /// A local file could not be read.
    Io(PathBuf, std::io::Error),
    /// The manifest just written does not parse (a bug, or a concurrent edit).
    Manifest(serde_json::Error),
    /// The store refused or could not be reached.
    Store(StoreError),
}

impl fmt::Display for UploadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UploadError::Io(p, e) => write!(f, "{}: {e}", p.display()),
            UploadError::Manifest(e) => write!(f, "the new manifest: {e}"),
            UploadError::Store(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for UploadError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            UploadError::Io(_, e) => Some(e),
            UploadError::Manifest(e) => Some(e),
            UploadError::Store(e) => Some(e),
        }
    }
}

impl From<StoreError> for UploadError {
    fn from(e: StoreError) -> Self {
        UploadError::Store(e)
    }
}

/// What an upload did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Uploaded {
    /// Files uploaded (relative paths, sorted).
    pub files: Vec<String>,
    /// Their bytes.
    pub bytes: u64,
    /// Files left as they were in the store.
    pub unchanged: usize,
    /// Objects removed because the new manifest does not list them.
    pub removed: Vec<String>,
}

/// The relative key of the manifest and the signature.
pub fn manifest_key() -> String {
    format!("{META_DIR}/{MANIFEST_FILE}")
}

/// The relative key of the signature.
pub fn signature_key() -> String {
    format!("{META_DIR}/{SIGNATURE_FILE}")
}

fn same_content(
    old: Option<&PackageEntry>,
    new: &PackageEntry,
    object: Option<&ObjectInfo>,
) -> bool {
    matches!((old, object), (Some(o), Some(obj))
        if o.size == new.size && o.chunks == new.chunks && obj.size == new.size)
}

/// Upload the package published in `dir` to `store`.
pub async fn upload(dir: &Path, store: &Store) -> Result<Uploaded, UploadError> {
    let meta = dir.join(META_DIR);
    let read = |p: PathBuf| std::fs::read(&p).map_err(|e| UploadError::Io(p, e));
    let manifest_bytes = read(meta.join(MANIFEST_FILE))?;
    let signature = match std::fs::read(meta.join(SIGNATURE_FILE)) {
        Ok(s) => Some(s),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(UploadError::Io(meta.join(SIGNATURE_FILE), e)),
    };
    let new: PackageManifest =
        serde_json::from_slice(&manifest_bytes).map_err(UploadError::Manifest)?;
    // What the store holds now; an unreadable old manifest only means
    // that every file is uploaded again.
    let old: Option<PackageManifest> = store
        .get_optional(&manifest_key())
        .await?
        .and_then(|b| serde_json::from_slice(&b).ok())
        .filter(|m: &PackageManifest| m.chunk_size == new.chunk_size);
    let listed: HashMap<String, ObjectInfo> = store
        .list()
        .await?
        .into_iter()
        .map(|o| (o.rel.clone(), o))
        .collect();
    let mut report = Uploaded::default();
    let mut todo = Vec::new();
    for (rel, entry) in &new.files {
        let before = old.as_ref().and_then(|m| m.files.get(rel));
        if same_content(before, entry, listed.get(rel)) {
            report.unchanged += 1;
        } else {
            todo.push((rel.clone(), entry.size));
        }
    }
    stream::iter(todo.iter().map(|(rel, _)| {
        let path = dir.join(rel);
        async move { store.put_file(rel, &path).await }
    }))
    .buffer_unordered(UPLOADS_IN_FLIGHT)
    .try_collect::<Vec<()>>()
    .await?;
    report.files = todo.iter().map(|(r, _)| r.clone()).collect();
    report.bytes = todo.iter().map(|(_, n)| n).sum();
    match signature {
        Some(sig) => store.put(&signature_key(), Bytes::from(sig)).await?,
        None => store.delete(&signature_key()).await?,
    }
    store
        .put(&manifest_key(), Bytes::from(manifest_bytes))
        .await?;
    let keep =
        |rel: &str| new.files.contains_key(rel) || rel == manifest_key() || rel == signature_key();
    let mut stale: Vec<String> = listed.keys().filter(|r| !keep(r)).cloned().collect();
    stale.sort();
    for rel in &stale {
        store.delete(rel).await?;
    }
    report.removed = stale;
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::SystemTime;

    fn entry(size: u64, chunks: &[&str]) -> PackageEntry {
        PackageEntry {
            size,
            sha256: "s".into(),
            root: "r".into(),
            chunks: chunks.iter().map(|c| c.to_string()).collect(),
        }
    }

    #[test]
    fn a_file_is_unchanged_only_with_the_same_chunks_and_an_object_of_its_size() {
        let object = |size| ObjectInfo {
            rel: "f".into(),
            size,
            etag: None,
            last_modified: SystemTime::UNIX_EPOCH,
        };
        let new = entry(10, &["a", "b"]);
        assert!(same_content(
            Some(&entry(10, &["a", "b"])),
            &new,
            Some(&object(10))
        ));
        assert!(!same_content(
            Some(&entry(10, &["a", "c"])),
            &new,
            Some(&object(10))
        ));
        assert!(!same_content(
            Some(&entry(10, &["a", "b"])),
            &new,
            Some(&object(9))
        ));
        assert!(!same_content(Some(&entry(10, &["a", "b"])), &new, None));
        assert!(!same_content(None, &new, Some(&object(10))));
        assert_eq!(manifest_key(), ".distpoint/manifest.json");
        assert_eq!(signature_key(), ".distpoint/manifest.json.sig");
    }
}
