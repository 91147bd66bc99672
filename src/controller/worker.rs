//! The window's link to everything that does IO: a tokio runtime on a thread of its own runs
//! the call engine, the embedded signaling server ("Start a local class"), device
//! enumeration and the pre-join check. The UI thread only sends [`Request`]s (never blocks)
//! and reads what was [`Published`] (a short lock, no IO under it); every change that the
//! window would show asks for one repaint, nothing else does.

use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use tokio::sync::mpsc;

use super::model::{
    DeviceLists, DeviceOption, JoinTarget, LiveClass, NetworkQuality, RemoteLive, ServerChoice,
    Settings, VideoQuality,
};
use super::pictures::PictureBoard;
use crate::call::pictures::{CapturePreview, PictureKey, PictureSink};
use crate::call::sender::{AudioDevices, AudioInput, VideoInput};
use crate::call::{CallConfig, CallHandle, PictureOutput};
use crate::media::audio_device;
use crate::media::device_error::{DeviceError, DeviceErrorKind};
use crate::media::level::LevelMeter;
use crate::media::queue::FrameQueue;
use crate::media::voice::VoiceProcessingConfig;
use crate::rtc::PeerOptions;
use crate::session::{Command, SessionConfig, SessionEvent};
use crate::signaling::SignalingConfig;
use crate::types::{PeerConnState, Source};

/// What the window asks of the background.
#[derive(Debug, Clone)]
pub enum Request {
    /// List cameras, microphones, speakers and screens (with screen thumbnails).
    EnumerateDevices,
    /// Start the embedded signaling server on loopback (`port` 0: any free port).
    StartLocalServer {
        port: u16,
    },
    /// The pre-join check: camera preview and microphone meter, as chosen.
    StartCheck {
        settings: Settings,
        camera_on: bool,
        mic_on: bool,
    },
    StopCheck,
    PlayTestSound {
        speaker: Option<String>,
    },
    Join {
        target: JoinTarget,
        settings: Settings,
        camera_on: bool,
        mic_on: bool,
        /// Open a microphone and speakers at all.
        audio_devices: bool,
    },
    Command(Command),
    /// Share this screen (an id from [`DeviceLists::screens`]).
    ShareScreen(String),
    /// The camera or video quality changed in the settings during the class.
    SwitchCamera(Settings),
    /// The microphone or speaker changed in the settings during the class.
    SwitchAudio(Settings),
    /// The voice processing switches changed in the settings during the class.
    SetVoiceProcessing(Settings),
    /// Write the settings and recent classes to the user's store.
    Save {
        settings: Settings,
        recent: Vec<super::model::RecentClass>,
    },
    Leave,
}

/// Where the class is.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Phase {
    #[default]
    Idle,
    Joining,
    InClass,
    /// The call ended (left, or could not start), with why.
    Ended(String),
}

/// What the background last published for the window.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Published {
    pub phase: Phase,
    pub live: LiveClass,
    pub devices: Option<DeviceLists>,
    /// The embedded server's port once it runs, or why it could not start.
    pub local_server: Option<Result<u16, String>>,
    pub mic_level_dbfs: Option<f32>,
    pub check_problem: Option<String>,
    pub speaker_test_playing: bool,
    /// Short notices (someone joined, an error), oldest first; the window takes them.
    pub notices: Vec<String>,
}

/// Shared between the background and the window.
struct Shared {
    published: Mutex<(u64, Published)>,
    ctx: std::sync::OnceLock<egui::Context>,
}

impl Shared {
    /// Changes what is published; repaints only if something the window shows changed.
    fn update(&self, change: impl FnOnce(&mut Published)) {
        let mut guard = self.published.lock();
        let before = guard.1.clone();
        change(&mut guard.1);
        if guard.1 != before {
            guard.0 += 1;
            drop(guard);
            if let Some(ctx) = self.ctx.get() {
                ctx.request_repaint();
            }
        }
    }
}

/// The window's handle on the background.
pub struct Backend {
    requests: mpsc::UnboundedSender<Request>,
    shared: Arc<Shared>,
    pub board: Arc<PictureBoard>,
    seen_generation: u64,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Backend {
    /// Starts the background thread and its runtime; `extra_ice_servers` (the school's
    /// policy) are added to the class server's for every call.
    pub fn start(extra_ice_servers: Vec<classroom_wire::IceServer>) -> std::io::Result<Self> {
        let (requests, inbox) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            published: Mutex::new((1, Published::default())),
            ctx: std::sync::OnceLock::new(),
        });
        let board = PictureBoard::new();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("classroom-io")
            .enable_all()
            .build()?;
        let worker = Worker {
            shared: shared.clone(),
            board: board.clone(),
            call: None,
            server: None,
            local_key: None,
            check: None,
            extra_ice_servers,
        };
        let thread = std::thread::Builder::new()
            .name("classroom-runtime".into())
            .spawn(move || {
                runtime.block_on(worker.run(inbox));
                runtime.shutdown_timeout(Duration::from_millis(500));
            })?;
        Ok(Backend {
            requests,
            shared,
            board,
            seen_generation: 0,
            thread: Some(thread),
        })
    }

    /// Repaints of this context follow the published state and new pictures.
    pub fn attach(&self, ctx: &egui::Context) {
        let _ = self.shared.ctx.set(ctx.clone());
        self.board.attach(ctx);
    }

    pub fn send(&self, request: Request) {
        if self.requests.send(request).is_err() {
            tracing::error!("the background stopped; request dropped");
        }
    }

    /// What was published since the last call (`None`: nothing new). Notices are taken.
    pub fn poll(&mut self) -> Option<Published> {
        let mut guard = self.shared.published.lock();
        if guard.0 == self.seen_generation {
            return None;
        }
        self.seen_generation = guard.0;
        let published = guard.1.clone();
        guard.1.notices.clear();
        Some(published)
    }

    /// Leaves the class, stops the local server and the runtime.
    pub fn shutdown(&mut self) {
        let _ = self.requests.send(Request::Leave);
        // Closing the channel ends the worker once it has left.
        let (closed, _) = mpsc::unbounded_channel();
        self.requests = closed;
        if let Some(thread) = self.thread.take() {
            let deadline = Instant::now() + Duration::from_secs(3);
            while !thread.is_finished() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(10));
            }
            if thread.is_finished() {
                let _ = thread.join();
            } else {
                tracing::warn!("the background did not stop in time");
            }
        }
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// The pre-join check's running parts.
struct Check {
    _preview: Option<CapturePreview>,
    stop_meter: Arc<std::sync::atomic::AtomicBool>,
}

impl Drop for Check {
    fn drop(&mut self) {
        self.stop_meter
            .store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

struct Worker {
    shared: Arc<Shared>,
    board: Arc<PictureBoard>,
    call: Option<CallHandle>,
    server: Option<classroom_signaling::RunningServer>,
    /// The local class server's join key: this launch's, random (`ServerConfig::local_class`).
    local_key: Option<String>,
    check: Option<Check>,
    extra_ice_servers: Vec<classroom_wire::IceServer>,
}

/// How often the live figures (levels, network quality) are refreshed.
const LIVE_INTERVAL: Duration = Duration::from_millis(250);

impl Worker {
    async fn run(mut self, mut inbox: mpsc::UnboundedReceiver<Request>) {
        let mut ticker = tokio::time::interval(LIVE_INTERVAL);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        let mut last_tick = Instant::now();
        let mut stop_signals = StopSignals::new();
        loop {
            tokio::select! {
                request = inbox.recv() => match request {
                    Some(request) => self.handle(request).await,
                    None => break,
                },
                () = stop_signals.next() => {
                    // Logging out or shutting down: leave the class properly, then close.
                    tracing::info!("asked to stop; leaving the class");
                    self.leave("You left the class.").await;
                    if let Some(ctx) = self.shared.ctx.get() {
                        ctx.send_viewport_cmd(egui::ViewportCommand::Close);
                        ctx.request_repaint();
                    }
                }
                _ = ticker.tick() => {
                    let interval = last_tick.elapsed();
                    last_tick = Instant::now();
                    self.refresh(interval);
                }
            }
        }
        self.leave("You left the class.").await;
        if let Some(server) = self.server.take()
            && let Err(error) = server.shutdown().await
        {
            tracing::warn!(%error, "local server did not shut down cleanly");
        }
    }

    async fn handle(&mut self, request: Request) {
        match request {
            Request::EnumerateDevices => {
                let board = self.board.clone();
                let shared = self.shared.clone();
                tokio::task::spawn_blocking(move || {
                    let devices = enumerate_devices(board.as_ref());
                    shared.update(|p| p.devices = Some(devices));
                });
            }
            Request::StartLocalServer { port } => self.start_local_server(port).await,
            Request::StartCheck {
                settings,
                camera_on,
                mic_on,
            } => {
                self.check = None;
                self.check = Some(self.start_check(&settings, camera_on, mic_on));
            }
            Request::StopCheck => {
                self.check = None;
                self.shared.update(|p| {
                    p.mic_level_dbfs = None;
                    p.check_problem = None;
                });
            }
            Request::PlayTestSound { speaker } => self.play_test_sound(speaker),
            Request::Join {
                target,
                settings,
                camera_on,
                mic_on,
                audio_devices,
            } => {
                let media = MediaChoice {
                    camera_on,
                    mic_on,
                    audio_devices,
                };
                self.join(target, settings, media).await
            }
            Request::Command(Command::Leave) | Request::Leave => {
                self.leave("You left the class.").await
            }
            Request::Command(command) => {
                if let Some(call) = &self.call {
                    call.command(command);
                }
            }
            Request::Save { settings, recent } => {
                // A few hundred bytes, written here so that saves stay in order.
                if let Some(store) = super::store::Store::for_user()
                    && let Err(error) = store.save(&settings, &recent)
                {
                    tracing::warn!(%error, "settings not saved");
                }
            }
            Request::SwitchCamera(settings) => {
                if let Some(call) = &self.call {
                    call.choose_input(Source::Camera, camera_input(&settings));
                }
            }
            Request::SwitchAudio(settings) => {
                // The test tone is a test input, not a device: it stays as joined.
                if let Some(call) = &self.call
                    && settings.microphone.as_deref() != Some("tone")
                {
                    call.choose_audio_devices(AudioDevices {
                        microphone: settings.microphone.clone(),
                        speaker: settings.speaker.clone(),
                    });
                }
            }
            Request::SetVoiceProcessing(settings) => {
                if let Some(call) = &self.call {
                    // Joined without the stage (it was off): it runs from the next join.
                    let config = if settings.voice_processing {
                        settings.voice_stages
                    } else {
                        VoiceProcessingConfig::all_off()
                    };
                    call.set_voice_config(config);
                }
            }
            Request::ShareScreen(id) => {
                if let Some(call) = &self.call {
                    if let Some(input) = screen_input(&id) {
                        call.choose_input(Source::Screen, input);
                    }
                    call.command(Command::SetScreenShare(true));
                }
            }
        }
    }

    async fn start_local_server(&mut self, port: u16) {
        if let Some(server) = &self.server {
            let port = server.local_addr.port();
            self.shared.update(|p| p.local_server = Some(Ok(port)));
            return;
        }
        // On loopback, with a random key, no STUN server on the internet, and reachable from
        // no web page but those this machine serves (a page open in the user's browser must
        // not join and receive the camera).
        let config = classroom_signaling::ServerConfig::local_class(port);
        let key = config.join_key.clone();
        match classroom_signaling::start(config).await {
            Ok(server) => {
                let port = server.local_addr.port();
                tracing::info!(url = %server.url(), "local class server started");
                self.server = Some(server);
                self.local_key = key;
                self.shared.update(|p| p.local_server = Some(Ok(port)));
            }
            Err(error) => {
                let message = format!("The local class could not start: {error}.");
                self.shared.update(|p| p.local_server = Some(Err(message)));
            }
        }
    }

    fn start_check(&self, settings: &Settings, camera_on: bool, mic_on: bool) -> Check {
        let shared = self.shared.clone();
        let report = move |problem: DeviceError| {
            shared.update(|p| p.check_problem = Some(device_problem_words(&problem)));
        };
        self.shared.update(|p| p.check_problem = None);
        let preview = if camera_on {
            let input = camera_input(settings);
            let sink: Arc<dyn PictureSink> = self.board.clone();
            let report = report.clone();
            match CapturePreview::start(
                move || crate::call::sender::open_video(&input, Source::Camera),
                sink,
                PictureKey::local(Source::Camera),
                report.clone(),
            ) {
                Ok(preview) => Some(preview),
                Err(error) => {
                    report(DeviceError::new("camera", DeviceErrorKind::Backend, error));
                    None
                }
            }
        } else {
            self.board.clear(&PictureKey::local(Source::Camera));
            None
        };
        let stop_meter = Arc::new(std::sync::atomic::AtomicBool::new(false));
        if mic_on {
            let microphone = settings.microphone.clone();
            let shared = self.shared.clone();
            let stop = stop_meter.clone();
            let spawned = std::thread::Builder::new()
                .name("classroom-mic-meter".into())
                .spawn(move || meter_microphone(microphone, shared, stop, report));
            if let Err(error) = spawned {
                tracing::error!(%error, "no microphone meter");
            }
        } else {
            self.shared.update(|p| p.mic_level_dbfs = None);
        }
        Check {
            _preview: preview,
            stop_meter,
        }
    }

    fn play_test_sound(&self, speaker: Option<String>) {
        let shared = self.shared.clone();
        shared.update(|p| p.speaker_test_playing = true);
        let spawned = std::thread::Builder::new()
            .name("classroom-test-sound".into())
            .spawn(move || {
                let (events, _) = std::sync::mpsc::channel();
                let mut phase = 0.0f32;
                let mut played = 0usize;
                let tone = move |out: &mut [f32]| {
                    for sample in out.iter_mut() {
                        // 1.2 s of a soft 660 Hz chime that fades out.
                        let fade = (1.0 - played as f32 / 57_600.0).max(0.0);
                        *sample = 0.2 * fade * phase.sin();
                        phase = (phase + 2.0 * std::f32::consts::PI * 660.0 / 48_000.0)
                            % (2.0 * std::f32::consts::PI);
                        played += 1;
                    }
                };
                match audio_device::open_speaker(speaker.as_deref(), tone, events) {
                    Ok(stream) => {
                        std::thread::sleep(Duration::from_millis(1300));
                        drop(stream);
                    }
                    Err(error) => shared.update(|p| {
                        p.check_problem = Some(device_problem_words(&DeviceError::from_audio(
                            "speaker", &error,
                        )))
                    }),
                }
                shared.update(|p| p.speaker_test_playing = false);
            });
        if let Err(error) = spawned {
            tracing::error!(%error, "no test sound");
            self.shared.update(|p| p.speaker_test_playing = false);
        }
    }

    async fn join(&mut self, target: JoinTarget, settings: Settings, media: MediaChoice) {
        self.check = None;
        self.leave_quietly().await;
        let url = match &target.server {
            ServerChoice::Remote(url) => url.clone(),
            ServerChoice::Local { port } => {
                if self.server.is_none() {
                    self.start_local_server(*port).await;
                }
                match &self.server {
                    Some(server) => server.url(),
                    None => {
                        self.shared.update(|p| {
                            p.phase = Phase::Ended("The local class could not start.".into())
                        });
                        return;
                    }
                }
            }
        };
        self.shared.update(|p| {
            p.phase = Phase::Joining;
            p.live = LiveClass {
                server_label: target.server.label(),
                ..LiveClass::default()
            };
        });
        let mut config = call_config(&target, &settings, url.clone(), media, self.board.clone());
        config.session.extra_ice_servers = self.extra_ice_servers.clone();
        if let ServerChoice::Local { .. } = target.server {
            config.signaling.key = self.local_key.clone();
            if let Some(key) = &self.local_key {
                print_invitation(&url, &target.session, key);
            }
        }
        match crate::call::start(config).await {
            Ok(call) => {
                self.call = Some(call);
                self.shared.update(|p| p.phase = Phase::InClass);
                self.refresh(LIVE_INTERVAL);
            }
            Err(error) => {
                let message = format!(
                    "Could not reach the class server at {}: {error}.",
                    target.server.label()
                );
                self.shared.update(|p| p.phase = Phase::Ended(message));
            }
        }
    }

    /// Ends the call, if any, without publishing.
    async fn leave_quietly(&mut self) -> bool {
        let Some(call) = self.call.take() else {
            return false;
        };
        call.command(Command::Leave);
        if tokio::time::timeout(Duration::from_secs(3), call.finished())
            .await
            .is_err()
        {
            tracing::warn!("the call did not end in time");
        }
        for source in [Source::Camera, Source::Screen] {
            self.board.clear(&PictureKey::local(source));
        }
        true
    }

    async fn leave(&mut self, message: &str) {
        self.check = None;
        if self.leave_quietly().await {
            self.shared
                .update(|p| p.phase = Phase::Ended(message.to_owned()));
        }
    }

    /// Publishes the class as it is now.
    fn refresh(&mut self, interval: Duration) {
        let Some(call) = self.call.as_mut() else {
            return;
        };
        let mut notices = Vec::new();
        while let Ok(event) = call.events.try_recv() {
            if let Some(notice) = notice_for(&event) {
                notices.push(notice);
            }
        }
        let snapshot = call.snapshot.borrow().clone();
        let reports = call.stats.report(interval);
        let local = call.local_report();
        let voice = call.voice_stats();
        let muted_talking =
            !snapshot.audio_enabled && voice.as_ref().is_some_and(|voice| voice.muted_talking);
        let self_speaking = match voice {
            Some(voice) => voice.speaking,
            None => local
                .get("audio")
                .and_then(|audio| audio.sent_level_dbfs)
                .is_some_and(|level| level > SPEAKING_DBFS),
        };
        let device_problem = local
            .values()
            .find_map(|source| source.device_problem.clone())
            .map(|problem| device_problem_words(&problem));
        let mut remote = std::collections::BTreeMap::new();
        for peer in &snapshot.participants {
            let report = reports
                .iter()
                .find(|r| r.user_id == peer.participant.user_id);
            let speaking = peer.participant.audio_enabled
                && report
                    .and_then(|r| r.audio.as_ref())
                    .and_then(|audio| audio.level_dbfs)
                    .is_some_and(|level| level > SPEAKING_DBFS);
            let round_trip_ms = report.and_then(|r| r.rtt_ms).map(|ms| ms.round() as u32);
            let lost = report.map_or(0, |r| {
                r.audio.as_ref().map_or(0, |a| a.packets_lost)
                    + r.video.values().map(|v| v.packets_lost).sum::<u64>()
            });
            remote.insert(
                peer.participant.user_id.clone(),
                RemoteLive {
                    quality: peer
                        .connection
                        .map(|state| network_quality(state, round_trip_ms, lost)),
                    speaking,
                    round_trip_ms: round_trip_ms.map(|ms| ms / 10 * 10),
                },
            );
        }
        let ended = call.is_finished();
        self.shared.update(|p| {
            p.live.joined_once |= snapshot.joined;
            p.live.snapshot = snapshot;
            p.live.remote = remote;
            p.live.self_speaking = self_speaking;
            p.live.muted_talking = muted_talking;
            p.live.device_problem = device_problem;
            p.notices.extend(notices);
            if ended {
                p.phase = Phase::Ended("The class ended.".into());
            }
        });
        if ended {
            self.call = None;
        }
    }
}

/// SIGTERM and SIGINT (Ctrl-C in a terminal, a session logging out).
struct StopSignals {
    #[cfg(unix)]
    signals: Option<(tokio::signal::unix::Signal, tokio::signal::unix::Signal)>,
}

impl StopSignals {
    fn new() -> Self {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            let signals = match (
                signal(SignalKind::terminate()),
                signal(SignalKind::interrupt()),
            ) {
                (Ok(terminate), Ok(interrupt)) => Some((terminate, interrupt)),
                (Err(error), _) | (_, Err(error)) => {
                    tracing::warn!(%error, "stop signals not handled");
                    None
                }
            };
            StopSignals { signals }
        }
        #[cfg(not(unix))]
        StopSignals {}
    }

    async fn next(&mut self) {
        #[cfg(unix)]
        if let Some((terminate, interrupt)) = &mut self.signals {
            tokio::select! {
                _ = terminate.recv() => {}
                _ = interrupt.recv() => {}
            }
            return;
        }
        std::future::pending::<()>().await
    }
}

/// Level above which a participant counts as speaking, dBFS.
const SPEAKING_DBFS: f64 = -45.0;

fn network_quality(state: PeerConnState, round_trip_ms: Option<u32>, lost: u64) -> NetworkQuality {
    match state {
        PeerConnState::Connected => match (round_trip_ms.unwrap_or(0), lost) {
            (rtt, lost) if rtt > 400 || lost > 50 => NetworkQuality::Poor,
            (rtt, lost) if rtt > 150 || lost > 5 => NetworkQuality::Fair,
            _ => NetworkQuality::Good,
        },
        PeerConnState::New | PeerConnState::Connecting => NetworkQuality::Connecting,
        PeerConnState::Disconnected | PeerConnState::Failed | PeerConnState::Closed => {
            NetworkQuality::Poor
        }
    }
}

fn notice_for(event: &SessionEvent) -> Option<String> {
    Some(match event {
        SessionEvent::ParticipantJoined { user_name, .. } => format!("{user_name} joined"),
        SessionEvent::ParticipantLeft { user_name, .. } => format!("{user_name} left"),
        SessionEvent::ServerError { message, .. } => format!("The server said: {message}"),
        SessionEvent::PeerFailed { .. } => "A connection was lost; reconnecting…".into(),
        SessionEvent::SignalingLost => "Lost the class server; reconnecting…".into(),
        SessionEvent::ServerRestarting { .. } => {
            "The class server is restarting; the class goes on and reconnects.".into()
        }
        _ => return None,
    })
}

/// A device failure in words a student understands: the one place that words them.
pub fn device_problem_words(problem: &DeviceError) -> String {
    let DeviceError { device, detail, .. } = problem;
    match problem.kind {
        DeviceErrorKind::Permission => format!(
            "Classroom may not use the {device}. Check the system's privacy settings. ({detail})"
        ),
        DeviceErrorKind::Lost => format!(
            "The {device} was disconnected. Plug it back in or pick another one in the \
             settings. ({detail})"
        ),
        DeviceErrorKind::NotFound => {
            format!("The {device} is not there. Pick another one in the settings. ({detail})")
        }
        DeviceErrorKind::Busy => format!(
            "Another program is using the {device}. Close it, or pick another one in the \
             settings. ({detail})"
        ),
        DeviceErrorKind::Backend => format!("The {device} did not work: {detail}"),
    }
}

/// The camera the settings describe.
pub fn camera_input(settings: &Settings) -> VideoInput {
    let (width, height) = match settings.video_quality {
        VideoQuality::Low => (640, 360),
        VideoQuality::Standard => (1280, 720),
    };
    match settings.camera.parse::<u32>() {
        Ok(index) => VideoInput::Camera {
            index,
            width,
            height,
            fps: 30.0,
        },
        Err(_) => VideoInput::Synthetic {
            width,
            height,
            fps: 30.0,
        },
    }
}

/// The screen input for a screen id of [`DeviceLists::screens`].
pub fn screen_input(id: &str) -> Option<VideoInput> {
    const FPS: f64 = 15.0;
    if id == "portal" {
        return Some(VideoInput::PortalScreen { fps: FPS });
    }
    if id == "auto" {
        return Some(
            if crate::media::portal_screen::portal_unavailable().is_none() {
                VideoInput::PortalScreen { fps: FPS }
            } else {
                VideoInput::X11Screen {
                    fps: FPS,
                    display: None,
                }
            },
        );
    }
    if id == "synthetic" {
        return Some(VideoInput::Synthetic {
            width: 1280,
            height: 720,
            fps: FPS,
        });
    }
    if let Some(window) = id.strip_prefix("x11window:") {
        return Some(VideoInput::X11Window {
            fps: FPS,
            window: window.parse().ok()?,
        });
    }
    let display = id.strip_prefix("x11:")?.parse().ok()?;
    Some(VideoInput::X11Screen {
        fps: FPS,
        display: Some(display),
    })
}

/// How a participant joins: camera and microphone on or off, and audio devices at all.
#[derive(Debug, Clone, Copy)]
struct MediaChoice {
    camera_on: bool,
    mic_on: bool,
    audio_devices: bool,
}

fn call_config(
    target: &JoinTarget,
    settings: &Settings,
    url: String,
    media: MediaChoice,
    board: Arc<PictureBoard>,
) -> CallConfig {
    let user_id = local_user_id(&target.name);
    let mut session =
        SessionConfig::new(&target.session, &user_id, &target.name, target.instructor);
    session.audio_enabled = media.mic_on && media.audio_devices;
    session.video_enabled = media.camera_on;
    let bind_ip = match target.server {
        // A local class stays on this machine.
        ServerChoice::Local { .. } => std::net::IpAddr::from([127, 0, 0, 1]),
        ServerChoice::Remote(_) => std::net::IpAddr::from([0, 0, 0, 0]),
    };
    let audio = match settings.microphone.as_deref() {
        _ if !media.audio_devices => AudioInput::None,
        Some("tone") => AudioInput::Tone,
        name => AudioInput::Microphone(name.map(str::to_owned)),
    };
    CallConfig {
        signaling: SignalingConfig {
            url,
            token: target.token.clone(),
            key: target.key.clone(),
            websocket_only: false,
        },
        session,
        peer: PeerOptions {
            bind_ip,
            ..PeerOptions::default()
        },
        camera: camera_input(settings),
        screen: screen_input(&settings.screen).unwrap_or(VideoInput::None),
        voice: (settings.voice_processing && audio != AudioInput::Tone)
            .then_some(settings.voice_stages),
        audio,
        speaker: media.audio_devices.then(|| settings.speaker.clone()),
        connect_timeout: Duration::from_secs(15),
        pictures: Some(PictureOutput(board)),
    }
}

/// Says on standard output how others on this computer join the local class: the links carry
/// this launch's key, without which the class server lets no one in.
fn print_invitation(url: &str, session: &str, key: &str) {
    let session_q = query_escape(session);
    println!(
        "Local class {session:?}: others on this computer join from a browser at \
         {url}/?session={session_q}&key={key}\n  or with: classroom join --server {url} \
         --session {session_q} --key {key}"
    );
}

/// Percent-escapes what a query value may not hold as it is.
fn query_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(byte as char)
            }
            _ => out.push_str(&format!("%{byte:02X}")),
        }
    }
    out
}

/// A user id of our own for servers in development mode (a token's id wins elsewhere).
fn local_user_id(name: &str) -> String {
    let slug: String = name
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .take(16)
        .collect::<String>()
        .to_lowercase();
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos() ^ (d.as_secs() as u32))
        .unwrap_or(0);
    format!("desktop-{slug}-{:06x}", nanos & 0xFF_FFFF)
}

/// Runs the microphone meter until `stop`: levels published in whole dB, 20 per second.
fn meter_microphone(
    microphone: Option<String>,
    shared: Arc<Shared>,
    stop: Arc<std::sync::atomic::AtomicBool>,
    report: impl Fn(DeviceError),
) {
    let frames = FrameQueue::new(16);
    let (events, lost) = std::sync::mpsc::channel();
    let stream = match audio_device::open_microphone(microphone.as_deref(), frames.clone(), events)
    {
        Ok(stream) => stream,
        Err(error) => {
            report(DeviceError::from_audio("microphone", &error));
            return;
        }
    };
    let mut meter = LevelMeter::default();
    let mut last_publish = Instant::now();
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        if let Ok(audio_device::AudioEvent::DeviceLost {
            name,
            kind,
            message,
        }) = lost.try_recv()
        {
            report(DeviceError::new(
                format!("microphone {name}"),
                kind,
                message,
            ));
            break;
        }
        if let Ok(frame) = frames.pop_timeout(Duration::from_millis(50)) {
            meter.add(&frame.samples);
        }
        if last_publish.elapsed() >= Duration::from_millis(50) {
            last_publish = Instant::now();
            let level = meter.take_dbfs().map(|dbfs| dbfs.round() as f32);
            shared.update(|p| p.mic_level_dbfs = level);
        }
    }
    drop(stream);
    shared.update(|p| p.mic_level_dbfs = None);
}

/// Puts one picture of a screen or window on the board as its picker thumbnail.
#[cfg(target_os = "linux")]
fn thumbnail<C: crate::media::capture::VideoCapture>(
    board: &PictureBoard,
    id: &str,
    capture: Result<C, crate::media::capture::CaptureError>,
) {
    if let Ok(mut capture) = capture
        && let Ok(frame) = capture.capture()
    {
        crate::call::pictures::offer_preview(
            board,
            &PictureKey::new(format!("thumbnail:{id}"), Source::Screen),
            &frame,
        );
    }
}

/// Everything the pickers offer; screen thumbnails go onto the board.
fn enumerate_devices(board: &PictureBoard) -> DeviceLists {
    let mut lists = DeviceLists::default();
    match crate::media::camera::cameras() {
        Ok(cameras) => lists
            .cameras
            .extend(cameras.into_iter().map(|camera| DeviceOption {
                id: camera.index.to_string(),
                label: camera.name,
            })),
        Err(error) => tracing::warn!(%error, "cameras not listed"),
    }
    lists.cameras.push(DeviceOption {
        id: "synthetic".into(),
        label: "Test pattern (no camera)".into(),
    });
    let label = |device: audio_device::AudioDeviceInfo| DeviceOption {
        label: if device.is_default {
            format!("{} (default)", device.name)
        } else {
            device.name.clone()
        },
        id: device.name,
    };
    if let Ok(inputs) = audio_device::input_devices() {
        lists.microphones.extend(inputs.into_iter().map(label));
    }
    if let Ok(outputs) = audio_device::output_devices() {
        lists.speakers.extend(outputs.into_iter().map(label));
    }
    if crate::media::portal_screen::portal_unavailable().is_none() {
        lists.screens.push(DeviceOption {
            id: "portal".into(),
            label: "Choose a screen or window…".into(),
        });
    }
    #[cfg(target_os = "linux")]
    if let Ok(displays) = crate::media::screen::x11_displays() {
        for display in displays {
            let id = format!("x11:{}", display.id);
            // One picture of each display for the picker.
            thumbnail(
                board,
                &id,
                crate::media::screen::X11ScreenCapture::open(Some(display.id), None),
            );
            lists.screens.push(DeviceOption {
                id,
                label: format!(
                    "{}{} ({}×{})",
                    display.name,
                    if display.primary { ", main" } else { "" },
                    display.width,
                    display.height
                ),
            });
        }
    }
    #[cfg(target_os = "linux")]
    if let Ok(windows) = crate::media::screen::x11_windows() {
        for window in windows.into_iter().filter(|w| w.title != "Classroom") {
            let id = format!("x11window:{}", window.id);
            thumbnail(
                board,
                &id,
                crate::media::screen::X11ScreenCapture::open_window(window.id),
            );
            lists.screens.push(DeviceOption {
                id,
                label: format!("Window: {}", window.title),
            });
        }
    }
    lists
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_kind_of_device_problem_tells_the_student_what_to_do() {
        let words = |kind| device_problem_words(&DeviceError::new("microphone USB", kind, "x"));
        assert!(words(DeviceErrorKind::Permission).contains("privacy settings"));
        assert!(words(DeviceErrorKind::Lost).contains("Plug it back in"));
        assert!(words(DeviceErrorKind::NotFound).contains("is not there"));
        assert!(words(DeviceErrorKind::Busy).contains("Another program"));
        assert!(words(DeviceErrorKind::Backend).starts_with("The microphone USB did not work"));
    }
}
