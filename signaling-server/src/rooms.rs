//! The live sessions: each a room of sockets under the rules of `room_rules.rs`.

use std::collections::VecDeque;
use std::sync::Arc;

use classroom_wire::ChatMessage;
use dashmap::DashMap;
use parking_lot::Mutex;
use serde::Serialize;
use socketioxide::extract::SocketRef;
use socketioxide::socket::Sid;

use crate::room_rules::{Handle, RoomPolicy, RoomState};

impl Handle for SocketRef {
    type Id = Sid;
    fn id(&self) -> Sid {
        self.id
    }
    fn takes_batches(&self) -> bool {
        self.extensions
            .get::<Arc<crate::handlers::Connection>>()
            .is_some_and(|c| c.takes_batches())
    }
}

pub struct Room {
    pub id: Arc<str>,
    pub state: Mutex<RoomState<SocketRef>>,
}

/// All sessions that have at least one participant.
#[derive(Default)]
pub struct Registry {
    rooms: DashMap<Arc<str>, Arc<Room>>,
}

impl Registry {
    pub fn get(&self, id: &str) -> Option<Arc<Room>> {
        self.rooms.get(id).map(|r| r.clone())
    }

    /// The live room, creating it with `history` if there is none.
    pub(crate) fn get_or_create(
        &self,
        id: &str,
        history: impl FnOnce() -> VecDeque<ChatMessage>,
        policy: RoomPolicy,
    ) -> Arc<Room> {
        self.rooms
            .entry(Arc::from(id))
            .or_insert_with(|| {
                Arc::new(Room {
                    id: Arc::from(id),
                    state: Mutex::new(RoomState::new(history(), policy)),
                })
            })
            .clone()
    }

    /// Removes the room if it is still the registered one (called with its state closed).
    pub fn remove(&self, room: &Arc<Room>) -> bool {
        self.rooms
            .remove_if(&room.id, |_, r| Arc::ptr_eq(r, room))
            .is_some()
    }

    pub fn len(&self) -> usize {
        self.rooms.len()
    }
}

/// Emits one event to several sockets. A socket that is closing is skipped: its own
/// disconnect handling removes it from the room. One whose buffer is full (a client that stopped
/// reading) loses the event, said in the log: its ping times out next.
pub(crate) fn emit_to_all<T: Serialize + ?Sized>(
    sockets: &[SocketRef],
    event: &'static str,
    data: &T,
) {
    use socketioxide::{SendError, SocketError};
    if sockets.is_empty() {
        return;
    }
    // Serialized once, not once per socket (a batch of 200 participants to 200 members).
    let raw = match serde_json::value::to_raw_value(data) {
        Ok(raw) => raw,
        Err(e) => {
            tracing::error!(event, error = %e, "event not serializable: not sent");
            return;
        }
    };
    for socket in sockets {
        match socket.emit(event, &*raw) {
            Ok(()) => {}
            Err(SendError::Socket(SocketError::InternalChannelFull)) => {
                tracing::warn!(sid = %socket.id, event, "event lost: the client's send buffer is full");
            }
            Err(e) => tracing::debug!(sid = %socket.id, event, error = %e, "emit skipped"),
        }
    }
}
