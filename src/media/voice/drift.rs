//! Keeps the echo canceller's reference on the microphone's clock.
//!
//! With one sound card, playback and capture share a clock. With separate devices (a USB
//! headset's microphone and the laptop's speakers, a webcam's microphone) each runs on its own
//! crystal, a few to a few hundred parts per million apart. Unchecked, the echo then slides
//! against the reference by that much (0.5 ms a second at 500 ppm), and AEC3's adaptive filter
//! chases a moving echo path: in the drift test ERLE fell from 58 dB to 25 dB at 500 ppm.
//!
//! [`DriftCompensator`] sits between the speaker's callback, which pushes what it plays in
//! whatever blocks the device asks for, and the capture thread, which pulls exactly one 10 ms
//! frame of reference per microphone frame. It learns how far ahead of the microphone the
//! render audio usually is (the buffer's slack), then holds that slack steady by resampling
//! the reference: a PI controller on the smoothed slack sets the resampling ratio, whose
//! integral part is the measured clock difference. Jumps (a stalled device, a burst) larger
//! than [`SNAP_SAMPLES`] are taken in one step instead, as AEC3 re-finds a moved delay faster
//! than it follows a slow slide.
//!
//! With a shared clock the ratio stays 1 and the output is the input, sample for sample
//! (phase 0 of the interpolation kernel is a unit impulse).

use std::collections::VecDeque;
use std::sync::OnceLock;

use crate::media::audio_device::{FRAME, RATE};

/// Interpolation kernel: windowed sinc over `2 × HALF` input samples.
const HALF: usize = 8;
const TAPS: usize = 2 * HALF;
/// Fractional positions tabulated between two input samples; the nearest is used (a timing
/// error of at most 1/2048 sample, 10 ns: over 70 dB below the signal at 4 kHz).
const PHASES: usize = 1024;
/// Frames watched before the slack's target is set (0.5 s: several periods of any device)…
const WARM_UP_FRAMES: u32 = 50;
/// …of which the first ones (devices starting up) do not count.
const WARM_UP_SKIPPED: u32 = 10;
/// Samples kept above the lowest slack seen while warming up (2 ms), against jitter and the
/// controller's transients.
const MARGIN_SAMPLES: f64 = 96.0;
/// The controller sees the slack's error clamped to this (2 ms): a burst or a stall moves the
/// clock estimate by little before it is taken in one step.
const MAX_ERROR_SAMPLES: f64 = 96.0;
/// Frames over which the lowest slack is watched for a jump (250 ms).
const JUMP_WINDOW_FRAMES: u32 = 25;
/// Smoothing of the slack: exponential average with a 1 s time constant (10 ms steps).
const SLACK_SMOOTHING: f64 = 0.01;
/// PI controller gains, per second and per second squared (critically damped, 4 s).
const KP: f64 = 0.5;
const KI: f64 = 0.0625;
/// The largest clock difference followed by resampling (±2000 ppm; real devices are within
/// a few hundred); the ratio is held at it beyond.
const MAX_RATIO_OFFSET: f64 = 2.0e-3;
/// A slack this far above its target (20 ms) is corrected in one step.
pub(crate) const SNAP_SAMPLES: f64 = 0.020 * RATE as f64;
/// Samples kept behind the read position, so the reference can be delayed in one step.
const HISTORY: usize = SNAP_SAMPLES as usize;
/// Reference kept at most (1 s); more is dropped from the front.
const CAPACITY: usize = RATE as usize;

fn kernel(x: f64) -> f64 {
    let w = x / HALF as f64;
    if w.abs() >= 1.0 {
        return 0.0;
    }
    let sinc = if x == 0.0 {
        1.0
    } else {
        (std::f64::consts::PI * x).sin() / (std::f64::consts::PI * x)
    };
    let window = 0.42
        + 0.5 * (std::f64::consts::PI * w).cos()
        + 0.08 * (2.0 * std::f64::consts::PI * w).cos();
    sinc * window
}

/// `table[phase][tap]`: the weight of input sample `i − (HALF − 1) + tap` for an output at
/// `i + phase / PHASES`.
fn kernel_table() -> &'static [[f32; TAPS]] {
    static TABLE: OnceLock<Vec<[f32; TAPS]>> = OnceLock::new();
    TABLE.get_or_init(|| {
        (0..PHASES)
            .map(|phase| {
                let mu = phase as f64 / PHASES as f64;
                let mut taps = [0.0f32; TAPS];
                for (tap, weight) in taps.iter_mut().enumerate() {
                    *weight = kernel(tap as f64 - (HALF as f64 - 1.0) - mu) as f32;
                }
                taps
            })
            .collect()
    })
}

/// What the compensator has seen, for the stats.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct DriftStats {
    /// The measured clock difference: how much faster the speaker runs than the microphone.
    pub drift_ppm: f64,
    /// Reference audio waiting ahead of the microphone (smoothed), in ms.
    pub slack_ms: f64,
    /// Frames the reference ran dry (nothing played arrived in time; silence was used).
    pub underruns: u64,
    /// Jumps taken in one step (a burst after a stall).
    pub realignments: u64,
}

#[derive(Debug)]
enum Phase {
    /// Nothing pushed yet: no reference to give.
    Idle,
    /// Watching the slack to set its target.
    WarmingUp { frames: u32, sum: f64, min: f64 },
    /// Holding the (smoothed) slack at `target`; `window_min` is the lowest slack of the
    /// current jump window.
    Tracking {
        target: f64,
        window_min: f64,
        window_frames: u32,
    },
}

#[derive(Debug)]
pub struct DriftCompensator {
    /// Render samples; `buffer[0]` has the absolute index `front`.
    buffer: VecDeque<f32>,
    front: u64,
    /// Absolute (fractional) position of the next output sample.
    read: f64,
    phase: Phase,
    /// Smoothed slack (samples).
    slack: f64,
    /// The controller's integral (sample·seconds).
    integral: f64,
    ratio: f64,
    stats: DriftStats,
}

impl Default for DriftCompensator {
    fn default() -> Self {
        Self::new()
    }
}

impl DriftCompensator {
    pub fn new() -> Self {
        DriftCompensator {
            buffer: VecDeque::with_capacity(CAPACITY + 4 * FRAME),
            front: 0,
            read: 0.0,
            phase: Phase::Idle,
            slack: 0.0,
            integral: 0.0,
            ratio: 1.0,
            stats: DriftStats::default(),
        }
    }

    /// Appends what the speaker plays (any block size). Returns how many whole frames were
    /// dropped from the front because the capture side did not take them (over 1 s).
    pub fn push(&mut self, samples: &[f32]) -> u64 {
        if matches!(self.phase, Phase::Idle) {
            self.phase = Phase::WarmingUp {
                frames: 0,
                sum: 0.0,
                min: f64::INFINITY,
            };
            // The kernel looks HALF − 1 samples back: start with that much silence.
            self.buffer.extend(std::iter::repeat_n(0.0, HALF - 1));
            self.read = (HALF - 1) as f64;
        }
        self.buffer.extend(samples.iter().copied());
        let excess = self.available().floor() - CAPACITY as f64;
        if excess > 0.0 {
            let frames = (excess / FRAME as f64).ceil();
            self.read += frames * FRAME as f64;
            self.trim();
            return frames as u64;
        }
        0
    }

    /// Whether any reference has arrived (else there is nothing to cancel).
    pub(crate) fn is_active(&self) -> bool {
        !matches!(self.phase, Phase::Idle)
    }

    /// Forgets the reference and the learnt slack but keeps the measured clock difference
    /// (a property of the two devices): for a pause in processing, such as a muted microphone.
    pub(crate) fn pause(&mut self) {
        let (integral, stats) = (self.integral, self.stats);
        *self = Self::new();
        self.integral = integral;
        self.stats = stats;
        self.ratio = 1.0 + self.drift_term();
    }

    /// Starts over (other devices: another clock).
    pub(crate) fn reset(&mut self) {
        let stats = DriftStats {
            drift_ppm: 0.0,
            slack_ms: 0.0,
            ..self.stats
        };
        *self = Self::new();
        self.stats = stats;
    }

    pub fn stats(&self) -> DriftStats {
        self.stats
    }

    /// Samples not yet read (including the kernel's look-ahead).
    pub(crate) fn available(&self) -> f64 {
        (self.front + self.buffer.len() as u64) as f64 - self.read
    }

    fn drift_term(&self) -> f64 {
        (KI * self.integral / RATE as f64).clamp(-MAX_RATIO_OFFSET, MAX_RATIO_OFFSET)
    }

    /// Drops samples neither the kernel nor a rewind needs.
    fn trim(&mut self) {
        let keep_from = (self.read.floor() as u64).saturating_sub((HALF - 1 + HISTORY) as u64);
        let drop = keep_from.saturating_sub(self.front) as usize;
        let drop = drop.min(self.buffer.len());
        self.buffer.drain(..drop);
        self.front += drop as u64;
        if self.buffer.is_empty() {
            self.front = self.front.max(keep_from);
        }
    }

    /// Fills `out` (one 10 ms frame) with the reference for the microphone frame now being
    /// processed. Returns `false` (and leaves `out` alone) while nothing has been played.
    pub(crate) fn pull(&mut self, out: &mut [f32]) -> bool {
        if !self.is_active() {
            return false;
        }
        // What will be left after this frame (the kernel needs HALF samples past the end).
        let slack = self.available() - out.len() as f64 * self.ratio - HALF as f64;
        self.steer(slack);

        let needed = out.len() as f64 * self.ratio + HALF as f64 + 1.0;
        let missing = (needed - self.available()).ceil();
        if missing > 0.0 {
            // Nothing played arrived in time: the speaker played silence meanwhile.
            self.buffer
                .extend(std::iter::repeat_n(0.0, missing as usize));
            if matches!(self.phase, Phase::Tracking { .. }) {
                self.stats.underruns += 1;
            }
        }
        // Trimmed, the buffer holds little more than the history and the slack: making it
        // one slice is a small copy, and only when the ring has wrapped.
        let data = self.buffer.make_contiguous();
        let index = |position: f64| (position as u64 - self.front) as usize;
        if self.ratio == 1.0 && self.read.fract() == 0.0 {
            // One clock: the kernel is a unit impulse; copy.
            let first = index(self.read);
            out.copy_from_slice(&data[first..first + out.len()]);
            self.read += out.len() as f64;
        } else {
            let table = kernel_table();
            for sample in out.iter_mut() {
                let i = self.read.floor();
                let phase = ((self.read - i) * PHASES as f64).round() as usize;
                // Phase PHASES is phase 0 of the next sample.
                let (i, phase) = if phase == PHASES {
                    (i + 1.0, 0)
                } else {
                    (i, phase)
                };
                let first = index(i) - (HALF - 1);
                *sample = data[first..first + TAPS]
                    .iter()
                    .zip(&table[phase])
                    .map(|(x, w)| x * w)
                    .sum();
                self.read += self.ratio;
            }
        }
        self.trim();
        true
    }

    /// Moves the read position by `samples` (positive: skip ahead; negative: repeat, within
    /// the history kept).
    fn shift(&mut self, samples: f64) {
        let oldest = (self.front + HALF as u64 - 1) as f64;
        self.read = (self.read + samples).max(oldest);
    }

    /// Sets the ratio for the next frame from the slack before it.
    fn steer(&mut self, slack: f64) {
        let dt = FRAME as f64 / RATE as f64;
        match &mut self.phase {
            Phase::Idle => {}
            Phase::WarmingUp { frames, sum, min } => {
                *frames += 1;
                if *frames > WARM_UP_SKIPPED {
                    *sum += slack;
                    *min = min.min(slack);
                }
                if *frames >= WARM_UP_FRAMES {
                    let mean = *sum / f64::from(*frames - WARM_UP_SKIPPED);
                    // Keep the lowest slack seen MARGIN above zero, and no more: skip the
                    // excess, or delay the reference by what is missing.
                    let target = mean - *min + MARGIN_SAMPLES;
                    let shift = (mean - target).round();
                    self.shift(shift);
                    self.slack = mean - shift;
                    self.phase = Phase::Tracking {
                        target: self.slack,
                        window_min: f64::INFINITY,
                        window_frames: 0,
                    };
                }
            }
            Phase::Tracking {
                target,
                window_min,
                window_frames,
            } => {
                let target = *target;
                self.slack += SLACK_SMOOTHING * (slack - self.slack);
                *window_min = window_min.min(slack);
                *window_frames += 1;
                let mut jump = 0.0;
                if *window_frames >= JUMP_WINDOW_FRAMES {
                    // The lowest slack should sit at MARGIN; far above it, a burst arrived
                    // (or the capture side stalled): skip ahead in one step.
                    let excess = *window_min - MARGIN_SAMPLES;
                    if excess > SNAP_SAMPLES {
                        jump = excess.floor();
                    }
                    *window_min = f64::INFINITY;
                    *window_frames = 0;
                }
                if jump > 0.0 {
                    self.shift(jump);
                    self.slack -= jump;
                    self.stats.realignments += 1;
                }
                let error = (self.slack - target).clamp(-MAX_ERROR_SAMPLES, MAX_ERROR_SAMPLES);
                // While starved nothing is learnt about the clocks.
                if slack >= 1.0 {
                    self.integral += error * dt;
                    // Anti-windup: the integral alone never asks for more than the limit.
                    let limit = MAX_RATIO_OFFSET * RATE as f64 / KI;
                    self.integral = self.integral.clamp(-limit, limit);
                }
                let offset = (KP * error / RATE as f64 + self.drift_term())
                    .clamp(-MAX_RATIO_OFFSET, MAX_RATIO_OFFSET);
                self.ratio = 1.0 + offset;
            }
        }
        self.stats.drift_ppm = self.drift_term() * 1e6;
        self.stats.slack_ms = self.slack.max(0.0) * 1000.0 / RATE as f64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sine(n: usize, from: usize) -> Vec<f32> {
        (from..from + n)
            .map(|k| (k as f32 * 0.05).sin() * 0.5)
            .collect()
    }

    #[test]
    fn with_one_clock_the_reference_passes_unchanged() {
        let mut c = DriftCompensator::new();
        let mut out = vec![0.0; FRAME];
        assert!(!c.pull(&mut out), "nothing played yet");
        let input = sine(FRAME * 300, 0);
        let mut output = Vec::new();
        for frame in input.chunks(FRAME) {
            c.push(frame);
            assert!(c.pull(&mut out));
            output.extend_from_slice(&out);
        }
        let stats = c.stats();
        assert_eq!(stats.underruns, 0, "{stats:?}");
        assert_eq!(stats.drift_ppm, 0.0);
        // After the warm-up (which sets the slack once), the output is the input delayed by a
        // fixed number of whole samples.
        let from = FRAME * 60;
        let lag = (0..2 * FRAME)
            .find(|&lag| (from..from + 1000).all(|k| (output[k] - input[k - lag]).abs() < 1e-6))
            .unwrap_or_else(|| panic!("no whole-sample lag reproduces the input"));
        assert!(lag < FRAME, "lag {lag} samples");
        assert!(
            output[from..]
                .iter()
                .zip(&input[from - lag..])
                .all(|(a, b)| (a - b).abs() < 1e-6),
            "the lag changed"
        );
    }

    /// A speaker `ppm` fast, asking for 1024 samples a period, against 10 ms microphone
    /// frames: the compensator finds the clock difference and the slack stays put.
    fn drift_run(ppm: f64) -> (DriftStats, Vec<(f64, f64)>) {
        let mut c = DriftCompensator::new();
        let mut out = vec![0.0; FRAME];
        let (mut pushed, mut slacks) = (0usize, Vec::new());
        let speaker_rate = RATE as f64 * (1.0 + ppm * 1e-6);
        for frame in 1..=60_000usize {
            // 10 min of microphone time; the speaker keeps one period queued ahead.
            let played = frame as f64 * FRAME as f64 * speaker_rate / RATE as f64;
            while (pushed as f64) <= played + 1024.0 {
                c.push(&sine(1024, pushed));
                pushed += 1024;
            }
            assert!(c.pull(&mut out));
            if frame % 100 == 0 {
                slacks.push((c.stats().slack_ms, c.stats().drift_ppm));
            }
        }
        (c.stats(), slacks)
    }

    #[test]
    fn it_measures_the_clock_difference_and_holds_the_slack() {
        for ppm in [-500.0, -50.0, 0.0, 80.0, 500.0] {
            let (stats, seconds) = drift_run(ppm);
            let late = &seconds[60..];
            let (low, high) = late
                .iter()
                .fold((f64::MAX, f64::MIN), |(l, h), s| (l.min(s.0), h.max(s.0)));
            // The slack is sampled from a sawtooth (the speaker's periods against the
            // microphone's frames), so the estimate wanders around the truth; its average
            // over the last five minutes must be it.
            let measured = seconds[300..].iter().map(|s| s.1).sum::<f64>() / 300.0;
            println!(
                "{ppm:+} ppm: measured {measured:+.1} ppm (last 5 min), slack {low:.2}..{high:.2} ms after 1 min, {stats:?}"
            );
            assert!(
                (measured - ppm).abs() < 5.0,
                "{ppm} ppm measured as {measured:.1}"
            );
            // Without compensation it would move by 30 ms a minute at 500 ppm.
            assert!(high - low < 1.5, "{ppm} ppm: slack moved {low}..{high} ms");
            assert_eq!(stats.underruns, 0, "{ppm} ppm: {stats:?}");
            assert_eq!(stats.realignments, 0, "{ppm} ppm: {stats:?}");
        }
    }

    #[test]
    fn a_stall_is_taken_in_one_step_and_an_unread_reference_is_bounded() {
        let mut c = DriftCompensator::new();
        let mut out = vec![0.0; FRAME];
        for k in 0..200 {
            c.push(&sine(FRAME, k * FRAME));
            c.pull(&mut out);
        }
        // The microphone stalls for 100 ms while the speaker plays on: a burst of 10 frames.
        for k in 200..210 {
            c.push(&sine(FRAME, k * FRAME));
        }
        for k in 210..400 {
            c.push(&sine(FRAME, k * FRAME));
            c.pull(&mut out);
        }
        let stats = c.stats();
        assert_eq!(stats.realignments, 1, "{stats:?}");
        assert!(stats.slack_ms < 5.0, "{stats:?}");
        // Nobody reads for 3 s: at most 1 s is kept.
        let dropped: u64 = (0..300).map(|k| c.push(&sine(FRAME, k * FRAME))).sum();
        assert!(dropped >= 190, "dropped {dropped} frames");
        assert!(c.available() <= CAPACITY as f64 + FRAME as f64);
    }

    #[test]
    fn pause_keeps_the_clock_difference_and_reset_forgets_it() {
        let mut c = DriftCompensator::new();
        let mut out = vec![0.0; FRAME];
        let mut pushed = 0usize;
        for frame in 1..=20_000usize {
            let played = frame as f64 * FRAME as f64 * 1.0003;
            while (pushed as f64) <= played + 1024.0 {
                c.push(&sine(1024, pushed));
                pushed += 1024;
            }
            c.pull(&mut out);
        }
        assert!(
            (c.stats().drift_ppm - 300.0).abs() < 10.0,
            "{:?}",
            c.stats()
        );
        c.pause();
        assert!(!c.is_active());
        assert!((c.stats().drift_ppm - 300.0).abs() < 10.0);
        assert!((c.ratio - 1.0003).abs() < 1e-5);
        c.reset();
        assert_eq!(c.stats().drift_ppm, 0.0);
        assert_eq!(c.ratio, 1.0);
    }
}
