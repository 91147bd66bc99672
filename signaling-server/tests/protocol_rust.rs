//! The protocol of `docs/protocol.md` driven with the Rust `rust_socketio` client (the one the
//! desktop app uses), against our server (in-process) and against the same protocol on stock
//! Node socket.io (`tests/node/protocol-relay.mjs`), over websocket only and over polling. The Node `socket.io-client` suite in `tests/node` covers the rest in depth.

use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use classroom_signaling::ServerConfig;
use classroom_signaling::auth::{Identity, TokenRules, issue_token};
use futures_util::FutureExt;
use parking_lot::Mutex;
use rust_socketio::asynchronous::{Client, ClientBuilder};
use rust_socketio::{Event, Payload, TransportType};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::Notify;

const SDP: &str = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n";
const WAIT: Duration = Duration::from_secs(5);

#[derive(Clone, Copy, Debug)]
enum Target {
    Ours,
    Reference,
}

/// A running server of either kind; stopped on drop.
struct Server {
    url: String,
    ours: Option<classroom_signaling::RunningServer>,
    node: Option<tokio::process::Child>,
}

impl Server {
    async fn start(target: Target) -> Server {
        match target {
            Target::Ours => {
                let mut config = ServerConfig {
                    listen: "127.0.0.1:0".parse().unwrap(),
                    dev_mode: true,
                    auto_create_sessions: true,
                    ping_interval: Duration::from_millis(400),
                    ping_timeout: Duration::from_millis(400),
                    ..Default::default()
                };
                config.limits.max_chat_chars = 500;
                Server::ours(config).await
            }
            Target::Reference => {
                let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/node");
                assert!(
                    dir.join("node_modules/socket.io").exists(),
                    "run `npm ci` in tests/node first (scripts/test.sh does)"
                );
                let mut child = tokio::process::Command::new("node")
                    .arg(dir.join("protocol-relay.mjs"))
                    .args([
                        "--port",
                        "0",
                        "--ping-interval-ms",
                        "400",
                        "--ping-timeout-ms",
                        "400",
                        "--max-chat-chars",
                        "500",
                    ])
                    .stdout(Stdio::piped())
                    .kill_on_drop(true)
                    .spawn()
                    .expect("node runs");
                let stdout = child.stdout.take().unwrap();
                let mut lines = BufReader::new(stdout).lines();
                let url = tokio::time::timeout(WAIT, async {
                    while let Some(line) = lines.next_line().await.unwrap() {
                        if let Some(url) = line.split("listening on ").nth(1) {
                            return url.to_owned();
                        }
                    }
                    panic!("reference server ended before listening");
                })
                .await
                .expect("reference server starts");
                Server {
                    url,
                    ours: None,
                    node: Some(child),
                }
            }
        }
    }

    async fn ours(config: ServerConfig) -> Server {
        let running = classroom_signaling::start(config)
            .await
            .expect("server starts");
        Server {
            url: running.url(),
            ours: Some(running),
            node: None,
        }
    }

    async fn stop(mut self) {
        if let Some(s) = self.ours.take() {
            s.shutdown().await.expect("clean shutdown");
        }
        if let Some(mut c) = self.node.take() {
            let _ = c.kill().await;
        }
    }
}

/// A `rust_socketio` client that records what it receives.
struct Peer {
    client: Client,
    events: Arc<Mutex<Vec<(String, Value)>>>,
    notify: Arc<Notify>,
    user_id: String,
}

fn event_name(e: &Event) -> String {
    match e {
        Event::Custom(s) => s.clone(),
        other => other.as_str().to_owned(),
    }
}

fn first_value(p: Payload) -> Value {
    match p {
        Payload::Text(mut v) if !v.is_empty() => v.remove(0),
        #[allow(deprecated)]
        Payload::String(s) => serde_json::from_str(&s).unwrap_or(Value::String(s)),
        _ => Value::Null,
    }
}

impl Peer {
    async fn connect(url: &str, transport: Transport, auth: Option<Value>) -> Peer {
        let events = Arc::new(Mutex::new(Vec::new()));
        let notify = Arc::new(Notify::new());
        let connected = Arc::new(Notify::new());
        let (ev, nt, cn) = (events.clone(), notify.clone(), connected.clone());
        let (ev_err, nt_err) = (events.clone(), notify.clone());
        let mut builder = ClientBuilder::new(url)
            .transport_type(transport.kind())
            .reconnect(false)
            .on(Event::Connect, move |_, _| {
                let cn = cn.clone();
                async move { cn.notify_one() }.boxed()
            })
            // rust_socketio delivers the server's `error` event (and its own errors, such as a
            // refused handshake) to the Error callback, not to on_any.
            .on(Event::Error, move |payload, _| {
                ev_err
                    .lock()
                    .push(("error".to_owned(), first_value(payload)));
                nt_err.notify_waiters();
                async {}.boxed()
            })
            .on_any(move |event, payload, _| {
                ev.lock().push((event_name(&event), first_value(payload)));
                nt.notify_waiters();
                async {}.boxed()
            });
        if let Some(auth) = auth {
            builder = builder.auth(auth);
        }
        let client = builder.connect().await.expect("connects");
        // rust_socketio returns before the namespace CONNECT is acknowledged; emitting earlier
        // loses the event against a strict server.
        let _ = tokio::time::timeout(WAIT, connected.notified()).await;
        Peer {
            client,
            events,
            notify,
            user_id: String::new(),
        }
    }

    /// Emits with an ack and returns the ack payload.
    async fn request(&self, event: &str, data: Value) -> Value {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let tx = Arc::new(Mutex::new(Some(tx)));
        self.client
            .emit_with_ack(event, data, WAIT, move |payload, _| {
                if let Some(tx) = tx.lock().take() {
                    let _ = tx.send(first_value(payload));
                }
                async {}.boxed()
            })
            .await
            .expect("emit");
        let value = tokio::time::timeout(WAIT, rx)
            .await
            .expect("ack in time")
            .expect("ack");
        // rust_socketio wraps ack arguments in one more array.
        match value {
            Value::Array(mut v) if v.len() == 1 => v.remove(0),
            v => v,
        }
    }

    async fn emit(&self, event: &str, data: Value) {
        self.client.emit(event, data).await.expect("emit");
    }

    async fn join(&mut self, session: &str, user: &str, name: &str) -> Value {
        let ack = self.request("join-session", json!({"sessionId": session, "userId": user, "userName": name, "isInstructor": false})).await;
        assert_eq!(ack["ok"], true, "join refused: {ack}");
        self.user_id = ack["self"]["userId"].as_str().unwrap().to_owned();
        ack
    }

    fn received(&self, event: &str) -> Vec<Value> {
        self.events
            .lock()
            .iter()
            .filter(|(e, _)| e == event)
            .map(|(_, v)| v.clone())
            .collect()
    }

    async fn wait_for(&self, event: &str, pred: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + WAIT;
        loop {
            let notified = self.notify.notified();
            if let Some(v) = self
                .events
                .lock()
                .iter()
                .find(|(e, v)| e == event && pred(v))
            {
                return v.1.clone();
            }
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "no {event} within {WAIT:?}; got {:?}",
                self.events.lock()
            );
            let _ = tokio::time::timeout(left, notified).await;
        }
    }

    async fn close(self) {
        let _ = self.client.disconnect().await;
    }
}

fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::new_v4())
}

/// The transports under test (`rust_socketio`'s `TransportType` is not `Copy`).
#[derive(Clone, Copy, Debug)]
enum Transport {
    Websocket,
    Polling,
}

impl Transport {
    fn kind(self) -> TransportType {
        match self {
            Transport::Websocket => TransportType::Websocket,
            Transport::Polling => TransportType::Polling,
        }
    }
}

const TRANSPORTS: [Transport; 2] = [Transport::Websocket, Transport::Polling];
const TARGETS: [Target; 2] = [Target::Ours, Target::Reference];

async fn roster_and_relay(target: Target, transport: Transport) {
    let server = Server::start(target).await;
    let session = unique("class");
    let mut a = Peer::connect(&server.url, transport, None).await;
    let mut b = Peer::connect(&server.url, transport, None).await;
    let mut c = Peer::connect(&server.url, transport, None).await;
    a.join(&session, "ada", "Ada").await;
    let b_ack = b.join(&session, "bob", "Bob").await;
    assert_eq!(b_ack["participants"][0]["userId"], "ada", "{target:?}");
    let joined = a.wait_for("user-joined", |p| p["userId"] == "bob").await;
    assert_eq!(joined["userName"], "Bob");
    c.join(&session, "cy", "Cy").await;

    let ack = a
        .request("offer", json!({"targetUserId": "bob", "fromUserId": "mallory", "offer": {"type": "offer", "sdp": SDP}}))
        .await;
    assert_eq!(ack["ok"], true, "{ack}");
    let offer = b.wait_for("offer", |_| true).await;
    assert_eq!(
        offer,
        json!({"fromUserId": "ada", "fromUserName": "Ada", "offer": {"type": "offer", "sdp": SDP}})
    );
    b.emit(
        "answer",
        json!({"targetUserId": "ada", "answer": {"type": "answer", "sdp": SDP}}),
    )
    .await;
    assert_eq!(a.wait_for("answer", |_| true).await["fromUserId"], "bob");
    let cand = json!({"candidate": "candidate:1 1 udp 2122260223 127.0.0.1 5000 typ host", "sdpMid": "0", "sdpMLineIndex": 0});
    a.emit(
        "ice-candidate",
        json!({"targetUserId": "bob", "candidate": cand}),
    )
    .await;
    assert_eq!(
        b.wait_for("ice-candidate", |_| true).await["candidate"],
        cand
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        c.received("offer").is_empty() && c.received("ice-candidate").is_empty(),
        "relay leaked to a bystander"
    );
    for p in [a, b, c] {
        p.close().await;
    }
    server.stop().await;
}

async fn chat_history_and_leaving(target: Target, transport: Transport) {
    let server = Server::start(target).await;
    let session = unique("class");
    let mut a = Peer::connect(&server.url, transport, None).await;
    let mut b = Peer::connect(&server.url, transport, None).await;
    a.join(&session, "ada", "Ada").await;
    b.join(&session, "bob", "Bob").await;
    let ack = a
        .request("chat-message", json!({"message": "hello class"}))
        .await;
    assert_eq!(ack["ok"], true);
    let m = b.wait_for("chat-message", |m| m["type"] == "user").await;
    assert_eq!(
        (m["userId"].as_str(), m["message"].as_str()),
        (Some("ada"), Some("hello class"))
    );
    a.wait_for("chat-message", |m| m["type"] == "user").await;

    let mut late = Peer::connect(&server.url, transport, None).await;
    let late_ack = late.join(&session, "cy", "Cy").await;
    let texts: Vec<_> = late_ack["chatHistory"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["type"] == "user")
        .map(|m| m["message"].clone())
        .collect();
    assert_eq!(texts, [json!("hello class")]);

    let left = late.request("leave-session", json!({})).await;
    assert_eq!(left["ok"], true);
    let l = a.wait_for("user-left", |l| l["userId"] == "cy").await;
    assert_eq!(l["reason"], "left");

    b.close().await;
    let l = a.wait_for("user-left", |l| l["userId"] == "bob").await;
    assert_eq!(l["reason"], "disconnected");
    a.close().await;
    late.close().await;
    server.stop().await;
}

async fn refusals(target: Target, transport: Transport) {
    let server = Server::start(target).await;
    let mut a = Peer::connect(&server.url, transport, None).await;
    let code = |v: &Value| v["error"]["code"].as_str().unwrap_or("<none>").to_owned();
    assert_eq!(
        code(&a.request("chat-message", json!({"message": "hi"})).await),
        "not-joined"
    );
    assert_eq!(
        code(&a.request("join-session", json!({"sessionId": 7})).await),
        "invalid-payload"
    );
    a.join(&unique("class"), "ada", "Ada").await;
    assert_eq!(
        code(
            &a.request(
                "offer",
                json!({"targetUserId": "nobody", "offer": {"type": "offer", "sdp": SDP}})
            )
            .await
        ),
        "target-not-found"
    );
    assert_eq!(
        code(
            &a.request(
                "offer",
                json!({"targetUserId": "x", "offer": {"type": "offer", "sdp": "not sdp"}})
            )
            .await
        ),
        "invalid-payload"
    );
    assert_eq!(
        code(
            &a.request("chat-message", json!({"message": "x".repeat(501)}))
                .await
        ),
        "payload-too-large"
    );
    assert_eq!(
        code(&a.request("no-such-event", json!({})).await),
        "unknown-event"
    );
    let err = a.wait_for("error", |e| e["code"] == "unknown-event").await;
    assert_eq!(err["event"], "no-such-event");
    assert_eq!(
        a.request("chat-message", json!({"message": "still served"}))
            .await["ok"],
        true
    );
    a.close().await;
    server.stop().await;
}

/// An SDP offer of 48 KiB (a class's SFU offer with many m-lines is this size) reaches its
/// target whole. Over long polling such a body arrives in several chunks, and
/// `rust_engineio` as published parsed each chunk as a payload of its own: the packet cut in
/// two was unparseable and the client dropped its connection (`vendor/rust_engineio`).
async fn a_large_offer(target: Target, transport: Transport) {
    let server = Server::start(target).await;
    let session = unique("class");
    let mut a = Peer::connect(&server.url, transport, None).await;
    let mut b = Peer::connect(&server.url, transport, None).await;
    a.join(&session, "ada", "Ada").await;
    b.join(&session, "bob", "Bob").await;
    let mut sdp = SDP.to_owned();
    let mut line = 0;
    while sdp.len() < 48 * 1024 {
        sdp.push_str(&format!(
            "a=x-filler:{line} {}\r\n",
            "é0123456789".repeat(6)
        ));
        line += 1;
    }
    let ack = a
        .request(
            "offer",
            json!({"targetUserId": "bob", "offer": {"type": "offer", "sdp": sdp}}),
        )
        .await;
    assert_eq!(ack["ok"], true, "{target:?} {ack}");
    let offer = b.wait_for("offer", |_| true).await;
    assert_eq!(
        offer["offer"]["sdp"].as_str().map(str::len),
        Some(sdp.len()),
        "{target:?}"
    );
    assert_eq!(offer["offer"]["sdp"], sdp.as_str(), "{target:?}");
    // And the connection is still there.
    assert_eq!(
        b.request("chat-message", json!({"message": "still here"}))
            .await["ok"],
        true,
        "{target:?}"
    );
    for p in [a, b] {
        p.close().await;
    }
    server.stop().await;
}

/// The user ids of a `hand-queue`, in its order.
fn hands(queue: &Value) -> Vec<String> {
    queue["hands"]
        .as_array()
        .map(|hands| {
            hands
                .iter()
                .filter_map(|h| h["userId"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// The classroom controls with the desktop's own client (ours only: the browser version's
/// relay has none): every instructor action is `forbidden` to a student and changes nothing; a
/// mute reaches its student; a lock holds against a client that ignores the UI; 20 hands raised
/// at once queue in the server's order, each queue the instructor is sent one raise longer
/// than the one before; 20 votes at once are counted once each.
async fn controls(transport: Transport) {
    let server = Server::start(Target::Ours).await;
    let session = unique("class");
    let teacher = Peer::connect(&server.url, transport, None).await;
    let ack = teacher
        .request("join-session", json!({"sessionId": session, "userId": "teacher", "userName": "Teacher", "isInstructor": true}))
        .await;
    assert_eq!(
        ack["self"]["isInstructor"], true,
        "the first joiner instructs: {ack}"
    );
    let mut students = Vec::new();
    for i in 0..20 {
        let mut s = Peer::connect(&server.url, transport, None).await;
        s.join(&session, &format!("s{i}"), &format!("Student {i}"))
            .await;
        students.push(s);
    }
    let code = |v: &Value| v["error"]["code"].as_str().unwrap_or("<none>").to_owned();
    let (a, b) = (&students[0], &students[1]);

    for action in [
        json!({"action": "mute", "targetUserId": "s1"}),
        json!({"action": "mute-all"}),
        json!({"action": "stop-camera", "targetUserId": "s1"}),
        json!({"action": "remove", "targetUserId": "s1", "bar": true}),
        json!({"action": "set-locked", "locked": true}),
        json!({"action": "set-locks", "locks": {"microphone": true}}),
        json!({"action": "grant-co-instructor", "targetUserId": "s0"}),
        json!({"action": "lower-all-hands"}),
        json!({"action": "open-poll", "poll": {"question": "Q?", "kind": "yes-no"}}),
        json!({"action": "end-class"}),
    ] {
        let ack = a.request("moderate", action.clone()).await;
        assert_eq!(code(&ack), "forbidden", "{transport:?} {action}");
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(b.received("moderated").is_empty() && b.received("removed").is_empty());

    let ack = teacher
        .request("moderate", json!({"action": "mute", "targetUserId": "s1"}))
        .await;
    assert_eq!(ack["ok"], true, "{ack}");
    let told = b.wait_for("moderated", |_| true).await;
    assert_eq!(
        (told["action"].as_str(), told["byUserId"].as_str()),
        (Some("mute"), Some("teacher"))
    );

    let ack = teacher
        .request(
            "moderate",
            json!({"action": "set-locks", "locks": {"microphone": true}}),
        )
        .await;
    assert_eq!(ack["ok"], true, "{ack}");
    a.wait_for("class-settings", |s| s["locks"]["microphone"] == true)
        .await;
    let ack = a
        .request("media-state", json!({"audioEnabled": true}))
        .await;
    assert_eq!(
        code(&ack),
        "forbidden",
        "a locked microphone stays off: {ack}"
    );
    let ack = teacher
        .request("moderate", json!({"action": "set-locks", "locks": {}}))
        .await;
    assert_eq!(ack["ok"], true, "{ack}");

    let raised = futures_util::future::join_all(
        students
            .iter()
            .map(|s| s.request("media-state", json!({"handRaised": true}))),
    )
    .await;
    assert!(raised.iter().all(|ack| ack["ok"] == true), "{raised:?}");
    let queue = teacher
        .wait_for("hand-queue", |q| hands(q).len() == 20)
        .await;
    let order = hands(&queue);
    assert_eq!(
        order
            .iter()
            .collect::<std::collections::BTreeSet<_>>()
            .len(),
        20
    );
    for (i, update) in teacher.received("hand-queue").iter().enumerate() {
        assert_eq!(hands(update), order[..=i], "{transport:?}: queue {i}");
    }

    let ack = teacher
        .request("moderate", json!({"action": "open-poll", "poll": {"question": "Largest planet?", "kind": "single", "options": ["Mars", "Jupiter", "Venus"]}}))
        .await;
    assert_eq!(ack["ok"], true, "{ack}");
    let poll = a.wait_for("poll-opened", |_| true).await;
    let voted = futures_util::future::join_all(students.iter().enumerate().map(|(i, s)| {
        s.request(
            "vote",
            json!({"pollId": poll["pollId"], "choices": [i % 3]}),
        )
    }))
    .await;
    assert!(voted.iter().all(|ack| ack["ok"] == true), "{voted:?}");
    let results = teacher
        .wait_for("poll-results", |r| r["voters"] == 20)
        .await;
    assert_eq!(results["totals"], json!([7, 7, 6]), "{results}");

    teacher.close().await;
    for s in students {
        s.close().await;
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn classroom_controls_are_the_instructors_and_hold_against_students() {
    for transport in TRANSPORTS {
        controls(transport).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_offer_larger_than_a_polling_chunk_arrives_whole() {
    for target in TARGETS {
        for transport in TRANSPORTS {
            a_large_offer(target, transport).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn roster_and_relay_reach_only_the_target() {
    for target in TARGETS {
        for transport in TRANSPORTS {
            roster_and_relay(target, transport).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_history_and_leaving_reach_everyone() {
    for target in TARGETS {
        for transport in TRANSPORTS {
            chat_history_and_leaving(target, transport).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_are_clear_and_the_client_stays_served() {
    for target in TARGETS {
        for transport in TRANSPORTS {
            refusals(target, transport).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_decide_identity_and_forgeries_are_refused() {
    let dir = std::env::temp_dir().join(unique("classroom-rust-auth"));
    let database = dir.join("roster.sqlite3");
    {
        let store = classroom_signaling::store::Store::open(Some(&database)).unwrap();
        store.create_class("physics", "Physics").unwrap();
        store
            .enroll("physics", "stu1", classroom_wire::Role::Student)
            .unwrap();
    }
    let config = ServerConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        jwt_secret: Some("rust-suite-secret-of-32-bytes-or-more".into()),
        database: Some(database.clone()),
        ..Default::default()
    };
    let server = Server::ours(config).await;
    let student = Identity {
        user_id: "stu1".into(),
        user_name: "Student One".into(),
        role: classroom_wire::Role::Student,
    };

    let token = issue_token(
        "rust-suite-secret-of-32-bytes-or-more",
        &student,
        Duration::from_secs(60),
        &TokenRules::default(),
    )
    .unwrap();
    let mut ok = Peer::connect(
        &server.url,
        Transport::Websocket,
        Some(json!({"token": token})),
    )
    .await;
    let ack = ok
        .request(
            "join-session",
            json!({"sessionId": "physics", "userId": "mallory", "userName": "M"}),
        )
        .await;
    assert_eq!(ack["ok"], true, "{ack}");
    assert_eq!(ack["self"]["userId"], "stu1");
    ok.user_id = "stu1".into();

    let forged = issue_token(
        "not-the-secret-but-32-bytes-long-too",
        &student,
        Duration::from_secs(60),
        &TokenRules::default(),
    )
    .unwrap();
    let bad = Peer::connect(
        &server.url,
        Transport::Websocket,
        Some(json!({"token": forged})),
    )
    .await;
    let err = bad.wait_for("error", |_| true).await;
    assert!(err.to_string().contains("unauthorized"), "{err}");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(bad.received("session-joined").is_empty());
    ok.close().await;
    bad.close().await;
    server.stop().await;
    std::fs::remove_dir_all(dir).ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_history_survives_a_server_restart() {
    let dir = std::env::temp_dir().join(unique("classroom-rust-restart"));
    let config = ServerConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        dev_mode: true,
        auto_create_sessions: true,
        database: Some(dir.join("db.sqlite3")),
        ..Default::default()
    };
    let session = unique("class");

    let server = Server::ours(config.clone()).await;
    let mut a = Peer::connect(&server.url, Transport::Websocket, None).await;
    a.join(&session, "ada", "Ada").await;
    for text in ["one", "two"] {
        assert_eq!(
            a.request("chat-message", json!({"message": text})).await["ok"],
            true
        );
    }
    server.stop().await;
    a.close().await;

    let server = Server::ours(config).await;
    let mut b = Peer::connect(&server.url, Transport::Websocket, None).await;
    let ack = b.join(&session, "bob", "Bob").await;
    let texts: Vec<_> = ack["chatHistory"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["type"] == "user")
        .map(|m| m["message"].clone())
        .collect();
    assert_eq!(texts, [json!("one"), json!("two")]);
    b.close().await;
    server.stop().await;
    std::fs::remove_dir_all(dir).ok();
}

type RawWs =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// The next text frame on a raw Engine.IO websocket.
async fn text(ws: &mut RawWs) -> String {
    use futures_util::StreamExt;
    use tokio_tungstenite::tungstenite::Message;
    loop {
        match ws.next().await {
            Some(Ok(Message::Text(t))) => return t.to_string(),
            Some(Ok(_)) => continue,
            other => panic!("the flooder's connection ended before the flood: {other:?}"),
        }
    }
}

/// What a flooding websocket client saw.
struct Flood {
    sent: u64,
    /// The `error` that says the connection is closed for flooding.
    told: bool,
    /// From the first flooded event until the server closed the connection.
    closed_after: Option<Duration>,
}

/// Joins `session` on a raw Engine.IO websocket (no client library: nothing between the test
/// and the socket slows the flood), then sends `media-state` events, a thousand to a flush, as
/// fast as the connection takes them, for at most `limit`; reads what comes back meanwhile.
async fn flood(url: String, session: String, limit: Duration) -> Flood {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    let url = format!(
        "{}/socket.io/?EIO=4&transport=websocket",
        url.replacen("http", "ws", 1)
    );
    let (mut ws, _) = tokio_tungstenite::connect_async(url)
        .await
        .expect("websocket");
    assert!(text(&mut ws).await.starts_with('0'), "Engine.IO open");
    ws.send(Message::text("40")).await.expect("namespace");
    assert!(text(&mut ws).await.starts_with("40"), "namespace connected");
    let join = json!(["join-session", {"sessionId": session, "userId": "flooder", "userName": "Flooder", "isInstructor": false}]);
    ws.send(Message::text(format!("421{join}")))
        .await
        .expect("join");
    while !text(&mut ws).await.starts_with("431") {}

    let (mut tx, mut rx) = ws.split();
    let started = Instant::now();
    let reading = async {
        let mut told = false;
        while let Some(Ok(m)) = rx.next().await {
            if let Message::Text(t) = m {
                told |= t.starts_with(r#"42["error""#)
                    && t.contains("rate-limited")
                    && t.contains("this connection is closed");
            }
        }
        (told, started.elapsed())
    };
    let mut sent = 0;
    let sending = async {
        while started.elapsed() < limit {
            for _ in 0..1000 {
                if tx
                    .feed(Message::text(r#"42["media-state",{}]"#))
                    .await
                    .is_err()
                {
                    return;
                }
            }
            if tx.flush().await.is_err() {
                return;
            }
            sent += 1000;
        }
    };
    tokio::pin!(reading);
    let ended = tokio::select! {
        ended = &mut reading => Some(ended),
        _ = sending => tokio::time::timeout(limit.saturating_sub(started.elapsed()), reading).await.ok(),
    };
    Flood {
        sent,
        told: ended.is_some_and(|(told, _)| told),
        closed_after: ended.map(|(_, after)| after),
    }
}

/// Issue 22: a websocket client that sends events as fast as its connection takes them is told
/// and cut off within moments: the server drops the flood's events before any task is spawned
/// for them, so they cannot queue up ahead of everyone else's; meanwhile two others in its
/// class relay offers to each other, every one delivered. (Before the fix, at 360,000 events a
/// second, the flooder was still connected 3 s on and the class's relay waited behind it.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_websocket_flood_is_cut_off_and_the_class_stays_served() {
    // The default heartbeat (25 s): the flooder answers no ping, and a test heartbeat would
    // close it whatever the flood guard does.
    let server = Server::ours(ServerConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        dev_mode: true,
        auto_create_sessions: true,
        ..Default::default()
    })
    .await;
    let session = unique("flooded");
    let mut ada = Peer::connect(&server.url, Transport::Websocket, None).await;
    let mut bob = Peer::connect(&server.url, Transport::Websocket, None).await;
    ada.join(&session, "ada", "Ada").await;
    bob.join(&session, "bob", "Bob").await;

    // The flooder on a thread and runtime of its own: it does not take the server's workers.
    let limit = Duration::from_secs(5);
    let (url, flooded) = (server.url.clone(), session.clone());
    let flooder = std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime")
            .block_on(flood(url, flooded, limit))
    });

    // The class during the flood: offers from ada to bob, each acknowledged and delivered.
    let mut slowest = Duration::ZERO;
    for i in 0..20 {
        let sent = Instant::now();
        let sdp = format!("{SDP}a=flood-probe:{i}\r\n");
        let ack = ada
            .request(
                "offer",
                json!({"targetUserId": "bob", "offer": {"type": "offer", "sdp": sdp}}),
            )
            .await;
        assert_eq!(ack["ok"], true, "offer {i} during the flood: {ack}");
        bob.wait_for("offer", |o| o["offer"]["sdp"] == sdp.as_str())
            .await;
        slowest = slowest.max(sent.elapsed());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let flood = tokio::task::spawn_blocking(move || flooder.join())
        .await
        .expect("joined")
        .expect("the flooder ran");
    println!(
        "flood: {} events sent, told {}, closed after {:?}; the class's slowest offer {slowest:?}",
        flood.sent, flood.told, flood.closed_after
    );
    assert!(
        flood.sent >= 10_000,
        "the flooder sent only {} events: not a flood",
        flood.sent
    );
    assert!(flood.told, "the flooder was not told why it was cut off");
    assert!(
        flood.closed_after.is_some(),
        "the flooder was still connected after {limit:?} of flooding"
    );
    for p in [ada, bob] {
        p.close().await;
    }
    server.stop().await;
}
