//! The window's controller: everything behind the window that does IO, with no egui in it.
//! A tokio runtime on a thread of its own runs the call engine, the embedded signaling
//! server ("Start a local class"), device listing and the pre-join check. The window only
//! sends [`Request`]s (never blocks) and reads what was [`Published`] (a short lock, no IO
//! under it); every change that the window would show wakes it once, nothing else does.
//!
//! What a request or a reading means is decided by pure functions, tested on their own:
//! [`join`] (the call a join asks for), [`live`] (the call's figures as the window shows
//! them), [`device_lists`] (what the pickers offer) and [`words`] (failures in a student's
//! words). The worker ([`worker`]) only carries them out. Devices are reached through
//! [`crate::media::devices::MediaDevices`].

pub(crate) mod device_lists;
pub(crate) mod join;
pub(crate) mod live;
pub mod model;
pub mod store;
pub mod words;
mod worker;

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use tokio::sync::mpsc;

use crate::call::pictures::PictureSink;
use crate::media::devices::MediaDevices;
use crate::session::Command;
pub use device_lists::thumbnail_key;
use model::{DeviceLists, JoinTarget, LiveClass, RecentClass, Settings};

/// What the window asks of the controller.
#[derive(Debug, Clone)]
pub enum Request {
    /// List cameras, microphones, speakers and screens (with screen thumbnails).
    EnumerateDevices,
    /// Start the embedded signaling server on loopback (`port` 0: any free port).
    StartLocalServer {
        port: u16,
    },
    /// The pre-join check: camera preview and microphone meter, as chosen.
    StartCheck {
        settings: Settings,
        camera_on: bool,
        mic_on: bool,
    },
    StopCheck,
    /// The pre-join connection test against `target`'s server (none for a local class).
    TestConnection {
        target: JoinTarget,
    },
    PlayTestSound {
        speaker: Option<String>,
    },
    Join {
        target: JoinTarget,
        settings: Settings,
        camera_on: bool,
        mic_on: bool,
        /// Open a microphone and speakers at all.
        audio_devices: bool,
    },
    Command(Command),
    /// Share this screen (an id from [`DeviceLists::screens`]).
    ShareScreen(String),
    /// The camera or video quality changed in the settings during the class.
    SwitchCamera(Settings),
    /// The microphone or speaker changed in the settings during the class.
    SwitchAudio(Settings),
    /// The voice processing switches changed in the settings during the class.
    SetVoiceProcessing(Settings),
    /// Write the settings and recent classes to the user's store.
    Save {
        settings: Settings,
        recent: Vec<RecentClass>,
    },
    Leave,
}

/// Where the class is.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) enum Phase {
    #[default]
    Idle,
    Joining,
    InClass,
    /// The call ended (left, or could not start), with why.
    Ended(String),
}

/// What the controller last published for the window.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Published {
    pub phase: Phase,
    pub live: LiveClass,
    pub devices: Option<DeviceLists>,
    /// The embedded server's port once it runs, or why it could not start.
    pub local_server: Option<Result<u16, String>>,
    pub mic_level_dbfs: Option<f32>,
    pub check_problem: Option<String>,
    /// The pre-join connection test, once asked for.
    pub connection: Option<model::ConnectionCheck>,
    pub speaker_test_playing: bool,
    /// Short notices (someone joined, an error), oldest first; the window takes them.
    pub notices: Vec<String>,
    /// The app was asked to stop (SIGTERM, SIGINT) and has left the class: close the window.
    pub close: bool,
}

/// Wakes the window (asks it for a repaint).
pub(crate) type Waker = Arc<dyn Fn() + Send + Sync>;

/// Shared between the worker and the window.
struct Shared {
    published: Mutex<(u64, Published)>,
    wake: OnceLock<Waker>,
}

impl Shared {
    /// Changes what is published; wakes the window only if something it shows changed.
    fn update(&self, change: impl FnOnce(&mut Published)) {
        let mut guard = self.published.lock();
        let before = guard.1.clone();
        change(&mut guard.1);
        if guard.1 != before {
            guard.0 += 1;
            drop(guard);
            if let Some(wake) = self.wake.get() {
                wake();
            }
        }
    }
}

/// The window's handle on the controller.
pub struct Controller {
    requests: mpsc::UnboundedSender<Request>,
    shared: Arc<Shared>,
    seen_generation: u64,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// What the controller is started with.
pub struct ControllerSetup {
    /// Where previews, thumbnails and the class's pictures are shown.
    pub pictures: Arc<dyn PictureSink>,
    /// The devices to list, meter and play on.
    pub devices: Arc<dyn MediaDevices>,
    /// The school's policy's ICE servers, added to the class server's for every call.
    pub extra_ice_servers: Vec<classroom_wire::IceServer>,
    /// The policy's `force_relay`: every connection to a class server through TURN.
    pub force_relay: bool,
}

impl Controller {
    /// Starts the worker thread and its runtime.
    pub fn start(setup: ControllerSetup) -> std::io::Result<Self> {
        let (requests, inbox) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            published: Mutex::new((1, Published::default())),
            wake: OnceLock::new(),
        });
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("classroom-io")
            .enable_all()
            .build()?;
        let worker = worker::Worker::new(shared.clone(), setup);
        let thread = std::thread::Builder::new()
            .name("classroom-runtime".into())
            .spawn(move || {
                runtime.block_on(worker.run(inbox));
                runtime.shutdown_timeout(Duration::from_millis(500));
            })?;
        Ok(Controller {
            requests,
            shared,
            seen_generation: 0,
            thread: Some(thread),
        })
    }

    /// Every change the window would show calls `wake` (once set, it stays).
    pub(crate) fn on_change(&self, wake: Waker) {
        let _ = self.shared.wake.set(wake);
    }

    pub fn send(&self, request: Request) {
        if self.requests.send(request).is_err() {
            tracing::error!("the controller stopped; request dropped");
        }
    }

    /// What was published since the last call (`None`: nothing new). Notices are taken.
    pub(crate) fn poll(&mut self) -> Option<Published> {
        let mut guard = self.shared.published.lock();
        if guard.0 == self.seen_generation {
            return None;
        }
        self.seen_generation = guard.0;
        let published = guard.1.clone();
        guard.1.notices.clear();
        Some(published)
    }

    /// Leaves the class, stops the local server and the runtime.
    pub fn shutdown(&mut self) {
        let _ = self.requests.send(Request::Leave);
        // Closing the channel ends the worker once it has left.
        let (closed, _) = mpsc::unbounded_channel();
        self.requests = closed;
        if let Some(thread) = self.thread.take() {
            let deadline = Instant::now() + Duration::from_secs(3);
            while !thread.is_finished() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(10));
            }
            if thread.is_finished() {
                let _ = thread.join();
            } else {
                tracing::warn!("the controller did not stop in time");
            }
        }
    }
}

impl Drop for Controller {
    fn drop(&mut self) {
        self.shutdown();
    }
}
