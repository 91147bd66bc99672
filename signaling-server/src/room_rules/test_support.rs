//! What the room-rule tests share: a connection that is a number, a time, a class to join.

use std::time::Instant;

use classroom_wire::{Role, WaitingPolicy};

use super::{Handle, Joiner, Now, RoomPolicy, RoomState};
use crate::auth::Identity;
use crate::config::Limits;
use crate::sfu::SfuMode;

/// A connection in the tests: a number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Conn(pub(crate) u32);

impl Conn {
    /// A connection from a client that takes no batched participant updates (the browser
    /// version's page): this number, and every number above it.
    pub(crate) const UNBATCHED: u32 = 900;
}

impl Handle for Conn {
    type Id = u32;
    fn id(&self) -> u32 {
        self.0
    }
    fn takes_batches(&self) -> bool {
        self.0 < Conn::UNBATCHED
    }
}

/// Now, stamped `unix_ms` for what clients see.
pub(crate) fn at(unix_ms: u64) -> Now {
    Now {
        instant: Instant::now(),
        unix_ms,
    }
}

/// A mesh class whose door is open.
pub(crate) fn policy() -> RoomPolicy {
    RoomPolicy {
        mode: SfuMode::Off,
        mesh_max: 4,
        waiting_room: WaitingPolicy::Open,
    }
}

/// `user` (named in capitals) joins on connection `conn`, an instructor or a student, in a
/// room that takes up to 1000.
pub(crate) fn join(room: &mut RoomState<Conn>, user: &str, conn: u32, instructor: bool) {
    let who = Identity {
        user_id: user.into(),
        user_name: user.to_uppercase(),
        role: if instructor {
            Role::Instructor
        } else {
            Role::Student
        },
    };
    let joiner = Joiner {
        who: &who,
        conn: Conn(conn),
        sfu_capable: true,
        claimed: false,
        on_roster: false,
    };
    let roomy = Limits {
        max_participants_per_session: 1000,
        ..Limits::default()
    };
    if room.join(joiner, at(1_000), &roomy, policy()).is_err() {
        panic!("{user} was not let in");
    }
}
