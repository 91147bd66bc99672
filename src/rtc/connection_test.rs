//! The pre-join connection test: which paths to the class's servers work from this network.
//!
//! Each ICE server URL the class hands out is one path: `stun:` is direct UDP (a
//! server-reflexive candidate comes back), `turn:…?transport=udp`, `turn:…?transport=tcp` and
//! `turns:` are the relay over UDP, TCP and TLS (a relayed candidate comes back). Every path
//! is tried at once, each on a peer connection of its own that only gathers candidates, so
//! the whole test takes at most `limit`.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use classroom_wire::IceServer;
use tokio::sync::mpsc;
use webrtc::peer_connection::{
    PeerConnection, PeerConnectionBuilder, PeerConnectionEventHandler, RTCConfigurationBuilder,
    RTCIceCandidateType, RTCIceServer, RTCIceTransportPolicy, RTCPeerConnectionIceEvent,
    SettingEngineBuilder,
};

use super::RtcError;

/// A way from this network to the class.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Path {
    /// UDP straight to the other participants (what STUN finds).
    Direct,
    TurnUdp,
    TurnTcp,
    TurnTls,
}

impl Path {
    pub const ALL: [Path; 4] = [Path::Direct, Path::TurnUdp, Path::TurnTcp, Path::TurnTls];

    /// The path an ICE server URL tests, `None` for URLs that are not ICE servers.
    pub fn of_url(url: &str) -> Option<Path> {
        let lower = url.to_ascii_lowercase();
        let tcp = lower.contains("transport=tcp");
        if lower.starts_with("stun:") {
            Some(Path::Direct)
        } else if lower.starts_with("turns:") {
            // TURN over DTLS (`turns:…?transport=udp`) is not something this app speaks.
            (!lower.contains("transport=udp")).then_some(Path::TurnTls)
        } else if lower.starts_with("turn:") {
            Some(if tcp { Path::TurnTcp } else { Path::TurnUdp })
        } else {
            None
        }
    }
}

/// What one path did.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case", tag = "outcome")]
pub enum Outcome {
    /// It works: the server answered in `ms`.
    Works { ms: u64 },
    /// Nothing came back within the test's time.
    Blocked,
    /// The class hands out no server for this path.
    NotOffered,
    /// The path could not be tried here (a server URL this app cannot use, say).
    Failed { reason: String },
}

/// One path's result, with the server it tried (the first URL for it).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PathResult {
    pub path: Path,
    pub server: Option<String>,
    #[serde(flatten)]
    pub outcome: Outcome,
}

/// The test's results, one per [`Path`], in [`Path::ALL`]'s order.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ConnectionReport {
    pub paths: Vec<PathResult>,
}

impl ConnectionReport {
    pub fn works(&self, path: Path) -> bool {
        self.paths
            .iter()
            .any(|r| r.path == path && matches!(r.outcome, Outcome::Works { .. }))
    }
}

/// Tries every path the class's `ice_servers` offer, from sockets on `bind_ip`, for at most
/// `limit`. A path that cannot be tried says why in its result.
pub async fn run(ice_servers: &[IceServer], bind_ip: IpAddr, limit: Duration) -> ConnectionReport {
    let mut probes = Vec::new();
    for path in Path::ALL {
        let found = ice_servers.iter().find_map(|server| {
            server
                .urls
                .iter()
                .find(|url| Path::of_url(url) == Some(path))
                .map(|url| (server, url.clone()))
        });
        probes.push(async move {
            let Some((server, url)) = found else {
                return PathResult {
                    path,
                    server: None,
                    outcome: Outcome::NotOffered,
                };
            };
            let outcome = probe(path, server, &url, bind_ip, limit)
                .await
                .unwrap_or_else(|error| Outcome::Failed {
                    reason: error.to_string(),
                });
            PathResult {
                path,
                server: Some(server_of(&url)),
                outcome,
            }
        });
    }
    ConnectionReport {
        paths: futures_util::future::join_all(probes).await,
    }
}

/// `host:port` of an ICE server URL, for the words shown to IT.
fn server_of(url: &str) -> String {
    let rest = url.split_once(':').map_or(url, |(_, rest)| rest);
    rest.split('?').next().unwrap_or(rest).to_owned()
}

/// The candidate types a path's gathering reports.
struct Gathered(mpsc::UnboundedSender<RTCIceCandidateType>);

/// Closes its peer connection however the probe ends, cancelled included: a connection left
/// open would keep its sockets, its driver and its relay allocation.
struct Closing(Arc<dyn PeerConnection>);

impl Drop for Closing {
    fn drop(&mut self) {
        let connection = self.0.clone();
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                let _ = connection.close().await;
            });
        }
    }
}

#[async_trait::async_trait]
impl PeerConnectionEventHandler for Gathered {
    async fn on_ice_candidate(&self, event: RTCPeerConnectionIceEvent) {
        let _ = self.0.send(event.candidate.typ);
    }
}

async fn probe(
    path: Path,
    server: &IceServer,
    url: &str,
    bind_ip: IpAddr,
    limit: Duration,
) -> Result<Outcome, RtcError> {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let relay = path != Path::Direct;
    let configuration = RTCConfigurationBuilder::new()
        .with_ice_servers(vec![RTCIceServer {
            urls: vec![url.to_owned()],
            username: server.username.clone().unwrap_or_default(),
            credential: server.credential.clone().unwrap_or_default(),
        }])
        .with_ice_transport_policy(if relay {
            RTCIceTransportPolicy::Relay
        } else {
            RTCIceTransportPolicy::All
        })
        .build();
    let settings = SettingEngineBuilder::new()
        .with_multicast_dns_mode(rtc::ice::mdns::MulticastDnsMode::Disabled)
        .build();
    let connection: Arc<dyn PeerConnection> = Arc::new(
        PeerConnectionBuilder::new()
            .with_configuration(configuration)
            .with_setting_engine(settings)
            .with_handler(Arc::new(Gathered(tx)))
            .with_udp_addrs(vec![std::net::SocketAddr::new(bind_ip, 0)])
            .build()
            .await?,
    );
    let _closing = Closing(connection.clone());
    let start = Instant::now();
    // Something to negotiate, so that the offer starts gathering.
    connection
        .create_data_channel("connection-test", None)
        .await?;
    let offer = connection.create_offer(None).await?;
    connection.set_local_description(offer).await?;
    let wanted = if relay {
        RTCIceCandidateType::Relay
    } else {
        RTCIceCandidateType::Srflx
    };
    let outcome = tokio::time::timeout(limit, async {
        while let Some(typ) = rx.recv().await {
            if typ == wanted {
                return true;
            }
        }
        false
    })
    .await;
    Ok(match outcome {
        Ok(true) => Outcome::Works {
            ms: start.elapsed().as_millis() as u64,
        },
        _ => Outcome::Blocked,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_url_tests_its_path() {
        assert_eq!(Path::of_url("stun:203.0.113.1:3478"), Some(Path::Direct));
        assert_eq!(
            Path::of_url("turn:203.0.113.1:3478?transport=udp"),
            Some(Path::TurnUdp)
        );
        assert_eq!(Path::of_url("turn:203.0.113.1:3478"), Some(Path::TurnUdp));
        assert_eq!(
            Path::of_url("TURN:203.0.113.1:3478?transport=tcp"),
            Some(Path::TurnTcp)
        );
        assert_eq!(
            Path::of_url("turns:turn.school.example:443?transport=tcp"),
            Some(Path::TurnTls)
        );
        assert_eq!(Path::of_url("https://example.org"), None);
        assert_eq!(
            server_of("turns:turn.school.example:443?transport=tcp"),
            "turn.school.example:443"
        );
    }
}
