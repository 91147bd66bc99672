//! The sending half of a call: each local source is captured and encoded once, on its own
//! media thread, and the same encoded units go to every peer connection. A source that is
//! switched off stops capturing and encoding (nothing is sent). The video encoders follow the
//! weakest link: the lowest bandwidth estimate among the connected peers.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::mpsc;

use crate::media::capture::{CaptureError, SyntheticCapture, VideoCapture};
use crate::media::device_error::{DeviceError, DeviceErrorKind};
use crate::media::h264::EncoderSettings;
use crate::media::opus_codec::{OpusEncoder, OpusSettings};
use crate::media::synthetic::PatternKind;
use crate::media::tone::ToneSource;
use crate::media::video_codec::{VideoEncoder, encoder_for};
use crate::media::voice::{SimulatedRoom, SimulatedRoomConfig, VoiceProcessor};
use crate::rtc::EncodedUnit;
use crate::session::SendTargets;
use crate::types::{Source, VideoCodec};

use super::audio::{FRAME, PlayoutMixer};
use super::pictures::{PictureKey, PictureSink, offer_preview};
use super::source::{HealthReports, SourceControl};

/// Where a video source comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum VideoInput {
    /// The stamped test pattern (a test input, not a device).
    Synthetic {
        width: usize,
        height: usize,
        fps: f64,
    },
    /// A real camera (nokhwa), by index, at the format closest to this size and rate.
    Camera {
        index: u32,
        width: usize,
        height: usize,
        fps: f64,
    },
    /// The desktop portal's screen or window (Wayland; the user picks), through scap.
    PortalScreen {
        fps: f64,
    },
    /// An X11 screen (`DISPLAY`), whole: the display with this id, or the primary one.
    X11Screen {
        fps: f64,
        display: Option<u32>,
    },
    /// One X11 application window, by its id.
    X11Window {
        fps: f64,
        window: u32,
    },
    None,
}

/// Where the microphone signal comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum AudioInput {
    /// The marker tone (a test input, not a device).
    Tone,
    /// A quiet room: the microphone hears only what the (simulated) room sends back.
    Silence,
    /// A real microphone (cpal), by name, or the default one.
    Microphone(Option<String>),
    /// Recorded speech (48 kHz mono s16le raw, looped) with the markers laid over it (a test
    /// input: a talker an echo canceller can learn from, unlike a steady tone).
    Speech(std::path::PathBuf),
    None,
}

/// The audio path around the microphone: what is played, and what processes the capture.
#[derive(Clone)]
pub(crate) struct AudioSetup {
    pub input: AudioInput,
    /// Remote audio to play (the echo canceller's reference).
    pub mixer: PlayoutMixer,
    /// Echo cancellation, noise suppression, gain control; `None` runs without the stage.
    pub voice: Option<Arc<VoiceProcessor>>,
    /// The headless participant's simulated room: playback comes back into the microphone.
    pub room: Option<SimulatedRoomConfig>,
    /// Play the mix on a real output device (cpal), by name (`None`: the default one);
    /// not set: nothing is played (the headless participant).
    pub speaker: Option<Option<String>>,
}

/// A microphone and a speaker, by name (`None`: the system's default).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AudioDevices {
    pub microphone: Option<String>,
    pub speaker: Option<String>,
}

/// The running sources.
pub(crate) struct MediaSender {
    pub audio: Arc<SourceControl>,
    pub camera: Arc<SourceControl>,
    pub screen: Arc<SourceControl>,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl MediaSender {
    /// Starts one thread per configured source; units go to `out`, changes of a source's
    /// device health to `health`.
    pub fn start(
        camera: VideoInput,
        screen: VideoInput,
        audio: AudioSetup,
        out: mpsc::Sender<(Source, EncodedUnit)>,
        preview: Option<Arc<dyn PictureSink>>,
        health: HealthReports,
    ) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let control = |source, bps| Arc::new(SourceControl::new(source, bps, health.clone()));
        let controls = (
            control(Source::Audio, 32_000),
            control(Source::Camera, 800_000),
            control(Source::Screen, 1_200_000),
        );
        let mut threads = Vec::new();
        if audio.input != AudioInput::None {
            let (control, stop, out) = (controls.0.clone(), stop.clone(), out.clone());
            threads.extend(spawn("classroom-audio", move || {
                audio_thread(audio, control, stop, out)
            }));
        }
        for (input, control, source) in [
            (camera, controls.1.clone(), Source::Camera),
            (screen, controls.2.clone(), Source::Screen),
        ] {
            if input == VideoInput::None {
                continue;
            }
            let (stop, out) = (stop.clone(), out.clone());
            let preview = preview
                .clone()
                .map(|sink| (sink, PictureKey::local(source)));
            let name = format!("classroom-{source:?}-send").to_lowercase();
            threads.extend(spawn(&name, move || {
                video_thread(input, source, control, stop, out, preview)
            }));
        }
        MediaSender {
            audio: controls.0,
            camera: controls.1,
            screen: controls.2,
            stop,
            threads,
        }
    }

    pub fn control(&self, source: Source) -> &Arc<SourceControl> {
        match source {
            Source::Audio => &self.audio,
            Source::Camera => &self.camera,
            Source::Screen => &self.screen,
        }
    }

    pub(crate) fn set_enabled(&self, audio: bool, camera: bool, screen: bool) {
        for (control, on) in [
            (&self.audio, audio),
            (&self.camera, camera),
            (&self.screen, screen),
        ] {
            control.set_enabled(on);
        }
    }

    pub(crate) fn request_keyframe(&self, source: Source) {
        self.control(source).request_keyframe();
    }

    /// Points the video encoders at what the session decided (bitrates, the camera's
    /// height, the codecs to encode).
    pub(crate) fn apply_targets(&self, targets: &SendTargets) {
        super::source::apply_targets(&self.camera, &self.screen, targets);
    }

    pub(crate) fn stop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

impl Drop for MediaSender {
    fn drop(&mut self) {
        self.stop();
    }
}

fn spawn(name: &str, body: impl FnOnce() + Send + 'static) -> Option<JoinHandle<()>> {
    match std::thread::Builder::new()
        .name(name.to_owned())
        .spawn(body)
    {
        Ok(handle) => Some(handle),
        Err(error) => {
            tracing::error!(%error, name, "cannot start a media thread");
            None
        }
    }
}

pub fn open_video(
    input: &VideoInput,
    source: Source,
) -> Result<Box<dyn VideoCapture>, DeviceError> {
    let device = match input {
        VideoInput::Camera { index, .. } => format!("camera {index}"),
        _ => source.name().to_owned(),
    };
    let failed = |error: CaptureError| DeviceError::from_capture(device.clone(), &error);
    match input {
        VideoInput::Synthetic { width, height, fps } => {
            let kind = if source == Source::Screen {
                PatternKind::Screen
            } else {
                PatternKind::Camera
            };
            Ok(Box::new(SyntheticCapture::new(*width, *height, *fps, kind)))
        }
        #[cfg(target_os = "linux")]
        VideoInput::X11Screen { display, .. } => {
            crate::media::screen::X11ScreenCapture::open(*display, None)
                .map(|capture| Box::new(capture) as Box<dyn VideoCapture>)
                .map_err(failed)
        }
        #[cfg(target_os = "linux")]
        VideoInput::X11Window { window, .. } => {
            crate::media::screen::X11ScreenCapture::open_window(*window)
                .map(|capture| Box::new(capture) as Box<dyn VideoCapture>)
                .map_err(failed)
        }
        #[cfg(not(target_os = "linux"))]
        VideoInput::X11Screen { .. } | VideoInput::X11Window { .. } => Err(DeviceError::new(
            device,
            DeviceErrorKind::NotFound,
            "X11 capture exists on Linux only",
        )),
        VideoInput::Camera {
            index,
            width,
            height,
            fps,
        } => crate::media::camera::open_camera_capture(
            *index,
            *width as u32,
            *height as u32,
            fps.round() as u32,
        )
        .map(|capture| Box::new(capture) as Box<dyn VideoCapture>)
        .map_err(failed),
        VideoInput::PortalScreen { fps } => {
            crate::media::portal_screen::open_portal_capture(fps.round() as u32)
                .map(|capture| Box::new(capture) as Box<dyn VideoCapture>)
                .map_err(failed)
        }
        VideoInput::None => Err(DeviceError::new(
            device,
            DeviceErrorKind::NotFound,
            "no video input",
        )),
    }
}

const VIDEO_CODECS: [VideoCodec; 2] = [VideoCodec::H264, VideoCodec::Vp8];

fn video_thread(
    input: VideoInput,
    source: Source,
    control: Arc<SourceControl>,
    stop: Arc<AtomicBool>,
    out: mpsc::Sender<(Source, EncodedUnit)>,
    preview: Option<(Arc<dyn PictureSink>, PictureKey)>,
) {
    let fps = match input {
        VideoInput::Synthetic { fps, .. }
        | VideoInput::X11Screen { fps, .. }
        | VideoInput::X11Window { fps, .. }
        | VideoInput::PortalScreen { fps }
        | VideoInput::Camera { fps, .. } => fps.max(1.0),
        VideoInput::None => return,
    };
    let frame_interval = Duration::from_secs_f64(1.0 / fps);
    let mut capture: Option<Box<dyn VideoCapture>> = None;
    // One encoder per codec that a connected link uses; the same picture goes to each.
    let mut encoders: [Option<(Box<dyn VideoEncoder>, u64)>; 2] = [None, None];
    let mut next_due = Instant::now();
    let mut input = input;
    while !stop.load(Ordering::Relaxed) {
        if let Some(chosen) = control.take_chosen_input() {
            // Another device or screen was picked: switch to it (a keyframe starts it).
            input = chosen;
            capture = None;
            control.need_keyframe();
        }
        if !control.is_enabled() {
            // Off: the device is released and nothing is encoded.
            if capture.is_some()
                && let Some((sink, key)) = &preview
            {
                sink.clear(key);
            }
            capture = None;
            encoders = [None, None];
            std::thread::sleep(Duration::from_millis(20));
            continue;
        }
        if capture.is_none() {
            match open_video(&input, source) {
                Ok(opened) => {
                    capture = Some(opened);
                    control.source_works();
                }
                Err(error) => {
                    // Said once; the retries (every second) only in the debug log.
                    if control.works() {
                        tracing::warn!(?source, %error, "cannot open the video source");
                    } else {
                        tracing::debug!(?source, %error, "the video source still cannot open");
                    }
                    control.source_failed(error);
                    std::thread::sleep(Duration::from_secs(1));
                    continue;
                }
            }
        }
        let Some(capturing) = capture.as_mut() else {
            continue;
        };
        // Synthetic sources pace themselves; screens are captured on this thread's clock.
        if matches!(
            input,
            VideoInput::X11Screen { .. }
                | VideoInput::X11Window { .. }
                | VideoInput::PortalScreen { .. }
        ) {
            let now = Instant::now();
            if next_due > now {
                std::thread::sleep(next_due - now);
            }
            next_due = next_due.max(now) + frame_interval;
        }
        let frame = match capturing.capture() {
            Ok(frame) => frame,
            Err(error) => {
                // A source that vanished: reported, retried (re-opened) after a pause.
                tracing::warn!(?source, %error, "capture failed");
                control.count_error();
                capture = None;
                std::thread::sleep(Duration::from_millis(500));
                continue;
            }
        };
        if let Some((sink, key)) = &preview {
            offer_preview(sink.as_ref(), key, &frame);
        }
        // Only as tall as the tallest viewer shows it.
        let mut frame = frame;
        let wanted = control.target_height();
        while wanted > 0 && frame.height / 2 >= wanted && frame.height >= 4 {
            frame = frame.half_size();
        }
        if control.set_sent_height(frame.height) {
            // A new size starts with a keyframe (the encoder restarts for it anyway).
            control.need_keyframe();
        }
        let keyframe = control.take_keyframe_request();
        let target = control.target_bps();
        for codec in VIDEO_CODECS {
            let slot = &mut encoders[codec.index()];
            if !control.codec_in_use(codec) {
                *slot = None; // no link uses it: no encoding for it
                continue;
            }
            if slot.is_none() {
                let settings = if source == Source::Screen {
                    EncoderSettings::screen(target as u32, fps as f32)
                } else {
                    EncoderSettings::camera(target as u32, fps as f32)
                };
                match encoder_for(codec, settings) {
                    Ok(created) => *slot = Some((created, target)),
                    Err(error) => {
                        tracing::error!(?source, ?codec, %error, "cannot create the encoder");
                        control.count_error();
                        continue;
                    }
                }
            }
            let Some((encoder, applied_bps)) = slot.as_mut() else {
                continue;
            };
            if target.abs_diff(*applied_bps) * 10 > *applied_bps {
                if let Err(error) = encoder.set_bitrate(target as u32) {
                    tracing::warn!(?source, ?codec, %error, "bitrate change refused");
                }
                *applied_bps = target;
            }
            if keyframe {
                encoder.request_keyframe();
            }
            let encoded = match encoder.encode(&frame) {
                Ok(encoded) => encoded,
                Err(error) => {
                    tracing::warn!(?source, ?codec, %error, "encode failed");
                    control.count_error();
                    continue;
                }
            };
            if encoded.data.is_empty() {
                continue;
            }
            control.count_encoded();
            let unit = EncodedUnit {
                data: Bytes::from(encoded.data),
                duration: frame_interval,
                codec: Some(codec),
                audio_level: None,
            };
            if out.try_send((source, unit)).is_err() {
                control.count_dropped();
                control.need_keyframe();
            }
        }
    }
}

const OPUS_FRAME: usize = 960; // 20 ms at 48 kHz

/// One 10 ms frame of the microphone path: through the voice processing stage, then, every
/// 20 ms, to Opus and the peers.
fn captured(
    mic: &mut [f32],
    setup: &AudioSetup,
    pending: &mut Vec<f32>,
    encoder: &mut OpusEncoder,
    control: &SourceControl,
    out: &mpsc::Sender<(Source, EncodedUnit)>,
) {
    if let Some(voice) = &setup.voice {
        if !control.is_enabled() {
            // Muted: nothing is sent, so nothing is processed (it costs about 2 % of a core);
            // the microphone is only watched for someone talking into it (the hint).
            voice.discard_render();
            if let Err(error) = voice.observe_muted(mic) {
                tracing::warn!(%error, "muted microphone frame");
            }
            pending.clear();
            return;
        }
        if let Err(error) = voice.process_capture(mic) {
            tracing::warn!(%error, "voice processing failed on a frame");
            control.count_error();
        }
    }
    pending.extend_from_slice(mic);
    if pending.len() >= OPUS_FRAME {
        let pcm: Vec<f32> = pending.drain(..OPUS_FRAME).collect();
        send_audio(encoder, &pcm, control, out);
    }
}

/// Encodes 20 ms of what the microphone path produced and hands it to the peers.
fn send_audio(
    encoder: &mut OpusEncoder,
    pcm: &[f32],
    control: &SourceControl,
    out: &mpsc::Sender<(Source, EncodedUnit)>,
) {
    if !control.is_enabled() {
        return;
    }
    control.add_sent_audio(pcm);
    let packet = match encoder.encode(pcm) {
        Ok(packet) => packet,
        Err(error) => {
            tracing::warn!(%error, "Opus encode failed");
            control.count_error();
            return;
        }
    };
    control.count_encoded();
    let unit = EncodedUnit {
        data: Bytes::from(packet),
        duration: Duration::from_millis(20),
        codec: None,
        audio_level: Some(crate::media::level::rtp_audio_level(
            crate::media::level::level_dbfs(pcm),
        )),
    };
    if out.try_send((Source::Audio, unit)).is_err() {
        control.count_dropped();
    }
}

/// The open devices of [`device_audio_thread`]; dropping one closes its stream.
#[expect(dead_code, reason = "held for their streams: dropping one closes it")]
#[derive(Default)]
struct OpenDevices {
    microphone: Option<crate::media::audio_device::Microphone>,
    speaker: Option<crate::media::audio_device::Speaker>,
}

/// Opens the speaker (its callback pulls the mix and hands exactly what it plays to the echo
/// canceller) and the microphone (frames into `frames`); a device that cannot be opened is
/// reported and the other one still runs.
fn open_devices(
    setup: &AudioSetup,
    devices: &AudioDevices,
    frames: &crate::media::queue::FrameQueue<crate::media::audio_device::AudioFrame>,
    events: &std::sync::mpsc::Sender<crate::media::audio_device::AudioEvent>,
    control: &SourceControl,
) -> OpenDevices {
    use crate::media::audio_device::{open_microphone, open_speaker};
    let speaker = setup.speaker.as_ref().and_then(|_| {
        let mixer = setup.mixer.clone();
        let voice = setup.voice.clone();
        let mut carry: Vec<f32> = Vec::new();
        let fill = move |out: &mut [f32]| {
            while carry.len() < out.len() {
                carry.extend(mixer.pull());
            }
            out.copy_from_slice(&carry[..out.len()]);
            carry.drain(..out.len());
            if let Some(voice) = &voice {
                voice.process_render(out);
            }
        };
        match open_speaker(devices.speaker.as_deref(), fill, events.clone()) {
            Ok(speaker) => Some(speaker),
            Err(error) => {
                report_audio_failure(control, DeviceError::from_audio("speaker", &error), false);
                None
            }
        }
    });
    let microphone = match &setup.input {
        AudioInput::Microphone(_) => {
            match open_microphone(
                devices.microphone.as_deref(),
                frames.clone(),
                events.clone(),
            ) {
                Ok(microphone) => Some(microphone),
                Err(error) => {
                    let error = DeviceError::from_audio("microphone", &error);
                    report_audio_failure(control, error, true);
                    None
                }
            }
        }
        _ => None,
    };
    OpenDevices {
        microphone,
        speaker,
    }
}

/// A failed audio device, logged and kept for the user; a microphone's (`microphone`) also
/// stops the source counting as sent, a speaker's does not.
fn report_audio_failure(control: &SourceControl, error: DeviceError, microphone: bool) {
    tracing::warn!(%error, "audio device");
    if microphone {
        control.source_failed(error);
    } else {
        control.device_failed(error);
    }
}

/// Real devices: the speaker's callback pulls the mix (and hands exactly what it plays to the
/// echo canceller); the microphone's frames arrive through a queue, are processed and sent. A
/// device that fails is reported (the stats' `deviceError`) and the rest goes on. Devices
/// chosen during the call ([`SourceControl::choose_audio`]) replace the open ones: the old
/// streams are closed, the voice processing starts over (a new echo path, delay, noise and
/// clock), and the new ones are opened.
fn device_audio_thread(
    setup: AudioSetup,
    mut encoder: OpusEncoder,
    control: Arc<SourceControl>,
    stop: Arc<AtomicBool>,
    out: mpsc::Sender<(Source, EncodedUnit)>,
) {
    use crate::media::audio_device::AudioEvent;
    use crate::media::queue::FrameQueue;

    let (events_tx, events) = std::sync::mpsc::channel::<AudioEvent>();
    let frames: FrameQueue<crate::media::audio_device::AudioFrame> = FrameQueue::new(50);
    let mut devices = AudioDevices {
        microphone: match &setup.input {
            AudioInput::Microphone(name) => name.clone(),
            _ => None,
        },
        speaker: setup.speaker.clone().flatten(),
    };
    // Held for their streams (dropped: closed).
    let mut _open = open_devices(&setup, &devices, &frames, &events_tx, &control);
    let mut pending: Vec<f32> = Vec::with_capacity(OPUS_FRAME);
    while !stop.load(Ordering::Relaxed) {
        let chosen = control.take_chosen_audio();
        if let Some(chosen) = chosen
            && chosen != devices
        {
            tracing::info!(?chosen, "switching audio devices");
            // Close first (some devices open once at a time), then start the stage over.
            _open = OpenDevices::default();
            let _stale = frames.pop_latest();
            pending.clear();
            if let Some(voice) = &setup.voice {
                voice.reset();
            }
            control.clear_device_error();
            devices = chosen;
            _open = open_devices(&setup, &devices, &frames, &events_tx, &control);
            if _open.microphone.is_some() || !matches!(setup.input, AudioInput::Microphone(_)) {
                control.source_works();
            }
            control.count_audio_switch();
        }
        while let Ok(AudioEvent::DeviceLost {
            name,
            input,
            kind,
            message,
        }) = events.try_recv()
        {
            report_audio_failure(&control, DeviceError::new(name, kind, message), input);
        }
        let Ok(frame) = frames.pop_timeout(Duration::from_millis(100)) else {
            continue;
        };
        let mut mic = frame.samples;
        if mic.len() != FRAME {
            continue;
        }
        captured(&mut mic, &setup, &mut pending, &mut encoder, &control, &out);
    }
}

/// The audio path: with a real microphone or speaker, the devices' own clocks drive it
/// ([`device_audio_thread`]); without, a 10 ms clock of its own, like a sound card whose output
/// and input share a clock.
fn audio_thread(
    setup: AudioSetup,
    control: Arc<SourceControl>,
    stop: Arc<AtomicBool>,
    out: mpsc::Sender<(Source, EncodedUnit)>,
) {
    let mut encoder = match OpusEncoder::new(OpusSettings::default()) {
        Ok(encoder) => encoder,
        Err(error) => {
            tracing::error!(%error, "cannot create the Opus encoder");
            control.count_error();
            return;
        }
    };
    if matches!(setup.input, AudioInput::Microphone(_)) || setup.speaker.is_some() {
        return device_audio_thread(setup, encoder, control, stop, out);
    }
    let mut room = match setup.room.map(SimulatedRoom::new).transpose() {
        Ok(room) => room,
        Err(error) => {
            tracing::error!(%error, "the simulated room is misconfigured");
            control.count_error();
            return;
        }
    };
    let speech: Vec<f32> = match &setup.input {
        AudioInput::Speech(path) => match std::fs::read(path) {
            Ok(bytes) if bytes.len() >= 2 * FRAME => bytes
                .chunks_exact(2)
                .map(|pair| f32::from(i16::from_le_bytes([pair[0], pair[1]])) / 32768.0)
                .collect(),
            Ok(_) => {
                tracing::error!(path = %path.display(), "the speech file is too short");
                control.count_error();
                return;
            }
            Err(error) => {
                tracing::error!(path = %path.display(), %error, "cannot read the speech file");
                control.count_error();
                return;
            }
        },
        _ => Vec::new(),
    };
    let mut speech_position = 0usize;
    let mut tone = match setup.input {
        AudioInput::Speech(_) => ToneSource::markers_only(),
        _ => ToneSource::new(),
    };
    let period = Duration::from_millis(10);
    let mut next_due = Instant::now();
    let mut pending: Vec<f32> = Vec::with_capacity(OPUS_FRAME);
    let mut mic = vec![0.0f32; FRAME];
    while !stop.load(Ordering::Relaxed) {
        let now = Instant::now();
        if next_due > now {
            std::thread::sleep(next_due - now);
        }
        next_due = next_due.max(now) + period;

        // Played: everyone's audio mixed; the echo canceller hears exactly this.
        let played = setup.mixer.pull();
        if let Some(voice) = &setup.voice {
            voice.process_render(&played);
        }
        // Captured: the talker (tone or silence), plus the room's echo of what was played.
        // The talker runs on when muted, like a person: muting stops the sending.
        let near = match setup.input {
            AudioInput::Tone => tone.next_frame(FRAME),
            AudioInput::Speech(_) => {
                let mut frame = tone.next_frame(FRAME);
                for sample in &mut frame {
                    *sample += speech[speech_position];
                    speech_position = (speech_position + 1) % speech.len();
                }
                frame
            }
            _ => vec![0.0; FRAME],
        };
        match room.as_mut() {
            Some(room) => {
                if let Err(error) = room.process(&played, &near, &mut mic) {
                    tracing::warn!(%error, "simulated room");
                    mic.copy_from_slice(&near);
                }
            }
            None => mic.copy_from_slice(&near),
        }
        captured(&mut mic, &setup, &mut pending, &mut encoder, &control, &out);
    }
}
