//! What the fuzz target drives (`signaling-server/fuzz`, `cargo fuzz run turn_messages`), and
//! the replay of its corpus in the normal tests: a relay with one client that holds an
//! allocation and a channel to a peer, then the input cut into messages from clients (UDP and
//! stream), from the peer, and steps of time. Nothing may panic, and the client keeps relaying.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::TurnCounters;
use super::core::{ClientId, Input, Output, Rules, TurnCore};
use super::credentials::Credentials;
use super::peer_filter::PeerFilter;

/// Feeds `data` to a relay: each message is a selector byte, a two-byte length and the bytes.
#[doc(hidden)]
pub fn exercise(data: &[u8]) {
    let now = Instant::now();
    let mut core = TurnCore::new(
        Rules {
            relay_ip: "203.0.113.1".parse().unwrap(),
            relay_public_ip: None,
            max_allocations: 8,
            max_allocations_per_user: 4,
            max_bytes_per_second: 1_000_000,
        },
        Credentials::new("fuzzing-secret", "classroom", [1; 32]),
        PeerFilter::new(vec![], vec!["203.0.113.1".parse().unwrap()], vec![]),
        Arc::new(TurnCounters::default()),
        now,
        1_800_000_000,
    );
    let clients = [
        ClientId::Udp("198.51.100.10:40000".parse().unwrap()),
        ClientId::Udp("198.51.100.11:40000".parse().unwrap()),
        ClientId::Stream(1),
    ];
    let peer: SocketAddr = "198.51.100.20:5000".parse().unwrap();
    let mut t = now;
    let mut rest = data;
    while rest.len() >= 3 {
        let selector = rest[0];
        let len = (u16::from_be_bytes([rest[1], rest[2]]) as usize).min(rest.len() - 3);
        let message = &rest[3..3 + len];
        rest = &rest[3 + len..];
        match selector % 5 {
            0..=2 => {
                let client = clients[(selector % 3) as usize];
                let source = match client {
                    ClientId::Udp(a) => a,
                    ClientId::Stream(_) => "198.51.100.12:40000".parse().unwrap(),
                };
                core.handle_input(
                    t,
                    Input::FromClient {
                        client,
                        source,
                        data: message,
                    },
                );
            }
            3 => core.handle_input(
                t,
                Input::FromPeer {
                    relay: (selector / 5) as u64,
                    peer,
                    data: message,
                },
            ),
            _ => {
                t += Duration::from_secs(selector as u64);
                core.handle_input(t, Input::Timeout);
            }
        }
        while let Some(out) = core.poll_output() {
            if let Output::BindRelay { relay, ip } = out {
                core.handle_input(
                    t,
                    Input::RelayBound {
                        relay,
                        result: Ok(SocketAddr::new(ip, 50_000 + relay as u16)),
                    },
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    /// Every input the fuzzer kept (`signaling-server/fuzz/corpus/turn_messages`) runs through.
    #[test]
    fn the_fuzz_corpus_replays_without_a_panic() {
        let dir =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/turn_messages");
        let mut n = 0;
        for entry in std::fs::read_dir(&dir).expect("the corpus is in the repository") {
            let bytes = std::fs::read(entry.unwrap().path()).unwrap();
            super::exercise(&bytes);
            n += 1;
        }
        assert!(n > 0, "an empty corpus at {}", dir.display());
    }
}
