//! The media clock: wall-clock time in microseconds modulo 2^40 (about 12.7 days), the same in
//! every process of a machine. Frame stamps carry capture times on this clock, so a receiver in
//! another process measures glass-to-glass latency by subtracting the stamp from its own `now`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The clock wraps after this many microseconds (the width of a frame stamp's time field).
pub(crate) const WRAP_MICROS: u64 = 1 << 40;

/// Now, on the media clock.
pub fn now() -> Duration {
    let micros = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|since| since.as_micros() as u64)
        .unwrap_or(0);
    Duration::from_micros(micros % WRAP_MICROS)
}

/// Time from `earlier` to `later` on the media clock, across a wrap.
pub fn between(earlier: Duration, later: Duration) -> Duration {
    let earlier = earlier.as_micros() as u64 % WRAP_MICROS;
    let later = later.as_micros() as u64 % WRAP_MICROS;
    Duration::from_micros((later + WRAP_MICROS - earlier) % WRAP_MICROS)
}

/// How long ago `capture_time` (on the media clock) was.
pub fn age(capture_time: Duration) -> Duration {
    between(capture_time, now())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn between_counts_across_the_wrap() {
        let before_wrap = Duration::from_micros(WRAP_MICROS - 1_000);
        let after_wrap = Duration::from_micros(500);
        assert_eq!(
            between(before_wrap, after_wrap),
            Duration::from_micros(1_500)
        );
    }

    #[test]
    fn age_of_now_is_small() {
        assert!(age(now()) < Duration::from_millis(100));
    }
}
