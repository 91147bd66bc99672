//! What the room-rule tests share: a connection that is a number, and a time.

use std::time::Instant;

use super::{Handle, Now};

/// A connection in the tests: a number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Conn(pub(crate) u32);

impl Handle for Conn {
    type Id = u32;
    fn id(&self) -> u32 {
        self.0
    }
}

/// Now, stamped `unix_ms` for what clients see.
pub(crate) fn at(unix_ms: u64) -> Now {
    Now {
        instant: Instant::now(),
        unix_ms,
    }
}
