//! The call engine: drives the sans-IO [`Session`] with the real signaling client, one
//! [`PeerLink`] per remote participant and the media threads. Commands come in over a
//! channel; the session's state goes out over a `watch` channel (the UI renders it, the
//! headless participant prints it), notable events over another. Nothing here blocks the
//! caller: the engine is a tokio task, media lives on its own threads.

pub mod audio;
pub mod headless;
pub mod pictures;
pub mod receiver;
pub mod sender;
pub mod stats;

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use parking_lot::RwLock;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::media::voice::{
    SimulatedRoomConfig, VoiceProcessingConfig, VoiceProcessingStats, VoiceProcessor,
};
use crate::rtc::{EncodedUnit, PeerEvent, PeerEventKind, PeerLink, PeerOptions, Source};
use crate::session::{
    Action, Command, Input, PeerConnState, Session, SessionConfig, SessionEvent, Snapshot,
};
use crate::signaling::{SignalingClient, SignalingConfig, SignalingError};
use audio::PlayoutMixer;
use sender::{AudioInput, AudioSetup, MediaSender, VideoInput};
use stats::StatsBook;

/// Everything a call needs to start.
#[derive(Debug, Clone)]
pub struct CallConfig {
    pub signaling: SignalingConfig,
    pub session: SessionConfig,
    pub peer: PeerOptions,
    pub camera: VideoInput,
    pub screen: VideoInput,
    pub audio: AudioInput,
    /// The voice processing stage (echo cancellation, noise suppression, gain control);
    /// `None` sends the microphone unprocessed.
    pub voice: Option<VoiceProcessingConfig>,
    /// The headless participant's simulated room (playback back into the microphone).
    pub room: Option<SimulatedRoomConfig>,
    /// Play the class on this output device (`Some(None)`: the default one).
    pub speaker: Option<Option<String>>,
    /// Save what is received (H.264 Annex-B and 48 kHz s16le PCM per remote) here.
    pub save_dir: Option<PathBuf>,
    /// Test input: the fraction of received video packets dropped after the transport.
    pub simulated_receive_loss: f64,
    /// How long to keep trying to reach the signaling server at the start.
    pub connect_timeout: Duration,
    /// Where decoded pictures and the local previews are shown (the UI); `None`: nowhere
    /// (headless), and nothing is converted for display.
    pub pictures: Option<PictureOutput>,
}

/// The UI's picture sink, as a call's configuration holds it.
#[derive(Clone)]
pub struct PictureOutput(pub Arc<dyn pictures::PictureSink>);

impl std::fmt::Debug for PictureOutput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PictureOutput")
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CallError {
    #[error(transparent)]
    Signaling(#[from] SignalingError),
}

/// What the local sources did, for the stats.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LocalSourceReport {
    pub enabled: bool,
    pub frames_encoded: u64,
    pub target_kbps: u64,
    pub dropped: u64,
    pub errors: u64,
    /// Keyframe requests from receivers (PLI/FIR).
    pub keyframe_requests_received: u64,
    /// Height of the pictures sent (video).
    pub sent_height: u64,
    /// A microphone or speaker that failed, in plain words.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub device_error: Option<String>,
    /// Level of what was sent since the last report (audio), dBFS.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sent_level_dbfs: Option<f64>,
}

/// A running call.
pub struct CallHandle {
    commands: mpsc::UnboundedSender<Command>,
    pub snapshot: watch::Receiver<Snapshot>,
    pub events: mpsc::UnboundedReceiver<SessionEvent>,
    pub stats: StatsBook,
    local: Arc<MediaSenderView>,
    task: JoinHandle<()>,
}

/// The media sender's counters, readable from outside the engine.
pub struct MediaSenderView {
    controls: RwLock<Option<[Arc<sender::SourceControl>; 3]>>,
    pub weakest_link_bps: AtomicU64,
    voice: Option<Arc<VoiceProcessor>>,
    mixer: PlayoutMixer,
}

impl CallHandle {
    pub fn command(&self, command: Command) {
        let _ = self.commands.send(command);
    }

    pub fn local_report(&self) -> HashMap<&'static str, LocalSourceReport> {
        let mut report = HashMap::new();
        if let Some(controls) = self.local.controls.read().as_ref() {
            for (name, control) in ["audio", "camera", "screen"].into_iter().zip(controls) {
                report.insert(
                    name,
                    LocalSourceReport {
                        enabled: control.enabled.load(Ordering::Relaxed),
                        frames_encoded: control.frames_encoded.load(Ordering::Relaxed),
                        target_kbps: control.target_bps.load(Ordering::Relaxed) / 1000,
                        dropped: control.dropped.load(Ordering::Relaxed),
                        errors: control.errors.load(Ordering::Relaxed),
                        sent_height: control.sent_height.load(Ordering::Relaxed),
                        device_error: control.device_error.lock().clone(),
                        keyframe_requests_received: control
                            .keyframe_requests_from_peers
                            .load(Ordering::Relaxed),
                        sent_level_dbfs: {
                            let mut energy = control.sent_energy.lock();
                            let level = (energy.1 > 0)
                                .then(|| 10.0 * (energy.0 / energy.1 as f64).max(1e-12).log10());
                            *energy = (0.0, 0);
                            level
                        },
                    },
                );
            }
        }
        report
    }

    /// Switches `source` to `input` (the screen the user picked to share, another camera);
    /// a source that is off uses it when switched on.
    pub fn choose_input(&self, source: Source, input: sender::VideoInput) {
        let index = match source {
            Source::Audio => 0,
            Source::Camera => 1,
            Source::Screen => 2,
        };
        if let Some(controls) = self.local.controls.read().as_ref() {
            *controls[index].chosen_input.lock() = Some(input);
        }
    }

    /// Switches the microphone and the speaker during the call (`None`: the system's
    /// default). The voice processing starts over with them. Without audio devices (joined
    /// without audio, or the headless participant's test inputs) nothing changes.
    pub fn choose_audio_devices(&self, devices: sender::AudioDevices) {
        if let Some(controls) = self.local.controls.read().as_ref() {
            *controls[0].chosen_audio.lock() = Some(devices);
        }
    }

    /// Audio device switches done so far in this call.
    pub fn audio_switches(&self) -> u64 {
        self.local.controls.read().as_ref().map_or(0, |controls| {
            controls[0].audio_switches.load(Ordering::Relaxed)
        })
    }

    /// Switches voice processing stages on or off during the call. Returns false when the
    /// call runs without the stage (joined with it off): then nothing changes.
    pub fn set_voice_config(&self, config: VoiceProcessingConfig) -> bool {
        match &self.local.voice {
            Some(voice) => {
                voice.set_config(config);
                true
            }
            None => false,
        }
    }

    /// The voice processing stage's state, when it runs.
    pub fn voice_stats(&self) -> Option<VoiceProcessingStats> {
        self.local.voice.as_ref().map(|voice| voice.stats())
    }

    /// Playout underruns and samples dropped to bound the delay, over all remotes.
    pub fn playout_counters(&self) -> (u64, u64) {
        self.local.mixer.counters()
    }

    pub fn weakest_link_kbps(&self) -> u64 {
        self.local.weakest_link_bps.load(Ordering::Relaxed) / 1000
    }

    /// Waits for the engine to finish (after `Command::Leave`).
    pub async fn finished(self) {
        let _ = self.task.await;
    }

    pub fn is_finished(&self) -> bool {
        self.task.is_finished()
    }
}

/// Connects to the signaling server and starts the call.
pub async fn start(config: CallConfig) -> Result<CallHandle, CallError> {
    let (inputs_tx, inputs_rx) = mpsc::unbounded_channel();
    let signaling =
        SignalingClient::connect(&config.signaling, inputs_tx.clone(), config.connect_timeout)
            .await?;
    let (commands_tx, commands_rx) = mpsc::unbounded_channel();
    let (events_tx, events_rx) = mpsc::unbounded_channel();
    let session = Session::new(config.session.clone());
    let (snapshot_tx, snapshot_rx) = watch::channel(session.snapshot());
    let stats = StatsBook::default();
    let local = Arc::new(MediaSenderView {
        controls: RwLock::new(None),
        weakest_link_bps: AtomicU64::new(0),
        voice: config
            .voice
            .map(|voice| Arc::new(VoiceProcessor::new(voice))),
        mixer: PlayoutMixer::default(),
    });
    let engine = Engine {
        config,
        session,
        signaling,
        peers: HashMap::new(),
        generation: 0,
        stats: stats.clone(),
        events: events_tx,
        snapshot: snapshot_tx,
        writers: Arc::new(RwLock::new(HashMap::new())),
        local: local.clone(),
    };
    let task = tokio::spawn(engine.run(inputs_rx, commands_rx));
    Ok(CallHandle {
        commands: commands_tx,
        snapshot: snapshot_rx,
        events: events_rx,
        stats,
        local,
        task,
    })
}

struct PeerEntry {
    link: Arc<PeerLink>,
    state: PeerConnState,
    /// Media is written only while connected (before, SRTP has no keys yet).
    connected: Arc<AtomicBool>,
    /// How tall this participant shows our camera, if it said.
    viewer_height: Option<u32>,
    /// Tells this peer's track readers to stop.
    stop: Arc<AtomicBool>,
}

type Writers = Arc<RwLock<HashMap<String, mpsc::Sender<(Source, EncodedUnit)>>>>;

struct Engine {
    config: CallConfig,
    session: Session,
    signaling: SignalingClient,
    peers: HashMap<String, PeerEntry>,
    generation: u64,
    stats: StatsBook,
    events: mpsc::UnboundedSender<SessionEvent>,
    snapshot: watch::Sender<Snapshot>,
    writers: Writers,
    local: Arc<MediaSenderView>,
}

impl Engine {
    async fn run(
        mut self,
        mut inputs: mpsc::UnboundedReceiver<Input>,
        mut commands: mpsc::UnboundedReceiver<Command>,
    ) {
        let (peer_tx, mut peer_events) = mpsc::unbounded_channel::<PeerEvent>();
        let (media_tx, media_rx) = mpsc::channel::<(Source, EncodedUnit)>(64);
        let mut media = MediaSender::start(
            self.config.camera.clone(),
            self.config.screen.clone(),
            AudioSetup {
                input: self.config.audio.clone(),
                mixer: self.local.mixer.clone(),
                voice: self.local.voice.clone(),
                room: self.config.room,
                speaker: self.config.speaker.clone(),
            },
            media_tx,
            self.config.pictures.clone().map(|output| output.0),
        );
        *self.local.controls.write() = Some([
            media.audio.clone(),
            media.camera.clone(),
            media.screen.clone(),
        ]);
        let fanout = tokio::spawn(fan_out(media_rx, self.writers.clone()));
        let initial = self.session.initial_sources();
        self.execute(vec![initial], &media, &peer_tx).await;

        let mut ticker = tokio::time::interval(Duration::from_millis(250));
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut ticks = 0u64;
        let mut finished = false;
        while !finished {
            let input = tokio::select! {
                Some(input) = inputs.recv() => input,
                Some(event) = peer_events.recv() => {
                    match self.peer_event(event, &media) {
                        Some(input) => input,
                        None => continue,
                    }
                }
                command = commands.recv() => match command {
                    Some(command) => Input::Command(command),
                    // Every handle is gone: leave.
                    None => Input::Command(Command::Leave),
                },
                _ = ticker.tick() => {
                    self.follow_estimates(&media);
                    self.follow_viewers(&media);
                    ticks += 1;
                    if ticks.is_multiple_of(4) {
                        self.refresh_transport_stats().await;
                    }
                    Input::Tick
                }
            };
            finished = self.process(input, &media, &peer_tx).await;
        }
        media.stop();
        fanout.abort();
        for (_, entry) in self.peers.drain() {
            entry.stop.store(true, Ordering::SeqCst);
            entry.link.close().await;
        }
        self.writers.write().clear();
        self.signaling.disconnect().await;
        self.publish();
        tracing::info!("call finished");
    }

    /// Feeds one input (and whatever it leads to) through the session.
    async fn process(
        &mut self,
        input: Input,
        media: &MediaSender,
        peer_tx: &mpsc::UnboundedSender<PeerEvent>,
    ) -> bool {
        let mut queue = VecDeque::from([input]);
        let mut finished = false;
        while let Some(input) = queue.pop_front() {
            let actions = self.session.handle(Instant::now(), input);
            finished |= actions.contains(&Action::Finished);
            queue.extend(self.execute(actions, media, peer_tx).await);
        }
        self.publish();
        finished
    }

    fn publish(&self) {
        let snapshot = self.session.snapshot();
        self.snapshot.send_if_modified(|current| {
            if *current != snapshot {
                *current = snapshot;
                true
            } else {
                false
            }
        });
    }

    fn peer_event(&mut self, event: PeerEvent, media: &MediaSender) -> Option<Input> {
        let entry = self.peers.get_mut(&event.user_id)?;
        if entry.link.generation() != event.generation {
            return None; // from a connection that was replaced
        }
        match event.kind {
            PeerEventKind::Candidate(candidate) => Some(Input::LocalCandidate {
                user_id: event.user_id,
                candidate: Some(candidate),
            }),
            PeerEventKind::State(state) => {
                entry.state = state;
                entry
                    .connected
                    .store(state == PeerConnState::Connected, Ordering::SeqCst);
                if state == PeerConnState::Connected {
                    // A new or recovered receiver needs a picture to start from, in its codec.
                    media.request_keyframe(Source::Camera);
                    media.request_keyframe(Source::Screen);
                    self.follow_viewers(media);
                }
                Some(Input::PeerState {
                    user_id: event.user_id,
                    state,
                })
            }
            PeerEventKind::RemoteTrack(hint, track) => {
                let link = entry.link.clone();
                let stats = self.stats.clone();
                let options = receiver::ReaderOptions {
                    save_dir: self.config.save_dir.clone(),
                    simulated_loss: self.config.simulated_receive_loss,
                    playout: Some(self.local.mixer.clone()),
                    pictures: self.config.pictures.clone(),
                };
                let stop = entry.stop.clone();
                tokio::spawn(async move {
                    // The transceiver's place decides; the track's own name is the fallback.
                    let source = link.source_of(&track).await.unwrap_or(hint);
                    receiver::spawn_track_reader(
                        event.user_id,
                        source,
                        track,
                        stats,
                        options,
                        stop,
                    );
                });
                None
            }
            PeerEventKind::KeyframeRequested(source) => {
                media
                    .control(source)
                    .keyframe_requests_from_peers
                    .fetch_add(1, Ordering::Relaxed);
                media.request_keyframe(source);
                None
            }
        }
    }

    async fn refresh_transport_stats(&self) {
        for (user_id, entry) in &self.peers {
            if entry.state == PeerConnState::Connected {
                let round_trip = entry.link.round_trip_ms().await;
                let estimate = entry.link.target_bitrate_bps() / 1000.0;
                self.stats.set_transport(user_id, round_trip, estimate);
            }
        }
    }

    /// The camera is sent as tall as the tallest connected viewer shows it; a viewer that never
    /// said (a browser) gets full size.
    fn follow_viewers(&self, media: &MediaSender) {
        let connected = self
            .peers
            .values()
            .filter(|entry| entry.state == PeerConnState::Connected);
        let mut tallest = Some(0u32);
        for entry in connected {
            tallest = match (tallest, entry.viewer_height) {
                (Some(current), Some(height)) => Some(current.max(height)),
                _ => None,
            };
        }
        let target = match tallest {
            Some(height) if height > 0 => u64::from(height),
            _ => 0,
        };
        media.camera.target_height.store(target, Ordering::Relaxed);
        // Encode in each codec a connected link negotiated, and in no other.
        let mut in_use = [false; 2];
        for entry in self.peers.values() {
            if entry.state == PeerConnState::Connected
                && let Some(codec) = entry.link.video_codec()
            {
                in_use[codec.index()] = true;
            }
        }
        for control in [&media.camera, &media.screen] {
            for (flag, used) in control.codecs_in_use.iter().zip(in_use) {
                if flag.swap(used, Ordering::Relaxed) != used && used {
                    control.keyframe_requested.store(true, Ordering::SeqCst);
                }
            }
        }
    }

    fn follow_estimates(&self, media: &MediaSender) {
        let weakest = self
            .peers
            .values()
            .filter(|entry| entry.state == PeerConnState::Connected)
            .map(|entry| entry.link.target_bitrate_bps())
            .fold(None, |min: Option<f64>, bps| {
                Some(min.map_or(bps, |m| m.min(bps)))
            });
        if let Some(bps) = weakest {
            media.follow_estimate(bps);
            self.local
                .weakest_link_bps
                .store(bps as u64, Ordering::Relaxed);
        }
    }

    async fn new_peer(
        &mut self,
        user_id: &str,
        ice_servers: &[classroom_wire::IceServer],
        offering: bool,
        peer_tx: &mpsc::UnboundedSender<PeerEvent>,
    ) -> Result<Arc<PeerLink>, crate::rtc::RtcError> {
        self.close_peer(user_id).await;
        self.generation += 1;
        let stream_id = format!("classroom-{}", self.session.snapshot().self_user_id);
        let link = Arc::new(
            PeerLink::new(
                user_id,
                self.generation,
                &stream_id,
                ice_servers,
                &self.config.peer,
                offering,
                peer_tx.clone(),
            )
            .await?,
        );
        let (writer_tx, mut writer_rx) = mpsc::channel::<(Source, EncodedUnit)>(32);
        let writer_link = link.clone();
        let connected = Arc::new(AtomicBool::new(false));
        let writer_connected = connected.clone();
        tokio::spawn(async move {
            while let Some((source, unit)) = writer_rx.recv().await {
                if !writer_connected.load(Ordering::Relaxed) {
                    continue;
                }
                if let Err(error) = writer_link.write(source, &unit).await {
                    tracing::debug!(user = %writer_link.user_id(), %error, "media not sent");
                }
            }
        });
        self.writers.write().insert(user_id.to_owned(), writer_tx);
        self.peers.insert(
            user_id.to_owned(),
            PeerEntry {
                link: link.clone(),
                state: PeerConnState::New,
                connected,
                viewer_height: None,
                stop: Arc::new(AtomicBool::new(false)),
            },
        );
        Ok(link)
    }

    async fn close_peer(&mut self, user_id: &str) {
        self.writers.write().remove(user_id);
        if let Some(entry) = self.peers.remove(user_id) {
            entry.stop.store(true, Ordering::SeqCst);
            entry.link.close().await;
            self.stats.forget(user_id);
            self.local.mixer.forget(user_id);
        }
    }

    /// Carries out the session's actions; returns the inputs they produced.
    async fn execute(
        &mut self,
        actions: Vec<Action>,
        media: &MediaSender,
        peer_tx: &mpsc::UnboundedSender<PeerEvent>,
    ) -> Vec<Input> {
        let mut produced = Vec::new();
        for action in actions {
            match action {
                Action::Emit(outgoing) => {
                    if let Err(error) = self.signaling.emit(&outgoing).await {
                        tracing::warn!(%error, "signaling emit failed");
                    }
                }
                Action::CreatePeer {
                    user_id,
                    ice_servers,
                    offer,
                } => {
                    let result = async {
                        let link = self
                            .new_peer(&user_id, &ice_servers, offer, peer_tx)
                            .await?;
                        if offer {
                            Ok(Some(link.create_offer().await?))
                        } else {
                            Ok(None)
                        }
                    }
                    .await;
                    match result {
                        Ok(Some(description)) => produced.push(Input::LocalDescription {
                            user_id,
                            description,
                        }),
                        Ok(None) => {}
                        Err(error) => produced.push(peer_error(user_id, error)),
                    }
                }
                Action::AcceptOffer {
                    user_id,
                    ice_servers,
                    offer,
                    replace,
                } => {
                    let result = async {
                        let link = match self.peers.get(&user_id) {
                            Some(entry) if !replace => entry.link.clone(),
                            _ => {
                                self.new_peer(&user_id, &ice_servers, false, peer_tx)
                                    .await?
                            }
                        };
                        link.accept_offer(&offer).await
                    }
                    .await;
                    match result {
                        Ok(description) => produced.push(Input::LocalDescription {
                            user_id,
                            description,
                        }),
                        Err(error) => produced.push(peer_error(user_id, error)),
                    }
                }
                Action::AcceptAnswer { user_id, answer } => {
                    if let Some(entry) = self.peers.get(&user_id)
                        && let Err(error) = entry.link.accept_answer(&answer).await
                    {
                        produced.push(peer_error(user_id, error));
                    }
                }
                Action::AddRemoteCandidate { user_id, candidate } => {
                    if let Some(entry) = self.peers.get(&user_id)
                        && let Err(error) = entry.link.add_remote_candidate(candidate).await
                    {
                        tracing::warn!(user = %user_id, %error, "remote candidate refused");
                    }
                }
                Action::RestartIce { user_id } => {
                    if let Some(entry) = self.peers.get(&user_id) {
                        match entry.link.restart_ice().await {
                            Ok(description) => produced.push(Input::LocalDescription {
                                user_id,
                                description,
                            }),
                            Err(error) => produced.push(peer_error(user_id, error)),
                        }
                    }
                }
                Action::ClosePeer { user_id } => self.close_peer(&user_id).await,
                Action::SetVolume { user_id, percent } => {
                    self.local
                        .mixer
                        .set_volume(&user_id, percent as f32 / 100.0);
                }
                Action::SetViewerHeight {
                    user_id,
                    max_height,
                } => {
                    if let Some(entry) = self.peers.get_mut(&user_id) {
                        entry.viewer_height = Some(max_height);
                    }
                }
                Action::SetSources {
                    audio,
                    camera,
                    screen,
                } => media.set_enabled(audio, camera, screen),
                Action::Notify(event) => {
                    tracing::info!(?event, "session event");
                    let _ = self.events.send(event);
                }
                Action::Finished => {}
            }
        }
        produced
    }
}

fn peer_error(user_id: String, error: crate::rtc::RtcError) -> Input {
    tracing::warn!(user = %user_id, %error, "peer connection operation failed");
    Input::PeerError {
        user_id,
        message: error.to_string(),
    }
}

/// Hands each encoded unit to every peer's writer; a writer that is behind loses the unit
/// (its receiver recovers with a keyframe request) instead of holding up the others.
async fn fan_out(mut units: mpsc::Receiver<(Source, EncodedUnit)>, writers: Writers) {
    while let Some((source, unit)) = units.recv().await {
        let writers: Vec<_> = writers.read().values().cloned().collect();
        for writer in writers {
            let _ = writer.try_send((source, unit.clone()));
        }
    }
}
