//! The per-connection TCP state machine (RFC 9293), sans-IO.
//!
//! A [`Connection`] is fed segments with `now` ([`Connection::on_segment`]), is asked for what
//! to send ([`Connection::poll_transmit`]) and when to wake next ([`Connection::poll_timeout`]),
//! and is read and written by its application through the [`Socket`] trait.

pub mod assembler;
pub mod cc;
mod connection;
mod ecn;
mod events;
mod fastopen;
mod input;
mod keepalive;
pub mod ladder;
mod lazy;
mod memory;
mod output;
mod packed;
mod pmtu;
mod quickack;
pub mod recovery;
mod reset;
mod rtt;
pub mod sack;
pub mod samples;
pub mod sockopt;
mod state;
mod syncookie;
mod time_wait;
pub mod trace;

pub use assembler::{InsertOutcome, Reassembly};
pub use cc::{CcKind, CongestionControl};
pub use connection::{Connection, ResetCause};
pub use ecn::EcnMode;
pub use events::ConnEvents;
pub use fastopen::FastOpenKey;
pub use keepalive::KeepAlive;
pub use pmtu::{IcmpOutcome, MtuProbing};
pub use recovery::RecoveryKind;
pub use reset::rst_reply;
pub use rtt::RttEstimator;
pub use sack::{SackReceiver, Scoreboard};
pub use sockopt::SocketInfo;
// The type lives in the leaf module `crate::seqnum` (so `wire` need not import `tcp`);
// re-exported here for code written against `crate::tcp::SeqNum`.
pub use crate::seqnum::SeqNum;
pub use state::State;
pub use syncookie::CookieSyn;
pub use time_wait::TimeWait;

use crate::time::Duration;
use crate::wire::Quad;

/// A buffer's minimum, initial and maximum size in bytes, as Linux's `tcp_rmem`/`tcp_wmem`
/// triples.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BufferSizes {
    pub min: usize,
    pub default: usize,
    pub max: usize,
}

impl BufferSizes {
    /// `--rmem` by default: 4 KiB, 128 KiB, 32 MiB. Linux's `tcp_rmem` is 4096, 131072,
    /// 6291456; our maximum is larger so that one connection fills a 1 Gbit/s path at 100 ms
    /// (12.5 MB in flight), and autotuning offers twice what the application drains per RTT.
    pub const RMEM: BufferSizes = BufferSizes {
        min: 4096,
        default: 128 * 1024,
        max: 32 << 20,
    };
    /// `--wmem` by default: 4 KiB, 64 KiB, 32 MiB. Linux's `tcp_wmem` is 4096, 16384,
    /// 4194304, but Linux sizes a new socket's buffer from its initial window at once
    /// (`tcp_sndbuf_expand`: about 87 KiB); 64 KiB stands for that.
    pub const WMEM: BufferSizes = BufferSizes {
        min: 4096,
        default: 64 * 1024,
        max: 32 << 20,
    };

    /// A triple with every size `n` (a fixed buffer: tests).
    pub const fn fixed(n: usize) -> BufferSizes {
        BufferSizes {
            min: n,
            default: n,
            max: n,
        }
    }
}

/// RFC 9293 §3.7.1 (MUST-15): the send MSS to assume when the peer's SYN carries no MSS
/// option: 536 for IPv4, 1220 for IPv6 (RFC 8200 §8.3: the minimum MTU 1280 − 60). The one
/// place this default is written; the connection, SYN cookies and the HTTP service use it.
pub fn default_mss(quad: &Quad) -> u16 {
    if quad.local.is_ipv4() { 536 } else { 1220 }
}

/// Tunables of a connection; the defaults follow RFC 9293 and RFC 6298.
#[derive(Clone, Debug)]
pub struct Config {
    /// The MSS we announce: what we can receive (MTU − 40 for IPv4, MTU − 60 for IPv6).
    pub mss_v4: u16,
    pub mss_v6: u16,
    /// How long TIME-WAIT lasts: 2·MSL (RFC 9293 §3.4.2, MUST-13).
    pub time_wait: Duration,
    /// Receive buffer sizes (`--rmem`, like `net.ipv4.tcp_rmem`): a connection starts with
    /// `default`, autotuning grows it up to `max` (`memory.rs`); the window we offer is its
    /// free space. `min` of received data is guaranteed even at the memory limit.
    pub rmem: BufferSizes,
    /// Send buffer sizes (`--wmem`, like `net.ipv4.tcp_wmem`): writes beyond the current
    /// send buffer are refused until the peer ACKs; it grows with cwnd and the peer's window
    /// up to `max`. `min` of queued data is guaranteed even at the memory limit.
    pub wmem: BufferSizes,
    /// RFC 6298 §2.1: the initial RTO, 1 s.
    pub initial_rto: Duration,
    /// RFC 6298 §2.4: the lower bound of the RTO.
    pub min_rto: Duration,
    /// RFC 6298 §2.5: an upper bound of the RTO.
    pub max_rto: Duration,
    /// How many times an unanswered SYN+ACK is retransmitted before the half-open
    /// connection is dropped (Linux's tcp_synack_retries defaults to 5).
    pub synack_retries: u32,
    /// How many times an unanswered SYN is retransmitted before an active open fails
    /// (Linux's tcp_syn_retries defaults to 6).
    pub syn_retries: u32,
    /// R2 for data segments (RFC 9293 §3.8.3, MUST-20: at least 100 s), and the number of
    /// retransmissions it takes (Linux: tcp_retries2 = 15); both must be reached.
    pub r2: Duration,
    pub r2_retries: u32,
    /// `TCP_USER_TIMEOUT` (RFC 5482): when set, how long sent data may go unacknowledged
    /// before the connection is given up, instead of R2 (Linux: `icsk_user_timeout`).
    pub user_timeout: Option<Duration>,
    /// The congestion controller (RFC 5681/6582 NewReno or RFC 9438 CUBIC).
    pub cc: CcKind,
    /// Loss detection: RACK-TLP (RFC 8985) or three duplicate ACKs (`recovery/`).
    pub recovery: RecoveryKind,
    /// Nagle's algorithm (RFC 9293 §3.7.4, SHLD-7), in Minshall's form; `false` is
    /// TCP_NODELAY (MUST-17).
    pub nagle: bool,
    /// Offer window scaling, timestamps and SACK on our SYNs (RFC 7323, RFC 2018); each is
    /// used only when the peer offers it too.
    pub window_scaling: bool,
    pub timestamps: bool,
    pub sack: bool,
    /// How long an orphaned FIN-WAIT-2 waits for the peer's FIN (Linux: tcp_fin_timeout).
    pub fin_wait_2_timeout: Duration,
    /// Delayed-ACK timeout (RFC 9293 §3.8.6.3, MUST-40: under 0.5 s).
    pub delayed_ack: Duration,
    /// Segmentation offload: the most payload one super-segment may carry, for a device that
    /// splits it into MSS-sized segments (`src/wire/gso.rs`); 0 sends only wire-sized
    /// segments. See `Connection::gso_limit` for when a connection uses it.
    pub gso_max: u32,
    /// The secret behind our TSval offsets (RFC 7323 §7.1, `Connection::ts_offset_for`):
    /// the endpoint derives it from its random secret; tests keep the default.
    pub ts_key: TsKey,
    /// PLPMTUD black-hole detection (`--mtu-probing`, `pmtu.rs`).
    pub mtu_probing: MtuProbing,
    /// ECN (RFC 3168, `--ecn`, `ecn.rs`).
    pub ecn: EcnMode,
    /// Listeners accept TCP Fast Open (RFC 7413, `--fastopen`, `fastopen.rs`; Linux: bit 0x2
    /// of `tcp_fastopen`). Off by default, as on Linux. The cookie key is the endpoint's.
    pub fastopen: bool,
}

/// The key of the per-address-pair TSval offset. Its `Debug` does not print it.
#[derive(Clone, Copy, Default, PartialEq, Eq)]
pub struct TsKey(pub [u8; 16]);

impl std::fmt::Debug for TsKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TsKey(..)")
    }
}

impl Config {
    /// How long an unanswered active open lasts before it fails: the SYN and its
    /// `syn_retries` retransmissions, each RTO doubling from `initial_rto` up to `max_rto`
    /// (RFC 6298 §5.5); 123 s with the defaults, as Linux's 127 s with its 1 s initial RTO and
    /// no 60 s cap before the last.
    pub fn syn_give_up_after(&self) -> Duration {
        (0..=self.syn_retries).fold(Duration::ZERO, |total, i| {
            let rto = self
                .initial_rto
                .saturating_mul(1u32.checked_shl(i).unwrap_or(u32::MAX))
                .min(self.max_rto);
            total.saturating_add(rto)
        })
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            mss_v4: 1460,
            mss_v6: 1440,
            time_wait: Duration::from_secs(60),
            rmem: BufferSizes::RMEM,
            wmem: BufferSizes::WMEM,
            initial_rto: Duration::from_secs(1),
            min_rto: Duration::from_millis(200),
            max_rto: Duration::from_secs(60),
            synack_retries: 5,
            syn_retries: 6,
            r2: Duration::from_secs(100),
            r2_retries: 15,
            user_timeout: None,
            delayed_ack: Duration::from_millis(40),
            gso_max: 0,
            fin_wait_2_timeout: Duration::from_secs(60),
            cc: CcKind::Cubic,
            recovery: RecoveryKind::Rack,
            nagle: true,
            window_scaling: true,
            timestamps: true,
            sack: true,
            ts_key: TsKey::default(),
            mtu_probing: MtuProbing::default(),
            ecn: EcnMode::default(),
            fastopen: false,
        }
    }
}

/// What a connection negotiated, for the HTTP service's page and for `status`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnInfo {
    pub quad: Quad,
    pub state: State,
    /// Our initial send sequence number (ISS).
    pub iss: SeqNum,
    /// The peer's initial sequence number (IRS).
    pub irs: SeqNum,
    /// The MSS we announced in our SYN or SYN+ACK.
    pub local_mss: u16,
    /// The MSS the peer announced, if it did.
    pub peer_mss: Option<u16>,
    /// The MSS we send with: the smaller of the peer's (or the default 536/1220) and ours.
    pub send_mss: u16,
    /// Window-scale shifts (ours, the peer's), when both sides offered the option.
    pub window_scale: Option<(u8, u8)>,
    pub sack_permitted: bool,
    pub timestamps: bool,
}

/// What `synack status --info` shows of a connection, like `ss -ti`: the sender's and
/// receiver's state and totals. Byte totals are the sequence space used after the SYN (a FIN
/// counts as one byte).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TcpInfo {
    /// The congestion-control algorithm (`cubic`, `newreno`).
    pub cc: String,
    /// Window-scale shifts (ours, the peer's), when negotiated.
    pub wscale: Option<(u8, u8)>,
    pub rto_us: u64,
    pub rtt_us: Option<u64>,
    pub rttvar_us: u64,
    /// The MSS we send with.
    pub mss: u16,
    pub cwnd: u32,
    /// `None` until the first loss (it starts "infinite").
    pub ssthresh: Option<u32>,
    pub bytes_sent: u64,
    pub bytes_acked: u64,
    pub bytes_received: u64,
    pub segs_out: u64,
    pub segs_in: u64,
    pub retrans: u64,
    /// Bytes the SACK scoreboard counts as lost (RFC 6675 IsLost) and as SACKed.
    pub lost_bytes: u32,
    pub sacked_bytes: u32,
    /// Free receive buffer, and the window we last offered (RCV.WND).
    pub rcv_space: u32,
    pub rcv_wnd: u32,
    /// The peer's window (SND.WND).
    pub snd_wnd: u32,
    /// Bytes acknowledged per second, averaged over the connection's life.
    pub delivery_rate: u64,
    /// What holds the sender back now: `application` (nothing queued), `receive window`
    /// (the peer's window is full) or `cwnd` (the congestion window is full).
    pub limited: &'static str,
    /// The path MTU, once an ICMP error lowered it below the link's (RFC 1191, RFC 8201).
    pub pmtu: Option<u32>,
    /// The last soft ICMP error (RFC 1122 §4.2.3.9), e.g. `host unreachable`.
    pub last_error: Option<&'static str>,
    /// ECN was negotiated (RFC 3168; `ss -ti` prints `ecn`), and it is Accurate ECN (RFC
    /// 9768; `status --info` prints `ecn:accecn`).
    pub ecn: bool,
    pub accecn: bool,
    /// The congestion state, as `ss -ti` would name it: `open`, `disorder`, `recovery`,
    /// `loss`.
    pub ca_state: &'static str,
    /// RACK's reordering window (RFC 8985 §6.2), in microseconds.
    pub reo_wnd_us: u64,
}

impl TcpInfo {
    /// Every field as (name, value), in `ss -ti`'s order: what `status --info` prints and
    /// its JSON carries. Unknown values (no RTT sample yet) are `None`.
    pub fn entries(&self) -> Vec<(&'static str, Option<InfoValue>)> {
        use InfoValue::{Number, Text};
        let n = |v: u64| Some(Number(v));
        vec![
            ("cc", Some(Text(self.cc.clone()))),
            (
                "wscale",
                self.wscale
                    .map(|(ours, theirs)| Text(format!("{ours},{theirs}"))),
            ),
            ("rto_us", n(self.rto_us)),
            ("rtt_us", self.rtt_us.map(Number)),
            ("rttvar_us", n(self.rttvar_us)),
            ("mss", n(u64::from(self.mss))),
            ("pmtu", self.pmtu.map(|m| Number(u64::from(m)))),
            ("cwnd", n(u64::from(self.cwnd))),
            ("ssthresh", self.ssthresh.map(|s| Number(u64::from(s)))),
            ("bytes_sent", n(self.bytes_sent)),
            ("bytes_acked", n(self.bytes_acked)),
            ("bytes_received", n(self.bytes_received)),
            ("segs_out", n(self.segs_out)),
            ("segs_in", n(self.segs_in)),
            ("retrans", n(self.retrans)),
            ("lost_bytes", n(u64::from(self.lost_bytes))),
            ("sacked_bytes", n(u64::from(self.sacked_bytes))),
            ("rcv_space", n(u64::from(self.rcv_space))),
            ("rcv_wnd", n(u64::from(self.rcv_wnd))),
            ("snd_wnd", n(u64::from(self.snd_wnd))),
            ("delivery_rate", n(self.delivery_rate)),
            ("ca_state", Some(Text(self.ca_state.to_string()))),
            ("reo_wnd_us", n(self.reo_wnd_us)),
            ("limited", Some(Text(self.limited.to_string()))),
            ("last_error", self.last_error.map(|e| Text(e.to_string()))),
            (
                "ecn",
                self.ecn
                    .then(|| Text(if self.accecn { "accecn" } else { "on" }.to_string())),
            ),
        ]
    }
}

/// One value of [`TcpInfo::entries`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum InfoValue {
    Number(u64),
    Text(String),
}

/// What an application (a built-in service) sees of its connection.
pub trait Socket {
    /// Copy up to `buf.len()` received bytes, in order, into `buf`; returns how many.
    fn recv(&mut self, buf: &mut [u8]) -> usize;
    /// Bytes received and not yet read.
    fn recv_queue(&self) -> usize;
    /// The oldest received bytes, without taking them: the first contiguous part of the
    /// receive queue (it may be shorter than [`Socket::recv_queue`]). For a service that
    /// hands bytes on without copying them (the relay writes them straight to a pipe or a
    /// socket); [`Socket::recv_consume`] then takes what was handed on.
    fn recv_peek(&self) -> &[u8];
    /// Take the first `n` received bytes (read without a copy, after [`Socket::recv_peek`]).
    fn recv_consume(&mut self, n: usize);
    /// The peer has sent FIN and every byte before it has been read.
    fn peer_closed(&self) -> bool;
    /// Queue bytes for sending; returns how many fit in the send buffer.
    fn send(&mut self, data: &[u8]) -> usize;
    /// Queue bytes written in place: `fill` gets a region of the send buffer (at most `max`
    /// bytes, at most the free space) to write into and returns how many bytes it wrote,
    /// which are queued. For a service whose bytes come from a `read()` (the relay): no copy
    /// through a buffer of its own. Returns how many bytes were queued.
    fn send_with(&mut self, max: usize, fill: &mut dyn FnMut(&mut [u8]) -> usize) -> usize {
        let mut buf = [0u8; 4096];
        let n = max.min(self.send_capacity()).min(buf.len());
        let Some(dst) = buf.get_mut(..n) else {
            return 0;
        };
        let got = fill(dst).min(n);
        self.send(dst.get(..got).unwrap_or_default())
    }
    /// Free space in the send buffer.
    fn send_capacity(&self) -> usize;
    /// No more data from us: a FIN follows what is queued (RFC 9293 §3.10.4 CLOSE).
    fn close(&mut self);
    /// Half-close: a FIN follows what is queued and receiving goes on (RFC 9293 §3.10.4:
    /// "the user who CLOSEs may continue to RECEIVE until he is told that the remote side
    /// has CLOSED also"). Unlike [`Socket::close`], unread data does not make it an abort:
    /// it is for a relay whose other side ended its output (`shutdown(SHUT_WR)` in Linux),
    /// not for an application that stops reading.
    fn shutdown_write(&mut self) {
        self.close();
    }
    /// Abort with a RST (RFC 9293 §3.10.5 ABORT).
    fn abort(&mut self);
    /// The connection's negotiated parameters and current state.
    fn info(&self) -> ConnInfo;
    /// The connection's sequence diagram so far (see [`ladder`]); empty where none is kept.
    fn ladder(&self) -> String {
        String::new()
    }
    /// The record behind the diagram and what drawing it needs, for pictures (SVG) of it;
    /// `None` where none is kept.
    fn diagram(&self) -> Option<(&trace::Trace, ladder::View)> {
        None
    }
}

#[cfg(test)]
mod tests;
