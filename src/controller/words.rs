//! Failures in the words a student understands: the one place that words them.

use super::model::{ConnectionCheck, ConnectionLine};
use crate::call::preflight::{ConnectionReport, Outcome, Path, PathResult};
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

fn path_label(path: Path) -> &'static str {
    match path {
        Path::Direct => "Direct (UDP)",
        Path::TurnUdp => "Relay over UDP",
        Path::TurnTcp => "Relay over TCP",
        Path::TurnTls => "Relay over TLS",
    }
}

/// The connection test's results, a line per path and what they mean for the class.
pub fn connection_words(report: &ConnectionReport) -> ConnectionCheck {
    let lines = report
        .paths
        .iter()
        .map(
            |PathResult {
                 path,
                 server,
                 outcome,
             }| {
                let server = server.as_deref().unwrap_or("");
                let (works, detail) = match outcome {
                    Outcome::Works { ms } => (Some(true), format!("works ({ms} ms, {server})")),
                    Outcome::Blocked => (Some(false), format!("blocked (no answer from {server})")),
                    Outcome::NotOffered => (None, "not offered by this class".to_owned()),
                    Outcome::Failed { reason } => {
                        (Some(false), format!("could not be tried: {reason}"))
                    }
                };
                ConnectionLine {
                    label: path_label(*path).to_owned(),
                    works,
                    detail,
                }
            },
        )
        .collect();
    let server_of = |path: Path| {
        report
            .paths
            .iter()
            .find(|r| r.path == path)
            .and_then(|r| r.server.clone())
    };
    let relays: Vec<&str> = [
        (Path::TurnUdp, "UDP"),
        (Path::TurnTcp, "TCP"),
        (Path::TurnTls, "TLS"),
    ]
    .into_iter()
    .filter(|(p, _)| report.works(*p))
    .map(|(_, over)| over)
    .collect();
    let offered_relay = [Path::TurnUdp, Path::TurnTcp, Path::TurnTls]
        .into_iter()
        .any(|p| server_of(p).is_some());
    let summary = if report.works(Path::Direct) {
        "Your network lets the class's audio and video through directly.".to_owned()
    } else if !relays.is_empty() {
        let udp = server_of(Path::TurnUdp)
            .filter(|_| !report.works(Path::TurnUdp))
            .map(|s| format!(" Calls are smoother over UDP: IT can allow UDP to {s}."))
            .unwrap_or_default();
        format!(
            "Direct connections are blocked here; the class reaches you through its relay, \
             over {}.{udp}",
            relays.join(" or ")
        )
    } else if offered_relay {
        let tls = server_of(Path::TurnTls)
            .or_else(|| server_of(Path::TurnTcp))
            .or_else(|| server_of(Path::TurnUdp))
            .unwrap_or_default();
        format!(
            "Nothing gets through from this network to the class's media servers: you would \
             have no audio or video. Ask IT to allow TCP to {tls} (or UDP to the relay)."
        )
    } else {
        "Direct connections are blocked here and this class has no relay: you would have no \
         audio or video. Ask IT to allow UDP out, or the class's organiser for a TURN server."
            .to_owned()
    };
    ConnectionCheck::Done { lines, summary }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(outcomes: [Outcome; 4]) -> ConnectionReport {
        let servers = [
            "203.0.113.1:3478",
            "203.0.113.1:3478",
            "203.0.113.1:3478",
            "turn.school.example:443",
        ];
        ConnectionReport {
            paths: Path::ALL
                .into_iter()
                .zip(outcomes)
                .zip(servers)
                .map(|((path, outcome), server)| PathResult {
                    server: (outcome != Outcome::NotOffered).then(|| server.to_owned()),
                    path,
                    outcome,
                })
                .collect(),
        }
    }

    #[test]
    fn the_connection_test_says_what_works_and_what_to_ask_it() {
        let works = Outcome::Works { ms: 40 };
        let ConnectionCheck::Done { lines, summary } = connection_words(&report([
            works.clone(),
            works.clone(),
            works.clone(),
            works.clone(),
        ])) else {
            panic!("done");
        };
        assert_eq!(lines.len(), 4);
        assert!(lines.iter().all(|l| l.works == Some(true)));
        assert_eq!(lines[3].label, "Relay over TLS");
        assert!(summary.contains("directly"), "{summary}");

        // A school network that lets only TCP 443 out.
        let ConnectionCheck::Done { lines, summary } = connection_words(&report([
            Outcome::Blocked,
            Outcome::Blocked,
            Outcome::Blocked,
            works.clone(),
        ])) else {
            panic!("done");
        };
        assert_eq!(lines[0].works, Some(false));
        assert!(
            lines[0].detail.contains("203.0.113.1:3478"),
            "{}",
            lines[0].detail
        );
        assert!(
            summary.contains("through its relay, over TLS."),
            "{summary}"
        );
        assert!(
            summary.contains("allow UDP to 203.0.113.1:3478"),
            "{summary}"
        );

        // Nothing at all.
        let ConnectionCheck::Done { summary, .. } = connection_words(&report([
            Outcome::Blocked,
            Outcome::Blocked,
            Outcome::Blocked,
            Outcome::Blocked,
        ])) else {
            panic!("done");
        };
        assert!(
            summary.contains("allow TCP to turn.school.example:443"),
            "{summary}"
        );

        // STUN only, and blocked.
        let ConnectionCheck::Done { lines, summary } = connection_words(&report([
            Outcome::Blocked,
            Outcome::NotOffered,
            Outcome::NotOffered,
            Outcome::NotOffered,
        ])) else {
            panic!("done");
        };
        assert_eq!(lines[1].works, None);
        assert!(summary.contains("no relay"), "{summary}");
    }

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
