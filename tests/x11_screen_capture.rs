//! Real X11 screen capture: an Xvfb display shows a known picture (set as the root window's
//! background by ImageMagick's `display`), and the capture must find that picture.

use std::io::Write;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

mod support;

use classroom::media::capture::CaptureError;
use classroom::media::capture::VideoCapture;
use classroom::media::convert::i420_to_rgba;
use classroom::media::screen::{Region, X11ScreenCapture, x11_displays, x11_windows};
use classroom::media::{I420Frame, RgbaFrame};
use support::display::Xvfb;

const W: usize = 1280;
const H: usize = 720;
const RED: [u8; 3] = [220, 30, 30];
const BLUE: [u8; 3] = [30, 40, 220];
const GREEN: [u8; 3] = [30, 200, 60];

struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn fixture() -> Vec<u8> {
    let mut ppm = format!("P6\n{W} {H}\n255\n").into_bytes();
    for y in 0..H {
        for x in 0..W {
            let px = if (100..500).contains(&x) && (100..400).contains(&y) {
                BLUE
            } else if (800..1200).contains(&x) && (300..600).contains(&y) {
                GREEN
            } else {
                RED
            };
            ppm.extend_from_slice(&px);
        }
    }
    ppm
}

fn pixel(frame: &RgbaFrame, x: usize, y: usize) -> [u8; 3] {
    let i = (y * frame.width + x) * 4;
    [frame.pixels[i], frame.pixels[i + 1], frame.pixels[i + 2]]
}

fn close(got: [u8; 3], want: [u8; 3]) -> bool {
    got.iter()
        .zip(want)
        .all(|(g, w)| (*g as i32 - w as i32).abs() <= 12)
}

fn assert_close(got: [u8; 3], want: [u8; 3], at: &str) {
    assert!(close(got, want), "{at}: captured {got:?}, shown {want:?}");
}

fn rgba(frame: &I420Frame) -> RgbaFrame {
    let mut out = RgbaFrame {
        width: 0,
        height: 0,
        pixels: Vec::new(),
    };
    i420_to_rgba(frame, &mut out).unwrap();
    out
}

#[test]
fn captures_what_an_x11_display_shows() {
    let xvfb = Xvfb::start(W, H, None);
    let dir = std::env::temp_dir().join(format!("classroom-x11-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let picture = dir.join("fixture.ppm");
    std::fs::File::create(&picture)
        .unwrap()
        .write_all(&fixture())
        .unwrap();
    // A window with the picture at the top-left corner (no window manager: no decorations).
    let mut viewer = KillOnDrop(
        Command::new("display")
            .args([
                "-geometry",
                "+0+0",
                "-borderwidth",
                "0",
                picture.to_str().unwrap(),
            ])
            .env("DISPLAY", &xvfb.display)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("ImageMagick's display runs (package imagemagick)"),
    );

    // SAFETY: this test binary runs this one test; nothing reads the environment concurrently.
    unsafe { std::env::set_var("DISPLAY", &xvfb.display) };
    let displays = x11_displays().expect("the Xvfb display is listed");
    assert_eq!(displays.len(), 1, "{displays:?}");
    assert_eq!(
        (displays[0].width, displays[0].height),
        (W as u32, H as u32)
    );

    let mut capture = X11ScreenCapture::open(None, None).expect("opens the display");
    assert!(capture.info().is_screen);
    // Wait for the viewer's window to be drawn.
    let deadline = Instant::now() + Duration::from_secs(15);
    let first = loop {
        let frame = capture.capture().expect("captures");
        // The blue itself: the viewer's window shows a light grey (215, 215, 215) before its
        // picture, which a looser test ("much blue") took for the picture.
        let p = pixel(&rgba(&frame), 300, 250);
        if close(p, BLUE) || Instant::now() > deadline {
            break frame;
        }
        assert!(
            viewer.0.try_wait().unwrap().is_none(),
            "the picture viewer exited early"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!((first.width, first.height), (W, H));
    let picture = rgba(&first);
    assert_close(pixel(&picture, 300, 250), BLUE, "inside the blue rectangle");
    assert_close(
        pixel(&picture, 1000, 450),
        GREEN,
        "inside the green rectangle",
    );
    assert_close(pixel(&picture, 650, 50), RED, "on the background");
    // The mouse pointer is in the picture where it is on the screen, and only there.
    let moved = Command::new("xdotool")
        .args(["mousemove", "650", "50"])
        .env("DISPLAY", &xvfb.display)
        .status()
        .expect("xdotool runs (package xdotool)");
    assert!(moved.success());
    let not_red_near = |frame: &I420Frame, (cx, cy): (usize, usize)| {
        let picture = rgba(frame);
        let mut count = 0;
        for y in cy.saturating_sub(12)..cy + 12 {
            for x in cx.saturating_sub(12)..cx + 12 {
                let p = pixel(&picture, x, y);
                if (p[0] as i32 - RED[0] as i32).abs() > 40 || p[1] > 80 {
                    count += 1;
                }
            }
        }
        count
    };
    let with_pointer = capture.capture().expect("captures with the pointer");
    assert!(
        not_red_near(&with_pointer, (650, 50)) > 10,
        "the pointer is drawn where it is"
    );
    assert_eq!(
        not_red_near(&with_pointer, (650, 600)),
        0,
        "and nowhere else"
    );
    let mut no_pointer = X11ScreenCapture::open(None, None)
        .expect("opens the display")
        .without_cursor();
    let plain = no_pointer.capture().expect("captures without the pointer");
    assert_eq!(
        not_red_near(&plain, (650, 50)),
        0,
        "the pointer can be left out"
    );
    // Only-changed frames: a still screen gives a picture per keepalive (0.5 s), a change one
    // at once.
    let started = Instant::now();
    for _ in 0..3 {
        capture.capture().expect("captures a still screen");
    }
    let still = started.elapsed();
    assert!(
        still >= Duration::from_millis(900),
        "a still screen is not captured at full rate ({still:?} for 3 pictures)"
    );
    let mover = std::thread::spawn({
        let display = xvfb.display.clone();
        move || {
            std::thread::sleep(Duration::from_millis(100));
            Command::new("xdotool")
                .args(["mousemove", "640", "360"])
                .env("DISPLAY", display)
                .status()
                .map(|status| status.success())
        }
    });
    let started = Instant::now();
    capture.capture().expect("captures the change");
    let waited = started.elapsed();
    assert!(mover.join().unwrap().unwrap());
    assert!(
        waited < Duration::from_millis(400),
        "a change is captured at once, not at the keepalive ({waited:?})"
    );
    let second = capture.capture().expect("captures again");
    assert!(
        second.capture_time > first.capture_time,
        "frames carry increasing capture times"
    );

    let mut region = X11ScreenCapture::open(
        None,
        Some(Region {
            x: 100,
            y: 100,
            width: 400,
            height: 300,
        }),
    )
    .expect("opens a region");
    let part = rgba(&region.capture().expect("captures the region"));
    assert_eq!((part.width, part.height), (400, 300));
    assert_close(
        pixel(&part, 200, 150),
        BLUE,
        "the region is the blue rectangle",
    );

    let outside = X11ScreenCapture::open(
        None,
        Some(Region {
            x: 1200,
            y: 700,
            width: 400,
            height: 300,
        }),
    );
    assert!(outside.is_err(), "a region outside the display is refused");
    assert!(
        X11ScreenCapture::open(Some(9999), None).is_err(),
        "an unknown display is refused"
    );

    // One application window: listed with its title, captured alone, lost when it closes.
    let small = dir.join("window.ppm");
    let mut ppm = b"P6\n320 240\n255\n".to_vec();
    for _ in 0..240 {
        for x in 0..320 {
            ppm.extend_from_slice(if x < 160 { &GREEN } else { &BLUE });
        }
    }
    std::fs::write(&small, ppm).unwrap();
    let window_viewer = KillOnDrop(
        Command::new("display")
            .args([
                "-geometry",
                "+700+200",
                "-borderwidth",
                "0",
                "-title",
                "classroom test window",
            ])
            .arg(&small)
            .env("DISPLAY", &xvfb.display)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("ImageMagick's display runs"),
    );
    let deadline = Instant::now() + Duration::from_secs(15);
    let window = loop {
        let windows = x11_windows().expect("windows are listed");
        if let Some(window) = windows
            .into_iter()
            .find(|w| w.title == "classroom test window")
        {
            break window;
        }
        assert!(
            Instant::now() < deadline,
            "the test window was never listed"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!((window.width, window.height), (320, 240));
    let mut window_capture = X11ScreenCapture::open_window(window.id).expect("opens the window");
    assert_eq!(window_capture.info().name, "classroom test window");
    let deadline = Instant::now() + Duration::from_secs(15);
    let shot = loop {
        let shot = rgba(&window_capture.capture().expect("captures the window"));
        if close(pixel(&shot, 240, 120), BLUE) || Instant::now() > deadline {
            break shot;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!((shot.width, shot.height), (320, 240));
    assert_close(pixel(&shot, 80, 120), GREEN, "the window's left half");
    assert_close(pixel(&shot, 240, 120), BLUE, "the window's right half");
    drop(window_viewer);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match window_capture.capture() {
            Err(CaptureError::DeviceLost(_)) => break,
            Err(other) => panic!("a closed window is a lost device, not {other}"),
            Ok(_) => {
                assert!(
                    Instant::now() < deadline,
                    "a closed window is still captured"
                );
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
    assert!(
        X11ScreenCapture::open_window(0x7fff_fff0).is_err(),
        "an unknown window is refused"
    );

    drop(viewer);
    drop(xvfb);
    std::fs::remove_dir_all(dir).ok();
}
