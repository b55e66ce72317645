//! Counters, like `nstat`'s: every segment, every drop by reason, every defensive action.

use crate::tcp::ConnEvents;
use crate::wire::DropReason;

macro_rules! counters {
    ($($(#[$doc:meta])* $name:ident),* $(,)?) => {
        /// Event counters of the endpoint.
        #[derive(Clone, Debug, Default)]
        pub struct Counters {
            $($(#[$doc])* pub $name: u64,)*
            /// Packets dropped by the parser, by reason (indexed like `DropReason::ALL`).
            pub parse_drops: [u64; DropReason::ALL.len()],
        }

        impl Counters {
            /// Every counter as (name, value), parse drops named `drop_<reason>`.
            pub fn entries(&self) -> Vec<(&'static str, u64)> {
                let mut v = vec![$((stringify!($name), self.$name),)*];
                for (reason, n) in DropReason::ALL.iter().zip(self.parse_drops.iter()) {
                    v.push((reason.counter_name(), *n));
                }
                v
            }
        }
    };
}

counters! {
    /// TCP segments received (valid, addressed to us) and sent, as on the wire: a
    /// super-segment counts as the segments it stands for (as Linux's TcpInSegs/TcpOutSegs).
    segments_in,
    segments_out,
    /// Super-segments received from and sent to the kernel (segmentation offload): packets
    /// carrying more than one MSS of payload.
    super_segments_in,
    super_segments_out,
    /// Connections that reached SYN-RECEIVED from LISTEN.
    passive_opens,
    /// Connections we opened (SYN-SENT), and those that never got established (refused or
    /// timed out).
    active_opens,
    attempt_fails,
    /// Connections that reached ESTABLISHED.
    established,
    /// Connections reset by the peer.
    established_resets,
    /// RSTs received / sent (replies to strays and aborts).
    rst_in,
    rst_out,
    /// Half-open connections dropped after their SYN,ACK went unanswered.
    synack_timeouts,
    /// Connections given up after R2.
    retransmit_timeouts,
    /// Segments sent again (SYN, SYN,ACK, data or FIN).
    retransmissions,
    /// Payload bytes received in (valid) segments and sent.
    bytes_in,
    bytes_out,
    /// Packets for an address that is not ours.
    not_ours,
    /// Well-formed packets of other protocols or ICMP types.
    ignored,
    /// ICMP/ICMPv6 echo requests answered.
    echo_replies,
    /// SYNs from a broadcast, multicast, unspecified or own address (MUST-57, MUST-63).
    bad_syn_source,
    /// Segments for LISTEN that were neither SYN nor ACK, or RSTs there (ignored).
    listen_drops,
    /// SYNs refused because the connection table is full.
    connection_limit,
    /// Challenge ACKs sent (RFC 5961), and those suppressed by the global budget (§7).
    challenge_acks,
    challenge_acks_limited,
    /// Packets that did not fit the output buffer or could not be written.
    tx_errors,
    /// RFC 7323 §5.3 (PAWS): segments with an old timestamp, dropped and ACKed.
    paws_rejected,
    /// RSTs outside the receive window, dropped silently (RFC 5961 §3.2).
    out_of_window_rst,
    /// In-window RSTs not at RCV.NXT, and SYNs in synchronized states: challenged (RFC 5961).
    rst_challenged,
    syn_challenged,
    /// Other segments outside the receive window, dropped and ACKed (RFC 9293 Table 6).
    out_of_window,
    /// ACKs of data not yet sent (dropped, ACKed) and older than SND.UNA − MAX.SND.WND
    /// (dropped, challenge ACK; RFC 5961 §5.2).
    ack_unsent,
    ack_too_old,
    /// SYNs that found their listener's half-open queue full (`--backlog`).
    backlog_full,
    /// SYN cookies sent, final ACKs that carried a valid one, and forged or stale ones.
    syn_cookies_sent,
    syn_cookies_accepted,
    syn_cookies_rejected,
    /// Final ACKs dropped because the listener's accept queue was full.
    accept_queue_full,
    /// Times a connection was held back by `--max-buffer-memory` (its window clamped or not
    /// opened, data dropped, or its application's writes cut short): episodes, not passes.
    buffer_memory_limited,
    /// Times the endpoint entered buffer memory pressure (above two thirds of
    /// `--max-buffer-memory`, left below one half; Linux: `TCPMemoryPressures`).
    memory_pressure_entered,
    /// Connections whose offered window memory pressure clamped to four segments (once per
    /// connection and episode).
    rcv_window_clamped,
    /// Segments whose in-window data was dropped at the `--max-buffer-memory` limit (Linux:
    /// `TCPRcvQDrop`); the peer retransmits it.
    rcv_memory_drops,
    /// Connections closed at once instead of entering TIME-WAIT because `--max-time-wait`
    /// TIME-WAIT connections existed already (Linux: `TCPTimeWaitOverflow`, past
    /// `tcp_max_tw_buckets`).
    time_wait_overflow,
    /// Keep-alive probes sent, and connections aborted after unanswered probes.
    keepalive_probes,
    keepalive_timeouts,
    /// Orphaned FIN-WAIT-2 connections reset after the FIN timeout.
    fin_wait_2_timeouts,
}

impl Counters {
    /// Add what a connection counted (see `tcp::ConnEvents`).
    pub fn add_events(&mut self, e: &ConnEvents) {
        self.paws_rejected += e.paws_rejected;
        self.out_of_window_rst += e.out_of_window_rst;
        self.rst_challenged += e.rst_challenged;
        self.syn_challenged += e.syn_challenged;
        self.out_of_window += e.out_of_window;
        self.ack_unsent += e.ack_unsent;
        self.ack_too_old += e.ack_too_old;
        self.keepalive_probes += e.keepalive_probes;
        self.keepalive_timeouts += e.keepalive_timeouts;
        self.fin_wait_2_timeouts += e.fin_wait_2_timeouts;
        self.retransmissions += e.retransmissions;
        self.rcv_window_clamped += e.rcv_window_clamped;
        self.rcv_memory_drops += e.rcv_memory_drops;
    }

    pub fn count_drop(&mut self, reason: DropReason) {
        if let Some(i) = DropReason::ALL.iter().position(|r| *r == reason)
            && let Some(c) = self.parse_drops.get_mut(i)
        {
            *c += 1;
        }
    }
}
