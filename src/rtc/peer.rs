//! One peer connection to one remote participant, on webrtc-rs 0.21: three pre-negotiated
//! transceivers (audio, camera, screen; a screen share needs no renegotiation), trickle ICE,
//! NACK, keyframe requests (PLI/FIR) delivered to the sender, send-side congestion control
//! (transport-wide CC + GCC) whose estimate drives the encoders, ICE restart, stats.

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use classroom_wire::{IceCandidate, IceServer, SdpKind, SessionDescription};
use parking_lot::Mutex;
use rtc::interceptor::{
    Attribute, BandwidthEstimator, EstimatorStats, Gcc, Interceptor, Packet, PacketReport,
    Registry, Slot, StreamInfo, TaggedPacket,
};
use rtc::media::Sample;
use rtc::media_stream::MediaStreamTrack;
use rtc::rtcp::payload_feedbacks::full_intra_request::FullIntraRequest;
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtp_transceiver::rtp_sender::{
    RTCPFeedback, RTCRtpCodec, RTCRtpCodecParameters, RTCRtpCodingParameters,
    RTCRtpEncodingParameters, RtpCodecKind,
};
use rtc::sansio::Protocol;
use tokio::sync::mpsc;
use webrtc::media_stream::track_local::static_sample::TrackLocalStaticSample;
use webrtc::media_stream::track_local::{TrackLocal, TrackLocalEvent};
use webrtc::media_stream::track_remote::TrackRemote;
use webrtc::peer_connection::{
    CongestionFeedback, MediaEngine, PeerConnection, PeerConnectionBuilder,
    PeerConnectionEventHandler, RTCConfigurationBuilder, RTCIceCandidateInit, RTCIceServer,
    RTCPeerConnectionIceEvent, RTCPeerConnectionState, RTCSdpType, RTCSessionDescription,
    SettingEngineBuilder, StatsSelector, configure_congestion_control, configure_nack,
    configure_rtcp_reports,
};
use webrtc::rtp_transceiver::RtpSender;

use crate::session::PeerConnState;

pub const H264_PAYLOAD_TYPE: u8 = 102;
pub const OPUS_PAYLOAD_TYPE: u8 = 111;
const H264_FMTP: &str = "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f";

#[derive(Debug, thiserror::Error)]
pub enum RtcError {
    #[error("webrtc: {0}")]
    WebRtc(#[from] webrtc::error::Error),
    #[error("invalid session description from the remote: {0}")]
    InvalidSdp(String),
    #[error("the peer connection has no local description")]
    NoLocalDescription,
}

/// A local source, or what a remote track carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    Audio,
    Camera,
    Screen,
}

impl Source {
    pub const ALL: [Source; 3] = [Source::Audio, Source::Camera, Source::Screen];

    fn track_id(self) -> &'static str {
        match self {
            Source::Audio => "audio",
            Source::Camera => "camera",
            Source::Screen => "screen",
        }
    }
}

/// How peer connections are built.
#[derive(Debug, Clone)]
pub struct PeerOptions {
    /// The local address ICE binds (one interface). `0.0.0.0` means every interface.
    pub bind_ip: IpAddr,
    pub ice_disconnected_timeout: Duration,
    pub ice_failed_timeout: Duration,
    pub ice_keepalive: Duration,
    pub initial_bitrate_bps: f64,
    pub min_bitrate_bps: f64,
    pub max_bitrate_bps: f64,
}

impl Default for PeerOptions {
    fn default() -> Self {
        PeerOptions {
            bind_ip: IpAddr::from([0, 0, 0, 0]),
            ice_disconnected_timeout: Duration::from_secs(4),
            ice_failed_timeout: Duration::from_secs(10),
            ice_keepalive: Duration::from_secs(1),
            initial_bitrate_bps: 1_000_000.0,
            min_bitrate_bps: 150_000.0,
            max_bitrate_bps: 4_000_000.0,
        }
    }
}

/// What a peer connection reports to the engine.
pub enum PeerEventKind {
    Candidate(IceCandidate),
    State(PeerConnState),
    RemoteTrack(Source, Arc<dyn TrackRemote>),
    KeyframeRequested(Source),
}

pub struct PeerEvent {
    pub user_id: String,
    /// Which connection to this user (a replaced one keeps reporting until it is gone).
    pub generation: u64,
    pub kind: PeerEventKind,
}

struct Handler {
    user_id: String,
    generation: u64,
    events: mpsc::UnboundedSender<PeerEvent>,
}

impl Handler {
    fn send(&self, kind: PeerEventKind) {
        let _ = self.events.send(PeerEvent {
            user_id: self.user_id.clone(),
            generation: self.generation,
            kind,
        });
    }
}

#[async_trait::async_trait]
impl PeerConnectionEventHandler for Handler {
    async fn on_ice_candidate(&self, event: RTCPeerConnectionIceEvent) {
        match event.candidate.to_json() {
            Ok(init) => self.send(PeerEventKind::Candidate(IceCandidate {
                candidate: init.candidate,
                sdp_mid: init.sdp_mid,
                sdp_m_line_index: init.sdp_mline_index,
                username_fragment: init.username_fragment,
            })),
            Err(error) => tracing::warn!(user = %self.user_id, %error, "unusable local candidate"),
        }
    }

    async fn on_connection_state_change(&self, state: RTCPeerConnectionState) {
        let state = match state {
            RTCPeerConnectionState::New => PeerConnState::New,
            RTCPeerConnectionState::Connecting => PeerConnState::Connecting,
            RTCPeerConnectionState::Connected => PeerConnState::Connected,
            RTCPeerConnectionState::Disconnected => PeerConnState::Disconnected,
            RTCPeerConnectionState::Failed => PeerConnState::Failed,
            RTCPeerConnectionState::Closed => PeerConnState::Closed,
            _ => return,
        };
        tracing::debug!(user = %self.user_id, ?state, "peer connection state");
        self.send(PeerEventKind::State(state));
    }

    async fn on_track(&self, track: Arc<dyn TrackRemote>) {
        let source = match track.kind().await {
            RtpCodecKind::Audio => Source::Audio,
            _ => {
                let id = track.track_id().await.to_string().to_lowercase();
                let label = track.label().await.to_lowercase();
                if id.contains("screen") || label.contains("screen") {
                    Source::Screen
                } else {
                    Source::Camera
                }
            }
        };
        let track_id = track.track_id().await.to_string();
        let stream_id = track.stream_id().await.to_string();
        tracing::debug!(user = %self.user_id, ?source, %track_id, %stream_id, "remote track");
        self.send(PeerEventKind::RemoteTrack(source, track));
    }
}

/// Delegates to GCC and publishes its target after every update (the example's pattern).
struct PublishedEstimate<E: BandwidthEstimator> {
    inner: E,
    target: Arc<AtomicU64>,
}

impl<E: BandwidthEstimator> PublishedEstimate<E> {
    fn publish(&self) {
        self.target
            .store(self.inner.target_bitrate().to_bits(), Ordering::Relaxed);
    }
}

impl<E: BandwidthEstimator> BandwidthEstimator for PublishedEstimate<E> {
    fn on_reports(&mut self, now: Instant, reports: &[PacketReport]) {
        self.inner.on_reports(now, reports);
        self.publish();
    }
    fn target_bitrate(&self) -> f64 {
        self.inner.target_bitrate()
    }
    fn handle_timeout(&mut self, now: Instant) {
        self.inner.handle_timeout(now);
        self.publish();
    }
    fn poll_timeout(&self) -> Option<Instant> {
        self.inner.poll_timeout()
    }
    fn stats(&self) -> EstimatorStats {
        self.inner.stats()
    }
}

/// Marks inbound keyframe requests (PLI, FIR) for the application, so the sending track sees
/// them; the rest of the inbound RTCP stays with the interceptors below it.
#[derive(Default)]
struct KeyframeRequestForwarder {
    read_queue: std::collections::VecDeque<TaggedPacket>,
    write_queue: std::collections::VecDeque<TaggedPacket>,
}

fn is_keyframe_request(packet: &dyn rtc::rtcp::Packet) -> bool {
    let any = packet.as_any();
    any.is::<PictureLossIndication>() || any.is::<FullIntraRequest>()
}

impl Protocol<TaggedPacket, TaggedPacket, ()> for KeyframeRequestForwarder {
    type Rout = TaggedPacket;
    type Wout = TaggedPacket;
    type Eout = ();
    type Error = rtc::shared::error::Error;
    type Time = Instant;

    fn handle_read(&mut self, mut message: TaggedPacket) -> Result<(), Self::Error> {
        if let Packet::Rtcp(packets) = &message.message.packet {
            let requests: Vec<Box<dyn rtc::rtcp::Packet>> = packets
                .iter()
                .filter(|packet| is_keyframe_request(packet.as_ref()))
                .cloned()
                .collect();
            if requests.is_empty() {
                return Ok(());
            }
            message.message.packet = Packet::Rtcp(requests);
            message.message.add(Attribute::DeliverToApplication);
        }
        self.read_queue.push_back(message);
        Ok(())
    }
    fn poll_read(&mut self) -> Option<Self::Rout> {
        self.read_queue.pop_front()
    }
    fn handle_write(&mut self, message: TaggedPacket) -> Result<(), Self::Error> {
        self.write_queue.push_back(message);
        Ok(())
    }
    fn poll_write(&mut self) -> Option<Self::Wout> {
        self.write_queue.pop_front()
    }
}

impl Interceptor for KeyframeRequestForwarder {
    fn bind_local_stream(&mut self, _info: &StreamInfo) {}
    fn unbind_local_stream(&mut self, _info: &StreamInfo) {}
    fn bind_remote_stream(&mut self, _info: &StreamInfo) {}
    fn unbind_remote_stream(&mut self, _info: &StreamInfo) {}
}

fn h264_codec() -> RTCRtpCodec {
    RTCRtpCodec {
        mime_type: rtc::peer_connection::configuration::media_engine::MIME_TYPE_H264.to_owned(),
        clock_rate: 90_000,
        channels: 0,
        sdp_fmtp_line: H264_FMTP.to_owned(),
        rtcp_feedback: vec![],
    }
}

fn opus_codec() -> RTCRtpCodec {
    RTCRtpCodec {
        mime_type: rtc::peer_connection::configuration::media_engine::MIME_TYPE_OPUS.to_owned(),
        clock_rate: 48_000,
        channels: 2,
        sdp_fmtp_line: "minptime=10;useinbandfec=1".to_owned(),
        rtcp_feedback: vec![],
    }
}

fn media_engine() -> Result<MediaEngine, RtcError> {
    let mut engine = MediaEngine::default();
    engine.register_codec(
        RTCRtpCodecParameters {
            rtp_codec: opus_codec(),
            payload_type: OPUS_PAYLOAD_TYPE,
            ..Default::default()
        },
        RtpCodecKind::Audio,
    )?;
    engine.register_codec(
        RTCRtpCodecParameters {
            rtp_codec: h264_codec(),
            payload_type: H264_PAYLOAD_TYPE,
            ..Default::default()
        },
        RtpCodecKind::Video,
    )?;
    engine.register_feedback(
        RTCPFeedback {
            typ: "ccm".to_owned(),
            parameter: "fir".to_owned(),
        },
        RtpCodecKind::Video,
    );
    Ok(engine)
}

fn random_ssrc() -> u32 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    let mut x = nanos
        ^ (u64::from(std::process::id()) << 32)
        ^ COUNTER.fetch_add(0x9e37_79b9_7f4a_7c15, Ordering::Relaxed);
    // splitmix64
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    (x ^ (x >> 31)) as u32 | 1
}

struct LocalTrack {
    source: Source,
    track: Arc<TrackLocalStaticSample>,
    ssrc: u32,
    sender: Mutex<Option<Arc<dyn RtpSender>>>,
    payload_type: Mutex<Option<u8>>,
}

impl LocalTrack {
    fn new(source: Source, stream_id: &str) -> Result<Self, RtcError> {
        let ssrc = random_ssrc();
        let (kind, codec) = match source {
            Source::Audio => (RtpCodecKind::Audio, opus_codec()),
            _ => (RtpCodecKind::Video, h264_codec()),
        };
        let track = TrackLocalStaticSample::new(
            Instant::now(),
            MediaStreamTrack::new(
                stream_id.to_owned(),
                // Unique per participant: webrtc-rs routes inbound RTCP (PLI, FIR) by track id,
                // and a remote track of the same id would take our keyframe requests.
                format!("{}-{stream_id}", source.track_id()),
                source.track_id().to_owned(),
                kind,
                vec![RTCRtpEncodingParameters {
                    rtp_coding_parameters: RTCRtpCodingParameters {
                        ssrc: Some(ssrc),
                        ..Default::default()
                    },
                    codec,
                    ..Default::default()
                }],
            ),
        )?;
        Ok(LocalTrack {
            source,
            track: Arc::new(track),
            ssrc,
            sender: Mutex::new(None),
            payload_type: Mutex::new(None),
        })
    }
}

/// One encoded unit to send: an H.264 access unit or an Opus packet.
#[derive(Debug, Clone)]
pub struct EncodedUnit {
    pub data: Bytes,
    pub duration: Duration,
}

/// The peer connection to one remote participant.
pub struct PeerLink {
    user_id: String,
    generation: u64,
    connection: Arc<dyn PeerConnection>,
    tracks: Vec<LocalTrack>,
    tracks_attached: AtomicBool,
    remote_description_set: AtomicBool,
    pending_candidates: Mutex<Vec<RTCIceCandidateInit>>,
    target_bitrate: Arc<AtomicU64>,
    closed: Arc<AtomicBool>,
}

impl PeerLink {
    /// Builds the connection. The offering side attaches its tracks now; the answering side
    /// attaches them to the offer's transceivers when the offer arrives.
    pub async fn new(
        user_id: &str,
        generation: u64,
        local_stream_id: &str,
        ice_servers: &[IceServer],
        options: &PeerOptions,
        offering: bool,
        events: mpsc::UnboundedSender<PeerEvent>,
    ) -> Result<Self, RtcError> {
        let mut engine = media_engine()?;
        let target_bitrate = Arc::new(AtomicU64::new(options.initial_bitrate_bps.to_bits()));
        let estimator = PublishedEstimate {
            inner: Gcc::new(
                options.initial_bitrate_bps,
                options.min_bitrate_bps,
                options.max_bitrate_bps,
            ),
            target: target_bitrate.clone(),
        };
        let registry = configure_congestion_control(
            Registry::new(),
            estimator,
            CongestionFeedback::Twcc,
            &mut engine,
        )?;
        // The defaults minus their receive-only TWCC, which congestion control already set up.
        let registry = configure_nack(registry, &mut engine);
        let registry = configure_rtcp_reports(registry);
        let registry = registry.with(Slot::from(14_000), KeyframeRequestForwarder::default());

        let settings = SettingEngineBuilder::new()
            .with_ice_timeouts(
                Some(options.ice_disconnected_timeout),
                Some(options.ice_failed_timeout),
                Some(options.ice_keepalive),
            )
            .with_multicast_dns_mode(rtc::ice::mdns::MulticastDnsMode::Disabled)
            .with_include_loopback_candidate(options.bind_ip.is_loopback())
            .build();
        let configuration = RTCConfigurationBuilder::new()
            .with_ice_servers(
                ice_servers
                    .iter()
                    .map(|server| RTCIceServer {
                        urls: server.urls.clone(),
                        username: server.username.clone().unwrap_or_default(),
                        credential: server.credential.clone().unwrap_or_default(),
                        ..Default::default()
                    })
                    .collect(),
            )
            .build();
        let closed = Arc::new(AtomicBool::new(false));
        let connection = PeerConnectionBuilder::new()
            .with_configuration(configuration)
            .with_media_engine(engine)
            .with_interceptor_registry(registry)
            .with_setting_engine(settings)
            .with_handler(Arc::new(Handler {
                user_id: user_id.to_owned(),
                generation,
                events: events.clone(),
            }))
            .with_udp_addrs(vec![std::net::SocketAddr::new(options.bind_ip, 0)])
            .build()
            .await?;
        let connection: Arc<dyn PeerConnection> = Arc::new(connection);
        let tracks = Source::ALL
            .into_iter()
            .map(|source| LocalTrack::new(source, local_stream_id))
            .collect::<Result<Vec<_>, _>>()?;
        let link = PeerLink {
            user_id: user_id.to_owned(),
            generation,
            connection,
            tracks,
            tracks_attached: AtomicBool::new(false),
            remote_description_set: AtomicBool::new(false),
            pending_candidates: Mutex::new(Vec::new()),
            target_bitrate,
            closed,
        };
        if offering {
            link.attach_tracks().await?;
        }
        for track in &link.tracks {
            if track.source != Source::Audio {
                spawn_keyframe_watch(
                    track.track.clone(),
                    track.source,
                    user_id.to_owned(),
                    generation,
                    events.clone(),
                    link.closed.clone(),
                );
            }
        }
        Ok(link)
    }

    pub fn user_id(&self) -> &str {
        &self.user_id
    }

    pub fn generation(&self) -> u64 {
        self.generation
    }

    async fn attach_tracks(&self) -> Result<(), RtcError> {
        if self.tracks_attached.swap(true, Ordering::SeqCst) {
            return Ok(());
        }
        for track in &self.tracks {
            let sender = self
                .connection
                .add_track(track.track.clone() as Arc<dyn TrackLocal>)
                .await?;
            *track.sender.lock() = Some(sender);
        }
        Ok(())
    }

    pub async fn create_offer(&self) -> Result<SessionDescription, RtcError> {
        let offer = self.connection.create_offer(None).await?;
        self.connection.set_local_description(offer).await?;
        self.local_description().await
    }

    pub async fn restart_ice(&self) -> Result<SessionDescription, RtcError> {
        self.connection.restart_ice().await?;
        self.create_offer().await
    }

    async fn local_description(&self) -> Result<SessionDescription, RtcError> {
        let description = self
            .connection
            .local_description()
            .await
            .ok_or(RtcError::NoLocalDescription)?;
        Ok(to_wire(&description))
    }

    pub async fn accept_offer(
        &self,
        offer: &SessionDescription,
    ) -> Result<SessionDescription, RtcError> {
        let description = RTCSessionDescription::offer(offer.sdp.clone())
            .map_err(|error| RtcError::InvalidSdp(error.to_string()))?;
        self.connection
            .set_remote_description(description)
            .await
            .map_err(|error| RtcError::InvalidSdp(error.to_string()))?;
        self.remote_description_applied().await;
        self.attach_tracks().await?;
        let answer = self.connection.create_answer(None).await?;
        self.connection.set_local_description(answer).await?;
        self.forget_payload_types();
        self.local_description().await
    }

    pub async fn accept_answer(&self, answer: &SessionDescription) -> Result<(), RtcError> {
        let description = RTCSessionDescription::answer(answer.sdp.clone())
            .map_err(|error| RtcError::InvalidSdp(error.to_string()))?;
        self.connection
            .set_remote_description(description)
            .await
            .map_err(|error| RtcError::InvalidSdp(error.to_string()))?;
        self.forget_payload_types();
        self.remote_description_applied().await;
        Ok(())
    }

    async fn remote_description_applied(&self) {
        self.remote_description_set.store(true, Ordering::SeqCst);
        let pending = std::mem::take(&mut *self.pending_candidates.lock());
        for candidate in pending {
            if let Err(error) = self.connection.add_ice_candidate(candidate).await {
                tracing::warn!(user = %self.user_id, %error, "remote candidate refused");
            }
        }
    }

    /// Adds a remote candidate; candidates that arrive before the remote description wait.
    pub async fn add_remote_candidate(
        &self,
        candidate: Option<IceCandidate>,
    ) -> Result<(), RtcError> {
        let Some(candidate) = candidate else {
            return Ok(()); // end of candidates: nothing to do for webrtc-rs
        };
        if candidate.candidate.is_empty() {
            return Ok(());
        }
        let init = RTCIceCandidateInit {
            candidate: candidate.candidate,
            sdp_mid: candidate.sdp_mid,
            sdp_mline_index: candidate.sdp_m_line_index,
            username_fragment: candidate.username_fragment,
            ..Default::default()
        };
        if !self.remote_description_set.load(Ordering::SeqCst) {
            self.pending_candidates.lock().push(init);
            return Ok(());
        }
        self.connection.add_ice_candidate(init).await?;
        Ok(())
    }

    fn forget_payload_types(&self) {
        for track in &self.tracks {
            *track.payload_type.lock() = None;
        }
    }

    async fn payload_type(&self, track: &LocalTrack) -> Option<u8> {
        if let Some(payload_type) = *track.payload_type.lock() {
            return Some(payload_type);
        }
        let sender = track.sender.lock().clone()?;
        let parameters = sender.get_parameters().await.ok()?;
        let payload_type = parameters.rtp_parameters.codecs.first()?.payload_type;
        *track.payload_type.lock() = Some(payload_type);
        Some(payload_type)
    }

    /// Sends one encoded unit of `source`. Before the connection is up this is a no-op that
    /// reports `Ok(false)`.
    pub async fn write(&self, source: Source, unit: &EncodedUnit) -> Result<bool, RtcError> {
        let Some(track) = self.tracks.iter().find(|track| track.source == source) else {
            return Ok(false);
        };
        if !self.tracks_attached.load(Ordering::Relaxed) {
            return Ok(false);
        }
        let Some(payload_type) = self.payload_type(track).await else {
            return Ok(false);
        };
        let sample = Sample {
            data: unit.data.clone(),
            duration: unit.duration,
            ..Sample::new(Instant::now())
        };
        match track
            .track
            .sample_writer(track.ssrc, payload_type)
            .write_sample(&sample)
            .await
        {
            Ok(()) => Ok(true),
            // Not bound yet (negotiation still running): nothing to send to.
            Err(webrtc::error::Error::Other(message)) if message.contains("not binding") => {
                Ok(false)
            }
            Err(error) => Err(error.into()),
        }
    }

    /// What a remote track carries, from its transceiver's place: audio, then the first video
    /// transceiver (the camera), then the second (the screen). A browser's track ids are
    /// random, so the order of the m-lines is what both sides agree on. `None` when the track
    /// is not (or no longer) on this connection.
    pub async fn source_of(&self, track: &Arc<dyn TrackRemote>) -> Option<Source> {
        if track.kind().await == RtpCodecKind::Audio {
            return Some(Source::Audio);
        }
        let mut video_index = 0;
        // webrtc-rs hands transceivers back in no particular order; their ids are their
        // places in the connection (creation order, which is m-line order).
        let mut transceivers = self.connection.get_transceivers().await;
        transceivers.sort_by_key(|transceiver| transceiver.id());
        for transceiver in transceivers {
            let Ok(Some(receiver)) = transceiver.receiver().await else {
                continue;
            };
            let remote = receiver.track();
            if remote.kind().await != RtpCodecKind::Video {
                continue;
            }
            if Arc::ptr_eq(remote, track) {
                return Some(if video_index == 0 {
                    Source::Camera
                } else {
                    Source::Screen
                });
            }
            video_index += 1;
        }
        None
    }

    /// The congestion controller's current estimate for what this link carries.
    pub fn target_bitrate_bps(&self) -> f64 {
        f64::from_bits(self.target_bitrate.load(Ordering::Relaxed))
    }

    /// Round-trip time of the selected candidate pair, in milliseconds.
    pub async fn round_trip_ms(&self) -> Option<f64> {
        let report = self
            .connection
            .get_stats(Instant::now(), StatsSelector::None)
            .await;
        report
            .candidate_pairs()
            .filter(|pair| pair.current_round_trip_time > 0.0)
            .map(|pair| pair.current_round_trip_time * 1000.0)
            .next()
    }

    pub async fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
        if let Err(error) = self.connection.close().await {
            tracing::debug!(user = %self.user_id, %error, "closing the peer connection");
        }
    }
}

fn to_wire(description: &RTCSessionDescription) -> SessionDescription {
    SessionDescription {
        kind: match description.sdp_type {
            RTCSdpType::Offer => SdpKind::Offer,
            RTCSdpType::Pranswer => SdpKind::Pranswer,
            RTCSdpType::Rollback => SdpKind::Rollback,
            _ => SdpKind::Answer,
        },
        sdp: description.sdp.clone(),
    }
}

/// Watches a sending video track for keyframe requests from the remote.
fn spawn_keyframe_watch(
    track: Arc<TrackLocalStaticSample>,
    source: Source,
    user_id: String,
    generation: u64,
    events: mpsc::UnboundedSender<PeerEvent>,
    closed: Arc<AtomicBool>,
) {
    tokio::spawn(async move {
        while !closed.load(Ordering::Relaxed) {
            match track.poll().await {
                Some(TrackLocalEvent::OnRtcpPacket(packets)) => {
                    if packets
                        .iter()
                        .any(|packet| is_keyframe_request(packet.as_ref()))
                    {
                        let _ = events.send(PeerEvent {
                            user_id: user_id.clone(),
                            generation,
                            kind: PeerEventKind::KeyframeRequested(source),
                        });
                    }
                }
                Some(_) => {}
                // Not bound yet, or unbound: look again shortly.
                None => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    });
}
