//! What the network says besides TCP segments (issue #20), and what our own segments say
//! about us: private timestamps, ICMP and the path MTU, ECN, Fast Open.

use super::hardening::{LINUX_SYN, Seg, backlog, fill_backlog, net_with, quad_from, syn_from};
use super::*;

/// Our TSval on the SYN,ACK answering a Linux-like SYN from `port`, and our ISS.
fn syn_ack_ts(net: &mut Net, port: u16) -> (u32, SeqNum) {
    let out = net.exchange(&syn_from(port, LINUX_SYN), true);
    let sa: &Seg = out.first().expect("a SYN,ACK");
    assert_eq!(sa.flags, Flags::SYN | Flags::ACK);
    (sa.options.timestamps.expect("timestamps").0, sa.seq)
}

/// RFC 7323 §7.1: nothing in a SYN,ACK tells how long the endpoint has run. Before issue #20
/// the TSval offset was the ISS rotated, so TSval − rotl(ISS, 16) was our clock in ms.
#[test]
fn a_syn_ack_tsval_reveals_no_uptime() {
    let mut net = net_with(backlog(64));
    for (i, port) in (6000..6010).enumerate() {
        net.now = Instant::from_millis(5_000 + 7_919 * i as u64);
        let (tsval, iss) = syn_ack_ts(&mut net, port);
        let uptime_ms = (net.now.as_micros() / 1000) as u32;
        assert_ne!(tsval.wrapping_sub(iss.raw().rotate_left(16)), uptime_ms);
        assert_ne!(tsval, uptime_ms);
    }
}

/// RFC 7323 §7.1 as Linux (`secure_tcp_ts_off`): one clock per address pair, whatever the
/// ports or the ISS; another peer, or another daemon's secret, sees an unrelated clock.
#[test]
fn the_tsval_clock_is_one_per_address_pair_and_secret() {
    let mut net = net_with(backlog(64));
    let (first, _) = syn_ack_ts(&mut net, 6000);
    net.now += Duration::from_millis(1_234);
    let (second, _) = syn_ack_ts(&mut net, 6001);
    assert_eq!(
        second.wrapping_sub(first),
        1_234,
        "the same pair: one clock, in ms"
    );
    // Another peer address.
    let mut other_peer = net_with(backlog(64));
    other_peer.now = net.now;
    other_peer.peer = ip("198.18.0.3");
    let (theirs, _) = syn_ack_ts(&mut other_peer, 6001);
    assert_ne!(theirs, second);
    // Another secret.
    let mut other_secret = net_with(backlog(64));
    other_secret.ep = Endpoint::new(
        EndpointConfig {
            addrs: vec![ip(US4), ip(US6)],
            listeners: vec![(7, ServiceKind::Echo)],
            ..EndpointConfig::default()
        },
        [4; 16],
        net.now,
    );
    other_secret.now = net.now;
    let (again, _) = syn_ack_ts(&mut other_secret, 6001);
    assert_ne!(again, second);
}

/// A SYN cookie's SYN,ACK is sent with no TCB; the connection rebuilt from the cookie goes on
/// with the same TSval clock (the offset comes from the address pair, not from the ISS).
#[test]
fn a_cookie_connection_continues_the_syn_ack_tsval_clock() {
    let mut net = net_with(backlog(1));
    fill_backlog(&mut net, 1);
    let (tsval, cookie) = syn_ack_ts(&mut net, 5001);
    net.now += Duration::from_millis(10);
    let out = net.exchange(
        &TcpSegment {
            src_port: 5001,
            seq: PEER_ISN.add(1),
            ack: cookie.add(1),
            flags: Flags::ACK | Flags::PSH,
            payload: b"hi",
            options: TcpOptions {
                timestamps: Some((1_001, tsval)),
                ..TcpOptions::EMPTY
            },
            ..FROM_PEER
        },
        true,
    );
    assert_eq!(
        net.ep.connection_state(&quad_from(5001)),
        Some(State::Established)
    );
    let echo = out.iter().find(|s| !s.payload.is_empty()).expect("echo");
    let (later, _) = echo.options.timestamps.expect("timestamps");
    // The cookie's TSval lies up to 63 ms behind the clock (its low bits carry options).
    let step = later.wrapping_sub(tsval);
    assert!((10..10 + 64).contains(&step), "{step}");
}

/// SYN cookies keep ECN as Linux does (TS_OPT_ECN in the TSval's low bits, echoed in
/// TSecr): an RFC 3168 SYN gets ECE and the connection uses ECN; an AccECN SYN gets the
/// reflecting ACE and the option, and the final ACK's ACE (> 1, Linux's cookie_accecn_ok)
/// makes it AccECN; without timestamps nothing carries it and ECN is not offered.
#[test]
fn a_cookie_connection_keeps_ecn_and_accecn_with_timestamps() {
    for (i, (syn_ace, ts, sa_ace, ack_ace, want)) in [
        (0b011, true, 0b001, 0b000, Some(false)),
        (0b111, true, 0b010, 0b010, Some(true)),
        (0b011, false, 0b000, 0b000, None),
        (0b000, true, 0b000, 0b000, None),
    ]
    .into_iter()
    .enumerate()
    {
        let port = 5001 + i as u16;
        let mut net = net_with(backlog(1));
        fill_backlog(&mut net, 1);
        let options = TcpOptions {
            timestamps: ts.then_some((1_000, 0)),
            ..LINUX_SYN
        };
        let out = net.exchange(
            &TcpSegment {
                flags: Flags::SYN.with_ace(syn_ace),
                ..syn_from(port, options)
            },
            true,
        );
        let sa = out.first().expect("a SYN,ACK");
        assert_eq!(sa.flags.ace(), sa_ace, "case {i}");
        assert_eq!(sa.options.accecn.is_some(), want == Some(true), "case {i}");
        let tsval = sa.options.timestamps.map(|t| t.0);
        net.exchange(
            &TcpSegment {
                src_port: port,
                seq: PEER_ISN.add(1),
                ack: sa.seq.add(1),
                flags: Flags::ACK.with_ace(ack_ace),
                options: TcpOptions {
                    timestamps: tsval.map(|t| (1_001, t)),
                    ..TcpOptions::EMPTY
                },
                ..FROM_PEER
            },
            true,
        );
        let snap = net.ep.snapshot(net.now);
        let info = snap
            .iter()
            .filter(|s| s.peer.map(|p| p.port()) == Some(port))
            .find_map(|s| s.info.as_ref())
            .expect("an established connection");
        assert_eq!(
            (info.ecn, info.accecn),
            (want.is_some(), want == Some(true)),
            "case {i}"
        );
    }
}

// --- ICMP and the path MTU ----------------------------------------------------------------

const ROUTER4: &str = "198.18.0.254";
const ROUTER6: &str = "2001:2::fe";

impl Net {
    /// Deliver a segment from the peer and poll: our packets, as raw bytes.
    fn exchange_raw(&mut self, seg: &TcpSegment<'_>) -> Vec<Vec<u8>> {
        let mut buf = vec![0; 65536];
        let n = wire::emit_tcp(&mut buf, self.peer, self.us, seg).unwrap();
        let mut tx: Vec<Vec<u8>> = Vec::new();
        self.ep.receive(self.now, &buf[..n], &mut tx);
        self.ep.poll(self.now, &mut tx);
        tx
    }

    /// A router on the path answers `invoking` (one of our packets) with `kind`; what we
    /// send in reply, parsed.
    fn icmp(&mut self, kind: wire::IcmpErrorKind, invoking: &[u8]) -> Vec<Seg> {
        let router = ip(if self.us.is_ipv4() { ROUTER4 } else { ROUTER6 });
        let mut buf = vec![0; 2000];
        let n = wire::emit_icmp_error(&mut buf, router, self.us, kind, invoking).unwrap();
        let mut tx: Vec<Vec<u8>> = Vec::new();
        self.ep.receive(self.now, &buf[..n], &mut tx);
        self.ep.poll(self.now, &mut tx);
        tx.iter().map(|p| super::hardening::seg_of(p)).collect()
    }

    fn quad(&self, port: u16) -> Quad {
        Quad {
            local: SocketAddr::new(self.us, 7),
            remote: SocketAddr::new(self.peer, port),
        }
    }

    /// An established echo connection from the peer's port 40000 with `n` bytes of ours
    /// in flight (echoed, unacknowledged): our ISS and the raw packets of the echo.
    fn echo_in_flight(&mut self, n: usize) -> (SeqNum, Vec<Vec<u8>>) {
        let iss = self.connect(7);
        let data = vec![b'x'; n];
        let out = self.exchange_raw(&TcpSegment {
            seq: PEER_ISN.add(1),
            ack: iss.add(1),
            flags: Flags::ACK | Flags::PSH,
            payload: &data,
            ..FROM_PEER
        });
        let echoed: usize = out
            .iter()
            .map(|p| super::hardening::seg_of(p).payload.len())
            .sum();
        assert_eq!(echoed, n);
        (iss, out)
    }
}

fn v6() -> Net {
    Net::new(PEER6, US6)
}

/// Overwrite the sequence number of our TCP segment in `packet` (quoted in an ICMP error).
fn with_seq(packet: &[u8], seq: SeqNum) -> Vec<u8> {
    let mut p = packet.to_vec();
    let at = if p[0] >> 4 == 4 { 20 } else { 40 } + 4;
    p[at..at + 4].copy_from_slice(&seq.raw().to_be_bytes());
    p
}

/// RFC 9293 §3.9.2.2 (SHLD-26), RFC 1122 §4.2.3.9: port unreachable is a hard error; it
/// aborts the connection it names, for IPv4 and IPv6 alike.
#[test]
fn an_icmp_port_unreachable_for_a_segment_in_flight_aborts_the_connection() {
    for mut net in [Net::v4(), v6()] {
        let (_, out) = net.echo_in_flight(100);
        let reply = net.icmp(wire::IcmpErrorKind::PortUnreachable, &out[0]);
        assert!(reply.is_empty(), "no RST towards a port that is not there");
        assert_eq!(net.ep.connection_state(&net.quad(40000)), None);
        let s = net.ep.stats();
        assert_eq!(s.icmp_aborts, 1);
        let unreachs = s.icmp_in_dest_unreachs + s.icmp6_in_dest_unreachs;
        assert_eq!(unreachs, 1);
    }
}

/// RFC 5927 §4.1: an error whose quoted sequence number is not in SND.UNA..=SND.NXT (a
/// blind attacker's guess, or a stale one) is counted and ignored, IPv4 and IPv6; so is one
/// quoting a connection that does not exist.
#[test]
fn an_icmp_error_quoting_a_sequence_number_not_in_flight_is_counted_and_ignored() {
    for mut net in [Net::v4(), v6()] {
        let (iss, out) = net.echo_in_flight(100);
        for seq in [iss, iss.add(102), iss.add(1 << 20), iss.sub(1 << 20)] {
            let reply = net.icmp(
                wire::IcmpErrorKind::PortUnreachable,
                &with_seq(&out[0], seq),
            );
            assert!(reply.is_empty());
        }
        let reply = net.icmp(
            wire::IcmpErrorKind::PacketTooBig { mtu: 1280 },
            &with_seq(&out[0], iss.add(1 << 20)),
        );
        assert!(reply.is_empty(), "{reply:?}");
        assert_eq!(
            net.ep.connection_state(&net.quad(40000)),
            Some(State::Established)
        );
        assert_eq!(net.ep.stats().out_of_window_icmps, 5);
        assert_eq!(net.ep.stats().icmp_aborts, 0);
        // Another port of the peer: no such connection.
        let mut other = out[0].clone();
        let at = if other[0] >> 4 == 4 { 20 } else { 40 } + 2;
        other[at..at + 2].copy_from_slice(&40001u16.to_be_bytes());
        net.icmp(wire::IcmpErrorKind::PortUnreachable, &other);
        assert_eq!(net.ep.stats().icmp_no_connection, 1);
        assert_eq!(
            net.ep.connection_state(&net.quad(40000)),
            Some(State::Established)
        );
    }
}

/// RFC 9293 MUST-56: host unreachable is soft in ESTABLISHED: the connection goes on, and
/// the error is kept for `status --info`.
#[test]
fn an_icmp_host_unreachable_in_established_is_kept_as_the_last_error() {
    let mut net = Net::v4();
    let (_, out) = net.echo_in_flight(100);
    net.icmp(wire::IcmpErrorKind::HostUnreachable, &out[0]);
    assert_eq!(
        net.ep.connection_state(&net.quad(40000)),
        Some(State::Established)
    );
    assert_eq!(net.ep.stats().icmp_soft_errors, 1);
    let snap = net.ep.snapshot(net.now);
    let info = snap
        .iter()
        .find_map(|s| {
            s.info
                .as_ref()
                .filter(|_| s.peer == Some(net.quad(40000).remote))
        })
        .expect("the connection's info");
    assert_eq!(info.last_error, Some("host unreachable"));
}

/// RFC 1191 §6.3, RFC 8201 §5.4: a Packet Too Big for a full-sized segment in flight lowers
/// the MSS to fit and sends what was lost again at once, in smaller segments, labelled
/// [PMTU]; the destination's path MTU is remembered for new connections.
#[test]
fn a_packet_too_big_lowers_the_mss_and_resends_at_once_v4_and_v6() {
    for (mut net, mtu, want_mss) in [(Net::v4(), 1280u32, 1240u16), (v6(), 1280, 1220)] {
        let (iss, out) = net.echo_in_flight(1400);
        assert_eq!(out.len(), 1);
        let resent = net.icmp(wire::IcmpErrorKind::PacketTooBig { mtu }, &out[0]);
        // No RTO waited for: the same instant.
        let sizes: Vec<usize> = resent.iter().map(|s| s.payload.len()).collect();
        assert_eq!(sizes, [usize::from(want_mss), 1400 - usize::from(want_mss)]);
        assert_eq!(resent[0].seq, iss.add(1));
        let info = net.ep.connection_info(&net.quad(40000)).unwrap();
        assert_eq!(info.send_mss, want_mss);
        let ladder = net
            .ep
            .ladders()
            .into_iter()
            .find(|(q, _)| q.remote.port() == 40000)
            .unwrap()
            .1;
        assert!(ladder.contains("[PMTU]"), "{ladder}");
        assert_eq!(net.ep.stats().pmtu_lowered, 1);
        // A second message for the same size changes nothing.
        assert!(
            net.icmp(wire::IcmpErrorKind::PacketTooBig { mtu }, &out[0])
                .is_empty()
        );
        // A new connection to the same destination starts at the smaller size.
        let syn_ack = net.exchange(&syn_from(40001, LINUX_SYN), true);
        assert_eq!(syn_ack.len(), 1);
        let mut q = net.quad(40000);
        q.remote.set_port(40001);
        assert_eq!(net.ep.connection_info(&q).unwrap().send_mss, want_mss);
    }
}

/// RFC 1191 §3 (and Linux's `min_pmtu`), RFC 8200 §5: a Packet Too Big below 552 (IPv4) or
/// 1280 (IPv6) lowers the path to that floor and no further; one above the current MTU
/// raises nothing.
#[test]
fn a_packet_too_big_never_goes_below_the_floor_nor_raises_the_mtu() {
    let mut net = Net::v4();
    let (_, out) = net.echo_in_flight(1400);
    assert!(
        net.icmp(wire::IcmpErrorKind::PacketTooBig { mtu: 9000 }, &out[0])
            .is_empty()
    );
    let resent = net.icmp(wire::IcmpErrorKind::PacketTooBig { mtu: 68 }, &out[0]);
    assert_eq!(resent[0].payload.len(), 552 - 40);
    let mut net = v6();
    let (_, out) = net.echo_in_flight(1400);
    let resent = net.icmp(wire::IcmpErrorKind::PacketTooBig { mtu: 1000 }, &out[0]);
    assert_eq!(resent[0].payload.len(), 1280 - 60);
}

/// Linux's `connect()` fails at once when an ICMP error answers its SYN (`tcp_v4_err` in
/// SYN-SENT), with the error's errno: `synack connect` and the socket API do the same.
#[test]
fn an_icmp_error_for_our_syn_fails_the_connect_at_once() {
    for (kind, outcome, errno) in [
        (
            wire::IcmpErrorKind::HostUnreachable,
            "no route to host (ICMP host unreachable from the path)",
            libc::EHOSTUNREACH,
        ),
        (
            wire::IcmpErrorKind::NetUnreachable,
            "network is unreachable (ICMP from the path)",
            libc::ENETUNREACH,
        ),
    ] {
        // synack connect.
        let mut net = Net::v4();
        let id = net
            .ep
            .connect(net.now, SocketAddr::new(net.peer, 9), b"x".to_vec())
            .unwrap();
        let mut tx: Vec<Vec<u8>> = Vec::new();
        net.ep.poll(net.now, &mut tx);
        assert_eq!(tx.len(), 1, "our SYN");
        net.icmp(kind, &tx[0]);
        let ev = net.ep.poll_client(id).unwrap();
        assert_eq!(ev.outcome, Some(ClientOutcome::Unreachable(kind)));
        assert_eq!(ev.outcome.unwrap().name(), outcome);
        // The socket API.
        let mut net = Net::v4();
        let c = net.ep.sockets().socket(false);
        let to = SocketAddr::new(net.peer, 9);
        assert_eq!(
            net.ep.sockets().connect(net.now, c, to),
            Err(SocketError::InProgress)
        );
        let mut tx: Vec<Vec<u8>> = Vec::new();
        net.ep.poll(net.now, &mut tx);
        net.icmp(kind, &tx[0]);
        let err = net.ep.sockets().connect(net.now, c, to).unwrap_err();
        assert_eq!(err.errno(), errno, "{err}");
    }
}

/// RFC 4821 §7.5 as Linux's `tcp_mtu_probing=1`: a path that drops full-sized segments
/// without a word (RFC 2923 §2.1) is suspected at the third timeout in a row, and the MSS
/// falls to 1024, then halves; `--mtu-probing off` keeps resending the same size.
#[test]
fn repeated_timeouts_without_icmp_fall_back_to_a_smaller_mss() {
    let sizes_per_rto = |probing: tcp::MtuProbing| {
        let mut net = Net::v4();
        net.ep.tcp_config_mut().mtu_probing = probing;
        net.echo_in_flight(3000);
        (0..4)
            .map(|_| {
                let out = net.advance();
                out.iter().map(|o| o.payload.len()).max().unwrap_or(0)
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(
        sizes_per_rto(tcp::MtuProbing::Blackhole),
        [1460, 1460, 1024, 536]
    );
    assert_eq!(
        sizes_per_rto(tcp::MtuProbing::Off),
        [1460, 1460, 1460, 1460]
    );
}

/// `--mtu-probing always` starts at the base MSS (Linux's `tcp_mtu_probing=2`).
#[test]
fn mtu_probing_always_starts_at_the_base_mss() {
    let mut net = Net::v4();
    net.ep.tcp_config_mut().mtu_probing = tcp::MtuProbing::Always;
    let (_, out) = net.echo_in_flight(1400);
    let sizes: Vec<usize> = out
        .iter()
        .map(|p| super::hardening::seg_of(p).payload.len())
        .collect();
    assert_eq!(sizes, [1024, 376]);
}

/// RFC 4821 §7.6: after the fallback, once data sent at the smaller size is acknowledged,
/// the old size is probed; acknowledged, it stays (`TcpExtTCPMTUPSuccess`).
#[test]
fn after_a_fallback_the_old_size_is_probed_and_kept_when_acknowledged() {
    let mut net = Net::v4();
    let (iss, _) = net.echo_in_flight(3000);
    for _ in 0..3 {
        net.advance();
    }
    assert_eq!(net.ep.stats().mtu_blackhole_fallbacks, 1);
    let mut sent = 3000u32;
    let mut peer_sent = 3000u32;
    let round = |net: &mut Net, sent: &mut u32, peer_sent: &mut u32| -> usize {
        // The peer acknowledges everything and sends 3000 more bytes to echo.
        let data = vec![b'y'; 3000];
        let out = net.send(&TcpSegment {
            seq: PEER_ISN.add(1 + *peer_sent),
            ack: iss.add(1 + *sent),
            flags: Flags::ACK | Flags::PSH,
            payload: &data,
            ..FROM_PEER
        });
        *peer_sent += 3000;
        *sent += out.iter().map(|o| o.payload.len() as u32).sum::<u32>();
        out.iter().map(|o| o.payload.len()).max().unwrap_or(0)
    };
    assert_eq!(
        round(&mut net, &mut sent, &mut peer_sent),
        1024,
        "at the fallen size"
    );
    assert_eq!(
        round(&mut net, &mut sent, &mut peer_sent),
        1460,
        "the probe"
    );
    round(&mut net, &mut sent, &mut peer_sent);
    assert_eq!(net.ep.stats().mtu_probe_successes, 1);
    assert_eq!(net.ep.stats().mtu_probe_failures, 0);
}

// --- ECN (RFC 3168) ----------------------------------------------------------------------

/// Our packets, parsed with their IP ECN field.
fn parsed(raw: &[Vec<u8>]) -> Vec<TcpSegment<'_>> {
    raw.iter()
        .map(|p| match wire::parse(p).unwrap() {
            Packet::Tcp { seg, .. } => seg,
            other => panic!("{other:?}"),
        })
        .collect()
}

impl Net {
    /// A handshake on echo from the peer's port 40000 whose SYN carries `flags` besides SYN:
    /// our SYN,ACK and ISS.
    fn ecn_handshake(&mut self, flags: Flags) -> (Flags, Ecn, SeqNum) {
        let raw = self.exchange_raw(&TcpSegment {
            flags: Flags::SYN | flags,
            options: TcpOptions {
                mss: Some(1460),
                ..TcpOptions::EMPTY
            },
            ..FROM_PEER
        });
        let sa = parsed(&raw)[0];
        let out = self.exchange_raw(&TcpSegment {
            seq: PEER_ISN.add(1),
            ack: sa.seq.add(1),
            flags: Flags::ACK,
            ..FROM_PEER
        });
        assert!(out.is_empty());
        (sa.flags, sa.ecn, sa.seq)
    }

    /// The peer sends `data` at `seq` (with `flags` and IP `ecn`), acknowledging `ack`.
    fn data(&mut self, seq: u32, ack: SeqNum, data: &[u8], flags: Flags, ecn: Ecn) -> Vec<Vec<u8>> {
        self.exchange_raw(&TcpSegment {
            seq: PEER_ISN.add(seq),
            ack,
            flags: Flags::ACK | flags,
            payload: data,
            ecn,
            ..FROM_PEER
        })
    }
}

use crate::wire::Ecn;

/// RFC 3168 §6.1.1 as a Linux server (`tcp_ecn=2`): an ECN-setup SYN (ECE+CWR) is answered
/// with ECE alone, the SYN,ACK itself not ECN-capable (§6.1.5); then new data goes out
/// ECT(0) and pure ACKs do not.
#[test]
fn an_ecn_setup_syn_is_answered_with_ece_and_new_data_is_marked_ect0() {
    let mut net = Net::v4();
    let (flags, ecn, iss) = net.ecn_handshake(Flags::ECE | Flags::CWR);
    assert_eq!(flags, Flags::SYN | Flags::ACK | Flags::ECE);
    assert_eq!(ecn, Ecn::NotEct);
    let out = net.data(1, iss.add(1), b"hello", Flags::PSH, Ecn::Ect0);
    let segs = parsed(&out);
    assert_eq!(segs.len(), 1);
    assert_eq!(segs[0].payload, b"hello");
    assert_eq!(segs[0].ecn, Ecn::Ect0, "new data is ECN-capable");
    assert!(!segs[0].flags.ece());
    // The peer's FIN: our pure ACK (and FIN) carry no ECT.
    let out = net.data(6, iss.add(6), b"", Flags::FIN, Ecn::NotEct);
    assert!(parsed(&out).iter().all(|s| s.ecn == Ecn::NotEct));
    assert_eq!(net.ep.stats().in_ect0_pkts, 1);
    let snap = net.ep.snapshot(net.now);
    assert!(
        snap.iter().filter_map(|s| s.info.as_ref()).any(|i| i.ecn),
        "status --info shows ecn:on"
    );
}

/// Without ECE+CWR on the SYN, or with `--ecn off`, nothing is negotiated or marked.
#[test]
fn ecn_is_not_used_unless_both_ask_and_allow() {
    for (mode, flags) in [
        (tcp::EcnMode::Server, Flags::NONE),
        (tcp::EcnMode::Off, Flags::ECE | Flags::CWR),
        (tcp::EcnMode::Off, Flags::AE | Flags::ECE | Flags::CWR),
    ] {
        let mut net = Net::v4();
        net.ep.tcp_config_mut().ecn = mode;
        let (sa_flags, _, iss) = net.ecn_handshake(flags);
        assert_eq!(sa_flags, Flags::SYN | Flags::ACK, "{mode} {flags}");
        let out = net.data(1, iss.add(1), b"hello", Flags::PSH, Ecn::Ce);
        let segs = parsed(&out);
        assert_eq!(segs[0].ecn, Ecn::NotEct);
        assert!(
            !segs[0].flags.ece(),
            "a CE mark on a non-ECN connection is not echoed"
        );
    }
}

/// RFC 3168 §6.1.3: a CE mark is acknowledged at once with ECE, and ECE stays on every
/// segment until the peer's CWR.
#[test]
fn a_ce_mark_is_echoed_with_ece_until_the_peers_cwr() {
    let mut net = Net::v4();
    net.ep.listeners.retain(|l| l.port != 7);
    net.ep
        .listeners
        .push(Listener::service(7, ServiceKind::Discard));
    let (_, _, iss) = net.ecn_handshake(Flags::ECE | Flags::CWR);
    // Discard reads without answering: a lone segment would wait for the delayed ACK, but
    // a CE mark is acknowledged at once.
    let out = parsed(&net.data(1, iss.add(1), b"a", Flags::NONE, Ecn::Ce).to_vec())
        .iter()
        .map(|s| (s.flags, s.ack))
        .collect::<Vec<_>>();
    assert_eq!(out, [(Flags::ACK | Flags::ECE, PEER_ISN.add(2))]);
    // Unmarked data still gets ECE (on the delayed ACKs too).
    let acks = |net: &mut Net, seq: u32, flags: Flags| {
        let mut raw = net.data(seq, iss.add(1), b"b", flags, Ecn::Ect0);
        net.now += Duration::from_millis(50);
        net.ep.poll(net.now, &mut raw);
        parsed(&raw).iter().map(|s| s.flags).collect::<Vec<_>>()
    };
    assert_eq!(acks(&mut net, 2, Flags::NONE), [Flags::ACK | Flags::ECE]);
    assert_eq!(acks(&mut net, 3, Flags::NONE), [Flags::ACK | Flags::ECE]);
    // The peer's CWR: the echo stops.
    assert_eq!(acks(&mut net, 4, Flags::CWR), [Flags::ACK]);
    assert_eq!(acks(&mut net, 5, Flags::NONE), [Flags::ACK]);
    assert_eq!(net.ep.stats().in_ce_pkts, 1);
}

/// RFC 3168 §6.1.2: the peer's ECE halves the congestion window once per window of data,
/// and our next new data carries CWR.
#[test]
fn the_peers_ece_reduces_cwnd_once_per_window_and_is_answered_with_cwr() {
    let mut net = Net::v4();
    let (_, _, iss) = net.ecn_handshake(Flags::ECE | Flags::CWR);
    let quad = net.quad(40000);
    let cwnd = |net: &Net| {
        net.ep
            .snapshot(net.now)
            .iter()
            .find(|s| s.peer == Some(quad.remote))
            .and_then(|s| s.cwnd)
            .unwrap()
    };
    let before = cwnd(&net);
    // 3000 bytes echoed (in flight), then the peer's ECE on an ACK of the first 1000.
    net.data(1, iss.add(1), &[b'x'; 3000], Flags::PSH, Ecn::Ect0);
    net.data(3001, iss.add(1001), b"", Flags::ECE, Ecn::NotEct);
    let after = cwnd(&net);
    assert!(after < before, "{after} < {before}");
    assert_eq!(net.ep.stats().ecn_cwnd_reductions, 1);
    // A second ECE for the same window: no second reduction.
    net.data(3001, iss.add(2001), b"", Flags::ECE, Ecn::NotEct);
    assert_eq!(net.ep.stats().ecn_cwnd_reductions, 1);
    // New data carries CWR, once.
    let out = parsed(
        &net.data(
            3001,
            iss.add(3001),
            b"yz",
            Flags::ECE | Flags::PSH,
            Ecn::Ect0,
        )
        .to_vec(),
    )
    .iter()
    .map(|s| s.flags)
    .collect::<Vec<_>>();
    assert!(out.iter().any(|f| f.cwr()), "{out:?}");
}

/// `--ecn on` asks on our own SYNs (`synack connect`, the socket API) with ECE+CWR.
#[test]
fn ecn_on_asks_on_our_syn() {
    for (mode, want) in [
        (tcp::EcnMode::On, Flags::SYN | Flags::ECE | Flags::CWR),
        (tcp::EcnMode::Server, Flags::SYN),
    ] {
        let mut net = Net::v4();
        net.ep.tcp_config_mut().ecn = mode;
        net.ep
            .connect(net.now, SocketAddr::new(net.peer, 9), Vec::new())
            .unwrap();
        let mut tx: Vec<Vec<u8>> = Vec::new();
        net.ep.poll(net.now, &mut tx);
        assert_eq!(parsed(&tx)[0].flags, want);
    }
}

// --- AccECN (RFC 9768) -------------------------------------------------------------------

impl Net {
    /// A discard connection from port 40000 whose SYN carries the ACE value `syn_ace` and
    /// the IP-ECN field `syn_ecn`, completed by an ACK with the ACE value `ack_ace`: our
    /// SYN,ACK's flags, IP-ECN field and AccECN option, and our ISS.
    fn accecn_handshake(
        &mut self,
        syn_ace: u8,
        syn_ecn: Ecn,
        ack_ace: u8,
    ) -> (Flags, Ecn, Option<wire::AccEcnOption>, SeqNum) {
        self.ep.listeners.retain(|l| l.port != 7);
        self.ep
            .listeners
            .push(Listener::service(7, ServiceKind::Discard));
        let raw = self.exchange_raw(&TcpSegment {
            flags: Flags::SYN.with_ace(syn_ace),
            ecn: syn_ecn,
            options: TcpOptions {
                mss: Some(1460),
                ..TcpOptions::EMPTY
            },
            ..FROM_PEER
        });
        let sa = parsed(&raw)[0];
        let out = self.exchange_raw(&TcpSegment {
            seq: PEER_ISN.add(1),
            ack: sa.seq.add(1),
            flags: Flags::ACK.with_ace(ack_ace),
            ..FROM_PEER
        });
        assert!(out.is_empty());
        (sa.flags, sa.ecn, sa.options.accecn, sa.seq)
    }

    /// The peer's segment at `seq` acknowledging `ack` with the ACE value `ace`: our replies
    /// (after the delayed-ACK timer too) as (ACE, AccECN option).
    fn accecn_data(
        &mut self,
        seq: u32,
        ack: SeqNum,
        data: &[u8],
        ace: u8,
        ecn: Ecn,
    ) -> Vec<(u8, Option<wire::AccEcnOption>)> {
        let mut raw = self.exchange_raw(&TcpSegment {
            seq: PEER_ISN.add(seq),
            ack,
            flags: Flags::ACK.with_ace(ace),
            payload: data,
            ecn,
            ..FROM_PEER
        });
        if raw.is_empty() {
            self.now += Duration::from_millis(50);
            self.ep.poll(self.now, &mut raw);
        }
        parsed(&raw)
            .iter()
            .map(|s| (s.flags.ace(), s.options.accecn))
            .collect()
    }
}

fn acc(e0b: u32, ceb: u32, e1b: u32) -> Option<wire::AccEcnOption> {
    Some(wire::AccEcnOption {
        e0b: Some(e0b),
        ceb: Some(ceb),
        e1b: Some(e1b),
    })
}

/// RFC 9768 §3.1.1: a SYN with AE, CWR and ECE asks for AccECN, and the SYN,ACK's ACE field
/// reflects the SYN's IP-ECN field (Table 2: Not-ECT 010, ECT(1) 011, ECT(0) 100, CE 110);
/// the SYN,ACK itself is Not-ECT and carries the AccECN option with the counters' initial
/// values (§3.2.1: e0b = e1b = 1, ceb = 0).
#[test]
fn an_accecn_syn_is_answered_with_the_ace_reflecting_its_ip_ecn_field() {
    for (ecn, ace) in [
        (Ecn::NotEct, 0b010),
        (Ecn::Ect1, 0b011),
        (Ecn::Ect0, 0b100),
        (Ecn::Ce, 0b110),
    ] {
        let mut net = Net::v4();
        let (flags, sa_ecn, option, _) = net.accecn_handshake(0b111, ecn, 0b010);
        assert_eq!(flags, (Flags::SYN | Flags::ACK).with_ace(ace), "{ecn:?}");
        assert_eq!(sa_ecn, Ecn::NotEct);
        assert_eq!(option, acc(1, 0, 1));
        assert_eq!(net.ep.stats().accecn_negotiated, 1);
        let snap = net.ep.snapshot(net.now);
        assert!(
            snap.iter()
                .filter_map(|s| s.info.as_ref())
                .any(|i| i.ecn && i.accecn),
            "status --info shows ecn:accecn"
        );
    }
}

/// RFC 9768 §3.1.1: any non-zero combination but 011 (RFC 3168) asks for AccECN (forward
/// compatibility); 011 gets RFC 3168; `--ecn off` answers every one with none (000).
#[test]
fn which_syn_flags_get_accecn_rfc3168_or_nothing() {
    for (mode, syn_ace, want) in [
        (tcp::EcnMode::Server, 0b001, 0b010),
        (tcp::EcnMode::Server, 0b100, 0b010),
        (tcp::EcnMode::On, 0b111, 0b010),
        (tcp::EcnMode::Server, 0b011, 0b001),
        (tcp::EcnMode::Off, 0b111, 0b000),
        (tcp::EcnMode::Server, 0b000, 0b000),
    ] {
        let mut net = Net::v4();
        net.ep.tcp_config_mut().ecn = mode;
        let (flags, _, option, _) = net.accecn_handshake(syn_ace, Ecn::NotEct, 0b010);
        assert_eq!(flags.ace(), want, "{mode} {syn_ace:03b}");
        assert_eq!(option.is_some(), want == 0b010);
    }
}

/// RFC 9768 §3.2.2: the data receiver counts CE-marked packets from 5 (r.cep) and bytes by
/// codepoint, and every segment carries r.cep in the ACE field, pure ACKs the option too; a
/// CE mark after an unmarked packet is acknowledged at once (§3.2.2.5.1).
#[test]
fn accecn_feeds_back_ce_marks_in_the_ace_field_and_bytes_in_the_option() {
    let mut net = Net::v4();
    let (_, _, _, iss) = net.accecn_handshake(0b111, Ecn::NotEct, 0b010);
    let una = iss.add(1);
    // Unmarked data: the (delayed) ACK says r.cep = 5, e0b = 1 + 100.
    let out = net.accecn_data(1, una, &[b'a'; 100], 0b101, Ecn::Ect0);
    assert_eq!(out, [(0b101, acc(101, 0, 1))]);
    // A CE mark: acknowledged at once, r.cep = 6, ceb = 10.
    let raw = net.exchange_raw(&TcpSegment {
        seq: PEER_ISN.add(101),
        ack: una,
        flags: Flags::ACK.with_ace(0b101),
        payload: &[b'b'; 10],
        ecn: Ecn::Ce,
        ..FROM_PEER
    });
    let acks = parsed(&raw);
    assert_eq!(acks.len(), 1, "a CE mark is acknowledged at once");
    assert_eq!(acks[0].flags.ace(), 0b110);
    assert_eq!(acks[0].options.accecn, acc(101, 10, 1));
    // Three more CE marks wrap past 7: ACE is r.cep mod 8 (9 → 001).
    let mut last = Vec::new();
    for i in 0..3 {
        last = net.accecn_data(111 + i * 10, una, &[b'c'; 10], 0b101, Ecn::Ce);
    }
    assert_eq!(last.last().map(|a| a.0), Some(0b001));
    assert_eq!(net.ep.stats().in_ce_pkts, 4);
}

/// RFC 9768 §3.2.2.5: as the data sender, the growth of the peer's ACE counter is a
/// congestion signal, acted on once per window of data like an ECE; our data carries the
/// ACE field and never RFC 3168's CWR.
#[test]
fn the_peers_ace_growth_reduces_cwnd_once_per_window() {
    let mut net = Net::v4();
    let (_, _, _, iss) = net.accecn_handshake_echo(0b010);
    let quad = net.quad(40000);
    let cwnd = |net: &Net| {
        net.ep
            .snapshot(net.now)
            .iter()
            .find(|s| s.peer == Some(quad.remote))
            .and_then(|s| s.cwnd)
            .unwrap()
    };
    let before = cwnd(&net);
    // 3000 bytes echoed, ECT(0); an ACK of the first 1000 with ACE unchanged (5).
    let echoed = net.accecn_echo(1, iss.add(1), &[b'x'; 3000], 0b101);
    assert!(echoed.iter().all(|s| s.1 == Ecn::Ect0 && s.0 == 0b101));
    net.accecn_echo(3001, iss.add(1001), b"", 0b101);
    assert_eq!(cwnd(&net), before);
    assert_eq!(net.ep.stats().delivered_ce, 0);
    // The next ACK counts one CE mark (ACE 6): one reduction.
    net.accecn_echo(3001, iss.add(2001), b"", 0b110);
    let after = cwnd(&net);
    assert!(after < before, "{after} < {before}");
    assert_eq!(net.ep.stats().ecn_cwnd_reductions, 1);
    assert_eq!(net.ep.stats().delivered_ce, 1);
    // Another mark in the same window: counted, no second reduction.
    let out = net.accecn_echo(3001, iss.add(3001), b"yz", 0b111);
    assert_eq!(net.ep.stats().delivered_ce, 2);
    assert_eq!(net.ep.stats().ecn_cwnd_reductions, 1);
    assert!(
        out.iter().all(|s| s.0 == 0b101),
        "our ACE is our r.cep, no CWR: {out:?}"
    );
}

/// RFC 9768 §3.2.2.5.2: an ACK that newly acknowledges more than 7 packets may hide a
/// wrapped ACE field; the sender assumes the most CE marks the residue allows (Linux's
/// __tcp_accecn_process): 10 packets with ACE + 1 count as 9.
#[test]
fn a_large_ack_assumes_the_ace_field_wrapped() {
    let mut net = Net::v4();
    let (_, _, _, iss) = net.accecn_handshake_echo(0b010);
    // 10 full segments echoed back to us, then one ACK for all of them.
    for i in 0..10u32 {
        net.accecn_echo(1 + i * 1000, iss.add(1), &[b'x'; 1000], 0b101);
    }
    net.accecn_echo(10_001, iss.add(10_001), b"", 0b110);
    assert_eq!(net.ep.stats().delivered_ce, 9);
}

/// RFC 9768 §3.2.2.3: the handshake's ACK with ACE zeroed means a middlebox clears the
/// flags: we send Not-ECT from then on and ignore the field, but still feed back.
#[test]
fn a_zeroed_ace_on_the_handshake_ack_falls_back_to_not_ect() {
    let mut net = Net::v4();
    let (_, _, _, iss) = net.accecn_handshake_echo(0b000);
    assert_eq!(net.ep.stats().accecn_ace_failures, 1);
    let out = net.accecn_echo(1, iss.add(1), b"hello", 0b000);
    assert!(!out.is_empty());
    assert!(
        out.iter().all(|s| s.1 == Ecn::NotEct && s.0 == 0b101),
        "{out:?}"
    );
    net.accecn_echo(6, iss.add(6), b"", 0b011);
    assert_eq!(net.ep.stats().delivered_ce, 0, "the field is not believed");
}

impl Net {
    /// An AccECN handshake on echo (Not-ECT SYN), whose ACK has ACE `ack_ace`.
    fn accecn_handshake_echo(
        &mut self,
        ack_ace: u8,
    ) -> (Flags, Ecn, Option<wire::AccEcnOption>, SeqNum) {
        let raw = self.exchange_raw(&TcpSegment {
            flags: Flags::SYN.with_ace(0b111),
            options: TcpOptions {
                mss: Some(1000),
                ..TcpOptions::EMPTY
            },
            ..FROM_PEER
        });
        let sa = parsed(&raw)[0];
        let out = self.exchange_raw(&TcpSegment {
            seq: PEER_ISN.add(1),
            ack: sa.seq.add(1),
            flags: Flags::ACK.with_ace(ack_ace),
            ..FROM_PEER
        });
        assert!(out.is_empty());
        (sa.flags, sa.ecn, sa.options.accecn, sa.seq)
    }

    /// The peer's segment on the echo connection: what we sent, as (ACE, IP-ECN).
    fn accecn_echo(&mut self, seq: u32, ack: SeqNum, data: &[u8], ace: u8) -> Vec<(u8, Ecn)> {
        let raw = self.exchange_raw(&TcpSegment {
            seq: PEER_ISN.add(seq),
            ack,
            flags: Flags::ACK.with_ace(ace),
            payload: data,
            ecn: Ecn::Ect0,
            ..FROM_PEER
        });
        parsed(&raw)
            .iter()
            .map(|s| (s.flags.ace(), s.ecn))
            .collect()
    }
}

impl Net {
    /// `--ecn accecn`: our SYN to the peer's port 9, answered by a SYN,ACK with the ACE value
    /// `ace` and the IP-ECN field `ecn`: our SYN's flags, then the ACE of what we sent next.
    fn accecn_connect(&mut self, ace: u8, ecn: Ecn) -> (Flags, Vec<u8>) {
        self.ep.tcp_config_mut().ecn = tcp::EcnMode::AccEcn;
        self.ep
            .connect(self.now, SocketAddr::new(self.peer, 9), b"hi".to_vec())
            .unwrap();
        let mut tx: Vec<Vec<u8>> = Vec::new();
        self.ep.poll(self.now, &mut tx);
        let syn = parsed(&tx)[0];
        let out = self.exchange_raw(&TcpSegment {
            src_port: 9,
            dst_port: syn.src_port,
            seq: PEER_ISN,
            ack: syn.seq.add(1),
            flags: (Flags::SYN | Flags::ACK).with_ace(ace),
            ecn,
            options: TcpOptions {
                mss: Some(1460),
                ..TcpOptions::EMPTY
            },
            ..FROM_PEER
        });
        (
            syn.flags,
            parsed(&out).iter().map(|s| s.flags.ace()).collect(),
        )
    }
}

/// RFC 9768 §3.1.1–3.1.2 as a client (`--ecn accecn`, Linux's `tcp_ecn=3`): the SYN asks
/// with AE, CWR and ECE; a SYN,ACK with 010, 011, 100 or 110 means AccECN, and our first
/// segment after it reflects the SYN,ACK's IP-ECN field (ECT(0): 100), later ones carry
/// r.cep (101); 001 and 101 mean RFC 3168; 000 and 111 no ECN.
#[test]
fn accecn_as_a_client_asks_and_reflects_the_syn_ack() {
    for (ace, ecn, want_first, want) in [
        (0b010, Ecn::Ect0, 0b100, Some(true)),
        (0b110, Ecn::Ce, 0b110, Some(true)),
        (0b001, Ecn::NotEct, 0b000, Some(false)),
        (0b101, Ecn::NotEct, 0b000, Some(false)),
        (0b000, Ecn::NotEct, 0b000, None),
        (0b111, Ecn::NotEct, 0b000, None),
    ] {
        let mut net = Net::v4();
        let (syn, aces) = net.accecn_connect(ace, ecn);
        assert_eq!(syn, Flags::SYN | Flags::AE | Flags::CWR | Flags::ECE);
        assert_eq!(
            aces.first(),
            Some(&want_first),
            "SYN,ACK {ace:03b}: {aces:?}"
        );
        if want == Some(true) {
            assert!(aces[1..].iter().all(|a| *a == 0b101), "{aces:?}");
        }
        let snap = net.ep.snapshot(net.now);
        let info = snap
            .iter()
            .find_map(|s| s.info.as_ref())
            .expect("a connection");
        assert_eq!(
            (info.ecn, info.accecn),
            (want.is_some(), want == Some(true)),
            "SYN,ACK {ace:03b}"
        );
    }
}

/// RFC 3168 §6.1.1.1 and RFC 9768 §3.1.4.1, as Linux's `tcp_ecn_fallback=1`: a SYN
/// retransmitted after a timeout asks for no ECN, in case ECN-setup SYNs are dropped.
#[test]
fn a_retransmitted_syn_asks_for_no_ecn() {
    for (mode, first) in [
        (tcp::EcnMode::On, Flags::SYN | Flags::ECE | Flags::CWR),
        (
            tcp::EcnMode::AccEcn,
            Flags::SYN | Flags::AE | Flags::CWR | Flags::ECE,
        ),
    ] {
        let mut net = Net::v4();
        net.ep.tcp_config_mut().ecn = mode;
        net.ep
            .connect(net.now, SocketAddr::new(net.peer, 9), Vec::new())
            .unwrap();
        let mut tx: Vec<Vec<u8>> = Vec::new();
        net.ep.poll(net.now, &mut tx);
        assert_eq!(parsed(&tx)[0].flags, first);
        net.now += Duration::from_secs(2);
        let mut tx: Vec<Vec<u8>> = Vec::new();
        net.ep.poll(net.now, &mut tx);
        let again = parsed(&tx);
        assert_eq!(again.len(), 1, "{mode}: one retransmitted SYN");
        assert_eq!(again[0].flags, Flags::SYN, "{mode}");
    }
}

/// RFC 9937 after an ECE (Linux's CWR state): the window comes down to ssthresh with PRR,
/// in step with the ACKs, instead of in one step. With ten segments in flight and a CUBIC
/// ssthresh of seven, a one-step cut sends nothing for the first three ACKs; PRR sends at
/// once and about seven segments for every ten delivered.
#[test]
fn the_peers_ece_reduces_the_window_with_prr() {
    let mut net = Net::v4();
    let (_, _, iss) = net.ecn_handshake(Flags::ECE | Flags::CWR);
    // The peer sends 40 kB without acknowledging anything: echo fills its window.
    let mut ours: Vec<(SeqNum, usize)> = Vec::new();
    for i in 0..40u32 {
        let out = net.data(
            1 + 1000 * i,
            iss.add(1),
            &[b'x'; 1000],
            Flags::NONE,
            Ecn::Ect0,
        );
        ours.extend(
            parsed(&out)
                .iter()
                .filter(|s| !s.payload.is_empty())
                .map(|s| (s.seq, s.payload.len())),
        );
    }
    let window = ours.len();
    assert!(window >= 10, "{window} segments in the initial window");
    let peer_next = 1 + 1000 * 40;
    // The peer acknowledges our segments one by one, the first ACK with ECE.
    let mut sent_per_ack = Vec::new();
    for (k, &(seq, len)) in ours.iter().take(window).enumerate() {
        let ack = seq.add(len as u32);
        let flags = if k == 0 { Flags::ECE } else { Flags::NONE };
        let out = net.data(peer_next, ack, b"", flags, Ecn::NotEct);
        if k == 0 {
            // `status --info` names the state as Linux's tcpi_ca_state does.
            let snap = net.ep.snapshot(net.now);
            let info = snap.iter().find_map(|s| s.info.as_ref()).unwrap();
            assert_eq!(info.ca_state, "cwr");
        }
        sent_per_ack.push(
            parsed(&out)
                .iter()
                .filter(|s| !s.payload.is_empty())
                .count(),
        );
    }
    assert_eq!(net.ep.stats().ecn_cwnd_reductions, 1);
    assert!(
        sent_per_ack[0] >= 1,
        "PRR sends on the ECE's own ACK: {sent_per_ack:?}"
    );
    assert!(
        sent_per_ack[..3].iter().sum::<usize>() >= 2,
        "{sent_per_ack:?}"
    );
    // About β = 0.7 of what was delivered, not a burst at the end of the round.
    let total: usize = sent_per_ack.iter().sum();
    assert!(
        (window * 6 / 10..=window * 8 / 10 + 1).contains(&total),
        "{total} sent for {window} delivered: {sent_per_ack:?}"
    );
    assert!(sent_per_ack.iter().all(|&n| n <= 2), "{sent_per_ack:?}");
}
