//! SFU benchmark: one 720p simulcast publisher → N subscribers of its 360p layer, on our SFU
//! (`classroom-signaling --sfu always`) and on Janus 1.1.2's VideoRoom in the same run, each
//! pinned to CPU 0, the load tester on CPU 1 (one thread).
//!
//! `cargo bench -p classroom-signaling --bench sfu -- [--steps 100,200,…] [--seconds S]
//!  [--settle S] [--batch B] [--only ours|janus]`
//!
//! The load tester (`peer.rs`, `clip.rs`) is str0m peers in RTP mode: the publisher replays
//! VP8 simulcast frames (720p / 360p / 180p at 1.5 Mbit/s / 500 kbit/s / 150 kbit/s, 30 fps,
//! a keyframe every 3 s and when asked) whose every packet carries its layer and send time;
//! subscribers read the stamps without decoding, count packets, keyframes and gaps, ask for a
//! keyframe after a gap, and answer with str0m's RTCP (receiver reports, NACK, TWCC).
//!
//! For each server the subscribers grow by steps; at each step, after a settling pause, a
//! window of S seconds is measured: the share of the 360p packets sent in the window that
//! each subscriber received, the latency from the publisher's send to the kernel's arrival
//! stamp at a subscriber's socket (one wall clock; the load tester's own queueing is not in
//! it), the server's CPU and the load tester's. A step is within the budget when every
//! subscriber received ≥ 99 % and p99 latency ≤ 10 ms. Two figures: the largest N within the
//! budget, and the largest N at which everyone still received ≥ 99 % (the ramp stops at loss,
//! or when the load tester's core is 90 % busy). Last line: one JSON object.

mod clip;
mod janus;
mod lab;
mod ours;
mod peer;
#[path = "../support/mod.rs"]
mod support;

use std::rc::Rc;
use std::time::Duration;

use serde_json::json;
use tokio::sync::mpsc;

use peer::{Received, Role, Shared};
use support::{
    cpu_seconds, flags, machine, own_cpu_seconds, percentile, pin_to_cpu, raise_fd_limit, rss_kib,
};

struct Options {
    steps: Vec<usize>,
    seconds: u64,
    settle: u64,
    batch: usize,
    only: Option<String>,
}

fn options() -> Options {
    let mut o = Options {
        steps: vec![100, 200, 300, 400, 500, 600, 700, 800, 1000, 1200],
        seconds: 5,
        settle: 2,
        batch: 25,
        only: None,
    };
    for (flag, value) in flags::pairs() {
        match flag.as_str() {
            "--steps" => {
                o.steps = value
                    .split(',')
                    .map(|s| flags::number(&flag, s.trim()))
                    .collect()
            }
            "--seconds" => o.seconds = flags::number(&flag, &value),
            "--settle" => o.settle = flags::number(&flag, &value),
            "--batch" => o.batch = flags::number::<usize>(&flag, &value).max(1),
            "--only" => o.only = Some(value),
            other => flags::unknown(other),
        }
    }
    o
}

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Ours,
    Janus,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Ours => "ours",
            Kind::Janus => "janus",
        }
    }
}

enum Sfu {
    Ours(ours::Server),
    Janus(Rc<janus::Janus>),
}

impl Sfu {
    fn pid(&self) -> u32 {
        match self {
            Sfu::Ours(s) => s.pid,
            Sfu::Janus(j) => j.pid,
        }
    }

    /// Connects one peer: its signaling, then its media.
    async fn add_peer(&self, shared: &Rc<Shared>, role: Role, user: &str) -> Result<(), String> {
        let (rtc, socket) = peer::connection()
            .await
            .map_err(|e| format!("socket: {e}"))?;
        let (to_sfu, from_peer) = mpsc::unbounded_channel();
        let (to_peer, from_sfu) = mpsc::unbounded_channel();
        let publisher = matches!(role, Role::Publisher);
        match self {
            Sfu::Ours(s) => s.signal(user, from_peer, to_peer).await?,
            Sfu::Janus(j) => j.signal(publisher, from_peer, to_peer).await?,
        }
        tokio::task::spawn_local(peer::run(
            rtc,
            socket,
            role,
            from_sfu,
            to_sfu,
            shared.clone(),
        ));
        Ok(())
    }
}

fn free_port(udp: bool) -> u16 {
    if udp {
        std::net::UdpSocket::bind((lab::ADDRESS, 0))
            .and_then(|s| s.local_addr())
            .map(|a| a.port())
            .expect("a free UDP port")
    } else {
        std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|s| s.local_addr())
            .map(|a| a.port())
            .expect("a free TCP port")
    }
}

/// One measured step.
#[derive(Clone)]
struct Step {
    subscribers: usize,
    connected: usize,
    failed: usize,
    sent: u64,
    /// The lowest share of the window's 360p packets a subscriber received, and how many
    /// received ≥ 99 %.
    worst_delivery: f64,
    delivered_99: usize,
    /// Packets of other layers than the one asked for.
    other_layer: u64,
    p50_ms: f64,
    p99_ms: f64,
    server_cpu: f64,
    loadgen_cpu: f64,
    server_rss_kib: u64,
    /// Every subscriber received ≥ 99 %, and p99 latency ≤ 10 ms (the budget).
    passed: bool,
    /// Every subscriber received ≥ 99 % (whatever the latency).
    delivered: bool,
}

struct Run {
    steps: Vec<Step>,
    /// Join → first media packet of the subscribers, ms (p50, p95).
    join_p50_ms: f64,
    join_p95_ms: f64,
    kib_per_subscriber: f64,
    error: Option<String>,
}

impl Run {
    /// The largest N within the budget (every step up to it passed).
    fn max_passed(&self) -> usize {
        self.steps
            .iter()
            .take_while(|s| s.passed)
            .map(|s| s.subscribers)
            .last()
            .unwrap_or(0)
    }

    /// The largest N at which everyone received ≥ 99 %, whatever the latency.
    fn max_delivered(&self) -> usize {
        self.steps
            .iter()
            .take_while(|s| s.delivered)
            .map(|s| s.subscribers)
            .last()
            .unwrap_or(0)
    }
}

async fn wait_for(
    what: &str,
    limit: Duration,
    mut done: impl FnMut() -> bool,
) -> Result<(), String> {
    let deadline = tokio::time::Instant::now() + limit;
    while !done() {
        if tokio::time::Instant::now() > deadline {
            return Err(format!("{what}: not within {limit:?}"));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

async fn measure(kind: Kind, o: &Options) -> Run {
    let mut run = Run {
        steps: Vec::new(),
        join_p50_ms: 0.0,
        join_p95_ms: 0.0,
        kib_per_subscriber: 0.0,
        error: None,
    };
    let sfu = match kind {
        Kind::Ours => Sfu::Ours(ours::start(free_port(true)).await),
        Kind::Janus => match janus::start(free_port(false)).await {
            Ok(j) => Sfu::Janus(Rc::new(j)),
            Err(e) => {
                run.error = Some(e);
                return run;
            }
        },
    };
    let pid = sfu.pid();
    let shared = Rc::new(Shared::default());
    if let Err(e) = sfu.add_peer(&shared, Role::Publisher, "publisher").await {
        run.error = Some(format!("the publisher: {e}"));
        return run;
    }
    if let Err(e) = wait_for("the publisher sending", Duration::from_secs(15), || {
        shared.publishing.get()
            && match &sfu {
                Sfu::Janus(j) => j.feed().is_some(),
                Sfu::Ours(_) => true,
            }
    })
    .await
    {
        if let Sfu::Janus(j) = &sfu {
            eprintln!("Janus's log:\n{}", j.log_tail());
        }
        run.error = Some(e);
        return run;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss_before = rss_kib(pid);
    println!(
        "{:>6} {:>9} {:>6} {:>10} {:>8} {:>8} {:>8} {:>8} {:>9} {:>9}",
        "subs",
        "connected",
        "failed",
        "≥99 % got",
        "worst",
        "p50 ms",
        "p99 ms",
        "other",
        "SFU CPU",
        "tester"
    );
    for &n in &o.steps {
        // Grow to n, a batch at a time, each batch connected before the next.
        while shared.subscribers.borrow().len() < n {
            let start = shared.subscribers.borrow().len();
            let end = (start + o.batch).min(n);
            for index in start..end {
                shared.subscribers.borrow_mut().push(Received {
                    started: clip::now_ns(),
                    ..Received::default()
                });
                let offers = kind == Kind::Ours;
                let role = Role::Subscriber { index, offers };
                let user = format!("s-{index}");
                let shared = shared.clone();
                let added = sfu.add_peer(&shared, role, &user).await;
                if let Err(e) = added {
                    shared.subscribers.borrow_mut()[index].failed = Some(e);
                }
            }
            let _ = wait_for("a batch of subscribers", Duration::from_secs(20), || {
                shared.subscribers.borrow()[start..end]
                    .iter()
                    .all(|s| s.first_packet.is_some() || s.failed.is_some())
            })
            .await;
        }
        tokio::time::sleep(Duration::from_secs(o.settle)).await;
        // The window.
        shared.latencies_us.borrow_mut().clear();
        *shared.sent.borrow_mut() = [0; 3];
        for s in shared.subscribers.borrow_mut().iter_mut() {
            s.in_window = [0; 3];
        }
        let (cpu0, own0) = (cpu_seconds(pid), own_cpu_seconds());
        let t0 = clip::now_ns();
        shared
            .window
            .set(Some((t0, t0 + o.seconds * 1_000_000_000)));
        tokio::time::sleep(Duration::from_secs(o.seconds)).await;
        let (cpu1, own1) = (cpu_seconds(pid), own_cpu_seconds());
        // Late packets of the window still count.
        tokio::time::sleep(Duration::from_millis(300)).await;
        shared.window.set(None);
        let sent = shared.sent.borrow()[clip::SUBSCRIBED_LAYER];
        let subs = shared.subscribers.borrow();
        let failed = subs.iter().filter(|s| s.failed.is_some()).count();
        let connected = subs.iter().filter(|s| s.first_packet.is_some()).count();
        let deliveries: Vec<f64> = subs
            .iter()
            .map(|s| {
                if sent == 0 {
                    0.0
                } else {
                    (s.in_window[clip::SUBSCRIBED_LAYER] as f64 / sent as f64).min(1.0)
                }
            })
            .collect();
        let worst = deliveries.iter().copied().fold(1.0, f64::min);
        let delivered_99 = deliveries.iter().filter(|d| **d >= 0.99).count();
        let other_layer: u64 = subs
            .iter()
            .map(|s| {
                s.in_window
                    .iter()
                    .enumerate()
                    .filter(|(l, _)| *l != clip::SUBSCRIBED_LAYER)
                    .map(|(_, c)| c)
                    .sum::<u64>()
            })
            .sum();
        let mut lat = std::mem::take(&mut *shared.latencies_us.borrow_mut());
        let p50 = percentile(&mut lat, 0.5) / 1000.0;
        let p99 = percentile(&mut lat, 0.99) / 1000.0;
        let step = Step {
            subscribers: n,
            connected,
            failed,
            sent,
            worst_delivery: worst,
            delivered_99,
            other_layer,
            p50_ms: p50,
            p99_ms: p99,
            server_cpu: (cpu1 - cpu0) / o.seconds as f64,
            loadgen_cpu: (own1 - own0) / o.seconds as f64,
            server_rss_kib: rss_kib(pid),
            passed: delivered_99 == n && p99 <= 10.0 && sent > 0,
            delivered: delivered_99 == n && sent > 0,
        };
        if let Some(why) = subs.iter().find_map(|s| s.failed.clone()) {
            eprintln!("  a subscriber failed: {why}");
        }
        drop(subs);
        println!(
            "{:>6} {:>9} {:>6} {:>10} {:>7.1}% {:>8.2} {:>8.2} {:>8} {:>8.0}% {:>8.0}%{}",
            step.subscribers,
            step.connected,
            step.failed,
            step.delivered_99,
            step.worst_delivery * 100.0,
            step.p50_ms,
            step.p99_ms,
            step.other_layer,
            step.server_cpu * 100.0,
            step.loadgen_cpu * 100.0,
            if step.passed {
                ""
            } else if step.delivered {
                "  ← p99 over 10 ms"
            } else {
                "  ← loss"
            }
        );
        // The ramp goes on while everyone still gets ≥ 99 % and the load tester has room.
        let go_on = step.delivered && step.loadgen_cpu < 0.9;
        if step.loadgen_cpu >= 0.9 {
            println!("  the load tester is saturated: the figures stop here");
        }
        run.steps.push(step);
        if !go_on {
            break;
        }
    }
    let subs = shared.subscribers.borrow();
    let mut joins: Vec<u32> = subs
        .iter()
        .filter_map(|s| s.first_packet.map(|f| ((f - s.started) / 1000) as u32))
        .collect();
    run.join_p50_ms = percentile(&mut joins, 0.5) / 1000.0;
    run.join_p95_ms = percentile(&mut joins, 0.95) / 1000.0;
    if let Some(last) = run.steps.last()
        && !subs.is_empty()
    {
        run.kib_per_subscriber =
            last.server_rss_kib.saturating_sub(rss_before) as f64 / subs.len() as f64;
    }
    drop(subs);
    shared.stop.set(true);
    tokio::time::sleep(Duration::from_millis(200)).await;
    run
}

fn main() {
    if let Some(status) = lab::enter() {
        std::process::exit(status);
    }
    let o = options();
    raise_fd_limit();
    let machine = machine();
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    println!("machine: {machine}");
    if cores >= 2 {
        pin_to_cpu(1);
        println!("SFUs pinned to CPU 0, load tester (1 thread) pinned to CPU 1");
    } else {
        println!("warning: one core; SFU and load tester share it");
    }
    println!(
        "one publisher, VP8 simulcast 720p/360p/180p at 1500/500/150 kbit/s, 30 fps → N subscribers of 360p; {} s windows",
        o.seconds
    );
    let kinds: Vec<Kind> = [Kind::Ours, Kind::Janus]
        .into_iter()
        .filter(|k| o.only.as_deref().is_none_or(|only| only == k.name()))
        .filter(|k| {
            *k != Kind::Janus || janus::installed() || {
                println!("Janus is not installed (apt install janus): skipped");
                false
            }
        })
        .collect();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let local = tokio::task::LocalSet::new();
    let mut results = Vec::new();
    for kind in kinds {
        println!(
            "\n== {} ==",
            match kind {
                Kind::Ours => "classroom-signaling --sfu always",
                Kind::Janus => "Janus 1.1.2 VideoRoom",
            }
        );
        let run = local.block_on(&rt, measure(kind, &o));
        if let Some(e) = &run.error {
            println!("error: {e}");
        }
        println!(
            "largest N within the budget: {}; delivering ≥ 99 %: {}; join → first packet p50 {:.0} ms, p95 {:.0} ms; {:.0} KiB per subscriber",
            run.max_passed(),
            run.max_delivered(),
            run.join_p50_ms,
            run.join_p95_ms,
            run.kib_per_subscriber
        );
        results.push((kind, run));
    }
    let figure = |k: Kind| results.iter().find(|(r, _)| *r == k).map(|(_, run)| run);
    let ratio = |n: fn(&Run) -> usize| match (figure(Kind::Ours), figure(Kind::Janus)) {
        (Some(a), Some(b)) if n(b) > 0 => Some(n(a) as f64 / n(b) as f64),
        _ => None,
    };
    let (within, delivering) = (ratio(Run::max_passed), ratio(Run::max_delivered));
    if let (Some(w), Some(d)) = (within, delivering) {
        println!(
            "\nsubscribers per core, ours ÷ Janus: {w:.2}× within the budget, {d:.2}× delivering ≥ 99 %"
        );
    }
    let mut out = json!({ "bench": "sfu", "machine": machine, "seconds": o.seconds });
    for (kind, run) in &results {
        out[kind.name()] = json!({
            "max_subscribers": run.max_passed(),
            "max_subscribers_delivering": run.max_delivered(),
            "join_first_packet_p50_ms": run.join_p50_ms,
            "join_first_packet_p95_ms": run.join_p95_ms,
            "kib_per_subscriber": run.kib_per_subscriber,
            "error": run.error,
            "steps": run.steps.iter().map(|s| json!({
                "subscribers": s.subscribers, "connected": s.connected, "failed": s.failed,
                "sent": s.sent, "worst_delivery": s.worst_delivery, "delivered_99": s.delivered_99,
                "other_layer": s.other_layer, "p50_ms": s.p50_ms, "p99_ms": s.p99_ms,
                "server_cpu": s.server_cpu, "loadgen_cpu": s.loadgen_cpu,
                "server_rss_kib": s.server_rss_kib, "passed": s.passed, "delivered": s.delivered,
            })).collect::<Vec<_>>(),
        });
    }
    out["ratio_ours_to_janus"] = json!(within);
    out["ratio_ours_to_janus_delivering"] = json!(delivering);
    println!("{out}");
}
