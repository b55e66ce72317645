//! `TCP_INFO`: synack's statistics as Linux's `struct tcp_info`, for getsockopt() and for
//! packetdrill's `%{ }%` blocks (which read it through the C library's getsockopt(): see
//! lib.rs's preloaded `getsockopt`).

use crate::api::SocketTcpInfo;

/// The fields synack keeps, in Linux's layout (libc's `tcp_info`); the rest are zero.
pub fn linux(info: &SocketTcpInfo) -> libc::tcp_info {
    // SAFETY: tcp_info is plain integers; all-zero is a valid value.
    let mut t: libc::tcp_info = unsafe { std::mem::zeroed() };
    t.tcpi_state = info.state;
    t.tcpi_ca_state = info.ca_state;
    t.tcpi_retransmits = info.retransmits;
    t.tcpi_probes = info.probes;
    t.tcpi_backoff = info.backoff;
    t.tcpi_options = info.options;
    // Linux's bitfields: tcpi_snd_wscale in the low four bits, tcpi_rcv_wscale above.
    t.tcpi_snd_rcv_wscale = (info.snd_wscale & 0x0f) | (info.rcv_wscale << 4);
    t.tcpi_rto = info.rto;
    t.tcpi_ato = info.ato;
    t.tcpi_snd_mss = info.snd_mss;
    t.tcpi_rcv_mss = info.rcv_mss;
    t.tcpi_unacked = info.unacked;
    t.tcpi_sacked = info.sacked;
    t.tcpi_lost = info.lost;
    t.tcpi_retrans = info.retrans;
    t.tcpi_pmtu = info.pmtu;
    t.tcpi_rcv_ssthresh = info.rcv_ssthresh;
    t.tcpi_rtt = info.rtt;
    t.tcpi_rttvar = info.rttvar;
    t.tcpi_snd_ssthresh = info.snd_ssthresh;
    t.tcpi_snd_cwnd = info.snd_cwnd;
    t.tcpi_advmss = info.advmss;
    t.tcpi_reordering = info.reordering;
    t.tcpi_last_data_sent = info.last_data_sent;
    t.tcpi_last_data_recv = info.last_data_recv;
    t.tcpi_last_ack_recv = info.last_ack_recv;
    t.tcpi_rcv_rtt = info.rcv_rtt;
    t.tcpi_rcv_space = info.rcv_space;
    t.tcpi_total_retrans = info.total_retrans;
    t.tcpi_bytes_acked = info.bytes_acked;
    t.tcpi_bytes_received = info.bytes_received;
    t.tcpi_segs_out = info.segs_out;
    t.tcpi_segs_in = info.segs_in;
    t.tcpi_notsent_bytes = info.notsent_bytes;
    t.tcpi_min_rtt = info.min_rtt;
    t.tcpi_snd_wnd = info.snd_wnd;
    t.tcpi_rcv_wnd = info.rcv_wnd;
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_scales_share_a_byte_as_linux_bitfields_do() {
        let info = SocketTcpInfo {
            snd_wscale: 7,
            rcv_wscale: 8,
            snd_cwnd: 10,
            ..SocketTcpInfo::default()
        };
        let t = linux(&info);
        assert_eq!(t.tcpi_snd_rcv_wscale, 0x87);
        assert_eq!(t.tcpi_snd_cwnd, 10);
    }
}
