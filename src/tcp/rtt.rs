//! The retransmission timer's estimator (RFC 6298).

use crate::time::Duration;

/// SRTT, RTTVAR and RTO, per RFC 6298 §2.
///
/// Kept as nanoseconds in `u64`s rather than `Duration`s (16 bytes each): 40 bytes in every
/// connection instead of 96 (issue 23, a million connections). The arithmetic is the same
/// `Duration` arithmetic, converted at the edges, so every figure is exactly what it was.
#[derive(Clone, Debug)]
pub struct RttEstimator {
    /// SRTT, [`NONE`] before the first measurement.
    srtt: u64,
    rttvar: u64,
    rto: u64,
    /// The smallest sample so far: the path's RTT without queueing (Linux keeps a windowed
    /// `tcp_min_rtt`), for send-buffer autotuning. [`NONE`] before the first.
    min_rtt: u64,
    /// The RTO when the persist timer began probing a zero window with nothing in flight,
    /// [`NONE`] when it is not probing: restored once the window opens, because that backoff
    /// belongs to the persist timer (RFC 9293 §3.8.6.1), not to the retransmission timer.
    /// Linux's tcp_ack_probe clears it likewise. (Kept here, not as an `Option<Duration>` in
    /// the connection: 8 bytes, not 16.)
    rto_before_probes: u64,
    /// The RTO's bounds, in microseconds.
    min_rto_us: u32,
    max_rto_us: u32,
}

/// "No measurement yet" for `srtt` and `min_rtt` (584 years is not a round trip).
const NONE: u64 = u64::MAX;

/// RFC 6298 §2: the clock granularity G. Our clock ticks in microseconds; Linux uses 1 jiffy.
const GRANULARITY: Duration = Duration::from_millis(1);

fn nanos(d: Duration) -> u64 {
    // A duration beyond 584 years saturates just below the sentinel.
    u64::try_from(d.as_nanos())
        .unwrap_or(NONE - 1)
        .min(NONE - 1)
}

fn micros32(d: Duration) -> u32 {
    u32::try_from(d.as_micros()).unwrap_or(u32::MAX)
}

fn measured(n: u64) -> Option<Duration> {
    (n != NONE).then(|| Duration::from_nanos(n))
}

impl RttEstimator {
    /// The smallest RTT measured so far.
    pub fn min_rtt(&self) -> Option<Duration> {
        measured(self.min_rtt)
    }

    pub fn new(initial_rto: Duration, min_rto: Duration, max_rto: Duration) -> Self {
        let mut e = RttEstimator {
            srtt: NONE,
            rttvar: 0,
            rto: 0,
            min_rtt: NONE,
            rto_before_probes: NONE,
            min_rto_us: micros32(min_rto),
            max_rto_us: micros32(max_rto),
        };
        // RFC 6298 §2.1: until a measurement is made, RTO = 1 s (our configured initial).
        e.rto = nanos(initial_rto);
        e
    }

    fn min_rto(&self) -> Duration {
        Duration::from_micros(u64::from(self.min_rto_us))
    }

    fn max_rto(&self) -> Duration {
        Duration::from_micros(u64::from(self.max_rto_us))
    }

    fn clamp_rto(&self, rto: Duration) -> Duration {
        rto.max(self.min_rto()).min(self.max_rto())
    }

    /// Feed one RTT measurement, taken from a segment that was not retransmitted
    /// (Karn's algorithm, RFC 6298 §3: the caller never samples retransmitted segments).
    pub fn sample(&mut self, r: Duration) {
        self.min_rtt = nanos(self.min_rtt().map_or(r, |m| m.min(r)));
        let rttvar = Duration::from_nanos(self.rttvar);
        let (srtt, rttvar) = match self.srtt() {
            // RFC 6298 §2.2: the first measurement.
            None => (r, r / 2),
            // RFC 6298 §2.3: RTTVAR <- 3/4 RTTVAR + 1/4 |SRTT - R'|; SRTT <- 7/8 SRTT + 1/8 R'.
            Some(srtt) => ((srtt * 7 + r) / 8, (rttvar * 3 + srtt.abs_diff(r)) / 4),
        };
        self.srtt = nanos(srtt);
        self.rttvar = nanos(rttvar);
        // RFC 6298 §2.2/2.3: RTO <- SRTT + max(G, K*RTTVAR), K = 4; §2.4/2.5: clamp.
        self.rto = nanos(self.clamp_rto(srtt + GRANULARITY.max(rttvar * 4)));
    }

    /// RFC 6298 §5.5: on expiry of the retransmission timer, back off: RTO <- RTO * 2.
    pub fn back_off(&mut self) {
        self.rto = nanos((self.rto() * 2).min(self.max_rto()));
    }

    /// Set the RTO (within its bounds), e.g. RFC 6298 §5.7's 3 s after an untimed handshake.
    pub fn set_rto(&mut self, rto: Duration) {
        self.rto = nanos(self.clamp_rto(rto));
    }

    /// The persist timer begins probing: remember the RTO (the first time only).
    pub fn save_rto_for_probes(&mut self) {
        if self.rto_before_probes == NONE {
            self.rto_before_probes = self.rto;
        }
    }

    /// The window opened: restore the RTO saved when probing began. Whether one was saved.
    pub fn restore_rto_after_probes(&mut self) -> bool {
        match std::mem::replace(&mut self.rto_before_probes, NONE) {
            NONE => false,
            rto => {
                self.rto = rto;
                true
            }
        }
    }

    pub fn rto(&self) -> Duration {
        Duration::from_nanos(self.rto)
    }

    /// RTTVAR (RFC 6298 §2).
    pub fn rttvar(&self) -> Duration {
        Duration::from_nanos(self.rttvar)
    }

    pub fn srtt(&self) -> Option<Duration> {
        measured(self.srtt)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn est() -> RttEstimator {
        RttEstimator::new(
            Duration::from_secs(1),
            Duration::from_millis(200),
            Duration::from_secs(60),
        )
    }

    #[test]
    fn initial_rto_is_one_second() {
        assert_eq!(est().rto(), Duration::from_secs(1));
    }

    #[test]
    fn first_sample_sets_srtt_and_half_variance() {
        let mut e = est();
        e.sample(Duration::from_millis(100));
        assert_eq!(e.srtt(), Some(Duration::from_millis(100)));
        // 100 + 4 * 50 = 300 ms.
        assert_eq!(e.rto(), Duration::from_millis(300));
    }

    #[test]
    fn later_samples_smooth_by_one_eighth() {
        let mut e = est();
        e.sample(Duration::from_millis(100));
        e.sample(Duration::from_millis(180));
        // SRTT = 7/8 * 100 + 1/8 * 180 = 110; RTTVAR = 3/4 * 50 + 1/4 * 80 = 57.5.
        assert_eq!(e.srtt(), Some(Duration::from_millis(110)));
        assert_eq!(e.rto(), Duration::from_millis(340));
    }

    #[test]
    fn rto_is_clamped_below_and_backs_off_up_to_the_maximum() {
        let mut e = est();
        e.sample(Duration::from_micros(50));
        assert_eq!(e.rto(), Duration::from_millis(200));
        for _ in 0..20 {
            e.back_off();
        }
        assert_eq!(e.rto(), Duration::from_secs(60));
    }

    #[test]
    fn the_estimator_is_small() {
        assert!(std::mem::size_of::<RttEstimator>() <= 48);
        assert_eq!(est().srtt(), None);
        assert_eq!(est().min_rtt(), None);
        let mut e = est();
        e.sample(Duration::ZERO);
        assert_eq!(e.srtt(), Some(Duration::ZERO), "a zero sample is a sample");
        assert_eq!(e.min_rtt(), Some(Duration::ZERO));
    }

    #[test]
    fn the_rto_before_zero_window_probes_is_restored_once() {
        let mut e = est();
        assert!(!e.restore_rto_after_probes(), "nothing saved");
        e.save_rto_for_probes();
        e.back_off();
        e.save_rto_for_probes();
        e.back_off();
        assert_eq!(e.rto(), Duration::from_secs(4));
        assert!(e.restore_rto_after_probes());
        assert_eq!(e.rto(), Duration::from_secs(1), "the first one saved");
        e.back_off();
        assert!(!e.restore_rto_after_probes(), "restored once");
        assert_eq!(e.rto(), Duration::from_secs(2));
    }
}
