//! What went wrong with a device (camera, microphone, speaker, screen), by kind, so the
//! window can say it in a student's words in one place (`ui`'s `device_problem_words`)
//! instead of reading backends' messages.

use std::fmt;

use super::audio_device::AudioError;
use super::capture::CaptureError;

/// The kinds of device failure a user can do something about differently.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum DeviceErrorKind {
    /// The system does not let the app use it (privacy settings, a sandbox).
    Permission,
    /// It is not there.
    NotFound,
    /// Another program holds it.
    Busy,
    /// It was there and went away (unplugged, a display closed).
    Lost,
    /// Anything else the backend reported.
    Backend,
}

impl fmt::Display for DeviceErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DeviceErrorKind::Permission => "permission denied",
            DeviceErrorKind::NotFound => "not found",
            DeviceErrorKind::Busy => "busy",
            DeviceErrorKind::Lost => "lost",
            DeviceErrorKind::Backend => "failed",
        })
    }
}

/// A device failure: which device (as the user would name it), the kind, and the backend's
/// own words.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{device}: {kind} ({detail})")]
pub struct DeviceError {
    pub device: String,
    pub kind: DeviceErrorKind,
    pub detail: String,
}

impl DeviceError {
    pub fn new(
        device: impl Into<String>,
        kind: DeviceErrorKind,
        detail: impl fmt::Display,
    ) -> Self {
        DeviceError {
            device: device.into(),
            kind,
            detail: detail.to_string(),
        }
    }

    /// A failure from a backend that gives no kind (nokhwa, X11, the portal): the kind is
    /// read from its message here, the one place that does so, with `otherwise` when the
    /// message says nothing more.
    pub(crate) fn from_message(
        device: impl Into<String>,
        detail: impl fmt::Display,
        otherwise: DeviceErrorKind,
    ) -> Self {
        let detail = detail.to_string();
        let lower = detail.to_lowercase();
        let kind = if lower.contains("permission") || lower.contains("denied") {
            DeviceErrorKind::Permission
        } else if lower.contains("busy") || lower.contains("in use") {
            DeviceErrorKind::Busy
        } else if lower.contains("no such device") || lower.contains("disconnected") {
            DeviceErrorKind::Lost
        } else if lower.contains("not found") || lower.contains("no such") {
            DeviceErrorKind::NotFound
        } else {
            otherwise
        };
        DeviceError {
            device: device.into(),
            kind,
            detail,
        }
    }

    /// A capture failure of `device`.
    pub(crate) fn from_capture(device: impl Into<String>, error: &CaptureError) -> Self {
        let device = device.into();
        match error {
            CaptureError::DeviceLost(detail) => {
                DeviceError::new(device, DeviceErrorKind::Lost, detail)
            }
            CaptureError::NotFound(detail) => {
                DeviceError::new(device, DeviceErrorKind::NotFound, detail)
            }
            CaptureError::Backend(detail) => {
                DeviceError::from_message(device, detail, DeviceErrorKind::Backend)
            }
            CaptureError::Convert(error) => {
                DeviceError::new(device, DeviceErrorKind::Backend, error)
            }
        }
    }

    /// An audio device failure; `role` is "microphone" or "speaker".
    pub(crate) fn from_audio(role: &str, error: &AudioError) -> Self {
        match error {
            AudioError::NoDevice(_) => DeviceError::new(role, DeviceErrorKind::NotFound, error),
            AudioError::NotFound(name) => {
                DeviceError::new(format!("{role} {name}"), DeviceErrorKind::NotFound, error)
            }
            AudioError::Device {
                name,
                kind,
                message,
            } => DeviceError::new(format!("{role} {name}"), *kind, message),
            AudioError::UnsupportedFormat { name, .. } => {
                DeviceError::new(format!("{role} {name}"), DeviceErrorKind::Backend, error)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backend_messages_are_read_for_their_kind_in_one_place() {
        let kind = |message: &str| {
            DeviceError::from_message("camera 0", message, DeviceErrorKind::Backend).kind
        };
        assert_eq!(
            kind("Permission denied (os error 13)"),
            DeviceErrorKind::Permission
        );
        assert_eq!(kind("Device or resource busy"), DeviceErrorKind::Busy);
        assert_eq!(kind("No such device (os error 19)"), DeviceErrorKind::Lost);
        assert_eq!(kind("camera not found"), DeviceErrorKind::NotFound);
        assert_eq!(kind("something else"), DeviceErrorKind::Backend);
    }

    #[test]
    fn a_capture_error_keeps_its_kind_and_names_the_device() {
        let error = DeviceError::from_capture(
            "screen",
            &CaptureError::DeviceLost("display :1 went away".into()),
        );
        assert_eq!(error.kind, DeviceErrorKind::Lost);
        assert_eq!(error.to_string(), "screen: lost (display :1 went away)");
    }
}
