//! Range parsing and planning (`distpoint::http`): what every range request pays
//! before any byte is read.

use distpoint::http::{multipart, plan_range, ByteRange, RangePlan};
use divan::black_box;
use http::HeaderValue;

const SIZE: u64 = 1 << 30;

#[divan::bench(args = [
    "bytes=536870912-536875007",
    "bytes=-4096",
    "bytes=0-",
    "bytes=0-99,200-299,250-399,1000-1999,5000-",
    "bytes=abc",
])]
fn plan(header: &str) -> RangePlan {
    let value = HeaderValue::from_str(header).unwrap();
    plan_range(black_box(Some(&value)), black_box(SIZE))
}

/// Sixteen disjoint ranges: the most the planner keeps before it ignores the header.
#[divan::bench]
fn plan_sixteen(bencher: divan::Bencher) {
    let spec: Vec<String> = (0..16)
        .map(|i| format!("{}-{}", i * 10_000, i * 10_000 + 4095))
        .collect();
    let value = HeaderValue::from_str(&format!("bytes={}", spec.join(","))).unwrap();
    bencher.bench(|| plan_range(black_box(Some(&value)), SIZE));
}

/// The multipart/byteranges plan for the sixteen ranges (part headers, lengths).
#[divan::bench]
fn multipart_sixteen(bencher: divan::Bencher) {
    let ranges: Vec<ByteRange> = (0..16)
        .map(|i| ByteRange {
            start: i * 10_000,
            end: i * 10_000 + 4096,
        })
        .collect();
    bencher.bench(|| {
        multipart(
            black_box(&ranges),
            SIZE,
            "application/octet-stream",
            "b0undary",
        )
    });
}
