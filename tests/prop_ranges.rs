//! Property tests for byte ranges, through the real server over real TLS.
//!
//! For any `Range` header made of 1 to 20 specs (first-last, open-ended,
//! suffix; overlapping, adjacent, past the end, reversed, zero-length):
//! - a `206`'s bytes are exactly the file's bytes at the offsets its
//!   `Content-Range` (or each multipart part's) names;
//! - the file bytes of a response, summed over its parts, never exceed one
//!   pass over the file, and parts are sorted and disjoint;
//! - the answer is the one `plan_range` gives for that header (so the unit
//!   layer and the wire agree), and `Content-Length` is the body's length.

mod support;

use distpoint::http::{plan_range, ByteRange, RangePlan};
use distpoint::transfer::{Conn, Protocol};
use http::HeaderValue;
use http_body_util::Empty;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use support::*;

const SIZE: u64 = 70_001;

/// One range-spec, in the forms RFC 9110 allows and a few it does not.
fn spec() -> impl Strategy<Value = String> {
    let pos = prop_oneof![0..SIZE + 100, Just(0), Just(SIZE - 1), Just(SIZE), 0..64u64];
    prop_oneof![
        4 => (pos.clone(), 0..40_000u64).prop_map(|(a, n)| format!("{a}-{}", a + n)),
        1 => (pos.clone(), pos.clone()).prop_map(|(a, b)| format!("{a}-{b}")),
        1 => pos.clone().prop_map(|a| format!("{a}-")),
        1 => (0..SIZE + 10).prop_map(|n| format!("-{n}")),
    ]
}

fn header() -> impl Strategy<Value = String> {
    (prop::collection::vec(spec(), 1..20), any::<bool>()).prop_map(|(specs, spaced)| {
        let sep = if spaced { ", " } else { "," };
        format!("bytes={}", specs.join(sep))
    })
}

/// `(first, last_inclusive, size)` from `bytes F-L/S`.
fn content_range(v: &str) -> (u64, u64, u64) {
    let rest = v.strip_prefix("bytes ").expect(v);
    let (range, size) = rest.split_once('/').expect(v);
    let (f, l) = range.split_once('-').expect(v);
    (
        f.parse().unwrap(),
        l.parse().unwrap(),
        size.parse().unwrap(),
    )
}

/// The parts of a multipart/byteranges body: (Content-Range, data).
fn parts(body: &[u8], boundary: &str) -> Vec<((u64, u64, u64), Vec<u8>)> {
    let delim = format!("\r\n--{boundary}");
    let find = |from: usize, needle: &[u8]| {
        body[from..]
            .windows(needle.len())
            .position(|w| w == needle)
            .map(|i| i + from)
    };
    let mut out = Vec::new();
    let mut pos = find(0, delim.as_bytes()).expect("first delimiter");
    assert_eq!(pos, 0, "no preamble but the CRLF");
    loop {
        pos += delim.len();
        if body[pos..].starts_with(b"--") {
            assert_eq!(&body[pos..], b"--\r\n", "close delimiter ends the body");
            return out;
        }
        let head_end = find(pos, b"\r\n\r\n").expect("part head");
        let head = std::str::from_utf8(&body[pos..head_end]).unwrap();
        let cr = head
            .lines()
            .find_map(|l| l.strip_prefix("Content-Range: "))
            .expect("part has Content-Range");
        let cr = content_range(cr);
        let start = head_end + 4;
        let len = (cr.1 - cr.0 + 1) as usize;
        out.push((cr, body[start..start + len].to_vec()));
        pos = start + len;
        assert!(
            body[pos..].starts_with(delim.as_bytes()),
            "part ends at its length"
        );
    }
}

fn check(got: &Got, file: &[u8], header: &str) -> Result<(), TestCaseError> {
    let size = file.len() as u64;
    let cl: u64 = got.header("content-length").unwrap().parse().unwrap();
    prop_assert_eq!(cl, got.body.len() as u64, "Content-Length for {}", header);
    let plan = plan_range(Some(&HeaderValue::from_str(header).unwrap()), size);
    match plan {
        RangePlan::Full => {
            prop_assert_eq!(got.status, 200, "{}", header);
            prop_assert!(got.body == file, "200 body is the file");
        }
        RangePlan::Unsatisfiable => {
            prop_assert_eq!(got.status, 416, "{}", header);
            let expect = format!("bytes */{size}");
            prop_assert_eq!(got.header("content-range"), Some(expect.as_str()));
        }
        RangePlan::Single(r) => {
            prop_assert_eq!(got.status, 206, "{}", header);
            let (f, l, s) = content_range(got.header("content-range").unwrap());
            prop_assert_eq!((f, l + 1, s), (r.start, r.end, size));
            prop_assert!(
                got.body == file[f as usize..=l as usize],
                "single range bytes"
            );
        }
        RangePlan::Multi(ranges) => {
            prop_assert_eq!(got.status, 206, "{}", header);
            let ct = got.header("content-type").unwrap();
            let boundary = ct.strip_prefix("multipart/byteranges; boundary=").unwrap();
            let parts = parts(&got.body, boundary);
            let sent: Vec<ByteRange> = parts
                .iter()
                .map(|((f, l, _), _)| ByteRange {
                    start: *f,
                    end: l + 1,
                })
                .collect();
            prop_assert_eq!(&sent, &ranges, "{}", header);
            let mut total = 0;
            for ((f, l, s), data) in &parts {
                prop_assert_eq!(*s, size);
                prop_assert!(
                    data[..] == file[*f as usize..=*l as usize],
                    "part {}-{}",
                    f,
                    l
                );
                total += data.len() as u64;
            }
            prop_assert!(total <= size, "{} file bytes for a file of {}", total, size);
            prop_assert!(sent.windows(2).all(|w| w[0].end < w[1].start));
        }
    }
    Ok(())
}

#[test]
fn range_responses_are_the_files_bytes_at_those_offsets() {
    let site = Site::new();
    let file = data(SIZE as usize, 7);
    site.file("content/pkg/f.bin", &file);
    let server = site.start(&format!(
        "{}[[vpath]]\nurl = \"/pkg\"\ndir = \"content/pkg\"\nanonymous = true\nchunk_size = 4096\n",
        site.head()
    ));
    let rt = tokio::runtime::Runtime::new().unwrap();
    for proto in [Protocol::Http1, Protocol::Http2] {
        // One connection for all cases (`run` takes an `Fn`, hence the lock).
        let tls = site.tls(false, &[proto]);
        let conn = tokio::sync::Mutex::new(
            rt.block_on(Conn::connect(server.addr, "localhost", tls))
                .unwrap(),
        );
        let url = server.url("/pkg/f.bin");
        let mut runner = TestRunner::new(Config {
            cases: 96,
            failure_persistence: None,
            ..Config::default()
        });
        runner
            .run(&header(), |h| {
                let r = req("GET", &url).header("range", &h);
                let got = rt.block_on(async {
                    let mut conn = conn.lock().await;
                    read(conn.send(r.body(Empty::new()).unwrap()).await.unwrap()).await
                });
                check(&got, &file, &h)
            })
            .unwrap();
    }
}

proptest! {
    #![proptest_config(Config { cases: 2000, failure_persistence: None, ..Config::default() })]

    /// Unit level, many more cases: whatever the header and the size, a plan
    /// selects only bytes of the file, sorted, disjoint, at most one pass.
    #[test]
    fn no_range_set_is_larger_than_one_pass(h in header(), size in prop_oneof![Just(0u64), 1..SIZE * 2]) {
        let plan = plan_range(Some(&HeaderValue::from_str(&h).unwrap()), size);
        let ranges = match plan {
            RangePlan::Single(r) => vec![r],
            RangePlan::Multi(v) => v,
            RangePlan::Full | RangePlan::Unsatisfiable => return Ok(()),
        };
        prop_assert!(ranges.iter().all(|r| r.start < r.end && r.end <= size));
        prop_assert!(ranges.windows(2).all(|w| w[0].end < w[1].start));
        prop_assert!(ranges.iter().map(ByteRange::len).sum::<u64>() <= size);
    }
}
