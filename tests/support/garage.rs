//! A real S3-compatible store for the object-store tests: a single-node
//! Garage on 127.0.0.1 with ports and folders of its own, its layout, a
//! bucket and a key made with Garage's own command line.
//!
//! The binary is `$GARAGE`, else `garage` on `PATH` (`.ci/run` installs it).

#![allow(dead_code)]

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// A running single-node Garage with one bucket and one key.
pub struct Garage {
    child: Option<Child>,
    dir: tempfile::TempDir,
    bin: PathBuf,
    /// The S3 API's port on 127.0.0.1.
    pub s3_port: u16,
    /// The access key id of the key allowed on the bucket.
    pub key_id: String,
    /// Its secret.
    pub secret: String,
    /// The bucket made at start.
    pub bucket: String,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The Garage binary the tests use.
pub fn binary() -> PathBuf {
    if let Some(p) = std::env::var_os("GARAGE") {
        return PathBuf::from(p);
    }
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join("garage"))
            .find(|p| p.is_file())
    });
    on_path.expect(
        "the object-store tests need Garage on PATH: `cargo install garage --version 2.5.0 \
         --locked --no-default-features --features lmdb,bundled-libs` (.ci/run does), \
         or set GARAGE=/path/to/garage",
    )
}

impl Garage {
    /// Start Garage, lay out its one node, make `bucket` and a key for it.
    pub fn start(bucket: &str) -> Garage {
        let dir = tempfile::tempdir().unwrap();
        let (s3, rpc, admin) = (free_port(), free_port(), free_port());
        let secret: String = (0..32)
            .map(|i| format!("{:02x}", (i * 37 + 11) % 256))
            .collect();
        let config = format!(
            "metadata_dir = \"{d}/meta\"\ndata_dir = \"{d}/data\"\ndb_engine = \"lmdb\"\n\
             replication_factor = 1\n\
             rpc_bind_addr = \"127.0.0.1:{rpc}\"\nrpc_public_addr = \"127.0.0.1:{rpc}\"\n\
             rpc_secret = \"{secret}\"\n\
             [s3_api]\ns3_region = \"garage\"\napi_bind_addr = \"127.0.0.1:{s3}\"\n\
             root_domain = \".s3.garage.localhost\"\n\
             [admin]\napi_bind_addr = \"127.0.0.1:{admin}\"\n",
            d = dir.path().display()
        );
        std::fs::write(dir.path().join("garage.toml"), config).unwrap();
        let mut g = Garage {
            child: None,
            dir,
            bin: binary(),
            s3_port: s3,
            key_id: String::new(),
            secret: String::new(),
            bucket: bucket.to_string(),
        };
        g.spawn();
        g.wait_until("`garage status` answers", |g| {
            g.cli(&["status"]).status.success()
        });
        let node = g.ok(&["node", "id", "-q"]);
        let node = node.trim().split('@').next().unwrap().to_string();
        g.ok(&["layout", "assign", "-z", "dc1", "-c", "1G", &node]);
        g.ok(&["layout", "apply", "--version", "1"]);
        g.wait_until("the bucket is made", |g| {
            g.cli(&["bucket", "create", bucket]).status.success()
        });
        let key = g.ok(&["key", "create", "distpoint-test"]);
        let field = |name: &str| {
            key.lines()
                .find_map(|l| l.strip_prefix(name))
                .map(|v| v.trim().to_string())
                .unwrap_or_else(|| panic!("no {name:?} in `garage key create`: {key}"))
        };
        g.key_id = field("Key ID:");
        g.secret = field("Secret key:");
        g.ok(&[
            "bucket",
            "allow",
            "--read",
            "--write",
            "--owner",
            bucket,
            "--key",
            "distpoint-test",
        ]);
        g
    }

    fn spawn(&mut self) {
        let log = std::fs::File::create(self.dir.path().join("garage.log")).unwrap();
        let child = Command::new(&self.bin)
            .arg("-c")
            .arg(self.dir.path().join("garage.toml"))
            .arg("server")
            .env("RUST_LOG", "garage=warn")
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", self.bin.display()));
        self.child = Some(child);
    }

    fn wait_until(&self, what: &str, mut ready: impl FnMut(&Garage) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !ready(self) {
            assert!(
                Instant::now() < deadline,
                "Garage: timed out waiting until {what}; log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Run Garage's command line against this node.
    pub fn cli(&self, args: &[&str]) -> Output {
        Command::new(&self.bin)
            .arg("-c")
            .arg(self.dir.path().join("garage.toml"))
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.cli(args);
        assert!(
            out.status.success(),
            "garage {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Its log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("garage.log")).unwrap_or_default()
    }

    /// `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.s3_port)
    }

    /// Stop the store (as a crash would: SIGKILL), and wait until its
    /// port refuses connections.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        let addr: SocketAddr = format!("127.0.0.1:{}", self.s3_port).parse().unwrap();
        self.wait_until("the S3 port is closed", |_| {
            TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err()
        });
    }

    /// Start it again after [`Garage::stop`] (same data, same ports).
    pub fn restart(&mut self) {
        self.spawn();
        let addr: SocketAddr = format!("127.0.0.1:{}", self.s3_port).parse().unwrap();
        self.wait_until("the S3 port answers", |_| {
            TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok()
        });
    }

    /// Write the key files into `dir` and return an `[origins.BUCKET]` table for them.
    pub fn origin_table(&self, dir: &Path) -> String {
        std::fs::write(dir.join("s3.key"), format!("{}\n", self.key_id)).unwrap();
        std::fs::write(dir.join("s3.secret"), format!("{}\n", self.secret)).unwrap();
        format!(
            "[origins.{}]\nendpoint = \"{}\"\nregion = \"garage\"\n\
             access_key_file = \"{}\"\nsecret_key_file = \"{}\"\n",
            self.bucket,
            self.endpoint(),
            dir.join("s3.key").display(),
            dir.join("s3.secret").display()
        )
    }

    /// The `AWS_*` environment that reaches this store.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ACCESS_KEY_ID", self.key_id.clone()),
            ("AWS_SECRET_ACCESS_KEY", self.secret.clone()),
            ("AWS_REGION", "garage".into()),
            ("AWS_ENDPOINT_URL", self.endpoint()),
        ]
    }

    /// A client for `s3://BUCKET/PREFIX` with this store's key (to look at
    /// or tamper with what is in the bucket).
    pub fn store(&self, prefix: &str) -> distpoint::objstore::Store {
        use distpoint::objstore::{Patience, Secret, Store, StoreSettings, StoreUrl};
        let settings = StoreSettings {
            endpoint: Some(self.endpoint()),
            region: Some("garage".into()),
            access_key: Some(Secret::new(self.key_id.clone())),
            secret_key: Some(Secret::new(self.secret.clone())),
            session_token: None,
            ca_pem: None,
        };
        let url = StoreUrl::parse(&format!("s3://{}/{prefix}", self.bucket)).unwrap();
        Store::new(&url, &settings, Patience::Patient).unwrap()
    }
}

impl Drop for Garage {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
