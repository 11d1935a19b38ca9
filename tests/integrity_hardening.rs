//! Two ways the disk can lie without the file's identity telling:
//!
//! - a write through a shared memory mapping changes mtime and ctime only on
//!   a page's first write, so later writes leave the identity as it was;
//! - a file replaced by an older copy (mtime in the past) would pass a BITS
//!   client's `If-Unmodified-Since` and resume into a mix of two versions.

mod support;

use distpoint::transfer::Protocol;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime};
use support::*;

const CHUNK: usize = 4096;

fn publish(dir: &std::path::Path) {
    let out = Command::new(env!("CARGO_BIN_EXE_distpoint"))
        .args(["publish", dir.to_str().unwrap(), "--chunk-size", "4096"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A process that maps `path` shared and writes through the mapping when
/// told: `touch` rewrites one byte with itself (the page's first write,
/// which moves mtime and ctime), `evil OFFSET` then changes bytes in the
/// same page (which moves nothing).
struct Mapper {
    child: std::process::Child,
    out: BufReader<std::process::ChildStdout>,
}

const MAPPER: &str = r#"
import mmap, sys
f = open(sys.argv[1], "r+b")
m = mmap.mmap(f.fileno(), 0, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
print("mapped", flush=True)
for line in sys.stdin:
    cmd = line.split()
    if cmd[0] == "touch":
        at = int(cmd[1]); m[at] = m[at]
    elif cmd[0] == "evil":
        at = int(cmd[1]); m[at:at + 4] = b"EVIL"
    print("ok", flush=True)
"#;

impl Mapper {
    fn new(path: &std::path::Path) -> Mapper {
        let mut child = Command::new("python3")
            .args(["-c", MAPPER, path.to_str().unwrap()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3");
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        out.read_line(&mut line).unwrap();
        assert_eq!(line.trim(), "mapped");
        Mapper { child, out }
    }

    fn run(&mut self, cmd: &str) {
        let stdin = self.child.stdin.as_mut().unwrap();
        writeln!(stdin, "{cmd}").unwrap();
        let mut line = String::new();
        self.out.read_line(&mut line).unwrap();
        assert_eq!(line.trim(), "ok");
    }
}

impl Drop for Mapper {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn ctime(path: &std::path::Path) -> SystemTime {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(path).unwrap();
    SystemTime::UNIX_EPOCH + Duration::new(m.ctime() as u64, m.ctime_nsec() as u32)
}

#[tokio::test]
async fn a_write_through_a_shared_mapping_never_reaches_a_client() {
    let site = Site::new();
    let a = data(8 * CHUNK, 7);
    let path = site.file("content/pkg/a.bin", &a);
    publish(&site.path("content/pkg"));
    let server = site.start(&format!(
        "{}[[vpath]]\nurl = \"/pkg\"\ndir = \"content/pkg\"\nanonymous = true\n\
         integrity = \"published\"\n",
        site.head()
    ));
    let tls = site.tls(false, &[Protocol::Http1]);
    let url = server.url("/pkg/a.bin");
    let mut mapper = Mapper::new(&path);
    // The page's first write: identity moves, content does not.
    mapper.run(&format!("touch {}", 3 * CHUNK));
    // Let the file go quiet (the earlier design trusted identities older
    // than 2 s); this is the attack's own precondition, not a test wait.
    let quiet_since = ctime(&path);
    while SystemTime::now()
        .duration_since(quiet_since)
        .unwrap_or_default()
        < Duration::from_millis(2100)
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for round in 0..2 {
        let got = fetch(&server, tls.clone(), req("GET", &url)).await;
        assert_eq!((got.status, got.body == a), (200, true), "round {round}");
    }
    // Later writes in the same page move neither mtime nor ctime.
    let before = std::fs::metadata(&path).unwrap();
    mapper.run(&format!("evil {}", 3 * CHUNK + 100));
    let after = std::fs::metadata(&path).unwrap();
    assert_eq!(
        (before.modified().unwrap(), ctime(&path)),
        (after.modified().unwrap(), quiet_since),
        "the kernel moved a timestamp: this machine does not show the attack"
    );
    assert_ne!(
        std::fs::read(&path).unwrap(),
        a,
        "the bytes on disk changed"
    );
    // Served from verified memory: the published bytes, whole.
    let got = fetch(&server, tls.clone(), req("GET", &url)).await;
    assert_eq!((got.status, got.cut, got.body == a), (200, false, true));
    // A server that must read the disk finds the change and never sends it.
    server.terminate();
    let no_cache = format!(
        "{}[[vpath]]\nurl = \"/pkg\"\ndir = \"content/pkg\"\nanonymous = true\n\
         integrity = \"published\"\n",
        site.head()
            .replacen("[server]\n", "[server]\nchunk_cache_bytes = 0\n", 1)
    );
    let server = site.start(&no_cache);
    let url = server.url("/pkg/a.bin");
    // Cut short, or closed before even the head went out: never chunk 3.
    if let Some(got) = fetch_cut(&server, tls.clone(), req("GET", &url)).await {
        assert!(
            got.cut || got.status == 503,
            "status {} cut {}",
            got.status,
            got.cut
        );
        assert!(got.body.len() <= 3 * CHUNK && got.body == a[..got.body.len()]);
    }
    assert!(server.wait_log("integrity failure", Duration::from_secs(5)));
    let got = fetch(&server, tls, req("GET", &url)).await;
    assert_eq!(got.status, 503, "quarantined");
}

#[tokio::test]
async fn last_modified_never_goes_backwards_when_an_older_copy_replaces_a_file() {
    let site = Site::new();
    let v1 = data(3 * CHUNK, 1);
    let path = site.file("content/pub/f.bin", &v1);
    let server = site.start(&format!(
        "{}[[vpath]]\nurl = \"/pub\"\ndir = \"content/pub\"\nanonymous = true\n",
        site.head()
    ));
    let tls = site.tls(false, &[Protocol::Http1]);
    let url = server.url("/pub/f.bin");
    let got = fetch(&server, tls.clone(), req("GET", &url)).await;
    let lm1 = got.header("last-modified").unwrap().to_string();
    let etag1 = got.header("etag").unwrap().to_string();

    // A BITS job resumes with the Last-Modified it saw. The file is replaced
    // by another version whose mtime is a day older.
    let v2 = data(3 * CHUNK, 2);
    let tmp = site.path("content/pub/.f.new");
    std::fs::write(&tmp, &v2).unwrap();
    let day_ago = SystemTime::now() - Duration::from_secs(86_400);
    std::fs::File::options()
        .write(true)
        .open(&tmp)
        .unwrap()
        .set_modified(day_ago)
        .unwrap();
    std::fs::rename(&tmp, &path).unwrap();
    let resume = req("GET", &url)
        .header("range", format!("bytes={}-", CHUNK))
        .header("if-unmodified-since", &lm1);
    let got = fetch(&server, tls.clone(), resume).await;
    assert_eq!(
        got.status, 412,
        "the job must start over, not resume into v2"
    );
    let got = fetch(&server, tls.clone(), req("GET", &url)).await;
    assert_eq!(got.body, v2);
    assert_ne!(got.header("etag").unwrap(), etag1);
    let lm2 = httpdate::parse_http_date(got.header("last-modified").unwrap()).unwrap();
    assert!(
        lm2 > httpdate::parse_http_date(&lm1).unwrap(),
        "{lm2:?} not after {lm1}"
    );

    // And after a restart too: the record persists in state_dir.
    let lm2_text = got.header("last-modified").unwrap().to_string();
    server.terminate();
    let server = site.start(&std::fs::read_to_string(site.path("distpoint.toml")).unwrap());
    let url = server.url("/pub/f.bin");
    let got = fetch(&server, tls, req("GET", &url)).await;
    assert_eq!(got.header("last-modified"), Some(lm2_text.as_str()));
}
