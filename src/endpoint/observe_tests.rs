//! The endpoint as a client, its status rows, the ladders of closed connections and the
//! counters they feed, on a virtual clock.

use super::super::*;
use crate::seqnum::SeqNum;
use crate::wire::{Flags, SEGMENT_TEMPLATE, TcpOptions};

const US: &str = "198.18.0.2";
const PEER: &str = "198.18.0.1";
const PEER_ISN: SeqNum = SeqNum::new(7_000);

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

struct Net {
    ep: Endpoint,
    now: Instant,
}

/// A segment we sent, parsed back.
#[derive(Debug)]
struct Out {
    src_port: u16,
    dst_port: u16,
    seq: SeqNum,
    ack: SeqNum,
    flags: Flags,
    payload: Vec<u8>,
}

impl Net {
    fn new() -> Net {
        let cfg = EndpointConfig {
            addrs: vec![ip(US), ip("2001:2::2")],
            listeners: vec![(7, ServiceKind::Echo), (80, ServiceKind::Http)],
            mtu: 1500,
            time_wait: Duration::from_secs(1),
            ..EndpointConfig::default()
        };
        let now = Instant::from_millis(5_000);
        Net {
            ep: Endpoint::new(cfg, [9; 16], now),
            now,
        }
    }

    fn poll(&mut self) -> Vec<Out> {
        let mut tx: Vec<Vec<u8>> = Vec::new();
        self.ep.poll(self.now, &mut tx);
        tx.iter().map(|p| parse(p)).collect()
    }

    fn send(&mut self, seg: &TcpSegment<'_>) -> Vec<Out> {
        let mut buf = vec![0; 2000];
        let n = wire::emit_tcp(&mut buf, ip(PEER), ip(US), seg).unwrap();
        let mut tx: Vec<Vec<u8>> = Vec::new();
        self.ep.receive(self.now, &buf[..n], &mut tx);
        self.ep.poll(self.now, &mut tx);
        tx.iter().map(|p| parse(p)).collect()
    }

    fn advance(&mut self) -> Vec<Out> {
        let at = self.ep.poll_timeout().expect("a deadline");
        self.now = self.now.max(at);
        self.poll()
    }
}

fn parse(p: &[u8]) -> Out {
    match wire::parse(p).expect("we emit valid packets") {
        Packet::Tcp { seg, .. } => Out {
            src_port: seg.src_port,
            dst_port: seg.dst_port,
            seq: seg.seq,
            ack: seg.ack,
            flags: seg.flags,
            payload: seg.payload.to_vec(),
        },
        other => panic!("not TCP: {other:?}"),
    }
}

fn remote() -> SocketAddr {
    SocketAddr::new(ip(PEER), 8080)
}

/// The kernel's listener answers our SYN; returns (client id, our port, our ISS).
fn open(net: &mut Net, data: &[u8]) -> (ClientId, u16, SeqNum) {
    let id = net.ep.connect(net.now, remote(), data.to_vec()).unwrap();
    let out = net.poll();
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].flags, Flags::SYN);
    assert_eq!(out[0].dst_port, 8080);
    let (port, iss) = (out[0].src_port, out[0].seq);
    assert!(client::EPHEMERAL_PORTS.contains(&port));
    (id, port, iss)
}

fn from_listener(port: u16) -> TcpSegment<'static> {
    TcpSegment {
        src_port: 8080,
        dst_port: port,
        window: 64240,
        ..SEGMENT_TEMPLATE
    }
}

#[test]
fn connect_sends_the_data_half_closes_and_collects_the_reply() {
    let mut net = Net::new();
    let (id, port, iss) = open(&mut net, b"ping\n");
    let out = net.send(&TcpSegment {
        seq: PEER_ISN,
        ack: iss.add(1),
        flags: Flags::SYN | Flags::ACK,
        options: TcpOptions {
            mss: Some(1460),
            ..TcpOptions::EMPTY
        },
        ..from_listener(port)
    });
    // The ACK completing the handshake carries the data and our FIN.
    assert_eq!(out.len(), 1, "{out:?}");
    assert_eq!(out[0].payload, b"ping\n");
    assert!(out[0].flags.fin() && out[0].flags.ack());
    let ev = net.ep.poll_client(id).unwrap();
    assert!(ev.established);
    assert_eq!(ev.state, State::FinWait1);
    assert_eq!(ev.outcome, None);
    // The listener answers, acknowledges our FIN, and closes.
    let out = net.send(&TcpSegment {
        seq: PEER_ISN.add(1),
        ack: iss.add(7),
        flags: Flags::PSH | Flags::ACK | Flags::FIN,
        payload: b"pong\n",
        ..from_listener(port)
    });
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].ack, PEER_ISN.add(7));
    let ev = net.ep.poll_client(id).unwrap();
    assert_eq!(ev.data, b"pong\n");
    assert_eq!(ev.state, State::TimeWait);
    assert_eq!(ev.outcome, Some(ClientOutcome::Closed));
    assert_eq!(net.ep.poll_client(id), None, "forgotten once over");

    let s = net.ep.stats();
    assert_eq!((s.active_opens, s.attempt_fails), (1, 0));
    assert_eq!((s.bytes_out, s.bytes_in), (5, 5));
}

#[test]
fn a_refused_port_is_reported_as_refused() {
    let mut net = Net::new();
    net.ep.set_collect_ladders(true);
    let (id, port, iss) = open(&mut net, b"x");
    let out = net.send(&TcpSegment {
        seq: SeqNum::new(0),
        ack: iss.add(1),
        flags: Flags::RST | Flags::ACK,
        ..from_listener(port)
    });
    assert!(out.is_empty());
    let ev = net.ep.poll_client(id).unwrap();
    assert_eq!(ev.outcome, Some(ClientOutcome::Refused));
    assert!(!ev.established);
    assert_eq!(ev.outcome.unwrap().name(), "connection refused");
    assert_eq!(net.ep.stats().attempt_fails, 1);
    assert_eq!(net.ep.stats().rst_in, 1);
    let ladders = net.ep.take_finished_ladders();
    assert_eq!(ladders.len(), 1);
    let (quad, ladder) = &ladders[0];
    assert_eq!(quad.remote, remote());
    assert!(ladder.contains("◀──  SYN seq=0"), "{ladder}");
    assert!(
        ladder.contains("RST,ACK seq=0 ack=1  ──▶  SYN-SENT → CLOSED"),
        "{ladder}"
    );
    assert!(net.ep.take_finished_ladders().is_empty());
}

#[test]
fn an_unanswered_syn_is_retransmitted_with_backoff_then_times_out() {
    let mut net = Net::new();
    net.ep.tcp_config_mut().syn_retries = 2;
    let (id, _, iss) = open(&mut net, b"");
    let start = net.now;
    let mut waits = Vec::new();
    loop {
        let before = net.now;
        let out = net.advance();
        if out.is_empty() {
            break;
        }
        assert_eq!((out[0].flags, out[0].seq), (Flags::SYN, iss));
        waits.push(net.now - before);
    }
    assert_eq!(waits, [Duration::from_secs(1), Duration::from_secs(2)]);
    assert!(net.now - start >= Duration::from_secs(7));
    let ev = net.ep.poll_client(id).unwrap();
    assert_eq!(ev.outcome, Some(ClientOutcome::TimedOut));
    assert_eq!(net.ep.stats().retransmissions, 2);
}

#[test]
fn ephemeral_ports_never_reuse_a_tuple_in_use() {
    let mut net = Net::new();
    let mut ports = std::collections::HashSet::new();
    for _ in 0..50 {
        let (_, port, _) = open(&mut net, b"");
        assert!(ports.insert(port), "port {port} reused");
    }
    assert_eq!(
        net.ep
            .connect(net.now, "[2001:2::1]:8080".parse().unwrap(), vec![])
            .map(|_| ()),
        Ok(())
    );
    let v6 = net.poll();
    assert_eq!(v6.len(), 1);
    assert_eq!(
        net.ep
            .connect(net.now, "198.18.0.2:80".parse().unwrap(), vec![]),
        Err(ConnectError::BadRemote)
    );
    let mut v4only = Net::new();
    v4only.ep.addrs.retain(|a| a.is_ipv4());
    assert_eq!(
        v4only
            .ep
            .connect(v4only.now, "[2001:2::1]:80".parse().unwrap(), vec![]),
        Err(ConnectError::NoLocalAddress)
    );
}

#[test]
fn status_lists_listeners_then_connections_like_ss() {
    let mut net = Net::new();
    // A kernel client on our echo port: echo reads at once, so Recv-Q stays 0; its reply
    // waits in Send-Q until the peer acknowledges it.
    let out = net.send(&TcpSegment {
        src_port: 40000,
        dst_port: 7,
        seq: PEER_ISN,
        flags: Flags::SYN,
        window: 64240,
        ..SEGMENT_TEMPLATE
    });
    let iss = out[0].seq;
    net.send(&TcpSegment {
        src_port: 40000,
        dst_port: 7,
        seq: PEER_ISN.add(1),
        ack: iss.add(1),
        flags: Flags::ACK | Flags::PSH,
        window: 64240,
        payload: b"abc",
        ..SEGMENT_TEMPLATE
    });
    net.now += Duration::from_millis(1500);
    let rows = net.ep.snapshot(net.now);
    let listen: Vec<_> = rows.iter().filter(|r| r.state == State::Listen).collect();
    assert_eq!(listen.len(), 4, "2 ports × 2 addresses");
    assert!(listen.iter().all(|r| r.peer.is_none() && r.age.is_none()));
    assert_eq!(rows[0].local, "198.18.0.2:7".parse().unwrap());
    assert_eq!(rows[0].app, "echo");
    let conn = rows.last().unwrap();
    assert_eq!(conn.state, State::Established);
    assert_eq!(conn.peer, Some("198.18.0.1:40000".parse().unwrap()));
    assert_eq!((conn.recv_q, conn.send_q), (0, 3));
    assert_eq!(conn.age, Some(Duration::from_millis(1500)));
    // The congestion window (RFC 5681 §3.1), not the peer's window.
    assert!(
        conn.cwnd.is_some_and(|c| c > 0 && c < 64240),
        "{:?}",
        conn.cwnd
    );
    // The SYN,ACK was answered at once: SRTT 0, so the RTO sits at its floor (RFC 6298 §2.4).
    assert_eq!(conn.rtt, Some(Duration::ZERO));
    assert_eq!(conn.rto, Some(Duration::from_millis(200)));
    assert_eq!(conn.app, "echo");
    // status --info: what ss -ti would say.
    let info = conn.info.as_ref().expect("a connection has details");
    assert_eq!(info.cc, "cubic");
    assert_eq!(
        (info.bytes_received, info.bytes_sent, info.bytes_acked),
        (3, 3, 0)
    );
    assert_eq!(
        (info.segs_in, info.segs_out),
        (2, 2),
        "SYN, data; SYN,ACK, echo"
    );
    assert_eq!(
        info.mss, 536,
        "the SYN had no MSS option: RFC 9293 §3.7.1 default"
    );
    assert_eq!(info.ssthresh, None, "no loss yet");
    assert_eq!(
        info.limited, "application",
        "everything queued is in flight"
    );
    assert!(rows[0].info.is_none(), "listeners have none");
    // The ladder of the live connection is there too.
    let ladders = net.ep.ladders();
    assert_eq!(ladders.len(), 1);
    assert!(ladders[0].1.contains("LISTEN → SYN-RECEIVED"));
    // After shutdown there are no listeners.
    net.ep.shutdown(net.now);
    assert!(
        net.ep
            .snapshot(net.now)
            .iter()
            .all(|r| r.state != State::Listen)
    );
}

#[test]
fn ladders_are_not_collected_unless_asked() {
    let mut net = Net::new();
    let (_, port, iss) = open(&mut net, b"");
    net.send(&TcpSegment {
        seq: SeqNum::new(0),
        ack: iss.add(1),
        flags: Flags::RST | Flags::ACK,
        ..from_listener(port)
    });
    assert_eq!(net.ep.connection_count(), 0);
    assert!(net.ep.take_finished_ladders().is_empty());
}

/// A kernel client from `port` asks the http service for `path` (with `Connection: close`)
/// and ACKs everything until our FIN; returns the response.
fn http_get(net: &mut Net, port: u16, path: &str, accept: &str) -> String {
    let client = |seq: SeqNum, ack: SeqNum, flags: Flags, payload: &'static [u8]| TcpSegment {
        src_port: port,
        dst_port: 80,
        seq,
        ack,
        flags,
        window: 65535,
        payload,
        ..SEGMENT_TEMPLATE
    };
    let out = net.send(&client(PEER_ISN, SeqNum::new(0), Flags::SYN, b""));
    let iss = out[0].seq;
    let request: &'static [u8] = Box::leak(
        format!(
            "GET {path} HTTP/1.1\r\nHost: {US}\r\nAccept: {accept}\r\nConnection: close\r\n\r\n"
        )
        .into_bytes()
        .into_boxed_slice(),
    );
    let seq = PEER_ISN.add(1);
    let mut out = net.send(&client(seq, iss.add(1), Flags::ACK | Flags::PSH, request));
    let seq = seq.add(request.len() as u32);
    let mut body = Vec::new();
    for _ in 0..100 {
        let mut next = iss.add(1);
        let mut fin = false;
        for o in &out {
            if o.dst_port == port && o.seq == next.add(0) || !o.payload.is_empty() {
                body.extend_from_slice(&o.payload);
            }
            next = o.seq.add(o.payload.len() as u32);
            fin |= o.flags.fin();
        }
        let ack = out.last().map_or(iss.add(1), |o| {
            o.seq.add(o.payload.len() as u32 + u32::from(o.flags.fin()))
        });
        if fin {
            net.send(&client(seq, ack, Flags::FIN | Flags::ACK, b""));
            break;
        }
        out = net.send(&client(seq, ack, Flags::ACK, b""));
        if out.is_empty() {
            out = net.advance();
        }
    }
    String::from_utf8(body).unwrap()
}

#[test]
fn metrics_count_connections_by_state_and_parse_as_the_text_format() {
    let mut net = Net::new();
    let first = http_get(&mut net, 41000, "/metrics", "*/*");
    let (head, body) = first.split_once("\r\n\r\n").unwrap();
    assert!(
        head.contains("Content-Type: text/plain; version=0.0.4"),
        "{head}"
    );
    let value = |text: &str, name: &str| -> u64 {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or_else(|| panic!("no {name} in\n{text}"))
    };
    // This very connection is ESTABLISHED while the page is drawn.
    assert_eq!(value(body, "synack_connections{state=\"ESTABLISHED\"}"), 1);
    assert_eq!(value(body, "synack_listeners"), 4);
    assert!(value(body, "synack_buffer_memory_bytes") > 0);
    let before = value(body, "synack_segments_in_total");
    assert!(before >= 2);
    let second = http_get(&mut net, 41001, "/metrics", "*/*");
    assert!(value(&second, "synack_segments_in_total") > before);
    // The first connection is in TIME-WAIT now (we closed first).
    assert_eq!(value(&second, "synack_connections{state=\"TIME-WAIT\"}"), 1);
}

#[test]
fn connections_list_open_and_recently_closed_ones_with_a_page_each() {
    let mut net = Net::new();
    net.ep
        .set_status_json(|rows, closed| format!("{} rows, {} closed", rows.len(), closed.len()));
    let json = http_get(&mut net, 42000, "/connections.json", "*/*");
    assert!(json.contains("Content-Type: application/json"), "{json}");
    // Four listeners and this connection.
    assert!(json.ends_with("\r\n\r\n5 rows, 0 closed"), "{json}");
    // The first connection lingers in TIME-WAIT; let it close.
    net.now += Duration::from_secs(2);
    net.poll();
    assert_eq!(net.ep.recently_closed().count(), 1);
    let page = http_get(&mut net, 42001, "/connections", "text/html");
    let (head, body) = page.split_once("\r\n\r\n").unwrap();
    assert!(
        head.contains("Content-Type: text/html; charset=utf-8"),
        "{head}"
    );
    let doc = crate::observe::html::tests::parse(body);
    assert!(
        doc.descendants().any(|n| n.has_tag_name("script")),
        "refreshes itself"
    );
    let links: Vec<&str> = doc
        .descendants()
        .filter_map(|n| n.attribute("href"))
        .filter(|h| h.starts_with("/connections/"))
        .collect();
    assert_eq!(
        links,
        [
            "/connections/198.18.0.2/80/198.18.0.1/42001",
            "/connections/198.18.0.2/80/198.18.0.1/42000"
        ]
    );
    // /connections.json lists the closed one too, as /connections does (four listeners,
    // 42001 in TIME-WAIT, this request's connection).
    let json = http_get(&mut net, 42004, "/connections.json", "*/*");
    assert!(json.ends_with("\r\n\r\n6 rows, 1 closed"), "{json}");
    // The closed one's page still draws its whole story.
    let page = http_get(&mut net, 42002, links[1], "text/html");
    let body = page.split_once("\r\n\r\n").unwrap().1;
    let doc = crate::observe::html::tests::parse(body);
    let arrows = doc
        .descendants()
        .filter(|n| n.attribute("class").is_some_and(|c| c.starts_with("seg ")))
        .count();
    assert_eq!(arrows, 6, "{body}");
    assert!(body.contains("TIME-WAIT \u{2192} CLOSED"), "{body}");
    assert!(body.contains("class=\"graph time-sequence\""), "{body}");
    // An unknown connection is 404.
    let page = http_get(
        &mut net,
        42003,
        "/connections/198.18.0.2/80/198.18.0.1/1",
        "*/*",
    );
    assert!(page.starts_with("HTTP/1.1 404"), "{page}");
}
