//! Janus 1.1.2's side of the benchmark (Debian's `janus`): its VideoRoom plugin, pinned to
//! CPU 0, configured here for the comparison (ICE-lite like ours, one event loop for its one
//! core, candidates on the lab's interface only, only the HTTP transport and the VideoRoom plugin loaded, VP8 rooms), driven through
//! its HTTP API: one session, a plugin handle per peer; the publisher's `joinandconfigure`
//! carries its offer, a subscriber's `join` (substream 1: the 360p layer) brings Janus's offer
//! and its `start` our answer. Events come back on one long poll and go to their handle's peer.

use std::cell::RefCell;
use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Stdio;
use std::rc::Rc;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

use crate::peer::{Local, Remote};

const ROOM: u64 = 4242;
const PLUGIN_DIR: &str = "/usr/lib/x86_64-linux-gnu/janus";

pub struct Janus {
    _child: tokio::process::Child,
    pub pid: u32,
    port: u16,
    session: u64,
    dir: PathBuf,
    /// Handle → its peer's channel (events with a JSEP).
    routes: Rc<RefCell<HashMap<u64, mpsc::UnboundedSender<Remote>>>>,
    /// The publisher's feed id, once it joined.
    feed: Rc<RefCell<Option<u64>>>,
}

impl Drop for Janus {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

pub fn installed() -> bool {
    std::path::Path::new("/usr/bin/janus").exists()
        && std::path::Path::new(PLUGIN_DIR)
            .join("plugins/libjanus_videoroom.so")
            .exists()
}

fn write_config(dir: &std::path::Path, http_port: u16) -> std::io::Result<()> {
    let iface = crate::lab::INTERFACE;
    std::fs::create_dir_all(dir)?;
    let plugins = std::fs::read_dir(format!("{PLUGIN_DIR}/plugins"))?
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.ends_with(".so") && n != "libjanus_videoroom.so")
        .collect::<Vec<_>>()
        .join(",");
    let transports = std::fs::read_dir(format!("{PLUGIN_DIR}/transports"))?
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.ends_with(".so") && n != "libjanus_http.so")
        .collect::<Vec<_>>()
        .join(",");
    let d = dir.display();
    std::fs::write(
        dir.join("janus.jcfg"),
        format!(
            r#"general: {{
  configs_folder = "{d}"
  plugins_folder = "{PLUGIN_DIR}/plugins"
  transports_folder = "{PLUGIN_DIR}/transports"
  events_folder = "{PLUGIN_DIR}/events"
  loggers_folder = "{PLUGIN_DIR}/loggers"
  debug_level = 2
  session_timeout = 0
  event_loops = 1
}}
media: {{
  rtp_port_range = "40000-60000"
}}
nat: {{
  ice_lite = true
  ice_enforce_list = "{iface}"
}}
plugins: {{
  disable = "{plugins}"
}}
transports: {{
  disable = "{transports}"
}}
loggers: {{
  disable = "libjanus_jsonlog.so"
}}
events: {{
  broadcast = false
}}
"#
        ),
    )?;
    std::fs::write(
        dir.join("janus.transport.http.jcfg"),
        format!(
            "general: {{\n  json = \"compact\"\n  base_path = \"/janus\"\n  http = true\n  port = {http_port}\n  ip = \"127.0.0.1\"\n  https = false\n}}\nadmin: {{\n  admin_http = false\n}}\n"
        ),
    )?;
    std::fs::write(
        dir.join("janus.plugin.videoroom.jcfg"),
        "general: {\n  string_ids = false\n}\n",
    )?;
    Ok(())
}

pub async fn start(http_port: u16) -> Result<Janus, String> {
    let dir = std::env::temp_dir().join(format!("classroom-janus-bench-{}", std::process::id()));
    write_config(&dir, http_port).map_err(|e| format!("Janus's configuration: {e}"))?;
    let log = std::fs::File::create(dir.join("janus.log")).map_err(|e| e.to_string())?;
    let mut cmd = tokio::process::Command::new("taskset");
    cmd.args(["-c", "0", "janus", "-F"])
        .arg(&dir)
        .arg("-C")
        .arg(dir.join("janus.jcfg"));
    let child = cmd
        .stdout(Stdio::from(log.try_clone().map_err(|e| e.to_string())?))
        .stderr(Stdio::from(log))
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("janus: {e}"))?;
    let pid = child.id().unwrap_or(0);
    let mut janus = Janus {
        _child: child,
        pid,
        port: http_port,
        session: 0,
        dir,
        routes: Rc::default(),
        feed: Rc::default(),
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        if request(http_port, "GET", "/janus/info", None).await.is_ok() {
            break;
        }
        if tokio::time::Instant::now() > deadline {
            return Err(format!(
                "Janus did not answer on :{http_port} within 15 s (log: {})",
                janus.dir.join("janus.log").display()
            ));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let created = janus.post("/janus", json!({ "janus": "create" })).await?;
    janus.session = created["data"]["id"]
        .as_u64()
        .ok_or_else(|| format!("no session: {created}"))?;
    tokio::task::spawn_local(poll_events(
        http_port,
        janus.session,
        janus.routes.clone(),
        janus.feed.clone(),
    ));
    let admin = janus.attach().await?;
    let created = janus
        .message(
            admin,
            json!({
                "request": "create", "room": ROOM, "publishers": 1, "videocodec": "vp8",
                "bitrate": 0, "fir_freq": 0, "notify_joining": false,
            }),
            None,
        )
        .await?;
    if created["plugindata"]["data"]["videoroom"] != "created" {
        return Err(format!("the room was not created: {created}"));
    }
    Ok(janus)
}

impl Janus {
    async fn post(&self, path: &str, mut body: Value) -> Result<Value, String> {
        body["transaction"] = json!(uuid::Uuid::new_v4().simple().to_string());
        request(self.port, "POST", path, Some(&body)).await
    }

    async fn attach(&self) -> Result<u64, String> {
        let r = self
            .post(
                &format!("/janus/{}", self.session),
                json!({ "janus": "attach", "plugin": "janus.plugin.videoroom" }),
            )
            .await?;
        r["data"]["id"]
            .as_u64()
            .ok_or_else(|| format!("attach: {r}"))
    }

    async fn message(
        &self,
        handle: u64,
        body: Value,
        jsep: Option<Value>,
    ) -> Result<Value, String> {
        let mut m = json!({ "janus": "message", "body": body });
        if let Some(jsep) = jsep {
            m["jsep"] = jsep;
        }
        let r = self
            .post(&format!("/janus/{}/{handle}", self.session), m)
            .await?;
        if r["janus"] == "error" {
            return Err(format!("Janus: {r}"));
        }
        Ok(r)
    }

    async fn end_of_candidates(&self, handle: u64) -> Result<(), String> {
        self.post(
            &format!("/janus/{}/{handle}", self.session),
            json!({ "janus": "trickle", "candidate": { "completed": true } }),
        )
        .await
        .map(|_| ())
    }

    /// The end of Janus's log, to say why something failed.
    pub fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(self.dir.join("janus.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    /// The publisher's feed, once Janus said it joined.
    pub fn feed(&self) -> Option<u64> {
        *self.feed.borrow()
    }

    /// Attaches a handle for one peer and carries its descriptions.
    pub async fn signal(
        self: &Rc<Self>,
        publisher: bool,
        mut from_peer: mpsc::UnboundedReceiver<Local>,
        to_peer: mpsc::UnboundedSender<Remote>,
    ) -> Result<(), String> {
        let handle = self.attach().await?;
        self.routes.borrow_mut().insert(handle, to_peer);
        if !publisher {
            let feed = self.feed().ok_or("the publisher has not joined Janus")?;
            self.message(
                handle,
                json!({
                    "request": "join", "ptype": "subscriber", "room": ROOM,
                    "streams": [ { "feed": feed, "substream": crate::clip::SUBSCRIBED_LAYER } ],
                }),
                None,
            )
            .await?;
        }
        let janus = self.clone();
        tokio::task::spawn_local(async move {
            while let Some(local) = from_peer.recv().await {
                let sent = match local {
                    Local::Offer { sdp, .. } => janus
                        .message(
                            handle,
                            json!({
                                "request": "joinandconfigure", "ptype": "publisher",
                                "room": ROOM, "display": "publisher", "audio": false, "video": true,
                            }),
                            Some(json!({ "type": "offer", "sdp": sdp })),
                        )
                        .await,
                    Local::Answer(sdp) => {
                        janus
                            .message(
                                handle,
                                json!({ "request": "start", "room": ROOM }),
                                Some(json!({ "type": "answer", "sdp": sdp })),
                            )
                            .await
                    }
                };
                if let Err(e) = sent {
                    eprintln!("Janus handle {handle}: {e}");
                    continue;
                }
                if let Err(e) = janus.end_of_candidates(handle).await {
                    eprintln!("Janus handle {handle}: {e}");
                }
            }
        });
        Ok(())
    }
}

/// The session's long poll: each event with a JSEP goes to its handle's peer.
async fn poll_events(
    port: u16,
    session: u64,
    routes: Rc<RefCell<HashMap<u64, mpsc::UnboundedSender<Remote>>>>,
    feed: Rc<RefCell<Option<u64>>>,
) {
    let path = format!("/janus/{session}?maxev=100");
    loop {
        let events = match request(port, "GET", &path, None).await {
            Ok(Value::Array(events)) => events,
            Ok(one) => vec![one],
            Err(e) => {
                eprintln!("Janus's event poll: {e}");
                return;
            }
        };
        for e in events {
            let data = &e["plugindata"]["data"];
            if data["videoroom"] == "joined"
                && let Some(id) = data["id"].as_u64()
            {
                *feed.borrow_mut() = Some(id);
            }
            if data["error"].is_string() {
                eprintln!("Janus: {e}");
            }
            if e["janus"] == "hangup" {
                eprintln!("Janus hung up a handle: {e}");
            }
            let (Some(sender), Some(sdp)) = (e["sender"].as_u64(), e["jsep"]["sdp"].as_str())
            else {
                continue;
            };
            let remote = match e["jsep"]["type"].as_str() {
                Some("offer") => Remote::Offer(sdp.to_owned()),
                Some("answer") => Remote::Answer(sdp.to_owned()),
                _ => continue,
            };
            if let Some(to) = routes.borrow().get(&sender) {
                let _ = to.send(remote);
            }
        }
    }
}

/// One HTTP/1.1 request on a fresh connection; the JSON body of the answer.
async fn request(
    port: u16,
    method: &str,
    path: &str,
    body: Option<&Value>,
) -> Result<Value, String> {
    let mut s = TcpStream::connect(("127.0.0.1", port))
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let body = body.map(Value::to_string).unwrap_or_default();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    s.write_all(body.as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    let mut answer = Vec::new();
    s.read_to_end(&mut answer)
        .await
        .map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&answer);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| format!("no HTTP answer: {text}"))?;
    if !head.starts_with("HTTP/1.1 200") && !head.starts_with("HTTP/1.0 200") {
        return Err(format!("HTTP: {}", head.lines().next().unwrap_or("")));
    }
    // libmicrohttpd may answer chunked.
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(body)
    } else {
        body.to_owned()
    };
    serde_json::from_str(&body).map_err(|e| format!("JSON: {e}: {body}"))
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        s = rest[n..].trim_start_matches("\r\n");
    }
    out
}
