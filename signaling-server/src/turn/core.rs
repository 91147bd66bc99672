//! The TURN server's rules, sans-IO (RFC 8656 over UDP, TCP and TLS client transports, UDP
//! relays): `handle_input(now, …)` takes what arrived, `poll_output()` gives what to send,
//! which relay socket to open or close, and the next deadline. The driver (`driver.rs`) owns
//! the sockets; tests wire this to themselves and advance time.

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rtc_stun::attributes::*;
use rtc_stun::error_code::*;
use rtc_stun::integrity::MessageIntegrity;
use rtc_stun::message::*;
use rtc_stun::textattrs::TextAttribute;
use rtc_stun::uattrs::UnknownAttributes;
use rtc_stun::xoraddr::XorMappedAddress;
use rtc_turn::proto::lifetime::Lifetime;
use rtc_turn::proto::relayaddr::RelayedAddress;

use super::credentials::{Credential, CredentialError, Credentials};
use super::peer_filter::{PeerFilter, PeerRefusal};
use super::{Refusal, TurnCounters};

/// One allocation's relay socket, as the driver knows it.
pub(crate) type RelayId = u64;

/// Where a client's messages come from: its UDP address at our listener, or a TCP or TLS
/// connection (the 5-tuple of RFC 8656).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum ClientId {
    Udp(SocketAddr),
    Stream(u64),
}

pub(crate) enum Input<'a> {
    /// A datagram, or one framed message of a stream, from a client; `source` is its address.
    FromClient {
        client: ClientId,
        source: SocketAddr,
        data: &'a [u8],
    },
    /// A datagram a peer sent to a relay address.
    FromPeer {
        relay: RelayId,
        peer: SocketAddr,
        data: &'a [u8],
    },
    /// The driver opened (or failed to open) the relay socket `BindRelay` asked for.
    RelayBound {
        relay: RelayId,
        result: Result<SocketAddr, String>,
    },
    /// A TCP or TLS client went away: its allocations end with it.
    StreamClosed(u64),
    Timeout,
}

#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Output {
    ToClient {
        client: ClientId,
        data: Vec<u8>,
    },
    ToPeer {
        relay: RelayId,
        peer: SocketAddr,
        data: Vec<u8>,
    },
    /// Open a UDP socket on `ip` (any port) for allocation `relay`, and say `RelayBound`.
    BindRelay {
        relay: RelayId,
        ip: IpAddr,
    },
    CloseRelay(RelayId),
    /// Call `handle_input(Timeout)` at this instant.
    Timeout(Instant),
}

/// The rules' settings (from `TurnConfig`).
#[derive(Debug, Clone)]
pub(crate) struct Rules {
    pub relay_ip: IpAddr,
    /// The relay address told to clients, when it is not the bound one (a 1:1 NAT).
    pub relay_public_ip: Option<IpAddr>,
    pub max_allocations: usize,
    pub max_allocations_per_user: usize,
    /// Bytes per second one allocation may relay, both ways together (0: no cap).
    pub max_bytes_per_second: u64,
}

pub(crate) const DEFAULT_LIFETIME: Duration = Duration::from_secs(600);
pub(crate) const MAX_LIFETIME: Duration = Duration::from_secs(3600);
pub(crate) const PERMISSION_LIFETIME: Duration = Duration::from_secs(300);
pub(crate) const CHANNEL_LIFETIME: Duration = Duration::from_secs(600);
/// Peers one allocation may have permissions for, and channels it may bind.
pub(crate) const MAX_PERMISSIONS: usize = 64;
pub(crate) const MAX_CHANNELS: usize = 64;
/// Largest message taken from a client (a WebRTC packet is well under 1,500 bytes).
pub(crate) const MAX_MESSAGE: usize = 4096;
const SWEEP_EVERY: Duration = Duration::from_secs(1);
const MIN_CHANNEL: u16 = 0x4000;
const MAX_CHANNEL: u16 = 0x4FFF;

struct Allocation {
    client: ClientId,
    source: SocketAddr,
    credential: Credential,
    /// Set once the driver has opened the socket; the Allocate is answered then.
    relay_addr: Option<SocketAddr>,
    bound_addr: Option<SocketAddr>,
    allocate_txn: TransactionId,
    /// The success response, resent to a retransmitted Allocate.
    allocate_response: Option<Vec<u8>>,
    expires: Instant,
    permissions: Vec<(IpAddr, Instant)>,
    channels: Vec<Channel>,
    bucket: Bucket,
}

struct Channel {
    number: u16,
    peer: SocketAddr,
    expires: Instant,
}

/// A token bucket over bytes (one second of burst).
struct Bucket {
    rate: f64,
    tokens: f64,
    last: Instant,
}

impl Bucket {
    fn new(bytes_per_second: u64, now: Instant) -> Self {
        Bucket {
            rate: bytes_per_second as f64,
            tokens: bytes_per_second as f64,
            last: now,
        }
    }

    fn take(&mut self, bytes: usize, now: Instant) -> bool {
        if self.rate == 0.0 {
            return true;
        }
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * self.rate).min(self.rate);
        if self.tokens >= bytes as f64 {
            self.tokens -= bytes as f64;
            true
        } else {
            false
        }
    }
}

pub(crate) struct TurnCore {
    rules: Rules,
    credentials: Credentials,
    filter: PeerFilter,
    counters: Arc<TurnCounters>,
    allocations: HashMap<RelayId, Allocation>,
    by_client: HashMap<ClientId, RelayId>,
    per_user: HashMap<String, usize>,
    /// The relay addresses of every allocation (bound and advertised): relays may reach them.
    relay_addrs: std::collections::HashSet<SocketAddr>,
    next_relay: RelayId,
    out: VecDeque<Output>,
    started: Instant,
    unix_at_start: u64,
    next_sweep: Option<Instant>,
}

/// A refusal answered to a request: its code, why, and whether the answer is signed.
struct Reject {
    code: ErrorCode,
    reason: &'static str,
    refusal: Refusal,
}

impl Reject {
    fn new(code: ErrorCode, reason: &'static str, refusal: Refusal) -> Self {
        Reject {
            code,
            reason,
            refusal,
        }
    }
}

impl TurnCore {
    pub fn new(
        rules: Rules,
        credentials: Credentials,
        filter: PeerFilter,
        counters: Arc<TurnCounters>,
        now: Instant,
        unix_now: u64,
    ) -> Self {
        TurnCore {
            rules,
            credentials,
            filter,
            counters,
            allocations: HashMap::new(),
            by_client: HashMap::new(),
            per_user: HashMap::new(),
            relay_addrs: Default::default(),
            next_relay: 1,
            out: VecDeque::new(),
            started: now,
            unix_at_start: unix_now,
            next_sweep: None,
        }
    }

    pub fn poll_output(&mut self) -> Option<Output> {
        self.out.pop_front()
    }

    #[cfg(test)]
    pub fn allocation_count(&self) -> usize {
        self.allocations.len()
    }

    fn unix(&self, now: Instant) -> u64 {
        self.unix_at_start + now.saturating_duration_since(self.started).as_secs()
    }

    pub fn handle_input(&mut self, now: Instant, input: Input<'_>) {
        match input {
            Input::FromClient {
                client,
                source,
                data,
            } => self.from_client(now, client, source, data),
            Input::FromPeer { relay, peer, data } => self.from_peer(now, relay, peer, data),
            Input::RelayBound { relay, result } => self.relay_bound(now, relay, result),
            Input::StreamClosed(id) => {
                if let Some(relay) = self.by_client.get(&ClientId::Stream(id)).copied() {
                    self.remove(relay);
                }
            }
            Input::Timeout => self.sweep(now),
        }
    }

    fn refuse(&self, refusal: Refusal) {
        self.counters.refused(refusal);
    }

    // ---- from clients ----

    fn from_client(&mut self, now: Instant, client: ClientId, source: SocketAddr, data: &[u8]) {
        if data.len() > MAX_MESSAGE {
            self.refuse(Refusal::Oversized);
            return;
        }
        match data.first() {
            Some(0x40..=0x7f) => self.channel_data(now, client, data),
            Some(0x00..=0x3f) => self.stun(now, client, source, data),
            _ => self.refuse(Refusal::Malformed),
        }
    }

    fn channel_data(&mut self, now: Instant, client: ClientId, data: &[u8]) {
        if data.len() < 4 {
            return self.refuse(Refusal::Malformed);
        }
        let number = u16::from_be_bytes([data[0], data[1]]);
        let len = u16::from_be_bytes([data[2], data[3]]) as usize;
        if data.len() < 4 + len {
            return self.refuse(Refusal::Malformed);
        }
        let Some(&relay) = self.by_client.get(&client) else {
            return self.refuse(Refusal::NoAllocation);
        };
        let Some(a) = self.allocations.get_mut(&relay) else {
            return self.refuse(Refusal::NoAllocation);
        };
        let Some(peer) = a
            .channels
            .iter()
            .find(|c| c.number == number && c.expires > now)
            .map(|c| c.peer)
        else {
            return self.counters.refused(Refusal::NoChannel);
        };
        if let Err(r) = may_send(a, &self.filter, &self.relay_addrs, peer, len, now) {
            return self.counters.refused(r);
        }
        self.counters.to_peer(len);
        self.out.push_back(Output::ToPeer {
            relay,
            peer,
            data: data[4..4 + len].to_vec(),
        });
    }

    fn stun(&mut self, now: Instant, client: ClientId, source: SocketAddr, data: &[u8]) {
        let mut m = Message::new();
        m.raw = data.to_vec();
        if m.decode().is_err() {
            return self.refuse(Refusal::Malformed);
        }
        let class = m.typ.class;
        let method = m.typ.method;
        if class == CLASS_INDICATION {
            if method == METHOD_SEND {
                self.send_indication(now, client, &m);
            } else {
                self.refuse(Refusal::BadRequest);
            }
            return;
        }
        if class != CLASS_REQUEST {
            // A response from a client is not something a server answers.
            return self.refuse(Refusal::BadRequest);
        }
        if method == METHOD_BINDING {
            let mut r = Message::new();
            r.typ = MessageType::new(METHOD_BINDING, CLASS_SUCCESS_RESPONSE);
            r.transaction_id = m.transaction_id;
            r.write_header();
            let mapped = XorMappedAddress {
                ip: source.ip(),
                port: source.port(),
            };
            if mapped.add_to(&mut r).is_ok() {
                self.out.push_back(Output::ToClient {
                    client,
                    data: r.raw,
                });
            }
            return;
        }
        let unknown = unknown_required(&m);
        if !unknown.is_empty() {
            self.refuse(Refusal::BadRequest);
            let mut r = response(&m, CLASS_ERROR_RESPONSE);
            let _ = error_code(CODE_UNKNOWN_ATTRIBUTE, "Unknown Attribute").add_to(&mut r);
            let _ = UnknownAttributes(unknown).add_to(&mut r);
            return self.out.push_back(Output::ToClient {
                client,
                data: r.raw,
            });
        }
        let credential = match self.authenticate(now, &mut m) {
            Ok(c) => c,
            Err(reply) => {
                return self.out.push_back(Output::ToClient {
                    client,
                    data: reply,
                });
            }
        };
        let result = match method {
            METHOD_ALLOCATE => self.allocate(now, client, source, &m, &credential),
            METHOD_REFRESH => self.refresh(now, client, &m, &credential),
            METHOD_CREATE_PERMISSION => self.create_permission(now, client, &m, &credential),
            METHOD_CHANNEL_BIND => self.channel_bind(now, client, &m, &credential),
            _ => Err(Reject::new(
                CODE_BAD_REQUEST,
                "Unsupported Method",
                Refusal::BadRequest,
            )),
        };
        match result {
            Ok(Some(reply)) => self.out.push_back(Output::ToClient {
                client,
                data: reply,
            }),
            Ok(None) => {}
            Err(reject) => {
                self.refuse(reject.refusal);
                let mut r = response(&m, CLASS_ERROR_RESPONSE);
                let _ = error_code(reject.code, reject.reason).add_to(&mut r);
                sign(&mut r, &credential, &self.credentials);
                self.out.push_back(Output::ToClient {
                    client,
                    data: r.raw,
                });
            }
        }
    }

    /// The long-term credential check: a challenge (401 with realm and nonce) to an unsigned
    /// request, 438 to a stale nonce, 401 to an expired, unknown or badly signed username.
    fn authenticate(&self, now: Instant, m: &mut Message) -> Result<Credential, Vec<u8>> {
        let unix = self.unix(now);
        let request = MessageType::new(m.typ.method, CLASS_REQUEST);
        let txn = m.transaction_id;
        let challenge = |code: ErrorCode, reason: &str| {
            let mut r = Message::new();
            r.typ = MessageType::new(request.method, CLASS_ERROR_RESPONSE);
            r.transaction_id = txn;
            r.write_header();
            let _ = error_code(code, reason).add_to(&mut r);
            let _ =
                TextAttribute::new(ATTR_REALM, self.credentials.realm().to_string()).add_to(&mut r);
            let _ = TextAttribute::new(ATTR_NONCE, self.credentials.nonce(unix)).add_to(&mut r);
            r.raw
        };
        if !m.contains(ATTR_MESSAGE_INTEGRITY) {
            self.counters.challenged();
            return Err(challenge(CODE_UNAUTHORIZED, "Unauthorized"));
        }
        let (Ok(username), Ok(nonce)) = (
            TextAttribute::get_from_as(m, ATTR_USERNAME),
            TextAttribute::get_from_as(m, ATTR_NONCE),
        ) else {
            self.refuse(Refusal::BadRequest);
            let mut r = response(m, CLASS_ERROR_RESPONSE);
            let _ = error_code(CODE_BAD_REQUEST, "Bad Request").add_to(&mut r);
            return Err(r.raw);
        };
        if !self.credentials.nonce_is_fresh(&nonce.text, unix) {
            self.refuse(Refusal::StaleNonce);
            return Err(challenge(CODE_STALE_NONCE, "Stale Nonce"));
        }
        let credential = match self.credentials.check(&username.text, unix) {
            Ok(c) => c,
            Err(CredentialError::Expired) => {
                self.refuse(Refusal::Expired);
                return Err(challenge(CODE_UNAUTHORIZED, "Credentials Expired"));
            }
            Err(CredentialError::Malformed) => {
                self.refuse(Refusal::Unauthorized);
                return Err(challenge(CODE_UNAUTHORIZED, "Unauthorized"));
            }
        };
        if MessageIntegrity::check(m, &credential.key, self.credentials.crypto()).is_err() {
            self.refuse(Refusal::Unauthorized);
            return Err(challenge(CODE_UNAUTHORIZED, "Unauthorized"));
        }
        // What follows MESSAGE-INTEGRITY is not signed (but FINGERPRINT): ignored (RFC 8489
        // §14.5), so nobody on the path can append a peer address or a lifetime.
        if let Some(at) = m
            .attributes
            .0
            .iter()
            .position(|a| a.typ == ATTR_MESSAGE_INTEGRITY)
        {
            m.attributes.0.truncate(at + 1);
        }
        Ok(credential)
    }

    /// The allocation of `client`, when `credential` is the one that made it (else 441).
    fn own_allocation(&self, client: ClientId, credential: &Credential) -> Result<RelayId, Reject> {
        let Some(&relay) = self.by_client.get(&client) else {
            return Err(Reject::new(
                CODE_ALLOC_MISMATCH,
                "Allocation Mismatch",
                Refusal::NoAllocation,
            ));
        };
        let a = &self.allocations[&relay];
        if a.credential.username != credential.username {
            return Err(Reject::new(
                CODE_WRONG_CREDENTIALS,
                "Wrong Credentials",
                Refusal::WrongCredentials,
            ));
        }
        Ok(relay)
    }

    fn allocate(
        &mut self,
        now: Instant,
        client: ClientId,
        source: SocketAddr,
        m: &Message,
        credential: &Credential,
    ) -> Result<Option<Vec<u8>>, Reject> {
        if let Some(&relay) = self.by_client.get(&client) {
            let a = &self.allocations[&relay];
            if a.allocate_txn == m.transaction_id && a.credential.username == credential.username {
                // A retransmission: the same answer, or none yet while the socket opens.
                return Ok(a.allocate_response.clone());
            }
            return Err(Reject::new(
                CODE_ALLOC_MISMATCH,
                "Allocation Mismatch",
                Refusal::AllocationMismatch,
            ));
        }
        match m.get(ATTR_REQUESTED_TRANSPORT) {
            Ok(v) if v.first() == Some(&17) => {}
            Ok(_) => {
                return Err(Reject::new(
                    CODE_UNSUPPORTED_TRANS_PROTO,
                    "Unsupported Transport Protocol",
                    Refusal::UnsupportedTransport,
                ));
            }
            Err(_) => {
                return Err(Reject::new(
                    CODE_BAD_REQUEST,
                    "Missing REQUESTED-TRANSPORT",
                    Refusal::BadRequest,
                ));
            }
        }
        if m.contains(ATTR_RESERVATION_TOKEN) || m.contains(ATTR_EVEN_PORT) {
            return Err(Reject::new(
                CODE_INSUFFICIENT_CAPACITY,
                "Port Reservations Not Supported",
                Refusal::BadRequest,
            ));
        }
        if let Ok(family) = m.get(ATTR_REQUESTED_ADDRESS_FAMILY) {
            let wanted_v6 = family.first() == Some(&0x02);
            if wanted_v6 != self.rules.relay_ip.is_ipv6() {
                return Err(Reject::new(
                    CODE_ADDR_FAMILY_NOT_SUPPORTED,
                    "Address Family Not Supported",
                    Refusal::BadRequest,
                ));
            }
        }
        let users = self.per_user.get(&credential.user).copied().unwrap_or(0);
        if users >= self.rules.max_allocations_per_user
            || self.allocations.len() >= self.rules.max_allocations
        {
            return Err(Reject::new(
                CODE_ALLOC_QUOTA_REACHED,
                "Allocation Quota Reached",
                Refusal::Quota,
            ));
        }
        let relay = self.next_relay;
        self.next_relay += 1;
        let lifetime = requested_lifetime(m).unwrap_or(DEFAULT_LIFETIME);
        self.allocations.insert(
            relay,
            Allocation {
                client,
                source,
                credential: credential.clone(),
                relay_addr: None,
                bound_addr: None,
                allocate_txn: m.transaction_id,
                allocate_response: None,
                expires: now + lifetime.clamp(DEFAULT_LIFETIME, MAX_LIFETIME),
                permissions: Vec::new(),
                channels: Vec::new(),
                bucket: Bucket::new(self.rules.max_bytes_per_second, now),
            },
        );
        self.by_client.insert(client, relay);
        *self.per_user.entry(credential.user.clone()).or_default() += 1;
        self.counters.allocated(self.allocations.len());
        self.out.push_back(Output::BindRelay {
            relay,
            ip: self.rules.relay_ip,
        });
        self.schedule_sweep(now);
        Ok(None)
    }

    fn relay_bound(&mut self, now: Instant, relay: RelayId, result: Result<SocketAddr, String>) {
        let Some(a) = self.allocations.get_mut(&relay) else {
            // The allocation ended while its socket opened.
            if result.is_ok() {
                self.out.push_back(Output::CloseRelay(relay));
            }
            return;
        };
        let mut request = Message::new();
        request.typ = MessageType::new(METHOD_ALLOCATE, CLASS_REQUEST);
        request.transaction_id = a.allocate_txn;
        let client = a.client;
        match result {
            Ok(bound) => {
                let advertised = SocketAddr::new(
                    self.rules.relay_public_ip.unwrap_or(bound.ip()),
                    bound.port(),
                );
                a.relay_addr = Some(advertised);
                a.bound_addr = Some(bound);
                self.relay_addrs.insert(advertised);
                self.relay_addrs.insert(bound);
                let mut r = response(&request, CLASS_SUCCESS_RESPONSE);
                let _ = RelayedAddress {
                    ip: advertised.ip(),
                    port: advertised.port(),
                }
                .add_to(&mut r);
                let remaining = a.expires.saturating_duration_since(now);
                let _ = Lifetime(Duration::from_secs(remaining.as_secs())).add_to(&mut r);
                let _ = XorMappedAddress {
                    ip: a.source.ip(),
                    port: a.source.port(),
                }
                .add_to(&mut r);
                sign(&mut r, &a.credential, &self.credentials);
                a.allocate_response = Some(r.raw.clone());
                self.out.push_back(Output::ToClient {
                    client,
                    data: r.raw,
                });
            }
            Err(reason) => {
                tracing::warn!(%reason, "TURN: a relay socket could not be opened");
                let credential = a.credential.clone();
                self.remove(relay);
                self.refuse(Refusal::Capacity);
                let mut r = response(&request, CLASS_ERROR_RESPONSE);
                let _ =
                    error_code(CODE_INSUFFICIENT_CAPACITY, "Insufficient Capacity").add_to(&mut r);
                sign(&mut r, &credential, &self.credentials);
                self.out.push_back(Output::ToClient {
                    client,
                    data: r.raw,
                });
            }
        }
    }

    fn refresh(
        &mut self,
        now: Instant,
        client: ClientId,
        m: &Message,
        credential: &Credential,
    ) -> Result<Option<Vec<u8>>, Reject> {
        let relay = self.own_allocation(client, credential)?;
        let lifetime = requested_lifetime(m).unwrap_or(DEFAULT_LIFETIME);
        let mut r = response(m, CLASS_SUCCESS_RESPONSE);
        if lifetime.is_zero() {
            self.remove(relay);
            let _ = Lifetime(Duration::ZERO).add_to(&mut r);
        } else {
            let lifetime = lifetime.clamp(DEFAULT_LIFETIME, MAX_LIFETIME);
            if let Some(a) = self.allocations.get_mut(&relay) {
                a.expires = now + lifetime;
            }
            let _ = Lifetime(lifetime).add_to(&mut r);
        }
        sign(&mut r, credential, &self.credentials);
        Ok(Some(r.raw))
    }

    fn create_permission(
        &mut self,
        now: Instant,
        client: ClientId,
        m: &Message,
        credential: &Credential,
    ) -> Result<Option<Vec<u8>>, Reject> {
        let relay = self.own_allocation(client, credential)?;
        let peers = peer_addresses(m);
        if peers.is_empty() {
            return Err(Reject::new(
                CODE_BAD_REQUEST,
                "Missing XOR-PEER-ADDRESS",
                Refusal::BadRequest,
            ));
        }
        for peer in &peers {
            self.check_peer(relay, peer.ip())?;
        }
        let a = self
            .allocations
            .get_mut(&relay)
            .expect("own_allocation found it");
        for peer in peers {
            install_permission(a, peer.ip(), now)?;
        }
        let mut r = response(m, CLASS_SUCCESS_RESPONSE);
        sign(&mut r, credential, &self.credentials);
        Ok(Some(r.raw))
    }

    fn check_peer(&self, relay: RelayId, ip: IpAddr) -> Result<(), Reject> {
        let a = &self.allocations[&relay];
        let relay_v6 = a
            .relay_addr
            .map(|r| r.ip())
            .unwrap_or(self.rules.relay_ip)
            .is_ipv6();
        if ip.to_canonical().is_ipv6() != relay_v6 {
            return Err(Reject::new(
                CODE_PEER_ADDR_FAMILY_MISMATCH,
                "Peer Address Family Mismatch",
                Refusal::BadRequest,
            ));
        }
        let relays_at = self.rules.relay_public_ip.unwrap_or(self.rules.relay_ip);
        let permitted = self
            .filter
            .permit(ip, self.rules.relay_ip)
            .or_else(|_| self.filter.permit(ip, relays_at));
        match permitted {
            Ok(()) => Ok(()),
            Err(PeerRefusal::Internal) | Err(PeerRefusal::Server) => Err(Reject::new(
                CODE_FORBIDDEN,
                "Forbidden Peer Address",
                Refusal::ForbiddenPeer,
            )),
        }
    }

    fn channel_bind(
        &mut self,
        now: Instant,
        client: ClientId,
        m: &Message,
        credential: &Credential,
    ) -> Result<Option<Vec<u8>>, Reject> {
        let relay = self.own_allocation(client, credential)?;
        let bad = |reason| Reject::new(CODE_BAD_REQUEST, reason, Refusal::BadRequest);
        let number = match m.get(ATTR_CHANNEL_NUMBER) {
            Ok(v) if v.len() == 4 => u16::from_be_bytes([v[0], v[1]]),
            _ => return Err(bad("Missing CHANNEL-NUMBER")),
        };
        if !(MIN_CHANNEL..=MAX_CHANNEL).contains(&number) {
            return Err(bad("Channel Number Out Of Range"));
        }
        let peers = peer_addresses(m);
        let [peer] = peers[..] else {
            return Err(bad("One XOR-PEER-ADDRESS Expected"));
        };
        self.check_peer(relay, peer.ip())?;
        if self
            .filter
            .send(peer, self.relay_addrs.contains(&peer))
            .is_err()
        {
            return Err(Reject::new(
                CODE_FORBIDDEN,
                "Forbidden Peer Address",
                Refusal::ForbiddenPeer,
            ));
        }
        let a = self
            .allocations
            .get_mut(&relay)
            .expect("own_allocation found it");
        if a.permissions.len() >= MAX_PERMISSIONS
            && !a.permissions.iter().any(|(ip, _)| *ip == peer.ip())
        {
            return Err(too_many_permissions());
        }
        let by_number = a.channels.iter().position(|c| c.number == number);
        let by_peer = a.channels.iter().position(|c| c.peer == peer);
        match (by_number, by_peer) {
            (Some(i), Some(j)) if i == j => a.channels[i].expires = now + CHANNEL_LIFETIME,
            (None, None) => {
                if a.channels.len() >= MAX_CHANNELS {
                    return Err(Reject::new(
                        CODE_INSUFFICIENT_CAPACITY,
                        "Too Many Channels",
                        Refusal::Quota,
                    ));
                }
                a.channels.push(Channel {
                    number,
                    peer,
                    expires: now + CHANNEL_LIFETIME,
                });
            }
            _ => return Err(bad("Channel Or Peer Already Bound")),
        }
        install_permission(a, peer.ip(), now)?;
        let mut r = response(m, CLASS_SUCCESS_RESPONSE);
        sign(&mut r, credential, &self.credentials);
        Ok(Some(r.raw))
    }

    fn send_indication(&mut self, now: Instant, client: ClientId, m: &Message) {
        let Some(&relay) = self.by_client.get(&client) else {
            return self.refuse(Refusal::NoAllocation);
        };
        let (Some(peer), Ok(data)) = (peer_addresses(m).first().copied(), m.get(ATTR_DATA)) else {
            return self.refuse(Refusal::BadRequest);
        };
        let a = self
            .allocations
            .get_mut(&relay)
            .expect("by_client names allocations");
        if !has_permission(a, peer.ip(), now) {
            return self.counters.refused(Refusal::NoPermission);
        }
        if let Err(r) = may_send(a, &self.filter, &self.relay_addrs, peer, data.len(), now) {
            return self.counters.refused(r);
        }
        self.counters.to_peer(data.len());
        self.out.push_back(Output::ToPeer { relay, peer, data });
    }

    // ---- from peers ----

    fn from_peer(&mut self, now: Instant, relay: RelayId, peer: SocketAddr, data: &[u8]) {
        let Some(a) = self.allocations.get_mut(&relay) else {
            return self.counters.refused(Refusal::NoAllocation);
        };
        if !has_permission(a, peer.ip(), now) {
            return self.counters.refused(Refusal::NoPermission);
        }
        // WebRTC sends well under 1,500 bytes; a larger datagram only fills queues.
        if data.len() > MAX_MESSAGE - 64 {
            return self.counters.refused(Refusal::Oversized);
        }
        if !a.bucket.take(data.len(), now) {
            return self.counters.refused(Refusal::OverBandwidth);
        }
        let client = a.client;
        let packet = match a
            .channels
            .iter()
            .find(|c| c.peer == peer && c.expires > now)
        {
            Some(c) => {
                let padded = match client {
                    // Over TCP and TLS a channel message is padded to four bytes (RFC 8656 §12.5).
                    ClientId::Stream(_) => (data.len() + 3) & !3,
                    ClientId::Udp(_) => data.len(),
                };
                let mut p = Vec::with_capacity(4 + padded);
                p.extend_from_slice(&c.number.to_be_bytes());
                p.extend_from_slice(&(data.len() as u16).to_be_bytes());
                p.extend_from_slice(data);
                p.resize(4 + padded, 0);
                p
            }
            None => {
                let mut m = Message::new();
                m.typ = MessageType::new(METHOD_DATA, CLASS_INDICATION);
                m.transaction_id = TransactionId::new();
                m.write_header();
                let _ = XorMappedAddress {
                    ip: peer.ip(),
                    port: peer.port(),
                }
                .add_to_as(&mut m, ATTR_XOR_PEER_ADDRESS);
                m.add(ATTR_DATA, data);
                m.raw
            }
        };
        self.counters.to_client(data.len());
        self.out.push_back(Output::ToClient {
            client,
            data: packet,
        });
    }

    // ---- lifetimes ----

    fn schedule_sweep(&mut self, now: Instant) {
        if self.next_sweep.is_none() {
            let at = now + SWEEP_EVERY;
            self.next_sweep = Some(at);
            self.out.push_back(Output::Timeout(at));
        }
    }

    fn sweep(&mut self, now: Instant) {
        if self.next_sweep.is_some_and(|at| at > now) {
            return;
        }
        self.next_sweep = None;
        let expired: Vec<RelayId> = self
            .allocations
            .iter()
            .filter(|(_, a)| a.expires <= now)
            .map(|(r, _)| *r)
            .collect();
        for relay in expired {
            self.remove(relay);
        }
        for a in self.allocations.values_mut() {
            a.permissions.retain(|(_, until)| *until > now);
            a.channels.retain(|c| c.expires > now);
        }
        if !self.allocations.is_empty() {
            self.schedule_sweep(now);
        }
    }

    fn remove(&mut self, relay: RelayId) {
        let Some(a) = self.allocations.remove(&relay) else {
            return;
        };
        self.by_client.remove(&a.client);
        if let Some(n) = self.per_user.get_mut(&a.credential.user) {
            *n -= 1;
            if *n == 0 {
                self.per_user.remove(&a.credential.user);
            }
        }
        self.counters.released(self.allocations.len());
        for addr in a.relay_addr.iter().chain(a.bound_addr.iter()) {
            self.relay_addrs.remove(addr);
        }
        if a.relay_addr.is_some() {
            self.out.push_back(Output::CloseRelay(relay));
        }
    }
}

fn install_permission(a: &mut Allocation, ip: IpAddr, now: Instant) -> Result<(), Reject> {
    let until = now + PERMISSION_LIFETIME;
    if let Some(p) = a.permissions.iter_mut().find(|(p, _)| *p == ip) {
        p.1 = until;
        return Ok(());
    }
    if a.permissions.len() >= MAX_PERMISSIONS {
        return Err(too_many_permissions());
    }
    a.permissions.push((ip, until));
    Ok(())
}

fn too_many_permissions() -> Reject {
    Reject::new(
        CODE_INSUFFICIENT_CAPACITY,
        "Too Many Permissions",
        Refusal::Quota,
    )
}

/// Whether `len` bytes may go from allocation `a` to `peer`: within its bandwidth, and to a
/// peer the filter lets relays reach (the one check of channel data and Send indications).
fn may_send(
    a: &mut Allocation,
    filter: &PeerFilter,
    relay_addrs: &std::collections::HashSet<SocketAddr>,
    peer: SocketAddr,
    len: usize,
    now: Instant,
) -> Result<(), Refusal> {
    if !a.bucket.take(len, now) {
        return Err(Refusal::OverBandwidth);
    }
    if filter.send(peer, relay_addrs.contains(&peer)).is_err() {
        return Err(Refusal::ForbiddenPeer);
    }
    Ok(())
}

fn has_permission(a: &Allocation, ip: IpAddr, now: Instant) -> bool {
    a.permissions
        .iter()
        .any(|(p, until)| *p == ip && *until > now)
}

/// Every XOR-PEER-ADDRESS of a message (CreatePermission may carry several).
fn peer_addresses(m: &Message) -> Vec<SocketAddr> {
    let mut out = Vec::new();
    for a in &m.attributes.0 {
        if a.typ != ATTR_XOR_PEER_ADDRESS {
            continue;
        }
        let mut one = Message::new();
        one.transaction_id = m.transaction_id;
        one.add(ATTR_XOR_PEER_ADDRESS, &a.value);
        let mut addr = XorMappedAddress::default();
        if addr.get_from_as(&one, ATTR_XOR_PEER_ADDRESS).is_ok() {
            out.push(SocketAddr::new(addr.ip, addr.port));
        }
    }
    out
}

fn requested_lifetime(m: &Message) -> Option<Duration> {
    let mut l = Lifetime::default();
    l.get_from(m).ok().map(|_| l.0)
}

/// Comprehension-required attributes (below 0x8000) that this server does not know.
fn unknown_required(m: &Message) -> Vec<AttrType> {
    const KNOWN: [AttrType; 13] = [
        ATTR_USERNAME,
        ATTR_MESSAGE_INTEGRITY,
        ATTR_REALM,
        ATTR_NONCE,
        ATTR_CHANNEL_NUMBER,
        ATTR_LIFETIME,
        ATTR_XOR_PEER_ADDRESS,
        ATTR_DATA,
        ATTR_REQUESTED_TRANSPORT,
        ATTR_DONT_FRAGMENT,
        ATTR_REQUESTED_ADDRESS_FAMILY,
        ATTR_EVEN_PORT,
        ATTR_RESERVATION_TOKEN,
    ];
    m.attributes
        .0
        .iter()
        .map(|a| a.typ)
        .filter(|t| t.required() && !KNOWN.contains(t))
        .collect()
}

fn response(request: &Message, class: MessageClass) -> Message {
    let mut r = Message::new();
    r.typ = MessageType::new(request.typ.method, class);
    r.transaction_id = request.transaction_id;
    r.write_header();
    r
}

fn error_code(code: ErrorCode, reason: &str) -> ErrorCodeAttribute {
    ErrorCodeAttribute {
        code,
        reason: reason.as_bytes().to_vec(),
    }
}

fn sign(r: &mut Message, credential: &Credential, credentials: &Credentials) {
    let _ = MessageIntegrity::new_raw_integrity_with_provider(
        credential.key.to_vec(),
        credentials.crypto(),
    )
    .add_to(r);
}
