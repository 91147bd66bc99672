//! The call's rules end to end, fast: several participants, each the real engine and session,
//! on an in-memory relay and simulated links, in virtual time (tokio's paused clock). No
//! root, no network namespace, no media threads; the whole file runs in well under a second.
//! The end-to-end tests in `tests/` prove the same on real parts.

use std::collections::BTreeMap;
use std::time::Duration;

use super::simulated::{FAIL_AFTER, Network, Relay, SimulatedLinks};
use super::*;
use crate::session::SessionConfig;
use crate::signaling::SignalingConfig;
use crate::types::{PeerConnState, VideoCodec};

/// A class on the simulated parts.
#[derive(Default)]
struct Class {
    relay: Relay,
    network: Network,
    calls: BTreeMap<String, CallHandle>,
}

fn config(user_id: &str) -> CallConfig {
    CallConfig {
        signaling: SignalingConfig {
            url: "http://relay.invalid".to_owned(),
            token: None,
            key: None,
            websocket_only: false,
        },
        session: SessionConfig::new("class", user_id, &user_id.to_uppercase(), false),
        peer: PeerOptions::default(),
        camera: VideoInput::None,
        screen: VideoInput::None,
        audio: AudioInput::None,
        voice: None,
        speaker: None,
        connect_timeout: Duration::from_secs(1),
        pictures: None,
    }
}

impl Class {
    fn join(&mut self, user_id: &str) {
        self.join_with(user_id, VideoCodec::H264);
    }

    /// Joins with links that carry `video_codec` when the other side has it (VP8: a Firefox
    /// without its H.264 plugin).
    fn join_with(&mut self, user_id: &str, video_codec: VideoCodec) {
        let (port, inputs) = self.relay.connect(user_id);
        let links = SimulatedLinks {
            network: self.network.clone(),
            self_user_id: user_id.to_owned(),
            video_codec,
        };
        let call = start_engine(
            config(user_id),
            TestInputs::default(),
            inputs,
            Arc::new(port),
            Arc::new(links),
        );
        self.calls.insert(user_id.to_owned(), call);
    }

    fn call(&self, user_id: &str) -> &CallHandle {
        &self.calls[user_id]
    }

    fn snapshot(&self, user_id: &str) -> Snapshot {
        self.call(user_id).snapshot.borrow().clone()
    }

    /// How `user_id` sees its link to `other`.
    fn connection(&self, user_id: &str, other: &str) -> Option<PeerConnState> {
        self.snapshot(user_id)
            .participants
            .iter()
            .find(|summary| summary.participant.user_id == other)
            .and_then(|summary| summary.connection)
    }

    fn all_connected(&self) -> bool {
        self.calls.keys().all(|me| {
            self.calls
                .keys()
                .filter(|other| *other != me)
                .all(|other| self.connection(me, other) == Some(PeerConnState::Connected))
        })
    }
}

/// Lets virtual time pass until `check` holds; fails after 60 s of it.
async fn until(what: &str, mut check: impl FnMut() -> bool) {
    for _ in 0..6000 {
        if check() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("{what}: not within 60 s of virtual time");
}

async fn class_of(users: &[&str]) -> Class {
    let mut class = Class::default();
    for user in users {
        class.join(user);
        until(&format!("{user} joined"), || class.snapshot(user).joined).await;
    }
    until("everyone connected to everyone", || class.all_connected()).await;
    class
}

#[tokio::test(start_paused = true)]
async fn joining_participants_connect_to_everyone_already_there() {
    let class = class_of(&["ada", "bob", "cy"]).await;
    for user in ["ada", "bob", "cy"] {
        let snapshot = class.snapshot(user);
        assert_eq!(snapshot.participants.len(), 2, "{user} sees the two others");
        assert_eq!(
            class.network.links_of(user).len(),
            2,
            "{user} holds two links"
        );
    }
    // The newcomer offered: each link has one end built by an offer of the later joiner.
    assert_eq!(class.relay.members(), vec!["ada", "bob", "cy"]);
}

#[tokio::test(start_paused = true)]
async fn a_participant_who_leaves_is_gone_from_every_roster_and_its_links_close() {
    let class = class_of(&["ada", "bob", "cy"]).await;
    class.call("cy").command(Command::Leave);
    until("cy is gone from the others' rosters", || {
        ["ada", "bob"]
            .iter()
            .all(|user| class.snapshot(user).participants.len() == 1)
    })
    .await;
    until("cy's call finished", || class.call("cy").is_finished()).await;
    until("every link to or from cy closed", || {
        class.network.links_of("cy").is_empty()
            && class.network.generation("ada", "cy").is_none()
            && class.network.generation("bob", "cy").is_none()
    })
    .await;
    assert_eq!(
        class.connection("ada", "bob"),
        Some(PeerConnState::Connected)
    );
}

#[tokio::test(start_paused = true)]
async fn an_outage_fails_ice_and_the_restart_brings_the_same_link_back() {
    let class = class_of(&["ada", "bob"]).await;
    let generation = class.network.generation("bob", "ada");
    class.network.cut("ada", "bob");
    until("the outage is seen as a failure", || {
        class.connection("bob", "ada") == Some(PeerConnState::Failed)
    })
    .await;
    // Back before the restart's time runs out: the restarted link carries on.
    class.network.restore("ada", "bob");
    until("the link recovered", || class.all_connected()).await;
    assert_eq!(
        class.network.generation("bob", "ada"),
        generation,
        "an ICE restart on the same link, not a new one"
    );
}

#[tokio::test(start_paused = true)]
async fn a_link_that_does_not_recover_in_time_is_replaced_by_a_new_one() {
    let class = class_of(&["ada", "bob"]).await;
    let generation = class.network.generation("bob", "ada").expect("a link");
    class.network.cut("ada", "bob");
    let restart_timeout = SessionConfig::new("c", "u", "n", false).restart_timeout;
    tokio::time::sleep(FAIL_AFTER + restart_timeout + Duration::from_secs(1)).await;
    until("bob (who offered) built a new link", || {
        class
            .network
            .generation("bob", "ada")
            .is_some_and(|now| now > generation)
    })
    .await;
    class.network.restore("ada", "bob");
    until("the new link connected", || class.all_connected()).await;
}

#[tokio::test(start_paused = true)]
async fn a_lost_picture_brings_a_keyframe_request_to_the_sender() {
    let class = class_of(&["ada", "bob"]).await;
    let requests = |user: &str| {
        class.call(user).local_report(&mut StatsCursor::default())["camera"]
            .keyframe_requests_received
    };
    assert_eq!(requests("ada"), 0);
    class.network.lose_picture("ada", "bob", Source::Camera);
    until("ada's camera was asked for a keyframe", || {
        requests("ada") == 1
    })
    .await;
    assert_eq!(requests("bob"), 0, "only the sender is asked");
}

#[tokio::test(start_paused = true)]
async fn after_a_server_restart_everyone_rejoins_and_the_links_stay() {
    let class = class_of(&["ada", "bob", "cy"]).await;
    let generations: Vec<_> = [("ada", "bob"), ("bob", "cy"), ("cy", "ada")]
        .iter()
        .map(|(a, b)| class.network.generation(a, b))
        .collect();
    for user in ["ada", "bob", "cy"] {
        class.relay.drop_socket(user);
    }
    until("everyone saw the socket drop", || {
        ["ada", "bob", "cy"]
            .iter()
            .all(|user| !class.snapshot(user).signaling_connected)
    })
    .await;
    for user in ["ada", "bob", "cy"] {
        class.relay.reconnect(user);
    }
    until("everyone rejoined and sees the others", || {
        ["ada", "bob", "cy"]
            .iter()
            .all(|user| class.snapshot(user).joined && class.snapshot(user).participants.len() == 2)
    })
    .await;
    assert!(class.all_connected());
    let after: Vec<_> = [("ada", "bob"), ("bob", "cy"), ("cy", "ada")]
        .iter()
        .map(|(a, b)| class.network.generation(a, b))
        .collect();
    assert_eq!(
        after, generations,
        "working links are kept across the restart"
    );
}

#[tokio::test(start_paused = true)]
async fn chat_written_during_a_socket_drop_reaches_everyone_after_the_rejoin() {
    let class = class_of(&["ada", "bob"]).await;
    class.relay.drop_socket("ada");
    until("ada saw the drop", || {
        !class.snapshot("ada").signaling_connected
    })
    .await;
    class
        .call("ada")
        .command(Command::SendChat("written offline".to_owned()));
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(
        class.snapshot("bob").chat.is_empty(),
        "nothing while ada is away"
    );
    class.relay.reconnect("ada");
    until("bob got ada's message", || {
        class
            .snapshot("bob")
            .chat
            .iter()
            .any(|message| message.message == "written offline" && message.user_id == "ada")
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn a_vp8_only_participant_gets_vp8_while_the_others_keep_h264() {
    let mut class = class_of(&["ada", "bob"]).await;
    class.join_with("fox", VideoCodec::Vp8);
    until("fox connected to everyone", || class.all_connected()).await;
    let encoded = |user: &str| -> Vec<VideoCodec> {
        let controls = class.call(user).local.controls.read();
        let camera = &controls.as_ref().expect("media started")[1];
        VideoCodec::ALL
            .into_iter()
            .filter(|codec| camera.codec_in_use(*codec))
            .collect()
    };
    for user in ["ada", "bob"] {
        assert_eq!(
            encoded(user),
            vec![VideoCodec::H264, VideoCodec::Vp8],
            "{user} encodes H.264 for the other and VP8 for fox"
        );
    }
    assert_eq!(encoded("fox"), vec![VideoCodec::Vp8]);
    // fox leaves: VP8 is no longer encoded.
    class.call("fox").command(Command::Leave);
    until("ada stopped encoding VP8", || {
        encoded("ada") == vec![VideoCodec::H264]
    })
    .await;
}
