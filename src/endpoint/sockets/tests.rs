//! The socket API's semantics on the virtual clock: two endpoints joined by a perfect link,
//! each driven only through its sockets, and crafted segments where a peer must misbehave.

use super::*;
use crate::endpoint::EndpointConfig;
use crate::seqnum::SeqNum;
use crate::wire::{self, Flags, Packet, SEGMENT_TEMPLATE, TcpOptions, TcpSegment};

const A: &str = "198.18.0.2";
const B: &str = "198.18.0.1";
const A6: &str = "2001:2::2";
const B6: &str = "2001:2::1";

fn endpoint(addrs: &[&str], secret: u8) -> Endpoint {
    let cfg = EndpointConfig {
        addrs: addrs.iter().map(|a| a.parse().unwrap()).collect(),
        listeners: vec![],
        time_wait: Duration::from_secs(1),
        ..EndpointConfig::default()
    };
    Endpoint::new(cfg, [secret; 16], Instant::from_millis(1_000))
}

/// Two endpoints and the packets in flight between them.
struct Pair {
    a: Endpoint,
    b: Endpoint,
    now: Instant,
    /// Every packet each side sent, parsed: (from a?, flags).
    log: Vec<(bool, Flags, usize)>,
    /// Drop everything B sends (a peer that vanished).
    b_silent: bool,
}

impl Pair {
    fn new() -> Pair {
        Pair {
            a: endpoint(&[A, A6], 1),
            b: endpoint(&[B, B6], 2),
            now: Instant::from_millis(1_000),
            log: Vec::new(),
            b_silent: false,
        }
    }

    /// Run both endpoints until nothing is in flight (no time passes).
    fn settle(&mut self) {
        for _ in 0..1000 {
            let mut from_a: Vec<Vec<u8>> = Vec::new();
            let mut from_b: Vec<Vec<u8>> = Vec::new();
            self.a.poll(self.now, &mut from_a);
            self.b.poll(self.now, &mut from_b);
            if self.b_silent {
                from_b.clear();
            }
            if from_a.is_empty() && from_b.is_empty() {
                return;
            }
            let mut dropped: Vec<Vec<u8>> = Vec::new();
            for p in &from_a {
                self.note(true, p);
                let out = if self.b_silent {
                    &mut dropped
                } else {
                    &mut from_b
                };
                self.b.receive(self.now, p, out);
            }
            for p in &from_b {
                self.note(false, p);
                let mut back: Vec<Vec<u8>> = Vec::new();
                self.a.receive(self.now, p, &mut back);
                for q in &back {
                    self.note(true, q);
                    let mut none: Vec<Vec<u8>> = Vec::new();
                    self.b.receive(self.now, q, &mut none);
                }
            }
        }
        panic!("the endpoints never went quiet");
    }

    fn note(&mut self, from_a: bool, p: &[u8]) {
        if let Ok(Packet::Tcp { seg, .. }) = wire::parse(p) {
            self.log.push((from_a, seg.flags, seg.payload.len()));
        }
    }

    /// Advance to the earlier deadline of the two, then settle.
    fn advance(&mut self) {
        let next = [self.a.poll_timeout(), self.b.poll_timeout()]
            .into_iter()
            .flatten()
            .min()
            .expect("a deadline");
        self.now = self.now.max(next);
        self.settle();
    }

    /// A listener on B's port 5000 and a connection to it from A, both accepted.
    fn connected(&mut self) -> (SocketHandle, SocketHandle, SocketHandle) {
        let l = self.b.sockets().socket(false);
        self.b.sockets().bind(l, sa(B, 5000)).unwrap();
        self.b.sockets().listen(l, 8).unwrap();
        let c = self.a.sockets().socket(false);
        assert_eq!(
            self.a.sockets().connect(self.now, c, sa(B, 5000)),
            Err(SocketError::InProgress)
        );
        self.settle();
        assert_eq!(self.a.sockets().connect(self.now, c, sa(B, 5000)), Ok(()));
        let (s, peer) = self.b.sockets().accept(l).unwrap();
        assert_eq!(peer.ip(), A.parse::<IpAddr>().unwrap());
        (l, c, s)
    }

    fn rsts_from(&self, a: bool) -> usize {
        self.log
            .iter()
            .filter(|(from_a, f, _)| *from_a == a && f.rst())
            .count()
    }
}

fn sa(ip: &str, port: u16) -> SocketAddr {
    SocketAddr::new(ip.parse().unwrap(), port)
}

#[test]
fn listen_accept_connect_read_write_both_ways() {
    let mut p = Pair::new();
    let (_, c, s) = p.connected();
    assert_eq!(p.a.sockets().send(c, b"hello"), Ok(5));
    p.settle();
    let mut buf = [0u8; 16];
    assert_eq!(p.b.sockets().recv(s, &mut buf, true), Ok(5), "peek");
    assert_eq!(p.b.sockets().recv(s, &mut buf, false), Ok(5));
    assert_eq!(&buf[..5], b"hello");
    assert_eq!(
        p.b.sockets().recv(s, &mut buf, false),
        Err(SocketError::WouldBlock)
    );
    assert_eq!(p.b.sockets().send(s, b"world!"), Ok(6));
    p.settle();
    assert!(p.a.sockets().readiness(c).readable);
    assert_eq!(p.a.sockets().recv(c, &mut buf, false), Ok(6));
    assert_eq!(
        p.a.sockets().connect(p.now, c, sa(B, 5000)),
        Err(SocketError::AlreadyConnected)
    );
    assert_eq!(p.a.sockets().peer_addr(c), Ok(sa(B, 5000)));
    assert_eq!(p.b.sockets().local_addr(s), Ok(sa(B, 5000)));
}

#[test]
fn ipv6_and_ipv4_mapped_addresses() {
    let mut p = Pair::new();
    let l = p.b.sockets().socket(true);
    p.b.sockets().bind(l, sa("::", 6000)).unwrap();
    p.b.sockets().listen(l, 4).unwrap();
    // An IPv6 socket connecting to an IPv4-mapped address speaks IPv4.
    let c4 = p.a.sockets().socket(true);
    let mapped = sa("::ffff:198.18.0.1", 6000);
    assert_eq!(
        p.a.sockets().connect(p.now, c4, mapped),
        Err(SocketError::InProgress)
    );
    let c6 = p.a.sockets().socket(true);
    assert_eq!(
        p.a.sockets().connect(p.now, c6, sa(B6, 6000)),
        Err(SocketError::InProgress)
    );
    p.settle();
    let (_, peer1) = p.b.sockets().accept(l).unwrap();
    let (_, peer2) = p.b.sockets().accept(l).unwrap();
    let mut peers = [peer1.is_ipv4(), peer2.is_ipv4()];
    peers.sort();
    assert_eq!(peers, [false, true], "`::` listens on both families");
    // An IPv4 socket cannot take an IPv6 address.
    let v4 = p.a.sockets().socket(false);
    assert_eq!(
        p.a.sockets().connect(p.now, v4, sa(B6, 6000)),
        Err(SocketError::FamilyNotSupported)
    );
}

#[test]
fn connection_refused_is_reported_by_connect_and_so_error() {
    let mut p = Pair::new();
    let c = p.a.sockets().socket(false);
    assert_eq!(
        p.a.sockets().connect(p.now, c, sa(B, 9999)),
        Err(SocketError::InProgress)
    );
    assert_eq!(
        p.a.sockets().connect(p.now, c, sa(B, 9999)),
        Err(SocketError::Already)
    );
    p.settle();
    let r = p.a.sockets().readiness(c);
    assert!(r.error && r.hangup, "{r:?}");
    assert_eq!(
        p.a.sockets().connect(p.now, c, sa(B, 9999)),
        Err(SocketError::ConnectionRefused)
    );
    assert_eq!(p.a.sockets().take_error(c), Ok(None), "reported once");
}

#[test]
fn an_unanswered_syn_times_out() {
    let mut p = Pair::new();
    p.b_silent = true;
    p.a.tcp_config_mut().syn_retries = 2;
    let c = p.a.sockets().socket(false);
    let _ = p.a.sockets().connect(p.now, c, sa(B, 5000));
    p.settle();
    for _ in 0..3 {
        p.advance();
    }
    assert_eq!(p.a.sockets().take_error(c), Ok(Some(SocketError::TimedOut)));
}

#[test]
fn calls_in_the_wrong_state_fail_as_posix_says() {
    let mut p = Pair::new();
    let s = p.a.sockets().socket(false);
    let mut buf = [0u8; 4];
    assert_eq!(
        p.a.sockets().recv(s, &mut buf, false),
        Err(SocketError::NotConnected)
    );
    assert_eq!(p.a.sockets().send(s, b"x"), Err(SocketError::BrokenPipe));
    assert_eq!(
        p.a.sockets().shutdown(s, Shutdown::Write),
        Err(SocketError::NotConnected)
    );
    assert_eq!(
        p.a.sockets().accept(s).map(|_| ()),
        Err(SocketError::InvalidArgument)
    );
    assert_eq!(
        p.a.sockets().bind(s, sa("198.18.0.99", 1)),
        Err(SocketError::AddrNotAvailable)
    );
    p.a.sockets().bind(s, sa(A, 7000)).unwrap();
    assert_eq!(
        p.a.sockets().bind(s, sa(A, 7001)),
        Err(SocketError::InvalidArgument),
        "bound already"
    );
    p.a.sockets().listen(s, 1).unwrap();
    let other = p.a.sockets().socket(false);
    assert_eq!(
        p.a.sockets().bind(other, sa("0.0.0.0", 7000)),
        Err(SocketError::AddrInUse)
    );
    assert_eq!(
        p.a.sockets().accept(s).map(|_| ()),
        Err(SocketError::WouldBlock)
    );
    assert_eq!(
        p.a.sockets().connect(p.now, s, sa(B, 1)),
        Err(SocketError::AlreadyConnected)
    );
    p.a.sockets().close(s).unwrap();
    assert_eq!(p.a.sockets().close(s), Err(SocketError::BadHandle));
    assert_eq!(
        p.a.sockets().set_option(s, SockOpt::NoDelay(true)),
        Err(SocketError::BadHandle)
    );
    let m = p.a.sockets().socket(false);
    assert_eq!(
        p.a.sockets().set_option(m, SockOpt::MaxSeg(10)),
        Err(SocketError::InvalidArgument)
    );
    // The port is free again once the listener is closed.
    p.a.sockets().bind(m, sa(A, 7000)).unwrap();
}

#[test]
fn shutdown_write_sends_fin_and_reading_goes_on() {
    let mut p = Pair::new();
    let (_, c, s) = p.connected();
    p.a.sockets().shutdown(c, Shutdown::Write).unwrap();
    assert_eq!(p.a.sockets().send(c, b"x"), Err(SocketError::BrokenPipe));
    p.settle();
    let mut buf = [0u8; 8];
    assert_eq!(p.b.sockets().recv(s, &mut buf, false), Ok(0), "EOF");
    assert!(p.b.sockets().readiness(s).read_hangup);
    // B goes on sending; A goes on reading.
    assert_eq!(p.b.sockets().send(s, b"more"), Ok(4));
    p.settle();
    assert_eq!(p.a.sockets().recv(c, &mut buf, false), Ok(4));
    p.b.sockets().close(s).unwrap();
    p.settle();
    assert_eq!(p.a.sockets().recv(c, &mut buf, false), Ok(0));
    assert_eq!(p.rsts_from(true) + p.rsts_from(false), 0);
    let local = p.a.sockets().local_addr(c).unwrap();
    assert_eq!(
        p.a.connection_state(&Quad {
            local,
            remote: sa(B, 5000)
        }),
        Some(State::TimeWait)
    );
}

#[test]
fn shutdown_read_reads_end_of_stream_and_both_shuts_both() {
    let mut p = Pair::new();
    let (_, c, s) = p.connected();
    p.b.sockets().shutdown(s, Shutdown::Read).unwrap();
    let mut buf = [0u8; 8];
    assert_eq!(p.b.sockets().recv(s, &mut buf, false), Ok(0));
    assert_eq!(p.b.sockets().send(s, b"ok"), Ok(2), "writing goes on");
    p.settle();
    assert_eq!(p.a.sockets().recv(c, &mut buf, false), Ok(2));
    p.a.sockets().shutdown(c, Shutdown::Both).unwrap();
    assert_eq!(p.a.sockets().send(c, b"x"), Err(SocketError::BrokenPipe));
    assert_eq!(p.a.sockets().recv(c, &mut buf, false), Ok(0));
    p.settle();
    let r = p.a.sockets().readiness(c);
    assert!(r.hangup && r.readable, "{r:?}");
}

#[test]
fn close_with_unread_data_resets() {
    let mut p = Pair::new();
    let (_, c, s) = p.connected();
    assert_eq!(p.a.sockets().send(c, b"unread"), Ok(6));
    p.settle();
    p.b.sockets().close(s).unwrap();
    p.settle();
    assert_eq!(p.rsts_from(false), 1, "RFC 9293 §3.10.4: a RST, not a FIN");
    let mut buf = [0u8; 8];
    assert_eq!(
        p.a.sockets().recv(c, &mut buf, false),
        Err(SocketError::ConnectionReset)
    );
    assert_eq!(p.a.sockets().recv(c, &mut buf, false), Ok(0));
    assert_eq!(p.a.sockets().send(c, b"x"), Err(SocketError::BrokenPipe));
}

#[test]
fn linger_zero_aborts_and_close_otherwise_fins() {
    let mut p = Pair::new();
    let (_, c, s) = p.connected();
    p.a.sockets()
        .set_option(c, SockOpt::Linger(Some(0)))
        .unwrap();
    p.a.sockets().close(c).unwrap();
    p.settle();
    assert_eq!(p.rsts_from(true), 1);
    assert_eq!(
        p.b.sockets().take_error(s),
        Ok(Some(SocketError::ConnectionReset))
    );
    // A plain close: FIN, no RST.
    let mut p = Pair::new();
    let (_, c, s) = p.connected();
    p.a.sockets().close(c).unwrap();
    p.settle();
    let mut buf = [0u8; 4];
    assert_eq!(p.b.sockets().recv(s, &mut buf, false), Ok(0));
    p.b.sockets().close(s).unwrap();
    p.settle();
    assert_eq!(p.rsts_from(true) + p.rsts_from(false), 0);
    assert_eq!(p.a.connection_count(), 1, "A's side waits in TIME-WAIT");
    p.advance();
    assert_eq!(p.a.connection_count(), 0);
    assert_eq!(p.b.connection_count(), 0);
}

#[test]
fn close_in_syn_sent_sends_nothing() {
    let mut p = Pair::new();
    p.b_silent = true;
    let c = p.a.sockets().socket(false);
    let _ = p.a.sockets().connect(p.now, c, sa(B, 5000));
    p.settle();
    p.a.sockets().close(c).unwrap();
    p.settle();
    assert_eq!(p.rsts_from(true), 0);
    assert_eq!(p.a.connection_count(), 0);
}

#[test]
fn accept_backlog_overflow_drops_the_final_ack() {
    let mut p = Pair::new();
    let l = p.b.sockets().socket(false);
    p.b.sockets().bind(l, sa(B, 5000)).unwrap();
    // listen(fd, 1) holds two, as Linux's.
    p.b.sockets().listen(l, 1).unwrap();
    let clients: Vec<SocketHandle> = (0..3)
        .map(|_| {
            let c = p.a.sockets().socket(false);
            let _ = p.a.sockets().connect(p.now, c, sa(B, 5000));
            c
        })
        .collect();
    p.settle();
    assert_eq!(p.b.queue_lengths(5000), Some((1, 2)));
    assert!(p.b.stats().accept_queue_full > 0);
    assert!(p.b.sockets().accept(l).is_ok());
    assert!(p.b.sockets().accept(l).is_ok());
    assert_eq!(
        p.b.sockets().accept(l).map(|_| ()),
        Err(SocketError::WouldBlock)
    );
    // The third completes when B's SYN,ACK is retransmitted, now that there is room.
    p.advance();
    assert!(p.b.sockets().accept(l).is_ok());
    for c in clients {
        assert!(p.a.sockets().readiness(c).writable);
    }
}

#[test]
fn closing_a_listener_resets_what_it_had_not_accepted() {
    let mut p = Pair::new();
    let l = p.b.sockets().socket(false);
    p.b.sockets().listen(l, 4).unwrap();
    let port = p.b.sockets().local_addr(l).unwrap().port();
    assert!(super::super::client::EPHEMERAL_PORTS.contains(&port));
    let c = p.a.sockets().socket(false);
    let _ = p.a.sockets().connect(p.now, c, sa(B, port));
    p.settle();
    assert!(p.b.sockets().readiness(l).readable);
    p.b.sockets().close(l).unwrap();
    p.settle();
    assert_eq!(p.rsts_from(false), 1);
    assert_eq!(
        p.a.sockets().take_error(c),
        Ok(Some(SocketError::ConnectionReset))
    );
    // A SYN to the closed listener is refused.
    let c2 = p.a.sockets().socket(false);
    let _ = p.a.sockets().connect(p.now, c2, sa(B, port));
    p.settle();
    assert_eq!(
        p.a.sockets().connect(p.now, c2, sa(B, port)),
        Err(SocketError::ConnectionRefused)
    );
}

#[test]
fn a_full_send_buffer_would_block_and_frees_as_acks_come() {
    let mut p = Pair::new();
    let (_, c, s) = p.connected();
    p.a.sockets().set_option(c, SockOpt::SndBuf(4096)).unwrap();
    assert_eq!(
        p.a.sockets().get_option(c, SockOptName::SndBuf),
        Ok(SockOpt::SndBuf(8192)),
        "Linux doubles SO_SNDBUF"
    );
    let chunk = [7u8; 100_000];
    let n = p.a.sockets().send(c, &chunk).unwrap();
    assert_eq!(n, 8192);
    assert_eq!(p.a.sockets().send(c, &chunk), Err(SocketError::WouldBlock));
    assert!(!p.a.sockets().readiness(c).writable);
    p.settle();
    let mut buf = vec![0u8; 100_000];
    assert_eq!(p.b.sockets().recv(s, &mut buf, false), Ok(8192));
    assert!(p.a.sockets().readiness(c).writable);
}

#[test]
fn nodelay_sends_small_writes_at_once() {
    let mut p = Pair::new();
    let (_, c, s) = p.connected();
    // With Nagle, a second small write waits for the first's ACK (Minshall: one small
    // segment in flight); the peer's delayed ACK holds it back.
    p.a.sockets().send(c, b"a").unwrap();
    let mut tx: Vec<Vec<u8>> = Vec::new();
    p.a.poll(p.now, &mut tx);
    p.a.sockets().send(c, b"b").unwrap();
    let mut tx2: Vec<Vec<u8>> = Vec::new();
    p.a.poll(p.now, &mut tx2);
    assert_eq!((tx.len(), tx2.len()), (1, 0), "Nagle holds the second");
    p.a.sockets().set_option(c, SockOpt::NoDelay(true)).unwrap();
    assert_eq!(
        p.a.sockets().get_option(c, SockOptName::NoDelay),
        Ok(SockOpt::NoDelay(true))
    );
    p.a.sockets().send(c, b"c").unwrap();
    let mut tx3: Vec<Vec<u8>> = Vec::new();
    p.a.poll(p.now, &mut tx3);
    assert_eq!(tx3.len(), 1, "TCP_NODELAY sends what was held");
    for q in tx.iter().chain(&tx3) {
        let mut none: Vec<Vec<u8>> = Vec::new();
        p.b.receive(p.now, q, &mut none);
    }
    let mut buf = [0u8; 4];
    assert_eq!(p.b.sockets().recv(s, &mut buf, false), Ok(3));
}

#[test]
fn maxseg_is_announced_and_tcp_info_reads_like_linux() {
    let mut p = Pair::new();
    let l = p.b.sockets().socket(false);
    p.b.sockets().set_option(l, SockOpt::MaxSeg(1000)).unwrap();
    p.b.sockets().bind(l, sa(B, 5000)).unwrap();
    p.b.sockets().listen(l, 1).unwrap();
    let c = p.a.sockets().socket(false);
    let _ = p.a.sockets().connect(p.now, c, sa(B, 5000));
    p.settle();
    let (s, _) = p.b.sockets().accept(l).unwrap();
    assert_eq!(
        p.a.sockets().get_option(c, SockOptName::MaxSeg),
        Ok(SockOpt::MaxSeg(988)),
        "Linux's mss_cache: 1000 less the timestamp option"
    );
    let info = p.a.sockets().tcp_info(c, p.now).unwrap();
    assert_eq!(info.state, 1, "TCP_ESTABLISHED");
    assert_eq!(info.snd_mss, 988);
    assert_eq!(info.snd_cwnd, 10, "IW10 (RFC 6928), in segments");
    assert_eq!(info.snd_ssthresh, 0x7fff_ffff);
    assert_eq!(info.options & 7, 7, "TS, SACK and window scaling");
    assert_eq!(info.unacked, 0);
    assert_eq!(p.b.sockets().tcp_info(l, p.now).unwrap().state, 10);
    let _ = s;
}

#[test]
fn user_timeout_gives_up_sooner_than_r2() {
    let mut p = Pair::new();
    let (_, c, _s) = p.connected();
    p.a.sockets()
        .set_option(c, SockOpt::UserTimeout(3000))
        .unwrap();
    p.b_silent = true;
    p.a.sockets().send(c, b"lost").unwrap();
    p.settle();
    let start = p.now;
    while p.a.sockets().take_error(c) == Ok(None) {
        p.advance();
        assert!(p.now.saturating_since(start) < Duration::from_secs(20));
    }
    assert!(p.now.saturating_since(start) >= Duration::from_secs(3));
    let mut buf = [0u8; 4];
    assert_eq!(p.a.sockets().recv(c, &mut buf, false), Ok(0));
}

#[test]
fn a_peer_reset_is_reported_once_then_end_of_stream() {
    let mut p = Pair::new();
    let (_, c, s) = p.connected();
    let local = p.a.sockets().local_addr(c).unwrap();
    // Reset A's connection with a crafted in-window RST from B's address.
    let Some(conn) = p.a.sockets().conn(c).map(|c| (c.rcv_nxt(), c.snd_nxt())) else {
        panic!("connected");
    };
    let rst = TcpSegment {
        src_port: 5000,
        dst_port: local.port(),
        seq: conn.0,
        ack: SeqNum::new(0),
        flags: Flags::RST,
        options: TcpOptions::EMPTY,
        ..SEGMENT_TEMPLATE
    };
    let mut buf = vec![0u8; 100];
    let n = wire::emit_tcp(&mut buf, B.parse().unwrap(), A.parse().unwrap(), &rst).unwrap();
    let mut tx: Vec<Vec<u8>> = Vec::new();
    p.a.receive(p.now, &buf[..n], &mut tx);
    p.a.poll(p.now, &mut tx);
    assert!(p.a.sockets().readiness(c).error);
    assert_eq!(
        p.a.sockets().send(c, b"x"),
        Err(SocketError::ConnectionReset)
    );
    assert_eq!(p.a.sockets().send(c, b"x"), Err(SocketError::BrokenPipe));
    let mut small = [0u8; 4];
    assert_eq!(p.a.sockets().recv(c, &mut small, false), Ok(0));
    let _ = s;
}

#[test]
fn errno_values_are_linux_ones() {
    assert_eq!(SocketError::WouldBlock.errno(), 11);
    assert_eq!(SocketError::InProgress.errno(), 115);
    assert_eq!(SocketError::ConnectionRefused.errno(), 111);
    assert_eq!(SocketError::ConnectionReset.errno(), 104);
    assert_eq!(SocketError::BrokenPipe.errno(), 32);
    assert_eq!(SocketError::NotConnected.errno(), 107);
}

#[test]
fn connect_fast_open_asks_for_a_cookie_then_sends_data_on_the_syn() {
    // sendto(MSG_FASTOPEN) between two synacks, B's listener with Fast Open on.
    let mut p = Pair::new();
    p.b.tcp_config_mut().fastopen = true;
    let l = p.b.sockets().socket(false);
    p.b.sockets().bind(l, sa(B, 5000)).unwrap();
    p.b.sockets().listen(l, 8).unwrap();
    // No cookie yet: the SYN asks for one; nothing of the data is taken.
    let c = p.a.sockets().socket(false);
    assert_eq!(
        p.a.sockets()
            .connect_fast_open(p.now, c, sa(B, 5000), b"hello"),
        Err(SocketError::InProgress)
    );
    p.settle();
    assert_eq!(p.a.sockets().connect(p.now, c, sa(B, 5000)), Ok(()));
    assert!(p.log.iter().all(|&(_, f, len)| !f.syn() || len == 0));
    let (s, _) = p.b.sockets().accept(l).unwrap();
    let mut buf = [0u8; 16];
    assert_eq!(
        p.b.sockets().recv(s, &mut buf, false),
        Err(SocketError::WouldBlock)
    );
    // With the cookie A now holds, the SYN carries the data, which B reads at once.
    let c2 = p.a.sockets().socket(false);
    assert_eq!(
        p.a.sockets()
            .connect_fast_open(p.now, c2, sa(B, 5000), b"hello"),
        Ok(5)
    );
    p.log.clear();
    p.settle();
    assert_eq!(p.log.first(), Some(&(true, Flags::SYN, 5)), "{:?}", p.log);
    let (s2, _) = p.b.sockets().accept(l).unwrap();
    assert_eq!(p.b.sockets().recv(s2, &mut buf, false), Ok(5));
    assert_eq!(&buf[..5], b"hello");
    let (a, b) = (p.a.stats(), p.b.stats());
    assert_eq!(
        (
            a.fastopen_active,
            b.fastopen_passive,
            b.fastopen_cookie_reqd
        ),
        (1, 1, 1)
    );
}
