//! Simulated links: each link is a task like the real one (operations in, reports out), and
//! the network between participants is a table of link ends. Two ends connect once both
//! have applied the other's description; a cut path disconnects them, and after
//! [`FAIL_AFTER`] without it they fail, as ICE does; a failed end recovers only through a
//! new negotiation (an ICE restart or a new link). A lost picture at a receiver reaches the
//! sender's end as a keyframe request. Time is tokio's, so the tests run in virtual time.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use classroom_wire::{IceCandidate, SdpKind, SessionDescription};
use parking_lot::Mutex;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::call::drivers::LinkFactory;
use crate::call::link::{LinkContext, LinkOp, LinkReport, LinkReportKind, LinkSpec};
use crate::rtc::EncodedUnit;
use crate::types::{PeerConnState, Source, VideoCodec};

/// How long a disconnected end waits before it fails (ICE's failed timeout, shortened).
pub(crate) const FAIL_AFTER: Duration = Duration::from_secs(3);
/// How long connectivity checks take once both sides have negotiated.
const CONNECT_DELAY: Duration = Duration::from_millis(40);

/// The end of a link at `local`, towards `remote`.
type EndKey = (String, String);

struct End {
    generation: u64,
    /// The `o=` session of our own description, and of the remote's we applied.
    local_session: Option<String>,
    remote_session: Option<String>,
    state: PeerConnState,
    /// Failed: waits for a new negotiation.
    failed: bool,
    video_codec: VideoCodec,
    events: mpsc::UnboundedSender<EndEvent>,
}

enum EndEvent {
    State(PeerConnState),
    KeyframeRequested(Source),
}

#[derive(Default)]
struct State {
    ends: BTreeMap<EndKey, End>,
    /// Paths cut between two participants (stored in order).
    cut: BTreeSet<(String, String)>,
}

fn pair(a: &str, b: &str) -> (String, String) {
    if a <= b {
        (a.to_owned(), b.to_owned())
    } else {
        (b.to_owned(), a.to_owned())
    }
}

impl State {
    /// Whether the ends `a → b` and `b → a` describe one link and can reach each other.
    fn can_connect(&self, a: &EndKey) -> bool {
        let b = (a.1.clone(), a.0.clone());
        let (Some(one), Some(other)) = (self.ends.get(a), self.ends.get(&b)) else {
            return false;
        };
        let negotiated = one.local_session.is_some()
            && one.remote_session == other.local_session
            && other.remote_session == one.local_session;
        negotiated && !one.failed && !other.failed && !self.cut.contains(&pair(&a.0, &a.1))
    }

    /// Brings both ends of the path between `a` and `b` to the state the network allows.
    fn settle(&mut self, a: &str, b: &str) {
        for key in [(a.to_owned(), b.to_owned()), (b.to_owned(), a.to_owned())] {
            let reachable = self.can_connect(&key);
            let Some(end) = self.ends.get_mut(&key) else {
                continue;
            };
            let next = match (reachable, end.state) {
                (true, PeerConnState::Connected) => continue,
                (true, _) => PeerConnState::Connected,
                (false, PeerConnState::Connected) => PeerConnState::Disconnected,
                (false, _) => continue,
            };
            end.state = next;
            let _ = end.events.send(EndEvent::State(next));
        }
    }
}

/// The simulated network. Cloning shares it.
#[derive(Clone, Default)]
pub(crate) struct Network {
    state: Arc<Mutex<State>>,
}

static SESSIONS: AtomicU64 = AtomicU64::new(1);

fn description(
    kind: SdpKind,
    session: &str,
    version: u64,
    codec: VideoCodec,
) -> SessionDescription {
    SessionDescription {
        kind,
        sdp: format!(
            "v=0\r\no=- {session} {version} IN IP4 192.0.2.1\r\ns=-\r\na=x-codec:{}\r\n",
            codec.mime_type()
        ),
    }
}

fn session_of(description: &SessionDescription) -> Option<String> {
    description
        .sdp
        .lines()
        .find_map(|line| line.strip_prefix("o="))
        .and_then(|origin| origin.split_whitespace().nth(1))
        .map(str::to_owned)
}

impl Network {
    /// Cuts the path between `a` and `b`: connected ends disconnect, and fail after
    /// [`FAIL_AFTER`] unless the path is back by then.
    pub(crate) fn cut(&self, a: &str, b: &str) {
        let mut state = self.state.lock();
        state.cut.insert(pair(a, b));
        state.settle(a, b);
        let network = self.clone();
        let (a, b) = (a.to_owned(), b.to_owned());
        tokio::spawn(async move {
            tokio::time::sleep(FAIL_AFTER).await;
            let mut state = network.state.lock();
            if !state.cut.contains(&pair(&a, &b)) {
                return;
            }
            for key in [(a.clone(), b.clone()), (b.clone(), a.clone())] {
                if let Some(end) = state.ends.get_mut(&key)
                    && end.state == PeerConnState::Disconnected
                {
                    end.state = PeerConnState::Failed;
                    end.failed = true;
                    let _ = end.events.send(EndEvent::State(PeerConnState::Failed));
                }
            }
        });
    }

    /// The path between `a` and `b` is back: ends that did not fail reconnect.
    pub(crate) fn restore(&self, a: &str, b: &str) {
        let mut state = self.state.lock();
        state.cut.remove(&pair(a, b));
        state.settle(a, b);
    }

    /// A picture of `sender`'s `source` is lost at `receiver`: the receiver asks for a
    /// keyframe, which reaches the sender's end of the link.
    pub(crate) fn lose_picture(&self, sender: &str, receiver: &str, source: Source) {
        let state = self.state.lock();
        if let Some(end) = state.ends.get(&(sender.to_owned(), receiver.to_owned())) {
            let _ = end.events.send(EndEvent::KeyframeRequested(source));
        }
    }

    /// The generation of `local`'s link to `remote`, while it exists.
    pub(crate) fn generation(&self, local: &str, remote: &str) -> Option<u64> {
        let state = self.state.lock();
        state
            .ends
            .get(&(local.to_owned(), remote.to_owned()))
            .map(|end| end.generation)
    }

    /// The links `local` holds, by remote.
    pub(crate) fn links_of(&self, local: &str) -> Vec<String> {
        let state = self.state.lock();
        state
            .ends
            .keys()
            .filter(|(from, _)| from == local)
            .map(|(_, to)| to.clone())
            .collect()
    }
}

/// One participant's simulated links on `network`, carrying `video_codec` where the other
/// side has it.
pub(crate) struct SimulatedLinks {
    pub network: Network,
    pub self_user_id: String,
    pub video_codec: VideoCodec,
}

impl LinkFactory for SimulatedLinks {
    fn open(
        &self,
        spec: LinkSpec,
        context: LinkContext,
        ops: mpsc::UnboundedReceiver<LinkOp>,
        units: mpsc::Receiver<(Source, EncodedUnit)>,
    ) -> JoinHandle<()> {
        tokio::spawn(run_simulated_link(
            self.network.clone(),
            self.self_user_id.clone(),
            self.video_codec,
            spec,
            context,
            ops,
            units,
        ))
    }
}

async fn run_simulated_link(
    network: Network,
    self_user_id: String,
    video_codec: VideoCodec,
    spec: LinkSpec,
    context: LinkContext,
    mut ops: mpsc::UnboundedReceiver<LinkOp>,
    mut units: mpsc::Receiver<(Source, EncodedUnit)>,
) {
    // The simulated network has mesh links only.
    let key: EndKey = (self_user_id, spec.link.to_string());
    let report = |kind: LinkReportKind| {
        let _ = context.reports.send(LinkReport {
            link: spec.link.clone(),
            generation: spec.generation,
            kind,
        });
    };
    let (events_tx, mut events) = mpsc::unbounded_channel();
    network.state.lock().ends.insert(
        key.clone(),
        End {
            generation: spec.generation,
            local_session: None,
            remote_session: None,
            state: PeerConnState::New,
            failed: false,
            video_codec,
            events: events_tx,
        },
    );
    report(LinkReportKind::Estimate(
        context.options.initial_bitrate_bps,
    ));
    let session = format!("{}", SESSIONS.fetch_add(1, Ordering::Relaxed));
    let mut version = 0u64;
    let mut codec = video_codec;
    loop {
        tokio::select! {
            op = ops.recv() => {
                let Some(op) = op else { break };
                // Negotiation takes a moment, as on a real link.
                tokio::time::sleep(Duration::from_millis(5)).await;
                let mut produced = Vec::new();
                {
                    let mut state = network.state.lock();
                    let remote_codec = state
                        .ends
                        .get(&(key.1.clone(), key.0.clone()))
                        .map(|end| end.video_codec);
                    // A link replaced by a newer one to the same participant only closes.
                    let Some(end) = state
                        .ends
                        .get_mut(&key)
                        .filter(|end| end.generation == spec.generation)
                    else {
                        break;
                    };
                    match op {
                        LinkOp::CreateOffer | LinkOp::RestartIce => {
                            version += 1;
                            end.local_session = Some(session.clone());
                            produced.push(LinkReportKind::Description(description(
                                SdpKind::Offer, &session, version, codec,
                            )));
                        }
                        LinkOp::AcceptOffer(offer) => {
                            version += 1;
                            // The answerer sends what both decode: ours if the offerer has it.
                            codec = remote_codec.filter(|c| *c == codec).unwrap_or(VideoCodec::Vp8);
                            end.remote_session = session_of(&offer);
                            end.local_session = Some(session.clone());
                            end.failed = false;
                            produced.push(LinkReportKind::Negotiated(Some(codec)));
                            produced.push(LinkReportKind::Description(description(
                                SdpKind::Answer, &session, version, codec,
                            )));
                        }
                        LinkOp::AcceptAnswer(answer) => {
                            if answer.sdp.contains(VideoCodec::Vp8.mime_type()) {
                                codec = VideoCodec::Vp8;
                            }
                            end.remote_session = session_of(&answer);
                            end.failed = false;
                            produced.push(LinkReportKind::Negotiated(Some(codec)));
                        }
                        LinkOp::AddCandidate(_) => {}
                    }
                    if end.state == PeerConnState::New && end.local_session.is_some() {
                        end.state = PeerConnState::Connecting;
                        produced.push(LinkReportKind::State(PeerConnState::Connecting));
                    }
                }
                let described = produced
                    .iter()
                    .any(|kind| matches!(kind, LinkReportKind::Description(_)));
                for kind in produced {
                    report(kind);
                }
                if described {
                    report(LinkReportKind::Candidate(IceCandidate {
                        candidate: format!("candidate:1 1 udp 1 192.0.2.1 {} typ host", 9000 + spec.generation),
                        sdp_mid: Some("0".to_owned()),
                        sdp_m_line_index: Some(0),
                        username_fragment: None,
                    }));
                }
                // Connectivity checks, then both ends settle.
                let network = network.clone();
                let (a, b) = key.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(CONNECT_DELAY).await;
                    network.state.lock().settle(&a, &b);
                });
            }
            Some(event) = events.recv() => match event {
                EndEvent::State(state) => report(LinkReportKind::State(state)),
                EndEvent::KeyframeRequested(source) => {
                    report(LinkReportKind::KeyframeRequested(source));
                }
            },
            // No media flows here: what the engine writes is taken and dropped.
            Some(_) = units.recv() => {}
        }
    }
    // Closed: this end goes; the other end loses its link.
    let mut state = network.state.lock();
    if state
        .ends
        .get(&key)
        .is_some_and(|end| end.generation == spec.generation)
    {
        state.ends.remove(&key);
    }
    state.settle(&key.0, &key.1);
}
