//! Raw pictures as they move between capture, codecs and the UI.

use std::time::Duration;

/// A planar YUV 4:2:0 picture (BT.601, limited range), the encoders' input and the decoders'
/// output. Planes are tightly packed: stride = width (luma) and width / 2 (chroma).
#[derive(Clone, PartialEq, Eq)]
pub struct I420Frame {
    pub width: usize,
    pub height: usize,
    pub y: Vec<u8>,
    pub u: Vec<u8>,
    pub v: Vec<u8>,
    /// Capture time on the sender's media clock (see [`crate::media::stamp`]).
    pub capture_time: Duration,
}

impl std::fmt::Debug for I420Frame {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("I420Frame")
            .field("width", &self.width)
            .field("height", &self.height)
            .field("capture_time", &self.capture_time)
            .finish_non_exhaustive()
    }
}

impl I420Frame {
    /// A black frame. Width and height must be even (4:2:0 subsampling).
    pub fn black(width: usize, height: usize) -> Self {
        debug_assert!(
            width.is_multiple_of(2) && height.is_multiple_of(2),
            "I420 needs even dimensions"
        );
        let chroma = (width / 2) * (height / 2);
        I420Frame {
            width,
            height,
            y: vec![16; width * height],
            u: vec![128; chroma],
            v: vec![128; chroma],
            capture_time: Duration::ZERO,
        }
    }

    pub(crate) fn chroma_width(&self) -> usize {
        self.width / 2
    }

    pub(crate) fn chroma_height(&self) -> usize {
        self.height / 2
    }

    /// Half the width and height (each output pixel the mean of a 2×2 block): what a viewer
    /// showing a small tile needs. Sizes are rounded down to even values.
    pub(crate) fn half_size(&self) -> I420Frame {
        let (width, height) = ((self.width / 2) & !1, (self.height / 2) & !1);
        let mut out = I420Frame::black(width.max(2), height.max(2));
        halve_plane(&self.y, self.width, &mut out.y, out.width, out.height);
        let (source_chroma_width, chroma_width, chroma_height) =
            (self.chroma_width(), out.chroma_width(), out.chroma_height());
        halve_plane(
            &self.u,
            source_chroma_width,
            &mut out.u,
            chroma_width,
            chroma_height,
        );
        halve_plane(
            &self.v,
            source_chroma_width,
            &mut out.v,
            chroma_width,
            chroma_height,
        );
        out.capture_time = self.capture_time;
        out
    }
}

fn halve_plane(source: &[u8], source_stride: usize, out: &mut [u8], width: usize, height: usize) {
    for row in 0..height {
        let top = &source[2 * row * source_stride..];
        let bottom = &source[(2 * row + 1) * source_stride..];
        let line = &mut out[row * width..(row + 1) * width];
        for (x, pixel) in line.iter_mut().enumerate() {
            let sum = u16::from(top[2 * x])
                + u16::from(top[2 * x + 1])
                + u16::from(bottom[2 * x])
                + u16::from(bottom[2 * x + 1]);
            *pixel = ((sum + 2) / 4) as u8;
        }
    }
}

/// A decoder's own picture, borrowed (planes with their strides): read the stamp from it or
/// convert it for display without copying it out first.
#[derive(Clone, Copy)]
pub struct I420View<'a> {
    pub width: usize,
    pub height: usize,
    pub y: &'a [u8],
    pub u: &'a [u8],
    pub v: &'a [u8],
    pub y_stride: usize,
    pub u_stride: usize,
    pub v_stride: usize,
}

impl I420View<'_> {
    /// The stamp, if the picture carries one.
    pub fn stamp(&self) -> Option<crate::media::stamp::Stamp> {
        crate::media::stamp::read_luma(self.y, self.width, self.height, self.y_stride)
    }

    /// Writes the picture as RGBA (`width × height × 4` bytes) into `out`: straight into the
    /// buffer a texture is made from.
    pub(crate) fn write_rgba(
        &self,
        out: &mut [u8],
    ) -> Result<(), crate::media::convert::ConvertError> {
        let image = yuvutils_rs::YuvPlanarImage {
            y_plane: self.y,
            y_stride: self.y_stride as u32,
            u_plane: self.u,
            u_stride: self.u_stride as u32,
            v_plane: self.v,
            v_stride: self.v_stride as u32,
            width: self.width as u32,
            height: self.height as u32,
        };
        yuvutils_rs::yuv420_to_rgba(
            &image,
            out,
            self.width as u32 * 4,
            yuvutils_rs::YuvRange::Limited,
            yuvutils_rs::YuvStandardMatrix::Bt601,
        )
        .map_err(|e| crate::media::convert::ConvertError::Yuv(e.to_string()))
    }
}

impl I420Frame {
    /// The frame as a borrowed view.
    pub fn view(&self) -> I420View<'_> {
        I420View {
            width: self.width,
            height: self.height,
            y: &self.y,
            u: &self.u,
            v: &self.v,
            y_stride: self.width,
            u_stride: self.chroma_width(),
            v_stride: self.chroma_width(),
        }
    }
}

impl openh264::formats::YUVSource for I420Frame {
    fn dimensions(&self) -> (usize, usize) {
        (self.width, self.height)
    }

    fn strides(&self) -> (usize, usize, usize) {
        (self.width, self.width / 2, self.width / 2)
    }

    fn y(&self) -> &[u8] {
        &self.y
    }

    fn u(&self) -> &[u8] {
        &self.u
    }

    fn v(&self) -> &[u8] {
        &self.v
    }
}

/// An 8-bit RGBA picture, ready to upload as an egui texture.
#[derive(Clone, PartialEq, Eq)]
pub struct RgbaFrame {
    pub width: usize,
    pub height: usize,
    pub pixels: Vec<u8>,
}

impl std::fmt::Debug for RgbaFrame {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RgbaFrame")
            .field("width", &self.width)
            .field("height", &self.height)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::stamp::{self, Stamp};

    #[test]
    fn half_size_averages_blocks_and_keeps_the_stamp_readable() {
        let mut frame = I420Frame::black(1280, 720);
        let stamp = Stamp {
            counter: 77,
            capture_time: Duration::from_millis(1234),
        };
        stamp::write_luma(&mut frame.y, 1280, 720, 1280, stamp);
        let half = frame.half_size();
        assert_eq!((half.width, half.height), (640, 360));
        assert_eq!(half.u.len(), 320 * 180);
        assert_eq!(stamp::read_luma(&half.y, 640, 360, 640), Some(stamp));
    }
}
