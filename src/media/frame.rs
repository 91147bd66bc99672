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

    pub fn chroma_width(&self) -> usize {
        self.width / 2
    }

    pub fn chroma_height(&self) -> usize {
        self.height / 2
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
