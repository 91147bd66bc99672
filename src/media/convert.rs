//! Pixel conversion between capture formats, the codecs' I420 and the UI's RGBA, with
//! `yuvutils-rs` (SIMD, no per-pixel allocation). BT.601 limited range, as WebRTC uses.

use yuvutils_rs::{
    BufferStoreMut, YuvConversionMode, YuvPlanarImage, YuvPlanarImageMut, YuvRange,
    YuvStandardMatrix,
};

use crate::media::frame::{I420Frame, RgbaFrame};

#[derive(Debug, thiserror::Error)]
pub enum ConvertError {
    #[error("{what}: buffer of {got} bytes, {want} needed for {width}×{height}")]
    BufferSize {
        what: &'static str,
        got: usize,
        want: usize,
        width: usize,
        height: usize,
    },
    #[error("pixel conversion failed: {0}")]
    Yuv(String),
}

/// Whether the 4 bytes of a packed pixel are R,G,B,A or B,G,R,A (X11 and most screens).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PackedOrder {
    Rgba,
    Bgra,
}

/// Converts packed 8-bit RGBA/BGRA pixels (`stride` bytes per row) into `frame`, resizing its
/// planes if the size changed. Odd widths/heights are cropped by one pixel.
pub fn packed_to_i420(
    pixels: &[u8],
    width: usize,
    height: usize,
    stride: usize,
    order: PackedOrder,
    frame: &mut I420Frame,
) -> Result<(), ConvertError> {
    let want = stride * height.saturating_sub(1) + width * 4;
    if pixels.len() < want || stride < width * 4 {
        return Err(ConvertError::BufferSize {
            what: "packed picture",
            got: pixels.len(),
            want,
            width,
            height,
        });
    }
    let (w, h) = (width & !1, height & !1);
    if frame.width != w || frame.height != h {
        *frame = I420Frame::black(w, h);
    }
    let (cw, _) = (w / 2, h / 2);
    let mut image = YuvPlanarImageMut {
        y_plane: BufferStoreMut::Borrowed(&mut frame.y),
        y_stride: w as u32,
        u_plane: BufferStoreMut::Borrowed(&mut frame.u),
        u_stride: cw as u32,
        v_plane: BufferStoreMut::Borrowed(&mut frame.v),
        v_stride: cw as u32,
        width: w as u32,
        height: h as u32,
    };
    let convert = match order {
        PackedOrder::Rgba => yuvutils_rs::rgba_to_yuv420,
        PackedOrder::Bgra => yuvutils_rs::bgra_to_yuv420,
    };
    convert(
        &mut image,
        pixels,
        stride as u32,
        YuvRange::Limited,
        YuvStandardMatrix::Bt601,
        YuvConversionMode::Balanced,
    )
    .map_err(|e| ConvertError::Yuv(e.to_string()))
}

/// Converts an I420 frame into RGBA for display, reusing `out`'s buffer.
pub fn i420_to_rgba(frame: &I420Frame, out: &mut RgbaFrame) -> Result<(), ConvertError> {
    out.width = frame.width;
    out.height = frame.height;
    out.pixels.resize(frame.width * frame.height * 4, 0);
    let image = YuvPlanarImage {
        y_plane: &frame.y,
        y_stride: frame.width as u32,
        u_plane: &frame.u,
        u_stride: frame.chroma_width() as u32,
        v_plane: &frame.v,
        v_stride: frame.chroma_width() as u32,
        width: frame.width as u32,
        height: frame.height as u32,
    };
    yuvutils_rs::yuv420_to_rgba(
        &image,
        &mut out.pixels,
        frame.width as u32 * 4,
        YuvRange::Limited,
        YuvStandardMatrix::Bt601,
    )
    .map_err(|e| ConvertError::Yuv(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn primary_colours_survive_a_round_trip() {
        let (w, h) = (64, 32);
        let mut rgba = Vec::with_capacity(w * h * 4);
        for _ in 0..h {
            for x in 0..w {
                let px = match x / 16 {
                    0 => [255, 0, 0, 255],
                    1 => [0, 255, 0, 255],
                    2 => [0, 0, 255, 255],
                    _ => [255, 255, 255, 255],
                };
                rgba.extend_from_slice(&px);
            }
        }
        let mut frame = I420Frame::black(2, 2);
        packed_to_i420(&rgba, w, h, w * 4, PackedOrder::Rgba, &mut frame).unwrap();
        assert_eq!((frame.width, frame.height), (w, h));
        let mut back = RgbaFrame {
            width: 0,
            height: 0,
            pixels: Vec::new(),
        };
        i420_to_rgba(&frame, &mut back).unwrap();
        for (x, want) in [
            (8, [255, 0, 0]),
            (24, [0, 255, 0]),
            (40, [0, 0, 255]),
            (56, [255, 255, 255]),
        ] {
            let p = &back.pixels[(16 * w + x) * 4..][..3];
            for c in 0..3 {
                assert!(
                    (p[c] as i32 - want[c]).abs() <= 8,
                    "x={x}: {p:?} vs {want:?}"
                );
            }
        }
    }

    #[test]
    fn bgra_order_is_honoured() {
        let (w, h) = (16, 16);
        let bgra_red: Vec<u8> = (0..w * h).flat_map(|_| [0u8, 0, 255, 255]).collect();
        let mut frame = I420Frame::black(w, h);
        packed_to_i420(&bgra_red, w, h, w * 4, PackedOrder::Bgra, &mut frame).unwrap();
        assert!(frame.v[0] > 200, "red has a high Cr, got {}", frame.v[0]);
    }

    #[test]
    fn a_short_buffer_is_an_error_not_a_panic() {
        let mut frame = I420Frame::black(2, 2);
        assert!(matches!(
            packed_to_i420(&[0; 10], 16, 16, 64, PackedOrder::Rgba, &mut frame),
            Err(ConvertError::BufferSize { .. })
        ));
    }
}
