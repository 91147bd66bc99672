//! Voice processing benchmark (bench binary): `cargo bench -p classroom --bench voice`.
//!
//! On real speech (espeak-ng, generated at run time) through the simulated room (80 ms delay,
//! 250 ms decaying tail, echo at −6 dB, mic noise floor −70 dBFS), pinned to one core, prints:
//! - echo return loss enhancement in far-end single talk after 2 s of convergence;
//! - noise reduction on stationary white and pink noise at −45 dBFS under speech;
//! - processing cost per second of 48 kHz mono audio (render + capture, the room excluded) for
//!   the default configuration and each stage alone, and the share of one core.
//!
//! Budget (voice processing issue): ≤ 2 % of one core at 48 kHz mono with every stage on.

#[path = "support/machine.rs"]
mod machine;

#[path = "../tests/support/speech.rs"]
mod speech;

use std::time::{Duration, Instant};

use classroom::media::voice::{
    EchoPath, NoiseColor, RoomNoise, SimulatedRoom, SimulatedRoomConfig, VoiceProcessingConfig,
    VoiceProcessor,
};
use speech::{
    FAR_END_SENTENCES, FAR_END_VOICE, FRAME, NEAR_END_SENTENCES, NEAR_END_VOICE, RATE,
    active_frames, db_ratio, energy, frames_side_by_side, pad_to_frames, set_active_level,
    side_by_side_len, silence, speak, with_gaps,
};

const BUDGET_CORE_PERCENT: f64 = 2.0;
const ECHO: EchoPath = EchoPath {
    delay_ms: 80.0,
    tail_ms: 250.0,
    gain_db: -6.0,
};
const MIC_NOISE: RoomNoise = RoomNoise {
    color: NoiseColor::White,
    level_dbfs: -70.0,
};

fn pin_to_cpu(cpu: usize) {
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
    }
}

/// CPU time of the calling thread (not inflated by waiting for the CPU on a shared machine).
fn thread_cpu_time() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    unsafe {
        libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts);
    }
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

struct Outcome {
    echo: Vec<f32>,
    mic: Vec<f32>,
    out: Vec<f32>,
    /// Wall time spent in process_render + process_capture.
    cost: Duration,
    /// The thread's CPU time in them.
    cpu: Duration,
}

fn run(
    config: VoiceProcessingConfig,
    far: &[f32],
    near: &[f32],
    noise: Option<RoomNoise>,
) -> Outcome {
    let len = side_by_side_len(far, near);
    let mut room = SimulatedRoom::new(SimulatedRoomConfig {
        echo: ECHO,
        noise,
        seed: 42,
    })
    .expect("room");
    let processor = VoiceProcessor::new(config);
    let (mut echo, mut mic, mut out) = (vec![0.0; len], vec![0.0; len], vec![0.0; len]);
    let (mut cost, mut cpu) = (Duration::ZERO, Duration::ZERO);
    for (start, render, near_frame) in frames_side_by_side(far, near) {
        let end = start + FRAME;
        room.process_with_echo(
            &render,
            &near_frame,
            &mut mic[start..end],
            &mut echo[start..end],
        )
        .expect("room");
        out[start..end].copy_from_slice(&mic[start..end]);
        let (t, c) = (Instant::now(), thread_cpu_time());
        processor.process_render(&render);
        processor
            .process_capture(&mut out[start..end])
            .expect("capture");
        cost += t.elapsed();
        cpu += thread_cpu_time().saturating_sub(c);
    }
    Outcome {
        echo,
        mic,
        out,
        cost,
        cpu,
    }
}

/// CPU time of the muted path (render kept track of, the microphone watched for talk) over
/// `far` played and `near` talking, through the room; and the seconds of audio.
fn muted_cost(far: &[f32], near: &[f32]) -> (Duration, f64) {
    let mut room = SimulatedRoom::new(SimulatedRoomConfig {
        echo: ECHO,
        noise: Some(MIC_NOISE),
        seed: 5,
    })
    .expect("room");
    let processor = VoiceProcessor::new(VoiceProcessingConfig::default());
    let len = side_by_side_len(far, near);
    let mut mic = vec![0.0; FRAME];
    let mut cpu = Duration::ZERO;
    for (_, render, near_frame) in frames_side_by_side(far, near) {
        room.process(&render, &near_frame, &mut mic).expect("room");
        let c = thread_cpu_time();
        processor.process_render(&render);
        processor.discard_render();
        processor.observe_muted(&mic).expect("muted frame");
        cpu += thread_cpu_time().saturating_sub(c);
    }
    (cpu, len as f64 / RATE as f64)
}

fn erle_after(o: &Outcome, seconds: usize) -> (f64, f64) {
    let from = seconds * RATE;
    let total = db_ratio(energy(&o.echo[from..]), energy(&o.out[from..]));
    let windows: Vec<(f64, f64)> = o.echo[from..]
        .chunks_exact(RATE)
        .zip(o.out[from..].chunks_exact(RATE))
        .map(|(e, out)| (energy(e), energy(out)))
        .collect();
    let loudest = windows.iter().map(|w| w.0).fold(0.0, f64::max);
    let worst = windows
        .iter()
        .filter(|w| w.0 > loudest / 100.0)
        .map(|w| db_ratio(w.0, w.1))
        .fold(f64::INFINITY, f64::min);
    (total, worst)
}

fn noise_reduction(near: &[f32], color: NoiseColor) -> (f64, f64) {
    let config = VoiceProcessingConfig {
        noise_suppression: true,
        ..VoiceProcessingConfig::all_off()
    };
    let noise = RoomNoise {
        color,
        level_dbfs: -45.0,
    };
    let o = run(config, &[], near, Some(noise));
    let on = active_frames(near);
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
    (
        db_ratio(sum(&o.mic, &quiet), sum(&o.out, &quiet)),
        db_ratio(sum(&o.out, &on), sum(near, &on)),
    )
}

fn main() {
    // Read before pinning, or the process sees one core.
    let machine = machine::describe();
    pin_to_cpu(0);
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let load: Vec<&str> = load.split(' ').take(3).collect();
    println!(
        "machine: {machine}; bench pinned to CPU 0, bench profile; load average at start: {}",
        load.join(" ")
    );

    let far: Vec<Vec<f32>> = FAR_END_SENTENCES
        .iter()
        .map(|t| speak(FAR_END_VOICE, t))
        .collect();
    let mut far = with_gaps(&far, 0.4);
    set_active_level(&mut far, -20.0);
    let near_sentences: Vec<Vec<f32>> = NEAR_END_SENTENCES
        .iter()
        .map(|t| speak(NEAR_END_VOICE, t))
        .collect();
    let seconds = far.len() as f64 / RATE as f64;
    println!(
        "far end: espeak-ng {FAR_END_VOICE}, {seconds:.1} s at -20 dBFS; room: {} ms delay, {} ms tail, {} dB; mic noise {} dBFS",
        ECHO.delay_ms, ECHO.tail_ms, ECHO.gain_db, MIC_NOISE.level_dbfs
    );

    println!("\nEcho return loss enhancement, far-end single talk, after 2 s:");
    let configs = [
        (
            "defaults (AEC, NS, AGC, HPF)",
            VoiceProcessingConfig::default(),
        ),
        (
            "AEC, NS, HPF",
            VoiceProcessingConfig {
                gain_control: false,
                ..VoiceProcessingConfig::default()
            },
        ),
        (
            "AEC, HPF",
            VoiceProcessingConfig {
                echo_cancellation: true,
                high_pass_filter: true,
                ..VoiceProcessingConfig::all_off()
            },
        ),
        (
            "NS, HPF (no AEC)",
            VoiceProcessingConfig {
                echo_cancellation: false,
                gain_control: false,
                ..VoiceProcessingConfig::default()
            },
        ),
    ];
    for (name, config) in configs {
        let o = run(config, &far, &[], Some(MIC_NOISE));
        let (total, worst) = erle_after(&o, 2);
        println!("  {name:<30} ERLE {total:5.1} dB   worst 1 s window {worst:5.1} dB");
    }

    println!("\nNoise suppression (High), noise at -45 dBFS under speech at -26 dBFS:");
    let mut near = silence(3.0);
    near.extend(with_gaps(&near_sentences, 1.5));
    near.extend(silence(1.5));
    let mut near = pad_to_frames(near);
    set_active_level(&mut near, -26.0);
    for color in [NoiseColor::White, NoiseColor::Pink] {
        let (reduction, speech) = noise_reduction(&near, color);
        println!("  {color:?} noise lowered by {reduction:.1} dB, speech {speech:+.1} dB");
    }

    println!(
        "\nCost per second of 48 kHz mono audio (process_render + process_capture, far-end speech and near-end speech in double talk), thread CPU time, best of 3:"
    );
    let mut near_dt = silence(3.0);
    near_dt.extend(with_gaps(&near_sentences, 0.4));
    set_active_level(&mut near_dt, -26.0);
    let stage = |aec, ns, agc, hpf| VoiceProcessingConfig {
        echo_cancellation: aec,
        noise_suppression: ns,
        gain_control: agc,
        high_pass_filter: hpf,
        ..VoiceProcessingConfig::default()
    };
    let costs = [
        (
            "defaults (AEC, NS, AGC, HPF)",
            VoiceProcessingConfig::default(),
        ),
        ("AEC only", stage(true, false, false, false)),
        ("NS only", stage(false, true, false, false)),
        ("AGC only", stage(false, false, true, false)),
        ("HPF only", stage(false, false, false, true)),
        (
            "all off (VAD and meter only)",
            VoiceProcessingConfig::all_off(),
        ),
    ];
    let mut default_percent = 0.0;
    for (name, config) in costs {
        let (mut best_cpu, mut best_wall) = (Duration::MAX, Duration::MAX);
        let mut audio = 0.0;
        for _ in 0..3 {
            let o = run(config, &far, &near_dt, Some(MIC_NOISE));
            audio = o.out.len() as f64 / RATE as f64;
            best_cpu = best_cpu.min(o.cpu);
            best_wall = best_wall.min(o.cost);
        }
        let cpu_ms = best_cpu.as_secs_f64() * 1000.0 / audio;
        let wall_ms = best_wall.as_secs_f64() * 1000.0 / audio;
        let percent = cpu_ms / 10.0;
        if default_percent == 0.0 {
            default_percent = percent;
        }
        println!(
            "  {name:<30} {cpu_ms:6.2} ms CPU per s ({wall_ms:6.2} ms wall)   {percent:5.2} % of one core   {:4.0}× real time",
            1000.0 / cpu_ms
        );
    }
    // Muted: the stage does not run; only the "you are muted" watcher looks at the mic.
    let (mut best_cpu, mut audio) = (Duration::MAX, 0.0);
    for _ in 0..3 {
        let (cpu, seconds) = muted_cost(&far, &near_dt);
        best_cpu = best_cpu.min(cpu);
        audio = seconds;
    }
    let muted_ms = best_cpu.as_secs_f64() * 1000.0 / audio;
    println!(
        "  {:<30} {muted_ms:6.2} ms CPU per s                     {:5.2} % of one core",
        "muted (the hint's watcher)",
        muted_ms / 10.0
    );
    println!(
        "\nbudget: <= {BUDGET_CORE_PERCENT} % of one core with every stage on: {:.2} % ({:.2}× the budget) — {}",
        default_percent,
        default_percent / BUDGET_CORE_PERCENT,
        if default_percent <= BUDGET_CORE_PERCENT {
            "met"
        } else {
            "NOT met"
        }
    );

    // The room itself (not part of the stage), for the headless participant's budget.
    let mut room = SimulatedRoom::new(SimulatedRoomConfig {
        echo: ECHO,
        noise: Some(MIC_NOISE),
        seed: 1,
    })
    .expect("room");
    let mut mic = vec![0.0; FRAME];
    let zeros = vec![0.0; FRAME];
    let t = Instant::now();
    for frame in far.chunks_exact(FRAME) {
        room.process(frame, &zeros, &mut mic).expect("room");
    }
    let room_ms = t.elapsed().as_secs_f64() * 1000.0 / seconds;
    let taps = room.impulse_response().len() - room.delay_samples();
    println!(
        "simulated room (not part of the stage; {taps} echo taps after the delay, plus noise): \
         {room_ms:.2} ms per s of audio ({:.2} % of one core)",
        room_ms / 10.0
    );
}
