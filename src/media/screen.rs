//! Screen capture. On X11 sessions (and Xvfb): displays listed by `xcap`, application windows
//! listed by title; pixels read over one XCB connection of our own (`GetImage`, BGRX straight
//! to I420), with the mouse pointer drawn in (XFixes) and only-changed frames (X Damage: a
//! still screen is sent twice a second, not at the full rate). Wayland and macOS/Windows
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
    /// What is read: the root window (a display, a region of it) or one application window.
    drawable: xcb::x::Window,
    /// Area of the drawable to capture (the display's position plus the region; a window's
    /// whole area).
    area: Region,
    info: CaptureInfo,
    frame: I420Frame,
    clock: Instant,
    /// Draw the mouse pointer into the picture (screens; XFixes needed).
    with_cursor: bool,
    /// The drawable is an application window, not the root.
    drawable_is_window: bool,
    /// Only-changed frames: what X Damage reports about the drawable (absent without the
    /// extension, or when every frame is wanted).
    damage: Option<xcb::damage::Damage>,
    /// When the last picture was taken, and where the pointer was then.
    last_taken: Option<(Instant, (i16, i16))>,
}

/// Longest wait for a change: a still screen still sends a picture this often, so a new
/// viewer gets one.
const UNCHANGED_KEEPALIVE: std::time::Duration = std::time::Duration::from_millis(500);

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
        let (conn, root) = connect_bgrx()?;
        Ok(X11ScreenCapture::reading(
            conn,
            root,
            area,
            chosen.name,
            false,
        ))
    }
}

/// Connects to `$DISPLAY` and checks its pixel format (32-bit BGRX, what the conversion
/// reads); returns the connection and the root window.
fn connect_bgrx() -> Result<(xcb::Connection, xcb::x::Window), CaptureError> {
    if std::env::var_os("DISPLAY").is_none() {
        return Err(CaptureError::NotFound(
            "no X11 display ($DISPLAY is not set)".into(),
        ));
    }
    // XFixes (optional) gives the cursor's picture and position.
    let (conn, screen) = xcb::Connection::connect_with_extensions(
        None,
        &[],
        &[xcb::Extension::XFixes, xcb::Extension::Damage],
    )
    .map_err(|e| CaptureError::Backend(e.to_string()))?;
    if conn
        .active_extensions()
        .any(|e| e == xcb::Extension::XFixes)
    {
        let cookie = conn.send_request(&xcb::xfixes::QueryVersion {
            client_major_version: 4,
            client_minor_version: 0,
        });
        // Required before any other XFixes request; failure leaves the cursor out.
        let _ = conn.wait_for_reply(cookie);
    }
    if conn
        .active_extensions()
        .any(|e| e == xcb::Extension::Damage)
    {
        let cookie = conn.send_request(&xcb::damage::QueryVersion {
            client_major_version: 1,
            client_minor_version: 1,
        });
        let _ = conn.wait_for_reply(cookie);
    }
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
    if !matches!(depth, 24 | 32) || bpp != Some(32) || byte_order != xcb::x::ImageOrder::LsbFirst {
        return Err(CaptureError::Backend(format!(
            "X screen format depth {depth}, {bpp:?} bits per pixel, {byte_order:?}: only 32-bit BGRX is supported"
        )));
    }
    Ok((conn, root))
}

/// An application window that can be shared.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WindowInfo {
    pub id: u32,
    pub title: String,
    pub width: u32,
    pub height: u32,
}

fn intern(conn: &xcb::Connection, name: &[u8]) -> Option<xcb::x::Atom> {
    let cookie = conn.send_request(&xcb::x::InternAtom {
        only_if_exists: true,
        name,
    });
    conn.wait_for_reply(cookie)
        .ok()
        .map(|reply| reply.atom())
        .filter(|atom| *atom != xcb::x::ATOM_NONE)
}

fn window_title(conn: &xcb::Connection, window: xcb::x::Window) -> Option<String> {
    let property = |property: xcb::x::Atom, kind: xcb::x::Atom| {
        let cookie = conn.send_request(&xcb::x::GetProperty {
            delete: false,
            window,
            property,
            r#type: kind,
            long_offset: 0,
            long_length: 256,
        });
        conn.wait_for_reply(cookie)
            .ok()
            .map(|reply| String::from_utf8_lossy(reply.value::<u8>()).into_owned())
            .filter(|title| !title.is_empty())
    };
    let utf8 = intern(conn, b"UTF8_STRING");
    let net_name = intern(conn, b"_NET_WM_NAME");
    match (net_name, utf8) {
        (Some(name), Some(utf8)) => property(name, utf8),
        _ => None,
    }
    .or_else(|| property(xcb::x::ATOM_WM_NAME, xcb::x::ATOM_STRING))
}

/// The application windows of the X11 session: the window manager's client list where there
/// is one, else the root's mapped, titled children (no window manager, as on Xvfb).
pub fn x11_windows() -> Result<Vec<WindowInfo>, CaptureError> {
    let (conn, root) = connect_bgrx()?;
    let mut candidates: Vec<xcb::x::Window> = Vec::new();
    if let Some(client_list) = intern(&conn, b"_NET_CLIENT_LIST") {
        let cookie = conn.send_request(&xcb::x::GetProperty {
            delete: false,
            window: root,
            property: client_list,
            r#type: xcb::x::ATOM_WINDOW,
            long_offset: 0,
            long_length: 4096,
        });
        if let Ok(reply) = conn.wait_for_reply(cookie) {
            candidates.extend(reply.value::<xcb::x::Window>().iter().copied());
        }
    }
    if candidates.is_empty() {
        let cookie = conn.send_request(&xcb::x::QueryTree { window: root });
        let reply = conn
            .wait_for_reply(cookie)
            .map_err(|e| CaptureError::Backend(e.to_string()))?;
        candidates.extend(reply.children().iter().copied());
    }
    let mut windows = Vec::new();
    for window in candidates {
        let attributes = conn.send_request(&xcb::x::GetWindowAttributes { window });
        let geometry = conn.send_request(&xcb::x::GetGeometry {
            drawable: xcb::x::Drawable::Window(window),
        });
        let (Ok(attributes), Ok(geometry)) = (
            conn.wait_for_reply(attributes),
            conn.wait_for_reply(geometry),
        ) else {
            continue; // gone meanwhile
        };
        if attributes.map_state() != xcb::x::MapState::Viewable
            || attributes.override_redirect()
            || geometry.width() < 64
            || geometry.height() < 64
        {
            continue;
        }
        let Some(title) = window_title(&conn, window) else {
            continue;
        };
        windows.push(WindowInfo {
            id: xcb::Xid::resource_id(&window),
            title,
            width: u32::from(geometry.width()),
            height: u32::from(geometry.height()),
        });
    }
    Ok(windows)
}

impl X11ScreenCapture {
    /// Captures one application window (its id from [`x11_windows`]), whole. A window that
    /// closes or is unmapped makes `capture` return [`CaptureError::DeviceLost`]; one that is
    /// resized is captured at its new size once reopened.
    pub fn open_window(id: u32) -> Result<Self, CaptureError> {
        let (conn, _root) = connect_bgrx()?;
        // An X id is a plain number; the server checks that it names a window.
        let window: xcb::x::Window = xcb::XidNew::new(id);
        let geometry = conn.send_request(&xcb::x::GetGeometry {
            drawable: xcb::x::Drawable::Window(window),
        });
        let geometry = conn
            .wait_for_reply(geometry)
            .map_err(|e| CaptureError::NotFound(format!("window {id:#x}: {e}")))?;
        let title = window_title(&conn, window).unwrap_or_else(|| format!("window {id:#x}"));
        let area = Region {
            x: 0,
            y: 0,
            width: u32::from(geometry.width()),
            height: u32::from(geometry.height()),
        };
        Ok(X11ScreenCapture::reading(conn, window, area, title, true))
    }
}

impl VideoCapture for X11ScreenCapture {
    fn info(&self) -> CaptureInfo {
        self.info.clone()
    }

    fn capture(&mut self) -> Result<I420Frame, CaptureError> {
        if let Some(damage) = self.damage {
            self.wait_for_change(damage);
        }
        if self.damage.is_some() {
            let pointer = self.pointer();
            self.last_taken = Some((Instant::now(), pointer));
        }
        let captured_at = self.clock.elapsed();
        let a = self.area;
        let cookie = self.conn.send_request(&xcb::x::GetImage {
            format: xcb::x::ImageFormat::ZPixmap,
            drawable: xcb::x::Drawable::Window(self.drawable),
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
        if self.with_cursor {
            self.draw_cursor();
        }
        self.frame.capture_time = captured_at;
        Ok(self.frame.clone())
    }
}

impl X11ScreenCapture {
    /// A capture of `area` of `drawable` (the root, or an application window).
    fn reading(
        conn: xcb::Connection,
        drawable: xcb::x::Window,
        area: Region,
        name: String,
        drawable_is_window: bool,
    ) -> Self {
        X11ScreenCapture {
            conn,
            drawable,
            area,
            info: CaptureInfo {
                name,
                width: (area.width & !1) as usize,
                height: (area.height & !1) as usize,
                is_screen: true,
            },
            frame: I420Frame::black(2, 2),
            clock: Instant::now(),
            with_cursor: true,
            drawable_is_window,
            damage: None,
            last_taken: None,
        }
        .watching_changes()
    }

    /// Reports changes of the drawable (X Damage) so that `capture` waits for one.
    fn watching_changes(mut self) -> Self {
        if self
            .conn
            .active_extensions()
            .any(|e| e == xcb::Extension::Damage)
        {
            let damage: xcb::damage::Damage = self.conn.generate_id();
            let created = self.conn.send_and_check_request(&xcb::damage::Create {
                damage,
                drawable: xcb::x::Drawable::Window(self.drawable),
                level: xcb::damage::ReportLevel::NonEmpty,
            });
            if created.is_ok() {
                self.damage = Some(damage);
            }
        }
        self
    }

    /// Every call of `capture` takes a picture, changed or not (benchmarks).
    pub fn every_frame(mut self) -> Self {
        if let Some(damage) = self.damage.take() {
            let _ = self
                .conn
                .send_and_check_request(&xcb::damage::Destroy { damage });
        }
        self
    }

    fn pointer(&self) -> (i16, i16) {
        let cookie = self.conn.send_request(&xcb::x::QueryPointer {
            window: self.drawable,
        });
        self.conn
            .wait_for_reply(cookie)
            .map(|reply| (reply.root_x(), reply.root_y()))
            .unwrap_or((0, 0))
    }

    /// Waits until the drawable changed or the pointer moved since the last picture (at most
    /// [`UNCHANGED_KEEPALIVE`]), then clears the damage: only-changed frames.
    fn wait_for_change(&mut self, damage: xcb::damage::Damage) {
        if let Some((taken, pointer)) = self.last_taken {
            loop {
                let mut changed = false;
                while let Ok(Some(event)) = self.conn.poll_for_event() {
                    changed |= matches!(event, xcb::Event::Damage(_));
                }
                changed |= self.with_cursor && self.pointer() != pointer;
                if changed || taken.elapsed() >= UNCHANGED_KEEPALIVE {
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(8));
            }
        }
        let none: xcb::xfixes::Region = xcb::XidNew::new(0);
        self.conn.send_request(&xcb::damage::Subtract {
            damage,
            repair: none,
            parts: none,
        });
    }

    /// Leaves the mouse pointer out of the pictures (it is in them by default).
    pub fn without_cursor(mut self) -> Self {
        self.with_cursor = false;
        self
    }

    /// Blends the pointer's picture (XFixes, premultiplied ARGB) into the frame at its place.
    fn draw_cursor(&mut self) {
        if !self
            .conn
            .active_extensions()
            .any(|e| e == xcb::Extension::XFixes)
        {
            return;
        }
        let cookie = self.conn.send_request(&xcb::xfixes::GetCursorImage {});
        let Ok(cursor) = self.conn.wait_for_reply(cookie) else {
            return;
        };
        // Where the cursor's top-left pixel lands in the picture (a window's own area is
        // relative to the window, which the pointer position is not: screens only).
        if self.drawable_is_window {
            return;
        }
        let left = i64::from(cursor.x()) - i64::from(cursor.xhot()) - i64::from(self.area.x);
        let top = i64::from(cursor.y()) - i64::from(cursor.yhot()) - i64::from(self.area.y);
        blend_cursor(
            &mut self.frame,
            cursor.cursor_image(),
            usize::from(cursor.width()),
            usize::from(cursor.height()),
            left,
            top,
        );
    }
}

/// Blends a premultiplied ARGB picture into an I420 frame at (`left`, `top`), clipped.
fn blend_cursor(
    frame: &mut I420Frame,
    argb: &[u32],
    width: usize,
    height: usize,
    left: i64,
    top: i64,
) {
    let (frame_width, frame_height) = (frame.width as i64, frame.height as i64);
    let chroma_width = frame.chroma_width();
    for row in 0..height {
        let y = top + row as i64;
        if y < 0 || y >= frame_height {
            continue;
        }
        for column in 0..width {
            let x = left + column as i64;
            if x < 0 || x >= frame_width {
                continue;
            }
            let Some(&pixel) = argb.get(row * width + column) else {
                return;
            };
            let alpha = (pixel >> 24) & 0xff;
            if alpha == 0 {
                continue;
            }
            let (r, g, b) = (
                ((pixel >> 16) & 0xff) as f32,
                ((pixel >> 8) & 0xff) as f32,
                (pixel & 0xff) as f32,
            );
            let keep = 1.0 - alpha as f32 / 255.0;
            // BT.601 limited range, premultiplied colours (offsets scaled by alpha).
            let a = alpha as f32 / 255.0;
            let luma = 16.0 * a + 0.257 * r + 0.504 * g + 0.098 * b;
            let (x, y) = (x as usize, y as usize);
            let index = y * frame.width + x;
            frame.y[index] = (f32::from(frame.y[index]) * keep + luma)
                .round()
                .clamp(0.0, 255.0) as u8;
            if x % 2 == 0 && y % 2 == 0 {
                let u = 128.0 * a - 0.148 * r - 0.291 * g + 0.439 * b;
                let v = 128.0 * a + 0.439 * r - 0.368 * g - 0.071 * b;
                let chroma = (y / 2) * chroma_width + x / 2;
                frame.u[chroma] = (f32::from(frame.u[chroma]) * keep + u)
                    .round()
                    .clamp(0.0, 255.0) as u8;
                frame.v[chroma] = (f32::from(frame.v[chroma]) * keep + v)
                    .round()
                    .clamp(0.0, 255.0) as u8;
            }
        }
    }
}
