//! The call engine: drives the sans-IO [`Session`] with the real signaling client, one
//! [`PeerLink`] per remote participant and the media threads. Commands come in over a
//! channel; the session's state goes out over a `watch` channel (the UI renders it, the
//! headless participant prints it), notable events over another. Nothing here blocks the
//! caller: the engine is a tokio task, media lives on its own threads.

pub mod audio;
mod drivers;
#[cfg(test)]
mod fast_tests;
pub mod headless;
mod link;
pub mod pictures;
pub mod preflight;
pub mod receiver;
pub mod sender;
#[cfg(test)]
mod simulated;
pub mod source;
pub mod stats;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use classroom_wire::IceServer;

use parking_lot::RwLock;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::media::device_error::DeviceError;
use crate::media::voice::{
    SimulatedRoomConfig, VoiceProcessingConfig, VoiceProcessingStats, VoiceProcessor,
};
use crate::rtc::{EncodedUnit, PeerOptions};
use crate::session::{
    Action, Command, Input, Outgoing, Session, SessionConfig, SessionEvent, Snapshot,
};
use crate::signaling::{SignalingClient, SignalingConfig, SignalingError};
use crate::types::{LinkId, Source};
use audio::PlayoutMixer;
use drivers::{LinkFactory, SignalingPort, WebRtcLinks};
use link::{LinkContext, LinkOp, LinkReport, LinkReportKind, LinkSpec};
use sender::{AudioInput, AudioSetup, MediaSender, VideoInput};
use stats::StatsBook;
pub use stats::StatsCursor;

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
    /// Play the class on this output device (`Some(None)`: the default one).
    pub speaker: Option<Option<String>>,
    /// How long to keep trying to reach the signaling server at the start.
    pub connect_timeout: Duration,
    /// Where decoded pictures and the local previews are shown (the UI); `None`: nowhere
    /// (headless), and nothing is converted for display.
    pub pictures: Option<PictureOutput>,
}

/// Where the class server is and how to sign in to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClassServer {
    /// `http://host:port` (or `https://…`).
    pub url: String,
    /// Signed token (`auth.token`); `None` against a server in development mode.
    pub token: Option<String>,
    /// A local class's join key (`auth.key`).
    pub key: Option<String>,
}

impl CallConfig {
    /// A call to `server` as `session` with nothing to send yet (no camera, screen or
    /// microphone, nothing played), ICE on `bind_ip` (`0.0.0.0`: every interface).
    pub fn new(server: ClassServer, session: SessionConfig, bind_ip: std::net::IpAddr) -> Self {
        CallConfig {
            signaling: SignalingConfig {
                url: server.url,
                token: server.token,
                key: server.key,
                websocket_only: false,
            },
            session,
            peer: PeerOptions {
                bind_ip,
                ..PeerOptions::default()
            },
            camera: VideoInput::None,
            screen: VideoInput::None,
            audio: AudioInput::None,
            voice: None,
            speaker: None,
            connect_timeout: Duration::from_secs(15),
            pictures: None,
        }
    }
}

/// What the test participant (`classroom bot`) adds to a call; none of it in a user's call.
#[derive(Debug, Clone, Default)]
pub(crate) struct TestInputs {
    /// A simulated room: playback comes back into the microphone (echo and noise).
    pub room: Option<SimulatedRoomConfig>,
    /// Save what is received (H.264 Annex-B, VP8 frames, 48 kHz s16le PCM per remote) here.
    pub save_dir: Option<PathBuf>,
    /// The fraction of received video packets dropped after the transport.
    pub simulated_receive_loss: f64,
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
    /// A device of this source that failed (a microphone or speaker, a camera); in JSON as
    /// its text.
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "as_text")]
    pub device_error: Option<DeviceError>,
    /// Level of what was sent since the reader's previous report (audio), dBFS.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sent_level_dbfs: Option<f64>,
}

/// The index of a source's control in the call's three (audio, camera, screen).
fn source_index(source: Source) -> usize {
    match source {
        Source::Audio => 0,
        Source::Camera => 1,
        Source::Screen => 2,
    }
}

fn as_text<S: serde::Serializer>(
    error: &Option<DeviceError>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    match error {
        Some(error) => serializer.collect_str(error),
        None => serializer.serialize_none(),
    }
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
pub(crate) struct MediaSenderView {
    controls: RwLock<Option<[Arc<source::SourceControl>; 3]>>,
    pub weakest_link_bps: AtomicU64,
    voice: Option<Arc<VoiceProcessor>>,
    mixer: PlayoutMixer,
}

impl CallHandle {
    pub fn command(&self, command: Command) {
        let _ = self.commands.send(command);
    }

    /// What the local sources did; levels since `cursor`'s previous report (which this
    /// moves on). Nothing is reset: each reader keeps a cursor of its own.
    pub fn local_report(
        &self,
        cursor: &mut StatsCursor,
    ) -> HashMap<&'static str, LocalSourceReport> {
        let mut report = HashMap::new();
        if let Some(controls) = self.local.controls.read().as_ref() {
            for (name, control) in ["audio", "camera", "screen"].into_iter().zip(controls) {
                let figures = control.figures();
                report.insert(
                    name,
                    LocalSourceReport {
                        enabled: figures.enabled,
                        frames_encoded: figures.frames_encoded,
                        target_kbps: figures.target_bps / 1000,
                        dropped: figures.dropped,
                        errors: figures.errors,
                        sent_height: figures.sent_height,
                        device_error: figures.device_error,
                        keyframe_requests_received: figures.keyframe_requests_from_peers,
                        sent_level_dbfs: cursor
                            .level_since(&format!("local:{name}"), figures.sent_level),
                    },
                );
            }
        }
        report
    }

    /// Switches `source` to `input` (the screen the user picked to share, another camera);
    /// a source that is off uses it when switched on.
    pub(crate) fn choose_input(&self, source: Source, input: sender::VideoInput) {
        if let Some(controls) = self.local.controls.read().as_ref() {
            controls[source_index(source)].choose_input(input);
        }
    }

    /// Switches the microphone and the speaker during the call (`None`: the system's
    /// default). The voice processing starts over with them. Without audio devices (joined
    /// without audio, or the headless participant's test inputs) nothing changes.
    pub fn choose_audio_devices(&self, devices: sender::AudioDevices) {
        if let Some(controls) = self.local.controls.read().as_ref() {
            controls[source_index(Source::Audio)].choose_audio(devices);
        }
    }

    /// Audio device switches done so far in this call.
    pub fn audio_switches(&self) -> u64 {
        self.local.controls.read().as_ref().map_or(0, |controls| {
            controls[source_index(Source::Audio)]
                .figures()
                .audio_switches
        })
    }

    /// Switches voice processing stages on or off during the call. Returns false when the
    /// call runs without the stage (joined with it off): then nothing changes.
    pub(crate) fn set_voice_config(&self, config: VoiceProcessingConfig) -> bool {
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
    pub(crate) fn playout_counters(&self) -> (u64, u64) {
        self.local.mixer.counters()
    }

    pub(crate) fn weakest_link_kbps(&self) -> u64 {
        self.local.weakest_link_bps.load(Ordering::Relaxed) / 1000
    }

    /// Waits for the engine to finish (after `Command::Leave`).
    pub async fn finished(self) {
        let _ = self.task.await;
    }

    pub(crate) fn is_finished(&self) -> bool {
        self.task.is_finished()
    }
}

/// Connects to the signaling server and starts the call.
pub async fn start(config: CallConfig) -> Result<CallHandle, CallError> {
    start_with_test_inputs(config, TestInputs::default()).await
}

/// [`start`], with the test participant's inputs.
pub(crate) async fn start_with_test_inputs(
    config: CallConfig,
    test: TestInputs,
) -> Result<CallHandle, CallError> {
    let (inputs_tx, inputs_rx) = mpsc::unbounded_channel();
    let signaling =
        SignalingClient::connect(&config.signaling, inputs_tx, config.connect_timeout).await?;
    Ok(start_engine(
        config,
        test,
        inputs_rx,
        Arc::new(signaling),
        Arc::new(WebRtcLinks),
    ))
}

/// Starts the engine on these drivers: `inputs` are the signaling side's events.
fn start_engine(
    config: CallConfig,
    test: TestInputs,
    inputs_rx: mpsc::UnboundedReceiver<Input>,
    signaling: Arc<dyn SignalingPort>,
    transport: Arc<dyn LinkFactory>,
) -> CallHandle {
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
    let (reports_tx, reports_rx) = mpsc::unbounded_channel();
    let links = LinkContext {
        options: config.peer.clone(),
        stream_id: format!("classroom-{}", config.session.user_id),
        stats: stats.clone(),
        readers: receiver::ReaderOptions {
            save_dir: test.save_dir.clone(),
            simulated_loss: test.simulated_receive_loss,
            playout: Some(local.mixer.clone()),
            pictures: config.pictures.clone(),
        },
        reports: reports_tx,
    };
    let (outgoing_tx, outgoing_rx) = mpsc::unbounded_channel();
    let emitter = tokio::spawn(emit_in_order(signaling.clone(), outgoing_rx));
    let engine = Engine {
        config,
        room: test.room,
        session,
        signaling,
        transport,
        outgoing: outgoing_tx,
        links,
        peers: HashMap::new(),
        generation: 0,
        stats: stats.clone(),
        events: events_tx,
        snapshot: snapshot_tx,
        writers: Arc::new(RwLock::new(HashMap::new())),
        local: local.clone(),
    };
    let task = tokio::spawn(engine.run(inputs_rx, commands_rx, reports_rx, emitter));
    CallHandle {
        commands: commands_tx,
        snapshot: snapshot_rx,
        events: events_rx,
        stats,
        local,
        task,
    }
}

/// The engine's side of one link: its operations queue and its task.
struct LinkEntry {
    generation: u64,
    ops: mpsc::UnboundedSender<LinkOp>,
    task: JoinHandle<()>,
}

type Writers = Arc<RwLock<HashMap<LinkId, mpsc::Sender<(Source, EncodedUnit)>>>>;

struct Engine {
    config: CallConfig,
    /// The test participant's simulated room, if any.
    room: Option<SimulatedRoomConfig>,
    session: Session,
    signaling: Arc<dyn SignalingPort>,
    transport: Arc<dyn LinkFactory>,
    /// Emits, in order, without the engine waiting for each.
    outgoing: mpsc::UnboundedSender<Outgoing>,
    links: LinkContext,
    peers: HashMap<LinkId, LinkEntry>,
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
        mut reports: mpsc::UnboundedReceiver<LinkReport>,
        emitter: JoinHandle<()>,
    ) {
        let (media_tx, media_rx) = mpsc::channel::<(Source, EncodedUnit)>(64);
        let (health_tx, mut health) = mpsc::unbounded_channel();
        let mut media = MediaSender::start(
            self.config.camera.clone(),
            self.config.screen.clone(),
            AudioSetup {
                input: self.config.audio.clone(),
                mixer: self.local.mixer.clone(),
                voice: self.local.voice.clone(),
                room: self.room,
                speaker: self.config.speaker.clone(),
            },
            media_tx,
            self.config.pictures.clone().map(|output| output.0),
            health_tx,
        );
        *self.local.controls.write() = Some([
            media.audio.clone(),
            media.camera.clone(),
            media.screen.clone(),
        ]);
        let fanout = tokio::spawn(fan_out(media_rx, self.writers.clone()));
        let initial = self.session.initial_actions();
        self.execute(initial, &media);

        let mut finished = false;
        while !finished {
            let deadline = self.session.poll_timeout();
            let input = tokio::select! {
                Some(input) = inputs.recv() => input,
                Some((source, working)) = health.recv() => Input::SourceWorking { source, working },
                Some(report) = reports.recv() => {
                    match self.link_report(report, &media) {
                        Some(input) => input,
                        None => continue,
                    }
                }
                command = commands.recv() => match command {
                    Some(command) => Input::Command(command),
                    // Every handle is gone: leave.
                    None => Input::Command(Command::Leave),
                },
                _ = sleep_until(deadline), if deadline.is_some() => Input::Timeout,
            };
            finished = self.process(input, &media);
        }
        media.stop();
        fanout.abort();
        self.writers.write().clear();
        let closing: Vec<_> = self.peers.drain().map(|(_, entry)| entry.task).collect();
        for task in closing {
            let _ = task.await;
        }
        // The leave (and whatever came before it) goes out before the socket closes.
        drop(self.outgoing);
        let _ = emitter.await;
        self.signaling.disconnect().await;
        let snapshot = self.session.snapshot();
        self.snapshot.send_replace(snapshot);
        tracing::info!("call finished");
    }

    /// Feeds one input (and whatever it leads to) through the session.
    fn process(&mut self, input: Input, media: &MediaSender) -> bool {
        let actions = self.session.handle(now(), input);
        let finished = actions.contains(&Action::Finished);
        self.execute(actions, media);
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

    /// A link's report as a session input, if it is from the current link to its user.
    fn link_report(&self, report: LinkReport, media: &MediaSender) -> Option<Input> {
        let entry = self.peers.get(&report.link)?;
        if entry.generation != report.generation {
            return None; // from a link that was replaced
        }
        let link = report.link;
        Some(match report.kind {
            LinkReportKind::Candidate(candidate) => Input::LocalCandidate {
                link,
                candidate: Some(candidate),
            },
            LinkReportKind::State(state) => Input::LinkState { link, state },
            LinkReportKind::Description(description) => {
                Input::LocalDescription { link, description }
            }
            LinkReportKind::Negotiated(video_codec) => Input::LinkNegotiated { link, video_codec },
            LinkReportKind::Estimate(bps) => Input::LinkEstimate { link, bps },
            LinkReportKind::RemoteTrack { owner, source } => Input::RemoteTrack {
                link,
                owner,
                source,
            },
            LinkReportKind::KeyframeRequested(source) => {
                media.control(source).count_keyframe_request_from_peer();
                Input::KeyframeRequested { link, source }
            }
            LinkReportKind::Failed(error) => {
                tracing::warn!(%link, %error, "link operation failed");
                Input::LinkError {
                    link,
                    message: error.to_string(),
                }
            }
        })
    }

    /// Starts `link` (replacing any other of that id), with `first` as its first operation.
    fn open_link(
        &mut self,
        link: &LinkId,
        ice_servers: Vec<IceServer>,
        offering: bool,
        first: Option<LinkOp>,
    ) {
        self.close_link(link);
        self.generation += 1;
        let (ops_tx, ops_rx) = mpsc::unbounded_channel();
        if let Some(op) = first {
            let _ = ops_tx.send(op);
        }
        let (writer_tx, writer_rx) = mpsc::channel(link::WRITER_QUEUE);
        self.writers.write().insert(link.clone(), writer_tx);
        let spec = LinkSpec {
            link: link.clone(),
            generation: self.generation,
            ice_servers,
            offering,
        };
        let task = self
            .transport
            .open(spec, self.links.clone(), ops_rx, writer_rx);
        self.peers.insert(
            link.clone(),
            LinkEntry {
                generation: self.generation,
                ops: ops_tx,
                task,
            },
        );
    }

    /// Closes `link`: its task closes the peer connection in the background; what was
    /// received over it is forgotten.
    fn close_link(&mut self, link: &LinkId) {
        self.writers.write().remove(link);
        // The SFU's link forgets what it received from each participant itself, as it ends.
        if self.peers.remove(link).is_some()
            && let Some(user_id) = link.participant()
        {
            self.stats.forget(user_id);
            self.local.mixer.forget(user_id);
        }
    }

    fn send_op(&self, link: &LinkId, op: LinkOp) {
        if let Some(entry) = self.peers.get(link) {
            let _ = entry.ops.send(op);
        }
    }

    /// Carries out the session's actions. Nothing here waits: link operations are queued to
    /// their link's task, emits to the emitter; their results come back as inputs.
    fn execute(&mut self, actions: Vec<Action>, media: &MediaSender) {
        for action in actions {
            match action {
                Action::Emit(outgoing) => {
                    let _ = self.outgoing.send(outgoing);
                }
                Action::OpenLink {
                    link,
                    ice_servers,
                    offer,
                } => {
                    let first = offer.then_some(LinkOp::CreateOffer);
                    self.open_link(&link, ice_servers, offer, first);
                }
                Action::AcceptOffer {
                    link,
                    ice_servers,
                    offer,
                    replace,
                } => {
                    if replace || !self.peers.contains_key(&link) {
                        self.open_link(&link, ice_servers, false, Some(LinkOp::AcceptOffer(offer)));
                    } else {
                        self.send_op(&link, LinkOp::AcceptOffer(offer));
                    }
                }
                Action::AcceptAnswer { link, answer } => {
                    self.send_op(&link, LinkOp::AcceptAnswer(answer));
                }
                Action::AddRemoteCandidate { link, candidate } => {
                    self.send_op(&link, LinkOp::AddCandidate(candidate));
                }
                Action::RestartIce { link } => self.send_op(&link, LinkOp::RestartIce),
                Action::CloseLink { link } => self.close_link(&link),
                Action::SetVolume { user_id, percent } => {
                    self.local
                        .mixer
                        .set_volume(&user_id, percent as f32 / 100.0);
                }
                Action::SetSources {
                    audio,
                    camera,
                    screen,
                } => media.set_enabled(audio, camera, screen),
                Action::SetSendTargets(targets) => {
                    media.apply_targets(&targets);
                    if let Some(bps) = targets.weakest_link_bps {
                        self.local.weakest_link_bps.store(bps, Ordering::Relaxed);
                    }
                }
                Action::RequestKeyframe(source) => media.request_keyframe(source),
                Action::Notify(event) => {
                    tracing::info!(?event, "session event");
                    let _ = self.events.send(event);
                }
                Action::Finished => {}
            }
        }
    }
}

/// The engine's clock: tokio's, so the fast tests run it in virtual time.
fn now() -> Instant {
    tokio::time::Instant::now().into_std()
}

/// Waits until `deadline`; forever without one.
async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(tokio::time::Instant::from_std(deadline)).await,
        None => std::future::pending().await,
    }
}

/// Emits the session's messages in the order it produced them.
async fn emit_in_order(
    signaling: Arc<dyn SignalingPort>,
    mut outgoing: mpsc::UnboundedReceiver<Outgoing>,
) {
    while let Some(message) = outgoing.recv().await {
        if let Err(error) = signaling.emit(&message).await {
            tracing::warn!(%error, "signaling emit failed");
        }
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
