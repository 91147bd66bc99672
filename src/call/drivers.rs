//! The engine's two drivers behind traits, so the same engine runs on real parts (the
//! Socket.IO client, webrtc-rs peer connections) and, in the fast tests, on an in-memory
//! relay and simulated links with virtual time (`call/simulated/`).

use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::link::{self, LinkContext, LinkOp, LinkSpec};
use crate::rtc::EncodedUnit;
use crate::session::Outgoing;
use crate::signaling::{SignalingClient, SignalingError};
use crate::types::Source;

/// Where the session's messages go.
pub(super) trait SignalingPort: Send + Sync + 'static {
    fn emit<'a>(&'a self, outgoing: &'a Outgoing) -> BoxFuture<'a, Result<(), SignalingError>>;
    fn disconnect(&self) -> BoxFuture<'_, ()>;
}

impl SignalingPort for SignalingClient {
    fn emit<'a>(&'a self, outgoing: &'a Outgoing) -> BoxFuture<'a, Result<(), SignalingError>> {
        SignalingClient::emit(self, outgoing).boxed()
    }

    fn disconnect(&self) -> BoxFuture<'_, ()> {
        SignalingClient::disconnect(self).boxed()
    }
}

/// How links are built and run: each link is a task that carries out `ops` in order,
/// writes `units`, reports through the context, and ends (closing the link) when `ops`
/// closes.
pub(super) trait LinkFactory: Send + Sync + 'static {
    fn open(
        &self,
        spec: LinkSpec,
        context: LinkContext,
        ops: mpsc::UnboundedReceiver<LinkOp>,
        units: mpsc::Receiver<(Source, EncodedUnit)>,
    ) -> JoinHandle<()>;
}

/// webrtc-rs peer connections (`call/link.rs`).
pub(super) struct WebRtcLinks;

impl LinkFactory for WebRtcLinks {
    fn open(
        &self,
        spec: LinkSpec,
        context: LinkContext,
        ops: mpsc::UnboundedReceiver<LinkOp>,
        units: mpsc::Receiver<(Source, EncodedUnit)>,
    ) -> JoinHandle<()> {
        tokio::spawn(link::run_link(spec, context, ops, units))
    }
}
