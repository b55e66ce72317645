//! Explicit Congestion Notification (RFC 3168) as a Linux server does it
//! (`net.ipv4.tcp_ecn`): negotiated on the SYN exchange, data marked ECT(0), CE marks echoed
//! with ECE until the peer's CWR, and the congestion window reduced once per window of data
//! for the peer's ECE, answered with CWR.
//!
//! Accurate ECN (RFC 9768) when the client asks for it: the receiver counts CE-marked packets
//! and ECT(0)/ECT(1)/CE payload bytes and feeds them back on every segment (the ACE field,
//! AE·CWR·ECE as a 3-bit counter) and on pure ACKs where there is room (the AccECN option);
//! the sender turns the growth of the ACE counter into the same once-per-window reduction as
//! an ECE (`accecn_on_segment` hands it to `ecn_on_segment` as one).

use super::SeqNum;
use super::connection::{AckDue, Connection};
use super::samples::SampleEcn;
use super::trace::Label;
use crate::time::Instant;
use crate::wire::{AccEcnOption, Ecn, Flags, TcpSegment};

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
    /// Ask for AccECN (RFC 9768) on our SYNs, accept either (`tcp_ecn=3`).
    AccEcn,
}

impl std::str::FromStr for EcnMode {
    type Err = String;
    fn from_str(s: &str) -> Result<EcnMode, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "off" => Ok(EcnMode::Off),
            "on" => Ok(EcnMode::On),
            "server" => Ok(EcnMode::Server),
            "accecn" => Ok(EcnMode::AccEcn),
            other => Err(format!(
                "unknown ECN mode '{other}' (use off, on, server or accecn)"
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
            EcnMode::AccEcn => "accecn",
        })
    }
}

/// A connection's ECN state.
#[derive(Clone, Debug, Default)]
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
    /// AccECN (RFC 9768), once negotiated: feedback is the ACE field and the AccECN option,
    /// not ECE and CWR. Boxed, so that a connection without it pays one pointer (as the path
    /// state, `pmtu.rs`); allocated once, at the handshake.
    acc: Option<Box<AccEcn>>,
}

/// An AccECN connection's state (RFC 9768 §3.2).
#[derive(Clone, Debug, Default)]
struct AccEcn {
    /// The IP-ECN field of the peer's SYN, which our SYN,ACK reflects (§3.1.1, Table 2).
    syn_ecn: Ecn,
    /// The handshake's last ACK has not arrived: its ACE reflects our SYN,ACK's IP-ECN field
    /// (§3.2.2.1), it does not count.
    await_handshake_ack: bool,
    /// As the client: the IP-ECN field of the peer's SYN,ACK, which the ACE field of our
    /// first segment after it reflects (§3.2.2.1, Table 4).
    reflect: Option<Ecn>,
    /// The ACE field arrived zeroed on the handshake's ACK (§3.2.2.3): a middlebox clears the
    /// flags, so we neither mark ECT nor believe the field, but still feed back.
    ace_failed: bool,
    /// The receiver's counters (§3.2.1): CE-marked packets (initialised to 5), and payload
    /// bytes marked ECT(0), ECT(1) (initialised to 1) and CE (to 0).
    r_cep: u32,
    r_e0b: u32,
    r_e1b: u32,
    r_ceb: u32,
    /// CE marks received since our last segment (each one carries the ACE field), and
    /// whether the last data segment was marked CE (§3.2.2.5.1, change-triggered ACKs).
    ce_pending: u32,
    last_ce: bool,
    /// The sender's count of the peer's r.cep (s.cep: 5 + the CE marks fed back).
    s_cep: u32,
    /// The segment `ecn_input` last read reported new CE marks (for the congestion graph).
    feedback: bool,
}

/// RFC 9768 §3.2.1: r.cep and s.cep start at 5, so that a zeroed ACE field is noticed.
const CEP_INIT: u32 = 5;
/// RFC 9768 §3.2.2.5.1: an ACK at the latest after this many CE marks, so that the 3-bit
/// ACE field cannot wrap unseen (Linux: TCP_ACCECN_ACE_MAX_DELTA).
const ACE_MAX_DELTA: u32 = 6;
/// The 24 bits of the AccECN option's byte counters.
const BYTES_MASK: u32 = 0x00ff_ffff;

/// RFC 9768 §3.1.1 Table 2 (and §3.2.2.1 Table 4 for the handshake's ACK): the ACE value
/// that reflects the IP-ECN field `ecn` of a SYN (or SYN,ACK).
pub(super) fn ace_reflecting(ecn: Ecn) -> u8 {
    match ecn {
        Ecn::NotEct => 0b010,
        Ecn::Ect1 => 0b011,
        Ecn::Ect0 => 0b100,
        Ecn::Ce => 0b110,
    }
}

/// RFC 9768 §3.1.1: what a SYN's AE, CWR and ECE ask for. 011 is RFC 3168's ECN-setup SYN;
/// 111 asks for AccECN, and so does every other non-zero combination ("MUST negotiate the
/// use of AccECN as if they had been set to 111", for forward compatibility; Linux's
/// tcp_accecn_syn_requested agrees).
pub(super) fn syn_asks(flags: Flags) -> (bool, bool) {
    let ace = flags.ace();
    let accecn = ace != 0 && ace != 0b011;
    (ace == 0b011 || accecn, accecn)
}

/// The AccECN option carrying the receiver's byte counters (24 bits each, RFC 9768 §3.2.3).
fn counters_option(e0b: u32, ceb: u32, e1b: u32) -> AccEcnOption {
    AccEcnOption {
        e0b: Some(e0b & BYTES_MASK),
        ceb: Some(ceb & BYTES_MASK),
        e1b: Some(e1b & BYTES_MASK),
    }
}

impl AccEcn {
    /// A new AccECN connection's state (§3.2.1: r.cep = s.cep = 5, r.e0b = r.e1b = 1,
    /// r.ceb = 0).
    fn initial() -> AccEcn {
        AccEcn {
            r_cep: CEP_INIT,
            s_cep: CEP_INIT,
            r_e0b: 1,
            r_e1b: 1,
            ..AccEcn::default()
        }
    }

    /// The receiver's counters as the AccECN option carries them.
    fn option(&self) -> AccEcnOption {
        counters_option(self.r_e0b, self.r_ceb, self.r_e1b)
    }
}

impl EcnState {
    /// The state, taken out while the send path sets each segment's marks
    /// (`Connection::ecn_marks`); what stays behind answers `in_cwr` meanwhile, so that PRR
    /// counts what the CWR state sends (`emit_data`).
    pub(super) fn lend(&mut self) -> EcnState {
        let lent = std::mem::take(self);
        self.cwr = lent.cwr;
        lent
    }
}

impl EcnState {
    /// AccECN negotiated, with `acc` as its starting state.
    fn accecn(acc: AccEcn) -> EcnState {
        EcnState {
            ok: true,
            acc: Some(Box::new(acc)),
            ..EcnState::default()
        }
    }

    /// Whether AccECN (RFC 9768) was negotiated.
    pub(super) fn is_accecn(&self) -> bool {
        self.acc.is_some()
    }

    /// With AccECN, the ACE field of our next segment has CWR set, which a device's
    /// segmentation offload would clear on all pieces but the first (Linux's tcp_gso_segment
    /// without SKB_GSO_TCP_ACCECN): such segments go out wire-sized (`gso_limit`).
    pub(super) fn ace_has_cwr(&self) -> bool {
        self.acc.as_ref().is_some_and(|a| a.r_cep & 0b010 != 0)
    }
}

impl Connection {
    /// RFC 3168 §6.1.1, from the peer's SYN or SYN,ACK (`learn_syn`): an ECN-setup SYN carries
    /// ECE and CWR, and `--ecn` is not off; an ECN-setup SYN,ACK carries ECE and not CWR,
    /// answering the ECE+CWR of our SYN (`--ecn on`).
    ///
    /// RFC 9768 §3.1.1: a SYN that asks for AccECN (`syn_asks`) gets it unless `--ecn off`
    /// (beyond Linux, whose default `tcp_ecn=2` answers it as RFC 3168; `tcp_ecn=3..5` accept
    /// AccECN); our SYN,ACK will reflect the SYN's IP-ECN field.
    pub(super) fn ecn_on_syn(&mut self, syn: &TcpSegment<'_>) {
        let f = syn.flags;
        if f.ack() && self.cfg.ecn == EcnMode::AccEcn {
            self.ecn_on_syn_ack_accecn(syn);
        } else if f.ack() {
            self.ecn.ok = self.cfg.ecn == EcnMode::On && f.ece() && !f.cwr();
            if self.ecn.ok {
                self.events_mut().ecn_negotiated += 1;
            }
        } else {
            let (ecn, accecn) = syn_asks(f);
            let allowed = self.cfg.ecn != EcnMode::Off;
            self.ecn.ok = allowed && ecn;
            if allowed && accecn {
                self.ecn = EcnState::accecn(AccEcn {
                    syn_ecn: syn.ecn,
                    await_handshake_ack: true,
                    ..AccEcn::initial()
                });
                self.events_mut().accecn_negotiated += 1;
            } else if self.ecn.ok {
                self.events_mut().ecn_negotiated += 1;
            }
        }
    }

    /// RFC 9768 §3.1.2 Table 2, the client's side (`--ecn accecn` asked with AE+CWR+ECE): a
    /// SYN,ACK with 000 (no ECN) or 111 (broken) leaves ECN off, 001 (RFC 3168) and 101 (the
    /// historic ECN nonce) mean RFC 3168, every other value AccECN, whose first ACK will
    /// reflect the SYN,ACK's IP-ECN field (Linux's tcp_ecn_rcv_synack).
    fn ecn_on_syn_ack_accecn(&mut self, syn_ack: &TcpSegment<'_>) {
        match syn_ack.flags.ace() {
            0b000 | 0b111 => self.ecn.ok = false,
            0b001 | 0b101 => {
                self.ecn.ok = true;
                self.events_mut().ecn_negotiated += 1;
            }
            _ => {
                self.ecn = EcnState::accecn(AccEcn {
                    reflect: Some(syn_ack.ecn),
                    ..AccEcn::initial()
                });
                self.events_mut().accecn_negotiated += 1;
            }
        }
    }

    /// The ECN part of a SYN cookie's SYN,ACK (`cookie_syn_ack`), which keeps no state: the
    /// same answer `ecn_on_syn` and `ecn_marks` give. Returns whether ECN was accepted.
    pub(super) fn cookie_syn_ack_ecn(
        mode: EcnMode,
        syn: &TcpSegment<'_>,
        flags: &mut Flags,
        option: &mut Option<AccEcnOption>,
    ) -> bool {
        let (asks, accecn) = syn_asks(syn.flags);
        if mode == EcnMode::Off || !asks {
            return false;
        }
        if accecn {
            *flags = flags.with_ace(ace_reflecting(syn.ecn));
            *option = Some(AccEcn::initial().option());
        } else {
            *flags |= Flags::ECE;
        }
        true
    }

    /// What `seg`, just processed, said about congestion, for the congestion graph.
    /// RFC 3168's feedback is the ECE flag itself; AccECN's, what `accecn_on_segment` read.
    pub(super) fn ecn_sample(&mut self, seg: &TcpSegment<'_>) -> SampleEcn {
        let feedback = match self.ecn.acc.as_deref_mut() {
            Some(acc) => std::mem::take(&mut acc.feedback),
            None => seg.flags.ece() && seg.flags.ack(),
        };
        SampleEcn {
            ece: self.ecn.ok && feedback,
            ce: self.ecn.ok && seg.ecn == Ecn::Ce,
        }
    }

    /// Whether the connection uses AccECN (RFC 9768).
    pub fn accecn_negotiated(&self) -> bool {
        self.ecn.is_accecn()
    }

    /// An acceptable segment arrived (`process`, after the ACK field), on an ECN connection
    /// of either kind: AccECN's receiver counts and its sender reads the ACE field
    /// (`accecn_on_segment`); what it learns reaches `ecn_on_segment` as RFC 3168's signal.
    /// Also counts the packets the peer reported CE-marked (Linux: `TCPDeliveredCE`).
    /// `una_before`: SND.UNA before the segment's ACK field was processed.
    pub(super) fn ecn_input(&mut self, now: Instant, seg: &TcpSegment<'_>, una_before: SeqNum) {
        if !self.ecn.ok {
            return;
        }
        let newly = if self.snd.una.gt(una_before) {
            self.snd.una.distance_from(una_before)
        } else {
            0
        };
        let mss = u32::from(self.eff_mss()).max(1);
        let packets = newly.div_ceil(mss);
        if !self.ecn.is_accecn() {
            if seg.flags.ece() && seg.flags.ack() {
                self.count_delivered_ce(packets.max(1));
            }
            self.ecn_on_segment(now, seg);
            return;
        }
        let ce = self.accecn_on_segment(seg, packets);
        self.count_delivered_ce(ce);
        // The shared reaction (RFC 9768 §3.2.2.5: "as if an ECE"), with the feedback that
        // AccECN replaced taken out.
        let classic = TcpSegment {
            flags: Flags::ACK.union(if ce > 0 { Flags::ECE } else { Flags::NONE }),
            ecn: Ecn::NotEct,
            ..*seg
        };
        self.ecn_on_segment(now, &classic);
    }

    fn count_delivered_ce(&mut self, packets: u32) {
        if packets == 0 {
            return;
        }
        let packets = u16::try_from(packets).unwrap_or(u16::MAX);
        let events = self.events_mut();
        events.delivered_ce = events.delivered_ce.saturating_add(packets);
    }

    /// RFC 9768 §3.2: an acceptable segment on an AccECN connection that newly acknowledged
    /// `packets` full-sized segments. Returns how many CE marks the peer newly reported.
    fn accecn_on_segment(&mut self, seg: &TcpSegment<'_>, packets: u32) -> u32 {
        // The receiver (§3.2.2.2): every packet counts, data bytes by their codepoint; a
        // super-segment counts as the segments it stands for.
        let len = u32::try_from(seg.payload.len()).unwrap_or(u32::MAX);
        let size = usize::from(self.local_mss).saturating_sub(seg.options.wire_len());
        let segments = u32::try_from(crate::wire::gso::segment_count(seg.payload.len(), size))
            .unwrap_or(1)
            .max(1);
        let Some(e) = self.ecn.acc.as_deref_mut() else {
            return 0;
        };
        match seg.ecn {
            Ecn::Ce => {
                e.r_cep = e.r_cep.wrapping_add(segments);
                e.r_ceb = e.r_ceb.wrapping_add(len);
                e.ce_pending = e.ce_pending.saturating_add(segments);
            }
            Ecn::Ect0 => e.r_e0b = e.r_e0b.wrapping_add(len),
            Ecn::Ect1 => e.r_e1b = e.r_e1b.wrapping_add(len),
            Ecn::NotEct => {}
        }
        if len > 0 {
            // §3.2.2.5.1: change-triggered ACKs: at once for a CE mark after a packet
            // without, and before the ACE field could wrap.
            let ce = seg.ecn == Ecn::Ce;
            if (ce && !e.last_ce) || e.ce_pending >= ACE_MAX_DELTA {
                self.ack_due = AckDue::Now;
            }
            e.last_ce = ce;
        }
        if !seg.flags.ack() {
            return 0;
        }
        if e.await_handshake_ack {
            // §3.2.2.3: a zeroed ACE on the handshake's ACK means a middlebox clears the
            // flags: send Not-ECT and ignore the field from now on (Linux:
            // TCP_ACCECN_ACE_FAIL_RECV). Any other value reflects our SYN,ACK.
            e.await_handshake_ack = false;
            if seg.flags.ace() == 0 {
                e.ace_failed = true;
                self.events_mut().accecn_ace_failures += 1;
            }
            return 0;
        }
        if e.ace_failed || packets == 0 {
            // Only an ACK that acknowledges new data says something new (Linux reads the
            // ACE field only on forward progress: a reordered ACK would count backwards).
            return 0;
        }
        // §3.2.2.5.2: the growth of the 3-bit counter; when more than 7 packets were newly
        // acknowledged it may have wrapped, and the safe assumption is the largest count
        // of that residue not above them (Linux's __tcp_accecn_process).
        let delta = u32::from(seg.flags.ace()).wrapping_sub(e.s_cep) & 0b111;
        let delta = if packets <= 0b111 {
            delta
        } else {
            packets - (packets.wrapping_sub(delta) & 0b111)
        };
        e.s_cep = e.s_cep.wrapping_add(delta);
        e.feedback = delta > 0;
        delta
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
                self.cc.enter_recovery(now, flight);
                self.cc.on_recovery_exit(now);
                self.prr_start(prior_cwnd);
                self.ecn.cwr = true;
                self.prr_on_ack(0, false);
                self.events_mut().ecn_cwnd_reductions += 1;
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
            if !seg.flags.ack() && label == Label::RtoRetransmit {
                // A SYN retransmitted after a timeout asks for nothing, in case a middlebox
                // drops ECN-setup SYNs (RFC 3168 §6.1.1.1, RFC 9768 §3.1.4.1; Linux's
                // tcp_ecn_fallback=1 clears AE, CWR and ECE from it).
            } else if !seg.flags.ack() && mode == EcnMode::On {
                seg.flags |= Flags::ECE | Flags::CWR;
            } else if !seg.flags.ack() && mode == EcnMode::AccEcn {
                // RFC 9768 §3.1.1: asking for AccECN.
                seg.flags |= Flags::AE | Flags::CWR | Flags::ECE;
            } else if let (true, Some(acc)) = (seg.flags.ack(), &ecn.acc) {
                // RFC 9768 §3.1.1: the SYN,ACK reflects the SYN's IP-ECN field, and
                // §3.2.3: carries the AccECN option where there is room.
                seg.flags = seg.flags.with_ace(ace_reflecting(acc.syn_ecn));
                seg.options.accecn = Some(acc.option());
            } else if seg.flags.ack() && ecn.ok {
                seg.flags |= Flags::ECE;
            }
            return;
        }
        if !ecn.ok || seg.flags.rst() {
            return;
        }
        if let Some(acc) = ecn.acc.as_deref_mut() {
            // RFC 9768 §3.2.2: every segment carries r.cep in the ACE field (CWR and ECE
            // keep no RFC 3168 meaning); §3.2.3.3: pure ACKs carry the option where there
            // is room (Linux also puts it on data, shrinking the segment; we do not).
            // §3.2.2.1: as the client, the first segment after the SYN,ACK reflects its
            // IP-ECN field instead.
            let ace = match acc.reflect.take() {
                Some(syn_ack) => ace_reflecting(syn_ack),
                None => (acc.r_cep & 0b111) as u8,
            };
            seg.flags = seg.flags.with_ace(ace);
            acc.ce_pending = 0;
            ecn.cwr_due = false;
            if seg.payload.is_empty() && !seg.flags.fin() {
                seg.options.accecn = Some(acc.option());
            } else if !acc.ace_failed && label == Label::None {
                seg.ecn = Ecn::Ect0;
            }
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

/// What TIME-WAIT's record (`time_wait.rs`) keeps of ECN: RFC 3168's ECE echo and its
/// once-per-window reaction, or AccECN's receiver counters, which its ACKs still carry.
/// Nothing is sent or reduced any more; the counts and marks stay what the whole connection
/// would give.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct TimeWaitEcn {
    ok: bool,
    accecn: bool,
    ece: bool,
    reacted: bool,
    last_ce: bool,
    ce_pending: u8,
    r_cep: u32,
    r_e0b: u32,
    r_e1b: u32,
    r_ceb: u32,
}

impl EcnState {
    /// The record of a connection entering TIME-WAIT at SND.UNA `snd_una`; `None` while
    /// the AccECN handshake is still being reflected (the connection then stays whole).
    pub(super) fn time_wait(&self, snd_una: SeqNum) -> Option<TimeWaitEcn> {
        let mut tw = TimeWaitEcn {
            ok: self.ok,
            ece: self.ece,
            // SND.UNA stays where it is now: a reaction over by then is over for good
            // (`ecn_on_segment` would clear it at the next segment).
            reacted: self.reacted && !snd_una.gt(self.reacted_until),
            ..TimeWaitEcn::default()
        };
        if let Some(acc) = self.acc.as_deref() {
            if acc.reflect.is_some() || acc.await_handshake_ack {
                return None;
            }
            tw.accecn = true;
            tw.last_ce = acc.last_ce;
            tw.ce_pending = u8::try_from(acc.ce_pending).unwrap_or(u8::MAX);
            (tw.r_cep, tw.r_e0b, tw.r_e1b, tw.r_ceb) = (acc.r_cep, acc.r_e0b, acc.r_e1b, acc.r_ceb);
        }
        Some(tw)
    }
}

impl TimeWaitEcn {
    /// An acceptable segment arrived in TIME-WAIT (`ecn_input` with nothing newly
    /// acknowledged; `size`: the payload of a full-sized segment). Returns whether an ACK is
    /// due at once: a first CE mark to echo (RFC 3168 §6.1.3), or AccECN's change-triggered
    /// ACK (RFC 9768 §3.2.2.5.1).
    pub(super) fn on_segment(
        &mut self,
        seg: &TcpSegment<'_>,
        size: usize,
        events: &mut super::ConnEvents,
    ) -> bool {
        if !self.ok {
            return false;
        }
        if !self.accecn {
            if seg.flags.ece() && seg.flags.ack() {
                events.delivered_ce = events.delivered_ce.saturating_add(1);
            }
            if seg.flags.cwr() {
                self.ece = false;
            }
            let mut ack_now = false;
            if seg.ecn == Ecn::Ce && !self.ece {
                self.ece = true;
                ack_now = true;
            }
            if seg.flags.ece() && !self.reacted {
                // Counted as the whole connection would; there is nothing left to reduce.
                self.reacted = true;
                events.ecn_cwnd_reductions += 1;
            }
            return ack_now;
        }
        let len = u32::try_from(seg.payload.len()).unwrap_or(u32::MAX);
        let segments = u32::try_from(crate::wire::gso::segment_count(seg.payload.len(), size))
            .unwrap_or(1)
            .max(1);
        let pending = u32::from(self.ce_pending);
        match seg.ecn {
            Ecn::Ce => {
                self.r_cep = self.r_cep.wrapping_add(segments);
                self.r_ceb = self.r_ceb.wrapping_add(len);
                let pending = pending.saturating_add(segments);
                self.ce_pending = u8::try_from(pending).unwrap_or(u8::MAX);
            }
            Ecn::Ect0 => self.r_e0b = self.r_e0b.wrapping_add(len),
            Ecn::Ect1 => self.r_e1b = self.r_e1b.wrapping_add(len),
            Ecn::NotEct => {}
        }
        let mut ack_now = false;
        if len > 0 {
            let ce = seg.ecn == Ecn::Ce;
            ack_now = (ce && !self.last_ce) || u32::from(self.ce_pending) >= ACE_MAX_DELTA;
            self.last_ce = ce;
        }
        ack_now
    }

    /// The marks of an ACK sent in TIME-WAIT (`Connection::ecn_marks` for a pure ACK).
    pub(super) fn marks(&mut self, seg: &mut TcpSegment<'_>) {
        if !self.ok {
            return;
        }
        if self.accecn {
            seg.flags = seg.flags.with_ace((self.r_cep & 0b111) as u8);
            self.ce_pending = 0;
            seg.options.accecn = Some(counters_option(self.r_e0b, self.r_ceb, self.r_e1b));
        } else if self.ece {
            seg.flags |= Flags::ECE;
        }
    }
}
