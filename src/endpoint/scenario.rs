//! Scenarios for the `endpoint` fuzz target (and its replay in `cargo test`): an input of
//! bytes decoded as a sequence of (time step, packet) for an [`Endpoint`] with every
//! service, on a virtual clock, with every invariant checked after every packet.
//!
//! # Input format
//! A sequence of records; a missing byte reads as 0, so every input is a valid scenario.
//! - `tag` with the high bit set: a raw packet, `len: u8` then `len` bytes.
//! - otherwise a structured segment built by `wire::emit_tcp`, so most are well-formed and
//!   reach the state machine. `tag` picks the peer (bits 0–1: 198.18.0.1, 198.18.0.9,
//!   2001:2::1, or the endpoint's own address), the destination port (bits 2–4: 7, 9, 19,
//!   80, a closed port, …) and the source port (bits 5–6). Then:
//!   `wait: u8` (advance the clock by wait² × 4 ms), `flags: u8`, `seq_mode: u8` and
//!   `ack_mode: u8` (0: what the conversation expects next, 1: that plus an i16, 2: a raw
//!   u32, 3: one below what is expected — a keep-alive probe), `window: u16`,
//!   `options: u8` (bit 0 MSS u16, bit 1 window scale u8, bit 2 SACK-permitted, bit 3
//!   timestamps with TSval u32 and TSecr echoing the endpoint's, bit 4 one SACK block),
//!   `len: u8` (payload of len × 8 bytes of the peer's stream pattern).
//!
//! # Invariants
//! No panic; every packet the endpoint sends parses (valid checksums); no RST is ever sent
//! in reply to a RST; no connection lingers in CLOSED or LISTEN after a poll; the connection
//! count, each listener's half-open queue and the buffer memory stay within the limits.

// A test harness, built only for tests and `cargo fuzz`: a panic is how it reports a broken
// invariant to libFuzzer, and its tables are indexed by masked fuzz input.
#![allow(
    clippy::panic,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing
)]

use super::{Counters, Endpoint, EndpointConfig, Entry, Limits};
use crate::services::ServiceKind;
use crate::tcp::{SeqNum, State};
use crate::time::{Duration, Instant};
use crate::wire::{self, Flags, Packet, SackBlock, TcpOptions, TcpSegment};
use std::collections::HashMap;
use std::net::IpAddr;

const US4: [u8; 4] = [198, 18, 0, 2];
const PORTS: [u16; 8] = [7, 9, 19, 80, 5555, 7, 80, 9];
const LISTENERS: [(u16, ServiceKind); 4] = [
    (7, ServiceKind::Echo),
    (9, ServiceKind::Discard),
    (19, ServiceKind::Chargen),
    (80, ServiceKind::Http),
];

/// The limits the scenarios run under: small, so they are reached.
pub fn limits() -> Limits {
    Limits {
        backlog: 4,
        max_connections: 24,
        max_time_wait: 16,
        max_buffer_memory: 48 << 10,
        keepalive: None,
        keepalive_ports: vec![(7, Duration::from_secs(2))],
        ..Limits::default()
    }
}

struct Reader<'a> {
    data: &'a [u8],
}

impl Reader<'_> {
    fn u8(&mut self) -> u8 {
        match self.data.split_first() {
            Some((b, rest)) => {
                self.data = rest;
                *b
            }
            None => 0,
        }
    }
    fn u16(&mut self) -> u16 {
        u16::from_be_bytes([self.u8(), self.u8()])
    }
    fn u32(&mut self) -> u32 {
        u32::from_be_bytes([self.u8(), self.u8(), self.u8(), self.u8()])
    }
    fn bytes(&mut self, n: usize) -> &[u8] {
        let n = n.min(self.data.len());
        let (head, rest) = self.data.split_at(n);
        self.data = rest;
        head
    }
}

/// What the peer knows of one conversation.
#[derive(Clone, Copy, Default)]
struct Conversation {
    /// The peer's next sequence number.
    snd_nxt: u32,
    /// The endpoint's next sequence number as last seen (what the peer acknowledges).
    rcv_nxt: u32,
    /// The endpoint's last TSval (echoed as TSecr).
    ts_recent: u32,
}

/// Run one scenario; panics if an invariant breaks. Returns the endpoint's counters.
pub fn run(data: &[u8]) -> Counters {
    let us4 = IpAddr::from(US4);
    let us6: IpAddr = "2001:2::2".parse().unwrap_or(us4);
    let peers: [IpAddr; 4] = [
        IpAddr::from([198, 18, 0, 1]),
        IpAddr::from([198, 18, 0, 9]),
        "2001:2::1".parse().unwrap_or(us4),
        us4,
    ];
    let config = EndpointConfig {
        addrs: vec![us4, us6],
        listeners: LISTENERS.to_vec(),
        mtu: 1500,
        time_wait: Duration::from_secs(2),
        // Super-segments (split in software by the `Vec` transmitter) on odd-length inputs.
        gso: data.len() % 2 == 1,
        ..EndpointConfig::default()
    };
    let limits = limits();
    let mut now = Instant::from_millis(1_000);
    let mut ep = Endpoint::new(config, [0x5a; 16], now).with_limits(limits.clone());
    let mut talks: HashMap<(usize, u16, u16), Conversation> = HashMap::new();
    let mut input = Reader { data };
    let mut packet = vec![0u8; 4096];
    let mut payload = vec![0u8; 2048];
    let mut steps = 0;
    while !input.data.is_empty() && steps < 512 {
        steps += 1;
        let tag = input.u8();
        let mut tx: Vec<Vec<u8>> = Vec::new();
        if tag & 0x80 != 0 {
            let len = usize::from(input.u8());
            let raw = input.bytes(len).to_vec();
            ep.receive(now, &raw, &mut tx);
            check_replies(&raw, &tx);
            ep.poll(now, &mut tx);
            observe(&mut talks, &peers, &tx);
            check(&ep, &limits);
            continue;
        }
        let peer_i = usize::from(tag & 3);
        let dport = PORTS[usize::from((tag >> 2) & 7)];
        let sport = 40_000 + u16::from((tag >> 5) & 3);
        let wait = u64::from(input.u8());
        now += Duration::from_millis(wait * wait * 4);
        // Timers first, so what follows is a reply to this packet alone.
        ep.poll(now, &mut tx);
        observe(&mut talks, &peers, &tx);
        check(&ep, &limits);
        tx.clear();

        let talk = talks
            .entry((peer_i, sport, dport))
            .or_insert_with(|| Conversation {
                snd_nxt: 0x1000_0000u32.wrapping_mul(u32::from(sport % 7) + 1),
                ..Conversation::default()
            });
        let flags = Flags(u16::from(input.u8()));
        let seq = pick(&mut input, talk.snd_nxt);
        let ack = pick(&mut input, talk.rcv_nxt);
        let window = input.u16();
        let opts = input.u8();
        let mut options = TcpOptions::EMPTY;
        if opts & 1 != 0 {
            options.mss = Some(input.u16());
        }
        if opts & 2 != 0 {
            options.window_scale = Some(input.u8());
        }
        options.sack_permitted = opts & 4 != 0;
        if opts & 8 != 0 {
            options.timestamps = Some((input.u32(), talk.ts_recent));
        }
        if opts & 16 != 0 {
            let left = SeqNum::new(talk.rcv_nxt.wrapping_add(u32::from(input.u8())));
            options.sack_blocks[0] = SackBlock {
                left,
                right: left.add(u32::from(input.u8()) * 8),
            };
            options.sack_count = 1;
        }
        let len = usize::from(input.u8()) * 8;
        for (i, b) in payload.iter_mut().take(len).enumerate() {
            *b = (seq.wrapping_add(i as u32) % 251) as u8;
        }
        let seg = TcpSegment {
            src_port: sport,
            dst_port: dport,
            seq: SeqNum::new(seq),
            ack: SeqNum::new(ack),
            flags,
            window,
            urgent: 0,
            options,
            payload: payload.get(..len).unwrap_or(&[]),
            // Any ECN codepoint, CE included, drawn from bits the input chose.
            ecn: wire::Ecn::from_bits((seq >> 7) as u8),
        };
        // The peer's view moves on as if the segment were taken.
        if seq == talk.snd_nxt {
            talk.snd_nxt = seq.wrapping_add(seg.seg_len());
        }
        let src = peers[peer_i];
        let dst = if src.is_ipv4() { us4 } else { us6 };
        let Ok(n) = wire::emit_tcp(&mut packet, src, dst, &seg) else {
            continue;
        };
        let bytes = packet.get(..n).unwrap_or(&[]).to_vec();
        ep.receive(now, &bytes, &mut tx);
        check_replies(&bytes, &tx);
        let replied = tx.len();
        ep.poll(now, &mut tx);
        if flags.rst() {
            // A challenge ACK may follow a RST; a RST may not, unless the connection is gone
            // for another reason (its service aborted it).
            for p in tx.iter().skip(replied) {
                if let Ok(Packet::Tcp {
                    seg: out, dst: to, ..
                }) = wire::parse(p)
                    && to == src
                    && out.dst_port == sport
                    && out.src_port == dport
                    && out.flags.rst()
                {
                    let quad = wire::Quad {
                        local: std::net::SocketAddr::new(dst, dport),
                        remote: std::net::SocketAddr::new(src, sport),
                    };
                    assert!(
                        ep.connection_state(&quad).is_none(),
                        "a RST answered with a RST on a live connection"
                    );
                }
            }
        }
        observe(&mut talks, &peers, &tx);
        check(&ep, &limits);
    }
    ep.stats().clone()
}

/// Choose a sequence or acknowledgment number: what is expected, near it, anything, or one
/// below (a keep-alive probe, a duplicate).
fn pick(input: &mut Reader<'_>, expected: u32) -> u32 {
    match input.u8() & 3 {
        0 => expected,
        1 => expected.wrapping_add(input.u16() as i16 as i32 as u32),
        2 => input.u32(),
        _ => expected.wrapping_sub(1),
    }
}

/// The replies to one received packet: they parse, and none is a RST if it was a RST.
fn check_replies(received: &[u8], tx: &[Vec<u8>]) {
    let was_rst = matches!(wire::parse(received), Ok(Packet::Tcp { seg, .. }) if seg.flags.rst());
    for p in tx {
        match wire::parse(p) {
            Ok(Packet::Tcp { seg, .. }) => {
                assert!(!(was_rst && seg.flags.rst()), "a RST answered with a RST");
            }
            Ok(Packet::EchoRequest { .. }) => panic!("we sent an echo request"),
            Ok(Packet::IcmpError { .. }) => panic!("we sent an ICMP error"),
            Ok(Packet::Other { .. } | Packet::Udp { .. }) => {}
            Err(e) => panic!("we sent a packet that does not parse: {e}"),
        }
    }
}

/// Learn the endpoint's sequence numbers and TSvals from what it sent; check they parse.
fn observe(
    talks: &mut HashMap<(usize, u16, u16), Conversation>,
    peers: &[IpAddr; 4],
    tx: &[Vec<u8>],
) {
    for p in tx {
        let parsed = wire::parse(p);
        assert!(parsed.is_ok(), "we sent a packet that does not parse");
        if let Ok(Packet::Tcp { dst, seg, .. }) = parsed
            && let Some(peer_i) = peers.iter().position(|a| *a == dst)
            && let Some(talk) = talks.get_mut(&(peer_i, seg.dst_port, seg.src_port))
        {
            let end = seg.seq.add(seg.seg_len()).raw();
            if seg.flags.syn() || SeqNum::new(end).gt(SeqNum::new(talk.rcv_nxt)) {
                talk.rcv_nxt = end;
            }
            if let Some((tsval, _)) = seg.options.timestamps {
                talk.ts_recent = tsval;
            }
        }
    }
}

/// The endpoint-wide invariants.
fn check(ep: &Endpoint, limits: &Limits) {
    let time_wait = ep.time_wait_count();
    assert!(ep.connection_count() - time_wait <= limits.max_connections);
    assert!(time_wait <= limits.max_time_wait);
    for (port, _) in LISTENERS {
        let (half_open, accept) = ep.queue_lengths(port).unwrap_or((0, 0));
        assert!(
            half_open <= limits.backlog,
            "half-open queue over the backlog"
        );
        assert!(accept <= limits.backlog, "accept queue over the backlog");
    }
    // The accounting is exact: the endpoint's total is the bytes the connections hold
    // (queues and out-of-order data, tcp::memory), and never above the cap but for the
    // minimum buffers each connection is guaranteed (`--rmem`/`--wmem` MIN).
    let entries = ep.slots.iter().filter_map(|s| s.entry.as_deref());
    let held: usize = entries.clone().map(Entry::held).sum();
    assert_eq!(ep.memory_used(), held, "the charge is not the bytes held");
    // Services are charged for what they hold but not refused it (an http request head is
    // bounded by MAX_HEAD, a page by the table it shows).
    let apps: usize = entries.clone().map(|e| e.app.memory()).sum();
    let floors = ep.connection_count() * (ep.tcp.rmem.min + ep.tcp.wmem.min);
    assert!(ep.memory_used() <= limits.max_buffer_memory + floors + apps);
    let tw = entries
        .filter(|e| e.conn.state() == State::TimeWait)
        .count()
        + ep.time_waits.len();
    assert_eq!(tw, time_wait, "TIME-WAIT miscounted");
    for state in ep.states() {
        assert!(
            !matches!(state, State::Closed | State::Listen),
            "a TCB in {state} after poll"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every seed of the fuzz corpus runs clean (the fuzz target's invariants, in cargo test).
    #[test]
    fn the_fuzz_seed_corpus_runs_clean() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/fuzz/corpus/endpoint");
        let mut n = 0;
        for entry in std::fs::read_dir(dir).expect("the seed corpus exists") {
            let data = std::fs::read(entry.unwrap().path()).unwrap();
            let _ = run(&data);
            n += 1;
        }
        assert!(n >= 5, "only {n} seeds");
    }

    /// A handshake, data, a close: the decoder reaches the state machine.
    #[test]
    fn a_structured_handshake_reaches_established_and_echoes() {
        // tag 0: peer 0, port 7, sport 40000. SYN with MSS; then ACK; then 16 bytes.
        let syn = [0u8, 0, 0x02, 0, 0, 0xff, 0xff, 1, 0x05, 0xb4, 0];
        let ack = [0u8, 0, 0x10, 0, 0, 0xff, 0xff, 0, 0];
        let data = [0u8, 0, 0x18, 0, 0, 0xff, 0xff, 0, 2];
        let mut input = Vec::new();
        input.extend_from_slice(&syn);
        input.extend_from_slice(&ack);
        input.extend_from_slice(&data);
        let c = run(&input);
        assert_eq!(c.established, 1);
        assert_eq!(c.segments_in, 3);
        assert!(c.segments_out >= 2, "SYN,ACK and the echo");
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]
        #[test]
        fn random_scenarios_run_clean(data in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..600)) {
            let _ = run(&data);
        }
    }
}
