//! Before a class: which paths to it work from this network. Asks the class's server which
//! ICE servers it would hand out (`ice-servers`), then tries each of them
//! ([`crate::rtc::connection_test`]), all at once, within a time limit.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use classroom_wire::IceServer;
use tokio::sync::mpsc;

use super::ClassServer;
use crate::rtc::connection_test;
pub use crate::rtc::connection_test::{ConnectionReport, Outcome, Path, PathResult};
use crate::session::Input;
use crate::signaling::{SignalingClient, SignalingConfig, SignalingError};

/// How long the paths are tried: the pre-join check's budget is 3 s for the whole test.
pub const PROBE_WITHIN: Duration = Duration::from_millis(2_500);

#[derive(Debug, thiserror::Error)]
pub enum PreflightError {
    #[error(transparent)]
    Signaling(#[from] SignalingError),
}

/// Disconnects the signaling client however the test ends, cancelled included (left
/// connected, it would reconnect by itself for ever).
struct Disconnecting(SignalingClient);

impl Drop for Disconnecting {
    fn drop(&mut self) {
        // A clone shares the connection: disconnecting it disconnects this one.
        let client = self.0.clone();
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move { client.disconnect().await });
        }
    }
}

/// Connects to the class's server and asks for its ICE servers, both within `connect_within`,
/// adds `extra` (the managed policy's), and tries every path for at most `probe_within`.
pub async fn test_connection(
    server: &ClassServer,
    extra: &[IceServer],
    bind_ip: IpAddr,
    connect_within: Duration,
    probe_within: Duration,
) -> Result<ConnectionReport, PreflightError> {
    let deadline = Instant::now() + connect_within;
    let signaling = SignalingConfig {
        url: server.url.clone(),
        token: server.token.clone(),
        key: server.key.clone(),
        websocket_only: false,
    };
    let (inputs_tx, mut inputs) = mpsc::unbounded_channel();
    let client = SignalingClient::connect(&signaling, inputs_tx, connect_within).await?;
    let client = Disconnecting(client);
    // The namespace must be connected before the first emit (a strict server refuses it).
    let connected = loop {
        match tokio::time::timeout_at(tokio::time::Instant::from_std(deadline), inputs.recv()).await
        {
            Ok(Some(Input::SignalingConnected)) => break true,
            Ok(Some(_)) => continue,
            Ok(None) | Err(_) => break false,
        }
    };
    if !connected {
        return Err(SignalingError::NoAnswer {
            event: "connect",
            waited: connect_within,
        }
        .into());
    }
    let left = deadline
        .saturating_duration_since(Instant::now())
        .max(Duration::from_millis(100));
    let mut servers = client.0.ice_servers(left).await?;
    drop(client);
    servers.extend_from_slice(extra);
    Ok(connection_test::run(&servers, bind_ip, probe_within).await)
}
