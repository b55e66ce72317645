//! Fuzz `wire::parse`: it must never panic, and whatever it accepts must survive a round trip
//! through the emitter (a TCP segment re-emitted and re-parsed is the same segment; an echo
//! request's reply parses as a well-formed packet).
//!
//! Mutated inputs almost never keep valid checksums, so each input is also tried with its IPv4
//! header checksum and its TCP/ICMP checksum repaired (when the layout is simple enough to
//! find them: IPv4, or IPv6 without extension headers). That lets the fuzzer reach option
//! parsing and the round trip instead of stopping at the checksum checks.

#![no_main]

use libfuzzer_sys::fuzz_target;
use std::net::IpAddr;
use synack::wire::gso::segment;
use synack::wire::{
    EmitError, Packet, RxMeta, TcpSegment, emit_echo_reply, emit_tcp, emit_tcp_gso, parse,
    parse_with,
};

/// Big enough for any IPv6 packet we can emit: 40-byte header plus a 65535-byte payload.
const BUF_LEN: usize = 40 + 65535;

fuzz_target!(|data: &[u8]| {
    check(data);
    let mut repaired = data.to_vec();
    if repair_checksums(&mut repaired) {
        check(&repaired);
    }
});

fn check(data: &[u8]) {
    // What the TUN's offloads vouch for skips the transport checksum: still no panic.
    let _ = parse_with(
        data,
        RxMeta {
            checksum_trusted: true,
        },
    );
    let mut buf = vec![0u8; BUF_LEN];
    match parse(data) {
        Ok(Packet::Tcp { src, dst, seg }) => {
            // The emitter may lay options out differently (aligned), so the emitted packet can
            // be up to 40 bytes longer than the original and exceed the IP length limit.
            let tcp_len = 20 + seg.options.wire_len() + seg.payload.len();
            let limit = match src {
                IpAddr::V4(_) => 65535 - 20,
                IpAddr::V6(_) => 65535,
            };
            match emit_tcp(&mut buf, src, dst, &seg) {
                Ok(n) => {
                    let again = parse(&buf[..n]);
                    // The AccECN option is sent only where there is room (RFC 9768
                    // §3.2.3.3): the copy may lack it, or carry fewer of its counters; the
                    // rest must be the same.
                    let mut want = seg;
                    if let Ok(Packet::Tcp { seg: got, .. }) = &again {
                        let kept = match (seg.options.accecn, got.options.accecn) {
                            (_, None) => true,
                            (Some(a), Some(b)) => [(a.e0b, b.e0b), (a.ceb, b.ceb), (a.e1b, b.e1b)]
                                .iter()
                                .all(|&(a, b)| b.is_none() || a == b),
                            (None, Some(_)) => false,
                        };
                        assert!(kept, "AccECN round trip: {seg:?} -> {got:?}");
                        want.options.accecn = got.options.accecn;
                    }
                    assert_eq!(again, Ok(Packet::Tcp { src, dst, seg: want }), "round trip");
                }
                Err(EmitError::BufferTooSmall) => assert!(tcp_len > limit, "spurious error"),
                Err(e) => panic!("emit_tcp: {e:?}"),
            }
            gso_round_trip(src, dst, &seg);
        }
        Ok(Packet::EchoRequest {
            src,
            dst,
            ident,
            seq_no,
            data: payload,
        }) => {
            let n = emit_echo_reply(&mut buf, dst, src, ident, seq_no, payload)
                .expect("an echo reply is no longer than its request");
            assert_eq!(parse(&buf[..n]), Ok(Packet::Other { src: dst, dst: src }));
        }
        Ok(Packet::Other { .. } | Packet::Udp { .. } | Packet::IcmpError { .. }) | Err(_) => {}
    }
}

/// RFC 1071 over `parts`, as a plain u32 fold (independent of synack's checksum code).
fn inet_checksum(parts: &[&[u8]]) -> u16 {
    let mut sum: u32 = 0;
    let mut odd: Option<u8> = None;
    for part in parts {
        for &b in *part {
            match odd.take() {
                Some(hi) => sum += u32::from(u16::from_be_bytes([hi, b])),
                None => odd = Some(b),
            }
        }
    }
    if let Some(hi) = odd {
        sum += u32::from(hi) << 8;
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// Rewrite the IPv4 header checksum and the TCP (6), ICMP (1) or ICMPv6 (58) checksum of
/// `p` in place. Returns false if the packet's layout could not be followed.
fn repair_checksums(p: &mut [u8]) -> bool {
    let Some(&first) = p.first() else {
        return false;
    };
    let (proto, l4_start, l4_end, pseudo): (u8, usize, usize, Vec<u8>) = match first >> 4 {
        4 => {
            let ihl = usize::from(first & 0xf) * 4;
            if ihl < 20 || p.len() < ihl {
                return false;
            }
            p[10] = 0;
            p[11] = 0;
            let sum = inet_checksum(&[&p[..ihl]]);
            p[10..12].copy_from_slice(&sum.to_be_bytes());
            let total = usize::from(u16::from_be_bytes([p[2], p[3]]));
            if total < ihl || total > p.len() {
                return false;
            }
            let mut ph = p[12..20].to_vec();
            ph.extend([0, p[9]]);
            ph.extend(((total - ihl) as u16).to_be_bytes());
            (p[9], ihl, total, ph)
        }
        6 if p.len() >= 40 => {
            let end = 40 + usize::from(u16::from_be_bytes([p[4], p[5]]));
            if end > p.len() {
                return false;
            }
            let mut ph = p[8..40].to_vec();
            ph.extend(((end - 40) as u32).to_be_bytes());
            ph.extend([0, 0, 0, p[6]]);
            (p[6], 40, end, ph)
        }
        _ => return false,
    };
    let at = match proto {
        6 => 16,
        1 | 58 => 2,
        _ => return true,
    };
    let l4 = &mut p[l4_start..l4_end];
    if l4.len() < at + 2 {
        return true;
    }
    l4[at] = 0;
    l4[at + 1] = 0;
    let sum = if proto == 1 {
        inet_checksum(&[l4])
    } else {
        inet_checksum(&[&pseudo, l4])
    };
    l4[at..at + 2].copy_from_slice(&sum.to_be_bytes());
    true
}

/// The segment as a super-segment of three-ish pieces, split as the kernel would: every piece
/// parses with a valid checksum and together they carry the payload.
fn gso_round_trip(src: IpAddr, dst: IpAddr, seg: &TcpSegment<'_>) {
    if seg.payload.len() < 2 {
        return;
    }
    let size = u16::try_from((seg.payload.len() / 3).max(1)).unwrap_or(u16::MAX);
    let mut buf = vec![0u8; BUF_LEN];
    let Ok((n, gso)) = emit_tcp_gso(&mut buf, src, dst, seg, size) else {
        return;
    };
    let mut scratch = vec![0u8; usize::from(gso.hdr_len) + usize::from(size)];
    let mut joined = Vec::new();
    segment(&buf[..n], gso, &mut scratch, &mut |p| match parse(p) {
        Ok(Packet::Tcp { seg: piece, .. }) => joined.extend_from_slice(piece.payload),
        other => panic!("a segment of a super-segment does not parse: {other:?}"),
    })
    .expect("an emitted super-segment splits");
    assert_eq!(joined, seg.payload, "the segments carry the payload");
}
