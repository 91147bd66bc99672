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

    pub(crate) fn set_source(&mut self, source: Source) {
        self.source = source;
    }

    /// The media stream the sender put the track in: on the SFU's connection, the user id of
    /// the participant whose track it is.
    pub(crate) async fn stream_id(&self) -> String {
        self.track.stream_id().await.to_string()
    }

    /// On the SFU's connection the track id says what the track carries (`camera-17`,
    /// `screen-4`, `audio-9`: its source, then the server's number for it); the source
    /// guessed from it, when it does.
    pub(crate) async fn sfu_source(&self) -> Option<Source> {
        let id = self.track.track_id().await.to_string();
        let (name, _) = id.split_once('-')?;
        Source::ALL.into_iter().find(|s| s.name() == name)
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
