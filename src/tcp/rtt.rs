//! The retransmission timer's estimator (RFC 6298).

use crate::time::Duration;

/// SRTT, RTTVAR and RTO, per RFC 6298 §2.
#[derive(Clone, Debug)]
pub struct RttEstimator {
    srtt: Option<Duration>,
    rttvar: Duration,
    rto: Duration,
    min_rto: Duration,
    max_rto: Duration,
    /// The smallest sample so far: the path's RTT without queueing (Linux keeps a windowed
    /// `tcp_min_rtt`), for send-buffer autotuning.
    min_rtt: Option<Duration>,
}

/// RFC 6298 §2: the clock granularity G. Our clock ticks in microseconds; Linux uses 1 jiffy.
const GRANULARITY: Duration = Duration::from_millis(1);

impl RttEstimator {
    /// The smallest RTT measured so far.
    pub fn min_rtt(&self) -> Option<Duration> {
        self.min_rtt
    }

    pub fn new(initial_rto: Duration, min_rto: Duration, max_rto: Duration) -> Self {
        RttEstimator {
            srtt: None,
            rttvar: Duration::ZERO,
            // RFC 6298 §2.1: until a measurement is made, RTO = 1 s (our configured initial).
            rto: initial_rto,
            min_rto,
            max_rto,
            min_rtt: None,
        }
    }

    /// Feed one RTT measurement, taken from a segment that was not retransmitted
    /// (Karn's algorithm, RFC 6298 §3: the caller never samples retransmitted segments).
    pub fn sample(&mut self, r: Duration) {
        self.min_rtt = Some(self.min_rtt.map_or(r, |m| m.min(r)));
        match self.srtt {
            // RFC 6298 §2.2: the first measurement.
            None => {
                self.srtt = Some(r);
                self.rttvar = r / 2;
            }
            // RFC 6298 §2.3: RTTVAR <- 3/4 RTTVAR + 1/4 |SRTT - R'|; SRTT <- 7/8 SRTT + 1/8 R'.
            Some(srtt) => {
                let delta = srtt.abs_diff(r);
                self.rttvar = (self.rttvar * 3 + delta) / 4;
                self.srtt = Some((srtt * 7 + r) / 8);
            }
        }
        let srtt = self.srtt.unwrap_or(r);
        // RFC 6298 §2.2/2.3: RTO <- SRTT + max(G, K*RTTVAR), K = 4; §2.4/2.5: clamp.
        self.rto = (srtt + GRANULARITY.max(self.rttvar * 4)).clamp(self.min_rto, self.max_rto);
    }

    /// RFC 6298 §5.5: on expiry of the retransmission timer, back off: RTO <- RTO * 2.
    pub fn back_off(&mut self) {
        self.rto = (self.rto * 2).min(self.max_rto);
    }

    /// Set the RTO (within its bounds), e.g. RFC 6298 §5.7's 3 s after an untimed handshake.
    pub fn set_rto(&mut self, rto: Duration) {
        self.rto = rto.clamp(self.min_rto, self.max_rto);
    }

    pub fn rto(&self) -> Duration {
        self.rto
    }

    /// RTTVAR (RFC 6298 §2).
    pub fn rttvar(&self) -> Duration {
        self.rttvar
    }

    pub fn srtt(&self) -> Option<Duration> {
        self.srtt
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
}
