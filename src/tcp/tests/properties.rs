//! Property tests: random segment sequences against one connection, on a virtual clock.
//!
//! Invariants after every step: no panic; a RST is never answered with a RST; the state is
//! one of the RFC's; buffers stay within their caps; our right window edge never moves left
//! (SHLD-14); and the bytes delivered to the application are exactly the peer's stream, in
//! order (the peer's byte at stream offset i is `pattern(i)`, wherever a segment starts).

use super::*;
use proptest::prelude::*;

fn pattern(offset: u32) -> u8 {
    (offset % 251) as u8
}

#[derive(Clone, Debug)]
struct Step {
    /// Sequence number relative to RCV.NXT (or, for `far`, anywhere).
    seq_delta: i32,
    far_seq: Option<u32>,
    /// Acknowledgment relative to our SND.UNA.
    ack_delta: i32,
    flags: u8,
    len: u16,
    window: u16,
    tsval: Option<u32>,
    /// Milliseconds to advance before the segment.
    wait_ms: u16,
    /// The application reads, writes, or closes after the segment.
    app: u8,
}

fn step() -> impl Strategy<Value = Step> {
    (
        prop_oneof![-3000i32..3000, -70_000i32..70_000],
        proptest::option::weighted(0.1, any::<u32>()),
        prop_oneof![-2000i32..2000, -100_000i32..100_000],
        any::<u8>(),
        prop_oneof![0u16..10, 0u16..1500],
        any::<u16>(),
        proptest::option::of(any::<u32>()),
        prop_oneof![0u16..5, 0u16..3000],
        0u8..8,
    )
        .prop_map(
            |(seq_delta, far_seq, ack_delta, flags, len, window, tsval, wait_ms, app)| Step {
                seq_delta,
                far_seq,
                ack_delta,
                flags,
                len,
                window,
                tsval,
                wait_ms,
                app,
            },
        )
}

fn run(steps: &[Step], timestamps: bool) -> Result<(), TestCaseError> {
    let mut h = if timestamps {
        established_full().0
    } else {
        Harness::established()
    };
    let stream_start = IRS.add(1);
    let mut delivered: u32 = 0;
    let mut right_edge: Option<SeqNum> = None;
    let mut buf = vec![0u8; 1 << 16];
    for st in steps {
        h.advance(Duration::from_millis(u64::from(st.wait_ms)));
        let seq = match st.far_seq {
            Some(s) => SeqNum::new(s),
            None => h.conn.rcv.nxt.add(st.seq_delta as u32),
        };
        let payload: Vec<u8> = (0..u32::from(st.len))
            .map(|i| pattern(seq.add(i).distance_from(stream_start)))
            .collect();
        let seg = TcpSegment {
            seq,
            ack: h.conn.snd.una.add(st.ack_delta as u32),
            // Any combination of the eight control bits.
            flags: Flags(u16::from(st.flags)),
            window: st.window,
            options: TcpOptions {
                timestamps: st.tsval.map(|v| (v, 0)),
                ..TcpOptions::EMPTY
            },
            payload: &payload,
            ..RECV
        };
        let reply = h.input(&seg);
        if seg.flags.rst() {
            prop_assert!(reply.is_none(), "a RST answered with {reply:?}");
        }
        if let Some(r) = &reply {
            prop_assert!(r.flags.rst());
        }
        match st.app {
            0 | 1 => {
                let n = h.conn.recv(&mut buf);
                for (i, b) in buf.iter().take(n).enumerate() {
                    prop_assert_eq!(*b, pattern(delivered + i as u32), "stream corrupted");
                }
                delivered += n as u32;
            }
            2 => {
                h.conn.send(&[9u8; 3000]);
            }
            3 if st.wait_ms % 7 == 0 => h.conn.close(),
            _ => {}
        }
        let out = h.output();
        let rst_out = out.iter().any(|s| s.flags.rst());
        prop_assert!(
            !(seg.flags.rst() && rst_out && h.conn.reset_cause() != Some(ResetCause::Aborted)),
            "a RST provoked a RST"
        );
        prop_assert!(State::ALL.contains(&h.conn.state()));
        prop_assert!(h.conn.recv_queue() <= h.conn.rcv_space());
        prop_assert!(h.conn.rcv_space() <= h.conn.cfg.rmem.max);
        prop_assert!(h.conn.send_queue() <= h.conn.snd_buf());
        prop_assert!(h.conn.snd_buf() <= h.conn.cfg.wmem.max);
        prop_assert!(h.conn.reasm.queued_bytes() as usize <= h.conn.rcv_space());
        // The charge is exactly the bytes held.
        prop_assert_eq!(
            h.conn.memory(),
            h.conn.send_queue() + h.conn.recv_queue() + h.conn.reasm.queued_bytes() as usize
        );
        if h.conn.state().is_synchronized() {
            let shift = h.conn.opts.rcv_shift;
            for s in out.iter().filter(|s| s.flags.ack() && !s.flags.rst()) {
                let edge = s.ack.add(u32::from(s.window) << shift);
                if let Some(prev) = right_edge {
                    prop_assert!(edge.ge(prev), "window shrank: {prev:?} -> {s:?}");
                }
                right_edge = Some(edge);
            }
        }
        if h.conn.state() == State::Closed {
            break;
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn random_segments_never_break_the_invariants(steps in proptest::collection::vec(step(), 1..60)) {
        run(&steps, false)?;
    }

    #[test]
    fn random_segments_with_timestamps_never_break_the_invariants(
        steps in proptest::collection::vec(step(), 1..60)
    ) {
        run(&steps, true)?;
    }
}
