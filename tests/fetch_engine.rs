//! The transfer engine in process, with sources and a sink in memory: what
//! `fetch` shares with replicas and does not show on the command line —
//! chunks offered locally, the rate limit, the request gate, a sink that
//! fails — plus drops and verdicts seen through the engine's own API.

use bytes::Bytes;
use distpoint::integrity::{Digest, FileManifest};
use distpoint::transfer::source::BoxFuture;
use distpoint::transfer::{
    self, DropReason, Events, Gate, Job, LocalChunks, RateLimit, ReadError, ReadRequest, Reader,
    Reply, Sink, Source, TransferError, Validator,
};
use std::collections::{HashMap, VecDeque};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

const CHUNK: usize = 4096;

/// Content with no repeating chunk (xorshift), so digests are distinct.
fn data(len: usize, seed: u64) -> Vec<u8> {
    let mut x = 0x9e37_79b9_7f4a_7c15 ^ seed;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// A source in memory: serves `data`, spoiling every chunk from `bad` on if set.
struct Mem {
    name: String,
    data: Arc<Vec<u8>>,
    bad: Option<usize>,
    reads: Arc<AtomicU64>,
    bytes: Arc<AtomicU64>,
}

impl Mem {
    fn new(name: &str, data: &[u8], bad: Option<usize>) -> Arc<Mem> {
        Arc::new(Mem {
            name: name.into(),
            data: Arc::new(data.to_vec()),
            bad,
            reads: Arc::default(),
            bytes: Arc::default(),
        })
    }
}

struct Pieces(VecDeque<Bytes>);

impl futures_core::Stream for Pieces {
    type Item = Result<Bytes, ReadError>;
    fn poll_next(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        Poll::Ready(self.0.pop_front().map(Ok))
    }
}

struct MemReader(Arc<Mem>);

impl Source for Mem {
    fn name(&self) -> &str {
        &self.name
    }
    fn open(&self) -> BoxFuture<'_, Result<Box<dyn Reader>, ReadError>> {
        let me = Arc::new(Mem {
            name: self.name.clone(),
            data: self.data.clone(),
            bad: self.bad,
            reads: self.reads.clone(),
            bytes: self.bytes.clone(),
        });
        Box::pin(async move { Ok(Box::new(MemReader(me)) as Box<dyn Reader>) })
    }
}

impl Reader for MemReader {
    fn read<'a>(&'a mut self, req: ReadRequest<'a>) -> BoxFuture<'a, Result<Reply, ReadError>> {
        let m = &self.0;
        m.reads.fetch_add(1, Ordering::SeqCst);
        let mut bytes = m.data[req.start as usize..req.end as usize].to_vec();
        if let Some(k) = m.bad {
            for at in (k * CHUNK + 1..req.end as usize).step_by(CHUNK) {
                if at >= req.start as usize {
                    bytes[at - req.start as usize] ^= 1;
                }
            }
        }
        m.bytes.fetch_add(bytes.len() as u64, Ordering::SeqCst);
        let pieces = bytes.chunks(1000).map(Bytes::copy_from_slice).collect();
        Box::pin(async move {
            Ok(Reply {
                validator: Some(Validator::ETag("\"mem\"".into())),
                body: Box::pin(Pieces(pieces)),
            })
        })
    }
}

/// A sink in memory; fails from chunk `fail_at` on if set.
struct MemSink {
    buf: Mutex<Vec<u8>>,
    fail_at: Option<u64>,
}

impl MemSink {
    fn new(size: usize, fail_at: Option<u64>) -> Arc<MemSink> {
        Arc::new(MemSink {
            buf: Mutex::new(vec![0; size]),
            fail_at,
        })
    }
    fn bytes(&self) -> Vec<u8> {
        self.buf.lock().unwrap().clone()
    }
}

impl Sink for MemSink {
    fn write_chunk(&self, index: u64, offset: u64, data: &[u8]) -> std::io::Result<()> {
        if self.fail_at.is_some_and(|f| index >= f) {
            return Err(std::io::Error::other("disk full"));
        }
        let o = offset as usize;
        self.buf.lock().unwrap()[o..o + data.len()].copy_from_slice(data);
        Ok(())
    }
    fn read_at(&self, offset: u64, len: usize) -> std::io::Result<Vec<u8>> {
        Ok(self.buf.lock().unwrap()[offset as usize..offset as usize + len].to_vec())
    }
}

#[derive(Default)]
struct Heard {
    dropped: Mutex<Vec<(String, DropReason)>>,
    verified: AtomicU64,
}

impl Events for Heard {
    fn verified(&self, _bytes: u64, _done: u64) {
        self.verified.fetch_add(1, Ordering::SeqCst);
    }
    fn dropped(&self, source: &str, reason: &DropReason) {
        self.dropped
            .lock()
            .unwrap()
            .push((source.into(), reason.clone()));
    }
}

fn job(body: &[u8], sources: Vec<Arc<Mem>>, sink: Arc<MemSink>) -> (Job, Arc<FileManifest>) {
    let m = Arc::new(FileManifest::compute(body, CHUNK as u64).unwrap());
    let sources = sources.into_iter().map(|s| s as Arc<dyn Source>).collect();
    (Job::new(m.clone(), sources, sink), m)
}

#[tokio::test(flavor = "multi_thread")]
async fn chunks_offered_locally_are_hashed_used_and_not_fetched() {
    let body = data(CHUNK * 64, 1);
    struct Local(HashMap<Digest, Vec<u8>>);
    impl LocalChunks for Local {
        fn chunk(&self, digest: &Digest, _len: u64) -> Option<Vec<u8>> {
            self.0.get(digest).cloned()
        }
    }
    let m = FileManifest::compute(&body[..], CHUNK as u64).unwrap();
    // Even chunks are held locally; the copy of chunk 10 is damaged, so it
    // must be fetched after all.
    let mut held = HashMap::new();
    for c in (0..64).step_by(2) {
        let mut bytes = body[c * CHUNK..(c + 1) * CHUNK].to_vec();
        if c == 10 {
            bytes[0] ^= 1;
        }
        held.insert(m.chunks[c], bytes);
    }
    let src = Mem::new("mem", &body, None);
    let sink = MemSink::new(body.len(), None);
    let (mut j, _) = job(&body, vec![src.clone()], sink.clone());
    j.local = Some(Arc::new(Local(held)));
    j.connections = 2;
    let t = transfer::run(j).await;
    t.result.unwrap();
    assert_eq!(sink.bytes(), body);
    assert_eq!(t.report.chunks_local, 31);
    assert_eq!(t.report.bytes_local, 31 * CHUNK as u64);
    assert_eq!(t.report.chunks_fetched, 33);
    assert_eq!(
        src.bytes.load(Ordering::SeqCst),
        33 * CHUNK as u64,
        "only the rest"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_bad_source_is_dropped_and_its_chunk_comes_from_the_other() {
    let body = data(CHUNK * 40, 2);
    let bad = Mem::new("bad", &body, Some(0));
    let good = Mem::new("good", &body, None);
    let sink = MemSink::new(body.len(), None);
    let (mut j, _) = job(&body, vec![bad.clone(), good.clone()], sink.clone());
    let heard = Arc::new(Heard::default());
    j.events = heard.clone();
    let t = transfer::run(j).await;
    t.result.unwrap();
    assert_eq!(sink.bytes(), body);
    let dropped = heard.dropped.lock().unwrap().clone();
    assert_eq!(dropped.len(), 1, "{dropped:?}");
    assert_eq!(dropped[0].0, "bad");
    assert!(
        matches!(dropped[0].1, DropReason::BadChunk { .. }),
        "{dropped:?}"
    );
    // One connection: its first chunk was bad, and it got no request after it.
    let r = &t.report.sources;
    assert_eq!(bad.reads.load(Ordering::SeqCst), 1);
    assert_eq!((r[0].requests, r[0].refused, r[0].chunks), (1, 1, 0));
    assert_eq!(r[1].chunks, 40);
    assert!(r[1].dropped.is_none());
    assert_eq!(heard.verified.load(Ordering::SeqCst), 40);

    // Both bad from chunk 7 on: no source can deliver chunk 7.
    let sink = MemSink::new(body.len(), None);
    let (j, _) = job(
        &body,
        vec![Mem::new("a", &body, Some(7)), Mem::new("b", &body, Some(7))],
        sink.clone(),
    );
    let t = transfer::run(j).await;
    match t.result {
        Err(TransferError::Integrity { chunk: 7, message }) => {
            assert!(message.contains("chunk 7 of 40"), "{message}");
            assert!(
                message.contains("a: chunk 7") && message.contains("b: chunk 7"),
                "{message}"
            );
        }
        other => panic!("{other:?}"),
    }
    assert!(sink.bytes()[7 * CHUNK..8 * CHUNK].iter().all(|&b| b == 0));
}

#[tokio::test(flavor = "multi_thread")]
async fn the_rate_limit_holds_for_all_sources_together() {
    let body = data(CHUNK * 256, 3); // 1 MiB
    let sink = MemSink::new(body.len(), None);
    let (mut j, _) = job(
        &body,
        vec![Mem::new("a", &body, None), Mem::new("b", &body, None)],
        sink.clone(),
    );
    j.connections = 2;
    let rate = 2_000_000u64;
    j.rate = Some(Arc::new(RateLimit::new(rate)));
    let t0 = Instant::now();
    transfer::run(j).await.result.unwrap();
    let took = t0.elapsed().as_secs_f64();
    assert_eq!(sink.bytes(), body);
    // At most one burst (a twentieth of a second's worth) comes free.
    let least = (body.len() as f64 - rate as f64 / 20.0) / rate as f64;
    assert!(took >= least * 0.99, "{took:.3} s for 1 MiB at 2 MB/s");
}

#[tokio::test(flavor = "multi_thread")]
async fn no_request_starts_before_the_gate_admits_it() {
    struct Door {
        open: AtomicBool,
        asked: tokio::sync::Notify,
        opened: tokio::sync::Notify,
    }
    impl Gate for Door {
        fn admit(&self) -> BoxFuture<'_, ()> {
            Box::pin(async move {
                while !self.open.load(Ordering::SeqCst) {
                    let wait = self.opened.notified();
                    self.asked.notify_one();
                    if self.open.load(Ordering::SeqCst) {
                        break;
                    }
                    wait.await;
                }
            })
        }
    }
    let door = Arc::new(Door {
        open: AtomicBool::new(false),
        asked: tokio::sync::Notify::new(),
        opened: tokio::sync::Notify::new(),
    });
    let body = data(CHUNK * 8, 4);
    let src = Mem::new("mem", &body, None);
    let sink = MemSink::new(body.len(), None);
    let (mut j, _) = job(&body, vec![src.clone()], sink.clone());
    j.gate = Some(door.clone());
    let run = tokio::spawn(transfer::run(j));
    tokio::time::timeout(Duration::from_secs(10), door.asked.notified())
        .await
        .expect("a worker asked the gate");
    assert_eq!(
        src.reads.load(Ordering::SeqCst),
        0,
        "nothing read before admission"
    );
    door.open.store(true, Ordering::SeqCst);
    door.opened.notify_waiters();
    let t = tokio::time::timeout(Duration::from_secs(10), run)
        .await
        .unwrap()
        .unwrap();
    t.result.unwrap();
    assert_eq!(sink.bytes(), body);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_sink_that_fails_stops_the_run_naming_the_chunk() {
    let body = data(CHUNK * 16, 5);
    let sink = MemSink::new(body.len(), Some(3));
    let (j, _) = job(&body, vec![Mem::new("mem", &body, None)], sink);
    match transfer::run(j).await.result {
        Err(TransferError::Sink { chunk, source }) => {
            assert!(chunk >= 3);
            assert_eq!(source.to_string(), "disk full");
        }
        other => panic!("{other:?}"),
    }
}
