//! Congestion control: RFC 5681 (slow start, congestion avoidance, fast retransmit and fast
//! recovery), RFC 6582 (NewReno) and RFC 9438 (CUBIC), behind one enum so the connection
//! dispatches without a `Box`. Windows are in bytes. Sans-IO: `now` is an argument.
//!
//! Both controllers share [`Window`]: the initial window, slow start with appropriate byte
//! counting (RFC 3465), the fast-recovery window arithmetic (RFC 5681 §3.2, RFC 6582 §3.2,
//! RFC 6675 §5) and the loss window after a timeout. They differ in congestion avoidance and
//! in how far they back off.
//!
//! # Wiring into `Connection`
//!
//! - On establishment: `CongestionControl::new(cfg.cc, send_mss)`. Send only while
//!   `flight_size < cwnd()` (outside SACK recovery), where flight_size = SND.NXT − SND.UNA.
//! - An ACK that advances SND.UNA by `n` bytes (flight_size measured *before* it):
//!   - not in recovery: [`CongestionControl::on_ack`]`(now, n, rtt.srtt(), used)`, where
//!     `used` is the largest flight of the round ([`CwndUsage::flight`]), which says whether
//!     the window is being used;
//!   - in recovery and ACK < `recover` (RFC 6582 §3.2 step 5, a partial ACK): retransmit
//!     the first unacknowledged segment (non-SACK), or let the SACK scoreboard drive;
//!   - in recovery and ACK ≥ `recover` (a full ACK, step 3):
//!     [`CongestionControl::on_recovery_exit`]`(now)`.
//! - The third duplicate ACK (RFC 5681 §3.2 step 2; RFC 6582 §3.2 step 2 when ACK − 1 >
//!   `recover`), or a loss RACK or RFC 6675 finds: `recover = SND.NXT`,
//!   [`CongestionControl::enter_recovery`]`(now, flight_size)`, retransmit SND.UNA. During
//!   recovery, with or without SACK, Proportional Rate Reduction (`recovery/prr.rs`, RFC
//!   9937) sets cwnd on every ACK and `pipe` governs: there is no window inflation.
//! - The retransmission timer expires: [`CongestionControl::on_rto`]`(now, flight_size)`
//!   (and RFC 6582 §3.2 step 4 / RFC 6675 §5.1: `recover = SND.NXT`).
//!
//! The connection keeps `recover` (a `SeqNum`) and the duplicate-ACK counter: those are about
//! sequence space, not about the window.

mod cubic;
pub mod hystart;
mod newreno;
mod usage;

pub use cubic::Cubic;
pub use hystart::HyStart;
pub use newreno::NewReno;
pub use usage::CwndUsage;

use crate::time::{Duration, Instant};
use std::fmt;
use std::str::FromStr;

/// Which congestion controller to use (`--cc newreno|cubic`, default cubic).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum CcKind {
    NewReno,
    #[default]
    Cubic,
}

impl FromStr for CcKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "newreno" => Ok(CcKind::NewReno),
            "cubic" => Ok(CcKind::Cubic),
            other => Err(format!(
                "unknown congestion control '{other}' (use newreno or cubic)"
            )),
        }
    }
}

impl fmt::Display for CcKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CcKind::NewReno => "newreno",
            CcKind::Cubic => "cubic",
        })
    }
}

/// RFC 6928 §2: IW = min(10·SMSS, max(2·SMSS, 14600)).
///
/// We take RFC 6928's larger initial window rather than RFC 5681 §3.1's 2–4 segments: it is
/// what Linux, and therefore the kernel clients we talk to, use; it saves up to three round
/// trips on short transfers (an HTTP reply, the benchmark's connection rate), and RFC 6928's
/// experiments show no harm at today's path capacities. At MSS 1460 it is 14600 bytes (10
/// segments); at jumbo MSS 8960 the 14600-byte cap gives 2 segments.
pub const fn initial_window(smss: u32) -> u32 {
    let two = smss.saturating_mul(2);
    let cap = if two > 14600 { two } else { 14600 };
    let ten = smss.saturating_mul(10);
    if ten < cap { ten } else { cap }
}

/// The window arithmetic shared by both controllers.
#[derive(Clone, Debug)]
pub struct Window {
    /// SMSS: the sender's maximum segment size (RFC 5681 §2).
    pub smss: u32,
    pub cwnd: u32,
    pub ssthresh: u32,
    /// In fast recovery (RFC 5681 §3.2 / RFC 6582 / RFC 6675 §5).
    pub in_recovery: bool,
    /// RFC 3465 §2.3: slow start after an RTO counts at most 1 SMSS per ACK.
    pub after_rto: bool,
    /// RFC 3465 §2.1: bytes acknowledged in congestion avoidance since cwnd last grew.
    pub bytes_acked: u32,
    /// RFC 9406: in HyStart++'s Conservative Slow Start (cwnd grows a quarter as fast).
    pub css: bool,
}

impl Window {
    pub fn new(smss: u32) -> Self {
        let smss = smss.max(1);
        Window {
            smss,
            cwnd: initial_window(smss),
            // RFC 5681 §3.1: "The initial value of ssthresh SHOULD be set arbitrarily high".
            ssthresh: u32::MAX,
            in_recovery: false,
            after_rto: false,
            bytes_acked: 0,
            css: false,
        }
    }

    pub fn in_slow_start(&self) -> bool {
        // RFC 5681 §3.1: slow start when cwnd < ssthresh.
        self.cwnd < self.ssthresh
    }

    /// RFC 7661 §4.3: the window grows only while it is being used; with less than half of
    /// it in flight (the flow is application-limited) it is "non-validated" and must not grow.
    pub fn cwnd_limited(&self, flight_size: u32) -> bool {
        flight_size.saturating_mul(2) >= self.cwnd
    }

    /// RFC 5681 §3.1 slow start with RFC 3465 appropriate byte counting: cwnd grows by the
    /// bytes acknowledged, so that the window doubles every round trip however the receiver
    /// spaces its ACKs; right after a timeout, at most 1 SMSS per ACK (RFC 3465 §2.3). cwnd
    /// stops at ssthresh, where congestion avoidance takes over.
    ///
    /// Departure: RFC 3465 §2.2 caps the increase at L = 2·SMSS per ACK. Linux has no such
    /// cap (`tcp_slow_start` adds every packet acknowledged, since 2015's "tcp: fix the slow
    /// start when receiving stretch ACKs"), and Linux receivers send stretch ACKs: a kernel
    /// client reading a bulk download over the TUN acknowledges about five segments per ACK,
    /// so with L = 2 the window grew by only 1.4× per round trip and took ~20 round trips
    /// (0.8 s at 40 ms) instead of ~10 to fill a 1 Gbit/s path.
    pub fn slow_start(&mut self, bytes_acked: u32) {
        let inc = if self.after_rto {
            bytes_acked.min(self.smss)
        } else if self.css {
            // RFC 9406 §4.2: "cwnd = cwnd + (N / CSS_GROWTH_DIVISOR)".
            bytes_acked / hystart::CSS_GROWTH_DIVISOR
        } else {
            bytes_acked
        };
        self.cwnd = self.cwnd.saturating_add(inc).min(self.ssthresh);
        if !self.in_slow_start() {
            self.after_rto = false;
            self.bytes_acked = 0;
        }
    }

    /// Enter fast recovery with the controller's new ssthresh.
    /// RFC 5681 §3.2 step 2 / RFC 6582 §3.2 step 2: ssthresh ≥ 2·SMSS (equation 4). cwnd =
    /// ssthresh as RFC 6675 §5 step 4.2 sets it; from the next ACK on, PRR (RFC 9937) sets it
    /// to pipe + sndcnt, with or without SACK.
    ///
    /// Departure: RFC 5681 §3.2 steps 3 and 4 (and RFC 6582) inflate cwnd by 3 SMSS and by
    /// one SMSS per further duplicate ACK, and deflate it on partial ACKs. RFC 9937 replaces
    /// that for any recovery, and Linux has used PRR for Reno too since 3.2 (a non-SACK
    /// peer's duplicate ACKs count as SACKed segments, `tcp_add_reno_sack`).
    pub fn enter_recovery(&mut self, ssthresh: u32) {
        self.css = false;
        self.ssthresh = ssthresh.max(self.smss.saturating_mul(2));
        self.cwnd = self.ssthresh;
        self.in_recovery = true;
        self.bytes_acked = 0;
    }

    /// The end of fast recovery: PRR (RFC 9937) has brought the flight down to ssthresh,
    /// and cwnd = ssthresh (Linux's `tcp_end_cwnd_reduction`).
    pub fn on_recovery_exit(&mut self) {
        if !self.in_recovery {
            return;
        }
        self.cwnd = self.ssthresh;
        self.in_recovery = false;
        self.bytes_acked = 0;
    }

    /// A reduction proved spurious (D-SACK, timestamps): back to the window and threshold
    /// from before it, or what they have grown to since (Linux's `tcp_undo_cwnd_reduction`
    /// with `tcp_reno_undo_cwnd`); recovery, and slow start's timeout limit, end.
    pub fn undo(&mut self, prior_cwnd: u32, prior_ssthresh: u32) {
        self.cwnd = self.cwnd.max(prior_cwnd);
        self.ssthresh = self.ssthresh.max(prior_ssthresh);
        self.in_recovery = false;
        self.after_rto = false;
        self.bytes_acked = 0;
    }

    /// RFC 5681 §3.1: after a retransmission timeout, ssthresh as given (≥ 2·SMSS, equation 4)
    /// and cwnd = the loss window, LW = 1 SMSS.
    pub fn on_rto(&mut self, ssthresh: u32) {
        self.css = false;
        self.ssthresh = ssthresh.max(self.smss.saturating_mul(2));
        self.cwnd = self.smss;
        self.in_recovery = false;
        self.after_rto = true;
        self.bytes_acked = 0;
    }
}

/// A congestion controller, dispatched by enum.
#[derive(Clone, Debug)]
pub enum CongestionControl {
    NewReno(NewReno),
    Cubic(Cubic),
}

impl CongestionControl {
    pub fn new(kind: CcKind, smss: u32) -> Self {
        match kind {
            CcKind::NewReno => CongestionControl::NewReno(NewReno::new(smss)),
            CcKind::Cubic => CongestionControl::Cubic(Cubic::new(smss)),
        }
    }

    pub fn kind(&self) -> CcKind {
        match self {
            CongestionControl::NewReno(_) => CcKind::NewReno,
            CongestionControl::Cubic(_) => CcKind::Cubic,
        }
    }

    fn window(&self) -> &Window {
        match self {
            CongestionControl::NewReno(c) => &c.w,
            CongestionControl::Cubic(c) => &c.w,
        }
    }

    fn window_mut(&mut self) -> &mut Window {
        match self {
            CongestionControl::NewReno(c) => &mut c.w,
            CongestionControl::Cubic(c) => &mut c.w,
        }
    }

    /// The congestion window, in bytes.
    pub fn cwnd(&self) -> u32 {
        self.window().cwnd
    }

    /// RFC 9406: act on what HyStart++ saw.
    pub fn hystart(&mut self, step: hystart::Step) {
        let w = self.window_mut();
        match step {
            hystart::Step::Stay => {}
            hystart::Step::EnterCss => w.css = true,
            hystart::Step::ResumeSlowStart => w.css = false,
            hystart::Step::EnterCongestionAvoidance | hystart::Step::AckTrain => {
                // "ssthresh = cwnd": slow start (and CSS) end.
                w.css = false;
                w.ssthresh = w.cwnd;
            }
        }
    }

    /// Undo a reduction that proved spurious (see [`Window::undo`]).
    pub fn undo(&mut self, prior_cwnd: u32, prior_ssthresh: u32) {
        self.window_mut().undo(prior_cwnd, prior_ssthresh);
    }

    /// Set the congestion window during recovery: PRR's pipe + sndcnt (RFC 9937).
    pub fn set_cwnd(&mut self, cwnd: u32) {
        self.window_mut().cwnd = cwnd;
    }

    /// The slow-start threshold, in bytes (`u32::MAX` until the first loss).
    pub fn ssthresh(&self) -> u32 {
        self.window().ssthresh
    }

    pub fn smss(&self) -> u32 {
        self.window().smss
    }

    pub fn in_slow_start(&self) -> bool {
        self.window().in_slow_start()
    }

    pub fn in_recovery(&self) -> bool {
        self.window().in_recovery
    }

    /// New data acknowledged outside recovery: `bytes_acked` new bytes; `srtt` the smoothed
    /// RTT, if measured; `flight_size` the flight that says whether the window is used: the
    /// largest of the round ([`CwndUsage::flight`]), at least what was outstanding when the
    /// ACK arrived.
    /// Ignored during recovery (use the partial/full-ACK calls there).
    pub fn on_ack(
        &mut self,
        now: Instant,
        bytes_acked: u32,
        srtt: Option<Duration>,
        flight_size: u32,
    ) {
        if self.in_recovery() || bytes_acked == 0 {
            return;
        }
        match self {
            CongestionControl::NewReno(c) => c.on_ack(bytes_acked, flight_size),
            CongestionControl::Cubic(c) => c.on_ack(now, bytes_acked, srtt, flight_size),
        }
    }

    /// Loss detected by duplicate ACKs, SACK or RACK: back off and enter fast recovery.
    /// `flight_size`: the bytes the reduction starts from.
    pub fn enter_recovery(&mut self, now: Instant, flight_size: u32) {
        match self {
            CongestionControl::NewReno(c) => c.enter_recovery(flight_size),
            CongestionControl::Cubic(c) => c.enter_recovery(now, flight_size),
        }
    }

    /// The ACK that covers `recover` arrived: recovery ends.
    pub fn on_recovery_exit(&mut self, _now: Instant) {
        self.window_mut().on_recovery_exit();
    }

    /// The retransmission timer expired. `flight_size`: bytes outstanding.
    pub fn on_rto(&mut self, now: Instant, flight_size: u32) {
        match self {
            CongestionControl::NewReno(c) => c.on_rto(flight_size),
            CongestionControl::Cubic(c) => c.on_rto(now, flight_size),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MSS: u32 = 1460;

    #[test]
    fn kind_parses_and_prints() {
        assert_eq!("cubic".parse(), Ok(CcKind::Cubic));
        assert_eq!("NewReno".parse(), Ok(CcKind::NewReno));
        assert!("bbr".parse::<CcKind>().is_err());
        assert_eq!(CcKind::default(), CcKind::Cubic);
        assert_eq!(CcKind::NewReno.to_string(), "newreno");
        assert_eq!(CcKind::Cubic.to_string(), "cubic");
    }

    #[test]
    fn initial_window_follows_rfc_6928() {
        assert_eq!(initial_window(1460), 14600);
        assert_eq!(initial_window(536), 5360);
        assert_eq!(initial_window(8960), 17920);
        assert_eq!(initial_window(1), 10);
        assert_eq!(initial_window(u32::MAX), u32::MAX);
    }

    #[test]
    fn both_kinds_start_with_iw_and_infinite_ssthresh() {
        for kind in [CcKind::NewReno, CcKind::Cubic] {
            let cc = CongestionControl::new(kind, MSS);
            assert_eq!(cc.kind(), kind);
            assert_eq!(cc.cwnd(), 14600);
            assert_eq!(cc.ssthresh(), u32::MAX);
            assert!(cc.in_slow_start());
        }
    }

    #[test]
    fn slow_start_counts_every_byte_of_a_stretch_ack() {
        // A kernel receiver acknowledges several segments at once; the window still grows by
        // all of them (as Linux's tcp_slow_start), not by RFC 3465's L = 2·SMSS.
        for kind in [CcKind::NewReno, CcKind::Cubic] {
            let mut cc = CongestionControl::new(kind, MSS);
            cc.on_ack(Instant::ZERO, 5 * MSS, None, 14600);
            assert_eq!(cc.cwnd(), 14600 + 5 * MSS, "{kind}");
        }
    }

    #[test]
    fn slow_start_with_stretch_acks_doubles_every_round_trip() {
        // One round trip: the whole window is acknowledged, five segments per ACK.
        let mut cc = CongestionControl::new(CcKind::Cubic, MSS);
        for _ in 0..10 {
            let cwnd = cc.cwnd();
            let mut acked = 0;
            while acked < cwnd {
                let n = (5 * MSS).min(cwnd - acked);
                cc.on_ack(Instant::ZERO, n, None, cc.cwnd());
                acked += n;
            }
            assert_eq!(cc.cwnd(), 2 * cwnd);
        }
    }

    #[test]
    fn an_application_limited_flow_does_not_grow() {
        for kind in [CcKind::NewReno, CcKind::Cubic] {
            let mut cc = CongestionControl::new(kind, MSS);
            cc.on_ack(Instant::ZERO, MSS, None, MSS);
            assert_eq!(cc.cwnd(), 14600, "{kind}");
        }
    }

    #[test]
    fn recovery_sets_cwnd_to_ssthresh_without_inflation_and_exits_there() {
        let mut cc = CongestionControl::new(CcKind::NewReno, MSS);
        cc.enter_recovery(Instant::ZERO, 20 * MSS);
        assert_eq!((cc.ssthresh(), cc.cwnd()), (10 * MSS, 10 * MSS));
        // ACKs during recovery do not grow the window (PRR sets it: recovery/prr.rs).
        cc.on_ack(Instant::ZERO, MSS, None, 20 * MSS);
        assert_eq!(cc.cwnd(), 10 * MSS);
        cc.set_cwnd(4 * MSS);
        cc.on_recovery_exit(Instant::ZERO);
        assert_eq!(cc.cwnd(), 10 * MSS);
        assert!(!cc.in_recovery());
    }

    #[test]
    fn ssthresh_is_at_least_two_segments() {
        for kind in [CcKind::NewReno, CcKind::Cubic] {
            let mut cc = CongestionControl::new(kind, MSS);
            cc.enter_recovery(Instant::ZERO, MSS);
            assert_eq!(cc.ssthresh(), 2 * MSS, "{kind}");
            let mut cc = CongestionControl::new(kind, MSS);
            cc.on_rto(Instant::ZERO, 0);
            assert_eq!(cc.ssthresh(), 2 * MSS, "{kind}");
            assert_eq!(cc.cwnd(), MSS, "{kind}");
        }
    }

    #[test]
    fn after_an_rto_slow_start_counts_one_smss_per_ack() {
        let mut cc = CongestionControl::new(CcKind::NewReno, MSS);
        cc.on_rto(Instant::ZERO, 40 * MSS);
        assert_eq!(cc.cwnd(), MSS);
        cc.on_ack(Instant::ZERO, 2 * MSS, None, MSS);
        assert_eq!(cc.cwnd(), 2 * MSS);
    }

    #[test]
    fn extreme_inputs_do_not_panic() {
        for kind in [CcKind::NewReno, CcKind::Cubic] {
            for smss in [0, 1, u32::MAX] {
                let mut cc = CongestionControl::new(kind, smss);
                let t = Instant::from_micros(u64::MAX);
                cc.on_ack(t, u32::MAX, Some(Duration::MAX), u32::MAX);
                cc.enter_recovery(t, u32::MAX);
                cc.on_recovery_exit(t);
                cc.on_ack(Instant::ZERO, u32::MAX, Some(Duration::ZERO), u32::MAX);
                cc.on_rto(t, u32::MAX);
                cc.on_ack(t, u32::MAX, None, u32::MAX);
                assert!(cc.cwnd() >= cc.smss().min(1));
            }
        }
    }
}
