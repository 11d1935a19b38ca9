//! A real Prometheus (Debian's `prometheus`, installed by `.ci/run`) scrapes
//! the real server over TLS with a client certificate made at test time; the
//! test asks Prometheus's HTTP API for the counters of the traffic it made.

mod support;

use distpoint::transfer::Protocol;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use support::*;

const SIZE: usize = 100_000;
const METRICS_URL: &str = "/.well-known/distpoint/metrics";

/// A Prometheus process with its own config and data folder, on 127.0.0.1.
struct Prometheus {
    child: Child,
    port: u16,
}

impl Prometheus {
    fn start(dir: &Path, config: &str) -> Prometheus {
        let file = dir.join("prometheus.yml");
        std::fs::write(&file, config).unwrap();
        let port = free_port();
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", file.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--log.level=warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("prometheus is installed (.ci/run installs Debian's package)");
        let p = Prometheus { child, port };
        let ready = wait_until(Duration::from_secs(60), || {
            curl(&["-sf", &format!("http://127.0.0.1:{port}/-/ready")]).0 == 0
        });
        assert!(ready, "prometheus did not become ready");
        p
    }

    /// The values of an instant query, by the series' labels (as JSON text).
    fn query(&self, promql: &str) -> Vec<(serde_json::Value, f64)> {
        let (code, out, err) = curl(&[
            "-sfG",
            &format!("http://127.0.0.1:{}/api/v1/query", self.port),
            "--data-urlencode",
            &format!("query={promql}"),
        ]);
        assert_eq!(code, 0, "query {promql}: {err}");
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["status"], "success", "{v}");
        v["data"]["result"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                let value = r["value"][1].as_str().unwrap().parse().unwrap();
                (r["metric"].clone(), value)
            })
            .collect()
    }

    /// The one value of `promql`, if it has exactly one.
    fn value(&self, promql: &str) -> Option<f64> {
        match self.query(promql).as_slice() {
            [(_, v)] => Some(*v),
            _ => None,
        }
    }

    /// Every label set of the series matching `selector`.
    fn series(&self, selector: &str) -> Vec<serde_json::Map<String, serde_json::Value>> {
        let (code, out, err) = curl(&[
            "-sfG",
            &format!("http://127.0.0.1:{}/api/v1/series", self.port),
            "--data-urlencode",
            &format!("match[]={selector}"),
        ]);
        assert_eq!(code, 0, "series: {err}");
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        v["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s.as_object().unwrap().clone())
            .collect()
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn wait_until(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + timeout;
    while Instant::now() < end {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    false
}

/// Write a client certificate for `cn` from the site's CA; returns (cert, key) paths.
fn client_cert(site: &Site, cn: &str) -> (PathBuf, PathBuf) {
    let pair = site.pki.ca.issue_client(cn).unwrap();
    let (cert, key) = (
        site.path(&format!("{cn}.crt")),
        site.path(&format!("{cn}.key")),
    );
    std::fs::write(&cert, &pair.cert).unwrap();
    std::fs::write(&key, &pair.key).unwrap();
    (cert, key)
}

/// One scrape job against the server, with or without a client certificate.
fn job(name: &str, site: &Site, server: &Server, cert: Option<&(PathBuf, PathBuf)>) -> String {
    let identity = cert.map_or(String::new(), |(c, k)| {
        format!(
            "      cert_file: {}\n      key_file: {}\n",
            c.display(),
            k.display()
        )
    });
    format!(
        "  - job_name: {name}\n    scheme: https\n    metrics_path: {METRICS_URL}\n    tls_config:\n      \
         ca_file: {}\n{identity}    static_configs:\n      - targets: [\"{}\"]\n",
        site.path("certs/ca.crt").display(),
        server.addr
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn prometheus_scrapes_the_counters_of_the_traffic_made() {
    let started = Instant::now();
    let site = Site::new();
    site.file("pub/file.bin", &data(SIZE, 1));
    std::fs::create_dir_all(site.path("priv")).unwrap();
    let server = site.start(&format!(
        "{}{}[[vpath]]\nurl = \"/pub\"\ndir = \"pub\"\nanonymous = true\n\
         [[vpath]]\nurl = \"/priv\"\ndir = \"priv\"\nallow = [\"user:alice\"]\n\
         [metrics]\nallow = [\"cert:prometheus\"]\n",
        site.head(),
        site.user("alice")
    ));
    let prometheus_id = client_cert(&site, "prometheus");
    let other_id = client_cert(&site, "client02");
    let config = format!(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n{}{}{}",
        job("distpoint", &site, &server, Some(&prometheus_id)),
        job("anonymous", &site, &server, None),
        job("not-allowed", &site, &server, Some(&other_id)),
    );
    let prom = Prometheus::start(site.dir.path(), &config);

    // The traffic: 5 downloads over HTTP/1.1 and 3 over HTTP/2, two 404s, one
    // 401 without credentials and one with a wrong password.
    for (proto, n) in [(Protocol::Http1, 5), (Protocol::Http2, 3)] {
        for _ in 0..n {
            let got = fetch(
                &server,
                site.tls(false, &[proto]),
                req("GET", &server.url("/pub/file.bin")),
            )
            .await;
            assert_eq!((got.status, got.body.len()), (200, SIZE));
        }
    }
    let tls = || site.tls(false, &[Protocol::Http1]);
    for path in ["/nowhere/a.bin", "/pub/missing.bin"] {
        assert_eq!(
            fetch(&server, tls(), req("GET", &server.url(path)))
                .await
                .status,
            404
        );
    }
    assert_eq!(
        fetch(&server, tls(), req("GET", &server.url("/priv/x")))
            .await
            .status,
        401
    );
    let wrong = req("GET", &server.url("/priv/x")).header("authorization", basic("alice", "wrong"));
    assert_eq!(fetch(&server, tls(), wrong).await.status, 401);

    // Prometheus sees exactly those bytes, once a scrape after the traffic is
    // in: after the wrong password, the last request made.
    let bytes = r#"sum(distpoint_response_bytes_total{job="distpoint",path="/pub"})"#;
    let last = r#"distpoint_auth_failures_total{job="distpoint",reason="wrong_password"}"#;
    // The 404 under /pub counts its text body there too.
    let all = (8 * SIZE + "404 Not Found\n".len()) as f64;
    assert!(
        wait_until(Duration::from_secs(60), || prom.value(last) == Some(1.0)),
        "Prometheus has {:?} for {last}",
        prom.value(last)
    );
    assert_eq!(prom.value(bytes), Some(all), "{bytes}");
    let by_proto = |p: &str| {
        prom.value(&format!(
            r#"distpoint_response_bytes_total{{job="distpoint",path="/pub",proto="{p}"}}"#
        ))
    };
    assert_eq!(by_proto("h1"), Some((5 * SIZE + 14) as f64));
    assert_eq!(by_proto("h2"), Some((3 * SIZE) as f64));
    let h2_ok = prom.value(r#"distpoint_requests_total{job="distpoint",class="2xx",proto="h2"}"#);
    assert_eq!(h2_ok, Some(3.0), "only the downloads came over HTTP/2");
    let wrong_pw =
        prom.value(r#"distpoint_auth_failures_total{job="distpoint",reason="wrong_password"}"#);
    assert_eq!(wrong_pw, Some(1.0));
    // At least the traffic's 4xx (the other two jobs add theirs every second).
    let client_errors = prom
        .value(r#"sum(distpoint_requests_total{job="distpoint",class="4xx"})"#)
        .unwrap();
    assert!(client_errors >= 4.0, "{client_errors}");
    let verified = prom
        .value(r#"distpoint_chunks_verified_total{job="distpoint"}"#)
        .unwrap();
    assert!(verified >= 1.0);
    assert_eq!(
        prom.value(r#"distpoint_transfers_running{job="distpoint"}"#),
        Some(0.0)
    );
    assert!(
        prom.value(r#"distpoint_connections_open{job="distpoint"}"#)
            .unwrap()
            >= 1.0
    );
    // The certificate expiry is the served leaf's notAfter.
    use rustls::pki_types::pem::PemObject;
    let leaf =
        rustls::pki_types::CertificateDer::from_pem_slice(site.pki.server.cert.as_bytes()).unwrap();
    let not_after = distpoint::tls::not_after(&leaf).unwrap() as f64;
    assert_eq!(
        prom.value(r#"distpoint_tls_certificate_expiry_timestamp_seconds{job="distpoint"}"#),
        Some(not_after)
    );

    // The scrapers without the right certificate were refused: 401 and 403
    // (each job scrapes at its own offset in the interval: wait for its first).
    let up = |job: &str| {
        let mut last = None;
        wait_until(Duration::from_secs(30), || {
            last = prom.value(&format!(r#"up{{job="{job}"}}"#));
            last.is_some()
        });
        last
    };
    assert_eq!(up("distpoint"), Some(1.0));
    assert_eq!(up("anonymous"), Some(0.0));
    assert_eq!(up("not-allowed"), Some(0.0));
    assert!(server.log().contains("principal not allowed on this path"));

    // No label carries a client address, a user or a file name: only the
    // configured URL prefixes (and "-" for requests that matched none).
    let series = prom.series(r#"{__name__=~"distpoint_.+",job="distpoint"}"#);
    assert!(series.len() > 20, "{} series", series.len());
    let allowed_paths = ["/pub", "/priv", METRICS_URL, "-"];
    for s in &series {
        for (k, v) in s {
            if k == "__name__" || k == "instance" || k == "job" {
                continue; // Prometheus's own target labels.
            }
            let v = v.as_str().unwrap();
            if k == "path" {
                assert!(allowed_paths.contains(&v), "path label {v:?} in {s:?}");
            }
            for leak in ["127.0.0.1", "alice", "file.bin", "missing", "nowhere"] {
                assert!(!v.contains(leak), "{leak} in label {k}={v:?}");
            }
        }
    }
    eprintln!(
        "prometheus test ran in {:.1} s",
        started.elapsed().as_secs_f64()
    );
}
