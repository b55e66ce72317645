//! The loop driven through a datagram socket pair standing in for the TUN, with a scripted
//! core. Each test stops the loop with its own signal, so tests running in parallel do not see
//! each other's signals. Every wait is bounded.

use super::*;
use std::os::unix::net::UnixDatagram;
use std::time::Duration as StdDuration;

impl Device for UnixDatagram {
    fn recv(&self, buf: &mut [u8]) -> io::Result<(usize, RxMeta)> {
        UnixDatagram::recv(self, buf).map(|n| (n, RxMeta::default()))
    }
    fn send(&self, packet: &[u8]) -> io::Result<usize> {
        UnixDatagram::send(self, packet)
    }
}

/// Echoes every received packet, but only from `poll` (so replies prove `poll` ran after the
/// batch); sends "tick" when its timer fires and "fin" on the first poll after `shutdown`.
#[derive(Default)]
struct Script {
    queued: Vec<Vec<u8>>,
    timer: Option<Instant>,
    shutting_down: bool,
    fin_sent: bool,
    drained_after_shutdown: bool,
    aborted: bool,
}

impl Core for Script {
    fn receive(&mut self, _now: Instant, packet: &[u8], _meta: RxMeta, _tx: &mut dyn Transmit) {
        self.queued.push(packet.to_vec());
    }
    fn poll(&mut self, now: Instant, tx: &mut dyn Transmit) {
        for p in self.queued.drain(..) {
            tx.transmit(&p);
        }
        if self.timer.is_some_and(|t| now >= t) {
            self.timer = None;
            tx.transmit(b"tick");
        }
        if self.shutting_down && !self.fin_sent {
            self.fin_sent = true;
            tx.transmit(b"fin");
        }
    }
    fn poll_timeout(&self) -> Option<Instant> {
        self.timer
    }
    fn shutdown(&mut self, _now: Instant) {
        self.shutting_down = true;
    }
    fn is_drained(&self) -> bool {
        self.drained_after_shutdown
    }
    fn abort_all(&mut self, _now: Instant, tx: &mut dyn Transmit) {
        self.aborted = true;
        tx.transmit(b"rst");
    }
    fn counters(&self) -> Vec<(&'static str, u64)> {
        vec![("scripted", 1)]
    }
}

fn pair() -> (UnixDatagram, UnixDatagram) {
    let (dev, peer) = UnixDatagram::pair().unwrap();
    dev.set_nonblocking(true).unwrap();
    peer.set_read_timeout(Some(StdDuration::from_secs(5)))
        .unwrap();
    (dev, peer)
}

fn expect(peer: &UnixDatagram, want: &[u8]) {
    let mut buf = [0u8; 64];
    let n = peer.recv(&mut buf).expect("reply within 5 s");
    assert_eq!(&buf[..n], want);
}

fn raise(signal: libc::c_int) {
    signal_hook::low_level::raise(signal).unwrap();
}

#[test]
fn packets_reach_the_core_replies_follow_each_batch_and_drained_shutdown_is_clean() {
    let (dev, peer) = pair();
    let clock = Clock::start();
    let mut core = Script {
        timer: Some(clock.now() + Duration::from_millis(20)),
        drained_after_shutdown: true,
        ..Script::default()
    };
    let event_loop = EventLoop::new(&dev, &[libc::SIGUSR1], Duration::from_secs(10)).unwrap();
    let stats = std::thread::scope(|s| {
        s.spawn(|| {
            expect(&peer, b"tick");
            for p in [&b"one"[..], b"two", b"three"] {
                peer.send(p).unwrap();
            }
            for p in [&b"one"[..], b"two", b"three"] {
                expect(&peer, p);
            }
            raise(libc::SIGUSR1);
        });
        event_loop.run(&mut core, &clock).unwrap()
    });
    assert!(core.shutting_down);
    assert!(!core.aborted, "a drained core is not reset");
    assert!(!stats.aborted);
    assert_eq!(stats.packets_read, 3);
    // tick, three echoes, fin.
    assert_eq!(stats.packets_written, 5);
}

#[test]
fn second_signal_during_the_grace_period_aborts_at_once() {
    let (dev, peer) = pair();
    let clock = Clock::start();
    let mut core = Script::default();
    let event_loop = EventLoop::new(&dev, &[libc::SIGUSR2], Duration::from_secs(60)).unwrap();
    let stats = std::thread::scope(|s| {
        s.spawn(|| {
            raise(libc::SIGUSR2);
            expect(&peer, b"fin");
            raise(libc::SIGUSR2);
            expect(&peer, b"rst");
        });
        event_loop.run(&mut core, &clock).unwrap()
    });
    assert!(core.aborted);
    assert!(stats.aborted);
    assert!(
        clock.now() < Instant::ZERO + Duration::from_secs(30),
        "did not wait for grace"
    );
}

#[test]
fn grace_period_expiry_resets_what_is_left() {
    let (dev, peer) = pair();
    let clock = Clock::start();
    let mut core = Script::default();
    let grace = Duration::from_millis(50);
    let event_loop = EventLoop::new(&dev, &[libc::SIGWINCH], grace).unwrap();
    let stats = std::thread::scope(|s| {
        s.spawn(|| {
            raise(libc::SIGWINCH);
            expect(&peer, b"fin");
            expect(&peer, b"rst");
        });
        event_loop.run(&mut core, &clock).unwrap()
    });
    assert!(core.aborted);
    assert!(stats.aborted);
    assert!(clock.now() >= Instant::ZERO + grace);
}

#[test]
fn refused_writes_are_dropped_and_counted() {
    struct Full;
    impl AsRawFd for Full {
        fn as_raw_fd(&self) -> std::os::fd::RawFd {
            -1
        }
    }
    impl Device for Full {
        fn recv(&self, _: &mut [u8]) -> io::Result<(usize, RxMeta)> {
            Err(ErrorKind::WouldBlock.into())
        }
        fn send(&self, _: &[u8]) -> io::Result<usize> {
            Err(io::Error::from_raw_os_error(libc::ENOBUFS))
        }
    }
    let mut stats = LoopStats::default();
    let mut capture = Capture::default();
    let mut tx = DeviceTx {
        dev: &Full,
        stats: &mut stats,
        capture: &mut capture,
    };
    tx.transmit(b"x");
    tx.transmit(b"y");
    assert_eq!(stats.packets_dropped, 2);
    assert_eq!(stats.packets_written, 0);
}

#[test]
fn clock_counts_microseconds_from_start() {
    let clock = Clock::start();
    let a = clock.now();
    let b = clock.now();
    assert!(b >= a);
    assert!(a < Instant::ZERO + Duration::from_secs(1));
}

#[test]
fn timers_wait_behind_a_backlog_of_packets_for_at_most_the_hold() {
    let mut hold = TimerHold::default();
    let t = |ms| Instant::from_millis(ms);
    // No backlog: every due timer fires.
    assert_eq!(hold.timers_until(t(1_000), false), t(1_000));
    // A backlog is first seen at 1 s: timers due by then fire, later ones wait for the queue.
    assert_eq!(hold.timers_until(t(1_000), true), t(1_000));
    assert_eq!(hold.timers_until(t(1_200), true), t(1_000));
    assert_eq!(hold.timers_until(t(1_499), true), t(1_000));
    // It has lasted the whole hold: the timers fire, and the next hold starts there.
    assert_eq!(hold.timers_until(t(1_500), true), t(1_500));
    assert_eq!(hold.timers_until(t(1_700), true), t(1_500));
    // The queue is empty: every due timer fires at once.
    assert_eq!(hold.timers_until(t(1_701), false), t(1_701));
    assert_eq!(hold.timers_until(t(1_702), true), t(1_702));
}

/// An IPv4 TCP segment with `flags` and `payload` bytes of data (only the fields
/// `expects_answer` reads are filled).
fn segment(flags: u8, payload: usize) -> Vec<u8> {
    let mut p = vec![0u8; 40 + payload];
    p[0] = 0x45;
    p[2..4].copy_from_slice(&((40 + payload) as u16).to_be_bytes());
    p[9] = 6;
    p[32] = 5 << 4;
    p[33] = flags;
    p
}

#[test]
fn data_syns_and_fins_expect_an_answer_pure_acks_and_others_do_not() {
    const ACK: u8 = 0x10;
    assert!(expects_answer(&segment(0x02 | ACK, 0)), "SYN,ACK");
    assert!(expects_answer(&segment(0x01 | ACK, 0)), "FIN");
    assert!(expects_answer(&segment(ACK, 1)), "data");
    assert!(!expects_answer(&segment(ACK, 0)), "pure ACK");
    assert!(!expects_answer(&segment(0x04, 0)), "RST");
    let mut icmp = segment(0x02, 0);
    icmp[9] = 1;
    assert!(!expects_answer(&icmp), "ICMP");
    // IPv6: a 20-byte TCP header with 3 bytes of data, then a pure ACK.
    let mut v6 = vec![0u8; 63];
    v6[0] = 0x60;
    v6[4..6].copy_from_slice(&23u16.to_be_bytes());
    v6[6] = 6;
    v6[52] = 5 << 4;
    v6[53] = ACK;
    assert!(expects_answer(&v6));
    v6.truncate(60);
    v6[4..6].copy_from_slice(&20u16.to_be_bytes());
    assert!(!expects_answer(&v6));
    // Truncated or empty: no answer, no panic.
    assert!(!expects_answer(&[]));
    assert!(!expects_answer(&[0x45]));
}

/// `--busy-poll`: after sending what the peer answers at once (here a SYN,ACK), the loop
/// polls without sleeping; after a pure ACK, or with no window, it sleeps.
#[test]
fn the_loop_spins_after_a_reply_only_with_a_busy_poll_window() {
    const ACK: u8 = 0x10;
    for (window, flags, signal, spins) in [
        (5_000, 0x02 | ACK, libc::SIGPWR, true),
        (5_000, ACK, libc::SIGURG, false),
        (0, 0x02 | ACK, libc::SIGXFSZ, false),
    ] {
        let (dev, peer) = pair();
        let clock = Clock::start();
        let mut core = Script {
            drained_after_shutdown: true,
            ..Script::default()
        };
        let event_loop = EventLoop::new(&dev, &[signal], Duration::from_secs(10))
            .unwrap()
            .busy_poll(Duration::from_millis(window));
        let packet = segment(flags, 0);
        let stats = std::thread::scope(|s| {
            s.spawn(|| {
                peer.send(&packet).unwrap();
                let mut buf = [0u8; 64];
                let n = peer.recv(&mut buf).expect("echo within 5 s");
                assert_eq!(&buf[..n], &packet[..]);
                raise(signal);
            });
            event_loop.run(&mut core, &clock).unwrap()
        });
        assert_eq!(
            stats.spins > 0,
            spins,
            "window {window} ms, flags {flags:#x}: {stats:?}"
        );
        assert_eq!(stats.replies, u64::from(flags & 0x02 != 0));
    }
}
