//! `exec:` connections: the endpoint tells the driver when to start and stop programs, moves
//! bytes only through the relay, and refuses past `--max-exec`.

use super::*;
use crate::services::ExecSpec;

const EXEC_PORT: u16 = 5000;

fn exec_net(max_exec: usize) -> Net {
    let mut net = Net::v4();
    let spec = ExecSpec::parse("cat").unwrap().leak();
    let cfg = EndpointConfig {
        addrs: vec![ip(US4), ip(US6)],
        listeners: vec![(7, ServiceKind::Echo), (EXEC_PORT, ServiceKind::Exec(spec))],
        time_wait: Duration::from_secs(1),
        ..EndpointConfig::default()
    };
    net.ep = Endpoint::new(cfg, [3; 16], net.now).with_limits(Limits {
        max_exec,
        ..Limits::default()
    });
    net
}

fn quad(port: u16) -> Quad {
    Quad {
        local: SocketAddr::new(ip(US4), port),
        remote: SocketAddr::new(ip(PEER4), 40000),
    }
}

#[test]
fn established_exec_connection_starts_a_program_and_relays_through_the_driver() {
    let mut net = exec_net(8);
    assert!(!net.ep.has_relay_events());
    let iss = net.connect(EXEC_PORT);
    let events = net.ep.take_relay_events();
    assert!(
        matches!(&events[..], [RelayEvent::Start { quad: q, spec }] if *q == quad(EXEC_PORT) && spec.label() == "exec:cat")
    );

    // The client's bytes wait in the receive queue for the driver; the program's come back.
    net.send(&TcpSegment {
        dst_port: EXEC_PORT,
        seq: PEER_ISN.add(1),
        ack: iss.add(1),
        flags: Flags::ACK | Flags::PSH,
        payload: b"ping",
        ..FROM_PEER
    });
    let mut relay = net.ep.relay_io(&quad(EXEC_PORT)).unwrap();
    assert_eq!(relay.peer_pending(), b"ping");
    relay.peer_wrote(4);
    relay.peer_read_with(4, &mut |dst| {
        dst[..4].copy_from_slice(b"pong");
        4
    });
    net.ep.relay_changed(&quad(EXEC_PORT));
    let mut tx: Vec<Vec<u8>> = Vec::new();
    net.ep.poll(net.now, &mut tx);
    let out: Vec<Out> = tx.iter().map(|p| parse_out(p)).collect();
    assert!(out.iter().any(|o| o.payload == b"pong"), "{out:?}");

    // The client resets: the driver is told to kill the program.
    net.send(&TcpSegment {
        dst_port: EXEC_PORT,
        seq: PEER_ISN.add(5),
        flags: Flags::RST,
        ..FROM_PEER
    });
    assert_eq!(
        net.ep.take_relay_events(),
        [RelayEvent::End {
            quad: quad(EXEC_PORT),
            reset: true
        }]
    );
    assert!(net.ep.relay_io(&quad(EXEC_PORT)).is_none());
}

#[test]
fn a_stalled_program_closes_the_clients_window_and_reading_reopens_it() {
    // RFC 9293 §3.8.6: the client's bytes wait in the receive queue until the driver hands
    // them to the program; a program that reads nothing makes the window shrink to zero.
    let mut net = exec_net(8);
    let iss = net.connect(EXEC_PORT);
    net.ep.take_relay_events();
    let mut seq = PEER_ISN.add(1);
    let mut window = u16::MAX;
    let mut sent = 0usize;
    for _ in 0..1000 {
        let n = usize::from(window).min(1000);
        if n == 0 {
            break;
        }
        let data = vec![b'x'; n];
        let out = net.send(&TcpSegment {
            dst_port: EXEC_PORT,
            seq,
            ack: iss.add(1),
            flags: Flags::ACK,
            payload: &data,
            ..FROM_PEER
        });
        seq = seq.add(n as u32);
        sent += n;
        // Each segment is acknowledged (at once or by the delayed-ACK timer).
        let acks = if out.is_empty() { net.advance() } else { out };
        let ack = acks.last().expect("an ACK");
        assert_eq!(ack.ack, seq, "everything in the window is taken");
        window = ack.window;
    }
    assert_eq!(window, 0, "the window closed");
    let q = quad(EXEC_PORT);
    assert_eq!(net.ep.relay_io(&q).unwrap().peer_pending().len(), sent);
    // The program reads it all: a window update opens the window again.
    let mut io = net.ep.relay_io(&q).unwrap();
    while !io.peer_pending().is_empty() {
        let n = io.peer_pending().len();
        io.peer_wrote(n);
    }
    net.ep.relay_changed(&q);
    let mut tx: Vec<Vec<u8>> = Vec::new();
    net.ep.poll(net.now, &mut tx);
    let update = parse_out(tx.last().expect("a window update"));
    assert_eq!(update.ack, seq);
    assert!(update.window > 0, "{update:?}");
}

#[test]
fn a_failed_spawn_resets_the_client_and_is_counted() {
    let mut net = exec_net(8);
    net.connect(EXEC_PORT);
    net.ep.take_relay_events();
    net.ep.relay_spawn_failed(&quad(EXEC_PORT));
    let mut tx: Vec<Vec<u8>> = Vec::new();
    net.ep.poll(net.now, &mut tx);
    let out: Vec<Out> = tx.iter().map(|p| parse_out(p)).collect();
    assert!(out.iter().any(|o| o.flags.rst()), "{out:?}");
    assert_eq!(net.ep.stats().exec_spawn_failures, 1);
}

#[test]
fn past_max_exec_syns_to_exec_ports_are_refused_and_counted() {
    let mut net = exec_net(1);
    net.connect(EXEC_PORT);
    let out = net.send(&TcpSegment {
        src_port: 40001,
        dst_port: EXEC_PORT,
        flags: Flags::SYN,
        ..FROM_PEER
    });
    assert_eq!(out.len(), 1);
    assert!(out[0].flags.rst(), "{out:?}");
    assert_eq!(net.ep.stats().exec_limit, 1);
    // Other services are not limited by it.
    let out = net.send(&TcpSegment {
        src_port: 40002,
        dst_port: 7,
        flags: Flags::SYN,
        ..FROM_PEER
    });
    assert_eq!(out[0].flags, Flags::SYN | Flags::ACK);
}

const FWD_PORT: u16 = 8080;

fn forward_net() -> Net {
    forward_net_with(Limits::default())
}

fn forward_net_with(limits: Limits) -> Net {
    let mut net = Net::v4();
    let spec = crate::services::ForwardSpec::parse("127.0.0.1:8000")
        .unwrap()
        .leak();
    let cfg = EndpointConfig {
        addrs: vec![ip(US4), ip(US6)],
        listeners: vec![
            (7, ServiceKind::Echo),
            (FWD_PORT, ServiceKind::Forward(spec)),
        ],
        time_wait: Duration::from_secs(1),
        ..EndpointConfig::default()
    };
    net.ep = Endpoint::new(cfg, [3; 16], net.now).with_limits(limits);
    net
}

fn fwd_syn(net: &mut Net) -> Vec<Out> {
    net.send(&TcpSegment {
        dst_port: FWD_PORT,
        flags: Flags::SYN,
        options: TcpOptions {
            mss: Some(1460),
            ..TcpOptions::EMPTY
        },
        ..FROM_PEER
    })
}

#[test]
fn forward_syn_waits_for_the_upstream_and_retransmissions_are_absorbed() {
    let mut net = forward_net();
    assert!(
        fwd_syn(&mut net).is_empty(),
        "no SYN,ACK before the upstream answers"
    );
    let events = net.ep.take_relay_events();
    assert!(
        matches!(&events[..], [RelayEvent::Connect { quad: q, target }]
        if *q == quad(FWD_PORT) && target.connect_addr() == "127.0.0.1:8000".parse().unwrap())
    );
    assert!(fwd_syn(&mut net).is_empty());
    assert!(
        net.ep.take_relay_events().is_empty(),
        "one connect per SYN, not per copy"
    );
    assert_eq!(net.ep.stats().forward_syn_absorbed, 1);

    assert!(net.ep.forward_connected(net.now, &quad(FWD_PORT)));
    let mut tx: Vec<Vec<u8>> = Vec::new();
    net.ep.poll(net.now, &mut tx);
    let out: Vec<Out> = tx.iter().map(|p| parse_out(p)).collect();
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].flags, Flags::SYN | Flags::ACK);
    assert_eq!(out[0].ack, PEER_ISN.add(1));
    // Answered once: a second success for the same SYN does nothing.
    assert!(!net.ep.forward_connected(net.now, &quad(FWD_PORT)));

    // A client RST on the half-open connection closes the upstream, abortively.
    net.send(&TcpSegment {
        dst_port: FWD_PORT,
        seq: PEER_ISN.add(1),
        flags: Flags::RST,
        ..FROM_PEER
    });
    assert_eq!(
        net.ep.take_relay_events(),
        [RelayEvent::End {
            quad: quad(FWD_PORT),
            reset: true
        }]
    );
}

/// The next poll sends exactly one segment: RST,ACK to the held SYN.
fn assert_the_syn_is_reset(net: &mut Net) {
    let mut tx: Vec<Vec<u8>> = Vec::new();
    net.ep.poll(net.now, &mut tx);
    let out: Vec<Out> = tx.iter().map(|p| parse_out(p)).collect();
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].flags, Flags::RST | Flags::ACK);
    assert_eq!(out[0].ack, PEER_ISN.add(1));
}

#[test]
fn forward_refused_upstream_resets_the_client_and_unreachable_stays_silent() {
    let mut net = forward_net();
    fwd_syn(&mut net);
    net.ep.forward_refused(&quad(FWD_PORT));
    assert_eq!(net.ep.poll_timeout(), Some(Instant::ZERO));
    assert_the_syn_is_reset(&mut net);
    assert_eq!(net.ep.stats().forward_refused, 1);

    net.ep.take_relay_events();
    fwd_syn(&mut net);
    net.ep.forward_failed(&quad(FWD_PORT));
    let mut tx: Vec<Vec<u8>> = Vec::new();
    net.ep.poll(net.now, &mut tx);
    assert!(
        tx.is_empty(),
        "an unreachable upstream leaves the SYN unanswered"
    );
    assert_eq!(net.ep.stats().forward_connect_failures, 1);
    assert_eq!(net.ep.connection_count(), 0);
}

#[test]
fn a_relay_loop_refuses_the_looped_syn_and_counts_it() {
    let mut net = forward_net();
    fwd_syn(&mut net);
    net.ep.relay_loop(&quad(FWD_PORT));
    assert_the_syn_is_reset(&mut net);
    assert_eq!(net.ep.stats().relay_loops, 1);
    assert_eq!(
        net.ep.stats().forward_refused,
        0,
        "counted as a loop, not a refusal"
    );
    assert_eq!(net.ep.connection_count(), 0);
}

/// `--max-connections` holds for relayed connections too: past it, a SYN is dropped before
/// any upstream is opened for it (no `Connect` for the driver), and counted.
#[test]
fn past_max_connections_a_relayed_syn_opens_no_upstream() {
    let mut net = forward_established(Limits {
        max_connections: 1,
        ..Limits::default()
    });
    let out = net.send(&TcpSegment {
        src_port: 40001,
        dst_port: FWD_PORT,
        flags: Flags::SYN,
        ..FROM_PEER
    });
    assert!(out.is_empty(), "dropped silently: {out:?}");
    assert!(net.ep.take_relay_events().is_empty(), "no upstream for it");
    assert_eq!(net.ep.stats().connection_limit, 1);
}

/// An established `forward:` connection whose upstream ended its output: our FIN is sent
/// (not yet acknowledged). Returns the net and the sequence number after our FIN.
fn forward_closed_by_upstream() -> (Net, SeqNum) {
    let mut net = forward_established(Limits::default());
    net.ep.relay_io(&quad(FWD_PORT)).unwrap().peer_eof();
    net.ep.relay_changed(&quad(FWD_PORT));
    let mut tx: Vec<Vec<u8>> = Vec::new();
    net.ep.poll(net.now, &mut tx);
    let fin = parse_out(tx.last().unwrap());
    assert!(fin.flags.fin(), "{fin:?}");
    (net, fin.seq.add(1))
}

/// An established `forward:` connection (the client's ACK of our SYN,ACK taken), under
/// `limits`.
fn forward_established(limits: Limits) -> Net {
    let mut net = forward_net_with(limits);
    fwd_syn(&mut net);
    assert!(net.ep.forward_connected(net.now, &quad(FWD_PORT)));
    net.ep.take_relay_events();
    let mut tx: Vec<Vec<u8>> = Vec::new();
    net.ep.poll(net.now, &mut tx);
    let iss = parse_out(&tx[0]).seq;
    net.send(&TcpSegment {
        dst_port: FWD_PORT,
        seq: PEER_ISN.add(1),
        ack: iss.add(1),
        flags: Flags::ACK,
        ..FROM_PEER
    });
    net
}

/// Run the endpoint's timers, the client silent, until the connection is gone (at most an
/// hour of virtual time); the relay events it produced.
fn until_gone(net: &mut Net) -> Vec<RelayEvent> {
    let mut events = Vec::new();
    let end = net.now + Duration::from_secs(3600);
    while net.ep.connection_count() > 0 && net.now < end {
        let Some(at) = net.ep.poll_timeout() else {
            break;
        };
        net.now = at.max(net.now);
        let mut tx: Vec<Vec<u8>> = Vec::new();
        net.ep.poll(net.now, &mut tx);
        events.extend(net.ep.take_relay_events());
    }
    events
}

/// Issue 21: "a client that disappears (reset, or timed out by keep-alive or R2) closes its
/// upstream at once": the time-out ends the relay as a reset, so the driver aborts the
/// upstream socket (SO_LINGER 0) rather than leaving it open.
#[test]
fn a_client_timed_out_by_keepalive_or_r2_aborts_its_upstream() {
    // Keep-alive: nothing to send, the client answers no probe.
    let mut net = forward_established(Limits {
        keepalive_ports: vec![(FWD_PORT, Duration::from_secs(30))],
        ..Limits::default()
    });
    let events = until_gone(&mut net);
    assert_eq!(net.ep.connection_count(), 0, "keep-alive gave up");
    assert!(
        matches!(&events[..], [RelayEvent::End { quad: q, reset: true }] if *q == quad(FWD_PORT)),
        "{events:?}"
    );
    // R2: the upstream's bytes are never acknowledged.
    let mut net = forward_established(Limits::default());
    let mut relay = net.ep.relay_io(&quad(FWD_PORT)).unwrap();
    let n = relay.peer_read_with(100, &mut |buf: &mut [u8]| {
        buf.fill(b'u');
        buf.len()
    });
    assert_eq!(n, 100);
    net.ep.relay_changed(&quad(FWD_PORT));
    let events = until_gone(&mut net);
    assert_eq!(net.ep.connection_count(), 0, "retransmissions gave up");
    assert!(
        matches!(&events[..], [RelayEvent::End { quad: q, reset: true }] if *q == quad(FWD_PORT)),
        "{events:?}"
    );
}

#[test]
fn a_syn_reopening_time_wait_on_a_forward_port_is_held_and_gets_a_higher_iss() {
    // The upstream closes first: our FIN; the client answers with its own: TIME-WAIT here.
    let (mut net, our_fin_end) = forward_closed_by_upstream();
    net.send(&TcpSegment {
        dst_port: FWD_PORT,
        seq: PEER_ISN.add(1),
        ack: our_fin_end,
        flags: Flags::ACK | Flags::FIN,
        ..FROM_PEER
    });
    assert_eq!(
        net.ep.connection_state(&quad(FWD_PORT)),
        Some(State::TimeWait)
    );
    // Nothing more can pass: its upstream is closed at once, not when TIME-WAIT ends.
    assert_eq!(
        net.ep.take_relay_events(),
        [RelayEvent::End {
            quad: quad(FWD_PORT),
            reset: false
        }]
    );

    // A new SYN above RCV.NXT: the old connection ends, the SYN waits for its upstream.
    let out = net.send(&TcpSegment {
        dst_port: FWD_PORT,
        seq: PEER_ISN.add(100_000),
        flags: Flags::SYN,
        ..FROM_PEER
    });
    assert!(out.is_empty(), "{out:?}");
    let events = net.ep.take_relay_events();
    assert!(
        !events.iter().any(|e| matches!(e, RelayEvent::End { .. })),
        "its upstream was closed already: {events:?}"
    );
    assert!(
        events
            .iter()
            .any(|e| matches!(e, RelayEvent::Connect { .. }))
    );
    assert!(net.ep.forward_connected(net.now, &quad(FWD_PORT)));
    let mut tx: Vec<Vec<u8>> = Vec::new();
    net.ep.poll(net.now, &mut tx);
    let out: Vec<Out> = tx.iter().map(|p| parse_out(p)).collect();
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].flags, Flags::SYN | Flags::ACK);
    assert_eq!(out[0].ack, PEER_ISN.add(100_001));
    assert!(
        out[0].seq.gt(our_fin_end),
        "MAY-2: the new ISS is above the old SND.NXT"
    );
    assert_eq!(net.ep.connection_count(), 1);
}

#[test]
fn a_forward_connection_in_time_wait_closes_its_upstream_once_the_last_bytes_are_handed_on() {
    // The upstream ends its output first: our FIN, acknowledged: FIN-WAIT-2.
    let (mut net, our_fin_end) = forward_closed_by_upstream();
    net.send(&TcpSegment {
        dst_port: FWD_PORT,
        seq: PEER_ISN.add(1),
        ack: our_fin_end,
        flags: Flags::ACK,
        ..FROM_PEER
    });
    // The client's last words and its FIN together: TIME-WAIT, with them still queued.
    net.send(&TcpSegment {
        dst_port: FWD_PORT,
        seq: PEER_ISN.add(1),
        ack: our_fin_end,
        flags: Flags::ACK | Flags::FIN,
        payload: b"last words",
        ..FROM_PEER
    });
    let q = quad(FWD_PORT);
    assert_eq!(net.ep.connection_state(&q), Some(State::TimeWait));
    assert!(
        net.ep.take_relay_events().is_empty(),
        "the upstream stays until it has the bytes"
    );
    // The driver hands them on (then shuts the upstream's input): now it may close it.
    let mut io = net.ep.relay_io(&q).unwrap();
    assert_eq!(io.peer_pending(), b"last words");
    io.peer_wrote(10);
    assert!(io.peer_should_shut_input());
    net.ep.relay_changed(&q);
    let mut tx: Vec<Vec<u8>> = Vec::new();
    net.ep.poll(net.now, &mut tx);
    assert_eq!(
        net.ep.take_relay_events(),
        [RelayEvent::End {
            quad: q,
            reset: false
        }]
    );
    assert_eq!(net.ep.connection_state(&q), Some(State::TimeWait));
    // When TIME-WAIT ends, nothing more is said about it.
    while net.ep.connection_state(&q).is_some() {
        net.advance();
    }
    assert!(net.ep.take_relay_events().is_empty());
}

#[test]
fn only_relayed_connections_that_ran_are_reported_to_the_driver() {
    let mut net = exec_net(8);
    let iss = net.connect(EXEC_PORT);
    let mut ran = Vec::new();
    net.ep.take_relay_ready(&mut ran);
    assert_eq!(ran, [quad(EXEC_PORT)], "its handshake ran it");
    ran.clear();
    let out = net.send(&TcpSegment {
        dst_port: 7,
        src_port: 40001,
        flags: Flags::SYN,
        ..FROM_PEER
    });
    assert_eq!(out.len(), 1, "echo's SYN,ACK");
    net.ep.take_relay_ready(&mut ran);
    assert!(
        ran.is_empty(),
        "an echo connection is not the driver's: {ran:?}"
    );
    // Data for the exec connection: reported once, however often it runs before the take.
    for i in 0..3u32 {
        net.send(&TcpSegment {
            dst_port: EXEC_PORT,
            seq: PEER_ISN.add(1 + i),
            ack: iss.add(1),
            flags: Flags::ACK,
            payload: b"x",
            ..FROM_PEER
        });
    }
    net.ep.take_relay_ready(&mut ran);
    assert_eq!(ran, [quad(EXEC_PORT)]);
    ran.clear();
    // Nothing happened since: nothing to look at.
    let mut tx: Vec<Vec<u8>> = Vec::new();
    net.ep.poll(net.now, &mut tx);
    net.ep.take_relay_ready(&mut ran);
    assert!(ran.is_empty(), "{ran:?}");
    // The driver moved bytes: it runs, and is reported again.
    net.ep.relay_io(&quad(EXEC_PORT)).unwrap().peer_wrote(3);
    net.ep.relay_changed(&quad(EXEC_PORT));
    net.ep.poll(net.now, &mut tx);
    net.ep.take_relay_ready(&mut ran);
    assert_eq!(ran, [quad(EXEC_PORT)]);
}

/// `--addr any -l '*=direct'` beside `-l 7=echo` (issue #21).
fn transparent_net() -> Net {
    let mut net = Net::v4();
    let cfg = EndpointConfig {
        addrs: vec![ip(US4), ip(US6)],
        any_addr: true,
        listeners: vec![(7, ServiceKind::Echo), (0, ServiceKind::Direct)],
        time_wait: Duration::from_secs(1),
        ..EndpointConfig::default()
    };
    net.ep = Endpoint::new(cfg, [3; 16], net.now);
    net
}

#[test]
fn with_addr_any_a_syn_to_any_destination_is_held_for_a_direct_upstream() {
    let mut net = transparent_net();
    net.us = ip("198.19.1.10");
    let out = net.send(&TcpSegment {
        dst_port: 443,
        flags: Flags::SYN,
        ..FROM_PEER
    });
    assert!(out.is_empty(), "no SYN,ACK before the upstream answers");
    let events = net.ep.take_relay_events();
    let want: std::net::SocketAddr = "198.19.1.10:443".parse().unwrap();
    assert!(
        matches!(&events[..], [RelayEvent::Connect { target: crate::services::UpstreamTarget::Direct(d), .. }] if *d == want),
        "{events:?}"
    );
    let q = Quad {
        local: want,
        remote: std::net::SocketAddr::new(ip(PEER4), 40000),
    };
    assert!(net.ep.forward_connected(net.now, &q));
    let mut tx: Vec<Vec<u8>> = Vec::new();
    net.ep.poll(net.now, &mut tx);
    let out: Vec<Out> = tx.iter().map(|p| parse_out(p)).collect();
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].flags, Flags::SYN | Flags::ACK);
    assert_eq!(out[0].src, ip("198.19.1.10"), "answered as the destination");
    // A port with a listener of its own keeps it, on our own address.
    net.us = ip(US4);
    let out = net.send(&TcpSegment {
        dst_port: 7,
        flags: Flags::SYN,
        ..FROM_PEER
    });
    assert_eq!(
        out[0].flags,
        Flags::SYN | Flags::ACK,
        "echo answers at once"
    );
}

/// `direct` relays a connection to where its client asked: to synack's own address that is
/// synack itself (or, through `--upstream-interface`, an address of ours sent out of the
/// machine). Such a SYN finds the port closed, as with no listener: RST, no upstream.
#[test]
fn direct_never_relays_a_connection_to_our_own_address() {
    let mut net = transparent_net();
    let out = net.send(&TcpSegment {
        dst_port: 5555,
        flags: Flags::SYN,
        ..FROM_PEER
    });
    assert_eq!(out.len(), 1, "{out:?}");
    assert_eq!(out[0].flags, Flags::RST | Flags::ACK);
    assert!(net.ep.take_relay_events().is_empty(), "no upstream opened");
    // The same port on a relayed destination is held for its upstream.
    net.us = ip("198.19.1.10");
    assert!(
        net.send(&TcpSegment {
            dst_port: 5555,
            flags: Flags::SYN,
            ..FROM_PEER
        })
        .is_empty()
    );
    assert_eq!(net.ep.take_relay_events().len(), 1);
}

#[test]
fn with_addr_any_pings_are_answered_only_for_our_own_addresses() {
    let mut net = transparent_net();
    // Linux's ping through a TUN (to 198.18.0.2), readdressed: the IPv4 header checksum is
    // recomputed (ICMP's does not cover the addresses).
    let ping = |dst: std::net::Ipv4Addr| {
        use crate::wire::testutil::{LINUX_PING_V4, hex};
        let mut p = hex(LINUX_PING_V4);
        p[16..20].copy_from_slice(&dst.octets());
        p[10..12].copy_from_slice(&[0, 0]);
        let sum: u32 = p[..20]
            .chunks(2)
            .map(|w| u32::from(u16::from_be_bytes([w[0], w[1]])))
            .sum();
        let folded = (sum & 0xffff) + (sum >> 16);
        let folded = (folded & 0xffff) + (folded >> 16);
        p[10..12].copy_from_slice(&(!(folded as u16)).to_be_bytes());
        p
    };
    let mut tx: Vec<Vec<u8>> = Vec::new();
    net.ep
        .receive(net.now, &ping("198.18.0.2".parse().unwrap()), &mut tx);
    assert_eq!(net.ep.stats().echo_replies, 1);
    net.ep
        .receive(net.now, &ping("198.19.1.10".parse().unwrap()), &mut tx);
    assert_eq!(
        net.ep.stats().echo_replies,
        1,
        "not for a destination we relay"
    );
    // Without --addr any, a SYN to another address is not ours.
    let mut plain = forward_net();
    plain.us = ip("198.19.1.10");
    let out = plain.send(&TcpSegment {
        dst_port: FWD_PORT,
        flags: Flags::SYN,
        ..FROM_PEER
    });
    assert!(out.is_empty());
    assert_eq!(plain.ep.stats().not_ours, 1);
}

/// A UDP datagram (DNS routed into the interface with the rest) is dropped and counted, with
/// `--addr any` as without it: synack relays TCP only (issue 21, README).
#[test]
fn with_addr_any_udp_is_dropped_and_counted() {
    let mut net = transparent_net();
    let mut tx: Vec<Vec<u8>> = Vec::new();
    let datagram = |src: [u8; 4], dst: [u8; 4]| {
        let mut p = Vec::new();
        etherparse::PacketBuilder::ipv4(src, dst, 64)
            .udp(40000, 53)
            .write(&mut p, b"a DNS query")
            .unwrap();
        p
    };
    net.ep.receive(
        net.now,
        &datagram([198, 18, 0, 1], [198, 19, 1, 10]),
        &mut tx,
    );
    net.ep.receive(
        net.now,
        &datagram([198, 18, 0, 1], [198, 18, 0, 2]),
        &mut tx,
    );
    let mut v6 = Vec::new();
    let octets = |s: &str| match ip(s) {
        IpAddr::V6(a) => a.octets(),
        IpAddr::V4(a) => a.to_ipv6_mapped().octets(),
    };
    etherparse::PacketBuilder::ipv6(octets(PEER6), octets("2001:2:1::10"), 64)
        .udp(40000, 53)
        .write(&mut v6, b"a DNS query")
        .unwrap();
    net.ep.receive(net.now, &v6, &mut tx);
    net.ep.poll(net.now, &mut tx);
    assert!(tx.is_empty(), "nothing answers a datagram: {tx:?}");
    assert_eq!(net.ep.stats().udp_dropped, 3);
    assert_eq!(net.ep.connection_count(), 0);
}

#[test]
fn a_direct_destination_the_host_cannot_reach_answers_the_client_with_that_icmp_error() {
    for (kind, peer, dest) in [
        (
            crate::wire::IcmpErrorKind::HostUnreachable,
            PEER4,
            "198.19.1.99:443",
        ),
        (
            crate::wire::IcmpErrorKind::NetUnreachable,
            PEER4,
            "198.19.7.1:80",
        ),
        (
            crate::wire::IcmpErrorKind::HostUnreachable,
            PEER6,
            "[2001:2:1::99]:80",
        ),
    ] {
        let mut net = transparent_net();
        let dest: std::net::SocketAddr = dest.parse().unwrap();
        net.us = dest.ip();
        net.peer = ip(peer);
        net.send(&TcpSegment {
            dst_port: dest.port(),
            flags: Flags::SYN,
            ..FROM_PEER
        });
        assert_eq!(net.ep.take_relay_events().len(), 1);
        let q = Quad {
            local: dest,
            remote: std::net::SocketAddr::new(ip(peer), 40000),
        };
        net.ep.forward_unreachable(&q, kind);
        assert_eq!(net.ep.poll_timeout(), Some(Instant::ZERO));
        let mut tx: Vec<Vec<u8>> = Vec::new();
        net.ep.poll(net.now, &mut tx);
        assert_eq!(tx.len(), 1, "one ICMP error, no RST");
        match crate::wire::parse(&tx[0]) {
            Ok(crate::wire::Packet::IcmpError { src, dst, error }) => {
                assert_eq!(src, dest.ip(), "sent as the destination");
                assert_eq!(dst, ip(peer));
                assert_eq!(error.kind, kind);
                // The quote is the client's SYN, as the client's TCP will look it up.
                assert_eq!(
                    error.quad,
                    Quad {
                        local: q.remote,
                        remote: dest
                    }
                );
                assert_eq!(error.seq, PEER_ISN);
            }
            other => panic!("not an ICMP error: {other:?}"),
        }
        let stats = net.ep.stats();
        assert_eq!(
            (stats.forward_unreachable, stats.forward_connect_failures),
            (1, 1)
        );
        assert_eq!(net.ep.connection_count(), 0);
        // Answered once.
        net.ep.forward_unreachable(&q, kind);
        let mut tx: Vec<Vec<u8>> = Vec::new();
        net.ep.poll(net.now, &mut tx);
        assert!(tx.is_empty());
    }
}
