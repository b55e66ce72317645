//! What the socket API (`crate::endpoint::Sockets`) asks of one connection: per-socket
//! options applied to a live connection, peeking at received bytes, and the statistics
//! behind `TCP_INFO`.

use super::{Connection, Socket, State};
use crate::time::{Duration, Instant};

/// `getsockopt(TCP_INFO)`: the fields of Linux's `struct tcp_info` that synack can fill, under
/// Linux's names and in its units (microseconds, segments). packetdrill's `%{ }%` blocks and
/// programs written for Linux read these.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SocketInfo {
    /// Linux's `TCP_ESTABLISHED` (1) … `TCP_CLOSING` (11) numbering.
    pub state: u8,
    /// `TCP_CA_Open` (0), `TCP_CA_Disorder` (1), `TCP_CA_CWR` (2), `TCP_CA_Recovery` (3),
    /// `TCP_CA_Loss` (4).
    pub ca_state: u8,
    /// Consecutive retransmission timeouts without progress (`icsk_retransmits`).
    pub retransmits: u8,
    pub probes: u8,
    pub backoff: u8,
    /// `TCPI_OPT_TIMESTAMPS` (1) | `TCPI_OPT_SACK` (2) | `TCPI_OPT_WSCALE` (4).
    pub options: u8,
    pub snd_wscale: u8,
    pub rcv_wscale: u8,
    pub rto: u32,
    pub ato: u32,
    pub snd_mss: u32,
    pub rcv_mss: u32,
    /// Segments in flight, SACKed, lost, retransmitted and in flight.
    pub unacked: u32,
    pub sacked: u32,
    pub lost: u32,
    pub retrans: u32,
    pub last_data_sent: u32,
    pub last_data_recv: u32,
    pub last_ack_recv: u32,
    pub pmtu: u32,
    pub rcv_ssthresh: u32,
    pub rtt: u32,
    pub rttvar: u32,
    /// Slow-start threshold and congestion window in segments (Linux's units).
    pub snd_ssthresh: u32,
    pub snd_cwnd: u32,
    pub advmss: u32,
    pub reordering: u32,
    pub rcv_rtt: u32,
    pub rcv_space: u32,
    pub total_retrans: u32,
    pub bytes_acked: u64,
    pub bytes_received: u64,
    pub segs_out: u32,
    pub segs_in: u32,
    pub notsent_bytes: u32,
    pub min_rtt: u32,
    pub snd_wnd: u32,
    pub rcv_wnd: u32,
}

impl State {
    /// Linux's number for the state (`include/net/tcp_states.h`), as `TCP_INFO` reports it.
    pub fn linux_number(self) -> u8 {
        match self {
            State::Established => 1,
            State::SynSent => 2,
            State::SynReceived => 3,
            State::FinWait1 => 4,
            State::FinWait2 => 5,
            State::TimeWait => 6,
            State::Closed => 7,
            State::CloseWait => 8,
            State::LastAck => 9,
            State::Listen => 10,
            State::Closing => 11,
        }
    }
}

impl Connection {
    /// `TCP_NODELAY`: Nagle's algorithm off (RFC 9293 §3.7.4, MUST-17).
    pub fn set_nagle(&mut self, on: bool) {
        std::sync::Arc::make_mut(&mut self.cfg).nagle = on;
    }

    /// `TCP_USER_TIMEOUT` (RFC 9293 §3.8.3 and RFC 5482): how long sent data may stay
    /// unacknowledged before the connection is given up; `None`: R2 as configured.
    pub fn set_user_timeout(&mut self, timeout: Option<Duration>) {
        std::sync::Arc::make_mut(&mut self.cfg).user_timeout = timeout;
    }

    /// `SO_RCVBUF` / `SO_SNDBUF`: fixed buffer sizes (autotuning off for that buffer, as
    /// Linux's `SOCK_RCVBUF_LOCK` / `SOCK_SNDBUF_LOCK`).
    pub fn set_buffer_sizes(&mut self, rcvbuf: Option<usize>, sndbuf: Option<usize>) {
        if let Some(n) = rcvbuf {
            let n = n.max(1);
            std::sync::Arc::make_mut(&mut self.cfg).rmem = super::BufferSizes::fixed(n);
            self.buf.rcvbuf = n;
            if let Some(q) = self.reasm.existing_mut() {
                q.set_capacity(n);
            }
        }
        if let Some(n) = sndbuf {
            let n = n.max(1);
            std::sync::Arc::make_mut(&mut self.cfg).wmem = super::BufferSizes::fixed(n);
            self.buf.sndbuf = n;
        }
    }

    /// Copy up to `buf.len()` received bytes without taking them (`MSG_PEEK`).
    pub fn peek(&self, buf: &mut [u8]) -> usize {
        let (front, back) = self.queues.recv.as_slices();
        let mut n = 0;
        for part in [front, back] {
            let take = part.len().min(buf.len() - n);
            if let (Some(dst), Some(src)) = (buf.get_mut(n..n + take), part.get(..take)) {
                dst.copy_from_slice(src);
            }
            n += take;
        }
        n
    }

    /// Whether the peer's FIN has arrived (whatever is still unread before it).
    pub fn fin_received(&self) -> bool {
        self.fin_received
    }

    /// Whether our FIN is queued (the application closed or shut down its sending side).
    pub fn fin_queued(&self) -> bool {
        self.fin_queued
    }

    /// `TCP_INFO`, as Linux's `tcp_get_info` fills it.
    pub fn socket_info(&self, now: Instant) -> SocketInfo {
        let _ = now;
        let us = |d: Duration| u32::try_from(d.as_micros()).unwrap_or(u32::MAX);
        // Linux's mss_cache: the payload of a full segment (the timestamp option taken off).
        let mss = u32::from(self.eff_mss()).max(1);
        let segs = |bytes: u32| bytes.div_ceil(mss);
        let info = self.tcp_info(Duration::from_secs(0));
        let flight = self.snd.nxt.distance_from(self.snd.una);
        let ca_state = if self.retries > 0 && self.state.is_synchronized() {
            4
        } else if self.cc.in_recovery() {
            3
        } else if self.dup_acks > 0 || !self.scoreboard.is_empty() {
            1
        } else {
            0
        };
        let mut options = 0;
        if self.opts.ts {
            options |= 1;
        }
        if self.opts.sack {
            options |= 2;
        }
        if self.opts.ws {
            options |= 4;
        }
        let ssthresh = self.cc.ssthresh();
        SocketInfo {
            state: self.state.linux_number(),
            ca_state,
            retransmits: u8::try_from(self.retries).unwrap_or(u8::MAX),
            probes: 0,
            backoff: u8::try_from(self.retries).unwrap_or(u8::MAX),
            options,
            snd_wscale: if self.opts.ws { self.opts.snd_shift } else { 0 },
            rcv_wscale: if self.opts.ws { self.opts.rcv_shift } else { 0 },
            rto: us(self.rtt.rto()),
            ato: us(self.cfg.delayed_ack),
            snd_mss: mss,
            rcv_mss: self.rcv_mss,
            unacked: segs(flight),
            sacked: segs(self.scoreboard.sacked_bytes()),
            lost: segs(info.lost_bytes),
            retrans: 0,
            last_data_sent: 0,
            last_data_recv: 0,
            last_ack_recv: 0,
            pmtu: u32::from(self.local_mss) + if self.quad().local.is_ipv4() { 40 } else { 60 },
            rcv_ssthresh: self.rcv.wnd(),
            rtt: self.rtt.srtt().map_or(0, us),
            rttvar: us(self.rtt.rttvar()),
            // Linux reports an "infinite" ssthresh as TCP_INFINITE_SSTHRESH (0x7fffffff).
            snd_ssthresh: if ssthresh >= u32::MAX / 2 {
                0x7fff_ffff
            } else {
                segs(ssthresh)
            },
            snd_cwnd: self.cc.cwnd() / mss,
            advmss: u32::from(self.local_mss),
            reordering: 3,
            rcv_rtt: 0,
            rcv_space: self.recv_space(),
            total_retrans: self.retransmits,
            bytes_acked: info.bytes_acked,
            bytes_received: info.bytes_received,
            segs_out: u32::try_from(info.segs_out).unwrap_or(u32::MAX),
            segs_in: u32::try_from(info.segs_in).unwrap_or(u32::MAX),
            notsent_bytes: u32::try_from(self.queues.send.len())
                .unwrap_or(u32::MAX)
                .saturating_sub(flight),
            min_rtt: self.rtt.min_rtt().map_or(0, us),
            snd_wnd: self.snd.wnd,
            rcv_wnd: self.rcv.wnd(),
        }
    }

    /// Received bytes not yet read (`FIONREAD`).
    pub fn unread(&self) -> usize {
        self.recv_queue()
    }
}
