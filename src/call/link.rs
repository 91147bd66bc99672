//! One link's driver: a task per peer connection that builds it, carries out the session's
//! operations on it in order (offer, answer, candidates, ICE restart), writes the encoded
//! media to it, starts a reader for each remote track and reports what happened. The engine
//! only queues operations and reads reports, so a slow operation on one link (a peer
//! connection being built, an SDP applied) holds up neither the other links nor the session.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use classroom_wire::{IceCandidate, IceServer, SessionDescription};
use tokio::sync::mpsc;

use super::receiver::{self, ReaderOptions};
use super::stats::StatsBook;
use crate::rtc::{EncodedUnit, PeerEvent, PeerLink, PeerOptions, RtcError};
use crate::types::{LinkId, PeerConnState, Source, VideoCodec};

/// How often a link's round trip and estimate go into the stats.
const STATS_INTERVAL: Duration = Duration::from_secs(1);

/// Encoded units a link's writer may hold before it loses some.
pub(super) const WRITER_QUEUE: usize = 32;

/// What the session asked of a link.
#[derive(Debug)]
pub(super) enum LinkOp {
    CreateOffer,
    AcceptOffer(SessionDescription),
    AcceptAnswer(SessionDescription),
    AddCandidate(Option<IceCandidate>),
    RestartIce,
}

/// What a link reports back.
#[derive(Debug)]
pub(super) enum LinkReportKind {
    Candidate(IceCandidate),
    State(PeerConnState),
    /// An offer or answer to send.
    Description(SessionDescription),
    /// Negotiation settled, on this video codec.
    Negotiated(Option<VideoCodec>),
    Estimate(f64),
    KeyframeRequested(Source),
    /// The link carries this participant's track of this source.
    RemoteTrack {
        owner: String,
        source: Source,
    },
    /// The link could not be built, or an operation failed (invalid SDP, say).
    Failed(RtcError),
}

#[derive(Debug)]
pub(super) struct LinkReport {
    pub link: LinkId,
    /// Which link of that id (a replaced one may report until it is gone).
    pub generation: u64,
    pub kind: LinkReportKind,
}

/// What every link of a call shares.
#[derive(Clone)]
pub(super) struct LinkContext {
    pub options: PeerOptions,
    pub stream_id: String,
    pub stats: StatsBook,
    pub readers: ReaderOptions,
    pub reports: mpsc::UnboundedSender<LinkReport>,
}

/// A link to build.
pub(super) struct LinkSpec {
    pub link: LinkId,
    pub generation: u64,
    pub ice_servers: Vec<IceServer>,
    pub offering: bool,
}

/// Runs one link until `ops` closes (the session closed it, or the call ended), then closes
/// the peer connection and stops its readers.
pub(super) async fn run_link(
    spec: LinkSpec,
    context: LinkContext,
    mut ops: mpsc::UnboundedReceiver<LinkOp>,
    units: mpsc::Receiver<(Source, EncodedUnit)>,
) {
    let report = |kind: LinkReportKind| {
        let _ = context.reports.send(LinkReport {
            link: spec.link.clone(),
            generation: spec.generation,
            kind,
        });
    };
    let (events_tx, mut events) = mpsc::unbounded_channel::<PeerEvent>();
    let label = spec.link.to_string();
    let mut options = context.options.clone();
    options.keep_accepted_codec = spec.link == LinkId::Sfu;
    let link = match PeerLink::new(
        &label,
        &context.stream_id,
        &spec.ice_servers,
        &options,
        spec.offering,
        events_tx,
    )
    .await
    {
        Ok(link) => Arc::new(link),
        Err(error) => {
            report(LinkReportKind::Failed(error));
            return;
        }
    };
    // Media is written only while connected (before, SRTP has no keys yet).
    let connected = Arc::new(AtomicBool::new(false));
    let stop_readers = Arc::new(AtomicBool::new(false));
    let writer = tokio::spawn(write_media(link.clone(), connected.clone(), units));
    // Whose tracks the link carries: its participant's, or, on the SFU, everyone's it said.
    let mut owners: Vec<String> = spec
        .link
        .participant()
        .map(str::to_owned)
        .into_iter()
        .collect();
    let mut stats_ticker = tokio::time::interval(STATS_INTERVAL);
    stats_ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            op = ops.recv() => match op {
                Some(op) => {
                    for kind in carry_out(&link, op).await {
                        report(kind);
                    }
                }
                None => break,
            },
            Some(event) = events.recv() => match event {
                PeerEvent::Candidate(candidate) => report(LinkReportKind::Candidate(candidate)),
                PeerEvent::State(state) => {
                    connected.store(state == PeerConnState::Connected, Ordering::SeqCst);
                    report(LinkReportKind::State(state));
                }
                PeerEvent::RemoteTrack(mut track) => {
                    // A peer link's tracks are its participant's, in the places of its three
                    // transceivers; the SFU's say whose they are (the stream) and what (the
                    // track's name).
                    let owner = match spec.link.participant() {
                        Some(user_id) => {
                            link.place_track(&mut track).await;
                            user_id.to_owned()
                        }
                        None => {
                            if let Some(source) = track.sfu_source().await {
                                track.set_source(source);
                            }
                            track.stream_id().await
                        }
                    };
                    if !owners.contains(&owner) {
                        owners.push(owner.clone());
                    }
                    report(LinkReportKind::RemoteTrack {
                        owner: owner.clone(),
                        source: track.source(),
                    });
                    receiver::spawn_track_reader(
                        owner,
                        track,
                        context.stats.clone(),
                        context.readers.clone(),
                        stop_readers.clone(),
                    );
                }
                PeerEvent::KeyframeRequested(source) => {
                    report(LinkReportKind::KeyframeRequested(source));
                }
                PeerEvent::Estimate(bps) => report(LinkReportKind::Estimate(bps)),
            },
            _ = stats_ticker.tick() => {
                if connected.load(Ordering::Relaxed) {
                    let round_trip = link.round_trip_ms().await;
                    let estimate = link.target_bitrate_bps() / 1000.0;
                    for owner in &owners {
                        context.stats.set_transport(owner, round_trip, estimate);
                    }
                }
            }
        }
    }
    stop_readers.store(true, Ordering::SeqCst);
    writer.abort();
    if spec.link.participant().is_none() {
        for owner in &owners {
            context.stats.forget(owner);
        }
    }
    link.close().await;
}

/// Carries out one operation; what it produced, to report. Applying an offer or an answer
/// settles the negotiation, so the codec is known then.
async fn carry_out(link: &PeerLink, op: LinkOp) -> Vec<LinkReportKind> {
    let negotiated = || LinkReportKind::Negotiated(link.video_codec());
    let result = match op {
        LinkOp::CreateOffer => link
            .create_offer()
            .await
            .map(|offer| vec![LinkReportKind::Description(offer)]),
        LinkOp::RestartIce => link
            .restart_ice()
            .await
            .map(|offer| vec![LinkReportKind::Description(offer)]),
        LinkOp::AcceptOffer(offer) => link
            .accept_offer(&offer)
            .await
            .map(|answer| vec![negotiated(), LinkReportKind::Description(answer)]),
        LinkOp::AcceptAnswer(answer) => link
            .accept_answer(&answer)
            .await
            .map(|()| vec![negotiated()]),
        LinkOp::AddCandidate(candidate) => {
            if let Err(error) = link.add_remote_candidate(candidate).await {
                tracing::warn!(user = %link.user_id(), %error, "remote candidate refused");
            }
            Ok(Vec::new())
        }
    };
    result.unwrap_or_else(|error| vec![LinkReportKind::Failed(error)])
}

/// Writes the call's encoded units to the link while it is connected.
async fn write_media(
    link: Arc<PeerLink>,
    connected: Arc<AtomicBool>,
    mut units: mpsc::Receiver<(Source, EncodedUnit)>,
) {
    while let Some((source, unit)) = units.recv().await {
        if !connected.load(Ordering::Relaxed) {
            continue;
        }
        if let Err(error) = link.write(source, &unit).await {
            tracing::debug!(user = %link.user_id(), ?source, %error, "media not sent");
        }
    }
}
