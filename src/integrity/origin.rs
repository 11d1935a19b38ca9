//! Serve-through paths: a published package that lives in an object store
//! (`origin = "s3://BUCKET/PREFIX"`), its manifest checked exactly as a
//! `dir`'s is, and re-checked for a new version every `interval_secs`.
//!
//! The manifest is asked for on a request that finds the last check older
//! than the interval (a conditional `GET`: unchanged costs no transfer), so
//! a new version is served within `interval_secs` of being published, with
//! no background task. Only one check runs at a time per path; requests
//! that come meanwhile use the version they find. When the store cannot be
//! reached the version already loaded keeps serving (checked again 10 s
//! later); with none loaded, the path is `503`.
//!
//! The last good manifest and signature are kept in `cache_dir`, so that a
//! restart while the store is down still serves the cached chunks (they are
//! checked again, signature included, as at any load).

use super::diskcache::DiskCache;
use super::published::{self, Package, PackageError};
use super::upload::{manifest_key, signature_key};
use crate::objstore::{ObjectInfo, Patience, Store, StoreError, StoreErrorKind};
use crate::vpath::Vpath;
use bytes::Bytes;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tracing::{error, info, warn};

/// After a failed check, the next one comes this soon (not a whole interval later).
const RETRY_FAILED_CHECK: Duration = Duration::from_secs(10);
/// The manifest kept in `cache_dir` for restarts (a dotfile: never a chunk name).
const KEPT_MANIFEST: &str = ".manifest.json";
/// The signature kept beside it.
const KEPT_SIGNATURE: &str = ".manifest.json.sig";
/// What the store listed with it (sizes, entity tags, times: the served
/// validators stay those of the other servers of a fleet).
const KEPT_OBJECTS: &str = ".objects.json";

type Loaded = Result<Arc<Package>, Arc<PackageError>>;

#[derive(Default)]
struct Current {
    loaded: Option<Loaded>,
    /// Entity tag of the manifest object loaded, for the conditional `GET`.
    manifest_etag: Option<String>,
    /// What the store held when the manifest was loaded, by relative path.
    objects: HashMap<String, ObjectInfo>,
    /// When the next check is due.
    due: Option<Instant>,
}

/// One serve-through path's store, package and chunk cache.
pub struct OriginPath {
    store: Store,
    cache: Arc<DiskCache>,
    vpath: Arc<Vpath>,
    current: Mutex<Current>,
    checking: tokio::sync::Mutex<()>,
}

impl OriginPath {
    /// The store this path reads.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The path's chunk cache.
    pub fn cache(&self) -> &Arc<DiskCache> {
        &self.cache
    }

    fn interval(&self) -> Duration {
        self.vpath
            .origin
            .as_ref()
            .map_or(Duration::from_secs(60), |o| o.interval)
    }

    /// What the store held for `rel` at the last manifest load.
    pub fn object(&self, rel: &str) -> Option<ObjectInfo> {
        crate::sync::lock(&self.current).objects.get(rel).cloned()
    }

    /// The package to serve now; checks the store first when a check is due.
    pub async fn package(&self) -> Loaded {
        let (due, loaded) = {
            let c = crate::sync::lock(&self.current);
            let due = c.due.is_none_or(|d| Instant::now() >= d);
            (due, c.loaded.clone())
        };
        let loaded = match (due, loaded) {
            (false, Some(l)) => l,
            (_, before) => match self.checking.try_lock() {
                Ok(_guard) => self.check().await,
                // Another request is checking: use what is there, or wait for it.
                Err(_) => match before {
                    Some(l) => l,
                    None => {
                        let _guard = self.checking.lock().await;
                        self.current_or_check().await
                    }
                },
            },
        };
        published::unexpired(&self.vpath, loaded)
    }

    async fn current_or_check(&self) -> Loaded {
        let loaded = crate::sync::lock(&self.current).loaded.clone();
        match loaded {
            Some(l) => l,
            None => self.check().await,
        }
    }

    /// Ask the store for its manifest now, whatever the interval says;
    /// true when it holds another version than the one served (after a
    /// chunk failed its hash: a republish, not tampering, may be why).
    pub async fn recheck(&self) -> bool {
        let before = crate::sync::lock(&self.current).manifest_etag.clone();
        let _guard = self.checking.lock().await;
        crate::sync::lock(&self.current).due = None;
        let _ = self.check().await;
        crate::sync::lock(&self.current).manifest_etag != before
    }

    /// One check of the store's manifest (the caller holds `checking`).
    async fn check(&self) -> Loaded {
        let etag = {
            let c = crate::sync::lock(&self.current);
            c.loaded
                .as_ref()
                .filter(|l| l.is_ok())
                .and(c.manifest_etag.clone())
        };
        let url = self.store.url().to_string();
        let result = fetch(&self.store, &self.vpath, etag.as_deref()).await;
        if let Ok(Some((Ok(p), _, objects))) = &result {
            keep(self.cache.dir(), &p.bytes, p.signature.as_ref(), objects);
        }
        let mut c = crate::sync::lock(&self.current);
        match result {
            Ok(None) => {
                c.due = Some(Instant::now() + self.interval());
            }
            Ok(Some((loaded, manifest_etag, objects))) => {
                match &loaded {
                    Ok(p) => info!(
                        vpath = %self.vpath.url,
                        origin = %url,
                        files = p.files.len(),
                        sequence = p.sequence,
                        signed = p.signature.is_some(),
                        "loaded published manifest from the object store"
                    ),
                    Err(why) => {
                        error!(vpath = %self.vpath.url, origin = %url, "serve-through path unavailable: {why}")
                    }
                }
                c.loaded = Some(loaded);
                c.manifest_etag = manifest_etag;
                c.objects = objects;
                c.due = Some(Instant::now() + self.interval());
            }
            Err(e) => {
                c.due = Some(Instant::now() + RETRY_FAILED_CHECK);
                match &c.loaded {
                    Some(Ok(_)) => warn!(
                        vpath = %self.vpath.url,
                        "cannot check the object store for a new manifest; serving the version loaded: {e}"
                    ),
                    _ => {
                        error!(vpath = %self.vpath.url, "serve-through path unavailable: {e}");
                        if c.loaded.is_none() {
                            if let Some((p, objects)) = kept(&self.vpath, self.cache.dir()) {
                                c.loaded = Some(Ok(p));
                                c.objects = objects;
                            }
                        }
                        if c.loaded.is_none() {
                            return Err(Arc::new(PackageError::Store(e)));
                        }
                    }
                }
            }
        }
        c.loaded.clone().expect("set above")
    }
}

/// What one look at the store found: the package (or why it is unusable),
/// the manifest's entity tag, and the objects listed below the prefix.
type Found = (Loaded, Option<String>, HashMap<String, ObjectInfo>);

/// Whether `vpath`'s store holds a manifest that passes the path's checks
/// (for `check-config`; nothing is cached).
pub async fn probe(vpath: &Vpath) -> Result<(), Arc<PackageError>> {
    let origin = vpath.origin.as_ref().expect("a serve-through path");
    let store = Store::new(&origin.url, &origin.settings, Patience::Quick)
        .map_err(|e| Arc::new(PackageError::Store(e)))?;
    match fetch(&store, vpath, None).await {
        Ok(Some((loaded, _, _))) => loaded.map(|_| ()),
        Ok(None) => Ok(()),
        Err(e) => Err(Arc::new(PackageError::Store(e))),
    }
}

/// The manifest, its signature and the listing, unless the manifest's tag
/// is still `etag` (`Ok(None)`). A store that cannot be reached is `Err`; a
/// manifest that fails its checks is `Ok(Some(Err(…)))`.
async fn fetch(
    store: &Store,
    vpath: &Vpath,
    etag: Option<&str>,
) -> Result<Option<Found>, StoreError> {
    {
        // Twice at most: a manifest read between a publisher's signature
        // and manifest uploads does not match its signature once.
        for attempt in 0..2 {
            let got = match store.get_if_changed(&manifest_key(), etag).await {
                Ok(None) => return Ok(None),
                Ok(Some(g)) => g,
                Err(e) if e.kind == StoreErrorKind::NotFound => {
                    let missing = PackageError::Store(e);
                    return Ok(Some((Err(Arc::new(missing)), None, HashMap::new())));
                }
                Err(e) => return Err(e),
            };
            let (info, bytes) = got;
            let signature = store.get_optional(&signature_key()).await?;
            let names = (
                PathBuf::from(store.url().join(&manifest_key())),
                PathBuf::from(store.url().join(&signature_key())),
            );
            let checked = published::check(
                vpath,
                bytes.to_vec(),
                signature.as_ref().map(|s| s.to_vec()),
                &names.0,
                &names.1,
            );
            if matches!(checked, Err(PackageError::BadSignature(_))) && attempt == 0 {
                continue;
            }
            let objects = match &checked {
                Ok(_) => store
                    .list()
                    .await?
                    .into_iter()
                    .map(|o| (o.rel.clone(), o))
                    .collect(),
                Err(_) => HashMap::new(),
            };
            let loaded = checked.map(Arc::new).map_err(Arc::new);
            return Ok(Some((loaded, info.etag, objects)));
        }
        unreachable!("the second attempt returns")
    }
}

/// Keep the manifest that was just checked, and the listing that came with
/// it, for a restart with the store down.
fn keep(
    dir: &Path,
    manifest: &Bytes,
    signature: Option<&Bytes>,
    objects: &HashMap<String, ObjectInfo>,
) {
    let write = |name: &str, bytes: &[u8]| {
        let tmp = dir.join(format!("{name}.tmp"));
        std::fs::write(&tmp, bytes).and_then(|()| std::fs::rename(&tmp, dir.join(name)))
    };
    let listing =
        serde_json::to_vec(&objects.values().collect::<Vec<_>>()).map_err(std::io::Error::other);
    let kept = listing
        .and_then(|l| write(KEPT_OBJECTS, &l))
        .and_then(|()| match signature {
            Some(s) => write(KEPT_SIGNATURE, s),
            None => match std::fs::remove_file(dir.join(KEPT_SIGNATURE)) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
                _ => Ok(()),
            },
        })
        .and_then(|()| write(KEPT_MANIFEST, manifest));
    if let Err(e) = kept {
        warn!(dir = %dir.display(), "cannot keep the manifest for restarts: {e}");
    }
}

/// The manifest kept by an earlier run, checked again as at any load, and
/// the listing kept with it.
fn kept(vpath: &Vpath, dir: &Path) -> Option<(Arc<Package>, HashMap<String, ObjectInfo>)> {
    let bytes = std::fs::read(dir.join(KEPT_MANIFEST)).ok()?;
    let listing = std::fs::read(dir.join(KEPT_OBJECTS)).ok()?;
    let objects: Vec<ObjectInfo> = serde_json::from_slice(&listing).ok()?;
    let signature = std::fs::read(dir.join(KEPT_SIGNATURE)).ok();
    let p = published::check(
        vpath,
        bytes,
        signature,
        &dir.join(KEPT_MANIFEST),
        &dir.join(KEPT_SIGNATURE),
    )
    .ok()?;
    warn!(vpath = %vpath.url, "object store unreachable: serving the manifest kept from an earlier run");
    let objects = objects.into_iter().map(|o| (o.rel.clone(), o)).collect();
    Some((Arc::new(p), objects))
}

/// Every serve-through path's state, reused across config reloads while
/// a path's settings stay the same. Chunk caches are shared by folder.
#[derive(Default)]
pub struct Origins {
    paths: Mutex<HashMap<String, Arc<OriginPath>>>,
    caches: Mutex<HashMap<PathBuf, Arc<DiskCache>>>,
}

impl Origins {
    /// The state of serve-through path `vpath` (made on first use).
    pub fn get(&self, vpath: &Arc<Vpath>) -> Result<Arc<OriginPath>, Arc<PackageError>> {
        let origin = vpath
            .origin
            .as_ref()
            .expect("called for serve-through paths only");
        {
            let paths = crate::sync::lock(&self.paths);
            if let Some(p) = paths.get(&vpath.url).filter(|p| *p.vpath == **vpath) {
                return Ok(p.clone());
            }
        }
        let store = Store::new(&origin.url, &origin.settings, Patience::Quick)
            .map_err(|e| Arc::new(PackageError::Store(e)))?;
        let cache = self.cache(&vpath.dir, origin.cache_bytes)?;
        let path = Arc::new(OriginPath {
            store,
            cache,
            vpath: vpath.clone(),
            current: Mutex::default(),
            checking: tokio::sync::Mutex::new(()),
        });
        crate::sync::lock(&self.paths).insert(vpath.url.clone(), path.clone());
        Ok(path)
    }

    fn cache(&self, dir: &Path, capacity: u64) -> Result<Arc<DiskCache>, Arc<PackageError>> {
        let mut caches = crate::sync::lock(&self.caches);
        if let Some(c) = caches.get(dir) {
            c.set_capacity(capacity);
            return Ok(c.clone());
        }
        let c = DiskCache::open(dir, capacity)
            .map(Arc::new)
            .map_err(|source| {
                Arc::new(PackageError::Read {
                    path: dir.to_path_buf(),
                    source,
                })
            })?;
        caches.insert(dir.to_path_buf(), c.clone());
        Ok(c)
    }
}
