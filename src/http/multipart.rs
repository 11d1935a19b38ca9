//! `multipart/byteranges` framing (RFC 9110 §14.6), laid out ahead of time so
//! that `Content-Length` is known before the first byte is sent.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use ::http::HeaderValue;
use bytes::Bytes;

use super::range::ByteRange;

/// One piece of a multipart body, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Segment {
    /// Framing bytes, sent as they are.
    Bytes(Bytes),
    /// A range of the file, read (and verified) by the body streamer.
    File(ByteRange),
}

/// A `206 multipart/byteranges` body: its header and its exact layout.
#[derive(Debug, Clone)]
pub struct MultipartBody {
    /// `multipart/byteranges; boundary=…`, for the `Content-Type` header.
    pub content_type: HeaderValue,
    /// Framing and file ranges, in the order they are sent.
    pub segments: Vec<Segment>,
    /// Exact total length of all segments, for `Content-Length`.
    pub len: u64,
}

/// Lays out a multipart body for `ranges` of a file of `size` bytes:
/// per part `CRLF--BOUNDARY CRLF Content-Type: T CRLF Content-Range: bytes
/// a-b/SIZE CRLF CRLF` then the data, and at the end `CRLF--BOUNDARY--CRLF`.
///
/// The CRLF before the first boundary is an empty preamble, which RFC 2046
/// allows; it lets every part start the same way. The `Content-Type` line is
/// left out when `part_content_type` is empty or not a valid header value (so
/// it can never inject lines).
///
/// # Panics
///
/// If `boundary` is not 1..=70 of `A-Z a-z 0-9 ' + _ - .` (characters that are
/// valid both in a boundary and unquoted in the `Content-Type` parameter);
/// [`new_boundary`] always makes a valid one.
pub fn multipart(
    ranges: &[ByteRange],
    size: u64,
    part_content_type: &str,
    boundary: &str,
) -> MultipartBody {
    assert!(
        valid_boundary(boundary),
        "invalid multipart boundary {boundary:?}"
    );
    let type_line =
        if !part_content_type.is_empty() && HeaderValue::from_str(part_content_type).is_ok() {
            format!("Content-Type: {part_content_type}\r\n")
        } else {
            String::new()
        };

    let mut segments = Vec::with_capacity(ranges.len() * 2 + 1);
    for &range in ranges {
        debug_assert!(
            range.start < range.end && range.end <= size,
            "{range:?} of {size}"
        );
        let last = range.end.saturating_sub(1);
        let head = format!(
            "\r\n--{boundary}\r\n{type_line}Content-Range: bytes {}-{last}/{size}\r\n\r\n",
            range.start
        );
        segments.push(Segment::Bytes(Bytes::from(head)));
        segments.push(Segment::File(range));
    }
    segments.push(Segment::Bytes(Bytes::from(format!(
        "\r\n--{boundary}--\r\n"
    ))));

    // Summed from the segments themselves so it cannot drift from the layout.
    let len = segments
        .iter()
        .map(|s| match s {
            Segment::Bytes(b) => b.len() as u64,
            Segment::File(r) => r.len(),
        })
        .sum();
    let content_type = HeaderValue::try_from(format!("multipart/byteranges; boundary={boundary}"))
        .expect("boundary characters are valid in a header value");
    MultipartBody {
        content_type,
        segments,
        len,
    }
}

fn valid_boundary(b: &str) -> bool {
    (1..=70).contains(&b.len())
        && b.bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'\'' | b'+' | b'_' | b'-' | b'.'))
}

/// A fresh boundary: `distpoint-` and 32 hex digits.
///
/// The digits are SipHash outputs under `RandomState`'s keys, which std seeds
/// from the OS random generator, over a counter and the time: no client can
/// predict them, so file content cannot be crafted to contain the boundary
/// and forge parts. A file could still contain it by chance; at 128 bits that
/// is negligible, and RFC 9110 asks no more.
pub fn new_boundary() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let count = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let keys = RandomState::new();
    let half = |lane: u8| keys.hash_one((count, nanos, lane));
    format!("distpoint-{:016x}{:016x}", half(0), half(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(start: u64, end: u64) -> ByteRange {
        ByteRange { start, end }
    }

    fn file(size: u64) -> Vec<u8> {
        (0..size).map(|i| (i % 251) as u8).collect()
    }

    /// What the body streamer sends: the segments with the file read in.
    fn render(body: &MultipartBody, file: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        for s in &body.segments {
            match s {
                Segment::Bytes(b) => out.extend_from_slice(b),
                Segment::File(r) => out.extend_from_slice(&file[r.start as usize..r.end as usize]),
            }
        }
        out
    }

    /// Parses a rendered body back into (headers, data) per part, checking
    /// the framing strictly.
    fn parse(body: &[u8], boundary: &str) -> Vec<(Vec<String>, Vec<u8>)> {
        let delimiter = format!("\r\n--{boundary}");
        let close = format!("{delimiter}--\r\n");
        assert!(body.ends_with(close.as_bytes()), "missing close delimiter");
        let body = &body[..body.len() - close.len()];
        let text = body.to_vec();
        let mut parts = Vec::new();
        let mut starts = Vec::new();
        let d = delimiter.as_bytes();
        let mut i = 0;
        while i + d.len() <= text.len() {
            if &text[i..i + d.len()] == d {
                starts.push(i);
                i += d.len();
            } else {
                i += 1;
            }
        }
        assert_eq!(starts.first(), Some(&0), "body must start with a delimiter");
        starts.push(text.len());
        for w in starts.windows(2) {
            let part = &text[w[0] + d.len()..w[1]];
            let part = part.strip_prefix(b"\r\n").expect("CRLF after boundary");
            let split = part
                .windows(4)
                .position(|x| x == b"\r\n\r\n")
                .expect("end of headers");
            let headers = String::from_utf8(part[..split].to_vec()).unwrap();
            let headers = headers.split("\r\n").map(str::to_owned).collect();
            parts.push((headers, part[split + 4..].to_vec()));
        }
        parts
    }

    #[test]
    fn layout_round_trips_byte_exact() {
        let size = 1000;
        let data = file(size);
        let ranges = [r(0, 1), r(10, 110), r(999, 1000)];
        let boundary = "B0UNDARY";
        let body = multipart(&ranges, size, "application/octet-stream", boundary);
        let rendered = render(&body, &data);
        assert_eq!(body.len, rendered.len() as u64);
        assert_eq!(body.content_type, "multipart/byteranges; boundary=B0UNDARY");

        let parts = parse(&rendered, boundary);
        assert_eq!(parts.len(), ranges.len());
        for ((headers, content), range) in parts.iter().zip(&ranges) {
            let expect_range = format!(
                "Content-Range: bytes {}-{}/{size}",
                range.start,
                range.end - 1
            );
            assert_eq!(
                headers,
                &vec![
                    "Content-Type: application/octet-stream".to_owned(),
                    expect_range
                ]
            );
            assert_eq!(content, &data[range.start as usize..range.end as usize]);
        }
    }

    #[test]
    fn exact_length_by_hand() {
        let body = multipart(&[r(0, 2), r(5, 6)], 10, "text/plain", "b");
        let expected =
            "\r\n--b\r\nContent-Type: text/plain\r\nContent-Range: bytes 0-1/10\r\n\r\n01\
                        \r\n--b\r\nContent-Type: text/plain\r\nContent-Range: bytes 5-5/10\r\n\r\n5\
                        \r\n--b--\r\n";
        assert_eq!(render(&body, b"0123456789"), expected.as_bytes());
        assert_eq!(body.len, expected.len() as u64);
    }

    #[test]
    fn segments_alternate_framing_and_file() {
        let body = multipart(&[r(0, 2), r(5, 6)], 10, "", "b");
        assert!(matches!(
            body.segments.as_slice(),
            [Segment::Bytes(_), Segment::File(a), Segment::Bytes(_), Segment::File(b), Segment::Bytes(_)]
                if *a == r(0, 2) && *b == r(5, 6)
        ));
    }

    #[test]
    fn empty_or_invalid_part_type_is_left_out() {
        for t in ["", "text/plain\r\nX-Evil: 1", "a\nb"] {
            let body = multipart(&[r(0, 2), r(5, 6)], 10, t, "b");
            let rendered = render(&body, b"0123456789");
            assert_eq!(body.len, rendered.len() as u64);
            for (headers, _) in parse(&rendered, "b") {
                assert_eq!(headers.len(), 1, "{t:?}: {headers:?}");
                assert!(headers[0].starts_with("Content-Range: "));
            }
        }
    }

    #[test]
    fn sixteen_parts_of_a_big_file() {
        let size = u64::MAX;
        let ranges: Vec<_> = (0..16u64)
            .map(|i| r(i * 1_000_000_000_000, i * 1_000_000_000_000 + 7))
            .collect();
        let body = multipart(&ranges, size, "application/x-msdownload", "x");
        let framing: u64 = body
            .segments
            .iter()
            .filter_map(|s| match s {
                Segment::Bytes(b) => Some(b.len() as u64),
                Segment::File(_) => None,
            })
            .sum();
        assert_eq!(body.len, framing + 16 * 7);
    }

    #[test]
    #[should_panic(expected = "invalid multipart boundary")]
    fn empty_boundary_panics() {
        multipart(&[r(0, 1)], 1, "", "");
    }

    #[test]
    #[should_panic(expected = "invalid multipart boundary")]
    fn boundary_with_crlf_panics() {
        multipart(&[r(0, 1)], 1, "", "a\r\nb");
    }

    #[test]
    fn boundaries_are_valid_and_distinct() {
        let a = new_boundary();
        let b = new_boundary();
        assert_ne!(a, b);
        assert!(valid_boundary(&a), "{a}");
        assert_eq!(a.len(), "distpoint-".len() + 32);
        assert!(!valid_boundary(&"x".repeat(71)));
        assert!(!valid_boundary("a b"));
        assert!(valid_boundary(&"x".repeat(70)));
    }
}
