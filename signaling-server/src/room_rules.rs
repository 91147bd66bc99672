//! The rules of one live room, without sockets or clocks: who may join, the same user again
//! (the newest connection wins), leaving, the join and leave notices, the chat history's
//! bounds, and whether the class is a mesh or on the SFU (`--sfu auto`: on it above
//! `--mesh-max` participants, back under it with one to spare). A join or a leave returns what the driver (`handlers.rs`) must emit, and to whom;
//! the time comes in with the call. The instructors' controls (roles, moderation, lock
//! settings, the waiting room, the hand queue, reactions, private chat) are in `controls.rs`.

mod batching;
mod controls;
mod polls;
#[cfg(test)]
mod test_support;

use std::collections::{HashSet, VecDeque};
use std::time::Instant;

use classroom_wire::{
    ChatKind, ChatMessage, ClassSettings, ErrorCode, Participant, RaisedHand, Topology,
    WaitingPolicy,
};

pub(crate) use controls::{Admitted, Notice, Output, Rank, not_joined};
pub(crate) use polls::{PollRecord, StoredVote};

use crate::auth::Identity;
use crate::config::Limits;
use crate::error::Refusal;
use crate::limits::TokenBucket;
use crate::sfu::SfuMode;
use crate::store::SYSTEM_NOTICES_KEPT;

/// A member's connection as the room holds it: cloned to be emitted to, told apart by its id.
pub(crate) trait Handle: Clone {
    type Id: Copy + Eq;
    fn id(&self) -> Self::Id;
    /// Its client takes participant updates in batches (`participants-updated`, which it
    /// announced on joining); else it is told each change as `participant-updated`.
    fn takes_batches(&self) -> bool;
}

/// The time of a call: `instant` for rates, `unix_ms` for the stamps clients see.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Now {
    pub(crate) instant: Instant,
    pub(crate) unix_ms: u64,
}

pub(crate) struct Member<C> {
    pub(crate) participant: Participant,
    pub(crate) conn: C,
    /// Its client can take part in a class on the SFU (it said so on joining).
    pub(crate) sfu_capable: bool,
    /// The member's chat rate, whichever of its connections sends.
    pub(crate) chat: TokenBucket,
    /// The member's reactions' rate.
    pub(crate) reactions: TokenBucket,
}

/// Someone asking to join, as the driver knows them.
pub(crate) struct Joiner<'a, C> {
    pub(crate) who: &'a Identity,
    pub(crate) conn: C,
    /// Its client can take part in a class on the SFU.
    pub(crate) sfu_capable: bool,
    /// The role is the client's own claim (development mode, no token): an instructor's is
    /// taken only by the first to ask in this room.
    pub(crate) claimed: bool,
    /// The user is on the class's roster (`--waiting-room roster` lets them straight in).
    pub(crate) on_roster: bool,
}

/// Someone in the waiting room.
pub(crate) struct Waiter<C> {
    pub(crate) who: Identity,
    pub(crate) conn: C,
    pub(crate) sfu_capable: bool,
    /// Milliseconds since the Unix epoch.
    pub(crate) since: u64,
}

pub(crate) struct RoomState<C> {
    /// In join order, one per user.
    members: Vec<Member<C>>,
    /// The last messages, oldest first, bounded as [`RoomState::push_history`] says.
    history: VecDeque<ChatMessage>,
    /// Set when the last member left and nobody waits; the room takes no one after that.
    closed: bool,
    topology: Topology,
    settings: ClassSettings,
    /// In order of arrival, one per user.
    waiting: Vec<Waiter<C>>,
    /// Raised hands in the order the server took them.
    hands: Vec<RaisedHand>,
    /// Students an instructor made co-instructors, for the room's life (a reconnect keeps it).
    co_instructors: HashSet<String>,
    /// Development mode: the user who claimed the instructor's place first.
    claimed_instructor: Option<String>,
    /// This room's polls, oldest first; the last may be open.
    polls: Vec<polls::PollRecord>,
    /// Participant updates waiting to be told together (`batching.rs`).
    batch: batching::UpdateBatch,
}

/// The server's rules for every room: when a class runs on the SFU, and who waits to be let
/// in until an instructor changes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RoomPolicy {
    pub(crate) mode: SfuMode,
    /// The largest mesh (`auto`).
    pub(crate) mesh_max: usize,
    pub(crate) waiting_room: WaitingPolicy,
}

/// The topology a class of `members` should have, from the one it has: `off` a mesh and
/// `always` the SFU; `auto` moves to the SFU when the class grows past `mesh_max`, and back
/// when it shrinks below it (one to spare, so a class at the edge does not go back and
/// forth), and stays a mesh while any member's client cannot take part in the SFU. A class
/// whose lock settings only the SFU can hold (`needs_sfu`: students' cameras for instructors
/// only) is on the SFU at any size.
pub(crate) fn next_topology(
    current: Topology,
    members: usize,
    all_sfu_capable: bool,
    needs_sfu: bool,
    policy: RoomPolicy,
) -> Topology {
    match policy.mode {
        SfuMode::Off => Topology::Mesh,
        SfuMode::Always => Topology::Sfu,
        SfuMode::Auto if !all_sfu_capable => Topology::Mesh,
        SfuMode::Auto if needs_sfu => Topology::Sfu,
        SfuMode::Auto => match current {
            Topology::Mesh if members > policy.mesh_max => Topology::Sfu,
            Topology::Sfu if members < policy.mesh_max => Topology::Mesh,
            other => other,
        },
    }
}

/// A join that was let in.
#[derive(Debug)]
pub(crate) struct Joined<C> {
    /// The joiner as the room now has them.
    pub(crate) participant: Participant,
    /// Everyone else, in join order.
    pub(crate) roster: Vec<Participant>,
    /// The chat history, oldest first, with the joiner's own notice when they are new.
    pub(crate) history: Vec<ChatMessage>,
    pub(crate) kind: JoinKind<C>,
    /// The class's topology now, and whether this join moved it there (then everyone else
    /// is to be told the class anew: a `session-joined` each).
    pub(crate) topology: Topology,
    pub(crate) moved: bool,
    pub(crate) controls: ControlsView,
}

/// What a member is told of the class's controls when it joins, or the class moves.
#[derive(Debug, Clone)]
pub(crate) struct ControlsView {
    pub(crate) settings: ClassSettings,
    /// For an instructor: the waiting room and the hands.
    pub(crate) waiting_room: Option<classroom_wire::WaitingRoom>,
    pub(crate) hand_queue: Option<classroom_wire::HandQueue>,
    /// The poll open now.
    pub(crate) poll: Option<classroom_wire::Poll>,
}

/// What the others learn of a join.
#[derive(Debug)]
pub(crate) enum JoinKind<C> {
    /// A new member: `others` get `user-joined` (the participant), then `chat-message`
    /// (`notice`, already in the history, still to be stored).
    New { others: Vec<C>, notice: ChatMessage },
    /// The same user again (a reconnect, a second window): `others` get
    /// `participant-updated`, not a leave. `replaced` is the user's previous connection when
    /// it was another one: it is to be told `session-replaced` and disconnected.
    Again { others: Vec<C>, replaced: Option<C> },
}

/// A join that was not let in.
#[derive(Debug)]
pub(crate) enum NotAdmitted<C> {
    /// The room closed (its last member left) before this join: look the room up again.
    Closed,
    /// To be told to the joiner (the session is full, the class is locked).
    Refused(Refusal),
    /// The joiner waits to be admitted: they are told their place; the instructors (and a
    /// connection of the same user that waited before, replaced) are told in `outputs`.
    Waiting {
        position: usize,
        outputs: Vec<Output<C>>,
    },
}

/// A member who left: `others` get `user-left`, then `chat-message` (`notice`, already in
/// the history, still to be stored).
#[derive(Debug)]
pub(crate) struct Left<C> {
    pub(crate) participant: Participant,
    pub(crate) others: Vec<C>,
    pub(crate) notice: ChatMessage,
    /// That was the last member: the room is closed, to be taken out of the registry.
    pub(crate) closed: bool,
    /// The leave moved the class to this topology: everyone left is to be told anew.
    pub(crate) moved_to: Option<Topology>,
    /// What a move tells each member (empty when the class did not move).
    pub(crate) retold: Vec<Retold<C>>,
    /// The instructors' new hand queue, when the leaver's hand was up.
    pub(crate) hand_queue: Option<(Vec<C>, classroom_wire::HandQueue)>,
}

/// One member as a move of the class tells it anew: its connection and everyone else.
#[derive(Debug)]
pub(crate) struct Retold<C> {
    pub(crate) conn: C,
    pub(crate) participant: Participant,
    /// Those who joined before it: in a mesh it offers to them, the others offer to it.
    pub(crate) offer_to: Vec<String>,
    pub(crate) roster: Vec<Participant>,
    /// The chat history as this member may see it.
    pub(crate) history: Vec<ChatMessage>,
    pub(crate) controls: ControlsView,
}

impl<C: Handle> RoomState<C> {
    /// An empty room with the chat history it starts from.
    pub(crate) fn new(history: VecDeque<ChatMessage>, policy: RoomPolicy) -> Self {
        RoomState {
            members: Vec::new(),
            history,
            closed: false,
            topology: next_topology(Topology::Mesh, 0, true, false, policy),
            settings: ClassSettings {
                waiting_room: policy.waiting_room,
                ..ClassSettings::default()
            },
            waiting: Vec::new(),
            hands: Vec::new(),
            co_instructors: HashSet::new(),
            claimed_instructor: None,
            polls: Vec::new(),
            batch: batching::UpdateBatch::default(),
        }
    }

    /// The chat history as `user_id` may see it: every public message, and the private ones
    /// they sent or were sent.
    pub(crate) fn history_for(&self, user_id: &str) -> Vec<ChatMessage> {
        self.history
            .iter()
            .filter(|m| visible_to(m, user_id))
            .cloned()
            .collect()
    }

    #[cfg(test)]
    pub(crate) fn topology(&self) -> Topology {
        self.topology
    }

    /// Moves the class to the topology its members call for; whether it moved.
    fn settle_topology(&mut self, policy: RoomPolicy) -> bool {
        let capable = self.members.iter().all(|m| m.sfu_capable);
        let next = next_topology(
            self.topology,
            self.members.len(),
            capable,
            self.settings.locks.student_cameras,
            policy,
        );
        let moved = next != self.topology;
        self.topology = next;
        moved
    }

    /// Every member but `except`, each with everyone else, in join order: what a move of the
    /// class tells them.
    pub(crate) fn retell(&self, except: Option<C::Id>) -> Vec<Retold<C>> {
        self.members
            .iter()
            .filter(|m| Some(m.conn.id()) != except)
            .map(|m| Retold {
                conn: m.conn.clone(),
                participant: m.participant.clone(),
                offer_to: self
                    .members
                    .iter()
                    .take_while(|o| o.participant.user_id != m.participant.user_id)
                    .map(|o| o.participant.user_id.clone())
                    .collect(),
                roster: self
                    .members
                    .iter()
                    .filter(|o| o.participant.user_id != m.participant.user_id)
                    .map(|o| o.participant.clone())
                    .collect(),
                history: self.history_for(&m.participant.user_id),
                controls: self.controls_view(&m.participant.user_id),
            })
            .collect()
    }

    pub(crate) fn member(&self, user_id: &str) -> Option<&Member<C>> {
        self.members
            .iter()
            .find(|m| m.participant.user_id == user_id)
    }

    pub(crate) fn member_mut(&mut self, user_id: &str) -> Option<&mut Member<C>> {
        self.members
            .iter_mut()
            .find(|m| m.participant.user_id == user_id)
    }

    /// The members' connections, except one; cloned so that emitting happens outside the lock.
    pub(crate) fn conns_except(&self, except: Option<C::Id>) -> Vec<C> {
        self.members
            .iter()
            .filter(|m| Some(m.conn.id()) != except)
            .map(|m| m.conn.clone())
            .collect()
    }

    /// Lets the joiner in, or into the waiting room. The same user again keeps their place
    /// (and media state) with the new connection, name and role, even when the room is full
    /// or locked; a new user is refused when the room has `max_participants_per_session`
    /// members or is locked, and a student waits when the waiting room says so (instructors
    /// never wait).
    pub(crate) fn join(
        &mut self,
        joiner: Joiner<'_, C>,
        now: Now,
        limits: &Limits,
        policy: RoomPolicy,
    ) -> Result<Joined<C>, NotAdmitted<C>> {
        if self.closed {
            return Err(NotAdmitted::Closed);
        }
        let Joiner {
            who,
            conn,
            sfu_capable,
            claimed,
            on_roster,
        } = joiner;
        if self.topology == Topology::Sfu && !sfu_capable {
            return Err(NotAdmitted::Refused(Refusal::new(
                ErrorCode::SfuRequired,
                "this class runs on the server's SFU, and this client cannot take part in it \
                 (it announced no \"sfu\" capability): use a newer app, or the class's web page",
            )));
        }
        let instructor = self.instructor_role(who, claimed);
        let new = self.member(&who.user_id).is_none();
        let max = limits.max_participants_per_session;
        if new && self.members.len() >= max {
            return Err(NotAdmitted::Refused(Refusal::new(
                ErrorCode::SessionFull,
                format!("the session has its maximum of {max} participants"),
            )));
        }
        if new && instructor == Rank::Student {
            if self.settings.locked {
                return Err(NotAdmitted::Refused(Refusal::new(
                    ErrorCode::ClassLocked,
                    "the instructor has locked the class: nobody new can join now",
                )));
            }
            let waits = match self.settings.waiting_room {
                WaitingPolicy::Open => false,
                WaitingPolicy::Ask => true,
                WaitingPolicy::Roster => !on_roster,
            };
            if waits {
                return Err(self.wait(who, conn, sfu_capable, now, limits));
            }
        }
        Ok(self.admit_member(who, conn, sfu_capable, instructor, now, limits, policy))
    }

    /// The role a joiner gets: a granted instructor's; in development mode, an instructor's
    /// only for the first to claim it in this room; a co-instructor's for a student made one.
    fn instructor_role(&mut self, who: &Identity, claimed: bool) -> Rank {
        let wants = who.role.is_instructor();
        if wants && claimed {
            let first = self
                .claimed_instructor
                .get_or_insert_with(|| who.user_id.clone());
            if *first == who.user_id {
                return Rank::Instructor;
            }
        } else if wants {
            return Rank::Instructor;
        }
        if self.co_instructors.contains(&who.user_id) {
            Rank::CoInstructor
        } else {
            Rank::Student
        }
    }

    /// Makes the joiner a member (or the same member on a new connection).
    #[allow(clippy::too_many_arguments)]
    fn admit_member(
        &mut self,
        who: &Identity,
        conn: C,
        sfu_capable: bool,
        rank: Rank,
        now: Now,
        limits: &Limits,
        policy: RoomPolicy,
    ) -> Joined<C> {
        let conn_id = conn.id();
        let (participant, kind) = if let Some(existing) = self.member_mut(&who.user_id) {
            let replaced = (existing.conn.id() != conn_id)
                .then(|| std::mem::replace(&mut existing.conn, conn));
            existing.participant.user_name = who.user_name.clone();
            existing.participant.is_instructor = rank != Rank::Student;
            existing.participant.co_instructor = rank == Rank::CoInstructor;
            existing.sfu_capable = sfu_capable;
            let participant = existing.participant.clone();
            let others = self.conns_except(Some(conn_id));
            (participant, JoinKind::Again { others, replaced })
        } else {
            let locks = if rank == Rank::Student {
                self.settings.locks
            } else {
                classroom_wire::LockSettings::default()
            };
            let participant = Participant {
                user_id: who.user_id.clone(),
                user_name: who.user_name.clone(),
                is_instructor: rank != Rank::Student,
                co_instructor: rank == Rank::CoInstructor,
                audio_enabled: !locks.microphone,
                video_enabled: !locks.camera,
                screen_sharing: false,
                hand_raised: false,
                joined_at: now.unix_ms,
            };
            let others = self.conns_except(None);
            self.members.push(Member {
                participant: participant.clone(),
                conn,
                sfu_capable,
                chat: TokenBucket::new(limits.chat_burst, now.instant),
                reactions: TokenBucket::new(controls::REACTION_BURST, now.instant),
            });
            let notice = notice(&participant, "joined the class", now);
            self.push_history(notice.clone(), limits.chat_history_len);
            (participant, JoinKind::New { others, notice })
        };
        let roster = self
            .members
            .iter()
            .filter(|m| m.participant.user_id != who.user_id)
            .map(|m| m.participant.clone())
            .collect();
        let moved = self.settle_topology(policy);
        Joined {
            history: self.history_for(&who.user_id),
            participant,
            roster,
            kind,
            topology: self.topology,
            moved,
            controls: self.controls_view(&who.user_id),
        }
    }

    /// Takes `user_id` out if `conn` is still their connection, and closes the room when they
    /// were the last (and nobody waits). `None` when it is not (a newer connection of the same
    /// user replaced it): nothing to announce.
    pub(crate) fn leave(
        &mut self,
        user_id: &str,
        conn: C::Id,
        now: Now,
        limits: &Limits,
        policy: RoomPolicy,
    ) -> Option<Left<C>> {
        let index = self
            .members
            .iter()
            .position(|m| m.participant.user_id == user_id && m.conn.id() == conn)?;
        Some(self.remove_member(index, "left the class", now, limits, policy))
    }

    /// Takes the member at `index` out, with the notice "NAME `what`".
    fn remove_member(
        &mut self,
        index: usize,
        what: &str,
        now: Now,
        limits: &Limits,
        policy: RoomPolicy,
    ) -> Left<C> {
        let member = self.members.remove(index);
        let notice = notice(&member.participant, what, now);
        self.push_history(notice.clone(), limits.chat_history_len);
        let hand_queue = self.take_hand(&member.participant.user_id);
        self.closed = self.members.is_empty() && self.waiting.is_empty();
        let moved = !self.members.is_empty() && self.settle_topology(policy);
        Left {
            participant: member.participant,
            others: self.conns_except(None),
            notice,
            closed: self.closed,
            moved_to: moved.then_some(self.topology),
            retold: if moved { self.retell(None) } else { Vec::new() },
            hand_queue,
        }
    }

    /// Keeps the last `limit` user messages and the last [`SYSTEM_NOTICES_KEPT`] system
    /// notices, as the store replays them: joins and leaves do not push the conversation out.
    pub(crate) fn push_history(&mut self, message: ChatMessage, limit: usize) {
        let kind = message.kind;
        self.history.push_back(message);
        let cap = match kind {
            ChatKind::User => limit,
            ChatKind::System => SYSTEM_NOTICES_KEPT,
        };
        if self.history.iter().filter(|m| m.kind == kind).count() > cap
            && let Some(oldest) = self.history.iter().position(|m| m.kind == kind)
        {
            self.history.remove(oldest);
        }
    }
}

/// Whether `user_id` may see the message: a public one, or a private one they sent or were sent.
fn visible_to(m: &ChatMessage, user_id: &str) -> bool {
    m.to_user_id
        .as_deref()
        .is_none_or(|to| to == user_id || m.user_id == user_id)
}

/// The system chat message "NAME joined the class" (or left).
fn notice(p: &Participant, what: &str, now: Now) -> ChatMessage {
    ChatMessage {
        id: uuid::Uuid::new_v4().to_string(),
        user_id: p.user_id.clone(),
        user_name: p.user_name.clone(),
        message: format!("{} {what}", p.user_name),
        timestamp: now.unix_ms,
        kind: ChatKind::System,
        to_user_id: None,
        to_user_name: None,
    }
}

#[cfg(test)]
mod tests {
    use super::test_support::{Conn, at};
    use super::*;
    use classroom_wire::Role;

    const MESH: RoomPolicy = RoomPolicy {
        mode: SfuMode::Off,
        mesh_max: 4,
        waiting_room: WaitingPolicy::Open,
    };
    const AUTO: RoomPolicy = RoomPolicy {
        mode: SfuMode::Auto,
        mesh_max: 4,
        waiting_room: WaitingPolicy::Open,
    };

    /// A joiner whose role was granted (a token, the roster), not on the roster.
    fn joiner(who: &Identity, conn: u32, sfu_capable: bool) -> Joiner<'_, Conn> {
        Joiner {
            who,
            conn: Conn(conn),
            sfu_capable,
            claimed: false,
            on_roster: false,
        }
    }

    fn user(id: &str, name: &str) -> Identity {
        Identity {
            user_id: id.into(),
            user_name: name.into(),
            role: Role::Student,
        }
    }

    fn limits(max_participants: usize) -> Limits {
        Limits {
            max_participants_per_session: max_participants,
            ..Limits::default()
        }
    }

    fn ids(roster: &[Participant]) -> Vec<&str> {
        roster.iter().map(|p| p.user_id.as_str()).collect()
    }

    fn room() -> RoomState<Conn> {
        RoomState::new(VecDeque::new(), MESH)
    }

    fn join(room: &mut RoomState<Conn>, id: &str, name: &str, conn: u32) -> Joined<Conn> {
        room.join(
            joiner(&user(id, name), conn, true),
            at(1000),
            &limits(50),
            MESH,
        )
        .expect("admitted")
    }

    fn chat(text: &str, kind: ChatKind) -> ChatMessage {
        ChatMessage {
            id: text.into(),
            user_id: "u".into(),
            user_name: "U".into(),
            message: text.into(),
            timestamp: 0,
            kind,
            to_user_id: None,
            to_user_name: None,
        }
    }

    #[test]
    fn new_members_join_in_order_and_see_everyone_but_themselves() {
        let mut room = room();
        let a = join(&mut room, "a", "Ann", 1);
        assert!(a.roster.is_empty());
        let b = join(&mut room, "b", "Bob", 2);
        assert_eq!(ids(&b.roster), ["a"]);
        let c = join(&mut room, "c", "Cy", 3);
        assert_eq!(ids(&c.roster), ["a", "b"]);
        assert_eq!(c.participant.user_id, "c");
        assert_eq!(c.participant.joined_at, 1000);
        assert!(c.participant.audio_enabled && c.participant.video_enabled);
        let order: Vec<_> = room.members.iter().map(|m| m.conn).collect();
        assert_eq!(order, [Conn(1), Conn(2), Conn(3)]);
    }

    #[test]
    fn a_new_member_is_announced_to_those_already_in_with_a_notice() {
        let mut room = room();
        join(&mut room, "a", "Ann", 1);
        join(&mut room, "b", "Bob", 2);
        let c = join(&mut room, "c", "Cy", 3);
        let JoinKind::New { others, notice } = c.kind else {
            panic!("a new member: {:?}", c.kind);
        };
        assert_eq!(others, [Conn(1), Conn(2)]);
        assert_eq!(notice.message, "Cy joined the class");
        assert_eq!(
            (notice.kind, notice.user_id.as_str()),
            (ChatKind::System, "c")
        );
        assert_eq!(notice.timestamp, 1000);
        // The joiner's history ends with their own notice.
        assert_eq!(c.history.last(), Some(&notice));
        assert_eq!(c.history.len(), 3);
    }

    #[test]
    fn a_full_room_refuses_a_newcomer_and_stays_as_it_was() {
        let mut room = room();
        let full = limits(2);
        room.join(joiner(&user("a", "Ann"), 1, true), at(1), &full, MESH)
            .unwrap();
        room.join(joiner(&user("b", "Bob"), 2, true), at(2), &full, MESH)
            .unwrap();
        let refused = room
            .join(joiner(&user("c", "Cy"), 3, true), at(3), &full, MESH)
            .unwrap_err();
        assert!(matches!(
            refused,
            NotAdmitted::Refused(r) if r == Refusal::new(
                ErrorCode::SessionFull,
                "the session has its maximum of 2 participants"
            )
        ));
        assert_eq!(room.members.len(), 2);
        assert_eq!(room.history.len(), 2, "no notice for a refused join");
    }

    #[test]
    fn a_returning_member_is_let_in_when_the_room_is_full() {
        let mut room = room();
        let full = limits(2);
        room.join(joiner(&user("a", "Ann"), 1, true), at(1), &full, MESH)
            .unwrap();
        room.join(joiner(&user("b", "Bob"), 2, true), at(2), &full, MESH)
            .unwrap();
        let again = room
            .join(joiner(&user("a", "Ann"), 3, true), at(3), &full, MESH)
            .unwrap();
        assert!(matches!(
            again.kind,
            JoinKind::Again {
                replaced: Some(Conn(1)),
                ..
            }
        ));
        assert_eq!(room.members.len(), 2);
    }

    #[test]
    fn the_newest_connection_wins_and_the_others_see_an_update_not_a_leave() {
        let mut room = room();
        join(&mut room, "a", "Ann", 1);
        join(&mut room, "b", "Bob", 2);
        let before = room.history.len();
        let again = join(&mut room, "a", "Ann", 7);
        let JoinKind::Again { others, replaced } = again.kind else {
            panic!("the same user again: {:?}", again.kind);
        };
        assert_eq!(replaced, Some(Conn(1)));
        assert_eq!(others, [Conn(2)], "neither the new nor the old connection");
        assert_eq!(room.history.len(), before, "no notice");
        assert_eq!(again.history.len(), before);
        assert_eq!(ids(&again.roster), ["b"]);
        // Ann keeps her place, on the new connection.
        let order: Vec<_> = room.members.iter().map(|m| m.conn).collect();
        assert_eq!(order, [Conn(7), Conn(2)]);
    }

    #[test]
    fn joining_again_on_the_same_connection_replaces_nothing() {
        let mut room = room();
        join(&mut room, "a", "Ann", 1);
        join(&mut room, "b", "Bob", 2);
        let again = join(&mut room, "a", "Ann", 1);
        let JoinKind::Again { others, replaced } = again.kind else {
            panic!("the same user again: {:?}", again.kind);
        };
        assert_eq!((others, replaced), (vec![Conn(2)], None));
    }

    #[test]
    fn joining_again_updates_name_and_role_and_keeps_the_rest() {
        let mut room = room();
        room.join(
            joiner(&user("a", "Ann"), 1, true),
            at(1000),
            &limits(50),
            MESH,
        )
        .unwrap();
        room.member_mut("a").unwrap().participant.audio_enabled = false;
        let renamed = Identity {
            role: Role::Instructor,
            ..user("a", "Dr Ann")
        };
        let again = room
            .join(joiner(&renamed, 2, true), at(5000), &limits(50), MESH)
            .unwrap();
        let p = &again.participant;
        assert_eq!((p.user_name.as_str(), p.is_instructor), ("Dr Ann", true));
        assert_eq!((p.audio_enabled, p.joined_at), (false, 1000));
        assert_eq!(&room.member("a").unwrap().participant, p);
    }

    #[test]
    fn a_leave_is_announced_to_those_who_stay() {
        let mut room = room();
        join(&mut room, "a", "Ann", 1);
        join(&mut room, "b", "Bob", 2);
        join(&mut room, "c", "Cy", 3);
        let Left {
            participant,
            others,
            notice,
            closed,
            moved_to,
            ..
        } = room
            .leave("b", 2, at(9000), &limits(50), MESH)
            .expect("Bob was a member");
        assert_eq!(moved_to, None);
        assert_eq!(participant.user_name, "Bob");
        assert_eq!(others, [Conn(1), Conn(3)]);
        assert_eq!(notice.message, "Bob left the class");
        assert_eq!((notice.kind, notice.timestamp), (ChatKind::System, 9000));
        assert_eq!(room.history.back(), Some(&notice));
        assert!(!closed);
        assert!(room.member("b").is_none());
    }

    #[test]
    fn leaving_from_a_replaced_connection_announces_nothing() {
        let mut room = room();
        join(&mut room, "a", "Ann", 1);
        join(&mut room, "b", "Bob", 2);
        join(&mut room, "a", "Ann", 3);
        let before = room.history.len();
        assert!(room.leave("a", 1, at(1), &limits(50), MESH).is_none());
        assert_eq!(room.member("a").unwrap().conn, Conn(3));
        assert_eq!(room.history.len(), before);
        // Another user's connection does not take Ann out either.
        assert!(room.leave("a", 2, at(1), &limits(50), MESH).is_none());
    }

    #[test]
    fn the_last_leave_closes_the_room_to_later_joins() {
        let mut room = room();
        join(&mut room, "a", "Ann", 1);
        join(&mut room, "b", "Bob", 2);
        let first = room
            .leave("a", 1, at(1), &limits(50), MESH)
            .expect("Ann was a member");
        assert!(!first.closed);
        let last = room
            .leave("b", 2, at(2), &limits(50), MESH)
            .expect("Bob was a member");
        let (others, closed) = (last.others, last.closed);
        assert!(closed && others.is_empty());
        assert!(matches!(
            room.join(joiner(&user("c", "Cy"), 3, true), at(3), &limits(50), MESH)
                .unwrap_err(),
            NotAdmitted::Closed
        ));
    }

    #[test]
    fn history_keeps_the_last_user_messages_and_the_last_system_notices() {
        let mut room = room();
        for i in 0..5 {
            room.push_history(chat(&format!("user {i}"), ChatKind::User), 3);
        }
        for i in 0..SYSTEM_NOTICES_KEPT + 4 {
            room.push_history(chat(&format!("notice {i}"), ChatKind::System), 3);
        }
        room.push_history(chat("user 5", ChatKind::User), 3);
        let kept: Vec<_> = room.history.iter().map(|m| m.message.as_str()).collect();
        let mut expected = vec!["user 3".to_owned(), "user 4".to_owned()];
        expected.extend((4..SYSTEM_NOTICES_KEPT + 4).map(|i| format!("notice {i}")));
        expected.push("user 5".to_owned());
        assert_eq!(kept, expected, "oldest first, each kind to its own bound");
    }

    #[test]
    fn join_notices_do_not_push_the_conversation_out() {
        let mut room = RoomState::new(VecDeque::from([chat("hello", ChatKind::User)]), MESH);
        let small = Limits {
            chat_history_len: 1,
            ..Limits::default()
        };
        for i in 0..SYSTEM_NOTICES_KEPT as u32 + 2 {
            let id = format!("u{i}");
            room.join(joiner(&user(&id, &id), i, true), at(1), &small, MESH)
                .unwrap();
        }
        let users: Vec<_> = room
            .history
            .iter()
            .filter(|m| m.kind == ChatKind::User)
            .collect();
        assert_eq!(users.len(), 1);
        assert_eq!(users[0].message, "hello");
        assert_eq!(room.history.len(), 1 + SYSTEM_NOTICES_KEPT);
    }

    #[test]
    fn auto_moves_a_growing_class_to_the_sfu_and_back_with_one_to_spare() {
        use Topology::{Mesh, Sfu};
        let step = |current, members| next_topology(current, members, true, false, AUTO);
        assert_eq!(step(Mesh, 4), Mesh);
        assert_eq!(step(Mesh, 5), Sfu);
        assert_eq!(step(Sfu, 4), Sfu, "one to spare: not back at the edge");
        assert_eq!(step(Sfu, 3), Mesh);
        // A member whose client knows only the mesh keeps the class a mesh.
        assert_eq!(next_topology(Mesh, 9, false, false, AUTO), Mesh);
        // Students' cameras for instructors only: on the SFU at any size.
        assert_eq!(next_topology(Mesh, 2, true, true, AUTO), Sfu);
        assert_eq!(next_topology(Sfu, 1, true, true, AUTO), Sfu);
        let always = RoomPolicy {
            mode: SfuMode::Always,
            ..AUTO
        };
        assert_eq!(next_topology(Mesh, 1, true, false, always), Sfu);
        assert_eq!(next_topology(Sfu, 9, true, false, MESH), Mesh);
    }

    #[test]
    fn the_join_and_the_leave_that_move_the_class_say_so_and_a_mesh_only_client_is_refused_on_the_sfu()
     {
        let mut room = room();
        for (i, id) in ["a", "b", "c", "d"].into_iter().enumerate() {
            let joined = room
                .join(
                    joiner(&user(id, id), i as u32, true),
                    at(1),
                    &limits(50),
                    AUTO,
                )
                .unwrap();
            assert_eq!((joined.topology, joined.moved), (Topology::Mesh, false));
        }
        let fifth = room
            .join(joiner(&user("e", "e"), 9, true), at(2), &limits(50), AUTO)
            .unwrap();
        assert_eq!((fifth.topology, fifth.moved), (Topology::Sfu, true));
        // Everyone else is told anew, each with the rest of the class.
        let retold = room.retell(Some(9));
        assert_eq!(retold.len(), 4);
        assert_eq!(ids(&retold[0].roster), ["b", "c", "d", "e"]);
        assert!(retold[0].offer_to.is_empty());
        assert_eq!(
            retold[2].offer_to,
            ["a", "b"],
            "c offers to those before it"
        );
        let refused = room.join(
            joiner(&user("old", "old"), 20, false),
            at(3),
            &limits(50),
            AUTO,
        );
        assert!(matches!(
            refused,
            Err(NotAdmitted::Refused(Refusal {
                code: ErrorCode::SfuRequired,
                ..
            }))
        ));
        let left = room.leave("e", 9, at(4), &limits(50), AUTO).unwrap();
        assert_eq!(left.moved_to, None, "four: still on the SFU");
        let left = room.leave("d", 3, at(5), &limits(50), AUTO).unwrap();
        assert_eq!(left.moved_to, Some(Topology::Mesh));
        assert_eq!(room.topology(), Topology::Mesh);
    }
}
