//! What a connection does with RACK and TLP: the calls from input (after each ACK), from
//! the timers and from output (the probe). Kept here, beside the state they drive, so that
//! `input.rs` and `output.rs` only call in.

use super::{CaState, Delivered, Frto, ProbeOutcome, Prr, RecoveryKind, Tlp, Undo, Undone, state};
use crate::tcp::connection::Connection;
use crate::tcp::sack::SackUpdate;
use crate::tcp::trace::Label;
use crate::tcp::{SeqNum, State};
use crate::time::Instant;
use crate::wire::TcpSegment;

impl Connection {
    /// RACK-TLP is in use: `--recovery rack` and SACK negotiated (Linux's RACK, too, needs
    /// SACK; a connection without it keeps three duplicate ACKs).
    pub(in crate::tcp) fn rack_active(&self) -> bool {
        self.cfg.recovery == RecoveryKind::Rack && self.opts.sack
    }

    /// The congestion state, as Linux names it.
    pub(in crate::tcp) fn ca_state(&self) -> CaState {
        if self.rec.in_loss() {
            CaState::Loss
        } else if self.cc.in_recovery() {
            CaState::Recovery
        } else if self.in_cwr() {
            CaState::Cwr
        } else if !self.scoreboard.is_empty() || self.dup_acks > 0 {
            CaState::Disorder
        } else {
            CaState::Open
        }
    }

    /// After an ACK's SACK blocks are on the scoreboard: mark what is now SACKed among the
    /// segments in flight, then RACK (RFC 8985 §6.2), the probe's outcome (§7.4) and the
    /// next probe (§7.2). `d`: what the cumulative part of the ACK delivered; `advanced`:
    /// it acknowledged new data; `flight`: the bytes in flight before it.
    pub(in crate::tcp) fn recovery_on_ack(
        &mut self,
        now: Instant,
        seg: &TcpSegment<'_>,
        mut d: Delivered,
        update: &SackUpdate,
        advanced: bool,
        flight: u32,
    ) -> u32 {
        let (ack, tsecr) = (seg.ack, seg.options.timestamps.map(|(_, ecr)| ecr));
        if update.dsack {
            self.events_mut().dsack_recv += 1;
            // RFC 2883 §5 / RFC 3708: each retransmission of the episode reported as a
            // duplicate; all of them: undo (Linux's tcp_try_undo_dsack).
            if let (Some(left), Some(st)) = (update.dsack_left, self.rec.st.as_mut())
                && st.undo.on_dsack(left)
            {
                self.undo(if self.rec.in_loss() {
                    Undone::Loss
                } else {
                    Undone::Dsack
                });
            }
        }
        let sb = &self.scoreboard;
        let st = state(&mut self.rec.st);
        if !sb.is_empty() {
            st.sent.split_at_sack_edges(sb.ranges());
            st.sent
                .on_sacked(now, |a, b| sb.covers(a, b), &mut d, &mut st.fack);
        }
        if !self.rack_active() {
            return 0;
        }
        let (una, nxt) = (self.snd.una, self.snd.nxt);
        // RFC 8985 §6.2 step 2: an echo older than the newest segment's retransmission
        // means its original was delivered. Only for a cumulative ACK: the echo of an ACK
        // that SACKs data above a hole is of the segment before the hole (RFC 7323 §4.3), so
        // says nothing about the SACKed one (Linux checks min_RTT alone).
        let original_acked = match (d.newest, tsecr) {
            (Some((xmit, _, true)), Some(ecr))
                if ecr != 0 && self.opts.ts && d.newly_sacked == 0 =>
            {
                (ecr.wrapping_sub(self.ts_now(xmit)) as i32) < 0
            }
            _ => false,
        };
        let min_rtt = self.rtt.min_rtt();
        let st = state(&mut self.rec.st);
        st.rack.on_delivered(now, &d, min_rtt, original_acked);
        if update.dsack {
            // RFC 8985 §6.2 step 4: D-SACK means reordering (or a spurious retransmission):
            // widen the window.
            st.rack.reordering_seen = true;
            st.rack.on_dsack(una, nxt);
        }
        let delivered = advanced || d.newly_sacked > 0;
        if st.tlp.on_ack(ack, update.dsack, delivered) == ProbeOutcome::RepairedLoss {
            // RFC 8985 §7.4.2: the probe repaired a loss: react as to one (Linux: a cwnd
            // reduction, TCPLossProbeRecovery), without a recovery episode.
            self.events_mut().loss_probe_recovery += 1;
            self.cc.enter_recovery(now, self.cc.cwnd());
            self.cc.on_recovery_exit(now);
        }
        let marked = self.rack_detect_loss(now, flight);
        if !self.in_flight() {
            let st = state(&mut self.rec.st);
            st.tlp.deadline = None;
            st.reo_deadline = None;
        } else if advanced {
            self.schedule_probe(now);
        }
        marked
    }

    /// A recovery or a timeout begins: remember what to restore should it prove spurious.
    /// Call before the window is reduced.
    pub(in crate::tcp) fn undo_start(&mut self) {
        let (una, cwnd, ssthresh) = (self.snd.una, self.cc.cwnd(), self.cc.ssthresh());
        // Retransmissions still in flight from before this episode belong to it too (Linux's
        // `tcp_init_undo`: undo_retrans = retrans_out, and retrans_stamp stays that of the
        // first of them): an ACK of one of them echoing a TSval from before it is no proof
        // that an original arrived. Issue 19: a recovery that began just after the one that
        // retransmitted the segment at SND.UNA took the timestamp of its own first
        // retransmission, so the retransmission's own echo "proved" it spurious, and 10 MB
        // at 3 % loss were sent at twelve times the rate TCP allows.
        let mut outstanding = 0u32;
        let mut earliest: Option<Instant> = None;
        for s in self
            .rec
            .sent()
            .iter()
            .filter(|s| s.retransmitted && !s.sacked)
        {
            outstanding += 1;
            earliest = Some(earliest.map_or(s.xmit, |e| e.min(s.xmit)));
        }
        let mut first_ts = earliest.map(|t| self.ts_now(t));
        // A segment retransmitted twice keeps only its last transmit time: the episode
        // before may know an earlier first retransmission of one still in flight.
        let prev = self
            .rec
            .st
            .as_ref()
            .and_then(|st| st.undo.first_retransmission());
        if let (Some(t), Some(p)) = (first_ts, prev)
            && (p.wrapping_sub(t) as i32) < 0
        {
            first_ts = Some(p);
        }
        state(&mut self.rec.st).undo =
            Undo::start(una, cwnd, ssthresh).with_outstanding(outstanding, first_ts);
    }

    /// RFC 5682 §2.1: a first timeout: F-RTO watches the next ACKs.
    pub(in crate::tcp) fn frto_start(&mut self) {
        let high = self.snd.nxt;
        state(&mut self.rec.st).frto = Some(Frto::First { high });
    }

    /// A second timeout, or a decision: F-RTO is over.
    pub(in crate::tcp) fn frto_stop(&mut self) {
        if let Some(st) = self.rec.st.as_mut() {
            st.frto = None;
        }
    }

    /// RFC 5682 §2 steps 2 and 3, on each ACK in the Loss state (before it may end it).
    /// `advanced`: it acknowledged new data.
    pub(in crate::tcp) fn frto_on_ack(&mut self, ack: SeqNum, advanced: bool) {
        let Some(frto) = self.rec.st.as_ref().and_then(|st| st.frto) else {
            return;
        };
        if !self.rec.in_loss() {
            self.frto_stop();
            return;
        }
        match frto {
            Frto::First { high } => {
                let wnd_end = self.snd.una.add(self.snd.wnd);
                // Step 2.b: new data acknowledged, not all of it, and new data may go.
                if advanced && ack.lt(high) && self.has_unsent() && self.snd.nxt.lt(wnd_end) {
                    let mss = u32::from(self.eff_mss());
                    let limit = self.snd.nxt.add(2 * mss);
                    // Two new segments instead of retransmissions.
                    self.tx_next = self.snd.nxt;
                    state(&mut self.rec.st).frto = Some(Frto::Second { limit });
                } else {
                    // Step 2.a: a duplicate ACK, or nothing new to send: conventional recovery.
                    self.frto_stop();
                }
            }
            Frto::Second { .. } => {
                self.frto_stop();
                if advanced {
                    // Step 3.b: new data acknowledged again: the timeout was spurious.
                    self.undo(Undone::Loss);
                } else {
                    // Step 3.a: a duplicate ACK: the loss was real; go back to SND.UNA.
                    self.tx_next = self.snd.una;
                }
            }
        }
    }

    /// F-RTO's two new segments may go beyond cwnd (RFC 5682 §2.1 step 2.b): the room
    /// beyond `una + cwnd` up to its limit.
    pub(in crate::tcp) fn frto_allowance(&self) -> u32 {
        match self.rec.st.as_ref().and_then(|st| st.frto) {
            Some(Frto::Second { limit }) => {
                let cwnd_end = self.snd.una.add(self.cc.cwnd());
                if limit.gt(cwnd_end) {
                    limit.distance_from(cwnd_end)
                } else {
                    0
                }
            }
            _ => 0,
        }
    }

    /// An ACK of new data in recovery or after a timeout: undo if the timestamps show the
    /// originals arrived (RFC 3522; Linux's `tcp_try_undo_recovery`, `_partial`, `_loss`).
    /// Call before the ACK ends the recovery.
    pub(in crate::tcp) fn try_undo_on_ack(&mut self, ack: SeqNum, tsecr: Option<u32>) {
        let Some(st) = self.rec.st.as_ref() else {
            return;
        };
        if !st.undo.eifel(tsecr) {
            return;
        }
        if st.in_loss {
            self.undo(Undone::Loss);
        } else if self.cc.in_recovery() {
            self.undo(if ack.ge(self.recover) {
                Undone::Full
            } else {
                Undone::Partial
            });
        }
    }

    /// Give the window back (see `recovery/undo.rs`) and count it.
    pub(in crate::tcp) fn undo(&mut self, how: Undone) {
        let st = state(&mut self.rec.st);
        let u = st.undo;
        st.undo.end();
        st.frto = None;
        tracing::debug!(?how, "undo: the reduction was spurious");
        self.cc.undo(u.prior_cwnd, u.prior_ssthresh);
        if let Some(sb) = self.scoreboard.existing_mut() {
            sb.end_recovery();
        }
        self.samples.on_undo();
        let events = self.events.get_or_insert_with(Box::default);
        match how {
            Undone::Dsack => events.dsack_undo += 1,
            Undone::Full => events.full_undo += 1,
            Undone::Partial => events.partial_undo += 1,
            Undone::Loss => {
                events.loss_undo += 1;
                events.spurious_rtos += 1;
            }
        }
        if st.in_loss {
            // Nothing was lost: no go-back-N (Linux's tcp_undo_cwnd_reduction unmarks).
            st.in_loss = false;
            st.sent.unmark_lost();
            self.tx_next = self.snd.nxt;
        }
    }

    /// RFC 9406 HyStart++: an ACK of new data in the initial slow start (or its CSS), with
    /// this ACK's RTT sample.
    pub(in crate::tcp) fn hystart_on_ack(
        &mut self,
        now: crate::time::Instant,
        ack: SeqNum,
        rtt: Option<crate::time::Duration>,
    ) {
        if self.cc.in_recovery() || self.rec.in_loss() {
            return;
        }
        let initial = self.cc.ssthresh() == u32::MAX;
        let st = state(&mut self.rec.st);
        if st.hystart.done || !(initial || st.hystart.in_css()) {
            st.hystart.done = true;
            return;
        }
        let info = crate::tcp::cc::hystart::AckInfo {
            ack,
            snd_nxt: self.snd.nxt,
            rtt,
            now,
            min_rtt: self.rtt.min_rtt(),
            // In segments of the effective MSS, as the recovery code counts them (and Linux
            // its packets).
            cwnd_segments: self.cc.cwnd() / u32::from(self.eff_mss().max(1)),
        };
        let step = state(&mut self.rec.st).hystart.on_ack(info);
        match step {
            crate::tcp::cc::hystart::Step::EnterCss => {
                tracing::debug!(
                    cwnd = self.cc.cwnd(),
                    ?rtt,
                    "HyStart++: the RTT rose, conservative slow start"
                );
                self.events_mut().hystart_delay_detect += 1;
            }
            crate::tcp::cc::hystart::Step::AckTrain => {
                tracing::debug!(
                    cwnd = self.cc.cwnd(),
                    "HyStart: an ACK train of half the minimum RTT, congestion avoidance"
                );
                self.events_mut().hystart_train_detect += 1;
            }
            _ => {}
        }
        self.cc.hystart(step);
    }

    /// RFC 9937: recovery begins; `prior_cwnd` the window before the reduction.
    pub(in crate::tcp) fn prr_start(&mut self, prior_cwnd: u32) {
        let st = state(&mut self.rec.st);
        st.prr = Prr::start(prior_cwnd);
        st.reno_sacked = 0;
    }

    /// Without SACK, the bytes duplicate ACKs said left the network during this fast
    /// recovery (0 otherwise): they make room in the window as SACKed bytes do.
    pub(in crate::tcp) fn reno_sacked(&self) -> u32 {
        if self.opts.sack || !self.cc.in_recovery() {
            return 0;
        }
        self.rec.st.as_ref().map_or(0, |st| st.reno_sacked)
    }

    /// RFC 9937 §6, DeliveredData without SACK: "the change in snd.una, plus ... one SMSS
    /// for each duplicate ACK"; a later partial ACK counts only what the duplicate ACKs
    /// did not already count (at least a segment: the retransmission it acknowledges). As
    /// Linux's `tcp_add_reno_sack` and `tcp_remove_reno_sacks`, in bytes. `acked`: what this
    /// ACK moved SND.UNA by; `duplicate`: a duplicate ACK. Call in non-SACK fast recovery;
    /// returns this ACK's DeliveredData.
    pub(in crate::tcp) fn reno_delivered(&mut self, acked: u32, duplicate: bool) -> u32 {
        let mss = u32::from(self.eff_mss()).max(1);
        let flight = self.snd.nxt.distance_from(self.snd.una);
        let st = state(&mut self.rec.st);
        if duplicate {
            // At most the flight less the segment at SND.UNA, which is lost (as Linux's
            // `tcp_limit_reno_sacked`).
            let before = st.reno_sacked;
            st.reno_sacked = before.saturating_add(mss).min(flight.saturating_sub(mss));
            return mss;
        }
        if acked == 0 {
            return 0;
        }
        let delivered = acked.saturating_sub(st.reno_sacked).max(mss.min(acked));
        st.reno_sacked = st.reno_sacked.saturating_sub(acked.saturating_sub(mss));
        delivered
    }

    /// RFC 9937 "On every ACK starting or during fast recovery": cwnd = pipe + sndcnt.
    /// `delivered`: the bytes this ACK newly acknowledged or SACKed (without SACK, as
    /// `reno_delivered` estimates them); `safe_ack`: SND.UNA advanced and no new loss was
    /// found. Also in the CWR state after an ECE (`ecn.rs`), as Linux's `tcp_cwnd_reduction`.
    pub(in crate::tcp) fn prr_on_ack(&mut self, delivered: u32, safe_ack: bool) {
        if !(self.cc.in_recovery() || self.in_cwr()) {
            return;
        }
        let mss = u32::from(self.eff_mss()).max(1);
        let pipe = if self.rack_active() {
            self.rec.sent().pipe()
        } else if self.opts.sack {
            self.scoreboard.pipe(self.snd.una, self.snd.nxt, mss)
        } else {
            // RFC 9937 §6 without SACK: what is in flight less what the duplicate ACKs said
            // left the network, and less the segment at SND.UNA while it is lost and not yet
            // retransmitted (RFC 6675's pipe; Linux's `tcp_packets_in_flight` with the head
            // marked lost).
            let lost = if self.fast_rtx_due {
                self.fin_seq().distance_from(self.snd.una).min(mss)
            } else {
                0
            };
            self.snd
                .nxt
                .distance_from(self.snd.una)
                .saturating_sub(self.reno_sacked())
                .saturating_sub(lost)
        };
        let ssthresh = self.cc.ssthresh();
        let cwnd = state(&mut self.rec.st)
            .prr
            .on_ack(delivered, pipe, ssthresh, safe_ack, mss);
        self.cc.set_cwnd(cwnd);
    }

    /// RFC 8985 §6.2 step 5 and §6.3: mark lost what RACK says is, arm the reordering
    /// timer for the rest, and enter fast recovery on a first loss.
    pub(in crate::tcp) fn rack_detect_loss(&mut self, now: Instant, flight: u32) -> u32 {
        let mss = u32::from(self.eff_mss()).max(1);
        let sacked_segments = self.scoreboard.sacked_bytes().div_ceil(mss);
        let in_recovery = self.cc.in_recovery() || self.rec.in_loss();
        let st = state(&mut self.rec.st);
        let reo = st.rack.reo_wnd(
            in_recovery,
            sacked_segments,
            self.rtt.min_rtt(),
            self.rtt.srtt(),
        );
        let (marked, wait) = st.rack.detect_loss(now, &mut st.sent, reo);
        st.reo_deadline = wait.map(|w| now + w);
        let outlived = !in_recovery && std::mem::take(&mut st.losses_outlived_recovery);
        if marked == 0 && !outlived {
            return 0;
        }
        // Recovery takes over from the probe.
        st.tlp.deadline = None;
        if !in_recovery && self.snd.una.ge(self.recover) {
            tracing::debug!(
                marked,
                outlived,
                cwnd = self.cc.cwnd(),
                "RACK: loss detected, fast recovery"
            );
            self.recover = self.snd.nxt;
            let prior_cwnd = self.cc.cwnd();
            self.undo_start();
            // Departure: the reduction starts from cwnd (as Linux's `ssthresh` hooks:
            // `bictcp_recalc_ssthresh`, `tcp_reno_ssthresh`), not from the flight before this
            // ACK (RFC 9438 §4.6, RFC 5681 §3.2): a round's ACKs read in one batch (a TUN
            // read, GRO, stretch ACKs) shrink the flight ACK by ACK before anything is sent,
            // so a loss late in a slow-start round left ssthresh at a tenth of the window
            // (issue 19's loss suite).
            // But in congestion avoidance not from more than the round used: the window may
            // grow there while half used (`Window::cwnd_limited`), whereas Linux's grows only
            // while really limited (`tcp_is_cwnd_limited`), and from such a window the
            // "reduction" left the rate where it was: 10 MB at 1 % loss and 40 ms took 4 s
            // where Linux's CUBIC took 21 (issue 19's loss suite; 9 s with this). In slow
            // start the window is rightly up to twice the round's flight.
            let base = if self.cc.in_slow_start() {
                prior_cwnd
            } else {
                prior_cwnd.min(self.cwnd_usage.flight(flight))
            };
            // Never from the flight in sequence space: with holes and SACKed data in it, it
            // can be twice cwnd, and a reduction from it raised ssthresh above the window it
            // was meant to reduce (issue 19: at 3 % loss ssthresh climbed recovery after
            // recovery, from 34 segments to 137).
            self.cc.enter_recovery(now, base);
            tracing::debug!(
                base,
                ssthresh = self.cc.ssthresh(),
                "recovery: the reduction"
            );
            self.prr_start(prior_cwnd);
            self.scoreboard.make_mut().start_recovery(self.snd.una);
            self.events_mut().sack_recovery += 1;
        }
        marked
    }

    /// A fast recovery ended (SND.UNA reached `recover`). Segments sent during it that were
    /// lost too, and are still in flight (marked lost, or retransmitted and not yet
    /// acknowledged), belong to a later window: they start a new recovery, with its own
    /// reduction (RFC 6675 §5; Linux's `tcp_time_to_recover` enters Recovery again while
    /// `lost_out` is not zero). Before, they were repaired outside any recovery, with no
    /// reduction, and the window went on growing: at 3 % random loss a recovery rarely
    /// ended with nothing left, and 10 MB went at several times the rate TCP allows.
    pub(in crate::tcp) fn rack_on_recovery_exit(&mut self) {
        if !self.rack_active() {
            return;
        }
        let st = state(&mut self.rec.st);
        st.losses_outlived_recovery = st
            .sent
            .iter()
            .any(|s| !s.sacked && (s.lost || s.retransmitted));
    }

    /// RFC 8985 §7.2: arm the probe timer, if a probe may be sent: RACK in use, data in
    /// flight, no probe outstanding, and nothing unusual going on (Linux: only in the Open
    /// state).
    pub(in crate::tcp) fn schedule_probe(&mut self, now: Instant) {
        let allowed = self.rack_active()
            && self.in_flight()
            && self
                .rec
                .st
                .as_ref()
                .is_none_or(|st| st.tlp.end_seq.is_none())
            && self.ca_state() == CaState::Open
            && matches!(
                self.state,
                State::Established
                    | State::CloseWait
                    | State::FinWait1
                    | State::LastAck
                    | State::Closing
            );
        if !allowed {
            if let Some(st) = self.rec.st.as_mut() {
                st.tlp.deadline = None;
            }
            return;
        }
        let mss = u32::from(self.eff_mss()).max(1);
        let one_segment = self.snd.nxt.distance_from(self.snd.una) <= mss;
        let pto = Tlp::pto(self.rtt.srtt(), one_segment);
        let rto_at = self.timers.retransmit;
        state(&mut self.rec.st).tlp.schedule(now, pto, rto_at);
    }

    /// The reordering timer and the probe timer (called from `handle_timeout`).
    pub(in crate::tcp) fn on_recovery_timers(&mut self, now: Instant) {
        let Some(st) = self.rec.st.as_mut() else {
            return;
        };
        let due = |t: Option<Instant>| t.is_some_and(|t| t <= now);
        let reo_due = due(st.reo_deadline);
        let tlp_due = due(st.tlp.deadline);
        if reo_due {
            st.reo_deadline = None;
        }
        if tlp_due {
            st.tlp.deadline = None;
        }
        if reo_due && self.rack_active() && self.in_flight() {
            let flight = self.snd.nxt.distance_from(self.snd.una);
            let was_in_recovery = self.cc.in_recovery();
            self.rack_detect_loss(now, flight);
            if !was_in_recovery && self.cc.in_recovery() {
                // The timer, not an ACK, began the recovery: PRR (RFC 9937 §6 counts what
                // each ACK delivers and is silent on a recovery begun without one) has seen
                // nothing delivered, and with the pipe above the new ssthresh it would send
                // nothing, not even the fast retransmission, until the next ACK, a round
                // trip later. Linux's
                // `tcp_rack_reo_timeout` counts one segment delivered for it
                // (`tcp_cwnd_reduction(sk, 1, 0)`); so do we.
                let mss = u32::from(self.eff_mss()).max(1);
                self.prr_on_ack(mss, false);
            }
        }
        if tlp_due && self.rack_active() && self.in_flight() && self.ca_state() == CaState::Open {
            state(&mut self.rec.st).probe_due = true;
        }
    }

    /// RFC 8985 §7.3: send the probe: a new segment if there is one and the peer's window
    /// takes it (regardless of cwnd, as Linux), else the last segment again. The RTO restarts
    /// (§7.3: "the sender MUST arm the RTO timer").
    pub(in crate::tcp) fn transmit_probe(
        &mut self,
        now: Instant,
        mss: u32,
        emit: &mut crate::tcp::output::Emit<'_>,
    ) {
        let due = self
            .rec
            .st
            .as_mut()
            .is_some_and(|st| std::mem::take(&mut st.probe_due));
        if !due || !self.in_flight() {
            return;
        }
        let wnd_end = self.snd.una.add(self.snd.wnd);
        let unsent = self.tx_next == self.snd.nxt && self.has_unsent();
        let is_retrans = if unsent
            && self.snd.nxt.lt(wnd_end)
            && self.send_new_segment(now, mss, wnd_end, Label::Tlp, emit)
        {
            false
        } else {
            // The last segment: its last SMSS of data (and the FIN, if it was sent).
            let data_end = if self.snd.nxt.gt(self.fin_seq()) {
                self.fin_seq()
            } else {
                self.snd.nxt
            };
            let len = data_end.distance_from(self.snd.una).min(mss);
            let seq = data_end.sub(len);
            self.retransmit(now, seq, len, Label::Tlp, emit);
            true
        };
        let nxt = self.snd.nxt;
        state(&mut self.rec.st).tlp.on_probe_sent(nxt, is_retrans);
        self.events_mut().loss_probes += 1;
        self.timers.retransmit = Some(now + self.rtt.rto());
    }
}
