//! Quick-ACK mode (Linux's `icsk_ack.quick`): for a while, every data segment is acknowledged
//! at once instead of every second one or after the delayed-ACK timer (RFC 9293 §3.8.6.3).
//!
//! A sender in slow start grows its window by what each ACK acknowledges and sends on each
//! ACK it gets: at the start of a connection, waiting 40 ms for the ACK of a lone first
//! segment (or halving the ACK clock) costs it a round trip. So, as Linux does, the receiver
//! acknowledges the first segments at once, and again after a long silence, after a
//! duplicate (the sender is retransmitting: our ACK may have been lost) and, as issue 19
//! asks, after a hole in the sequence space is filled (the sender is leaving recovery).

use crate::time::{Duration, Instant};

/// The most quick ACKs one entry grants (Linux: `TCP_MAX_QUICKACKS`).
pub(super) const MAX_QUICK_ACKS: u32 = 16;

#[derive(Clone, Copy, Debug, Default)]
pub(super) struct QuickAck {
    /// ACKs still to send at once (Linux: `icsk_ack.quick`).
    credit: u16,
    /// Data has arrived before, last at `last_data` (Linux: `icsk_ack.lrcvtime`).
    started: bool,
    last_data: Instant,
}

impl QuickAck {
    /// Enter quick-ACK mode: up to `MAX_QUICK_ACKS` ACKs at once, but no more than half
    /// the window holds full segments (at least 2), as Linux's `tcp_incr_quickack`.
    pub fn enter(&mut self, rcv_wnd: u32, rcv_mss: u32) {
        let n = rcv_wnd / rcv_mss.max(1).saturating_mul(2);
        let n = if n == 0 { 2 } else { n.min(MAX_QUICK_ACKS) };
        self.credit = self.credit.max(u16::try_from(n).unwrap_or(u16::MAX));
    }

    /// In-order data arrived at `now`: the first of the connection, or the first after a
    /// silence longer than the RTO (the sender's window restarts: Linux's
    /// `tcp_event_data_recv`), enters quick-ACK mode.
    pub fn on_data(&mut self, now: Instant, rto: Duration, rcv_wnd: u32, rcv_mss: u32) {
        if !self.started || now.saturating_since(self.last_data) > rto {
            self.enter(rcv_wnd, rcv_mss);
        }
        self.started = true;
        self.last_data = now;
    }

    /// An ACK is to be sent at once rather than delayed.
    pub fn active(&self) -> bool {
        self.credit > 0
    }

    /// As if the connection's first segments were past (tests of the delayed ACK).
    #[cfg(test)]
    pub fn spend(&mut self, now: Instant) {
        self.credit = 0;
        self.started = true;
        self.last_data = now;
    }

    /// A segment carrying an ACK went out (Linux's `tcp_dec_quickack_mode`).
    pub fn on_ack_sent(&mut self) {
        self.credit = self.credit.saturating_sub(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_data_and_data_after_a_silence_enter_quick_ack_mode() {
        let mut q = QuickAck::default();
        let rto = Duration::from_millis(200);
        let t = Instant::from_millis(1000);
        q.on_data(t, rto, 64_000, 1000);
        for _ in 0..16 {
            assert!(q.active());
            q.on_ack_sent();
        }
        assert!(!q.active(), "at most 16");
        q.on_data(t + Duration::from_millis(100), rto, 64_000, 1000);
        assert!(!q.active(), "no silence");
        q.on_data(t + Duration::from_millis(400), rto, 64_000, 1000);
        assert!(q.active(), "after a silence longer than the RTO");
    }

    #[test]
    fn a_small_window_grants_fewer_quick_acks() {
        let mut q = QuickAck::default();
        q.enter(6000, 1000);
        let mut n = 0;
        while q.active() {
            q.on_ack_sent();
            n += 1;
        }
        assert_eq!(n, 3);
        q.enter(500, 1000);
        assert!(q.active(), "at least 2");
    }
}
