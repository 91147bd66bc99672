//! Video capture behind one trait: real devices (X11 screens, later cameras and the portal)
//! and synthetic sources alike. A capture is pulled: `capture` blocks until the next picture.

use std::time::{Duration, Instant};

use crate::media::convert::ConvertError;
use crate::media::frame::I420Frame;
use crate::media::synthetic::{PatternKind, TestPattern};

#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    /// The device or display is not there (any more): the session turns this into an event.
    #[error("capture device lost: {0}")]
    DeviceLost(String),
    #[error("no such capture target: {0}")]
    NotFound(String),
    #[error("capture backend failed: {0}")]
    Backend(String),
    #[error(transparent)]
    Convert(#[from] ConvertError),
}

/// What a capture delivers.
#[derive(Debug, Clone, PartialEq)]
pub struct CaptureInfo {
    pub name: String,
    pub width: usize,
    pub height: usize,
    /// True for screens and windows: the encoder uses its screen-content tuning.
    pub is_screen: bool,
}

pub trait VideoCapture: Send {
    fn info(&self) -> CaptureInfo;
    /// The next picture, stamped with its capture time on the media clock.
    fn capture(&mut self) -> Result<I420Frame, CaptureError>;
}

/// The synthetic source as a capture: a test input with the same interface as a device.
pub struct SyntheticCapture {
    pattern: TestPattern,
    info: CaptureInfo,
    frame_interval: Duration,
    next_due: Instant,
}

impl SyntheticCapture {
    pub fn new(width: usize, height: usize, fps: f64, kind: PatternKind) -> Self {
        let now = Instant::now();
        SyntheticCapture {
            pattern: TestPattern::new(width, height, kind),
            info: CaptureInfo {
                name: format!("synthetic {kind:?} {width}×{height}"),
                width: width & !1,
                height: height & !1,
                is_screen: kind == PatternKind::Screen,
            },
            frame_interval: Duration::from_secs_f64(1.0 / fps.max(0.1)),
            next_due: now,
        }
    }
}

impl VideoCapture for SyntheticCapture {
    fn info(&self) -> CaptureInfo {
        self.info.clone()
    }

    fn capture(&mut self) -> Result<I420Frame, CaptureError> {
        let now = Instant::now();
        if self.next_due > now {
            std::thread::sleep(self.next_due - now);
        }
        self.next_due = self.next_due.max(now) + self.frame_interval;
        Ok(self.pattern.next_frame(crate::media::clock::now()))
    }
}

/// A capture backend that must stay on one thread (nokhwa's camera, scap's portal capturer are
/// not `Send`): it is opened, read and closed on a thread of its own, and its pictures (or the
/// error that ended it) come through a drop-oldest queue. The handle is an ordinary
/// [`VideoCapture`]; dropping it stops and joins the thread.
pub(crate) struct ThreadedCapture {
    info: CaptureInfo,
    frames: crate::media::FrameQueue<Result<I420Frame, CaptureError>>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
    frame_timeout: Duration,
}

/// What runs on a [`ThreadedCapture`]'s thread.
pub(crate) trait CaptureBackend {
    /// The next picture; an error ends the capture (reported once to the reader).
    fn next(&mut self, frame: &mut I420Frame) -> Result<I420Frame, CaptureError>;
    /// Stops the device (the thread is ending).
    fn close(&mut self) {}
}

impl ThreadedCapture {
    /// Starts thread `name`, which opens the backend with `open` (returning what the capture
    /// is); `open`'s error is this call's error. No picture for `frame_timeout` counts as the
    /// device lost.
    pub fn start<B: CaptureBackend>(
        name: &str,
        frame_timeout: Duration,
        open: impl FnOnce() -> Result<(CaptureInfo, B), CaptureError> + Send + 'static,
    ) -> Result<Self, CaptureError> {
        use std::sync::atomic::{AtomicBool, Ordering};
        let frames = crate::media::FrameQueue::new(2);
        let stop = std::sync::Arc::new(AtomicBool::new(false));
        let (opened_tx, opened_rx) = std::sync::mpsc::channel();
        let (queue, stopping) = (frames.clone(), stop.clone());
        let thread = std::thread::Builder::new()
            .name(name.to_owned())
            .spawn(move || {
                let mut backend = match open() {
                    Ok((info, backend)) => {
                        let _ = opened_tx.send(Ok(info));
                        backend
                    }
                    Err(error) => {
                        let _ = opened_tx.send(Err(error));
                        return;
                    }
                };
                let mut frame = I420Frame::black(2, 2);
                while !stopping.load(Ordering::Relaxed) {
                    let result = backend.next(&mut frame);
                    let ended = result.is_err();
                    queue.push(result);
                    if ended {
                        break; // reported once; the caller reopens
                    }
                }
                backend.close();
            })
            .map_err(|error| CaptureError::Backend(format!("{name} thread: {error}")))?;
        let info = opened_rx.recv().map_err(|_| {
            CaptureError::Backend(format!("{name}: the thread ended before opening"))
        })??;
        Ok(ThreadedCapture {
            info,
            frames,
            stop,
            thread: Some(thread),
            frame_timeout,
        })
    }
}

impl VideoCapture for ThreadedCapture {
    fn info(&self) -> CaptureInfo {
        self.info.clone()
    }

    /// The next picture; a device that vanished (or went silent) is an error the caller reports
    /// and recovers from, never a panic or a hung thread.
    fn capture(&mut self) -> Result<I420Frame, CaptureError> {
        let picture = match self.frames.pop_timeout(self.frame_timeout) {
            Ok(result) => result?,
            Err(_) => {
                return Err(CaptureError::DeviceLost(format!(
                    "{}: no picture for {} s",
                    self.info.name,
                    self.frame_timeout.as_secs()
                )));
            }
        };
        self.info.width = picture.width;
        self.info.height = picture.height;
        Ok(picture)
    }
}

impl Drop for ThreadedCapture {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
