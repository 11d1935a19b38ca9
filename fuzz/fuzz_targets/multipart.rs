//! `multipart/byteranges` assembly: plan any ranges, lay the body out, render
//! it over a synthetic file and parse it back strictly.
//!
//! Checked: `len` is the exact rendered length, each part carries the right
//! `Content-Range` and exactly the file's bytes at those offsets, a part
//! `Content-Type` can never add a header line, and the body ends with the
//! close delimiter.
#![no_main]

use arbitrary::Arbitrary;
use distpoint::http::{multipart, new_boundary, plan_range, RangePlan, Segment};
use http::HeaderValue;
use libfuzzer_sys::fuzz_target;

#[derive(Debug, Arbitrary)]
struct Input {
    /// File size (kept small so the body can be rendered).
    size: u16,
    /// Range specs as `(first, last)`, `None` for an open end.
    specs: Vec<(u16, Option<u16>)>,
    /// Suffix specs (`-N`).
    suffixes: Vec<u16>,
    /// A part content type, possibly hostile.
    content_type: String,
}

fn byte_at(i: u64) -> u8 {
    (i.wrapping_mul(2654435761) >> 7) as u8
}

fuzz_target!(|input: Input| {
    let size = u64::from(input.size);
    let mut specs: Vec<String> = input
        .specs
        .iter()
        .map(|&(a, b)| match b {
            Some(b) => format!("{}-{}", a.min(b), a.max(b)),
            None => format!("{a}-"),
        })
        .collect();
    specs.extend(input.suffixes.iter().map(|n| format!("-{n}")));
    if specs.is_empty() {
        return;
    }
    let header = HeaderValue::try_from(format!("bytes={}", specs.join(","))).unwrap();
    let RangePlan::Multi(ranges) = plan_range(Some(&header), size) else {
        return;
    };
    let boundary = new_boundary();
    let body = multipart(&ranges, size, &input.content_type, &boundary);

    let mut rendered = Vec::new();
    for s in &body.segments {
        match s {
            Segment::Bytes(b) => rendered.extend_from_slice(b),
            Segment::File(r) => rendered.extend((r.start..r.end).map(byte_at)),
        }
    }
    assert_eq!(
        rendered.len() as u64,
        body.len,
        "Content-Length must match the body"
    );
    assert_eq!(
        body.content_type,
        format!("multipart/byteranges; boundary={boundary}").as_str()
    );

    // Parse it back: every part is CRLF--B CRLF [Content-Type line] Content-Range line CRLF data.
    let close = format!("\r\n--{boundary}--\r\n");
    assert!(rendered.ends_with(close.as_bytes()));
    let mut at = 0usize;
    for r in &ranges {
        let open = format!("\r\n--{boundary}\r\n");
        assert!(
            rendered[at..].starts_with(open.as_bytes()),
            "part framing at {at}"
        );
        at += open.len();
        let head_end = find(&rendered[at..], b"\r\n\r\n").expect("part head ends") + at;
        let head = std::str::from_utf8(&rendered[at..head_end]).expect("part head is UTF-8");
        let lines: Vec<&str> = head.split("\r\n").collect();
        let range_line = format!("Content-Range: bytes {}-{}/{size}", r.start, r.end - 1);
        match lines.as_slice() {
            [only] => assert_eq!(*only, range_line),
            [ty, range] => {
                assert_eq!(*ty, format!("Content-Type: {}", input.content_type));
                assert_eq!(*range, range_line);
            }
            more => panic!("part head has {} lines: {more:?}", more.len()),
        }
        at = head_end + 4;
        let data = &rendered[at..at + r.len() as usize];
        assert!(data.iter().zip(r.start..).all(|(&b, i)| b == byte_at(i)));
        at += r.len() as usize;
    }
    assert_eq!(&rendered[at..], close.as_bytes());
});

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}
