//! Packet impairment in software (the kernel here has no netem): loss, duplication,
//! reordering, delay with jitter, bit corruption and a bandwidth limit, for both directions.
//!
//! Sans-IO like the protocol core: [`Impairer::push`] takes a packet and `now`,
//! [`Impairer::poll`] releases the packets that are due, [`Impairer::next_release`] says when
//! to look again. Every decision comes from a seeded PRNG (splitmix64) that draws the same
//! number of values for every packet, so the same seed and the same sequence of packets hit
//! the same packets, whatever the rates. The driver wires it between the TUN and the endpoint
//! (`--impair loss=2%,dup=1%,reorder=2%,delay=10ms,jitter=5ms,corrupt=0.1%,seed=42`); the
//! simulation tests use it as their link.
//!
//! What each fault does:
//! - `loss`: the packet is dropped.
//! - `dup`: a second, unaltered copy is queued with its own delay draw.
//! - `corrupt`: one random bit of the packet is flipped. IPv4 header and TCP checksums reject
//!   almost every such packet; a flip in an IPv6 field no checksum covers (traffic class, flow
//!   label, hop limit) goes through, harmlessly.
//! - `delay`/`jitter`: each packet waits `delay ± jitter` (uniform, never below zero), but
//!   never leaves before a packet of its direction that arrived earlier: jitter varies the
//!   delay without reordering (as netem does with a FIFO child), so that reordering happens
//!   only where `reorder` asks for it.
//! - `reorder`: the packet is held back and released right behind the next packet of the same
//!   direction, or after [`REORDER_HOLD`] if none comes.
//! - `rate`: packets of one direction are serialised at this many bits per second before
//!   their delay, queueing behind each other.
//! - `mtu`: a router whose next hop takes IP packets of at most this many bytes: a larger
//!   packet is dropped and answered, towards its sender, with ICMP "fragmentation needed"
//!   (IPv4, RFC 1191) or ICMPv6 "packet too big" (RFC 8201), quoting it, from the address it
//!   was sent to (as a tunnel's far end would), after the link's delay. Both directions, so
//!   synack and the kernel's client each see path MTU discovery.
//! - `blackhole-mtu`: the same packets are dropped silently (a firewall that eats ICMP: the
//!   PMTUD black hole of RFC 2923 §2.1).
//! - `ce`: an ECN-capable packet (ECT(0) or ECT(1) in its IP header) is marked CE
//!   (congestion experienced, RFC 3168 §5) instead of being dropped, as an AQM router does;
//!   other packets pass untouched. Drawn from a PRNG of its own, so adding `ce` changes no
//!   other fault's choices.
//! - `limit`: at most this many packets (default 65,536) wait in the impairer (and at most
//!   [`MAX_QUEUED_BYTES`]); packets beyond are dropped and counted as `overflow`.
//!
//! Memory is bounded by `limit`; packet buffers are recycled, so once warmed up no packet
//! allocates.

use crate::time::{Duration, Instant, parse_duration};
use crate::wire::RxMeta;
use crate::wire::gso::Gso;
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fmt;
use std::str::FromStr;
use tracing::debug;

/// Which way a packet travels, from the endpoint's point of view.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Direction {
    /// Toward the endpoint (read from the TUN).
    Inbound,
    /// From the endpoint (to be written to the TUN).
    Outbound,
}

impl Direction {
    const fn index(self) -> usize {
        match self {
            Direction::Inbound => 0,
            Direction::Outbound => 1,
        }
    }

    pub const fn name(self) -> &'static str {
        match self {
            Direction::Inbound => "inbound",
            Direction::Outbound => "outbound",
        }
    }
}

impl fmt::Display for Direction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A probability, held in parts per million so that a spec prints back exactly as written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Percent(u32);

impl Percent {
    pub const ZERO: Percent = Percent(0);
    pub const ALL: Percent = Percent(PPM);

    /// `ppm` parts per million (1 % = 10 000), at most 100 %.
    pub const fn from_ppm(ppm: u32) -> Percent {
        if ppm > PPM {
            Percent(PPM)
        } else {
            Percent(ppm)
        }
    }

    pub const fn ppm(self) -> u32 {
        self.0
    }

    pub fn is_zero(self) -> bool {
        self.0 == 0
    }

    /// Whether a uniformly random `r` falls under this probability.
    fn hit(self, r: u64) -> bool {
        // Multiply-shift maps the top 32 bits onto 0..PPM without modulo bias worth noting.
        let scaled = ((r >> 32) * u64::from(PPM)) >> 32;
        scaled < u64::from(self.0)
    }
}

const PPM: u32 = 1_000_000;
/// The finest step a percentage can have: four decimals (0.0001 % = 1 ppm).
const PERCENT_DECIMALS: usize = 4;

impl FromStr for Percent {
    type Err = String;

    /// `2%`, `0.1%`, `100%`: up to four decimals.
    fn from_str(s: &str) -> Result<Percent, String> {
        let bad = || format!("'{s}' is not a percentage between 0% and 100% (e.g. 2% or 0.1%)");
        let num = s.trim().strip_suffix('%').ok_or_else(bad)?;
        let (int, frac) = num.split_once('.').unwrap_or((num, ""));
        let digits = |t: &str| t.bytes().all(|b| b.is_ascii_digit());
        if int.is_empty() || !digits(int) || !digits(frac) || int.len() > 3 {
            return Err(bad());
        }
        if frac.len() > PERCENT_DECIMALS {
            return Err(format!(
                "'{s}' has too many decimals (at most {PERCENT_DECIMALS})"
            ));
        }
        let int: u32 = int.parse().map_err(|_| bad())?;
        let mut frac_ppm = 0u32;
        for (i, b) in frac.bytes().enumerate() {
            let place = 10u32.pow(u32::try_from(PERCENT_DECIMALS - 1 - i).unwrap_or(0));
            frac_ppm += u32::from(b - b'0') * place;
        }
        let ppm = int * 10_000 + frac_ppm;
        if ppm > PPM {
            return Err(bad());
        }
        Ok(Percent(ppm))
    }
}

impl fmt::Display for Percent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (int, frac) = (self.0 / 10_000, self.0 % 10_000);
        if frac == 0 {
            return write!(f, "{int}%");
        }
        let frac = format!("{frac:04}");
        write!(f, "{int}.{}%", frac.trim_end_matches('0'))
    }
}

/// What `--impair` asks for. Parsed from and printed as
/// `loss=2%,dup=1%,reorder=2%,delay=10ms,jitter=5ms,corrupt=0.1%,rate=100mbit,limit=4096,seed=42`
/// (any subset, any order).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImpairSpec {
    pub loss: Percent,
    pub dup: Percent,
    pub reorder: Percent,
    pub corrupt: Percent,
    pub delay: Duration,
    pub jitter: Duration,
    /// Bandwidth limit per direction, in bits per second.
    pub rate: Option<u64>,
    /// The most packets waiting in the impairer at once.
    pub limit: usize,
    pub seed: u64,
    /// Packets larger than this many bytes are dropped and answered with ICMP (`mtu`).
    pub mtu: Option<u32>,
    /// Packets larger than this many bytes are dropped silently (`blackhole-mtu`).
    pub blackhole_mtu: Option<u32>,
    /// ECN-capable packets marked CE (`ce`).
    pub ce: Percent,
}

impl ImpairSpec {
    /// The default `limit`: enough for one connection's largest window (`--wmem`'s and
    /// `--rmem`'s default MAX, 32 MiB, is about 23,000 full-sized packets) to sit in the delay
    /// line with its ACKs, so that `--impair delay=20ms` alone adds delay and no loss. The
    /// earlier 4,096 overflowed at about 6 MiB in flight: at 40 ms RTT a download lost packets
    /// at the impairer every few round trips and CUBIC never got past ~0.5 Gbit/s. netem's
    /// default is 1,000 packets (its users raise `limit` for long paths); the byte cap
    /// [`MAX_QUEUED_BYTES`] still bounds the memory.
    pub const DEFAULT_LIMIT: usize = 65_536;

    /// Only delay (and jitter) is asked for: no fault looks at packet boundaries, so the TUN
    /// may keep its segmentation offload and super-segments cross the link whole, as netem
    /// passes GSO packets whole unless it must corrupt them. Loss, duplication, reordering,
    /// corruption and a rate limit hit wire-sized packets.
    pub fn only_delays(&self) -> bool {
        self.loss.is_zero()
            && self.dup.is_zero()
            && self.reorder.is_zero()
            && self.corrupt.is_zero()
            && self.rate.is_none()
            && self.mtu.is_none()
            && self.blackhole_mtu.is_none()
            && self.ce.is_zero()
    }

    /// Nothing is dropped, altered, delayed or limited.
    pub fn is_transparent(&self) -> bool {
        self.only_delays() && self.delay.is_zero() && self.jitter.is_zero()
    }
}

impl Default for ImpairSpec {
    fn default() -> Self {
        ImpairSpec {
            loss: Percent::ZERO,
            dup: Percent::ZERO,
            reorder: Percent::ZERO,
            corrupt: Percent::ZERO,
            delay: Duration::ZERO,
            jitter: Duration::ZERO,
            rate: None,
            limit: ImpairSpec::DEFAULT_LIMIT,
            seed: 0,
            mtu: None,
            blackhole_mtu: None,
            ce: Percent::ZERO,
        }
    }
}

const KEYS: &str =
    "loss, dup, reorder, corrupt, ce, delay, jitter, rate, limit, seed, mtu, blackhole-mtu";

/// An MTU for `mtu=` and `blackhole-mtu=`: 68 (RFC 791's minimum) to 65535 bytes.
fn parse_mtu(value: &str) -> Result<u32, String> {
    value
        .parse()
        .ok()
        .filter(|n: &u32| (68..=65_535).contains(n))
        .ok_or_else(|| format!("'{value}' is not an MTU in bytes (68 to 65535, e.g. 1280)"))
}

impl FromStr for ImpairSpec {
    type Err = String;

    fn from_str(s: &str) -> Result<ImpairSpec, String> {
        let mut spec = ImpairSpec::default();
        let mut seen: Vec<&str> = Vec::new();
        if s.trim().is_empty() {
            return Err(format!(
                "empty impairment spec (expected key=value pairs, keys: {KEYS})"
            ));
        }
        for item in s.split(',') {
            let item = item.trim();
            let Some((key, value)) = item.split_once('=') else {
                return Err(format!(
                    "'{item}' is not key=value (e.g. loss=2%; keys: {KEYS})"
                ));
            };
            let (key, value) = (key.trim(), value.trim());
            if seen.contains(&key) {
                return Err(format!("'{key}' is given twice"));
            }
            let wrap = |e: String| format!("bad value for '{key}': {e}");
            match key {
                "loss" => spec.loss = value.parse().map_err(wrap)?,
                "dup" => spec.dup = value.parse().map_err(wrap)?,
                "reorder" => spec.reorder = value.parse().map_err(wrap)?,
                "corrupt" => spec.corrupt = value.parse().map_err(wrap)?,
                "ce" => spec.ce = value.parse().map_err(wrap)?,
                "delay" => spec.delay = micros(parse_duration(value).map_err(wrap)?),
                "jitter" => spec.jitter = micros(parse_duration(value).map_err(wrap)?),
                "rate" => spec.rate = Some(parse_rate(value).map_err(wrap)?),
                "mtu" => spec.mtu = Some(parse_mtu(value).map_err(wrap)?),
                "blackhole-mtu" => spec.blackhole_mtu = Some(parse_mtu(value).map_err(wrap)?),
                "limit" => {
                    spec.limit = value
                        .parse()
                        .ok()
                        .filter(|&n: &usize| n > 0)
                        .ok_or_else(|| wrap(format!("'{value}' is not a packet count above 0")))?
                }
                "seed" => {
                    spec.seed = value
                        .parse()
                        .map_err(|_| wrap(format!("'{value}' is not an unsigned integer")))?
                }
                other => return Err(format!("unknown impairment '{other}' (keys: {KEYS})")),
            }
            seen.push(key);
        }
        Ok(spec)
    }
}

impl fmt::Display for ImpairSpec {
    /// Only what differs from no impairment, then the seed (always, so that a run can be
    /// replayed from its log).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let percents = [
            ("loss", self.loss),
            ("dup", self.dup),
            ("reorder", self.reorder),
            ("corrupt", self.corrupt),
            ("ce", self.ce),
        ];
        for (key, p) in percents {
            if !p.is_zero() {
                write!(f, "{key}={p},")?;
            }
        }
        for (key, d) in [("delay", self.delay), ("jitter", self.jitter)] {
            if !d.is_zero() {
                write!(f, "{key}={},", DisplayDuration(d))?;
            }
        }
        if let Some(rate) = self.rate {
            write!(f, "rate={},", DisplayRate(rate))?;
        }
        if let Some(mtu) = self.mtu {
            write!(f, "mtu={mtu},")?;
        }
        if let Some(mtu) = self.blackhole_mtu {
            write!(f, "blackhole-mtu={mtu},")?;
        }
        if self.limit != ImpairSpec::DEFAULT_LIMIT {
            write!(f, "limit={},", self.limit)?;
        }
        write!(f, "seed={}", self.seed)
    }
}

/// Durations are kept to whole microseconds, the resolution of [`Instant`].
fn micros(d: Duration) -> Duration {
    let us = d.as_nanos().saturating_add(500) / 1000;
    Duration::from_micros(u64::try_from(us).unwrap_or(u64::MAX))
}

struct DisplayDuration(Duration);

impl fmt::Display for DisplayDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let us = self.0.as_micros();
        if us.is_multiple_of(1_000_000) {
            write!(f, "{}s", us / 1_000_000)
        } else if us.is_multiple_of(1000) {
            write!(f, "{}ms", us / 1000)
        } else {
            write!(f, "{us}us")
        }
    }
}

const RATE_UNITS: [(&str, u64); 4] = [
    ("gbit", 1_000_000_000),
    ("mbit", 1_000_000),
    ("kbit", 1000),
    ("bit", 1),
];

/// `100mbit`, `1.5gbit`, `64kbit`, `9600bit` (tc's spelling; decimal prefixes).
fn parse_rate(s: &str) -> Result<u64, String> {
    let lower = s.to_ascii_lowercase();
    let bad = || format!("'{s}' is not a rate (e.g. 100mbit, 1gbit, 512kbit)");
    let (num, scale) = RATE_UNITS
        .iter()
        .find_map(|(unit, scale)| lower.strip_suffix(unit).map(|n| (n, *scale)))
        .ok_or_else(bad)?;
    if num.is_empty() || !num.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return Err(bad());
    }
    let value: f64 = num.parse().map_err(|_| bad())?;
    let bits = (value * scale as f64).round();
    if !(1.0..=1e15).contains(&bits) {
        return Err(format!("'{s}' is out of range (1bit to 1000000gbit)"));
    }
    // In range, so the conversion is exact enough and cannot overflow.
    Ok(bits as u64)
}

struct DisplayRate(u64);

impl fmt::Display for DisplayRate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (unit, scale) = RATE_UNITS
            .iter()
            .find(|(_, scale)| self.0.is_multiple_of(*scale))
            .copied()
            .unwrap_or(("bit", 1));
        write!(f, "{}{unit}", self.0 / scale)
    }
}

/// How long a reordered packet waits for a next packet to overtake it before it is released
/// anyway.
pub const REORDER_HOLD: Duration = Duration::from_millis(10);

/// The most bytes waiting in the impairer at once, whatever `limit` says.
pub const MAX_QUEUED_BYTES: usize = 64 << 20;

/// splitmix64 (Steele, Lea, Flood 2014): tiny, fast, and any seed (even 0) is fine.
#[derive(Clone, Debug)]
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

/// Random values drawn for every packet, whatever the spec, so that one fault's rate does not
/// shift which packets another fault hits.
struct Draws {
    loss: u64,
    dup: u64,
    corrupt: u64,
    reorder: u64,
    jitter: u64,
    dup_jitter: u64,
    bit: u64,
}

/// A packet buffer; recycled through `free`.
#[derive(Debug, Default)]
struct Slot {
    dir: Option<Direction>,
    data: Vec<u8>,
    /// What the device said about an inbound packet.
    meta: RxMeta,
    /// An outbound super-segment's division into segments.
    gso: Option<Gso>,
}

/// A packet the link releases: its direction, bytes (lent until the next `poll` or `push`),
/// and what travels with it when the TUN offloads.
#[derive(Debug)]
pub struct Released<'a> {
    pub dir: Direction,
    pub data: &'a [u8],
    pub meta: RxMeta,
    pub gso: Option<Gso>,
}

/// A reordered packet, waiting for the next one of its direction to pass it.
#[derive(Clone, Copy, Debug)]
struct Held {
    slot: usize,
    deadline: Instant,
}

/// What happened to the packets, by fault.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Counters {
    packets: u64,
    released: u64,
    lost: u64,
    duplicated: u64,
    reordered: u64,
    corrupted: u64,
    overflow: u64,
    /// Larger than `mtu` or `blackhole-mtu`: dropped (and, for `mtu`, answered with ICMP).
    too_big: u64,
    /// ECN-capable packets marked CE.
    ce_marked: u64,
}

/// Applies an [`ImpairSpec`] to a stream of packets. See the module docs.
#[derive(Debug)]
pub struct Impairer {
    spec: ImpairSpec,
    rng: SplitMix64,
    slots: Vec<Slot>,
    free: Vec<usize>,
    /// (release time, arrival order, slot): released earliest first, ties in arrival order.
    queue: BinaryHeap<Reverse<(Instant, u64, usize)>>,
    held: [Option<Held>; 2],
    /// With a rate limit: when each direction's link finishes sending what it has.
    busy_until: [Instant; 2],
    /// The latest release time given to a packet of each direction, which later packets
    /// never precede (jitter does not reorder).
    last_release: [Instant; 2],
    queued: usize,
    queued_bytes: usize,
    order: u64,
    /// The slot handed out by the last `poll`, recycled on the next call.
    lent: Option<usize>,
    counters: Counters,
    /// Where the ICMP error answering a packet larger than `mtu` is written.
    icmp_buf: Vec<u8>,
    /// `ce`'s own draws.
    ce_rng: SplitMix64,
}

impl Impairer {
    pub fn new(spec: ImpairSpec) -> Impairer {
        Impairer {
            rng: SplitMix64(spec.seed),
            ce_rng: SplitMix64(spec.seed ^ 0xec4e_c4ec_4ec4_ec4e),
            spec,
            slots: Vec::new(),
            free: Vec::new(),
            queue: BinaryHeap::new(),
            held: [None, None],
            busy_until: [Instant::ZERO; 2],
            last_release: [Instant::ZERO; 2],
            queued: 0,
            queued_bytes: 0,
            order: 0,
            lent: None,
            counters: Counters::default(),
            icmp_buf: Vec::new(),
        }
    }

    pub fn spec(&self) -> &ImpairSpec {
        &self.spec
    }

    /// Packets waiting (queued or held back).
    pub fn len(&self) -> usize {
        self.queued
    }

    pub fn is_empty(&self) -> bool {
        self.queued == 0
    }

    /// The counters, as (name, value) pairs: every packet pushed, every one released, and one
    /// per fault.
    pub fn counters(&self) -> [(&'static str, u64); 9] {
        let c = &self.counters;
        [
            ("packets", c.packets),
            ("released", c.released),
            ("lost", c.lost),
            ("duplicated", c.duplicated),
            ("reordered", c.reordered),
            ("corrupted", c.corrupted),
            ("overflow", c.overflow),
            ("too_big", c.too_big),
            ("ce_marked", c.ce_marked),
        ]
    }

    /// Take one packet travelling in `dir` at `now`, and decide its fate: true when it was
    /// dropped (lost, too big, or the queue was full), for the sequence diagrams.
    pub fn push(&mut self, now: Instant, dir: Direction, packet: &[u8]) -> bool {
        self.push_with(now, dir, packet, RxMeta::default(), None)
    }

    /// [`Impairer::push`] for a packet that carries the device's metadata (inbound) or a
    /// super-segment's division (outbound), released with it.
    pub fn push_with(
        &mut self,
        now: Instant,
        dir: Direction,
        packet: &[u8],
        meta: RxMeta,
        gso: Option<Gso>,
    ) -> bool {
        self.recycle_lent();
        let r = self.draw();
        self.counters.packets += 1;
        let n = self.counters.packets;
        let len = packet.len();
        if self.too_big(now, dir, packet, r.jitter) {
            return true;
        }
        if self.spec.loss.hit(r.loss) {
            self.counters.lost += 1;
            debug!(packet = n, %dir, len, "impair: lost");
            return true;
        }
        let Some(slot) = self.admit(dir, packet, meta, gso) else {
            self.counters.overflow += 1;
            debug!(packet = n, %dir, len, "impair: queue full, dropped");
            return true;
        };
        if !self.spec.ce.is_zero()
            && self.spec.ce.hit(self.ce_rng.next())
            && let Some(data) = self.slots.get_mut(slot).map(|s| &mut s.data)
            && mark_ce(data)
        {
            self.counters.ce_marked += 1;
            debug!(packet = n, %dir, len, "impair: marked CE");
        }
        if self.spec.corrupt.hit(r.corrupt)
            && let Some(data) = self.slots.get_mut(slot).map(|s| &mut s.data)
            && !data.is_empty()
        {
            let bits = u64::try_from(data.len())
                .unwrap_or(u64::MAX)
                .saturating_mul(8);
            let bit = r.bit % bits;
            let byte = usize::try_from(bit / 8).unwrap_or(0);
            if let Some(b) = data.get_mut(byte) {
                *b ^= 1 << (bit % 8);
            }
            self.counters.corrupted += 1;
            debug!(packet = n, %dir, len, bit, "impair: corrupted");
        }

        let sent = self.serialise(now, dir, len);
        let release = self.in_order(dir, self.delayed(sent, r.jitter));
        let d = dir.index();
        if self.spec.reorder.hit(r.reorder) {
            // The packet waits for the next one; one that was already waiting goes now, at this
            // packet's place.
            if let Some(prev) = self.held.get_mut(d).and_then(Option::take) {
                self.enqueue(prev.slot, release.min(prev.deadline));
            }
            if let Some(h) = self.held.get_mut(d) {
                *h = Some(Held {
                    slot,
                    deadline: release + REORDER_HOLD,
                });
            }
            self.counters.reordered += 1;
            debug!(packet = n, %dir, len, "impair: held back (reorder)");
        } else {
            self.enqueue(slot, release);
            // A held packet is released right behind this one.
            if let Some(prev) = self.held.get_mut(d).and_then(Option::take) {
                self.enqueue(prev.slot, release.min(prev.deadline));
            }
        }

        if self.spec.dup.hit(r.dup) {
            let Some(copy) = self.admit(dir, packet, meta, gso) else {
                self.counters.overflow += 1;
                debug!(packet = n, %dir, len, "impair: queue full, duplicate dropped");
                return false;
            };
            let release = self.in_order(dir, self.delayed(sent, r.dup_jitter));
            self.enqueue(copy, release);
            self.counters.duplicated += 1;
            debug!(packet = n, %dir, len, "impair: duplicated");
        }
        false
    }

    /// `mtu=` and `blackhole-mtu=`: whether `packet` is too big for the next hop, in which case
    /// it is dropped, and for `mtu=` answered with ICMP towards its sender (RFC 1191 §4,
    /// RFC 8201 §4; the message quotes as much of it as RFC 1812 §4.3.2.3 / RFC 4443 §2.4
    /// allow), from the address it was sent to, after the link's delay.
    fn too_big(&mut self, now: Instant, dir: Direction, packet: &[u8], r: u64) -> bool {
        let len = u32::try_from(packet.len()).unwrap_or(u32::MAX);
        let answer = match (self.spec.mtu, self.spec.blackhole_mtu) {
            (Some(mtu), _) if len > mtu => Some(mtu),
            (_, Some(mtu)) if len > mtu => None,
            _ => return false,
        };
        self.counters.too_big += 1;
        debug!(%dir, len, "impair: too big for the next hop");
        let Some(mtu) = answer else {
            return true;
        };
        let Some((src, dst)) = ip_addresses(packet) else {
            return true;
        };
        let back = match dir {
            Direction::Inbound => Direction::Outbound,
            Direction::Outbound => Direction::Inbound,
        };
        let mut buf = std::mem::take(&mut self.icmp_buf);
        buf.resize(1500, 0);
        let kind = crate::wire::IcmpErrorKind::PacketTooBig { mtu };
        if let Ok(n) = crate::wire::emit_icmp_error(&mut buf, dst, src, kind, packet)
            && let Some(msg) = buf.get(..n)
            && let Some(slot) = self.admit(back, msg, RxMeta::default(), None)
        {
            let release = self.in_order(back, self.delayed(now, r));
            self.enqueue(slot, release);
        }
        self.icmp_buf = buf;
        true
    }

    /// The next packet whose release time has come, in order of release time. The bytes are
    /// lent until the next call to `poll` or `push`.
    pub fn poll(&mut self, now: Instant) -> Option<(Direction, &[u8])> {
        self.poll_with(now).map(|r| (r.dir, r.data))
    }

    /// [`Impairer::poll`] with what travels with the packet.
    pub fn poll_with(&mut self, now: Instant) -> Option<Released<'_>> {
        self.recycle_lent();
        for d in 0..self.held.len() {
            if let Some(held) = self.held.get(d).copied().flatten()
                && held.deadline <= now
            {
                if let Some(h) = self.held.get_mut(d) {
                    *h = None;
                }
                self.enqueue(held.slot, held.deadline);
            }
        }
        let &Reverse((at, _, slot)) = self.queue.peek()?;
        if at > now {
            return None;
        }
        self.queue.pop();
        self.lent = Some(slot);
        self.counters.released += 1;
        let s = self.slots.get(slot)?;
        self.queued -= 1;
        self.queued_bytes = self.queued_bytes.saturating_sub(s.data.len());
        Some(Released {
            dir: s.dir?,
            data: s.data.as_slice(),
            meta: s.meta,
            gso: s.gso,
        })
    }

    /// When the next packet is due, if any is waiting.
    pub fn next_release(&self) -> Option<Instant> {
        let queued = self.queue.peek().map(|Reverse((at, _, _))| *at);
        let held = self.held.iter().flatten().map(|h| h.deadline);
        queued.into_iter().chain(held).min()
    }

    fn draw(&mut self) -> Draws {
        let rng = &mut self.rng;
        Draws {
            loss: rng.next(),
            dup: rng.next(),
            corrupt: rng.next(),
            reorder: rng.next(),
            jitter: rng.next(),
            dup_jitter: rng.next(),
            bit: rng.next(),
        }
    }

    /// Copy the packet into a recycled buffer, if the queue has room.
    fn admit(
        &mut self,
        dir: Direction,
        packet: &[u8],
        meta: RxMeta,
        gso: Option<Gso>,
    ) -> Option<usize> {
        if self.queued >= self.spec.limit
            || self.queued_bytes.saturating_add(packet.len()) > MAX_QUEUED_BYTES
        {
            return None;
        }
        let slot = match self.free.pop() {
            Some(slot) => slot,
            None => {
                self.slots.push(Slot::default());
                self.slots.len() - 1
            }
        };
        let s = self.slots.get_mut(slot)?;
        s.dir = Some(dir);
        s.meta = meta;
        s.gso = gso;
        s.data.clear();
        s.data.extend_from_slice(packet);
        self.queued += 1;
        self.queued_bytes += packet.len();
        Some(slot)
    }

    fn enqueue(&mut self, slot: usize, at: Instant) {
        self.order += 1;
        self.queue.push(Reverse((at, self.order, slot)));
    }

    fn recycle_lent(&mut self) {
        if let Some(slot) = self.lent.take() {
            self.free.push(slot);
        }
    }

    /// With a rate limit, when the packet has been serialised onto its direction's link.
    fn serialise(&mut self, now: Instant, dir: Direction, len: usize) -> Instant {
        let Some(rate) = self.spec.rate.filter(|&r| r > 0) else {
            return now;
        };
        let Some(busy) = self.busy_until.get_mut(dir.index()) else {
            return now;
        };
        let bits = u64::try_from(len).unwrap_or(u64::MAX).saturating_mul(8);
        let us = bits.saturating_mul(1_000_000).div_ceil(rate);
        let done = (*busy).max(now) + Duration::from_micros(us);
        *busy = done;
        done
    }

    /// `at`, or the last release time of `dir` if that is later; records the result.
    fn in_order(&mut self, dir: Direction, at: Instant) -> Instant {
        let Some(last) = self.last_release.get_mut(dir.index()) else {
            return at;
        };
        *last = (*last).max(at);
        *last
    }

    /// `at + delay ± jitter`, never before `at`.
    fn delayed(&self, at: Instant, r: u64) -> Instant {
        let delay = u64::try_from(self.spec.delay.as_micros()).unwrap_or(u64::MAX);
        let jitter = u64::try_from(self.spec.jitter.as_micros()).unwrap_or(u64::MAX);
        let span = jitter.saturating_mul(2).saturating_add(1);
        let offset = r % span;
        // delay - jitter + offset, clamped at zero.
        let us = delay.saturating_add(offset).saturating_sub(jitter);
        at + Duration::from_micros(us)
    }
}

/// RFC 3168 §5: mark an ECN-capable packet CE, as a router does instead of dropping it (and
/// update IPv4's header checksum). Returns whether it was ECN-capable.
fn mark_ce(p: &mut [u8]) -> bool {
    match p.first().map(|b| b >> 4) {
        Some(4) => {
            let ihl = usize::from(p.first().copied().unwrap_or(0) & 0x0f) * 4;
            let Some(tos) = p.get_mut(1) else {
                return false;
            };
            if !matches!(*tos & 3, 1 | 2) {
                return false;
            }
            *tos |= 3;
            let Some(header) = p.get_mut(..ihl) else {
                return false;
            };
            if let Some(c) = header.get_mut(10..12) {
                c.copy_from_slice(&[0, 0]);
            }
            let mut sum: u32 = header
                .chunks(2)
                .map(|w| {
                    let hi = w.first().copied().unwrap_or(0);
                    u32::from(u16::from_be_bytes([hi, w.get(1).copied().unwrap_or(0)]))
                })
                .sum();
            while sum > 0xffff {
                sum = (sum & 0xffff) + (sum >> 16);
            }
            let check = !(sum as u16);
            if let Some(c) = header.get_mut(10..12) {
                c.copy_from_slice(&check.to_be_bytes());
            }
            true
        }
        Some(6) => {
            // The traffic class straddles bytes 0 and 1; its ECN bits are byte 1's 0x30.
            let Some(b) = p.get_mut(1) else {
                return false;
            };
            if !matches!((*b >> 4) & 3, 1 | 2) {
                return false;
            }
            *b |= 0x30;
            true
        }
        _ => false,
    }
}

/// The source and destination addresses of an IPv4 or IPv6 packet.
fn ip_addresses(p: &[u8]) -> Option<(std::net::IpAddr, std::net::IpAddr)> {
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
    let at = |from: usize, to: usize| p.get(from..to);
    match p.first()? >> 4 {
        4 => {
            let src: [u8; 4] = at(12, 16)?.try_into().ok()?;
            let dst: [u8; 4] = at(16, 20)?.try_into().ok()?;
            Some((
                IpAddr::V4(Ipv4Addr::from(src)),
                IpAddr::V4(Ipv4Addr::from(dst)),
            ))
        }
        6 => {
            let src: [u8; 16] = at(8, 24)?.try_into().ok()?;
            let dst: [u8; 16] = at(24, 40)?.try_into().ok()?;
            Some((
                IpAddr::V6(Ipv6Addr::from(src)),
                IpAddr::V6(Ipv6Addr::from(dst)),
            ))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: Instant = Instant::from_millis(1000);

    fn spec(s: &str) -> ImpairSpec {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    /// A packet whose bytes encode its number, so it can be told apart after release.
    fn packet(i: u32) -> [u8; 64] {
        let mut p = [0u8; 64];
        for (j, b) in p.iter_mut().enumerate() {
            *b = (i.wrapping_mul(31) as u8).wrapping_add(j as u8);
        }
        p[..4].copy_from_slice(&i.to_be_bytes());
        p
    }

    fn id(p: &[u8]) -> u32 {
        u32::from_be_bytes([p[0], p[1], p[2], p[3]])
    }

    /// Push `n` packets 1 ms apart (all Outbound), draining as time passes; return what came
    /// out, with its release time.
    fn run(s: &str, n: u32) -> (Vec<(Instant, Vec<u8>)>, Impairer) {
        let mut imp = Impairer::new(spec(s));
        let mut out = Vec::new();
        let mut drain = |imp: &mut Impairer, now: Instant| {
            while let Some((dir, p)) = imp.poll(now) {
                assert_eq!(dir, Direction::Outbound);
                out.push((now, p.to_vec()));
            }
        };
        for i in 0..n {
            let now = T0 + Duration::from_millis(u64::from(i));
            drain(&mut imp, now);
            imp.push(now, Direction::Outbound, &packet(i));
            drain(&mut imp, now);
        }
        while let Some(at) = imp.next_release() {
            drain(&mut imp, at);
        }
        assert!(imp.is_empty());
        (out, imp)
    }

    fn count(imp: &Impairer, name: &str) -> u64 {
        imp.counters()
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| *v)
            .unwrap()
    }

    #[test]
    fn spec_parses_the_issue_example_and_prints_it_back() {
        let s = "loss=2%,dup=1%,reorder=2%,delay=10ms,jitter=5ms,corrupt=0.1%,seed=42";
        let p = spec(s);
        assert_eq!(p.loss, Percent::from_ppm(20_000));
        assert_eq!(p.dup, Percent::from_ppm(10_000));
        assert_eq!(p.reorder, Percent::from_ppm(20_000));
        assert_eq!(p.corrupt, Percent::from_ppm(1_000));
        assert_eq!(p.delay, Duration::from_millis(10));
        assert_eq!(p.jitter, Duration::from_millis(5));
        assert_eq!(p.seed, 42);
        assert_eq!(p.rate, None);
        let printed = p.to_string();
        assert_eq!(
            printed,
            "loss=2%,dup=1%,reorder=2%,corrupt=0.1%,delay=10ms,jitter=5ms,seed=42"
        );
        assert_eq!(spec(&printed), p);
    }

    #[test]
    fn spec_accepts_any_subset_in_any_order_and_round_trips() {
        for s in [
            "seed=7",
            "loss=0.0001%",
            "corrupt=100%,loss=0%",
            "delay=1s,rate=100mbit",
            "jitter=250us , delay=1.5ms",
            "rate=1.5gbit,limit=10,reorder=12.25%",
            "rate=9600bit",
        ] {
            let p = spec(s);
            assert_eq!(spec(&p.to_string()), p, "{s} -> {p}");
        }
        assert_eq!(spec("rate=1.5gbit").rate, Some(1_500_000_000));
        assert_eq!(spec("rate=64Kbit").rate, Some(64_000));
        assert_eq!(spec("jitter=250us").jitter, Duration::from_micros(250));
        assert_eq!(spec("loss=12.25%").to_string(), "loss=12.25%,seed=0");
        assert!(spec("seed=3").is_transparent());
        assert!(!spec("delay=1ms").is_transparent());
    }

    #[test]
    fn spec_errors_name_the_bad_key_or_value() {
        let err = |s: &str| s.parse::<ImpairSpec>().unwrap_err();
        assert!(err("").contains("empty"));
        assert!(err("lose=2%").contains("unknown impairment 'lose'"));
        assert!(err("loss").contains("'loss' is not key=value"));
        assert!(err("loss=2").contains("'loss'"));
        assert!(err("loss=2").contains("'2' is not a percentage"));
        assert!(err("loss=101%").contains("loss"));
        assert!(err("loss=-1%").contains("loss"));
        assert!(err("loss=1.23456%").contains("too many decimals"));
        assert!(err("dup=x%").contains("'dup'"));
        assert!(err("delay=fast").contains("'delay'"));
        assert!(err("jitter=5y").contains("unknown unit"));
        assert!(err("rate=100").contains("'rate'"));
        assert!(err("rate=100mbps").contains("not a rate"));
        assert!(err("rate=0mbit").contains("out of range"));
        assert!(err("limit=0").contains("'limit'"));
        assert!(err("seed=-1").contains("'seed'"));
        assert!(err("loss=1%,loss=2%").contains("'loss' is given twice"));
    }

    #[test]
    fn no_impairment_passes_everything_through_in_order_at_once() {
        let (out, imp) = run("seed=1", 500);
        assert_eq!(out.len(), 500);
        for (i, (at, p)) in out.iter().enumerate() {
            assert_eq!(id(p), i as u32);
            assert_eq!(p.as_slice(), packet(i as u32));
            assert_eq!(*at, T0 + Duration::from_millis(i as u64));
        }
        assert_eq!(count(&imp, "packets"), 500);
        assert_eq!(count(&imp, "released"), 500);
        for fault in ["lost", "duplicated", "reordered", "corrupted", "overflow"] {
            assert_eq!(count(&imp, fault), 0, "{fault}");
        }
    }

    #[test]
    fn loss_at_100_percent_drops_everything() {
        let (out, imp) = run("loss=100%", 300);
        assert!(out.is_empty());
        assert_eq!(count(&imp, "lost"), 300);
    }

    #[test]
    fn dup_at_100_percent_delivers_every_packet_twice() {
        let (out, imp) = run("dup=100%", 300);
        assert_eq!(out.len(), 600);
        for i in 0..300 {
            assert_eq!(out.iter().filter(|(_, p)| id(p) == i).count(), 2);
        }
        assert_eq!(count(&imp, "duplicated"), 300);
    }

    #[test]
    fn corrupt_at_100_percent_flips_exactly_one_bit_of_each() {
        let (out, imp) = run("corrupt=100%", 300);
        assert_eq!(out.len(), 300);
        let mut seen_bytes = std::collections::HashSet::new();
        for (i, (_, p)) in out.iter().enumerate() {
            let orig = packet(i as u32);
            let flipped: u32 = p
                .iter()
                .zip(orig.iter())
                .map(|(a, b)| (a ^ b).count_ones())
                .sum();
            assert_eq!(flipped, 1, "packet {i}");
            seen_bytes.insert(p.iter().zip(orig.iter()).position(|(a, b)| a != b));
        }
        // The bit is spread over the whole packet, not always the same one.
        assert!(seen_bytes.len() > 30);
        assert_eq!(count(&imp, "corrupted"), 300);
    }

    #[test]
    fn reorder_at_100_percent_releases_each_packet_behind_the_next() {
        // Each packet is held until the next passes it, so the stream comes out shifted by one
        // with the held packet right behind its successor.
        let (out, imp) = run("reorder=100%", 5);
        let ids: Vec<u32> = out.iter().map(|(_, p)| id(p)).collect();
        assert_eq!(ids, [0, 1, 2, 3, 4]);
        // Every packet was held: packet i goes out when packet i+1 arrives (1 ms later), the
        // last after REORDER_HOLD.
        for (i, (at, _)) in out.iter().enumerate().take(4) {
            assert_eq!(*at, T0 + Duration::from_millis(i as u64 + 1));
        }
        assert_eq!(out[4].0, T0 + Duration::from_millis(4) + REORDER_HOLD);
        assert_eq!(count(&imp, "reordered"), 5);

        let (out, _) = run("reorder=50%,seed=3", 2000);
        let ids: Vec<u32> = out.iter().map(|(_, p)| id(p)).collect();
        let inversions = ids.windows(2).filter(|w| w[0] > w[1]).count();
        assert!(inversions > 300, "{inversions} inversions");
        let mut sorted = ids.clone();
        sorted.sort();
        assert_eq!(sorted, (0..2000).collect::<Vec<_>>());
    }

    #[test]
    fn zero_percent_faults_never_fire() {
        let (out, imp) = run("loss=0%,dup=0%,reorder=0%,corrupt=0%,seed=9", 1000);
        assert_eq!(out.len(), 1000);
        assert!(
            out.iter()
                .enumerate()
                .all(|(i, (_, p))| *p == packet(i as u32))
        );
        assert_eq!(count(&imp, "released"), 1000);
    }

    #[test]
    fn fault_rates_are_roughly_as_asked() {
        let n = 20_000;
        let (_, imp) = run("loss=10%,dup=5%,reorder=2%,corrupt=1%,seed=11", n);
        let expect = |name: &str, ppm: u64| {
            let got = count(&imp, name);
            // The faults after loss apply only to the packets that survived it.
            let base = if name == "lost" {
                u64::from(n)
            } else {
                u64::from(n) - count(&imp, "lost")
            };
            let want = base * ppm / 1_000_000;
            let tolerance = want / 5 + 10;
            assert!(
                got.abs_diff(want) <= tolerance,
                "{name}: {got}, want ~{want}"
            );
        };
        expect("lost", 100_000);
        expect("duplicated", 50_000);
        expect("reordered", 20_000);
        expect("corrupted", 10_000);
    }

    #[test]
    fn delay_and_jitter_stay_within_bounds_and_cover_the_range() {
        // Packets 100 ms apart: each one's delay is its own draw.
        let mut imp = Impairer::new(spec("delay=10ms,jitter=4ms,seed=5"));
        let mut delays = Vec::new();
        for i in 0..2000 {
            let sent = T0 + Duration::from_millis(100 * u64::from(i));
            imp.push(sent, Direction::Inbound, &packet(i));
            let at = imp.next_release().unwrap();
            let (dir, p) = imp.poll(at).unwrap();
            assert_eq!((dir, id(p)), (Direction::Inbound, i));
            delays.push(at - sent);
        }
        let min = *delays.iter().min().unwrap();
        let max = *delays.iter().max().unwrap();
        assert!(min >= Duration::from_millis(6) && min < Duration::from_micros(6100));
        assert!(max <= Duration::from_millis(14) && max > Duration::from_micros(13900));
    }

    #[test]
    fn jitter_varies_the_delay_without_reordering() {
        // A burst at one instant comes out in the order it went in, spread over the jitter.
        let mut imp = Impairer::new(spec("delay=10ms,jitter=5ms,seed=6"));
        for i in 0..500 {
            imp.push(T0, Direction::Outbound, &packet(i));
        }
        let mut got = Vec::new();
        while let Some(at) = imp.next_release() {
            while let Some((_, p)) = imp.poll(at) {
                got.push((id(p), at - T0));
            }
        }
        assert!(got.iter().map(|(i, _)| *i).eq(0..500));
        let (first, last) = (got.first().unwrap().1, got.last().unwrap().1);
        assert!(first >= Duration::from_millis(5) && first < last);
        assert!(last > Duration::from_millis(14) && last <= Duration::from_millis(15));
    }

    #[test]
    fn nothing_is_released_before_its_time() {
        let mut imp = Impairer::new(spec("delay=5ms"));
        imp.push(T0, Direction::Outbound, b"abc");
        assert_eq!(imp.next_release(), Some(T0 + Duration::from_millis(5)));
        assert!(imp.poll(T0 + Duration::from_micros(4999)).is_none());
        let (dir, p) = imp.poll(T0 + Duration::from_millis(5)).unwrap();
        assert_eq!((dir, p), (Direction::Outbound, &b"abc"[..]));
        assert!(imp.poll(T0 + Duration::from_secs(1)).is_none());
        assert_eq!(imp.next_release(), None);
    }

    #[test]
    fn rate_limit_serialises_packets_per_direction() {
        // 1000-byte packets at 8 Mbit/s take 1 ms each.
        let mut imp = Impairer::new(spec("rate=8mbit"));
        let p = [0u8; 1000];
        for _ in 0..3 {
            imp.push(T0, Direction::Outbound, &p);
        }
        imp.push(T0, Direction::Inbound, &p);
        let mut got = Vec::new();
        while let Some(at) = imp.next_release() {
            while let Some((dir, _)) = imp.poll(at) {
                got.push((dir, at - T0));
            }
        }
        let ms = Duration::from_millis;
        assert_eq!(
            got,
            [
                (Direction::Outbound, ms(1)),
                (Direction::Inbound, ms(1)),
                (Direction::Outbound, ms(2)),
                (Direction::Outbound, ms(3)),
            ]
        );
    }

    #[test]
    fn queue_is_bounded_and_overflow_is_counted() {
        let mut imp = Impairer::new(spec("delay=1s,limit=100"));
        for i in 0..150 {
            imp.push(T0, Direction::Outbound, &packet(i));
        }
        assert_eq!(imp.len(), 100);
        assert_eq!(count(&imp, "overflow"), 50);
        let mut n = 0;
        while imp.poll(T0 + Duration::from_secs(1)).is_some() {
            n += 1;
        }
        assert_eq!(n, 100);
        // Buffers are recycled: the slab never grew past the limit.
        assert!(imp.slots.len() <= 101);
    }

    #[test]
    fn by_default_a_delay_line_holds_a_full_window_without_loss() {
        // `--impair delay=20ms` on a 40 ms path: a bulk sender with the largest default window
        // (32 MiB, `--wmem`'s MAX) in flight puts it all into the outbound line within one
        // delay, and the ACKs of the previous round trip fill the inbound one. With the old
        // default limit of 4,096 packets the line overflowed at about 6 MiB and the download
        // lost packets every few round trips.
        let mut imp = Impairer::new(spec("delay=20ms"));
        let full = [0u8; 1500];
        let ack = [0u8; 52];
        let window = (32usize << 20) / 1448;
        for _ in 0..window {
            imp.push(T0, Direction::Outbound, &full);
        }
        for _ in 0..window / 2 {
            imp.push(T0, Direction::Inbound, &ack);
        }
        assert_eq!(count(&imp, "overflow"), 0);
        assert_eq!(imp.len(), window + window / 2);
    }

    #[test]
    fn same_seed_and_input_hit_the_same_packets() {
        let s = "loss=5%,dup=5%,reorder=5%,corrupt=5%,delay=3ms,jitter=2ms,seed=1234";
        let (a, ia) = run(s, 3000);
        let (b, ib) = run(s, 3000);
        assert_eq!(a, b);
        assert_eq!(ia.counters(), ib.counters());
        let (c, _) = run(&s.replace("1234", "1235"), 3000);
        assert_ne!(a, c);
    }

    #[test]
    fn one_faults_rate_does_not_move_anothers_hits() {
        // Every packet draws the same values whatever the rates, so adding duplication does not
        // change which packets are lost.
        let lost = |s: &str| {
            let (out, _) = run(s, 2000);
            let got: std::collections::HashSet<u32> = out.iter().map(|(_, p)| id(p)).collect();
            (0..2000).filter(|i| !got.contains(i)).collect::<Vec<_>>()
        };
        let a = lost("loss=10%,seed=8");
        assert!(!a.is_empty());
        assert_eq!(a, lost("loss=10%,dup=30%,seed=8"));
    }

    /// A TCP segment of `payload` bytes from `src` to `dst`, as a packet.
    fn tcp_packet(src: &str, dst: &str, payload: usize) -> Vec<u8> {
        let mut buf = vec![0; 2000];
        let data = vec![0u8; payload];
        let seg = crate::wire::TcpSegment {
            src_port: 80,
            dst_port: 40000,
            seq: crate::seqnum::SeqNum::new(77),
            flags: crate::wire::Flags::ACK,
            payload: &data,
            ..crate::wire::SEGMENT_TEMPLATE
        };
        let n = crate::wire::emit_tcp(&mut buf, src.parse().unwrap(), dst.parse().unwrap(), &seg)
            .unwrap();
        buf.truncate(n);
        buf
    }

    #[test]
    fn mtu_drops_larger_packets_and_answers_their_sender_with_icmp_both_ways() {
        for (a, b, mtu) in [
            ("198.18.0.2", "198.18.0.1", 1280),
            ("2001:2::2", "2001:2::1", 1280),
        ] {
            let mut imp = Impairer::new(spec(&format!("mtu={mtu},delay=5ms")));
            for dir in [Direction::Outbound, Direction::Inbound] {
                imp.push(
                    T0,
                    dir,
                    &tcp_packet(a, b, 1240 - 20 * usize::from(a.contains(':'))),
                );
                imp.push(T0, dir, &tcp_packet(a, b, 1400));
                let at = T0 + Duration::from_millis(5);
                let (d1, p1) = imp.poll(at).map(|(d, p)| (d, p.to_vec())).unwrap();
                assert_eq!((d1, p1.len()), (dir, 1280), "the one that fits passes");
                let (d2, p2) = imp.poll(at).map(|(d, p)| (d, p.to_vec())).unwrap();
                assert_ne!(d2, dir, "the answer goes back towards the sender");
                let Ok(crate::wire::Packet::IcmpError { src, dst, error }) =
                    crate::wire::parse(&p2)
                else {
                    panic!("{:?}", crate::wire::parse(&p2));
                };
                assert_eq!((src, dst), (b.parse().unwrap(), a.parse().unwrap()));
                assert_eq!(error.kind, crate::wire::IcmpErrorKind::PacketTooBig { mtu });
                assert_eq!(error.seq, crate::seqnum::SeqNum::new(77));
                assert!(imp.poll(at).is_none());
            }
            assert_eq!(count(&imp, "too_big"), 2);
        }
    }

    #[test]
    fn blackhole_mtu_drops_larger_packets_silently() {
        let mut imp = Impairer::new(spec("blackhole-mtu=1280"));
        imp.push(
            T0,
            Direction::Outbound,
            &tcp_packet("198.18.0.2", "198.18.0.1", 1400),
        );
        imp.push(
            T0,
            Direction::Inbound,
            &tcp_packet("198.18.0.1", "198.18.0.2", 100),
        );
        let (dir, p) = imp.poll(T0).unwrap();
        assert_eq!((dir, p.len()), (Direction::Inbound, 140));
        assert!(imp.poll(T0).is_none());
        assert_eq!(count(&imp, "too_big"), 1);
        let s = spec("mtu=1400,blackhole-mtu=1280,seed=1");
        assert_eq!(s.to_string(), "mtu=1400,blackhole-mtu=1280,seed=1");
        assert!(!s.only_delays());
        assert!("mtu=40".parse::<ImpairSpec>().is_err());
    }

    #[test]
    fn ce_marks_ecn_capable_packets_and_leaves_the_others() {
        for (a, b) in [("198.18.0.2", "198.18.0.1"), ("2001:2::2", "2001:2::1")] {
            let mut imp = Impairer::new(spec("ce=100%"));
            for ecn in [crate::wire::Ecn::Ect0, crate::wire::Ecn::NotEct] {
                let mut buf = vec![0; 200];
                let seg = crate::wire::TcpSegment {
                    payload: b"data",
                    ecn,
                    ..crate::wire::SEGMENT_TEMPLATE
                };
                let n =
                    crate::wire::emit_tcp(&mut buf, a.parse().unwrap(), b.parse().unwrap(), &seg)
                        .unwrap();
                imp.push(T0, Direction::Outbound, &buf[..n]);
                let (_, p) = imp.poll(T0).unwrap();
                let Ok(crate::wire::Packet::Tcp { seg, .. }) = crate::wire::parse(p) else {
                    panic!("still a valid packet (IPv4 header checksum updated)");
                };
                let want = if ecn.is_ect() {
                    crate::wire::Ecn::Ce
                } else {
                    ecn
                };
                assert_eq!(seg.ecn, want);
            }
            assert_eq!(count(&imp, "ce_marked"), 1);
        }
        assert_eq!(spec("ce=5%,seed=3").to_string(), "ce=5%,seed=3");
    }
}
