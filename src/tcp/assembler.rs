//! Out-of-order reassembly for the receive side (RFC 9293 §3.10.7.4 seventh step, SHLD-31:
//! "segments that are out of order ... should be held for later processing").
//!
//! [`Reassembly`] holds the bytes that arrived beyond RCV.NXT, in a ring of `capacity` bytes
//! indexed by their offset from RCV.NXT, plus a small sorted table of the byte ranges present.
//! Each byte is stored once (the first copy wins; later copies of the same sequence number are
//! counted as duplicates and ignored), bytes beyond the capacity are trimmed, and a segment
//! that would need a new range when the table is full takes the place of the furthest block
//! if it lies below it, or is dropped; either way the loss is counted. The ring is
//! allocated on the first out-of-order segment, once per connection; nothing allocates
//! afterwards.
//!
//! # Wiring into `Connection`
//!
//! Keep one `Reassembly` per connection, sized like the receive buffer
//! (`Reassembly::new(cfg.recv_buffer, DEFAULT_MAX_RANGES)`). In the seventh step of
//! §3.10.7.4, after the segment has been trimmed to the receive window:
//!
//! - in order (`seg.seq == rcv.nxt`): append the payload to `recv_buf`, advance RCV.NXT, then,
//!   if `!reasm.is_empty()`, call `reasm.take_ready(rcv.nxt, &mut recv_buf)` and advance
//!   RCV.NXT by what it returns (the queued bytes that are now contiguous). ACK at once when
//!   the queue was non-empty (RFC 5681 §4.2: an ACK that fills a hole is sent immediately).
//! - beyond RCV.NXT: `let out = reasm.insert(rcv.nxt, seg.seq, payload)`; send an immediate
//!   duplicate ACK (RFC 5681 §4.2, RFC 9293 §3.8.6.3), and hand `out.block` to
//!   [`super::sack::SackReceiver::on_out_of_order`] when SACK is on.
//! - a FIN beyond RCV.NXT: [`Reassembly::set_fin`]; after each advance, if
//!   [`Reassembly::fin`] equals RCV.NXT, process the FIN as if it had just arrived in order.
//!
//! Queued bytes need no separate room in the advertised window: they sit inside the window
//! already offered (free space of the receive buffer, whose right edge never moves left), so
//! they fit in `recv_buf` once the hole before them is filled. Size `capacity` at least as
//! large as the largest window ever offered, so that no in-window byte is trimmed.

use super::SeqNum;

/// Upper bound of the range table (the fixed array's length).
pub const MAX_RANGES: usize = 32;
/// A sensible default for `max_ranges`.
pub const DEFAULT_MAX_RANGES: usize = 32;
/// The largest capacity honoured: the largest window TCP can offer (RFC 7323 §2.3: 2^30).
const MAX_CAPACITY: usize = 1 << 30;

/// What [`Reassembly::insert`] did with a segment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct InsertOutcome {
    /// Bytes stored that were not held before.
    pub new_bytes: u32,
    /// Bytes already held, or already delivered (below RCV.NXT).
    pub duplicate_bytes: u32,
    /// Bytes beyond `rcv_nxt + capacity`, trimmed.
    pub trimmed_bytes: u32,
    /// The segment was dropped because the range table was full.
    pub dropped: bool,
    /// The out-of-order block `[left, right)` that now contains the segment, for SACK
    /// (RFC 2018 §4). `None` when nothing of the segment lies beyond RCV.NXT in the queue
    /// (dropped, wholly duplicate of delivered data, or empty).
    pub block: Option<(SeqNum, SeqNum)>,
}

/// Out-of-order bytes beyond RCV.NXT, for one connection.
#[derive(Clone, Debug)]
pub struct Reassembly {
    /// The ring; empty until the first out-of-order segment.
    /// (Boxed slices, not `Vec`s: both are all or nothing, and 8 bytes fewer each in every
    /// connection.)
    buf: Box<[u8]>,
    capacity: u32,
    /// Ring index of offset 0 (the byte at `base`).
    head: u32,
    /// The RCV.NXT the offsets below are relative to.
    base: SeqNum,
    /// Sorted, disjoint, non-adjacent `[start, end)` offsets from `base`; `len` are in use.
    /// [`MAX_RANGES`] slots, allocated with the ring (an idle connection holds neither).
    ranges: Box<[(u32, u32)]>,
    len: usize,
    max_ranges: u32,
    /// The sequence number of a FIN that arrived beyond RCV.NXT.
    fin: Option<SeqNum>,
    /// Segments dropped because the range table was full.
    dropped_segments: u64,
}

static NOTHING_QUEUED: std::sync::LazyLock<Reassembly> =
    std::sync::LazyLock::new(|| Reassembly::new(0, DEFAULT_MAX_RANGES));

/// Issue 23: a connection allocates its reassembly queue with the first out-of-order
/// segment (or FIN), with the receive buffer's size as its capacity, and frees it when it
/// holds nothing again (`super::lazy::Lazy`; `Connection::reasm_mut`).
impl super::lazy::Empty for Reassembly {
    fn empty() -> &'static Self {
        &NOTHING_QUEUED
    }
    fn is_empty_state(&self) -> bool {
        self.len == 0 && self.fin.is_none()
    }
}

impl Reassembly {
    /// A queue of at most `capacity_bytes` beyond RCV.NXT (clamped to 2^30) in at most
    /// `max_ranges` disjoint blocks (clamped to 1..=[`MAX_RANGES`]).
    pub fn new(capacity_bytes: usize, max_ranges: usize) -> Self {
        Reassembly {
            buf: Box::default(),
            capacity: u32::try_from(capacity_bytes.min(MAX_CAPACITY)).unwrap_or(0),
            head: 0,
            base: SeqNum::new(0),
            ranges: Box::default(),
            len: 0,
            max_ranges: u32::try_from(max_ranges.clamp(1, MAX_RANGES)).unwrap_or(1),
            fin: None,
            dropped_segments: 0,
        }
    }

    /// Nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Bytes held.
    pub fn queued_bytes(&self) -> u32 {
        self.active().iter().map(|&(s, e)| e - s).sum()
    }

    /// Segments dropped because the range table was full.
    pub fn dropped_segments(&self) -> u64 {
        self.dropped_segments
    }

    /// How many bytes beyond RCV.NXT can be held.
    pub fn capacity(&self) -> u32 {
        self.capacity
    }

    /// Remember a FIN that arrived beyond RCV.NXT at sequence number `seq` (the sequence
    /// number the FIN itself occupies). The first one wins. The FIN ends the stream (RFC 9293
    /// §3.10.7.4, eighth step): bytes held at or beyond it are dropped, and `insert` stores
    /// none there from now on.
    pub fn set_fin(&mut self, seq: SeqNum) {
        let fin = *self.fin.get_or_insert(seq);
        // Offsets count from `base`, the last RCV.NXT seen, which lies before the FIN.
        let cut = if fin.lt(self.base) {
            0
        } else {
            fin.distance_from(self.base)
        };
        let mut w = 0;
        for r in 0..self.len {
            let Some(&(s, e)) = self.ranges.get(r) else {
                break;
            };
            if s >= cut {
                continue;
            }
            if let Some(slot) = self.ranges.get_mut(w) {
                *slot = (s, e.min(cut));
            }
            w += 1;
        }
        self.len = w;
    }

    /// The queued FIN's sequence number. When it equals RCV.NXT, the FIN is next in order.
    pub fn fin(&self) -> Option<SeqNum> {
        self.fin
    }

    /// Bytes allocated for the ring (0 until the first out-of-order segment, and after
    /// [`Reassembly::release`]).
    pub fn allocated(&self) -> usize {
        self.buf.len() + self.ranges.len() * std::mem::size_of::<(u32, u32)>()
    }

    /// Give the ring's memory back while nothing is queued (it is allocated again on the next
    /// out-of-order segment).
    pub fn release(&mut self) {
        if self.len == 0 && self.buf.len() + self.ranges.len() > 0 {
            self.buf = Box::default();
            self.ranges = Box::default();
            self.head = 0;
        }
    }

    /// Change how many bytes beyond RCV.NXT can be held (the receive buffer grew). Queued
    /// bytes keep their offsets: the ring is laid out again from offset 0. Shrinking below
    /// what is queued is refused.
    pub fn set_capacity(&mut self, capacity_bytes: usize) {
        let capacity = u32::try_from(capacity_bytes.min(MAX_CAPACITY)).unwrap_or(0);
        if capacity == self.capacity {
            return;
        }
        if self.len == 0 || self.buf.is_empty() {
            self.capacity = capacity;
            self.buf = Box::default();
            self.head = 0;
            return;
        }
        let end = self.active().last().map_or(0, |&(_, e)| e);
        if capacity < end {
            return;
        }
        let mut buf = vec![0; capacity as usize];
        let (a, b) = self.ring_slices(0, end);
        let (a_len, b_len) = (a.len(), b.len());
        if let Some(dst) = buf.get_mut(..a_len) {
            dst.copy_from_slice(a);
        }
        if let Some(dst) = buf.get_mut(a_len..a_len + b_len) {
            dst.copy_from_slice(b);
        }
        self.buf = buf.into_boxed_slice();
        self.head = 0;
        self.capacity = capacity;
    }

    /// Forget everything (e.g. on reset).
    pub fn clear(&mut self) {
        self.len = 0;
        self.fin = None;
    }

    /// Store `data`, whose first byte has sequence number `seq`, relative to the current
    /// RCV.NXT `rcv_nxt`. Bytes before `rcv_nxt` and bytes already held are ignored.
    pub fn insert(&mut self, rcv_nxt: SeqNum, seq: SeqNum, data: &[u8]) -> InsertOutcome {
        self.advance_to(rcv_nxt);
        let mut out = InsertOutcome::default();
        // A segment is at most 2^32 − 1 bytes long; anything longer is nonsense, clip it.
        let len = u32::try_from(data.len()).unwrap_or(u32::MAX);
        // The part before RCV.NXT was delivered already.
        let (skip, start) = if seq.lt(rcv_nxt) {
            (rcv_nxt.distance_from(seq), 0)
        } else {
            (0, seq.distance_from(rcv_nxt))
        };
        if skip >= len {
            out.duplicate_bytes = len;
            return out;
        }
        out.duplicate_bytes = skip;
        let end_wanted = u64::from(start) + u64::from(len - skip);
        // Nothing is stored at or beyond a FIN already received (see `set_fin`).
        let limit = match self.fin {
            Some(fin) if fin.lt(rcv_nxt) => 0,
            Some(fin) => self.capacity.min(fin.distance_from(rcv_nxt)),
            None => self.capacity,
        };
        let end = u32::try_from(end_wanted.min(u64::from(limit))).unwrap_or(0);
        out.trimmed_bytes = u32::try_from(end_wanted - u64::from(end.max(start))).unwrap_or(0);
        if end <= start {
            out.trimmed_bytes = len - skip;
            return out;
        }
        let Some(payload) = data.get(skip as usize..(skip + (end - start)) as usize) else {
            return out;
        };

        // Which ranges touch [start, end]? They form a run `first..last` in the sorted table.
        let active = self.active();
        let first = active.partition_point(|&(_, e)| e < start);
        let last = active.partition_point(|&(s, _)| s <= end);
        if first == last && self.len >= self.max_ranges as usize {
            // A new, separate block and no room for it. If it lies below the furthest block
            // held, give that one up instead (RFC 2018 §8 lets a receiver that runs out of room
            // discard data it has SACKed; Linux's `tcp_prune_ofo_queue` also prunes from the
            // highest sequence): the block nearer RCV.NXT is the one that lets the stream
            // advance, and an in-order segment must never be refused for want of a range.
            self.dropped_segments += 1;
            if first >= self.len {
                out.dropped = true;
                return out;
            }
            self.len -= 1;
        }
        if self.buf.len() != self.capacity as usize {
            self.buf = vec![0; self.capacity as usize].into_boxed_slice();
        }
        if self.ranges.len() != MAX_RANGES {
            self.ranges = vec![(0, 0); MAX_RANGES].into_boxed_slice();
        }

        // Copy only into the gaps between the existing ranges: the first copy of a byte wins.
        let mut cursor = start;
        let mut held = 0u32;
        for i in first..last {
            let (s, e) = self.ranges.get(i).copied().unwrap_or((0, 0));
            if s > cursor {
                self.write_gap(cursor, s.min(end), start, payload);
            }
            held += e.min(end).saturating_sub(s.max(start));
            cursor = cursor.max(e);
        }
        if cursor < end {
            self.write_gap(cursor, end, start, payload);
        }
        out.duplicate_bytes += held;
        out.new_bytes = (end - start) - held;

        // Merge the run into one range.
        let (mut new_s, mut new_e) = (start, end);
        if first < last {
            if let Some(&(s, _)) = self.ranges.get(first) {
                new_s = new_s.min(s);
            }
            if let Some(&(_, e)) = self.ranges.get(last - 1) {
                new_e = new_e.max(e);
            }
        }
        self.replace_run(first, last, (new_s, new_e));
        out.block = Some((self.base.add(new_s), self.base.add(new_e)));
        out
    }

    /// Move the bytes now contiguous with `rcv_nxt` into `out`, in order, and return how many;
    /// the caller advances RCV.NXT by that much.
    pub fn take_ready(&mut self, rcv_nxt: SeqNum, out: &mut impl Extend<u8>) -> u32 {
        let (a, b) = self.ready(rcv_nxt);
        let n = a.len() + b.len();
        out.extend(a.iter().copied());
        out.extend(b.iter().copied());
        let n = u32::try_from(n).unwrap_or(0);
        self.advance_to(rcv_nxt.add(n));
        n
    }

    /// The bytes now contiguous with `rcv_nxt`, as two slices (the ring may wrap), without
    /// consuming them; follow with [`Reassembly::consume`] once they are copied.
    pub fn ready(&mut self, rcv_nxt: SeqNum) -> (&[u8], &[u8]) {
        self.advance_to(rcv_nxt);
        match self.active().first() {
            Some(&(0, e)) => self.ring_slices(0, e),
            _ => (&[], &[]),
        }
    }

    /// Forget the first `n` ready bytes after [`Reassembly::ready`] (equivalent to advancing
    /// RCV.NXT by `n` and calling any method).
    pub fn consume(&mut self, rcv_nxt: SeqNum, n: u32) {
        self.advance_to(rcv_nxt.add(n));
    }

    /// The out-of-order blocks `[left, right)` in sequence order, relative to the RCV.NXT the
    /// queue last saw.
    pub fn ranges(&self) -> impl Iterator<Item = (SeqNum, SeqNum)> + '_ {
        let base = self.base;
        self.active()
            .iter()
            .map(move |&(s, e)| (base.add(s), base.add(e)))
    }

    /// The queued block containing `seq`, if any.
    pub fn range_containing(&self, seq: SeqNum) -> Option<(SeqNum, SeqNum)> {
        self.ranges().find(|&(l, r)| seq.in_range(l, r))
    }

    fn active(&self) -> &[(u32, u32)] {
        self.ranges.get(..self.len).unwrap_or(&[])
    }

    /// Re-base offsets on a new RCV.NXT. RCV.NXT only moves forward; if it ever went back,
    /// the queue is stale and is dropped rather than trusted.
    fn advance_to(&mut self, rcv_nxt: SeqNum) {
        if rcv_nxt == self.base {
            return;
        }
        if rcv_nxt.lt(self.base) {
            self.len = 0;
            self.base = rcv_nxt;
            return;
        }
        let k = rcv_nxt.distance_from(self.base);
        if self.capacity > 0 {
            self.head = ((u64::from(self.head) + u64::from(k)) % u64::from(self.capacity)) as u32;
        }
        self.base = rcv_nxt;
        // Drop or trim the ranges now at or below RCV.NXT, shift the rest.
        let mut w = 0;
        for r in 0..self.len {
            let Some(&(s, e)) = self.ranges.get(r) else {
                break;
            };
            if e <= k {
                continue;
            }
            if let Some(slot) = self.ranges.get_mut(w) {
                *slot = (s.saturating_sub(k), e - k);
            }
            w += 1;
        }
        self.len = w;
        if self.fin.is_some_and(|f| f.lt(rcv_nxt)) {
            self.fin = None;
        }
    }

    /// Replace `ranges[first..last]` with `new` (first == last inserts).
    fn replace_run(&mut self, first: usize, last: usize, new: (u32, u32)) {
        if first == last {
            if let Some(tail) = self.ranges.get_mut(first..=self.len) {
                tail.rotate_right(1);
                if let Some(slot) = tail.first_mut() {
                    *slot = new;
                }
                self.len += 1;
            }
        } else {
            if let Some(slot) = self.ranges.get_mut(first) {
                *slot = new;
            }
            let removed = last - first - 1;
            if let Some(tail) = self.ranges.get_mut(first + 1..self.len) {
                tail.rotate_left(removed);
            }
            self.len -= removed;
        }
    }

    /// Copy `payload[from - start .. to - start]` into the ring at offsets `from..to`.
    fn write_gap(&mut self, from: u32, to: u32, start: u32, payload: &[u8]) {
        let Some(src) = payload.get((from - start) as usize..(to - start) as usize) else {
            return;
        };
        let cap = self.buf.len();
        let at = (self.head as usize + from as usize) % cap.max(1);
        let first_len = src.len().min(cap - at);
        let (a, b) = src.split_at(first_len);
        if let Some(dst) = self.buf.get_mut(at..at + a.len()) {
            dst.copy_from_slice(a);
        }
        if let Some(dst) = self.buf.get_mut(..b.len()) {
            dst.copy_from_slice(b);
        }
    }

    /// The ring's bytes at offsets `from..to`, as up to two slices.
    fn ring_slices(&self, from: u32, to: u32) -> (&[u8], &[u8]) {
        let cap = self.buf.len();
        if cap == 0 || to <= from {
            return (&[], &[]);
        }
        let at = (self.head as usize + from as usize) % cap;
        let n = (to - from) as usize;
        let first_len = n.min(cap - at);
        (
            self.buf.get(at..at + first_len).unwrap_or(&[]),
            self.buf.get(..n - first_len).unwrap_or(&[]),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const ISN: u32 = u32::MAX - 100; // so the tests cross the wrap

    fn s(off: u32) -> SeqNum {
        SeqNum::new(ISN).add(off)
    }

    #[test]
    fn in_order_after_a_hole_releases_the_queued_bytes() {
        let mut q = Reassembly::new(1000, 8);
        let out = q.insert(s(0), s(5), b"fghij");
        assert_eq!(out.new_bytes, 5);
        assert_eq!(out.block, Some((s(5), s(10))));
        let mut got = Vec::new();
        assert_eq!(q.take_ready(s(0), &mut got), 0);
        // The application path appends "abcde" itself and advances RCV.NXT to 5.
        assert_eq!(q.take_ready(s(5), &mut got), 5);
        assert_eq!(got, b"fghij");
        assert!(q.is_empty());
    }

    #[test]
    fn overlaps_keep_the_first_copy_and_count_duplicates() {
        let mut q = Reassembly::new(1000, 8);
        q.insert(s(0), s(4), b"EFGH");
        let out = q.insert(s(0), s(2), b"cdxxxxij");
        assert_eq!(out.new_bytes, 4);
        assert_eq!(out.duplicate_bytes, 4);
        assert_eq!(out.block, Some((s(2), s(10))));
        let mut got = Vec::new();
        assert_eq!(q.take_ready(s(2), &mut got), 8);
        assert_eq!(got, b"cdEFGHij");
    }

    #[test]
    fn a_segment_bridging_two_blocks_merges_them() {
        let mut q = Reassembly::new(1000, 8);
        q.insert(s(0), s(10), b"kl");
        q.insert(s(0), s(20), b"uv");
        assert_eq!(q.ranges().count(), 2);
        let out = q.insert(s(0), s(11), b"lmnopqrstu");
        assert_eq!(out.block, Some((s(10), s(22))));
        assert_eq!(q.ranges().collect::<Vec<_>>(), vec![(s(10), s(22))]);
        assert_eq!(q.queued_bytes(), 12);
    }

    #[test]
    fn adjacent_blocks_merge() {
        let mut q = Reassembly::new(1000, 8);
        q.insert(s(0), s(10), b"ab");
        q.insert(s(0), s(12), b"cd");
        q.insert(s(0), s(8), b"yz");
        assert_eq!(q.ranges().collect::<Vec<_>>(), vec![(s(8), s(14))]);
    }

    #[test]
    fn bytes_beyond_capacity_are_trimmed() {
        let mut q = Reassembly::new(10, 8);
        let out = q.insert(s(0), s(6), b"ghijklmn");
        assert_eq!(out.new_bytes, 4);
        assert_eq!(out.trimmed_bytes, 4);
        let out = q.insert(s(0), s(12), b"zz");
        assert_eq!(out.trimmed_bytes, 2);
        assert_eq!(out.block, None);
    }

    #[test]
    fn data_already_delivered_is_a_duplicate() {
        let mut q = Reassembly::new(100, 8);
        let out = q.insert(s(10), s(2), b"abcd");
        assert_eq!(out.duplicate_bytes, 4);
        assert_eq!(out.block, None);
        assert!(q.is_empty());
        // Partly old, partly in order: the new part is stored at offset 0.
        let out = q.insert(s(10), s(8), b"ijKL");
        assert_eq!((out.duplicate_bytes, out.new_bytes), (2, 2));
        let mut got = Vec::new();
        assert_eq!(q.take_ready(s(10), &mut got), 2);
        assert_eq!(got, b"KL");
    }

    #[test]
    fn a_full_range_table_gives_up_its_furthest_block_for_a_nearer_one() {
        let mut q = Reassembly::new(1000, 2);
        q.insert(s(0), s(10), b"a");
        q.insert(s(0), s(20), b"b");
        // In order: taken, and the block at 20 is given up for it.
        let out = q.insert(s(0), s(0), b"xy");
        assert!(!out.dropped);
        assert_eq!(q.dropped_segments(), 1);
        assert_eq!(
            q.ranges().collect::<Vec<_>>(),
            vec![(s(0), s(2)), (s(10), s(11))]
        );
        let mut got = Vec::new();
        assert_eq!(q.take_ready(s(0), &mut got), 2);
        assert_eq!(got, b"xy");
    }

    #[test]
    fn a_full_range_table_drops_a_new_block_but_still_merges() {
        let mut q = Reassembly::new(1000, 2);
        q.insert(s(0), s(10), b"a");
        q.insert(s(0), s(20), b"b");
        let out = q.insert(s(0), s(30), b"c");
        assert!(out.dropped);
        assert_eq!(q.dropped_segments(), 1);
        assert!(!q.insert(s(0), s(11), b"x").dropped);
        assert_eq!(q.ranges().count(), 2);
    }

    #[test]
    fn advancing_rcv_nxt_past_part_of_a_block_trims_it() {
        let mut q = Reassembly::new(100, 8);
        q.insert(s(0), s(5), b"fghij");
        // In-order data covered 0..7 (overlapping the queue); only 7..10 remain to deliver.
        let mut got = Vec::new();
        assert_eq!(q.take_ready(s(7), &mut got), 3);
        assert_eq!(got, b"hij");
    }

    #[test]
    fn ring_wraps_around() {
        let mut q = Reassembly::new(8, 8);
        let mut got = Vec::new();
        q.insert(s(0), s(2), b"cdefgh");
        assert_eq!(q.take_ready(s(2), &mut got), 6);
        q.insert(s(8), s(10), b"klmnop");
        assert_eq!(q.take_ready(s(10), &mut got), 6);
        assert_eq!(got, b"cdefghklmnop");
    }

    #[test]
    fn an_out_of_order_fin_is_remembered_until_reached() {
        let mut q = Reassembly::new(100, 8);
        q.insert(s(0), s(5), b"xyz");
        q.set_fin(s(8));
        let mut got = Vec::new();
        let n = q.take_ready(s(5), &mut got);
        assert_eq!(q.fin(), Some(s(5).add(n)));
    }

    #[test]
    fn nothing_is_held_at_or_beyond_a_fin() {
        let mut q = Reassembly::new(100, 8);
        q.insert(s(0), s(5), b"vwxyz");
        q.insert(s(0), s(20), b"beyond");
        q.set_fin(s(8));
        assert_eq!(q.ranges().collect::<Vec<_>>(), vec![(s(5), s(8))]);
        let out = q.insert(s(0), s(2), b"cdefghij");
        assert_eq!((out.new_bytes, out.trimmed_bytes), (3, 2));
        let mut got = Vec::new();
        q.insert(s(0), s(0), b"ab");
        assert_eq!(q.take_ready(s(0), &mut got), 8);
        assert_eq!(got, b"abcdevwx");
        assert_eq!(q.fin(), Some(s(8)));
    }

    #[test]
    fn zero_capacity_holds_nothing() {
        let mut q = Reassembly::new(0, 8);
        let out = q.insert(s(0), s(1), b"abc");
        assert_eq!(out.trimmed_bytes, 3);
        assert!(q.is_empty());
    }

    /// Deliver `segs` (offsets and lengths into `data`) in the given order, then, as a
    /// retransmitting sender would, everything again in order until all has arrived.
    /// Checks each step's accounting; returns what the application read.
    fn deliver(
        data: &[u8],
        segs: &[(usize, usize)],
        in_order_direct: bool,
    ) -> Result<Vec<u8>, TestCaseError> {
        let mut q = Reassembly::new(data.len().max(1), MAX_RANGES);
        let mut got = Vec::new();
        let mut nxt = 0usize;
        let mut sorted = segs.to_vec();
        sorted.sort_unstable();
        for &(start, len) in segs.iter().chain(sorted.iter()) {
            if nxt == data.len() {
                break;
            }
            let end = (start + len).min(data.len());
            let payload = &data[start..end];
            let seq = s(start as u32);
            if in_order_direct && start <= nxt && end > nxt {
                // The connection's fast path: in-order bytes go straight to the buffer.
                got.extend_from_slice(&data[nxt..end]);
                nxt = end;
            } else {
                let out = q.insert(s(nxt as u32), seq, payload);
                let accounted = out.new_bytes + out.duplicate_bytes + out.trimmed_bytes;
                if out.dropped {
                    prop_assert_eq!(out.new_bytes, 0);
                } else {
                    prop_assert_eq!(accounted, payload.len() as u32);
                }
            }
            nxt += q.take_ready(s(nxt as u32), &mut got) as usize;
            prop_assert_eq!(got.len(), nxt);
        }
        Ok(got)
    }

    fn segmentation() -> impl Strategy<Value = (Vec<u8>, Vec<(usize, usize)>)> {
        proptest::collection::vec(any::<u8>(), 1..600).prop_flat_map(|data| {
            let n = data.len();
            // Cover every byte with segments, then add duplicates and overlapping extras,
            // then shuffle.
            let cover = proptest::collection::vec(1usize..50, 1..60);
            let extras = proptest::collection::vec((0..n, 1usize..80), 0..20);
            (Just(data), cover, extras).prop_flat_map(move |(data, cuts, extras)| {
                let mut segs = Vec::new();
                let mut at = 0;
                let mut i = 0;
                while at < n {
                    let len = cuts[i % cuts.len()];
                    segs.push((at, len.min(n - at)));
                    at += len;
                    i += 1;
                }
                segs.extend(extras.into_iter().map(|(s, l)| (s, l.min(n - s))));
                (Just(data), Just(segs).prop_shuffle())
            })
        })
    }

    proptest! {
        #[test]
        fn any_segmentation_reassembles_the_original((data, segs) in segmentation()) {
            let got = deliver(&data, &segs, false)?;
            prop_assert_eq!(got, data);
        }

        #[test]
        fn mixed_fast_path_reassembles_the_original((data, segs) in segmentation()) {
            let got = deliver(&data, &segs, true)?;
            prop_assert_eq!(got, data);
        }

        #[test]
        fn arbitrary_inputs_never_panic_and_keep_ranges_sorted(
            ops in proptest::collection::vec((any::<u32>(), any::<u32>(), 0usize..3000, any::<bool>()), 1..40),
            cap in 0usize..4096,
            max_ranges in 0usize..40,
        ) {
            let mut q = Reassembly::new(cap, max_ranges);
            let buf = vec![7u8; 3000];
            let mut nxt = SeqNum::new(0);
            for (a, b, len, advance) in ops {
                if advance {
                    nxt = nxt.add(a % 5000);
                    let mut sink = Vec::new();
                    let n = q.take_ready(nxt, &mut sink);
                    prop_assert_eq!(n as usize, sink.len());
                    nxt = nxt.add(n);
                } else {
                    let seq = SeqNum::new(b);
                    q.insert(nxt, seq, &buf[..len]);
                }
                let r: Vec<_> = q.ranges().collect();
                prop_assert!(r.len() <= max_ranges.clamp(1, MAX_RANGES));
                for w in r.windows(2) {
                    prop_assert!(w[0].1.lt(w[1].0));
                }
                for &(l, rr) in &r {
                    prop_assert!(l.lt(rr));
                    prop_assert!(nxt.le(l));
                    prop_assert!(rr.distance_from(nxt) <= q.capacity());
                }
            }
        }
    }
}
