//! The voice processing stage between the microphone and the Opus encoder: WebRTC's audio
//! processing (echo canceller AEC3, noise suppression, AGC2 gain control, high-pass filter) as
//! ported to Rust by `sonora`, in 10 ms frames of 48 kHz mono.
//!
//! ```text
//!  mixer ──▶ process_render(&[f32]) ──▶ speaker        (the playback thread)
//!                 │ drift compensator (bounded, resampled to the mic's clock)
//!                 ▼
//!  mic ────▶ process_capture(&mut [f32]) ──▶ Opus      (the capture thread)
//! ```
//!
//! The echo canceller's reference is exactly what goes to the speakers: the playback path
//! hands every sample it plays to [`VoiceProcessor::process_render`], which only copies it
//! into a short buffer (no processing, a lock held for a copy). The capture thread takes one
//! 10 ms frame of it before each microphone frame, so the two audio threads never wait on each
//! other's processing. That buffer is a [`DriftCompensator`]: when the speaker and the
//! microphone are separate devices with clocks of their own, it resamples the reference onto
//! the microphone's clock, so the echo stays where the canceller found it.

use std::sync::atomic::{AtomicBool, Ordering};

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use sonora::config::{
    AdaptiveDigital, EchoCanceller, GainController2, HighPassFilter, MaxProcessingRate,
    NoiseSuppression, Pipeline,
};
use sonora::{AudioProcessing, StreamConfig};
use sonora_agc2::vad_wrapper::VoiceActivityDetectorWrapper;

use super::drift::DriftCompensator;
use super::muted::MutedSpeechDetector;
use crate::media::audio_device::{FRAME, RATE};

/// Speech probability from the voice activity detector above which a frame is speech.
const SPEECH_PROBABILITY: f32 = 0.8;
/// Frames below this output level are never speech (residual echo, comfort noise).
const SPEECH_FLOOR_DBFS: f32 = -60.0;
/// Speaking lasts this many frames after the last speech frame (bridges gaps between words).
const SPEECH_HANGOVER_FRAMES: u32 = 20;
/// Output level meter: exponential average of frame power, 100 ms time constant.
const LEVEL_SMOOTHING: f32 = 0.1;
/// Level reported for silence.
pub(crate) const SILENCE_DBFS: f32 = crate::media::level::SILENCE_DBFS as f32;

#[derive(Debug, thiserror::Error)]
pub enum VoiceError {
    #[error("voice processing takes whole 10 ms frames ({FRAME} samples); got {0} samples")]
    FrameSize(usize),
    #[error("audio processing: {0}")]
    Processing(#[from] sonora::Error),
}

/// How hard noise suppression works (WebRTC's levels).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NoiseSuppressionLevel {
    /// About 6 dB.
    Low,
    /// About 12 dB (WebRTC's default).
    Moderate,
    /// About 18 dB (what Chrome asks for).
    #[default]
    High,
    /// About 21 dB.
    VeryHigh,
}

impl From<NoiseSuppressionLevel> for sonora::config::NoiseSuppressionLevel {
    fn from(level: NoiseSuppressionLevel) -> Self {
        match level {
            NoiseSuppressionLevel::Low => Self::Low,
            NoiseSuppressionLevel::Moderate => Self::Moderate,
            NoiseSuppressionLevel::High => Self::High,
            NoiseSuppressionLevel::VeryHigh => Self::VeryHigh,
        }
    }
}

/// Which stages run. Every stage is on by default, as in a browser's `getUserMedia`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct VoiceProcessingConfig {
    /// AEC3: removes what the speakers play from the microphone signal.
    pub echo_cancellation: bool,
    /// Stationary noise suppression.
    pub noise_suppression: bool,
    /// AGC2 adaptive digital gain and limiter: brings speech to a steady level (see
    /// [`AGC_TARGET_SPEECH_DBFS`]).
    pub gain_control: bool,
    /// Removes rumble and DC below ~80 Hz. The echo canceller works best with it on.
    pub high_pass_filter: bool,
    pub noise_suppression_level: NoiseSuppressionLevel,
}

impl Default for VoiceProcessingConfig {
    fn default() -> Self {
        VoiceProcessingConfig {
            echo_cancellation: true,
            noise_suppression: true,
            gain_control: true,
            high_pass_filter: true,
            noise_suppression_level: NoiseSuppressionLevel::default(),
        }
    }
}

/// One of the four stages, for the places that list them (settings, policy, the command
/// line): [`VoiceStage::ALL`] is the one list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VoiceStage {
    EchoCancellation,
    NoiseSuppression,
    GainControl,
    HighPassFilter,
}

impl VoiceStage {
    pub const ALL: [VoiceStage; 4] = [
        VoiceStage::EchoCancellation,
        VoiceStage::NoiseSuppression,
        VoiceStage::GainControl,
        VoiceStage::HighPassFilter,
    ];

    /// Its key in the managed policy and the configuration's output.
    pub fn key(self) -> &'static str {
        match self {
            VoiceStage::EchoCancellation => "echo_cancellation",
            VoiceStage::NoiseSuppression => "noise_suppression",
            VoiceStage::GainControl => "gain_control",
            VoiceStage::HighPassFilter => "high_pass_filter",
        }
    }

    /// Its short name on the test participant's command line.
    pub(crate) fn short_name(self) -> &'static str {
        match self {
            VoiceStage::EchoCancellation => "aec",
            VoiceStage::NoiseSuppression => "ns",
            VoiceStage::GainControl => "agc",
            VoiceStage::HighPassFilter => "hpf",
        }
    }

    /// What the settings call it.
    pub fn label(self) -> &'static str {
        match self {
            VoiceStage::EchoCancellation => "Echo cancellation",
            VoiceStage::NoiseSuppression => "Noise suppression",
            VoiceStage::GainControl => "Automatic gain control",
            VoiceStage::HighPassFilter => "Low-rumble filter",
        }
    }
}

/// AGC2's adaptive digital controller: headroom below full scale for speech (sonora's default).
pub(crate) const AGC_HEADROOM_DB: f32 = 5.0;
/// AGC2's initial saturation-protector margin (it then follows the speech's peak-to-level
/// ratio within 12..25 dB).
pub(crate) const AGC_INITIAL_MARGIN_DB: f32 = 20.0;
/// The speech level AGC2 aims for at first: −(headroom + margin) = −25 dBFS (RMS of speech,
/// full scale 1.0). The margin adapts to the talker's crest factor, so the target moves within
/// −30..−17 dBFS.
pub const AGC_TARGET_SPEECH_DBFS: f32 = -(AGC_HEADROOM_DB + AGC_INITIAL_MARGIN_DB);

impl VoiceProcessingConfig {
    pub fn stage(&self, stage: VoiceStage) -> bool {
        match stage {
            VoiceStage::EchoCancellation => self.echo_cancellation,
            VoiceStage::NoiseSuppression => self.noise_suppression,
            VoiceStage::GainControl => self.gain_control,
            VoiceStage::HighPassFilter => self.high_pass_filter,
        }
    }

    pub(crate) fn stage_mut(&mut self, stage: VoiceStage) -> &mut bool {
        match stage {
            VoiceStage::EchoCancellation => &mut self.echo_cancellation,
            VoiceStage::NoiseSuppression => &mut self.noise_suppression,
            VoiceStage::GainControl => &mut self.gain_control,
            VoiceStage::HighPassFilter => &mut self.high_pass_filter,
        }
    }

    /// Every stage off: the stage passes audio through (the voice activity detector and the
    /// level meter still run).
    pub fn all_off() -> Self {
        VoiceProcessingConfig {
            echo_cancellation: false,
            noise_suppression: false,
            gain_control: false,
            high_pass_filter: false,
            ..Self::default()
        }
    }

    fn to_sonora(self) -> sonora::Config {
        sonora::Config {
            pipeline: Pipeline {
                // WebRTC's default: capture processed at 32 kHz (speech band up to 16 kHz),
                // about 10 % cheaper here than 48 kHz's three-band split (docs/benchmarks.md).
                maximum_internal_processing_rate: MaxProcessingRate::Rate32kHz,
                ..Pipeline::default()
            },
            high_pass_filter: self.high_pass_filter.then(HighPassFilter::default),
            echo_canceller: self.echo_cancellation.then(|| EchoCanceller {
                // The high-pass switch means what it says; AEC3 would otherwise force it on.
                enforce_high_pass_filtering: false,
                delay_down_sampling_factor: 8,
                ..EchoCanceller::default()
            }),
            noise_suppression: self.noise_suppression.then(|| NoiseSuppression {
                level: self.noise_suppression_level.into(),
                ..NoiseSuppression::default()
            }),
            gain_controller2: self.gain_control.then(|| GainController2 {
                // No analog microphone volume to steer here: digital gain and limiter only.
                input_volume_controller: false,
                adaptive_digital: Some(AdaptiveDigital {
                    headroom_db: AGC_HEADROOM_DB,
                    ..AdaptiveDigital::default()
                }),
                ..GainController2::default()
            }),
            ..sonora::Config::default()
        }
    }
}

/// The stage's state, for the stats panel and the headless participant's JSON.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct VoiceProcessingStats {
    pub echo_cancellation: bool,
    pub noise_suppression: bool,
    pub gain_control: bool,
    pub high_pass_filter: bool,
    /// The echo canceller's estimate of the delay from a sample handed to `process_render` to
    /// its echo in `process_capture` (AEC3's render buffer delay).
    pub echo_delay_ms: Option<i32>,
    /// Echo return loss enhancement as AEC3 reports it (its fullband ERLE estimate), in dB.
    pub erle_db: Option<f64>,
    /// Echo return loss (far end to echo at the mic) as AEC3 estimates it, in dB.
    pub erl_db: Option<f64>,
    /// Local voice activity (see [`VoiceProcessor::is_speaking`]).
    pub speaking: bool,
    /// The voice activity detector's speech probability for the last frame.
    pub speech_probability: f32,
    /// Processed output level, 100 ms average, dBFS (RMS, full scale 1.0).
    pub output_level_dbfs: f32,
    pub capture_frames: u64,
    pub render_frames: u64,
    /// Render frames dropped because the capture side did not take them in time.
    pub render_frames_dropped: u64,
    pub resets: u64,
    /// How much faster the speaker's clock runs than the microphone's, as measured (0 with
    /// one sound card).
    pub clock_drift_ppm: f64,
    /// Played audio waiting for the microphone side (smoothed), in ms.
    pub reference_slack_ms: f64,
    /// Microphone frames for which nothing played had arrived (silence was assumed).
    pub reference_underruns: u64,
    /// Times the reference was realigned in one step (a stalled device) or re-learnt.
    pub reference_realignments: u64,
    /// The microphone is muted and the user seems to be talking into it (see
    /// [`VoiceProcessor::observe_muted`]).
    pub muted_talking: bool,
}

/// Render samples waiting for the capture thread.
#[derive(Debug)]
struct RenderQueue {
    compensator: DriftCompensator,
    /// Whether the echo canceller is on (when off, render audio is not kept).
    enabled: bool,
    samples: u64,
    dropped: u64,
    /// What the speakers played lately: the power of the loudest recent 10 ms, fading by
    /// 1 dB per 10 ms (full scale 1.0).
    played_power: f32,
}

/// Fading of [`RenderQueue::played_power`] per 10 ms (−1 dB).
const PLAYED_DECAY: f32 = 0.794;

impl RenderQueue {
    fn new(enabled: bool) -> Self {
        RenderQueue {
            compensator: DriftCompensator::new(),
            enabled,
            samples: 0,
            dropped: 0,
            played_power: 0.0,
        }
    }

    fn note_played(&mut self, samples: &[f32]) {
        if samples.is_empty() {
            return;
        }
        let power = samples.iter().map(|s| s * s).sum::<f32>() / samples.len() as f32;
        let decay = PLAYED_DECAY.powf(samples.len() as f32 / FRAME as f32);
        self.played_power = power.max(self.played_power * decay);
    }

    fn frames(&self) -> u64 {
        self.samples / FRAME as u64
    }
}

/// Everything the capture thread works with.
struct Engine {
    apm: AudioProcessing,
    config: VoiceProcessingConfig,
    vad: VoiceActivityDetectorWrapper,
    hangover: u32,
    /// Smoothed output power (linear, full scale 1.0).
    level_power: f32,
    /// The reference frame for the capture frame being processed.
    render_frame: Vec<f32>,
    muted: MutedSpeechDetector,
    scratch: Vec<f32>,
    stats: VoiceProcessingStats,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("config", &self.config)
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

fn build_apm(config: VoiceProcessingConfig) -> AudioProcessing {
    let stream = StreamConfig::new(RATE, 1);
    AudioProcessing::builder()
        .config(config.to_sonora())
        .capture_config(stream)
        .render_config(stream)
        .build()
}

fn new_vad() -> VoiceActivityDetectorWrapper {
    VoiceActivityDetectorWrapper::new(sonora_simd::detect_backend(), RATE as i32)
}

/// AGC2's RNN voice activity detector on one 10 ms frame (full scale 1.0); `scratch` holds
/// the frame scaled to 16-bit range, which the detector works on.
pub(super) fn speech_probability(
    vad: &mut VoiceActivityDetectorWrapper,
    frame: &[f32],
    scratch: &mut Vec<f32>,
) -> f32 {
    scratch.clear();
    scratch.extend(frame.iter().map(|s| s * 32_768.0));
    vad.analyze(scratch)
}

pub(super) fn power_to_dbfs(power: f32) -> f32 {
    crate::media::level::power_to_dbfs(f64::from(power)) as f32
}

fn finite(x: f64) -> Option<f64> {
    x.is_finite().then_some(x)
}

impl Engine {
    fn new(config: VoiceProcessingConfig) -> Self {
        let mut engine = Engine {
            apm: build_apm(config),
            config,
            vad: new_vad(),
            hangover: 0,
            level_power: 0.0,
            render_frame: vec![0.0; FRAME],
            muted: MutedSpeechDetector::default(),
            scratch: vec![0.0; FRAME],
            stats: VoiceProcessingStats::default(),
        };
        engine.show_config();
        engine
    }

    fn show_config(&mut self) {
        let c = self.config;
        self.stats.echo_cancellation = c.echo_cancellation;
        self.stats.noise_suppression = c.noise_suppression;
        self.stats.gain_control = c.gain_control;
        self.stats.high_pass_filter = c.high_pass_filter;
        if !c.echo_cancellation {
            self.stats.echo_delay_ms = None;
            self.stats.erle_db = None;
            self.stats.erl_db = None;
        }
    }

    /// Feeds the reference frame to the echo canceller.
    fn analyze_render(&mut self) -> Result<(), VoiceError> {
        // Render processing does not change what is played; the output is not used.
        self.apm.process_render_f32(
            &[self.render_frame.as_slice()],
            &mut [self.scratch.as_mut_slice()],
        )?;
        Ok(())
    }

    fn process_frame(&mut self, frame: &mut [f32]) -> Result<bool, VoiceError> {
        self.apm
            .process_capture_f32(&[&*frame], &mut [self.scratch.as_mut_slice()])?;
        frame.copy_from_slice(&self.scratch);

        let power = frame.iter().map(|s| s * s).sum::<f32>() / FRAME as f32;
        self.level_power += LEVEL_SMOOTHING * (power - self.level_power);

        // Below the floor a frame is not speech whatever the detector says (most of the time
        // while the far end talks and the echo is removed, or in silence). With gain control
        // on, AGC2 has just run the same RNN detector on this frame (before its gain): its
        // answer is taken instead of running the detector twice.
        let apm_probability = self.apm.statistics().speech_probability;
        let probability = if power_to_dbfs(power) < SPEECH_FLOOR_DBFS {
            0.0
        } else if let Some(probability) = apm_probability {
            probability
        } else {
            speech_probability(&mut self.vad, frame, &mut self.scratch)
        };
        if probability >= SPEECH_PROBABILITY {
            self.hangover = SPEECH_HANGOVER_FRAMES;
        } else {
            self.hangover = self.hangover.saturating_sub(1);
        }
        let speaking = self.hangover > 0;

        let apm = self.apm.statistics();
        let stats = &mut self.stats;
        stats.capture_frames += 1;
        stats.speech_probability = probability;
        stats.speaking = speaking;
        stats.output_level_dbfs = power_to_dbfs(self.level_power);
        if self.config.echo_cancellation {
            stats.echo_delay_ms = apm.delay_ms;
            stats.erle_db = apm.echo_return_loss_enhancement.and_then(finite);
            stats.erl_db = apm.echo_return_loss.and_then(finite);
        }
        Ok(speaking)
    }
}

/// The voice processing stage. Share it (`Arc`) between the playback thread, which calls
/// [`process_render`](Self::process_render), and the capture thread, which calls
/// [`process_capture`](Self::process_capture); any thread may read the stats or reconfigure.
#[derive(Debug)]
pub struct VoiceProcessor {
    engine: Mutex<Engine>,
    render: Mutex<RenderQueue>,
    speaking: AtomicBool,
}

impl Default for VoiceProcessor {
    fn default() -> Self {
        Self::new(VoiceProcessingConfig::default())
    }
}

impl VoiceProcessor {
    pub fn new(config: VoiceProcessingConfig) -> Self {
        tracing::debug!(?config, "voice processing configured");
        VoiceProcessor {
            engine: Mutex::new(Engine::new(config)),
            render: Mutex::new(RenderQueue::new(config.echo_cancellation)),
            speaking: AtomicBool::new(false),
        }
    }

    /// Hands over what is about to be played (48 kHz mono, after the mixer, any length): the
    /// echo canceller's reference. Cheap: a copy into a bounded queue, oldest frames dropped
    /// when the capture side does not keep up (e.g. the microphone is closed).
    pub fn process_render(&self, samples: &[f32]) {
        let mut queue = self.render.lock();
        queue.note_played(samples);
        if !queue.enabled {
            return;
        }
        queue.samples += samples.len() as u64;
        queue.dropped += queue.compensator.push(samples);
    }

    /// Forgets the render audio queued so far without processing it: while the microphone is
    /// muted nothing is processed, and the reference must not pile up meanwhile, so that the
    /// canceller finds its usual alignment again on unmute (its filter is kept).
    pub fn discard_render(&self) {
        self.render.lock().compensator.pause();
    }

    /// Processes microphone audio in place: whole 10 ms frames of 48 kHz mono (480 samples,
    /// or a multiple). Each frame first takes its 10 ms of reference from what was played.
    /// About 0.2 ms of work per frame with every stage on: call it on the thread that takes
    /// frames from the microphone's queue to the encoder, not in the device callback.
    pub fn process_capture(&self, samples: &mut [f32]) -> Result<(), VoiceError> {
        if samples.is_empty() || !samples.len().is_multiple_of(FRAME) {
            return Err(VoiceError::FrameSize(samples.len()));
        }
        let mut engine = self.engine.lock();
        let engine = &mut *engine;
        // Unmuted: the hint ends.
        engine.muted.reset();
        let mut speaking = false;
        for frame in samples.chunks_exact_mut(FRAME) {
            let played = self
                .render
                .lock()
                .compensator
                .pull(&mut engine.render_frame);
            if played {
                engine.analyze_render()?;
            }
            speaking = engine.process_frame(frame)?;
        }
        self.speaking.store(speaking, Ordering::Relaxed);
        Ok(())
    }

    /// Watches the microphone while it is muted, instead of processing it: whole 10 ms frames,
    /// as [`process_capture`](Self::process_capture) takes them, left unchanged. Cheap (a level
    /// per frame; the voice activity detector only for loud frames). Returns whether the user
    /// seems to be talking into the muted microphone: loud enough, above any echo of what was
    /// played, and speech to the detector, for about 0.2 s (see [`super::muted`]).
    pub fn observe_muted(&self, samples: &[f32]) -> Result<bool, VoiceError> {
        if samples.is_empty() || !samples.len().is_multiple_of(FRAME) {
            return Err(VoiceError::FrameSize(samples.len()));
        }
        let played_dbfs = power_to_dbfs(self.render.lock().played_power);
        let mut engine = self.engine.lock();
        let engine = &mut *engine;
        let echo_loss = engine.stats.erl_db.map(|db| db as f32);
        let mut talking = false;
        for frame in samples.chunks_exact(FRAME) {
            talking = engine
                .muted
                .observe(frame, played_dbfs, echo_loss, &mut engine.vad);
        }
        engine.stats.speaking = false;
        self.speaking.store(false, Ordering::Relaxed);
        Ok(talking)
    }

    /// See [`observe_muted`](Self::observe_muted): false once the microphone is unmuted.
    pub fn is_muted_talking(&self) -> bool {
        self.engine.lock().muted.is_talking()
    }

    /// Local voice activity: the processed microphone signal carries speech (AGC2's RNN voice
    /// activity detector on the output, above −60 dBFS, held 200 ms past the last speech frame).
    pub fn is_speaking(&self) -> bool {
        self.speaking.load(Ordering::Relaxed)
    }

    pub fn stats(&self) -> VoiceProcessingStats {
        let engine = self.engine.lock();
        let mut stats = engine.stats.clone();
        stats.muted_talking = engine.muted.is_talking();
        let queue = self.render.lock();
        stats.render_frames = queue.frames();
        stats.render_frames_dropped = queue.dropped;
        let drift = queue.compensator.stats();
        stats.clock_drift_ppm = drift.drift_ppm;
        stats.reference_slack_ms = drift.slack_ms;
        stats.reference_underruns = drift.underruns;
        stats.reference_realignments = drift.realignments;
        stats
    }

    pub fn config(&self) -> VoiceProcessingConfig {
        self.engine.lock().config
    }

    /// Switches stages on or off while running. Stages whose setting changed restart their
    /// adaptation; the others keep theirs.
    pub(crate) fn set_config(&self, config: VoiceProcessingConfig) {
        let mut engine = self.engine.lock();
        if engine.config == config {
            return;
        }
        tracing::debug!(?config, "voice processing reconfigured");
        engine.apm.apply_config(config.to_sonora());
        engine.config = config;
        engine.show_config();
        let mut queue = self.render.lock();
        queue.enabled = config.echo_cancellation;
        if !queue.enabled {
            queue.compensator.pause();
        }
    }

    /// Starts over (a device switch: the echo path, delay and noise are new). Adaptation,
    /// queued render audio and voice activity are reset; the configuration and counters stay.
    pub(crate) fn reset(&self) {
        let mut engine = self.engine.lock();
        let config = engine.config;
        engine.apm = build_apm(config);
        engine.vad = new_vad();
        engine.hangover = 0;
        engine.level_power = 0.0;
        engine.stats.resets += 1;
        engine.muted.reset();
        engine.stats.speaking = false;
        engine.stats.speech_probability = 0.0;
        engine.stats.output_level_dbfs = SILENCE_DBFS;
        engine.stats.echo_delay_ms = None;
        engine.stats.erle_db = None;
        engine.stats.erl_db = None;
        self.render.lock().compensator.reset();
        self.speaking.store(false, Ordering::Relaxed);
        tracing::debug!(resets = engine.stats.resets, "voice processing reset");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(freq: f32, amplitude: f32, frames: usize) -> Vec<f32> {
        (0..frames * FRAME)
            .map(|n| amplitude * (2.0 * std::f32::consts::PI * freq * n as f32 / 48_000.0).sin())
            .collect()
    }

    #[test]
    fn config_is_all_on_by_default_and_reads_from_partial_toml_like_json() {
        let c = VoiceProcessingConfig::default();
        assert!(c.echo_cancellation && c.noise_suppression && c.gain_control && c.high_pass_filter);
        let parsed: VoiceProcessingConfig = serde_json::from_str(r#"{"echo_cancellation": false}"#)
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(!parsed.echo_cancellation);
        assert!(parsed.noise_suppression && parsed.gain_control && parsed.high_pass_filter);
        assert_eq!(parsed.noise_suppression_level, NoiseSuppressionLevel::High);
    }

    #[test]
    fn capture_takes_whole_frames_only() {
        let p = VoiceProcessor::default();
        assert!(matches!(
            p.process_capture(&mut [0.0; 479]),
            Err(VoiceError::FrameSize(479))
        ));
        assert!(matches!(
            p.process_capture(&mut []),
            Err(VoiceError::FrameSize(0))
        ));
        assert!(p.process_capture(&mut [0.0; 960]).is_ok());
        assert_eq!(p.stats().capture_frames, 2);
    }

    #[test]
    fn all_stages_off_passes_audio_through() {
        let p = VoiceProcessor::new(VoiceProcessingConfig::all_off());
        let input = tone(440.0, 0.25, 50);
        let mut out = input.clone();
        for frame in out.chunks_mut(FRAME) {
            p.process_capture(frame).unwrap_or_else(|e| panic!("{e}"));
        }
        let max_diff = input
            .iter()
            .zip(&out)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        assert!(max_diff < 1e-4, "changed by up to {max_diff}");
        let stats = p.stats();
        assert!(!stats.echo_cancellation && !stats.gain_control);
        assert_eq!(stats.echo_delay_ms, None);
        // A −15 dBFS sine (amplitude 0.25 → RMS −15 dBFS), after the meter's 100 ms settling.
        assert!((stats.output_level_dbfs + 15.0).abs() < 1.0, "{stats:?}");
    }

    #[test]
    fn render_queue_keeps_frame_alignment_and_drops_the_oldest() {
        let p = VoiceProcessor::default();
        // Odd callback sizes, as a device gives them.
        for _ in 0..100 {
            p.process_render(&[0.1; 441]);
        }
        let stats = p.stats();
        assert_eq!(stats.render_frames, 44_100 / FRAME as u64);
        assert_eq!(stats.render_frames_dropped, 0);
        for _ in 0..120 {
            p.process_render(&[0.1; FRAME]);
        }
        let stats = p.stats();
        assert!(stats.render_frames_dropped >= 100, "{stats:?}");
        assert!(p.render.lock().compensator.available() <= (RATE as usize + FRAME) as f64);
        p.process_capture(&mut [0.0; FRAME])
            .unwrap_or_else(|e| panic!("{e}"));
        // One frame was taken.
        let left = p.render.lock().compensator.available();
        assert!(left <= (RATE as f64) - 400.0, "{left} samples left");
    }

    #[test]
    fn render_is_not_kept_when_echo_cancellation_is_off() {
        let p = VoiceProcessor::new(VoiceProcessingConfig {
            echo_cancellation: false,
            ..Default::default()
        });
        p.process_render(&[0.1; 4_800]);
        assert_eq!(p.stats().render_frames, 0);
        p.set_config(VoiceProcessingConfig::default());
        p.process_render(&[0.1; 4_800]);
        assert_eq!(p.stats().render_frames, 10);
        assert!(p.stats().echo_cancellation);
    }

    #[test]
    fn reset_clears_adaptation_and_keeps_the_configuration() {
        let config = VoiceProcessingConfig {
            noise_suppression: false,
            ..Default::default()
        };
        let p = VoiceProcessor::new(config);
        let mut mic = tone(300.0, 0.1, 50);
        for frame in mic.chunks_mut(FRAME) {
            p.process_render(&[0.05; FRAME]);
            p.process_capture(frame).unwrap_or_else(|e| panic!("{e}"));
        }
        p.process_render(&[0.05; 4 * FRAME]);
        p.reset();
        let stats = p.stats();
        assert_eq!(stats.resets, 1);
        assert_eq!(stats.echo_delay_ms, None);
        assert_eq!(stats.output_level_dbfs, SILENCE_DBFS);
        assert!(!p.is_speaking());
        assert_eq!(p.config(), config);
        assert!(!p.render.lock().compensator.is_active());
        // And it keeps working.
        p.process_capture(&mut [0.0; FRAME])
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(p.stats().capture_frames, 51);
    }

    #[test]
    fn render_and_capture_run_from_two_threads() {
        let p = std::sync::Arc::new(VoiceProcessor::default());
        let render = {
            let p = p.clone();
            std::thread::spawn(move || {
                for _ in 0..200 {
                    p.process_render(&tone(500.0, 0.1, 1));
                }
            })
        };
        for _ in 0..200 {
            let mut frame = vec![0.0; FRAME];
            p.process_capture(&mut frame)
                .unwrap_or_else(|e| panic!("{e}"));
        }
        render
            .join()
            .unwrap_or_else(|_| panic!("render thread panicked"));
        let stats = p.stats();
        assert_eq!(stats.capture_frames, 200);
        assert_eq!(stats.render_frames, 200);
    }
}
