//! TIME-WAIT as a small record (issue 23), as Linux keeps a `tcp_timewait_sock` in place of
//! the socket (`tcp_minisocks.c`): what RFC 9293 §3.6 asks TIME-WAIT to remember and no more.
//!
//! A connection that enters TIME-WAIT has nothing left to send or read; the endpoint turns
//! it into a [`TimeWait`] (`Connection::time_wait_record`) and frees the rest. The record
//! answers as the whole connection would, segment for segment and byte for byte on the
//! wire (`Connection::process` in TIME-WAIT, `input.rs`):
//! - a retransmitted FIN (out of the window, below RCV.NXT) is acknowledged and the 2·MSL
//!   timer restarted (§3.10.7.4, eighth step);
//! - any other unacceptable segment is answered with an ACK, rate-limited for bare ACKs and
//!   SYNs as Linux's `tcp_oow_rate_limited`; data we had already is reported in a D-SACK
//!   block (RFC 2883);
//! - PAWS (RFC 7323 §5): an old timestamp is dropped and ACKed;
//! - a RST at RCV.NXT is ignored (RFC 1337), another in-window RST or a SYN gets a challenge
//!   ACK (RFC 5961);
//! - an ACK of something not sent gets an ACK; a FIN at RCV.NXT gets an ACK;
//! - whether a new SYN may reopen the 4-tuple (RFC 9293 MAY-2, RFC 6191) is
//!   [`TimeWait::accepts_syn`]; the endpoint decides with its listeners.

use super::connection::{AckDue, Connection};
use super::ecn::TimeWaitEcn;
use super::events::ConnEvents;
use super::input::{TsRecent, acceptable, oow_rate_limited, syn_reopens};
use super::trace::Label;
use super::{SeqNum, State};
use crate::time::{Duration, Instant};
use crate::wire::{Flags, SEGMENT_TEMPLATE, SackBlock, TcpOptions, TcpSegment};
use tracing::debug;

/// A connection in TIME-WAIT, reduced to what it must remember. The 4-tuple is the
/// endpoint's key for it.
#[derive(Clone, Debug)]
pub struct TimeWait {
    /// SND.NXT (= SND.UNA: our FIN is acknowledged) and RCV.NXT (past the peer's FIN).
    snd_nxt: SeqNum,
    rcv_nxt: SeqNum,
    /// RCV.WND as last advertised (its right edge never moves left, SHLD-14), and our
    /// window shift (RFC 7323 §2.3). Linux's `tw_rcv_wnd`.
    rcv_wnd: u32,
    /// MAX.SND.WND (RFC 5961 §5.2): ACKs older than SND.UNA less this get a challenge ACK.
    /// A window update still raises it: SND.WL1 and the peer's shift say when (§3.10.7.4).
    max_snd_wnd: u32,
    snd_wl1: SeqNum,
    /// TS.Recent and when it was last updated (PAWS, RFC 7323 §5; RFC 6191), and the offset
    /// of our TSval clock (RFC 7323 §7.1).
    ts_recent: u32,
    ts_recent_at: Instant,
    ts_offset: u32,
    /// When 2·MSL ends.
    deadline: Instant,
    /// When we last sent an ACK for an out-of-window segment or a challenge ACK, in
    /// microseconds plus one (0: never; eight bytes rather than an `Option`'s sixteen).
    last_oow_ack: u64,
    /// A D-SACK block for the next ACK (RFC 2883).
    dsack: Option<(SeqNum, SeqNum)>,
    ecn: TimeWaitEcn,
    /// Why the next ACK goes out, for the trace; how many in a row for this RCV.NXT.
    reason: Label,
    dup_acks_sent: u16,
    /// Our MSS (AccECN counts a super-segment as the segments it stands for).
    local_mss: u16,
    rcv_shift: u8,
    snd_shift: u8,
    flags: u8,
}

/// `TimeWait::flags`: timestamps and SACK negotiated; an ACK or a challenge ACK is due.
const TS: u8 = 1;
const SACK: u8 = 2;
const ACK_DUE: u8 = 4;
const CHALLENGE_DUE: u8 = 8;

impl Connection {
    /// The record of this connection once it is in TIME-WAIT with nothing left to send:
    /// `None` in any other state, or while an ACK is still owed (it then stays whole).
    pub fn time_wait_record(&self) -> Option<TimeWait> {
        let deadline = self.timers.close?;
        if self.state != State::TimeWait
            || self.snd.una != self.snd.nxt
            || self.last_ack_sent != self.rcv.nxt
            || self.ack_due != AckDue::None
            || self.challenge_due
            || self.sack_rx.dsack_pending()
        {
            return None;
        }
        let mut flags = 0;
        if self.opts.ts {
            flags |= TS;
        }
        if self.opts.sack {
            flags |= SACK;
        }
        Some(TimeWait {
            snd_nxt: self.snd.nxt,
            rcv_nxt: self.rcv.nxt,
            rcv_wnd: self.rcv.wnd(),
            max_snd_wnd: self.snd.max_wnd,
            snd_wl1: self.snd.wl1,
            ts_recent: self.ts_recent,
            ts_recent_at: self.ts_recent_at,
            ts_offset: self.ts_offset,
            deadline,
            last_oow_ack: self
                .last_oow_ack
                .map_or(0, |at| at.as_micros().saturating_add(1)),
            dsack: None,
            ecn: self.ecn.time_wait(self.snd.una)?,
            reason: Label::None,
            dup_acks_sent: self.dup_acks_sent,
            local_mss: self.local_mss,
            rcv_shift: self.opts.rcv_shift,
            snd_shift: self.opts.snd_shift,
            flags,
        })
    }
}

/// Which ACK the per-connection limit is asked about, for the counters.
#[derive(Clone, Copy)]
enum OowAck {
    OutOfWindow,
    Paws,
}

impl TimeWait {
    /// When TIME-WAIT ends (RFC 9293 §3.10.8: then the record is deleted).
    pub fn deadline(&self) -> Instant {
        self.deadline
    }

    /// SND.NXT: a connection reopening the 4-tuple starts above it (MAY-2).
    pub fn snd_nxt(&self) -> SeqNum {
        self.snd_nxt
    }

    /// RCV.WND as advertised, for `status`.
    pub fn rcv_wnd(&self) -> u32 {
        self.rcv_wnd
    }

    fn ts(&self) -> TsRecent {
        TsRecent {
            on: self.flags & TS != 0,
            value: self.ts_recent,
            at: self.ts_recent_at,
        }
    }

    /// RFC 9293 §3.10.7.4 (MAY-2) with RFC 6191: whether a SYN is known not to be an old
    /// duplicate, so that it may reopen the 4-tuple
    /// (`Connection::time_wait_accepts_syn`).
    pub fn accepts_syn(&self, seg: &TcpSegment<'_>) -> bool {
        syn_reopens(self.ts(), self.rcv_nxt, seg)
    }

    /// SEGMENT ARRIVES in TIME-WAIT (RFC 9293 §3.10.7.4), as `Connection::process` takes it
    /// in that state. `time_wait`: 2·MSL, should the timer restart. What is due goes out
    /// with [`TimeWait::transmit`]; what it counted is added to `events`.
    pub fn on_segment(
        &mut self,
        now: Instant,
        seg: &TcpSegment<'_>,
        time_wait: Duration,
        events: &mut ConnEvents,
    ) {
        // RFC 7323 §5.3 R1 (PAWS): a segment older than TS.Recent: ACK it and drop it.
        if self.ts().paws_rejects(now, seg) {
            events.paws_rejected += 1;
            self.dup_ack(now, seg, OowAck::Paws, events);
            return;
        }
        // First: the sequence number (Table 6).
        let zero_window_control = self.rcv_wnd == 0 && seg.seq == self.rcv_nxt;
        if !acceptable(self.rcv_nxt, self.rcv_wnd, seg) && !zero_window_control {
            if seg.flags.rst() {
                // RFC 5961 §3.2: an out-of-window RST is dropped silently.
                events.out_of_window_rst += 1;
                return;
            }
            events.out_of_window += 1;
            if seg.flags.fin() {
                // §3.10.7.4 eighth step, TIME-WAIT: a retransmitted FIN is acknowledged and
                // the 2·MSL timeout restarted.
                self.deadline = now + time_wait;
                self.reason = Label::TimeWaitReAck;
            }
            self.dup_ack(now, seg, OowAck::OutOfWindow, events);
            return;
        }
        // Second: the RST bit. RFC 5961 §3.2: only a RST exactly at RCV.NXT would reset.
        if seg.flags.rst() {
            if seg.seq == self.rcv_nxt {
                // RFC 1337: ignored, so that an old duplicate RST cannot "assassinate"
                // TIME-WAIT. Departure from Linux's default (net.ipv4.tcp_rfc1337=0), which
                // closes TIME-WAIT on a RST.
                debug!("RST in TIME-WAIT ignored (RFC 1337)");
            } else {
                events.rst_challenged += 1;
                self.challenge_ack(now, events);
            }
            return;
        }
        // Fourth: a SYN (one the endpoint did not let reopen the 4-tuple): RFC 5961 §4.
        if seg.flags.syn() {
            events.syn_challenged += 1;
            self.challenge_ack(now, events);
            return;
        }
        // Fifth: the ACK field.
        if !seg.flags.ack() {
            return;
        }
        if seg.ack.gt(self.snd_nxt) {
            // "If the ACK acks something not yet sent ... send an ACK, drop the segment".
            events.ack_unsent += 1;
            self.flags |= ACK_DUE;
            return;
        }
        if seg.ack.lt(self.snd_nxt.sub(self.max_snd_wnd)) {
            // RFC 5961 §5.2: too old.
            events.ack_too_old += 1;
            self.challenge_ack(now, events);
            return;
        }
        if self.flags & SACK != 0 && dsack_received(seg, self.snd_nxt) {
            events.dsack_recv += 1;
        }
        // "If SND.UNA =< SEG.ACK =< SND.NXT, the send window should be updated" when
        // SND.WL1 < SEG.SEQ, or SND.WL1 = SEG.SEQ (SND.WL2 =< SEG.ACK holds here): nothing
        // is sent any more, but MAX.SND.WND follows (`Connection::update_window`).
        if seg.ack == self.snd_nxt && self.snd_wl1.le(seg.seq) {
            self.snd_wl1 = seg.seq;
            let wnd = u32::from(seg.window) << self.snd_shift;
            self.max_snd_wnd = self.max_snd_wnd.max(wnd);
        }
        let mut ts = self.ts();
        ts.update(now, seg, self.rcv_nxt);
        (self.ts_recent, self.ts_recent_at) = (ts.value, ts.at);
        let size = usize::from(self.local_mss).saturating_sub(seg.options.wire_len());
        if self.ecn.on_segment(seg, size, events) {
            self.flags |= ACK_DUE;
        }
        // Seventh and eighth: text is ignored ("this should not occur"); a FIN is answered.
        if seg.payload.is_empty() && seg.flags.fin() {
            if seg.seq.gt(self.rcv_nxt) {
                self.reason = Label::DupAck(0);
            }
            self.flags |= ACK_DUE;
        }
    }

    /// RFC 9293 §3.10.7.4: "If an incoming segment is not acceptable, an acknowledgment
    /// should be sent in reply", rate-limited as `Connection::dup_ack` is.
    fn dup_ack(&mut self, now: Instant, seg: &TcpSegment<'_>, why: OowAck, ev: &mut ConnEvents) {
        if !seg.payload.is_empty() && seg.seq.lt(self.rcv_nxt) {
            // RFC 2883 §4: data we have already, reported in a D-SACK block.
            let end = seg.seq.add(u32::try_from(seg.payload.len()).unwrap_or(0));
            let end = if end.gt(self.rcv_nxt) {
                self.rcv_nxt
            } else {
                end
            };
            self.report_duplicate(seg.seq, end, ev);
        }
        let carries_data = !seg.payload.is_empty() || seg.flags.fin();
        if (carries_data && !seg.flags.syn()) || !self.oow_rate_limited(now) {
            self.flags |= ACK_DUE;
            return;
        }
        match why {
            OowAck::OutOfWindow => ev.out_of_window_acks_skipped += 1,
            OowAck::Paws => ev.paws_acks_skipped += 1,
        }
    }

    /// `input::oow_rate_limited` over the packed `last_oow_ack`.
    fn oow_rate_limited(&mut self, now: Instant) -> bool {
        let mut last = self.last_oow_ack.checked_sub(1).map(Instant::from_micros);
        let limited = oow_rate_limited(&mut last, now);
        self.last_oow_ack = last.map_or(0, |at| at.as_micros().saturating_add(1));
        limited
    }

    /// A D-SACK block for `[left, right)`, merged with one still pending as
    /// `SackReceiver::on_duplicate` does.
    fn report_duplicate(&mut self, left: SeqNum, right: SeqNum, ev: &mut ConnEvents) {
        if self.flags & SACK == 0 || !left.lt(right) {
            return;
        }
        self.dsack = Some(match self.dsack {
            Some(d) if d.0.le(right) && left.le(d.1) => (d.0.min(left), d.1.max(right)),
            _ => (left, right),
        });
        ev.dsack_old_sent += 1;
    }

    /// A challenge ACK, at most one per `OOW_ACK_INTERVAL`; the endpoint's global budget
    /// decides (`take_challenge`).
    fn challenge_ack(&mut self, now: Instant, ev: &mut ConnEvents) {
        if self.oow_rate_limited(now) {
            ev.challenge_acks_skipped += 1;
        } else {
            self.flags |= CHALLENGE_DUE;
        }
    }

    /// A challenge ACK is wanted (RFC 5961): answer with [`TimeWait::grant_challenge`] if
    /// the global budget allows.
    pub fn take_challenge(&mut self) -> bool {
        let due = self.flags & CHALLENGE_DUE != 0;
        self.flags &= !CHALLENGE_DUE;
        due
    }

    pub fn grant_challenge(&mut self) {
        self.flags |= ACK_DUE;
        self.reason = Label::ChallengeAck;
    }

    /// Something is due: an ACK, or a challenge ACK for the endpoint to weigh.
    pub fn has_output(&self) -> bool {
        self.flags & (ACK_DUE | CHALLENGE_DUE) != 0
    }

    /// Send the ACK that is due, `<SEQ=SND.NXT><ACK=RCV.NXT><CTL=ACK>`, with the options and
    /// marks the whole connection would put on it, and the reason, for the trace.
    /// `ports`: (ours, the peer's).
    pub fn transmit(
        &mut self,
        now: Instant,
        ports: (u16, u16),
        emit: &mut dyn FnMut(&TcpSegment<'_>, Label),
    ) {
        if self.flags & ACK_DUE == 0 {
            return;
        }
        self.flags &= !ACK_DUE;
        let ts = self.flags & TS != 0;
        let mut options = TcpOptions {
            timestamps: ts.then(|| {
                let tsval = ((now.as_micros() / 1000) as u32).wrapping_add(self.ts_offset);
                (tsval, self.ts_recent)
            }),
            ..TcpOptions::EMPTY
        };
        let mut label = match std::mem::take(&mut self.reason) {
            // Every ACK here is for the same RCV.NXT (`pure_ack_label`).
            Label::DupAck(_) => {
                self.dup_acks_sent = self.dup_acks_sent.saturating_add(1);
                Label::DupAck(self.dup_acks_sent)
            }
            other => {
                self.dup_acks_sent = 0;
                other
            }
        };
        if let Some((left, right)) = self.dsack.take() {
            // RFC 2883: it reports data we got twice.
            options.sack_blocks[0] = SackBlock { left, right };
            options.sack_count = 1;
            label = Label::Dsack;
        }
        // The window last advertised, in the field's units, rounded up (`advertise`).
        let shift = self.rcv_shift.min(super::connection::MAX_WINDOW_SHIFT);
        let field = self.rcv_wnd.div_ceil(1 << shift).min(u32::from(u16::MAX));
        self.rcv_wnd = field << shift;
        let mut seg = TcpSegment {
            src_port: ports.0,
            dst_port: ports.1,
            seq: self.snd_nxt,
            ack: self.rcv_nxt,
            flags: Flags::ACK,
            window: u16::try_from(field).unwrap_or(u16::MAX),
            options,
            ..SEGMENT_TEMPLATE
        };
        self.ecn.marks(&mut seg);
        emit(&seg, label);
    }
}

/// RFC 2883 §4: the first SACK block of `seg` is a D-SACK: below the cumulative ACK (SND.UNA
/// `una`, where TIME-WAIT's stays) or inside the second block (`Scoreboard::on_sack`).
fn dsack_received(seg: &TcpSegment<'_>, una: SeqNum) -> bool {
    let blocks = seg.options.sack();
    let Some(first) = blocks.first() else {
        return false;
    };
    let (l, r) = (first.left, first.right);
    let inside_second = blocks
        .get(1)
        .is_some_and(|b| b.left.le(l) && r.le(b.right) && l.lt(r));
    (l.lt(r) && r.le(una)) || inside_second
}

#[cfg(test)]
#[path = "time_wait_tests.rs"]
mod tests;
