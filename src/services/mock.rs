//! A scripted [`Socket`] for driving services in unit tests.

use crate::tcp::ladder::View;
use crate::tcp::trace::Trace;
use crate::tcp::{ConnInfo, SeqNum, Socket, State};
use crate::wire::Quad;
use std::collections::VecDeque;

/// A socket whose receive queue, send capacity and peer FIN the test controls, and which
/// records everything the service sent and every close/abort.
pub struct MockSocket {
    /// Bytes received and not yet read by the service.
    pub rx: VecDeque<u8>,
    /// The peer's FIN has arrived (it is "read" once `rx` is empty).
    pub fin: bool,
    /// Everything the service queued for sending, in order.
    pub sent: Vec<u8>,
    /// Free space in the send buffer; `send` consumes it, [`MockSocket::ack`] frees it.
    pub capacity: usize,
    pub closes: usize,
    /// How many of the closes were half-closes ([`Socket::shutdown_write`]).
    pub shutdowns: usize,
    pub aborts: usize,
    /// How many times the service called [`Socket::recv`].
    pub recvs: usize,
    pub info: ConnInfo,
    /// What [`Socket::ladder`] returns.
    pub ladder: String,
    /// What [`Socket::diagram`] draws from, if anything.
    pub trace: Option<Trace>,
}

impl MockSocket {
    pub fn new() -> Self {
        MockSocket {
            rx: VecDeque::new(),
            fin: false,
            sent: Vec::new(),
            capacity: 64 * 1024,
            closes: 0,
            shutdowns: 0,
            aborts: 0,
            recvs: 0,
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
                window_scale: None,
                sack_permitted: false,
                timestamps: false,
            },
            ladder: String::new(),
            trace: None,
        }
    }

    pub fn with_capacity(capacity: usize) -> Self {
        MockSocket {
            capacity,
            ..MockSocket::new()
        }
    }

    /// The peer sends `data`.
    pub fn push(&mut self, data: &[u8]) {
        assert!(!self.fin, "test bug: data after FIN");
        self.rx.extend(data);
    }

    /// The peer sends its FIN.
    pub fn push_fin(&mut self) {
        self.fin = true;
        if self.info.state == State::Established {
            self.info.state = State::CloseWait;
        }
    }

    /// The peer acknowledges `n` bytes, freeing that much send buffer.
    pub fn ack(&mut self, n: usize) {
        self.capacity += n;
    }

    /// Take everything sent so far.
    pub fn take_sent(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.sent)
    }
}

impl Socket for MockSocket {
    fn recv(&mut self, buf: &mut [u8]) -> usize {
        self.recvs += 1;
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
        self.recvs += 1;
        self.rx.drain(..n.min(self.rx.len()));
    }

    fn peer_closed(&self) -> bool {
        self.fin && self.rx.is_empty()
    }

    fn send(&mut self, data: &[u8]) -> usize {
        assert_eq!(self.closes, 0, "service wrote after close()");
        assert_eq!(self.aborts, 0, "service wrote after abort()");
        let n = data.len().min(self.capacity);
        self.sent.extend_from_slice(&data[..n]);
        self.capacity -= n;
        n
    }

    fn send_capacity(&self) -> usize {
        if self.closes > 0 { 0 } else { self.capacity }
    }

    fn close(&mut self) {
        self.closes += 1;
        self.info.state = match self.info.state {
            State::CloseWait => State::LastAck,
            _ => State::FinWait1,
        };
    }

    fn shutdown_write(&mut self) {
        self.shutdowns += 1;
        self.close();
    }

    fn abort(&mut self) {
        self.aborts += 1;
    }

    fn info(&self) -> ConnInfo {
        self.info
    }

    fn ladder(&self) -> String {
        self.ladder.clone()
    }

    fn diagram(&self) -> Option<(&Trace, View)> {
        let view = View {
            quad: self.info.quad,
            iss: self.info.iss,
            irs: self.info.irs,
            state: self.info.state,
            cause: None,
        };
        self.trace.as_ref().map(|t| (t, view))
    }
}
