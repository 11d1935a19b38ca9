//! Retry policy for transient failures (connection refused or cut, `503`,
//! `429`…): per source, a count of failures since its last verified chunk,
//! and a pause that doubles with it.

use std::time::Duration;

/// Failures in a row (with no verified chunk between) before a source is
/// given up, and attempts of a small document before it is.
pub const MAX_ATTEMPTS: u32 = 6;

/// Pause before attempt `n + 1` after `n` failures: 100 ms doubling, at most 1.6 s.
pub fn backoff(n: u32) -> Duration {
    Duration::from_millis(100u64.saturating_mul(1 << n.clamp(1, 5).saturating_sub(1)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_is_bounded() {
        assert_eq!(backoff(0), Duration::from_millis(100));
        assert_eq!(backoff(1), Duration::from_millis(100));
        assert_eq!(backoff(2), Duration::from_millis(200));
        assert_eq!(backoff(5), Duration::from_millis(1600));
        assert_eq!(backoff(30), Duration::from_millis(1600));
    }
}
