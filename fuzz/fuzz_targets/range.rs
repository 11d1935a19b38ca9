//! `Range` parsing and planning: `plan_range` on any header value and size.
//!
//! Input: `SIZE\nHEADER` (SIZE in decimal; anything else means the input's
//! length), so that seeds stay readable. Checked: a plan never selects a byte
//! past the file, multipart parts are sorted, disjoint, non-adjacent,
//! 2..=MAX_RANGES of them and together at most one pass over the file, and
//! `Content-Range` says exactly the planned range.
#![no_main]

use distpoint::http::{
    content_range, plan_range, unsatisfied_range, ByteRange, RangePlan, MAX_RANGES,
};
use http::HeaderValue;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (size, header) = match data.iter().position(|&b| b == b'\n') {
        Some(i) => match std::str::from_utf8(&data[..i])
            .ok()
            .and_then(|s| s.parse().ok())
        {
            Some(size) => (size, &data[i + 1..]),
            None => (data.len() as u64, &data[i + 1..]),
        },
        None => (data.len() as u64, data),
    };
    // hyper never hands over a value that `HeaderValue` refuses.
    let Ok(value) = HeaderValue::from_bytes(header) else {
        return;
    };
    let within = |r: &ByteRange| r.start < r.end && r.end <= size;
    match plan_range(Some(&value), size) {
        RangePlan::Full => {}
        RangePlan::Unsatisfiable => {
            assert_eq!(unsatisfied_range(size), format!("bytes */{size}").as_str());
        }
        RangePlan::Single(r) => {
            assert!(within(&r), "{r:?} of {size}");
            let expect = format!("bytes {}-{}/{size}", r.start, r.end - 1);
            assert_eq!(content_range(r, size), expect.as_str());
        }
        RangePlan::Multi(ranges) => {
            assert!((2..=MAX_RANGES).contains(&ranges.len()), "{ranges:?}");
            assert!(ranges.iter().all(within), "{ranges:?} of {size}");
            // Merged: strictly increasing with a gap between parts.
            assert!(
                ranges.windows(2).all(|w| w[0].end < w[1].start),
                "{ranges:?}"
            );
            let total: u64 = ranges.iter().map(ByteRange::len).sum();
            assert!(total <= size, "{total} bytes planned from a file of {size}");
        }
    }
});
