//! The SFU's thread: it owns the UDP socket, every peer and the forwarding core, and drives
//! them: a datagram goes to its peer in O(1) (by source address once bound, by the ICE ufrag
//! of a STUN request before), str0m's outputs go out on the socket, its RTP packets through
//! the forwarding core to the subscribers, and time goes in when each peer asked for it.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use classroom_wire::{MediaSource, SdpKind};
use str0m::bwe::{Bitrate, BweKind};
use str0m::format::{Codec, PayloadParams};
use str0m::ice::{IceCreds, StunMessage};
use str0m::media::{KeyframeRequestKind, MediaKind, Mid, Pt};
use str0m::net::{Protocol, Receive};
use str0m::rtp::{ExtensionValues, RtpPacket, RtpWrite, Ssrc, Vp8Descriptor};
use str0m::{Candidate, Event, IceConnectionState, Input, Output, Rtc};
use tokio::sync::mpsc;

use super::forward::{
    self, Forwarder, Layer, PacketMeta, PeerId, Route, SubId, TrackId, TrackKind, Vp8Ids,
};
use super::keyframe::{VideoPayload, starts_keyframe};
use super::peer::{InTrack, MAX_PUBLISHED, Peer, Signal, SignalSink};
use super::speakers::AudioSelection;
use super::{Command, SfuError, SfuMetrics, Viewer};

/// The largest datagram read (above any MTU WebRTC uses).
const DATAGRAM_BYTES: usize = 2048;
/// The estimate a subscriber's bandwidth starts from.
const INITIAL_ESTIMATE: Bitrate = Bitrate::kbps(1_500);
/// What one received video may need at most (a 720p layer and its keyframes): the estimate
/// each subscriber's connection probes towards is this times its videos, so that a switch up
/// finds the room (str0m paces what it sends to the estimate).
const DESIRED_PER_VIDEO: Bitrate = Bitrate::kbps(2_000);
/// The full layer's height when a client does not say.
const DEFAULT_FULL_HEIGHT: u32 = 720;

pub(super) fn spawn(
    socket: UdpSocket,
    advertised: SocketAddr,
    commands: mpsc::Receiver<Command>,
    metrics: Arc<SfuMetrics>,
    audio: AudioSelection,
) -> Result<(), SfuError> {
    let addr = advertised;
    let io_error = |source| SfuError::Socket { addr, source };
    socket.set_nonblocking(true).map_err(io_error)?;
    enlarge_buffers(&socket);
    let sender = socket.try_clone().map_err(io_error)?;
    std::thread::Builder::new()
        .name("sfu-shard-0".into())
        .spawn(move || {
            let runtime = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(r) => r,
                Err(e) => {
                    tracing::error!(error = %e, "the SFU's runtime did not start");
                    return;
                }
            };
            runtime.block_on(async move {
                let socket = match tokio::net::UdpSocket::from_std(socket) {
                    Ok(s) => s,
                    Err(e) => {
                        tracing::error!(error = %e, "the SFU's socket did not register");
                        return;
                    }
                };
                let mut shard = Shard::new(sender, advertised, metrics, audio, Instant::now());
                run(&mut shard, socket, commands).await;
            });
        })
        .map_err(io_error)?;
    Ok(())
}

/// Room in the kernel for a burst of datagrams while the thread is busy (the default, about
/// 200 KiB, overflows when every publisher's keyframe arrives at once); the kernel caps it at
/// `net.core.rmem_max`.
const SOCKET_BUFFER_BYTES: libc::c_int = 4 << 20;

fn enlarge_buffers(socket: &UdpSocket) {
    use std::os::fd::AsRawFd;
    for option in [libc::SO_RCVBUF, libc::SO_SNDBUF] {
        let size = SOCKET_BUFFER_BYTES;
        // SAFETY: a valid socket descriptor, and a c_int option value of the size given.
        let done = unsafe {
            libc::setsockopt(
                socket.as_raw_fd(),
                libc::SOL_SOCKET,
                option,
                (&size as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if done != 0 {
            tracing::warn!(error = %std::io::Error::last_os_error(), "the SFU's socket buffer stays at its default");
        }
    }
}

async fn run(
    shard: &mut Shard,
    socket: tokio::net::UdpSocket,
    mut commands: mpsc::Receiver<Command>,
) {
    let mut buf = vec![0u8; DATAGRAM_BYTES];
    // One timer, moved when the next deadline moves (not a new one per datagram).
    let sleep = tokio::time::sleep_until(tokio::time::Instant::now());
    tokio::pin!(sleep);
    loop {
        let mut deadline = shard.next_deadline();
        if deadline <= Instant::now() {
            // Due already: handled now, not at the timer's next millisecond (str0m's pacer
            // releases queued packets one deadline at a time, so each wait would add up).
            shard.timeout(Instant::now());
            shard.drive_dirty(Instant::now());
            deadline = shard.next_deadline();
        }
        let wake = tokio::time::Instant::from_std(deadline);
        if sleep.deadline() != wake {
            sleep.as_mut().reset(wake);
        }
        tokio::select! {
            biased;
            command = commands.recv() => match command {
                Some(command) => shard.command(Instant::now(), command),
                None => break,
            },
            received = socket.recv_from(&mut buf) => match received {
                // One datagram per pass: str0m's output must be drained after each input
                // (reading a burst first loses the events of all but the last).
                Ok((n, from)) => shard.datagram(Instant::now(), from, &buf[..n]),
                Err(e) => tracing::debug!(error = %e, "SFU receive failed"),
            },
            () = &mut sleep => {
                shard.timeout(Instant::now());
            }
        }
        shard.drive_dirty(Instant::now());
    }
    tracing::info!("SFU stopped");
}

/// Which track and layer an arriving SSRC carries, learned on its first packet.
#[derive(Clone, Copy)]
struct InRoute {
    track: TrackId,
    layer: Layer,
    pt: Pt,
    codec: Option<VideoPayload>,
    params: Option<PayloadParams>,
}

/// The peers of one class, and what it lets students see.
#[derive(Default)]
struct ShardRoom {
    members: Vec<PeerId>,
    /// Students' cameras go to the instructors only.
    student_cameras_private: bool,
}

/// Whether a track goes to a subscriber: every track does, but a student's camera goes to no
/// other student in a class that keeps students' cameras for the instructors.
fn forwards(
    source: MediaSource,
    publisher_student: bool,
    subscriber_student: bool,
    student_cameras_private: bool,
) -> bool {
    !(source == MediaSource::Camera
        && student_cameras_private
        && publisher_student
        && subscriber_student)
}

/// A published track: whose, on which of their m-lines, and what it is.
struct TrackInfo {
    publisher: PeerId,
    mid: Mid,
    source: MediaSource,
    simulcast: bool,
}

struct Shard {
    socket: UdpSocket,
    local: SocketAddr,
    metrics: Arc<SfuMetrics>,
    peers: HashMap<PeerId, Peer>,
    by_ufrag: HashMap<String, PeerId>,
    by_addr: HashMap<SocketAddr, PeerId>,
    rooms: HashMap<Arc<str>, ShardRoom>,
    tracks: HashMap<TrackId, TrackInfo>,
    in_routes: HashMap<(PeerId, Ssrc), InRoute>,
    forward: Forwarder,
    deadlines: BinaryHeap<Reverse<(Instant, PeerId)>>,
    dirty: Vec<PeerId>,
    routes: Vec<Route>,
    next_track: u64,
    next_sub: u64,
    /// When an unroutable datagram was last logged (they are counted, and logged at most
    /// once a minute).
    refused_logged: Option<Instant>,
}

impl Shard {
    fn new(
        socket: UdpSocket,
        local: SocketAddr,
        metrics: Arc<SfuMetrics>,
        audio: AudioSelection,
        now: Instant,
    ) -> Self {
        Shard {
            socket,
            local,
            metrics,
            peers: HashMap::new(),
            by_ufrag: HashMap::new(),
            by_addr: HashMap::new(),
            rooms: HashMap::new(),
            tracks: HashMap::new(),
            in_routes: HashMap::new(),
            forward: Forwarder::new(now, audio),
            deadlines: BinaryHeap::new(),
            dirty: Vec::new(),
            routes: Vec::new(),
            next_track: 1,
            next_sub: 1,
            refused_logged: None,
        }
    }

    fn next_deadline(&mut self) -> Instant {
        let far = Instant::now() + Duration::from_secs(1);
        let mut next = self.forward.poll_timeout().min(far);
        while let Some(Reverse((at, peer))) = self.deadlines.peek().copied() {
            match self.peers.get(&peer) {
                Some(p) if p.deadline == at => {
                    next = next.min(at);
                    break;
                }
                // A stale entry: the peer left or asked for another time since.
                _ => {
                    self.deadlines.pop();
                }
            }
        }
        next
    }

    fn timeout(&mut self, now: Instant) {
        while let Some(Reverse((at, peer))) = self.deadlines.peek().copied() {
            if at > now {
                break;
            }
            self.deadlines.pop();
            if let Some(p) = self.peers.get_mut(&peer)
                && p.deadline == at
            {
                if let Err(e) = p.rtc.handle_input(Input::Timeout(now)) {
                    tracing::debug!(peer = peer.0, error = %e, "SFU peer timeout failed");
                }
                self.dirty.push(peer);
            }
        }
        if now >= self.forward.poll_timeout() {
            self.forward.handle_input(now, forward::Input::Timeout);
            self.metrics
                .audio_withheld
                .store(self.forward.withheld() as u64, Ordering::Relaxed);
            self.forward_outputs(now);
        }
    }

    // ---- signaling ---------------------------------------------------------------------

    fn command(&mut self, now: Instant, command: Command) {
        match command {
            Command::Join {
                peer,
                room,
                user_id,
                viewer,
                signal,
            } => self.join(now, peer, room, user_id, viewer, signal),
            Command::StudentCameras { room, private } => {
                if let Some(r) = self.rooms.get_mut(&room)
                    && r.student_cameras_private != private
                {
                    r.student_cameras_private = private;
                    self.reconsider(now, &room);
                }
            }
            Command::Rank { peer, student } => {
                if let Some(p) = self.peers.get_mut(&peer)
                    && p.student != student
                {
                    p.student = student;
                    let room = p.room.clone();
                    self.reconsider(now, &room);
                }
            }
            Command::Description { peer, description } => {
                let Some(p) = self.peers.get_mut(&peer) else {
                    return;
                };
                let d = &description.description;
                let result = match d.kind {
                    SdpKind::Offer => p
                        .accept_offer(&d.sdp, description.sources)
                        .map(|()| Vec::new()),
                    SdpKind::Answer => p.accept_answer(&d.sdp),
                    SdpKind::Pranswer | SdpKind::Rollback => {
                        Err(SfuError::Sdp("the SFU takes an offer or an answer".into()))
                    }
                };
                match result {
                    // What was forwarded before these m-lines opened went nowhere: they
                    // start at a keyframe.
                    Ok(opened) => {
                        self.follow_ice_restart(peer);
                        for sub in opened {
                            self.forward
                                .handle_input(now, forward::Input::Opened { sub });
                        }
                        self.forward_outputs(now);
                    }
                    Err(e) => self.refuse_signal(peer, &e),
                }
                self.dirty.push(peer);
            }
            Command::Candidate { peer, candidate } => {
                let Some(p) = self.peers.get_mut(&peer) else {
                    return;
                };
                if let Err(e) = p.add_candidate(&candidate) {
                    self.refuse_signal(peer, &e);
                }
                self.dirty.push(peer);
            }
            Command::WantHeight {
                peer,
                target_user,
                max_height,
            } => {
                let Some(room) = self.peers.get(&peer).map(|p| p.room.clone()) else {
                    return;
                };
                tracing::debug!(peer = peer.0, target = %target_user, max_height, "SFU wanted height");
                let cameras: Vec<TrackId> = self
                    .tracks
                    .iter()
                    .filter(|(_, t)| t.source == MediaSource::Camera)
                    .filter(|(_, t)| {
                        self.peers
                            .get(&t.publisher)
                            .is_some_and(|p| p.room == room && *p.user_id == *target_user)
                    })
                    .map(|(id, _)| *id)
                    .collect();
                for track in cameras {
                    self.forward.handle_input(
                        now,
                        forward::Input::WantHeight {
                            subscriber: peer,
                            track,
                            max_height,
                        },
                    );
                }
                self.forward_outputs(now);
            }
            Command::Leave { peer } => self.leave(now, peer),
        }
    }

    /// An offer with new ICE credentials (an ICE restart) gave the peer a new ufrag: STUN
    /// finds it by the new one, and its old addresses are forgotten (it may have moved).
    fn follow_ice_restart(&mut self, peer: PeerId) {
        let Some(p) = self.peers.get_mut(&peer) else {
            return;
        };
        let ufrag = p.rtc.direct_api().local_ice_credentials().ufrag;
        if ufrag == p.ufrag {
            return;
        }
        self.by_ufrag.remove(&p.ufrag);
        self.by_ufrag.insert(ufrag.clone(), peer);
        p.ufrag = ufrag;
        for addr in p.addresses.drain(..) {
            self.by_addr.remove(&addr);
        }
    }

    fn refuse_signal(&mut self, peer: PeerId, e: &SfuError) {
        self.metrics.signals_refused.fetch_add(1, Ordering::Relaxed);
        if let Some(p) = self.peers.get(&peer) {
            tracing::info!(peer = peer.0, user = %p.user_id, error = %e, "SFU refused");
            p.say(Signal::Refused(e.to_string()));
        }
    }

    fn join(
        &mut self,
        now: Instant,
        peer: PeerId,
        room: Arc<str>,
        user_id: Arc<str>,
        viewer: Viewer,
        signal: SignalSink,
    ) {
        let creds = IceCreds {
            // The peer's number makes the ufrag unique; the rest makes it unguessable.
            ufrag: format!(
                "p{:x}x{}",
                peer.0,
                &uuid::Uuid::new_v4().simple().to_string()[..8]
            ),
            pass: uuid::Uuid::new_v4().simple().to_string(),
        };
        let mut rtc = Rtc::builder()
            .set_rtp_mode(true)
            .set_ice_lite(true)
            .set_local_ice_credentials(creds.clone())
            .enable_bwe(Some(INITIAL_ESTIMATE))
            .clear_codecs()
            .enable_opus(true, false)
            .enable_vp8(true)
            .enable_h264(true)
            .build(now);
        match Candidate::host(self.local, "udp") {
            Ok(c) => {
                rtc.add_local_candidate(c);
            }
            Err(e) => {
                tracing::error!(error = %e, "the SFU's host candidate is invalid");
                signal(Signal::Refused(format!(
                    "the SFU cannot take connections: {e}"
                )));
                return;
            }
        }
        tracing::debug!(peer = peer.0, user = %user_id, "SFU peer joined");
        let p = Peer::new(
            room.clone(),
            user_id,
            viewer.student,
            rtc,
            creds.ufrag.clone(),
            signal,
            now,
        );
        self.by_ufrag.insert(creds.ufrag, peer);
        self.peers.insert(peer, p);
        self.metrics
            .peers
            .store(self.peers.len() as u64, Ordering::Relaxed);
        let r = self.rooms.entry(room.clone()).or_default();
        let existing: Vec<PeerId> = r.members.clone();
        r.members.push(peer);
        // The room's rules tell each joiner the class's settings as they are now.
        let settings_changed = r.student_cameras_private != viewer.student_cameras_private;
        r.student_cameras_private = viewer.student_cameras_private;
        // The newcomer receives every track already published in its class that it may see.
        let published: Vec<TrackId> = self
            .tracks
            .iter()
            .filter(|(_, t)| existing.contains(&t.publisher))
            .map(|(id, _)| *id)
            .filter(|id| self.may_see(peer, *id))
            .collect();
        for track in published {
            self.subscribe(now, peer, track);
        }
        if settings_changed {
            self.reconsider(now, &room);
        }
        self.dirty.push(peer);
    }

    /// Whether `subscriber` is to be forwarded `track` (see [`forwards`]).
    fn may_see(&self, subscriber: PeerId, track: TrackId) -> bool {
        let (Some(t), Some(sub)) = (self.tracks.get(&track), self.peers.get(&subscriber)) else {
            return false;
        };
        let Some(publisher) = self.peers.get(&t.publisher) else {
            return false;
        };
        let private = self
            .rooms
            .get(&sub.room)
            .is_some_and(|r| r.student_cameras_private);
        forwards(t.source, publisher.student, sub.student, private)
    }

    /// A rank or the class's settings changed: every member of `room` gets what it may now
    /// see and stops receiving what it may not (each an m-line the next offer opens or stops).
    fn reconsider(&mut self, now: Instant, room: &Arc<str>) {
        let members = self
            .rooms
            .get(room)
            .map(|r| r.members.clone())
            .unwrap_or_default();
        let tracks: Vec<(TrackId, PeerId)> = self
            .tracks
            .iter()
            .filter(|(_, t)| members.contains(&t.publisher))
            .map(|(id, t)| (*id, t.publisher))
            .collect();
        for &subscriber in &members {
            for &(track, publisher) in &tracks {
                if publisher == subscriber {
                    continue;
                }
                let wanted = self.may_see(subscriber, track);
                let Some(p) = self.peers.get_mut(&subscriber) else {
                    continue;
                };
                if wanted == p.receives(track) {
                    continue;
                }
                if wanted {
                    self.subscribe(now, subscriber, track);
                } else if let Some(sub) = p.stop_receiving(track) {
                    let desired = DESIRED_PER_VIDEO * p.video_received() as f64;
                    p.rtc.bwe().set_desired_bitrate(desired);
                    self.forward
                        .handle_input(now, forward::Input::Unsubscribe { sub });
                    self.dirty.push(subscriber);
                }
            }
        }
        self.forward_outputs(now);
    }

    fn leave(&mut self, now: Instant, peer: PeerId) {
        let Some(p) = self.peers.remove(&peer) else {
            return;
        };
        self.by_ufrag.remove(&p.ufrag);
        for addr in &p.addresses {
            self.by_addr.remove(addr);
        }
        self.in_routes.retain(|(owner, _), _| *owner != peer);
        for sub in p.subscriptions() {
            self.forward
                .handle_input(now, forward::Input::Unsubscribe { sub });
        }
        self.forward.forget_subscriber(peer);
        let own: Vec<TrackId> = self
            .tracks
            .iter()
            .filter(|(_, t)| t.publisher == peer)
            .map(|(id, _)| *id)
            .collect();
        // The peer is gone from `peers`: its room comes with the call.
        for track in own {
            self.unpublish(now, track, &p.room);
        }
        if let Some(r) = self.rooms.get_mut(&p.room) {
            r.members.retain(|m| *m != peer);
            if r.members.is_empty() {
                self.rooms.remove(&p.room);
            }
        }
        self.metrics
            .peers
            .store(self.peers.len() as u64, Ordering::Relaxed);
        tracing::debug!(peer = peer.0, user = %p.user_id, "SFU peer left");
    }

    fn subscribe(&mut self, now: Instant, subscriber: PeerId, track: TrackId) {
        let Some(info) = self.tracks.get(&track) else {
            return;
        };
        let Some(owner) = self.peers.get(&info.publisher).map(|p| p.user_id.clone()) else {
            return;
        };
        let source = info.source;
        let Some(p) = self.peers.get_mut(&subscriber) else {
            return;
        };
        let sub = SubId(self.next_sub);
        self.next_sub += 1;
        p.receive(sub, track, owner, source);
        let desired = DESIRED_PER_VIDEO * p.video_received() as f64;
        p.rtc.bwe().set_desired_bitrate(desired);
        self.forward.handle_input(
            now,
            forward::Input::Subscribe {
                sub,
                subscriber,
                track,
            },
        );
        self.dirty.push(subscriber);
    }

    /// Takes a track of `room` away from everyone who receives it.
    fn unpublish(&mut self, now: Instant, track: TrackId, room: &Arc<str>) {
        if self.tracks.remove(&track).is_none() {
            return;
        }
        self.forward
            .handle_input(now, forward::Input::Unpublish { track });
        let members = self
            .rooms
            .get(room)
            .map(|r| r.members.clone())
            .unwrap_or_default();
        for member in members {
            if let Some(p) = self.peers.get_mut(&member)
                && p.stop_receiving(track).is_some()
            {
                self.dirty.push(member);
            }
        }
        self.metrics
            .tracks
            .store(self.tracks.len() as u64, Ordering::Relaxed);
    }

    /// A client's sending m-line appeared: publish it to its class.
    fn publish(&mut self, now: Instant, peer: PeerId, added: &str0m::media::MediaAdded) {
        let Some(p) = self.peers.get_mut(&peer) else {
            return;
        };
        if p.published.len() >= MAX_PUBLISHED {
            let e = SfuError::Track(format!(
                "m-line {}: a client publishes at most {MAX_PUBLISHED} tracks",
                added.mid
            ));
            self.refuse_signal(peer, &e);
            return;
        }
        let Some(described) = p.source_of(added.mid).cloned() else {
            let e = SfuError::Track(format!(
                "m-line {} sends media the offer's sources do not name",
                added.mid
            ));
            self.refuse_signal(peer, &e);
            return;
        };
        let expected = match described.source {
            MediaSource::Audio => MediaKind::Audio,
            MediaSource::Camera | MediaSource::Screen => MediaKind::Video,
        };
        if added.kind != expected {
            let e = SfuError::Track(format!(
                "m-line {} is {:?}, not {:?} as its source says",
                added.mid, added.kind, described.source
            ));
            self.refuse_signal(peer, &e);
            return;
        }
        let rids: Vec<String> = added
            .simulcast
            .iter()
            .flat_map(|s| s.send.iter().chain(s.recv.iter()))
            .map(|l| l.rid.to_string())
            .collect();
        let mut layers = [false; 3];
        for rid in &rids {
            match Layer::from_rid(Some(rid.trim())) {
                Some(l) => layers[l as usize] = true,
                None => {
                    let e = SfuError::Track(format!(
                        "m-line {}: unknown simulcast rid {rid:?} (the SFU knows q, h, f)",
                        added.mid
                    ));
                    self.refuse_signal(peer, &e);
                    return;
                }
            }
        }
        let simulcast = !rids.is_empty();
        if !simulcast {
            layers = [false, false, true];
        }
        let kind = match described.source {
            MediaSource::Audio => TrackKind::Audio,
            _ => TrackKind::Video {
                layers,
                full_height: described
                    .height
                    .unwrap_or(DEFAULT_FULL_HEIGHT)
                    .clamp(90, 4320),
            },
        };
        let track = TrackId(self.next_track);
        self.next_track += 1;
        p.published.insert(
            added.mid,
            InTrack {
                track,
                kind: added.kind,
            },
        );
        let room = p.room.clone();
        tracing::debug!(peer = peer.0, user = %p.user_id, mid = %added.mid, source = ?described.source, direction = ?added.direction, simulcast, "SFU track published");
        self.tracks.insert(
            track,
            TrackInfo {
                publisher: peer,
                mid: added.mid,
                source: described.source,
                simulcast,
            },
        );
        self.metrics
            .tracks
            .store(self.tracks.len() as u64, Ordering::Relaxed);
        self.forward.handle_input(
            now,
            forward::Input::Publish {
                track,
                publisher: peer,
                kind,
            },
        );
        let others: Vec<PeerId> = self
            .rooms
            .get(&room)
            .map(|r| r.members.iter().copied().filter(|m| *m != peer).collect())
            .unwrap_or_default();
        for other in others {
            if self.may_see(other, track) {
                self.subscribe(now, other, track);
            }
        }
    }

    // ---- media -------------------------------------------------------------------------

    fn datagram(&mut self, now: Instant, from: SocketAddr, data: &[u8]) {
        let peer = match self.by_addr.get(&from) {
            Some(peer) => Some(*peer),
            None => self.peer_for_stun(data),
        };
        let Some(peer) = peer else {
            self.refused(from, "from an address no peer uses");
            return;
        };
        let Ok(receive) = Receive::new(Protocol::Udp, from, self.local, data) else {
            self.refused(from, "unreadable");
            return;
        };
        let Some(p) = self.peers.get_mut(&peer) else {
            return;
        };
        let input = Input::Receive(now, receive);
        if !p.rtc.accepts(&input) {
            self.refused(from, "not accepted by its peer (wrong credentials)");
            return;
        }
        if let Err(e) = p.rtc.handle_input(input) {
            tracing::debug!(peer = peer.0, error = %e, "SFU input refused");
            self.metrics.packets_refused.fetch_add(1, Ordering::Relaxed);
        }
        if !p.addresses.contains(&from) {
            p.addresses.push(from);
            self.by_addr.insert(from, peer);
        }
        self.dirty.push(peer);
    }

    /// The peer a STUN request is for, by the server's half of its USERNAME.
    fn peer_for_stun(&self, data: &[u8]) -> Option<PeerId> {
        let message = StunMessage::parse(data).ok()?;
        let (ours, _theirs) = message.split_username()?;
        self.by_ufrag.get(ours).copied()
    }

    fn refused(&mut self, from: SocketAddr, why: &str) {
        self.metrics.packets_refused.fetch_add(1, Ordering::Relaxed);
        let now = Instant::now();
        if self
            .refused_logged
            .is_none_or(|t| now.duration_since(t) > Duration::from_secs(60))
        {
            self.refused_logged = Some(now);
            tracing::info!(%from, why, "SFU dropped a datagram (counted in classroom_sfu_packets_refused_total; logged once a minute)");
        }
    }

    /// Polls every peer that had input until each has nothing more to say.
    fn drive_dirty(&mut self, now: Instant) {
        while let Some(peer) = self.dirty.pop() {
            self.drive(now, peer);
        }
    }

    fn drive(&mut self, now: Instant, peer: PeerId) {
        loop {
            let Some(p) = self.peers.get_mut(&peer) else {
                return;
            };
            p.negotiate_if_needed();
            if !p.rtc.is_alive() {
                p.say(Signal::Refused("the connection to the SFU closed".into()));
                self.leave(now, peer);
                return;
            }
            let output = match p.rtc.poll_output() {
                Ok(o) => o,
                Err(e) => {
                    tracing::info!(peer = peer.0, error = %e, "SFU peer failed");
                    p.rtc.disconnect();
                    continue;
                }
            };
            match output {
                Output::Transmit(t) => {
                    if let Err(e) = self.socket.send_to(&t.contents, t.destination) {
                        tracing::debug!(error = %e, "SFU send failed");
                    }
                }
                Output::Timeout(at) => {
                    if p.deadline != at {
                        p.deadline = at;
                        self.deadlines.push(Reverse((at, peer)));
                    }
                    return;
                }
                Output::Event(event) => self.event(now, peer, event),
            }
        }
    }

    fn event(&mut self, now: Instant, peer: PeerId, event: Event) {
        match event {
            Event::RtpPacket(packet) => self.forward_packet(now, peer, packet),
            Event::MediaAdded(added) => {
                if matches!(
                    added.direction,
                    str0m::media::Direction::RecvOnly | str0m::media::Direction::SendRecv
                ) {
                    self.publish(now, peer, &added);
                }
            }
            Event::KeyframeRequest(request) => {
                if let Some(sub) = self
                    .peers
                    .get(&peer)
                    .and_then(|p| p.sub_by_mid(request.mid))
                {
                    self.forward
                        .handle_input(now, forward::Input::KeyframeWanted { sub });
                    self.forward_outputs(now);
                }
            }
            Event::EgressBitrateEstimate(BweKind::Twcc { estimate, .. }) => {
                tracing::trace!(peer = peer.0, %estimate, "SFU downlink estimate");
                self.forward.handle_input(
                    now,
                    forward::Input::Estimate {
                        subscriber: peer,
                        bps: estimate.as_u64(),
                    },
                );
                self.forward_outputs(now);
            }
            Event::IceConnectionStateChange(state) => {
                tracing::debug!(peer = peer.0, ?state, "SFU ICE");
                if state == IceConnectionState::Disconnected {
                    // Kept: the client may come back (an ICE restart, or its network).
                }
            }
            Event::Connected => tracing::debug!(peer = peer.0, "SFU peer connected"),
            _ => {}
        }
    }

    fn forward_packet(&mut self, now: Instant, from: PeerId, packet: RtpPacket) {
        self.metrics.packets_in.fetch_add(1, Ordering::Relaxed);
        let ssrc = packet.header.ssrc;
        let pt = packet.header.payload_type;
        let route = match self.in_routes.get(&(from, ssrc)) {
            Some(r) if r.pt == pt => *r,
            _ => {
                let Some(r) = self.resolve(from, ssrc, pt) else {
                    return;
                };
                self.in_routes.insert((from, ssrc), r);
                r
            }
        };
        let payload = &packet.payload;
        let keyframe = route.codec.is_some_and(|c| starts_keyframe(c, payload));
        let vp8 = match route.codec {
            Some(VideoPayload::Vp8) => vp8_ids(payload),
            _ => None,
        };
        let meta = PacketMeta {
            track: route.track,
            layer: route.layer,
            seq: *packet.seq_no,
            time: packet.header.timestamp,
            keyframe,
            bytes: payload.len(),
            vp8,
            // str0m's level is -dBov (−127…0); RFC 6464's is its magnitude.
            audio_level: packet
                .header
                .ext_vals
                .audio_level
                .map(|l| l.unsigned_abs().min(127)),
        };
        let mut routes = std::mem::take(&mut self.routes);
        routes.clear();
        self.forward.route(now, &meta, &mut routes);
        let ext = ExtensionValues {
            audio_level: packet.header.ext_vals.audio_level,
            voice_activity: packet.header.ext_vals.voice_activity,
            video_orientation: packet.header.ext_vals.video_orientation,
            ..Default::default()
        };
        let video = route.codec.is_some();
        for r in &routes {
            let Some(s) = self.peers.get_mut(&r.subscriber) else {
                continue;
            };
            let Some((mid, out_pt)) = s.out_route(r.sub, pt, route.params) else {
                continue;
            };
            let mut write = RtpWrite::new(
                out_pt,
                r.seq.into(),
                r.time,
                packet.timestamp,
                packet.payload.clone(),
            )
            .marker(packet.header.marker)
            .ext_vals(ext.clone())
            .nackable(video);
            if let (Some(ids), Some(VideoPayload::Vp8)) = (r.vp8, route.codec)
                && let Ok(descriptor) = Vp8Descriptor::parse(payload)
            {
                let mut patch = descriptor.patch().picture_id(ids.picture_id);
                if let Some(tl0) = ids.tl0 {
                    patch = patch.tl0_pic_idx(tl0);
                }
                if let Ok(patch) = patch.build() {
                    write = write.vp8_patch(patch);
                }
            }
            let mut direct = s.rtc.direct_api();
            let Some(stream) = direct.stream_tx_by_mid(mid, None) else {
                continue;
            };
            stream.write_rtp(write);
            self.metrics
                .packets_forwarded
                .fetch_add(1, Ordering::Relaxed);
            self.metrics
                .bytes_forwarded
                .fetch_add(payload.len() as u64, Ordering::Relaxed);
            self.dirty.push(r.subscriber);
        }
        self.routes = routes;
        self.forward_outputs(now);
    }

    /// Which track and layer an SSRC of `from` carries, and its codec.
    fn resolve(&mut self, from: PeerId, ssrc: Ssrc, pt: Pt) -> Option<InRoute> {
        let p = self.peers.get_mut(&from)?;
        let (mid, rid) = {
            let mut direct = p.rtc.direct_api();
            let stream = direct.stream_rx(&ssrc)?;
            (stream.mid(), stream.rid())
        };
        let track = p.published.get(&mid)?;
        let layer = Layer::from_rid(rid.as_deref().map(str::trim))?;
        let params = p.rtc.codec_config().find(|c| c.pt() == pt).copied();
        let codec = match track.kind {
            MediaKind::Audio => None,
            MediaKind::Video => Some(match params.map(|c| c.spec().codec) {
                Some(Codec::Vp8) => VideoPayload::Vp8,
                Some(Codec::H264) => VideoPayload::H264,
                _ => VideoPayload::Opaque,
            }),
        };
        Some(InRoute {
            track: track.track,
            layer,
            pt,
            codec,
            params,
        })
    }

    /// Carries out what the forwarding core decided.
    fn forward_outputs(&mut self, now: Instant) {
        while let Some(output) = self.forward.poll_output() {
            match output {
                forward::Output::RequestKeyframe {
                    publisher,
                    track,
                    layer,
                } => {
                    let Some(info) = self.tracks.get(&track) else {
                        continue;
                    };
                    let rid = info.simulcast.then(|| layer.rid().into());
                    let mid = info.mid;
                    if let Some(p) = self.peers.get_mut(&publisher) {
                        tracing::debug!(publisher = publisher.0, %mid, ?rid, "SFU keyframe request");
                        if let Some(stream) = p.rtc.direct_api().stream_rx_by_mid(mid, rid) {
                            stream.request_keyframe(KeyframeRequestKind::Pli);
                            self.metrics
                                .keyframe_requests
                                .fetch_add(1, Ordering::Relaxed);
                            // str0m writes the PLI on its next timeout; make that now rather
                            // than at the publisher's next deadline. The pass's own `now`: str0m
                            // must never see time go back (a later input of this pass carries
                            // it), and a fresh clock reading here did that.
                            if let Err(e) = p.rtc.handle_input(Input::Timeout(now)) {
                                tracing::debug!(publisher = publisher.0, error = %e, "SFU timeout failed");
                            }
                        }
                        self.dirty.push(publisher);
                    }
                }
                forward::Output::LayerChanged {
                    sub,
                    subscriber,
                    layer,
                } => {
                    self.metrics.layer_switches.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(sub = sub.0, subscriber = subscriber.0, ?layer, "SFU layer");
                }
            }
        }
    }
}

/// VP8's picture ids in a payload descriptor, with their width.
fn vp8_ids(payload: &[u8]) -> Option<Vp8Ids> {
    let descriptor = Vp8Descriptor::parse(payload).ok()?;
    let picture_id = descriptor.picture_id()?;
    // X, then I, then M (15 bits) in the first byte of the picture id.
    let wide = payload.get(2).is_some_and(|b| b & 0x80 != 0);
    Some(Vp8Ids {
        picture_id,
        wide,
        tl0: descriptor.tl0_pic_idx(),
    })
}

#[cfg(test)]
mod tests {
    use super::forwards;
    use classroom_wire::MediaSource::{Audio, Camera, Screen};

    #[test]
    fn a_class_that_keeps_students_cameras_for_instructors_withholds_only_those_from_students() {
        // (source, publisher a student, subscriber a student)
        for (source, publisher, subscriber) in [
            (Camera, true, false),
            (Camera, false, true),
            (Camera, false, false),
            (Audio, true, true),
            (Screen, true, true),
        ] {
            assert!(forwards(source, publisher, subscriber, true));
            assert!(forwards(source, publisher, subscriber, false));
        }
        assert!(!forwards(Camera, true, true, true));
        assert!(forwards(Camera, true, true, false));
    }
}
