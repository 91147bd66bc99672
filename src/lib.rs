//! Classroom desktop client.
//!
//! Layers (see `../shared/DESIGN.md` §1), each a module with one job:
//! - [`media`]: capture sources, encoders, decoders, pixel conversion. No networking.
//!
//! The `rtc`, `signaling`, `session` and `ui` layers follow in their own issues.

pub mod media;
