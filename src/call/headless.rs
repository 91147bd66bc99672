//! The headless participant: the same call engine as the desktop app, with synthetic (or X11
//! screen) media, driven by commands on stdin and printing one JSON line per event and per
//! stats interval on stdout. The workhorse of the integration tests and benchmarks.
//!
//! stdin commands, one per line: `mute`, `unmute`, `camera-off`, `camera-on`, `share-on`,
//! `share-off`, `hand-up`, `hand-down`, `chat <text>`, `view-height <pixels>`,
//! `volume <user> <percent>`, `leave`.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::json;
use tokio::io::AsyncBufReadExt;

use super::sender::{AudioInput, VideoInput};
use super::{CallConfig, CallHandle, StatsCursor, TestInputs};
use crate::media::voice::{
    EchoPath, NoiseColor, RoomNoise, SimulatedRoomConfig, VoiceProcessingConfig, VoiceStage,
};
use crate::rtc::PeerOptions;
use crate::session::{Command, SessionConfig};
use crate::signaling::SignalingConfig;
use crate::types::VideoCodec;

#[derive(Debug, Clone, clap::Args)]
pub struct HeadlessArgs {
    /// Signaling server URL.
    #[arg(
        long,
        env = "CLASSROOM_SERVER",
        default_value = "http://127.0.0.1:3001"
    )]
    pub server: String,
    /// Class session to join.
    #[arg(long, default_value = "demo-class")]
    pub session: String,
    /// User id (the server takes it from the token when one is given).
    #[arg(long, default_value = "headless")]
    pub user: String,
    /// Display name.
    #[arg(long)]
    pub name: Option<String>,
    #[arg(long)]
    pub instructor: bool,
    /// Signed token for the server's `auth.token`.
    #[arg(long, env = "CLASSROOM_TOKEN")]
    pub token: Option<String>,
    /// The join key of a local class (`auth.key`), from its invitation link.
    #[arg(long, env = "CLASSROOM_JOIN_KEY", hide_env_values = true)]
    pub key: Option<String>,
    /// Camera: `WxH@FPS` of the synthetic stamped pattern, `device:INDEX:WxH@FPS` for a real
    /// camera (nokhwa), or `none`.
    #[arg(long, default_value = "640x360@30")]
    pub camera: String,
    /// Screen: `synthetic:WxH@FPS`, `x11[@FPS]` (the X display in DISPLAY), `portal[@FPS]`
    /// (Wayland's desktop portal; the user picks), `auto[@FPS]` (the portal on Wayland, else
    /// X11) or `none`.
    #[arg(long, default_value = "synthetic:1280x720@15")]
    pub screen: String,
    /// Microphone: `tone` (the marker tone), `speech:FILE` (48 kHz mono s16le raw speech,
    /// looped, with the markers over it), `silence` (a quiet talker: only the room is heard),
    /// `mic` or `mic:DEVICE` (a real input device, cpal) or `none` (no audio sent).
    #[arg(long, default_value = "tone")]
    pub audio: String,
    /// Voice processing (echo cancellation, noise suppression, gain control, high-pass):
    /// `on` (every stage, like a browser), `off`, a comma list of the stages to run
    /// (`aec,ns,agc,hpf`), or `auto`: on, except for the marker tone, a stationary test
    /// signal that noise suppression rightly removes (the tone measures the transport).
    #[arg(long, default_value = "auto")]
    pub voice_processing: String,
    /// Play the class on an output device: `default` or a device name (cpal). Default: not
    /// played.
    #[arg(long)]
    pub speaker: Option<String>,
    /// Simulate a room: what is played comes back into the microphone.
    #[arg(long)]
    pub room: bool,
    /// Room: delay of the echo, ms.
    #[arg(long, default_value_t = 80.0)]
    pub room_delay_ms: f32,
    /// Room: length of the decaying echo tail (RT60), ms.
    #[arg(long, default_value_t = 250.0)]
    pub room_tail_ms: f32,
    /// Room: gain of the echo path, dB.
    #[arg(long, default_value_t = -6.0)]
    pub room_gain_db: f32,
    /// Room: stationary pink background noise at this level, dBFS.
    #[arg(long)]
    pub room_noise_dbfs: Option<f32>,
    /// Start muted.
    #[arg(long)]
    pub muted: bool,
    /// Start with the camera off.
    #[arg(long)]
    pub camera_off: bool,
    /// Start sharing the screen.
    #[arg(long)]
    pub share_screen: bool,
    /// Show everyone's camera at most this tall (a grid of tiles: 360 for a 2×2 grid in a
    /// 720p window); senders that understand it send no more. Default: full size.
    #[arg(long)]
    pub view_height: Option<u32>,
    /// Milliseconds between stats lines.
    #[arg(long, default_value_t = 1000)]
    pub stats_interval_ms: u64,
    /// Leave after this many seconds.
    #[arg(long)]
    pub duration_secs: Option<f64>,
    /// Save received media into this directory.
    #[arg(long)]
    pub save: Option<PathBuf>,
    /// Local address for ICE (one interface); `0.0.0.0` for every interface.
    #[arg(long, default_value = "0.0.0.0")]
    pub bind_ip: IpAddr,
    /// Only relayed candidates: every byte through the TURN servers (the policy's
    /// `force_relay`).
    #[arg(long)]
    pub force_relay: bool,
    /// ICE: time without traffic before a connection counts as failed.
    #[arg(long, default_value_t = 10_000)]
    pub ice_failed_timeout_ms: u64,
    /// Seconds to keep trying to reach the server at the start.
    #[arg(long, default_value_t = 30.0)]
    pub connect_timeout_secs: f64,
    /// Use the websocket transport only (no long-polling start).
    #[arg(long)]
    pub websocket_only: bool,
    /// Video codecs to offer and accept, in order of preference: `h264,vp8` (the default),
    /// `vp8,h264`, or just one.
    #[arg(long, default_value = "h264,vp8")]
    pub video_codecs: String,
    /// Run the pre-join connection test instead of joining: which paths to the class work
    /// from here (UDP, TURN over UDP, TCP and TLS), printed as one JSON line.
    #[arg(long)]
    pub connection_test: bool,
    /// Test input: drop this percentage of received video packets after the transport (a
    /// loss that retransmission cannot repair), to exercise keyframe requests.
    #[arg(long, default_value_t = 0.0)]
    pub simulate_receive_loss: f64,
}

/// `WxH@FPS`.
fn parse_geometry(text: &str) -> anyhow::Result<(usize, usize, f64)> {
    let (size, fps) = text.split_once('@').unwrap_or((text, "30"));
    let (width, height) = size
        .split_once('x')
        .with_context(|| format!("expected WxH@FPS, got {text:?}"))?;
    let width: usize = width.parse().context("width")?;
    let height: usize = height.parse().context("height")?;
    let fps: f64 = fps.parse().context("frames per second")?;
    if width < 64 || height < 64 || width > 7680 || height > 4320 || !(1.0..=120.0).contains(&fps) {
        bail!("{text:?} is out of range (64x64 to 7680x4320, 1 to 120 fps)");
    }
    Ok((width, height, fps))
}

fn parse_camera(text: &str) -> anyhow::Result<VideoInput> {
    if text == "none" {
        return Ok(VideoInput::None);
    }
    if let Some(rest) = text.strip_prefix("device:") {
        let (index, geometry) = rest.split_once(':').unwrap_or((rest, "1280x720@30"));
        let index: u32 = index.parse().context("camera index")?;
        let (width, height, fps) = parse_geometry(geometry)?;
        return Ok(VideoInput::Camera {
            index,
            width,
            height,
            fps,
        });
    }
    let (width, height, fps) = parse_geometry(text)?;
    Ok(VideoInput::Synthetic { width, height, fps })
}

fn parse_screen(text: &str) -> anyhow::Result<VideoInput> {
    if text == "none" {
        return Ok(VideoInput::None);
    }
    if let Some(rest) = text.strip_prefix("synthetic:") {
        let (width, height, fps) = parse_geometry(rest)?;
        return Ok(VideoInput::Synthetic { width, height, fps });
    }
    let fps_after = |rest: &str, name: &str| -> anyhow::Result<f64> {
        match rest.strip_prefix('@') {
            Some(fps) => fps.parse().context("frames per second"),
            None if rest.is_empty() => Ok(15.0),
            None => bail!("expected {name} or {name}@FPS, got {text:?}"),
        }
    };
    if let Some(rest) = text.strip_prefix("portal") {
        return Ok(VideoInput::PortalScreen {
            fps: fps_after(rest, "portal")?,
        });
    }
    if let Some(rest) = text.strip_prefix("auto") {
        let fps = fps_after(rest, "auto")?;
        return Ok(
            if crate::media::portal_screen::portal_unavailable().is_none() {
                VideoInput::PortalScreen { fps }
            } else {
                VideoInput::X11Screen { fps, display: None }
            },
        );
    }
    if let Some(rest) = text.strip_prefix("x11") {
        let fps = match rest.strip_prefix('@') {
            Some(fps) => fps.parse().context("frames per second")?,
            None if rest.is_empty() => 15.0,
            None => bail!("expected x11 or x11@FPS, got {text:?}"),
        };
        return Ok(VideoInput::X11Screen { fps, display: None });
    }
    bail!("unknown screen source {text:?} (synthetic:WxH@FPS, x11[@FPS] or none)")
}

impl HeadlessArgs {
    /// The call this participant makes, and the test inputs it adds.
    pub(crate) fn call_config(&self) -> anyhow::Result<(CallConfig, TestInputs)> {
        let audio = match self.audio.as_str() {
            "tone" => AudioInput::Tone,
            "silence" => AudioInput::Silence,
            "none" => AudioInput::None,
            "mic" => AudioInput::Microphone(None),
            other => match (other.strip_prefix("speech:"), other.strip_prefix("mic:")) {
                (Some(path), _) => AudioInput::Speech(PathBuf::from(path)),
                (_, Some(device)) => AudioInput::Microphone(Some(device.to_owned())),
                _ => bail!(
                    "unknown audio source {other:?} (tone, speech:FILE, silence, mic[:DEVICE] or none)"
                ),
            },
        };
        let voice = match self.voice_processing.as_str() {
            "auto" if audio == AudioInput::Tone => None,
            "auto" => Some(VoiceProcessingConfig::default()),
            other => parse_voice_processing(other)?,
        };
        let room = self.room.then(|| SimulatedRoomConfig {
            echo: EchoPath {
                delay_ms: self.room_delay_ms,
                tail_ms: self.room_tail_ms,
                gain_db: self.room_gain_db,
            },
            noise: self.room_noise_dbfs.map(|level_dbfs| RoomNoise {
                color: NoiseColor::Pink,
                level_dbfs,
            }),
            ..SimulatedRoomConfig::default()
        });
        let name = self.name.clone().unwrap_or_else(|| self.user.clone());
        let mut session = SessionConfig::new(&self.session, &self.user, &name, self.instructor);
        session.audio_enabled = !self.muted;
        session.video_enabled = !self.camera_off;
        let video_codecs = self
            .video_codecs
            .split(',')
            .map(|name| match name.trim() {
                "h264" => Ok(VideoCodec::H264),
                "vp8" => Ok(VideoCodec::Vp8),
                other => Err(anyhow::anyhow!("unknown video codec {other:?} (h264, vp8)")),
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        if video_codecs.is_empty() {
            bail!("--video-codecs needs at least one codec");
        }
        let peer = PeerOptions {
            video_codecs,
            bind_ip: self.bind_ip,
            relay_only: self.force_relay,
            ice_failed_timeout: Duration::from_millis(self.ice_failed_timeout_ms),
            ice_disconnected_timeout: Duration::from_millis(
                (self.ice_failed_timeout_ms / 2).max(500),
            ),
            ..PeerOptions::default()
        };
        let test = TestInputs {
            room,
            save_dir: self.save.clone(),
            simulated_receive_loss: (self.simulate_receive_loss / 100.0).clamp(0.0, 1.0),
        };
        let config = CallConfig {
            signaling: SignalingConfig {
                url: self.server.clone(),
                token: self.token.clone(),
                key: self.key.clone(),
                websocket_only: self.websocket_only,
            },
            session,
            peer,
            camera: parse_camera(&self.camera)?,
            screen: parse_screen(&self.screen)?,
            audio,
            voice,
            speaker: self
                .speaker
                .as_ref()
                .map(|name| (name != "default").then(|| name.clone())),
            connect_timeout: Duration::from_secs_f64(self.connect_timeout_secs.max(0.0)),
            pictures: None,
        };
        Ok((config, test))
    }
}

/// `on`, `off`, or the stages to run (`aec,ns,agc,hpf`).
fn parse_voice_processing(text: &str) -> anyhow::Result<Option<VoiceProcessingConfig>> {
    match text {
        "on" => return Ok(Some(VoiceProcessingConfig::default())),
        "off" => return Ok(None),
        _ => {}
    }
    let mut config = VoiceProcessingConfig::all_off();
    for name in text.split(',').map(str::trim) {
        let Some(stage) = VoiceStage::ALL
            .into_iter()
            .find(|stage| stage.short_name() == name)
        else {
            let known: Vec<&str> = VoiceStage::ALL.map(VoiceStage::short_name).to_vec();
            bail!(
                "unknown voice processing stage {name:?} ({})",
                known.join(", ")
            );
        };
        *config.stage_mut(stage) = true;
    }
    Ok(Some(config))
}

/// A stdin line as a command.
pub(crate) fn parse_command(line: &str) -> Result<Command, String> {
    let line = line.trim();
    let (word, rest) = line.split_once(' ').unwrap_or((line, ""));
    Ok(match word {
        "mute" => Command::SetMicrophone(false),
        "unmute" => Command::SetMicrophone(true),
        "camera-off" => Command::SetCamera(false),
        "camera-on" => Command::SetCamera(true),
        "share-on" => Command::SetScreenShare(true),
        "share-off" => Command::SetScreenShare(false),
        "hand-up" => Command::RaiseHand(true),
        "hand-down" => Command::RaiseHand(false),
        "chat" => Command::SendChat(rest.to_owned()),
        "volume" => {
            let (user_id, percent) = rest
                .trim()
                .rsplit_once(' ')
                .ok_or_else(|| format!("volume needs a user and a percentage, got {rest:?}"))?;
            Command::SetVolume {
                user_id: user_id.trim().to_owned(),
                percent: percent
                    .trim()
                    .parse()
                    .map_err(|_| format!("volume needs a percentage, got {percent:?}"))?,
            }
        }
        "view-height" => Command::SetViewHeight(
            rest.trim()
                .parse::<u32>()
                .map_err(|_| format!("view-height needs a number, got {rest:?}"))?
                .clamp(90, 4320),
        ),
        "leave" => Command::Leave,
        // `moderate {"action": "mute-all"}`: the protocol's `moderate` payload.
        "moderate" => Command::Moderate(
            serde_json::from_str(rest).map_err(|e| format!("moderate needs its JSON: {e}"))?,
        ),
        "react" => Command::React(rest.trim().to_owned()),
        // `vote 1` or `vote 0 2`: the options chosen, by index.
        "vote" => Command::Vote {
            choices: rest
                .split_whitespace()
                .map(|c| c.parse::<usize>())
                .collect::<Result<_, _>>()
                .map_err(|_| format!("vote needs option numbers, got {rest:?}"))?,
            text: None,
        },
        "private" => {
            let (to, message) = rest
                .trim()
                .split_once(' ')
                .ok_or_else(|| format!("private needs a user and a message, got {rest:?}"))?;
            Command::SendPrivateChat {
                to_user_id: to.to_owned(),
                message: message.to_owned(),
            }
        }
        other => return Err(format!("unknown command {other:?}")),
    })
}

fn print_line(value: serde_json::Value) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{value}");
    let _ = out.flush();
}

/// One stats line: the figures since the previous line (`cursor`).
fn stats_line(call: &CallHandle, started: Instant, cursor: &mut StatsCursor) -> serde_json::Value {
    let snapshot = call.snapshot.borrow().clone();
    json!({
        "type": "stats",
        "t": started.elapsed().as_secs_f64(),
        "self": snapshot.self_user_id,
        "joined": snapshot.joined,
        "signalingConnected": snapshot.signaling_connected,
        // What the join answer said the server is: ours, or the browser version's plain relay
        // (with which none of our extensions, such as `video-request`, are used).
        "server": snapshot.server.map(|server| json!({
            "kind": server.name(),
            "protocolVersion": server.protocol_version(),
            "extensions": server.has_extensions(),
        })),
        "local": {
            "audioEnabled": snapshot.audio_enabled,
            "videoEnabled": snapshot.video_enabled,
            "screenSharing": snapshot.screen_sharing,
            "sources": call.local_report(cursor),
            "weakestLinkKbps": call.weakest_link_kbps(),
            "voiceProcessing": call.voice_stats(),
            "playout": {
                "underruns": call.playout_counters().0,
                "droppedSamples": call.playout_counters().1,
            },
        },
        "participants": snapshot.participants,
        "remotes": call.stats.report(cursor),
        "chatMessages": snapshot.chat.len(),
        "lastError": snapshot.last_error,
        // The classroom controls: settings, our role, where we wait, who waits, the hands.
        "class": snapshot.class,
    })
}

/// Runs the headless participant until it leaves (stdin `leave`, end of `--duration-secs`,
/// Ctrl-C or SIGTERM).
pub async fn run(args: HeadlessArgs) -> anyhow::Result<()> {
    let (config, test) = args.call_config()?;
    if args.connection_test {
        let started = Instant::now();
        let server = super::ClassServer {
            url: config.signaling.url.clone(),
            token: config.signaling.token.clone(),
            key: config.signaling.key.clone(),
        };
        let report = super::preflight::test_connection(
            &server,
            &[],
            args.bind_ip,
            config.connect_timeout,
            super::preflight::PROBE_WITHIN,
        )
        .await
        .context("the connection test did not run")?;
        print_line(json!({
            "type": "connection-test",
            "ms": started.elapsed().as_millis() as u64,
            "paths": report.paths,
        }));
        return Ok(());
    }
    if let Some(dir) = &test.save_dir {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create the save directory {}", dir.display()))?;
    }
    let started = Instant::now();
    // Signal handling holds a socket pair of its own: set up before the baseline is taken.
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("cannot watch SIGTERM")?;
    let mut interrupt = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())
        .context("cannot watch SIGINT")?;
    let before = resources();
    let mut call = super::start_with_test_inputs(config.clone(), test)
        .await
        .context("cannot start the call")?;
    if args.share_screen {
        call.command(Command::SetScreenShare(true));
    }
    if let Some(height) = args.view_height {
        call.command(Command::SetViewHeight(height.clamp(90, 4320)));
    }
    print_line(
        json!({"type": "started", "user": args.user, "session": args.session, "resources": before}),
    );

    let interval = Duration::from_millis(args.stats_interval_ms.max(50));
    let mut cursor = StatsCursor::default();
    let mut stats_timer = tokio::time::interval(interval);
    stats_timer.tick().await;
    let deadline = args
        .duration_secs
        .map(|secs| tokio::time::Instant::now() + Duration::from_secs_f64(secs.max(0.0)));
    let mut stdin = tokio::io::BufReader::new(tokio::io::stdin()).lines();
    let mut stdin_open = true;
    let mut leaving = false;
    loop {
        tokio::select! {
            _ = stats_timer.tick() => print_line(stats_line(&call, started, &mut cursor)),
            Some(event) = call.events.recv() => {
                print_line(json!({"type": "event", "t": started.elapsed().as_secs_f64(), "detail": event}));
            }
            line = stdin.next_line(), if stdin_open => match line {
                Ok(Some(line)) if line.trim().is_empty() => {}
                Ok(Some(line)) => match parse_command(&line) {
                    Ok(command) => {
                        leaving |= command == Command::Leave;
                        call.command(command);
                    }
                    Err(error) => print_line(json!({"type": "error", "message": error})),
                },
                // stdin closed: keep running until told otherwise.
                Ok(None) | Err(_) => stdin_open = false,
            },
            _ = async { if let Some(deadline) = deadline { tokio::time::sleep_until(deadline).await } else { std::future::pending::<()>().await } }, if !leaving => {
                leaving = true;
                call.command(Command::Leave);
            }
            _ = interrupt.recv(), if !leaving => {
                leaving = true;
                call.command(Command::Leave);
            }
            _ = terminate.recv(), if !leaving => {
                leaving = true;
                call.command(Command::Leave);
            }
            _ = tokio::time::sleep(Duration::from_millis(50)), if call.is_finished() => break,
        }
    }
    print_line(stats_line(&call, started, &mut cursor));
    call.finished().await;
    // What the call held is gone: its media threads, its sockets, its tasks.
    tokio::time::sleep(Duration::from_millis(500)).await;
    print_line(
        json!({"type": "left", "t": started.elapsed().as_secs_f64(), "resources": resources()}),
    );
    Ok(())
}

/// Threads (all, and the call's named media threads), open sockets and live tokio tasks of
/// this process, from `/proc/self` and the runtime's metrics.
pub fn resources() -> serde_json::Value {
    let threads: Vec<String> = std::fs::read_dir("/proc/self/task")
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|entry| {
                    std::fs::read_to_string(entry.path().join("comm"))
                        .unwrap_or_default()
                        .trim()
                        .to_owned()
                })
                .collect()
        })
        .unwrap_or_default();
    let sockets = std::fs::read_dir("/proc/self/fd")
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .filter(|entry| {
                    std::fs::read_link(entry.path())
                        .map(|target| target.to_string_lossy().starts_with("socket:"))
                        .unwrap_or(false)
                })
                .count()
        })
        .unwrap_or(0);
    json!({
        "threads": threads.len(),
        "mediaThreads": threads.iter().filter(|name| name.starts_with("classroom-")).count(),
        "sockets": sockets,
        "tasks": tokio::runtime::Handle::current().metrics().num_alive_tasks(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn geometry_is_parsed_and_checked() {
        assert_eq!(parse_geometry("1280x720@30").ok(), Some((1280, 720, 30.0)));
        assert!(parse_geometry("12x7@30").is_err());
        assert!(parse_geometry("1280x720@0").is_err());
        assert!(parse_geometry("wide").is_err());
    }

    #[test]
    fn camera_sources_are_parsed() {
        assert_eq!(
            parse_camera("device:1:640x480@15").ok(),
            Some(VideoInput::Camera {
                index: 1,
                width: 640,
                height: 480,
                fps: 15.0
            })
        );
        assert!(parse_camera("device:x").is_err());
    }

    #[test]
    fn screen_sources_are_parsed() {
        assert_eq!(
            parse_screen("x11").ok(),
            Some(VideoInput::X11Screen {
                fps: 15.0,
                display: None
            })
        );
        assert_eq!(
            parse_screen("x11@5").ok(),
            Some(VideoInput::X11Screen {
                fps: 5.0,
                display: None
            })
        );
        assert!(parse_screen("webcam").is_err());
        assert_eq!(
            parse_screen("portal@10").ok(),
            Some(VideoInput::PortalScreen { fps: 10.0 })
        );
        if std::env::var_os("WAYLAND_DISPLAY").is_none() {
            // Not on Wayland: auto is the X11 path.
            assert_eq!(
                parse_screen("auto").ok(),
                Some(VideoInput::X11Screen {
                    fps: 15.0,
                    display: None
                })
            );
        }
    }

    #[test]
    fn stdin_commands_are_parsed() {
        assert_eq!(parse_command("mute"), Ok(Command::SetMicrophone(false)));
        assert_eq!(
            parse_command(r#"moderate {"action": "mute", "targetUserId": "ada"}"#),
            Ok(Command::Moderate(classroom_wire::Moderation::Mute {
                target_user_id: "ada".into()
            }))
        );
        assert!(parse_command("moderate {not json").is_err());
        assert_eq!(
            parse_command("private grace may I leave early?"),
            Ok(Command::SendPrivateChat {
                to_user_id: "grace".into(),
                message: "may I leave early?".into()
            })
        );
        assert_eq!(
            parse_command("chat hello there"),
            Ok(Command::SendChat("hello there".to_owned()))
        );
        assert!(parse_command("dance").is_err());
    }
}
