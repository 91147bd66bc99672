//! The engine's drivers simulated in memory, for the fast call tests (`call/fast_tests.rs`):
//! a signaling relay with the server's room rules, and links over a simulated network.

mod network;
mod relay;

pub(super) use network::{FAIL_AFTER, Network, SimulatedLinks};
pub(super) use relay::Relay;
