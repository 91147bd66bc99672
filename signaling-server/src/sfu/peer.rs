//! One client of the SFU: its str0m connection (RTP mode, ICE-lite, one BUNDLE), what its
//! sending m-lines carry, and the m-lines on which it receives the others' tracks, with the
//! negotiation that adds and removes them (the server offers; when both sides offer at once,
//! the server yields: its pending offer is dropped and made again after the client's).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use classroom_wire::{
    MediaSource, SdpKind, SessionDescription, SfuDescription, SfuSource, SfuTrack,
};
use str0m::change::{SdpAnswer, SdpOffer, SdpPendingOffer};
use str0m::format::PayloadParams;
use str0m::media::{Direction, MediaKind, Mid, Pt};
use str0m::{Candidate, Rtc};

use super::SfuError;
use super::forward::{SubId, TrackId};

/// The sending m-lines a client's offers may describe, over its connection's life.
const MAX_SOURCES: usize = 8;
/// The tracks one client may publish (its microphone, camera and screen).
pub(crate) const MAX_PUBLISHED: usize = 3;

/// Where a peer's signaling goes: the Socket.IO side hands the SFU a sink per client.
pub(crate) type SignalSink = Arc<dyn Fn(Signal) + Send + Sync>;

/// What the SFU says to one client.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Signal {
    /// `sfu-answer` or `sfu-offer`, with every track the client receives.
    Description(SfuDescription),
    /// Something the client sent was refused, or the connection failed (`error`).
    Refused(String),
}

/// The state of one m-line on which the client receives another's track.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OutState {
    /// To be added in the next offer.
    ToOpen,
    Negotiating(Mid),
    Open(Mid),
    ToStop(Mid),
    NegotiatingStop(Mid),
}

impl OutState {
    fn stopping(self) -> bool {
        matches!(self, OutState::ToStop(_) | OutState::NegotiatingStop(_))
    }

    fn mid(self) -> Option<Mid> {
        match self {
            OutState::ToOpen => None,
            OutState::Negotiating(m)
            | OutState::Open(m)
            | OutState::ToStop(m)
            | OutState::NegotiatingStop(m) => Some(m),
        }
    }
}

/// Another participant's track as this client receives it.
struct OutTrack {
    sub: SubId,
    track: TrackId,
    owner: Arc<str>,
    source: MediaSource,
    state: OutState,
    /// The publisher's payload type → ours, learned on the first packet of each.
    pts: Vec<(Pt, Pt)>,
}

/// A track this client publishes.
#[derive(Debug, Clone, Copy)]
pub(crate) struct InTrack {
    pub(crate) track: TrackId,
    pub(crate) kind: MediaKind,
}

pub(crate) struct Peer {
    pub(crate) room: Arc<str>,
    pub(crate) user_id: Arc<str>,
    /// Its member is a student (whose camera, and what it sees, the class's settings limit).
    pub(crate) student: bool,
    pub(crate) rtc: Rtc,
    pub(crate) ufrag: String,
    signal: SignalSink,
    /// What the client said its sending m-lines carry, by mid.
    sources: HashMap<Mid, SfuSource>,
    /// Its published tracks, by the mid they arrive on.
    pub(crate) published: HashMap<Mid, InTrack>,
    out: Vec<OutTrack>,
    pending: Option<SdpPendingOffer>,
    /// The client's first offer was answered: from then on the server may offer.
    described: bool,
    /// When str0m wants to be polled next.
    pub(crate) deadline: Instant,
    /// The addresses this peer's packets come from (for the shard's routing table).
    pub(crate) addresses: Vec<SocketAddr>,
}

impl Peer {
    pub(crate) fn new(
        room: Arc<str>,
        user_id: Arc<str>,
        student: bool,
        rtc: Rtc,
        ufrag: String,
        signal: SignalSink,
        now: Instant,
    ) -> Self {
        Peer {
            room,
            user_id,
            student,
            rtc,
            ufrag,
            signal,
            sources: HashMap::new(),
            published: HashMap::new(),
            out: Vec::new(),
            pending: None,
            described: false,
            deadline: now,
            addresses: Vec::new(),
        }
    }

    pub(crate) fn say(&self, signal: Signal) {
        (self.signal)(signal)
    }

    /// What the client's sending m-line `mid` carries, as its offer said.
    pub(crate) fn source_of(&self, mid: Mid) -> Option<&SfuSource> {
        self.sources.get(&mid)
    }

    /// Accepts the client's offer and answers it (with every track it receives).
    pub(crate) fn accept_offer(
        &mut self,
        sdp: &str,
        sources: Vec<SfuSource>,
    ) -> Result<(), SfuError> {
        let offer = SdpOffer::from_sdp_string(sdp).map_err(|e| SfuError::Sdp(e.to_string()))?;
        // Both sides offered: ours is dropped (str0m forgets it) and made again afterwards.
        if self.pending.take().is_some() {
            self.offer_again();
        }
        let answer: SdpAnswer = self
            .rtc
            .sdp_api()
            .accept_offer(offer)
            .map_err(|e| SfuError::Sdp(e.to_string()))?;
        for source in sources {
            let mid = Mid::from(source.mid.as_str());
            if self.sources.len() < MAX_SOURCES || self.sources.contains_key(&mid) {
                self.sources.insert(mid, source);
            }
        }
        self.described = true;
        self.say(Signal::Description(SfuDescription {
            description: SessionDescription {
                kind: SdpKind::Answer,
                sdp: answer.to_sdp_string(),
            },
            sources: Vec::new(),
            tracks: self.track_table(),
        }));
        Ok(())
    }

    /// Our pending offer is void (the client offered too, or its answer was refused): what it
    /// changed is offered again.
    fn offer_again(&mut self) {
        for out in &mut self.out {
            out.state = match out.state {
                OutState::Negotiating(_) => OutState::ToOpen,
                OutState::NegotiatingStop(m) => OutState::ToStop(m),
                other => other,
            };
        }
    }

    /// Accepts the client's answer to our pending offer; the subscriptions whose m-lines it
    /// opened.
    pub(crate) fn accept_answer(&mut self, sdp: &str) -> Result<Vec<SubId>, SfuError> {
        let Some(pending) = self.pending.take() else {
            return Err(SfuError::Sdp(
                "no offer of the server is waiting for an answer".into(),
            ));
        };
        let accepted = SdpAnswer::from_sdp_string(sdp)
            .map_err(|e| SfuError::Sdp(e.to_string()))
            .and_then(|answer| {
                self.rtc
                    .sdp_api()
                    .accept_answer(pending, answer)
                    .map_err(|e| SfuError::Sdp(e.to_string()))
            });
        if let Err(e) = accepted {
            // The offer is void: its changes are offered again.
            self.offer_again();
            return Err(e);
        }
        let mut opened = Vec::new();
        for out in &mut self.out {
            if let OutState::Negotiating(m) = out.state {
                out.state = OutState::Open(m);
                opened.push(out.sub);
            }
        }
        self.out
            .retain(|o| !matches!(o.state, OutState::NegotiatingStop(_)));
        Ok(opened)
    }

    pub(crate) fn add_candidate(&mut self, candidate: &str) -> Result<(), SfuError> {
        let line = candidate.strip_prefix("a=").unwrap_or(candidate);
        let candidate =
            Candidate::from_sdp_string(line).map_err(|e| SfuError::Candidate(e.to_string()))?;
        self.rtc.add_remote_candidate(candidate);
        Ok(())
    }

    /// Receive `owner`'s `source` (in the next offer).
    pub(crate) fn receive(
        &mut self,
        sub: SubId,
        track: TrackId,
        owner: Arc<str>,
        source: MediaSource,
    ) {
        self.out.push(OutTrack {
            sub,
            track,
            owner,
            source,
            state: OutState::ToOpen,
            pts: Vec::new(),
        });
    }

    /// Whether the client receives the track (or is about to), and is not stopping it.
    pub(crate) fn receives(&self, track: TrackId) -> bool {
        self.out
            .iter()
            .any(|o| o.track == track && !o.state.stopping())
    }

    /// Stop receiving a track (its publisher left or stopped it, or the client may no longer
    /// see it); returns its subscription.
    pub(crate) fn stop_receiving(&mut self, track: TrackId) -> Option<SubId> {
        let i = self
            .out
            .iter()
            .position(|o| o.track == track && !o.state.stopping())?;
        let sub = self.out[i].sub;
        match self.out[i].state {
            OutState::ToOpen => {
                self.out.remove(i);
            }
            OutState::Negotiating(m) | OutState::Open(m) => self.out[i].state = OutState::ToStop(m),
            OutState::ToStop(_) | OutState::NegotiatingStop(_) => {}
        }
        Some(sub)
    }

    /// How many video tracks the client receives (or is about to).
    pub(crate) fn video_received(&self) -> usize {
        self.out
            .iter()
            .filter(|o| o.source != MediaSource::Audio)
            .filter(|o| !o.state.stopping())
            .count()
    }

    /// Every subscription of this peer (to forget them when it leaves).
    pub(crate) fn subscriptions(&self) -> impl Iterator<Item = SubId> + '_ {
        self.out.iter().map(|o| o.sub)
    }

    /// The subscription whose m-line is `mid`.
    pub(crate) fn sub_by_mid(&self, mid: Mid) -> Option<SubId> {
        self.out
            .iter()
            .find(|o| o.state.mid() == Some(mid))
            .map(|o| o.sub)
    }

    /// The open m-line of a subscription, and our payload type for the publisher's.
    pub(crate) fn out_route(
        &mut self,
        sub: SubId,
        publisher_pt: Pt,
        params: Option<PayloadParams>,
    ) -> Option<(Mid, Pt)> {
        let i = self.out.iter().position(|o| o.sub == sub)?;
        let OutState::Open(mid) = self.out[i].state else {
            return None;
        };
        if let Some((_, ours)) = self.out[i].pts.iter().find(|(p, _)| *p == publisher_pt) {
            return Some((mid, *ours));
        }
        let ours = self.rtc.codec_config().match_params(params?)?.pt();
        self.out[i].pts.push((publisher_pt, ours));
        Some((mid, ours))
    }

    /// Offers the m-lines to add or stop, when nothing is pending and there is a change.
    pub(crate) fn negotiate_if_needed(&mut self) {
        if !self.described || self.pending.is_some() || !self.rtc.is_alive() {
            return;
        }
        if !self
            .out
            .iter()
            .any(|o| matches!(o.state, OutState::ToOpen | OutState::ToStop(_)))
        {
            return;
        }
        let mut change = self.rtc.sdp_api();
        for out in &mut self.out {
            match out.state {
                OutState::ToOpen => {
                    let kind = match out.source {
                        MediaSource::Audio => MediaKind::Audio,
                        MediaSource::Camera | MediaSource::Screen => MediaKind::Video,
                    };
                    let mid = change.add_media(
                        kind,
                        Direction::SendOnly,
                        // The stream is the owner; the track id says what it carries, and
                        // is unique in the connection (clients key remote tracks by it): the
                        // subscription's number, not the track's, as a track taken away and
                        // given back (lock settings, a rank) comes on a new m-line.
                        Some(out.owner.to_string()),
                        Some(format!("{}-{}", source_name(out.source), out.sub.0)),
                        None,
                    );
                    out.state = OutState::Negotiating(mid);
                }
                OutState::ToStop(mid) => {
                    change.stop_media(mid);
                    out.state = OutState::NegotiatingStop(mid);
                }
                _ => {}
            }
        }
        let Some((offer, pending)) = change.apply() else {
            return;
        };
        self.pending = Some(pending);
        self.say(Signal::Description(SfuDescription {
            description: SessionDescription {
                kind: SdpKind::Offer,
                sdp: offer.to_sdp_string(),
            },
            sources: Vec::new(),
            tracks: self.track_table(),
        }));
    }

    /// Whose media each of the m-lines we send (or are about to) carries.
    fn track_table(&self) -> Vec<SfuTrack> {
        self.out
            .iter()
            .filter_map(|o| match o.state {
                OutState::Negotiating(m) | OutState::Open(m) => Some(SfuTrack {
                    mid: m.to_string(),
                    user_id: o.owner.to_string(),
                    source: o.source,
                }),
                _ => None,
            })
            .collect()
    }
}

pub(crate) fn source_name(source: MediaSource) -> &'static str {
    match source {
        MediaSource::Audio => "audio",
        MediaSource::Camera => "camera",
        MediaSource::Screen => "screen",
    }
}
