//! Our server's side of the benchmark: `classroom-signaling --sfu always` pinned to CPU 0, and
//! each load-tester peer's signaling as the app's: a Socket.IO connection (Engine.IO v4 frames
//! over a websocket, no client library), `join-session` with the `sfu` capability, then
//! `sfu-offer`/`sfu-answer` (docs/protocol.md, "The SFU").

use std::process::Stdio;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;

use crate::peer::{Local, Remote};
use crate::support::socketio::{Ws, listening_port, next_text, open};

pub struct Server {
    /// Killed on drop.
    _child: tokio::process::Child,
    pub pid: u32,
    port: u16,
}

/// Starts the server on CPU 0, its SFU on `media_port`, every limit that would stop one
/// address's thousand connections lifted.
pub async fn start(media_port: u16) -> Server {
    let mut cmd = tokio::process::Command::new("taskset");
    cmd.args(["-c", "0"])
        .arg(env!("CARGO_BIN_EXE_classroom-signaling"))
        .args(["serve", "--dev", "--listen", "127.0.0.1:0"])
        .args(["--sfu", "always", "--media-port", &media_port.to_string()])
        .args(["--media-address", &crate::lab::ADDRESS.to_string()])
        .args([
            "--events-per-second",
            "1000000000",
            "--event-burst",
            "1000000000",
        ])
        .args(["--max-participants", "5000"])
        .args(["--max-connections-per-ip", "0", "--max-connections", "0"])
        .args(["--events-per-second-per-address", "0"])
        .env(
            "CLASSROOM_LOG",
            std::env::var("CLASSROOM_BENCH_SERVER_LOG").unwrap_or_else(|_| "warn".into()),
        );
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("classroom-signaling starts");
    let pid = child.id().expect("pid");
    let port = listening_port(&mut child)
        .await
        .expect("the server printed its address");
    Server {
        _child: child,
        pid,
        port,
    }
}

impl Server {
    /// Joins `user` to the class and carries its peer's descriptions until either side ends.
    pub async fn signal(
        &self,
        user: &str,
        from_peer: mpsc::UnboundedReceiver<Local>,
        to_peer: mpsc::UnboundedSender<Remote>,
    ) -> Result<(), String> {
        let mut ws = open(self.port).await?;
        let join = json!(["join-session", {
            "sessionId": "sfu-bench", "userId": user, "userName": user,
            "isInstructor": false, "capabilities": ["sfu"],
        }]);
        ws.send(Message::text(format!("421{join}")))
            .await
            .map_err(|e| e.to_string())?;
        loop {
            let t = next_text(&mut ws).await?;
            if let Some(ack) = t.strip_prefix("431") {
                if !ack.contains(r#""ok":true"#) {
                    return Err(format!("join refused: {ack}"));
                }
                break;
            }
        }
        tokio::task::spawn_local(carry(ws, from_peer, to_peer));
        Ok(())
    }
}

async fn carry(
    mut ws: Ws,
    mut from_peer: mpsc::UnboundedReceiver<Local>,
    to_peer: mpsc::UnboundedSender<Remote>,
) {
    let mut ack = 10u64;
    loop {
        tokio::select! {
            local = from_peer.recv() => {
                let Some(local) = local else { break };
                let event = match local {
                    Local::Offer { sdp, camera } => {
                        let sources: Vec<Value> = camera
                            .map(|mid| json!({ "mid": mid.to_string(), "source": "camera", "height": 720 }))
                            .into_iter()
                            .collect();
                        json!(["sfu-offer", { "description": { "type": "offer", "sdp": sdp }, "sources": sources }])
                    }
                    Local::Answer(sdp) => {
                        json!(["sfu-answer", { "description": { "type": "answer", "sdp": sdp } }])
                    }
                };
                ack += 1;
                if ws.send(Message::text(format!("42{ack}{event}"))).await.is_err() {
                    break;
                }
            }
            m = ws.next() => {
                let t = match m {
                    Some(Ok(Message::Text(t))) => t,
                    Some(Ok(_)) => continue,
                    _ => break,
                };
                if t.as_str() == "2" {
                    if ws.send(Message::text("3")).await.is_err() { break; }
                    continue;
                }
                if let Some(body) = t.strip_prefix("43") {
                    if body.contains(r#""ok":false"#) {
                        eprintln!("the server refused a description: {body}");
                    }
                    continue;
                }
                let Some(body) = t.strip_prefix("42") else { continue };
                // Only the events for the SFU; the roster and the rest are read past.
                if !body.starts_with(r#"["sfu-"#) && !body.starts_with(r#"["error""#) {
                    continue;
                }
                let Ok(Value::Array(event)) = serde_json::from_str::<Value>(body) else { continue };
                let name = event.first().and_then(Value::as_str).unwrap_or("");
                let sdp = event
                    .get(1)
                    .and_then(|p| p["description"]["sdp"].as_str())
                    .map(str::to_owned);
                match (name, sdp) {
                    ("sfu-offer", Some(sdp)) => { let _ = to_peer.send(Remote::Offer(sdp)); }
                    ("sfu-answer", Some(sdp)) => { let _ = to_peer.send(Remote::Answer(sdp)); }
                    ("error", _) => eprintln!("the server said: {body}"),
                    _ => {}
                }
            }
        }
    }
}
