//! The devices a person picks before and during a class, behind one interface: what is there
//! (cameras, microphones, speakers, screens and windows with a thumbnail each), the
//! microphone meter of the pre-join check, and the speaker's test chime. The window's
//! controller reaches devices through [`MediaDevices`] alone; [`SystemDevices`] is the
//! machine's, and tests put a scripted one in its place.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::audio_device::{self, AudioDeviceInfo, AudioEvent};
use super::camera::CameraInfo;
use super::device_error::DeviceError;
use super::frame::I420Frame;
use super::level::LevelMeter;
use super::queue::FrameQueue;

/// Everything a picker can offer.
#[derive(Debug, Default)]
pub struct DeviceInventory {
    pub cameras: Vec<CameraInfo>,
    pub microphones: Vec<AudioDeviceInfo>,
    pub speakers: Vec<AudioDeviceInfo>,
    /// The desktop portal can ask the user for a screen or window (Wayland, Flatpak).
    pub portal: bool,
    /// Displays and windows that can be captured directly, each with one picture of it.
    pub screens: Vec<ScreenOption>,
}

/// A display or window to share.
#[derive(Debug)]
pub struct ScreenOption {
    pub kind: ScreenKind,
    /// The display's name or the window's title.
    pub name: String,
    /// One picture of it for the picker (`None`: it could not be captured now).
    pub thumbnail: Option<I420Frame>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScreenKind {
    Display {
        id: u32,
        primary: bool,
        width: u32,
        height: u32,
    },
    Window {
        id: u32,
    },
}

/// A microphone level reading of the meter, or why it stopped.
#[derive(Debug, Clone, PartialEq)]
pub enum MeterReading {
    /// In whole dB (`None`: no signal, or the meter stopped).
    Level(Option<f32>),
    /// The microphone could not be opened or went away; the meter has stopped.
    Problem(DeviceError),
}

/// A running microphone meter; it stops when dropped (and then reads `Level(None)` once).
pub struct MicrophoneMeter {
    stop: Arc<AtomicBool>,
}

impl Drop for MicrophoneMeter {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// The device side of the window: listing, the meter, the chime.
pub trait MediaDevices: Send + Sync + 'static {
    /// What is plugged in now (blocking: cameras and displays are probed).
    fn inventory(&self) -> DeviceInventory;
    /// Starts metering `microphone` (`None`: the default) on a thread of its own; readings
    /// about 20 times a second.
    fn meter_microphone(
        &self,
        microphone: Option<String>,
        readings: Box<dyn FnMut(MeterReading) + Send>,
    ) -> MicrophoneMeter;
    /// Plays the test chime on `speaker` (`None`: the default) and returns when it has
    /// finished (blocking, about 1.3 s).
    fn play_chime(&self, speaker: Option<&str>) -> Result<(), DeviceError>;
}

/// This machine's devices.
pub struct SystemDevices;

/// How long the chime sounds, and how often the meter reads.
const CHIME: Duration = Duration::from_millis(1200);
const METER_EVERY: Duration = Duration::from_millis(50);

impl MediaDevices for SystemDevices {
    fn inventory(&self) -> DeviceInventory {
        let mut inventory = DeviceInventory::default();
        match super::camera::cameras() {
            Ok(cameras) => inventory.cameras = cameras,
            Err(error) => tracing::warn!(%error, "cameras not listed"),
        }
        match audio_device::input_devices() {
            Ok(inputs) => inventory.microphones = inputs,
            Err(error) => tracing::warn!(%error, "microphones not listed"),
        }
        match audio_device::output_devices() {
            Ok(outputs) => inventory.speakers = outputs,
            Err(error) => tracing::warn!(%error, "speakers not listed"),
        }
        inventory.portal = super::portal_screen::portal_unavailable().is_none();
        #[cfg(target_os = "linux")]
        list_x11_screens(&mut inventory.screens);
        inventory
    }

    fn meter_microphone(
        &self,
        microphone: Option<String>,
        mut readings: Box<dyn FnMut(MeterReading) + Send>,
    ) -> MicrophoneMeter {
        let stop = Arc::new(AtomicBool::new(false));
        let running = stop.clone();
        let spawned = std::thread::Builder::new()
            .name("classroom-mic-meter".into())
            .spawn(move || meter(microphone, &running, readings.as_mut()));
        if let Err(error) = spawned {
            tracing::error!(%error, "no microphone meter");
        }
        MicrophoneMeter { stop }
    }

    fn play_chime(&self, speaker: Option<&str>) -> Result<(), DeviceError> {
        let (events, _) = std::sync::mpsc::channel();
        let stream = audio_device::open_speaker(speaker, chime(), events)
            .map_err(|error| DeviceError::from_audio("speaker", &error))?;
        std::thread::sleep(CHIME + Duration::from_millis(100));
        drop(stream);
        Ok(())
    }
}

/// A soft 660 Hz chime at 48 kHz that fades out over [`CHIME`], then silence.
fn chime() -> impl FnMut(&mut [f32]) + Send + 'static {
    const RATE: f32 = 48_000.0;
    let length = CHIME.as_secs_f32() * RATE;
    let mut phase = 0.0f32;
    let mut played = 0usize;
    move |out: &mut [f32]| {
        for sample in out.iter_mut() {
            let fade = (1.0 - played as f32 / length).max(0.0);
            *sample = 0.2 * fade * phase.sin();
            phase = (phase + std::f32::consts::TAU * 660.0 / RATE) % std::f32::consts::TAU;
            played += 1;
        }
    }
}

/// Meters until `stop`: one reading per [`METER_EVERY`], `Level(None)` at the end.
fn meter(microphone: Option<String>, stop: &AtomicBool, readings: &mut dyn FnMut(MeterReading)) {
    let frames = FrameQueue::new(16);
    let (events, lost) = std::sync::mpsc::channel();
    let stream = match audio_device::open_microphone(microphone.as_deref(), frames.clone(), events)
    {
        Ok(stream) => stream,
        Err(error) => {
            readings(MeterReading::Problem(DeviceError::from_audio(
                "microphone",
                &error,
            )));
            return;
        }
    };
    let mut level = LevelMeter::default();
    let mut last_reading = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        if let Ok(AudioEvent::DeviceLost {
            name,
            kind,
            message,
            ..
        }) = lost.try_recv()
        {
            let problem = DeviceError::new(format!("microphone {name}"), kind, message);
            readings(MeterReading::Problem(problem));
            break;
        }
        if let Ok(frame) = frames.pop_timeout(METER_EVERY) {
            level.add(&frame.samples);
        }
        if last_reading.elapsed() >= METER_EVERY {
            last_reading = Instant::now();
            let dbfs = level.take_dbfs().map(|dbfs| dbfs.round() as f32);
            readings(MeterReading::Level(dbfs));
        }
    }
    drop(stream);
    readings(MeterReading::Level(None));
}

/// X11 displays and windows (except our own), each with one picture.
#[cfg(target_os = "linux")]
fn list_x11_screens(screens: &mut Vec<ScreenOption>) {
    use super::capture::VideoCapture;
    use super::screen::{X11ScreenCapture, x11_displays, x11_windows};

    fn picture(
        capture: Result<X11ScreenCapture, super::capture::CaptureError>,
    ) -> Option<I420Frame> {
        capture.ok()?.capture().ok()
    }
    if let Ok(displays) = x11_displays() {
        for display in displays {
            screens.push(ScreenOption {
                kind: ScreenKind::Display {
                    id: display.id,
                    primary: display.primary,
                    width: display.width,
                    height: display.height,
                },
                thumbnail: picture(X11ScreenCapture::open(Some(display.id), None)),
                name: display.name,
            });
        }
    }
    if let Ok(windows) = x11_windows() {
        for window in windows.into_iter().filter(|w| w.title != "Classroom") {
            screens.push(ScreenOption {
                kind: ScreenKind::Window { id: window.id },
                thumbnail: picture(X11ScreenCapture::open_window(window.id)),
                name: window.title,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_chime_fades_to_silence() {
        let mut chime = chime();
        let mut start = vec![0.0f32; 4800];
        chime(&mut start);
        assert!(start.iter().any(|s| s.abs() > 0.1), "audible at first");
        let mut rest = vec![0.0f32; 57_600];
        chime(&mut rest);
        let mut after = vec![1.0f32; 480];
        chime(&mut after);
        assert!(after.iter().all(|s| *s == 0.0), "silent once it has faded");
    }
}
