//! The relay behind `exec:` and `forward:`: bytes between the connection's [`Socket`] and a
//! "peer stream" the driver owns (a spawned program's stdin/stdout pipes, or a kernel TCP
//! socket to an upstream).
//!
//! Like every service it is a pure state machine: [`Relay::poll`] moves bytes between the
//! socket and two bounded buffers, and the driver moves bytes between those buffers and the
//! real file descriptors through the `peer_*` methods, telling it what happened to the peer
//! stream (end of its output, failure, gone). Nothing here makes a syscall.
//!
//! ```text
//!  client ──TCP──▶ Socket ──poll──▶ to_peer ──driver write()──▶ program stdin / upstream
//!  client ◀─TCP── Socket ◀──poll── from_peer ◀──driver read()── program stdout / upstream
//! ```
//!
//! Flow control, both ways, with bounded buffers: the relay reads from the socket only while
//! `to_peer` has room, so a peer that reads slowly leaves the client's bytes in the
//! connection's receive queue and its window shrinks to zero (RFC 9293 §3.8.6); and the driver
//! reads the peer only while `from_peer` has room, which fills only while the client's
//! window (our send buffer) is full.

use super::COPY_BUF;
use crate::tcp::Socket;
use std::collections::VecDeque;

/// Each direction's buffer: bytes between the socket and the peer stream.
pub const RELAY_BUF: usize = 64 * 1024;

/// One connection's relay state.
#[derive(Debug)]
pub struct Relay {
    /// Client → peer: read from the socket, not yet written to the peer.
    to_peer: VecDeque<u8>,
    /// Peer → client: read from the peer, not yet queued on the socket.
    from_peer: VecDeque<u8>,
    /// The client's FIN was read: once `to_peer` drains, the peer's input is shut.
    client_eof: bool,
    /// The peer's output ended (program closed stdout, upstream sent FIN): FIN after the
    /// last byte of `from_peer`.
    peer_eof: bool,
    /// The peer reads no more (program exited, upstream gone): client bytes are discarded.
    peer_gone: bool,
    /// The peer failed (program killed, upstream reset, spawn failed): reset the client.
    failed: bool,
    /// We queued our FIN.
    closed: bool,
    /// We reset the connection.
    aborted: bool,
    /// What the driver says is on the other side, for `synack status --json`.
    peer: Option<PeerId>,
}

/// The other side of a relay: the program's PID, or the upstream socket's local address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PeerId {
    Pid(u32),
    Upstream(std::net::SocketAddr),
}

impl Default for Relay {
    fn default() -> Self {
        Relay::new()
    }
}

impl Relay {
    /// A relay with both buffers allocated (once, per connection; never grown).
    pub fn new() -> Self {
        Relay {
            to_peer: VecDeque::with_capacity(RELAY_BUF),
            from_peer: VecDeque::with_capacity(RELAY_BUF),
            client_eof: false,
            peer_eof: false,
            peer_gone: false,
            failed: false,
            closed: false,
            aborted: false,
            peer: None,
        }
    }

    /// What is on the other side (set by the driver).
    pub fn set_peer(&mut self, peer: PeerId) {
        self.peer = Some(peer);
    }

    pub fn peer(&self) -> Option<PeerId> {
        self.peer
    }

    /// Done: our FIN is queued and nothing more will be read for the peer (or we reset).
    pub fn is_closed(&self) -> bool {
        self.aborted || (self.closed && (self.client_eof || self.peer_gone))
    }

    pub fn poll(&mut self, sock: &mut dyn Socket) {
        if self.is_closed() {
            return;
        }
        if self.failed {
            // The peer died uncleanly: the client must not take a truncated stream for a
            // whole one (RFC 9293 §3.10.5 ABORT).
            self.aborted = true;
            sock.abort();
            return;
        }
        // Client → peer, only as far as `to_peer` has room: the rest waits in the
        // connection's receive queue and closes its window.
        let mut buf = [0u8; 4 * COPY_BUF];
        loop {
            let room = if self.peer_gone {
                buf.len()
            } else {
                RELAY_BUF.saturating_sub(self.to_peer.len())
            };
            let want = room.min(sock.recv_queue()).min(buf.len());
            let Some(dst) = buf.get_mut(..want).filter(|d| !d.is_empty()) else {
                break;
            };
            let got = sock.recv(dst);
            let Some(data) = buf.get(..got).filter(|d| !d.is_empty()) else {
                break;
            };
            if !self.peer_gone {
                self.to_peer.extend(data);
            }
        }
        if sock.peer_closed() {
            self.client_eof = true;
        }
        // Peer → client, as far as the send buffer takes it.
        loop {
            let (front, _) = self.from_peer.as_slices();
            if front.is_empty() {
                break;
            }
            let sent = sock.send(front);
            if sent == 0 {
                break;
            }
            self.from_peer.drain(..sent.min(self.from_peer.len()));
        }
        // RFC 9293 §3.10.4: our FIN follows the last byte the peer wrote.
        if self.peer_eof && self.from_peer.is_empty() && !self.closed {
            self.closed = true;
            sock.close();
        }
    }

    // The driver's side: the peer stream.

    /// The client's bytes waiting for the peer (the front of the buffer); write them and
    /// report how many were taken with [`Relay::peer_wrote`].
    pub fn peer_pending(&self) -> &[u8] {
        self.to_peer.as_slices().0
    }

    /// The peer took `n` bytes of [`Relay::peer_pending`].
    pub fn peer_wrote(&mut self, n: usize) {
        self.to_peer.drain(..n.min(self.to_peer.len()));
    }

    /// The client sent FIN and the peer has every byte before it: shut the peer's input
    /// (close the program's stdin, `shutdown(SHUT_WR)` the upstream).
    pub fn peer_should_shut_input(&self) -> bool {
        self.client_eof && self.to_peer.is_empty()
    }

    /// How many bytes the peer may deliver now ([`Relay::peer_read`]); zero while the client
    /// is not reading, so the driver stops reading the peer.
    pub fn peer_room(&self) -> usize {
        if self.closed || self.aborted || self.failed {
            return 0;
        }
        RELAY_BUF.saturating_sub(self.from_peer.len())
    }

    /// Bytes the peer produced; returns how many fit (at most [`Relay::peer_room`]).
    pub fn peer_read(&mut self, data: &[u8]) -> usize {
        let n = data.len().min(self.peer_room());
        if let Some(take) = data.get(..n) {
            self.from_peer.extend(take);
        }
        n
    }

    /// The peer's output ended cleanly (EOF): FIN once its last byte is queued.
    pub fn peer_eof(&mut self) {
        self.peer_eof = true;
    }

    /// The peer reads no more: discard what the client sends from now on.
    pub fn peer_gone(&mut self) {
        self.peer_gone = true;
        self.to_peer.clear();
    }

    /// The peer failed: reset the connection at the next poll.
    pub fn peer_failed(&mut self) {
        self.failed = true;
    }

    /// Whether the relay reset the connection.
    pub fn aborted(&self) -> bool {
        self.aborted
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::services::mock::MockSocket;

    /// A simulated program or upstream: what it has read, and what it may read per step.
    fn pump_to_peer(relay: &mut Relay, out: &mut Vec<u8>, limit: usize) {
        let data = relay.peer_pending();
        let n = data.len().min(limit);
        out.extend_from_slice(&data[..n]);
        relay.peer_wrote(n);
    }

    #[test]
    fn bytes_flow_both_ways() {
        let mut sock = MockSocket::new();
        let mut relay = Relay::new();
        sock.push(b"hello");
        relay.poll(&mut sock);
        let mut seen = Vec::new();
        pump_to_peer(&mut relay, &mut seen, usize::MAX);
        assert_eq!(seen, b"hello");
        assert_eq!(relay.peer_read(b"HELLO"), 5);
        relay.poll(&mut sock);
        assert_eq!(sock.sent, b"HELLO");
        assert_eq!((sock.closes, sock.aborts), (0, 0));
    }

    #[test]
    fn client_fin_shuts_the_peer_input_after_the_last_byte() {
        let mut sock = MockSocket::new();
        let mut relay = Relay::new();
        sock.push(b"data");
        sock.push_fin();
        relay.poll(&mut sock);
        assert!(!relay.peer_should_shut_input(), "a byte is still unwritten");
        let mut seen = Vec::new();
        pump_to_peer(&mut relay, &mut seen, 3);
        assert!(!relay.peer_should_shut_input());
        pump_to_peer(&mut relay, &mut seen, 3);
        assert!(relay.peer_should_shut_input());
        assert_eq!(seen, b"data");
        // The other direction stays open: the program answers after the half-close.
        assert_eq!(sock.closes, 0);
        relay.peer_read(b"digest\n");
        relay.peer_eof();
        relay.poll(&mut sock);
        assert_eq!(sock.sent, b"digest\n");
        assert_eq!(sock.closes, 1);
        assert!(relay.is_closed());
    }

    #[test]
    fn peer_eof_sends_fin_after_the_last_byte_and_keeps_reading_the_client() {
        let mut sock = MockSocket::with_capacity(4);
        let mut relay = Relay::new();
        relay.peer_read(b"abcdef");
        relay.peer_eof();
        relay.poll(&mut sock);
        assert_eq!(sock.sent, b"abcd");
        assert_eq!(sock.closes, 0, "two bytes still to send");
        sock.ack(4);
        relay.poll(&mut sock);
        assert_eq!(sock.sent, b"abcdef");
        assert_eq!(sock.closes, 1);
        // Half-closed the other way: the client may still send to a peer that reads.
        assert!(!relay.is_closed());
        sock.push(b"more");
        relay.poll(&mut sock);
        let mut seen = Vec::new();
        pump_to_peer(&mut relay, &mut seen, usize::MAX);
        assert_eq!(seen, b"more");
        sock.push_fin();
        relay.poll(&mut sock);
        assert!(relay.is_closed());
        assert_eq!(sock.closes, 1);
    }

    #[test]
    fn peer_failure_resets_the_client() {
        let mut sock = MockSocket::new();
        let mut relay = Relay::new();
        relay.peer_read(b"partial");
        relay.peer_failed();
        relay.poll(&mut sock);
        assert_eq!(sock.aborts, 1);
        assert_eq!(sock.closes, 0);
        assert!(
            sock.sent.is_empty(),
            "a truncated stream is not passed off as whole"
        );
        assert!(relay.is_closed() && relay.aborted());
        relay.poll(&mut sock);
        assert_eq!(sock.aborts, 1);
        assert_eq!(relay.peer_room(), 0);
    }

    #[test]
    fn a_gone_peer_discards_the_client_bytes() {
        let mut sock = MockSocket::new();
        let mut relay = Relay::new();
        sock.push(&[1; 1000]);
        relay.poll(&mut sock);
        relay.peer_gone();
        relay.peer_eof();
        sock.push(&[2; 100_000]);
        relay.poll(&mut sock);
        assert!(relay.peer_pending().is_empty());
        assert_eq!(sock.recv_queue(), 0);
        assert_eq!(sock.closes, 1);
        assert!(relay.is_closed());
    }

    #[test]
    fn a_stalled_peer_closes_the_window_and_nothing_grows() {
        let mut sock = MockSocket::new();
        let mut relay = Relay::new();
        // The client sends 1 MiB; the peer reads nothing.
        sock.push(&vec![7; 1 << 20]);
        for _ in 0..10 {
            relay.poll(&mut sock);
        }
        assert_eq!(
            relay.peer_pending().len() + relay.to_peer.as_slices().1.len(),
            RELAY_BUF
        );
        assert_eq!(
            sock.recv_queue(),
            (1 << 20) - RELAY_BUF,
            "the rest stays unread"
        );
        assert!(relay.to_peer.capacity() <= 2 * RELAY_BUF, "no growth");
        // The peer reads 1000 bytes: exactly that much more is taken from the socket.
        let mut seen = Vec::new();
        pump_to_peer(&mut relay, &mut seen, 1000);
        relay.poll(&mut sock);
        assert_eq!(sock.recv_queue(), (1 << 20) - RELAY_BUF - 1000);
    }

    #[test]
    fn a_stalled_client_stops_the_peer_reads() {
        let mut sock = MockSocket::with_capacity(1000);
        let mut relay = Relay::new();
        let chunk = [9u8; 4096];
        let mut produced = 0;
        for _ in 0..100 {
            produced += relay.peer_read(&chunk);
            relay.poll(&mut sock);
        }
        assert_eq!(sock.sent.len(), 1000);
        assert_eq!(produced, 1000 + RELAY_BUF, "the peer is read no further");
        assert_eq!(relay.peer_room(), 0);
        sock.ack(500);
        relay.poll(&mut sock);
        assert_eq!(relay.peer_room(), 500);
    }

    #[test]
    fn client_abort_is_seen_by_nothing_here_but_the_endpoint() {
        // A client RST removes the connection; the endpoint reports it to the driver, which
        // kills the program or aborts the upstream. The relay only stops being polled.
        let mut sock = MockSocket::new();
        let mut relay = Relay::new();
        sock.push(b"x");
        relay.poll(&mut sock);
        assert_eq!(relay.peer_pending(), b"x");
        assert!(!relay.is_closed());
    }
}
