//! `distpoint fetch`: a verified, resumable, segmented download.
//!
//! Order of work: the manifest (`URL?manifest`) first, checked against
//! `--expect` before any content is asked for; then the destination (folder
//! writable, space free); then the chunks still missing, over N connections
//! (see [`super::segments`]); then fsync and an atomic rename. If the file
//! changes on the server mid-way (`If-Range` fails, another `ETag` or size),
//! the fetch starts again from the manifest; chunks already verified are
//! kept only if the new manifest has the same root.

use super::endpoint::{Client, ClientOptions, Target};
use super::fetch_error::FetchError;
use super::output;
use super::progress::Progress;
use super::resume::{ResumeState, WorkFiles};
use super::segments::{self, backoff, retry_after, transient_status, Shared, WorkerFail};
use super::verify::chunk_matches;
use super::{ClientError, Conn, Protocol};
use crate::integrity::manifest::parse_digest;
use crate::integrity::{hex, Digest, FileManifest};
use http::StatusCode;
use std::collections::{BTreeSet, HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Largest manifest accepted (a 1 TiB file in 1 MiB chunks is ~70 MB of JSON).
const MANIFEST_LIMIT: usize = 256 << 20;

/// Restarts allowed when the file keeps changing on the server.
const MAX_RESTARTS: u32 = 3;

/// What to fetch and how.
#[derive(Debug, Clone)]
pub struct FetchOptions {
    /// The file's `https://` URL.
    pub url: String,
    /// Where the verified file goes.
    pub output: PathBuf,
    /// The manifest root the file must have (hex), told out of band.
    pub expect: Option<String>,
    /// Parallel connections.
    pub connections: usize,
    /// Limit the total rate, bytes per second.
    pub limit_rate: Option<u64>,
    /// Show a progress bar (only on a terminal in any case).
    pub progress: bool,
    /// TLS, credentials, protocols.
    pub client: ClientOptions,
    /// The file's manifest when it is already known and verified (a file of
    /// a package whose manifest was checked): then `URL?manifest` is not asked.
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
    /// Content bytes received in this run.
    pub bytes_fetched: u64,
    /// Wall time.
    pub elapsed: Duration,
    /// True when no `--expect` was given: the server's own manifest was trusted.
    pub trusted_server_manifest: bool,
    /// Connections used.
    pub connections: usize,
    /// The protocol the server chose.
    pub protocol: Option<Protocol>,
    /// Times the download started over because the file changed on the server.
    pub restarts: u32,
}

impl FetchReport {
    /// Megabytes per second of content received.
    pub fn mb_per_s(&self) -> f64 {
        self.bytes_fetched as f64 / self.elapsed.as_secs_f64().max(1e-9) / 1e6
    }

    /// The one result line.
    pub fn to_text(&self) -> String {
        format!(
            "{}: {} bytes, {} chunks verified ({} fetched, {} resumed), root {}, {:.2} s, {:.1} MB/s{}",
            self.path.display(),
            self.size,
            self.chunks,
            self.chunks_fetched,
            self.chunks_resumed,
            self.root,
            self.elapsed.as_secs_f64(),
            self.mb_per_s(),
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
            "connections": self.connections,
            "protocol": match self.protocol {
                Some(Protocol::Http1) => "HTTP/1.1",
                Some(Protocol::Http2) => "HTTP/2",
                None => "none",
            },
            "restarts": self.restarts,
        })
        .to_string()
    }
}

fn client_error(e: ClientError) -> FetchError {
    match e {
        ClientError::Config(m) => FetchError::Usage(m),
        other => FetchError::Network(other.to_string()),
    }
}

/// GET `URL?manifest`, retrying transient failures. Returns the manifest, the
/// `ETag` the response carried (the file's, if the server sends it), and the
/// connection for reuse.
async fn get_manifest(
    client: &Client,
    target: &Target,
) -> Result<(FileManifest, Option<String>, Conn), FetchError> {
    let mt = target.with_path(&format!("{}?manifest", target.path()));
    let mut last = String::new();
    for attempt in 1..=segments::MAX_ATTEMPTS {
        if attempt > 1 {
            tokio::time::sleep(backoff(attempt - 1)).await;
        }
        let mut conn = match client.connect(&mt).await {
            Ok(c) => c,
            Err(ClientError::Tls(m)) => {
                return Err(FetchError::Network(format!("{}: TLS: {m}", mt.authority)))
            }
            Err(ClientError::Config(m)) => return Err(FetchError::Usage(m)),
            Err(e) => {
                last = format!("{}: {e}", mt.authority);
                continue;
            }
        };
        let req = Client::build(client.get(&mt, conn.protocol)).map_err(client_error)?;
        let resp = match conn.send(req).await {
            Ok(r) => r,
            Err(e) => {
                last = format!("{}: {e}", mt.url);
                continue;
            }
        };
        let status = resp.status();
        let etag = resp
            .headers()
            .get(http::header::ETAG)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let wait = retry_after(resp.headers());
        let headers = resp.headers().clone();
        let body = super::bench::read_all(resp, MANIFEST_LIMIT).await;
        if status == StatusCode::SERVICE_UNAVAILABLE {
            let text = body.as_ref().map(|(_, _, b)| &b[..]).unwrap_or_default();
            if let Some(notice) = segments::quarantine_notice(&headers, text) {
                let which = match notice.chunk {
                    Some(k) => format!("chunk {k} of the file"),
                    None => "the file".to_string(),
                };
                return Err(FetchError::Integrity {
                    message: format!(
                        "{}: the server reports that {which} failed its integrity check (quarantined)",
                        target.url
                    ),
                    chunk: notice.chunk,
                    bytes_fetched: 0,
                });
            }
        }
        match (status, body) {
            (StatusCode::OK, Ok((_, _, bytes))) => {
                let text = String::from_utf8_lossy(&bytes);
                let m = FileManifest::from_json(&text).map_err(|e| FetchError::Integrity {
                    message: format!("{}: {e}", mt.url),
                    chunk: None,
                    bytes_fetched: 0,
                })?;
                return Ok((m, etag, conn));
            }
            (s, _) if transient_status(s) => {
                last = format!("{}: HTTP {s}", mt.url);
                tokio::time::sleep(wait).await;
            }
            (StatusCode::OK, Err(e)) => last = format!("{}: {e}", mt.url),
            (s, _) => {
                return Err(FetchError::Http {
                    url: mt.url.clone(),
                    status: s.as_u16(),
                })
            }
        }
    }
    Err(FetchError::Network(format!(
        "{last} (gave up after {} attempts)",
        segments::MAX_ATTEMPTS
    )))
}

/// Fetch one file. On success the verified file is at `opts.output`.
pub async fn run(opts: &FetchOptions) -> Result<FetchReport, FetchError> {
    let t0 = Instant::now();
    let expect: Option<Digest> = match &opts.expect {
        Some(e) => Some(parse_digest(&e.to_ascii_lowercase()).ok_or_else(|| {
            FetchError::Usage(format!("--expect {e:?}: not a 64-digit SHA-256 hex root"))
        })?),
        None => None,
    };
    let target = Target::parse(&opts.url).map_err(client_error)?;
    output::check_writable(&opts.output).map_err(|e| FetchError::Output(e.0))?;
    let client = Client::new(&opts.client).map_err(client_error)?;
    let files = WorkFiles::for_path(&opts.output);
    let mut restarts = 0;
    loop {
        match attempt(opts, &client, &target, &files, expect).await {
            Ok(Some(mut report)) => {
                report.restarts = restarts;
                report.elapsed = t0.elapsed();
                return Ok(report);
            }
            Ok(None) if restarts < MAX_RESTARTS => restarts += 1,
            Ok(None) => {
                return Err(FetchError::Network(format!(
                    "{}: the file kept changing on the server ({restarts} restarts)",
                    target.url
                )))
            }
            Err(e) => return Err(e),
        }
    }
}

/// One pass from the manifest on. `Ok(None)`: the file changed, start again.
async fn attempt(
    opts: &FetchOptions,
    client: &Client,
    target: &Target,
    files: &WorkFiles,
    expect: Option<Digest>,
) -> Result<Option<FetchReport>, FetchError> {
    let (manifest, manifest_etag, conn0) = match &opts.manifest {
        Some(m) => (m.clone(), None, None),
        None => {
            let (m, etag, conn) = get_manifest(client, target).await?;
            (m, etag, Some(conn))
        }
    };
    let root = hex(&manifest.root);
    match expect {
        Some(want) if want != manifest.root => {
            return Err(FetchError::Integrity {
                message: format!(
                    "{}?manifest: root {root} does not match --expect {}; no content was requested",
                    target.url,
                    hex(&want)
                ),
                chunk: None,
                bytes_fetched: 0,
            })
        }
        Some(_) => {}
        // A package's files come with a manifest checked already.
        None if opts.manifest.is_some() => {}
        // Said on stderr whatever the output mode: this is the one thing a
        // user must not miss about an unpinned download.
        None => eprintln!(
            "distpoint: no --expect given: trusting the server's own manifest (root {root})"
        ),
    }

    // Resume only chunks verified against this very root.
    let previous =
        ResumeState::load(&files.state).filter(|s| s.matches(&manifest) && files.part.exists());
    let resuming = previous.is_some();
    let have = std::fs::metadata(&files.part).map(|m| m.len()).unwrap_or(0);
    let more = if resuming {
        manifest.size.saturating_sub(have)
    } else {
        manifest.size
    };
    output::check_space(&opts.output, more).map_err(|e| FetchError::Output(e.0))?;
    let file = Arc::new(
        output::open_part(&files.part, manifest.size, !resuming)
            .map_err(|e| FetchError::Output(e.0))?,
    );
    let n = manifest.chunks.len() as u64;
    let manifest = Arc::new(manifest);
    let mut state = previous.unwrap_or_else(|| ResumeState::new(&target.url, &manifest));
    let claimed = state.chunks(n);
    let verified = recheck(&file, &manifest, claimed).await?;
    let chunks_resumed = verified.len() as u64;
    state.etag = manifest_etag.or(state.etag.take());
    let etag = state.etag.clone();
    let queue: VecDeque<u64> = (0..n).filter(|c| !verified.contains(c)).collect();
    let workers = opts.connections.max(1).min(queue.len().max(1));
    let progress = Progress::new(manifest.size, n, opts.progress);
    let done_bytes: u64 = verified
        .iter()
        .map(|&c| {
            let (s, e) = manifest.chunk_range(c);
            e - s
        })
        .sum();
    progress.advance(done_bytes, chunks_resumed);
    let shared = Arc::new(Shared {
        target: target.clone(),
        client: client.clone(),
        manifest: manifest.clone(),
        queue: Mutex::new(queue),
        attempts: Mutex::new(HashMap::new()),
        file: file.clone(),
        state: Mutex::new((state, verified, Instant::now())),
        state_path: files.state.clone(),
        etag: Mutex::new(etag),
        bytes_fetched: Default::default(),
        chunks_fetched: Default::default(),
        progress,
        limit_rate: opts.limit_rate,
        started: Instant::now(),
        protocol: Mutex::new(conn0.as_ref().map(|c| c.protocol)),
        refused: Mutex::new(BTreeSet::new()),
        cut: Mutex::new(BTreeSet::new()),
        named: Mutex::new(BTreeSet::new()),
    });
    shared.save_state();

    let mut set = tokio::task::JoinSet::new();
    let mut first = conn0;
    for _ in 0..workers {
        set.spawn(segments::worker(shared.clone(), first.take()));
    }
    let mut failure: Option<WorkerFail> = None;
    while let Some(res) = set.join_next().await {
        let res = res.unwrap_or_else(|e| {
            Err(WorkerFail::Fatal(FetchError::Network(format!(
                "download task failed: {e}"
            ))))
        });
        if let Err(f) = res {
            // The first failure stops everything: dropping the other
            // requests resets their streams (HTTP/2) or closes their
            // connections (HTTP/1.1).
            set.abort_all();
            failure.get_or_insert(f);
        }
    }
    shared.progress.finish();
    shared.save_state();
    let bytes_fetched = shared.bytes_fetched.load(Ordering::Relaxed);
    match failure {
        Some(WorkerFail::Changed) => {
            // Forget the tag so the next pass learns the new one.
            *shared.etag.lock().expect("etag lock") = None;
            shared.save_state();
            return Ok(None);
        }
        Some(WorkerFail::Fatal(FetchError::Integrity { message, chunk, .. })) => {
            return Err(FetchError::Integrity {
                message,
                chunk,
                bytes_fetched,
            })
        }
        Some(WorkerFail::Fatal(e)) => return Err(e),
        None => {
            if let Some(e) = segments::quarantined(&shared) {
                return Err(e);
            }
        }
    }
    let complete = shared.state.lock().expect("state lock").1.len() as u64 == n;
    if !complete {
        return Err(FetchError::Network(format!(
            "{}: download ended with chunks missing",
            target.url
        )));
    }
    let protocol = *shared.protocol.lock().expect("protocol lock");
    let chunks_fetched = shared.chunks_fetched.load(Ordering::Relaxed);
    drop(shared);
    let file = Arc::try_unwrap(file)
        .map_err(|_| FetchError::Output("the download file is still in use".into()))?;
    let (part, path) = (files.part.clone(), files.path.clone());
    tokio::task::spawn_blocking(move || output::finish(file, &part, &path))
        .await
        .map_err(|e| FetchError::Output(format!("finishing task failed: {e}")))?
        .map_err(|e| FetchError::Output(e.0))?;
    let _ = std::fs::remove_file(&files.state);
    Ok(Some(FetchReport {
        url: target.url.clone(),
        path: files.path.clone(),
        size: manifest.size,
        root,
        sha256: hex(&manifest.sha256),
        chunks: n,
        chunks_fetched,
        chunks_resumed,
        bytes_fetched,
        elapsed: Duration::ZERO,
        trusted_server_manifest: expect.is_none() && opts.manifest.is_none(),
        connections: workers,
        protocol,
        restarts: 0,
    }))
}

/// Re-hash from disk the chunks a previous run claimed; keep those that match.
async fn recheck(
    file: &Arc<std::fs::File>,
    m: &Arc<FileManifest>,
    claimed: BTreeSet<u64>,
) -> Result<BTreeSet<u64>, FetchError> {
    if claimed.is_empty() {
        return Ok(claimed);
    }
    let (file, m) = (file.clone(), m.clone());
    tokio::task::spawn_blocking(move || {
        claimed
            .into_iter()
            .filter(|&c| {
                let (s, e) = m.chunk_range(c);
                output::read_at(&file, s, (e - s) as usize)
                    .map(|data| chunk_matches(&m, c, &data))
                    .unwrap_or(false)
            })
            .collect()
    })
    .await
    .map_err(|e| FetchError::Output(format!("re-checking the download failed: {e}")))
}
