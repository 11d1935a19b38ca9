//! Test support: a real `distpoint serve` process on an ephemeral port, with
//! certificates made at test time, and real clients to talk to it.
#![allow(dead_code)]

pub mod garage;
pub mod mirror;
pub mod nginx;

use bytes::Bytes;
use distpoint::devcerts::{DevCa, PemPair};
use distpoint::transfer::{client_config, Conn, Protocol};
use http::{Request, Response};
use http_body_util::{BodyExt, Empty};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The password every test user gets.
pub const PASSWORD: &str = "correct horse battery staple";

/// A PKI made at test time: one CA, a server certificate, a client certificate.
pub struct Pki {
    pub ca: DevCa,
    pub server: PemPair,
    pub client: PemPair,
}

impl Pki {
    pub fn new(client_cn: &str) -> Pki {
        let ca = DevCa::new("test CA").unwrap();
        let server = ca.issue_server(&["localhost", "127.0.0.1", "::1"]).unwrap();
        let client = ca.issue_client(client_cn).unwrap();
        Pki { ca, server, client }
    }

    /// Write ca.crt, server.crt, server.key into `dir/certs`.
    pub fn write(&self, dir: &Path) {
        let certs = dir.join("certs");
        std::fs::create_dir_all(&certs).unwrap();
        std::fs::write(certs.join("ca.crt"), self.ca.cert_pem()).unwrap();
        std::fs::write(certs.join("server.crt"), &self.server.cert).unwrap();
        std::fs::write(certs.join("server.key"), &self.server.key).unwrap();
    }

    pub fn ca_der(&self) -> Vec<CertificateDer<'static>> {
        vec![CertificateDer::from_pem_slice(self.ca.cert_pem().as_bytes()).unwrap()]
    }
}

/// Certificate + key as rustls wants them.
pub fn identity(pair: &PemPair) -> (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>) {
    (
        vec![CertificateDer::from_pem_slice(pair.cert.as_bytes()).unwrap()],
        PrivateKeyDer::from_pem_slice(pair.key.as_bytes()).unwrap(),
    )
}

/// A test site: a temp folder with certificates, content folders and a config.
pub struct Site {
    pub dir: tempfile::TempDir,
    pub pki: Pki,
    /// Argon2 hash of [`PASSWORD`], computed once per site (it is slow in debug builds).
    pub hash: String,
}

impl Site {
    pub fn new() -> Site {
        let dir = tempfile::tempdir().unwrap();
        let pki = Pki::new("client01");
        pki.write(dir.path());
        let hash = distpoint::auth::hash_password(PASSWORD).unwrap();
        Site { dir, pki, hash }
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// Write a file below the site folder, creating folders.
    pub fn file(&self, rel: &str, content: &[u8]) -> PathBuf {
        let p = self.path(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, content).unwrap();
        p
    }

    /// The `[server]` and `[tls]` head of a config listening on an ephemeral port.
    pub fn head(&self) -> String {
        "[server]\nlisten = [\"127.0.0.1:0\"]\nstate_dir = \"state\"\n\
         [tls]\ncert = \"certs/server.crt\"\nkey = \"certs/server.key\"\nclient_ca = \"certs/ca.crt\"\n"
            .to_string()
    }

    /// `[users.NAME]` with the test password.
    pub fn user(&self, name: &str) -> String {
        format!("[users.{name}]\npassword_hash = \"{}\"\n", self.hash)
    }

    /// Write `distpoint.toml` and return its path.
    pub fn config(&self, body: &str) -> PathBuf {
        let p = self.path("distpoint.toml");
        std::fs::write(&p, body).unwrap();
        p
    }

    /// Start the real binary on this site's config.
    pub fn start(&self, body: &str) -> Server {
        Server::start(&self.config(body))
    }

    /// A TLS client config trusting the site's CA, with or without the client certificate.
    pub fn tls(&self, with_cert: bool, protocols: &[Protocol]) -> Arc<rustls::ClientConfig> {
        let id = with_cert.then(|| identity(&self.pki.client));
        client_config(&self.pki.ca_der(), id, protocols).unwrap()
    }
}

/// A running `distpoint serve`.
pub struct Server {
    child: Child,
    pub addr: SocketAddr,
    log: Arc<Mutex<String>>,
    listening: Arc<Mutex<Vec<SocketAddr>>>,
    /// Reads stderr into `log` until the process closes it.
    stderr_reader: Option<std::thread::JoinHandle<()>>,
}

impl Server {
    pub fn start(config: &Path) -> Server {
        Server::start_with_env(config, &[])
    }

    /// Start with extra environment variables.
    pub fn start_with_env(config: &Path, env: &[(&str, &std::ffi::OsStr)]) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_distpoint"))
            .args(["serve", "--config"])
            .arg(config)
            .env("RUST_LOG", "info")
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start distpoint");
        let log = Arc::new(Mutex::new(String::new()));
        let stderr = child.stderr.take().unwrap();
        let l = log.clone();
        let stderr_reader = std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let mut g = l.lock().unwrap();
                g.push_str(&line);
                g.push('\n');
            }
        });
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let listening = Arc::new(Mutex::new(Vec::new()));
        let seen = listening.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(url) = line.trim().strip_prefix("listening on https://") {
                    let addr = url.parse::<SocketAddr>().unwrap();
                    seen.lock().unwrap().push(addr);
                    let _ = tx.send(addr);
                }
            }
        });
        match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(addr) => Server {
                child,
                addr,
                log,
                listening,
                stderr_reader: Some(stderr_reader),
            },
            Err(_) => {
                let _ = child.kill();
                std::thread::sleep(Duration::from_millis(200));
                panic!("server did not start; log:\n{}", log.lock().unwrap());
            }
        }
    }

    /// Wait until the server has closed every connection to its port (none
    /// left ESTABLISHED or CLOSE_WAIT on its side): every request it took has
    /// then ended and written its access-log record. The event tests wait for
    /// before counting requests, instead of a pause.
    pub fn wait_quiet(&self, timeout: Duration) {
        let end = Instant::now() + timeout;
        while !connections(self.addr.port()).is_empty() {
            assert!(
                Instant::now() < end,
                "connections still open: {}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Every address the banner announced, once there are `n` of them.
    pub fn addrs(&self, n: usize) -> Vec<SocketAddr> {
        let end = Instant::now() + Duration::from_secs(10);
        loop {
            let got = self.listening.lock().unwrap().clone();
            if got.len() >= n {
                return got;
            }
            assert!(Instant::now() < end, "only {got:?} announced");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Everything the server wrote to stderr so far.
    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// Wait until the log contains `needle`.
    pub fn wait_log(&self, needle: &str, timeout: Duration) -> bool {
        self.wait_log_count(needle, 1, timeout)
    }

    /// How many times the log contains `needle` so far.
    pub fn log_count(&self, needle: &str) -> usize {
        self.log().matches(needle).count()
    }

    /// Wait until the log contains `needle` at least `n` times.
    pub fn wait_log_count(&self, needle: &str, n: usize, timeout: Duration) -> bool {
        let end = Instant::now() + timeout;
        while Instant::now() < end {
            if self.log_count(needle) >= n {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    pub fn url(&self, path: &str) -> String {
        format!("https://{}{}", self.addr, path)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Send SIGTERM, wait for the process to exit, and read its stderr to the
    /// end; returns its exit status and everything it logged.
    pub fn terminate_and_log(mut self) -> (std::process::ExitStatus, String) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let status = self.child.wait().unwrap();
        if let Some(reader) = self.stderr_reader.take() {
            let _ = reader.join();
        }
        (status, self.log())
    }

    /// Send SIGTERM and wait for the process to exit; returns its exit status.
    pub fn terminate(mut self) -> std::process::ExitStatus {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        self.child.wait().unwrap()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A response read to its end.
pub struct Got {
    pub status: u16,
    pub headers: http::HeaderMap,
    pub body: Vec<u8>,
    /// The body ended with an error (cut short).
    pub cut: bool,
}

impl Got {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// Read a whole response.
pub async fn read(resp: Response<hyper::body::Incoming>) -> Got {
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let mut body = resp.into_body();
    let mut out = Vec::new();
    let mut cut = false;
    while let Some(frame) = body.frame().await {
        match frame {
            Ok(f) => {
                if let Ok(d) = f.into_data() {
                    out.extend_from_slice(&d);
                }
            }
            Err(_) => {
                cut = true;
                break;
            }
        }
    }
    Got {
        status,
        headers,
        body: out,
        cut,
    }
}

/// A request builder with the test defaults.
pub fn req(method: &str, url: &str) -> http::request::Builder {
    let uri: http::Uri = url.parse().unwrap();
    let host = uri.authority().unwrap().to_string();
    let b = Request::builder().method(method).uri(uri);
    // HTTP/1.1 needs Host; HTTP/2 takes the authority from the URI.
    b.header(http::header::HOST, host)
}

/// `Authorization: Basic` for a user.
pub fn basic(user: &str, password: &str) -> String {
    use base64::Engine;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    )
}

/// One request on a fresh connection.
pub async fn fetch(
    server: &Server,
    tls: Arc<rustls::ClientConfig>,
    r: http::request::Builder,
) -> Got {
    let mut conn = Conn::connect(server.addr, "localhost", tls)
        .await
        .expect("connect");
    let resp = conn
        .send(r.body(Empty::<Bytes>::new()).unwrap())
        .await
        .expect("send");
    read(resp).await
}

/// One request whose response may be cut before its head arrives (the
/// server may close or reset before flushing the head). `None`: cut before
/// the head.
pub async fn fetch_cut(
    server: &Server,
    tls: Arc<rustls::ClientConfig>,
    r: http::request::Builder,
) -> Option<Got> {
    let mut conn = Conn::connect(server.addr, "localhost", tls)
        .await
        .expect("connect");
    let resp = conn
        .send(r.body(Empty::<Bytes>::new()).unwrap())
        .await
        .ok()?;
    Some(read(resp).await)
}

/// The server's resident set size in KiB (Linux).
/// Bytes the process has read through `read`/`pread` so far (`rchar`):
/// tells a test that the server has read ahead without timing it.
pub fn read_bytes(pid: u32) -> u64 {
    let io = std::fs::read_to_string(format!("/proc/{pid}/io")).unwrap();
    io.lines()
        .find_map(|l| l.strip_prefix("rchar: "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap()
}

/// Bytes queued for sending on each established TCP connection whose local
/// port is `port` (the server's side of its connections), from
/// `/proc/net/tcp{,6}`: tells a test that the server has filled a client's
/// socket buffers, without timing it.
pub fn send_queues(port: u16) -> Vec<u64> {
    connections(port)
        .into_iter()
        .filter(|(state, _)| state == "01")
        .map(|(_, tx)| tx)
        .collect()
}

/// The server side of connections on `port` that it has not closed yet:
/// (state, bytes queued to send) for ESTABLISHED (01) and CLOSE_WAIT (08).
pub fn connections(port: u16) -> Vec<(String, u64)> {
    let mut out = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(table) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            let (Some(local), Some(state), Some(queues)) = (f.get(1), f.get(3), f.get(4)) else {
                continue;
            };
            let local_port = local
                .rsplit(':')
                .next()
                .and_then(|p| u16::from_str_radix(p, 16).ok());
            if local_port == Some(port) && (*state == "01" || *state == "08") {
                let tx = queues
                    .split(':')
                    .next()
                    .and_then(|q| u64::from_str_radix(q, 16).ok());
                out.push((state.to_string(), tx.unwrap_or(0)));
            }
        }
    }
    out
}

pub fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap()
}

/// Run curl with the given args; returns (exit code, stdout bytes, stderr text).
pub fn curl(args: &[&str]) -> (i32, Vec<u8>, String) {
    let out = Command::new("curl")
        .args(args)
        .output()
        .expect("curl is installed (.ci/run installs it)");
    (
        out.status.code().unwrap_or(-1),
        out.stdout,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Deterministic, non-repeating test content: `len` bytes from `seed`.
pub fn data(len: usize, seed: u32) -> Vec<u8> {
    (0..len as u32)
        .map(|i| (i.wrapping_mul(2654435761).wrapping_add(seed) >> 9) as u8)
        .collect()
}

/// Overwrite bytes of a file in place, keeping its size and mtime: the
/// hardest case for a server that caches verified chunks (only ctime moves).
pub fn tamper(path: &Path, at: usize, bytes: &[u8]) {
    use std::os::unix::fs::FileExt;
    let mtime = std::fs::metadata(path).unwrap().modified().unwrap();
    let f = std::fs::File::options().write(true).open(path).unwrap();
    f.write_all_at(bytes, at as u64).unwrap();
    f.set_modified(mtime).unwrap();
}

/// Run the binary with `args`: (exit code, stdout, stderr).
pub fn dp(args: &[&str]) -> (i32, String, String) {
    let o = Command::new(env!("CARGO_BIN_EXE_distpoint"))
        .args(args)
        .output()
        .unwrap();
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// The `KEY=VALUE` lines of the next sd_notify datagram on `sock` (within
/// its read timeout).
pub fn notify_lines(sock: &std::os::unix::net::UnixDatagram) -> Vec<String> {
    let mut buf = [0u8; 4096];
    let n = sock
        .recv(&mut buf)
        .expect("a notification within the timeout");
    String::from_utf8(buf[..n].to_vec())
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}
