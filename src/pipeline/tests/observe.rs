//! The metrics route in-process: the same checks as a vpath, then the page;
//! what requests count; refusals in the audit log.

use super::*;

const METRICS: &str = "[metrics]\nallow = [\"cert:prometheus\"]\n";

fn scrape_text(body: &[u8]) -> String {
    String::from_utf8(body.to_vec()).unwrap()
}

/// The value of the sample `name{labels}` in a text exposition.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|v| v.parse().ok())
}

#[tokio::test]
async fn metrics_are_authenticated_and_authorized_like_a_path() {
    let f = Fixture::new(&format!("{PATHS}{METRICS}"));
    let url = "/.well-known/distpoint/metrics";
    let (status, h, _) = f.get(get(url)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(h.contains_key(header::WWW_AUTHENTICATE));
    let (status, _, _) = f.get_as(get(url), Some("client01")).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let wrong = get(url).header(header::AUTHORIZATION, "Basic YWxpY2U6bm9wZQ==");
    assert_eq!(
        f.get_as(wrong, Some("prometheus")).await.0,
        StatusCode::UNAUTHORIZED
    );
    let (status, h, body) = f.get_as(get(url), Some("prometheus")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(h[header::CONTENT_TYPE]
        .to_str()
        .unwrap()
        .starts_with("text/plain; version=0.0.4"));
    assert_eq!(h[header::CACHE_CONTROL], "no-store");
    let text = scrape_text(&body);
    assert_eq!(
        sample(
            &text,
            "distpoint_auth_failures_total{reason=\"wrong_password\"}"
        ),
        Some(1.0)
    );
    let (_, h, body) = f
        .get_as(
            get(url).header(header::ACCEPT, "application/openmetrics-text;version=1.0.0"),
            Some("prometheus"),
        )
        .await;
    assert!(h[header::CONTENT_TYPE]
        .to_str()
        .unwrap()
        .starts_with("application/openmetrics-text"));
    assert!(scrape_text(&body).ends_with("# EOF\n"));
    // Only the exact URL: nothing below it, and it names no file.
    assert_eq!(
        f.get(get(&format!("{url}/x"))).await.0,
        StatusCode::NOT_FOUND
    );
    // Without [metrics] there is no such URL.
    let bare = Fixture::new(PATHS);
    assert_eq!(
        bare.get_as(get(url), Some("prometheus")).await.0,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn requests_count_by_class_and_bytes_by_configured_url() {
    let f = Fixture::new(&format!("{PATHS}[metrics]\nanonymous = true\n"));
    for _ in 0..3 {
        assert_eq!(f.get(get("/pub/hello.txt")).await.0, StatusCode::OK);
    }
    assert_eq!(
        f.get(get("/nowhere/secret-name.txt")).await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        f.get(get("/priv/secret.bin")).await.0,
        StatusCode::UNAUTHORIZED
    );
    let (status, _, body) = f.get(get("/.well-known/distpoint/metrics")).await;
    assert_eq!(status, StatusCode::OK);
    let text = scrape_text(&body);
    assert_eq!(
        sample(
            &text,
            "distpoint_requests_total{class=\"2xx\",proto=\"h1\"}"
        ),
        Some(3.0)
    );
    assert_eq!(
        sample(
            &text,
            "distpoint_requests_total{class=\"4xx\",proto=\"h1\"}"
        ),
        Some(2.0)
    );
    assert_eq!(
        sample(
            &text,
            "distpoint_response_bytes_total{path=\"/pub\",proto=\"h1\"}"
        ),
        Some(3.0 * 13.0)
    );
    assert!(sample(
        &text,
        "distpoint_response_bytes_total{path=\"-\",proto=\"h1\"}"
    )
    .is_some());
    assert_eq!(
        sample(&text, "distpoint_chunks_verified_total"),
        Some(1.0),
        "then cached"
    );
    assert_eq!(sample(&text, "distpoint_transfers_running"), Some(0.0));
    for forbidden in ["hello.txt", "secret", "127.0.0.1", "alice"] {
        assert!(!text.contains(forbidden), "{forbidden} in:\n{text}");
    }
}

#[tokio::test]
async fn refusals_are_audited_without_secrets() {
    let f = Fixture::new(&format!("{PATHS}[audit]\n"));
    let wrong = get("/priv/secret.bin").header(header::AUTHORIZATION, "Basic YWxpY2U6bm9wZQ==");
    assert_eq!(f.get(wrong).await.0, StatusCode::UNAUTHORIZED);
    let unknown =
        get("/priv/secret.bin").header(header::AUTHORIZATION, "Basic bWFsbG9yeTpodW50ZXIy");
    assert_eq!(f.get(unknown).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(
        f.get_as(get("/priv/secret.bin"), Some("client01")).await.0,
        StatusCode::FORBIDDEN
    );
    assert!(f.state.audit.flush(std::time::Duration::from_secs(10)));
    let dir = f.state.config.load().audit.clone().unwrap().dir;
    let text = fs::read_to_string(dir.join(crate::audit::file_name(std::time::SystemTime::now())))
        .unwrap();
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3, "{text}");
    assert_eq!(lines[0]["event"], "auth_failed");
    assert_eq!(lines[0]["principal"], "user:alice");
    assert_eq!(lines[0]["reason"], "wrong password");
    assert_eq!(lines[0]["path"], "/priv/secret.bin");
    assert_eq!(lines[1]["event"], "auth_failed");
    assert!(
        lines[1].get("principal").is_none(),
        "an unknown name is not written"
    );
    assert_eq!(lines[2]["event"], "forbidden");
    assert_eq!(lines[2]["principal"], "cert:client01");
    for secret in ["nope", "mallory", "hunter2", "argon2"] {
        assert!(!text.contains(secret), "{secret} in the audit log");
    }
}

#[tokio::test]
async fn a_transfer_cut_by_a_revocation_is_counted_and_audited() {
    let f = Fixture::new(
        "[[vpath]]\nurl = \"/pub\"\ndir = \"pub\"\nanonymous = true\nchunk_size = 4096\n[audit]\n",
    );
    fs::write(f.dir.path().join("pub/big.bin"), vec![1u8; 64 * 1024]).unwrap();
    let conn = Arc::new(ConnInfo::new(
        SocketAddr::from(([127, 0, 0, 1], 40001)),
        None,
    ));
    let resp = handle(f.state.clone(), conn, get("/pub/big.bin").body(()).unwrap())
        .await
        .unwrap();
    let mut body = resp.into_body();
    body.frame().await.unwrap().unwrap();
    assert_eq!(f.state.metrics.transfers_running.get(), 1);
    let path = f.dir.path().join("distpoint.toml");
    let text = fs::read_to_string(&path)
        .unwrap()
        .replace("anonymous = true", "");
    let config = Arc::new(Config::parse(&path, &text).unwrap());
    f.state.config.store(config.clone());
    f.state.transfers.revoke(&config, &Default::default());
    assert!(body.frame().await.unwrap().is_err());
    drop(body);
    assert_eq!(f.state.metrics.transfers_running.get(), 0);
    let (text, _) = f.state.metrics.encode(false);
    assert_eq!(
        sample(&text, "distpoint_transfers_cut_total{reason=\"revoked\"}"),
        Some(1.0)
    );
    assert!(f.state.audit.flush(std::time::Duration::from_secs(10)));
    let dir = f.state.config.load().server.state_dir.join("audit");
    let log = fs::read_to_string(dir.join(crate::audit::file_name(std::time::SystemTime::now())))
        .unwrap();
    let e: serde_json::Value = serde_json::from_str(log.lines().next().unwrap()).unwrap();
    assert_eq!(e["event"], "transfer_cut");
    assert_eq!(e["path"], "/pub/big.bin");
    assert_eq!(e["principal"], "-");
    assert_eq!(e["bytes"], 4096);
    assert!(
        e["reason"]
            .as_str()
            .unwrap()
            .contains("no longer anonymous"),
        "{e}"
    );
}
