//! Tests of [`super`]: RFC 9110 §13 preconditions, negative cases first.

use super::*;
use ::http::header::RANGE;

const ETAG: &str = "\"v1-abc\"";
/// 2024-05-06T07:08:09Z and a bit: Last-Modified shows the whole second.
const LM_SECS: u64 = 1_714_979_289;
const LM_DATE: &str = "Mon, 06 May 2024 07:08:09 GMT";
const EARLIER: &str = "Mon, 06 May 2024 07:08:08 GMT";
const LATER: &str = "Mon, 06 May 2024 07:08:10 GMT";

fn validators() -> Validators {
    Validators {
        etag: ETAG.to_owned(),
        last_modified: UNIX_EPOCH + Duration::from_millis(LM_SECS * 1000 + 750),
    }
}

fn eval_method(method: Method, headers: &[(HeaderName, &str)]) -> Precondition {
    let mut map = HeaderMap::new();
    for (name, value) in headers {
        map.append(name.clone(), HeaderValue::from_str(value).unwrap());
    }
    evaluate_preconditions(&method, &map, &validators())
}

fn eval(headers: &[(HeaderName, &str)]) -> Precondition {
    eval_method(Method::GET, headers)
}

const GO: Precondition = Precondition::Proceed { honor_range: true };
const FULL: Precondition = Precondition::Proceed { honor_range: false };
const NOT_MODIFIED: Precondition = Precondition::NotModified;
const FAILED: Precondition = Precondition::Failed;

#[test]
fn no_conditions_proceed() {
    assert_eq!(eval(&[]), GO);
    assert_eq!(eval(&[(RANGE, "bytes=0-1")]), GO);
}

#[test]
fn if_match_weak_tag_fails_strong_comparison() {
    assert_eq!(eval(&[(IF_MATCH, "W/\"v1-abc\"")]), FAILED);
}

#[test]
fn if_match_malformed_fails() {
    for value in [
        "v1-abc",
        "\"v1-abc",
        "w/\"v1-abc\"",
        "W/ \"v1-abc\"",
        "\"v1-abc\" x",
        "*, \"v1-abc\"",
        "**",
        "\"a\"\"v1-abc\"",
    ] {
        assert_eq!(eval(&[(IF_MATCH, value)]), FAILED, "{value:?}");
    }
}

#[test]
fn if_match_empty_matches_nothing() {
    assert_eq!(eval(&[(IF_MATCH, "")]), FAILED);
    assert_eq!(eval(&[(IF_MATCH, " , ,")]), FAILED);
}

#[test]
fn if_match_stale_tag_fails() {
    assert_eq!(eval(&[(IF_MATCH, "\"v0\"")]), FAILED);
    assert_eq!(eval(&[(IF_MATCH, "\"V1-ABC\"")]), FAILED);
}

#[test]
fn if_match_star_and_lists() {
    assert_eq!(eval(&[(IF_MATCH, "*")]), GO);
    assert_eq!(eval(&[(IF_MATCH, " * ")]), GO);
    assert_eq!(eval(&[(IF_MATCH, ETAG)]), GO);
    assert_eq!(eval(&[(IF_MATCH, "\"x\", W/\"y\",\t\"v1-abc\" ,")]), GO);
    assert_eq!(eval(&[(IF_MATCH, "\"x,y\",\"v1-abc\"")]), GO);
    // Several field lines form one list.
    assert_eq!(eval(&[(IF_MATCH, "\"x\""), (IF_MATCH, ETAG)]), GO);
    assert_eq!(eval(&[(IF_MATCH, "*"), (IF_MATCH, ETAG)]), FAILED);
}

#[test]
fn if_unmodified_since_is_ignored_when_if_match_present() {
    assert_eq!(
        eval(&[(IF_MATCH, ETAG), (IF_UNMODIFIED_SINCE, EARLIER)]),
        GO
    );
    assert_eq!(
        eval(&[(IF_MATCH, "\"v0\""), (IF_UNMODIFIED_SINCE, LATER)]),
        FAILED
    );
}

#[test]
fn if_unmodified_since() {
    assert_eq!(eval(&[(IF_UNMODIFIED_SINCE, EARLIER)]), FAILED);
    assert_eq!(eval(&[(IF_UNMODIFIED_SINCE, LM_DATE)]), GO);
    assert_eq!(eval(&[(IF_UNMODIFIED_SINCE, LATER)]), GO);
    // Obsolete formats must be accepted too (RFC 9110 §5.6.7).
    assert_eq!(
        eval(&[(IF_UNMODIFIED_SINCE, "Monday, 06-May-24 07:08:08 GMT")]),
        FAILED
    );
    assert_eq!(
        eval(&[(IF_UNMODIFIED_SINCE, "Mon May  6 07:08:08 2024")]),
        FAILED
    );
}

#[test]
fn invalid_dates_are_ignored() {
    for bad in [
        "yesterday",
        "",
        "Mon, 06 May 2024 07:08:08",
        "Tue, 06 May 2024 07:08:08 GMT", // wrong weekday
        "Mon, 06 May 2024 07:08:08 GMT, Mon, 06 May 2024 07:08:08 GMT",
        "1714979288",
    ] {
        assert_eq!(eval(&[(IF_UNMODIFIED_SINCE, bad)]), GO, "IUS {bad:?}");
        assert_eq!(eval(&[(IF_MODIFIED_SINCE, bad)]), GO, "IMS {bad:?}");
    }
    // Repeated singleton fields are a list of dates: ignored.
    assert_eq!(
        eval(&[
            (IF_UNMODIFIED_SINCE, EARLIER),
            (IF_UNMODIFIED_SINCE, EARLIER)
        ]),
        GO
    );
    assert_eq!(
        eval(&[(IF_MODIFIED_SINCE, LATER), (IF_MODIFIED_SINCE, LATER)]),
        GO
    );
}

#[test]
fn if_none_match_star_and_tags() {
    assert_eq!(eval(&[(IF_NONE_MATCH, "*")]), NOT_MODIFIED);
    assert_eq!(eval(&[(IF_NONE_MATCH, ETAG)]), NOT_MODIFIED);
    assert_eq!(eval(&[(IF_NONE_MATCH, "\"v0\"")]), GO);
    assert_eq!(
        eval_method(Method::HEAD, &[(IF_NONE_MATCH, ETAG)]),
        NOT_MODIFIED
    );
    // Other methods get 412 instead of 304.
    assert_eq!(eval_method(Method::PUT, &[(IF_NONE_MATCH, "*")]), FAILED);
    assert_eq!(
        eval_method(Method::DELETE, &[(IF_NONE_MATCH, ETAG)]),
        FAILED
    );
}

#[test]
fn if_none_match_weak_tag_in_list_matches_weakly() {
    assert_eq!(
        eval(&[(IF_NONE_MATCH, "\"a\", W/\"v1-abc\"")]),
        NOT_MODIFIED
    );
    assert_eq!(eval(&[(IF_NONE_MATCH, "W/\"v0\", W/\"a\"")]), GO);
}

#[test]
fn if_none_match_malformed_matches_nothing() {
    assert_eq!(eval(&[(IF_NONE_MATCH, "v1-abc")]), GO);
    assert_eq!(eval(&[(IF_NONE_MATCH, "\"v1-abc\" \"x\"")]), GO);
    assert_eq!(eval(&[(IF_NONE_MATCH, "*, \"v1-abc\"")]), GO);
}

#[test]
fn if_modified_since_equal_older_newer() {
    assert_eq!(eval(&[(IF_MODIFIED_SINCE, LM_DATE)]), NOT_MODIFIED);
    assert_eq!(eval(&[(IF_MODIFIED_SINCE, LATER)]), NOT_MODIFIED);
    assert_eq!(eval(&[(IF_MODIFIED_SINCE, EARLIER)]), GO);
    assert_eq!(
        eval_method(Method::HEAD, &[(IF_MODIFIED_SINCE, LM_DATE)]),
        NOT_MODIFIED
    );
}

#[test]
fn if_modified_since_only_for_get_and_head() {
    assert_eq!(
        eval_method(Method::POST, &[(IF_MODIFIED_SINCE, LATER)]),
        FULL
    );
}

#[test]
fn if_modified_since_is_ignored_when_if_none_match_present() {
    assert_eq!(
        eval(&[(IF_NONE_MATCH, "\"v0\""), (IF_MODIFIED_SINCE, LATER)]),
        GO
    );
    assert_eq!(
        eval(&[(IF_NONE_MATCH, "v0"), (IF_MODIFIED_SINCE, LATER)]),
        GO
    );
}

#[test]
fn order_412_before_304() {
    assert_eq!(eval(&[(IF_MATCH, "\"v0\""), (IF_NONE_MATCH, ETAG)]), FAILED);
    assert_eq!(
        eval(&[(IF_UNMODIFIED_SINCE, EARLIER), (IF_MODIFIED_SINCE, LATER)]),
        FAILED
    );
    assert_eq!(
        eval(&[(IF_MATCH, ETAG), (IF_NONE_MATCH, ETAG)]),
        NOT_MODIFIED
    );
}

#[test]
fn if_range_stale_or_weak_etag_sends_full() {
    assert_eq!(eval(&[(RANGE, "bytes=0-1"), (IF_RANGE, "\"v0\"")]), FULL);
    assert_eq!(
        eval(&[(RANGE, "bytes=0-1"), (IF_RANGE, "W/\"v1-abc\"")]),
        FULL
    );
    assert_eq!(eval(&[(RANGE, "bytes=0-1"), (IF_RANGE, ETAG)]), GO);
    assert_eq!(
        eval(&[(RANGE, "bytes=0-1"), (IF_RANGE, " \"v1-abc\" ")]),
        GO
    );
}

#[test]
fn if_range_malformed_or_repeated_sends_full() {
    for bad in [
        "v1-abc",
        "\"v1-abc\", \"x\"",
        "\"v1-abc",
        "*",
        "garbage",
        "",
    ] {
        assert_eq!(
            eval(&[(RANGE, "bytes=0-1"), (IF_RANGE, bad)]),
            FULL,
            "{bad:?}"
        );
    }
    assert_eq!(
        eval(&[(RANGE, "bytes=0-1"), (IF_RANGE, ETAG), (IF_RANGE, ETAG)]),
        FULL
    );
}

#[test]
fn if_range_date_must_equal_last_modified() {
    assert_eq!(eval(&[(RANGE, "bytes=0-1"), (IF_RANGE, LM_DATE)]), GO);
    assert_eq!(eval(&[(RANGE, "bytes=0-1"), (IF_RANGE, EARLIER)]), FULL);
    assert_eq!(eval(&[(RANGE, "bytes=0-1"), (IF_RANGE, LATER)]), FULL);
}

#[test]
fn if_range_without_range_or_on_head_is_ignored() {
    assert_eq!(eval(&[(IF_RANGE, "\"v0\"")]), GO);
    // Range is only defined for GET: never honored on HEAD.
    assert_eq!(eval_method(Method::HEAD, &[(RANGE, "bytes=0-1")]), FULL);
    assert_eq!(
        eval_method(Method::HEAD, &[(RANGE, "bytes=0-1"), (IF_RANGE, ETAG)]),
        FULL
    );
}

#[test]
fn bits_resume_with_if_unmodified_since() {
    let headers = [(RANGE, "bytes=100-"), (IF_UNMODIFIED_SINCE, LM_DATE)];
    assert_eq!(eval(&headers), GO);
    let headers = [(RANGE, "bytes=100-"), (IF_UNMODIFIED_SINCE, EARLIER)];
    assert_eq!(eval(&headers), FAILED);
}

#[test]
fn obs_text_in_tags_is_allowed() {
    // UTF-8 bytes are obs-text on the wire; they compare byte for byte.
    let v = Validators {
        etag: "\"\u{e9}t\u{e9}\"".to_owned(),
        ..validators()
    };
    let mut map = HeaderMap::new();
    map.insert(
        IF_NONE_MATCH,
        HeaderValue::from_bytes("\"x\", \"\u{e9}t\u{e9}\"".as_bytes()).unwrap(),
    );
    assert_eq!(evaluate_preconditions(&Method::GET, &map, &v), NOT_MODIFIED);
    assert_eq!(
        evaluate_preconditions(&Method::GET, &map, &validators()),
        GO
    );
    // Latin-1 bytes are not the UTF-8 ones.
    map.insert(
        IF_NONE_MATCH,
        HeaderValue::from_bytes(b"\"\xe9t\xe9\"").unwrap(),
    );
    assert_eq!(evaluate_preconditions(&Method::GET, &map, &v), GO);
}

#[test]
fn own_weak_etag_never_matches_strongly() {
    let v = Validators {
        etag: "W/\"v1-abc\"".to_owned(),
        ..validators()
    };
    let mut map = HeaderMap::new();
    map.insert(IF_MATCH, HeaderValue::from_static("W/\"v1-abc\""));
    assert_eq!(evaluate_preconditions(&Method::GET, &map, &v), FAILED);
    map.clear();
    map.insert(IF_NONE_MATCH, HeaderValue::from_static("\"v1-abc\""));
    assert_eq!(evaluate_preconditions(&Method::GET, &map, &v), NOT_MODIFIED);
}

#[test]
fn http_date_formats_and_clamps() {
    assert_eq!(http_date(validators().last_modified), LM_DATE);
    assert_eq!(http_date(UNIX_EPOCH), "Thu, 01 Jan 1970 00:00:00 GMT");
    assert_eq!(
        http_date(UNIX_EPOCH - Duration::from_secs(86_400)),
        "Thu, 01 Jan 1970 00:00:00 GMT"
    );
    let far = UNIX_EPOCH + Duration::from_secs(LAST_HTTP_DATE_SECS * 2);
    assert_eq!(http_date(far), "Fri, 31 Dec 9999 23:59:59 GMT");
}

#[test]
fn pre_epoch_mtime_compares_as_shown() {
    let v = Validators {
        etag: ETAG.to_owned(),
        last_modified: UNIX_EPOCH - Duration::from_secs(10),
    };
    let mut map = HeaderMap::new();
    map.insert(IF_MODIFIED_SINCE, http_date(v.last_modified));
    assert_eq!(evaluate_preconditions(&Method::GET, &map, &v), NOT_MODIFIED);
}
