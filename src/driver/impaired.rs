//! `--impair`: the endpoint behind a faulty link.
//!
//! [`Impaired`] wraps the sans-IO core in the [`Impairer`] of `src/device/impair.rs`: every
//! packet read from the TUN and every packet the endpoint sends passes through it, so loss,
//! duplication, reordering, delay, jitter, corruption and a rate limit apply in both
//! directions, seeded and reproducible. The loop's deadline is the earlier of the endpoint's
//! and the link's next release, so a delayed packet leaves exactly when it is due.
//!
//! When the spec only delays ([`ImpairSpec::only_delays`]) the TUN keeps its offloads: a
//! super-segment waits in the link whole and leaves as one (`transmit_gso`), and an inbound
//! packet keeps what the device said about its checksum.

use super::Core;
use crate::device::impair::{Direction, ImpairSpec, Impairer};
use crate::endpoint::Transmit;
use crate::time::Instant;
use crate::wire::RxMeta;
use crate::wire::gso::Gso;

/// A core whose link is impaired.
pub struct Impaired<C> {
    inner: C,
    link: Impairer,
    /// An inbound packet released by the link, copied out before the core sees it (the core's
    /// replies go back into the link). Grows once to the largest packet; no allocation after.
    scratch: Vec<u8>,
    /// The core's packets the link dropped while the core was sending, told to it once it
    /// returns (its trace marks them). Grows to the most dropped in one turn; reused.
    dropped: Dropped,
}

/// Copies of dropped outbound packets, end to end in one buffer.
#[derive(Default)]
struct Dropped {
    bytes: Vec<u8>,
    ends: Vec<usize>,
}

/// At most this many dropped packets are told per turn (the rest only counted by the link).
const MAX_DROPS_TOLD: usize = 64;

/// The endpoint's output goes into the link instead of straight to the TUN.
struct IntoLink<'a> {
    link: &'a mut Impairer,
    now: Instant,
    dropped: &'a mut Dropped,
}

impl IntoLink<'_> {
    fn note(&mut self, dropped: bool, packet: &[u8]) {
        if dropped && self.dropped.ends.len() < MAX_DROPS_TOLD {
            self.dropped.bytes.extend_from_slice(packet);
            self.dropped.ends.push(self.dropped.bytes.len());
        }
    }
}

impl Transmit for IntoLink<'_> {
    fn transmit(&mut self, packet: &[u8]) {
        let dropped = self.link.push(self.now, Direction::Outbound, packet);
        self.note(dropped, packet);
    }

    fn transmit_gso(&mut self, packet: &[u8], gso: Gso) {
        let dropped = self.link.push_with(
            self.now,
            Direction::Outbound,
            packet,
            RxMeta::default(),
            Some(gso),
        );
        self.note(dropped, packet);
    }
}

impl<C: Core> Impaired<C> {
    pub fn new(inner: C, spec: ImpairSpec) -> Self {
        Impaired {
            inner,
            link: Impairer::new(spec),
            scratch: Vec::with_capacity(65536),
            dropped: Dropped::default(),
        }
    }

    /// Tell the core which of its packets the link dropped since the last call.
    fn tell_drops(&mut self, now: Instant) {
        let mut start = 0;
        for &end in &self.dropped.ends {
            if let Some(packet) = self.dropped.bytes.get(start..end) {
                self.inner.on_link_drop(now, true, packet);
            }
            start = end;
        }
        self.dropped.bytes.clear();
        self.dropped.ends.clear();
    }

    /// Deliver every packet the link releases by `now`: inbound ones to the core (whose
    /// replies enter the link), outbound ones to the TUN.
    fn release(&mut self, now: Instant, tx: &mut dyn Transmit) {
        // The device's word on checksums holds only if the link cannot have corrupted the
        // packet since; otherwise they are verified.
        let keep_meta = self.link.spec().corrupt.is_zero();
        loop {
            let Some(released) = self.link.poll_with(now) else {
                return;
            };
            match (released.dir, released.gso) {
                (Direction::Outbound, Some(gso)) => tx.transmit_gso(released.data, gso),
                (Direction::Outbound, None) => tx.transmit(released.data),
                (Direction::Inbound, _) => {
                    let meta = if keep_meta {
                        released.meta
                    } else {
                        RxMeta::default()
                    };
                    self.scratch.clear();
                    self.scratch.extend_from_slice(released.data);
                    let mut into_link = IntoLink {
                        link: &mut self.link,
                        now,
                        dropped: &mut self.dropped,
                    };
                    self.inner.receive(now, &self.scratch, meta, &mut into_link);
                    self.tell_drops(now);
                }
            }
        }
    }
}

impl<C: Core> Core for Impaired<C> {
    fn receive(&mut self, now: Instant, packet: &[u8], meta: RxMeta, tx: &mut dyn Transmit) {
        if self
            .link
            .push_with(now, Direction::Inbound, packet, meta, None)
        {
            self.inner.on_link_drop(now, false, packet);
        }
        self.release(now, tx);
    }

    fn poll(&mut self, now: Instant, tx: &mut dyn Transmit) {
        self.poll_timers_until(now, now, tx);
    }

    fn poll_timers_until(&mut self, now: Instant, timers_until: Instant, tx: &mut dyn Transmit) {
        self.release(now, tx);
        let mut into_link = IntoLink {
            link: &mut self.link,
            now,
            dropped: &mut self.dropped,
        };
        self.inner
            .poll_timers_until(now, timers_until, &mut into_link);
        self.tell_drops(now);
        self.release(now, tx);
    }

    fn on_link_drop(&mut self, now: Instant, outbound: bool, packet: &[u8]) {
        self.inner.on_link_drop(now, outbound, packet);
    }

    fn poll_timeout(&self) -> Option<Instant> {
        match (self.inner.poll_timeout(), self.link.next_release()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn shutdown(&mut self, now: Instant) {
        self.inner.shutdown(now);
    }

    fn is_drained(&self) -> bool {
        self.inner.is_drained()
    }

    fn abort_all(&mut self, now: Instant, tx: &mut dyn Transmit) {
        let mut into_link = IntoLink {
            link: &mut self.link,
            now,
            dropped: &mut self.dropped,
        };
        self.inner.abort_all(now, &mut into_link);
        self.dropped = Dropped::default();
        // The resets go out now, whatever the link would have done to them: the process is
        // about to exit.
        while let Some((_, packet)) = self.link.poll(Instant::from_micros(u64::MAX)) {
            tx.transmit(packet);
        }
    }

    fn endpoint(&mut self) -> Option<&mut crate::endpoint::Endpoint> {
        // The link's counters go to the endpoint whenever the driver turns to it, so that
        // `synack stats` and `/metrics` show them (at most a turn old).
        let link = self.link.counters().map(|(name, v)| (impair_name(name), v));
        let ep = self.inner.endpoint()?;
        ep.set_link_counters(&link);
        Some(ep)
    }

    fn counters(&self) -> Vec<(&'static str, u64)> {
        // The endpoint's, with the link's as they are now (not as last handed over).
        let mut all: Vec<_> = self
            .inner
            .counters()
            .into_iter()
            .filter(|(name, _)| !name.starts_with("impair_"))
            .collect();
        for (name, value) in self.link.counters() {
            all.push((impair_name(name), value));
        }
        all
    }
}

/// The link's counters, named for the shutdown log.
fn impair_name(name: &str) -> &'static str {
    match name {
        "packets" => "impair_packets",
        "released" => "impair_released",
        "lost" => "impair_lost",
        "duplicated" => "impair_duplicated",
        "reordered" => "impair_reordered",
        "corrupted" => "impair_corrupted",
        "overflow" => "impair_overflow",
        "too_big" => "impair_too_big",
        "ce_marked" => "impair_ce_marked",
        _ => "impair_other",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::endpoint::{Endpoint, EndpointConfig};
    use crate::seqnum::SeqNum;
    use crate::wire::{self, Flags, SEGMENT_TEMPLATE, TcpSegment};

    fn syn() -> Vec<u8> {
        let seg = TcpSegment {
            src_port: 40000,
            dst_port: 7,
            seq: SeqNum::new(1),
            flags: Flags::SYN,
            window: 1000,
            ..SEGMENT_TEMPLATE
        };
        let mut buf = vec![0; 100];
        let n = wire::emit_tcp(
            &mut buf,
            "198.18.0.1".parse().unwrap(),
            "198.18.0.2".parse().unwrap(),
            &seg,
        )
        .unwrap();
        buf.truncate(n);
        buf
    }

    fn impaired(spec: &str) -> Impaired<Endpoint> {
        let ep = Endpoint::new(EndpointConfig::default(), [1; 16], Instant::ZERO);
        Impaired::new(ep, spec.parse().unwrap())
    }

    #[test]
    fn delay_applies_both_ways_and_the_deadline_follows_the_link() {
        let mut core = impaired("delay=10ms,seed=1");
        let mut out: Vec<Vec<u8>> = Vec::new();
        core.receive(Instant::ZERO, &syn(), RxMeta::default(), &mut out);
        core.poll(Instant::ZERO, &mut out);
        assert!(out.is_empty());
        // Inbound arrives at 10 ms, the SYN,ACK leaves the endpoint then, and the TUN at 20 ms.
        assert_eq!(core.poll_timeout(), Some(Instant::from_millis(10)));
        core.poll(Instant::from_millis(10), &mut out);
        assert!(out.is_empty());
        assert_eq!(core.poll_timeout(), Some(Instant::from_millis(20)));
        core.poll(Instant::from_millis(20), &mut out);
        assert_eq!(out.len(), 1);
        assert!(core.counters().contains(&("impair_released", 2)));
    }

    /// A core that sends one super-segment per poll and records the metadata it receives
    /// and the drops it is told of.
    #[derive(Default)]
    struct Scripted {
        metas: Vec<RxMeta>,
        sent: bool,
        drops: Vec<(bool, usize)>,
    }

    const GSO: Gso = Gso {
        ipv6: false,
        hdr_len: 52,
        segment_size: 1448,
        csum_start: 20,
    };

    impl Core for Scripted {
        fn receive(&mut self, _: Instant, _: &[u8], meta: RxMeta, _: &mut dyn Transmit) {
            self.metas.push(meta);
        }
        fn poll(&mut self, _: Instant, tx: &mut dyn Transmit) {
            if !self.sent {
                self.sent = true;
                tx.transmit_gso(&[7; 52 + 3 * 1448], GSO);
            }
        }
        fn poll_timeout(&self) -> Option<Instant> {
            None
        }
        fn shutdown(&mut self, _: Instant) {}
        fn is_drained(&self) -> bool {
            true
        }
        fn abort_all(&mut self, _: Instant, _: &mut dyn Transmit) {}
        fn counters(&self) -> Vec<(&'static str, u64)> {
            Vec::new()
        }
        fn on_link_drop(&mut self, _: Instant, outbound: bool, packet: &[u8]) {
            self.drops.push((outbound, packet.len()));
        }
    }

    /// Records super-segments whole.
    #[derive(Default)]
    struct Wire {
        gso: Vec<(usize, Gso)>,
        plain: usize,
    }

    impl Transmit for Wire {
        fn transmit(&mut self, _: &[u8]) {
            self.plain += 1;
        }
        fn transmit_gso(&mut self, packet: &[u8], gso: Gso) {
            self.gso.push((packet.len(), gso));
        }
    }

    #[test]
    fn a_delay_only_link_keeps_super_segments_whole_and_the_devices_word_on_checksums() {
        let mut core = Impaired::new(Scripted::default(), "delay=20ms".parse().unwrap());
        let mut wire = Wire::default();
        let trusted = RxMeta {
            checksum_trusted: true,
        };
        core.receive(Instant::ZERO, &[1; 100], trusted, &mut wire);
        core.poll(Instant::ZERO, &mut wire);
        assert!(wire.gso.is_empty() && wire.plain == 0 && core.inner.metas.is_empty());
        core.poll(Instant::from_millis(20), &mut wire);
        assert_eq!(wire.gso, vec![(52 + 3 * 1448, GSO)]);
        assert_eq!(wire.plain, 0);
        assert_eq!(core.inner.metas, vec![trusted]);
        // A link that may corrupt does not vouch for checksums.
        let mut core = Impaired::new(Scripted::default(), "corrupt=0.1%".parse().unwrap());
        core.receive(Instant::ZERO, &[1; 100], trusted, &mut wire);
        assert_eq!(core.inner.metas, vec![RxMeta::default()]);
    }

    #[test]
    fn total_loss_means_no_reply_and_is_counted() {
        let mut core = impaired("loss=100%,seed=1");
        let mut out: Vec<Vec<u8>> = Vec::new();
        core.receive(Instant::ZERO, &syn(), RxMeta::default(), &mut out);
        core.poll(Instant::from_millis(5000), &mut out);
        assert!(out.is_empty());
        assert!(core.counters().contains(&("impair_lost", 1)));
    }

    #[test]
    fn the_core_is_told_what_the_link_dropped_and_which_way() {
        let mut core = Impaired::new(Scripted::default(), "loss=100%".parse().unwrap());
        let mut wire = Wire::default();
        core.receive(Instant::ZERO, &[1; 100], RxMeta::default(), &mut wire);
        core.poll(Instant::ZERO, &mut wire);
        assert_eq!(core.inner.drops, vec![(false, 100), (true, 52 + 3 * 1448)]);
        assert!(wire.gso.is_empty() && wire.plain == 0);
        // Nothing dropped: nothing told.
        let mut core = Impaired::new(Scripted::default(), "delay=1ms".parse().unwrap());
        core.receive(Instant::ZERO, &[1; 100], RxMeta::default(), &mut wire);
        core.poll(Instant::ZERO, &mut wire);
        assert!(core.inner.drops.is_empty());
    }
}
