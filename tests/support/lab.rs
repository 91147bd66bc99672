//! A lab for call tests: a network namespace of its own (only its loopback, nothing leaves
//! it), a signaling server inside it (ours, or the browser version's own relay on Node), and headless
//! participants in separate processes whose JSON lines are collected.

#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use serde_json::Value;

pub const PORT: u16 = 3001;

fn run(program: &str, args: &[&str]) -> Result<(), String> {
    let output = Command::new(program)
        .args(args)
        .output()
        .map_err(|error| format!("{program}: {error}"))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{program} {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr)
        ))
    }
}

/// A named network namespace with its loopback up; deleted on drop.
pub struct NetNs {
    pub name: String,
}

impl NetNs {
    pub fn create(tag: &str) -> NetNs {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let name = format!(
            "classroom-{tag}-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        if let Err(error) = run("ip", &["netns", "add", &name]) {
            panic!(
                "call tests run in a network namespace of their own and need root for it \
                 (`ip netns add`): {error}"
            );
        }
        let ns = NetNs { name };
        ns.exec_ok(&["ip", "link", "set", "lo", "up"]);
        ns
    }

    pub fn command(&self, program: &str) -> Command {
        let mut command = Command::new("ip");
        command.args(["netns", "exec", &self.name, program]);
        command
    }

    pub fn exec_ok(&self, args: &[&str]) {
        let mut full = vec!["netns", "exec", self.name.as_str()];
        full.extend_from_slice(args);
        if let Err(error) = run("ip", &full) {
            panic!("in {}: {error}", self.name);
        }
    }

    /// A network outage: every packet inside the namespace is lost until `restore_network`.
    pub fn cut_network(&self) {
        self.exec_ok(&["ip", "link", "set", "lo", "down"]);
    }

    pub fn restore_network(&self) {
        self.exec_ok(&["ip", "link", "set", "lo", "up"]);
    }

    /// Random loss of `percent` of every UDP packet in the namespace (media and ICE alike; 0:
    /// none), with iptables' statistic match: the kernel here has no netem.
    pub fn lose_udp(&self, percent: u32) {
        self.exec_ok(&["iptables", "-w", "-F", "INPUT"]);
        if percent > 0 {
            let probability = format!("{:.2}", f64::from(percent) / 100.0);
            self.exec_ok(&[
                "iptables",
                "-w",
                "-A",
                "INPUT",
                "-p",
                "udp",
                "-m",
                "statistic",
                "--mode",
                "random",
                "--probability",
                &probability,
                "-j",
                "DROP",
            ]);
        }
    }
}

impl Drop for NetNs {
    fn drop(&mut self) {
        let _ = run("ip", &["netns", "delete", &self.name]);
    }
}

fn target_dir() -> PathBuf {
    let exe = PathBuf::from(env!("CARGO_BIN_EXE_classroom"));
    exe.parent().map(PathBuf::from).unwrap_or_default()
}

pub fn signaling_bin() -> PathBuf {
    if let Ok(path) = std::env::var("CLASSROOM_SIGNALING_BIN") {
        return PathBuf::from(path);
    }
    let path = target_dir().join("classroom-signaling");
    assert!(
        path.exists(),
        "{} is missing: build the workspace first (cargo build --workspace)",
        path.display()
    );
    path
}

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Which signaling server a lab runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerKind {
    Ours,
    /// The browser version's own plain relay on Node socket.io (`tests/node/reference-server.mjs`):
    /// the seed's fields only.
    BrowserRelay,
}

pub struct Server {
    child: Child,
    pub kind: ServerKind,
}

impl Server {
    pub fn start(ns: &NetNs, kind: ServerKind, data_dir: &std::path::Path) -> Server {
        Server::start_with(ns, kind, data_dir, &[])
    }

    /// Our server with `extra` flags too (`--sfu always`, …); the relay takes none.
    pub fn start_with(
        ns: &NetNs,
        kind: ServerKind,
        data_dir: &std::path::Path,
        extra: &[&str],
    ) -> Server {
        let mut command = match kind {
            ServerKind::Ours => {
                let mut command = ns.command(&signaling_bin().to_string_lossy());
                command.args([
                    "serve",
                    "--dev",
                    "--listen",
                    &format!("127.0.0.1:{PORT}"),
                    "--database",
                    &data_dir.join("classroom.sqlite").to_string_lossy(),
                    // Nothing outside the namespace: no public STUN servers to look up.
                    "--ice-server",
                    "stun:127.0.0.1:3478",
                ]);
                command.args(extra);
                command
            }
            ServerKind::BrowserRelay => {
                let script = repo_root().join("tests/node/reference-server.mjs");
                let mut command = ns.command("node");
                command.args([
                    script.to_string_lossy().as_ref(),
                    "--port",
                    &PORT.to_string(),
                ]);
                command
            }
        };
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("the signaling server starts");
        let stdout = child.stdout.take().expect("server stdout");
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if line.contains("listening on") {
                    let _ = ready_tx.send(());
                }
            }
        });
        ready_rx
            .recv_timeout(Duration::from_secs(20))
            .expect("the signaling server says it listens");
        Server { child, kind }
    }

    /// Stops the server as systemd does (SIGTERM: it tells every client when to come back,
    /// closes their connections and exits), and waits for it to exit.
    #[allow(dead_code)]
    pub fn terminate(&mut self) {
        // SAFETY: kill(2) on our own child's pid, with a signal number; no memory is shared.
        unsafe {
            libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM);
        }
        let _ = self.child.wait();
    }

    /// Kills the server at once (no goodbye to anyone), like a crash.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

/// One headless participant process.
pub struct Bot {
    pub user: String,
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Arc<Mutex<Vec<Value>>>,
}

pub struct BotOptions {
    pub camera: &'static str,
    pub screen: &'static str,
    pub stats_interval_ms: u64,
    pub extra: Vec<String>,
}

impl Default for BotOptions {
    fn default() -> Self {
        BotOptions {
            camera: "320x180@15",
            screen: "synthetic:640x360@5",
            stats_interval_ms: 500,
            extra: Vec::new(),
        }
    }
}

impl Bot {
    pub fn start(ns: &NetNs, session: &str, user: &str, options: BotOptions) -> Bot {
        let mut command = ns.command(env!("CARGO_BIN_EXE_classroom"));
        command
            .args([
                "--headless",
                "--server",
                &format!("http://127.0.0.1:{PORT}"),
                "--session",
                session,
                "--user",
                user,
                "--name",
                &user.to_uppercase(),
                "--bind-ip",
                "127.0.0.1",
                "--camera",
                options.camera,
                "--screen",
                options.screen,
                "--stats-interval-ms",
                &options.stats_interval_ms.to_string(),
            ])
            .args(&options.extra)
            // `CLASSROOM_BOT_LOG` widens the participants' log for a failing test (`warn`).
            .env(
                "RUST_LOG",
                std::env::var("CLASSROOM_BOT_LOG").unwrap_or_else(|_| "classroom=warn".into()),
            )
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        let mut child = command.spawn().expect("the headless participant starts");
        let stdout = child.stdout.take().expect("bot stdout");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Ok(value) = serde_json::from_str::<Value>(&line) {
                    sink.lock().push(value);
                }
            }
        });
        Bot {
            user: user.to_owned(),
            stdin: child.stdin.take(),
            child,
            lines,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn send(&mut self, command: &str) {
        if let Some(stdin) = self.stdin.as_mut() {
            writeln!(stdin, "{command}").expect("bot stdin");
            stdin.flush().expect("bot stdin");
        }
    }

    /// The newest stats line.
    pub fn stats(&self) -> Option<Value> {
        self.lines
            .lock()
            .iter()
            .rev()
            .find(|line| line["type"] == "stats")
            .cloned()
    }

    /// Every stats line so far.
    pub fn all_stats(&self) -> Vec<Value> {
        self.lines_of_type("stats")
    }

    pub fn lines_of_type(&self, kind: &str) -> Vec<Value> {
        self.lines
            .lock()
            .iter()
            .filter(|line| line["type"] == kind)
            .cloned()
            .collect()
    }

    pub fn events(&self) -> Vec<Value> {
        self.lines_of_type("event")
            .into_iter()
            .map(|line| line["detail"].clone())
            .collect()
    }

    /// What this participant received from `from` (the `remotes` entry of its newest stats).
    pub fn remote(&self, from: &str) -> Option<Value> {
        let stats = self.stats()?;
        stats["remotes"]
            .as_array()?
            .iter()
            .find(|remote| remote["userId"] == from)
            .cloned()
    }

    pub fn participant(&self, user: &str) -> Option<Value> {
        let stats = self.stats()?;
        stats["participants"]
            .as_array()?
            .iter()
            .find(|participant| participant["userId"] == user)
            .cloned()
    }

    pub fn camera_stamps_from(&self, from: &str) -> u64 {
        self.video_counter(from, "camera", "stampsRead")
    }

    pub fn video_counter(&self, from: &str, source: &str, field: &str) -> u64 {
        self.remote(from)
            .and_then(|remote| remote["video"][source][field].as_u64())
            .unwrap_or(0)
    }

    pub fn audio_counter(&self, from: &str, field: &str) -> u64 {
        self.remote(from)
            .and_then(|remote| remote["audio"][field].as_u64())
            .unwrap_or(0)
    }

    /// Waits for the process to exit by itself.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        None
    }

    pub fn dump(&self) -> String {
        let lines = self.lines.lock();
        let tail: Vec<String> = lines.iter().rev().take(3).map(Value::to_string).collect();
        format!("{}: {}", self.user, tail.join("\n"))
    }
}

impl Drop for Bot {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls `condition` until it holds or `timeout` passes; panics with `what` and `context()`.
/// The invitation link a local class's app prints (the class lets no one in without the key
/// in it), read from the app's piped stdout within `timeout`; the rest of the output is
/// drained on, so the app never blocks on it. `None`: no invitation came.
pub fn local_class_invitation(app: &mut Child, timeout: Duration) -> Option<String> {
    let stdout = app.stdout.take()?;
    let (line_tx, line_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = line_tx.send(line);
        }
    });
    std::iter::from_fn(|| line_rx.recv_timeout(timeout).ok()).find(|line| line.contains("key="))
}

/// The join key in an invitation link.
pub fn invitation_key(invitation: &str) -> Option<String> {
    invitation
        .split("key=")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .map(str::to_owned)
}

pub fn wait_until(
    what: &str,
    timeout: Duration,
    mut condition: impl FnMut() -> bool,
    context: impl Fn() -> String,
) {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if condition() {
            return;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!("timed out waiting for {what}\n{}", context());
}

/// Everyone decodes everyone's camera (stamps read) and hears everyone's markers.
pub fn everyone_sees_and_hears_everyone(bots: &[Bot], min_stamps: u64, min_markers: u64) -> bool {
    bots.iter().all(|receiver| {
        bots.iter()
            .filter(|sender| sender.user != receiver.user)
            .all(|sender| {
                receiver.camera_stamps_from(&sender.user) >= min_stamps
                    && receiver.audio_counter(&sender.user, "markersHeard") >= min_markers
            })
    })
}

pub fn dump_all(bots: &[Bot]) -> String {
    bots.iter().map(Bot::dump).collect::<Vec<_>>().join("\n\n")
}

/// A fresh temporary directory, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let path = std::env::temp_dir().join(format!(
            "classroom-{tag}-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&path).expect("temp dir");
        TempDir(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Snapshot of a counter per (receiver, sender) pair.
pub fn counters(bots: &[Bot], read: impl Fn(&Bot, &str) -> u64) -> HashMap<(String, String), u64> {
    let mut map = HashMap::new();
    for receiver in bots {
        for sender in bots.iter().filter(|s| s.user != receiver.user) {
            map.insert(
                (receiver.user.clone(), sender.user.clone()),
                read(receiver, &sender.user),
            );
        }
    }
    map
}
