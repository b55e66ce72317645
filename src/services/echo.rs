//! Echo (RFC 862): every byte received is sent back.

use super::{COPY_BUF, close_once};
use crate::tcp::Socket;

/// Echo's per-connection state.
#[derive(Debug, Default)]
pub struct Echo {
    /// Bytes read but refused by `send` (only if a socket accepts less than its
    /// `send_capacity` promised); allocated on first use, never more than one copy buffer.
    carry: Vec<u8>,
    closed: bool,
}

impl Echo {
    pub fn new() -> Self {
        Echo::default()
    }

    pub fn is_closed(&self) -> bool {
        self.closed
    }

    pub fn poll(&mut self, sock: &mut dyn Socket) {
        if self.closed {
            return;
        }
        if !self.flush_carry(sock) {
            return;
        }
        let mut buf = [0u8; COPY_BUF];
        loop {
            // Flow control: read only what we can send straight back. A client that stops
            // reading fills our send buffer, we stop reading, and our receive window closes on
            // it (RFC 9293 §3.8.6), rather than us buffering without bound.
            let want = sock.send_capacity().min(sock.recv_queue()).min(buf.len());
            if want == 0 {
                break;
            }
            let Some(room) = buf.get_mut(..want) else {
                break;
            };
            let got = sock.recv(room);
            let Some(data) = buf.get(..got) else { break };
            if data.is_empty() {
                break;
            }
            let sent = sock.send(data);
            if let Some(rest) = data.get(sent..).filter(|r| !r.is_empty()) {
                self.carry.extend_from_slice(rest);
                return;
            }
        }
        // RFC 862 over a half-closed connection: the client's FIN means it sends no more, but
        // it still reads; once everything before the FIN has been echoed, close our side too
        // (RFC 9293 §3.10.4: the FIN follows the data already queued).
        if sock.peer_closed() && sock.recv_queue() == 0 {
            close_once(sock, &mut self.closed);
        }
    }

    /// The heap it holds (charged like the connection's queues; see `App::memory`).
    pub fn memory(&self) -> usize {
        self.carry.capacity()
    }

    /// Try to send what an earlier `send` refused; true when nothing is left over.
    fn flush_carry(&mut self, sock: &mut dyn Socket) -> bool {
        if self.carry.capacity() == 0 {
            return true;
        }
        let sent = sock.send(&self.carry);
        self.carry.drain(..sent.min(self.carry.len()));
        if self.carry.is_empty() {
            // Given back: an idle connection holds nothing.
            self.carry = Vec::new();
            return true;
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::services::mock::MockSocket;

    #[test]
    fn echo_returns_every_byte_exactly() {
        let mut sock = MockSocket::new();
        let mut echo = Echo::new();
        let data: Vec<u8> = (0..10_000u32).map(|i| (i * 7 % 256) as u8).collect();
        sock.push(&data);
        echo.poll(&mut sock);
        assert_eq!(sock.sent, data);
        assert_eq!(sock.recv_queue(), 0);
        assert_eq!(sock.closes, 0, "no close while the client may still send");
    }

    #[test]
    fn echo_reads_no_more_than_it_can_send() {
        let mut sock = MockSocket::with_capacity(10);
        let mut echo = Echo::new();
        let data: Vec<u8> = (0..100u8).collect();
        sock.push(&data);
        echo.poll(&mut sock);
        assert_eq!(sock.sent, &data[..10]);
        assert_eq!(
            sock.recv_queue(),
            90,
            "unread bytes stay in the receive queue"
        );

        // Nothing changes until the peer acknowledges something.
        echo.poll(&mut sock);
        assert_eq!(sock.sent.len(), 10);

        sock.ack(25);
        echo.poll(&mut sock);
        assert_eq!(sock.sent, &data[..35]);
        assert_eq!(sock.recv_queue(), 65);

        sock.ack(1000);
        echo.poll(&mut sock);
        assert_eq!(sock.sent, data);
    }

    #[test]
    fn echo_closes_after_peer_fin_once_everything_is_echoed() {
        let mut sock = MockSocket::with_capacity(2);
        let mut echo = Echo::new();
        sock.push(b"hi\n");
        sock.push_fin();
        echo.poll(&mut sock);
        assert_eq!(sock.sent, b"hi");
        assert_eq!(sock.closes, 0, "a byte is still unechoed");

        sock.ack(2);
        echo.poll(&mut sock);
        assert_eq!(sock.sent, b"hi\n");
        assert_eq!(sock.closes, 1);
        assert!(echo.is_closed());

        // Further polls (e.g. the ACK of our FIN) close nothing again.
        echo.poll(&mut sock);
        echo.poll(&mut sock);
        assert_eq!(sock.closes, 1);
        assert_eq!(sock.aborts, 0);
    }

    #[test]
    fn echo_fin_without_data_closes_at_once() {
        let mut sock = MockSocket::new();
        let mut echo = Echo::new();
        echo.poll(&mut sock);
        assert_eq!(sock.closes, 0);
        sock.push_fin();
        echo.poll(&mut sock);
        assert_eq!(sock.closes, 1);
        assert!(sock.sent.is_empty());
    }

    /// A socket that accepts fewer bytes than `send_capacity` promised.
    struct Stingy(MockSocket);

    impl Socket for Stingy {
        fn recv(&mut self, buf: &mut [u8]) -> usize {
            self.0.recv(buf)
        }
        fn recv_queue(&self) -> usize {
            self.0.recv_queue()
        }
        fn recv_peek(&self) -> &[u8] {
            self.0.recv_peek()
        }
        fn recv_consume(&mut self, n: usize) {
            self.0.recv_consume(n)
        }
        fn peer_closed(&self) -> bool {
            self.0.peer_closed()
        }
        fn send(&mut self, data: &[u8]) -> usize {
            let half = data.len().div_ceil(2);
            self.0.send(&data[..half])
        }
        fn send_capacity(&self) -> usize {
            self.0.send_capacity()
        }
        fn close(&mut self) {
            self.0.close()
        }
        fn abort(&mut self) {
            self.0.abort()
        }
        fn info(&self) -> crate::tcp::ConnInfo {
            self.0.info()
        }
    }

    #[test]
    fn echo_loses_nothing_when_send_accepts_less_than_promised() {
        let mut sock = Stingy(MockSocket::new());
        let mut echo = Echo::new();
        sock.0.push(b"abcdefgh");
        sock.0.push_fin();
        for _ in 0..10 {
            echo.poll(&mut sock);
        }
        assert_eq!(sock.0.sent, b"abcdefgh");
        assert_eq!(sock.0.closes, 1);
    }
}
