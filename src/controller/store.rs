//! Settings and recent classes, kept between runs in a small JSON file
//! (`$CLASSROOM_CONFIG_DIR`, else `$XDG_CONFIG_HOME/classroom`, else `~/.config/classroom`).
//! Tokens are never written: they are secrets with a short life.

use std::path::{Path, PathBuf};

use super::model::{RecentClass, Settings};

#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct Saved {
    pub settings: Settings,
    pub recent: Vec<RecentClass>,
}

pub struct Store {
    path: PathBuf,
}

impl Store {
    /// The store in the user's configuration directory, if there is one.
    pub fn for_user() -> Option<Store> {
        let dir = std::env::var_os("CLASSROOM_CONFIG_DIR")
            .map(PathBuf::from)
            .or_else(|| {
                std::env::var_os("XDG_CONFIG_HOME").map(|d| PathBuf::from(d).join("classroom"))
            })
            .or_else(|| {
                std::env::var_os("HOME").map(|d| PathBuf::from(d).join(".config/classroom"))
            })?;
        Some(Store::at(dir.join("state.json")))
    }

    pub fn at(path: impl AsRef<Path>) -> Store {
        Store {
            path: path.as_ref().to_owned(),
        }
    }

    /// Whether anything was saved yet.
    pub fn exists(&self) -> bool {
        self.path.exists()
    }

    /// What was saved; defaults when nothing was or the file is unreadable (said in the log).
    pub fn load(&self) -> Saved {
        match std::fs::read(&self.path) {
            Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or_else(|error| {
                tracing::warn!(path = %self.path.display(), %error, "saved settings unreadable; using defaults");
                Saved::default()
            }),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Saved::default(),
            Err(error) => {
                tracing::warn!(path = %self.path.display(), %error, "saved settings unreadable; using defaults");
                Saved::default()
            }
        }
    }

    /// Writes atomically (a temporary file renamed over the old one).
    pub fn save(&self, settings: &Settings, recent: &[RecentClass]) -> std::io::Result<()> {
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let saved = Saved {
            settings: settings.clone(),
            recent: recent.to_vec(),
        };
        let json = serde_json::to_vec_pretty(&saved).map_err(std::io::Error::other)?;
        let temporary = self.path.with_extension("json.tmp");
        std::fs::write(&temporary, json)?;
        std::fs::rename(&temporary, &self.path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controller::model::{JoinTarget, ServerChoice, ThemeChoice};

    #[test]
    fn settings_and_recent_classes_survive_a_restart_without_their_tokens() {
        let dir = std::env::temp_dir().join(format!("classroom-store-{}", std::process::id()));
        let store = Store::at(dir.join("state.json"));
        assert_eq!(store.load().recent.len(), 0);
        let settings = Settings {
            theme: ThemeChoice::Light,
            ..Settings::default()
        };
        let recent = vec![RecentClass {
            target: JoinTarget {
                server: ServerChoice::Remote("https://class.school.org".into()),
                session: "physics".into(),
                name: "Ada".into(),
                token: Some("secret-token".into()),
                key: Some("a-local-class-key".into()),
                instructor: false,
            },
        }];
        store.save(&settings, &recent).unwrap();
        let text = std::fs::read_to_string(dir.join("state.json")).unwrap();
        assert!(!text.contains("secret-token"), "tokens are not written");
        assert!(
            !text.contains("a-local-class-key"),
            "join keys are not written"
        );
        let saved = store.load();
        assert_eq!(saved.settings.theme, ThemeChoice::Light);
        assert_eq!(saved.recent[0].target.session, "physics");
        assert_eq!(saved.recent[0].target.token, None);
        assert_eq!(saved.recent[0].target.key, None);
        std::fs::write(dir.join("state.json"), "{ not json").unwrap();
        assert_eq!(
            store.load().recent.len(),
            0,
            "a damaged file gives defaults"
        );
        let _ = std::fs::remove_dir_all(dir);
    }
}
