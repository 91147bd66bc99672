//! Screen capture on Wayland (and the desktop portal's other users) through `scap`: the user
//! picks the screen or window in the portal's dialog, PipeWire delivers the pictures. scap
//! 0.0.8 panics (`expect`) when the portal is missing or the user cancels, and keeps global
//! state, so it is only called on a Wayland session with a session bus, inside a guard that
//! turns a panic into an error, on a thread of its own. Everywhere else the X11 path is used
//! (`media::screen`), behind the same [`VideoCapture`] trait.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::Duration;

use crate::media::capture::{CaptureBackend, CaptureError, CaptureInfo, ThreadedCapture};
use crate::media::clock;
use crate::media::convert::{PackedOrder, packed_to_i420};
use crate::media::frame::I420Frame;

/// Why the portal path cannot be used here (`None`: it can be tried).
pub(crate) fn portal_unavailable() -> Option<String> {
    let wayland = std::env::var("XDG_SESSION_TYPE").is_ok_and(|kind| kind == "wayland")
        || std::env::var_os("WAYLAND_DISPLAY").is_some();
    if !wayland {
        return Some("not a Wayland session (use the X11 screen capture)".to_owned());
    }
    if std::env::var_os("DBUS_SESSION_BUS_ADDRESS").is_none() {
        return Some("no D-Bus session bus, so no desktop portal".to_owned());
    }
    match catch_unwind(|| scap::is_supported() && scap::has_permission()) {
        Ok(true) => None,
        Ok(false) => Some("the desktop portal refuses screen capture".to_owned()),
        Err(_) => Some("the desktop portal could not be asked".to_owned()),
    }
}

/// Asks the portal for a screen or window (the user picks) at up to `fps`; scap's capturer
/// lives on a thread of its own ([`ThreadedCapture`]).
pub(crate) fn open_portal_capture(fps: u32) -> Result<ThreadedCapture, CaptureError> {
    if let Some(reason) = portal_unavailable() {
        return Err(CaptureError::Backend(reason));
    }
    ThreadedCapture::start("classroom-portal", Duration::from_secs(5), move || {
        let options = scap::capturer::Options {
            fps: fps.max(1),
            show_cursor: true,
            output_type: scap::frame::FrameType::BGRAFrame,
            ..Default::default()
        };
        let started = catch_unwind(AssertUnwindSafe(|| {
            let mut capturer =
                scap::capturer::Capturer::build(options).map_err(|error| format!("{error:?}"))?;
            capturer.start_capture();
            Ok::<_, String>(capturer)
        }));
        let capturer = match started {
            Ok(Ok(capturer)) => capturer,
            Ok(Err(reason)) => {
                return Err(CaptureError::Backend(format!("screen portal: {reason}")));
            }
            Err(_) => {
                return Err(CaptureError::Backend(
                    "screen portal: the portal failed or the user cancelled".to_owned(),
                ));
            }
        };
        let info = CaptureInfo {
            name: "screen (desktop portal)".to_owned(),
            width: 0,
            height: 0,
            is_screen: true,
        };
        Ok((info, PortalBackend(capturer)))
    })
}

struct PortalBackend(scap::capturer::Capturer);

impl CaptureBackend for PortalBackend {
    fn next(&mut self, frame: &mut I420Frame) -> Result<I420Frame, CaptureError> {
        match catch_unwind(AssertUnwindSafe(|| self.0.get_next_frame())) {
            Ok(Ok(picture)) => convert(picture, frame),
            _ => Err(CaptureError::DeviceLost(
                "the portal stream ended".to_owned(),
            )),
        }
    }

    fn close(&mut self) {
        let _ = catch_unwind(AssertUnwindSafe(|| self.0.stop_capture()));
    }
}

fn convert(picture: scap::frame::Frame, frame: &mut I420Frame) -> Result<I420Frame, CaptureError> {
    use scap::frame::Frame;
    let captured_at = clock::now();
    let (data, width, height, order) = match picture {
        Frame::BGRA(p) => (p.data, p.width, p.height, PackedOrder::Bgra),
        Frame::BGRx(p) => (p.data, p.width, p.height, PackedOrder::Bgra),
        Frame::BGR0(p) => (p.data, p.width, p.height, PackedOrder::Bgra),
        Frame::RGBx(p) => (p.data, p.width, p.height, PackedOrder::Rgba),
        _ => {
            return Err(CaptureError::Backend(
                "the portal sent a picture format we do not take".to_owned(),
            ));
        }
    };
    let (width, height) = (width.max(0) as usize, height.max(0) as usize);
    packed_to_i420(&data, width, height, width * 4, order, frame)?;
    let mut picture = frame.clone();
    picture.capture_time = captured_at;
    Ok(picture)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outside_a_wayland_session_the_portal_is_a_clear_error_not_a_panic() {
        if std::env::var_os("WAYLAND_DISPLAY").is_some() {
            return; // a real Wayland desktop: the dialog would open; not for unattended tests
        }
        let reason = portal_unavailable().expect("unavailable here");
        assert!(reason.contains("Wayland"), "{reason}");
        assert!(matches!(
            open_portal_capture(15),
            Err(CaptureError::Backend(message)) if message.contains("Wayland")
        ));
    }
}
