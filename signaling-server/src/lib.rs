//! Classroom signaling server: the browser version's Socket.IO protocol (`docs/protocol.md`)
//! on socketioxide + axum, with identity, enrollment, chat history, limits and metrics.
//!
//! Run it as the `classroom-signaling` binary, or embed it with [`start`].

mod admission;
pub mod auth;
pub mod config;
pub mod enrollment;
pub mod error;
mod handlers;
mod http;
pub mod limits;
mod membership;
pub mod metrics;
mod order;
mod room_rules;
mod rooms;
pub mod sfu;
mod state;
pub mod store;
pub mod turn;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use socketioxide::SocketIo;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

pub use crate::config::ServerConfig;

/// Turns off socketioxide's error line for an event whose handler was not run: it logs one per
/// event, and the server declines events on purpose (refused on arrival, or sent by a socket cut
/// off for flooding), answering and counting them itself. Every binary that runs the server
/// adds this to its log filter.
pub fn quiet_declined_events(
    filter: tracing_subscriber::EnvFilter,
) -> tracing_subscriber::EnvFilter {
    match "socketioxide::handler::message=off".parse() {
        Ok(directive) => filter.add_directive(directive),
        Err(_) => filter,
    }
}
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

/// Starts the server's own TURN relay, and hands its URLs and credentials out on join unless
/// others were configured.
fn start_turn(
    config: &mut ServerConfig,
    turn: &turn::TurnConfig,
    sfu: Option<&sfu::Sfu>,
) -> Result<turn::Turn, ServerError> {
    let secret = config
        .turn_secret
        .get_or_insert_with(|| format!("{}{}", config::random_key(), config::random_key()))
        .clone();
    let sfu_addrs = sfu.map(|s| s.media_addrs.to_vec()).unwrap_or_default();
    let running = turn::Turn::start(turn, &secret, sfu_addrs)
        .map_err(|e| ServerError::Turn(e.to_string()))?;
    if config.turn_urls.is_empty() {
        config.turn_urls = running
            .urls(turn)
            .map_err(|e| ServerError::Turn(e.to_string()))?;
    }
    Ok(running)
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

/// Deletes chat past its retention (`--chat-retention-days`) and, where sessions are made on
/// first join, what idle sessions that are no class left behind (`--ad-hoc-retention-hours`):
/// now, then every hour.
async fn prune_hourly(state: Arc<AppState>) {
    let limits = &state.config.limits;
    let days = limits.chat_retention_days;
    // With an enrollment hook, a session that is no class here may be the LMS's class.
    let ad_hoc_hours =
        match state.config.auto_create_sessions && state.config.enrollment_hook.is_none() {
            true => limits.ad_hoc_retention_hours,
            false => 0,
        };
    if days == 0 && ad_hoc_hours == 0 {
        return;
    }
    let mut every_hour = tokio::time::interval(std::time::Duration::from_secs(3600));
    loop {
        every_hour.tick().await;
        let now = auth::unix_now();
        let ago = |secs: u64| {
            now.saturating_sub(std::time::Duration::from_secs(secs))
                .as_millis() as u64
        };
        let store = state.store.clone();
        if days > 0 {
            let before_ms = ago(days * 24 * 3600);
            match tokio::task::spawn_blocking(move || store.prune_chat(before_ms)).await {
                Ok(Ok(0)) => {}
                Ok(Ok(n)) => tracing::info!(deleted = n, days, "chat past its retention deleted"),
                Ok(Err(e)) => tracing::error!(error = %e, "chat retention: delete failed"),
                Err(e) => tracing::error!(error = %e, "chat retention task failed"),
            }
        }
        if ad_hoc_hours > 0 {
            let (idle_before_ms, now_ms) = (ago(ad_hoc_hours * 3600), now.as_millis() as u64);
            let (store, live) = (state.store.clone(), state.clone());
            let pruned = tokio::task::spawn_blocking(move || {
                store.prune_ad_hoc(idle_before_ms, now_ms, |session| {
                    live.rooms.get(session).is_some()
                })
            });
            match pruned.await {
                Ok(Ok(p)) if p.sessions == 0 => {}
                Ok(Ok(p)) => tracing::info!(
                    sessions = p.sessions,
                    messages = p.messages,
                    polls = p.polls,
                    hours = ad_hoc_hours,
                    "idle sessions made on first join cleaned up"
                ),
                Ok(Err(e)) => tracing::error!(error = %e, "session clean-up: delete failed"),
                Err(e) => tracing::error!(error = %e, "session clean-up task failed"),
            }
        }
    }
}

/// How long the clients have to receive `server-restarting` before their connections close.
const RESTART_NOTICE_GRACE: std::time::Duration = std::time::Duration::from_millis(300);

/// The websocket read buffer per connection; signaling messages are small (an SDP is the
/// largest, a few KiB, and reads of larger ones simply take several chunks).
/// Packets waiting to go out to one client, at most (socketioxide's default is 128). A
/// control over a whole class sends each member one update per participant it changed (mute
/// all in a class of 200: 200 each, at once), and an emit to a full buffer is lost: the bound
/// is several times the largest class. It also bounds what a client that stops reading costs.
const SOCKET_BUFFER_PACKETS: usize = 2048;

const WS_READ_BUFFER_BYTES: usize = 1024;

struct Prepared {
    state: Arc<AppState>,
    io: SocketIo,
    app: axum::Router,
}

fn prepare(mut config: ServerConfig) -> Result<Prepared, ServerError> {
    config.validate()?;
    let store = Arc::new(store::Store::open(config.database.as_deref())?);
    let hook = match &config.enrollment_hook {
        Some(url) => Some(
            enrollment::EnrollmentHook::new(
                url.clone(),
                config.enrollment_hook_secret.as_deref().unwrap_or_default(),
                config.enrollment_hook_allow_http,
            )
            .map_err(|e| error::ConfigError::Invalid(e.to_string()))?,
        ),
        None => None,
    };
    let sfu = match config.sfu.mode {
        sfu::SfuMode::Off => None,
        sfu::SfuMode::Always | sfu::SfuMode::Auto => {
            Some(sfu::Sfu::start(&config.sfu).map_err(|e| ServerError::Sfu(e.to_string()))?)
        }
    };
    let turn = match config.turn.clone() {
        Some(t) => Some(start_turn(&mut config, &t, sfu.as_ref())?),
        None => None,
    };
    let state = Arc::new(AppState {
        sfu,
        turn,
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
        admission: admission::Admission::new(
            config.limits.max_connections,
            config.limits.max_connections_per_ip,
        ),
        address_rates: limits::SharedRates::new(
            config.limits.events_per_second_per_address,
            config.limits.event_burst_per_address,
        ),
        user_rates: limits::SharedRates::new(
            config.limits.events_per_second_per_user,
            config.limits.event_burst_per_user,
        ),
        closing: Default::default(),
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
        .max_buffer_size(SOCKET_BUFFER_PACKETS)
        .build_layer();
    handlers::register(&io, state.clone());
    // The outer layer runs first: Socket.IO gets requests whose head owns its bytes.
    let app = http::routes(state.clone())
        .layer(layer)
        .layer(axum::middleware::map_request(http::detach_request_head))
        // Outermost, so it runs first: the Origin header is gone once the head is detached.
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            http::check_origin,
        ));
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
    let pruning = tokio::spawn(prune_hourly(state.clone()));
    let (closed_tx, closed_rx) = oneshot::channel::<()>();
    let io_for_close = io.clone();
    let state_for_close = state.clone();
    let graceful = async move {
        shutdown.await;
        state_for_close
            .closing
            .store(true, std::sync::atomic::Ordering::Release);
        let told = handlers::announce_restart(&io_for_close);
        tracing::info!(
            told,
            "shutting down: clients told to come back, closing sockets"
        );
        // Time for the notice to reach polling clients before their sessions end.
        tokio::time::sleep(RESTART_NOTICE_GRACE).await;
        io_for_close.close().await;
        let _ = closed_tx.send(());
    };
    // Every event is a small frame that should leave at once: without TCP_NODELAY a relayed
    // candidate waited for the previous frame's ACK (Nagle), which a client trickling its own
    // frames returns only with its next one: about 20 ms a hop at 50 frames a second (the load
    // bench's relaying pairs; Node's http server sets it too).
    let listener = axum::serve::ListenerExt::tap_io(listener, |stream| {
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!(error = %e, "TCP_NODELAY not set on a connection");
        }
    });
    // The peer's address goes with each request (`ConnectInfo`): connections are counted by it.
    let served = axum::serve(
        listener,
        app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .with_graceful_shutdown(graceful)
    .await;
    let _ = closed_rx.await;
    pruning.abort();
    // The disconnect handlers queue their "left" notices: wait for them (briefly) so that the
    // final flush comes after the last one.
    let drained = tokio::time::Instant::now() + std::time::Duration::from_secs(2);
    while state
        .metrics
        .participants
        .load(std::sync::atomic::Ordering::Acquire)
        > 0
        && tokio::time::Instant::now() < drained
    {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let store = state.store.clone();
    let flushed = tokio::task::spawn_blocking(move || store.flush()).await;
    match flushed {
        Ok(Ok(())) => tracing::info!("chat history flushed"),
        Ok(Err(e)) => tracing::error!(error = %e, "chat history flush failed"),
        Err(e) => tracing::error!(error = %e, "chat history flush panicked"),
    }
    served.map_err(ServerError::Serve)
}
