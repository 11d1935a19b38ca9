//! A rate limit for all the traffic of one engine run (or of several, when
//! they share it: a replica's whole sync). A token bucket that may go into
//! debt: a reader takes the bytes it has just received and, when the bucket
//! is empty, waits until the debt is paid off before reading more. Since
//! readers stop pulling bytes, the sender is held back by flow control, so
//! the limit holds on the wire too (within the socket and HTTP/2 windows).

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Bytes per second, shared by every reader that holds it.
#[derive(Debug)]
pub struct RateLimit {
    rate: f64,
    burst: f64,
    state: Mutex<Bucket>,
}

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    last: Instant,
}

impl RateLimit {
    /// At most `bytes_per_s` on average; bursts of a twentieth of a second's
    /// worth (at least 16 KiB), so any 10 s window is within 1 % of the rate
    /// plus one burst.
    pub fn new(bytes_per_s: u64) -> RateLimit {
        let rate = bytes_per_s.max(1) as f64;
        let burst = (rate / 20.0).max(16384.0);
        RateLimit {
            rate,
            burst,
            state: Mutex::new(Bucket {
                tokens: burst,
                last: Instant::now(),
            }),
        }
    }

    /// The limit, bytes per second.
    pub fn bytes_per_s(&self) -> u64 {
        self.rate as u64
    }

    /// Account for `n` bytes; returns how long to wait before the next read.
    pub fn charge(&self, n: u64) -> Duration {
        self.charge_at(n, Instant::now())
    }

    fn charge_at(&self, n: u64, now: Instant) -> Duration {
        // A poisoned bucket only means another reader panicked mid-update;
        // its numbers are still usable.
        let mut b = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let elapsed = now.saturating_duration_since(b.last).as_secs_f64();
        b.last = now;
        b.tokens = (b.tokens + elapsed * self.rate).min(self.burst) - n as f64;
        if b.tokens >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-b.tokens / self.rate)
        }
    }

    /// Account for `n` bytes and wait as long as the limit says.
    pub async fn take(&self, n: u64) {
        let wait = self.charge(n);
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bucket_holds_the_average_and_allows_one_burst() {
        let r = RateLimit::new(1_000_000);
        let t0 = Instant::now();
        // The burst (50 KB) is free; then every byte costs a microsecond.
        assert_eq!(r.charge_at(50_000, t0), Duration::ZERO);
        let w = r.charge_at(100_000, t0);
        assert!((w.as_secs_f64() - 0.1).abs() < 1e-6, "{w:?}");
        // A reader that waited exactly that long owes nothing more.
        let t1 = t0 + w;
        assert_eq!(r.charge_at(0, t1), Duration::ZERO);
        // 10 s of one reader taking 10 KB at a time, sleeping as told:
        // the bytes moved stay within the rate plus one burst.
        let mut now = t1;
        let mut moved = 0u64;
        while now < t1 + Duration::from_secs(10) {
            moved += 10_000;
            now += r.charge_at(10_000, now);
        }
        let expected = 10_000_000.0;
        assert!(
            (moved as f64 - expected).abs() <= 60_000.0 + 10_000.0,
            "{moved}"
        );
        assert_eq!(RateLimit::new(0).bytes_per_s(), 1);
    }
}
