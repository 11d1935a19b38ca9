//! One sync of one replica: verify a package manifest from the sources (in
//! priority order) before any content request, then — if it is another
//! package than the one served — assemble it in staging from local chunks
//! and the sources, every chunk verified before it is written, install it
//! as a version folder and switch to it in one swap.

use super::check::{self, Candidate, Trust};
use super::error::{Refusal, SyncError};
use super::gate::Windows;
use super::index::LocalIndex;
use super::origin;
use super::source::{Origin, Traffic};
use super::staging::{self, Layout};
use crate::config::Upstream;
use crate::integrity::keys::PublicKey;
use crate::integrity::FileManifest;
use crate::state::replicas::{ReplicaSlot, Version};
use crate::transfer::resume::{self, ResumeState, WorkFiles};
use crate::transfer::{self, DropReason, Events, FileSink, Job, RateLimit, Source};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;
use tracing::{info, warn};

/// Connections per source and file.
const CONNECTIONS: usize = 4;

/// What one sync works with.
pub struct SyncJob<'a> {
    /// The path's URL prefix.
    pub url: &'a str,
    /// The path's publisher keys.
    pub publisher_keys: &'a [PathBuf],
    /// Its upstream table.
    pub upstream: &'a Upstream,
    /// Its folders.
    pub layout: &'a Layout,
    /// Its runtime state.
    pub slot: &'a ReplicaSlot,
    /// Other folders whose published chunks may be reused.
    pub others: Vec<PathBuf>,
    /// The config's `[origins.BUCKET]` settings, for `s3://` sources.
    pub stores: &'a std::collections::BTreeMap<String, crate::objstore::StoreSettings>,
}

/// What a sync did (also when it failed): the figures for `status`.
#[derive(Debug)]
pub struct Outcome {
    /// `Ok(true)`: switched to a new version; `Ok(false)`: the served one is current.
    pub result: Result<bool, SyncError>,
    /// Bytes received over the network.
    pub fetched: u64,
    /// Content bytes copied from local disk instead.
    pub reused: u64,
}

/// Run one sync.
pub async fn run(job: &SyncJob<'_>) -> Outcome {
    let traffic = Traffic {
        bytes: job.slot.fetching.clone(),
        rate: job.upstream.rate_limit.map(|r| Arc::new(RateLimit::new(r))),
    };
    traffic.bytes.store(0, Ordering::Relaxed);
    let mut reused = 0;
    let result = attempt(job, &traffic, &mut reused).await;
    Outcome {
        result,
        fetched: traffic.bytes.load(Ordering::Relaxed),
        reused,
    }
}

async fn attempt(
    job: &SyncJob<'_>,
    traffic: &Traffic,
    reused: &mut u64,
) -> Result<bool, SyncError> {
    let windows = Windows(job.upstream.windows.clone());
    if !windows.open_now() {
        return Err(SyncError::OutsideWindows(windows.describe()));
    }
    let keys = job
        .publisher_keys
        .iter()
        .map(|p| {
            PublicKey::load(p)
                .map_err(|e| SyncError::Settings(format!("publisher key {}: {e}", p.display())))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let (origins, mut unreachable) = origin::open(job.upstream, traffic, job.stores)?;
    let served = job.slot.current();
    let trust = Trust {
        expect: job.upstream.expect,
        keys: &keys,
        served: served
            .as_ref()
            .map(|v| (v.package_hash.as_str(), v.sequence)),
    };
    let mut refused = Vec::new();
    let mut chosen = None;
    for (i, o) in origins.iter().enumerate() {
        windows.wait_open().await;
        match offer(o.as_ref(), &trust).await {
            Ok(c) => {
                chosen = Some((i, c));
                break;
            }
            Err(Offer::Refused(r)) => {
                warn!(
                    replica = job.url,
                    source = o.name(),
                    "replica: package manifest refused: {r}"
                );
                refused.push((o.name().to_string(), r));
            }
            Err(Offer::Unreachable(e)) => {
                warn!(
                    replica = job.url,
                    source = o.name(),
                    "replica: source unavailable: {e}"
                );
                unreachable.push(e);
            }
        }
    }
    let Some((first, candidate)) = chosen else {
        return Err(if refused.is_empty() {
            SyncError::Unreachable(unreachable)
        } else {
            SyncError::Refused(refused)
        });
    };
    if served
        .as_ref()
        .is_some_and(|v| v.package_hash == candidate.hash)
    {
        return Ok(false);
    }
    info!(
        replica = job.url,
        package = %candidate.hash,
        sequence = candidate.sequence,
        source = origins[first].name(),
        "replica: new package version verified; assembling it"
    );
    // Content from the source that gave the manifest and those after it;
    // the ones before it were refused or unreachable.
    let content = &origins[first..];
    let staged = build(
        job,
        &candidate,
        content,
        served.as_deref(),
        traffic,
        &windows,
        reused,
    )
    .await?;
    let (layout, id) = (
        job.layout.clone(),
        staging::version_id(candidate.sequence, &candidate.hash),
    );
    let dir = tokio::task::spawn_blocking(move || {
        let to = layout.install(&staged, &id);
        to.map_err(SyncError::disk(&staged))
    })
    .await
    .map_err(|e| SyncError::Task(e.to_string()))??;
    job.slot.switch(Arc::new(Version::new(
        dir,
        candidate.hash.clone(),
        candidate.sequence,
    )));
    info!(
        replica = job.url,
        package = %candidate.hash,
        sequence = candidate.sequence,
        "replica: switched to the new version"
    );
    Ok(true)
}

enum Offer {
    Refused(Refusal),
    Unreachable(String),
}

/// One source's manifest and signature, checked.
async fn offer(o: &dyn Origin, trust: &Trust<'_>) -> Result<Candidate, Offer> {
    let bytes = o
        .manifest()
        .await
        .map_err(|e| Offer::Unreachable(e.to_string()))?
        .ok_or_else(|| Offer::Unreachable(format!("{}/?manifest: 404 Not Found", o.name())))?;
    let signature = o
        .signature()
        .await
        .map_err(|e| Offer::Unreachable(e.to_string()))?;
    check::check(bytes, signature, trust, SystemTime::now()).map_err(Offer::Refused)
}

/// Assemble `candidate` in its staging folder; returns that folder.
async fn build(
    job: &SyncJob<'_>,
    candidate: &Candidate,
    origins: &[Arc<dyn Origin>],
    served: Option<&Version>,
    traffic: &Traffic,
    windows: &Windows,
    reused: &mut u64,
) -> Result<PathBuf, SyncError> {
    let staging = job.layout.staging(&candidate.hash);
    std::fs::create_dir_all(&staging).map_err(SyncError::disk(&staging))?;
    job.layout.clean_staging(&candidate.hash);
    let index = local_index(job, candidate, served).await;
    let gate =
        (!windows.0.is_empty()).then(|| Arc::new(windows.clone()) as Arc<dyn transfer::Gate>);
    let mut banned = BTreeSet::new();
    for (rel, m) in &candidate.files {
        let path = staging.join(rel);
        if std::fs::metadata(&path).is_ok_and(|md| md.len() == m.size) {
            // Finished by an earlier, interrupted sync (renamed only once verified).
            index.add_file(&path, m);
            continue;
        }
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(SyncError::disk(parent))?;
        }
        let asked: Vec<usize> = (0..origins.len()).filter(|i| !banned.contains(i)).collect();
        let sources: Vec<Arc<dyn Source>> = asked.iter().map(|&i| origins[i].file(rel)).collect();
        let run = FileRun {
            url: job.url,
            rel,
            path: &path,
            manifest: m,
            sources,
            index: index.clone(),
            rate: traffic.rate.clone(),
            gate: gate.clone(),
        };
        let (report, result) = run.go().await?;
        *reused += report.bytes_local;
        for (&i, s) in asked.iter().zip(&report.sources) {
            // A source that sent a bad chunk is not asked for later files.
            if s.dropped.as_ref().is_some_and(DropReason::is_integrity) {
                banned.insert(i);
            }
        }
        result.map_err(|source| SyncError::Transfer {
            file: rel.clone(),
            source,
        })?;
        index.add_file(&path, m);
    }
    staging::write_manifest(&staging, &candidate.bytes, candidate.signature.as_deref())
        .map_err(SyncError::disk(&staging))?;
    Ok(staging)
}

/// Chunks held locally: the version served, the other published paths, a seed.
async fn local_index(
    job: &SyncJob<'_>,
    candidate: &Candidate,
    served: Option<&Version>,
) -> Arc<LocalIndex> {
    let index = Arc::new(LocalIndex::default());
    if let Some(v) = served {
        index.add_published(&v.dir);
    }
    for dir in &job.others {
        index.add_published(dir);
    }
    let Some(seed) = job.upstream.seed.clone() else {
        return index;
    };
    let chunk = candidate
        .files
        .values()
        .next()
        .map_or(1 << 20, |m| m.chunk_size);
    let i = index.clone();
    let s = seed.clone();
    match tokio::task::spawn_blocking(move || i.add_seed(&s, chunk)).await {
        Ok(Ok(bytes)) => info!(replica = job.url, bytes, "replica: seed folder hashed"),
        Ok(Err(e)) => {
            warn!(replica = job.url, seed = %seed.display(), "replica: seed folder not used: {e}")
        }
        Err(e) => warn!(replica = job.url, "replica: seed task failed: {e}"),
    }
    index
}

/// One file of a sync.
struct FileRun<'a> {
    url: &'a str,
    rel: &'a str,
    path: &'a Path,
    manifest: &'a FileManifest,
    sources: Vec<Arc<dyn Source>>,
    index: Arc<LocalIndex>,
    rate: Option<Arc<RateLimit>>,
    gate: Option<Arc<dyn transfer::Gate>>,
}

type FileResult = (
    transfer::TransferReport,
    Result<(), transfer::TransferError>,
);

impl FileRun<'_> {
    async fn go(self) -> Result<FileResult, SyncError> {
        let work = WorkFiles::for_path(self.path);
        let m = Arc::new(self.manifest.clone());
        let previous =
            ResumeState::load(&work.state).filter(|s| s.matches(&m) && work.part.exists());
        let sink = Arc::new(
            FileSink::open(&work.part, m.size, previous.is_none())
                .map_err(|e| SyncError::disk(&work.part)(e.source))?,
        );
        let n = m.chunks.len() as u64;
        let state = previous.unwrap_or_else(|| ResumeState::new(self.rel, &m));
        let verified = resume::recheck(sink.clone(), m.clone(), state.chunks(n)).await;
        if !verified.is_empty() {
            info!(
                replica = self.url,
                file = self.rel,
                chunks = verified.len(),
                "replica: resuming from staging"
            );
        }
        let events = Arc::new(Progress {
            url: self.url.to_string(),
            state: Mutex::new(state),
            path: work.state.clone(),
        });
        let mut job = Job::new(m.clone(), self.sources, sink.clone());
        job.connections = CONNECTIONS;
        job.verified = verified;
        job.local = Some(self.index.clone());
        job.rate = self.rate;
        job.gate = self.gate;
        job.events = events;
        let done = transfer::run(job).await;
        if done.result.is_ok() {
            let (s, to) = (sink.clone(), self.path.to_path_buf());
            tokio::task::spawn_blocking(move || s.finish(&to))
                .await
                .map_err(|e| SyncError::Task(e.to_string()))?
                .map_err(|e| SyncError::disk(self.path)(e.source))?;
            let _ = std::fs::remove_file(&work.state);
        }
        Ok((done.report, done.result))
    }
}

/// Resume state on every checkpoint; drops in the log.
struct Progress {
    url: String,
    state: Mutex<ResumeState>,
    path: PathBuf,
}

impl Events for Progress {
    fn dropped(&self, source: &str, reason: &DropReason) {
        warn!(replica = %self.url, source, "replica: dropped source for this sync: {reason}");
    }

    fn checkpoint(&self, verified: &[(u64, u64)]) {
        let mut st = crate::sync::lock(&self.state);
        st.set_runs(verified);
        // Losing a save only costs fetching those chunks again.
        let _ = st.save(&self.path);
    }
}
