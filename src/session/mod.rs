//! The call's state machine: participants, chat, media states, roles and the state of each
//! media link (a [`LinkId`](crate::types::LinkId): in a mesh, the peer connection to one
//! participant). It is sans-IO: [`Session::handle`] takes one [`Input`] (a server event, a
//! link's news, a user command, or the deadline passing, always with the current time) and
//! returns the [`Action`]s the drivers carry out (emit on the signaling socket, create or
//! close a link, start or stop a source, what the encoders aim at, a keyframe);
//! [`Session::poll_timeout`] says when it next needs the time. Nothing here waits, sleeps or
//! touches a socket, so every rule is unit-tested with scripted inputs and a scripted clock.
//!
//! The media rules (`media_rules.rs`): the encoders follow the weakest connected link's
//! estimate; the camera is sent as tall as the tallest viewer shows it; each codec a
//! connected link negotiated is encoded, and a codec newly in use starts with a keyframe, as
//! does every link that connects. Chat written while the socket is down waits (up to
//! [`CHAT_WAITING_MAX`] messages) and goes out on rejoin.
//!
//! Who offers: the newcomer offers to everyone already present (the seed's rule); the others
//! wait for its offer. After a reconnect the rejoining participant keeps every peer
//! connection that still works and offers only where it has none. A participant whose socket
//! dropped (`user-left` with reason `disconnected`) keeps its peer connection for a grace
//! period, so a server restart does not tear the call down. Offer collisions follow "perfect
//! negotiation": the participant with the greater user id is polite and yields.

mod core;
mod media_rules;

pub use self::core::{
    Action, CHAT_WAITING_MAX, ClassInput, ClassView, Command, Input, Outgoing, PeerSummary,
    PollView, ServerKind, Session, SessionConfig, SessionEvent, Snapshot,
};
pub use self::media_rules::{CAMERA_MAX_BPS, SCREEN_MAX_BPS, SendTargets};
