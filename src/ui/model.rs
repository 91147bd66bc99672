//! What the window shows, as plain data: the screen the user is on, the forms, the class as
//! the engine last published it, and the view choices (panels, pin, full screen). Views read
//! it and return [`UiAction`]s; nothing here does IO.

use crate::call::pictures::PictureKey;
use crate::types::Source;

pub use crate::controller::model::{
    ConnectionCheck, DeviceLists, DeviceOption, JoinTarget, LiveClass, Missing, NetworkQuality,
    RecentClass, RemoteLive, ServerChoice, Settings, ThemeChoice, VideoQuality,
};

/// Which screen is up.
#[derive(Debug, Clone, PartialEq)]
pub enum Screen {
    Start,
    PreJoin,
    Class,
    /// After leaving, or when the class could not be joined.
    Ended {
        message: String,
    },
}

/// The start screen's form.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StartForm {
    pub server_url: String,
    pub session: String,
    pub name: String,
    pub token: String,
    pub instructor: bool,
    /// Why the last attempt was refused, in plain words.
    pub error: Option<String>,
}

impl StartForm {
    /// The target this form describes, or what is missing.
    pub fn target(&self) -> Result<JoinTarget, String> {
        let session = self.session.trim();
        let name = self.name.trim();
        let server = self.server_url.trim();
        if name.is_empty() {
            return Err("Enter your name.".into());
        }
        if session.is_empty() {
            return Err("Enter the class to join.".into());
        }
        if !(server.starts_with("http://") || server.starts_with("https://")) {
            return Err("The server address starts with http:// or https://.".into());
        }
        Ok(JoinTarget {
            server: ServerChoice::Remote(server.to_owned()),
            session: session.to_owned(),
            name: name.to_owned(),
            token: Some(self.token.trim().to_owned()).filter(|token| !token.is_empty()),
            key: None,
            instructor: self.instructor,
        })
    }
}

/// The pre-join check.
#[derive(Debug, Clone, PartialEq)]
pub struct PreJoin {
    pub target: JoinTarget,
    pub mic_on: bool,
    pub camera_on: bool,
    /// Use a microphone and speakers at all ("Join without audio" turns both off).
    pub audio_devices: bool,
    /// Microphone level for the meter, dBFS (`None`: no microphone signal).
    pub mic_level_dbfs: Option<f32>,
    pub speaker_test_playing: bool,
    /// A camera or microphone that could not be opened, in plain words.
    pub device_problem: Option<String>,
    /// Which paths to the class work from this network (`None`: not tested, a local class).
    pub connection: Option<ConnectionCheck>,
}

/// Side panels of the class view.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Panel {
    Chat,
    People,
    /// The class's poll: an instructor asks, students answer, results.
    Poll,
    Settings,
}

/// The class view's own choices.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ClassView {
    /// The class's name, for the top bar.
    pub title: String,
    pub panel: Option<Panel>,
    /// The tile shown large (`None`: automatic: a screen share, else the grid).
    pub pinned: Option<PictureKey>,
    pub fullscreen: bool,
    pub chat_draft: String,
    /// Chat messages already seen (the unread badge counts the rest).
    pub chat_seen: usize,
    pub share_picker_open: bool,
    /// The poll an instructor is writing.
    pub poll_draft: PollForm,
    /// A student's choices in a poll of several answers, or words in a typed one, before
    /// they send them, for the poll of this id.
    pub poll_choices: Vec<usize>,
    pub poll_text: String,
    pub poll_answering: Option<String>,
    /// Whom the chat line goes to: a participant's user id, privately (`None`: everyone).
    pub chat_to: Option<String>,
    /// The reaction picker above the control bar is open.
    pub reactions_open: bool,
    /// When each reaction the session keeps was first drawn (egui's clock, seconds): each is
    /// shown for [`REACTION_SHOWN_SECS`].
    pub reactions_seen: Vec<(ReactionKey, f64)>,
}

/// How long a reaction stays on screen, seconds.
pub const REACTION_SHOWN_SECS: f64 = 5.0;

/// A reaction told apart from the others the session keeps: its time, sender and emoji.
pub type ReactionKey = (u64, String, String);

/// The key of a reaction.
pub fn reaction_key(reaction: &classroom_wire::Reaction) -> ReactionKey {
    (
        reaction.timestamp,
        reaction.user_id.clone(),
        reaction.emoji.clone(),
    )
}

/// The poll an instructor is writing: the question, its kind, and one option per line.
#[derive(Debug, Clone, PartialEq)]
pub struct PollForm {
    pub question: String,
    pub kind: classroom_wire::PollKind,
    pub options: String,
}

impl Default for PollForm {
    fn default() -> Self {
        PollForm {
            question: String::new(),
            kind: classroom_wire::PollKind::Single,
            options: String::new(),
        }
    }
}

impl PollForm {
    /// The options written, one per line, blank lines left out.
    pub fn option_list(&self) -> Vec<String> {
        self.options
            .lines()
            .map(str::trim)
            .filter(|line| !line.is_empty())
            .map(str::to_owned)
            .collect()
    }

    /// What is missing before the poll can open, in words; `None` when it can.
    pub fn missing(&self) -> Option<&'static str> {
        use classroom_wire::PollKind;
        let options = self.option_list().len();
        if self.question.trim().is_empty() {
            Some("Write the question")
        } else if matches!(self.kind, PollKind::Single | PollKind::Multiple) && options < 2 {
            Some("Write at least two options, one per line")
        } else if options > classroom_wire::MAX_POLL_OPTIONS {
            Some("At most ten options")
        } else {
            None
        }
    }

    /// The poll to open.
    pub fn draft(&self) -> classroom_wire::PollDraft {
        use classroom_wire::PollKind;
        classroom_wire::PollDraft {
            question: self.question.trim().to_owned(),
            kind: self.kind,
            options: match self.kind {
                PollKind::Single | PollKind::Multiple => self.option_list(),
                PollKind::YesNo | PollKind::Text => Vec::new(),
            },
            anonymous: false,
            correct: None,
        }
    }
}

impl ClassView {
    pub fn unread(&self, live: &LiveClass) -> usize {
        if self.panel == Some(Panel::Chat) {
            return 0;
        }
        live.snapshot.chat.len().saturating_sub(self.chat_seen)
    }
}

/// What the school's managed policy allows and locks, as the window needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Managed {
    /// The server address is set by the school: the start screen shows it, greyed out.
    pub server_locked: bool,
    pub local_class: bool,
    pub screen_share: bool,
    pub chat: bool,
    pub voice_processing_locked: bool,
    /// Echo cancellation, noise suppression, gain control, high-pass filter: set by the school.
    pub voice_stages_locked: [bool; 4],
    /// Every call through the relay (`force_relay`), as the settings' network line says.
    pub force_relay: bool,
}

impl Default for Managed {
    fn default() -> Self {
        Managed {
            server_locked: false,
            local_class: true,
            screen_share: true,
            chat: true,
            voice_processing_locked: false,
            voice_stages_locked: [false; 4],
            force_relay: false,
        }
    }
}

impl Managed {
    pub(crate) fn from_config(config: &crate::policy::EffectiveConfig) -> Managed {
        Managed {
            server_locked: config.server_url.locked(),
            local_class: config.local_class.value,
            screen_share: config.screen_share.value,
            chat: config.chat.value,
            voice_processing_locked: config.voice_processing.locked(),
            voice_stages_locked: crate::media::voice::VoiceStage::ALL
                .map(|stage| config.voice_stage(stage).locked()),
            force_relay: config.force_relay.value,
        }
    }
}

/// Everything the window renders.
#[derive(Debug, Clone, PartialEq)]
pub struct UiModel {
    pub screen: Screen,
    pub start: StartForm,
    pub recent: Vec<RecentClass>,
    pub prejoin: Option<PreJoin>,
    pub settings: Settings,
    pub devices: DeviceLists,
    pub class: ClassView,
    pub live: LiveClass,
    /// A one-line notice (e.g. someone joined), shown for a few seconds.
    pub notice: Option<String>,
    pub managed: Managed,
}

impl Default for UiModel {
    fn default() -> Self {
        UiModel {
            screen: Screen::Start,
            start: StartForm {
                server_url: "http://127.0.0.1:3001".into(),
                ..StartForm::default()
            },
            recent: Vec::new(),
            prejoin: None,
            settings: Settings::default(),
            devices: DeviceLists::default(),
            class: ClassView::default(),
            live: LiveClass::default(),
            notice: None,
            managed: Managed::default(),
        }
    }
}

/// What the views ask for; the app turns these into engine commands or model changes.
#[derive(Debug, Clone, PartialEq)]
pub enum UiAction {
    /// Go to the pre-join check for this class.
    Prepare(JoinTarget),
    /// Start a local class (embedded server) and go to the pre-join check.
    StartLocalClass,
    /// Join with the pre-join choices.
    Join,
    /// Join without microphone and speakers (listen elsewhere, or no audio device at all).
    JoinWithoutAudio,
    BackToStart,
    SetMicrophone(bool),
    SetCamera(bool),
    /// Start sharing this screen (`None`: stop).
    ShareScreen(Option<String>),
    RaiseHand(bool),
    SendChat(String),
    /// A chat message to one participant alone.
    SendPrivateChat {
        to_user_id: String,
        message: String,
    },
    /// Whom the chat line goes to (`None`: everyone).
    ChatTo(Option<String>),
    /// One of the class's reactions.
    React(String),
    /// Opens or closes the reaction picker.
    OpenReactions(bool),
    /// An instructor's control (`docs/protocol.md`, "Running the class").
    Moderate(classroom_wire::Moderation),
    /// Our answer to the open poll.
    Vote {
        choices: Vec<usize>,
        text: Option<String>,
    },
    /// The notice of what an instructor did to us was read.
    DismissNotice,
    TogglePanel(Panel),
    Pin(Option<PictureKey>),
    ToggleFullscreen,
    OpenSharePicker(bool),
    PlayTestSound,
    ChangeSettings(Settings),
    Leave,
}

/// The tiles of the class view, in display order: screens first, then cameras (ours last).
pub fn tiles(live: &LiveClass) -> Vec<PictureKey> {
    let snapshot = &live.snapshot;
    let mut screens = Vec::new();
    let mut cameras = Vec::new();
    for peer in &snapshot.participants {
        let participant = &peer.participant;
        if participant.screen_sharing {
            screens.push(PictureKey::new(&participant.user_id, Source::Screen));
        }
        cameras.push(PictureKey::new(&participant.user_id, Source::Camera));
    }
    if snapshot.screen_sharing {
        screens.push(PictureKey::new(&snapshot.self_user_id, Source::Screen));
    }
    cameras.push(PictureKey::new(&snapshot.self_user_id, Source::Camera));
    screens.extend(cameras);
    screens
}

/// Grid shape (columns, rows) for `count` tiles in an area `width × height` of 16:9 tiles:
/// the shape whose tiles come out largest.
pub(crate) fn grid_shape(count: usize, width: f32, height: f32) -> (usize, usize) {
    let count = count.max(1);
    let mut best = (1, count);
    let mut best_area = 0.0f32;
    // From the most columns down: on a tie, side by side beats stacked.
    for columns in (1..=count).rev() {
        let rows = count.div_ceil(columns);
        let cell_w = width / columns as f32;
        let cell_h = height / rows as f32;
        let tile_w = cell_w.min(cell_h * 16.0 / 9.0);
        let area = tile_w * tile_w * 9.0 / 16.0;
        if area > best_area + 0.5 {
            best_area = area;
            best = (columns, rows);
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grid_shapes_follow_the_tile_count() {
        assert_eq!(grid_shape(1, 1280.0, 720.0), (1, 1));
        assert_eq!(grid_shape(2, 1280.0, 720.0), (2, 1));
        assert_eq!(grid_shape(4, 1280.0, 720.0), (2, 2));
        assert_eq!(grid_shape(9, 1280.0, 720.0), (3, 3));
        assert_eq!(grid_shape(10, 1280.0, 720.0), (4, 3));
    }

    #[test]
    fn the_start_form_says_what_is_missing() {
        let mut form = StartForm {
            server_url: "http://127.0.0.1:3001".into(),
            ..StartForm::default()
        };
        assert_eq!(form.target(), Err("Enter your name.".into()));
        form.name = "Ada".into();
        assert_eq!(form.target(), Err("Enter the class to join.".into()));
        form.session = "physics".into();
        form.server_url = "example.org".into();
        assert!(form.target().unwrap_err().contains("http://"));
        form.server_url = "https://example.org".into();
        let target = form.target().unwrap();
        assert_eq!(target.token, None);
        assert_eq!(target.session, "physics");
    }
}
