//! The classroom controls as the session sees them (`docs/protocol.md`, "Running the class"):
//! what an instructor did to us (muted, stopped our camera, removed us, ended the class), the
//! class's lock settings held against our own toggles, the waiting room we wait in, and, when
//! we are an instructor, who waits and whose hands are up. Our own actions go out as
//! `moderate` and `reaction`; the server decides.

use classroom_wire::{
    ChatDeleted, ClassEnded, ClassSettings, HandQueue, JoinWaiting, Moderated, ModeratedAction,
    Moderation, Participant, Poll, PollClosed, PollResults, RaisedHand, Reaction, ReactionSend,
    Removed, Vote, WaitingRoom, WaitingUser,
};
use serde::Serialize;

use super::{Action, Outgoing, Session, SessionEvent};
use crate::types::Source;

/// A server event of the classroom controls.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClassInput {
    /// We wait in the waiting room.
    Waiting(JoinWaiting),
    Moderated(Moderated),
    Removed(Removed),
    Ended(ClassEnded),
    Settings(ClassSettings),
    WaitingRoom(WaitingRoom),
    HandQueue(HandQueue),
    Reaction(Reaction),
    ChatDeleted(ChatDeleted),
    PollOpened(Poll),
    /// Live for instructors; for everyone once an instructor publishes them.
    PollResults(PollResults),
    PollClosed(PollClosed),
}

/// The class's poll as we see it: the question, our answer, and the results we were shown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PollView {
    pub poll: Poll,
    /// What we chose (sent; the server may still refuse it), until the poll closes.
    pub our_choices: Vec<usize>,
    /// What we typed, in a typed poll.
    pub our_text: Option<String>,
    pub results: Option<PollResults>,
    pub closed: bool,
}

/// What the controls show: the class's settings, our role, where we wait, and for an
/// instructor who waits and whose hands are up.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ClassView {
    pub settings: ClassSettings,
    pub is_instructor: bool,
    pub co_instructor: bool,
    /// Our place in the waiting room (1 for the first), while we wait.
    pub waiting_position: Option<usize>,
    pub waiting_room: Vec<WaitingUser>,
    pub hands: Vec<RaisedHand>,
    /// Why the class is over for us (removed, ended, not admitted).
    pub ended: Option<String>,
    /// The last thing an instructor did to us, in words ("Grace muted you").
    pub notice: Option<String>,
    /// The last reactions, newest last.
    pub reactions: Vec<Reaction>,
    /// The poll opened last (open, or closed with its results), if any.
    pub poll: Option<PollView>,
}

/// Reactions kept for the window.
const REACTIONS_KEPT: usize = 20;

impl ClassView {
    /// Whether `source` is locked for us (an instructor is never locked).
    pub(crate) fn locks(&self, source: Source) -> bool {
        let locks = self.settings.locks;
        !self.is_instructor
            && match source {
                Source::Audio => locks.microphone,
                Source::Camera => locks.camera,
                Source::Screen => locks.screen_share,
            }
    }

    /// The poll of this id, if it is the one we show.
    fn poll_mut(&mut self, poll_id: &str) -> Option<&mut PollView> {
        self.poll
            .as_mut()
            .filter(|view| view.poll.poll_id == poll_id)
    }

    pub(crate) fn learn_role(&mut self, me: &Participant) {
        self.is_instructor = me.is_instructor;
        self.co_instructor = me.co_instructor;
    }
}

impl PollView {
    fn new(poll: Poll) -> Self {
        PollView {
            poll,
            our_choices: Vec::new(),
            our_text: None,
            results: None,
            closed: false,
        }
    }
}

/// The words for a locked source.
fn locked_words(source: Source) -> &'static str {
    match source {
        Source::Audio => "microphones",
        Source::Camera => "cameras",
        Source::Screen => "screen sharing",
    }
}

impl Session {
    pub(super) fn on_class(&mut self, input: ClassInput, actions: &mut Vec<Action>) {
        match input {
            ClassInput::Waiting(waiting) => {
                self.joined = false;
                self.class.waiting_position = Some(waiting.position);
            }
            ClassInput::Moderated(Moderated {
                action,
                by_user_name,
                ..
            }) => {
                let (source, words) = match action {
                    ModeratedAction::Mute => (Some(Source::Audio), "muted you"),
                    ModeratedAction::StopCamera => (Some(Source::Camera), "turned your camera off"),
                    ModeratedAction::StopScreen => {
                        (Some(Source::Screen), "stopped your screen share")
                    }
                    ModeratedAction::AskUnmute => (None, "asks you to unmute"),
                };
                self.class.notice = Some(format!("{by_user_name} {words}"));
                if let Some(source) = source {
                    self.switch_off(source, actions);
                }
            }
            ClassInput::Removed(Removed {
                by_user_name,
                barred_until,
            }) => {
                let barred = if barred_until.is_some() {
                    " You cannot join this class again today."
                } else {
                    ""
                };
                self.end_for_us(
                    format!("{by_user_name} removed you from the class.{barred}"),
                    actions,
                );
            }
            ClassInput::Ended(ClassEnded { by_user_name }) => {
                self.end_for_us(format!("{by_user_name} ended the class."), actions);
            }
            ClassInput::Settings(settings) => {
                self.class.settings = settings;
                self.apply_locks(actions);
            }
            ClassInput::WaitingRoom(room) => self.class.waiting_room = room.waiting,
            ClassInput::HandQueue(queue) => self.class.hands = queue.hands,
            ClassInput::Reaction(reaction) => {
                self.class.reactions.push(reaction);
                if self.class.reactions.len() > REACTIONS_KEPT {
                    self.class.reactions.remove(0);
                }
            }
            ClassInput::ChatDeleted(ChatDeleted { message_id }) => {
                self.chat.retain(|m| m.id != message_id);
            }
            ClassInput::PollOpened(poll) => self.class.poll = Some(PollView::new(poll)),
            ClassInput::PollResults(results) => {
                if let Some(view) = self.class.poll_mut(&results.poll_id) {
                    view.closed |= results.closed;
                    view.results = Some(results);
                }
            }
            ClassInput::PollClosed(PollClosed { poll_id }) => {
                if let Some(view) = self.class.poll_mut(&poll_id) {
                    view.closed = true;
                }
            }
        }
    }

    /// What `session-joined` says of the controls.
    pub(super) fn class_joined(
        &mut self,
        settings: ClassSettings,
        waiting_room: Option<WaitingRoom>,
        hand_queue: Option<HandQueue>,
        poll: Option<Poll>,
        me: Option<&Participant>,
    ) {
        // The poll open now (a rejoin keeps our answer to it).
        self.class.poll = match (poll, self.class.poll.take()) {
            (Some(poll), Some(ours)) if ours.poll.poll_id == poll.poll_id => Some(ours),
            (Some(poll), _) => Some(PollView::new(poll)),
            (None, _) => None,
        };
        self.class.waiting_position = None;
        self.class.settings = settings;
        self.class.waiting_room = waiting_room.map(|w| w.waiting).unwrap_or_default();
        self.class.hands = hand_queue.map(|q| q.hands).unwrap_or_default();
        if let Some(me) = me {
            self.class.learn_role(me);
        }
    }

    /// Turns off what the lock settings forbid us (told to the server by the caller's
    /// media-state, or here when nothing else will).
    pub(super) fn apply_locks(&mut self, actions: &mut Vec<Action>) {
        for source in [Source::Audio, Source::Camera, Source::Screen] {
            if self.class.locks(source) && self.switched_on(source) {
                self.switch_off(source, actions);
            }
        }
    }

    /// Whether turning `source` on is refused by the lock settings: the reason, in words.
    pub(super) fn refused_by_locks(&self, source: Source) -> Option<String> {
        self.class.locks(source).then(|| {
            format!(
                "The instructor has locked {} for students in this class",
                locked_words(source)
            )
        })
    }

    /// Whether the user (or an instructor) has `source` on, whether or not its device works.
    pub(super) fn switched_on(&self, source: Source) -> bool {
        match source {
            Source::Audio => self.audio,
            Source::Camera => self.camera,
            Source::Screen => self.screen,
        }
    }

    /// Switches a local source off, and tells the drivers and the class.
    fn switch_off(&mut self, source: Source, actions: &mut Vec<Action>) {
        match source {
            Source::Audio => self.audio = false,
            Source::Camera => self.camera = false,
            Source::Screen => self.screen = false,
        }
        actions.push(self.sources());
        if self.joined {
            actions.push(Action::Emit(Outgoing::MediaState(self.media_state())));
        }
    }

    /// The class is over for us: everything stops, and nothing rejoins.
    fn end_for_us(&mut self, why: String, actions: &mut Vec<Action>) {
        self.class.ended = Some(why.clone());
        self.left = true;
        self.joined = false;
        self.close_links(actions);
        self.participants.clear();
        actions.push(Action::SetSources {
            audio: false,
            camera: false,
            screen: false,
        });
        actions.push(Action::Notify(SessionEvent::ClassOver { why }));
        actions.push(Action::Finished);
    }

    pub(super) fn moderate(&mut self, moderation: Moderation, actions: &mut Vec<Action>) {
        if !self.server.is_some_and(super::ServerKind::has_extensions) {
            // The browser version's relay knows no controls: the window hides them.
            return;
        }
        actions.push(Action::Emit(Outgoing::Moderate(moderation)));
    }

    /// Our answer to the open poll: the options chosen (indices), or the words of a typed
    /// poll; an empty answer is not sent.
    pub(super) fn vote(
        &mut self,
        choices: Vec<usize>,
        text: Option<String>,
        actions: &mut Vec<Action>,
    ) {
        let Some(view) = self.class.poll.as_mut().filter(|view| !view.closed) else {
            return;
        };
        let text = text.map(|t| t.trim().to_owned()).filter(|t| !t.is_empty());
        if !self.joined || (choices.is_empty() && text.is_none()) {
            return;
        }
        view.our_choices = choices.clone();
        view.our_text = text.clone();
        actions.push(Action::Emit(Outgoing::Vote(Vote {
            poll_id: view.poll.poll_id.clone(),
            choices,
            text,
        })));
    }

    pub(super) fn react(&mut self, emoji: String, actions: &mut Vec<Action>) {
        if self.joined && self.server.is_some_and(super::ServerKind::has_extensions) {
            actions.push(Action::Emit(Outgoing::Reaction(ReactionSend { emoji })));
        }
    }
}
