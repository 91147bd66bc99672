//! Polls and quizzes in one room, without sockets or clocks: one poll open at a time, one vote
//! per user (changed until the poll closes), live results for instructors, published results
//! for everyone, a quiz's answers scored. What to store goes out as [`Output::StorePoll`] and
//! [`Output::StoreVote`], in order.

use std::collections::BTreeMap;

use classroom_wire::{
    ErrorCode, MAX_POLL_OPTIONS, MAX_POLL_TEXT_CHARS, Poll, PollAnswer, PollClosed, PollDraft,
    PollKind, PollResults, Vote,
};

use super::controls::{Notice, Output};
use super::{Handle, Now, RoomState};
use crate::error::Refusal;

/// Polls a room remembers (the oldest are forgotten; all are in SQLite).
const POLLS_KEPT: usize = 50;

/// One poll and its votes.
#[derive(Debug, Clone)]
pub(crate) struct PollRecord {
    pub(crate) poll: Poll,
    pub(crate) correct: Option<Vec<usize>>,
    /// By user id: their name, choices and typed answer.
    votes: BTreeMap<String, (String, Vec<usize>, Option<String>)>,
    pub(crate) closed: bool,
}

/// A vote as stored: one per `voter`, the user id; in an anonymous poll a digest of it (one
/// vote per user still, and no name).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StoredVote {
    pub(crate) poll_id: String,
    pub(crate) voter: String,
    pub(crate) user_name: Option<String>,
    pub(crate) choices: Vec<usize>,
    pub(crate) text: Option<String>,
    pub(crate) at: u64,
}

fn invalid(why: impl Into<String>) -> Refusal {
    Refusal::new(ErrorCode::InvalidPayload, why)
}

fn check_text(field: &str, text: &str) -> Result<(), Refusal> {
    if text.trim().is_empty() {
        return Err(invalid(format!("{field} is blank")));
    }
    if text.chars().count() > MAX_POLL_TEXT_CHARS {
        return Err(Refusal::new(
            ErrorCode::PayloadTooLarge,
            format!("{field} is longer than {MAX_POLL_TEXT_CHARS} characters"),
        ));
    }
    Ok(())
}

/// The poll a draft makes, or why it cannot be one.
pub(super) fn make_poll(
    draft: PollDraft,
    poll_id: String,
    now: Now,
) -> Result<PollRecord, Refusal> {
    check_text("question", &draft.question)?;
    let options = match draft.kind {
        PollKind::YesNo => vec!["Yes".to_owned(), "No".to_owned()],
        PollKind::Text => Vec::new(),
        PollKind::Single | PollKind::Multiple => {
            if !(2..=MAX_POLL_OPTIONS).contains(&draft.options.len()) {
                return Err(invalid(format!(
                    "a choice poll has 2 to {MAX_POLL_OPTIONS} options"
                )));
            }
            for option in &draft.options {
                check_text("an option", option)?;
            }
            draft.options
        }
    };
    if let Some(correct) = &draft.correct {
        let fits = !correct.is_empty()
            && correct.iter().all(|&i| i < options.len())
            && (draft.kind == PollKind::Multiple || correct.len() == 1);
        if draft.kind == PollKind::Text || !fits {
            return Err(invalid(
                "a quiz's correct answers are options of a choice poll (one, unless multiple)",
            ));
        }
    }
    Ok(PollRecord {
        poll: Poll {
            poll_id,
            question: draft.question,
            kind: draft.kind,
            options,
            anonymous: draft.anonymous,
            quiz: draft.correct.is_some(),
            opened_at: now.unix_ms,
        },
        correct: draft.correct.map(|mut c| {
            c.sort_unstable();
            c.dedup();
            c
        }),
        votes: BTreeMap::new(),
        closed: false,
    })
}

/// Who voted in an anonymous poll, as stored: a digest of the poll and the user.
fn anonymous_voter(poll_id: &str, user_id: &str) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(format!("{poll_id}\n{user_id}").as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

impl PollRecord {
    /// The results: `named` with each answer's author (instructors of a named poll).
    pub(crate) fn results(&self, named: bool) -> PollResults {
        let mut totals = vec![0u32; self.poll.options.len()];
        let mut answers = Vec::new();
        let mut texts = Vec::new();
        for (user_id, (user_name, choices, text)) in &self.votes {
            for &c in choices {
                totals[c] += 1;
            }
            if named && !self.poll.anonymous {
                answers.push(PollAnswer {
                    user_id: user_id.clone(),
                    user_name: user_name.clone(),
                    choices: choices.clone(),
                    text: text.clone(),
                    correct: self.correct.as_ref().map(|c| c == choices),
                });
            } else if let Some(text) = text {
                texts.push(text.clone());
            }
        }
        PollResults {
            poll_id: self.poll.poll_id.clone(),
            question: self.poll.question.clone(),
            options: self.poll.options.clone(),
            totals,
            voters: self.votes.len() as u32,
            answers,
            texts,
            correct: self.correct.clone(),
            closed: self.closed,
        }
    }
}

impl<C: Handle> RoomState<C> {
    /// The poll that takes votes now, as students see it.
    pub(crate) fn open_poll(&self) -> Option<Poll> {
        self.polls
            .last()
            .filter(|p| !p.closed)
            .map(|p| p.poll.clone())
    }

    fn poll_mut(&mut self, poll_id: &str) -> Result<&mut PollRecord, Refusal> {
        self.polls
            .iter_mut()
            .find(|p| p.poll.poll_id == poll_id)
            .ok_or_else(|| {
                Refusal::new(
                    ErrorCode::TargetNotFound,
                    format!("no poll {poll_id:?} in this class"),
                )
            })
    }

    /// Opens the poll (closing the one open before).
    pub(super) fn start_poll(&mut self, record: PollRecord, out: &mut Vec<Output<C>>) {
        if let Some(open) = self
            .polls
            .last()
            .filter(|p| !p.closed)
            .map(|p| p.poll.poll_id.clone())
        {
            self.end_poll(&open, out);
        }
        let poll = record.poll.clone();
        out.push(Output::StorePoll(Box::new(record.clone())));
        out.push(Output::Send(
            self.conns_except(None),
            Notice::PollOpened(poll),
        ));
        out.push(Output::Send(
            self.instructors(),
            Notice::PollResults(record.results(true)),
        ));
        self.polls.push(record);
        if self.polls.len() > POLLS_KEPT {
            self.polls.remove(0);
        }
    }

    pub(super) fn end_poll(&mut self, poll_id: &str, out: &mut Vec<Output<C>>) {
        let Ok(record) = self.poll_mut(poll_id) else {
            return;
        };
        record.closed = true;
        let results = record.results(true);
        out.push(Output::StorePollClosed {
            poll_id: poll_id.to_owned(),
        });
        out.push(Output::Send(
            self.conns_except(None),
            Notice::PollClosed(PollClosed {
                poll_id: poll_id.to_owned(),
            }),
        ));
        out.push(Output::Send(
            self.instructors(),
            Notice::PollResults(results),
        ));
    }

    pub(super) fn publish_poll(
        &mut self,
        poll_id: &str,
        out: &mut Vec<Output<C>>,
    ) -> Result<(), Refusal> {
        let record = self.poll_mut(poll_id)?;
        let public = record.results(false);
        let named = record.results(true);
        let instructors = self.instructors();
        let ids: Vec<C::Id> = instructors.iter().map(|c| c.id()).collect();
        let students: Vec<C> = self
            .conns_except(None)
            .into_iter()
            .filter(|c| !ids.contains(&c.id()))
            .collect();
        out.push(Output::Send(students, Notice::PollResults(public)));
        out.push(Output::Send(instructors, Notice::PollResults(named)));
        Ok(())
    }

    /// A member's vote: one per user, replaced by their next until the poll closes.
    pub(crate) fn vote(
        &mut self,
        user_id: &str,
        vote: Vote,
        now: Now,
    ) -> Result<Vec<Output<C>>, Refusal> {
        let user_name = self
            .member(user_id)
            .ok_or_else(super::controls::not_joined)?
            .participant
            .user_name
            .clone();
        let record = self.poll_mut(&vote.poll_id)?;
        if record.closed {
            return Err(invalid("the poll is closed"));
        }
        let options = record.poll.options.len();
        let mut choices = vote.choices;
        choices.sort_unstable();
        choices.dedup();
        match record.poll.kind {
            PollKind::Text => {
                let text = vote.text.as_deref().unwrap_or("");
                check_text("text", text)?;
                if !choices.is_empty() {
                    return Err(invalid("a typed poll takes text, not choices"));
                }
            }
            kind => {
                if vote.text.is_some() {
                    return Err(invalid("a choice poll takes choices, not text"));
                }
                if choices.is_empty() || choices.iter().any(|&c| c >= options) {
                    return Err(invalid(format!(
                        "choices are option numbers below {options}"
                    )));
                }
                if kind != PollKind::Multiple && choices.len() != 1 {
                    return Err(invalid("this poll takes one choice"));
                }
            }
        }
        let text = vote.text.filter(|_| record.poll.kind == PollKind::Text);
        let anonymous = record.poll.anonymous;
        let stored = StoredVote {
            poll_id: record.poll.poll_id.clone(),
            voter: if anonymous {
                anonymous_voter(&record.poll.poll_id, user_id)
            } else {
                user_id.to_owned()
            },
            user_name: (!anonymous).then(|| user_name.clone()),
            choices: choices.clone(),
            text: text.clone(),
            at: now.unix_ms,
        };
        record
            .votes
            .insert(user_id.to_owned(), (user_name, choices, text));
        let results = record.results(true);
        Ok(vec![
            Output::StoreVote(Box::new(stored)),
            Output::Send(self.instructors(), Notice::PollResults(results)),
        ])
    }
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;

    use classroom_wire::Moderation;

    use super::super::test_support::{Conn, at, join, policy};
    use super::*;
    use crate::config::Limits;

    /// The instructor `t` (conn 0) and `n` students `s1`… (conns 1…).
    fn class(n: u32) -> RoomState<Conn> {
        let mut room = RoomState::new(VecDeque::new(), policy());
        join(&mut room, "t", 0, true);
        for i in 1..=n {
            join(&mut room, &format!("s{i}"), i, false);
        }
        room
    }

    fn open(room: &mut RoomState<Conn>, draft: PollDraft) -> String {
        room.moderate(
            "t",
            Moderation::OpenPoll { poll: draft },
            at(2),
            &Limits::default(),
            policy(),
        )
        .unwrap();
        room.open_poll().unwrap().poll_id
    }

    fn draft(kind: PollKind, options: &[&str]) -> PollDraft {
        PollDraft {
            question: "Which?".into(),
            kind,
            options: options.iter().map(|o| o.to_string()).collect(),
            anonymous: false,
            correct: None,
        }
    }

    fn vote(poll_id: &str, choices: &[usize]) -> Vote {
        Vote {
            poll_id: poll_id.into(),
            choices: choices.to_vec(),
            text: None,
        }
    }

    fn results(room: &RoomState<Conn>) -> PollResults {
        room.polls.last().unwrap().results(true)
    }

    #[test]
    fn one_vote_per_user_changeable_until_closed_and_the_totals_add_up() {
        let mut room = class(50);
        let id = open(&mut room, draft(PollKind::Single, &["a", "b", "c"]));
        for i in 1..=50 {
            room.vote(&format!("s{i}"), vote(&id, &[i as usize % 3]), at(3))
                .unwrap();
        }
        // s1 changes their mind; s2 votes again the same.
        room.vote("s1", vote(&id, &[0]), at(4)).unwrap();
        room.vote("s2", vote(&id, &[2]), at(4)).unwrap();
        let r = results(&room);
        assert_eq!(r.voters, 50);
        assert_eq!(r.totals.iter().sum::<u32>(), 50);
        // i % 3 over 1..=50: 16 zeros, 17 ones, 17 twos; s1 moved from 1 to 0.
        assert_eq!(r.totals, [17, 16, 17]);
        room.moderate(
            "t",
            Moderation::ClosePoll {
                poll_id: id.clone(),
            },
            at(5),
            &Limits::default(),
            policy(),
        )
        .unwrap();
        assert_eq!(
            room.vote("s3", vote(&id, &[1]), at(6)).unwrap_err().code,
            ErrorCode::InvalidPayload
        );
        assert_eq!(results(&room).totals, [17, 16, 17]);
    }

    #[test]
    fn a_vote_must_fit_its_poll() {
        let mut room = class(1);
        let single = open(&mut room, draft(PollKind::Single, &["a", "b"]));
        for bad in [vec![], vec![2], vec![0, 1]] {
            assert_eq!(
                room.vote("s1", vote(&single, &bad), at(3))
                    .unwrap_err()
                    .code,
                ErrorCode::InvalidPayload
            );
        }
        assert_eq!(
            room.vote("s1", vote("nope", &[0]), at(3)).unwrap_err().code,
            ErrorCode::TargetNotFound
        );
        let multiple = open(&mut room, draft(PollKind::Multiple, &["a", "b", "c"]));
        room.vote("s1", vote(&multiple, &[2, 0, 2]), at(3)).unwrap();
        assert_eq!(results(&room).totals, [1, 0, 1]);
        let text = open(&mut room, draft(PollKind::Text, &[]));
        let typed = Vote {
            poll_id: text.clone(),
            choices: vec![],
            text: Some("forty-two".into()),
        };
        room.vote("s1", typed, at(3)).unwrap();
        assert_eq!(results(&room).answers[0].text.as_deref(), Some("forty-two"));
        assert_eq!(
            room.vote("s1", vote(&text, &[0]), at(3)).unwrap_err().code,
            ErrorCode::InvalidPayload
        );
        // Drafts: too few options, a blank question, a quiz answer out of range.
        for bad in [
            draft(PollKind::Single, &["only"]),
            PollDraft {
                question: " ".into(),
                ..draft(PollKind::YesNo, &[])
            },
            PollDraft {
                correct: Some(vec![5]),
                ..draft(PollKind::Single, &["a", "b"])
            },
            PollDraft {
                correct: Some(vec![0]),
                ..draft(PollKind::Text, &[])
            },
        ] {
            let refused = room.moderate(
                "t",
                Moderation::OpenPoll { poll: bad },
                at(2),
                &Limits::default(),
                policy(),
            );
            assert_eq!(refused.unwrap_err().code, ErrorCode::InvalidPayload);
        }
        // Only instructors open polls.
        let refused = room.moderate(
            "s1",
            Moderation::OpenPoll {
                poll: draft(PollKind::YesNo, &[]),
            },
            at(2),
            &Limits::default(),
            policy(),
        );
        assert_eq!(refused.unwrap_err().code, ErrorCode::Forbidden);
    }

    #[test]
    fn anonymous_results_name_nobody_and_store_no_user() {
        let mut room = class(2);
        let id = open(
            &mut room,
            PollDraft {
                anonymous: true,
                ..draft(PollKind::YesNo, &[])
            },
        );
        let out = room.vote("s1", vote(&id, &[0]), at(3)).unwrap();
        let Output::StoreVote(stored) = &out[0] else {
            panic!("stored first")
        };
        assert_eq!(stored.user_name, None);
        assert_ne!(stored.voter, "s1");
        assert_eq!(stored.voter.len(), 64);
        let r = results(&room);
        assert!(r.answers.is_empty());
        assert_eq!((r.totals.clone(), r.voters), (vec![1, 0], 1));
    }

    #[test]
    fn a_quiz_scores_each_answer_and_published_results_go_to_everyone_without_names() {
        let mut room = class(2);
        let id = open(
            &mut room,
            PollDraft {
                correct: Some(vec![1]),
                ..draft(PollKind::Single, &["3", "4"])
            },
        );
        assert!(room.open_poll().unwrap().quiz);
        room.vote("s1", vote(&id, &[1]), at(3)).unwrap();
        room.vote("s2", vote(&id, &[0]), at(3)).unwrap();
        let scored: Vec<_> = results(&room)
            .answers
            .iter()
            .map(|a| (a.user_id.clone(), a.correct))
            .collect();
        assert_eq!(
            scored,
            [
                ("s1".to_string(), Some(true)),
                ("s2".to_string(), Some(false))
            ]
        );
        let out = room
            .moderate(
                "t",
                Moderation::PublishResults { poll_id: id },
                at(4),
                &Limits::default(),
                policy(),
            )
            .unwrap();
        let Output::Send(students, Notice::PollResults(public)) = &out[0] else {
            panic!("students first")
        };
        assert_eq!(students, &[Conn(1), Conn(2)]);
        assert!(public.answers.is_empty());
        assert_eq!(public.totals, [1, 1]);
    }

    #[test]
    fn a_new_poll_closes_the_open_one_and_joiners_see_the_open_poll() {
        let mut room = class(1);
        let first = open(&mut room, draft(PollKind::YesNo, &[]));
        let second = open(&mut room, draft(PollKind::YesNo, &[]));
        assert!(
            room.polls
                .iter()
                .find(|p| p.poll.poll_id == first)
                .unwrap()
                .closed
        );
        assert_eq!(room.open_poll().unwrap().poll_id, second);
    }
}
