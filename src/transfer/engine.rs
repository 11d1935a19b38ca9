//! One engine run: a file's manifest, its sources, a sink. Chunks offered
//! locally are taken first; the rest are spread over every live source's
//! connections (see [`super::book`]), each verified as its last byte
//! arrives and written only then. A source that sends a bad chunk, or whose
//! copy changed, is dropped for the run and its chunks come from the others.
//!
//! The run ends when every chunk is verified, or when no live source is
//! left: then the chunk that no source could deliver (an integrity failure,
//! when every source was dropped for one) or the sources' network and HTTP
//! failures are the error.

use super::book::{Book, Halt, Verdict};
use super::hooks::{Events, Gate, Quiet};
use super::rate::RateLimit;
use super::report::TransferReport;
use super::sink::{LocalChunks, Sink};
use super::source::{ReadError, Source};
use super::worker::{self, Ctx};
use super::writer::WriteThread;
use crate::integrity::{chunker, FileManifest};
use std::collections::BTreeSet;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Instant;
use tokio_util::sync::CancellationToken;

/// One file to transfer.
pub struct Job {
    /// What every chunk is checked against.
    pub manifest: Arc<FileManifest>,
    /// Where the bytes may come from, in priority order (all are used at once).
    pub sources: Vec<Arc<dyn Source>>,
    /// Connections per source.
    pub connections: usize,
    /// Where verified chunks go.
    pub sink: Arc<dyn Sink>,
    /// Chunks already verified in the sink (a resumed run re-checks them first).
    pub verified: BTreeSet<u64>,
    /// Chunks held locally, offered by digest before anything is fetched.
    pub local: Option<Arc<dyn LocalChunks>>,
    /// A limit for all the traffic of this run (share it to cover several).
    pub rate: Option<Arc<RateLimit>>,
    /// Admission of new requests.
    pub gate: Option<Arc<dyn Gate>>,
    /// Who hears about progress, drops and checkpoints.
    pub events: Arc<dyn Events>,
}

impl Job {
    /// A job with one connection per source and nothing else set.
    pub fn new(
        manifest: Arc<FileManifest>,
        sources: Vec<Arc<dyn Source>>,
        sink: Arc<dyn Sink>,
    ) -> Job {
        Job {
            manifest,
            sources,
            connections: 1,
            sink,
            verified: BTreeSet::new(),
            local: None,
            rate: None,
            gate: None,
            events: Arc::new(Quiet),
        }
    }
}

/// Why a run did not complete.
#[derive(Debug)]
pub enum TransferError {
    /// `chunk` could not be had from any source without failing its hash
    /// (every source was dropped for an integrity reason).
    Integrity {
        /// The chunk no source could deliver.
        chunk: u64,
        /// Which chunk, and what each source did.
        message: String,
    },
    /// The sources that were left failed for network or HTTP reasons.
    Unavailable {
        /// What each source did.
        message: String,
    },
    /// A source found the client's own settings wrong.
    Settings(ReadError),
    /// A verified chunk could not be written.
    Sink {
        /// The chunk.
        chunk: u64,
        /// The cause.
        source: std::io::Error,
    },
    /// A download task failed (a bug).
    Task(tokio::task::JoinError),
}

impl fmt::Display for TransferError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TransferError::Integrity { message, .. } | TransferError::Unavailable { message } => {
                f.write_str(message)
            }
            TransferError::Settings(e) => write!(f, "{e}"),
            TransferError::Sink { chunk, source } => {
                write!(f, "cannot write chunk {chunk}: {source}")
            }
            TransferError::Task(e) => write!(f, "download task failed: {e}"),
        }
    }
}

impl std::error::Error for TransferError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            TransferError::Settings(e) => Some(e),
            TransferError::Sink { source, .. } => Some(source),
            TransferError::Task(e) => Some(e),
            TransferError::Integrity { .. } | TransferError::Unavailable { .. } => None,
        }
    }
}

/// The outcome of a run: the figures always, and whether it completed.
#[derive(Debug)]
pub struct Transfer {
    /// What happened, per source.
    pub report: TransferReport,
    /// `Ok` when every chunk is verified in the sink.
    pub result: Result<(), TransferError>,
}

/// Run a job to its end.
pub async fn run(job: Job) -> Transfer {
    let t0 = Instant::now();
    let manifest = job.manifest.clone();
    let n = manifest.chunks.len() as u64;
    let mut verified = job.verified.clone();
    let resumed = verified.len() as u64;
    let (chunks_local, bytes_local) = match &job.local {
        Some(local) => take_local(&job, local.clone(), &mut verified).await,
        None => (0, 0),
    };
    let missing = n - verified.len() as u64;
    let per_source = (job.connections.max(1) as u64).min(missing.max(1)) as u32;
    let names = job.sources.iter().map(|s| s.name().to_string()).collect();
    let book = Book::new(manifest.chunk_size, n, &verified, names, per_source);
    let all = CancellationToken::new();
    let ctx = Arc::new(Ctx {
        cancel: job.sources.iter().map(|_| all.child_token()).collect(),
        all,
        manifest,
        sources: job.sources,
        book: Mutex::new(book),
        changes: tokio::sync::watch::channel(0).0,
        writes: WriteThread::start(job.sink),
        rate: job.rate,
        gate: job.gate,
        events: job.events,
    });
    let mut set = tokio::task::JoinSet::new();
    if missing > 0 {
        for s in 0..ctx.sources.len() {
            for _ in 0..per_source {
                set.spawn(worker::run(ctx.clone(), s));
            }
        }
    }
    let mut panicked = None;
    while let Some(r) = set.join_next().await {
        if let Err(e) = r {
            ctx.all.cancel();
            panicked.get_or_insert(e);
        }
    }
    let (verdict, reports, fetched, runs) = {
        let mut b = ctx.book();
        (b.verdict(), b.reports(), b.fetched(), b.runs())
    };
    ctx.events.checkpoint(&runs);
    let report = TransferReport {
        sources: reports,
        chunks_resumed: resumed,
        chunks_local,
        bytes_local,
        chunks_fetched: fetched,
        elapsed: t0.elapsed(),
    };
    let result = match panicked {
        Some(e) => Err(TransferError::Task(e)),
        None => judge(verdict, &ctx.manifest, &report),
    };
    Transfer { report, result }
}

/// Offer every missing chunk to `local`; write those that verify.
async fn take_local(
    job: &Job,
    local: Arc<dyn LocalChunks>,
    verified: &mut BTreeSet<u64>,
) -> (u64, u64) {
    let (m, sink, have) = (job.manifest.clone(), job.sink.clone(), verified.clone());
    let found = tokio::task::spawn_blocking(move || {
        let mut found = Vec::new();
        for c in (0..m.chunks.len() as u64).filter(|c| !have.contains(c)) {
            let (start, end) = m.chunk_range(c);
            let want = &m.chunks[c as usize];
            let Some(data) = local.chunk(want, end - start) else {
                continue;
            };
            // A local copy is used only if it is what the manifest says, and
            // only once it is written.
            if chunker::chunk_matches(want, &data) && sink.write_chunk(c, start, &data).is_ok() {
                found.push((c, end - start));
            }
        }
        found
    })
    .await
    .unwrap_or_default();
    for &(c, bytes) in &found {
        verified.insert(c);
        job.events.verified(bytes, verified.len() as u64);
    }
    (found.len() as u64, found.iter().map(|f| f.1).sum())
}

fn judge(verdict: Verdict, m: &FileManifest, report: &TransferReport) -> Result<(), TransferError> {
    let sources = || {
        if report.sources.is_empty() {
            return "no source was given".to_string();
        }
        report
            .sources
            .iter()
            .map(|s| match &s.dropped {
                Some(r) => format!("{}: {r}", s.name),
                None => format!("{}: stopped", s.name),
            })
            .collect::<Vec<_>>()
            .join("; ")
    };
    match verdict {
        Verdict::Complete => Ok(()),
        Verdict::Integrity { chunk } => {
            let (s, e) = m.chunk_range(chunk);
            Err(TransferError::Integrity {
                chunk,
                message: format!(
                    "chunk {chunk} of {} (bytes {s}-{}) could not be had from any source: {}",
                    m.chunks.len(),
                    e.saturating_sub(1),
                    sources()
                ),
            })
        }
        Verdict::Unavailable => Err(TransferError::Unavailable { message: sources() }),
        Verdict::Halted(Halt::Settings(e)) => Err(TransferError::Settings(e)),
        Verdict::Halted(Halt::Sink { chunk, error }) => Err(TransferError::Sink {
            chunk,
            source: error,
        }),
    }
}
