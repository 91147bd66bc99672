//! Which speakers a subscriber hears in a large class: the loudest few (sans-IO).
//!
//! Each audio packet says how loud its sender is (the RFC 6464 audio-level header extension:
//! 0 is the loudest, 127 silence, in -dBov). A track's loudness is that level as an amplitude,
//! smoothed over about [`SMOOTHING`] and fading while its packets stop. In a class with more
//! speakers than [`AudioSelection::above`], a subscriber receives the [`AudioSelection::loudest`]
//! of them; one already heard stays until another is clearly louder ([`STAY`]), so that two
//! voices at the same level do not take turns packet by packet. A track whose packets carry no
//! level is always forwarded: nobody is silenced because their client cannot say how loud it is.

use std::time::{Duration, Instant};

/// How the SFU thins the audio of a large class (`--sfu-audio-above`, `--sfu-loudest`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AudioSelection {
    /// Up to this many speakers a subscriber hears everyone.
    pub above: usize,
    /// Above it, the loudest this many.
    pub loudest: usize,
}

impl Default for AudioSelection {
    fn default() -> Self {
        AudioSelection {
            above: 10,
            loudest: 3,
        }
    }
}

/// The time constant of a track's loudness.
pub(crate) const SMOOTHING: Duration = Duration::from_millis(300);
/// A speaker already heard is replaced only by one this many times louder (in amplitude).
pub(crate) const STAY: f64 = 1.5;
/// How often the choice is reviewed.
pub(crate) const REVIEW: Duration = Duration::from_millis(200);

/// One audio track's smoothed loudness.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Loudness {
    amplitude: f64,
    at: Option<Instant>,
    /// Its packets carry a level (the publisher sends the extension).
    pub(crate) measured: bool,
}

impl Loudness {
    /// One packet's level (0 loudest, 127 silence), or none when it carries no level.
    pub(crate) fn observe(&mut self, now: Instant, level: Option<u8>) {
        let Some(level) = level else {
            return;
        };
        self.measured = true;
        let x = amplitude(level);
        let dt = self
            .at
            .map_or(SMOOTHING, |at| now.saturating_duration_since(at));
        let a = 1.0 - (-dt.as_secs_f64() / SMOOTHING.as_secs_f64()).exp();
        self.amplitude += a * (x - self.amplitude);
        self.at = Some(now);
    }

    /// The loudness now: the last one, faded for the time since.
    pub(crate) fn value(&self, now: Instant) -> f64 {
        match self.at {
            None => 0.0,
            Some(at) => {
                let dt = now.saturating_duration_since(at).as_secs_f64();
                self.amplitude * (-dt / SMOOTHING.as_secs_f64()).exp()
            }
        }
    }
}

/// The amplitude (0–1) of an RFC 6464 level.
fn amplitude(level: u8) -> f64 {
    10f64.powf(-f64::from(level.min(127)) / 20.0)
}

/// Which of one subscriber's speakers it hears: `candidates` are (loudness, measured, heard
/// now); the answer says, for each, whether it is heard from now on.
pub(crate) fn choose(selection: AudioSelection, candidates: &[(f64, bool, bool)]) -> Vec<bool> {
    if candidates.len() <= selection.above {
        return vec![true; candidates.len()];
    }
    let mut ranked: Vec<(usize, f64)> = candidates
        .iter()
        .enumerate()
        .filter(|(_, (_, measured, _))| *measured)
        .map(|(i, (loudness, _, heard))| (i, if *heard { loudness * STAY } else { *loudness }))
        .collect();
    // Loudest first; equal ones in a stable order (the order they came in).
    ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    let mut heard: Vec<bool> = candidates
        .iter()
        .map(|(_, measured, _)| !measured)
        .collect();
    for (i, _) in ranked.into_iter().take(selection.loudest) {
        heard[i] = true;
    }
    heard
}

#[cfg(test)]
mod tests {
    use super::*;

    const SMALL: AudioSelection = AudioSelection {
        above: 3,
        loudest: 2,
    };

    #[test]
    fn loudness_follows_the_level_and_fades_when_packets_stop() {
        let t0 = Instant::now();
        let mut l = Loudness::default();
        assert_eq!(l.value(t0), 0.0);
        // A voice at -20 dBov for a second: near 0.1 in amplitude.
        for i in 0..50 {
            l.observe(t0 + Duration::from_millis(20 * i), Some(20));
        }
        let t1 = t0 + Duration::from_millis(980);
        assert!((l.value(t1) - 0.1).abs() < 0.01, "{}", l.value(t1));
        // Silence (-127) brings it down within a few time constants…
        for i in 1..=50 {
            l.observe(t1 + Duration::from_millis(20 * i), Some(127));
        }
        assert!(l.value(t1 + Duration::from_secs(1)) < 0.005);
        // …and so does no packet at all.
        let mut m = Loudness::default();
        m.observe(t0, Some(0));
        m.observe(t0 + Duration::from_secs(1), Some(0));
        assert!(m.value(t0 + Duration::from_secs(3)) < 0.01);
        assert!(m.measured);
        let mut n = Loudness::default();
        n.observe(t0, None);
        assert!(!n.measured, "a packet without a level says nothing");
    }

    #[test]
    fn a_small_class_hears_everyone_and_a_large_one_the_loudest_few() {
        let quiet = (0.001, true, false);
        let loud = (0.2, true, false);
        assert_eq!(choose(SMALL, &[quiet, quiet, quiet]), [true; 3]);
        assert_eq!(
            choose(SMALL, &[quiet, loud, quiet, (0.1, true, false)]),
            [false, true, false, true]
        );
        // Unmeasured tracks are always heard, and do not take a loudest place.
        assert_eq!(
            choose(
                SMALL,
                &[(0.0, false, false), quiet, loud, (0.1, true, false)]
            ),
            [true, false, true, true]
        );
        // Silence everywhere: still `loudest` tracks, in a stable order.
        assert_eq!(
            choose(SMALL, &[(0.0, true, false); 4]),
            [true, true, false, false]
        );
    }

    #[test]
    fn a_speaker_heard_stays_until_another_is_clearly_louder() {
        // Heard at 0.1; a newcomer at 0.12 is not enough, at 0.2 it is.
        let heard = (0.1, true, true);
        let other = (0.1, true, true);
        assert_eq!(
            choose(
                SMALL,
                &[heard, other, (0.12, true, false), (0.0, true, false)]
            ),
            [true, true, false, false]
        );
        assert_eq!(
            choose(
                SMALL,
                &[heard, other, (0.2, true, false), (0.0, true, false)]
            ),
            [true, false, true, false],
            "the first of two equals stays"
        );
    }
}
