//! TIME-WAIT's record against the whole connection it replaces: fed the same segments at
//! the same times, both must send the same bytes, count the same events and keep the same
//! deadline. Each rule has its story; a seeded sweep covers the combinations.

use super::TimeWait;
use crate::tcp::{Config, ConnEvents, Connection, SeqNum, Socket, State};
use crate::time::{Duration, Instant};
use crate::wire::{self, Ecn, Flags, Quad, SEGMENT_TEMPLATE, SackBlock, TcpOptions, TcpSegment};
use std::net::IpAddr;

const ISS: SeqNum = SeqNum::new(1_000_000);
/// The peer's ISN sits just below the wrap.
const IRS: SeqNum = SeqNum::new(u32::MAX - 5);
const PEER_TS: u32 = 5_000;
/// The peer's FIN (after three bytes of data) and the ACK that answers it.
const PEER_FIN: SeqNum = IRS.add(4);
const RCV_NXT: SeqNum = IRS.add(5);
const SND_NXT: SeqNum = ISS.add(2);
const TIME_WAIT: Duration = Duration::from_secs(60);

/// What the handshake negotiated.
#[derive(Clone, Copy, Debug)]
struct Setup {
    ts: bool,
    sack: bool,
    ws: bool,
    /// 0: no ECN, 1: RFC 3168, 2: AccECN.
    ecn: u8,
}

const PLAIN: Setup = Setup {
    ts: false,
    sack: false,
    ws: false,
    ecn: 0,
};
const LINUX: Setup = Setup {
    ts: true,
    sack: true,
    ws: true,
    ecn: 0,
};

fn quad() -> Quad {
    Quad {
        local: "198.18.0.2:80".parse().unwrap(),
        remote: "198.18.0.1:40000".parse().unwrap(),
    }
}

fn peer(setup: Setup, tsval: u32) -> TcpSegment<'static> {
    TcpSegment {
        src_port: 40000,
        dst_port: 80,
        seq: RCV_NXT,
        ack: SND_NXT,
        flags: Flags::ACK,
        window: 500,
        options: TcpOptions {
            timestamps: setup.ts.then_some((tsval, 1)),
            ..TcpOptions::EMPTY
        },
        ..SEGMENT_TEMPLATE
    }
}

/// A connection of `setup` that closed first: three bytes from the peer read, our FIN
/// acknowledged, the peer's FIN acknowledged: in TIME-WAIT with nothing owed.
fn time_wait_connection(setup: Setup) -> (Connection, Instant) {
    let mut now = Instant::from_millis(10_000);
    let cfg = std::sync::Arc::new(Config {
        time_wait: TIME_WAIT,
        ..Config::default()
    });
    let ecn_flags = match setup.ecn {
        1 => Flags::ECE | Flags::CWR,
        2 => Flags::AE | Flags::CWR | Flags::ECE,
        _ => Flags::NONE,
    };
    let base = peer(setup, PEER_TS);
    let syn = TcpSegment {
        seq: IRS,
        ack: SeqNum::new(0),
        flags: Flags::SYN | ecn_flags,
        window: 64240,
        options: TcpOptions {
            mss: Some(1460),
            window_scale: setup.ws.then_some(7),
            sack_permitted: setup.sack,
            timestamps: setup.ts.then_some((PEER_TS, 0)),
            ..TcpOptions::EMPTY
        },
        ..base
    };
    let mut conn = Connection::accept(now, quad(), &syn, ISS, 1460, &cfg);
    drain(&mut conn, now);
    let ace = if setup.ecn == 2 {
        Flags::NONE.with_ace(0b010)
    } else {
        Flags::NONE
    };
    let step = |conn: &mut Connection, seg: TcpSegment<'_>, now: Instant| {
        conn.on_segment(now, &seg);
        drain(conn, now);
    };
    step(
        &mut conn,
        TcpSegment {
            seq: IRS.add(1),
            ack: ISS.add(1),
            flags: Flags::ACK | ace,
            ..base
        },
        now,
    );
    now += Duration::from_millis(5);
    step(
        &mut conn,
        TcpSegment {
            seq: IRS.add(1),
            ack: ISS.add(1),
            flags: Flags::ACK | Flags::PSH | ace,
            payload: b"hey",
            ecn: if setup.ecn > 0 {
                Ecn::Ect0
            } else {
                Ecn::NotEct
            },
            ..base
        },
        now,
    );
    let mut buf = [0u8; 8];
    assert_eq!(conn.recv(&mut buf), 3);
    conn.close();
    drain(&mut conn, now);
    now += Duration::from_millis(5);
    step(
        &mut conn,
        TcpSegment {
            seq: PEER_FIN,
            ack: SND_NXT,
            flags: Flags::ACK | ace,
            ..base
        },
        now,
    );
    step(
        &mut conn,
        TcpSegment {
            seq: PEER_FIN,
            ack: SND_NXT,
            flags: Flags::FIN | Flags::ACK | ace,
            ..base
        },
        now,
    );
    assert_eq!(conn.state(), State::TimeWait);
    conn.take_events();
    (conn, now)
}

fn emit(seg: &TcpSegment<'_>) -> Vec<u8> {
    let (local, remote): (IpAddr, IpAddr) = (quad().local.ip(), quad().remote.ip());
    let mut buf = vec![0; 256];
    let n = wire::emit_tcp(&mut buf, local, remote, seg).unwrap();
    buf.truncate(n);
    buf
}

/// What the connection sends now (a challenge ACK always granted), as packets.
fn drain(conn: &mut Connection, now: Instant) -> Vec<Vec<u8>> {
    if conn.take_challenge() {
        conn.grant_challenge();
    }
    let mut out = Vec::new();
    conn.poll_transmit(now, &mut |seg| out.push(emit(seg)));
    out
}

fn drain_record(tw: &mut TimeWait, now: Instant) -> Vec<Vec<u8>> {
    if tw.take_challenge() {
        tw.grant_challenge();
    }
    let mut out = Vec::new();
    tw.transmit(now, (80, 40000), &mut |seg, _| out.push(emit(seg)));
    out
}

/// The whole connection and its record, side by side.
struct Pair {
    conn: Connection,
    tw: TimeWait,
    now: Instant,
}

impl Pair {
    fn new(setup: Setup) -> Pair {
        let (conn, now) = time_wait_connection(setup);
        let tw = conn.time_wait_record().expect("a record in TIME-WAIT");
        assert_eq!(Some(tw.deadline()), conn.poll_timeout());
        Pair { conn, tw, now }
    }

    /// Feed `seg` to both; returns what the record sends, after checking that the
    /// connection sends the same, counts the same and keeps the same deadline.
    fn input(&mut self, seg: &TcpSegment<'_>) -> Vec<Vec<u8>> {
        assert_eq!(
            self.conn.time_wait_accepts_syn(seg),
            self.tw.accepts_syn(seg),
            "reopening by {seg:?}"
        );
        self.conn.on_segment(self.now, seg);
        let mut events = ConnEvents::default();
        self.tw.on_segment(self.now, seg, TIME_WAIT, &mut events);
        let whole = drain(&mut self.conn, self.now);
        let record = drain_record(&mut self.tw, self.now);
        assert_eq!(self.conn.state(), State::TimeWait);
        assert_eq!(whole, record, "sent for {seg:?}");
        assert_eq!(self.conn.take_events(), events, "counted for {seg:?}");
        assert_eq!(self.conn.poll_timeout(), Some(self.tw.deadline()));
        record
    }

    fn advance(&mut self, d: Duration) {
        self.now += d;
    }
}

/// The (seq, ack, flags, SACK blocks, TSecr) of a packet sent.
fn fields(packet: &[u8]) -> (SeqNum, SeqNum, Flags, Vec<(SeqNum, SeqNum)>, Option<u32>) {
    match wire::parse(packet).unwrap() {
        wire::Packet::Tcp { seg, .. } => (
            seg.seq,
            seg.ack,
            seg.flags,
            seg.options
                .sack()
                .iter()
                .map(|b| (b.left, b.right))
                .collect(),
            seg.options.timestamps.map(|(_, ecr)| ecr),
        ),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_retransmitted_fin_is_acked_and_restarts_2msl() {
    for setup in [PLAIN, LINUX] {
        let mut p = Pair::new(setup);
        p.advance(Duration::from_secs(30));
        let fin = TcpSegment {
            seq: PEER_FIN,
            flags: Flags::FIN | Flags::ACK,
            ..peer(setup, PEER_TS + 3)
        };
        let out = p.input(&fin);
        assert_eq!(out.len(), 1, "re-ACKed");
        let (seq, ack, flags, _, _) = fields(&out[0]);
        assert_eq!((seq, ack, flags), (SND_NXT, RCV_NXT, Flags::ACK));
        assert_eq!(p.tw.deadline(), p.now + TIME_WAIT, "2·MSL restarted");
        // Every time: a FIN carries data for the rate limit, so none is skipped.
        assert_eq!(p.input(&fin).len(), 1);
    }
}

#[test]
fn a_retransmitted_fin_with_its_data_gets_a_dsack_block() {
    let mut p = Pair::new(LINUX);
    let out = p.input(&TcpSegment {
        seq: IRS.add(1),
        flags: Flags::FIN | Flags::ACK,
        payload: b"hey",
        ..peer(LINUX, PEER_TS + 3)
    });
    assert_eq!(out.len(), 1);
    let (_, ack, _, sack, _) = fields(&out[0]);
    assert_eq!(ack, RCV_NXT);
    assert_eq!(sack, vec![(IRS.add(1), IRS.add(4))], "RFC 2883 D-SACK");
}

#[test]
fn an_old_timestamp_is_dropped_and_acked_per_paws() {
    let mut p = Pair::new(LINUX);
    p.advance(Duration::from_secs(1));
    let old = TcpSegment {
        seq: PEER_FIN,
        flags: Flags::FIN | Flags::ACK,
        ..peer(LINUX, PEER_TS - 100)
    };
    let before = p.tw.deadline();
    let out = p.input(&old);
    assert_eq!(out.len(), 1, "ACKed");
    let (_, _, _, _, tsecr) = fields(&out[0]);
    assert_eq!(tsecr, Some(PEER_TS), "TS.Recent unchanged");
    assert_eq!(
        p.tw.deadline(),
        before,
        "dropped: the timer is not restarted"
    );
    // A bare ACK with an old timestamp: one ACK per half second (Linux's
    // tcp_oow_rate_limited), the others counted as skipped.
    let bare = peer(LINUX, PEER_TS - 100);
    assert_eq!(p.input(&bare).len(), 1);
    assert_eq!(p.input(&bare).len(), 0);
    p.advance(Duration::from_millis(600));
    assert_eq!(p.input(&bare).len(), 1);
}

#[test]
fn a_rst_at_rcv_nxt_is_ignored_per_rfc_1337_and_others_are_challenged_or_dropped() {
    for setup in [PLAIN, LINUX] {
        let mut p = Pair::new(setup);
        let rst = TcpSegment {
            flags: Flags::RST,
            ..peer(setup, PEER_TS + 1)
        };
        assert!(p.input(&rst).is_empty(), "RFC 1337");
        // In the window but not at RCV.NXT: a challenge ACK (RFC 5961 §3.2).
        let out = p.input(&TcpSegment {
            seq: RCV_NXT.add(10),
            ..rst
        });
        assert_eq!(out.len(), 1);
        assert_eq!(fields(&out[0]).2, Flags::ACK);
        // Out of the window: dropped silently.
        assert!(
            p.input(&TcpSegment {
                seq: RCV_NXT.sub(10),
                ..rst
            })
            .is_empty()
        );
    }
}

#[test]
fn a_new_syn_may_reopen_only_per_rfc_6191() {
    let p = Pair::new(LINUX);
    let syn = TcpSegment {
        seq: RCV_NXT.add(1000),
        ack: SeqNum::new(0),
        flags: Flags::SYN,
        ..peer(LINUX, PEER_TS + 1)
    };
    assert!(p.tw.accepts_syn(&syn), "newer TSval");
    let old_ts = TcpSegment {
        options: TcpOptions {
            timestamps: Some((PEER_TS - 1, 0)),
            ..TcpOptions::EMPTY
        },
        ..syn
    };
    assert!(!p.tw.accepts_syn(&old_ts), "older TSval: an old duplicate");
    let p = Pair::new(PLAIN);
    let syn = TcpSegment {
        options: TcpOptions::EMPTY,
        ..syn
    };
    assert!(p.tw.accepts_syn(&syn), "above RCV.NXT");
    assert!(
        !p.tw.accepts_syn(&TcpSegment {
            seq: RCV_NXT.sub(1),
            ..syn
        }),
        "below RCV.NXT"
    );
    assert!(
        !p.tw.accepts_syn(&TcpSegment {
            flags: Flags::SYN | Flags::ACK,
            ..syn
        }),
        "a SYN,ACK"
    );
    assert_eq!(p.tw.snd_nxt(), SND_NXT, "the new ISS lies above it (MAY-2)");
}

#[test]
fn a_syn_that_does_not_reopen_gets_a_challenge_ack() {
    let mut p = Pair::new(LINUX);
    let out = p.input(&TcpSegment {
        seq: RCV_NXT.add(5),
        ack: SeqNum::new(0),
        flags: Flags::SYN,
        ..peer(LINUX, PEER_TS + 1)
    });
    assert_eq!(out.len(), 1);
    assert_eq!(fields(&out[0]).0, SND_NXT);
}

#[test]
fn other_segments_get_an_ack_or_nothing_as_the_connection_gives() {
    let mut p = Pair::new(LINUX);
    let base = peer(LINUX, PEER_TS + 1);
    // An ACK of what we never sent: an ACK.
    assert_eq!(
        p.input(&TcpSegment {
            ack: SND_NXT.add(1),
            ..base
        })
        .len(),
        1
    );
    // A duplicate ACK in the window: nothing.
    assert!(p.input(&base).is_empty());
    // Data after the FIN: ignored.
    assert!(
        p.input(&TcpSegment {
            payload: b"late",
            ..base
        })
        .is_empty()
    );
    // A segment beyond the window: an ACK.
    assert_eq!(
        p.input(&TcpSegment {
            seq: RCV_NXT.add(1 << 30),
            payload: b"far",
            ..base
        })
        .len(),
        1
    );
}

#[test]
fn ecn_marks_and_counters_stay_those_of_the_connection() {
    for ecn in [1, 2] {
        let setup = Setup { ecn, ..LINUX };
        let mut p = Pair::new(setup);
        let base = peer(setup, PEER_TS + 1);
        // A CE mark: RFC 3168 echoes ECE at once; AccECN counts it in the ACE field.
        let out = p.input(&TcpSegment {
            ecn: Ecn::Ce,
            payload: b"x",
            ..base
        });
        let fin = TcpSegment {
            seq: PEER_FIN,
            flags: Flags::FIN | Flags::ACK,
            ..base
        };
        let out2 = p.input(&fin);
        assert_eq!(out2.len(), 1);
        if ecn == 1 {
            assert_eq!(out.len(), 1, "the first CE mark is ACKed at once");
            assert!(fields(&out2[0]).2.ece(), "ECE until CWR");
        }
        p.input(&TcpSegment {
            flags: Flags::ACK | Flags::ECE,
            ..base
        });
    }
}

#[test]
fn the_record_answers_every_segment_as_the_connection_does() {
    // A seeded sweep over segments TIME-WAIT may meet: any sequence number near and far,
    // any flags, old and new timestamps, SACK blocks, ECN marks, time passing.
    let mut rng = 0x5eed_u64;
    let mut next = move |n: u64| {
        rng = rng
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (rng >> 33) % n
    };
    let setups = [
        PLAIN,
        LINUX,
        Setup { ecn: 1, ..LINUX },
        Setup { ecn: 2, ..LINUX },
        Setup { ts: false, ..LINUX },
        Setup { ecn: 2, ..PLAIN },
    ];
    for round in 0..300 {
        let setup = setups[round % setups.len()];
        let mut p = Pair::new(setup);
        let mut tsval = PEER_TS;
        for _ in 0..25 {
            match next(4) {
                0 => p.advance(Duration::from_millis(next(700))),
                1 => p.advance(Duration::from_millis(next(5))),
                _ => {}
            }
            let seq = match next(6) {
                0 => RCV_NXT,
                1 => PEER_FIN,
                2 => RCV_NXT.sub(next(5) as u32),
                3 => RCV_NXT.add(next(70_000) as u32),
                4 => RCV_NXT.add(1 << 31),
                _ => IRS.add(1),
            };
            let ack = match next(5) {
                0 => SND_NXT.add(1),
                1 => SND_NXT.sub(next(200_000) as u32),
                _ => SND_NXT,
            };
            let mut flags = Flags::NONE;
            for (bit, odds) in [
                (Flags::ACK, 9),
                (Flags::FIN, 3),
                (Flags::SYN, 8),
                (Flags::RST, 8),
                (Flags::ECE, 6),
                (Flags::CWR, 6),
                (Flags::AE, 8),
            ] {
                if (bit == Flags::ACK && next(10) < odds) || (bit != Flags::ACK && next(odds) == 0)
                {
                    flags |= bit;
                }
            }
            tsval = match next(4) {
                0 => tsval.wrapping_sub(next(300) as u32),
                _ => tsval.wrapping_add(next(50) as u32),
            };
            let mut options = TcpOptions {
                timestamps: (setup.ts && next(8) != 0).then_some((tsval, 7)),
                ..TcpOptions::EMPTY
            };
            if next(5) == 0 {
                let left = SND_NXT.sub(next(3000) as u32);
                options.sack_blocks[0] = SackBlock {
                    left,
                    right: left.add(next(2000) as u32),
                };
                options.sack_count = 1;
            }
            let payload: &[u8] = match next(3) {
                0 => b"data",
                _ => &[],
            };
            let ecn = [Ecn::NotEct, Ecn::Ect0, Ecn::Ect1, Ecn::Ce][next(4) as usize];
            p.input(&TcpSegment {
                seq,
                ack,
                flags,
                window: next(3000) as u16,
                options,
                payload,
                ecn,
                ..peer(setup, tsval)
            });
        }
    }
}
