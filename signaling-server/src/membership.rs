//! A connection's right to stay: its sign-in token's expiry, and its enrollment, re-checked
//! while it is in a class. When either ends, the client is told why (an `error` event) and
//! disconnected. Connections without a token (development mode) have nothing to watch.

use std::sync::Arc;
use std::time::Duration;

use classroom_wire::{ErrorCode, event};
use socketioxide::extract::SocketRef;

use crate::auth::{HandshakeIdentity, unix_now};
use crate::error::Refusal;
use crate::handlers::Connection;
use crate::state::AppState;

/// Watches one token-authenticated connection until it disconnects (`Connection::gone`).
pub(crate) fn watch(state: Arc<AppState>, s: SocketRef, conn: Arc<Connection>) {
    let HandshakeIdentity::Token {
        identity,
        expires_at,
    } = conn.handshake().clone()
    else {
        return;
    };
    tokio::spawn(async move {
        let expiry = tokio::time::Instant::now()
            + Duration::from_secs(expires_at.saturating_sub(unix_now().as_secs()));
        let recheck = state.config.enrollment_recheck;
        let refusal = loop {
            let next = (tokio::time::Instant::now() + recheck).min(expiry);
            tokio::select! {
                _ = conn.gone() => return,
                _ = tokio::time::sleep_until(next) => {}
            }
            if tokio::time::Instant::now() >= expiry {
                break Refusal::new(
                    ErrorCode::Unauthorized,
                    "your sign-in token expired: sign in again",
                );
            }
            let Some(session_id) = conn.joined_session() else {
                continue;
            };
            match state
                .gate
                .authorize(conn.handshake(), &identity, &session_id)
                .await
            {
                Ok(_) => {}
                Err(r) if matches!(r.code, ErrorCode::NotEnrolled | ErrorCode::SessionNotFound) => {
                    break r;
                }
                // The roster or the LMS could not be asked: keep the member, ask again later.
                Err(r) => {
                    tracing::warn!(sid = %s.id, reason = %r.message, "enrollment re-check failed")
                }
            }
        };
        state.metrics.error(refusal.code);
        tracing::info!(sid = %s.id, user = %identity.user_id, code = %refusal.code, reason = %refusal.message, "disconnecting");
        let _ = s.emit(event::ERROR, &refusal.body("auth"));
        let _ = s.disconnect();
    });
}
