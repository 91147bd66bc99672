//! Microphone and speaker streams through `cpal`: whatever the device's rate and channel
//! layout, the rest of the app sees 48 kHz mono `f32` in 10 ms frames. The device callbacks
//! never block: captured frames go into a drop-oldest [`FrameQueue`], playback pulls from a
//! caller-supplied source, and device errors (a device that vanishes) become [`AudioEvent`]s.

use super::device_error::DeviceErrorKind;
use std::sync::mpsc::Sender;
use std::time::{Duration, Instant};

use cpal::traits::{DeviceTrait, HostTrait, StreamTrait};
use cpal::{SampleFormat, StreamConfig};

use crate::media::queue::FrameQueue;

/// The app's internal audio rate.
pub const RATE: u32 = 48_000;
/// Samples in one 10 ms frame at [`RATE`].
pub const FRAME: usize = 480;

#[derive(Debug, thiserror::Error)]
pub enum AudioError {
    #[error("no audio {0} device")]
    NoDevice(&'static str),
    #[error("audio device {0:?} not found")]
    NotFound(String),
    #[error("audio device {name:?}: {message}")]
    Device {
        name: String,
        kind: DeviceErrorKind,
        message: String,
    },
    #[error("audio device {name:?} uses {format:?} samples, which is not supported")]
    UnsupportedFormat { name: String, format: SampleFormat },
}

/// Reported from the device threads while a stream runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AudioEvent {
    /// The stream failed (e.g. the device was unplugged): the session should tell the user and
    /// offer another device.
    DeviceLost {
        name: String,
        /// A microphone (else a speaker).
        input: bool,
        kind: DeviceErrorKind,
        message: String,
    },
}

/// 10 ms of 48 kHz mono audio.
#[derive(Debug, Clone, PartialEq)]
pub struct AudioFrame {
    pub samples: Vec<f32>,
    /// Capture time on the media clock of the stream.
    pub capture_time: Duration,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AudioDeviceInfo {
    pub name: String,
    pub is_default: bool,
}

fn device_name(device: &cpal::Device) -> String {
    device
        .description()
        .map(|d| d.name().to_owned())
        .unwrap_or_else(|_| "unknown device".into())
}

fn device_error(name: &str, e: cpal::Error) -> AudioError {
    AudioError::Device {
        name: name.to_owned(),
        kind: kind_of(&e),
        message: e.to_string(),
    }
}

/// cpal's error kinds as the kinds a user can act on.
fn kind_of(error: &cpal::Error) -> DeviceErrorKind {
    use cpal::ErrorKind;
    match error.kind() {
        ErrorKind::PermissionDenied => DeviceErrorKind::Permission,
        ErrorKind::DeviceBusy => DeviceErrorKind::Busy,
        ErrorKind::DeviceNotAvailable | ErrorKind::StreamInvalidated => DeviceErrorKind::Lost,
        ErrorKind::HostUnavailable => DeviceErrorKind::NotFound,
        _ => DeviceErrorKind::Backend,
    }
}

/// Input devices of the default host (ALSA on Linux).
pub fn input_devices() -> Result<Vec<AudioDeviceInfo>, AudioError> {
    let host = cpal::default_host();
    let default = host.default_input_device().map(|d| device_name(&d));
    let devices = host
        .input_devices()
        .map_err(|e| device_error("input devices", e))?;
    Ok(devices
        .map(|d| {
            let name = device_name(&d);
            AudioDeviceInfo {
                is_default: Some(&name) == default.as_ref(),
                name,
            }
        })
        .collect())
}

/// Output devices of the default host.
pub fn output_devices() -> Result<Vec<AudioDeviceInfo>, AudioError> {
    let host = cpal::default_host();
    let default = host.default_output_device().map(|d| device_name(&d));
    let devices = host
        .output_devices()
        .map_err(|e| device_error("output devices", e))?;
    Ok(devices
        .map(|d| {
            let name = device_name(&d);
            AudioDeviceInfo {
                is_default: Some(&name) == default.as_ref(),
                name,
            }
        })
        .collect())
}

fn find_device(input: bool, name: Option<&str>) -> Result<cpal::Device, AudioError> {
    let host = cpal::default_host();
    let kind = if input { "input" } else { "output" };
    match name {
        None => if input {
            host.default_input_device()
        } else {
            host.default_output_device()
        }
        .ok_or(AudioError::NoDevice(kind)),
        Some(wanted) => {
            let mut devices: Box<dyn Iterator<Item = cpal::Device>> = if input {
                Box::new(host.input_devices().map_err(|e| device_error(kind, e))?)
            } else {
                Box::new(host.output_devices().map_err(|e| device_error(kind, e))?)
            };
            devices
                .find(|d| device_name(d) == wanted)
                .ok_or_else(|| AudioError::NotFound(wanted.to_owned()))
        }
    }
}

/// A chosen device and its default stream configuration.
struct Opened {
    device: cpal::Device,
    label: String,
    supported: cpal::SupportedStreamConfig,
}

fn open_device(input: bool, name: Option<&str>) -> Result<Opened, AudioError> {
    let opened = open_found(find_device(input, name)?, input);
    if name.is_some() || opened.is_ok() {
        return opened;
    }
    // The system's default device is unusable (no sound card behind it, say): the first
    // listed device that opens is the next best, as a user would pick it.
    let host = cpal::default_host();
    let listed: Vec<cpal::Device> = if input {
        host.input_devices()
            .map(Iterator::collect)
            .unwrap_or_default()
    } else {
        host.output_devices()
            .map(Iterator::collect)
            .unwrap_or_default()
    };
    listed
        .into_iter()
        .find_map(|device| open_found(device, input).ok())
        .map_or(opened, Ok)
}

fn open_found(device: cpal::Device, input: bool) -> Result<Opened, AudioError> {
    let label = device_name(&device);
    let supported = if input {
        device.default_input_config()
    } else {
        device.default_output_config()
    }
    .map_err(|e| device_error(&label, e))?;
    Ok(Opened {
        device,
        label,
        supported,
    })
}

/// The error callback of a stream: a failing device becomes an [`AudioEvent::DeviceLost`].
fn report_loss(
    events: Sender<AudioEvent>,
    name: String,
    input: bool,
) -> impl FnMut(cpal::Error) + Send + 'static {
    move |e| {
        let _ = events.send(AudioEvent::DeviceLost {
            name: name.clone(),
            input,
            kind: match kind_of(&e) {
                DeviceErrorKind::Backend => DeviceErrorKind::Lost,
                kind => kind,
            },
            message: e.to_string(),
        });
    }
}

/// Turns device-rate, interleaved multi-channel audio into 48 kHz mono 10 ms frames
/// (channel average, linear interpolation).
pub(crate) struct ToInternal {
    channels: usize,
    step: f64,
    position: f64,
    previous: f32,
    pending: Vec<f32>,
}

impl ToInternal {
    pub fn new(device_rate: u32, channels: usize) -> Self {
        ToInternal {
            channels: channels.max(1),
            step: device_rate as f64 / RATE as f64,
            position: 0.0,
            previous: 0.0,
            pending: Vec::with_capacity(FRAME * 2),
        }
    }

    /// Feeds interleaved samples; calls `emit` with each complete 10 ms frame.
    pub fn push(&mut self, interleaved: &[f32], mut emit: impl FnMut(Vec<f32>)) {
        for chunk in interleaved.chunks(self.channels) {
            let mono = chunk.iter().sum::<f32>() / chunk.len() as f32;
            // Output samples that fall between the previous input sample and this one.
            while self.position <= 1.0 {
                let t = self.position as f32;
                self.pending
                    .push(self.previous + (mono - self.previous) * t);
                self.position += self.step;
                if self.pending.len() == FRAME {
                    emit(std::mem::replace(
                        &mut self.pending,
                        Vec::with_capacity(FRAME),
                    ));
                }
            }
            self.position -= 1.0;
            self.previous = mono;
        }
    }
}

/// Turns the app's 48 kHz mono into the device's rate (nearest sample; exact at 48 kHz).
/// Samples pulled from the source and not yet played, and the read position in them, carry
/// over between device callbacks, so that no sample is skipped or played twice.
pub(crate) struct FromInternal {
    step: f64,
    pending: Vec<f32>,
    position: f64,
}

impl FromInternal {
    pub fn new(device_rate: u32) -> Self {
        FromInternal {
            step: RATE as f64 / device_rate as f64,
            pending: Vec::new(),
            position: 0.0,
        }
    }

    /// Produces `out_frames` device frames, pulling from `source` what they need.
    pub fn render(
        &mut self,
        out_frames: usize,
        source: &mut impl FnMut(&mut [f32]),
        mut write: impl FnMut(usize, f32),
    ) {
        let needed = (self.position + out_frames as f64 * self.step).ceil() as usize + 1;
        if self.pending.len() < needed {
            let have = self.pending.len();
            self.pending.resize(needed, 0.0);
            source(&mut self.pending[have..]);
        }
        for i in 0..out_frames {
            write(i, self.pending[self.position as usize]);
            self.position += self.step;
        }
        let consumed = (self.position as usize).min(self.pending.len());
        self.pending.drain(..consumed);
        self.position -= consumed as f64;
    }
}

/// A running microphone stream; capture stops when it is dropped.
pub type Microphone = AudioStream;

/// A running device stream; it stops when dropped.
pub struct AudioStream {
    _stream: cpal::Stream,
    pub device: String,
    pub device_rate: u32,
    pub device_channels: u16,
}

/// Plays a freshly built stream and wraps it.
fn started(
    stream: Result<cpal::Stream, cpal::Error>,
    device: String,
    config: StreamConfig,
) -> Result<AudioStream, AudioError> {
    let stream = stream.map_err(|e| device_error(&device, e))?;
    stream.play().map_err(|e| device_error(&device, e))?;
    Ok(AudioStream {
        _stream: stream,
        device,
        device_rate: config.sample_rate,
        device_channels: config.channels,
    })
}

/// Opens the named (or default) input device and starts capturing into `frames`.
pub fn open_microphone(
    name: Option<&str>,
    frames: FrameQueue<AudioFrame>,
    events: Sender<AudioEvent>,
) -> Result<Microphone, AudioError> {
    let Opened {
        device,
        label: device_label,
        supported,
    } = open_device(true, name)?;
    let config: StreamConfig = supported.config();
    // Owned by the device callback alone: no locks on the audio thread.
    let mut converter = ToInternal::new(config.sample_rate, config.channels as usize);
    let clock = Instant::now();
    let mut produced = 0u64;
    let mut deliver = move |data: &[f32]| {
        converter.push(data, |samples| {
            // The frame's place on the stream's media clock, never ahead of the wall clock.
            let capture_time = Duration::from_micros(produced * 10_000).min(clock.elapsed());
            produced += 1;
            frames.push(AudioFrame {
                samples,
                capture_time,
            });
        });
    };
    let on_error = report_loss(events, device_label.clone(), true);
    let stream = match supported.sample_format() {
        SampleFormat::F32 => {
            device.build_input_stream(config, move |d: &[f32], _| deliver(d), on_error, None)
        }
        SampleFormat::I16 => {
            let mut buf = Vec::new();
            device.build_input_stream(
                config,
                move |d: &[i16], _| {
                    buf.clear();
                    buf.extend(d.iter().map(|s| *s as f32 / 32768.0));
                    deliver(&buf);
                },
                on_error,
                None,
            )
        }
        format => {
            return Err(AudioError::UnsupportedFormat {
                name: device_label,
                format,
            });
        }
    };
    started(stream, device_label, config)
}

/// A running speaker stream; playback stops when it is dropped.
pub type Speaker = AudioStream;

/// Opens the named (or default) output device. `source` fills 48 kHz mono samples on the
/// device's thread (the mixer); it must not block.
pub fn open_speaker(
    name: Option<&str>,
    mut source: impl FnMut(&mut [f32]) + Send + 'static,
    events: Sender<AudioEvent>,
) -> Result<Speaker, AudioError> {
    let Opened {
        device,
        label: device_label,
        supported,
    } = open_device(false, name)?;
    let config: StreamConfig = supported.config();
    let channels = config.channels as usize;
    let mut resampler = FromInternal::new(config.sample_rate);
    let mut render = move |out_frames: usize, write: &mut dyn FnMut(usize, f32)| {
        resampler.render(out_frames, &mut source, |i, s| {
            for c in 0..channels {
                write(i * channels + c, s);
            }
        })
    };
    let on_error = report_loss(events, device_label.clone(), false);
    let stream = match supported.sample_format() {
        SampleFormat::F32 => device.build_output_stream(
            config,
            move |d: &mut [f32], _| render(d.len() / channels, &mut |i, s| d[i] = s),
            on_error,
            None,
        ),
        SampleFormat::I16 => device.build_output_stream(
            config,
            move |d: &mut [i16], _| {
                render(d.len() / channels, &mut |i, s| {
                    d[i] = (s.clamp(-1.0, 1.0) * 32767.0) as i16
                })
            },
            on_error,
            None,
        ),
        format => {
            return Err(AudioError::UnsupportedFormat {
                name: device_label,
                format,
            });
        }
    };
    started(stream, device_label, config)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn playback_keeps_every_sample_across_callbacks() {
        let mut next = 0.0f32;
        let mut source = |out: &mut [f32]| {
            for s in out {
                *s = next;
                next += 1.0;
            }
        };
        let mut played = Vec::new();
        let mut r = FromInternal::new(48_000);
        for frames in [441, 512, 3, 1024, 480] {
            r.render(frames, &mut source, |_, s| played.push(s));
        }
        let expected: Vec<f32> = (0..played.len()).map(|n| n as f32).collect();
        assert_eq!(
            played, expected,
            "a ramp plays back without gaps or repeats"
        );

        // At 44.1 kHz the 48 kHz ramp advances by 48/44.1 per device frame, without drift.
        let mut next = 0.0f32;
        let mut source = |out: &mut [f32]| {
            for s in out {
                *s = next;
                next += 1.0;
            }
        };
        let mut r = FromInternal::new(44_100);
        let mut last = 0.0;
        for _ in 0..100 {
            r.render(441, &mut source, |_, s| last = s);
        }
        // 44,100 device frames cover 48,000 source samples; the last one read is the 47,999th.
        assert!((last - 47_998.0).abs() <= 1.0, "last sample played {last}");
    }

    #[test]
    fn stereo_44k1_becomes_48k_mono_frames() {
        let mut conv = ToInternal::new(44_100, 2);
        let mut frames = Vec::new();
        // One second of a 1 kHz tone, left and right equal.
        let input: Vec<f32> = (0..44_100)
            .flat_map(|n| {
                let s = (2.0 * std::f32::consts::PI * 1000.0 * n as f32 / 44_100.0).sin();
                [s, s]
            })
            .collect();
        conv.push(&input, |f| frames.push(f));
        assert!(
            (99..=100).contains(&frames.len()),
            "{} frames for one second",
            frames.len()
        );
        assert!(frames.iter().all(|f| f.len() == FRAME));
        // Still a 1 kHz tone: 10 cycles per 10 ms frame, so 20 zero crossings.
        let f = &frames[50];
        let crossings = f
            .windows(2)
            .filter(|w| (w[0] < 0.0) != (w[1] < 0.0))
            .count();
        assert!((19..=21).contains(&crossings), "{crossings} zero crossings");
    }
}
