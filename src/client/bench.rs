//! `distpoint bench`: drive bounded load at some URLs and report throughput,
//! request rate, latency percentiles and errors by kind.
//!
//! Each of N workers owns its own TLS connection (kept alive, reopened after
//! an error) and sends one request at a time on it, so N is both the number
//! of connections and of requests in flight. With `--verify` every chunk is
//! hashed against the file's manifest as `fetch` does, so that the client-side
//! cost of verification shows in the figures.

use crate::integrity::FileManifest;
use crate::transfer::response::read_all;
use crate::transfer::verify::ChunkStream;
use crate::transfer::{Client, ClientError, ClientOptions, Conn, Protocol, Target};
use hdrhistogram::Histogram;
use http::StatusCode;
use http_body_util::BodyExt;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::time::timeout_at;

/// What to run.
#[derive(Debug, Clone)]
pub struct BenchOptions {
    /// URLs to request, round-robin.
    pub urls: Vec<String>,
    /// Connections (= concurrent requests).
    pub connections: usize,
    /// Stop after this long.
    pub duration: Duration,
    /// Stop after this many requests have been started.
    pub requests: Option<u64>,
    /// Request random ranges of this size instead of whole files.
    pub range_size: Option<u64>,
    /// Verify every chunk against the file's manifest.
    pub verify: bool,
    /// TLS, credentials, protocols.
    pub client: ClientOptions,
}

/// The result of a run.
#[derive(Debug)]
pub struct BenchReport {
    /// Wall time from the first request to the last worker's end.
    pub elapsed: Duration,
    /// Body bytes received (whole and partial responses).
    pub bytes: u64,
    /// Requests that completed with the expected status and a full body.
    pub ok: u64,
    /// Failures by kind (`connect`, `tls`, `status 404`, `body`, `verify`, `timeout`…).
    pub errors: BTreeMap<String, u64>,
    /// Latency of successful requests, microseconds, request sent → last byte.
    pub latency_us: Histogram<u64>,
    /// The protocol the server chose (of the first connection).
    pub protocol: Option<Protocol>,
    /// Connections used.
    pub connections: usize,
    /// Whether chunks were verified.
    pub verified: bool,
}

fn new_hist() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("valid histogram bounds")
}

fn proto_name(p: Option<Protocol>) -> &'static str {
    match p {
        Some(Protocol::Http1) => "HTTP/1.1",
        Some(Protocol::Http2) => "HTTP/2",
        None => "none",
    }
}

impl BenchReport {
    fn secs(&self) -> f64 {
        self.elapsed.as_secs_f64().max(1e-9)
    }

    /// Bytes per second, decimal gigabytes.
    pub fn gb_per_s(&self) -> f64 {
        self.bytes as f64 / self.secs() / 1e9
    }

    /// Completed requests per second.
    pub fn requests_per_s(&self) -> f64 {
        self.ok as f64 / self.secs()
    }

    fn ms(&self, q: f64) -> f64 {
        if self.latency_us.is_empty() {
            0.0
        } else {
            self.latency_us.value_at_quantile(q) as f64 / 1000.0
        }
    }

    fn max_ms(&self) -> f64 {
        self.latency_us.max() as f64 / 1000.0
    }

    /// The human summary.
    pub fn to_text(&self) -> String {
        let errors = if self.errors.is_empty() {
            "none".to_string()
        } else {
            self.errors
                .iter()
                .map(|(k, v)| format!("{k}: {v}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        format!(
            "bench: {} connections, {}{}, {:.2} s\n\
             throughput: {:.3} GB/s ({:.3} Gbit/s), {} bytes\n\
             requests: {} ok, {:.1} req/s\n\
             latency: p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, max {:.2} ms\n\
             errors: {errors}\n",
            self.connections,
            proto_name(self.protocol),
            if self.verified {
                ", chunks verified"
            } else {
                ""
            },
            self.secs(),
            self.gb_per_s(),
            self.gb_per_s() * 8.0,
            self.bytes,
            self.ok,
            self.requests_per_s(),
            self.ms(0.5),
            self.ms(0.9),
            self.ms(0.99),
            self.max_ms(),
        )
    }

    /// The machine summary (one JSON object).
    pub fn to_json(&self) -> String {
        serde_json::json!({
            "connections": self.connections,
            "protocol": proto_name(self.protocol),
            "verified": self.verified,
            "seconds": self.secs(),
            "bytes": self.bytes,
            "gb_per_s": self.gb_per_s(),
            "gbit_per_s": self.gb_per_s() * 8.0,
            "requests": self.ok,
            "requests_per_s": self.requests_per_s(),
            "latency_ms": {
                "p50": self.ms(0.5),
                "p90": self.ms(0.9),
                "p99": self.ms(0.99),
                "max": self.max_ms(),
            },
            "errors": self.errors,
        })
        .to_string()
    }
}

/// What the workers know about one URL.
struct Job {
    target: Target,
    manifest: Option<Arc<FileManifest>>,
    size: Option<u64>,
}

/// GET `URL?manifest` on a fresh connection and parse it.
async fn get_manifest(client: &Client, target: &Target) -> Result<FileManifest, ClientError> {
    let mt = target.with_path(&format!("{}?manifest", target.path()));
    let mut conn = client.connect(&mt).await?;
    let req = Client::build(client.get(&mt, conn.protocol))?;
    let got = read_all(conn.send(req).await?, 64 << 20).await?;
    if got.status != StatusCode::OK {
        return Err(ClientError::settings(format!(
            "{}: HTTP {}",
            mt.url, got.status
        )));
    }
    FileManifest::from_json(&String::from_utf8_lossy(&got.body)).map_err(|e| {
        ClientError::Settings(format!("{}: invalid manifest", mt.url), Some(Box::new(e)))
    })
}

async fn prepare(client: &Client, opts: &BenchOptions) -> Result<Vec<Job>, ClientError> {
    let mut jobs = Vec::new();
    for url in &opts.urls {
        let target = Target::parse(url)?;
        let mut job = Job {
            target,
            manifest: None,
            size: None,
        };
        if opts.verify {
            let m = get_manifest(client, &job.target).await?;
            job.size = Some(m.size);
            job.manifest = Some(Arc::new(m));
        } else if opts.range_size.is_some() {
            // Ranges need the size; HEAD gives it without a manifest.
            let mut conn = client.connect(&job.target).await?;
            let req =
                Client::build(client.request(http::Method::HEAD, &job.target, conn.protocol))?;
            let got = read_all(conn.send(req).await?, 0).await?;
            if got.status != StatusCode::OK {
                return Err(ClientError::settings(format!(
                    "{}: HEAD gave HTTP {}",
                    job.target.url, got.status
                )));
            }
            job.size = got
                .headers
                .get(http::header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse().ok());
        }
        jobs.push(job);
    }
    Ok(jobs)
}

/// A small xorshift generator: ranges only need to be spread, not secret.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// Pick `[start, end)` for one request and the chunks it covers.
fn pick_range(job: &Job, range_size: Option<u64>, rng: &mut Rng) -> Option<(u64, u64)> {
    let size = job.size?;
    let want = range_size?;
    if size == 0 || want == 0 {
        return None;
    }
    // With a manifest, ranges are chunk-aligned so they can be verified.
    let unit = match &job.manifest {
        Some(m) => want.div_ceil(m.chunk_size).max(1) * m.chunk_size,
        None => want,
    };
    let slots = size.div_ceil(unit);
    let start = (rng.next() % slots) * unit;
    Some((start, (start + unit).min(size)))
}

#[derive(Default)]
struct WorkerStats {
    bytes: u64,
    ok: u64,
    errors: BTreeMap<String, u64>,
    protocol: Option<Protocol>,
}

fn kind_of(e: &ClientError) -> &'static str {
    match e {
        ClientError::Io(_) => "connect",
        ClientError::Handshake(_) | ClientError::ServerName(_) => "tls",
        ClientError::Http(_) | ClientError::TooLarge { .. } => "http",
        ClientError::TlsConfig(..) | ClientError::Request(_) | ClientError::Settings(..) => {
            "config"
        }
    }
}

async fn worker(
    id: usize,
    client: Client,
    jobs: Arc<Vec<Job>>,
    opts: Arc<BenchOptions>,
    started: Arc<AtomicU64>,
    deadline: tokio::time::Instant,
) -> (WorkerStats, Histogram<u64>) {
    let mut stats = WorkerStats::default();
    let mut hist = new_hist();
    let mut conns: Vec<Option<Conn>> = jobs.iter().map(|_| None).collect();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ ((id as u64 + 1) * 0x2545_f491_4f6c_dd1d));
    let err = |stats: &mut WorkerStats, kind: String| *stats.errors.entry(kind).or_default() += 1;
    while tokio::time::Instant::now() < deadline {
        // One shared counter both bounds the count and spreads the URLs evenly.
        let n = started.fetch_add(1, Ordering::Relaxed);
        if opts.requests.is_some_and(|max| n >= max) {
            break;
        }
        let j = (n % jobs.len() as u64) as usize;
        let job = &jobs[j];
        if conns[j].is_none() {
            match timeout_at(deadline, client.connect(&job.target)).await {
                Ok(Ok(c)) => {
                    stats.protocol.get_or_insert(c.protocol);
                    conns[j] = Some(c);
                }
                Ok(Err(e)) => {
                    err(&mut stats, kind_of(&e).into());
                    // Do not spin on a server that refuses connections.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
                Err(_) => break,
            }
        }
        let conn = conns[j].as_mut().expect("connected above");
        let range = pick_range(job, opts.range_size, &mut rng);
        let mut b = client.get(&job.target, conn.protocol);
        if let Some((s, e)) = range {
            b = b.header(http::header::RANGE, format!("bytes={}-{}", s, e - 1));
        }
        let Ok(req) = Client::build(b) else {
            err(&mut stats, "config".into());
            break;
        };
        let sent = Instant::now();
        let outcome = timeout_at(
            deadline,
            one_request(conn, req, job, range, opts.verify, &mut stats.bytes),
        )
        .await;
        match outcome {
            Ok(Ok(())) => {
                stats.ok += 1;
                hist.saturating_record(sent.elapsed().as_micros().max(1) as u64);
            }
            Ok(Err(RequestError::Status(s))) => err(&mut stats, format!("status {}", s.as_u16())),
            Ok(Err(RequestError::Verify)) => {
                err(&mut stats, "verify".into());
                conns[j] = None;
            }
            Ok(Err(RequestError::Client(e))) => {
                err(&mut stats, kind_of(&e).into());
                conns[j] = None;
            }
            // The run's time is up: an unfinished request is not counted.
            Err(_) => break,
        }
    }
    (stats, hist)
}

enum RequestError {
    Status(StatusCode),
    Verify,
    Client(ClientError),
}

async fn one_request(
    conn: &mut Conn,
    req: http::Request<http_body_util::Empty<bytes::Bytes>>,
    job: &Job,
    range: Option<(u64, u64)>,
    verify: bool,
    bytes: &mut u64,
) -> Result<(), RequestError> {
    let resp = conn.send(req).await.map_err(RequestError::Client)?;
    let expected = if range.is_some() {
        StatusCode::PARTIAL_CONTENT
    } else {
        StatusCode::OK
    };
    let status = resp.status();
    let mut stream = match (&job.manifest, verify) {
        (Some(m), true) if status == expected => {
            let (first, end) = match range {
                Some((s, e)) => (s / m.chunk_size, e.div_ceil(m.chunk_size)),
                None => (0, m.chunks.len() as u64),
            };
            Some(ChunkStream::new(m.clone(), first, end))
        }
        _ => None,
    };
    let mut body = resp.into_body();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| RequestError::Client(ClientError::Http(e)))?;
        if let Ok(d) = frame.into_data() {
            *bytes += d.len() as u64;
            if let Some(s) = &mut stream {
                s.push(&d).map_err(|_| RequestError::Verify)?;
            }
        }
    }
    if status != expected {
        return Err(RequestError::Status(status));
    }
    if stream.is_some_and(|s| !s.is_complete()) {
        return Err(RequestError::Verify);
    }
    Ok(())
}

/// Run the benchmark. Setup failures (bad URL, unreachable manifest) are errors;
/// failures during the run are counted in the report.
pub async fn run(opts: BenchOptions) -> Result<BenchReport, ClientError> {
    if opts.urls.is_empty() {
        return Err(ClientError::settings("bench needs at least one URL"));
    }
    let client = Client::new(&opts.client)?;
    let jobs = Arc::new(prepare(&client, &opts).await?);
    let connections = opts.connections.max(1);
    let opts = Arc::new(opts);
    let started = Arc::new(AtomicU64::new(0));
    let t0 = Instant::now();
    let deadline = tokio::time::Instant::now() + opts.duration;
    let handles: Vec<_> = (0..connections)
        .map(|id| {
            tokio::spawn(worker(
                id,
                client.clone(),
                jobs.clone(),
                opts.clone(),
                started.clone(),
                deadline,
            ))
        })
        .collect();
    let mut report = BenchReport {
        elapsed: Duration::ZERO,
        bytes: 0,
        ok: 0,
        errors: BTreeMap::new(),
        latency_us: new_hist(),
        protocol: None,
        connections,
        verified: opts.verify,
    };
    for h in handles {
        let (stats, hist) = h
            .await
            .map_err(|e| ClientError::Settings("bench worker failed".into(), Some(Box::new(e))))?;
        report.bytes += stats.bytes;
        report.ok += stats.ok;
        for (k, v) in stats.errors {
            *report.errors.entry(k).or_default() += v;
        }
        report.protocol = report.protocol.or(stats.protocol);
        report.latency_us.add(hist).expect("same histogram bounds");
    }
    report.elapsed = t0.elapsed();
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_are_chunk_aligned_with_a_manifest_and_stay_inside_the_file() {
        let data = vec![5u8; 10_000];
        let m = FileManifest::compute(&data[..], 1024).unwrap();
        let job = Job {
            target: Target::parse("https://127.0.0.1:1/x").unwrap(),
            size: Some(m.size),
            manifest: Some(Arc::new(m)),
        };
        let mut rng = Rng(42);
        for _ in 0..200 {
            let (s, e) = pick_range(&job, Some(1500), &mut rng).unwrap();
            assert_eq!(s % 2048, 0);
            assert!(e <= 10_000 && e > s);
        }
        assert!(pick_range(&job, None, &mut rng).is_none());
    }

    #[test]
    fn report_json_is_valid_and_has_the_figures() {
        let mut h = new_hist();
        h.record(1500).unwrap();
        let r = BenchReport {
            elapsed: Duration::from_secs(2),
            bytes: 4_000_000_000,
            ok: 10,
            errors: BTreeMap::from([("status 404".to_string(), 1)]),
            latency_us: h,
            protocol: Some(Protocol::Http2),
            connections: 4,
            verified: false,
        };
        let v: serde_json::Value = serde_json::from_str(&r.to_json()).unwrap();
        assert_eq!(v["gb_per_s"], 2.0);
        assert_eq!(v["gbit_per_s"], 16.0);
        assert_eq!(v["requests_per_s"], 5.0);
        assert_eq!(v["errors"]["status 404"], 1);
        assert!(r.to_text().contains("2.000 GB/s (16.000 Gbit/s)"));
    }
}
