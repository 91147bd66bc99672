//! A simulated room for the headless participant: what its loudspeaker plays comes back into
//! its microphone through an echo path, with background noise on top.
//!
//! mic = near-end speech + render ∗ h + noise, where the echo path `h` is a direct tap exactly
//! `delay_ms` after the render sample, followed by a diffuse tail (seeded Gaussian noise under
//! an exponential envelope that falls by 60 dB over `tail_ms`), scaled so that its energy gain
//! is `gain_db` (a white far-end signal comes back `gain_db` below its own level). Noise is
//! white or pink at a given level. Pure DSP, no devices, deterministic for a given seed.
//!
//! Levels in dBFS are RMS relative to full scale 1.0 (a full-scale square wave is 0 dBFS), the
//! same convention as WebRTC's AGC2.

use serde::{Deserialize, Serialize};
use sonora_simd::SimdBackend;

use crate::media::audio_device::RATE;

/// Samples per millisecond at [`RATE`].
const PER_MS: f32 = RATE as f32 / 1000.0;
/// Longest echo path accepted (delay plus tail), in ms.
pub(crate) const MAX_ECHO_PATH_MS: f32 = 2_000.0;
/// Energy of the diffuse tail relative to the direct tap (0 dB: as much reverberant as direct
/// energy, a laptop on a desk in a small room).
const DIFFUSE_TO_DIRECT: f32 = 1.0;

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum RoomError {
    #[error("echo path: {0}")]
    InvalidEchoPath(String),
    #[error("noise level {0} dBFS is not a finite level at or below 0 dBFS")]
    InvalidNoiseLevel(f32),
    #[error(
        "render ({render}), near-end ({near_end}) and microphone ({mic}) blocks differ in length"
    )]
    LengthMismatch {
        render: usize,
        near_end: usize,
        mic: usize,
    },
}

/// How the loudspeaker's sound reaches the microphone.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct EchoPath {
    /// Time from a sample played to its first arrival at the microphone.
    pub delay_ms: f32,
    /// Length of the exponentially decaying tail after the first arrival; its envelope falls
    /// by 60 dB over this time (an RT60). 0 gives a single tap.
    pub tail_ms: f32,
    /// Energy gain of the whole path (direct tap and tail), in dB: −6 means the echo of a
    /// white signal is 6 dB below the signal played.
    pub gain_db: f32,
}

impl Default for EchoPath {
    /// A laptop's speakers and microphone: 80 ms (device buffers and air), 250 ms tail, −6 dB.
    fn default() -> Self {
        EchoPath {
            delay_ms: 80.0,
            tail_ms: 250.0,
            gain_db: -6.0,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NoiseColor {
    /// Flat spectrum (fan hiss).
    White,
    /// −3 dB per octave (room rumble, traffic).
    Pink,
}

/// Stationary background noise at the microphone.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RoomNoise {
    pub color: NoiseColor,
    /// RMS level in dBFS.
    pub level_dbfs: f32,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SimulatedRoomConfig {
    pub echo: EchoPath,
    pub noise: Option<RoomNoise>,
    /// Seeds the echo tail and the noise: the same seed gives the same room.
    pub seed: u64,
}

impl Default for SimulatedRoomConfig {
    fn default() -> Self {
        SimulatedRoomConfig {
            echo: EchoPath::default(),
            noise: None,
            seed: 0x5EED,
        }
    }
}

/// SplitMix64: small, fast, and the same sequence on every platform.
#[derive(Debug, Clone)]
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in (0, 1].
    fn uniform(&mut self) -> f64 {
        ((self.next_u64() >> 11) + 1) as f64 / (1u64 << 53) as f64
    }

    /// Standard normal (Box–Muller; one of the pair is discarded, which keeps this stateless).
    fn gaussian(&mut self) -> f32 {
        let (u1, u2) = (self.uniform(), self.uniform());
        ((-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()) as f32
    }
}

/// Paul Kellet's pink filter (white in, −3 dB/octave out, ±0.05 dB above 9 Hz at 44.1 kHz).
#[derive(Debug, Clone, Default)]
struct PinkFilter {
    b: [f32; 7],
}

impl PinkFilter {
    fn next(&mut self, white: f32) -> f32 {
        let b = &mut self.b;
        b[0] = 0.99886 * b[0] + white * 0.055_517_9;
        b[1] = 0.99332 * b[1] + white * 0.075_075_9;
        b[2] = 0.96900 * b[2] + white * 0.153_852;
        b[3] = 0.86650 * b[3] + white * 0.310_485_6;
        b[4] = 0.55000 * b[4] + white * 0.532_952_2;
        b[5] = -0.7616 * b[5] - white * 0.016_898;
        let out = b[0] + b[1] + b[2] + b[3] + b[4] + b[5] + b[6] + white * 0.5362;
        b[6] = white * 0.115_926;
        out
    }

    /// RMS gain of the filter for white input: the root of its impulse response's energy.
    fn rms_gain() -> f32 {
        let mut f = PinkFilter::default();
        let mut energy = f64::from(f.next(1.0)).powi(2);
        // The slowest pole (0.99886) has fallen below 1e-10 in energy after ~10^4 samples.
        for _ in 0..20_000 {
            energy += f64::from(f.next(0.0)).powi(2);
        }
        energy.sqrt() as f32
    }
}

#[derive(Debug, Clone)]
struct NoiseSource {
    color: NoiseColor,
    /// Scales a unit-variance source to the requested RMS.
    scale: f32,
    pink: PinkFilter,
    rng: Rng,
}

impl NoiseSource {
    fn new(noise: RoomNoise, seed: u64) -> Result<Self, RoomError> {
        if !noise.level_dbfs.is_finite() || noise.level_dbfs > 0.0 {
            return Err(RoomError::InvalidNoiseLevel(noise.level_dbfs));
        }
        let rms = 10f32.powf(noise.level_dbfs / 20.0);
        let scale = match noise.color {
            NoiseColor::White => rms,
            NoiseColor::Pink => rms / PinkFilter::rms_gain(),
        };
        Ok(NoiseSource {
            color: noise.color,
            scale,
            pink: PinkFilter::default(),
            rng: Rng(seed),
        })
    }

    fn next(&mut self) -> f32 {
        let white = self.rng.gaussian();
        let unit = match self.color {
            NoiseColor::White => white,
            NoiseColor::Pink => self.pink.next(white),
        };
        unit * self.scale
    }
}

/// The room: feed it what the loudspeaker plays and what the near-end talker says, block by
/// block in step; it returns what the microphone hears.
#[derive(Debug, Clone)]
pub struct SimulatedRoom {
    config: SimulatedRoomConfig,
    /// Delay of the direct tap, in samples.
    delay: usize,
    /// The taps from the direct one on, time-reversed (so that one dot product with the
    /// render history gives one echo sample).
    taps_reversed: Vec<f32>,
    /// The last `delay + taps - 1` render samples (zeros at the start), then the current block.
    history: Vec<f32>,
    noise: Option<NoiseSource>,
    simd: SimdBackend,
}

impl SimulatedRoom {
    pub fn new(config: SimulatedRoomConfig) -> Result<Self, RoomError> {
        let EchoPath {
            delay_ms,
            tail_ms,
            gain_db,
        } = config.echo;
        let finite = delay_ms.is_finite() && tail_ms.is_finite() && gain_db.is_finite();
        if !finite || delay_ms < 0.0 || tail_ms < 0.0 || delay_ms + tail_ms > MAX_ECHO_PATH_MS {
            return Err(RoomError::InvalidEchoPath(format!(
                "delay {delay_ms} ms and tail {tail_ms} ms must be finite, not negative and \
                 {MAX_ECHO_PATH_MS} ms at most together; gain {gain_db} dB must be finite"
            )));
        }
        let delay = (delay_ms * PER_MS).round() as usize;
        let tail = (tail_ms * PER_MS).round() as usize;
        let taps = Self::echo_taps(tail, gain_db, &mut Rng(config.seed ^ 0xEC40_0000));
        let noise = config
            .noise
            .map(|n| NoiseSource::new(n, config.seed ^ 0x0015_E000))
            .transpose()?;
        let history_len = delay + taps.len() - 1;
        Ok(SimulatedRoom {
            config,
            delay,
            taps_reversed: taps.into_iter().rev().collect(),
            history: vec![0.0; history_len],
            noise,
            simd: sonora_simd::detect_backend(),
        })
    }

    /// A direct tap, then `tail` samples of Gaussian noise whose amplitude envelope falls by
    /// 60 dB over the tail, all scaled to an energy gain of `gain_db`.
    fn echo_taps(tail: usize, gain_db: f32, rng: &mut Rng) -> Vec<f32> {
        let mut taps = Vec::with_capacity(tail + 1);
        taps.push(1.0f32);
        if tail > 0 {
            // Amplitude e^(-n/tau) reaches -60 dB (1/1000) at n = tail.
            let tau = tail as f32 / 1000f32.ln();
            let mut diffuse: Vec<f32> = (1..=tail)
                .map(|n| (-(n as f32) / tau).exp() * rng.gaussian())
                .collect();
            let energy: f32 = diffuse.iter().map(|t| t * t).sum();
            if energy > 0.0 {
                let scale = (DIFFUSE_TO_DIRECT / energy).sqrt();
                diffuse.iter_mut().for_each(|t| *t *= scale);
            }
            taps.extend(diffuse);
        }
        let energy: f32 = taps.iter().map(|t| t * t).sum();
        let scale = (10f32.powf(gain_db / 10.0) / energy).sqrt();
        taps.iter_mut().for_each(|t| *t *= scale);
        taps
    }

    pub fn config(&self) -> &SimulatedRoomConfig {
        &self.config
    }

    /// Delay of the first arrival, in samples at 48 kHz.
    pub fn delay_samples(&self) -> usize {
        self.delay
    }

    /// The echo path as an impulse response: `delay_samples()` zeros, then the taps.
    pub fn impulse_response(&self) -> Vec<f32> {
        let mut h = vec![0.0; self.delay];
        h.extend(self.taps_reversed.iter().rev());
        h
    }

    /// Plays `render` and hears `near_end` during the same samples; writes the microphone
    /// signal (near-end + echo + noise) into `mic`. All three have the same length.
    pub fn process(
        &mut self,
        render: &[f32],
        near_end: &[f32],
        mic: &mut [f32],
    ) -> Result<(), RoomError> {
        self.run(render, near_end, mic, None)
    }

    /// As [`process`](Self::process), and also writes the echo alone into `echo` (for
    /// measuring an echo canceller: echo return loss enhancement needs the echo's energy).
    pub fn process_with_echo(
        &mut self,
        render: &[f32],
        near_end: &[f32],
        mic: &mut [f32],
        echo: &mut [f32],
    ) -> Result<(), RoomError> {
        if echo.len() != mic.len() {
            return Err(RoomError::LengthMismatch {
                render: render.len(),
                near_end: near_end.len(),
                mic: echo.len(),
            });
        }
        self.run(render, near_end, mic, Some(echo))
    }

    fn run(
        &mut self,
        render: &[f32],
        near_end: &[f32],
        mic: &mut [f32],
        mut echo_out: Option<&mut [f32]>,
    ) -> Result<(), RoomError> {
        let n = render.len();
        if near_end.len() != n || mic.len() != n {
            return Err(RoomError::LengthMismatch {
                render: n,
                near_end: near_end.len(),
                mic: mic.len(),
            });
        }
        let taps = self.taps_reversed.len();
        // history[..kept] holds the past; sample i of this block sits at kept + i, and its echo
        // reads the taps' span ending `delay` samples earlier: history[i .. i + taps].
        let kept = self.history.len();
        self.history.extend_from_slice(render);
        for i in 0..n {
            let echo = self
                .simd
                .dot_product(&self.history[i..i + taps], &self.taps_reversed);
            let noise = self.noise.as_mut().map_or(0.0, NoiseSource::next);
            mic[i] = near_end[i] + echo + noise;
            if let Some(out) = echo_out.as_deref_mut() {
                out[i] = echo;
            }
        }
        debug_assert_eq!(kept, self.delay + taps - 1);
        self.history.drain(..n);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn room(delay_ms: f32, tail_ms: f32, gain_db: f32, noise: Option<RoomNoise>) -> SimulatedRoom {
        match SimulatedRoom::new(SimulatedRoomConfig {
            echo: EchoPath {
                delay_ms,
                tail_ms,
                gain_db,
            },
            noise,
            seed: 7,
        }) {
            Ok(r) => r,
            Err(e) => panic!("room: {e}"),
        }
    }

    fn energy(x: &[f32]) -> f64 {
        x.iter().map(|&s| f64::from(s) * f64::from(s)).sum()
    }

    /// Runs `render` through the room in 10 ms blocks with a silent near end; returns the mic.
    fn hear(room: &mut SimulatedRoom, render: &[f32]) -> Vec<f32> {
        let mut mic = vec![0.0; render.len()];
        for (r, m) in render.chunks(480).zip(mic.chunks_mut(480)) {
            let silence = vec![0.0; r.len()];
            room.process(r, &silence, m)
                .unwrap_or_else(|e| panic!("{e}"));
        }
        mic
    }

    #[test]
    fn echo_of_an_impulse_arrives_exactly_after_the_delay() {
        for delay_ms in [0.0f32, 10.0, 60.0, 80.0, 123.0] {
            let mut r = room(delay_ms, 200.0, -6.0, None);
            // The impulse lands mid-block, so the delay crosses block boundaries.
            let mut render = vec![0.0f32; 48_000];
            render[1_000] = 1.0;
            let mic = hear(&mut r, &render);
            let first = mic.iter().position(|s| *s != 0.0);
            let expected = 1_000 + (delay_ms * 48.0).round() as usize;
            assert_eq!(first, Some(expected), "delay {delay_ms} ms");
            assert_eq!(r.delay_samples(), expected - 1_000);
        }
    }

    #[test]
    fn echo_tail_decays_exponentially_and_ends_with_the_tail_length() {
        let r = room(60.0, 200.0, -6.0, None);
        let h = r.impulse_response();
        let start = 60 * 48;
        assert_eq!(h.len(), start + 200 * 48 + 1, "no taps beyond delay + tail");
        // Energy in successive 20 ms windows of the tail (after the direct tap) falls each time.
        let windows: Vec<f64> = h[start + 1..]
            .chunks(20 * 48)
            .map(|w| energy(w) / w.len() as f64)
            .collect();
        assert_eq!(windows.len(), 10);
        for pair in windows.windows(2) {
            assert!(pair[1] < pair[0], "tail window energies {windows:?}");
        }
        // 60 dB over the tail in amplitude: the last window is ~54 dB below the first.
        let drop_db = 10.0 * (windows[0] / windows[9]).log10();
        assert!(
            (45.0..65.0).contains(&drop_db),
            "tail falls {drop_db:.1} dB"
        );
    }

    #[test]
    fn echo_path_energy_gain_is_the_configured_gain() {
        for gain_db in [-6.0f32, -20.0, 0.0] {
            let r = room(80.0, 250.0, gain_db, None);
            let ir_gain_db = 10.0 * energy(&r.impulse_response()).log10();
            assert!(
                (ir_gain_db - f64::from(gain_db)).abs() < 0.01,
                "impulse response energy {ir_gain_db:.3} dB for {gain_db} dB"
            );
        }
        // A white far end comes back 6 dB below itself.
        let mut r = room(80.0, 250.0, -6.0, None);
        let mut noise = NoiseSource::new(
            RoomNoise {
                color: NoiseColor::White,
                level_dbfs: -20.0,
            },
            3,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let render: Vec<f32> = (0..96_000).map(|_| noise.next()).collect();
        let mic = hear(&mut r, &render);
        // Skip the first 330 ms while the echo path fills.
        let settled = 16_000;
        let measured = 10.0 * (energy(&mic[settled..]) / energy(&render[settled..])).log10();
        assert!((measured + 6.0).abs() < 0.5, "echo at {measured:.2} dB");
    }

    #[test]
    fn noise_has_the_requested_level_and_colour() {
        for color in [NoiseColor::White, NoiseColor::Pink] {
            let noise = RoomNoise {
                color,
                level_dbfs: -45.0,
            };
            let mut r = room(10.0, 0.0, -200.0, Some(noise));
            let mic = hear(&mut r, &vec![0.0; 480_000]);
            let level = 10.0 * (energy(&mic) / mic.len() as f64).log10();
            assert!(
                (level + 45.0).abs() < 0.5,
                "{color:?} noise at {level:.2} dBFS"
            );
            // Pink noise keeps most of its energy low: its first difference (a high-pass) is
            // far weaker than the signal; white noise's first difference has twice its energy.
            let diff: Vec<f32> = mic.windows(2).map(|w| w[1] - w[0]).collect();
            let ratio = energy(&diff) / energy(&mic);
            match color {
                NoiseColor::White => assert!((ratio - 2.0).abs() < 0.1, "white {ratio:.3}"),
                NoiseColor::Pink => assert!(ratio < 1.0, "pink {ratio:.3}"),
            }
        }
    }

    #[test]
    fn the_same_seed_gives_the_same_room_and_another_seed_another() {
        let config = |seed| SimulatedRoomConfig {
            echo: EchoPath::default(),
            noise: Some(RoomNoise {
                color: NoiseColor::Pink,
                level_dbfs: -50.0,
            }),
            seed,
        };
        let run = |seed| {
            let mut r = SimulatedRoom::new(config(seed)).unwrap_or_else(|e| panic!("{e}"));
            let render: Vec<f32> = (0..9_600)
                .map(|n| ((n * 7 % 101) as f32 - 50.0) / 100.0)
                .collect();
            hear(&mut r, &render)
        };
        assert_eq!(run(1), run(1));
        assert_ne!(run(1), run(2));
    }

    #[test]
    fn mic_is_near_end_plus_echo_plus_noise() {
        let mut r = room(5.0, 20.0, -6.0, None);
        let render: Vec<f32> = (0..480).map(|n| (n as f32 * 0.05).sin() * 0.3).collect();
        let near: Vec<f32> = (0..480).map(|n| (n as f32 * 0.11).cos() * 0.2).collect();
        let (mut mic, mut echo) = (vec![0.0; 480], vec![0.0; 480]);
        r.process_with_echo(&render, &near, &mut mic, &mut echo)
            .unwrap_or_else(|e| panic!("{e}"));
        for i in 0..480 {
            assert!((mic[i] - (near[i] + echo[i])).abs() < 1e-6);
        }
        assert!(echo[..240].iter().all(|s| *s == 0.0), "nothing before 5 ms");
        assert!(echo[240..].iter().any(|s| *s != 0.0));
    }

    #[test]
    fn bad_configurations_and_blocks_are_errors() {
        let bad = |echo| {
            SimulatedRoom::new(SimulatedRoomConfig {
                echo,
                ..Default::default()
            })
            .is_err()
        };
        assert!(bad(EchoPath {
            delay_ms: -1.0,
            ..EchoPath::default()
        }));
        assert!(bad(EchoPath {
            tail_ms: f32::NAN,
            ..EchoPath::default()
        }));
        assert!(bad(EchoPath {
            delay_ms: 1_500.0,
            tail_ms: 1_000.0,
            gain_db: 0.0
        }));
        let loud = SimulatedRoom::new(SimulatedRoomConfig {
            noise: Some(RoomNoise {
                color: NoiseColor::White,
                level_dbfs: 3.0,
            }),
            ..Default::default()
        });
        assert!(matches!(loud, Err(RoomError::InvalidNoiseLevel(_))));
        let mut r = room(10.0, 10.0, -6.0, None);
        let mut mic = vec![0.0; 480];
        assert!(matches!(
            r.process(&[0.0; 480], &[0.0; 479], &mut mic),
            Err(RoomError::LengthMismatch { .. })
        ));
    }
}
