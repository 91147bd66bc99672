//! The window: each frame takes what the background published, moves new pictures into
//! textures, draws the current screen, and turns the user's actions into requests. It never
//! waits on anything.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::launch::Launch;
use super::model::{
    JoinTarget, Panel, PreJoin, RecentClass, Screen, ServerChoice, UiAction, UiModel,
};
use super::pictures::{PictureBoard, TileTextures};
use super::views::{self, ViewContext};
use crate::controller::store::{Saved, Store};
use crate::controller::{Controller, Phase, Published, Request};
use crate::session::Command;

/// What the window starts with besides the launch target.
pub struct WindowSetup {
    /// The local time zone's offset from UTC, seconds.
    pub utc_offset_secs: i32,
    /// The effective configuration (managed policy included).
    pub config: crate::policy::EffectiveConfig,
    /// The policy could not be read: said on the start screen.
    pub policy_problem: Option<String>,
    /// The user's saved settings and recent classes, read once at start-up (they also feed
    /// the effective configuration).
    pub saved: Option<Saved>,
}

/// How long a notice (someone joined) stays up.
const NOTICE_TIME: Duration = Duration::from_secs(4);
/// Recent classes kept on the start screen.
const RECENT_CLASSES: usize = 5;

pub struct ClassroomApp {
    pub model: UiModel,
    controller: Option<Controller>,
    board: Arc<PictureBoard>,
    textures: TileTextures,
    store: Option<Store>,
    utc_offset_secs: i32,
    notice_since: Option<Instant>,
    /// Waiting for the embedded server, to open the pre-join check of a local class.
    local_class: Option<LocalClassPlan>,
    /// Join straight after the check is set up (`classroom join --now`).
    join_when_ready: bool,
    view_height_sent: u32,
    fullscreen_applied: bool,
    /// The controller asked to close the window (the app was told to stop).
    close_requested: bool,
    /// Scripted apps (no controller) keep what they would have sent, for tests.
    sent: Vec<Request>,
}

struct LocalClassPlan {
    session: String,
    name: String,
}

impl ClassroomApp {
    /// The app with its controller, whose pictures go to `board`; `launch` says where to
    /// start.
    pub fn new(
        ctx: &egui::Context,
        controller: Controller,
        board: Arc<PictureBoard>,
        store: Option<Store>,
        launch: Launch,
        setup: WindowSetup,
    ) -> Self {
        let repaint = ctx.clone();
        controller.on_change(Arc::new(move || repaint.request_repaint()));
        board.attach(ctx);
        let mut app = ClassroomApp::scripted(UiModel::default(), board, setup.utc_offset_secs);
        app.controller = Some(controller);
        if let Some(saved) = setup.saved {
            app.model.settings = saved.settings;
            app.model.recent = saved.recent;
            if let Some(last) = app.model.recent.first() {
                app.model.start.name = last.target.name.clone();
            }
        }
        // The school's policy: presets, locks, features.
        let config = &setup.config;
        app.model.managed = super::model::Managed::from_config(config);
        app.model.start.server_url = config.server_url.value.clone();
        if config.voice_processing.locked() {
            app.model.settings.voice_processing = config.voice_processing.value;
        }
        let stages = &mut app.model.settings.voice_stages;
        for stage in crate::media::voice::VoiceStage::ALL {
            let effective = config.voice_stage(stage);
            if effective.locked() {
                *stages.stage_mut(stage) = effective.value;
            }
        }
        app.model.start.error = setup.policy_problem;
        app.store = store;
        app.send(Request::EnumerateDevices);
        app.launch(launch);
        app
    }

    /// The app without a controller: the model is scripted and pictures are put on `board`
    /// by hand (snapshot tests, the UI benchmark).
    pub fn scripted(model: UiModel, board: Arc<PictureBoard>, utc_offset_secs: i32) -> Self {
        ClassroomApp {
            model,
            controller: None,
            board,
            textures: TileTextures::default(),
            store: None,
            utc_offset_secs,
            notice_since: None,
            local_class: None,
            join_when_ready: false,
            view_height_sent: 0,
            fullscreen_applied: false,
            close_requested: false,
            sent: Vec::new(),
        }
    }

    /// What a scripted app would have asked of the controller, oldest first (taken).
    pub fn take_sent(&mut self) -> Vec<Request> {
        std::mem::take(&mut self.sent)
    }

    fn send(&mut self, request: Request) {
        match &self.controller {
            Some(controller) => controller.send(request),
            None => self.sent.push(request),
        }
    }

    fn launch(&mut self, launch: Launch) {
        match launch {
            Launch::Start => {}
            Launch::Join {
                target,
                now,
                mic_on,
                camera_on,
                audio_devices,
            } => {
                self.join_when_ready = now;
                let mut prejoin = self.prejoin_for(target.clone());
                prejoin.mic_on = mic_on && audio_devices;
                prejoin.camera_on = camera_on;
                prejoin.audio_devices = audio_devices;
                self.model.prejoin = Some(prejoin);
                match target.server {
                    ServerChoice::Local { port } => {
                        self.local_class = Some(LocalClassPlan {
                            session: target.session.clone(),
                            name: target.name.clone(),
                        });
                        self.send(Request::StartLocalServer { port });
                    }
                    ServerChoice::Remote(_) => self.apply(UiAction::Prepare(target)),
                }
            }
        }
    }

    /// Camera and microphone start as the user left them last time (both on by default).
    fn prejoin_for(&self, target: JoinTarget) -> PreJoin {
        PreJoin {
            target,
            mic_on: true,
            camera_on: true,
            audio_devices: true,
            mic_level_dbfs: None,
            speaker_test_playing: false,
            device_problem: None,
            connection: None,
        }
    }

    fn restart_check(&mut self) {
        if self.model.screen != Screen::PreJoin {
            return;
        }
        if let Some(prejoin) = &self.model.prejoin {
            let request = Request::StartCheck {
                settings: self.model.settings.clone(),
                camera_on: prejoin.camera_on,
                mic_on: prejoin.mic_on,
            };
            self.send(request);
        }
    }

    /// Takes in what the controller published.
    fn merge(&mut self, published: Published) {
        self.close_requested |= published.close;
        let model = &mut self.model;
        match &published.phase {
            Phase::Joining | Phase::InClass => model.screen = Screen::Class,
            Phase::Ended(message) => {
                if model.screen == Screen::Class {
                    model.screen = Screen::Ended {
                        message: message.clone(),
                    };
                }
            }
            Phase::Idle => {}
        }
        model.live = published.live;
        if let Some(devices) = published.devices {
            model.devices = devices;
        }
        if let Some(prejoin) = &mut model.prejoin {
            prejoin.mic_level_dbfs = published.mic_level_dbfs;
            prejoin.device_problem = published.check_problem;
            prejoin.speaker_test_playing = published.speaker_test_playing;
            prejoin.connection = published.connection.clone();
        }
        if let Some(notice) = published.notices.last() {
            model.notice = Some(notice.clone());
            self.notice_since = Some(Instant::now());
        }
        match (published.local_server, &self.local_class) {
            (Some(Ok(port)), Some(plan)) => {
                let target = JoinTarget {
                    server: ServerChoice::Local { port },
                    session: plan.session.clone(),
                    name: plan.name.clone(),
                    token: None,
                    key: None,
                    instructor: true,
                };
                self.local_class = None;
                self.apply(UiAction::Prepare(target));
            }
            (Some(Err(error)), Some(_)) => {
                self.local_class = None;
                self.model.start.error = Some(error);
                self.model.screen = Screen::Start;
            }
            _ => {}
        }
        if self.fit_check_to_devices() {
            self.restart_check();
        }
    }

    /// No camera (or microphone) at all: the check switches it off, says so plainly, and
    /// shows no error from trying to open what is not there. True when something changed.
    fn fit_check_to_devices(&mut self) -> bool {
        let missing = self.model.devices.missing(&self.model.settings);
        let Some(prejoin) = &mut self.model.prejoin else {
            return false;
        };
        let mut changed = false;
        if missing.camera && prejoin.camera_on {
            prejoin.camera_on = false;
            changed = true;
        }
        if missing.microphone && prejoin.mic_on {
            prejoin.mic_on = false;
            changed = true;
        }
        if changed {
            prejoin.device_problem = None;
        }
        changed
    }

    /// Carries out one user action.
    pub(crate) fn apply(&mut self, action: UiAction) {
        let model = &mut self.model;
        let in_class = model.screen == Screen::Class;
        match action {
            UiAction::Prepare(target) => {
                self.send(Request::TestConnection {
                    target: target.clone(),
                });
                let mut prejoin = self.prejoin_for(target);
                if let Some(previous) = &self.model.prejoin {
                    prejoin.mic_on = previous.mic_on;
                    prejoin.camera_on = previous.camera_on;
                    prejoin.audio_devices = previous.audio_devices;
                }
                self.model.prejoin = Some(prejoin);
                self.model.screen = Screen::PreJoin;
                self.fit_check_to_devices();
                self.restart_check();
                if self.join_when_ready {
                    self.join_when_ready = false;
                    self.apply(UiAction::Join);
                }
            }
            UiAction::StartLocalClass => {
                let name = Some(model.start.name.trim().to_owned())
                    .filter(|name| !name.is_empty())
                    .unwrap_or_else(|| "Teacher".into());
                self.local_class = Some(LocalClassPlan {
                    session: "local-class".into(),
                    name,
                });
                self.send(Request::StartLocalServer {
                    port: super::launch::DEFAULT_LOCAL_PORT,
                });
            }
            UiAction::Join => {
                let Some(prejoin) = model.prejoin.clone() else {
                    return;
                };
                model.class = Default::default();
                model.class.title = prejoin.target.session.clone();
                model.live = Default::default();
                model.screen = Screen::Class;
                model
                    .recent
                    .retain(|recent| recent.target != prejoin.target);
                model.recent.insert(
                    0,
                    RecentClass {
                        target: prejoin.target.clone(),
                    },
                );
                model.recent.truncate(RECENT_CLASSES);
                self.view_height_sent = 0;
                self.save();
                self.send(Request::Join {
                    target: prejoin.target,
                    settings: self.model.settings.clone(),
                    camera_on: prejoin.camera_on,
                    mic_on: prejoin.mic_on && prejoin.audio_devices,
                    audio_devices: prejoin.audio_devices,
                });
            }
            UiAction::JoinWithoutAudio => {
                if let Some(prejoin) = &mut model.prejoin {
                    prejoin.audio_devices = false;
                    prejoin.mic_on = false;
                }
                self.apply(UiAction::Join);
            }
            UiAction::BackToStart => {
                model.screen = Screen::Start;
                self.send(Request::StopCheck);
            }
            UiAction::SetMicrophone(on) if in_class => {
                self.send(Request::Command(Command::SetMicrophone(on)))
            }
            UiAction::SetCamera(on) if in_class => {
                self.send(Request::Command(Command::SetCamera(on)))
            }
            UiAction::SetMicrophone(on) => {
                if let Some(prejoin) = &mut model.prejoin {
                    prejoin.mic_on = on;
                }
                self.restart_check();
            }
            UiAction::SetCamera(on) => {
                if let Some(prejoin) = &mut model.prejoin {
                    prejoin.camera_on = on;
                }
                self.restart_check();
            }
            UiAction::ShareScreen(Some(id)) => {
                model.class.share_picker_open = false;
                self.send(Request::ShareScreen(id));
            }
            UiAction::ShareScreen(None) => {
                self.send(Request::Command(Command::SetScreenShare(false)))
            }
            UiAction::RaiseHand(up) => self.send(Request::Command(Command::RaiseHand(up))),
            UiAction::SendChat(text) => self.send(Request::Command(Command::SendChat(text))),
            UiAction::SendPrivateChat {
                to_user_id,
                message,
            } => self.send(Request::Command(Command::SendPrivateChat {
                to_user_id,
                message,
            })),
            UiAction::ChatTo(to) => model.class.chat_to = to,
            UiAction::React(emoji) => {
                model.class.reactions_open = false;
                self.send(Request::Command(Command::React(emoji)));
            }
            UiAction::OpenReactions(open) => model.class.reactions_open = open,
            UiAction::Moderate(moderation) => {
                self.send(Request::Command(Command::Moderate(moderation)))
            }
            UiAction::Vote { choices, text } => {
                self.send(Request::Command(Command::Vote { choices, text }))
            }
            UiAction::DismissNotice => self.send(Request::Command(Command::DismissNotice)),
            UiAction::TogglePanel(panel) => {
                model.class.panel = if model.class.panel == Some(panel) {
                    None
                } else {
                    Some(panel)
                };
            }
            UiAction::Pin(key) => model.class.pinned = key,
            UiAction::ToggleFullscreen => model.class.fullscreen = !model.class.fullscreen,
            UiAction::OpenSharePicker(open) => {
                model.class.share_picker_open = open;
                if open {
                    self.send(Request::EnumerateDevices);
                }
            }
            UiAction::PlayTestSound => {
                let speaker = model.settings.speaker.clone();
                if let Some(prejoin) = &mut model.prejoin {
                    prejoin.speaker_test_playing = true;
                }
                self.send(Request::PlayTestSound { speaker });
            }
            UiAction::ChangeSettings(settings) => {
                let camera_changed = settings.camera != model.settings.camera
                    || settings.video_quality != model.settings.video_quality;
                let audio_changed = settings.microphone != model.settings.microphone
                    || settings.speaker != model.settings.speaker;
                let voice_changed = settings.voice_processing != model.settings.voice_processing
                    || settings.voice_stages != model.settings.voice_stages;
                if in_class && camera_changed {
                    self.send(Request::SwitchCamera(settings.clone()));
                }
                if in_class && audio_changed {
                    self.send(Request::SwitchAudio(settings.clone()));
                }
                if in_class && voice_changed {
                    self.send(Request::SetVoiceProcessing(settings.clone()));
                }
                let model = &mut self.model;
                model.settings = settings;
                self.save();
                self.restart_check();
            }
            UiAction::Leave => {
                model.screen = Screen::Ended {
                    message: "You left the class.".into(),
                };
                model.class.fullscreen = false;
                self.send(Request::Leave);
            }
        }
    }

    /// Saves settings and recent classes, off the UI thread (the background writes the file).
    fn save(&mut self) {
        if self.store.is_some() {
            let request = Request::Save {
                settings: self.model.settings.clone(),
                recent: self.model.recent.clone(),
            };
            self.send(request);
        }
    }

    /// Merges what the controller published since the last poll (the call's state,
    /// notices), and closes the window when the controller asks.
    pub(crate) fn poll_controller(&mut self, ctx: &egui::Context) {
        if let Some(published) = self.controller.as_mut().and_then(Controller::poll) {
            self.merge(published);
        }
        if std::mem::take(&mut self.close_requested) {
            ctx.send_viewport_cmd(egui::ViewportCommand::Close);
            ctx.request_repaint();
        }
    }

    /// One frame: what the window shows now.
    pub fn frame(&mut self, ui: &mut egui::Ui) {
        let ctx = ui.ctx().clone();
        if tracing::enabled!(target: "classroom::ui::repaint", tracing::Level::TRACE) {
            tracing::trace!(target: "classroom::ui::repaint", causes = ?ctx.repaint_causes(), "frame");
        }
        // eframe runs `logic` first; a harness that draws frames alone polls here.
        self.poll_controller(&ctx);
        self.textures.sync(&ctx, &self.board);
        if let Some(since) = self.notice_since {
            let left = NOTICE_TIME.saturating_sub(since.elapsed());
            if left.is_zero() {
                self.model.notice = None;
                self.notice_since = None;
            } else {
                ctx.request_repaint_after(left);
            }
        }
        views::apply_theme(&ctx, self.model.settings.theme);
        if self.model.class.panel == Some(Panel::Chat) {
            self.model.class.chat_seen = self.model.live.snapshot.chat.len();
        }
        let mut actions = Vec::new();
        let view = ViewContext {
            textures: &self.textures,
            utc_offset_secs: self.utc_offset_secs,
        };
        match self.model.screen.clone() {
            Screen::Start => {
                egui::CentralPanel::default().show(ui, |ui| {
                    views::start::show(ui, &mut self.model, &mut actions)
                });
            }
            Screen::PreJoin => {
                egui::CentralPanel::default().show(ui, |ui| {
                    views::prejoin::show(ui, &mut self.model, &view, &mut actions)
                });
            }
            Screen::Class => views::class::show(ui, &mut self.model, &view, &mut actions),
            Screen::Ended { message } => {
                egui::CentralPanel::default().show(ui, |ui| ended(ui, &message, &mut actions));
            }
        }
        if !actions.is_empty() {
            // What the actions changed is drawn at once, not at the next outside event.
            ctx.request_repaint();
        }
        for action in actions {
            self.apply(action);
        }
        if self.model.screen == Screen::Class {
            self.follow_tile_size(&ctx);
        }
        if self.fullscreen_applied != self.model.class.fullscreen {
            self.fullscreen_applied = self.model.class.fullscreen;
            ctx.send_viewport_cmd(egui::ViewportCommand::Fullscreen(self.fullscreen_applied));
        }
    }

    /// Tells the senders how tall our camera tiles are, in steps, so nobody sends more.
    fn follow_tile_size(&mut self, ctx: &egui::Context) {
        let screen = ctx.content_rect().size();
        let pixels = views::class::camera_tile_height(&self.model, screen, ctx.pixels_per_point());
        let step = [180, 360, 540, 720]
            .into_iter()
            .find(|step| pixels <= *step)
            .unwrap_or(1080);
        if step != self.view_height_sent && self.model.live.snapshot.joined {
            self.view_height_sent = step;
            self.send(Request::Command(Command::SetViewHeight(step)));
        }
    }

    /// Leaves and stops the controller (window closing).
    pub fn shutdown(&mut self) {
        if let Some(mut controller) = self.controller.take() {
            controller.shutdown();
        }
    }
}

fn ended(ui: &mut egui::Ui, message: &str, actions: &mut Vec<UiAction>) {
    ui.vertical_centered(|ui| {
        ui.add_space(ui.available_height() * 0.3);
        ui.heading(message);
        ui.add_space(16.0);
        ui.horizontal(|ui| {
            let width = 260.0;
            ui.add_space(((ui.available_width() - width) / 2.0).max(0.0));
            if ui
                .add(egui::Button::new("Rejoin").min_size([120.0, 32.0].into()))
                .clicked()
            {
                actions.push(UiAction::Join);
            }
            if ui
                .add(egui::Button::new("Back to start").min_size([120.0, 32.0].into()))
                .clicked()
            {
                actions.push(UiAction::BackToStart);
            }
        });
    });
}

impl eframe::App for ClassroomApp {
    /// Runs on every wake-up, drawn or not: a hidden or minimised window (which eframe does
    /// not draw) keeps merging the call's state, so nothing piles up unseen.
    fn logic(&mut self, ctx: &egui::Context, _frame: &mut eframe::Frame) {
        self.poll_controller(ctx);
    }

    fn ui(&mut self, ui: &mut egui::Ui, _frame: &mut eframe::Frame) {
        self.frame(ui);
    }

    fn on_exit(&mut self) {
        self.shutdown();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ui::model::{DeviceLists, DeviceOption};

    fn target() -> JoinTarget {
        JoinTarget {
            server: ServerChoice::Remote("http://school".into()),
            session: "math".into(),
            name: "Ada".into(),
            token: None,
            key: None,
            instructor: false,
        }
    }

    fn checks(app: &mut ClassroomApp) -> Vec<(bool, bool)> {
        app.take_sent()
            .into_iter()
            .filter_map(|request| match request {
                Request::StartCheck {
                    camera_on, mic_on, ..
                } => Some((camera_on, mic_on)),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn without_a_camera_or_microphone_the_check_starts_with_them_off() {
        let mut app = ClassroomApp::scripted(UiModel::default(), PictureBoard::new(), 0);
        app.model.devices = DeviceLists {
            listed: true,
            ..DeviceLists::default()
        };
        app.apply(UiAction::Prepare(target()));
        let prejoin = app.model.prejoin.as_ref().expect("the check is up");
        assert!(!prejoin.camera_on && !prejoin.mic_on);
        assert_eq!(checks(&mut app), [(false, false)]);
    }

    #[test]
    fn devices_found_late_switch_the_check_off_only_when_there_are_none() {
        let mut app = ClassroomApp::scripted(UiModel::default(), PictureBoard::new(), 0);
        app.apply(UiAction::Prepare(target()));
        assert_eq!(checks(&mut app), [(true, true)], "not looked for yet");
        let microphone = DeviceOption {
            id: "USB".into(),
            label: "USB".into(),
        };
        app.merge(Published {
            devices: Some(DeviceLists {
                listed: true,
                microphones: vec![microphone],
                ..DeviceLists::default()
            }),
            check_problem: Some("The camera is not there.".into()),
            ..Published::default()
        });
        let prejoin = app.model.prejoin.as_ref().expect("the check is up");
        assert!(!prejoin.camera_on, "no camera: off");
        assert!(prejoin.mic_on, "a microphone: stays on");
        assert_eq!(
            prejoin.device_problem, None,
            "no error for what is not there"
        );
        assert_eq!(checks(&mut app), [(false, true)]);
        app.merge(Published::default());
        assert!(checks(&mut app).is_empty(), "said once");
    }
}
