//! Tail loss probes (RFC 8985 §7): when the ACKs stop while data is in flight, probe
//! after about two round trips instead of waiting for the retransmission timer (at least
//! 200 ms, 1 s before the first RTT sample). The probe is a new segment if the peer's
//! window allows one, else the last segment sent; either way its ACK (with SACK) lets RACK
//! find what the tail lost.

use crate::seqnum::SeqNum;
use crate::time::{Duration, Instant};

/// RFC 8985 §7.2 WCDelAckT: the worst-case delayed-ACK time to allow for when only one
/// segment is in flight (its ACK may be delayed). Linux adds `TCP_RTO_MIN` (200 ms) too.
pub const WORST_CASE_DELAYED_ACK: Duration = Duration::from_millis(200);
/// RFC 8985 §7.2: the PTO before any RTT sample.
pub const PTO_WITHOUT_SRTT: Duration = Duration::from_secs(1);

#[derive(Clone, Copy, Debug, Default)]
pub struct Tlp {
    /// When the probe timer fires, if armed.
    pub deadline: Option<Instant>,
    /// TLP.end_seq: SND.NXT when the probe was sent; `None` when no probe is outstanding.
    pub end_seq: Option<SeqNum>,
    /// TLP.is_retrans: the probe was a retransmission (of the last segment).
    pub is_retrans: bool,
}

/// What an ACK told about an outstanding probe (RFC 8985 §7.4.2, Linux's
/// `tcp_process_tlp_ack`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProbeOutcome {
    /// Nothing to say yet (or no probe outstanding).
    Pending,
    /// The probe's data was delivered, or it was a duplicate: no loss to react to.
    NoLoss,
    /// The probe repaired a loss: the congestion controller must react (Linux:
    /// `TCPLossProbeRecovery`, a cwnd reduction).
    RepairedLoss,
}

impl Tlp {
    /// RFC 8985 §7.2: PTO = 2·SRTT (+ WCDelAckT with one segment in flight), or 1 s
    /// without a sample; never later than the retransmission timer would fire.
    pub fn pto(srtt: Option<Duration>, one_segment: bool) -> Duration {
        match srtt {
            Some(s) => {
                let pto = s * 2;
                if one_segment {
                    pto + WORST_CASE_DELAYED_ACK
                } else {
                    // Linux adds two ticks (TCP_TIMEOUT_MIN) so that a probe never races
                    // the ACKs of the last flight on a very short path.
                    pto + Duration::from_millis(2)
                }
            }
            None => PTO_WITHOUT_SRTT,
        }
    }

    /// Arm the probe timer at `now + pto`, but not past `rto_at`.
    pub fn schedule(&mut self, now: Instant, pto: Duration, rto_at: Option<Instant>) {
        let at = now + pto;
        self.deadline = Some(rto_at.map_or(at, |r| at.min(r)));
    }

    /// A probe went out: `snd_nxt` after it.
    pub fn on_probe_sent(&mut self, snd_nxt: SeqNum, is_retrans: bool) {
        self.deadline = None;
        self.end_seq = Some(snd_nxt);
        self.is_retrans = is_retrans;
    }

    /// RFC 8985 §7.4.2 `TLP_process_ack`, as Linux's `tcp_process_tlp_ack`: `ack` the ACK
    /// field, `dsack` whether the ACK carried a D-SACK, `advanced` whether it acknowledged
    /// or SACKed new data.
    pub fn on_ack(&mut self, ack: SeqNum, dsack: bool, advanced: bool) -> ProbeOutcome {
        let Some(end) = self.end_seq else {
            return ProbeOutcome::Pending;
        };
        if ack.lt(end) {
            return ProbeOutcome::Pending;
        }
        let outcome = if !self.is_retrans || dsack {
            // New data delivered, or the original and the probe both arrived.
            ProbeOutcome::NoLoss
        } else if ack.gt(end) {
            ProbeOutcome::RepairedLoss
        } else if !advanced {
            // A pure duplicate ACK: the original and the probe both arrived.
            ProbeOutcome::NoLoss
        } else {
            return ProbeOutcome::Pending;
        };
        self.end_seq = None;
        outcome
    }

    /// Forget the probe (a timeout, or recovery took over).
    pub fn clear(&mut self) {
        *self = Tlp::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pto_is_two_srtt_plus_a_delayed_ack_for_a_lone_segment() {
        let srtt = Some(Duration::from_millis(40));
        assert_eq!(Tlp::pto(srtt, false), Duration::from_millis(82));
        assert_eq!(Tlp::pto(srtt, true), Duration::from_millis(280));
        assert_eq!(Tlp::pto(None, false), Duration::from_secs(1));
        let mut t = Tlp::default();
        let now = Instant::from_millis(1000);
        t.schedule(
            now,
            Duration::from_millis(82),
            Some(Instant::from_millis(1050)),
        );
        assert_eq!(
            t.deadline,
            Some(Instant::from_millis(1050)),
            "capped by the RTO"
        );
    }

    #[test]
    fn a_retransmitted_probe_acked_beyond_its_end_repaired_a_loss() {
        let s = |n| SeqNum::new(1000).add(n);
        let mut t = Tlp::default();
        t.on_probe_sent(s(100), true);
        assert_eq!(t.on_ack(s(50), false, true), ProbeOutcome::Pending);
        assert_eq!(t.on_ack(s(100), false, true), ProbeOutcome::Pending);
        assert_eq!(t.on_ack(s(200), false, true), ProbeOutcome::RepairedLoss);
        assert_eq!(t.end_seq, None);
        t.on_probe_sent(s(300), true);
        assert_eq!(t.on_ack(s(300), true, false), ProbeOutcome::NoLoss);
        t.on_probe_sent(s(400), false);
        assert_eq!(t.on_ack(s(400), false, true), ProbeOutcome::NoLoss);
    }
}
