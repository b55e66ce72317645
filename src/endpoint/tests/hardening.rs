//! SYN floods and resource limits (RFC 4987, issue #4), as the peer sees them on the wire.

use super::*;

/// A sent packet, with what `Out` leaves out: the window and the options.
#[derive(Debug, Clone)]
pub(super) struct Seg {
    pub(super) seq: SeqNum,
    pub(super) ack: SeqNum,
    pub(super) flags: Flags,
    pub(super) window: u16,
    pub(super) options: TcpOptions,
    pub(super) payload: Vec<u8>,
}

pub(super) fn net_with(limits: Limits) -> Net {
    net_with_config(limits, test_config())
}

/// The configuration of `Net::v4`'s endpoint: echo on 7, http on 80, MTU 1500.
pub(super) fn test_config() -> EndpointConfig {
    EndpointConfig {
        addrs: vec![ip(US4), ip(US6)],
        listeners: vec![(7, ServiceKind::Echo), (80, ServiceKind::Http)],
        mtu: 1500,
        time_wait: Duration::from_secs(1),
        ..EndpointConfig::default()
    }
}

pub(super) fn net_with_config(limits: Limits, cfg: EndpointConfig) -> Net {
    let mut net = Net::v4();
    net.ep = Endpoint::new(cfg, [3; 16], net.now).with_limits(limits);
    net
}

/// `net_with`, but without the per-connection minimum buffers (`--rmem`/`--wmem` MIN) that
/// are guaranteed even at the memory limit, so that the limit is exact.
fn net_without_floors(limits: Limits) -> Net {
    let mut net = net_with(limits.clone());
    let cfg = EndpointConfig {
        addrs: vec![ip(US4), ip(US6)],
        listeners: vec![(7, ServiceKind::Echo), (80, ServiceKind::Http)],
        mtu: 1500,
        time_wait: Duration::from_secs(1),
        rmem: tcp::BufferSizes {
            min: 0,
            ..tcp::BufferSizes::RMEM
        },
        wmem: tcp::BufferSizes {
            min: 0,
            ..tcp::BufferSizes::WMEM
        },
        ..EndpointConfig::default()
    };
    net.ep = Endpoint::new(cfg, [3; 16], net.now).with_limits(limits);
    net
}

pub(super) fn backlog(n: usize) -> Limits {
    Limits {
        backlog: n,
        ..Limits::default()
    }
}

impl Net {
    /// Advance to the next deadline that makes the endpoint send something (the timer heap
    /// may hold deadlines of cancelled timers, which send nothing).
    pub(super) fn next_output(&mut self, limit: Duration) -> Vec<Out> {
        let until = self.now + limit;
        while let Some(at) = self.ep.poll_timeout() {
            if at > until {
                break;
            }
            let out = self.advance();
            if !out.is_empty() {
                return out;
            }
        }
        Vec::new()
    }

    /// Deliver a segment and poll (or not), returning what came out with windows and options.
    pub(super) fn exchange(&mut self, seg: &TcpSegment<'_>, poll: bool) -> Vec<Seg> {
        let mut buf = vec![0; 2000];
        let n = wire::emit_tcp(&mut buf, self.peer, self.us, seg).unwrap();
        let mut tx: Vec<Vec<u8>> = Vec::new();
        self.ep.receive(self.now, &buf[..n], &mut tx);
        if poll {
            self.ep.poll(self.now, &mut tx);
        }
        tx.iter().map(|p| seg_of(p)).collect()
    }

    pub(super) fn poll_now(&mut self) -> Vec<Seg> {
        let mut tx: Vec<Vec<u8>> = Vec::new();
        self.ep.poll(self.now, &mut tx);
        tx.iter().map(|p| seg_of(p)).collect()
    }
}

pub(super) fn seg_of(p: &[u8]) -> Seg {
    match wire::parse(p).expect("we emit valid packets") {
        Packet::Tcp { seg, .. } => Seg {
            seq: seg.seq,
            ack: seg.ack,
            flags: seg.flags,
            window: seg.window,
            options: seg.options,
            payload: seg.payload.to_vec(),
        },
        other => panic!("not TCP: {other:?}"),
    }
}

pub(super) fn quad_from(port: u16) -> Quad {
    Quad {
        local: "198.18.0.2:7".parse().unwrap(),
        remote: SocketAddr::new(ip(PEER4), port),
    }
}

/// A SYN from `port` with MSS 1400 (and `options` otherwise).
pub(super) fn syn_from(port: u16, options: TcpOptions) -> TcpSegment<'static> {
    TcpSegment {
        src_port: port,
        flags: Flags::SYN,
        options,
        ..FROM_PEER
    }
}

const MSS_1400: TcpOptions = TcpOptions {
    mss: Some(1400),
    ..TcpOptions::EMPTY
};

/// Linux's SYN options: MSS, SACK-permitted, timestamps, window scale 7.
pub(super) const LINUX_SYN: TcpOptions = TcpOptions {
    mss: Some(1460),
    window_scale: Some(7),
    sack_permitted: true,
    timestamps: Some((1_000, 0)),
    ..TcpOptions::EMPTY
};

/// Fill port 7's half-open queue (`n` SYNs from ports 1000..), collecting the SYN,ACKs.
pub(super) fn fill_backlog(net: &mut Net, n: u16) {
    for port in 1000..1000 + n {
        let out = net.exchange(&syn_from(port, MSS_1400), true);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].flags, Flags::SYN | Flags::ACK);
    }
    assert_eq!(net.ep.queue_lengths(7), Some((usize::from(n), 0)));
}

#[test]
fn syns_beyond_the_backlog_get_cookies_and_create_no_state() {
    let mut net = net_with(backlog(4));
    fill_backlog(&mut net, 4);
    for port in 2000..2100 {
        let out = net.exchange(&syn_from(port, MSS_1400), true);
        assert_eq!(out.len(), 1, "every SYN is answered");
        assert_eq!(out[0].flags, Flags::SYN | Flags::ACK);
        assert_eq!(out[0].ack, PEER_ISN.add(1));
        assert_eq!(out[0].options.mss, Some(1460), "our MSS, as on any SYN,ACK");
    }
    assert_eq!(net.ep.connection_count(), 4);
    assert_eq!(net.ep.queue_lengths(7), Some((4, 0)));
    let s = net.ep.stats();
    assert_eq!((s.backlog_full, s.syn_cookies_sent), (100, 100));
    // The other listener has a queue of its own.
    let out = net.exchange(
        &TcpSegment {
            dst_port: 80,
            ..syn_from(3000, MSS_1400)
        },
        true,
    );
    assert_eq!(out.len(), 1);
    assert_eq!(net.ep.connection_count(), 5);
}

#[test]
fn a_cookie_ack_opens_an_established_connection_that_echoes() {
    let mut net = net_with(backlog(1));
    fill_backlog(&mut net, 1);
    let out = net.exchange(&syn_from(5000, MSS_1400), true);
    let cookie = out[0].seq;
    // Without timestamps, window scaling and SACK cannot be kept, so they are not offered.
    assert_eq!(out[0].options.window_scale, None);
    assert!(!out[0].options.sack_permitted);
    let out = net.exchange(
        &TcpSegment {
            src_port: 5000,
            seq: PEER_ISN.add(1),
            ack: cookie.add(1),
            flags: Flags::ACK | Flags::PSH,
            payload: b"cookie",
            ..FROM_PEER
        },
        true,
    );
    assert_eq!(
        net.ep.connection_state(&quad_from(5000)),
        Some(State::Established)
    );
    assert_eq!(net.ep.stats().syn_cookies_accepted, 1);
    let echoed: Vec<u8> = out.iter().flat_map(|s| s.payload.clone()).collect();
    assert_eq!(echoed, b"cookie");
    // The diagram shows the handshake the cookie stood for, its SYN,ACK labelled.
    let ladders = net.ep.ladders();
    let ladder = &ladders
        .iter()
        .find(|(q, _)| q.remote.port() == 5000)
        .expect("the cookie's connection")
        .1;
    assert!(
        ladder.contains("LISTEN → SYN-RECEIVED") && ladder.contains("[SYN cookie]"),
        "{ladder}"
    );
    assert!(
        out.iter()
            .all(|s| s.seq == cookie.add(1) && s.ack == PEER_ISN.add(7))
    );
}

#[test]
fn a_cookie_keeps_the_mss_window_scale_and_sack_through_the_timestamp() {
    let mut net = net_with(backlog(1));
    fill_backlog(&mut net, 1);
    let out = net.exchange(&syn_from(5001, LINUX_SYN), true);
    let sa = &out[0];
    let cookie = sa.seq;
    assert_eq!(
        sa.options.window_scale,
        Some(10),
        "our shift for a receive buffer of up to 32 MiB"
    );
    assert!(sa.options.sack_permitted);
    let (tsval, tsecr) = sa.options.timestamps.expect("timestamps offered back");
    assert_eq!(tsecr, 1_000);
    assert_eq!(
        tsval & 0x0f,
        7,
        "the peer's shift rides in TSval's low bits"
    );
    assert_ne!(tsval & 0x10, 0, "and SACK-permitted");
    net.exchange(
        &TcpSegment {
            src_port: 5001,
            seq: PEER_ISN.add(1),
            ack: cookie.add(1),
            flags: Flags::ACK,
            window: 1000,
            options: TcpOptions {
                timestamps: Some((1_001, tsval)),
                ..TcpOptions::EMPTY
            },
            ..FROM_PEER
        },
        true,
    );
    let quad = quad_from(5001);
    assert_eq!(net.ep.connection_state(&quad), Some(State::Established));
    let info = net.ep.connection_info(&quad).unwrap();
    assert_eq!(info.send_mss, 1460, "MSS 1460 is in the table");
    assert_eq!(info.window_scale, Some((10, 7)));
    assert!(info.sack_permitted && info.timestamps);
    assert_eq!(info.iss, cookie);
}

#[test]
fn forged_and_stale_cookie_acks_create_nothing_and_get_a_rst() {
    let mut net = net_with(backlog(1));
    fill_backlog(&mut net, 1);
    let out = net.exchange(&syn_from(5002, MSS_1400), true);
    let cookie = out[0].seq;
    let ack = |ack: SeqNum| TcpSegment {
        src_port: 5002,
        seq: PEER_ISN.add(1),
        ack,
        flags: Flags::ACK,
        ..FROM_PEER
    };
    // (As in Linux's layout, ACKs a few below or above the cookie decode to another MSS of
    // the table: only someone who saw the cookie can send them.)
    for forged in [
        cookie.add(100),
        cookie.sub(100),
        cookie.add(1 << 24),
        SeqNum::new(12345),
    ] {
        let out = net.exchange(&ack(forged), true);
        assert_eq!(out.len(), 1);
        assert_eq!(
            out[0].flags,
            Flags::RST,
            "answered as LISTEN answers a stray ACK"
        );
        assert_eq!(out[0].seq, forged);
    }
    assert_eq!(net.ep.stats().syn_cookies_rejected, 4);
    assert_eq!(net.ep.connection_state(&quad_from(5002)), None);
    // Two minutes later the genuine cookie is stale.
    net.now += Duration::from_secs(121);
    let out = net.exchange(&ack(cookie.add(1)), true);
    assert!(
        out.iter()
            .any(|s| s.flags == Flags::RST && s.seq == cookie.add(1))
    );
    assert_eq!(net.ep.connection_state(&quad_from(5002)), None);
}

#[test]
fn without_a_recent_overflow_acks_are_not_taken_as_cookies() {
    let mut net = net_with(backlog(1));
    fill_backlog(&mut net, 1);
    let out = net.exchange(&syn_from(5003, MSS_1400), true);
    let cookie = out[0].seq;
    // A listener that never overflowed does not check cookies (Linux:
    // tcp_synq_no_recent_overflow): port 80's ACK with the same numbers is a stray.
    let out = net.exchange(
        &TcpSegment {
            src_port: 5003,
            dst_port: 80,
            seq: PEER_ISN.add(1),
            ack: cookie.add(1),
            flags: Flags::ACK,
            ..FROM_PEER
        },
        true,
    );
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].flags, Flags::RST);
    assert_eq!(net.ep.stats().syn_cookies_rejected, 0);
}

#[test]
fn a_full_accept_queue_drops_the_final_ack_until_the_service_runs() {
    let mut net = net_with(backlog(1));
    let sa = net.exchange(&syn_from(6000, MSS_1400), true);
    let cookie_sa = net.exchange(&syn_from(6001, MSS_1400), true);
    assert_eq!(net.ep.stats().syn_cookies_sent, 1);
    // Both final ACKs arrive in one batch, before the services run.
    let final_ack = |port: u16, iss: SeqNum| TcpSegment {
        src_port: port,
        seq: PEER_ISN.add(1),
        ack: iss.add(1),
        flags: Flags::ACK,
        ..FROM_PEER
    };
    net.exchange(&final_ack(6000, sa[0].seq), false);
    assert_eq!(net.ep.queue_lengths(7), Some((0, 1)));
    net.exchange(&final_ack(6001, cookie_sa[0].seq), false);
    assert_eq!(net.ep.stats().accept_queue_full, 1);
    // Linux counts an accept-queue overflow as both ListenOverflows and ListenDrops.
    assert_eq!(net.ep.stats().listen_drops, 1);
    assert_eq!(net.ep.connection_state(&quad_from(6001)), None);
    net.poll_now();
    assert_eq!(net.ep.queue_lengths(7), Some((0, 0)), "the service took it");
    // The retransmitted final ACK now gets in.
    net.exchange(&final_ack(6001, cookie_sa[0].seq), true);
    assert_eq!(
        net.ep.connection_state(&quad_from(6001)),
        Some(State::Established)
    );
}

#[test]
fn past_max_connections_syns_are_dropped_silently_and_existing_ones_live() {
    let mut net = net_with(Limits {
        max_connections: 1,
        ..Limits::default()
    });
    let iss = net.connect(7);
    let out = net.exchange(&syn_from(7000, MSS_1400), true);
    assert!(out.is_empty(), "no SYN,ACK and no RST: {out:?}");
    assert_eq!(net.ep.stats().connection_limit, 1);
    assert_eq!(
        net.ep.stats().listen_drops,
        1,
        "a SYN dropped at a listener"
    );
    assert_eq!(net.ep.connection_count(), 1);
    let out = net.send(&TcpSegment {
        seq: PEER_ISN.add(1),
        ack: iss.add(1),
        flags: Flags::ACK | Flags::PSH,
        payload: b"alive",
        ..FROM_PEER
    });
    let echoed: Vec<u8> = out.iter().flat_map(|o| o.payload.clone()).collect();
    assert_eq!(echoed, b"alive");
}

#[test]
fn the_buffer_memory_cap_bounds_bytes_held_and_never_shrinks_a_window() {
    let cap = 40_000;
    let mut net = net_without_floors(Limits {
        max_buffer_memory: cap,
        ..Limits::default()
    });
    // Windows offered are not charged: both connections offer all the memory there is.
    let first = net.exchange(&syn_from(8000, MSS_1400), true);
    assert_eq!(first[0].window, 40_000);
    let second = net.exchange(&syn_from(8001, MSS_1400), true);
    assert_eq!(second[0].window, 40_000, "nothing is held yet");
    assert_eq!(net.ep.memory_used(), 0);
    // The first connection echoes 60 kB to a peer whose window is closed: what it holds
    // (echo's send queue) grows to the cap and no further; data beyond it is dropped and
    // counted, and our right edge never moves left.
    let iss = first[0].seq;
    let mut right_edge = PEER_ISN.add(1).add(40_000);
    let mut seq = PEER_ISN.add(1);
    let chunk = [7u8; 1000];
    for _ in 0..60 {
        let out = net.exchange(
            &TcpSegment {
                src_port: 8000,
                seq,
                ack: iss.add(1),
                flags: Flags::ACK,
                window: 0,
                payload: &chunk,
                ..FROM_PEER
            },
            true,
        );
        for o in &out {
            let edge = o.ack.add(u32::from(o.window));
            assert!(edge.ge(right_edge), "window shrank: {o:?}");
            right_edge = edge;
        }
        // A delayed ACK says nothing: the segment was taken.
        seq = out.last().map_or(seq.add(1000), |o| o.ack);
        assert!(net.ep.memory_used() <= cap, "{}", net.ep.memory_used());
    }
    assert_eq!(net.ep.memory_used(), cap);
    assert_eq!(
        seq.distance_from(PEER_ISN.add(1)),
        40_000,
        "exactly the cap was taken"
    );
    // The second connection was offered a window, but the memory is used up: its data is
    // dropped and counted.
    let out = net.exchange(
        &TcpSegment {
            src_port: 8001,
            seq: PEER_ISN.add(1),
            ack: second[0].seq.add(1),
            flags: Flags::ACK,
            window: 0,
            payload: &chunk,
            ..FROM_PEER
        },
        true,
    );
    assert_eq!(out.last().map(|o| o.ack), Some(PEER_ISN.add(1)), "dropped");
    let stats = net.ep.stats();
    assert_eq!(stats.rcv_memory_drops, 1);
    assert_eq!(stats.memory_pressure_entered, 1);
    // Counted once per connection that became limited, not once per pass (60 exchanges).
    let limited = stats.buffer_memory_limited;
    assert!(
        (1..=2).contains(&limited),
        "buffer_memory_limited = {limited}"
    );
    // The peer opens its window and takes everything: memory frees, pressure ends, and new
    // data is taken and echoed again.
    let mut acked = 0u32;
    for _ in 0..20 {
        let out = net.exchange(
            &TcpSegment {
                src_port: 8000,
                seq,
                ack: iss.add(1).add(acked),
                flags: Flags::ACK,
                window: u16::MAX,
                ..FROM_PEER
            },
            true,
        );
        acked += out.iter().map(|o| o.payload.len() as u32).sum::<u32>();
        if acked == 40_000 && net.ep.memory_used() == 0 {
            break;
        }
    }
    assert_eq!(net.ep.memory_used(), 0);
    assert!(!net.ep.memory_pressure());
    let out = net.exchange(
        &TcpSegment {
            src_port: 8000,
            seq,
            ack: iss.add(1).add(acked),
            flags: Flags::ACK,
            window: u16::MAX,
            payload: &chunk,
            ..FROM_PEER
        },
        true,
    );
    let echoed: usize = out.iter().map(|o| o.payload.len()).sum();
    assert_eq!(echoed, 1000);
}

/// Send `n` segments of 1000 bytes on the connection from `port` (whose ISS is `iss`), with
/// the peer's window closed so that echo holds what it reads; returns the next sequence
/// number and our last window.
fn fill(net: &mut Net, port: u16, iss: SeqNum, n: usize) -> (SeqNum, u16) {
    let mut seq = PEER_ISN.add(1);
    let mut window = 0;
    for _ in 0..n {
        let out = net.exchange(
            &TcpSegment {
                src_port: port,
                seq,
                ack: iss.add(1),
                flags: Flags::ACK,
                window: 0,
                payload: &[1; 1000],
                ..FROM_PEER
            },
            true,
        );
        // A delayed ACK says nothing: the segment was taken.
        seq = out.last().map_or(seq.add(1000), |o| o.ack);
        window = out.last().map_or(window, |o| o.window);
    }
    (seq, window)
}

#[test]
fn a_window_held_back_by_memory_is_updated_as_soon_as_memory_frees() {
    let cap = 40_000;
    let mut net = net_without_floors(Limits {
        max_buffer_memory: cap,
        ..Limits::default()
    });
    // Connection A holds 39,000 bytes echo cannot send (its peer's window is 0).
    let a = net.exchange(&syn_from(8100, MSS_1400), true)[0].seq;
    let (seq_a, _) = fill(&mut net, 8100, a, 39);
    assert_eq!(net.ep.memory_used(), 39_000);
    // B can be offered only the last 1000 bytes; once it holds them its window is zero.
    let sa = net.exchange(&syn_from(8101, MSS_1400), true);
    assert_eq!(sa[0].window, 1000);
    let b = sa[0].seq;
    let (seq_b, window) = fill(&mut net, 8101, b, 1);
    assert_eq!((seq_b, window), (PEER_ISN.add(1001), 0));
    assert_eq!(net.ep.memory_used(), cap);
    // A's peer opens its window, A sends, and the peer acknowledges it: memory frees, and B's
    // window update goes out at once, without a zero-window probe from B's peer.
    let out = net.exchange(
        &TcpSegment {
            src_port: 8100,
            seq: seq_a,
            ack: a.add(1),
            flags: Flags::ACK,
            window: u16::MAX,
            ..FROM_PEER
        },
        true,
    );
    let sent = out.iter().map(|o| o.payload.len()).sum::<usize>();
    assert!(sent > 2 * 1400, "{sent}");
    assert!(
        out.iter().all(|o| o.ack != PEER_ISN.add(1001)),
        "nothing for B yet"
    );
    let out = net.exchange(
        &TcpSegment {
            src_port: 8100,
            seq: seq_a,
            ack: a.add(1).add(sent as u32),
            flags: Flags::ACK,
            window: 0,
            ..FROM_PEER
        },
        true,
    );
    let to_b: Vec<&Seg> = out.iter().filter(|o| o.ack == PEER_ISN.add(1001)).collect();
    assert_eq!(to_b.len(), 1, "one window update to B: {out:?}");
    assert!(to_b[0].window > 0);
}

#[test]
fn under_a_small_budget_every_connection_is_echoed_at_once() {
    // 16 KiB of buffer memory and 200 connections: windows offered are not charged, so each
    // connection gets a window, and each line is echoed as soon as it arrives (not when the
    // client's FIN comes).
    let mut net = net_with(Limits {
        max_buffer_memory: 16 << 10,
        ..Limits::default()
    });
    let mut isses = Vec::new();
    for i in 0..200u16 {
        let sa = net.exchange(&syn_from(9000 + i, MSS_1400), true);
        assert!(sa[0].window > 0, "connection {i} offered a zero window");
        isses.push(sa[0].seq);
    }
    for (i, iss) in isses.iter().enumerate() {
        let out = net.exchange(
            &TcpSegment {
                src_port: 9000 + i as u16,
                seq: PEER_ISN.add(1),
                ack: iss.add(1),
                flags: Flags::ACK | Flags::PSH,
                window: u16::MAX,
                payload: b"a line to echo\n",
                ..FROM_PEER
            },
            true,
        );
        let echoed: Vec<u8> = out.iter().flat_map(|o| o.payload.clone()).collect();
        assert_eq!(echoed, b"a line to echo\n", "connection {i}");
    }
    assert_eq!(net.ep.stats().rcv_memory_drops, 0);
}

/// An HTTP/1.1 request with `Connection: close` from `port`: synack answers and closes
/// first; the peer acknowledges and closes too, which puts synack in TIME-WAIT.
fn http_close_first(net: &mut Net, port: u16) {
    let syn = TcpSegment {
        dst_port: 80,
        ..syn_from(port, MSS_1400)
    };
    let iss = net.exchange(&syn, true)[0].seq;
    let request = b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    let out = net.exchange(
        &TcpSegment {
            src_port: port,
            dst_port: 80,
            seq: PEER_ISN.add(1),
            ack: iss.add(1),
            flags: Flags::ACK | Flags::PSH,
            window: u16::MAX,
            payload: request,
            ..FROM_PEER
        },
        true,
    );
    let last = out.last().expect("the response");
    assert!(last.flags.fin(), "synack closes first: {out:?}");
    let end = last.seq.add(last.payload.len() as u32 + 1);
    net.exchange(
        &TcpSegment {
            src_port: port,
            dst_port: 80,
            seq: PEER_ISN.add(1 + request.len() as u32),
            ack: end,
            flags: Flags::ACK | Flags::FIN,
            window: u16::MAX,
            ..FROM_PEER
        },
        true,
    );
}

#[test]
fn time_wait_is_capped_apart_and_holds_no_buffers() {
    let mut net = net_with(Limits {
        max_connections: 1,
        max_time_wait: 2,
        ..Limits::default()
    });
    // Each connection ends in TIME-WAIT on our side, which does not count against
    // --max-connections (1): the next SYN still gets in.
    for port in 7000..7004 {
        http_close_first(&mut net, port);
        assert_eq!(net.ep.stats().connection_limit, 0, "port {port} refused");
    }
    // Past --max-time-wait (2), closing connections skip TIME-WAIT.
    assert_eq!(net.ep.time_wait_count(), 2);
    assert_eq!(net.ep.connection_count(), 2);
    assert_eq!(net.ep.stats().time_wait_overflow, 2);
    assert_eq!(net.ep.memory_used(), 0, "TIME-WAIT holds nothing");
}

#[test]
fn keepalive_probes_an_idle_connection_and_aborts_after_nine_unanswered_probes() {
    let mut net = net_with(Limits {
        keepalive_ports: vec![(7, Duration::from_secs(10))],
        ..Limits::default()
    });
    let iss = net.connect(7);
    let start = net.now;
    // The first probe comes after 10 s idle: <SEQ=SND.NXT-1><ACK=RCV.NXT><CTL=ACK>, no data.
    let out = net.next_output(Duration::from_secs(3600));
    assert_eq!(net.now - start, Duration::from_secs(10));
    assert_eq!(out.len(), 1);
    assert_eq!((out[0].seq, out[0].ack), (iss, PEER_ISN.add(1)));
    assert_eq!(out[0].flags, Flags::ACK);
    assert!(out[0].payload.is_empty());
    // The peer answers: the connection is idle again, no abort.
    net.send(&TcpSegment {
        seq: PEER_ISN.add(1),
        ack: iss.add(1),
        flags: Flags::ACK,
        ..FROM_PEER
    });
    let answered = net.now;
    // Then it stops answering: 9 probes 10 s apart, then a RST.
    let mut probes = 0;
    loop {
        let out = net.next_output(Duration::from_secs(3600));
        assert_eq!(out.len(), 1);
        if out[0].flags.rst() {
            assert_eq!(out[0].seq, iss.add(1));
            break;
        }
        probes += 1;
        assert!(probes <= 9);
    }
    assert_eq!(probes, 9);
    assert_eq!(net.now - answered, Duration::from_secs(10 + 9 * 10));
    let s = net.ep.stats();
    assert_eq!((s.keepalive_probes, s.keepalive_timeouts), (10, 1));
    assert_eq!(net.ep.connection_count(), 0);
}

#[test]
fn keepalive_is_off_by_default_and_per_port() {
    let mut net = net_with(Limits {
        keepalive_ports: vec![(80, Duration::from_secs(10))],
        ..Limits::default()
    });
    net.connect(7);
    let out = net.next_output(Duration::from_secs(3 * 3600));
    assert!(
        out.is_empty(),
        "an idle echo connection is never probed: {out:?}"
    );
    assert_eq!(net.ep.stats().keepalive_probes, 0);
}

#[test]
fn drops_and_defences_are_counted_by_name() {
    let mut net = Net::v4();
    let iss = net.connect(7);
    let seg = |seq: SeqNum, ack: SeqNum, flags: Flags| TcpSegment {
        seq,
        ack,
        flags,
        ..FROM_PEER
    };
    let rcv = PEER_ISN.add(1);
    net.send(&seg(rcv.add(1 << 20), SeqNum::new(0), Flags::RST));
    net.send(&seg(rcv.add(5), SeqNum::new(0), Flags::RST));
    net.send(&seg(rcv.add(5), SeqNum::new(0), Flags::SYN));
    net.send(&seg(rcv.add(1 << 20), iss.add(1), Flags::ACK));
    net.send(&seg(rcv, iss.add(500), Flags::ACK));
    net.send(&seg(rcv, iss.sub(1 << 20), Flags::ACK));
    let names: HashMap<&str, u64> = net.ep.counters().into_iter().collect();
    for name in [
        "out_of_window_rst",
        "rst_challenged",
        "syn_challenged",
        "out_of_window",
        "ack_unsent",
        "ack_too_old",
    ] {
        assert_eq!(names.get(name), Some(&1), "{name}: {names:?}");
    }
    for name in [
        "paws_rejected",
        "backlog_full",
        "syn_cookies_sent",
        "syn_cookies_accepted",
        "syn_cookies_rejected",
        "connection_limit",
        "drop_fragment",
        "challenge_acks",
        "challenge_acks_skipped",
        "challenge_acks_limited",
        "out_of_window_acks_skipped",
        "paws_acks_skipped",
        "listen_drops",
        "listen_ignored",
        "listen_syn_fin",
        "martian_source",
        "rto_expirations",
        "aborts_on_data",
        "keepalive_probes",
        "fin_wait_2_timeouts",
    ] {
        assert!(names.contains_key(name), "{name} missing");
    }
    assert_eq!(
        net.ep.connection_state(&quad_from(40000)),
        Some(State::Established)
    );
}
