//! The call's audio: what is played (each remote participant's decoded audio through a small
//! jitter buffer, mixed) and what is sent (the microphone, through the voice processing
//! stage, to Opus), driven by one 10 ms audio clock like a sound card's.
//!
//! ```text
//! remote Opus → decode → PlayoutMixer ─ mix ─┬─▶ VoiceProcessor::process_render (AEC reference)
//!                                           └─▶ speaker | SimulatedRoom (echo path)
//! near end (tone | silence) + room echo ─▶ VoiceProcessor::process_capture ─▶ Opus → peers
//! ```
//!
//! The headless participant has no sound card; its "speaker" is the simulated room (or
//! nothing) and its "microphone" is the synthetic near end plus what the room sends back.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use parking_lot::Mutex;

/// 10 ms at 48 kHz.
pub const FRAME: usize = 480;
/// Buffered audio needed before a remote starts (again) to play.
const PREBUFFER: usize = 4 * FRAME;
/// Buffered audio beyond which the oldest is dropped (bounds the playout delay).
const MAX_BUFFERED: usize = 12 * FRAME;

#[derive(Debug)]
struct JitterBuffer {
    samples: VecDeque<f32>,
    /// This participant's playback volume (1.0: as received).
    volume: f32,
    playing: bool,
    underruns: u64,
    dropped_samples: u64,
}

impl Default for JitterBuffer {
    fn default() -> Self {
        JitterBuffer {
            samples: VecDeque::new(),
            volume: 1.0,
            playing: false,
            underruns: 0,
            dropped_samples: 0,
        }
    }
}

impl JitterBuffer {
    fn push(&mut self, pcm: &[f32]) {
        self.samples.extend(pcm.iter().copied());
        let excess = self.samples.len().saturating_sub(MAX_BUFFERED);
        if excess > 0 {
            self.samples.drain(..excess);
            self.dropped_samples += excess as u64;
        }
    }

    /// Adds this buffer's next frame into `mix` (silence while it fills up).
    fn mix_into(&mut self, mix: &mut [f32]) {
        if !self.playing {
            if self.samples.len() < PREBUFFER {
                return;
            }
            self.playing = true;
        }
        if self.samples.len() < mix.len() {
            self.playing = false;
            self.underruns += 1;
            return;
        }
        let length = mix.len();
        let volume = self.volume;
        for (out, sample) in mix.iter_mut().zip(self.samples.drain(..length)) {
            *out += sample * volume;
        }
    }
}

/// Per-remote jitter buffers and their mix.
#[derive(Debug, Clone, Default)]
pub(crate) struct PlayoutMixer {
    remotes: Arc<Mutex<BTreeMap<String, JitterBuffer>>>,
}

impl PlayoutMixer {
    pub fn push(&self, user_id: &str, pcm: &[f32]) {
        self.remotes
            .lock()
            .entry(user_id.to_owned())
            .or_default()
            .push(pcm);
    }

    /// One participant's playback volume: 0 mutes them for us, 1 is as received, up to 4.
    pub(crate) fn set_volume(&self, user_id: &str, volume: f32) {
        self.remotes
            .lock()
            .entry(user_id.to_owned())
            .or_default()
            .volume = volume.clamp(0.0, 4.0);
    }

    pub(crate) fn forget(&self, user_id: &str) {
        self.remotes.lock().remove(user_id);
    }

    /// The next 10 ms of everyone mixed, clipped to full scale.
    pub(crate) fn pull(&self) -> Vec<f32> {
        let mut mix = vec![0.0f32; FRAME];
        for buffer in self.remotes.lock().values_mut() {
            buffer.mix_into(&mut mix);
        }
        for sample in &mut mix {
            *sample = sample.clamp(-1.0, 1.0);
        }
        mix
    }

    /// Underruns and dropped samples over all remotes.
    pub fn counters(&self) -> (u64, u64) {
        self.remotes.lock().values().fold((0, 0), |(u, d), buffer| {
            (u + buffer.underruns, d + buffer.dropped_samples)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_remote_plays_after_the_prebuffer_and_mixes_with_the_others() {
        let mixer = PlayoutMixer::default();
        mixer.push("a", &vec![0.25; FRAME * 2]);
        assert!(mixer.pull().iter().all(|s| *s == 0.0), "still prebuffering");
        mixer.push("a", &vec![0.25; FRAME * 3]);
        mixer.push("b", &vec![0.5; FRAME * 4]);
        let mix = mixer.pull();
        assert!(mix.iter().all(|s| (*s - 0.75).abs() < 1e-6));
    }

    #[test]
    fn each_participant_has_a_volume_of_its_own() {
        let mixer = PlayoutMixer::default();
        mixer.set_volume("a", 0.5);
        mixer.set_volume("b", 0.0);
        mixer.push("a", &vec![0.4; PREBUFFER]);
        mixer.push("b", &vec![0.4; PREBUFFER]);
        assert!(mixer.pull().iter().all(|s| (*s - 0.2).abs() < 1e-6));
    }

    #[test]
    fn an_underrun_is_counted_and_the_buffer_fills_again_before_playing() {
        let mixer = PlayoutMixer::default();
        mixer.push("a", &vec![0.1; PREBUFFER]);
        for _ in 0..4 {
            mixer.pull();
        }
        assert!(mixer.pull().iter().all(|s| *s == 0.0));
        assert_eq!(mixer.counters().0, 1);
    }

    #[test]
    fn the_playout_delay_is_bounded() {
        let mixer = PlayoutMixer::default();
        mixer.push("a", &vec![0.1; MAX_BUFFERED * 3]);
        assert_eq!(mixer.counters().1, (MAX_BUFFERED * 2) as u64);
    }
}
