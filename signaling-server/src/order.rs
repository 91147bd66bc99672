//! A socket's events, handled one at a time in the order they arrived, with the rate limit
//! and a bound on waiting events applied on arrival, before anything waits.
//!
//! socketioxide runs every event handler as a task of its own, so two events of one socket (an
//! offer and its ICE candidates) could be handled, and relayed, out of order. Each event takes
//! a [`Place`] synchronously while socketioxide dispatches it (the `Arrival` extractor), then
//! waits for its [`Turn`]. An event over the rate, or beyond [`MAX_WAITING`] already waiting,
//! is refused at once and never waits. A finished turn wakes only the next event in line.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Instant;

use parking_lot::Mutex;
use tokio::sync::oneshot;

use crate::limits::{RateDecision, RateKey, SharedRate, TokenBucket};

/// Events of one socket that may wait for their turn; more are refused. An offer and its ICE
/// candidates in one polling request are a few dozen.
pub(crate) const MAX_WAITING: usize = 128;

pub(crate) struct EventQueue {
    state: Mutex<QueueState>,
    rate: f64,
    burst: f64,
    /// The buckets this socket shares with the other sockets of its address and of its user.
    shared: [Option<SharedRate>; 2],
}

struct QueueState {
    /// An event holds the turn.
    busy: bool,
    /// The events waiting, in arrival order: each is woken by the turn before it.
    waiting: VecDeque<oneshot::Sender<()>>,
    bucket: TokenBucket,
}

/// Why an event was refused on arrival; the decision says whether to tell the client now.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Refused {
    /// More than the rate allows.
    Rate(RateDecision),
    /// More than the rate of all the sockets of this address, or of this user, allows.
    Shared(RateDecision, RateKey),
    /// [`MAX_WAITING`] events of this socket were already waiting.
    Backlog(RateDecision),
}

/// An event's place in its socket's order.
pub(crate) enum Place {
    Ready(Turn),
    Waiting(oneshot::Receiver<()>, Arc<EventQueue>),
    Refused(Refused),
}

/// Holding the socket's turn; dropping it hands the turn to the next event in line.
pub(crate) struct Turn {
    queue: Arc<EventQueue>,
}

impl EventQueue {
    pub(crate) fn new(
        rate: f64,
        burst: f64,
        now: Instant,
        shared: [Option<SharedRate>; 2],
    ) -> Arc<Self> {
        Arc::new(EventQueue {
            state: Mutex::new(QueueState {
                busy: false,
                waiting: VecDeque::new(),
                bucket: TokenBucket::new(burst, now),
            }),
            rate,
            burst,
            shared,
        })
    }

    /// A place for an event arriving now: refused over the rate or when too many wait.
    pub(crate) fn arrive(self: &Arc<Self>, now: Instant) -> Place {
        let mut state = self.state.lock();
        match state.bucket.take(self.rate, self.burst, now) {
            RateDecision::Allow => {}
            refused => return Place::Refused(Refused::Rate(refused)),
        }
        for shared in self.shared.iter().flatten() {
            if shared.take(now) != RateDecision::Allow {
                // Told to the client at this socket's own reporting pace.
                let decision = state.bucket.refuse(now);
                return Place::Refused(Refused::Shared(decision, shared.key().clone()));
            }
        }
        if state.waiting.len() >= MAX_WAITING {
            return Place::Refused(Refused::Backlog(state.bucket.refuse(now)));
        }
        self.queue_up(&mut state)
    }

    /// A place that is never refused: the disconnect, which must come after every event.
    pub(crate) fn last(self: &Arc<Self>) -> Place {
        let mut state = self.state.lock();
        self.queue_up(&mut state)
    }

    fn queue_up(self: &Arc<Self>, state: &mut QueueState) -> Place {
        if !state.busy {
            state.busy = true;
            return Place::Ready(Turn {
                queue: self.clone(),
            });
        }
        let (tx, rx) = oneshot::channel();
        state.waiting.push_back(tx);
        Place::Waiting(rx, self.clone())
    }

    #[cfg(test)]
    fn waiting(&self) -> usize {
        self.state.lock().waiting.len()
    }
}

impl Place {
    /// Waits until every event that arrived before this one was handled.
    pub(crate) async fn turn(self) -> Result<Turn, Refused> {
        match self {
            Place::Ready(turn) => Ok(turn),
            Place::Waiting(rx, queue) => {
                // The sender goes only with a turn handed over (or, never, with the queue).
                let _ = rx.await;
                Ok(Turn { queue })
            }
            Place::Refused(refused) => Err(refused),
        }
    }
}

impl Drop for Turn {
    fn drop(&mut self) {
        let mut state = self.queue.state.lock();
        // The next in line whose handler still waits; one that was dropped is skipped.
        while let Some(next) = state.waiting.pop_front() {
            if next.send(()).is_ok() {
                return;
            }
        }
        state.busy = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn queue(burst: f64) -> (Arc<EventQueue>, Instant) {
        let now = Instant::now();
        (EventQueue::new(10.0, burst, now, [None, None]), now)
    }

    #[tokio::test]
    async fn events_take_their_turns_in_arrival_order_and_each_wakes_only_the_next() {
        let (q, now) = queue(100.0);
        let first = q.arrive(now);
        let Place::Waiting(mut second, _) = q.arrive(now) else {
            panic!("the second event waits")
        };
        let Place::Waiting(mut third, _) = q.arrive(now) else {
            panic!("the third event waits")
        };
        let turn = first.turn().await.expect("admitted");
        assert!(second.try_recv().is_err() && third.try_recv().is_err());
        drop(turn);
        assert!(second.try_recv().is_ok(), "the second event's turn");
        assert!(
            third.try_recv().is_err(),
            "the third still waits: one wake-up per turn"
        );
    }

    #[tokio::test]
    async fn a_handler_dropped_while_waiting_passes_the_turn_on() {
        let (q, now) = queue(100.0);
        let first = q.arrive(now).turn().await.expect("admitted");
        let dropped = q.arrive(now);
        let third = q.arrive(now);
        drop(dropped);
        drop(first);
        let turn = tokio::time::timeout(Duration::from_secs(1), third.turn())
            .await
            .expect("the third event gets its turn")
            .expect("admitted");
        drop(turn);
        assert!(
            matches!(q.arrive(now), Place::Ready(_)),
            "the queue is idle again"
        );
    }

    #[tokio::test]
    async fn events_over_the_rate_are_refused_on_arrival_without_waiting() {
        let (q, now) = queue(3.0);
        let held = q.arrive(now).turn().await.expect("admitted");
        let _a = q.arrive(now);
        let _b = q.arrive(now);
        assert_eq!(q.waiting(), 2);
        let over = q.arrive(now);
        assert!(matches!(
            over,
            Place::Refused(Refused::Rate(RateDecision::RefuseAndReport { dropped: 1 }))
        ));
        assert_eq!(q.waiting(), 2, "a refused event takes no place in line");
        drop(held);
    }

    #[tokio::test]
    async fn sockets_of_one_user_share_its_rate() {
        let now = Instant::now();
        let rates = crate::limits::SharedRates::new(1.0, 2.0);
        let user = || rates.hold(RateKey::User("ada".into()), now);
        let one = EventQueue::new(100.0, 100.0, now, [user(), None]);
        let two = EventQueue::new(100.0, 100.0, now, [user(), None]);
        drop(one.arrive(now).turn().await.expect("admitted"));
        drop(two.arrive(now).turn().await.expect("admitted"));
        assert!(matches!(
            two.arrive(now),
            Place::Refused(Refused::Shared(_, RateKey::User(_)))
        ));
    }

    #[tokio::test]
    async fn no_more_than_max_waiting_events_wait() {
        let (q, now) = queue(10_000.0);
        let _held = q.arrive(now).turn().await.expect("admitted");
        let places: Vec<Place> = (0..MAX_WAITING).map(|_| q.arrive(now)).collect();
        assert_eq!(q.waiting(), MAX_WAITING);
        assert!(matches!(q.arrive(now), Place::Refused(Refused::Backlog(_))));
        // The disconnect always gets a place, after everything.
        assert!(matches!(q.last(), Place::Waiting(..)));
        drop(places);
    }
}
