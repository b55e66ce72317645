//! Issue 13: segment-arrival edge cases where synack departed from RFC 9293 (and RFC 5961,
//! 6298, 7323) without saying so. One story per item, on the virtual clock.

use super::*;

// ---- 1. A zero window with data in flight (RFC 9293 §3.8.6, §3.8.6.1) ---------------------

/// ESTABLISHED with two full segments sent, the first ACKed with a zero window.
fn window_shut_with_data_in_flight() -> Harness {
    let mut h = Harness::established();
    h.conn.send(&[b'x'; 2800]);
    let out = h.output();
    assert_eq!(out.len(), 2, "two 1400-byte segments");
    h.now += Duration::from_millis(10);
    h.input(&TcpSegment {
        ack: ISS.add(1401),
        window: 0,
        ..RECV
    });
    assert!(h.output().is_empty(), "nothing fits a zero window");
    h
}

#[test]
fn a_window_shut_with_data_in_flight_is_probed_with_the_head_segment_and_never_aborts() {
    let mut h = window_shut_with_data_in_flight();
    let start = h.now;
    // MUST-36 (probe) and MUST-37 (stay open while the probes are answered): well past R2.
    for _ in 0..25 {
        h.advance_to_timeout();
        let out = h.output();
        assert_eq!(out.len(), 1, "each timeout sends one probe");
        assert_eq!(
            (out[0].seq, out[0].payload.len()),
            (ISS.add(1401), 1400),
            "the probe is the head segment, as Linux's tcp_retransmit_timer sends"
        );
        // The peer answers every probe, still with a zero window.
        h.input(&TcpSegment {
            ack: ISS.add(1401),
            window: 0,
            ..RECV
        });
        assert!(h.output().is_empty());
    }
    assert!(h.now - start > Duration::from_secs(300), "past R2");
    assert_eq!(h.conn.state(), State::Established);
    // The window opens: the data follows (go-back-N from SND.UNA).
    h.input(&TcpSegment {
        ack: ISS.add(1401),
        window: 64000,
        ..RECV
    });
    let out = h.output();
    assert_eq!((out[0].seq, out[0].payload.len()), (ISS.add(1401), 1400));
    h.input(&TcpSegment {
        ack: ISS.add(2801),
        ..RECV
    });
    assert_eq!(h.conn.poll_timeout(), None, "all acknowledged");
}

#[test]
fn a_zero_window_whose_probes_go_unanswered_times_out_after_r2() {
    let mut h = window_shut_with_data_in_flight();
    let start = h.now;
    let mut probes = 0;
    while h.conn.state() != State::Closed {
        h.advance_to_timeout();
        probes += h.output().len();
        assert!(h.now - start < Duration::from_secs(1200));
    }
    assert_eq!(probes, 15);
    assert_eq!(h.conn.reset_cause(), Some(ResetCause::TimedOut));
}

// ---- 2. Data numbered after a FIN (§3.10.7.4, seventh and eighth steps) --------------------

fn data_at(offset: u32, payload: &'static [u8], flags: Flags) -> TcpSegment<'static> {
    TcpSegment {
        seq: IRS.add(1 + offset),
        payload,
        flags,
        ..RECV
    }
}

#[test]
fn data_queued_beyond_a_fin_that_arrives_in_order_is_not_delivered() {
    let mut h = Harness::established();
    // [100, 200) out of order, then [0, 100) with a FIN: the FIN takes number 100.
    h.input(&data_at(100, &[b'b'; 100], Flags::ACK));
    h.output();
    h.input(&data_at(0, &[b'a'; 100], Flags::ACK | Flags::FIN));
    assert_eq!(h.read_all(), vec![b'a'; 100], "the FIN ends the stream");
    assert_eq!(h.conn.state(), State::CloseWait);
    let out = h.output();
    assert_eq!(out.last().unwrap().ack, IRS.add(1 + 101));
}

#[test]
fn data_at_or_beyond_an_early_fin_is_dropped() {
    let mut h = Harness::established();
    // [50, 100) with a FIN (at 100) beyond a hole, then [100, 200) and [90, 120).
    h.input(&data_at(50, &[b'b'; 50], Flags::ACK | Flags::FIN));
    h.input(&data_at(100, &[b'c'; 100], Flags::ACK));
    h.input(&data_at(90, &[b'b'; 30], Flags::ACK));
    h.output();
    h.input(&data_at(0, &[b'a'; 50], Flags::ACK));
    let mut expected = vec![b'a'; 50];
    expected.extend([b'b'; 50]);
    assert_eq!(h.read_all(), expected);
    assert_eq!(h.conn.state(), State::CloseWait);
    assert_eq!(h.output().last().unwrap().ack, IRS.add(1 + 101));
}

#[test]
fn data_beyond_a_bare_fin_past_a_hole_is_dropped() {
    let mut h = Harness::established();
    h.input(&data_at(10, b"", Flags::ACK | Flags::FIN));
    h.input(&data_at(10, &[b'z'; 20], Flags::ACK));
    h.input(&data_at(0, &[b'a'; 10], Flags::ACK));
    assert_eq!(h.read_all(), vec![b'a'; 10]);
    assert_eq!(h.conn.state(), State::CloseWait);
    assert_eq!(h.output().last().unwrap().ack, IRS.add(1 + 11));
}

// ---- 4. Simultaneous open: the window of a SYN,ACK is not scaled (RFC 7323 §2.2) -----------

#[test]
fn simultaneous_open_takes_the_syn_acks_window_unscaled() {
    let mut h = syn_sent();
    let ws7 = TcpOptions {
        mss: Some(1400),
        window_scale: Some(7),
        ..TcpOptions::EMPTY
    };
    h.input(&TcpSegment {
        window: 1000,
        options: ws7,
        ..SYN
    });
    assert_eq!(h.conn.state(), State::SynReceived);
    assert!(h.conn.info().window_scale.is_some(), "both SYNs offered it");
    h.output();
    h.input(&TcpSegment {
        window: 1000,
        options: ws7,
        ..SYN_ACK
    });
    assert_eq!(h.conn.state(), State::Established);
    assert_eq!(h.conn.snd.wnd, 1000, "not 1000 << 7");
    // The next segment's window is scaled.
    h.input(&TcpSegment {
        window: 1000,
        ..RECV
    });
    assert_eq!(h.conn.snd.wnd, 128_000);
}

// ---- 5. The window is updated only from SND.UNA =< SEG.ACK =< SND.NXT (§3.10.7.4) ----------

#[test]
fn an_ack_below_snd_una_never_updates_the_window() {
    let mut h = Harness::established();
    h.conn.send(b"abcd");
    h.output();
    h.input(&TcpSegment {
        ack: ISS.add(5),
        ..RECV
    });
    assert_eq!((h.conn.snd.wnd, h.conn.snd.wl2), (64000, ISS.add(5)));
    // An old pure ACK (SEG.ACK < SND.UNA) with a newer SEQ and a zero window.
    h.input(&TcpSegment {
        seq: IRS.add(10),
        ack: ISS.add(1),
        window: 0,
        ..RECV
    });
    assert_eq!(
        (h.conn.snd.wnd, h.conn.snd.wl1, h.conn.snd.wl2),
        (64000, IRS.add(1), ISS.add(5))
    );
}

// ---- 6. Karn's rule after a duplicate SYN (RFC 6298 §3) -----------------------------------

#[test]
fn a_synack_resent_for_a_duplicate_syn_is_not_timed() {
    let mut h = Harness::syn_received();
    h.now += Duration::from_millis(900);
    h.input(&SYN);
    let out = h.output();
    assert_eq!(out[0].flags, Flags::SYN | Flags::ACK, "the SYN,ACK again");
    h.now += Duration::from_millis(50);
    h.input(&RECV);
    assert_eq!(h.conn.state(), State::Established);
    assert_eq!(h.conn.srtt(), None, "an ambiguous exchange gives no sample");
    // RFC 6298 §5.7, as Linux's tcp_init_metrics: no sample from the handshake, RTO 3 s.
    assert_eq!(h.conn.rto(), Duration::from_secs(3));
}

// ---- 7. PAWS: TS.Recent older than 24 days is invalid (RFC 7323 §5.5) ----------------------

/// A TSval that PAWS sees as older than TS.Recent (it is 2^31 + 100 ahead, so behind).
const WRAPPED_TS: u32 = (PEER_TS + 1).wrapping_add((1 << 31) + 100);

#[test]
fn paws_invalidates_ts_recent_after_24_idle_days() {
    let (mut h, _) = established_full();
    assert_eq!(h.conn.ts_recent, PEER_TS + 1);
    // Within 24 days, an older TSval is an old duplicate.
    h.now += Duration::from_secs(23 * 86_400);
    h.input(&TcpSegment {
        payload: b"old",
        options: ts(WRAPPED_TS),
        ..RECV
    });
    assert!(h.read_all().is_empty());
    assert_eq!(h.conn.paws_drops, 1);
    // Past 24 days of idleness, TS.Recent is invalid: the segment is accepted and its
    // TSval becomes TS.Recent (R3).
    h.now += Duration::from_secs(86_400 + 1);
    h.input(&TcpSegment {
        payload: b"late",
        options: ts(WRAPPED_TS),
        ..RECV
    });
    assert_eq!(h.read_all(), b"late");
    assert_eq!(h.conn.ts_recent, WRAPPED_TS);
    assert_eq!(h.conn.paws_drops, 1);
    // And PAWS works again from the new TS.Recent.
    h.input(&TcpSegment {
        seq: IRS.add(5),
        payload: b"dup",
        options: ts(WRAPPED_TS - 1),
        ..RECV
    });
    assert!(h.read_all().is_empty());
    assert_eq!(h.conn.paws_drops, 2);
}

// ---- 8. The smaller ones ----------------------------------------------------------------

#[test]
fn after_a_lost_syn_the_rto_is_three_seconds_once_data_starts() {
    let mut h = syn_sent();
    assert_eq!(h.advance_to_timeout(), Duration::from_secs(1));
    h.output();
    h.now += Duration::from_millis(30);
    h.input(&SYN_ACK);
    assert_eq!(h.conn.state(), State::Established);
    assert_eq!(h.conn.srtt(), None, "Karn: the SYN was sent twice");
    assert_eq!(h.conn.rto(), Duration::from_secs(3), "RFC 6298 §5.7");
    h.output();
    h.conn.send(b"data");
    h.output();
    assert_eq!(h.advance_to_timeout(), Duration::from_secs(3));
}

#[test]
fn after_a_lost_synack_the_rto_is_three_seconds_once_data_starts() {
    let mut h = Harness::syn_received();
    assert_eq!(h.advance_to_timeout(), Duration::from_secs(1));
    h.output();
    h.input(&RECV);
    assert_eq!(h.conn.state(), State::Established);
    assert_eq!(h.conn.rto(), Duration::from_secs(3));
}

#[test]
fn with_timestamps_a_handshake_after_a_lost_syn_still_measures_the_rtt() {
    let mut h = syn_sent();
    h.advance_to_timeout();
    let resent = h.output().remove(0);
    let (tsval, _) = resent.opts.timestamps.expect("our SYN offers timestamps");
    h.now += Duration::from_millis(40);
    h.input(&TcpSegment {
        options: TcpOptions {
            mss: Some(1400),
            timestamps: Some((PEER_TS, tsval)),
            ..TcpOptions::EMPTY
        },
        ..SYN_ACK
    });
    assert_eq!(h.conn.srtt(), Some(Duration::from_millis(40)));
    assert_eq!(
        h.conn.rto(),
        Duration::from_millis(200),
        "not the 3 s fallback"
    );
}

#[test]
fn the_rto_never_falls_below_200_ms() {
    // Departure from RFC 6298 §2.4 (1 s), as Linux's TCP_RTO_MIN: see docs/ARCHITECTURE.md.
    let mut h = Harness::established();
    assert_eq!(h.conn.srtt(), Some(Duration::ZERO));
    assert_eq!(h.conn.rto(), Duration::from_millis(200));
    h.conn.send(b"x");
    h.output();
    assert_eq!(h.advance_to_timeout(), Duration::from_millis(200));
}

/// SYN-RECEIVED after a simultaneous open (our SYN crossed the peer's).
fn simultaneous_syn_received() -> Harness {
    let mut h = syn_sent();
    h.input(&SYN);
    assert_eq!(h.conn.state(), State::SynReceived);
    h.output();
    h
}

#[test]
fn a_rst_in_syn_received_of_an_active_open_is_connection_refused() {
    let mut h = simultaneous_syn_received();
    h.input(&TcpSegment {
        flags: Flags::RST,
        ..RECV
    });
    assert_eq!(h.conn.state(), State::Closed);
    // RFC 9293 §3.10.7.4 second step: "the connection was refused".
    assert_eq!(h.conn.reset_cause(), Some(ResetCause::Refused));
    assert!(h.output().is_empty());
}

#[test]
fn a_fin_on_the_syn_ack_is_not_acknowledged_and_its_retransmission_closes() {
    let mut h = syn_sent();
    h.input(&TcpSegment {
        flags: Flags::SYN | Flags::ACK | Flags::FIN,
        ..SYN_ACK
    });
    assert_eq!(h.conn.state(), State::Established, "the FIN is not taken");
    let out = h.output();
    assert_eq!(out.len(), 1);
    assert!(
        same(&out[0], &ack_of(ISS.add(1), IRS.add(1))),
        "ACK of the SYN only"
    );
    // The peer retransmits its FIN, which is processed as any FIN.
    h.input(&TcpSegment {
        flags: Flags::ACK | Flags::FIN,
        ..RECV
    });
    assert_eq!(h.conn.state(), State::CloseWait);
    assert_eq!(h.output()[0].ack, IRS.add(2));
}

#[test]
fn the_persist_timers_backoff_ends_when_the_window_opens() {
    let mut h = Harness::established();
    h.input(&TcpSegment { window: 0, ..RECV });
    h.conn.send(b"data");
    h.output();
    let mut waits = vec![];
    for _ in 0..4 {
        waits.push(h.advance_to_timeout().as_millis());
        h.output();
        h.input(&TcpSegment { window: 0, ..RECV });
    }
    assert_eq!(waits, vec![200, 400, 800, 1600]);
    h.input(&TcpSegment {
        window: 1000,
        ..RECV
    });
    assert_eq!(h.output()[0].payload, b"data");
    // The data is lost: it is retransmitted after the RTO from before the probes.
    assert_eq!(h.advance_to_timeout(), Duration::from_millis(200));
}

#[test]
fn a_bare_fin_in_order_forgets_the_data_queued_beyond_it() {
    let mut h = established_sack();
    h.input(&data_at(10, &[b'z'; 20], Flags::ACK));
    let out = h.output();
    assert!(!out[0].opts.sack().is_empty(), "the queued data is SACKed");
    h.input(&data_at(0, b"", Flags::ACK | Flags::FIN));
    assert_eq!(h.conn.state(), State::CloseWait);
    let out = h.output();
    assert_eq!(out[0].ack, IRS.add(2));
    assert!(
        out[0].opts.sack().is_empty(),
        "nothing beyond the FIN is SACKed"
    );
    assert!(h.read_all().is_empty());
}
