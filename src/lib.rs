//! Classroom desktop client.
//!
//! Layers (see `../shared/DESIGN.md` §1), each a module with one job:
//! - [`media`]: capture sources, encoders, decoders, pixel conversion. No networking.
//! - [`rtc`]: one WebRTC peer connection per remote participant; RTP back into pictures.
//! - [`signaling`]: the Socket.IO client and the typed protocol; reconnect.
//! - [`session`]: the call's sans-IO state machine: inputs in, actions out.
//! - [`call`]: the engine that drives the session with real sockets, peer connections and
//!   media, and the headless participant built on it.
//! - [`ui`]: the window (eframe/egui): start screen, pre-join check, class view.
//! - [`policy`]: managed configuration (what IT presets and locks) and the effective config.

pub mod call;
pub mod media;
pub mod policy;
pub mod rtc;
pub mod session;
pub mod signaling;
pub mod ui;
