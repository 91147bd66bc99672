//! The two servers the signaling benches compare in one run: ours, and the same protocol on
//! stock Node socket.io (`tests/node/protocol-relay.mjs`), each started pinned to CPU 0.

use std::process::Stdio;

use super::socketio::listening_port;

#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    Ours,
    Reference,
}

impl Kind {
    pub const BOTH: [Kind; 2] = [Kind::Ours, Kind::Reference];

    /// As the tables print it.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Ours => "ours (socketioxide)",
            Kind::Reference => "node socket.io",
        }
    }

    /// As `--only` and the JSON line spell it.
    pub fn key(self) -> &'static str {
        match self {
            Kind::Ours => "ours",
            Kind::Reference => "reference",
        }
    }
}

pub struct ServerProcess {
    /// Killed on drop.
    _child: tokio::process::Child,
    pub pid: u32,
    pub port: u16,
}

/// Starts one server on 127.0.0.1 and a free port, pinned to CPU 0, with `args` after its own
/// (ours: `serve --dev --listen 127.0.0.1:0`; the reference: `--port 0`).
pub async fn start(kind: Kind, args: &[String]) -> Result<ServerProcess, String> {
    let mut cmd = tokio::process::Command::new("taskset");
    cmd.args(["-c", "0"]);
    match kind {
        Kind::Ours => {
            cmd.arg(env!("CARGO_BIN_EXE_classroom-signaling"))
                .args(["serve", "--dev", "--listen", "127.0.0.1:0"])
                .env("CLASSROOM_LOG", "error");
        }
        Kind::Reference => {
            let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../tests/node/protocol-relay.mjs");
            cmd.arg("node").arg(script).args(["--port", "0"]);
        }
    }
    let mut child = cmd
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("{} does not start: {e}", kind.name()))?;
    let pid = child.id().ok_or("the server ended at once")?;
    let port = listening_port(&mut child).await?;
    Ok(ServerProcess {
        _child: child,
        pid,
        port,
    })
}
