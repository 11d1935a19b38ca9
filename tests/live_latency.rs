//! Time from a config file write to the new config being in force, over 20
//! changes (printed; SPEC: within one second).

mod support;

use bytes::Bytes;
use distpoint::transfer::{Conn, Protocol};
use http_body_util::Empty;
use std::time::{Duration, Instant};
use support::*;

fn anon_path(url: &str, dir: &str) -> String {
    format!("[[vpath]]\nurl = \"{url}\"\ndir = \"{dir}\"\nanonymous = true\n")
}

#[tokio::test]
async fn reload_latency_over_20_changes() {
    let site = Site::new();
    site.file("content/a/f.txt", b"aaa");
    let base = format!("{}{}", site.head(), anon_path("/base", "content/a"));
    let server = site.start(&base);
    let cfg = site.path("distpoint.toml");
    let mut conn = Conn::connect(
        server.addr,
        "localhost",
        site.tls(false, &[Protocol::Http1]),
    )
    .await
    .unwrap();
    let mut times = Vec::new();
    for i in 0..20 {
        // Each change adds a new path; half in place, half by rename.
        let body = format!("{base}{}", anon_path(&format!("/n{i}"), "content/a"));
        let url = server.url(&format!("/n{i}/f.txt"));
        let written = Instant::now();
        if i % 2 == 0 {
            std::fs::write(&cfg, &body).unwrap();
        } else {
            let tmp = site.path("distpoint.toml.tmp");
            std::fs::write(&tmp, &body).unwrap();
            std::fs::rename(&tmp, &cfg).unwrap();
        }
        loop {
            let resp = conn
                .send(req("GET", &url).body(Empty::<Bytes>::new()).unwrap())
                .await
                .unwrap();
            if read(resp).await.status == 200 {
                break;
            }
            assert!(
                written.elapsed() < Duration::from_secs(2),
                "change {i} not in force: {}",
                server.log()
            );
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        times.push(written.elapsed());
        // The next write must be a change of its own, not part of this
        // burst: wait for this change's reload line.
        assert!(server.wait_log_count("config reloaded", i + 1, Duration::from_secs(2)));
    }
    times.sort();
    let median = (times[9] + times[10]) / 2;
    let max = times[19];
    eprintln!(
        "reload latency over 20 changes (write → new path answers 200): median {:.0} ms, min {:.0} ms, max {:.0} ms",
        median.as_secs_f64() * 1000.0,
        times[0].as_secs_f64() * 1000.0,
        max.as_secs_f64() * 1000.0
    );
    assert!(
        max < Duration::from_secs(1),
        "SPEC: a valid change takes effect within one second"
    );
}
