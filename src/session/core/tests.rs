//! The session's rules, driven by scripted inputs and a scripted clock.

use super::*;
use crate::session::{CAMERA_MAX_BPS, CHAT_WAITING_MAX};
use classroom_wire::{ErrorCode, PROTOCOL_VERSION};

fn participant(user_id: &str) -> Participant {
    Participant {
        user_id: user_id.to_owned(),
        user_name: user_id.to_uppercase(),
        is_instructor: false,
        co_instructor: false,
        audio_enabled: true,
        video_enabled: true,
        screen_sharing: false,
        hand_raised: false,
        joined_at: 0,
    }
}

fn joined(self_id: &str, others: &[&str]) -> Input {
    Input::Joined(SessionJoined {
        protocol_version: PROTOCOL_VERSION,
        session_id: "class".to_owned(),
        self_: Some(participant(self_id)),
        participants: others.iter().map(|id| participant(id)).collect(),
        ice_servers: vec![],
        chat_history: vec![],
        topology: Default::default(),
        offer_to: None,
        settings: Default::default(),
        waiting_room: None,
        hand_queue: None,
        poll: None,
    })
}

fn sdp(kind: SdpKind, session: &str) -> SessionDescription {
    SessionDescription {
        kind,
        sdp: format!("v=0\r\no=- {session} 2 IN IP4 127.0.0.1\r\ns=-\r\n"),
    }
}

fn offer_from(user_id: &str, session: &str) -> Input {
    Input::Offer(OfferFromPeer {
        from_user_id: user_id.to_owned(),
        from_user_name: user_id.to_uppercase(),
        offer: sdp(SdpKind::Offer, session),
    })
}

fn answer_from(user_id: &str, session: &str) -> Input {
    Input::Answer(AnswerFromPeer {
        from_user_id: user_id.to_owned(),
        from_user_name: user_id.to_uppercase(),
        answer: sdp(SdpKind::Answer, session),
    })
}

fn state(user_id: &str, state: PeerConnState) -> Input {
    Input::LinkState {
        link: LinkId::peer(user_id),
        state,
    }
}

fn left(user_id: &str, reason: LeaveReason) -> Input {
    Input::UserLeft(UserLeft {
        user_id: user_id.to_owned(),
        user_name: user_id.to_uppercase(),
        reason,
    })
}

fn session(user_id: &str) -> (Session, Instant) {
    (
        Session::new(SessionConfig::new("class", user_id, "Me", false)),
        Instant::now(),
    )
}

fn created_offers(actions: &[Action]) -> Vec<&str> {
    actions
        .iter()
        .filter_map(|action| match action {
            Action::OpenLink {
                link, offer: true, ..
            } => link.participant(),
            _ => None,
        })
        .collect()
}

fn closed(actions: &[Action]) -> Vec<&str> {
    actions
        .iter()
        .filter_map(|action| match action {
            Action::CloseLink { link } => link.participant(),
            _ => None,
        })
        .collect()
}

/// A session with connected peers to `others`, which we offered to as the newcomer.
fn in_call_with(self_id: &str, others: &[&str]) -> (Session, Instant) {
    let (mut s, t) = session(self_id);
    s.handle(t, Input::SignalingConnected);
    s.handle(t, joined(self_id, others));
    for other in others {
        s.handle(t, answer_from(other, &format!("{other}-1")));
        s.handle(t, state(other, PeerConnState::Connected));
    }
    (s, t)
}

#[test]
fn connecting_sends_join_session_with_our_identity() {
    let (mut s, t) = session("ada");
    let actions = s.handle(t, Input::SignalingConnected);
    assert_eq!(
        actions,
        vec![Action::Emit(Outgoing::Join(JoinSession {
            session_id: "class".to_owned(),
            user_id: Some("ada".to_owned()),
            user_name: Some("Me".to_owned()),
            is_instructor: false,
            capabilities: vec!["sfu".to_owned(), "participants-updated".to_owned()],
        }))]
    );
}

#[test]
fn the_newcomer_offers_to_everyone_already_present() {
    let (mut s, t) = session("ada");
    s.handle(t, Input::SignalingConnected);
    let actions = s.handle(t, joined("ada", &["bob", "cy"]));
    assert_eq!(created_offers(&actions), vec!["bob", "cy"]);
    assert!(
        actions
            .iter()
            .any(|a| matches!(a, Action::Emit(Outgoing::MediaState(_))))
    );
    let snapshot = s.snapshot();
    assert!(snapshot.joined);
    assert_eq!(snapshot.participants.len(), 2);
}

#[test]
fn the_server_given_identity_replaces_ours() {
    let (mut s, t) = session("typed-in");
    s.handle(t, Input::SignalingConnected);
    s.handle(t, joined("from-token", &[]));
    assert_eq!(s.snapshot().self_user_id, "from-token");
}

#[test]
fn those_present_wait_for_the_newcomers_offer_and_answer_it() {
    let (mut s, t) = in_call_with("ada", &[]);
    let actions = s.handle(t, Input::UserJoined(participant("bob")));
    assert!(created_offers(&actions).is_empty());
    let actions = s.handle(t, offer_from("bob", "b1"));
    assert!(matches!(
        &actions[..],
        [Action::AcceptOffer { link, replace: false, .. }] if link.participant() == Some("bob")
    ));
    let actions = s.handle(
        t,
        Input::LocalDescription {
            link: LinkId::peer("bob"),
            description: sdp(SdpKind::Answer, "a1"),
        },
    );
    assert!(matches!(
        &actions[..],
        [Action::Emit(Outgoing::Answer(AnswerToPeer { target_user_id, .. }))] if target_user_id == "bob"
    ));
}

#[test]
fn local_candidates_go_to_their_peer_and_stray_remote_ones_are_dropped() {
    let (mut s, t) = in_call_with("ada", &["bob"]);
    let actions = s.handle(
        t,
        Input::LocalCandidate {
            link: LinkId::peer("bob"),
            candidate: None,
        },
    );
    assert!(matches!(
        &actions[..],
        [Action::Emit(Outgoing::Candidate(_))]
    ));
    let stray = s.handle(
        t,
        Input::RemoteCandidate(IceCandidateFromPeer {
            from_user_id: "nobody".to_owned(),
            from_user_name: "Nobody".to_owned(),
            candidate: None,
        }),
    );
    assert!(stray.is_empty());
}

#[test]
fn a_participant_who_leaves_has_its_connection_closed_at_once() {
    let (mut s, t) = in_call_with("ada", &["bob"]);
    let actions = s.handle(t, left("bob", LeaveReason::Left));
    assert_eq!(closed(&actions), vec!["bob"]);
    assert!(s.snapshot().participants.is_empty());
}

#[test]
fn a_dropped_socket_keeps_the_connection_for_the_grace_period() {
    let (mut s, t) = in_call_with("ada", &["bob"]);
    let actions = s.handle(t, left("bob", LeaveReason::Disconnected));
    assert!(closed(&actions).is_empty());
    let grace = SessionConfig::new("c", "u", "n", false).reconnect_grace;
    assert_eq!(
        s.poll_timeout(),
        Some(t + grace),
        "the grace period's end is the deadline"
    );
    assert!(closed(&s.handle(t + grace / 2, Input::Timeout)).is_empty());
    assert_eq!(closed(&s.handle(t + grace, Input::Timeout)), vec!["bob"]);
    assert_eq!(s.poll_timeout(), None, "no timer left");
}

#[test]
fn a_participant_back_within_the_grace_period_keeps_its_connection() {
    let (mut s, t) = in_call_with("ada", &["bob"]);
    s.handle(t, left("bob", LeaveReason::Disconnected));
    let actions = s.handle(t, Input::UserJoined(participant("bob")));
    assert!(closed(&actions).is_empty());
    let grace = SessionConfig::new("c", "u", "n", false).reconnect_grace;
    assert_eq!(s.poll_timeout(), None, "the grace period no longer runs");
    assert!(closed(&s.handle(t + grace * 2, Input::Timeout)).is_empty());
    assert_eq!(
        s.snapshot().participants[0].connection,
        Some(PeerConnState::Connected)
    );
}

#[test]
fn rejoining_after_a_reconnect_keeps_working_connections() {
    let (mut s, t) = in_call_with("ada", &["bob", "cy"]);
    s.handle(t, Input::SignalingDisconnected);
    assert!(!s.snapshot().joined);
    s.handle(t, Input::SignalingConnected);
    let actions = s.handle(t, joined("ada", &["bob", "cy"]));
    assert!(created_offers(&actions).is_empty());
    assert!(closed(&actions).is_empty());
}

#[test]
fn after_a_server_restart_those_not_yet_back_are_waited_for() {
    let (mut s, t) = in_call_with("ada", &["bob", "cy"]);
    s.handle(t, Input::SignalingDisconnected);
    s.handle(t, Input::SignalingConnected);
    // First back on the restarted server: nobody else is there yet.
    let actions = s.handle(t, joined("ada", &[]));
    assert!(closed(&actions).is_empty());
    // Bob rejoins: his connection is kept. Cy never comes back: closed after the grace.
    let actions = s.handle(t, Input::UserJoined(participant("bob")));
    assert!(closed(&actions).is_empty());
    let grace = SessionConfig::new("c", "u", "n", false).reconnect_grace;
    assert_eq!(closed(&s.handle(t + grace, Input::Timeout)), vec!["cy"]);
}

#[test]
fn a_rejoin_replaces_a_broken_connection_with_a_fresh_offer() {
    let (mut s, t) = in_call_with("ada", &["bob"]);
    s.handle(t, state("bob", PeerConnState::Closed));
    s.handle(t, Input::SignalingConnected);
    let actions = s.handle(t, joined("ada", &["bob"]));
    assert_eq!(closed(&actions), vec!["bob"]);
    assert_eq!(created_offers(&actions), vec!["bob"]);
}

#[test]
fn a_rejoin_replaces_a_connection_still_negotiating_with_a_fresh_offer() {
    // Ada's offer went out while the socket was down (or on the connection that was lost): the
    // link never got past `new`, and Bob, rejoined afresh, holds no link to her.
    let (mut s, t) = session("ada");
    s.handle(t, Input::SignalingConnected);
    s.handle(t, joined("ada", &["bob"]));
    s.handle(t, Input::SignalingDisconnected);
    s.handle(t, Input::SignalingConnected);
    let actions = s.handle(t, joined("ada", &["bob"]));
    assert_eq!(closed(&actions), vec!["bob"]);
    assert_eq!(created_offers(&actions), vec!["bob"]);
    // One that connected meanwhile is kept.
    s.handle(t, state("bob", PeerConnState::Connected));
    s.handle(t, Input::SignalingConnected);
    let actions = s.handle(t, joined("ada", &["bob"]));
    assert!(closed(&actions).is_empty() && created_offers(&actions).is_empty());
}

#[test]
fn a_failed_connection_is_reported_and_the_offerer_restarts_ice() {
    let (mut s, t) = in_call_with("ada", &["bob"]);
    let actions = s.handle(t, state("bob", PeerConnState::Failed));
    assert!(actions.contains(&Action::Notify(SessionEvent::PeerFailed {
        user_id: "bob".to_owned()
    })));
    assert!(actions.contains(&Action::RestartIce {
        link: LinkId::peer("bob")
    }));
    // The restart offer is answered on the same connection, which comes back.
    let actions = s.handle(t, answer_from("bob", "bob-1"));
    assert!(matches!(&actions[..], [Action::AcceptAnswer { .. }]));
    let actions = s.handle(t, state("bob", PeerConnState::Connected));
    assert!(
        actions.contains(&Action::Notify(SessionEvent::PeerRecovered {
            user_id: "bob".to_owned()
        }))
    );
}

#[test]
fn the_answering_side_waits_for_the_restart_offer() {
    let (mut s, t) = in_call_with("ada", &[]);
    s.handle(t, Input::UserJoined(participant("bob")));
    s.handle(t, offer_from("bob", "b1"));
    s.handle(t, state("bob", PeerConnState::Connected));
    let actions = s.handle(t, state("bob", PeerConnState::Failed));
    assert!(
        !actions
            .iter()
            .any(|a| matches!(a, Action::RestartIce { .. }))
    );
    // Bob's restart offer comes from the same connection: renegotiated, not replaced.
    let actions = s.handle(t, offer_from("bob", "b1"));
    assert!(matches!(
        &actions[..],
        [Action::AcceptOffer { replace: false, .. }]
    ));
}

#[test]
fn a_restart_that_does_not_recover_is_replaced_by_a_new_connection() {
    let (mut s, t) = in_call_with("ada", &["bob"]);
    s.handle(t, state("bob", PeerConnState::Failed));
    let timeout = SessionConfig::new("c", "u", "n", false).restart_timeout;
    assert_eq!(s.poll_timeout(), Some(t + timeout));
    assert!(closed(&s.handle(t + timeout / 2, Input::Timeout)).is_empty());
    let actions = s.handle(t + timeout, Input::Timeout);
    assert_eq!(closed(&actions), vec!["bob"]);
    assert_eq!(created_offers(&actions), vec!["bob"]);
}

#[test]
fn an_offer_from_a_new_connection_replaces_the_old_one() {
    let (mut s, t) = in_call_with("ada", &[]);
    s.handle(t, Input::UserJoined(participant("bob")));
    s.handle(t, offer_from("bob", "b1"));
    let actions = s.handle(t, offer_from("bob", "b2"));
    assert!(matches!(
        &actions[..],
        [Action::AcceptOffer { replace: true, .. }]
    ));
}

#[test]
fn in_an_offer_collision_the_impolite_side_keeps_its_offer() {
    // "ada" < "bob": ada is impolite towards bob.
    let (mut s, t) = session("ada");
    s.handle(t, Input::SignalingConnected);
    s.handle(t, joined("ada", &["bob"]));
    assert!(s.handle(t, offer_from("bob", "b1")).is_empty());
}

#[test]
fn in_an_offer_collision_the_polite_side_yields() {
    let (mut s, t) = session("cy");
    s.handle(t, Input::SignalingConnected);
    s.handle(t, joined("cy", &["bob"]));
    let actions = s.handle(t, offer_from("bob", "b1"));
    assert!(matches!(
        &actions[..],
        [Action::AcceptOffer { replace: true, .. }]
    ));
    // Its own offer is no longer pending: a late answer to it is ignored.
    assert!(s.handle(t, answer_from("bob", "b1")).is_empty());
}

#[test]
fn muting_stops_the_source_and_tells_everyone() {
    let (mut s, t) = in_call_with("ada", &["bob"]);
    let actions = s.handle(t, Input::Command(Command::SetMicrophone(false)));
    assert!(actions.contains(&Action::SetSources {
        audio: false,
        camera: true,
        screen: false
    }));
    assert!(
        actions.contains(&Action::Emit(Outgoing::MediaState(MediaState {
            audio_enabled: Some(false),
            video_enabled: Some(true),
            screen_sharing: Some(false),
            hand_raised: Some(false),
        })))
    );
}

#[test]
fn empty_chat_is_not_sent_and_text_is_trimmed() {
    let (mut s, t) = in_call_with("ada", &[]);
    assert!(
        s.handle(t, Input::Command(Command::SendChat("  ".into())))
            .is_empty()
    );
    assert_eq!(
        s.handle(t, Input::Command(Command::SendChat(" hi ".into()))),
        vec![Action::Emit(Outgoing::Chat(ChatSend {
            message: "hi".to_owned(),
            to_user_id: None,
        }))]
    );
}

#[test]
fn server_errors_are_kept_for_the_user() {
    let (mut s, t) = session("ada");
    let actions = s.handle(
        t,
        Input::ServerError(ErrorBody {
            code: ErrorCode::NotEnrolled,
            message: "not in this class".to_owned(),
            event: None,
        }),
    );
    assert_eq!(actions.len(), 1);
    assert_eq!(
        s.snapshot().last_error.as_deref(),
        Some("not-enrolled: not in this class")
    );
}

#[test]
fn leaving_closes_every_connection_and_stops_every_source() {
    let (mut s, t) = in_call_with("ada", &["bob", "cy"]);
    let actions = s.handle(t, Input::Command(Command::Leave));
    assert_eq!(actions[0], Action::Emit(Outgoing::Leave));
    assert_eq!(closed(&actions), vec!["bob", "cy"]);
    assert_eq!(actions.last(), Some(&Action::Finished));
    assert!(
        s.handle(t, Input::UserJoined(participant("dan")))
            .is_empty()
    );
}

#[test]
fn chat_history_is_not_duplicated_by_a_rejoin() {
    let message = ChatMessage {
        id: "m1".to_owned(),
        user_id: "bob".to_owned(),
        user_name: "Bob".to_owned(),
        message: "hello".to_owned(),
        timestamp: 1,
        kind: classroom_wire::ChatKind::User,
        to_user_id: None,
        to_user_name: None,
    };
    let (mut s, t) = session("ada");
    let with_history = |s: &mut Session| {
        s.handle(
            t,
            Input::Joined(SessionJoined {
                protocol_version: PROTOCOL_VERSION,
                session_id: "class".to_owned(),
                self_: Some(participant("ada")),
                participants: vec![],
                ice_servers: vec![],
                chat_history: vec![message.clone()],
                topology: Default::default(),
                offer_to: None,
                settings: Default::default(),
                waiting_room: None,
                hand_queue: None,
                poll: None,
            }),
        )
    };
    with_history(&mut s);
    with_history(&mut s);
    assert_eq!(s.snapshot().chat.len(), 1);
}

#[test]
fn a_view_height_is_asked_of_every_connected_sender_and_of_those_who_connect_later() {
    let (mut s, t) = in_call_with("ada", &["bob"]);
    let actions = s.handle(t, Input::Command(Command::SetViewHeight(360)));
    assert_eq!(
        actions,
        vec![Action::Emit(Outgoing::VideoRequest(VideoRequestToPeer {
            target_user_id: "bob".to_owned(),
            max_height: 360
        }))]
    );
    s.handle(t, Input::UserJoined(participant("cy")));
    s.handle(t, offer_from("cy", "c1"));
    let actions = s.handle(t, state("cy", PeerConnState::Connected));
    assert!(
        actions.contains(&Action::Emit(Outgoing::VideoRequest(VideoRequestToPeer {
            target_user_id: "cy".to_owned(),
            max_height: 360
        })))
    );
}

#[test]
fn a_viewers_request_reaches_the_sender_and_strangers_are_ignored() {
    let (mut s, t) = in_call_with("ada", &["bob"]);
    let request = |from: &str| {
        Input::VideoRequest(VideoRequestFromPeer {
            from_user_id: from.to_owned(),
            from_user_name: from.to_uppercase(),
            max_height: 360,
        })
    };
    assert_eq!(
        targets_of(&s.handle(t, request("bob"))).map(|targets| targets.camera_max_height),
        Some(360),
        "the only viewer shows us 360 tall: the camera is sent that tall"
    );
    assert!(s.handle(t, request("nobody")).is_empty());
}

#[test]
fn a_participants_volume_is_set_for_us_alone_and_bounded() {
    let (mut s, t) = in_call_with("ada", &["bob"]);
    let actions = s.handle(
        t,
        Input::Command(Command::SetVolume {
            user_id: "bob".to_owned(),
            percent: 900,
        }),
    );
    assert_eq!(
        actions,
        vec![Action::SetVolume {
            user_id: "bob".to_owned(),
            percent: 400
        }]
    );
}

/// The browser version's relay, as `signaling::input_from_event` reads it: the seed's fields
/// only (`{ ok, self, participants }`, roster entries without `handRaised` or `joinedAt`).
fn joined_via_browser_relay(self_id: &str, others: &[&str]) -> Input {
    let payload = serde_json::json!({
        "ok": true,
        "self": {"userId": self_id, "userName": "Me", "isInstructor": false,
                 "audioEnabled": true, "videoEnabled": true, "screenSharing": false},
        "participants": others.iter().map(|id| serde_json::json!({
            "userId": id, "userName": "", "isInstructor": false, "audioEnabled": false,
            "videoEnabled": true, "screenSharing": false, "socketId": format!("s-{id}"),
        })).collect::<Vec<_>>(),
    });
    Input::Joined(serde_json::from_value(payload).expect("the relay's session-joined parses"))
}

fn ice_urls(actions: &[Action]) -> Vec<String> {
    actions
        .iter()
        .filter_map(|action| match action {
            Action::OpenLink { ice_servers, .. } => Some(ice_servers),
            _ => None,
        })
        .flatten()
        .flat_map(|server| server.urls.clone())
        .collect()
}

#[test]
fn on_the_browser_relay_the_newcomer_offers_with_the_seeds_stun_and_the_policys() {
    let mut config = SessionConfig::new("class", "ada", "Me", false);
    config.extra_ice_servers = vec![IceServer {
        urls: vec!["turn:turn.school.example:3478".into()],
        username: None,
        credential: None,
    }];
    let mut s = Session::new(config);
    let t = Instant::now();
    s.handle(t, Input::SignalingConnected);
    let actions = s.handle(t, joined_via_browser_relay("ada", &["web"]));
    assert_eq!(created_offers(&actions), vec!["web"]);
    assert_eq!(
        ice_urls(&actions),
        vec![
            "stun:stun.l.google.com:19302",
            "stun:stun1.l.google.com:19302",
            "turn:turn.school.example:3478"
        ]
    );
    let snapshot = s.snapshot();
    assert!(snapshot.joined);
    assert_eq!(snapshot.server, Some(ServerKind::BrowserRelay));
    let web = &snapshot.participants[0].participant;
    assert_eq!(
        web.user_name, "web",
        "no name from the relay: the user id is shown"
    );
    assert!(!web.audio_enabled && web.video_enabled && !web.hand_raised);
}

#[test]
fn on_the_browser_relay_no_video_request_is_sent() {
    let (mut s, t) = session("ada");
    s.handle(t, Input::SignalingConnected);
    s.handle(t, joined_via_browser_relay("ada", &["web"]));
    s.handle(t, answer_from("web", "web-1"));
    let sent_requests = |actions: &[Action]| {
        actions
            .iter()
            .filter(|a| matches!(a, Action::Emit(Outgoing::VideoRequest(_))))
            .count()
    };
    assert_eq!(
        sent_requests(&s.handle(t, Input::Command(Command::SetViewHeight(360)))),
        0
    );
    assert_eq!(
        sent_requests(&s.handle(t, state("web", PeerConnState::Connected))),
        0
    );
    // Our own server, after a reconnect: the extension is used again.
    s.handle(t, joined("ada", &["web"]));
    assert_eq!(
        s.snapshot().server,
        Some(ServerKind::Classroom {
            protocol_version: PROTOCOL_VERSION
        })
    );
    assert_eq!(
        sent_requests(&s.handle(t, Input::Command(Command::SetViewHeight(360)))),
        1
    );
}

#[test]
fn a_relays_user_left_without_a_reason_closes_the_connection_and_names_who_left() {
    let (mut s, t) = in_call_with("ada", &["web"]);
    let input = Input::UserLeft(
        serde_json::from_value(serde_json::json!({"userId": "web"}))
            .expect("the relay's user-left parses"),
    );
    let actions = s.handle(t, input);
    assert_eq!(closed(&actions), vec!["web"]);
    assert!(
        actions.contains(&Action::Notify(SessionEvent::ParticipantLeft {
            user_id: "web".into(),
            user_name: "WEB".into(),
        }))
    );
    assert!(s.snapshot().participants.is_empty());
}

#[test]
fn a_relays_user_joined_and_participant_updated_fill_the_roster() {
    let (mut s, t) = in_call_with("ada", &[]);
    type AsInput = fn(Participant) -> Input;
    let as_input: [(AsInput, bool); 2] = [
        (Input::UserJoined, true),
        (Input::ParticipantUpdated, false),
    ];
    for (input_of, audio) in as_input {
        let participant = serde_json::from_value(serde_json::json!({
            "userId": "web", "userName": "Web", "isInstructor": true,
            "audioEnabled": audio, "videoEnabled": false,
            "screenSharing": false, "socketId": "abc"}))
        .expect("the relay's participant parses");
        let input = input_of(participant);
        s.handle(t, input);
        let roster = s.snapshot().participants;
        assert_eq!(roster.len(), 1);
        let web = &roster[0].participant;
        assert_eq!((web.user_name.as_str(), web.is_instructor), ("Web", true));
        assert_eq!((web.audio_enabled, web.video_enabled), (audio, false));
    }
}

fn targets_of(actions: &[Action]) -> Option<SendTargets> {
    actions.iter().rev().find_map(|action| match action {
        Action::SetSendTargets(targets) => Some(*targets),
        _ => None,
    })
}

fn keyframes(actions: &[Action]) -> Vec<Source> {
    actions
        .iter()
        .filter_map(|action| match action {
            Action::RequestKeyframe(source) => Some(*source),
            _ => None,
        })
        .collect()
}

fn estimate(user_id: &str, bps: f64) -> Input {
    Input::LinkEstimate {
        link: LinkId::peer(user_id),
        bps,
    }
}

fn negotiated(user_id: &str, codec: VideoCodec) -> Input {
    Input::LinkNegotiated {
        link: LinkId::peer(user_id),
        video_codec: Some(codec),
    }
}

#[test]
fn the_start_runs_the_configured_sources_at_the_initial_targets() {
    let (s, _) = session("ada");
    assert_eq!(
        s.initial_actions(),
        vec![
            Action::SetSources {
                audio: true,
                camera: true,
                screen: false
            },
            Action::SetSendTargets(SendTargets::INITIAL)
        ]
    );
}

#[test]
fn a_link_that_connects_gets_a_keyframe_of_each_video_source() {
    let (mut s, t) = session("ada");
    s.handle(t, Input::SignalingConnected);
    s.handle(t, joined("ada", &["bob"]));
    s.handle(t, answer_from("bob", "b1"));
    let actions = s.handle(t, state("bob", PeerConnState::Connected));
    assert_eq!(keyframes(&actions), vec![Source::Camera, Source::Screen]);
    // A link that recovers (an ICE restart that worked) needs one too.
    s.handle(t, state("bob", PeerConnState::Disconnected));
    let actions = s.handle(t, state("bob", PeerConnState::Connected));
    assert_eq!(keyframes(&actions), vec![Source::Camera, Source::Screen]);
}

#[test]
fn a_codec_newly_in_use_starts_with_a_keyframe_and_one_no_longer_used_stops() {
    let (mut s, t) = in_call_with("ada", &["bob", "cy"]);
    let actions = s.handle(t, negotiated("bob", VideoCodec::H264));
    let targets = targets_of(&actions).expect("targets changed");
    assert!(targets.codecs.contains(VideoCodec::H264));
    assert_eq!(keyframes(&actions), vec![Source::Camera, Source::Screen]);
    // Firefox without H.264 (cy) adds VP8, which starts with a keyframe of its own.
    let actions = s.handle(t, negotiated("cy", VideoCodec::Vp8));
    let targets = targets_of(&actions).expect("targets changed");
    assert!(targets.codecs.contains(VideoCodec::Vp8));
    assert_eq!(keyframes(&actions), vec![Source::Camera, Source::Screen]);
    // The same codec again changes nothing.
    assert!(s.handle(t, negotiated("cy", VideoCodec::Vp8)).is_empty());
    // cy leaves: VP8 is no longer encoded, and nothing needs a keyframe for that.
    let actions = s.handle(t, left("cy", LeaveReason::Left));
    let targets = targets_of(&actions).expect("targets changed");
    assert!(!targets.codecs.contains(VideoCodec::Vp8));
    assert!(keyframes(&actions).is_empty());
}

#[test]
fn the_encoders_follow_the_weakest_links_estimate_as_it_changes() {
    let (mut s, t) = in_call_with("ada", &["bob", "cy"]);
    let targets = targets_of(&s.handle(t, estimate("bob", 2_000_000.0))).expect("changed");
    assert_eq!(targets.weakest_link_bps, Some(2_000_000));
    assert_eq!(targets.camera_bps, CAMERA_MAX_BPS);
    let targets = targets_of(&s.handle(t, estimate("cy", 540_000.0))).expect("changed");
    assert_eq!(
        (targets.weakest_link_bps, targets.camera_bps),
        (Some(540_000), 500_000)
    );
    // Sharing the screen splits the video between the two sources.
    let targets =
        targets_of(&s.handle(t, Input::Command(Command::SetScreenShare(true)))).expect("changed");
    assert_eq!((targets.camera_bps, targets.screen_bps), (150_000, 350_000));
    // A link that is not connected does not hold the others back.
    s.handle(t, state("cy", PeerConnState::Disconnected));
    let targets = targets_of(&s.handle(t, estimate("bob", 2_040_000.0))).expect("changed");
    assert_eq!(targets.weakest_link_bps, Some(2_040_000));
    // Estimates for strangers are ignored.
    assert!(s.handle(t, estimate("nobody", 1.0)).is_empty());
}

#[test]
fn a_receivers_keyframe_request_reaches_the_encoder_and_a_strangers_does_not() {
    let (mut s, t) = in_call_with("ada", &["bob"]);
    let request = |user_id: &str| Input::KeyframeRequested {
        link: LinkId::peer(user_id),
        source: Source::Screen,
    };
    assert_eq!(
        keyframes(&s.handle(t, request("bob"))),
        vec![Source::Screen]
    );
    assert!(s.handle(t, request("nobody")).is_empty());
}

#[test]
fn chat_written_while_disconnected_goes_out_on_rejoin_and_beyond_the_limit_is_refused_visibly() {
    let (mut s, t) = in_call_with("ada", &["bob"]);
    s.handle(t, Input::SignalingDisconnected);
    let actions = s.handle(t, Input::Command(Command::SendChat("first".into())));
    assert!(
        actions.is_empty(),
        "nothing is emitted while disconnected: {actions:?}"
    );
    for n in 1..CHAT_WAITING_MAX {
        s.handle(t, Input::Command(Command::SendChat(format!("m{n}"))));
    }
    let actions = s.handle(t, Input::Command(Command::SendChat("one too many".into())));
    assert!(matches!(
        &actions[..],
        [Action::Notify(SessionEvent::ChatNotSent { .. })]
    ));
    assert!(s.snapshot().last_error.is_some());
    s.handle(t, Input::SignalingConnected);
    let actions = s.handle(t, joined("ada", &["bob"]));
    let sent: Vec<&str> = actions
        .iter()
        .filter_map(|action| match action {
            Action::Emit(Outgoing::Chat(chat)) => Some(chat.message.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(sent.len(), CHAT_WAITING_MAX);
    assert_eq!(sent[0], "first", "in the order written");
    // Joined again: chat goes out at once.
    let actions = s.handle(t, Input::Command(Command::SendChat("now".into())));
    assert!(matches!(&actions[..], [Action::Emit(Outgoing::Chat(_))]));
}

fn track(link_user: &str, owner: &str, source: Source) -> Input {
    Input::RemoteTrack {
        link: LinkId::peer(link_user),
        owner: owner.to_owned(),
        source,
    }
}

fn receiving(s: &Session, user_id: &str) -> Vec<Source> {
    s.snapshot()
        .participants
        .into_iter()
        .find(|peer| peer.participant.user_id == user_id)
        .map(|peer| peer.receiving)
        .unwrap_or_default()
}

#[test]
fn the_tracks_a_link_carries_show_whose_they_are_until_the_link_goes() {
    let (mut s, t) = in_call_with("ada", &["bob", "cy"]);
    s.handle(t, track("bob", "bob", Source::Camera));
    s.handle(t, track("bob", "bob", Source::Audio));
    s.handle(t, track("cy", "cy", Source::Screen));
    assert_eq!(receiving(&s, "bob"), [Source::Audio, Source::Camera]);
    assert_eq!(receiving(&s, "cy"), [Source::Screen]);
    // A track on a link we do not have is not believed.
    s.handle(t, track("zed", "bob", Source::Screen));
    assert_eq!(receiving(&s, "bob"), [Source::Audio, Source::Camera]);
    s.handle(t, left("bob", LeaveReason::Left));
    s.handle(t, Input::UserJoined(participant("bob")));
    assert!(receiving(&s, "bob").is_empty(), "its link closed with it");
    assert_eq!(receiving(&s, "cy"), [Source::Screen]);
}

#[test]
fn a_replaced_link_starts_without_the_old_ones_tracks() {
    let (mut s, t) = in_call_with("ada", &[]);
    s.handle(t, Input::UserJoined(participant("bob")));
    s.handle(t, offer_from("bob", "b1"));
    s.handle(t, track("bob", "bob", Source::Camera));
    s.handle(t, offer_from("bob", "b1"));
    assert_eq!(
        receiving(&s, "bob"),
        [Source::Camera],
        "a renegotiation keeps them"
    );
    s.handle(t, offer_from("bob", "b2"));
    assert!(
        receiving(&s, "bob").is_empty(),
        "a new connection has its own"
    );
}

fn media_states(actions: &[Action]) -> Vec<&MediaState> {
    actions
        .iter()
        .filter_map(|action| match action {
            Action::Emit(Outgoing::MediaState(state)) => Some(state),
            _ => None,
        })
        .collect()
}

fn working(source: Source, working: bool) -> Input {
    Input::SourceWorking { source, working }
}

#[test]
fn a_camera_that_does_not_work_is_announced_off_and_back_on_when_it_works() {
    let (mut s, t) = in_call_with("ada", &["bob"]);
    let actions = s.handle(t, working(Source::Camera, false));
    let states = media_states(&actions);
    assert_eq!(states.len(), 1);
    assert_eq!(states[0].video_enabled, Some(false));
    assert_eq!(states[0].audio_enabled, Some(true));
    assert!(!s.snapshot().video_enabled, "the window shows it off too");
    assert!(
        !actions
            .iter()
            .any(|a| matches!(a, Action::SetSources { camera: false, .. })),
        "the source keeps trying its device"
    );
    assert!(media_states(&s.handle(t, working(Source::Camera, false))).is_empty());
    let states = s.handle(t, working(Source::Camera, true));
    assert_eq!(media_states(&states)[0].video_enabled, Some(true));
    assert!(s.snapshot().video_enabled);
}

#[test]
fn a_source_switched_off_stays_off_when_its_device_comes_back() {
    let (mut s, t) = in_call_with("ada", &["bob"]);
    s.handle(t, working(Source::Audio, false));
    s.handle(t, Input::Command(Command::SetMicrophone(false)));
    let actions = s.handle(t, working(Source::Audio, true));
    assert!(
        media_states(&actions).is_empty(),
        "still off: nothing changed"
    );
    assert!(!s.snapshot().audio_enabled);
}

#[test]
fn a_device_failure_before_joining_is_in_the_first_announcement() {
    let (mut s, t) = session("ada");
    s.handle(t, Input::SignalingConnected);
    assert!(media_states(&s.handle(t, working(Source::Camera, false))).is_empty());
    let actions = s.handle(t, joined("ada", &["bob"]));
    assert_eq!(media_states(&actions)[0].video_enabled, Some(false));
}

fn joined_on_sfu(self_id: &str, others: &[&str]) -> Input {
    let Input::Joined(joined) = joined(self_id, others) else {
        unreachable!()
    };
    Input::Joined(SessionJoined {
        topology: Topology::Sfu,
        offer_to: None,
        ..joined
    })
}

fn from_sfu(kind: SdpKind) -> Input {
    Input::SfuDescription(SfuDescription {
        description: sdp(kind, "900"),
        sources: Vec::new(),
        tracks: Vec::new(),
    })
}

#[test]
fn in_a_class_on_the_sfu_one_link_to_the_server_is_offered_and_no_mesh_link() {
    let (mut s, now) = session("ada");
    s.handle(now, Input::SignalingConnected);
    let actions = s.handle(now, joined_on_sfu("ada", &["bob", "cy"]));
    let opened: Vec<&LinkId> = actions
        .iter()
        .filter_map(|a| match a {
            Action::OpenLink { link, offer, .. } => {
                assert!(*offer, "we offer first");
                Some(link)
            }
            _ => None,
        })
        .collect();
    assert_eq!(opened, [&LinkId::Sfu]);
    // Our offer goes to the server with what each of our m-lines sends.
    let offer = SessionDescription {
        kind: SdpKind::Offer,
        sdp: "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:0\r\nm=video 9 UDP/TLS/RTP/SAVPF 102\r\na=mid:1\r\nm=video 9 UDP/TLS/RTP/SAVPF 102\r\na=mid:2\r\n".to_owned(),
    };
    let actions = s.handle(
        now,
        Input::LocalDescription {
            link: LinkId::Sfu,
            description: offer,
        },
    );
    let [Action::Emit(Outgoing::SfuDescription(sent))] = actions.as_slice() else {
        panic!("{actions:?}");
    };
    let sources: Vec<(&str, classroom_wire::MediaSource)> = sent
        .sources
        .iter()
        .map(|s| (s.mid.as_str(), s.source))
        .collect();
    use classroom_wire::MediaSource::{Audio, Camera, Screen};
    assert_eq!(sources, [("0", Audio), ("1", Camera), ("2", Screen)]);
    // The server's offer while ours waits: ignored (the server yields).
    assert!(s.handle(now, from_sfu(SdpKind::Offer)).is_empty());
    let actions = s.handle(now, from_sfu(SdpKind::Answer));
    assert!(matches!(
        actions.as_slice(),
        [Action::AcceptAnswer {
            link: LinkId::Sfu,
            ..
        }]
    ));
    // Now the server's offer of the others' tracks is taken.
    let actions = s.handle(now, from_sfu(SdpKind::Offer));
    assert!(matches!(
        actions.as_slice(),
        [Action::AcceptOffer {
            link: LinkId::Sfu,
            replace: false,
            ..
        }]
    ));
    // Everyone's connection is the one to the SFU; tracks say whose they are.
    s.handle(
        now,
        Input::LinkState {
            link: LinkId::Sfu,
            state: PeerConnState::Connected,
        },
    );
    s.handle(
        now,
        Input::RemoteTrack {
            link: LinkId::Sfu,
            owner: "bob".to_owned(),
            source: Source::Camera,
        },
    );
    let snapshot = s.snapshot();
    let bob = snapshot
        .participants
        .iter()
        .find(|p| p.participant.user_id == "bob")
        .unwrap();
    let cy = snapshot
        .participants
        .iter()
        .find(|p| p.participant.user_id == "cy")
        .unwrap();
    assert_eq!(bob.connection, Some(PeerConnState::Connected));
    assert_eq!(cy.connection, Some(PeerConnState::Connected));
    assert_eq!(bob.receiving, [Source::Camera]);
    assert!(cy.receiving.is_empty());
}

#[test]
fn a_rejoin_on_the_sfu_replaces_the_link_and_a_mesh_class_closes_it() {
    let (mut s, now) = session("ada");
    s.handle(now, Input::SignalingConnected);
    s.handle(now, joined_on_sfu("ada", &["bob"]));
    // After a reconnect the server knows nothing of our old connection: a fresh one.
    let actions = s.handle(now, joined_on_sfu("ada", &["bob"]));
    let links: Vec<String> = actions
        .iter()
        .filter_map(|a| match a {
            Action::CloseLink { link } => Some(format!("close {link}")),
            Action::OpenLink { link, .. } => Some(format!("open {link}")),
            _ => None,
        })
        .collect();
    assert_eq!(links, ["close the SFU", "open the SFU"]);
    // The class is a mesh again: the SFU's link goes, and we offer to bob.
    let actions = s.handle(now, joined("ada", &["bob"]));
    assert!(actions.contains(&Action::CloseLink { link: LinkId::Sfu }));
    assert_eq!(created_offers(&actions), ["bob"]);
}

#[test]
fn a_class_moved_to_a_mesh_offers_only_to_those_the_server_names() {
    let (mut s, now) = session("cy");
    s.handle(now, Input::SignalingConnected);
    s.handle(now, joined_on_sfu("cy", &["ada", "bob", "dee"]));
    let Input::Joined(moved) = joined("cy", &["ada", "bob", "dee"]) else {
        unreachable!()
    };
    let actions = s.handle(
        now,
        Input::Joined(SessionJoined {
            offer_to: Some(vec!["ada".to_owned(), "bob".to_owned()]),
            ..moved
        }),
    );
    assert!(actions.contains(&Action::CloseLink { link: LinkId::Sfu }));
    // dee joined after us: it offers to us.
    assert_eq!(created_offers(&actions), ["ada", "bob"]);
}

// ---- the classroom controls ---------------------------------------------------------------

fn class(input: ClassInput) -> Input {
    Input::Class(input)
}

fn emitted_media_state(actions: &[Action]) -> Option<&MediaState> {
    actions.iter().find_map(|a| match a {
        Action::Emit(Outgoing::MediaState(m)) => Some(m),
        _ => None,
    })
}

#[test]
fn an_instructor_muting_us_turns_the_microphone_off_and_says_who() {
    let (mut s, t) = session("ada");
    s.handle(t, Input::SignalingConnected);
    s.handle(t, joined("ada", &["grace"]));
    let actions = s.handle(
        t,
        class(ClassInput::Moderated(classroom_wire::Moderated {
            action: classroom_wire::ModeratedAction::Mute,
            by_user_id: "grace".into(),
            by_user_name: "Grace".into(),
        })),
    );
    assert!(actions.contains(&Action::SetSources {
        audio: false,
        camera: true,
        screen: false
    }));
    assert_eq!(
        emitted_media_state(&actions).unwrap().audio_enabled,
        Some(false)
    );
    let snapshot = s.snapshot();
    assert!(!snapshot.audio_enabled);
    assert_eq!(snapshot.class.notice.as_deref(), Some("Grace muted you"));
    // Unmuting stays ours.
    let actions = s.handle(t, Input::Command(Command::SetMicrophone(true)));
    assert_eq!(
        emitted_media_state(&actions).unwrap().audio_enabled,
        Some(true)
    );
    s.handle(t, Input::Command(Command::DismissNotice));
    assert_eq!(s.snapshot().class.notice, None);
}

#[test]
fn what_the_class_locks_goes_off_and_stays_off_until_unlocked() {
    let (mut s, t) = session("ada");
    s.handle(t, Input::SignalingConnected);
    s.handle(t, joined("ada", &["grace"]));
    let locks = classroom_wire::ClassSettings {
        locks: classroom_wire::LockSettings {
            camera: true,
            ..Default::default()
        },
        ..Default::default()
    };
    let actions = s.handle(t, class(ClassInput::Settings(locks)));
    assert_eq!(
        emitted_media_state(&actions).unwrap().video_enabled,
        Some(false)
    );
    let actions = s.handle(t, Input::Command(Command::SetCamera(true)));
    assert!(actions.is_empty(), "a locked camera stays off: {actions:?}");
    assert!(!s.snapshot().video_enabled);
    assert!(s.snapshot().last_error.unwrap().contains("locked cameras"));
    s.handle(t, class(ClassInput::Settings(Default::default())));
    let actions = s.handle(t, Input::Command(Command::SetCamera(true)));
    assert_eq!(
        emitted_media_state(&actions).unwrap().video_enabled,
        Some(true)
    );
}

#[test]
fn a_join_into_a_locked_class_sends_nothing_locked() {
    let (mut s, t) = session("ada");
    s.handle(t, Input::SignalingConnected);
    let Input::Joined(mut j) = joined("ada", &["grace"]) else {
        unreachable!()
    };
    j.settings.locks.microphone = true;
    let actions = s.handle(t, Input::Joined(j));
    let state = emitted_media_state(&actions).unwrap();
    assert_eq!(state.audio_enabled, Some(false), "never announced on");
}

#[test]
fn removed_or_ended_the_class_is_over_and_nothing_rejoins() {
    let (mut s, t) = session("ada");
    s.handle(t, Input::SignalingConnected);
    s.handle(t, joined("ada", &["grace"]));
    let actions = s.handle(
        t,
        class(ClassInput::Removed(classroom_wire::Removed {
            by_user_name: "Grace".into(),
            barred_until: Some(1),
        })),
    );
    assert!(actions.contains(&Action::Finished));
    assert!(actions.contains(&Action::CloseLink {
        link: LinkId::Peer("grace".into())
    }));
    assert!(actions.iter().any(|a| matches!(a, Action::Notify(SessionEvent::ClassOver { why }) if why.starts_with("Grace removed you"))));
    assert!(s.handle(t, Input::SignalingConnected).is_empty());
    assert!(s.snapshot().class.ended.is_some());
}

#[test]
fn waiting_to_be_admitted_is_not_joined_until_session_joined() {
    let (mut s, t) = session("ada");
    s.handle(t, Input::SignalingConnected);
    s.handle(
        t,
        class(ClassInput::Waiting(classroom_wire::JoinWaiting {
            waiting: true,
            session_id: "class".into(),
            position: 2,
        })),
    );
    let snapshot = s.snapshot();
    assert!(!snapshot.joined);
    assert_eq!(snapshot.class.waiting_position, Some(2));
    s.handle(t, joined("ada", &["grace"]));
    assert_eq!(s.snapshot().class.waiting_position, None);
    assert!(s.snapshot().joined);
}

#[test]
fn controls_go_to_our_server_only() {
    let (mut s, t) = session("grace");
    s.handle(t, Input::SignalingConnected);
    s.handle(t, joined_via_browser_relay("grace", &["ada"]));
    let mute = Command::Moderate(classroom_wire::Moderation::MuteAll);
    assert!(s.handle(t, Input::Command(mute.clone())).is_empty());
    let (mut s, t) = session("grace");
    s.handle(t, Input::SignalingConnected);
    s.handle(t, joined("grace", &["ada"]));
    assert_eq!(
        s.handle(t, Input::Command(mute)),
        vec![Action::Emit(Outgoing::Moderate(
            classroom_wire::Moderation::MuteAll
        ))]
    );
}

fn a_poll(poll_id: &str) -> classroom_wire::Poll {
    classroom_wire::Poll {
        poll_id: poll_id.to_owned(),
        question: "Which planet is largest?".to_owned(),
        kind: classroom_wire::PollKind::Single,
        options: vec!["Mars".into(), "Jupiter".into(), "Venus".into()],
        anonymous: false,
        quiz: false,
        opened_at: 0,
    }
}

fn results(poll_id: &str, totals: Vec<u32>, closed: bool) -> classroom_wire::PollResults {
    classroom_wire::PollResults {
        poll_id: poll_id.to_owned(),
        question: "Which planet is largest?".to_owned(),
        options: vec!["Mars".into(), "Jupiter".into(), "Venus".into()],
        voters: totals.iter().sum(),
        totals,
        answers: vec![],
        texts: vec![],
        correct: None,
        closed,
    }
}

#[test]
fn a_poll_is_shown_answered_once_per_choice_and_closed() {
    let (mut s, t) = session("ada");
    s.handle(t, Input::SignalingConnected);
    s.handle(t, joined("ada", &["grace"]));
    s.handle(t, class(ClassInput::PollOpened(a_poll("p1"))));
    let view = s.snapshot().class.poll.expect("the poll is shown");
    assert_eq!((view.poll.poll_id.as_str(), view.closed), ("p1", false));
    let actions = s.handle(
        t,
        Input::Command(Command::Vote {
            choices: vec![1],
            text: None,
        }),
    );
    assert_eq!(
        actions,
        vec![Action::Emit(Outgoing::Vote(classroom_wire::Vote {
            poll_id: "p1".into(),
            choices: vec![1],
            text: None,
        }))]
    );
    assert_eq!(s.snapshot().class.poll.unwrap().our_choices, [1]);
    // Results of another poll are not this one's.
    s.handle(
        t,
        class(ClassInput::PollResults(results("p0", vec![1, 0, 0], true))),
    );
    assert_eq!(s.snapshot().class.poll.unwrap().results, None);
    s.handle(
        t,
        class(ClassInput::PollClosed(classroom_wire::PollClosed {
            poll_id: "p1".into(),
        })),
    );
    assert!(s.snapshot().class.poll.unwrap().closed);
    assert!(
        s.handle(
            t,
            Input::Command(Command::Vote {
                choices: vec![0],
                text: None,
            })
        )
        .is_empty(),
        "a closed poll takes no vote"
    );
    s.handle(
        t,
        class(ClassInput::PollResults(results("p1", vec![2, 5, 1], true))),
    );
    let shown = s.snapshot().class.poll.unwrap().results.unwrap();
    assert_eq!((shown.totals, shown.voters), (vec![2, 5, 1], 8));
}

#[test]
fn a_rejoin_keeps_our_answer_to_the_poll_still_open() {
    let (mut s, t) = session("ada");
    s.handle(t, Input::SignalingConnected);
    s.handle(t, joined("ada", &["grace"]));
    s.handle(t, class(ClassInput::PollOpened(a_poll("p1"))));
    s.handle(
        t,
        Input::Command(Command::Vote {
            choices: vec![2],
            text: None,
        }),
    );
    let Input::Joined(mut again) = joined("ada", &["grace"]) else {
        unreachable!()
    };
    again.poll = Some(a_poll("p1"));
    s.handle(t, Input::Joined(again.clone()));
    assert_eq!(s.snapshot().class.poll.unwrap().our_choices, [2]);
    again.poll = None;
    s.handle(t, Input::Joined(again));
    assert_eq!(s.snapshot().class.poll, None, "no poll open: none shown");
}

#[test]
fn a_batch_of_participant_updates_updates_the_others_and_leaves_our_own_state_alone() {
    let (mut s, t) = in_call_with("ada", &["bob", "cy"]);
    s.handle(t, Input::Command(Command::RaiseHand(true)));
    let batch: classroom_wire::ParticipantsUpdated = serde_json::from_value(serde_json::json!({
    "participants": [
        {"userId": "bob", "userName": "Bob", "handRaised": true},
        {"userId": "ada", "userName": "Me", "handRaised": false, "audioEnabled": false},
        {"userId": "cy", "userName": "Cy", "audioEnabled": false},
    ]}))
    .expect("a batch parses");
    s.handle(t, Input::ParticipantsUpdated(batch));
    let snapshot = s.snapshot();
    // Our own entry (older than our raised hand) changes nothing and is no remote participant.
    assert!(snapshot.hand_raised);
    assert_eq!(snapshot.participants.len(), 2);
    let by_id = |id: &str| {
        snapshot
            .participants
            .iter()
            .find(|p| p.participant.user_id == id)
            .map(|p| p.participant.clone())
            .expect("in the roster")
    };
    assert!(by_id("bob").hand_raised);
    assert!(!by_id("cy").audio_enabled);
}
