//! A machine-readable stamp drawn into a picture, that survives a lossy codec: a frame counter
//! and the capture time as rows of large black/white blocks, with a CRC. The receiver reads it
//! back after decoding, so glass-to-glass latency is measured, not guessed.
//!
//! Layout (also read by the browser tests): [`ROWS`] rows of [`COLUMNS`] square blocks from the
//! top-left corner, block side `block_size(width)`; bit i is block (i % COLUMNS, i / COLUMNS),
//! white (luma 235) for 1, black (luma 16) for 0. Bits, most significant first: 32-bit frame
//! counter, 40-bit capture time in microseconds, CRC-8 (polynomial 0x07) of the first 9 bytes.

use std::time::Duration;

pub const COLUMNS: usize = 40;
pub const ROWS: usize = 2;
const BITS: usize = COLUMNS * ROWS;
const BLACK: u8 = 16;
const WHITE: u8 = 235;

/// What a stamp carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    pub counter: u32,
    /// Capture time on the sender's media clock, kept modulo 2^40 µs (about 12.7 days).
    pub capture_time: Duration,
}

/// Side of one block in pixels for a picture `width` wide: even, at least 4.
pub(crate) fn block_size(width: usize) -> usize {
    ((width / COLUMNS) & !1).max(4)
}

fn payload(stamp: Stamp) -> [u8; 10] {
    let micros = (stamp.capture_time.as_micros() as u64) & ((1 << 40) - 1);
    let mut bytes = [0u8; 10];
    bytes[..4].copy_from_slice(&stamp.counter.to_be_bytes());
    bytes[4..9].copy_from_slice(&micros.to_be_bytes()[3..]);
    bytes[9] = crc8(&bytes[..9]);
    bytes
}

fn crc8(data: &[u8]) -> u8 {
    let mut crc = 0u8;
    for &b in data {
        crc ^= b;
        for _ in 0..8 {
            crc = if crc & 0x80 != 0 {
                (crc << 1) ^ 0x07
            } else {
                crc << 1
            };
        }
    }
    crc
}

/// Draws the stamp into a luma plane (`stride` bytes per row). The picture must be at least
/// `COLUMNS * block_size` wide and `band_height` high.
pub(crate) fn write_luma(y: &mut [u8], width: usize, height: usize, stride: usize, stamp: Stamp) {
    let side = block_size(width);
    if side * COLUMNS > width || side * ROWS > height {
        return;
    }
    let bytes = payload(stamp);
    for bit in 0..BITS {
        let on = bytes[bit / 8] & (0x80 >> (bit % 8)) != 0;
        let (bx, by) = ((bit % COLUMNS) * side, (bit / COLUMNS) * side);
        for row in by..by + side {
            let start = row * stride + bx;
            y[start..start + side].fill(if on { WHITE } else { BLACK });
        }
    }
}

/// Makes the chroma under the stamp neutral, so that RGB readers see pure grey levels.
pub(crate) fn neutral_chroma(u: &mut [u8], v: &mut [u8], width: usize, chroma_stride: usize) {
    let side = block_size(width);
    let (w, h) = ((side * COLUMNS) / 2, (side * ROWS) / 2);
    for row in 0..h {
        let start = row * chroma_stride;
        if start + w <= u.len() && start + w <= v.len() {
            u[start..start + w].fill(128);
            v[start..start + w].fill(128);
        }
    }
}

/// Reads a stamp back from any picture where `level(x, y)` gives a brightness 0–255.
/// `None` when there is no valid stamp (CRC mismatch, picture too small).
pub fn read(width: usize, height: usize, level: impl Fn(usize, usize) -> u8) -> Option<Stamp> {
    let side = block_size(width);
    if side * COLUMNS > width || side * ROWS > height {
        return None;
    }
    let mut bytes = [0u8; 10];
    // Sample the middle half of each block, away from edges that the codec blurs.
    let (lo, hi) = (side / 4, side - side / 4);
    for bit in 0..BITS {
        let (bx, by) = ((bit % COLUMNS) * side, (bit / COLUMNS) * side);
        let mut sum = 0u32;
        let mut n = 0u32;
        for y in by + lo..by + hi {
            for x in bx + lo..bx + hi {
                sum += level(x, y) as u32;
                n += 1;
            }
        }
        if sum / n.max(1) > 128 {
            bytes[bit / 8] |= 0x80 >> (bit % 8);
        }
    }
    if crc8(&bytes[..9]) != bytes[9] {
        return None;
    }
    let counter = u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
    let mut micros = [0u8; 8];
    micros[3..].copy_from_slice(&bytes[4..9]);
    Some(Stamp {
        counter,
        capture_time: Duration::from_micros(u64::from_be_bytes(micros)),
    })
}

/// Reads the stamp from a luma plane.
pub(crate) fn read_luma(y: &[u8], width: usize, height: usize, stride: usize) -> Option<Stamp> {
    read(width, height, |x, row| y[row * stride + x])
}

/// Reads the stamp from RGBA pixels (as decoded for the UI, or grabbed from a browser canvas).
#[cfg(test)]
pub(crate) fn read_rgba(pixels: &[u8], width: usize, height: usize) -> Option<Stamp> {
    read(width, height, |x, y| pixels[(y * width + x) * 4 + 1])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stamp_reads_back_exactly() {
        let (w, h) = (640, 360);
        let mut y = vec![100u8; w * h];
        let stamp = Stamp {
            counter: 0xDEAD_BEEF,
            capture_time: Duration::from_micros(123_456_789_012),
        };
        write_luma(&mut y, w, h, w, stamp);
        assert_eq!(read_luma(&y, w, h, w), Some(stamp));
    }

    #[test]
    fn a_corrupted_stamp_is_refused() {
        let (w, h) = (640, 360);
        let mut y = vec![100u8; w * h];
        write_luma(
            &mut y,
            w,
            h,
            w,
            Stamp {
                counter: 1,
                capture_time: Duration::from_millis(5),
            },
        );
        // Invert the first block.
        let side = block_size(w);
        for row in 0..side {
            for x in 0..side {
                y[row * w + x] = 255 - y[row * w + x];
            }
        }
        assert_eq!(read_luma(&y, w, h, w), None);
    }

    #[test]
    fn no_stamp_in_a_picture_too_small() {
        assert_eq!(read_luma(&[0; 16], 4, 4, 4), None);
    }
}
