//! A four-party call at 720p30 on loopback, each participant a headless process (release
//! build), in a network namespace of its own. Prints glass-to-glass latency (from the frame
//! stamps), join → first remote picture, and CPU and RSS per participant, against the
//! budgets of the calls issue: p95 ≤ 100 ms, first picture ≤ 1.5 s, ≤ 40 % of one core and
//! ≤ 200 MB RSS per participant.
//!
//! Run: `cargo bench --bench call` (as root: it creates a network namespace).
//! Options (environment): CALL_BENCH_SECONDS (measured window, default 20),
//! CALL_BENCH_CAMERA (default 1280x720@30), CALL_BENCH_PARTIES (default 4).

#[path = "support/machine.rs"]
mod machine;

#[path = "../tests/support/lab.rs"]
mod lab;

use std::time::{Duration, Instant};

use lab::{Bot, BotOptions, NetNs, Server, ServerKind, TempDir, everyone_sees_and_hears_everyone};

fn cpu_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces) — utime and stime are 14 and 15.
    let after = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = after.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

fn rss_mb(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|line| line.starts_with("VmRSS:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

fn ticks_per_second() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks > 0 { ticks as f64 } else { 100.0 }
}

fn percentile(values: &mut [f64], fraction: f64) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(|a, b| a.total_cmp(b));
    let index = ((values.len() - 1) as f64 * fraction).round() as usize;
    values.get(index).copied()
}

fn verdict(ok: bool) -> &'static str {
    if ok { "within budget" } else { "OVER BUDGET" }
}

fn main() {
    if std::env::args().any(|arg| arg == "--list") {
        println!("call: benchmark");
        return;
    }
    // Every viewer shows everyone full size; then, side by side, every viewer shows a 2×2
    // grid in a 720p window (360 tall tiles) and says so (`video-request`).
    let full = run_call(None);
    let grid = run_call(Some(360));
    // Last, the figures as one JSON line for scripts.
    println!(
        "{}",
        serde_json::json!({"bench": "call", "full_size": full, "grid_360": grid})
    );
}

/// Runs one call and prints its figures; returns them for the JSON line.
fn run_call(view_height: Option<u32>) -> serde_json::Value {
    let seconds: u64 = std::env::var("CALL_BENCH_SECONDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    let camera: &'static str = Box::leak(
        std::env::var("CALL_BENCH_CAMERA")
            .unwrap_or_else(|_| "1280x720@30".to_owned())
            .into_boxed_str(),
    );
    let parties: usize = std::env::var("CALL_BENCH_PARTIES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(4)
        .clamp(2, 8);
    println!();
    println!(
        "call benchmark: {parties} participants, camera {camera}, {seconds} s measured, viewers show {}",
        match view_height {
            Some(height) => format!("tiles {height} tall (a 2×2 grid in a 720p window)"),
            None => "everyone full size".to_owned(),
        }
    );
    println!("machine: {}", machine::describe());

    let ns = NetNs::create(if view_height.is_some() {
        "bench-grid"
    } else {
        "bench-full"
    });
    let data = TempDir::new("bench");
    let _server = Server::start(&ns, ServerKind::Ours, &data.0);
    let names = ["ada", "bob", "cy", "dee", "eve", "fay", "gus", "hal"];
    let mut bots = Vec::new();
    for name in names.iter().take(parties) {
        bots.push(Bot::start(
            &ns,
            "bench-class",
            name,
            BotOptions {
                camera,
                screen: "none",
                stats_interval_ms: 1000,
                extra: match view_height {
                    Some(height) => vec![
                        "--audio".into(),
                        "tone".into(),
                        "--view-height".into(),
                        height.to_string(),
                    ],
                    None => vec!["--audio".into(), "tone".into()],
                },
            },
        ));
        // The next one joins a call in progress.
        std::thread::sleep(Duration::from_secs(2));
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while !everyone_sees_and_hears_everyone(&bots, 30, 2) {
        if Instant::now() > deadline {
            eprintln!("the call did not come up:\n{}", lab::dump_all(&bots));
            std::process::exit(1);
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    // Let the bandwidth estimates and encoders settle before measuring.
    std::thread::sleep(Duration::from_secs(3));
    let stats_before: Vec<usize> = bots.iter().map(|bot| bot.all_stats().len()).collect();
    let cpu_before: Vec<Option<u64>> = bots.iter().map(|bot| cpu_ticks(bot.pid())).collect();
    let started = Instant::now();
    std::thread::sleep(Duration::from_secs(seconds));
    let wall = started.elapsed().as_secs_f64();
    let cpu_after: Vec<Option<u64>> = bots.iter().map(|bot| cpu_ticks(bot.pid())).collect();
    let rss: Vec<Option<f64>> = bots.iter().map(|bot| rss_mb(bot.pid())).collect();

    // Latency: every (receiver, sender, interval) figure of the measured window.
    let mut p50s = Vec::new();
    let mut p95s = Vec::new();
    let mut fps = Vec::new();
    let mut lost = 0u64;
    for (bot, skip) in bots.iter().zip(&stats_before) {
        for line in bot.all_stats().iter().skip(*skip) {
            for remote in line["remotes"].as_array().into_iter().flatten() {
                let camera = &remote["video"]["camera"];
                if let Some(value) = camera["latencyMsP50"].as_f64() {
                    p50s.push(value);
                }
                if let Some(value) = camera["latencyMsP95"].as_f64() {
                    p95s.push(value);
                }
                if let Some(value) = camera["fps"].as_f64() {
                    fps.push(value);
                }
            }
        }
        if let Some(last) = bot.stats() {
            for remote in last["remotes"].as_array().into_iter().flatten() {
                lost += remote["video"]["camera"]["packetsLost"]
                    .as_u64()
                    .unwrap_or(0);
            }
        }
    }
    let p50 = percentile(&mut p50s, 0.5);
    let p95 = percentile(&mut p95s, 0.95);
    let mean_fps = if fps.is_empty() {
        0.0
    } else {
        fps.iter().sum::<f64>() / fps.len() as f64
    };

    // Join → first remote picture, seen by the last one to join (a call in progress).
    let last = bots.last().expect("bots");
    let mut first_frames: Vec<f64> = last
        .stats()
        .and_then(|stats| stats["remotes"].as_array().cloned())
        .unwrap_or_default()
        .iter()
        .filter_map(|remote| remote["video"]["camera"]["firstFrameMs"].as_f64())
        .collect();
    let first_frame_max = percentile(&mut first_frames, 1.0);

    println!();
    println!(
        "glass-to-glass latency (camera, per 1-s interval, all {} streams):",
        parties * (parties - 1)
    );
    println!(
        "  p50 {:.1} ms (median of interval medians), p95 {:.1} ms (95th percentile of interval p95s) -> {}",
        p50.unwrap_or(f64::NAN),
        p95.unwrap_or(f64::NAN),
        verdict(p95.is_some_and(|v| v <= 100.0))
    );
    let received_height = last
        .stats()
        .and_then(|stats| stats["remotes"][0]["video"]["camera"]["height"].as_u64())
        .unwrap_or(0);
    println!(
        "  received frame rate: mean {mean_fps:.1} fps per stream, pictures {received_height} tall; camera packets lost (total): {lost}"
    );
    println!(
        "join -> first remote picture (the last joiner, {} senders): max {:.0} ms -> {}",
        first_frames.len(),
        first_frame_max.unwrap_or(f64::NAN),
        verdict(first_frame_max.is_some_and(|v| v <= 1500.0))
    );
    println!("per participant (CPU over {wall:.1} s, % of one core; RSS at the end):");
    let ticks = ticks_per_second();
    let mut worst_cpu: f64 = 0.0;
    let mut worst_rss: f64 = 0.0;
    for (index, bot) in bots.iter().enumerate() {
        let cpu = match (cpu_before[index], cpu_after[index]) {
            (Some(before), Some(after)) => (after - before) as f64 / ticks / wall * 100.0,
            _ => f64::NAN,
        };
        let rss = rss[index].unwrap_or(f64::NAN);
        worst_cpu = worst_cpu.max(cpu);
        worst_rss = worst_rss.max(rss);
        println!("  {:>4}: CPU {cpu:5.1} %  RSS {rss:6.1} MB", bot.user);
    }
    println!(
        "  worst: CPU {worst_cpu:.1} % -> {}; RSS {worst_rss:.1} MB -> {}",
        verdict(worst_cpu <= 40.0),
        verdict(worst_rss <= 200.0)
    );
    serde_json::json!({
        "latency_p50_ms": p50,
        "latency_p95_ms": p95,
        "received_fps": mean_fps,
        "received_height": received_height,
        "packets_lost": lost,
        "first_picture_max_ms": first_frame_max,
        "worst_cpu_percent": worst_cpu,
        "worst_rss_mb": worst_rss,
    })
}
