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
    // are the checksum's bytes as they go on the wire. The payload, the bulk of the work, is
    // summed 64 bits at a time and folded in as one native-endian word.
    let folded = sum_native(data);
    let total = if data.len().is_multiple_of(2) {
        sum.add_2bytes(folded.to_ne_bytes())
    } else {
        // An odd length: the last byte is padded with a zero on the right (RFC 1071 §4.1),
        // which `sum_native` did for the whole slice; keep etherparse's exact semantics.
        sum.add_slice(data)
    };
    u16::from_be_bytes(total.ones_complement().to_ne_bytes())
}

/// The ones-complement sum of `data` (even length) as 16-bit native-endian words, computed
/// over 32-bit words in a 64-bit accumulator and folded to 16 bits (RFC 1071 §2: the sum is
/// independent of byte order and may be computed on wider words).
fn sum_native(data: &[u8]) -> u16 {
    // 32-bit words into a 64-bit accumulator: no carry to handle (a packet has far fewer than
    // 2^32 words), and the loop vectorises.
    let mut acc: u64 = 0;
    let mut chunks = data.chunks_exact(4);
    for chunk in &mut chunks {
        acc += u64::from(u32::from_ne_bytes(chunk.try_into().unwrap_or([0; 4])));
    }
    let mut tail = chunks.remainder().chunks_exact(2);
    for pair in &mut tail {
        if let &[a, b] = pair {
            acc += u64::from(u16::from_ne_bytes([a, b]));
        }
    }
    // Fold 64 -> 32 -> 16 bits, carrying around each time.
    let mut folded = (acc & 0xffff_ffff) + (acc >> 32);
    folded = (folded & 0xffff_ffff) + (folded >> 32);
    let mut s = (folded & 0xffff) + (folded >> 16);
    s = (s & 0xffff) + (s >> 16);
    s = (s & 0xffff) + (s >> 16);
    s as u16
}

/// The folded, uncomplemented sum of a pseudo-header: what a checksum field holds for a
/// device that completes the checksum (it adds the segment's words and complements).
pub(super) fn partial(sum: Sum16BitWords) -> u16 {
    u16::from_be_bytes((!sum.ones_complement()).to_ne_bytes())
}

/// Whether `data`, checksum field included, sums (with `sum`) to all ones: RFC 1071's check.
pub(super) fn verify(sum: Sum16BitWords, data: &[u8]) -> bool {
    compute(sum, data) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        /// The wide summer agrees with etherparse's on any data and any pseudo-header.
        #[test]
        fn wide_sum_agrees_with_etherparse(data: Vec<u8>, a: [u8; 4], b: [u8; 4]) {
            let start = Sum16BitWords::new().add_4bytes(a).add_4bytes(b);
            let reference = u16::from_be_bytes(start.clone().add_slice(&data).ones_complement().to_ne_bytes());
            proptest::prop_assert_eq!(compute(start, &data), reference);
        }
    }

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
