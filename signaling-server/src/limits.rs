//! Per-connection event rate limiting and payload bounds.

use std::time::Instant;

use classroom_wire::ErrorCode;

use crate::error::Refusal;

/// A token bucket: `rate` events per second on average, bursts up to `burst`.
#[derive(Debug)]
pub struct TokenBucket {
    tokens: f64,
    last: Instant,
    /// Events refused since the last refusal that was reported to the client.
    unreported_drops: u32,
    last_report: Option<Instant>,
}

/// What to do with an event under the rate limit.
#[derive(Debug, PartialEq, Eq)]
pub enum RateDecision {
    Allow,
    /// Refuse and tell the client (with how many were refused since the last report).
    RefuseAndReport {
        dropped: u32,
    },
    /// Refuse; the client was told less than a second ago and will hear the count next time.
    RefuseQuietly,
}

impl TokenBucket {
    pub fn new(burst: f64, now: Instant) -> Self {
        TokenBucket {
            tokens: burst,
            last: now,
            unreported_drops: 0,
            last_report: None,
        }
    }

    pub fn take(&mut self, rate: f64, burst: f64, now: Instant) -> RateDecision {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * rate).min(burst);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            return RateDecision::Allow;
        }
        self.refuse(now)
    }

    /// Counts a refusal made for another reason (too many events waiting), reported to the
    /// client at the same pace as the rate limit's own.
    pub fn refuse(&mut self, now: Instant) -> RateDecision {
        self.unreported_drops += 1;
        let due = self
            .last_report
            .is_none_or(|t| now.saturating_duration_since(t).as_secs_f64() >= 1.0);
        if due {
            self.last_report = Some(now);
            let dropped = std::mem::take(&mut self.unreported_drops);
            RateDecision::RefuseAndReport { dropped }
        } else {
            RateDecision::RefuseQuietly
        }
    }
}

/// Refuses a string field that is empty (when required) or longer than `max` characters.
pub fn check_text(field: &str, value: &str, max: usize, required: bool) -> Result<(), Refusal> {
    if required && value.trim().is_empty() {
        return Err(Refusal::new(
            ErrorCode::InvalidPayload,
            format!("{field} must not be empty"),
        ));
    }
    // Byte length bounds the character count from above; count characters only when needed.
    if value.len() > max && value.chars().count() > max {
        return Err(Refusal::new(
            ErrorCode::PayloadTooLarge,
            format!("{field} is longer than {max} characters"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_burst_passes_then_the_rate_holds_and_drops_are_counted() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(3.0, t0);
        for _ in 0..3 {
            assert_eq!(b.take(10.0, 3.0, t0), RateDecision::Allow);
        }
        assert_eq!(
            b.take(10.0, 3.0, t0),
            RateDecision::RefuseAndReport { dropped: 1 }
        );
        assert_eq!(b.take(10.0, 3.0, t0), RateDecision::RefuseQuietly);
        assert_eq!(
            b.take(10.0, 3.0, t0 + Duration::from_millis(100)),
            RateDecision::Allow
        );
        assert_eq!(
            b.take(10.0, 3.0, t0 + Duration::from_millis(100)),
            RateDecision::RefuseQuietly
        );
        assert_eq!(
            b.take(10.0, 3.0, t0 + Duration::from_millis(1000)),
            RateDecision::Allow,
            "tokens refill at the rate"
        );
        let t2 = t0 + Duration::from_millis(1000);
        for _ in 0..2 {
            b.take(10.0, 3.0, t2);
        }
        assert_eq!(
            b.take(10.0, 3.0, t2),
            RateDecision::RefuseAndReport { dropped: 3 }
        );
    }

    #[test]
    fn text_bounds() {
        assert!(check_text("message", "hi", 4, true).is_ok());
        assert_eq!(
            check_text("message", " ", 4, true).unwrap_err().code,
            ErrorCode::InvalidPayload
        );
        assert_eq!(
            check_text("message", "hello", 4, true).unwrap_err().code,
            ErrorCode::PayloadTooLarge
        );
        assert!(
            check_text("message", "éééé", 4, true).is_ok(),
            "counts characters, not bytes"
        );
    }
}
