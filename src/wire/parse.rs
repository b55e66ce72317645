//! Validating parser: bytes from the TUN in, a typed [`Packet`] or a [`DropReason`] out.
//!
//! etherparse does the slicing: the IPv4 header (version, IHL, options), the IPv6 header and
//! each header of its extension chain, the TCP header (data offset) and the walk over TCP
//! options.
//! synack keeps only what etherparse's header slices do not check or decide differently:
//! the IPv4 total length against the header, every checksum, fragments (dropped, even atomic
//! ones), IPv4 and IPv6 Authentication Headers (not for us: no IPsec), IPv6 routing headers
//! with segments left, the TLV options inside Hop-by-Hop and Destination Options headers, the
//! TCP option rules of RFC 9293 §3.2 (in [`TcpOptions::parse`]), and the drop reasons that
//! the counters report. Where etherparse would hand over a TCP segment that synack drops, a
//! test (`etherparse_*` below) feeds etherparse the same bytes; the decisions table in
//! docs/ARCHITECTURE.md lists each case. Nothing here indexes or unwraps: no input can panic.

use super::bytes::array;
use super::checksum::{pseudo_header, verify};
use super::{DropReason, Ecn, Flags, Packet, RxMeta, TcpOptions, TcpSegment, icmp};
use crate::seqnum::SeqNum;
use etherparse::checksum::Sum16BitWords;
use etherparse::err::tcp::HeaderSliceError;
use etherparse::{
    IpNumber, Ipv4HeaderSlice, Ipv6HeaderSlice, Ipv6RawExtHeaderSlice, TcpHeader, TcpHeaderSlice,
    icmpv4, icmpv6,
};
use std::net::IpAddr;

/// Parse one IP packet as read from a TUN device (no packet-info header).
///
/// Validates: IP version; IPv4 IHL, total length and header checksum (bytes after the total
/// length are ignored, IP options skipped); IPv6 payload length and extension-header chain;
/// fragments are dropped; TCP data offset, option lengths and checksum; ICMP checksums.
pub fn parse(buf: &[u8]) -> Result<Packet<'_>, DropReason> {
    parse_with(buf, RxMeta::default())
}

/// [`parse`], told by the device what it already checked: with
/// [`RxMeta::checksum_trusted`], TCP and ICMP checksums are not verified (the packet came
/// from the local kernel with a checksum it left for hardware to fill in, or had verified).
/// Everything else is validated as by [`parse`], the IPv4 header checksum included.
pub fn parse_with(buf: &[u8], meta: RxMeta) -> Result<Packet<'_>, DropReason> {
    let verify_l4 = !meta.checksum_trusted;
    let first = buf.first().ok_or(DropReason::Malformed)?;
    match first >> 4 {
        4 => parse_ipv4(buf, verify_l4),
        6 => parse_ipv6(buf, verify_l4),
        _ => Err(DropReason::Malformed),
    }
}

/// RFC 791 §3.1.
fn parse_ipv4(buf: &[u8], verify_l4: bool) -> Result<Packet<'_>, DropReason> {
    // etherparse: at least 20 bytes, IHL ≥ 5, and the whole header (options too) present.
    let header = Ipv4HeaderSlice::from_slice(buf).map_err(|_| DropReason::BadIpv4HeaderLength)?;
    let ihl = header.slice().len();
    let total = usize::from(header.total_len());
    if total < ihl {
        return Err(DropReason::BadIpv4TotalLength);
    }
    // Bytes past the total length (link padding) are not part of the datagram.
    let packet = buf.get(..total).ok_or(DropReason::BadIpv4TotalLength)?;
    // etherparse slices without looking at the header checksum.
    if !verify(Sum16BitWords::new(), header.slice()) {
        return Err(DropReason::BadIpv4Checksum);
    }
    // RFC 791: MF set or a nonzero fragment offset (etherparse reads both). Any fragment,
    // first or later, is dropped, never parsed as TCP: synack does not reassemble (the
    // project's RFC checklist, ../shared/RFC-CHECKLIST.md beside the repository, row "IP
    // layer": "fragments reassembled or dropped"; RFC 1122 §3.3.2 asks hosts to reassemble,
    // see the decisions table in docs/ARCHITECTURE.md).
    if header.is_fragmenting_payload() {
        return Err(DropReason::Fragment);
    }
    let src = IpAddr::V4(header.source_addr());
    let dst = IpAddr::V4(header.destination_addr());
    // RFC 9293 §3.9.2 MUST-50: IP options are passed over (the IHL skips them).
    let payload = packet.get(ihl..).unwrap_or(&[]);
    // An Authentication Header (protocol 51) is Other, not walked: see parse_ipv6.
    match header.protocol() {
        IpNumber::TCP => parse_tcp(
            src,
            dst,
            payload,
            verify_l4,
            Ecn::from_bits(header.ecn().value()),
        ),
        IpNumber::UDP => Ok(Packet::Udp { src, dst }),
        IpNumber::ICMP => parse_icmp(src, dst, payload, None, verify_l4),
        _ => Ok(Packet::Other { src, dst }),
    }
}

/// RFC 8200 §3 (header) and §4 (extension headers).
fn parse_ipv6(buf: &[u8], verify_l4: bool) -> Result<Packet<'_>, DropReason> {
    // etherparse: at least 40 bytes and version 6.
    let header = Ipv6HeaderSlice::from_slice(buf).map_err(|_| DropReason::Malformed)?;
    let start = header.slice().len();
    // Bytes past the payload length are ignored; a payload longer than what was read is not.
    let payload = buf
        .get(start..start + usize::from(header.payload_length()))
        .ok_or(DropReason::Malformed)?;
    let src = IpAddr::V6(header.source_addr());
    let dst = IpAddr::V6(header.destination_addr());
    // RFC 3168 §5: the low two bits of the traffic class.
    let ecn = Ecn::from_bits(header.traffic_class());

    // The chain, one header at a time: etherparse slices each header (RFC 8200 §4.3-4.6:
    // 8 bytes at least, the length in 8-octet units not counting the first eight); synack
    // decides what each means. Ipv6ExtensionsSlice is not used: it walks on past fragment
    // and Authentication Headers to the TCP header behind them, and its iterator reads out
    // of bounds after a chain that `from_slice_lax` cut short (docs/ARCHITECTURE.md,
    // decisions; tests `etherparse_*` below).
    let mut next = header.next_header();
    let mut rest = payload;
    let mut first = true;
    loop {
        match next {
            IpNumber::TCP => return parse_tcp(src, dst, rest, verify_l4, ecn),
            IpNumber::UDP => return Ok(Packet::Udp { src, dst }),
            IpNumber::IPV6_ICMP => {
                return parse_icmp(src, dst, rest, Some(IpNumber::IPV6_ICMP.0), verify_l4);
            }
            // RFC 8200 §4.5: any fragment is dropped, atomic fragments included (we do not
            // reassemble); no need to read the header itself.
            IpNumber::IPV6_FRAGMENTATION_HEADER => return Err(DropReason::Fragment),
            IpNumber::IPV6_HEADER_HOP_BY_HOP
            | IpNumber::IPV6_DESTINATION_OPTIONS
            | IpNumber::IPV6_ROUTE_HEADER => {
                // RFC 8200 §4.3: Hop-by-Hop Options only immediately after the IPv6 header.
                if next == IpNumber::IPV6_HEADER_HOP_BY_HOP && !first {
                    return Err(DropReason::BadIpv6Extension);
                }
                let ext = Ipv6RawExtHeaderSlice::from_slice(rest)
                    .map_err(|_| DropReason::BadIpv6Extension)?;
                if next == IpNumber::IPV6_ROUTE_HEADER {
                    // RFC 8200 §4.4: with Segments Left zero the header is ignored; otherwise
                    // the packet is on its way to another node, not to us. (The payload
                    // starts with the routing type, then segments left.)
                    if ext.payload().get(1).copied().unwrap_or(0) != 0 {
                        return Ok(Packet::Other { src, dst });
                    }
                } else {
                    // etherparse does not look inside the options.
                    walk_tlv_options(ext.payload())?;
                }
                rest = rest.get(ext.slice().len()..).unwrap_or(&[]);
                next = ext.next_header();
            }
            // No next header, ESP, an Authentication Header (RFC 4302: without IPsec there
            // is no security association to check it against) and anything else are not for
            // a TCP endpoint.
            _ => return Ok(Packet::Other { src, dst }),
        }
        first = false;
    }
}

/// Walk the TLV-encoded options of a Hop-by-Hop or Destination Options header (RFC 8200
/// §4.2). Pad1 is one byte; every other option is type, length, data. Options we do not know
/// are skipped when their two high-order bits are 00; any other action (discard, with or
/// without an ICMP error) drops the packet, as does an option running past the header.
fn walk_tlv_options(mut opts: &[u8]) -> Result<(), DropReason> {
    const PAD1: u8 = 0;
    const PADN: u8 = 1;
    while let Some((&kind, after)) = opts.split_first() {
        if kind == PAD1 {
            opts = after;
            continue;
        }
        let len = usize::from(*after.first().ok_or(DropReason::BadIpv6Extension)?);
        opts = opts.get(2 + len..).ok_or(DropReason::BadIpv6Extension)?;
        if kind != PADN && kind >> 6 != 0 {
            return Err(DropReason::BadIpv6Extension);
        }
    }
    Ok(())
}

/// RFC 9293 §3.1: the TCP header, validated and checksummed.
fn parse_tcp(
    src: IpAddr,
    dst: IpAddr,
    seg: &[u8],
    verify_l4: bool,
    ecn: Ecn,
) -> Result<Packet<'_>, DropReason> {
    // etherparse: 20 bytes at least, data offset ≥ 5 and the options within the segment.
    let header = TcpHeaderSlice::from_slice(seg).map_err(|e| match e {
        HeaderSliceError::Len(len) if len.required_len <= TcpHeader::MIN_LEN => {
            DropReason::Malformed
        }
        HeaderSliceError::Len(_) | HeaderSliceError::Content(_) => DropReason::BadTcpDataOffset,
    })?;
    // RFC 9293 §3.1, MUST-3: verify the checksum over the pseudo-header and the segment
    // (unless the device vouched for it: see `parse_with`). etherparse does not.
    // The segment length is bounded by the IP length fields (< 2^16 + extension headers).
    let len = u32::try_from(seg.len()).map_err(|_| DropReason::Malformed)?;
    if verify_l4 && !verify(pseudo_header(src, dst, IpNumber::TCP.0, len), seg) {
        return Err(DropReason::BadTcpChecksum);
    }
    let options = TcpOptions::parse(header.options())?;
    let fixed = header.slice();
    Ok(Packet::Tcp {
        src,
        dst,
        seg: TcpSegment {
            src_port: header.source_port(),
            dst_port: header.destination_port(),
            seq: SeqNum::new(header.sequence_number()),
            ack: SeqNum::new(header.acknowledgment_number()),
            // The nine flag bits (AE..FIN), RFC 9293 §3.1 and RFC 9768 §3: AE is the low
            // bit of byte 12 (the three reserved bits above it are ignored, as RFC 9293 §3.1 asks).
            flags: Flags(
                u16::from_be_bytes([
                    fixed.get(12).copied().unwrap_or(0),
                    fixed.get(13).copied().unwrap_or(0),
                ]) & Flags::ALL.0,
            ),
            window: header.window_size(),
            urgent: header.urgent_pointer(),
            options,
            payload: seg.get(fixed.len()..).unwrap_or(&[]),
            ecn,
        },
    })
}

/// An ICMP (RFC 792) or ICMPv6 (RFC 4443) message. Echo requests (RFC 792 type 8, RFC 4443
/// §4.1 type 128, code 0) and the errors TCP acts on that quote a TCP segment (`icmp.rs`) are
/// checksummed and returned; every other message is [`Packet::Other`]. `pseudo` is the
/// next-header value of an IPv6 pseudo-header (RFC 4443 §2.3), `None` for ICMPv4, whose
/// checksum covers the message alone.
fn parse_icmp(
    src: IpAddr,
    dst: IpAddr,
    msg: &[u8],
    pseudo: Option<u8>,
    verify_l4: bool,
) -> Result<Packet<'_>, DropReason> {
    // Every ICMP message starts with type, code and checksum, and the ones we read with a
    // second 32-bit word.
    let [kind, code, _, _] = *array::<4>(msg, 0).ok_or(DropReason::Malformed)?;
    let echo_request = match pseudo {
        None => icmpv4::TYPE_ECHO_REQUEST,
        Some(_) => icmpv6::TYPE_ECHO_REQUEST,
    };
    let Some(&[_, _, _, _, a, b, c, d]) = array::<8>(msg, 0) else {
        if kind == echo_request && code == 0 {
            return Err(DropReason::Malformed);
        }
        return Ok(Packet::Other { src, dst });
    };
    let word = u32::from_be_bytes([a, b, c, d]);
    let error = match pseudo {
        None => icmp::kind_v4(kind, code, word),
        Some(_) => icmp::kind_v6(kind, code, word),
    };
    let error = match error {
        Some(error_kind) => match icmp::quoted(error_kind, msg.get(8..).unwrap_or(&[])) {
            Some(error) => Some(error),
            None => return Ok(Packet::Other { src, dst }),
        },
        None if kind == echo_request && code == 0 => None,
        None => return Ok(Packet::Other { src, dst }),
    };
    let sum = match pseudo {
        Some(next) => {
            let len = u32::try_from(msg.len()).map_err(|_| DropReason::Malformed)?;
            pseudo_header(src, dst, next, len)
        }
        None => Sum16BitWords::new(),
    };
    if verify_l4 && !verify(sum, msg) {
        return Err(DropReason::BadIcmpChecksum);
    }
    if let Some(error) = error {
        return Ok(Packet::IcmpError { src, dst, error });
    }
    Ok(Packet::EchoRequest {
        src,
        dst,
        ident: u16::from_be_bytes([a, b]),
        seq_no: u16::from_be_bytes([c, d]),
        data: msg.get(8..).unwrap_or(&[]),
    })
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::super::{SackBlock, TcpOptions};
    use super::*;
    use etherparse::{PacketBuilder, TcpOptionElement};
    use proptest::prelude::*;
    use std::net::Ipv4Addr;

    fn tcp_seg(p: &[u8]) -> TcpSegment<'_> {
        match parse(p) {
            Ok(Packet::Tcp { seg, .. }) => seg,
            other => panic!("expected TCP, got {other:?}"),
        }
    }

    // --- Real and independently built packets --------------------------------------------

    #[test]
    fn real_linux_syn_v4() {
        let p = hex(LINUX_SYN_V4);
        let Ok(Packet::Tcp { src, dst, seg }) = parse(&p) else {
            panic!("{:?}", parse(&p))
        };
        assert_eq!((src, dst), v4());
        assert_eq!((seg.src_port, seg.dst_port), (46560, 80));
        assert_eq!(seg.seq, SeqNum::new(0x2799f4ea));
        assert_eq!(seg.flags, Flags::SYN);
        assert_eq!(seg.window, 64240);
        assert_eq!(seg.options.mss, Some(1460));
        assert_eq!(seg.options.window_scale, Some(10));
        assert!(seg.options.sack_permitted);
        assert_eq!(seg.options.timestamps, Some((0x76e20cac, 0)));
        assert!(seg.payload.is_empty());
    }

    #[test]
    fn real_linux_syn_v6() {
        let p = hex(LINUX_SYN_V6);
        let Ok(Packet::Tcp { src, dst, seg }) = parse(&p) else {
            panic!("{:?}", parse(&p))
        };
        assert_eq!((src, dst), v6());
        assert_eq!(seg.dst_port, 80);
        assert_eq!(seg.flags, Flags::SYN);
        assert_eq!(seg.options.mss, Some(1440));
        assert_eq!(seg.options.window_scale, Some(10));
    }

    #[test]
    fn real_linux_syn_with_one_bit_flipped_fails_its_checksum() {
        // Flip a bit of the TCP sequence number in each: the IP header is still fine.
        let mut p4 = hex(LINUX_SYN_V4);
        p4[24] ^= 0x10;
        assert_eq!(parse(&p4), Err(DropReason::BadTcpChecksum));
        let mut p6 = hex(LINUX_SYN_V6);
        p6[44] ^= 0x10;
        assert_eq!(parse(&p6), Err(DropReason::BadTcpChecksum));
    }

    #[test]
    fn real_linux_pings() {
        let (s4, d4) = v4();
        assert_eq!(
            parse(&hex(LINUX_PING_V4)),
            Ok(Packet::EchoRequest {
                src: s4,
                dst: d4,
                ident: 0x25a6,
                seq_no: 1,
                data: &[0, 1, 2, 3, 4, 5, 6, 7],
            })
        );
        let (s6, d6) = v6();
        assert_eq!(
            parse(&hex(LINUX_PING_V6)),
            Ok(Packet::EchoRequest {
                src: s6,
                dst: d6,
                ident: 0x25a7,
                seq_no: 1,
                data: &[0, 1, 2, 3, 4, 5, 6, 7],
            })
        );
    }

    #[test]
    fn etherparse_built_segments_parse() {
        let payload = b"hello, world";
        let opts = [
            TcpOptionElement::MaximumSegmentSize(1220),
            TcpOptionElement::Noop,
            TcpOptionElement::WindowScale(7),
            TcpOptionElement::SelectiveAcknowledgement((10, 20), [Some((30, 40)), None, None]),
            TcpOptionElement::Timestamp(5, 6),
        ];
        let builders = [
            PacketBuilder::ipv4(V4_SRC.octets(), V4_DST.octets(), 64),
            PacketBuilder::ipv6(V6_SRC.octets(), V6_DST.octets(), 64),
        ];
        for b in builders {
            let b = b
                .tcp(1234, 80, 0xfffffff0, 1000)
                .ack(99)
                .psh()
                .options(&opts)
                .unwrap();
            let mut p = Vec::new();
            b.write(&mut p, payload).unwrap();
            let seg = tcp_seg(&p);
            assert_eq!((seg.src_port, seg.dst_port), (1234, 80));
            assert_eq!(seg.seq, SeqNum::new(0xfffffff0));
            assert_eq!(seg.ack, SeqNum::new(99));
            assert_eq!(seg.flags, Flags::ACK | Flags::PSH);
            assert_eq!(seg.window, 1000);
            assert_eq!(seg.payload, payload);
            assert_eq!(seg.options.mss, Some(1220));
            assert_eq!(seg.options.window_scale, Some(7));
            assert_eq!(seg.options.timestamps, Some((5, 6)));
            assert_eq!(
                seg.options.sack(),
                &[
                    SackBlock {
                        left: SeqNum::new(10),
                        right: SeqNum::new(20)
                    },
                    SackBlock {
                        left: SeqNum::new(30),
                        right: SeqNum::new(40)
                    }
                ]
            );
        }
    }

    #[test]
    fn etherparse_built_echo_requests_parse() {
        let mut p = Vec::new();
        PacketBuilder::ipv4(V4_SRC.octets(), V4_DST.octets(), 64)
            .icmpv4_echo_request(7, 8)
            .write(&mut p, b"odd")
            .unwrap();
        assert!(matches!(
            parse(&p),
            Ok(Packet::EchoRequest {
                ident: 7,
                seq_no: 8,
                data: b"odd",
                ..
            })
        ));
        let mut p = Vec::new();
        PacketBuilder::ipv6(V6_SRC.octets(), V6_DST.octets(), 64)
            .icmpv6_echo_request(9, 10)
            .write(&mut p, b"odd")
            .unwrap();
        assert!(matches!(
            parse(&p),
            Ok(Packet::EchoRequest {
                ident: 9,
                seq_no: 10,
                data: b"odd",
                ..
            })
        ));
    }

    /// The fuzz seeds were built by scapy, an independent implementation of every checksum.
    #[test]
    fn scapy_built_seed_corpus_parses_as_expected() {
        macro_rules! seed {
            ($name:literal) => {
                include_bytes!(concat!("../../fuzz/corpus/parse/", $name)).as_slice()
            };
        }
        let tcp = |p: &[u8]| match parse(p) {
            Ok(Packet::Tcp { seg, .. }) => (seg.flags, seg.payload.len()),
            other => panic!("{other:?}"),
        };
        assert_eq!(tcp(seed!("v4_syn")), (Flags::SYN, 0));
        assert_eq!(tcp(seed!("v4_syn_padded")), (Flags::SYN, 0));
        assert_eq!(tcp(seed!("v6_syn")), (Flags::SYN, 0));
        assert_eq!(tcp(seed!("v4_data")), (Flags::PSH | Flags::ACK, 6));
        assert_eq!(tcp(seed!("v6_data_sack")), (Flags::ACK, 33));
        assert_eq!(tcp(seed!("v4_fin")), (Flags::FIN | Flags::ACK, 0));
        assert_eq!(tcp(seed!("v4_rst")), (Flags::RST, 0));
        assert_eq!(tcp(seed!("v4_ip_options")), (Flags::SYN, 0));
        assert_eq!(tcp(seed!("v6_ext_headers")), (Flags::SYN, 0));
        let Ok(Packet::Tcp { seg, .. }) = parse(seed!("v6_data_sack")) else {
            panic!()
        };
        assert_eq!(seg.options.sack().len(), 2);
        for ping in [seed!("v4_ping"), seed!("v6_ping")] {
            assert!(
                matches!(parse(ping), Ok(Packet::EchoRequest { data, .. }) if data.len() == 16)
            );
        }
        assert_eq!(parse(seed!("v4_fragment")), Err(DropReason::Fragment));
        assert_eq!(parse(seed!("v6_fragment")), Err(DropReason::Fragment));
        assert!(matches!(parse(seed!("v4_udp")), Ok(Packet::Udp { .. })));
        assert!(matches!(
            parse(seed!("v6_neighbour_solicitation")),
            Ok(Packet::Other { .. })
        ));
    }

    // --- IP layer ------------------------------------------------------------------------

    #[test]
    fn ipv4_options_are_skipped() {
        let (s, d) = v4();
        // NOP, NOP, Router Alert (RFC 2113): IHL 6.
        let p = ipv4(6, &[1, 1, 0x94, 4, 0, 0], &tcp(s, d, 0x10, &[], b"xy"));
        assert_eq!(p[0], 0x47);
        assert_eq!(tcp_seg(&p).payload, b"xy");
    }

    #[test]
    fn bytes_after_the_ipv4_total_length_are_ignored() {
        let mut p = v4_tcp(&[], b"data");
        p.extend([0xde, 0xad, 0xbe, 0xef, 0, 0]);
        assert_eq!(tcp_seg(&p).payload, b"data");
    }

    #[test]
    fn bytes_after_the_ipv6_payload_length_are_ignored() {
        let mut p = v6_tcp(&[], b"data");
        p.extend([0xde, 0xad]);
        assert_eq!(tcp_seg(&p).payload, b"data");
    }

    #[test]
    fn ipv6_hop_by_hop_and_destination_options_then_tcp() {
        let (s, d) = v6();
        let seg = tcp(s, d, 0x02, &[2, 4, 5, 0xa0], b"");
        // Hop-by-hop: next = dest opts (60), len 0, Router Alert (type 5, len 2), PadN 0.
        // Destination options: next = TCP, len 1 (16 bytes), PadN of 10, Pad1, Pad1.
        let mut ext = vec![60, 0, 5, 2, 0, 0, 1, 0];
        ext.extend([6, 1, 1, 10]);
        ext.extend([0; 10]);
        ext.extend([0, 0]);
        let p = ipv6(0, &ext, &seg);
        let got = tcp_seg(&p);
        assert_eq!(got.flags, Flags::SYN);
        assert_eq!(got.options.mss, Some(1440));
    }

    #[test]
    fn ipv6_routing_header_with_segments_left_zero_is_passed_over() {
        let (s, d) = v6();
        let seg = tcp(s, d, 0x02, &[], b"");
        // Routing type 4 (SRH-like), len 0, segments left 0.
        let p = ipv6(43, &[6, 0, 4, 0, 0, 0, 0, 0], &seg);
        assert_eq!(tcp_seg(&p).flags, Flags::SYN);
        // Segments left 1: the packet is for another node.
        let p = ipv6(43, &[6, 0, 4, 1, 0, 0, 0, 0], &seg);
        assert_eq!(parse(&p), Ok(Packet::Other { src: s, dst: d }));
    }

    #[test]
    fn other_protocols_are_other() {
        let (s4, d4) = v4();
        let (s6, d6) = v6();
        // UDP is told apart (counted as `udp_dropped`: synack relays TCP only).
        let udp = ipv4(17, &[], &[0; 8]);
        assert_eq!(parse(&udp), Ok(Packet::Udp { src: s4, dst: d4 }));
        // An ICMP echo reply (type 0) is not answered.
        let reply = ipv4(1, &[], &[0, 0, 0xff, 0xff, 0, 0, 0, 0]);
        assert_eq!(parse(&reply), Ok(Packet::Other { src: s4, dst: d4 }));
        // An echo request with a nonzero code is not one (RFC 792: code 0).
        let coded = ipv4(1, &[], &[8, 1, 0xf7, 0xfe, 0, 0, 0, 0]);
        assert_eq!(parse(&coded), Ok(Packet::Other { src: s4, dst: d4 }));
        assert_eq!(
            parse(&ipv6(17, &[], &[0; 8])),
            Ok(Packet::Udp { src: s6, dst: d6 })
        );
        // Neighbour solicitation, no next header, ESP.
        for (next, payload) in [(58u8, &[135u8, 0, 0, 0][..]), (59, &[]), (50, &[0; 8])] {
            assert_eq!(
                parse(&ipv6(next, &[], payload)),
                Ok(Packet::Other { src: s6, dst: d6 }),
                "next header {next}"
            );
        }
    }

    // --- Every DropReason ----------------------------------------------------------------

    #[test]
    fn malformed() {
        let cases: Vec<(&str, Vec<u8>)> = vec![
            ("empty", vec![]),
            ("version 5", {
                let mut p = v4_tcp(&[], b"");
                p[0] = 0x55;
                p
            }),
            ("version 0", vec![0; 60]),
            ("short IPv6 header", hex(LINUX_SYN_V6)[..39].to_vec()),
            ("IPv6 payload length past the end", {
                let mut p = hex(LINUX_SYN_V6);
                p.pop();
                p
            }),
            ("TCP shorter than 20 bytes", ipv4(6, &[], &[0; 19])),
            ("IPv6 TCP shorter than 20 bytes", ipv6(6, &[], &[0; 12])),
            ("ICMP shorter than 4 bytes", ipv4(1, &[], &[8, 0, 0])),
            (
                "echo request shorter than 8 bytes",
                ipv4(1, &[], &[8, 0, 0xf7, 0xff, 0, 0]),
            ),
            (
                "ICMPv6 echo shorter than 8 bytes",
                ipv6(58, &[], &[128, 0, 0, 0]),
            ),
        ];
        for (name, p) in cases {
            assert_eq!(parse(&p), Err(DropReason::Malformed), "{name}");
        }
    }

    #[test]
    fn bad_ipv4_header_length() {
        let good = v4_tcp(&[], b"");
        let mut ihl4 = good.clone();
        ihl4[0] = 0x44;
        let mut ihl15 = good.clone();
        ihl15[0] = 0x4f; // 60 bytes of header in a 40-byte packet
        let mut ihl15_short = good.clone();
        ihl15_short[0] = 0x4f;
        ihl15_short.truncate(50);
        for p in [ihl4, ihl15, ihl15_short, good[..10].to_vec(), vec![0x45]] {
            assert_eq!(parse(&p), Err(DropReason::BadIpv4HeaderLength), "{p:02x?}");
        }
    }

    #[test]
    fn bad_ipv4_total_length() {
        let mut too_long = v4_tcp(&[], b"abc");
        too_long[3] += 1;
        fix_ipv4_checksum(&mut too_long);
        let mut truncated = v4_tcp(&[], b"abc");
        truncated.pop();
        let mut below_header = v4_tcp(&[], b"abc");
        below_header[2..4].copy_from_slice(&19u16.to_be_bytes());
        fix_ipv4_checksum(&mut below_header);
        for p in [too_long, truncated, below_header] {
            assert_eq!(parse(&p), Err(DropReason::BadIpv4TotalLength));
        }
    }

    #[test]
    fn bad_ipv4_checksum() {
        let mut p = v4_tcp(&[], b"abc");
        p[8] = 63; // TTL changed, checksum not updated
        assert_eq!(parse(&p), Err(DropReason::BadIpv4Checksum));
        let mut opt = ipv4(6, &[1, 1, 1, 1], &[]);
        opt[21] = 0; // an IP option byte is covered by the checksum too
        assert_eq!(parse(&opt), Err(DropReason::BadIpv4Checksum));
    }

    #[test]
    fn fragments() {
        let (s, d) = v4();
        let seg = tcp(s, d, 0x10, &[], b"abc");
        // MF set (first fragment), offset 8 (a later one), both MF and offset.
        for flags in [0x2000u16, 0x0001, 0x2001, 0x6000] {
            let mut p = ipv4(6, &[], &seg);
            p[6..8].copy_from_slice(&flags.to_be_bytes());
            fix_ipv4_checksum(&mut p);
            assert_eq!(parse(&p), Err(DropReason::Fragment), "flags {flags:#06x}");
        }
        // IPv6 fragment header, even an atomic one (offset 0, M clear), and after HBH.
        let (s6, d6) = v6();
        let seg6 = tcp(s6, d6, 0x10, &[], b"abc");
        let frag = [6, 0, 0, 0, 0, 0, 0, 1];
        assert_eq!(parse(&ipv6(44, &frag, &seg6)), Err(DropReason::Fragment));
        let mut hbh_frag = vec![44, 0, 1, 4, 0, 0, 0, 0];
        hbh_frag.extend(frag);
        assert_eq!(parse(&ipv6(0, &hbh_frag, &seg6)), Err(DropReason::Fragment));
    }

    #[test]
    fn bad_ipv6_extension() {
        let (s, d) = v6();
        let seg = tcp(s, d, 0x10, &[], b"");
        let cases: Vec<(&str, u8, Vec<u8>, &[u8])> = vec![
            ("truncated hop-by-hop", 0, vec![6, 0, 1, 4, 0, 0], &[]),
            (
                "hop-by-hop length past the end",
                0,
                vec![6, 3, 1, 4, 0, 0, 0, 0],
                &seg,
            ),
            (
                "hop-by-hop after destination options",
                60,
                vec![0, 0, 1, 4, 0, 0, 0, 0, 6, 0, 1, 4, 0, 0, 0, 0],
                &seg,
            ),
            (
                "option running past its header",
                60,
                vec![6, 0, 1, 5, 0, 0, 0, 0],
                &seg,
            ),
            (
                "option with a missing length",
                60,
                vec![6, 0, 0, 0, 0, 0, 0, 1],
                &seg,
            ),
            (
                "unknown option that must be discarded",
                60,
                vec![6, 0, 0x42, 4, 0, 0, 0, 0],
                &seg,
            ),
            (
                "jumbo payload option",
                0,
                vec![6, 0, 0xc2, 4, 0, 0, 0, 0],
                &seg,
            ),
            ("truncated routing header", 43, vec![6], &[]),
        ];
        for (name, next, ext, payload) in cases {
            assert_eq!(
                parse(&ipv6(next, &ext, payload)),
                Err(DropReason::BadIpv6Extension),
                "{name}"
            );
        }
    }

    #[test]
    fn bad_tcp_data_offset() {
        let (s, d) = v4();
        for doff in [0u8, 4, 6, 15] {
            let mut seg = tcp(s, d, 0x10, &[], b"");
            seg[12] = doff << 4;
            fix_l4_checksum(s, d, 6, &mut seg, 16);
            assert_eq!(
                parse(&ipv4(6, &[], &seg)),
                Err(DropReason::BadTcpDataOffset),
                "data offset {doff}"
            );
        }
    }

    #[test]
    fn bad_tcp_checksum() {
        for mut p in [v4_tcp(&[1, 1, 1, 1], b"payload"), v6_tcp(&[], b"p")] {
            *p.last_mut().unwrap() ^= 0x01;
            assert_eq!(parse(&p), Err(DropReason::BadTcpChecksum));
        }
        // The pseudo-header counts: the same segment claimed by another source fails.
        let (_, d) = v4();
        let seg = tcp(IpAddr::V4(Ipv4Addr::new(198, 18, 0, 9)), d, 0x10, &[], b"");
        assert_eq!(parse(&ipv4(6, &[], &seg)), Err(DropReason::BadTcpChecksum));
    }

    /// A checksum the kernel left for offload (partial) is taken only when the device says
    /// so; the IPv4 header checksum is verified either way.
    #[test]
    fn a_trusted_checksum_is_not_verified_but_the_ip_header_is() {
        let trusted = RxMeta {
            checksum_trusted: true,
        };
        for mut p in [v4_tcp(&[1, 1, 1, 1], b"payload"), v6_tcp(&[], b"p")] {
            *p.last_mut().unwrap() ^= 0x01;
            assert_eq!(parse(&p), Err(DropReason::BadTcpChecksum));
            assert!(matches!(parse_with(&p, trusted), Ok(Packet::Tcp { .. })));
        }
        let mut p = v4_tcp(&[], b"x");
        p[8] = 63; // TTL changed, IP checksum not updated
        assert_eq!(parse_with(&p, trusted), Err(DropReason::BadIpv4Checksum));
    }

    #[test]
    fn bad_tcp_option() {
        let mut five_sacks = vec![1, 1, 5, 42];
        five_sacks.extend([0u8; 36]);
        let cases: [(&str, Vec<u8>); 6] = [
            ("length 0", vec![2, 0, 0, 0]),
            ("length 1", vec![1, 1, 30, 1]),
            ("length byte missing", vec![1, 1, 1, 8]),
            ("running past the header", vec![1, 1, 2, 4, 5, 0xb4, 8, 10]),
            ("unknown kind past the header", vec![254, 6, 0, 0]),
            ("SACK with five blocks (42 bytes)", five_sacks),
        ];
        for (name, opts) in cases {
            assert_eq!(
                parse(&v4_tcp(&opts, b"")),
                Err(DropReason::BadTcpOption),
                "v4 {name}"
            );
            assert_eq!(
                parse(&v6_tcp(&opts, b"")),
                Err(DropReason::BadTcpOption),
                "v6 {name}"
            );
        }
    }

    #[test]
    fn bad_icmp_checksum() {
        let mut p4 = hex(LINUX_PING_V4);
        *p4.last_mut().unwrap() ^= 1;
        assert_eq!(parse(&p4), Err(DropReason::BadIcmpChecksum));
        let mut p6 = hex(LINUX_PING_V6);
        *p6.last_mut().unwrap() ^= 1;
        assert_eq!(parse(&p6), Err(DropReason::BadIcmpChecksum));
        // ICMPv6 covers the pseudo-header: a message whose checksum ignores it fails.
        let mut msg = vec![128, 0, 0, 0, 0, 1, 0, 2];
        let sum = inet_checksum(&[&msg]);
        msg[2..4].copy_from_slice(&sum.to_be_bytes());
        assert_eq!(
            parse(&ipv6(58, &[], &msg)),
            Err(DropReason::BadIcmpChecksum)
        );
    }

    #[test]
    fn every_drop_reason_is_covered_above() {
        // A guard: if a reason is added, this list (and a test for it) must grow.
        assert_eq!(DropReason::ALL.len(), 10);
    }

    #[test]
    fn unaligned_options_in_a_packet() {
        // NOP, MSS at offset 1, WS at offset 5.
        let p = v4_tcp(&[1, 2, 4, 2, 0, 3, 3, 6, 1, 1, 1, 1], b"");
        let seg = tcp_seg(&p);
        assert_eq!(
            seg.options,
            TcpOptions {
                mss: Some(512),
                window_scale: Some(6),
                ..TcpOptions::EMPTY
            }
        );
    }

    // --- What etherparse (0.21.0) accepts and synack drops ----------------------------------
    //
    // Each test feeds etherparse the bytes directly and shows it hands them over, then shows
    // the check synack keeps for them. Listed in docs/ARCHITECTURE.md's decisions table.

    /// A TCP segment that etherparse's own full slicer hands over as TCP.
    fn etherparse_sees_tcp(p: &[u8]) -> bool {
        matches!(
            etherparse::SlicedPacket::from_ip(p),
            Ok(etherparse::SlicedPacket {
                transport: Some(etherparse::TransportSlice::Tcp(_)),
                ..
            })
        )
    }

    #[test]
    fn etherparse_does_not_check_the_ipv4_header_checksum() {
        let mut p = v4_tcp(&[], b"abc");
        p[8] = 63; // TTL changed, checksum not updated
        assert!(etherparse::Ipv4Slice::from_slice(&p).is_ok());
        assert!(etherparse_sees_tcp(&p));
        assert_eq!(parse(&p), Err(DropReason::BadIpv4Checksum));
    }

    #[test]
    fn etherparse_does_not_check_the_tcp_checksum() {
        for mut p in [v4_tcp(&[], b"payload"), v6_tcp(&[], b"payload")] {
            *p.last_mut().unwrap() ^= 1;
            assert!(etherparse_sees_tcp(&p));
            assert_eq!(parse(&p), Err(DropReason::BadTcpChecksum));
        }
    }

    #[test]
    fn etherparse_walks_past_an_authentication_header() {
        // AH (RFC 4302): next header TCP, payload length 1 (12 bytes), SPI 1, sequence 1.
        let ah = [6, 1, 0, 0, 0, 0, 0, 1, 0, 0, 0, 1];
        let (s4, d4) = v4();
        let p4 = ipv4(51, &[], &[&ah[..], &tcp(s4, d4, 0x02, &[], b"")].concat());
        let slice = etherparse::Ipv4Slice::from_slice(&p4).unwrap();
        assert_eq!(slice.payload_ip_number(), IpNumber::TCP);
        assert!(etherparse_sees_tcp(&p4));
        assert_eq!(parse(&p4), Ok(Packet::Other { src: s4, dst: d4 }));

        let (s6, d6) = v6();
        let p6 = ipv6(51, &ah, &tcp(s6, d6, 0x02, &[], b""));
        let (_, next, _) =
            etherparse::Ipv6ExtensionsSlice::from_slice(IpNumber::AUTHENTICATION_HEADER, &p6[40..])
                .unwrap();
        assert_eq!(next, IpNumber::TCP);
        assert!(etherparse_sees_tcp(&p6));
        assert_eq!(parse(&p6), Ok(Packet::Other { src: s6, dst: d6 }));
    }

    #[test]
    fn etherparse_walks_past_an_atomic_fragment() {
        // RFC 8200 §4.5 fragment header with offset 0 and M clear: not fragmenting, so
        // etherparse hands over the TCP segment; synack drops every fragment header.
        let (s, d) = v6();
        let p = ipv6(44, &[6, 0, 0, 0, 0, 0, 0, 1], &tcp(s, d, 0x02, &[], b""));
        let (exts, next, _) = etherparse::Ipv6ExtensionsSlice::from_slice(
            IpNumber::IPV6_FRAGMENTATION_HEADER,
            &p[40..],
        )
        .unwrap();
        assert_eq!(next, IpNumber::TCP);
        assert!(!exts.is_fragmenting_payload());
        assert!(etherparse_sees_tcp(&p));
        assert_eq!(parse(&p), Err(DropReason::Fragment));
    }

    #[test]
    fn etherparse_walks_past_a_routing_header_with_segments_left() {
        let (s, d) = v6();
        let p = ipv6(43, &[6, 0, 4, 1, 0, 0, 0, 0], &tcp(s, d, 0x02, &[], b""));
        assert!(etherparse_sees_tcp(&p));
        assert_eq!(parse(&p), Ok(Packet::Other { src: s, dst: d }));
    }

    #[test]
    fn etherparse_does_not_look_inside_ipv6_options() {
        let (s, d) = v6();
        let seg = tcp(s, d, 0x02, &[], b"");
        // An unknown option whose action is "discard" (high bits 01), and a PadN running
        // past its header.
        for ext in [[6, 0, 0x42, 4, 0, 0, 0, 0], [6, 0, 1, 5, 0, 0, 0, 0]] {
            let p = ipv6(60, &ext, &seg);
            assert!(etherparse_sees_tcp(&p), "{ext:?}");
            assert_eq!(parse(&p), Err(DropReason::BadIpv6Extension), "{ext:?}");
        }
    }

    /// The other way round: etherparse's option iterator stops at options synack must read
    /// past. An unknown kind (here MPTCP, 30) must be ignored (RFC 9293 §3.2 MUST-6); a known
    /// kind with another length is skipped as Linux skips it.
    #[test]
    fn etherparse_stops_at_options_synack_reads_past() {
        let unknown = [30, 4, 0, 0, 2, 4, 5, 0xb4];
        let mut it = etherparse::TcpOptionsIterator::from_slice(&unknown);
        assert_eq!(
            it.next(),
            Some(Err(etherparse::TcpOptionReadError::UnknownId(30)))
        );
        assert_eq!(it.next(), None);
        assert_eq!(tcp_seg(&v4_tcp(&unknown, b"")).options.mss, Some(1460));

        let odd_mss = [2, 3, 0, 3, 3, 7, 1, 1];
        let mut it = etherparse::TcpOptionsIterator::from_slice(&odd_mss);
        assert!(matches!(
            it.next(),
            Some(Err(etherparse::TcpOptionReadError::UnexpectedSize { .. }))
        ));
        let got = tcp_seg(&v4_tcp(&odd_mss, b"")).options;
        assert_eq!((got.mss, got.window_scale), (None, Some(7)));
    }

    /// etherparse 0.21.0: iterating the headers `Ipv6ExtensionsSlice::from_slice_lax` sliced
    /// before an error reads past them (`from_slice_unchecked` on what is left): a debug build
    /// aborts with "unsafe precondition(s) violated", a release build reads out of bounds.
    /// This is why parse_ipv6 slices one header at a time. Ignored because it aborts the test
    /// process: `cargo test --lib etherparse_lax_ipv6 -- --ignored` shows it.
    #[test]
    #[ignore = "aborts the process: undefined behaviour inside etherparse"]
    fn etherparse_lax_ipv6_extension_iterator_reads_out_of_bounds() {
        // Destination options, then a hop-by-hop header that is not first (an error).
        let ext = [0u8, 0, 1, 4, 0, 0, 0, 0];
        let (exts, _, _, error) = etherparse::Ipv6ExtensionsSlice::from_slice_lax(
            IpNumber::IPV6_DESTINATION_OPTIONS,
            &ext,
        );
        assert!(error.is_some());
        let _ = exts.into_iter().count();
    }

    // --- Robustness ----------------------------------------------------------------------

    fn valid_packets() -> Vec<Vec<u8>> {
        let (s, d) = v6();
        let mut ext = vec![60, 0, 5, 2, 0, 0, 1, 0];
        ext.extend([6, 0, 1, 4, 0, 0, 0, 0]);
        vec![
            hex(LINUX_SYN_V4),
            hex(LINUX_SYN_V6),
            hex(LINUX_PING_V4),
            hex(LINUX_PING_V6),
            v4_tcp(
                &[1, 1, 5, 18, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0, 4],
                b"data",
            ),
            ipv6(
                0,
                &ext,
                &tcp(s, d, 0x11, &[8, 10, 0, 0, 0, 1, 0, 0, 0, 2], b"fin"),
            ),
        ]
    }

    proptest! {
        #[test]
        fn parse_never_panics_on_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = parse(&bytes);
        }

        #[test]
        fn parse_never_panics_with_a_valid_version_nibble(
            v6 in any::<bool>(),
            bytes in proptest::collection::vec(any::<u8>(), 0..200),
        ) {
            let mut bytes = bytes;
            if let Some(b) = bytes.first_mut() {
                *b = (*b & 0x0f) | if v6 { 0x60 } else { 0x40 };
            }
            let _ = parse(&bytes);
        }

        #[test]
        fn parse_never_panics_on_mutated_valid_packets(
            which in 0usize..6,
            edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..8),
            cut in any::<usize>(),
            tail in proptest::collection::vec(any::<u8>(), 0..16),
        ) {
            let mut p = valid_packets().swap_remove(which);
            for (at, byte) in edits {
                let len = p.len();
                p[at % len] = byte;
            }
            p.truncate(cut % (p.len() + 1) + if cut % 2 == 0 { p.len() } else { 0 });
            p.extend(tail);
            let _ = parse(&p);
        }
    }
}
