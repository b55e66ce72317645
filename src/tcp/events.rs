//! What a connection dropped or defended against, for the endpoint's counters.
//!
//! The connection counts; the endpoint collects the counts with [`Connection::take_events`]
//! after each time it runs the connection and adds them to its global [`Counters`].
//!
//! [`Counters`]: crate::endpoint::Counters

use super::Connection;

/// Per-connection event counts since the last [`Connection::take_events`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ConnEvents {
    /// PLPMTUD black-hole fallbacks (RFC 4821 §7.5): full-sized segments went unanswered
    /// through repeated timeouts and the MSS was lowered (`pmtu.rs`).
    pub mtu_blackhole_fallbacks: u32,
    /// Probes of the MSS from before the fallback: acknowledged (Linux: `TCPMTUPSuccess`) or
    /// lost to a timeout (`TCPMTUPFail`).
    pub mtu_probe_successes: u32,
    pub mtu_probe_failures: u32,
    /// ECN (RFC 3168): congestion window reductions for the peer's ECE.
    pub ecn_cwnd_reductions: u32,
    /// RFC 7323 §5.3: segments with a TSval older than TS.Recent (dropped, ACKed).
    pub paws_rejected: u64,
    /// RFC 9293 §3.10.7.4, RFC 5961 §3.2: RSTs outside the receive window (dropped silently).
    pub out_of_window_rst: u64,
    /// RFC 5961 §3.2: in-window RSTs not exactly at RCV.NXT (answered with a challenge ACK).
    pub rst_challenged: u64,
    /// RFC 5961 §4.2: SYNs in a synchronized state (answered with a challenge ACK).
    pub syn_challenged: u64,
    /// Segments outside the receive window (Table 6), answered with an ACK.
    pub out_of_window: u64,
    /// RFC 9293 §3.10.7.4: ACKs of data not yet sent, dropped and answered with an ACK.
    pub ack_unsent: u64,
    /// RFC 5961 §5.2: ACKs older than SND.UNA − MAX.SND.WND (dropped, challenge ACK).
    pub ack_too_old: u64,
    /// Challenge ACKs not sent because this connection sent one (or an out-of-window ACK)
    /// less than 500 ms before (Linux: `TCPACKSkippedChallenge`).
    pub challenge_acks_skipped: u64,
    /// ACKs for out-of-window bare ACKs or SYNs not sent within 500 ms of the last one
    /// (Linux: `TCPACKSkippedSeq`, and `TCPACKSkippedTimeWait` in TIME-WAIT).
    pub out_of_window_acks_skipped: u64,
    /// The same for segments PAWS rejected (Linux: `TCPACKSkippedPAWS`).
    pub paws_acks_skipped: u64,
    /// Retransmission timer expirations: SYN, SYN,ACK, data or FIN (Linux: `TCPTimeouts`).
    pub rto_expirations: u64,
    /// ESTABLISHED or CLOSE-WAIT went straight to CLOSED: reset by either side, or timed out
    /// (RFC 1213 `tcpEstabResets`, Linux: `TcpEstabResets`).
    pub established_resets: u64,
    /// Connections aborted with a RST because the application closed with unread data
    /// (RFC 9293 SHLD-3; Linux: `TCPAbortOnData`).
    pub aborts_on_data: u64,
    /// RFC 9293 §3.8.4: keep-alive probes sent, and connections aborted after unanswered ones.
    pub keepalive_probes: u64,
    pub keepalive_timeouts: u64,
    /// Orphaned FIN-WAIT-2 connections reset after the FIN timeout.
    pub fin_wait_2_timeouts: u64,
    /// Segments sent again: SYN or SYN,ACK, data, FIN (the connection also keeps its own
    /// total, for `status`).
    pub retransmissions: u64,
    /// Memory pressure clamped the window this connection offers (once per episode; see
    /// `memory.rs`).
    pub rcv_window_clamped: u64,
    /// Segments whose in-window data was dropped (wholly or in part) at the buffer memory
    /// limit (Linux: `TCPRcvQDrop`).
    pub rcv_memory_drops: u64,
    // Loss recovery (issue 19). These are u32: the endpoint takes the counts after every
    // run of the connection, and a table slot must stay small.
    /// RFC 2883: D-SACK blocks reported for duplicate data below RCV.NXT (Linux:
    /// `TCPDSACKOldSent`) and in the out-of-order queue (`TCPDSACKOfoSent`).
    pub dsack_old_sent: u32,
    pub dsack_ofo_sent: u32,
    /// ACKs carrying a D-SACK block (Linux: `TCPDSACKRecv`).
    pub dsack_recv: u32,
    /// Fast recoveries entered with SACK (RFC 6675 or RACK; Linux: `TCPSackRecovery`) and
    /// without (RFC 6582; `TCPRenoRecovery`).
    pub sack_recovery: u32,
    pub reno_recovery: u32,
    /// Tail loss probes sent (RFC 8985 §7; Linux: `TCPLossProbes`), and losses a probe
    /// repaired (`TCPLossProbeRecovery`).
    pub loss_probes: u32,
    pub loss_probe_recovery: u32,
    /// Reductions undone because they proved spurious (Linux's names): by D-SACK
    /// (`TCPDSACKUndo`), by timestamps at the end of a recovery (`TCPFullUndo`), on a
    /// partial ACK (`TCPPartialUndo`), after a timeout (`TCPLossUndo`); and timeouts found
    /// spurious (`TCPSpuriousRTOs`).
    pub dsack_undo: u32,
    pub full_undo: u32,
    pub partial_undo: u32,
    pub loss_undo: u32,
    pub spurious_rtos: u32,
    /// HyStart++ (RFC 9406) found the RTT rising and left slow start (Linux's HyStart:
    /// `TCPHystartDelayDetect`).
    pub hystart_delay_detect: u32,
    /// Slow start ended by an ACK train of half the minimum RTT (Linux's HyStart:
    /// `TCPHystartTrainDetect`). Once per connection.
    pub hystart_train_detect: u8,
    /// ECN (issue 20): connections that negotiated RFC 3168 ECN, and AccECN (RFC 9768);
    /// AccECN connections whose handshake ACK arrived with the ACE field zeroed (a
    /// middlebox: RFC 9768 §3.2.2.3, no ECT sent from then on); packets the peer reported
    /// CE-marked, by ECE or by the ACE field (Linux: `TCPDeliveredCE`). The first three are
    /// once per connection: u8, as a table slot must stay small (and the last saturates at
    /// 65,535 between two runs of the connection, far more than one run acknowledges).
    pub ecn_negotiated: u8,
    pub accecn_negotiated: u8,
    pub accecn_ace_failures: u8,
    pub delivered_ce: u16,
}

impl Connection {
    /// The events counted since the last call, and reset them.
    pub fn take_events(&mut self) -> ConnEvents {
        self.events
            .as_deref_mut()
            .map(std::mem::take)
            .unwrap_or_default()
    }

    /// The counts, allocated at the first event (issue 23: most connections never have one;
    /// one that had keeps the room, so counting allocates nothing per packet).
    pub(super) fn events_mut(&mut self) -> &mut ConnEvents {
        self.events.get_or_insert_with(Box::default)
    }

    /// Count one retransmitted segment, in the connection's total and its events.
    pub(super) fn count_retransmission(&mut self) {
        self.retransmits = self.retransmits.saturating_add(1);
        self.events_mut().retransmissions += 1;
    }

    /// The events counted since the last `take_events`, without resetting them.
    pub fn events(&self) -> ConnEvents {
        self.events.as_deref().copied().unwrap_or_default()
    }
}
