//! The video codecs behind two traits, so the call picks an encoder or a decoder by
//! [`VideoCodec`] and never matches on the codec again: H.264 (openh264) and VP8 (libvpx).

use crate::media::frame::{I420Frame, I420View};
use crate::media::h264::{CodecError, EncodedFrame, EncoderSettings, H264Decoder, H264Encoder};
use crate::media::vp8::{Vp8Decoder, Vp8Encoder};
use crate::types::VideoCodec;

pub(crate) trait VideoEncoder: Send {
    fn encode(&mut self, frame: &I420Frame) -> Result<EncodedFrame, CodecError>;
    fn set_bitrate(&mut self, bps: u32) -> Result<(), CodecError>;
    /// The next picture is a keyframe.
    fn request_keyframe(&mut self);
}

pub(crate) trait VideoDecoder: Send {
    /// Decodes one picture's data; `use_picture` sees the picture if one came out (a decoder
    /// may hold one back). Returns whether it did.
    fn decode_into(
        &mut self,
        data: &[u8],
        use_picture: &mut dyn FnMut(I420View<'_>),
    ) -> Result<bool, CodecError>;
}

/// An encoder for `codec`.
pub(crate) fn encoder_for(
    codec: VideoCodec,
    settings: EncoderSettings,
) -> Result<Box<dyn VideoEncoder>, CodecError> {
    Ok(match codec {
        VideoCodec::H264 => Box::new(H264Encoder::new(settings)?),
        VideoCodec::Vp8 => Box::new(Vp8Encoder::new(settings)?),
    })
}

/// A decoder for `codec`.
pub(crate) fn decoder_for(codec: VideoCodec) -> Result<Box<dyn VideoDecoder>, CodecError> {
    Ok(match codec {
        VideoCodec::H264 => Box::new(H264Decoder::new()?),
        VideoCodec::Vp8 => Box::new(Vp8Decoder::new()?),
    })
}

macro_rules! video_codec_traits {
    ($encoder:ty, $decoder:ty) => {
        impl VideoEncoder for $encoder {
            fn encode(&mut self, frame: &I420Frame) -> Result<EncodedFrame, CodecError> {
                <$encoder>::encode(self, frame)
            }
            fn set_bitrate(&mut self, bps: u32) -> Result<(), CodecError> {
                <$encoder>::set_bitrate(self, bps)
            }
            fn request_keyframe(&mut self) {
                <$encoder>::request_keyframe(self)
            }
        }

        impl VideoDecoder for $decoder {
            fn decode_into(
                &mut self,
                data: &[u8],
                use_picture: &mut dyn FnMut(I420View<'_>),
            ) -> Result<bool, CodecError> {
                self.decode_view(data, |picture| use_picture(picture))
                    .map(|shown| shown.is_some())
            }
        }
    };
}

video_codec_traits!(H264Encoder, H264Decoder);
video_codec_traits!(Vp8Encoder, Vp8Decoder);
