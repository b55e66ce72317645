//! NewReno (RFC 5681 + RFC 6582): additive increase of one SMSS per round trip, halving on
//! loss. Fast recovery's window arithmetic lives in [`super::Window`]; this file holds what is
//! NewReno's own: congestion avoidance and the backoff.

use super::Window;

#[derive(Clone, Debug)]
pub struct NewReno {
    pub(super) w: Window,
}

impl NewReno {
    pub fn new(smss: u32) -> Self {
        NewReno {
            w: Window::new(smss),
        }
    }

    pub(super) fn on_ack(&mut self, bytes_acked: u32, flight_size: u32) {
        let w = &mut self.w;
        if !w.cwnd_limited(flight_size) {
            return;
        }
        if w.in_slow_start() {
            w.slow_start(bytes_acked);
            return;
        }
        // RFC 5681 §3.1 congestion avoidance, counted in bytes (RFC 3465 §2.1): once a full
        // cwnd's worth of bytes has been acknowledged, cwnd += SMSS — one SMSS per RTT.
        w.bytes_acked = w.bytes_acked.saturating_add(bytes_acked);
        if w.bytes_acked >= w.cwnd {
            w.bytes_acked -= w.cwnd;
            w.cwnd = w.cwnd.saturating_add(w.smss);
        }
    }

    /// RFC 5681 §3.2 step 2, equation (4): ssthresh = max(FlightSize / 2, 2·SMSS).
    fn half(&self, flight_size: u32) -> u32 {
        flight_size / 2
    }

    pub(super) fn enter_recovery(&mut self, flight_size: u32) {
        let ssthresh = self.half(flight_size);
        self.w.enter_recovery(ssthresh);
    }

    /// RFC 5681 §3.1: on a timeout, ssthresh per equation (4) and cwnd = 1 SMSS.
    pub(super) fn on_rto(&mut self, flight_size: u32) {
        let ssthresh = self.half(flight_size);
        self.w.on_rto(ssthresh);
    }
}

#[cfg(test)]
mod tests {
    use super::super::{CcKind, CongestionControl};
    use crate::time::{Duration, Instant};

    const MSS: u32 = 1000;
    const RTT: Duration = Duration::from_millis(50);

    /// One round trip of a sender that keeps the window full: every segment in flight is
    /// ACKed, `per_ack` segments per ACK. Returns the new time.
    fn round_trip(cc: &mut CongestionControl, now: Instant, per_ack: u32) -> Instant {
        let flight = cc.cwnd();
        let acks = (flight / MSS).div_ceil(per_ack);
        let step = RTT / acks.max(1);
        let mut t = now;
        for _ in 0..acks {
            t += step;
            cc.on_ack(t, per_ack * MSS, Some(RTT), flight);
        }
        now + RTT
    }

    #[test]
    fn slow_start_doubles_every_round_trip_even_with_delayed_acks() {
        for per_ack in [1, 2] {
            let mut cc = CongestionControl::new(CcKind::NewReno, MSS);
            let mut t = Instant::ZERO;
            let mut windows = vec![cc.cwnd()];
            for _ in 0..4 {
                t = round_trip(&mut cc, t, per_ack);
                windows.push(cc.cwnd());
            }
            assert_eq!(windows, vec![10_000, 20_000, 40_000, 80_000, 160_000]);
        }
    }

    #[test]
    fn congestion_avoidance_grows_one_smss_per_round_trip() {
        let mut cc = CongestionControl::new(CcKind::NewReno, MSS);
        cc.enter_recovery(Instant::ZERO, 40 * MSS);
        cc.on_recovery_exit(Instant::ZERO);
        assert_eq!(cc.cwnd(), 20 * MSS);
        assert!(!cc.in_slow_start());
        let mut t = Instant::ZERO;
        for expected in 21..=30 {
            t = round_trip(&mut cc, t, 1);
            assert_eq!(cc.cwnd(), expected * MSS);
        }
    }

    #[test]
    fn loss_halves_the_window_and_a_timeout_collapses_it() {
        let mut cc = CongestionControl::new(CcKind::NewReno, MSS);
        let mut t = Instant::ZERO;
        for _ in 0..3 {
            t = round_trip(&mut cc, t, 1);
        }
        assert_eq!(cc.cwnd(), 80 * MSS);
        cc.enter_recovery(t, cc.cwnd());
        assert_eq!((cc.ssthresh(), cc.cwnd()), (40 * MSS, 40 * MSS));
        cc.on_recovery_exit(t);
        cc.on_rto(t, 30 * MSS);
        assert_eq!((cc.ssthresh(), cc.cwnd()), (15 * MSS, MSS));
        // Slow start again (1 SMSS per ACK after the timeout) up to ssthresh, then linear.
        for _ in 0..4 {
            t = round_trip(&mut cc, t, 1);
        }
        assert_eq!(cc.cwnd(), 15 * MSS);
        t = round_trip(&mut cc, t, 1);
        assert_eq!(cc.cwnd(), 16 * MSS);
        let _ = t;
    }
}
