//! Failures in the words a student understands: the one place that words them.

use crate::media::device_error::{DeviceError, DeviceErrorKind};

/// A device failure: what happened to which device, and what to do about it.
pub(crate) fn device_problem_words(problem: &DeviceError) -> String {
    let DeviceError { device, detail, .. } = problem;
    match problem.kind {
        DeviceErrorKind::Permission => format!(
            "Classroom may not use the {device}. Check the system's privacy settings. ({detail})"
        ),
        DeviceErrorKind::Lost => format!(
            "The {device} was disconnected. Plug it back in or pick another one in the \
             settings. ({detail})"
        ),
        DeviceErrorKind::NotFound => {
            format!("The {device} is not there. Pick another one in the settings. ({detail})")
        }
        DeviceErrorKind::Busy => format!(
            "Another program is using the {device}. Close it, or pick another one in the \
             settings. ({detail})"
        ),
        DeviceErrorKind::Backend => format!("The {device} did not work: {detail}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_kind_of_device_problem_tells_the_student_what_to_do() {
        let words = |kind| device_problem_words(&DeviceError::new("microphone USB", kind, "x"));
        assert!(words(DeviceErrorKind::Permission).contains("privacy settings"));
        assert!(words(DeviceErrorKind::Lost).contains("Plug it back in"));
        assert!(words(DeviceErrorKind::NotFound).contains("is not there"));
        assert!(words(DeviceErrorKind::Busy).contains("Another program"));
        assert!(words(DeviceErrorKind::Backend).starts_with("The microphone USB did not work"));
    }
}
