//! The call's state machine: participants, chat, media states, roles and the state of each
//! peer connection. It is sans-IO: [`Session::handle`] takes one [`Input`] (a server event, a
//! peer connection's news, a user command, or the passage of time, always with the current
//! time) and returns the [`Action`]s the drivers carry out (emit on the signaling socket,
//! create or close a peer connection, start or stop a source). Nothing here waits, sleeps or
//! touches a socket, so every rule is unit-tested with scripted inputs and a scripted clock.
//!
//! Who offers: the newcomer offers to everyone already present (the seed's rule); the others
//! wait for its offer. After a reconnect the rejoining participant keeps every peer
//! connection that still works and offers only where it has none. A participant whose socket
//! dropped (`user-left` with reason `disconnected`) keeps its peer connection for a grace
//! period, so a server restart does not tear the call down. Offer collisions follow "perfect
//! negotiation": the participant with the greater user id is polite and yields.

mod core;

pub use self::core::{
    Action, Command, Input, Outgoing, PeerConnState, PeerSummary, ServerKind, Session,
    SessionConfig, SessionEvent, Snapshot,
};
