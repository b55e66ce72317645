//! RACK (RFC 8985 §6): a segment is lost when a segment sent sufficiently later has been
//! delivered, "sufficiently" being one RTT plus a reordering window. Time, not counts of
//! duplicate ACKs: a lost retransmission, a lost tail behind a probe, and losses in a
//! window too small for three duplicate ACKs are all detected the same way.
//!
//! Linux's `tcp_recovery.c` (`tcp_rack_detect_loss`, `tcp_rack_update_reo_wnd`,
//! `tcp_rack_advance`) is the model; where it departs from the RFC we say so.

use super::sent::{Delivered, SentLog, sent_after};
use crate::seqnum::SeqNum;
use crate::time::{Duration, Instant};

/// RFC 8985 §6.2: how many recoveries a grown reordering window persists for.
const REO_WND_PERSIST: u32 = 16;

#[derive(Clone, Copy, Debug, Default)]
pub struct Rack {
    /// RACK.xmit_ts / RACK.end_seq: the most recently sent segment delivered so far.
    xmit: Option<(Instant, SeqNum)>,
    /// RACK.rtt: the RTT of that segment.
    rtt: Duration,
    /// RACK.reordering_seen.
    pub reordering_seen: bool,
    /// RACK.reo_wnd_mult, RACK.reo_wnd_persist, RACK.dsack_round.
    reo_wnd_mult: u32,
    reo_wnd_persist: u32,
    dsack_round: Option<SeqNum>,
    /// The reordering window last computed, for `status --info`.
    pub reo_wnd: Duration,
}

impl Rack {
    /// RFC 8985 §6.2 step 2 (`RACK_update`) and step 3 (reordering): take what one ACK
    /// delivered. A retransmitted segment whose delivery came sooner than the minimum RTT
    /// after its retransmission is ignored: the ACK was for the original.
    /// `original_acked`: the ACK's TSecr predates the newest segment's retransmission, so the
    /// original was delivered (§6.2 step 2: "ACK.ts_option.echo_reply < Segment.xmit_ts").
    pub fn on_delivered(
        &mut self,
        now: Instant,
        d: &Delivered,
        min_rtt: Option<Duration>,
        original_acked: bool,
    ) {
        if d.reordered {
            self.reordering_seen = true;
        }
        let Some((xmit, end, retransmitted)) = d.newest else {
            return;
        };
        let rtt = now.saturating_since(xmit);
        if retransmitted && (original_acked || min_rtt.is_some_and(|m| rtt < m)) {
            return;
        }
        if self.xmit.is_none_or(|(t, e)| sent_after(xmit, end, t, e)) {
            self.xmit = Some((xmit, end));
            self.rtt = rtt;
        }
    }

    /// Nothing learnt that must outlive an idle period (no reordering seen, the window
    /// not widened).
    pub fn pristine(&self) -> bool {
        !self.reordering_seen && self.reo_wnd_mult <= 1
    }

    /// RFC 8985 §6.2 step 4 (`RACK_update_reo_wnd`), D-SACK part: a D-SACK grows the window
    /// by min_RTT / 4, once per round trip.
    pub fn on_dsack(&mut self, snd_una: SeqNum, snd_nxt: SeqNum) {
        if self.dsack_round.is_some_and(|r| snd_una.ge(r)) {
            self.dsack_round = None;
        }
        if self.dsack_round.is_none() {
            self.dsack_round = Some(snd_nxt);
            self.reo_wnd_mult = self.reo_wnd_mult.max(1) + 1;
            self.reo_wnd_persist = REO_WND_PERSIST;
        }
    }

    /// A recovery ended: after 16 without D-SACK the window returns to min_RTT / 4.
    pub fn on_recovery_exit(&mut self) {
        self.reo_wnd_persist = self.reo_wnd_persist.saturating_sub(1);
        if self.reo_wnd_persist == 0 {
            self.reo_wnd_mult = 1;
        }
    }

    /// RFC 8985 §6.2 step 4: the reordering window. Zero while no reordering has been seen
    /// and the connection is in recovery or DupThresh segments are SACKed (then losses are
    /// detected as quickly as by three duplicate ACKs); else min(mult · min_RTT / 4, SRTT).
    pub fn reo_wnd(
        &self,
        in_recovery: bool,
        sacked_segments: u32,
        min_rtt: Option<Duration>,
        srtt: Option<Duration>,
    ) -> Duration {
        if !self.reordering_seen && (in_recovery || sacked_segments >= super::DUP_THRESH) {
            return Duration::ZERO;
        }
        let base = min_rtt.unwrap_or(Duration::ZERO) / 4 * self.reo_wnd_mult.max(1);
        srtt.map_or(base, |s| base.min(s))
    }

    /// RFC 8985 §6.2 step 5 (`RACK_detect_loss`): mark lost each segment not yet delivered
    /// that was sent before the most recently delivered one by more than RACK.rtt +
    /// reo_wnd. Returns how many were newly marked, and the time until the earliest of the
    /// others would be (the reordering timer, §6.3), if any is waiting.
    pub fn detect_loss(
        &mut self,
        now: Instant,
        log: &mut SentLog,
        reo_wnd: Duration,
    ) -> (u32, Option<Duration>) {
        self.reo_wnd = reo_wnd;
        let Some((rack_xmit, rack_end)) = self.xmit else {
            return (0, None);
        };
        let mut marked = 0;
        let mut wait: Option<Duration> = None;
        for s in log.iter_mut() {
            if s.sacked || s.lost {
                continue;
            }
            if sent_after(s.xmit, s.end, rack_xmit, rack_end) {
                // Sent after the newest delivered one: nothing to say yet. A first
                // transmission ends the walk: everything above it was first sent later still,
                // and retransmitted later than that (Linux walks its time-sorted list and
                // stops the same way), so a loss-free ACK costs one step.
                if !s.retransmitted {
                    break;
                }
                continue;
            }
            let deadline = s.xmit + self.rtt + reo_wnd;
            if deadline <= now {
                s.lost = true;
                marked += 1;
            } else {
                let remaining = deadline.saturating_since(now);
                wait = Some(wait.map_or(remaining, |w| w.max(remaining)));
            }
        }
        (marked, wait)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(n: u32) -> SeqNum {
        SeqNum::new(100).add(n)
    }

    fn t(ms: u64) -> Instant {
        Instant::from_millis(ms)
    }

    fn log_of(n: u32, at: Instant) -> SentLog {
        let mut log = SentLog::default();
        for k in 0..n {
            log.on_send(s(k * 1000), s(k * 1000 + 1000), at);
        }
        log
    }

    #[test]
    fn a_segment_sent_before_a_delivered_one_is_lost_after_rtt_plus_the_window() {
        let mut rack = Rack::default();
        let mut log = log_of(2, t(0));
        // The second segment is sent 5 ms after the first, and SACKed at 45 ms.
        log.on_send(s(2000), s(3000), t(5));
        let d = log.on_ack(
            t(45),
            s(0),
            |a, b| a.ge(s(2000)) && b.le(s(3000)),
            &mut None,
        );
        rack.on_delivered(t(45), &d, Some(Duration::from_millis(40)), false);
        let wnd = Duration::from_millis(10);
        // 0 + 40 + 10 = 50 ms: not yet; a timer for the remaining 5 ms.
        let (n, wait) = rack.detect_loss(t(45), &mut log, wnd);
        assert_eq!((n, wait), (0, Some(Duration::from_millis(5))));
        let (n, wait) = rack.detect_loss(t(50), &mut log, wnd);
        assert_eq!((n, wait), (2, None));
        assert_eq!(log.first_lost().map(|r| r.start), Some(s(0)));
    }

    #[test]
    fn the_window_is_zero_in_recovery_until_reordering_is_seen_and_grows_with_dsack() {
        let mut rack = Rack::default();
        let min = Some(Duration::from_millis(40));
        let srtt = Some(Duration::from_millis(50));
        assert_eq!(rack.reo_wnd(false, 0, min, srtt), Duration::from_millis(10));
        assert_eq!(rack.reo_wnd(true, 0, min, srtt), Duration::ZERO);
        assert_eq!(rack.reo_wnd(false, 3, min, srtt), Duration::ZERO);
        rack.reordering_seen = true;
        assert_eq!(rack.reo_wnd(true, 3, min, srtt), Duration::from_millis(10));
        // A D-SACK: once per round trip.
        rack.on_dsack(s(0), s(5000));
        rack.on_dsack(s(0), s(5000));
        assert_eq!(rack.reo_wnd(true, 3, min, srtt), Duration::from_millis(20));
        rack.on_dsack(s(5000), s(9000));
        assert_eq!(rack.reo_wnd(true, 3, min, srtt), Duration::from_millis(30));
        // Capped by SRTT.
        for k in 0..10 {
            rack.on_dsack(s(10_000 * (k + 1)), s(10_000 * (k + 1) + 1));
        }
        assert_eq!(rack.reo_wnd(true, 3, min, srtt), Duration::from_millis(50));
        // 16 recoveries later it is back to min_RTT / 4.
        for _ in 0..16 {
            rack.on_recovery_exit();
        }
        assert_eq!(rack.reo_wnd(true, 3, min, srtt), Duration::from_millis(10));
    }

    #[test]
    fn an_ack_of_the_original_does_not_count_as_the_retransmissions_delivery() {
        let mut rack = Rack::default();
        let mut log = log_of(1, t(0));
        log.on_send(s(0), s(1000), t(100)); // retransmitted
        let d = log.on_ack(t(105), s(1000), |_, _| false, &mut None);
        rack.on_delivered(t(105), &d, Some(Duration::from_millis(40)), false);
        assert!(
            rack.xmit.is_none(),
            "5 ms after the retransmission: the original's ACK"
        );
    }
}
