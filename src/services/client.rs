//! The endpoint as a client (`synack connect`): send the given bytes, half-close once they are
//! all queued, and collect whatever the peer sends back until it closes.
//!
//! Like the services it is a pure state machine over a [`Socket`], driven by [`App::poll`]
//! (`super::App`). The bytes to send are given at creation; received bytes accumulate (up to
//! [`MAX_RECEIVED`], beyond which reading pauses and the window closes) until the driver takes
//! them with [`Client::take_received`].

use super::{COPY_BUF, close_once};
use crate::tcp::Socket;

/// The most received bytes held for the driver before reading pauses.
pub const MAX_RECEIVED: usize = 1024 * 1024;

/// The client's per-connection state.
pub struct Client {
    /// What to send, and how much of it the socket has taken.
    data: Vec<u8>,
    sent: usize,
    /// Received and not yet taken by the driver.
    received: Vec<u8>,
    /// The peer's FIN has been read: it will send nothing more.
    peer_done: bool,
    closed: bool,
}

impl Client {
    pub fn new(data: Vec<u8>) -> Client {
        Client {
            data,
            sent: 0,
            received: Vec::new(),
            peer_done: false,
            closed: false,
        }
    }

    /// The first `n` bytes of the data are already in the connection's send buffer (TCP
    /// Fast Open put them there for the SYN).
    pub fn already_queued(mut self, n: usize) -> Client {
        self.sent = n.min(self.data.len());
        self
    }

    pub fn is_closed(&self) -> bool {
        self.closed
    }

    /// The peer has closed its side and everything it sent has been read.
    pub fn peer_done(&self) -> bool {
        self.peer_done
    }

    /// Everything received since the last call.
    pub fn take_received(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.received)
    }

    pub fn poll(&mut self, sock: &mut dyn Socket) {
        // Read first: closing with unread data would reset the connection (RFC 9293 SHLD-3).
        let mut buf = [0u8; COPY_BUF];
        loop {
            let room = MAX_RECEIVED
                .saturating_sub(self.received.len())
                .min(COPY_BUF);
            if room == 0 {
                break;
            }
            let n = sock.recv(buf.get_mut(..room).unwrap_or_default());
            if n == 0 {
                break;
            }
            self.received
                .extend_from_slice(buf.get(..n).unwrap_or_default());
        }
        if sock.peer_closed() {
            self.peer_done = true;
        }
        if let Some(rest) = self.data.get(self.sent..).filter(|r| !r.is_empty()) {
            self.sent += sock.send(rest);
        }
        if self.sent >= self.data.len() && sock.recv_queue() == 0 {
            // RFC 9293 §3.10.4: everything is queued; our FIN follows it (a half-close: the
            // peer may go on sending).
            close_once(sock, &mut self.closed);
            self.data = Vec::new();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::services::mock::MockSocket;

    #[test]
    fn sends_everything_then_half_closes_and_collects_the_reply() {
        let mut sock = MockSocket::with_capacity(4);
        let mut c = Client::new(b"hello".to_vec());
        c.poll(&mut sock);
        assert_eq!(sock.take_sent(), b"hell");
        assert_eq!(sock.closes, 0, "not everything is queued yet");
        sock.ack(4);
        sock.push(b"HI");
        c.poll(&mut sock);
        assert_eq!(sock.take_sent(), b"o");
        assert_eq!(sock.closes, 1);
        assert_eq!(c.take_received(), b"HI");
        assert!(!c.peer_done());
        // The peer keeps sending after our FIN (half-close), then closes.
        sock.push(b" there");
        sock.push_fin();
        c.poll(&mut sock);
        assert_eq!(c.take_received(), b" there");
        assert!(c.peer_done());
        assert_eq!(sock.closes, 1, "closed once");
        assert!(c.take_received().is_empty());
    }

    #[test]
    fn with_nothing_to_send_it_closes_at_once() {
        let mut sock = MockSocket::new();
        let mut c = Client::new(Vec::new());
        c.poll(&mut sock);
        assert_eq!(sock.closes, 1);
        assert!(c.is_closed());
        assert!(sock.sent.is_empty());
    }

    #[test]
    fn reading_pauses_when_the_driver_does_not_take_the_data() {
        let mut sock = MockSocket::new();
        let mut c = Client::new(b"x".to_vec());
        sock.push(&vec![7u8; MAX_RECEIVED + 10]);
        c.poll(&mut sock);
        assert_eq!(sock.rx.len(), 10, "the rest stays in the socket");
        assert_eq!(sock.closes, 0, "closing now would reset the connection");
        assert_eq!(c.take_received().len(), MAX_RECEIVED);
        c.poll(&mut sock);
        assert_eq!(sock.closes, 1);
        assert_eq!(c.take_received().len(), 10);
    }
}
