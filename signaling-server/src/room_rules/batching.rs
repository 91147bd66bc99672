//! Participant updates told in batches.
//!
//! One change in a quiet class goes out at once, as `participant-updated`, as it always did.
//! The changes that follow it within [`BATCH_WINDOW`] wait, and go out together at the
//! window's end as one `participants-updated` to every member whose client takes batches
//! (`capabilities: ["participants-updated"]`), each participant as it is then. In a class of
//! 200 where every hand goes up in the same instant, that is a few events per member instead
//! of 199 each (40,000 in all), and the instructors' hand queue, told at once, no longer waits
//! behind them.
//!
//! Never batched:
//! - a client that did not announce the capability (the browser version's page): it gets
//!   every change as `participant-updated`, at once, as before;
//! - a member whose own participant someone else changed (an instructor lowered their hand,
//!   made them a co-instructor): they are told at once, so a client can ignore its own entry
//!   in a batch.

use std::time::{Duration, Instant};

use classroom_wire::{Participant, ParticipantsUpdated};

use super::{Handle, Notice, Output, RoomState};

/// How long changes after one that went out at once wait to be told together.
pub(crate) const BATCH_WINDOW: Duration = Duration::from_millis(20);

/// The changes waiting for the next batch.
#[derive(Debug, Default)]
pub(super) struct UpdateBatch {
    /// Users whose participant changed since the last update went out, in the order of
    /// their first change, once each.
    pending: Vec<String>,
    /// Until then a change waits for the batch; after it, a change goes out at once.
    window_until: Option<Instant>,
    /// The driver was asked to flush (`Output::FlushUpdatesAt`) and has not yet.
    flush_asked: bool,
}

impl<C: Handle> RoomState<C> {
    /// Rewrites the participant updates among what the room decided (`outputs`, in order):
    /// what is told at once stays in place, the rest waits for the batch, and the driver is
    /// asked to flush it (`Output::FlushUpdatesAt`) once per window. The driver passes every
    /// decision through here before carrying it out.
    pub(crate) fn batch_updates(
        &mut self,
        outputs: Vec<Output<C>>,
        now: Instant,
    ) -> Vec<Output<C>> {
        if !outputs.iter().any(is_update) {
            return outputs;
        }
        let unbatched = self.unbatched();
        let mut out = Vec::with_capacity(outputs.len() + 1);
        // Where the updates were, for one told at once; the users they were about; the
        // batched recipients of the last (when it was about one user only, they are told
        // `participant-updated`).
        let mut first_at = None;
        let mut changed: Vec<String> = Vec::new();
        let mut last_to: Vec<C> = Vec::new();
        for output in outputs {
            let (to, p) = match output {
                Output::Send(to, Notice::ParticipantUpdated(p)) => (to, p),
                other => {
                    out.push(other);
                    continue;
                }
            };
            let own = self.member(&p.user_id).map(|m| m.conn.id());
            let (at_once, batched): (Vec<C>, Vec<C>) = to
                .into_iter()
                .partition(|c| unbatched.contains(&c.id()) || Some(c.id()) == own);
            if !at_once.is_empty() {
                out.push(Output::Send(at_once, Notice::ParticipantUpdated(p.clone())));
            }
            if batched.is_empty() {
                continue;
            }
            first_at.get_or_insert(out.len());
            if !changed.contains(&p.user_id) {
                changed.push(p.user_id);
            }
            last_to = batched;
        }
        let Some(first_at) = first_at else {
            return out;
        };

        let window_open =
            self.batch.flush_asked || self.batch.window_until.is_some_and(|t| now < t);
        if window_open {
            for user in changed {
                if !self.batch.pending.contains(&user) {
                    self.batch.pending.push(user);
                }
            }
            if !self.batch.flush_asked {
                self.batch.flush_asked = true;
                let at = self.batch.window_until.unwrap_or(now);
                out.push(Output::FlushUpdatesAt(at));
            }
            return out;
        }

        let mut participants = self.current(&changed);
        if participants.is_empty() {
            return out;
        }
        self.batch.window_until = Some(now + BATCH_WINDOW);
        let told = if participants.len() == 1 {
            let p = participants.remove(0);
            Output::Send(last_to, Notice::ParticipantUpdated(p))
        } else {
            Output::Send(
                self.batched_members(&unbatched),
                Notice::ParticipantsUpdated(ParticipantsUpdated { participants }),
            )
        };
        out.insert(first_at, told);
        out
    }

    /// The batch, when its window has ended (`Output::FlushUpdatesAt`): every waiting change,
    /// each participant as it is now, to every member who takes batches. A member who left
    /// since is not in it.
    pub(crate) fn flush_updates(&mut self, now: Instant) -> Vec<Output<C>> {
        self.batch.flush_asked = false;
        let pending = std::mem::take(&mut self.batch.pending);
        let participants = self.current(&pending);
        if participants.is_empty() {
            return Vec::new();
        }
        self.batch.window_until = Some(now + BATCH_WINDOW);
        let unbatched = self.unbatched();
        let to = self.batched_members(&unbatched);
        if to.is_empty() {
            return Vec::new();
        }
        vec![Output::Send(
            to,
            Notice::ParticipantsUpdated(ParticipantsUpdated { participants }),
        )]
    }

    /// These users' participants as they are now, in this order; those who left are skipped.
    fn current(&self, users: &[String]) -> Vec<Participant> {
        users
            .iter()
            .filter_map(|u| self.member(u))
            .map(|m| m.participant.clone())
            .collect()
    }

    /// The members whose clients take no batches (usually none).
    fn unbatched(&self) -> Vec<C::Id> {
        self.members
            .iter()
            .filter(|m| !m.conn.takes_batches())
            .map(|m| m.conn.id())
            .collect()
    }

    fn batched_members(&self, unbatched: &[C::Id]) -> Vec<C> {
        self.members
            .iter()
            .filter(|m| !unbatched.contains(&m.conn.id()))
            .map(|m| m.conn.clone())
            .collect()
    }
}

fn is_update<C>(output: &Output<C>) -> bool {
    matches!(output, Output::Send(_, Notice::ParticipantUpdated(_)))
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;

    use classroom_wire::{MediaState, Moderation};

    use super::super::RoomState;
    use super::super::test_support::{Conn, at, join, policy};
    use super::*;
    use crate::config::Limits;

    /// What each connection is told, in order: (connection, event, the users it is about).
    fn told(out: &[Output<Conn>]) -> Vec<(u32, &'static str, Vec<String>)> {
        let mut all = Vec::new();
        for o in out {
            if let Output::Send(to, notice) = o {
                let (event, users) = match notice {
                    Notice::ParticipantUpdated(p) => {
                        ("participant-updated", vec![p.user_id.clone()])
                    }
                    Notice::ParticipantsUpdated(b) => (
                        "participants-updated",
                        b.participants.iter().map(|p| p.user_id.clone()).collect(),
                    ),
                    Notice::HandQueue(_) => ("hand-queue", Vec::new()),
                    Notice::Moderated(_) => ("moderated", Vec::new()),
                    _ => ("other", Vec::new()),
                };
                for c in to {
                    all.push((c.0, event, users.clone()));
                }
            }
        }
        all
    }

    fn raise(room: &mut RoomState<Conn>, user: &str, now: Instant) -> Vec<Output<Conn>> {
        let m = MediaState {
            hand_raised: Some(true),
            ..MediaState::default()
        };
        let (_, out) = room.media_state(user, &m, at_instant(now)).unwrap();
        room.batch_updates(out, now)
    }

    fn at_instant(instant: Instant) -> super::super::Now {
        super::super::Now {
            instant,
            ..at(1_000)
        }
    }

    /// A class of an instructor (connection 1) and students 2..=n.
    fn class(n: u32) -> RoomState<Conn> {
        let mut room = RoomState::new(VecDeque::new(), policy());
        join(&mut room, "t", 1, true);
        for i in 2..=n {
            join(&mut room, &format!("s{i}"), i, false);
        }
        room
    }

    #[test]
    fn a_change_in_a_quiet_class_goes_out_at_once_and_the_next_ones_wait_for_the_batch() {
        let t0 = Instant::now();
        let mut room = class(4);
        let out = raise(&mut room, "s2", t0);
        // The instructors' queue first, then everyone else told s2's update at once.
        assert_eq!(
            told(&out),
            vec![
                (1, "hand-queue", vec![]),
                (1, "participant-updated", vec!["s2".into()]),
                (3, "participant-updated", vec!["s2".into()]),
                (4, "participant-updated", vec!["s2".into()]),
            ]
        );
        assert!(!out.iter().any(|o| matches!(o, Output::FlushUpdatesAt(_))));

        // Two more within the window: the hand queue at once each time, the updates wait;
        // the driver is asked once to flush at the window's end.
        let out = raise(&mut room, "s3", t0 + Duration::from_millis(5));
        assert_eq!(told(&out), vec![(1, "hand-queue", vec![])]);
        let flush: Vec<_> = out
            .iter()
            .filter_map(|o| match o {
                Output::FlushUpdatesAt(at) => Some(*at),
                _ => None,
            })
            .collect();
        assert_eq!(flush, vec![t0 + BATCH_WINDOW]);
        let out = raise(&mut room, "s4", t0 + Duration::from_millis(6));
        assert_eq!(told(&out), vec![(1, "hand-queue", vec![])]);

        // The batch: both, to everyone (each ignores its own entry).
        let out = room.flush_updates(t0 + BATCH_WINDOW);
        let batch = vec!["s3".to_string(), "s4".to_string()];
        assert_eq!(
            told(&out),
            (1..=4)
                .map(|c| (c, "participants-updated", batch.clone()))
                .collect::<Vec<_>>()
        );
        // An empty flush tells nothing.
        assert!(room.flush_updates(t0 + BATCH_WINDOW * 2).is_empty());
        // Long after, a change goes out at once again.
        let out = raise(&mut room, "s2", t0 + BATCH_WINDOW * 5);
        assert!(told(&out).contains(&(3, "participant-updated", vec!["s2".into()])));
    }

    #[test]
    fn a_batch_holds_each_participant_once_as_they_are_when_it_goes_out_and_not_those_who_left() {
        let t0 = Instant::now();
        let mut room = class(4);
        raise(&mut room, "s2", t0);
        raise(&mut room, "s3", t0 + Duration::from_millis(1));
        let lower = MediaState {
            hand_raised: Some(false),
            ..MediaState::default()
        };
        let (_, out) = room
            .media_state("s3", &lower, at_instant(t0 + Duration::from_millis(2)))
            .unwrap();
        room.batch_updates(out, t0 + Duration::from_millis(2));
        raise(&mut room, "s4", t0 + Duration::from_millis(3));
        room.leave("s4", 4, at(1_000), &Limits::default(), policy());
        let out = room.flush_updates(t0 + BATCH_WINDOW);
        let Some(Output::Send(_, Notice::ParticipantsUpdated(b))) = out.first() else {
            panic!("no batch: {out:?}");
        };
        assert_eq!(b.participants.len(), 1);
        assert_eq!(b.participants[0].user_id, "s3");
        assert!(!b.participants[0].hand_raised);
    }

    #[test]
    fn mute_all_is_one_batch_and_a_member_changed_by_someone_else_is_told_at_once() {
        let t0 = Instant::now();
        let mut room = class(4);
        let out = room
            .moderate(
                "t",
                Moderation::MuteAll,
                at_instant(t0),
                &Limits::default(),
                policy(),
            )
            .unwrap();
        let out = room.batch_updates(out, t0);
        let seen = told(&out);
        // Each student is told `moderated`; then one batch of the three to everyone.
        let batch = vec!["s2".to_string(), "s3".to_string(), "s4".to_string()];
        for c in 2..=4 {
            assert!(seen.contains(&(c, "moderated", vec![])));
        }
        for c in 1..=4 {
            assert!(
                seen.contains(&(c, "participants-updated", batch.clone())),
                "{seen:?}"
            );
        }
        assert_eq!(
            seen.iter()
                .filter(|t| t.1 == "participants-updated")
                .count(),
            4
        );

        // Within the window an instructor lowers s2's hand: s2 is told at once, the others
        // wait for the batch.
        raise(&mut room, "s2", t0 + Duration::from_millis(1));
        let out = room
            .moderate(
                "t",
                Moderation::LowerHand {
                    target_user_id: "s2".into(),
                },
                at_instant(t0 + Duration::from_millis(2)),
                &Limits::default(),
                policy(),
            )
            .unwrap();
        let out = room.batch_updates(out, t0 + Duration::from_millis(2));
        let seen = told(&out);
        assert!(
            seen.contains(&(2, "participant-updated", vec!["s2".into()])),
            "{seen:?}"
        );
        assert!(
            !seen
                .iter()
                .any(|t| t.0 != 2 && t.1.starts_with("participant"))
        );
    }

    #[test]
    fn a_client_that_takes_no_batches_is_told_every_change_at_once() {
        let t0 = Instant::now();
        let mut room = class(3);
        // The browser version's page (a connection the tests mark as taking no batches).
        join(&mut room, "old", Conn::UNBATCHED, false);
        raise(&mut room, "s2", t0);
        let out = raise(&mut room, "s3", t0 + Duration::from_millis(1));
        assert!(told(&out).contains(&(Conn::UNBATCHED, "participant-updated", vec!["s3".into()])));
        let out = room.flush_updates(t0 + BATCH_WINDOW);
        let seen = told(&out);
        assert!(!seen.iter().any(|t| t.0 == Conn::UNBATCHED), "{seen:?}");
        assert!(seen.contains(&(2, "participants-updated", vec!["s3".into()])));
    }
}
