//! Explicit Congestion Notification (RFC 3168) as a Linux server does it
//! (`net.ipv4.tcp_ecn`): negotiated on the SYN exchange, data marked ECT(0), CE marks echoed
//! with ECE until the peer's CWR, and the congestion window reduced once per window of data
//! for the peer's ECE, answered with CWR.

use super::SeqNum;
use super::connection::{AckDue, Connection};
use super::trace::Label;
use crate::time::Instant;
use crate::wire::{Ecn, Flags, TcpSegment};

/// `--ecn`, as `net.ipv4.tcp_ecn`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum EcnMode {
    /// Never (`tcp_ecn=0`).
    Off,
    /// Ask for it on our SYNs and accept it (`tcp_ecn=1`).
    On,
    /// Accept it when a peer asks, never ask (`tcp_ecn=2`, Linux's default).
    #[default]
    Server,
}

impl std::str::FromStr for EcnMode {
    type Err = String;
    fn from_str(s: &str) -> Result<EcnMode, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "off" => Ok(EcnMode::Off),
            "on" => Ok(EcnMode::On),
            "server" => Ok(EcnMode::Server),
            other => Err(format!(
                "unknown ECN mode '{other}' (use off, on or server)"
            )),
        }
    }
}

impl std::fmt::Display for EcnMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            EcnMode::Off => "off",
            EcnMode::On => "on",
            EcnMode::Server => "server",
        })
    }
}

/// A connection's ECN state.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct EcnState {
    /// Both SYNs agreed (RFC 3168 §6.1.1).
    pub(super) ok: bool,
    /// A CE mark arrived: every segment carries ECE until the peer's CWR (§6.1.3).
    ece: bool,
    /// We reduced the window for an ECE: the next new data segment carries CWR (§6.1.2).
    cwr_due: bool,
    /// Set at a reduction: no other one until SND.UNA passes SND.NXT of then (§6.1.2: once
    /// per window of data).
    reacted: bool,
    reacted_until: SeqNum,
    /// Linux's CWR state: the reduction for an ECE is under way, PRR pacing the window down
    /// (until SND.UNA passes `reacted_until`).
    cwr: bool,
}

impl Connection {
    /// RFC 3168 §6.1.1, from the peer's SYN or SYN,ACK (`learn_syn`): an ECN-setup SYN carries
    /// ECE and CWR, and `--ecn` is not off; an ECN-setup SYN,ACK carries ECE and not CWR,
    /// answering the ECE+CWR of our SYN (`--ecn on`).
    pub(super) fn ecn_on_syn(&mut self, syn: &TcpSegment<'_>) {
        let f = syn.flags;
        self.ecn.ok = if f.ack() {
            self.cfg.ecn == EcnMode::On && f.ece() && !f.cwr()
        } else {
            self.cfg.ecn != EcnMode::Off && f.ece() && f.cwr()
        };
    }

    /// In Linux's CWR state: PRR paces the reduction an ECE asked for (`ecn_on_segment`).
    pub(super) fn in_cwr(&self) -> bool {
        self.ecn.cwr && !self.cc.in_recovery()
    }

    /// Whether the connection uses ECN (for `status`, the counters).
    pub fn ecn_negotiated(&self) -> bool {
        self.ecn.ok
    }

    /// An acceptable segment arrived (`process`, after the ACK field): RFC 3168 §6.1.3, a CE
    /// mark is echoed with ECE on every segment until the peer's CWR says it reduced, and
    /// the first one is acknowledged at once (Linux: quick ACK mode, so a sender with a small
    /// window hears soon); §6.1.2, an ECE on an ACK halves the congestion window, once per
    /// window of data, and the next new data carries CWR.
    pub(super) fn ecn_on_segment(&mut self, now: Instant, seg: &TcpSegment<'_>) {
        if !self.ecn.ok {
            return;
        }
        if seg.flags.cwr() {
            self.ecn.ece = false;
        }
        if seg.ecn == Ecn::Ce && !self.ecn.ece {
            self.ecn.ece = true;
            self.ack_due = AckDue::Now;
        }
        if self.cc.in_recovery() {
            // A loss recovery took over the reduction (and PRR's state).
            self.ecn.cwr = false;
        }
        if self.ecn.reacted && self.snd.una.gt(self.ecn.reacted_until) {
            self.ecn.reacted = false;
            if std::mem::take(&mut self.ecn.cwr) {
                // The CWR state ends at ssthresh (Linux's tcp_end_cwnd_reduction).
                let ssthresh = self.cc.ssthresh();
                self.cc.set_cwnd(ssthresh);
            }
        }
        if seg.flags.ece() && !self.ecn.reacted {
            self.ecn.reacted = true;
            self.ecn.reacted_until = self.snd.nxt;
            self.ecn.cwr_due = true;
            if !self.cc.in_recovery() {
                // RFC 3168 §6.1.2: "halve the congestion window and reduce the slow start
                // threshold", as for a loss but retransmitting nothing. The controller's loss
                // response sets ssthresh (NewReno halves, CUBIC multiplies by β = 0.7, as
                // Linux's tcp_enter_cwr asks the module), and, as in Linux's CWR state,
                // Proportional Rate Reduction (RFC 9937 §5: any reduction, ECN's included)
                // brings the window down to it over the next round trip, in step with what
                // is delivered, rather than in one step (which would send nothing until the
                // flight drained below the new window).
                let flight = self.snd.nxt.distance_from(self.snd.una);
                let prior_cwnd = self.cc.cwnd();
                self.cc.enter_recovery(now, flight, self.opts.sack);
                self.cc.on_recovery_exit(now, flight);
                self.prr_start(prior_cwnd);
                self.ecn.cwr = true;
                self.prr_on_ack(0, false);
                self.events.ecn_cwnd_reductions += 1;
            }
        }
    }

    /// The ECN marks of a segment about to go out (`poll_transmit`): ECE+CWR on our SYN when
    /// `--ecn on` asks, ECE on the SYN,ACK that accepts; once negotiated, ECE while a CE mark
    /// waits for the peer's CWR, ECT(0) on new data only (never a retransmission, a pure
    /// ACK, a probe or the SYN,ACK, RFC 3168 §6.1.5, §6.1.6), and CWR on the first new data
    /// after a reduction (a wire-sized segment: never a super-segment, which the device
    /// would copy it onto every piece of).
    pub(super) fn ecn_marks(
        ecn: &mut EcnState,
        mode: EcnMode,
        seg: &mut TcpSegment<'_>,
        label: Label,
        mss: usize,
    ) {
        if seg.flags.syn() {
            if !seg.flags.ack() && mode == EcnMode::On {
                seg.flags |= Flags::ECE | Flags::CWR;
            } else if seg.flags.ack() && ecn.ok {
                seg.flags |= Flags::ECE;
            }
            return;
        }
        if !ecn.ok || seg.flags.rst() {
            return;
        }
        if ecn.ece {
            seg.flags |= Flags::ECE;
        }
        if !seg.payload.is_empty() && label == Label::None {
            seg.ecn = Ecn::Ect0;
            if ecn.cwr_due && seg.payload.len() <= mss {
                ecn.cwr_due = false;
                seg.flags |= Flags::CWR;
            }
        }
    }
}
