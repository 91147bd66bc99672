//! The TURN core wired to scripted clients and peers in memory, with time advanced by hand.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rtc_stun::attributes::*;
use rtc_stun::error_code::ErrorCodeAttribute;
use rtc_stun::integrity::MessageIntegrity;
use rtc_stun::message::*;
use rtc_stun::textattrs::TextAttribute;
use rtc_stun::xoraddr::XorMappedAddress;

use super::core::*;
use super::credentials::Credentials;
use super::peer_filter::PeerFilter;
use super::{Refusal, TurnCounters};

const SECRET: &str = "the-shared-turn-secret";
const UNIX: u64 = 1_800_000_000;
const SERVER: &str = "203.0.113.1";

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

struct Lab {
    core: TurnCore,
    counters: Arc<TurnCounters>,
    now: Instant,
    next_port: u16,
}

impl Lab {
    fn new() -> Self {
        Self::with(|_| {})
    }

    fn with(tune: impl FnOnce(&mut Rules)) -> Self {
        let mut rules = Rules {
            relay_ip: SERVER.parse().unwrap(),
            relay_public_ip: None,
            max_allocations: 100,
            max_allocations_per_user: 3,
            max_bytes_per_second: 0,
        };
        tune(&mut rules);
        let counters = Arc::new(TurnCounters::default());
        let now = Instant::now();
        let filter = PeerFilter::new(vec![], vec![SERVER.parse().unwrap()], vec![]);
        Lab {
            core: TurnCore::new(
                rules,
                Credentials::new(SECRET, "classroom", [3; 32]),
                filter,
                counters.clone(),
                now,
                UNIX,
            ),
            counters,
            now,
            next_port: 50_000,
        }
    }

    fn outputs(&mut self) -> Vec<Output> {
        std::iter::from_fn(|| self.core.poll_output()).collect()
    }

    /// Sends `data` from a UDP client and answers any relay socket the core asks for.
    fn send(&mut self, from: SocketAddr, data: &[u8]) -> Vec<Output> {
        self.core.handle_input(
            self.now,
            Input::FromClient {
                client: ClientId::Udp(from),
                source: from,
                data,
            },
        );
        let mut out = Vec::new();
        for o in self.outputs() {
            if let Output::BindRelay { relay, ip } = o {
                let bound = SocketAddr::new(ip, self.next_port);
                self.next_port += 1;
                self.core.handle_input(
                    self.now,
                    Input::RelayBound {
                        relay,
                        result: Ok(bound),
                    },
                );
                out.extend(self.outputs());
            } else {
                out.push(o);
            }
        }
        out
    }

    fn refused(&self, r: Refusal) -> u64 {
        let mut text = String::new();
        self.counters.render(&mut text);
        let needle = format!("reason=\"{}\"}} ", r.name());
        let line = text.lines().find(|l| l.contains(&needle)).unwrap();
        line.rsplit(' ').next().unwrap().parse().unwrap()
    }

    fn advance(&mut self, d: Duration) -> Vec<Output> {
        self.now += d;
        self.core.handle_input(self.now, Input::Timeout);
        self.outputs()
    }
}

/// A client's view: its credentials and the server's nonce.
struct Client {
    at: SocketAddr,
    username: String,
    password: String,
    nonce: Option<String>,
}

impl Client {
    fn new(at: &str, user: &str) -> Self {
        Self::expiring(at, user, UNIX + 3600)
    }

    fn expiring(at: &str, user: &str, expiry: u64) -> Self {
        let username = format!("{expiry}:{user}");
        let password = Credentials::new(SECRET, "classroom", [0; 32]).password(&username);
        Client {
            at: addr(at),
            username,
            password,
            nonce: None,
        }
    }

    /// A request of `method` with `attrs`, signed when the client has a nonce.
    fn request(&self, method: Method, attrs: &[(AttrType, Vec<u8>)]) -> Message {
        let mut m = Message::new();
        m.typ = MessageType::new(method, CLASS_REQUEST);
        m.transaction_id = TransactionId::new();
        m.write_header();
        for (t, v) in attrs {
            m.add(*t, v);
        }
        if let Some(nonce) = &self.nonce {
            TextAttribute::new(ATTR_USERNAME, self.username.clone())
                .add_to(&mut m)
                .unwrap();
            TextAttribute::new(ATTR_REALM, "classroom".into())
                .add_to(&mut m)
                .unwrap();
            TextAttribute::new(ATTR_NONCE, nonce.clone())
                .add_to(&mut m)
                .unwrap();
            let provider = rtc_stun::crypto::default_provider().unwrap();
            MessageIntegrity::new_long_term_integrity_with_provider(
                self.username.clone(),
                "classroom".into(),
                self.password.clone(),
                provider.crypto(),
            )
            .unwrap()
            .add_to(&mut m)
            .unwrap();
        }
        m
    }

    fn peer_attr(&self, peer: &str, txn: &Message) -> (AttrType, Vec<u8>) {
        let peer = addr(peer);
        let mut m = Message::new();
        m.transaction_id = txn.transaction_id;
        XorMappedAddress {
            ip: peer.ip(),
            port: peer.port(),
        }
        .add_to_as(&mut m, ATTR_XOR_PEER_ADDRESS)
        .unwrap();
        (ATTR_XOR_PEER_ADDRESS, m.attributes.0[0].value.clone())
    }

    /// Challenged, then allocated: the relayed address.
    fn allocate(&mut self, lab: &mut Lab) -> SocketAddr {
        let r = self.ask(lab, METHOD_ALLOCATE, &[udp_transport()]);
        assert_eq!(r.typ.class, CLASS_SUCCESS_RESPONSE, "{}", reason(&r));
        let mut relayed = XorMappedAddress::default();
        relayed.get_from_as(&r, ATTR_XOR_RELAYED_ADDRESS).unwrap();
        SocketAddr::new(relayed.ip, relayed.port)
    }

    /// Sends a request (getting a nonce first if it has none) and returns the one answer.
    fn ask(&mut self, lab: &mut Lab, method: Method, attrs: &[(AttrType, Vec<u8>)]) -> Message {
        if self.nonce.is_none() {
            let r = one_reply(lab.send(self.at, &self.request(method, attrs).raw));
            assert_eq!(error(&r), 401);
            self.nonce = Some(TextAttribute::get_from_as(&r, ATTR_NONCE).unwrap().text);
        }
        one_reply(lab.send(self.at, &self.request(method, attrs).raw))
    }

    fn permit(&mut self, lab: &mut Lab, peer: &str) -> Message {
        self.with_peer(lab, METHOD_CREATE_PERMISSION, peer, &[])
    }

    /// A signed request carrying XOR-PEER-ADDRESS (XOR'd with its own transaction id).
    fn with_peer(
        &mut self,
        lab: &mut Lab,
        method: Method,
        peer: &str,
        extra: &[(AttrType, Vec<u8>)],
    ) -> Message {
        let mut m = Message::new();
        m.typ = MessageType::new(method, CLASS_REQUEST);
        m.transaction_id = TransactionId::new();
        m.write_header();
        let (t, v) = self.peer_attr(peer, &m);
        m.add(t, &v);
        for (t, v) in extra {
            m.add(*t, v);
        }
        self.sign(&mut m);
        one_reply(lab.send(self.at, &m.raw))
    }

    fn sign(&self, m: &mut Message) {
        let nonce = self.nonce.clone().expect("allocated first");
        TextAttribute::new(ATTR_USERNAME, self.username.clone())
            .add_to(m)
            .unwrap();
        TextAttribute::new(ATTR_REALM, "classroom".into())
            .add_to(m)
            .unwrap();
        TextAttribute::new(ATTR_NONCE, nonce).add_to(m).unwrap();
        let provider = rtc_stun::crypto::default_provider().unwrap();
        MessageIntegrity::new_long_term_integrity_with_provider(
            self.username.clone(),
            "classroom".into(),
            self.password.clone(),
            provider.crypto(),
        )
        .unwrap()
        .add_to(m)
        .unwrap();
    }

    fn bind_channel(&mut self, lab: &mut Lab, number: u16, peer: &str) -> Message {
        let mut v = number.to_be_bytes().to_vec();
        v.extend_from_slice(&[0, 0]);
        self.with_peer(lab, METHOD_CHANNEL_BIND, peer, &[(ATTR_CHANNEL_NUMBER, v)])
    }
}

fn udp_transport() -> (AttrType, Vec<u8>) {
    (ATTR_REQUESTED_TRANSPORT, vec![17, 0, 0, 0])
}

fn one_reply(out: Vec<Output>) -> Message {
    let replies: Vec<Vec<u8>> = out
        .into_iter()
        .filter_map(|o| match o {
            Output::ToClient { data, .. } => Some(data),
            _ => None,
        })
        .collect();
    assert_eq!(replies.len(), 1, "one answer expected");
    let mut m = Message::new();
    m.raw = replies[0].clone();
    m.decode().unwrap();
    m
}

fn error(m: &Message) -> u16 {
    if m.typ.class != CLASS_ERROR_RESPONSE {
        return 0;
    }
    let mut e = ErrorCodeAttribute::default();
    use rtc_stun::message::Getter;
    e.get_from(m).unwrap();
    e.code.0
}

fn reason(m: &Message) -> String {
    let mut e = ErrorCodeAttribute::default();
    use rtc_stun::message::Getter;
    match e.get_from(m) {
        Ok(()) => e.to_string(),
        Err(_) => "success".into(),
    }
}

fn channel_data(number: u16, payload: &[u8]) -> Vec<u8> {
    let mut p = number.to_be_bytes().to_vec();
    p.extend_from_slice(&(payload.len() as u16).to_be_bytes());
    p.extend_from_slice(payload);
    p
}

#[test]
fn an_unsigned_allocate_is_challenged_and_a_signed_one_gets_a_relay() {
    let mut lab = Lab::new();
    let mut ada = Client::new("198.51.100.10:40000", "ada");
    let r = one_reply(lab.send(
        ada.at,
        &ada.request(METHOD_ALLOCATE, &[udp_transport()]).raw,
    ));
    assert_eq!(error(&r), 401);
    assert_eq!(
        TextAttribute::get_from_as(&r, ATTR_REALM).unwrap().text,
        "classroom"
    );
    ada.nonce = Some(TextAttribute::get_from_as(&r, ATTR_NONCE).unwrap().text);
    let signed = ada.request(METHOD_ALLOCATE, &[udp_transport()]);
    let r = one_reply(lab.send(ada.at, &signed.raw));
    assert_eq!(r.typ.class, CLASS_SUCCESS_RESPONSE, "{}", reason(&r));
    let mut relayed = XorMappedAddress::default();
    relayed.get_from_as(&r, ATTR_XOR_RELAYED_ADDRESS).unwrap();
    assert_eq!(relayed.ip.to_string(), SERVER);
    let mut mapped = XorMappedAddress::default();
    mapped.get_from_as(&r, ATTR_XORMAPPED_ADDRESS).unwrap();
    assert_eq!(SocketAddr::new(mapped.ip, mapped.port), ada.at);
    // Signed with the user's key.
    let provider = rtc_stun::crypto::default_provider().unwrap();
    let key = MessageIntegrity::long_term_integrity_key(
        ada.username.clone(),
        "classroom".into(),
        ada.password.clone(),
        provider.crypto(),
    )
    .unwrap();
    let mut check = r.clone();
    MessageIntegrity::check(&mut check, &key, provider.crypto()).unwrap();
    // A retransmission gets the same answer and no second relay.
    let again = lab.send(ada.at, &signed.raw);
    assert_eq!(one_reply(again).raw, r.raw);
    assert_eq!(lab.core.allocation_count(), 1);
    // A new Allocate on the same 5-tuple is a mismatch.
    assert_eq!(
        error(&ada.ask(&mut lab, METHOD_ALLOCATE, &[udp_transport()])),
        437
    );
}

#[test]
fn expired_forged_and_stale_credentials_are_refused() {
    let mut lab = Lab::new();
    let mut old = Client::expiring("198.51.100.11:40000", "bob", UNIX - 1);
    let r = old.ask(&mut lab, METHOD_ALLOCATE, &[udp_transport()]);
    assert_eq!(error(&r), 401);
    assert!(reason(&r).contains("Expired"), "{}", reason(&r));

    let mut forged = Client::new("198.51.100.12:40000", "eve");
    forged.password = "guessed".into();
    assert_eq!(
        error(&forged.ask(&mut lab, METHOD_ALLOCATE, &[udp_transport()])),
        401
    );
    assert_eq!(lab.refused(Refusal::Unauthorized), 1);
    assert_eq!(lab.refused(Refusal::Expired), 1);

    let mut late = Client::new("198.51.100.13:40000", "cy");
    let r = one_reply(lab.send(
        late.at,
        &late.request(METHOD_ALLOCATE, &[udp_transport()]).raw,
    ));
    late.nonce = Some(TextAttribute::get_from_as(&r, ATTR_NONCE).unwrap().text);
    lab.now += Duration::from_secs(super::credentials::NONCE_LIFETIME_SECS + 1);
    let r = one_reply(lab.send(
        late.at,
        &late.request(METHOD_ALLOCATE, &[udp_transport()]).raw,
    ));
    assert_eq!(error(&r), 438);
    assert!(TextAttribute::get_from_as(&r, ATTR_NONCE).is_ok());
    assert_eq!(lab.core.allocation_count(), 0);
}

#[test]
fn another_users_credentials_cannot_touch_an_allocation() {
    let mut lab = Lab::new();
    let mut ada = Client::new("198.51.100.10:40000", "ada");
    ada.allocate(&mut lab);
    // Same 5-tuple, someone else's valid credentials.
    let mut mallory = Client::new("198.51.100.10:40000", "mallory");
    mallory.nonce = ada.nonce.clone();
    assert_eq!(error(&mallory.permit(&mut lab, "198.51.100.20:5000")), 441);
    assert_eq!(lab.refused(Refusal::WrongCredentials), 1);
}

#[test]
fn a_users_quota_and_the_total_are_enforced() {
    let mut lab = Lab::with(|r| r.max_allocations = 5);
    for port in 0..3 {
        let mut c = Client::new(&format!("198.51.100.10:{}", 40000 + port), "ada");
        c.allocate(&mut lab);
    }
    let mut fourth = Client::new("198.51.100.10:40003", "ada");
    assert_eq!(
        error(&fourth.ask(&mut lab, METHOD_ALLOCATE, &[udp_transport()])),
        486
    );
    for port in 0..2 {
        let mut c = Client::new(&format!("198.51.100.11:{}", 40000 + port), "bob");
        c.allocate(&mut lab);
    }
    let mut over = Client::new("198.51.100.12:40000", "cy");
    assert_eq!(
        error(&over.ask(&mut lab, METHOD_ALLOCATE, &[udp_transport()])),
        486
    );
    assert_eq!(lab.refused(Refusal::Quota), 2);
}

#[test]
fn relaying_inside_the_school_or_to_the_server_is_refused() {
    let mut lab = Lab::new();
    let mut ada = Client::new("198.51.100.10:40000", "ada");
    ada.allocate(&mut lab);
    for peer in ["127.0.0.1:22", "10.0.0.5:80", "169.254.169.254:80"] {
        assert_eq!(error(&ada.permit(&mut lab, peer)), 403, "{peer}");
        assert_eq!(
            error(&ada.bind_channel(&mut lab, 0x4001, peer)),
            403,
            "{peer}"
        );
    }
    assert_eq!(lab.refused(Refusal::ForbiddenPeer), 6);
    // The server's own address holds the relays, so it may be permitted (two relayed
    // participants talk relay to relay), but only a relay's port is reachable there.
    let mut bob = Client::new("198.51.100.11:40000", "bob");
    let bobs_relay = bob.allocate(&mut lab);
    assert_eq!(error(&ada.permit(&mut lab, "203.0.113.1:3001")), 0);
    assert_eq!(
        error(&ada.bind_channel(&mut lab, 0x4001, "203.0.113.1:3001")),
        403
    );
    assert_eq!(
        error(&ada.bind_channel(&mut lab, 0x4001, &bobs_relay.to_string())),
        0
    );
    assert_eq!(lab.send(ada.at, &channel_data(0x4001, b"to bob")).len(), 1);
    assert_eq!(lab.refused(Refusal::ForbiddenPeer), 7);
    assert_eq!(error(&ada.permit(&mut lab, "198.51.100.20:5000")), 0);
}

#[test]
fn channels_and_indications_relay_both_ways_and_nothing_passes_without_a_permission() {
    let mut lab = Lab::new();
    let mut ada = Client::new("198.51.100.10:40000", "ada");
    let relayed = ada.allocate(&mut lab);
    let peer = addr("198.51.100.20:5000");
    let stranger = addr("198.51.100.30:5000");
    let relay = 1;
    // From a peer with no permission: dropped and counted.
    lab.core.handle_input(
        lab.now,
        Input::FromPeer {
            relay,
            peer,
            data: b"early",
        },
    );
    assert!(lab.outputs().is_empty());
    assert_eq!(lab.refused(Refusal::NoPermission), 1);

    assert_eq!(
        error(&ada.bind_channel(&mut lab, 0x4000, "198.51.100.20:5000")),
        0
    );
    let out = lab.send(ada.at, &channel_data(0x4000, b"hello peer"));
    assert_eq!(
        out,
        vec![Output::ToPeer {
            relay,
            peer,
            data: b"hello peer".to_vec()
        }]
    );
    lab.core.handle_input(
        lab.now,
        Input::FromPeer {
            relay,
            peer,
            data: b"hi ada",
        },
    );
    assert_eq!(
        lab.outputs(),
        vec![Output::ToClient {
            client: ClientId::Udp(ada.at),
            data: channel_data(0x4000, b"hi ada")
        }]
    );
    // An unbound channel number, and a stranger, get nothing through.
    assert!(lab.send(ada.at, &channel_data(0x4002, b"x")).is_empty());
    lab.core.handle_input(
        lab.now,
        Input::FromPeer {
            relay,
            peer: stranger,
            data: b"spam",
        },
    );
    assert!(lab.outputs().is_empty());
    assert_eq!(lab.refused(Refusal::NoChannel), 1);
    assert_eq!(lab.refused(Refusal::NoPermission), 2);

    // A permitted peer without a channel arrives as a Data indication.
    assert_eq!(error(&ada.permit(&mut lab, "198.51.100.30:5000")), 0);
    lab.core.handle_input(
        lab.now,
        Input::FromPeer {
            relay,
            peer: stranger,
            data: b"now ok",
        },
    );
    let out = lab.outputs();
    let [Output::ToClient { data, .. }] = &out[..] else {
        panic!("{out:?}")
    };
    let mut m = Message::new();
    m.raw = data.clone();
    m.decode().unwrap();
    assert_eq!(m.typ, MessageType::new(METHOD_DATA, CLASS_INDICATION));
    assert_eq!(m.get(ATTR_DATA).unwrap(), b"now ok");
    // Channel bind rules: a number for another peer, or out of range, is a bad request.
    assert_eq!(
        error(&ada.bind_channel(&mut lab, 0x4000, "198.51.100.30:5000")),
        400
    );
    assert_eq!(
        error(&ada.bind_channel(&mut lab, 0x3fff, "198.51.100.30:5000")),
        400
    );
    let _ = relayed;
}

#[test]
fn allocations_expire_unless_refreshed_and_a_zero_refresh_ends_one() {
    let mut lab = Lab::new();
    let mut ada = Client::new("198.51.100.10:40000", "ada");
    ada.allocate(&mut lab);
    let lifetime = |secs: u32| (ATTR_LIFETIME, secs.to_be_bytes().to_vec());
    assert_eq!(
        error(&ada.ask(&mut lab, METHOD_REFRESH, &[lifetime(900)])),
        0
    );
    let out = lab.advance(Duration::from_secs(600));
    assert!(!out.contains(&Output::CloseRelay(1)), "refreshed to 900 s");
    // Step through sweeps until the allocation's 900 s are over.
    let mut closed = false;
    for _ in 0..400 {
        if lab
            .advance(Duration::from_secs(1))
            .contains(&Output::CloseRelay(1))
        {
            closed = true;
            break;
        }
    }
    assert!(closed && lab.core.allocation_count() == 0);

    let mut bob = Client::new("198.51.100.11:40000", "bob");
    bob.allocate(&mut lab);
    let r = one_reply(
        lab.send(bob.at, &bob.request(METHOD_REFRESH, &[lifetime(0)]).raw)
            .into_iter()
            .filter(|o| !matches!(o, Output::CloseRelay(_)))
            .collect(),
    );
    assert_eq!(error(&r), 0);
    assert_eq!(lab.core.allocation_count(), 0);
    // A refresh without an allocation is a mismatch.
    assert_eq!(
        error(&bob.ask(&mut lab, METHOD_REFRESH, &[lifetime(600)])),
        437
    );
}

#[test]
fn garbage_is_counted_and_dropped_and_others_keep_relaying() {
    let mut lab = Lab::new();
    let mut ada = Client::new("198.51.100.10:40000", "ada");
    ada.allocate(&mut lab);
    assert_eq!(
        error(&ada.bind_channel(&mut lab, 0x4000, "198.51.100.20:5000")),
        0
    );
    let attacker = addr("198.51.100.66:1234");
    let garbage: [&[u8]; 6] = [
        b"",
        b"\xff\xff\xff\xff",
        b"\x00\x01\x00\x08\x21\x12\xa4\x42short",
        // A STUN header declaring more than it carries.
        &[
            0, 1, 0xff, 0xfc, 0x21, 0x12, 0xa4, 0x42, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12,
        ],
        // Channel data longer than declared is fine, shorter is not.
        &[0x40, 0x00, 0x00, 0x10, 1, 2],
        &[0x40, 0x00],
    ];
    for g in garbage {
        assert!(lab.send(attacker, g).is_empty(), "{g:?}");
    }
    assert!(lab.send(attacker, &vec![0u8; MAX_MESSAGE + 1]).is_empty());
    assert_eq!(lab.refused(Refusal::Oversized), 1);
    assert!(lab.refused(Refusal::Malformed) >= 4);
    // An attribute the server must understand but does not: 420.
    let r = ada.ask(&mut lab, METHOD_REFRESH, &[(AttrType(0x0031), vec![0; 4])]);
    assert_eq!(error(&r), 420);
    assert_eq!(
        lab.send(ada.at, &channel_data(0x4000, b"still here")).len(),
        1
    );
}

#[test]
fn an_allocation_over_its_bandwidth_has_the_excess_dropped() {
    let mut lab = Lab::with(|r| r.max_bytes_per_second = 10_000);
    let mut ada = Client::new("198.51.100.10:40000", "ada");
    ada.allocate(&mut lab);
    assert_eq!(
        error(&ada.bind_channel(&mut lab, 0x4000, "198.51.100.20:5000")),
        0
    );
    let packet = channel_data(0x4000, &[7; 1000]);
    let sent: usize = (0..20).map(|_| lab.send(ada.at, &packet).len()).sum();
    assert_eq!(sent, 10, "one second's worth");
    assert_eq!(lab.refused(Refusal::OverBandwidth), 10);
    lab.now += Duration::from_millis(500);
    let sent: usize = (0..20).map(|_| lab.send(ada.at, &packet).len()).sum();
    assert_eq!(sent, 5, "half a second's worth refilled");
}

#[test]
fn a_stream_client_going_away_ends_its_allocation() {
    let mut lab = Lab::new();
    let client = ClientId::Stream(7);
    let mut ada = Client::new("198.51.100.10:40000", "ada");
    let m = ada.request(METHOD_ALLOCATE, &[udp_transport()]);
    lab.core.handle_input(
        lab.now,
        Input::FromClient {
            client,
            source: ada.at,
            data: &m.raw,
        },
    );
    let out = lab.outputs();
    let [Output::ToClient { data, .. }] = &out[..] else {
        panic!()
    };
    let mut r = Message::new();
    r.raw = data.clone();
    r.decode().unwrap();
    ada.nonce = Some(TextAttribute::get_from_as(&r, ATTR_NONCE).unwrap().text);
    let m = ada.request(METHOD_ALLOCATE, &[udp_transport()]);
    lab.core.handle_input(
        lab.now,
        Input::FromClient {
            client,
            source: ada.at,
            data: &m.raw,
        },
    );
    let out = lab.outputs();
    let Some(Output::BindRelay { relay, ip }) = out.first() else {
        panic!("{out:?}")
    };
    let relay = *relay;
    lab.core.handle_input(
        lab.now,
        Input::RelayBound {
            relay,
            result: Ok(SocketAddr::new(*ip, 50_000)),
        },
    );
    lab.outputs();
    assert_eq!(lab.core.allocation_count(), 1);
    lab.core.handle_input(lab.now, Input::StreamClosed(7));
    assert_eq!(lab.outputs(), vec![Output::CloseRelay(relay)]);
    assert_eq!(lab.core.allocation_count(), 0);
}

#[test]
fn a_relay_socket_that_cannot_open_is_insufficient_capacity() {
    let mut lab = Lab::new();
    let mut ada = Client::new("198.51.100.10:40000", "ada");
    let m = ada.request(METHOD_ALLOCATE, &[udp_transport()]);
    let r = one_reply(lab.send(ada.at, &m.raw));
    ada.nonce = Some(TextAttribute::get_from_as(&r, ATTR_NONCE).unwrap().text);
    let m = ada.request(METHOD_ALLOCATE, &[udp_transport()]);
    lab.core.handle_input(
        lab.now,
        Input::FromClient {
            client: ClientId::Udp(ada.at),
            source: ada.at,
            data: &m.raw,
        },
    );
    let Some(Output::BindRelay { relay, .. }) = lab.core.poll_output() else {
        panic!()
    };
    lab.core.handle_input(
        lab.now,
        Input::RelayBound {
            relay,
            result: Err("no ports left".into()),
        },
    );
    assert_eq!(error(&one_reply(lab.outputs())), 508);
    assert_eq!(lab.core.allocation_count(), 0);
}

#[test]
fn attributes_after_the_signature_are_ignored() {
    let mut lab = Lab::new();
    let mut ada = Client::new("198.51.100.10:40000", "ada");
    ada.allocate(&mut lab);
    // A signed CreatePermission for one peer, with a second peer appended after the signature
    // (as someone on the path could).
    let mut m = Message::new();
    m.typ = MessageType::new(METHOD_CREATE_PERMISSION, CLASS_REQUEST);
    m.transaction_id = TransactionId::new();
    m.write_header();
    let (t, v) = ada.peer_attr("198.51.100.20:5000", &m);
    m.add(t, &v);
    ada.sign(&mut m);
    let (t, v) = ada.peer_attr("198.51.100.66:6666", &m);
    m.add(t, &v);
    assert_eq!(error(&one_reply(lab.send(ada.at, &m.raw))), 0);
    let relay = 1;
    let attacker = addr("198.51.100.66:6666");
    lab.core.handle_input(
        lab.now,
        Input::FromPeer {
            relay,
            peer: attacker,
            data: b"let me in",
        },
    );
    assert!(
        lab.outputs().is_empty(),
        "the appended peer got a permission"
    );
    lab.core.handle_input(
        lab.now,
        Input::FromPeer {
            relay,
            peer: addr("198.51.100.20:5000"),
            data: b"signed peer",
        },
    );
    assert_eq!(lab.outputs().len(), 1);
}

#[test]
fn relays_behind_a_one_to_one_nat_reach_each_other_at_their_public_address() {
    let mut lab = Lab::with(|r| {
        r.relay_ip = "10.0.0.5".parse().unwrap();
        r.relay_public_ip = Some(SERVER.parse().unwrap());
    });
    let mut bob = Client::new("198.51.100.11:40000", "bob");
    let bobs_relay = bob.allocate(&mut lab);
    assert_eq!(bobs_relay.ip().to_string(), SERVER);
    let mut ada = Client::new("198.51.100.10:40000", "ada");
    ada.allocate(&mut lab);
    assert_eq!(error(&ada.permit(&mut lab, &bobs_relay.to_string())), 0);
    assert_eq!(
        error(&ada.bind_channel(&mut lab, 0x4000, &bobs_relay.to_string())),
        0
    );
    assert_eq!(
        error(&ada.bind_channel(&mut lab, 0x4001, "203.0.113.1:22")),
        403
    );
}
