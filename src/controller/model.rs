//! What the window and its controller exchange, as plain data: where to join, the
//! settings, what the pickers offer, and the class as the engine last published it.

use std::collections::BTreeMap;

use crate::session::Snapshot;

/// Where the class runs.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum ServerChoice {
    /// A school's server (`http://…` or `https://…`).
    Remote(String),
    /// "Start a local class": the signaling server in this process, on loopback.
    Local { port: u16 },
}

impl ServerChoice {
    pub fn label(&self) -> String {
        match self {
            ServerChoice::Remote(url) => url.clone(),
            ServerChoice::Local { port } => format!("local class on port {port}"),
        }
    }
}

/// Everything needed to join a class.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct JoinTarget {
    pub server: ServerChoice,
    pub session: String,
    pub name: String,
    /// Sign-in token for the server (`auth.token`); `None` for a local class.
    #[serde(skip)]
    pub token: Option<String>,
    /// The join key of another app's local class (`auth.key`), from its invitation link.
    #[serde(skip)]
    pub key: Option<String>,
    pub instructor: bool,
}

/// The pre-join connection test, as the window shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConnectionCheck {
    Testing,
    Done {
        lines: Vec<ConnectionLine>,
        /// What it means for the class, in words a student can read to IT.
        summary: String,
    },
    /// The test could not run (the server unreachable, say), in words.
    Failed(String),
}

/// One path of the connection test: "Relay over TLS", and how it went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionLine {
    pub label: String,
    /// `None`: the class offers no server for this path.
    pub works: Option<bool>,
    pub detail: String,
}

/// One choice in a device picker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceOption {
    pub id: String,
    pub label: String,
}

/// What the pickers offer (enumerated off the UI thread).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeviceLists {
    /// The devices have been looked for (before that, the lists are empty for want of
    /// looking, not for want of devices).
    pub listed: bool,
    pub cameras: Vec<DeviceOption>,
    pub microphones: Vec<DeviceOption>,
    pub speakers: Vec<DeviceOption>,
    pub screens: Vec<DeviceOption>,
}

/// Kinds of device the machine has none of, as far as the settings need one.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Missing {
    pub camera: bool,
    pub microphone: bool,
    pub speaker: bool,
}

impl DeviceLists {
    /// What is missing for `settings`: a camera unless the test pattern is chosen, a
    /// microphone unless the test tone is; nothing before the devices were looked for.
    pub fn missing(&self, settings: &Settings) -> Missing {
        if !self.listed {
            return Missing::default();
        }
        Missing {
            camera: self.cameras.is_empty() && settings.camera != super::device_lists::TEST_PATTERN,
            microphone: self.microphones.is_empty()
                && settings.microphone.as_deref() != Some("tone"),
            speaker: self.speakers.is_empty(),
        }
    }
}

/// Video quality the user picked in the settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum VideoQuality {
    /// 360p camera: saves data and CPU.
    Low,
    /// 720p camera.
    Standard,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum ThemeChoice {
    Dark,
    Light,
}

/// Device and view preferences (settings panel and pre-join check).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Settings {
    /// Camera id from [`DeviceLists::cameras`] (`synthetic` is the test pattern).
    pub camera: String,
    /// Microphone and speaker names (`None`: the system default).
    pub microphone: Option<String>,
    pub speaker: Option<String>,
    /// Screen id from [`DeviceLists::screens`].
    pub screen: String,
    pub video_quality: VideoQuality,
    pub theme: ThemeChoice,
    /// The voice processing stage as a whole (a browser's default).
    pub voice_processing: bool,
    /// Its stages one by one (each on by default, as in a browser).
    #[serde(default)]
    pub voice_stages: crate::media::voice::VoiceProcessingConfig,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            camera: "0".into(),
            microphone: None,
            speaker: None,
            screen: "auto".into(),
            video_quality: VideoQuality::Standard,
            theme: ThemeChoice::Dark,
            voice_processing: true,
            voice_stages: Default::default(),
        }
    }
}

/// How a connection to one participant is doing, from the live stats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum NetworkQuality {
    Connecting,
    Poor,
    Fair,
    Good,
}

/// What the engine knows about one remote participant beyond the roster.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RemoteLive {
    pub quality: Option<NetworkQuality>,
    pub speaking: bool,
    pub round_trip_ms: Option<u32>,
}

/// The class as the engine last published it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct LiveClass {
    pub snapshot: Snapshot,
    pub server_label: String,
    pub remote: BTreeMap<String, RemoteLive>,
    /// We are speaking (voice activity from the processing, else our level).
    pub self_speaking: bool,
    /// Our microphone is muted and we seem to be talking into it (the "you are muted" hint).
    pub muted_talking: bool,
    /// A camera, microphone or speaker that failed during the class, in plain words.
    pub device_problem: Option<String>,
    /// The class was joined at least once (a later loss is a reconnect, not a first join).
    pub joined_once: bool,
}

impl LiveClass {
    /// The banner over the class while it is not (or no longer) connected, or while we wait
    /// to be let in.
    pub(crate) fn connection_banner(&self) -> Option<String> {
        if let Some(position) = self.snapshot.class.waiting_position {
            return Some(format!(
                "Waiting for the instructor to let you in (number {position} in line)…"
            ));
        }
        if self.snapshot.joined && self.snapshot.signaling_connected {
            None
        } else if self.joined_once {
            Some("Connection to the class lost. Reconnecting…".into())
        } else {
            Some("Joining the class…".into())
        }
    }
}

/// A recent class on the start screen.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RecentClass {
    pub target: JoinTarget,
}
