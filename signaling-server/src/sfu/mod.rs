//! The SFU: each participant of a class on it holds one peer connection, to the server, which
//! forwards every published track to the others, choosing a simulcast layer per subscriber.
//!
//! - `forward.rs`: the forwarding core, sans-IO (routes, layers, rewriting, keyframes);
//! - `peer.rs`: one client's str0m connection and its negotiation;
//! - `shard.rs`: the thread that owns the peers and the UDP socket, and drives them;
//! - `keyframe.rs`: where keyframes start in VP8 and H.264 payloads;
//! - `speakers.rs`: which speakers a subscriber hears in a large class (the loudest few);
//! - this file: the handle the Socket.IO side talks to, the configuration, the errors and the
//!   counters `/metrics` shows.

mod forward;
mod keyframe;
mod peer;
mod shard;
mod speakers;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use classroom_wire::SfuDescription;
use tokio::sync::mpsc;

pub(crate) use forward::PeerId;
pub(crate) use peer::{Signal, SignalSink};
pub use speakers::AudioSelection;

/// How the server's classes carry media (`--sfu`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum SfuMode {
    /// Every class is a mesh: the SFU does not run.
    #[default]
    Off,
    /// Every class runs on the SFU.
    Always,
    /// A class is a mesh while small and moves to the SFU when it grows past `--mesh-max`
    /// (back when it shrinks below it).
    Auto,
}

/// The SFU's part of the server's configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct SfuConfig {
    pub mode: SfuMode,
    /// The UDP address media arrives at (`--media-address`, `--media-port`).
    pub media_bind: SocketAddr,
    /// The address clients are told to send to, when it is not the bound one (a 1:1 NAT).
    pub public_ip: Option<IpAddr>,
    /// The largest class `auto` keeps a mesh (`--mesh-max`).
    pub mesh_max: usize,
    /// Above how many speakers a subscriber hears only the loudest few.
    pub audio: AudioSelection,
}

impl SfuConfig {
    pub fn off() -> Self {
        SfuConfig {
            mode: SfuMode::Off,
            media_bind: SocketAddr::from(([127, 0, 0, 1], 0)),
            public_ip: None,
            mesh_max: 4,
            audio: AudioSelection::default(),
        }
    }
}

/// What the SFU refuses, or what stops it.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SfuError {
    #[error("the description was refused: {0}")]
    Sdp(String),
    #[error("the ICE candidate was refused: {0}")]
    Candidate(String),
    #[error("a track was refused: {0}")]
    Track(String),
    #[error("the SFU is overloaded; try again")]
    Busy,
    #[error("the SFU has stopped")]
    Stopped,
    #[error("the SFU's media socket on {addr}: {source}")]
    Socket {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error(
        "the SFU needs an address to advertise: bind --media-address to one, or give --public-ip"
    )]
    NoAddress,
}

/// The SFU's counters, for `/metrics`.
#[derive(Debug, Default)]
pub(crate) struct SfuMetrics {
    pub(crate) peers: AtomicU64,
    pub(crate) tracks: AtomicU64,
    pub(crate) packets_in: AtomicU64,
    pub(crate) packets_forwarded: AtomicU64,
    pub(crate) bytes_forwarded: AtomicU64,
    pub(crate) layer_switches: AtomicU64,
    /// Audio subscriptions not forwarded now (their speaker is not among the loudest).
    pub(crate) audio_withheld: AtomicU64,
    pub(crate) keyframe_requests: AtomicU64,
    /// Datagrams that belong to no peer, or that no peer could read.
    pub(crate) packets_refused: AtomicU64,
    /// Descriptions, candidates and tracks refused.
    pub(crate) signals_refused: AtomicU64,
}

impl SfuMetrics {
    pub(crate) fn render(&self, out: &mut String) {
        use std::fmt::Write;
        let counters: [(&str, &str, &AtomicU64, &str); 10] = [
            (
                "classroom_sfu_peers",
                "gauge",
                &self.peers,
                "Peer connections to the SFU.",
            ),
            (
                "classroom_sfu_tracks",
                "gauge",
                &self.tracks,
                "Tracks published on the SFU.",
            ),
            (
                "classroom_sfu_packets_received_total",
                "counter",
                &self.packets_in,
                "RTP packets the SFU received from publishers.",
            ),
            (
                "classroom_sfu_packets_forwarded_total",
                "counter",
                &self.packets_forwarded,
                "RTP packets the SFU forwarded to subscribers.",
            ),
            (
                "classroom_sfu_bytes_forwarded_total",
                "counter",
                &self.bytes_forwarded,
                "RTP payload bytes the SFU forwarded.",
            ),
            (
                "classroom_sfu_layer_switches_total",
                "counter",
                &self.layer_switches,
                "Simulcast layer switches of subscriptions.",
            ),
            (
                "classroom_sfu_audio_withheld",
                "gauge",
                &self.audio_withheld,
                "Audio subscriptions not forwarded now: in a large class only the loudest speakers are.",
            ),
            (
                "classroom_sfu_keyframe_requests_total",
                "counter",
                &self.keyframe_requests,
                "Keyframe requests (PLI) sent to publishers.",
            ),
            (
                "classroom_sfu_packets_refused_total",
                "counter",
                &self.packets_refused,
                "Datagrams on the media port that belong to no peer or were unreadable.",
            ),
            (
                "classroom_sfu_signals_refused_total",
                "counter",
                &self.signals_refused,
                "Descriptions, candidates and tracks the SFU refused.",
            ),
        ];
        for (name, kind, value, help) in counters {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {}",
                value.load(Ordering::Relaxed)
            );
        }
    }
}

/// Whose cameras a peer is forwarded: a student does not see other students' cameras when
/// the class keeps them for the instructors (the room's rules decide; the SFU holds it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Viewer {
    pub(crate) student: bool,
    /// The class's setting as this peer joined (`Command::StudentCameras` changes it).
    pub(crate) student_cameras_private: bool,
}

/// What the Socket.IO side asks of the SFU.
pub(crate) enum Command {
    Join {
        peer: PeerId,
        room: Arc<str>,
        user_id: Arc<str>,
        viewer: Viewer,
        signal: SignalSink,
    },
    /// The class keeps students' cameras for the instructors (`private`), or shows them to all.
    StudentCameras {
        room: Arc<str>,
        private: bool,
    },
    /// The peer's member became a co-instructor, or a student again.
    Rank {
        peer: PeerId,
        student: bool,
    },
    Description {
        peer: PeerId,
        description: SfuDescription,
    },
    Candidate {
        peer: PeerId,
        candidate: String,
    },
    WantHeight {
        peer: PeerId,
        target_user: String,
        max_height: u32,
    },
    Leave {
        peer: PeerId,
    },
}

/// Commands waiting for the SFU's thread, at most.
const COMMAND_QUEUE: usize = 4096;

/// The running SFU, as the Socket.IO side holds it.
pub(crate) struct Sfu {
    commands: mpsc::Sender<Command>,
    next_peer: AtomicU64,
    pub(crate) metrics: Arc<SfuMetrics>,
    /// Where media arrives: bound and advertised (a TURN relay may reach these).
    pub(crate) media_addrs: [SocketAddr; 2],
}

impl Sfu {
    /// Binds the media port and starts the SFU's thread.
    pub(crate) fn start(config: &SfuConfig) -> Result<Sfu, SfuError> {
        let socket =
            std::net::UdpSocket::bind(config.media_bind).map_err(|source| SfuError::Socket {
                addr: config.media_bind,
                source,
            })?;
        let bound = socket.local_addr().map_err(|source| SfuError::Socket {
            addr: config.media_bind,
            source,
        })?;
        let advertised_ip = match config.public_ip {
            Some(ip) => ip,
            None if !bound.ip().is_unspecified() => bound.ip(),
            None => return Err(SfuError::NoAddress),
        };
        let advertised = SocketAddr::new(advertised_ip, bound.port());
        let metrics = Arc::new(SfuMetrics::default());
        let (tx, rx) = mpsc::channel(COMMAND_QUEUE);
        shard::spawn(socket, advertised, rx, metrics.clone(), config.audio)?;
        tracing::info!(%bound, %advertised, "SFU listening for media");
        Ok(Sfu {
            commands: tx,
            next_peer: AtomicU64::new(1),
            metrics,
            media_addrs: [bound, advertised],
        })
    }

    /// A new client: its signaling goes to `signal`.
    pub(crate) fn join(
        &self,
        room: Arc<str>,
        user_id: Arc<str>,
        viewer: Viewer,
        signal: SignalSink,
    ) -> Result<PeerId, SfuError> {
        let peer = PeerId(self.next_peer.fetch_add(1, Ordering::Relaxed));
        self.send(Command::Join {
            peer,
            room,
            user_id,
            viewer,
            signal,
        })?;
        Ok(peer)
    }

    /// The client left: never refused (a full queue is waited on, in a task of its own).
    pub(crate) fn leave(&self, peer: PeerId) {
        self.send_surely(Command::Leave { peer });
    }

    /// A command that must not be lost (a leave, what a peer may see): a full queue is waited
    /// on, in a task of its own.
    pub(crate) fn send_surely(&self, command: Command) {
        if let Err(mpsc::error::TrySendError::Full(command)) = self.commands.try_send(command) {
            let commands = self.commands.clone();
            tokio::spawn(async move {
                let _ = commands.send(command).await;
            });
        }
    }

    pub(crate) fn send(&self, command: Command) -> Result<(), SfuError> {
        self.commands.try_send(command).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => SfuError::Busy,
            mpsc::error::TrySendError::Closed(_) => SfuError::Stopped,
        })
    }
}
