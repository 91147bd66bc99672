//! Classroom desktop client.
//!
//! Layers (`docs/architecture.md` shows them, what each may import, and the data's path;
//! `tests/layering.rs` checks the imports), each a module with one job:
//! - [`types`]: the small types every layer names (source, codec, link state).
//! - [`media`]: capture sources, encoders, decoders, pixel conversion. No networking.
//! - [`rtc`]: one WebRTC peer connection per remote participant; RTP back into pictures.
//!   Wraps webrtc-rs whole.
//! - [`signaling`]: the Socket.IO client and the typed protocol; reconnect.
//! - [`session`]: the call's sans-IO state machine: inputs in, actions out, the next
//!   deadline; the media rules (what the encoders aim at) with it.
//! - [`call`]: the engine that drives the session with real sockets, peer connections and
//!   media, and the headless participant built on it.
//! - [`controller`]: the window's controller, with no egui in it: carries out the window's
//!   requests (the call, the local class server, the pre-join check, device lists) and
//!   publishes what the window shows.
//! - [`ui`]: the window (eframe/egui): start screen, pre-join check, class view.
//! - [`policy`]: managed configuration (what IT presets and locks) and the effective config.

pub mod call;
pub mod controller;
pub mod media;
pub mod policy;
pub mod rtc;
pub mod session;
pub mod signaling;
pub mod types;
pub mod ui;
