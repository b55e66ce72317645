//! No heap allocation per packet on the data path: a counting global allocator watches the
//! endpoint while it receives a stream (discard) and while it sends one (chargen).

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::net::IpAddr;
use synack::endpoint::{Endpoint, EndpointConfig, Transmit};
use synack::services::ServiceKind;
use synack::tcp::SeqNum;
use synack::time::{Duration, Instant};
use synack::wire::{self, Flags, Packet, SEGMENT_TEMPLATE, TcpOptions, TcpSegment};

struct Counting;

thread_local! {
    /// Only the measuring thread counts: the test harness allocates on other threads.
    static COUNTING: Cell<bool> = const { Cell::new(false) };
    /// Allocations (and reallocations) while counting, on this thread.
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
    /// Bytes allocated and not freed while counting (allocations, minus frees, plus growth).
    static LIVE_BYTES: Cell<i64> = const { Cell::new(0) };
}

fn note(grown: i64) {
    if COUNTING.with(Cell::get) {
        ALLOCATIONS.with(|a| a.set(a.get() + 1));
        LIVE_BYTES.with(|b| b.set(b.get() + grown));
    }
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note(layout.size() as i64);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if COUNTING.with(Cell::get) {
            LIVE_BYTES.with(|b| b.set(b.get() - layout.size() as i64));
        }
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note(new_size as i64 - layout.size() as i64);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Keeps the last packet sent, in a buffer allocated once.
struct LastPacket {
    buf: Vec<u8>,
    len: usize,
    count: u64,
    /// Super-segments among them (segmentation offload; kept whole, as the TUN takes them).
    supers: u64,
}

impl Transmit for LastPacket {
    fn transmit(&mut self, packet: &[u8]) {
        let n = packet.len().min(self.buf.len());
        if let (Some(dst), Some(src)) = (self.buf.get_mut(..n), packet.get(..n)) {
            dst.copy_from_slice(src);
        }
        self.len = n;
        self.count += 1;
    }

    fn transmit_gso(&mut self, packet: &[u8], _gso: wire::Gso) {
        self.transmit(packet);
        self.supers += 1;
    }
}

const PEER: &str = "198.18.0.1";
const US: &str = "198.18.0.2";

struct Rig {
    ep: Endpoint,
    now: Instant,
    tx: LastPacket,
    pkt: Vec<u8>,
    peer: IpAddr,
    us: IpAddr,
}

impl Rig {
    fn new() -> Rig {
        Rig::with_gso(false)
    }

    fn with_gso(gso: bool) -> Rig {
        let cfg = EndpointConfig {
            addrs: vec![US.parse().unwrap()],
            listeners: vec![
                (7, ServiceKind::Echo),
                (9, ServiceKind::Discard),
                (19, ServiceKind::Chargen),
                (80, ServiceKind::Http),
            ],
            mtu: 1500,
            time_wait: Duration::from_secs(1),
            gso,
            ..EndpointConfig::default()
        };
        Rig {
            ep: Endpoint::new(cfg, [9; 16], Instant::ZERO),
            now: Instant::from_millis(1),
            tx: LastPacket {
                buf: vec![0; 65536],
                len: 0,
                count: 0,
                supers: 0,
            },
            pkt: vec![0; 65536],
            peer: PEER.parse().unwrap(),
            us: US.parse().unwrap(),
        }
    }

    fn send(&mut self, seg: &TcpSegment<'_>) {
        let n = wire::emit_tcp(&mut self.pkt, self.peer, self.us, seg).unwrap();
        self.ep.receive(self.now, &self.pkt[..n], &mut self.tx);
        self.ep.poll(self.now, &mut self.tx);
    }

    /// The (seq, ack, payload length) of the last packet we were sent.
    fn last(&self) -> (SeqNum, SeqNum, u32, Flags) {
        // A super-segment's checksum is partial (the device completes it): not verified here.
        let trusted = wire::RxMeta {
            checksum_trusted: true,
        };
        match wire::parse_with(&self.tx.buf[..self.tx.len], trusted) {
            Ok(Packet::Tcp { seg, .. }) => (seg.seq, seg.ack, seg.payload.len() as u32, seg.flags),
            other => panic!("{other:?}"),
        }
    }

    /// Handshake with Linux's options; returns (our next seq, peer's next seq).
    fn connect(&mut self, port: u16) -> (SeqNum, SeqNum) {
        self.connect_from(40000, port)
    }

    fn connect_from(&mut self, src_port: u16, port: u16) -> (SeqNum, SeqNum) {
        let isn = SeqNum::new(77);
        let base = TcpSegment {
            src_port,
            dst_port: port,
            window: 65535,
            ..SEGMENT_TEMPLATE
        };
        self.send(&TcpSegment {
            seq: isn,
            flags: Flags::SYN,
            options: TcpOptions {
                mss: Some(1460),
                window_scale: Some(7),
                sack_permitted: true,
                ..TcpOptions::EMPTY
            },
            ..base
        });
        let (iss, _, _, _) = self.last();
        self.send(&TcpSegment {
            seq: isn.add(1),
            ack: iss.add(1),
            flags: Flags::ACK,
            ..base
        });
        (iss.add(1), isn.add(1))
    }
}

fn measure(f: impl FnOnce()) -> u64 {
    let before = ALLOCATIONS.with(Cell::get);
    COUNTING.with(|c| c.set(true));
    f();
    COUNTING.with(|c| c.set(false));
    ALLOCATIONS.with(Cell::get) - before
}

#[test]
fn receiving_a_stream_allocates_nothing_per_packet() {
    let mut rig = Rig::new();
    let (our, mut seq) = rig.connect(9);
    let data = vec![0x5a; 1448];
    let mut stream = |rig: &mut Rig, segments: usize| {
        for _ in 0..segments {
            rig.now += Duration::from_micros(10);
            rig.send(&TcpSegment {
                src_port: 40000,
                dst_port: 9,
                seq,
                ack: our,
                flags: Flags::ACK,
                window: 65535,
                payload: &data,
                ..SEGMENT_TEMPLATE
            });
            seq = seq.add(data.len() as u32);
        }
    };
    // Warm up: buffers and tables reach their working size.
    stream(&mut rig, 2_000);
    let sent_before = rig.tx.count;
    let allocations = measure(|| stream(&mut rig, 20_000));
    assert!(
        rig.tx.count - sent_before >= 10_000,
        "every second segment is ACKed"
    );
    // The last segment may wait for its delayed ACK (RFC 9293 §3.8.6.3): let it fire.
    rig.now += Duration::from_millis(200);
    rig.ep.poll(rig.now, &mut rig.tx);
    assert_eq!(rig.last().1, seq, "everything was received");
    // Buffers are taken on demand and grow as autotuning grows them (tcp::memory): a few
    // allocations over the whole stream, none per packet.
    assert!(
        allocations <= 4,
        "{allocations} allocations while receiving 20 000 segments"
    );
}

#[test]
fn sending_a_stream_allocates_nothing_per_packet() {
    let mut rig = Rig::new();
    let (first, peer_seq) = rig.connect(19);
    let mut ack = first;
    let mut acked = |rig: &mut Rig, rounds: usize| {
        for _ in 0..rounds {
            rig.now += Duration::from_micros(10);
            // ACK one more segment: chargen refills what that freed and one more goes out.
            ack = ack.add(1460);
            rig.send(&TcpSegment {
                src_port: 40000,
                dst_port: 19,
                seq: peer_seq,
                ack,
                flags: Flags::ACK,
                window: 65535,
                ..SEGMENT_TEMPLATE
            });
        }
    };
    acked(&mut rig, 2_000);
    let sent_before = rig.tx.count;
    let allocations = measure(|| acked(&mut rig, 20_000));
    assert!(rig.tx.count - sent_before >= 20_000);
    // The send buffer grows with cwnd (tcp::memory): a few doublings, none per packet.
    assert!(
        allocations <= 4,
        "{allocations} allocations while sending 20 000 segments"
    );
}

#[test]
fn sending_super_segments_allocates_nothing_per_packet() {
    let mut rig = Rig::with_gso(true);
    let (_, peer_seq) = rig.connect(19);
    let acked = |rig: &mut Rig, rounds: usize| {
        for _ in 0..rounds {
            rig.now += Duration::from_micros(10);
            // ACK everything sent so far, with an 8 MiB window (65535 << 7).
            let (seq, _, len, _) = rig.last();
            rig.send(&TcpSegment {
                src_port: 40000,
                dst_port: 19,
                seq: peer_seq,
                ack: seq.add(len),
                flags: Flags::ACK,
                window: 65535,
                ..SEGMENT_TEMPLATE
            });
        }
    };
    // Warm up: past the first 64 KiB, super-segments flowing.
    acked(&mut rig, 500);
    let supers_before = rig.tx.supers;
    assert!(supers_before > 0, "super-segments after the warm-up");
    let allocations = measure(|| acked(&mut rig, 5_000));
    assert!(rig.tx.supers - supers_before >= 5_000);
    assert_eq!(rig.ep.stats().super_segments_out, rig.tx.supers);
    // The send buffer grows with cwnd (tcp::memory): a few doublings, none per packet.
    assert!(
        allocations <= 4,
        "{allocations} allocations while sending 5 000 super-segments"
    );
}

/// The README's figure: an idle connection costs about 2.7 KiB of heap
/// (table slot, 4-tuple index, timer, the trace's first events) whatever its service. Issue #20
/// added 16 bytes to the connection (ECN state, the path MTU cap and the boxed path state,
/// the TSval key in its configuration): 2823 then; Fast Open (its boxed state, the listener's
/// switch in the configuration) 2855; AccECN (its counters, the trace's events 48 bytes with
/// the AE flag) 2983. Issue #23 shares the configuration (`Arc<Config>`, 224 bytes) and
/// allocates the event counts (224 bytes) only at an event; an idle connection's trace gives
/// back the room for events it has not recorded; keep-alive's state is boxed while it is on
/// (40 bytes fewer): 2181 idle echo, 2221 idle http, 2351 in TIME-WAIT before the merge with
/// Fast Open and AccECN; 2245, 2293 and 2439 after it (AccECN boxed); the pictures of issue
/// 19 (the trace's notable and dropped slots, its middle list, samples of 64 bytes): 2437,
/// 2485 and 2631. Issue 23 then kept TIME-WAIT as a record (below), made the 4-tuple table
/// an index of slot numbers (endpoint/index.rs: 5 bytes a bucket, not 73; 2298 idle echo
/// alone), shrank the per-connection records (the trace 64 bytes inline, a long record's
/// state boxed, its events 36 bytes, the graphs' samples 56 bytes and given back with the
/// trace's room when idle; 1829 alone), and the connection itself (an `Option<Instant>` in
/// 8 bytes, the RTT estimator in 40, the 4-tuple packed, the SACK scoreboard, SACK receiver
/// and reassembly queue allocated only while in use; 2077 alone): 1330 idle echo,
/// 1422 idle http; an idle connection's short trace and samples packed (tcp/packed.rs: the
/// echo's 6 events in 56 bytes, not 216, its 2 samples in 29, not 112): 1086 idle echo,
/// 1107 idle http; with the connection's own cuts after those (CUBIC's epoch, the two byte
/// queues and the closing timers boxed or merged, narrower counters, a 40-byte service
/// state: a 776-byte table entry): 886 idle echo, 907 idle http.
const PER_CONNECTION: i64 = 940;

/// The README's figure for a connection in TIME-WAIT: a record of what TIME-WAIT must
/// remember (`tcp::TimeWait`, endpoint/time_wait.rs), its slot, 4-tuple index bucket and timer
/// entry, and its share of the recently closed connections' traces: 251 bytes as the first
/// record (its service's name and an `Option` timestamp in it, the 4-tuple's IPv6 form
/// inline), 210 without them, 218 once it also follows the peer's window updates (SND.WL1,
/// for RFC 5961's MAX.SND.WND), 193 once the 4-tuple map became an index of slot numbers
/// (endpoint/index.rs, 5 bytes a bucket, not 17), 185 with the traces' 36-byte events too,
/// 178 with the traces packed (tcp/packed.rs). Was 2631 as a whole connection. Linux's
/// tcp_timewait_sock: about 256 bytes.
const PER_TIME_WAIT: i64 = 184;

/// The heap `N` connections still hold after each ran `exchange` (and sat idle, or closed),
/// per connection. `exchange(rig, client port, our next seq, peer's next seq)`.
fn heap_per_connection(
    rig: &mut Rig,
    port: u16,
    exchange: impl Fn(&mut Rig, u16, SeqNum, SeqNum),
) -> i64 {
    const N: u16 = 4000;
    let before = LIVE_BYTES.with(Cell::get);
    COUNTING.with(|c| c.set(true));
    for i in 0..N {
        let src_port = 10_000 + i;
        let (ours, peer) = rig.connect_from(src_port, port);
        exchange(rig, src_port, ours, peer);
    }
    COUNTING.with(|c| c.set(false));
    (LIVE_BYTES.with(Cell::get) - before) / i64::from(N)
}

/// One HTTP request (`GET /`, keep-alive or `Connection: close`), its response acknowledged
/// (and, after a close, our FIN too, and the client's FIN sent).
fn http_exchange(rig: &mut Rig, src_port: u16, ours: SeqNum, peer: SeqNum, close: bool) {
    let base = TcpSegment {
        src_port,
        dst_port: 80,
        window: 65535,
        flags: Flags::ACK,
        ..SEGMENT_TEMPLATE
    };
    let request: &[u8] = if close {
        b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    } else {
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"
    };
    rig.send(&TcpSegment {
        seq: peer,
        ack: ours,
        payload: request,
        ..base
    });
    let peer = peer.add(request.len() as u32);
    let (seq, _, len, flags) = rig.last();
    assert!(len > 0, "the response");
    // The response, and our FIN after it when we close.
    let acked = seq.add(len).add(u32::from(flags.fin()));
    rig.send(&TcpSegment {
        seq: peer,
        ack: acked,
        ..base
    });
    if close {
        rig.send(&TcpSegment {
            seq: peer,
            ack: acked,
            flags: Flags::FIN | Flags::ACK,
            ..base
        });
    }
}

#[test]
fn an_idle_http_connection_after_one_request_costs_what_an_echo_one_does() {
    // 4,000 keep-alive connections each get one `GET /` answered and sit idle: the http
    // service holds nothing between requests (issue 22: it held 15 KiB each).
    let mut rig = Rig::new();
    let per_conn = heap_per_connection(&mut rig, 80, |rig, port, ours, peer| {
        http_exchange(rig, port, ours, peer, false)
    });
    assert_eq!(rig.ep.connection_count(), 4000);
    assert_eq!(rig.ep.memory_used(), 0, "nothing held, nothing charged");
    eprintln!("heap per idle http connection: {per_conn} bytes");
    assert!(
        per_conn <= PER_CONNECTION,
        "{per_conn} bytes of heap per idle http connection"
    );
}

#[test]
fn an_http_connection_in_time_wait_is_a_record_of_under_256_bytes() {
    // 4,000 requests with `Connection: close`: synack closes first, so each connection waits
    // out TIME-WAIT here, as a record (issue 23): no buffer, no slab slot, no trace.
    let mut rig = Rig::new();
    let per_conn = heap_per_connection(&mut rig, 80, |rig, port, ours, peer| {
        http_exchange(rig, port, ours, peer, true)
    });
    assert_eq!(rig.ep.time_wait_count(), 4000);
    assert_eq!(rig.ep.memory_used(), 0);
    eprintln!("heap per http connection in TIME-WAIT: {per_conn} bytes");
    assert!(
        per_conn <= PER_TIME_WAIT,
        "{per_conn} bytes of heap per connection in TIME-WAIT"
    );
    // And once TIME-WAIT is over, the table is empty.
    rig.now += Duration::from_secs(2);
    rig.ep.poll(rig.now, &mut rig.tx);
    assert_eq!(rig.ep.connection_count(), 0);
}

#[test]
fn an_idle_echo_connection_costs_little_heap() {
    // 4,000 connections each echo one line, the echo is acknowledged, and they sit idle:
    // what is still allocated is the table (slab slot, 4-tuple index, timer heap) and the
    // trace's first events; every buffer was given back (tcp::memory).
    const N: u16 = 4000;
    let mut rig = Rig::new();
    let before = LIVE_BYTES.with(Cell::get);
    COUNTING.with(|c| c.set(true));
    for i in 0..N {
        let port = 10_000 + i;
        let (ours, peer) = rig.connect_from(port, 7);
        let base = TcpSegment {
            src_port: port,
            dst_port: 7,
            window: 65535,
            flags: Flags::ACK,
            ..SEGMENT_TEMPLATE
        };
        rig.send(&TcpSegment {
            seq: peer,
            ack: ours,
            payload: b"hello\n",
            ..base
        });
        let (seq, _, len, _) = rig.last();
        assert_eq!(len, 6, "the echo");
        rig.send(&TcpSegment {
            seq: peer.add(6),
            ack: seq.add(len),
            ..base
        });
    }
    COUNTING.with(|c| c.set(false));
    let per_conn = (LIVE_BYTES.with(Cell::get) - before) / i64::from(N);
    assert_eq!(rig.ep.connection_count(), usize::from(N));
    assert_eq!(rig.ep.memory_used(), 0);
    eprintln!("heap per idle echo connection: {per_conn} bytes");
    assert!(
        per_conn <= PER_CONNECTION,
        "{per_conn} bytes of heap per idle connection"
    );
}

#[test]
fn time_wait_answers_retransmitted_fins_without_allocating_per_packet() {
    // One connection in TIME-WAIT (a record), its client's FIN retransmitted 1,000 times:
    // each is re-ACKed; what allocates is its trace growing to its bound, not each packet.
    let mut rig = Rig::new();
    let (ours, peer) = rig.connect_from(20_000, 80);
    http_exchange(&mut rig, 20_000, ours, peer, true);
    assert_eq!(rig.ep.time_wait_count(), 1);
    let request = b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    let (_, acked, _, _) = rig.last();
    let fin = TcpSegment {
        src_port: 20_000,
        dst_port: 80,
        seq: peer.add(request.len() as u32),
        ack: rig.last().0,
        flags: Flags::FIN | Flags::ACK,
        window: 65535,
        ..SEGMENT_TEMPLATE
    };
    let retransmit = |rig: &mut Rig| {
        let before = rig.tx.count;
        let allocations = measure(|| {
            for _ in 0..1000 {
                rig.now += Duration::from_millis(1);
                rig.send(&fin);
            }
        });
        assert_eq!(rig.tx.count - before, 1000, "every FIN re-ACKed");
        assert_eq!(rig.last().1, acked);
        allocations
    };
    // The first: the trace grows to its bound, the list of records to answer is made.
    let first = retransmit(&mut rig);
    assert!(first <= 16, "{first} allocations");
    let then = retransmit(&mut rig);
    assert_eq!(
        then, 0,
        "{then} allocations for 1,000 segments in TIME-WAIT"
    );
}
