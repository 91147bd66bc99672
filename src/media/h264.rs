//! H.264 encode and decode with OpenH264 (the browsers' own software H.264): constrained
//! baseline, SPS/PPS in-band with every keyframe, runtime bitrate and frame rate, forced
//! keyframes; separate tuning for camera and screen content.

use std::time::Duration;

use openh264::OpenH264API;
use openh264::decoder::Decoder;
use openh264::encoder::{
    BitRate, Complexity, Encoder, EncoderConfig, FrameRate, FrameType, IntraFramePeriod, Profile,
    RateControlMode, SpsPpsStrategy, UsageType,
};
use openh264::formats::YUVSource;

use crate::media::frame::{I420Frame, I420View, RgbaFrame};

#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    #[error("H.264 encoder: {0}")]
    Encoder(String),
    #[error("H.264 decoder: {0}")]
    Decoder(String),
    #[error("VP8 encoder: {0}")]
    Vp8Encoder(String),
    #[error("VP8 decoder: {0}")]
    Vp8Decoder(String),
    #[error("invalid picture size {width}×{height} (must be even and non-zero)")]
    InvalidSize { width: usize, height: usize },
}

/// What is being encoded: decides the encoder's tuning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContentKind {
    /// Camera: motion matters more than detail; frames may be skipped to hold the bitrate.
    Camera,
    /// Screen: text must stay sharp; OpenH264's screen-content mode, no frame skipping.
    Screen,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EncoderSettings {
    pub bitrate_bps: u32,
    pub max_fps: f32,
    /// Frames between keyframes (besides the ones forced by a receiver's PLI/FIR).
    pub keyframe_interval: u32,
    pub content: ContentKind,
    /// Encoder threads; 1 keeps the cost of one stream on one core.
    pub threads: u16,
}

impl EncoderSettings {
    pub fn camera(bitrate_bps: u32, max_fps: f32) -> Self {
        EncoderSettings {
            bitrate_bps,
            max_fps,
            keyframe_interval: 300,
            content: ContentKind::Camera,
            threads: 1,
        }
    }

    pub fn screen(bitrate_bps: u32, max_fps: f32) -> Self {
        EncoderSettings {
            bitrate_bps,
            max_fps,
            keyframe_interval: 600,
            content: ContentKind::Screen,
            threads: 1,
        }
    }
}

/// One encoded picture: Annex-B NAL units (start codes included), as RTP packetizers take them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodedFrame {
    pub data: Vec<u8>,
    pub keyframe: bool,
    pub capture_time: Duration,
}

pub struct H264Encoder {
    encoder: Encoder,
    settings: EncoderSettings,
    /// Size of the last picture: OpenH264 starts (and restarts, on a new size) with the
    /// picture, and only then takes run-time options; rates set before are applied then.
    started_size: Option<(usize, usize)>,
}

impl H264Encoder {
    pub fn new(settings: EncoderSettings) -> Result<Self, CodecError> {
        let config = EncoderConfig::new()
            .profile(Profile::Baseline)
            .bitrate(BitRate::from_bps(settings.bitrate_bps))
            .max_frame_rate(FrameRate::from_hz(settings.max_fps))
            .rate_control_mode(RateControlMode::Bitrate)
            .sps_pps_strategy(SpsPpsStrategy::ConstantId)
            .intra_frame_period(IntraFramePeriod::from_num_frames(
                settings.keyframe_interval,
            ))
            .num_threads(settings.threads)
            .complexity(Complexity::Low)
            .usage_type(match settings.content {
                ContentKind::Camera => UsageType::CameraVideoRealTime,
                ContentKind::Screen => UsageType::ScreenContentRealTime,
            })
            .skip_frames(settings.content == ContentKind::Camera)
            .scene_change_detect(true)
            .adaptive_quantization(settings.content == ContentKind::Camera)
            .background_detection(settings.content == ContentKind::Camera);
        let encoder = Encoder::with_api_config(OpenH264API::from_source(), config)
            .map_err(|e| CodecError::Encoder(e.to_string()))?;
        Ok(H264Encoder {
            encoder,
            settings,
            started_size: None,
        })
    }

    pub fn settings(&self) -> EncoderSettings {
        self.settings
    }

    /// The next encoded frame is a keyframe (a receiver asked with PLI/FIR, or a new viewer).
    pub(crate) fn request_keyframe(&mut self) {
        self.encoder.force_intra_frame();
    }

    /// Changes the target bitrate from the next frame on (the bandwidth estimate moved).
    ///
    /// OpenH264 refuses a target above the layer's maximum (which starts at the initial
    /// bitrate), so the maximum moves with the target: first when raising, last when lowering.
    pub(crate) fn set_bitrate(&mut self, bps: u32) -> Result<(), CodecError> {
        let bps = bps.clamp(16_000, i32::MAX as u32 / 2);
        if self.started_size.is_none() {
            // Not started yet: applied with the first picture.
            self.settings.bitrate_bps = bps;
            return Ok(());
        }
        self.apply_bitrate(bps)
    }

    fn apply_bitrate(&mut self, bps: u32) -> Result<(), CodecError> {
        let maximum = bps + bps / 2;
        if bps >= self.settings.bitrate_bps {
            self.set_max_bitrate(maximum)?;
            self.set_target_bitrate(bps)?;
        } else {
            self.set_target_bitrate(bps)?;
            self.set_max_bitrate(maximum)?;
        }
        self.settings.bitrate_bps = bps;
        Ok(())
    }

    fn set_target_bitrate(&mut self, bps: u32) -> Result<(), CodecError> {
        let mut info = openh264_sys2::SBitrateInfo {
            iLayer: openh264_sys2::SPATIAL_LAYER_ALL,
            iBitrate: bps as i32,
        };
        // SAFETY: ENCODER_OPTION_BITRATE takes an SBitrateInfo.
        unsafe { self.set_option(openh264_sys2::ENCODER_OPTION_BITRATE, &mut info, "bitrate") }
    }

    fn set_max_bitrate(&mut self, bps: u32) -> Result<(), CodecError> {
        for layer in [
            openh264_sys2::SPATIAL_LAYER_0,
            openh264_sys2::SPATIAL_LAYER_ALL,
        ] {
            let mut info = openh264_sys2::SBitrateInfo {
                iLayer: layer,
                iBitrate: bps as i32,
            };
            // SAFETY: ENCODER_OPTION_MAX_BITRATE takes an SBitrateInfo.
            unsafe {
                self.set_option(
                    openh264_sys2::ENCODER_OPTION_MAX_BITRATE,
                    &mut info,
                    "maximum bitrate",
                )?
            };
        }
        Ok(())
    }

    fn apply_frame_rate(&mut self, fps: f32) -> Result<(), CodecError> {
        let mut value = fps;
        // SAFETY: ENCODER_OPTION_FRAME_RATE takes a float.
        unsafe {
            self.set_option(
                openh264_sys2::ENCODER_OPTION_FRAME_RATE,
                &mut value,
                "frame rate",
            )?
        };
        self.settings.max_fps = fps;
        Ok(())
    }

    /// Sets one OpenH264 encoder option at run time.
    ///
    /// # Safety
    /// `T` must be the type OpenH264 expects for `option`. The value lives for the call and the
    /// encoder is initialized (made by `with_api_config`).
    unsafe fn set_option<T>(
        &mut self,
        option: openh264_sys2::ENCODER_OPTION,
        value: &mut T,
        what: &str,
    ) -> Result<(), CodecError> {
        let rc = unsafe {
            self.encoder
                .raw_api()
                .set_option(option, (value as *mut T).cast())
        };
        if rc != 0 {
            return Err(CodecError::Encoder(format!(
                "setting the {what} failed ({rc})"
            )));
        }
        Ok(())
    }

    /// Encodes one picture. An empty `data` means the rate control skipped this frame.
    pub fn encode(&mut self, frame: &I420Frame) -> Result<EncodedFrame, CodecError> {
        if frame.width == 0
            || frame.height == 0
            || !frame.width.is_multiple_of(2)
            || !frame.height.is_multiple_of(2)
        {
            return Err(CodecError::InvalidSize {
                width: frame.width,
                height: frame.height,
            });
        }
        let timestamp = openh264::Timestamp::from_millis(frame.capture_time.as_millis() as u64);
        let bitstream = self
            .encoder
            .encode_at(frame, timestamp)
            .map_err(|e| CodecError::Encoder(e.to_string()))?;
        let keyframe = matches!(bitstream.frame_type(), FrameType::IDR | FrameType::I);
        let data = if matches!(bitstream.frame_type(), FrameType::Skip | FrameType::Invalid) {
            Vec::new()
        } else {
            bitstream.to_vec()
        };
        let size = (frame.width, frame.height);
        if self.started_size != Some(size) {
            // (Re)started with this picture, from the initial configuration: bring the rates
            // set since back.
            self.started_size = Some(size);
            let (bps, fps) = (self.settings.bitrate_bps, self.settings.max_fps);
            self.apply_bitrate(bps)?;
            self.apply_frame_rate(fps)?;
        }
        Ok(EncodedFrame {
            data,
            keyframe,
            capture_time: frame.capture_time,
        })
    }
}

/// Standard deviation of a luma plane over a sparse 32×32 grid: a blank (flat) picture has
/// none.
pub(crate) fn luma_spread(luma: &[u8], width: usize, height: usize, stride: usize) -> f64 {
    let mut samples = Vec::with_capacity(1024);
    for y in (0..height).step_by((height / 32).max(1)) {
        for x in (0..width).step_by((width / 32).max(1)) {
            if let Some(value) = luma.get(y * stride + x) {
                samples.push(f64::from(*value));
            }
        }
    }
    let count = samples.len().max(1) as f64;
    let mean = samples.iter().sum::<f64>() / count;
    (samples.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / count).sqrt()
}

/// What a receiver that shows nothing learns from a decoded picture.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct DecodedSummary {
    pub width: usize,
    pub height: usize,
    pub stamp: Option<crate::media::stamp::Stamp>,
    /// Standard deviation of the luma over a sparse grid (0 for a flat, blank picture).
    pub luma_spread: f64,
}

pub struct H264Decoder {
    decoder: Decoder,
}

impl H264Decoder {
    pub fn new() -> Result<Self, CodecError> {
        Ok(H264Decoder {
            decoder: Decoder::new().map_err(|e| CodecError::Decoder(e.to_string()))?,
        })
    }

    /// Decodes one access unit and hands the decoder's own picture to `use_picture` (no
    /// copy); `None` while there is no picture yet.
    pub(crate) fn decode_view<T>(
        &mut self,
        data: &[u8],
        use_picture: impl FnOnce(I420View<'_>) -> T,
    ) -> Result<Option<T>, CodecError> {
        let Some(yuv) = self.next_picture(data)? else {
            return Ok(None);
        };
        let (width, height) = yuv.dimensions();
        let (y_stride, u_stride, v_stride) = yuv.strides();
        Ok(Some(use_picture(I420View {
            width,
            height,
            y: yuv.y(),
            u: yuv.u(),
            v: yuv.v(),
            y_stride,
            u_stride,
            v_stride,
        })))
    }

    /// Decodes one access unit (Annex-B) into I420; `None` while the decoder has no picture yet
    /// (e.g. waiting for a keyframe).
    pub fn decode(&mut self, data: &[u8]) -> Result<Option<I420Frame>, CodecError> {
        let Some(yuv) = self.next_picture(data)? else {
            return Ok(None);
        };
        let (width, height) = yuv.dimensions();
        let (ys, us, vs) = yuv.strides();
        let (cw, ch) = (width / 2, height / 2);
        let mut frame = I420Frame::black(width & !1, height & !1);
        copy_plane(yuv.y(), ys, &mut frame.y, width & !1, height & !1);
        copy_plane(yuv.u(), us, &mut frame.u, cw, ch);
        copy_plane(yuv.v(), vs, &mut frame.v, cw, ch);
        Ok(Some(frame))
    }

    /// Decodes one access unit straight into RGBA (for the UI), reusing `out`'s buffer.
    pub fn decode_rgba(&mut self, data: &[u8], out: &mut RgbaFrame) -> Result<bool, CodecError> {
        let Some(yuv) = self.next_picture(data)? else {
            return Ok(false);
        };
        let (width, height) = yuv.dimensions();
        out.width = width;
        out.height = height;
        out.pixels.resize(yuv.rgba8_len(), 0);
        yuv.write_rgba8(&mut out.pixels);
        Ok(true)
    }

    fn next_picture(
        &mut self,
        data: &[u8],
    ) -> Result<Option<openh264::decoder::DecodedYUV<'_>>, CodecError> {
        self.decoder
            .decode(data)
            .map_err(|e| CodecError::Decoder(e.to_string()))
    }
}

fn copy_plane(src: &[u8], stride: usize, dst: &mut [u8], width: usize, height: usize) {
    for row in 0..height {
        dst[row * width..(row + 1) * width]
            .copy_from_slice(&src[row * stride..row * stride + width]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::stamp;
    use crate::media::synthetic::{PatternKind, TestPattern};

    fn round_trip(kind: PatternKind, settings: EncoderSettings, (w, h): (usize, usize)) {
        let mut pattern = TestPattern::new(w, h, kind);
        let mut encoder = H264Encoder::new(settings).unwrap();
        let mut decoder = H264Decoder::new().unwrap();
        let mut decoded = 0;
        for i in 0..30u64 {
            let frame = pattern.next_frame(Duration::from_millis(i * 33));
            let encoded = encoder.encode(&frame).unwrap();
            if i == 0 {
                assert!(encoded.keyframe, "the first frame is a keyframe");
                assert!(
                    has_nal(&encoded.data, 7) && has_nal(&encoded.data, 8),
                    "SPS and PPS in-band"
                );
            }
            if encoded.data.is_empty() {
                continue;
            }
            let picture = decoder
                .decode(&encoded.data)
                .unwrap()
                .expect("a picture per access unit");
            let read = stamp::read_luma(&picture.y, w, h, w).expect("stamp survives the codec");
            assert_eq!(read.counter as u64, i);
            assert_eq!(read.capture_time, Duration::from_millis(i * 33));
            decoded += 1;
        }
        assert!(decoded >= 25, "{decoded} of 30 frames decoded");
    }

    /// Whether an Annex-B stream holds a NAL unit of `kind` (7 = SPS, 8 = PPS, 5 = IDR slice).
    fn has_nal(data: &[u8], kind: u8) -> bool {
        data.windows(4)
            .any(|w| w[..3] == [0, 0, 1] && w[3] & 0x1f == kind)
    }

    #[test]
    fn camera_frames_round_trip_with_their_stamps() {
        round_trip(
            PatternKind::Camera,
            EncoderSettings::camera(1_500_000, 30.0),
            (640, 360),
        );
    }

    #[test]
    fn screen_frames_round_trip_with_their_stamps() {
        round_trip(
            PatternKind::Screen,
            EncoderSettings::screen(2_500_000, 15.0),
            (1280, 720),
        );
    }

    #[test]
    fn a_forced_keyframe_comes_next() {
        let mut pattern = TestPattern::new(320, 240, PatternKind::Camera);
        let mut encoder = H264Encoder::new(EncoderSettings::camera(500_000, 30.0)).unwrap();
        for i in 0..5u64 {
            encoder
                .encode(&pattern.next_frame(Duration::from_millis(i * 33)))
                .unwrap();
        }
        let delta = encoder
            .encode(&pattern.next_frame(Duration::from_millis(200)))
            .unwrap();
        assert!(!delta.keyframe);
        encoder.request_keyframe();
        encoder.set_bitrate(300_000).unwrap();
        let forced = encoder
            .encode(&pattern.next_frame(Duration::from_millis(233)))
            .unwrap();
        assert!(forced.keyframe);
    }

    #[test]
    fn the_bitrate_can_rise_above_the_initial_one_and_come_back() {
        let mut encoder = H264Encoder::new(EncoderSettings::camera(300_000, 30.0)).unwrap();
        // Before the first picture the rate is remembered, and applied with it.
        encoder.set_bitrate(500_000).unwrap();
        let mut pattern = TestPattern::new(320, 240, PatternKind::Camera);
        encoder
            .encode(&pattern.next_frame(Duration::from_millis(0)))
            .unwrap();
        encoder.set_bitrate(2_000_000).unwrap();
        encoder.set_bitrate(150_000).unwrap();
        encoder.set_bitrate(1_000_000).unwrap();
        assert_eq!(encoder.settings().bitrate_bps, 1_000_000);
    }

    #[test]
    fn odd_sizes_are_refused_clearly() {
        let mut encoder = H264Encoder::new(EncoderSettings::camera(500_000, 30.0)).unwrap();
        let mut frame = I420Frame::black(64, 64);
        frame.width = 63;
        assert!(matches!(
            encoder.encode(&frame),
            Err(CodecError::InvalidSize { .. })
        ));
    }

    #[test]
    fn garbage_does_not_panic_the_decoder() {
        let mut decoder = H264Decoder::new().unwrap();
        let _ = decoder.decode(&[0, 0, 0, 1, 0x65, 0xff, 0x00, 0x12]);
        let _ = decoder.decode(b"not h264 at all");
    }
}
