//! The transport layer: one WebRTC peer connection per remote participant (a mesh, as in the
//! browser version), and the pieces that turn RTP back into pictures. No UI here, no
//! signaling: the session decides, this layer carries out. webrtc-rs is wrapped whole: no
//! type of it appears in this layer's API.

pub(crate) mod assembler;
pub mod connection_test;
mod error;
pub mod peer;
mod remote_track;

pub use error::RtcError;
pub use peer::{EncodedUnit, PeerEvent, PeerLink, PeerOptions};
pub use remote_track::RemoteTrack;
