//! Screen capture. On X11 sessions (and Xvfb): displays listed by `xcap`, pixels read over one
//! XCB connection of our own (`GetImage`, BGRX straight to I420). Wayland and macOS/Windows
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

/// Captures one X11 display, whole or a region of it, over one XCB connection kept open for
/// the capture's lifetime, converting the server's BGRX pixels straight to I420.
pub struct X11ScreenCapture {
    conn: xcb::Connection,
    root: xcb::x::Window,
    /// Area of the root window to capture (the display's position plus the region).
    area: Region,
    info: CaptureInfo,
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
        if let Some(r) = region
            && (r.width == 0
                || r.height == 0
                || r.x + r.width > chosen.width
                || r.y + r.height > chosen.height)
        {
            return Err(CaptureError::NotFound(format!(
                "region {r:?} is outside {}×{}",
                chosen.width, chosen.height
            )));
        }
        let monitor = xcap::Monitor::all()
            .map_err(backend)?
            .into_iter()
            .find(|m| m.id().ok() == Some(chosen.id))
            .ok_or_else(|| {
                CaptureError::DeviceLost(format!("display {} went away", chosen.name))
            })?;
        let mx = monitor.x().map_err(backend)?.max(0) as u32;
        let my = monitor.y().map_err(backend)?.max(0) as u32;
        let area = match region {
            Some(r) => Region {
                x: mx + r.x,
                y: my + r.y,
                ..r
            },
            None => Region {
                x: mx,
                y: my,
                width: chosen.width,
                height: chosen.height,
            },
        };
        let (conn, screen) =
            xcb::Connection::connect(None).map_err(|e| CaptureError::Backend(e.to_string()))?;
        let setup = conn.get_setup();
        let root_screen = setup
            .roots()
            .nth(screen.max(0) as usize)
            .ok_or_else(|| CaptureError::NotFound(format!("X screen {screen}")))?;
        let (root, depth) = (root_screen.root(), root_screen.root_depth());
        let bpp = setup
            .pixmap_formats()
            .iter()
            .find(|f| f.depth() == depth)
            .map(|f| f.bits_per_pixel());
        let byte_order = setup.image_byte_order();
        if !matches!(depth, 24 | 32)
            || bpp != Some(32)
            || byte_order != xcb::x::ImageOrder::LsbFirst
        {
            return Err(CaptureError::Backend(format!(
                "X screen format depth {depth}, {bpp:?} bits per pixel, {byte_order:?}: only 32-bit BGRX is supported"
            )));
        }
        Ok(X11ScreenCapture {
            conn,
            root,
            area,
            info: CaptureInfo {
                name: chosen.name,
                width: (area.width & !1) as usize,
                height: (area.height & !1) as usize,
                is_screen: true,
            },
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
        let a = self.area;
        let cookie = self.conn.send_request(&xcb::x::GetImage {
            format: xcb::x::ImageFormat::ZPixmap,
            drawable: xcb::x::Drawable::Window(self.root),
            x: a.x as i16,
            y: a.y as i16,
            width: a.width as u16,
            height: a.height as u16,
            plane_mask: u32::MAX,
        });
        let reply = self
            .conn
            .wait_for_reply(cookie)
            .map_err(|e| CaptureError::DeviceLost(format!("{}: {e}", self.info.name)))?;
        let (w, h) = (a.width as usize, a.height as usize);
        packed_to_i420(
            reply.data(),
            w,
            h,
            w * 4,
            PackedOrder::Bgra,
            &mut self.frame,
        )?;
        self.frame.capture_time = captured_at;
        Ok(self.frame.clone())
    }
}
