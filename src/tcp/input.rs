//! SEGMENT ARRIVES in SYN-RECEIVED and the synchronized states (RFC 9293 §3.10.7.4).
//! LISTEN and CLOSED (§3.10.7.1–2) are the endpoint's business: no TCB exists there.

use super::connection::{AckDue, Connection, ResetCause};
use super::recovery::Delivered;
use super::reset::rst_reply;
use super::sack::{DUP_THRESH, SackUpdate};
use super::trace::{Direction, Label};
use super::{SeqNum, State};
use crate::time::{Duration, Instant};
use crate::wire::{Flags, TcpSegment};
use tracing::debug;

/// RFC 7323 §5.5: how long TS.Recent stays valid without an update: 24 days (the fastest
/// allowed timestamp clock, 1 ms, wraps its sign bit in 24.8), as Linux's TCP_PAWS_24DAYS.
const PAWS_IDLE_LIMIT: Duration = Duration::from_secs(24 * 24 * 60 * 60);

/// The least time between two challenge ACKs, or two ACKs for out-of-window segments, on
/// one connection: Linux's `net.ipv4.tcp_invalid_ratelimit` (500 ms), applied by
/// `__tcp_oow_rate_limited`. It stops two endpoints that disagree about the sequence space
/// from ACKing each other's ACKs forever, and blunts floods of in-window RSTs and SYNs
/// (RFC 5961 §7 leaves the limit to the implementation), before the global budget
/// (`endpoint::ChallengeLimiter`) is consulted.
pub(super) const OOW_ACK_INTERVAL: Duration = Duration::from_millis(500);

/// Which ACK the per-connection limit is asked about, for the counters.
#[derive(Clone, Copy)]
enum OowAck {
    /// A duplicate ACK for a segment outside the window (Linux: `TCPACKSkippedSeq`).
    OutOfWindow,
    /// A duplicate ACK for a segment PAWS rejected (Linux: `TCPACKSkippedPAWS`).
    Paws,
}

/// What the fifth step (the ACK field) decided.
enum AckOutcome {
    Continue,
    Drop,
    Reply(TcpSegment<'static>),
}

impl Connection {
    /// Process one segment for this connection (RFC 9293 §3.10.7.4, `process_segment` below) and record
    /// it in the trace with the state it left the connection in. Returns a RST to send at once
    /// when the rules call for one; every other reply comes from `poll_transmit`.
    pub fn on_segment(
        &mut self,
        now: Instant,
        seg: &TcpSegment<'_>,
    ) -> Option<TcpSegment<'static>> {
        let reply = self.process_segment(now, seg);
        self.trace.record(Direction::In, now, seg, self.state);
        let ecn = self.ecn_sample(seg);
        if seg.flags.ack() && !self.samples.is_empty() {
            // The highest SACK block it carried, for the time-sequence graph.
            let o = &seg.options;
            let sack = o
                .sack_blocks
                .get(..usize::from(o.sack_count))
                .unwrap_or_default()
                .iter()
                .map(|b| (b.left, b.right))
                .reduce(|a, b| if b.1.gt(a.1) { b } else { a });
            let sender = self.sender_state();
            self.samples.on_ack(now, self.snd.iss, sack, &sender, ecn);
        }
        if let Some(rst) = &reply {
            self.trace.record(Direction::Out, now, rst, self.state);
        }
        reply
    }

    /// Process one segment for this connection. Returns a RST to send at once when the rules
    /// call for one; every other reply (ACKs, data) is produced by `poll_transmit`.
    pub(super) fn process_segment(
        &mut self,
        now: Instant,
        seg: &TcpSegment<'_>,
    ) -> Option<TcpSegment<'static>> {
        let span = self.span();
        let _enter = span.enter();
        self.process(now, seg, false)
    }

    /// [`Connection::process_segment`]; `syn_window` says the segment's window field came
    /// from a SYN, which is never scaled (RFC 7323 §2.2).
    fn process(
        &mut self,
        now: Instant,
        seg: &TcpSegment<'_>,
        syn_window: bool,
    ) -> Option<TcpSegment<'static>> {
        match self.state {
            State::Closed | State::Listen => return None,
            State::SynSent => return self.on_segment_syn_sent(now, seg),
            _ => {}
        }

        // Simultaneous open (RFC 9293 §3.5, Figure 8, MUST-10): in SYN-RECEIVED after our own
        // SYN, the peer's SYN,ACK sits just below RCV.NXT and Table 6 would reject it. Linux
        // (tcp_validate_incoming) lets it through as the ACK that completes the handshake;
        // its window, that of a SYN, is taken unscaled (RFC 7323 §2.2).
        if self.state == State::SynReceived
            && !self.passive
            && seg.flags.syn()
            && seg.flags.ack()
            && !seg.flags.rst()
            && seg.seq.add(1) == self.rcv.nxt
            && seg.ack == self.snd.nxt
        {
            let ack = TcpSegment {
                seq: self.rcv.nxt,
                flags: Flags::ACK,
                payload: &[],
                ..*seg
            };
            return self.process(now, &ack, true);
        }

        // A retransmitted SYN in SYN-RECEIVED (our SYN,ACK was lost): answer with the same
        // SYN,ACK. RFC 9293 would ACK it as out of window; Linux (tcp_check_req) resends the
        // SYN,ACK, which lets the peer complete the handshake sooner.
        if self.state == State::SynReceived
            && seg.flags.syn()
            && !seg.flags.ack()
            && !seg.flags.rst()
            && seg.seq == self.rcv.irs
        {
            self.syn_due = true;
            return None;
        }

        // RFC 7323 §5.3 R1 (PAWS): a segment whose TSval is older than TS.Recent is a
        // duplicate from an earlier wrap of the sequence space: ACK it and drop it.
        if self.paws_rejects(now, seg) {
            self.paws_drops = self.paws_drops.saturating_add(1);
            self.events_mut().paws_rejected += 1;
            self.dup_ack(now, seg, OowAck::Paws);
            return None;
        }

        // First: check the sequence number (§3.10.7.4, Table 6).
        let zero_window_control = self.rcv.wnd() == 0 && seg.seq == self.rcv.nxt;
        if !self.acceptable(seg) {
            // MUST-66: at a zero window, ACK, RST and URG are still processed when the segment
            // sits exactly at RCV.NXT; its data is not.
            if !zero_window_control {
                // "If an incoming segment is not acceptable, an acknowledgment should be sent
                // in reply (unless the RST bit is set ...)".
                if seg.flags.rst() {
                    // RFC 5961 §3.2: an out-of-window RST is dropped silently.
                    self.events_mut().out_of_window_rst += 1;
                } else {
                    self.events_mut().out_of_window += 1;
                    if self.state == State::TimeWait && seg.flags.fin() {
                        // §3.10.7.4 eighth step, TIME-WAIT: a retransmitted FIN is acknowledged
                        // and the 2·MSL timeout restarted.
                        self.enter_time_wait(now);
                        self.ack_reason = Label::TimeWaitReAck;
                    }
                    self.dup_ack(now, seg, OowAck::OutOfWindow);
                }
                return None;
            }
        }

        // Second: the RST bit.
        if seg.flags.rst() {
            self.on_rst(now, seg);
            return None;
        }

        // Fourth: the SYN bit (the third, security, does not apply).
        if seg.flags.syn() {
            if self.state == State::SynReceived && self.passive {
                // §3.10.7.4 fourth (MUST-11): a passive open returns to LISTEN.
                debug!("SYN in SYN-RECEIVED: back to LISTEN");
                self.close_silently(None);
            } else {
                // RFC 5961 §4 via §3.10.7.4: a SYN in a synchronized state gets a challenge ACK.
                self.events_mut().syn_challenged += 1;
                self.challenge_ack(now);
            }
            return None;
        }

        // Fifth: the ACK field. "If the ACK bit is off, drop the segment and return."
        if !seg.flags.ack() {
            return None;
        }
        let una_before = self.snd.una;
        match self.on_ack(now, seg, syn_window) {
            // An acceptable segment: the peer is alive (RFC 9293 §3.8.4, keep-alive).
            AckOutcome::Continue => self.keepalive_heard(now),
            AckOutcome::Drop => return None,
            AckOutcome::Reply(rst) => return Some(rst),
        }
        // RFC 7323 §4.3: update TS.Recent, but only from a segment whose ACK was acceptable,
        // so a forged bad-ACK segment cannot move it.
        self.update_ts_recent(now, seg);
        self.ecn_input(now, seg, una_before);

        // Sixth: URG. The urgent pointer is not acted on: urgent bytes stay in the stream,
        // in order (MUST-30..33 only ask that the stream is not corrupted).

        // Seventh: the segment text.
        if zero_window_control && !seg.payload.is_empty() {
            self.ack_due = AckDue::Now;
            return None;
        }
        let all_taken = self.on_text(now, seg);

        // Eighth: the FIN bit, only once every byte before it has been received (a FIN that
        // arrived beyond a hole counts once the hole is filled).
        if (seg.flags.fin() && all_taken) || self.reasm.fin() == Some(self.rcv.nxt) {
            self.on_fin(now);
        }
        None
    }

    /// RFC 9293 §3.10.7.3: SEGMENT ARRIVES in SYN-SENT.
    fn on_segment_syn_sent(
        &mut self,
        now: Instant,
        seg: &TcpSegment<'_>,
    ) -> Option<TcpSegment<'static>> {
        // "First, check the ACK bit: if SEG.ACK =< ISS or SEG.ACK > SND.NXT, send a reset
        // (unless the RST bit is set) <SEQ=SEG.ACK><CTL=RST>, discard the segment."
        if seg.flags.ack() && (seg.ack.le(self.snd.iss) || seg.ack.gt(self.snd.nxt)) {
            return rst_reply(seg);
        }
        // "Second, check the RST bit: if the ACK was acceptable, signal 'connection reset',
        // enter CLOSED; otherwise drop the segment." (RFC 5961 §3.2 leaves SYN-SENT as is.)
        if seg.flags.rst() {
            if seg.flags.ack() {
                debug!("connection refused");
                self.close_silently(Some(ResetCause::Refused));
            }
            return None;
        }
        // "Fourth, check the SYN bit"; "if neither SYN nor RST is set, drop the segment".
        if !seg.flags.syn() {
            return None;
        }
        self.learn_syn(seg);
        self.ts_recent_at = now;
        if seg.flags.ack() {
            // "If SND.UNA > ISS (our SYN has been ACKed), change the connection state to
            // ESTABLISHED, form an ACK segment <SEQ=SND.NXT><ACK=RCV.NXT><CTL=ACK>."
            // Departure: a FIN (or data) on the SYN,ACK is not taken: RCV.NXT = SEG.SEQ + 1,
            // so our ACK leaves it unacknowledged and the peer retransmits it, as Linux's
            // tcp_rcv_synsent_state_process does (it only goes on to the URG step). RFC 9293
            // would continue at the sixth step.
            self.snd.wl2 = seg.ack;
            // RFC 7413 §4.2.2: its cookie, and whether it acknowledged our SYN's data.
            self.fast_open_on_syn_ack(seg);
            self.ts_rtt_sample_unless_timed(now, seg);
            self.on_new_ack(now, seg.ack);
            self.rto_after_handshake();
            self.set_state(State::Established);
            if self.fin_queued {
                self.set_state(State::FinWait1);
            }
            self.ack_due = AckDue::Now;
        } else {
            // "Otherwise, enter SYN-RECEIVED, form a SYN,ACK segment <SEQ=ISS><ACK=RCV.NXT>".
            self.set_state(State::SynReceived);
            self.syn_due = true;
            self.timers.retransmit = None;
        }
        None
    }

    /// RFC 7323 §5.3: PAWS applies to non-RST segments carrying a timestamp, once timestamps
    /// are in use.
    fn paws_rejects(&self, now: Instant, seg: &TcpSegment<'_>) -> bool {
        self.ts_recent().paws_rejects(now, seg)
    }

    /// What PAWS and TS.Recent's update look at (RFC 7323 §4.3, §5).
    fn ts_recent(&self) -> TsRecent {
        TsRecent {
            on: self.opts.ts,
            value: self.ts_recent,
            at: self.ts_recent_at,
        }
    }

    /// RFC 7323 §4.3: "If SEG.TSval >= TS.Recent and SEG.SEQ =< Last.ACK.sent, then SEG.TSval
    /// is copied to TS.Recent" (any TSval once TS.Recent is invalid, §5.5).
    fn update_ts_recent(&mut self, now: Instant, seg: &TcpSegment<'_>) {
        let mut ts = self.ts_recent();
        ts.update(now, seg, self.last_ack_sent);
        (self.ts_recent, self.ts_recent_at) = (ts.value, ts.at);
    }

    /// §3.10.7.4 Table 6: the four cases of segment acceptability.
    fn acceptable(&self, seg: &TcpSegment<'_>) -> bool {
        acceptable(self.rcv.nxt, self.rcv.wnd(), seg)
    }

    /// §3.10.7.4 second step, with RFC 5961 §3.2.
    fn on_rst(&mut self, now: Instant, seg: &TcpSegment<'_>) {
        // RFC 5961 §3.2: only a RST exactly at RCV.NXT resets; any other in-window RST gets a
        // challenge ACK (out-of-window ones were dropped by the acceptability test).
        if seg.seq != self.rcv.nxt {
            self.events_mut().rst_challenged += 1;
            self.challenge_ack(now);
            return;
        }
        match self.state {
            State::SynReceived if self.passive => {
                // MUST-11: a half-open from LISTEN just returns to LISTEN.
                debug!("reset in SYN-RECEIVED: back to LISTEN");
                self.close_silently(None);
            }
            State::SynReceived => {
                // §3.10.7.4 second step: "If this connection was initiated with an active
                // OPEN (i.e., came from SYN-SENT state), then the connection was refused".
                debug!("reset in SYN-RECEIVED of an active open: connection refused");
                self.close_silently(Some(ResetCause::Refused));
            }
            // RFC 1337: a RST in TIME-WAIT is ignored, so that an old duplicate RST cannot
            // "assassinate" TIME-WAIT. Departure from Linux's default (net.ipv4.tcp_rfc1337=0),
            // which closes TIME-WAIT on a RST.
            State::TimeWait => debug!("RST in TIME-WAIT ignored (RFC 1337)"),
            _ => {
                debug!("connection reset by peer");
                self.close_silently(Some(ResetCause::PeerReset));
            }
        }
    }

    /// RFC 5961 §3.2, §4.2: `<SEQ=SND.NXT><ACK=RCV.NXT><CTL=ACK>`, at most one per
    /// [`OOW_ACK_INTERVAL`] on this connection (Linux: `tcp_send_challenge_ack` checks
    /// `__tcp_oow_rate_limited` first, counting `TCPACKSkippedChallenge`); the endpoint then
    /// asks its global budget (RFC 5961 §7).
    fn challenge_ack(&mut self, now: Instant) {
        if self.oow_rate_limited(now) {
            self.events_mut().challenge_acks_skipped += 1;
        } else {
            self.challenge_due = true;
        }
    }

    /// RFC 9293 §3.10.7.4: "If an incoming segment is not acceptable, an acknowledgment
    /// should be sent in reply" (and RFC 7323 §5.3 for PAWS) — rate-limited as Linux's
    /// `tcp_oow_rate_limited` does: a segment carrying data or a FIN, without a SYN, is always
    /// answered (it is not part of an ACK loop, and the peer may be retransmitting because our
    /// ACK was lost); a bare ACK or a SYN gets at most one answer per [`OOW_ACK_INTERVAL`].
    fn dup_ack(&mut self, now: Instant, seg: &TcpSegment<'_>, why: OowAck) {
        let carries_data = !seg.payload.is_empty() || seg.flags.fin();
        if !seg.payload.is_empty() && seg.seq.lt(self.rcv.nxt) {
            // RFC 2883 §4: data we have already: report it in a D-SACK block (as Linux's
            // tcp_send_dupack does for an old segment).
            let end = seg.seq.add(u32::try_from(seg.payload.len()).unwrap_or(0));
            let end = if end.gt(self.rcv.nxt) {
                self.rcv.nxt
            } else {
                end
            };
            self.report_duplicate(seg.seq, end);
        }
        if (carries_data && !seg.flags.syn()) || !self.oow_rate_limited(now) {
            self.ack_due = AckDue::Now;
            return;
        }
        match why {
            OowAck::OutOfWindow => self.events_mut().out_of_window_acks_skipped += 1,
            OowAck::Paws => self.events_mut().paws_acks_skipped += 1,
        }
    }

    /// RFC 2883: `[left, right)` of a segment is data we hold already (below RCV.NXT, or
    /// queued out of order): the next ACK reports it first, as a D-SACK block, so that the
    /// sender can tell a spurious retransmission (Linux: `tcp_dsack_set`,
    /// `TCPDSACKOldSent` / `TCPDSACKOfoSent`).
    fn report_duplicate(&mut self, left: SeqNum, right: SeqNum) {
        // The sender is retransmitting: our ACKs may be getting lost (Linux:
        // tcp_enter_quickack_mode in tcp_send_dupack, with or without SACK).
        self.enter_quick_ack();
        if !self.opts.sack || !left.lt(right) {
            return;
        }
        self.sack_rx.make_mut().on_duplicate((left, right));
        if right.le(self.rcv.nxt) {
            self.events_mut().dsack_old_sent += 1;
        } else {
            self.events_mut().dsack_ofo_sent += 1;
        }
    }

    /// Enter quick-ACK mode (`quickack.rs`).
    fn enter_quick_ack(&mut self) {
        let mss = self.rcv_mss.max(1);
        self.quick_ack.enter(self.rcv.wnd(), mss);
    }

    /// Linux's `__tcp_oow_rate_limited`: true if an ACK of this kind went out less than
    /// [`OOW_ACK_INTERVAL`] ago; otherwise the caller may send one, and the time is noted.
    fn oow_rate_limited(&mut self, now: Instant) -> bool {
        oow_rate_limited(&mut self.last_oow_ack, now)
    }

    /// §3.10.7.4 fifth step. `syn_window`: the window field is a SYN's (see `process`).
    fn on_ack(&mut self, now: Instant, seg: &TcpSegment<'_>, syn_window: bool) -> AckOutcome {
        // RFC 7323 §2.3: the window of a non-SYN segment is scaled by the peer's shift; §2.2:
        // that of a SYN never is.
        let shift = if seg.flags.syn() || syn_window {
            0
        } else {
            self.opts.snd_shift
        };
        let establishing = self.state == State::SynReceived;
        if self.state == State::SynReceived {
            // "If SND.UNA < SEG.ACK =< SND.NXT, then enter ESTABLISHED state and continue
            // processing with the variables SND.WND <- SEG.WND, SND.WL1 <- SEG.SEQ,
            // SND.WL2 <- SEG.ACK"; otherwise "form a reset segment <SEQ=SEG.ACK><CTL=RST>".
            if !(seg.ack.gt(self.snd.una) && seg.ack.le(self.snd.nxt)) {
                return rst_reply(seg).map_or(AckOutcome::Drop, AckOutcome::Reply);
            }
            self.set_state(State::Established);
            self.update_window(seg, shift);
            if self.fin_queued {
                // The application closed while the handshake was completing.
                self.set_state(State::FinWait1);
            }
        }

        // RFC 9293 §3.10.7.4: "If the ACK acks something not yet sent (SEG.ACK > SND.NXT),
        // then send an ACK, drop the segment, and return."
        if seg.ack.gt(self.snd.nxt) {
            self.events_mut().ack_unsent += 1;
            self.ack_due = AckDue::Now;
            return AckOutcome::Drop;
        }
        // RFC 5961 §5.2: an ACK older than SND.UNA − MAX.SND.WND is discarded and answered
        // with a (rate-limited, as Linux does) challenge ACK.
        if seg.ack.lt(self.snd.una.sub(self.snd.max_wnd)) {
            self.events_mut().ack_too_old += 1;
            self.challenge_ack(now);
            return AckOutcome::Drop;
        }

        let flight_before = self.snd.nxt.distance_from(self.snd.una);
        let advances = seg.ack.gt(self.snd.una);
        // SND.UNA =< SEG.ACK (SEG.ACK =< SND.NXT was checked above).
        let ack_in_range = seg.ack.ge(self.snd.una);
        // RFC 5681 §2: a duplicate ACK acknowledges nothing new, carries no data, no SYN or
        // FIN, and does not change the window, while data is outstanding.
        let mut delivered = Delivered::default();
        let mut cum_delivered = 0;
        let mut duplicate = seg.ack == self.snd.una
            && self.in_flight()
            && seg.payload.is_empty()
            && !seg.flags.syn()
            && !seg.flags.fin()
            && u32::from(seg.window) << shift == self.snd.wnd;
        if seg.ack.gt(self.snd.una) {
            let acked = seg.ack.distance_from(self.snd.una);
            // RFC 7323 §4.1: with timestamps, the RTT is measured from the echoed TSval, which
            // stays right even for retransmitted segments (so, unlike Karn's rule, recovery
            // yields samples and a backed-off RTO collapses, as in Linux). Once per round trip.
            // Karn's rule in timestamp space: after a timeout, an echo of a TSval from before
            // it may belong to the original transmission (when only its ACK was lost, the
            // retransmission arrives as a duplicate and the ACK echoes the old TS.Recent), so
            // it would measure RTO + RTT; only echoes of later transmissions are samples.
            delivered = self.rtt_on_ack(now, seg);
            self.on_new_ack(now, seg.ack);
            // What reached the receiver with this ACK: bytes SACKed before count when they
            // were SACKed, not again now (Linux grows cwnd by `acked_sacked`).
            let sacked_before = self.scoreboard.sacked_bytes();
            if let Some(sb) = self.scoreboard.existing_mut() {
                sb.on_ack(seg.ack);
            }
            let was_sacked = sacked_before.saturating_sub(self.scoreboard.sacked_bytes());
            cum_delivered = acked.saturating_sub(was_sacked);
            // RFC 3522: was the recovery or the timeout spurious? (Before the ACK ends it.)
            self.try_undo_on_ack(seg.ack, seg.options.timestamps.map(|(_, ecr)| ecr));
            // RFC 5682: F-RTO, when the timestamps could not tell.
            self.frto_on_ack(seg.ack, true);
            // RFC 9406: leave slow start when the RTT rises (or, as Linux, on an ACK train).
            self.hystart_on_ack(now, seg.ack, delivered.rtt_sample);
            self.congestion_on_ack(now, seg.ack, cum_delivered, flight_before);
            if establishing {
                self.rto_after_handshake();
            }
        } else if seg.ack == self.snd.una && (seg.window == 0 || !self.in_flight()) {
            // The peer is answering our zero-window probes or keep-alives: it is alive, so
            // probing never aborts the connection (MUST-37).
            self.retries = 0;
            self.first_timeout = None;
        }

        // RFC 6675 Update(): record the SACK blocks (after SND.UNA has moved). With SACK, an
        // ACK is a duplicate when it reports new SACKed data (RFC 6675 §2, DupAcks).
        let mut update = SackUpdate::default();
        if self.opts.sack {
            let mut blocks = [(SeqNum::new(0), SeqNum::new(0)); crate::wire::MAX_SACK_BLOCKS];
            let mut n = 0;
            for (slot, b) in blocks.iter_mut().zip(seg.options.sack()) {
                *slot = (b.left, b.right);
                n += 1;
            }
            let (una, nxt, blocks) = (self.snd.una, self.snd.nxt, blocks.get(..n).unwrap_or(&[]));
            // Without a block, an empty scoreboard learns nothing: it stays unallocated.
            let sb = if n > 0 {
                Some(self.scoreboard.make_mut())
            } else {
                self.scoreboard.existing_mut()
            };
            if let Some(sb) = sb {
                update = sb.on_sack(una, nxt, blocks);
            }
            if n > 0 && seg.ack == self.snd.una {
                duplicate = update.newly_sacked > 0 && self.in_flight();
            }
        }
        // The segments in flight, RACK and the tail loss probe (recovery/).
        let newly_lost =
            self.recovery_on_ack(now, seg, delivered, &update, advances, flight_before);
        if duplicate {
            self.frto_on_ack(seg.ack, false);
            self.on_duplicate_ack(now, flight_before);
        }
        // RFC 9937: in fast recovery, how much this ACK lets out (Proportional Rate
        // Reduction).
        let delivered_bytes = if !self.opts.sack && self.cc.in_recovery() {
            self.reno_delivered(cum_delivered, duplicate)
        } else {
            cum_delivered.saturating_add(update.newly_sacked)
        };
        self.prr_on_ack(delivered_bytes, advances && newly_lost == 0);

        // "If SND.UNA =< SEG.ACK =< SND.NXT, the send window should be updated. If
        // (SND.WL1 < SEG.SEQ or (SND.WL1 = SEG.SEQ and SND.WL2 =< SEG.ACK))". An old ACK
        // (SEG.ACK < SND.UNA) never updates it, whatever its SEQ.
        // Departure: an ACK that advances SND.UNA always carries the current window, as in
        // Linux (tcp_may_update_window). Otherwise an ACK riding on a retransmitted segment
        // (whose SEG.SEQ is below SND.WL1) would move SND.UNA but not SND.WND, and
        // SND.UNA + SND.WND would reach past anything the peer offered.
        if advances
            || (ack_in_range
                && (self.snd.wl1.lt(seg.seq)
                    || (self.snd.wl1 == seg.seq && self.snd.wl2.le(seg.ack))))
        {
            self.update_window(seg, shift);
        }

        match self.state {
            State::FinWait1 if self.fin_acked() => self.enter_fin_wait_2(now),
            State::Closing if self.fin_acked() => self.enter_time_wait(now),
            State::LastAck if self.fin_acked() => {
                self.set_state(State::Closed);
                return AckOutcome::Drop;
            }
            _ => {}
        }
        AckOutcome::Continue
    }

    /// The cumulative part of an ACK that acknowledged new data: the segments it covers
    /// leave the record of what is in flight, and give the RTT sample, once per round trip,
    /// from their transmit times in microseconds (Karn, RFC 6298 §3: only segments sent
    /// once), as Linux measures it; when there is none (everything it covers was
    /// retransmitted), from the echoed timestamp (RFC 7323 §4.1), as Linux falls back.
    fn rtt_on_ack(&mut self, now: Instant, seg: &TcpSegment<'_>) -> Delivered {
        let st = super::recovery::state(&mut self.rec.st);
        let delivered = st.sent.on_cumulative(now, seg.ack, &mut st.fack);
        match delivered.rtt_sample {
            Some(rtt) if seg.ack.ge(self.ts_sample_mark) => {
                self.rtt.sample(rtt);
                self.rtt_probe = None;
                self.ts_sample_mark = self.snd.nxt;
            }
            Some(_) => {}
            None => self.ts_rtt_sample_unless_timed(now, seg),
        }
        delivered
    }

    /// An RTT sample from the echoed timestamp, unless the ACK covers our SYN or SYN,ACK
    /// sent once, which `on_new_ack` times in microseconds (`rtt_probe`).
    fn ts_rtt_sample_unless_timed(&mut self, now: Instant, seg: &TcpSegment<'_>) {
        if !self.rtt_probe.is_some_and(|(end, _)| seg.ack.ge(end)) {
            self.ts_rtt_sample(now, seg);
        }
    }

    /// RFC 7323 §4.1: an RTT sample from the TSecr of an ACK of new data (see `on_ack`).
    fn ts_rtt_sample(&mut self, now: Instant, seg: &TcpSegment<'_>) {
        if self.opts.ts
            && let Some((_, tsecr)) = seg.options.timestamps
            && tsecr != 0
            && seg.ack.ge(self.ts_sample_mark)
            && self
                .ts_rto_floor
                .is_none_or(|floor| (tsecr.wrapping_sub(floor) as i32) >= 0)
        {
            let ms = self.ts_now(now).wrapping_sub(tsecr);
            if ms < 60_000 {
                self.rtt.sample(Duration::from_millis(u64::from(ms)));
                self.rtt_probe = None;
                self.ts_sample_mark = self.snd.nxt;
            }
        }
    }

    /// RFC 6298 §5.7: once the handshake is done, with no RTT sample from it (our SYN or
    /// SYN,ACK was sent more than once, so Karn's rule left it untimed), the RTO is 3 s, as
    /// Linux's tcp_init_metrics sets it (TCP_TIMEOUT_FALLBACK).
    fn rto_after_handshake(&mut self) {
        if self.rtt.srtt().is_none() {
            self.rtt.set_rto(Duration::from_secs(3));
        }
    }

    /// An ACK advanced SND.UNA by `acked` (RFC 5681 §3.1 growth; RFC 6582 §3.2 steps 3 and 5).
    fn congestion_on_ack(&mut self, now: Instant, ack: SeqNum, acked: u32, flight_before: u32) {
        self.dup_acks = 0;
        if let Some(st) = self.rec.st.as_mut()
            && st.in_loss
            && ack.ge(self.recover)
        {
            // What was in flight at the timeout is acknowledged: the Loss state ends.
            st.in_loss = false;
            st.rack.on_recovery_exit();
        }
        if self.in_cwr() {
            // After an ECE, PRR sets the window (`prr_on_ack`); it does not grow meanwhile
            // (Linux's tcp_cong_control: a reduction or growth, never both).
        } else if !self.cc.in_recovery() {
            // Whether the window is being used is judged over the round, not after each ACK
            // (issue 19; Linux's tcp_is_cwnd_limited): see `cc::CwndUsage`.
            let used = self.cwnd_usage.flight(flight_before);
            self.cc.on_ack(now, acked, self.rtt.srtt(), used);
        } else if ack.ge(self.recover) {
            // A full ACK: recovery ends.
            self.cc.on_recovery_exit(now);
            if let Some(sb) = self.scoreboard.existing_mut() {
                sb.end_recovery();
            }
            self.rack_on_recovery_exit();
            if let Some(st) = self.rec.st.as_mut() {
                st.rack.on_recovery_exit();
            }
        } else {
            // A partial ACK: the next hole is lost too. Without SACK, retransmit it now
            // (RFC 6582 §3.2 step 5; PRR, not window deflation, sets what else may go);
            // with SACK, NextSeg() finds it.
            if !self.opts.sack {
                self.fast_rtx_due = true;
            }
        }
    }

    /// RFC 5681 §3.2 / RFC 6582 §3.2 / RFC 6675 §5: count duplicate ACKs and enter fast
    /// recovery on the third (or when the scoreboard deems SND.UNA lost).
    fn on_duplicate_ack(&mut self, now: Instant, flight: u32) {
        self.dup_acks = self.dup_acks.saturating_add(1);
        if self.cc.in_recovery() {
            // PRR counts it (`prr_on_ack`); no window inflation (RFC 9937).
            return;
        }
        if self.rack_active() {
            // RACK decides (recovery/): no duplicate-ACK threshold (RFC 8985 §6).
            return;
        }
        let smss = u32::from(self.eff_mss());
        let lost = self.opts.sack && self.scoreboard.is_lost(self.snd.una, smss);
        // RFC 6582 §3.2 step 2: not again for losses from before the last recovery: only
        // when the cumulative ACK "covers more than recover", the highest sequence number
        // sent then, i.e. SND.UNA ≥ `recover` (which holds SND.NXT, one past it). (A strict
        // `>` missed a loss of the first segment sent after the last recovery began: it
        // waited for the RTO. Issue 19.)
        if (u32::from(self.dup_acks) >= DUP_THRESH || lost) && self.snd.una.ge(self.recover) {
            debug!(dup_acks = self.dup_acks, "fast retransmit");
            self.recover = self.snd.nxt;
            let prior_cwnd = self.cc.cwnd();
            self.undo_start();
            // RFC 5681 §3.2 step 2 reduces from FlightSize; but not from the segments Limited
            // Transmit sent beyond cwnd (RFC 3042 §2: they leave cwnd as it was): from cwnd
            // when the window is full, as Linux's `ssthresh` hooks always do.
            self.cc.enter_recovery(now, flight.min(prior_cwnd));
            self.prr_start(prior_cwnd);
            if self.opts.sack {
                self.scoreboard.make_mut().start_recovery(self.snd.una);
                self.events_mut().sack_recovery += 1;
            } else {
                // The duplicate ACKs before this one left the network (RFC 9937 §6);
                // `reno_delivered` counts this one.
                let mss = u32::from(self.eff_mss());
                let earlier = u32::from(self.dup_acks.saturating_sub(1)).saturating_mul(mss);
                super::recovery::state(&mut self.rec.st).reno_sacked =
                    earlier.min(flight.saturating_sub(mss));
                self.events_mut().reno_recovery += 1;
            }
            self.fast_rtx_due = true;
        }
    }

    /// SND.WND <- SEG.WND << `shift`, SND.WL1 <- SEG.SEQ, SND.WL2 <- SEG.ACK.
    fn update_window(&mut self, seg: &TcpSegment<'_>, shift: u8) {
        self.snd.wnd = u32::from(seg.window) << shift;
        self.snd.wl1 = seg.seq;
        self.snd.wl2 = seg.ack;
        self.snd.max_wnd = self.snd.max_wnd.max(self.snd.wnd);
        if self.snd.wnd > 0 {
            self.probe_due = false;
            if self.rtt.restore_rto_after_probes() {
                // The window opened: the persist timer's backoff ends with it, and the timer
                // is re-armed from the restored RTO when data goes out.
                self.timers.retransmit = None;
            }
        }
    }

    /// SND.UNA < SEG.ACK =< SND.NXT: new data (or our SYN, or our FIN) acknowledged.
    fn on_new_ack(&mut self, now: Instant, ack: SeqNum) {
        // Drop the acknowledged bytes from the send buffer.
        if ack.gt(self.send_start) {
            let acked = ack.distance_from(self.send_start).min(self.send_buf_len());
            let n = usize::try_from(acked).unwrap_or(usize::MAX);
            if let Some(q) = self.queues.existing_mut() {
                let n = n.min(q.send.len());
                q.send.drain(..n);
            }
            self.send_start = self.send_start.add(acked);
        }
        self.snd.una = ack;
        self.mtu_probe_on_ack(now, ack);
        if self.tx_next.lt(ack) {
            self.tx_next = ack;
        }
        // RFC 6298 §3 (Karn): only a segment sent once is timed.
        if let Some((end, sent)) = self.rtt_probe
            && ack.ge(end)
        {
            self.rtt.sample(now.saturating_since(sent));
            self.rtt_probe = None;
        }
        self.retries = 0;
        self.first_timeout = None;
        // RFC 6298 §5.2: all data acknowledged, stop the timer; §5.3: otherwise restart it.
        self.timers.retransmit = None;
        if self.in_flight() {
            self.arm_retransmit(now);
        }
    }

    /// §3.10.7.4 seventh step. Returns whether everything up to the segment's end was taken
    /// (so that a FIN on it may be processed).
    fn on_text(&mut self, now: Instant, seg: &TcpSegment<'_>) -> bool {
        if seg.payload.is_empty() {
            if seg.flags.fin() && seg.seq.gt(self.rcv.nxt) {
                // A FIN beyond a hole: remember it and tell the peer what we miss.
                self.ack_due = AckDue::Now;
                self.ack_reason = Label::DupAck(0);
                if seg.seq.in_window(self.rcv.nxt, self.rcv.wnd().max(1)) {
                    self.reasm_mut().set_fin(seg.seq);
                }
            }
            return seg.seq == self.rcv.nxt;
        }
        if !matches!(
            self.state,
            State::Established | State::FinWait1 | State::FinWait2
        ) {
            // CLOSE-WAIT, CLOSING, LAST-ACK, TIME-WAIT: "This should not occur since a FIN has
            // been received from the remote side. Ignore the segment text."
            return false;
        }
        if seg.seq.gt(self.rcv.nxt) {
            self.on_out_of_order(seg);
            return false;
        }
        // Trim what we already have from the front, and what exceeds the window from the end.
        let skip = usize::try_from(self.rcv.nxt.distance_from(seg.seq)).unwrap_or(usize::MAX);
        if skip > 0 {
            // RFC 2883 §4: its front was a duplicate.
            self.report_duplicate(seg.seq, self.rcv.nxt);
        }
        let fresh = seg.payload.get(skip..).unwrap_or(&[]);
        // The window we advertised is a promise: take what it covers (the buffer may exceed
        // its size by less than one window-scale unit, see `advertise`).
        let room = usize::try_from(self.rcv.wnd()).unwrap_or(0);
        // Departure: at the buffer memory limit, in-window data beyond what is held is
        // dropped (memory.rs) and the peer retransmits it, as Linux does (TCPRcvQDrop); the
        // right edge still never moves left.
        let take = self.memory_admit(fresh.len().min(room));
        let taken = fresh.get(..take).unwrap_or(&[]);
        if !taken.is_empty() {
            self.queues.make_mut().recv.extend(taken);
        }
        let n = u32::try_from(take).unwrap_or(0);
        self.rcv.nxt = self.rcv.nxt.add(n);
        if seg.flags.fin() && take == fresh.len() {
            // §3.10.7.4 eighth step: the FIN takes the number after its segment's text and
            // ends the stream; queued bytes numbered after it are not part of it.
            self.reasm.reset();
        }
        if n > 0 {
            // The receiver's RTT estimate, for receive-buffer autotuning (memory.rs).
            self.rcv_rtt_measure(now, seg.options.timestamps.map(|(_, ecr)| ecr));
            let mss = self.rcv_mss.max(n.min(u32::from(self.local_mss)));
            self.quick_ack
                .on_data(now, self.rtt.rto(), self.rcv.wnd(), mss);
        }
        // Queued bytes that are now contiguous follow; an ACK that fills a hole goes at once
        // (RFC 5681 §4.2).
        let filled = match self.reasm.existing_mut() {
            Some(q) if !q.is_empty() => {
                q.take_ready(self.rcv.nxt, &mut self.queues.make_mut().recv)
            }
            _ => 0,
        };
        self.rcv.nxt = self.rcv.nxt.add(filled);
        if filled > 0 {
            // A hole is filled: the sender is leaving recovery; its next segments are ACKed
            // at once (issue 19; see quickack.rs).
            self.enter_quick_ack();
        }
        if skip > 0 || take < fresh.len() || take == 0 || filled > 0 {
            // A duplicate or a segment past our window: acknowledge at once.
            self.ack_due = AckDue::Now;
        } else {
            self.schedule_ack(now, take);
        }
        take == fresh.len()
    }

    /// SHLD-31: a segment beyond RCV.NXT (but in the window) is queued for later, and
    /// answered at once with a duplicate ACK carrying SACK blocks (RFC 5681 §4.2, RFC 2018 §4).
    fn on_out_of_order(&mut self, seg: &TcpSegment<'_>) {
        self.ack_due = AckDue::Now;
        self.ack_reason = Label::DupAck(0);
        let offset = seg.seq.distance_from(self.rcv.nxt);
        let room = usize::try_from(self.rcv.wnd().saturating_sub(offset)).unwrap_or(0);
        let keep = self.memory_admit(room.min(seg.payload.len()));
        let data = seg.payload.get(..keep).unwrap_or(&[]);
        // RFC 2883 §4: the part of it already queued is a duplicate (the first such part,
        // as Linux's tcp_data_queue_ofo reports).
        let end = seg.seq.add(u32::try_from(data.len()).unwrap_or(0));
        let queued = self
            .reasm
            .ranges()
            .find(|&(l, r)| l.lt(end) && seg.seq.lt(r));
        if let Some((l, r)) = queued {
            self.report_duplicate(l.max(seg.seq), r.min(end));
        }
        let rcv_nxt = self.rcv.nxt;
        let outcome = self.reasm_mut().insert(rcv_nxt, seg.seq, data);
        if let Some(block) = outcome.block
            && self.opts.sack
        {
            self.sack_rx.make_mut().on_out_of_order(block);
        }
        if seg.flags.fin() && data.len() == seg.payload.len() && !outcome.dropped {
            // A FIN beyond a hole: remembered, and processed once the hole is filled.
            self.reasm_mut()
                .set_fin(seg.seq.add(u32::try_from(data.len()).unwrap_or(0)));
        }
    }

    /// RFC 9293 §3.8.6.3 (MUST-58, SHLD-19): delay the ACK, but ACK at least every second
    /// full-sized segment, and never later than `delayed_ack` (MUST-40: under 0.5 s).
    fn schedule_ack(&mut self, now: Instant, len: usize) {
        let len = u32::try_from(len).unwrap_or(u32::MAX);
        self.rcv_mss = self.rcv_mss.max(len.min(u32::from(self.local_mss)));
        if len >= self.rcv_mss {
            // A super-segment from a device with segmentation offload (or GRO) stands for
            // len / MSS segments, so it is ACKed at once, as Linux ACKs a GRO train.
            let full = (len / self.rcv_mss.max(1)).max(1);
            self.unacked_segments = self
                .unacked_segments
                .saturating_add(u16::try_from(full).unwrap_or(u16::MAX));
        }
        if self.unacked_segments >= 2 || self.quick_ack.active() {
            self.ack_due = AckDue::Now;
        } else if self.ack_due == AckDue::None {
            self.ack_due = AckDue::Delayed;
            self.timers.delayed_ack = Some(now + self.cfg.delayed_ack);
        }
    }

    /// RFC 9293 §3.10.7.4 (MAY-2) with RFC 6191: whether a SYN arriving in TIME-WAIT is
    /// known not to be an old duplicate, so that it may reopen the connection. When both the
    /// old connection and the SYN use timestamps, its TSval must be newer than TS.Recent (or
    /// equal, with SEG.SEQ above RCV.NXT); otherwise SEG.SEQ must be above RCV.NXT. Linux's
    /// tcp_timewait_state_process takes the same SYNs (PAWS, then TSval or SEQ).
    pub fn time_wait_accepts_syn(&self, seg: &TcpSegment<'_>) -> bool {
        self.state == State::TimeWait && syn_reopens(self.ts_recent(), self.rcv.nxt, seg)
    }

    /// §3.10.7.4 eighth step.
    fn on_fin(&mut self, now: Instant) {
        if self.fin_received {
            self.ack_due = AckDue::Now;
            return;
        }
        self.fin_received = true;
        // Nothing numbered after the FIN is part of the stream (nor SACKed).
        self.reasm.reset();
        // "advance RCV.NXT over the FIN, and send an acknowledgment for the FIN".
        self.rcv.nxt = self.rcv.nxt.add(1);
        self.rcv.right_edge = self.rcv.right_edge.max(self.rcv.nxt);
        self.ack_due = AckDue::Now;
        match self.state {
            State::SynReceived | State::Established => self.set_state(State::CloseWait),
            State::FinWait1 if self.fin_acked() => self.enter_time_wait(now),
            State::FinWait1 => self.set_state(State::Closing),
            State::FinWait2 | State::TimeWait => self.enter_time_wait(now),
            _ => {}
        }
    }
}

/// RFC 9293 §3.10.7.4 Table 6: the four cases of segment acceptability, for RCV.NXT `nxt` and
/// RCV.WND `wnd` (also TIME-WAIT's record, `time_wait.rs`).
pub(super) fn acceptable(nxt: SeqNum, wnd: u32, seg: &TcpSegment<'_>) -> bool {
    let len = seg.seg_len();
    match (len, wnd) {
        (0, 0) => seg.seq == nxt,
        // Departure: a zero-length segment exactly at the right edge is taken, as Linux's
        // tcp_sequence() does (`!after(seq, rcv_nxt + window)`): a peer's ACK sent at its
        // SND.NXT after it went back to retransmit can sit there. Not for a RST, whose
        // window stays strict (RFC 5961 §3.2).
        (0, _) if !seg.flags.rst() => seg.seq.in_window(nxt, wnd.saturating_add(1)),
        (0, _) => seg.seq.in_window(nxt, wnd),
        // Departure: a bare FIN exactly at RCV.NXT is taken at a zero window, as Linux's
        // tcp_sequence() allows, so a peer's close is not delayed by our full buffer.
        (_, 0) => seg.payload.is_empty() && !seg.flags.syn() && seg.seq == nxt,
        (_, _) => seg.seq.in_window(nxt, wnd) || seg.seq.add(len - 1).in_window(nxt, wnd),
    }
}

/// Linux's `__tcp_oow_rate_limited`: true if an ACK of this kind went out less than
/// [`OOW_ACK_INTERVAL`] after `last`; otherwise the caller may send one, and `now` is noted.
pub(super) fn oow_rate_limited(last: &mut Option<Instant>, now: Instant) -> bool {
    if last.is_some_and(|last| now.saturating_since(last) < OOW_ACK_INTERVAL) {
        return true;
    }
    *last = Some(now);
    false
}

/// RFC 9293 §3.10.7.4 (MAY-2) with RFC 6191: whether a SYN arriving in TIME-WAIT (at
/// RCV.NXT `rcv_nxt`, TS.Recent `ts`) is known not to be an old duplicate; see
/// [`Connection::time_wait_accepts_syn`].
pub(super) fn syn_reopens(ts: TsRecent, rcv_nxt: SeqNum, seg: &TcpSegment<'_>) -> bool {
    if !seg.flags.syn() || seg.flags.ack() || seg.flags.rst() {
        return false;
    }
    let above = seg.seq.gt(rcv_nxt);
    match (ts.on, seg.options.timestamps) {
        (true, Some((tsval, _))) => {
            let newer = tsval.wrapping_sub(ts.value) as i32;
            newer > 0 || (newer == 0 && above)
        }
        _ => above,
    }
}

/// TS.Recent (RFC 7323 §4.3) and when it was last updated, once timestamps are in use
/// (`on`): what PAWS (§5) checks a segment against.
#[derive(Clone, Copy, Debug)]
pub(super) struct TsRecent {
    pub on: bool,
    pub value: u32,
    pub at: Instant,
}

impl TsRecent {
    /// RFC 7323 §5.3: PAWS applies to non-RST segments carrying a timestamp, once
    /// timestamps are in use.
    pub fn paws_rejects(&self, now: Instant, seg: &TcpSegment<'_>) -> bool {
        if !self.on || seg.flags.rst() {
            return false;
        }
        match seg.options.timestamps {
            // RFC 7323 §5.5: an implementation of PAWS must "invalidate" TS.Recent when the
            // connection has been idle for more than 24 days (the peer's clock may have
            // wrapped its sign bit since); the segment is then accepted and R3 takes its
            // TSval. Linux does the same (TCP_PAWS_24DAYS in tcp_paws_check).
            Some((tsval, _)) => (tsval.wrapping_sub(self.value) as i32) < 0 && self.valid(now),
            // RFC 7323 §3.2 says a segment without a timestamp SHOULD be dropped; Linux
            // accepts it, and so do we, rather than stall a peer that omits one.
            None => false,
        }
    }

    /// RFC 7323 §4.3: "If SEG.TSval >= TS.Recent and SEG.SEQ =< Last.ACK.sent, then SEG.TSval
    /// is copied to TS.Recent" (any TSval once TS.Recent is invalid, §5.5).
    pub fn update(&mut self, now: Instant, seg: &TcpSegment<'_>, last_ack_sent: SeqNum) {
        if let (true, Some((tsval, _))) = (self.on, seg.options.timestamps)
            && ((tsval.wrapping_sub(self.value) as i32) >= 0 || !self.valid(now))
            && seg.seq.le(last_ack_sent)
        {
            self.value = tsval;
            self.at = now;
        }
    }

    /// RFC 7323 §5.5: TS.Recent is valid for 24 days after it was last updated.
    fn valid(&self, now: Instant) -> bool {
        now.saturating_since(self.at) <= PAWS_IDLE_LIMIT
    }
}
