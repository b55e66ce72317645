//! Selective acknowledgment (RFC 2018) on both sides, and the sender's scoreboard for
//! SACK-based loss recovery (RFC 6675). Fixed-size storage, no allocation, no panics on any
//! peer-supplied block.
//!
//! # Wiring into `Connection`
//!
//! Both halves are used only when SACK-permitted was negotiated (RFC 2018 §2).
//!
//! Receiver ([`SackReceiver`]): after `Reassembly::insert` of an out-of-order segment, call
//! [`SackReceiver::on_out_of_order`] with `outcome.block`. When building any ACK, call
//! [`SackReceiver::blocks`]`(rcv.nxt, &reasm, max_blocks(timestamps))` and emit the returned
//! blocks, in order, as the SACK option (kind 5). An empty list means no SACK option.
//!
//! Sender ([`Scoreboard`]): on every acceptable ACK, after SND.UNA has been advanced, call
//! [`Scoreboard::on_sack`]`(snd.una, snd.nxt, &blocks)` with the segment's SACK blocks (this is
//! RFC 6675's `Update()`, and also discards what SND.UNA now covers). Recovery, per RFC 6675 §5:
//! - enter it when DupAcks ≥ 3 (a duplicate ACK being one whose SACK information reports new
//!   data, `SackUpdate::newly_sacked > 0`) or [`Scoreboard::is_lost`]`(snd.una, smss)`, and
//!   only if SND.UNA is past the previous RecoveryPoint; then `RecoveryPoint = SND.NXT`,
//!   [`Scoreboard::start_recovery`]`(snd.una)`, the congestion controller's
//!   `enter_recovery(.., sack = true)`, and retransmit the first segment;
//! - while in recovery, on each ACK: `while cwnd − pipe ≥ SMSS` ask
//!   [`Scoreboard::next_seg`]; send what it names; after a retransmission call
//!   [`Scoreboard::on_retransmit`]; recompute [`Scoreboard::pipe`] after each send;
//! - leave recovery when SND.UNA ≥ RecoveryPoint.
//!
//! On a retransmission timeout, RFC 2018 §8 says the sender must not rely on SACKed data
//! still being held (the receiver may renege): call [`Scoreboard::clear`].

use super::SeqNum;
use super::assembler::Reassembly;

/// The most SACK blocks one option can carry (RFC 2018 §3: 40 bytes of options, 2 + 8·n).
pub const MAX_SACK_BLOCKS: usize = 4;

/// How many SACK blocks fit beside the other options: 3 with timestamps (10 bytes + padding),
/// 4 without (RFC 2018 §3).
pub const fn max_blocks(timestamps: bool) -> usize {
    if timestamps { 3 } else { MAX_SACK_BLOCKS }
}

/// A list of SACK blocks `[left, right)`, most important first.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SackBlocks {
    blocks: [(SeqNum, SeqNum); MAX_SACK_BLOCKS],
    len: usize,
}

impl SackBlocks {
    pub fn as_slice(&self) -> &[(SeqNum, SeqNum)] {
        self.blocks.get(..self.len).unwrap_or(&[])
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn len(&self) -> usize {
        self.len
    }

    fn push(&mut self, b: (SeqNum, SeqNum)) -> bool {
        match self.blocks.get_mut(self.len) {
            Some(slot) => {
                *slot = b;
                self.len += 1;
                true
            }
            None => false,
        }
    }

    fn contains_overlap(&self, b: (SeqNum, SeqNum)) -> bool {
        self.as_slice().iter().any(|&x| overlaps(x, b))
    }
}

/// `[a.0, a.1)` and `[b.0, b.1)` share at least one sequence number.
fn overlaps(a: (SeqNum, SeqNum), b: (SeqNum, SeqNum)) -> bool {
    a.0.lt(b.1) && b.0.lt(a.1)
}

/// The data receiver's choice of SACK blocks (RFC 2018 §4), and of D-SACK blocks
/// (RFC 2883).
#[derive(Clone, Copy, Debug, Default)]
pub struct SackReceiver {
    /// The blocks most recently reported, most recent first.
    recent: SackBlocks,
    /// RFC 2883: a duplicate segment's range, to report first in the next ACK, once.
    dsack: Option<(SeqNum, SeqNum)>,
}

impl SackReceiver {
    pub fn new() -> Self {
        SackReceiver::default()
    }
}

static NO_SACK_RECEIVED: std::sync::LazyLock<SackReceiver> =
    std::sync::LazyLock::new(SackReceiver::default);

/// Issue 23: a connection allocates its SACK receiver with its first out-of-order or
/// duplicate segment ([`super::lazy::Lazy`]), and frees it once the queue is empty and no
/// D-SACK waits. The blocks it last reported then describe data below RCV.NXT, which
/// [`SackReceiver::blocks`] never reports again: forgetting them changes nothing.
impl super::lazy::Empty for SackReceiver {
    fn empty() -> &'static Self {
        &NO_SACK_RECEIVED
    }
    fn is_empty_state(&self) -> bool {
        self.dsack.is_none()
    }
}

impl SackReceiver {
    /// An out-of-order segment arrived and now lies in the queued block `block`.
    /// RFC 2018 §4: "The first SACK block ... MUST specify the contiguous block of data
    /// containing the segment which triggered this ACK".
    pub fn on_out_of_order(&mut self, block: (SeqNum, SeqNum)) {
        let mut next = SackBlocks::default();
        next.push(block);
        // The block may have absorbed older ones (the queue merges): keep only the others.
        for &b in self.recent.as_slice() {
            if !overlaps(b, block) && !next.contains_overlap(b) {
                next.push(b);
            }
        }
        self.recent = next;
    }

    /// RFC 2883 §4: a duplicate segment arrived; `[left, right)` is the part of it we held
    /// already (below RCV.NXT, or in the out-of-order queue). The next ACK reports it first,
    /// as a D-SACK block, and only that ACK (§4: "each duplicate contiguous sequence of data
    /// received is reported in at most one D-SACK block"). A second duplicate before that ACK
    /// replaces the first, as Linux's `tcp_dsack_set` does when the two are not adjacent.
    pub fn on_duplicate(&mut self, block: (SeqNum, SeqNum)) {
        if block.0.lt(block.1) {
            self.dsack = Some(match self.dsack {
                // Adjacent or overlapping: one block (Linux's `tcp_dsack_extend`).
                Some(d) if d.0.le(block.1) && block.0.le(d.1) => {
                    (d.0.min(block.0), d.1.max(block.1))
                }
                _ => block,
            });
        }
    }

    /// A D-SACK block waits for the next ACK.
    pub fn dsack_pending(&self) -> bool {
        self.dsack.is_some()
    }

    /// The blocks to put in the next ACK, at most `max_blocks`: a pending D-SACK block first
    /// (RFC 2883 §4), then the SACK blocks of [`SackReceiver::sack_blocks`]; when the
    /// duplicate lies in the out-of-order queue, the queued block containing it comes second
    /// (§4: "the second SACK block ... should specify that (possibly larger) block").
    pub fn blocks(&mut self, rcv_nxt: SeqNum, queue: &Reassembly, max_blocks: usize) -> SackBlocks {
        let max = max_blocks.min(MAX_SACK_BLOCKS);
        let Some(d) = self.dsack.take().filter(|_| max > 0) else {
            return self.sack_blocks(rcv_nxt, queue, max);
        };
        // The duplicate is the segment that triggered this ACK: its queued block is the most
        // recent one (RFC 2018 §4), so it leads the SACK blocks.
        if let Some(containing) = queue.ranges().find(|&r| overlaps(r, d)) {
            self.on_out_of_order(containing);
        }
        let sack = self.sack_blocks(rcv_nxt, queue, max - 1);
        let mut out = SackBlocks::default();
        out.push(d);
        for &b in sack.as_slice() {
            out.push(b);
        }
        out
    }

    /// The SACK blocks to put in the next ACK, at most `max_blocks`.
    ///
    /// RFC 2018 §4: the first block is the one holding the most recent out-of-order segment;
    /// then "the most recently reported SACK blocks ... that are not subsets of a SACK block
    /// already included"; each block reflects the queue as it is now ("SACK blocks MUST
    /// reflect ... the data receiver's queue") and none covers RCV.NXT or below. Remaining
    /// slots are filled with other queued blocks, highest first, so that as much as possible
    /// of the queue is reported ("as many distinct SACK blocks as possible").
    fn sack_blocks(
        &mut self,
        rcv_nxt: SeqNum,
        queue: &Reassembly,
        max_blocks: usize,
    ) -> SackBlocks {
        let max = max_blocks.min(MAX_SACK_BLOCKS);
        let mut out = SackBlocks::default();
        let live = |b: (SeqNum, SeqNum)| rcv_nxt.lt(b.0) && b.0.lt(b.1);
        for &old in self.recent.as_slice() {
            if out.len >= max {
                break;
            }
            // The queue's current block covering this one (it may have grown by merging, or
            // been delivered once RCV.NXT reached it).
            if let Some(cur) = queue.ranges().find(|&r| overlaps(r, old))
                && live(cur)
                && !out.contains_overlap(cur)
            {
                out.push(cur);
            }
        }
        let mut others = [(SeqNum::new(0), SeqNum::new(0)); 32];
        let mut n = 0;
        for r in queue.ranges() {
            if let Some(slot) = others.get_mut(n) {
                *slot = r;
                n += 1;
            }
        }
        for &r in others.get(..n).unwrap_or(&[]).iter().rev() {
            if out.len >= max {
                break;
            }
            if live(r) && !out.contains_overlap(r) {
                out.push(r);
            }
        }
        self.recent = out;
        out
    }

    /// Forget the SACK blocks (the queue was emptied); a pending D-SACK stays.
    pub fn clear(&mut self) {
        self.recent = SackBlocks::default();
    }
}

/// RFC 6675 §2: DupThresh, the number of duplicate ACKs (or SACKed segments) that signal loss.
pub const DUP_THRESH: u32 = 3;
/// The scoreboard's range table starts with room for this many ranges...
pub const INITIAL_SCOREBOARD_RANGES: usize = 32;
/// ...and doubles, up to this many. Issue 19: with 32 at most, slow start's overflow of a
/// drop-tail queue (every other segment lost) filled the table, every range SACKed above it
/// was refused, and for a round trip nothing counted as delivered: PRR sent nothing while
/// the receiver SACKed 227 segments, then released them all in one burst when SND.UNA moved,
/// into the still-full queue. Linux keeps no such table (SACK marks live on the skbs).
/// 1,024 ranges (8 KiB, held only while something is SACKed) cover every other segment of a
/// 2,048-segment flight.
pub const MAX_SCOREBOARD_RANGES: usize = 1024;

/// What one ACK's SACK blocks changed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SackUpdate {
    /// Bytes SACKed for the first time.
    pub newly_sacked: u32,
    /// The first block was a D-SACK (RFC 2883 §4): a report of duplicate data.
    pub dsack: bool,
    /// Its left edge.
    pub dsack_left: Option<SeqNum>,
    /// Blocks ignored as invalid (empty, reversed, outside SND.UNA..SND.NXT).
    pub invalid: u32,
    /// Valid blocks that could not be recorded because the table was full.
    pub overflow: u32,
}

/// RFC 6675 §5 NextSeg(): what to send next during SACK-based recovery.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NextSeg {
    /// Retransmit `len` bytes at `seq` (rule 1: a lost hole; rule 3: another hole below the
    /// highest SACKed byte).
    Retransmit { seq: SeqNum, len: u32 },
    /// Send new data (rule 2): the caller said some is available and the window allows it.
    NewData,
    /// Rule 4, the rescue retransmission: `len` bytes at `seq` ending at the highest
    /// unSACKed octet, once per recovery, when nothing else may be sent (the caller then
    /// calls [`Scoreboard::on_rescue`]; HighRxt does not move).
    Rescue { seq: SeqNum, len: u32 },
    /// Nothing to send.
    Nothing,
}

/// The data sender's record of SACKed ranges between SND.UNA and SND.NXT (RFC 6675 §3).
#[derive(Clone, Debug)]
pub struct Scoreboard {
    /// Sorted, disjoint, non-adjacent `[left, right)` ranges, all at or above SND.UNA.
    /// [`INITIAL_SCOREBOARD_RANGES`] slots, allocated on the first SACK block (a connection
    /// that never sees loss holds none), doubled when full up to [`MAX_SCOREBOARD_RANGES`].
    /// (A boxed slice, not a `Vec`: all or nothing, and 8 bytes fewer in every connection.)
    ranges: Box<[(SeqNum, SeqNum)]>,
    len: usize,
    /// HighRxt + 1: the end of what was retransmitted in this recovery (RFC 6675 §2);
    /// `None` outside recovery.
    rxt_end: Option<SeqNum>,
    /// RFC 6675 §4 rule 4: the rescue retransmission of this recovery has been sent
    /// (RescueRxt ≥ RecoveryPoint).
    rescued: bool,
}

impl Default for Scoreboard {
    fn default() -> Self {
        Scoreboard::new()
    }
}

static NOTHING_SACKED: std::sync::LazyLock<Scoreboard> = std::sync::LazyLock::new(Scoreboard::new);

/// Issue 23: a connection allocates its scoreboard with the first SACK block or recovery
/// ([`super::lazy::Lazy`]) and frees it when nothing is SACKed and no recovery is under way.
impl super::lazy::Empty for Scoreboard {
    fn empty() -> &'static Self {
        &NOTHING_SACKED
    }
    fn is_empty_state(&self) -> bool {
        // (`rescued` is read only in a recovery, which `start_recovery` begins afresh.)
        self.len == 0 && self.rxt_end.is_none()
    }
}

impl Scoreboard {
    pub fn new() -> Self {
        Scoreboard {
            ranges: Box::default(),
            len: 0,
            rxt_end: None,
            rescued: false,
        }
    }

    fn active(&self) -> &[(SeqNum, SeqNum)] {
        self.ranges.get(..self.len).unwrap_or(&[])
    }

    /// The SACKed ranges, in sequence order.
    pub fn ranges(&self) -> impl Iterator<Item = (SeqNum, SeqNum)> + '_ {
        self.active().iter().copied()
    }

    /// Nothing is SACKed.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Forget every SACKed range (after an RTO: RFC 2018 §8, the receiver may renege).
    pub fn clear(&mut self) {
        self.len = 0;
        self.rxt_end = None;
    }

    /// Give the range table's memory back while nothing is SACKed.
    pub fn release(&mut self) {
        if self.len == 0 && !self.ranges.is_empty() {
            self.ranges = Box::default();
        }
    }

    /// RFC 6675 Update(): record the SACK blocks of one ACK. Call after SND.UNA has been
    /// advanced by that ACK. Invalid blocks are ignored and counted, never trusted.
    pub fn on_sack(
        &mut self,
        snd_una: SeqNum,
        snd_nxt: SeqNum,
        blocks: &[(SeqNum, SeqNum)],
    ) -> SackUpdate {
        self.on_ack(snd_una);
        let mut up = SackUpdate::default();
        let flight = snd_nxt.distance_from(snd_una);
        // RFC 2883 §4: a D-SACK is the first block, below the cumulative ACK or inside the
        // second block.
        if let Some(&(l, r)) = blocks.first() {
            let inside_second = blocks
                .get(1)
                .is_some_and(|&(l2, r2)| l2.le(l) && r.le(r2) && l.lt(r));
            up.dsack = (l.lt(r) && r.le(snd_una)) || inside_second;
            up.dsack_left = up.dsack.then_some(l);
        }
        for (i, &(l, r)) in blocks.iter().enumerate() {
            if i == 0 && up.dsack && r.le(snd_una) {
                continue;
            }
            // Valid: SND.UNA =< left < right =< SND.NXT (RFC 6675 §2 / RFC 2018 §3).
            let off_l = l.distance_from(snd_una);
            let off_r = r.distance_from(snd_una);
            if !(off_l < off_r && off_r <= flight && flight < 1 << 31) {
                up.invalid += 1;
                continue;
            }
            match self.insert((l, r)) {
                Some(n) => up.newly_sacked += n,
                None => up.overflow += 1,
            }
        }
        up
    }

    /// Discard everything below the new SND.UNA (a cumulative ACK).
    pub fn on_ack(&mut self, snd_una: SeqNum) {
        let mut w = 0;
        for i in 0..self.len {
            let Some(&(l, r)) = self.ranges.get(i) else {
                break;
            };
            if r.le(snd_una) {
                continue;
            }
            if let Some(slot) = self.ranges.get_mut(w) {
                *slot = (l.max(snd_una), r);
            }
            w += 1;
        }
        self.len = w;
        // A retransmission mark below SND.UNA means nothing any more.
        if let Some(r) = self.rxt_end.as_mut()
            && r.lt(snd_una)
        {
            *r = snd_una;
        }
    }

    /// Merge one valid range in; returns the bytes newly covered, or `None` if the table was
    /// full and the range touched none already held.
    fn insert(&mut self, (l, r): (SeqNum, SeqNum)) -> Option<u32> {
        let active = self.active();
        let first = active.partition_point(|&(_, e)| e.lt(l));
        let last = active.partition_point(|&(s, _)| s.le(r));
        if first == last {
            if self.len >= self.ranges.len() {
                let room = (self.ranges.len() * 2).max(INITIAL_SCOREBOARD_RANGES);
                if room > MAX_SCOREBOARD_RANGES {
                    return None;
                }
                // Full: every slot holds a range, so the copy is the ranges, then room.
                let mut grown = self.ranges.to_vec();
                grown.resize(room, (SeqNum::new(0), SeqNum::new(0)));
                self.ranges = grown.into_boxed_slice();
            }
            let tail = self.ranges.get_mut(first..=self.len)?;
            tail.rotate_right(1);
            *tail.first_mut()? = (l, r);
            self.len += 1;
            return Some(r.distance_from(l));
        }
        let run = self.ranges.get(first..last)?;
        let before: u32 = run.iter().map(|&(s, e)| e.distance_from(s)).sum();
        let new_l = l.min(run.first()?.0);
        let new_r = r.max(run.last()?.1);
        *self.ranges.get_mut(first)? = (new_l, new_r);
        let removed = last - first - 1;
        if let Some(tail) = self.ranges.get_mut(first + 1..self.len) {
            tail.rotate_left(removed);
        }
        self.len -= removed;
        Some(new_r.distance_from(new_l).saturating_sub(before))
    }

    /// All of `[l, r)` has been SACKed.
    pub fn covers(&self, l: SeqNum, r: SeqNum) -> bool {
        self.active().iter().any(|&(a, b)| a.le(l) && r.le(b))
    }

    /// `seq` has been SACKed.
    pub fn is_sacked(&self, seq: SeqNum) -> bool {
        self.active().iter().any(|&(l, r)| seq.in_range(l, r))
    }

    /// Bytes SACKed above SND.UNA.
    pub fn sacked_bytes(&self) -> u32 {
        self.active()
            .iter()
            .map(|&(l, r)| r.distance_from(l))
            .fold(0u32, u32::saturating_add)
    }

    /// The end of the highest SACKed range (one past the highest SACKed octet).
    pub fn high_sacked(&self) -> Option<SeqNum> {
        self.active().last().map(|&(_, r)| r)
    }

    /// RFC 6675 §4 IsLost(SeqNum): true when DupThresh discontiguous SACKed segments lie
    /// above `seq`, or more than (DupThresh − 1)·SMSS bytes above it have been SACKed.
    /// A SACKed range counts as one segment per SMSS (rounded up).
    pub fn is_lost(&self, seq: SeqNum, smss: u32) -> bool {
        let smss = smss.max(1);
        let (mut bytes, mut segs) = (0u32, 0u32);
        for &(l, r) in self.active() {
            let from = if seq.lt(l) {
                l
            } else if seq.lt(r) {
                seq.add(1)
            } else {
                continue;
            };
            let n = r.distance_from(from);
            bytes = bytes.saturating_add(n);
            segs = segs.saturating_add(n.div_ceil(smss));
        }
        segs >= DUP_THRESH || bytes > (DUP_THRESH - 1).saturating_mul(smss)
    }

    /// The holes `[start, end)` between SND.UNA and SND.NXT that are not SACKed, in order.
    /// A hole is lost or not as a whole (the SACKed data above every octet of it is the same).
    fn holes(
        &self,
        snd_una: SeqNum,
        snd_nxt: SeqNum,
    ) -> impl Iterator<Item = (SeqNum, SeqNum)> + '_ {
        let ranges = &self.ranges;
        let len = self.len;
        let mut cursor = snd_una;
        let mut i = 0;
        std::iter::from_fn(move || {
            while i <= len {
                let (l, r) = if i < len {
                    ranges.get(i).copied().unwrap_or((snd_nxt, snd_nxt))
                } else {
                    (snd_nxt, snd_nxt)
                };
                i += 1;
                let hole = (cursor, l.min(snd_nxt));
                cursor = cursor.max(r);
                if hole.0.lt(hole.1) {
                    return Some(hole);
                }
            }
            None
        })
    }

    /// The bytes between SND.UNA and SND.NXT that are neither SACKed nor in flight by
    /// RFC 6675's IsLost(), for `status --info`.
    pub fn lost_bytes(&self, snd_una: SeqNum, snd_nxt: SeqNum, smss: u32) -> u32 {
        self.holes(snd_una, snd_nxt)
            .filter(|&(a, _)| self.is_lost(a, smss))
            .map(|(a, b)| b.distance_from(a))
            .fold(0u32, u32::saturating_add)
    }

    /// RFC 6675 §4 SetPipe(): an estimate of the bytes in flight. Every octet between SND.UNA
    /// and SND.NXT that is not SACKed counts once unless IsLost(), and once more if it was
    /// retransmitted in this recovery (at or below HighRxt).
    pub fn pipe(&self, snd_una: SeqNum, snd_nxt: SeqNum, smss: u32) -> u32 {
        let rxt_end = self
            .rxt_end
            .map_or(snd_una, |r| r.max(snd_una).min(snd_nxt));
        let mut pipe = 0u32;
        for (a, b) in self.holes(snd_una, snd_nxt) {
            if !self.is_lost(a, smss) {
                pipe = pipe.saturating_add(b.distance_from(a));
            }
            if a.lt(rxt_end) {
                pipe = pipe.saturating_add(rxt_end.min(b).distance_from(a));
            }
        }
        pipe
    }

    /// RFC 6675 §5 step 4: recovery starts; nothing has been retransmitted yet
    /// (HighRxt = SND.UNA − 1).
    pub fn start_recovery(&mut self, snd_una: SeqNum) {
        self.rxt_end = Some(snd_una);
        self.rescued = false;
    }

    /// RFC 6675 §4 rule 4: the rescue retransmission went out (HighRxt is not updated).
    pub fn on_rescue(&mut self) {
        self.rescued = true;
    }

    /// Recovery is over: forget HighRxt.
    pub fn end_recovery(&mut self) {
        self.rxt_end = None;
    }

    /// Record a retransmission of `len` bytes at `seq` (advances HighRxt).
    pub fn on_retransmit(&mut self, seq: SeqNum, len: u32) {
        let end = seq.add(len);
        self.rxt_end = Some(self.rxt_end.map_or(end, |r| r.max(end)));
    }

    /// RFC 6675 §4 NextSeg(). `new_data_ok`: unsent data is available and the peer's window
    /// allows it (rule 2).
    pub fn next_seg(
        &self,
        snd_una: SeqNum,
        snd_nxt: SeqNum,
        smss: u32,
        new_data_ok: bool,
    ) -> NextSeg {
        let smss = smss.max(1);
        let Some(high) = self.high_sacked() else {
            return if new_data_ok {
                NextSeg::NewData
            } else {
                NextSeg::Nothing
            };
        };
        let rxt_end = self.rxt_end.map_or(snd_una, |r| r.max(snd_una));
        // (1.a) S2 > HighRxt and (1.b) S2 < the highest SACKed octet: the candidate part of
        // each hole.
        let candidates = self.holes(snd_una, snd_nxt).filter_map(|(a, b)| {
            let start = a.max(rxt_end);
            let end = b.min(high);
            start.lt(end).then_some((start, end))
        });
        let mut rule3 = None;
        for (start, end) in candidates {
            let seg = NextSeg::Retransmit {
                seq: start,
                len: end.distance_from(start).min(smss),
            };
            // (1.c) IsLost(S2).
            if self.is_lost(start, smss) {
                return seg;
            }
            rule3.get_or_insert(seg);
        }
        if new_data_ok {
            return NextSeg::NewData;
        }
        rule3.unwrap_or_else(|| self.rescue(snd_una, snd_nxt, smss))
    }

    /// RFC 6675 §4 rule 4: "If the conditions for rules (1), (2), and (3) fail, but there
    /// exists an unSACKed sequence number S3 such that S3 > HighRxt [and RescueRxt <
    /// RecoveryPoint], then one segment of up to SMSS octets that MUST include the highest
    /// outstanding unSACKed sequence number SHOULD be returned". It saves an RTO when the
    /// tail of the window is lost and no new data can follow it.
    fn rescue(&self, snd_una: SeqNum, snd_nxt: SeqNum, smss: u32) -> NextSeg {
        let Some(rxt_end) = self.rxt_end.filter(|_| !self.rescued) else {
            return NextSeg::Nothing;
        };
        match self.holes(snd_una, snd_nxt).last() {
            Some((a, b)) if rxt_end.lt(b) => {
                let start = a.max(rxt_end).max(b.sub(smss));
                NextSeg::Rescue {
                    seq: start,
                    len: b.distance_from(start),
                }
            }
            _ => NextSeg::Nothing,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const MSS: u32 = 1000;
    const BASE: u32 = u32::MAX - 5_000; // cross the wrap

    fn s(off: u32) -> SeqNum {
        SeqNum::new(BASE).add(off)
    }

    fn blk(l: u32, r: u32) -> (SeqNum, SeqNum) {
        (s(l), s(r))
    }

    fn rtx(off: u32, len: u32) -> NextSeg {
        NextSeg::Retransmit { seq: s(off), len }
    }

    // ----- receiver -----

    #[test]
    fn the_most_recent_block_comes_first_then_the_most_recently_reported() {
        let mut q = Reassembly::new(100_000, 32);
        let mut rx = SackReceiver::new();
        for off in [2000, 6000, 4000] {
            let out = q.insert(s(0), s(off), &[0; 1000]);
            rx.on_out_of_order(out.block.unwrap());
        }
        let b = rx.blocks(s(0), &q, 4);
        assert_eq!(
            b.as_slice(),
            &[blk(4000, 5000), blk(6000, 7000), blk(2000, 3000)]
        );
        // A new segment extends the oldest block: it moves to the front.
        let out = q.insert(s(0), s(3000), &[0; 500]);
        rx.on_out_of_order(out.block.unwrap());
        let b = rx.blocks(s(0), &q, 4);
        assert_eq!(
            b.as_slice(),
            &[blk(2000, 3500), blk(4000, 5000), blk(6000, 7000)]
        );
    }

    #[test]
    fn merged_blocks_are_reported_once_as_the_merged_whole() {
        let mut q = Reassembly::new(100_000, 32);
        let mut rx = SackReceiver::new();
        for off in [2000, 4000, 3000] {
            let out = q.insert(s(0), s(off), &[0; 1000]);
            rx.on_out_of_order(out.block.unwrap());
        }
        assert_eq!(rx.blocks(s(0), &q, 4).as_slice(), &[blk(2000, 5000)]);
    }

    #[test]
    fn blocks_at_or_below_rcv_nxt_are_dropped_and_the_count_is_limited() {
        let mut q = Reassembly::new(100_000, 32);
        let mut rx = SackReceiver::new();
        for off in [1000, 3000, 5000, 7000, 9000] {
            let out = q.insert(s(0), s(off), &[0; 500]);
            rx.on_out_of_order(out.block.unwrap());
        }
        assert_eq!(rx.blocks(s(0), &q, 3).len(), 3);
        // The hole before 1000 is filled: that block is delivered and no longer reported.
        let mut sink = Vec::new();
        let n = q.take_ready(s(1000), &mut sink);
        let nxt = s(1000).add(n);
        let b = rx.blocks(nxt, &q, 4);
        assert!(b.as_slice().iter().all(|&(l, _)| nxt.lt(l)));
        assert_eq!(b.len(), 4);
        assert_eq!(b.as_slice()[0], blk(9000, 9500));
    }

    #[test]
    fn a_dsack_block_comes_first_and_only_once() {
        let mut q = Reassembly::new(100_000, 32);
        let mut rx = SackReceiver::new();
        let out = q.insert(s(0), s(5000), &[0; 1000]);
        rx.on_out_of_order(out.block.unwrap());
        // A duplicate below RCV.NXT (RFC 2883 §4.1.1): reported first, then the SACK blocks.
        rx.on_duplicate(blk(0, 500));
        assert!(rx.dsack_pending());
        assert_eq!(
            rx.blocks(s(1000), &q, 3).as_slice(),
            &[blk(0, 500), blk(5000, 6000)]
        );
        // Once only.
        assert!(!rx.dsack_pending());
        assert_eq!(rx.blocks(s(1000), &q, 3).as_slice(), &[blk(5000, 6000)]);
        // With no out-of-order data the D-SACK block is the whole option.
        let empty = Reassembly::new(100_000, 32);
        rx.on_duplicate(blk(100, 200));
        assert_eq!(rx.blocks(s(1000), &empty, 3).as_slice(), &[blk(100, 200)]);
    }

    #[test]
    fn a_dsack_inside_the_queue_is_followed_by_the_block_containing_it() {
        // RFC 2883 §4.1.3 and §4.2.1: the second block is the queued block holding the
        // duplicate, even when it was not the most recent.
        let mut q = Reassembly::new(100_000, 32);
        let mut rx = SackReceiver::new();
        for off in [2000, 6000, 4000] {
            let out = q.insert(s(0), s(off), &[0; 1000]);
            rx.on_out_of_order(out.block.unwrap());
        }
        rx.on_duplicate(blk(6200, 6700));
        assert_eq!(
            rx.blocks(s(0), &q, 4).as_slice(),
            &[
                blk(6200, 6700),
                blk(6000, 7000),
                blk(4000, 5000),
                blk(2000, 3000)
            ]
        );
        // The limit counts the D-SACK block.
        rx.on_duplicate(blk(2000, 2100));
        assert_eq!(
            rx.blocks(s(0), &q, 3).as_slice(),
            &[blk(2000, 2100), blk(2000, 3000), blk(6000, 7000)]
        );
    }

    #[test]
    fn adjacent_duplicates_before_the_ack_make_one_dsack_block() {
        let mut rx = SackReceiver::new();
        let q = Reassembly::new(100_000, 32);
        rx.on_duplicate(blk(0, 1000));
        rx.on_duplicate(blk(1000, 2000));
        assert_eq!(rx.blocks(s(5000), &q, 3).as_slice(), &[blk(0, 2000)]);
        // Apart: the later one.
        rx.on_duplicate(blk(0, 1000));
        rx.on_duplicate(blk(3000, 4000));
        assert_eq!(rx.blocks(s(5000), &q, 3).as_slice(), &[blk(3000, 4000)]);
        // An empty range is no duplicate.
        rx.on_duplicate(blk(10, 10));
        assert!(!rx.dsack_pending());
    }

    #[test]
    fn max_blocks_depends_on_timestamps() {
        assert_eq!(max_blocks(true), 3);
        assert_eq!(max_blocks(false), 4);
    }

    // ----- sender -----

    #[test]
    fn valid_blocks_are_recorded_and_merged() {
        let mut sb = Scoreboard::new();
        let up = sb.on_sack(s(0), s(10_000), &[blk(2000, 3000), blk(5000, 6000)]);
        assert_eq!(up.newly_sacked, 2000);
        let up = sb.on_sack(s(0), s(10_000), &[blk(2500, 5500)]);
        assert_eq!(up.newly_sacked, 2000);
        assert_eq!(sb.ranges().collect::<Vec<_>>(), vec![blk(2000, 6000)]);
        assert!(sb.is_sacked(s(2000)));
        assert!(!sb.is_sacked(s(6000)));
        assert_eq!(sb.sacked_bytes(), 4000);
        assert_eq!(sb.high_sacked(), Some(s(6000)));
    }

    #[test]
    fn invalid_blocks_are_ignored() {
        let mut sb = Scoreboard::new();
        let up = sb.on_sack(
            s(1000),
            s(10_000),
            &[
                blk(3000, 3000),   // empty
                blk(4000, 3000),   // reversed
                blk(9000, 11_000), // beyond SND.NXT
                blk(500, 2000),    // straddles SND.UNA
            ],
        );
        assert_eq!(up.invalid, 4);
        assert!(sb.is_empty());
    }

    #[test]
    fn a_dsack_below_snd_una_is_reported_not_recorded() {
        let mut sb = Scoreboard::new();
        let up = sb.on_sack(s(5000), s(10_000), &[blk(1000, 2000), blk(6000, 7000)]);
        assert!(up.dsack);
        assert_eq!(up.invalid, 0);
        assert_eq!(sb.ranges().collect::<Vec<_>>(), vec![blk(6000, 7000)]);
        // A first block inside the second is a D-SACK too.
        let up = sb.on_sack(s(5000), s(10_000), &[blk(6000, 6500), blk(6000, 7000)]);
        assert!(up.dsack);
    }

    #[test]
    fn a_cumulative_ack_discards_ranges_below_it() {
        let mut sb = Scoreboard::new();
        sb.on_sack(s(0), s(10_000), &[blk(2000, 3000), blk(5000, 6000)]);
        sb.on_ack(s(5500));
        assert_eq!(sb.ranges().collect::<Vec<_>>(), vec![blk(5500, 6000)]);
        sb.on_ack(s(6000));
        assert!(sb.is_empty());
    }

    #[test]
    fn is_lost_needs_three_segments_or_more_than_two_mss_above() {
        let mut sb = Scoreboard::new();
        sb.on_sack(s(0), s(10_000), &[blk(1000, 3000)]);
        assert!(!sb.is_lost(s(0), MSS)); // 2 segments, exactly 2·SMSS bytes
        sb.on_sack(s(0), s(10_000), &[blk(4000, 4100)]);
        assert!(sb.is_lost(s(0), MSS)); // 3 discontiguous segments
        assert!(!sb.is_lost(s(3000), MSS)); // only 1 above
        let mut sb = Scoreboard::new();
        sb.on_sack(s(0), s(10_000), &[blk(1000, 3001)]);
        assert!(sb.is_lost(s(0), MSS)); // more than 2·SMSS bytes
    }

    #[test]
    fn pipe_counts_unsacked_not_lost_and_retransmitted() {
        let mut sb = Scoreboard::new();
        // 10 segments out; segment 0 lost, 1..4 SACKed, 4..10 outstanding.
        sb.on_sack(s(0), s(10_000), &[blk(1000, 4000)]);
        assert_eq!(sb.pipe(s(0), s(10_000), MSS), 6000);
        sb.start_recovery(s(0));
        assert_eq!(sb.next_seg(s(0), s(10_000), MSS, true), rtx(0, 1000));
        sb.on_retransmit(s(0), 1000);
        assert_eq!(sb.pipe(s(0), s(10_000), MSS), 7000);
        // Nothing else is lost: new data next (4000.. is above every SACK), else the rescue
        // retransmission of the tail (rule 4), once.
        assert_eq!(sb.next_seg(s(0), s(10_000), MSS, true), NextSeg::NewData);
        assert_eq!(
            sb.next_seg(s(0), s(10_000), MSS, false),
            NextSeg::Rescue {
                seq: s(9000),
                len: 1000
            }
        );
        sb.on_rescue();
        assert_eq!(sb.next_seg(s(0), s(10_000), MSS, false), NextSeg::Nothing);
    }

    #[test]
    fn next_seg_prefers_lost_holes_then_new_data_then_other_holes() {
        let mut sb = Scoreboard::new();
        // Holes at 0..1000 (lost: 4 segments SACKed above) and 5000..6000 (1 above: not lost).
        sb.on_sack(s(0), s(10_000), &[blk(1000, 5000), blk(6000, 7000)]);
        sb.start_recovery(s(0));
        assert_eq!(sb.next_seg(s(0), s(10_000), MSS, true), rtx(0, 1000));
        sb.on_retransmit(s(0), 1000);
        assert_eq!(sb.next_seg(s(0), s(10_000), MSS, true), NextSeg::NewData);
        assert_eq!(sb.next_seg(s(0), s(10_000), MSS, false), rtx(5000, 1000));
    }

    #[test]
    fn a_long_lost_hole_is_retransmitted_one_smss_at_a_time() {
        let mut sb = Scoreboard::new();
        sb.on_sack(s(0), s(10_000), &[blk(2500, 6000)]);
        sb.start_recovery(s(0));
        let mut sent = Vec::new();
        while let NextSeg::Retransmit { seq, len } = sb.next_seg(s(0), s(10_000), MSS, false) {
            sent.push((seq.distance_from(s(0)), len));
            sb.on_retransmit(seq, len);
            if sent.len() > 10 {
                break;
            }
        }
        assert_eq!(sent, vec![(0, 1000), (1000, 1000), (2000, 500)]);
    }

    #[test]
    fn the_rescue_retransmission_resends_the_tail_once_per_recovery() {
        // RFC 6675 rule 4: 0..1000 lost and resent; 1000..2000 SACKed; the tail 2000..4000
        // has nothing SACKed above it (not lost by IsLost) and no new data may be sent.
        let mut sb = Scoreboard::new();
        sb.on_sack(s(0), s(4000), &[blk(1000, 2000)]);
        sb.start_recovery(s(0));
        sb.on_retransmit(s(0), 1000);
        assert_eq!(
            sb.next_seg(s(0), s(4000), MSS, false),
            NextSeg::Rescue {
                seq: s(3000),
                len: 1000
            }
        );
        sb.on_rescue();
        assert_eq!(sb.next_seg(s(0), s(4000), MSS, false), NextSeg::Nothing);
        // New data comes first.
        sb.start_recovery(s(0));
        sb.on_retransmit(s(0), 1000);
        assert_eq!(sb.next_seg(s(0), s(4000), MSS, true), NextSeg::NewData);
    }

    /// Issue 19: slow start's overflow of a drop-tail queue loses every other segment; the
    /// SACKed ranges above 32 holes are recorded (with a 32-range table they were refused,
    /// and nothing counted as delivered for a round trip).
    #[test]
    fn every_other_segment_lost_past_32_holes_is_still_recorded() {
        let mut sb = Scoreboard::new();
        let mut newly = 0;
        for i in 0..300u32 {
            let l = (2 * i + 1) * MSS;
            newly += sb
                .on_sack(s(0), s(1_000_000), &[blk(l, l + MSS)])
                .newly_sacked;
        }
        assert_eq!(newly, 300 * MSS);
        assert_eq!(sb.sacked_bytes(), 300 * MSS);
        // A block above them all, then its extension, count as delivered.
        let up = sb.on_sack(s(0), s(1_000_000), &[blk(700_000, 720_000)]);
        assert_eq!((up.overflow, up.newly_sacked), (0, 20_000));
        let up = sb.on_sack(s(0), s(1_000_000), &[blk(700_000, 730_000)]);
        assert_eq!(up.newly_sacked, 10_000);
    }

    #[test]
    fn a_full_table_reports_overflow() {
        let mut sb = Scoreboard::new();
        for i in 0..MAX_SCOREBOARD_RANGES as u32 {
            sb.on_sack(s(0), s(1_000_000), &[blk(i * 100 + 10, i * 100 + 20)]);
        }
        let up = sb.on_sack(s(0), s(1_000_000), &[blk(900_000, 900_010)]);
        assert_eq!(up.overflow, 1);
        // Merging into an existing range still works.
        let up = sb.on_sack(s(0), s(1_000_000), &[blk(15, 30)]);
        assert_eq!((up.overflow, up.newly_sacked), (0, 10));
    }

    proptest! {
        #[test]
        fn the_scoreboard_matches_a_bitmap_model(
            ops in proptest::collection::vec((0u32..4000, 0u32..4000, 0u32..300), 1..60),
        ) {
            // A 4000-byte flight; blocks are random (many invalid); SND.UNA creeps forward.
            let mut sb = Scoreboard::new();
            let mut model = vec![false; 4000];
            let mut una = 0u32;
            let nxt = 4000u32;
            for (l, r, ack) in ops {
                if ack % 7 == 0 {
                    una = (una + ack).min(nxt);
                    sb.on_ack(s(una));
                }
                let up = sb.on_sack(s(una), s(nxt), &[(s(l), s(r))]);
                let valid = una <= l && l < r && r <= nxt;
                let dsack = l < r && r <= una;
                if valid && up.overflow == 0 {
                    let newly = (l..r).filter(|&i| !model[i as usize]).count() as u32;
                    prop_assert_eq!(up.newly_sacked, newly);
                    for i in l..r { model[i as usize] = true; }
                } else if !valid {
                    prop_assert_eq!(up.invalid + u32::from(dsack), 1);
                }
                for i in 0..una { model[i as usize] = false; }
                let expected = model.iter().filter(|&&b| b).count() as u32;
                prop_assert_eq!(sb.sacked_bytes(), expected);
                for i in (0..nxt).step_by(37) {
                    prop_assert_eq!(sb.is_sacked(s(i)), model[i as usize]);
                }
                // pipe never exceeds twice the flight; next_seg stays inside the flight.
                prop_assert!(sb.pipe(s(una), s(nxt), MSS) <= 2 * (nxt - una));
                if let NextSeg::Retransmit { seq, len } = sb.next_seg(s(una), s(nxt), MSS, false) {
                    let off = seq.distance_from(s(0));
                    prop_assert!(una <= off && off + len <= nxt && len > 0 && len <= MSS);
                    prop_assert!(!model[off as usize]);
                }
            }
        }

        #[test]
        fn arbitrary_blocks_never_panic(
            una: u32, flight in 0u32..u32::MAX, blocks in proptest::collection::vec((any::<u32>(), any::<u32>()), 0..6),
        ) {
            let mut sb = Scoreboard::new();
            let una = SeqNum::new(una);
            let nxt = una.add(flight);
            let blocks: Vec<_> = blocks.into_iter().map(|(l, r)| (SeqNum::new(l), SeqNum::new(r))).collect();
            sb.on_sack(una, nxt, &blocks);
            let _ = sb.pipe(una, nxt, MSS);
            let _ = sb.next_seg(una, nxt, 0, true);
            let _ = sb.is_lost(una, 0);
            for (l, r) in sb.ranges() {
                prop_assert!(l.lt(r) && una.le(l) && r.le(nxt));
            }
        }
    }
}
