//! The connection's story, one transition at a time, on a virtual clock.
//! Segments are written from templates with struct-update syntax, as smoltcp's tests are.

use super::*;
use crate::time::{Duration, Instant};
use crate::wire::{Flags, Quad, SEGMENT_TEMPLATE, TcpOptions, TcpSegment};

const ISS: SeqNum = SeqNum::new(1_000_000);
/// The peer's ISN sits just below the wrap, so every test crosses 2^32.
const IRS: SeqNum = SeqNum::new(u32::MAX - 5);
const MSS: u16 = 1460;

/// A segment from the peer.
const RECV: TcpSegment<'static> = TcpSegment {
    src_port: 40000,
    dst_port: 7,
    seq: IRS.add(1),
    ack: ISS.add(1),
    flags: Flags::ACK,
    window: 64000,
    ..SEGMENT_TEMPLATE
};

const SYN: TcpSegment<'static> = TcpSegment {
    seq: IRS,
    ack: SeqNum::new(0),
    flags: Flags::SYN,
    options: TcpOptions {
        mss: Some(1400),
        ..TcpOptions::EMPTY
    },
    ..RECV
};

/// A segment we sent, owned.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Sent {
    seq: SeqNum,
    ack: SeqNum,
    flags: Flags,
    window: u16,
    mss: Option<u16>,
    payload: Vec<u8>,
    opts: TcpOptions,
}

struct Harness {
    conn: Connection,
    now: Instant,
}

fn quad() -> Quad {
    Quad {
        local: "198.18.0.2:7".parse().unwrap(),
        remote: "198.18.0.1:40000".parse().unwrap(),
    }
}

impl Harness {
    /// A connection in SYN-RECEIVED whose SYN,ACK has been collected and checked.
    fn syn_received() -> Harness {
        Harness::syn_received_with(Config::default())
    }

    fn syn_received_with(cfg: Config) -> Harness {
        let now = Instant::from_millis(10_000);
        let conn = Connection::accept(now, quad(), &SYN, ISS, MSS, &std::sync::Arc::new(cfg));
        let mut h = Harness { conn, now };
        let out = h.output();
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].flags, Flags::SYN | Flags::ACK);
        h
    }

    /// A connection in ESTABLISHED with nothing outstanding.
    fn established() -> Harness {
        Harness::established_with(Config::default())
    }

    fn established_with(cfg: Config) -> Harness {
        let mut h = Harness::syn_received_with(cfg);
        h.input(&RECV);
        assert_eq!(h.conn.state(), State::Established);
        assert!(h.output().is_empty());
        h
    }

    fn input(&mut self, seg: &TcpSegment<'_>) -> Option<TcpSegment<'static>> {
        self.conn.on_segment(self.now, seg)
    }

    fn output(&mut self) -> Vec<Sent> {
        if self.conn.take_challenge() {
            self.conn.grant_challenge();
        }
        let mut out = Vec::new();
        self.conn.poll_transmit(self.now, &mut |s| {
            out.push(Sent {
                seq: s.seq,
                ack: s.ack,
                flags: s.flags,
                window: s.window,
                mss: s.options.mss,
                payload: s.payload.to_vec(),
                opts: s.options,
            })
        });
        out
    }

    /// Leave quick-ACK mode, as if the connection's first segments had been ACKed
    /// (`quickack.rs`): for the tests of delayed ACKs.
    fn spend_quick_acks(&mut self) {
        self.conn.quick_ack.spend(self.now);
    }

    /// Jump the virtual clock to the next deadline and fire it.
    fn advance_to_timeout(&mut self) -> Duration {
        let at = self.conn.poll_timeout().expect("a timer is armed");
        let waited = at - self.now;
        self.now = at;
        self.conn.handle_timeout(at);
        waited
    }

    fn advance(&mut self, d: Duration) {
        self.now += d;
        self.conn.handle_timeout(self.now);
    }

    fn read_all(&mut self) -> Vec<u8> {
        let mut buf = vec![0; 1 << 20];
        let n = self.conn.recv(&mut buf);
        buf.truncate(n);
        buf
    }
}

fn ack_of(seq: SeqNum, ack: SeqNum) -> Sent {
    Sent {
        seq,
        ack,
        flags: Flags::ACK,
        window: 0,
        mss: None,
        payload: vec![],
        opts: TcpOptions::EMPTY,
    }
}

/// Compare ignoring the window field.
fn same(a: &Sent, b: &Sent) -> bool {
    (a.seq, a.ack, a.flags, &a.payload) == (b.seq, b.ack, b.flags, &b.payload)
}

// ---- Handshake -------------------------------------------------------------------------

#[test]
fn listen_syn_gives_syn_ack_with_our_mss_and_the_peers_taken() {
    let now = Instant::ZERO;
    let mut conn = Connection::accept(
        now,
        quad(),
        &SYN,
        ISS,
        MSS,
        &std::sync::Arc::new(Config::default()),
    );
    let mut out = vec![];
    conn.poll_transmit(now, &mut |s| {
        out.push((s.seq, s.ack, s.flags, s.options.mss))
    });
    assert_eq!(
        out,
        vec![(ISS, IRS.add(1), Flags::SYN | Flags::ACK, Some(MSS))]
    );
    assert_eq!(conn.state(), State::SynReceived);
    assert_eq!(conn.info().send_mss, 1400);
}

#[test]
fn syn_received_duplicate_syn_resends_same_synack() {
    let mut h = Harness::syn_received();
    h.input(&SYN);
    let out = h.output();
    assert_eq!(out.len(), 1);
    assert_eq!((out[0].seq, out[0].flags), (ISS, Flags::SYN | Flags::ACK));
    assert_eq!(h.conn.state(), State::SynReceived);
}

#[test]
fn syn_received_unanswered_synack_backs_off_then_gives_up() {
    let mut h = Harness::syn_received();
    let mut waits = vec![];
    for _ in 0..5 {
        waits.push(h.advance_to_timeout().as_secs());
        let out = h.output();
        assert_eq!(out.len(), 1);
        assert_eq!((out[0].seq, out[0].flags), (ISS, Flags::SYN | Flags::ACK));
    }
    assert_eq!(waits, vec![1, 2, 4, 8, 16]);
    h.advance_to_timeout();
    assert_eq!(h.conn.state(), State::Closed);
    assert_eq!(h.conn.reset_cause(), Some(ResetCause::TimedOut));
    assert!(h.output().is_empty());
}

#[test]
fn syn_received_final_ack_with_data_delivers_it() {
    let mut h = Harness::syn_received();
    h.input(&TcpSegment {
        payload: b"hello",
        flags: Flags::ACK | Flags::PSH,
        ..RECV
    });
    assert_eq!(h.conn.state(), State::Established);
    assert_eq!(h.read_all(), b"hello");
}

#[test]
fn syn_received_bad_ack_is_answered_with_rst_at_its_ack() {
    let mut h = Harness::syn_received();
    let rst = h
        .input(&TcpSegment {
            ack: ISS.add(100),
            ..RECV
        })
        .expect("a reset");
    assert_eq!((rst.seq, rst.flags), (ISS.add(100), Flags::RST));
    assert_eq!(h.conn.state(), State::SynReceived);
}

#[test]
fn syn_received_exact_rst_returns_to_listen_quietly() {
    let mut h = Harness::syn_received();
    h.input(&TcpSegment {
        flags: Flags::RST,
        ..RECV
    });
    assert_eq!(h.conn.state(), State::Closed);
    assert_eq!(h.conn.reset_cause(), None);
    assert!(h.output().is_empty());
}

#[test]
fn syn_received_new_syn_with_other_isn_returns_to_listen() {
    let mut h = Harness::syn_received();
    h.input(&TcpSegment {
        seq: IRS.add(1),
        ..SYN
    });
    assert_eq!(h.conn.state(), State::Closed);
}

// ---- Segment acceptance and resets (RFC 9293 §3.10.7.4, RFC 5961) ------------------------

#[test]
fn established_exact_rst_aborts() {
    let mut h = Harness::established();
    h.input(&TcpSegment {
        flags: Flags::RST,
        ..RECV
    });
    assert_eq!(h.conn.state(), State::Closed);
    assert_eq!(h.conn.reset_cause(), Some(ResetCause::PeerReset));
}

#[test]
fn established_in_window_rst_gets_challenge_ack() {
    let mut h = Harness::established();
    h.input(&TcpSegment {
        seq: IRS.add(100),
        flags: Flags::RST,
        ..RECV
    });
    assert_eq!(h.conn.state(), State::Established);
    let out = h.output();
    assert_eq!(out.len(), 1);
    assert!(same(&out[0], &ack_of(ISS.add(1), IRS.add(1))));
}

#[test]
fn established_out_of_window_rst_is_dropped_silently() {
    let mut h = Harness::established();
    for seq in [IRS, IRS.add(1 + 65535), IRS.sub(1000)] {
        h.input(&TcpSegment {
            seq,
            flags: Flags::RST,
            ..RECV
        });
    }
    assert_eq!(h.conn.state(), State::Established);
    assert!(h.output().is_empty());
}

#[test]
fn established_syn_gets_challenge_ack_and_connection_lives() {
    let mut h = Harness::established();
    h.input(&TcpSegment {
        seq: IRS.add(10),
        ..SYN
    });
    assert_eq!(h.conn.state(), State::Established);
    let out = h.output();
    assert_eq!(out.len(), 1);
    assert!(same(&out[0], &ack_of(ISS.add(1), IRS.add(1))));
}

#[test]
fn established_unacceptable_segment_gets_ack_of_rcv_nxt() {
    let mut h = Harness::established();
    h.input(&TcpSegment {
        seq: IRS.add(1 + 70_000),
        payload: b"far",
        ..RECV
    });
    let out = h.output();
    assert_eq!(out.len(), 1);
    assert!(same(&out[0], &ack_of(ISS.add(1), IRS.add(1))));
    assert!(h.read_all().is_empty());
}

#[test]
fn established_ack_of_unsent_data_is_acked_and_its_data_dropped() {
    let mut h = Harness::established();
    h.input(&TcpSegment {
        ack: ISS.add(500),
        payload: b"evil",
        ..RECV
    });
    assert!(h.read_all().is_empty());
    let out = h.output();
    assert_eq!(out.len(), 1);
    assert!(same(&out[0], &ack_of(ISS.add(1), IRS.add(1))));
}

#[test]
fn established_ack_too_old_is_dropped_with_an_ack() {
    let mut h = Harness::established();
    h.input(&TcpSegment {
        ack: ISS.sub(200_000),
        payload: b"old",
        ..RECV
    });
    assert!(h.read_all().is_empty());
    assert_eq!(h.output().len(), 1);
}

// ---- Receiving data --------------------------------------------------------------------

#[test]
fn the_first_segments_are_acked_at_once_then_every_second() {
    // Quick-ACK mode (Linux's): a lone first segment is not held for the delayed-ACK timer,
    // nor are the next ones, up to 16; then RFC 9293's delayed ACK (SHLD-19) applies.
    let mut h = Harness::established();
    let mut acked_at_once = 0;
    for k in 0..20u32 {
        h.input(&TcpSegment {
            seq: IRS.add(1 + 100 * k),
            payload: &[7; 100],
            ..RECV
        });
        if h.output().len() == 1 {
            acked_at_once += 1;
        }
    }
    assert_eq!(acked_at_once, 16);
    // A silence longer than the RTO: quick ACKs again.
    h.advance(Duration::from_secs(2));
    h.output();
    h.input(&TcpSegment {
        seq: IRS.add(2001),
        payload: &[7; 100],
        ..RECV
    });
    assert_eq!(h.output().len(), 1);
}

#[test]
fn in_order_data_is_delivered_and_acked_after_a_delay() {
    let mut h = Harness::established();
    h.spend_quick_acks();
    h.input(&TcpSegment {
        payload: b"abc",
        ..RECV
    });
    assert!(
        h.output().is_empty(),
        "a lone small segment waits for the delayed ACK"
    );
    let waited = h.advance_to_timeout();
    assert!(waited < Duration::from_millis(500), "MUST-40");
    let out = h.output();
    assert_eq!(out.len(), 1);
    assert!(same(&out[0], &ack_of(ISS.add(1), IRS.add(4))));
    assert_eq!(h.read_all(), b"abc");
}

#[test]
fn every_second_full_sized_segment_is_acked_at_once() {
    let mut h = Harness::established();
    h.spend_quick_acks();
    let data = vec![7u8; usize::from(MSS)];
    h.input(&TcpSegment {
        payload: &data,
        ..RECV
    });
    assert!(h.output().is_empty());
    h.input(&TcpSegment {
        seq: IRS.add(1 + u32::from(MSS)),
        payload: &data,
        ..RECV
    });
    let out = h.output();
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].ack, IRS.add(1 + 2 * u32::from(MSS)));
}

#[test]
fn out_of_order_data_is_not_delivered_and_gets_an_immediate_ack() {
    let mut h = Harness::established();
    h.input(&TcpSegment {
        seq: IRS.add(4),
        payload: b"def",
        ..RECV
    });
    let out = h.output();
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].ack, IRS.add(1));
    assert!(h.read_all().is_empty());
}

#[test]
fn overlapping_data_is_delivered_exactly_once() {
    let mut h = Harness::established();
    h.input(&TcpSegment {
        payload: b"abc",
        ..RECV
    });
    h.input(&TcpSegment {
        seq: IRS.add(2),
        payload: b"bcdef",
        ..RECV
    });
    h.input(&TcpSegment {
        payload: b"abc",
        ..RECV
    });
    assert_eq!(h.read_all(), b"abcdef");
    let out = h.output();
    assert_eq!(out.last().map(|s| s.ack), Some(IRS.add(7)));
}

#[test]
fn window_shrinks_as_data_waits_and_reopens_with_an_update_when_read() {
    let cap = 16 * 1024;
    let mut h = Harness::established_with(Config {
        rmem: BufferSizes::fixed(cap as usize),
        ..Config::default()
    });
    let chunk = vec![1u8; usize::from(MSS)];
    let mut seq = IRS.add(1);
    let mut last_right = None;
    for _ in 0..10 {
        h.input(&TcpSegment {
            seq,
            payload: &chunk,
            ..RECV
        });
        seq = seq.add(u32::from(MSS));
        for s in h.output() {
            let right = s.ack.add(u32::from(s.window));
            if let Some(prev) = last_right {
                assert!(!right.lt(prev), "SHLD-14: the window never shrinks");
            }
            last_right = Some(right);
        }
    }
    assert_eq!(
        last_right,
        Some(IRS.add(1 + cap)),
        "the right edge stays put"
    );
    assert_eq!(h.read_all().len(), 10 * usize::from(MSS));
    let out = h.output();
    assert_eq!(out.len(), 1, "a window update follows the read");
    assert_eq!(u32::from(out[0].window), cap);
}

// ---- Sending data ----------------------------------------------------------------------

#[test]
fn data_is_sent_in_mss_segments_within_the_peer_window() {
    let mut h = Harness::established();
    h.input(&TcpSegment {
        window: 3000,
        ..RECV
    });
    let data = vec![9u8; 5000];
    assert_eq!(h.conn.send(&data), 5000);
    let out = h.output();
    let lens: Vec<usize> = out.iter().map(|s| s.payload.len()).collect();
    assert_eq!(
        lens,
        vec![1400, 1400],
        "MSS 1400, window 3000: the 200-byte tail waits (SWS)"
    );
    assert_eq!(out[0].seq, ISS.add(1));
    assert_eq!(out[1].seq, ISS.add(1401));
    h.input(&TcpSegment {
        ack: ISS.add(2801),
        window: 3000,
        ..RECV
    });
    let out = h.output();
    let lens: Vec<usize> = out.iter().map(|s| s.payload.len()).collect();
    assert_eq!(lens, vec![1400, 800]);
    assert!(out[1].flags.psh());
}

#[test]
fn lost_data_is_retransmitted_with_backoff_and_karn_ignores_its_rtt() {
    let mut h = Harness::established();
    h.conn.send(b"ping");
    assert_eq!(h.output().len(), 1);
    let mut waits = vec![];
    for _ in 0..3 {
        waits.push(h.advance_to_timeout().as_millis());
        let out = h.output();
        assert_eq!(out.len(), 1);
        assert_eq!(
            (out[0].seq, &out[0].payload[..]),
            (ISS.add(1), &b"ping"[..])
        );
    }
    // The SYN,ACK's RTT was 0 (acked at once), so RTO = 200 ms min, then doubles.
    assert_eq!(waits, vec![200, 400, 800]);
    h.now += Duration::from_millis(10);
    h.input(&TcpSegment {
        ack: ISS.add(5),
        ..RECV
    });
    assert_eq!(
        h.conn.poll_timeout(),
        None,
        "all acknowledged: timer stopped"
    );
    assert_eq!(
        h.conn.rtt.srtt(),
        Some(Duration::ZERO),
        "no sample from a retransmission"
    );
}

#[test]
fn rtt_is_measured_from_data_sent_once() {
    let mut h = Harness::established();
    h.conn.send(b"x");
    h.output();
    h.now += Duration::from_millis(30);
    h.input(&TcpSegment {
        ack: ISS.add(2),
        ..RECV
    });
    // First sample was the SYN,ACK's 0 ms; SRTT = 7/8 * 0 + 1/8 * 30.
    assert_eq!(h.conn.rtt.srtt(), Some(Duration::from_micros(3750)));
}

#[test]
fn zero_window_is_probed_and_probing_never_aborts_while_answered() {
    let mut h = Harness::established();
    h.input(&TcpSegment { window: 0, ..RECV });
    h.conn.send(b"data");
    assert!(h.output().is_empty(), "nothing fits a zero window");
    for _ in 0..12 {
        h.advance_to_timeout();
        let out = h.output();
        assert_eq!(out.len(), 1);
        assert_eq!(
            (out[0].seq, out[0].payload.len()),
            (ISS, 0),
            "SEQ=SND.UNA-1, no data"
        );
        // The peer answers every probe, still with a zero window.
        h.input(&TcpSegment { window: 0, ..RECV });
        h.output();
    }
    assert_eq!(h.conn.state(), State::Established);
    h.input(&TcpSegment {
        window: 1000,
        ..RECV
    });
    let out = h.output();
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].payload, b"data");
}

#[test]
fn unanswered_retransmissions_give_up_after_r2() {
    let mut h = Harness::established();
    h.conn.send(b"lost");
    h.output();
    let start = h.now;
    let mut retransmissions = 0;
    while h.conn.state() != State::Closed {
        h.advance_to_timeout();
        retransmissions += h.output().len();
        assert!(h.now - start < Duration::from_secs(1200));
    }
    assert!(
        h.now - start >= Duration::from_secs(100),
        "R2 is at least 100 s"
    );
    assert_eq!(
        retransmissions, 15,
        "and 15 retransmissions, like tcp_retries2"
    );
    assert_eq!(h.conn.reset_cause(), Some(ResetCause::TimedOut));
}

// ---- Closing ---------------------------------------------------------------------------

/// An idle connection's record is packed (issue 23), but not in the states a round trip
/// ends: there the next segment would unpack it at once (issue 21).
#[test]
fn the_record_is_packed_while_idle_but_not_while_a_handshake_or_close_ends() {
    let mut h = Harness::syn_received();
    assert_eq!(h.conn.state(), State::SynReceived);
    assert!(!h.conn.trace().is_packed(), "SYN-RECEIVED");
    h.input(&RECV);
    assert!(h.output().is_empty());
    assert!(h.conn.trace().is_packed(), "idle ESTABLISHED");
    h.input(&TcpSegment {
        flags: Flags::FIN | Flags::ACK,
        ..RECV
    });
    h.output();
    assert!(h.conn.trace().is_packed(), "idle CLOSE-WAIT");
    h.conn.close();
    h.output();
    assert_eq!(h.conn.state(), State::LastAck);
    assert!(!h.conn.trace().is_packed(), "LAST-ACK");
}

#[test]
fn passive_close_goes_through_close_wait_and_last_ack() {
    let mut h = Harness::established();
    h.input(&TcpSegment {
        flags: Flags::FIN | Flags::ACK,
        ..RECV
    });
    assert_eq!(h.conn.state(), State::CloseWait);
    assert!(h.conn.peer_closed());
    let out = h.output();
    assert!(same(&out[0], &ack_of(ISS.add(1), IRS.add(2))));
    h.conn.send(b"bye");
    h.conn.close();
    assert_eq!(h.conn.state(), State::LastAck);
    let out = h.output();
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].flags, Flags::ACK | Flags::PSH | Flags::FIN);
    assert_eq!(out[0].payload, b"bye");
    h.input(&TcpSegment {
        seq: IRS.add(2),
        ack: ISS.add(5),
        ..RECV
    });
    assert_eq!(h.conn.state(), State::Closed);
    assert_eq!(h.conn.reset_cause(), None);
}

#[test]
fn active_close_goes_through_fin_wait_and_time_wait() {
    let mut h = Harness::established();
    h.conn.close();
    assert_eq!(h.conn.state(), State::FinWait1);
    let out = h.output();
    assert_eq!(
        (out[0].seq, out[0].flags),
        (ISS.add(1), Flags::FIN | Flags::ACK)
    );
    h.input(&TcpSegment {
        ack: ISS.add(2),
        ..RECV
    });
    assert_eq!(h.conn.state(), State::FinWait2);
    h.input(&TcpSegment {
        ack: ISS.add(2),
        flags: Flags::FIN | Flags::ACK,
        ..RECV
    });
    assert_eq!(h.conn.state(), State::TimeWait);
    let out = h.output();
    assert!(same(&out[0], &ack_of(ISS.add(2), IRS.add(2))));
    let waited = h.advance_to_timeout();
    assert_eq!(waited, Duration::from_secs(60), "2·MSL");
    assert_eq!(h.conn.state(), State::Closed);
}

/// Close first and take the peer's FIN,ACK: TIME-WAIT, with our ACK of that FIN still to be
/// collected. Returns the FIN, to be retransmitted.
fn into_time_wait(h: &mut Harness) -> TcpSegment<'static> {
    h.conn.close();
    h.output();
    let fin = TcpSegment {
        ack: ISS.add(2),
        flags: Flags::FIN | Flags::ACK,
        ..RECV
    };
    h.input(&fin);
    assert_eq!(h.conn.state(), State::TimeWait);
    fin
}

#[test]
fn time_wait_reacks_a_retransmitted_fin_and_restarts_its_timer() {
    let mut h = Harness::established();
    let fin = into_time_wait(&mut h);
    h.output();
    h.advance(Duration::from_secs(30));
    h.input(&fin);
    let out = h.output();
    assert_eq!(out.len(), 1);
    assert!(same(&out[0], &ack_of(ISS.add(2), IRS.add(2))));
    assert_eq!(h.conn.poll_timeout(), Some(h.now + Duration::from_secs(60)));
}

#[test]
fn time_wait_ignores_a_rst_per_rfc_1337() {
    let mut h = Harness::established();
    h.conn.close();
    h.output();
    h.input(&TcpSegment {
        ack: ISS.add(2),
        flags: Flags::FIN | Flags::ACK,
        ..RECV
    });
    h.input(&TcpSegment {
        seq: IRS.add(2),
        flags: Flags::RST,
        ..RECV
    });
    assert_eq!(h.conn.state(), State::TimeWait);
}

#[test]
fn simultaneous_close_goes_through_closing() {
    let mut h = Harness::established();
    h.conn.close();
    h.output();
    // The peer's FIN crosses ours: it does not acknowledge our FIN.
    h.input(&TcpSegment {
        flags: Flags::FIN | Flags::ACK,
        ..RECV
    });
    assert_eq!(h.conn.state(), State::Closing);
    h.output();
    h.input(&TcpSegment {
        seq: IRS.add(2),
        ack: ISS.add(2),
        ..RECV
    });
    assert_eq!(h.conn.state(), State::TimeWait);
}

#[test]
fn fin_is_retransmitted_until_acked() {
    let mut h = Harness::established();
    h.conn.close();
    h.output();
    for _ in 0..3 {
        h.advance_to_timeout();
        let out = h.output();
        assert_eq!(out.len(), 1);
        assert_eq!(
            (out[0].seq, out[0].flags),
            (ISS.add(1), Flags::FIN | Flags::ACK)
        );
    }
}

#[test]
fn half_close_lets_us_keep_sending_after_the_peers_fin() {
    let mut h = Harness::established();
    h.input(&TcpSegment {
        flags: Flags::FIN | Flags::ACK,
        payload: b"req",
        ..RECV
    });
    assert_eq!(h.conn.state(), State::CloseWait);
    assert_eq!(h.read_all(), b"req");
    assert!(h.conn.peer_closed());
    assert_eq!(h.conn.send(b"reply"), 5);
    let out = h.output();
    assert_eq!(out[0].payload, b"reply");
    assert_eq!(out[0].ack, IRS.add(5));
}

#[test]
fn closing_with_unread_data_sends_rst() {
    let mut h = Harness::established();
    h.input(&TcpSegment {
        payload: b"unread",
        ..RECV
    });
    h.conn.close();
    let out = h.output();
    assert_eq!(out.len(), 1);
    // RST,ACK as Linux's tcp_send_active_reset: ACK=RCV.NXT (after the unread 6 bytes).
    assert_eq!(
        (out[0].seq, out[0].flags, out[0].ack),
        (ISS.add(1), Flags::RST | Flags::ACK, IRS.add(7))
    );
    assert_eq!(h.conn.state(), State::Closed);
}

#[test]
fn half_close_with_unread_data_sends_fin_and_keeps_receiving() {
    // RFC 9293 §3.10.4: after CLOSE "the user ... may continue to RECEIVE". A relay whose
    // upstream ended its output half-closes with the client's bytes still queued: a FIN,
    // not the RST of closing_with_unread_data_sends_rst.
    let mut h = Harness::established();
    h.input(&TcpSegment {
        payload: b"unread",
        ..RECV
    });
    h.conn.shutdown_write();
    let out = h.output();
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].seq, ISS.add(1));
    assert!(out[0].flags.fin() && !out[0].flags.rst(), "{:?}", out[0]);
    assert_eq!(h.conn.state(), State::FinWait1);
    assert_eq!(h.conn.recv_peek(), b"unread");
    h.conn.recv_consume(2);
    assert_eq!(h.read_all(), b"read");
    h.input(&TcpSegment {
        seq: IRS.add(7),
        ack: ISS.add(2),
        payload: b"more",
        ..RECV
    });
    assert_eq!(h.conn.state(), State::FinWait2);
    assert_eq!(h.read_all(), b"more");
}

#[test]
fn fin_before_missing_data_is_not_taken() {
    let mut h = Harness::established();
    h.input(&TcpSegment {
        seq: IRS.add(4),
        flags: Flags::FIN | Flags::ACK,
        ..RECV
    });
    assert_eq!(h.conn.state(), State::Established);
    assert_eq!(h.output()[0].ack, IRS.add(1));
}

// ---- Active open (RFC 9293 §3.10.7.3) --------------------------------------------------

/// The peer's SYN,ACK to our SYN.
const SYN_ACK: TcpSegment<'static> = TcpSegment {
    seq: IRS,
    ack: ISS.add(1),
    flags: Flags::SYN.union(Flags::ACK),
    options: TcpOptions {
        mss: Some(1400),
        ..TcpOptions::EMPTY
    },
    ..RECV
};

fn syn_sent() -> Harness {
    let now = Instant::from_millis(10_000);
    let conn = Connection::connect(
        now,
        quad(),
        ISS,
        MSS,
        &std::sync::Arc::new(Config::default()),
    );
    let mut h = Harness { conn, now };
    let out = h.output();
    assert_eq!(out.len(), 1);
    assert_eq!(
        (out[0].seq, out[0].flags, out[0].mss),
        (ISS, Flags::SYN, Some(MSS))
    );
    assert_eq!(h.conn.state(), State::SynSent);
    h
}

#[test]
fn syn_sent_syn_ack_establishes_and_is_acked() {
    let mut h = syn_sent();
    h.input(&SYN_ACK);
    assert_eq!(h.conn.state(), State::Established);
    assert_eq!(h.conn.info().send_mss, 1400);
    let out = h.output();
    assert_eq!(out.len(), 1);
    assert!(same(&out[0], &ack_of(ISS.add(1), IRS.add(1))));
}

#[test]
fn syn_sent_rst_with_acceptable_ack_is_connection_refused() {
    let mut h = syn_sent();
    h.input(&TcpSegment {
        seq: SeqNum::new(0),
        flags: Flags::RST | Flags::ACK,
        ..RECV
    });
    assert_eq!(h.conn.state(), State::Closed);
    assert_eq!(h.conn.reset_cause(), Some(ResetCause::Refused));
}

#[test]
fn syn_sent_rst_with_bad_ack_or_no_ack_is_ignored() {
    let mut h = syn_sent();
    for seg in [
        TcpSegment {
            ack: ISS.add(9),
            flags: Flags::RST | Flags::ACK,
            ..RECV
        },
        TcpSegment {
            flags: Flags::RST,
            ..RECV
        },
    ] {
        assert_eq!(h.input(&seg), None);
    }
    assert_eq!(h.conn.state(), State::SynSent);
}

#[test]
fn syn_sent_bad_ack_is_answered_with_rst() {
    let mut h = syn_sent();
    let rst = h
        .input(&TcpSegment {
            ack: ISS,
            ..SYN_ACK
        })
        .expect("a reset");
    assert_eq!((rst.seq, rst.flags), (ISS, Flags::RST));
    assert_eq!(h.conn.state(), State::SynSent);
}

#[test]
fn syn_sent_retransmits_syn_with_backoff_then_gives_up() {
    let mut h = syn_sent();
    let mut waits = vec![];
    while h.conn.state() == State::SynSent {
        waits.push(h.advance_to_timeout().as_secs());
        for s in h.output() {
            assert_eq!((s.seq, s.flags), (ISS, Flags::SYN));
        }
    }
    assert_eq!(waits, vec![1, 2, 4, 8, 16, 32, 60]);
    assert_eq!(h.conn.reset_cause(), Some(ResetCause::TimedOut));
}

#[test]
fn simultaneous_open_goes_through_syn_received() {
    let mut h = syn_sent();
    // The peer's SYN crosses ours.
    h.input(&SYN);
    assert_eq!(h.conn.state(), State::SynReceived);
    let out = h.output();
    assert_eq!(out.len(), 1);
    assert_eq!(
        (out[0].seq, out[0].ack, out[0].flags),
        (ISS, IRS.add(1), Flags::SYN | Flags::ACK)
    );
    // Then its SYN,ACK to our SYN arrives.
    h.input(&SYN_ACK);
    assert_eq!(h.conn.state(), State::Established);
}

#[test]
fn challenge_acks_wait_for_the_rate_limiters_grant() {
    let mut h = Harness::established();
    h.input(&TcpSegment {
        seq: IRS.add(100),
        flags: Flags::RST,
        ..RECV
    });
    assert!(h.conn.take_challenge());
    let mut out = vec![];
    h.conn.poll_transmit(h.now, &mut |s| out.push(s.flags));
    assert!(out.is_empty(), "a refused challenge ACK is not sent");
    assert!(!h.conn.take_challenge());
}

#[test]
fn orphaned_fin_wait_2_is_reset_after_the_fin_timeout() {
    let mut h = Harness::established();
    h.conn.close();
    h.conn.orphan(h.now);
    h.output();
    h.input(&TcpSegment {
        ack: ISS.add(2),
        ..RECV
    });
    assert_eq!(h.conn.state(), State::FinWait2);
    assert_eq!(h.advance_to_timeout(), Duration::from_secs(60));
    let out = h.output();
    assert_eq!(out.len(), 1);
    assert_eq!(
        (out[0].seq, out[0].flags),
        (ISS.add(2), Flags::RST | Flags::ACK)
    );
    assert_eq!(h.conn.state(), State::Closed);
}

// ---- Options: window scaling, timestamps, SACK-permitted (RFC 7323, RFC 2018) -----------

const PEER_TS: u32 = 7_000;

/// A Linux-like SYN: MSS, SACK-permitted, timestamps, window scale 7.
const FULL_SYN: TcpSegment<'static> = TcpSegment {
    options: TcpOptions {
        mss: Some(1460),
        window_scale: Some(7),
        sack_permitted: true,
        timestamps: Some((PEER_TS, 0)),
        ..TcpOptions::EMPTY
    },
    ..SYN
};

fn ts(tsval: u32) -> TcpOptions {
    TcpOptions {
        timestamps: Some((tsval, 0)),
        ..TcpOptions::EMPTY
    }
}

/// ESTABLISHED after a handshake that negotiated everything.
fn established_full() -> (Harness, Sent) {
    let now = Instant::from_millis(10_000);
    let conn = Connection::accept(
        now,
        quad(),
        &FULL_SYN,
        ISS,
        MSS,
        &std::sync::Arc::new(Config::default()),
    );
    let mut h = Harness { conn, now };
    let synack = h.output().remove(0);
    h.input(&TcpSegment {
        options: ts(PEER_TS + 1),
        ..RECV
    });
    assert_eq!(h.conn.state(), State::Established);
    (h, synack)
}

#[test]
fn syn_ack_offers_each_option_only_because_the_peer_did() {
    let (h, synack) = established_full();
    assert_eq!(synack.opts.mss, Some(MSS));
    // A receive buffer that may grow to 32 MiB needs a shift of 10 to fit the 16-bit field (as Linux picks it).
    assert_eq!(synack.opts.window_scale, Some(10));
    assert!(synack.opts.sack_permitted);
    assert_eq!(synack.opts.timestamps.map(|(_, ecr)| ecr), Some(PEER_TS));
    assert_eq!(synack.window, u16::MAX, "a SYN's window is never scaled");
    let info = h.conn.info();
    assert_eq!(info.window_scale, Some((10, 7)));
    assert!(info.sack_permitted && info.timestamps);

    // The plain SYN of the other tests gets none of them.
    let plain = Harness::syn_received();
    assert_eq!(plain.conn.info().window_scale, None);
    assert!(!plain.conn.info().timestamps);
}

#[test]
fn the_peers_window_is_scaled_and_a_shift_above_14_is_clamped() {
    let (mut h, _) = established_full();
    h.input(&TcpSegment {
        window: 100,
        options: ts(PEER_TS + 2),
        ..RECV
    });
    assert_eq!(h.conn.snd.wnd, 100 << 7);
    let syn = TcpSegment {
        options: TcpOptions {
            window_scale: Some(15),
            ..FULL_SYN.options
        },
        ..FULL_SYN
    };
    let conn = Connection::accept(
        h.now,
        quad(),
        &syn,
        ISS,
        MSS,
        &std::sync::Arc::new(Config::default()),
    );
    assert_eq!(conn.opts.snd_shift, 14);
}

#[test]
fn our_scaled_window_never_moves_its_right_edge_left() {
    let (mut h, _) = established_full();
    let mut seq = IRS.add(1);
    let mut right = None;
    let mut tsval = PEER_TS + 1;
    // Odd-sized segments, so that RCV.NXT is rarely a multiple of the scale unit.
    for len in [1usize, 7, 1000, 1459, 3, 1460, 999, 13, 1460, 1460] {
        let data = vec![0u8; len];
        tsval += 1;
        h.input(&TcpSegment {
            seq,
            payload: &data,
            options: ts(tsval),
            ..RECV
        });
        seq = seq.add(len as u32);
        h.advance(Duration::from_millis(100));
        for s in h.output() {
            let edge = s.ack.add(u32::from(s.window) << 3);
            if let Some(prev) = right {
                assert!(
                    !edge.lt(prev),
                    "right edge moved left: {prev:?} -> {edge:?}"
                );
            }
            right = Some(edge);
        }
    }
    assert!(right.is_some());
}

#[test]
fn every_segment_carries_timestamps_echoing_ts_recent() {
    let (mut h, _) = established_full();
    h.input(&TcpSegment {
        payload: b"x",
        options: ts(PEER_TS + 50),
        ..RECV
    });
    let out = h.output();
    assert_eq!(
        out[0].opts.timestamps.map(|(_, ecr)| ecr),
        Some(PEER_TS + 50)
    );
}

#[test]
fn acks_for_paws_rejected_bare_acks_are_limited_to_one_per_half_second() {
    // Linux's tcp_oow_rate_limited (TCPACKSkippedPAWS): a bare ACK with an old timestamp is
    // answered at most once per 500 ms; one carrying data always.
    let (mut h, _) = established_full();
    let old_ack = TcpSegment {
        options: ts(PEER_TS - 100),
        ..RECV
    };
    h.input(&old_ack);
    assert_eq!(h.output().len(), 1);
    h.input(&old_ack);
    assert!(h.output().is_empty(), "a second answer within 500 ms");
    h.input(&TcpSegment {
        payload: b"old",
        ..old_ack
    });
    assert_eq!(h.output().len(), 1, "data is always answered");
    h.now += Duration::from_millis(500);
    h.input(&old_ack);
    assert_eq!(h.output().len(), 1);
    let events = h.conn.take_events();
    assert_eq!((events.paws_rejected, events.paws_acks_skipped), (4, 1));
}

#[test]
fn paws_drops_an_old_timestamp_with_an_ack_and_delivers_nothing() {
    let (mut h, _) = established_full();
    h.input(&TcpSegment {
        payload: b"old",
        options: ts(PEER_TS - 100),
        ..RECV
    });
    assert!(h.read_all().is_empty());
    let out = h.output();
    assert_eq!(out.len(), 1);
    assert!(same(&out[0], &ack_of(ISS.add(1), IRS.add(1))));
    assert_eq!(h.conn.paws_drops, 1);
    // A RST is exempt from PAWS (RFC 7323 §5.3 R1).
    h.input(&TcpSegment {
        flags: Flags::RST,
        options: ts(PEER_TS - 100),
        ..RECV
    });
    assert_eq!(h.conn.state(), State::Closed);
}

#[test]
fn a_bad_ack_segment_never_updates_ts_recent() {
    let (mut h, _) = established_full();
    // An ACK of unsent data with a far-future TSval: dropped, and TS.Recent untouched.
    h.input(&TcpSegment {
        ack: ISS.add(1000),
        options: ts(PEER_TS + 1_000_000),
        ..RECV
    });
    h.output();
    // So the next genuine segment is not rejected by PAWS.
    h.input(&TcpSegment {
        payload: b"ok",
        options: ts(PEER_TS + 5),
        ..RECV
    });
    assert_eq!(h.read_all(), b"ok");
    assert_eq!(h.conn.ts_recent, PEER_TS + 5);
}

#[test]
fn active_open_offers_every_option_and_uses_what_comes_back() {
    let mut h = syn_sent();
    let syn = {
        let conn = Connection::connect(
            h.now,
            quad(),
            ISS,
            MSS,
            &std::sync::Arc::new(Config::default()),
        );
        let mut out = vec![];
        let mut c = conn;
        c.poll_transmit(h.now, &mut |s| out.push(s.options));
        out.remove(0)
    };
    assert_eq!(syn.window_scale, Some(10));
    assert!(syn.sack_permitted);
    assert_eq!(syn.timestamps.map(|(_, ecr)| ecr), Some(0));
    // The peer answers with window scaling only.
    h.input(&TcpSegment {
        options: TcpOptions {
            mss: Some(1400),
            window_scale: Some(2),
            ..TcpOptions::EMPTY
        },
        ..SYN_ACK
    });
    let info = h.conn.info();
    assert_eq!(info.window_scale, Some((10, 2)));
    assert!(!info.timestamps && !info.sack_permitted);
}

#[test]
fn nagle_holds_a_second_small_write_until_the_first_is_acked() {
    let mut h = Harness::established();
    h.conn.send(b"a");
    assert_eq!(
        h.output().len(),
        1,
        "nothing in flight: the first small write goes at once"
    );
    h.conn.send(b"b");
    assert!(
        h.output().is_empty(),
        "a small segment is outstanding: hold"
    );
    h.conn.send(b"c");
    assert!(h.output().is_empty());
    h.input(&TcpSegment {
        ack: ISS.add(2),
        ..RECV
    });
    let out = h.output();
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].payload, b"bc", "coalesced");
}

#[test]
fn nagle_does_not_hold_the_tail_of_a_large_write() {
    let mut h = Harness::established();
    h.conn.send(&vec![1u8; 1400 * 2 + 100]);
    let lens: Vec<usize> = h.output().iter().map(|s| s.payload.len()).collect();
    assert_eq!(lens, vec![1400, 1400, 100]);
}

#[test]
fn without_nagle_every_small_write_goes_at_once() {
    let mut h = Harness::established_with(Config {
        nagle: false,
        ..Config::default()
    });
    h.conn.send(b"a");
    h.output();
    h.conn.send(b"b");
    assert_eq!(h.output().len(), 1);
}

// ---- Reassembly, SACK, congestion control (issue 3) -------------------------------------

/// ESTABLISHED with SACK (and no timestamps, to keep segment sizes round), MSS 1400.
fn established_sack() -> Harness {
    established_sack_with(Config::default())
}

fn established_sack_with(cfg: Config) -> Harness {
    let syn = TcpSegment {
        options: TcpOptions {
            mss: Some(1400),
            sack_permitted: true,
            ..TcpOptions::EMPTY
        },
        ..SYN
    };
    let now = Instant::from_millis(10_000);
    let conn = Connection::accept(now, quad(), &syn, ISS, MSS, &std::sync::Arc::new(cfg));
    let mut h = Harness { conn, now };
    h.output();
    h.input(&RECV);
    assert!(h.conn.info().sack_permitted);
    h
}

#[test]
fn out_of_order_segments_are_reassembled_and_sacked() {
    let mut h = established_sack();
    let seg = |off: u32, data: &'static [u8]| TcpSegment {
        seq: IRS.add(1 + off),
        payload: data,
        ..RECV
    };
    h.input(&seg(6, b"ghi"));
    let out = h.output();
    assert_eq!(out[0].ack, IRS.add(1), "a duplicate ACK at once");
    let sack: Vec<_> = out[0]
        .opts
        .sack()
        .iter()
        .map(|b| (b.left, b.right))
        .collect();
    assert_eq!(sack, vec![(IRS.add(7), IRS.add(10))]);
    h.input(&seg(3, b"def"));
    let out = h.output();
    let sack: Vec<_> = out[0]
        .opts
        .sack()
        .iter()
        .map(|b| (b.left, b.right))
        .collect();
    assert_eq!(
        sack,
        vec![(IRS.add(4), IRS.add(10))],
        "merged, most recent first"
    );
    assert!(h.read_all().is_empty());
    h.input(&seg(0, b"abc"));
    assert_eq!(h.read_all(), b"abcdefghi");
    let out = h.output();
    assert_eq!(out[0].ack, IRS.add(10), "the hole is filled: ACK at once");
    assert!(out[0].opts.sack().is_empty());
}

#[test]
fn a_fin_beyond_a_hole_is_processed_once_the_hole_is_filled() {
    let mut h = established_sack();
    h.input(&TcpSegment {
        seq: IRS.add(4),
        payload: b"def",
        flags: Flags::ACK | Flags::FIN,
        ..RECV
    });
    assert_eq!(h.conn.state(), State::Established);
    h.input(&TcpSegment {
        payload: b"abc",
        ..RECV
    });
    assert_eq!(h.conn.state(), State::CloseWait);
    assert_eq!(h.read_all(), b"abcdef");
    assert!(h.conn.peer_closed());
    assert_eq!(h.output()[0].ack, IRS.add(8));
}

/// The peer ACKs `ack` and SACKs the 1400-byte segments `from..to` of our data.
fn sack_segments(h: &mut Harness, ack: SeqNum, from: u32, to: u32) {
    let seg = |k: u32| ISS.add(1 + 1400 * k);
    let mut opts = TcpOptions::EMPTY;
    opts.sack_blocks[0] = crate::wire::SackBlock {
        left: seg(from),
        right: seg(to),
    };
    opts.sack_count = 1;
    h.input(&TcpSegment {
        ack,
        options: opts,
        ..RECV
    });
}

/// Send `n` MSS-sized segments' worth of data and return what went out.
fn send_segments(h: &mut Harness, n: usize) -> Vec<Sent> {
    h.conn.send(&vec![0x42; n * 1400]);
    h.output()
}

#[test]
fn the_initial_window_is_ten_segments() {
    let mut h = established_sack();
    let out = send_segments(&mut h, 20);
    assert_eq!(
        out.len(),
        10,
        "RFC 6928: IW = min(10 MSS, max(2 MSS, 14600))"
    );
}

/// PSH on new data as Linux sets it (docs/PACKETDRILL.md, "PSH on new data"): every second
/// segment of a cwnd-limited burst (its smallest TSO packet carries PSH), and the segment
/// that ends the data; not the odd last segment of a burst the window cuts short.
#[test]
fn psh_goes_on_every_second_segment_of_a_burst_and_on_the_end_of_the_data() {
    let mut h = established_sack();
    let out = send_segments(&mut h, 20);
    let psh: Vec<bool> = out.iter().map(|s| s.flags.psh()).collect();
    assert_eq!(out.len(), 10);
    assert_eq!(
        psh,
        [
            false, true, false, true, false, true, false, true, false, true
        ],
        "the initial window in two-segment packets, each with PSH"
    );
    let mut h = established_sack();
    let out = send_segments(&mut h, 3);
    let psh: Vec<bool> = out.iter().map(|s| s.flags.psh()).collect();
    assert_eq!(psh, [false, true, true], "the last segment ends the data");
}

#[test]
fn three_duplicate_acks_trigger_a_fast_retransmit_before_the_timer() {
    let mut h = Harness::established();
    let out = send_segments(&mut h, 6);
    assert_eq!(out.len(), 6);
    // Segment 1 is lost; segments 2..4 each produce a duplicate ACK.
    for _ in 0..3 {
        h.input(&RECV);
    }
    let out = h.output();
    assert!(!out.is_empty());
    assert_eq!(out[0].seq, ISS.add(1), "SND.UNA is retransmitted");
    assert_eq!(out[0].payload.len(), 1400);
    assert_eq!(h.conn.retransmissions(), 1);
    // The endpoint's counters see it through the connection's events, once.
    assert_eq!(h.conn.take_events().retransmissions, 1);
    assert_eq!(h.conn.take_events().retransmissions, 0);
    assert_eq!(h.conn.retransmissions(), 1, "the total for `status` stays");
}

#[test]
fn sack_recovery_retransmits_only_the_holes() {
    let mut h = established_sack();
    let out = send_segments(&mut h, 8);
    assert_eq!(out.len(), 8);
    let seg = |k: u32| ISS.add(1 + 1400 * k);
    // Segments 0 and 3 are lost; the peer SACKs 1..3 and 4..8 over three ACKs.
    for right in [seg(2), seg(3), seg(8)] {
        let mut opts = TcpOptions::EMPTY;
        let blocks = if right == seg(8) {
            vec![(seg(4), seg(8)), (seg(1), seg(3))]
        } else {
            vec![(seg(1), right)]
        };
        for (i, (l, r)) in blocks.into_iter().enumerate() {
            opts.sack_blocks[i] = crate::wire::SackBlock { left: l, right: r };
            opts.sack_count += 1;
        }
        h.input(&TcpSegment {
            options: opts,
            ..RECV
        });
    }
    let out = h.output();
    let seqs: Vec<SeqNum> = out
        .iter()
        .filter(|s| !s.payload.is_empty())
        .map(|s| s.seq)
        .collect();
    assert!(seqs.contains(&seg(0)), "the first hole: {seqs:?}");
    assert!(seqs.contains(&seg(3)), "the second hole: {seqs:?}");
    for k in [1, 2, 4, 5, 6, 7] {
        assert!(
            !seqs.contains(&seg(k)),
            "SACKed segment {k} resent: {seqs:?}"
        );
    }
}

#[test]
fn a_timeout_collapses_the_congestion_window_to_one_segment() {
    let mut h = established_sack();
    let out = send_segments(&mut h, 10);
    assert_eq!(out.len(), 10);
    // First the tail loss probe (RFC 8985 §7: the last segment again), then the RTO.
    h.advance_to_timeout();
    let probe = h.output();
    assert_eq!(probe.len(), 1);
    assert_eq!(probe[0].seq, ISS.add(1 + 9 * 1400), "the last segment");
    assert_eq!(h.conn.events().loss_probes, 1);
    h.advance_to_timeout();
    assert_eq!(h.conn.events().rto_expirations, 1);
    let out = h.output();
    assert_eq!(out.len(), 1, "cwnd = 1 SMSS after an RTO");
    assert_eq!(out[0].seq, ISS.add(1));
    assert_eq!(h.conn.cwnd(), 1400);
    // Its ACK opens the window again: slow start sends two more.
    h.input(&TcpSegment {
        ack: ISS.add(1401),
        ..RECV
    });
    let out = h.output();
    assert_eq!(out.len(), 2);
    assert_eq!(out[0].seq, ISS.add(1401));
}

#[test]
fn a_half_closed_connection_that_still_reads_never_times_out_in_fin_wait_2() {
    let mut h = Harness::established();
    h.conn.close();
    h.output();
    h.input(&TcpSegment {
        ack: ISS.add(2),
        ..RECV
    });
    assert_eq!(h.conn.state(), State::FinWait2);
    assert_eq!(
        h.conn.poll_timeout(),
        None,
        "no orphan timer: the application may read on"
    );
    // Once the application is gone, the orphan timer runs.
    h.conn.orphan(h.now);
    assert_eq!(h.conn.poll_timeout(), Some(h.now + Duration::from_secs(60)));
}

#[test]
fn an_ack_on_a_retransmitted_segment_still_updates_the_window() {
    let mut h = Harness::established();
    h.conn.send(&vec![1u8; 4000]);
    h.output();
    // The peer's newest data segment (seq +100) sets SND.WL1 high...
    h.input(&TcpSegment {
        seq: IRS.add(101),
        payload: b"x",
        ..RECV
    });
    // ...then it retransmits older data (seq +1) whose ACK advances SND.UNA and whose window
    // shrank: the right edge must follow what the peer now offers, not SND.UNA + old window.
    h.input(&TcpSegment {
        seq: IRS.add(1),
        ack: ISS.add(1401),
        window: 100,
        payload: b"y",
        ..RECV
    });
    assert_eq!(h.conn.snd.wnd, 100);
}

#[test]
fn pure_acks_stay_inside_a_window_the_peer_has_shrunk() {
    let mut h = Harness::established();
    h.input(&TcpSegment {
        window: 2800,
        ..RECV
    });
    h.conn.send(&[7u8; 2800]);
    assert_eq!(h.output().len(), 2);
    // The peer dropped our second segment for want of memory: it ACKs only the first, with a
    // zero window whose right edge is now below our SND.NXT.
    h.input(&TcpSegment {
        ack: ISS.add(1401),
        window: 0,
        ..RECV
    });
    // Its data must still be acknowledged by a segment it will accept: SEQ = its right edge.
    h.input(&TcpSegment {
        ack: ISS.add(1401),
        window: 0,
        payload: b"data",
        ..RECV
    });
    h.now += Duration::from_millis(50);
    h.conn.handle_timeout(h.now);
    let out = h.output();
    let ack = out
        .iter()
        .find(|s| s.payload.is_empty() && s.ack == IRS.add(5));
    assert_eq!(ack.map(|s| s.seq), Some(ISS.add(1401)));
}
mod edges;
mod labels;
mod properties;
mod recovery;
mod rfc_edges;

// ---- Segmentation offload ----------------------------------------------------------------

/// With `gso_max`, a bulk sender emits super-segments of whole MSS-sized segments (the tail
/// of the data excepted) once 64 KiB are acknowledged and the peer's window is large, and
/// wire-sized segments before.
#[test]
fn super_segments_come_after_64_kib_and_hold_whole_segments() {
    let mut h = super_segment_sender(4, MSS);
    let mss = usize::from(MSS);
    let data = vec![5u8; 600_000];
    assert_eq!(h.conn.send(&data), data.len());
    let (acked, supers) = send_all_acking(&mut h, data.len(), 256_000, |acked, len| {
        if acked < 64 * 1024 {
            assert!(
                len <= mss,
                "no super-segment before 64 KiB are acked: {len}"
            );
        }
    });
    assert_eq!(acked, data.len(), "everything was sent and acknowledged");
    assert!(supers > 0, "super-segments were sent");
}

/// A peer whose window never reaches 64 KiB (a small receiver, a crafted peer without
/// window scaling) gets only wire-sized segments, offload or not.
#[test]
fn a_small_window_peer_gets_no_super_segments() {
    assert_eq!(supers_to_window(0, 65535, usize::from(MSS)), 0);
}

/// A window just past 64 KiB (where Linux's receive window stands a few ACKs into a bulk
/// download) is enough for super-segments.
#[test]
fn a_window_just_past_64_kib_gets_super_segments() {
    assert!(
        supers_to_window(4, 70_000, 70_000) > 0,
        "super-segments were sent"
    );
}

/// Sends 300,000 bytes with offload to a peer of window scale `shift` that keeps offering
/// `window`, checking that no segment exceeds `max_len`; returns how many were
/// super-segments.
fn supers_to_window(shift: u8, window: u32, max_len: usize) -> usize {
    let mut h = super_segment_sender(shift, MSS);
    let data = vec![5u8; 300_000];
    assert_eq!(h.conn.send(&data), data.len());
    let (acked, supers) = send_all_acking(&mut h, data.len(), window, |_, len| {
        assert!(
            len <= max_len,
            "a segment of {len} bytes to a {window}-byte window"
        );
    });
    assert_eq!(acked, data.len());
    supers
}

/// A peer that asked for segments smaller than our own MSS (a clamped MSS, TCP_MAXSEG) gets
/// them one by one, as it asked, even with a large window.
#[test]
fn a_peer_with_a_smaller_mss_gets_no_super_segments() {
    let mut h = super_segment_sender(4, 1400);
    let data = vec![5u8; 600_000];
    assert_eq!(h.conn.send(&data), data.len());
    let (acked, supers) = send_all_acking(&mut h, data.len(), 256_000, |_, len| {
        assert!(len <= 1400, "a segment of {len} bytes to MSS 1400");
    });
    assert_eq!(acked, data.len());
    assert_eq!(supers, 0);
}

/// An established connection with segmentation offload, a 1 MiB send buffer, and the peer's
/// window scale `shift` and MSS `peer_mss` from its SYN (ours is `MSS`).
fn super_segment_sender(shift: u8, peer_mss: u16) -> Harness {
    let cfg = Config {
        gso_max: crate::wire::gso::MAX_PAYLOAD,
        wmem: BufferSizes::fixed(1 << 20),
        ..Config::default()
    };
    let now = Instant::from_millis(10_000);
    let syn = TcpSegment {
        options: TcpOptions {
            mss: Some(peer_mss),
            window_scale: (shift > 0).then_some(shift),
            ..TcpOptions::EMPTY
        },
        ..SYN
    };
    let conn = Connection::accept(now, quad(), &syn, ISS, MSS, &std::sync::Arc::new(cfg));
    let mut h = Harness { conn, now };
    assert_eq!(h.output().len(), 1);
    h.input(&RECV);
    assert_eq!(h.conn.state(), State::Established);
    h
}

/// Send until `total` bytes are acknowledged, ACKing each batch at once with `window` bytes
/// of window; `check(acked_before, len)` sees every segment. Returns the bytes acknowledged
/// and the number of super-segments (segments above the effective MSS).
fn send_all_acking(
    h: &mut Harness,
    total: usize,
    window: u32,
    mut check: impl FnMut(usize, usize),
) -> (usize, usize) {
    let mss = usize::from(h.conn.segment_size());
    let shift = u32::from(h.conn.opts.snd_shift);
    let mut acked = 0usize;
    let mut supers = 0;
    for _ in 0..1000 {
        let out = h.output();
        if out.is_empty() {
            break;
        }
        let mut end = ISS.add(1);
        for s in &out {
            let len = s.payload.len();
            check(acked, len);
            if len > mss {
                supers += 1;
                let tail = s.seq.add(len as u32) == ISS.add(1 + total as u32);
                assert!(len % mss == 0 || tail, "a super-segment of {len} bytes");
                assert!(len <= crate::wire::gso::MAX_PAYLOAD as usize);
            }
            end = s.seq.add(len as u32);
        }
        acked = end.distance_from(ISS.add(1)) as usize;
        h.input(&TcpSegment {
            ack: end,
            window: u16::try_from(window >> shift).unwrap_or(u16::MAX),
            ..RECV
        });
    }
    (acked, supers)
}

/// A super-segment from the peer (TSO/GRO) stands for many segments: it is ACKed at once.
#[test]
fn a_super_segment_from_the_peer_is_acked_at_once() {
    let mut h = Harness::established();
    let data = vec![3u8; 10 * usize::from(MSS)];
    h.input(&TcpSegment {
        payload: &data,
        ..RECV
    });
    let out = h.output();
    assert_eq!(out.len(), 1, "an immediate ACK");
    assert_eq!(out[0].ack, IRS.add(1 + data.len() as u32));
    assert_eq!(h.read_all(), data);
}

#[test]
fn time_wait_drops_a_fin_with_an_old_timestamp_per_paws_and_answers_with_an_ack() {
    // Issue 23's rules for TIME-WAIT: PAWS (RFC 7323 §5) still holds there. A duplicate FIN
    // whose TSval is older than TS.Recent is dropped and answered with an ACK, and the state
    // stays TIME-WAIT (Linux: tcp_timewait_state_process, paws_reject: TCP_TW_ACK).
    let (mut h, _) = established_full();
    h.conn.close();
    h.output();
    let fin = TcpSegment {
        ack: ISS.add(2),
        flags: Flags::FIN | Flags::ACK,
        options: ts(PEER_TS + 10),
        ..RECV
    };
    h.input(&fin);
    assert_eq!(h.conn.state(), State::TimeWait);
    h.output();
    h.advance(Duration::from_secs(30));
    h.input(&TcpSegment {
        options: ts(PEER_TS - 100),
        ..fin
    });
    let out = h.output();
    assert_eq!(out.len(), 1, "answered with an ACK");
    assert_eq!((out[0].seq, out[0].ack), (ISS.add(2), IRS.add(2)));
    assert_eq!(h.conn.state(), State::TimeWait);
    assert_eq!(h.conn.take_events().paws_rejected, 1);
    // A RST is exempt from PAWS, and TIME-WAIT ignores it (RFC 1337).
    h.input(&TcpSegment {
        seq: IRS.add(2),
        flags: Flags::RST,
        options: ts(PEER_TS - 100),
        ..RECV
    });
    assert_eq!(h.conn.state(), State::TimeWait);
    // Its timer still runs out, and the record goes.
    h.advance_to_timeout();
    assert_eq!(h.conn.state(), State::Closed);
}
