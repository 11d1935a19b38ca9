//! nginx (Debian's, installed by `.ci/run`) as a plain HTTPS mirror: a
//! config of the test's own, on a free port, in a temp folder, with the
//! site's server certificate and an access log the test can read.

use super::Site;
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running nginx.
pub struct Nginx {
    child: Child,
    /// Its port on 127.0.0.1.
    pub port: u16,
    run: PathBuf,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Nginx {
    /// Serve `root` over TLS (HTTP/1.1 and h2) with the site's certificate.
    /// `extra` goes into the `server` block (`etag off;`, a `location`…).
    pub fn start(site: &Site, root: &Path, extra: &str) -> Nginx {
        let run = site.path(&format!("nginx-{}", free_port()));
        std::fs::create_dir_all(run.join("tmp")).unwrap();
        // Workers run as `nobody` when the master is root, and the temp
        // folders are private: let them run as root then.
        let user = if std::fs::metadata("/proc/self").unwrap().uid() == 0 {
            "user root;"
        } else {
            ""
        };
        for _ in 0..5 {
            let port = free_port();
            let conf = format!(
                "{user}\nworker_processes 1;\npid {run}/nginx.pid;\nerror_log {run}/error.log info;\n\
                 daemon off;\nevents {{ worker_connections 256; }}\n\
                 http {{\n  log_format t '$status $body_bytes_sent \"$http_range\" \"$http_if_range\" $uri';\n\
                 access_log {run}/access.log t;\n  sendfile on;\n  types {{ }}\n  default_type application/octet-stream;\n\
                 client_body_temp_path {run}/tmp/body;\n  proxy_temp_path {run}/tmp/proxy;\n\
                 fastcgi_temp_path {run}/tmp/fastcgi;\n  uwsgi_temp_path {run}/tmp/uwsgi;\n  scgi_temp_path {run}/tmp/scgi;\n\
                 server {{\n    listen 127.0.0.1:{port} ssl http2;\n    ssl_certificate {cert};\n    ssl_certificate_key {key};\n\
                 root {root};\n    {extra}\n  }}\n}}\n",
                run = run.display(),
                cert = site.path("certs/server.crt").display(),
                key = site.path("certs/server.key").display(),
                root = root.display(),
            );
            let conf_path = run.join("nginx.conf");
            std::fs::write(&conf_path, conf).unwrap();
            let mut child = Command::new("nginx")
                .arg("-e")
                .arg(run.join("error.log"))
                .arg("-p")
                .arg(&run)
                .arg("-c")
                .arg(&conf_path)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("nginx is installed (.ci/run installs nginx-light)");
            let end = Instant::now() + Duration::from_secs(10);
            while Instant::now() < end {
                if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    return Nginx { child, port, run };
                }
                if child.try_wait().unwrap().is_some() {
                    break; // the port was taken meanwhile: try another
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!(
            "nginx did not start:\n{}",
            std::fs::read_to_string(run.join("error.log")).unwrap_or_default()
        );
    }

    /// `https://localhost:PORT/PATH`.
    pub fn url(&self, path: &str) -> String {
        format!(
            "https://localhost:{}/{}",
            self.port,
            path.trim_start_matches('/')
        )
    }

    /// Access-log lines so far: `STATUS BYTES "RANGE" "IF_RANGE" URI`.
    pub fn log(&self) -> Vec<String> {
        std::fs::read_to_string(self.run.join("access.log"))
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }

    /// Wait until the access log has at least `n` lines; returns them.
    pub fn wait_log(&self, n: usize, timeout: Duration) -> Vec<String> {
        let end = Instant::now() + timeout;
        loop {
            let log = self.log();
            if log.len() >= n || Instant::now() >= end {
                return log;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // SIGTERM: nginx stops its workers, then exits (a SIGKILLed master
        // would leave them serving).
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }
}
