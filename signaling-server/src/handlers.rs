//! The Socket.IO events of `docs/protocol.md`: handshake, join/leave, relay, media state, chat.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use classroom_wire::{
    Ack, AnswerFromPeer, AnswerToPeer, ChatAck, ChatKind, ChatMessage, ChatSend, Empty, ErrorCode,
    IceCandidateFromPeer, IceCandidateToPeer, JoinSession, JoinWaiting, LeaveReason, MediaState,
    MediaStateAck, Moderation, OfferFromPeer, OfferToPeer, PROTOCOL_VERSION, Participant,
    ReactionSend, Role, SdpKind, SessionDescription, SessionJoined, SfuCandidate, SfuDescription,
    Topology, UserLeft, VideoRequestFromPeer, VideoRequestToPeer, Vote, capability, event,
};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use socketioxide::adapter::LocalAdapter;
use socketioxide::extract::{AckSender, Event, SocketRef, TryData};
use socketioxide::handler::ConnectHandler;
use socketioxide::handler::FromMessageParts;
use socketioxide::socket::{DisconnectReason, Sid};
use socketioxide::{ParserError, SocketIo};
use tokio::sync::Notify;

use crate::admission::Slot;
use crate::auth::{HandshakeIdentity, Identity, identity_for_join, turn_credentials};
use crate::error::Refusal;
use crate::limits::{RateDecision, RateKey, SharedRate, check_text};
use crate::order::{EventQueue, FLOOD_REFUSALS, MAX_WAITING, Place, Refused, Ticket, Turn};
use crate::room_rules::{self, JoinKind, Left, NotAdmitted, Notice, Now, Output, not_joined};
use crate::rooms::{Room, emit_to_all};
use crate::sfu::{self, PeerId, Signal};
use crate::state::AppState;

/// Per-socket state, kept in the socket's extensions.
pub struct Connection {
    /// The server, for answering an event refused on arrival ([`Arrival`]).
    state: Arc<AppState>,
    /// This connection's place in the server's count (freed with the connection).
    _slot: Slot,
    handshake: HandshakeIdentity,
    joined: Mutex<Option<Joined>>,
    /// The waiting room this connection waits in, if it does.
    waiting: Mutex<Option<WaitingIn>>,
    /// The socket's events in arrival order, with the rate limit (`order.rs`).
    events: Arc<EventQueue>,
    /// Notified once, when the socket disconnected (ends the membership watch).
    gone: Notify,
    /// Its last `join-session` announced `participants-updated`: the room tells it
    /// participant updates in batches (`room_rules/batching.rs`).
    takes_batches: std::sync::atomic::AtomicBool,
}

impl Connection {
    fn new(
        state: Arc<AppState>,
        slot: Slot,
        handshake: HandshakeIdentity,
        shared: [Option<SharedRate>; 2],
    ) -> Self {
        let limits = &state.config.limits;
        let events = EventQueue::new(
            limits.events_per_second,
            limits.event_burst,
            Instant::now(),
            shared,
        );
        Connection {
            state,
            _slot: slot,
            handshake,
            joined: Mutex::new(None),
            waiting: Mutex::new(None),
            events,
            gone: Notify::new(),
            takes_batches: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// Whether its client takes participant updates in batches.
    pub(crate) fn takes_batches(&self) -> bool {
        self.takes_batches
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    pub(crate) fn handshake(&self) -> &HandshakeIdentity {
        &self.handshake
    }

    /// The session this connection is in, if any.
    pub(crate) fn joined_session(&self) -> Option<Arc<str>> {
        self.joined
            .lock()
            .as_ref()
            .map(|joined| joined.room.id.clone())
    }

    /// The session this connection is in or waits to be let into, and as whom.
    fn place(&self) -> Option<(Arc<str>, Arc<str>)> {
        if let Some(joined) = &*self.joined.lock() {
            return Some((joined.room.id.clone(), joined.user_id.clone()));
        }
        self.waiting
            .lock()
            .as_ref()
            .map(|w| (w.room.id.clone(), w.user_id.clone()))
    }

    /// The session this connection is in, or why it is in none (it waits to be admitted, or
    /// did not join).
    fn member(&self) -> Result<Joined, Refusal> {
        if let Some(joined) = self.joined.lock().clone() {
            return Ok(joined);
        }
        Err(match &*self.waiting.lock() {
            Some(_) => Refusal::new(
                ErrorCode::Waiting,
                "you are in the waiting room: an instructor has not let you in yet",
            ),
            None => not_joined(),
        })
    }

    /// Resolves once the socket has disconnected (at once if it already has).
    pub(crate) async fn gone(&self) {
        self.gone.notified().await
    }
}

/// An event's place in its socket's order (`order.rs`), taken synchronously while socketioxide
/// dispatches the event, with the rate limit applied there. It must be a handler's last
/// extractor: one that failed after it would hold the turn it may have been given.
///
/// An event refused on arrival is answered here, synchronously, and the extractor fails, so
/// socketioxide spawns no task for it: a flood costs a parse and a lock per event, not a task
/// (at 360,000 events a second the tasks outran the runtime and delayed every other socket's).
pub(crate) struct Arrival {
    conn: Arc<Connection>,
    ticket: Ticket,
}

/// Why an event got no handler task. socketioxide logs an extractor's failure at error level,
/// once per event: `main.rs` turns that log off, and these are counted and answered instead.
#[derive(Debug, thiserror::Error)]
pub(crate) enum NotHandled {
    #[error("socket has no connection state")]
    NoConnectionState,
    #[error("refused on arrival (answered to the client)")]
    Refused,
    #[error("sent after a flood cut the socket off (dropped)")]
    Dropped,
}

impl FromMessageParts<LocalAdapter> for Arrival {
    type Error = NotHandled;

    fn from_message_parts(
        s: &Arc<socketioxide::socket::Socket<LocalAdapter>>,
        v: &mut socketioxide::handler::Value,
        ack_id: &Option<i64>,
    ) -> Result<Self, Self::Error> {
        let conn = s
            .extensions
            .get::<Arc<Connection>>()
            .ok_or(NotHandled::NoConnectionState)?;
        match conn.events.arrive(Instant::now()) {
            Place::Queued(ticket) => Ok(Arrival { conn, ticket }),
            Place::Refused(Refused::Closing) => {
                conn.state
                    .metrics
                    .flood_dropped
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                Err(NotHandled::Dropped)
            }
            Place::Refused(refused) => {
                let name = match Event::from_message_parts(s, v, ack_id) {
                    Ok(Event(name)) => name,
                    Err(_) => String::from("other"),
                };
                let Ok(ack) = AckSender::from_message_parts(s, v, ack_id);
                let socket = SocketRef::from(s.clone());
                refuse_on_arrival(&conn.state, &socket, &name, ack, refused);
                Err(NotHandled::Refused)
            }
        }
    }
}

#[derive(Clone)]
struct Joined {
    room: Arc<Room>,
    /// The socket that joined: a member entry with another socket belongs to a newer connection.
    sid: Sid,
    user_id: Arc<str>,
    user_name: Arc<str>,
    /// This connection's peer on the SFU, in a class that runs on it.
    sfu_peer: Option<PeerId>,
}

/// Where a connection waits to be admitted.
#[derive(Clone)]
struct WaitingIn {
    room: Arc<Room>,
    sid: Sid,
    user_id: Arc<str>,
}

#[derive(Debug, Default, Deserialize)]
struct HandshakeAuth {
    #[serde(default)]
    token: Option<String>,
    /// The server's join key, where it has one (a local class).
    #[serde(default)]
    key: Option<String>,
}

/// Registers the default namespace with its handshake check and event handlers.
///
/// The event handlers are registered by the handshake middleware, which socketioxide awaits
/// before it acknowledges the connection. The connect handler proper runs as a task of its own,
/// after the client may already have sent its first event: handlers registered there would
/// miss it (seen: a `join-session` sent right after `connect` dropped without a trace).
pub(crate) fn register(io: &SocketIo, state: Arc<AppState>) {
    let on_connect = async |s: SocketRef| {
        tracing::debug!(sid = %s.id, transport = ?s.transport_type(), "connected");
    };
    let handshake = async move |s: SocketRef, TryData(auth): TryData<HandshakeAuth>| {
        check_handshake(&state, &s, auth)
    };
    io.ns("/", on_connect.with(handshake));
}

/// The spread of the reconnect delays `server-restarting` hands out: a class's clients come
/// back over this time, not all in the same instant.
const RESTART_SPREAD_MS: u64 = 5_000;

/// Tells every connected client that the server is going away and when to come back, each
/// with a delay of its own; returns how many were told.
pub(crate) fn announce_restart(io: &SocketIo) -> usize {
    let sockets = io.sockets();
    for s in &sockets {
        let retry_after_ms =
            (uuid::Uuid::new_v4().as_u128() % u128::from(RESTART_SPREAD_MS)) as u64;
        let _ = s.emit(
            event::SERVER_RESTARTING,
            &classroom_wire::ServerRestarting { retry_after_ms },
        );
    }
    sockets.len()
}

fn check_handshake(
    state: &Arc<AppState>,
    s: &SocketRef,
    auth: Result<HandshakeAuth, ParserError>,
) -> Result<(), Refusal> {
    let refuse = |r: Refusal| {
        state
            .metrics
            .connect_refused
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        state.metrics.error(r.code);
        // Counted in the metrics; at debug, so a flood of bad handshakes does not flood the log.
        tracing::debug!(sid = %s.id, code = %r.code, reason = %r.message, "handshake refused");
        r
    };
    let auth = auth.map_err(|e| {
        refuse(Refusal::new(
            ErrorCode::Unauthorized,
            format!("auth payload is not an object: {e}"),
        ))
    })?;
    if state.closing.load(std::sync::atomic::Ordering::Acquire) {
        return Err(refuse(Refusal::new(
            ErrorCode::ServerRestarting,
            "the server is restarting; try again in a few seconds",
        )));
    }
    if let Some(expected) = &state.config.join_key
        && !auth
            .key
            .as_deref()
            .is_some_and(|key| crate::auth::same_secret(key, expected))
    {
        return Err(refuse(Refusal::new(
            ErrorCode::Unauthorized,
            "this class needs the key of its invitation link (auth: { key })",
        )));
    }
    let handshake = state
        .verifier
        .verify(auth.token.as_deref())
        .map_err(refuse)?;
    let ip = peer_ip(s);
    let slot = state.admission.admit(ip).map_err(refuse)?;
    // Rates shared with the other sockets of this address and of this signed-in user.
    let now = Instant::now();
    let by_address = ip.and_then(|ip| state.address_rates.hold(RateKey::Address(ip), now));
    let by_user = match &handshake {
        HandshakeIdentity::Token { identity, .. } => state
            .user_rates
            .hold(RateKey::User(Arc::from(identity.user_id.as_str())), now),
        HandshakeIdentity::Anonymous => None,
    };
    let conn = Arc::new(Connection::new(
        state.clone(),
        slot,
        handshake,
        [by_address, by_user],
    ));
    s.extensions.insert(conn.clone());
    register_events(state, s);
    crate::membership::watch(state.clone(), s.clone(), conn);
    Ok(())
}

fn register_events(state: &Arc<AppState>, s: &SocketRef) {
    state
        .metrics
        .sockets
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);

    let st = state.clone();
    s.on(
        event::JOIN_SESSION,
        async move |s: SocketRef,
                    TryData(d): TryData<JoinSession>,
                    ack: AckSender,
                    arrival: Arrival| {
            let (conn, ack, _turn) = admit(&st, event::JOIN_SESSION, ack, arrival).await;
            let result = match d {
                Ok(join) => join_session(&st, &s, &conn, join).await,
                Err(e) => Err(invalid(event::JOIN_SESSION, &e)),
            };
            match result {
                Ok(JoinOutcome::Joined(joined)) => {
                    let _ = ack.send(&Ack::ok(&joined));
                    if let Err(e) = s.emit(event::SESSION_JOINED, &joined) {
                        tracing::debug!(sid = %s.id, error = %e, "session-joined not delivered");
                    }
                }
                Ok(JoinOutcome::Waiting(waiting)) => {
                    let _ = ack.send(&Ack::ok(&waiting));
                    let _ = s.emit(event::WAITING_FOR_ADMISSION, &waiting);
                }
                Err(r) => refuse(&st, &s, Some(ack), event::JOIN_SESSION, r),
            }
        },
    );

    // The pre-join connection test asks which ICE servers it would get, before joining.
    let st = state.clone();
    s.on(
        event::ICE_SERVERS,
        async move |s: SocketRef, ack: AckSender, arrival: Arrival| {
            let (conn, ack, _turn) = admit(&st, event::ICE_SERVERS, ack, arrival).await;
            // A token names its user; in development mode the connection stands in.
            let user_id = match &conn.handshake {
                HandshakeIdentity::Token { identity, .. } => identity.user_id.clone(),
                HandshakeIdentity::Anonymous => format!("guest-{}", s.id),
            };
            let reply = classroom_wire::IceServersReply {
                ice_servers: ice_servers_lasting(
                    &st,
                    &user_id,
                    &conn,
                    CONNECTION_TEST_CREDENTIAL_TTL.min(st.config.turn_credential_ttl),
                ),
            };
            let _ = ack.send(&Ack::ok(&reply));
        },
    );

    let st = state.clone();
    s.on(
        event::LEAVE_SESSION,
        async move |s: SocketRef, ack: AckSender, arrival: Arrival| {
            let (conn, ack, _turn) = admit(&st, event::LEAVE_SESSION, ack, arrival).await;
            match leave(&st, &conn, LeaveReason::Left) {
                true => {
                    let _ = ack.send(&Ack::ok(Empty {}));
                }
                false => refuse(&st, &s, Some(ack), event::LEAVE_SESSION, not_joined()),
            }
        },
    );

    let st = state.clone();
    s.on(
        event::OFFER,
        async move |s: SocketRef,
                    TryData(d): TryData<OfferToPeer>,
                    ack: AckSender,
                    arrival: Arrival| {
            let (conn, ack, _turn) = admit(&st, event::OFFER, ack, arrival).await;
            relay(
                &st,
                &s,
                &conn,
                ack,
                event::OFFER,
                d,
                |from, d: OfferToPeer, limits| {
                    check_sdp("offer", &d.offer, &[SdpKind::Offer], limits.max_sdp_bytes)?;
                    Ok((
                        d.target_user_id,
                        OfferFromPeer {
                            from_user_id: from.0,
                            from_user_name: from.1,
                            offer: d.offer,
                        },
                    ))
                },
            )
        },
    );

    let st = state.clone();
    s.on(
        event::ANSWER,
        async move |s: SocketRef,
                    TryData(d): TryData<AnswerToPeer>,
                    ack: AckSender,
                    arrival: Arrival| {
            let (conn, ack, _turn) = admit(&st, event::ANSWER, ack, arrival).await;
            relay(
                &st,
                &s,
                &conn,
                ack,
                event::ANSWER,
                d,
                |from, d: AnswerToPeer, limits| {
                    check_sdp(
                        "answer",
                        &d.answer,
                        &[SdpKind::Answer, SdpKind::Pranswer],
                        limits.max_sdp_bytes,
                    )?;
                    Ok((
                        d.target_user_id,
                        AnswerFromPeer {
                            from_user_id: from.0,
                            from_user_name: from.1,
                            answer: d.answer,
                        },
                    ))
                },
            )
        },
    );

    let st = state.clone();
    s.on(
        event::ICE_CANDIDATE,
        async move |s: SocketRef,
                    TryData(d): TryData<IceCandidateToPeer>,
                    ack: AckSender,
                    arrival: Arrival| {
            let (conn, ack, _turn) = admit(&st, event::ICE_CANDIDATE, ack, arrival).await;
            relay(
                &st,
                &s,
                &conn,
                ack,
                event::ICE_CANDIDATE,
                d,
                |from, d: IceCandidateToPeer, limits| {
                    if let Some(c) = &d.candidate {
                        // Every string of the candidate counts, usernameFragment too.
                        let size = c.candidate.len()
                            + c.sdp_mid.as_ref().map_or(0, String::len)
                            + c.username_fragment.as_ref().map_or(0, String::len);
                        if size > limits.max_candidate_bytes {
                            return Err(Refusal::new(
                                ErrorCode::PayloadTooLarge,
                                format!(
                                    "candidate is larger than {} bytes",
                                    limits.max_candidate_bytes
                                ),
                            ));
                        }
                    }
                    Ok((
                        d.target_user_id,
                        IceCandidateFromPeer {
                            from_user_id: from.0,
                            from_user_name: from.1,
                            candidate: d.candidate,
                        },
                    ))
                },
            )
        },
    );

    let st = state.clone();
    s.on(
        event::VIDEO_REQUEST,
        async move |s: SocketRef,
                    TryData(d): TryData<VideoRequestToPeer>,
                    ack: AckSender,
                    arrival: Arrival| {
            let (conn, ack, _turn) = admit(&st, event::VIDEO_REQUEST, ack, arrival).await;
            let on_sfu = conn
                .joined
                .lock()
                .as_ref()
                .is_some_and(|j| j.sfu_peer.is_some());
            if on_sfu {
                // The SFU picks the layer it forwards; the publisher keeps sending them all.
                let result = d
                    .map_err(|e| invalid(event::VIDEO_REQUEST, &e))
                    .and_then(|d| {
                        if !(90..=4320).contains(&d.max_height) {
                            return Err(Refusal::new(
                                ErrorCode::InvalidPayload,
                                "maxHeight must be between 90 and 4320",
                            ));
                        }
                        to_sfu(&st, &conn, |peer| sfu::Command::WantHeight {
                            peer,
                            target_user: d.target_user_id,
                            max_height: d.max_height,
                        })
                    });
                match result {
                    Ok(()) => {
                        let _ = ack.send(&Ack::ok(Empty {}));
                    }
                    Err(r) => refuse(&st, &s, Some(ack), event::VIDEO_REQUEST, r),
                }
                return;
            }
            relay(
                &st,
                &s,
                &conn,
                ack,
                event::VIDEO_REQUEST,
                d,
                |from, d: VideoRequestToPeer, _limits| {
                    if !(90..=4320).contains(&d.max_height) {
                        return Err(Refusal::new(
                            ErrorCode::InvalidPayload,
                            "maxHeight must be between 90 and 4320",
                        ));
                    }
                    Ok((
                        d.target_user_id,
                        VideoRequestFromPeer {
                            from_user_id: from.0,
                            from_user_name: from.1,
                            max_height: d.max_height,
                        },
                    ))
                },
            )
        },
    );

    for name in [event::SFU_OFFER, event::SFU_ANSWER] {
        let st = state.clone();
        s.on(
            name,
            async move |s: SocketRef,
                        TryData(d): TryData<SfuDescription>,
                        ack: AckSender,
                        arrival: Arrival| {
                let (conn, ack, _turn) = admit(&st, name, ack, arrival).await;
                let kind = if name == event::SFU_OFFER {
                    SdpKind::Offer
                } else {
                    SdpKind::Answer
                };
                let result = d.map_err(|e| invalid(name, &e)).and_then(|d| {
                    check_sdp(
                        "description",
                        &d.description,
                        &[kind],
                        st.config.limits.max_sdp_bytes,
                    )?;
                    if d.sources.len() > MAX_SFU_SOURCES {
                        return Err(Refusal::new(
                            ErrorCode::InvalidPayload,
                            format!("at most {MAX_SFU_SOURCES} sources"),
                        ));
                    }
                    to_sfu(&st, &conn, |peer| sfu::Command::Description {
                        peer,
                        description: d,
                    })
                });
                match result {
                    Ok(()) => {
                        let _ = ack.send(&Ack::ok(Empty {}));
                    }
                    Err(r) => refuse(&st, &s, Some(ack), name, r),
                }
            },
        );
    }

    let st = state.clone();
    s.on(
        event::SFU_CANDIDATE,
        async move |s: SocketRef,
                    TryData(d): TryData<SfuCandidate>,
                    ack: AckSender,
                    arrival: Arrival| {
            let (conn, ack, _turn) = admit(&st, event::SFU_CANDIDATE, ack, arrival).await;
            let result = d
                .map_err(|e| invalid(event::SFU_CANDIDATE, &e))
                .and_then(|d| {
                    let Some(c) = d.candidate.filter(|c| !c.candidate.is_empty()) else {
                        // End of candidates: nothing to do.
                        return Ok(());
                    };
                    if c.candidate.len() > st.config.limits.max_candidate_bytes {
                        return Err(Refusal::new(
                            ErrorCode::PayloadTooLarge,
                            format!(
                                "candidate is larger than {} bytes",
                                st.config.limits.max_candidate_bytes
                            ),
                        ));
                    }
                    to_sfu(&st, &conn, |peer| sfu::Command::Candidate {
                        peer,
                        candidate: c.candidate,
                    })
                });
            match result {
                Ok(()) => {
                    let _ = ack.send(&Ack::ok(Empty {}));
                }
                Err(r) => refuse(&st, &s, Some(ack), event::SFU_CANDIDATE, r),
            }
        },
    );

    let st = state.clone();
    s.on(
        event::MEDIA_STATE,
        async move |s: SocketRef,
                    TryData(d): TryData<MediaState>,
                    ack: AckSender,
                    arrival: Arrival| {
            let (conn, ack, _turn) = admit(&st, event::MEDIA_STATE, ack, arrival).await;
            let result = d
                .map_err(|e| invalid(event::MEDIA_STATE, &e))
                .and_then(|m| update_media_state(&st, &conn, m));
            match result {
                Ok(participant) => {
                    let _ = ack.send(&Ack::ok(MediaStateAck { participant }));
                }
                Err(r) => refuse(&st, &s, Some(ack), event::MEDIA_STATE, r),
            }
        },
    );

    let st = state.clone();
    s.on(
        event::CHAT_MESSAGE,
        async move |s: SocketRef,
                    TryData(d): TryData<ChatSend>,
                    ack: AckSender,
                    arrival: Arrival| {
            let (conn, ack, _turn) = admit(&st, event::CHAT_MESSAGE, ack, arrival).await;
            let result = match d {
                Ok(c) => send_chat(&st, &conn, c).await,
                Err(e) => Err(invalid(event::CHAT_MESSAGE, &e)),
            };
            match result {
                Ok(message) => {
                    let _ = ack.send(&Ack::ok(ChatAck { message }));
                }
                Err(r) => refuse(&st, &s, Some(ack), event::CHAT_MESSAGE, r),
            }
        },
    );

    let st = state.clone();
    s.on(
        event::MODERATE,
        async move |s: SocketRef,
                    TryData(d): TryData<Moderation>,
                    ack: AckSender,
                    arrival: Arrival| {
            let (conn, ack, _turn) = admit(&st, event::MODERATE, ack, arrival).await;
            let mut ack = Some(ack);
            let result = d.map_err(|e| invalid(event::MODERATE, &e)).and_then(|m| {
                // Acknowledged before the action is carried out: ending the class closes
                // this connection too.
                moderate(&st, &conn, m, || {
                    if let Some(ack) = ack.take() {
                        let _ = ack.send(&Ack::ok(Empty {}));
                    }
                })
            });
            if let Err(r) = result {
                refuse(&st, &s, ack.take(), event::MODERATE, r);
            }
        },
    );

    let st = state.clone();
    s.on(
        event::VOTE,
        async move |s: SocketRef, TryData(d): TryData<Vote>, ack: AckSender, arrival: Arrival| {
            let (conn, ack, _turn) = admit(&st, event::VOTE, ack, arrival).await;
            let result = d
                .map_err(|e| invalid(event::VOTE, &e))
                .and_then(|v| send_vote(&st, &conn, v));
            match result {
                Ok(()) => {
                    let _ = ack.send(&Ack::ok(Empty {}));
                }
                Err(r) => refuse(&st, &s, Some(ack), event::VOTE, r),
            }
        },
    );

    let st = state.clone();
    s.on(
        event::REACTION,
        async move |s: SocketRef,
                    TryData(d): TryData<ReactionSend>,
                    ack: AckSender,
                    arrival: Arrival| {
            let (conn, ack, _turn) = admit(&st, event::REACTION, ack, arrival).await;
            let result = d
                .map_err(|e| invalid(event::REACTION, &e))
                .and_then(|r| send_reaction(&conn, r));
            match result {
                Ok(()) => {
                    let _ = ack.send(&Ack::ok(Empty {}));
                }
                Err(r) => refuse(&st, &s, Some(ack), event::REACTION, r),
            }
        },
    );

    let st = state.clone();
    s.on_fallback(
        async move |s: SocketRef, Event(name): Event, ack: AckSender, arrival: Arrival| {
            let (_conn, ack, _turn) = admit(&st, "other", ack, arrival).await;
            let r = Refusal::new(ErrorCode::UnknownEvent, format!("unknown event {name:?}"));
            refuse(&st, &s, Some(ack), &name, r);
        },
    );

    let st = state.clone();
    s.on_disconnect(async move |s: SocketRef, reason: DisconnectReason| {
        st.metrics
            .sockets
            .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
        tracing::debug!(sid = %s.id, ?reason, "disconnected");
        if let Some(conn) = s.extensions.get::<Arc<Connection>>() {
            // A stored permit: the watch ends even if it is not waiting right now.
            conn.gone.notify_one();
            // After every event that arrived before the disconnect.
            let _turn = conn.events.last().turn().await;
            leave(&st, &conn, LeaveReason::Disconnected);
        }
    });
}

/// Counts the event and waits for its turn (an event refused on arrival never gets here: its
/// [`Arrival`] answered it).
async fn admit(
    state: &AppState,
    name: &'static str,
    ack: AckSender,
    arrival: Arrival,
) -> (Arc<Connection>, AckSender, Turn) {
    state.metrics.event(name);
    // The connection the extractor looked up: no second lookup in the socket's extensions.
    let Arrival { conn, ticket } = arrival;
    // Only the ticket is awaited: the future every event's task carries stays small.
    (conn, ack, ticket.await)
}

/// Answers an event refused on arrival: its ack (if asked for) gets the error, and the `error`
/// event goes out at the socket's reporting pace, with the count of refusals.
fn refuse_on_arrival(
    state: &AppState,
    s: &SocketRef,
    name: &str,
    ack: AckSender,
    refused: Refused,
) {
    state.metrics.event(name);
    let limits = &state.config.limits;
    let (decision, why) = match refused {
        Refused::Flood => return cut_off(state, s, name, ack),
        // After the flood's notice: its socket is closing (the extractor counts these).
        Refused::Closing => return,
        Refused::Rate(decision) => (
            decision,
            format!(
                "more than {} events per second (burst {})",
                limits.events_per_second, limits.event_burst
            ),
        ),
        Refused::Backlog(decision) => (
            decision,
            format!("more than {MAX_WAITING} events waiting to be handled"),
        ),
        Refused::Shared(decision, RateKey::Address(_)) => (
            decision,
            format!(
                "more than {} events per second from your address (burst {})",
                limits.events_per_second_per_address, limits.event_burst_per_address
            ),
        ),
        Refused::Shared(decision, RateKey::User(_)) => (
            decision,
            format!(
                "more than {} events per second from your account, over all its connections (burst {})",
                limits.events_per_second_per_user, limits.event_burst_per_user
            ),
        ),
    };
    let body = |dropped: u32| {
        Refusal::new(
            ErrorCode::RateLimited,
            format!("{why}; {dropped} event(s) refused"),
        )
        .body(name)
    };
    state.metrics.error(ErrorCode::RateLimited);
    match decision {
        RateDecision::RefuseAndReport { dropped } => {
            let body = body(dropped);
            let _ = s.emit(event::ERROR, &body);
            let _ = ack.send(&Ack::<Empty>::err(body));
        }
        RateDecision::RefuseQuietly | RateDecision::Allow => {
            let _ = ack.send(&Ack::<Empty>::err(body(1)));
        }
    }
}

/// A flood (`FLOOD_REFUSALS` refusals within a second): the socket is told why, counted, and
/// disconnected a moment later; what it sends meanwhile is dropped on arrival.
fn cut_off(state: &AppState, s: &SocketRef, name: &str, ack: AckSender) {
    state.metrics.error(ErrorCode::RateLimited);
    tracing::info!(sid = %s.id, address = ?peer_ip(s), "a flood of events: disconnected");
    let body = Refusal::new(
        ErrorCode::RateLimited,
        format!(
            "more than {FLOOD_REFUSALS} events refused within a second: this connection is closed"
        ),
    )
    .body(name);
    let _ = s.emit(event::ERROR, &body);
    let _ = ack.send(&Ack::<Empty>::err(body));
    // A moment for the notice to reach a polling client (its next poll) before the session
    // ends; meanwhile whatever the socket sends is dropped on arrival.
    // The disconnect leaves the namespace; the flood's next event then finds no socket and
    // socketioxide closes the transport under it.
    let socket = s.clone();
    tokio::spawn(async move {
        tokio::time::sleep(FLOOD_NOTICE_GRACE).await;
        let sid = socket.id;
        if let Err(e) = socket.disconnect() {
            // Its send queue is full: it reads nothing, so its heartbeat goes unanswered and
            // times out; until then what it sends is dropped on arrival.
            tracing::debug!(%sid, error = %e, "flooding socket not disconnected yet");
        }
    });
}

/// The address the socket's connection came from (the server keeps it with each request).
fn peer_ip(s: &SocketRef) -> Option<std::net::IpAddr> {
    s.req_parts()
        .extensions
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|info| info.0.ip())
}

/// How long a flooding socket has to read why it is disconnected.
const FLOOD_NOTICE_GRACE: Duration = Duration::from_millis(300);

/// Sends a refusal: always as an `error` event, and as the failed ack when one was asked for.
fn refuse(state: &AppState, s: &SocketRef, ack: Option<AckSender>, name: &str, r: Refusal) {
    state.metrics.error(r.code);
    tracing::debug!(sid = %s.id, event = name, code = %r.code, reason = %r.message, "refused");
    let body = r.body(name);
    let _ = s.emit(event::ERROR, &body);
    if let Some(ack) = ack {
        let _ = ack.send(&Ack::<Empty>::err(body));
    }
}

fn invalid(name: &str, e: &ParserError) -> Refusal {
    Refusal::new(
        ErrorCode::InvalidPayload,
        format!("{name} payload does not match the protocol: {e}"),
    )
}

/// The sending m-lines one client may describe (audio, camera, screen, and room to spare).
const MAX_SFU_SOURCES: usize = 8;

fn now_ms() -> u64 {
    crate::auth::unix_now().as_millis() as u64
}

/// The time handed to the room rules.
fn now() -> Now {
    Now {
        instant: Instant::now(),
        unix_ms: now_ms(),
    }
}

/// What a `join-session` led to.
enum JoinOutcome {
    Joined(Box<SessionJoined>),
    /// The joiner waits to be admitted (`session-joined` comes once they are).
    Waiting(JoinWaiting),
}

async fn join_session(
    state: &Arc<AppState>,
    s: &SocketRef,
    conn: &Arc<Connection>,
    join: JoinSession,
) -> Result<JoinOutcome, Refusal> {
    let limits = &state.config.limits;
    check_text("sessionId", &join.session_id, limits.max_id_chars, true)?;
    if let Some(id) = &join.user_id {
        check_text("userId", id, limits.max_id_chars, false)?;
    }
    if let Some(name) = &join.user_name {
        check_text("userName", name, limits.max_name_chars, false)?;
    }
    let sfu_capable = join.can(capability::SFU);
    conn.takes_batches.store(
        join.can(capability::PARTICIPANTS_UPDATED),
        std::sync::atomic::Ordering::Relaxed,
    );
    let mut identity = identity_for_join(&conn.handshake, &join)?;
    // Development mode: the role is the client's own claim, unless the server names its
    // instructor (`--dev-instructor`); then that user is, and nobody else.
    let anonymous = matches!(conn.handshake, HandshakeIdentity::Anonymous);
    let named = state.config.dev_instructor.as_deref().filter(|_| anonymous);
    if let Some(instructor) = named {
        identity.role = if identity.user_id == instructor {
            Role::Instructor
        } else {
            Role::Student
        };
    }
    let authorized = state
        .gate
        .authorize(&conn.handshake, &identity, &join.session_id)
        .await?;
    let identity = Identity {
        role: authorized.role,
        ..identity
    };

    // A socket is in at most one session: joining another leaves the current one (or its
    // waiting room).
    if let Some((session, user)) = conn.place()
        && (*session != join.session_id || *user != identity.user_id)
    {
        leave(state, conn, LeaveReason::Left);
    }

    let history_len = limits.chat_history_len;
    loop {
        let history = if state.rooms.get(&join.session_id).is_none() {
            let store = state.store.clone();
            let session = join.session_id.clone();
            tokio::task::spawn_blocking(move || store.recent_chat(&session, history_len))
                .await
                .map_err(|e| {
                    Refusal::new(ErrorCode::Internal, format!("history lookup failed: {e}"))
                })?
                .map_err(|e| {
                    tracing::error!(error = %e, "history lookup failed");
                    Refusal::new(ErrorCode::Internal, "chat history lookup failed")
                })?
        } else {
            Vec::new()
        };
        let room =
            state
                .rooms
                .get_or_create(&join.session_id, || VecDeque::from(history), policy(state));
        let joiner = room_rules::Joiner {
            who: &identity,
            conn: s.clone(),
            sfu_capable,
            claimed: anonymous && named.is_none(),
            on_roster: authorized.on_roster,
        };
        if let Some(outcome) = enter_room(state, s, conn, &room, joiner)? {
            return Ok(outcome);
        }
        // The room closed between lookup and lock: its last member left. Look again.
    }
}

/// Puts the socket into the room, or its waiting room; `Ok(None)` when the room closed
/// meanwhile.
fn enter_room(
    state: &Arc<AppState>,
    s: &SocketRef,
    conn: &Arc<Connection>,
    room: &Arc<Room>,
    joiner: room_rules::Joiner<'_, SocketRef>,
) -> Result<Option<JoinOutcome>, Refusal> {
    let identity = joiner.who.clone();
    let mut guard = room.state.lock();
    let outcome = guard.join(joiner, now(), &state.config.limits, policy(state));
    // A join that moved the class: everyone else is told it anew.
    let retold = match &outcome {
        Ok(joined) if joined.moved => guard.retell(Some(s.id)),
        _ => Vec::new(),
    };
    match outcome {
        Ok(joined) => {
            // The others are told under the room's lock, as carry_out tells.
            let told = finish_join(state, room, s, &identity, joined, retold);
            drop(guard);
            Ok(Some(JoinOutcome::Joined(Box::new(told))))
        }
        Err(NotAdmitted::Closed) => Ok(None),
        Err(NotAdmitted::Refused(r)) => Err(r),
        Err(NotAdmitted::Waiting { position, outputs }) => {
            *conn.waiting.lock() = Some(WaitingIn {
                room: room.clone(),
                sid: s.id,
                user_id: Arc::from(identity.user_id.as_str()),
            });
            tracing::debug!(session = %room.id, user = %identity.user_id, position, "waiting");
            carry_out(state, room, guard, outputs);
            Ok(Some(JoinOutcome::Waiting(JoinWaiting {
                waiting: true,
                session_id: room.id.to_string(),
                position,
            })))
        }
    }
}

/// What follows a join the room let in (at once, or from the waiting room): the others are
/// told, the connection becomes the member's (with its SFU peer), a replaced connection is
/// closed, a move is told to everyone; returns what the joiner is told. Called with the room's
/// lock held, as [`carry_out`] tells.
fn finish_join(
    state: &Arc<AppState>,
    room: &Arc<Room>,
    s: &SocketRef,
    identity: &Identity,
    joined: room_rules::Joined<SocketRef>,
    retold: Vec<room_rules::Retold<SocketRef>>,
) -> SessionJoined {
    let room_rules::Joined {
        participant,
        roster,
        history,
        kind,
        topology,
        moved: _,
        controls,
    } = joined;
    let replaced = match kind {
        JoinKind::New { others, notice } => {
            state
                .metrics
                .participants
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            persist_chat(state, &room.id, notice.clone());
            emit_to_all(&others, event::USER_JOINED, &participant);
            emit_to_all(&others, event::CHAT_MESSAGE, &notice);
            None
        }
        JoinKind::Again { others, replaced } => {
            emit_to_all(&others, event::PARTICIPANT_UPDATED, &participant);
            replaced
        }
    };

    let user_id: Arc<str> = Arc::from(identity.user_id.as_str());
    let sfu_peer = match topology {
        Topology::Sfu => sfu_peer_for(state, room, &user_id, &participant, controls.settings, s),
        Topology::Mesh => None,
    };
    let conn = s.extensions.get::<Arc<Connection>>();
    if let Some(conn) = &conn {
        conn.waiting.lock().take();
        let before = conn.joined.lock().replace(Joined {
            room: room.clone(),
            sid: s.id,
            user_id,
            user_name: Arc::from(identity.user_name.as_str()),
            sfu_peer,
        });
        // The same socket joined again: its old connection to the SFU ends.
        leave_sfu(state, before.as_ref());
    }

    if let Some(old) = replaced {
        if let Some(old_conn) = old.extensions.get::<Arc<Connection>>() {
            let old_joined = old_conn.joined.lock().take();
            leave_sfu(state, old_joined.as_ref());
        }
        let body = Refusal::new(
            ErrorCode::SessionReplaced,
            "you joined this session from another connection",
        )
        .body(event::JOIN_SESSION);
        let _ = old.emit(event::ERROR, &body);
        let _ = old.disconnect();
    }

    if !retold.is_empty() {
        tracing::info!(session = %room.id, ?topology, members = retold.len() + 1, "the class moves");
        retell(state, room, retold, topology);
    }
    SessionJoined {
        protocol_version: PROTOCOL_VERSION,
        session_id: room.id.to_string(),
        self_: Some(participant),
        participants: roster,
        ice_servers: conn
            .map(|c| ice_servers_for(state, &identity.user_id, &c))
            .unwrap_or_default(),
        chat_history: history,
        topology,
        offer_to: None,
        settings: controls.settings,
        waiting_room: controls.waiting_room,
        hand_queue: controls.hand_queue,
        poll: controls.poll,
    }
}

/// The room's state, locked while a decision is made and told.
type RoomGuard<'a> = parking_lot::MutexGuard<'a, room_rules::RoomState<SocketRef>>;

/// Carries out what the room decided, in order. Everything that tells clients happens before
/// the room's lock (`guard`) is released: emitting only queues to each socket, and so two
/// decisions' notices never cross on their way out (an instructor sent a hand queue of 5 and
/// then the stale one of 4, two raises decided in one order and told in the other). What
/// writes to the store waits until the lock is released.
fn carry_out(
    state: &Arc<AppState>,
    room: &Arc<Room>,
    mut guard: RoomGuard<'_>,
    outputs: Vec<Output<SocketRef>>,
) {
    let outputs = guard.batch_updates(outputs, Instant::now());
    let mut stored = Vec::new();
    for output in outputs {
        match output {
            Output::Send(to, notice) => notify(&to, notice),
            Output::FlushUpdatesAt(at) => flush_updates_at(state, room, at),
            Output::Close(s) => {
                if let Some(conn) = s.extensions.get::<Arc<Connection>>() {
                    conn.waiting.lock().take();
                    let joined = conn.joined.lock().take();
                    leave_sfu(state, joined.as_ref());
                }
                let _ = s.disconnect();
            }
            Output::Left(left) => announce_left(state, room, *left, LeaveReason::Removed),
            Output::Admitted(admitted) => {
                let room_rules::Admitted {
                    conn,
                    who,
                    joined,
                    retold,
                } = *admitted;
                let told = finish_join(state, room, &conn, &who, joined, retold);
                tracing::debug!(session = %room.id, user = %who.user_id, "admitted");
                if let Err(e) = conn.emit(event::SESSION_JOINED, &told) {
                    tracing::debug!(sid = %conn.id, error = %e, "session-joined not delivered");
                }
            }
            Output::StudentCameras { private } => {
                if let Some(sfu) = &state.sfu {
                    sfu.send_surely(sfu::Command::StudentCameras {
                        room: room.id.clone(),
                        private,
                    });
                }
            }
            Output::Ranked { conn, student } => {
                let peer = conn
                    .extensions
                    .get::<Arc<Connection>>()
                    .and_then(|c| c.joined.lock().as_ref().and_then(|j| j.sfu_peer));
                if let (Some(sfu), Some(peer)) = (&state.sfu, peer) {
                    sfu.send_surely(sfu::Command::Rank { peer, student });
                }
            }
            Output::Moved { topology, retold } => {
                tracing::info!(session = %room.id, ?topology, members = retold.len(), "the class moves for its lock settings");
                retell(state, room, retold, topology);
            }
            Output::Ended { members } => {
                state
                    .metrics
                    .participants
                    .fetch_sub(members as i64, std::sync::atomic::Ordering::Relaxed);
                state.rooms.remove(room);
                tracing::info!(session = %room.id, members, "the class ended");
            }
            store @ (Output::Bar { .. }
            | Output::Unstore { .. }
            | Output::StorePoll(_)
            | Output::StoreVote(_)
            | Output::StorePollClosed { .. }) => stored.push(store),
        }
    }
    drop(guard);
    for output in stored {
        store_outcome(state, room, output);
    }
}

/// Writes what the room decided to keep: bars, deleted chat, polls and votes (the outputs
/// [`carry_out`] leaves until the room's lock is released; it tells the others itself).
fn store_outcome(state: &AppState, room: &Room, output: Output<SocketRef>) {
    match output {
        Output::Bar { user_id, until_ms } => {
            if let Err(e) = state.store.bar(&room.id, &user_id, until_ms) {
                tracing::error!(error = %e, session = %room.id, user = %user_id, "bar not stored");
            }
        }
        Output::Unstore { message_id } => {
            if let Err(e) = state.store.delete_chat(&message_id) {
                tracing::error!(error = %e, session = %room.id, "chat message not deleted");
            }
        }
        Output::StorePoll(record) => {
            if let Err(e) = state.store.store_poll(&room.id, &record) {
                tracing::error!(error = %e, session = %room.id, "poll not stored");
            }
        }
        Output::StoreVote(vote) => {
            if let Err(e) = state.store.store_vote(*vote) {
                tracing::error!(error = %e, session = %room.id, "vote not stored");
            }
        }
        Output::StorePollClosed { poll_id } => {
            if let Err(e) = state.store.close_poll(&poll_id, now_ms()) {
                tracing::error!(error = %e, session = %room.id, "poll's close not stored");
            }
        }
        Output::Send(..)
        | Output::FlushUpdatesAt(_)
        | Output::Close(_)
        | Output::Left(_)
        | Output::Admitted(_)
        | Output::StudentCameras { .. }
        | Output::Ranked { .. }
        | Output::Moved { .. }
        | Output::Ended { .. } => {}
    }
}

/// Tells the room's batch of participant updates when its window ends (`batching.rs`).
fn flush_updates_at(state: &Arc<AppState>, room: &Arc<Room>, at: Instant) {
    let (state, room) = (state.clone(), room.clone());
    tokio::spawn(async move {
        tokio::time::sleep_until(tokio::time::Instant::from_std(at)).await;
        let mut guard = room.state.lock();
        let outputs = guard.flush_updates(Instant::now());
        carry_out(&state, &room, guard, outputs);
    });
}

/// Tells clients one thing the room decided.
fn notify(to: &[SocketRef], notice: Notice) {
    match notice {
        Notice::ParticipantUpdated(p) => emit_to_all(to, event::PARTICIPANT_UPDATED, &p),
        Notice::ParticipantsUpdated(b) => emit_to_all(to, event::PARTICIPANTS_UPDATED, &b),
        Notice::Moderated(m) => emit_to_all(to, event::MODERATED, &m),
        Notice::Settings(settings) => emit_to_all(to, event::CLASS_SETTINGS, &settings),
        Notice::WaitingRoom(w) => emit_to_all(to, event::WAITING_ROOM, &w),
        Notice::HandQueue(q) => emit_to_all(to, event::HAND_QUEUE, &q),
        Notice::ChatDeleted(d) => emit_to_all(to, event::CHAT_DELETED, &d),
        Notice::Removed(r) => emit_to_all(to, event::REMOVED, &r),
        Notice::ClassEnded(e) => emit_to_all(to, event::CLASS_ENDED, &e),
        Notice::Refused(r) => emit_to_all(to, event::ERROR, &r.body(event::JOIN_SESSION)),
        Notice::PollOpened(poll) => emit_to_all(to, event::POLL_OPENED, &poll),
        Notice::PollResults(results) => emit_to_all(to, event::POLL_RESULTS, &results),
        Notice::PollClosed(closed) => emit_to_all(to, event::POLL_CLOSED, &closed),
    }
}

fn policy(state: &AppState) -> room_rules::RoomPolicy {
    room_rules::RoomPolicy {
        mode: state.config.sfu.mode,
        mesh_max: state.config.sfu.mesh_max,
        waiting_room: state.config.waiting_room,
    }
}

/// The ICE servers one member is handed: the configured ones, and TURN credentials of its own.
fn ice_servers_for(
    state: &AppState,
    user_id: &str,
    conn: &Connection,
) -> Vec<classroom_wire::IceServer> {
    ice_servers_lasting(state, user_id, conn, state.config.turn_credential_ttl)
}

/// How long the TURN credentials handed out before joining last (`ice-servers`): long enough
/// for the pre-join connection test, too short to relay a class without having joined it.
const CONNECTION_TEST_CREDENTIAL_TTL: Duration = Duration::from_secs(60);

fn ice_servers_lasting(
    state: &AppState,
    user_id: &str,
    conn: &Connection,
    ttl: Duration,
) -> Vec<classroom_wire::IceServer> {
    let mut ice_servers = state.config.ice_servers.clone();
    if let Some(secret) = &state.config.turn_secret {
        ice_servers.push(turn_credentials(
            secret,
            &state.config.turn_urls,
            user_id,
            ttl,
            conn.handshake.expires_at(),
        ));
    }
    ice_servers
}

/// A peer on the SFU for a member of a class on it: what it is forwarded follows its rank and
/// the class's settings.
fn sfu_peer_for(
    state: &AppState,
    room: &Room,
    user_id: &Arc<str>,
    participant: &classroom_wire::Participant,
    settings: classroom_wire::ClassSettings,
    s: &SocketRef,
) -> Option<PeerId> {
    let sfu = state.sfu.as_ref()?;
    let viewer = sfu::Viewer {
        student: !participant.is_instructor,
        student_cameras_private: settings.locks.student_cameras,
    };
    match sfu.join(room.id.clone(), user_id.clone(), viewer, signal_sink(s)) {
        Ok(peer) => Some(peer),
        Err(e) => {
            tracing::warn!(error = %e, "the SFU did not take a member");
            None
        }
    }
}

/// The class moved to `topology`: each member is told it anew (`session-joined`, as on a
/// join, with everyone else), after its connection to the SFU is made or ended. Clients treat
/// it as a rejoin: on the SFU they offer to the server; in a mesh they offer to everyone, the
/// collisions settled by perfect negotiation (the greater user id is polite).
fn retell(
    state: &AppState,
    room: &Arc<Room>,
    members: Vec<room_rules::Retold<SocketRef>>,
    topology: Topology,
) {
    for member in members {
        let Some(conn) = member.conn.extensions.get::<Arc<Connection>>() else {
            continue;
        };
        let user_id: Arc<str> = Arc::from(member.participant.user_id.as_str());
        {
            let mut joined = conn.joined.lock();
            let Some(joined) = joined.as_mut().filter(|j| Arc::ptr_eq(&j.room, room)) else {
                continue;
            };
            if let (Some(sfu), Some(peer)) = (&state.sfu, joined.sfu_peer.take()) {
                sfu.leave(peer);
            }
            if topology == Topology::Sfu {
                joined.sfu_peer = sfu_peer_for(
                    state,
                    room,
                    &user_id,
                    &member.participant,
                    member.controls.settings,
                    &member.conn,
                );
            }
        }
        let told = SessionJoined {
            protocol_version: PROTOCOL_VERSION,
            session_id: room.id.to_string(),
            self_: Some(member.participant),
            participants: member.roster,
            ice_servers: ice_servers_for(state, &user_id, &conn),
            chat_history: member.history,
            topology,
            offer_to: (topology == Topology::Mesh).then_some(member.offer_to),
            settings: member.controls.settings,
            waiting_room: member.controls.waiting_room,
            hand_queue: member.controls.hand_queue,
            poll: member.controls.poll,
        };
        if let Err(e) = member.conn.emit(event::SESSION_JOINED, &told) {
            tracing::debug!(sid = %member.conn.id, error = %e, "the class's move not told");
        }
    }
}

/// Where the SFU's messages to this client go: `sfu-offer`/`sfu-answer`, or an `error`.
fn signal_sink(s: &SocketRef) -> sfu::SignalSink {
    let socket = s.clone();
    Arc::new(move |signal: Signal| {
        let sent = match signal {
            Signal::Description(d) => {
                let name = match d.description.kind {
                    SdpKind::Offer => event::SFU_OFFER,
                    _ => event::SFU_ANSWER,
                };
                socket.emit(name, &d)
            }
            Signal::Refused(message) => {
                let body = Refusal::new(ErrorCode::MediaRefused, message).body(event::SFU_OFFER);
                socket.emit(event::ERROR, &body)
            }
        };
        if let Err(e) = sent {
            tracing::debug!(sid = %socket.id, error = %e, "SFU signal not delivered");
        }
    })
}

fn leave_sfu(state: &AppState, joined: Option<&Joined>) {
    if let (Some(sfu), Some(peer)) = (&state.sfu, joined.and_then(|j| j.sfu_peer)) {
        sfu.leave(peer);
    }
}

/// Hands an SFU event of a joined connection to the SFU.
fn to_sfu(
    state: &AppState,
    conn: &Connection,
    command: impl FnOnce(PeerId) -> sfu::Command,
) -> Result<(), Refusal> {
    let joined = conn.member()?;
    let (Some(sfu), Some(peer)) = (&state.sfu, joined.sfu_peer) else {
        return Err(Refusal::new(
            ErrorCode::InvalidPayload,
            "this class is a mesh: the SFU's events do not apply (see topology in session-joined)",
        ));
    };
    sfu.send(command(peer))
        .map_err(|e| Refusal::new(ErrorCode::MediaRefused, e.to_string()))
}

/// Takes the connection out of its session (or its waiting room); returns false when it was
/// in none.
fn leave(state: &Arc<AppState>, conn: &Connection, reason: LeaveReason) -> bool {
    // Taken out first: the connection's lock is never held while waiting for the room's
    // (the room's holder may lock the connection: an admission, a removal).
    let waiting = conn.waiting.lock().take();
    if let Some(waiting) = waiting {
        let mut guard = waiting.room.state.lock();
        if let Some((outputs, closed)) = guard.leave_waiting(&waiting.user_id, waiting.sid) {
            if closed {
                state.rooms.remove(&waiting.room);
            }
            carry_out(state, &waiting.room, guard, outputs);
        }
        return true;
    }
    let Some(joined) = conn.joined.lock().take() else {
        return false;
    };
    leave_sfu(state, Some(&joined));
    let room = &joined.room;
    let mut guard = room.state.lock();
    let outcome = guard.leave(
        &joined.user_id,
        joined.sid,
        now(),
        &state.config.limits,
        policy(state),
    );
    // None: replaced by a newer connection of the same user, nothing to announce.
    if let Some(left) = outcome {
        // Under the room's lock, as carry_out tells.
        announce_left(state, room, left, reason);
    }
    drop(guard);
    tracing::debug!(session = %room.id, user = %joined.user_id, ?reason, "left");
    true
}

/// Tells the class that a member left (or was removed), and a move it made; called with the
/// room's lock held, as [`carry_out`] tells.
fn announce_left(state: &AppState, room: &Arc<Room>, left: Left<SocketRef>, reason: LeaveReason) {
    let Left {
        participant,
        others,
        notice,
        closed,
        moved_to,
        retold,
        hand_queue,
    } = left;
    state
        .metrics
        .participants
        .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    if closed {
        state.rooms.remove(room);
    }
    persist_chat(state, &room.id, notice.clone());
    let left = UserLeft {
        user_id: participant.user_id,
        user_name: participant.user_name,
        reason,
    };
    emit_to_all(&others, event::USER_LEFT, &left);
    emit_to_all(&others, event::CHAT_MESSAGE, &notice);
    if let Some((to, queue)) = hand_queue {
        emit_to_all(&to, event::HAND_QUEUE, &queue);
    }
    if let Some(topology) = moved_to {
        tracing::info!(session = %room.id, ?topology, members = retold.len(), "the class moves");
        retell(state, room, retold, topology);
    }
}

/// Relays one signaling message to its target in the same session, stamped with the sender.
fn relay<In, Out: Serialize>(
    state: &AppState,
    s: &SocketRef,
    conn: &Connection,
    ack: AckSender,
    name: &'static str,
    data: Result<In, ParserError>,
    build: impl FnOnce((String, String), In, &crate::config::Limits) -> Result<(String, Out), Refusal>,
) {
    let started = Instant::now();
    let result = (|| {
        let data = data.map_err(|e| invalid(name, &e))?;
        let joined = conn.member()?;
        let from = (joined.user_id.to_string(), joined.user_name.to_string());
        let (target, out) = build(from, data, &state.config.limits)?;
        if *target == *joined.user_id {
            return Err(Refusal::new(
                ErrorCode::InvalidPayload,
                "targetUserId is yourself",
            ));
        }
        let target_socket = joined
            .room
            .state
            .lock()
            .member(&target)
            .map(|m| m.conn.clone())
            .ok_or_else(|| {
                Refusal::new(
                    ErrorCode::TargetNotFound,
                    format!("{target:?} is not in this session"),
                )
            })?;
        target_socket.emit(name, &out).map_err(|e| {
            Refusal::new(
                ErrorCode::TargetNotFound,
                format!("{target:?} cannot be reached now: {e}"),
            )
        })?;
        Ok(())
    })();
    match result {
        Ok(()) => {
            state.metrics.relay_latency(started.elapsed());
            let _ = ack.send(&Ack::ok(Empty {}));
        }
        Err(r) => refuse(state, s, Some(ack), name, r),
    }
}

fn check_sdp(
    field: &str,
    d: &SessionDescription,
    kinds: &[SdpKind],
    max: usize,
) -> Result<(), Refusal> {
    if !kinds.contains(&d.kind) {
        return Err(Refusal::new(
            ErrorCode::InvalidPayload,
            format!("{field}.type must be one of {kinds:?}"),
        ));
    }
    if d.sdp.len() > max {
        return Err(Refusal::new(
            ErrorCode::PayloadTooLarge,
            format!("{field}.sdp is larger than {max} bytes"),
        ));
    }
    if !d.sdp.starts_with("v=0") {
        return Err(Refusal::new(
            ErrorCode::InvalidPayload,
            format!("{field}.sdp is not an SDP (must start with v=0)"),
        ));
    }
    Ok(())
}

fn update_media_state(
    state: &Arc<AppState>,
    conn: &Connection,
    m: MediaState,
) -> Result<Participant, Refusal> {
    let joined = conn.member()?;
    let mut guard = joined.room.state.lock();
    let (participant, outputs) = guard.media_state(&joined.user_id, &m, now())?;
    carry_out(state, &joined.room, guard, outputs);
    Ok(participant)
}

/// An instructor's action: checked and decided by the room, then acknowledged
/// (`acknowledge`) and carried out.
fn moderate(
    state: &Arc<AppState>,
    conn: &Connection,
    action: Moderation,
    acknowledge: impl FnOnce(),
) -> Result<(), Refusal> {
    let limits = &state.config.limits;
    let target = match &action {
        Moderation::Mute { target_user_id }
        | Moderation::AskUnmute { target_user_id }
        | Moderation::StopCamera { target_user_id }
        | Moderation::StopScreen { target_user_id }
        | Moderation::Remove { target_user_id, .. }
        | Moderation::Admit { target_user_id }
        | Moderation::Deny { target_user_id }
        | Moderation::GrantCoInstructor { target_user_id }
        | Moderation::RevokeCoInstructor { target_user_id }
        | Moderation::LowerHand { target_user_id } => Some(("targetUserId", target_user_id)),
        Moderation::DeleteMessage { message_id } => Some(("messageId", message_id)),
        _ => None,
    };
    if let Some((field, value)) = target {
        check_text(field, value, limits.max_id_chars, true)?;
    }
    let joined = conn.member()?;
    let mut guard = joined.room.state.lock();
    let outputs = guard.moderate(&joined.user_id, action, now(), limits, policy(state))?;
    acknowledge();
    carry_out(state, &joined.room, guard, outputs);
    Ok(())
}

fn send_vote(state: &Arc<AppState>, conn: &Connection, vote: Vote) -> Result<(), Refusal> {
    check_text(
        "pollId",
        &vote.poll_id,
        state.config.limits.max_id_chars,
        true,
    )?;
    if vote.choices.len() > classroom_wire::MAX_POLL_OPTIONS {
        return Err(Refusal::new(
            ErrorCode::InvalidPayload,
            "more choices than a poll has options",
        ));
    }
    let joined = conn.member()?;
    let mut guard = joined.room.state.lock();
    let outputs = guard.vote(&joined.user_id, vote, now())?;
    carry_out(state, &joined.room, guard, outputs);
    Ok(())
}

fn send_reaction(conn: &Connection, r: ReactionSend) -> Result<(), Refusal> {
    let joined = conn.member()?;
    let mut guard = joined.room.state.lock();
    let (to, reaction) = guard.reaction(&joined.user_id, &r.emoji, now())?;
    // Told under the room's lock, as carry_out tells.
    emit_to_all(&to, event::REACTION, &reaction);
    drop(guard);
    Ok(())
}

/// Stores the message, then shows it to the session: the sender's ack (and everyone's copy)
/// comes only once it is committed, and a message that could not be stored is refused, not
/// shown.
async fn send_chat(
    state: &AppState,
    conn: &Connection,
    c: ChatSend,
) -> Result<ChatMessage, Refusal> {
    check_text(
        "message",
        &c.message,
        state.config.limits.max_chat_chars,
        true,
    )?;
    if let Some(to) = &c.to_user_id {
        check_text("toUserId", to, state.config.limits.max_id_chars, true)?;
    }
    let joined = conn.member()?;
    // Who may write what to whom (lock settings, private chat), and the member's chat rate,
    // across its sockets: refused before the message is even made.
    let to_user_name = {
        let limits = &state.config.limits;
        let mut guard = joined.room.state.lock();
        let to_user_name = guard.check_chat(&joined.user_id, c.to_user_id.as_deref())?;
        let member = guard.member_mut(&joined.user_id).ok_or_else(not_joined)?;
        if member
            .chat
            .take(limits.chat_per_second, limits.chat_burst, Instant::now())
            != RateDecision::Allow
        {
            return Err(Refusal::new(
                ErrorCode::RateLimited,
                format!(
                    "more than {} chat messages per second (burst {})",
                    limits.chat_per_second, limits.chat_burst
                ),
            ));
        }
        to_user_name
    };
    let message = ChatMessage {
        id: uuid::Uuid::new_v4().to_string(),
        user_id: joined.user_id.to_string(),
        user_name: joined.user_name.to_string(),
        message: c.message,
        timestamp: now_ms(),
        kind: ChatKind::User,
        to_user_id: c.to_user_id,
        to_user_name,
    };
    let not_stored = |why: &dyn std::fmt::Display| {
        tracing::error!(error = %why, session = %joined.room.id, "chat message refused: not stored");
        Refusal::new(
            ErrorCode::Internal,
            format!("your message could not be stored ({why}); it was not sent"),
        )
    };
    let committed = state
        .store
        .commit_chat(&joined.room.id, message.clone())
        .map_err(|e| not_stored(&e))?;
    match committed.await {
        Ok(Ok(())) => {}
        Ok(Err(why)) => return Err(not_stored(&why)),
        Err(_) => return Err(not_stored(&"the database writer has stopped")),
    }
    let mut guard = joined.room.state.lock();
    guard.push_history(message.clone(), state.config.limits.chat_history_len);
    let everyone = guard.chat_recipients(&message);
    // Told in the history's order: under the room's lock, as carry_out tells.
    emit_to_all(&everyone, event::CHAT_MESSAGE, &message);
    drop(guard);
    state
        .metrics
        .chat_messages
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    Ok(message)
}

fn persist_chat(state: &AppState, session_id: &str, message: ChatMessage) {
    if let Err(e) = state.store.append_chat(session_id, message) {
        tracing::error!(error = %e, session = session_id, "chat message not persisted");
    }
}
