//! TCP Fast Open (RFC 7413): the listener's rules (`endpoint/fastopen.rs`) and the client's
//! cookie cache and data on the SYN (`tcp/fastopen.rs`).

use super::hardening::{LINUX_SYN, Seg, backlog, net_with_config, test_config};
use super::*;
use crate::wire::FastOpenCookie;

/// An endpoint with `--fastopen` and the listeners of `Net::v4` (echo on 7, http on 80).
fn fast_open_net(limits: Limits) -> Net {
    net_with_config(
        limits,
        EndpointConfig {
            fastopen: true,
            ..test_config()
        },
    )
}

/// A SYN to the echo port from `port` with a Fast Open option and `data`.
fn fo_syn(port: u16, fastopen: Option<FastOpenCookie>, data: &'static [u8]) -> TcpSegment<'static> {
    TcpSegment {
        src_port: port,
        flags: Flags::SYN,
        options: TcpOptions {
            fastopen,
            ..LINUX_SYN
        },
        payload: data,
        ..FROM_PEER
    }
}

fn counter(net: &Net, name: &str) -> u64 {
    net.ep
        .counters()
        .into_iter()
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v)
        .unwrap()
}

/// The receive and send queues of a connection (as `ss` shows them).
fn queues(net: &Net, quad: &Quad) -> (usize, usize) {
    let row = net.ep.snapshot(net.now);
    let row = row
        .iter()
        .find(|r| r.local == quad.local && r.peer == Some(quad.remote))
        .unwrap();
    (row.recv_q, row.send_q)
}

/// The cookie a request from `port` gets.
fn cookie_for(net: &mut Net, port: u16) -> FastOpenCookie {
    let out = net.exchange(
        &fo_syn(port, Some(FastOpenCookie::request(false)), b""),
        true,
    );
    out[0].options.fastopen.expect("a cookie")
}

#[test]
fn a_cookie_request_gets_a_cookie_and_an_ordinary_handshake() {
    let mut net = fast_open_net(backlog(16));
    let out = net.exchange(
        &fo_syn(6000, Some(FastOpenCookie::request(false)), b"hello\n"),
        true,
    );
    assert_eq!(out.len(), 1);
    let sa = &out[0];
    assert_eq!(sa.flags, Flags::SYN | Flags::ACK);
    // Only the SYN is acknowledged: data without a cookie is not taken (RFC 7413 §4.2.2).
    assert_eq!(sa.ack, PEER_ISN.add(1));
    let cookie = sa.options.fastopen.expect("a cookie in the SYN,ACK");
    assert_eq!(cookie.as_bytes().len(), 8);
    assert!(!cookie.exp);
    assert_eq!(counter(&net, "fastopen_cookie_reqd"), 1);
    assert_eq!(counter(&net, "fastopen_passive"), 0);
    // The same client gets the same cookie from another port; the experimental form is
    // answered in its own form.
    assert_eq!(cookie_for(&mut net, 6001), cookie);
    let out = net.exchange(
        &fo_syn(6002, Some(FastOpenCookie::request(true)), b""),
        true,
    );
    let exp = out[0].options.fastopen.unwrap();
    assert!(exp.exp);
    assert_eq!(exp.as_bytes(), cookie.as_bytes());
}

#[test]
fn without_fastopen_a_request_is_counted_and_not_answered() {
    let mut net = super::hardening::net_with(backlog(16));
    let out = net.exchange(
        &fo_syn(6000, Some(FastOpenCookie::request(false)), b"hello\n"),
        true,
    );
    assert_eq!(out[0].ack, PEER_ISN.add(1));
    assert_eq!(out[0].options.fastopen, None);
    assert_eq!(counter(&net, "fastopen_cookie_reqd"), 1);
}

#[test]
fn a_valid_cookie_has_its_data_taken_acked_in_the_syn_ack_and_served_at_once() {
    let mut net = fast_open_net(backlog(16));
    let cookie = cookie_for(&mut net, 6000);
    let out = net.exchange(&fo_syn(6001, Some(cookie), b"hello\n"), true);
    assert_eq!(out.len(), 1, "{out:?}");
    let sa = &out[0];
    assert_eq!(sa.flags, Flags::SYN | Flags::ACK);
    // RFC 7413 §4.2.2: the SYN,ACK acknowledges the data; no cookie goes back.
    assert_eq!(sa.ack, PEER_ISN.add(1 + 6));
    assert_eq!(sa.options.fastopen, None);
    assert_eq!(counter(&net, "fastopen_passive"), 1);
    let quad = super::hardening::quad_from(6001);
    assert_eq!(net.ep.connection_state(&quad), Some(State::SynReceived));
    // The echo service read it already: its answer goes as soon as the handshake completes.
    assert_eq!(queues(&net, &quad), (0, 6));
    let out = net.exchange(
        &TcpSegment {
            src_port: 6001,
            seq: PEER_ISN.add(7),
            ack: sa.seq.add(1),
            flags: Flags::ACK,
            options: TcpOptions {
                timestamps: Some((1_001, sa.options.timestamps.unwrap().0)),
                ..TcpOptions::EMPTY
            },
            ..FROM_PEER
        },
        true,
    );
    assert_eq!(net.ep.connection_state(&quad), Some(State::Established));
    let data: Vec<u8> = out.iter().flat_map(|s| s.payload.clone()).collect();
    assert_eq!(data, b"hello\n");
    // The ladder draws the data-carrying SYN.
    let ladders: String = net.ep.ladders().into_iter().map(|(_, l)| l).collect();
    assert!(ladders.contains("SYN seq=0 len=6"), "{ladders}");
    assert!(ladders.contains("[TFO]"), "{ladders}");
    assert!(ladders.contains("wscale 7,tfo cookie>"), "{ladders}");
    assert!(ladders.contains("tfo cookiereq>"), "{ladders}");
}

#[test]
fn an_invalid_cookie_falls_back_to_an_ordinary_handshake_with_a_new_cookie() {
    let mut net = fast_open_net(backlog(16));
    let good = cookie_for(&mut net, 6000);
    let bad = FastOpenCookie::new(&[1, 2, 3, 4, 5, 6, 7, 8], false).unwrap();
    let out = net.exchange(&fo_syn(6001, Some(bad), b"hello\n"), true);
    assert_eq!(out[0].ack, PEER_ISN.add(1), "the data is not acknowledged");
    assert_eq!(out[0].options.fastopen, Some(good));
    assert_eq!(counter(&net, "fastopen_passive_fail"), 1);
    assert_eq!(counter(&net, "fastopen_passive"), 0);
    let quad = super::hardening::quad_from(6001);
    assert_eq!(queues(&net, &quad), (0, 0));
}

#[test]
fn fast_open_connections_pending_are_bounded_by_the_backlog() {
    // RFC 7413 §5.1; Linux's limit is the listen backlog (tcp_fastopen=0x400).
    let mut net = fast_open_net(backlog(2));
    let cookie = cookie_for(&mut net, 6000);
    for port in [6001, 6002] {
        let out = net.exchange(&fo_syn(port, Some(cookie), b"hi"), true);
        assert_eq!(out[0].ack, PEER_ISN.add(3), "port {port}");
    }
    let out = net.exchange(&fo_syn(6003, Some(cookie), b"hi"), true);
    assert_eq!(out[0].flags, Flags::SYN | Flags::ACK);
    assert_eq!(out[0].ack, PEER_ISN.add(1), "past the bound: only the SYN");
    assert_eq!(out[0].options.fastopen, None);
    assert_eq!(counter(&net, "fastopen_listen_overflow"), 1);
    assert_eq!(counter(&net, "fastopen_passive"), 2);
}

/// The SYN our client sends, and the port it comes from.
fn client_syn(net: &mut Net, data: &[u8]) -> (ClientId, u16, Seg) {
    let id = net
        .ep
        .connect_with(
            net.now,
            "198.18.0.1:8080".parse().unwrap(),
            data.to_vec(),
            true,
        )
        .unwrap();
    let port = net.ep.client_local(id).unwrap().port();
    let out = net.poll_now();
    assert_eq!(out.len(), 1);
    (id, port, out.into_iter().next().unwrap())
}

/// The server's SYN,ACK to our SYN on `port`, acknowledging `ack`, with `cookie`.
fn server_syn_ack(
    net: &mut Net,
    port: u16,
    syn: &Seg,
    acked: u32,
    cookie: Option<FastOpenCookie>,
) -> Vec<Seg> {
    net.exchange(
        &TcpSegment {
            src_port: 8080,
            dst_port: port,
            seq: PEER_ISN,
            ack: syn.seq.add(1 + acked),
            flags: Flags::SYN | Flags::ACK,
            options: TcpOptions {
                mss: Some(1460),
                fastopen: cookie,
                ..TcpOptions::EMPTY
            },
            ..FROM_PEER
        },
        true,
    )
}

#[test]
fn the_client_asks_for_a_cookie_then_sends_data_on_the_syn() {
    let mut net = Net::v4();
    let request = b"GET / HTTP/1.0\r\n\r\n";
    // No cookie yet: the SYN asks for one and carries no data.
    let (_, port, syn) = client_syn(&mut net, request);
    assert_eq!(syn.options.fastopen, Some(FastOpenCookie::request(false)));
    assert!(syn.payload.is_empty());
    let cookie = FastOpenCookie::new(&[9, 8, 7, 6, 5, 4, 3, 2], false).unwrap();
    let out = server_syn_ack(&mut net, port, &syn, 0, Some(cookie));
    // The data follows the handshake as usual.
    let data: Vec<u8> = out.iter().flat_map(|s| s.payload.clone()).collect();
    assert_eq!(data, request);
    // With the cookie cached for that server, the next SYN carries it and the data.
    let (_, port, syn) = client_syn(&mut net, request);
    assert_eq!(syn.options.fastopen, Some(cookie));
    assert_eq!(syn.payload, request);
    let out = server_syn_ack(&mut net, port, &syn, request.len() as u32, None);
    assert_eq!(out.len(), 1, "{out:?}");
    assert!(out[0].payload.is_empty(), "nothing to send again");
    assert_eq!(out[0].seq, syn.seq.add(1 + request.len() as u32));
    assert_eq!(counter(&net, "fastopen_active"), 1);
    assert_eq!(counter(&net, "fastopen_active_fail"), 0);
}

/// An endpoint whose client side holds a cookie for 198.18.0.1 (one connection asked for it).
fn with_cached_cookie() -> (Net, FastOpenCookie) {
    let mut net = Net::v4();
    let cookie = FastOpenCookie::new(&[9, 8, 7, 6, 5, 4, 3, 2], false).unwrap();
    let (_, port, syn) = client_syn(&mut net, b"x");
    server_syn_ack(&mut net, port, &syn, 0, Some(cookie));
    (net, cookie)
}

#[test]
fn data_the_syn_ack_does_not_acknowledge_is_sent_again_at_once() {
    let (mut net, _) = with_cached_cookie();
    let (_, port, syn) = client_syn(&mut net, b"hello\n");
    assert_eq!(syn.payload, b"hello\n");
    // The server (its cookie changed, say) acknowledges only the SYN.
    let out = server_syn_ack(&mut net, port, &syn, 0, None);
    let data: Vec<(SeqNum, Vec<u8>)> = out
        .iter()
        .filter(|s| !s.payload.is_empty())
        .map(|s| (s.seq, s.payload.clone()))
        .collect();
    assert_eq!(data, vec![(syn.seq.add(1), b"hello\n".to_vec())]);
    assert_eq!(counter(&net, "fastopen_active_fail"), 1);
}

#[test]
fn a_retransmitted_fast_open_syn_carries_no_data() {
    let (mut net, cookie) = with_cached_cookie();
    let (_, _, syn) = client_syn(&mut net, b"hello\n");
    assert_eq!(syn.payload, b"hello\n");
    // (The first connection's unacknowledged FIN is retransmitted meanwhile.)
    let again = (0..10)
        .flat_map(|_| net.next_output(Duration::from_secs(5)))
        .find(|s| s.flags.syn())
        .expect("a retransmitted SYN");
    assert_eq!(again.flags, Flags::SYN);
    assert!(again.payload.is_empty());
    assert_eq!(again.fastopen, Some(cookie));
    assert_eq!(counter(&net, "fastopen_active_fail"), 1);
}

#[test]
fn a_syn_cookie_handshake_does_no_fast_open() {
    // The request fills the half-open queue of one; the next SYN is answered with a SYN
    // cookie, which keeps no state: its data is not taken (Linux's tcp_conn_request).
    let mut net = fast_open_net(backlog(1));
    let cookie = cookie_for(&mut net, 6000);
    let out = net.exchange(&fo_syn(6001, Some(cookie), b"hello\n"), true);
    assert_eq!(out[0].flags, Flags::SYN | Flags::ACK);
    assert_eq!(out[0].ack, PEER_ISN.add(1));
    assert_eq!(out[0].options.fastopen, None);
    assert_eq!(counter(&net, "syn_cookies_sent"), 1);
    assert_eq!(counter(&net, "fastopen_passive"), 0);
}

#[test]
fn ipv6_clients_get_cookies_of_their_own_and_fast_open_too() {
    let mut net = fast_open_net(backlog(16));
    let v4 = cookie_for(&mut net, 6000);
    (net.peer, net.us) = (ip(PEER6), ip(US6));
    let v6 = cookie_for(&mut net, 6000);
    assert_ne!(v4, v6);
    let out = net.exchange(&fo_syn(6001, Some(v6), b"hello\n"), true);
    assert_eq!(out[0].ack, PEER_ISN.add(7));
    // The IPv4 client's cookie is not valid from the IPv6 address.
    let out = net.exchange(&fo_syn(6002, Some(v4), b"hello\n"), true);
    assert_eq!(out[0].ack, PEER_ISN.add(1));
    assert_eq!(out[0].options.fastopen, Some(v6));
}
