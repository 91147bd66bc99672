//! Screen capture on Wayland (and the desktop portal's other users) through `scap`: the user
//! picks the screen or window in the portal's dialog, PipeWire delivers the pictures. scap
//! 0.0.8 panics (`expect`) when the portal is missing or the user cancels, and keeps global
//! state, so it is only called on a Wayland session with a session bus, inside a guard that
//! turns a panic into an error, on a thread of its own. Everywhere else the X11 path is used
//! (`media::screen`), behind the same [`VideoCapture`] trait.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::media::FrameQueue;
use crate::media::capture::{CaptureError, CaptureInfo, VideoCapture};
use crate::media::clock;
use crate::media::convert::{PackedOrder, packed_to_i420};
use crate::media::frame::I420Frame;

/// Why the portal path cannot be used here (`None`: it can be tried).
pub fn portal_unavailable() -> Option<String> {
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

/// A portal screen capture, streaming.
pub struct PortalScreenCapture {
    info: CaptureInfo,
    frames: FrameQueue<Result<I420Frame, CaptureError>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl PortalScreenCapture {
    /// Asks the portal for a screen or window (the user picks) at up to `fps`.
    pub fn open(fps: u32) -> Result<Self, CaptureError> {
        if let Some(reason) = portal_unavailable() {
            return Err(CaptureError::Backend(reason));
        }
        let frames = FrameQueue::new(2);
        let stop = Arc::new(AtomicBool::new(false));
        let (queue, stopping) = (frames.clone(), stop.clone());
        let (started_tx, started_rx) = std::sync::mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("classroom-portal".to_owned())
            .spawn(move || {
                let options = scap::capturer::Options {
                    fps: fps.max(1),
                    show_cursor: true,
                    output_type: scap::frame::FrameType::BGRAFrame,
                    ..Default::default()
                };
                let started = catch_unwind(AssertUnwindSafe(|| {
                    let mut capturer = scap::capturer::Capturer::build(options)
                        .map_err(|error| format!("{error:?}"))?;
                    capturer.start_capture();
                    Ok::<_, String>(capturer)
                }));
                let mut capturer = match started {
                    Ok(Ok(capturer)) => capturer,
                    Ok(Err(reason)) => {
                        let _ = started_tx.send(Err(reason));
                        return;
                    }
                    Err(_) => {
                        let _ = started_tx
                            .send(Err("the portal failed or the user cancelled".to_owned()));
                        return;
                    }
                };
                let _ = started_tx.send(Ok(()));
                let mut frame = I420Frame::black(2, 2);
                while !stopping.load(Ordering::Relaxed) {
                    let next = catch_unwind(AssertUnwindSafe(|| capturer.get_next_frame()));
                    let result = match next {
                        Ok(Ok(picture)) => convert(picture, &mut frame),
                        _ => Err(CaptureError::DeviceLost(
                            "the portal stream ended".to_owned(),
                        )),
                    };
                    let ended = result.is_err();
                    queue.push(result);
                    if ended {
                        break;
                    }
                }
                let _ = catch_unwind(AssertUnwindSafe(|| capturer.stop_capture()));
            })
            .map_err(|error| CaptureError::Backend(format!("portal thread: {error}")))?;
        match started_rx.recv() {
            Ok(Ok(())) => {}
            Ok(Err(reason)) => {
                return Err(CaptureError::Backend(format!("screen portal: {reason}")));
            }
            Err(_) => return Err(CaptureError::Backend("screen portal: no answer".to_owned())),
        }
        Ok(PortalScreenCapture {
            info: CaptureInfo {
                name: "screen (desktop portal)".to_owned(),
                width: 0,
                height: 0,
                is_screen: true,
            },
            frames,
            stop,
            thread: Some(thread),
        })
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

impl VideoCapture for PortalScreenCapture {
    fn info(&self) -> CaptureInfo {
        self.info.clone()
    }

    fn capture(&mut self) -> Result<I420Frame, CaptureError> {
        let picture = self
            .frames
            .pop_timeout(Duration::from_secs(5))
            .map_err(|_| CaptureError::DeviceLost("no picture from the portal".to_owned()))??;
        self.info.width = picture.width;
        self.info.height = picture.height;
        Ok(picture)
    }
}

impl Drop for PortalScreenCapture {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
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
            PortalScreenCapture::open(15),
            Err(CaptureError::Backend(message)) if message.contains("Wayland")
        ));
    }
}
