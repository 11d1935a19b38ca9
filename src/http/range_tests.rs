//! Tests of [`super`]: RFC 9110 §14 ranges, negative cases first.

use super::*;

fn plan(header: &str, size: u64) -> RangePlan {
    plan_range(Some(&HeaderValue::from_str(header).unwrap()), size)
}

fn r(start: u64, end: u64) -> ByteRange {
    ByteRange { start, end }
}

#[test]
fn malformed_headers_are_ignored() {
    for h in [
        "bytes=5-2",
        "bytes=abc",
        "bytes=",
        "bytes=-",
        "bytes=--5",
        "bytes=1-2-3",
        "bytes=+1-2",
        "bytes=-1-2",
        "bytes=0-1,abc",
        "bytes=0-1, 5-2",
        "bytes =0-1",
        "bytes",
        "=0-1",
        "0-1",
        "bytes=0 -1",
        "bytes=0-1\t",
        "",
    ] {
        assert_eq!(plan(h, 1000), RangePlan::Full, "{h:?}");
    }
}

#[test]
fn other_units_are_ignored() {
    assert_eq!(plan("items=0-1", 1000), RangePlan::Full);
    assert_eq!(plan("byte=0-1", 1000), RangePlan::Full);
    assert_eq!(plan("none", 1000), RangePlan::Full);
}

#[test]
fn non_ascii_header_is_ignored() {
    let v = HeaderValue::from_bytes(b"bytes=0-1\xff").unwrap();
    assert_eq!(plan_range(Some(&v), 1000), RangePlan::Full);
}

#[test]
fn no_header_is_full() {
    assert_eq!(plan_range(None, 1000), RangePlan::Full);
    assert_eq!(plan_range(None, 0), RangePlan::Full);
}

#[test]
fn zero_suffix_is_unsatisfiable_but_others_are_kept() {
    assert_eq!(plan("bytes=-0", 1000), RangePlan::Unsatisfiable);
    assert_eq!(plan("bytes=-0, 0-9", 1000), RangePlan::Single(r(0, 10)));
}

#[test]
fn empty_file_is_always_unsatisfiable() {
    for h in [
        "bytes=0-",
        "bytes=0-0",
        "bytes=-1",
        "bytes=-500",
        "bytes=0-0, -1",
    ] {
        assert_eq!(plan(h, 0), RangePlan::Unsatisfiable, "{h:?}");
    }
    // Malformed stays ignored, even on an empty file.
    assert_eq!(plan("bytes=5-2", 0), RangePlan::Full);
}

#[test]
fn first_pos_at_or_past_eof_is_unsatisfiable() {
    assert_eq!(plan("bytes=1000-", 1000), RangePlan::Unsatisfiable);
    assert_eq!(plan("bytes=1000-2000", 1000), RangePlan::Unsatisfiable);
    assert_eq!(
        plan("bytes=2000-3000, 1000-", 1000),
        RangePlan::Unsatisfiable
    );
    assert_eq!(plan("bytes=999-", 1000), RangePlan::Single(r(999, 1000)));
}

#[test]
fn unsatisfiable_members_are_dropped_from_a_set() {
    assert_eq!(
        plan("bytes=5000-6000, 10-19", 1000),
        RangePlan::Single(r(10, 20))
    );
    assert_eq!(
        plan("bytes=5000-, 10-19, 30-39", 1000),
        RangePlan::Multi(vec![r(10, 20), r(30, 40)])
    );
}

#[test]
fn huge_numbers_clamp_instead_of_overflowing() {
    let big = "99999999999999999999999"; // > u64::MAX, < 30 digits
    assert_eq!(
        plan(&format!("bytes=0-{big}"), 1000),
        RangePlan::Single(r(0, 1000))
    );
    assert_eq!(
        plan(&format!("bytes={big}-"), 1000),
        RangePlan::Unsatisfiable
    );
    assert_eq!(
        plan(&format!("bytes=-{big}"), 1000),
        RangePlan::Single(r(0, 1000))
    );
    let max = u64::MAX;
    assert_eq!(
        plan(&format!("bytes=0-{max}"), max),
        RangePlan::Single(r(0, max))
    );
    assert_eq!(
        plan(&format!("bytes=-{max}"), max),
        RangePlan::Single(r(0, max))
    );
    assert_eq!(
        plan(&format!("bytes={}-", max - 1), max),
        RangePlan::Single(r(max - 1, max))
    );
    // More than 30 digits is refused by the parser: ignored.
    assert_eq!(
        plan(&format!("bytes=0-{}", "9".repeat(31)), 1000),
        RangePlan::Full
    );
}

#[test]
fn suffix_and_open_ranges() {
    assert_eq!(plan("bytes=-500", 1000), RangePlan::Single(r(500, 1000)));
    assert_eq!(plan("bytes=-5000", 1000), RangePlan::Single(r(0, 1000)));
    assert_eq!(plan("bytes=500-", 1000), RangePlan::Single(r(500, 1000)));
    assert_eq!(plan("bytes=0-", 1000), RangePlan::Single(r(0, 1000)));
    assert_eq!(plan("bytes=0-0", 1), RangePlan::Single(r(0, 1)));
    assert_eq!(
        plan("bytes=900-5000", 1000),
        RangePlan::Single(r(900, 1000))
    );
}

#[test]
fn rfc_9110_leniencies() {
    assert_eq!(plan("Bytes=0-9", 1000), RangePlan::Single(r(0, 10)));
    assert_eq!(plan("bytes=007-009", 1000), RangePlan::Single(r(7, 10)));
    assert_eq!(
        plan("bytes=0-1 ,, \t, 5-6", 1000),
        RangePlan::Multi(vec![r(0, 2), r(5, 7)])
    );
}

#[test]
fn overlapping_and_adjacent_ranges_merge() {
    assert_eq!(
        plan("bytes=0-99, 50-149", 1000),
        RangePlan::Single(r(0, 150))
    );
    assert_eq!(
        plan("bytes=0-99, 100-199", 1000),
        RangePlan::Single(r(0, 200))
    );
    assert_eq!(
        plan("bytes=0-99, 10-19", 1000),
        RangePlan::Single(r(0, 100))
    );
    assert_eq!(
        plan("bytes=0-0, 0-0, 0-0", 1000),
        RangePlan::Single(r(0, 1))
    );
    assert_eq!(plan("bytes=-100, 0-", 1000), RangePlan::Single(r(0, 1000)));
    assert_eq!(
        plan("bytes=500-599, 0-9, 550-700, 8-20", 1000),
        RangePlan::Multi(vec![r(0, 21), r(500, 701)])
    );
}

#[test]
fn multi_is_sorted() {
    assert_eq!(
        plan("bytes=-10, 0-9, 100-109", 1000),
        RangePlan::Multi(vec![r(0, 10), r(100, 110), r(990, 1000)])
    );
}

fn disjoint(n: u64) -> String {
    let specs: Vec<String> = (0..n)
        .map(|i| format!("{}-{}", i * 10, i * 10 + 4))
        .collect();
    format!("bytes={}", specs.join(","))
}

#[test]
fn seventeen_disjoint_ranges_are_ignored() {
    assert_eq!(plan(&disjoint(17), 1000), RangePlan::Full);
    match plan(&disjoint(16), 1000) {
        RangePlan::Multi(v) => assert_eq!(v.len(), MAX_RANGES),
        other => panic!("{other:?}"),
    }
}

#[test]
fn seventeen_ranges_that_merge_to_sixteen_are_served() {
    let header = format!("{},0-2", disjoint(16));
    match plan(&header, 1000) {
        RangePlan::Multi(v) => {
            assert_eq!(v.len(), 16);
            assert_eq!(v[0], r(0, 5));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn more_than_one_hundred_specs_are_ignored() {
    let header = format!("bytes={}", vec!["0-0"; 101].join(","));
    assert_eq!(plan(&header, 1000), RangePlan::Full);
}

/// Deterministic pseudo-random headers, checked against a brute-force model:
/// a plan covers exactly the bytes the specs select, in at most one pass.
#[test]
fn plans_match_a_brute_force_model() {
    let mut seed = 0x9E37_79B9_7F4A_7C15_u64;
    let mut next = move |m: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % m
    };
    // Full, Unsatisfiable, Single, Multi: each must come out at least once.
    let mut seen = [0usize; 4];
    for _ in 0..2000 {
        let size = next(3000);
        let mut wanted = vec![false; size as usize];
        let mut select = |from: u64, to: u64| {
            for b in from..to.min(size) {
                wanted[b as usize] = true;
            }
        };
        // Mostly short closed ranges, so that multi-range plans are common.
        let specs: Vec<String> = (0..1 + next(25))
            .map(|_| match next(10) {
                0 => {
                    let n = next(100);
                    select(size.saturating_sub(n), size);
                    format!("-{n}")
                }
                1 => {
                    let a = next(3100);
                    select(a, size);
                    format!("{a}-")
                }
                _ => {
                    let (a, len) = (next(3100), next(60));
                    select(a, a + len + 1);
                    format!("{a}-{}", a + len)
                }
            })
            .collect();
        let header = format!("bytes={}", specs.join(", "));
        // Maximal runs of wanted bytes: what merging must produce.
        let mut runs = Vec::new();
        for (i, &w) in wanted.iter().enumerate() {
            match (w, runs.last_mut()) {
                (true, Some(ByteRange { end, .. })) if *end == i as u64 => *end += 1,
                (true, _) => runs.push(r(i as u64, i as u64 + 1)),
                (false, _) => {}
            }
        }
        let got = plan(&header, size);
        let expected = match runs.len() {
            0 => RangePlan::Unsatisfiable,
            1 => RangePlan::Single(runs[0]),
            n if n <= MAX_RANGES => RangePlan::Multi(runs.clone()),
            _ => RangePlan::Full,
        };
        assert_eq!(got, expected, "{header} on {size}");
        seen[match got {
            RangePlan::Full => 0,
            RangePlan::Unsatisfiable => 1,
            RangePlan::Single(_) => 2,
            RangePlan::Multi(_) => 3,
        }] += 1;
    }
    assert!(seen.iter().all(|&n| n > 0), "{seen:?}");
}

#[test]
fn content_range_values() {
    assert_eq!(content_range(r(0, 100), 1000), "bytes 0-99/1000");
    assert_eq!(content_range(r(999, 1000), 1000), "bytes 999-999/1000");
    assert_eq!(
        content_range(r(0, u64::MAX), u64::MAX),
        "bytes 0-18446744073709551614/18446744073709551615"
    );
    assert_eq!(unsatisfied_range(1000), "bytes */1000");
    assert_eq!(unsatisfied_range(0), "bytes */0");
}

#[test]
fn byte_range_len() {
    assert_eq!(r(5, 10).len(), 5);
    assert!(!r(5, 10).is_empty());
}
