//! An in-memory signaling relay: the server's room rules as the session relies on them
//! (join, roster, targeted relay stamped with the sender, chat to all, leave, a dropped
//! socket), without sockets. Each participant gets a port (the engine's `SignalingPort`) and
//! the channel of inputs its engine reads.

use std::collections::BTreeMap;
use std::sync::Arc;

use classroom_wire::{
    AnswerFromPeer, ChatKind, ChatMessage, ErrorBody, ErrorCode, IceCandidateFromPeer, LeaveReason,
    OfferFromPeer, PROTOCOL_VERSION, Participant, SessionJoined, UserLeft, VideoRequestFromPeer,
};
use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use parking_lot::Mutex;
use tokio::sync::mpsc;

use crate::call::drivers::SignalingPort;
use crate::session::{Input, Outgoing};
use crate::signaling::SignalingError;

struct Socket {
    inputs: mpsc::UnboundedSender<Input>,
    connected: bool,
}

#[derive(Default)]
struct Room {
    sockets: BTreeMap<String, Socket>,
    /// Those joined, by user id.
    members: BTreeMap<String, Participant>,
    chat_ids: u64,
}

impl Room {
    fn send(&self, user_id: &str, input: Input) {
        if let Some(socket) = self.sockets.get(user_id).filter(|socket| socket.connected) {
            let _ = socket.inputs.send(input);
        }
    }

    fn send_others(&self, user_id: &str, input: impl Fn() -> Input) {
        for other in self.members.keys().filter(|other| *other != user_id) {
            self.send(other, input());
        }
    }

    fn name_of(&self, user_id: &str) -> String {
        self.members
            .get(user_id)
            .map(|member| member.user_name.clone())
            .unwrap_or_default()
    }

    /// Relays to one member, stamped with the sender; tells the sender when there is none.
    fn relay(&self, from: &str, target: &str, input: Input) {
        if self.members.contains_key(target) {
            self.send(target, input);
        } else {
            self.send(
                from,
                Input::ServerError(ErrorBody {
                    code: ErrorCode::TargetNotFound,
                    message: format!("{target} is not in this session"),
                    event: None,
                }),
            );
        }
    }

    fn handle(&mut self, from: &str, outgoing: &Outgoing) {
        let name = self.name_of(from);
        match outgoing {
            Outgoing::Join(join) => {
                let me = Participant {
                    user_id: from.to_owned(),
                    user_name: join.user_name.clone().unwrap_or_default(),
                    is_instructor: join.is_instructor,
                    co_instructor: false,
                    audio_enabled: true,
                    video_enabled: true,
                    screen_sharing: false,
                    hand_raised: false,
                    joined_at: 0,
                };
                let others: Vec<Participant> = self
                    .members
                    .values()
                    .filter(|member| member.user_id != from)
                    .cloned()
                    .collect();
                self.members.insert(from.to_owned(), me.clone());
                self.send(
                    from,
                    Input::Joined(SessionJoined {
                        protocol_version: PROTOCOL_VERSION,
                        session_id: join.session_id.clone(),
                        self_: Some(me.clone()),
                        participants: others,
                        ice_servers: Vec::new(),
                        chat_history: Vec::new(),
                        topology: Default::default(),
                        offer_to: None,
                        settings: Default::default(),
                        waiting_room: None,
                        hand_queue: None,
                        poll: None,
                    }),
                );
                self.send_others(from, || Input::UserJoined(me.clone()));
            }
            Outgoing::Leave => self.leave(from, LeaveReason::Left),
            Outgoing::Offer(offer) => self.relay(
                from,
                &offer.target_user_id,
                Input::Offer(OfferFromPeer {
                    from_user_id: from.to_owned(),
                    from_user_name: name,
                    offer: offer.offer.clone(),
                }),
            ),
            Outgoing::Answer(answer) => self.relay(
                from,
                &answer.target_user_id,
                Input::Answer(AnswerFromPeer {
                    from_user_id: from.to_owned(),
                    from_user_name: name,
                    answer: answer.answer.clone(),
                }),
            ),
            Outgoing::Candidate(candidate) => self.relay(
                from,
                &candidate.target_user_id,
                Input::RemoteCandidate(IceCandidateFromPeer {
                    from_user_id: from.to_owned(),
                    from_user_name: name,
                    candidate: candidate.candidate.clone(),
                }),
            ),
            Outgoing::VideoRequest(request) => self.relay(
                from,
                &request.target_user_id,
                Input::VideoRequest(VideoRequestFromPeer {
                    from_user_id: from.to_owned(),
                    from_user_name: name,
                    max_height: request.max_height,
                }),
            ),
            // The in-memory relay is a mesh server: it has no SFU.
            Outgoing::SfuDescription(_) | Outgoing::SfuCandidate(_) => {
                tracing::debug!(%from, "SFU event to the in-memory relay: ignored");
            }
            // Nor the classroom controls: the server's room rules are tested on their own.
            Outgoing::Moderate(_) | Outgoing::Reaction(_) | Outgoing::Vote(_) => {
                tracing::debug!(%from, "classroom control to the in-memory relay: ignored");
            }
            Outgoing::MediaState(state) => {
                let Some(member) = self.members.get_mut(from) else {
                    return;
                };
                member.audio_enabled = state.audio_enabled.unwrap_or(member.audio_enabled);
                member.video_enabled = state.video_enabled.unwrap_or(member.video_enabled);
                member.screen_sharing = state.screen_sharing.unwrap_or(member.screen_sharing);
                member.hand_raised = state.hand_raised.unwrap_or(member.hand_raised);
                let updated = member.clone();
                self.send_others(from, || Input::ParticipantUpdated(updated.clone()));
            }
            Outgoing::Chat(chat) => {
                if !self.members.contains_key(from) {
                    return;
                }
                self.chat_ids += 1;
                let message = ChatMessage {
                    id: format!("m{}", self.chat_ids),
                    user_id: from.to_owned(),
                    user_name: name,
                    message: chat.message.clone(),
                    timestamp: 0,
                    kind: ChatKind::User,
                    to_user_id: None,
                    to_user_name: None,
                };
                for member in self.members.keys() {
                    self.send(member, Input::Chat(message.clone()));
                }
            }
        }
    }

    fn leave(&mut self, user_id: &str, reason: LeaveReason) {
        if let Some(member) = self.members.remove(user_id) {
            self.send_others(user_id, || {
                Input::UserLeft(UserLeft {
                    user_id: member.user_id.clone(),
                    user_name: member.user_name.clone(),
                    reason,
                })
            });
        }
    }
}

/// The relay. Cloning shares it.
#[derive(Clone, Default)]
pub(crate) struct Relay {
    room: Arc<Mutex<Room>>,
}

impl Relay {
    /// A participant's socket: connected at once (its engine gets `SignalingConnected`).
    pub(crate) fn connect(&self, user_id: &str) -> (RelayPort, mpsc::UnboundedReceiver<Input>) {
        let (inputs, inputs_rx) = mpsc::unbounded_channel();
        let _ = inputs.send(Input::SignalingConnected);
        self.room.lock().sockets.insert(
            user_id.to_owned(),
            Socket {
                inputs,
                connected: true,
            },
        );
        let port = RelayPort {
            relay: self.clone(),
            user_id: user_id.to_owned(),
        };
        (port, inputs_rx)
    }

    /// The socket drops (a network fault, a server restart): the others see the participant
    /// leave with reason `disconnected`.
    pub(crate) fn drop_socket(&self, user_id: &str) {
        let mut room = self.room.lock();
        if let Some(socket) = room.sockets.get_mut(user_id) {
            let _ = socket.inputs.send(Input::SignalingDisconnected);
            socket.connected = false;
        }
        room.leave(user_id, LeaveReason::Disconnected);
    }

    /// The dropped socket is back (the client reconnected by itself).
    pub(crate) fn reconnect(&self, user_id: &str) {
        if let Some(socket) = self.room.lock().sockets.get_mut(user_id) {
            socket.connected = true;
            let _ = socket.inputs.send(Input::SignalingConnected);
        }
    }

    pub(crate) fn members(&self) -> Vec<String> {
        self.room.lock().members.keys().cloned().collect()
    }
}

/// One participant's end of the relay.
pub(crate) struct RelayPort {
    relay: Relay,
    user_id: String,
}

impl SignalingPort for RelayPort {
    fn emit<'a>(&'a self, outgoing: &'a Outgoing) -> BoxFuture<'a, Result<(), SignalingError>> {
        let mut room = self.relay.room.lock();
        let result = if room
            .sockets
            .get(&self.user_id)
            .is_some_and(|socket| socket.connected)
        {
            room.handle(&self.user_id, outgoing);
            Ok(())
        } else {
            let event = crate::signaling::encode(outgoing)
                .map(|(event, _)| event)
                .unwrap_or("message");
            Err(SignalingError::NotConnected { event })
        };
        async move { result }.boxed()
    }

    fn disconnect(&self) -> BoxFuture<'_, ()> {
        let mut room = self.relay.room.lock();
        room.leave(&self.user_id, LeaveReason::Disconnected);
        room.sockets.remove(&self.user_id);
        async {}.boxed()
    }
}
