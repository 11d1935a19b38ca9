//! Conditional requests (RFC 9110 §13) and the dates they compare.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ::http::header::{
    HeaderName, IF_MATCH, IF_MODIFIED_SINCE, IF_NONE_MATCH, IF_RANGE, IF_UNMODIFIED_SINCE, RANGE,
};
use ::http::{HeaderMap, HeaderValue, Method};

/// The validators of the selected representation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Validators {
    /// Strong entity tag, already quoted, e.g. `"abc"` with the quotes.
    pub etag: String,
    /// Modification time; compared at the whole second that `Last-Modified`
    /// shows (see [`http_date`]).
    pub last_modified: SystemTime,
}

/// What the preconditions of a request decide.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Precondition {
    /// Go on with the request.
    Proceed {
        /// Whether `Range` may be honored: false when `If-Range` did not match
        /// or the method is not `GET` (the only one with ranges, RFC 9110
        /// §14.2); then the whole file is sent with `200`.
        honor_range: bool,
    },
    /// `304 Not Modified`.
    NotModified,
    /// `412 Precondition Failed`.
    Failed,
}

/// Evaluates `If-Match`, `If-Unmodified-Since`, `If-None-Match`,
/// `If-Modified-Since` and `If-Range` in RFC 9110 §13.2.2 order, for a file
/// that exists and has validators `v`.
///
/// Malformed entity-tag lists match nothing (so a malformed `If-Match` fails
/// and a malformed `If-None-Match` sends the file); invalid dates are ignored,
/// as RFC 9110 §13.1.3–13.1.4 require; an invalid `If-Range` is false.
pub fn evaluate_preconditions(
    method: &Method,
    headers: &HeaderMap,
    v: &Validators,
) -> Precondition {
    let own = parse_tag(v.etag.as_bytes());
    debug_assert!(own.is_some(), "ETag {:?} is not an entity-tag", v.etag);
    let modified = whole_secs(v.last_modified);
    let get_or_head = *method == Method::GET || *method == Method::HEAD;

    // Steps 1–2: If-Match, else If-Unmodified-Since.
    if let Some(list) = tag_list(headers, &IF_MATCH) {
        if !list.matches(own, strong_match) {
            return Precondition::Failed;
        }
    } else if let Some(date) = single_date(headers, &IF_UNMODIFIED_SINCE) {
        if modified > date {
            return Precondition::Failed;
        }
    }

    // Steps 3–4: If-None-Match, else If-Modified-Since (GET/HEAD only).
    if let Some(list) = tag_list(headers, &IF_NONE_MATCH) {
        if list.matches(own, weak_match) {
            return if get_or_head {
                Precondition::NotModified
            } else {
                Precondition::Failed
            };
        }
    } else if get_or_head {
        if let Some(date) = single_date(headers, &IF_MODIFIED_SINCE) {
            if modified <= date {
                return Precondition::NotModified;
            }
        }
    }

    // Step 5: If-Range only matters for a GET that has a Range.
    let honor_range = *method == Method::GET
        && (!headers.contains_key(RANGE) || if_range_holds(headers, own, modified));
    Precondition::Proceed { honor_range }
}

/// `Last-Modified`/`Date` value in IMF-fixdate, at whole-second precision.
///
/// Times before 1970 or after 9999 (possible for file mtimes) are clamped to
/// what an HTTP-date can express instead of panicking as `httpdate` would.
pub fn http_date(t: SystemTime) -> HeaderValue {
    let shown = UNIX_EPOCH + Duration::from_secs(whole_secs(t));
    HeaderValue::try_from(httpdate::fmt_http_date(shown)).expect("IMF-fixdate is visible ASCII")
}

/// 9999-12-31T23:59:59Z, the last second an HTTP-date (4-digit year) can show.
const LAST_HTTP_DATE_SECS: u64 = 253_402_300_799;

/// Seconds since the epoch as [`http_date`] shows them, so that comparisons
/// use exactly the date the client was given (sub-second mtimes would
/// otherwise always look newer than the client's copy).
fn whole_secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
        .min(LAST_HTTP_DATE_SECS)
}

/// A date field that must hold exactly one valid HTTP-date; anything else
/// (absent, repeated, a list, garbage) is ignored as RFC 9110 §13.1.3/13.1.4 say.
fn single_date(headers: &HeaderMap, name: &HeaderName) -> Option<u64> {
    let mut values = headers.get_all(name).iter();
    let value = values.next()?;
    if values.next().is_some() {
        return None;
    }
    parse_date(value)
}

fn parse_date(value: &HeaderValue) -> Option<u64> {
    let date = httpdate::parse_http_date(value.to_str().ok()?).ok()?;
    Some(whole_secs(date))
}

/// RFC 9110 §13.1.5: an entity tag matches only by strong comparison, a date
/// only if it equals `Last-Modified` exactly; anything else is false.
fn if_range_holds(headers: &HeaderMap, own: Option<Tag<'_>>, modified: u64) -> bool {
    let mut values = headers.get_all(IF_RANGE).iter();
    let Some(value) = values.next() else {
        return true;
    };
    if values.next().is_some() {
        return false;
    }
    let bytes = trim_ows(value.as_bytes());
    if bytes.starts_with(b"\"") || bytes.starts_with(b"W/") {
        parse_tag(bytes).is_some_and(|tag| strong_match(own, tag))
    } else {
        parse_date(value) == Some(modified)
    }
}

/// An entity-tag; `opaque` keeps its quotes, as `Validators::etag` does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Tag<'a> {
    weak: bool,
    opaque: &'a [u8],
}

fn strong_match(own: Option<Tag<'_>>, other: Tag<'_>) -> bool {
    own.is_some_and(|own| !own.weak && !other.weak && own.opaque == other.opaque)
}

fn weak_match(own: Option<Tag<'_>>, other: Tag<'_>) -> bool {
    own.is_some_and(|own| own.opaque == other.opaque)
}

/// The value of `If-Match` / `If-None-Match`, all field lines together.
enum TagList<'a> {
    /// `*`: matches any current representation; the file exists.
    Any,
    Tags(Vec<Tag<'a>>),
    /// Not `"*" / #entity-tag`: matches nothing.
    Malformed,
}

impl TagList<'_> {
    fn matches(&self, own: Option<Tag<'_>>, cmp: fn(Option<Tag<'_>>, Tag<'_>) -> bool) -> bool {
        match self {
            TagList::Any => true,
            TagList::Tags(tags) => tags.iter().any(|&t| cmp(own, t)),
            TagList::Malformed => false,
        }
    }
}

/// `None` when the field is absent.
fn tag_list<'a>(headers: &'a HeaderMap, name: &HeaderName) -> Option<TagList<'a>> {
    let mut lines = headers.get_all(name).iter().peekable();
    lines.peek()?;
    let mut tags = Vec::new();
    let mut stars = 0usize;
    for line in lines {
        let mut rest = line.as_bytes();
        loop {
            // Empty list elements and OWS are allowed (RFC 9110 §5.6.1.2).
            rest = trim_start(rest, |b| matches!(b, b' ' | b'\t' | b','));
            if rest.is_empty() {
                break;
            }
            let Some((member, after)) = parse_member(rest) else {
                return Some(TagList::Malformed);
            };
            match member {
                Member::Star => stars += 1,
                Member::Tag(tag) => tags.push(tag),
            }
            rest = trim_ows(after);
            match rest.first() {
                None => break,
                Some(b',') => {}
                Some(_) => return Some(TagList::Malformed),
            }
        }
    }
    // `*` is only valid as the whole field value.
    Some(match (stars, tags.is_empty()) {
        (0, _) => TagList::Tags(tags),
        (1, true) => TagList::Any,
        _ => TagList::Malformed,
    })
}

enum Member<'a> {
    Star,
    Tag(Tag<'a>),
}

/// One `*` or entity-tag at the start of `s`, and what follows it.
fn parse_member(s: &[u8]) -> Option<(Member<'_>, &[u8])> {
    if let Some(rest) = s.strip_prefix(b"*") {
        return Some((Member::Star, rest));
    }
    let (tag, rest) = parse_tag_prefix(s)?;
    Some((Member::Tag(tag), rest))
}

fn parse_tag(s: &[u8]) -> Option<Tag<'_>> {
    match parse_tag_prefix(s)? {
        (tag, []) => Some(tag),
        _ => None,
    }
}

/// entity-tag = [ %s"W/" ] DQUOTE *etagc DQUOTE (case-sensitive `W/`, no
/// space before the quote), etagc = %x21 / %x23-7E / obs-text.
fn parse_tag_prefix(s: &[u8]) -> Option<(Tag<'_>, &[u8])> {
    let (weak, quoted) = match s.strip_prefix(b"W/") {
        Some(rest) => (true, rest),
        None => (false, s),
    };
    let body = quoted.strip_prefix(b"\"")?;
    let close = body.iter().position(|&b| b == b'"')?;
    if !body[..close]
        .iter()
        .all(|&b| b == 0x21 || (0x23..=0x7e).contains(&b) || b >= 0x80)
    {
        return None;
    }
    let (opaque, rest) = quoted.split_at(close + 2);
    Some((Tag { weak, opaque }, rest))
}

fn trim_start(s: &[u8], strip: impl Fn(u8) -> bool) -> &[u8] {
    let n = s.iter().take_while(|&&b| strip(b)).count();
    &s[n..]
}

fn trim_ows(s: &[u8]) -> &[u8] {
    let s = trim_start(s, |b| b == b' ' || b == b'\t');
    let n = s
        .iter()
        .rev()
        .take_while(|&&b| b == b' ' || b == b'\t')
        .count();
    &s[..s.len() - n]
}

#[cfg(test)]
#[path = "conditional_tests.rs"]
mod tests;
