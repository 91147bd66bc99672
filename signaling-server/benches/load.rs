//! Load benchmark (issue 22's load points): our server against the same protocol on stock Node
//! socket.io (`tests/node/protocol-relay.mjs`), in one run.
//!
//! `cargo bench -p classroom-signaling --bench load -- [--joins N] [--join-seconds S]
//!  [--class-size C] [--chatters N] [--chat-seconds S] [--flood-seconds S] [--only ours|reference]`
//!
//! For each server, three phases, each on a server of its own:
//! - **joins**: N websocket clients (1000) connect and join classes of C (25), started at an
//!   even pace over S seconds (10); each join timed from the connection's start to the
//!   `join-session` ack (budget: p99 ≤ 500 ms), failures counted;
//! - **chat**: N sockets (5000) in classes of 10 each send a chat message once a second for S
//!   seconds (60); every member checks every other member's messages: none lost, none out of
//!   order (budget: none), and the delivery latency;
//! - **flood**: a class of 10, five pairs relaying `ice-candidate` at 50 messages a second per
//!   direction, while one member sends `media-state` events as fast as its socket takes them
//!   for S seconds (10); the relay latency during the flood (budget: p99 < 50 ms) beside the
//!   same class's before it, and what became of the flood.
//!
//! Both servers keep their per-socket event rate (100 a second, burst 400) and chat rate (2
//! a second); ours has the bounds on one address's connections and events off, since every load
//! connection comes from 127.0.0.1, and keeps its chat in a SQLite file, committed before each
//! ack, as a school's server does (the reference keeps it in memory).
//!
//! Fairness: each server runs pinned to CPU 0; this load generator pins itself to CPU 1 and runs
//! on one thread, speaking Engine.IO/Socket.IO v4 frames over tokio-tungstenite; its own CPU
//! use is printed beside the server's. Prints the figures, then one JSON line.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tokio::sync::Notify;
use tokio_tungstenite::tungstenite::Message;

mod support;
use support::servers::{self, Kind, ServerProcess};
use support::socketio::{Ws, idle, join, open};
use support::{
    cpu_seconds, flags, machine, own_cpu_seconds, percentile, pin_to_cpu, raise_fd_limit,
};

const JOIN_BUDGET_P99_MS: f64 = 500.0;
const FLOOD_BUDGET_P99_MS: f64 = 50.0;
/// Messages a second per direction of each relaying pair in the flood phase (the per-socket
/// limit is 100).
const PAIR_RATE: u64 = 50;

struct Options {
    joins: usize,
    join_seconds: f64,
    class_size: usize,
    chatters: usize,
    chat_seconds: u64,
    flood_seconds: u64,
    only: Option<String>,
}

fn options() -> Options {
    let mut o = Options {
        joins: 1000,
        join_seconds: 10.0,
        class_size: 25,
        chatters: 5000,
        chat_seconds: 60,
        flood_seconds: 10,
        only: None,
    };
    for (flag, value) in flags::pairs() {
        match flag.as_str() {
            "--joins" => o.joins = flags::number::<usize>(&flag, &value).max(1),
            "--join-seconds" => o.join_seconds = flags::number(&flag, &value),
            "--class-size" => o.class_size = flags::number::<usize>(&flag, &value).max(1),
            "--chatters" => o.chatters = flags::number::<usize>(&flag, &value).max(1),
            "--chat-seconds" => o.chat_seconds = flags::number(&flag, &value),
            "--flood-seconds" => o.flood_seconds = flags::number::<u64>(&flag, &value).max(1),
            "--only" => o.only = Some(value),
            other => flags::unknown(other),
        }
    }
    o
}

/// A server for one phase; ours keeps its chat in a fresh SQLite file in `dir`.
async fn start_server(kind: Kind, dir: &std::path::Path, phase: &str) -> ServerProcess {
    let mut args: Vec<String> = ["--max-participants", "100"]
        .into_iter()
        .map(String::from)
        .collect();
    if kind == Kind::Ours {
        args.extend(
            [
                "--max-connections-per-ip",
                "0",
                "--max-connections",
                "0",
                "--events-per-second-per-address",
                "0",
                "--database",
            ]
            .map(String::from),
        );
        args.push(dir.join(format!("{phase}.db")).display().to_string());
    }
    servers::start(kind, &args)
        .await
        .expect("the server starts")
}

fn ms(micros: f64) -> f64 {
    micros / 1000.0
}

struct Usage {
    server_cpu: f64,
    loadgen_cpu: f64,
}

/// CPU both sides used since `start`, as a fraction of one core.
struct Meter {
    pid: u32,
    server: f64,
    own: f64,
    at: Instant,
}

impl Meter {
    fn start(pid: u32) -> Self {
        Meter {
            pid,
            server: cpu_seconds(pid),
            own: own_cpu_seconds(),
            at: Instant::now(),
        }
    }

    fn read(&self) -> Usage {
        let elapsed = self.at.elapsed().as_secs_f64();
        Usage {
            server_cpu: (cpu_seconds(self.pid) - self.server) / elapsed,
            loadgen_cpu: (own_cpu_seconds() - self.own) / elapsed,
        }
    }
}

// ----- joins -----

struct JoinFigures {
    joined: usize,
    failed: usize,
    first_failure: Option<String>,
    p50_ms: f64,
    p99_ms: f64,
    max_ms: f64,
    took_s: f64,
    usage: Usage,
}

async fn joins(kind: Kind, dir: &std::path::Path, o: &Options) -> JoinFigures {
    let server = start_server(kind, dir, "joins").await;
    let port = server.port;
    let latencies: Rc<RefCell<Vec<u32>>> = Rc::default();
    let failures: Rc<RefCell<Vec<String>>> = Rc::default();
    let stop = Rc::new(Notify::new());
    let pace = Duration::from_secs_f64(o.join_seconds / o.joins as f64);
    let meter = Meter::start(server.pid);
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(o.joins);
    for i in 0..o.joins {
        // An even pace: the i-th join starts at i × pace, however long the others take.
        tokio::time::sleep_until((started + pace * i as u32).into()).await;
        let (latencies, failures, stop) = (latencies.clone(), failures.clone(), stop.clone());
        let session = format!("joins-{}", i / o.class_size);
        tasks.push(tokio::task::spawn_local(async move {
            let t0 = Instant::now();
            let user = format!("joiner-{i}");
            let joined = match open(port).await {
                Ok(mut ws) => join(&mut ws, &session, &user).await.map(|()| ws),
                Err(e) => Err(e),
            };
            match joined {
                Ok(ws) => {
                    latencies.borrow_mut().push(t0.elapsed().as_micros() as u32);
                    idle(ws, stop).await;
                }
                Err(e) => failures.borrow_mut().push(e),
            }
        }));
    }
    // Every join answered or failed (or 30 s more).
    let deadline = Instant::now() + Duration::from_secs(30);
    while latencies.borrow().len() + failures.borrow().len() < o.joins && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let took_s = started.elapsed().as_secs_f64();
    let usage = meter.read();
    stop.notify_waiters();
    for t in tasks {
        t.abort();
    }
    let mut samples = latencies.borrow().clone();
    let answered = samples.len() + failures.borrow().len();
    let failed = failures.borrow().len() + (o.joins - answered);
    JoinFigures {
        joined: samples.len(),
        failed,
        first_failure: failures.borrow().first().cloned(),
        p50_ms: ms(percentile(&mut samples, 0.5)),
        p99_ms: ms(percentile(&mut samples, 0.99)),
        max_ms: ms(percentile(&mut samples, 1.0)),
        took_s,
        usage,
    }
}

// ----- chat -----

/// What one member saw of each other member of its class.
struct Seen {
    /// The last sequence number received from each member (by index in the class), or -1.
    last: Vec<i64>,
    received: Vec<u64>,
    reordered: u64,
}

struct ChatRun {
    epoch: Instant,
    latencies: RefCell<Vec<u32>>,
    errors: Cell<u64>,
    first_error: RefCell<Option<String>>,
}

/// `chat:<member index>:<sequence>:<sent, µs since the epoch>`, from a `chat-message` event.
fn parse_chat(t: &str) -> Option<(usize, i64, u64)> {
    let at = t.find(r#""message":"chat:"#)? + r#""message":"chat:"#.len();
    let rest = &t[at..];
    let end = rest.find('"')?;
    let mut parts = rest[..end].split(':');
    let member = parts.next()?.parse().ok()?;
    let seq = parts.next()?.parse().ok()?;
    let sent = parts.next()?.parse().ok()?;
    Some((member, seq, sent))
}

/// When a member sends: a message a second from `first` until `end`.
#[derive(Clone, Copy)]
struct Schedule {
    first: Instant,
    end: Instant,
}

/// One member: sends on its schedule and checks what the others send.
async fn chatter(
    mut ws: Ws,
    me: usize,
    class_size: usize,
    schedule: Schedule,
    run: Rc<ChatRun>,
    sent: Rc<Cell<u64>>,
    seen: Rc<RefCell<Seen>>,
    stop: Rc<Notify>,
) {
    let mut ticker = tokio::time::interval_at(schedule.first.into(), Duration::from_secs(1));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut sending = true;
    loop {
        tokio::select! {
            _ = stop.notified() => break,
            _ = ticker.tick(), if sending => {
                if Instant::now() >= schedule.end {
                    sending = false;
                    continue;
                }
                let seq = sent.get();
                let stamp = run.epoch.elapsed().as_micros();
                let packet = format!(r#"42["chat-message",{{"message":"chat:{me}:{seq}:{stamp}"}}]"#);
                if ws.send(Message::text(packet)).await.is_err() { break; }
                sent.set(seq + 1);
            }
            m = ws.next() => match m {
                Some(Ok(Message::Text(t))) => {
                    let t = t.as_str();
                    if t == "2" {
                        if ws.send(Message::text("3")).await.is_err() { break; }
                    } else if t.starts_with(r#"42["chat-message""#) {
                        let Some((from, seq, stamp)) = parse_chat(t) else { continue };
                        if from == me || from >= class_size { continue; }
                        let mut seen = seen.borrow_mut();
                        if seq <= seen.last[from] {
                            seen.reordered += 1;
                        } else {
                            seen.last[from] = seq;
                        }
                        seen.received[from] += 1;
                        let now = run.epoch.elapsed().as_micros() as u64;
                        run.latencies.borrow_mut().push(now.saturating_sub(stamp) as u32);
                    } else if t.starts_with(r#"42["error""#) {
                        run.errors.set(run.errors.get() + 1);
                        run.first_error.borrow_mut().get_or_insert_with(|| t.to_owned());
                    }
                }
                Some(Ok(_)) => {}
                _ => break,
            }
        }
    }
    let _ = ws.close(None).await;
}

struct ChatFigures {
    members: usize,
    sent: u64,
    delivered: u64,
    lost: u64,
    reordered: u64,
    errors: u64,
    first_error: Option<String>,
    p50_ms: f64,
    p99_ms: f64,
    usage: Usage,
}

async fn chat(kind: Kind, dir: &std::path::Path, o: &Options) -> ChatFigures {
    const CLASS: usize = 10;
    let server = start_server(kind, dir, "chat").await;
    let run = Rc::new(ChatRun {
        epoch: Instant::now(),
        latencies: RefCell::new(Vec::with_capacity(1 << 22)),
        errors: Cell::new(0),
        first_error: RefCell::new(None),
    });
    let stop = Rc::new(Notify::new());
    let count = o.chatters.div_ceil(CLASS) * CLASS;
    // Everyone joins first (the join notices are read once they chat).
    let mut sockets = Vec::with_capacity(count);
    for n in 0..count {
        let mut ws = open(server.port).await.expect("socket.io connects");
        let (class, me) = (n / CLASS, n % CLASS);
        join(
            &mut ws,
            &format!("chat-{class}"),
            &format!("chatter-{class}-{me}"),
        )
        .await
        .expect("joined");
        sockets.push(ws);
    }
    let start = Instant::now() + Duration::from_secs(2);
    let end = start + Duration::from_secs(o.chat_seconds);
    let mut members = Vec::with_capacity(count); // (index in its class, sent, seen)
    let mut tasks = Vec::with_capacity(count);
    for (n, ws) in sockets.into_iter().enumerate() {
        let me = n % CLASS;
        let sent = Rc::new(Cell::new(0));
        let seen = Rc::new(RefCell::new(Seen {
            last: vec![-1; CLASS],
            received: vec![0; CLASS],
            reordered: 0,
        }));
        // Each member's second starts at its own place in it, spread evenly.
        let first = start + Duration::from_micros(n as u64 * 1_000_000 / count as u64);
        tasks.push(tokio::task::spawn_local(chatter(
            ws,
            me,
            CLASS,
            Schedule { first, end },
            run.clone(),
            sent.clone(),
            seen.clone(),
            stop.clone(),
        )));
        members.push((me, sent, seen));
    }
    tokio::time::sleep_until(start.into()).await;
    let meter = Meter::start(server.pid);
    tokio::time::sleep_until(end.into()).await;
    let usage = meter.read();
    // What is on its way arrives.
    tokio::time::sleep(Duration::from_secs(3)).await;
    stop.notify_waiters();
    for t in tasks {
        t.abort();
    }
    let (mut sent, mut delivered, mut lost, mut reordered) = (0, 0, 0, 0);
    for class in members.chunks(CLASS) {
        for (me, sent_by_me, seen_by_me) in class {
            sent += sent_by_me.get();
            reordered += seen_by_me.borrow().reordered;
            for (other, _, seen) in class {
                if other != me {
                    let got = seen.borrow().received[*me];
                    delivered += got;
                    lost += sent_by_me.get().saturating_sub(got);
                }
            }
        }
    }
    let mut latencies = std::mem::take(&mut *run.latencies.borrow_mut());
    ChatFigures {
        members: count,
        sent,
        delivered,
        lost,
        reordered,
        errors: run.errors.get(),
        first_error: run.first_error.borrow().clone(),
        p50_ms: ms(percentile(&mut latencies, 0.5)),
        p99_ms: ms(percentile(&mut latencies, 0.99)),
        usage,
    }
}

// ----- flood -----

struct RelayRun {
    epoch: Instant,
    measuring: Cell<bool>,
    latencies: RefCell<Vec<u32>>,
}

/// One end of a relaying pair: a candidate to `partner` every 1/PAIR_RATE s, stamped; what
/// the partner sends is timed while the run measures.
async fn relay_end(mut ws: Ws, partner: String, run: Rc<RelayRun>, stop: Rc<Notify>) {
    let mut ticker = tokio::time::interval(Duration::from_micros(1_000_000 / PAIR_RATE));
    loop {
        tokio::select! {
            _ = stop.notified() => break,
            _ = ticker.tick() => {
                let stamp = run.epoch.elapsed().as_micros();
                let packet = format!(
                    r#"42["ice-candidate",{{"targetUserId":"{partner}","candidate":{{"candidate":"candidate:1 1 udp 2122260223 127.0.0.1 50000 typ host","sdpMid":"{stamp}","sdpMLineIndex":0}}}}]"#
                );
                if ws.send(Message::text(packet)).await.is_err() { break; }
            }
            m = ws.next() => match m {
                Some(Ok(Message::Text(t))) => {
                    let t = t.as_str();
                    if t == "2" {
                        if ws.send(Message::text("3")).await.is_err() { break; }
                    } else if t.starts_with(r#"42["ice-candidate""#) && run.measuring.get() {
                        if let Some(sent) = stamp_of(t) {
                            let now = run.epoch.elapsed().as_micros() as u64;
                            run.latencies.borrow_mut().push(now.saturating_sub(sent) as u32);
                        }
                    }
                }
                Some(Ok(_)) => {}
                _ => break,
            }
        }
    }
    let _ = ws.close(None).await;
}

fn stamp_of(t: &str) -> Option<u64> {
    let at = t.find(r#""sdpMid":""#)? + r#""sdpMid":""#.len();
    let rest = &t[at..];
    rest[..rest.find('"')?].parse().ok()
}

/// What the flooder sent and heard back: events sent, `rate-limited` errors, and when the
/// server closed its connection, if it did.
struct Flooded {
    started: Instant,
    sent: Cell<u64>,
    refusals_told: Cell<u64>,
    refused_counted: Cell<u64>,
    closed_after: Cell<Option<Duration>>,
}

impl Flooded {
    /// The connection ended: its reading side saw the end, or a write failed.
    fn closed(&self) {
        if self.closed_after.get().is_none() {
            self.closed_after.set(Some(self.started.elapsed()));
        }
    }
}

/// `media-state` events, a thousand to a flush, as fast as the socket takes them, until told
/// to stop; reads what comes back meanwhile.
async fn flooder(ws: Ws, flooded: Rc<Flooded>, stop: Rc<Notify>) {
    let (mut tx, mut rx) = ws.split();
    let reading = {
        let flooded = flooded.clone();
        async move {
            while let Some(Ok(m)) = rx.next().await {
                if let Message::Text(t) = m {
                    let t = t.as_str();
                    if t.starts_with(r#"42["error""#) && t.contains("rate-limited") {
                        flooded.refusals_told.set(flooded.refusals_told.get() + 1);
                        // "… N event(s) refused …"
                        if let Some(n) = t
                            .split(" event(s) refused")
                            .next()
                            .and_then(|head| head.rsplit(|c: char| !c.is_ascii_digit()).next())
                            .and_then(|n| n.parse::<u64>().ok())
                        {
                            flooded
                                .refused_counted
                                .set(flooded.refused_counted.get() + n);
                        }
                    }
                }
            }
            flooded.closed();
        }
    };
    let sending = {
        let flooded = flooded.clone();
        async move {
            loop {
                for _ in 0..1000 {
                    if tx
                        .feed(Message::text(r#"42["media-state",{}]"#))
                        .await
                        .is_err()
                    {
                        return flooded.closed();
                    }
                }
                if tx.flush().await.is_err() {
                    return flooded.closed();
                }
                flooded.sent.set(flooded.sent.get() + 1000);
                // Let the relaying pairs' tasks run between batches: the load generator's
                // own thread must not be what delays them.
                tokio::task::yield_now().await;
            }
        }
    };
    tokio::select! {
        _ = stop.notified() => {}
        _ = reading => {}
        _ = sending => {}
    }
}

struct FloodFigures {
    before_p50_ms: f64,
    before_p99_ms: f64,
    during_p50_ms: f64,
    during_p99_ms: f64,
    relayed_during: usize,
    flood_sent: u64,
    flood_rate: f64,
    refusals_told: u64,
    refused_counted: u64,
    /// When the server closed the flooder's connection, from the flood's start.
    flooder_closed_after: Option<Duration>,
    usage: Usage,
}

async fn flood(kind: Kind, dir: &std::path::Path, o: &Options) -> FloodFigures {
    const PAIRS: usize = 5;
    let server = start_server(kind, dir, "flood").await;
    let run = Rc::new(RelayRun {
        epoch: Instant::now(),
        measuring: Cell::new(false),
        latencies: RefCell::new(Vec::new()),
    });
    let stop = Rc::new(Notify::new());
    let mut tasks = Vec::new();
    for i in 0..PAIRS {
        let (a, b) = (format!("relay-a{i}"), format!("relay-b{i}"));
        for (me, partner) in [(&a, &b), (&b, &a)] {
            let mut ws = open(server.port).await.expect("socket.io connects");
            join(&mut ws, "flooded", me).await.expect("joined");
            tasks.push(tokio::task::spawn_local(relay_end(
                ws,
                partner.clone(),
                run.clone(),
                stop.clone(),
            )));
        }
    }
    let mut ws = open(server.port).await.expect("socket.io connects");
    join(&mut ws, "flooded", "flooder").await.expect("joined");

    // The class without the flood, then with it, for as long.
    tokio::time::sleep(Duration::from_secs(1)).await;
    run.measuring.set(true);
    tokio::time::sleep(Duration::from_secs(o.flood_seconds)).await;
    let mut before = std::mem::take(&mut *run.latencies.borrow_mut());

    let flooded = Rc::new(Flooded {
        started: Instant::now(),
        sent: Cell::new(0),
        refusals_told: Cell::new(0),
        refused_counted: Cell::new(0),
        closed_after: Cell::new(None),
    });
    let stop_flood = Rc::new(Notify::new());
    let meter = Meter::start(server.pid);
    let flooding = tokio::task::spawn_local(flooder(ws, flooded.clone(), stop_flood.clone()));
    tokio::time::sleep(Duration::from_secs(o.flood_seconds)).await;
    run.measuring.set(false);
    let usage = meter.read();
    stop_flood.notify_waiters();
    let _ = flooding.await;
    stop.notify_waiters();
    for t in tasks {
        t.abort();
    }
    let mut during = std::mem::take(&mut *run.latencies.borrow_mut());
    FloodFigures {
        before_p50_ms: ms(percentile(&mut before, 0.5)),
        before_p99_ms: ms(percentile(&mut before, 0.99)),
        during_p50_ms: ms(percentile(&mut during, 0.5)),
        during_p99_ms: ms(percentile(&mut during, 0.99)),
        relayed_during: during.len(),
        flood_sent: flooded.sent.get(),
        // Over the time it could send.
        flood_rate: flooded.sent.get() as f64
            / flooded
                .closed_after
                .get()
                .unwrap_or(Duration::from_secs(o.flood_seconds))
                .as_secs_f64()
                .max(1e-3),
        refusals_told: flooded.refusals_told.get(),
        refused_counted: flooded.refused_counted.get(),
        flooder_closed_after: flooded.closed_after.get(),
        usage,
    }
}

struct Figures {
    joins: JoinFigures,
    chat: ChatFigures,
    flood: FloodFigures,
}

fn verdict(met: bool) -> &'static str {
    if met { "met" } else { "NOT MET" }
}

fn report(kind: Kind, f: &Figures, o: &Options) -> serde_json::Value {
    let j = &f.joins;
    println!("== {}", kind.name());
    println!(
        "joins: {} of {} in {:.1} s (paced over {} s, classes of {}): p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms; failed {}{}; server CPU {:.0} %, load generator {:.0} %",
        j.joined,
        o.joins,
        j.took_s,
        o.join_seconds,
        o.class_size,
        j.p50_ms,
        j.p99_ms,
        j.max_ms,
        j.failed,
        j.first_failure
            .as_deref()
            .map(|e| format!(" (first: {e})"))
            .unwrap_or_default(),
        j.usage.server_cpu * 100.0,
        j.usage.loadgen_cpu * 100.0,
    );
    let c = &f.chat;
    println!(
        "chat: {} members in classes of 10, {} s: sent {}, delivered {} of {} expected, lost {}, out of order {}, errors {}{}; latency p50 {:.2} ms, p99 {:.2} ms; server CPU {:.0} %, load generator {:.0} %",
        c.members,
        o.chat_seconds,
        c.sent,
        c.delivered,
        c.sent * 9,
        c.lost,
        c.reordered,
        c.errors,
        c.first_error
            .as_deref()
            .map(|e| format!(" (first: {e})"))
            .unwrap_or_default(),
        c.p50_ms,
        c.p99_ms,
        c.usage.server_cpu * 100.0,
        c.usage.loadgen_cpu * 100.0,
    );
    let fl = &f.flood;
    println!(
        "flood: relay latency before p50 {:.2} ms, p99 {:.2} ms; during p50 {:.2} ms, p99 {:.2} ms ({} relayed); flooder sent {} events ({:.0}/s), told of refusals {} times ({} counted){}; server CPU {:.0} %, load generator {:.0} %",
        fl.before_p50_ms,
        fl.before_p99_ms,
        fl.during_p50_ms,
        fl.during_p99_ms,
        fl.relayed_during,
        fl.flood_sent,
        fl.flood_rate,
        fl.refusals_told,
        fl.refused_counted,
        match fl.flooder_closed_after {
            Some(after) => format!(
                "; the server closed the flooder's connection after {} ms",
                after.as_millis()
            ),
            None => "; the flooder stayed connected".to_owned(),
        },
        fl.usage.server_cpu * 100.0,
        fl.usage.loadgen_cpu * 100.0,
    );
    println!(
        "budgets: join p99 ≤ {JOIN_BUDGET_P99_MS} ms {}; chat none lost or out of order {}; relay p99 under the flood < {FLOOD_BUDGET_P99_MS} ms {}",
        verdict(j.failed == 0 && j.p99_ms <= JOIN_BUDGET_P99_MS),
        verdict(c.lost == 0 && c.reordered == 0 && c.sent > 0),
        verdict(fl.relayed_during > 0 && fl.during_p99_ms < FLOOD_BUDGET_P99_MS),
    );
    serde_json::json!({
        "joins": { "joined": j.joined, "failed": j.failed, "p50_ms": j.p50_ms, "p99_ms": j.p99_ms, "max_ms": j.max_ms, "server_cpu": j.usage.server_cpu },
        "chat": { "members": c.members, "sent": c.sent, "delivered": c.delivered, "lost": c.lost, "reordered": c.reordered, "errors": c.errors, "p50_ms": c.p50_ms, "p99_ms": c.p99_ms, "server_cpu": c.usage.server_cpu },
        "flood": { "before_p99_ms": fl.before_p99_ms, "during_p50_ms": fl.during_p50_ms, "during_p99_ms": fl.during_p99_ms, "relayed": fl.relayed_during, "flood_per_s": fl.flood_rate, "flooder_closed_after_ms": fl.flooder_closed_after.map(|d| d.as_secs_f64() * 1e3), "server_cpu": fl.usage.server_cpu },
    })
}

fn main() {
    let o = options();
    raise_fd_limit();
    println!("machine: {}", machine());
    if std::thread::available_parallelism().map_or(1, |n| n.get()) >= 2 {
        pin_to_cpu(1);
        println!("servers pinned to CPU 0, load generator (1 thread) pinned to CPU 1");
    } else {
        println!("warning: one CPU only; server and load generator share it");
    }
    let dir = std::env::temp_dir().join(format!("classroom-load-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a temporary directory");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let local = tokio::task::LocalSet::new();
    let mut json = serde_json::Map::new();
    local.block_on(&runtime, async {
        for kind in Kind::BOTH {
            if o.only.as_deref().is_some_and(|only| only != kind.key()) {
                continue;
            }
            let figures = Figures {
                joins: joins(kind, &dir, &o).await,
                chat: chat(kind, &dir, &o).await,
                flood: flood(kind, &dir, &o).await,
            };
            json.insert(kind.key().into(), report(kind, &figures, &o));
        }
    });
    let _ = std::fs::remove_dir_all(&dir);
    println!("{}", serde_json::Value::Object(json));
}
