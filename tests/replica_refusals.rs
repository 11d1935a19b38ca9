//! What a replica refuses, keeping the version it serves: a lower
//! sequence (rollback), the same sequence with other bytes, an expired
//! manifest (freeze), a signature by another key — each logged and shown
//! by `distpoint status`. A source that does not answer is passed over for
//! the next; outside its windows a replica sends nothing at all.

mod replica;
mod support;

use distpoint::transfer::Protocol;
use replica::*;
use std::time::Duration;
use support::*;

const LONG: Duration = Duration::from_secs(60);

/// A change made at the site before a sync.
type Change = fn(&Origin);

#[tokio::test(flavor = "multi_thread")]
async fn rollback_freeze_and_foreign_signatures_are_refused_and_the_version_stays() {
    let mut site = Origin::new();
    site.site.file("content/pkg/setup.exe", &unique(200_000, 5));
    let h5 = publish(&site.pkg(), &site.key, 5, &[]);
    // Without publisher keys at the site: it serves what it has, expired or not.
    site.start_with(&["cert:region01", "cert:region02"], false);
    // The first source is down: the second is used.
    let mut region = Replica::new(
        &site.site,
        &[
            "https://127.0.0.1:1/pkg".to_string(),
            site.server().url("/pkg"),
        ],
        &site.public_key(),
        Login::Cert(&site.site, "region01"),
        "anonymous = true\n",
        "interval_secs = 3600\n",
    );
    let text = std::fs::read_to_string(&region.config).unwrap();
    std::fs::write(&region.config, format!("{text}[audit]\n")).unwrap();
    region.start();
    let st = region.wait_status("first sync", LONG, |s| s["last_result"] == "ok");
    assert_eq!(
        (st["package_hash"].as_str(), st["sequence"].as_u64()),
        (Some(h5.as_str()), Some(5))
    );
    assert!(
        region.server().log().contains("127.0.0.1:1"),
        "{}",
        region.server().log()
    );
    // Without the dead source from now on (a live config change).
    let text = std::fs::read_to_string(&region.config).unwrap();
    std::fs::write(
        &region.config,
        text.replace("\"https://127.0.0.1:1/pkg\", ", ""),
    )
    .unwrap();
    assert!(region.server().wait_log("config reloaded", LONG));

    let cases: [(Change, &str); 4] = [
        (
            |site| {
                publish(&site.pkg(), &site.key, 4, &[]);
            },
            "sequence 4 is lower than the 5 served",
        ),
        (
            |site| {
                site.site
                    .file("content/pkg/other.txt", b"same sequence, other bytes");
                publish(&site.pkg(), &site.key, 5, &[]);
            },
            "sequence 5 is the one served, with different bytes",
        ),
        (
            |site| {
                publish(
                    &site.pkg(),
                    &site.key,
                    6,
                    &["--expires", "2020-01-01T00:00:00Z"],
                );
            },
            "expired at 2020-01-01T00:00:00Z",
        ),
        (
            |site| {
                let other = site.site.path("other.key");
                dp(&["publish", "--gen-key", s(&other)]);
                publish(&site.pkg(), &other, 7, &[]);
            },
            "does not verify with any publisher key",
        ),
    ];
    for (make, why) in cases {
        make(&site);
        let (code, st) = region.sync();
        assert_eq!(code, 2, "{why}: {st}");
        assert_eq!(st["last_result"], "refused", "{st}");
        assert!(
            st["last_message"].as_str().unwrap().contains(why),
            "{why}: {st}"
        );
        assert_eq!(st["package_hash"], h5.as_str(), "{st}");
        let (code, out, err) = dp(&["status", "--config", s(&region.config)]);
        assert_eq!(code, 0, "{err}");
        assert!(out.contains("refused") && out.contains(why), "{out}");
        assert!(
            out.contains(&format!("package:      {h5} (sequence 5)")),
            "{out}"
        );
        let (code, out, err) = dp(&["status", "--config", s(&region.config), "--json"]);
        assert_eq!(code, 0, "{err}");
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        let st = &v["replicas"][0];
        assert_eq!(
            (st["last_result"].as_str(), st["sequence"].as_u64()),
            (Some("refused"), Some(5)),
            "{st}"
        );
        assert!(
            st["last_message"].as_str().unwrap().contains(why),
            "{why}: {st}"
        );
    }
    assert!(region.server().log().contains("package manifest refused"));
    // Each refusal, and the first switch, in the audit log.
    let audit = region.state_dir().join("audit");
    let end = std::time::Instant::now() + LONG;
    let text = loop {
        let text: String = std::fs::read_dir(&audit)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| std::fs::read_to_string(e.path()).unwrap_or_default())
            .collect();
        if text.matches("\"replica_refused\"").count() >= 4 {
            break text;
        }
        assert!(std::time::Instant::now() < end, "audit: {text}");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(text.contains("\"event\":\"replica_switched\""), "{text}");
    assert!(text.contains("rollback refused"), "{text}");
    let tls = region.site.tls(false, &[Protocol::Http1]);
    let r = region.server();
    let got = fetch(r, tls, req("GET", &r.url("/pkg/setup.exe"))).await;
    assert!(got.status == 200 && got.body == unique(200_000, 5));

    // A newer, valid release is taken again.
    let h8 = publish(&site.pkg(), &site.key, 8, &[]);
    let (code, st) = region.sync();
    assert_eq!(
        (code, st["package_hash"].as_str()),
        (0, Some(h8.as_str())),
        "{st}"
    );

    // Outside its windows (UTC here), a replica asks nothing of anyone.
    let now = jiff::Timestamp::now().to_zoned(jiff::tz::TimeZone::UTC);
    let m = (now.hour() as u32 * 60 + now.minute() as u32 + 120) % 1440;
    let window = format!(
        "{:02}:{:02}-{:02}:{:02}",
        m / 60,
        m % 60,
        ((m + 60) % 1440) / 60,
        m % 60
    );
    let mut closed = Replica::new(
        &site.site,
        &[site.server().url("/pkg")],
        &site.public_key(),
        Login::Cert(&site.site, "region02"),
        "",
        &format!("windows = [\"{window}\"]\n"),
    );
    closed.start_with_env(&[("TZ", std::ffi::OsStr::new("UTC"))]);
    let (code, st) = closed.sync();
    assert_eq!(code, 3, "{st}");
    assert_eq!(st["last_result"], "waiting", "{st}");
    assert!(
        st["last_message"]
            .as_str()
            .unwrap()
            .contains("outside its windows"),
        "{st}"
    );
    assert_eq!(requests_from(&site.server().log(), "cert:region02"), 0);
}
