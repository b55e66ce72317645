//! Discard (RFC 863): everything received is thrown away; nothing is ever sent.

use super::{close_once, drain};
use crate::tcp::Socket;

/// Discard's per-connection state.
#[derive(Debug, Default)]
pub struct Discard {
    closed: bool,
}

impl Discard {
    pub fn new() -> Self {
        Discard::default()
    }

    pub fn is_closed(&self) -> bool {
        self.closed
    }

    pub fn poll(&mut self, sock: &mut dyn Socket) {
        // Reading keeps our receive window open however much the client sends.
        drain(sock);
        // RFC 9293 §3.10.4: the client has closed its side; ours has nothing left to send.
        if sock.peer_closed() {
            close_once(sock, &mut self.closed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::services::mock::MockSocket;

    #[test]
    fn discard_reads_everything_and_sends_nothing() {
        let mut sock = MockSocket::new();
        let mut discard = Discard::new();
        sock.push(&[0x55; 100_000]);
        discard.poll(&mut sock);
        assert_eq!(sock.recv_queue(), 0);
        assert!(sock.sent.is_empty());
        assert_eq!(sock.closes, 0);
    }

    #[test]
    fn discard_closes_once_after_peer_fin() {
        let mut sock = MockSocket::new();
        let mut discard = Discard::new();
        sock.push(b"bye");
        sock.push_fin();
        discard.poll(&mut sock);
        assert_eq!(sock.closes, 1);
        assert!(discard.is_closed());
        discard.poll(&mut sock);
        assert_eq!(sock.closes, 1);
        assert!(sock.sent.is_empty());
    }
}
