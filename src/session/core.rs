use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::{Duration, Instant};

use classroom_wire::{
    AnswerFromPeer, AnswerToPeer, ChatMessage, ChatSend, ErrorBody, IceCandidate,
    IceCandidateFromPeer, IceCandidateToPeer, IceServer, JoinSession, LeaveReason, MediaState,
    OfferFromPeer, OfferToPeer, Participant, SdpKind, SessionDescription, SessionJoined,
    SfuCandidate, SfuDescription, Topology, UserLeft, VideoRequestFromPeer, VideoRequestToPeer,
    capability,
};
use serde::Serialize;

pub use self::controls::{ClassInput, ClassView, PollView};
use super::media_rules::{self, LinkMedia, SendTargets, VideoOn};

mod controls;
use crate::types::{LinkId, PeerConnState, Source, VideoCodec};

/// Chat messages written while the signaling socket is down wait, up to this many, and go
/// out once the session is joined again.
pub const CHAT_WAITING_MAX: usize = 20;

/// Who we are and the timing rules of the call.
#[derive(Debug, Clone)]
pub struct SessionConfig {
    pub session_id: String,
    pub user_id: String,
    pub user_name: String,
    pub is_instructor: bool,
    /// Local media switched on at the start.
    pub audio_enabled: bool,
    pub video_enabled: bool,
    /// How long a peer connection outlives its participant's dropped socket.
    pub reconnect_grace: Duration,
    /// How long an ICE restart may take before the peer connection is replaced.
    pub restart_timeout: Duration,
    /// Chat messages kept for the UI.
    pub chat_capacity: usize,
    /// STUN/TURN servers of our own (the school's managed policy), added to the server's.
    pub extra_ice_servers: Vec<IceServer>,
}

impl SessionConfig {
    pub fn new(session_id: &str, user_id: &str, user_name: &str, is_instructor: bool) -> Self {
        SessionConfig {
            session_id: session_id.to_owned(),
            user_id: user_id.to_owned(),
            user_name: user_name.to_owned(),
            is_instructor,
            audio_enabled: true,
            video_enabled: true,
            reconnect_grace: Duration::from_secs(20),
            restart_timeout: Duration::from_secs(8),
            chat_capacity: 500,
            extra_ice_servers: Vec::new(),
        }
    }
}

/// What the user (or the headless driver) asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    SetMicrophone(bool),
    SetCamera(bool),
    SetScreenShare(bool),
    RaiseHand(bool),
    SendChat(String),
    /// The tallest we show anyone's camera (a grid of tiles): senders need not send more.
    SetViewHeight(u32),
    /// How loud one participant plays for us, in percent (0 mutes them for us alone).
    SetVolume {
        user_id: String,
        percent: u32,
    },
    /// An instructor's action (the server checks it).
    Moderate(classroom_wire::Moderation),
    /// One of the class's reactions.
    React(String),
    /// Our answer to the open poll: the options chosen (indices), or the words typed in a
    /// typed poll.
    Vote {
        choices: Vec<usize>,
        text: Option<String>,
    },
    /// A private chat message to one participant.
    SendPrivateChat {
        to_user_id: String,
        message: String,
    },
    /// The notice of what an instructor did to us was read.
    DismissNotice,
    Leave,
}

/// Everything the session reacts to.
#[derive(Debug, Clone)]
pub enum Input {
    /// The signaling socket is (again) connected: join.
    SignalingConnected,
    SignalingDisconnected,
    Joined(SessionJoined),
    UserJoined(Participant),
    UserLeft(UserLeft),
    ParticipantUpdated(Participant),
    /// Several participants at once (`participants-updated`, from a server that batches).
    ParticipantsUpdated(classroom_wire::ParticipantsUpdated),
    Chat(ChatMessage),
    ServerError(ErrorBody),
    Offer(OfferFromPeer),
    Answer(AnswerFromPeer),
    RemoteCandidate(IceCandidateFromPeer),
    /// A viewer says how tall it shows our camera.
    VideoRequest(VideoRequestFromPeer),
    /// The server's SFU offers (its m-lines for the others' tracks) or answers ours.
    SfuDescription(SfuDescription),
    /// Negotiation on `link` settled; the video codec it carries.
    LinkNegotiated {
        link: LinkId,
        video_codec: Option<VideoCodec>,
    },
    /// `link` estimates it carries this many bits per second.
    LinkEstimate {
        link: LinkId,
        bps: f64,
    },
    /// The receiver behind `link` asked for a keyframe of `source` (PLI/FIR).
    KeyframeRequested {
        link: LinkId,
        source: Source,
    },
    /// The server is restarting: the connection closes, and the client comes back.
    ServerRestarting(classroom_wire::ServerRestarting),
    /// `link` produced an offer or answer to send.
    LocalDescription {
        link: LinkId,
        description: SessionDescription,
    },
    /// `link` gathered a candidate (`None`: gathering complete).
    LocalCandidate {
        link: LinkId,
        candidate: Option<IceCandidate>,
    },
    LinkState {
        link: LinkId,
        state: PeerConnState,
    },
    /// The device of a local source stopped (`working: false`: a camera that cannot open, a
    /// microphone that went away) or started working again. A source that does not work is
    /// announced as off, whatever the user chose; it comes back on by itself.
    SourceWorking {
        source: Source,
        working: bool,
    },
    /// `link` carries a track of `owner`'s `source` (in a mesh, the link's participant).
    RemoteTrack {
        link: LinkId,
        owner: String,
        source: Source,
    },
    /// An operation on `link` failed (invalid SDP from the remote, for instance).
    LinkError {
        link: LinkId,
        message: String,
    },
    Command(Command),
    /// The classroom controls: what instructors did, the class's settings, the waiting room.
    Class(ClassInput),
    /// The deadline [`Session::poll_timeout`] returned has passed.
    Timeout,
}

/// What goes out on the signaling socket.
#[derive(Debug, Clone, PartialEq)]
pub enum Outgoing {
    Join(JoinSession),
    Leave,
    Offer(OfferToPeer),
    Answer(AnswerToPeer),
    Candidate(IceCandidateToPeer),
    MediaState(MediaState),
    Chat(ChatSend),
    VideoRequest(VideoRequestToPeer),
    /// Our offer or answer on the connection to the SFU.
    SfuDescription(SfuDescription),
    SfuCandidate(SfuCandidate),
    Moderate(classroom_wire::Moderation),
    Reaction(classroom_wire::ReactionSend),
    Vote(classroom_wire::Vote),
}

/// What the drivers must do.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    Emit(Outgoing),
    /// Open `link` with these ICE servers; when `offer`, create an offer and report it as
    /// [`Input::LocalDescription`].
    OpenLink {
        link: LinkId,
        ice_servers: Vec<IceServer>,
        offer: bool,
    },
    /// Apply a remote offer (opening the link first if there is none, or replacing the
    /// existing one when `replace`), then answer with [`Input::LocalDescription`].
    AcceptOffer {
        link: LinkId,
        ice_servers: Vec<IceServer>,
        offer: SessionDescription,
        replace: bool,
    },
    AcceptAnswer {
        link: LinkId,
        answer: SessionDescription,
    },
    AddRemoteCandidate {
        link: LinkId,
        candidate: Option<IceCandidate>,
    },
    /// Restart ICE on the existing link and send a new offer.
    RestartIce {
        link: LinkId,
    },
    CloseLink {
        link: LinkId,
    },
    /// Play `user_id` at this volume (percent).
    SetVolume {
        user_id: String,
        percent: u32,
    },
    /// Which local sources run.
    SetSources {
        audio: bool,
        camera: bool,
        screen: bool,
    },
    /// What the encoders aim at changed.
    SetSendTargets(SendTargets),
    /// Encode a keyframe of this source next (a new receiver, a lost picture, a new codec).
    RequestKeyframe(Source),
    /// Something the user should hear about.
    Notify(SessionEvent),
    /// The call is over (we left); drivers shut down.
    Finished,
}

/// Notable things that happened, for the UI and the headless log.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "event", rename_all = "kebab-case")]
pub enum SessionEvent {
    Joined {
        participants: usize,
    },
    ParticipantJoined {
        user_id: String,
        user_name: String,
    },
    ParticipantLeft {
        user_id: String,
        user_name: String,
    },
    ChatReceived {
        from: String,
        message: String,
    },
    ServerError {
        code: String,
        message: String,
    },
    PeerFailed {
        user_id: String,
    },
    PeerRecovered {
        user_id: String,
    },
    PeerError {
        user_id: String,
        message: String,
    },
    SignalingLost,
    ServerRestarting {
        retry_after_ms: u64,
    },
    /// A chat message could not be kept for sending.
    ChatNotSent {
        message: String,
    },
    /// The class is over for us: an instructor removed us or ended it, or did not admit us.
    ClassOver {
        why: String,
    },
}

/// A link as the session tracks it: in a mesh, the peer connection to one remote participant;
/// on the SFU, the one connection to the server.
#[derive(Debug, Clone)]
struct Link {
    /// We sent the first offer on this connection.
    we_offered: bool,
    state: PeerConnState,
    /// An offer of ours awaits its answer.
    offer_pending: bool,
    /// The `o=` session id of the remote's SDP: a different one means a new peer connection.
    remote_sdp_session: Option<String>,
    failed_since: Option<Instant>,
    restarted: bool,
    /// Its participant's socket dropped at this time; closed when the grace period ends.
    orphaned_since: Option<Instant>,
    was_connected: bool,
    /// How tall the viewer shows our camera, if it said.
    viewer_height: Option<u32>,
    video_codec: Option<VideoCodec>,
    estimate_bps: Option<f64>,
    /// The remote tracks it carries: whose, and what.
    tracks: BTreeSet<(String, Source)>,
}

impl Link {
    fn new(we_offered: bool) -> Self {
        Link {
            we_offered,
            state: PeerConnState::New,
            offer_pending: we_offered,
            remote_sdp_session: None,
            failed_since: None,
            restarted: false,
            orphaned_since: None,
            was_connected: false,
            viewer_height: None,
            video_codec: None,
            estimate_bps: None,
            tracks: BTreeSet::new(),
        }
    }

    fn media(&self) -> LinkMedia {
        LinkMedia {
            connected: self.state == PeerConnState::Connected,
            viewer_height: self.viewer_height,
            video_codec: self.video_codec,
            estimate_bps: self.estimate_bps,
        }
    }

    fn healthy(&self) -> bool {
        matches!(
            self.state,
            PeerConnState::New | PeerConnState::Connecting | PeerConnState::Connected
        )
    }
}

/// A participant as published to the UI: the roster entry and its connection.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PeerSummary {
    #[serde(flatten)]
    pub participant: Participant,
    pub connection: Option<PeerConnState>,
    /// What we receive from them (the tracks our links carry of theirs).
    pub receiving: Vec<Source>,
}

/// The session as the UI renders it.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Snapshot {
    pub joined: bool,
    pub signaling_connected: bool,
    pub self_user_id: String,
    pub audio_enabled: bool,
    pub video_enabled: bool,
    pub screen_sharing: bool,
    pub hand_raised: bool,
    pub participants: Vec<PeerSummary>,
    pub chat: Vec<ChatMessage>,
    pub last_error: Option<String>,
    /// The classroom controls: settings, our role, the waiting room, raised hands.
    pub class: ClassView,
    /// What the server is, once joined.
    #[serde(skip)]
    pub server: Option<ServerKind>,
}

/// What the session learnt it is talking to from the join answer's `protocolVersion`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerKind {
    /// A server of ours: `docs/protocol.md` with its extensions (`video-request`, …).
    Classroom { protocol_version: u32 },
    /// The browser version's plain relay (no `protocolVersion`): the seed's events only.
    BrowserRelay,
}

impl ServerKind {
    fn of(joined: &SessionJoined) -> Self {
        if joined.has_extensions() {
            ServerKind::Classroom {
                protocol_version: joined.protocol_version,
            }
        } else {
            ServerKind::BrowserRelay
        }
    }

    /// Whether our extensions to the browser version's events may be sent.
    pub(crate) fn has_extensions(self) -> bool {
        matches!(self, ServerKind::Classroom { .. })
    }

    pub fn protocol_version(self) -> u32 {
        match self {
            ServerKind::Classroom { protocol_version } => protocol_version,
            ServerKind::BrowserRelay => classroom_wire::BROWSER_RELAY_PROTOCOL,
        }
    }

    /// How the stats and logs name it.
    pub fn name(self) -> &'static str {
        match self {
            ServerKind::Classroom { .. } => "classroom",
            ServerKind::BrowserRelay => "browser-relay",
        }
    }
}

/// A roster entry as the session keeps it: a name to show even when the server sent none.
fn with_name(mut participant: Participant) -> Participant {
    if participant.user_name.trim().is_empty() {
        participant.user_name = participant.user_id.clone();
    }
    participant
}

/// The state machine. See the module documentation.
pub struct Session {
    config: SessionConfig,
    self_id: String,
    signaling_connected: bool,
    joined: bool,
    left: bool,
    ice_servers: Vec<IceServer>,
    participants: BTreeMap<String, Participant>,
    /// The mesh's links, by the participant at the other end.
    mesh_links: BTreeMap<String, Link>,
    /// The connection to the server's SFU, in a class on it (then there are no mesh links).
    sfu_link: Option<Link>,
    chat: VecDeque<ChatMessage>,
    audio: bool,
    camera: bool,
    screen: bool,
    /// Local sources whose device does not work now: announced as off.
    not_working: BTreeSet<Source>,
    hand_raised: bool,
    last_error: Option<String>,
    view_height: Option<u32>,
    server: Option<ServerKind>,
    /// What the encoders were last told to aim at.
    targets: SendTargets,
    /// Chat written while not joined, sent once joined.
    chat_waiting: VecDeque<String>,
    class: ClassView,
}

impl Session {
    pub fn new(config: SessionConfig) -> Self {
        let class = ClassView {
            is_instructor: config.is_instructor,
            ..ClassView::default()
        };
        Session {
            self_id: config.user_id.clone(),
            audio: config.audio_enabled,
            camera: config.video_enabled,
            config,
            signaling_connected: false,
            joined: false,
            left: false,
            ice_servers: Vec::new(),
            participants: BTreeMap::new(),
            mesh_links: BTreeMap::new(),
            sfu_link: None,
            chat: VecDeque::new(),
            screen: false,
            not_working: BTreeSet::new(),
            hand_raised: false,
            last_error: None,
            view_height: None,
            server: None,
            targets: SendTargets::INITIAL,
            chat_waiting: VecDeque::new(),
            class,
        }
    }

    /// What the drivers do at the start, before anything happened: the sources to run and
    /// what the encoders aim at.
    pub(crate) fn initial_actions(&self) -> Vec<Action> {
        vec![self.sources(), Action::SetSendTargets(self.targets)]
    }

    /// When the session next needs [`Input::Timeout`]: the end of a grace period, or of an
    /// ICE restart's time to recover. `None`: no timer runs.
    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        self.mesh_links
            .iter()
            .filter_map(|(user_id, peer)| {
                let orphan_ends = peer
                    .orphaned_since
                    .map(|since| since + self.config.reconnect_grace);
                let restart_ends = peer
                    .failed_since
                    .filter(|_| peer.we_offered && self.participants.contains_key(user_id))
                    .map(|since| since + self.config.restart_timeout);
                match (orphan_ends, restart_ends) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                }
            })
            .min()
    }

    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            joined: self.joined,
            signaling_connected: self.signaling_connected,
            self_user_id: self.self_id.clone(),
            audio_enabled: self.sends(Source::Audio),
            video_enabled: self.sends(Source::Camera),
            screen_sharing: self.sends(Source::Screen),
            hand_raised: self.hand_raised,
            participants: self
                .participants
                .values()
                .map(|participant| PeerSummary {
                    participant: participant.clone(),
                    connection: self
                        .mesh_links
                        .get(&participant.user_id)
                        .or(self.sfu_link.as_ref())
                        .map(|peer| peer.state),
                    receiving: self.receiving_from(&participant.user_id),
                })
                .collect(),
            chat: self.chat.iter().cloned().collect(),
            last_error: self.last_error.clone(),
            class: self.class.clone(),
            server: self.server,
        }
    }

    pub fn handle(&mut self, now: Instant, input: Input) -> Vec<Action> {
        let mut actions = Vec::new();
        if self.left {
            return actions;
        }
        match input {
            Input::SignalingConnected => {
                self.signaling_connected = true;
                actions.push(Action::Emit(Outgoing::Join(JoinSession {
                    session_id: self.config.session_id.clone(),
                    user_id: Some(self.config.user_id.clone()),
                    user_name: Some(self.config.user_name.clone()),
                    is_instructor: self.config.is_instructor,
                    capabilities: vec![
                        capability::SFU.to_owned(),
                        capability::PARTICIPANTS_UPDATED.to_owned(),
                    ],
                })));
            }
            Input::SignalingDisconnected => {
                self.signaling_connected = false;
                self.joined = false;
                actions.push(Action::Notify(SessionEvent::SignalingLost));
            }
            Input::Joined(joined) => self.on_joined(now, joined, &mut actions),
            Input::UserJoined(participant) => self.on_user_joined(participant, &mut actions),
            Input::UserLeft(left) => self.on_user_left(now, left, &mut actions),
            Input::ParticipantUpdated(participant) => {
                if participant.user_id != self.self_id {
                    self.participants
                        .insert(participant.user_id.clone(), with_name(participant));
                } else {
                    // An instructor changed our role, or lowered our hand.
                    self.class.learn_role(&participant);
                    self.hand_raised &= participant.hand_raised;
                }
            }
            Input::ParticipantsUpdated(batch) => {
                // Our own entry is not for us: what others change about us comes on its own,
                // as `participant-updated`, and the batch may be older than what we just did.
                for participant in batch.participants {
                    if participant.user_id != self.self_id {
                        self.participants
                            .insert(participant.user_id.clone(), with_name(participant));
                    }
                }
            }
            Input::Chat(message) => {
                if message.user_id != self.self_id {
                    actions.push(Action::Notify(SessionEvent::ChatReceived {
                        from: message.user_name.clone(),
                        message: message.message.clone(),
                    }));
                }
                self.push_chat(message);
            }
            Input::ServerError(error) => {
                self.last_error = Some(format!("{}: {}", error.code.as_str(), error.message));
                actions.push(Action::Notify(SessionEvent::ServerError {
                    code: error.code.as_str().to_owned(),
                    message: error.message,
                }));
            }
            Input::Offer(offer) => self.on_offer(offer, &mut actions),
            Input::Answer(answer) => self.on_answer(answer, &mut actions),
            Input::RemoteCandidate(candidate) => {
                if self.mesh_links.contains_key(&candidate.from_user_id) {
                    actions.push(Action::AddRemoteCandidate {
                        link: LinkId::Peer(candidate.from_user_id),
                        candidate: candidate.candidate,
                    });
                } else {
                    tracing::debug!(from = %candidate.from_user_id, "candidate for no peer connection");
                }
            }
            Input::LocalDescription {
                link: LinkId::Peer(user_id),
                description,
            } => {
                if !self.mesh_links.contains_key(&user_id) {
                    return actions;
                }
                let outgoing = match description.kind {
                    SdpKind::Offer => Outgoing::Offer(OfferToPeer {
                        target_user_id: user_id,
                        offer: description,
                    }),
                    _ => Outgoing::Answer(AnswerToPeer {
                        target_user_id: user_id,
                        answer: description,
                    }),
                };
                actions.push(Action::Emit(outgoing));
            }
            Input::LocalCandidate {
                link: LinkId::Peer(user_id),
                candidate,
            } => {
                if self.mesh_links.contains_key(&user_id) {
                    actions.push(Action::Emit(Outgoing::Candidate(IceCandidateToPeer {
                        target_user_id: user_id,
                        candidate,
                    })));
                }
            }
            Input::LinkState {
                link: LinkId::Peer(user_id),
                state,
            } => self.on_peer_state(now, user_id, state, &mut actions),
            Input::VideoRequest(request) => {
                if let Some(peer) = self.mesh_links.get_mut(&request.from_user_id) {
                    peer.viewer_height = Some(request.max_height);
                }
            }
            Input::LinkNegotiated {
                link: LinkId::Peer(user_id),
                video_codec,
            } => {
                if let Some(peer) = self.mesh_links.get_mut(&user_id) {
                    peer.video_codec = video_codec;
                }
            }
            Input::LinkEstimate {
                link: LinkId::Peer(user_id),
                bps,
            } => {
                if let Some(peer) = self.mesh_links.get_mut(&user_id) {
                    peer.estimate_bps = Some(bps);
                }
            }
            Input::KeyframeRequested {
                link: LinkId::Peer(user_id),
                source,
            } => {
                if self.mesh_links.contains_key(&user_id) {
                    actions.push(Action::RequestKeyframe(source));
                }
            }
            Input::ServerRestarting(notice) => {
                // Peer connections outlive the signaling socket (the reconnect grace), so the
                // call goes on while the server restarts.
                actions.push(Action::Notify(SessionEvent::ServerRestarting {
                    retry_after_ms: notice.retry_after_ms,
                }));
            }
            Input::SourceWorking { source, working } => {
                let before = self.media_state();
                if working {
                    self.not_working.remove(&source);
                } else {
                    self.not_working.insert(source);
                }
                let after = self.media_state();
                if self.joined && after != before {
                    actions.push(Action::Emit(Outgoing::MediaState(after)));
                }
            }
            Input::RemoteTrack {
                link: LinkId::Peer(user_id),
                owner,
                source,
            } => {
                if let Some(link) = self.mesh_links.get_mut(&user_id) {
                    link.tracks.insert((owner, source));
                }
            }
            Input::LinkError {
                link: LinkId::Peer(user_id),
                message,
            } => {
                self.last_error = Some(format!("{user_id}: {message}"));
                actions.push(Action::Notify(SessionEvent::PeerError { user_id, message }));
            }
            Input::SfuDescription(description) => {
                self.on_sfu_description(description, &mut actions)
            }
            Input::LocalDescription {
                link: LinkId::Sfu,
                description,
            } => {
                if self.sfu_link.is_some() {
                    let sources = match description.kind {
                        SdpKind::Offer => sfu_sources(&description.sdp),
                        _ => Vec::new(),
                    };
                    actions.push(Action::Emit(Outgoing::SfuDescription(SfuDescription {
                        description,
                        sources,
                        tracks: Vec::new(),
                    })));
                }
            }
            Input::LocalCandidate {
                link: LinkId::Sfu,
                candidate,
            } => {
                if self.sfu_link.is_some() {
                    actions.push(Action::Emit(Outgoing::SfuCandidate(SfuCandidate {
                        candidate,
                    })));
                }
            }
            Input::LinkState {
                link: LinkId::Sfu,
                state,
            } => self.on_sfu_state(now, state, &mut actions),
            Input::LinkNegotiated {
                link: LinkId::Sfu,
                video_codec,
            } => {
                if let Some(link) = &mut self.sfu_link {
                    link.video_codec = video_codec;
                }
            }
            Input::LinkEstimate {
                link: LinkId::Sfu,
                bps,
            } => {
                if let Some(link) = &mut self.sfu_link {
                    link.estimate_bps = Some(bps);
                }
            }
            Input::KeyframeRequested {
                link: LinkId::Sfu,
                source,
            } => {
                if self.sfu_link.is_some() {
                    actions.push(Action::RequestKeyframe(source));
                }
            }
            Input::RemoteTrack {
                link: LinkId::Sfu,
                owner,
                source,
            } => {
                if let Some(link) = &mut self.sfu_link {
                    link.tracks.insert((owner, source));
                }
            }
            Input::LinkError {
                link: LinkId::Sfu,
                message,
            } => {
                self.last_error = Some(format!("the SFU: {message}"));
                actions.push(Action::Notify(SessionEvent::ServerError {
                    code: classroom_wire::ErrorCode::MediaRefused.as_str().to_owned(),
                    message,
                }));
            }
            Input::Command(command) => self.on_command(command, &mut actions),
            Input::Class(input) => self.on_class(input, &mut actions),
            Input::Timeout => self.on_timeout(now, &mut actions),
        }
        if !self.left {
            self.follow_links(&mut actions);
        }
        actions
    }

    /// Tells the encoders what to aim at when the links' state changed it; a codec newly in
    /// use starts with a keyframe, so its first receiver has a picture to start from.
    fn follow_links(&mut self, actions: &mut Vec<Action>) {
        let on = VideoOn {
            camera: self.sends(Source::Camera),
            screen: self.sends(Source::Screen),
        };
        let links = self
            .mesh_links
            .values()
            .chain(self.sfu_link.as_ref())
            .map(Link::media);
        let targets = media_rules::send_targets(links, on, &self.targets);
        if targets == self.targets {
            return;
        }
        let new_codec = targets
            .codecs
            .added_since(self.targets.codecs)
            .next()
            .is_some();
        self.targets = targets;
        actions.push(Action::SetSendTargets(targets));
        if new_codec {
            for source in Source::VIDEO {
                actions.push(Action::RequestKeyframe(source));
            }
        }
    }

    fn on_joined(&mut self, now: Instant, mut joined: SessionJoined, actions: &mut Vec<Action>) {
        self.joined = true;
        self.class_joined(
            joined.settings,
            joined.waiting_room.take(),
            joined.hand_queue.take(),
            joined.poll.take(),
            joined.self_.as_ref(),
        );
        // What the class locks is off before we tell it what we send.
        self.apply_locks(actions);
        let server = ServerKind::of(&joined);
        if self.server != Some(server) {
            tracing::info!(server = server.name(), "joined");
        }
        self.server = Some(server);
        if let Some(me) = joined.self_.as_ref().filter(|me| !me.user_id.is_empty()) {
            self.self_id = me.user_id.clone();
        }
        self.ice_servers = joined.ice_servers;
        self.ice_servers
            .extend(self.config.extra_ice_servers.iter().cloned());
        for message in joined.chat_history {
            if message.id.is_empty() || !self.chat.iter().any(|known| known.id == message.id) {
                self.push_chat(message);
            }
        }
        let present: BTreeMap<String, Participant> = joined
            .participants
            .into_iter()
            .filter(|participant| participant.user_id != self.self_id)
            .map(|participant| (participant.user_id.clone(), with_name(participant)))
            .collect();
        if joined.topology == Topology::Sfu {
            // A fresh connection to the server on every join: it forgets a client's connection
            // when its socket goes.
            self.close_links(actions);
            self.sfu_link = Some(Link::new(true));
            actions.push(Action::OpenLink {
                link: LinkId::Sfu,
                ice_servers: self.ice_servers.clone(),
                offer: true,
            });
        } else {
            if self.sfu_link.take().is_some() {
                actions.push(Action::CloseLink { link: LinkId::Sfu });
            }
            self.follow_mesh_roster(now, &present, joined.offer_to.as_deref(), actions);
        }
        self.participants = present;
        // Tell everyone what we send (the server's copy of us is fresh after a reconnect).
        actions.push(Action::Emit(Outgoing::MediaState(self.media_state())));
        for message in self.chat_waiting.drain(..) {
            actions.push(Action::Emit(Outgoing::Chat(ChatSend {
                message,
                to_user_id: None,
            })));
        }
        actions.push(Action::Notify(SessionEvent::Joined {
            participants: self.participants.len(),
        }));
    }

    /// The mesh's links after a join: those to participants still here are kept when healthy
    /// (a rejoin after a reconnect), the others replaced or closed.
    fn follow_mesh_roster(
        &mut self,
        now: Instant,
        present: &BTreeMap<String, Participant>,
        offer_to: Option<&[String]>,
        actions: &mut Vec<Action>,
    ) {
        // Connections to participants not (yet) back: after a server restart they rejoin one by
        // one, so a working connection waits out the grace period; a broken one is closed.
        let gone: Vec<String> = self
            .mesh_links
            .keys()
            .filter(|user_id| !present.contains_key(*user_id))
            .cloned()
            .collect();
        for user_id in gone {
            match self.mesh_links.get_mut(&user_id) {
                Some(peer) if peer.healthy() => {
                    peer.orphaned_since.get_or_insert(now);
                }
                _ => {
                    self.mesh_links.remove(&user_id);
                    actions.push(Action::CloseLink {
                        link: LinkId::Peer(user_id),
                    });
                }
            }
        }
        // To those still here: kept when connected (a rejoin after a reconnect: the media
        // never needed the socket), otherwise replaced by a fresh offer. A link still
        // negotiating is replaced too: its offer or answer went out on the connection that was
        // lost (or failed to go out at all), and the other side, rejoined afresh, may hold no
        // link to us (seen after a 30-s network outage: both rejoined, and each waited for the
        // other). When the class moved to a mesh the server says whom to offer to (those who
        // joined before us); the others offer to us.
        let ours = |user_id: &String| offer_to.is_none_or(|offer_to| offer_to.contains(user_id));
        for user_id in present.keys() {
            match self.mesh_links.get_mut(user_id) {
                Some(peer) if peer.state == PeerConnState::Connected => peer.orphaned_since = None,
                Some(_) => {
                    actions.push(Action::CloseLink {
                        link: LinkId::Peer(user_id.clone()),
                    });
                    if ours(user_id) {
                        self.offer_to(user_id.clone(), actions);
                    } else {
                        self.mesh_links.remove(user_id);
                    }
                }
                None if ours(user_id) => self.offer_to(user_id.clone(), actions),
                None => {}
            }
        }
    }

    /// Closes every link (the mesh's and the SFU's).
    fn close_links(&mut self, actions: &mut Vec<Action>) {
        for user_id in std::mem::take(&mut self.mesh_links).into_keys() {
            actions.push(Action::CloseLink {
                link: LinkId::Peer(user_id),
            });
        }
        if self.sfu_link.take().is_some() {
            actions.push(Action::CloseLink { link: LinkId::Sfu });
        }
    }

    /// The server's offer or answer on our connection to the SFU. We are the impolite side:
    /// an offer that collides with ours is ignored (the server yields and offers again).
    fn on_sfu_description(&mut self, message: SfuDescription, actions: &mut Vec<Action>) {
        let Some(link) = &mut self.sfu_link else {
            tracing::debug!("an SFU description without a connection to the SFU: ignored");
            return;
        };
        let description = message.description;
        match description.kind {
            SdpKind::Offer => {
                if link.offer_pending {
                    tracing::debug!("the SFU's offer collides with ours: ignored");
                    return;
                }
                actions.push(Action::AcceptOffer {
                    link: LinkId::Sfu,
                    ice_servers: self.ice_servers.clone(),
                    offer: description,
                    replace: false,
                });
            }
            SdpKind::Answer => {
                if !link.offer_pending {
                    tracing::debug!("an SFU answer without an offer pending: ignored");
                    return;
                }
                link.offer_pending = false;
                actions.push(Action::AcceptAnswer {
                    link: LinkId::Sfu,
                    answer: description,
                });
            }
            SdpKind::Pranswer | SdpKind::Rollback => {
                tracing::debug!(kind = ?description.kind, "an SFU description of no use: ignored");
            }
        }
    }

    fn on_sfu_state(&mut self, now: Instant, state: PeerConnState, actions: &mut Vec<Action>) {
        let has_extensions = self.server.is_some_and(ServerKind::has_extensions);
        let view_height = self.view_height;
        let participants: Vec<String> = self.participants.keys().cloned().collect();
        let Some(link) = &mut self.sfu_link else {
            return;
        };
        link.state = state;
        match state {
            PeerConnState::Connected => {
                for source in Source::VIDEO {
                    actions.push(Action::RequestKeyframe(source));
                }
                if !link.was_connected
                    && has_extensions
                    && let Some(max_height) = view_height
                {
                    for user_id in participants {
                        actions.push(Action::Emit(Outgoing::VideoRequest(VideoRequestToPeer {
                            target_user_id: user_id,
                            max_height,
                        })));
                    }
                }
                link.failed_since = None;
                link.restarted = false;
                link.was_connected = true;
            }
            PeerConnState::Failed => {
                link.failed_since.get_or_insert(now);
                if !link.restarted {
                    link.restarted = true;
                    link.offer_pending = true;
                    actions.push(Action::RestartIce { link: LinkId::Sfu });
                }
            }
            _ => {}
        }
    }

    /// The sources we receive from `user_id`, over whichever links carry them.
    fn receiving_from(&self, user_id: &str) -> Vec<Source> {
        let sources: BTreeSet<Source> = self
            .mesh_links
            .values()
            .chain(self.sfu_link.as_ref())
            .flat_map(|link| &link.tracks)
            .filter(|(owner, _)| owner == user_id)
            .map(|(_, source)| *source)
            .collect();
        sources.into_iter().collect()
    }

    fn offer_to(&mut self, user_id: String, actions: &mut Vec<Action>) {
        self.mesh_links.insert(user_id.clone(), Link::new(true));
        actions.push(Action::OpenLink {
            link: LinkId::Peer(user_id),
            ice_servers: self.ice_servers.clone(),
            offer: true,
        });
    }

    fn on_user_joined(&mut self, participant: Participant, actions: &mut Vec<Action>) {
        if participant.user_id == self.self_id {
            return;
        }
        let participant = with_name(participant);
        let user_id = participant.user_id.clone();
        actions.push(Action::Notify(SessionEvent::ParticipantJoined {
            user_id: user_id.clone(),
            user_name: participant.user_name.clone(),
        }));
        self.participants.insert(user_id.clone(), participant);
        // The newcomer offers. A connection we still hold to it (it rejoined) is kept if it
        // works; a broken one is dropped so its fresh offer finds a clean slate.
        if let Some(peer) = self.mesh_links.get_mut(&user_id) {
            peer.orphaned_since = None;
            if !peer.healthy() {
                self.mesh_links.remove(&user_id);
                actions.push(Action::CloseLink {
                    link: LinkId::Peer(user_id),
                });
            }
        }
    }

    fn on_user_left(&mut self, now: Instant, left: UserLeft, actions: &mut Vec<Action>) {
        if left.user_id == self.self_id {
            return;
        }
        let known = self.participants.remove(&left.user_id);
        let user_name = match known {
            Some(participant) if left.user_name.trim().is_empty() => participant.user_name,
            _ if left.user_name.trim().is_empty() => left.user_id.clone(),
            _ => left.user_name,
        };
        actions.push(Action::Notify(SessionEvent::ParticipantLeft {
            user_id: left.user_id.clone(),
            user_name,
        }));
        let keep = left.reason == LeaveReason::Disconnected
            && self
                .mesh_links
                .get(&left.user_id)
                .is_some_and(Link::healthy);
        if keep {
            if let Some(peer) = self.mesh_links.get_mut(&left.user_id) {
                peer.orphaned_since = Some(now);
            }
        } else if self.mesh_links.remove(&left.user_id).is_some() {
            actions.push(Action::CloseLink {
                link: LinkId::Peer(left.user_id),
            });
        }
    }

    fn polite_towards(&self, user_id: &str) -> bool {
        self.self_id.as_str() > user_id
    }

    fn on_offer(&mut self, offer: OfferFromPeer, actions: &mut Vec<Action>) {
        let user_id = offer.from_user_id;
        if offer.offer.kind != SdpKind::Offer {
            actions.push(Action::Notify(SessionEvent::PeerError {
                user_id,
                message: "an offer event carried no offer".to_owned(),
            }));
            return;
        }
        let sdp_session = sdp_session_id(&offer.offer.sdp);
        let polite = self.polite_towards(&user_id);
        let replace = match self.mesh_links.get(&user_id) {
            None => false,
            Some(peer) => {
                if peer.offer_pending && !polite {
                    // Collision and we are the impolite side: our offer wins, theirs is ignored.
                    tracing::debug!(%user_id, "ignoring a colliding offer (impolite side)");
                    return;
                }
                // Same remote connection: renegotiation (an ICE restart, say). Another one: it
                // rebuilt its side, so we rebuild ours.
                peer.offer_pending
                    || peer.remote_sdp_session.is_none()
                    || peer.remote_sdp_session != sdp_session
            }
        };
        let mut peer = Link::new(false);
        if let Some(existing) = self.mesh_links.get(&user_id)
            && !replace
        {
            peer = existing.clone();
        }
        peer.offer_pending = false;
        peer.remote_sdp_session = sdp_session;
        peer.orphaned_since = None;
        let existed = self.mesh_links.insert(user_id.clone(), peer).is_some();
        actions.push(Action::AcceptOffer {
            link: LinkId::Peer(user_id),
            ice_servers: self.ice_servers.clone(),
            offer: offer.offer,
            replace: existed && replace,
        });
    }

    fn on_answer(&mut self, answer: AnswerFromPeer, actions: &mut Vec<Action>) {
        let user_id = answer.from_user_id;
        let Some(peer) = self.mesh_links.get_mut(&user_id) else {
            tracing::debug!(%user_id, "answer for no peer connection");
            return;
        };
        if !peer.offer_pending {
            tracing::debug!(%user_id, "answer without an offer pending: ignored");
            return;
        }
        peer.offer_pending = false;
        peer.remote_sdp_session = sdp_session_id(&answer.answer.sdp);
        actions.push(Action::AcceptAnswer {
            link: LinkId::Peer(user_id),
            answer: answer.answer,
        });
    }

    fn on_peer_state(
        &mut self,
        now: Instant,
        user_id: String,
        state: PeerConnState,
        actions: &mut Vec<Action>,
    ) {
        let Some(peer) = self.mesh_links.get_mut(&user_id) else {
            return;
        };
        let before = peer.state;
        peer.state = state;
        match state {
            PeerConnState::Connected => {
                // A new or recovered receiver needs a picture to start from.
                for source in Source::VIDEO {
                    actions.push(Action::RequestKeyframe(source));
                }
                if !peer.was_connected
                    && self.server.is_some_and(ServerKind::has_extensions)
                    && let Some(max_height) = self.view_height
                {
                    actions.push(Action::Emit(Outgoing::VideoRequest(VideoRequestToPeer {
                        target_user_id: user_id.clone(),
                        max_height,
                    })));
                }
                if peer.failed_since.take().is_some() || before == PeerConnState::Disconnected {
                    actions.push(Action::Notify(SessionEvent::PeerRecovered {
                        user_id: user_id.clone(),
                    }));
                }
                peer.restarted = false;
                peer.was_connected = true;
            }
            PeerConnState::Failed => {
                if peer.failed_since.is_none() {
                    peer.failed_since = Some(now);
                    actions.push(Action::Notify(SessionEvent::PeerFailed {
                        user_id: user_id.clone(),
                    }));
                }
                // The side that offered restarts ICE; the other answers the restart offer.
                if peer.we_offered && !peer.restarted {
                    peer.restarted = true;
                    peer.offer_pending = true;
                    actions.push(Action::RestartIce {
                        link: LinkId::Peer(user_id),
                    });
                }
            }
            _ => {}
        }
    }

    fn on_timeout(&mut self, now: Instant, actions: &mut Vec<Action>) {
        let grace = self.config.reconnect_grace;
        let restart_timeout = self.config.restart_timeout;
        let mut to_close = Vec::new();
        let mut to_replace = Vec::new();
        for (user_id, peer) in &self.mesh_links {
            if peer
                .orphaned_since
                .is_some_and(|since| now.duration_since(since) >= grace)
            {
                to_close.push(user_id.clone());
            } else if peer.we_offered
                && peer
                    .failed_since
                    .is_some_and(|since| now.duration_since(since) >= restart_timeout)
                && self.participants.contains_key(user_id)
            {
                to_replace.push(user_id.clone());
            }
        }
        for user_id in to_close {
            self.mesh_links.remove(&user_id);
            actions.push(Action::CloseLink {
                link: LinkId::Peer(user_id),
            });
        }
        for user_id in to_replace {
            // The restart did not bring it back: a new connection, offered afresh.
            actions.push(Action::CloseLink {
                link: LinkId::Peer(user_id.clone()),
            });
            self.offer_to(user_id, actions);
        }
    }

    fn on_command(&mut self, command: Command, actions: &mut Vec<Action>) {
        let source = match &command {
            Command::SetMicrophone(true) => Some(Source::Audio),
            Command::SetCamera(true) => Some(Source::Camera),
            Command::SetScreenShare(true) => Some(Source::Screen),
            _ => None,
        };
        if let Some(why) = source.and_then(|source| self.refused_by_locks(source)) {
            self.last_error = Some(why);
            return;
        }
        match command {
            Command::SetMicrophone(on) => self.audio = on,
            Command::SetCamera(on) => self.camera = on,
            Command::SetScreenShare(on) => self.screen = on,
            Command::Moderate(moderation) => return self.moderate(moderation, actions),
            Command::React(emoji) => return self.react(emoji, actions),
            Command::Vote { choices, text } => return self.vote(choices, text, actions),
            Command::DismissNotice => {
                self.class.notice = None;
                return;
            }
            Command::SendPrivateChat {
                to_user_id,
                message,
            } => {
                let message = message.trim().to_owned();
                if self.joined && !message.is_empty() {
                    actions.push(Action::Emit(Outgoing::Chat(ChatSend {
                        message,
                        to_user_id: Some(to_user_id),
                    })));
                }
                return;
            }
            Command::RaiseHand(up) => self.hand_raised = up,
            Command::SetViewHeight(max_height) => {
                self.view_height = Some(max_height);
                if !self.server.is_some_and(ServerKind::has_extensions) {
                    // The browser version's relay does not know `video-request`: viewers
                    // there get full pictures, as from a browser.
                    return;
                }
                for (user_id, peer) in &self.mesh_links {
                    if peer.was_connected {
                        actions.push(Action::Emit(Outgoing::VideoRequest(VideoRequestToPeer {
                            target_user_id: user_id.clone(),
                            max_height,
                        })));
                    }
                }
                // On the SFU the server takes the request: it forwards the layer that fits.
                if self.sfu_link.as_ref().is_some_and(|l| l.was_connected) {
                    for user_id in self.participants.keys() {
                        actions.push(Action::Emit(Outgoing::VideoRequest(VideoRequestToPeer {
                            target_user_id: user_id.clone(),
                            max_height,
                        })));
                    }
                }
                return;
            }
            Command::SetVolume { user_id, percent } => {
                actions.push(Action::SetVolume {
                    user_id,
                    percent: percent.min(400),
                });
                return;
            }
            Command::SendChat(message) => {
                let message = message.trim().to_owned();
                if message.is_empty() {
                    return;
                }
                if self.joined {
                    actions.push(Action::Emit(Outgoing::Chat(ChatSend {
                        message,
                        to_user_id: None,
                    })));
                } else if self.chat_waiting.len() < CHAT_WAITING_MAX {
                    // Not in the class right now (the connection dropped): sent on rejoin.
                    self.chat_waiting.push_back(message);
                } else {
                    let error = format!(
                        "not connected to the class: {CHAT_WAITING_MAX} messages already wait \
                         to be sent, this one was not kept"
                    );
                    self.last_error = Some(error.clone());
                    actions.push(Action::Notify(SessionEvent::ChatNotSent { message: error }));
                }
                return;
            }
            Command::Leave => {
                self.left = true;
                self.joined = false;
                if self.signaling_connected {
                    actions.push(Action::Emit(Outgoing::Leave));
                }
                self.close_links(actions);
                self.participants.clear();
                actions.push(Action::SetSources {
                    audio: false,
                    camera: false,
                    screen: false,
                });
                actions.push(Action::Finished);
                return;
            }
        }
        actions.push(self.sources());
        if self.joined {
            actions.push(Action::Emit(Outgoing::MediaState(self.media_state())));
        }
    }

    fn sources(&self) -> Action {
        Action::SetSources {
            audio: self.audio,
            camera: self.camera,
            screen: self.screen,
        }
    }

    /// Whether `source` is sent: switched on, and its device works.
    fn sends(&self, source: Source) -> bool {
        self.switched_on(source) && !self.not_working.contains(&source)
    }

    fn media_state(&self) -> MediaState {
        MediaState {
            audio_enabled: Some(self.sends(Source::Audio)),
            video_enabled: Some(self.sends(Source::Camera)),
            screen_sharing: Some(self.sends(Source::Screen)),
            hand_raised: Some(self.hand_raised),
        }
    }

    fn push_chat(&mut self, message: ChatMessage) {
        self.chat.push_back(message);
        while self.chat.len() > self.config.chat_capacity {
            self.chat.pop_front();
        }
    }
}

/// The session id of an SDP's `o=` line: it stays the same for the life of a peer connection.
fn sdp_session_id(sdp: &str) -> Option<String> {
    sdp.lines()
        .find_map(|line| line.strip_prefix("o="))
        .and_then(|origin| origin.split_whitespace().nth(1))
        .map(str::to_owned)
}

/// What our sending m-lines carry, from our own offer to the SFU: the connection creates them
/// first and in this order, audio, camera, screen (the server's m-lines come after them).
fn sfu_sources(sdp: &str) -> Vec<classroom_wire::SfuSource> {
    use classroom_wire::{MediaSource, SfuSource};
    let mut sources = Vec::new();
    let mut kind: Option<&str> = None;
    let mut videos = 0;
    for line in sdp.lines() {
        if let Some(rest) = line.strip_prefix("m=") {
            kind = rest.split(' ').next();
            continue;
        }
        let Some(mid) = line.strip_prefix("a=mid:") else {
            continue;
        };
        let source = match kind {
            Some("audio")
                if !sources
                    .iter()
                    .any(|s: &SfuSource| s.source == MediaSource::Audio) =>
            {
                MediaSource::Audio
            }
            Some("video") if videos == 0 => {
                videos += 1;
                MediaSource::Camera
            }
            Some("video") if videos == 1 => {
                videos += 1;
                MediaSource::Screen
            }
            _ => continue,
        };
        sources.push(SfuSource {
            mid: mid.trim().to_owned(),
            source,
            height: (source != MediaSource::Audio).then_some(720),
        });
        if sources.len() == 3 {
            break;
        }
    }
    sources
}

#[cfg(test)]
mod tests;
