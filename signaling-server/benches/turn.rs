//! TURN relay benchmark: the server's own relay (`--turn`) against coturn (Debian's
//! `turnserver`), in one run, A B A B.
//!
//! `cargo bench -p classroom-signaling --bench turn -- [--seconds S] [--clients N]
//!  [--allocations A] [--rounds R] [--only ours|coturn]`
//!
//! For each relay it prints:
//! - relay throughput: N clients, each with an allocation and a channel to a peer socket of
//!   this process, send 1,200-byte channel-data packets as fast as this one thread can for S
//!   seconds; packets and Mbit/s that reached the peers, and packets per CPU-second of the
//!   relay (its efficiency per core, whichever side was the bottleneck);
//! - allocations per second (first, on the fresh relay): A allocations one after another (challenge, signed Allocate),
//!   each from its own socket and user;
//! - memory per allocation: the relay's RSS growth over those A allocations, / A.
//!
//! Fairness: each relay runs pinned to CPU 0 (`taskset -c 0`), this load generator on CPU 1,
//! one thread. Both relays have the same shared secret, realm, no bandwidth cap or quota, and
//! are allowed to relay to loopback peers (the load generator's).

use std::net::{SocketAddr, UdpSocket};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use hmac::{Hmac, Mac};
use rtc_stun::attributes::*;
use rtc_stun::integrity::MessageIntegrity;
use rtc_stun::message::*;
use rtc_stun::textattrs::TextAttribute;
use rtc_stun::xoraddr::XorMappedAddress;

mod support;
use support::{cpu_seconds, flags, pin_to_cpu, raise_fd_limit, rss_kib};

const SECRET: &str = "benchmark-shared-secret-0123456789abcdef";
const REALM: &str = "classroom";
const PAYLOAD: usize = 1200;

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Ours,
    Coturn,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Ours => "ours",
            Kind::Coturn => "coturn",
        }
    }
}

struct Options {
    seconds: f64,
    clients: usize,
    allocations: usize,
    rounds: usize,
    only: Option<String>,
}

fn options() -> Options {
    let mut o = Options {
        seconds: 5.0,
        clients: 8,
        allocations: 1000,
        rounds: 2,
        only: None,
    };
    for (flag, value) in flags::pairs() {
        match flag.as_str() {
            "--seconds" => o.seconds = flags::number(&flag, &value),
            "--clients" => o.clients = flags::number(&flag, &value),
            "--allocations" => o.allocations = flags::number(&flag, &value),
            "--rounds" => o.rounds = flags::number(&flag, &value),
            "--only" => o.only = Some(value),
            other => flags::unknown(other),
        }
    }
    o
}

struct Relay {
    child: Child,
    addr: SocketAddr,
}

impl Drop for Relay {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(kind: Kind, port: u16) -> Relay {
    let mut cmd = Command::new("taskset");
    cmd.args(["-c", "0"]);
    match kind {
        Kind::Ours => {
            cmd.arg(env!("CARGO_BIN_EXE_classroom-signaling"))
                .args(["serve", "--dev", "--listen", "127.0.0.1:0"])
                .args(["--turn", "--turn-port", &port.to_string()])
                .args(["--turn-secret", SECRET])
                .args(["--turn-allow-peer", "127.0.0.1/32"])
                .args(["--turn-max-bps", "0", "--turn-user-quota", "1000000"])
                .args(["--turn-total-quota", "1000000"])
                .env("CLASSROOM_LOG", "error");
        }
        Kind::Coturn => {
            cmd.arg("turnserver")
                .args(["-n", "--no-cli", "--no-tls", "--no-dtls", "--simple-log"])
                .args(["--log-file", "stdout", "--no-stdout-log"])
                .args(["--listening-ip", "127.0.0.1", "--relay-ip", "127.0.0.1"])
                .args(["--listening-port", &port.to_string()])
                .args(["--use-auth-secret", "--static-auth-secret", SECRET])
                .args(["--realm", REALM, "--allow-loopback-peers"])
                .args(["--user-quota", "0", "--total-quota", "0", "--max-bps", "0"]);
        }
    }
    let child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("{} starts: {e}", kind.name()));
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    // Ready once it answers a Binding request.
    let probe = UdpSocket::bind("127.0.0.1:0").unwrap();
    probe
        .set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut buf = [0u8; 1500];
    loop {
        let mut m = Message::new();
        m.typ = BINDING_REQUEST;
        m.transaction_id = TransactionId::new();
        m.write_header();
        let _ = probe.send_to(&m.raw, addr);
        if probe.recv_from(&mut buf).is_ok() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{} did not answer STUN",
            kind.name()
        );
    }
    Relay { child, addr }
}

fn rest_credentials(user: &str) -> (String, String) {
    let expiry = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 3600;
    let username = format!("{expiry}:{user}");
    let mut mac = Hmac::<sha1::Sha1>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(username.as_bytes());
    let password = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    (username, password)
}

/// One TURN client: its socket and long-term credentials.
struct Client {
    socket: UdpSocket,
    server: SocketAddr,
    username: String,
    password: String,
    nonce: String,
}

fn exchange(socket: &UdpSocket, server: SocketAddr, m: &Message) -> Message {
    let mut buf = [0u8; 1500];
    for _ in 0..20 {
        socket.send_to(&m.raw, server).unwrap();
        if let Ok((n, _)) = socket.recv_from(&mut buf) {
            let mut r = Message::new();
            r.raw = buf[..n].to_vec();
            if r.decode().is_ok() && r.transaction_id == m.transaction_id {
                return r;
            }
        }
    }
    panic!("no answer from {server}");
}

impl Client {
    fn request(&self, method: Method, attrs: &[(AttrType, Vec<u8>)]) -> Message {
        let mut m = Message::new();
        m.typ = MessageType::new(method, CLASS_REQUEST);
        m.transaction_id = TransactionId::new();
        m.write_header();
        for (t, v) in attrs {
            m.add(*t, v);
        }
        if !self.nonce.is_empty() {
            self.sign(&mut m);
        }
        m
    }

    /// Challenge, then a signed Allocate.
    fn allocate(server: SocketAddr, user: &str) -> Client {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        socket
            .set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let (username, password) = rest_credentials(user);
        let mut c = Client {
            socket,
            server,
            username,
            password,
            nonce: String::new(),
        };
        let transport = (ATTR_REQUESTED_TRANSPORT, vec![17, 0, 0, 0]);
        let r = exchange(
            &c.socket,
            server,
            &c.request(METHOD_ALLOCATE, &[transport.clone()]),
        );
        c.nonce = TextAttribute::get_from_as(&r, ATTR_NONCE)
            .expect("a challenge with a nonce")
            .text;
        let r = exchange(&c.socket, server, &c.request(METHOD_ALLOCATE, &[transport]));
        if r.typ.class != CLASS_SUCCESS_RESPONSE {
            let mut e = rtc_stun::error_code::ErrorCodeAttribute::default();
            let _ = e.get_from(&r);
            panic!("allocate for {user} refused: {e}");
        }
        c
    }

    fn bind_channel(&self, number: u16, peer: SocketAddr) {
        let mut m = Message::new();
        m.typ = MessageType::new(METHOD_CHANNEL_BIND, CLASS_REQUEST);
        m.transaction_id = TransactionId::new();
        m.write_header();
        // XOR'd with this request's transaction id.
        XorMappedAddress {
            ip: peer.ip(),
            port: peer.port(),
        }
        .add_to_as(&mut m, ATTR_XOR_PEER_ADDRESS)
        .unwrap();
        m.add(
            ATTR_CHANNEL_NUMBER,
            &[(number >> 8) as u8, number as u8, 0, 0],
        );
        self.sign(&mut m);
        let r = exchange(&self.socket, self.server, &m);
        assert_eq!(r.typ.class, CLASS_SUCCESS_RESPONSE, "channel bind failed");
    }

    fn sign(&self, m: &mut Message) {
        TextAttribute::new(ATTR_USERNAME, self.username.clone())
            .add_to(m)
            .unwrap();
        TextAttribute::new(ATTR_REALM, REALM.into())
            .add_to(m)
            .unwrap();
        TextAttribute::new(ATTR_NONCE, self.nonce.clone())
            .add_to(m)
            .unwrap();
        let provider = rtc_stun::crypto::default_provider().unwrap();
        MessageIntegrity::new_long_term_integrity_with_provider(
            self.username.clone(),
            REALM.into(),
            self.password.clone(),
            provider.crypto(),
        )
        .unwrap()
        .add_to(m)
        .unwrap();
    }
}

struct Figures {
    packets_per_second: f64,
    mbit_per_second: f64,
    packets_per_cpu_second: f64,
    relay_cpu: f64,
    offered_per_second: f64,
    allocations_per_second: f64,
    kib_per_allocation: f64,
}

fn run(kind: Kind, port: u16, o: &Options) -> Figures {
    let relay = start(kind, port);
    let pid = relay.child.id();
    // Allocations per second and memory per allocation, on the fresh relay.
    std::thread::sleep(Duration::from_millis(300));
    let rss0 = rss_kib(pid);
    let t = Instant::now();
    let mut held = Vec::with_capacity(o.allocations);
    for i in 0..o.allocations {
        held.push(Client::allocate(relay.addr, &format!("user{i}")));
    }
    let allocations_per_second = o.allocations as f64 / t.elapsed().as_secs_f64();
    std::thread::sleep(Duration::from_millis(300));
    let kib_per_allocation = (rss_kib(pid).saturating_sub(rss0)) as f64 / o.allocations as f64;
    // `held` stays open to the end: a later socket must not reuse one of its 5-tuples, whose
    // allocation is still alive.
    // Throughput.
    let mut clients = Vec::new();
    let mut peers = Vec::new();
    for i in 0..o.clients {
        let c = Client::allocate(relay.addr, &format!("load{i}"));
        let peer = UdpSocket::bind("127.0.0.1:0").unwrap();
        peer.set_nonblocking(true).unwrap();
        c.bind_channel(0x4000, peer.local_addr().unwrap());
        c.socket.set_nonblocking(true).unwrap();
        clients.push(c);
        peers.push(peer);
    }
    let mut packet = vec![0x40, 0x00, (PAYLOAD >> 8) as u8, PAYLOAD as u8];
    packet.extend(std::iter::repeat_n(0xab, PAYLOAD));
    let mut buf = vec![0u8; 2048];
    let warmup = Duration::from_millis(500);
    let total = warmup + Duration::from_secs_f64(o.seconds);
    let started = Instant::now();
    let (mut received, mut offered) = (0u64, 0u64);
    let mut cpu0 = None;
    while started.elapsed() < total {
        let measuring = started.elapsed() >= warmup;
        if measuring && cpu0.is_none() {
            cpu0 = Some((cpu_seconds(pid), Instant::now()));
            received = 0;
            offered = 0;
        }
        for c in &clients {
            for _ in 0..4 {
                if c.socket.send_to(&packet, relay.addr).is_ok() {
                    offered += 1;
                }
            }
        }
        for p in &peers {
            while let Ok((n, _)) = p.recv_from(&mut buf) {
                if n == PAYLOAD {
                    received += 1;
                }
            }
        }
    }
    let (cpu_start, t0) = cpu0.expect("measured");
    let secs = t0.elapsed().as_secs_f64();
    let relay_cpu = cpu_seconds(pid) - cpu_start;
    drop((clients, held));
    Figures {
        packets_per_second: received as f64 / secs,
        mbit_per_second: received as f64 * PAYLOAD as f64 * 8.0 / secs / 1e6,
        packets_per_cpu_second: received as f64 / relay_cpu.max(1e-9),
        relay_cpu: relay_cpu / secs,
        offered_per_second: offered as f64 / secs,
        allocations_per_second,
        kib_per_allocation,
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn main() {
    let o = options();
    raise_fd_limit();
    pin_to_cpu(1);
    println!(
        "TURN relay: {} clients × 1,200-byte channel data for {} s; {} allocations; relays on CPU 0, load generator on CPU 1",
        o.clients, o.seconds, o.allocations
    );
    let kinds: Vec<Kind> = [Kind::Ours, Kind::Coturn]
        .into_iter()
        .filter(|k| o.only.as_deref().is_none_or(|only| only == k.name()))
        .collect();
    let mut results: Vec<(Kind, Vec<Figures>)> = kinds.iter().map(|k| (*k, Vec::new())).collect();
    for round in 0..o.rounds {
        for (i, (kind, figures)) in results.iter_mut().enumerate() {
            let f = run(*kind, 34780 + (round * 10 + i) as u16, &o);
            println!(
                "round {} {:>6}: {:>8.0} packets/s ({:>6.1} Mbit/s) of {:>8.0} offered; relay CPU {:>4.0} %; {:>8.0} packets per CPU-second; {:>6.0} allocations/s; {:>5.2} KiB per allocation",
                round + 1,
                kind.name(),
                f.packets_per_second,
                f.mbit_per_second,
                f.offered_per_second,
                f.relay_cpu * 100.0,
                f.packets_per_cpu_second,
                f.allocations_per_second,
                f.kib_per_allocation
            );
            figures.push(f);
        }
    }
    let summary: Vec<(Kind, [f64; 5])> = results
        .iter()
        .map(|(k, f)| {
            let m = |g: fn(&Figures) -> f64| median(f.iter().map(g).collect());
            (
                *k,
                [
                    m(|f| f.packets_per_second),
                    m(|f| f.mbit_per_second),
                    m(|f| f.packets_per_cpu_second),
                    m(|f| f.allocations_per_second),
                    m(|f| f.kib_per_allocation),
                ],
            )
        })
        .collect();
    for (k, s) in &summary {
        println!(
            "median {:>6}: {:.0} packets/s, {:.1} Mbit/s, {:.0} packets per CPU-second, {:.0} allocations/s, {:.2} KiB per allocation",
            k.name(),
            s[0],
            s[1],
            s[2],
            s[3],
            s[4]
        );
    }
    let get = |k: Kind| summary.iter().find(|(x, _)| *x == k).map(|(_, s)| *s);
    let mut json = serde_json::json!({ "bench": "turn" });
    if let Some(s) = get(Kind::Ours) {
        json["ours"] = serde_json::json!({"packets_per_second": s[0], "mbit_per_second": s[1], "packets_per_cpu_second": s[2], "allocations_per_second": s[3], "kib_per_allocation": s[4]});
    }
    if let Some(s) = get(Kind::Coturn) {
        json["coturn"] = serde_json::json!({"packets_per_second": s[0], "mbit_per_second": s[1], "packets_per_cpu_second": s[2], "allocations_per_second": s[3], "kib_per_allocation": s[4]});
    }
    if let (Some(a), Some(b)) = (get(Kind::Ours), get(Kind::Coturn)) {
        let ratio = a[0] / b[0];
        let per_cpu = a[2] / b[2];
        println!(
            "ours / coturn: throughput {ratio:.2}×, per CPU-second {per_cpu:.2}× (budget ≥ 1×)"
        );
        json["throughput_ratio"] = ratio.into();
        json["per_cpu_ratio"] = per_cpu.into();
    }
    println!("{json}");
}
