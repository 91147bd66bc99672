//! VP8 encode and decode with libvpx (Debian's `libvpx-dev`, the library the browsers use):
//! the codec every WebRTC browser must implement, and the only one Firefox has for video when
//! its OpenH264 plugin has not been downloaded. Real-time mode, one pass, constant bitrate,
//! no lag, error resilient; runtime bitrate and forced keyframes, like the H.264 path.

use std::ptr;

use vpx_sys::{
    VPX_CODEC_OK, VPX_DECODER_ABI_VERSION, VPX_DL_REALTIME, VPX_EFLAG_FORCE_KF,
    VPX_ENCODER_ABI_VERSION, VPX_FRAME_IS_KEY, vp8e_enc_control_id, vpx_codec_ctx_t,
    vpx_codec_cx_pkt_kind, vpx_codec_dec_init_ver, vpx_codec_decode, vpx_codec_destroy,
    vpx_codec_enc_cfg_t, vpx_codec_enc_config_default, vpx_codec_enc_config_set,
    vpx_codec_enc_init_ver, vpx_codec_encode, vpx_codec_err_t, vpx_codec_get_cx_data,
    vpx_codec_get_frame, vpx_codec_vp8_cx, vpx_codec_vp8_dx, vpx_image_t, vpx_img_fmt,
    vpx_img_wrap, vpx_rc_mode,
};

use crate::media::frame::{I420Frame, I420View};
use crate::media::h264::{CodecError, ContentKind, EncodedFrame, EncoderSettings};
#[cfg(test)]
use crate::media::{
    h264::{DecodedSummary, luma_spread},
    stamp,
};

/// libvpx's real-time speed (VP8E_SET_CPUUSED): higher is faster and a little worse.
const CAMERA_SPEED: i32 = 8;
const SCREEN_SPEED: i32 = 6;

fn check(what: &str, result: vpx_codec_err_t) -> Result<(), CodecError> {
    if result == VPX_CODEC_OK {
        Ok(())
    } else {
        Err(CodecError::Vp8Encoder(format!(
            "libvpx {what} failed: {result:?}"
        )))
    }
}

pub struct Vp8Encoder {
    settings: EncoderSettings,
    config: vpx_codec_enc_cfg_t,
    context: Option<Box<vpx_codec_ctx_t>>,
    size: (usize, usize),
    force_keyframe: bool,
    pts: i64,
}

// SAFETY: the libvpx context is used from one thread at a time (`&mut self`); it holds no
// thread-affine state.
unsafe impl Send for Vp8Encoder {}

impl Vp8Encoder {
    pub fn new(settings: EncoderSettings) -> Result<Self, CodecError> {
        let mut config = std::mem::MaybeUninit::<vpx_codec_enc_cfg_t>::uninit();
        // SAFETY: the interface pointer comes from libvpx; `config` is a valid out-pointer,
        // which libvpx fills entirely on success.
        check("default configuration", unsafe {
            vpx_codec_enc_config_default(vpx_codec_vp8_cx(), config.as_mut_ptr(), 0)
        })?;
        // SAFETY: initialised by the successful call above.
        let config = unsafe { config.assume_init() };
        Ok(Vp8Encoder {
            settings,
            config,
            context: None,
            size: (0, 0),
            force_keyframe: true,
            pts: 0,
        })
    }

    pub fn settings(&self) -> EncoderSettings {
        self.settings
    }

    pub(crate) fn request_keyframe(&mut self) {
        self.force_keyframe = true;
    }

    pub(crate) fn set_bitrate(&mut self, bps: u32) -> Result<(), CodecError> {
        self.settings.bitrate_bps = bps.max(16_000);
        if let Some(context) = self.context.as_mut() {
            self.config.rc_target_bitrate = (self.settings.bitrate_bps / 1000).max(16);
            // SAFETY: the context was initialised by `start`; the config outlives the call.
            check("bitrate change", unsafe {
                vpx_codec_enc_config_set(context.as_mut(), &self.config)
            })?;
        }
        Ok(())
    }

    fn start(&mut self, width: usize, height: usize) -> Result<(), CodecError> {
        self.stop();
        let config = &mut self.config;
        config.g_w = width as u32;
        config.g_h = height as u32;
        config.g_timebase.num = 1;
        config.g_timebase.den = 90_000;
        config.g_threads = u32::from(self.settings.threads.max(1));
        config.g_lag_in_frames = 0;
        config.g_error_resilient = 1;
        config.rc_end_usage = vpx_rc_mode::VPX_CBR;
        config.rc_target_bitrate = (self.settings.bitrate_bps / 1000).max(16);
        config.rc_min_quantizer = 4;
        config.rc_max_quantizer = 56;
        config.rc_undershoot_pct = 100;
        config.rc_overshoot_pct = 15;
        config.rc_buf_sz = 1000;
        config.rc_buf_initial_sz = 500;
        config.rc_buf_optimal_sz = 600;
        config.rc_dropframe_thresh = 0;
        config.kf_max_dist = self.settings.keyframe_interval.max(1);
        // SAFETY: zeroed is the documented initial state of a context before init.
        let mut context: Box<vpx_codec_ctx_t> = Box::new(unsafe { std::mem::zeroed() });
        // SAFETY: valid interface, context and config pointers; the ABI version matches the
        // headers the bindings were made from.
        check("encoder start", unsafe {
            vpx_codec_enc_init_ver(
                context.as_mut(),
                vpx_codec_vp8_cx(),
                config,
                0,
                VPX_ENCODER_ABI_VERSION as i32,
            )
        })?;
        let speed = match self.settings.content {
            ContentKind::Camera => CAMERA_SPEED,
            ContentKind::Screen => SCREEN_SPEED,
        };
        // SAFETY: VP8E_SET_CPUUSED takes an int.
        check("speed", unsafe {
            vpx_sys::vpx_codec_control_(
                context.as_mut(),
                vp8e_enc_control_id::VP8E_SET_CPUUSED as i32,
                speed,
            )
        })?;
        self.context = Some(context);
        self.size = (width, height);
        self.force_keyframe = true;
        Ok(())
    }

    fn stop(&mut self) {
        if let Some(mut context) = self.context.take() {
            // SAFETY: the context was initialised and is destroyed once.
            unsafe { vpx_codec_destroy(context.as_mut()) };
        }
    }

    /// Encodes one picture. An empty `data` means the encoder produced nothing this time.
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
        if self.context.is_none() || self.size != (frame.width, frame.height) {
            self.start(frame.width, frame.height)?;
        }
        let Some(context) = self.context.as_mut() else {
            return Err(CodecError::Vp8Encoder(
                "libvpx encoder not started".to_owned(),
            ));
        };
        let mut image = std::mem::MaybeUninit::<vpx_image_t>::uninit();
        // SAFETY: vpx_img_wrap initialises every field of the descriptor; the planes point
        // into `frame`, which outlives the encode call (libvpx copies what it keeps).
        let wrapped = unsafe {
            vpx_img_wrap(
                image.as_mut_ptr(),
                vpx_img_fmt::VPX_IMG_FMT_I420,
                frame.width as u32,
                frame.height as u32,
                1,
                frame.y.as_ptr() as *mut u8,
            )
        };
        if wrapped.is_null() {
            return Err(CodecError::Vp8Encoder(
                "libvpx refused the picture".to_owned(),
            ));
        }
        // SAFETY: initialised by the successful vpx_img_wrap above.
        let mut image = unsafe { image.assume_init() };
        image.planes[0] = frame.y.as_ptr() as *mut u8;
        image.planes[1] = frame.u.as_ptr() as *mut u8;
        image.planes[2] = frame.v.as_ptr() as *mut u8;
        image.stride[0] = frame.width as i32;
        image.stride[1] = frame.chroma_width() as i32;
        image.stride[2] = frame.chroma_width() as i32;
        let flags = if std::mem::take(&mut self.force_keyframe) {
            VPX_EFLAG_FORCE_KF as i64
        } else {
            0
        };
        let duration = (90_000.0 / f64::from(self.settings.max_fps.max(1.0))) as u64;
        // SAFETY: context started; image valid for the call.
        check("encode", unsafe {
            vpx_codec_encode(
                context.as_mut(),
                &image,
                self.pts,
                duration,
                flags,
                VPX_DL_REALTIME as u64,
            )
        })?;
        self.pts += duration as i64;
        let mut data = Vec::new();
        let mut keyframe = false;
        let mut iterator = ptr::null();
        loop {
            // SAFETY: iterating the packets of the call above, as libvpx documents.
            let packet = unsafe { vpx_codec_get_cx_data(context.as_mut(), &mut iterator) };
            if packet.is_null() {
                break;
            }
            // SAFETY: non-null packet from libvpx; for frame packets `data.frame` is the
            // active union member, and its buffer is valid until the next encode call.
            unsafe {
                if (*packet).kind == vpx_codec_cx_pkt_kind::VPX_CODEC_CX_FRAME_PKT {
                    let frame_packet = (*packet).data.frame;
                    data.extend_from_slice(std::slice::from_raw_parts(
                        frame_packet.buf as *const u8,
                        frame_packet.sz,
                    ));
                    keyframe |= frame_packet.flags & VPX_FRAME_IS_KEY != 0;
                }
            }
        }
        Ok(EncodedFrame {
            data,
            keyframe,
            capture_time: frame.capture_time,
        })
    }
}

impl Drop for Vp8Encoder {
    fn drop(&mut self) {
        self.stop();
    }
}

pub struct Vp8Decoder {
    context: Box<vpx_codec_ctx_t>,
}

// SAFETY: as for the encoder: one thread at a time.
unsafe impl Send for Vp8Decoder {}

impl Vp8Decoder {
    pub fn new() -> Result<Self, CodecError> {
        // SAFETY: zeroed context before init, as libvpx expects.
        let mut context: Box<vpx_codec_ctx_t> = Box::new(unsafe { std::mem::zeroed() });
        // SAFETY: valid pointers; no configuration (defaults).
        let result = unsafe {
            vpx_codec_dec_init_ver(
                context.as_mut(),
                vpx_codec_vp8_dx(),
                ptr::null(),
                0,
                VPX_DECODER_ABI_VERSION as i32,
            )
        };
        if result != VPX_CODEC_OK {
            return Err(CodecError::Vp8Decoder(format!(
                "libvpx decoder start failed: {result:?}"
            )));
        }
        Ok(Vp8Decoder { context })
    }

    /// Decodes one VP8 frame and hands the picture (planes, strides, size) to `use_picture`.
    fn decode_with<T>(
        &mut self,
        data: &[u8],
        use_picture: impl FnOnce(&vpx_image_t) -> T,
    ) -> Result<Option<T>, CodecError> {
        if data.is_empty() {
            return Ok(None);
        }
        // SAFETY: the buffer is valid for the call; libvpx copies what it keeps.
        let result = unsafe {
            vpx_codec_decode(
                self.context.as_mut(),
                data.as_ptr(),
                data.len() as u32,
                ptr::null_mut(),
                0,
            )
        };
        if result != VPX_CODEC_OK {
            return Err(CodecError::Vp8Decoder(format!(
                "libvpx decode failed: {result:?}"
            )));
        }
        let mut iterator = ptr::null();
        // SAFETY: iterating the pictures of the decode above.
        let image = unsafe { vpx_codec_get_frame(self.context.as_mut(), &mut iterator) };
        if image.is_null() {
            return Ok(None);
        }
        // SAFETY: non-null image owned by the decoder, valid until the next decode call.
        Ok(Some(use_picture(unsafe { &*image })))
    }

    /// Decodes one frame and hands the decoder's own picture to `use_picture` (no copy).
    pub(crate) fn decode_view<T>(
        &mut self,
        data: &[u8],
        use_picture: impl FnOnce(I420View<'_>) -> T,
    ) -> Result<Option<T>, CodecError> {
        self.decode_with(data, |image| {
            let (width, height) = (image.d_w as usize, image.d_h as usize);
            let stride = |plane: usize| image.stride[plane].max(0) as usize;
            let rows = |plane: usize| {
                if plane == 0 {
                    height
                } else {
                    height.div_ceil(2)
                }
            };
            // SAFETY: libvpx's I420 picture: plane p holds `stride(p) × rows(p)` bytes, valid
            // until the next decode call (the view does not outlive `use_picture`).
            let plane = |p: usize| unsafe {
                std::slice::from_raw_parts(image.planes[p], stride(p) * rows(p))
            };
            use_picture(I420View {
                width,
                height,
                y: plane(0),
                u: plane(1),
                v: plane(2),
                y_stride: stride(0),
                u_stride: stride(1),
                v_stride: stride(2),
            })
        })
    }

    /// Decodes and reads the frame stamp straight from the decoder's picture (no copy).
    #[cfg(test)]
    pub(crate) fn decode_stamp(
        &mut self,
        data: &[u8],
    ) -> Result<Option<DecodedSummary>, CodecError> {
        self.decode_with(data, |image| {
            let (width, height) = (image.d_w as usize, image.d_h as usize);
            let stride = image.stride[0].max(0) as usize;
            // SAFETY: plane 0 holds `stride × height` bytes of luma.
            let luma = unsafe { std::slice::from_raw_parts(image.planes[0], stride * height) };
            let stamp = stamp::read_luma(luma, width, height, stride);
            DecodedSummary {
                width,
                height,
                stamp,
                luma_spread: luma_spread(luma, width, height, stride),
            }
        })
    }

    /// Decodes one frame into RGBA for the UI, reusing `out`'s buffer; `false` when no picture
    /// came out.
    pub fn decode_rgba(
        &mut self,
        data: &[u8],
        out: &mut crate::media::frame::RgbaFrame,
    ) -> Result<bool, CodecError> {
        let Some(frame) = self.decode(data)? else {
            return Ok(false);
        };
        crate::media::convert::i420_to_rgba(&frame, out)
            .map_err(|error| CodecError::Vp8Decoder(error.to_string()))?;
        Ok(true)
    }

    /// Decodes into an I420 picture of its own.
    pub fn decode(&mut self, data: &[u8]) -> Result<Option<I420Frame>, CodecError> {
        self.decode_with(data, |image| {
            let (width, height) = ((image.d_w as usize) & !1, (image.d_h as usize) & !1);
            let mut frame = I420Frame::black(width, height);
            let (chroma_width, chroma_height) = (width / 2, height / 2);
            for (plane, (out, w, h)) in [
                (&mut frame.y, width, height),
                (&mut frame.u, chroma_width, chroma_height),
                (&mut frame.v, chroma_width, chroma_height),
            ]
            .into_iter()
            .enumerate()
            {
                let stride = image.stride[plane].max(0) as usize;
                for row in 0..h {
                    // SAFETY: each plane holds `stride × rows` bytes.
                    let line = unsafe {
                        std::slice::from_raw_parts(image.planes[plane].add(row * stride), w)
                    };
                    out[row * w..(row + 1) * w].copy_from_slice(line);
                }
            }
            frame
        })
    }
}

impl Drop for Vp8Decoder {
    fn drop(&mut self) {
        // SAFETY: initialised in `new`, destroyed once.
        unsafe { vpx_codec_destroy(self.context.as_mut()) };
    }
}

/// A VP8 frame that starts a picture sequence (its first partition's P bit is 0).
pub(crate) fn is_keyframe(frame: &[u8]) -> bool {
    frame.first().is_some_and(|byte| byte & 1 == 0)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::media::synthetic::{PatternKind, TestPattern};

    #[test]
    fn pictures_survive_a_round_trip_with_their_stamps() {
        let mut pattern = TestPattern::new(640, 360, PatternKind::Camera);
        let mut encoder = Vp8Encoder::new(EncoderSettings::camera(800_000, 30.0)).unwrap();
        let mut decoder = Vp8Decoder::new().unwrap();
        let mut read = 0;
        for i in 0..30u64 {
            let frame = pattern.next_frame(Duration::from_millis(i * 33));
            let encoded = encoder.encode(&frame).unwrap();
            if i == 0 {
                assert!(encoded.keyframe && is_keyframe(&encoded.data));
            }
            if let Some(picture) = decoder.decode_stamp(&encoded.data).unwrap() {
                assert_eq!((picture.width, picture.height), (640, 360));
                if picture.stamp.is_some_and(|s| s.counter == i as u32) {
                    read += 1;
                }
            }
        }
        assert!(read >= 28, "stamps read back: {read} of 30");
    }

    #[test]
    fn a_forced_keyframe_comes_next_and_the_bitrate_can_change() {
        let mut pattern = TestPattern::new(320, 240, PatternKind::Camera);
        let mut encoder = Vp8Encoder::new(EncoderSettings::camera(300_000, 30.0)).unwrap();
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
        encoder.set_bitrate(1_000_000).unwrap();
        let forced = encoder
            .encode(&pattern.next_frame(Duration::from_millis(233)))
            .unwrap();
        assert!(forced.keyframe && is_keyframe(&forced.data));
    }

    #[test]
    fn a_new_size_restarts_the_encoder_with_a_keyframe() {
        let mut encoder = Vp8Encoder::new(EncoderSettings::camera(300_000, 30.0)).unwrap();
        let mut decoder = Vp8Decoder::new().unwrap();
        let big = TestPattern::new(640, 360, PatternKind::Camera).next_frame(Duration::ZERO);
        let small = big.half_size();
        encoder.encode(&big).unwrap();
        let first_small = encoder.encode(&small).unwrap();
        assert!(first_small.keyframe);
        let picture = decoder.decode(&first_small.data).unwrap().unwrap();
        assert_eq!((picture.width, picture.height), (320, 180));
    }

    #[test]
    fn pictures_come_out_as_rgba_for_the_ui_with_the_stamp_readable() {
        let frame =
            TestPattern::new(320, 180, PatternKind::Camera).next_frame(Duration::from_millis(5));
        let mut encoder = Vp8Encoder::new(EncoderSettings::camera(800_000, 30.0)).unwrap();
        let mut decoder = Vp8Decoder::new().unwrap();
        let mut out = crate::media::frame::RgbaFrame {
            width: 0,
            height: 0,
            pixels: Vec::new(),
        };
        let encoded = encoder.encode(&frame).unwrap();
        assert!(decoder.decode_rgba(&encoded.data, &mut out).unwrap());
        assert_eq!(
            (out.width, out.height, out.pixels.len()),
            (320, 180, 320 * 180 * 4)
        );
        let stamp = stamp::read_rgba(&out.pixels, 320, 180).expect("stamp");
        assert_eq!(stamp.counter, 0);
    }

    #[test]
    fn garbage_is_an_error_not_a_crash() {
        let mut decoder = Vp8Decoder::new().unwrap();
        let _ = decoder.decode(b"not vp8 at all, not even close");
        let _ = decoder.decode_stamp(&[0xff; 64]);
        let _ = decoder.decode(&[]);
    }
}
