//! The instructors' controls over one room, without sockets or clocks: ranks, moderation
//! (`moderate`), lock settings held against what students ask for, the waiting room, the hand
//! queue, reactions and private chat. Each call returns what the driver must send, to whom,
//! and what else it must do ([`Output`]), in order.

use classroom_wire::{
    ChatDeleted, ChatMessage, ClassEnded, ClassSettings, ErrorCode, HandQueue, LockSettings,
    MediaState, Moderated, ModeratedAction, Moderation, Participant, REACTIONS, RaisedHand,
    Reaction, Removed, Topology, WaitingPolicy, WaitingRoom, WaitingUser,
};

use super::{Handle, Joined, Left, Limits, NotAdmitted, Now, RoomPolicy, RoomState, Waiter};
use crate::auth::Identity;
use crate::error::Refusal;
use crate::limits::RateDecision;
use crate::sfu::SfuMode;

/// Reactions one member may send at once, and per second after that.
pub(crate) const REACTION_BURST: f64 = 3.0;
pub(crate) const REACTIONS_PER_SECOND: f64 = 1.0;

/// Who outranks whom: an instructor moderates co-instructors and students, a co-instructor
/// students.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Rank {
    Student,
    CoInstructor,
    Instructor,
}

pub(crate) fn rank(p: &Participant) -> Rank {
    match (p.is_instructor, p.co_instructor) {
        (false, _) => Rank::Student,
        (true, true) => Rank::CoInstructor,
        (true, false) => Rank::Instructor,
    }
}

/// Something the server tells clients.
#[derive(Debug, Clone)]
pub(crate) enum Notice {
    ParticipantUpdated(Participant),
    /// Several participants' updates at once, to clients that take batches (`batching.rs`).
    ParticipantsUpdated(classroom_wire::ParticipantsUpdated),
    Moderated(Moderated),
    Settings(ClassSettings),
    WaitingRoom(WaitingRoom),
    HandQueue(HandQueue),
    ChatDeleted(ChatDeleted),
    Removed(Removed),
    ClassEnded(ClassEnded),
    /// An `error` event (a denied admission, a replaced waiting connection).
    Refused(Refusal),
    PollOpened(classroom_wire::Poll),
    PollResults(classroom_wire::PollResults),
    PollClosed(classroom_wire::PollClosed),
}

/// What the driver does after a control, in order.
#[derive(Debug)]
pub(crate) enum Output<C> {
    Send(Vec<C>, Notice),
    /// Call [`RoomState::flush_updates`] at this instant: the participant updates waiting for
    /// their batch go out then (`batching.rs`).
    FlushUpdatesAt(std::time::Instant),
    /// The connection is no longer in the room (removed, denied, replaced, the class ended):
    /// it is closed once what was sent to it went out.
    Close(C),
    /// A member was taken out (removed): announced as a leave is.
    Left(Box<Left<C>>),
    /// Someone waiting was let in: they are told `session-joined`, the others a join. `retold`
    /// is everyone else, when the join moved the class.
    Admitted(Box<Admitted<C>>),
    /// Keep this user out of this class until then (milliseconds since the Unix epoch).
    Bar {
        user_id: String,
        until_ms: u64,
    },
    /// Delete this chat message from the stored history.
    Unstore {
        message_id: String,
    },
    /// The class ended: the room is closed, with this many members gone.
    Ended {
        members: usize,
    },
    /// Store a poll that opened, a vote, a poll that closed.
    StorePoll(Box<super::polls::PollRecord>),
    StoreVote(Box<super::polls::StoredVote>),
    StorePollClosed {
        poll_id: String,
    },
    /// What the SFU forwards changed: students' cameras to the instructors only (`true`), or
    /// to everyone.
    StudentCameras {
        private: bool,
    },
    /// A member became a co-instructor, or a student again: the SFU forwards it the cameras
    /// its rank may see.
    Ranked {
        conn: C,
        student: bool,
    },
    /// A change of the lock settings moved the class: each member is told it anew.
    Moved {
        topology: Topology,
        retold: Vec<super::Retold<C>>,
    },
}

#[derive(Debug)]
pub(crate) struct Admitted<C> {
    pub(crate) conn: C,
    pub(crate) who: Identity,
    pub(crate) joined: Joined<C>,
    pub(crate) retold: Vec<super::Retold<C>>,
}

fn forbidden(why: impl Into<String>) -> Refusal {
    Refusal::new(ErrorCode::Forbidden, why)
}

pub(crate) fn not_joined() -> Refusal {
    Refusal::new(ErrorCode::NotJoined, "join a session first (join-session)")
}

fn no_member(user_id: &str) -> Refusal {
    Refusal::new(
        ErrorCode::TargetNotFound,
        format!("{user_id:?} is not in this session"),
    )
}

impl<C: Handle> RoomState<C> {
    /// The connections of the instructors and co-instructors.
    pub(crate) fn instructors(&self) -> Vec<C> {
        self.members
            .iter()
            .filter(|m| m.participant.is_instructor)
            .map(|m| m.conn.clone())
            .collect()
    }

    pub(crate) fn waiting_room(&self) -> WaitingRoom {
        WaitingRoom {
            waiting: self
                .waiting
                .iter()
                .map(|w| WaitingUser {
                    user_id: w.who.user_id.clone(),
                    user_name: w.who.user_name.clone(),
                    since: w.since,
                })
                .collect(),
        }
    }

    pub(crate) fn hand_queue(&self) -> HandQueue {
        HandQueue {
            hands: self.hands.clone(),
        }
    }

    /// What `session-joined` tells `user_id` of the waiting room and the hands: instructors
    /// see both, students neither.
    fn instructor_view(&self, user_id: &str) -> (Option<WaitingRoom>, Option<HandQueue>) {
        match self.member(user_id) {
            Some(m) if m.participant.is_instructor => {
                (Some(self.waiting_room()), Some(self.hand_queue()))
            }
            _ => (None, None),
        }
    }

    /// What `user_id` is told of the controls on a join or a move.
    pub(super) fn controls_view(&self, user_id: &str) -> super::ControlsView {
        let (waiting_room, hand_queue) = self.instructor_view(user_id);
        super::ControlsView {
            settings: self.settings,
            waiting_room,
            hand_queue,
            poll: self.open_poll(),
        }
    }

    fn tell_instructors_waiting(&self) -> Output<C> {
        Output::Send(self.instructors(), Notice::WaitingRoom(self.waiting_room()))
    }

    fn tell_instructors_hands(&self) -> Output<C> {
        Output::Send(self.instructors(), Notice::HandQueue(self.hand_queue()))
    }

    /// Puts a student in the waiting room (the same user again takes their place with the new
    /// connection; the old one is closed).
    pub(super) fn wait(
        &mut self,
        who: &Identity,
        conn: C,
        sfu_capable: bool,
        now: Now,
        limits: &Limits,
    ) -> NotAdmitted<C> {
        let mut outputs = Vec::new();
        let position = if let Some(i) = self
            .waiting
            .iter()
            .position(|w| w.who.user_id == who.user_id)
        {
            let waiter = &mut self.waiting[i];
            let old = std::mem::replace(&mut waiter.conn, conn);
            waiter.who = who.clone();
            waiter.sfu_capable = sfu_capable;
            if old.id() != waiter.conn.id() {
                outputs.push(Output::Send(
                    vec![old.clone()],
                    Notice::Refused(Refusal::new(
                        ErrorCode::SessionReplaced,
                        "you asked to join this session from another connection",
                    )),
                ));
                outputs.push(Output::Close(old));
            }
            i + 1
        } else {
            let max = limits.max_participants_per_session;
            if self.waiting.len() >= max {
                return NotAdmitted::Refused(Refusal::new(
                    ErrorCode::SessionFull,
                    format!("the waiting room has its maximum of {max} people"),
                ));
            }
            self.waiting.push(Waiter {
                who: who.clone(),
                conn,
                sfu_capable,
                since: now.unix_ms,
            });
            self.waiting.len()
        };
        outputs.push(self.tell_instructors_waiting());
        NotAdmitted::Waiting { position, outputs }
    }

    /// Takes `user_id` out of the waiting room if `conn` is still theirs (they left or their
    /// connection closed); with whether the room closed (nobody in it and nobody waiting).
    pub(crate) fn leave_waiting(
        &mut self,
        user_id: &str,
        conn: C::Id,
    ) -> Option<(Vec<Output<C>>, bool)> {
        let i = self
            .waiting
            .iter()
            .position(|w| w.who.user_id == user_id && w.conn.id() == conn)?;
        self.waiting.remove(i);
        self.closed = self.members.is_empty() && self.waiting.is_empty();
        Some((vec![self.tell_instructors_waiting()], self.closed))
    }

    /// Takes the user's hand out of the queue: the instructors' new queue, if it was there.
    pub(super) fn take_hand(&mut self, user_id: &str) -> Option<(Vec<C>, HandQueue)> {
        let i = self.hands.iter().position(|h| h.user_id == user_id)?;
        self.hands.remove(i);
        Some((self.instructors(), self.hand_queue()))
    }

    /// A member's `media-state`: what lock settings forbid a student to turn on is refused
    /// (nothing changes); a hand raised joins the queue's end, a hand lowered leaves it.
    pub(crate) fn media_state(
        &mut self,
        user_id: &str,
        m: &MediaState,
        now: Now,
    ) -> Result<(Participant, Vec<Output<C>>), Refusal> {
        let locks = self.settings.locks;
        let member = self.member_mut(user_id).ok_or_else(not_joined)?;
        if rank(&member.participant) == Rank::Student {
            let locked = [
                (m.audio_enabled, locks.microphone, "microphones"),
                (m.video_enabled, locks.camera, "cameras"),
                (m.screen_sharing, locks.screen_share, "screen sharing"),
            ];
            if let Some((_, _, what)) = locked
                .iter()
                .find(|(on, lock, _)| *on == Some(true) && *lock)
            {
                return Err(forbidden(format!(
                    "the instructor has locked students' {what} in this class"
                )));
            }
        }
        let p = &mut member.participant;
        if let Some(v) = m.audio_enabled {
            p.audio_enabled = v;
        }
        if let Some(v) = m.video_enabled {
            p.video_enabled = v;
        }
        if let Some(v) = m.screen_sharing {
            p.screen_sharing = v;
        }
        if let Some(v) = m.hand_raised {
            p.hand_raised = v;
        }
        let participant = p.clone();
        let own = member.conn.id();
        let update = Output::Send(
            self.conns_except(Some(own)),
            Notice::ParticipantUpdated(participant.clone()),
        );
        let mut outputs = Vec::new();
        let queued = self.hands.iter().any(|h| h.user_id == user_id);
        match m.hand_raised {
            Some(true) if !queued => {
                self.hands.push(RaisedHand {
                    user_id: participant.user_id.clone(),
                    user_name: participant.user_name.clone(),
                    raised_at: now.unix_ms,
                });
                outputs.push(self.tell_instructors_hands());
            }
            Some(false) if queued => {
                if let Some((to, queue)) = self.take_hand(user_id) {
                    outputs.push(Output::Send(to, Notice::HandQueue(queue)));
                }
            }
            _ => {}
        }
        // The instructors' queue first, then the class's update.
        outputs.push(update);
        Ok((participant, outputs))
    }

    /// Whether `from` may send this chat message; the recipient's name for a private one.
    pub(crate) fn check_chat(
        &self,
        from: &str,
        to: Option<&str>,
    ) -> Result<Option<String>, Refusal> {
        let sender = self.member(from).ok_or_else(not_joined)?;
        let student = rank(&sender.participant) == Rank::Student;
        let locks = self.settings.locks;
        let Some(to) = to else {
            if student && locks.public_chat {
                return Err(forbidden(
                    "the instructor has locked the class's public chat for students",
                ));
            }
            return Ok(None);
        };
        if to == from {
            return Err(Refusal::new(
                ErrorCode::InvalidPayload,
                "toUserId is yourself",
            ));
        }
        let target = self.member(to).ok_or_else(|| no_member(to))?;
        if student {
            if locks.private_chat {
                return Err(forbidden(
                    "the instructor has locked private chat for students",
                ));
            }
            if !target.participant.is_instructor {
                return Err(forbidden(
                    "students may write privately to the instructors only",
                ));
            }
        }
        Ok(Some(target.participant.user_name.clone()))
    }

    /// Who is shown a message: everyone for a public one; its sender and recipient for a
    /// private one.
    pub(crate) fn chat_recipients(&self, m: &ChatMessage) -> Vec<C> {
        self.members
            .iter()
            .filter(|member| super::visible_to(m, &member.participant.user_id))
            .map(|member| member.conn.clone())
            .collect()
    }

    /// A member's reaction, to everyone; one of [`REACTIONS`], at most
    /// [`REACTIONS_PER_SECOND`] (bursts of [`REACTION_BURST`]).
    pub(crate) fn reaction(
        &mut self,
        user_id: &str,
        emoji: &str,
        now: Now,
    ) -> Result<(Vec<C>, Reaction), Refusal> {
        if !REACTIONS.contains(&emoji) {
            return Err(Refusal::new(
                ErrorCode::InvalidPayload,
                format!("emoji must be one of {}", REACTIONS.join(" ")),
            ));
        }
        let member = self.member_mut(user_id).ok_or_else(not_joined)?;
        if member
            .reactions
            .take(REACTIONS_PER_SECOND, REACTION_BURST, now.instant)
            != RateDecision::Allow
        {
            return Err(Refusal::new(
                ErrorCode::RateLimited,
                format!(
                    "more than {REACTIONS_PER_SECOND} reaction per second (burst {REACTION_BURST})"
                ),
            ));
        }
        let reaction = Reaction {
            user_id: member.participant.user_id.clone(),
            user_name: member.participant.user_name.clone(),
            emoji: emoji.to_owned(),
            timestamp: now.unix_ms,
        };
        Ok((self.conns_except(None), reaction))
    }

    /// The member `target` that `by` may act on: present, not themselves, and outranked.
    fn outranked(&self, by: Rank, by_user: &str, target: &str) -> Result<usize, Refusal> {
        if target == by_user {
            return Err(Refusal::new(
                ErrorCode::InvalidPayload,
                "targetUserId is yourself",
            ));
        }
        let i = self
            .members
            .iter()
            .position(|m| m.participant.user_id == target)
            .ok_or_else(|| no_member(target))?;
        if rank(&self.members[i].participant) >= by {
            return Err(forbidden(format!(
                "{target:?} is an instructor too: only someone above them can do that"
            )));
        }
        Ok(i)
    }

    /// Turns off what `action` says on the member at `i`, telling them and everyone else.
    fn turn_off(
        &mut self,
        i: usize,
        action: ModeratedAction,
        by: &Participant,
        out: &mut Vec<Output<C>>,
    ) {
        let member = &mut self.members[i];
        let p = &mut member.participant;
        match action {
            ModeratedAction::Mute => p.audio_enabled = false,
            ModeratedAction::StopCamera => p.video_enabled = false,
            ModeratedAction::StopScreen => p.screen_sharing = false,
            ModeratedAction::AskUnmute => {}
        }
        let participant = p.clone();
        let conn = member.conn.clone();
        out.push(Output::Send(
            vec![conn.clone()],
            Notice::Moderated(Moderated {
                action,
                by_user_id: by.user_id.clone(),
                by_user_name: by.user_name.clone(),
            }),
        ));
        if action != ModeratedAction::AskUnmute {
            out.push(Output::Send(
                self.conns_except(Some(conn.id())),
                Notice::ParticipantUpdated(participant),
            ));
        }
    }

    /// Only the SFU keeps students' cameras from each other (in a mesh every camera goes
    /// straight to every peer): refused where the class cannot be on it.
    fn sfu_holds_student_cameras(&self, policy: RoomPolicy) -> Result<(), Refusal> {
        let why = match policy.mode {
            SfuMode::Always => return Ok(()),
            SfuMode::Off => "this server runs no SFU (--sfu off)".to_owned(),
            SfuMode::Auto => match self.members.iter().find(|m| !m.sfu_capable) {
                None => return Ok(()),
                Some(m) => format!(
                    "{}'s client cannot take part in the SFU",
                    m.participant.user_name
                ),
            },
        };
        Err(Refusal::new(
            ErrorCode::SfuRequired,
            format!(
                "students' cameras can be kept for the instructors only on the server's SFU, \
                 and {why}"
            ),
        ))
    }

    /// Turns off, on every student, what the lock settings now forbid.
    fn apply_locks(&mut self, locks: LockSettings, by: &Participant, out: &mut Vec<Output<C>>) {
        for i in 0..self.members.len() {
            let p = &self.members[i].participant;
            if rank(p) != Rank::Student {
                continue;
            }
            let off = [
                (locks.microphone && p.audio_enabled, ModeratedAction::Mute),
                (locks.camera && p.video_enabled, ModeratedAction::StopCamera),
                (
                    locks.screen_share && p.screen_sharing,
                    ModeratedAction::StopScreen,
                ),
            ];
            for (_, action) in off.into_iter().filter(|(on, _)| *on) {
                self.turn_off(i, action, by, out);
            }
        }
    }

    /// Makes a student a co-instructor, or one a student again; a new co-instructor is
    /// shown the waiting room and the hands.
    fn set_co_instructor(
        &mut self,
        by: Rank,
        by_user: &str,
        target: &str,
        co: bool,
        out: &mut Vec<Output<C>>,
    ) -> Result<(), Refusal> {
        let i = self.outranked(by, by_user, target)?;
        if co {
            self.co_instructors.insert(target.to_owned());
        } else {
            self.co_instructors.remove(target);
        }
        let member = &mut self.members[i];
        member.participant.is_instructor = co;
        member.participant.co_instructor = co;
        let (p, conn) = (member.participant.clone(), member.conn.clone());
        out.push(Output::Send(
            self.conns_except(None),
            Notice::ParticipantUpdated(p),
        ));
        out.push(Output::Ranked {
            conn: conn.clone(),
            student: !co,
        });
        if co {
            out.push(Output::Send(
                vec![conn.clone()],
                Notice::WaitingRoom(self.waiting_room()),
            ));
            out.push(Output::Send(
                vec![conn],
                Notice::HandQueue(self.hand_queue()),
            ));
        }
        Ok(())
    }

    /// Where `user_id` is in the waiting room.
    fn waiter_index(&self, user_id: &str) -> Result<usize, Refusal> {
        self.waiting
            .iter()
            .position(|w| w.who.user_id == user_id)
            .ok_or_else(|| {
                Refusal::new(
                    ErrorCode::TargetNotFound,
                    format!("{user_id:?} is not in the waiting room"),
                )
            })
    }

    /// Lets everyone waiting in, in order, and tells the instructors the room is empty.
    fn admit_everyone(
        &mut self,
        now: Now,
        limits: &Limits,
        policy: RoomPolicy,
        out: &mut Vec<Output<C>>,
    ) {
        while !self.waiting.is_empty() {
            self.admit_waiter(0, now, limits, policy, out);
        }
        out.push(self.tell_instructors_waiting());
    }

    /// Lets the waiter at `i` in.
    fn admit_waiter(
        &mut self,
        i: usize,
        now: Now,
        limits: &Limits,
        policy: RoomPolicy,
        out: &mut Vec<Output<C>>,
    ) {
        let waiter = self.waiting.remove(i);
        let max = limits.max_participants_per_session;
        let refusal = if self.members.len() >= max {
            Some(Refusal::new(
                ErrorCode::SessionFull,
                format!("the session has its maximum of {max} participants"),
            ))
        } else if self.topology == Topology::Sfu && !waiter.sfu_capable {
            Some(Refusal::new(
                ErrorCode::SfuRequired,
                "this class runs on the server's SFU, and this client cannot take part in it",
            ))
        } else {
            None
        };
        if let Some(r) = refusal {
            out.push(Output::Send(vec![waiter.conn.clone()], Notice::Refused(r)));
            out.push(Output::Close(waiter.conn));
            return;
        }
        let rank = self.instructor_role(&waiter.who, false);
        let conn = waiter.conn.clone();
        let joined = self.admit_member(
            &waiter.who,
            waiter.conn,
            waiter.sfu_capable,
            rank,
            now,
            limits,
            policy,
        );
        let retold = if joined.moved {
            self.retell(Some(conn.id()))
        } else {
            Vec::new()
        };
        out.push(Output::Admitted(Box::new(Admitted {
            conn,
            who: waiter.who,
            joined,
            retold,
        })));
    }

    /// An instructor's action. Refused with `forbidden` for a student, for a co-instructor
    /// where it is the instructor's own (ending the class, lock settings, the waiting room's
    /// policy, co-instructors), and on someone who is not outranked.
    pub(crate) fn moderate(
        &mut self,
        by_user: &str,
        action: Moderation,
        now: Now,
        limits: &Limits,
        policy: RoomPolicy,
    ) -> Result<Vec<Output<C>>, Refusal> {
        let by = self
            .member(by_user)
            .ok_or_else(not_joined)?
            .participant
            .clone();
        let by_rank = rank(&by);
        if by_rank == Rank::Student {
            return Err(forbidden("only instructors can do that"));
        }
        let instructors_own = matches!(
            action,
            Moderation::EndClass
                | Moderation::SetLocks { .. }
                | Moderation::SetWaitingRoom { .. }
                | Moderation::GrantCoInstructor { .. }
                | Moderation::RevokeCoInstructor { .. }
        );
        if instructors_own && by_rank != Rank::Instructor {
            return Err(forbidden(
                "only the instructor can do that, not a co-instructor",
            ));
        }
        let mut out = Vec::new();
        match action {
            Moderation::Mute { target_user_id } => {
                let i = self.outranked(by_rank, by_user, &target_user_id)?;
                self.turn_off(i, ModeratedAction::Mute, &by, &mut out);
            }
            Moderation::AskUnmute { target_user_id } => {
                let i = self.outranked(by_rank, by_user, &target_user_id)?;
                self.turn_off(i, ModeratedAction::AskUnmute, &by, &mut out);
            }
            Moderation::StopCamera { target_user_id } => {
                let i = self.outranked(by_rank, by_user, &target_user_id)?;
                self.turn_off(i, ModeratedAction::StopCamera, &by, &mut out);
            }
            Moderation::StopScreen { target_user_id } => {
                let i = self.outranked(by_rank, by_user, &target_user_id)?;
                self.turn_off(i, ModeratedAction::StopScreen, &by, &mut out);
            }
            Moderation::MuteAll => {
                for i in 0..self.members.len() {
                    let p = &self.members[i].participant;
                    if rank(p) < by_rank && p.audio_enabled {
                        self.turn_off(i, ModeratedAction::Mute, &by, &mut out);
                    }
                }
                // Those muted hear it first, before the class's updates about each other.
                out.sort_by_key(|o| !matches!(o, Output::Send(_, Notice::Moderated(_))));
            }
            Moderation::Remove {
                target_user_id,
                bar,
            } => {
                let i = self.outranked(by_rank, by_user, &target_user_id)?;
                let barred_until = bar.then(|| now.unix_ms + classroom_wire::BAR_HOURS * 3_600_000);
                let conn = self.members[i].conn.clone();
                out.push(Output::Send(
                    vec![conn.clone()],
                    Notice::Removed(Removed {
                        by_user_name: by.user_name.clone(),
                        barred_until,
                    }),
                ));
                out.push(Output::Close(conn));
                let left = self.remove_member(i, "was removed from the class", now, limits, policy);
                out.push(Output::Left(Box::new(left)));
                if let Some(until_ms) = barred_until {
                    out.push(Output::Bar {
                        user_id: target_user_id,
                        until_ms,
                    });
                }
            }
            Moderation::SetLocked { locked } => {
                self.settings.locked = locked;
                out.push(Output::Send(
                    self.conns_except(None),
                    Notice::Settings(self.settings),
                ));
            }
            Moderation::EndClass => {
                let members: Vec<C> = self.members.drain(..).map(|m| m.conn).collect();
                let waiting: Vec<C> = self.waiting.drain(..).map(|w| w.conn).collect();
                let count = members.len();
                let everyone: Vec<C> = members.into_iter().chain(waiting).collect();
                out.push(Output::Send(
                    everyone.clone(),
                    Notice::ClassEnded(ClassEnded {
                        by_user_name: by.user_name.clone(),
                    }),
                ));
                out.extend(everyone.into_iter().map(Output::Close));
                self.hands.clear();
                self.closed = true;
                out.push(Output::Ended { members: count });
            }
            Moderation::SetLocks { locks } => {
                let cameras = locks.student_cameras != self.settings.locks.student_cameras;
                if cameras && locks.student_cameras {
                    self.sfu_holds_student_cameras(policy)?;
                }
                self.settings.locks = locks;
                self.apply_locks(locks, &by, &mut out);
                out.sort_by_key(|o| !matches!(o, Output::Send(_, Notice::Moderated(_))));
                out.push(Output::Send(
                    self.conns_except(None),
                    Notice::Settings(self.settings),
                ));
                if cameras {
                    out.push(Output::StudentCameras {
                        private: locks.student_cameras,
                    });
                }
                if self.settle_topology(policy) {
                    out.push(Output::Moved {
                        topology: self.topology,
                        retold: self.retell(None),
                    });
                }
            }
            Moderation::SetWaitingRoom { policy: waiting } => {
                self.settings.waiting_room = waiting;
                out.push(Output::Send(
                    self.conns_except(None),
                    Notice::Settings(self.settings),
                ));
                if waiting == WaitingPolicy::Open {
                    // An open door lets in those already at it.
                    self.admit_everyone(now, limits, policy, &mut out);
                }
            }
            Moderation::Admit { target_user_id } => {
                let i = self.waiter_index(&target_user_id)?;
                self.admit_waiter(i, now, limits, policy, &mut out);
                out.push(self.tell_instructors_waiting());
            }
            Moderation::AdmitAll => self.admit_everyone(now, limits, policy, &mut out),
            Moderation::Deny { target_user_id } => {
                let i = self.waiter_index(&target_user_id)?;
                let waiter = self.waiting.remove(i);
                out.push(Output::Send(
                    vec![waiter.conn.clone()],
                    Notice::Refused(Refusal::new(
                        ErrorCode::AdmissionDenied,
                        format!("{} did not let you into the class", by.user_name),
                    )),
                ));
                out.push(Output::Close(waiter.conn));
                out.push(self.tell_instructors_waiting());
            }
            Moderation::GrantCoInstructor { target_user_id } => {
                self.set_co_instructor(by_rank, by_user, &target_user_id, true, &mut out)?;
            }
            Moderation::RevokeCoInstructor { target_user_id } => {
                self.set_co_instructor(by_rank, by_user, &target_user_id, false, &mut out)?;
            }
            Moderation::LowerHand { target_user_id } => {
                let member = self
                    .member_mut(&target_user_id)
                    .ok_or_else(|| no_member(&target_user_id))?;
                member.participant.hand_raised = false;
                let p = member.participant.clone();
                out.push(Output::Send(
                    self.conns_except(None),
                    Notice::ParticipantUpdated(p),
                ));
                if let Some((to, queue)) = self.take_hand(&target_user_id) {
                    out.push(Output::Send(to, Notice::HandQueue(queue)));
                }
            }
            Moderation::LowerAllHands => {
                for i in 0..self.members.len() {
                    if self.members[i].participant.hand_raised {
                        self.members[i].participant.hand_raised = false;
                        let p = self.members[i].participant.clone();
                        out.push(Output::Send(
                            self.conns_except(None),
                            Notice::ParticipantUpdated(p),
                        ));
                    }
                }
                self.hands.clear();
                out.push(self.tell_instructors_hands());
            }
            Moderation::OpenPoll { poll } => {
                let id = uuid::Uuid::new_v4().to_string();
                let record = super::polls::make_poll(poll, id, now)?;
                self.start_poll(record, &mut out);
            }
            Moderation::ClosePoll { poll_id } => {
                if self.open_poll().is_none_or(|p| p.poll_id != poll_id) {
                    return Err(Refusal::new(
                        ErrorCode::TargetNotFound,
                        format!("{poll_id:?} is not the open poll"),
                    ));
                }
                self.end_poll(&poll_id, &mut out);
            }
            Moderation::PublishResults { poll_id } => self.publish_poll(&poll_id, &mut out)?,
            Moderation::DeleteMessage { message_id } => {
                self.history.retain(|m| m.id != message_id);
                out.push(Output::Unstore {
                    message_id: message_id.clone(),
                });
                out.push(Output::Send(
                    self.conns_except(None),
                    Notice::ChatDeleted(ChatDeleted { message_id }),
                ));
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;
    use std::time::Instant;

    use classroom_wire::{ChatKind, Role};

    use super::super::test_support::{Conn, at};
    use super::super::{Joiner, NotAdmitted};
    use super::*;
    use crate::sfu::SfuMode;

    fn policy(waiting_room: WaitingPolicy) -> RoomPolicy {
        RoomPolicy {
            mode: SfuMode::Off,
            mesh_max: 4,
            waiting_room,
        }
    }

    fn who(id: &str, role: Role) -> Identity {
        Identity {
            user_id: id.into(),
            user_name: id.to_uppercase(),
            role,
        }
    }

    /// A room with the teacher `t` (conn 1) and students `a`, `b` (conns 2, 3).
    fn class(waiting: WaitingPolicy) -> RoomState<Conn> {
        let mut room = RoomState::new(VecDeque::new(), policy(waiting));
        room.settings.waiting_room = WaitingPolicy::Open;
        for (i, (id, role)) in [
            ("t", Role::Instructor),
            ("a", Role::Student),
            ("b", Role::Student),
        ]
        .into_iter()
        .enumerate()
        {
            enter(&mut room, &who(id, role), i as u32 + 1).expect("admitted");
        }
        room.settings.waiting_room = waiting;
        room
    }

    fn enter(
        room: &mut RoomState<Conn>,
        who: &Identity,
        conn: u32,
    ) -> Result<super::super::Joined<Conn>, NotAdmitted<Conn>> {
        let waiting = room.settings.waiting_room;
        room.join(
            Joiner {
                who,
                conn: Conn(conn),
                sfu_capable: true,
                claimed: false,
                on_roster: false,
            },
            at(1_000),
            &Limits::default(),
            policy(waiting),
        )
    }

    fn moderate(
        room: &mut RoomState<Conn>,
        by: &str,
        action: Moderation,
    ) -> Result<Vec<Output<Conn>>, Refusal> {
        let waiting = room.settings.waiting_room;
        room.moderate(by, action, at(2_000), &Limits::default(), policy(waiting))
    }

    /// Who was sent which notices, in order: `(conn, kind)`.
    fn sent(outputs: &[Output<Conn>]) -> Vec<(u32, &'static str)> {
        let mut v = Vec::new();
        for o in outputs {
            if let Output::Send(to, notice) = o {
                let kind = match notice {
                    Notice::ParticipantUpdated(_) => "participant-updated",
                    Notice::ParticipantsUpdated(_) => "participants-updated",
                    Notice::Moderated(_) => "moderated",
                    Notice::Settings(_) => "class-settings",
                    Notice::WaitingRoom(_) => "waiting-room",
                    Notice::HandQueue(_) => "hand-queue",
                    Notice::ChatDeleted(_) => "chat-deleted",
                    Notice::Removed(_) => "removed",
                    Notice::ClassEnded(_) => "class-ended",
                    Notice::Refused(_) => "error",
                    Notice::PollOpened(_) => "poll-opened",
                    Notice::PollResults(_) => "poll-results",
                    Notice::PollClosed(_) => "poll-closed",
                };
                v.extend(to.iter().map(|c| (c.0, kind)));
            }
        }
        v
    }

    fn code(r: Result<Vec<Output<Conn>>, Refusal>) -> ErrorCode {
        r.expect_err("refused").code
    }

    #[test]
    fn every_control_is_refused_to_a_student() {
        let mut room = class(WaitingPolicy::Open);
        let actions = [
            Moderation::Mute {
                target_user_id: "b".into(),
            },
            Moderation::MuteAll,
            Moderation::AskUnmute {
                target_user_id: "b".into(),
            },
            Moderation::StopCamera {
                target_user_id: "b".into(),
            },
            Moderation::StopScreen {
                target_user_id: "b".into(),
            },
            Moderation::Remove {
                target_user_id: "b".into(),
                bar: true,
            },
            Moderation::SetLocked { locked: true },
            Moderation::EndClass,
            Moderation::SetLocks {
                locks: LockSettings::default(),
            },
            Moderation::SetWaitingRoom {
                policy: WaitingPolicy::Ask,
            },
            Moderation::Admit {
                target_user_id: "x".into(),
            },
            Moderation::AdmitAll,
            Moderation::Deny {
                target_user_id: "x".into(),
            },
            Moderation::GrantCoInstructor {
                target_user_id: "a".into(),
            },
            Moderation::RevokeCoInstructor {
                target_user_id: "a".into(),
            },
            Moderation::LowerHand {
                target_user_id: "b".into(),
            },
            Moderation::LowerAllHands,
            Moderation::DeleteMessage {
                message_id: "m".into(),
            },
        ];
        for action in actions {
            assert_eq!(
                code(moderate(&mut room, "a", action.clone())),
                ErrorCode::Forbidden,
                "{action:?}"
            );
        }
        assert_eq!(room.members.len(), 3);
        assert!(room.members.iter().all(|m| m.participant.audio_enabled));
    }

    #[test]
    fn a_muted_student_is_told_and_everyone_else_sees_it_and_unmuting_stays_theirs() {
        let mut room = class(WaitingPolicy::Open);
        let out = moderate(
            &mut room,
            "t",
            Moderation::Mute {
                target_user_id: "a".into(),
            },
        )
        .unwrap();
        assert_eq!(
            sent(&out),
            [
                (2, "moderated"),
                (1, "participant-updated"),
                (3, "participant-updated")
            ]
        );
        assert!(!room.member("a").unwrap().participant.audio_enabled);
        // Their own choice to unmute is theirs.
        let unmute = MediaState {
            audio_enabled: Some(true),
            ..MediaState::default()
        };
        let (p, _) = room.media_state("a", &unmute, at(3_000)).unwrap();
        assert!(p.audio_enabled);
        // Mute all: every student with a microphone on, not the instructor.
        let out = moderate(&mut room, "t", Moderation::MuteAll).unwrap();
        let told: Vec<_> = sent(&out)
            .into_iter()
            .filter(|(_, k)| *k == "moderated")
            .collect();
        assert_eq!(told, [(2, "moderated"), (3, "moderated")]);
        assert!(room.member("t").unwrap().participant.audio_enabled);
        // An instructor is not muted by anyone of their rank.
        assert_eq!(
            code(moderate(
                &mut room,
                "t",
                Moderation::Mute {
                    target_user_id: "t".into()
                }
            )),
            ErrorCode::InvalidPayload
        );
        assert_eq!(
            code(moderate(
                &mut room,
                "t",
                Moderation::Mute {
                    target_user_id: "nobody".into()
                }
            )),
            ErrorCode::TargetNotFound
        );
    }

    #[test]
    fn a_co_instructor_moderates_students_but_not_the_instructor_and_keeps_the_role_on_a_reconnect()
    {
        let mut room = class(WaitingPolicy::Open);
        let out = moderate(
            &mut room,
            "t",
            Moderation::GrantCoInstructor {
                target_user_id: "a".into(),
            },
        )
        .unwrap();
        let p = &room.member("a").unwrap().participant;
        assert!(p.is_instructor && p.co_instructor);
        assert!(
            sent(&out).contains(&(2, "waiting-room")),
            "a new co-instructor sees the waiting room"
        );
        moderate(
            &mut room,
            "a",
            Moderation::StopCamera {
                target_user_id: "b".into(),
            },
        )
        .unwrap();
        assert!(!room.member("b").unwrap().participant.video_enabled);
        assert_eq!(
            code(moderate(
                &mut room,
                "a",
                Moderation::Mute {
                    target_user_id: "t".into()
                }
            )),
            ErrorCode::Forbidden
        );
        assert_eq!(
            code(moderate(&mut room, "a", Moderation::EndClass)),
            ErrorCode::Forbidden
        );
        assert_eq!(
            code(moderate(
                &mut room,
                "a",
                Moderation::GrantCoInstructor {
                    target_user_id: "b".into()
                }
            )),
            ErrorCode::Forbidden
        );
        // A reconnect keeps it; a revoke ends it.
        let again = enter(&mut room, &who("a", Role::Student), 9).unwrap();
        assert!(again.participant.co_instructor);
        moderate(
            &mut room,
            "t",
            Moderation::RevokeCoInstructor {
                target_user_id: "a".into(),
            },
        )
        .unwrap();
        assert!(!room.member("a").unwrap().participant.is_instructor);
        assert_eq!(
            code(moderate(&mut room, "a", Moderation::MuteAll)),
            ErrorCode::Forbidden
        );
    }

    #[test]
    fn in_development_mode_only_the_first_to_claim_it_is_instructor() {
        let mut room = RoomState::new(VecDeque::new(), policy(WaitingPolicy::Open));
        let claim = |room: &mut RoomState<Conn>, id: &str, conn: u32| {
            room.join(
                Joiner {
                    who: &who(id, Role::Instructor),
                    conn: Conn(conn),
                    sfu_capable: true,
                    claimed: true,
                    on_roster: false,
                },
                at(1),
                &Limits::default(),
                policy(WaitingPolicy::Open),
            )
            .unwrap()
            .participant
            .is_instructor
        };
        assert!(claim(&mut room, "first", 1));
        assert!(
            !claim(&mut room, "second", 2),
            "a student's isInstructor is ignored"
        );
        let left = room.leave(
            "first",
            1,
            at(2),
            &Limits::default(),
            policy(WaitingPolicy::Open),
        );
        assert!(left.is_some());
        assert!(!claim(&mut room, "third", 3));
        assert!(
            claim(&mut room, "first", 4),
            "the first keeps the place for the room's life"
        );
    }

    #[test]
    fn a_removed_student_is_told_closed_announced_and_barred() {
        let mut room = class(WaitingPolicy::Open);
        let out = moderate(
            &mut room,
            "t",
            Moderation::Remove {
                target_user_id: "b".into(),
                bar: true,
            },
        )
        .unwrap();
        assert!(
            matches!(&out[0], Output::Send(to, Notice::Removed(r)) if to == &[Conn(3)] && r.barred_until == Some(2_000 + 24 * 3_600_000))
        );
        assert!(matches!(out[1], Output::Close(Conn(3))));
        assert!(
            matches!(&out[2], Output::Left(l) if l.participant.user_id == "b" && l.others == [Conn(1), Conn(2)] && l.notice.message == "B was removed from the class")
        );
        assert!(
            matches!(&out[3], Output::Bar { user_id, until_ms } if user_id == "b" && *until_ms == 2_000 + 24 * 3_600_000)
        );
        assert!(room.member("b").is_none());
        let out = moderate(
            &mut room,
            "t",
            Moderation::Remove {
                target_user_id: "a".into(),
                bar: false,
            },
        )
        .unwrap();
        assert!(!out.iter().any(|o| matches!(o, Output::Bar { .. })));
    }

    #[test]
    fn students_cameras_for_instructors_only_move_a_class_to_the_sfu_and_are_refused_where_none_can_hold_them()
     {
        let cameras = Moderation::SetLocks {
            locks: LockSettings {
                student_cameras: true,
                ..LockSettings::default()
            },
        };
        let set = |room: &mut RoomState<Conn>, mode, action: &Moderation| {
            let policy = RoomPolicy {
                mode,
                ..policy(WaitingPolicy::Open)
            };
            room.moderate("t", action.clone(), at(2_000), &Limits::default(), policy)
        };
        // No SFU: refused, and nothing changed.
        let mut room = class(WaitingPolicy::Open);
        let refused = set(&mut room, SfuMode::Off, &cameras).unwrap_err();
        assert_eq!(refused.code, ErrorCode::SfuRequired);
        assert!(refused.message.contains("--sfu off"), "{}", refused.message);
        assert!(!room.settings.locks.student_cameras);
        // `auto` with a member whose client knows only the mesh: refused, saying who.
        room.members[2].sfu_capable = false;
        let refused = set(&mut room, SfuMode::Auto, &cameras).unwrap_err();
        assert_eq!(refused.code, ErrorCode::SfuRequired);
        assert!(refused.message.contains('B'), "{}", refused.message);
        // `auto`, everyone able: a class of three moves to the SFU, each member told anew.
        room.members[2].sfu_capable = true;
        let out = set(&mut room, SfuMode::Auto, &cameras).unwrap();
        assert_eq!(room.topology, Topology::Sfu);
        assert!(tells_sfu(&out, true));
        let Some(Output::Moved { topology, retold }) =
            out.iter().find(|o| matches!(o, Output::Moved { .. }))
        else {
            panic!("the class did not move: {out:?}");
        };
        assert_eq!((*topology, retold.len()), (Topology::Sfu, 3));
        // Those told anew learn the lock with it (the SFU peers they make carry it).
        assert!(
            retold
                .iter()
                .all(|r| r.controls.settings.locks.student_cameras)
        );
        // Setting it again moves nothing and tells the SFU nothing new.
        let again = set(&mut room, SfuMode::Auto, &cameras).unwrap();
        assert!(
            !again
                .iter()
                .any(|o| matches!(o, Output::Moved { .. } | Output::StudentCameras { .. }))
        );
        // Lifted: the SFU is told, and a class of three (below --mesh-max) goes back to a mesh.
        let lifted = Moderation::SetLocks {
            locks: LockSettings::default(),
        };
        let out = set(&mut room, SfuMode::Auto, &lifted).unwrap();
        assert!(tells_sfu(&out, false));
        assert_eq!(room.topology, Topology::Mesh);
        // A co-instructor is ranked anew for the SFU; a student again, too.
        let out = set(
            &mut room,
            SfuMode::Always,
            &Moderation::GrantCoInstructor {
                target_user_id: "a".into(),
            },
        )
        .unwrap();
        assert!(out.iter().any(|o| matches!(
            o,
            Output::Ranked {
                conn: Conn(2),
                student: false
            }
        )));
        let out = set(
            &mut room,
            SfuMode::Always,
            &Moderation::RevokeCoInstructor {
                target_user_id: "a".into(),
            },
        )
        .unwrap();
        assert!(out.iter().any(|o| matches!(
            o,
            Output::Ranked {
                conn: Conn(2),
                student: true
            }
        )));
    }

    /// Whether the SFU is told that students' cameras are now (not) for instructors only.
    fn tells_sfu(out: &[Output<Conn>], want: bool) -> bool {
        out.iter()
            .any(|o| matches!(o, Output::StudentCameras { private } if *private == want))
    }

    #[test]
    fn a_locked_class_takes_nobody_new_but_its_members_and_instructors() {
        let mut room = class(WaitingPolicy::Open);
        let out = moderate(&mut room, "t", Moderation::SetLocked { locked: true }).unwrap();
        assert_eq!(
            sent(&out),
            [
                (1, "class-settings"),
                (2, "class-settings"),
                (3, "class-settings")
            ]
        );
        let refused = enter(&mut room, &who("c", Role::Student), 4).unwrap_err();
        assert!(matches!(refused, NotAdmitted::Refused(r) if r.code == ErrorCode::ClassLocked));
        assert!(
            enter(&mut room, &who("a", Role::Student), 5).is_ok(),
            "a member reconnecting"
        );
        assert!(enter(&mut room, &who("t2", Role::Instructor), 6).is_ok());
    }

    #[test]
    fn lock_settings_turn_off_what_they_lock_and_hold_against_a_student_who_asks() {
        let mut room = class(WaitingPolicy::Open);
        room.members[1].participant.screen_sharing = true;
        let locks = LockSettings {
            microphone: true,
            screen_share: true,
            public_chat: true,
            ..LockSettings::default()
        };
        let out = moderate(&mut room, "t", Moderation::SetLocks { locks }).unwrap();
        let told: Vec<_> = sent(&out)
            .into_iter()
            .filter(|(_, k)| *k == "moderated")
            .collect();
        assert_eq!(
            told,
            [(2, "moderated"), (2, "moderated"), (3, "moderated")],
            "a: mic and screen; b: mic"
        );
        let a = &room.member("a").unwrap().participant;
        assert!(!a.audio_enabled && !a.screen_sharing && a.video_enabled);
        assert!(
            room.member("t").unwrap().participant.audio_enabled,
            "instructors are never locked"
        );
        for m in [
            MediaState {
                audio_enabled: Some(true),
                ..MediaState::default()
            },
            MediaState {
                screen_sharing: Some(true),
                ..MediaState::default()
            },
        ] {
            assert_eq!(
                room.media_state("a", &m, at(3)).unwrap_err().code,
                ErrorCode::Forbidden
            );
        }
        assert!(
            !room.member("a").unwrap().participant.audio_enabled,
            "a refused change changes nothing"
        );
        let camera_off = MediaState {
            video_enabled: Some(false),
            ..MediaState::default()
        };
        assert!(room.media_state("a", &camera_off, at(3)).is_ok());
        let unmute = MediaState {
            audio_enabled: Some(true),
            ..MediaState::default()
        };
        assert!(room.media_state("t", &unmute, at(3)).is_ok());
        // Public chat locked; private chat to an instructor still open.
        assert_eq!(
            room.check_chat("a", None).unwrap_err().code,
            ErrorCode::Forbidden
        );
        assert_eq!(room.check_chat("a", Some("t")).unwrap(), Some("T".into()));
        assert!(room.check_chat("t", None).is_ok());
        // A joiner comes in with what is locked off.
        let c = enter(&mut room, &who("c", Role::Student), 4).unwrap();
        assert!(!c.participant.audio_enabled && c.participant.video_enabled);
        assert!(c.controls.settings.locks.microphone);
    }

    #[test]
    fn private_chat_goes_to_its_two_people_and_students_write_only_to_instructors() {
        let mut room = class(WaitingPolicy::Open);
        assert_eq!(
            room.check_chat("a", Some("b")).unwrap_err().code,
            ErrorCode::Forbidden
        );
        assert_eq!(
            room.check_chat("a", Some("a")).unwrap_err().code,
            ErrorCode::InvalidPayload
        );
        assert_eq!(
            room.check_chat("a", Some("zed")).unwrap_err().code,
            ErrorCode::TargetNotFound
        );
        assert_eq!(room.check_chat("t", Some("b")).unwrap(), Some("B".into()));
        let private = ChatMessage {
            id: "p1".into(),
            user_id: "a".into(),
            user_name: "A".into(),
            message: "may I leave early?".into(),
            timestamp: 5,
            kind: ChatKind::User,
            to_user_id: Some("t".into()),
            to_user_name: Some("T".into()),
        };
        assert_eq!(room.chat_recipients(&private), [Conn(1), Conn(2)]);
        room.push_history(private.clone(), 50);
        assert!(
            room.history_for("b").iter().all(|m| m.id != "p1"),
            "b does not see it"
        );
        assert!(room.history_for("t").iter().any(|m| m.id == "p1"));
        // Locked private chat.
        moderate(
            &mut room,
            "t",
            Moderation::SetLocks {
                locks: LockSettings {
                    private_chat: true,
                    ..LockSettings::default()
                },
            },
        )
        .unwrap();
        assert_eq!(
            room.check_chat("a", Some("t")).unwrap_err().code,
            ErrorCode::Forbidden
        );
        // Deleting a message takes it from the history and tells everyone.
        let out = moderate(
            &mut room,
            "t",
            Moderation::DeleteMessage {
                message_id: "p1".into(),
            },
        )
        .unwrap();
        assert!(matches!(&out[0], Output::Unstore { message_id } if message_id == "p1"));
        assert_eq!(
            sent(&out),
            [
                (1, "chat-deleted"),
                (2, "chat-deleted"),
                (3, "chat-deleted")
            ]
        );
        assert!(room.history_for("t").iter().all(|m| m.id != "p1"));
    }

    #[test]
    fn the_waiting_room_holds_students_until_an_instructor_admits_or_denies_them() {
        let mut room = class(WaitingPolicy::Ask);
        let NotAdmitted::Waiting { position, outputs } =
            enter(&mut room, &who("c", Role::Student), 4).unwrap_err()
        else {
            panic!("c waits");
        };
        assert_eq!(position, 1);
        assert_eq!(
            sent(&outputs),
            [(1, "waiting-room")],
            "only the instructors hear of it"
        );
        let NotAdmitted::Waiting { position, .. } =
            enter(&mut room, &who("d", Role::Student), 5).unwrap_err()
        else {
            panic!("d waits");
        };
        assert_eq!(position, 2);
        // Nobody waiting is a member: no roster, no chat, no offers reach them.
        assert!(room.member("c").is_none());
        assert!(!room.conns_except(None).contains(&Conn(4)));
        assert_eq!(
            room.waiting_room()
                .waiting
                .iter()
                .map(|w| w.user_id.as_str())
                .collect::<Vec<_>>(),
            ["c", "d"]
        );
        // An instructor never waits.
        assert!(enter(&mut room, &who("t2", Role::Instructor), 6).is_ok());
        // Admitted: a join.
        let out = moderate(
            &mut room,
            "t",
            Moderation::Admit {
                target_user_id: "c".into(),
            },
        )
        .unwrap();
        assert!(
            matches!(&out[0], Output::Admitted(a) if a.conn == Conn(4) && a.joined.participant.user_id == "c" && a.joined.roster.len() == 4)
        );
        assert!(room.member("c").is_some());
        // Denied: told and closed.
        let out = moderate(
            &mut room,
            "t",
            Moderation::Deny {
                target_user_id: "d".into(),
            },
        )
        .unwrap();
        assert!(
            matches!(&out[0], Output::Send(to, Notice::Refused(r)) if to == &[Conn(5)] && r.code == ErrorCode::AdmissionDenied)
        );
        assert!(matches!(out[1], Output::Close(Conn(5))));
        assert!(room.waiting.is_empty());
    }

    #[test]
    fn with_no_instructor_present_the_door_stays_shut_and_the_room_stays_open_for_those_waiting() {
        let mut room = RoomState::new(VecDeque::new(), policy(WaitingPolicy::Ask));
        assert!(matches!(
            enter(&mut room, &who("early", Role::Student), 1),
            Err(NotAdmitted::Waiting { .. })
        ));
        assert!(!room.closed);
        let t = enter(&mut room, &who("t", Role::Instructor), 2).unwrap();
        assert_eq!(
            t.controls.waiting_room.unwrap().waiting.len(),
            1,
            "the instructor sees who waits"
        );
        // The waiter leaves; the room is still the instructor's.
        let (_, closed) = room.leave_waiting("early", 1).unwrap();
        assert!(!closed);
        // The roster policy lets roster students in and has others wait.
        room.settings.waiting_room = WaitingPolicy::Roster;
        let on_roster = room.join(
            Joiner {
                who: &who("r", Role::Student),
                conn: Conn(3),
                sfu_capable: true,
                claimed: false,
                on_roster: true,
            },
            at(1),
            &Limits::default(),
            policy(WaitingPolicy::Roster),
        );
        assert!(on_roster.is_ok());
        assert!(matches!(
            enter(&mut room, &who("guest", Role::Student), 4),
            Err(NotAdmitted::Waiting { .. })
        ));
        // Opening the door admits those at it.
        let out = moderate(
            &mut room,
            "t",
            Moderation::SetWaitingRoom {
                policy: WaitingPolicy::Open,
            },
        )
        .unwrap();
        assert!(
            out.iter()
                .any(|o| matches!(o, Output::Admitted(a) if a.who.user_id == "guest"))
        );
    }

    #[test]
    fn hands_queue_in_the_order_they_were_raised_and_instructors_lower_them() {
        let mut room = class(WaitingPolicy::Open);
        let raise = MediaState {
            hand_raised: Some(true),
            ..MediaState::default()
        };
        let (_, out) = room.media_state("b", &raise, at(10)).unwrap();
        assert!(sent(&out).contains(&(1, "hand-queue")));
        room.media_state("a", &raise, at(11)).unwrap();
        room.media_state("b", &raise, at(12)).unwrap(); // again: keeps its place
        let order: Vec<_> = room
            .hand_queue()
            .hands
            .into_iter()
            .map(|h| (h.user_id, h.raised_at))
            .collect();
        assert_eq!(order, [("b".to_string(), 10), ("a".to_string(), 11)]);
        assert_eq!(
            room.instructor_view("a"),
            (None, None),
            "students do not see the queue"
        );
        moderate(
            &mut room,
            "t",
            Moderation::LowerHand {
                target_user_id: "b".into(),
            },
        )
        .unwrap();
        assert!(!room.member("b").unwrap().participant.hand_raised);
        assert_eq!(room.hand_queue().hands.len(), 1);
        // A leaver's hand goes too.
        let left = room
            .leave(
                "a",
                2,
                at(20),
                &Limits::default(),
                policy(WaitingPolicy::Open),
            )
            .unwrap();
        assert!(
            left.hand_queue
                .is_some_and(|(to, q)| to == [Conn(1)] && q.hands.is_empty())
        );
        room.media_state("b", &raise, at(30)).unwrap();
        moderate(&mut room, "t", Moderation::LowerAllHands).unwrap();
        assert!(room.hand_queue().hands.is_empty());
    }

    #[test]
    fn reactions_are_a_few_emoji_at_a_limited_rate() {
        let mut room = class(WaitingPolicy::Open);
        assert_eq!(
            room.reaction("a", "💩", at(1)).unwrap_err().code,
            ErrorCode::InvalidPayload
        );
        let start = Instant::now();
        let now = Now {
            instant: start,
            unix_ms: 1,
        };
        for _ in 0..3 {
            let (to, r) = room.reaction("a", "👏", now).unwrap();
            assert_eq!((to.len(), r.emoji.as_str()), (3, "👏"));
        }
        assert_eq!(
            room.reaction("a", "👏", now).unwrap_err().code,
            ErrorCode::RateLimited
        );
        let later = Now {
            instant: start + std::time::Duration::from_millis(1_100),
            unix_ms: 2,
        };
        assert!(room.reaction("a", "👏", later).is_ok());
    }

    #[test]
    fn ending_the_class_tells_and_closes_everyone_and_the_waiting_too() {
        let mut room = class(WaitingPolicy::Ask);
        let _ = enter(&mut room, &who("c", Role::Student), 4);
        let out = moderate(&mut room, "t", Moderation::EndClass).unwrap();
        assert_eq!(
            sent(&out),
            [
                (1, "class-ended"),
                (2, "class-ended"),
                (3, "class-ended"),
                (4, "class-ended")
            ]
        );
        let closed: Vec<_> = out
            .iter()
            .filter_map(|o| match o {
                Output::Close(c) => Some(c.0),
                _ => None,
            })
            .collect();
        assert_eq!(closed, [1, 2, 3, 4]);
        assert!(matches!(out.last(), Some(Output::Ended { members: 3 })));
        assert!(room.closed && room.members.is_empty());
        assert!(matches!(
            enter(&mut room, &who("a", Role::Student), 5),
            Err(NotAdmitted::Closed)
        ));
    }
}
