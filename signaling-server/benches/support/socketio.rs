//! What the benches that drive our server share: its process's address, read from what it
//! prints, and a Socket.IO client on a raw Engine.IO v4 websocket (no client library, so the
//! load generator's cost stays small).

use std::rc::Rc;

use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::TcpStream;
use tokio::sync::Notify;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Reads a server's stdout up to its "listening on http://host:port" line and returns the
/// port; the rest of its output is drained (on the local task set), so the server never
/// blocks on a full pipe.
pub async fn listening_port(child: &mut tokio::process::Child) -> Result<u16, String> {
    let stdout = child
        .stdout
        .take()
        .ok_or("the server's stdout is not piped")?;
    let mut lines = BufReader::new(stdout).lines();
    let port = loop {
        let line = lines
            .next_line()
            .await
            .map_err(|e| format!("reading the server's output: {e}"))?
            .ok_or("the server ended before printing its address")?;
        if let Some(url) = line.split("listening on http://").nth(1) {
            break url
                .rsplit(':')
                .next()
                .and_then(|p| p.parse().ok())
                .ok_or_else(|| format!("no port in {line:?}"))?;
        }
    };
    tokio::task::spawn_local(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Ok(port)
}

/// Connects to the default namespace.
pub async fn open(port: u16) -> Result<Ws, String> {
    let url = format!("ws://127.0.0.1:{port}/socket.io/?EIO=4&transport=websocket");
    let (mut ws, _) = tokio_tungstenite::connect_async(url)
        .await
        .map_err(|e| format!("websocket: {e}"))?;
    let open = next_text(&mut ws).await?;
    if !open.starts_with('0') {
        return Err(format!("no Engine.IO open: {open}"));
    }
    ws.send(Message::text("40"))
        .await
        .map_err(|e| e.to_string())?;
    loop {
        let t = next_text(&mut ws).await?;
        if t.starts_with("40") {
            return Ok(ws);
        }
        if t.starts_with("44") {
            return Err(format!("namespace refused: {t}"));
        }
    }
}

/// The next text frame that is not a ping (pings are answered).
pub async fn next_text(ws: &mut Ws) -> Result<String, String> {
    loop {
        match ws.next().await {
            Some(Ok(Message::Text(t))) => {
                if t.as_str() == "2" {
                    ws.send(Message::text("3"))
                        .await
                        .map_err(|e| e.to_string())?;
                    continue;
                }
                return Ok(t.to_string());
            }
            Some(Ok(_)) => continue,
            other => return Err(format!("the connection ended: {other:?}")),
        }
    }
}

/// Sends `join-session` (development mode: the id is the name) and waits for its ack, skipping
/// what the class sends meanwhile.
pub async fn join(ws: &mut Ws, session: &str, user: &str) -> Result<(), String> {
    let packet = format!(
        r#"421["join-session",{{"sessionId":"{session}","userId":"{user}","userName":"{user}","isInstructor":false}}]"#
    );
    ws.send(Message::text(packet))
        .await
        .map_err(|e| e.to_string())?;
    loop {
        let t = next_text(ws).await?;
        if let Some(ack) = t.strip_prefix("431") {
            return if ack.contains(r#""ok":true"#) {
                Ok(())
            } else {
                Err(format!("join refused: {ack}"))
            };
        }
    }
}

/// Keeps an idle connection alive (answers pings, reads the rest) until told to stop.
pub async fn idle(mut ws: Ws, stop: Rc<Notify>) {
    loop {
        tokio::select! {
            _ = stop.notified() => break,
            m = ws.next() => match m {
                Some(Ok(Message::Text(t))) if t.as_str() == "2" => {
                    if ws.send(Message::text("3")).await.is_err() { break; }
                }
                Some(Ok(_)) => {}
                _ => break,
            }
        }
    }
    let _ = ws.close(None).await;
}
