//! Each reason a segment is labelled with in the diagrams (`trace::Label`), on a scenario that
//! produces it, on the virtual clock.

use super::*;
use crate::tcp::trace::{Direction, Label};

/// The labels of what the connection sent since the last call (by the trace's count).
fn sent_labels(h: &mut Harness) -> Vec<Label> {
    h.output();
    h.conn
        .trace()
        .events()
        .filter(|e| e.direction == Direction::Out)
        .map(|e| e.label)
        .collect()
}

fn last_label(h: &mut Harness) -> Label {
    *sent_labels(h).last().expect("something was sent")
}

#[test]
fn a_timeout_labels_the_retransmission_rto() {
    let mut h = Harness::established();
    h.conn.send(b"lost");
    assert_eq!(last_label(&mut h), Label::None, "new data has no label");
    h.advance_to_timeout();
    assert_eq!(last_label(&mut h), Label::RtoRetransmit);
    let text = h.conn.ladder();
    assert!(text.contains("len=4 [retransmission (RTO)]"), "{text}");
}

#[test]
fn three_duplicate_acks_label_a_fast_retransmission() {
    let mut h = Harness::established();
    send_segments(&mut h, 6);
    for _ in 0..3 {
        h.input(&RECV);
    }
    let labels = sent_labels(&mut h);
    assert!(labels.contains(&Label::FastRetransmit), "{labels:?}");
    assert!(!labels.contains(&Label::RtoRetransmit), "{labels:?}");
}

#[test]
fn sack_recovery_labels_its_retransmissions() {
    // `--recovery classic`: three duplicate ACKs, then RFC 6675's NextSeg().
    let mut h = established_sack_with(Config {
        recovery: crate::tcp::RecoveryKind::Classic,
        ..Config::default()
    });
    send_segments(&mut h, 8);
    let seg = |k: u32| ISS.add(1 + 1400 * k);
    for right in [seg(2), seg(3), seg(4)] {
        let mut opts = TcpOptions::EMPTY;
        opts.sack_blocks[0] = crate::wire::SackBlock {
            left: seg(1),
            right,
        };
        opts.sack_count = 1;
        h.input(&TcpSegment {
            options: opts,
            ..RECV
        });
    }
    let labels = sent_labels(&mut h);
    // The first segment is sent again once, as the fast retransmission (issue 19: the
    // scoreboard chose it again as a SACK retransmission).
    let retransmissions = |labels: &[Label]| {
        labels
            .iter()
            .filter(|l| matches!(l, Label::FastRetransmit | Label::SackRetransmit))
            .copied()
            .collect::<Vec<_>>()
    };
    assert_eq!(retransmissions(&labels), [Label::FastRetransmit]);
    // After the first hole, recovery goes on by the scoreboard: the fifth segment is lost
    // too (three are SACKed above it).
    let mut opts = TcpOptions::EMPTY;
    opts.sack_blocks[0] = crate::wire::SackBlock {
        left: seg(5),
        right: seg(8),
    };
    opts.sack_count = 1;
    h.input(&TcpSegment {
        ack: seg(1),
        options: opts,
        ..RECV
    });
    let labels = sent_labels(&mut h);
    assert_eq!(
        retransmissions(&labels),
        [Label::FastRetransmit, Label::SackRetransmit]
    );
}

#[test]
fn out_of_order_data_gets_numbered_duplicate_acks() {
    let mut h = Harness::established();
    for k in 1..=3u32 {
        h.input(&TcpSegment {
            seq: IRS.add(1 + 100 * k),
            payload: &[7; 100],
            ..RECV
        });
        assert_eq!(last_label(&mut h), Label::DupAck(k as u16));
    }
    assert!(h.conn.ladder().contains("[dup ACK #3]"));
    // The hole fills: the next ACK moves on and is not a duplicate.
    h.input(&TcpSegment {
        payload: &[7; 100],
        ..RECV
    });
    assert_eq!(last_label(&mut h), Label::None);
}

#[test]
fn a_zero_window_is_probed_with_a_labelled_probe() {
    let mut h = Harness::established();
    h.input(&TcpSegment { window: 0, ..RECV });
    h.conn.send(b"data");
    h.output();
    h.advance_to_timeout();
    assert_eq!(last_label(&mut h), Label::ZeroWindowProbe);
}

#[test]
fn reading_a_full_buffer_sends_a_labelled_window_update() {
    let cap = 16 * 1024;
    let mut h = Harness::established_with(Config {
        rmem: BufferSizes::fixed(cap),
        ..Config::default()
    });
    let chunk = vec![1u8; usize::from(MSS)];
    let mut seq = IRS.add(1);
    for _ in 0..10 {
        h.input(&TcpSegment {
            seq,
            payload: &chunk,
            ..RECV
        });
        seq = seq.add(u32::from(MSS));
        h.output();
    }
    h.read_all();
    assert_eq!(last_label(&mut h), Label::WindowUpdate);
}

#[test]
fn a_keepalive_probe_is_labelled() {
    let mut h = Harness::established();
    h.conn
        .set_keepalive(Some(KeepAlive::after(Duration::from_secs(5))));
    h.advance_to_timeout();
    assert_eq!(last_label(&mut h), Label::KeepAlive);
}

#[test]
fn a_syn_in_established_gets_a_labelled_challenge_ack() {
    let mut h = Harness::established();
    h.input(&TcpSegment {
        seq: IRS.add(100),
        ..SYN
    });
    assert_eq!(last_label(&mut h), Label::ChallengeAck);
}

#[test]
fn time_wait_labels_its_reack_of_a_retransmitted_fin_only() {
    let mut h = Harness::established();
    let fin = into_time_wait(&mut h);
    assert_eq!(last_label(&mut h), Label::None, "the first ACK of the FIN");
    h.advance(Duration::from_secs(30));
    h.input(&fin);
    assert_eq!(last_label(&mut h), Label::TimeWaitReAck);
}

#[test]
fn rack_tlp_and_dsack_label_their_segments() {
    // RACK (RFC 8985 §6): three segments SACKed above the first: it is lost, resent [RACK].
    let mut h = established_sack();
    send_segments(&mut h, 8);
    sack_segments(&mut h, ISS.add(1), 1, 4);
    assert_eq!(last_label(&mut h), Label::Rack);
    assert!(h.conn.ladder().contains("[RACK]"));
    assert_eq!(h.conn.events().sack_recovery, 1);
    // PRR: the retransmission's ACK (SND.UNA moves, more SACKed) lets new data out.
    h.conn.send(&[0x42; 1400]);
    sack_segments(&mut h, ISS.add(1 + 1400), 1, 7);
    assert_eq!(last_label(&mut h), Label::Prr);
    assert!(h.conn.ladder().contains("[PRR]"));
    // TLP (§7): the ACKs stop; the probe is the last segment again.
    let mut h = established_sack();
    send_segments(&mut h, 4);
    h.advance_to_timeout();
    assert_eq!(last_label(&mut h), Label::Tlp);
    assert!(h.conn.ladder().contains("[TLP]"));
    // D-SACK (RFC 2883): the ACK of a duplicate.
    let mut h = established_sack();
    let data = TcpSegment {
        payload: b"abc",
        ..RECV
    };
    h.input(&data);
    h.output();
    h.input(&data);
    assert_eq!(last_label(&mut h), Label::Dsack);
    assert!(h.conn.ladder().contains("[D-SACK]"));
}
