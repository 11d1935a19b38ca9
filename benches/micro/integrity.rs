//! Chunk hashing, the verified-chunk cache, and the verified read of a small
//! range (`distpoint::integrity`).

use distpoint::body::BlockSource;
use distpoint::integrity::cache::{ChunkCache, Verified};
use distpoint::integrity::chunker::{chunk_matches, ChunkHasher};
use distpoint::integrity::hashing::compute_file;
use distpoint::integrity::quarantine::Quarantine;
use distpoint::integrity::verify::{Trust, VerifiedFile};
use distpoint::integrity::{sha256, FileManifest};
use distpoint::resolve::FileIdentity;
use distpoint::vpath::Verify;
use divan::counter::BytesCount;
use divan::{black_box, Bencher};
use std::fs::File;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

const MIB: usize = 1 << 20;

fn data(len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect()
}

/// The chunk hasher fed 1 MiB in 64 KiB pieces (the client's and the manifest's path).
#[divan::bench(args = [64 * 1024, MIB])]
fn chunk_hasher(bencher: Bencher, chunk_size: usize) {
    let d = data(MIB);
    bencher.counter(BytesCount::new(MIB)).bench(|| {
        let mut h = ChunkHasher::new(chunk_size as u64, MIB as u64, 0);
        let mut n = 0;
        for piece in d.chunks(64 * 1024) {
            h.update(black_box(piece), |_| n += 1);
        }
        n
    });
}

/// One whole 1 MiB chunk checked against its digest (verify on send, cache miss).
#[divan::bench]
fn chunk_check(bencher: Bencher) {
    let d = data(MIB);
    let digest = sha256(&d);
    bencher
        .counter(BytesCount::new(MIB))
        .bench(|| chunk_matches(&digest, black_box(&d)));
}

/// A 16 MiB file hashed into its manifest (chunk digests and whole-file digest, two threads).
#[divan::bench(sample_count = 10)]
fn manifest_16mib(bencher: Bencher) {
    let mut f = tempfile::tempfile().unwrap();
    std::io::Write::write_all(&mut f, &data(16 * MIB)).unwrap();
    bencher
        .counter(BytesCount::new(16 * MIB))
        .bench(|| compute_file(&f, MIB as u64).unwrap());
}

/// A verified 4 KiB chunk whose bytes (and digest) differ for every `n`.
fn chunk(n: u64) -> Verified {
    let mut d = data(4096);
    d[..8].copy_from_slice(&n.to_le_bytes());
    let digest = sha256(&d);
    Verified::check(bytes::Bytes::from(d), &digest).unwrap()
}

/// `get` on a cache holding `chunks` verified 4 KiB chunks (bytes by digest).
#[divan::bench(args = [1, 10_000], threads = [1, 2])]
fn cache_hit(bencher: Bencher, chunks: u64) {
    let cache = ChunkCache::new(1 << 30);
    for n in 0..chunks {
        cache.insert(&chunk(n));
    }
    let id = sha256(chunk(chunks / 2).bytes());
    bencher.bench(|| cache.get(black_box(&id)));
}

/// `get` for a digest the cache does not hold.
#[divan::bench]
fn cache_miss(bencher: Bencher) {
    let cache = ChunkCache::new(1 << 30);
    cache.insert(&chunk(1));
    let other = sha256(chunk(2).bytes());
    bencher.bench(|| cache.get(black_box(&other)));
}

/// `Verified::check` + `insert` of a 1 MiB chunk (every cache miss: hash, then keep).
#[divan::bench]
fn cache_check_insert(bencher: Bencher) {
    let cache = ChunkCache::new(1 << 30);
    let bytes = bytes::Bytes::from(data(MIB));
    let d = sha256(&bytes);
    bencher
        .counter(BytesCount::new(MIB))
        .bench(|| cache.insert(&Verified::check(black_box(bytes.clone()), &d).unwrap()));
}

/// `VerifiedFile` over a 4 MiB file older than the cache's racy window (chunks of a
/// file changed in the last 2 s are never cached).
fn verified(verify: Verify) -> (tempfile::TempDir, VerifiedFile) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f");
    let content = data(4 * MIB);
    std::fs::write(&path, &content).unwrap();
    let age = || {
        let modified = std::fs::metadata(&path).unwrap().modified().unwrap();
        SystemTime::now()
            .duration_since(modified)
            .unwrap_or_default()
    };
    while age() < Duration::from_millis(2100) {
        std::thread::sleep(Duration::from_millis(100));
    }
    let file = File::open(&path).unwrap();
    let id = FileIdentity::of(&file).unwrap();
    let manifest = Arc::new(FileManifest::compute(&content[..], MIB as u64).unwrap());
    let trust = Trust::Published {
        quarantine: Arc::new(Quarantine::default()),
        path,
    };
    let cache = Arc::new(ChunkCache::default());
    let source = VerifiedFile::new(
        Arc::new(file),
        manifest,
        id,
        verify,
        cache,
        trust,
        "/f".into(),
    );
    (dir, source)
}

/// A 4 KiB read through the verifier, chunk already verified: fstat, cache lookup,
/// pread, fstat — the body's whole cost for a small range with `verify = "cached"`.
#[divan::bench]
fn verified_read_4k_cached(bencher: Bencher) {
    let (_dir, source) = verified(Verify::Cached);
    source.read(MIB as u64 + 12_345, 4096).unwrap(); // hashes chunk 1 and caches it
    bencher
        .counter(BytesCount::new(4096usize))
        .bench(|| source.read(black_box(MIB as u64 + 12_345), 4096).unwrap());
}

/// The same read with `verify = "always"`: the whole 1 MiB chunk is read and hashed.
#[divan::bench(sample_count = 20)]
fn verified_read_4k_always(bencher: Bencher) {
    let (_dir, source) = verified(Verify::Always);
    bencher
        .counter(BytesCount::new(4096usize))
        .bench(|| source.read(black_box(MIB as u64 + 12_345), 4096).unwrap());
}
