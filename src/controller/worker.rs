//! The controller's worker: carries out the window's requests on the runtime (the call, the
//! embedded server, the pre-join check, device listing) and publishes what they produce.
//! What a request means is decided in [`super::join`], [`super::live`] and
//! [`super::device_lists`]; this file does the IO.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;

use super::join::{self, MediaChoice};
use super::live::{self, CallReading};
use super::model::{ConnectionCheck, JoinTarget, LiveClass, ServerChoice, Settings};
use super::words::{connection_words, device_problem_words};
use super::{ControllerSetup, Phase, Request, Shared};
use crate::call::pictures::{CapturePreview, PictureKey, PictureSink};
use crate::call::sender::AudioDevices;
use crate::call::{CallHandle, ClassServer, PictureOutput, StatsCursor};
use crate::media::device_error::{DeviceError, DeviceErrorKind};
use crate::media::devices::{MediaDevices, MeterReading, MicrophoneMeter};
use crate::session::Command;
use crate::types::Source;

/// The pre-join check's running parts.
/// (Both stop when dropped.)
struct Check {
    _preview: Option<CapturePreview>,
    _meter: Option<MicrophoneMeter>,
}

pub(super) struct Worker {
    shared: Arc<Shared>,
    pictures: Arc<dyn PictureSink>,
    devices: Arc<dyn MediaDevices>,
    call: Option<CallHandle>,
    /// Where the window's reading of the call's stats is.
    stats: StatsCursor,
    server: Option<classroom_signaling::RunningServer>,
    /// The local class server's join key: this launch's, random (`ServerConfig::local_class`).
    local_key: Option<String>,
    check: Option<Check>,
    /// The connection test under way (aborted when another is asked for).
    connection_test: Option<tokio::task::JoinHandle<()>>,
    extra_ice_servers: Vec<classroom_wire::IceServer>,
    force_relay: bool,
}

/// How often the live figures (levels, network quality) are refreshed.
const LIVE_INTERVAL: Duration = Duration::from_millis(250);

impl Worker {
    pub(super) fn new(shared: Arc<Shared>, setup: ControllerSetup) -> Self {
        Worker {
            shared,
            pictures: setup.pictures,
            devices: setup.devices,
            call: None,
            stats: StatsCursor::default(),
            server: None,
            local_key: None,
            check: None,
            connection_test: None,
            extra_ice_servers: setup.extra_ice_servers,
            force_relay: setup.force_relay,
        }
    }

    pub(super) async fn run(mut self, mut inbox: mpsc::UnboundedReceiver<Request>) {
        let mut ticker = tokio::time::interval(LIVE_INTERVAL);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
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
                    self.shared.update(|p| p.close = true);
                }
                _ = ticker.tick() => {
                    self.refresh();
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
                let devices = self.devices.clone();
                let pictures = self.pictures.clone();
                let shared = self.shared.clone();
                tokio::task::spawn_blocking(move || {
                    let lists =
                        super::device_lists::device_lists(devices.inventory(), pictures.as_ref());
                    shared.update(|p| p.devices = Some(lists));
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
            Request::TestConnection { target } => self.test_connection(target),
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
                    call.choose_input(Source::Camera, join::camera_input(&settings));
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
                // Joined without the stage (it was off): it runs from the next join.
                if let Some(call) = &self.call {
                    call.set_voice_config(join::voice_config(&settings));
                }
            }
            Request::ShareScreen(id) => {
                if let Some(call) = &self.call {
                    if let Some(input) = join::screen_input(&id) {
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
        let camera = PictureKey::local(Source::Camera);
        let preview = if camera_on {
            let input = join::camera_input(settings);
            let report = report.clone();
            match CapturePreview::start(
                move || crate::call::sender::open_video(&input, Source::Camera),
                self.pictures.clone(),
                camera,
                report.clone(),
            ) {
                Ok(preview) => Some(preview),
                Err(error) => {
                    report(DeviceError::new("camera", DeviceErrorKind::Backend, error));
                    None
                }
            }
        } else {
            self.pictures.clear(&camera);
            None
        };
        let meter = if mic_on {
            let shared = self.shared.clone();
            let readings = move |reading| match reading {
                MeterReading::Level(level) => shared.update(|p| p.mic_level_dbfs = level),
                MeterReading::Problem(problem) => report(problem),
            };
            Some(
                self.devices
                    .meter_microphone(settings.microphone.clone(), Box::new(readings)),
            )
        } else {
            self.shared.update(|p| p.mic_level_dbfs = None);
            None
        };
        Check {
            _preview: preview,
            _meter: meter,
        }
    }

    fn play_test_sound(&self, speaker: Option<String>) {
        let shared = self.shared.clone();
        let devices = self.devices.clone();
        shared.update(|p| p.speaker_test_playing = true);
        tokio::task::spawn_blocking(move || {
            if let Err(problem) = devices.play_chime(speaker.as_deref()) {
                shared.update(|p| p.check_problem = Some(device_problem_words(&problem)));
            }
            shared.update(|p| p.speaker_test_playing = false);
        });
    }

    /// Runs the connection test in the background and publishes what it found. A local class
    /// is on this computer: nothing to test.
    fn test_connection(&mut self, target: JoinTarget) {
        if let Some(previous) = self.connection_test.take() {
            previous.abort();
        }
        let ServerChoice::Remote(url) = target.server else {
            self.shared.update(|p| p.connection = None);
            return;
        };
        let server = ClassServer {
            url,
            token: target.token,
            key: target.key,
        };
        let extra = self.extra_ice_servers.clone();
        let shared = self.shared.clone();
        shared.update(|p| p.connection = Some(ConnectionCheck::Testing));
        self.connection_test = Some(tokio::spawn(async move {
            let found = crate::call::preflight::test_connection(
                &server,
                &extra,
                std::net::IpAddr::from([0, 0, 0, 0]),
                Duration::from_secs(5),
                crate::call::preflight::PROBE_WITHIN,
            )
            .await;
            let check = match found {
                Ok(report) => connection_words(&report),
                Err(error) => {
                    ConnectionCheck::Failed(format!("The connection test could not run: {error}"))
                }
            };
            shared.update(|p| p.connection = Some(check));
        }));
    }

    async fn join(&mut self, target: JoinTarget, settings: Settings, media: MediaChoice) {
        self.check = None;
        if let Some(test) = self.connection_test.take() {
            test.abort();
        }
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
        let key = match target.server {
            ServerChoice::Local { .. } => self.local_key.clone(),
            ServerChoice::Remote(_) => target.key.clone(),
        };
        if let (ServerChoice::Local { .. }, Some(key)) = (&target.server, &key) {
            // Said on standard output: how others on this computer join.
            println!("{}", join::invitation(&url, &target.session, key));
        }
        let server = ClassServer {
            url,
            token: target.token.clone(),
            key,
        };
        let user_id = join::local_user_id(&target.name, time_salt());
        let mut config = join::call_config(
            &target,
            &settings,
            server,
            &user_id,
            media,
            &self.extra_ice_servers,
        );
        // A local class stays on loopback, where no relay is.
        config.peer.relay_only =
            self.force_relay && matches!(target.server, ServerChoice::Remote(_));
        config.pictures = Some(PictureOutput(self.pictures.clone()));
        match crate::call::start(config).await {
            Ok(call) => {
                self.call = Some(call);
                self.stats = StatsCursor::default();
                self.shared.update(|p| p.phase = Phase::InClass);
                self.refresh();
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
            self.pictures.clear(&PictureKey::local(source));
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
    fn refresh(&mut self) {
        let Some(call) = self.call.as_mut() else {
            return;
        };
        let mut notices = Vec::new();
        while let Ok(event) = call.events.try_recv() {
            notices.extend(live::notice_for(&event));
        }
        let remotes = call.stats.report(&mut self.stats);
        let local = call.local_report(&mut self.stats);
        let reading = CallReading {
            snapshot: call.snapshot.borrow().clone(),
            remotes: &remotes,
            local: &local,
            voice: call.voice_stats(),
        };
        let ended = call.is_finished();
        // Removed, or the class ended by its instructor: the words say so.
        let why = reading.snapshot.class.ended.clone();
        self.shared.update(|p| {
            live::merge_reading(&mut p.live, reading);
            p.notices.extend(notices);
            if ended {
                p.phase = Phase::Ended(why.unwrap_or_else(|| "The class ended.".into()));
            }
        });
        if ended {
            self.call = None;
        }
    }
}

/// Something that differs between two windows started on one machine.
fn time_salt() -> u32 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos() ^ (d.as_secs() as u32))
        .unwrap_or(0)
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
