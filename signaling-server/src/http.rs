//! Plain HTTP routes beside Socket.IO: health, metrics, and the browser client page
//! (`web/`, compiled into the binary: no CDN, nothing fetched at run time).

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;

use axum::Router;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;

use crate::state::AppState;

pub fn routes(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .route("/", get(|| web(WebFile::Index)))
        .route("/classroom.js", get(|| web(WebFile::Script)))
        .route("/classroom.css", get(|| web(WebFile::Style)))
        .route("/socket.io.min.js", get(|| web(WebFile::SocketIo)))
        .with_state(state)
}

/// The browser client's files.
#[derive(Debug, Clone, Copy)]
enum WebFile {
    Index,
    Script,
    Style,
    /// socket.io-client's browser build, copied from the npm package pinned in
    /// tests/node/package-lock.json (a test checks the copy is identical).
    SocketIo,
}

async fn web(file: WebFile) -> impl IntoResponse {
    let (content_type, body): (&str, &'static [u8]) = match file {
        WebFile::Index => (
            "text/html; charset=utf-8",
            include_bytes!("../web/index.html"),
        ),
        WebFile::Script => (
            "text/javascript; charset=utf-8",
            include_bytes!("../web/classroom.js"),
        ),
        WebFile::Style => (
            "text/css; charset=utf-8",
            include_bytes!("../web/classroom.css"),
        ),
        WebFile::SocketIo => (
            "text/javascript; charset=utf-8",
            include_bytes!("../web/socket.io.min.js"),
        ),
    };
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
}

async fn healthz(State(state): State<Arc<AppState>>) -> impl IntoResponse {
    axum::Json(serde_json::json!({
        "status": "ok",
        "version": env!("CARGO_PKG_VERSION"),
        "protocolVersion": classroom_wire::PROTOCOL_VERSION,
        "uptimeSeconds": state.started.elapsed().as_secs(),
        "sockets": state.metrics.sockets.load(Relaxed),
        "sessions": state.rooms.len(),
    }))
}

async fn metrics(State(state): State<Arc<AppState>>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(state.rooms.len()),
    )
}
