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

/// Packetization-layer path MTU discovery (RFC 4821, RFC 8899) as Linux's
/// `net.ipv4.tcp_mtu_probing`: `--mtu-probing off|blackhole|always`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum MtuProbing {
    /// Only ICMP lowers the MSS (`tcp_mtu_probing=0`).
    Off,
    /// After repeated timeouts of full-sized segments with no ICMP, fall back to a smaller MSS
    /// (`tcp_mtu_probing=1`, Linux's default is 0; synack's is this).
    #[default]
    Blackhole,
    /// Start every connection at the base MSS (`tcp_mtu_probing=2`'s starting point).
    Always,
}

impl std::str::FromStr for MtuProbing {
    type Err = String;
    fn from_str(s: &str) -> Result<MtuProbing, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "off" => Ok(MtuProbing::Off),
            "blackhole" => Ok(MtuProbing::Blackhole),
            "always" => Ok(MtuProbing::Always),
            other => Err(format!(
                "unknown MTU probing mode '{other}' (use off, blackhole or always)"
            )),
        }
    }
}

impl std::fmt::Display for MtuProbing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            MtuProbing::Off => "off",
            MtuProbing::Blackhole => "blackhole",
            MtuProbing::Always => "always",
        })
    }
}

/// Where the black-hole search starts (Linux's `tcp_base_mss`, 1024).
pub(super) const BASE_MSS: u16 = 1024;
/// The timeout in a row after which a black hole is suspected (Linux: `tcp_retries1`, 3).
const BLACKHOLE_AFTER_RTOS: u32 = 3;
/// How long after a failed probe the next one waits (Linux's `tcp_probe_interval`, 600 s).
const PROBE_INTERVAL: crate::time::Duration = crate::time::Duration::from_secs(600);

/// What a connection learned about its path (`Connection::path`, boxed: rare).
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct PathState {
    /// After the path MTU fell: SND.NXT then; the go-back-N below it is labelled [PMTU].
    pub(super) pmtu_rtx_end: Option<SeqNum>,
    /// The last soft ICMP error (RFC 1122 §4.2.3.9), reported if the connection times out.
    soft_error: Option<IcmpErrorKind>,
    plpmtud: Plpmtud,
}

/// The black-hole fallback's state (`Connection::blackhole_check`, `mtu_probe_on_ack`).
#[derive(Clone, Copy, Debug, Default)]
struct Plpmtud {
    /// The send MSS and MSS cap before the first fallback.
    fallen_from: Option<(u16, u16)>,
    /// SND.NXT at the last change: an ACK beyond it answers data sent at the new size.
    mark: SeqNum,
    /// Probing the old size; the size to go back to if the probe is lost.
    probing: Option<u16>,
    /// No probe before this, after a failed one.
    next_probe: Option<Instant>,
}

impl Connection {
    /// The path state, allocated on first use.
    fn path_mut(&mut self) -> &mut PathState {
        self.path.get_or_insert_with(Box::default)
    }

    /// RFC 4821 §7.5 (Linux's `tcp_mtu_probing`, called from `tcp_write_timeout` once
    /// `tcp_retries1` timeouts passed): the third timeout in a row of a full-sized segment
    /// larger than the base MSS suggests a path that drops it without an ICMP (RFC 2923
    /// §2.1): lower the MSS to 1024 bytes, and once fallen halve it at each later timeout, no
    /// lower than the RFC 9293 default (536, IPv4; 1220, IPv6, which every path carries).
    /// Departure: a connection whose MSS was 1024 or less to begin with is left alone (Linux
    /// would halve it from the fourth timeout on); a path is rarely that narrow, and a lossy
    /// one should not cost it its segment size. A timeout during an upward probe fails the
    /// probe instead. Called with `retries` the timeouts before this one.
    pub(super) fn blackhole_check(&mut self, now: Instant) {
        if self.cfg.mtu_probing == MtuProbing::Off {
            return;
        }
        if let Some(small) = self
            .path
            .as_deref_mut()
            .and_then(|p| p.plpmtud.probing.take())
        {
            // RFC 4821 §7.6.2: the probe was lost; back to the size that worked, and no
            // probe for a while (Linux: TCPMTUPFail, tcp_probe_interval 600 s).
            self.send_mss = small;
            self.mss_cap = self.mss_cap.min(small);
            self.path_mut().plpmtud.next_probe = Some(now + PROBE_INTERVAL);
            self.events_mut().mtu_probe_failures += 1;
            return;
        }
        if self.retries + 1 < BLACKHOLE_AFTER_RTOS {
            return;
        }
        // RFC 4821 §7.5: only the loss of full-sized segments points at the path MTU.
        let head = self.snd.nxt.distance_from(self.snd.una);
        if head < u32::from(self.eff_mss()) {
            return;
        }
        let floor = super::default_mss(&self.quad());
        let target = if self.send_mss > BASE_MSS {
            BASE_MSS
        } else if self
            .path
            .as_ref()
            .is_some_and(|p| p.plpmtud.fallen_from.is_some())
        {
            self.send_mss / 2
        } else {
            return;
        }
        .max(floor);
        if target >= self.send_mss {
            return;
        }
        {
            let span = self.span();
            let _enter = span.enter();
            debug!(
                from = self.send_mss,
                to = target,
                "black hole suspected: MSS lowered"
            );
        }
        let (size, cap, nxt) = (self.send_mss, self.mss_cap, self.snd.nxt);
        let plpmtud = &mut self.path_mut().plpmtud;
        plpmtud.fallen_from.get_or_insert((size, cap));
        plpmtud.mark = nxt;
        self.send_mss = target;
        self.mss_cap = self.mss_cap.min(target);
        self.events_mut().mtu_blackhole_fallbacks += 1;
    }

    /// New data acknowledged up to `ack` (RFC 4821 §7.6): after a fallback, once a round trip
    /// succeeded at the smaller size, probe the size from before it; the probe succeeds when
    /// data sent at that size is acknowledged, and fails at a timeout (`blackhole_check`).
    /// Simpler than RFC 4821's search (and Linux's `tcp_mtu_probe`, which sends one probe
    /// segment of a size between the bounds): the probe is the old size itself, for as many
    /// segments as the window sends.
    pub(super) fn mtu_probe_on_ack(&mut self, now: Instant, ack: SeqNum) {
        let (send_mss, nxt) = (self.send_mss, self.snd.nxt);
        let Some(plpmtud) = self.path.as_deref_mut().map(|p| &mut p.plpmtud) else {
            return;
        };
        let Some((size, cap)) = plpmtud.fallen_from else {
            return;
        };
        if !ack.gt(plpmtud.mark) {
            return;
        }
        if plpmtud.probing.take().is_some() {
            *plpmtud = Plpmtud::default();
            self.events_mut().mtu_probe_successes += 1;
            return;
        }
        if plpmtud.next_probe.is_some_and(|t| now < t) {
            return;
        }
        plpmtud.probing = Some(send_mss);
        plpmtud.mark = nxt;
        self.mss_cap = cap;
        self.send_mss = size.min(cap);
    }

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
        self.path_mut().soft_error = Some(kind);
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
        self.path.as_ref().and_then(|p| p.soft_error)
    }

    /// The path to the peer takes IP packets of at most `mtu` bytes (RFC 1191 §6.3,
    /// RFC 8201 §5.4): lower the send MSS to fit, and if that drops below the segments in
    /// flight, send them again at the new size at once, without waiting for the RTO and
    /// without a congestion response (the data was not lost to congestion; Linux's
    /// `tcp_v4_mtu_reduced` → `tcp_simple_retransmit`). Returns whether the MSS fell.
    pub fn on_path_mtu(&mut self, now: Instant, mtu: u32) -> bool {
        let headers = if self.quad().local.is_ipv4() { 40 } else { 60 };
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
            let nxt = self.snd.nxt;
            self.path_mut().pmtu_rtx_end = Some(nxt);
            self.tx_next = self.snd.una;
            self.scoreboard.reset();
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
        self.path
            .as_ref()
            .and_then(|p| p.pmtu_rtx_end)
            .is_some_and(|end| seq.lt(end))
    }
}
