//! No heap allocation per packet on the data path: a counting global allocator watches the
//! endpoint while it receives a stream (discard) and while it sends one (chargen).

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use synack::endpoint::{Endpoint, EndpointConfig, Transmit};
use synack::services::ServiceKind;
use synack::tcp::SeqNum;
use synack::time::{Duration, Instant};
use synack::wire::{self, Flags, Packet, SEGMENT_TEMPLATE, TcpOptions, TcpSegment};

struct Counting;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

thread_local! {
    /// Only the measuring thread counts: the test harness allocates on other threads.
    static COUNTING: Cell<bool> = const { Cell::new(false) };
}

fn note() {
    if COUNTING.with(Cell::get) {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
    }
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note();
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note();
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
            listeners: vec![(9, ServiceKind::Discard), (19, ServiceKind::Chargen)],
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
        let isn = SeqNum::new(77);
        let base = TcpSegment {
            src_port: 40000,
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
    let before = ALLOCATIONS.load(Ordering::Relaxed);
    COUNTING.with(|c| c.set(true));
    f();
    COUNTING.with(|c| c.set(false));
    ALLOCATIONS.load(Ordering::Relaxed) - before
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
