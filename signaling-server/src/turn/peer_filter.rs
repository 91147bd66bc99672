//! Where a relay may send: the open-proxy class of TURN holes closed. By default an allocation
//! may not reach loopback, private, link-local, carrier-grade NAT, multicast or reserved
//! addresses, nor the server's own addresses (but for the SFU's media port and the relays'
//! own addresses: two relayed participants talk relay to relay), so a client
//! cannot use the relay to reach services inside the school's network or on the server
//! itself. `--turn-allow-peer CIDR` opens a range (a school whose students and peers are all
//! on 10.0.0.0/8, say).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// An address range, `198.51.100.0/24` or `2001:db8::/32`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    network: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// One address alone.
    fn is_host(&self) -> bool {
        self.prefix == if self.network.is_ipv4() { 32 } else { 128 }
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.network, canonical(ip)) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX.checked_shl(32 - self.prefix as u32).unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX.checked_shl(128 - self.prefix as u32).unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

impl std::str::FromStr for Cidr {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let (ip, prefix) = match s.split_once('/') {
            Some((ip, p)) => (ip, Some(p)),
            None => (s, None),
        };
        let network: IpAddr = ip
            .trim()
            .parse()
            .map_err(|_| format!("{s:?} is not an address range (like 198.51.100.0/24)"))?;
        let max = if network.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) => p
                .trim()
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("{s:?}: the prefix length must be 0 to {max}"))?,
            None => max,
        };
        // An IPv4-mapped range is the IPv4 range it maps (its prefix less 96).
        match (network, canonical(network)) {
            (IpAddr::V6(_), IpAddr::V4(v4)) => {
                if prefix < 96 {
                    return Err(format!(
                        "{s:?}: an IPv4-mapped range needs a prefix of 96 or more"
                    ));
                }
                Ok(Cidr {
                    network: IpAddr::V4(v4),
                    prefix: prefix - 96,
                })
            }
            _ => Ok(Cidr { network, prefix }),
        }
    }
}

impl std::fmt::Display for Cidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

/// An IPv4-mapped IPv6 address is the IPv4 address it maps (`::ffff:127.0.0.1` is loopback).
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(v6),
        },
        v4 => v4,
    }
}

/// Why a peer address is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PeerRefusal {
    /// Loopback, private, link-local and the like.
    Internal,
    /// One of the server's own addresses.
    Server,
}

#[derive(Debug, Clone, Default)]
pub(crate) struct PeerFilter {
    allow: Vec<Cidr>,
    own: Vec<IpAddr>,
    /// Addresses of the server's own that peers may reach (the SFU's media socket).
    own_services: Vec<SocketAddr>,
}

impl PeerFilter {
    pub fn new(allow: Vec<Cidr>, own: Vec<IpAddr>, own_services: Vec<SocketAddr>) -> Self {
        PeerFilter {
            allow,
            own: own.into_iter().map(canonical).collect(),
            own_services,
        }
    }

    /// Whether a permission for `ip` may be installed (RFC 8656 permissions are per address).
    /// `relay_ip` is where this server's relays live: peers may be other relays.
    pub fn permit(&self, ip: IpAddr, relay_ip: IpAddr) -> Result<(), PeerRefusal> {
        let ip = canonical(ip);
        if self.allow.iter().any(|c| c.contains(ip)) {
            return Ok(());
        }
        if self.own.contains(&ip) {
            return if canonical(relay_ip) == ip
                || self.own_services.iter().any(|s| canonical(s.ip()) == ip)
            {
                Ok(())
            } else {
                Err(PeerRefusal::Server)
            };
        }
        if is_internal(ip) {
            return Err(PeerRefusal::Internal);
        }
        Ok(())
    }

    /// Whether a packet may go to `peer` (its address permitted): on one of the server's own
    /// addresses, only to a service it runs there or to a relay (`is_relay`).
    pub fn send(&self, peer: SocketAddr, is_relay: bool) -> Result<(), PeerRefusal> {
        let ip = canonical(peer.ip());
        // An allowed range that holds one of the server's own addresses does not open the
        // server's other ports; only that address named alone (`/32`, `/128`) does.
        if self.own.contains(&ip)
            && !is_relay
            && !self.own_services.iter().any(|s| *s == peer)
            && !self.allow.iter().any(|c| c.is_host() && c.contains(ip))
        {
            return Err(PeerRefusal::Server);
        }
        Ok(())
    }
}

fn is_internal(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_internal_v4(v4),
        IpAddr::V6(v6) => is_internal_v6(v6),
    }
}

fn is_internal_v4(ip: Ipv4Addr) -> bool {
    let o = ip.octets();
    ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_multicast()
        || ip.is_broadcast()
        || o[0] == 0
        // Carrier-grade NAT (100.64.0.0/10).
        || (o[0] == 100 && (o[1] & 0xc0) == 64)
        // IETF protocol assignments (192.0.0.0/24).
        || (o[0] == 192 && o[1] == 0 && o[2] == 0)
        // Reserved (240.0.0.0/4).
        || o[0] >= 240
}

fn is_internal_v6(ip: Ipv6Addr) -> bool {
    let s = ip.segments();
    ip.is_loopback()
        || ip.is_unspecified()
        || ip.is_multicast()
        // Unique local (fc00::/7) and link-local (fe80::/10).
        || (s[0] & 0xfe00) == 0xfc00
        || (s[0] & 0xffc0) == 0xfe80
        // IPv4-compatible (::/96) and NAT64 (64:ff9b::/96, 64:ff9b:1::/48) forms can reach
        // IPv4 insides: refused too.
        || s[..6].iter().all(|x| *x == 0)
        || (s[0] == 0x64 && s[1] == 0xff9b && (s[2..6].iter().all(|x| *x == 0) || s[2] == 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    const RELAY: IpAddr = IpAddr::V4(Ipv4Addr::new(198, 18, 0, 1));

    #[test]
    fn internal_and_own_addresses_are_refused_by_default() {
        let f = PeerFilter::new(vec![], vec![ip("203.0.113.1")], vec![]);
        for bad in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.9",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "224.0.0.1",
            "255.255.255.255",
            "::1",
            "::ffff:127.0.0.1",
            "fd00::1",
            "fe80::1",
        ] {
            assert_eq!(
                f.permit(ip(bad), RELAY),
                Err(PeerRefusal::Internal),
                "{bad}"
            );
        }
        assert_eq!(
            f.permit(ip("203.0.113.1"), ip("203.0.113.9")),
            Err(PeerRefusal::Server)
        );
        assert_eq!(f.permit(ip("198.51.100.7"), RELAY), Ok(()));
        assert_eq!(f.permit(ip("2001:db8::7"), RELAY), Ok(()));
    }

    #[test]
    fn an_allowed_range_opens_and_the_sfu_port_alone_is_reachable_on_the_server() {
        let sfu: SocketAddr = "203.0.113.1:3479".parse().unwrap();
        let f = PeerFilter::new(
            vec!["10.0.0.0/8".parse().unwrap()],
            vec![ip("203.0.113.1")],
            vec![sfu],
        );
        assert_eq!(f.permit(ip("10.9.9.9"), RELAY), Ok(()));
        assert_eq!(
            f.permit(ip("192.168.0.1"), RELAY),
            Err(PeerRefusal::Internal)
        );
        assert_eq!(f.permit(ip("203.0.113.1"), ip("203.0.113.9")), Ok(()));
        assert_eq!(f.send(sfu, false), Ok(()));
        // Relays live on the server's address: a relay may be a peer, nothing else there.
        assert_eq!(f.permit(ip("203.0.113.1"), ip("203.0.113.1")), Ok(()));
        assert_eq!(f.send("203.0.113.1:50000".parse().unwrap(), true), Ok(()));
        assert_eq!(
            f.send("203.0.113.1:22".parse().unwrap(), false),
            Err(PeerRefusal::Server)
        );
        // An allowed range that holds the server's address does not open its other ports.
        let wide = PeerFilter::new(
            vec!["203.0.113.0/24".parse().unwrap()],
            vec![ip("203.0.113.1")],
            vec![],
        );
        assert_eq!(
            wide.send("203.0.113.1:3478".parse().unwrap(), false),
            Err(PeerRefusal::Server)
        );
        assert_eq!(
            wide.send("203.0.113.7:3478".parse().unwrap(), false),
            Ok(())
        );
        // Named alone, it does (a test on loopback, say).
        let host = PeerFilter::new(
            vec!["203.0.113.1/32".parse().unwrap()],
            vec![ip("203.0.113.1")],
            vec![],
        );
        assert_eq!(
            host.send("203.0.113.1:3478".parse().unwrap(), false),
            Ok(())
        );
    }

    #[test]
    fn ranges_parse_and_say_what_is_wrong() {
        let c: Cidr = "198.51.100.0/24".parse().unwrap();
        assert!(c.contains(ip("198.51.100.200")) && !c.contains(ip("198.51.101.1")));
        assert!("0.0.0.0/0".parse::<Cidr>().unwrap().contains(ip("8.8.8.8")));
        assert!(
            "10.0.0.0/33"
                .parse::<Cidr>()
                .unwrap_err()
                .contains("0 to 32")
        );
        assert!("ten".parse::<Cidr>().is_err());
        assert_eq!(
            "2001:db8::/32".parse::<Cidr>().unwrap().to_string(),
            "2001:db8::/32"
        );
        // A mapped range is its IPv4 range, and cannot open all of IPv4.
        let mapped: Cidr = "::ffff:10.0.0.0/104".parse().unwrap();
        assert_eq!(mapped.to_string(), "10.0.0.0/8");
        assert!(!mapped.contains(ip("127.0.0.1")));
        assert!("::ffff:10.0.0.0/64".parse::<Cidr>().is_err());
    }
}
