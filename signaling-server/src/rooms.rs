//! Live sessions: who is in which class, with their socket, and the recent chat.

use std::collections::VecDeque;
use std::sync::Arc;

use classroom_wire::{ChatKind, ChatMessage, Participant};
use dashmap::DashMap;
use parking_lot::Mutex;
use serde::Serialize;
use socketioxide::extract::SocketRef;
use socketioxide::socket::Sid;

use crate::store::SYSTEM_NOTICES_KEPT;

pub struct Member {
    pub participant: Participant,
    pub socket: SocketRef,
    /// The member's chat rate, whichever of its sockets sends.
    pub chat: crate::limits::TokenBucket,
}

#[derive(Default)]
pub struct RoomState {
    /// In join order.
    pub members: Vec<Member>,
    /// The last messages, oldest first, bounded by the history length.
    pub history: VecDeque<ChatMessage>,
    /// Set when the last member left and the room was taken out of the registry; a joiner
    /// holding this room must look it up again.
    pub closed: bool,
}

impl RoomState {
    pub fn member(&self, user_id: &str) -> Option<&Member> {
        self.members
            .iter()
            .find(|m| m.participant.user_id == user_id)
    }

    pub fn member_mut(&mut self, user_id: &str) -> Option<&mut Member> {
        self.members
            .iter_mut()
            .find(|m| m.participant.user_id == user_id)
    }

    /// Keeps the last `limit` user messages and the last [`SYSTEM_NOTICES_KEPT`] system
    /// notices, as the store replays them: joins and leaves do not push the conversation out.
    pub fn push_history(&mut self, message: ChatMessage, limit: usize) {
        let kind = message.kind;
        self.history.push_back(message);
        let cap = match kind {
            ChatKind::User => limit,
            ChatKind::System => SYSTEM_NOTICES_KEPT,
        };
        if self.history.iter().filter(|m| m.kind == kind).count() > cap
            && let Some(oldest) = self.history.iter().position(|m| m.kind == kind)
        {
            self.history.remove(oldest);
        }
    }

    /// The sockets to reach, except one; cloned so that emitting happens outside the lock.
    pub fn sockets_except(&self, except: Option<Sid>) -> Vec<SocketRef> {
        self.members
            .iter()
            .filter(|m| Some(m.socket.id) != except)
            .map(|m| m.socket.clone())
            .collect()
    }
}

pub struct Room {
    pub id: Arc<str>,
    pub state: Mutex<RoomState>,
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
    pub fn get_or_create(
        &self,
        id: &str,
        history: impl FnOnce() -> VecDeque<ChatMessage>,
    ) -> Arc<Room> {
        self.rooms
            .entry(Arc::from(id))
            .or_insert_with(|| {
                Arc::new(Room {
                    id: Arc::from(id),
                    state: Mutex::new(RoomState {
                        history: history(),
                        ..Default::default()
                    }),
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
/// disconnect handling removes it from the room.
pub fn emit_to_all<T: Serialize + ?Sized>(sockets: &[SocketRef], event: &'static str, data: &T) {
    for socket in sockets {
        if let Err(e) = socket.emit(event, data) {
            tracing::debug!(sid = %socket.id, event, error = %e, "emit skipped");
        }
    }
}
