//! HTTP/2 conformance: every h2spec case against the real server over TLS.
//!
//! h2spec is built by `.ci/build-h2spec.sh` (Debian's Go, the h2spec 2.6
//! source in `../shared/tools/h2spec-src`); the test takes it from `$H2SPEC`,
//! else from `PATH`. All 146 cases must pass, several times over, because
//! the ones about frames sent after a request's HEADERS used to pass or fail
//! by timing.

mod support;

use std::process::Command;
use std::time::Instant;
use support::*;

fn h2spec() -> String {
    std::env::var("H2SPEC").unwrap_or_else(|_| "h2spec".into())
}

#[test]
fn all_h2spec_cases_pass() {
    let site = Site::new();
    site.file("content/pub/hello.txt", b"hello, h2spec\n");
    let server = site.start(&format!(
        "{}[[vpath]]\nurl = \"/pub\"\ndir = \"content/pub\"\nanonymous = true\n",
        site.head()
    ));
    let report = site.path("h2spec.xml");
    for round in 1..=3 {
        let start = Instant::now();
        let out = Command::new(h2spec())
            .args(["-t", "-k", "-h", "127.0.0.1", "-p"])
            .arg(server.addr.port().to_string())
            .args(["-P", "/pub/hello.txt", "-j"])
            .arg(&report)
            .output()
            .expect("h2spec runs (.ci/build-h2spec.sh builds it; set H2SPEC=PATH)");
        let text = String::from_utf8_lossy(&out.stdout);
        let summary = text
            .lines()
            .find(|l| l.contains(" tests, "))
            .unwrap_or_else(|| panic!("no h2spec summary:\n{text}"));
        println!(
            "h2spec round {round}: {summary} in {:.1} s",
            start.elapsed().as_secs_f64()
        );
        let failures = text.split("Failures:").nth(1).unwrap_or("");
        assert!(
            summary.starts_with("146 tests, 146 passed") && out.status.success(),
            "{summary}\n{failures}"
        );
    }
    // The report lists every case; none failed.
    let xml = std::fs::read_to_string(&report).unwrap();
    assert_eq!(xml.matches("<testcase ").count(), 146, "{xml}");
    assert!(!xml.contains("<failure"), "{xml}");
}
