//! A connection's share of the endpoint's buffer memory (`--max-buffer-memory`).
//!
//! A connection is charged for the bytes in its send and receive buffers plus the receive
//! window it has offered, since the peer may fill that window at any time (the reassembly
//! queue only ever holds bytes inside it). The endpoint gives each connection a budget:
//! what the global cap leaves after every other connection's charge. Within it:
//!
//! - the window only grows as far as the budget allows, and it never shrinks: the right edge
//!   we advertised stays where it is (RFC 9293 §3.8.6, SHLD-14), so bytes already promised
//!   are always taken;
//! - the application can queue only what the budget leaves (`Socket::send` takes less),
//!   where bytes received and not yet read count as room: a service that reads them frees
//!   them, so a relay such as echo, which sends back what it reads, never stalls on its own
//!   receive buffer. (While a service holds both, the charge can exceed the budget by its
//!   unread bytes; the window then does not grow until it is back under.)
//!
//! Because the offered window is charged, data arriving never raises a connection's charge:
//! each byte taken moves RCV.NXT forward by one and leaves the right edge alone.

use super::{Connection, State};

impl Connection {
    /// The bytes this connection is charged for: both buffers plus the offered window.
    pub fn memory(&self) -> usize {
        let wnd = usize::try_from(self.rcv.wnd()).unwrap_or(usize::MAX);
        self.send_buf
            .len()
            .saturating_add(self.recv_buf.len())
            .saturating_add(wnd)
    }

    /// Bytes held in buffers (send, receive and reassembly), without the offered window.
    pub fn buffered(&self) -> usize {
        let reasm = usize::try_from(self.reasm.queued_bytes()).unwrap_or(usize::MAX);
        self.send_buf
            .len()
            .saturating_add(self.recv_buf.len())
            .saturating_add(reasm)
    }

    /// Set the most this connection may be charged for (see the module docs).
    pub fn set_memory_budget(&mut self, budget: usize) {
        self.mem_budget = budget;
        // Before our first SYN,ACK nothing was promised yet: the window it will offer is
        // bounded by the budget too.
        if self.state == State::SynReceived && self.snd.nxt == self.snd.iss {
            let wnd = self.rcv.wnd().min(self.recv_space());
            self.rcv.right_edge = self.rcv.nxt.add(wnd);
        }
    }

    /// The largest receive window the budget allows, counted from RCV.NXT.
    pub(super) fn recv_budget(&self) -> usize {
        self.mem_budget
            .saturating_sub(self.send_buf.len())
            .saturating_sub(self.recv_buf.len())
    }

    /// How many more bytes the application may queue within the budget (unread bytes
    /// count as room, see the module docs).
    pub(super) fn send_budget(&self) -> usize {
        let wnd = usize::try_from(self.rcv.wnd()).unwrap_or(usize::MAX);
        self.mem_budget
            .saturating_sub(self.send_buf.len())
            .saturating_sub(wnd)
    }
}
