//! Voice: the audio processing stage between the microphone and the Opus encoder (echo
//! canceller, noise suppression, gain control, high-pass filter, voice activity), and a
//! simulated room that gives the headless participant an echo and background noise.
//!
//! ```text
//! cpal mic ─▶ ToInternal ─▶ VoiceProcessor::process_capture ─▶ Opus encoder
//! mixer ─▶ VoiceProcessor::process_render ─▶ FromInternal ─▶ cpal speaker
//! ```

pub mod drift;
pub mod muted;
pub mod processing;
pub mod room;

pub use drift::{DriftCompensator, DriftStats};
pub use processing::{
    AGC_TARGET_SPEECH_DBFS, NoiseSuppressionLevel, VoiceError, VoiceProcessingConfig,
    VoiceProcessingStats, VoiceProcessor, VoiceStage,
};
pub use room::{EchoPath, NoiseColor, RoomError, RoomNoise, SimulatedRoom, SimulatedRoomConfig};
