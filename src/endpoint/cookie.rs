//! SYN cookies (RFC 4987 §3.6), in Linux's layout (net/ipv4/syncookies.c).
//!
//! When a listener's half-open queue is full, its SYN,ACK carries an ISS that encodes all
//! the endpoint needs to rebuild the connection from the final ACK, and no state is kept:
//!
//! ```text
//! ISS = H1(4-tuple) + SEG.SEQ + (count << 24) + ((H2(4-tuple, count) + mss_index) mod 2^24)
//! ```
//!
//! `count` is a minute counter and H1/H2 are SipHash-2-4 under a key derived from the
//! endpoint's secret (not the ISN key itself). A cookie is valid in the minute it was made
//! and the next one (Linux: MAX_SYNCOOKIE_AGE = 2). The MSS index picks from a small table
//! (Linux's msstab). Window scale, SACK-permitted and ECN do not fit in the cookie; when the
//! peer offered timestamps they ride in the low 6 bits of our TSval, which the peer echoes in
//! TSecr (Linux's cookie_init_timestamp, TS_OPT_ECN for ECN); without timestamps they are not
//! offered. Whether ECN is AccECN is read from the final ACK's ACE field (Linux:
//! cookie_accecn_ok), `Connection::from_cookie`.

use crate::tcp::{CookieSyn, SeqNum};
use crate::time::{Duration, Instant};
use crate::wire::{Quad, TcpSegment};
use siphasher::sip::SipHasher24;
use std::collections::{HashMap, VecDeque};
use std::hash::Hasher;
use std::net::IpAddr;

const COOKIE_BITS: u32 = 24;
const COOKIE_MASK: u32 = (1 << COOKIE_BITS) - 1;
/// Cookies from this many counter ticks are accepted (the current and the previous minute).
const MAX_AGE: u32 = 2;
/// The counter ticks once a minute (Linux: tcp_cookie_time()).
const TICK: Duration = Duration::from_secs(60);

/// The MSS values a cookie can carry, smallest first (Linux's msstab and msstab_v6).
pub const MSS_TABLE_V4: [u16; 4] = [536, 1300, 1440, 1460];
pub const MSS_TABLE_V6: [u16; 4] = [1220, 1420, 1440, 8940];

/// The low TSval bits that carry the options (Linux: TSMASK, TS_OPT_WSCALE_MASK, TS_OPT_SACK).
const TS_MASK: u32 = 0x3f;
const TS_WSCALE_MASK: u32 = 0x0f;
const TS_SACK: u32 = 1 << 4;
const TS_ECN: u32 = 1 << 5;

/// The cookie key and codec.
pub struct SynCookies {
    key: [u8; 16],
}

impl SynCookies {
    /// A cookie key derived from the endpoint's secret (so the ISN key is never used twice).
    pub fn new(secret: [u8; 16]) -> Self {
        let half = |label: &[u8]| {
            let mut h = SipHasher24::new_with_key(&secret);
            h.write(b"synack syn cookie key ");
            h.write(label);
            h.finish().to_le_bytes()
        };
        let mut key = [0u8; 16];
        let (a, b) = key.split_at_mut(8);
        a.copy_from_slice(&half(b"0"));
        b.copy_from_slice(&half(b"1"));
        SynCookies { key }
    }

    fn hash(&self, quad: &Quad, which: u8, count: u32) -> u32 {
        let mut h = SipHasher24::new_with_key(&self.key);
        h.write_u8(which);
        write_ip(&mut h, quad.local.ip());
        h.write_u16(quad.local.port());
        write_ip(&mut h, quad.remote.ip());
        h.write_u16(quad.remote.port());
        h.write_u32(count);
        h.finish() as u32
    }

    fn count(now: Instant) -> u32 {
        (now.as_micros() / TICK.as_micros() as u64) as u32
    }

    /// The table entry index for a peer's MSS: the largest entry not above it (index 0 for
    /// anything smaller, as Linux does).
    pub fn mss_index(table: &[u16; 4], peer_mss: u16) -> u32 {
        let mut index = 0;
        for (i, &m) in table.iter().enumerate() {
            if peer_mss >= m {
                index = i as u32;
            }
        }
        index
    }

    fn table(quad: &Quad) -> &'static [u16; 4] {
        if quad.local.is_ipv4() {
            &MSS_TABLE_V4
        } else {
            &MSS_TABLE_V6
        }
    }

    /// The ISS of a cookie SYN,ACK answering `syn` (whose MSS is `peer_mss`, or the RFC 9293
    /// default when it has none).
    pub fn make(&self, now: Instant, quad: &Quad, syn_seq: SeqNum, peer_mss: u16) -> SeqNum {
        let count = Self::count(now);
        let index = Self::mss_index(Self::table(quad), peer_mss);
        let cookie = self
            .hash(quad, 1, 0)
            .wrapping_add(syn_seq.raw())
            .wrapping_add(count << COOKIE_BITS)
            .wrapping_add(self.hash(quad, 2, count).wrapping_add(index) & COOKIE_MASK);
        SeqNum::new(cookie)
    }

    /// The MSS `cookie` (an ISS) carries if it is a valid cookie for `quad` and a SYN whose
    /// sequence number was `syn_seq` (Linux: __cookie_v4_check), made in this minute or the
    /// last.
    fn decode(&self, now: Instant, quad: &Quad, cookie: SeqNum, syn_seq: SeqNum) -> Option<u16> {
        let (cookie, syn_seq) = (cookie.raw(), syn_seq.raw());
        let count = Self::count(now);
        let rest = cookie
            .wrapping_sub(self.hash(quad, 1, 0))
            .wrapping_sub(syn_seq);
        // The counter is carried in 8 bits; its age is taken modulo 256.
        let age = count.wrapping_sub(rest >> COOKIE_BITS) & 0xff;
        if age >= MAX_AGE {
            return None;
        }
        let made = count.wrapping_sub(age);
        let index = rest.wrapping_sub(self.hash(quad, 2, made)) & COOKIE_MASK;
        Self::table(quad).get(usize::try_from(index).ok()?).copied()
    }

    /// Whether a connection's ISS is a cookie still valid for its IRS: its final ACK (or any
    /// later ACK that keeps SEG.ACK − SEG.SEQ, as an echo's does) would pass `check`.
    pub fn is_cookie(&self, now: Instant, quad: &Quad, iss: SeqNum, irs: SeqNum) -> bool {
        self.decode(now, quad, iss, irs).is_some()
    }

    /// Check the cookie in a final ACK (its SEG.ACK − 1, with SEG.SEQ − 1 as the SYN's
    /// sequence number); return the SYN it stands for, or `None` if it is forged or stale.
    pub fn check(&self, now: Instant, quad: &Quad, ack: &TcpSegment<'_>) -> Option<CookieSyn> {
        let mss = self.decode(now, quad, ack.ack.sub(1), ack.seq.sub(1))?;
        let mut syn = CookieSyn {
            mss,
            window_scale: None,
            sack_permitted: false,
            timestamps: false,
            ecn: false,
        };
        // The options rode in our TSval, echoed in TSecr (Linux: cookie_timestamp_decode).
        if let Some((_, tsecr)) = ack.options.timestamps {
            let bits = tsecr & TS_MASK;
            let ws = bits & TS_WSCALE_MASK;
            // 15 means "no window scaling"; 0..=14 is the peer's shift (RFC 7323 §2.3).
            if ws != TS_WSCALE_MASK {
                syn.window_scale = Some(ws as u8);
            }
            syn.sack_permitted = bits & TS_SACK != 0;
            syn.ecn = bits & TS_ECN != 0;
            syn.timestamps = true;
        }
        Some(syn)
    }

    /// Our TSval for a cookie SYN,ACK: the clock `ts_now` with the peer's window scale,
    /// SACK-permitted and whether we accepted ECN in its low 6 bits, never ahead of the clock
    /// (Linux: cookie_init_timestamp), so later TSvals still increase.
    pub fn timestamp(
        ts_now: u32,
        window_scale: Option<u8>,
        sack_permitted: bool,
        ecn: bool,
    ) -> u32 {
        let mut bits = match window_scale {
            Some(ws) => u32::from(ws.min(14)),
            None => TS_WSCALE_MASK,
        };
        if sack_permitted {
            bits |= TS_SACK;
        }
        if ecn {
            bits |= TS_ECN;
        }
        let ts = (ts_now & !TS_MASK) | bits;
        if (ts.wrapping_sub(ts_now) as i32) > 0 {
            ts.wrapping_sub(TS_MASK + 1)
        } else {
            ts
        }
    }
}

fn write_ip(h: &mut SipHasher24, ip: IpAddr) {
    match ip {
        IpAddr::V4(a) => h.write(&a.octets()),
        IpAddr::V6(a) => h.write(&a.octets()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{Flags, SEGMENT_TEMPLATE, TcpOptions};

    fn quad() -> Quad {
        Quad {
            local: "198.18.0.2:7".parse().unwrap(),
            remote: "198.18.0.1:40000".parse().unwrap(),
        }
    }

    const SYN_SEQ: SeqNum = SeqNum::new(u32::MAX - 3);

    fn final_ack(cookie: SeqNum, tsecr: Option<u32>) -> TcpSegment<'static> {
        TcpSegment {
            seq: SYN_SEQ.add(1),
            ack: cookie.add(1),
            flags: Flags::ACK,
            options: TcpOptions {
                timestamps: tsecr.map(|e| (77, e)),
                ..TcpOptions::EMPTY
            },
            ..SEGMENT_TEMPLATE
        }
    }

    #[test]
    fn a_cookie_round_trips_each_mss_of_the_table() {
        let c = SynCookies::new([9; 16]);
        let now = Instant::from_millis(123_456);
        for (i, &mss) in MSS_TABLE_V4.iter().enumerate() {
            let cookie = c.make(now, &quad(), SYN_SEQ, mss + 3);
            let syn = c.check(now, &quad(), &final_ack(cookie, None)).unwrap();
            assert_eq!(syn.mss, mss, "index {i}");
            assert!(!syn.timestamps && !syn.sack_permitted && syn.window_scale.is_none());
        }
        // Below the smallest entry: index 0.
        let cookie = c.make(now, &quad(), SYN_SEQ, 100);
        assert_eq!(
            c.check(now, &quad(), &final_ack(cookie, None)).unwrap().mss,
            536
        );
    }

    #[test]
    fn a_cookie_is_valid_for_its_minute_and_the_next_and_then_stale() {
        let c = SynCookies::new([9; 16]);
        let made = Instant::from_millis(60_000 * 10 + 59_000);
        let cookie = c.make(made, &quad(), SYN_SEQ, 1460);
        let at = |ms| c.check(Instant::from_millis(ms), &quad(), &final_ack(cookie, None));
        assert!(at(60_000 * 10 + 59_000).is_some());
        assert!(at(60_000 * 11 + 59_999).is_some(), "the next minute");
        assert!(at(60_000 * 12).is_none(), "two minutes later: stale");
        assert!(at(60_000 * 9).is_none(), "from the future");
    }

    #[test]
    fn a_forged_cookie_is_rejected() {
        let c = SynCookies::new([9; 16]);
        let now = Instant::from_millis(5_000);
        let cookie = c.make(now, &quad(), SYN_SEQ, 1460);
        // Another key, another tuple, another SYN sequence number, a nearby value.
        assert!(
            SynCookies::new([8; 16])
                .check(now, &quad(), &final_ack(cookie, None))
                .is_none()
        );
        let mut other = quad();
        other.remote.set_port(40001);
        assert!(c.check(now, &other, &final_ack(cookie, None)).is_none());
        // SEG.SEQ − 1 is part of the cookie: the ACK of another SYN does not pass.
        let mut ack = final_ack(cookie, None);
        ack.seq = ack.seq.add(1 << 20);
        assert!(c.check(now, &quad(), &ack).is_none());
        let accepted = (1..2000u32)
            .filter(|d| {
                c.check(now, &quad(), &final_ack(cookie.add(*d), None))
                    .is_some()
            })
            .count();
        assert_eq!(accepted, 0);
    }

    #[test]
    fn window_scale_and_sack_ride_in_the_echoed_timestamp() {
        let c = SynCookies::new([1; 16]);
        let now = Instant::from_millis(1_000);
        let cookie = c.make(now, &quad(), SYN_SEQ, 1460);
        let ts_now = 0x1234_5678;
        for (ws, sack, ecn) in [
            (Some(7), true, true),
            (None, true, false),
            (Some(0), false, true),
            (Some(14), false, false),
        ] {
            let tsval = SynCookies::timestamp(ts_now, ws, sack, ecn);
            assert!(
                (tsval.wrapping_sub(ts_now) as i32) <= 0,
                "never ahead of the clock"
            );
            assert!(ts_now.wrapping_sub(tsval) < 64);
            let syn = c
                .check(now, &quad(), &final_ack(cookie, Some(tsval)))
                .unwrap();
            assert_eq!(
                (syn.window_scale, syn.sack_permitted, syn.ecn),
                (ws, sack, ecn)
            );
            assert!(syn.timestamps);
        }
        // 15 in the low bits means the peer offered no window scaling.
        let syn = c
            .check(now, &quad(), &final_ack(cookie, Some(0x0f)))
            .unwrap();
        assert_eq!(syn.window_scale, None);
    }
}

/// The 4-tuples of connections made from a cookie that ended while the cookie was still
/// valid: a later ACK on one of them is a late copy, not a handshake (issue 23).
///
/// Departure: Linux keeps nothing (syncookies.c checks only the arithmetic). Every ACK of an
/// echo-like connection keeps SEG.ACK − SEG.SEQ equal to its cookie's (each side sent as many
/// sequence numbers as it received), so after a passive close (LAST-ACK → CLOSED, no
/// TIME-WAIT on our side) a duplicate of the peer's last ACK, e.g. its TIME-WAIT answering a
/// retransmitted FIN, passes the check and leaves an idle ESTABLISHED connection that nothing
/// will ever close. A cookie is spent once its connection existed; the record is bounded in
/// time (the cookie's two minutes) and count (`MAX_SPENT`, oldest forgotten first).
#[derive(Default)]
pub struct SpentCookies {
    until: HashMap<Quad, Instant>,
    order: VecDeque<(Instant, Quad)>,
}

/// At most this many spent cookies are remembered (about 100 bytes each).
const MAX_SPENT: usize = 1 << 17;

impl SpentCookies {
    /// Remember that `quad`'s cookie is spent, until a cookie made now would be stale.
    pub fn insert(&mut self, now: Instant, quad: Quad) {
        self.expire(now);
        while self.order.len() >= MAX_SPENT {
            // As in `expire`: a record that `forget` or a later `insert` replaced is only
            // dropped from the queue, not taken for the newer one of its 4-tuple.
            if let Some((until, old)) = self.order.pop_front()
                && self.until.get(&old) == Some(&until)
            {
                self.until.remove(&old);
            }
        }
        let until = now + TICK * MAX_AGE;
        self.until.insert(quad, until);
        self.order.push_back((until, quad));
    }

    /// Whether `quad`'s cookie was spent (and still would be valid).
    pub fn contains(&self, now: Instant, quad: &Quad) -> bool {
        self.until.get(quad).is_some_and(|&until| now < until)
    }

    /// A new SYN on `quad` was answered with a fresh cookie: that one is not spent.
    pub fn forget(&mut self, quad: &Quad) {
        self.until.remove(quad);
    }

    fn expire(&mut self, now: Instant) {
        while let Some(&(until, quad)) = self.order.front() {
            if now < until {
                break;
            }
            self.order.pop_front();
            if self.until.get(&quad) == Some(&until) {
                self.until.remove(&quad);
            }
        }
        if self.until.is_empty() && self.order.capacity() > 64 {
            self.order = VecDeque::new();
            self.until = HashMap::new();
        }
    }
}

#[cfg(test)]
mod spent_tests {
    use super::*;

    /// A 4-tuple spent again after a `forget` keeps its new record when the queue is full
    /// and its first, replaced record is the oldest.
    #[test]
    fn evicting_a_replaced_record_keeps_the_newer_one() {
        let q = |n: u32| Quad {
            local: "198.18.0.2:80".parse().unwrap(),
            remote: std::net::SocketAddr::new(
                std::net::Ipv4Addr::from(0xc612_0000 | (n >> 16)).into(),
                (n & 0xffff) as u16,
            ),
        };
        let mut spent = SpentCookies::default();
        let t0 = Instant::ZERO;
        spent.insert(t0, q(1));
        spent.forget(&q(1));
        let t1 = t0 + Duration::from_millis(1);
        spent.insert(t1, q(1));
        for n in 2..MAX_SPENT as u32 {
            spent.insert(t1, q(n));
        }
        spent.insert(t1, q(0));
        assert!(
            spent.contains(t1, &q(1)),
            "the newer record of q(1) was evicted"
        );
    }
}
