//! A track a remote participant sends us, as the rest of the app sees it: what it carries,
//! its RTP packets, and a way to ask its sender for a keyframe. webrtc-rs's track type stays
//! in here.

use std::sync::Arc;

use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use webrtc::media_stream::track_remote::{TrackRemote, TrackRemoteEvent};

use super::RtcError;
use super::assembler::RtpPiece;
use crate::types::{Source, VideoCodec};

/// One remote track.
pub struct RemoteTrack {
    pub(super) track: Arc<dyn TrackRemote>,
    pub(super) source: Source,
}

impl RemoteTrack {
    /// What the track carries.
    pub fn source(&self) -> Source {
        self.source
    }

    /// The video codec the remote sends on it, as negotiated (`None` for audio, or when the
    /// track does not say).
    pub(crate) async fn video_codec(&self) -> Option<VideoCodec> {
        let ssrc = *self.track.ssrcs().await.first()?;
        let codec = self.track.codec(ssrc).await?;
        VideoCodec::from_mime_type(&codec.mime_type)
    }

    /// The next RTP packet; `None` once the track has ended. Cancel-safe.
    pub(crate) async fn next_packet(&self) -> Option<RtpPiece> {
        loop {
            match self.track.poll().await? {
                TrackRemoteEvent::OnRtpPacket(packet) => {
                    return Some(RtpPiece {
                        sequence_number: packet.header.sequence_number,
                        timestamp: packet.header.timestamp,
                        marker: packet.header.marker,
                        payload: packet.payload,
                    });
                }
                _ => continue,
            }
        }
    }

    /// Asks the sender for a keyframe (RTCP PLI).
    pub(crate) async fn request_keyframe(&self) -> Result<(), RtcError> {
        let Some(media_ssrc) = self.track.ssrcs().await.first().copied() else {
            return Ok(()); // nothing received yet: nothing to ask about
        };
        let pli = PictureLossIndication {
            sender_ssrc: 0,
            media_ssrc,
        };
        self.track
            .write_rtcp(vec![Box::new(pli)])
            .await
            .map_err(|source| RtcError::step("asking for a keyframe", source))
    }
}
