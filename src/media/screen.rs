//! Screen capture. On X11 sessions (and Xvfb) through `xcap` over XCB; Wayland and macOS/Windows
//! go through `scap` (the desktop portal), added behind the same [`VideoCapture`] trait.

use std::time::Instant;

use crate::media::capture::{CaptureError, CaptureInfo, VideoCapture};
use crate::media::convert::{PackedOrder, packed_to_i420};
use crate::media::frame::I420Frame;

/// A display that can be shared.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DisplayInfo {
    pub id: u32,
    pub name: String,
    pub width: u32,
    pub height: u32,
    pub primary: bool,
}

/// A rectangle of a display, in its pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Region {
    pub x: u32,
    pub y: u32,
    pub width: u32,
    pub height: u32,
}

fn backend(e: xcap::XCapError) -> CaptureError {
    CaptureError::Backend(e.to_string())
}

/// The displays of the X11 session named by `$DISPLAY`.
pub fn x11_displays() -> Result<Vec<DisplayInfo>, CaptureError> {
    if std::env::var_os("DISPLAY").is_none() {
        return Err(CaptureError::NotFound(
            "no X11 display ($DISPLAY is not set)".into(),
        ));
    }
    let monitors = xcap::Monitor::all().map_err(backend)?;
    monitors
        .iter()
        .map(|m| {
            Ok(DisplayInfo {
                id: m.id().map_err(backend)?,
                name: m.name().map_err(backend)?,
                width: m.width().map_err(backend)?,
                height: m.height().map_err(backend)?,
                primary: m.is_primary().unwrap_or(false),
            })
        })
        .collect()
}

/// Captures one X11 display, whole or a region of it.
pub struct X11ScreenCapture {
    monitor: xcap::Monitor,
    info: CaptureInfo,
    region: Option<Region>,
    frame: I420Frame,
    clock: Instant,
}

impl X11ScreenCapture {
    /// Opens the display with `id`, or the primary one.
    pub fn open(id: Option<u32>, region: Option<Region>) -> Result<Self, CaptureError> {
        let displays = x11_displays()?;
        let chosen = match id {
            Some(id) => displays.iter().find(|d| d.id == id),
            None => displays.iter().find(|d| d.primary).or(displays.first()),
        }
        .ok_or_else(|| CaptureError::NotFound(format!("display {id:?} (have {displays:?})")))?
        .clone();
        if let Some(r) = region {
            if r.width == 0
                || r.height == 0
                || r.x + r.width > chosen.width
                || r.y + r.height > chosen.height
            {
                return Err(CaptureError::NotFound(format!(
                    "region {r:?} is outside {}×{}",
                    chosen.width, chosen.height
                )));
            }
        }
        let monitor = xcap::Monitor::all()
            .map_err(backend)?
            .into_iter()
            .find(|m| m.id().ok() == Some(chosen.id))
            .ok_or_else(|| {
                CaptureError::DeviceLost(format!("display {} went away", chosen.name))
            })?;
        let (w, h) = region.map_or((chosen.width, chosen.height), |r| (r.width, r.height));
        Ok(X11ScreenCapture {
            monitor,
            info: CaptureInfo {
                name: chosen.name,
                width: (w & !1) as usize,
                height: (h & !1) as usize,
                is_screen: true,
            },
            region,
            frame: I420Frame::black(2, 2),
            clock: Instant::now(),
        })
    }
}

impl VideoCapture for X11ScreenCapture {
    fn info(&self) -> CaptureInfo {
        self.info.clone()
    }

    fn capture(&mut self) -> Result<I420Frame, CaptureError> {
        let captured_at = self.clock.elapsed();
        let image = match self.region {
            Some(r) => self.monitor.capture_region(r.x, r.y, r.width, r.height),
            None => self.monitor.capture_image(),
        }
        .map_err(|e| CaptureError::DeviceLost(format!("{}: {e}", self.info.name)))?;
        let (w, h) = (image.width() as usize, image.height() as usize);
        packed_to_i420(
            image.as_raw(),
            w,
            h,
            w * 4,
            PackedOrder::Rgba,
            &mut self.frame,
        )?;
        self.frame.capture_time = captured_at;
        Ok(self.frame.clone())
    }
}
