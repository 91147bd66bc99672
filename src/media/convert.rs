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
pub(crate) enum PackedOrder {
    Rgba,
    Bgra,
}

/// Converts packed 8-bit RGBA/BGRA pixels (`stride` bytes per row) into `frame`, resizing its
/// planes if the size changed. Odd widths/heights are cropped by one pixel.
pub(crate) fn packed_to_i420(
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

/// Converts packed YUYV 4:2:2 (`stride` bytes per row; what most webcams offer uncompressed)
/// into `frame`. Odd sizes are cropped by one pixel.
pub(crate) fn yuyv_to_i420(
    data: &[u8],
    width: usize,
    height: usize,
    stride: usize,
    frame: &mut I420Frame,
) -> Result<(), ConvertError> {
    let want = stride * height.saturating_sub(1) + width * 2;
    if data.len() < want || stride < width * 2 || width < 2 || height < 2 {
        return Err(ConvertError::BufferSize {
            what: "YUYV picture",
            got: data.len(),
            want,
            width,
            height,
        });
    }
    let (w, h) = (width & !1, height & !1);
    if frame.width != w || frame.height != h {
        *frame = I420Frame::black(w, h);
    }
    // Plain loops: yuvutils-rs 0.8.3's YUYV→4:2:0 left the last 16 columns of a 64-wide
    // picture unconverted (found by the fixture test), and this is a copy plus an average.
    let cw = w / 2;
    for row in (0..h).step_by(2) {
        let top = &data[row * stride..row * stride + w * 2];
        let bottom = &data[(row + 1) * stride..(row + 1) * stride + w * 2];
        for (line, source) in [(row, top), (row + 1, bottom)] {
            for (x, luma) in frame.y[line * w..(line + 1) * w].iter_mut().enumerate() {
                *luma = source[2 * x];
            }
        }
        let chroma_row = row / 2;
        for x in 0..cw {
            let (u, v) = (4 * x + 1, 4 * x + 3);
            frame.u[chroma_row * cw + x] =
                ((u16::from(top[u]) + u16::from(bottom[u])).div_ceil(2)) as u8;
            frame.v[chroma_row * cw + x] =
                ((u16::from(top[v]) + u16::from(bottom[v])).div_ceil(2)) as u8;
        }
    }
    Ok(())
}

/// Converts NV12 (a luma plane, then one plane of interleaved U,V at half size; what many
/// cameras and hardware decoders give) into `frame`.
pub(crate) fn nv12_to_i420(
    data: &[u8],
    width: usize,
    height: usize,
    frame: &mut I420Frame,
) -> Result<(), ConvertError> {
    let (w, h) = (width & !1, height & !1);
    let want = width * height + 2 * (width / 2) * (height / 2);
    if data.len() < want || w < 2 || h < 2 {
        return Err(ConvertError::BufferSize {
            what: "NV12 picture",
            got: data.len(),
            want,
            width,
            height,
        });
    }
    if frame.width != w || frame.height != h {
        *frame = I420Frame::black(w, h);
    }
    for row in 0..h {
        frame.y[row * w..(row + 1) * w].copy_from_slice(&data[row * width..row * width + w]);
    }
    let chroma = &data[width * height..];
    let (cw, ch) = (w / 2, h / 2);
    for row in 0..ch {
        let line = &chroma[row * (width / 2) * 2..];
        for x in 0..cw {
            frame.u[row * cw + x] = line[2 * x];
            frame.v[row * cw + x] = line[2 * x + 1];
        }
    }
    Ok(())
}

/// Decodes one MJPEG frame (a JPEG picture) into `frame`.
pub(crate) fn mjpeg_to_i420(data: &[u8], frame: &mut I420Frame) -> Result<(), ConvertError> {
    let picture = image::load_from_memory_with_format(data, image::ImageFormat::Jpeg)
        .map_err(|e| ConvertError::Yuv(format!("MJPEG frame: {e}")))?
        .into_rgba8();
    let (width, height) = (picture.width() as usize, picture.height() as usize);
    packed_to_i420(
        picture.as_raw(),
        width,
        height,
        width * 4,
        PackedOrder::Rgba,
        frame,
    )
}

#[cfg(test)]
mod camera_format_tests {
    use super::*;

    const FIXTURE_W: usize = 64;
    const FIXTURE_H: usize = 48;

    fn fixture(name: &str) -> Vec<u8> {
        let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
        std::fs::read(&path).unwrap_or_else(|e| panic!("fixture {path}: {e}"))
    }

    /// The fixture's picture: luma at (x, y), from its YUYV form.
    fn expected_luma(x: usize, y: usize) -> u8 {
        fixture("camera-64x48.yuyv")[y * FIXTURE_W * 2 + x * 2]
    }

    #[test]
    fn a_yuyv_camera_frame_becomes_i420_with_its_luma_and_chroma() {
        let data = fixture("camera-64x48.yuyv");
        let mut frame = I420Frame::black(2, 2);
        yuyv_to_i420(&data, FIXTURE_W, FIXTURE_H, FIXTURE_W * 2, &mut frame).unwrap();
        assert_eq!((frame.width, frame.height), (64, 48));
        let wrong = (0..48)
            .flat_map(|y| (0..64).map(move |x| (x, y)))
            .filter(|&(x, y)| frame.y[y * 64 + x] != expected_luma(x, y))
            .count();
        assert_eq!(wrong, 0, "luma samples that differ from the camera's");
        for (x, y) in [(0, 0), (10, 5), (25, 20), (63, 47)] {
            assert_eq!(frame.y[y * 64 + x], expected_luma(x, y), "luma at {x},{y}");
        }
        // Chroma: U of the first pixel pair (rows 0 and 1 averaged).
        let u = (u16::from(data[1]) + u16::from(data[FIXTURE_W * 2 + 1])).div_ceil(2) as i32;
        assert!((i32::from(frame.u[0]) - u).abs() <= 1);
    }

    #[test]
    fn an_mjpeg_camera_frame_decodes_to_the_same_picture() {
        let mut frame = I420Frame::black(2, 2);
        mjpeg_to_i420(&fixture("camera-64x48.jpg"), &mut frame).unwrap();
        assert_eq!((frame.width, frame.height), (64, 48));
        // Lossy, so close rather than equal: the gradient and the dark square are there.
        for (x, y) in [(4, 4), (60, 4), (27, 19), (50, 40)] {
            let got = i32::from(frame.y[y * 64 + x]);
            let want = i32::from(expected_luma(x, y));
            assert!((got - want).abs() <= 8, "luma at {x},{y}: {got} vs {want}");
        }
    }

    #[test]
    fn an_nv12_frame_becomes_i420() {
        let (w, h) = (8, 4);
        let mut data: Vec<u8> = (0..w * h).map(|i| i as u8).collect();
        for i in 0..(w / 2) * (h / 2) {
            data.extend([100 + i as u8, 200 + i as u8]); // U, V interleaved
        }
        let mut frame = I420Frame::black(2, 2);
        nv12_to_i420(&data, w, h, &mut frame).unwrap();
        assert_eq!(frame.y[9], 9);
        assert_eq!(frame.u, vec![100, 101, 102, 103, 104, 105, 106, 107]);
        assert_eq!(frame.v[3], 203);
    }

    #[test]
    fn short_or_broken_camera_frames_are_clear_errors() {
        let mut frame = I420Frame::black(2, 2);
        assert!(yuyv_to_i420(&[0; 10], 64, 48, 128, &mut frame).is_err());
        assert!(nv12_to_i420(&[0; 10], 64, 48, &mut frame).is_err());
        assert!(mjpeg_to_i420(b"not a jpeg", &mut frame).is_err());
    }
}
