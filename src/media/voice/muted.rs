//! "You are muted": notices someone talking into a muted microphone.
//!
//! While the microphone is muted nothing is sent, so the voice processing does not run (it
//! costs about 2 % of a core). This detector is what runs instead, for the hint: a frame
//! counts as the user talking when it is loud enough, louder than any echo of what the
//! speakers play could be, and AGC2's RNN voice activity detector calls it speech. Only a
//! frame that passes the first two tests reaches the detector, so a quiet muted room costs
//! next to nothing.
//!
//! Echo is the trap: with the far end talking, the microphone hears the speakers. Without an
//! echo canceller running, a frame is taken as the user's own voice only when it is at least
//! [`ECHO_MARGIN_DB`] above the played level less the echo return loss (the loss from the
//! speakers to the microphone, as the canceller last measured it; 0 dB when unknown, the
//! worst case). A user who talks over a loud far end is not hinted at; a hint must not fire on
//! somebody else's voice.

use sonora_agc2::vad_wrapper::VoiceActivityDetectorWrapper;

use super::processing::{power_to_dbfs, speech_probability};

/// Frames quieter than this are not talk (dBFS, RMS of the frame).
pub(crate) const MUTED_SPEECH_FLOOR_DBFS: f32 = -50.0;
/// How far a frame must be above the loudest echo the played sound could cause.
pub(crate) const ECHO_MARGIN_DB: f32 = 6.0;
/// Speech probability above which a frame is speech.
const SPEECH_PROBABILITY: f32 = 0.8;
/// The evidence counter: +2 per speech frame, −1 per other frame, at most this.
const EVIDENCE_MAX: u32 = 100;
/// The hint starts at this much evidence (0.2 s of speech frames; with the detector's own
/// ramp-up, about 0.5 s after the talking starts), and ends when the evidence is all gone
/// (0.4–1 s after the talking stops).
const EVIDENCE_ON: u32 = 40;

/// Watches a muted microphone, 10 ms frame by frame.
#[derive(Debug, Default)]
pub(crate) struct MutedSpeechDetector {
    evidence: u32,
    talking: bool,
    /// DC of the microphone signal (one-pole average), removed before measuring the level.
    dc: f32,
    scratch: Vec<f32>,
}

impl MutedSpeechDetector {
    /// Whether the user seems to be talking into the muted microphone.
    pub(crate) fn is_talking(&self) -> bool {
        self.talking
    }

    /// Forgets what was heard (on unmute, or another microphone).
    pub(crate) fn reset(&mut self) {
        self.evidence = 0;
        self.talking = false;
    }

    /// Looks at one muted frame. `played_dbfs` is the level the speakers played over the last
    /// few hundred ms; `echo_loss_db` the echo return loss if known. Returns whether the user
    /// seems to be talking now.
    pub(crate) fn observe(
        &mut self,
        frame: &[f32],
        played_dbfs: f32,
        echo_loss_db: Option<f32>,
        vad: &mut VoiceActivityDetectorWrapper,
    ) -> bool {
        let mut power = 0.0f32;
        for &s in frame {
            self.dc += 0.001 * (s - self.dc);
            let x = s - self.dc;
            power += x * x;
        }
        let level = power_to_dbfs(power / frame.len() as f32);
        let loudest_echo = played_dbfs - echo_loss_db.unwrap_or(0.0).clamp(0.0, 40.0);
        let candidate = level >= MUTED_SPEECH_FLOOR_DBFS && level >= loudest_echo + ECHO_MARGIN_DB;
        let speech =
            candidate && speech_probability(vad, frame, &mut self.scratch) >= SPEECH_PROBABILITY;
        self.evidence = if speech {
            (self.evidence + 2).min(EVIDENCE_MAX)
        } else {
            self.evidence.saturating_sub(1)
        };
        if self.evidence >= EVIDENCE_ON {
            self.talking = true;
        } else if self.evidence == 0 {
            self.talking = false;
        }
        self.talking
    }
}
