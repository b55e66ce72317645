//! Hand-built packets for the wire tests, with checksums computed by a deliberately naive
//! RFC 1071 implementation that shares no code with [`super::checksum`].

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

pub const V4_SRC: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
pub const V4_DST: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);
pub const V6_SRC: Ipv6Addr = Ipv6Addr::new(0x2001, 2, 0, 0, 0, 0, 0, 1);
pub const V6_DST: Ipv6Addr = Ipv6Addr::new(0x2001, 2, 0, 0, 0, 0, 0, 2);

/// Real SYNs captured from Linux (`connect()` to 198.18.0.2:80 and [2001:2::2]:80 routed
/// into a TUN inside a private namespace): MSS, SACK-permitted, timestamps, NOP, WS 10.
pub const LINUX_SYN_V4: &str = "4500003c2ce44000400681b0c6120001c6120002b5e000502799f4ea00000000\
                                a002faf06aa10000020405b40402080a76e20cac000000000103030a";
pub const LINUX_SYN_V6: &str = "600bc2d500280640200100020000000000000000000000012001000200000000\
                                0000000000000002dee600500f1dd1c600000000a002fd20d1cc0000020405a0\
                                0402080a81a1f75e000000000103030a";
/// Real echo requests from Linux `ping -s 8` through the same TUN.
pub const LINUX_PING_V4: &str =
    "4500002420b1400040018e00c6120001c61200020800c64825a600010001020304050607";
pub const LINUX_PING_V6: &str = "6006656500103a4020010002000000000000000000000001200100020000000\
                                 0000000000000000280000df425a700010001020304050607";

pub fn hex(s: &str) -> Vec<u8> {
    let s: Vec<u8> = s.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    s.chunks(2)
        .map(|c| u8::from_str_radix(std::str::from_utf8(c).unwrap(), 16).unwrap())
        .collect()
}

/// The Internet checksum of the concatenation of `parts`, summed 16 bits at a time into a
/// u64 and folded at the end.
pub fn inet_checksum(parts: &[&[u8]]) -> u16 {
    let bytes: Vec<u8> = parts.concat();
    let mut sum: u64 = 0;
    for pair in bytes.chunks(2) {
        let hi = u64::from(pair[0]) << 8;
        let lo = pair.get(1).map_or(0, |&b| u64::from(b));
        sum += hi | lo;
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

pub fn pseudo(src: IpAddr, dst: IpAddr, proto: u8, len: usize) -> Vec<u8> {
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            let mut p = s.octets().to_vec();
            p.extend(d.octets());
            p.extend([0, proto]);
            p.extend((len as u16).to_be_bytes());
            p
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            let mut p = s.octets().to_vec();
            p.extend(d.octets());
            p.extend((len as u32).to_be_bytes());
            p.extend([0, 0, 0, proto]);
            p
        }
        _ => panic!("mixed families"),
    }
}

/// A TCP header with the given options (padded with EOL to a multiple of 4) and payload,
/// checksum computed for `src`/`dst`.
pub fn tcp(src: IpAddr, dst: IpAddr, flags: u8, options: &[u8], payload: &[u8]) -> Vec<u8> {
    let mut opts = options.to_vec();
    while !opts.len().is_multiple_of(4) {
        opts.push(0);
    }
    let doff = (20 + opts.len()) / 4;
    let mut seg = vec![
        0x9c,
        0x40,
        0x00,
        0x50, // ports 40000 -> 80
        0x11,
        0x22,
        0x33,
        0x44, // seq
        0x55,
        0x66,
        0x77,
        0x88, // ack
        (doff as u8) << 4,
        flags,
        0xfa,
        0xf0, // window
        0,
        0, // checksum
        0,
        0, // urgent
    ];
    seg.extend(opts);
    seg.extend(payload);
    fix_l4_checksum(src, dst, 6, &mut seg, 16);
    seg
}

/// Recompute the checksum at `at` of an upper-layer message.
pub fn fix_l4_checksum(src: IpAddr, dst: IpAddr, proto: u8, msg: &mut [u8], at: usize) {
    msg[at..at + 2].fill(0);
    let ph = pseudo(src, dst, proto, msg.len());
    let sum = inet_checksum(&[&ph, msg]);
    msg[at..at + 2].copy_from_slice(&sum.to_be_bytes());
}

/// An IPv4 packet from 198.18.0.1 to 198.18.0.2 with IP options (padded to 4) and payload.
pub fn ipv4(proto: u8, ip_options: &[u8], payload: &[u8]) -> Vec<u8> {
    let ihl = 5 + ip_options.len().div_ceil(4);
    let total = ihl * 4 + payload.len();
    let mut p = vec![0x40 | ihl as u8, 0];
    p.extend((total as u16).to_be_bytes());
    p.extend([0x12, 0x34, 0x40, 0x00, 64, proto, 0, 0]);
    p.extend(V4_SRC.octets());
    p.extend(V4_DST.octets());
    p.extend(ip_options);
    p.resize(ihl * 4, 0);
    fix_ipv4_checksum(&mut p);
    p.extend(payload);
    p
}

pub fn fix_ipv4_checksum(p: &mut [u8]) {
    let ihl = usize::from(p[0] & 0xf) * 4;
    p[10..12].fill(0);
    let sum = inet_checksum(&[&p[..ihl]]);
    p[10..12].copy_from_slice(&sum.to_be_bytes());
}

/// An IPv6 packet from 2001:2::1 to 2001:2::2: `next` is the first next-header value, `ext`
/// the raw extension headers, then `payload`.
pub fn ipv6(next: u8, ext: &[u8], payload: &[u8]) -> Vec<u8> {
    let len = ext.len() + payload.len();
    let mut p = vec![0x60, 0, 0, 0];
    p.extend((len as u16).to_be_bytes());
    p.extend([next, 64]);
    p.extend(V6_SRC.octets());
    p.extend(V6_DST.octets());
    p.extend(ext);
    p.extend(payload);
    p
}

pub fn v4() -> (IpAddr, IpAddr) {
    (IpAddr::V4(V4_SRC), IpAddr::V4(V4_DST))
}

pub fn v6() -> (IpAddr, IpAddr) {
    (IpAddr::V6(V6_SRC), IpAddr::V6(V6_DST))
}

/// A valid IPv4 TCP packet with the given TCP options and payload.
pub fn v4_tcp(options: &[u8], payload: &[u8]) -> Vec<u8> {
    let (s, d) = v4();
    ipv4(6, &[], &tcp(s, d, 0x18, options, payload))
}

/// A valid IPv6 TCP packet with the given TCP options and payload.
pub fn v6_tcp(options: &[u8], payload: &[u8]) -> Vec<u8> {
    let (s, d) = v6();
    ipv6(6, &[], &tcp(s, d, 0x18, options, payload))
}
