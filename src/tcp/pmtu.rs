//! What a connection does with the ICMP errors the endpoint routes to it (RFC 9293
//! §3.9.2.2, RFC 1122 §4.2.3.9, RFC 5927) and with a smaller path MTU (RFC 1191, RFC 8201).
//! The endpoint finds the connection, keeps the per-destination path-MTU cache and checks
//! nothing else; the checks on the quoted segment are here.

use super::connection::Connection;
use super::{ResetCause, SeqNum, State};
use crate::time::Instant;
use crate::wire::IcmpErrorKind;
use tracing::debug;

/// What an ICMP error did to the connection, for the endpoint's counters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IcmpOutcome {
    /// A soft error, kept as the connection's last error (`status --info`, and the cause
    /// reported if it later times out).
    Soft,
    /// The connection was aborted.
    Aborted,
}

impl Connection {
    /// RFC 5927 §4.1: an ICMP error is acted on only if the sequence number of the segment it
    /// quotes lies in SND.UNA..=SND.NXT, i.e. names something we sent and is not yet
    /// acknowledged (Linux's `between(seq, snd_una, snd_nxt)` in `tcp_v4_err`, both ends
    /// included: a pure ACK carries SND.NXT). In SYN-RECEIVED only our SYN,ACK, at ISS, is
    /// in flight (Linux's `tcp_req_err` compares with `snt_isn`).
    pub fn icmp_seq_acceptable(&self, seq: SeqNum) -> bool {
        match self.state {
            State::SynReceived => seq == self.snd.iss,
            State::Closed | State::Listen | State::TimeWait => false,
            _ => self.snd.una.le(seq) && seq.le(self.snd.nxt),
        }
    }

    /// An ICMP error other than Packet Too Big quoted one of our segments in flight.
    ///
    /// RFC 9293 §3.9.2.2 and RFC 1122 §4.2.3.9: a hard error (protocol or port unreachable,
    /// SHLD-26) aborts the connection; a soft one (network or host unreachable, time
    /// exceeded, parameter problem, administratively prohibited) does not (MUST-56), and is
    /// kept as the connection's last error. Departure, as Linux's `tcp_v4_err`: in SYN-SENT
    /// any error ends the attempt at once (what `connect()` reports), and in SYN-RECEIVED the
    /// half-open connection is dropped (`tcp_req_err`), rather than retrying for a minute
    /// towards a host a router says is not there. (Linux keeps even hard errors soft in the
    /// synchronized states unless `IP_RECVERR`, as RFC 5927 §4.1 suggests; issue #20 asks
    /// for RFC 1122's hard errors, which the sequence check above protects.)
    pub fn on_icmp_error(&mut self, kind: IcmpErrorKind) -> IcmpOutcome {
        let abort = kind.is_hard() || matches!(self.state, State::SynSent | State::SynReceived);
        {
            let span = self.span();
            let _enter = span.enter();
            debug!(%kind, abort, "ICMP error");
        }
        self.soft_error = Some(kind);
        if abort {
            self.close_silently(Some(ResetCause::Unreachable(kind)));
            IcmpOutcome::Aborted
        } else {
            IcmpOutcome::Soft
        }
    }

    /// The last soft ICMP error this connection heard (RFC 1122 §4.2.3.9: reported to the
    /// application), for `status --info`.
    pub fn soft_error(&self) -> Option<IcmpErrorKind> {
        self.soft_error
    }

    /// The path to the peer takes IP packets of at most `mtu` bytes (RFC 1191 §6.3,
    /// RFC 8201 §5.4): lower the send MSS to fit, and if that drops below the segments in
    /// flight, send them again at the new size at once, without waiting for the RTO and
    /// without a congestion response (the data was not lost to congestion; Linux's
    /// `tcp_v4_mtu_reduced` → `tcp_simple_retransmit`). Returns whether the MSS fell.
    pub fn on_path_mtu(&mut self, now: Instant, mtu: u32) -> bool {
        let headers = if self.quad.local.is_ipv4() { 40 } else { 60 };
        let cap = u16::try_from(mtu.saturating_sub(headers))
            .unwrap_or(u16::MAX)
            .max(64);
        self.mss_cap = self.mss_cap.min(cap);
        if cap >= self.send_mss {
            return false;
        }
        {
            let span = self.span();
            let _enter = span.enter();
            debug!(mtu, from = self.send_mss, to = cap, "path MTU lowered");
        }
        self.send_mss = cap;
        if self.state.is_synchronized() && self.in_flight() {
            // Go back to SND.UNA: everything in flight is sent again in segments of the new
            // size (the output path labels them [PMTU]). Like an RTO's go-back-N, but cwnd and
            // ssthresh stay: the units changed, the congestion did not.
            self.pmtu_rtx_end = Some(self.snd.nxt);
            self.tx_next = self.snd.una;
            self.scoreboard.clear();
            self.dup_acks = 0;
            self.fast_rtx_due = false;
            // RFC 6298 §3 (Karn): what is sent again is not timed.
            self.rtt_probe = None;
        }
        let _ = now;
        true
    }

    /// Whether the go-back-N retransmission of `seq` is one a smaller path MTU caused.
    pub(super) fn pmtu_retransmission(&self, seq: SeqNum) -> bool {
        self.pmtu_rtx_end.is_some_and(|end| seq.lt(end))
    }
}
