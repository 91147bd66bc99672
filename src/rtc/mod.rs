//! The transport layer: one WebRTC peer connection per remote participant (a mesh, as in the
//! browser version), and the pieces that turn RTP back into pictures. No UI here, no
//! signaling: the session decides, this layer carries out.

pub mod assembler;
pub mod peer;

pub use peer::{EncodedUnit, PeerEvent, PeerEventKind, PeerLink, PeerOptions, RtcError, Source};
