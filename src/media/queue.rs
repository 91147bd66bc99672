//! The hand-over between media threads: bounded, drops the oldest item when full, never
//! blocks the producer (a capture callback must not stall), and counts what it dropped.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

pub struct FrameQueue<T> {
    inner: Arc<Inner<T>>,
}

struct Inner<T> {
    items: Mutex<State<T>>,
    ready: Condvar,
    capacity: usize,
    dropped: AtomicU64,
}

struct State<T> {
    items: VecDeque<T>,
    closed: bool,
}

impl<T> Clone for FrameQueue<T> {
    fn clone(&self) -> Self {
        FrameQueue {
            inner: self.inner.clone(),
        }
    }
}

/// Why [`FrameQueue::pop_timeout`] returned nothing.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum PopError {
    Timeout,
    /// Closed and drained: no item will come any more.
    Closed,
}

impl<T> FrameQueue<T> {
    pub fn new(capacity: usize) -> Self {
        assert!(capacity > 0, "a frame queue holds at least one item");
        FrameQueue {
            inner: Arc::new(Inner {
                items: Mutex::new(State {
                    items: VecDeque::with_capacity(capacity),
                    closed: false,
                }),
                ready: Condvar::new(),
                capacity,
                dropped: AtomicU64::new(0),
            }),
        }
    }

    /// Adds an item, dropping the oldest one if the queue is full. Returns false (and drops the
    /// item) once the queue is closed.
    pub fn push(&self, item: T) -> bool {
        let mut state = self.inner.items.lock();
        if state.closed {
            return false;
        }
        if state.items.len() == self.inner.capacity {
            state.items.pop_front();
            self.inner.dropped.fetch_add(1, Ordering::Relaxed);
        }
        state.items.push_back(item);
        drop(state);
        self.inner.ready.notify_one();
        true
    }

    /// Takes the oldest item, waiting up to `timeout` for one.
    pub(crate) fn pop_timeout(&self, timeout: Duration) -> Result<T, PopError> {
        let deadline = Instant::now() + timeout;
        let mut state = self.inner.items.lock();
        loop {
            if let Some(item) = state.items.pop_front() {
                return Ok(item);
            }
            if state.closed {
                return Err(PopError::Closed);
            }
            if self
                .inner
                .ready
                .wait_until(&mut state, deadline)
                .timed_out()
            {
                return state.items.pop_front().ok_or(PopError::Timeout);
            }
        }
    }

    /// Takes the newest item and discards older ones (counted as dropped): for consumers that
    /// only ever want the latest picture, such as a renderer.
    pub fn pop_latest(&self) -> Option<T> {
        let mut state = self.inner.items.lock();
        let latest = state.items.pop_back();
        let stale = state.items.len() as u64;
        state.items.clear();
        self.inner.dropped.fetch_add(stale, Ordering::Relaxed);
        latest
    }

    /// Ends the stream: producers' pushes are refused, consumers drain what is left.
    pub fn close(&self) {
        self.inner.items.lock().closed = true;
        self.inner.ready.notify_all();
    }

    pub fn dropped(&self) -> u64 {
        self.inner.dropped.load(Ordering::Relaxed)
    }

    pub fn len(&self) -> usize {
        self.inner.items.lock().items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_queue_drops_the_oldest_and_counts_it() {
        let q = FrameQueue::new(2);
        for i in 0..5 {
            assert!(q.push(i));
        }
        assert_eq!(q.dropped(), 3);
        assert_eq!(q.pop_timeout(Duration::ZERO), Ok(3));
        assert_eq!(q.pop_timeout(Duration::ZERO), Ok(4));
        assert_eq!(
            q.pop_timeout(Duration::from_millis(10)),
            Err(PopError::Timeout)
        );
    }

    #[test]
    fn a_consumer_wakes_for_a_producer_on_another_thread() {
        let q = FrameQueue::new(4);
        let producer = q.clone();
        let t = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            producer.push(7u32);
        });
        assert_eq!(q.pop_timeout(Duration::from_secs(5)), Ok(7));
        t.join().unwrap();
    }

    #[test]
    fn closing_refuses_pushes_and_drains() {
        let q = FrameQueue::new(4);
        q.push(1);
        q.close();
        assert!(!q.push(2));
        assert_eq!(q.pop_timeout(Duration::ZERO), Ok(1));
        assert_eq!(q.pop_timeout(Duration::from_secs(1)), Err(PopError::Closed));
    }

    #[test]
    fn pop_latest_skips_stale_pictures() {
        let q = FrameQueue::new(8);
        for i in 0..4 {
            q.push(i);
        }
        assert_eq!(q.pop_latest(), Some(3));
        assert_eq!(q.dropped(), 3);
        assert!(q.is_empty());
    }
}
