//! Counters, like `nstat`'s: every segment, every drop by reason, every defensive action.

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
                    v.push((drop_name(*reason), *n));
                }
                v
            }
        }
    };
}

counters! {
    /// TCP segments received (valid, addressed to us).
    segments_in,
    /// TCP segments sent.
    segments_out,
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
}

fn drop_name(reason: DropReason) -> &'static str {
    match reason {
        DropReason::Malformed => "drop_malformed",
        DropReason::BadIpv4HeaderLength => "drop_bad_ipv4_header_length",
        DropReason::BadIpv4TotalLength => "drop_bad_ipv4_total_length",
        DropReason::BadIpv4Checksum => "drop_bad_ipv4_checksum",
        DropReason::Fragment => "drop_fragment",
        DropReason::BadIpv6Extension => "drop_bad_ipv6_extension",
        DropReason::BadTcpDataOffset => "drop_bad_tcp_data_offset",
        DropReason::BadTcpChecksum => "drop_bad_tcp_checksum",
        DropReason::BadTcpOption => "drop_bad_tcp_option",
        DropReason::BadIcmpChecksum => "drop_bad_icmp_checksum",
    }
}

impl Counters {
    pub fn count_drop(&mut self, reason: DropReason) {
        if let Some(i) = DropReason::ALL.iter().position(|r| *r == reason)
            && let Some(c) = self.parse_drops.get_mut(i)
        {
            *c += 1;
        }
    }
}
