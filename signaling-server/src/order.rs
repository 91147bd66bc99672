//! A socket's events, handled one at a time in the order they arrived, with the rate limit
//! and a bound on waiting events applied on arrival, before anything waits.
//!
//! socketioxide runs every event handler as a task of its own, so two events of one socket (an
//! offer and its ICE candidates) could be handled, and relayed, out of order. Each event takes
//! a numbered [`Place`] synchronously while socketioxide dispatches it (the `Arrival`
//! extractor); its task then waits for its [`Turn`]. An event over the rate, or beyond
//! [`MAX_WAITING`] already admitted and unfinished, is refused at once and never waits.
//!
//! Waiting costs nothing when tasks run in arrival order (the usual case): a task whose number
//! is being served goes on without registering anything. One that runs early leaves its waker
//! under its number, and a finished turn wakes only that one, the next in line.
//!
//! A socket that goes on sending after [`FLOOD_REFUSALS`] refusals within a second is a
//! flood, not a client: it is told and disconnected, and what it sent after is dropped.

use std::collections::{BTreeSet, HashMap};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Instant;

use parking_lot::Mutex;

use crate::limits::{RateDecision, RateKey, SharedRate, TokenBucket};

/// Events of one socket admitted and not yet finished; more are refused. An offer and its ICE
/// candidates in one polling request are a few dozen.
pub(crate) const MAX_WAITING: usize = 128;

/// Refusals within a second after which a socket is disconnected. A client that keeps to its
/// rate (100 a second, a burst of 400) never comes near: the rate limit's own test refuses 50
/// of a burst of 100.
pub(crate) const FLOOD_REFUSALS: u32 = 1000;

pub(crate) struct EventQueue {
    state: Mutex<QueueState>,
    rate: f64,
    burst: f64,
    /// The buckets this socket shares with the other sockets of its address and of its user.
    shared: [Option<SharedRate>; 2],
}

struct QueueState {
    /// The number the next arriving event gets.
    next: u64,
    /// The number whose turn it is.
    serving: u64,
    /// Tasks that ran before their turn, by number.
    wakers: HashMap<u64, Waker>,
    /// Numbers given up before their turn (a handler dropped unrun): skipped when reached.
    abandoned: BTreeSet<u64>,
    bucket: TokenBucket,
    /// The socket flooded and is being disconnected: everything it sends is dropped.
    flooded: bool,
}

impl QueueState {
    /// The turn passes to the next number still wanted; wakes its task if it already waits.
    fn advance(&mut self) {
        self.serving += 1;
        while self.abandoned.remove(&self.serving) {
            self.serving += 1;
        }
        if let Some(waker) = self.wakers.remove(&self.serving) {
            waker.wake();
        }
    }
}

/// Why an event was refused on arrival; the decision says whether to tell the client now.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Refused {
    /// More than the rate allows.
    Rate(RateDecision),
    /// More than the rate of all the sockets of this address, or of this user, allows.
    Shared(RateDecision, RateKey),
    /// [`MAX_WAITING`] events of this socket were already admitted and unfinished.
    Backlog(RateDecision),
    /// [`FLOOD_REFUSALS`] refusals within a second: the socket is to be disconnected.
    Flood,
    /// Sent after the flood that disconnects the socket: dropped.
    Closing,
}

/// An event's place in its socket's order.
pub(crate) enum Place {
    Queued(Ticket),
    Refused(Refused),
}

/// A number in the socket's order, not yet served; dropped unserved, it is skipped.
pub(crate) struct Ticket {
    queue: Arc<EventQueue>,
    seq: u64,
    served: bool,
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
                next: 0,
                serving: 0,
                wakers: HashMap::new(),
                abandoned: BTreeSet::new(),
                bucket: TokenBucket::new(burst, now),
                flooded: false,
            }),
            rate,
            burst,
            shared,
        })
    }

    /// A place for an event arriving now: refused over the rate or when too many wait, and
    /// the flood once refusals pass [`FLOOD_REFUSALS`] within a second.
    pub(crate) fn arrive(self: &Arc<Self>, now: Instant) -> Place {
        let mut state = self.state.lock();
        if state.flooded {
            return Place::Refused(Refused::Closing);
        }
        match state.bucket.take(self.rate, self.burst, now) {
            RateDecision::Allow => {}
            _ if state.bucket.refused_unreported() >= FLOOD_REFUSALS => {
                state.flooded = true;
                return Place::Refused(Refused::Flood);
            }
            refused => return Place::Refused(Refused::Rate(refused)),
        }
        for shared in self.shared.iter().flatten() {
            if shared.take(now) != RateDecision::Allow {
                // Told to the client at this socket's own reporting pace.
                let decision = state.bucket.refuse(now);
                return Place::Refused(Refused::Shared(decision, shared.key().clone()));
            }
        }
        if state.next - state.serving >= MAX_WAITING as u64 {
            return Place::Refused(Refused::Backlog(state.bucket.refuse(now)));
        }
        self.take_number(&mut state)
    }

    /// A place that is never refused: the disconnect, which must come after every event.
    pub(crate) fn last(self: &Arc<Self>) -> Place {
        let mut state = self.state.lock();
        self.take_number(&mut state)
    }

    fn take_number(self: &Arc<Self>, state: &mut QueueState) -> Place {
        let seq = state.next;
        state.next += 1;
        Place::Queued(Ticket {
            queue: self.clone(),
            seq,
            served: false,
        })
    }

    #[cfg(test)]
    fn unfinished(&self) -> u64 {
        let state = self.state.lock();
        state.next - state.serving
    }
}

impl Place {
    /// Waits until every event that arrived before this one was handled.
    pub(crate) async fn turn(self) -> Result<Turn, Refused> {
        match self {
            Place::Queued(ticket) => Ok(ticket.await),
            Place::Refused(refused) => Err(refused),
        }
    }
}

impl Future for Ticket {
    type Output = Turn;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Turn> {
        let mut state = self.queue.state.lock();
        if state.serving == self.seq {
            drop(state);
            self.served = true;
            return Poll::Ready(Turn {
                queue: self.queue.clone(),
            });
        }
        state.wakers.insert(self.seq, cx.waker().clone());
        Poll::Pending
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        if self.served {
            return;
        }
        let mut state = self.queue.state.lock();
        state.wakers.remove(&self.seq);
        if state.serving == self.seq {
            // Its turn had come: pass it on.
            state.advance();
        } else {
            state.abandoned.insert(self.seq);
        }
    }
}

impl Drop for Turn {
    fn drop(&mut self) {
        self.queue.state.lock().advance();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    fn queue(burst: f64) -> (Arc<EventQueue>, Instant) {
        let now = Instant::now();
        (EventQueue::new(10.0, burst, now, [None, None]), now)
    }

    /// A waker that counts how often it was woken.
    struct Count(AtomicUsize);
    impl futures_util::task::ArcWake for Count {
        fn wake_by_ref(this: &Arc<Self>) {
            this.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn ticket(place: Place) -> Ticket {
        match place {
            Place::Queued(ticket) => ticket,
            Place::Refused(refused) => panic!("refused: {refused:?}"),
        }
    }

    /// Polls once with a counting waker.
    fn poll_once(ticket: &mut Ticket, woken: &Arc<Count>) -> Option<Turn> {
        let waker = futures_util::task::waker(woken.clone());
        let mut cx = Context::from_waker(&waker);
        match Pin::new(ticket).poll(&mut cx) {
            Poll::Ready(turn) => Some(turn),
            Poll::Pending => None,
        }
    }

    #[test]
    fn events_take_their_turns_in_arrival_order_and_each_wakes_only_the_next() {
        let (q, now) = queue(100.0);
        let (mut first, mut second, mut third) = (
            ticket(q.arrive(now)),
            ticket(q.arrive(now)),
            ticket(q.arrive(now)),
        );
        let counts: Vec<Arc<Count>> = (0..3)
            .map(|_| Arc::new(Count(AtomicUsize::new(0))))
            .collect();
        // The later ones run first: they wait.
        assert!(poll_once(&mut third, &counts[2]).is_none());
        assert!(poll_once(&mut second, &counts[1]).is_none());
        let turn = poll_once(&mut first, &counts[0]).expect("the first event's turn");
        drop(turn);
        assert_eq!(counts[1].0.load(Ordering::SeqCst), 1, "the second is woken");
        assert_eq!(
            counts[2].0.load(Ordering::SeqCst),
            0,
            "the third is not: one wake-up per turn"
        );
        assert!(
            poll_once(&mut third, &counts[2]).is_none(),
            "and still waits"
        );
        drop(poll_once(&mut second, &counts[1]).expect("the second's turn"));
        assert_eq!(counts[2].0.load(Ordering::SeqCst), 1);
        assert!(poll_once(&mut third, &counts[2]).is_some());
    }

    #[test]
    fn in_arrival_order_nothing_waits_or_is_woken() {
        let (q, now) = queue(100.0);
        let woken = Arc::new(Count(AtomicUsize::new(0)));
        for _ in 0..10 {
            let mut t = ticket(q.arrive(now));
            drop(poll_once(&mut t, &woken).expect("its turn at once"));
        }
        assert_eq!(woken.0.load(Ordering::SeqCst), 0);
        assert!(q.state.lock().wakers.is_empty());
    }

    #[test]
    fn a_flood_is_cut_off_once_and_what_follows_is_dropped() {
        let (q, now) = queue(400.0);
        let mut places = (0..400 + FLOOD_REFUSALS as usize + 10).map(|_| q.arrive(now));
        assert!(
            places
                .by_ref()
                .take(400)
                .all(|p| matches!(p, Place::Queued(_))),
            "the burst passes"
        );
        let refused: Vec<Refused> = places
            .map(|p| match p {
                Place::Refused(r) => r,
                Place::Queued(_) => panic!("admitted past the burst"),
            })
            .collect();
        let flood = refused
            .iter()
            .position(|r| *r == Refused::Flood)
            .expect("the flood is named");
        assert!(
            (FLOOD_REFUSALS as usize - 1..=FLOOD_REFUSALS as usize).contains(&flood),
            "after {FLOOD_REFUSALS} refusals, not {flood}"
        );
        assert!(
            refused[..flood]
                .iter()
                .all(|r| matches!(r, Refused::Rate(_)))
        );
        assert!(refused[flood + 1..].iter().all(|r| *r == Refused::Closing));
        // A second later, still closed: the socket is going.
        assert!(matches!(
            q.arrive(now + Duration::from_secs(2)),
            Place::Refused(Refused::Closing)
        ));
    }

    #[tokio::test]
    async fn a_handler_dropped_before_its_turn_passes_the_turn_on() {
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
        assert_eq!(q.unfinished(), 0, "the queue is idle again");
        // Dropped while it was its turn, unpolled: the turn passes on too.
        let unpolled = q.arrive(now);
        let next = q.arrive(now);
        drop(unpolled);
        assert!(next.turn().await.is_ok());
    }

    #[tokio::test]
    async fn events_over_the_rate_are_refused_on_arrival_without_waiting() {
        let (q, now) = queue(3.0);
        let held = q.arrive(now).turn().await.expect("admitted");
        let _a = q.arrive(now);
        let _b = q.arrive(now);
        assert_eq!(q.unfinished(), 3);
        let over = q.arrive(now);
        assert!(matches!(
            over,
            Place::Refused(Refused::Rate(RateDecision::RefuseAndReport { dropped: 1 }))
        ));
        assert_eq!(q.unfinished(), 3, "a refused event takes no place in line");
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
        let places: Vec<Place> = (0..MAX_WAITING).map(|_| q.arrive(now)).collect();
        assert_eq!(q.unfinished(), MAX_WAITING as u64);
        assert!(matches!(q.arrive(now), Place::Refused(Refused::Backlog(_))));
        // The disconnect always gets a place, after everything.
        assert!(matches!(q.last(), Place::Queued(_)));
        drop(places);
    }
}
