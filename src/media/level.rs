//! Sound levels in dBFS, one rule for the whole app: ten times the log of the mean power of
//! samples at full scale 1.0, floored at [`SILENCE_DBFS`].

/// What silence reads as: below any real microphone's noise floor.
pub(crate) const SILENCE_DBFS: f64 = -100.0;

/// The level of a mean power (the mean of the squared samples).
pub(crate) fn power_to_dbfs(mean_power: f64) -> f64 {
    if mean_power > 0.0 {
        (10.0 * mean_power.log10()).max(SILENCE_DBFS)
    } else {
        SILENCE_DBFS
    }
}

/// A level as RFC 6464's audio-level header extension says it: −dBov from 0 (loudest) to
/// 127 (silence), dBov being our dBFS (full scale 1.0).
pub(crate) fn rtp_audio_level(dbfs: f64) -> u8 {
    (-dbfs).round().clamp(0.0, 127.0) as u8
}

/// The RMS level of some samples ([`SILENCE_DBFS`] for none).
pub fn level_dbfs(samples: &[f32]) -> f64 {
    let mut meter = LevelMeter::default();
    meter.add(samples);
    meter.take_dbfs().unwrap_or(SILENCE_DBFS)
}

/// Adds up samples' power. Its owner can take the level since the last reading
/// ([`LevelMeter::take_dbfs`]); a meter read by several readers is never taken but marked
/// ([`LevelMeter::mark`]), each reader taking the level since its own last mark.
#[derive(Debug, Clone, Copy, Default)]
pub struct LevelMeter {
    energy: f64,
    samples: u64,
}

/// What a meter had added up at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct LevelMark {
    energy: f64,
    samples: u64,
}

impl LevelMark {
    /// The level of what was added between `earlier` and this mark (`None`: nothing was).
    /// An `earlier` mark of another meter (one that started over) counts as its start.
    pub(crate) fn dbfs_since(self, earlier: LevelMark) -> Option<f64> {
        let earlier = if earlier.samples > self.samples {
            LevelMark::default()
        } else {
            earlier
        };
        let samples = self.samples - earlier.samples;
        (samples > 0)
            .then(|| power_to_dbfs((self.energy - earlier.energy).max(0.0) / samples as f64))
    }
}

impl LevelMeter {
    pub fn add(&mut self, samples: &[f32]) {
        self.energy += samples
            .iter()
            .map(|s| f64::from(*s) * f64::from(*s))
            .sum::<f64>();
        self.samples += samples.len() as u64;
    }

    /// What was added up so far (the meter goes on).
    pub(crate) fn mark(&self) -> LevelMark {
        LevelMark {
            energy: self.energy,
            samples: self.samples,
        }
    }

    /// The level of what was added since the last reading (`None`: nothing was), and starts
    /// over.
    pub(crate) fn take_dbfs(&mut self) -> Option<f64> {
        let taken = std::mem::take(self);
        (taken.samples > 0).then(|| power_to_dbfs(taken.energy / taken.samples as f64))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_scale_is_zero_half_scale_minus_six_and_silence_the_floor() {
        assert!(level_dbfs(&[1.0, -1.0]).abs() < 1e-9);
        assert!((level_dbfs(&[0.5, -0.5]) - -6.0206).abs() < 1e-3);
        assert_eq!(level_dbfs(&[0.0; 10]), SILENCE_DBFS);
        assert_eq!(level_dbfs(&[]), SILENCE_DBFS);
        assert_eq!(power_to_dbfs(1e-30), SILENCE_DBFS);
    }

    #[test]
    fn the_rtp_audio_level_is_minus_dbov_from_0_to_127() {
        assert_eq!(rtp_audio_level(0.0), 0);
        assert_eq!(rtp_audio_level(3.0), 0, "above full scale is the loudest");
        assert_eq!(rtp_audio_level(-20.4), 20);
        assert_eq!(rtp_audio_level(SILENCE_DBFS), 100);
        assert_eq!(rtp_audio_level(-300.0), 127);
        // A sine at a tenth of full scale: -23 dBFS RMS.
        let tone: Vec<f32> = (0..960)
            .map(|i| 0.1 * (i as f32 * 2.0 * std::f32::consts::PI / 48.0).sin())
            .collect();
        assert_eq!(rtp_audio_level(level_dbfs(&tone)), 23);
    }

    #[test]
    fn a_meter_reads_what_came_since_its_last_reading() {
        let mut meter = LevelMeter::default();
        assert_eq!(meter.take_dbfs(), None);
        meter.add(&[1.0; 4]);
        meter.add(&[0.0; 4]);
        assert!((meter.take_dbfs().expect("a level") - -3.0103).abs() < 1e-3);
        assert_eq!(meter.take_dbfs(), None, "started over");
    }

    #[test]
    fn marks_give_each_reader_the_level_since_its_own_last_mark() {
        let mut meter = LevelMeter::default();
        let start = meter.mark();
        meter.add(&[1.0; 4]);
        let first = meter.mark();
        meter.add(&[0.0; 4]);
        let second = meter.mark();
        assert!((second.dbfs_since(start).expect("a level") - -3.0103).abs() < 1e-3);
        assert!(first.dbfs_since(start).expect("a level").abs() < 1e-9);
        assert_eq!(second.dbfs_since(first), Some(SILENCE_DBFS));
        assert_eq!(second.dbfs_since(second), None, "nothing since");
        assert!(
            start.dbfs_since(second).is_none(),
            "a mark of a meter that started over counts from its start"
        );
    }
}
