//! Every acceptance rule at the window edges (RFC 9293 §3.10.7.4, RFC 5961, RFC 7323 §5):
//! the left edge, the right edge, and one sequence number outside on each side.

use super::*;

/// ESTABLISHED, with RCV.NXT = IRS + 1 and RCV.WND as offered.
fn at_rest() -> (Harness, SeqNum, u32) {
    let h = Harness::established();
    let (nxt, wnd) = (h.conn.rcv.nxt, h.conn.rcv.wnd());
    assert_eq!(nxt, IRS.add(1));
    assert!(wnd > 1000);
    (h, nxt, wnd)
}

fn rst_at(seq: SeqNum) -> TcpSegment<'static> {
    TcpSegment {
        seq,
        flags: Flags::RST,
        ..RECV
    }
}

#[test]
fn rst_at_each_edge_of_the_receive_window() {
    // Just left of the window: dropped silently.
    let (mut h, nxt, wnd) = at_rest();
    h.input(&rst_at(nxt.sub(1)));
    assert_eq!(h.conn.state(), State::Established);
    assert!(h.output().is_empty());
    assert_eq!(h.conn.events().out_of_window_rst, 1);
    // The left edge, exactly RCV.NXT: resets.
    let (mut h, nxt, _) = at_rest();
    h.input(&rst_at(nxt));
    assert_eq!(h.conn.reset_cause(), Some(ResetCause::PeerReset));
    // One inside, and the right edge (RCV.NXT + RCV.WND − 1): a challenge ACK, and it lives.
    for offset in [1, wnd - 1] {
        let (mut h, nxt, _) = at_rest();
        h.input(&rst_at(nxt.add(offset)));
        assert_eq!(h.conn.state(), State::Established, "offset {offset}");
        let out = h.output();
        assert_eq!(out.len(), 1);
        assert!(same(&out[0], &ack_of(ISS.add(1), nxt)));
        assert_eq!(h.conn.events().rst_challenged, 1);
    }
    // Just right of the window: dropped silently.
    let (mut h, nxt, wnd) = at_rest();
    h.input(&rst_at(nxt.add(wnd)));
    assert_eq!(h.conn.state(), State::Established);
    assert!(h.output().is_empty());
    assert_eq!(h.conn.events().out_of_window_rst, 1);
}

#[test]
fn syn_at_each_edge_of_the_receive_window_never_resets() {
    for (offset, in_window) in [(-1i64, false), (0, true), (1, true), (-2, false)] {
        let (mut h, nxt, wnd) = at_rest();
        // -2 stands for "just right of the window": RCV.NXT + RCV.WND.
        let seq = match offset {
            -1 => nxt.sub(1),
            -2 => nxt.add(wnd),
            1 => nxt.add(wnd - 1),
            _ => nxt,
        };
        assert!(h.input(&TcpSegment { seq, ..SYN }).is_none());
        assert_eq!(h.conn.state(), State::Established);
        let out = h.output();
        assert_eq!(out.len(), 1, "an ACK either way");
        assert!(same(&out[0], &ack_of(ISS.add(1), nxt)));
        let e = h.conn.events();
        if in_window {
            assert_eq!((e.syn_challenged, e.out_of_window), (1, 0));
        } else {
            assert_eq!((e.syn_challenged, e.out_of_window), (0, 1));
        }
    }
}

#[test]
fn data_at_each_edge_of_the_receive_window() {
    // One byte before RCV.NXT (a duplicate): ACKed, nothing delivered.
    let (mut h, nxt, wnd) = at_rest();
    h.input(&TcpSegment {
        seq: nxt.sub(1),
        payload: b"x",
        ..RECV
    });
    assert!(h.read_all().is_empty());
    assert_eq!(h.conn.events().out_of_window, 1);
    // Two bytes starting one before: the new byte is taken.
    h.input(&TcpSegment {
        seq: nxt.sub(1),
        payload: b"xy",
        ..RECV
    });
    assert_eq!(h.read_all(), b"y");
    // The last byte of the window: queued out of order, not delivered.
    let (mut h2, _, _) = at_rest();
    h2.input(&TcpSegment {
        seq: nxt.add(wnd - 1),
        payload: b"z",
        ..RECV
    });
    assert!(h2.read_all().is_empty());
    assert_eq!(h2.conn.reasm.queued_bytes(), 1);
    assert_eq!(h2.conn.events().out_of_window, 0);
    // The first byte past the window: ACKed and dropped.
    let (mut h3, _, _) = at_rest();
    h3.input(&TcpSegment {
        seq: nxt.add(wnd),
        payload: b"z",
        ..RECV
    });
    assert_eq!(h3.conn.reasm.queued_bytes(), 0);
    assert_eq!(h3.conn.events().out_of_window, 1);
    assert_eq!(h3.output().len(), 1);
    let _ = wnd;
}

/// ESTABLISHED with 1000 bytes sent and unacknowledged: SND.UNA = ISS + 1,
/// SND.NXT = ISS + 1001, MAX.SND.WND = 64000.
fn in_flight() -> Harness {
    let mut h = Harness::established();
    assert_eq!(h.conn.send(&[5u8; 1000]), 1000);
    let out = h.output();
    assert_eq!(out.len(), 1);
    assert_eq!(h.conn.snd.nxt, ISS.add(1001));
    assert_eq!(h.conn.snd.max_wnd, 64000);
    h
}

#[test]
fn ack_at_each_edge_of_the_acceptable_range() {
    let una = ISS.add(1);
    let nxt = ISS.add(1001);
    let data = |ack: SeqNum| TcpSegment {
        ack,
        payload: b"d",
        ..RECV
    };
    // SND.UNA − MAX.SND.WND: the left edge, acceptable; its data is delivered.
    let mut h = in_flight();
    h.input(&data(una.sub(64000)));
    assert_eq!(h.read_all(), b"d");
    assert_eq!(h.conn.events().ack_too_old, 0);
    // One below: discarded with a challenge ACK, its data never delivered (RFC 5961 §5.2).
    let mut h = in_flight();
    h.input(&data(una.sub(64001)));
    assert!(h.read_all().is_empty());
    assert_eq!(h.conn.events().ack_too_old, 1);
    let out = h.output();
    assert!(
        out.iter()
            .any(|s| s.payload.is_empty() && s.ack == IRS.add(1))
    );
    // SND.NXT: the right edge, acceptable: everything acknowledged, data delivered.
    let mut h = in_flight();
    h.input(&data(nxt));
    assert_eq!(h.read_all(), b"d");
    assert_eq!(h.conn.snd.una, nxt);
    // One above: acknowledges nothing we sent: an ACK, the data dropped (§3.10.7.4).
    let mut h = in_flight();
    h.input(&data(nxt.add(1)));
    assert!(h.read_all().is_empty());
    assert_eq!(h.conn.snd.una, una);
    assert_eq!(h.conn.events().ack_unsent, 1);
    let out = h.output();
    assert!(
        out.iter()
            .any(|s| s.payload.is_empty() && s.ack == IRS.add(1))
    );
}

#[test]
fn paws_at_the_edge_of_ts_recent() {
    // TS.Recent is PEER_TS + 1 after the handshake's ACK.
    let (mut h, _) = established_full();
    h.input(&TcpSegment {
        payload: b"a",
        options: ts(PEER_TS + 1),
        ..RECV
    });
    assert_eq!(h.read_all(), b"a", "TSval = TS.Recent is not old");
    h.input(&TcpSegment {
        seq: IRS.add(2),
        payload: b"b",
        options: ts(PEER_TS),
        ..RECV
    });
    assert!(h.read_all().is_empty(), "TS.Recent − 1 is old");
    assert_eq!(h.conn.events().paws_rejected, 1);
    // A TSval 2^31 − 1 ahead is still "newer"; 2^31 ahead wraps to "older" (RFC 7323 §5.2).
    h.input(&TcpSegment {
        seq: IRS.add(2),
        payload: b"c",
        options: ts((PEER_TS + 1).wrapping_add((1 << 31) - 1)),
        ..RECV
    });
    assert_eq!(h.read_all(), b"c");
}

// ---- Keep-alive (RFC 9293 §3.8.4) ------------------------------------------------------

#[test]
fn the_peers_keepalive_probe_is_answered_with_an_ack() {
    let (mut h, nxt, _) = at_rest();
    // <SEQ=RCV.NXT-1>, without data and with Linux-incompatible BSD's one garbage byte.
    for payload in [&b""[..], b"?"] {
        h.input(&TcpSegment {
            seq: nxt.sub(1),
            payload,
            ..RECV
        });
        let out = h.output();
        assert_eq!(out.len(), 1, "answered even without keep-alive of our own");
        assert!(same(&out[0], &ack_of(ISS.add(1), nxt)));
        assert!(h.read_all().is_empty());
    }
}

#[test]
fn keepalive_never_probes_while_data_is_in_flight() {
    let mut h = in_flight();
    h.conn
        .set_keepalive(Some(KeepAlive::after(Duration::from_secs(5))));
    // The retransmission timer and the keep-alive timer run; only retransmissions go out.
    for _ in 0..6 {
        h.advance_to_timeout();
        for s in h.output() {
            assert_eq!(
                s.payload.len(),
                1000,
                "a retransmission, not a probe: {s:?}"
            );
        }
    }
    assert_eq!(h.conn.events().keepalive_probes, 0);
}

#[test]
fn a_lost_probe_is_not_a_dead_peer() {
    let mut h = Harness::established();
    h.conn.set_keepalive(Some(KeepAlive {
        idle: Duration::from_secs(60),
        interval: Duration::from_secs(5),
        probes: 3,
    }));
    h.advance(Duration::from_secs(60));
    let probe = h.output();
    assert_eq!(probe.len(), 1);
    assert_eq!(probe[0].seq, ISS, "SEG.SEQ = SND.NXT − 1");
    assert!(probe[0].payload.is_empty());
    // Two probes lost; the third answered.
    for _ in 0..2 {
        h.advance(Duration::from_secs(5));
        assert_eq!(h.output().len(), 1);
    }
    h.input(&RECV);
    assert_eq!(h.conn.state(), State::Established);
    // Quiet again: the next probe is a full idle period later.
    h.advance(Duration::from_secs(59));
    assert!(h.output().is_empty());
    h.advance(Duration::from_secs(1));
    assert_eq!(h.output().len(), 1);
}

// ---- Buffer memory (`tcp::memory`) -----------------------------------------------------

/// Send `n` in-order segments of 1000 bytes from `seq`; returns the sequence number after.
fn feed(h: &mut Harness, mut seq: SeqNum, n: usize) -> SeqNum {
    for _ in 0..n {
        h.input(&TcpSegment {
            seq,
            payload: &[1; 1000],
            ..RECV
        });
        seq = seq.add(1000);
    }
    seq
}

/// The defaults without `--rmem`'s MIN, which a connection keeps past the memory limit: the
/// limit is then exact.
fn without_rmem_floor() -> Config {
    Config {
        rmem: BufferSizes {
            min: 0,
            ..BufferSizes::RMEM
        },
        ..Config::default()
    }
}

#[test]
fn a_memory_budget_caps_what_is_held_not_the_window_offered() {
    let mut h = Harness::established_with(without_rmem_floor());
    let edge = h.conn.rcv.right_edge;
    assert_eq!(h.conn.memory(), 0, "an offered window costs nothing");
    h.conn.set_memory(10_000, false);
    assert_eq!(
        h.conn.send_capacity(),
        10_000,
        "the application may queue what the budget leaves"
    );
    // 12 segments of 1000 bytes arrive inside the window: the budget keeps 10,000 of them;
    // the rest is dropped, counted, and the connection asks to be woken when memory frees.
    feed(&mut h, IRS.add(1), 12);
    assert_eq!(h.conn.memory(), 10_000);
    assert_eq!(h.conn.events().rcv_memory_drops, 2);
    let out = h.output();
    assert!(h.conn.take_memory_starved());
    for s in &out {
        assert!(s.ack.add(u32::from(s.window)).ge(edge), "shrank: {s:?}");
    }
    assert_eq!(out.last().map(|s| s.ack), Some(IRS.add(10_001)));
    // Reading frees what was held.
    assert_eq!(h.read_all().len(), 10_000);
    assert_eq!(h.conn.memory(), 0);
    h.conn.set_memory(1 << 20, false);
    assert_eq!(h.conn.send_capacity(), h.conn.snd_buf());
}

#[test]
fn every_connection_keeps_its_minimum_buffers_past_the_memory_limit() {
    // Linux's tcp_rmem[0] / tcp_wmem[0]: guaranteed even when others hold all the memory.
    let mut h = Harness::established();
    h.conn.set_memory(0, true);
    assert_eq!(h.conn.send_capacity(), 4096, "--wmem MIN");
    feed(&mut h, IRS.add(1), 5);
    assert_eq!(h.conn.memory(), 4096, "--rmem MIN");
    assert_eq!(h.conn.events().rcv_memory_drops, 1);
    // Reading it makes room for the next 4096 bytes.
    assert_eq!(h.read_all().len(), 4096);
    let out = h.output();
    assert!(out.last().is_some_and(|s| s.window > 0), "{out:?}");
}

#[test]
fn memory_pressure_clamps_new_windows_without_moving_the_right_edge_left() {
    let mut h = Harness::established();
    let mut edge = h.conn.rcv.right_edge;
    h.conn.set_memory(1 << 20, true);
    let mut seq = IRS.add(1);
    let mut windows = Vec::new();
    for _ in 0..100 {
        h.input(&TcpSegment {
            seq,
            payload: &[7; 1000],
            ..RECV
        });
        seq = seq.add(1000);
        h.read_all();
        for s in h.output() {
            let right = s.ack.add(u32::from(s.window));
            assert!(right.ge(edge), "the right edge moved left: {s:?}");
            edge = right;
            windows.push(s.window);
        }
    }
    assert_eq!(h.conn.events().rcv_window_clamped, 1, "once per episode");
    let last = *windows.last().unwrap();
    assert!(
        u32::from(last) <= 4 * u32::from(MSS),
        "under pressure new windows are four segments: {last}"
    );
    // Pressure ends: the window opens again at once, without waiting for a read.
    h.conn.set_memory(1 << 20, false);
    let out = h.output();
    assert_eq!(out.len(), 1, "a window update");
    assert!(u32::from(out[0].window) > 4 * u32::from(MSS), "{out:?}");
}

#[test]
fn a_starved_window_is_updated_as_soon_as_memory_frees() {
    let mut h = Harness::established_with(without_rmem_floor());
    // Other connections hold all but 2000 bytes: the application reads everything, but the
    // window cannot open beyond what memory allows, and closes down to that.
    h.conn.set_memory(2000, false);
    let mut seq = IRS.add(1);
    let mut last = None;
    for _ in 0..100 {
        h.input(&TcpSegment {
            seq,
            payload: &[1; 1000],
            ..RECV
        });
        seq = seq.add(1000);
        assert_eq!(h.read_all().len(), 1000);
        if let Some(s) = h.output().pop() {
            last = Some(s.window);
        }
    }
    assert!(h.conn.take_memory_starved());
    assert!(last.unwrap() <= 2000, "{last:?}");
    // Memory frees: a window update goes out at once, with no read and no probe.
    h.conn.set_memory(1 << 20, false);
    let out = h.output();
    assert_eq!(out.len(), 1, "{out:?}");
    assert!(out[0].window > 30_000, "{out:?}");
}

#[test]
fn an_idle_connection_returns_its_buffers() {
    let mut h = Harness::established();
    assert_eq!(h.conn.allocated(), 0, "no buffer is preallocated");
    h.input(&TcpSegment {
        payload: &[5; 3000],
        ..RECV
    });
    assert!(h.conn.allocated() >= 3000);
    let data = h.read_all();
    h.conn.send(&data);
    let out = h.output();
    assert!(h.conn.allocated() > 0, "the reply is in flight");
    let last = out.last().unwrap();
    let end = last.seq.add(last.payload.len() as u32);
    h.input(&TcpSegment {
        seq: IRS.add(3001),
        ack: end,
        ..RECV
    });
    h.output();
    assert_eq!(h.conn.memory(), 0);
    assert_eq!(
        h.conn.allocated(),
        0,
        "drained and idle: the buffers are given back"
    );
}

#[test]
fn receive_autotuning_without_timestamps_grows_the_buffer_with_what_is_read() {
    // No timestamps: the receiver's RTT is the time one window takes to arrive.
    let mut h = Harness::established();
    let start = h.conn.rcv_space();
    let mut seq = IRS.add(1);
    let chunk = [3u8; 1400];
    let mut last_edge = None;
    // 10 ms between bursts of 60 segments (84 KB per "RTT"), read at once.
    for _ in 0..30 {
        for _ in 0..60 {
            h.input(&TcpSegment {
                seq,
                payload: &chunk,
                ..RECV
            });
            seq = seq.add(1400);
            h.read_all();
            for s in h.output() {
                let edge = s.ack.add(u32::from(s.window));
                assert!(last_edge.is_none_or(|e: SeqNum| edge.ge(e)));
                last_edge = Some(edge);
            }
        }
        h.now += Duration::from_millis(10);
    }
    // At least twice what is read per round trip.
    assert!(
        h.conn.rcv_space() >= 2 * 60 * 1400 && h.conn.rcv_space() > start,
        "grew from {start} to {} only",
        h.conn.rcv_space()
    );
    assert!(h.conn.rcv_space() <= h.conn.cfg.rmem.max);
}
