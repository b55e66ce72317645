//! The transmission control block (RFC 9293 §3.3.1) and what the application sees of it.
//!
//! Input processing lives in `input.rs`, output in `output.rs`; this file holds the TCB's
//! data, state transitions, timers and the [`Socket`] implementation.

use super::assembler::Reassembly;
use super::cc::{CongestionControl, CwndUsage};
use super::events::ConnEvents;
use super::keepalive::KeepAliveState;
use super::memory::Buffers;
use super::quickack::QuickAck;
use super::recovery::CaState;
use super::recovery::Recovery;
use super::rtt::RttEstimator;
use super::sack::{SackReceiver, Scoreboard};
use super::samples::{Episode, Samples, SenderState};
use super::trace::{Direction, Label, Trace};
use super::{Config, ConnInfo, SeqNum, Socket, State, default_mss};
use crate::time::Instant;
use crate::wire::{Quad, TcpSegment};
use std::collections::VecDeque;
use tracing::debug;

/// Send sequence space (RFC 9293 §3.3.1, Figure 3):
///
/// ```text
///      1         2          3          4
/// ----------|----------|----------|----------
///        SND.UNA    SND.NXT    SND.UNA
///                             +SND.WND
/// 1 - old sequence numbers that have been acknowledged
/// 2 - sequence numbers of unacknowledged data
/// 3 - sequence numbers allowed for new data transmission
/// 4 - future sequence numbers that are not yet allowed
/// ```
#[derive(Clone, Copy, Debug)]
pub(super) struct SendSpace {
    /// SND.UNA: oldest unacknowledged sequence number.
    pub una: SeqNum,
    /// SND.NXT: next new sequence number to be sent (the highest ever sent, plus one).
    pub nxt: SeqNum,
    /// SND.WND: the peer's window, in bytes.
    pub wnd: u32,
    /// SND.WL1 / SND.WL2: segment sequence and acknowledgment numbers of the last window update.
    pub wl1: SeqNum,
    pub wl2: SeqNum,
    /// ISS: our initial send sequence number.
    pub iss: SeqNum,
    /// MAX.SND.WND (RFC 5961 §5): the largest window the peer has offered.
    pub max_wnd: u32,
}

/// Receive sequence space (RFC 9293 §3.3.1, Figure 4):
///
/// ```text
///     1          2          3
/// ----------|----------|----------
///        RCV.NXT    RCV.NXT
///                  +RCV.WND
/// 1 - old sequence numbers that have been acknowledged
/// 2 - sequence numbers allowed for new reception
/// 3 - future sequence numbers that are not yet allowed
/// ```
#[derive(Clone, Copy, Debug)]
pub(super) struct RecvSpace {
    /// RCV.NXT: next sequence number expected.
    pub nxt: SeqNum,
    /// IRS: the peer's initial sequence number.
    pub irs: SeqNum,
    /// RCV.NXT + RCV.WND as last advertised. RCV.WND is derived from it, so the right edge
    /// never moves left (RFC 9293 §3.8.6, SHLD-14: do not shrink the window).
    pub right_edge: SeqNum,
}

impl RecvSpace {
    /// RCV.WND: what the peer may send beyond RCV.NXT, as last advertised.
    pub fn wnd(&self) -> u32 {
        if self.right_edge.lt(self.nxt) {
            0
        } else {
            self.right_edge.distance_from(self.nxt)
        }
    }
}

/// What the SYN exchange negotiated (RFC 7323, RFC 2018). Each option is on only when both
/// sides offered it.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Negotiated {
    /// Window scaling (RFC 7323 §2): the peer's shift applies to SND.WND, ours to RCV.WND.
    pub ws: bool,
    pub snd_shift: u8,
    pub rcv_shift: u8,
    /// Timestamps (RFC 7323 §3).
    pub ts: bool,
    /// SACK (RFC 2018).
    pub sack: bool,
}

/// RFC 7323 §2.3: a shift above 14 is treated as 14.
pub(super) const MAX_WINDOW_SHIFT: u8 = 14;
/// Bytes a connection must have had acknowledged before it sends super-segments (see
/// `Connection::gso_limit`).
pub(super) const GSO_AFTER: u32 = 64 * 1024;
/// The smallest window the peer must have offered before super-segments are sent: 64 KiB,
/// more than a 16-bit window field can carry unscaled (RFC 7323 §2.2), so only a peer that
/// scales its window and has opened it that far gets them. Linux opens its window past 64 KiB
/// within the first few ACKs of a bulk download; a crafted peer without window scaling never
/// does.
pub(super) const GSO_MIN_WINDOW: u32 = 1 << 16;

/// When the next pure ACK is owed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum AckDue {
    None,
    /// RFC 9293 §3.8.6.3: a delayed ACK, sent when the timer fires or with the next segment.
    Delayed,
    Now,
}

/// The connection's timers, as data (quinn's `TimerTable`): the next wake-up is their minimum.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Timers {
    /// Retransmission (RFC 6298) or, with a zero window and nothing in flight, persist
    /// (RFC 9293 §3.8.6.1).
    pub retransmit: Option<Instant>,
    pub delayed_ack: Option<Instant>,
    /// The closing timer: 2·MSL in TIME-WAIT (RFC 9293 §3.4.2), or how long an orphaned
    /// FIN-WAIT-2 may wait for the peer's FIN (Linux's tcp_fin_timeout). One timer, as the
    /// two states never overlap (FIN-WAIT-2 → TIME-WAIT rearms it); 8 bytes fewer in every
    /// connection (issue 23).
    pub close: Option<Instant>,
    /// Keep-alive (RFC 9293 §3.8.4): the next check of the idle time, when enabled.
    pub keepalive: Option<Instant>,
}

impl Timers {
    pub fn next(&self) -> Option<Instant> {
        [
            self.retransmit,
            self.delayed_ack,
            self.close,
            self.keepalive,
        ]
        .into_iter()
        .flatten()
        .min()
    }
}

/// One TCP connection.
pub struct Connection {
    /// (Packed: 38 bytes, not 64. `Connection::quad` unpacks it.)
    pub(super) quad: crate::wire::PackedQuad,
    pub(super) state: State,
    /// Shared by every connection made with the same tunables; a socket option copies it
    /// first (`Arc::make_mut`, sockopt.rs). Issue 23: 224 bytes no longer per connection.
    pub(super) cfg: std::sync::Arc<Config>,
    pub(super) snd: SendSpace,
    pub(super) rcv: RecvSpace,
    /// What the sender did over time, for the graphs (empty until data is sent).
    pub(super) samples: Samples,
    /// The next sequence number the output path will send. Equal to SND.NXT except after a
    /// retransmission timeout, when it goes back to SND.UNA and climbs again (go-back-N).
    pub(super) tx_next: SeqNum,
    /// The MSS we announced, the peer's, and the one we send with (RFC 9293 §3.7.1).
    pub(super) local_mss: u16,
    pub(super) opts: Negotiated,
    /// RFC 7323 §4.3: TS.Recent, and Last.ACK.sent (the ACK field we last sent).
    pub(super) ts_recent: u32,
    pub(super) last_ack_sent: SeqNum,
    /// When TS.Recent was last updated: it is invalid after 24 idle days (RFC 7323 §5.5).
    pub(super) ts_recent_at: Instant,
    /// RFC 7323 §5.4 and §7.1: the offset of our TSval clock, random per address pair.
    pub(super) ts_offset: u32,
    /// The next RTT sample from timestamps waits for an ACK at or beyond this (one per RTT).
    pub(super) ts_sample_mark: SeqNum,
    /// Our TSval clock at the last retransmission timeout: older echoes are not samples.
    pub(super) ts_rto_floor: Option<u32>,
    /// Segments dropped by PAWS (RFC 7323 §5).
    pub(super) paws_drops: u32,
    pub(super) peer_mss: Option<u16>,
    pub(super) send_mss: u16,
    /// The largest send MSS the path takes (RFC 1191, RFC 8201: the path MTU less the IP
    /// and TCP headers; `pmtu.rs`), `u16::MAX` until an ICMP error or the endpoint's cache
    /// says otherwise.
    pub(super) mss_cap: u16,
    /// What ICMP and the black-hole fallback taught it (`pmtu.rs`), allocated on first use:
    /// most connections never hear from the path.
    pub(super) path: Option<Box<super::pmtu::PathState>>,
    /// ECN (RFC 3168, `ecn.rs`).
    pub(super) ecn: super::ecn::EcnState,
    /// TCP Fast Open (RFC 7413, `fastopen.rs`): only on connections that use it.
    pub(super) fastopen: Option<Box<super::fastopen::FastOpenState>>,
    /// The send and receive queues (`Queues`), allocated while either holds something.
    pub(super) queues: super::lazy::Lazy<Queues>,
    /// A copy of a segment's payload when it straddles the end of `send_buf`'s ring: copying
    /// at most one segment costs far less than rotating the whole queue contiguous (which
    /// moved the entire, autotuned, send buffer once per lap of the ring).
    /// (Boxed: 8 bytes in a connection that never needs it, not a `Vec`'s 24; the extra
    /// allocation is made once, by the first straddling segment.)
    #[allow(clippy::box_collection)]
    pub(super) send_straddle: Option<Box<Vec<u8>>>,
    pub(super) send_start: SeqNum,
    /// The end of the last less-than-MSS segment sent (Nagle, Minshall's variant).
    pub(super) small_end: Option<SeqNum>,
    /// Out-of-order bytes beyond RCV.NXT (SHLD-31), and the SACK blocks that report them.
    /// (Allocated only while it holds something: `lazy.rs`, [`Connection::reasm_mut`].)
    pub(super) reasm: super::lazy::Lazy<Reassembly>,
    /// (Both allocated only while in use: `lazy.rs`.)
    pub(super) sack_rx: super::lazy::Lazy<SackReceiver>,
    /// The sender's congestion state (RFC 5681, RFC 6582, RFC 9438) and its SACK scoreboard
    /// (RFC 6675).
    pub(super) cc: CongestionControl,
    pub(super) scoreboard: super::lazy::Lazy<Scoreboard>,
    /// The largest flight of the round, which says whether cwnd is being used.
    pub(super) cwnd_usage: CwndUsage,
    /// Loss detection and recovery: segments in flight, RACK, TLP (`recovery/`).
    pub(super) rec: Recovery,
    /// RFC 6582 `recover`: SND.NXT when loss recovery last began.
    pub(super) recover: SeqNum,
    /// Duplicate ACKs in a row (RFC 5681 §2).
    /// (`u16`s here and for `unacked_segments`: they saturate long before mattering.)
    pub(super) dup_acks: u16,
    /// A fast retransmission of the segment at SND.UNA is due (RFC 5681 §3.2, RFC 6582 §3.2).
    pub(super) fast_rtx_due: bool,
    /// Segments retransmitted, for `status`.
    pub(super) retransmits: u32,
    /// The application closed its side: a FIN follows the queued data.
    pub(super) fin_queued: bool,
    /// The peer's FIN has been received (it occupies RCV.NXT − 1).
    pub(super) fin_received: bool,
    /// RFC 9293 §3.10.7.4 (MUST-11): SYN-RECEIVED came from LISTEN.
    pub(super) passive: bool,
    /// The application is gone (it closed and reads no more): FIN-WAIT-2 may time out.
    pub(super) orphaned: bool,
    /// A (re)transmission of our SYN,ACK is due.
    pub(super) syn_due: bool,
    /// An ABORT is pending: send `<SEQ=SND.NXT><CTL=RST>` and close.
    pub(super) rst_due: bool,
    /// The persist timer fired: probe a zero window, or override sender SWS avoidance.
    pub(super) probe_due: bool,
    pub(super) ack_due: AckDue,
    /// A challenge ACK (RFC 5961) is wanted; the endpoint's global rate limiter decides.
    pub(super) challenge_due: bool,
    /// Why the pure ACK that is due will be sent (a challenge, out-of-order data…), for the
    /// trace; and how many duplicate ACKs in a row we have sent for this RCV.NXT.
    pub(super) ack_reason: Label,
    pub(super) dup_acks_sent: u16,
    /// When we last sent a challenge ACK or an ACK for an out-of-window segment (Linux:
    /// `tp->last_oow_ack_time`): at most one per `input::OOW_ACK_INTERVAL`.
    pub(super) last_oow_ack: Option<Instant>,
    /// Full-sized segments received since we last sent an ACK (SHLD-19).
    pub(super) unacked_segments: u16,
    /// The application has read since our last segment (a window update may be due).
    pub(super) app_read: bool,
    /// The largest segment the peer has sent us: what "full-sized" means for SHLD-19, since
    /// the peer's options take their share of the MSS (Linux: icsk_ack.rcv_mss).
    pub(super) rcv_mss: u32,
    /// Quick-ACK mode: ACK every segment at once for a while (`quickack.rs`).
    pub(super) quick_ack: QuickAck,
    pub(super) rtt: RttEstimator,
    /// Karn's algorithm (RFC 6298 §3): the one segment being timed, by the sequence number that
    /// acknowledges it, and when it was sent. Cleared on retransmission.
    pub(super) rtt_probe: Option<(SeqNum, Instant)>,
    /// Consecutive retransmission timeouts without progress, and when the first one happened
    /// (RFC 9293 §3.8.3, R1/R2).
    pub(super) retries: u32,
    pub(super) first_timeout: Option<Instant>,
    pub(super) timers: Timers,
    /// Why the connection ended, if it did not close normally.
    pub(super) reset: Option<ResetCause>,
    pub(super) created: Instant,
    /// The segments in and out, for the sequence diagrams (`trace.rs`).
    pub(super) trace: Trace,
    /// Defensive actions and drops, collected by the endpoint's counters (`take_events`).
    pub(super) events: Option<Box<ConnEvents>>,
    /// Keep-alive settings and state (RFC 9293 §3.8.4), off unless `set_keepalive`.
    pub(super) keepalive: KeepAliveState,
    /// Buffer sizes, autotuning and the share of `--max-buffer-memory` (`memory.rs`).
    pub(super) buf: Buffers,
}

/// A connection's two byte queues. Boxed together and allocated only while either holds
/// something (`lazy.rs`): an idle connection keeps 8 bytes, not two `VecDeque`s' 64
/// (issue 23). Their own allocations were already given back when idle (`memory.rs`).
#[derive(Clone, Debug, Default)]
pub(super) struct Queues {
    /// Bytes queued by the application and not yet acknowledged; `send[0]` has sequence
    /// number `send_start`.
    pub send: VecDeque<u8>,
    /// In-order bytes received and not yet read by the application.
    pub recv: VecDeque<u8>,
}

static NO_QUEUES: Queues = Queues {
    send: VecDeque::new(),
    recv: VecDeque::new(),
};

impl super::lazy::Empty for Queues {
    fn empty() -> &'static Self {
        &NO_QUEUES
    }
    fn is_empty_state(&self) -> bool {
        self.send.is_empty() && self.recv.is_empty()
    }
}

/// How a connection ended abnormally (reported to the application, RFC 9293 MUST-12).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResetCause {
    /// The peer reset it.
    PeerReset,
    /// Retransmissions went unanswered past R2, or the SYN,ACK past its retries.
    TimedOut,
    /// We aborted it.
    Aborted,
    /// Our SYN was answered with a RST: "connection refused".
    Refused,
    /// An ICMP error ended it (`pmtu.rs`): a hard one, or any in SYN-SENT or SYN-RECEIVED;
    /// or a soft one was the last word before it timed out (RFC 1122 §4.2.3.9).
    Unreachable(crate::wire::IcmpErrorKind),
}

impl Connection {
    /// RFC 9293 §3.10.7.2: a SYN arrived in LISTEN. Build the TCB in SYN-RECEIVED with our
    /// `iss`, and queue the SYN,ACK.
    pub fn accept(
        now: Instant,
        quad: Quad,
        syn: &TcpSegment<'_>,
        iss: SeqNum,
        local_mss: u16,
        cfg: &std::sync::Arc<Config>,
    ) -> Connection {
        Connection::accept_syn(now, quad, syn, iss, local_mss, cfg, false)
    }

    /// `accept`, and with `fast_open` (a valid Fast Open cookie) the SYN's data taken too.
    pub(super) fn accept_syn(
        now: Instant,
        quad: Quad,
        syn: &TcpSegment<'_>,
        iss: SeqNum,
        local_mss: u16,
        cfg: &std::sync::Arc<Config>,
        fast_open: bool,
    ) -> Connection {
        let mut conn = Connection::new(now, quad, iss, local_mss, cfg);
        conn.passive = true;
        conn.trace.begin(State::Listen);
        // The TCB stands for the listener's half of the story: LISTEN -> SYN-RECEIVED.
        conn.state = State::Listen;
        conn.learn_syn(syn);
        conn.set_state(State::SynReceived);
        let label = if fast_open {
            conn.take_syn_data(syn)
        } else {
            Label::None
        };
        conn.trace
            .record_labeled(Direction::In, now, syn, conn.state, label);
        conn
    }

    /// RFC 9293 §3.10.1 OPEN (active): build the TCB in SYN-SENT and queue our SYN.
    pub fn connect(
        now: Instant,
        quad: Quad,
        iss: SeqNum,
        local_mss: u16,
        cfg: &std::sync::Arc<Config>,
    ) -> Connection {
        let mut conn = Connection::new(now, quad, iss, local_mss, cfg);
        conn.passive = false;
        conn.set_state(State::SynSent);
        conn
    }

    pub(super) fn new(
        now: Instant,
        quad: Quad,
        iss: SeqNum,
        local_mss: u16,
        cfg: &std::sync::Arc<Config>,
    ) -> Connection {
        Connection {
            quad: quad.into(),
            state: State::Closed,
            cfg: std::sync::Arc::clone(cfg),
            samples: Samples::default(),
            snd: SendSpace {
                una: iss,
                nxt: iss,
                wnd: 0,
                wl1: SeqNum::new(0),
                wl2: iss,
                iss,
                max_wnd: 0,
            },
            rcv: RecvSpace {
                nxt: SeqNum::new(0),
                irs: SeqNum::new(0),
                right_edge: SeqNum::new(0),
            },
            tx_next: iss,
            local_mss,
            opts: Negotiated {
                rcv_shift: Self::shift_for(cfg.rmem.max),
                ..Negotiated::default()
            },
            ts_recent: 0,
            ts_recent_at: now,
            last_ack_sent: SeqNum::new(0),
            ts_offset: Self::ts_offset_for(cfg, &quad),
            ts_sample_mark: iss,
            ts_rto_floor: None,
            paws_drops: 0,
            peer_mss: None,
            send_mss: default_mss(&quad).min(local_mss),
            // `--mtu-probing always` starts from the base MSS (Linux's tcp_mtu_probing=2).
            mss_cap: if cfg.mtu_probing == super::MtuProbing::Always {
                super::pmtu::BASE_MSS.max(default_mss(&quad))
            } else {
                u16::MAX
            },
            path: None,
            ecn: super::ecn::EcnState::default(),
            fastopen: None,
            queues: super::lazy::Lazy::new(),
            send_straddle: None,
            send_start: iss.add(1),
            small_end: None,
            reasm: super::lazy::Lazy::new(),
            sack_rx: super::lazy::Lazy::new(),
            cc: CongestionControl::new(cfg.cc, u32::from(default_mss(&quad).min(local_mss))),
            scoreboard: super::lazy::Lazy::new(),
            cwnd_usage: CwndUsage::new(iss),
            rec: Recovery::default(),
            recover: iss,
            dup_acks: 0,
            fast_rtx_due: false,
            retransmits: 0,
            fin_queued: false,
            fin_received: false,
            passive: false,
            orphaned: false,
            syn_due: true,
            rst_due: false,
            probe_due: false,
            ack_due: AckDue::None,
            challenge_due: false,
            ack_reason: Label::None,
            dup_acks_sent: 0,
            last_oow_ack: None,
            unacked_segments: 0,
            app_read: false,
            rcv_mss: 536.min(u32::from(local_mss)),
            quick_ack: QuickAck::default(),
            rtt: RttEstimator::new(cfg.initial_rto, cfg.min_rto, cfg.max_rto),
            rtt_probe: None,
            retries: 0,
            first_timeout: None,
            timers: Timers::default(),
            reset: None,
            created: now,
            trace: Trace::new(),
            events: None,
            keepalive: KeepAliveState::new(now),
            buf: Buffers::new(cfg),
        }
    }

    /// RFC 7323 §7.1 (and §5.4): the offset of our TSval clock, a keyed hash of the address
    /// pair, so that a TSval tells nothing of how long we have run, nor relates the clocks two
    /// peers see. Linux does the same (`secure_tcp_ts_off`: siphash of the two addresses under
    /// a boot-time secret; per address pair rather than per connection, since Linux 4.13, so
    /// that a new connection's TSvals keep increasing after the old one's for PAWS and
    /// TIME-WAIT reuse). A SYN cookie's SYN,ACK, sent before any TCB exists, and the
    /// connection rebuilt from the cookie both compute it from the 4-tuple alone.
    pub(crate) fn ts_offset_for(cfg: &Config, quad: &Quad) -> u32 {
        use std::hash::Hasher;
        let mut h = siphasher::sip::SipHasher24::new_with_key(&cfg.ts_key.0);
        for ip in [quad.local.ip(), quad.remote.ip()] {
            match ip {
                std::net::IpAddr::V4(a) => h.write(&a.octets()),
                std::net::IpAddr::V6(a) => h.write(&a.octets()),
            }
        }
        h.finish() as u32
    }

    /// Take what the peer's SYN (or SYN,ACK) tells us: IRS, RCV.NXT, its MSS and window.
    pub(super) fn learn_syn(&mut self, syn: &TcpSegment<'_>) {
        // RFC 9293 §3.10.7.2/3: RCV.NXT = SEG.SEQ + 1, IRS = SEG.SEQ. Data on a SYN is not
        // accepted (the peer retransmits it), as Linux does without TCP Fast Open.
        self.rcv.irs = syn.seq;
        self.rcv.nxt = syn.seq.add(1);
        // RFC 7323 §2.2, RFC 2018 §2: an option is used only if both SYNs carry it.
        let o = &syn.options;
        self.opts.ws = self.cfg.window_scaling && o.window_scale.is_some();
        if self.opts.ws {
            // RFC 7323 §2.3: a shift above 14 is used as 14.
            self.opts.snd_shift = o.window_scale.unwrap_or(0).min(MAX_WINDOW_SHIFT);
        } else {
            self.opts.snd_shift = 0;
            self.opts.rcv_shift = 0;
        }
        self.opts.sack = self.cfg.sack && o.sack_permitted;
        self.ecn_on_syn(syn);
        if let (true, Some((tsval, _))) = (self.cfg.timestamps, o.timestamps) {
            self.opts.ts = true;
            self.ts_recent = tsval;
        }
        // The window on a SYN is never scaled: what the SYN or SYN,ACK offers is at most 64 KiB.
        self.rcv.right_edge = self.rcv.nxt.add(self.window_cap().min(u32::from(u16::MAX)));
        // A peer's MSS of 0 or a few bytes would stall or flood us; Linux clamps it (to 48,
        // TCP_MIN_MSS 88). We clamp to 64 so that a tiny MSS still makes progress (MUST-16:
        // the effective MSS is the smaller of the two).
        self.peer_mss = syn.options.mss;
        self.send_mss = syn
            .options
            .mss
            .unwrap_or(default_mss(&self.quad()))
            .clamp(64, self.local_mss.max(64))
            .min(self.mss_cap.max(64));
        // RFC 5681 §3.1: the initial window depends on the MSS, known only now.
        self.cc = CongestionControl::new(self.cfg.cc, u32::from(self.eff_mss()));
        // The window of a SYN is never scaled (RFC 7323 §2.2).
        self.snd.wnd = u32::from(syn.window);
        self.snd.max_wnd = self.snd.wnd;
        self.snd.wl1 = syn.seq;
    }

    /// The largest window we offer now: the receive buffer (as autotuned), within what the
    /// window field can express with our shift (RFC 7323 §2.3: at most 2^30 bytes).
    pub(super) fn window_cap(&self) -> u32 {
        let field_max = u32::from(u16::MAX) << self.opts.rcv_shift;
        u32::try_from(self.buf.rcvbuf)
            .unwrap_or(u32::MAX)
            .min(field_max)
    }

    /// The most payload a segment carries: the send MSS less the timestamp option, which is
    /// on every segment once negotiated (RFC 9293 §3.7.1: the MSS counts data only, so our
    /// options must fit in it too; Linux's mss_cache does the same).
    pub(super) fn eff_mss(&self) -> u16 {
        let ts = if self.opts.ts { 12 } else { 0 };
        self.send_mss.saturating_sub(ts).max(1)
    }

    /// The payload of each wire segment when a segment larger than that is emitted (a
    /// super-segment for segmentation offload): the effective send MSS.
    pub fn segment_size(&self) -> u16 {
        self.eff_mss()
    }

    /// The most new data one emitted segment may carry: the effective MSS, or with
    /// segmentation offload (`Config::gso_max`) a whole number of MSS-sized segments, once
    /// the connection is a bulk transfer: more than [`GSO_AFTER`] bytes acknowledged, and a
    /// peer that has offered a window of at least [`GSO_MIN_WINDOW`] (64 KiB, which needs
    /// window scaling) and takes full-sized segments of our link (its MSS is not below
    /// ours). Like Linux's TSO autosizing, short exchanges and small windows keep wire-sized
    /// segments, so a capture of a handshake, a small reply, a window-limited peer or one
    /// that clamped its MSS shows each segment as the peer receives it.
    pub(super) fn gso_limit(&self, mss: u32) -> u32 {
        if self.cfg.gso_max < 2 * mss
            || self.snd.una.distance_from(self.snd.iss) < GSO_AFTER
            || self.snd.max_wnd < GSO_MIN_WINDOW
            || self.send_mss < self.local_mss
            || self.ecn.ace_has_cwr()
        {
            return mss;
        }
        self.cfg.gso_max / mss * mss
    }

    /// The sender's state for a graph sample.
    pub(super) fn sender_state(&self) -> SenderState {
        let us = |d: crate::time::Duration| u32::try_from(d.as_micros()).unwrap_or(u32::MAX);
        let flight = if self.opts.sack {
            let mss = u32::from(self.send_mss);
            self.scoreboard.pipe(self.snd.una, self.snd.nxt, mss)
        } else {
            self.snd.nxt.distance_from(self.snd.una)
        };
        SenderState {
            una: self.snd.una,
            wnd: self.snd.wnd,
            cwnd: self.cc.cwnd(),
            ssthresh: self.cc.ssthresh(),
            flight,
            srtt_us: self.rtt.srtt().map_or(0, us),
            rto_us: us(self.rtt.rto()),
            episode: match self.ca_state() {
                CaState::Recovery => Episode::FastRecovery,
                CaState::Loss => Episode::RtoLoss,
                CaState::Open | CaState::Disorder | CaState::Cwr => Episode::None,
            },
        }
    }

    /// What the sender did over time (see [`Samples`]).
    pub fn samples(&self) -> &Samples {
        &self.samples
    }

    /// Take the samples away, for a connection being removed whose page should outlive it.
    pub fn take_samples(&mut self) -> Samples {
        std::mem::take(&mut self.samples)
    }

    /// `synack status --info` (see [`TcpInfo`]); `age` is how long the connection has lived.
    pub fn tcp_info(&self, age: crate::time::Duration) -> super::TcpInfo {
        let us = |d: crate::time::Duration| u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        let mss = u32::from(self.send_mss);
        let data = |from: SeqNum, to: SeqNum| u64::from(to.distance_from(from).saturating_sub(1));
        let bytes_acked = if self.snd.una == self.snd.iss {
            0
        } else {
            data(self.snd.iss, self.snd.una)
        };
        let (mut segs_in, mut segs_out) = (
            self.trace.folded().segments_in,
            self.trace.folded().segments_out,
        );
        for e in self.trace.events() {
            match e.direction {
                Direction::In => segs_in += 1,
                Direction::Out => segs_out += 1,
            }
        }
        let sender = self.sender_state();
        let window_left = self
            .snd
            .una
            .add(self.snd.wnd)
            .distance_from(self.snd.nxt)
            .min(self.snd.wnd);
        let limited = if self.queues.send.len() <= sender.flight as usize {
            "application"
        } else if window_left < mss {
            "receive window"
        } else if sender.cwnd <= sender.flight.saturating_add(mss) {
            "cwnd"
        } else {
            "application"
        };
        let lost_bytes = if self.rack_active() {
            self.rec.sent().lost_bytes()
        } else {
            self.scoreboard.lost_bytes(self.snd.una, self.snd.nxt, mss)
        };
        let secs = age.as_secs_f64();
        super::TcpInfo {
            cc: self.cc.kind().to_string(),
            wscale: self
                .opts
                .ws
                .then_some((self.opts.rcv_shift, self.opts.snd_shift)),
            rto_us: us(self.rtt.rto()),
            rtt_us: self.rtt.srtt().map(us),
            rttvar_us: us(self.rtt.rttvar()),
            mss: self.send_mss,
            cwnd: sender.cwnd,
            ssthresh: (sender.ssthresh < u32::MAX / 2).then_some(sender.ssthresh),
            bytes_sent: data(self.snd.iss, self.snd.nxt),
            bytes_acked,
            bytes_received: data(self.rcv.irs, self.rcv.nxt),
            segs_out,
            segs_in,
            retrans: u64::from(self.retransmits),
            lost_bytes,
            sacked_bytes: self.scoreboard.sacked_bytes(),
            rcv_space: self.recv_space(),
            rcv_wnd: self.rcv.wnd(),
            snd_wnd: self.snd.wnd,
            delivery_rate: if secs > 0.0 {
                (bytes_acked as f64 / secs) as u64
            } else {
                0
            },
            limited,
            pmtu: (self.mss_cap < u16::MAX).then(|| {
                u32::from(self.mss_cap) + if self.quad().local.is_ipv4() { 40 } else { 60 }
            }),
            last_error: self.soft_error().map(crate::wire::IcmpErrorKind::describe),
            ecn: self.ecn.ok,
            accecn: self.ecn.is_accecn(),
            ca_state: self.ca_state().name(),
            reo_wnd_us: us(self.rec.reo_wnd()),
        }
    }

    /// The congestion window, for `status`.
    pub fn cwnd(&self) -> u32 {
        self.cc.cwnd()
    }

    /// The current retransmission timeout and smoothed RTT, for `status`.
    pub fn rto(&self) -> crate::time::Duration {
        self.rtt.rto()
    }

    pub fn srtt(&self) -> Option<crate::time::Duration> {
        self.rtt.srtt()
    }

    /// Segments retransmitted so far.
    pub fn retransmissions(&self) -> u64 {
        u64::from(self.retransmits)
    }

    /// Bytes queued for sending and not yet acknowledged (Send-Q), and received but not yet
    /// read (Recv-Q).
    pub fn send_queue(&self) -> usize {
        self.queues.send.len()
    }

    /// The smallest shift that lets the window field cover `buffer` bytes (RFC 7323 §2.3).
    pub(crate) fn shift_for(buffer: usize) -> u8 {
        let mut shift = 0;
        while shift < MAX_WINDOW_SHIFT && (buffer >> shift) > usize::from(u16::MAX) {
            shift += 1;
        }
        shift
    }

    /// Our TSval clock (RFC 7323 §5.4): milliseconds, from a per-connection offset.
    pub(super) fn ts_now(&self, now: Instant) -> u32 {
        ((now.as_micros() / 1000) as u32).wrapping_add(self.ts_offset)
    }

    /// The logging context of this connection's events (its 4-tuple), made when it is
    /// entered rather than kept: a span kept per connection made the logging library hold
    /// memory for every connection at the busiest moment, scattered through the heap, long
    /// after they were gone (issue 22). Disabled below `-v`, where it costs a level check.
    pub(super) fn span(&self) -> tracing::Span {
        tracing::debug_span!("conn", local = %self.quad().local, remote = %self.quad().remote)
    }

    /// The one place every state transition passes through, and is logged.
    pub(super) fn set_state(&mut self, next: State) {
        if self.state == next {
            return;
        }
        {
            let span = self.span();
            let _enter = span.enter();
            debug!("{} -> {}", self.state, next);
        }
        // RFC 1213 tcpEstabResets (Linux: TcpEstabResets): "a direct transition to the CLOSED
        // state from either the ESTABLISHED state or the CLOSE-WAIT state", whoever reset.
        if next == State::Closed && matches!(self.state, State::Established | State::CloseWait) {
            self.events_mut().established_resets += 1;
        }
        self.state = next;
        if next == State::Closed {
            self.timers = Timers::default();
            self.release_buffers();
        }
    }

    pub fn state(&self) -> State {
        self.state
    }

    pub fn quad(&self) -> Quad {
        self.quad.get()
    }

    /// The 4-tuple as the connection keeps it (what the endpoint's index compares).
    pub fn packed_quad(&self) -> &crate::wire::PackedQuad {
        &self.quad
    }

    pub fn reset_cause(&self) -> Option<ResetCause> {
        self.reset
    }

    pub fn created(&self) -> Instant {
        self.created
    }

    /// SND.NXT, for TIME-WAIT reuse (RFC 9293 MAY-2: the new ISS must be above it).
    pub fn snd_nxt(&self) -> SeqNum {
        self.snd.nxt
    }

    /// ISS and IRS: the two initial sequence numbers.
    pub fn iss(&self) -> SeqNum {
        self.snd.iss
    }

    pub fn irs(&self) -> SeqNum {
        self.rcv.irs
    }

    /// RCV.NXT.
    pub fn rcv_nxt(&self) -> SeqNum {
        self.rcv.nxt
    }

    /// SND.UNA: with `snd_wnd`, the right edge of the window the peer offered.
    pub fn snd_una(&self) -> SeqNum {
        self.snd.una
    }

    /// `--impair` dropped one of this connection's segments on the link (see
    /// [`Trace::record_lost`]).
    pub fn record_lost(&mut self, direction: Direction, now: Instant, seg: &TcpSegment<'_>) {
        self.trace.record_lost(direction, now, seg);
    }

    /// The record of the segments this connection received and sent.
    pub fn trace(&self) -> &Trace {
        &self.trace
    }

    /// Take the trace away (leaving one that only counts), for a connection being removed
    /// whose diagram should outlive it.
    pub fn take_trace(&mut self) -> Trace {
        std::mem::take(&mut self.trace)
    }

    /// The connection's sequence diagram so far.
    pub fn ladder(&self) -> String {
        super::ladder::render(&self.trace, &self.ladder_view())
    }

    /// What the diagram needs besides the trace: the 4-tuple, the ISNs, the state now.
    pub fn ladder_view(&self) -> super::ladder::View {
        super::ladder::View {
            quad: self.quad(),
            iss: self.snd.iss,
            irs: self.rcv.irs,
            state: self.state,
            cause: self.reset,
        }
    }

    /// When `handle_timeout` must be called next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        [self.timers.next(), self.rec.next_timer()]
            .into_iter()
            .flatten()
            .min()
    }

    /// The sequence number our FIN occupies once the application has closed.
    pub(super) fn fin_seq(&self) -> SeqNum {
        self.send_start.add(self.send_buf_len())
    }

    pub(super) fn send_buf_len(&self) -> u32 {
        u32::try_from(self.queues.send.len()).unwrap_or(u32::MAX)
    }

    /// Our FIN has been sent and acknowledged.
    pub(super) fn fin_acked(&self) -> bool {
        self.fin_queued && self.snd.una.gt(self.fin_seq())
    }

    /// Anything sent and not yet acknowledged.
    pub(super) fn in_flight(&self) -> bool {
        self.snd.una != self.snd.nxt
    }

    /// A challenge ACK is wanted (RFC 5961 §3.2, §4.2, §5.2). The caller, which holds the
    /// global rate limiter (RFC 5961 §7), answers with [`Connection::grant_challenge`] or
    /// drops it.
    pub fn take_challenge(&mut self) -> bool {
        std::mem::take(&mut self.challenge_due)
    }

    /// Send the challenge ACK: `<SEQ=SND.NXT><ACK=RCV.NXT><CTL=ACK>`.
    pub fn grant_challenge(&mut self) {
        self.ack_due = AckDue::Now;
        self.ack_reason = Label::ChallengeAck;
    }

    /// Our FIN is acknowledged: wait in FIN-WAIT-2 for the peer's. CLOSE is a half-close
    /// (RFC 9293 §3.10.4: the user may go on receiving), so this waits as long as the
    /// application reads; only an orphan, whose application is gone, times out.
    pub(super) fn enter_fin_wait_2(&mut self, now: Instant) {
        self.set_state(State::FinWait2);
        self.arm_orphan_timer(now);
    }

    /// The application has closed for good and will read no more (a built-in service that
    /// closed, or the daemon shutting down). A FIN-WAIT-2 orphan would wait forever for a
    /// peer that never closes; Linux (tcp_fin_timeout, 60 s) resets it, and so do we.
    pub fn orphan(&mut self, now: Instant) {
        if !self.orphaned {
            self.orphaned = true;
            self.arm_orphan_timer(now);
        }
    }

    fn arm_orphan_timer(&mut self, now: Instant) {
        if self.orphaned && self.state == State::FinWait2 && self.timers.close.is_none() {
            self.timers.close = Some(now + self.cfg.fin_wait_2_timeout);
        }
    }

    /// Enter TIME-WAIT, or restart its 2·MSL timer (RFC 9293 §3.10.7.4, eighth step).
    pub(super) fn enter_time_wait(&mut self, now: Instant) {
        self.set_state(State::TimeWait);
        self.timers.retransmit = None;
        self.timers.delayed_ack = None;
        self.timers.close = Some(now + self.cfg.time_wait);
        // Nothing reads or sends in TIME-WAIT: it holds no buffer memory (as Linux's
        // tcp_timewait_sock keeps no queues).
        self.release_buffers();
    }

    /// End the connection without sending anything.
    pub(super) fn close_silently(&mut self, cause: Option<ResetCause>) {
        if self.reset.is_none() {
            self.reset = cause;
        }
        self.set_state(State::Closed);
    }

    /// Handle every timer that is due at `now` (RFC 6298 §5, RFC 9293 §3.8.3, §3.10.8).
    pub fn handle_timeout(&mut self, now: Instant) {
        let due = |t: Option<Instant>| t.is_some_and(|t| t <= now);
        if due(self.timers.close) && self.state == State::TimeWait {
            // RFC 9293 §3.10.8: when the time-wait timeout expires, delete the TCB.
            self.timers.close = None;
            self.set_state(State::Closed);
            return;
        }
        if due(self.timers.close) {
            self.timers.close = None;
            if self.state == State::FinWait2 {
                let span = self.span();
                let _enter = span.enter();
                debug!("no FIN from the peer in FIN-WAIT-2: resetting");
                drop(_enter);
                self.events_mut().fin_wait_2_timeouts += 1;
                self.rst_due = true;
                self.reset = Some(ResetCause::TimedOut);
                return;
            }
        }
        if due(self.timers.keepalive) {
            self.timers.keepalive = None;
            self.on_keepalive_timeout(now);
            if self.rst_due {
                return;
            }
        }
        if due(self.timers.delayed_ack) {
            self.timers.delayed_ack = None;
            self.ack_due = AckDue::Now;
        }
        // RFC 8985 §7.2: a probe scheduled for when the retransmission timer would fire
        // (the PTO is capped there) goes instead of the timeout, which is re-armed when the
        // probe is sent (§7.3); so the RTO is not backed off nor cwnd collapsed for a lone
        // lost segment. Linux keeps one timer for both (ICSK_TIME_LOSS_PROBE replaces the
        // RTO until it fires).
        let probe_at = self.rec.st.as_ref().and_then(|st| st.tlp.deadline);
        let probe_first = due(probe_at)
            && self
                .timers
                .retransmit
                .is_none_or(|rto| probe_at <= Some(rto));
        if probe_first {
            self.on_recovery_timers(now);
            if self.rec.st.as_ref().is_some_and(|st| st.probe_due) {
                self.timers.retransmit = None;
            }
        }
        if due(self.timers.retransmit) {
            self.timers.retransmit = None;
            self.on_retransmit_timeout(now);
        }
        if !probe_first {
            // RACK's reordering timer and the tail loss probe (recovery/).
            self.on_recovery_timers(now);
        }
    }

    fn on_retransmit_timeout(&mut self, now: Instant) {
        self.events_mut().rto_expirations += 1;
        let first = *self.first_timeout.get_or_insert(now);
        if matches!(self.state, State::SynReceived | State::SynSent) {
            // A half-open connection is dropped after a bounded number of SYN or SYN,ACK
            // retransmissions (Linux: tcp_syn_retries = 6, tcp_synack_retries = 5).
            let limit = if self.state == State::SynSent {
                self.cfg.syn_retries
            } else {
                self.cfg.synack_retries
            };
            if self.retries >= limit {
                let span = self.span();
                let _enter = span.enter();
                debug!("SYN unanswered after {} retransmissions", self.retries);
                drop(_enter);
                self.close_silently(Some(ResetCause::TimedOut));
                return;
            }
            self.syn_due = true;
        } else if self.in_flight() {
            // RFC 9293 §3.8.3 (MUST-20): past R2, give up on the connection. Like Linux
            // (tcp_retries2 = 15) R2 counts retransmissions, and it lasts at least `r2` (100 s);
            // the connection is closed without a RST (as Linux's tcp_write_err).
            // With TCP_USER_TIMEOUT (RFC 5482 §3, Linux's tcp_write_timeout) the time alone
            // decides.
            let gave_up = match self.cfg.user_timeout {
                Some(timeout) => now.saturating_since(first) >= timeout,
                None => {
                    self.retries >= self.cfg.r2_retries
                        && now.saturating_since(first) >= self.cfg.r2
                }
            };
            if gave_up {
                let span = self.span();
                let _enter = span.enter();
                debug!("no acknowledgment for {:?}: giving up", self.cfg.r2);
                drop(_enter);
                // RFC 1122 §4.2.3.9: a soft error heard meanwhile is what is reported (as
                // Linux's tcp_write_err: sk_err_soft, else ETIMEDOUT).
                let cause = self
                    .soft_error()
                    .map_or(ResetCause::TimedOut, ResetCause::Unreachable);
                self.close_silently(Some(cause));
                return;
            }
            self.blackhole_check(now);
            // RFC 5681 §3.1 (and RFC 9438 §4.8): after a timeout, cwnd is one segment;
            // RFC 6582 §3.2 step 4 and RFC 6675 §5.1: recover = SND.NXT, recovery ends.
            let flight = self.snd.nxt.distance_from(self.snd.una);
            if self.retries == 0 {
                // The first timeout of an episode: what to restore if it proves spurious, and
                // F-RTO's first step (RFC 5682 §2.1).
                self.undo_start();
                self.frto_start();
            } else {
                self.frto_stop();
            }
            self.cc.on_rto(now, flight);
            self.recover = self.snd.nxt;
            self.dup_acks = 0;
            self.fast_rtx_due = false;
            self.ts_rto_floor = Some(self.ts_now(now));
            if let Some(path) = self.path.as_deref_mut() {
                path.pmtu_rtx_end = None;
            }
            // RFC 2018 §8: after a timeout, do not rely on what the receiver SACKed.
            self.scoreboard.reset();
            // Everything in flight is lost (Linux's tcp_enter_loss); no probe is pending.
            self.rec.on_rto();
            // RFC 6298 §5.4: retransmit the earliest unacknowledged segment; the rest follows
            // as the congestion window reopens (go-back-N, as Linux marks all lost).
            self.tx_next = self.snd.una;
            if self.snd.wnd == 0 {
                // RFC 9293 §3.8.6 (MUST-35) and §3.8.6.1 (MUST-36): the window shrank to zero
                // with data in flight; the retransmission of the head segment is the window
                // probe, sent although the window is closed (as Linux's tcp_retransmit_timer
                // does). A peer that answers it keeps the connection open (MUST-37: `on_ack`
                // resets the retry count for an ACK of SND.UNA with a zero window).
                self.probe_due = true;
            }
        } else if self.has_unsent() {
            // RFC 9293 §3.8.6.1 (MUST-35/36): probe the zero window, backing off each time.
            self.probe_due = true;
            self.rtt.save_rto_for_probes();
        } else {
            return;
        }
        self.retries += 1;
        // RFC 6298 §3 (Karn): a retransmitted segment is never timed.
        self.rtt_probe = None;
        // RFC 6298 §5.5: back off the timer; §5.6: restart it (done when the segment is sent).
        self.rtt.back_off();
    }

    /// Queued data (or a FIN) that has not been sent yet.
    pub(super) fn has_unsent(&self) -> bool {
        let end = self.fin_seq().add(u32::from(self.fin_queued));
        self.snd.nxt.lt(end)
    }

    pub(super) fn arm_retransmit(&mut self, now: Instant) {
        if self.timers.retransmit.is_none() {
            self.timers.retransmit = Some(now + self.rtt.rto());
        }
    }
}

impl Socket for Connection {
    fn recv(&mut self, buf: &mut [u8]) -> usize {
        let n = buf.len().min(self.queues.recv.len());
        if n == 0 {
            return 0;
        }
        let q = self.queues.make_mut();
        // Copy from the ring's (at most two) contiguous parts, then drop them.
        let (front, back) = q.recv.as_slices();
        let from_front = n.min(front.len());
        if let (Some(dst), Some(src)) = (buf.get_mut(..from_front), front.get(..from_front)) {
            dst.copy_from_slice(src);
        }
        let from_back = n - from_front;
        if let (Some(dst), Some(src)) = (buf.get_mut(from_front..n), back.get(..from_back)) {
            dst.copy_from_slice(src);
        }
        q.recv.drain(..n);
        self.app_read = true;
        n
    }

    fn recv_queue(&self) -> usize {
        self.queues.recv.len()
    }

    fn recv_peek(&self) -> &[u8] {
        self.queues.recv.as_slices().0
    }

    fn recv_consume(&mut self, n: usize) {
        let n = n.min(self.queues.recv.len());
        if n > 0 {
            self.queues.make_mut().recv.drain(..n);
            self.app_read = true;
        }
    }

    fn peer_closed(&self) -> bool {
        self.fin_received && self.queues.recv.is_empty()
    }

    fn send(&mut self, data: &[u8]) -> usize {
        let n = data.len().min(self.send_capacity());
        if n > 0 {
            // Extending from a slice copies in bulk (not byte by byte).
            self.queues
                .make_mut()
                .send
                .extend(data.get(..n).unwrap_or(&[]));
        }
        n
    }

    fn send_with(&mut self, max: usize, fill: &mut dyn FnMut(&mut [u8]) -> usize) -> usize {
        let n = max.min(self.send_capacity());
        if n == 0 {
            return 0;
        }
        // The new bytes' place in the ring (zeroed: safe Rust has no uninitialised tail), of
        // which `fill` gets the first contiguous part; what it leaves unwritten goes again.
        let send = &mut self.queues.make_mut().send;
        let old = send.len();
        send.resize(old + n, 0);
        let (front, back) = send.as_mut_slices();
        let region = match old.checked_sub(front.len()) {
            Some(in_back) => back.get_mut(in_back..),
            None => front.get_mut(old..),
        };
        let got = region.map_or(0, |r| fill(r).min(r.len()));
        send.truncate(old + got);
        got
    }

    fn send_capacity(&self) -> usize {
        // RFC 9293 §3.10.2: SEND is allowed in SYN-RECEIVED (queued), ESTABLISHED, CLOSE-WAIT.
        let open = matches!(
            self.state,
            State::SynReceived | State::Established | State::CloseWait
        );
        if !open || self.fin_queued {
            return 0;
        }
        self.send_room()
    }

    fn close(&mut self) {
        if self.fin_queued {
            return;
        }
        // RFC 9293 §3.10.4 (SHLD-3): closing with unread data aborts with a RST, as Linux does.
        if !self.queues.recv.is_empty() {
            self.events_mut().aborts_on_data += 1;
            self.abort();
            return;
        }
        self.shutdown_write();
    }

    fn shutdown_write(&mut self) {
        if self.fin_queued {
            return;
        }
        match self.state {
            // RFC 9293 §3.10.4: the FIN follows the queued data; Linux changes state at close()
            // time, and so do we.
            State::SynReceived | State::Established => {
                self.fin_queued = true;
                if self.state == State::Established {
                    self.set_state(State::FinWait1);
                }
            }
            State::CloseWait => {
                self.fin_queued = true;
                self.set_state(State::LastAck);
            }
            _ => {}
        }
    }

    fn abort(&mut self) {
        // RFC 9293 §3.10.5: in SYN-RECEIVED and the synchronized states (but for the closing
        // ones, where the peer owes us nothing) send <SEQ=SND.NXT><CTL=RST>.
        match self.state {
            State::SynReceived
            | State::Established
            | State::FinWait1
            | State::FinWait2
            | State::CloseWait => self.rst_due = true,
            _ => self.close_silently(Some(ResetCause::Aborted)),
        }
        if self.reset.is_none() {
            self.reset = Some(ResetCause::Aborted);
        }
    }

    fn info(&self) -> ConnInfo {
        ConnInfo {
            quad: self.quad(),
            state: self.state,
            iss: self.snd.iss,
            irs: self.rcv.irs,
            local_mss: self.local_mss,
            peer_mss: self.peer_mss,
            send_mss: self.send_mss,
            window_scale: self
                .opts
                .ws
                .then_some((self.opts.rcv_shift, self.opts.snd_shift)),
            sack_permitted: self.opts.sack,
            timestamps: self.opts.ts,
        }
    }

    fn ladder(&self) -> String {
        Connection::ladder(self)
    }

    fn diagram(&self) -> Option<(&super::trace::Trace, super::ladder::View)> {
        Some((&self.trace, self.ladder_view()))
    }
}
