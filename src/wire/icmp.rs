//! ICMP (RFC 792) and ICMPv6 (RFC 4443) errors that quote one of our TCP segments: parsed
//! into an [`IcmpError`] for the endpoint (RFC 9293 §3.9.2.2, RFC 5927), and emitted by the
//! `--impair mtu=` router and the tests (RFC 1191, RFC 8201, RFC 1812 §4.3.2.3).

use super::bytes::{Writer, array, be_u32, set_be_u16};
use super::checksum::{compute, pseudo_header};
use super::emit::emit_ip_header;
use super::{EmitError, Quad};
use crate::seqnum::SeqNum;
use etherparse::IpNumber;
use etherparse::checksum::Sum16BitWords;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// What an ICMP or ICMPv6 error says happened to a packet we sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum IcmpErrorKind {
    /// Destination unreachable, network (ICMP codes 0, 6, 11; ICMPv6 code 0, no route).
    NetUnreachable,
    /// Destination unreachable, host (ICMP codes 1, 5, 7, 8, 12; ICMPv6 codes 2, 3).
    HostUnreachable,
    /// Destination unreachable, protocol (ICMP code 2; ICMPv6 parameter problem code 1,
    /// unrecognized next header).
    ProtocolUnreachable,
    /// Destination unreachable, port (ICMP code 3, ICMPv6 code 4).
    PortUnreachable,
    /// Communication administratively prohibited (ICMP codes 9, 10, 13, 14, 15; ICMPv6
    /// codes 1, 5, 6).
    AdminProhibited,
    /// Fragmentation needed and DF set (ICMP type 3 code 4, RFC 1191) or Packet Too Big
    /// (ICMPv6 type 2, RFC 8201): the next hop's MTU.
    PacketTooBig { mtu: u32 },
    /// Time exceeded in transit (ICMP type 11, ICMPv6 type 3).
    TimeExceeded,
    /// Parameter problem (ICMP type 12, ICMPv6 type 4 but code 1).
    ParameterProblem,
}

impl IcmpErrorKind {
    /// RFC 9293 §3.9.2.2 and RFC 1122 §4.2.3.9: protocol and port unreachable are hard errors
    /// (SHLD-26: abort); the others are soft (MUST-56: do not abort), bar Packet Too Big,
    /// which is path MTU discovery's.
    pub fn is_hard(self) -> bool {
        matches!(
            self,
            IcmpErrorKind::ProtocolUnreachable | IcmpErrorKind::PortUnreachable
        )
    }

    /// The errno Linux reports for it (`icmp_err_convert`, `icmpv6_err_convert`).
    pub fn errno_name(self) -> &'static str {
        match self {
            IcmpErrorKind::NetUnreachable => "ENETUNREACH",
            IcmpErrorKind::HostUnreachable
            | IcmpErrorKind::TimeExceeded
            | IcmpErrorKind::AdminProhibited => "EHOSTUNREACH",
            IcmpErrorKind::ProtocolUnreachable => "ENOPROTOOPT",
            IcmpErrorKind::PortUnreachable => "ECONNREFUSED",
            IcmpErrorKind::PacketTooBig { .. } => "EMSGSIZE",
            IcmpErrorKind::ParameterProblem => "EPROTO",
        }
    }
}

impl IcmpErrorKind {
    /// What it says, in words (without the MTU of a Packet Too Big).
    pub const fn describe(self) -> &'static str {
        match self {
            IcmpErrorKind::NetUnreachable => "network unreachable",
            IcmpErrorKind::HostUnreachable => "host unreachable",
            IcmpErrorKind::ProtocolUnreachable => "protocol unreachable",
            IcmpErrorKind::PortUnreachable => "port unreachable",
            IcmpErrorKind::AdminProhibited => "communication administratively prohibited",
            IcmpErrorKind::PacketTooBig { .. } => "packet too big",
            IcmpErrorKind::TimeExceeded => "time exceeded in transit",
            IcmpErrorKind::ParameterProblem => "parameter problem",
        }
    }
}

impl std::fmt::Display for IcmpErrorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.describe())?;
        if let IcmpErrorKind::PacketTooBig { mtu } = self {
            write!(f, " (MTU {mtu})")?;
        }
        Ok(())
    }
}

/// An ICMP or ICMPv6 error quoting a TCP segment we sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IcmpError {
    pub kind: IcmpErrorKind,
    /// The quoted segment's 4-tuple, from our side: its source is `local`.
    pub quad: Quad,
    /// The quoted segment's sequence number (RFC 5927 §4.1 checks it).
    pub seq: SeqNum,
}

// RFC 792 / RFC 4443 types and codes.
const V4_DEST_UNREACH: u8 = 3;
const V4_FRAG_NEEDED: u8 = 4;
const V4_TIME_EXCEEDED: u8 = 11;
const V4_PARAM_PROBLEM: u8 = 12;
const V6_DEST_UNREACH: u8 = 1;
const V6_PACKET_TOO_BIG: u8 = 2;
const V6_TIME_EXCEEDED: u8 = 3;
const V6_PARAM_PROBLEM: u8 = 4;
const V6_UNRECOGNIZED_NEXT_HEADER: u8 = 1;

/// The kind of an ICMP message (type, code, the second header word), if it is an error
/// TCP acts on. Source quench (RFC 6633) and redirects are not.
pub(super) fn kind_v4(kind: u8, code: u8, word: u32) -> Option<IcmpErrorKind> {
    use IcmpErrorKind::*;
    Some(match (kind, code) {
        (V4_DEST_UNREACH, 0 | 6 | 11) => NetUnreachable,
        (V4_DEST_UNREACH, 1 | 5 | 7 | 8 | 12) => HostUnreachable,
        (V4_DEST_UNREACH, 2) => ProtocolUnreachable,
        (V4_DEST_UNREACH, 3) => PortUnreachable,
        (V4_DEST_UNREACH, V4_FRAG_NEEDED) => PacketTooBig { mtu: word & 0xffff },
        (V4_DEST_UNREACH, 9 | 10 | 13..=15) => AdminProhibited,
        (V4_TIME_EXCEEDED, _) => TimeExceeded,
        (V4_PARAM_PROBLEM, _) => ParameterProblem,
        _ => return None,
    })
}

/// As [`kind_v4`], for ICMPv6.
pub(super) fn kind_v6(kind: u8, code: u8, word: u32) -> Option<IcmpErrorKind> {
    use IcmpErrorKind::*;
    Some(match (kind, code) {
        (V6_DEST_UNREACH, 0) => NetUnreachable,
        (V6_DEST_UNREACH, 2 | 3) => HostUnreachable,
        (V6_DEST_UNREACH, 4) => PortUnreachable,
        (V6_DEST_UNREACH, 1 | 5 | 6) => AdminProhibited,
        (V6_PACKET_TOO_BIG, _) => PacketTooBig { mtu: word },
        (V6_TIME_EXCEEDED, _) => TimeExceeded,
        (V6_PARAM_PROBLEM, V6_UNRECOGNIZED_NEXT_HEADER) => ProtocolUnreachable,
        (V6_PARAM_PROBLEM, _) => ParameterProblem,
        _ => return None,
    })
}

/// The TCP segment an error quotes (after the ICMP header's 8 bytes): the invoking packet's
/// IP header and at least the first 8 bytes of TCP (RFC 792; RFC 4443 §2.4 (c): as much as
/// fits). `None` if it is not a TCP segment or too short to name its connection.
pub(super) fn quoted(kind: IcmpErrorKind, body: &[u8]) -> Option<IcmpError> {
    let first = *body.first()?;
    let (src, dst, tcp) = match first >> 4 {
        4 => {
            let ihl = usize::from(first & 0x0f) * 4;
            if ihl < 20 || body.get(9).copied()? != IpNumber::TCP.0 {
                return None;
            }
            let src = Ipv4Addr::from(*array::<4>(body, 12)?);
            let dst = Ipv4Addr::from(*array::<4>(body, 16)?);
            (IpAddr::V4(src), IpAddr::V4(dst), body.get(ihl..)?)
        }
        6 => {
            // We send no extension headers: a quoted packet of ours has TCP right behind.
            if body.get(6).copied()? != IpNumber::TCP.0 {
                return None;
            }
            let src = Ipv6Addr::from(*array::<16>(body, 8)?);
            let dst = Ipv6Addr::from(*array::<16>(body, 24)?);
            (IpAddr::V6(src), IpAddr::V6(dst), body.get(40..)?)
        }
        _ => return None,
    };
    let ports = *array::<4>(tcp, 0)?;
    Some(IcmpError {
        kind,
        quad: Quad {
            local: SocketAddr::new(src, u16::from_be_bytes([ports[0], ports[1]])),
            remote: SocketAddr::new(dst, u16::from_be_bytes([ports[2], ports[3]])),
        },
        seq: SeqNum::new(be_u32(tcp, 4)?),
    })
}

/// The most an ICMP error may be (RFC 1812 §4.3.2.3: 576 bytes; RFC 4443 §2.4 (c): the
/// minimum IPv6 MTU, 1280).
const MAX_ERROR_V4: usize = 576;
const MAX_ERROR_V6: usize = 1280;

/// Write an ICMP or ICMPv6 error of `kind` from `src` (a router) to `dst` (the sender of
/// `invoking`), quoting as much of `invoking` as the message may carry. Returns its length.
pub fn emit_icmp_error(
    buf: &mut [u8],
    src: IpAddr,
    dst: IpAddr,
    kind: IcmpErrorKind,
    invoking: &[u8],
) -> Result<usize, EmitError> {
    use IcmpErrorKind::*;
    let v4 = src.is_ipv4();
    let (kind_code, word): ((u8, u8), u32) = match (kind, v4) {
        (NetUnreachable, true) => ((V4_DEST_UNREACH, 0), 0),
        (HostUnreachable, true) => ((V4_DEST_UNREACH, 1), 0),
        (ProtocolUnreachable, true) => ((V4_DEST_UNREACH, 2), 0),
        (PortUnreachable, true) => ((V4_DEST_UNREACH, 3), 0),
        (PacketTooBig { mtu }, true) => ((V4_DEST_UNREACH, V4_FRAG_NEEDED), mtu & 0xffff),
        (AdminProhibited, true) => ((V4_DEST_UNREACH, 13), 0),
        (TimeExceeded, true) => ((V4_TIME_EXCEEDED, 0), 0),
        (ParameterProblem, true) => ((V4_PARAM_PROBLEM, 0), 0),
        (NetUnreachable, false) => ((V6_DEST_UNREACH, 0), 0),
        (HostUnreachable, false) => ((V6_DEST_UNREACH, 3), 0),
        (ProtocolUnreachable, false) => ((V6_PARAM_PROBLEM, V6_UNRECOGNIZED_NEXT_HEADER), 6),
        (PortUnreachable, false) => ((V6_DEST_UNREACH, 4), 0),
        (PacketTooBig { mtu }, false) => ((V6_PACKET_TOO_BIG, 0), mtu),
        (AdminProhibited, false) => ((V6_DEST_UNREACH, 1), 0),
        (TimeExceeded, false) => ((V6_TIME_EXCEEDED, 0), 0),
        (ParameterProblem, false) => ((V6_PARAM_PROBLEM, 0), 0),
    };
    let (proto, max, ip_len) = if v4 {
        (IpNumber::ICMP.0, MAX_ERROR_V4, 20)
    } else {
        (IpNumber::IPV6_ICMP.0, MAX_ERROR_V6, 40)
    };
    let quote = invoking.len().min(max - ip_len - 8);
    let msg_len = 8 + quote;
    let (ip_len, total) = emit_ip_header(buf, src, dst, proto, msg_len, super::Ecn::NotEct)?;
    let msg = buf
        .get_mut(ip_len..total)
        .ok_or(EmitError::BufferTooSmall)?;
    let mut w = Writer::new(msg);
    w.put(&[kind_code.0, kind_code.1, 0, 0])?;
    w.put(&word.to_be_bytes())?;
    w.put(invoking.get(..quote).unwrap_or(&[]))?;
    let sum = if v4 {
        Sum16BitWords::new()
    } else {
        let len = u32::try_from(msg_len).map_err(|_| EmitError::BufferTooSmall)?;
        pseudo_header(src, dst, proto, len)
    };
    let sum = compute(sum, msg);
    set_be_u16(msg, 2, sum)?;
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::super::{Flags, Packet, SEGMENT_TEMPLATE, TcpSegment, emit_tcp, parse};
    use super::*;

    fn segment(src: &str, dst: &str) -> Vec<u8> {
        let mut buf = vec![0; 2000];
        let seg = TcpSegment {
            src_port: 80,
            dst_port: 40000,
            seq: SeqNum::new(0xdead_beef),
            flags: Flags::ACK,
            payload: &[7; 1400],
            ..SEGMENT_TEMPLATE
        };
        let n = emit_tcp(&mut buf, src.parse().unwrap(), dst.parse().unwrap(), &seg).unwrap();
        buf.truncate(n);
        buf
    }

    const ALL: [IcmpErrorKind; 8] = [
        IcmpErrorKind::NetUnreachable,
        IcmpErrorKind::HostUnreachable,
        IcmpErrorKind::ProtocolUnreachable,
        IcmpErrorKind::PortUnreachable,
        IcmpErrorKind::AdminProhibited,
        IcmpErrorKind::PacketTooBig { mtu: 1280 },
        IcmpErrorKind::TimeExceeded,
        IcmpErrorKind::ParameterProblem,
    ];

    #[test]
    fn every_error_round_trips_with_its_quoted_segment_v4_and_v6() {
        for (us, peer, router) in [
            ("198.18.0.2", "198.18.0.1", "198.18.0.254"),
            ("2001:2::2", "2001:2::1", "2001:2::fe"),
        ] {
            let invoking = segment(us, peer);
            for kind in ALL {
                let mut buf = vec![0; 2000];
                let n = emit_icmp_error(
                    &mut buf,
                    router.parse().unwrap(),
                    us.parse().unwrap(),
                    kind,
                    &invoking,
                )
                .unwrap();
                assert!(n <= if us.contains(':') { 1280 } else { 576 });
                let Ok(Packet::IcmpError { src, dst, error }) = parse(&buf[..n]) else {
                    panic!("{kind:?}: {:?}", parse(&buf[..n]));
                };
                assert_eq!(src, router.parse::<IpAddr>().unwrap());
                assert_eq!(dst, us.parse::<IpAddr>().unwrap());
                assert_eq!(error.kind, kind);
                assert_eq!(error.seq, SeqNum::new(0xdead_beef));
                assert_eq!(error.quad.local, SocketAddr::new(us.parse().unwrap(), 80));
                assert_eq!(
                    error.quad.remote,
                    SocketAddr::new(peer.parse().unwrap(), 40000)
                );
            }
        }
    }

    #[test]
    fn an_error_with_a_bad_checksum_is_dropped() {
        let invoking = segment("198.18.0.2", "198.18.0.1");
        let mut buf = vec![0; 2000];
        let n = emit_icmp_error(
            &mut buf,
            "198.18.0.254".parse().unwrap(),
            "198.18.0.2".parse().unwrap(),
            IcmpErrorKind::PortUnreachable,
            &invoking,
        )
        .unwrap();
        buf[n - 1] ^= 1;
        assert_eq!(
            parse(&buf[..n]),
            Err(super::super::DropReason::BadIcmpChecksum)
        );
    }

    #[test]
    fn errors_quoting_too_little_or_no_tcp_and_other_types_are_other() {
        let invoking = segment("198.18.0.2", "198.18.0.1");
        let (router, us) = (
            "198.18.0.254".parse().unwrap(),
            "198.18.0.2".parse().unwrap(),
        );
        let mut buf = vec![0; 2000];
        // Only the IP header and 4 bytes of TCP: no sequence number.
        let n = emit_icmp_error(
            &mut buf,
            router,
            us,
            IcmpErrorKind::HostUnreachable,
            &invoking[..24],
        )
        .unwrap();
        assert!(matches!(parse(&buf[..n]), Ok(Packet::Other { .. })));
        // A quoted UDP datagram.
        let mut udp = invoking.clone();
        udp[9] = 17;
        let n =
            emit_icmp_error(&mut buf, router, us, IcmpErrorKind::HostUnreachable, &udp).unwrap();
        assert!(matches!(parse(&buf[..n]), Ok(Packet::Other { .. })));
        // Source quench (type 4, RFC 6633: ignored) and redirect (type 5).
        for kind in [4u8, 5] {
            assert_eq!(kind_v4(kind, 0, 0), None);
        }
        // An ICMPv6 redirect and neighbour discovery are not errors either.
        assert_eq!(kind_v6(137, 0, 0), None);
        assert_eq!(kind_v6(135, 0, 0), None);
    }

    #[test]
    fn only_protocol_and_port_unreachable_are_hard() {
        let hard: Vec<_> = ALL.into_iter().filter(|k| k.is_hard()).collect();
        assert_eq!(
            hard,
            [
                IcmpErrorKind::ProtocolUnreachable,
                IcmpErrorKind::PortUnreachable
            ]
        );
    }
}
