//! Counters and a latency histogram, rendered as Prometheus text at `/metrics`.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use classroom_wire::ErrorCode;

/// Events the server counts by name; anything else is counted as `other`.
pub(crate) const COUNTED_EVENTS: [&str; 11] = [
    classroom_wire::event::JOIN_SESSION,
    classroom_wire::event::LEAVE_SESSION,
    classroom_wire::event::OFFER,
    classroom_wire::event::ANSWER,
    classroom_wire::event::ICE_CANDIDATE,
    classroom_wire::event::MEDIA_STATE,
    classroom_wire::event::CHAT_MESSAGE,
    classroom_wire::event::SFU_OFFER,
    classroom_wire::event::SFU_ANSWER,
    classroom_wire::event::SFU_CANDIDATE,
    "other",
];

/// Upper bounds of the relay latency buckets, in microseconds.
const LATENCY_BUCKETS_US: [u64; 10] = [10, 25, 50, 100, 250, 500, 1_000, 2_500, 10_000, 100_000];

#[derive(Default)]
pub(crate) struct Metrics {
    pub sockets: AtomicI64,
    pub participants: AtomicI64,
    events: [AtomicU64; COUNTED_EVENTS.len()],
    errors: [AtomicU64; ErrorCode::ALL.len()],
    pub relayed: AtomicU64,
    pub chat_messages: AtomicU64,
    pub connect_refused: AtomicU64,
    /// Events a flooding socket sent after it was cut off, dropped unread (`order.rs`).
    pub flood_dropped: AtomicU64,
    latency_buckets: [AtomicU64; LATENCY_BUCKETS_US.len()],
    latency_count: AtomicU64,
    latency_sum_ns: AtomicU64,
}

impl Metrics {
    pub fn event(&self, name: &str) {
        let i = COUNTED_EVENTS
            .iter()
            .position(|e| *e == name)
            .unwrap_or(COUNTED_EVENTS.len() - 1);
        self.events[i].fetch_add(1, Relaxed);
    }

    pub fn error(&self, code: ErrorCode) {
        if let Some(i) = ErrorCode::ALL.iter().position(|c| *c == code) {
            self.errors[i].fetch_add(1, Relaxed);
        }
    }

    /// Time from an event's arrival in the handler until it was queued to its target.
    pub(crate) fn relay_latency(&self, d: Duration) {
        self.relayed.fetch_add(1, Relaxed);
        let us = d.as_micros() as u64;
        if let Some(i) = LATENCY_BUCKETS_US.iter().position(|b| us <= *b) {
            self.latency_buckets[i].fetch_add(1, Relaxed);
        }
        self.latency_count.fetch_add(1, Relaxed);
        self.latency_sum_ns.fetch_add(d.as_nanos() as u64, Relaxed);
    }

    /// `sessions` is the registry's live count, passed in rather than tracked twice.
    pub fn render(&self, sessions: usize) -> String {
        let mut out = String::with_capacity(4096);
        let gauge = |out: &mut String, name: &str, help: &str, v: i64| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {v}");
        };
        gauge(
            &mut out,
            "classroom_sockets",
            "Connected Socket.IO sockets.",
            self.sockets.load(Relaxed),
        );
        gauge(
            &mut out,
            "classroom_sessions",
            "Sessions with at least one participant.",
            sessions as i64,
        );
        gauge(
            &mut out,
            "classroom_participants",
            "Participants joined to a session.",
            self.participants.load(Relaxed),
        );

        let _ = writeln!(
            out,
            "# HELP classroom_events_total Events received, by name.\n# TYPE classroom_events_total counter"
        );
        for (name, n) in COUNTED_EVENTS.iter().zip(&self.events) {
            let _ = writeln!(
                out,
                "classroom_events_total{{event=\"{name}\"}} {}",
                n.load(Relaxed)
            );
        }
        let _ = writeln!(
            out,
            "# HELP classroom_errors_total Refusals sent to clients, by code.\n# TYPE classroom_errors_total counter"
        );
        for (code, n) in ErrorCode::ALL.iter().zip(&self.errors) {
            let _ = writeln!(
                out,
                "classroom_errors_total{{code=\"{code}\"}} {}",
                n.load(Relaxed)
            );
        }
        let counter = |out: &mut String, name: &str, help: &str, v: u64| {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {v}"
            );
        };
        counter(
            &mut out,
            "classroom_chat_messages_total",
            "Chat messages accepted.",
            self.chat_messages.load(Relaxed),
        );
        counter(
            &mut out,
            "classroom_connect_refused_total",
            "Handshakes refused.",
            self.connect_refused.load(Relaxed),
        );
        counter(
            &mut out,
            "classroom_flood_dropped_total",
            "Events dropped unread from sockets cut off for flooding.",
            self.flood_dropped.load(Relaxed),
        );

        let name = "classroom_relay_latency_seconds";
        let _ = writeln!(
            out,
            "# HELP {name} Server-side time to relay offer/answer/ice-candidate to its target.\n# TYPE {name} histogram"
        );
        let mut cumulative = 0;
        for (bound, n) in LATENCY_BUCKETS_US.iter().zip(&self.latency_buckets) {
            cumulative += n.load(Relaxed);
            let _ = writeln!(
                out,
                "{name}_bucket{{le=\"{}\"}} {cumulative}",
                *bound as f64 / 1e6
            );
        }
        let count = self.latency_count.load(Relaxed);
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {count}");
        let _ = writeln!(
            out,
            "{name}_sum {}",
            self.latency_sum_ns.load(Relaxed) as f64 / 1e9
        );
        let _ = writeln!(out, "{name}_count {count}");
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_a_cumulative_histogram() {
        let m = Metrics::default();
        m.event("offer");
        m.event("something-else");
        m.error(ErrorCode::RateLimited);
        m.relay_latency(Duration::from_micros(20));
        m.relay_latency(Duration::from_micros(700));
        let text = m.render(3);
        assert!(
            text.contains("classroom_sessions 3")
                && text.contains("classroom_events_total{event=\"offer\"} 1"),
            "{text}"
        );
        assert!(text.contains("classroom_events_total{event=\"other\"} 1"));
        assert!(text.contains("classroom_errors_total{code=\"rate-limited\"} 1"));
        assert!(text.contains("classroom_relay_latency_seconds_bucket{le=\"0.000025\"} 1"));
        assert!(text.contains("classroom_relay_latency_seconds_bucket{le=\"0.001\"} 2"));
        assert!(text.contains("classroom_relay_latency_seconds_count 2"));
    }
}
