//! The segments in flight, each with its transmit time: what RACK (RFC 8985 §5.2:
//! "Per-segment variables") and RTT sampling from transmit times need. As Linux's
//! retransmission queue keeps `tx.skb_mstamp_ns`, `TCPCB_SACKED_ACKED`, `TCPCB_LOST` and
//! `TCPCB_SACKED_RETRANS` per skb.
//!
//! One record per segment (or super-segment) as it was first sent, in sequence order,
//! covering SND.UNA..SND.NXT. A retransmission updates the record(s) it covers; a
//! cumulative ACK drops what it covers. The ring grows with the flight and is reused, so a
//! connection in steady state allocates nothing per segment.

use crate::seqnum::SeqNum;
use crate::time::Instant;
use std::collections::VecDeque;

/// One segment in flight.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sent {
    pub start: SeqNum,
    pub end: SeqNum,
    /// When it was last (re)transmitted (RFC 8985 `Segment.xmit_ts`).
    pub xmit: Instant,
    /// It has been retransmitted at least once (Karn: no RTT sample from it).
    pub retransmitted: bool,
    /// SACKed in full.
    pub sacked: bool,
    /// Deemed lost (RACK, RFC 6675 or a timeout) and not retransmitted since.
    pub lost: bool,
}

impl Sent {
    pub fn len(&self) -> u32 {
        self.end.distance_from(self.start)
    }

    pub fn is_empty(&self) -> bool {
        self.start == self.end
    }
}

/// What one ACK delivered, for RACK and the RTT estimator.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Delivered {
    /// The most recently transmitted of the segments this ACK delivered (cumulatively or by
    /// SACK): (xmit, end) for RACK_update (RFC 8985 §6.2 step 2), with whether it was
    /// retransmitted.
    pub newest: Option<(Instant, SeqNum, bool)>,
    /// The highest end of a segment delivered by this ACK, and whether some delivered segment
    /// ended below the highest already delivered before (reordering, RFC 8985 §6.2 step 3).
    pub reordered: bool,
    /// The RTT of the newest segment sent once among those delivered: a Karn-safe sample.
    pub rtt_sample: Option<crate::time::Duration>,
    /// Segments newly SACKed.
    pub newly_sacked: u32,
}

#[derive(Clone, Debug, Default)]
pub struct SentLog {
    segs: VecDeque<Sent>,
}

/// A record with nothing in flight.
pub static EMPTY: SentLog = SentLog {
    segs: VecDeque::new(),
};

impl SentLog {
    pub fn is_empty(&self) -> bool {
        self.segs.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = &Sent> {
        self.segs.iter()
    }

    pub fn iter_mut(&mut self) -> impl Iterator<Item = &mut Sent> {
        self.segs.iter_mut()
    }

    /// The last segment sent (highest sequence).
    pub fn last(&self) -> Option<&Sent> {
        self.segs.back()
    }

    /// Forget everything (the connection has nothing in flight any more, or gave up).
    pub fn clear(&mut self) {
        self.segs.clear();
    }

    /// Give the ring's memory back while nothing is in flight.
    pub fn release(&mut self) {
        if self.segs.is_empty() && self.segs.capacity() > 0 {
            self.segs = VecDeque::new();
        }
    }

    /// `[start, end)` went out at `now`: new data (appended) or a retransmission (the
    /// records it covers are updated; one that it covers only in part is split so that each
    /// record keeps one transmit time).
    pub fn on_send(&mut self, start: SeqNum, end: SeqNum, now: Instant) {
        if !start.lt(end) {
            return;
        }
        let new = self.segs.back().is_none_or(|b| b.end.le(start));
        if new {
            self.segs.push_back(Sent {
                start,
                end,
                xmit: now,
                retransmitted: false,
                sacked: false,
                lost: false,
            });
            return;
        }
        self.split_at(start);
        self.split_at(end);
        for s in self.segs.iter_mut() {
            if s.start.ge(end) {
                break;
            }
            if s.end.le(start) {
                continue;
            }
            s.xmit = now;
            s.retransmitted = true;
            s.lost = false;
        }
    }

    /// Split the record containing `at` (strictly inside it) in two.
    fn split_at(&mut self, at: SeqNum) {
        // Records are in sequence order and do not overlap: the first that ends after `at`.
        let i = self.segs.partition_point(|s| s.end.le(at));
        let Some(s) = self.segs.get_mut(i) else {
            return;
        };
        if !(s.start.lt(at) && at.lt(s.end)) {
            return;
        }
        let mut tail = *s;
        s.end = at;
        tail.start = at;
        self.segs.insert(i + 1, tail);
    }

    /// Split the records at the edges of the SACKed ranges, so that a record (a
    /// super-segment sent in one piece) is either SACKed in full or not at all: RACK then
    /// marks only its holes lost, and only they are resent (Linux's `tcp_sacktag_walk`
    /// fragments an skb at a SACK block's edges the same way).
    pub fn split_at_sack_edges(&mut self, ranges: impl Iterator<Item = (SeqNum, SeqNum)>) {
        for (l, r) in ranges {
            self.split_at(l);
            self.split_at(r);
        }
    }

    /// An ACK: SND.UNA is now `una`; `is_sacked` tells which sequence ranges the scoreboard
    /// holds SACKed. Drops what is acknowledged and marks what is SACKed; returns what this
    /// ACK delivered. ([`SentLog::on_cumulative`] then [`SentLog::on_sacked`].)
    #[cfg(test)]
    pub fn on_ack(
        &mut self,
        now: Instant,
        una: SeqNum,
        is_sacked: impl Fn(SeqNum, SeqNum) -> bool,
        fack: &mut Option<SeqNum>,
    ) -> Delivered {
        let mut d = self.on_cumulative(now, una, fack);
        self.on_sacked(now, is_sacked, &mut d, fack);
        d
    }

    /// The cumulative part of an ACK: SND.UNA is now `una`; what it covers is dropped.
    /// `fack`: the highest end sequence delivered so far (RFC 8985 `RACK.fack`), advanced.
    pub fn on_cumulative(
        &mut self,
        now: Instant,
        una: SeqNum,
        fack: &mut Option<SeqNum>,
    ) -> Delivered {
        let mut d = Delivered::default();
        let before = *fack;
        while let Some(front) = self.segs.front_mut() {
            if front.end.le(una) {
                let s = *front;
                self.segs.pop_front();
                if !s.sacked {
                    deliver(now, before, &s, &mut d);
                }
                continue;
            }
            if front.start.lt(una) {
                // Partly acknowledged (a super-segment, or a segment the peer split): what
                // was delivered ends at `una`, and the rest stays in flight. Reporting the
                // record's own end as delivered made RACK take the rest for delivered too,
                // then mark it lost one RTT + reo_wnd later (the peer's delayed ACK for
                // its last segment was enough).
                let delivered = Sent { end: una, ..*front };
                front.start = una;
                if !delivered.sacked {
                    deliver(now, before, &delivered, &mut d);
                }
            }
            break;
        }
        advance_fack(fack, &d);
        d
    }

    /// The SACK part of an ACK: mark what the scoreboard now holds SACKed (`is_sacked` of a
    /// record's range), adding it to `d`.
    pub fn on_sacked(
        &mut self,
        now: Instant,
        is_sacked: impl Fn(SeqNum, SeqNum) -> bool,
        d: &mut Delivered,
        fack: &mut Option<SeqNum>,
    ) {
        let before = *fack;
        for s in self.segs.iter_mut() {
            if !s.sacked && is_sacked(s.start, s.end) {
                s.sacked = true;
                s.lost = false;
                d.newly_sacked += 1;
                deliver(now, before, s, d);
            }
        }
        advance_fack(fack, d);
    }

    /// After a retransmission timeout: everything not SACKed is lost (Linux's
    /// `tcp_enter_loss` marks it so); with `forget_sacks` (RFC 2018 §8: the receiver may
    /// renege), SACKed records too.
    pub fn mark_all_lost(&mut self, forget_sacks: bool) {
        for s in self.segs.iter_mut() {
            if forget_sacks {
                s.sacked = false;
            }
            if !s.sacked {
                s.lost = true;
            }
        }
    }

    /// Nothing is lost after all (a spurious timeout was undone).
    pub fn unmark_lost(&mut self) {
        for s in self.segs.iter_mut() {
            s.lost = false;
        }
    }

    /// Bytes in flight by RFC 6675's SetPipe() with RACK's loss marks (Linux's
    /// `tcp_packets_in_flight`: out − SACKed − lost + retransmitted): a segment counts unless
    /// SACKed or lost, and a retransmitted one that has not been marked lost again counts
    /// once.
    pub fn pipe(&self) -> u32 {
        self.segs
            .iter()
            .filter(|s| !s.sacked && !s.lost)
            .map(Sent::len)
            .fold(0u32, u32::saturating_add)
    }

    /// The first segment marked lost and not retransmitted since (RFC 6675 NextSeg() rule 1
    /// with RACK's marks).
    pub fn first_lost(&self) -> Option<&Sent> {
        self.segs.iter().find(|s| s.lost && !s.sacked)
    }

    /// Some segment is marked lost and waits for its retransmission.
    pub fn has_lost(&self) -> bool {
        self.first_lost().is_some()
    }

    /// Bytes marked lost, for `status --info`.
    pub fn lost_bytes(&self) -> u32 {
        self.segs
            .iter()
            .filter(|s| s.lost && !s.sacked)
            .map(Sent::len)
            .fold(0u32, u32::saturating_add)
    }
}

/// RACK.fack moves up to the newest segment delivered.
fn advance_fack(fack: &mut Option<SeqNum>, d: &Delivered) {
    if let Some((_, end, _)) = d.newest {
        *fack = Some(fack.map_or(end, |f| f.max(end)));
    }
}

/// One segment delivered (acknowledged or SACKed) at `now`; `fack` the highest end
/// delivered before this ACK.
fn deliver(now: Instant, fack: Option<SeqNum>, s: &Sent, d: &mut Delivered) {
    if d.newest
        .is_none_or(|(t, e, _)| sent_after(s.xmit, s.end, t, e))
    {
        d.newest = Some((s.xmit, s.end, s.retransmitted));
    }
    // RFC 8985 §6.2 step 3: "Else if Segment.end_seq < RACK.fack AND Segment.retransmitted
    // is FALSE: RACK.reordering_seen = TRUE" (Linux's `tcp_check_sack_reordering` skips
    // retransmitted skbs too). A retransmission that fills a hole is always delivered below
    // RACK.fack: counted, every recovery widened the reordering window to min_RTT / 4 for
    // the rest of the connection, and the next loss waited 10 ms longer on a 40 ms path.
    if !s.retransmitted && fack.is_some_and(|f| s.end.lt(f)) {
        d.reordered = true;
    }
    if !s.retransmitted {
        let rtt = now.saturating_since(s.xmit);
        d.rtt_sample = Some(d.rtt_sample.map_or(rtt, |r| r.min(rtt)));
    }
}

/// RFC 8985 §6.2 `RACK_sent_after(t1, seq1, t2, seq2)`: the first was sent after the
/// second (or at the same time, with a higher end sequence).
pub fn sent_after(t1: Instant, seq1: SeqNum, t2: Instant, seq2: SeqNum) -> bool {
    t1 > t2 || (t1 == t2 && seq1.gt(seq2))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::Duration;

    fn s(n: u32) -> SeqNum {
        SeqNum::new(u32::MAX - 2500).add(n)
    }

    fn t(ms: u64) -> Instant {
        Instant::from_millis(ms)
    }

    #[test]
    fn acks_deliver_and_sample_only_segments_sent_once() {
        let mut log = SentLog::default();
        for k in 0..4 {
            log.on_send(s(k * 1000), s(k * 1000 + 1000), t(10 + u64::from(k)));
        }
        // The second is retransmitted at 50 ms.
        log.on_send(s(1000), s(2000), t(50));
        let none = |_: SeqNum, _: SeqNum| false;
        let mut fack = None;
        let d = log.on_ack(t(60), s(1000), none, &mut fack);
        assert_eq!(d.rtt_sample, Some(Duration::from_millis(50)));
        assert_eq!(d.newest, Some((t(10), s(1000), false)));
        // The retransmitted one: no sample; it is the newest delivered.
        let d = log.on_ack(t(70), s(2000), none, &mut fack);
        assert_eq!(d.rtt_sample, None);
        assert_eq!(d.newest, Some((t(50), s(2000), true)));
        assert_eq!(log.iter().count(), 2);
    }

    /// Four segments of 1,000 bytes, all sent at 10 ms.
    fn four_sent_at_10_ms() -> SentLog {
        let mut log = SentLog::default();
        for k in 0..4 {
            log.on_send(s(k * 1000), s(k * 1000 + 1000), t(10));
        }
        log
    }

    #[test]
    fn sacks_mark_records_and_reveal_reordering() {
        let mut log = four_sent_at_10_ms();
        let mut fack = None;
        let d = log.on_ack(
            t(30),
            s(0),
            |a, b| a.ge(s(3000)) && b.le(s(4000)),
            &mut fack,
        );
        assert_eq!(d.newly_sacked, 1);
        assert!(!d.reordered);
        assert_eq!(log.pipe(), 3000);
        // The first arrives after the fourth: delivered below RACK.fack.
        let d = log.on_ack(
            t(31),
            s(1000),
            |a, b| a.ge(s(3000)) && b.le(s(4000)),
            &mut fack,
        );
        assert!(d.reordered);
    }

    /// A retransmission that fills the hole below SACKed data is delivered below RACK.fack,
    /// but it is not reordering (RFC 8985 §6.2 step 3): only a segment sent once is.
    #[test]
    fn a_retransmission_filling_a_hole_is_not_reordering() {
        let mut log = four_sent_at_10_ms();
        let mut fack = None;
        let sacked = |a: SeqNum, b: SeqNum| a.ge(s(1000)) && b.le(s(4000));
        let d = log.on_ack(t(50), s(0), sacked, &mut fack);
        assert!(!d.reordered);
        // The first is retransmitted, and its ACK covers everything.
        log.on_send(s(0), s(1000), t(51));
        let d = log.on_ack(t(91), s(4000), sacked, &mut fack);
        assert!(!d.reordered, "{d:?}");
    }

    #[test]
    fn a_partial_retransmission_splits_the_record() {
        let mut log = SentLog::default();
        log.on_send(s(0), s(4000), t(10));
        log.on_send(s(1000), s(2000), t(40));
        let v: Vec<_> = log
            .iter()
            .map(|r| (r.start, r.end, r.retransmitted))
            .collect();
        assert_eq!(
            v,
            [
                (s(0), s(1000), false),
                (s(1000), s(2000), true),
                (s(2000), s(4000), false)
            ]
        );
    }

    #[test]
    fn a_partial_ack_delivers_only_what_it_covers() {
        let mut log = SentLog::default();
        log.on_send(s(0), s(4000), t(10));
        let d = log.on_ack(t(50), s(3000), |_, _| false, &mut None);
        // RACK's newest delivered ends at the ACK, not at the record's end: the rest, sent
        // at the same time with a higher end, counts as sent after it.
        assert_eq!(d.newest, Some((t(10), s(3000), false)));
        let rest = log.iter().next().copied();
        assert_eq!(rest.map(|r| (r.start, r.end)), Some((s(3000), s(4000))));
        assert!(rest.is_some_and(|r| sent_after(r.xmit, r.end, t(10), s(3000))));
    }

    #[test]
    fn a_record_partly_sacked_is_split_at_the_blocks_edges() {
        let mut log = SentLog::default();
        // One super-segment of four segments; the second is lost, the rest SACKed.
        log.on_send(s(0), s(4000), t(10));
        log.on_send(s(4000), s(5000), t(11));
        log.split_at_sack_edges([(s(2000), s(4000)), (s(4500), s(4600))].into_iter());
        let sacked = |a: SeqNum, b: SeqNum| a.ge(s(2000)) && b.le(s(4000));
        let mut d = Delivered::default();
        log.on_sacked(t(60), sacked, &mut d, &mut None);
        let v: Vec<_> = log.iter().map(|r| (r.start, r.end, r.sacked)).collect();
        assert_eq!(
            v,
            [
                (s(0), s(2000), false),
                (s(2000), s(4000), true),
                (s(4000), s(4500), false),
                (s(4500), s(4600), false),
                (s(4600), s(5000), false),
            ]
        );
        assert_eq!(d.newly_sacked, 1);
        assert_eq!(log.pipe(), 3000);
        // Edges outside every record, or on a record's edge, change nothing.
        log.split_at_sack_edges([(s(0), s(2000)), (s(9000), s(9500))].into_iter());
        assert_eq!(log.iter().count(), 5);
    }

    #[test]
    fn lost_segments_leave_the_pipe_until_retransmitted() {
        let mut log = SentLog::default();
        for k in 0..3 {
            log.on_send(s(k * 1000), s(k * 1000 + 1000), t(10));
        }
        log.mark_all_lost(false);
        assert_eq!(log.pipe(), 0);
        assert_eq!(log.first_lost().map(|r| r.start), Some(s(0)));
        log.on_send(s(0), s(1000), t(20));
        assert_eq!(log.pipe(), 1000);
        assert_eq!(log.first_lost().map(|r| r.start), Some(s(1000)));
        assert_eq!(log.lost_bytes(), 2000);
    }
}
