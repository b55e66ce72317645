//! Ours against a scripted peer: a hand-written peer sends crafted segments (reordered,
//! duplicated, overlapping, with ACKs withheld) as packet bytes and checks our replies.

use crate::nodes::{EndpointServer, Node};
use crate::pattern::fill;
use std::net::IpAddr;
use synack::services::ServiceKind;
use synack::tcp::{Config, Connection, SeqNum, Socket, State};
use synack::time::{Duration, Instant};
use synack::wire::{self, Flags, Packet, Quad, SEGMENT_TEMPLATE, TcpOptions, TcpSegment};

const PEER: &str = "198.18.0.1";
const US: &str = "198.18.0.2";
pub const PEER_ISN: SeqNum = SeqNum::new(0xffff_f000); // wraps during the test

/// What we sent, parsed back.
#[derive(Clone, Debug)]
pub struct Out {
    pub seq: SeqNum,
    pub ack: SeqNum,
    pub flags: Flags,
    pub payload: Vec<u8>,
}

fn parse_out(p: &[u8]) -> Out {
    match wire::parse(p).expect("we emit valid packets") {
        Packet::Tcp { seg, .. } => Out {
            seq: seg.seq,
            ack: seg.ack,
            flags: seg.flags,
            payload: seg.payload.to_vec(),
        },
        other => panic!("not TCP: {other:?}"),
    }
}

/// A scripted client of our endpoint's echo service.
pub struct EchoScript {
    pub server: EndpointServer,
    pub now: Instant,
    /// The peer's next sequence number and what it acknowledges.
    pub snd_nxt: SeqNum,
    pub rcv_nxt: SeqNum,
    /// Everything echoed back, in sequence order as acknowledged by the script.
    pub echoed: Vec<u8>,
}

impl EchoScript {
    /// Connect to echo (port 7) and complete the handshake.
    pub fn connect() -> EchoScript {
        let now = Instant::from_millis(1000);
        let mut s = EchoScript {
            server: EndpointServer::new(now, ServiceKind::Echo, [9; 16], false),
            now,
            snd_nxt: PEER_ISN,
            rcv_nxt: SeqNum::new(0),
            echoed: Vec::new(),
        };
        let out = s.send_raw(&TcpSegment {
            flags: Flags::SYN,
            options: TcpOptions {
                mss: Some(1460),
                ..TcpOptions::EMPTY
            },
            ..s.template(PEER_ISN)
        });
        assert_eq!(out.len(), 1, "{out:?}");
        assert_eq!(out[0].flags, Flags::SYN | Flags::ACK);
        assert_eq!(out[0].ack, PEER_ISN.add(1));
        s.snd_nxt = PEER_ISN.add(1);
        s.rcv_nxt = out[0].seq.add(1);
        let out = s.send_raw(&s.template(s.snd_nxt));
        assert!(out.is_empty(), "{out:?}");
        s
    }

    fn template(&self, seq: SeqNum) -> TcpSegment<'static> {
        TcpSegment {
            src_port: 40000,
            dst_port: 7,
            seq,
            ack: self.rcv_nxt,
            flags: Flags::ACK,
            window: 65535,
            ..SEGMENT_TEMPLATE
        }
    }

    /// Send one segment as packet bytes; return what the endpoint sends back at once.
    pub fn send_raw(&mut self, seg: &TcpSegment<'_>) -> Vec<Out> {
        let mut buf = vec![0; 2000];
        let (peer, us): (IpAddr, IpAddr) = (PEER.parse().unwrap(), US.parse().unwrap());
        let n = wire::emit_tcp(&mut buf, peer, us, seg).unwrap();
        let mut tx = Vec::new();
        self.server.receive(self.now, &buf[..n], &mut tx);
        self.server.poll(self.now, &mut tx);
        tx.iter().map(|p| parse_out(p)).collect()
    }

    /// Send `len` bytes of the pattern at stream offset `offset` (ACKing what we have).
    pub fn send_data(&mut self, offset: u32, len: usize) -> Vec<Out> {
        let mut data = vec![0; len];
        fill(1, u64::from(offset), &mut data);
        let seq = PEER_ISN.add(1).add(offset);
        let seg = TcpSegment {
            payload: &data,
            flags: Flags::ACK | Flags::PSH,
            ..self.template(seq)
        };
        let out = self.send_raw(&seg);
        self.take_echo(&out);
        out
    }

    /// Keep the in-order echoed bytes and move our ACK point (without sending the ACK).
    fn take_echo(&mut self, out: &[Out]) {
        for o in out {
            if o.seq == self.rcv_nxt && !o.payload.is_empty() {
                self.echoed.extend_from_slice(&o.payload);
                self.rcv_nxt = self.rcv_nxt.add(o.payload.len() as u32);
            }
        }
    }

    /// Let virtual time pass to the endpoint's next deadline; return what it sends.
    pub fn advance(&mut self) -> Vec<Out> {
        let at = self.server.poll_timeout().expect("a deadline");
        self.now = self.now.max(at);
        let mut tx = Vec::new();
        self.server.poll(self.now, &mut tx);
        let out: Vec<Out> = tx.iter().map(|p| parse_out(p)).collect();
        self.take_echo(&out);
        out
    }

    /// The highest ACK the endpoint sent in `out`.
    pub fn acked(out: &[Out]) -> Option<u32> {
        out.iter()
            .filter(|o| o.flags.ack())
            .map(|o| o.ack.distance_from(PEER_ISN.add(1)))
            .max()
    }

    pub fn expect_echo(&self, total: usize) {
        let mut want = vec![0; total];
        fill(1, 0, &mut want);
        assert_eq!(self.echoed.len(), total, "echoed length");
        assert!(
            self.echoed == want,
            "echoed bytes differ from what was sent"
        );
    }
}

/// A bare connection of ours driven segment by segment (no bytes), for the stack bugs found.
pub struct Bare {
    pub conn: Connection,
    pub now: Instant,
}

pub const OUR_ISS: SeqNum = SeqNum::new(1_000_000);

impl Bare {
    /// Our active open, established against a peer announcing `window` and MSS 1460.
    pub fn established(window: u16, cfg: Config) -> Bare {
        let now = Instant::from_millis(1000);
        let quad = Quad {
            local: "198.18.0.1:40000".parse().unwrap(),
            remote: "198.18.0.2:7".parse().unwrap(),
        };
        let mut b = Bare {
            conn: Connection::connect(now, quad, OUR_ISS, 1460, &std::sync::Arc::new(cfg)),
            now,
        };
        assert_eq!(b.output().len(), 1);
        let syn_ack = TcpSegment {
            flags: Flags::SYN | Flags::ACK,
            ack: OUR_ISS.add(1),
            options: TcpOptions {
                mss: Some(1460),
                ..TcpOptions::EMPTY
            },
            ..Bare::peer_segment(PEER_ISN, window)
        };
        assert!(b.conn.on_segment(b.now, &syn_ack).is_none());
        assert_eq!(b.conn.state(), State::Established);
        b.output();
        b
    }

    pub fn peer_segment(seq: SeqNum, window: u16) -> TcpSegment<'static> {
        TcpSegment {
            src_port: 7,
            dst_port: 40000,
            seq,
            ack: OUR_ISS.add(1),
            flags: Flags::ACK,
            window,
            ..SEGMENT_TEMPLATE
        }
    }

    /// The peer ACKs `acked` bytes of our data with `window`.
    pub fn ack(&mut self, acked: u32, window: u16) {
        let seg = TcpSegment {
            ack: OUR_ISS.add(1).add(acked),
            ..Bare::peer_segment(PEER_ISN.add(1), window)
        };
        assert!(self.conn.on_segment(self.now, &seg).is_none());
    }

    /// Our data segments as (offset, length).
    pub fn output(&mut self) -> Vec<(u32, usize)> {
        let mut out = Vec::new();
        self.conn.poll_transmit(self.now, &mut |s| {
            out.push((s.seq.distance_from(OUR_ISS.add(1)), s.payload.len()))
        });
        out
    }

    /// Jump to the next deadline, if any, and fire it.
    pub fn advance(&mut self) -> Option<Duration> {
        let at = self.conn.poll_timeout()?;
        let waited = at - self.now;
        self.now = self.now.max(at);
        self.conn.handle_timeout(self.now);
        Some(waited)
    }

    pub fn send(&mut self, n: usize) {
        let data = vec![0x5a; n];
        assert_eq!(self.conn.send(&data), n);
    }
}

#[test]
fn reordered_segments_reach_the_echo_once_and_in_order() {
    let mut s = EchoScript::connect();
    // The second segment first: nothing can be delivered, and the hole is ACKed at once.
    let out = s.send_data(1000, 1000);
    assert_eq!(EchoScript::acked(&out), Some(0), "{out:?}");
    assert!(s.echoed.is_empty());
    // The first one: at least it is delivered (with reassembly, both are).
    let out = s.send_data(0, 1000);
    let acked = EchoScript::acked(&out).expect("an ACK");
    assert!(acked == 1000 || acked == 2000, "ack {acked}");
    if acked == 1000 {
        // No reassembly yet: the peer retransmits the second segment (go-back-N).
        s.send_data(1000, 1000);
    }
    s.expect_echo(2000);
}

#[test]
fn duplicate_and_overlapping_segments_reach_the_echo_exactly_once() {
    let mut s = EchoScript::connect();
    s.send_data(0, 1000);
    let out = s.send_data(0, 1000);
    assert_eq!(
        EchoScript::acked(&out),
        Some(1000),
        "a duplicate is ACKed at once"
    );
    s.send_data(500, 1000);
    s.send_data(1200, 800);
    s.send_data(1999, 1);
    s.expect_echo(2000);
}

#[test]
fn withheld_acks_make_the_endpoint_retransmit_the_same_bytes_with_backoff() {
    let mut s = EchoScript::connect();
    s.send_data(0, 1000);
    s.expect_echo(1000);
    let echo_seq = s.rcv_nxt.sub(1000);
    // We never ACK the echo: it is retransmitted, identical, at doubling intervals.
    let mut want = vec![0; 1000];
    fill(1, 0, &mut want);
    let mut gaps = Vec::new();
    let mut last = s.now;
    for _ in 0..20 {
        if gaps.len() == 4 {
            break;
        }
        let out = s.advance();
        for o in out.iter().filter(|o| !o.payload.is_empty()) {
            assert_eq!((o.seq, &o.payload), (echo_seq, &want));
            gaps.push(s.now - last);
            last = s.now;
        }
    }
    assert_eq!(gaps.len(), 4, "retransmissions: {gaps:?}");
    for w in gaps.windows(2) {
        assert_eq!(w[1], w[0] * 2, "RFC 6298 §5.5 backoff: {gaps:?}");
    }
    // Now the ACK: nothing more is retransmitted.
    let ack = s.template(s.snd_nxt.add(1000));
    let out = s.send_raw(&ack);
    assert!(out.is_empty(), "{out:?}");
    let mut tx = Vec::new();
    s.now += Duration::from_secs(120);
    s.server.poll(s.now, &mut tx);
    assert!(
        tx.is_empty(),
        "retransmitted after the ACK: {} packets",
        tx.len()
    );
}
