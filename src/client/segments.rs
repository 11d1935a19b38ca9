//! The download workers of a fetch: each owns one connection and takes the
//! lowest chunk still missing, one ranged request per chunk. Taking chunks in
//! order is what bounds the waste when chunk k turns out bad: the chunks in
//! flight are then at most k+1..k+N, so about k+1+N chunks have been fetched.
//! A chunk is hashed as its bytes arrive and written to `PATH.part` only once
//! verified, so the work file never holds an unverified byte.

use super::endpoint::{Client, Target};
use super::fetch_error::FetchError;
use super::output;
use super::progress::Progress;
use super::resume::ResumeState;
use super::verify::{ChunkStream, VerifyError};
use super::{ClientError, Conn, Protocol};
use crate::integrity::{quarantine, FileManifest};
use http::StatusCode;
use http_body_util::BodyExt as _;
use std::collections::{BTreeSet, HashMap, VecDeque};
use std::fs::File;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Attempts per chunk (and per connection) before a transient error is final.
pub const MAX_ATTEMPTS: u32 = 6;

/// Backoff before attempt `n` (1-based): 100 ms doubling, at most 3 s.
pub fn backoff(n: u32) -> Duration {
    Duration::from_millis(100u64.saturating_mul(1 << n.min(5).saturating_sub(1)))
        .min(Duration::from_secs(3))
}

/// How long the server asked us to wait (`Retry-After` seconds), capped.
pub fn retry_after(headers: &http::HeaderMap) -> Duration {
    headers
        .get(http::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(|s| Duration::from_secs(s.min(5)))
        .unwrap_or_default()
}

/// True for statuses worth retrying.
pub fn transient_status(s: StatusCode) -> bool {
    matches!(s.as_u16(), 408 | 429 | 500 | 502 | 503 | 504)
}

/// The words a distpoint server puts in the `503` body of a file it has
/// quarantined after one of its chunks failed the server's own check.
const QUARANTINE_NOTICE: &[u8] = b"failed its integrity check";

/// True if a `503` body says the file is quarantined (an integrity failure
/// found by the server, not a passing overload).
pub fn is_quarantine_notice(body: &[u8]) -> bool {
    body.windows(QUARANTINE_NOTICE.len())
        .any(|w| w == QUARANTINE_NOTICE)
}

/// How a quarantine `503` identified itself: by the `Distpoint-Integrity`
/// header, or (servers that predate it) only by its body text. `None` when
/// the response is not a quarantine notice at all.
pub fn quarantine_notice(headers: &http::HeaderMap, body: &[u8]) -> Option<quarantine::Notice> {
    quarantine::parse_header(headers)
        .or_else(|| is_quarantine_notice(body).then_some(quarantine::Notice { chunk: None }))
}

/// The integrity failure a server reported by quarantining the file. The
/// chunk at fault is the one the server names in its `Distpoint-Integrity`
/// header; without one, the lowest chunk whose transfer the server cut.
pub fn quarantined(shared: &Shared) -> Option<FetchError> {
    let refused = shared.refused.lock().expect("refused lock");
    if refused.is_empty() {
        return None;
    }
    let n = shared.manifest.chunks.len();
    // The server's own word is exact whatever was in flight; take the
    // lowest in case concurrent transfers found different bad chunks.
    if let Some(&k) = shared.named.lock().expect("named lock").iter().next() {
        return Some(FetchError::Integrity {
            message: format!(
                "{}: chunk {k} of {n}: the server reports that this chunk failed its \
                 integrity check (file quarantined)",
                shared.target.url
            ),
            chunk: Some(k),
            bytes_fetched: shared.bytes_fetched.load(Ordering::Relaxed),
        });
    }
    let verified = &shared.state.lock().expect("state lock").1;
    // The server finds a bad chunk while sending it, after the `206` head,
    // and cuts that transfer; requests that reach it afterwards, for any
    // chunk, are refused whole. So a cut chunk names the culprit; a refused
    // one only when no transfer was cut.
    let cut_min = shared
        .cut
        .lock()
        .expect("cut lock")
        .iter()
        .copied()
        .find(|c| !verified.contains(c));
    let k = cut_min.or_else(|| refused.iter().next().copied())?;
    Some(FetchError::Integrity {
        message: format!(
            "{}: chunk {k} of {n}: the server refused it and reports that the file \
             failed its integrity check (quarantined)",
            shared.target.url,
        ),
        chunk: Some(k),
        bytes_fetched: shared.bytes_fetched.load(Ordering::Relaxed),
    })
}

/// Everything the workers share.
pub struct Shared {
    /// The file's URL.
    pub target: Target,
    /// TLS and credentials.
    pub client: Client,
    /// The manifest every chunk is checked against.
    pub manifest: Arc<FileManifest>,
    /// Chunks still to fetch, lowest first.
    pub queue: Mutex<VecDeque<u64>>,
    /// Failed attempts per chunk.
    pub attempts: Mutex<HashMap<u64, u32>>,
    /// `PATH.part`.
    pub file: Arc<File>,
    /// Verified chunks, and when they were last saved.
    pub state: Mutex<(ResumeState, BTreeSet<u64>, Instant)>,
    /// Where the state is saved.
    pub state_path: PathBuf,
    /// The `ETag` of the version being fetched (learnt from the first 206 if
    /// the manifest response had none).
    pub etag: Mutex<Option<String>>,
    /// Content bytes received.
    pub bytes_fetched: AtomicU64,
    /// Chunks fetched and verified in this run.
    pub chunks_fetched: AtomicU64,
    /// The progress display.
    pub progress: Progress,
    /// Optional rate limit, bytes per second over all connections.
    pub limit_rate: Option<u64>,
    /// When downloading started (for the rate limit).
    pub started: Instant,
    /// The protocol of the first connection.
    pub protocol: Mutex<Option<Protocol>>,
    /// Chunks the server refused as quarantined. Once one is, no new chunk is
    /// started; those in flight finish, so that the lowest refused chunk is
    /// known for certain.
    pub refused: Mutex<BTreeSet<u64>>,
    /// Chunks whose transfer was cut after a `206` head.
    pub cut: Mutex<BTreeSet<u64>>,
    /// Chunks the server named as failed in a `Distpoint-Integrity` header.
    pub named: Mutex<BTreeSet<u64>>,
}

/// Why a worker stopped early.
pub enum WorkerFail {
    /// Stop the whole fetch with this error.
    Fatal(FetchError),
    /// The file changed on the server (or ranges were refused): start again
    /// from the manifest.
    Changed,
}

enum ChunkFail {
    Transient(String, Duration),
    /// Refused as quarantined; the chunk the server named, if it did.
    Quarantined(Option<u64>),
    Fatal(FetchError),
    Changed,
}

impl Shared {
    /// Save the state now (also called by the coordinator at the end).
    pub fn save_state(&self) {
        let mut g = self.state.lock().expect("state lock");
        let (st, set, last) = &mut *g;
        st.set_chunks(set);
        st.etag = self.etag.lock().expect("etag lock").clone();
        // Losing a save only costs re-fetching; it is never a correctness issue.
        let _ = st.save(&self.state_path);
        *last = Instant::now();
    }

    fn mark_verified(&self, index: u64) -> u64 {
        let (count, due) = {
            let mut g = self.state.lock().expect("state lock");
            g.1.insert(index);
            (
                g.1.len() as u64,
                g.2.elapsed() >= Duration::from_millis(200),
            )
        };
        if due {
            self.save_state();
        }
        count
    }
}

/// Connect, treating TLS failures as final and others as transient.
async fn ensure_conn<'a>(
    shared: &Shared,
    conn: &'a mut Option<Conn>,
) -> Result<&'a mut Conn, ChunkFail> {
    if conn.is_none() {
        match shared.client.connect(&shared.target).await {
            Ok(c) => {
                shared
                    .protocol
                    .lock()
                    .expect("protocol lock")
                    .get_or_insert(c.protocol);
                *conn = Some(c);
            }
            Err(e) => return Err(conn_fail(&shared.target, e)),
        }
    }
    Ok(conn.as_mut().expect("connected above"))
}

/// Classify a client error: TLS and settings are final, the rest transient.
fn conn_fail(target: &Target, e: ClientError) -> ChunkFail {
    match e {
        ClientError::Tls(m) => ChunkFail::Fatal(FetchError::Network(format!(
            "{}: TLS: {m}",
            target.authority
        ))),
        ClientError::Config(m) => ChunkFail::Fatal(FetchError::Usage(m)),
        other => ChunkFail::Transient(format!("{}: {other}", target.authority), Duration::ZERO),
    }
}

/// Parse `Content-Range: bytes A-B/SIZE`.
fn content_range(h: &http::HeaderMap) -> Option<(u64, u64, u64)> {
    let v = h.get(http::header::CONTENT_RANGE)?.to_str().ok()?;
    let rest = v.strip_prefix("bytes ")?;
    let (range, size) = rest.split_once('/')?;
    let (a, b) = range.split_once('-')?;
    Some((a.parse().ok()?, b.parse().ok()?, size.parse().ok()?))
}

async fn fetch_chunk(
    shared: &Shared,
    conn: &mut Option<Conn>,
    index: u64,
    buf: &mut Vec<u8>,
) -> Result<(), ChunkFail> {
    let m = &shared.manifest;
    let (start, end) = m.chunk_range(index);
    let c = ensure_conn(shared, conn).await?;
    let etag = shared.etag.lock().expect("etag lock").clone();
    let mut b = shared
        .client
        .get(&shared.target, c.protocol)
        .header(http::header::RANGE, format!("bytes={}-{}", start, end - 1));
    if let Some(tag) = &etag {
        // If the file changed since we learnt this tag, the server answers 200
        // with the whole new file instead of a range of the old one.
        b = b.header(http::header::IF_RANGE, tag.as_str());
    }
    let req = Client::build(b).map_err(|e| ChunkFail::Fatal(FetchError::Usage(e.to_string())))?;
    let resp = c
        .send(req)
        .await
        .map_err(|e| conn_fail(&shared.target, e))?;
    let status = resp.status();
    match status {
        StatusCode::PARTIAL_CONTENT => {}
        StatusCode::OK | StatusCode::RANGE_NOT_SATISFIABLE => return Err(ChunkFail::Changed),
        s if transient_status(s) => {
            let wait = retry_after(resp.headers());
            let headers = resp.headers().clone();
            let body = super::bench::read_all(resp, 4096)
                .await
                .map(|r| r.2)
                .unwrap_or_default();
            if let Some(notice) = quarantine_notice(&headers, &body) {
                // A chunk index outside the manifest is not believed: the
                // fetch then names a chunk the old way.
                let named = notice.chunk.filter(|&k| k < m.chunks.len() as u64);
                return Err(ChunkFail::Quarantined(named));
            }
            return Err(ChunkFail::Transient(
                format!("{}: HTTP {s}", shared.target.url),
                wait,
            ));
        }
        s => {
            return Err(ChunkFail::Fatal(FetchError::Http {
                url: shared.target.url.clone(),
                status: s.as_u16(),
            }))
        }
    }
    match content_range(resp.headers()) {
        Some((a, b, size)) if a == start && b + 1 == end && size == m.size => {}
        Some((_, _, size)) if size != m.size => return Err(ChunkFail::Changed),
        _ => {
            return Err(ChunkFail::Fatal(FetchError::Network(format!(
                "{}: unexpected Content-Range for bytes {start}-{}",
                shared.target.url,
                end - 1
            ))))
        }
    }
    let got_tag = resp
        .headers()
        .get(http::header::ETAG)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    {
        let mut g = shared.etag.lock().expect("etag lock");
        match (&*g, got_tag) {
            (None, Some(t)) => *g = Some(t),
            (Some(have), Some(t)) if *have != t => return Err(ChunkFail::Changed),
            _ => {}
        }
    }
    // The chunk's bytes collect in the worker's own buffer, reused from chunk
    // to chunk: a fresh 1 MiB allocation per chunk costs more in page faults
    // than the hashing.
    let mut stream = ChunkStream::new(m.clone(), index, index + 1, false);
    let mut body = resp.into_body();
    buf.clear();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| {
            shared.cut.lock().expect("cut lock").insert(index);
            ChunkFail::Transient(
                format!("{}: transfer cut: {e}", shared.target.url),
                Duration::ZERO,
            )
        })?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        shared
            .bytes_fetched
            .fetch_add(data.len() as u64, Ordering::Relaxed);
        match stream.push(&data) {
            Ok(_) => buf.extend_from_slice(&data),
            Err(VerifyError::Mismatch { index }) => {
                let (s, e) = m.chunk_range(index);
                return Err(ChunkFail::Fatal(FetchError::Integrity {
                    message: format!(
                        "{}: chunk {index} of {} (bytes {s}-{}) does not match the manifest",
                        shared.target.url,
                        m.chunks.len(),
                        e.saturating_sub(1)
                    ),
                    chunk: Some(index),
                    bytes_fetched: shared.bytes_fetched.load(Ordering::Relaxed),
                }));
            }
            Err(VerifyError::TooLong) => {
                return Err(ChunkFail::Fatal(FetchError::Network(format!(
                    "{}: the server sent more than the requested range",
                    shared.target.url
                ))))
            }
        }
    }
    if !stream.is_complete() {
        return Err(ChunkFail::Transient(
            format!("{}: response ended short", shared.target.url),
            Duration::ZERO,
        ));
    }
    let len = buf.len() as u64;
    let file = shared.file.clone();
    let data = std::mem::take(buf);
    let (data, written) = tokio::task::spawn_blocking(move || {
        let r = output::write_at(&file, start, &data);
        (data, r)
    })
    .await
    .map_err(|e| ChunkFail::Fatal(FetchError::Output(format!("write task failed: {e}"))))?;
    *buf = data;
    written
        .map_err(|e| ChunkFail::Fatal(FetchError::Output(format!("writing the download: {e}"))))?;
    shared.chunks_fetched.fetch_add(1, Ordering::Relaxed);
    let count = shared.mark_verified(index);
    shared.progress.advance(len, count);
    if let Some(rate) = shared.limit_rate.filter(|r| *r > 0) {
        let total = shared.bytes_fetched.load(Ordering::Relaxed);
        let due = shared.started + Duration::from_secs_f64(total as f64 / rate as f64);
        tokio::time::sleep_until(due.into()).await;
    }
    Ok(())
}

/// One worker: take chunks until none are left or something is final.
pub async fn worker(shared: Arc<Shared>, mut conn: Option<Conn>) -> Result<(), WorkerFail> {
    let mut buf = Vec::with_capacity(shared.manifest.chunk_size.min(shared.manifest.size) as usize);
    loop {
        if !shared.refused.lock().expect("refused lock").is_empty() {
            return Ok(());
        }
        let Some(index) = shared.queue.lock().expect("queue lock").pop_front() else {
            return Ok(());
        };
        match fetch_chunk(&shared, &mut conn, index, &mut buf).await {
            Ok(()) => {}
            Err(ChunkFail::Fatal(e)) => return Err(WorkerFail::Fatal(e)),
            Err(ChunkFail::Changed) => return Err(WorkerFail::Changed),
            Err(ChunkFail::Quarantined(named)) => {
                if let Some(k) = named {
                    shared.named.lock().expect("named lock").insert(k);
                }
                shared.refused.lock().expect("refused lock").insert(index);
                return Ok(());
            }
            Err(ChunkFail::Transient(msg, wait)) => {
                conn = None;
                let n = {
                    let mut a = shared.attempts.lock().expect("attempts lock");
                    let n = a.entry(index).or_default();
                    *n += 1;
                    *n
                };
                if !shared.refused.lock().expect("refused lock").is_empty() {
                    // Stopping: the cut is recorded in `attempts` for `quarantined`.
                    return Ok(());
                }
                if n >= MAX_ATTEMPTS {
                    return Err(WorkerFail::Fatal(FetchError::Network(format!(
                        "{msg} (chunk {index}, gave up after {n} attempts)"
                    ))));
                }
                tokio::time::sleep(backoff(n).max(wait)).await;
                shared.queue.lock().expect("queue lock").push_front(index);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_is_bounded_and_content_range_parses() {
        assert_eq!(backoff(1), Duration::from_millis(100));
        assert_eq!(backoff(2), Duration::from_millis(200));
        assert_eq!(backoff(30), Duration::from_millis(1600));
        let mut h = http::HeaderMap::new();
        h.insert("content-range", "bytes 10-19/100".parse().unwrap());
        h.insert("retry-after", "120".parse().unwrap());
        assert_eq!(content_range(&h), Some((10, 19, 100)));
        assert_eq!(retry_after(&h), Duration::from_secs(5));
        assert!(transient_status(StatusCode::SERVICE_UNAVAILABLE));
        assert!(!transient_status(StatusCode::NOT_FOUND));
    }
}
