//! The SFU's forwarding core, sans-IO: which published tracks each subscriber receives, which
//! simulcast layer of each (from the size its tile shows and its downlink estimate), where a
//! layer switch may happen (a keyframe of the new layer), how sequence numbers, timestamps and
//! VP8 picture ids are rewritten so a switch is seamless, and when a publisher is asked for a
//! keyframe (throttled per layer, one request shared by everyone who needs it).
//!
//! No sockets, no WebRTC types, no clock: control changes come in as [`Input`]s with the time,
//! each media packet's description goes through [`Forwarder::route`] (the hot path: it fills
//! the caller's buffer, allocating nothing), and what the drivers must do comes out of
//! [`Forwarder::poll_output`]; [`Forwarder::poll_timeout`] says when to call again.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use super::speakers::{self, AudioSelection, Loudness};

/// A client of the SFU (one peer connection).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct PeerId(pub(crate) u64);

/// A track one client publishes (its microphone, camera or screen).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct TrackId(pub(crate) u64);

/// One subscriber's reception of one track.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct SubId(pub(crate) u64);

/// A simulcast layer. A track sent without simulcast has one layer, `Full`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum Layer {
    /// A quarter of the full size (rid `q`).
    Quarter = 0,
    /// Half the full size (rid `h`).
    Half = 1,
    /// The full size (rid `f`), or the only layer.
    Full = 2,
}

impl Layer {
    pub(crate) const ALL: [Layer; 3] = [Layer::Quarter, Layer::Half, Layer::Full];

    /// The layer a rid names (`docs/protocol.md`: `q`, `h`, `f`); none for any other rid.
    pub(crate) fn from_rid(rid: Option<&str>) -> Option<Layer> {
        match rid {
            None | Some("f") => Some(Layer::Full),
            Some("h") => Some(Layer::Half),
            Some("q") => Some(Layer::Quarter),
            Some(_) => None,
        }
    }

    pub(crate) fn rid(self) -> &'static str {
        match self {
            Layer::Quarter => "q",
            Layer::Half => "h",
            Layer::Full => "f",
        }
    }

    fn index(self) -> usize {
        self as usize
    }

    /// This layer's picture height when the full one is `full` tall.
    fn height(self, full: u32) -> u32 {
        full >> (2 - self.index())
    }
}

/// What a published track is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TrackKind {
    Audio,
    /// Video with the layers its publisher sends (`layers[layer as usize]`) and the height
    /// of its full layer.
    Video {
        layers: [bool; 3],
        full_height: u32,
    },
}

/// VP8's picture ids in one packet, rewritten with the sequence numbers on a switch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Vp8Ids {
    pub(crate) picture_id: u16,
    /// 15-bit picture ids (else 7-bit).
    pub(crate) wide: bool,
    pub(crate) tl0: Option<u8>,
}

/// One arriving media packet, as much of it as the routing needs.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PacketMeta {
    pub(crate) track: TrackId,
    pub(crate) layer: Layer,
    /// Extended sequence number (no wrap).
    pub(crate) seq: u64,
    pub(crate) time: u32,
    /// The packet starts a keyframe (`keyframe.rs`); always false for audio.
    pub(crate) keyframe: bool,
    pub(crate) bytes: usize,
    pub(crate) vp8: Option<Vp8Ids>,
    /// An audio packet's level (RFC 6464: 0 loudest, 127 silence), when it carries one.
    pub(crate) audio_level: Option<u8>,
}

/// Where one packet goes, with what it must say there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Route {
    pub(crate) sub: SubId,
    pub(crate) subscriber: PeerId,
    pub(crate) seq: u64,
    pub(crate) time: u32,
    pub(crate) vp8: Option<Vp8Ids>,
}

/// Control changes, with the time they happen at.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Input {
    Publish {
        track: TrackId,
        publisher: PeerId,
        kind: TrackKind,
    },
    Unpublish {
        track: TrackId,
    },
    Subscribe {
        sub: SubId,
        subscriber: PeerId,
        track: TrackId,
    },
    Unsubscribe {
        sub: SubId,
    },
    /// The subscriber shows this track at most `max_height` pixels tall.
    WantHeight {
        subscriber: PeerId,
        track: TrackId,
        max_height: u32,
    },
    /// The subscriber's downlink estimate (TWCC), in bits per second.
    Estimate {
        subscriber: PeerId,
        bps: u64,
    },
    /// The subscriber lost a picture (its PLI or FIR).
    KeyframeWanted {
        sub: SubId,
    },
    /// The subscription's m-line just opened: what was forwarded before went nowhere, so it
    /// starts again at a keyframe.
    Opened {
        sub: SubId,
    },
    Timeout,
}

/// What the drivers must do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Output {
    /// Ask the publisher for a keyframe of this layer (PLI).
    RequestKeyframe {
        publisher: PeerId,
        track: TrackId,
        layer: Layer,
    },
    /// A subscription now receives this layer (none: nothing is forwarded to it for now).
    LayerChanged {
        sub: SubId,
        subscriber: PeerId,
        layer: Option<Layer>,
    },
}

/// At most one keyframe request per layer in this time, however many ask.
pub(crate) const KEYFRAME_REQUEST_INTERVAL: Duration = Duration::from_millis(500);
/// A layer with no packet for this long is not being sent (the publisher paused it).
const LAYER_IDLE: Duration = Duration::from_millis(1500);
/// How often the layers are measured and the choices reviewed.
const REVIEW_INTERVAL: Duration = Duration::from_millis(500);
/// A subscription that has received nothing for this long starts on a lower layer's keyframe
/// if that comes before its target's.
const LOWER_LAYER_GRACE: Duration = Duration::from_millis(100);
/// A subscriber that asked for nothing gets the layer for a tile this tall.
const DEFAULT_WANTED_HEIGHT: u32 = 360;
/// The clock of video RTP timestamps.
const VIDEO_CLOCK_HZ: u64 = 90_000;
/// The clock of Opus RTP timestamps.
const AUDIO_CLOCK_HZ: u64 = 48_000;

#[derive(Debug, Default, Clone, Copy)]
struct LayerState {
    last_packet: Option<Instant>,
    /// Bytes since `window_start`, and the rate they made over the last finished window.
    window_bytes: u64,
    bps: u64,
    last_keyframe_request: Option<Instant>,
    /// A request the throttle refused: sent when it allows, unless a keyframe came first.
    keyframe_deferred: bool,
}

#[derive(Debug)]
struct Published {
    publisher: PeerId,
    kind: TrackKind,
    layers: [LayerState; 3],
    subs: Vec<SubId>,
    /// How loud an audio track is now.
    loudness: Loudness,
}

#[derive(Debug)]
struct Subscription {
    subscriber: PeerId,
    track: TrackId,
    wanted_height: u32,
    /// The layer being forwarded.
    current: Option<Layer>,
    /// The layer chosen; forwarded from its next keyframe on.
    target: Option<Layer>,
    /// Since when nothing has flowed to the viewer (a new or reopened subscription).
    empty_since: Instant,
    /// Audio: forwarded (in a large class only the loudest few are), and whether its next
    /// packet resumes it after a pause (numbered on, its timestamp moved with the clock).
    heard: bool,
    resume: bool,
    rewrite: Rewrite,
}

/// One subscription's layer choice: the layers sent now (lowest first, with their rates)
/// and the one picked.
struct Choice {
    sub: SubId,
    sent: Vec<(Layer, u64)>,
    pick: usize,
}

impl Choice {
    fn bps(&self) -> u64 {
        self.sent[self.pick].1
    }
}

/// Counters for `/metrics`.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ForwardStats {
    pub(crate) layer_switches: u64,
    pub(crate) keyframe_requests: u64,
}

/// The forwarding state of one SFU shard.
pub(crate) struct Forwarder {
    tracks: HashMap<TrackId, Published>,
    subs: HashMap<SubId, Subscription>,
    /// Downlink estimates, and what each subscriber asked for before a track existed.
    estimates: HashMap<PeerId, u64>,
    wanted: HashMap<(PeerId, TrackId), u32>,
    outputs: VecDeque<Output>,
    window_start: Instant,
    next_review: Instant,
    /// Layers with a deferred keyframe request, and when the throttle lets it go.
    deferred: Vec<(Instant, TrackId, Layer)>,
    audio: AudioSelection,
    next_speakers: Instant,
    /// Audio subscriptions not forwarded now (their speaker is not among the loudest).
    withheld: usize,
    stats: ForwardStats,
}

impl Forwarder {
    pub(crate) fn new(now: Instant, audio: AudioSelection) -> Self {
        Forwarder {
            tracks: HashMap::new(),
            subs: HashMap::new(),
            estimates: HashMap::new(),
            wanted: HashMap::new(),
            outputs: VecDeque::new(),
            window_start: now,
            next_review: now + REVIEW_INTERVAL,
            deferred: Vec::new(),
            audio,
            next_speakers: now + speakers::REVIEW,
            withheld: 0,
            stats: ForwardStats::default(),
        }
    }

    #[cfg(test)]
    pub(crate) fn stats(&self) -> ForwardStats {
        self.stats
    }

    #[cfg(test)]
    pub(crate) fn tracks(&self) -> usize {
        self.tracks.len()
    }

    /// The layer a subscription receives now.
    #[cfg(test)]
    pub(crate) fn current_layer(&self, sub: SubId) -> Option<Layer> {
        self.subs.get(&sub).and_then(|s| s.current)
    }

    pub(crate) fn handle_input(&mut self, now: Instant, input: Input) {
        match input {
            Input::Publish {
                track,
                publisher,
                kind,
            } => {
                self.tracks.insert(
                    track,
                    Published {
                        publisher,
                        kind,
                        layers: [LayerState::default(); 3],
                        subs: Vec::new(),
                        loudness: Loudness::default(),
                    },
                );
            }
            Input::Unpublish { track } => {
                if let Some(published) = self.tracks.remove(&track) {
                    for sub in published.subs {
                        self.subs.remove(&sub);
                    }
                }
                self.wanted.retain(|(_, t), _| *t != track);
                self.deferred.retain(|(_, t, _)| *t != track);
            }
            Input::Subscribe {
                sub,
                subscriber,
                track,
            } => {
                let Some(published) = self.tracks.get_mut(&track) else {
                    return;
                };
                published.subs.push(sub);
                let audio = published.kind == TrackKind::Audio;
                let wanted_height = self
                    .wanted
                    .get(&(subscriber, track))
                    .copied()
                    .unwrap_or(DEFAULT_WANTED_HEIGHT);
                self.subs.insert(
                    sub,
                    Subscription {
                        subscriber,
                        track,
                        wanted_height,
                        // Audio has no layers and needs no keyframe: it flows at once.
                        current: audio.then_some(Layer::Full),
                        target: audio.then_some(Layer::Full),
                        empty_since: now,
                        heard: true,
                        resume: false,
                        rewrite: Rewrite::default(),
                    },
                );
                if !audio {
                    self.review_subscriber(now, subscriber);
                }
            }
            Input::Unsubscribe { sub } => {
                if let Some(s) = self.subs.remove(&sub)
                    && let Some(published) = self.tracks.get_mut(&s.track)
                {
                    published.subs.retain(|x| *x != sub);
                }
            }
            Input::WantHeight {
                subscriber,
                track,
                max_height,
            } => {
                self.wanted.insert((subscriber, track), max_height);
                let mut changed = false;
                if let Some(published) = self.tracks.get(&track) {
                    for sub in &published.subs {
                        if let Some(s) = self.subs.get_mut(sub)
                            && s.subscriber == subscriber
                        {
                            s.wanted_height = max_height;
                            changed = true;
                        }
                    }
                }
                if changed {
                    self.review_subscriber(now, subscriber);
                }
            }
            Input::Estimate { subscriber, bps } => {
                self.estimates.insert(subscriber, bps);
                self.review_subscriber(now, subscriber);
            }
            Input::KeyframeWanted { sub } => {
                let Some(s) = self.subs.get(&sub) else {
                    return;
                };
                if let Some(layer) = s.current.or(s.target) {
                    let track = s.track;
                    self.request_keyframe(now, track, layer);
                }
            }
            Input::Opened { sub } => {
                let Some(s) = self.subs.get_mut(&sub) else {
                    return;
                };
                if let TrackKind::Video { .. } = self
                    .tracks
                    .get(&s.track)
                    .map(|t| t.kind)
                    .unwrap_or(TrackKind::Audio)
                {
                    s.current = None;
                    s.empty_since = now;
                    if let Some(layer) = s.target {
                        let track = s.track;
                        self.request_keyframe(now, track, layer);
                    }
                }
            }
            Input::Timeout => {
                self.send_deferred(now);
                if now >= self.next_review {
                    self.review(now);
                }
                if now >= self.next_speakers {
                    self.review_speakers(now);
                }
            }
        }
    }

    /// Forgets a subscriber's estimate and requests (it left; its subscriptions are
    /// unsubscribed one by one).
    pub(crate) fn forget_subscriber(&mut self, subscriber: PeerId) {
        self.estimates.remove(&subscriber);
        self.wanted.retain(|(p, _), _| *p != subscriber);
    }

    /// Where one packet goes: its routes are appended to `out`. A packet of a layer that a
    /// subscription waits for switches it there when the packet starts a keyframe; so does
    /// a keyframe of a lower layer while the subscription receives nothing yet.
    pub(crate) fn route(&mut self, now: Instant, packet: &PacketMeta, out: &mut Vec<Route>) {
        let Some(published) = self.tracks.get_mut(&packet.track) else {
            return;
        };
        let layer = &mut published.layers[packet.layer.index()];
        let newly_active = layer
            .last_packet
            .is_none_or(|t| now.duration_since(t) > LAYER_IDLE);
        layer.last_packet = Some(now);
        layer.window_bytes += packet.bytes as u64;
        if published.kind == TrackKind::Audio {
            published.loudness.observe(now, packet.audio_level);
        }
        if packet.keyframe && layer.keyframe_deferred {
            // The keyframe came: whoever asked has it.
            layer.keyframe_deferred = false;
            self.deferred
                .retain(|(_, t, l)| (*t, *l) != (packet.track, packet.layer));
        }
        for sub_id in &published.subs {
            let Some(sub) = self.subs.get_mut(sub_id) else {
                continue;
            };
            if !sub.heard {
                continue;
            }
            if sub.resume {
                sub.resume = false;
                sub.rewrite.switch(now, packet, AUDIO_CLOCK_HZ);
            }
            if sub.current != Some(packet.layer) {
                // The target's keyframe switches; when nothing has flowed to the viewer for a
                // while, so does one of a lower layer (a picture now, the sharper one at its
                // keyframe). Not at once: a publisher that starts sends keyframes on every
                // layer together, and the target's is then a packet or two away.
                let takes = sub.target == Some(packet.layer)
                    || (sub.current.is_none()
                        && sub.target.is_some_and(|t| packet.layer < t)
                        && now.duration_since(sub.empty_since) >= LOWER_LAYER_GRACE);
                if !takes || !packet.keyframe {
                    continue;
                }
                sub.rewrite.switch(now, packet, VIDEO_CLOCK_HZ);
                sub.current = Some(packet.layer);
                self.stats.layer_switches += 1;
                self.outputs.push_back(Output::LayerChanged {
                    sub: *sub_id,
                    subscriber: sub.subscriber,
                    layer: sub.current,
                });
            }
            if let Some((seq, time, vp8)) = sub.rewrite.map(now, packet) {
                out.push(Route {
                    sub: *sub_id,
                    subscriber: sub.subscriber,
                    seq,
                    time,
                    vp8,
                });
            }
        }
        if newly_active && matches!(published.kind, TrackKind::Video { .. }) {
            // A layer (re)appeared: some subscriber may prefer it.
            let subscribers: Vec<PeerId> = published
                .subs
                .iter()
                .filter_map(|s| self.subs.get(s).map(|s| s.subscriber))
                .collect();
            for subscriber in subscribers {
                self.review_subscriber(now, subscriber);
            }
        }
    }

    pub(crate) fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    pub(crate) fn poll_timeout(&self) -> Instant {
        self.deferred
            .iter()
            .map(|(at, _, _)| *at)
            .fold(self.next_review.min(self.next_speakers), Instant::min)
    }

    /// Audio subscriptions not forwarded now, for `/metrics`.
    pub(crate) fn withheld(&self) -> usize {
        self.withheld
    }

    /// Chooses, for each subscriber, the speakers it hears (`speakers.rs`).
    fn review_speakers(&mut self, now: Instant) {
        self.next_speakers = now + speakers::REVIEW;
        let mut by_subscriber: HashMap<PeerId, Vec<(SubId, (f64, bool, bool))>> = HashMap::new();
        for (id, sub) in &self.subs {
            let Some(published) = self.tracks.get(&sub.track) else {
                continue;
            };
            if published.kind != TrackKind::Audio {
                continue;
            }
            by_subscriber.entry(sub.subscriber).or_default().push((
                *id,
                (
                    published.loudness.value(now),
                    published.loudness.measured,
                    sub.heard,
                ),
            ));
        }
        let mut withheld = 0;
        for mut candidates in by_subscriber.into_values() {
            // A stable order for equals: the order of subscribing.
            candidates.sort_unstable_by_key(|(id, _)| *id);
            let facts: Vec<(f64, bool, bool)> = candidates.iter().map(|(_, c)| *c).collect();
            let heard = speakers::choose(self.audio, &facts);
            for ((id, _), heard) in candidates.iter().zip(heard) {
                let Some(sub) = self.subs.get_mut(id) else {
                    continue;
                };
                if heard && !sub.heard {
                    sub.resume = true;
                }
                sub.heard = heard;
                withheld += usize::from(!heard);
            }
        }
        self.withheld = withheld;
    }

    /// Sends the deferred keyframe requests whose throttle has passed.
    fn send_deferred(&mut self, now: Instant) {
        if self.deferred.iter().all(|(at, _, _)| *at > now) {
            return;
        }
        let due: Vec<(TrackId, Layer)> = self
            .deferred
            .iter()
            .filter(|(at, _, _)| *at <= now)
            .map(|(_, t, l)| (*t, *l))
            .collect();
        self.deferred.retain(|(at, _, _)| *at > now);
        for (track, layer) in due {
            if let Some(published) = self.tracks.get_mut(&track) {
                published.layers[layer.index()].keyframe_deferred = false;
            }
            self.request_keyframe(now, track, layer);
        }
    }

    /// Measures every layer's rate and reviews every subscriber's choices; asks again for
    /// the keyframes that switches still wait for.
    fn review(&mut self, now: Instant) {
        let window = now
            .duration_since(self.window_start)
            .as_secs_f64()
            .max(0.001);
        for published in self.tracks.values_mut() {
            for layer in &mut published.layers {
                layer.bps = (layer.window_bytes as f64 * 8.0 / window) as u64;
                layer.window_bytes = 0;
            }
        }
        self.window_start = now;
        self.next_review = now + REVIEW_INTERVAL;
        let mut subscribers: Vec<PeerId> = self.subs.values().map(|s| s.subscriber).collect();
        subscribers.sort_unstable();
        subscribers.dedup();
        for subscriber in subscribers {
            self.review_subscriber(now, subscriber);
        }
        let waiting: Vec<(TrackId, Layer)> = self
            .subs
            .values()
            .filter(|s| s.target.is_some() && s.current != s.target)
            .filter_map(|s| Some((s.track, s.target?)))
            .collect();
        for (track, layer) in waiting {
            self.request_keyframe(now, track, layer);
        }
    }

    /// Chooses the layer of each of one subscriber's video subscriptions: the smallest that
    /// fills its tile, then, while the sum is over the downlink estimate, one step down for
    /// the dearest that can go down.
    fn review_subscriber(&mut self, now: Instant, subscriber: PeerId) {
        let estimate = self.estimates.get(&subscriber).copied();
        let mut choices: Vec<Choice> = Vec::new();
        for (id, sub) in &self.subs {
            if sub.subscriber != subscriber {
                continue;
            }
            let Some(published) = self.tracks.get(&sub.track) else {
                continue;
            };
            let TrackKind::Video {
                layers,
                full_height,
            } = published.kind
            else {
                continue;
            };
            let sent: Vec<(Layer, u64)> = Layer::ALL
                .into_iter()
                .filter(|l| layers[l.index()])
                .filter(|l| {
                    published.layers[l.index()]
                        .last_packet
                        .is_some_and(|t| now.duration_since(t) <= LAYER_IDLE)
                })
                .map(|l| (l, published.layers[l.index()].bps))
                .collect();
            if sent.is_empty() {
                continue;
            }
            let fits = sent
                .iter()
                .position(|(l, _)| l.height(full_height) >= sub.wanted_height)
                .unwrap_or(sent.len() - 1);
            choices.push(Choice {
                sub: *id,
                sent,
                pick: fits,
            });
        }
        if let Some(budget) = estimate {
            while choices.iter().map(Choice::bps).sum::<u64>() > budget {
                let dearest = choices
                    .iter_mut()
                    .filter(|c| c.pick > 0)
                    .max_by_key(|c| c.bps());
                match dearest {
                    Some(c) => c.pick -= 1,
                    None => break,
                }
            }
        }
        for choice in choices {
            let layer = choice.sent[choice.pick].0;
            let Some(sub) = self.subs.get_mut(&choice.sub) else {
                continue;
            };
            if sub.target == Some(layer) {
                continue;
            }
            sub.target = Some(layer);
            if sub.current != Some(layer) {
                let track = sub.track;
                self.request_keyframe(now, track, layer);
            }
        }
    }

    fn request_keyframe(&mut self, now: Instant, track: TrackId, layer: Layer) {
        let Some(published) = self.tracks.get_mut(&track) else {
            return;
        };
        if published.kind == TrackKind::Audio {
            return;
        }
        let state = &mut published.layers[layer.index()];
        if let Some(last) = state.last_keyframe_request
            && now.duration_since(last) < KEYFRAME_REQUEST_INTERVAL
        {
            // Refused now, not forgotten: a switch or a recovering viewer must not wait for
            // the next review.
            if !state.keyframe_deferred {
                state.keyframe_deferred = true;
                self.deferred
                    .push((last + KEYFRAME_REQUEST_INTERVAL, track, layer));
            }
            return;
        }
        state.last_keyframe_request = Some(now);
        self.stats.keyframe_requests += 1;
        self.outputs.push_back(Output::RequestKeyframe {
            publisher: published.publisher,
            track,
            layer,
        });
    }
}

/// Keeps one subscription's stream continuous across layer switches: after a switch the
/// next packet carries the next sequence number, a timestamp that advanced with the clock,
/// and the next VP8 picture id; packets of the new layer from before the switch are dropped.
#[derive(Debug, Default)]
struct Rewrite {
    seq_delta: u64,
    time_delta: u32,
    picture_id_delta: u16,
    tl0_delta: u8,
    /// The first sequence number forwarded since the last switch.
    floor: u64,
    last: Option<LastOut>,
    /// The first packet set the numbering.
    started: bool,
}

#[derive(Debug, Clone, Copy)]
struct LastOut {
    seq: u64,
    time: u32,
    at: Instant,
    vp8: Option<Vp8Ids>,
}

impl Rewrite {
    /// The first packet forwarded: numbered within the first 2^16, whatever the publisher's
    /// count (its rollover counter may be past 0; a receiver's SRTP starts from 0).
    fn start(&mut self, packet: &PacketMeta) {
        self.started = true;
        self.seq_delta = (packet.seq & 0xffff).wrapping_sub(packet.seq);
        self.floor = packet.seq.wrapping_add(self.seq_delta);
    }

    fn switch(&mut self, now: Instant, packet: &PacketMeta, clock_hz: u64) {
        let Some(last) = self.last else {
            self.start(packet);
            return;
        };
        self.seq_delta = last.seq.wrapping_add(1).wrapping_sub(packet.seq);
        let elapsed = now.duration_since(last.at);
        let ticks = ((elapsed.as_micros() as u64 * clock_hz) / 1_000_000).max(1);
        self.time_delta = last
            .time
            .wrapping_add(ticks as u32)
            .wrapping_sub(packet.time);
        if let (Some(before), Some(now_ids)) = (last.vp8, packet.vp8) {
            self.picture_id_delta = before
                .picture_id
                .wrapping_add(1)
                .wrapping_sub(now_ids.picture_id);
            if let (Some(a), Some(b)) = (before.tl0, now_ids.tl0) {
                self.tl0_delta = a.wrapping_add(1).wrapping_sub(b);
            }
        }
        self.floor = packet.seq.wrapping_add(self.seq_delta);
    }

    fn map(&mut self, now: Instant, packet: &PacketMeta) -> Option<(u64, u32, Option<Vp8Ids>)> {
        if !self.started {
            self.start(packet);
        }
        let seq = packet.seq.wrapping_add(self.seq_delta);
        // Signed distances: a count that stepped back below zero wraps, and must not pass.
        if (seq.wrapping_sub(self.floor) as i64) < 0 {
            return None;
        }
        let time = packet.time.wrapping_add(self.time_delta);
        let vp8 = packet.vp8.map(|ids| {
            let mask = if ids.wide { 0x7fff } else { 0x7f };
            Vp8Ids {
                picture_id: ids.picture_id.wrapping_add(self.picture_id_delta) & mask,
                wide: ids.wide,
                tl0: ids.tl0.map(|t| t.wrapping_add(self.tl0_delta)),
            }
        });
        if self
            .last
            .is_none_or(|l| (seq.wrapping_sub(l.seq) as i64) > 0)
        {
            self.last = Some(LastOut {
                seq,
                time,
                at: now,
                vp8,
            });
        }
        Some((seq, time, vp8))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PUB: PeerId = PeerId(1);
    const VIEWER: PeerId = PeerId(2);
    const CAMERA: TrackId = TrackId(10);
    const SUB: SubId = SubId(100);

    fn simulcast() -> TrackKind {
        TrackKind::Video {
            layers: [true; 3],
            full_height: 720,
        }
    }

    /// A scripted publisher: three layers at 30 fps, a keyframe on each every `gop` frames.
    struct Script {
        t0: Instant,
        seq: [u64; 3],
        frame: u64,
    }

    impl Script {
        fn new(t0: Instant) -> Self {
            Script {
                t0,
                seq: [1000, 5000, 9000],
                frame: 0,
            }
        }

        /// One frame on every layer: `(now, packets)`; `key` says which layers start a keyframe.
        fn frame(&mut self, key: [bool; 3]) -> (Instant, Vec<PacketMeta>) {
            self.frame += 1;
            let now = self.t0 + Duration::from_millis(33 * self.frame);
            let packets = Layer::ALL
                .into_iter()
                .map(|layer| {
                    let i = layer.index();
                    self.seq[i] += 1;
                    PacketMeta {
                        track: CAMERA,
                        layer,
                        seq: self.seq[i],
                        time: (self.frame * 3000) as u32 + 7 * i as u32,
                        keyframe: key[i],
                        bytes: [200, 600, 1800][i],
                        vp8: Some(Vp8Ids {
                            picture_id: (100 * i as u16 + self.frame as u16) & 0x7fff,
                            wide: true,
                            tl0: None,
                        }),
                        audio_level: None,
                    }
                })
                .collect();
            (now, packets)
        }
    }

    fn setup(t0: Instant) -> Forwarder {
        let mut f = Forwarder::new(t0, AudioSelection::default());
        f.handle_input(
            t0,
            Input::Publish {
                track: CAMERA,
                publisher: PUB,
                kind: simulcast(),
            },
        );
        f
    }

    /// The start of most tests below: the camera published, one frame of it through, and then
    /// the viewer subscribed (`SUB`); also when it subscribed.
    fn subscribed(t0: Instant) -> (Forwarder, Script, Instant) {
        let mut f = setup(t0);
        let mut script = Script::new(t0);
        let (now, packets) = script.frame([false; 3]);
        deliver(&mut f, now, &packets);
        f.handle_input(
            now,
            Input::Subscribe {
                sub: SUB,
                subscriber: VIEWER,
                track: CAMERA,
            },
        );
        (f, script, now)
    }

    fn deliver(f: &mut Forwarder, now: Instant, packets: &[PacketMeta]) -> Vec<(Layer, Route)> {
        let mut out = Vec::new();
        let mut all = Vec::new();
        for p in packets {
            out.clear();
            f.route(now, p, &mut out);
            all.extend(out.iter().map(|r| (p.layer, *r)));
        }
        f.handle_input(now, Input::Timeout);
        all
    }

    fn drain(f: &mut Forwarder) -> Vec<Output> {
        std::iter::from_fn(|| f.poll_output()).collect()
    }

    #[test]
    fn a_subscriber_waits_for_a_keyframe_of_the_layer_its_tile_needs_and_the_publisher_is_asked_once()
     {
        let t0 = Instant::now();
        let mut f = setup(t0);
        let mut script = Script::new(t0);
        // The layers flow before anyone subscribes.
        let (now, packets) = script.frame([false; 3]);
        deliver(&mut f, now, &packets);
        f.handle_input(
            now,
            Input::Subscribe {
                sub: SUB,
                subscriber: VIEWER,
                track: CAMERA,
            },
        );
        // No size asked: the 360p layer (half) is chosen and its keyframe requested.
        let outputs = drain(&mut f);
        assert_eq!(
            outputs,
            vec![Output::RequestKeyframe {
                publisher: PUB,
                track: CAMERA,
                layer: Layer::Half
            }]
        );
        // Deltas are not forwarded, and a second viewer's need does not ask again so soon.
        for _ in 0..3 {
            let (now, packets) = script.frame([false; 3]);
            assert!(deliver(&mut f, now, &packets).is_empty());
        }
        f.handle_input(now, Input::KeyframeWanted { sub: SUB });
        assert!(
            drain(&mut f).is_empty(),
            "throttled: {KEYFRAME_REQUEST_INTERVAL:?}"
        );
        // The keyframe of the half layer starts the flow; only that layer is forwarded.
        let (now, packets) = script.frame([false, true, false]);
        let routes = deliver(&mut f, now, &packets);
        assert_eq!(routes.len(), 1);
        assert_eq!(routes[0].0, Layer::Half);
        assert_eq!(f.current_layer(SUB), Some(Layer::Half));
        assert!(drain(&mut f).contains(&Output::LayerChanged {
            sub: SUB,
            subscriber: VIEWER,
            layer: Some(Layer::Half)
        }));
    }

    #[test]
    fn a_keyframe_request_the_throttle_refuses_goes_out_when_it_allows_unless_a_keyframe_came() {
        let t0 = Instant::now();
        let (mut f, mut script, asked) = subscribed(t0);
        let half = Output::RequestKeyframe {
            publisher: PUB,
            track: CAMERA,
            layer: Layer::Half,
        };
        assert_eq!(drain(&mut f), vec![half.clone()]);
        // The keyframe is lost; the viewer asks again 100 ms later: refused by the throttle,
        // and the core's next deadline is when the throttle lets it go.
        let later = asked + Duration::from_millis(100);
        f.handle_input(later, Input::KeyframeWanted { sub: SUB });
        assert!(drain(&mut f).is_empty());
        let due = asked + KEYFRAME_REQUEST_INTERVAL;
        assert!(f.poll_timeout() <= due);
        f.handle_input(due - Duration::from_millis(1), Input::Timeout);
        assert!(drain(&mut f).is_empty(), "not before the throttle allows");
        assert_eq!(
            f.poll_timeout(),
            due,
            "the next deadline is the deferred request"
        );
        f.handle_input(due, Input::Timeout);
        assert_eq!(drain(&mut f), vec![half.clone()], "sent, not forgotten");
        assert!(f.poll_timeout() > due);

        // Refused again; this time a keyframe of the layer arrives first: nothing more is sent.
        f.handle_input(
            due + Duration::from_millis(50),
            Input::KeyframeWanted { sub: SUB },
        );
        assert!(drain(&mut f).is_empty());
        let mut out = Vec::new();
        let (_, packets) = script.frame([false, true, false]);
        for p in &packets {
            f.route(due + Duration::from_millis(80), p, &mut out);
        }
        assert_eq!(f.current_layer(SUB), Some(Layer::Half));
        let next = due + KEYFRAME_REQUEST_INTERVAL;
        f.handle_input(next, Input::Timeout);
        assert!(
            !drain(&mut f).contains(&half),
            "the keyframe answered the request"
        );
        assert_eq!(f.stats().keyframe_requests, 2);
    }

    #[test]
    fn a_viewer_with_nothing_yet_starts_on_a_lower_layers_keyframe_and_moves_up_at_its_own() {
        let t0 = Instant::now();
        let (mut f, mut script, _) = subscribed(t0);
        // The target is the half layer. A quarter keyframe right away is not taken: the
        // half one may be a packet away.
        let (now, packets) = script.frame([true, false, false]);
        assert!(deliver(&mut f, now, &packets).is_empty());
        assert_eq!(f.current_layer(SUB), None);
        // Later, with still nothing for the viewer, it is: a picture now.
        for _ in 0..3 {
            let (now, packets) = script.frame([false; 3]);
            deliver(&mut f, now, &packets);
        }
        let (now, packets) = script.frame([true, false, false]);
        let routes = deliver(&mut f, now, &packets);
        assert_eq!(routes.len(), 1);
        assert_eq!(routes[0].0, Layer::Quarter);
        assert_eq!(f.current_layer(SUB), Some(Layer::Quarter));
        // The half layer's keyframe is still wanted, and switches when it comes.
        let (now, packets) = script.frame([false; 3]);
        let last = deliver(&mut f, now, &packets)[0].1;
        let (now, packets) = script.frame([false, true, false]);
        let routes = deliver(&mut f, now, &packets);
        let layers: Vec<Layer> = routes.iter().map(|(l, _)| *l).collect();
        assert_eq!(layers, [Layer::Quarter, Layer::Half]);
        assert_eq!(routes[1].1.seq, last.seq + 2, "numbered on");
        assert_eq!(f.current_layer(SUB), Some(Layer::Half));
    }

    #[test]
    fn a_larger_tile_switches_up_at_the_next_keyframe_with_continuous_numbers() {
        let t0 = Instant::now();
        let (mut f, mut script, _) = subscribed(t0);
        let (now, packets) = script.frame([true; 3]);
        let first = deliver(&mut f, now, &packets);
        assert_eq!(first.len(), 1);
        let (now, packets) = script.frame([false; 3]);
        let before = deliver(&mut f, now, &packets)[0].1;
        // The viewer makes the tile large: the full layer is asked for, and the half layer
        // keeps flowing until the full one's keyframe.
        f.handle_input(
            now,
            Input::WantHeight {
                subscriber: VIEWER,
                track: CAMERA,
                max_height: 720,
            },
        );
        assert!(drain(&mut f).contains(&Output::RequestKeyframe {
            publisher: PUB,
            track: CAMERA,
            layer: Layer::Full
        }));
        let (now, packets) = script.frame([false; 3]);
        let still = deliver(&mut f, now, &packets);
        assert_eq!(still[0].0, Layer::Half);
        assert_eq!(still[0].1.seq, before.seq + 1);
        let (now, packets) = script.frame([true, false, true]);
        // The half layer's packet of this frame arrives first and still goes; the full
        // layer's keyframe follows it, numbered on.
        let switched = deliver(&mut f, now, &packets);
        let layers: Vec<Layer> = switched.iter().map(|(l, _)| *l).collect();
        assert_eq!(layers, [Layer::Half, Layer::Full]);
        let last_half = switched[0].1;
        let (_, route) = switched[1];
        assert_eq!(last_half.seq, before.seq + 2);
        assert_eq!(route.seq, last_half.seq + 1, "the next sequence number");
        assert!(route.time > last_half.time, "the timestamp moves on");
        assert_eq!(
            route.vp8.map(|v| v.picture_id),
            last_half.vp8.map(|v| v.picture_id + 1),
            "the next picture id"
        );
        // And stays continuous on the new layer.
        let (now, packets) = script.frame([false; 3]);
        let next = deliver(&mut f, now, &packets);
        assert_eq!(next[0].1.seq, route.seq + 1);
        assert_eq!(next[0].1.time, route.time + 3000);
        assert_eq!(f.stats().layer_switches, 2);
    }

    #[test]
    fn a_low_downlink_estimate_steps_the_dearest_subscription_down() {
        let t0 = Instant::now();
        let mut f = setup(t0);
        let screen = TrackId(11);
        f.handle_input(
            t0,
            Input::Publish {
                track: screen,
                publisher: PUB,
                kind: simulcast(),
            },
        );
        let mut script = Script::new(t0);
        let mut now = t0;
        // Half a second of frames on both tracks, so the rates are measured.
        for _ in 0..16 {
            let (t, packets) = script.frame([false; 3]);
            now = t;
            let mut both = packets.clone();
            both.extend(packets.iter().map(|p| PacketMeta {
                track: screen,
                ..*p
            }));
            deliver(&mut f, now, &both);
        }
        for (sub, track) in [(SubId(1), CAMERA), (SubId(2), screen)] {
            f.handle_input(
                now,
                Input::WantHeight {
                    subscriber: VIEWER,
                    track,
                    max_height: 720,
                },
            );
            f.handle_input(
                now,
                Input::Subscribe {
                    sub,
                    subscriber: VIEWER,
                    track,
                },
            );
        }
        let wanted = |f: &Forwarder, sub| f.subs[&sub].target;
        assert_eq!(wanted(&f, SubId(1)), Some(Layer::Full));
        assert_eq!(wanted(&f, SubId(2)), Some(Layer::Full));
        // Full is about 436 kbit/s per track here, half about 145: 700 kbit/s fits one full.
        f.handle_input(
            now,
            Input::Estimate {
                subscriber: VIEWER,
                bps: 700_000,
            },
        );
        let layers = [wanted(&f, SubId(1)), wanted(&f, SubId(2))];
        assert!(
            layers.contains(&Some(Layer::Full)) && layers.contains(&Some(Layer::Half)),
            "{layers:?}"
        );
        // Far too little: both go to the lowest layer, never to nothing.
        f.handle_input(
            now,
            Input::Estimate {
                subscriber: VIEWER,
                bps: 10_000,
            },
        );
        assert_eq!(wanted(&f, SubId(1)), Some(Layer::Quarter));
        assert_eq!(wanted(&f, SubId(2)), Some(Layer::Quarter));
    }

    #[test]
    fn a_layer_the_publisher_stops_sending_is_left_for_one_that_flows() {
        let t0 = Instant::now();
        let mut f = setup(t0);
        let mut script = Script::new(t0);
        let (now, packets) = script.frame([true; 3]);
        deliver(&mut f, now, &packets);
        f.handle_input(
            now,
            Input::WantHeight {
                subscriber: VIEWER,
                track: CAMERA,
                max_height: 720,
            },
        );
        f.handle_input(
            now,
            Input::Subscribe {
                sub: SUB,
                subscriber: VIEWER,
                track: CAMERA,
            },
        );
        let (now, packets) = script.frame([true; 3]);
        deliver(&mut f, now, &packets);
        assert_eq!(f.current_layer(SUB), Some(Layer::Full));
        // The publisher's uplink drops the full layer: two seconds of the other two.
        let mut last = now;
        for _ in 0..60 {
            let (now, packets) = script.frame([false; 3]);
            last = now;
            deliver(&mut f, now, &packets[..2]);
        }
        assert_eq!(f.subs[&SUB].target, Some(Layer::Half));
        drain(&mut f);
        let (now, packets) = script.frame([false, true, false]);
        assert!(now > last);
        let routes = deliver(&mut f, now, &packets[..2]);
        assert_eq!(routes.len(), 1);
        assert_eq!(f.current_layer(SUB), Some(Layer::Half));
    }

    #[test]
    fn in_a_large_class_a_subscriber_hears_the_loudest_speakers_and_a_new_one_seamlessly() {
        let t0 = Instant::now();
        let selection = AudioSelection {
            above: 3,
            loudest: 2,
        };
        let mut f = Forwarder::new(t0, selection);
        // Five speakers, each publishing a microphone the viewer subscribes to.
        let mics: Vec<TrackId> = (0..5).map(|i| TrackId(50 + i)).collect();
        for (i, mic) in mics.iter().enumerate() {
            f.handle_input(
                t0,
                Input::Publish {
                    track: *mic,
                    publisher: PeerId(10 + i as u64),
                    kind: TrackKind::Audio,
                },
            );
            f.handle_input(
                t0,
                Input::Subscribe {
                    sub: SubId(200 + i as u64),
                    subscriber: VIEWER,
                    track: *mic,
                },
            );
        }
        // 20 ms Opus packets; speakers 1 and 3 talk (-20 dBov), the others are near silent
        // (-90 dBov); after 2 s speaker 4 starts talking louder (-10) and speaker 1 stops.
        let heard_after =
            |f: &mut Forwarder, from: u64, to: u64, level: &dyn Fn(usize, u64) -> u8| {
                let mut last = HashMap::new();
                for n in from..to {
                    let now = t0 + Duration::from_millis(20 * n);
                    for (i, mic) in mics.iter().enumerate() {
                        let packet = PacketMeta {
                            track: *mic,
                            layer: Layer::Full,
                            seq: 1000 * i as u64 + n,
                            time: (960 * n) as u32 + 77 * i as u32,
                            keyframe: false,
                            bytes: 80,
                            vp8: None,
                            audio_level: Some(level(i, n)),
                        };
                        let mut out = Vec::new();
                        f.route(now, &packet, &mut out);
                        for r in out {
                            last.insert(i, r);
                        }
                    }
                    f.handle_input(now, Input::Timeout);
                }
                last
            };
        let first = heard_after(&mut f, 0, 100, &|i, _| {
            if i == 1 || i == 3 { 20 } else { 90 }
        });
        // The last packets of the second second went to the two who talk, and no others.
        let late = heard_after(&mut f, 100, 101, &|i, _| {
            if i == 1 || i == 3 { 20 } else { 90 }
        });
        let mut who: Vec<usize> = late.keys().copied().collect();
        who.sort_unstable();
        assert_eq!(who, [1, 3]);
        assert_eq!(f.withheld(), 3);
        // Speaker 4 becomes the loudest and speaker 1 falls silent: within half a second 4
        // is heard instead of 1.
        let level = |i: usize, _| match i {
            3 => 20,
            4 => 10,
            _ => 90,
        };
        heard_after(&mut f, 101, 126, &level);
        let now_heard = heard_after(&mut f, 126, 127, &level);
        let mut who: Vec<usize> = now_heard.keys().copied().collect();
        who.sort_unstable();
        assert_eq!(who, [3, 4]);
        // Speaker 4's first packets were numbered from 0 on (its subscription started there
        // when the class had only its first packet), and its resumption is numbered on and
        // moved on in time, not a gap of the packets withheld.
        let resumed = now_heard[&4];
        let before = first.get(&4).copied();
        assert!(
            before.is_some(),
            "heard at the very start, before the choice was made"
        );
        let before = before.unwrap();
        assert!(
            resumed.seq > before.seq && resumed.seq - before.seq < 40,
            "{} after {}",
            resumed.seq,
            before.seq
        );
        assert!(
            resumed.time.wrapping_sub(before.time) > 960 * 90,
            "the clock moved on"
        );
        assert_eq!(f.withheld(), 3);
    }

    #[test]
    fn audio_flows_at_once_and_leaving_tracks_take_their_subscriptions() {
        let t0 = Instant::now();
        let mut f = Forwarder::new(t0, AudioSelection::default());
        let mic = TrackId(20);
        f.handle_input(
            t0,
            Input::Publish {
                track: mic,
                publisher: PUB,
                kind: TrackKind::Audio,
            },
        );
        f.handle_input(
            t0,
            Input::Subscribe {
                sub: SUB,
                subscriber: VIEWER,
                track: mic,
            },
        );
        let packet = PacketMeta {
            track: mic,
            layer: Layer::Full,
            seq: 7,
            time: 960,
            keyframe: false,
            bytes: 80,
            vp8: None,
            audio_level: None,
        };
        let mut out = Vec::new();
        f.route(t0, &packet, &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!((out[0].seq, out[0].time), (7, 960));
        f.handle_input(t0, Input::KeyframeWanted { sub: SUB });
        assert!(drain(&mut f).is_empty(), "no keyframes for audio");
        f.handle_input(t0, Input::Unpublish { track: mic });
        out.clear();
        f.route(t0, &packet, &mut out);
        assert!(out.is_empty());
        assert_eq!(f.current_layer(SUB), None);
        assert_eq!(f.tracks(), 0);
    }

    #[test]
    fn rids_name_the_three_layers_and_nothing_else() {
        assert_eq!(Layer::from_rid(None), Some(Layer::Full));
        assert_eq!(Layer::from_rid(Some("q")), Some(Layer::Quarter));
        assert_eq!(Layer::from_rid(Some("h")), Some(Layer::Half));
        assert_eq!(Layer::from_rid(Some("f")), Some(Layer::Full));
        assert_eq!(Layer::from_rid(Some("hi")), None);
        for l in Layer::ALL {
            assert_eq!(Layer::from_rid(Some(l.rid())), Some(l));
        }
        assert_eq!(Layer::Quarter.height(720), 180);
    }

    #[test]
    fn a_subscription_whose_m_line_opens_late_starts_again_at_a_keyframe() {
        let t0 = Instant::now();
        let (mut f, mut script, _) = subscribed(t0);
        let (now, packets) = script.frame([true; 3]);
        deliver(&mut f, now, &packets);
        assert_eq!(f.current_layer(SUB), Some(Layer::Half));
        drain(&mut f);
        // That keyframe went to an m-line the viewer had not opened yet.
        let later = now + KEYFRAME_REQUEST_INTERVAL;
        f.handle_input(later, Input::Opened { sub: SUB });
        assert_eq!(f.current_layer(SUB), None);
        assert_eq!(
            drain(&mut f),
            [Output::RequestKeyframe {
                publisher: PUB,
                track: CAMERA,
                layer: Layer::Half
            }]
        );
        let mut script_later = script;
        let (now, packets) = script_later.frame([false; 3]);
        assert!(
            deliver(&mut f, now.max(later), &packets).is_empty(),
            "deltas wait"
        );
        let (now, packets) = script_later.frame([false, true, false]);
        assert_eq!(deliver(&mut f, now.max(later), &packets).len(), 1);
    }

    #[test]
    fn numbering_starts_within_the_first_rollover_and_a_count_that_steps_below_zero_is_dropped() {
        let t0 = Instant::now();
        let mut f = Forwarder::new(t0, AudioSelection::default());
        let mic = TrackId(20);
        f.handle_input(
            t0,
            Input::Publish {
                track: mic,
                publisher: PUB,
                kind: TrackKind::Audio,
            },
        );
        f.handle_input(
            t0,
            Input::Subscribe {
                sub: SUB,
                subscriber: VIEWER,
                track: mic,
            },
        );
        // The publisher's count is past three rollovers when the viewer arrives.
        let packet = |seq: u64| PacketMeta {
            track: mic,
            layer: Layer::Full,
            seq,
            time: 960,
            keyframe: false,
            bytes: 80,
            vp8: None,
            audio_level: None,
        };
        let mut out = Vec::new();
        f.route(t0, &packet(3 * 65_536 + 10), &mut out);
        f.route(t0, &packet(3 * 65_536 + 11), &mut out);
        let seqs: Vec<u64> = out.iter().map(|r| r.seq).collect();
        assert_eq!(seqs, [10, 11]);
        // A crafted count far behind (wrapped below zero) goes nowhere, and panics nothing.
        out.clear();
        f.route(t0, &packet(u64::MAX), &mut out);
        f.route(t0, &packet(0), &mut out);
        assert!(out.is_empty(), "{out:?}");
        f.route(t0, &packet(3 * 65_536 + 12), &mut out);
        assert_eq!(out.iter().map(|r| r.seq).collect::<Vec<_>>(), [12]);
    }
}
