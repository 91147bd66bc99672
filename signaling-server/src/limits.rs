//! Per-connection event rate limiting and payload bounds.

use std::time::Instant;

use classroom_wire::ErrorCode;

use crate::error::Refusal;

/// A token bucket: `rate` events per second on average, bursts up to `burst`.
#[derive(Debug)]
pub(crate) struct TokenBucket {
    tokens: f64,
    last: Instant,
    /// Events refused since the last refusal that was reported to the client.
    unreported_drops: u32,
    last_report: Option<Instant>,
}

/// What to do with an event under the rate limit.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum RateDecision {
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

    /// Refusals since the last one reported to the client, which was less than a second ago
    /// unless this is the first refusal in a while.
    pub(crate) fn refused_unreported(&self) -> u32 {
        self.unreported_drops
    }

    /// Counts a refusal made for another reason (too many events waiting), reported to the
    /// client at the same pace as the rate limit's own.
    pub(crate) fn refuse(&mut self, now: Instant) -> RateDecision {
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
pub(crate) fn check_text(
    field: &str,
    value: &str,
    max: usize,
    required: bool,
) -> Result<(), Refusal> {
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

/// Whose events a [`SharedRates`] bucket counts.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum RateKey {
    Address(std::net::IpAddr),
    User(std::sync::Arc<str>),
}

/// Token buckets shared by every socket of one address or one signed-in user, so that opening
/// more sockets does not buy more events. A bucket lives while a socket holds it.
pub(crate) struct SharedRates {
    buckets: dashmap::DashMap<RateKey, std::sync::Arc<parking_lot::Mutex<TokenBucket>>>,
    rate: f64,
    burst: f64,
}

/// One socket's hold on a shared bucket.
pub(crate) struct SharedRate {
    registry: std::sync::Arc<SharedRates>,
    key: RateKey,
    bucket: std::sync::Arc<parking_lot::Mutex<TokenBucket>>,
}

impl SharedRates {
    /// `rate` 0 turns the shared limit off.
    pub fn new(rate: f64, burst: f64) -> std::sync::Arc<Self> {
        std::sync::Arc::new(SharedRates {
            buckets: dashmap::DashMap::new(),
            rate,
            burst,
        })
    }

    /// The bucket of `key`, made full when no socket holds it yet; `None` when the limit is off.
    pub fn hold(self: &std::sync::Arc<Self>, key: RateKey, now: Instant) -> Option<SharedRate> {
        if self.rate <= 0.0 {
            return None;
        }
        let bucket = self
            .buckets
            .entry(key.clone())
            .or_insert_with(|| {
                std::sync::Arc::new(parking_lot::Mutex::new(TokenBucket::new(self.burst, now)))
            })
            .clone();
        Some(SharedRate {
            registry: self.clone(),
            key,
            bucket,
        })
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.buckets.len()
    }
}

impl SharedRate {
    pub fn take(&self, now: Instant) -> RateDecision {
        let rates = &self.registry;
        self.bucket.lock().take(rates.rate, rates.burst, now)
    }

    pub fn key(&self) -> &RateKey {
        &self.key
    }
}

impl Drop for SharedRate {
    fn drop(&mut self) {
        // The map's and this one: the last socket of that address or user is going.
        self.registry.buckets.remove_if(&self.key, |_, bucket| {
            std::sync::Arc::strong_count(bucket) <= 2
        });
    }
}

#[cfg(test)]
mod shared_tests {
    use super::*;

    #[test]
    fn sockets_of_one_address_share_one_burst_and_the_bucket_goes_with_the_last() {
        let now = Instant::now();
        let rates = SharedRates::new(1.0, 3.0);
        let key = RateKey::Address("198.51.100.7".parse().unwrap());
        let first = rates.hold(key.clone(), now).unwrap();
        let second = rates.hold(key.clone(), now).unwrap();
        assert_eq!(first.take(now), RateDecision::Allow);
        assert_eq!(second.take(now), RateDecision::Allow);
        assert_eq!(first.take(now), RateDecision::Allow);
        assert_ne!(
            second.take(now),
            RateDecision::Allow,
            "a new socket brings no fresh burst"
        );
        let other = rates.hold(RateKey::User("ada".into()), now).unwrap();
        assert_eq!(
            other.take(now),
            RateDecision::Allow,
            "others have their own"
        );
        drop(first);
        assert_eq!(rates.len(), 2);
        drop(second);
        drop(other);
        assert_eq!(rates.len(), 0);
        assert!(
            SharedRates::new(0.0, 1.0).hold(key, now).is_none(),
            "0 turns it off"
        );
    }
}
