//! ICMP and ICMPv6 errors (RFC 9293 §3.9.2.2, RFC 5927) and the path-MTU cache (RFC 1191,
//! RFC 8201): the endpoint finds the connection an error quotes and keeps what it learned
//! about each destination's path; the connection decides what the error means (`tcp::pmtu`).

use super::{Endpoint, entry_mut};
use crate::tcp::{Connection, IcmpOutcome};
use crate::time::{Duration, Instant};
use crate::wire::{IcmpError, IcmpErrorKind};
use std::collections::HashMap;
use std::net::IpAddr;
use tracing::debug;

/// How long a learned path MTU holds before the link's MTU is tried again (RFC 1191 §6.3
/// suggests 10 minutes; Linux's `net.ipv4.route.mtu_expires` is 600 s).
pub const PMTU_EXPIRES: Duration = Duration::from_secs(600);
/// The smallest path MTU believed (Linux's `net.ipv4.route.min_pmtu`, 552; RFC 8200 §5: every
/// IPv6 link carries 1280). A Packet Too Big below it lowers the path to it, no further.
pub const MIN_PMTU_V4: u32 = 552;
pub const MIN_PMTU_V6: u32 = 1280;
/// The most destinations remembered; past it the entry closest to expiry makes room.
const MAX_ENTRIES: usize = 4096;

/// Path MTUs learned from Packet Too Big messages, per destination address (RFC 1191 §5),
/// bounded and aged as Linux's route exceptions (`fib_nh_exception`).
#[derive(Default)]
pub(super) struct PathMtuCache {
    entries: HashMap<IpAddr, (u32, Instant)>,
}

impl PathMtuCache {
    /// The path MTU to `dst`, if one was learned and has not expired.
    pub(super) fn get(&self, now: Instant, dst: IpAddr) -> Option<u32> {
        self.entries
            .get(&dst)
            .filter(|(_, expires)| now < *expires)
            .map(|(mtu, _)| *mtu)
    }

    /// Remember `mtu` for `dst` until `now` + [`PMTU_EXPIRES`].
    pub(super) fn insert(&mut self, now: Instant, dst: IpAddr, mtu: u32) {
        if self.entries.len() >= MAX_ENTRIES && !self.entries.contains_key(&dst) {
            self.entries.retain(|_, (_, expires)| now < *expires);
            if self.entries.len() >= MAX_ENTRIES
                && let Some(oldest) = self
                    .entries
                    .iter()
                    .min_by_key(|(_, (_, expires))| *expires)
                    .map(|(ip, _)| *ip)
            {
                self.entries.remove(&oldest);
            }
        }
        self.entries.insert(dst, (mtu, now + PMTU_EXPIRES));
    }

    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.entries.len()
    }
}

impl Endpoint {
    /// An ICMP or ICMPv6 error from `src` quoting one of our segments (the parser checked its
    /// checksum and that it quotes TCP).
    pub(super) fn on_icmp_error(&mut self, now: Instant, src: IpAddr, error: &IcmpError) {
        self.count_icmp(src, error.kind);
        let quad = error.quad;
        // RFC 5927 §4.1: the quoted 4-tuple must be a connection of ours...
        let Some(id) = self.lookup(&quad) else {
            self.counters.icmp_no_connection += 1;
            return;
        };
        let Some(entry) = entry_mut(&mut self.slots, id) else {
            return;
        };
        // ...and the quoted sequence number one in flight.
        if !entry.conn.icmp_seq_acceptable(error.seq) {
            debug!(%quad, seq = error.seq.raw(), "ICMP error for no segment in flight");
            self.counters.out_of_window_icmps += 1;
            return;
        }
        match error.kind {
            IcmpErrorKind::PacketTooBig { mtu } => {
                self.on_packet_too_big(now, quad.remote.ip(), mtu);
                return;
            }
            kind => match entry.conn.on_icmp_error(kind) {
                IcmpOutcome::Soft => self.counters.icmp_soft_errors += 1,
                IcmpOutcome::Aborted => self.counters.icmp_aborts += 1,
            },
        }
        self.settle(id, false);
        self.requeue(id);
        self.mark_dirty(id);
    }

    /// RFC 1191 §6.3, RFC 8201 §5.4: the path to `dst` takes at most `mtu` (never believed
    /// below 552 / 1280, never raised by a message): remember it, and lower the MSS of every
    /// connection to `dst`, which sends again at once what is in flight.
    fn on_packet_too_big(&mut self, now: Instant, dst: IpAddr, mtu: u32) {
        let floor = if dst.is_ipv4() {
            MIN_PMTU_V4
        } else {
            MIN_PMTU_V6
        };
        let mtu = mtu.max(floor);
        let current = self.path_mtu(now, dst);
        if mtu >= current {
            return;
        }
        debug!(%dst, mtu, from = current, "path MTU lowered");
        self.pmtu.insert(now, dst, mtu);
        self.counters.pmtu_lowered += 1;
        // Every connection to that destination follows (rare: once per step down a path).
        // The slab holds every connection of the table (the index keeps only slot numbers).
        for id in 0..self.slots.len() {
            if let Some(entry) = entry_mut(&mut self.slots, id)
                && entry.conn.quad().remote.ip() == dst
                && entry.conn.on_path_mtu(now, mtu)
            {
                self.mark_dirty(id);
            }
        }
    }

    /// The path MTU to `dst`: what was learned, else our link's.
    pub(super) fn path_mtu(&self, now: Instant, dst: IpAddr) -> u32 {
        let link = if dst.is_ipv4() {
            u32::from(self.mss_v4) + 40
        } else {
            u32::from(self.mss_v6) + 60
        };
        self.pmtu.get(now, dst).map_or(link, |mtu| mtu.min(link))
    }

    /// A new connection takes the path MTU learned for its peer.
    pub(super) fn apply_path_mtu(&self, now: Instant, conn: &mut Connection) {
        if let Some(mtu) = self.pmtu.get(now, conn.quad().remote.ip()) {
            conn.on_path_mtu(now, mtu);
        }
    }

    /// Count an ICMP error by type, under Linux's names (`Icmp`/`Icmp6` lines of
    /// `/proc/net/snmp`).
    fn count_icmp(&mut self, src: IpAddr, kind: IcmpErrorKind) {
        let c = &mut self.counters;
        let v4 = src.is_ipv4();
        let counter = match (kind, v4) {
            (IcmpErrorKind::PacketTooBig { .. }, false) => &mut c.icmp6_in_pkt_too_bigs,
            (IcmpErrorKind::TimeExceeded, true) => &mut c.icmp_in_time_excds,
            (IcmpErrorKind::TimeExceeded, false) => &mut c.icmp6_in_time_excds,
            (IcmpErrorKind::ParameterProblem | IcmpErrorKind::ProtocolUnreachable, false) => {
                &mut c.icmp6_in_parm_problems
            }
            (IcmpErrorKind::ParameterProblem, true) => &mut c.icmp_in_parm_probs,
            (_, true) => &mut c.icmp_in_dest_unreachs,
            (_, false) => &mut c.icmp6_in_dest_unreachs,
        };
        *counter += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cache_ages_entries_after_ten_minutes_and_stays_bounded() {
        let mut c = PathMtuCache::default();
        let t0 = Instant::from_millis(1_000);
        let a: IpAddr = "198.18.0.1".parse().unwrap();
        c.insert(t0, a, 1280);
        assert_eq!(c.get(t0 + Duration::from_secs(599), a), Some(1280));
        assert_eq!(c.get(t0 + PMTU_EXPIRES, a), None);
        for i in 0..(MAX_ENTRIES as u32 + 100) {
            let ip = IpAddr::V6(std::net::Ipv6Addr::from(
                0x2001_0002_u128 << 96 | u128::from(i),
            ));
            c.insert(t0 + Duration::from_millis(u64::from(i)), ip, 1400);
        }
        assert_eq!(c.len(), MAX_ENTRIES);
    }
}
