//! A real X display for tests: an Xvfb server, screenshots of it (ImageMagick's `import`),
//! and a search for the test pattern's stamp in a screenshot, at whatever size it is shown.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use classroom::media::clock;
use classroom::media::stamp::{COLUMNS, ROWS, Stamp};

/// An Xvfb server on a display number of its own; killed on drop.
pub struct Xvfb {
    child: Child,
    pub display: String,
}

impl Xvfb {
    /// Starts Xvfb with one `width × height` screen; `wrap` runs it inside a namespace.
    pub fn start(width: usize, height: usize, wrap: Option<Command>) -> Xvfb {
        for n in 140..240 {
            if Path::new(&lock_file(n)).exists() && !remove_if_stale(n) {
                continue;
            }
            let display = format!(":{n}");
            let mut command = match wrap {
                Some(_) => {
                    let mut wrapped = wrap.as_ref().map(clone_command).expect("a wrapper");
                    wrapped.arg("Xvfb");
                    wrapped
                }
                None => Command::new("Xvfb"),
            };
            let child = command
                .args([
                    &display,
                    "-screen",
                    "0",
                    &format!("{width}x{height}x24"),
                    "-nolisten",
                    "tcp",
                ])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("Xvfb runs (package xvfb; scripts/test.sh installs it)");
            let socket = PathBuf::from(format!("/tmp/.X11-unix/X{n}"));
            let deadline = Instant::now() + Duration::from_secs(10);
            while !socket.exists() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
            assert!(socket.exists(), "Xvfb {display} did not start");
            return Xvfb { child, display };
        }
        panic!("no free X display number");
    }

    /// The whole screen, now.
    pub fn screenshot(&self) -> Rgb {
        let output = Command::new("import")
            .args(["-window", "root", "-depth", "8", "ppm:-"])
            .env("DISPLAY", &self.display)
            .output()
            .expect("ImageMagick's import runs (package imagemagick)");
        assert!(
            output.status.success(),
            "import failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        Rgb::from_ppm(&output.stdout).expect("import writes a binary PPM")
    }
}

fn clone_command(command: &Command) -> Command {
    let mut copy = Command::new(command.get_program());
    copy.args(command.get_args());
    copy
}

impl Drop for Xvfb {
    fn drop(&mut self) {
        // SIGTERM: Xvfb removes its lock file and socket itself (killed, it leaves both, and
        // after a hundred runs no display number is free).
        if let Ok(pid) = i32::try_from(self.child.id()) {
            // SAFETY: kill has no memory preconditions; the pid is our own child's.
            unsafe { libc::kill(pid, libc::SIGTERM) };
        }
        let deadline = Instant::now() + Duration::from_secs(2);
        while Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(n) = self.display.strip_prefix(':').and_then(|n| n.parse().ok()) {
            remove_if_stale(n);
        }
    }
}

fn lock_file(n: u32) -> String {
    format!("/tmp/.X{n}-lock")
}

/// Removes display `n`'s lock file and socket when the server that wrote the lock is gone (a
/// killed Xvfb leaves both). Returns whether the number is free now.
fn remove_if_stale(n: u32) -> bool {
    let Ok(text) = std::fs::read_to_string(lock_file(n)) else {
        return !Path::new(&lock_file(n)).exists();
    };
    let alive = text.trim().parse::<i32>().is_ok_and(|pid| {
        // SAFETY: signal 0 only checks that the process exists.
        pid > 0 && unsafe { libc::kill(pid, 0) } == 0
    });
    if alive {
        return false;
    }
    let _ = std::fs::remove_file(format!("/tmp/.X11-unix/X{n}"));
    std::fs::remove_file(lock_file(n)).is_ok()
}

/// An 8-bit RGB picture.
pub struct Rgb {
    pub width: usize,
    pub height: usize,
    pub pixels: Vec<u8>,
}

impl Rgb {
    /// Parses a binary PPM (`P6`, maxval 255).
    pub fn from_ppm(data: &[u8]) -> Option<Rgb> {
        let mut fields = Vec::new();
        let mut at = 0;
        while fields.len() < 4 {
            while at < data.len() && data[at].is_ascii_whitespace() {
                at += 1;
            }
            if data.get(at) == Some(&b'#') {
                while at < data.len() && data[at] != b'\n' {
                    at += 1;
                }
                continue;
            }
            let start = at;
            while at < data.len() && !data[at].is_ascii_whitespace() {
                at += 1;
            }
            fields.push(std::str::from_utf8(&data[start..at]).ok()?.to_owned());
        }
        if fields[0] != "P6" || fields[3] != "255" {
            return None;
        }
        let (width, height): (usize, usize) = (fields[1].parse().ok()?, fields[2].parse().ok()?);
        let pixels = data.get(at + 1..at + 1 + width * height * 3)?.to_vec();
        Some(Rgb {
            width,
            height,
            pixels,
        })
    }

    pub fn luma(&self, x: usize, y: usize) -> u8 {
        let i = (y * self.width + x) * 3;
        let (r, g, b) = (
            u32::from(self.pixels[i]),
            u32::from(self.pixels[i + 1]),
            u32::from(self.pixels[i + 2]),
        );
        ((r * 77 + g * 150 + b * 29) >> 8) as u8
    }

    pub fn write_ppm(&self, path: &Path) -> std::io::Result<()> {
        let mut out = format!("P6\n{} {}\n255\n", self.width, self.height).into_bytes();
        out.extend_from_slice(&self.pixels);
        std::fs::write(path, out)
    }
}

/// Where a stamp was found on screen.
#[derive(Debug, Clone, Copy)]
pub struct FoundStamp {
    pub stamp: Stamp,
    pub x: usize,
    pub y: usize,
    /// Side of one stamp block on screen, pixels.
    pub block: f32,
}

// Stamp blocks are luma 16 and 235 (limited range): black and white on screen. The app's
// own dark greys (10 and up) are not taken for black.
const BLACK_MAX: u8 = 6;
const WHITE_MIN: u8 = 225;

fn bit_at(image: &Rgb, x: f32, y: f32) -> Option<bool> {
    let (x, y) = (x as usize, y as usize);
    if x >= image.width || y >= image.height {
        return None;
    }
    match image.luma(x, y) {
        l if l <= BLACK_MAX => Some(false),
        l if l >= WHITE_MIN => Some(true),
        _ => None,
    }
}

/// Finds a test pattern's stamp shown anywhere on screen, scaled: the band of 2 × 40 black and
/// white blocks at the top-left of the picture. Only a stamp with a valid CRC and a capture
/// time within `max_age` of now counts, so no other pixels pass for one.
pub fn find_stamp(image: &Rgb, max_age: Duration) -> Option<FoundStamp> {
    for y in 1..image.height {
        let mut x = 1;
        while x < image.width {
            // A black run starting here, under a pixel that is not black (the band's top).
            let starts = bit_at(image, x as f32, y as f32) == Some(false)
                && bit_at(image, (x - 1) as f32, y as f32) != Some(false)
                && bit_at(image, x as f32, (y - 1) as f32) != Some(false);
            if !starts {
                x += 1;
                continue;
            }
            let mut end = x;
            while end < image.width && bit_at(image, end as f32, y as f32) == Some(false) {
                end += 1;
            }
            let run = (end - x) as f32;
            // The frame counter's first 8 bits (at least) are 0: the run is 8 blocks or more;
            // a counter above 0 ends it within 40 blocks.
            let (smallest, largest) = ((run / 40.0).max(3.0), (run / 8.0).min(64.0));
            let mut block = smallest;
            while block <= largest {
                if let Some(found) = read_at(image, x as f32, y as f32, block, max_age) {
                    return Some(found);
                }
                block += 0.02;
            }
            x = end;
        }
    }
    None
}

fn read_at(image: &Rgb, x0: f32, y0: f32, block: f32, max_age: Duration) -> Option<FoundStamp> {
    let mut bytes = [0u8; 10];
    for bit in 0..COLUMNS * ROWS {
        let x = x0 + ((bit % COLUMNS) as f32 + 0.5) * block;
        let y = y0 + ((bit / COLUMNS) as f32 + 0.5) * block;
        if bit_at(image, x, y)? {
            bytes[bit / 8] |= 0x80 >> (bit % 8);
        }
    }
    let mut crc = 0u8;
    for &byte in &bytes[..9] {
        crc ^= byte;
        for _ in 0..8 {
            crc = if crc & 0x80 != 0 {
                (crc << 1) ^ 0x07
            } else {
                crc << 1
            };
        }
    }
    if crc != bytes[9] {
        return None;
    }
    let counter = u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
    let mut micros = [0u8; 8];
    micros[3..].copy_from_slice(&bytes[4..9]);
    let stamp = Stamp {
        counter,
        capture_time: Duration::from_micros(u64::from_be_bytes(micros)),
    };
    (clock::age(stamp.capture_time) <= max_age).then_some(FoundStamp {
        stamp,
        x: x0 as usize,
        y: y0 as usize,
        block,
    })
}
