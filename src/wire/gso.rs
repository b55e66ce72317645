//! Segmentation offload: TCP super-segments that a device splits into wire-sized segments.
//!
//! A TUN device opened with offloads (`IFF_VNET_HDR` + `TUNSETOFFLOAD`, see `src/device`)
//! exchanges one TCP "super-segment" of up to 64 KiB per `read`/`write` with the kernel, with a
//! small header saying how it divides into segments of `segment_size` payload bytes (Linux's
//! GSO/TSO, what a NIC does in hardware). Every segment repeats the IP and TCP headers with the
//! sequence number advanced, the lengths and checksums fixed, and PSH/FIN only on the last
//! (Linux's `tcp_gso_segment`). The kernel's TCP takes such a packet as the train of segments
//! it stands for (as after GRO), so the per-packet cost of the TUN is paid once per 64 KiB.
//!
//! [`segment`] performs the split in software: what the kernel would do, for tests and for
//! any sender that cannot take a super-segment.

use super::bytes::{array, be_u32, set_be_u16};
use super::checksum::{compute, pseudo_header};
use super::emit::{TcpChecksum, emit_tcp_with};
use super::{EmitError, Flags, TcpSegment};
use etherparse::IpNumber;
use etherparse::checksum::Sum16BitWords;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// How a TCP super-segment divides into segments (the fields of a virtio-net header that a
/// TCP sender fills in).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Gso {
    pub ipv6: bool,
    /// The IP and TCP headers (options included) that every segment repeats.
    pub hdr_len: u16,
    /// Payload bytes per segment (the MSS in effect); the last may be shorter.
    pub segment_size: u16,
    /// Where the TCP header, and so the checksummed part, starts.
    pub csum_start: u16,
}

impl Gso {
    /// The offset of the checksum field within the TCP header (RFC 9293 §3.1).
    pub const CSUM_OFFSET: u16 = 16;
}

/// The most payload one super-segment may carry: what fits an IPv4 total length (65535) with
/// a 20-byte IPv4 header and a full 60-byte TCP header (an IPv6 payload length leaves more).
pub const MAX_PAYLOAD: u32 = 65535 - 20 - 60;

/// How many wire segments of `size` payload bytes a segment of `len` payload bytes stands
/// for: one for anything up to `size` (an empty segment included), more for a super-segment.
pub fn segment_count(len: usize, size: usize) -> usize {
    len.div_ceil(size.max(1)).max(1)
}

/// Write `seg` as a super-segment of `segment_size`-byte segments into `buf`: headers as
/// [`super::emit_tcp`] writes them (lengths covering the whole payload), and the TCP checksum
/// field holding only the pseudo-header sum, which the device completes per segment.
pub fn emit_tcp_gso(
    buf: &mut [u8],
    src: IpAddr,
    dst: IpAddr,
    seg: &TcpSegment<'_>,
    segment_size: u16,
) -> Result<(usize, Gso), EmitError> {
    emit_gso_with(buf, src, dst, seg, segment_size, TcpChecksum::Partial)
}

/// [`emit_tcp_gso`] without the payload: only the headers are written into `buf` (their
/// lengths and pseudo-header sum counting `seg.payload`), for a device that gathers the
/// payload from where it lies (`writev`), so it is never copied into a packet buffer.
/// Returns the headers' length, which is `Gso::hdr_len`.
pub fn emit_tcp_gso_headers(
    buf: &mut [u8],
    src: IpAddr,
    dst: IpAddr,
    seg: &TcpSegment<'_>,
    segment_size: u16,
) -> Result<(usize, Gso), EmitError> {
    emit_gso_with(
        buf,
        src,
        dst,
        seg,
        segment_size,
        TcpChecksum::PartialHeadersOnly,
    )
}

fn emit_gso_with(
    buf: &mut [u8],
    src: IpAddr,
    dst: IpAddr,
    seg: &TcpSegment<'_>,
    segment_size: u16,
    checksum: TcpChecksum,
) -> Result<(usize, Gso), EmitError> {
    let n = emit_tcp_with(buf, src, dst, seg, checksum)?;
    let ip_len: u16 = if src.is_ipv6() { 40 } else { 20 };
    let tcp_hdr =
        u16::try_from(20 + seg.options.wire_len()).map_err(|_| EmitError::BufferTooSmall)?;
    Ok((
        n,
        Gso {
            ipv6: src.is_ipv6(),
            hdr_len: ip_len + tcp_hdr,
            segment_size: segment_size.max(1),
            csum_start: ip_len,
        },
    ))
}

/// Split a super-segment into complete, checksummed IP packets, each written into `scratch`
/// and handed to `out`, as a device honouring [`Gso`] would put them on the wire. Returns the
/// number of segments; a malformed super-segment (headers that do not parse) yields an error
/// and nothing.
pub fn segment(
    packet: &[u8],
    gso: Gso,
    scratch: &mut [u8],
    out: &mut dyn FnMut(&[u8]),
) -> Result<usize, EmitError> {
    let hdr_len = usize::from(gso.hdr_len);
    let ip_len = usize::from(gso.csum_start);
    let header = packet.get(..hdr_len).ok_or(EmitError::BufferTooSmall)?;
    let payload = packet.get(hdr_len..).unwrap_or(&[]);
    let (src, dst) = addresses(header, gso.ipv6).ok_or(EmitError::BufferTooSmall)?;
    let tcp_hdr = header.get(ip_len..).ok_or(EmitError::BufferTooSmall)?;
    let seq0 = be_u32(tcp_hdr, 4).ok_or(EmitError::BufferTooSmall)?;
    let flags = Flags(
        u16::from_be_bytes([
            *tcp_hdr.get(12).ok_or(EmitError::BufferTooSmall)?,
            *tcp_hdr.get(13).ok_or(EmitError::BufferTooSmall)?,
        ]) & Flags::ALL.0,
    );
    let size = usize::from(gso.segment_size.max(1));
    let count = segment_count(payload.len(), size);
    let chunks = payload
        .chunks(size)
        .chain(payload.is_empty().then_some(&[][..]));
    for (i, chunk) in chunks.enumerate() {
        let total = hdr_len + chunk.len();
        let out_buf = scratch.get_mut(..total).ok_or(EmitError::BufferTooSmall)?;
        out_buf
            .get_mut(..hdr_len)
            .ok_or(EmitError::BufferTooSmall)?
            .copy_from_slice(header);
        out_buf
            .get_mut(hdr_len..)
            .ok_or(EmitError::BufferTooSmall)?
            .copy_from_slice(chunk);
        // Linux's tcp_gso_segment: CWR on the first segment only, PSH and FIN on the last.
        let mut f = flags;
        if i + 1 < count {
            f = Flags(f.0 & !(Flags::PSH.0 | Flags::FIN.0));
        }
        if i > 0 {
            f = Flags(f.0 & !Flags::CWR.0);
        }
        let offset = u32::try_from(i * size).map_err(|_| EmitError::BufferTooSmall)?;
        let tcp_len = total - ip_len;
        {
            let tcp = out_buf.get_mut(ip_len..).ok_or(EmitError::BufferTooSmall)?;
            tcp.get_mut(4..8)
                .ok_or(EmitError::BufferTooSmall)?
                .copy_from_slice(&seq0.wrapping_add(offset).to_be_bytes());
            // Byte 12 (with AE) was copied from the header.
            let [_, low] = f.0.to_be_bytes();
            *tcp.get_mut(13).ok_or(EmitError::BufferTooSmall)? = low;
            set_be_u16(tcp, 16, 0)?;
            let len = u32::try_from(tcp_len).map_err(|_| EmitError::BufferTooSmall)?;
            let sum = compute(pseudo_header(src, dst, IpNumber::TCP.0, len), tcp);
            set_be_u16(tcp, 16, sum)?;
        }
        if gso.ipv6 {
            let payload_len = u16::try_from(total - 40).map_err(|_| EmitError::BufferTooSmall)?;
            set_be_u16(out_buf, 4, payload_len)?;
        } else {
            let total16 = u16::try_from(total).map_err(|_| EmitError::BufferTooSmall)?;
            set_be_u16(out_buf, 2, total16)?;
            set_be_u16(out_buf, 10, 0)?;
            let ip = out_buf.get_mut(..ip_len).ok_or(EmitError::BufferTooSmall)?;
            let sum = compute(Sum16BitWords::new(), ip);
            set_be_u16(ip, 10, sum)?;
        }
        out(out_buf);
    }
    Ok(count)
}

/// [`segment`] with a scratch buffer of its own (allocated per call): for tests, simulations
/// and fallbacks, not for a per-packet path.
pub fn split(packet: &[u8], gso: Gso, out: &mut dyn FnMut(&[u8])) -> Result<usize, EmitError> {
    let mut scratch = vec![0; usize::from(gso.hdr_len) + usize::from(gso.segment_size)];
    segment(packet, gso, &mut scratch, out)
}

/// Split a super-segment in software, as the kernel would, and hand each segment to `out`; a
/// malformed one is dropped whole (and logged). What `endpoint::Transmit::transmit_gso` does
/// by default, and the driver's fallback when its device does not offload.
pub fn transmit_split(packet: &[u8], gso: Gso, out: &mut dyn FnMut(&[u8])) {
    if split(packet, gso, out).is_err() {
        tracing::debug!(len = packet.len(), "malformed super-segment not sent");
    }
}

fn addresses(header: &[u8], ipv6: bool) -> Option<(IpAddr, IpAddr)> {
    if ipv6 {
        let src = Ipv6Addr::from(*array::<16>(header, 8)?);
        let dst = Ipv6Addr::from(*array::<16>(header, 24)?);
        Some((src.into(), dst.into()))
    } else {
        let src = Ipv4Addr::from(*array::<4>(header, 12)?);
        let dst = Ipv4Addr::from(*array::<4>(header, 16)?);
        Some((src.into(), dst.into()))
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::super::{Packet, SEGMENT_TEMPLATE, TcpOptions, emit_tcp, parse};
    use super::*;
    use crate::seqnum::SeqNum;

    fn super_segment(src: IpAddr, dst: IpAddr, payload: &[u8], flags: Flags) -> (Vec<u8>, Gso) {
        let seg = TcpSegment {
            src_port: 80,
            dst_port: 40000,
            seq: SeqNum::new(0xffff_f000),
            ack: SeqNum::new(7),
            flags,
            window: 1000,
            options: TcpOptions {
                timestamps: Some((1, 2)),
                ..TcpOptions::EMPTY
            },
            payload,
            ..SEGMENT_TEMPLATE
        };
        let mut buf = vec![0; 70000];
        let (n, gso) = emit_tcp_gso(&mut buf, src, dst, &seg, 1000).unwrap();
        buf.truncate(n);
        (buf, gso)
    }

    /// Every segment parses with a verified checksum, carries the next 1000 bytes at the
    /// right sequence number, and only the last has PSH and FIN; together they are the
    /// payload, and each equals what `emit_tcp` writes for the same segment on its own.
    #[test]
    fn segments_are_the_packets_a_plain_sender_writes() {
        let payload: Vec<u8> = (0..4500u32).map(|i| (i % 251) as u8).collect();
        for (src, dst) in [v4(), v6()] {
            let flags = Flags::ACK | Flags::PSH | Flags::FIN;
            let (packet, gso) = super_segment(src, dst, &payload, flags);
            assert_eq!(gso.hdr_len, if src.is_ipv6() { 40 } else { 20 } + 32);
            let mut scratch = vec![0; 2000];
            let mut got = Vec::new();
            let mut packets = Vec::new();
            let n = segment(&packet, gso, &mut scratch, &mut |p| {
                packets.push(p.to_vec())
            })
            .unwrap();
            assert_eq!(n, 5);
            for (i, p) in packets.iter().enumerate() {
                let Ok(Packet::Tcp { seg, .. }) = parse(p) else {
                    panic!("segment {i} does not parse: {:?}", parse(p))
                };
                assert_eq!(seg.seq, SeqNum::new(0xffff_f000).add(1000 * i as u32));
                let last = i == 4;
                assert_eq!(seg.flags.fin(), last);
                assert_eq!(seg.flags.contains(Flags::PSH), last);
                got.extend_from_slice(seg.payload);
                let mut plain = vec![0; 2000];
                let m = emit_tcp(&mut plain, src, dst, &seg).unwrap();
                assert_eq!(&plain[..m], &p[..], "segment {i}");
            }
            assert_eq!(got, payload);
        }
    }

    /// The headers written apart, followed by the payload, are the super-segment written
    /// whole, byte for byte (what a device gathering the two with `writev` receives).
    #[test]
    fn headers_apart_then_payload_are_the_whole_super_segment() {
        let payload: Vec<u8> = (0..4500u32).map(|i| (i * 7 % 253) as u8).collect();
        for (src, dst) in [v4(), v6()] {
            let (whole, gso) = super_segment(src, dst, &payload, Flags::ACK | Flags::PSH);
            let seg = TcpSegment {
                src_port: 80,
                dst_port: 40000,
                seq: SeqNum::new(0xffff_f000),
                ack: SeqNum::new(7),
                flags: Flags::ACK | Flags::PSH,
                window: 1000,
                options: TcpOptions {
                    timestamps: Some((1, 2)),
                    ..TcpOptions::EMPTY
                },
                payload: &payload,
                ..SEGMENT_TEMPLATE
            };
            let mut buf = vec![0xAA; 70000];
            let (n, gso_apart) = emit_tcp_gso_headers(&mut buf, src, dst, &seg, 1000).unwrap();
            assert_eq!(gso_apart, gso);
            assert_eq!(n, usize::from(gso.hdr_len));
            let mut gathered = buf[..n].to_vec();
            gathered.extend_from_slice(&payload);
            assert_eq!(gathered, whole);
        }
    }

    /// The partial checksum is the one the device completes: summing the segment over it
    /// gives the full checksum.
    #[test]
    fn partial_checksum_completes_to_the_full_one() {
        let (src, dst) = v4();
        let payload = [9u8; 1000];
        let (mut packet, _) = super_segment(src, dst, &payload, Flags::ACK);
        // Complete it as a device does: sum the TCP part with the field as seed, complement.
        let tcp = &mut packet[20..];
        let seed = u16::from_be_bytes([tcp[16], tcp[17]]);
        let mut acc: u32 = u32::from(seed);
        for pair in tcp
            .chunks(2)
            .enumerate()
            .filter(|(i, _)| *i != 8)
            .map(|(_, c)| c)
        {
            acc += u32::from(u16::from_be_bytes([pair[0], *pair.get(1).unwrap_or(&0)]));
        }
        while acc > 0xffff {
            acc = (acc & 0xffff) + (acc >> 16);
        }
        let done = !(acc as u16);
        tcp[16..18].copy_from_slice(&done.to_be_bytes());
        assert!(matches!(parse(&packet), Ok(Packet::Tcp { .. })));
    }

    #[test]
    fn malformed_super_segments_are_refused() {
        let gso = Gso {
            ipv6: false,
            hdr_len: 52,
            segment_size: 1000,
            csum_start: 20,
        };
        let mut scratch = [0u8; 100];
        let mut out = |_: &[u8]| panic!("nothing may come out");
        assert!(segment(&[0x45; 30], gso, &mut scratch, &mut out).is_err());
        let (src, dst) = v4();
        let (packet, gso) = super_segment(src, dst, &[1; 3000], Flags::ACK);
        // A scratch buffer too small for one segment.
        assert!(segment(&packet, gso, &mut scratch, &mut out).is_err());
    }
}
