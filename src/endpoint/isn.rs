//! Initial sequence numbers (RFC 9293 §3.4.1, RFC 6528).

use crate::seqnum::SeqNum;
use crate::time::Instant;
use crate::wire::Quad;
use siphasher::sip::SipHasher24;
use std::hash::Hasher;
use std::net::IpAddr;

/// ISN = M + F(localip, localport, remoteip, remoteport, secretkey) (RFC 6528 §3), where M is a
/// clock ticking every 4 µs (RFC 9293 §3.4.1, MUST-8) and F is SipHash-2-4 under a per-process
/// random key, so it cannot be computed from outside (MUST-9, SHLD-1).
pub struct IsnGenerator {
    key: [u8; 16],
}

impl IsnGenerator {
    pub fn new(key: [u8; 16]) -> Self {
        IsnGenerator { key }
    }

    pub fn isn(&self, now: Instant, quad: &Quad) -> SeqNum {
        let mut h = SipHasher24::new_with_key(&self.key);
        write_ip(&mut h, quad.local.ip());
        h.write_u16(quad.local.port());
        write_ip(&mut h, quad.remote.ip());
        h.write_u16(quad.remote.port());
        let f = h.finish() as u32;
        // M: the 4 µs clock, modulo 2^32 (it wraps about every 4.55 hours).
        let m = (now.as_micros() / 4) as u32;
        SeqNum::new(m.wrapping_add(f))
    }
}

/// A key for another purpose derived from the endpoint's secret (so that the ISN key is never
/// used twice): the TSval offsets' (`tcp::TsKey`), Fast Open cookies'.
pub fn derive_key(secret: &[u8; 16], purpose: &[u8]) -> [u8; 16] {
    let half = |label: u8| {
        let mut h = SipHasher24::new_with_key(secret);
        h.write(b"synack key ");
        h.write(purpose);
        h.write_u8(label);
        h.finish().to_le_bytes()
    };
    let mut key = [0u8; 16];
    let (a, b) = key.split_at_mut(8);
    a.copy_from_slice(&half(0));
    b.copy_from_slice(&half(1));
    key
}

fn write_ip(h: &mut SipHasher24, ip: IpAddr) {
    match ip {
        IpAddr::V4(a) => h.write(&a.octets()),
        IpAddr::V6(a) => h.write(&a.octets()),
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// A 4-tuple to port 80 from the peer's `port` (the index's tests take it too).
    pub(in crate::endpoint) fn quad(port: u16) -> Quad {
        Quad {
            local: "198.18.0.2:80".parse().unwrap(),
            remote: format!("198.18.0.1:{port}").parse().unwrap(),
        }
    }

    #[test]
    fn isn_advances_with_the_4us_clock() {
        let g = IsnGenerator::new([7; 16]);
        let a = g.isn(Instant::from_micros(1_000), &quad(5000));
        let b = g.isn(Instant::from_micros(1_400), &quad(5000));
        assert_eq!(b.diff(a), 100);
    }

    #[test]
    fn isn_depends_on_the_tuple_and_the_key() {
        let g = IsnGenerator::new([7; 16]);
        let now = Instant::from_micros(0);
        assert_ne!(g.isn(now, &quad(5000)), g.isn(now, &quad(5001)));
        let other = IsnGenerator::new([8; 16]);
        assert_ne!(g.isn(now, &quad(5000)), other.isn(now, &quad(5000)));
    }
}
