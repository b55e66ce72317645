//! Loss recovery as a receiver and a sender (issue 19): D-SACK, quick-ACKs, and what the
//! sender makes of them, on the virtual clock with segment templates.

use super::*;

/// The SACK blocks of a segment we sent.
use crate::tcp::samples::Episode;

fn sack_of(s: &Sent) -> Vec<(SeqNum, SeqNum)> {
    s.opts.sack().iter().map(|b| (b.left, b.right)).collect()
}

/// `len` bytes of the peer's data at stream offset `off`.
fn data(off: u32, payload: &'static [u8]) -> TcpSegment<'static> {
    TcpSegment {
        seq: IRS.add(1 + off),
        payload,
        ..RECV
    }
}

#[test]
fn a_duplicate_segment_is_acked_with_a_dsack_block() {
    // RFC 2883 §4.1.1: the peer retransmits a segment we had (our ACK was lost): the ACK
    // reports the duplicate first, once.
    let mut h = established_sack();
    h.input(&data(0, b"abcdef"));
    h.output();
    h.input(&data(0, b"abcdef"));
    let out = h.output();
    assert_eq!(out.len(), 1, "{out:?}");
    assert_eq!(out[0].ack, IRS.add(7));
    assert_eq!(sack_of(&out[0]), [(IRS.add(1), IRS.add(7))]);
    assert_eq!(h.conn.events().dsack_old_sent, 1);
    // The next ACK carries no D-SACK.
    h.input(&data(6, b"gh"));
    let out = h.output();
    assert!(sack_of(&out[0]).is_empty(), "{:?}", sack_of(&out[0]));
}

#[test]
fn a_partly_duplicate_segment_reports_its_old_part() {
    // RFC 2883 §4.1.1 for the part below RCV.NXT; the new part is taken.
    let mut h = established_sack();
    h.input(&data(0, b"abc"));
    h.output();
    h.input(&data(1, b"bcdef"));
    let out = h.output();
    assert_eq!(out[0].ack, IRS.add(7));
    assert_eq!(sack_of(&out[0]), [(IRS.add(2), IRS.add(4))]);
    assert_eq!(h.read_all(), b"abcdef");
}

#[test]
fn a_duplicate_of_queued_data_is_reported_with_its_block_second() {
    // RFC 2883 §4.1.3 / §4.2.1: a duplicate above RCV.NXT: D-SACK, then the block holding
    // it, then the other blocks.
    let mut h = established_sack();
    h.input(&data(10, b"klm"));
    h.input(&data(20, b"uvw"));
    h.output();
    h.input(&data(10, b"klm"));
    let out = h.output();
    assert_eq!(out[0].ack, IRS.add(1));
    assert_eq!(
        sack_of(&out[0]),
        [
            (IRS.add(11), IRS.add(14)),
            (IRS.add(11), IRS.add(14)),
            (IRS.add(21), IRS.add(24))
        ]
    );
    assert_eq!(h.conn.events().dsack_ofo_sent, 1);
}

#[test]
fn a_filled_hole_and_a_duplicate_turn_quick_acks_on_again() {
    let mut h = established_sack();
    h.spend_quick_acks();
    h.input(&data(3, b"def"));
    assert_eq!(h.output().len(), 1, "out of order: at once");
    h.input(&data(0, b"abc"));
    assert_eq!(h.output().len(), 1, "the hole is filled: at once");
    // The next in-order segments too (they would wait for a second one or the timer).
    h.input(&data(6, b"ghi"));
    assert_eq!(h.output().len(), 1, "quick ACK after the hole");
    let mut h = established_sack();
    h.input(&data(0, b"abc"));
    h.output();
    h.spend_quick_acks();
    h.input(&data(0, b"abc"));
    assert_eq!(h.output().len(), 1, "a duplicate: at once");
    h.input(&data(3, b"def"));
    assert_eq!(h.output().len(), 1, "quick ACK after a duplicate");
}

#[test]
fn no_dsack_without_sack() {
    let mut h = Harness::established();
    h.input(&data(0, b"abc"));
    h.output();
    h.input(&data(0, b"abc"));
    let out = h.output();
    assert_eq!(out.len(), 1);
    assert!(sack_of(&out[0]).is_empty());
    assert_eq!(h.conn.events().dsack_old_sent, 0);
}

#[test]
fn status_info_shows_the_congestion_state_and_the_reordering_window() {
    let mut h = established_sack();
    let info = |h: &Harness| h.conn.tcp_info(Duration::from_secs(1));
    assert_eq!(info(&h).ca_state, "open");
    send_segments(&mut h, 8);
    sack_segments(&mut h, ISS.add(1), 1, 4);
    assert_eq!(info(&h).ca_state, "recovery");
    // The congestion graph shades it.
    let episode = |h: &Harness| h.conn.samples().read().last().map(|s| s.episode);
    assert_eq!(episode(&h), Some(Episode::FastRecovery));
    let entries = info(&h).entries();
    assert!(entries.iter().any(|(k, _)| *k == "ca_state"));
    assert!(entries.iter().any(|(k, _)| *k == "reo_wnd_us"));
    // A timeout: loss.
    h.output();
    while h.conn.events().rto_expirations == 0 {
        h.advance_to_timeout();
        h.output();
    }
    assert_eq!(info(&h).ca_state, "loss");
    assert_eq!(episode(&h), Some(Episode::RtoLoss));
}

#[test]
fn limited_transmit_sends_new_data_on_the_first_duplicate_acks() {
    // RFC 3042: the window is full; each of the first two duplicate ACKs lets one new
    // segment out (with SACK: each SACKed segment has left the pipe). (`classic`: this
    // harness's handshake takes no time, so RACK's window is zero and RACK would call the
    // first segment lost at once; tests/sim covers RACK.)
    let mut h = established_sack_with(Config {
        recovery: crate::tcp::RecoveryKind::Classic,
        ..Config::default()
    });
    assert_eq!(send_segments(&mut h, 20).len(), 10);
    sack_segments(&mut h, ISS.add(1), 1, 2);
    let out = h.output();
    assert_eq!(out.len(), 1, "{out:?}");
    assert_eq!(out[0].seq, ISS.add(1 + 10 * 1400), "new data");
    sack_segments(&mut h, ISS.add(1), 1, 3);
    let out = h.output();
    assert_eq!(out.len(), 1, "{out:?}");
    assert_eq!(out[0].seq, ISS.add(1 + 11 * 1400));
    // Without SACK: the duplicate ACKs themselves.
    let mut h = Harness::established();
    send_segments(&mut h, 20);
    let first = h.conn.snd_nxt();
    for k in 0..2u32 {
        h.input(&RECV);
        let out = h.output();
        assert_eq!(out.len(), 1, "dup ACK {k}: {out:?}");
        assert_eq!(out[0].seq, first.add(k * out[0].payload.len() as u32));
    }
    h.input(&RECV);
    let out = h.output();
    assert!(
        out.iter().any(|s| s.seq == ISS.add(1)),
        "the third: fast retransmit: {out:?}"
    );
}

#[test]
fn prr_paces_a_recovery_without_sack_from_the_duplicate_acks() {
    // RFC 9937 §6 for a peer without SACK: each duplicate ACK stands for a segment delivered,
    // so PRR lets new data out in proportion from the first ACK of the recovery on, instead
    // of RFC 6582's inflation, which sent nothing until the duplicate ACKs had inflated cwnd
    // past the whole flight, then one segment on every ACK.
    let mut h = Harness::established();
    h.conn.cc.set_cwnd(20 * 1400);
    assert_eq!(send_segments(&mut h, 60).len(), 20);
    let mut pattern = Vec::new();
    let mut retransmitted = 0;
    for _ in 0..16 {
        h.input(&RECV);
        let out = h.output();
        retransmitted += out.iter().filter(|s| s.seq == ISS.add(1)).count();
        pattern.push(out.iter().filter(|s| s.seq.gt(ISS.add(1))).count());
    }
    assert_eq!(retransmitted, 1, "one fast retransmission");
    assert!(h.conn.cc.in_recovery());
    let ssthresh = h.conn.cc.ssthresh();
    // Two segments by Limited Transmit, the fast retransmission on the third, then new data
    // on two ACKs of every three: with CUBIC, ssthresh is 0.7 of the window of 20 (not of
    // the flight of 22, which Limited Transmit raised), against a RecoverFS of 20. RFC 6582
    // sent nothing until the sixth.
    assert_eq!(
        pattern,
        [1, 1, 0, 1, 1, 0, 1, 1, 0, 1, 1, 0, 1, 1, 1, 0],
        "new segments per ACK"
    );
    // The pipe the duplicate ACKs leave is about ssthresh, and cwnd follows PRR (pipe +
    // sndcnt), not ssthresh + 3 + duplicate ACKs.
    let pipe = h.conn.snd_nxt().distance_from(h.conn.snd.una) - 16 * 1400;
    assert!(
        pipe.abs_diff(ssthresh) <= 1400,
        "pipe {pipe} ssthresh {ssthresh}"
    );
    assert!(
        h.conn.cc.cwnd() <= ssthresh + 1400,
        "cwnd {}",
        h.conn.cc.cwnd()
    );
    // The whole flight is acknowledged: recovery ends with cwnd = ssthresh.
    let all = h.conn.snd_nxt();
    h.input(&TcpSegment { ack: all, ..RECV });
    assert!(!h.conn.cc.in_recovery());
    assert_eq!(h.conn.cc.cwnd(), ssthresh);
}
