//! The relay behind `exec:` and `forward:`: bytes between the connection's [`Socket`] and a
//! "peer stream" the driver owns (a spawned program's stdin/stdout pipes, or a kernel TCP
//! socket to an upstream).
//!
//! Like every service it is a pure state machine. The relay holds no bytes of its own: the
//! driver moves them straight between the connection's queues and the file descriptors,
//! through a [`RelayIo`] (the relay and its connection, borrowed together), and tells it
//! what happened to the peer stream (end of its output, failure, gone). [`Relay::poll`]
//! turns that into what the connection does (FIN, RST). Nothing here makes a syscall.
//!
//! ```text
//!  client ──TCP──▶ receive queue ──driver write()──▶ program stdin / upstream
//!  client ◀─TCP── send buffer    ◀──driver read()─── program stdout / upstream
//! ```
//!
//! Flow control, both ways, with the connection's own bounded buffers: a peer that reads
//! slowly leaves the client's bytes in the receive queue, so the window offered to the
//! client shrinks to zero (RFC 9293 §3.8.6); and the driver reads the peer only as far as
//! the send buffer has room, which it lacks while the client's window is closed. Nothing is
//! held anywhere else, so nothing else can grow, and `--max-buffer-memory` counts it all.

use crate::tcp::{Socket, State};

/// One connection's relay state.
#[derive(Debug, Default)]
pub struct Relay {
    /// The client's FIN was read (so the driver shuts the peer's input:
    /// [`RelayIo::peer_should_shut_input`]); with our FIN queued, the relay is done.
    client_eof: bool,
    /// The peer's output ended (program closed stdout, upstream sent FIN): our FIN follows
    /// what is queued.
    peer_eof: bool,
    /// The peer reads no more (program exited, upstream gone): client bytes are discarded.
    peer_gone: bool,
    /// The peer failed (program killed, upstream reset, spawn failed): reset the client.
    failed: bool,
    /// We queued our FIN.
    closed: bool,
    /// We reset the connection.
    aborted: bool,
    /// What the driver says is on the other side, for `synack status --json`. (Boxed: 8
    /// bytes in every relayed connection, not 32; issue 21's and 23's memory.)
    peer: Option<Box<PeerId>>,
}

/// The other side of a relay: the program's PID, or the upstream socket's local address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PeerId {
    Pid(u32),
    Upstream(std::net::SocketAddr),
}

impl Relay {
    pub fn new() -> Self {
        Relay::default()
    }

    /// What is on the other side (set by the driver).
    pub fn set_peer(&mut self, peer: PeerId) {
        self.peer = Some(Box::new(peer));
    }

    pub fn peer(&self) -> Option<PeerId> {
        self.peer.as_deref().copied()
    }

    /// Done: our FIN is queued and nothing more will be read for the peer (or we reset).
    pub fn is_closed(&self) -> bool {
        self.aborted || (self.closed && (self.client_eof || self.peer_gone))
    }

    /// Whether the relay reset the connection.
    pub fn aborted(&self) -> bool {
        self.aborted
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
        if self.peer_gone {
            // Nobody reads them: the client's bytes are dropped, so its window stays open
            // and its FIN can come.
            let n = sock.recv_queue();
            sock.recv_consume(n);
        }
        if sock.peer_closed() {
            self.client_eof = true;
        }
        // RFC 9293 §3.10.4: our FIN follows the last byte the peer wrote (already queued:
        // the driver reads the peer straight into the send buffer). A half-close: the
        // client may go on sending to a peer that still reads. But once the client's own
        // FIN is in, our FIN would end the connection (LAST-ACK, then CLOSED) while some
        // of its bytes still wait for the peer: it waits for them.
        if self.peer_eof && !self.closed {
            let undelivered = sock.recv_queue() > 0 && sock.info().state == State::CloseWait;
            if !undelivered {
                self.closed = true;
                sock.shutdown_write();
                if sock.peer_closed() {
                    self.client_eof = true;
                }
            }
        }
    }
}

/// A relay and its connection, borrowed together: the driver's side of the relay, where it
/// moves bytes between the connection's queues and the peer stream's file descriptors.
/// After using one, the driver calls [`crate::endpoint::Endpoint::relay_changed`] so the
/// connection sends what it now owes (data, a window update, a FIN, a RST).
pub struct RelayIo<'a> {
    relay: &'a mut Relay,
    sock: &'a mut dyn Socket,
}

impl<'a> RelayIo<'a> {
    pub fn new(relay: &'a mut Relay, sock: &'a mut dyn Socket) -> Self {
        RelayIo { relay, sock }
    }

    /// What is on the other side, for `synack status --json`.
    pub fn set_peer(&mut self, peer: PeerId) {
        self.relay.set_peer(peer);
    }

    /// The client's bytes waiting for the peer (the front of the receive queue, in place);
    /// write them and report how many were taken with [`RelayIo::peer_wrote`].
    pub fn peer_pending(&self) -> &[u8] {
        if self.relay.peer_gone || self.relay.aborted {
            return &[];
        }
        self.sock.recv_peek()
    }

    /// The peer took `n` bytes of [`RelayIo::peer_pending`]: they leave the receive queue,
    /// and the window opens by as much.
    pub fn peer_wrote(&mut self, n: usize) {
        self.sock.recv_consume(n);
    }

    /// The client sent FIN and the peer has every byte before it: shut the peer's input
    /// (close the program's stdin, `shutdown(SHUT_WR)` the upstream).
    pub fn peer_should_shut_input(&self) -> bool {
        self.sock.peer_closed()
    }

    /// How many bytes the peer may deliver now ([`RelayIo::peer_read_with`]): the send buffer's
    /// room, zero while the client is not reading, so the driver stops reading the peer.
    pub fn peer_room(&self) -> usize {
        let r = &self.relay;
        if r.closed || r.aborted || r.failed || r.peer_eof {
            return 0;
        }
        self.sock.send_capacity()
    }

    /// Bytes the peer produces in place: `fill` reads them straight into the send buffer
    /// (at most `max`, at most [`RelayIo::peer_room`]) and returns how many it read.
    pub fn peer_read_with(
        &mut self,
        max: usize,
        fill: &mut dyn FnMut(&mut [u8]) -> usize,
    ) -> usize {
        let room = self.peer_room().min(max);
        if room == 0 {
            return 0;
        }
        self.sock.send_with(room, fill)
    }

    /// The peer's output ended cleanly (EOF): FIN after what is queued.
    pub fn peer_eof(&mut self) {
        self.relay.peer_eof = true;
    }

    /// The peer reads no more: discard what the client sends from now on.
    pub fn peer_gone(&mut self) {
        self.relay.peer_gone = true;
    }

    /// The peer failed: reset the connection at the next poll.
    pub fn peer_failed(&mut self) {
        self.relay.failed = true;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::services::mock::MockSocket;

    /// A simulated program or upstream that reads at most `limit` of the client's bytes.
    fn pump_to_peer(relay: &mut Relay, sock: &mut MockSocket, out: &mut Vec<u8>, limit: usize) {
        let mut io = RelayIo::new(relay, sock);
        let data = io.peer_pending();
        let n = data.len().min(limit);
        out.extend_from_slice(&data[..n]);
        io.peer_wrote(n);
    }

    /// A simulated program or upstream that writes `data` (a `read()` into the send buffer);
    /// returns how much was taken.
    fn peer_writes(relay: &mut Relay, sock: &mut MockSocket, data: &[u8]) -> usize {
        RelayIo::new(relay, sock).peer_read_with(data.len(), &mut |dst| {
            let n = dst.len().min(data.len());
            dst[..n].copy_from_slice(&data[..n]);
            n
        })
    }

    fn io<'a>(relay: &'a mut Relay, sock: &'a mut MockSocket) -> RelayIo<'a> {
        RelayIo::new(relay, sock)
    }

    #[test]
    fn bytes_flow_both_ways_without_a_copy_in_the_relay() {
        let mut sock = MockSocket::new();
        let mut relay = Relay::new();
        sock.push(b"hello");
        relay.poll(&mut sock);
        assert_eq!(sock.recvs, 0, "the relay itself reads nothing");
        let mut seen = Vec::new();
        pump_to_peer(&mut relay, &mut sock, &mut seen, usize::MAX);
        assert_eq!(seen, b"hello");
        assert_eq!(
            sock.recv_queue(),
            0,
            "taken from the receive queue in place"
        );
        assert_eq!(peer_writes(&mut relay, &mut sock, b"HELLO"), 5);
        assert_eq!(sock.sent, b"HELLO", "queued on the connection at once");
        relay.poll(&mut sock);
        assert_eq!((sock.closes, sock.aborts), (0, 0));
    }

    #[test]
    fn client_fin_shuts_the_peer_input_after_the_last_byte() {
        let mut sock = MockSocket::new();
        let mut relay = Relay::new();
        sock.push(b"data");
        sock.push_fin();
        relay.poll(&mut sock);
        assert!(
            !io(&mut relay, &mut sock).peer_should_shut_input(),
            "4 bytes unwritten"
        );
        let mut seen = Vec::new();
        pump_to_peer(&mut relay, &mut sock, &mut seen, 3);
        assert!(!io(&mut relay, &mut sock).peer_should_shut_input());
        pump_to_peer(&mut relay, &mut sock, &mut seen, 3);
        assert!(io(&mut relay, &mut sock).peer_should_shut_input());
        assert_eq!(seen, b"data");
        // The other direction stays open: the program answers after the half-close.
        relay.poll(&mut sock);
        assert_eq!(sock.closes, 0);
        peer_writes(&mut relay, &mut sock, b"digest\n");
        io(&mut relay, &mut sock).peer_eof();
        relay.poll(&mut sock);
        assert_eq!(sock.sent, b"digest\n");
        assert_eq!((sock.closes, sock.shutdowns), (1, 1));
        assert!(relay.is_closed());
    }

    #[test]
    fn peer_eof_sends_fin_after_the_last_byte_and_keeps_reading_the_client() {
        let mut sock = MockSocket::with_capacity(4);
        let mut relay = Relay::new();
        assert_eq!(
            peer_writes(&mut relay, &mut sock, b"abcdef"),
            4,
            "as far as room"
        );
        assert_eq!(io(&mut relay, &mut sock).peer_room(), 0);
        sock.ack(4);
        assert_eq!(peer_writes(&mut relay, &mut sock, b"ef"), 2);
        io(&mut relay, &mut sock).peer_eof();
        assert_eq!(
            io(&mut relay, &mut sock).peer_room(),
            0,
            "nothing after the end"
        );
        relay.poll(&mut sock);
        assert_eq!(sock.sent, b"abcdef");
        assert_eq!(sock.shutdowns, 1);
        // Half-closed the other way: the client may still send to a peer that reads.
        assert!(!relay.is_closed());
        sock.push(b"more");
        relay.poll(&mut sock);
        let mut seen = Vec::new();
        pump_to_peer(&mut relay, &mut sock, &mut seen, usize::MAX);
        assert_eq!(seen, b"more");
        sock.push_fin();
        relay.poll(&mut sock);
        assert!(relay.is_closed());
        assert_eq!((sock.closes, sock.aborts), (1, 0));
    }

    #[test]
    fn peer_eof_with_client_bytes_unread_is_a_half_close_not_an_abort() {
        let mut sock = MockSocket::new();
        let mut relay = Relay::new();
        sock.push(b"not yet written to the upstream");
        io(&mut relay, &mut sock).peer_eof();
        relay.poll(&mut sock);
        // shutdown_write, not close: close() with unread data would reset (SHLD-3).
        assert_eq!((sock.shutdowns, sock.aborts), (1, 0));
        let mut seen = Vec::new();
        pump_to_peer(&mut relay, &mut sock, &mut seen, usize::MAX);
        assert_eq!(seen, b"not yet written to the upstream");
    }

    #[test]
    fn after_the_client_fin_our_fin_waits_for_its_bytes_to_reach_the_peer() {
        // CLOSE-WAIT: our FIN would take the connection through LAST-ACK to CLOSED, and the
        // bytes still in the receive queue would be lost with it.
        let mut sock = MockSocket::new();
        let mut relay = Relay::new();
        sock.push(b"last words");
        sock.push_fin();
        io(&mut relay, &mut sock).peer_eof();
        relay.poll(&mut sock);
        assert_eq!(sock.closes, 0, "FIN held while bytes wait for the peer");
        let mut seen = Vec::new();
        pump_to_peer(&mut relay, &mut sock, &mut seen, 4);
        relay.poll(&mut sock);
        assert_eq!(sock.closes, 0);
        pump_to_peer(&mut relay, &mut sock, &mut seen, usize::MAX);
        assert!(io(&mut relay, &mut sock).peer_should_shut_input());
        relay.poll(&mut sock);
        assert_eq!(seen, b"last words");
        assert_eq!((sock.closes, sock.aborts), (1, 0));
        assert!(relay.is_closed());
    }

    #[test]
    fn peer_failure_resets_the_client() {
        let mut sock = MockSocket::new();
        let mut relay = Relay::new();
        peer_writes(&mut relay, &mut sock, b"partial");
        io(&mut relay, &mut sock).peer_failed();
        assert_eq!(io(&mut relay, &mut sock).peer_room(), 0);
        relay.poll(&mut sock);
        // The RST goes at SND.NXT: whatever was queued and not sent is not passed off as
        // the whole stream.
        assert_eq!((sock.aborts, sock.closes), (1, 0));
        assert!(relay.is_closed() && relay.aborted());
        relay.poll(&mut sock);
        assert_eq!(sock.aborts, 1);
        assert!(io(&mut relay, &mut sock).peer_pending().is_empty());
    }

    #[test]
    fn a_gone_peer_discards_the_client_bytes() {
        let mut sock = MockSocket::new();
        let mut relay = Relay::new();
        sock.push(&[1; 1000]);
        relay.poll(&mut sock);
        io(&mut relay, &mut sock).peer_gone();
        io(&mut relay, &mut sock).peer_eof();
        assert!(io(&mut relay, &mut sock).peer_pending().is_empty());
        sock.push(&[2; 100_000]);
        relay.poll(&mut sock);
        assert_eq!(sock.recv_queue(), 0);
        assert_eq!((sock.closes, sock.aborts), (1, 0));
        sock.push_fin();
        relay.poll(&mut sock);
        assert!(relay.is_closed());
    }

    #[test]
    fn a_stalled_peer_leaves_the_bytes_in_the_receive_queue() {
        let mut sock = MockSocket::new();
        let mut relay = Relay::new();
        // The client sends 1 MiB; the peer reads nothing: it all stays in the connection's
        // receive queue (whose window then closes: endpoint test
        // `a_stalled_program_closes_the_clients_window`).
        sock.push(&vec![7; 1 << 20]);
        for _ in 0..10 {
            relay.poll(&mut sock);
        }
        assert_eq!(sock.recv_queue(), 1 << 20);
        // The peer reads 1000 bytes: exactly those leave the queue.
        let mut seen = Vec::new();
        pump_to_peer(&mut relay, &mut sock, &mut seen, 1000);
        relay.poll(&mut sock);
        assert_eq!(sock.recv_queue(), (1 << 20) - 1000);
        assert_eq!(seen.len(), 1000);
    }

    #[test]
    fn a_stalled_client_stops_the_peer_reads() {
        let mut sock = MockSocket::with_capacity(1000);
        let mut relay = Relay::new();
        let chunk = [9u8; 4096];
        let mut produced = 0;
        for _ in 0..100 {
            produced += peer_writes(&mut relay, &mut sock, &chunk);
            relay.poll(&mut sock);
        }
        assert_eq!(sock.sent.len(), 1000);
        assert_eq!(
            produced, 1000,
            "the peer is read no further than the send buffer"
        );
        assert_eq!(io(&mut relay, &mut sock).peer_room(), 0);
        sock.ack(500);
        relay.poll(&mut sock);
        assert_eq!(io(&mut relay, &mut sock).peer_room(), 500);
    }

    #[test]
    fn client_abort_is_seen_by_nothing_here_but_the_endpoint() {
        // A client RST removes the connection; the endpoint reports it to the driver, which
        // kills the program or aborts the upstream. The relay only stops being polled.
        let mut sock = MockSocket::new();
        let mut relay = Relay::new();
        sock.push(b"x");
        relay.poll(&mut sock);
        assert_eq!(io(&mut relay, &mut sock).peer_pending(), b"x");
        assert!(!relay.is_closed());
    }
}
