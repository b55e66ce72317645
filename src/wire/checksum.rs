//! The Internet checksum (RFC 1071) and the TCP/ICMPv6 pseudo-headers, on top of etherparse's
//! 16-bit word summer.

use etherparse::checksum::Sum16BitWords;
use std::net::IpAddr;

/// The sum of the pseudo-header for an upper-layer message of `len` bytes with protocol
/// `proto`. IPv4: RFC 9293 §3.1 (source, destination, zero, PTCL, TCP length); IPv6: RFC 8200
/// §8.1 (source, destination, 32-bit upper-layer length, three zero bytes, next header).
/// Mixed families cannot occur (both addresses come from one IP header or were checked by the
/// emitter); should they, the sum covers both addresses as given.
pub(super) fn pseudo_header(src: IpAddr, dst: IpAddr, proto: u8, len: u32) -> Sum16BitWords {
    let mut sum = add_addr(add_addr(Sum16BitWords::new(), src), dst);
    match src {
        IpAddr::V4(_) => {
            // An IPv4 payload is below 2^16 bytes; the total-length field guarantees it.
            let len = u16::try_from(len).unwrap_or(u16::MAX);
            sum = sum.add_2bytes([0, proto]).add_2bytes(len.to_be_bytes());
        }
        IpAddr::V6(_) => {
            sum = sum
                .add_4bytes(len.to_be_bytes())
                .add_4bytes([0, 0, 0, proto]);
        }
    }
    sum
}

fn add_addr(mut sum: Sum16BitWords, addr: IpAddr) -> Sum16BitWords {
    match addr {
        IpAddr::V4(a) => sum.add_4bytes(a.octets()),
        IpAddr::V6(a) => sum.add_16bytes(a.octets()),
    }
}

/// The checksum to write into a header whose checksum field is zero while `data` is summed.
pub(super) fn compute(sum: Sum16BitWords, data: &[u8]) -> u16 {
    // etherparse sums words in native byte order, so the native-endian bytes of its result
    // are the checksum's bytes as they go on the wire.
    u16::from_be_bytes(sum.add_slice(data).ones_complement().to_ne_bytes())
}

/// Whether `data`, checksum field included, sums (with `sum`) to all ones: RFC 1071's check.
pub(super) fn verify(sum: Sum16BitWords, data: &[u8]) -> bool {
    compute(sum, data) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 1071 §3's worked example: the words 0001 f203 f4f5 f6f7 sum to ddf2.
    #[test]
    fn rfc1071_example() {
        let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(compute(Sum16BitWords::new(), &data), !0xddf2);
        let mut with_sum = [0u8; 10];
        with_sum[..8].copy_from_slice(&data);
        with_sum[8..].copy_from_slice(&(!0xddf2u16).to_be_bytes());
        assert!(verify(Sum16BitWords::new(), &with_sum));
        with_sum[0] ^= 1;
        assert!(!verify(Sum16BitWords::new(), &with_sum));
    }

    /// A real IPv4 header (from Wikipedia's "IPv4 header checksum" article) checks out.
    #[test]
    fn known_ipv4_header_checksum() {
        let hdr = [
            0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0xb8, 0x61, 0xc0, 0xa8,
            0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7,
        ];
        assert!(verify(Sum16BitWords::new(), &hdr));
    }
}
