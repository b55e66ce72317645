//! Emitting packets into a caller's buffer (no allocation).

use super::bytes::{Writer, set_be_u16};
use super::checksum::{compute, partial, pseudo_header};
use super::{Ecn, Flags, TcpSegment};
use etherparse::IpNumber;
use etherparse::checksum::Sum16BitWords;
use std::net::IpAddr;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EmitError {
    /// The output buffer is too small for the packet (or the packet would exceed the 65535
    /// bytes an IP length field can describe).
    BufferTooSmall,
    /// Source and destination are not of the same IP version.
    MixedFamilies,
}

/// The hop limit / TTL of everything we send (Linux's default, `net.ipv4.ip_default_ttl`).
const HOP_LIMIT: u8 = 64;
const IPV4_HEADER_LEN: usize = 20;
const IPV6_HEADER_LEN: usize = 40;
const TCP_HEADER_LEN: usize = 20;
/// RFC 792 echo reply.
const ICMPV4_ECHO_REPLY: u8 = 0;
/// RFC 4443 §4.2 echo reply.
const ICMPV6_ECHO_REPLY: u8 = 129;

/// Write an IPv4 or IPv6 packet carrying `seg` into `buf`, with correct IP and TCP checksums.
/// Options are emitted in the order MSS, window scale, SACK-permitted, timestamps, SACK blocks,
/// NOP-padded to a multiple of four. Returns the packet's length.
///
/// IPv4 packets carry TTL 64, DF set and ID 0 (RFC 6864 §4.1: the ID of an atomic datagram
/// has no meaning); IPv6 packets hop limit 64, traffic class and flow label 0.
pub fn emit_tcp(
    buf: &mut [u8],
    src: IpAddr,
    dst: IpAddr,
    seg: &TcpSegment<'_>,
) -> Result<usize, EmitError> {
    emit_tcp_with(buf, src, dst, seg, TcpChecksum::Full)
}

/// How the TCP checksum field of an emitted segment is filled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum TcpChecksum {
    /// The complete checksum (RFC 9293 §3.1).
    Full,
    /// Only the pseudo-header's sum, not complemented, for a device that completes it
    /// (checksum offload: the kernel's CHECKSUM_PARTIAL, virtio's NEEDS_CSUM).
    Partial,
    /// As `Partial`, and the payload is left out: only the headers are written (their
    /// lengths still count it), for a device that gathers the payload from where it lies.
    PartialHeadersOnly,
}

pub(super) fn emit_tcp_with(
    buf: &mut [u8],
    src: IpAddr,
    dst: IpAddr,
    seg: &TcpSegment<'_>,
    checksum: TcpChecksum,
) -> Result<usize, EmitError> {
    let options_len = seg.options.wire_len();
    let header_len = TCP_HEADER_LEN + options_len;
    let tcp_len = header_len + seg.payload.len();
    let (ip_len, total) = emit_ip_header(buf, src, dst, IpNumber::TCP.0, tcp_len, seg.ecn)?;
    let tcp = buf
        .get_mut(ip_len..total)
        .ok_or(EmitError::BufferTooSmall)?;

    // RFC 9293 §3.1: the header format. Data offset in 32-bit words; header_len ≤ 60.
    let data_offset = u8::try_from(header_len / 4).unwrap_or(15);
    let mut w = Writer::new(tcp);
    w.put(&seg.src_port.to_be_bytes())?;
    w.put(&seg.dst_port.to_be_bytes())?;
    w.put(&seg.seq.raw().to_be_bytes())?;
    w.put(&seg.ack.raw().to_be_bytes())?;
    // AE (RFC 9768 §3) is the low bit of the data offset's byte.
    let [ae, flags] = (seg.flags.0 & Flags::ALL.0).to_be_bytes();
    w.put(&[data_offset << 4 | ae, flags])?;
    w.put(&seg.window.to_be_bytes())?;
    w.put(&[0, 0])?; // checksum, filled in below
    w.put(&seg.urgent.to_be_bytes())?;
    seg.options.emit(&mut w)?;
    if checksum != TcpChecksum::PartialHeadersOnly {
        w.put(seg.payload)?;
    }

    // RFC 9293 §3.1, MUST-2: the checksum covers the pseudo-header, header and data.
    let len = u32::try_from(tcp_len).map_err(|_| EmitError::BufferTooSmall)?;
    let pseudo = pseudo_header(src, dst, IpNumber::TCP.0, len);
    let sum = match checksum {
        TcpChecksum::Full => compute(pseudo, tcp),
        TcpChecksum::Partial | TcpChecksum::PartialHeadersOnly => partial(pseudo),
    };
    set_be_u16(tcp, 16, sum)?;
    if checksum == TcpChecksum::PartialHeadersOnly {
        return Ok(ip_len + header_len);
    }
    Ok(total)
}

/// Write an ICMP echo reply (IPv4) or ICMPv6 echo reply (IPv6) into `buf`.
///
/// RFC 792: type 0, code 0, checksum over the message. RFC 4443 §4.2: type 129, code 0,
/// checksum including the IPv6 pseudo-header (§2.3). Returns the packet's length.
pub fn emit_echo_reply(
    buf: &mut [u8],
    src: IpAddr,
    dst: IpAddr,
    ident: u16,
    seq_no: u16,
    data: &[u8],
) -> Result<usize, EmitError> {
    let (proto, kind) = match src {
        IpAddr::V4(_) => (IpNumber::ICMP.0, ICMPV4_ECHO_REPLY),
        IpAddr::V6(_) => (IpNumber::IPV6_ICMP.0, ICMPV6_ECHO_REPLY),
    };
    let msg_len = 8 + data.len();
    let (ip_len, total) = emit_ip_header(buf, src, dst, proto, msg_len, Ecn::NotEct)?;
    let msg = buf
        .get_mut(ip_len..total)
        .ok_or(EmitError::BufferTooSmall)?;
    let mut w = Writer::new(msg);
    w.put(&[kind, 0, 0, 0])?;
    w.put(&ident.to_be_bytes())?;
    w.put(&seq_no.to_be_bytes())?;
    w.put(data)?;
    let sum = match src {
        IpAddr::V4(_) => Sum16BitWords::new(),
        IpAddr::V6(_) => {
            let len = u32::try_from(msg_len).map_err(|_| EmitError::BufferTooSmall)?;
            pseudo_header(src, dst, proto, len)
        }
    };
    let sum = compute(sum, msg);
    set_be_u16(msg, 2, sum)?;
    Ok(total)
}

/// Write the IP header for an upper-layer message of `upper_len` bytes. Returns the header's
/// length and the packet's total length, having checked that the whole packet fits in `buf`.
pub(super) fn emit_ip_header(
    buf: &mut [u8],
    src: IpAddr,
    dst: IpAddr,
    proto: u8,
    upper_len: usize,
    ecn: Ecn,
) -> Result<(usize, usize), EmitError> {
    match (src, dst) {
        (IpAddr::V4(src), IpAddr::V4(dst)) => {
            let total = IPV4_HEADER_LEN + upper_len;
            let total_field = u16::try_from(total).map_err(|_| EmitError::BufferTooSmall)?;
            let header = buf
                .get_mut(..total)
                .ok_or(EmitError::BufferTooSmall)?
                .get_mut(..IPV4_HEADER_LEN)
                .ok_or(EmitError::BufferTooSmall)?;
            // RFC 791 §3.1: version 4, IHL 5, TOS (DSCP 0, the ECN field: RFC 3168 §5),
            // total length, ID 0, DF, TTL, protocol.
            let mut w = Writer::new(header);
            w.put(&[0x45, ecn.bits()])?;
            w.put(&total_field.to_be_bytes())?;
            w.put(&[0, 0, 0x40, 0, HOP_LIMIT, proto, 0, 0])?;
            w.put(&src.octets())?;
            w.put(&dst.octets())?;
            let sum = compute(Sum16BitWords::new(), header);
            set_be_u16(header, 10, sum)?;
            Ok((IPV4_HEADER_LEN, total))
        }
        (IpAddr::V6(src), IpAddr::V6(dst)) => {
            let payload_field = u16::try_from(upper_len).map_err(|_| EmitError::BufferTooSmall)?;
            let total = IPV6_HEADER_LEN + upper_len;
            let header = buf
                .get_mut(..total)
                .ok_or(EmitError::BufferTooSmall)?
                .get_mut(..IPV6_HEADER_LEN)
                .ok_or(EmitError::BufferTooSmall)?;
            // RFC 8200 §3: version 6, traffic class (DSCP 0, the ECN field), flow label 0,
            // payload length, next header, hop limit.
            let mut w = Writer::new(header);
            w.put(&[0x60, ecn.bits() << 4, 0, 0])?;
            w.put(&payload_field.to_be_bytes())?;
            w.put(&[proto, HOP_LIMIT])?;
            w.put(&src.octets())?;
            w.put(&dst.octets())?;
            Ok((IPV6_HEADER_LEN, total))
        }
        _ => Err(EmitError::MixedFamilies),
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::super::{
        Flags, MAX_SACK_BLOCKS, Packet, SEGMENT_TEMPLATE, SackBlock, TcpOptions, parse,
    };
    use super::*;
    use crate::seqnum::SeqNum;
    use etherparse::{PacketBuilder, TcpHeader};

    const SEG: TcpSegment<'static> = TcpSegment {
        src_port: 80,
        dst_port: 40000,
        seq: SeqNum::new(0xfffffffe),
        ack: SeqNum::new(12345),
        flags: Flags::ACK,
        window: 65535,
        ..SEGMENT_TEMPLATE
    };

    /// Every combination of options that a real header could carry (at most 40 bytes back to
    /// back), so none has to be shortened when emitted.
    fn all_option_combinations() -> Vec<TcpOptions> {
        let mut out = Vec::new();
        for bits in 0..16u32 {
            for blocks in 0..=MAX_SACK_BLOCKS {
                let mut o = TcpOptions::EMPTY;
                let mut raw = if blocks > 0 { 2 + 8 * blocks } else { 0 };
                if bits & 1 != 0 {
                    o.mss = Some(1460);
                    raw += 4;
                }
                if bits & 2 != 0 {
                    o.window_scale = Some(7);
                    raw += 3;
                }
                if bits & 4 != 0 {
                    o.sack_permitted = true;
                    raw += 2;
                }
                if bits & 8 != 0 {
                    o.timestamps = Some((0x11223344, 0x55667788));
                    raw += 10;
                }
                if raw > 40 {
                    continue;
                }
                for (i, slot) in o.sack_blocks.iter_mut().take(blocks).enumerate() {
                    let i = i as u32;
                    *slot = SackBlock {
                        left: SeqNum::new(0xffff_0000u32.wrapping_add(i * 1000)),
                        right: SeqNum::new(0xffff_0000u32.wrapping_add(i * 1000 + 500)),
                    };
                }
                o.sack_count = blocks as u8;
                out.push(o);
            }
        }
        assert!(out.len() > 50);
        out
    }

    fn emit_vec(src: IpAddr, dst: IpAddr, seg: &TcpSegment<'_>) -> Vec<u8> {
        let mut buf = [0u8; 2048];
        let n = emit_tcp(&mut buf, src, dst, seg).unwrap();
        buf[..n].to_vec()
    }

    /// The TCP segment of an emitted packet, its checksum checked by the naive summer.
    fn check_tcp_checksum(src: IpAddr, dst: IpAddr, p: &[u8]) {
        let ip_len = if src.is_ipv4() { 20 } else { 40 };
        let seg = &p[ip_len..];
        assert_eq!(inet_checksum(&[&pseudo(src, dst, 6, seg.len()), seg]), 0);
        if src.is_ipv4() {
            assert_eq!(inet_checksum(&[&p[..20]]), 0, "IPv4 header checksum");
        }
    }

    #[test]
    fn every_option_combination_round_trips_v4_and_v6() {
        let payload = b"round trip payload, odd length";
        for (src, dst) in [v4(), v6()] {
            for options in all_option_combinations() {
                for (flags, payload) in [
                    (Flags::SYN, &b""[..]),
                    (Flags::SYN | Flags::ACK, &b""[..]),
                    (Flags::ACK | Flags::PSH, &payload[..]),
                    (
                        Flags::FIN | Flags::ACK | Flags::ECE | Flags::CWR | Flags::URG,
                        &payload[..],
                    ),
                ] {
                    let seg = TcpSegment {
                        flags,
                        options,
                        payload,
                        urgent: 3,
                        ..SEG
                    };
                    let p = emit_vec(src, dst, &seg);
                    check_tcp_checksum(src, dst, &p);
                    assert_eq!(parse(&p), Ok(Packet::Tcp { src, dst, seg }), "{options:?}");
                }
            }
        }
    }

    /// Our bytes equal etherparse's for the same headers (its own checksum code, our options
    /// bytes), so the IP header layout and both checksums agree with an independent emitter.
    #[test]
    fn bytes_match_etherparse_packet_builder() {
        for options in all_option_combinations() {
            let seg = TcpSegment {
                flags: Flags::SYN | Flags::ACK | Flags::PSH,
                options,
                payload: b"abc",
                ..SEG
            };
            for (src, dst) in [v4(), v6()] {
                let ours = emit_vec(src, dst, &seg);
                let ip_len = if src.is_ipv4() { 20 } else { 40 };
                let opt_bytes = &ours[ip_len + 20..ip_len + 20 + options.wire_len()];
                let mut header =
                    TcpHeader::new(seg.src_port, seg.dst_port, seg.seq.raw(), seg.window);
                header.acknowledgment_number = seg.ack.raw();
                header.syn = true;
                header.ack = true;
                header.psh = true;
                header.set_options_raw(opt_bytes).unwrap();
                let builder = match (src, dst) {
                    (IpAddr::V4(s), IpAddr::V4(d)) => {
                        PacketBuilder::ipv4(s.octets(), d.octets(), 64)
                    }
                    (IpAddr::V6(s), IpAddr::V6(d)) => {
                        PacketBuilder::ipv6(s.octets(), d.octets(), 64)
                    }
                    _ => unreachable!(),
                };
                let mut theirs = Vec::new();
                builder
                    .tcp_header(header)
                    .write(&mut theirs, seg.payload)
                    .unwrap();
                assert_eq!(ours, theirs, "{options:?}");
            }
        }
    }

    #[test]
    fn ipv4_header_fields() {
        let (src, dst) = v4();
        let p = emit_vec(src, dst, &SEG);
        assert_eq!(p.len(), 40);
        assert_eq!(p[0], 0x45);
        assert_eq!(u16::from_be_bytes([p[2], p[3]]), 40);
        assert_eq!(&p[4..8], &[0, 0, 0x40, 0], "ID 0, DF, offset 0");
        assert_eq!(p[8], 64, "TTL");
        assert_eq!(p[9], 6);
        assert_eq!(p[32], 5 << 4, "data offset 5");
    }

    #[test]
    fn ipv6_header_fields() {
        let (src, dst) = v6();
        let seg = TcpSegment {
            payload: b"12345",
            ..SEG
        };
        let p = emit_vec(src, dst, &seg);
        assert_eq!(&p[..4], &[0x60, 0, 0, 0]);
        assert_eq!(u16::from_be_bytes([p[4], p[5]]), 25);
        assert_eq!((p[6], p[7]), (6, 64));
        assert_eq!(p.len(), 65);
    }

    #[test]
    fn syn_ack_options_are_linux_like() {
        let (src, dst) = v4();
        let seg = TcpSegment {
            flags: Flags::SYN | Flags::ACK,
            options: TcpOptions {
                mss: Some(1460),
                window_scale: Some(7),
                sack_permitted: true,
                timestamps: Some((1, 2)),
                ..TcpOptions::EMPTY
            },
            ..SEG
        };
        let p = emit_vec(src, dst, &seg);
        assert_eq!(p[32] >> 4, 10, "20 + 20 bytes of options");
        // mss, sackOK, TS, nop, wscale (Linux's tcp_options_write).
        assert_eq!(&p[40..48], &[2, 4, 5, 180, 4, 2, 8, 10]);
        assert_eq!(&p[56..60], &[1, 3, 3, 7]);
    }

    #[test]
    fn buffer_too_small() {
        let seg = TcpSegment {
            payload: b"payload",
            options: TcpOptions {
                mss: Some(1),
                ..TcpOptions::EMPTY
            },
            ..SEG
        };
        for (src, dst) in [v4(), v6()] {
            let ip = if src.is_ipv4() { 20 } else { 40 };
            let need = ip + 20 + 4 + 7;
            let mut buf = vec![0u8; need];
            assert_eq!(emit_tcp(&mut buf, src, dst, &seg), Ok(need));
            for short in [0, 1, 20, 39, need - 1] {
                assert_eq!(
                    emit_tcp(&mut buf[..short], src, dst, &seg),
                    Err(EmitError::BufferTooSmall),
                    "{short} bytes"
                );
            }
            let need = ip + 8 + 7;
            assert_eq!(
                emit_echo_reply(&mut buf[..need], src, dst, 1, 2, b"payload"),
                Ok(need)
            );
            for short in [0, 1, 20, need - 1] {
                assert_eq!(
                    emit_echo_reply(&mut buf[..short], src, dst, 1, 2, b"payload"),
                    Err(EmitError::BufferTooSmall),
                    "{short} bytes"
                );
            }
        }
    }

    #[test]
    fn oversized_packets_are_refused() {
        let big = vec![0u8; 65535 - 40 + 1];
        let mut buf = vec![0u8; 70000];
        let seg = TcpSegment {
            payload: &big,
            ..SEG
        };
        let (s4, d4) = v4();
        assert_eq!(
            emit_tcp(&mut buf, s4, d4, &seg),
            Err(EmitError::BufferTooSmall)
        );
        let fits = TcpSegment {
            payload: &big[1..],
            ..SEG
        };
        assert_eq!(emit_tcp(&mut buf, s4, d4, &fits), Ok(65535));
        // IPv6's limit is on the payload (TCP header and data), not the whole packet.
        let (s6, d6) = v6();
        let big6 = vec![0u8; 65535 - 20 + 1];
        let too_big6 = TcpSegment {
            payload: &big6,
            ..SEG
        };
        assert_eq!(
            emit_tcp(&mut buf, s6, d6, &too_big6),
            Err(EmitError::BufferTooSmall)
        );
        let fits6 = TcpSegment {
            payload: &big6[1..],
            ..SEG
        };
        assert_eq!(emit_tcp(&mut buf, s6, d6, &fits6), Ok(65535 + 40));
    }

    #[test]
    fn mixed_families() {
        let mut buf = [0u8; 200];
        let (s4, _) = v4();
        let (_, d6) = v6();
        assert_eq!(
            emit_tcp(&mut buf, s4, d6, &SEG),
            Err(EmitError::MixedFamilies)
        );
        assert_eq!(
            emit_tcp(&mut buf, d6, s4, &SEG),
            Err(EmitError::MixedFamilies)
        );
        assert_eq!(
            emit_echo_reply(&mut buf, s4, d6, 1, 1, b""),
            Err(EmitError::MixedFamilies)
        );
        // Checked before the size: an empty buffer still reports the family mismatch.
        assert_eq!(
            emit_tcp(&mut [], s4, d6, &SEG),
            Err(EmitError::MixedFamilies)
        );
    }

    #[test]
    fn echo_replies_match_etherparse_and_checksum() {
        let data = b"ping payload!";
        let mut buf = [0u8; 200];
        let (s4, d4) = v4();
        let n = emit_echo_reply(&mut buf, s4, d4, 0x1234, 7, data).unwrap();
        let mut theirs = Vec::new();
        PacketBuilder::ipv4(V4_SRC.octets(), V4_DST.octets(), 64)
            .icmpv4_echo_reply(0x1234, 7)
            .write(&mut theirs, data)
            .unwrap();
        assert_eq!(&buf[..n], &theirs[..]);
        assert_eq!(inet_checksum(&[&buf[20..n]]), 0);
        assert_eq!(buf[20], 0, "type 0");

        let (s6, d6) = v6();
        let n = emit_echo_reply(&mut buf, s6, d6, 0x1234, 7, data).unwrap();
        let mut theirs = Vec::new();
        PacketBuilder::ipv6(V6_SRC.octets(), V6_DST.octets(), 64)
            .icmpv6_echo_reply(0x1234, 7)
            .write(&mut theirs, data)
            .unwrap();
        assert_eq!(&buf[..n], &theirs[..]);
        let msg = &buf[40..n];
        assert_eq!(inet_checksum(&[&pseudo(s6, d6, 58, msg.len()), msg]), 0);
        assert_eq!(msg[0], 129);
    }

    #[test]
    fn echo_reply_answers_a_real_ping() {
        for ping in [LINUX_PING_V4, LINUX_PING_V6] {
            let p = hex(ping);
            let Ok(Packet::EchoRequest {
                src,
                dst,
                ident,
                seq_no,
                data,
            }) = parse(&p)
            else {
                panic!()
            };
            let mut buf = [0u8; 200];
            let n = emit_echo_reply(&mut buf, dst, src, ident, seq_no, data).unwrap();
            // Same length as the request; a reply is not itself an echo request.
            assert_eq!(n, p.len());
            assert_eq!(parse(&buf[..n]), Ok(Packet::Other { src: dst, dst: src }));
        }
    }
}
