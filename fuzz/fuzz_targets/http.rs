//! Fuzz the HTTP service (src/services/http.rs) through its state machine, as the endpoint
//! drives it: `Http::poll` over a [`Socket`] whose receive queue, send buffer and peer FIN
//! the input controls.
//!
//! Input: 4 bytes of schedule, then the byte stream the client sends (so seeds are readable
//! requests). The schedule seeds a small PRNG that cuts the stream into segments of 1 to
//! 2^k bytes (k from the first byte), sets the initial send-buffer room and how much of what
//! the service sent the peer acknowledges between polls, and whether the peer ends with a
//! FIN. After the stream the window opens wide and the peer acknowledges everything, up to a
//! budget of output.
//!
//! Invariants: no panic; the service never writes after closing, closes at most once and
//! never aborts; what it sends starts with an HTTP/1.1 status line; once the peer has sent
//! its FIN and read everything, the service closes (unless it is still streaming a large
//! `/bytes/<N>` body past the budget).

#![no_main]

use libfuzzer_sys::fuzz_target;
use std::collections::VecDeque;
use synack::seqnum::SeqNum;
use synack::services::Http;
use synack::tcp::{ConnInfo, Socket, State};
use synack::wire::Quad;

/// Output the peer acknowledges in all (beyond it the service is left with a full buffer).
const OUTPUT_BUDGET: usize = 1 << 20;
/// Polls after the stream has been delivered, to let the service finish.
const DRAIN_POLLS: usize = 64;

fuzz_target!(|data: &[u8]| {
    let Some((schedule, stream)) = data.split_first_chunk::<4>() else {
        return;
    };
    let mut rng = u32::from_le_bytes(*schedule) | 1;
    let max_chunk = 1usize << (schedule[0] % 14);
    let peer_fin = schedule[1] & 1 == 1;
    let mut sock = FuzzSocket::new(64 << (schedule[2] % 11));
    let mut http = Http::new();

    http.poll(&mut sock); // established
    let mut rest = stream;
    while !rest.is_empty() {
        let n = (1 + next(&mut rng) as usize % max_chunk).min(rest.len());
        let (chunk, tail) = rest.split_at(n);
        rest = tail;
        sock.rx.extend(chunk);
        http.poll(&mut sock);
        let acked = next(&mut rng) as usize % (sock.in_flight() + 1);
        sock.ack(acked);
        http.poll(&mut sock);
    }
    if peer_fin {
        sock.fin = true;
    }
    // The peer's window opens wide: a response or a streamed body can finish.
    sock.room = sock.room.max(256 << 10);
    for _ in 0..DRAIN_POLLS {
        sock.ack(sock.in_flight());
        http.poll(&mut sock);
    }

    assert_eq!(sock.aborts, 0, "a service never aborts");
    assert!(sock.closes <= 1, "closed {} times", sock.closes);
    assert_eq!(http.is_closed(), sock.closes == 1, "is_closed() disagrees");
    if !sock.sent_prefix.is_empty() {
        let n = sock.sent_prefix.len().min(9);
        assert_eq!(
            &sock.sent_prefix[..n],
            &b"HTTP/1.1 "[..n],
            "not a status line"
        );
    }
    if peer_fin && sock.rx.is_empty() && sock.acked < OUTPUT_BUDGET {
        assert_eq!(sock.closes, 1, "the peer closed and the service did not");
    }
});

/// xorshift32: a deterministic schedule from the input.
fn next(state: &mut u32) -> u32 {
    *state ^= *state << 13;
    *state ^= *state >> 17;
    *state ^= *state << 5;
    *state
}

struct FuzzSocket {
    rx: VecDeque<u8>,
    fin: bool,
    /// Room left in the send buffer.
    room: usize,
    /// Bytes sent and not yet acknowledged.
    unacked: usize,
    /// Bytes acknowledged so far, against [`OUTPUT_BUDGET`].
    acked: usize,
    /// The first bytes sent, to check the status line.
    sent_prefix: Vec<u8>,
    closes: usize,
    aborts: usize,
    info: ConnInfo,
}

impl FuzzSocket {
    fn new(room: usize) -> Self {
        FuzzSocket {
            rx: VecDeque::new(),
            fin: false,
            room,
            unacked: 0,
            acked: 0,
            sent_prefix: Vec::new(),
            closes: 0,
            aborts: 0,
            info: ConnInfo {
                quad: Quad {
                    local: "198.18.0.2:80".parse().unwrap(),
                    remote: "198.18.0.1:40000".parse().unwrap(),
                },
                state: State::Established,
                iss: SeqNum::new(3_000_000_000),
                irs: SeqNum::new(123_456),
                local_mss: 1460,
                peer_mss: Some(1400),
                send_mss: 1400,
                window_scale: Some((7, 7)),
                sack_permitted: true,
                timestamps: true,
            },
        }
    }

    /// What the peer may still acknowledge, within the budget.
    fn in_flight(&self) -> usize {
        self.unacked.min(OUTPUT_BUDGET.saturating_sub(self.acked))
    }

    fn ack(&mut self, n: usize) {
        let n = n.min(self.in_flight());
        self.unacked -= n;
        self.acked += n;
        self.room += n;
    }
}

impl Socket for FuzzSocket {
    fn recv(&mut self, buf: &mut [u8]) -> usize {
        let n = buf.len().min(self.rx.len());
        for (dst, src) in buf.iter_mut().zip(self.rx.drain(..n)) {
            *dst = src;
        }
        n
    }

    fn recv_queue(&self) -> usize {
        self.rx.len()
    }

    fn recv_peek(&self) -> &[u8] {
        self.rx.as_slices().0
    }

    fn recv_consume(&mut self, n: usize) {
        self.rx.drain(..n.min(self.rx.len()));
    }

    fn peer_closed(&self) -> bool {
        self.fin && self.rx.is_empty()
    }

    fn send(&mut self, data: &[u8]) -> usize {
        assert_eq!(self.closes, 0, "the service wrote after close()");
        assert_eq!(self.aborts, 0, "the service wrote after abort()");
        let n = data.len().min(self.room);
        let keep = n.min(9usize.saturating_sub(self.sent_prefix.len()));
        self.sent_prefix.extend_from_slice(&data[..keep]);
        self.room -= n;
        self.unacked += n;
        n
    }

    fn send_capacity(&self) -> usize {
        if self.closes > 0 { 0 } else { self.room }
    }

    fn close(&mut self) {
        self.closes += 1;
        self.info.state = if self.fin {
            State::LastAck
        } else {
            State::FinWait1
        };
    }

    fn abort(&mut self) {
        self.aborts += 1;
    }

    fn info(&self) -> ConnInfo {
        self.info
    }

    fn ladder(&self) -> String {
        "fuzz ladder\n".to_string()
    }
}
