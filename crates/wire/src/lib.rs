//! The Socket.IO wire contract between Classroom clients (browser and desktop) and the
//! signaling server. Field names are camelCase exactly as the browser version sends them.
//! `docs/protocol.md` is the prose version of this file; keep the two in step.

use serde::{Deserialize, Serialize};

mod controls;
mod polls;
pub use controls::*;
pub use polls::*;

/// Version of the event set described in `docs/protocol.md`.
pub const PROTOCOL_VERSION: u32 = 1;

/// The `protocolVersion` of a join answer that has none: the browser version's own relay,
/// which knows the seed's fields and none of our extensions.
pub const BROWSER_RELAY_PROTOCOL: u32 = 0;

/// What receivers assume when a server sends no `iceServers`: the browser version's default
/// (the seed's `RTCPeerConnection` configuration).
pub const SEED_STUN_URLS: [&str; 2] = [
    "stun:stun.l.google.com:19302",
    "stun:stun1.l.google.com:19302",
];

// What a receiver assumes for the fields our protocol added, when the browser version's relay
// leaves them out (docs/protocol.md, "What a client may rely on").
fn yes() -> bool {
    true
}

/// Now, in milliseconds since the Unix epoch: "when we learned of it".
fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|since| since.as_millis() as u64)
        .unwrap_or(0)
}

fn is_false(b: &bool) -> bool {
    !*b
}

fn seed_ice_servers() -> Vec<IceServer> {
    SEED_STUN_URLS
        .iter()
        .map(|url| IceServer {
            urls: vec![(*url).to_owned()],
            username: None,
            credential: None,
        })
        .collect()
}

/// Event names, client → server and server → client.
pub mod event {
    pub const JOIN_SESSION: &str = "join-session";
    pub const LEAVE_SESSION: &str = "leave-session";
    pub const SESSION_JOINED: &str = "session-joined";
    pub const USER_JOINED: &str = "user-joined";
    pub const USER_LEFT: &str = "user-left";
    pub const PARTICIPANT_UPDATED: &str = "participant-updated";
    /// Server → a client that announced [`crate::capability::PARTICIPANTS_UPDATED`]: several
    /// participants' updates at once ([`crate::ParticipantsUpdated`]).
    pub const PARTICIPANTS_UPDATED: &str = "participants-updated";
    pub const OFFER: &str = "offer";
    pub const ANSWER: &str = "answer";
    pub const ICE_CANDIDATE: &str = "ice-candidate";
    pub const MEDIA_STATE: &str = "media-state";
    pub const CHAT_MESSAGE: &str = "chat-message";
    pub const ERROR: &str = "error";
    /// Desktop extension: the largest picture a viewer shows of the target's video.
    pub const VIDEO_REQUEST: &str = "video-request";
    /// Server → every client: the server is shutting down (a restart); reconnect after the
    /// delay given.
    pub const SERVER_RESTARTING: &str = "server-restarting";
    /// Both ways, in a class on the SFU: an offer on the client's one connection to the SFU.
    pub const SFU_OFFER: &str = "sfu-offer";
    /// Both ways: the answer to the other side's `sfu-offer`.
    pub const SFU_ANSWER: &str = "sfu-answer";
    /// Client → server: one of the client's ICE candidates for its connection to the SFU.
    pub const SFU_CANDIDATE: &str = "sfu-candidate";
    /// Client → server: an instructor's action ([`crate::Moderation`]).
    pub const MODERATE: &str = "moderate";
    /// Server → one participant: an instructor muted them, stopped their camera, … .
    pub const MODERATED: &str = "moderated";
    /// Server → the class: the class's lock, lock settings and waiting-room policy.
    pub const CLASS_SETTINGS: &str = "class-settings";
    /// Server → instructors: who waits to be let in.
    pub const WAITING_ROOM: &str = "waiting-room";
    /// Server → instructors: the raised hands, in order.
    pub const HAND_QUEUE: &str = "hand-queue";
    /// Both ways: an emoji reaction.
    pub const REACTION: &str = "reaction";
    /// Server → the class: a chat message was deleted.
    pub const CHAT_DELETED: &str = "chat-deleted";
    /// Server → one participant: an instructor removed them (the connection closes next).
    pub const REMOVED: &str = "removed";
    /// Server → the class: the instructor ended the class (every connection closes next).
    pub const CLASS_ENDED: &str = "class-ended";
    /// Client → server: an answer to the open poll.
    pub const VOTE: &str = "vote";
    /// Server → the class: an instructor opened a poll.
    pub const POLL_OPENED: &str = "poll-opened";
    /// Server → instructors (live), or everyone (published): a poll's results.
    pub const POLL_RESULTS: &str = "poll-results";
    /// Server → the class: the poll takes no more votes.
    pub const POLL_CLOSED: &str = "poll-closed";
    /// Server → a joiner: they wait in the waiting room ([`crate::JoinWaiting`], as the ack).
    pub const WAITING_FOR_ADMISSION: &str = "waiting-for-admission";
    /// Client → server, before joining: the ICE servers this connection would be handed
    /// ([`crate::IceServersReply`], as the ack), for the pre-join connection test.
    pub const ICE_SERVERS: &str = "ice-servers";
}

/// What a client announces it can do, in `join-session`'s `capabilities`.
pub mod capability {
    /// The client can take part in a class on the SFU (`docs/protocol.md`, "The SFU").
    pub const SFU: &str = "sfu";
    /// The client takes `participants-updated` (several participants at once): in a burst of
    /// changes (200 hands raised in the same instant, mute all) the server tells it in batches
    /// instead of one event per change (`docs/protocol.md`, "participants-updated").
    pub const PARTICIPANTS_UPDATED: &str = "participants-updated";
}

/// `join-session`, as the browser version sends it. With a signed token the server takes the
/// identity from the token and ignores `userId`, `userName` and `isInstructor` here.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JoinSession {
    pub session_id: String,
    #[serde(default)]
    pub user_id: Option<String>,
    #[serde(default)]
    pub user_name: Option<String>,
    #[serde(default)]
    pub is_instructor: bool,
    /// What the client can do ([`capability`]); the browser version sends none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub capabilities: Vec<String>,
}

impl JoinSession {
    pub fn can(&self, capability: &str) -> bool {
        self.capabilities.iter().any(|c| c == capability)
    }
}

/// How a class's media travels.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Topology {
    /// One peer connection per pair of participants (the browser version's way).
    #[default]
    Mesh,
    /// One peer connection per participant, to the server's SFU.
    Sfu,
}

/// One participant as every client sees it in the roster.
///
/// Only `userId` is required on receipt: the browser version's relay sends the seed's fields
/// (and may leave out a name), and never our additions (`handRaised`, `joinedAt`). Unknown
/// fields (a socket id, say) are ignored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Participant {
    pub user_id: String,
    /// Empty when the server sent none; the desktop's session shows the user id instead.
    #[serde(default)]
    pub user_name: String,
    /// Instructors and co-instructors: they run the class.
    #[serde(default)]
    pub is_instructor: bool,
    /// An instructor granted this student the instructors' controls (`isInstructor` is then
    /// true too); only the instructor proper grants and revokes it.
    #[serde(default, skip_serializing_if = "is_false")]
    pub co_instructor: bool,
    /// A participant's media is on unless said otherwise (the seed streams to everyone).
    #[serde(default = "yes")]
    pub audio_enabled: bool,
    #[serde(default = "yes")]
    pub video_enabled: bool,
    #[serde(default)]
    pub screen_sharing: bool,
    #[serde(default)]
    pub hand_raised: bool,
    /// Milliseconds since the Unix epoch; when absent, the time we learned of them.
    #[serde(default = "now_ms")]
    pub joined_at: u64,
}

/// Server → a client that takes batches: `participants-updated`, the participants that changed
/// since the last batch, each as it is now, in the order of their first change. The batch may
/// hold the receiver's own entry: a client ignores it (what others change about it comes as
/// `participant-updated`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ParticipantsUpdated {
    pub participants: Vec<Participant>,
}

/// Sent to the joiner (as the `join-session` ack, with `ok: true`, and as the
/// `session-joined` event).
///
/// The browser version's relay sends `{ ok, self, participants }` only: every other field
/// has the default the seed implies, and `protocolVersion` 0 ([`BROWSER_RELAY_PROTOCOL`])
/// tells the receiver that none of our extensions are there.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionJoined {
    #[serde(default)]
    pub protocol_version: u32,
    /// Empty when the server did not say: the session the client asked to join.
    #[serde(default)]
    pub session_id: String,
    /// `None` when the server did not say: the identity the client joined with.
    #[serde(rename = "self", default, skip_serializing_if = "Option::is_none")]
    pub self_: Option<Participant>,
    /// Everyone else already in the session, oldest first. The joiner offers to each of them.
    #[serde(default)]
    pub participants: Vec<Participant>,
    /// The seed's public STUN servers when the server sent none.
    #[serde(default = "seed_ice_servers")]
    pub ice_servers: Vec<IceServer>,
    /// The last messages of the session, oldest first.
    #[serde(default)]
    pub chat_history: Vec<ChatMessage>,
    /// `mesh` when the server did not say.
    #[serde(default)]
    pub topology: Topology,
    /// When the class moved to a mesh (`--sfu auto`): the participants this client offers to
    /// (those who joined before it); the others offer to it. Absent on a join: the joiner
    /// offers to everyone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offer_to: Option<Vec<String>>,
    /// The class's lock, lock settings and waiting room; all open when the server did not
    /// say.
    #[serde(default)]
    pub settings: ClassSettings,
    /// For instructors: who waits to be let in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub waiting_room: Option<WaitingRoom>,
    /// For instructors: the raised hands, in order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hand_queue: Option<HandQueue>,
    /// The poll open now, if one is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub poll: Option<Poll>,
}

impl SessionJoined {
    /// Whether the server speaks our protocol's extensions (`video-request`, and later the
    /// SFU and the classroom controls), or is the browser version's plain relay.
    pub fn has_extensions(&self) -> bool {
        self.protocol_version > BROWSER_RELAY_PROTOCOL
    }
}

/// The ack of `ice-servers`: what `session-joined` would carry, TURN credentials included.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IceServersReply {
    pub ice_servers: Vec<IceServer>,
}

/// An entry of `RTCConfiguration.iceServers`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IceServer {
    pub urls: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential: Option<String>,
}

/// `RTCSessionDescriptionInit`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionDescription {
    #[serde(rename = "type")]
    pub kind: SdpKind,
    #[serde(default)]
    pub sdp: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SdpKind {
    Offer,
    Answer,
    Pranswer,
    Rollback,
}

/// `RTCIceCandidateInit`. An empty `candidate` string means end of candidates.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IceCandidate {
    pub candidate: String,
    #[serde(default)]
    pub sdp_mid: Option<String>,
    #[serde(default, rename = "sdpMLineIndex")]
    pub sdp_m_line_index: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username_fragment: Option<String>,
}

/// Client → server `offer`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OfferToPeer {
    pub target_user_id: String,
    pub offer: SessionDescription,
}

/// Server → target `offer`; the sender is stamped by the server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OfferFromPeer {
    pub from_user_id: String,
    #[serde(default)]
    pub from_user_name: String,
    pub offer: SessionDescription,
}

/// Client → server `answer`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AnswerToPeer {
    pub target_user_id: String,
    pub answer: SessionDescription,
}

/// Server → target `answer`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AnswerFromPeer {
    pub from_user_id: String,
    #[serde(default)]
    pub from_user_name: String,
    pub answer: SessionDescription,
}

/// Client → server `ice-candidate`. `candidate: null` (end of candidates) is accepted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IceCandidateToPeer {
    pub target_user_id: String,
    pub candidate: Option<IceCandidate>,
}

/// Server → target `ice-candidate`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IceCandidateFromPeer {
    pub from_user_id: String,
    #[serde(default)]
    pub from_user_name: String,
    /// Absent or `null`: end of candidates.
    #[serde(default)]
    pub candidate: Option<IceCandidate>,
}

/// Client → server `video-request`: "I show your video at most this tall" (a desktop
/// extension; peers that do not know it send full resolution).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VideoRequestToPeer {
    pub target_user_id: String,
    /// Picture height in pixels the viewer shows (90 to 4320).
    pub max_height: u32,
}

/// Server → target `video-request`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VideoRequestFromPeer {
    pub from_user_id: String,
    #[serde(default)]
    pub from_user_name: String,
    pub max_height: u32,
}

/// What a sending m-line of a client's connection to the SFU carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MediaSource {
    Audio,
    Camera,
    Screen,
}

/// In a client's `sfu-offer`: the m-line `mid` sends `source`; for video, `height` is the
/// full layer's picture height (720 when absent).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SfuSource {
    pub mid: String,
    pub source: MediaSource,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub height: Option<u32>,
}

/// In the server's descriptions: the m-line `mid` carries `userId`'s `source`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SfuTrack {
    pub mid: String,
    pub user_id: String,
    pub source: MediaSource,
}

/// `sfu-offer` and `sfu-answer`, both ways. A client's offer says what its sending m-lines
/// carry (`sources`); the server's offer and answer say whose media each of its sending
/// m-lines carries (`tracks`, all of them, every time).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SfuDescription {
    pub description: SessionDescription,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sources: Vec<SfuSource>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tracks: Vec<SfuTrack>,
}

/// Client → server `sfu-candidate`. `candidate: null` (end of candidates) is accepted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SfuCandidate {
    #[serde(default)]
    pub candidate: Option<IceCandidate>,
}

/// Client → server `media-state`: only the fields present change.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MediaState {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audio_enabled: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub video_enabled: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub screen_sharing: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hand_raised: Option<bool>,
}

/// Client → server `chat-message`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChatSend {
    pub message: String,
    /// A private message to this participant (a student may write to instructors only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to_user_id: Option<String>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChatKind {
    #[default]
    User,
    System,
}

/// Server → session `chat-message`, also the elements of `chatHistory`.
///
/// Only `message` is required on receipt; a relay that leaves out the rest gives a message
/// with no id (never matched against history), an empty sender (a system message, say), the
/// time of receipt and the kind `user`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChatMessage {
    #[serde(default)]
    pub id: String,
    #[serde(default)]
    pub user_id: String,
    #[serde(default)]
    pub user_name: String,
    pub message: String,
    /// Milliseconds since the Unix epoch, stamped by the server; the time of receipt when
    /// the server sent none.
    #[serde(default = "now_ms")]
    pub timestamp: u64,
    #[serde(rename = "type", default)]
    pub kind: ChatKind,
    /// A private message: only its sender and this participant see it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to_user_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to_user_name: Option<String>,
}

/// Server → every client `server-restarting`: the server is about to close every connection.
/// Each client is given its own delay, so that they do not all come back at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServerRestarting {
    /// Milliseconds to wait before reconnecting.
    pub retry_after_ms: u64,
}

/// Server → session `user-left`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UserLeft {
    pub user_id: String,
    #[serde(default)]
    pub user_name: String,
    /// `left` when the server did not say (the browser version's relay sends no reason).
    #[serde(default)]
    pub reason: LeaveReason,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LeaveReason {
    /// The client sent `leave-session`.
    #[default]
    Left,
    /// The connection closed or stopped answering pings.
    Disconnected,
    /// An instructor removed them.
    Removed,
}

/// Machine-readable error codes of the `error` event and of failed acks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ErrorCode {
    Unauthorized,
    NotEnrolled,
    SessionNotFound,
    SessionFull,
    NotJoined,
    InvalidPayload,
    PayloadTooLarge,
    RateLimited,
    TargetNotFound,
    UnknownEvent,
    SessionReplaced,
    /// The server is shutting down and takes no new connection.
    ServerRestarting,
    /// The class runs on the SFU and the client did not announce it can take part
    /// (`capabilities: ["sfu"]`): it needs a newer client.
    SfuRequired,
    /// The SFU refused a description or candidate, or could not take the client.
    MediaRefused,
    /// The action is an instructor's, or locked for students (lock settings).
    Forbidden,
    /// The instructor locked the class: nobody new comes in.
    ClassLocked,
    /// An instructor removed this user and barred them from coming back for now.
    Barred,
    /// An instructor denied this user entry from the waiting room.
    AdmissionDenied,
    /// Not yet: the user waits in the waiting room to be admitted.
    Waiting,
    Internal,
}

impl ErrorCode {
    pub const ALL: [ErrorCode; 20] = [
        ErrorCode::Unauthorized,
        ErrorCode::NotEnrolled,
        ErrorCode::SessionNotFound,
        ErrorCode::SessionFull,
        ErrorCode::NotJoined,
        ErrorCode::InvalidPayload,
        ErrorCode::PayloadTooLarge,
        ErrorCode::RateLimited,
        ErrorCode::TargetNotFound,
        ErrorCode::UnknownEvent,
        ErrorCode::SessionReplaced,
        ErrorCode::ServerRestarting,
        ErrorCode::SfuRequired,
        ErrorCode::MediaRefused,
        ErrorCode::Forbidden,
        ErrorCode::ClassLocked,
        ErrorCode::Barred,
        ErrorCode::AdmissionDenied,
        ErrorCode::Waiting,
        ErrorCode::Internal,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::Unauthorized => "unauthorized",
            ErrorCode::NotEnrolled => "not-enrolled",
            ErrorCode::SessionNotFound => "session-not-found",
            ErrorCode::SessionFull => "session-full",
            ErrorCode::NotJoined => "not-joined",
            ErrorCode::InvalidPayload => "invalid-payload",
            ErrorCode::PayloadTooLarge => "payload-too-large",
            ErrorCode::RateLimited => "rate-limited",
            ErrorCode::TargetNotFound => "target-not-found",
            ErrorCode::UnknownEvent => "unknown-event",
            ErrorCode::SessionReplaced => "session-replaced",
            ErrorCode::ServerRestarting => "server-restarting",
            ErrorCode::SfuRequired => "sfu-required",
            ErrorCode::MediaRefused => "media-refused",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::ClassLocked => "class-locked",
            ErrorCode::Barred => "barred",
            ErrorCode::AdmissionDenied => "admission-denied",
            ErrorCode::Waiting => "waiting",
            ErrorCode::Internal => "internal",
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The `error` event, and the `error` field of a failed ack.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ErrorBody {
    pub code: ErrorCode,
    pub message: String,
    /// The event that was refused, where there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event: Option<String>,
}

/// Every ack: `{ok: true, ...data}` or `{ok: false, error}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Ack<T> {
    pub ok: bool,
    #[serde(flatten, default, skip_serializing_if = "Option::is_none")]
    pub data: Option<T>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorBody>,
}

impl<T> Ack<T> {
    pub fn ok(data: T) -> Self {
        Ack {
            ok: true,
            data: Some(data),
            error: None,
        }
    }
    pub fn err(error: ErrorBody) -> Self {
        Ack {
            ok: false,
            data: None,
            error: Some(error),
        }
    }
}

/// Ack data of `chat-message`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatAck {
    pub message: ChatMessage,
}

/// Ack data of `media-state`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MediaStateAck {
    pub participant: Participant,
}

/// Ack data of events that return nothing but success (`leave-session`, relays).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Empty {}

/// Claims of the signed token passed in the handshake `auth: { token }` (JWT, HS256).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenClaims {
    /// The user id.
    pub sub: String,
    /// Display name.
    pub name: String,
    pub role: Role,
    /// Expiry, seconds since the Unix epoch.
    pub exp: u64,
    /// Issued at, seconds since the Unix epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat: Option<u64>,
    /// Not valid before, seconds since the Unix epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<u64>,
    /// The issuer (the LMS); checked when the server is configured with one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
    /// The audience (this server); checked when the server is configured with one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aud: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Student,
    Instructor,
}

impl Role {
    pub fn is_instructor(self) -> bool {
        self == Role::Instructor
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn join_session_reads_the_browser_payload() {
        let join: JoinSession = serde_json::from_value(json!({
            "sessionId": "c1", "userId": "u1", "userName": "Ada", "isInstructor": true
        }))
        .unwrap();
        assert_eq!(join.session_id, "c1");
        assert_eq!(join.user_id.as_deref(), Some("u1"));
        assert!(join.is_instructor);
    }

    #[test]
    fn ice_candidate_keeps_the_browser_field_names() {
        let c = IceCandidateToPeer {
            target_user_id: "b".into(),
            candidate: Some(IceCandidate {
                candidate: "candidate:1 1 udp 1 127.0.0.1 5000 typ host".into(),
                sdp_mid: Some("0".into()),
                sdp_m_line_index: Some(0),
                username_fragment: None,
            }),
        };
        let v = serde_json::to_value(&c).unwrap();
        assert_eq!(v["targetUserId"], "b");
        assert_eq!(v["candidate"]["sdpMLineIndex"], 0);
        assert_eq!(v["candidate"]["sdpMid"], "0");
    }

    #[test]
    fn acks_flatten_their_data() {
        let ack = Ack::ok(ChatAck {
            message: ChatMessage {
                id: "m".into(),
                user_id: "u".into(),
                user_name: "U".into(),
                message: "hi".into(),
                timestamp: 1,
                kind: ChatKind::User,
                to_user_id: None,
                to_user_name: None,
            },
        });
        let v = serde_json::to_value(&ack).unwrap();
        assert_eq!(v["ok"], true);
        assert_eq!(v["message"]["type"], "user");
        let err: Ack<Empty> = Ack::err(ErrorBody {
            code: ErrorCode::TargetNotFound,
            message: "x".into(),
            event: None,
        });
        assert_eq!(
            serde_json::to_value(&err).unwrap(),
            json!({"ok": false, "error": {"code": "target-not-found", "message": "x"}})
        );
    }

    /// What the browser version's plain relay sends: the seed's fields, plus fields of its own.
    #[test]
    fn the_browser_relays_minimal_payloads_parse_with_the_seeds_defaults() {
        let joined: SessionJoined = serde_json::from_value(json!({
            "ok": true,
            "self": {"userId": "desk", "userName": "Desk", "isInstructor": false,
                     "audioEnabled": true, "videoEnabled": true, "screenSharing": false,
                     "socketId": "x1"},
            "participants": [{"userId": "web", "userName": "Web", "isInstructor": true,
                              "audioEnabled": false, "videoEnabled": true,
                              "screenSharing": false, "socketId": "x2"}]
        }))
        .unwrap();
        assert_eq!(joined.protocol_version, BROWSER_RELAY_PROTOCOL);
        assert!(!joined.has_extensions());
        assert_eq!(joined.session_id, "");
        assert!(joined.chat_history.is_empty());
        let stun: Vec<&str> = joined
            .ice_servers
            .iter()
            .flat_map(|server| server.urls.iter().map(String::as_str))
            .collect();
        assert_eq!(stun, SEED_STUN_URLS);
        assert_eq!(
            joined.self_.as_ref().map(|me| me.user_id.as_str()),
            Some("desk")
        );
        let web = &joined.participants[0];
        assert_eq!(web.user_id, "web");
        assert!(web.is_instructor && !web.audio_enabled && web.video_enabled);
        assert!(!web.hand_raised);
        assert!(
            web.joined_at > 1_700_000_000_000,
            "joinedAt: the time we learned of them"
        );

        let joined: Participant = serde_json::from_value(json!({"userId": "solo"})).unwrap();
        assert_eq!(joined.user_name, "");
        assert!(joined.audio_enabled && joined.video_enabled && !joined.screen_sharing);

        let left: UserLeft =
            serde_json::from_value(json!({"userId": "web", "userName": "Web"})).unwrap();
        assert_eq!(left.reason, LeaveReason::Left);

        let offer: OfferFromPeer = serde_json::from_value(json!({
            "fromUserId": "web", "offer": {"type": "offer", "sdp": "v=0\r\n"}
        }))
        .unwrap();
        assert_eq!(
            (offer.from_user_id.as_str(), offer.from_user_name.as_str()),
            ("web", "")
        );
        let candidate: IceCandidateFromPeer =
            serde_json::from_value(json!({"fromUserId": "web"})).unwrap();
        assert_eq!(candidate.candidate, None);

        let chat: ChatMessage = serde_json::from_value(json!({"message": "hi"})).unwrap();
        assert_eq!((chat.kind, chat.id.as_str()), (ChatKind::User, ""));
        assert!(chat.timestamp > 1_700_000_000_000);
    }

    /// The seed's own fields stay required: a roster entry without a user id is refused.
    #[test]
    fn a_participant_without_a_user_id_is_refused() {
        assert!(serde_json::from_value::<Participant>(json!({"userName": "Ada"})).is_err());
        assert!(serde_json::from_value::<UserLeft>(json!({"reason": "left"})).is_err());
        assert!(serde_json::from_value::<ChatMessage>(json!({"userId": "u"})).is_err());
    }

    /// What our server sends, every field present, reads back unchanged.
    #[test]
    fn our_servers_full_payloads_round_trip() {
        let ada = Participant {
            user_id: "ada".into(),
            user_name: "Ada".into(),
            is_instructor: true,
            co_instructor: true,
            audio_enabled: false,
            video_enabled: true,
            screen_sharing: true,
            hand_raised: true,
            joined_at: 42,
        };
        let joined = SessionJoined {
            protocol_version: PROTOCOL_VERSION,
            session_id: "c1".into(),
            self_: Some(ada.clone()),
            participants: vec![Participant {
                user_id: "bob".into(),
                ..ada.clone()
            }],
            ice_servers: vec![IceServer {
                urls: vec!["turn:127.0.0.1:3478".into()],
                username: Some("1:bob".into()),
                credential: Some("c".into()),
            }],
            chat_history: vec![ChatMessage {
                id: "m1".into(),
                user_id: "ada".into(),
                user_name: "Ada".into(),
                message: "hello".into(),
                timestamp: 7,
                kind: ChatKind::User,
                to_user_id: Some("bob".into()),
                to_user_name: Some("Bob".into()),
            }],
            topology: Topology::Sfu,
            offer_to: None,
            settings: ClassSettings {
                locked: true,
                locks: LockSettings {
                    camera: true,
                    ..LockSettings::default()
                },
                waiting_room: WaitingPolicy::Roster,
            },
            waiting_room: Some(WaitingRoom {
                waiting: vec![WaitingUser {
                    user_id: "cy".into(),
                    user_name: "Cy".into(),
                    since: 3,
                }],
            }),
            hand_queue: Some(HandQueue {
                hands: vec![RaisedHand {
                    user_id: "bob".into(),
                    user_name: "Bob".into(),
                    raised_at: 5,
                }],
            }),
            poll: Some(Poll {
                poll_id: "p1".into(),
                question: "Ready?".into(),
                kind: PollKind::YesNo,
                options: vec!["Yes".into(), "No".into()],
                anonymous: false,
                quiz: false,
                opened_at: 9,
            }),
        };
        let wire = serde_json::to_value(&joined).unwrap();
        assert_eq!(wire["protocolVersion"], PROTOCOL_VERSION);
        assert_eq!(wire["self"]["handRaised"], true);
        let back: SessionJoined = serde_json::from_value(wire).unwrap();
        assert_eq!(back, joined);
        assert!(back.has_extensions());
        let left = UserLeft {
            user_id: "bob".into(),
            user_name: "Bob".into(),
            reason: LeaveReason::Disconnected,
        };
        let back: UserLeft = serde_json::from_value(serde_json::to_value(&left).unwrap()).unwrap();
        assert_eq!(back, left);
    }

    #[test]
    fn error_codes_serialize_as_their_names() {
        for code in ErrorCode::ALL {
            assert_eq!(serde_json::to_value(code).unwrap(), json!(code.as_str()));
        }
    }
}
