//! What every handler shares.

use std::sync::Arc;

use crate::auth::TokenVerifier;
use crate::config::ServerConfig;
use crate::enrollment::Gate;
use crate::metrics::Metrics;
use crate::rooms::Registry;
use crate::store::Store;

pub(crate) struct AppState {
    pub config: ServerConfig,
    pub(crate) admission: Arc<crate::admission::Admission>,
    /// Event rates shared by the sockets of one address, and of one signed-in user.
    pub(crate) address_rates: Arc<crate::limits::SharedRates>,
    pub(crate) user_rates: Arc<crate::limits::SharedRates>,
    /// Set once the server began shutting down: no new connection is taken.
    pub(crate) closing: std::sync::atomic::AtomicBool,
    pub store: Arc<Store>,
    pub verifier: TokenVerifier,
    pub gate: Gate,
    pub metrics: Metrics,
    pub rooms: Registry,
    /// The SFU, when classes run on it (`--sfu always`).
    pub(crate) sfu: Option<crate::sfu::Sfu>,
    /// The server's own TURN relay (`--turn`).
    pub(crate) turn: Option<crate::turn::Turn>,
    pub started: std::time::Instant,
}
