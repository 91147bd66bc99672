//! Plain HTTP routes beside Socket.IO: health, metrics, and the browser client page
//! (`web/`, compiled into the binary: no CDN, nothing fetched at run time).

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::auth::HandshakeIdentity;
use crate::config::OriginPolicy;
use crate::state::AppState;

pub fn routes(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .route("/sessions/{session}/polls", get(polls))
        .route("/", get(|| web(WebFile::Index)))
        .route("/classroom.js", get(|| web(WebFile::Script)))
        .route("/classroom.css", get(|| web(WebFile::Style)))
        .route("/socket.io.min.js", get(|| web(WebFile::SocketIo)))
        .with_state(state)
}

/// Gives a Socket.IO request a head of its own: the URI (and axum's copy of it) and the header
/// values Socket.IO reads are copied out of the connection's read buffer; other headers are
/// dropped.
///
/// hyper parses a request head without copying: the URI and every header value are slices of
/// the connection's read buffer (16 KiB after it grew). Socket.IO keeps the head of the request
/// that opened a socket for the socket's whole life (`Socket::req_parts`), extensions
/// included, and with it that whole buffer. heaptrack, 2000 idle websocket connections: 16.4
/// KiB of heap per connection less with this (axum's `OriginalUri` extension was the holder
/// that an earlier try, copying only the URI and headers, missed).
pub(crate) async fn detach_request_head(
    mut request: axum::extract::Request,
) -> axum::extract::Request {
    if !request.uri().path().starts_with("/socket.io") {
        return request;
    }
    if let Ok(uri) = request.uri().to_string().parse::<axum::http::Uri>() {
        // axum's router keeps a copy of the URI in the extensions too.
        if request
            .extensions()
            .get::<axum::extract::OriginalUri>()
            .is_some()
        {
            request
                .extensions_mut()
                .insert(axum::extract::OriginalUri(uri.clone()));
        }
        *request.uri_mut() = uri;
    }
    // Only the headers Socket.IO reads are kept, copied: the rest (a browser's user agent,
    // cookies, languages…) would stay with the socket for its whole life, unread.
    let mut kept = header::HeaderMap::with_capacity(SOCKET_IO_HEADERS.len());
    for name in SOCKET_IO_HEADERS {
        if let Some(value) = request.headers().get(&name)
            && let Ok(mut copy) = header::HeaderValue::from_bytes(value.as_bytes())
        {
            copy.set_sensitive(value.is_sensitive());
            kept.insert(name, copy);
        }
    }
    *request.headers_mut() = kept;
    request
}

/// The request headers Socket.IO (engineioxide) reads: a polling request's body type and the
/// websocket handshake key. Nothing in this server reads any other header of a Socket.IO
/// request; one that starts to must be added here.
const SOCKET_IO_HEADERS: [header::HeaderName; 2] =
    [header::CONTENT_TYPE, header::SEC_WEBSOCKET_KEY];

/// Refuses a Socket.IO request from a web page whose origin the server does not accept (403),
/// before Socket.IO sees it. Requests without an `Origin` (native clients) pass.
pub(crate) async fn check_origin(
    State(state): State<Arc<AppState>>,
    request: axum::extract::Request,
    next: Next,
) -> Response {
    if request.uri().path().starts_with("/socket.io") {
        let headers = request.headers();
        if let Some(origin) = headers.get(header::ORIGIN) {
            let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
            let allowed = origin
                .to_str()
                .is_ok_and(|origin| origin_allowed(&state.config.origins, origin, host));
            if !allowed {
                state.metrics.connect_refused.fetch_add(1, Relaxed);
                tracing::debug!(origin = ?origin, "refused: origin not allowed");
                return (StatusCode::FORBIDDEN, "origin not allowed").into_response();
            }
        }
    }
    next.run(request).await
}

/// Whether a page from `origin` (`scheme://host[:port]`) may connect, `host` being the
/// request's `Host` header.
pub(crate) fn origin_allowed(policy: &OriginPolicy, origin: &str, host: Option<&str>) -> bool {
    let Some((scheme, authority)) = origin.split_once("://") else {
        return false;
    };
    if !matches!(scheme, "http" | "https") {
        return false;
    }
    match policy {
        OriginPolicy::Any => true,
        OriginPolicy::Loopback => is_loopback_authority(authority),
        OriginPolicy::List(allowed) => {
            let origin = origin.trim_end_matches('/');
            allowed.iter().any(|a| a.trim_end_matches('/') == origin)
                || host.is_some_and(|host| host == authority)
        }
    }
}

/// `localhost`, `127.x.y.z` or `[::1]`, with or without a port.
fn is_loopback_authority(authority: &str) -> bool {
    let host = match authority.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or(""),
        None => authority
            .rsplit_once(':')
            .map_or(authority, |(host, _)| host),
    };
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Headers every page and script of ours carries: nothing but our own files runs, nothing
/// frames the page, and types are not sniffed.
const PAGE_SECURITY: [(header::HeaderName, &str); 4] = [
    (
        header::CONTENT_SECURITY_POLICY,
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; \
         media-src 'self' blob: mediastream:; connect-src 'self'; object-src 'none'; \
         base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
    ),
    (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
    (header::X_FRAME_OPTIONS, "DENY"),
    (header::REFERRER_POLICY, "no-referrer"),
];

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
        PAGE_SECURITY,
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

/// Whether a request is the operator's: the bearer of `--metrics-token`, or anyone in
/// development mode when none is configured.
enum Operator {
    Yes,
    /// A token is configured and this request does not bear it.
    WrongToken,
    /// No token is configured, outside development mode.
    NoToken,
}

/// The token of an `Authorization: Bearer …` header, if the request has one.
fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
}

fn operator(state: &AppState, headers: &HeaderMap) -> Operator {
    match (&state.config.metrics_token, bearer(headers)) {
        (Some(expected), Some(token)) if crate::auth::same_secret(token, expected) => Operator::Yes,
        (Some(_), _) => Operator::WrongToken,
        (None, _) if state.config.dev_mode => Operator::Yes,
        (None, _) => Operator::NoToken,
    }
}

fn needs_token(what: &'static str) -> Response {
    (
        StatusCode::UNAUTHORIZED,
        [(header::WWW_AUTHENTICATE, "Bearer")],
        what,
    )
        .into_response()
}

/// Whether the bearer of a sign-in token (the LMS's JWT, as in the Socket.IO handshake) is an
/// instructor of `session`, by the roster (or the enrollment hook) as a join decides it.
async fn instructor_of(state: &AppState, headers: &HeaderMap, session: &str) -> bool {
    let Some(token) = bearer(headers) else {
        return false;
    };
    let Ok(handshake) = state.verifier.verify(Some(token)) else {
        return false;
    };
    let HandshakeIdentity::Token { identity, .. } = &handshake else {
        return false;
    };
    state
        .gate
        .authorize(&handshake, identity, session)
        .await
        .is_ok_and(|authorized| authorized.role.is_instructor())
}

/// `GET /sessions/{id}/polls[?format=json]`: the class's polls and answers, as CSV (or JSON),
/// for the operator (the bearer of `--metrics-token`; anyone in development mode when none is
/// set) or an instructor of the class (the bearer of their sign-in token).
async fn polls(
    State(state): State<Arc<AppState>>,
    axum::extract::Path(session): axum::extract::Path<String>,
    axum::extract::Query(query): axum::extract::Query<std::collections::HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    if session.len() > state.config.limits.max_id_chars {
        return (StatusCode::BAD_REQUEST, "session id too long").into_response();
    }
    if !matches!(operator(&state, &headers), Operator::Yes)
        && !instructor_of(&state, &headers, &session).await
    {
        return needs_token(
            "poll results need an instructor's sign-in token for this class, or the bearer \
             token of --metrics-token",
        );
    }
    let store = state.store.clone();
    let found = tokio::task::spawn_blocking(move || {
        store.flush()?;
        store.poll_results(&session)
    })
    .await;
    match found {
        Ok(Ok(polls)) if query.get("format").is_some_and(|f| f == "json") => (
            [(header::CONTENT_TYPE, "application/json")],
            serde_json::to_string(&polls).unwrap_or_default(),
        )
            .into_response(),
        Ok(Ok(polls)) => (
            [(header::CONTENT_TYPE, "text/csv; charset=utf-8")],
            crate::store::polls_csv(&polls),
        )
            .into_response(),
        Ok(Err(e)) => {
            tracing::error!(error = %e, "poll export failed");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "poll results could not be read",
            )
                .into_response()
        }
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

/// Prometheus text, for the bearer of `--metrics-token`; without one configured, only in
/// development mode (a local class).
async fn metrics(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    match operator(&state, &headers) {
        Operator::Yes => {}
        Operator::WrongToken => {
            return needs_token("metrics need the bearer token of --metrics-token");
        }
        Operator::NoToken => {
            return (
                StatusCode::NOT_FOUND,
                "metrics are off: start the server with --metrics-token",
            )
                .into_response();
        }
    }
    let mut text = state.metrics.render(state.rooms.len());
    if let Some(sfu) = &state.sfu {
        sfu.metrics.render(&mut text);
    }
    if let Some(turn) = &state.turn {
        turn.counters.render(&mut text);
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_are_checked_by_policy() {
        let loopback = OriginPolicy::Loopback;
        for ok in [
            "http://127.0.0.1:3001",
            "http://localhost:3001",
            "http://[::1]:3001",
            "https://localhost",
        ] {
            assert!(origin_allowed(&loopback, ok, None), "{ok}");
        }
        for refused in [
            "http://evil.example",
            "http://127.0.0.1.evil.example:3001",
            "null",
            "file://",
            "http://192.0.2.7:3001",
        ] {
            assert!(!origin_allowed(&loopback, refused, None), "{refused}");
        }
        let list = OriginPolicy::List(vec!["https://lms.example.org/".into()]);
        assert!(origin_allowed(&list, "https://lms.example.org", None));
        assert!(
            origin_allowed(
                &list,
                "https://classroom.example.org",
                Some("classroom.example.org")
            ),
            "our own page"
        );
        assert!(!origin_allowed(
            &list,
            "https://evil.example",
            Some("classroom.example.org")
        ));
        assert!(origin_allowed(
            &OriginPolicy::Any,
            "https://anything.example",
            None
        ));
    }

    /// A request head as hyper makes it: URI and header values are slices of one buffer.
    fn request_over(buffer: &axum::body::Bytes) -> axum::extract::Request {
        let uri = axum::http::Uri::from_maybe_shared(buffer.slice(4..41)).unwrap();
        let value = header::HeaderValue::from_maybe_shared(buffer.slice(55..79)).unwrap();
        let mut request = axum::extract::Request::new(axum::body::Body::empty());
        *request.uri_mut() = uri.clone();
        request.headers_mut().insert("sec-websocket-key", value);
        request.headers_mut().insert(
            header::USER_AGENT,
            header::HeaderValue::from_static("Mozilla/5.0 (X11; Linux x86_64) Chrome/131.0"),
        );
        request
            .extensions_mut()
            .insert(axum::extract::OriginalUri(uri));
        request
    }

    fn inside(buffer: &[u8], bytes: &[u8]) -> bool {
        let range = buffer.as_ptr_range();
        range.contains(&bytes.as_ptr())
    }

    #[tokio::test]
    async fn a_socket_io_request_head_no_longer_points_into_the_read_buffer_and_keeps_only_read_headers()
     {
        let buffer = axum::body::Bytes::from_static(
            b"GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nk: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
        );
        assert!(request_over(&buffer).uri().path().starts_with("/socket.io"));
        let before = request_over(&buffer);
        let key = before.headers()["sec-websocket-key"].as_bytes();
        assert!(inside(&buffer, key), "the test builds a zero-copy head");

        let after = detach_request_head(request_over(&buffer)).await;
        let key = after.headers()["sec-websocket-key"].as_bytes();
        assert_eq!(key, b"dGhlIHNhbXBsZSBub25jZQ==");
        assert!(!inside(&buffer, key), "the header value was copied");
        assert_eq!(
            after.headers().len(),
            1,
            "headers Socket.IO does not read are dropped"
        );
        let path = after.uri().path_and_query().unwrap().as_str();
        assert_eq!(path, "/socket.io/?EIO=4&transport=websocket");
        assert!(!inside(&buffer, path.as_bytes()), "the URI was copied");
        let original = after
            .extensions()
            .get::<axum::extract::OriginalUri>()
            .unwrap();
        let original = original.0.path_and_query().unwrap().as_str();
        assert!(!inside(&buffer, original.as_bytes()), "axum's copy too");

        // Other routes are left alone.
        let page = axum::body::Bytes::from_static(b"GET /healthz HTTP/1.1\r\n");
        let mut request = axum::extract::Request::new(axum::body::Body::empty());
        *request.uri_mut() = axum::http::Uri::from_maybe_shared(page.slice(4..12)).unwrap();
        let request = detach_request_head(request).await;
        assert!(inside(&page, request.uri().path().as_bytes()));
    }
}
