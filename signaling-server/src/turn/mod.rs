//! TURN inside the server (`--turn`): relays for participants that no direct path reaches,
//! behind symmetric NATs or firewalls that let only TCP or TLS out (RFC 8656; clients over
//! UDP, TCP and TLS, relays over UDP). Credentials are the REST ones the server hands out on
//! join, so this relay and an external coturn with the same secret are interchangeable.
//!
//! - `core.rs`: the rules, sans-IO (allocations, permissions, channels, lifetimes, quotas,
//!   bandwidth caps);
//! - `credentials.rs`: the REST usernames and passwords, and nonces;
//! - `peer_filter.rs`: where relays may send (not to the school's or the server's insides);
//! - `framing.rs`: STUN and channel messages cut out of a TCP or TLS stream;
//! - `driver.rs`: the sockets, on a thread of their own (`batch.rs`: the listener reads many
//!   datagrams per system call);
//! - this file: the configuration, the counters `/metrics` shows, and the handle.

mod batch;
mod core;
mod credentials;
mod driver;
mod framing;
mod fuzzing;
mod peer_filter;

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

pub use fuzzing::exercise;
pub use peer_filter::Cidr;

/// The TURN relay's part of the server's configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct TurnConfig {
    /// The address TURN listens on (UDP and TCP on `port`, TLS on `tls_port`).
    pub listen_ip: IpAddr,
    pub port: u16,
    /// TURN over TLS, with the certificate and key (PEM files).
    pub tls: Option<TurnTls>,
    /// The address relay sockets are opened on, and told to clients unless `public_ip` is set.
    pub relay_ip: IpAddr,
    pub public_ip: Option<IpAddr>,
    pub realm: String,
    /// Peer ranges relays may reach although they are internal (`--turn-allow-peer`).
    pub allow_peers: Vec<Cidr>,
    pub max_allocations: usize,
    pub max_allocations_per_user: usize,
    /// Bits per second one allocation may relay, both ways together (0: no cap).
    pub max_bps_per_allocation: u64,
    /// TCP and TLS clients connected at once.
    pub max_streams: usize,
    /// TCP and TLS clients connected at once from one address.
    pub max_streams_per_address: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub struct TurnTls {
    /// Where TURN over TLS listens, when not on the TURN address (a second address whose
    /// port 443 is free beside the HTTPS one, say).
    pub ip: Option<IpAddr>,
    pub port: u16,
    /// The name in the certificate, for the `turns:` URL clients are given (else the address).
    pub host: Option<String>,
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl TurnConfig {
    pub fn new(listen_ip: IpAddr) -> Self {
        TurnConfig {
            listen_ip,
            port: 3478,
            tls: None,
            relay_ip: listen_ip,
            public_ip: None,
            realm: "classroom".into(),
            allow_peers: Vec::new(),
            max_allocations: 10_000,
            max_allocations_per_user: 50,
            max_bps_per_allocation: 20_000_000,
            max_streams: 10_000,
            max_streams_per_address: 1_000,
        }
    }
}

/// Why a message or packet from a client or peer was refused or dropped (`/metrics`:
/// `classroom_turn_refused_total{reason}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// Not STUN, not channel data, or cut short.
    Malformed,
    Oversized,
    BadRequest,
    Unauthorized,
    Expired,
    StaleNonce,
    /// A request on an allocation signed by another username (441).
    WrongCredentials,
    AllocationMismatch,
    /// A request or packet for an allocation that does not exist.
    NoAllocation,
    UnsupportedTransport,
    Quota,
    /// A peer address the relay may not reach.
    ForbiddenPeer,
    /// A packet to or from a peer without a permission.
    NoPermission,
    NoChannel,
    OverBandwidth,
    /// No relay socket could be opened.
    Capacity,
    /// A TCP or TLS client over the connection limit, or one that failed its handshake.
    Connection,
    /// The socket toward a client or peer was full.
    SendBuffer,
}

impl Refusal {
    pub(crate) const ALL: [Refusal; 18] = [
        Refusal::Malformed,
        Refusal::Oversized,
        Refusal::BadRequest,
        Refusal::Unauthorized,
        Refusal::Expired,
        Refusal::StaleNonce,
        Refusal::WrongCredentials,
        Refusal::AllocationMismatch,
        Refusal::NoAllocation,
        Refusal::UnsupportedTransport,
        Refusal::Quota,
        Refusal::ForbiddenPeer,
        Refusal::NoPermission,
        Refusal::NoChannel,
        Refusal::OverBandwidth,
        Refusal::Capacity,
        Refusal::Connection,
        Refusal::SendBuffer,
    ];

    pub(crate) fn name(self) -> &'static str {
        match self {
            Refusal::Malformed => "malformed",
            Refusal::Oversized => "oversized",
            Refusal::BadRequest => "bad-request",
            Refusal::Unauthorized => "unauthorized",
            Refusal::Expired => "expired",
            Refusal::StaleNonce => "stale-nonce",
            Refusal::WrongCredentials => "wrong-credentials",
            Refusal::AllocationMismatch => "allocation-mismatch",
            Refusal::NoAllocation => "no-allocation",
            Refusal::UnsupportedTransport => "unsupported-transport",
            Refusal::Quota => "quota",
            Refusal::ForbiddenPeer => "forbidden-peer",
            Refusal::NoPermission => "no-permission",
            Refusal::NoChannel => "no-channel",
            Refusal::OverBandwidth => "over-bandwidth",
            Refusal::Capacity => "capacity",
            Refusal::Connection => "connection",
            Refusal::SendBuffer => "send-buffer",
        }
    }
}

/// What the relay counts, for `/metrics`.
#[derive(Default)]
pub(crate) struct TurnCounters {
    allocations: AtomicU64,
    allocations_total: AtomicU64,
    challenges: AtomicU64,
    to_peer_packets: AtomicU64,
    to_peer_bytes: AtomicU64,
    to_client_packets: AtomicU64,
    to_client_bytes: AtomicU64,
    tcp_connections: AtomicU64,
    tls_connections: AtomicU64,
    refused: [AtomicU64; Refusal::ALL.len()],
}

impl TurnCounters {
    pub(crate) fn refused(&self, r: Refusal) {
        self.refused[r as usize].fetch_add(1, Relaxed);
    }
    /// A client's TCP connection, or TLS once its handshake is done.
    pub(crate) fn connected(&self, tls: bool) {
        let n = if tls {
            &self.tls_connections
        } else {
            &self.tcp_connections
        };
        n.fetch_add(1, Relaxed);
    }
    fn challenged(&self) {
        self.challenges.fetch_add(1, Relaxed);
    }
    fn allocated(&self, now: usize) {
        self.allocations_total.fetch_add(1, Relaxed);
        self.allocations.store(now as u64, Relaxed);
    }
    fn released(&self, now: usize) {
        self.allocations.store(now as u64, Relaxed);
    }
    fn to_peer(&self, bytes: usize) {
        self.to_peer_packets.fetch_add(1, Relaxed);
        self.to_peer_bytes.fetch_add(bytes as u64, Relaxed);
    }
    fn to_client(&self, bytes: usize) {
        self.to_client_packets.fetch_add(1, Relaxed);
        self.to_client_bytes.fetch_add(bytes as u64, Relaxed);
    }

    /// The Prometheus text of these counters.
    pub(crate) fn render(&self, out: &mut String) {
        use std::fmt::Write;
        let g = |n: &AtomicU64| n.load(Relaxed);
        let _ = writeln!(
            out,
            "# HELP classroom_turn_allocations TURN allocations open now.\n# TYPE classroom_turn_allocations gauge\nclassroom_turn_allocations {}",
            g(&self.allocations)
        );
        let _ = writeln!(
            out,
            "# HELP classroom_turn_allocations_total TURN allocations made.\n# TYPE classroom_turn_allocations_total counter\nclassroom_turn_allocations_total {}",
            g(&self.allocations_total)
        );
        let _ = writeln!(
            out,
            "# HELP classroom_turn_challenges_total Unsigned requests answered with a realm and nonce.\n# TYPE classroom_turn_challenges_total counter\nclassroom_turn_challenges_total {}",
            g(&self.challenges)
        );
        let _ = writeln!(
            out,
            "# HELP classroom_turn_relayed_packets_total Packets relayed, by direction.\n# TYPE classroom_turn_relayed_packets_total counter\nclassroom_turn_relayed_packets_total{{direction=\"to-peer\"}} {}\nclassroom_turn_relayed_packets_total{{direction=\"to-client\"}} {}",
            g(&self.to_peer_packets),
            g(&self.to_client_packets)
        );
        let _ = writeln!(
            out,
            "# HELP classroom_turn_relayed_bytes_total Payload bytes relayed, by direction.\n# TYPE classroom_turn_relayed_bytes_total counter\nclassroom_turn_relayed_bytes_total{{direction=\"to-peer\"}} {}\nclassroom_turn_relayed_bytes_total{{direction=\"to-client\"}} {}",
            g(&self.to_peer_bytes),
            g(&self.to_client_bytes)
        );
        let _ = writeln!(
            out,
            "# HELP classroom_turn_connections_total Clients' TCP and TLS connections, by transport.\n# TYPE classroom_turn_connections_total counter\nclassroom_turn_connections_total{{transport=\"tcp\"}} {}\nclassroom_turn_connections_total{{transport=\"tls\"}} {}",
            g(&self.tcp_connections),
            g(&self.tls_connections)
        );
        let _ = writeln!(
            out,
            "# HELP classroom_turn_refused_total Messages and packets refused or dropped, by reason.\n# TYPE classroom_turn_refused_total counter"
        );
        for r in Refusal::ALL {
            let _ = writeln!(
                out,
                "classroom_turn_refused_total{{reason=\"{}\"}} {}",
                r.name(),
                g(&self.refused[r as usize])
            );
        }
    }
}

/// What stops the relay from starting.
#[derive(Debug, thiserror::Error)]
pub enum TurnError {
    #[error("TURN could not listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("TURN over TLS: {0}")]
    Tls(String),
    #[error("TURN needs a shared secret (--turn-secret)")]
    NoSecret,
    #[error("TURN could not start its thread: {0}")]
    Thread(std::io::Error),
    #[error(
        "TURN listens on {0}, which clients cannot be told to reach: give --turn-public-ip or --turn-url"
    )]
    NoAddress(IpAddr),
}

/// The running relay: its counters, and where it listens.
pub(crate) struct Turn {
    pub counters: std::sync::Arc<TurnCounters>,
    pub udp_addr: SocketAddr,
    pub tcp_addr: SocketAddr,
    pub tls_addr: Option<SocketAddr>,
    _thread: std::thread::JoinHandle<()>,
}

impl Turn {
    /// Opens the listeners and starts the relay's thread. `own_services` are addresses of this
    /// server that relays may reach (the SFU's media socket).
    pub(crate) fn start(
        config: &TurnConfig,
        secret: &str,
        own_services: Vec<SocketAddr>,
    ) -> Result<Turn, TurnError> {
        driver::start(config, secret, own_services)
    }

    /// The URLs clients are given for this relay: UDP and TCP, and TLS when it is on (by the
    /// certificate's name when one is configured).
    pub(crate) fn urls(&self, config: &TurnConfig) -> Result<Vec<String>, TurnError> {
        let ip = config.public_ip.unwrap_or(self.udp_addr.ip());
        if ip.is_unspecified() {
            return Err(TurnError::NoAddress(ip));
        }
        let host = match ip {
            IpAddr::V6(v6) => format!("[{v6}]"),
            v4 => v4.to_string(),
        };
        let mut urls = vec![
            format!("turn:{host}:{}?transport=udp", self.udp_addr.port()),
            format!("turn:{host}:{}?transport=tcp", self.tcp_addr.port()),
        ];
        if let Some(tls) = self.tls_addr {
            let name = config.tls.as_ref().and_then(|t| t.host.clone());
            let tls_host = match (config.tls.as_ref().and_then(|t| t.ip), tls.ip()) {
                (None, _) => host,
                (Some(_), IpAddr::V6(v6)) => format!("[{v6}]"),
                (Some(_), v4) => v4.to_string(),
            };
            urls.push(format!(
                "turns:{}:{}?transport=tcp",
                name.unwrap_or(tls_host),
                tls.port()
            ));
        }
        Ok(urls)
    }
}

#[cfg(test)]
mod core_tests;
#[cfg(test)]
mod driver_tests;
