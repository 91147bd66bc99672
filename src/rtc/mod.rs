//! The transport layer: one WebRTC peer connection per remote participant (a mesh, as in the
//! browser version), and the pieces that turn RTP back into pictures. No UI here, no
//! signaling: the session decides, this layer carries out.

pub mod assembler;
pub mod peer;

pub use peer::{EncodedUnit, PeerEvent, PeerEventKind, PeerLink, PeerOptions, RtcError, Source};

/// A video codec a link can carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VideoCodec {
    /// Constrained baseline, packetization-mode 1: what every browser decodes.
    H264,
    /// What Firefox sends without its H.264 plugin; every WebRTC browser has it.
    Vp8,
}

impl VideoCodec {
    pub fn mime_type(self) -> &'static str {
        match self {
            VideoCodec::H264 => "video/H264",
            VideoCodec::Vp8 => "video/VP8",
        }
    }

    /// From an SDP/RTP mime type (any case).
    pub fn from_mime_type(mime: &str) -> Option<Self> {
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
