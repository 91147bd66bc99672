//! The Socket.IO wire contract between Classroom clients (browser and desktop) and the
//! signaling server. Field names are camelCase exactly as the browser version sends them.
//! `docs/protocol.md` is the prose version of this file; keep the two in step.

use serde::{Deserialize, Serialize};

/// Version of the event set described in `docs/protocol.md`.
pub const PROTOCOL_VERSION: u32 = 1;

/// Event names, client → server and server → client.
pub mod event {
    pub const JOIN_SESSION: &str = "join-session";
    pub const LEAVE_SESSION: &str = "leave-session";
    pub const SESSION_JOINED: &str = "session-joined";
    pub const USER_JOINED: &str = "user-joined";
    pub const USER_LEFT: &str = "user-left";
    pub const PARTICIPANT_UPDATED: &str = "participant-updated";
    pub const OFFER: &str = "offer";
    pub const ANSWER: &str = "answer";
    pub const ICE_CANDIDATE: &str = "ice-candidate";
    pub const MEDIA_STATE: &str = "media-state";
    pub const CHAT_MESSAGE: &str = "chat-message";
    pub const ERROR: &str = "error";
    /// Desktop extension: the largest picture a viewer shows of the target's video.
    pub const VIDEO_REQUEST: &str = "video-request";
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
}

/// One participant as every client sees it in the roster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Participant {
    pub user_id: String,
    pub user_name: String,
    pub is_instructor: bool,
    pub audio_enabled: bool,
    pub video_enabled: bool,
    pub screen_sharing: bool,
    pub hand_raised: bool,
    /// Milliseconds since the Unix epoch.
    pub joined_at: u64,
}

/// Sent to the joiner (as the `join-session` ack, with `ok: true`, and as the
/// `session-joined` event).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionJoined {
    pub protocol_version: u32,
    pub session_id: String,
    #[serde(rename = "self")]
    pub self_: Participant,
    /// Everyone else already in the session, oldest first. The joiner offers to each of them.
    pub participants: Vec<Participant>,
    pub ice_servers: Vec<IceServer>,
    /// The last messages of the session, oldest first.
    pub chat_history: Vec<ChatMessage>,
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
    pub from_user_name: String,
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
    pub from_user_name: String,
    pub max_height: u32,
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
pub struct ChatSend {
    pub message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChatKind {
    User,
    System,
}

/// Server → session `chat-message`, also the elements of `chatHistory`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChatMessage {
    pub id: String,
    pub user_id: String,
    pub user_name: String,
    pub message: String,
    /// Milliseconds since the Unix epoch, stamped by the server.
    pub timestamp: u64,
    #[serde(rename = "type")]
    pub kind: ChatKind,
}

/// Server → session `user-left`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UserLeft {
    pub user_id: String,
    pub user_name: String,
    pub reason: LeaveReason,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LeaveReason {
    /// The client sent `leave-session`.
    Left,
    /// The connection closed or stopped answering pings.
    Disconnected,
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
    Internal,
}

impl ErrorCode {
    pub const ALL: [ErrorCode; 12] = [
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
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat: Option<u64>,
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

    #[test]
    fn error_codes_serialize_as_their_names() {
        for code in ErrorCode::ALL {
            assert_eq!(serde_json::to_value(code).unwrap(), json!(code.as_str()));
        }
    }
}
