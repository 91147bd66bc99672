//! The Socket.IO client (rust_socketio) and the typed protocol of `docs/protocol.md`.
//!
//! Every server event is parsed into a session [`Input`]; one that does not parse is logged
//! and reported as a server error, never dropped silently. The client reconnects by itself
//! with exponential backoff; each (re)connect is reported as
//! [`Input::SignalingConnected`], on which the session joins again. [`SignalingClient::emit`]
//! does not wait for the namespace CONNECT itself (an early emit is refused by a strict
//! server): the session's first emit is its join, on `SignalingConnected`; chat written
//! while disconnected waits in the session until it is joined again. Negotiation messages a
//! link produces while the socket is down are emitted anyway; the client refuses them and
//! the engine logs the failure (the rejoin then repairs the links, `session`'s rules).

use std::time::Duration;

use classroom_wire::{
    AnswerFromPeer, ChatMessage, ErrorBody, ErrorCode, IceCandidateFromPeer, OfferFromPeer,
    Participant, SessionJoined, UserLeft, VideoRequestFromPeer, event as events,
};
use futures_util::FutureExt;
use rust_socketio::asynchronous::{Client, ClientBuilder};
use rust_socketio::{Event, Payload, TransportType};
use serde::de::DeserializeOwned;
use serde_json::Value;
use tokio::sync::mpsc;

use crate::session::{ClassInput, Input, Outgoing};

#[derive(Debug, thiserror::Error)]
pub enum SignalingError {
    #[error("cannot reach the signaling server at {url}: {source}")]
    Connect {
        url: String,
        source: Box<rust_socketio::Error>,
    },
    #[error("sending {event} failed: {source}")]
    Emit {
        event: &'static str,
        source: Box<rust_socketio::Error>,
    },
    #[error("not connected to the signaling server: {event} not sent")]
    NotConnected { event: &'static str },
    #[error("encoding {event}: {source}")]
    Encode {
        event: &'static str,
        source: serde_json::Error,
    },
    #[error("the server did not answer {event} within {} s", .waited.as_secs_f32())]
    NoAnswer {
        event: &'static str,
        waited: Duration,
    },
    #[error("the server refused {event}: {message}")]
    Refused {
        event: &'static str,
        message: String,
    },
}

/// Where and as whom to connect.
#[derive(Debug, Clone)]
pub struct SignalingConfig {
    /// `http://host:port` of the signaling server (the browser version's `NEXT_PUBLIC_SOCKET_URL`).
    pub url: String,
    /// Signed token for `auth: { token }`; `None` against a server in development mode.
    pub token: Option<String>,
    /// The server's join key for `auth: { key }` (a local class); `None` elsewhere.
    pub key: Option<String>,
    pub websocket_only: bool,
}

/// The connected client. Cloning shares the connection.
#[derive(Clone)]
pub(crate) struct SignalingClient {
    client: Client,
}

fn first_value(payload: Payload) -> Value {
    match payload {
        Payload::Text(mut values) if !values.is_empty() => values.remove(0),
        #[allow(deprecated)]
        Payload::String(text) => serde_json::from_str(&text).unwrap_or(Value::String(text)),
        _ => Value::Null,
    }
}

fn parse<T: DeserializeOwned>(event: &str, value: Value, into: fn(T) -> Input) -> Input {
    match serde_json::from_value::<T>(value) {
        Ok(parsed) => into(parsed),
        Err(error) => {
            tracing::warn!(event, %error, "malformed event from the server");
            Input::ServerError(ErrorBody {
                code: ErrorCode::InvalidPayload,
                message: format!("the server sent a malformed {event}: {error}"),
                event: Some(event.to_owned()),
            })
        }
    }
}

/// Turns one server event into a session input; `None` for events the session ignores.
pub(crate) fn input_from_event(event: &str, value: Value) -> Option<Input> {
    Some(match event {
        events::SESSION_JOINED => parse::<SessionJoined>(event, value, Input::Joined),
        events::USER_JOINED => parse::<Participant>(event, value, Input::UserJoined),
        events::USER_LEFT => parse::<UserLeft>(event, value, Input::UserLeft),
        events::PARTICIPANT_UPDATED => {
            parse::<Participant>(event, value, Input::ParticipantUpdated)
        }
        events::PARTICIPANTS_UPDATED => {
            parse::<classroom_wire::ParticipantsUpdated>(event, value, Input::ParticipantsUpdated)
        }
        events::CHAT_MESSAGE => parse::<ChatMessage>(event, value, Input::Chat),
        events::OFFER => parse::<OfferFromPeer>(event, value, Input::Offer),
        events::ANSWER => parse::<AnswerFromPeer>(event, value, Input::Answer),
        events::ICE_CANDIDATE => {
            parse::<IceCandidateFromPeer>(event, value, Input::RemoteCandidate)
        }
        events::ERROR => parse::<ErrorBody>(event, value, Input::ServerError),
        events::VIDEO_REQUEST => parse::<VideoRequestFromPeer>(event, value, Input::VideoRequest),
        events::SFU_OFFER | events::SFU_ANSWER => {
            parse::<classroom_wire::SfuDescription>(event, value, Input::SfuDescription)
        }
        events::SERVER_RESTARTING => {
            parse::<classroom_wire::ServerRestarting>(event, value, Input::ServerRestarting)
        }
        events::WAITING_FOR_ADMISSION => {
            parse(event, value, |w| Input::Class(ClassInput::Waiting(w)))
        }
        events::MODERATED => parse(event, value, |m| Input::Class(ClassInput::Moderated(m))),
        events::REMOVED => parse(event, value, |r| Input::Class(ClassInput::Removed(r))),
        events::CLASS_ENDED => parse(event, value, |e| Input::Class(ClassInput::Ended(e))),
        events::CLASS_SETTINGS => parse(event, value, |s| Input::Class(ClassInput::Settings(s))),
        events::WAITING_ROOM => parse(event, value, |w| Input::Class(ClassInput::WaitingRoom(w))),
        events::HAND_QUEUE => parse(event, value, |q| Input::Class(ClassInput::HandQueue(q))),
        events::REACTION => parse(event, value, |r| Input::Class(ClassInput::Reaction(r))),
        events::CHAT_DELETED => parse(event, value, |d| Input::Class(ClassInput::ChatDeleted(d))),
        events::POLL_OPENED => parse(event, value, |p| Input::Class(ClassInput::PollOpened(p))),
        events::POLL_RESULTS => parse(event, value, |r| Input::Class(ClassInput::PollResults(r))),
        events::POLL_CLOSED => parse(event, value, |c| Input::Class(ClassInput::PollClosed(c))),
        other => {
            tracing::debug!(event = other, "event not used by the session");
            return None;
        }
    })
}

impl SignalingClient {
    /// Connects (retrying with backoff until `give_up_after`) and reports every server event
    /// to `inputs`.
    pub(crate) async fn connect(
        config: &SignalingConfig,
        inputs: mpsc::UnboundedSender<Input>,
        give_up_after: Duration,
    ) -> Result<Self, SignalingError> {
        let started = std::time::Instant::now();
        let mut delay = Duration::from_millis(200);
        loop {
            match Self::connect_once(config, inputs.clone()).await {
                Ok(client) => return Ok(client),
                Err(error) if started.elapsed() + delay < give_up_after => {
                    tracing::info!(%error, ?delay, "signaling server not reachable yet; retrying");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(3));
                }
                Err(error) => return Err(error),
            }
        }
    }

    async fn connect_once(
        config: &SignalingConfig,
        inputs: mpsc::UnboundedSender<Input>,
    ) -> Result<Self, SignalingError> {
        let on_connect = inputs.clone();
        let on_error = inputs.clone();
        let on_close = inputs.clone();
        let comeback = ComebackGate::default();
        let told_when = comeback.clone();
        let mut builder = ClientBuilder::new(config.url.clone())
            .transport_type(if config.websocket_only {
                TransportType::Websocket
            } else {
                TransportType::Any
            })
            .reconnect(true)
            .reconnect_on_disconnect(true)
            // Each client waits a little more or less than the others, so that a class does
            // not come back all in one instant when its server restarts. rust_socketio tries
            // once at once, then backs off (×1.5, ±50 %) up to the maximum: under 2 s between
            // tries, so a client is back within about 2 s of a restart (the budget is media
            // again within 5 s), as the page is (socket.io-client, at most 1.5 s).
            .reconnect_delay(200 + reconnect_jitter_ms(), 800 + reconnect_jitter_ms())
            // A server that shuts down says when each client is to come back
            // (`server-restarting`, a delay of its own for each): the first attempt waits
            // until then, so a class does not come back in one instant.
            .on_reconnect(move || {
                let gate = comeback.clone();
                async move {
                    gate.wait().await;
                    rust_socketio::asynchronous::ReconnectSettings::new()
                }
                .boxed()
            })
            .on(Event::Connect, move |_, _| {
                let _ = on_connect.send(Input::SignalingConnected);
                async {}.boxed()
            })
            .on(Event::Close, move |_, _| {
                let _ = on_close.send(Input::SignalingDisconnected);
                async {}.boxed()
            })
            // The server's `error` event and the client's own transport errors both land here.
            .on(Event::Error, move |payload, _| {
                let value = first_value(payload);
                let input = match serde_json::from_value::<ErrorBody>(value.clone()) {
                    Ok(body) => Input::ServerError(body),
                    Err(_) => {
                        tracing::info!(error = %value, "signaling connection lost");
                        Input::SignalingDisconnected
                    }
                };
                let _ = on_error.send(input);
                async {}.boxed()
            })
            .on_any(move |event, payload, _| {
                let name = match &event {
                    Event::Custom(name) => name.clone(),
                    other => other.as_str().to_owned(),
                };
                if let Some(input) = input_from_event(&name, first_value(payload)) {
                    if let Input::ServerRestarting(notice) = &input {
                        told_when.come_back_after(Duration::from_millis(notice.retry_after_ms));
                    }
                    let _ = inputs.send(input);
                }
                async {}.boxed()
            });
        let mut auth = serde_json::Map::new();
        if let Some(token) = &config.token {
            auth.insert("token".into(), token.clone().into());
        }
        if let Some(key) = &config.key {
            auth.insert("key".into(), key.clone().into());
        }
        if !auth.is_empty() {
            builder = builder.auth(serde_json::Value::Object(auth));
        }
        let client = builder
            .connect()
            .await
            .map_err(|source| SignalingError::Connect {
                url: config.url.clone(),
                source: Box::new(source),
            })?;
        Ok(SignalingClient { client })
    }

    pub(crate) async fn emit(&self, outgoing: &Outgoing) -> Result<(), SignalingError> {
        let (event, value) = encode(outgoing)?;
        self.client
            .emit(event, value)
            .await
            .map_err(|source| SignalingError::Emit {
                event,
                source: Box::new(source),
            })
    }

    /// The ICE servers this connection would be handed on joining (`ice-servers`), for the
    /// pre-join connection test. Waits at most `wait` for the answer.
    pub(crate) async fn ice_servers(
        &self,
        wait: Duration,
    ) -> Result<Vec<classroom_wire::IceServer>, SignalingError> {
        const EVENT: &str = events::ICE_SERVERS;
        let (tx, rx) = tokio::sync::oneshot::channel();
        let tx = std::sync::Mutex::new(Some(tx));
        self.client
            .emit_with_ack(EVENT, serde_json::json!({}), wait, move |payload, _| {
                if let Some(tx) = tx.lock().ok().and_then(|mut tx| tx.take()) {
                    // An ack's arguments come as one array.
                    let answer = match first_value(payload) {
                        Value::Array(mut args) if !args.is_empty() => args.remove(0),
                        other => other,
                    };
                    let _ = tx.send(answer);
                }
                async {}.boxed()
            })
            .await
            .map_err(|source| SignalingError::Emit {
                event: EVENT,
                source: Box::new(source),
            })?;
        let answer = tokio::time::timeout(wait, rx)
            .await
            .ok()
            .and_then(Result::ok)
            .ok_or(SignalingError::NoAnswer {
                event: EVENT,
                waited: wait,
            })?;
        if answer.get("ok") != Some(&Value::Bool(true)) {
            let message = answer
                .pointer("/error/message")
                .and_then(Value::as_str)
                .map(str::to_owned)
                .unwrap_or_else(|| format!("an answer without ok: {answer:.200}"));
            return Err(SignalingError::Refused {
                event: EVENT,
                message,
            });
        }
        serde_json::from_value::<classroom_wire::IceServersReply>(answer)
            .map(|reply| reply.ice_servers)
            .map_err(|error| SignalingError::Refused {
                event: EVENT,
                message: format!("an answer that does not parse: {error}"),
            })
    }

    pub(crate) async fn disconnect(&self) {
        if let Err(error) = self.client.disconnect().await {
            tracing::debug!(%error, "disconnecting from the signaling server");
        }
    }
}

/// When the server said to come back (`server-restarting`): the next reconnect waits until
/// then, once.
#[derive(Clone, Default)]
struct ComebackGate(std::sync::Arc<std::sync::Mutex<Option<tokio::time::Instant>>>);

impl ComebackGate {
    /// The longest wait a server can ask for; the page keeps to the same.
    const MAX_WAIT: Duration = Duration::from_secs(30);

    fn come_back_after(&self, delay: Duration) {
        let at = tokio::time::Instant::now() + delay.min(Self::MAX_WAIT);
        if let Ok(mut gate) = self.0.lock() {
            *gate = Some(at);
        }
    }

    /// Waits until the time the server gave, if it gave one since the last reconnect.
    async fn wait(&self) {
        let at = self.0.lock().ok().and_then(|mut gate| gate.take());
        if let Some(at) = at {
            tracing::info!(
                wait_ms = at
                    .saturating_duration_since(tokio::time::Instant::now())
                    .as_millis() as u64,
                "the server is restarting: reconnecting when it said"
            );
            tokio::time::sleep_until(at).await;
        }
    }
}

/// 0 to 0.4 s, different in each process (std's random hash keys): not a secret, a spread.
fn reconnect_jitter_ms() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u64(std::process::id().into());
    hasher.finish() % 400
}

/// The event name and JSON payload of an outgoing message.
pub fn encode(outgoing: &Outgoing) -> Result<(&'static str, Value), SignalingError> {
    fn json<T: serde::Serialize>(
        event: &'static str,
        value: &T,
    ) -> Result<(&'static str, Value), SignalingError> {
        serde_json::to_value(value)
            .map(|value| (event, value))
            .map_err(|source| SignalingError::Encode { event, source })
    }
    match outgoing {
        Outgoing::Join(join) => json(events::JOIN_SESSION, join),
        Outgoing::Leave => Ok((events::LEAVE_SESSION, serde_json::json!({}))),
        Outgoing::Offer(offer) => json(events::OFFER, offer),
        Outgoing::Answer(answer) => json(events::ANSWER, answer),
        Outgoing::Candidate(candidate) => json(events::ICE_CANDIDATE, candidate),
        Outgoing::MediaState(state) => json(events::MEDIA_STATE, state),
        Outgoing::Chat(chat) => json(events::CHAT_MESSAGE, chat),
        Outgoing::VideoRequest(request) => json(events::VIDEO_REQUEST, request),
        Outgoing::SfuDescription(description) => json(
            match description.description.kind {
                classroom_wire::SdpKind::Offer => events::SFU_OFFER,
                _ => events::SFU_ANSWER,
            },
            description,
        ),
        Outgoing::SfuCandidate(candidate) => json(events::SFU_CANDIDATE, candidate),
        Outgoing::Moderate(moderation) => json(events::MODERATE, moderation),
        Outgoing::Reaction(reaction) => json(events::REACTION, reaction),
        Outgoing::Vote(vote) => json(events::VOTE, vote),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_malformed_server_event_becomes_a_reported_error() {
        let input = input_from_event(events::USER_JOINED, serde_json::json!({"userId": 5}));
        assert!(matches!(
            input,
            Some(Input::ServerError(ErrorBody {
                code: ErrorCode::InvalidPayload,
                ..
            }))
        ));
    }

    #[test]
    fn offers_parse_into_session_inputs() {
        let input = input_from_event(
            events::OFFER,
            serde_json::json!({
                "fromUserId": "bob", "fromUserName": "Bob",
                "offer": {"type": "offer", "sdp": "v=0\r\n"}
            }),
        );
        assert!(matches!(input, Some(Input::Offer(offer)) if offer.from_user_id == "bob"));
    }

    #[test]
    fn outgoing_messages_use_the_protocol_names() {
        let (event, value) = encode(&Outgoing::Chat(classroom_wire::ChatSend {
            message: "hi".to_owned(),
            to_user_id: None,
        }))
        .expect("encodes");
        assert_eq!(event, "chat-message");
        assert_eq!(value, serde_json::json!({"message": "hi"}));
        assert_eq!(
            encode(&Outgoing::Leave).expect("encodes").0,
            "leave-session"
        );
    }

    /// How long a reconnect waits at the gate.
    async fn waited(gate: &ComebackGate) -> Duration {
        let t0 = tokio::time::Instant::now();
        gate.wait().await;
        t0.elapsed()
    }

    #[tokio::test(start_paused = true)]
    async fn the_reconnect_after_a_restart_notice_waits_the_servers_delay_once_and_at_most_30_s() {
        let gate = ComebackGate::default();
        // No notice: no wait.
        assert_eq!(waited(&gate).await, Duration::ZERO);

        gate.come_back_after(Duration::from_millis(2_700));
        let first = waited(&gate).await;
        assert!(first >= Duration::from_millis(2_700), "{first:?}");
        // Once: a retry after a failed attempt backs off as usual, no second wait.
        assert_eq!(waited(&gate).await, Duration::ZERO);

        // A server asking for an hour gets 30 s.
        gate.come_back_after(Duration::from_secs(3600));
        assert_eq!(waited(&gate).await, ComebackGate::MAX_WAIT);
    }
}
