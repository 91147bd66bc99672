//! Synthetic audio: a quiet 440 Hz tone with markers (2 kHz bursts) every 500 ms, first at
//! 250 ms, each followed by its index in a short binary code, so a receiver can tell which
//! marker it heard and when: glass-to-glass audio latency and "who hears whom" in tests.

const RATE: f64 = 48_000.0;
const MARKER_PERIOD: usize = 24_000; // 500 ms
const MARKER_OFFSET: usize = 12_000; // 250 ms
const MARKER_LEN: usize = 960; // 20 ms
const MARKER_HZ: f64 = 2_000.0;
const BIT_LEN: usize = 480; // 10 ms per index bit
const INDEX_BITS: usize = 8;
const BIT_ONE_HZ: f64 = 3_000.0;
const BIT_ZERO_HZ: f64 = 1_200.0;

/// Generates the tone, 48 kHz mono.
pub struct ToneSource {
    sample: usize,
    /// The quiet 440 Hz base under the markers.
    base: bool,
}

impl Default for ToneSource {
    fn default() -> Self {
        Self::new()
    }
}

impl ToneSource {
    pub fn new() -> Self {
        ToneSource {
            sample: 0,
            base: true,
        }
    }

    /// Only the markers, in silence: to lay over another signal (speech).
    pub(crate) fn markers_only() -> Self {
        ToneSource {
            sample: 0,
            base: false,
        }
    }

    pub fn next_frame(&mut self, samples: usize) -> Vec<f32> {
        (0..samples)
            .map(|_| {
                let n = self.sample;
                self.sample += 1;
                sample_at(n, self.base)
            })
            .collect()
    }
}

fn sample_at(n: usize, with_base: bool) -> f32 {
    let t = n as f64 / RATE;
    let base = if with_base {
        0.05 * (2.0 * std::f64::consts::PI * 440.0 * t).sin()
    } else {
        0.0
    };
    let Some(since) = n.checked_sub(MARKER_OFFSET) else {
        return base as f32;
    };
    let (index, pos) = (since / MARKER_PERIOD, since % MARKER_PERIOD);
    let burst = if pos < MARKER_LEN {
        0.5 * (2.0 * std::f64::consts::PI * MARKER_HZ * t).sin()
    } else if pos < MARKER_LEN + INDEX_BITS * BIT_LEN {
        let bit = (pos - MARKER_LEN) / BIT_LEN;
        let one = (index >> (INDEX_BITS - 1 - bit)) & 1 == 1;
        let hz = if one { BIT_ONE_HZ } else { BIT_ZERO_HZ };
        0.4 * (2.0 * std::f64::consts::PI * hz * t).sin()
    } else {
        0.0
    };
    (base + burst) as f32
}

/// A marker heard by a [`MarkerDetector`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeardMarker {
    /// Which marker (modulo 256).
    pub index: u8,
    /// Sample (at 48 kHz, counted from the detector's start) where its burst began.
    pub at_sample: u64,
}

/// Finds markers in a stream of 48 kHz mono samples (Goertzel filters).
pub struct MarkerDetector {
    /// Samples not yet discarded; `history[0]` is sample number `base`.
    history: Vec<f32>,
    base: u64,
    /// Next sample to scan for a burst.
    scan: u64,
    /// Onset of a burst whose index bits are still arriving.
    onset: Option<u64>,
}

impl Default for MarkerDetector {
    fn default() -> Self {
        Self::new()
    }
}

fn goertzel(block: &[f32], hz: f64) -> f64 {
    let k = 2.0 * (2.0 * std::f64::consts::PI * hz / RATE).cos();
    let (mut s1, mut s2) = (0.0f64, 0.0f64);
    for &x in block {
        let s = x as f64 + k * s1 - s2;
        s2 = s1;
        s1 = s;
    }
    (s1 * s1 + s2 * s2 - k * s1 * s2) / (block.len() as f64 * block.len() as f64)
}

/// Loudness above which a sample belongs to a burst (the tone alone peaks at 0.05).
const ONSET_LEVEL: f32 = 0.2;
const SCAN_BLOCK: usize = 240;

impl MarkerDetector {
    pub fn new() -> Self {
        MarkerDetector {
            history: Vec::new(),
            base: 0,
            scan: 0,
            onset: None,
        }
    }

    fn window(&self, from: u64, len: usize) -> Option<&[f32]> {
        let start = from.checked_sub(self.base)? as usize;
        self.history.get(start..start + len)
    }

    /// Feeds samples; returns the markers completed by them.
    pub fn push(&mut self, samples: &[f32]) -> Vec<HeardMarker> {
        self.history.extend_from_slice(samples);
        let mut heard = Vec::new();
        loop {
            if let Some(onset) = self.onset {
                let code_start = onset + MARKER_LEN as u64;
                if self.window(code_start, INDEX_BITS * BIT_LEN).is_none() {
                    break;
                }
                let mut index = 0u8;
                let mut valid = true;
                for bit in 0..INDEX_BITS {
                    // The middle half of each bit, away from the codec's smearing at the edges.
                    let from = code_start + (bit * BIT_LEN + BIT_LEN / 4) as u64;
                    let Some(w) = self.window(from, BIT_LEN / 2) else {
                        valid = false;
                        break;
                    };
                    let (one, zero) = (goertzel(w, BIT_ONE_HZ), goertzel(w, BIT_ZERO_HZ));
                    valid &= one.max(zero) > 0.002;
                    index = (index << 1) | (one > zero) as u8;
                }
                if valid {
                    heard.push(HeardMarker {
                        index,
                        at_sample: onset,
                    });
                }
                self.onset = None;
                self.scan = code_start + (INDEX_BITS * BIT_LEN) as u64;
                continue;
            }
            let Some(block) = self.window(self.scan, SCAN_BLOCK) else {
                break;
            };
            if goertzel(block, MARKER_HZ) > 0.003 {
                // The burst may have begun at the end of the previous block, too quietly to show.
                let from = self.scan.saturating_sub(SCAN_BLOCK as u64).max(self.base);
                let span = (self.scan - from) as usize + SCAN_BLOCK;
                let first = self
                    .window(from, span)
                    .and_then(|w| w.iter().position(|s| s.abs() > ONSET_LEVEL));
                if let Some(first) = first {
                    self.onset = Some(from + first as u64);
                    continue;
                }
            }
            self.scan += SCAN_BLOCK as u64;
        }
        // Keep a little more than one marker's worth of history.
        let keep_from = self
            .onset
            .unwrap_or(self.scan)
            .saturating_sub(SCAN_BLOCK as u64);
        if keep_from > self.base {
            let drop = (keep_from - self.base) as usize;
            self.history.drain(..drop.min(self.history.len()));
            self.base += drop as u64;
        }
        heard
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markers_are_found_with_their_index_and_onset() {
        let mut source = ToneSource::new();
        let mut detector = MarkerDetector::new();
        let mut heard = Vec::new();
        for _ in 0..300 {
            heard.extend(detector.push(&source.next_frame(480)));
        }
        assert_eq!(heard.len(), 6, "{heard:?}");
        for (k, m) in heard.iter().enumerate() {
            assert_eq!(m.index as usize, k);
            let sent = (MARKER_OFFSET + k * MARKER_PERIOD) as i64;
            assert!(
                (m.at_sample as i64 - sent).abs() <= 4,
                "marker {k} heard at {}, sent at {sent}",
                m.at_sample
            );
        }
    }
}
