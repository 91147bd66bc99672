//! The call's figures as the window shows them, decided without IO: who is speaking, how
//! each connection is doing, the "you are muted" hint, a failed device in words, and the
//! notices worth a line on screen.

use std::collections::{BTreeMap, HashMap};

use super::model::{LiveClass, NetworkQuality, RemoteLive};
use super::words::device_problem_words;
use crate::call::LocalSourceReport;
use crate::call::stats::RemoteReport;
use crate::media::voice::VoiceProcessingStats;
use crate::session::{SessionEvent, Snapshot};
use crate::types::PeerConnState;

/// Level above which a participant counts as speaking, dBFS.
pub(crate) const SPEAKING_DBFS: f64 = -45.0;

/// One reading of the call: its state and the figures since the last reading.
pub(crate) struct CallReading<'a> {
    pub snapshot: Snapshot,
    pub remotes: &'a [RemoteReport],
    /// The local sources by name (`audio`, `camera`, `screen`).
    pub local: &'a HashMap<&'static str, LocalSourceReport>,
    /// The voice processing's state, when it runs.
    pub voice: Option<VoiceProcessingStats>,
}

/// Puts a reading into what the window shows.
pub(crate) fn merge_reading(live: &mut LiveClass, reading: CallReading<'_>) {
    let CallReading {
        snapshot,
        remotes,
        local,
        voice,
    } = reading;
    live.muted_talking =
        !snapshot.audio_enabled && voice.as_ref().is_some_and(|voice| voice.muted_talking);
    live.self_speaking = match &voice {
        Some(voice) => voice.speaking,
        None => local
            .get("audio")
            .and_then(|audio| audio.sent_level_dbfs)
            .is_some_and(|level| level > SPEAKING_DBFS),
    };
    // The sources in a fixed order, so the problem shown does not flicker between two.
    live.device_problem = ["audio", "camera", "screen"]
        .into_iter()
        .filter_map(|name| local.get(name))
        .find_map(|source| source.device_error.as_ref())
        .map(device_problem_words);
    live.remote = snapshot
        .participants
        .iter()
        .map(|peer| {
            let report = remotes
                .iter()
                .find(|r| r.user_id == peer.participant.user_id);
            (
                peer.participant.user_id.clone(),
                remote_live(peer.participant.audio_enabled, peer.connection, report),
            )
        })
        .collect::<BTreeMap<_, _>>();
    live.joined_once |= snapshot.joined;
    live.snapshot = snapshot;
}

/// One remote participant: speaking if unmuted and loud enough; the connection's quality
/// from its state, round trip and losses; the round trip in steps of 10 ms (steadier text).
fn remote_live(
    audio_enabled: bool,
    connection: Option<PeerConnState>,
    report: Option<&RemoteReport>,
) -> RemoteLive {
    let speaking = audio_enabled
        && report
            .and_then(|r| r.audio.as_ref())
            .and_then(|audio| audio.level_dbfs)
            .is_some_and(|level| level > SPEAKING_DBFS);
    let round_trip_ms = report.and_then(|r| r.rtt_ms).map(|ms| ms.round() as u32);
    let lost = report.map_or(0, |r| {
        r.audio.as_ref().map_or(0, |a| a.packets_lost)
            + r.video.values().map(|v| v.packets_lost).sum::<u64>()
    });
    RemoteLive {
        quality: connection.map(|state| network_quality(state, round_trip_ms, lost)),
        speaking,
        round_trip_ms: round_trip_ms.map(|ms| ms / 10 * 10),
    }
}

/// A connection's quality: good under 150 ms and 5 packets lost, poor over 400 ms or 50.
pub(crate) fn network_quality(
    state: PeerConnState,
    round_trip_ms: Option<u32>,
    lost: u64,
) -> NetworkQuality {
    match state {
        PeerConnState::Connected => match (round_trip_ms.unwrap_or(0), lost) {
            (rtt, lost) if rtt > 400 || lost > 50 => NetworkQuality::Poor,
            (rtt, lost) if rtt > 150 || lost > 5 => NetworkQuality::Fair,
            _ => NetworkQuality::Good,
        },
        PeerConnState::New | PeerConnState::Connecting => NetworkQuality::Connecting,
        PeerConnState::Disconnected | PeerConnState::Failed | PeerConnState::Closed => {
            NetworkQuality::Poor
        }
    }
}

/// The line on screen an event is worth, if any.
pub(crate) fn notice_for(event: &SessionEvent) -> Option<String> {
    Some(match event {
        SessionEvent::ParticipantJoined { user_name, .. } => format!("{user_name} joined"),
        SessionEvent::ParticipantLeft { user_name, .. } => format!("{user_name} left"),
        SessionEvent::ServerError { message, .. } => format!("The server said: {message}"),
        SessionEvent::PeerFailed { .. } => "A connection was lost; reconnecting…".into(),
        SessionEvent::SignalingLost => "Lost the class server; reconnecting…".into(),
        SessionEvent::ServerRestarting { .. } => {
            "The class server is restarting; the class goes on and reconnects.".into()
        }
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::call::stats::{AudioReport, VideoReport};
    use crate::media::device_error::{DeviceError, DeviceErrorKind};
    use crate::session::PeerSummary;
    use classroom_wire::Participant;

    fn peer(user_id: &str, audio_enabled: bool, connection: Option<PeerConnState>) -> PeerSummary {
        PeerSummary {
            participant: Participant {
                user_id: user_id.into(),
                user_name: user_id.to_uppercase(),
                is_instructor: false,
                co_instructor: false,
                audio_enabled,
                video_enabled: true,
                screen_sharing: false,
                hand_raised: false,
                joined_at: 0,
            },
            connection,
            receiving: Vec::new(),
        }
    }

    fn report(user_id: &str, rtt_ms: Option<f64>, level: Option<f64>, lost: u64) -> RemoteReport {
        RemoteReport {
            user_id: user_id.into(),
            rtt_ms,
            send_estimate_kbps: None,
            video: BTreeMap::from([("camera", video_lost(lost))]),
            audio: Some(AudioReport {
                bitrate_kbps: 32.0,
                packets: 100,
                packets_lost: 0,
                level_dbfs: level,
                markers_heard: 0,
                last_marker: None,
                decode_errors: 0,
            }),
        }
    }

    fn video_lost(packets_lost: u64) -> VideoReport {
        VideoReport {
            codec: None,
            fps: 30.0,
            bitrate_kbps: 900.0,
            frames_decoded: 300,
            stamps_read: 0,
            width: 1280,
            height: 720,
            luma_spread: 40.0,
            latency_ms_p50: None,
            latency_ms_p95: None,
            latency_ms_max: None,
            packets_lost,
            pictures_dropped: 0,
            decode_errors: 0,
            last_frame_ago_ms: None,
            first_frame_ms: None,
        }
    }

    fn local(sent_level: Option<f64>, problem: Option<DeviceError>) -> LocalSourceReport {
        LocalSourceReport {
            enabled: true,
            frames_encoded: 0,
            target_kbps: 0,
            dropped: 0,
            errors: 0,
            keyframe_requests_received: 0,
            sent_height: 0,
            device_error: problem,
            sent_level_dbfs: sent_level,
        }
    }

    fn snapshot(participants: Vec<PeerSummary>) -> Snapshot {
        Snapshot {
            joined: true,
            signaling_connected: true,
            audio_enabled: true,
            participants,
            ..Snapshot::default()
        }
    }

    fn read(
        live: &mut LiveClass,
        snapshot: Snapshot,
        remotes: &[RemoteReport],
        local: &HashMap<&'static str, LocalSourceReport>,
        voice: Option<VoiceProcessingStats>,
    ) {
        merge_reading(
            live,
            CallReading {
                snapshot,
                remotes,
                local,
                voice,
            },
        );
    }

    #[test]
    fn a_loud_unmuted_participant_speaks_and_a_muted_or_quiet_one_does_not() {
        let mut live = LiveClass::default();
        let connected = Some(PeerConnState::Connected);
        let participants = vec![
            peer("loud", true, connected),
            peer("muted", false, connected),
            peer("quiet", true, connected),
        ];
        let remotes = [
            report("loud", Some(20.0), Some(-20.0), 0),
            report("muted", Some(20.0), Some(-20.0), 0),
            report("quiet", Some(20.0), Some(-60.0), 0),
        ];
        read(
            &mut live,
            snapshot(participants),
            &remotes,
            &HashMap::new(),
            None,
        );
        assert!(live.remote["loud"].speaking);
        assert!(!live.remote["muted"].speaking);
        assert!(!live.remote["quiet"].speaking);
    }

    #[test]
    fn the_network_mark_follows_the_round_trip_and_losses_and_rounds_the_round_trip() {
        let mut live = LiveClass::default();
        let connected = Some(PeerConnState::Connected);
        let participants = vec![
            peer("near", true, connected),
            peer("far", true, connected),
            peer("lossy", true, connected),
            peer("dialing", true, Some(PeerConnState::Connecting)),
            peer("unlinked", true, None),
        ];
        let remotes = [
            report("near", Some(38.6), None, 0),
            report("far", Some(420.0), None, 0),
            report("lossy", Some(30.0), None, 6),
        ];
        read(
            &mut live,
            snapshot(participants),
            &remotes,
            &HashMap::new(),
            None,
        );
        assert_eq!(live.remote["near"].quality, Some(NetworkQuality::Good));
        assert_eq!(live.remote["near"].round_trip_ms, Some(30));
        assert_eq!(live.remote["far"].quality, Some(NetworkQuality::Poor));
        assert_eq!(live.remote["lossy"].quality, Some(NetworkQuality::Fair));
        assert_eq!(
            live.remote["dialing"].quality,
            Some(NetworkQuality::Connecting)
        );
        assert_eq!(live.remote["unlinked"], RemoteLive::default());
        assert_eq!(
            network_quality(PeerConnState::Failed, None, 0),
            NetworkQuality::Poor
        );
        assert_eq!(
            network_quality(PeerConnState::Connected, Some(151), 0),
            NetworkQuality::Fair
        );
    }

    #[test]
    fn we_speak_by_voice_activity_else_by_the_level_sent() {
        let mut live = LiveClass::default();
        let loud = HashMap::from([("audio", local(Some(-10.0), None))]);
        read(&mut live, snapshot(vec![]), &[], &loud, None);
        assert!(live.self_speaking, "no voice processing: the level decides");
        let quiet_voice = VoiceProcessingStats {
            speaking: false,
            ..VoiceProcessingStats::default()
        };
        read(&mut live, snapshot(vec![]), &[], &loud, Some(quiet_voice));
        assert!(!live.self_speaking, "voice activity wins over the level");
    }

    #[test]
    fn the_muted_hint_shows_only_while_muted() {
        let mut live = LiveClass::default();
        let talking = VoiceProcessingStats {
            muted_talking: true,
            ..VoiceProcessingStats::default()
        };
        let mut muted = snapshot(vec![]);
        muted.audio_enabled = false;
        read(
            &mut live,
            muted,
            &[],
            &HashMap::new(),
            Some(talking.clone()),
        );
        assert!(live.muted_talking);
        read(
            &mut live,
            snapshot(vec![]),
            &[],
            &HashMap::new(),
            Some(talking),
        );
        assert!(!live.muted_talking);
    }

    #[test]
    fn a_failed_device_is_shown_in_words_and_joining_is_remembered() {
        let mut live = LiveClass::default();
        let lost = DeviceError::new("camera", DeviceErrorKind::Lost, "unplugged");
        let local = HashMap::from([
            ("audio", local(None, None)),
            ("camera", local(None, Some(lost.clone()))),
        ]);
        read(&mut live, snapshot(vec![]), &[], &local, None);
        assert_eq!(live.device_problem, Some(device_problem_words(&lost)));
        assert!(live.joined_once);
        let mut dropped = snapshot(vec![]);
        dropped.joined = false;
        read(&mut live, dropped, &[], &HashMap::new(), None);
        assert!(live.joined_once, "a later loss is a reconnect");
        assert_eq!(live.device_problem, None);
        assert_eq!(
            live.connection_banner().as_deref(),
            Some("Connection to the class lost. Reconnecting…")
        );
    }

    #[test]
    fn joins_leaves_and_losses_are_worth_a_notice_and_routine_events_are_not() {
        let joined = SessionEvent::ParticipantJoined {
            user_id: "b".into(),
            user_name: "Bea".into(),
        };
        assert_eq!(notice_for(&joined).as_deref(), Some("Bea joined"));
        assert_eq!(
            notice_for(&SessionEvent::SignalingLost).as_deref(),
            Some("Lost the class server; reconnecting…")
        );
        assert_eq!(notice_for(&SessionEvent::Joined { participants: 2 }), None);
    }
}
