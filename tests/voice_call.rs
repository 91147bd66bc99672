//! Echo end to end: two headless participants in a call; A sits in a simulated room (what A
//! plays comes back into A's microphone after 80 ms with a 250 ms tail, at −6 dB) and says
//! nothing; B talks (the marker tone). Whatever B receives from A is B's own voice coming
//! back. With A's voice processing on it must be at least 25 dB below what B sent; with it
//! off, the same measurement must find the echo (so the test can fail). B talks with real
//! speech (espeak-ng) and the markers over it: a steady tone alone is periodic, and an echo
//! canceller's delay estimate can lock onto the wrong period of it.

#[path = "support/speech.rs"]
mod speech;
mod support;

use std::sync::Mutex;
use std::time::Duration;

use serde_json::Value;
use support::lab::{Bot, BotOptions, NetNs, Server, ServerKind, TempDir, dump_all, wait_until};

/// Mean of dB figures as energies.
fn mean_db(values: &[f64]) -> f64 {
    let mean = values.iter().map(|db| 10f64.powf(db / 10.0)).sum::<f64>() / values.len() as f64;
    10.0 * mean.log10()
}

struct EchoMeasurement {
    sent_dbfs: f64,
    echo_dbfs: f64,
    markers_from_a: u64,
    /// A's voice processing stats at the end (the echo canceller's delay, ERLE, the reference's
    /// slack and realignments): what explains a failure.
    a_voice: Value,
}

/// A's audio given to the echo canceller before the measurement: 5 s in 20 ms Opus frames. On
/// espeak's monotone voice AEC3 takes 2 to 5 s to suppress fully (its first delay estimate can
/// lock onto a pitch period); `tests/voice_processing.rs` holds it to 25 dB after 2 s on other
/// speech.
const CONVERGENCE_OPUS_FRAMES: u64 = 250;
/// A's audio measured: 6 s.
const MEASURED_OPUS_FRAMES: u64 = 300;

/// The two measurements run one at a time: each has two participants and a simulated room
/// (a 250 ms echo tail convolved at 48 kHz), and both at once overload a 2-core machine.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn measure_echo(a_voice_processing: &str, tag: &str) -> EchoMeasurement {
    let _turn = ONE_AT_A_TIME
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let ns = NetNs::create(tag);
    let data = TempDir::new(tag);
    let _server = Server::start(&ns, ServerKind::Ours, &data.0);
    let a = Bot::start(
        &ns,
        "class-echo",
        "a",
        BotOptions {
            camera: "none",
            screen: "none",
            stats_interval_ms: 500,
            extra: vec![
                "--audio".into(),
                "silence".into(),
                "--room".into(),
                "--voice-processing".into(),
                a_voice_processing.into(),
            ],
        },
    );
    std::thread::sleep(Duration::from_millis(300));
    let talk = data.0.join("b-speech.raw");
    let speech = speech::speak(
        "en-us",
        "Good morning everyone. Today we look at how sound travels through a room, \
         and why a microphone hears the loudspeaker a little later than it played.",
    );
    let bytes: Vec<u8> = speech
        .iter()
        .flat_map(|s| ((s.clamp(-1.0, 1.0) * 0.5 * 32767.0) as i16).to_le_bytes())
        .collect();
    std::fs::write(&talk, bytes).expect("speech file");
    let b = Bot::start(
        &ns,
        "class-echo",
        "b",
        BotOptions {
            camera: "none",
            screen: "none",
            stats_interval_ms: 500,
            extra: vec!["--audio".into(), format!("speech:{}", talk.display())],
        },
    );
    let bots = [a, b];
    wait_until(
        "the call's audio to flow both ways",
        Duration::from_secs(30),
        || {
            bots[1].audio_counter("a", "packets") > 50
                && bots[0].audio_counter("b", "markersHeard") > 0
        },
        || dump_all(&bots),
    );
    // Five seconds of A's audio for the echo canceller to converge, then six measured. Counted
    // in what A encoded, not on the wall clock: on a loaded machine the participants' audio
    // threads can fall behind real time, and then seconds of waiting are less audio.
    let a_audio_frames = || -> u64 {
        bots[0]
            .all_stats()
            .last()
            .and_then(|line| line["local"]["sources"]["audio"]["framesEncoded"].as_u64())
            .unwrap_or(0)
    };
    let wait_for_a_audio = |what: &str, frames: u64| {
        let until = a_audio_frames() + frames;
        wait_until(
            what,
            Duration::from_secs(60),
            || a_audio_frames() >= until,
            || dump_all(&bots),
        );
    };
    wait_for_a_audio("5 s of A's audio (convergence)", CONVERGENCE_OPUS_FRAMES);
    let skip = bots[1].all_stats().len();
    let markers_before = bots[1].audio_counter("a", "markersHeard");
    wait_for_a_audio("6 s of A's audio (measurement)", MEASURED_OPUS_FRAMES);
    let lines: Vec<Value> = bots[1].all_stats().into_iter().skip(skip).collect();
    let sent: Vec<f64> = lines
        .iter()
        .filter_map(|line| line["local"]["sources"]["audio"]["sentLevelDbfs"].as_f64())
        .collect();
    let echo: Vec<f64> = lines
        .iter()
        .filter_map(|line| {
            line["remotes"]
                .as_array()?
                .iter()
                .find(|remote| remote["userId"] == "a")?["audio"]["levelDbfs"]
                .as_f64()
        })
        .collect();
    assert!(
        sent.len() >= 8 && echo.len() >= 8,
        "too few figures: {}",
        dump_all(&bots)
    );
    EchoMeasurement {
        sent_dbfs: mean_db(&sent),
        echo_dbfs: mean_db(&echo),
        markers_from_a: bots[1].audio_counter("a", "markersHeard") - markers_before,
        a_voice: bots[0]
            .all_stats()
            .last()
            .map(|line| line["local"]["voiceProcessing"].clone())
            .unwrap_or(Value::Null),
    }
}

#[test]
fn with_voice_processing_the_echo_returns_at_least_25_db_below_what_was_sent() {
    let m = measure_echo("on", "echo-on");
    let attenuation = m.sent_dbfs - m.echo_dbfs;
    println!(
        "processing on: B sent {:.1} dBFS, heard back through A {:.1} dBFS: {attenuation:.1} dB below; \
         B's markers heard back: {}\nA's voice processing: {}",
        m.sent_dbfs, m.echo_dbfs, m.markers_from_a, m.a_voice
    );
    assert!(
        attenuation >= 25.0,
        "echo only {attenuation:.1} dB below what was sent"
    );
}

#[test]
fn without_voice_processing_the_same_measurement_finds_the_echo() {
    let m = measure_echo("off", "echo-off");
    let attenuation = m.sent_dbfs - m.echo_dbfs;
    println!(
        "processing off: B sent {:.1} dBFS, heard back through A {:.1} dBFS: {attenuation:.1} dB below; \
         B's markers heard back: {}",
        m.sent_dbfs, m.echo_dbfs, m.markers_from_a
    );
    // A says nothing: everything B hears from A is its own voice, come back.
    assert!(
        attenuation < 15.0,
        "no echo found ({attenuation:.1} dB below) — the test could not fail"
    );
}
