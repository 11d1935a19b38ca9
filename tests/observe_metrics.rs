//! `[metrics]` through the real binary over TLS: who may read them (and a
//! change of that in force at once), and the figures of integrity refusals,
//! lock-outs and reloads counted where they happen.

mod support;

use distpoint::transfer::{client_config, Protocol};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::*;

const URL: &str = "/.well-known/distpoint/metrics";
const WAIT: Duration = Duration::from_secs(20);
const H1: &[Protocol] = &[Protocol::Http1];

fn paths(site: &Site) -> String {
    std::fs::create_dir_all(site.path("pub")).unwrap();
    format!(
        "{}{}[[vpath]]\nurl = \"/pub\"\ndir = \"pub\"\nanonymous = true\n",
        site.head(),
        site.user("alice")
    )
}

/// A TLS client presenting a certificate for `cn` from the site's CA.
fn tls_as(site: &Site, cn: &str) -> Arc<rustls::ClientConfig> {
    let pair = site.pki.ca.issue_client(cn).unwrap();
    client_config(&site.pki.ca_der(), Some(identity(&pair)), H1).unwrap()
}

async fn scrape(server: &Server, tls: Arc<rustls::ClientConfig>) -> (u16, String) {
    let got = fetch(server, tls, req("GET", &server.url(URL))).await;
    (got.status, String::from_utf8(got.body).unwrap())
}

/// The value of one series (`name{labels}` exactly as exposed).
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|v| v.parse().ok())
}

/// Scrape until `series` has `want`, or the deadline; returns the last text.
async fn wait_sample(
    server: &Server,
    tls: &Arc<rustls::ClientConfig>,
    series: &str,
    want: f64,
) -> String {
    let end = Instant::now() + WAIT;
    loop {
        let (_, text) = scrape(server, tls.clone()).await;
        if sample(&text, series) == Some(want) || Instant::now() > end {
            return text;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn metrics_are_read_only_by_who_the_config_allows_and_changes_apply_at_once() {
    let site = Site::new();
    let head = paths(&site);
    let config = format!("{head}[metrics]\nallow = [\"cert:prometheus\", \"user:alice\"]\n");
    let server = site.start(&config);
    let none = site.tls(false, H1);
    let (status, _) = scrape(&server, none.clone()).await;
    assert_eq!(status, 401, "no credentials");
    let (status, _) = scrape(&server, site.tls(true, H1)).await;
    assert_eq!(status, 403, "cert:client01 is not on the list");
    let wrong = req("GET", &server.url(URL)).header("authorization", basic("alice", "nope"));
    assert_eq!(fetch(&server, none.clone(), wrong).await.status, 401);
    let right = req("GET", &server.url(URL)).header("authorization", basic("alice", PASSWORD));
    let got = fetch(&server, none.clone(), right).await;
    assert_eq!(got.status, 200);
    assert!(got
        .header("content-type")
        .unwrap()
        .starts_with("text/plain; version=0.0.4"));
    let (status, text) = scrape(&server, tls_as(&site, "prometheus")).await;
    assert_eq!(status, 200);
    assert!(
        text.contains("# TYPE distpoint_requests_total counter"),
        "{text}"
    );
    assert!(server.log().contains("principal not allowed on this path"));

    // Anonymous from the next request on, then gone (404) without a restart.
    std::fs::write(
        site.path("distpoint.toml"),
        format!("{head}[metrics]\nanonymous = true\n"),
    )
    .unwrap();
    let end = Instant::now() + WAIT;
    while scrape(&server, none.clone()).await.0 != 200 {
        assert!(Instant::now() < end, "anonymous metrics not in force");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    std::fs::write(site.path("distpoint.toml"), &head).unwrap();
    let end = Instant::now() + WAIT;
    while scrape(&server, tls_as(&site, "prometheus")).await.0 != 404 {
        assert!(Instant::now() < end, "removed metrics still served");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn refused_chunks_quarantine_lockouts_and_reloads_are_counted() {
    const CHUNK: usize = 4096;
    let site = Site::new();
    let file = site.file("content/pkg/app.bin", &data(5 * CHUNK, 3));
    let out = Command::new(env!("CARGO_BIN_EXE_distpoint"))
        .args([
            "publish",
            site.path("content/pkg").to_str().unwrap(),
            "--chunk-size",
            "4096",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let server_head = site.head().replace(
        "state_dir = \"state\"\n",
        "state_dir = \"state\"\nauth_failures_per_minute = 2\n",
    );
    let head = format!("{server_head}{}", site.user("alice"));
    let pkg = "[[vpath]]\nurl = \"/pkg\"\ndir = \"content/pkg\"\nanonymous = true\nintegrity = \"published\"\n\
               [metrics]\nallow = [\"cert:prometheus\"]\n";
    let server = site.start(&format!("{head}{pkg}"));
    let prom = tls_as(&site, "prometheus");

    // A tampered third chunk: the download starts, and is cut before it.
    tamper(&file, 2 * CHUNK + 7, b"X");
    let got = fetch_cut(
        &server,
        site.tls(false, H1),
        req("GET", &server.url("/pkg/app.bin")),
    )
    .await;
    assert!(
        got.is_none_or(|g| g.cut && g.body.len() <= 2 * CHUNK),
        "cut before the bad chunk"
    );
    let text = wait_sample(
        &server,
        &prom,
        "distpoint_transfers_cut_total{reason=\"integrity\"}",
        1.0,
    )
    .await;
    assert_eq!(
        sample(&text, "distpoint_transfers_cut_total{reason=\"integrity\"}"),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        sample(&text, "distpoint_chunks_refused_total{path=\"/pkg\"}"),
        Some(1.0)
    );
    assert_eq!(sample(&text, "distpoint_quarantined_files"), Some(1.0));
    assert!(sample(&text, "distpoint_chunks_verified_total").unwrap() >= 2.0);

    // Two wrong passwords lock the client out; the next attempt is a 429.
    for _ in 0..2 {
        let r =
            req("GET", &server.url("/pkg/app.bin")).header("authorization", basic("alice", "nope"));
        assert_eq!(fetch(&server, site.tls(false, H1), r).await.status, 401);
    }
    let r = req("GET", &server.url("/pkg/app.bin")).header("authorization", basic("alice", "nope"));
    assert_eq!(fetch(&server, site.tls(false, H1), r).await.status, 429);
    let (_, text) = scrape(&server, prom.clone()).await;
    assert_eq!(
        sample(
            &text,
            "distpoint_auth_failures_total{reason=\"wrong_password\"}"
        ),
        Some(2.0)
    );
    assert_eq!(sample(&text, "distpoint_auth_lockouts_total"), Some(1.0));
    assert_eq!(
        sample(&text, "distpoint_auth_lockout_refusals_total"),
        Some(1.0)
    );

    // A change that applies, then one that does not validate.
    std::fs::create_dir_all(site.path("more")).unwrap();
    let more = "[[vpath]]\nurl = \"/more\"\ndir = \"more\"\nanonymous = true\n";
    std::fs::write(site.path("distpoint.toml"), format!("{head}{pkg}{more}")).unwrap();
    let applied = "distpoint_config_reloads_total{kind=\"config\",result=\"applied\"}";
    let text = wait_sample(&server, &prom, applied, 1.0).await;
    assert_eq!(sample(&text, applied), Some(1.0), "{text}");
    std::fs::write(
        site.path("distpoint.toml"),
        format!("{head}{pkg}{more}[[vpath]]\nurl = 3\n"),
    )
    .unwrap();
    let rejected = "distpoint_config_reloads_total{kind=\"config\",result=\"rejected\"}";
    let text = wait_sample(&server, &prom, rejected, 1.0).await;
    assert_eq!(sample(&text, rejected), Some(1.0), "{text}");
}
