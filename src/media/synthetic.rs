//! Synthetic video: a test input standing in for a camera or a screen where there is none.
//! Every frame carries a [`stamp`](crate::media::stamp) with its counter and capture time.

use std::time::Duration;

use crate::media::frame::I420Frame;
use crate::media::stamp::{self, Stamp};

/// What the pattern looks like to an encoder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatternKind {
    /// Camera-like: moving gradients and a moving box, with temporal sensor noise.
    Camera,
    /// Screen-like: dark text-like glyph rows on white that scroll, no noise.
    Screen,
}

/// A moving test pattern; `next_frame` draws the next picture.
pub struct TestPattern {
    width: usize,
    height: usize,
    kind: PatternKind,
    counter: u32,
    noise: u64,
    /// One period of the camera pattern's ramp, and one row of random grain.
    ramp: Vec<u8>,
    grain: Vec<u8>,
}

impl TestPattern {
    /// Width and height are rounded down to even values.
    pub fn new(width: usize, height: usize, kind: PatternKind) -> Self {
        TestPattern {
            width: width & !1,
            height: height & !1,
            kind,
            counter: 0,
            noise: 0x9E37_79B9_7F4A_7C15,
            ramp: Vec::new(),
            grain: Vec::new(),
        }
    }

    /// Draws the next frame, stamped with `capture_time` (the caller's media clock).
    pub fn next_frame(&mut self, capture_time: Duration) -> I420Frame {
        let mut frame = I420Frame::black(self.width, self.height);
        self.draw_into(&mut frame, capture_time);
        frame
    }

    /// Draws the next frame into an existing buffer of the same size (no allocation).
    pub fn draw_into(&mut self, frame: &mut I420Frame, capture_time: Duration) {
        let t = self.counter as usize;
        match self.kind {
            PatternKind::Camera => self.draw_camera(frame, t),
            PatternKind::Screen => draw_screen(frame, t),
        }
        let (w, h) = (frame.width, frame.height);
        stamp::write_luma(
            &mut frame.y,
            w,
            h,
            w,
            Stamp {
                counter: self.counter,
                capture_time,
            },
        );
        let cw = frame.chroma_width();
        stamp::neutral_chroma(&mut frame.u, &mut frame.v, w, cw);
        frame.capture_time = capture_time;
        self.counter = self.counter.wrapping_add(1);
    }

    fn draw_camera(&mut self, frame: &mut I420Frame, t: usize) {
        let (w, h) = (frame.width, frame.height);
        let (bx, by, side) = ((t * 7) % w.max(1), (t * 3) % h.max(1), (h / 4).max(2));
        // A diagonal ramp (one precomputed period, read at a moving offset) plus fresh
        // temporal noise for every pixel of every frame, as hard for an encoder as a sensor's:
        // each xorshift step gives the grain of 16 pixels.
        if self.ramp.len() < w + 160 {
            self.ramp = (0..w + 160).map(|i| 40 + (i % 160) as u8).collect();
        }
        self.grain.resize(w.div_ceil(16) * 16, 0);
        for row in 0..h {
            let mut noise = self.noise;
            for chunk in self.grain.chunks_exact_mut(16) {
                noise ^= noise << 13;
                noise ^= noise >> 7;
                noise ^= noise << 17;
                let bits = noise;
                for (index, grain) in chunk.iter_mut().enumerate() {
                    *grain = ((bits >> (index * 4)) & 15) as u8;
                }
            }
            self.noise = noise;
            let line = &mut frame.y[row * w..(row + 1) * w];
            let ramp_start = (row + 2 * t) % 160;
            let ramp = &self.ramp[ramp_start..ramp_start + w];
            for ((px, base), noise) in line.iter_mut().zip(ramp).zip(&self.grain) {
                *px = base.saturating_add(*noise).min(235);
            }
            if row.wrapping_sub(by) < side {
                let end = (bx + side).min(w);
                for (px, noise) in line[bx.min(w)..end].iter_mut().zip(&self.grain) {
                    *px = (200 + noise).min(235);
                }
            }
        }
        let (cw, ch) = (frame.chroma_width(), frame.chroma_height());
        for row in 0..ch {
            for x in 0..cw {
                frame.u[row * cw + x] = (64 + (x + t) % 128) as u8;
                frame.v[row * cw + x] = (64 + (row + 2 * t) % 128) as u8;
            }
        }
    }
}

/// Rows of glyph-like dark strokes on white, scrolling up one pixel per frame.
fn draw_screen(frame: &mut I420Frame, t: usize) {
    let (w, h) = (frame.width, frame.height);
    const LINE: usize = 18;
    for row in 0..h {
        let text_row = (row + t) / LINE;
        let in_line = (row + t) % LINE;
        let line = &mut frame.y[row * w..(row + 1) * w];
        for (x, px) in line.iter_mut().enumerate() {
            let glyph = (x / 9)
                .wrapping_mul(2654435761)
                .wrapping_add(text_row.wrapping_mul(40503));
            let ink =
                in_line > 3 && in_line < 14 && x % 9 < 6 && (glyph >> ((x + in_line) % 7)) & 1 == 1;
            *px = if ink { 30 } else { 235 };
        }
    }
    frame.u.fill(128);
    frame.v.fill(128);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_carry_their_counter_and_time_and_move() {
        let mut p = TestPattern::new(640, 360, PatternKind::Camera);
        let a = p.next_frame(Duration::from_millis(0));
        let b = p.next_frame(Duration::from_millis(33));
        let sa = stamp::read_luma(&a.y, 640, 360, 640).unwrap();
        let sb = stamp::read_luma(&b.y, 640, 360, 640).unwrap();
        assert_eq!((sa.counter, sb.counter), (0, 1));
        assert_eq!(sb.capture_time, Duration::from_millis(33));
        assert_ne!(a.y[360 * 320..], b.y[360 * 320..], "the picture moves");
    }

    #[test]
    fn screen_content_is_stamped_too() {
        let mut p = TestPattern::new(1280, 720, PatternKind::Screen);
        let f = p.next_frame(Duration::from_secs(2));
        assert_eq!(
            stamp::read_luma(&f.y, 1280, 720, 1280)
                .unwrap()
                .capture_time,
            Duration::from_secs(2)
        );
    }
}
