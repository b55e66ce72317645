//! What the sender was doing over time, for the time-sequence and congestion graphs of a
//! connection's page (`crate::observe::graphs` draws them; nothing here draws).
//!
//! One [`Sample`] per data segment sent and per ACK received once data has been sent: the
//! segment's place in sequence space, and the sender's true state at that moment — cwnd,
//! ssthresh, bytes in flight as SACK sees them, the peer's window, SRTT and RTO — which a
//! capture can only guess.
//!
//! Bounded and lazy: a connection that never sends data allocates nothing (8 bytes for the
//! empty `Vec`); the record grows by doubling from [`FIRST`] to [`CAPACITY`] samples, and once
//! full it is decimated: every other sample is dropped (retransmissions are kept) and from then
//! on only every `stride`-th ordinary sample is recorded, the stride doubling each time. So a
//! long transfer keeps an even picture of its whole life in at most `CAPACITY` samples
//! (56 KiB). Recording is a copy into that buffer; it allocates only when it doubles. An idle
//! connection gives back the room for samples it has not taken ([`Samples::shrink`], as its
//! trace does): an echo keeps its 2 samples, not 8; the record doubles again from what it
//! kept if the connection gets busy, still up to `CAPACITY`.

use super::SeqNum;
use super::packed::{Pack, Reader, Record, put_delta32, put_signed, put_varint};
use crate::time::Instant;
use std::borrow::Cow;

/// The room a connection's record starts with, at its first data segment.
pub const FIRST: usize = 8;
/// The most samples kept.
pub const CAPACITY: usize = 1024;
/// The most samples an idle connection's record packs ([`Samples::shrink`]): a short record
/// is a few hundred bytes at most, decoded and packed again cheaply each time the connection
/// wakes and idles; a longer one only gives back its spare room.
pub const PACKED_MAX: usize = 64;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SampleKind {
    /// New data sent.
    Sent,
    /// Data sent again (below the highest byte ever sent).
    Retransmitted,
    /// An acceptable ACK arrived.
    Ack,
}

/// The sender at one moment. Sequence numbers are relative to our ISS (the first data byte
/// is 1), as in the diagram.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sample {
    pub at: Instant,
    pub kind: SampleKind,
    /// Sent: the segment's first byte. Ack: SND.UNA after it.
    pub seq: u32,
    /// Sent: the payload length. Ack: 0.
    pub len: u32,
    /// SND.WND, the peer's receive window in bytes.
    pub wnd: u32,
    /// Ack: the highest SACK block it carried, if any.
    pub sack: SackBlock,
    pub cwnd: u32,
    /// `u32::MAX` until the first loss.
    pub ssthresh: u32,
    /// Bytes in flight: sent, not acknowledged, not SACKed (RFC 6675 pipe).
    pub flight: u32,
    pub srtt_us: u32,
    pub rto_us: u32,
    /// Ack: what the segment said about congestion (ECN, issue 20).
    pub ecn: SampleEcn,
    /// The recovery episode the sender was in, for the congestion graph's shading.
    pub episode: Episode,
    /// Undos so far (wrapping): where it changes between two samples, a reduction was undone.
    pub undos: u8,
}

/// The highest SACK block an ACK carried, relative to our ISS as the samples are, in 8
/// bytes where an `Option<(u32, u32)>` takes 12: an empty block (`start == end`) stands for
/// none, which loses nothing since an empty block covers no byte (RFC 2018 §3: a block's
/// right edge is the sequence number *after* its last byte; a valid one is never empty).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SackBlock {
    start: u32,
    end: u32,
}

impl SackBlock {
    /// No SACK block.
    pub const NONE: SackBlock = SackBlock { start: 0, end: 0 };

    /// A block `(start, end)` (an empty one is none), or none.
    pub fn new(block: Option<(u32, u32)>) -> SackBlock {
        match block {
            Some((start, end)) => SackBlock { start, end },
            None => SackBlock::NONE,
        }
    }

    /// The block (start, end), if there was one.
    pub fn get(self) -> Option<(u32, u32)> {
        (self.start != self.end).then_some((self.start, self.end))
    }
}

/// ECN on an arriving segment, for the congestion graph's marks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SampleEcn {
    /// The peer reported CE marks on our data: ECE (RFC 3168) or growth of the ACE field
    /// (AccECN, RFC 9768).
    pub ece: bool,
    /// The segment itself arrived marked CE by the network.
    pub ce: bool,
}

/// A recovery episode, as the congestion graph shades it (Linux's `ca_state` Recovery and
/// Loss).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Episode {
    /// Open or disorder: no reduction in progress.
    #[default]
    None,
    /// Fast recovery (RFC 6675, RFC 6582, RACK), cwnd reduced by PRR.
    FastRecovery,
    /// After a retransmission timeout, until what was in flight then is acknowledged.
    RtoLoss,
}

/// The sender's state that every sample carries (see [`Sample`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SenderState {
    pub una: SeqNum,
    pub wnd: u32,
    pub cwnd: u32,
    pub ssthresh: u32,
    pub flight: u32,
    pub srtt_us: u32,
    pub rto_us: u32,
    pub episode: Episode,
}

/// What the samples before the next one in a packed record tell of it: the previous one
/// (see [`Pack`]).
pub struct SampleContext(Sample);

impl Default for SampleContext {
    /// What the first sample is written against: time 0, sequence 0, no loss yet.
    fn default() -> Self {
        SampleContext(Sample {
            at: Instant::ZERO,
            kind: SampleKind::Sent,
            seq: 0,
            len: 0,
            wnd: 0,
            sack: SackBlock::NONE,
            cwnd: 0,
            ssthresh: u32::MAX,
            flight: 0,
            srtt_us: 0,
            rto_us: 0,
            ecn: SampleEcn {
                ece: false,
                ce: false,
            },
            episode: Episode::None,
            undos: 0,
        })
    }
}

/// The packed form of a sample: a byte with its kind, ECN marks, episode and whether a SACK
/// block and a new undo count follow; then the time since the previous sample, the
/// sequence number from where the previous one ended, the length, and the sender's
/// numbers as differences from the previous sample's (the first from 0, its ssthresh from
/// "no loss yet"). An echo's 2 samples take 29 bytes.
impl Pack for Sample {
    type Context = SampleContext;

    fn encode(&self, cx: &mut SampleContext, out: &mut Vec<u8>) {
        let prev = cx.0;
        let kind = match self.kind {
            SampleKind::Sent => 0,
            SampleKind::Retransmitted => 1,
            SampleKind::Ack => 2,
        };
        let episode = match self.episode {
            Episode::None => 0,
            Episode::FastRecovery => 1,
            Episode::RtoLoss => 2,
        };
        let sack = self.sack != SackBlock::NONE;
        let undos = self.undos != prev.undos;
        out.push(
            kind | u8::from(self.ecn.ece) << 2
                | u8::from(self.ecn.ce) << 3
                | episode << 4
                | u8::from(sack) << 6
                | u8::from(undos) << 7,
        );
        put_signed(
            out,
            self.at.as_micros().wrapping_sub(prev.at.as_micros()) as i64,
        );
        put_delta32(out, self.seq, prev.seq.wrapping_add(prev.len));
        put_varint(out, u64::from(self.len));
        for (v, base) in sender(self).into_iter().zip(sender(&prev)) {
            put_delta32(out, v, base);
        }
        if sack {
            put_delta32(out, self.sack.start, self.seq);
            put_delta32(out, self.sack.end, self.sack.start);
        }
        if undos {
            out.push(self.undos);
        }
        cx.0 = *self;
    }

    fn decode(cx: &mut SampleContext, r: &mut Reader<'_>) -> Option<Sample> {
        let prev = cx.0;
        let bits = r.byte()?;
        let kind = match bits & 3 {
            0 => SampleKind::Sent,
            1 => SampleKind::Retransmitted,
            2 => SampleKind::Ack,
            _ => return None,
        };
        let episode = match bits >> 4 & 3 {
            0 => Episode::None,
            1 => Episode::FastRecovery,
            2 => Episode::RtoLoss,
            _ => return None,
        };
        let at = Instant::from_micros(prev.at.as_micros().wrapping_add(r.signed()? as u64));
        let seq = r.delta32(prev.seq.wrapping_add(prev.len))?;
        let len = u32::try_from(r.varint()?).ok()?;
        let mut numbers = sender(&prev);
        for v in &mut numbers {
            *v = r.delta32(*v)?;
        }
        let [wnd, cwnd, ssthresh, flight, srtt_us, rto_us] = numbers;
        let sack = if bits & 1 << 6 != 0 {
            let start = r.delta32(seq)?;
            SackBlock {
                start,
                end: r.delta32(start)?,
            }
        } else {
            SackBlock::NONE
        };
        let undos = if bits & 1 << 7 != 0 {
            r.byte()?
        } else {
            prev.undos
        };
        let s = Sample {
            at,
            kind,
            seq,
            len,
            wnd,
            sack,
            cwnd,
            ssthresh,
            flight,
            srtt_us,
            rto_us,
            ecn: SampleEcn {
                ece: bits & 1 << 2 != 0,
                ce: bits & 1 << 3 != 0,
            },
            episode,
            undos,
        };
        cx.0 = s;
        Some(s)
    }
}

/// The sender's numbers a sample carries, in the order they are packed.
fn sender(s: &Sample) -> [u32; 6] {
    [s.wnd, s.cwnd, s.ssthresh, s.flight, s.srtt_us, s.rto_us]
}

/// A connection's samples. See the module docs.
#[derive(Clone, Debug, Default)]
pub struct Samples {
    /// Packed while the connection is idle, if short (see [`Samples::shrink`]).
    samples: Record<Sample>,
    /// The highest sequence number sent (relative), to tell retransmissions from new data.
    high: u32,
    /// Record every `stride`-th ordinary sample (1 until the first decimation).
    stride: u32,
    skipped: u32,
    /// Reductions undone so far (wrapping), copied into each sample.
    undos: u8,
}

impl Samples {
    /// The samples in order (decoded into a temporary if the record is packed).
    pub fn read(&self) -> Cow<'_, [Sample]> {
        self.samples.items()
    }

    pub fn is_empty(&self) -> bool {
        self.samples.is_empty()
    }

    /// Bytes allocated for samples.
    pub fn heap_bytes(&self) -> usize {
        self.samples.heap_bytes()
    }

    /// Give back the room kept for samples that have not come (an idle connection, see the
    /// module docs): the record keeps what it has and grows again from there. A short
    /// record ([`PACKED_MAX`]) is packed: an echo's 2 samples in 29 bytes instead of
    /// 112 (see `tcp::packed`); the next sample recorded unpacks it.
    pub fn shrink(&mut self) {
        if self.samples.is_packed() {
            return;
        }
        if self.samples.len() <= PACKED_MAX {
            self.samples.pack();
        } else {
            self.samples.live().shrink_to_fit();
        }
    }

    /// A congestion response was undone (it proved spurious): the next sample carries it.
    pub fn on_undo(&mut self) {
        self.undos = self.undos.wrapping_add(1);
    }

    /// A data segment left: `seq` and `len` of its payload, `iss` our ISS.
    pub fn on_sent(&mut self, at: Instant, iss: SeqNum, seq: SeqNum, len: u32, s: &SenderState) {
        if len == 0 {
            return;
        }
        let start = seq.distance_from(iss);
        let end = start.wrapping_add(len);
        let kind = if self.samples.is_empty() || start.wrapping_sub(self.high) as i32 >= 0 {
            SampleKind::Sent
        } else {
            SampleKind::Retransmitted
        };
        if end.wrapping_sub(self.high) as i32 > 0 || self.samples.is_empty() {
            self.high = end;
        }
        let flight = s.flight.max(
            end.wrapping_sub(s.una.distance_from(iss))
                .min(i32::MAX as u32),
        );
        self.push(Sample {
            at,
            kind,
            seq: start,
            len,
            wnd: s.wnd,
            sack: SackBlock::NONE,
            cwnd: s.cwnd,
            ssthresh: s.ssthresh,
            flight,
            srtt_us: s.srtt_us,
            rto_us: s.rto_us,
            ecn: SampleEcn::default(),
            episode: s.episode,
            undos: self.undos,
        });
    }

    /// An ACK was processed (with what it said about congestion, `ecn`); recorded only once
    /// data has been sent.
    pub fn on_ack(
        &mut self,
        at: Instant,
        iss: SeqNum,
        sack: Option<(SeqNum, SeqNum)>,
        s: &SenderState,
        ecn: SampleEcn,
    ) {
        if self.samples.is_empty() {
            return;
        }
        self.push(Sample {
            at,
            kind: SampleKind::Ack,
            seq: s.una.distance_from(iss),
            len: 0,
            wnd: s.wnd,
            sack: SackBlock::new(sack.map(|(a, b)| (a.distance_from(iss), b.distance_from(iss)))),
            cwnd: s.cwnd,
            ssthresh: s.ssthresh,
            flight: s.flight,
            srtt_us: s.srtt_us,
            rto_us: s.rto_us,
            ecn,
            episode: s.episode,
            undos: self.undos,
        });
    }

    fn push(&mut self, sample: Sample) {
        // A packed record is unpacked with room for what it held, and grows from there.
        let samples = self.samples.live();
        if samples.capacity() == 0 {
            samples.reserve_exact(FIRST);
            self.stride = 1;
        }
        // Retransmissions and ECN marks are kept whatever the stride: they are the events.
        if sample.kind != SampleKind::Retransmitted && sample.ecn == SampleEcn::default() {
            self.skipped += 1;
            if self.skipped < self.stride {
                return;
            }
            self.skipped = 0;
        }
        if samples.len() == CAPACITY {
            self.decimate();
        }
        let samples = self.samples.live();
        if samples.len() == samples.capacity() {
            let grow = samples.capacity().min(CAPACITY - samples.len());
            samples.reserve_exact(grow);
        }
        samples.push(sample);
    }

    /// Halve the record: keep every retransmission and every other other sample.
    fn decimate(&mut self) {
        let samples = self.samples.live();
        let mut i = 0usize;
        samples.retain(|s| {
            i += 1;
            s.kind == SampleKind::Retransmitted || i.is_multiple_of(2)
        });
        if samples.len() > CAPACITY * 3 / 4 {
            // Mostly retransmissions: drop every other one of everything.
            let mut j = 0usize;
            samples.retain(|_| {
                j += 1;
                j.is_multiple_of(2)
            });
        }
        self.stride = self.stride.saturating_mul(2);
    }
}

#[cfg(test)]
mod tests {
    use super::super::packed::edgy32;
    use super::*;
    use proptest::prelude::*;

    const ISS: SeqNum = SeqNum::new(u32::MAX - 10);

    fn state(una: u32) -> SenderState {
        SenderState {
            una: ISS.add(una),
            wnd: 65535,
            cwnd: 14600,
            ssthresh: u32::MAX,
            flight: 0,
            srtt_us: 1000,
            rto_us: 200_000,
            ..SenderState::default()
        }
    }

    /// The room a live record has (a packed one has none).
    fn room(s: &Samples) -> usize {
        match &s.samples {
            Record::Live(v) => v.capacity(),
            Record::Packed(_) => 0,
        }
    }

    #[test]
    fn nothing_is_allocated_before_data_is_sent() {
        let mut s = Samples::default();
        s.on_ack(Instant::ZERO, ISS, None, &state(1), SampleEcn::default());
        s.on_sent(Instant::ZERO, ISS, ISS.add(1), 0, &state(1));
        assert!(s.is_empty());
        assert_eq!(room(&s), 0);
        s.on_sent(Instant::ZERO, ISS, ISS.add(1), 100, &state(1));
        assert_eq!(room(&s), FIRST);
        s.on_ack(
            Instant::ZERO,
            ISS,
            Some((ISS.add(201), ISS.add(301))),
            &state(101),
            SampleEcn::default(),
        );
        let got = s.read();
        assert_eq!(got[0].kind, SampleKind::Sent);
        assert_eq!((got[0].seq, got[0].len, got[0].flight), (1, 100, 100));
        assert_eq!(got[1].kind, SampleKind::Ack);
        assert_eq!((got[1].seq, got[1].sack.get()), (101, Some((201, 301))));
    }

    #[test]
    fn an_idle_record_gives_back_its_room_and_grows_again_to_the_bound() {
        let mut s = Samples::default();
        s.shrink();
        assert_eq!(s.heap_bytes(), 0, "nothing to give back before data");
        s.on_sent(Instant::ZERO, ISS, ISS.add(1), 6, &state(1));
        s.on_ack(Instant::ZERO, ISS, None, &state(7), SampleEcn::default());
        assert_eq!(room(&s), FIRST);
        // The echo is acknowledged, the connection idles: 2 samples, packed (112 bytes as
        // they were).
        let echo = s.read().into_owned();
        s.shrink();
        assert!(s.samples.is_packed());
        assert!(s.heap_bytes() <= 40, "{} bytes", s.heap_bytes());
        assert_eq!(*s.read(), *echo);
        // Busy again: the record doubles from what it kept, and a long transfer is bounded
        // and decimated exactly as in a record that never shrank.
        let mut never = Samples::default();
        never.on_sent(Instant::ZERO, ISS, ISS.add(1), 6, &state(1));
        never.on_ack(Instant::ZERO, ISS, None, &state(7), SampleEcn::default());
        for i in 0..100_000u32 {
            let t = Instant::from_micros(u64::from(i) * 100);
            let seq = 7 + 1000 * i;
            s.on_sent(t, ISS, ISS.add(seq), 1000, &state(seq));
            never.on_sent(t, ISS, ISS.add(seq), 1000, &state(seq));
            if i == 0 {
                assert_eq!(room(&s), 4, "doubled from 2");
            }
            if i == 3 || i == 50_000 {
                // Shrunk part full (packed), and after decimations (too long to pack: no
                // room to spare; the stride is kept).
                s.shrink();
                match &s.samples {
                    Record::Packed(_) => assert!(i == 3 && s.samples.len() <= PACKED_MAX),
                    Record::Live(v) => assert_eq!((i, v.capacity()), (50_000, v.len())),
                }
            }
            assert!(room(&s) <= CAPACITY, "{}", room(&s));
        }
        assert!(s.stride > 1);
        assert_eq!(s.stride, never.stride);
        assert_eq!(s.read(), never.read());
        assert!(s.read().len() > CAPACITY / 4);
    }

    #[test]
    fn a_sample_is_56_bytes_and_an_empty_sack_block_is_none() {
        assert_eq!(std::mem::size_of::<Sample>(), 56);
        assert_eq!(SackBlock::new(Some((5, 9))).get(), Some((5, 9)));
        assert_eq!(SackBlock::new(None).get(), None);
        assert_eq!(SackBlock::new(Some((5, 5))).get(), None);
        // Wrapping blocks are blocks.
        assert_eq!(
            SackBlock::new(Some((u32::MAX - 1, 3))).get(),
            Some((u32::MAX - 1, 3))
        );
    }

    #[test]
    fn data_below_the_highest_sent_is_a_retransmission_across_the_wrap() {
        let mut s = Samples::default();
        for i in 0..4 {
            s.on_sent(Instant::ZERO, ISS, ISS.add(1 + 100 * i), 100, &state(1));
        }
        s.on_sent(Instant::ZERO, ISS, ISS.add(101), 100, &state(1));
        let kinds: Vec<SampleKind> = s.read().iter().map(|x| x.kind).collect();
        assert_eq!(kinds[..4], [SampleKind::Sent; 4]);
        assert_eq!(kinds[4], SampleKind::Retransmitted);
    }

    #[test]
    fn a_long_transfer_stays_bounded_and_keeps_its_retransmissions() {
        let mut s = Samples::default();
        for i in 0..100_000u32 {
            let t = Instant::from_micros(u64::from(i) * 100);
            s.on_sent(t, ISS, ISS.add(1 + 1000 * i), 1000, &state(1 + 1000 * i));
            if i == 50_000 {
                s.on_sent(t, ISS, ISS.add(1), 1000, &state(1));
            }
        }
        let got = s.read();
        assert!(
            got.len() <= CAPACITY && got.len() > CAPACITY / 4,
            "{}",
            got.len()
        );
        assert!(room(&s) <= CAPACITY);
        assert_eq!(
            got.iter()
                .filter(|x| x.kind == SampleKind::Retransmitted)
                .count(),
            1
        );
        // Evenly spread over the whole transfer, in order.
        assert!(got.first().unwrap().at < Instant::from_micros(1_000_000));
        assert!(got.last().unwrap().at > Instant::from_micros(9_000_000));
        assert!(got.windows(2).all(|w| w[0].at <= w[1].at));
    }

    fn sample() -> impl Strategy<Value = Sample> {
        (
            (
                prop_oneof![any::<u64>(), Just(0), Just(u64::MAX), 0u64..10_000_000],
                proptest::sample::select(vec![
                    SampleKind::Sent,
                    SampleKind::Retransmitted,
                    SampleKind::Ack,
                ]),
                edgy32(),
                edgy32(),
                edgy32(),
                (edgy32(), edgy32()),
            ),
            (
                [edgy32(), edgy32(), edgy32(), edgy32(), edgy32()],
                any::<(bool, bool)>(),
                proptest::sample::select(vec![
                    Episode::None,
                    Episode::FastRecovery,
                    Episode::RtoLoss,
                ]),
                any::<u8>(),
            ),
        )
            .prop_map(
                |(
                    (at, kind, seq, len, wnd, (start, end)),
                    ([cwnd, ssthresh, flight, srtt_us, rto_us], (ece, ce), episode, undos),
                )| Sample {
                    at: Instant::from_micros(at),
                    kind,
                    seq,
                    len,
                    wnd,
                    sack: SackBlock { start, end },
                    cwnd,
                    ssthresh,
                    flight,
                    srtt_us,
                    rto_us,
                    ecn: SampleEcn { ece, ce },
                    episode,
                    undos,
                },
            )
    }

    #[derive(Clone, Debug)]
    enum Op {
        Sent(u64, u32, u32, u32),
        Ack(u64, u32, Option<(u32, u32)>, bool),
        Undo,
        Idle,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => (0u64..1_000_000, edgy32(), 0u32..2000, edgy32())
                .prop_map(|(at, seq, len, una)| Op::Sent(at, seq, len, una)),
            4 => (0u64..1_000_000, edgy32(), any::<Option<(u32, u32)>>(), any::<bool>())
                .prop_map(|(at, una, sack, ece)| Op::Ack(at, una, sack, ece)),
            1 => Just(Op::Undo),
            2 => Just(Op::Idle),
        ]
    }

    /// Everything a record holds, its samples decoded.
    fn whole(s: &Samples) -> String {
        format!(
            "{:?} {} {} {} {}",
            s.read(),
            s.high,
            s.stride,
            s.skipped,
            s.undos
        )
    }

    proptest! {
        #[test]
        fn packed_samples_read_back_as_they_were(
            samples in proptest::collection::vec(sample(), 0..40),
        ) {
            super::super::packed::round_trip(samples);
        }

        #[test]
        fn a_record_packed_while_idle_is_the_record_that_never_was(
            ops in proptest::collection::vec(op(), 0..200),
        ) {
            // Up to 200 samples: past what is packed (`PACKED_MAX`) too.
            let apply = |s: &mut Samples, op: &Op| {
                match *op {
                    Op::Sent(at, seq, len, una) => s.on_sent(
                        Instant::from_micros(at), ISS, ISS.add(seq), len, &state(una),
                    ),
                    Op::Ack(at, una, sack, ece) => s.on_ack(
                        Instant::from_micros(at),
                        ISS,
                        sack.map(|(a, b)| (ISS.add(a), ISS.add(b))),
                        &state(una),
                        SampleEcn { ece, ce: false },
                    ),
                    Op::Undo => s.on_undo(),
                    Op::Idle => return true,
                }
                false
            };
            super::super::packed::idle_is_never(
                Samples::default(), &ops, apply, Samples::shrink, whole, Samples::heap_bytes,
            );
        }
    }
}
