//! Polls and quizzes (`docs/protocol.md`, "Polls and quizzes"): an instructor opens one with
//! `moderate { action: "open-poll" }`, students answer with `vote`, the server counts one vote
//! per user (changeable until the poll closes) and shows instructors the live results.

use serde::{Deserialize, Serialize};

/// The most options a poll offers, and the longest question, option and typed answer.
pub const MAX_POLL_OPTIONS: usize = 10;
pub const MAX_POLL_TEXT_CHARS: usize = 500;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PollKind {
    /// The options are "Yes" and "No".
    YesNo,
    /// One of the options.
    Single,
    /// Any of the options (at least one).
    Multiple,
    /// A short typed answer.
    Text,
}

/// What an instructor asks (`open-poll`'s `poll`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PollDraft {
    pub question: String,
    pub kind: PollKind,
    /// The choices (not for `yes-no`, where they are "Yes" and "No", nor `text`).
    #[serde(default)]
    pub options: Vec<String>,
    /// Results name nobody, for instructors either.
    #[serde(default)]
    pub anonymous: bool,
    /// A quiz: the correct options (indices), each student scored on them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub correct: Option<Vec<usize>>,
}

/// Server → everyone `poll-opened`: the poll as students see it (no correct answers).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Poll {
    pub poll_id: String,
    pub question: String,
    pub kind: PollKind,
    pub options: Vec<String>,
    pub anonymous: bool,
    pub quiz: bool,
    pub opened_at: u64,
}

/// Client → server `vote`: `choices` (indices) for a choice poll, `text` for a typed one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Vote {
    pub poll_id: String,
    #[serde(default)]
    pub choices: Vec<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
}

/// One participant's answer in the results (named polls).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PollAnswer {
    pub user_id: String,
    pub user_name: String,
    #[serde(default)]
    pub choices: Vec<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// In a quiz: whether the answer is right.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub correct: Option<bool>,
}

/// Server → instructors `poll-results` on every vote; → everyone when published.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PollResults {
    pub poll_id: String,
    pub question: String,
    pub options: Vec<String>,
    /// Votes per option, in order (empty for a typed poll).
    pub totals: Vec<u32>,
    /// How many voted.
    pub voters: u32,
    /// Each answer with its author: for instructors, in a named poll; empty otherwise.
    #[serde(default)]
    pub answers: Vec<PollAnswer>,
    /// Typed answers without names (an anonymous typed poll).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub texts: Vec<String>,
    /// In a quiz: the correct options.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub correct: Option<Vec<usize>>,
    pub closed: bool,
}

/// Server → everyone `poll-closed`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PollClosed {
    pub poll_id: String,
}
