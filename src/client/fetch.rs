//! `distpoint fetch`: a verified, resumable download of one file from one
//! or more sources, a thin front end over [`crate::transfer`].
//!
//! Plan → transfer → finish. The plan checks the arguments and the
//! destination before any traffic. Each pass gets the manifest (the
//! primary's `URL?manifest`, `--manifest FILE_OR_URL`, or the one a package
//! gave), checks it against `--expect` before any content is asked for,
//! prepares the work file (resuming verified chunks of the same root), and
//! lets the engine fetch the rest from every source. The finish is fsync
//! and an atomic rename. If the primary's copy changes mid-way and its own
//! `?manifest` was used, the fetch starts again from the manifest (chunks
//! already verified are kept only if the new manifest has the same root).

use super::fetch_error::FetchError;
use super::manifest_origin::{self, Origin};
use super::output;
use super::progress::Progress;
use crate::integrity::manifest::parse_digest;
use crate::integrity::{hex, Digest, FileManifest};
use crate::objstore::{Patience, Store, StoreSettings, StoreUrl};
use crate::transfer::resume::{self, ResumeState, WorkFiles};
use crate::transfer::{
    self, Client, ClientOptions, DropReason, Events, FileSink, HttpSource, Job, RateLimit,
    S3Source, Source, SourceReport, Target, TransferReport, Tuning,
};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Restarts allowed when the file keeps changing on the server.
const MAX_RESTARTS: u32 = 3;

/// What to fetch and how.
#[derive(Debug, Clone)]
pub struct FetchOptions {
    /// The file's `https://` URL: the first source, and (without
    /// `--manifest`) where `URL?manifest` is asked for.
    pub url: String,
    /// More sources of the same file: `https://` URLs, or `s3://BUCKET/KEY`
    /// objects (reached with the `AWS_*` environment).
    pub mirrors: Vec<String>,
    /// `--manifest FILE_OR_URL`: the manifest from elsewhere.
    pub manifest_from: Option<String>,
    /// Where the verified file goes.
    pub output: PathBuf,
    /// The manifest root the file must have (hex), told out of band.
    pub expect: Option<String>,
    /// Connections per source.
    pub connections: usize,
    /// A limit for all of the fetch's traffic (shared by a package's files).
    pub rate: Option<Arc<RateLimit>>,
    /// Show a progress bar (only on a terminal in any case).
    pub progress: bool,
    /// TLS, credentials, protocols.
    pub client: ClientOptions,
    /// The server (`host:port`) that may receive the Basic credentials;
    /// `None`: the URL's. Every other source gets none.
    pub login_authority: Option<String>,
    /// The file's manifest when it is already known and verified (a file of
    /// a package whose manifest was checked): then no manifest is asked for.
    pub manifest: Option<FileManifest>,
}

/// The outcome of a successful fetch.
#[derive(Debug, Clone)]
pub struct FetchReport {
    /// The URL fetched.
    pub url: String,
    /// Where it was written.
    pub path: PathBuf,
    /// File size.
    pub size: u64,
    /// Manifest root (hex).
    pub root: String,
    /// Whole-file SHA-256 per the manifest (hex).
    pub sha256: String,
    /// Chunks in the file.
    pub chunks: u64,
    /// Chunks fetched in this run.
    pub chunks_fetched: u64,
    /// Chunks taken from a previous run's work file (re-checked from disk).
    pub chunks_resumed: u64,
    /// Content bytes received in this run, from all sources.
    pub bytes_fetched: u64,
    /// Wall time.
    pub elapsed: Duration,
    /// True when no `--expect` was given: the manifest was trusted as found.
    pub trusted_server_manifest: bool,
    /// Where the manifest came from.
    pub manifest_from: String,
    /// Connections per source.
    pub connections: usize,
    /// The protocol of the first source connected.
    pub protocol: Option<&'static str>,
    /// Times the download started over because the file changed on the server.
    pub restarts: u32,
    /// What each source did.
    pub sources: Vec<SourceReport>,
}

impl FetchReport {
    /// Megabytes per second of content received.
    pub fn mb_per_s(&self) -> f64 {
        self.bytes_fetched as f64 / self.elapsed.as_secs_f64().max(1e-9) / 1e6
    }

    /// The one result line.
    pub fn to_text(&self) -> String {
        let dropped = self.sources.iter().filter(|s| s.dropped.is_some()).count();
        format!(
            "{}: {} bytes, {} chunks verified ({} fetched, {} resumed), root {}, {:.2} s, {:.1} MB/s{}{}",
            self.path.display(),
            self.size,
            self.chunks,
            self.chunks_fetched,
            self.chunks_resumed,
            self.root,
            self.elapsed.as_secs_f64(),
            self.mb_per_s(),
            if self.sources.len() > 1 {
                format!(", {} sources ({dropped} dropped)", self.sources.len())
            } else {
                String::new()
            },
            if self.trusted_server_manifest {
                " (root not checked: no --expect)"
            } else {
                ""
            }
        )
    }

    /// The summary object for `--json`.
    pub fn to_json(&self) -> String {
        serde_json::json!({
            "ok": true,
            "url": self.url,
            "path": self.path.display().to_string(),
            "size": self.size,
            "root": self.root,
            "sha256": self.sha256,
            "chunks": self.chunks,
            "chunks_fetched": self.chunks_fetched,
            "chunks_resumed": self.chunks_resumed,
            "bytes_fetched": self.bytes_fetched,
            "seconds": self.elapsed.as_secs_f64(),
            "mb_per_s": self.mb_per_s(),
            "expected_root_checked": !self.trusted_server_manifest,
            "manifest_from": self.manifest_from,
            "connections": self.connections,
            "protocol": self.protocol.unwrap_or("none"),
            "restarts": self.restarts,
            "sources": self.sources.iter().map(SourceReport::to_json).collect::<Vec<_>>(),
        })
        .to_string()
    }
}

/// What was checked before any traffic.
struct Plan<'a> {
    opts: &'a FetchOptions,
    /// The primary (an HTTPS server).
    primary: Target,
    /// Every source: the primary first, then the mirrors, in order.
    sources: Vec<SourceSpec>,
    origin: Origin,
    expect: Option<Digest>,
    files: WorkFiles,
    client: Client,
    anonymous: Client,
    /// The server that may receive the Basic credentials.
    login: String,
}

/// One source of the file, as given.
enum SourceSpec {
    /// An HTTPS server.
    Http(Target),
    /// An object in an S3-compatible store (`s3://BUCKET/KEY`).
    Store(Store, String),
}

impl Plan<'_> {
    /// The client for requests to `t`: with the credentials only for the
    /// server they are meant for (a mirror must not learn the password).
    fn client_for(&self, t: &Target) -> &Client {
        if t.authority == self.login {
            &self.client
        } else {
            &self.anonymous
        }
    }
}

/// Fetch one file. On success the verified file is at `opts.output`.
pub async fn run(opts: &FetchOptions) -> Result<FetchReport, FetchError> {
    let t0 = Instant::now();
    let plan = plan(opts)?;
    let mut restarts = 0;
    loop {
        let client = match &plan.origin {
            Origin::Url(t) | Origin::Server(t) => plan.client_for(t),
            _ => &plan.client,
        };
        let manifest = manifest_origin::load(client, &plan.origin).await?;
        check_expect(&plan, &manifest)?;
        match transfer(&plan, manifest).await? {
            Some(mut report) => {
                report.restarts = restarts;
                report.elapsed = t0.elapsed();
                return Ok(report);
            }
            None if restarts < MAX_RESTARTS => restarts += 1,
            None => {
                return Err(FetchError::Unavailable {
                    message: format!(
                        "{}: the file kept changing on the server ({restarts} restarts)",
                        plan.primary.url
                    ),
                    sources: Vec::new(),
                })
            }
        }
    }
}

fn plan(opts: &FetchOptions) -> Result<Plan<'_>, FetchError> {
    let expect = match &opts.expect {
        Some(e) => Some(parse_digest(&e.to_ascii_lowercase()).ok_or_else(|| {
            FetchError::Usage(format!("--expect {e:?}: not a 64-digit SHA-256 hex root"))
        })?),
        None => None,
    };
    let primary = Target::parse(&opts.url)?;
    let mut sources = vec![SourceSpec::Http(primary.clone())];
    for m in &opts.mirrors {
        sources.push(match StoreUrl::is_store_url(m) {
            true => store_source(m)?,
            false => SourceSpec::Http(Target::parse(m)?),
        });
    }
    let origin = match (&opts.manifest, &opts.manifest_from) {
        (Some(m), _) => Origin::Given(m.clone()),
        (None, Some(from)) => Origin::parse(from)?,
        (None, None) => Origin::of_file(&primary),
    };
    output::check_writable(&opts.output)?;
    let client = Client::new(&opts.client)?;
    let login = match &opts.login_authority {
        Some(a) => a.clone(),
        None => primary.authority.clone(),
    };
    Ok(Plan {
        opts,
        primary,
        sources,
        origin,
        expect,
        files: WorkFiles::for_path(&opts.output),
        anonymous: client.without_credentials(),
        client,
        login,
    })
}

fn check_expect(plan: &Plan<'_>, manifest: &FileManifest) -> Result<(), FetchError> {
    let root = hex(&manifest.root);
    match plan.expect {
        Some(want) if want != manifest.root => Err(FetchError::integrity(format!(
            "{}: root {root} does not match --expect {}; no content was requested",
            plan.origin.describe(),
            hex(&want)
        ))),
        // A package's files come with a manifest checked already.
        None if !matches!(plan.origin, Origin::Given(_)) => {
            // Said on stderr whatever the output mode: this is the one thing
            // a user must not miss about an unpinned download.
            match &plan.origin {
                Origin::Server(_) => eprintln!(
                    "distpoint: no --expect given: trusting the server's own manifest (root {root})"
                ),
                other => eprintln!(
                    "distpoint: no --expect given: trusting the manifest from {} (root {root})",
                    other.describe()
                ),
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

/// The sources, the primary first.
fn sources(plan: &Plan<'_>) -> Vec<Arc<dyn Source>> {
    let tuning = match &plan.opts.rate {
        Some(r) => Tuning::for_rate(r.bytes_per_s()),
        None => Tuning::default(),
    };
    plan.sources
        .iter()
        .map(|spec| match spec {
            SourceSpec::Http(t) => {
                let client = plan.client_for(t).clone();
                Arc::new(HttpSource::new(client, t.clone(), tuning)) as Arc<dyn Source>
            }
            SourceSpec::Store(store, key) => {
                Arc::new(S3Source::new(store.clone(), key.clone())) as Arc<dyn Source>
            }
        })
        .collect()
}

/// `s3://BUCKET/KEY`: the object, reached with the `AWS_*` environment
/// (and profile files). No request is made yet.
fn store_source(url: &str) -> Result<SourceSpec, FetchError> {
    let usage = |e: &dyn std::fmt::Display| FetchError::Usage(format!("--mirror {url}: {e}"));
    let parsed = StoreUrl::parse(url).map_err(|e| usage(&e))?;
    if parsed.prefix.is_empty() {
        return Err(usage(&"names a bucket, not an object"));
    }
    let settings = StoreSettings::from_env().map_err(|e| usage(&e))?;
    let bucket = StoreUrl {
        bucket: parsed.bucket.clone(),
        prefix: String::new(),
    };
    let store = Store::new(&bucket, &settings, Patience::Quick).map_err(|e| usage(&e))?;
    Ok(SourceSpec::Store(store, parsed.prefix))
}

/// Progress, drops on stderr, resume state on every checkpoint.
struct FetchEvents {
    progress: Progress,
    state: Mutex<ResumeState>,
    state_path: PathBuf,
}

impl FetchEvents {
    fn save(&self, runs: Option<&[(u64, u64)]>) {
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(runs) = runs {
            st.set_runs(runs);
        }
        // Losing a save only costs re-fetching; it is never a correctness issue.
        let _ = st.save(&self.state_path);
    }
}

impl Events for FetchEvents {
    fn verified(&self, bytes: u64, done: u64) {
        self.progress.advance(bytes, done);
    }

    fn dropped(&self, source: &str, reason: &DropReason) {
        self.progress.note(&format!(
            "distpoint: fetch: dropped source {source}: {reason}"
        ));
    }

    fn checkpoint(&self, verified: &[(u64, u64)]) {
        self.save(Some(verified));
    }
}

/// One pass with this manifest. `Ok(None)`: the primary's file changed and
/// its manifest was the one used; start again.
async fn transfer(
    plan: &Plan<'_>,
    manifest: FileManifest,
) -> Result<Option<FetchReport>, FetchError> {
    let files = &plan.files;
    // Resume only chunks verified against this very root.
    let previous =
        ResumeState::load(&files.state).filter(|s| s.matches(&manifest) && files.part.exists());
    let have = std::fs::metadata(&files.part).map(|m| m.len()).unwrap_or(0);
    let more = match &previous {
        Some(_) => manifest.size.saturating_sub(have),
        None => manifest.size,
    };
    output::check_space(&plan.opts.output, more)?;
    let sink = Arc::new(
        FileSink::open(&files.part, manifest.size, previous.is_none())
            .map_err(output::OutputError::from)?,
    );
    let n = manifest.chunks.len() as u64;
    let manifest = Arc::new(manifest);
    let state = previous.unwrap_or_else(|| ResumeState::new(&plan.opts.url, &manifest));
    let verified = resume::recheck(sink.clone(), manifest.clone(), state.chunks(n)).await;
    let missing = n - verified.len() as u64;
    let progress = Progress::new(manifest.size, n, plan.opts.progress);
    let done_bytes: u64 = verified
        .iter()
        .map(|&c| manifest.chunk_range(c))
        .map(|(s, e)| e - s)
        .sum();
    progress.advance(done_bytes, verified.len() as u64);
    let events = Arc::new(FetchEvents {
        progress,
        state: Mutex::new(state),
        state_path: files.state.clone(),
    });
    events.save(None);
    let mut job = Job::new(manifest.clone(), sources(plan), sink.clone());
    job.connections = plan.opts.connections.max(1);
    job.verified = verified;
    job.rate = plan.opts.rate.clone();
    job.events = events.clone();
    let done = transfer::run(job).await;
    events.progress.finish();
    let report = done.report;
    if let Err(e) = done.result {
        let primary_changed = matches!(
            report.sources.first().and_then(|s| s.dropped.as_ref()),
            Some(DropReason::Changed(_))
        );
        if primary_changed && matches!(plan.origin, Origin::Server(_)) {
            return Ok(None);
        }
        return Err(FetchError::from_transfer(e, report.sources, &files.part));
    }
    finish(plan, &sink, &manifest, report, missing)
        .await
        .map(Some)
}

/// fsync, atomic rename, forget the resume state; the report.
async fn finish(
    plan: &Plan<'_>,
    sink: &Arc<FileSink>,
    manifest: &FileManifest,
    report: TransferReport,
    missing: u64,
) -> Result<FetchReport, FetchError> {
    let files = &plan.files;
    let (s, to) = (sink.clone(), files.path.clone());
    tokio::task::spawn_blocking(move || s.finish(&to))
        .await
        .map_err(|e| FetchError::Unavailable {
            message: format!("finishing task failed: {e}"),
            sources: Vec::new(),
        })?
        .map_err(output::OutputError::from)?;
    let _ = std::fs::remove_file(&files.state);
    Ok(FetchReport {
        url: plan.opts.url.clone(),
        path: files.path.clone(),
        size: manifest.size,
        root: hex(&manifest.root),
        sha256: hex(&manifest.sha256),
        chunks: manifest.chunks.len() as u64,
        chunks_fetched: report.chunks_fetched,
        chunks_resumed: report.chunks_resumed,
        bytes_fetched: report.bytes_fetched(),
        elapsed: Duration::ZERO,
        trusted_server_manifest: plan.expect.is_none() && !matches!(plan.origin, Origin::Given(_)),
        manifest_from: plan.origin.describe(),
        connections: plan.opts.connections.max(1).min(missing.max(1) as usize),
        protocol: report.protocol(),
        restarts: 0,
        sources: report.sources,
    })
}
