//! Classroom signaling server: the browser version's Socket.IO protocol (`docs/protocol.md`)
//! on socketioxide + axum, with identity, enrollment, chat history, limits and metrics.
//!
//! Run it as the `classroom-signaling` binary, or embed it with [`start`].

pub mod auth;
pub mod config;
pub mod enrollment;
pub mod error;
mod handlers;
mod http;
pub mod limits;
mod membership;
mod order;
pub mod metrics;
mod rooms;
mod state;
pub mod store;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use socketioxide::SocketIo;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

pub use crate::config::ServerConfig;
pub use crate::error::ServerError;
use crate::state::AppState;

/// A server running in this process.
pub struct RunningServer {
    pub local_addr: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<Result<(), ServerError>>,
}

impl RunningServer {
    /// `http://ADDR`, what clients connect to.
    pub fn url(&self) -> String {
        format!("http://{}", self.local_addr)
    }

    /// Stops accepting, closes every socket, flushes chat history, and waits for the end.
    pub async fn shutdown(mut self) -> Result<(), ServerError> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        match self.task.await {
            Ok(result) => result,
            Err(e) => Err(ServerError::Serve(std::io::Error::other(e))),
        }
    }
}

/// Binds and starts serving in a background task.
pub async fn start(config: ServerConfig) -> Result<RunningServer, ServerError> {
    let listener = TcpListener::bind(config.listen)
        .await
        .map_err(|source| ServerError::Bind {
            addr: config.listen,
            source,
        })?;
    let local_addr = listener.local_addr().map_err(ServerError::Serve)?;
    let (tx, rx) = oneshot::channel();
    let prepared = prepare(config)?;
    let task = tokio::spawn(serve_prepared(prepared, listener, async {
        let _ = rx.await;
    }));
    Ok(RunningServer {
        local_addr,
        shutdown: Some(tx),
        task,
    })
}

/// Serves on `listener` until `shutdown` completes.
pub async fn serve(
    config: ServerConfig,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServerError> {
    serve_prepared(prepare(config)?, listener, shutdown).await
}

/// The websocket read buffer per connection; signaling messages are small (an SDP is the
/// largest, a few KiB, and reads of larger ones simply take several chunks).
const WS_READ_BUFFER_BYTES: usize = 1024;

struct Prepared {
    state: Arc<AppState>,
    io: SocketIo,
    app: axum::Router,
}

fn prepare(config: ServerConfig) -> Result<Prepared, ServerError> {
    config.validate()?;
    let store = Arc::new(store::Store::open(config.database.as_deref())?);
    let hook = match &config.enrollment_hook {
        Some(url) => Some(
            enrollment::EnrollmentHook::new(url.clone())
                .map_err(|e| error::ConfigError::Invalid(format!("enrollment hook: {e}")))?,
        ),
        None => None,
    };
    let state = Arc::new(AppState {
        verifier: auth::TokenVerifier::with_rules(
            config.jwt_secret.as_deref(),
            config.dev_mode,
            &config.token_rules,
        ),
        gate: enrollment::Gate {
            store: store.clone(),
            hook,
            auto_create_sessions: config.auto_create_sessions,
        },
        store,
        metrics: Default::default(),
        rooms: Default::default(),
        started: std::time::Instant::now(),
        config,
    });
    let (layer, io) = SocketIo::builder()
        .ping_interval(state.config.ping_interval)
        .ping_timeout(state.config.ping_timeout)
        .max_payload(state.config.limits.max_transport_payload)
        .ws_max_message_size(state.config.limits.max_transport_payload as usize)
        // A frame may not declare more than a message may hold: tungstenite reserves a declared
        // frame's size before reading it (16 MiB by default), before any authentication.
        .ws_max_frame_size(state.config.limits.max_transport_payload as usize)
        .ws_read_buffer_size(WS_READ_BUFFER_BYTES)
        .build_layer();
    handlers::register(&io, state.clone());
    // The outer layer runs first: Socket.IO gets requests whose head owns its bytes.
    let app = http::routes(state.clone())
        .layer(layer)
        .layer(axum::middleware::map_request(http::detach_request_head));
    Ok(Prepared { state, io, app })
}

async fn serve_prepared(
    prepared: Prepared,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServerError> {
    let Prepared { state, io, app } = prepared;
    let addr = listener.local_addr().map_err(ServerError::Serve)?;
    tracing::info!(%addr, dev = state.config.dev_mode, "signaling server listening");
    let (closed_tx, closed_rx) = oneshot::channel::<()>();
    let io_for_close = io.clone();
    let graceful = async move {
        shutdown.await;
        tracing::info!("shutting down: closing sockets");
        io_for_close.close().await;
        let _ = closed_tx.send(());
    };
    let served = axum::serve(listener, app)
        .with_graceful_shutdown(graceful)
        .await;
    let _ = closed_rx.await;
    let store = state.store.clone();
    let flushed = tokio::task::spawn_blocking(move || store.flush()).await;
    match flushed {
        Ok(Ok(())) => tracing::info!("chat history flushed"),
        Ok(Err(e)) => tracing::error!(error = %e, "chat history flush failed"),
        Err(e) => tracing::error!(error = %e, "chat history flush panicked"),
    }
    served.map_err(ServerError::Serve)
}
