//! What a join and a settings change ask of the call, decided without IO: the inputs the
//! settings describe, the call's configuration, and the local class's invitation.

use classroom_wire::IceServer;

use super::model::{JoinTarget, ServerChoice, Settings, VideoQuality};
use crate::call::sender::{AudioInput, VideoInput};
use crate::call::{CallConfig, ClassServer};
use crate::media::voice::VoiceProcessingConfig;
use crate::session::SessionConfig;

/// How a participant joins: camera and microphone on or off, and audio devices at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct MediaChoice {
    pub camera_on: bool,
    pub mic_on: bool,
    /// Open a microphone and speakers at all ("Join without audio" turns both off).
    pub audio_devices: bool,
}

/// The screens' frame rate: text stays sharp, motion is secondary.
const SCREEN_FPS: f64 = 15.0;

/// The call for `target` with `settings`, reaching the class server at `server`.
pub(crate) fn call_config(
    target: &JoinTarget,
    settings: &Settings,
    server: ClassServer,
    user_id: &str,
    media: MediaChoice,
    extra_ice_servers: &[IceServer],
) -> CallConfig {
    let mut session = SessionConfig::new(&target.session, user_id, &target.name, target.instructor);
    session.audio_enabled = media.mic_on && media.audio_devices;
    session.video_enabled = media.camera_on;
    session.extra_ice_servers = extra_ice_servers.to_vec();
    let bind_ip = match target.server {
        // A local class stays on this machine.
        ServerChoice::Local { .. } => std::net::IpAddr::from([127, 0, 0, 1]),
        ServerChoice::Remote(_) => std::net::IpAddr::from([0, 0, 0, 0]),
    };
    let audio = audio_input(settings, media);
    let mut config = CallConfig::new(server, session, bind_ip);
    config.camera = camera_input(settings);
    config.screen = screen_input(&settings.screen).unwrap_or(VideoInput::None);
    config.voice =
        (settings.voice_processing && audio != AudioInput::Tone).then_some(settings.voice_stages);
    config.audio = audio;
    config.speaker = media.audio_devices.then(|| settings.speaker.clone());
    config
}

/// The microphone the settings pick (`tone`: the test tone, not a device).
pub(crate) fn audio_input(settings: &Settings, media: MediaChoice) -> AudioInput {
    match settings.microphone.as_deref() {
        _ if !media.audio_devices => AudioInput::None,
        Some("tone") => AudioInput::Tone,
        name => AudioInput::Microphone(name.map(str::to_owned)),
    }
}

/// The voice processing the settings ask for (all off when switched off as a whole).
pub(crate) fn voice_config(settings: &Settings) -> VoiceProcessingConfig {
    if settings.voice_processing {
        settings.voice_stages
    } else {
        VoiceProcessingConfig::all_off()
    }
}

/// The camera the settings describe (an id that is not a camera's index: the test pattern).
pub(crate) fn camera_input(settings: &Settings) -> VideoInput {
    let (width, height) = match settings.video_quality {
        VideoQuality::Low => (640, 360),
        VideoQuality::Standard => (1280, 720),
    };
    match settings.camera.parse::<u32>() {
        Ok(index) => VideoInput::Camera {
            index,
            width,
            height,
            fps: 30.0,
        },
        Err(_) => VideoInput::Synthetic {
            width,
            height,
            fps: 30.0,
        },
    }
}

/// The screen input for a screen id of the pickers ([`super::device_lists`] makes them).
pub(crate) fn screen_input(id: &str) -> Option<VideoInput> {
    let fps = SCREEN_FPS;
    match id {
        "portal" => return Some(VideoInput::PortalScreen { fps }),
        "auto" => {
            return Some(
                if crate::media::portal_screen::portal_unavailable().is_none() {
                    VideoInput::PortalScreen { fps }
                } else {
                    VideoInput::X11Screen { fps, display: None }
                },
            );
        }
        "synthetic" => {
            return Some(VideoInput::Synthetic {
                width: 1280,
                height: 720,
                fps,
            });
        }
        _ => {}
    }
    if let Some(window) = id.strip_prefix("x11window:") {
        return Some(VideoInput::X11Window {
            fps,
            window: window.parse().ok()?,
        });
    }
    let display = id.strip_prefix("x11:")?.parse().ok()?;
    Some(VideoInput::X11Screen {
        fps,
        display: Some(display),
    })
}

/// How others on this computer join the local class: the links carry this launch's key,
/// without which the class server lets no one in.
pub(crate) fn invitation(url: &str, session: &str, key: &str) -> String {
    let session_q = query_escape(session);
    format!(
        "Local class {session:?}: others on this computer join from a browser at \
         {url}/?session={session_q}&key={key}\n  or with: classroom join --server {url} \
         --session {session_q} --key {key}"
    )
}

/// Percent-escapes what a query value may not hold as it is.
fn query_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(byte as char)
            }
            _ => out.push_str(&format!("%{byte:02X}")),
        }
    }
    out
}

/// A user id of our own for servers in development mode (a token's id wins elsewhere):
/// the name's letters and digits, and `salt` (the time) so two windows differ.
pub(crate) fn local_user_id(name: &str, salt: u32) -> String {
    let slug: String = name
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .take(16)
        .collect::<String>()
        .to_lowercase();
    format!("desktop-{slug}-{:06x}", salt & 0xFF_FFFF)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(server: ServerChoice) -> JoinTarget {
        JoinTarget {
            server,
            session: "math 101".into(),
            name: "Ada".into(),
            token: Some("t".into()),
            key: None,
            instructor: false,
        }
    }

    fn server() -> ClassServer {
        ClassServer {
            url: "http://127.0.0.1:3001".into(),
            token: Some("t".into()),
            key: None,
        }
    }

    const ALL: MediaChoice = MediaChoice {
        camera_on: true,
        mic_on: true,
        audio_devices: true,
    };

    #[test]
    fn a_local_class_binds_loopback_and_a_remote_one_every_interface() {
        let settings = Settings::default();
        let local = call_config(
            &target(ServerChoice::Local { port: 3001 }),
            &settings,
            server(),
            "u",
            ALL,
            &[],
        );
        assert_eq!(local.peer.bind_ip, std::net::IpAddr::from([127, 0, 0, 1]));
        let remote = call_config(
            &target(ServerChoice::Remote("https://school".into())),
            &settings,
            server(),
            "u",
            ALL,
            &[],
        );
        assert_eq!(remote.peer.bind_ip, std::net::IpAddr::from([0, 0, 0, 0]));
        assert_eq!(remote.signaling.url, "http://127.0.0.1:3001");
        assert_eq!(remote.signaling.token.as_deref(), Some("t"));
        assert_eq!(remote.session.user_id, "u");
    }

    #[test]
    fn joining_without_audio_opens_no_microphone_or_speaker_and_says_muted() {
        let settings = Settings::default();
        let media = MediaChoice {
            audio_devices: false,
            ..ALL
        };
        let config = call_config(
            &target(ServerChoice::Remote("http://s".into())),
            &settings,
            server(),
            "u",
            media,
            &[],
        );
        assert_eq!(config.audio, AudioInput::None);
        assert!(config.speaker.is_none());
        assert!(!config.session.audio_enabled);
        assert!(config.session.video_enabled);
    }

    #[test]
    fn the_test_tone_is_sent_unprocessed_and_a_microphone_with_the_chosen_stages() {
        let mut settings = Settings {
            microphone: Some("tone".into()),
            ..Settings::default()
        };
        let remote = target(ServerChoice::Remote("http://s".into()));
        let tone = call_config(&remote, &settings, server(), "u", ALL, &[]);
        assert_eq!(tone.audio, AudioInput::Tone);
        assert!(tone.voice.is_none());
        settings.microphone = Some("USB".into());
        let mic = call_config(&remote, &settings, server(), "u", ALL, &[]);
        assert_eq!(mic.audio, AudioInput::Microphone(Some("USB".into())));
        assert_eq!(mic.voice, Some(settings.voice_stages));
        settings.voice_processing = false;
        let raw = call_config(&remote, &settings, server(), "u", ALL, &[]);
        assert!(raw.voice.is_none());
        assert_eq!(voice_config(&settings), VoiceProcessingConfig::all_off());
    }

    #[test]
    fn the_policys_ice_servers_join_the_session() {
        let extra = [IceServer {
            urls: vec!["turn:turn.school:3478".into()],
            username: Some("u".into()),
            credential: Some("c".into()),
        }];
        let config = call_config(
            &target(ServerChoice::Remote("http://s".into())),
            &Settings::default(),
            server(),
            "u",
            ALL,
            &extra,
        );
        assert_eq!(config.session.extra_ice_servers, extra.to_vec());
    }

    #[test]
    fn cameras_follow_the_quality_and_unknown_ids_are_the_test_pattern() {
        let mut settings = Settings {
            camera: "2".into(),
            video_quality: VideoQuality::Low,
            ..Settings::default()
        };
        assert_eq!(
            camera_input(&settings),
            VideoInput::Camera {
                index: 2,
                width: 640,
                height: 360,
                fps: 30.0
            }
        );
        settings.camera = "synthetic".into();
        settings.video_quality = VideoQuality::Standard;
        assert_eq!(
            camera_input(&settings),
            VideoInput::Synthetic {
                width: 1280,
                height: 720,
                fps: 30.0
            }
        );
    }

    #[test]
    fn screen_ids_map_to_their_capture_and_bad_ones_to_none() {
        assert_eq!(
            screen_input("x11:1"),
            Some(VideoInput::X11Screen {
                fps: SCREEN_FPS,
                display: Some(1)
            })
        );
        assert_eq!(
            screen_input("x11window:77"),
            Some(VideoInput::X11Window {
                fps: SCREEN_FPS,
                window: 77
            })
        );
        assert_eq!(
            screen_input("portal"),
            Some(VideoInput::PortalScreen { fps: SCREEN_FPS })
        );
        assert!(screen_input("x11:abc").is_none());
        assert!(screen_input("x11window:").is_none());
        assert!(screen_input("what").is_none());
    }

    #[test]
    fn the_invitation_escapes_the_class_name_and_carries_the_key() {
        let text = invitation("http://127.0.0.1:3001", "math & art", "k3y");
        assert!(
            text.contains("/?session=math%20%26%20art&key=k3y"),
            "{text}"
        );
        assert!(
            text.contains("--session math%20%26%20art --key k3y"),
            "{text}"
        );
    }

    #[test]
    fn local_user_ids_keep_the_names_letters_and_differ_by_salt() {
        assert_eq!(
            local_user_id("Ada Lovelace!", 0xABC),
            "desktop-adalovelace-000abc"
        );
        assert_ne!(local_user_id("Ada", 1), local_user_id("Ada", 2));
        assert_eq!(local_user_id("", 0x1_000_001), "desktop--000001");
    }
}
