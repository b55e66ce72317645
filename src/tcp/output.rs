//! What a connection sends: SYN,ACK, data, FIN, ACKs and window updates, and its RST on
//! abort. One segment at a time through the `emit` callback, borrowing the send buffer.

use super::connection::{AckDue, Connection, ResetCause};
use super::sack::{NextSeg, max_blocks};
use super::trace::{Direction, Label};
use super::{SeqNum, State};
use crate::time::Instant;
use crate::wire::{Flags, SEGMENT_TEMPLATE, SackBlock, TcpOptions, TcpSegment};

/// How the output path hands over a segment: with the reason it was sent, for the trace.
pub(super) type Emit<'a> = dyn FnMut(&TcpSegment<'_>, Label) + 'a;

impl Connection {
    /// Emit every segment that is due at `now` (`transmit` below), recording each in the trace.
    pub fn poll_transmit(&mut self, now: Instant, emit: &mut dyn FnMut(&TcpSegment<'_>)) {
        // Buffer autotuning and memory pressure (memory.rs) before anything goes out.
        self.tune_buffers(now);
        let mut trace = std::mem::take(&mut self.trace);
        let mut samples = std::mem::take(&mut self.samples);
        let (state, recorded) = (self.state, trace.total());
        // Only a connection with data queued can send data: the others skip the snapshot.
        let sender = (!self.queues.send.is_empty()).then(|| self.sender_state());
        let iss = self.snd.iss;
        let (ecn_mode, mss) = (self.cfg.ecn, usize::from(self.eff_mss()));
        let mut ecn = self.ecn.lend();
        self.transmit(now, &mut |seg, label| {
            let mut marked = *seg;
            Connection::ecn_marks(&mut ecn, ecn_mode, &mut marked, label, mss);
            let seg = &marked;
            trace.record_labeled(Direction::Out, now, seg, state, label);
            if let (Some(sender), false) = (&sender, seg.payload.is_empty()) {
                let len = u32::try_from(seg.payload.len()).unwrap_or(u32::MAX);
                samples.on_sent(now, iss, seg.seq, len, sender);
            }
            emit(seg);
        });
        if trace.total() != recorded {
            // What we just sent changed the state (our RST closes the connection).
            trace.settle(self.state);
        }
        self.trace = trace;
        self.samples = samples;
        self.ecn = ecn;
        // An idle connection gives its buffers back (memory.rs).
        self.release_if_idle();
    }

    /// Emit every segment that is due at `now`.
    pub(super) fn transmit(&mut self, now: Instant, emit: &mut Emit<'_>) {
        if self.rst_due {
            // RFC 9293 §3.10.5 ABORT: <SEQ=SND.NXT><CTL=RST>. Like Linux's
            // tcp_send_active_reset, the RST also carries ACK=RCV.NXT (and our timestamps),
            // which the peer's RST checks ignore (RFC 9293 §3.10.7.4, RFC 5961 §3.2 look at
            // SEG.SEQ) and the packetdrill corpus expects (`R.`).
            self.rst_due = false;
            let synchronized = self.state != State::SynSent;
            let rst = TcpSegment {
                seq: self.snd.nxt,
                ack: if synchronized {
                    self.rcv.nxt
                } else {
                    SeqNum::new(0)
                },
                flags: if synchronized {
                    Flags::RST | Flags::ACK
                } else {
                    Flags::RST
                },
                options: TcpOptions {
                    timestamps: self.opts.ts.then(|| (self.ts_now(now), self.ts_recent)),
                    ..TcpOptions::EMPTY
                },
                ..self.template()
            };
            emit(&rst, Label::None);
            self.close_silently(Some(ResetCause::Aborted));
            return;
        }
        match self.state {
            State::Closed | State::Listen => {}
            State::SynSent | State::SynReceived => self.transmit_syn(now, emit),
            _ => self.transmit_data(now, emit),
        }
        self.transmit_keepalive(now, emit);
        let window_update = self.state.is_synchronized() && self.window_update_due();
        if self.ack_due == AckDue::Now || window_update {
            // A pure ACK: <SEQ=SND.NXT><ACK=RCV.NXT><CTL=ACK>.
            let seq = self.acceptable_seq();
            let mut label = self.pure_ack_label(window_update);
            if self.opts.sack && self.sack_rx.dsack_pending() {
                // RFC 2883: it reports data we got twice.
                label = Label::Dsack;
            }
            self.emit_segment(now, seq, Flags::ACK, &[], label, emit);
        }
        self.ack_reason = Label::None;
    }

    /// The sequence number of a pure ACK: SND.NXT, unless the peer's window has since shrunk
    /// below it (a receiver short of memory may drop in-window data and then offer a window
    /// ending before SND.NXT): then the window's right edge, so that the ACK stays acceptable
    /// to the peer (RFC 9293 Table 6) and its data is acknowledged. Linux does the same
    /// (tcp_acceptable_seq); without it both sides wait for each other.
    fn acceptable_seq(&self) -> SeqNum {
        let wnd_end = self.snd.una.add(self.snd.wnd);
        if self.snd.nxt.le(wnd_end) {
            self.snd.nxt
        } else {
            wnd_end
        }
    }

    /// The fields every segment of this connection shares.
    fn template(&self) -> TcpSegment<'static> {
        let (src_port, dst_port) = self.quad.ports();
        TcpSegment {
            src_port,
            dst_port,
            ..SEGMENT_TEMPLATE
        }
    }

    /// SYN-SENT: `<SEQ=ISS><CTL=SYN>` (RFC 9293 §3.10.1); SYN-RECEIVED:
    /// `<SEQ=ISS><ACK=RCV.NXT><CTL=SYN,ACK>` (§3.10.7.2); both with our MSS (MUST-14).
    fn transmit_syn(&mut self, now: Instant, emit: &mut Emit<'_>) {
        if !self.syn_due {
            return;
        }
        self.syn_due = false;
        let (flags, ack) = if self.state == State::SynSent {
            (Flags::SYN, SeqNum::new(0))
        } else {
            (Flags::SYN | Flags::ACK, self.rcv.nxt)
        };
        let window = self.advertise(true);
        let resend = self.snd.nxt != self.snd.iss;
        let mut label = Label::None;
        if resend {
            // Our SYN or SYN,ACK went out before: this is a retransmission (for `status`),
            // and RFC 6298 §3 (Karn): an ACK of it is ambiguous, so the timing is discarded,
            // whether a timeout or the peer's duplicate SYN caused it.
            self.count_retransmission();
            self.rtt_probe = None;
            if self.retries > 0 {
                // The retransmission timer fired (not only the peer's duplicate SYN).
                label = Label::RtoRetransmit;
            }
            self.fast_open_syn_lost();
        }
        let options = TcpOptions {
            fastopen: self.fast_open_option(),
            ..self.syn_options(now)
        };
        // RFC 7413 §4.2.1: with a Fast Open cookie, our first SYN carries data.
        let payload = self.fast_open_syn_data();
        let len = u32::try_from(payload.len()).unwrap_or(0);
        if len > 0 {
            label = Label::FastOpen;
        }
        let seg = TcpSegment {
            seq: self.snd.iss,
            ack,
            flags,
            window,
            options,
            payload,
            ..self.template()
        };
        emit(&seg, label);
        self.last_ack_sent = self.rcv.nxt;
        let syn_end = self.snd.iss.add(1);
        // The data on a SYN (Fast Open) is in flight with it; a retransmitted SYN has none.
        self.snd.nxt = syn_end.add(len);
        self.tx_next = self.snd.nxt;
        if len > 0 {
            self.fast_open_sent(len);
        }
        self.ack_due = AckDue::None;
        self.timers.delayed_ack = None;
        // Karn: time the SYN or SYN,ACK only if it was sent once.
        if !resend && self.rtt_probe.is_none() {
            self.rtt_probe = Some((syn_end, now));
        }
        self.arm_retransmit(now);
    }

    /// Data and FIN: a due fast retransmission, then SACK-based recovery or new data (and
    /// go-back-N after a timeout) within the peer's window and the congestion window, then
    /// the retransmission or persist timer.
    fn transmit_data(&mut self, now: Instant, emit: &mut Emit<'_>) {
        let mss = u32::from(self.eff_mss());
        // RFC 5681 §3.2 step 2 / RFC 6582 §3.2 steps 2 and 5 / RFC 6675 §5 step 3: retransmit
        // the first unacknowledged segment.
        if std::mem::take(&mut self.fast_rtx_due) && self.in_flight() {
            let una = self.snd.una;
            let len = self.fin_seq().distance_from(una).min(mss);
            self.retransmit(now, una, len, Label::FastRetransmit, emit);
            if self.opts.sack && self.cc.in_recovery() {
                // RFC 6675 §5 step 4.3 ("... and retransmit it"): the segment counts as
                // retransmitted (HighRxt advances), so NextSeg() does not choose it again and
                // SetPipe() counts it in flight (issue 19: each loss went out twice).
                self.scoreboard.make_mut().on_retransmit(una, len);
            }
        }
        // RFC 8985 §7.3: a tail loss probe, when its timer fired.
        self.transmit_probe(now, mss, emit);
        // (Segments are marked lost only once something above them was SACKed: no scan of
        // the segments in flight on a loss-free connection.)
        let rack_lost = self.rack_active()
            && !self.rec.in_loss()
            && !self.scoreboard.is_empty()
            && self.rec.sent().has_lost();
        if self.opts.sack && (self.cc.in_recovery() || rack_lost) {
            self.transmit_sack_recovery(now, mss, emit);
        } else {
            let before = self.snd.nxt;
            self.transmit_window(now, mss, emit);
            if self.snd.nxt != before {
                // RFC 8985 §7.2: new data went out: (re)arm the probe timer.
                self.schedule_probe(now);
            }
        }
        // RFC 6298 §5.1: whenever data is outstanding a retransmission timer runs (even if
        // the window let nothing out this time); RFC 9293 §3.8.6.1: with data waiting,
        // nothing in flight and no window to send it in, the persist timer probes the window
        // (the retransmit timer serves as both).
        if self.in_flight() || self.has_unsent() {
            self.arm_retransmit(now);
        }
    }

    /// RFC 6675 §5: while cwnd − pipe allows a segment, send what NextSeg() names.
    fn transmit_sack_recovery(&mut self, now: Instant, mss: u32, emit: &mut Emit<'_>) {
        if self.rack_active() {
            self.transmit_rack_recovery(now, mss, emit);
            return;
        }
        // A bound on the loop for safety: each pass sends one segment or stops.
        for _ in 0..1024 {
            let pipe = self.scoreboard.pipe(self.snd.una, self.snd.nxt, mss);
            if self.cc.cwnd() < pipe.saturating_add(mss) {
                break;
            }
            let wnd_end = self.snd.una.add(self.snd.wnd);
            let new_ok = self.tx_next == self.snd.nxt
                && self
                    .snd
                    .nxt
                    .lt(self.fin_seq().add(u32::from(self.fin_queued)))
                && self.snd.nxt.lt(wnd_end);
            match self
                .scoreboard
                .next_seg(self.snd.una, self.snd.nxt, mss, new_ok)
            {
                NextSeg::Retransmit { seq, len } => {
                    let len = len.min(mss).min(self.fin_seq().distance_from(seq));
                    self.retransmit(now, seq, len, Label::SackRetransmit, emit);
                    self.scoreboard.make_mut().on_retransmit(seq, len);
                }
                NextSeg::Rescue { seq, len } => {
                    let len = len.min(mss).min(self.fin_seq().distance_from(seq));
                    self.retransmit(now, seq, len, Label::SackRetransmit, emit);
                    self.scoreboard.make_mut().on_rescue();
                }
                NextSeg::NewData => {
                    if !self.send_new_segment(
                        now,
                        mss,
                        wnd_end,
                        self.recovery_new_data_label(),
                        emit,
                    ) {
                        break;
                    }
                }
                NextSeg::Nothing => break,
            }
        }
    }

    /// RFC 6675 §5 with RACK's loss marks (RFC 8985 §6.2: "retransmit ... in the order of
    /// their sequence numbers"): while cwnd − pipe allows a segment, resend the first segment
    /// marked lost, else send new data. Pipe counts what is neither SACKed nor lost, plus
    /// what was retransmitted (Linux's `tcp_packets_in_flight`).
    fn transmit_rack_recovery(&mut self, now: Instant, mss: u32, emit: &mut Emit<'_>) {
        let mut pipe = self.rec.sent().pipe();
        for _ in 0..1024 {
            if self.cc.cwnd() < pipe.saturating_add(mss) {
                break;
            }
            let before = self.snd.nxt.distance_from(self.snd.una);
            if let Some(lost) = self.rec.sent().first_lost().copied() {
                let len = lost
                    .len()
                    .min(mss)
                    .min(self.fin_seq().distance_from(lost.start));
                self.retransmit(now, lost.start, len, Label::Rack, emit);
                if self.rec.sent().first_lost().map(|l| l.start) == Some(lost.start) {
                    // Nothing could be sent (no byte of it is held any more).
                    break;
                }
                pipe = pipe.saturating_add(len.max(1));
                continue;
            }
            let wnd_end = self.snd.una.add(self.snd.wnd);
            let new_ok =
                self.tx_next == self.snd.nxt && self.has_unsent() && self.snd.nxt.lt(wnd_end);
            if !new_ok {
                break;
            }
            if !self.send_new_segment(now, mss, wnd_end, self.recovery_new_data_label(), emit) {
                break;
            }
            pipe = pipe.saturating_add(
                self.snd
                    .nxt
                    .distance_from(self.snd.una)
                    .saturating_sub(before),
            );
        }
    }

    /// The label of new data sent during fast recovery: `[PRR]` when Proportional Rate
    /// Reduction let it out (RFC 9937).
    fn recovery_new_data_label(&self) -> Label {
        if self.cc.in_recovery() {
            Label::Prr
        } else {
            Label::None
        }
    }

    /// Send one new segment at SND.NXT: at most `mss` bytes, within the peer's window ending
    /// at `wnd_end`, with the FIN if it ends the data; false if there was nothing to send.
    /// The caller has checked that unsent data exists and tx_next is at SND.NXT; tx_next
    /// follows SND.NXT (left behind, it would make the data sent here look unsent, and the
    /// output path would send it again as if after a timeout).
    pub(super) fn send_new_segment(
        &mut self,
        now: Instant,
        mss: u32,
        wnd_end: SeqNum,
        label: Label,
        emit: &mut Emit<'_>,
    ) -> bool {
        let avail = self.fin_seq().distance_from(self.snd.nxt);
        let n = avail.min(mss).min(wnd_end.distance_from(self.snd.nxt));
        let fin = self.fin_queued && n == avail;
        if n == 0 && !fin {
            return false;
        }
        let seq = self.snd.nxt;
        self.tx_next = self.emit_data(now, seq, n, fin_flag(fin), label, emit);
        true
    }

    /// Resend `len` bytes at `seq` (and the FIN, if they end where it sits and it was sent).
    pub(super) fn retransmit(
        &mut self,
        now: Instant,
        seq: SeqNum,
        len: u32,
        label: Label,
        emit: &mut Emit<'_>,
    ) {
        let fin =
            self.fin_queued && seq.add(len) == self.fin_seq() && self.snd.nxt.gt(self.fin_seq());
        if len == 0 && !fin {
            return;
        }
        self.count_retransmission();
        // RFC 6298 §3 (Karn): nothing retransmitted is timed.
        self.rtt_probe = None;
        self.emit_data(now, seq, len, fin_flag(fin), label, emit);
    }

    /// New data from `tx_next` (and, after a timeout, the go-back-N retransmissions), within
    /// min(SND.WND, cwnd) beyond SND.UNA (RFC 5681 §3.1), sender SWS avoidance and Nagle.
    fn transmit_window(&mut self, now: Instant, mss: u32, emit: &mut Emit<'_>) {
        // Segments of new data this pass has sent, for the PSH rule below.
        let mut burst = 0u32;
        loop {
            let data_end = self.fin_seq();
            let avail = if self.tx_next.lt(data_end) {
                data_end.distance_from(self.tx_next)
            } else {
                0
            };
            // The peer's window bounds the right edge; the congestion window bounds what is
            // in flight, less what duplicate ACKs said left it (Limited Transmit before a
            // recovery, PRR's pipe in one without SACK).
            let cwnd = self
                .cc
                .cwnd()
                .saturating_add(self.limited_transmit())
                .saturating_add(self.reno_sacked())
                .saturating_add(self.frto_allowance());
            let wnd_end = self.snd.una.add(self.snd.wnd.min(cwnd));
            let usable = if self.tx_next.lt(wnd_end) {
                wnd_end.distance_from(self.tx_next)
            } else {
                0
            };
            let mut n = avail.min(usable).min(self.gso_limit(mss));
            if n > mss && n < avail {
                // A super-segment ends on a segment boundary unless it ends the data, so the
                // device never cuts a short segment out of the middle (sender SWS avoidance).
                n = n / mss * mss;
            }
            if self.probe_due && usable == 0 && self.snd.wnd == 0 && self.in_flight() {
                // RFC 9293 §3.8.6.1 (MUST-36): "retransmit ... even if the send window is
                // zero". With data in flight the probe is the head segment, resent at SND.UNA
                // as Linux's tcp_retransmit_timer does; tx_next stays at SND.UNA, so once the
                // window opens go-back-N resends it unless the peer took it.
                self.probe_due = false;
                let una = self.snd.una;
                let len = self.fin_seq().distance_from(una).min(mss);
                self.retransmit(now, una, len, Label::ZeroWindowProbe, emit);
                break;
            }
            if self.probe_due && usable == 0 && self.snd.wnd == 0 {
                // RFC 9293 §3.8.6.1 (MUST-35): probe the zero window. Departure: instead of one
                // byte of new data beyond the window, we send <SEQ=SND.UNA-1><CTL=ACK> as Linux
                // does (tcp_xmit_probe_skb): the peer must answer it with an ACK carrying its
                // current window, and no byte is left outside the window to be retransmitted.
                self.probe_due = false;
                let seq = self.snd.una.sub(1);
                self.emit_segment(now, seq, Flags::ACK, &[], Label::ZeroWindowProbe, emit);
                break;
            }
            let new_data = self.tx_next == self.snd.nxt;
            if self.probe_due || !new_data {
                // The persist timer overrides sender SWS avoidance (§3.8.6.2.1), and SWS
                // avoidance is about new data: a retransmission sends what the window takes.
            } else if n > 0 && n < avail {
                // RFC 9293 §3.8.6.2.1 (MUST-38): sender SWS avoidance: send a full segment (or
                // a super-segment of several), or at least half the largest window the peer
                // offered, or wait.
                let enough = n >= mss || n >= self.snd.max_wnd / 2;
                if !enough {
                    break;
                }
            }
            let fin = self.fin_queued && self.tx_next.add(n) == data_end;
            if n == 0 && !fin {
                break;
            }
            // RFC 9293 §3.7.4 (SHLD-7), Nagle in Minshall's form (as Linux's tcp_nagle_check):
            // hold a less-than-full segment of new data while an earlier small segment is
            // unacknowledged. A FIN or a persist-timer expiry sends it anyway.
            let small = n < mss;
            if small
                && !fin
                && !self.probe_due
                && self.cfg.nagle
                && self.tx_next == self.snd.nxt
                && self.small_end.is_some_and(|end| end.gt(self.snd.una))
            {
                break;
            }
            self.probe_due = false;
            let seq = self.tx_next;
            let resend = seq.lt(self.snd.nxt);
            let label = if resend {
                // Below SND.NXT only after a timeout: go-back-N.
                self.count_retransmission();
                if self.pmtu_retransmission(seq) {
                    Label::Pmtu
                } else {
                    Label::RtoRetransmit
                }
            } else {
                // New data in a recovery without SACK: PRR let it out.
                self.recovery_new_data_label()
            };
            // PSH as Linux (6.18, observed with packetdrill) sets it on new data: on every TSO
            // packet it sends, the smallest of which (tcp_tso_autosize's tcp_min_tso_segs) is
            // two segments, and not on a single segment cut out of the queue by a one-segment
            // opening (Limited Transmit, PRR). So: a super-segment, or every second
            // wire-sized segment of a burst, besides the segment ending the data (emit_data).
            burst += 1;
            let mut flags = fin_flag(fin);
            if !resend && (n > mss || burst.is_multiple_of(2)) {
                flags |= Flags::PSH;
            }
            let end = self.emit_data(now, seq, n, flags, label, emit);
            self.tx_next = end;
            if small && n > 0 {
                self.small_end = Some(end);
            }
            if fin {
                break;
            }
        }
    }

    /// Room for new data beyond cwnd while segments are known to have left the network but
    /// no loss is declared. RFC 3042 (Limited Transmit): one new segment on each of the first
    /// two duplicate ACKs. With SACK, as Linux's `tcp_packets_in_flight`, every SACKed byte
    /// has left the pipe and makes room (which includes RFC 3042's two segments).
    fn limited_transmit(&self) -> u32 {
        if self.cc.in_recovery() || self.rec.in_loss() || !self.in_flight() {
            return 0;
        }
        if self.opts.sack {
            self.scoreboard.sacked_bytes()
        } else {
            u32::from(self.dup_acks.min(2)) * u32::from(self.eff_mss())
        }
    }

    /// Emit `len` bytes of the send buffer at `seq` (plus the FIN if `flags` has it, with PSH
    /// if it has it or the segment ends the data), and do the bookkeeping of every data segment: SND.NXT, the RTT probe and the retransmission timer. Returns the
    /// sequence number after the segment.
    pub(super) fn emit_data(
        &mut self,
        now: Instant,
        seq: SeqNum,
        len: u32,
        flags: Flags,
        label: Label,
        emit: &mut Emit<'_>,
    ) -> SeqNum {
        let fin = flags.fin();
        let mut flags = flags | Flags::ACK;
        let end = seq.add(len + u32::from(fin));
        // RFC 9293 §3.9.1 (SEND): PSH on the segment that ends the data the application has
        // handed over (Linux's tcp_push on the tail of a write), and where the caller says.
        if len > 0 && end.ge(self.fin_seq()) {
            flags |= Flags::PSH;
        }
        let offset = usize::try_from(seq.distance_from(self.send_start)).unwrap_or(0);
        let window = self.advertise(false);
        let mut options = self.options(now);
        if u32::try_from(options.wire_len()).unwrap_or(u32::MAX) + len > u32::from(self.send_mss) {
            // SACK blocks do not fit beside a full segment; the duplicate ACKs carry them.
            options.sack_count = 0;
        }
        let template = TcpSegment {
            options,
            ..self.template()
        };
        let ack = self.rcv.nxt;
        // The payload borrows the send buffer until the segment is emitted.
        let payload = contiguous(
            &self.queues.send,
            &mut self.send_straddle,
            offset,
            usize::try_from(len).unwrap_or(0),
        );
        let seg = TcpSegment {
            seq,
            ack,
            flags,
            window,
            payload,
            ..template
        };
        emit(&seg, label);
        self.after_emit();
        // Its transmit time, for RACK and for RTT samples (RFC 6298 §3, Karn: a
        // retransmitted segment gives none): `recovery/sent.rs`.
        let ts = self.ts_now(now);
        if seq.lt(self.snd.nxt)
            && let Some(st) = self.rec.st.as_mut()
        {
            // A retransmission: counted for undo (recovery/undo.rs), with its TSval.
            st.undo.on_retransmit(ts);
        }
        self.rec.sent_mut().on_send(seq, end, now);
        if (self.cc.in_recovery() || self.in_cwr())
            && let Some(st) = self.rec.st.as_mut()
        {
            // RFC 9937: prr_out.
            st.prr.on_sent(end.distance_from(seq));
        }
        self.snd.nxt = self.snd.nxt.max(end);
        self.cwnd_usage.on_send(self.snd.una, self.snd.nxt);
        // RFC 6298 §5.1: start the timer when data is sent, if it is not running.
        self.arm_retransmit(now);
        end
    }

    /// Send `<SEQ=seq><ACK=RCV.NXT><CTL=flags>` with the current window.
    pub(super) fn emit_segment(
        &mut self,
        now: Instant,
        seq: SeqNum,
        flags: Flags,
        payload: &[u8],
        label: Label,
        emit: &mut Emit<'_>,
    ) {
        let window = self.advertise(false);
        let seg = TcpSegment {
            seq,
            ack: self.rcv.nxt,
            flags,
            window,
            payload,
            options: self.options(now),
            ..self.template()
        };
        emit(&seg, label);
        self.after_emit();
    }

    /// Why a pure ACK goes out: the reason the input path gave (challenge, out-of-order data,
    /// TIME-WAIT), else a window update when nothing else made it due. Counts duplicates.
    fn pure_ack_label(&mut self, window_update: bool) -> Label {
        if self.ack_due != AckDue::Now && window_update {
            self.dup_acks_sent = 0;
            return Label::WindowUpdate;
        }
        match self.ack_reason {
            Label::DupAck(_) if self.last_ack_sent == self.rcv.nxt => {
                self.dup_acks_sent = self.dup_acks_sent.saturating_add(1);
                Label::DupAck(self.dup_acks_sent)
            }
            Label::DupAck(_) => {
                // The first ACK for this RCV.NXT: not a duplicate yet.
                self.dup_acks_sent = 0;
                Label::None
            }
            other => {
                self.dup_acks_sent = 0;
                other
            }
        }
    }

    /// Every segment we send carries an ACK of RCV.NXT, which settles any ACK we owed.
    fn after_emit(&mut self) {
        self.quick_ack.on_ack_sent();
        self.last_ack_sent = self.rcv.nxt;
        self.app_read = false;
        self.buf.room_opened = false;
        self.ack_due = AckDue::None;
        self.unacked_segments = 0;
        self.timers.delayed_ack = None;
    }

    /// The options of our SYN or SYN,ACK: MSS always (MUST-14); window scale, SACK-permitted
    /// and timestamps on a SYN, and on a SYN,ACK only if the peer's SYN offered them
    /// (RFC 7323 §2.2, §3.2; RFC 2018 §2).
    fn syn_options(&self, now: Instant) -> TcpOptions {
        let active = self.state == State::SynSent;
        let offer_ws = if active {
            self.cfg.window_scaling
        } else {
            self.opts.ws
        };
        let offer_ts = if active {
            self.cfg.timestamps
        } else {
            self.opts.ts
        };
        TcpOptions {
            mss: Some(self.local_mss),
            window_scale: offer_ws.then_some(self.opts.rcv_shift),
            sack_permitted: if active {
                self.cfg.sack
            } else {
                self.opts.sack
            },
            // RFC 7323 §3.2: TSecr is zero on a SYN, and echoes the peer's TSval on a SYN,ACK.
            timestamps: offer_ts
                .then(|| (self.ts_now(now), if active { 0 } else { self.ts_recent })),
            ..TcpOptions::EMPTY
        }
    }

    /// The options of every other segment: timestamps when negotiated (RFC 7323 §3.2:
    /// "MUST be sent in every non-<RST> segment"), and SACK blocks while out-of-order data
    /// is queued (RFC 2018 §4: the most recent block first).
    fn options(&mut self, now: Instant) -> TcpOptions {
        let mut options = TcpOptions {
            timestamps: self.opts.ts.then(|| (self.ts_now(now), self.ts_recent)),
            ..TcpOptions::EMPTY
        };
        if self.opts.sack && (!self.reasm.is_empty() || self.sack_rx.dsack_pending()) {
            let blocks =
                self.sack_rx
                    .make_mut()
                    .blocks(self.rcv.nxt, &self.reasm, max_blocks(self.opts.ts));
            for (slot, &(left, right)) in options.sack_blocks.iter_mut().zip(blocks.as_slice()) {
                *slot = SackBlock { left, right };
                options.sack_count += 1;
            }
        }
        options
    }

    /// The right edge we may advertise now. RFC 9293 §3.8.6.2.2 (MUST-39): receiver SWS
    /// avoidance moves the right edge only by at least min(buffer / 2, MSS); and it never
    /// moves left (SHLD-14).
    fn window_candidate(&self) -> SeqNum {
        let free_right = self.rcv.nxt.add(self.recv_space());
        let threshold = (self.window_cap() / 2)
            .min(u32::from(self.local_mss))
            .max(1);
        let current = self.rcv.right_edge.max(self.rcv.nxt);
        if free_right.gt(current) && free_right.distance_from(current) >= threshold {
            free_right
        } else {
            current
        }
    }

    /// Record and return the window field for an outgoing segment. The window of a SYN is
    /// never scaled (RFC 7323 §2.2); otherwise the field is RCV.WND >> shift, rounded up
    /// rather than letting the right edge move left (SHLD-14; Linux's tcp_select_window
    /// aligns up the same way).
    fn advertise(&mut self, syn: bool) -> u16 {
        let candidate = self.window_candidate();
        let wnd = if candidate.gt(self.rcv.nxt) {
            candidate.distance_from(self.rcv.nxt)
        } else {
            0
        };
        let shift = if syn { 0 } else { self.opts.rcv_shift };
        let field = wnd.div_ceil(1 << shift).min(u32::from(u16::MAX));
        self.rcv.right_edge = self.rcv.nxt.add(field << shift);
        u16::try_from(field).unwrap_or(u16::MAX)
    }

    /// RFC 9293 §3.8.6.2.2: after the application reads, tell the peer about the opened
    /// window. Like Linux (tcp_cleanup_rbuf), only when the window it knows has fallen to
    /// half of the most we offer and the new one is at least twice as large (and, past
    /// receiver SWS avoidance, at least a segment), so reading never costs an ACK per read.
    fn window_update_due(&self) -> bool {
        // Only a read opens the window (Linux: tcp_cleanup_rbuf runs after recvmsg); so, for
        // one, the larger scaled window after the handshake costs no lone ACK.
        if self.fin_received || !(self.app_read || self.buf.room_opened) {
            return false;
        }
        let current = self.rcv.wnd();
        if current.saturating_mul(2) > self.window_cap() {
            return false;
        }
        let candidate = self.window_candidate();
        let new = if candidate.gt(self.rcv.nxt) {
            candidate.distance_from(self.rcv.nxt)
        } else {
            0
        };
        new >= current.saturating_mul(2) && new >= u32::from(self.local_mss).min(self.window_cap())
    }
}

/// `len` bytes of `buf` from `offset` as one slice. A range that straddles the end of the
/// ring is copied into `scratch` (reused, so no allocation once it has grown to a segment);
/// the queue itself is never rotated, which would move all of it. Out-of-range requests
/// yield what exists.
#[allow(clippy::box_collection)] // The connection's boxed copy (connection.rs says why).
fn contiguous<'a>(
    buf: &'a std::collections::VecDeque<u8>,
    scratch: &'a mut Option<Box<Vec<u8>>>,
    offset: usize,
    len: usize,
) -> &'a [u8] {
    let end = offset.saturating_add(len).min(buf.len());
    let start = offset.min(end);
    let (front, back) = buf.as_slices();
    if end <= front.len() {
        return front.get(start..end).unwrap_or(&[]);
    }
    let split = front.len();
    if start >= split {
        return back.get(start - split..end - split).unwrap_or(&[]);
    }
    // Only a segment that straddles the ring's end allocates the copy (once: it is reused).
    let scratch = scratch.get_or_insert_with(Box::default);
    scratch.clear();
    scratch.extend_from_slice(front.get(start..).unwrap_or(&[]));
    scratch.extend_from_slice(back.get(..end - split).unwrap_or(&[]));
    scratch
}

/// FIN if `fin`, else no flag.
fn fin_flag(fin: bool) -> Flags {
    if fin { Flags::FIN } else { Flags::NONE }
}

#[cfg(test)]
mod tests {
    use super::contiguous;
    use std::collections::VecDeque;

    /// A ring of 0..16 whose storage wraps: `as_slices` gives two non-empty parts.
    fn wrapped() -> VecDeque<u8> {
        let mut buf = VecDeque::with_capacity(16);
        buf.extend(8..16u8);
        for b in (0..8u8).rev() {
            buf.push_front(b);
        }
        assert!(!buf.as_slices().1.is_empty(), "the test ring must wrap");
        buf
    }

    #[test]
    fn a_segment_straddling_the_ring_is_copied_not_rotated() {
        let buf = wrapped();
        let layout = (buf.as_slices().0.len(), buf.as_slices().1.len());
        let split = layout.0;
        let mut scratch = None;
        let want: Vec<u8> = (split as u8 - 2..split as u8 + 3).collect();
        assert_eq!(contiguous(&buf, &mut scratch, split - 2, 5), &want[..]);
        // The queue keeps its layout: nothing but the segment's bytes was moved.
        assert_eq!((buf.as_slices().0.len(), buf.as_slices().1.len()), layout);
        assert_eq!(scratch.as_deref(), Some(&want));
        // Ranges inside one part borrow the queue; out-of-range requests yield what exists.
        assert_eq!(contiguous(&buf, &mut scratch, 0, 2), &[0, 1]);
        assert_eq!(
            contiguous(&buf, &mut scratch, split + 1, 2),
            &[split as u8 + 1, split as u8 + 2]
        );
        assert_eq!(contiguous(&buf, &mut scratch, 14, 10), &[14, 15]);
        assert!(contiguous(&buf, &mut scratch, 20, 4).is_empty());
        assert_eq!(
            contiguous(&buf, &mut scratch, 0, 16),
            &(0..16u8).collect::<Vec<_>>()[..]
        );
    }
}
