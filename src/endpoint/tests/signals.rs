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
