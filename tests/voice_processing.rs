//! The voice processing stage on real speech (espeak-ng, generated at test time) through a
//! simulated room: echo cancellation, double talk, noise suppression, gain control, voice
//! activity. Each test prints its measured figures (`cargo test --test voice_processing --
//! --nocapture`).
//!
//! The room: far-end speech played by the loudspeaker comes back into the microphone after
//! 80 ms, with a 250 ms exponentially decaying tail, 6 dB below the far end; a microphone noise
//! floor of −70 dBFS (white). Far end: espeak-ng `en-us` at −20 dBFS active speech level; near
//! end: `en-gb+f3`, another voice and text, at −26 dBFS (as loud as the echo).

#[path = "support/speech.rs"]
mod speech;

use std::sync::OnceLock;

use classroom::media::voice::{
    AGC_TARGET_SPEECH_DBFS, EchoPath, NoiseColor, RoomNoise, SimulatedRoom, SimulatedRoomConfig,
    VoiceProcessingConfig, VoiceProcessingStats, VoiceProcessor,
};
use speech::{
    FAR_END_SENTENCES, FAR_END_VOICE, FRAME, NEAR_END_SENTENCES, NEAR_END_VOICE, RATE,
    active_frames, active_level_dbfs, db_ratio, dbfs, energy, frames_side_by_side, pad_to_frames,
    set_active_level, side_by_side_len, silence, speak, with_gaps,
};

const FAR_END_DBFS: f64 = -20.0;
const NEAR_END_DBFS: f64 = -26.0;
const ECHO: EchoPath = EchoPath {
    delay_ms: 80.0,
    tail_ms: 250.0,
    gain_db: -6.0,
};
const MIC_NOISE: RoomNoise = RoomNoise {
    color: NoiseColor::White,
    level_dbfs: -70.0,
};
/// Time given to the echo canceller to converge before ERLE is measured.
const CONVERGENCE_S: f64 = 2.0;

struct Talkers {
    /// Four sentences, 0.4 s apart, at −20 dBFS.
    far: Vec<f32>,
    /// Four sentences, 0.4 s apart, unscaled (each test sets its level).
    near: Vec<f32>,
    /// The near end's sentences one by one (for tests that space them out).
    near_sentences: Vec<Vec<f32>>,
}

/// espeak-ng runs once per test binary.
fn talkers() -> &'static Talkers {
    static TALKERS: OnceLock<Talkers> = OnceLock::new();
    TALKERS.get_or_init(|| {
        let far: Vec<Vec<f32>> = FAR_END_SENTENCES
            .iter()
            .map(|t| speak(FAR_END_VOICE, t))
            .collect();
        let near_sentences: Vec<Vec<f32>> = NEAR_END_SENTENCES
            .iter()
            .map(|t| speak(NEAR_END_VOICE, t))
            .collect();
        let mut far = with_gaps(&far, 0.4);
        set_active_level(&mut far, FAR_END_DBFS);
        Talkers {
            far,
            near: with_gaps(&near_sentences, 0.4),
            near_sentences,
        }
    })
}

/// One run through the room and the stage, frame by frame, as the two audio threads would.
struct Run {
    /// The echo alone as it reaches the microphone.
    echo: Vec<f32>,
    /// The microphone signal (near end + echo + noise).
    mic: Vec<f32>,
    /// The processed microphone signal.
    out: Vec<f32>,
    /// `is_speaking()` after each frame.
    speaking: Vec<bool>,
    /// Stats after each second.
    stats: Vec<VoiceProcessingStats>,
}

fn run(config: VoiceProcessingConfig, far: &[f32], near: &[f32], noise: Option<RoomNoise>) -> Run {
    let len = side_by_side_len(far, near);
    let mut room = SimulatedRoom::new(SimulatedRoomConfig {
        echo: ECHO,
        noise,
        seed: 42,
    })
    .expect("room");
    let processor = VoiceProcessor::new(config);
    let (mut echo, mut out) = (vec![0.0; len], vec![0.0; len]);
    let mut mic = Vec::with_capacity(len);
    let mut speaking = Vec::with_capacity(len / FRAME);
    let mut stats = Vec::new();
    for (start, render, near_frame) in frames_side_by_side(far, near) {
        let end = start + FRAME;
        // The mixer hands the frame to the stage as it goes to the speaker…
        processor.process_render(&render);
        // …and the microphone hears it (after the echo path's delay) with the near end.
        room.process_with_echo(
            &render,
            &near_frame,
            &mut out[start..end],
            &mut echo[start..end],
        )
        .expect("room block");
        mic.extend_from_slice(&out[start..end]);
        processor
            .process_capture(&mut out[start..end])
            .expect("capture frame");
        speaking.push(processor.is_speaking());
        if end.is_multiple_of(RATE) {
            stats.push(processor.stats());
        }
    }
    Run {
        echo,
        mic,
        out,
        speaking,
        stats,
    }
}

/// Echo return loss enhancement over the run after `from_s`, and its worst 1 s window (among
/// windows where the echo is within 20 dB of its loudest window's level).
fn erle(run: &Run, from_s: f64) -> (f64, f64) {
    let from = (from_s * RATE as f64) as usize;
    let total = db_ratio(energy(&run.echo[from..]), energy(&run.out[from..]));
    let windows: Vec<(f64, f64)> = run.echo[from..]
        .chunks_exact(RATE)
        .zip(run.out[from..].chunks_exact(RATE))
        .map(|(e, o)| (energy(e), energy(o)))
        .collect();
    let loudest = windows.iter().map(|w| w.0).fold(0.0, f64::max);
    let worst = windows
        .iter()
        .filter(|w| w.0 > loudest / 100.0)
        .map(|w| db_ratio(w.0, w.1))
        .fold(f64::INFINITY, f64::min);
    (total, worst)
}

/// Everything but gain control: the echo canceller's output level is not rescaled by AGC2, so
/// ERLE measures echo removal alone (the default, AGC on, is reported beside it).
fn aec_config() -> VoiceProcessingConfig {
    VoiceProcessingConfig {
        gain_control: false,
        ..VoiceProcessingConfig::default()
    }
}

fn far_end_single_talk(config: VoiceProcessingConfig) -> Run {
    run(config, &talkers().far, &[], Some(MIC_NOISE))
}

#[test]
fn echo_canceller_removes_25_db_of_far_end_echo_after_two_seconds() {
    let r = far_end_single_talk(aec_config());
    let (total, worst) = erle(&r, CONVERGENCE_S);
    let defaults = far_end_single_talk(VoiceProcessingConfig::default());
    let (total_defaults, worst_defaults) = erle(&defaults, CONVERGENCE_S);
    let aec_only = far_end_single_talk(VoiceProcessingConfig {
        echo_cancellation: true,
        high_pass_filter: true,
        ..VoiceProcessingConfig::all_off()
    });
    let (total_aec_only, worst_aec_only) = erle(&aec_only, CONVERGENCE_S);
    let per_second: Vec<String> = r
        .echo
        .chunks_exact(RATE)
        .zip(r.out.chunks_exact(RATE))
        .map(|(e, o)| format!("{:.0}", db_ratio(energy(e), energy(o))))
        .collect();
    let last = r.stats.last().cloned().unwrap_or_default();
    println!("  ERLE per second (dB): {}", per_second.join(" "));
    println!(
        "  AEC and HPF only (no noise suppression): {total_aec_only:.1} dB (worst {worst_aec_only:.1} dB)"
    );
    println!(
        "far-end single talk, {:.1} s of speech, echo path {} ms + {} ms tail at {} dB:\n  \
         ERLE after {CONVERGENCE_S} s: {total:.1} dB (worst 1 s window {worst:.1} dB) with AEC, NS, HPF; \
         {total_defaults:.1} dB (worst {worst_defaults:.1} dB) with the defaults (AGC on too)\n  \
         AEC3's own estimates at the end: delay {:?} ms, ERLE {:?} dB, ERL {:?} dB",
        r.out.len() as f64 / RATE as f64,
        ECHO.delay_ms,
        ECHO.tail_ms,
        ECHO.gain_db,
        last.echo_delay_ms,
        last.erle_db.map(|e| (e * 10.0).round() / 10.0),
        last.erl_db.map(|e| (e * 10.0).round() / 10.0),
    );
    assert!(total >= 25.0, "ERLE {total:.1} dB, needs 25 dB");
}

#[test]
fn without_echo_cancellation_the_echo_stays() {
    let r = far_end_single_talk(VoiceProcessingConfig {
        echo_cancellation: false,
        ..aec_config()
    });
    let (total, worst) = erle(&r, CONVERGENCE_S);
    println!(
        "far-end single talk with the echo canceller off: ERLE {total:.1} dB (worst 1 s {worst:.1} dB)"
    );
    assert!(total < 10.0, "ERLE {total:.1} dB without an echo canceller");
    assert_eq!(r.stats.last().and_then(|s| s.echo_delay_ms), None);
}

#[test]
fn echo_delay_estimate_finds_the_rooms_delay() {
    let r = far_end_single_talk(aec_config());
    let delays: Vec<Option<i32>> = r.stats.iter().map(|s| s.echo_delay_ms).collect();
    println!(
        "AEC3 delay estimate per second: {delays:?} (room: {} ms)",
        ECHO.delay_ms
    );
    let last = delays.last().copied().flatten().expect("a delay estimate");
    assert!(
        (last as f32 - ECHO.delay_ms).abs() <= 12.0,
        "estimated {last} ms for a {} ms echo path",
        ECHO.delay_ms
    );
}

#[test]
fn near_end_speech_keeps_its_level_in_double_talk() {
    let t = talkers();
    // The near end starts talking after 3 s of far-end speech (the canceller has converged).
    let mut near = silence(3.0);
    near.extend_from_slice(&t.near);
    set_active_level(&mut near, NEAR_END_DBFS);
    let r = run(aec_config(), &t.far, &near, Some(MIC_NOISE));
    let near_on = active_frames(&near);
    let echo_on = active_frames(&r.echo);
    let (mut out_e, mut near_e, mut frames) = (0.0, 0.0, 0);
    for (k, (n, e)) in near_on.iter().zip(&echo_on).enumerate() {
        if *n && *e {
            let span = k * FRAME..(k + 1) * FRAME;
            out_e += energy(&r.out[span.clone()]);
            near_e += energy(&near[span]);
            frames += 1;
        }
    }
    let change = db_ratio(out_e, near_e);
    println!(
        "double talk ({:.1} s where both talk, near end as loud as the echo): processed output \
         {change:+.1} dB against the near end alone",
        frames as f64 / 100.0
    );
    assert!(frames >= 200, "only {frames} double-talk frames");
    assert!(
        change.abs() <= 6.0,
        "near-end speech changed by {change:+.1} dB in double talk"
    );
}

/// Near-end speech at −26 dBFS with noise at −45 dBFS; 3 s of noise alone first and 1.5 s of
/// noise alone between sentences. Noise suppression on, everything else off.
fn noise_suppression_figures(color: NoiseColor, suppress: bool) -> (f64, f64) {
    let t = talkers();
    let mut near = silence(3.0);
    near.extend(with_gaps(&t.near_sentences, 1.5));
    near.extend(silence(1.5));
    let mut near = pad_to_frames(near);
    set_active_level(&mut near, NEAR_END_DBFS);
    let noise = RoomNoise {
        color,
        level_dbfs: -45.0,
    };
    let config = VoiceProcessingConfig {
        noise_suppression: suppress,
        ..VoiceProcessingConfig::all_off()
    };
    // No far end: the room adds only the noise.
    let r = run(config, &[], &near, Some(noise));
    let on = active_frames(&near);
    // Noise-only frames: after the first 1.5 s (the suppressor learns the noise) and 300 ms
    // away from any speech.
    let quiet: Vec<bool> = (0..on.len())
        .map(|k| {
            k >= 150
                && on[k.saturating_sub(30)..(k + 31).min(on.len())]
                    .iter()
                    .all(|a| !a)
        })
        .collect();
    let sum = |x: &[f32], mask: &[bool]| -> f64 {
        x.chunks(FRAME)
            .zip(mask)
            .filter(|(_, m)| **m)
            .map(|(f, _)| energy(f))
            .sum()
    };
    let noise_reduction = db_ratio(sum(&r.mic, &quiet), sum(&r.out, &quiet));
    let speech_change = db_ratio(sum(&r.out, &on), sum(&near, &on));
    (noise_reduction, speech_change)
}

#[test]
fn noise_suppression_lowers_stationary_noise_15_db_and_keeps_speech_within_3_db() {
    for color in [NoiseColor::White, NoiseColor::Pink] {
        let (reduction, speech) = noise_suppression_figures(color, true);
        let (reduction_off, speech_off) = noise_suppression_figures(color, false);
        println!(
            "{color:?} noise at −45 dBFS under speech at {NEAR_END_DBFS} dBFS: noise lowered by \
             {reduction:.1} dB, speech {speech:+.1} dB (suppression off: {reduction_off:.1} dB, \
             {speech_off:+.1} dB)"
        );
        assert!(
            reduction >= 15.0,
            "{color:?} noise lowered by {reduction:.1} dB only"
        );
        assert!(speech.abs() <= 3.0, "speech changed by {speech:+.1} dB");
        assert!(
            reduction_off.abs() < 1.0,
            "without suppression the noise stays"
        );
    }
}

/// The output level of a quiet talker (at `level_dbfs` active speech level), alone.
fn quiet_talker_level(config: VoiceProcessingConfig, level_dbfs: f64) -> f64 {
    let t = talkers();
    let mut near = t.near.clone();
    near.extend_from_slice(&t.near);
    set_active_level(&mut near, level_dbfs);
    let r = run(config, &[], &near, Some(MIC_NOISE));
    // After 4 s (AGC2 moves its gain by at most 6 dB/s), over the talker's active frames.
    let from = 400;
    let on = active_frames(&near);
    let out: Vec<f32> = r
        .out
        .chunks(FRAME)
        .zip(&on)
        .skip(from)
        .filter(|(_, a)| **a)
        .flat_map(|(f, _)| f.iter().copied())
        .collect();
    dbfs(&out)
}

#[test]
fn gain_control_brings_a_quiet_talker_to_within_6_db_of_its_target() {
    let with = quiet_talker_level(VoiceProcessingConfig::default(), -40.0);
    let quieter = quiet_talker_level(VoiceProcessingConfig::default(), -50.0);
    println!("talker at −50 dBFS: {quieter:.1} dBFS with gain control");
    let without = quiet_talker_level(
        VoiceProcessingConfig {
            gain_control: false,
            ..VoiceProcessingConfig::default()
        },
        -40.0,
    );
    println!(
        "talker at −40 dBFS: {with:.1} dBFS with gain control, {without:.1} dBFS without; \
         target {AGC_TARGET_SPEECH_DBFS} dBFS"
    );
    // −40 dBFS is within reach of AGC2's initial 15 dB gain; −50 dBFS needs it to adapt.
    for level in [with, quieter] {
        assert!(
            (level - f64::from(AGC_TARGET_SPEECH_DBFS)).abs() <= 6.0,
            "speech at {level:.1} dBFS, target {AGC_TARGET_SPEECH_DBFS} dBFS"
        );
    }
    assert!(
        (without - f64::from(AGC_TARGET_SPEECH_DBFS)).abs() > 6.0,
        "without gain control the talker stays quiet ({without:.1} dBFS)"
    );
}

#[test]
fn voice_activity_follows_the_near_end_talker_not_the_echo() {
    let t = talkers();
    let mut near = silence(3.0);
    near.extend_from_slice(&t.near);
    set_active_level(&mut near, NEAR_END_DBFS);
    // Far end alone first, then the near end alone (the far end has finished).
    let far_len = t.far.len();
    let mut near_after = vec![0.0; far_len];
    near_after.extend_from_slice(&near[(3 * RATE)..]);
    let r = run(
        VoiceProcessingConfig::default(),
        &t.far,
        &near_after,
        Some(MIC_NOISE),
    );
    let near_on = active_frames(&near_after);
    let converged = (CONVERGENCE_S * 100.0) as usize;
    let frames_far = converged..far_len / FRAME;
    let during_echo = r.speaking[frames_far.clone()]
        .iter()
        .filter(|s| **s)
        .count() as f64
        / frames_far.len() as f64;
    let near_frames: Vec<usize> = (0..near_on.len()).filter(|&k| near_on[k]).collect();
    let during_near =
        near_frames.iter().filter(|&&k| r.speaking[k]).count() as f64 / near_frames.len() as f64;
    println!(
        "is_speaking: {:.0} % of frames during far-end echo (after {CONVERGENCE_S} s), {:.0} % of \
         the near end's active frames",
        during_echo * 100.0,
        during_near * 100.0
    );
    assert!(
        during_echo < 0.05,
        "speaking during {:.0} % of the echo",
        during_echo * 100.0
    );
    assert!(
        during_near > 0.8,
        "speaking during {:.0} % of speech",
        during_near * 100.0
    );
}

#[test]
fn speech_generation_gives_48_khz_speech_at_the_requested_level() {
    let t = talkers();
    // 4 sentences of ~4-5 s each.
    let seconds = t.far.len() as f64 / RATE as f64;
    assert!(
        (10.0..40.0).contains(&seconds),
        "{seconds:.1} s of far-end speech"
    );
    assert!((active_level_dbfs(&t.far) - FAR_END_DBFS).abs() < 0.1);
}

/// Far-end single talk through separate output and input devices: the speaker's clock runs
/// `ppm` parts per million fast (negative: slow) against the microphone's, and the speaker
/// asks for 1024 samples at a time, one buffer ahead, while the microphone delivers 10 ms
/// frames — as two real devices' callbacks do. Returns the echo, the processed output and the
/// delay estimates, all on the microphone's clock.
fn far_end_through_drifting_devices(far: &[f32], ppm: i32) -> Run {
    const SPEAKER_PERIOD: usize = 1024;
    // A speaker at 48 kHz·(1 + ppm/10⁶) plays `far` faster: on the microphone's clock the
    // played sound is `far` resampled from that rate to 48 kHz.
    let speaker_rate = (RATE as i64 + RATE as i64 * ppm as i64 / 1_000_000) as u32;
    let played = speech::resample(far, speaker_rate, RATE as u32);
    let len = played.len() / FRAME * FRAME;
    let mut room = SimulatedRoom::new(SimulatedRoomConfig {
        echo: ECHO,
        noise: Some(MIC_NOISE),
        seed: 7,
    })
    .expect("room");
    let processor = VoiceProcessor::new(aec_config());
    let (mut echo, mut out) = (vec![0.0; len], vec![0.0; len]);
    let zeros = vec![0.0; FRAME];
    let mut stats = Vec::new();
    let mut next_callback = 0usize;
    for start in (0..len).step_by(FRAME) {
        let end = start + FRAME;
        // Speaker callbacks due by now (mic time `end`): the speaker has played
        // end·speaker_rate/RATE of its samples and keeps one period queued ahead.
        let speaker_position = end as u64 * speaker_rate as u64 / RATE as u64;
        while (next_callback * SPEAKER_PERIOD) as u64 <= speaker_position + SPEAKER_PERIOD as u64 {
            let from = (next_callback * SPEAKER_PERIOD).min(far.len());
            let to = (from + SPEAKER_PERIOD).min(far.len());
            let mut block = far[from..to].to_vec();
            block.resize(SPEAKER_PERIOD, 0.0);
            processor.process_render(&block);
            next_callback += 1;
        }
        room.process_with_echo(
            &played[start..end],
            &zeros,
            &mut out[start..end],
            &mut echo[start..end],
        )
        .expect("room block");
        processor
            .process_capture(&mut out[start..end])
            .expect("capture frame");
        if end.is_multiple_of(RATE) {
            stats.push(processor.stats());
        }
    }
    Run {
        echo,
        mic: Vec::new(),
        out,
        speaking: Vec::new(),
        stats,
    }
}

/// Separate devices drift apart: at ±500 ppm (far more than two ordinary sound devices) the
/// echo moves by 30 ms over the minute. The canceller must follow it: ERLE stays above 25 dB
/// to the end, and its delay estimate moves with the echo.
#[test]
fn echo_canceller_follows_clock_drift_between_separate_devices() {
    let t = talkers();
    let far: Vec<f32> = t.far.iter().chain(&t.far).chain(&t.far).copied().collect();
    let minute = far.len() as f64 / RATE as f64;
    for ppm in [0, 500, -500] {
        let r = far_end_through_drifting_devices(&far, ppm);
        let (total, worst) = erle(&r, CONVERGENCE_S);
        let last_20_s = r.out.len() as f64 / RATE as f64 - 20.0;
        let (late, _) = erle(&r, last_20_s);
        let delays: Vec<i32> = r.stats.iter().filter_map(|s| s.echo_delay_ms).collect();
        let (first, last) = (
            delays.get(2).copied().unwrap_or_default(),
            delays.last().copied().unwrap_or_default(),
        );
        let stats = r.stats.last().cloned().unwrap_or_default();
        println!(
            "speaker clock {ppm:+} ppm, {minute:.0} s: ERLE {total:.1} dB after {CONVERGENCE_S} s \
             (worst 1 s window {worst:.1} dB), {late:.1} dB in the last 20 s; delay estimate \
             {first} → {last} ms; render frames {} for {} capture frames, {} dropped",
            stats.render_frames, stats.capture_frames, stats.render_frames_dropped
        );
        assert!(total >= 25.0, "{ppm:+} ppm: ERLE {total:.1} dB");
        assert!(late >= 25.0, "{ppm:+} ppm: ERLE {late:.1} dB at the end");
        assert_eq!(stats.render_frames_dropped, 0, "{ppm:+} ppm");
    }
}

/// A muted microphone, watched for the "you are muted" hint: `far` is played (and comes back
/// through the room), `near` is the user. Returns whether the hint was on after each frame.
fn muted_hint(far: &[f32], near: &[f32]) -> (VoiceProcessor, Vec<bool>) {
    let mut room = SimulatedRoom::new(SimulatedRoomConfig {
        echo: ECHO,
        noise: Some(MIC_NOISE),
        seed: 3,
    })
    .expect("room");
    let processor = VoiceProcessor::default();
    let mut mic = vec![0.0; FRAME];
    let mut hint = Vec::with_capacity(side_by_side_len(far, near) / FRAME);
    for (_, render, near_frame) in frames_side_by_side(far, near) {
        processor.process_render(&render);
        room.process(&render, &near_frame, &mut mic).expect("room");
        // Muted: the sender discards the reference and only watches the microphone.
        processor.discard_render();
        hint.push(processor.observe_muted(&mic).expect("muted frame"));
    }
    (processor, hint)
}

#[test]
fn talking_into_a_muted_microphone_is_noticed_and_the_far_end_is_not() {
    let t = talkers();
    // The user talks while muted, nothing playing.
    let mut near = silence(1.0);
    near.extend_from_slice(&t.near);
    set_active_level(&mut near, NEAR_END_DBFS);
    let (processor, hint) = muted_hint(&[], &near);
    let first_speech = active_frames(&near)
        .iter()
        .position(|&on| on)
        .expect("speech");
    let first_hint = hint.iter().position(|&on| on).expect("the hint comes on");
    let on_share = hint.iter().filter(|&&on| on).count() as f64
        / active_frames(&near).iter().filter(|&&on| on).count() as f64;
    // The far end talks (loud, through the room) while the user is muted and silent.
    let (_, echo_hint) = muted_hint(&t.far, &[]);
    let echo_on = echo_hint.iter().filter(|&&on| on).count();
    println!(
        "muted: the hint comes on {} ms after the user starts talking and is on for {:.0} % as \
         many frames as there is speech; with only the far end's echo it is on in {echo_on} of {} frames",
        (first_hint - first_speech) * 10,
        on_share * 100.0,
        echo_hint.len()
    );
    assert!(
        first_hint >= first_speech && first_hint - first_speech <= 100,
        "the hint came {} frames after speech began",
        first_hint as i64 - first_speech as i64
    );
    assert!(on_share > 0.7, "the hint was on {:.0} %", on_share * 100.0);
    assert_eq!(echo_on, 0, "the far end's voice set off the hint");
    assert_eq!(
        processor.stats().muted_talking,
        hint.last().copied().unwrap_or(false),
        "the stats show the hint"
    );

    // Unmuting ends the hint at once.
    let mut frame = vec![0.0; FRAME];
    let (processor, hint) = muted_hint(&[], &near[..near.len().min(4 * RATE)]);
    assert!(hint.iter().any(|&on| on));
    processor
        .process_capture(&mut frame)
        .expect("capture after unmuting");
    assert!(!processor.is_muted_talking());
    assert!(!processor.stats().muted_talking);
}
