//! Shared pieces of the synack benchmark: TUN setup, the source pattern, process statistics
//! and a tiny JSON-line writer. The binaries live in `src/bin/`; `scripts/bench.sh` drives them.

pub mod json;
pub mod procstat;
pub mod tun;

/// Kernel-side (host) IPv4 address of every TUN used by the benchmark, with prefix length.
pub const HOST_V4_CIDR: &str = "198.18.0.1/24";
/// Kernel-side (host) IPv6 address of every TUN used by the benchmark, with prefix length.
pub const HOST_V6_CIDR: &str = "2001:2::1/64";

/// Fills `buf` with the repeating source pattern, continuing from stream offset `offset`:
/// byte `i` of the stream is `b' ' + (i % 95)` (printable ASCII, like chargen's alphabet).
pub fn fill_pattern(buf: &mut [u8], offset: u64) {
    let mut k = (offset % 95) as u8;
    for b in buf.iter_mut() {
        *b = b' ' + k;
        k += 1;
        if k == 95 {
            k = 0;
        }
    }
}

/// A buffer long enough to hold the pattern at any offset: `PATTERN_BUF[o % 95..][..n]` for
/// `n <= len - 95`. Lets senders copy the pattern instead of regenerating it.
pub fn pattern_buffer(len: usize) -> Vec<u8> {
    let mut v = vec![0u8; len + 95];
    fill_pattern(&mut v, 0);
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pattern_continues_across_offsets() {
        let whole = pattern_buffer(1000);
        let mut part = [0u8; 300];
        fill_pattern(&mut part, 123);
        assert_eq!(&whole[123..423], &part[..]);
        assert_eq!(whole[0], b' ');
        assert_eq!(whole[94], b'~');
        assert_eq!(whole[95], b' ');
    }
}
