//! Parsing and emitting IP packets: IPv4/IPv6, TCP, ICMP/ICMPv6 echo.
//!
//! Everything that comes from the network enters the crate through [`parse`], which validates
//! every length and checksum and returns either a typed view borrowing the buffer or the
//! [`DropReason`] it was rejected for. Nothing here panics on input.

mod bytes;
mod checksum;
mod emit;
pub mod gso;
mod icmp;
mod options;
mod parse;
#[cfg(test)]
pub(crate) mod testutil;

pub use emit::{EmitError, emit_echo_reply, emit_tcp};
pub use gso::{Gso, emit_tcp_gso, emit_tcp_gso_headers};
pub use icmp::{IcmpError, IcmpErrorKind, emit_icmp_error};
pub use options::{
    AccEcnOption, FastOpenCookie, MAX_OPTIONS_LEN, MAX_SACK_BLOCKS, SackBlock, TcpOptions,
};
pub use parse::{parse, parse_with};

/// What the device says about a packet it delivered (see `src/device`: the TUN's offloads).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RxMeta {
    /// The local kernel vouches for the transport checksum: it left it for offload to fill in
    /// (virtio-net `NEEDS_CSUM`) or verified it (`DATA_VALID`). Never set for packets that
    /// cannot be trusted that way (the TUN without offloads, `--impair`).
    pub checksum_trusted: bool,
}

use crate::seqnum::SeqNum;
use std::fmt;
use std::net::{IpAddr, SocketAddr};

/// A connection's 4-tuple, named from the endpoint's point of view (RFC 9293 §3.3.1's
/// "local socket" and "remote socket"), so it does not flip with the direction of a packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Quad {
    pub local: SocketAddr,
    pub remote: SocketAddr,
}

/// A [`Quad`] in 38 bytes instead of 64 (issue 23): the two addresses as 16 bytes each (an
/// IPv4 address in the first 4) and the two ports. A `SocketAddrV6` also carries a flow
/// label and a scope id, which a 4-tuple taken from a packet never sets; they pack as 0.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PackedQuad {
    local_ip: [u8; 16],
    remote_ip: [u8; 16],
    local_port: u16,
    remote_port: u16,
    v4: bool,
}

fn pack_ip(ip: IpAddr) -> [u8; 16] {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, c, d] = v4.octets();
            [a, b, c, d, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]
        }
        IpAddr::V6(v6) => v6.octets(),
    }
}

fn unpack_ip(bytes: [u8; 16], v4: bool) -> IpAddr {
    if v4 {
        let [a, b, c, d, ..] = bytes;
        IpAddr::from([a, b, c, d])
    } else {
        IpAddr::from(bytes)
    }
}

impl PackedQuad {
    /// The local and remote ports, without unpacking the addresses (every segment's header).
    pub fn ports(&self) -> (u16, u16) {
        (self.local_port, self.remote_port)
    }

    pub fn get(&self) -> Quad {
        Quad {
            local: SocketAddr::new(unpack_ip(self.local_ip, self.v4), self.local_port),
            remote: SocketAddr::new(unpack_ip(self.remote_ip, self.v4), self.remote_port),
        }
    }
}

impl From<Quad> for PackedQuad {
    fn from(q: Quad) -> PackedQuad {
        PackedQuad {
            local_ip: pack_ip(q.local.ip()),
            remote_ip: pack_ip(q.remote.ip()),
            local_port: q.local.port(),
            remote_port: q.remote.port(),
            // A quad never mixes families (both ends of one packet).
            v4: q.local.is_ipv4(),
        }
    }
}

impl fmt::Display for Quad {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} <-> {}", self.local, self.remote)
    }
}

/// The TCP control bits (RFC 9293 §3.1, plus ECE/CWR of RFC 3168 and AE of RFC 9768 §3:
/// the header's bit 7, before CWR, once reserved).
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Flags(pub u16);

impl Flags {
    pub const FIN: Flags = Flags(0x01);
    pub const SYN: Flags = Flags(0x02);
    pub const RST: Flags = Flags(0x04);
    pub const PSH: Flags = Flags(0x08);
    pub const ACK: Flags = Flags(0x10);
    pub const URG: Flags = Flags(0x20);
    pub const ECE: Flags = Flags(0x40);
    pub const CWR: Flags = Flags(0x80);
    /// Accurate ECN (RFC 9768 §3): with CWR and ECE the 3-bit ACE field.
    pub const AE: Flags = Flags(0x100);
    /// The nine control bits that exist (the three others of the 12 are reserved).
    pub const ALL: Flags = Flags(0x1ff);
    pub const NONE: Flags = Flags(0);

    pub const fn union(self, other: Flags) -> Flags {
        Flags(self.0 | other.0)
    }

    pub const fn contains(self, other: Flags) -> bool {
        self.0 & other.0 == other.0
    }

    pub const fn fin(self) -> bool {
        self.contains(Flags::FIN)
    }
    pub const fn syn(self) -> bool {
        self.contains(Flags::SYN)
    }
    pub const fn rst(self) -> bool {
        self.contains(Flags::RST)
    }
    pub const fn psh(self) -> bool {
        self.contains(Flags::PSH)
    }
    pub const fn ack(self) -> bool {
        self.contains(Flags::ACK)
    }
    pub const fn urg(self) -> bool {
        self.contains(Flags::URG)
    }
    pub const fn ece(self) -> bool {
        self.contains(Flags::ECE)
    }
    pub const fn cwr(self) -> bool {
        self.contains(Flags::CWR)
    }
    pub const fn ae(self) -> bool {
        self.contains(Flags::AE)
    }

    /// The ACE field of RFC 9768 §3.2.2: AE, CWR and ECE read as a 3-bit number (AE the most
    /// significant bit).
    pub const fn ace(self) -> u8 {
        ((self.0 >> 6) & 0b111) as u8
    }

    /// These flags with the ACE field set to `ace` (its three low bits).
    pub const fn with_ace(self, ace: u8) -> Flags {
        Flags((self.0 & !0x1c0) | ((ace as u16 & 0b111) << 6))
    }

    /// These flags without the flags of `other`.
    pub const fn without(self, other: Flags) -> Flags {
        Flags(self.0 & !other.0)
    }
}

impl std::ops::BitOr for Flags {
    type Output = Flags;
    fn bitor(self, rhs: Flags) -> Flags {
        Flags(self.0 | rhs.0)
    }
}

impl std::ops::BitOrAssign for Flags {
    fn bitor_assign(&mut self, rhs: Flags) {
        self.0 |= rhs.0;
    }
}

impl fmt::Display for Flags {
    /// Flags as tcpdump's readers expect to see them: `SYN,ACK`, `FIN,ACK`, `RST`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const NAMES: [(Flags, &str); 9] = [
            (Flags::SYN, "SYN"),
            (Flags::FIN, "FIN"),
            (Flags::RST, "RST"),
            (Flags::PSH, "PSH"),
            (Flags::ACK, "ACK"),
            (Flags::URG, "URG"),
            (Flags::ECE, "ECE"),
            (Flags::CWR, "CWR"),
            (Flags::AE, "AE"),
        ];
        let mut first = true;
        for (flag, name) in NAMES {
            if self.contains(flag) {
                if !first {
                    f.write_str(",")?;
                }
                f.write_str(name)?;
                first = false;
            }
        }
        if first {
            f.write_str("none")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Flags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// One TCP segment, either parsed from the wire (borrowing the packet) or about to be emitted
/// (borrowing the sender's buffer). Ports are as on the wire: `src_port` is the sender's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TcpSegment<'a> {
    pub src_port: u16,
    pub dst_port: u16,
    pub seq: SeqNum,
    /// Meaningful only when `flags.ack()`.
    pub ack: SeqNum,
    pub flags: Flags,
    /// The window field as it is on the wire (unscaled).
    pub window: u16,
    pub urgent: u16,
    pub options: TcpOptions,
    pub payload: &'a [u8],
    /// The ECN field of the IP header that carries it (RFC 3168 §5): read by the parser,
    /// written by the emitter.
    pub ecn: Ecn,
}

/// The ECN codepoint of an IP header (RFC 3168 §5): the two low bits of IPv4's TOS byte and
/// of IPv6's traffic class.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Ecn {
    /// 00: not ECN-capable transport.
    #[default]
    NotEct,
    /// 01: ECT(1) (L4S, RFC 9331).
    Ect1,
    /// 10: ECT(0), what an RFC 3168 sender marks.
    Ect0,
    /// 11: congestion experienced, set by a router instead of dropping.
    Ce,
}

impl Ecn {
    pub const fn from_bits(bits: u8) -> Ecn {
        match bits & 3 {
            0 => Ecn::NotEct,
            1 => Ecn::Ect1,
            2 => Ecn::Ect0,
            _ => Ecn::Ce,
        }
    }

    pub const fn bits(self) -> u8 {
        match self {
            Ecn::NotEct => 0,
            Ecn::Ect1 => 1,
            Ecn::Ect0 => 2,
            Ecn::Ce => 3,
        }
    }

    /// ECT(0) or ECT(1): a router may mark it CE.
    pub const fn is_ect(self) -> bool {
        matches!(self, Ecn::Ect0 | Ecn::Ect1)
    }
}

impl TcpSegment<'_> {
    /// SEG.LEN (RFC 9293 §3.3.1): the payload plus one for each of SYN and FIN.
    pub fn seg_len(&self) -> u32 {
        // A payload comes from one IP packet, so it is far below 2^32 bytes.
        let payload = u32::try_from(self.payload.len()).unwrap_or(u32::MAX - 2);
        payload + u32::from(self.flags.syn()) + u32::from(self.flags.fin())
    }
}

/// A template for segments in tests: every field zero, no flags, no options, no payload.
pub const SEGMENT_TEMPLATE: TcpSegment<'static> = TcpSegment {
    src_port: 0,
    dst_port: 0,
    seq: SeqNum::new(0),
    ack: SeqNum::new(0),
    flags: Flags::NONE,
    window: 0,
    urgent: 0,
    options: TcpOptions::EMPTY,
    payload: &[],
    ecn: Ecn::NotEct,
};

/// What [`parse`] found in a packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Packet<'a> {
    /// A TCP segment with valid IP and TCP headers and checksums.
    Tcp {
        src: IpAddr,
        dst: IpAddr,
        seg: TcpSegment<'a>,
    },
    /// An ICMP echo request (IPv4) or ICMPv6 echo request, checksum verified.
    EchoRequest {
        src: IpAddr,
        dst: IpAddr,
        ident: u16,
        seq_no: u16,
        data: &'a [u8],
    },
    /// A UDP datagram: synack speaks TCP only (and relays TCP only, `--addr any`), so it is
    /// dropped, and counted apart (`udp_dropped`): DNS routed into the interface goes
    /// unanswered.
    Udp { src: IpAddr, dst: IpAddr },
    /// An ICMP or ICMPv6 error quoting a TCP segment (`icmp.rs`), checksum verified. `src`
    /// is whoever sent the error (a router, or the peer).
    IcmpError {
        src: IpAddr,
        dst: IpAddr,
        error: IcmpError,
    },
    /// A well-formed packet that is not for us to answer (other protocols, other ICMP types,
    /// IPv6 neighbour discovery, ...). Ignored without counting it as malformed.
    Other { src: IpAddr, dst: IpAddr },
}

/// Why a packet was dropped by [`parse`]. Each reason has its own counter.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DropReason {
    /// Shorter than the headers it announces, or an IP version other than 4 or 6.
    Malformed,
    /// IPv4 header length (IHL) below 5 or past the end of the packet.
    BadIpv4HeaderLength,
    /// IPv4 total length larger than what was read.
    BadIpv4TotalLength,
    BadIpv4Checksum,
    /// An IPv4 or IPv6 fragment: not reassembled, never parsed as TCP.
    Fragment,
    /// An IPv6 extension header chain that could not be walked.
    BadIpv6Extension,
    /// TCP data offset below 5 or past the end of the segment.
    BadTcpDataOffset,
    BadTcpChecksum,
    /// A TCP option with an illegal length (0, 1, or running past the header).
    BadTcpOption,
    BadIcmpChecksum,
}

impl DropReason {
    pub const ALL: [DropReason; 10] = [
        DropReason::Malformed,
        DropReason::BadIpv4HeaderLength,
        DropReason::BadIpv4TotalLength,
        DropReason::BadIpv4Checksum,
        DropReason::Fragment,
        DropReason::BadIpv6Extension,
        DropReason::BadTcpDataOffset,
        DropReason::BadTcpChecksum,
        DropReason::BadTcpOption,
        DropReason::BadIcmpChecksum,
    ];

    /// The counter this reason is counted under (`synack stats`, the shutdown line).
    pub const fn counter_name(self) -> &'static str {
        match self {
            DropReason::Malformed => "drop_malformed",
            DropReason::BadIpv4HeaderLength => "drop_bad_ipv4_header_length",
            DropReason::BadIpv4TotalLength => "drop_bad_ipv4_total_length",
            DropReason::BadIpv4Checksum => "drop_bad_ipv4_checksum",
            DropReason::Fragment => "drop_fragment",
            DropReason::BadIpv6Extension => "drop_bad_ipv6_extension",
            DropReason::BadTcpDataOffset => "drop_bad_tcp_data_offset",
            DropReason::BadTcpChecksum => "drop_bad_tcp_checksum",
            DropReason::BadTcpOption => "drop_bad_tcp_option",
            DropReason::BadIcmpChecksum => "drop_bad_icmp_checksum",
        }
    }

    /// A stable snake_case name: the counter's, without its `drop_` prefix.
    pub fn name(self) -> &'static str {
        let counter = self.counter_name();
        counter.strip_prefix("drop_").unwrap_or(counter)
    }
}

impl fmt::Display for DropReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod packed_quad_tests {
    use super::*;

    #[test]
    fn a_packed_quad_is_the_quad_in_38_bytes() {
        for (l, r) in [
            ("198.18.0.2:80", "198.18.0.1:40000"),
            ("[2001:2::2]:443", "[2001:2::1]:1"),
            ("[::ffff:198.18.0.2]:7", "[::ffff:198.18.0.1]:65535"),
            ("0.0.0.0:0", "255.255.255.255:65535"),
        ] {
            let q = Quad {
                local: l.parse().unwrap(),
                remote: r.parse().unwrap(),
            };
            assert_eq!(PackedQuad::from(q).get(), q);
            assert_eq!(
                PackedQuad::from(q).ports(),
                (q.local.port(), q.remote.port())
            );
        }
        let v4 = Quad {
            local: "0.0.0.0:1".parse().unwrap(),
            remote: "0.0.0.0:2".parse().unwrap(),
        };
        let v6 = Quad {
            local: "[::]:1".parse().unwrap(),
            remote: "[::]:2".parse().unwrap(),
        };
        assert_ne!(
            PackedQuad::from(v4),
            PackedQuad::from(v6),
            "the family is kept"
        );
        assert_eq!(std::mem::size_of::<PackedQuad>(), 38);
    }
}
