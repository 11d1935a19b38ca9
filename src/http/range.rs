//! The `Range` header (RFC 9110 §14.1–14.2) validated against a file size.

use ::http::HeaderValue;
use http_range_header::{parse_range_header, SyntacticallyCorrectRange};

/// Byte range, inclusive start, exclusive end (`start < end <= size`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteRange {
    /// Offset of the first byte.
    pub start: u64,
    /// Offset one past the last byte.
    pub end: u64,
}

impl ByteRange {
    /// Number of bytes in the range.
    pub fn len(&self) -> u64 {
        self.end.saturating_sub(self.start)
    }

    /// True for an empty range; never the case for ranges from [`plan_range`].
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// What the `Range` header asks for, validated against the file size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RangePlan {
    /// `200` with the whole file: no `Range` header, a malformed one (ignored
    /// per RFC 9110 §14.2), a unit other than `bytes`, or too many ranges.
    Full,
    /// `206` with one `Content-Range`.
    Single(ByteRange),
    /// `206 multipart/byteranges`: sorted, disjoint and non-adjacent,
    /// `2..=MAX_RANGES` of them, so their total never exceeds the file size.
    Multi(Vec<ByteRange>),
    /// `416` with `Content-Range: bytes */SIZE` ([`unsatisfied_range`]).
    Unsatisfiable,
}

/// Most parts a `multipart/byteranges` response may have after merging;
/// a request for more is answered with the whole file (`200`).
pub const MAX_RANGES: usize = 16;

/// Plans the response to a `Range` header for a file of `size` bytes.
///
/// Pass `None` when there is no `Range` header or when it must be ignored: for
/// any method but `GET` (RFC 9110 §14.2), when [`Precondition::Proceed`] says
/// `honor_range: false`, or when the (singleton) field appears more than once.
///
/// Syntax is `http-range-header`'s: it rejects what RFC 9110 calls invalid
/// (`bytes=5-2`, `bytes=abc`, other units), which makes the whole header
/// ignored; it clamps numbers past `u64::MAX` to `u64::MAX` (so
/// `bytes=0-99999999999999999999` is the whole file) and refuses more than 100
/// range-specs or 30 digits in one number, which also makes it ignored.
///
/// [`Precondition::Proceed`]: super::Precondition::Proceed
pub fn plan_range(range: Option<&HeaderValue>, size: u64) -> RangePlan {
    let Some(value) = range else {
        return RangePlan::Full;
    };
    // A non-ASCII value cannot be a valid ranges-specifier.
    let Ok(text) = value.to_str() else {
        return RangePlan::Full;
    };
    let Ok(parsed) = parse_range_header(text) else {
        return RangePlan::Full;
    };
    let mut ranges: Vec<ByteRange> = parsed
        .into_ranges()
        .into_iter()
        .filter_map(|spec| satisfiable(spec, size))
        .collect();
    if ranges.is_empty() {
        return RangePlan::Unsatisfiable;
    }
    coalesce(&mut ranges);
    match ranges.len() {
        1 => RangePlan::Single(ranges[0]),
        n if n <= MAX_RANGES => RangePlan::Multi(ranges),
        _ => RangePlan::Full,
    }
}

/// The part of the file one range-spec selects, or `None` when it selects
/// nothing (RFC 9110 §14.1.1: a first-pos at or past the end, or a zero suffix).
fn satisfiable(spec: SyntacticallyCorrectRange, size: u64) -> Option<ByteRange> {
    // RFC 9110 lets `bytes=-N` "select" an empty file, but there is no
    // Content-Range for zero bytes; the contract says any range of an empty
    // file is unsatisfiable.
    let last = size.checked_sub(1)?;
    let (start, last_pos) = match spec {
        SyntacticallyCorrectRange::FromStart(first) => (first, last),
        SyntacticallyCorrectRange::Indexed(first, last_pos) => (first, last_pos.min(last)),
        // A suffix longer than the file selects all of it.
        SyntacticallyCorrectRange::FromLast(0) => return None,
        SyntacticallyCorrectRange::FromLast(n) => (size - n.min(size), last),
    };
    // The parser already rejected reversed specs, so start > last_pos can only
    // mean first-pos is past the end; `last_pos + 1` cannot overflow as
    // last_pos < size.
    (start <= last_pos).then(|| ByteRange {
        start,
        end: last_pos + 1,
    })
}

/// Sorts and merges overlapping and adjacent ranges, so that what is sent is
/// at most one pass over the file and has as few parts as possible.
fn coalesce(ranges: &mut Vec<ByteRange>) {
    ranges.sort_unstable_by_key(|r| r.start);
    ranges.dedup_by(|next, kept| {
        if next.start <= kept.end {
            kept.end = kept.end.max(next.end);
            true
        } else {
            false
        }
    });
}

/// `Content-Range` of a `206`: `bytes FIRST-LAST/SIZE` with LAST inclusive.
pub fn content_range(r: ByteRange, size: u64) -> HeaderValue {
    debug_assert!(r.start < r.end && r.end <= size, "{r:?} of {size}");
    let last = r.end.saturating_sub(1);
    HeaderValue::try_from(format!("bytes {}-{last}/{size}", r.start))
        .expect("digits are a valid header value")
}

/// `Content-Range` of a `416`: `bytes */SIZE`.
pub fn unsatisfied_range(size: u64) -> HeaderValue {
    HeaderValue::try_from(format!("bytes */{size}")).expect("digits are a valid header value")
}

#[cfg(test)]
#[path = "range_tests.rs"]
mod tests;
