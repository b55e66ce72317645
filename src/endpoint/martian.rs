//! Martian source addresses: packets that no host may accept, whatever they carry.
//!
//! RFC 1122 §3.2.1.3 lists the IPv4 addresses that are never a valid source and says a host
//! "MUST silently discard an incoming datagram containing an IP source address that is
//! invalid by the rules of this section"; RFC 4291 §2.5.2, §2.5.3, §2.5.5.2 and §2.7 do the
//! same for IPv6. Linux drops these before TCP or ICMP sees them (IPv4 `ip_route_input_slow`,
//! counted as `in_martian_src` in `/proc/net/stat/rt_cache`; IPv6 `ip6_rcv_core`, counted in
//! `Ip6InHdrErrors`), and so does the endpoint, counting them as `martian_source`.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Whether `ip` can never be the source of a packet we accept (our own addresses aside,
/// which the endpoint checks with its address list).
pub(super) fn is_martian(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(a) => martian_v4(a),
        IpAddr::V6(a) => martian_v6(a),
    }
}

/// RFC 1122 §3.2.1.3, as Linux applies it.
fn martian_v4(a: Ipv4Addr) -> bool {
    let [first, ..] = a.octets();
    // (a) { 0, <Host-number> }: "this host on this network", only ever a source while a host
    // learns its address (BOOTP/DHCP), never for TCP or an echo request (Linux: zeronet, 0/8).
    first == 0
        // (c) { -1, -1 }: the limited broadcast.
        || a.is_broadcast()
        // (g) { 127, <any> }: loopback, which "MUST NOT appear outside a host".
        || a.is_loopback()
        // Class D: a multicast group is a destination, never a source.
        || a.is_multicast()
    // Class E (240/4) is accepted, as Linux has accepted it since 2.6.25 (it is routed as
    // unicast there, and draft-schoen-intarea-unicast-240 proposes so).
}

/// RFC 4291, as Linux's `ip6_rcv_core` applies it (plus the unspecified address, which is
/// only a source while an interface has no address yet: RFC 4291 §2.5.2).
fn martian_v6(a: Ipv6Addr) -> bool {
    // §2.5.2: "The unspecified address must not be used as the destination address of IPv6
    // packets or in IPv6 Routing headers"; as a source it only appears in DAD and MLD.
    a.is_unspecified()
        // §2.5.3: "An IPv6 packet received on an interface MUST NOT be forwarded ... or be
        // accepted with the loopback address as its source".
        || a.is_loopback()
        // §2.7: "Multicast addresses must not be used as source addresses in IPv6 packets".
        || a.is_multicast()
        // §2.5.5.2 (and RFC 4038 §4.2): IPv4-mapped addresses are an API's representation of
        // an IPv4 peer; on the wire they can only be spoofed.
        || a.to_ipv4_mapped().is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn martian(s: &str) -> bool {
        is_martian(s.parse().unwrap())
    }

    #[test]
    fn ipv4_martians_are_those_linux_drops() {
        for s in [
            "0.0.0.0",
            "0.1.2.3",
            "127.0.0.1",
            "127.255.255.254",
            "255.255.255.255",
            "224.0.0.1",
            "239.255.255.255",
        ] {
            assert!(martian(s), "{s}");
        }
        for s in [
            "198.18.0.1",
            "10.0.0.1",
            "1.1.1.1",
            "240.0.0.1",
            "223.255.255.255",
        ] {
            assert!(!martian(s), "{s}");
        }
    }

    #[test]
    fn ipv6_martians_are_loopback_unspecified_multicast_and_v4_mapped() {
        for s in [
            "::",
            "::1",
            "ff02::1",
            "ff0e::1",
            "::ffff:198.18.0.1",
            "::ffff:0.0.0.0",
        ] {
            assert!(martian(s), "{s}");
        }
        for s in [
            "2001:2::1",
            "fe80::1",
            "fd00::1",
            "::198.18.0.1",
            "64:ff9b::1",
        ] {
            assert!(!martian(s), "{s}");
        }
    }
}
