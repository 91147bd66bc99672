//! One typed configuration, merged from command-line flags > environment > TOML file > defaults.
//! Flags and environment variables are read by clap (`main.rs`); this module holds the file
//! layer and the defaults.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use classroom_wire::IceServer;
use serde::Deserialize;

use crate::auth::TokenRules;
use crate::error::ConfigError;

/// The shortest shared secret accepted for an HMAC key (the JWT secret, the TURN secret): an
/// empty or short one lets anyone who guesses it sign in or relay.
pub(crate) const MIN_SECRET_BYTES: usize = 32;

/// Refuses a secret shorter than [`MIN_SECRET_BYTES`], naming where it came from.
pub fn check_secret(what: &str, secret: &str) -> Result<(), ConfigError> {
    if secret.len() < MIN_SECRET_BYTES {
        return Err(ConfigError::Invalid(format!(
            "the {what} is {} bytes long; it must be at least {MIN_SECRET_BYTES} \
             (make one with `openssl rand -base64 32`)",
            secret.len()
        )));
    }
    Ok(())
}

/// Which web pages may open a Socket.IO connection (their `Origin` header). Native clients
/// send none and are not affected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OriginPolicy {
    /// Any page: the LMS's pages live on other origins than this server.
    Any,
    /// Only pages served from a loopback address or `localhost`: a local class, which no web
    /// page the user happens to have open elsewhere may reach.
    Loopback,
    /// Only these origins (`https://lms.example.org`), and pages this server serves itself.
    List(Vec<String>),
}

/// Everything the server needs to run.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    /// A key every client must present in the handshake (`auth: { key }`); a local class sets
    /// a random one per launch, carried by the links the app prints.
    pub join_key: Option<String>,
    pub origins: OriginPolicy,
    /// Bearer token for `/metrics`; without one, metrics are served only in development mode.
    pub metrics_token: Option<String>,
    /// Trust the identity in the `join-session` payload when no token is given (local classes).
    pub dev_mode: bool,
    /// Development mode: this user id is every class's instructor and nobody else's claim is
    /// taken; without it, the first in each class to claim the place has it.
    pub dev_instructor: Option<String>,
    /// HS256 secret shared with the LMS; tokens are refused when it is absent.
    pub jwt_secret: Option<String>,
    /// `iss`, `aud` and the longest lifetime a token must have.
    pub token_rules: TokenRules,
    /// SQLite file for classes, enrollments and chat history; `None` keeps them in memory.
    pub database: Option<PathBuf>,
    /// Create sessions on the first join (dev mode default) instead of refusing unknown ones.
    pub auto_create_sessions: bool,
    /// Optional LMS endpoint asked whether a user is enrolled (POST `{sessionId, userId}`).
    pub enrollment_hook: Option<String>,
    /// The secret that signs each request to the hook (required with a hook, 32 bytes or more).
    pub enrollment_hook_secret: Option<String>,
    /// Accept an `http://` hook (a test, or an LMS on the same host); https otherwise.
    pub enrollment_hook_allow_http: bool,
    pub ice_servers: Vec<IceServer>,
    /// Shared secret of a TURN server using the REST credential scheme (time-limited).
    pub turn_secret: Option<String>,
    pub turn_urls: Vec<String>,
    pub turn_credential_ttl: Duration,
    /// The server's own TURN relay (`--turn`); its URLs and a secret are filled in when the
    /// two settings above are not given.
    pub turn: Option<crate::turn::TurnConfig>,
    /// How often the enrollment of a signed-in member is checked again while connected.
    pub enrollment_recheck: Duration,
    pub limits: Limits,
    pub ping_interval: Duration,
    pub ping_timeout: Duration,
    /// Whether classes run on the SFU, and its media port (`docs/protocol.md`, "The SFU").
    pub sfu: crate::sfu::SfuConfig,
    /// Who waits to be let in, in a class whose instructor has not said otherwise.
    pub waiting_room: classroom_wire::WaitingPolicy,
}

/// Bounds that protect the server and everyone else in a class from one client.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Largest Engine.IO packet; larger ones close that client's connection.
    pub max_transport_payload: u64,
    pub max_sdp_bytes: usize,
    pub max_candidate_bytes: usize,
    pub max_chat_chars: usize,
    pub max_name_chars: usize,
    pub max_id_chars: usize,
    pub max_participants_per_session: usize,
    /// Socket.IO connections the server holds at once (0: no limit).
    pub max_connections: usize,
    /// Connections from one address (0: no limit, for a server behind a reverse proxy).
    pub max_connections_per_ip: usize,
    pub events_per_second: f64,
    pub event_burst: f64,
    /// Events per second of all the sockets of one address together (0: no such limit), and
    /// the burst; likewise of one signed-in user.
    pub events_per_second_per_address: f64,
    pub event_burst_per_address: f64,
    pub events_per_second_per_user: f64,
    pub event_burst_per_user: f64,
    /// Chat messages per second of one member (over all its sockets), and the burst.
    pub chat_per_second: f64,
    pub chat_burst: f64,
    pub chat_history_len: usize,
    /// Chat older than this is deleted (0: kept for ever).
    pub chat_retention_days: u64,
    /// Where sessions are made on first join (development mode, no enrollment hook): what a
    /// session that is no class leaves behind (chat, polls, bars) is deleted once nothing
    /// happened in it for this long and nobody is in it (0: kept, as chat is).
    pub ad_hoc_retention_hours: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_transport_payload: 1_000_000,
            max_sdp_bytes: 64 * 1024,
            max_candidate_bytes: 1024,
            max_chat_chars: 4000,
            max_name_chars: 128,
            max_id_chars: 128,
            max_participants_per_session: 50,
            max_connections: 20_000,
            max_connections_per_ip: 1_000,
            events_per_second: 100.0,
            event_burst: 400.0,
            events_per_second_per_address: 2_000.0,
            event_burst_per_address: 8_000.0,
            events_per_second_per_user: 200.0,
            event_burst_per_user: 800.0,
            chat_per_second: 2.0,
            chat_burst: 10.0,
            chat_history_len: 50,
            chat_retention_days: 180,
            ad_hoc_retention_hours: 24,
        }
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 3001)),
            join_key: None,
            origins: OriginPolicy::Any,
            metrics_token: None,
            dev_mode: false,
            dev_instructor: None,
            jwt_secret: None,
            token_rules: TokenRules::default(),
            database: None,
            auto_create_sessions: false,
            enrollment_hook: None,
            enrollment_hook_secret: None,
            enrollment_hook_allow_http: false,
            ice_servers: default_ice_servers(),
            turn_secret: None,
            turn_urls: Vec::new(),
            turn_credential_ttl: Duration::from_secs(6 * 3600),
            turn: None,
            enrollment_recheck: Duration::from_secs(60),
            limits: Limits::default(),
            // Shorter than Socket.IO's 25 s and 20 s: a connection that died silently (a
            // network gone, TCP backing off its retransmissions) is noticed within 20 s, on
            // both sides, and the client connects afresh instead of waiting for TCP
            // (`docs/protocol.md`). LiveKit pings every 10 s too.
            ping_interval: Duration::from_secs(10),
            ping_timeout: Duration::from_secs(10),
            sfu: crate::sfu::SfuConfig::off(),
            waiting_room: classroom_wire::WaitingPolicy::Open,
        }
    }
}

impl ServerConfig {
    /// The class server the desktop app runs inside itself: development mode (identity from
    /// `join-session`), on loopback only, reachable only with this launch's random key and only
    /// from pages served on this machine, and no public STUN server asked.
    pub fn local_class(port: u16) -> Self {
        ServerConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], port)),
            join_key: Some(random_key()),
            origins: OriginPolicy::Loopback,
            dev_mode: true,
            auto_create_sessions: true,
            ice_servers: Vec::new(),
            ..ServerConfig::default()
        }
    }
}

/// A random key (122 bits from the operating system's generator), URL-safe.
pub(crate) fn random_key() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// The browser version's defaults.
pub(crate) fn default_ice_servers() -> Vec<IceServer> {
    vec![
        IceServer {
            urls: vec!["stun:stun.l.google.com:19302".into()],
            username: None,
            credential: None,
        },
        IceServer {
            urls: vec!["stun:stun1.l.google.com:19302".into()],
            username: None,
            credential: None,
        },
    ]
}

/// The TOML file layer: every field optional, same names as the flags (snake_case).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub listen: Option<SocketAddr>,
    pub dev: Option<bool>,
    pub jwt_secret: Option<String>,
    pub jwt_issuer: Option<String>,
    pub jwt_audience: Option<String>,
    pub max_token_lifetime_secs: Option<u64>,
    pub database: Option<PathBuf>,
    pub auto_create_sessions: Option<bool>,
    pub enrollment_hook: Option<String>,
    pub enrollment_hook_secret: Option<String>,
    pub enrollment_hook_allow_http: Option<bool>,
    pub ice_servers: Option<Vec<IceServer>>,
    pub turn_secret: Option<String>,
    pub turn_urls: Option<Vec<String>>,
    pub turn_credential_ttl_secs: Option<u64>,
    pub enrollment_recheck_secs: Option<u64>,
    pub ping_interval_ms: Option<u64>,
    pub ping_timeout_ms: Option<u64>,
    #[serde(default)]
    pub limits: FileLimits,
    /// The server's own TURN relay; read by the command line, whose flags override each key.
    pub turn: Option<FileTurn>,
    /// The SFU and when classes use it; read by the command line, whose flags override each
    /// key.
    pub sfu: Option<FileSfu>,
}

/// The `[sfu]` table (`docs/protocol.md`, "The SFU"): one key per flag, `mode` for `--sfu`,
/// the others without their `--sfu-` prefix.
#[derive(Debug, Default, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSfu {
    /// `off`, `always` or `auto` (`--sfu`).
    pub mode: Option<crate::sfu::SfuMode>,
    pub mesh_max: Option<usize>,
    pub audio_above: Option<usize>,
    pub loudest: Option<usize>,
    pub media_address: Option<std::net::IpAddr>,
    pub media_port: Option<u16>,
    pub public_ip: Option<std::net::IpAddr>,
}

/// The `[turn]` table: the server's own relay (`docs/turn.md`), one key per `--turn-…` flag.
#[derive(Debug, Default, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileTurn {
    /// Run the relay (`--turn`).
    pub enabled: Option<bool>,
    pub address: Option<std::net::IpAddr>,
    pub port: Option<u16>,
    pub tls_port: Option<u16>,
    pub tls_address: Option<std::net::IpAddr>,
    pub tls_host: Option<String>,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    pub relay_address: Option<std::net::IpAddr>,
    pub public_ip: Option<std::net::IpAddr>,
    /// CIDR ranges, as `--turn-allow-peer`.
    pub allow_peers: Option<Vec<String>>,
    pub user_quota: Option<usize>,
    pub total_quota: Option<usize>,
    pub max_bps: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileLimits {
    pub max_transport_payload: Option<u64>,
    pub max_sdp_bytes: Option<usize>,
    pub max_chat_chars: Option<usize>,
    pub max_participants_per_session: Option<usize>,
    pub max_connections: Option<usize>,
    pub max_connections_per_ip: Option<usize>,
    pub events_per_second: Option<f64>,
    pub event_burst: Option<f64>,
    pub events_per_second_per_address: Option<f64>,
    pub event_burst_per_address: Option<f64>,
    pub events_per_second_per_user: Option<f64>,
    pub event_burst_per_user: Option<f64>,
    pub chat_per_second: Option<f64>,
    pub chat_burst: Option<f64>,
    pub chat_history_len: Option<usize>,
    pub chat_retention_days: Option<u64>,
    pub ad_hoc_retention_hours: Option<u64>,
}

impl FileConfig {
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        toml::from_str(&text).map_err(|source| ConfigError::Parse {
            path: path.to_owned(),
            source,
        })
    }
}

impl ServerConfig {
    /// Fills the configuration from a file layer: values already set by a higher layer win,
    /// so callers apply the file first and flags/environment after.
    pub fn apply_file(&mut self, file: FileConfig) {
        let FileConfig {
            listen,
            dev,
            jwt_secret,
            jwt_issuer,
            jwt_audience,
            max_token_lifetime_secs,
            database,
            auto_create_sessions,
            enrollment_hook,
            enrollment_hook_secret,
            enrollment_hook_allow_http,
            ice_servers,
            turn_secret,
            turn_urls,
            turn_credential_ttl_secs,
            enrollment_recheck_secs,
            ping_interval_ms,
            ping_timeout_ms,
            limits,
            // The command line builds the relay's and the SFU's settings from them and its
            // flags together.
            turn: _,
            sfu: _,
        } = file;
        if let Some(v) = listen {
            self.listen = v;
        }
        if let Some(v) = dev {
            self.dev_mode = v;
            self.auto_create_sessions = v;
        }
        if jwt_secret.is_some() {
            self.jwt_secret = jwt_secret;
        }
        if jwt_issuer.is_some() {
            self.token_rules.issuer = jwt_issuer;
        }
        if jwt_audience.is_some() {
            self.token_rules.audience = jwt_audience;
        }
        if let Some(v) = max_token_lifetime_secs {
            self.token_rules.max_lifetime = Duration::from_secs(v);
        }
        if database.is_some() {
            self.database = database;
        }
        if let Some(v) = auto_create_sessions {
            self.auto_create_sessions = v;
        }
        if enrollment_hook.is_some() {
            self.enrollment_hook = enrollment_hook;
        }
        if enrollment_hook_secret.is_some() {
            self.enrollment_hook_secret = enrollment_hook_secret;
        }
        if let Some(v) = enrollment_hook_allow_http {
            self.enrollment_hook_allow_http = v;
        }
        if let Some(v) = ice_servers {
            self.ice_servers = v;
        }
        if turn_secret.is_some() {
            self.turn_secret = turn_secret;
        }
        if let Some(v) = turn_urls {
            self.turn_urls = v;
        }
        if let Some(v) = turn_credential_ttl_secs {
            self.turn_credential_ttl = Duration::from_secs(v);
        }
        if let Some(v) = enrollment_recheck_secs {
            self.enrollment_recheck = Duration::from_secs(v);
        }
        if let Some(v) = ping_interval_ms {
            self.ping_interval = Duration::from_millis(v);
        }
        if let Some(v) = ping_timeout_ms {
            self.ping_timeout = Duration::from_millis(v);
        }
        let l = &mut self.limits;
        if let Some(v) = limits.max_transport_payload {
            l.max_transport_payload = v;
        }
        if let Some(v) = limits.max_sdp_bytes {
            l.max_sdp_bytes = v;
        }
        if let Some(v) = limits.max_chat_chars {
            l.max_chat_chars = v;
        }
        if let Some(v) = limits.max_connections {
            l.max_connections = v;
        }
        if let Some(v) = limits.max_connections_per_ip {
            l.max_connections_per_ip = v;
        }
        if let Some(v) = limits.max_participants_per_session {
            l.max_participants_per_session = v;
        }
        if let Some(v) = limits.events_per_second {
            l.events_per_second = v;
        }
        if let Some(v) = limits.event_burst {
            l.event_burst = v;
        }
        if let Some(v) = limits.chat_history_len {
            l.chat_history_len = v;
        }
        if let Some(v) = limits.chat_per_second {
            l.chat_per_second = v;
        }
        if let Some(v) = limits.events_per_second_per_address {
            l.events_per_second_per_address = v;
        }
        if let Some(v) = limits.event_burst_per_address {
            l.event_burst_per_address = v;
        }
        if let Some(v) = limits.events_per_second_per_user {
            l.events_per_second_per_user = v;
        }
        if let Some(v) = limits.event_burst_per_user {
            l.event_burst_per_user = v;
        }
        if let Some(v) = limits.chat_burst {
            l.chat_burst = v;
        }
        if let Some(v) = limits.chat_retention_days {
            l.chat_retention_days = v;
        }
        if let Some(v) = limits.ad_hoc_retention_hours {
            l.ad_hoc_retention_hours = v;
        }
    }

    /// Checks combinations that cannot work, before anything starts.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !self.dev_mode && self.jwt_secret.is_none() {
            return Err(ConfigError::Invalid(
                "no JWT secret: set --jwt-secret (CLASSROOM_JWT_SECRET) or run a local class with --dev".into(),
            ));
        }
        if let Some(secret) = &self.jwt_secret {
            check_secret(
                "JWT secret (--jwt-secret, CLASSROOM_JWT_SECRET, jwt_secret)",
                secret,
            )?;
        }
        if let Some(url) = &self.enrollment_hook {
            crate::enrollment::check_hook_url(url, self.enrollment_hook_allow_http)
                .map_err(|e| ConfigError::Invalid(e.to_string()))?;
        }
        match (&self.enrollment_hook, &self.enrollment_hook_secret) {
            (Some(_), None) => {
                return Err(ConfigError::Invalid(
                    "--enrollment-hook needs --enrollment-hook-secret: requests to the LMS are signed"
                        .into(),
                ));
            }
            (_, Some(secret)) => check_secret(
                "enrollment hook secret (--enrollment-hook-secret, CLASSROOM_ENROLLMENT_HOOK_SECRET)",
                secret,
            )?,
            (None, None) => {}
        }
        if let Some(secret) = &self.turn_secret {
            check_secret(
                "TURN secret (--turn-secret, CLASSROOM_TURN_SECRET, turn_secret)",
                secret,
            )?;
        }
        if self.join_key.as_ref().is_some_and(|key| key.len() < 16) {
            return Err(ConfigError::Invalid(
                "the join key must be at least 16 characters".into(),
            ));
        }
        if self.enrollment_recheck.is_zero() {
            return Err(ConfigError::Invalid(
                "the enrollment re-check interval must be positive".into(),
            ));
        }
        if self.token_rules.max_lifetime.is_zero() {
            return Err(ConfigError::Invalid(
                "the longest token lifetime must be positive".into(),
            ));
        }
        if self.turn_secret.is_some() && self.turn_urls.is_empty() && self.turn.is_none() {
            return Err(ConfigError::Invalid(
                "--turn-secret needs at least one --turn-url".into(),
            ));
        }
        if self.limits.chat_per_second <= 0.0 || self.limits.chat_burst < 1.0 {
            return Err(ConfigError::Invalid(
                "chat rate and burst must be positive".into(),
            ));
        }
        if self.limits.events_per_second <= 0.0 || self.limits.event_burst < 1.0 {
            return Err(ConfigError::Invalid(
                "event rate and burst must be positive".into(),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_values_fill_the_defaults() {
        let file: FileConfig = toml::from_str(
            r#"
            listen = "0.0.0.0:4000"
            dev = true
            ping_interval_ms = 1000
            [limits]
            chat_history_len = 7
            [[ice_servers]]
            urls = ["stun:stun.example.org:3478"]
            "#,
        )
        .unwrap();
        let mut cfg = ServerConfig::default();
        cfg.apply_file(file);
        assert_eq!(cfg.listen.port(), 4000);
        assert!(cfg.dev_mode && cfg.auto_create_sessions);
        assert_eq!(cfg.ping_interval, Duration::from_secs(1));
        assert_eq!(cfg.limits.chat_history_len, 7);
        assert_eq!(cfg.ice_servers.len(), 1);
    }

    #[test]
    fn unknown_file_keys_are_an_error() {
        assert!(toml::from_str::<FileConfig>("lisen = \"x\"").is_err());
    }

    #[test]
    fn auth_mode_without_secret_is_refused() {
        let cfg = ServerConfig::default();
        assert!(cfg.validate().is_err());
    }

    /// `CLASSROOM_JWT_SECRET=` gives an empty secret, and HMAC takes an empty key.
    #[test]
    fn empty_and_short_secrets_are_refused() {
        for secret in ["", "change me", &"x".repeat(MIN_SECRET_BYTES - 1)] {
            let cfg = ServerConfig {
                jwt_secret: Some(secret.to_owned()),
                ..ServerConfig::default()
            };
            let error = cfg.validate().unwrap_err().to_string();
            assert!(error.contains("at least 32"), "{error}");
            let cfg = ServerConfig {
                dev_mode: true,
                turn_secret: Some(secret.to_owned()),
                turn_urls: vec!["turn:127.0.0.1:3478".into()],
                ..ServerConfig::default()
            };
            assert!(
                cfg.validate()
                    .unwrap_err()
                    .to_string()
                    .contains("TURN secret")
            );
        }
        let cfg = ServerConfig {
            jwt_secret: Some("x".repeat(MIN_SECRET_BYTES)),
            ..ServerConfig::default()
        };
        assert!(cfg.validate().is_ok());
    }

    #[test]
    fn token_rules_come_from_the_file() {
        let file: FileConfig = toml::from_str(
            r#"
            jwt_issuer = "https://lms.example"
            jwt_audience = "classroom"
            max_token_lifetime_secs = 7200
            "#,
        )
        .unwrap();
        let mut cfg = ServerConfig::default();
        cfg.apply_file(file);
        assert_eq!(
            cfg.token_rules.issuer.as_deref(),
            Some("https://lms.example")
        );
        assert_eq!(cfg.token_rules.audience.as_deref(), Some("classroom"));
        assert_eq!(cfg.token_rules.max_lifetime, Duration::from_secs(7200));
    }
}
