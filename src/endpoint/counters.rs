//! Counters, like `nstat`'s: every segment, every drop by reason, every defensive action.
//!
//! synack's names (snake_case) are what `synack stats --json` prints and scripts rely on.
//! Where Linux keeps a counter with the same meaning, the declaration below names it as
//! `nstat` prints it (`TcpExtListenDrops` is `ListenDrops` in `/proc/net/netstat`'s `TcpExt`
//! line), and `synack stats` prints it beside synack's. docs/COUNTERS.md has the table, with
//! the counters whose meaning differs from Linux's in a detail.

use crate::tcp::ConnEvents;
use crate::wire::DropReason;

macro_rules! counters {
    ($($(#[doc = $doc:literal])* $name:ident $(=> $linux:literal)?),* $(,)?) => {
        /// Each counter's doc comment, in declaration order (empty for one that shares the
        /// comment of the counter before it): what `/metrics` says it counts.
        const DOCS: &[(&str, &str)] = &[$((stringify!($name), concat!($($doc, "\n",)* "")),)*];

        /// Event counters of the endpoint.
        #[derive(Clone, Debug, Default)]
        pub struct Counters {
            $($(#[doc = $doc])* pub $name: u64,)*
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

            /// The name `nstat` gives Linux's counter of the same meaning, if Linux has one:
            /// the one place that maps synack's names to Linux's.
            pub fn linux_name(name: &str) -> Option<&'static str> {
                match name {
                    $($(stringify!($name) => Some($linux),)?)*
                    _ => DropReason::ALL
                        .iter()
                        .find(|r| r.counter_name() == name)
                        .and_then(|r| linux_drop_name(*r)),
                }
            }
        }
    };
}

impl Counters {
    /// What the counter `name` counts, in one line: its doc comment (shared by a group of
    /// counters declared together), or the parser's drop reason, or the link impairer's fault
    /// (`--impair`); with Linux's counter, where Linux keeps one (for `/metrics`' HELP lines).
    pub fn help(name: &str) -> String {
        let text = match DOCS.iter().position(|(n, _)| *n == name) {
            Some(i) => DOCS
                .get(..=i)
                .unwrap_or_default()
                .iter()
                .rev()
                .map(|(_, doc)| *doc)
                .find(|doc| !doc.trim().is_empty())
                .map(str::to_owned),
            None => None,
        };
        let text = text
            .or_else(|| {
                let reason = DropReason::ALL.iter().find(|r| r.counter_name() == name)?;
                Some(format!(
                    "Packets the parser dropped: {} (synack stats: {name}).",
                    reason.name().replace('_', " ")
                ))
            })
            .or_else(|| impair_help(name).map(str::to_owned))
            .unwrap_or_else(|| format!("The synack stats counter {name}."));
        // One line, as the text format wants, without the doc comments' Markdown.
        let mut line = text.split_whitespace().collect::<Vec<_>>().join(" ");
        line.retain(|c| c != '`');
        match Counters::linux_name(name) {
            Some(linux) => format!("{line} (Linux: {linux})"),
            None => line,
        }
    }
}

/// The link impairer's counters (`--impair`, docs/COUNTERS.md), as `synack stats` names them.
pub fn impair_help(name: &str) -> Option<&'static str> {
    Some(match name {
        "impair_packets" => "Packets that entered the --impair link, both directions.",
        "impair_released" => "Packets the --impair link passed on (after any delay).",
        "impair_lost" => "Packets the --impair link dropped (loss=).",
        "impair_duplicated" => "Packets the --impair link sent twice (dup=).",
        "impair_reordered" => "Packets the --impair link held back behind the next (reorder=).",
        "impair_corrupted" => "Packets the --impair link corrupted (corrupt=).",
        "impair_overflow" => {
            "Packets the --impair link dropped because its queue was full (limit=)."
        }
        _ => return None,
    })
}

/// The parser's drops that Linux counts under a name of its own.
fn linux_drop_name(reason: DropReason) -> Option<&'static str> {
    match reason {
        // TCP_MIB_CSUMERRORS: segments with a bad checksum.
        DropReason::BadTcpChecksum => Some("TcpInCsumErrors"),
        _ => None,
    }
}

counters! {
    /// TCP segments received (valid, addressed to us) and sent, as on the wire: a
    /// super-segment counts as the segments it stands for (as Linux's TcpInSegs/TcpOutSegs).
    segments_in => "TcpInSegs",
    segments_out => "TcpOutSegs",
    /// Super-segments received from and sent to the kernel (segmentation offload): packets
    /// carrying more than one MSS of payload.
    super_segments_in,
    super_segments_out,
    /// Connections that reached SYN-RECEIVED from LISTEN, or ESTABLISHED from a SYN cookie.
    passive_opens => "TcpPassiveOpens",
    /// Connections we opened (SYN-SENT), and those that never got established (refused or
    /// timed out; Linux's `TcpAttemptFails` also counts half-open connections reset by the
    /// peer).
    active_opens => "TcpActiveOpens",
    attempt_fails,
    /// Connections that reached ESTABLISHED.
    established,
    /// Connections that went from ESTABLISHED or CLOSE-WAIT straight to CLOSED: reset by
    /// either side, or given up (RFC 1213's tcpEstabResets). Until issue #12 this counted
    /// what `peer_resets` counts.
    established_resets => "TcpEstabResets",
    /// Connections reset by the peer, in any state.
    peer_resets,
    /// RSTs received / sent (replies to strays and aborts).
    rst_in,
    rst_out => "TcpOutRsts",
    /// Half-open connections dropped after their SYN,ACK went unanswered.
    synack_timeouts,
    /// Connections given up after R2.
    retransmit_timeouts,
    /// Segments sent again (SYN, SYN,ACK, data or FIN).
    retransmissions => "TcpRetransSegs",
    /// Retransmission timer expirations (SYN, SYN,ACK, data or FIN).
    rto_expirations => "TcpExtTCPTimeouts",
    /// Payload bytes received in (valid) segments and sent.
    bytes_in,
    bytes_out,
    /// Packets for an address that is not ours.
    not_ours,
    /// Well-formed packets of other protocols or ICMP types.
    ignored,
    /// UDP datagrams: synack answers and relays TCP only (`--addr any` included), so they are
    /// dropped. Linux would answer with ICMP port unreachable (`UdpNoPorts`).
    udp_dropped,
    /// ICMP/ICMPv6 echo requests answered.
    echo_replies,
    /// Packets (TCP or ICMP echo) from a source no host may accept: 0/8, 127/8, the limited
    /// broadcast, multicast; ::, ::1, multicast, v4-mapped; or one of our own addresses
    /// (RFC 1122 §3.2.1.3, RFC 4291; MUST-57, MUST-63). Dropped before TCP sees them.
    martian_source,
    /// Segments for LISTEN that were neither SYN nor ACK, or RSTs there (ignored, RFC 9293
    /// §3.10.7.2). Until issue #12 these were counted as `listen_drops`.
    listen_ignored,
    /// SYNs and handshake-completing ACKs a listener dropped: past `--max-connections`, or
    /// with its accept queue full (`accept_queue_full`, part of this count as in Linux).
    listen_drops => "TcpExtListenDrops",
    /// SYNs with FIN in LISTEN, dropped as Linux drops them (a scan signature; see the
    /// decisions table in docs/ARCHITECTURE.md).
    listen_syn_fin,
    /// SYNs refused because the connection table is full.
    connection_limit,
    /// Challenge ACKs sent (RFC 5961); those a connection did not send because it sent one
    /// (or an out-of-window ACK) in the last 500 ms; and those the global budget suppressed
    /// (§7).
    challenge_acks => "TcpExtTCPChallengeACK",
    challenge_acks_skipped => "TcpExtTCPACKSkippedChallenge",
    challenge_acks_limited,
    /// ACKs not sent, within 500 ms of the last one on the connection, for an out-of-window
    /// bare ACK or SYN (Linux also: `TcpExtTCPACKSkippedTimeWait` in TIME-WAIT), and for a
    /// segment PAWS rejected.
    out_of_window_acks_skipped => "TcpExtTCPACKSkippedSeq",
    paws_acks_skipped => "TcpExtTCPACKSkippedPAWS",
    /// Packets that did not fit the output buffer or could not be written.
    tx_errors,
    /// RFC 7323 §5.3 (PAWS): segments with an old timestamp, dropped and ACKed.
    paws_rejected => "TcpExtPAWSEstab",
    /// RSTs outside the receive window, dropped silently (RFC 5961 §3.2).
    out_of_window_rst,
    /// In-window RSTs not at RCV.NXT, and SYNs in synchronized states: challenged (RFC 5961).
    rst_challenged,
    syn_challenged => "TcpExtTCPSYNChallenge",
    /// Other segments outside the receive window, dropped and ACKed (RFC 9293 Table 6).
    out_of_window,
    /// ACKs of data not yet sent (dropped, ACKed) and older than SND.UNA − MAX.SND.WND
    /// (dropped, challenge ACK; RFC 5961 §5.2).
    ack_unsent,
    ack_too_old,
    /// SYNs that found their listener's half-open queue full (`--backlog`): each is answered
    /// with a SYN cookie.
    backlog_full => "TcpExtTCPReqQFullDoCookies",
    /// SYN cookies sent, final ACKs that carried a valid one, and forged, stale or spent ones
    /// (a late ACK of a connection made from a cookie that has ended: `cookie.rs`).
    syn_cookies_sent => "TcpExtSyncookiesSent",
    syn_cookies_accepted => "TcpExtSyncookiesRecv",
    syn_cookies_rejected => "TcpExtSyncookiesFailed",
    /// Final ACKs dropped because the listener's accept queue was full.
    accept_queue_full => "TcpExtListenOverflows",
    /// Times a connection was held back by `--max-buffer-memory` (its window clamped or not
    /// opened, data dropped, or its application's writes cut short): episodes, not passes.
    buffer_memory_limited,
    /// Times the endpoint entered buffer memory pressure (above two thirds of
    /// `--max-buffer-memory`, left below one half; Linux: `TCPMemoryPressures`).
    memory_pressure_entered => "TcpExtTCPMemoryPressures",
    /// Connections whose offered window memory pressure clamped to four segments (once per
    /// connection and episode).
    rcv_window_clamped,
    /// Segments whose in-window data was dropped at the `--max-buffer-memory` limit (Linux:
    /// `TCPRcvQDrop`); the peer retransmits it.
    rcv_memory_drops => "TcpExtTCPRcvQDrop",
    /// D-SACK blocks sent (RFC 2883): for duplicate data below RCV.NXT, and for duplicates
    /// of data in the out-of-order queue.
    dsack_old_sent => "TcpExtTCPDSACKOldSent",
    dsack_ofo_sent => "TcpExtTCPDSACKOfoSent",
    /// ACKs received carrying a D-SACK block (RFC 2883).
    dsack_recv => "TcpExtTCPDSACKRecv",
    /// Fast recoveries entered with SACK (RFC 6675 or RACK) and without (RFC 6582).
    sack_recovery => "TcpExtTCPSackRecovery",
    reno_recovery => "TcpExtTCPRenoRecovery",
    /// Tail loss probes sent (RFC 8985 §7), and losses a probe repaired.
    loss_probes => "TcpExtTCPLossProbes",
    loss_probe_recovery => "TcpExtTCPLossProbeRecovery",
    /// Window reductions undone because they proved spurious: by D-SACK, by timestamps at
    /// the end of a recovery, on a partial ACK, after a timeout; and spurious timeouts.
    dsack_undo => "TcpExtTCPDSACKUndo",
    full_undo => "TcpExtTCPFullUndo",
    partial_undo => "TcpExtTCPPartialUndo",
    loss_undo => "TcpExtTCPLossUndo",
    spurious_rtos => "TcpExtTCPSpuriousRTOs",
    /// Slow starts left because the RTT rose (HyStart++, RFC 9406).
    hystart_delay_detect => "TcpExtTCPHystartDelayDetect",
    /// Slow starts ended by an ACK train of half the minimum RTT (Linux's HyStart).
    hystart_train_detect => "TcpExtTCPHystartTrainDetect",
    /// Connections closed at once instead of entering TIME-WAIT because `--max-time-wait`
    /// TIME-WAIT connections existed already (Linux: `TCPTimeWaitOverflow`, past
    /// `tcp_max_tw_buckets`).
    time_wait_overflow => "TcpExtTCPTimeWaitOverflow",
    /// Keep-alive probes sent, and connections aborted after unanswered probes.
    keepalive_probes => "TcpExtTCPKeepAlive",
    keepalive_timeouts,
    /// Connections aborted with a RST because their application closed with unread data.
    aborts_on_data => "TcpExtTCPAbortOnData",
    /// Orphaned FIN-WAIT-2 connections reset after the FIN timeout.
    fin_wait_2_timeouts,
    /// SYNs to `exec:` ports refused with RST past `--max-exec`.
    exec_limit,
    /// Programs that could not be started (spawn failed): their connections were reset.
    exec_spawn_failures,
    /// `forward:` connects refused by the upstream (the client got RST), and those that
    /// failed otherwise (unreachable, timed out: the client's SYN went unanswered).
    forward_refused,
    forward_connect_failures,
    /// Of those failures, the relayed connects (`direct`, `socks5:`) whose destination was
    /// unreachable: the client got the ICMP error the host got.
    forward_unreachable,
    /// SYNs to forward ports retransmitted while their connect was under way (absorbed),
    /// and those dropped because too many connects were under way (`--backlog`).
    forward_syn_absorbed,
    forward_pending_full,
    /// Relayed SYNs that came from one of synack's own upstream sockets: a routing loop
    /// (`--upstream-mark` without a rule that matches, a route into synack's interface that
    /// `--upstream-interface` does not override). Refused with RST, so the looping connect
    /// fails at once and its client is refused in turn.
    relay_loops,
    /// ICMP and ICMPv6 errors quoting a TCP segment, by type, under Linux's names (Linux
    /// counts every such message received; so does synack, whether or not it matched).
    /// Fragmentation needed is a destination unreachable (IPv4); Packet Too Big has its own
    /// (IPv6); an ICMPv6 unrecognized next header is a parameter problem.
    icmp_in_dest_unreachs => "IcmpInDestUnreachs",
    icmp_in_time_excds => "IcmpInTimeExcds",
    icmp_in_parm_probs => "IcmpInParmProbs",
    icmp6_in_dest_unreachs => "Icmp6InDestUnreachs",
    icmp6_in_pkt_too_bigs => "Icmp6InPktTooBigs",
    icmp6_in_time_excds => "Icmp6InTimeExcds",
    icmp6_in_parm_problems => "Icmp6InParmProblems",
    /// ICMP errors quoting a segment of no connection of ours (ignored).
    icmp_no_connection,
    /// ICMP errors whose quoted sequence number is not in flight (RFC 5927 §4.1: ignored).
    out_of_window_icmps => "TcpExtOutOfWindowIcmps",
    /// Soft ICMP errors kept as a connection's last error, and connections an ICMP error
    /// aborted (a hard one, or any in SYN-SENT / SYN-RECEIVED).
    icmp_soft_errors,
    icmp_aborts,
    /// Times a destination's path MTU was lowered by a Packet Too Big (RFC 1191, RFC 8201).
    pmtu_lowered,
    /// Times a connection's MSS was lowered after repeated timeouts with no ICMP (PLPMTUD
    /// black-hole detection, `--mtu-probing`; Linux: `tcp_mtu_probing`, no counter).
    mtu_blackhole_fallbacks,
    /// After a fallback, probes of the MSS from before it (once a round trip succeeded at
    /// the smaller size): acknowledged, and lost to a timeout (no probe again for 10 min).
    mtu_probe_successes => "TcpExtTCPMTUPSuccess",
    mtu_probe_failures => "TcpExtTCPMTUPFail",
    /// TCP segments received, by the ECN field of their IP header (RFC 3168 §5).
    in_no_ect_pkts => "IpExtInNoECTPkts",
    in_ect1_pkts => "IpExtInECT1Pkts",
    in_ect0_pkts => "IpExtInECT0Pkts",
    in_ce_pkts => "IpExtInCEPkts",
    /// On ECN connections (RFC 3168): congestion window reductions for the peer's ECE (once
    /// per window of data; none while already in loss recovery).
    ecn_cwnd_reductions,
    /// TCP Fast Open (RFC 7413), server: SYNs with a valid cookie whose data was accepted,
    /// SYNs with an invalid cookie (a normal handshake, with a new cookie), cookie requests,
    /// and Fast Open SYNs turned to a normal handshake because the listener had as many
    /// Fast Open connections pending as its backlog (RFC 7413 §5.1).
    fastopen_passive => "TcpExtTCPFastOpenPassive",
    fastopen_passive_fail => "TcpExtTCPFastOpenPassiveFail",
    fastopen_cookie_reqd => "TcpExtTCPFastOpenCookieReqd",
    fastopen_listen_overflow => "TcpExtTCPFastOpenListenOverflow",
    /// TCP Fast Open, client (`synack connect --fastopen`): SYNs whose data the SYN,ACK
    /// acknowledged, and those whose data it did not (sent again after the handshake).
    fastopen_active => "TcpExtTCPFastOpenActive",
    fastopen_active_fail => "TcpExtTCPFastOpenActiveFail",
    /// Connections that negotiated ECN: RFC 3168, and Accurate ECN (RFC 9768, `--ecn` not
    /// off and the client asked); AccECN connections that fell back because the handshake's
    /// ACK came with the ACE field zeroed (RFC 9768 §3.2.2.3: a middlebox clears it).
    ecn_negotiated,
    accecn_negotiated,
    accecn_ace_failures,
    /// Packets the peer reported as received CE-marked: acknowledged by an ECE (RFC 3168)
    /// or counted by the ACE field (AccECN).
    delivered_ce => "TcpExtTCPDeliveredCE",
}

impl Counters {
    /// Add what a connection counted (see `tcp::ConnEvents`).
    pub fn add_events(&mut self, e: &ConnEvents) {
        self.paws_rejected += e.paws_rejected;
        self.mtu_blackhole_fallbacks += u64::from(e.mtu_blackhole_fallbacks);
        self.mtu_probe_successes += u64::from(e.mtu_probe_successes);
        self.mtu_probe_failures += u64::from(e.mtu_probe_failures);
        self.ecn_cwnd_reductions += u64::from(e.ecn_cwnd_reductions);
        self.out_of_window_rst += e.out_of_window_rst;
        self.rst_challenged += e.rst_challenged;
        self.syn_challenged += e.syn_challenged;
        self.out_of_window += e.out_of_window;
        self.ack_unsent += e.ack_unsent;
        self.ack_too_old += e.ack_too_old;
        self.challenge_acks_skipped += e.challenge_acks_skipped;
        self.out_of_window_acks_skipped += e.out_of_window_acks_skipped;
        self.paws_acks_skipped += e.paws_acks_skipped;
        self.rto_expirations += e.rto_expirations;
        self.aborts_on_data += e.aborts_on_data;
        self.established_resets += e.established_resets;
        self.keepalive_probes += e.keepalive_probes;
        self.keepalive_timeouts += e.keepalive_timeouts;
        self.fin_wait_2_timeouts += e.fin_wait_2_timeouts;
        self.retransmissions += e.retransmissions;
        self.rcv_window_clamped += e.rcv_window_clamped;
        self.rcv_memory_drops += e.rcv_memory_drops;
        self.dsack_old_sent += u64::from(e.dsack_old_sent);
        self.dsack_ofo_sent += u64::from(e.dsack_ofo_sent);
        self.dsack_recv += u64::from(e.dsack_recv);
        self.sack_recovery += u64::from(e.sack_recovery);
        self.reno_recovery += u64::from(e.reno_recovery);
        self.loss_probes += u64::from(e.loss_probes);
        self.loss_probe_recovery += u64::from(e.loss_probe_recovery);
        self.dsack_undo += u64::from(e.dsack_undo);
        self.full_undo += u64::from(e.full_undo);
        self.partial_undo += u64::from(e.partial_undo);
        self.loss_undo += u64::from(e.loss_undo);
        self.spurious_rtos += u64::from(e.spurious_rtos);
        self.hystart_delay_detect += u64::from(e.hystart_delay_detect);
        self.hystart_train_detect += u64::from(e.hystart_train_detect);
        self.ecn_negotiated += u64::from(e.ecn_negotiated);
        self.accecn_negotiated += u64::from(e.accecn_negotiated);
        self.accecn_ace_failures += u64::from(e.accecn_ace_failures);
        self.delivered_ce += u64::from(e.delivered_ce);
    }

    pub fn count_drop(&mut self, reason: DropReason) {
        if let Some(i) = DropReason::ALL.iter().position(|r| *r == reason)
            && let Some(c) = self.parse_drops.get_mut(i)
        {
            *c += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn linux_names_are_nstats_and_only_for_counters_that_exist() {
        assert_eq!(
            Counters::linux_name("listen_drops"),
            Some("TcpExtListenDrops")
        );
        assert_eq!(
            Counters::linux_name("accept_queue_full"),
            Some("TcpExtListenOverflows")
        );
        assert_eq!(Counters::linux_name("segments_in"), Some("TcpInSegs"));
        assert_eq!(
            Counters::linux_name("drop_bad_tcp_checksum"),
            Some("TcpInCsumErrors")
        );
        // Ours alone, or different enough in meaning not to borrow Linux's name.
        for name in ["listen_ignored", "peer_resets", "drop_fragment", "nonsense"] {
            assert_eq!(Counters::linux_name(name), None, "{name}");
        }
        // Every Linux name is nstat's (a Tcp, TcpExt, Ip... prefix) and used once.
        let names: Vec<&str> = Counters::default()
            .entries()
            .iter()
            .filter_map(|(n, _)| Counters::linux_name(n))
            .collect();
        let unique: std::collections::HashSet<_> = names.iter().collect();
        assert_eq!(unique.len(), names.len(), "{names:?}");
        assert!(
            names
                .iter()
                .all(|n| n.starts_with("Tcp") || n.starts_with("Icmp") || n.starts_with("IpExt")),
            "{names:?}"
        );
    }

    #[test]
    fn every_counter_says_what_it_counts_in_one_line() {
        for (name, _) in Counters::default().entries() {
            let help = Counters::help(name);
            assert!(!help.contains("The synack stats counter"), "{name}: {help}");
            assert!(
                !help.contains('\n') && !help.contains('`'),
                "{name}: {help}"
            );
            if let Some(linux) = Counters::linux_name(name) {
                assert!(
                    help.ends_with(&format!("(Linux: {linux})")),
                    "{name}: {help}"
                );
            }
        }
        assert!(Counters::help("segments_in").starts_with("TCP segments received"));
        // A counter declared under another's comment shares it.
        assert_eq!(
            Counters::help("segments_out").strip_suffix(" (Linux: TcpOutSegs)"),
            Counters::help("segments_in").strip_suffix(" (Linux: TcpInSegs)")
        );
        assert!(Counters::help("drop_fragment").contains("fragment"));
        assert!(Counters::help("impair_lost").contains("loss="));
    }
}
