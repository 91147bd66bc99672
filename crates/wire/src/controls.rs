//! The classroom controls (`docs/protocol.md`, "Running the class"): what instructors ask of
//! the server (`moderate`), what the server tells the class back, reactions and the hand queue.
//! Every field is camelCase; every enum kebab-case.

use serde::{Deserialize, Serialize};

/// The reactions a participant may send: a few, so that a class's screen stays readable.
pub const REACTIONS: [&str; 6] = ["👍", "👏", "😂", "😮", "❤️", "🎉"];

/// Client → server `moderate`: one instructor action, named by `action`. Refused with
/// `forbidden` for a student (and for a co-instructor where it says so).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "kebab-case")]
pub enum Moderation {
    /// Turns the target's microphone off; unmuting stays theirs to do.
    #[serde(rename_all = "camelCase")]
    Mute {
        target_user_id: String,
    },
    /// Every student's microphone off.
    MuteAll,
    /// Asks the target to unmute: a request their client shows, never forced.
    #[serde(rename_all = "camelCase")]
    AskUnmute {
        target_user_id: String,
    },
    #[serde(rename_all = "camelCase")]
    StopCamera {
        target_user_id: String,
    },
    #[serde(rename_all = "camelCase")]
    StopScreen {
        target_user_id: String,
    },
    /// Takes the target out of the class; with `bar`, they cannot come back for
    /// [`BAR_HOURS`] hours.
    #[serde(rename_all = "camelCase")]
    Remove {
        target_user_id: String,
        #[serde(default)]
        bar: bool,
    },
    /// Locked: nobody new comes in (instructors still do, and members reconnecting).
    SetLocked {
        locked: bool,
    },
    /// Ends the class for everyone (the instructor only).
    EndClass,
    /// What students may do (the instructor only).
    SetLocks {
        locks: LockSettings,
    },
    /// Who waits to be let in (the instructor only).
    SetWaitingRoom {
        policy: WaitingPolicy,
    },
    #[serde(rename_all = "camelCase")]
    Admit {
        target_user_id: String,
    },
    AdmitAll,
    #[serde(rename_all = "camelCase")]
    Deny {
        target_user_id: String,
    },
    /// The instructor only.
    #[serde(rename_all = "camelCase")]
    GrantCoInstructor {
        target_user_id: String,
    },
    /// The instructor only.
    #[serde(rename_all = "camelCase")]
    RevokeCoInstructor {
        target_user_id: String,
    },
    #[serde(rename_all = "camelCase")]
    LowerHand {
        target_user_id: String,
    },
    LowerAllHands,
    /// Deletes a chat message for everyone and from the stored history.
    #[serde(rename_all = "camelCase")]
    DeleteMessage {
        message_id: String,
    },
    /// Opens a poll (one at a time: an open one is closed first).
    OpenPoll {
        poll: crate::PollDraft,
    },
    #[serde(rename_all = "camelCase")]
    ClosePoll {
        poll_id: String,
    },
    /// Shows everyone the poll's results (totals; names only for instructors).
    #[serde(rename_all = "camelCase")]
    PublishResults {
        poll_id: String,
    },
}

/// How long a removal with `bar` keeps the user out.
pub const BAR_HOURS: u64 = 24;

/// What students may not do; everything is allowed when the field is `false` (the default).
/// Instructors and co-instructors are never locked.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct LockSettings {
    pub camera: bool,
    pub microphone: bool,
    pub screen_share: bool,
    pub public_chat: bool,
    pub private_chat: bool,
    /// Students see only the instructors' cameras, not each other's (BigBlueButton's
    /// "webcams only for moderators"); instructors see every camera. Held by the SFU, which
    /// forwards no student's camera to another student, so a class with it runs on the SFU.
    pub student_cameras: bool,
}

/// Who waits in the waiting room before they are let in. Instructors never wait.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum WaitingPolicy {
    /// Everyone comes straight in (the browser version's way).
    #[default]
    Open,
    /// Every student waits until an instructor admits them.
    Ask,
    /// Students on the class's roster come in; anyone else waits to be admitted.
    Roster,
}

/// Server → everyone in the class `class-settings`, on every change; also in
/// `session-joined`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ClassSettings {
    /// Nobody new comes in.
    pub locked: bool,
    pub locks: LockSettings,
    pub waiting_room: WaitingPolicy,
}

/// What an instructor did to one participant, as `moderated` tells them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ModeratedAction {
    /// The microphone is off: the client stops sending audio.
    Mute,
    /// A request to unmute: the client shows it; the student decides.
    AskUnmute,
    StopCamera,
    StopScreen,
}

/// Server → one participant `moderated`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Moderated {
    pub action: ModeratedAction,
    pub by_user_id: String,
    #[serde(default)]
    pub by_user_name: String,
}

/// Server → the removed participant `removed`, just before its connection is closed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Removed {
    pub by_user_name: String,
    /// Milliseconds since the Unix epoch until which they may not come back; absent when
    /// they may come back at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub barred_until: Option<u64>,
}

/// Server → everyone `class-ended`, just before every connection of the class is closed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClassEnded {
    pub by_user_name: String,
}

/// One person in the waiting room.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WaitingUser {
    pub user_id: String,
    pub user_name: String,
    /// When they asked to come in, milliseconds since the Unix epoch.
    pub since: u64,
}

/// Server → instructors `waiting-room`, on every change; also in their `session-joined`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WaitingRoom {
    /// In order of arrival.
    pub waiting: Vec<WaitingUser>,
}

/// The `join-session` ack of someone who waits to be admitted: `{ok: true, waiting: true}`.
/// `session-joined` follows once an instructor admits them; `error` with `admission-denied`
/// (and the connection closed) if one denies them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JoinWaiting {
    pub waiting: bool,
    pub session_id: String,
    /// How many wait before them and with them (1 for the first).
    pub position: usize,
}

/// One raised hand.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RaisedHand {
    pub user_id: String,
    pub user_name: String,
    /// When the server took the raise, milliseconds since the Unix epoch.
    pub raised_at: u64,
}

/// Server → instructors `hand-queue`, on every change; also in their `session-joined`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HandQueue {
    /// In the server's order of arrival, first raised first.
    pub hands: Vec<RaisedHand>,
}

/// Client → server `reaction`: one of [`REACTIONS`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReactionSend {
    pub emoji: String,
}

/// Server → everyone `reaction`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Reaction {
    pub user_id: String,
    pub user_name: String,
    pub emoji: String,
    pub timestamp: u64,
}

/// Server → everyone `chat-deleted`: the message is gone from the history too.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChatDeleted {
    pub message_id: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn moderation_reads_its_action_and_camel_case_fields() {
        let m: Moderation =
            serde_json::from_value(json!({"action": "remove", "targetUserId": "u2", "bar": true}))
                .unwrap();
        assert_eq!(
            m,
            Moderation::Remove {
                target_user_id: "u2".into(),
                bar: true
            }
        );
        let m: Moderation = serde_json::from_value(json!({"action": "mute-all"})).unwrap();
        assert_eq!(m, Moderation::MuteAll);
        let m: Moderation =
            serde_json::from_value(json!({"action": "set-locks", "locks": {"microphone": true}}))
                .unwrap();
        assert_eq!(
            m,
            Moderation::SetLocks {
                locks: LockSettings {
                    microphone: true,
                    ..LockSettings::default()
                }
            }
        );
        assert!(serde_json::from_value::<Moderation>(json!({"action": "nuke"})).is_err());
        assert!(serde_json::from_value::<Moderation>(json!({"action": "mute"})).is_err());
    }

    #[test]
    fn settings_are_written_as_the_protocol_says() {
        let s = ClassSettings {
            locked: true,
            locks: LockSettings {
                screen_share: true,
                ..LockSettings::default()
            },
            waiting_room: WaitingPolicy::Ask,
        };
        assert_eq!(
            serde_json::to_value(s).unwrap(),
            json!({"locked": true, "waitingRoom": "ask", "locks": {
                "camera": false, "microphone": false, "screenShare": true,
                "publicChat": false, "privateChat": false, "studentCameras": false}})
        );
    }
}
