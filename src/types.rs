//! The small types every layer names: a media source, a video codec, a link and its state.
//! They live here, below `rtc` and `session`, so neither layer has to import the other for
//! them.

use serde::Serialize;

/// A local source, or what a remote track carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    Audio,
    Camera,
    Screen,
}

impl Source {
    pub const ALL: [Source; 3] = [Source::Audio, Source::Camera, Source::Screen];
    /// The two video sources.
    pub(crate) const VIDEO: [Source; 2] = [Source::Camera, Source::Screen];

    /// The name tracks, stats and logs use.
    pub fn name(self) -> &'static str {
        match self {
            Source::Audio => "audio",
            Source::Camera => "camera",
            Source::Screen => "screen",
        }
    }
}

/// A video codec a link can carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VideoCodec {
    /// Constrained baseline, packetization-mode 1: what every browser decodes.
    H264,
    /// What Firefox sends without its H.264 plugin; every WebRTC browser has it.
    Vp8,
}

impl VideoCodec {
    pub const ALL: [VideoCodec; 2] = [VideoCodec::H264, VideoCodec::Vp8];

    /// The SDP/RTP mime type (the simulated links name codecs by it).
    #[cfg(test)]
    pub(crate) fn mime_type(self) -> &'static str {
        match self {
            VideoCodec::H264 => "video/H264",
            VideoCodec::Vp8 => "video/VP8",
        }
    }

    /// From an SDP/RTP mime type (any case).
    pub(crate) fn from_mime_type(mime: &str) -> Option<Self> {
        match mime.to_ascii_lowercase().as_str() {
            "video/h264" => Some(VideoCodec::H264),
            "video/vp8" => Some(VideoCodec::Vp8),
            _ => None,
        }
    }

    pub fn index(self) -> usize {
        match self {
            VideoCodec::H264 => 0,
            VideoCodec::Vp8 => 1,
        }
    }
}

/// A set of video codecs (the ones to encode, say).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct CodecSet([bool; 2]);

impl CodecSet {
    pub(crate) const EMPTY: CodecSet = CodecSet([false; 2]);

    pub fn with(mut self, codec: VideoCodec) -> Self {
        self.0[codec.index()] = true;
        self
    }

    pub fn contains(self, codec: VideoCodec) -> bool {
        self.0[codec.index()]
    }

    /// The codecs in `self` that `before` did not have.
    pub(crate) fn added_since(self, before: CodecSet) -> impl Iterator<Item = VideoCodec> {
        VideoCodec::ALL
            .into_iter()
            .filter(move |codec| self.contains(*codec) && !before.contains(*codec))
    }

    pub fn iter(self) -> impl Iterator<Item = VideoCodec> {
        VideoCodec::ALL
            .into_iter()
            .filter(move |codec| self.contains(*codec))
    }
}

/// A link's (peer connection's) state, as the transport reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum PeerConnState {
    New,
    Connecting,
    Connected,
    Disconnected,
    Failed,
    Closed,
}

/// One media link of the call, as the session core and the engine name it. A mesh has one
/// per remote participant, carrying that participant's tracks; a topology with a media
/// server adds its own kind of link (one carrying every participant's tracks), and the rules
/// that negotiate it, beside these.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum LinkId {
    /// The peer connection to this participant (by user id).
    Peer(String),
    /// The one peer connection to the server's SFU, which carries everyone's tracks.
    Sfu,
}

impl LinkId {
    pub fn peer(user_id: impl Into<String>) -> Self {
        LinkId::Peer(user_id.into())
    }

    /// The participant whose tracks the link carries (a peer link's other end); none for the
    /// SFU's link, whose tracks are everyone's (each says whose it is).
    pub fn participant(&self) -> Option<&str> {
        match self {
            LinkId::Peer(user_id) => Some(user_id),
            LinkId::Sfu => None,
        }
    }
}

impl std::fmt::Display for LinkId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LinkId::Peer(user_id) => f.write_str(user_id),
            LinkId::Sfu => f.write_str("the SFU"),
        }
    }
}
