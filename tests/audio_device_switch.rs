//! Switching the microphone and speaker during a call, on real ALSA streams (the `null`
//! device, as in `audio_alsa.rs`): a call joined through our signaling server (in process, dev
//! mode, loopback only) opens the devices; a switch to a device that does not exist is
//! reported in plain words and starts the voice processing over; a switch back reopens the
//! devices and the microphone's frames flow through the stage again.

use std::time::{Duration, Instant};

use classroom::call::sender::{AudioDevices, AudioInput, VideoInput};
use classroom::call::{CallConfig, CallHandle, StatsCursor};
use classroom::media::audio_device::{AudioDeviceInfo, input_devices, output_devices};
use classroom::media::voice::VoiceProcessingConfig;
use classroom::rtc::PeerOptions;
use classroom::session::SessionConfig;
use classroom::signaling::SignalingConfig;

async fn wait_for(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// ALSA's `null` device (cpal names it by its description), else the first one.
fn null_device(devices: &[AudioDeviceInfo]) -> String {
    devices
        .iter()
        .find(|d| d.name.starts_with("Discard all samples"))
        .or(devices.first())
        .map(|d| d.name.clone())
        .expect("at least ALSA's null device")
}

fn capture_frames(call: &CallHandle) -> u64 {
    call.voice_stats().map_or(0, |s| s.capture_frames)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn microphone_and_speaker_switch_mid_call_and_the_stage_starts_over() {
    let null = null_device(&input_devices().expect("ALSA lists input devices"));
    let null_out = null_device(&output_devices().expect("ALSA lists output devices"));
    let server = classroom_signaling::start(classroom_signaling::ServerConfig {
        listen: std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
        dev_mode: true,
        auto_create_sessions: true,
        ice_servers: Vec::new(),
        ..classroom_signaling::ServerConfig::default()
    })
    .await
    .expect("signaling server starts");
    let call = classroom::call::start(CallConfig {
        signaling: SignalingConfig {
            url: server.url(),
            token: None,
            key: None,
            websocket_only: true,
        },
        session: SessionConfig::new("switch", "desk-1", "Desk", false),
        peer: PeerOptions {
            bind_ip: std::net::IpAddr::from([127, 0, 0, 1]),
            ..PeerOptions::default()
        },
        camera: VideoInput::None,
        screen: VideoInput::None,
        audio: AudioInput::Microphone(Some(null.clone())),
        voice: Some(VoiceProcessingConfig::default()),
        speaker: Some(Some(null_out.clone())),
        connect_timeout: Duration::from_secs(10),
        pictures: None,
    })
    .await
    .expect("the call starts");

    wait_for("the microphone's frames", Duration::from_secs(10), || {
        capture_frames(&call) >= 50
    })
    .await;
    let audio_report = |call: &CallHandle| {
        call.local_report(&mut StatsCursor::default())
            .get("audio")
            .cloned()
    };
    assert_eq!(
        audio_report(&call).and_then(|r| r.device_error),
        None,
        "no device error before the switch"
    );

    // A microphone that is not there (unplugged between the listing and the choice).
    call.choose_audio_devices(AudioDevices {
        microphone: Some("no-such-microphone".into()),
        speaker: Some(null_out.clone()),
    });
    wait_for("the first switch", Duration::from_secs(5), || {
        call.audio_switches() == 1
    })
    .await;
    let error = audio_report(&call)
        .and_then(|r| r.device_error)
        .expect("the missing microphone is reported")
        .to_string();
    assert!(
        error.contains("microphone") && error.contains("no-such-microphone"),
        "{error}"
    );
    let stats = call.voice_stats().expect("voice stats");
    assert_eq!(stats.resets, 1, "{stats:?}");
    // Nothing is captured from a microphone that did not open.
    let frames = capture_frames(&call);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(capture_frames(&call) <= frames + 1);

    // Back to a working microphone: the error is cleared and frames flow again.
    call.choose_audio_devices(AudioDevices {
        microphone: Some(null.clone()),
        speaker: Some(null_out.clone()),
    });
    wait_for("the second switch", Duration::from_secs(5), || {
        call.audio_switches() == 2
    })
    .await;
    let resumed_from = capture_frames(&call);
    wait_for(
        "frames from the new microphone",
        Duration::from_secs(10),
        || capture_frames(&call) >= resumed_from + 50,
    )
    .await;
    let stats = call.voice_stats().expect("voice stats");
    assert_eq!(stats.resets, 2, "{stats:?}");
    assert_eq!(audio_report(&call).and_then(|r| r.device_error), None);

    // Choosing what is already open changes nothing.
    call.choose_audio_devices(AudioDevices {
        microphone: Some(null.clone()),
        speaker: Some(null_out.clone()),
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(call.audio_switches(), 2);

    call.command(classroom::session::Command::Leave);
    tokio::time::timeout(Duration::from_secs(10), call.finished())
        .await
        .expect("the call ends after leaving");
    server.shutdown().await.expect("server shuts down");
}
