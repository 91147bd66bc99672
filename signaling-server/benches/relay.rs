//! Relay benchmark: our server against the same relay on stock Node socket.io
//! (`tests/node/protocol-relay.mjs`), in one run.
//!
//! `cargo bench -p classroom-signaling --bench relay -- [--connections N] [--pairs P]
//!  [--seconds S] [--window W] [--paced-rate R] [--only ours|reference]`
//!
//! For each server it prints:
//! - server RSS per idle connection: N websocket clients connected and joined to sessions of 10,
//!   (RSS after − RSS before) / N;
//! - relayed messages per second: P pairs (2P more connections) send `ice-candidate` to each
//!   other in a closed loop with W messages in flight per direction, for S seconds;
//! - relay latency p50/p99, client send → target receive, at a paced total rate R (not
//!   saturated), and under the saturating load;
//! - the CPU both processes used, so that it is visible which side was the bottleneck.
//!
//! Fairness: each server runs pinned to CPU 0 (`taskset -c 0`); this load generator pins itself
//! to CPU 1 and runs on one thread. It speaks Engine.IO/Socket.IO v4 frames directly over
//! tokio-tungstenite (no client library overhead), so one core drives far more load than one
//! server core absorbs; its own CPU use is printed beside the server's.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tokio::sync::Notify;
use tokio_tungstenite::tungstenite::Message;

mod support;
use support::flags;
use support::servers::{self, Kind, ServerProcess};
use support::socketio::{Ws, idle, join, open};
use support::{cpu_seconds, machine, own_cpu_seconds, pin_to_cpu, raise_fd_limit, rss_kib};

struct Options {
    connections: usize,
    pairs: usize,
    seconds: u64,
    window: u64,
    paced_rate: u64,
    only: Option<String>,
}

fn options() -> Options {
    let mut o = Options {
        connections: 5000,
        pairs: 100,
        seconds: 8,
        window: 32,
        paced_rate: 2000,
        only: None,
    };
    for (flag, value) in flags::pairs() {
        match flag.as_str() {
            "--connections" => o.connections = flags::number(&flag, &value),
            "--pairs" => o.pairs = flags::number(&flag, &value),
            "--seconds" => o.seconds = flags::number(&flag, &value),
            "--window" => o.window = flags::number(&flag, &value),
            "--paced-rate" => o.paced_rate = flags::number(&flag, &value),
            "--only" => o.only = Some(value),
            other => flags::unknown(other),
        }
    }
    o
}

/// The arguments each server gets: rates that never refuse the load, and no bounds on the
/// connections of one address (every load connection comes from 127.0.0.1).
fn server_args(kind: Kind) -> Vec<String> {
    let mut args = vec![
        "--events-per-second",
        "1000000000",
        "--event-burst",
        "1000000000",
        "--max-participants",
        "1000",
    ];
    if kind == Kind::Ours {
        args.extend([
            "--max-connections-per-ip",
            "0",
            "--max-connections",
            "0",
            "--events-per-second-per-address",
            "0",
        ]);
    }
    args.into_iter().map(String::from).collect()
}

async fn start_server(kind: Kind) -> ServerProcess {
    servers::start(kind, &server_args(kind))
        .await
        .expect("the server starts")
}

struct Latencies(RefCell<Vec<u32>>);

impl Latencies {
    fn percentile(&self, p: f64) -> f64 {
        let mut v = self.0.borrow().clone();
        if v.is_empty() {
            return f64::NAN;
        }
        v.sort_unstable();
        let i = ((v.len() as f64 - 1.0) * p).round() as usize;
        v[i] as f64 / 1000.0
    }
}

/// Shared by one direction of a pair: sent by one end, delivered at the other.
struct Flow {
    sent: Cell<u64>,
    delivered: Cell<u64>,
    wake_sender: Notify,
}

#[derive(Clone, Copy)]
enum Pace {
    /// Closed loop: up to this many in flight.
    Window(u64),
    /// Open loop at this interval between messages.
    Every(Duration),
}

struct RelayRun {
    stop: Cell<bool>,
    measuring: Cell<bool>,
    measured: Cell<u64>,
    latencies: Latencies,
    epoch: Instant,
}

/// One end of a pair: sends to `partner` under `out`, receives the partner's flow `inn`.
async fn relay_end(
    mut ws: Ws,
    me: String,
    partner: String,
    out: Rc<Flow>,
    inn: Rc<Flow>,
    run: Rc<RelayRun>,
    pace: Pace,
) {
    let _ = me;
    let mut ticker = match pace {
        Pace::Every(d) => Some(tokio::time::interval(d)),
        Pace::Window(_) => None,
    };
    loop {
        if run.stop.get() {
            break;
        }
        // Send whatever the pace allows.
        let allowed = match pace {
            Pace::Window(w) => w.saturating_sub(out.sent.get() - out.delivered.get()),
            Pace::Every(_) => 0,
        };
        if allowed > 0 {
            for _ in 0..allowed {
                let ts = run.epoch.elapsed().as_nanos();
                let packet = format!(
                    r#"42["ice-candidate",{{"targetUserId":"{partner}","candidate":{{"candidate":"candidate:1 1 udp 2122260223 127.0.0.1 50000 typ host","sdpMid":"{ts}","sdpMLineIndex":0}}}}]"#
                );
                if ws.feed(Message::text(packet)).await.is_err() {
                    return;
                }
                out.sent.set(out.sent.get() + 1);
            }
            if ws.flush().await.is_err() {
                return;
            }
        }
        let tick = async {
            match &mut ticker {
                Some(t) => {
                    t.tick().await;
                }
                None => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            _ = out.wake_sender.notified() => {}
            _ = tick => {
                let ts = run.epoch.elapsed().as_nanos();
                let packet = format!(
                    r#"42["ice-candidate",{{"targetUserId":"{partner}","candidate":{{"candidate":"candidate:1 1 udp 2122260223 127.0.0.1 50000 typ host","sdpMid":"{ts}","sdpMLineIndex":0}}}}]"#
                );
                if ws.send(Message::text(packet)).await.is_err() { return; }
                out.sent.set(out.sent.get() + 1);
            }
            m = ws.next() => match m {
                Some(Ok(Message::Text(t))) => {
                    let t = t.as_str();
                    if t == "2" {
                        if ws.send(Message::text("3")).await.is_err() { return; }
                    } else if t.starts_with(r#"42["ice-candidate""#) {
                        inn.delivered.set(inn.delivered.get() + 1);
                        inn.wake_sender.notify_one();
                        if run.measuring.get() {
                            run.measured.set(run.measured.get() + 1);
                            if let Some(sent) = parse_stamp(t) {
                                let now = run.epoch.elapsed().as_nanos() as u64;
                                run.latencies.0.borrow_mut().push((now.saturating_sub(sent) / 1000) as u32);
                            }
                        }
                    }
                }
                Some(Ok(_)) => {}
                _ => return,
            }
        }
    }
    let _ = ws.close(None).await;
}

fn parse_stamp(t: &str) -> Option<u64> {
    let at = t.find(r#""sdpMid":""#)? + 10;
    let rest = &t[at..];
    let end = rest.find('"')?;
    rest[..end].parse().ok()
}

struct Figures {
    rss_per_conn_kib: f64,
    baseline_rss_mib: f64,
    throughput: f64,
    sat_p50_ms: f64,
    sat_p99_ms: f64,
    paced_p50_ms: f64,
    paced_p99_ms: f64,
    server_cpu: f64,
    loadgen_cpu: f64,
}

async fn relay_phase(
    port: u16,
    pid: u32,
    o: &Options,
    pace: Pace,
    seconds: u64,
    tag: &str,
) -> (f64, Latencies, f64, f64) {
    let run = Rc::new(RelayRun {
        stop: Cell::new(false),
        measuring: Cell::new(false),
        measured: Cell::new(0),
        latencies: Latencies(RefCell::new(Vec::with_capacity(1 << 20))),
        epoch: Instant::now(),
    });
    let mut tasks = Vec::new();
    for i in 0..o.pairs {
        let session = format!("{tag}-pair-{i}");
        let (a, b) = (format!("{tag}-a{i}"), format!("{tag}-b{i}"));
        let mut wa = open(port).await.expect("socket.io connects");
        join(&mut wa, &session, &a).await.expect("joined");
        let mut wb = open(port).await.expect("socket.io connects");
        join(&mut wb, &session, &b).await.expect("joined");
        let ab = Rc::new(Flow {
            sent: Cell::new(0),
            delivered: Cell::new(0),
            wake_sender: Notify::new(),
        });
        let ba = Rc::new(Flow {
            sent: Cell::new(0),
            delivered: Cell::new(0),
            wake_sender: Notify::new(),
        });
        tasks.push(tokio::task::spawn_local(relay_end(
            wa,
            a.clone(),
            b.clone(),
            ab.clone(),
            ba.clone(),
            run.clone(),
            pace,
        )));
        tasks.push(tokio::task::spawn_local(relay_end(
            wb,
            b,
            a,
            ba,
            ab,
            run.clone(),
            pace,
        )));
    }
    tokio::time::sleep(Duration::from_secs(1)).await; // warm-up
    let (s0, l0, t0) = (cpu_seconds(pid), own_cpu_seconds(), Instant::now());
    run.measuring.set(true);
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    run.measuring.set(false);
    let elapsed = t0.elapsed().as_secs_f64();
    let (server_cpu, loadgen_cpu) = (
        (cpu_seconds(pid) - s0) / elapsed,
        (own_cpu_seconds() - l0) / elapsed,
    );
    let rate = run.measured.get() as f64 / elapsed;
    run.stop.set(true);
    for t in tasks {
        t.abort();
    }
    let latencies = Latencies(RefCell::new(std::mem::take(
        &mut *run.latencies.0.borrow_mut(),
    )));
    (rate, latencies, server_cpu, loadgen_cpu)
}

async fn measure(kind: Kind, o: &Options) -> Figures {
    let server = start_server(kind).await;
    let (pid, port) = (server.pid, server.port);
    // Warm the server's allocator and code paths with one session before the baseline.
    let mut warm = open(port).await.expect("socket.io connects");
    join(&mut warm, "warmup", "warmup").await.expect("joined");
    drop(warm);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let before = rss_kib(pid);

    let stop_idle = Rc::new(Notify::new());
    let mut idle_tasks = Vec::new();
    for i in 0..o.connections {
        let mut ws = open(port).await.expect("socket.io connects");
        join(
            &mut ws,
            &format!("idle-{}", i / 10),
            &format!("idle-user-{i}"),
        )
        .await
        .expect("joined");
        idle_tasks.push(tokio::task::spawn_local(idle(ws, stop_idle.clone())));
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = rss_kib(pid);
    let rss_per_conn_kib = (after.saturating_sub(before)) as f64 / o.connections as f64;
    eprintln!(
        "  {}: {} idle connections, RSS {} → {} KiB",
        kind.name(),
        o.connections,
        before,
        after
    );

    let (throughput, sat, server_cpu, loadgen_cpu) =
        relay_phase(port, pid, o, Pace::Window(o.window), o.seconds, "sat").await;
    eprintln!(
        "  {}: saturated relay {:.0} msg/s (server CPU {:.0} %, load generator CPU {:.0} %)",
        kind.name(),
        throughput,
        server_cpu * 100.0,
        loadgen_cpu * 100.0
    );
    let per_message = Duration::from_secs_f64(2.0 * o.pairs as f64 / o.paced_rate as f64);
    let (_, paced, _, _) = relay_phase(
        port,
        pid,
        o,
        Pace::Every(per_message),
        o.seconds.min(5),
        "paced",
    )
    .await;

    for t in &idle_tasks {
        t.abort();
    }
    drop(server);
    Figures {
        rss_per_conn_kib,
        baseline_rss_mib: before as f64 / 1024.0,
        throughput,
        sat_p50_ms: sat.percentile(0.5),
        sat_p99_ms: sat.percentile(0.99),
        paced_p50_ms: paced.percentile(0.5),
        paced_p99_ms: paced.percentile(0.99),
        server_cpu,
        loadgen_cpu,
    }
}

fn main() {
    let o = options();
    raise_fd_limit();
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    println!("machine: {}", machine());
    if cores >= 2 {
        pin_to_cpu(1);
        println!("servers pinned to CPU 0, load generator (1 thread) pinned to CPU 1");
    } else {
        println!("warning: one CPU only; server and load generator share it");
    }
    println!(
        "load: {} idle connections (sessions of 10); {} relay pairs, window {} per direction, {} s; paced latency at {} msg/s",
        o.connections, o.pairs, o.window, o.seconds, o.paced_rate
    );
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let local = tokio::task::LocalSet::new();
    let mut results: HashMap<&'static str, Figures> = HashMap::new();
    local.block_on(&runtime, async {
        for kind in Kind::BOTH {
            let key = kind.key();
            if o.only.as_deref().is_some_and(|only| only != key) {
                continue;
            }
            results.insert(key, measure(kind, &o).await);
        }
    });

    println!();
    println!(
        "{:<28} {:>14} {:>14} {:>10}",
        "", "ours", "node socket.io", "ratio"
    );
    let row = |name: &str, f: &dyn Fn(&Figures) -> f64, better_low: bool| {
        let a = results.get("ours").map(f);
        let b = results.get("reference").map(f);
        let ratio = match (a, b) {
            (Some(a), Some(b)) if better_low => format!("{:.2}×", a / b),
            (Some(a), Some(b)) => format!("{:.2}×", a / b),
            _ => "-".into(),
        };
        let fmt = |v: Option<f64>| v.map(|v| format!("{v:.2}")).unwrap_or_else(|| "-".into());
        println!("{:<28} {:>14} {:>14} {:>10}", name, fmt(a), fmt(b), ratio);
    };
    row("RSS per idle conn (KiB)", &|f| f.rss_per_conn_kib, true);
    row("RSS at start (MiB)", &|f| f.baseline_rss_mib, true);
    row("relayed msgs/s", &|f| f.throughput, false);
    row("latency p50 paced (ms)", &|f| f.paced_p50_ms, true);
    row("latency p99 paced (ms)", &|f| f.paced_p99_ms, true);
    row("latency p50 saturated (ms)", &|f| f.sat_p50_ms, true);
    row("latency p99 saturated (ms)", &|f| f.sat_p99_ms, true);
    row("server CPU, saturated (%)", &|f| f.server_cpu * 100.0, true);
    row(
        "loadgen CPU, saturated (%)",
        &|f| f.loadgen_cpu * 100.0,
        true,
    );
    if let (Some(a), Some(b)) = (results.get("ours"), results.get("reference")) {
        println!();
        println!(
            "budget: throughput ≥ 3× node: {:.2}× {}; memory per idle connection ≤ ½ node: {:.2}× {}",
            a.throughput / b.throughput,
            if a.throughput >= 3.0 * b.throughput {
                "MET"
            } else {
                "NOT MET"
            },
            a.rss_per_conn_kib / b.rss_per_conn_kib,
            if a.rss_per_conn_kib <= 0.5 * b.rss_per_conn_kib {
                "MET"
            } else {
                "NOT MET"
            },
        );
        for (name, f) in [("ours", a), ("node", b)] {
            if f.server_cpu < 0.9 {
                println!(
                    "note: {name} server used {:.0} % of its core under saturation: the load generator may have limited it",
                    f.server_cpu * 100.0
                );
            }
        }
    }
}
