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
use rtc::rtp::extension::audio_level_extension::AudioLevelExtension;
use rtc::rtp_transceiver::rtp_sender::{
    RTCPFeedback, RTCRtpCodec, RTCRtpCodecParameters, RTCRtpCodingParameters,
    RTCRtpEncodingParameters, RTCRtpHeaderExtensionCapability, RtpCodecKind,
};
use rtc::sansio::Protocol;
use tokio::sync::mpsc;
use webrtc::media_stream::track_local::static_sample::TrackLocalStaticSample;
use webrtc::media_stream::track_local::{TrackLocal, TrackLocalEvent};
use webrtc::media_stream::track_remote::TrackRemote;
use webrtc::peer_connection::{
    CongestionFeedback, MediaEngine, PeerConnection, PeerConnectionBuilder,
    PeerConnectionEventHandler, RTCConfigurationBuilder, RTCIceCandidateInit, RTCIceServer,
    RTCIceTransportPolicy, RTCPeerConnectionIceEvent, RTCPeerConnectionState, RTCSdpType,
    RTCSessionDescription, SettingEngineBuilder, StatsSelector, configure_congestion_control,
    configure_nack, configure_rtcp_reports,
};
use webrtc::rtp_transceiver::RtpSender;

use super::RtcError;
use super::remote_track::RemoteTrack;
use crate::types::{PeerConnState, Source, VideoCodec};

pub(crate) const H264_PAYLOAD_TYPE: u8 = 102;
pub(crate) const VP8_PAYLOAD_TYPE: u8 = 96;
pub(crate) const OPUS_PAYLOAD_TYPE: u8 = 111;
const H264_FMTP: &str = "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f";

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
    /// Video codecs offered and accepted, in order of preference.
    pub video_codecs: Vec<VideoCodec>,
    /// Keep sending the codec a video track was made for when the answer accepts it, even
    /// where the answer lists another first (the SFU's connection: the server forwards any
    /// codec it accepted, and replacing a sending track does not survive the server's
    /// renegotiations in webrtc-rs 0.21).
    pub keep_accepted_codec: bool,
    /// Only relayed candidates (`iceTransportPolicy: relay`): every byte through TURN.
    pub relay_only: bool,
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
            video_codecs: vec![VideoCodec::H264, VideoCodec::Vp8],
            keep_accepted_codec: false,
            relay_only: false,
        }
    }
}

/// What a peer connection reports, on the channel its [`PeerLink::new`] was given (one per
/// link, so an event needs to say nothing about which link it is from).
pub enum PeerEvent {
    Candidate(IceCandidate),
    State(PeerConnState),
    /// A remote track, its source guessed from its kind and name; [`PeerLink::place_track`]
    /// settles it from the transceiver's place.
    RemoteTrack(RemoteTrack),
    KeyframeRequested(Source),
    /// The congestion controller's estimate for what the link carries (bits per second):
    /// its first value when the link is built, then each change of more than 1 %.
    Estimate(f64),
}

#[derive(Clone)]
struct Handler {
    /// For the logs.
    user_id: String,
    events: mpsc::UnboundedSender<PeerEvent>,
}

impl Handler {
    fn send(&self, event: PeerEvent) {
        let _ = self.events.send(event);
    }
}

#[async_trait::async_trait]
impl PeerConnectionEventHandler for Handler {
    async fn on_ice_candidate(&self, event: RTCPeerConnectionIceEvent) {
        match event.candidate.to_json() {
            Ok(init) => self.send(PeerEvent::Candidate(IceCandidate {
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
        self.send(PeerEvent::State(state));
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
        self.send(PeerEvent::RemoteTrack(RemoteTrack { track, source }));
    }
}

/// Delegates to GCC and publishes its target after every update (the example's pattern):
/// readable at once through `target`, and reported as an event when it moved by more than
/// 1 % since the last report.
struct PublishedEstimate<E: BandwidthEstimator> {
    inner: E,
    target: Arc<AtomicU64>,
    reported: f64,
    events: Handler,
}

impl<E: BandwidthEstimator> PublishedEstimate<E> {
    fn publish(&mut self) {
        let target = self.inner.target_bitrate();
        self.target.store(target.to_bits(), Ordering::Relaxed);
        if (target - self.reported).abs() > self.reported * 0.01 {
            self.reported = target;
            self.events.send(PeerEvent::Estimate(target));
        }
    }
}

/// The pacer sends at this multiple of the estimate, as libwebrtc's does (its pace multiplier,
/// 2.5). The encoders aim at the estimate itself; what goes above it at times (a keyframe,
/// retransmissions, packet headers) leaves at once instead of queueing. Paced at exactly the
/// estimate, a call under 15 % loss (where GCC's estimate falls to its floor) queued seconds of
/// audio behind video in the pacer's one queue, and most of it was refused there.
const PACING_FACTOR: f64 = 2.5;

impl<E: BandwidthEstimator> BandwidthEstimator for PublishedEstimate<E> {
    fn on_reports(&mut self, now: Instant, reports: &[PacketReport]) {
        self.inner.on_reports(now, reports);
        self.publish();
    }
    /// What the congestion-control interceptor hands the pacer: the estimate times
    /// [`PACING_FACTOR`]. The encoders read the estimate itself, through `target`.
    fn target_bitrate(&self) -> f64 {
        self.inner.target_bitrate() * PACING_FACTOR
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

fn vp8_codec() -> RTCRtpCodec {
    RTCRtpCodec {
        mime_type: rtc::peer_connection::configuration::media_engine::MIME_TYPE_VP8.to_owned(),
        clock_rate: 90_000,
        channels: 0,
        sdp_fmtp_line: String::new(),
        rtcp_feedback: vec![],
    }
}

fn video_codec_parameters(codec: VideoCodec) -> (RTCRtpCodec, u8) {
    match codec {
        VideoCodec::H264 => (h264_codec(), H264_PAYLOAD_TYPE),
        VideoCodec::Vp8 => (vp8_codec(), VP8_PAYLOAD_TYPE),
    }
}

/// RFC 6464's client-to-mixer audio level.
const AUDIO_LEVEL_URI: &str = "urn:ietf:params:rtp-hdrext:ssrc-audio-level";

fn media_engine(video_codecs: &[VideoCodec]) -> Result<MediaEngine, RtcError> {
    let mut engine = MediaEngine::default();
    engine.register_codec(
        RTCRtpCodecParameters {
            rtp_codec: opus_codec(),
            payload_type: OPUS_PAYLOAD_TYPE,
        },
        RtpCodecKind::Audio,
    )?;
    // In order of preference, then the others: every link can carry both, so a peer that
    // has only one (Firefox without its H.264 plugin: VP8) still gets video.
    let mut ordered: Vec<VideoCodec> = video_codecs.to_vec();
    for codec in [VideoCodec::H264, VideoCodec::Vp8] {
        if !ordered.contains(&codec) {
            ordered.push(codec);
        }
    }
    for codec in &ordered {
        let (rtp_codec, payload_type) = video_codec_parameters(*codec);
        engine.register_codec(
            RTCRtpCodecParameters {
                rtp_codec,
                payload_type,
            },
            RtpCodecKind::Video,
        )?;
    }
    engine.register_feedback(
        RTCPFeedback {
            typ: "ccm".to_owned(),
            parameter: "fir".to_owned(),
        },
        RtpCodecKind::Video,
    );
    // Each Opus packet says how loud it is: the server's SFU forwards a large class the
    // loudest speakers only.
    engine.register_header_extension(
        RTCRtpHeaderExtensionCapability {
            uri: AUDIO_LEVEL_URI.to_owned(),
        },
        RtpCodecKind::Audio,
        None,
    )?;
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
    stream_id: String,
    /// Replaced when negotiation picks another video codec than the one it was made for.
    track: Mutex<Arc<TrackLocalStaticSample>>,
    codec: Mutex<Option<VideoCodec>>,
    ssrc: u32,
    sender: Mutex<Option<Arc<dyn RtpSender>>>,
    payload_type: Mutex<Option<u8>>,
}

fn make_track(
    source: Source,
    stream_id: &str,
    ssrc: u32,
    video_codec: Option<VideoCodec>,
) -> Result<Arc<TrackLocalStaticSample>, RtcError> {
    let (kind, codec) = match (source, video_codec) {
        (Source::Audio, _) => (RtpCodecKind::Audio, opus_codec()),
        (_, codec) => (
            RtpCodecKind::Video,
            video_codec_parameters(codec.unwrap_or(VideoCodec::H264)).0,
        ),
    };
    let track = TrackLocalStaticSample::new(
        Instant::now(),
        MediaStreamTrack::new(
            stream_id.to_owned(),
            // Unique per participant: webrtc-rs routes inbound RTCP (PLI, FIR) by track id,
            // and a remote track of the same id would take our keyframe requests.
            format!("{}-{stream_id}", source.name()),
            source.name().to_owned(),
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
    Ok(Arc::new(track))
}

impl LocalTrack {
    fn new(source: Source, stream_id: &str, video_codec: VideoCodec) -> Result<Self, RtcError> {
        let ssrc = random_ssrc();
        let codec = (source != Source::Audio).then_some(video_codec);
        Ok(LocalTrack {
            source,
            stream_id: stream_id.to_owned(),
            track: Mutex::new(make_track(source, stream_id, ssrc, codec)?),
            codec: Mutex::new(codec),
            ssrc,
            sender: Mutex::new(None),
            payload_type: Mutex::new(None),
        })
    }

    fn current(&self) -> Arc<TrackLocalStaticSample> {
        self.track.lock().clone()
    }
}

/// One encoded unit to send: a video picture (H.264 access unit or VP8 frame) or an Opus
/// packet.
#[derive(Debug, Clone)]
pub struct EncodedUnit {
    pub data: Bytes,
    pub duration: Duration,
    /// The video codec, `None` for audio.
    pub codec: Option<VideoCodec>,
    /// An Opus packet's level, sent in the audio-level header extension (RFC 6464: 0
    /// loudest, 127 silence) so that an SFU can tell the loudest speakers; `None` for video.
    pub audio_level: Option<u8>,
}

/// The peer connection to one remote participant.
pub struct PeerLink {
    user_id: String,
    connection: Arc<dyn PeerConnection>,
    tracks: Vec<Arc<LocalTrack>>,
    tracks_attached: AtomicBool,
    remote_description_set: AtomicBool,
    pending_candidates: Mutex<Vec<RTCIceCandidateInit>>,
    target_bitrate: Arc<AtomicU64>,
    closed: Arc<AtomicBool>,
    video_codecs: Vec<VideoCodec>,
    keep_accepted_codec: bool,
}

impl PeerLink {
    /// Builds the connection. The offering side attaches its tracks now; the answering side
    /// attaches them to the offer's transceivers when the offer arrives.
    pub async fn new(
        user_id: &str,
        local_stream_id: &str,
        ice_servers: &[IceServer],
        options: &PeerOptions,
        offering: bool,
        events: mpsc::UnboundedSender<PeerEvent>,
    ) -> Result<Self, RtcError> {
        let mut engine = media_engine(&options.video_codecs)?;
        let handler = Handler {
            user_id: user_id.to_owned(),
            events: events.clone(),
        };
        let target_bitrate = Arc::new(AtomicU64::new(options.initial_bitrate_bps.to_bits()));
        let estimator = PublishedEstimate {
            inner: Gcc::new(
                options.initial_bitrate_bps,
                options.min_bitrate_bps,
                options.max_bitrate_bps,
            ),
            target: target_bitrate.clone(),
            reported: options.initial_bitrate_bps,
            events: handler.clone(),
        };
        estimator
            .events
            .send(PeerEvent::Estimate(options.initial_bitrate_bps));
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
                    })
                    .collect(),
            )
            .with_ice_transport_policy(if options.relay_only {
                RTCIceTransportPolicy::Relay
            } else {
                RTCIceTransportPolicy::All
            })
            .build();
        let closed = Arc::new(AtomicBool::new(false));
        let connection = PeerConnectionBuilder::new()
            .with_configuration(configuration)
            .with_media_engine(engine)
            .with_interceptor_registry(registry)
            .with_setting_engine(settings)
            .with_handler(Arc::new(handler))
            .with_udp_addrs(vec![std::net::SocketAddr::new(options.bind_ip, 0)])
            .build()
            .await?;
        let connection: Arc<dyn PeerConnection> = Arc::new(connection);
        let preferred = options
            .video_codecs
            .first()
            .copied()
            .unwrap_or(VideoCodec::H264);
        let tracks = Source::ALL
            .into_iter()
            .map(|source| LocalTrack::new(source, local_stream_id, preferred).map(Arc::new))
            .collect::<Result<Vec<_>, _>>()?;
        let link = PeerLink {
            user_id: user_id.to_owned(),
            connection,
            tracks,
            tracks_attached: AtomicBool::new(false),
            remote_description_set: AtomicBool::new(false),
            pending_candidates: Mutex::new(Vec::new()),
            target_bitrate,
            closed,
            video_codecs: options.video_codecs.clone(),
            keep_accepted_codec: options.keep_accepted_codec,
        };
        if offering {
            link.attach_tracks().await?;
        }
        for track in &link.tracks {
            if track.source != Source::Audio {
                spawn_keyframe_watch(
                    track.clone(),
                    track.source,
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

    async fn attach_tracks(&self) -> Result<(), RtcError> {
        if self.tracks_attached.swap(true, Ordering::SeqCst) {
            return Ok(());
        }
        // Offering: webrtc-rs narrows a transceiver to its track's codec; we offer every codec
        // we have, in our order, and adopt the one the answer picks.
        let offering = !self.remote_description_set.load(Ordering::SeqCst);
        for track in &self.tracks {
            let sender = self
                .connection
                .add_track(track.current() as Arc<dyn TrackLocal>)
                .await
                .map_err(|source| {
                    tracing::warn!(track = ?track.source, codec = ?*track.codec.lock(), "attaching failed");
                    RtcError::step("attaching a track", source)
                })?;
            if offering && track.source != Source::Audio {
                for transceiver in self.connection.get_transceivers().await {
                    let Ok(Some(owner)) = transceiver.sender().await else {
                        continue;
                    };
                    if owner.id() == sender.id() {
                        // Empty: the media engine's codecs, in registration (preference) order.
                        transceiver
                            .set_codec_preferences(Vec::new())
                            .await
                            .map_err(|source| {
                                RtcError::step("offering every video codec", source)
                            })?;
                    }
                }
            }
            *track.sender.lock() = Some(sender);
        }
        Ok(())
    }

    pub(crate) async fn create_offer(&self) -> Result<SessionDescription, RtcError> {
        let offer = self.connection.create_offer(None).await?;
        self.connection.set_local_description(offer).await?;
        self.local_description().await
    }

    pub(crate) async fn restart_ice(&self) -> Result<SessionDescription, RtcError> {
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

    pub(crate) async fn accept_offer(
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
        if !self.tracks_attached.load(Ordering::SeqCst) {
            // Our video tracks must carry a codec the offer has: the first of the offer's
            // (its preference) that we know.
            let offered = offer_video_codecs(&offer.sdp, &self.video_codecs);
            for track in &self.tracks {
                let place = match track.source {
                    Source::Audio => continue,
                    Source::Camera => 0,
                    Source::Screen => 1,
                };
                if let Some(Some(codec)) = offered.get(place).copied()
                    && *track.codec.lock() != Some(codec)
                {
                    *track.track.lock() =
                        make_track(track.source, &track.stream_id, track.ssrc, Some(codec))?;
                    *track.codec.lock() = Some(codec);
                }
            }
        }
        self.attach_tracks().await?;
        let answer = self.connection.create_answer(None).await?;
        self.connection.set_local_description(answer).await?;
        // What we send is what we chose from the offer above (any codec in the answer is
        // one the offerer decodes), not necessarily the first one the answer lists.
        self.forget_payload_types();
        self.local_description().await
    }

    pub(crate) async fn accept_answer(&self, answer: &SessionDescription) -> Result<(), RtcError> {
        let description = RTCSessionDescription::answer(answer.sdp.clone())
            .map_err(|error| RtcError::InvalidSdp(error.to_string()))?;
        self.connection
            .set_remote_description(description)
            .await
            .map_err(|error| RtcError::InvalidSdp(error.to_string()))?;
        self.forget_payload_types();
        self.fit_tracks_to_negotiation().await?;
        self.remote_description_applied().await;
        Ok(())
    }

    /// After negotiation: a video track made for another codec than the one negotiated is
    /// replaced by one for the negotiated codec (same SSRC, same ids), so what we send is
    /// what the remote decodes. The negotiated codec of an m-line is the first format of the
    /// answer's m-line (whichever side wrote the answer).
    async fn fit_tracks_to_negotiation(&self) -> Result<(), RtcError> {
        let local = self.connection.current_local_description().await;
        let remote = self.connection.current_remote_description().await;
        let answer = [local, remote]
            .into_iter()
            .flatten()
            .find(|description| description.sdp_type == RTCSdpType::Answer);
        let Some(answer) = answer else {
            return Ok(());
        };
        let negotiated = answer_video_codecs(&answer.sdp);
        let accepted = answer_video_codec_lists(&answer.sdp);
        for track in &self.tracks {
            let place = match track.source {
                Source::Audio => continue,
                Source::Camera => 0,
                Source::Screen => 1,
            };
            let Some(Some(codec)) = negotiated.get(place).copied() else {
                continue;
            };
            let current = *track.codec.lock();
            if current == Some(codec) {
                continue;
            }
            if self.keep_accepted_codec
                && current
                    .is_some_and(|c| accepted.get(place).is_some_and(|list| list.contains(&c)))
            {
                continue;
            }
            let Some(sender) = track.sender.lock().clone() else {
                continue;
            };
            let replacement = make_track(track.source, &track.stream_id, track.ssrc, Some(codec))?;
            sender
                .replace_track(replacement.clone() as Arc<dyn TrackLocal>)
                .await
                .map_err(|source| RtcError::step("switching the track's codec", source))?;
            *track.track.lock() = replacement;
            *track.codec.lock() = Some(codec);
            *track.payload_type.lock() = None;
            tracing::debug!(user = %self.user_id, source = ?track.source, ?codec, "video codec");
        }
        Ok(())
    }

    /// The video codec negotiated on this link (the camera's), once known.
    pub(crate) fn video_codec(&self) -> Option<VideoCodec> {
        self.tracks
            .iter()
            .find(|track| track.source == Source::Camera)
            .and_then(|track| *track.codec.lock())
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
    pub(crate) async fn add_remote_candidate(
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
        let codecs = &parameters.rtp_parameters.codecs;
        // The payload type of the codec this track carries (the first one for audio).
        let payload_type = match *track.codec.lock() {
            Some(codec) => {
                codecs
                    .iter()
                    .find(|c| VideoCodec::from_mime_type(&c.rtp_codec.mime_type) == Some(codec))?
                    .payload_type
            }
            None => codecs.first()?.payload_type,
        };
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
        if unit.codec.is_some() && unit.codec != *track.codec.lock() {
            return Ok(false); // encoded for links that use the other codec
        }
        let Some(payload_type) = self.payload_type(track).await else {
            return Ok(false);
        };
        let sample = Sample {
            data: unit.data.clone(),
            duration: unit.duration,
            ..Sample::new(Instant::now())
        };
        let current = track.current();
        let mut writer = current.sample_writer(track.ssrc, payload_type);
        if let Some(level) = unit.audio_level {
            writer = writer.with_audio_level(AudioLevelExtension {
                level,
                // No voice detector's verdict travels here: "voice" is a level above
                // −50 dBov, which a speaking student's microphone is.
                voice: level < 50,
            });
        }
        match writer.write_sample(&sample).await {
            Ok(()) => Ok(true),
            // Not bound yet (negotiation still running): nothing to send to.
            Err(webrtc::error::Error::Other(message)) if message.contains("not binding") => {
                Ok(false)
            }
            Err(error) => Err(error.into()),
        }
    }

    /// Settles what a remote track carries from its transceiver's place: audio, then the
    /// first video transceiver (the camera), then the second (the screen). A browser's track
    /// ids are random, so the order of the m-lines is what both sides agree on. A track not
    /// (or no longer) on this connection keeps the source its kind and name suggested.
    pub(crate) async fn place_track(&self, track: &mut RemoteTrack) {
        if track.track.kind().await == RtpCodecKind::Audio {
            track.source = Source::Audio;
            return;
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
            if Arc::ptr_eq(remote, &track.track) {
                track.source = if video_index == 0 {
                    Source::Camera
                } else {
                    Source::Screen
                };
                return;
            }
            video_index += 1;
        }
    }

    /// The congestion controller's current estimate for what this link carries.
    pub(crate) fn target_bitrate_bps(&self) -> f64 {
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

/// For each video m-line of an offer, in order, the codec we send on it: the first of `ours`
/// (our preference) that the offer has, else the first one of the offer's that we know.
pub(crate) fn offer_video_codecs(sdp: &str, ours: &[VideoCodec]) -> Vec<Option<VideoCodec>> {
    video_sections(sdp)
        .iter()
        .map(|(media, attributes)| {
            let offered: Vec<VideoCodec> = media
                .split_whitespace()
                .skip(3)
                .filter_map(|format| codec_of_format(attributes, format))
                .collect();
            ours.iter()
                .copied()
                .find(|codec| offered.contains(codec))
                .or_else(|| offered.first().copied())
        })
        .collect()
}

fn video_sections(sdp: &str) -> Vec<(String, Vec<String>)> {
    let mut sections: Vec<(String, Vec<String>)> = Vec::new(); // (m= line, attribute lines)
    for line in sdp.lines() {
        let line = line.trim_end();
        if line.starts_with("m=") {
            sections.push((line.to_owned(), Vec::new()));
        } else if let Some((_, attributes)) = sections.last_mut() {
            attributes.push(line.to_owned());
        }
    }
    sections.retain(|(media, _)| media.starts_with("m=video"));
    sections
}

fn codec_of_format(attributes: &[String], format: &str) -> Option<VideoCodec> {
    attributes.iter().find_map(|attribute| {
        let rest = attribute.strip_prefix("a=rtpmap:")?;
        let (payload_type, encoding) = rest.split_once(' ')?;
        if payload_type != format {
            return None;
        }
        let name = encoding.split('/').next()?;
        VideoCodec::from_mime_type(&format!("video/{name}"))
    })
}

/// For each video m-line of an answer, in order, the codec its first format names (if one we
/// know).
pub(crate) fn answer_video_codecs(sdp: &str) -> Vec<Option<VideoCodec>> {
    video_sections(sdp)
        .iter()
        .map(|(media, attributes)| {
            // m=video <port> <proto> <fmt> <fmt>…: the first format is the one in use.
            let first = media.split_whitespace().nth(3)?;
            codec_of_format(attributes, first)
        })
        .collect()
}

/// Every codec each video m-line of an answer accepts, in its order.
fn answer_video_codec_lists(sdp: &str) -> Vec<Vec<VideoCodec>> {
    video_sections(sdp)
        .iter()
        .map(|(media, attributes)| {
            media
                .split_whitespace()
                .skip(3)
                .filter_map(|format| codec_of_format(attributes, format))
                .collect()
        })
        .collect()
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
    track: Arc<LocalTrack>,
    source: Source,
    events: mpsc::UnboundedSender<PeerEvent>,
    closed: Arc<AtomicBool>,
) {
    tokio::spawn(async move {
        while !closed.load(Ordering::Relaxed) {
            // The track in use now (negotiation may have replaced it).
            let current = track.current();
            match current.poll().await {
                Some(TrackLocalEvent::OnRtcpPacket(packets)) => {
                    if packets
                        .iter()
                        .any(|packet| is_keyframe_request(packet.as_ref()))
                    {
                        let _ = events.send(PeerEvent::KeyframeRequested(source));
                    }
                }
                Some(_) => {}
                // Not bound yet, or unbound: look again shortly.
                None => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn link(codecs: &[VideoCodec], offering: bool, name: &str) -> PeerLink {
        let (events, _) = mpsc::unbounded_channel();
        let options = PeerOptions {
            bind_ip: IpAddr::from([127, 0, 0, 1]),
            video_codecs: codecs.to_vec(),
            ..PeerOptions::default()
        };
        PeerLink::new(
            name,
            &format!("classroom-{name}"),
            &[],
            &options,
            offering,
            events,
        )
        .await
        .expect("peer connection")
    }

    /// Only the SDP is exchanged (no candidates): nothing is sent anywhere.
    #[tokio::test]
    async fn an_answerer_that_prefers_vp8_sends_vp8_to_an_offerer_that_prefers_h264() {
        let offerer = link(&[VideoCodec::H264, VideoCodec::Vp8], true, "a").await;
        let answerer = link(&[VideoCodec::Vp8, VideoCodec::H264], false, "b").await;
        let offer = offerer.create_offer().await.expect("offer");
        // The offer carries every codec, in the offerer's order, not just its track's.
        let offered = video_sections(&offer.sdp)[0].0.clone();
        assert!(
            offered.ends_with(&format!("{H264_PAYLOAD_TYPE} {VP8_PAYLOAD_TYPE}")),
            "{offered}"
        );
        let answer = answerer.accept_offer(&offer).await.expect("answer");
        offerer
            .accept_answer(&answer)
            .await
            .expect("answer accepted");
        assert_eq!(answerer.video_codec(), Some(VideoCodec::Vp8));
        // The offerer sends what the answer put first; both codecs are in the answer, so
        // either way each side decodes what the other sends.
        assert_eq!(offerer.video_codec(), answer_video_codecs(&answer.sdp)[0]);
        offerer.close().await;
        answerer.close().await;
    }

    #[test]
    fn the_first_format_of_each_video_m_line_of_an_answer_is_its_codec() {
        let sdp = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n\
                   m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=rtpmap:111 opus/48000/2\r\n\
                   m=video 9 UDP/TLS/RTP/SAVPF 96 102\r\na=rtpmap:102 H264/90000\r\na=rtpmap:96 VP8/90000\r\n\
                   m=video 9 UDP/TLS/RTP/SAVPF 102\r\na=rtpmap:102 H264/90000\r\n\
                   m=video 0 UDP/TLS/RTP/SAVPF 45\r\na=rtpmap:45 AV1/90000\r\n";
        assert_eq!(
            answer_video_codecs(sdp),
            vec![Some(VideoCodec::Vp8), Some(VideoCodec::H264), None]
        );
    }
}
