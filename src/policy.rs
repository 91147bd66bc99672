//! Managed configuration: what a school's IT presets, and optionally locks, on every machine.
//!
//! Where the policy comes from (docs/managed-configuration.md):
//! - Linux: `/etc/classroom/policy.toml`;
//! - macOS: managed preferences, `/Library/Managed Preferences/app.classroom.Classroom.plist`
//!   (what an MDM profile installs), same keys;
//! - Windows: registry values under `HKLM\Software\Policies\Classroom` (Group Policy), same
//!   names (strings, DWORD 0/1 for switches, multi-strings for lists).
//!
//! Precedence, lowest first: built-in default < policy < the user's own settings < environment
//! (`CLASSROOM_SERVER`) < command line. A key the policy lists in `locked` ignores everything
//! above the policy, and the window shows it greyed out.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// The settings a policy can preset or lock.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum PolicyKey {
    ServerUrl,
    IceServers,
    LocalClass,
    ScreenShare,
    Chat,
    VoiceProcessing,
    EchoCancellation,
    NoiseSuppression,
    GainControl,
    HighPassFilter,
    ForceRelay,
}

impl PolicyKey {
    pub const ALL: [PolicyKey; 11] = [
        PolicyKey::ServerUrl,
        PolicyKey::IceServers,
        PolicyKey::LocalClass,
        PolicyKey::ScreenShare,
        PolicyKey::Chat,
        PolicyKey::VoiceProcessing,
        PolicyKey::EchoCancellation,
        PolicyKey::NoiseSuppression,
        PolicyKey::GainControl,
        PolicyKey::HighPassFilter,
        PolicyKey::ForceRelay,
    ];

    pub fn name(self) -> &'static str {
        match self {
            PolicyKey::ServerUrl => "server_url",
            PolicyKey::IceServers => "ice_servers",
            PolicyKey::LocalClass => "local_class",
            PolicyKey::ScreenShare => "screen_share",
            PolicyKey::Chat => "chat",
            PolicyKey::VoiceProcessing => "voice_processing",
            PolicyKey::EchoCancellation => "echo_cancellation",
            PolicyKey::NoiseSuppression => "noise_suppression",
            PolicyKey::GainControl => "gain_control",
            PolicyKey::HighPassFilter => "high_pass_filter",
            PolicyKey::ForceRelay => "force_relay",
        }
    }
}

/// A policy as IT writes it. Every field is optional: what is absent is not managed.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    /// The school's class server (`https://…`).
    pub server_url: Option<String>,
    /// STUN/TURN servers added to those the class server hands out (`turn:host:3478`, …).
    pub ice_servers: Option<Vec<String>>,
    /// "Start a local class" on the start screen.
    pub local_class: Option<bool>,
    pub screen_share: Option<bool>,
    pub chat: Option<bool>,
    /// The voice processing stage as a whole (off: every stage below is off).
    pub voice_processing: Option<bool>,
    /// Its stages one by one (each on by default, as in a browser).
    pub echo_cancellation: Option<bool>,
    pub noise_suppression: Option<bool>,
    pub gain_control: Option<bool>,
    pub high_pass_filter: Option<bool>,
    /// Every connection through a TURN relay (`iceTransportPolicy: relay`), for schools that
    /// require every byte through their server. Off by default.
    pub force_relay: Option<bool>,
    /// Keys the user cannot change.
    #[serde(default)]
    pub locked: BTreeSet<PolicyKey>,
}

#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("cannot read the policy {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the policy {path} is not valid: {message}")]
    Invalid { path: PathBuf, message: String },
}

/// The Linux policy file under `root` (`/` on a running system).
pub(crate) fn linux_policy_path(root: &Path) -> PathBuf {
    root.join("etc/classroom/policy.toml")
}

/// The macOS managed-preferences file under `root`.
pub(crate) fn macos_policy_path(root: &Path) -> PathBuf {
    root.join("Library/Managed Preferences/app.classroom.Classroom.plist")
}

impl Policy {
    /// Parses a TOML policy; unknown keys are refused (a typo must not go unnoticed).
    pub(crate) fn from_toml(text: &str, path: &Path) -> Result<Policy, PolicyError> {
        let policy: Policy = toml::from_str(text).map_err(|error| PolicyError::Invalid {
            path: path.to_owned(),
            message: error.to_string(),
        })?;
        policy.checked(path)
    }

    /// Parses a macOS managed-preferences plist (XML or binary) with the same keys.
    pub(crate) fn from_plist(data: &[u8], path: &Path) -> Result<Policy, PolicyError> {
        let policy: Policy = plist::from_bytes(data).map_err(|error| PolicyError::Invalid {
            path: path.to_owned(),
            message: error.to_string(),
        })?;
        policy.checked(path)
    }

    fn checked(self, path: &Path) -> Result<Policy, PolicyError> {
        if let Some(url) = &self.server_url
            && !(url.starts_with("http://") || url.starts_with("https://"))
        {
            return Err(PolicyError::Invalid {
                path: path.to_owned(),
                message: format!("server_url must start with http:// or https://, not {url:?}"),
            });
        }
        for server in self.ice_servers.iter().flatten() {
            if !["stun:", "stuns:", "turn:", "turns:"]
                .iter()
                .any(|scheme| server.starts_with(scheme))
            {
                return Err(PolicyError::Invalid {
                    path: path.to_owned(),
                    message: format!("ice_servers: {server:?} is not a stun:/turn: URL"),
                });
            }
        }
        Ok(self)
    }

    /// The policy of this system, read under `root` (`/` normally; a package test's
    /// throwaway root otherwise). No policy is an empty policy; a broken one is an error.
    pub fn load(root: &Path) -> Result<Policy, PolicyError> {
        if cfg!(target_os = "macos") {
            let path = macos_policy_path(root);
            return match std::fs::read(&path) {
                Ok(data) => Policy::from_plist(&data, &path),
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(Policy::default()),
                Err(source) => Err(PolicyError::Read { path, source }),
            };
        }
        #[cfg(windows)]
        {
            let _ = root;
            return windows::load();
        }
        #[cfg(not(windows))]
        {
            let path = linux_policy_path(root);
            match std::fs::read_to_string(&path) {
                Ok(text) => Policy::from_toml(&text, &path),
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(Policy::default()),
                Err(source) => Err(PolicyError::Read { path, source }),
            }
        }
    }

    pub(crate) fn is_locked(&self, key: PolicyKey) -> bool {
        self.locked.contains(&key)
    }
}

/// Where an effective value came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Origin {
    Default,
    Policy,
    /// The policy, locked: nothing above it applies.
    PolicyLocked,
    User,
    Environment,
    CommandLine,
}

/// One effective value and its origin.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Effective<T> {
    pub value: T,
    pub origin: Origin,
}

impl<T> Effective<T> {
    pub fn locked(&self) -> bool {
        self.origin == Origin::PolicyLocked
    }
}

/// What the app uses, after every layer.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct EffectiveConfig {
    pub server_url: Effective<String>,
    pub ice_servers: Effective<Vec<String>>,
    pub local_class: Effective<bool>,
    pub screen_share: Effective<bool>,
    pub chat: Effective<bool>,
    pub voice_processing: Effective<bool>,
    pub echo_cancellation: Effective<bool>,
    pub noise_suppression: Effective<bool>,
    pub gain_control: Effective<bool>,
    pub high_pass_filter: Effective<bool>,
    pub force_relay: Effective<bool>,
}

/// The layers above the policy.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Overrides {
    /// The user's own settings (the window's settings file).
    pub user_server_url: Option<String>,
    pub user_voice_processing: Option<bool>,
    /// The stages the user chose (each key of it a user value).
    pub user_voice_stages: Option<crate::media::voice::VoiceProcessingConfig>,
    /// `CLASSROOM_SERVER`.
    pub env_server_url: Option<String>,
    /// `--server`.
    pub flag_server_url: Option<String>,
}

fn layer<T: Clone>(
    default: T,
    key: PolicyKey,
    policy: &Policy,
    from_policy: Option<T>,
    above: [(Option<T>, Origin); 3],
) -> Effective<T> {
    if let Some(value) = from_policy.clone()
        && policy.is_locked(key)
    {
        return Effective {
            value,
            origin: Origin::PolicyLocked,
        };
    }
    let mut effective = match from_policy {
        Some(value) => Effective {
            value,
            origin: Origin::Policy,
        },
        None => Effective {
            value: default,
            origin: Origin::Default,
        },
    };
    for (value, origin) in above {
        if let Some(value) = value {
            effective = Effective { value, origin };
        }
    }
    effective
}

/// Only the user's settings (no environment variable or flag) set this key.
fn user_only<T>(user: Option<T>) -> [(Option<T>, Origin); 3] {
    [
        (user, Origin::User),
        (None, Origin::Environment),
        (None, Origin::CommandLine),
    ]
}

/// No layer above the policy sets this key.
fn unset<T>() -> [(Option<T>, Origin); 3] {
    [
        (None, Origin::User),
        (None, Origin::Environment),
        (None, Origin::CommandLine),
    ]
}

/// The class server a newcomer gets when nothing says otherwise.
pub(crate) const DEFAULT_SERVER_URL: &str = "http://127.0.0.1:3001";

impl EffectiveConfig {
    /// One voice processing stage's setting.
    pub fn voice_stage(&self, stage: crate::media::voice::VoiceStage) -> &Effective<bool> {
        use crate::media::voice::VoiceStage;
        match stage {
            VoiceStage::EchoCancellation => &self.echo_cancellation,
            VoiceStage::NoiseSuppression => &self.noise_suppression,
            VoiceStage::GainControl => &self.gain_control,
            VoiceStage::HighPassFilter => &self.high_pass_filter,
        }
    }

    pub fn resolve(policy: &Policy, overrides: &Overrides) -> EffectiveConfig {
        let user_stages = overrides.user_voice_stages;
        EffectiveConfig {
            server_url: layer(
                DEFAULT_SERVER_URL.to_owned(),
                PolicyKey::ServerUrl,
                policy,
                policy.server_url.clone(),
                [
                    (overrides.user_server_url.clone(), Origin::User),
                    (overrides.env_server_url.clone(), Origin::Environment),
                    (overrides.flag_server_url.clone(), Origin::CommandLine),
                ],
            ),
            ice_servers: layer(
                Vec::new(),
                PolicyKey::IceServers,
                policy,
                policy.ice_servers.clone(),
                unset(),
            ),
            local_class: layer(
                true,
                PolicyKey::LocalClass,
                policy,
                policy.local_class,
                unset(),
            ),
            screen_share: layer(
                true,
                PolicyKey::ScreenShare,
                policy,
                policy.screen_share,
                unset(),
            ),
            chat: layer(true, PolicyKey::Chat, policy, policy.chat, unset()),
            voice_processing: layer(
                true,
                PolicyKey::VoiceProcessing,
                policy,
                policy.voice_processing,
                user_only(overrides.user_voice_processing),
            ),
            echo_cancellation: layer(
                true,
                PolicyKey::EchoCancellation,
                policy,
                policy.echo_cancellation,
                user_only(user_stages.map(|s| s.echo_cancellation)),
            ),
            noise_suppression: layer(
                true,
                PolicyKey::NoiseSuppression,
                policy,
                policy.noise_suppression,
                user_only(user_stages.map(|s| s.noise_suppression)),
            ),
            gain_control: layer(
                true,
                PolicyKey::GainControl,
                policy,
                policy.gain_control,
                user_only(user_stages.map(|s| s.gain_control)),
            ),
            high_pass_filter: layer(
                true,
                PolicyKey::HighPassFilter,
                policy,
                policy.high_pass_filter,
                user_only(user_stages.map(|s| s.high_pass_filter)),
            ),
            force_relay: layer(
                false,
                PolicyKey::ForceRelay,
                policy,
                policy.force_relay,
                unset(),
            ),
        }
    }

    /// The policy's STUN/TURN servers as ICE servers for the peer connections.
    pub(crate) fn extra_ice_servers(&self) -> Vec<classroom_wire::IceServer> {
        self.ice_servers
            .value
            .iter()
            .map(|url| classroom_wire::IceServer {
                urls: vec![url.clone()],
                username: None,
                credential: None,
            })
            .collect()
    }
}

#[cfg(windows)]
mod windows {
    //! Group Policy: `HKLM\Software\Policies\Classroom`. Not compiled on the Linux machines
    //! the project is built and tested on (no Windows target there); kept small on purpose.
    use super::{Policy, PolicyError, PolicyKey};
    use winreg::RegKey;
    use winreg::enums::HKEY_LOCAL_MACHINE;

    pub fn load() -> Result<Policy, PolicyError> {
        let path = std::path::PathBuf::from(r"HKLM\Software\Policies\Classroom");
        let Ok(key) =
            RegKey::predef(HKEY_LOCAL_MACHINE).open_subkey(r"Software\Policies\Classroom")
        else {
            return Ok(Policy::default());
        };
        let switch = |name: &str| key.get_value::<u32, _>(name).ok().map(|v| v != 0);
        let policy = Policy {
            server_url: key.get_value::<String, _>("server_url").ok(),
            ice_servers: key.get_value::<Vec<String>, _>("ice_servers").ok(),
            local_class: switch("local_class"),
            screen_share: switch("screen_share"),
            chat: switch("chat"),
            voice_processing: switch("voice_processing"),
            echo_cancellation: switch("echo_cancellation"),
            noise_suppression: switch("noise_suppression"),
            gain_control: switch("gain_control"),
            high_pass_filter: switch("high_pass_filter"),
            force_relay: switch("force_relay"),
            locked: key
                .get_value::<Vec<String>, _>("locked")
                .unwrap_or_default()
                .iter()
                .filter_map(|name| PolicyKey::ALL.into_iter().find(|k| k.name() == name))
                .collect(),
        };
        policy.checked(&path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SCHOOL: &str = r#"
server_url = "https://classroom.school.org"
ice_servers = ["turn:turn.school.org:3478"]
local_class = false
locked = ["server_url", "local_class"]
"#;

    #[test]
    fn every_call_goes_through_the_relay_only_when_the_policy_says_so() {
        let config = EffectiveConfig::resolve(&Policy::default(), &Overrides::default());
        assert!(!config.force_relay.value);
        let policy = Policy::from_toml(
            "force_relay = true\nlocked = [\"force_relay\"]\n",
            Path::new("policy.toml"),
        )
        .unwrap();
        let config = EffectiveConfig::resolve(&policy, &Overrides::default());
        assert!(config.force_relay.value && config.force_relay.locked());
    }

    #[test]
    fn a_locked_policy_value_wins_over_everything() {
        let policy = Policy::from_toml(SCHOOL, Path::new("policy.toml")).unwrap();
        let overrides = Overrides {
            user_server_url: Some("http://mine".into()),
            env_server_url: Some("http://env".into()),
            flag_server_url: Some("http://flag".into()),
            user_voice_processing: Some(false),
            ..Overrides::default()
        };
        let config = EffectiveConfig::resolve(&policy, &overrides);
        assert_eq!(config.server_url.value, "https://classroom.school.org");
        assert!(config.server_url.locked());
        assert!(!config.local_class.value);
        assert!(config.local_class.locked());
        assert_eq!(config.ice_servers.origin, Origin::Policy);
        assert_eq!(
            config.extra_ice_servers()[0].urls,
            ["turn:turn.school.org:3478"]
        );
        // Not managed: the user's choice stands.
        assert!(!config.voice_processing.value);
        assert_eq!(config.voice_processing.origin, Origin::User);
    }

    #[test]
    fn each_voice_processing_stage_is_managed_on_its_own() {
        let policy = Policy::from_toml(
            "gain_control = false\nnoise_suppression = false\nlocked = [\"gain_control\"]\n",
            Path::new("policy.toml"),
        )
        .unwrap();
        let user = Overrides {
            user_voice_stages: Some(crate::media::voice::VoiceProcessingConfig {
                gain_control: true,
                noise_suppression: true,
                high_pass_filter: false,
                ..Default::default()
            }),
            ..Overrides::default()
        };
        let config = EffectiveConfig::resolve(&policy, &user);
        // Locked off: the user's "on" does not count.
        assert!(!config.gain_control.value && config.gain_control.locked());
        // Preset off, not locked: the user turned it back on.
        assert!(config.noise_suppression.value);
        assert_eq!(config.noise_suppression.origin, Origin::User);
        assert!(config.voice_processing.value);
        assert!(config.echo_cancellation.value && config.noise_suppression.value);
        assert!(!config.gain_control.value && !config.high_pass_filter.value);
        // The whole stage off, by the user.
        let off = Overrides {
            user_voice_processing: Some(false),
            ..user
        };
        let off = EffectiveConfig::resolve(&policy, &off);
        assert!(!off.voice_processing.value);
        assert_eq!(off.voice_processing.origin, Origin::User);
    }

    #[test]
    fn an_unlocked_policy_value_is_a_default() {
        let policy = Policy {
            server_url: Some("https://classroom.school.org".into()),
            ..Policy::default()
        };
        let user = Overrides {
            user_server_url: Some("https://other.school.org".into()),
            ..Overrides::default()
        };
        let config = EffectiveConfig::resolve(&policy, &user);
        assert_eq!(config.server_url.value, "https://other.school.org");
        assert_eq!(config.server_url.origin, Origin::User);
        let flag = Overrides {
            flag_server_url: Some("https://flag.school.org".into()),
            ..user
        };
        assert_eq!(
            EffectiveConfig::resolve(&policy, &flag).server_url.origin,
            Origin::CommandLine
        );
        let none = EffectiveConfig::resolve(&Policy::default(), &Overrides::default());
        assert_eq!(none.server_url.value, DEFAULT_SERVER_URL);
        assert_eq!(none.server_url.origin, Origin::Default);
    }

    #[test]
    fn bad_policies_are_refused_with_the_reason() {
        let path = Path::new("/etc/classroom/policy.toml");
        let typo = Policy::from_toml("server_ulr = \"https://x\"", path).unwrap_err();
        assert!(typo.to_string().contains("server_ulr"), "{typo}");
        let scheme = Policy::from_toml("server_url = \"ftp://x\"", path).unwrap_err();
        assert!(scheme.to_string().contains("http"), "{scheme}");
        let turn = Policy::from_toml("ice_servers = [\"turn.school.org\"]", path).unwrap_err();
        assert!(turn.to_string().contains("stun:/turn:"), "{turn}");
        let lock = Policy::from_toml("locked = [\"everything\"]", path).unwrap_err();
        assert!(lock.to_string().contains("everything"), "{lock}");
    }

    #[test]
    fn macos_managed_preferences_use_the_same_keys() {
        let plist = br#"<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">
<plist version="1.0"><dict>
  <key>server_url</key><string>https://classroom.school.org</string>
  <key>screen_share</key><false/>
  <key>locked</key><array><string>screen_share</string></array>
</dict></plist>"#;
        let policy = Policy::from_plist(plist, Path::new("managed.plist")).unwrap();
        assert_eq!(
            policy.server_url.as_deref(),
            Some("https://classroom.school.org")
        );
        assert_eq!(policy.screen_share, Some(false));
        assert!(policy.is_locked(PolicyKey::ScreenShare));
    }

    #[test]
    fn a_root_without_a_policy_has_an_empty_one() {
        let root = std::env::temp_dir().join(format!("classroom-policy-{}", std::process::id()));
        assert_eq!(Policy::load(&root).unwrap(), Policy::default());
        std::fs::create_dir_all(root.join("etc/classroom")).unwrap();
        std::fs::write(linux_policy_path(&root), SCHOOL).unwrap();
        assert_eq!(
            Policy::load(&root).unwrap().server_url.as_deref(),
            Some("https://classroom.school.org")
        );
        std::fs::write(linux_policy_path(&root), "server_url = ").unwrap();
        assert!(
            Policy::load(&root).is_err(),
            "a broken policy is an error, not ignored"
        );
        let _ = std::fs::remove_dir_all(root);
    }
}
