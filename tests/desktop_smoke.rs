//! The real `classroom` binary in a real window: under Xvfb, in a network namespace of its
//! own, it starts a local class (its embedded server) and joins it, and prints the invitation
//! link with this launch's key; a headless participant joins with that key and its stamped test
//! pattern; the pattern's stamp must be found in screenshots of
//! the screen, counting up (live video, drawn). Then the window leaves with its keyboard
//! shortcut (the participant sees it go at once), and SIGTERM closes it cleanly.

mod support;

use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use support::display::{FoundStamp, Rgb, Xvfb, find_stamp};
use support::lab::{
    Bot, BotOptions, NetNs, PORT, TempDir, invitation_key, local_class_invitation, wait_until,
};

/// Stamps older than this on screen are not what the participant is sending now.
const FRESH: Duration = Duration::from_secs(20);

struct App(Child);

impl Drop for App {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn wait_for_stamp(
    xvfb: &Xvfb,
    timeout: Duration,
    newer_than: Option<u32>,
) -> Option<(FoundStamp, Rgb)> {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        let shot = xvfb.screenshot();
        if let Some(found) = find_stamp(&shot, FRESH)
            && newer_than.is_none_or(|counter| found.stamp.counter > counter)
        {
            return Some((found, shot));
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    None
}

fn participants(bot: &Bot) -> Option<usize> {
    bot.stats()
        .and_then(|stats| stats["participants"].as_array().map(Vec::len))
}

fn run(command: &mut std::process::Command) -> bool {
    command
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}

#[test]
fn the_window_shows_a_participants_test_pattern_and_leaves_cleanly() {
    let ns = NetNs::create("window");
    let dir = TempDir::new("window");
    let xvfb = Xvfb::start(1280, 800, None);
    let runtime_dir = dir.0.join("xdg");
    std::fs::create_dir_all(&runtime_dir).unwrap();
    std::fs::set_permissions(
        &runtime_dir,
        std::os::unix::fs::PermissionsExt::from_mode(0o700),
    )
    .unwrap();
    let app = ns
        .command(env!("CARGO_BIN_EXE_classroom"))
        .args([
            "join",
            "--local",
            "--port",
            &PORT.to_string(),
            "--session",
            "smoke",
            "--name",
            "Window Tester",
            "--now",
            "--camera-off",
            "--muted",
        ])
        .env("DISPLAY", &xvfb.display)
        .env("XDG_RUNTIME_DIR", &runtime_dir)
        .env("CLASSROOM_CONFIG_DIR", dir.0.join("config"))
        .env("RUST_LOG", "classroom=info")
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(dir.0.join("app.log")).unwrap())
        .spawn()
        .expect("the classroom binary starts");
    let mut app = App(app);
    let log = || std::fs::read_to_string(dir.0.join("app.log")).unwrap_or_default();
    // The invitation the app prints: the local class lets no one in without its key.
    let invitation = local_class_invitation(&mut app.0, Duration::from_secs(60))
        .unwrap_or_else(|| panic!("the app printed no invitation link\napp log:\n{}", log()));
    let key = invitation_key(&invitation).expect("a key in the invitation");
    assert!(key.len() >= 16, "a random key: {invitation}");
    assert!(
        invitation.contains(&format!("http://127.0.0.1:{PORT}/?session=smoke&key=")),
        "{invitation}"
    );
    let bot = Bot::start(
        &ns,
        "smoke",
        "pattern",
        BotOptions {
            camera: "640x360@15",
            screen: "none",
            extra: vec!["--key".into(), key],
            ..BotOptions::default()
        },
    );
    let first = wait_for_stamp(&xvfb, Duration::from_secs(60), None);
    let Some((first, shot)) = first else {
        let _ = xvfb.screenshot().write_ppm(&dir.0.join("no-stamp.ppm"));
        panic!(
            "the participant's test pattern never showed in the window (screenshot kept in {})\napp log:\n{}\nparticipant:\n{}",
            dir.0.display(),
            log(),
            bot.dump()
        );
    };
    // Drawn as a tile: not the whole screen, and large enough to see.
    let shown_width = first.block * 40.0;
    assert!(
        shown_width > 200.0 && shown_width < shot.width as f32,
        "the picture is {shown_width} px wide on screen: {first:?}"
    );
    let (second, _) = wait_for_stamp(&xvfb, Duration::from_secs(20), Some(first.stamp.counter))
        .expect("the picture on screen moves on (live video)");
    eprintln!(
        "on screen: frame {} then {} at ({}, {}), blocks of {:.2} px",
        first.stamp.counter, second.stamp.counter, second.x, second.y, second.block
    );
    // The participant sees the window's user.
    wait_until(
        "the participant to see the window's user",
        Duration::from_secs(10),
        || participants(&bot) == Some(1),
        || bot.dump(),
    );

    // Leave with the keyboard, as a user would: the participant sees the user go at once.
    assert!(
        run(std::process::Command::new("xdotool")
            .args([
                "search",
                "--name",
                "^Classroom$",
                "windowfocus",
                "--sync",
                "key",
                "ctrl+shift+q"
            ])
            .env("DISPLAY", &xvfb.display)),
        "xdotool runs (package xdotool)"
    );
    let left_at = Instant::now();
    wait_until(
        "the participant to see the window's user leave",
        Duration::from_secs(5),
        || participants(&bot) == Some(0),
        || bot.dump(),
    );
    eprintln!(
        "the participant saw the window leave after {:?}",
        left_at.elapsed()
    );
    wait_until(
        "the class view to be gone after leaving",
        Duration::from_secs(5),
        || find_stamp(&xvfb.screenshot(), FRESH).is_none(),
        log,
    );

    // SIGTERM closes the window cleanly.
    let pid = app.0.id().to_string();
    assert!(run(std::process::Command::new("kill").args(["-TERM", &pid])));
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = app.0.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "the window did not close on SIGTERM\n{}",
            log()
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(status.success(), "the app exited with {status}\n{}", log());
    assert!(!log().contains("panicked"), "the app panicked:\n{}", log());
}

/// The stamp search finds a stamp drawn at another size among other pixels, and nothing in
/// pixels without one (so the test above can fail).
#[test]
fn the_stamp_search_finds_scaled_stamps_and_nothing_else() {
    use classroom::media::convert::i420_to_rgba;
    use classroom::media::synthetic::{PatternKind, TestPattern};
    let mut pattern = TestPattern::new(640, 360, PatternKind::Camera);
    let frame = pattern.next_frame(classroom::media::clock::now());
    let frame = pattern.next_frame(frame.capture_time);
    let mut rgba = classroom::media::RgbaFrame {
        width: 0,
        height: 0,
        pixels: Vec::new(),
    };
    i420_to_rgba(&frame, &mut rgba).unwrap();
    // Shown at 0.93× at (117, 61) on a dark grey screen.
    let (width, height) = (900usize, 500usize);
    let mut screen = Rgb {
        width,
        height,
        pixels: vec![10; width * height * 3],
    };
    let scale = 0.93f32;
    for y in 0..(360.0 * scale) as usize {
        for x in 0..(640.0 * scale) as usize {
            let (sx, sy) = ((x as f32 / scale) as usize, (y as f32 / scale) as usize);
            let from = (sy * 640 + sx) * 4;
            let to = ((y + 61) * width + x + 117) * 3;
            screen.pixels[to..to + 3].copy_from_slice(&rgba.pixels[from..from + 3]);
        }
    }
    let found = find_stamp(&screen, FRESH).expect("the scaled stamp is found");
    assert_eq!(found.stamp.counter, 1);
    assert_eq!((found.x, found.y), (117, 61));
    assert!((found.block - 16.0 * scale).abs() < 0.2, "{found:?}");
    let blank = Rgb {
        width,
        height,
        pixels: vec![0; width * height * 3],
    };
    assert!(
        find_stamp(&blank, FRESH).is_none(),
        "an all-black screen has no stamp"
    );
}
