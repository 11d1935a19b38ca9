//! Serve-through paths over a real S3-compatible store (Garage): two
//! distpoint servers serve a package from one bucket byte-identical with the
//! same validators; a new manifest is picked up within `interval_secs`; an
//! object tampered with in the bucket is never served; with the store
//! stopped, cached chunks still serve and the rest is `503`; the chunk cache
//! never holds more than `cache_bytes`.

mod support;

use distpoint::transfer::Protocol;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::garage::Garage;
use support::*;

const CHUNK: usize = 16 * 1024;

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Publish `site`'s `content/pkg` to `s3://packages/PREFIX`, signed with
/// the site's `publisher.key` (made on first use).
fn publish(site: &Site, g: &Garage, prefix: &str) {
    let key = site.path("publisher.key");
    let bin = env!("CARGO_BIN_EXE_distpoint");
    if !key.exists() {
        let out = Command::new(bin)
            .args(["publish", "--gen-key", s(&key)])
            .output()
            .unwrap();
        assert!(out.status.success());
    }
    let to = format!("s3://packages/{prefix}");
    let out = Command::new(bin)
        .args([
            "publish",
            s(&site.path("content/pkg")),
            "--chunk-size",
            "16384",
        ])
        .args(["--key", s(&key), "--to", &to])
        .envs(g.env())
        .env("HOME", "/nonexistent")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A config serving `s3://packages/PREFIX` at `/pkg`, checked by the
/// publisher key of `publisher` (the site that published).
fn config(site: &Site, g: &Garage, prefix: &str, publisher: &Site, extra: &str) -> String {
    format!(
        "{head}{extra}{origin}[[vpath]]\nurl = \"/pkg\"\norigin = \"s3://packages/{prefix}\"\n\
         integrity = \"published\"\npublisher_keys = [\"{key}\"]\nanonymous = true\n\
         cache_dir = \"cache\"\ninterval_secs = 1\n",
        head = site.head(),
        origin = g.origin_table(site.dir.path()),
        key = publisher.path("publisher.key.pub").display(),
    )
}

async fn get(server: &Server, site: &Site, path: &str, headers: &[(&str, &str)]) -> Got {
    let mut r = req("GET", &server.url(path));
    for (k, v) in headers {
        r = r.header(*k, *v);
    }
    fetch(server, site.tls(false, &[Protocol::Http1]), r).await
}

/// Chunk files in a cache folder (its shard folders; not the kept
/// manifest): path → (inode, size).
fn cache_files(dir: &Path) -> std::collections::HashMap<std::path::PathBuf, (u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    let Ok(shards) = std::fs::read_dir(dir) else {
        return Default::default();
    };
    shards
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .flat_map(|shard| {
            std::fs::read_dir(shard.path())
                .into_iter()
                .flatten()
                .filter_map(Result::ok)
        })
        .filter_map(|f| Some((f.path(), f.metadata().ok()?)))
        .map(|(p, m)| (p, (m.ino(), m.len())))
        .collect()
}

/// Chunk bytes in a cache folder (at rest).
fn cached_bytes(dir: &Path) -> u64 {
    cache_files(dir).values().map(|(_, n)| n).sum()
}

/// Chunk bytes that were all on disk at one moment, while the cache is
/// being written: a walk of the folder is no snapshot (a file evicted after
/// its shard was read and one written into a later shard would both be
/// counted), so only the files still there, same inode, in a second look
/// are summed. Each of them existed from its first to its second look, and
/// every first look came before every second: all were there together at
/// the end of the first walk.
fn cached_bytes_at_once(dir: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    cache_files(dir)
        .into_iter()
        .filter(|(p, (ino, _))| std::fs::metadata(p).is_ok_and(|m| m.ino() == *ino))
        .map(|(_, (_, n))| n)
        .sum()
}

fn wait_for(what: &str, deadline: Duration, mut ok: impl FnMut() -> bool) {
    let until = Instant::now() + deadline;
    while !ok() {
        assert!(Instant::now() < until, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn two_servers_serve_one_bucket_identically_and_follow_a_republish() {
    let g = Garage::start("packages");
    let publisher = Site::new();
    let a = data(9 * CHUNK + 77, 1);
    publisher.file("content/pkg/a.bin", &a);
    publisher.file("content/pkg/sub/readme.txt", b"hello from the bucket\n");
    publish(&publisher, &g, "PKG");
    let sites = [Site::new(), Site::new()];
    let servers: Vec<Server> = sites
        .iter()
        .map(|site| site.start(&config(site, &g, "PKG", &publisher, "")))
        .collect();
    let mut seen = Vec::new();
    for (site, server) in sites.iter().zip(&servers) {
        let got = get(server, site, "/pkg/a.bin", &[]).await;
        assert_eq!(got.status, 200, "{}", server.log());
        assert!(got.body == a, "byte-identical");
        let v = |h| got.header(h).unwrap().to_string();
        seen.push((v("etag"), v("repr-digest"), v("last-modified")));
        let got = get(server, site, "/pkg/sub/readme.txt", &[]).await;
        assert_eq!(got.body, b"hello from the bucket\n");
    }
    assert_eq!(
        seen[0], seen[1],
        "same ETag, Repr-Digest and Last-Modified on both"
    );
    let (site, server) = (&sites[0], &servers[0]);
    let etag = seen[0].0.clone();
    // Ranges and conditionals as for a dir.
    let got = get(
        server,
        site,
        "/pkg/a.bin",
        &[("range", "bytes=20000-40000")],
    )
    .await;
    assert_eq!(got.status, 206);
    assert_eq!(got.body, &a[20000..=40000]);
    let got = get(server, site, "/pkg/a.bin", &[("if-none-match", &etag)]).await;
    assert_eq!(got.status, 304);
    let got = get(server, site, "/pkg/a.bin", &[("if-match", "\"other\"")]).await;
    assert_eq!(got.status, 412);
    let got = get(server, site, "/pkg/?manifest", &[]).await;
    assert_eq!(
        got.body,
        std::fs::read(publisher.path("content/pkg/.distpoint/manifest.json")).unwrap()
    );
    assert_eq!(get(server, site, "/pkg/not-listed", &[]).await.status, 404);
    assert_eq!(
        get(server, site, "/pkg/.distpoint/manifest.json", &[])
            .await
            .status,
        404
    );

    // A republish reaches both within interval_secs (1 s) of the manifest upload.
    let a2 = data(4 * CHUNK, 9);
    publisher.file("content/pkg/a.bin", &a2);
    publish(&publisher, &g, "PKG");
    let published = Instant::now();
    for (site, server) in sites.iter().zip(&servers) {
        let until = Instant::now() + Duration::from_secs(15);
        loop {
            let got = get(server, site, "/pkg/a.bin", &[]).await;
            if got.status == 200 && got.header("etag") != Some(etag.as_str()) {
                assert!(got.body == a2, "the new version whole");
                break;
            }
            assert!(
                got.status == 200 && got.body == a,
                "the old version whole until then"
            );
            assert!(Instant::now() < until, "the republish was not picked up");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    // interval_secs is 1: both saw it within a few seconds (a loaded machine's margin).
    assert!(
        published.elapsed() < Duration::from_secs(5),
        "{:?}",
        published.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_object_tampered_with_in_the_bucket_is_never_served() {
    let g = Garage::start("packages");
    let publisher = Site::new();
    let a = data(8 * CHUNK, 2);
    let b = data(2 * CHUNK, 3);
    publisher.file("content/pkg/a.bin", &a);
    publisher.file("content/pkg/b.bin", &b);
    publish(&publisher, &g, "PKG");
    let site = Site::new();
    let server = site.start(&config(&site, &g, "PKG", &publisher, ""));
    // Chunk 3 changed in the bucket, same size.
    let mut bad = a.clone();
    bad[3 * CHUNK + 100] ^= 0xff;
    let store = g.store("PKG");
    store.put("a.bin", bad.clone().into()).await.unwrap();
    let got = get(&server, &site, "/pkg/a.bin", &[]).await;
    assert_eq!(got.status, 200, "the first chunks are good");
    assert!(got.cut, "cut at the bad chunk");
    assert!(
        got.body.len() <= 3 * CHUNK,
        "nothing of chunk 3 sent: {}",
        got.body.len()
    );
    assert_eq!(got.body, &a[..got.body.len()]);
    assert!(server.wait_log("object quarantined", Duration::from_secs(5)));
    assert!(
        server.log().contains("attempt=2"),
        "read once more before giving up"
    );
    let got = get(&server, &site, "/pkg/a.bin", &[("range", "bytes=0-10")]).await;
    assert_eq!(got.status, 503);
    assert_eq!(
        got.header("distpoint-integrity"),
        Some("quarantined; chunk=3")
    );
    // The object put right again: served whole, quarantine lifted.
    store.put("a.bin", a.clone().into()).await.unwrap();
    let got = get(&server, &site, "/pkg/a.bin", &[]).await;
    assert_eq!(got.status, 200, "{}", server.log());
    assert!(got.body == a && !got.cut);
    // A bad first chunk of a file never read before: a clean 503, no header of content.
    let mut b0 = b.clone();
    b0[5] ^= 1;
    store.put("b.bin", b0.into()).await.unwrap();
    let got = get(&server, &site, "/pkg/b.bin", &[]).await;
    assert_eq!(got.status, 503);
    assert_eq!(
        got.header("distpoint-integrity"),
        Some("quarantined; chunk=0")
    );
    assert!(got.header("etag").is_none() && !got.body.starts_with(&b[..5]));
}

#[tokio::test(flavor = "multi_thread")]
async fn with_the_store_stopped_cached_chunks_serve_and_the_rest_is_503() {
    let mut g = Garage::start("packages");
    let publisher = Site::new();
    let a = data(6 * CHUNK + 3, 4);
    let b = data(5 * CHUNK, 5);
    publisher.file("content/pkg/a.bin", &a);
    publisher.file("content/pkg/b.bin", &b);
    publish(&publisher, &g, "PKG");
    let site = Site::new();
    let body = config(&site, &g, "PKG", &publisher, "");
    let server = site.start(&body);
    let got = get(&server, &site, "/pkg/a.bin", &[]).await;
    assert!(got.status == 200 && got.body == a);
    let validators = |g: &Got| {
        (
            g.header("etag").map(str::to_string),
            g.header("last-modified").map(str::to_string),
        )
    };
    let before = validators(&got);
    let cache = site.path("cache");
    wait_for("a.bin's chunks on disk", Duration::from_secs(10), || {
        cached_bytes(&cache) == a.len() as u64
    });
    g.stop();
    let got = get(&server, &site, "/pkg/a.bin", &[]).await;
    assert!(
        got.status == 200 && got.body == a,
        "cached chunks keep serving"
    );
    let got = get(&server, &site, "/pkg/b.bin", &[]).await;
    assert_eq!(got.status, 503);
    assert!(got.header("retry-after").is_some());
    // A restart with the store still down: the kept manifest (signature
    // checked again) and the chunks on disk.
    drop(server);
    let server = site.start(&body);
    let got = get(&server, &site, "/pkg/a.bin", &[("range", "bytes=1-70000")]).await;
    assert_eq!(got.status, 206, "{}", server.log());
    assert_eq!(got.body, &a[1..=70000]);
    assert_eq!(
        validators(&got),
        before,
        "the same validators as before the restart"
    );
    let got = get(&server, &site, "/pkg/b.bin", &[("range", "bytes=0-9")]).await;
    assert_eq!(got.status, 503);
    // The store back: the rest is served again.
    g.restart();
    let until = Instant::now() + Duration::from_secs(20);
    loop {
        let got = get(&server, &site, "/pkg/b.bin", &[]).await;
        if got.status == 200 {
            assert!(got.body == b);
            break;
        }
        assert!(
            Instant::now() < until,
            "b.bin never came back: {}",
            got.status
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_chunk_cache_never_holds_more_than_cache_bytes() {
    let g = Garage::start("packages");
    let publisher = Site::new();
    let files: Vec<Vec<u8>> = (0..4).map(|i| data(8 * CHUNK, 10 + i)).collect();
    for (i, f) in files.iter().enumerate() {
        publisher.file(&format!("content/pkg/f{i}.bin"), f);
    }
    publish(&publisher, &g, "PKG");
    let site = Site::new();
    let limit = 5 * CHUNK as u64;
    // No memory cache: every read goes to the disk cache or the store.
    let body = config(&site, &g, "PKG", &publisher, "").replace(
        "state_dir = \"state\"\n",
        "state_dir = \"state\"\nchunk_cache_bytes = 0\n",
    ) + &format!("cache_bytes = {limit}\n");
    let server = site.start(&body);
    let cache = site.path("cache");
    let (stop, max) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicU64::new(0)),
    );
    let watcher = {
        let (stop, max, cache) = (stop.clone(), max.clone(), cache.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                max.fetch_max(cached_bytes_at_once(&cache), Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(2));
            }
        })
    };
    for _round in 0..2 {
        for (i, f) in files.iter().enumerate() {
            let got = get(&server, &site, &format!("/pkg/f{i}.bin"), &[]).await;
            assert!(got.status == 200 && got.body == *f, "{}", server.log());
        }
    }
    stop.store(true, Ordering::Relaxed);
    watcher.join().unwrap();
    let max = max.load(Ordering::Relaxed);
    assert!(
        max <= limit,
        "the cache held {max} bytes, more than {limit}"
    );
    assert!(max >= 4 * CHUNK as u64, "the cache was used: {max}");
}

#[test]
fn the_fleet_example_config_validates_against_a_published_bucket() {
    let g = Garage::start("packages");
    let root = tempfile::tempdir().unwrap();
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let example = std::fs::read_to_string(repo.join("config/fleet.toml")).unwrap();
    let example = example.replace("http://127.0.0.1:3900", &g.endpoint());
    assert!(
        example.contains(&g.endpoint()),
        "the example's endpoint line changed"
    );
    for d in ["config", "keys", "content/PKG00001"] {
        std::fs::create_dir_all(root.path().join(d)).unwrap();
    }
    std::fs::write(root.path().join("config/fleet.toml"), example).unwrap();
    std::fs::write(
        root.path().join("content/PKG00001/setup.exe"),
        data(40_000, 7),
    )
    .unwrap();
    let bin = env!("CARGO_BIN_EXE_distpoint");
    let run = |args: &[&str]| {
        Command::new(bin)
            .args(args)
            .current_dir(root.path())
            .envs(g.env())
            .env("HOME", "/nonexistent")
            .output()
            .unwrap()
    };
    // The steps the file's header gives, in order.
    assert!(run(&["publish", "--gen-key", "keys/publisher.pem"])
        .status
        .success());
    let published = run(&[
        "publish",
        "content/PKG00001",
        "--key",
        "keys/publisher.pem",
        "--to",
        "s3://packages/PKG00001",
    ]);
    assert!(published.status.success(), "{published:?}");
    let checked = run(&["check-config", "--config", "config/fleet.toml"]);
    let (out, err) = (
        String::from_utf8_lossy(&checked.stdout),
        String::from_utf8_lossy(&checked.stderr),
    );
    assert!(checked.status.success(), "{out}{err}");
    assert!(
        out.contains("s3://packages/PKG00001 (serve-through"),
        "{out}"
    );
    assert!(
        !err.contains("warning"),
        "the bucket's manifest was found: {err}"
    );
}
