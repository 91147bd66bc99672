//! One local source's handle (the microphone, the camera, the screen), shared by the engine
//! and the source's media thread. The engine sets what the source should do (on or off,
//! the encoders' targets and codecs, a keyframe, another input); the media thread does it and
//! counts what it did. Reading the figures ([`SourceControl::report`]) changes nothing: the
//! sent level is read against the reader's own mark.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use parking_lot::Mutex;
use tokio::sync::mpsc;

use super::sender::{AudioDevices, VideoInput};
use crate::media::device_error::DeviceError;
use crate::media::level::{LevelMark, LevelMeter};
use crate::session::SendTargets;
use crate::types::{CodecSet, Source, VideoCodec};

/// A source's device stopped or started working: `(source, working)`, on changes only.
pub(crate) type HealthReports = mpsc::UnboundedSender<(Source, bool)>;

/// What the engine asks of the source and what the media thread reports back.
pub(crate) struct SourceControl {
    enabled: AtomicBool,
    keyframe_requested: AtomicBool,
    /// Bits per second the encoder should aim at.
    target_bps: AtomicU64,
    /// The tallest picture any viewer shows (0: full size); pictures are halved down to it.
    target_height: AtomicU64,
    /// Which video codecs connected links use (by [`VideoCodec::index`]): each is encoded.
    codecs_in_use: [AtomicBool; 2],
    /// An input chosen during the call (the screen picked to share, another camera).
    chosen_input: Mutex<Option<VideoInput>>,
    /// Audio devices chosen during the call.
    chosen_audio: Mutex<Option<AudioDevices>>,
    counters: Counters,
    source: Source,
    /// The source's own device works (a camera that opened, a microphone): what others are
    /// told it sends depends on it.
    working: AtomicBool,
    health: HealthReports,
}

/// What the media thread did, cumulative.
#[derive(Default)]
struct Counters {
    frames_encoded: AtomicU64,
    /// Units dropped because the fan-out queue was full.
    dropped: AtomicU64,
    errors: AtomicU64,
    /// Keyframes receivers asked for (PLI/FIR).
    keyframe_requests_from_peers: AtomicU64,
    /// Everything sent so far (audio), for the level.
    sent_level: Mutex<LevelMeter>,
    /// Height of the last picture sent.
    sent_height: AtomicU64,
    /// The last device failure (a microphone or speaker that vanished), for the user.
    device_error: Mutex<Option<DeviceError>>,
    /// Audio device switches done during the call.
    audio_switches: AtomicU64,
}

/// The source's figures at one reading.
#[derive(Debug, Clone)]
pub(crate) struct SourceFigures {
    pub enabled: bool,
    pub frames_encoded: u64,
    pub target_bps: u64,
    pub dropped: u64,
    pub errors: u64,
    pub keyframe_requests_from_peers: u64,
    pub sent_height: u64,
    pub device_error: Option<DeviceError>,
    pub audio_switches: u64,
    /// Everything sent so far, as a mark to take a level against.
    pub sent_level: LevelMark,
}

impl SourceControl {
    /// `source`, off, aiming at `target_bps` once on; changes of its device's health go to
    /// `health`.
    pub(crate) fn new(source: Source, target_bps: u64, health: HealthReports) -> Self {
        SourceControl {
            enabled: AtomicBool::new(false),
            keyframe_requested: AtomicBool::new(true),
            target_bps: AtomicU64::new(target_bps),
            target_height: AtomicU64::new(0),
            codecs_in_use: [AtomicBool::new(false), AtomicBool::new(false)],
            chosen_input: Mutex::new(None),
            chosen_audio: Mutex::new(None),
            counters: Counters::default(),
            source,
            working: AtomicBool::new(true),
            health,
        }
    }

    // What the engine asks.

    /// Switches the source on or off; switched on, it starts with a keyframe.
    pub(crate) fn set_enabled(&self, on: bool) {
        let was = self.enabled.swap(on, Ordering::SeqCst);
        if on && !was {
            self.keyframe_requested.store(true, Ordering::SeqCst);
        }
    }

    /// The next picture is a keyframe (a new link, a lost picture).
    pub(crate) fn request_keyframe(&self) {
        self.keyframe_requested.store(true, Ordering::SeqCst);
    }

    /// A receiver asked for a keyframe (PLI/FIR); counted apart from the engine's own.
    pub(crate) fn count_keyframe_request_from_peer(&self) {
        self.counters
            .keyframe_requests_from_peers
            .fetch_add(1, Ordering::Relaxed);
    }

    /// The encoders aim at `bps`, pictures no taller than `max_height` (0: full size), in
    /// the codecs of `codecs`.
    pub(crate) fn set_targets(&self, bps: u64, max_height: u32, codecs: CodecSet) {
        self.target_bps.store(bps, Ordering::Relaxed);
        self.target_height
            .store(u64::from(max_height), Ordering::Relaxed);
        for codec in VideoCodec::ALL {
            self.codecs_in_use[codec.index()].store(codecs.contains(codec), Ordering::Relaxed);
        }
    }

    /// Switches to `input` (another camera, the screen picked to share).
    pub(crate) fn choose_input(&self, input: VideoInput) {
        *self.chosen_input.lock() = Some(input);
    }

    /// Switches to these audio devices.
    pub(crate) fn choose_audio(&self, devices: AudioDevices) {
        *self.chosen_audio.lock() = Some(devices);
    }

    /// The figures now; nothing is reset.
    pub(crate) fn figures(&self) -> SourceFigures {
        let c = &self.counters;
        let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        SourceFigures {
            enabled: self.enabled.load(Ordering::Relaxed),
            frames_encoded: load(&c.frames_encoded),
            target_bps: load(&self.target_bps),
            dropped: load(&c.dropped),
            errors: load(&c.errors),
            keyframe_requests_from_peers: load(&c.keyframe_requests_from_peers),
            sent_height: load(&c.sent_height),
            device_error: c.device_error.lock().clone(),
            audio_switches: load(&c.audio_switches),
            sent_level: c.sent_level.lock().mark(),
        }
    }

    // What the media thread reads.

    pub(crate) fn is_enabled(&self) -> bool {
        self.enabled.load(Ordering::Relaxed)
    }

    /// Whether the next picture is to be a keyframe (asked once: reading clears it).
    pub(crate) fn take_keyframe_request(&self) -> bool {
        self.keyframe_requested.swap(false, Ordering::SeqCst)
    }

    pub(crate) fn target_bps(&self) -> u64 {
        self.target_bps.load(Ordering::Relaxed)
    }

    pub(crate) fn target_height(&self) -> usize {
        self.target_height.load(Ordering::Relaxed) as usize
    }

    pub(crate) fn codec_in_use(&self, codec: VideoCodec) -> bool {
        self.codecs_in_use[codec.index()].load(Ordering::Relaxed)
    }

    pub(crate) fn take_chosen_input(&self) -> Option<VideoInput> {
        self.chosen_input.lock().take()
    }

    pub(crate) fn take_chosen_audio(&self) -> Option<AudioDevices> {
        self.chosen_audio.lock().take()
    }

    // What the media thread reports.

    /// A new input, a new picture size or a lost unit: the next picture is a keyframe.
    pub(crate) fn need_keyframe(&self) {
        self.keyframe_requested.store(true, Ordering::SeqCst);
    }

    /// A unit was encoded.
    pub(crate) fn count_encoded(&self) {
        self.counters.frames_encoded.fetch_add(1, Ordering::Relaxed);
    }

    /// A unit was dropped (the fan-out queue was full).
    pub(crate) fn count_dropped(&self) {
        self.counters.dropped.fetch_add(1, Ordering::Relaxed);
    }

    /// Something failed (an encode, a capture); logged where it happened.
    pub(crate) fn count_error(&self) {
        self.counters.errors.fetch_add(1, Ordering::Relaxed);
    }

    /// A device beside the source failed (the speaker of the audio path): counted, and kept
    /// for the user until it works again; the source itself goes on.
    pub(crate) fn device_failed(&self, error: DeviceError) {
        self.count_error();
        *self.counters.device_error.lock() = Some(error);
    }

    /// The source's own device failed (a camera that cannot open, a microphone that went
    /// away): as [`SourceControl::device_failed`], and the source counts as not sending.
    pub(crate) fn source_failed(&self, error: DeviceError) {
        self.device_failed(error);
        if self.working.swap(false, Ordering::SeqCst) {
            let _ = self.health.send((self.source, false));
        }
    }

    /// Whether the source's own device works (as far as is known).
    pub(crate) fn works(&self) -> bool {
        self.working.load(Ordering::SeqCst)
    }

    /// Forgets the last device failure (new devices are being opened).
    pub(crate) fn clear_device_error(&self) {
        *self.counters.device_error.lock() = None;
    }

    /// The source's own device works (again).
    pub(crate) fn source_works(&self) {
        self.clear_device_error();
        if !self.working.swap(true, Ordering::SeqCst) {
            let _ = self.health.send((self.source, true));
        }
    }

    /// Audio samples that were sent, for the level.
    pub(crate) fn add_sent_audio(&self, pcm: &[f32]) {
        self.counters.sent_level.lock().add(pcm);
    }

    /// The height of the picture being sent; true when it changed.
    pub(crate) fn set_sent_height(&self, height: usize) -> bool {
        self.counters
            .sent_height
            .swap(height as u64, Ordering::Relaxed)
            != height as u64
    }

    pub(crate) fn count_audio_switch(&self) {
        self.counters.audio_switches.fetch_add(1, Ordering::Relaxed);
    }
}

/// Points the video sources at what the session decided.
pub(crate) fn apply_targets(camera: &SourceControl, screen: &SourceControl, t: &SendTargets) {
    camera.set_targets(t.camera_bps, t.camera_max_height, t.codecs);
    screen.set_targets(t.screen_bps, 0, t.codecs);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn control(source: Source) -> SourceControl {
        SourceControl::new(source, 800_000, mpsc::unbounded_channel().0)
    }

    #[test]
    fn only_the_sources_own_device_counts_and_only_changes_are_reported() {
        let (health, mut reports) = mpsc::unbounded_channel();
        let control = SourceControl::new(Source::Audio, 32_000, health);
        let lost = || {
            DeviceError::new(
                "speaker",
                crate::media::device_error::DeviceErrorKind::Lost,
                "gone",
            )
        };
        control.device_failed(lost());
        assert!(
            reports.try_recv().is_err(),
            "a speaker does not stop the microphone"
        );
        control.source_failed(lost());
        control.source_failed(lost());
        assert_eq!(reports.try_recv().ok(), Some((Source::Audio, false)));
        assert!(reports.try_recv().is_err(), "reported once");
        control.source_works();
        control.source_works();
        assert_eq!(reports.try_recv().ok(), Some((Source::Audio, true)));
        assert!(reports.try_recv().is_err());
        assert_eq!(control.figures().device_error, None);
    }

    #[test]
    fn switching_on_asks_for_a_keyframe_and_a_request_is_taken_once() {
        let control = control(Source::Camera);
        assert!(
            control.take_keyframe_request(),
            "a source starts with a keyframe"
        );
        control.set_enabled(true);
        assert!(control.take_keyframe_request());
        assert!(!control.take_keyframe_request());
        control.set_enabled(true);
        assert!(!control.take_keyframe_request(), "already on: no keyframe");
        control.request_keyframe();
        assert!(control.take_keyframe_request());
    }

    #[test]
    fn reading_the_figures_twice_reads_the_same() {
        let control = control(Source::Audio);
        control.add_sent_audio(&[0.5; 960]);
        control.count_encoded();
        control.device_failed(DeviceError::new(
            "microphone",
            crate::media::device_error::DeviceErrorKind::Lost,
            "gone",
        ));
        let first = control.figures();
        let second = control.figures();
        assert_eq!(first.frames_encoded, second.frames_encoded);
        assert_eq!(first.errors, 1);
        assert_eq!(first.device_error, second.device_error);
        let start = LevelMark::default();
        assert_eq!(
            first.sent_level.dbfs_since(start),
            second.sent_level.dbfs_since(start)
        );
        assert!(first.sent_level.dbfs_since(start).is_some());
        control.clear_device_error();
        assert_eq!(control.figures().device_error, None);
    }

    #[test]
    fn targets_set_bitrate_height_and_codecs() {
        let control = control(Source::Camera);
        control.set_targets(500_000, 360, CodecSet::EMPTY.with(VideoCodec::Vp8));
        assert_eq!(control.target_bps(), 500_000);
        assert_eq!(control.target_height(), 360);
        assert!(control.codec_in_use(VideoCodec::Vp8));
        assert!(!control.codec_in_use(VideoCodec::H264));
    }
}
