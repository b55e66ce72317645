//! The endpoint as the kernel's clients see it: real packet bytes in, real packet bytes out,
//! on a virtual clock.

use super::*;
use crate::seqnum::SeqNum;
use crate::wire::{Flags, SEGMENT_TEMPLATE, TcpOptions};
use std::net::IpAddr;

const US4: &str = "198.18.0.2";
const PEER4: &str = "198.18.0.1";
const US6: &str = "2001:2::2";
const PEER6: &str = "2001:2::1";
const PEER_ISN: SeqNum = SeqNum::new(4_000_000_000);

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// A segment from the peer's port 40000.
const FROM_PEER: TcpSegment<'static> = TcpSegment {
    src_port: 40000,
    dst_port: 7,
    seq: PEER_ISN,
    window: 64240,
    ..SEGMENT_TEMPLATE
};

/// What the endpoint sent, parsed back.
#[derive(Debug, Clone)]
struct Out {
    src: IpAddr,
    dst: IpAddr,
    seq: SeqNum,
    ack: SeqNum,
    flags: Flags,
    /// SEG.WND, unscaled.
    window: u16,
    mss: Option<u16>,
    fastopen: Option<crate::wire::FastOpenCookie>,
    payload: Vec<u8>,
}

struct Net {
    ep: Endpoint,
    now: Instant,
    peer: IpAddr,
    us: IpAddr,
}

impl Net {
    fn new(peer: &str, us: &str) -> Net {
        let cfg = EndpointConfig {
            addrs: vec![ip(US4), ip(US6)],
            listeners: vec![(7, ServiceKind::Echo), (80, ServiceKind::Http)],
            mtu: 1500,
            time_wait: Duration::from_secs(1),
            ..EndpointConfig::default()
        };
        let now = Instant::from_millis(5_000);
        Net {
            ep: Endpoint::new(cfg, [3; 16], now),
            now,
            peer: ip(peer),
            us: ip(us),
        }
    }

    fn v4() -> Net {
        Net::new(PEER4, US4)
    }

    /// Deliver raw bytes, then poll, and return what came out.
    fn raw(&mut self, packet: &[u8]) -> Vec<Out> {
        let mut tx: Vec<Vec<u8>> = Vec::new();
        self.ep.receive(self.now, packet, &mut tx);
        self.ep.poll(self.now, &mut tx);
        tx.iter().map(|p| parse_out(p)).collect()
    }

    fn send(&mut self, seg: &TcpSegment<'_>) -> Vec<Out> {
        let mut buf = vec![0; 65536];
        let n = wire::emit_tcp(&mut buf, self.peer, self.us, seg).unwrap();
        self.raw(&buf[..n])
    }

    /// Advance the virtual clock to the endpoint's next deadline and poll.
    fn advance(&mut self) -> Vec<Out> {
        let at = self.ep.poll_timeout().expect("a deadline");
        self.now = self.now.max(at);
        let mut tx: Vec<Vec<u8>> = Vec::new();
        self.ep.poll(self.now, &mut tx);
        tx.iter().map(|p| parse_out(p)).collect()
    }

    /// Complete a handshake on `port`; returns our ISS.
    fn connect(&mut self, port: u16) -> SeqNum {
        let out = self.send(&TcpSegment {
            dst_port: port,
            flags: Flags::SYN,
            options: TcpOptions {
                mss: Some(1460),
                ..TcpOptions::EMPTY
            },
            ..FROM_PEER
        });
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].flags, Flags::SYN | Flags::ACK);
        let iss = out[0].seq;
        let out = self.send(&TcpSegment {
            dst_port: port,
            seq: PEER_ISN.add(1),
            ack: iss.add(1),
            flags: Flags::ACK,
            ..FROM_PEER
        });
        assert!(out.is_empty());
        iss
    }

    /// On an echo connection made by `connect(7)`: send "hi" and check it is echoed.
    fn send_hi(&mut self, iss: SeqNum) {
        let out = self.send(&TcpSegment {
            dst_port: 7,
            seq: PEER_ISN.add(1),
            ack: iss.add(1),
            flags: Flags::ACK,
            payload: b"hi",
            ..FROM_PEER
        });
        assert_eq!(out.len(), 1, "the echo");
    }

    /// Then acknowledge the echo; what came out.
    fn ack_hi(&mut self, iss: SeqNum) -> Vec<Out> {
        self.send(&TcpSegment {
            dst_port: 7,
            seq: PEER_ISN.add(3),
            ack: iss.add(3),
            flags: Flags::ACK,
            ..FROM_PEER
        })
    }

    /// Connect to the HTTP service and send the start of a request, which waits for the
    /// rest (so only a delayed ACK is due); returns our ISS and the peer's next sequence
    /// number. The request goes a byte at a time until the connection's first segments,
    /// which are ACKed at once (quick-ACK mode, `tcp/quickack.rs`), are past.
    fn partial_request(&mut self) -> (SeqNum, SeqNum) {
        let iss = self.connect(80);
        let mut seq = PEER_ISN.add(1);
        for &b in b"GET / HTTP/1.0\r\nX-Pad: 0123456789012345678901234567890123456789" {
            let out = self.send(&TcpSegment {
                dst_port: 80,
                seq,
                ack: iss.add(1),
                flags: Flags::ACK,
                payload: &[b],
                ..FROM_PEER
            });
            seq = seq.add(1);
            if out.is_empty() {
                return (iss, seq);
            }
        }
        panic!("every byte of the request was ACKed at once");
    }
}

fn parse_out(p: &[u8]) -> Out {
    match wire::parse(p).expect("we emit valid packets") {
        Packet::Tcp { src, dst, seg } => Out {
            src,
            dst,
            seq: seg.seq,
            ack: seg.ack,
            flags: seg.flags,
            window: seg.window,
            mss: seg.options.mss,
            fastopen: seg.options.fastopen,
            payload: seg.payload.to_vec(),
        },
        other => panic!("not TCP: {other:?}"),
    }
}

#[test]
fn syn_to_a_closed_port_is_refused_with_rst_ack() {
    let mut net = Net::v4();
    let out = net.send(&TcpSegment {
        dst_port: 5555,
        flags: Flags::SYN,
        ..FROM_PEER
    });
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].flags, Flags::RST | Flags::ACK);
    assert_eq!((out[0].seq, out[0].ack), (SeqNum::new(0), PEER_ISN.add(1)));
    assert_eq!((out[0].src, out[0].dst), (ip(US4), ip(PEER4)));
}

#[test]
fn stray_ack_is_answered_with_rst_at_its_ack_on_open_and_closed_ports() {
    let mut net = Net::v4();
    for port in [7, 5555] {
        let out = net.send(&TcpSegment {
            dst_port: port,
            ack: SeqNum::new(12345),
            flags: Flags::ACK,
            ..FROM_PEER
        });
        assert_eq!(out.len(), 1);
        assert_eq!((out[0].seq, out[0].flags), (SeqNum::new(12345), Flags::RST));
    }
}

#[test]
fn a_rst_for_no_connection_is_never_answered() {
    let mut net = Net::v4();
    for port in [7, 5555] {
        for flags in [Flags::RST, Flags::RST | Flags::ACK] {
            let out = net.send(&TcpSegment {
                dst_port: port,
                flags,
                ..FROM_PEER
            });
            assert!(out.is_empty());
        }
    }
}

#[test]
fn echo_conversation_from_syn_to_closed() {
    let mut net = Net::v4();
    let iss = net.connect(7);
    let out = net.send(&TcpSegment {
        seq: PEER_ISN.add(1),
        ack: iss.add(1),
        flags: Flags::ACK | Flags::PSH,
        payload: b"hi\n",
        ..FROM_PEER
    });
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].payload, b"hi\n");
    assert_eq!(out[0].ack, PEER_ISN.add(4));
    // The client half-closes: echo finishes and closes too (FIN, ACK of the FIN).
    let out = net.send(&TcpSegment {
        seq: PEER_ISN.add(4),
        ack: iss.add(4),
        flags: Flags::ACK | Flags::FIN,
        ..FROM_PEER
    });
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].flags, Flags::ACK | Flags::FIN);
    assert_eq!((out[0].seq, out[0].ack), (iss.add(4), PEER_ISN.add(5)));
    let out = net.send(&TcpSegment {
        seq: PEER_ISN.add(5),
        ack: iss.add(5),
        flags: Flags::ACK,
        ..FROM_PEER
    });
    assert!(out.is_empty());
    assert_eq!(net.ep.connection_count(), 0);
    assert_eq!(net.ep.stats().passive_opens, 1);
}

#[test]
fn ipv6_syn_gets_syn_ack_with_mss_of_mtu_minus_60() {
    let mut net = Net::new(PEER6, US6);
    let out = net.send(&TcpSegment {
        flags: Flags::SYN,
        ..FROM_PEER
    });
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].flags, Flags::SYN | Flags::ACK);
    assert_eq!(out[0].mss, Some(1440));
    assert_eq!(out[0].dst, ip(PEER6));
}

#[test]
fn ipv4_syn_ack_carries_mss_of_mtu_minus_40() {
    let mut net = Net::v4();
    let out = net.send(&TcpSegment {
        flags: Flags::SYN,
        ..FROM_PEER
    });
    assert_eq!(out[0].mss, Some(1460));
}

#[test]
fn packets_for_other_addresses_are_ignored() {
    let mut net = Net::new(PEER4, "198.18.0.99");
    let out = net.send(&TcpSegment {
        flags: Flags::SYN,
        ..FROM_PEER
    });
    assert!(out.is_empty());
    assert_eq!(net.ep.stats().not_ours, 1);
}

#[test]
fn segments_from_martian_sources_are_dropped_before_tcp_sees_them() {
    // RFC 1122 §3.2.1.3, RFC 4291 §2.5.2/§2.5.3/§2.5.5.2/§2.7: none of these gets a SYN,ACK
    // (nor, for the ACK, a RST); each is counted once.
    let v4 = [
        "127.0.0.1",
        "0.0.0.0",
        "0.0.0.7",
        "255.255.255.255",
        "224.0.0.1",
        US4,
    ];
    let v6 = ["::1", "::", "ff02::1", "::ffff:198.18.0.1", US6];
    for src in v4.iter().chain(v6.iter()) {
        let us = if src.contains(':') { US6 } else { US4 };
        for flags in [Flags::SYN, Flags::ACK, Flags::SYN | Flags::FIN] {
            let mut net = Net::new(src, us);
            let out = net.send(&TcpSegment { flags, ..FROM_PEER });
            assert!(out.is_empty(), "{src} {flags:?}: {out:?}");
            assert_eq!(net.ep.stats().martian_source, 1, "{src}");
            assert_eq!(net.ep.stats().passive_opens, 0, "{src}");
        }
    }
    // Class E is accepted, as Linux accepts it.
    let mut net = Net::new("240.0.0.1", US4);
    let out = net.send(&TcpSegment {
        flags: Flags::SYN,
        ..FROM_PEER
    });
    assert_eq!(out.len(), 1);
    assert_eq!(net.ep.stats().martian_source, 0);
}

#[test]
fn echo_requests_from_martian_sources_are_not_answered() {
    use crate::wire::testutil::{LINUX_PING_V4, hex, inet_checksum};
    for src in [
        [127, 0, 0, 1],
        [224, 0, 0, 1],
        [0, 0, 0, 0],
        [198, 18, 0, 2],
    ] {
        let mut packet = hex(LINUX_PING_V4);
        packet[12..16].copy_from_slice(&src);
        // The IPv4 header checksum over the new source (ICMP's does not cover it).
        packet[10..12].copy_from_slice(&[0, 0]);
        let sum = inet_checksum(&[&packet[..20]]);
        packet[10..12].copy_from_slice(&sum.to_be_bytes());
        let mut net = Net::v4();
        let mut tx: Vec<Vec<u8>> = Vec::new();
        net.ep.receive(net.now, &packet, &mut tx);
        assert!(tx.is_empty(), "{src:?}");
        assert_eq!(net.ep.stats().martian_source, 1, "{src:?}");
        assert_eq!(net.ep.stats().echo_replies, 0);
    }
}

#[test]
fn syn_fin_in_listen_is_dropped_as_linux_drops_it() {
    // The decisions table (docs/ARCHITECTURE.md): no SYN,ACK, no TCB, no RST; counted. A
    // plain SYN from the same port afterwards opens the connection as usual.
    let mut net = Net::v4();
    for flags in [
        Flags::SYN | Flags::FIN,
        Flags::SYN | Flags::FIN | Flags::PSH,
    ] {
        let out = net.send(&TcpSegment { flags, ..FROM_PEER });
        assert!(out.is_empty(), "{flags:?}: {out:?}");
    }
    let stats = net.ep.stats();
    assert_eq!(stats.listen_syn_fin, 2);
    assert_eq!((stats.passive_opens, stats.listen_drops), (0, 0));
    assert_eq!(net.ep.connection_count(), 0);
    net.connect(7);
    assert_eq!(net.ep.stats().passive_opens, 1);
}

#[test]
fn segments_listen_ignores_are_not_listen_drops() {
    // RFC 9293 §3.10.7.2: a RST, or a segment with neither SYN nor ACK, is ignored in LISTEN;
    // Linux's ListenDrops counts only SYNs (and final ACKs) it could not take.
    let mut net = Net::v4();
    for flags in [Flags::RST, Flags::FIN, Flags::PSH] {
        assert!(net.send(&TcpSegment { flags, ..FROM_PEER }).is_empty());
    }
    assert_eq!(net.ep.stats().listen_ignored, 3);
    assert_eq!(net.ep.stats().listen_drops, 0);
}

#[test]
fn established_resets_count_either_sides_reset_as_linux_does() {
    // RFC 1213 tcpEstabResets: ESTABLISHED or CLOSE-WAIT straight to CLOSED, whoever reset.
    let mut net = Net::v4();
    connect_from(&mut net, 40000);
    net.send(&TcpSegment {
        seq: PEER_ISN.add(1),
        flags: Flags::RST,
        ..FROM_PEER
    });
    let stats = net.ep.stats();
    assert_eq!((stats.established_resets, stats.peer_resets), (1, 1));
    // Our own abort (the grace period of a shutdown ended) counts too, but is not the peer's.
    connect_from(&mut net, 40001);
    let mut tx: Vec<Vec<u8>> = Vec::new();
    net.ep.abort_all(net.now, &mut tx);
    assert_eq!(parse_out(&tx[0]).flags, Flags::RST | Flags::ACK);
    let stats = net.ep.stats();
    assert_eq!((stats.established_resets, stats.peer_resets), (2, 1));
}

#[test]
fn a_corrupted_segment_is_dropped_and_counted() {
    let mut net = Net::v4();
    let mut buf = vec![0; 100];
    let seg = TcpSegment {
        flags: Flags::SYN,
        ..FROM_PEER
    };
    let n = wire::emit_tcp(&mut buf, net.peer, net.us, &seg).unwrap();
    buf[n - 1] ^= 0xff;
    assert!(net.raw(&buf[..n]).is_empty());
    let bad = net
        .ep
        .counters()
        .into_iter()
        .find(|(name, _)| *name == "drop_bad_tcp_checksum");
    assert_eq!(bad, Some(("drop_bad_tcp_checksum", 1)));
}

#[test]
fn ping_is_answered_in_both_families() {
    use crate::wire::testutil::{LINUX_PING_V4, LINUX_PING_V6, hex};
    // Real echo requests from Linux's ping through a TUN; the reply type sits after the
    // IP header: 0 (ICMP) and 129 (ICMPv6).
    for (request, type_at, reply_type) in [(LINUX_PING_V4, 20, 0u8), (LINUX_PING_V6, 40, 129)] {
        let mut net = Net::v4();
        let mut tx: Vec<Vec<u8>> = Vec::new();
        net.ep.receive(net.now, &hex(request), &mut tx);
        assert_eq!(tx.len(), 1);
        assert_eq!(tx[0][type_at], reply_type);
        assert_eq!(net.ep.stats().echo_replies, 1);
    }
}

#[test]
fn http_connection_close_is_an_active_close_through_time_wait() {
    let mut net = Net::v4();
    let iss = net.connect(80);
    let req = b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    let out = net.send(&TcpSegment {
        dst_port: 80,
        seq: PEER_ISN.add(1),
        ack: iss.add(1),
        flags: Flags::ACK | Flags::PSH,
        payload: req,
        ..FROM_PEER
    });
    let body: Vec<u8> = out.iter().flat_map(|o| o.payload.clone()).collect();
    let text = String::from_utf8_lossy(&body);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(
        text.contains("ESTABLISHED") || text.contains("FIN-WAIT"),
        "{text}"
    );
    let fin = out.last().unwrap();
    assert!(fin.flags.fin(), "we close first");
    let our_fin_end = fin.seq.add(fin.payload.len() as u32 + 1);
    let rcv = PEER_ISN.add(1 + req.len() as u32);
    // The client ACKs our FIN and sends its own.
    let out = net.send(&TcpSegment {
        dst_port: 80,
        seq: rcv,
        ack: our_fin_end,
        flags: Flags::ACK | Flags::FIN,
        ..FROM_PEER
    });
    assert_eq!(out.len(), 1);
    assert_eq!((out[0].flags, out[0].ack), (Flags::ACK, rcv.add(1)));
    let quad = Quad {
        local: "198.18.0.2:80".parse().unwrap(),
        remote: "198.18.0.1:40000".parse().unwrap(),
    };
    assert_eq!(net.ep.connection_state(&quad), Some(State::TimeWait));
    // 2·MSL (1 s here) later it is gone.
    let entered = net.now;
    while net.ep.connection_count() > 0 {
        assert!(net.advance().is_empty());
        assert!(net.now - entered <= Duration::from_secs(1));
    }
    assert_eq!(net.now - entered, Duration::from_secs(1));
}

#[test]
fn a_new_syn_in_time_wait_above_rcv_nxt_reopens_with_a_higher_iss() {
    let mut net = Net::v4();
    let iss = net.connect(80);
    let req = b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    let out = net.send(&TcpSegment {
        dst_port: 80,
        seq: PEER_ISN.add(1),
        ack: iss.add(1),
        flags: Flags::ACK,
        payload: req,
        ..FROM_PEER
    });
    let fin = out.last().unwrap();
    let our_fin_end = fin.seq.add(fin.payload.len() as u32 + 1);
    let rcv = PEER_ISN.add(1 + req.len() as u32);
    net.send(&TcpSegment {
        dst_port: 80,
        seq: rcv,
        ack: our_fin_end,
        flags: Flags::ACK | Flags::FIN,
        ..FROM_PEER
    });
    // A SYN+FIN (dropped in LISTEN) neither reopens it nor ends TIME-WAIT.
    net.send(&TcpSegment {
        dst_port: 80,
        seq: rcv.add(1000),
        flags: Flags::SYN | Flags::FIN,
        ..FROM_PEER
    });
    let quad = Quad {
        local: "198.18.0.2:80".parse().unwrap(),
        remote: "198.18.0.1:40000".parse().unwrap(),
    };
    assert_eq!(net.ep.connection_state(&quad), Some(State::TimeWait));
    let out = net.send(&TcpSegment {
        dst_port: 80,
        seq: rcv.add(1000),
        flags: Flags::SYN,
        ..FROM_PEER
    });
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].flags, Flags::SYN | Flags::ACK);
    assert!(
        out[0].seq.gt(our_fin_end),
        "MAY-2: the new ISS is above the old SND.NXT"
    );
}

#[test]
fn shutdown_closes_open_connections_with_fin_and_refuses_new_ones() {
    let mut net = Net::v4();
    let iss = net.connect(7);
    net.ep.shutdown(net.now);
    let mut tx: Vec<Vec<u8>> = Vec::new();
    net.ep.poll(net.now, &mut tx);
    let out: Vec<Out> = tx.iter().map(|p| parse_out(p)).collect();
    assert_eq!(out.len(), 1);
    assert_eq!(
        (out[0].flags, out[0].seq),
        (Flags::ACK | Flags::FIN, iss.add(1))
    );
    assert!(!net.ep.is_drained());
    let out = net.send(&TcpSegment {
        dst_port: 80,
        src_port: 40001,
        flags: Flags::SYN,
        ..FROM_PEER
    });
    assert_eq!(out[0].flags, Flags::RST | Flags::ACK, "no longer accepting");
    net.send(&TcpSegment {
        seq: PEER_ISN.add(1),
        ack: iss.add(2),
        flags: Flags::ACK | Flags::FIN,
        ..FROM_PEER
    });
    assert!(net.ep.is_drained(), "only TIME-WAIT is left");
}

#[test]
fn no_due_ack_waits_for_the_next_packet() {
    let mut net = Net::v4();
    // A partial request: the delayed ACK must come from the endpoint's own deadline.
    let (_, next) = net.partial_request();
    let at = net.ep.poll_timeout().expect("the delayed ACK is scheduled");
    assert!(at - net.now <= Duration::from_millis(200));
    let out = net.advance();
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].ack, next);
}

/// Complete a handshake to echo from the peer's `src_port`; returns our ISS.
fn connect_from(net: &mut Net, src_port: u16) -> SeqNum {
    let from = TcpSegment {
        src_port,
        ..FROM_PEER
    };
    let out = net.send(&TcpSegment {
        flags: Flags::SYN,
        ..from
    });
    let iss = out[0].seq;
    net.send(&TcpSegment {
        seq: PEER_ISN.add(1),
        ack: iss.add(1),
        flags: Flags::ACK,
        ..from
    });
    iss
}

#[test]
fn challenge_acks_share_a_global_budget_but_duplicate_data_acks_do_not() {
    // RFC 5961 §7: one in-window RST on each of 2000 connections within a second. Each
    // connection may send its one challenge ACK; the randomized global budget allows 500 to
    // 1500 of them.
    let mut net = Net::v4();
    let ports = 20000..22000u16;
    for port in ports.clone() {
        connect_from(&mut net, port);
    }
    let mut answered = 0;
    for port in ports.clone() {
        answered += net
            .send(&TcpSegment {
                src_port: port,
                seq: PEER_ISN.add(1000),
                flags: Flags::RST,
                ..FROM_PEER
            })
            .len();
    }
    assert!((500..1500).contains(&answered), "{answered}");
    assert_eq!(net.ep.stats().challenge_acks, answered as u64);
    assert_eq!(
        net.ep.stats().challenge_acks_limited,
        2000 - answered as u64
    );
    assert_eq!(net.ep.stats().challenge_acks_skipped, 0);
    // The budget is spent, yet an old duplicate data segment is still acknowledged, on a
    // connection that has just sent a challenge ACK too.
    let iss = connect_from(&mut net, 40000);
    net.send(&TcpSegment {
        seq: PEER_ISN.add(1000),
        flags: Flags::RST,
        ..FROM_PEER
    });
    let out = net.send(&TcpSegment {
        seq: PEER_ISN.sub(500),
        ack: iss.add(1),
        flags: Flags::ACK,
        payload: b"old",
        ..FROM_PEER
    });
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].ack, PEER_ISN.add(1));
    let quad = Quad {
        local: "198.18.0.2:7".parse().unwrap(),
        remote: "198.18.0.1:40000".parse().unwrap(),
    };
    assert_eq!(net.ep.connection_state(&quad), Some(State::Established));
}

#[test]
fn one_connection_gets_at_most_one_challenge_ack_per_half_second() {
    // Linux's tcp_invalid_ratelimit: 400 in-window RSTs spread over one second get two
    // challenge ACKs (at 0 and 500 ms), not the ~350 the global budget alone would allow.
    let mut net = Net::v4();
    connect_from(&mut net, 40000);
    let blind_rst = TcpSegment {
        seq: PEER_ISN.add(1000),
        flags: Flags::RST,
        ..FROM_PEER
    };
    let start = net.now;
    let mut answers = Vec::new();
    for i in 0..400u64 {
        net.now = start + Duration::from_micros(i * 2500);
        for out in net.send(&blind_rst) {
            answers.push((net.now - start, out.flags, out.ack));
        }
    }
    assert_eq!(
        answers,
        [
            (Duration::ZERO, Flags::ACK, PEER_ISN.add(1)),
            (Duration::from_millis(500), Flags::ACK, PEER_ISN.add(1))
        ]
    );
    let stats = net.ep.stats();
    assert_eq!(stats.rst_challenged, 400);
    assert_eq!(stats.challenge_acks, 2);
    assert_eq!(stats.challenge_acks_skipped, 398);
    assert_eq!(stats.challenge_acks_limited, 0);
    // SYNs share the same per-connection allowance.
    net.now = start + Duration::from_millis(1000);
    let syn = TcpSegment {
        seq: PEER_ISN.add(1000),
        flags: Flags::SYN,
        ..FROM_PEER
    };
    assert_eq!(net.send(&syn).len(), 1);
    assert_eq!(net.send(&syn).len(), 0);
    assert_eq!(net.ep.stats().syn_challenged, 2);
    assert_eq!(net.ep.stats().challenge_acks_skipped, 399);
}

#[test]
fn acks_for_out_of_window_bare_acks_are_rate_limited_but_not_for_data_or_fin() {
    let mut net = Net::v4();
    let iss = connect_from(&mut net, 40000);
    let old = TcpSegment {
        seq: PEER_ISN.sub(500),
        ack: iss.add(1),
        flags: Flags::ACK,
        ..FROM_PEER
    };
    // Bare ACKs outside the window: one answer per 500 ms (an ACK war cannot start).
    let mut answered = 0;
    for _ in 0..10 {
        answered += net.send(&old).len();
    }
    assert_eq!(answered, 1);
    assert_eq!(net.ep.stats().out_of_window_acks_skipped, 9);
    // Old data and an old FIN are always acknowledged: the peer may be retransmitting
    // because our ACK was lost.
    for seg in [
        TcpSegment {
            payload: b"old",
            ..old
        },
        TcpSegment {
            flags: Flags::ACK | Flags::FIN,
            ..old
        },
    ] {
        let out = net.send(&seg);
        assert_eq!(out.len(), 1, "{:?}", seg.flags);
        assert_eq!(out[0].ack, PEER_ISN.add(1));
    }
    net.now += Duration::from_millis(500);
    assert_eq!(net.send(&old).len(), 1, "answered again after 500 ms");
    assert_eq!(net.ep.stats().out_of_window, 13);
}

/// One connect-and-close from `src_port` to echo, as `bench-client connrate` makes them: SYN,
/// ACK, FIN; our FIN,ACK; the last ACK. The connection is reaped at the end.
fn connect_and_close(net: &mut Net, src_port: u16) {
    let from = TcpSegment {
        src_port,
        ..FROM_PEER
    };
    let out = net.send(&TcpSegment {
        flags: Flags::SYN,
        ..from
    });
    assert_eq!(out.len(), 1);
    let iss = out[0].seq;
    let established = TcpSegment {
        seq: PEER_ISN.add(1),
        ack: iss.add(1),
        flags: Flags::ACK,
        ..from
    };
    assert!(net.send(&established).is_empty());
    let out = net.send(&TcpSegment {
        flags: Flags::ACK | Flags::FIN,
        ..established
    });
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].flags, Flags::ACK | Flags::FIN);
    let out = net.send(&TcpSegment {
        seq: PEER_ISN.add(2),
        ack: iss.add(2),
        flags: Flags::ACK,
        ..from
    });
    assert!(out.is_empty());
}

#[test]
fn a_reaped_connection_leaves_no_deadline_behind() {
    let mut net = Net::v4();
    connect_and_close(&mut net, 40000);
    assert_eq!(net.ep.connection_count(), 0);
    // Its SYN,ACK and FIN retransmission timers went with it: nothing to wake up for.
    assert_eq!(net.ep.poll_timeout(), None);
}

#[test]
fn many_short_connections_keep_the_timer_heap_small() {
    let mut net = Net::v4();
    let mut largest = 0;
    for i in 0..5_000u16 {
        net.now += Duration::from_micros(20);
        connect_and_close(&mut net, 10_000 + i);
        largest = largest.max(net.ep.timers.len());
    }
    assert_eq!(net.ep.connection_count(), 0);
    // Each connection is gone within a second, well before its timers would have fired.
    assert!(largest <= TIMER_SLACK + 2, "{largest} timer entries");
}

#[test]
fn a_fired_timer_leaves_no_stale_deadline_behind() {
    let mut net = Net::v4();
    // The SYN,ACK's retransmission deadline is superseded once the handshake completes; a
    // partial request then arms the delayed ACK.
    let (_, next) = net.partial_request();
    let out = net.advance();
    assert_eq!(out.len(), 1, "the delayed ACK");
    assert_eq!(out[0].ack, next);
    // Nothing is in flight and keep-alive is off: the connection has no deadline, and the
    // endpoint does not wake for the superseded one.
    assert_eq!(net.ep.poll_timeout(), None);
}

mod fastopen;
mod hardening;
mod relay;
mod rfc_edges;
mod signals;
mod time_wait;

/// A super-segment from the kernel (GSO through the TUN's offload) is taken whole, ACKed at
/// once and counted as the segments it stands for; echo sends it back as wire-sized segments
/// (this endpoint has no offload).
#[test]
fn a_super_segment_is_counted_as_its_segments_and_echoed() {
    let mut net = Net::v4();
    let iss = net.connect(7);
    let data: Vec<u8> = (0..10 * 1460u32).map(|i| (i % 253) as u8).collect();
    let before = net.ep.stats().segments_in;
    let out = net.send(&TcpSegment {
        seq: PEER_ISN.add(1),
        ack: iss.add(1),
        flags: Flags::ACK,
        payload: &data,
        ..FROM_PEER
    });
    assert_eq!(net.ep.stats().segments_in - before, 10);
    assert_eq!(net.ep.stats().super_segments_in, 1);
    assert_eq!(net.ep.stats().super_segments_out, 0);
    let end = PEER_ISN.add(1 + data.len() as u32);
    assert!(
        out.iter().all(|o| o.ack == end),
        "ACKed at once, by every segment"
    );
    assert!(out.iter().all(|o| o.payload.len() <= 1460));
    let echoed: Vec<u8> = out.iter().flat_map(|o| o.payload.clone()).collect();
    assert_eq!(echoed, data[..echoed.len()]);
    assert!(!echoed.is_empty());
}

#[test]
fn a_cancelled_timer_costs_no_wake_up() {
    let mut net = Net::v4();
    // A partial request: its delayed ACK is the connection's deadline.
    let (iss, next) = net.partial_request();
    let delayed_ack = net.ep.poll_timeout().expect("the delayed ACK is scheduled");
    // The rest of the request arrives: the response carries the ACK, the delayed ACK is
    // cancelled, and the next wake-up is the response's retransmission timeout.
    let out = net.send(&TcpSegment {
        dst_port: 80,
        seq: next,
        ack: iss.add(1),
        flags: Flags::ACK,
        payload: b"\r\n\r\n",
        ..FROM_PEER
    });
    assert!(!out.is_empty(), "the response");
    let next = net.ep.poll_timeout().expect("the retransmission timer");
    assert!(
        next > delayed_ack,
        "a cancelled delayed ACK still wakes us at {delayed_ack:?}"
    );
    assert!(next - net.now >= Duration::from_millis(200));
}

#[test]
fn a_connection_with_no_timer_left_leaves_no_wake_up() {
    let mut net = Net::v4();
    let iss = net.connect(7);
    net.send_hi(iss);
    assert!(net.ep.poll_timeout().is_some(), "its retransmission timer");
    // The echo is acknowledged: the retransmission timer is cancelled, nothing is left.
    let out = net.ack_hi(iss);
    assert!(out.is_empty());
    assert_eq!(net.ep.poll_timeout(), None);
}

#[test]
fn an_idle_established_connection_stays_small() {
    // What one idle connection costs besides its buffers (which it has given back): the
    // entry in the slab (connection, service, bookkeeping) and its trace's first events.
    let entry = std::mem::size_of::<Slot>();
    eprintln!(
        "Slot {entry} B (Connection {} B, App {} B, trace event {} B)",
        std::mem::size_of::<Connection>(),
        std::mem::size_of::<App>(),
        std::mem::size_of::<crate::tcp::trace::Event>(),
    );
    assert!(entry <= 1800, "a table slot is {entry} bytes");
    let mut net = Net::v4();
    let iss = net.connect(7);
    net.send(&TcpSegment {
        dst_port: 7,
        seq: PEER_ISN.add(1),
        ack: iss.add(1),
        flags: Flags::ACK,
        payload: b"hello\n",
        ..FROM_PEER
    });
    net.send(&TcpSegment {
        dst_port: 7,
        seq: PEER_ISN.add(7),
        ack: iss.add(7),
        flags: Flags::ACK,
        ..FROM_PEER
    });
    let entry = net
        .ep
        .slots
        .iter()
        .find_map(|s| s.entry.as_deref())
        .unwrap();
    assert_eq!(entry.conn.memory(), 0);
    assert_eq!(entry.conn.allocated(), 0, "its buffers were given back");
    // The trace: inline, what a short record needs (its long record's state is allocated
    // when the ring is reached); on the heap, the six segments of the handshake and the echo,
    // packed while the connection idles (216 bytes as 36-byte events, issue 23).
    let inline = std::mem::size_of::<crate::tcp::trace::Trace>();
    assert!(inline <= 64, "a trace is {inline} bytes inline");
    assert_eq!(std::mem::size_of::<crate::tcp::trace::Event>(), 36);
    let trace = entry.conn.trace().heap_bytes();
    assert_eq!(entry.conn.trace().total(), 6);
    eprintln!("an idle echo's 6 events: {trace} bytes");
    assert!(trace <= 80, "the trace holds {trace} bytes for 6 events");
    // The graphs' record: the echo's two samples (issue 10), packed too (112 bytes as
    // 56-byte samples).
    let samples = entry.conn.samples().heap_bytes();
    assert_eq!(entry.conn.samples().read().len(), 2);
    eprintln!("an idle echo's 2 samples: {samples} bytes");
    assert!(samples <= 40, "the samples hold {samples} bytes");
    assert_eq!(net.ep.memory_used(), 0);
}

/// A device that gathers super-segments from two parts ([`Transmit::gathers`]), or one that
/// takes them whole; either keeps every packet, super-segments joined.
struct Recorder {
    gathers: bool,
    packets: Vec<Vec<u8>>,
    supers: usize,
}

impl Transmit for Recorder {
    fn transmit(&mut self, packet: &[u8]) {
        self.packets.push(packet.to_vec());
    }
    fn transmit_gso(&mut self, packet: &[u8], _: Gso) {
        assert!(
            !self.gathers,
            "a device that gathers gets super-segments in two parts"
        );
        self.supers += 1;
        self.packets.push(packet.to_vec());
    }
    fn gathers(&self) -> bool {
        self.gathers
    }
    fn transmit_gso_parts(&mut self, headers: &[u8], payload: &[u8], gso: Gso) {
        assert!(self.gathers);
        assert_eq!(headers.len(), usize::from(gso.hdr_len), "the headers alone");
        self.supers += 1;
        let mut packet = headers.to_vec();
        packet.extend_from_slice(payload);
        self.packets.push(packet);
    }
}

/// A chargen download on an endpoint with segmentation offload, to a peer that ACKs
/// everything at once with a wide window: every packet the endpoint sent, in order.
fn offloaded_download(tx: &mut Recorder) -> Vec<Vec<u8>> {
    let cfg = EndpointConfig {
        addrs: vec![ip(US4)],
        listeners: vec![(19, ServiceKind::Chargen)],
        mtu: 1500,
        gso: true,
        ..EndpointConfig::default()
    };
    let mut now = Instant::from_millis(5_000);
    let mut ep = Endpoint::new(cfg, [3; 16], now);
    let (peer, us) = (ip(PEER4), ip(US4));
    let mut all = Vec::new();
    let mut seg = TcpSegment {
        dst_port: 19,
        flags: Flags::SYN,
        window: u16::MAX,
        options: TcpOptions {
            mss: Some(1460),
            window_scale: Some(7),
            ..TcpOptions::EMPTY
        },
        ..FROM_PEER
    };
    for _ in 0..20 {
        let mut buf = vec![0; 128];
        let n = wire::emit_tcp(&mut buf, peer, us, &seg).unwrap();
        ep.receive(now, &buf[..n], tx);
        ep.poll(now, tx);
        let out = std::mem::take(&mut tx.packets);
        if let Some(end) = out
            .iter()
            .map(|p| {
                // Super-segments carry the partial checksum the device completes.
                let meta = RxMeta {
                    checksum_trusted: true,
                };
                let Ok(Packet::Tcp { seg, .. }) = wire::parse_with(p, meta) else {
                    panic!("not a TCP packet");
                };
                seg.seq
                    .add(seg.payload.len() as u32 + u32::from(seg.flags.syn()))
            })
            .reduce(|a, b| if b.gt(a) { b } else { a })
        {
            seg = TcpSegment {
                dst_port: 19,
                seq: PEER_ISN.add(1),
                ack: end,
                flags: Flags::ACK,
                window: u16::MAX,
                ..FROM_PEER
            };
        }
        all.extend(out);
        now += Duration::from_millis(1);
    }
    all
}

/// With a device that gathers, a super-segment leaves as its headers plus its payload taken
/// from the send buffer where it lies; joined, they are the packet written whole.
#[test]
fn a_gathering_device_gets_the_same_super_segments_in_two_parts() {
    let mut gathering = Recorder {
        gathers: true,
        packets: Vec::new(),
        supers: 0,
    };
    let mut whole = Recorder {
        gathers: false,
        packets: Vec::new(),
        supers: 0,
    };
    let gathered = offloaded_download(&mut gathering);
    let written = offloaded_download(&mut whole);
    assert!(
        gathering.supers >= 10,
        "{} super-segments",
        gathering.supers
    );
    assert_eq!(gathering.supers, whole.supers);
    assert_eq!(gathered.len(), written.len());
    assert!(gathered == written, "the same packets, byte for byte");
}

#[test]
fn what_a_service_holds_is_charged_and_given_back_when_it_answers() {
    let mut net = Net::v4();
    let (iss, seq) = net.partial_request();
    // The http service holds the start of the head: charged like a queue.
    let held = net.ep.memory_used();
    assert!(held > 0, "a half-read request head is charged");
    let status = net.ep.snapshot(net.now);
    assert!(status.iter().any(|row| row.mem == held), "status shows it");
    // The rest of the head `partial_request` began.
    let head: &[u8] = b"GET / HTTP/1.0\r\nX-Pad: 0123456789012345678901234567890123456789\r\n\r\n";
    let sent = seq.distance_from(PEER_ISN.add(1)) as usize;
    let out = net.send(&TcpSegment {
        dst_port: 80,
        seq,
        ack: iss.add(1),
        flags: Flags::ACK,
        payload: &head[sent..],
        ..FROM_PEER
    });
    let last = out
        .iter()
        .rfind(|o| !o.payload.is_empty())
        .expect("answered");
    // Acknowledged: the send queue is empty and the service holds nothing between requests.
    net.send(&TcpSegment {
        dst_port: 80,
        seq: seq.add((head.len() - sent) as u32),
        ack: last.seq.add(last.payload.len() as u32),
        flags: Flags::ACK,
        ..FROM_PEER
    });
    assert_eq!(net.ep.memory_used(), 0);
}

#[test]
fn after_a_burst_the_tables_shrink_to_what_is_left() {
    let mut net = Net::v4();
    // 2,000 connections open at once, then all but the last close.
    let mut isses = Vec::new();
    for i in 0..2_000u16 {
        isses.push(connect_from(&mut net, 10_000 + i));
    }
    let peak_slots = net.ep.slots.len();
    assert!(peak_slots >= 2_000);
    for (i, iss) in isses.iter().enumerate().take(1_999) {
        let from = TcpSegment {
            src_port: 10_000 + i as u16,
            seq: PEER_ISN.add(1),
            ack: iss.add(1),
            ..FROM_PEER
        };
        net.send(&TcpSegment {
            flags: Flags::ACK | Flags::RST,
            ..from
        });
    }
    assert_eq!(net.ep.connection_count(), 1);
    net.ep.release_memory();
    // The last connection holds the highest slot: the slab keeps it and the free slots below.
    assert_eq!(net.ep.slots.len(), peak_slots);
    assert!(net.ep.table.capacity() < 16, "{}", net.ep.table.capacity());
    // Once it is gone too, nothing of the burst is left.
    net.send(&TcpSegment {
        src_port: 11_999,
        seq: PEER_ISN.add(1),
        ack: isses[1_999].add(1),
        flags: Flags::ACK | Flags::RST,
        ..FROM_PEER
    });
    net.ep.release_memory();
    assert_eq!(net.ep.slots.len(), 0);
    assert!(net.ep.free.is_empty());
    // And the endpoint goes on: a new connection is served.
    connect_and_close(&mut net, 20_000);
    assert_eq!(net.ep.connection_count(), 0);
}

/// The 4-tuple of a connection to echo from the peer's `src_port`.
fn echo_quad(src_port: u16) -> Quad {
    Quad {
        local: SocketAddr::new(ip(US4), 7),
        remote: SocketAddr::new(ip(PEER4), src_port),
    }
}

#[test]
fn the_table_finds_each_connection_by_its_four_tuple_through_opens_and_closes() {
    // Issue 23: the table keeps slot numbers only and compares the 4-tuple the connection
    // itself holds (index.rs), so a freed slot must not answer for its old 4-tuple.
    let mut net = Net::v4();
    let ports: Vec<u16> = (10_000..11_000).collect();
    let isses: Vec<SeqNum> = ports.iter().map(|&p| connect_from(&mut net, p)).collect();
    let slots: Vec<usize> = ports
        .iter()
        .map(|&p| net.ep.lookup(&echo_quad(p)).expect("in the table"))
        .collect();
    // The peer resets every other connection.
    for i in (0..ports.len()).step_by(2) {
        net.send(&TcpSegment {
            src_port: ports[i],
            seq: PEER_ISN.add(1),
            ack: isses[i].add(1),
            flags: Flags::ACK | Flags::RST,
            ..FROM_PEER
        });
    }
    assert_eq!(net.ep.connection_count(), 500);
    for (i, &p) in ports.iter().enumerate() {
        let (state, slot) = if i % 2 == 1 {
            (Some(State::Established), Some(slots[i]))
        } else {
            (None, None)
        };
        assert_eq!(net.ep.connection_state(&echo_quad(p)), state, "port {p}");
        assert_eq!(net.ep.lookup(&echo_quad(p)), slot, "port {p}");
    }
    // A new connection takes a freed slot; the 4-tuple that held it before stays gone.
    let reused = *net.ep.free.last().expect("free slots");
    let old = ports[slots
        .iter()
        .position(|&s| s == reused)
        .expect("a slot of the burst")];
    connect_from(&mut net, 20_000);
    assert_eq!(net.ep.lookup(&echo_quad(20_000)), Some(reused));
    assert_eq!(net.ep.lookup(&echo_quad(old)), None);
    assert_eq!(net.ep.connection_state(&echo_quad(old)), None);
    // A segment for the old 4-tuple is for no connection: RFC 9293 §3.10.7.2, a RST.
    let out = net.send(&TcpSegment {
        src_port: old,
        seq: PEER_ISN.add(1),
        ack: SeqNum::new(12_345),
        flags: Flags::ACK,
        ..FROM_PEER
    });
    assert_eq!(out.len(), 1);
    assert!(out[0].flags.rst());
    assert_eq!(out[0].seq, SeqNum::new(12_345));
    assert_eq!(
        net.ep.connection_state(&echo_quad(20_000)),
        Some(State::Established)
    );
}

#[test]
fn a_paged_status_lists_every_connection_once() {
    let mut net = Net::v4();
    for i in 0..50u16 {
        connect_from(&mut net, 10_000 + i);
    }
    let mut cursor = StatusCursor::default();
    let mut pages = Vec::new();
    while !cursor.is_done() {
        pages.push(net.ep.snapshot_page(net.now, &mut cursor, 16));
    }
    // The listeners (two ports, two addresses) come first, then 16 connections a page.
    assert_eq!(pages.len(), 4);
    assert_eq!(pages[0].len(), 4 + 16);
    let mut peers: Vec<_> = pages.iter().flatten().filter_map(|r| r.peer).collect();
    peers.sort();
    peers.dedup();
    assert_eq!(peers.len(), 50);
    assert_eq!(pages.iter().map(Vec::len).sum::<usize>(), 4 + 50);
}

#[test]
fn the_impair_links_counters_are_listed_with_the_endpoints() {
    let mut net = Net::v4();
    net.ep
        .set_link_counters(&[("impair_packets", 10), ("impair_lost", 3)]);
    let counters = net.ep.counters();
    assert!(counters.contains(&("impair_lost", 3)));
    assert_eq!(counters.last().map(|c| c.0), Some("buffer_memory_used"));
    let metrics = net.ep.metrics();
    assert!(
        metrics.contains("synack_impair_lost_total 3\n"),
        "{metrics}"
    );
    assert!(metrics.contains("# HELP synack_impair_lost_total Packets the --impair link dropped"));
    // Handed over again: replaced, not added.
    net.ep.set_link_counters(&[("impair_lost", 4)]);
    assert_eq!(
        net.ep
            .counters()
            .iter()
            .filter(|c| c.0.starts_with("impair_"))
            .count(),
        1
    );
}

#[test]
fn packets_the_link_dropped_are_marked_in_their_connections_trace() {
    let mut net = Net::v4();
    let iss = net.connect(7);
    let mut buf = vec![0; 2048];
    // Our SYN,ACK was lost on its way to the peer (and the peer's SYN sent again)...
    let synack = TcpSegment {
        src_port: 7,
        dst_port: 40000,
        seq: iss,
        ack: PEER_ISN.add(1),
        flags: Flags::SYN | Flags::ACK,
        ..SEGMENT_TEMPLATE
    };
    let n = wire::emit_tcp(&mut buf, net.us, net.peer, &synack).unwrap();
    net.ep.on_link_drop(net.now, true, &buf[..n]);
    // ...and data from the peer on its way to us.
    let data = TcpSegment {
        seq: PEER_ISN.add(1),
        ack: iss.add(1),
        flags: Flags::PSH | Flags::ACK,
        payload: b"hello\n",
        ..FROM_PEER
    };
    let n = wire::emit_tcp(&mut buf, net.peer, net.us, &data).unwrap();
    net.ep.on_link_drop(net.now, false, &buf[..n]);
    // Not a connection's: ignored.
    let n = wire::emit_tcp(
        &mut buf,
        net.peer,
        net.us,
        &TcpSegment {
            src_port: 1,
            ..data
        },
    )
    .unwrap();
    net.ep.on_link_drop(net.now, false, &buf[..n]);
    net.ep.on_link_drop(net.now, false, b"not a packet");
    let quad = Quad {
        local: SocketAddr::new(net.us, 7),
        remote: SocketAddr::new(net.peer, 40000),
    };
    let ladder = net.ep.find(&quad).unwrap().conn.ladder();
    let lines: Vec<&str> = ladder.lines().collect();
    assert_eq!(lines.len(), 5, "{ladder}");
    assert!(
        lines[2].contains("◀✕─  SYN,ACK seq=0 ack=1")
            && lines[2].ends_with("[dropped by --impair on its way to the peer]"),
        "{ladder}"
    );
    assert!(
        lines[4].contains("PSH,ACK seq=1 ack=1 len=6 [dropped by --impair on its way to synack]")
            && lines[4].contains("─✕▶  ESTABLISHED"),
        "{ladder}"
    );
    // The connection itself saw nothing of it.
    assert_eq!(net.ep.find(&quad).unwrap().conn.trace().total(), 4);
}

#[test]
fn a_timer_due_after_timers_until_waits_and_the_ack_in_the_queue_cancels_it() {
    let mut net = Net::v4();
    let iss = net.connect(7);
    net.send_hi(iss);
    let due = net.ep.poll_timeout().expect("its retransmission timer");
    // The driver fell behind: the timer is due, but the device held a backlog since before
    // it. Polled with timers only up to then, nothing is retransmitted.
    net.now = due + Duration::from_millis(100);
    let mut tx: Vec<Vec<u8>> = Vec::new();
    net.ep.poll_timers_until(
        net.now,
        Instant::from_micros(due.as_micros() - 1_000),
        &mut tx,
    );
    assert!(tx.is_empty(), "a timer past timers_until fired: {tx:?}");
    // The ACK that was in the queue arrives: the timer is gone, nothing was sent twice.
    let out = net.ack_hi(iss);
    assert!(out.is_empty(), "{out:?}");
    assert_eq!(net.ep.poll_timeout(), None);
    // Without the hold, the same timer fires at once.
    let mut net = Net::v4();
    let iss = net.connect(7);
    net.send_hi(iss);
    let out = net.advance();
    assert!(!out.is_empty(), "the probe or retransmission");
}
