//! Real speech for the voice processing tests and bench: `espeak-ng` run at test time (Debian
//! package `espeak-ng`), its 22,050 Hz 16-bit WAV resampled to 48 kHz with a windowed-sinc
//! filter, plus the level measurements the tests share.
//!
//! Shared by `tests/voice_processing.rs` and `benches/voice.rs` (`#[path]` module).

#![allow(dead_code)] // each user takes what it needs

use std::process::Command;

/// The app's rate and frame (see `classroom::media::audio_device`).
pub const RATE: usize = 48_000;
pub const FRAME: usize = 480;

/// Speaks `text` with espeak-ng's `voice` at 150 words per minute; 48 kHz mono in −1..1.
/// Panics with a clear message when espeak-ng is missing: these tests need real speech.
pub fn speak(voice: &str, text: &str) -> Vec<f32> {
    let output = Command::new("espeak-ng")
        .args(["-v", voice, "-s", "150", "--stdout", text])
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "espeak-ng could not be run ({e}); the voice processing tests generate real \
                 speech with it: install the Debian package `espeak-ng`"
            )
        });
    assert!(
        output.status.success(),
        "espeak-ng -v {voice} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let (rate, samples) = parse_wav(&output.stdout);
    resample(&samples, rate, RATE as u32)
}

/// Reads a mono 16-bit PCM WAV (espeak-ng writes a placeholder length when streaming, so the
/// data chunk runs to the end of the file).
pub fn parse_wav(bytes: &[u8]) -> (u32, Vec<f32>) {
    assert!(
        bytes.len() >= 12 && &bytes[..4] == b"RIFF" && &bytes[8..12] == b"WAVE",
        "not a WAV file"
    );
    let u16_at = |i: usize| u16::from_le_bytes([bytes[i], bytes[i + 1]]);
    let u32_at =
        |i: usize| u32::from_le_bytes([bytes[i], bytes[i + 1], bytes[i + 2], bytes[i + 3]]);
    let mut at = 12;
    let mut rate = None;
    while at + 8 <= bytes.len() {
        let id = &bytes[at..at + 4];
        let size = u32_at(at + 4) as usize;
        let body = at + 8;
        if id == b"fmt " {
            let (format, channels, bits) = (u16_at(body), u16_at(body + 2), u16_at(body + 14));
            assert!(
                format == 1 && channels == 1 && bits == 16,
                "expected mono 16-bit PCM, got format {format}, {channels} channels, {bits} bits"
            );
            rate = Some(u32_at(body + 4));
        } else if id == b"data" {
            let end = body.saturating_add(size).min(bytes.len());
            let samples = bytes[body..end]
                .chunks_exact(2)
                .map(|b| i16::from_le_bytes([b[0], b[1]]) as f32 / 32_768.0)
                .collect();
            return (rate.expect("fmt chunk before data"), samples);
        }
        at = body + size + (size & 1);
    }
    panic!("WAV without a data chunk");
}

fn gcd(a: u32, b: u32) -> u32 {
    if b == 0 { a } else { gcd(b, a % b) }
}

/// Windowed-sinc (Blackman, 32 zero crossings each side) rational resampler.
pub fn resample(input: &[f32], from: u32, to: u32) -> Vec<f32> {
    if from == to {
        return input.to_vec();
    }
    const HALF: usize = 32;
    let g = gcd(from, to);
    let (up, down) = ((to / g) as usize, (from / g) as usize);
    // Cut-off below the lower Nyquist frequency, in cycles per input sample × 2.
    let cutoff = 0.95 * (to as f64 / from as f64).min(1.0);
    let half = (HALF as f64 / cutoff).ceil() as usize;
    // One kernel per output phase: output m sits at input position m·down/up.
    let kernel = |x: f64| {
        let w = x / half as f64;
        if w.abs() >= 1.0 {
            return 0.0;
        }
        let sinc = if x == 0.0 {
            1.0
        } else {
            (std::f64::consts::PI * cutoff * x).sin() / (std::f64::consts::PI * cutoff * x)
        };
        let window = 0.42
            + 0.5 * (std::f64::consts::PI * w).cos()
            + 0.08 * (2.0 * std::f64::consts::PI * w).cos();
        cutoff * sinc * window
    };
    let table: Vec<Vec<f32>> = (0..up)
        .map(|phase| {
            let frac = phase as f64 / up as f64;
            (0..2 * half)
                .map(|j| kernel(frac + half as f64 - 1.0 - j as f64) as f32)
                .collect()
        })
        .collect();
    let out_len = input.len() * up / down;
    (0..out_len)
        .map(|m| {
            let position = m * down;
            let (n0, phase) = (position / up, position % up);
            let taps = &table[phase];
            let mut acc = 0.0f32;
            for (j, t) in taps.iter().enumerate() {
                let n = n0 as isize - half as isize + 1 + j as isize;
                if n >= 0 && (n as usize) < input.len() {
                    acc += input[n as usize] * t;
                }
            }
            acc
        })
        .collect()
}

pub fn energy(x: &[f32]) -> f64 {
    x.iter().map(|&s| f64::from(s) * f64::from(s)).sum()
}

/// RMS level in dBFS (full scale 1.0).
pub fn dbfs(x: &[f32]) -> f64 {
    10.0 * (energy(x) / x.len().max(1) as f64).max(1e-20).log10()
}

pub fn db_ratio(a: f64, b: f64) -> f64 {
    10.0 * (a.max(1e-20) / b.max(1e-20)).log10()
}

/// Per 10 ms frame: whether the talker is active in this clean signal (frame level within
/// 30 dB of its loudest frames and above −70 dBFS).
pub fn active_frames(clean: &[f32]) -> Vec<bool> {
    let levels: Vec<f64> = clean.chunks(FRAME).map(dbfs).collect();
    let mut sorted = levels.clone();
    sorted.sort_by(|a, b| b.total_cmp(a));
    // The 5th percentile from the top, so a click does not set the reference.
    let loud = sorted.get(sorted.len() / 20).copied().unwrap_or(-100.0);
    levels
        .iter()
        .map(|&l| l > loud - 30.0 && l > -70.0)
        .collect()
}

/// RMS level of the active frames only (a simple active speech level).
pub fn active_level_dbfs(clean: &[f32]) -> f64 {
    let active = active_frames(clean);
    let (mut e, mut n) = (0.0, 0usize);
    for (frame, on) in clean.chunks(FRAME).zip(&active) {
        if *on {
            e += energy(frame);
            n += frame.len();
        }
    }
    10.0 * (e / n.max(1) as f64).max(1e-20).log10()
}

/// Scales `x` so that its active speech level is `dbfs`.
pub fn set_active_level(x: &mut [f32], target_dbfs: f64) {
    let gain = 10f64.powf((target_dbfs - active_level_dbfs(x)) / 20.0) as f32;
    x.iter_mut().for_each(|s| *s *= gain);
}

/// Pads to whole frames.
pub fn pad_to_frames(mut x: Vec<f32>) -> Vec<f32> {
    let n = x.len().div_ceil(FRAME) * FRAME;
    x.resize(n, 0.0);
    x
}

/// Samples walked when `far` and `near` go side by side in whole frames (the longer one,
/// rounded up to a frame).
pub fn side_by_side_len(far: &[f32], near: &[f32]) -> usize {
    far.len().max(near.len()).div_ceil(FRAME) * FRAME
}

/// `far` (what the speaker plays) and `near` (the talker) side by side in 10 ms frames, the
/// shorter one continued with silence: (first sample of the frame, far frame, near frame).
pub fn frames_side_by_side<'a>(
    far: &'a [f32],
    near: &'a [f32],
) -> impl Iterator<Item = (usize, [f32; FRAME], [f32; FRAME])> + 'a {
    (0..side_by_side_len(far, near))
        .step_by(FRAME)
        .map(move |start| (start, frame_at(far, start), frame_at(near, start)))
}

/// The frame of `x` starting at `start`, silence past its end.
fn frame_at(x: &[f32], start: usize) -> [f32; FRAME] {
    let mut frame = [0.0; FRAME];
    if let Some(rest) = x.get(start..) {
        let have = rest.len().min(FRAME);
        frame[..have].copy_from_slice(&rest[..have]);
    }
    frame
}

/// `seconds` of silence.
pub fn silence(seconds: f64) -> Vec<f32> {
    vec![0.0; (seconds * RATE as f64) as usize]
}

/// Joins clips with `gap` seconds of silence between them.
pub fn with_gaps(clips: &[Vec<f32>], gap: f64) -> Vec<f32> {
    let mut out = Vec::new();
    for (i, clip) in clips.iter().enumerate() {
        if i > 0 {
            out.extend(silence(gap));
        }
        out.extend_from_slice(clip);
    }
    out
}

/// Two texts for two different talkers.
pub const FAR_END_VOICE: &str = "en-us";
pub const FAR_END_SENTENCES: [&str; 4] = [
    "Good morning everyone, today we continue with the chapter on thermodynamics.",
    "Please open your notebooks and write down the first law, energy is conserved.",
    "Heat added to a system equals the change in internal energy plus the work done.",
    "We will solve three examples together before the short quiz at the end of the class.",
];
pub const NEAR_END_VOICE: &str = "en-gb+f3";
pub const NEAR_END_SENTENCES: [&str; 4] = [
    "Excuse me, could you repeat the last part about the internal energy?",
    "I think my answer to the second example was different from yours.",
    "Should the work done by the gas be counted as positive or negative here?",
    "Thank you, that makes sense now, I will try the next one on my own.",
];
