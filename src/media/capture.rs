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
