//! Snapshot tests of every screen and state of the window, rendered headless (wgpu, Mesa's
//! software renderer) and compared with the images in `tests/snapshots/` (egui_kittest; a
//! missing or different image fails and writes `NAME.new.png`; `UPDATE_SNAPSHOTS=1` accepts).
//!
//! The class is fed the way the call engine feeds it: a real [`Session`] driven by scripted
//! signaling inputs (joins, chat, media state, peer states), and pictures put on the picture
//! board (drawn portraits and a slide), so no network and no device is involved and the
//! images do not depend on the machine.

#![allow(clippy::field_reassign_with_default)] // a scripted model reads best as default + changes

use std::sync::Arc;
use std::time::Instant;

use classroom::call::pictures::PictureKey;
use classroom::controller::Request;
use classroom::session::{Input, Session, SessionConfig};
use classroom::types::{LinkId, PeerConnState, Source};
use classroom::ui::ClassroomApp;
use classroom::ui::model::{
    DeviceLists, DeviceOption, JoinTarget, Managed, NetworkQuality, Panel, PreJoin, RecentClass,
    RemoteLive, Screen, ServerChoice, ThemeChoice, UiModel,
};
use classroom::ui::pictures::PictureBoard;
use classroom_wire::{ChatKind, ChatMessage, PROTOCOL_VERSION, Participant, SessionJoined};
use egui_kittest::Harness;
use egui_kittest::kittest::Queryable;

/// Asserts that the window asked the background for something matching the pattern.
macro_rules! assert_sent {
    ($harness:expr, $pattern:pat $(if $guard:expr)?, $what:literal) => {{
        let sent = $harness.state_mut().take_sent();
        assert!(
            sent.iter().any(|request| matches!(request, $pattern $(if $guard)?)),
            concat!($what, ": {:?}"),
            sent
        );
    }};
}

const SIZE: [f32; 2] = [1024.0, 640.0];
/// 2026-11-30 09:00 UTC, when the scripted class starts.
const CLASS_START_MS: u64 = 1_796_029_200_000;

fn participant(user_id: &str, name: &str, instructor: bool) -> Participant {
    Participant {
        user_id: user_id.into(),
        user_name: name.into(),
        is_instructor: instructor,
        co_instructor: false,
        audio_enabled: true,
        video_enabled: true,
        screen_sharing: false,
        hand_raised: false,
        joined_at: CLASS_START_MS,
    }
}

fn chat(id: u32, from: &Participant, text: &str, minutes: u64, kind: ChatKind) -> ChatMessage {
    ChatMessage {
        id: format!("m{id}"),
        user_id: from.user_id.clone(),
        user_name: from.user_name.clone(),
        message: text.into(),
        timestamp: CLASS_START_MS + minutes * 60_000,
        kind,
        to_user_id: None,
        to_user_name: None,
    }
}

/// A class of four: the instructor Grace, students Ada and Alan, and us (Kit).
struct ScriptedClass {
    session: Session,
    now: Instant,
}

impl ScriptedClass {
    fn new() -> Self {
        Self::with_role(false)
    }

    /// The same class with us (Kit) as its instructor, on our server (its controls shown).
    fn with_role(instructor: bool) -> Self {
        let mut session = Session::new(SessionConfig::new("physics-101", "kit", "Kit", instructor));
        let now = Instant::now();
        let grace = participant("grace", "Grace Hopper", true);
        let ada = participant("ada", "Ada Lovelace", false);
        let mut alan = participant("alan", "Alan Turing", false);
        alan.video_enabled = false;
        alan.audio_enabled = false;
        session.handle(now, Input::SignalingConnected);
        session.handle(
            now,
            Input::Joined(SessionJoined {
                protocol_version: PROTOCOL_VERSION,
                session_id: "physics-101".into(),
                self_: Some(participant("kit", "Kit", instructor)),
                participants: vec![grace.clone(), ada.clone(), alan.clone()],
                ice_servers: vec![],
                chat_history: vec![
                    chat(
                        1,
                        &grace,
                        "Grace Hopper joined the class",
                        0,
                        ChatKind::System,
                    ),
                    chat(
                        2,
                        &grace,
                        "Good morning! Today: compilers.",
                        1,
                        ChatKind::User,
                    ),
                    chat(
                        3,
                        &ada,
                        "Morning! Could you share the slides?",
                        2,
                        ChatKind::User,
                    ),
                ],
                topology: Default::default(),
                offer_to: None,
                settings: Default::default(),
                waiting_room: None,
                hand_queue: None,
                poll: None,
            }),
        );
        for user in ["grace", "ada", "alan"] {
            session.handle(
                now,
                Input::LinkState {
                    link: LinkId::peer(user),
                    state: PeerConnState::Connected,
                },
            );
        }
        ScriptedClass { session, now }
    }

    fn input(&mut self, input: Input) -> &mut Self {
        self.session.handle(self.now, input);
        self
    }

    fn update(&mut self, user_id: &str, change: impl FnOnce(&mut Participant)) -> &mut Self {
        let mut p = self
            .session
            .snapshot()
            .participants
            .into_iter()
            .find(|peer| peer.participant.user_id == user_id)
            .expect("scripted participant")
            .participant;
        change(&mut p);
        self.input(Input::ParticipantUpdated(p))
    }

    /// The window's model of this class, with live figures (speaking, network quality).
    fn model(&self) -> UiModel {
        let mut model = UiModel::default();
        model.screen = Screen::Class;
        model.live.snapshot = self.session.snapshot();
        model.live.server_label = "https://classroom.school.org".into();
        model.live.joined_once = true;
        model.class.title = "physics-101".into();
        for (user, quality, speaking) in [
            ("grace", NetworkQuality::Good, true),
            ("ada", NetworkQuality::Fair, false),
            ("alan", NetworkQuality::Poor, false),
        ] {
            model.live.remote.insert(
                user.into(),
                RemoteLive {
                    quality: Some(quality),
                    speaking,
                    round_trip_ms: Some(40),
                },
            );
        }
        model.class.chat_seen = model.live.snapshot.chat.len();
        model.devices = devices();
        model
    }
}

fn devices() -> DeviceLists {
    let option = |id: &str, label: &str| DeviceOption {
        id: id.into(),
        label: label.into(),
    };
    DeviceLists {
        listed: true,
        cameras: vec![
            option("0", "Integrated Webcam"),
            option("synthetic", "Test pattern (no camera)"),
        ],
        microphones: vec![option("default", "Built-in microphone (default)")],
        speakers: vec![option("default", "Built-in speakers (default)")],
        screens: vec![
            option("x11:1", "Screen 1, main (1920×1080)"),
            option("x11:2", "Screen 2 (1280×1024)"),
            option("x11window:4194311", "Window: Lecture notes.pdf"),
        ],
    }
}

/// A camera picture: a person-like silhouette on a soft gradient (smooth, so the stored
/// images stay small; the codec path is tested elsewhere, this is about the layout).
fn portrait(board: &PictureBoard, key: PictureKey, seed: u8) {
    let (width, height) = (320usize, 180usize);
    let hue = [
        (84, 120, 168),
        (150, 102, 84),
        (96, 140, 104),
        (140, 96, 150),
        (170, 150, 90),
    ][usize::from(seed) % 5];
    let mut pixels = Vec::with_capacity(width * height);
    for y in 0..height {
        for x in 0..width {
            let shade = 0.55 + 0.45 * (1.0 - y as f32 / height as f32);
            let (dx, dy) = (x as f32 - 160.0, y as f32 - 80.0);
            let head = dx * dx + dy * dy < 34.0 * 34.0;
            let (sx, sy) = (x as f32 - 160.0, y as f32 - 190.0);
            let shoulders = (sx / 90.0).powi(2) + (sy / 70.0).powi(2) < 1.0;
            let color = if head {
                egui::Color32::from_rgb(230, 196, 170)
            } else if shoulders {
                egui::Color32::from_rgb(hue.2 / 2, hue.1 / 2, hue.0 / 2)
            } else {
                egui::Color32::from_rgb(
                    (hue.0 as f32 * shade) as u8,
                    (hue.1 as f32 * shade) as u8,
                    (hue.2 as f32 * shade) as u8,
                )
            };
            pixels.push(color);
        }
    }
    board.put(&key, egui::ColorImage::new([width, height], pixels));
}

/// A shared screen: a slide (title bar, bullet lines) on white, flat so that it stores small.
fn screen_picture(board: &PictureBoard, key: PictureKey) {
    let (width, height) = (640usize, 360usize);
    let mut pixels = vec![egui::Color32::WHITE; width * height];
    let mut fill = |x0: usize, y0: usize, w: usize, h: usize, color: egui::Color32| {
        for y in y0..(y0 + h).min(height) {
            for x in x0..(x0 + w).min(width) {
                pixels[y * width + x] = color;
            }
        }
    };
    fill(0, 0, width, 56, egui::Color32::from_rgb(40, 70, 140));
    fill(32, 20, 260, 16, egui::Color32::from_rgb(236, 240, 248));
    for (i, length) in [420, 360, 480, 300, 390].into_iter().enumerate() {
        let y = 90 + i * 46;
        fill(40, y + 4, 10, 10, egui::Color32::from_rgb(40, 70, 140));
        fill(64, y, length, 18, egui::Color32::from_gray(70));
    }
    board.put(&key, egui::ColorImage::new([width, height], pixels));
}

fn class_pictures(board: &PictureBoard) {
    portrait(board, PictureKey::new("grace", Source::Camera), 0);
    portrait(board, PictureKey::new("ada", Source::Camera), 1);
    portrait(board, PictureKey::local(Source::Camera), 2);
}

fn harness(model: UiModel, pictures: impl FnOnce(&PictureBoard)) -> Harness<'static, ClassroomApp> {
    let board = Arc::new(PictureBoard::default());
    pictures(&board);
    let app = ClassroomApp::scripted(model, board, 0);
    // Through eframe's `App`, as the window runs it.
    let mut harness = Harness::builder().with_size(SIZE).build_eframe(|_| app);
    harness.run();
    harness
}

/// The start screen: server, class, name, token, and the local class button.
#[test]
fn start_screen() {
    let mut harness = harness(UiModel::default(), |_| {});
    harness.snapshot("start_screen");
}

/// Recent classes are listed, and a form without a name says so instead of going on.
#[test]
fn start_screen_with_recent_classes_and_a_missing_name() {
    let mut model = UiModel::default();
    model.recent = vec![RecentClass {
        target: JoinTarget {
            server: ServerChoice::Remote("https://classroom.school.org".into()),
            session: "physics-101".into(),
            name: "Kit".into(),
            token: None,
            key: None,
            instructor: false,
        },
    }];
    model.start.session = "chemistry".into();
    let mut harness = harness(model, |_| {});
    harness.get_by_label("Continue").click();
    harness.run();
    assert_eq!(
        harness.state().model.start.error.as_deref(),
        Some("Enter your name.")
    );
    assert_eq!(harness.state().model.screen, Screen::Start);
    harness.snapshot("start_screen_recent_and_error");
}

/// A filled form goes to the pre-join check and starts the camera preview and the meter.
#[test]
fn continue_opens_the_pre_join_check() {
    let mut model = UiModel::default();
    model.start.session = "physics-101".into();
    model.start.name = "Kit".into();
    let mut harness = harness(model, |_| {});
    harness.get_by_label("Continue").click();
    harness.run();
    assert_eq!(harness.state().model.screen, Screen::PreJoin);
    let sent = harness.state_mut().take_sent();
    assert!(
        sent.iter().any(|request| matches!(
            request,
            Request::StartCheck {
                camera_on: true,
                mic_on: true,
                ..
            }
        )),
        "the check starts: {sent:?}"
    );
    assert!(
        sent.iter()
            .any(|request| matches!(request, Request::TestConnection { .. })),
        "the connection test starts: {sent:?}"
    );
}

fn prejoin_model() -> UiModel {
    let mut model = UiModel::default();
    model.screen = Screen::PreJoin;
    model.devices = devices();
    model.settings.camera = "0".into();
    model.prejoin = Some(PreJoin {
        target: JoinTarget {
            server: ServerChoice::Remote("https://classroom.school.org".into()),
            session: "physics-101".into(),
            name: "Kit".into(),
            token: None,
            key: None,
            instructor: false,
        },
        mic_on: true,
        camera_on: true,
        audio_devices: true,
        mic_level_dbfs: Some(-22.0),
        speaker_test_playing: false,
        device_problem: None,
        connection: None,
    });
    model
}

/// The pre-join check: our camera preview, the microphone meter, pickers, join.
#[test]
fn pre_join_check() {
    let mut harness = harness(prejoin_model(), |board| {
        portrait(board, PictureKey::local(Source::Camera), 3)
    });
    harness.snapshot("pre_join_check");
    harness.get_by_label("Join now").click();
    harness.run();
    assert_sent!(
        harness,
        Request::Join {
            camera_on: true,
            mic_on: true,
            ..
        },
        "joining sends the choices"
    );
    assert_eq!(
        harness.state().model.recent.len(),
        1,
        "the class is remembered"
    );
}

/// "Join without audio" joins with no microphone and no speakers.
#[test]
fn joining_without_audio_opens_no_audio_device() {
    let mut harness = harness(prejoin_model(), |_| {});
    harness.get_by_label("Join without audio").click();
    harness.run();
    assert_sent!(
        harness,
        Request::Join {
            audio_devices: false,
            mic_on: false,
            camera_on: true,
            ..
        },
        "joined without audio"
    );
}

/// A camera that cannot be opened is said in plain words; camera off shows initials.
#[test]
fn pre_join_check_with_a_device_problem_and_camera_off() {
    let mut model = prejoin_model();
    if let Some(prejoin) = &mut model.prejoin {
        prejoin.camera_on = false;
        prejoin.mic_level_dbfs = None;
        prejoin.device_problem = Some(
            "The device is not there. Pick another one in the settings. (camera 0 not found)"
                .into(),
        );
    }
    let mut harness = harness(model, |_| {});
    harness.snapshot("pre_join_device_problem");
}

/// The connection test on a school network that lets only TCP 443 out: a line per path, and
/// what to ask IT, from the words the app really uses.
#[test]
fn pre_join_connection_test_on_a_udp_blocking_network() {
    use classroom::call::preflight::{ConnectionReport, Outcome, Path, PathResult};
    let server = |s: &str| Some(s.to_owned());
    let report = ConnectionReport {
        paths: vec![
            PathResult {
                path: Path::Direct,
                server: server("classroom.school.org:3478"),
                outcome: Outcome::Blocked,
            },
            PathResult {
                path: Path::TurnUdp,
                server: server("classroom.school.org:3478"),
                outcome: Outcome::Blocked,
            },
            PathResult {
                path: Path::TurnTcp,
                server: server("classroom.school.org:3478"),
                outcome: Outcome::Blocked,
            },
            PathResult {
                path: Path::TurnTls,
                server: server("turn.school.org:443"),
                outcome: Outcome::Works { ms: 182 },
            },
        ],
    };
    let mut model = prejoin_model();
    if let Some(prejoin) = &mut model.prejoin {
        prejoin.connection = Some(classroom::controller::words::connection_words(&report));
    }
    let mut harness = harness(model, |board| {
        portrait(board, PictureKey::local(Source::Camera), 3)
    });
    assert!(
        harness
            .query_by_label_contains("Relay over TLS: works (182 ms")
            .is_some()
    );
    assert!(
        harness
            .query_by_label_contains("allow UDP to classroom.school.org:3478")
            .is_some()
    );
    harness.snapshot("pre_join_connection_test");
}

/// A machine without a camera: "No camera found" in place of the camera switch and its
/// picker, the camera off, and no error text.
#[test]
fn pre_join_check_on_a_machine_without_a_camera() {
    let mut model = prejoin_model();
    model.devices.cameras.clear();
    if let Some(prejoin) = &mut model.prejoin {
        prejoin.camera_on = false;
    }
    let mut harness = harness(model, |_| {});
    assert_eq!(
        harness.query_all_by_label("No camera found").count(),
        2,
        "in place of the camera switch and of its picker"
    );
    assert!(harness.query_by_label("Camera on").is_none());
    harness.snapshot("pre_join_no_camera");
}

/// Four people in a grid: pictures, initials for a camera that is off, mic marks, a
/// speaking frame, network bars.
#[test]
fn class_grid() {
    let class = ScriptedClass::new();
    let mut harness = harness(class.model(), class_pictures);
    harness.snapshot("class_grid");
}

/// Nine tiles fill a 3×3 grid.
#[test]
fn class_grid_of_nine() {
    let mut class = ScriptedClass::new();
    for i in 0..5 {
        let p = participant(&format!("s{i}"), &format!("Student {}", i + 1), false);
        class.input(Input::UserJoined(p));
    }
    let mut harness = harness(class.model(), |board| {
        class_pictures(board);
        for i in 0..5 {
            portrait(board, PictureKey::new(format!("s{i}"), Source::Camera), i);
        }
    });
    harness.snapshot("class_grid_nine");
}

/// Someone shares: the screen takes the stage, cameras move to a strip; a raised hand shows.
#[test]
fn class_screen_share_stage() {
    let mut class = ScriptedClass::new();
    class.update("grace", |p| p.screen_sharing = true);
    class.update("ada", |p| p.hand_raised = true);
    let mut harness = harness(class.model(), |board| {
        class_pictures(board);
        screen_picture(board, PictureKey::new("grace", Source::Screen));
    });
    harness.snapshot("class_screen_share");
}

/// Clicking a tile pins it to the stage; clicking again unpins.
#[test]
fn class_pinned_tile() {
    let class = ScriptedClass::new();
    let mut harness = harness(class.model(), class_pictures);
    harness.get_by_label("Ada Lovelace").click();
    harness.run();
    assert_eq!(
        harness.state().model.class.pinned,
        Some(PictureKey::new("ada", Source::Camera))
    );
    harness.snapshot("class_pinned");
    harness.get_by_label("Ada Lovelace").click();
    harness.run();
    assert_eq!(harness.state().model.class.pinned, None);
}

/// New messages while the chat is closed show a badge; opening it shows them with times.
#[test]
fn class_chat_unread_then_open() {
    let mut class = ScriptedClass::new();
    let mut model = class.model();
    let ada = participant("ada", "Ada Lovelace", false);
    let alan = participant("alan", "Alan Turing", false);
    class.input(Input::Chat(chat(
        4,
        &ada,
        "Is the homework due Friday?",
        5,
        ChatKind::User,
    )));
    class.input(Input::Chat(chat(
        5,
        &alan,
        "Alan Turing left the class",
        6,
        ChatKind::System,
    )));
    model.live.snapshot = class.session.snapshot();
    let mut harness = harness(model, class_pictures);
    assert_eq!(
        harness
            .state()
            .model
            .class
            .unread(&harness.state().model.live),
        2
    );
    harness.snapshot("class_chat_unread");
    harness.get_by_label("Chat").click();
    harness.run();
    assert_eq!(
        harness
            .state()
            .model
            .class
            .unread(&harness.state().model.live),
        0
    );
    harness.snapshot("class_chat_open");
}

/// Typing a message and pressing Send sends it and clears the line.
#[test]
fn class_chat_sends_a_message() {
    let class = ScriptedClass::new();
    let mut model = class.model();
    model.class.panel = Some(Panel::Chat);
    let mut harness = harness(model, |_| {});
    harness
        .get_by_label("Message to everyone in the class")
        .focus();
    harness.run();
    harness
        .get_by_label("Message to everyone in the class")
        .type_text("Yes, Friday.");
    harness.run();
    harness.get_by_label("Send").click();
    harness.run();
    assert_sent!(harness, Request::Command(classroom::session::Command::SendChat(text)) if text == "Yes, Friday.", "the message goes out");
    assert!(harness.state().model.class.chat_draft.is_empty());
}

/// A name and a chat message carrying HTML and script are shown as the text they are: egui
/// draws text, and nothing in the window interprets markup (issue 22's security tests).
#[test]
fn names_and_chat_carrying_html_are_shown_as_text() {
    const NAME: &str = "<img src=x onerror=alert(1)>";
    const MESSAGE: &str = "<script>alert('hi')</script> <b>bold?</b>";
    let mut class = ScriptedClass::new();
    let mallory = participant("mallory", NAME, false);
    class.input(Input::UserJoined(mallory.clone()));
    class.input(Input::Chat(chat(4, &mallory, MESSAGE, 5, ChatKind::User)));
    let mut model = class.model();
    model.class.panel = Some(Panel::Chat);
    let mut harness = harness(model, class_pictures);
    // The tile and the message's author are named by the raw text, and the message's words
    // are there as typed.
    assert!(
        harness.query_all_by_label(NAME).count() >= 2,
        "the name is shown as its text"
    );
    assert!(
        harness
            .query_all_by_label_contains(MESSAGE)
            .next()
            .is_some(),
        "the message is shown as its text"
    );
    harness.snapshot("class_html_inert");
}

/// The participants panel: roles, states, hands.
#[test]
fn class_people_panel() {
    let mut class = ScriptedClass::new();
    class.update("ada", |p| p.hand_raised = true);
    let mut model = class.model();
    model.class.panel = Some(Panel::People);
    let mut harness = harness(model, class_pictures);
    harness.snapshot("class_people");
}

/// The settings panel: devices, quality, sound processing, theme, shortcuts.
#[test]
fn class_settings_panel() {
    let class = ScriptedClass::new();
    let mut model = class.model();
    model.class.panel = Some(Panel::Settings);
    let mut harness = harness(model, class_pictures);
    harness.snapshot("class_settings");
    harness.get_by_label("Light").click();
    harness.run();
    assert_eq!(harness.state().model.settings.theme, ThemeChoice::Light);
    // A voice processing stage switched during the class applies at once.
    harness.get_by_label("Noise suppression").click();
    harness.run();
    assert_sent!(
        harness,
        Request::SetVoiceProcessing(settings)
            if !settings.voice_stages.noise_suppression && settings.voice_stages.echo_cancellation,
        "the stage is switched off in the call"
    );
}

/// A school that routes every call through its relay (`force_relay`): the settings say so.
#[test]
fn settings_say_when_every_call_goes_through_the_relay() {
    let class = ScriptedClass::new();
    let mut model = class.model();
    model.class.panel = Some(Panel::Settings);
    model.managed.force_relay = true;
    let harness = harness(model, class_pictures);
    assert!(
        harness
            .query_by_label_contains("Every call goes through the class's relay server")
            .is_some()
    );
}

/// The light theme.
#[test]
fn class_light_theme() {
    let class = ScriptedClass::new();
    let mut model = class.model();
    model.settings.theme = ThemeChoice::Light;
    model.class.panel = Some(Panel::Chat);
    let mut harness = harness(model, class_pictures);
    harness.snapshot("class_light");
}

/// Losing the server shows the reconnecting banner; a vanished device is said in words.
#[test]
fn class_reconnecting_and_device_lost() {
    let mut class = ScriptedClass::new();
    class.input(Input::SignalingDisconnected);
    let mut model = class.model();
    model.live.device_problem = Some(
        "A device was disconnected. Plug it back in or pick another one in the settings. (microphone USB Headset lost)".into(),
    );
    let mut harness = harness(model, class_pictures);
    harness.snapshot("class_reconnecting");
}

/// Talking into a muted microphone: the hint says so, and Unmute is one click away.
#[test]
fn class_muted_talking_hint() {
    let class = ScriptedClass::new();
    let mut model = class.model();
    model.live.snapshot.audio_enabled = false;
    model.live.muted_talking = true;
    let mut harness = harness(model, class_pictures);
    harness.snapshot("class_muted_talking");
    harness.get_by_label("Unmute").click();
    harness.run();
    assert_sent!(
        harness,
        Request::Command(classroom::session::Command::SetMicrophone(true)),
        "Unmute unmutes"
    );
}

/// The share picker lists displays with thumbnails; picking one starts the share.
#[test]
fn class_share_picker() {
    let class = ScriptedClass::new();
    let mut model = class.model();
    model.class.share_picker_open = true;
    let mut harness = harness(model, |board| {
        class_pictures(board);
        screen_picture(board, PictureKey::new("thumbnail:x11:1", Source::Screen));
    });
    harness.snapshot("class_share_picker");
    harness.get_by_label("Share Screen 2 (1280×1024)").click();
    harness.run();
    assert_sent!(harness, Request::ShareScreen(id) if id == "x11:2", "the picked screen is shared");
    assert!(!harness.state().model.class.share_picker_open);
}

/// Full screen hides the top bar and panels; the shortcut toggles the microphone.
#[test]
fn class_full_screen_and_shortcuts() {
    let class = ScriptedClass::new();
    let mut model = class.model();
    model.class.fullscreen = true;
    model.class.panel = Some(Panel::Chat);
    let mut harness = harness(model, class_pictures);
    harness.snapshot("class_fullscreen");
    harness.key_press_modifiers(egui::Modifiers::CTRL | egui::Modifiers::SHIFT, egui::Key::M);
    harness.run();
    assert_sent!(
        harness,
        Request::Command(classroom::session::Command::SetMicrophone(false)),
        "Ctrl+Shift+M mutes"
    );
}

/// Leaving ends on a screen that offers to rejoin.
#[test]
fn leaving_shows_the_ended_screen() {
    let class = ScriptedClass::new();
    let mut model = class.model();
    model.prejoin = prejoin_model().prejoin;
    let mut harness = harness(model, class_pictures);
    harness.get_by_label("Leave").click();
    harness.run();
    assert!(matches!(harness.state().model.screen, Screen::Ended { .. }));
    assert!(
        harness
            .state_mut()
            .take_sent()
            .iter()
            .any(|r| matches!(r, Request::Leave))
    );
    harness.snapshot("ended");
    harness.get_by_label("Rejoin").click();
    harness.run();
    assert_eq!(harness.state().model.screen, Screen::Class);
}

/// A pinned tile whose participant left gives way to the grid.
#[test]
fn a_pinned_tile_that_left_falls_back_to_the_grid() {
    let mut class = ScriptedClass::new();
    let mut model = class.model();
    model.class.pinned = Some(PictureKey::new("ada", Source::Camera));
    class.input(Input::UserLeft(classroom_wire::UserLeft {
        user_id: "ada".into(),
        user_name: "Ada Lovelace".into(),
        reason: classroom_wire::LeaveReason::Left,
    }));
    model.live.snapshot = class.session.snapshot();
    let mut harness = harness(model, class_pictures);
    harness.run();
    assert!(
        harness.query_by_label("Ada Lovelace").is_none(),
        "Ada's tile is gone"
    );
}

/// A school's policy: the server is set (greyed out) and local classes are not offered.
#[test]
fn start_screen_managed_by_the_school() {
    let mut model = UiModel::default();
    model.start.server_url = "https://classroom.school.org".into();
    model.managed = Managed {
        server_locked: true,
        local_class: false,
        ..Managed::default()
    };
    let mut harness = harness(model, |_| {});
    assert!(
        harness
            .query_by_label("Start a local class on this computer")
            .is_none(),
        "no local class when the policy turns it off"
    );
    harness.snapshot("start_screen_managed");
}

/// With chat and screen sharing turned off by policy, neither can be reached, not even by
/// their shortcuts.
#[test]
fn class_with_chat_and_sharing_turned_off() {
    let class = ScriptedClass::new();
    let mut model = class.model();
    model.managed = Managed {
        chat: false,
        screen_share: false,
        ..Managed::default()
    };
    let mut harness = harness(model, class_pictures);
    assert!(harness.query_by_label("Chat").is_none(), "no chat button");
    harness.key_press_modifiers(egui::Modifiers::CTRL | egui::Modifiers::SHIFT, egui::Key::S);
    harness.key_press_modifiers(egui::Modifiers::CTRL | egui::Modifiers::SHIFT, egui::Key::C);
    harness.run();
    assert!(!harness.state().model.class.share_picker_open);
    assert_eq!(harness.state().model.class.panel, None);
    harness.snapshot("class_managed");
}

// ---- the classroom controls -----------------------------------------------------------------

/// An instructor's people panel: mute all, lock, end; who waits to be let in; the raised hands
/// in the order the server took them; mute and remove on each student.
#[test]
fn class_people_panel_of_an_instructor() {
    use classroom::session::ClassInput;
    use classroom_wire::{HandQueue, RaisedHand, WaitingRoom, WaitingUser};
    let mut class = ScriptedClass::with_role(true);
    class.update("ada", |p| p.hand_raised = true);
    class.update("alan", |p| p.hand_raised = true);
    class.input(Input::Class(ClassInput::WaitingRoom(WaitingRoom {
        waiting: vec![
            WaitingUser {
                user_id: "mary".into(),
                user_name: "Mary Somerville".into(),
                since: CLASS_START_MS,
            },
            WaitingUser {
                user_id: "emmy".into(),
                user_name: "Emmy Noether".into(),
                since: CLASS_START_MS,
            },
        ],
    })));
    class.input(Input::Class(ClassInput::HandQueue(HandQueue {
        hands: vec![
            RaisedHand {
                user_id: "alan".into(),
                user_name: "Alan Turing".into(),
                raised_at: CLASS_START_MS,
            },
            RaisedHand {
                user_id: "ada".into(),
                user_name: "Ada Lovelace".into(),
                raised_at: CLASS_START_MS + 1,
            },
        ],
    })));
    let mut model = class.model();
    model.class.panel = Some(Panel::People);
    let mut harness = harness(model, class_pictures);
    harness.snapshot("class_people_instructor");
    harness.get_by_label("Mute all").click();
    harness.run();
    assert_sent!(
        harness,
        Request::Command(classroom::session::Command::Moderate(
            classroom_wire::Moderation::MuteAll
        )),
        "mute all goes to the server"
    );
    harness.get_by_label("Admit all").click();
    harness.run();
    assert_sent!(
        harness,
        Request::Command(classroom::session::Command::Moderate(
            classroom_wire::Moderation::AdmitAll
        )),
        "admit all goes to the server"
    );
}

fn planets_poll() -> classroom_wire::Poll {
    classroom_wire::Poll {
        poll_id: "poll-1".into(),
        question: "Which planet is largest?".into(),
        kind: classroom_wire::PollKind::Single,
        options: vec!["Mars".into(), "Jupiter".into(), "Venus".into()],
        anonymous: false,
        quiz: false,
        opened_at: CLASS_START_MS,
    }
}

fn planets_results(totals: Vec<u32>, closed: bool) -> classroom_wire::PollResults {
    classroom_wire::PollResults {
        poll_id: "poll-1".into(),
        question: "Which planet is largest?".into(),
        options: vec!["Mars".into(), "Jupiter".into(), "Venus".into()],
        voters: totals.iter().sum(),
        totals,
        answers: vec![],
        texts: vec![],
        correct: None,
        closed,
    }
}

/// An instructor writes a poll: the question, its kind, one option per line; it opens once
/// it has a question and two options.
#[test]
fn class_poll_written_by_the_instructor() {
    let class = ScriptedClass::with_role(true);
    let mut model = class.model();
    model.class.panel = Some(Panel::Poll);
    let mut harness = harness(model, class_pictures);
    harness.get_by_label("The poll's question").focus();
    harness.run();
    harness
        .get_by_label("The poll's question")
        .type_text("Which planet is largest?");
    harness.run();
    assert!(
        harness
            .query_by_label("Write at least two options, one per line")
            .is_some(),
        "the poll does not open without options"
    );
    harness
        .get_by_label("The poll's options, one per line")
        .focus();
    harness.run();
    harness
        .get_by_label("The poll's options, one per line")
        .type_text("Mars\nJupiter\nVenus");
    harness.run();
    harness.snapshot("class_poll_new");
    harness.get_by_label("Open poll").click();
    harness.run();
    assert_sent!(
        harness,
        Request::Command(classroom::session::Command::Moderate(
            classroom_wire::Moderation::OpenPoll { poll }
        )) if poll.question == "Which planet is largest?" && poll.options == ["Mars", "Jupiter", "Venus"],
        "the poll opens with its question and options"
    );
}

/// The instructor's open poll: the answers as they come in, closing it, showing the results.
#[test]
fn class_poll_results_live_for_the_instructor() {
    use classroom::session::ClassInput;
    let mut class = ScriptedClass::with_role(true);
    class.input(Input::Class(ClassInput::PollOpened(planets_poll())));
    class.input(Input::Class(ClassInput::PollResults(planets_results(
        vec![1, 2, 0],
        false,
    ))));
    let mut model = class.model();
    model.class.panel = Some(Panel::Poll);
    let mut harness = harness(model, class_pictures);
    harness.snapshot("class_poll_results");
    harness.get_by_label("Close poll").click();
    harness.run();
    assert_sent!(
        harness,
        Request::Command(classroom::session::Command::Moderate(
            classroom_wire::Moderation::ClosePoll { poll_id }
        )) if poll_id == "poll-1",
        "closing goes to the server"
    );
    harness.get_by_label("Show results to everyone").click();
    harness.run();
    assert_sent!(
        harness,
        Request::Command(classroom::session::Command::Moderate(
            classroom_wire::Moderation::PublishResults { poll_id }
        )) if poll_id == "poll-1",
        "publishing goes to the server"
    );
}

/// A student sees a new poll marked on the Poll button, answers it with a click, and once the
/// instructor shows them, the results with their own answer marked.
#[test]
fn class_poll_answered_by_a_student() {
    use classroom::session::{ClassInput, Command};
    let mut class = ScriptedClass::new();
    class.input(Input::Class(ClassInput::PollOpened(planets_poll())));
    let mut voting = harness(class.model(), class_pictures);
    voting.get_by_label("Poll").click();
    voting.run();
    voting.snapshot("class_poll_vote");
    voting.get_by_label("Jupiter").click();
    voting.run();
    assert_sent!(
        voting,
        Request::Command(Command::Vote { choices, text: None }) if *choices == [1],
        "the answer goes to the server"
    );
    class.input(Input::Command(Command::Vote {
        choices: vec![1],
        text: None,
    }));
    class.input(Input::Class(ClassInput::PollClosed(
        classroom_wire::PollClosed {
            poll_id: "poll-1".into(),
        },
    )));
    class.input(Input::Class(ClassInput::PollResults(planets_results(
        vec![3, 18, 2],
        true,
    ))));
    let mut model = class.model();
    model.class.panel = Some(Panel::Poll);
    let mut published = harness(model, class_pictures);
    published.snapshot("class_poll_published");
    // Two windows in one test: their snapshots are judged together.
    let mut results = voting.take_snapshot_results();
    results.extend(published.take_snapshot_results());
}

/// A student's people panel has no controls, and the browser version's relay none for anyone.
#[test]
fn the_controls_are_an_instructors_on_our_server_only() {
    let class = ScriptedClass::new();
    let mut model = class.model();
    model.class.panel = Some(Panel::People);
    let student = harness(model, class_pictures);
    assert!(student.query_by_label("Mute all").is_none());
    assert!(student.query_by_label("Remove").is_none());
    let class = ScriptedClass::with_role(true);
    let mut model = class.model();
    model.live.snapshot.server = Some(classroom::session::ServerKind::BrowserRelay);
    model.class.panel = Some(Panel::People);
    let on_the_relay = harness(model, class_pictures);
    assert!(on_the_relay.query_by_label("Mute all").is_none());
}

/// Waiting to be let in: the banner says so and where we are in line.
#[test]
fn class_waiting_to_be_admitted() {
    use classroom::session::ClassInput;
    let mut session = Session::new(SessionConfig::new("physics-101", "kit", "Kit", false));
    let now = Instant::now();
    session.handle(now, Input::SignalingConnected);
    session.handle(
        now,
        Input::Class(ClassInput::Waiting(classroom_wire::JoinWaiting {
            waiting: true,
            session_id: "physics-101".into(),
            position: 2,
        })),
    );
    let mut model = UiModel::default();
    model.screen = Screen::Class;
    model.live.snapshot = session.snapshot();
    model.class.title = "physics-101".into();
    model.devices = devices();
    let mut harness = harness(model, |_| {});
    harness.snapshot("class_waiting");
}

/// The instructor muted us and locked microphones: the notice says who, the button is grey.
#[test]
fn class_muted_by_the_instructor_with_microphones_locked() {
    use classroom::session::ClassInput;
    let mut class = ScriptedClass::new();
    class.input(Input::Class(ClassInput::Moderated(
        classroom_wire::Moderated {
            action: classroom_wire::ModeratedAction::Mute,
            by_user_id: "grace".into(),
            by_user_name: "Grace Hopper".into(),
        },
    )));
    class.input(Input::Class(ClassInput::Settings(
        classroom_wire::ClassSettings {
            locks: classroom_wire::LockSettings {
                microphone: true,
                ..Default::default()
            },
            ..Default::default()
        },
    )));
    let model = class.model();
    assert!(!model.live.snapshot.audio_enabled);
    let mut harness = harness(model, class_pictures);
    harness.snapshot("class_muted_locked");
    harness.get_by_label("OK").click();
    harness.run();
    assert_sent!(
        harness,
        Request::Command(classroom::session::Command::DismissNotice),
        "the notice is dismissed"
    );
}

/// Reactions of the last seconds over the stage; the React button opens the class's few, and
/// one click sends one.
#[test]
fn class_reactions_shown_and_sent() {
    use classroom::session::{ClassInput, Command};
    let mut class = ScriptedClass::new();
    for (user_id, user_name, emoji, second) in [
        ("grace", "Grace Hopper", "🎉", 1),
        ("ada", "Ada Lovelace", "👍", 2),
        ("alan", "Alan Turing", "❤️", 3),
    ] {
        class.input(Input::Class(ClassInput::Reaction(
            classroom_wire::Reaction {
                user_id: user_id.into(),
                user_name: user_name.into(),
                emoji: emoji.into(),
                timestamp: CLASS_START_MS + second * 1000,
            },
        )));
    }
    let mut harness = harness(class.model(), class_pictures);
    harness.get_by_label("React").click();
    harness.run();
    harness.snapshot("class_reactions");
    harness.get_by_label("👏").click();
    harness.run();
    assert_sent!(
        harness,
        Request::Command(Command::React(emoji)) if emoji == "👏",
        "the reaction goes to the server"
    );
    assert!(
        !harness.state().model.class.reactions_open,
        "the picker closes once one is sent"
    );
}

/// A student writes privately to the instructor: the line says to whom, private messages are
/// marked both ways, and the message goes out as a private one.
#[test]
fn class_chat_private_to_the_instructor() {
    let mut class = ScriptedClass::new();
    let grace = participant("grace", "Grace Hopper", true);
    let kit = participant("kit", "Kit", false);
    class.input(Input::Chat(ChatMessage {
        to_user_id: Some("grace".into()),
        to_user_name: Some("Grace Hopper".into()),
        ..chat(4, &kit, "I can't hear the left speaker", 5, ChatKind::User)
    }));
    class.input(Input::Chat(ChatMessage {
        to_user_id: Some("kit".into()),
        to_user_name: Some("Kit".into()),
        ..chat(5, &grace, "Thanks, I'll check it", 6, ChatKind::User)
    }));
    let mut model = class.model();
    model.class.panel = Some(Panel::Chat);
    model.class.chat_to = Some("grace".into());
    let mut harness = harness(model, class_pictures);
    harness.snapshot("class_chat_private");
    let line = "Message to Grace Hopper (privately)";
    harness.get_by_label(line).focus();
    harness.run();
    harness.get_by_label(line).type_text("Better now");
    harness.run();
    harness.get_by_label("Send").click();
    harness.run();
    assert_sent!(
        harness,
        Request::Command(classroom::session::Command::SendPrivateChat { to_user_id, message })
            if to_user_id == "grace" && message == "Better now",
        "the message goes to the instructor alone"
    );
}

/// With public chat locked, a student's line to everyone is greyed out and says why.
#[test]
fn class_chat_locked_for_students_says_why() {
    use classroom::session::ClassInput;
    let mut class = ScriptedClass::new();
    class.input(Input::Class(ClassInput::Settings(
        classroom_wire::ClassSettings {
            locks: classroom_wire::LockSettings {
                public_chat: true,
                ..Default::default()
            },
            ..Default::default()
        },
    )));
    let mut model = class.model();
    model.class.panel = Some(Panel::Chat);
    let harness = harness(model, class_pictures);
    assert!(
        harness
            .query_by_label_contains("The instructor has locked public chat")
            .is_some(),
        "the line says why it is greyed out"
    );
}

/// The instructor's class settings: what students may do, who comes in, and co-instructors.
#[test]
fn class_people_settings_for_the_instructor() {
    use classroom::session::Command;
    use classroom_wire::{LockSettings, Moderation, WaitingPolicy};
    let class = ScriptedClass::with_role(true);
    let mut model = class.model();
    model.class.panel = Some(Panel::People);
    let mut harness = harness(model, class_pictures);
    harness.get_by_label("Class settings").click();
    harness.run();
    harness.snapshot("class_people_settings");
    harness.get_by_label("share their screen").click();
    harness.run();
    assert_sent!(
        harness,
        Request::Command(Command::Moderate(Moderation::SetLocks { locks }))
            if *locks == LockSettings { screen_share: true, ..Default::default() },
        "screen sharing locked for students"
    );
    harness.get_by_label("see each other's cameras").click();
    harness.run();
    assert_sent!(
        harness,
        Request::Command(Command::Moderate(Moderation::SetLocks { locks }))
            if locks.student_cameras && !locks.camera,
        "students' cameras kept for the instructors"
    );
    harness.get_by_label("Everyone I admit").click();
    harness.run();
    assert_sent!(
        harness,
        Request::Command(Command::Moderate(Moderation::SetWaitingRoom {
            policy: WaitingPolicy::Ask
        })),
        "the waiting room asks"
    );
    harness
        .query_all_by_label("Make co-instructor")
        .next()
        .expect("a student to promote")
        .click();
    harness.run();
    assert_sent!(
        harness,
        Request::Command(Command::Moderate(Moderation::GrantCoInstructor { target_user_id }))
            if target_user_id == "ada",
        "Ada (first of the students by name) becomes a co-instructor"
    );
}
