//! CUBIC (RFC 9438): after a loss the window follows W_cubic(t) = C·(t − K)³ + W_max, concave
//! up to the previous maximum W_max, flat around it, then convex beyond it, independent of the
//! RTT; in the Reno-friendly region it grows at least as fast as an AIMD flow with the same
//! backoff would. Slow start and fast recovery are RFC 5681's (shared [`super::Window`]).
//!
//! Internally windows are in segments (f64), as in the RFC; the public window is bytes.

use super::Window;
use crate::time::{Duration, Instant};

/// RFC 9438 §5: C = 0.4.
pub const C: f64 = 0.4;
/// RFC 9438 §4.6: β_cubic = 0.7.
pub const BETA: f64 = 0.7;
/// RFC 9438 §4.3: α_cubic = 3·(1 − β)/(1 + β), the Reno-friendly additive increase.
pub const ALPHA: f64 = 3.0 * (1.0 - BETA) / (1.0 + BETA);

/// RFC 9438 §4.2: K = ∛((W_max − cwnd_epoch) / C), in seconds; 0 when the epoch starts at or
/// above W_max.
pub fn k_seconds(w_max: f64, cwnd_epoch: f64) -> f64 {
    if w_max > cwnd_epoch {
        ((w_max - cwnd_epoch) / C).cbrt()
    } else {
        0.0
    }
}

/// One congestion-avoidance stage (RFC 9438 §4.2): the curve it follows.
#[derive(Clone, Copy, Debug)]
struct Epoch {
    /// t_epoch, shifted forward over application-limited stretches.
    start: Instant,
    /// When the last ACK was processed (to measure those stretches).
    last: Instant,
    /// K, seconds.
    k: f64,
    /// The plateau the curve returns to (W_max, or cwnd_epoch if W_max is below it).
    origin: f64,
    /// W_est, segments (RFC 9438 §4.3).
    w_est: f64,
}

#[derive(Clone, Debug)]
pub struct Cubic {
    pub(super) w: Window,
    /// W_max, segments: the window just before the last reduction (after fast convergence).
    w_max: f64,
    /// cwnd_prior, segments: the window when ssthresh was last set (RFC 9438 §4.3).
    cwnd_prior: f64,
    /// Boxed: a connection that never leaves slow start (most short ones) or sits between
    /// stages keeps 8 bytes, not 40 (issue 23); allocated once per stage.
    epoch: Option<Box<Epoch>>,
    /// Fractional bytes of growth not yet added to cwnd.
    frac: f64,
}

impl Cubic {
    pub fn new(smss: u32) -> Self {
        Cubic {
            w: Window::new(smss),
            w_max: 0.0,
            cwnd_prior: 0.0,
            epoch: None,
            frac: 0.0,
        }
    }

    fn segments(&self, bytes: u32) -> f64 {
        f64::from(bytes) / f64::from(self.w.smss)
    }

    /// The current K, if a congestion-avoidance stage is under way.
    pub fn k(&self) -> Option<Duration> {
        self.epoch
            .as_deref()
            .map(|e| Duration::try_from_secs_f64(e.k).unwrap_or(Duration::MAX))
    }

    /// W_max in bytes.
    pub fn w_max(&self) -> u32 {
        to_u32(self.w_max * f64::from(self.w.smss))
    }

    pub(super) fn on_ack(
        &mut self,
        now: Instant,
        bytes_acked: u32,
        srtt: Option<Duration>,
        flight_size: u32,
    ) {
        let limited = !self.w.cwnd_limited(flight_size);
        if limited {
            // RFC 9438 §5.8: t must not include application-limited periods, so the curve
            // is paused: the epoch's start moves forward by the time that passed.
            if let Some(e) = self.epoch.as_mut() {
                e.start += now.saturating_since(e.last);
                e.last = now;
            }
            return;
        }
        if self.w.in_slow_start() {
            self.w.slow_start(bytes_acked);
            return;
        }
        let cwnd = self.segments(self.w.cwnd).max(1.0);
        let epoch = **self.epoch.get_or_insert_with(|| {
            // RFC 9438 §4.2: a new congestion-avoidance stage begins: t_epoch = now,
            // cwnd_epoch = cwnd; K from W_max, or 0 with the curve anchored at cwnd when
            // there is no larger W_max (the first stage, or after a timeout: §4.8).
            let k = k_seconds(self.w_max, cwnd);
            Box::new(Epoch {
                start: now,
                last: now,
                k,
                origin: if k > 0.0 { self.w_max } else { cwnd },
                w_est: cwnd,
            })
        });
        let w_cubic = |t: f64| C * (t - epoch.k).powi(3) + epoch.origin;
        let t = now.saturating_since(epoch.start).as_secs_f64();
        let rtt = srtt.map_or(0.0, |d| d.as_secs_f64());
        let acked = self.segments(bytes_acked);

        // RFC 9438 §4.3: W_est grows like Reno with α_cubic per RTT, and with α = 1 once it
        // has reached the window at the last reduction.
        let alpha = if epoch.w_est >= self.cwnd_prior {
            1.0
        } else {
            ALPHA
        };
        let w_est = epoch.w_est + alpha * acked / cwnd;

        let new_cwnd = if w_cubic(t) < w_est {
            // RFC 9438 §4.3: the Reno-friendly region: cwnd = W_est.
            w_est.max(cwnd)
        } else {
            // RFC 9438 §4.4/§4.5 (concave and convex regions): target = W_cubic(t + RTT),
            // clamped to [cwnd, 1.5·cwnd]; cwnd grows by (target − cwnd)/cwnd per segment
            // acknowledged.
            let target = w_cubic(t + rtt).clamp(cwnd, 1.5 * cwnd);
            cwnd + (target - cwnd) / cwnd * acked
        };
        // Departure, as Linux (`bictcp_update`: "the initial growth of cubic function may be
        // too conservative when the available bandwidth is still unknown", cnt ≤ 20): while
        // no W_max is known (slow start was left without a loss, by HyStart++, or after a
        // timeout), cwnd grows by at least one segment per 20 acknowledged, 5 % a round
        // trip. RFC 9438's curve from K = 0 adds 0.4 segment in the first second; a flow
        // that HyStart++ stopped at half a 100 Mbit/s × 40 ms path stayed there (issue 19's
        // loss suite).
        let new_cwnd = if self.w_max <= 0.0 {
            new_cwnd.max(cwnd + acked / 20.0)
        } else {
            new_cwnd
        };
        if let Some(e) = self.epoch.as_mut() {
            e.w_est = w_est;
            e.last = now;
        }
        // Keep sub-byte growth so many small ACKs add up.
        let grow = (new_cwnd - cwnd) * f64::from(self.w.smss) + self.frac;
        let whole = grow.floor().max(0.0);
        self.frac = if grow.is_finite() { grow - whole } else { 0.0 };
        self.w.cwnd = self.w.cwnd.saturating_add(to_u32(whole));
    }

    /// RFC 9438 §4.6 (multiplicative decrease) and §4.7 (fast convergence).
    fn reduce(&mut self, flight_size: u32) -> u32 {
        let cwnd = self.segments(self.w.cwnd);
        // §4.7: a window that peaked below the previous W_max signals a new flow competing:
        // release bandwidth sooner by remembering a lower maximum.
        self.w_max = if cwnd < self.w_max {
            cwnd * (1.0 + BETA) / 2.0
        } else {
            cwnd
        };
        self.cwnd_prior = cwnd;
        self.epoch = None;
        self.frac = 0.0;
        // §4.6: ssthresh = flight_size · β_cubic (at least 2·SMSS, applied by `Window`).
        to_u32(f64::from(flight_size) * BETA)
    }

    pub(super) fn enter_recovery(&mut self, _now: Instant, flight_size: u32) {
        let ssthresh = self.reduce(flight_size);
        self.w.enter_recovery(ssthresh);
    }

    /// RFC 9438 §4.8: on a timeout, cwnd = 1 SMSS (RFC 5681) but ssthresh is set with β_cubic;
    /// the first congestion-avoidance stage afterwards uses K = 0 and W_max = the window at its
    /// start.
    pub(super) fn on_rto(&mut self, _now: Instant, flight_size: u32) {
        let ssthresh = self.reduce(flight_size);
        self.w_max = 0.0;
        self.w.on_rto(ssthresh);
    }
}

/// A float to bytes: saturating, NaN to 0.
fn to_u32(x: f64) -> u32 {
    x as u32
}

#[cfg(test)]
mod tests {
    use super::super::{CcKind, CongestionControl};
    use super::*;

    const MSS: u32 = 1000;

    fn cubic(cc: &CongestionControl) -> &Cubic {
        match cc {
            CongestionControl::Cubic(c) => c,
            CongestionControl::NewReno(_) => unreachable!(),
        }
    }

    /// A window-limited sender: one round trip of `rtt`, an ACK per segment. Returns the time
    /// after it.
    fn round_trip(cc: &mut CongestionControl, now: Instant, rtt: Duration) -> Instant {
        let flight = cc.cwnd();
        let acks = (flight / MSS).max(1);
        let step = rtt / acks;
        let mut t = now;
        for _ in 0..acks {
            t += step;
            cc.on_ack(t, MSS, Some(rtt), flight);
        }
        now + rtt
    }

    /// Slow start to 100 segments, lose, recover: in congestion avoidance at 70 segments with
    /// W_max = 100.
    fn after_loss_at_100(now: Instant) -> CongestionControl {
        let mut cc = CongestionControl::new(CcKind::Cubic, MSS);
        let mut t = now;
        while cc.cwnd() < 100 * MSS {
            t = round_trip(&mut cc, t, Duration::from_millis(10));
        }
        // Trim to exactly 100 segments for round numbers.
        if let CongestionControl::Cubic(c) = &mut cc {
            c.w.cwnd = 100 * MSS;
        }
        cc.enter_recovery(now, 100 * MSS);
        cc.on_recovery_exit(now);
        cc
    }

    #[test]
    fn k_for_known_inputs() {
        // W_max = 100, cwnd_epoch = 70: K = ∛(30 / 0.4) = ∛75 ≈ 4.2172 s.
        assert!((k_seconds(100.0, 70.0) - 4.2172).abs() < 1e-4);
        // The classic form: K = ∛(W_max·(1 − β)/C).
        assert!((k_seconds(10.0, 7.0) - (10.0 * 0.3 / 0.4f64).cbrt()).abs() < 1e-12);
        assert_eq!(k_seconds(50.0, 60.0), 0.0);
        assert!((ALPHA - 0.5294).abs() < 1e-4);
    }

    #[test]
    fn loss_multiplies_by_beta_and_remembers_w_max() {
        let cc = after_loss_at_100(Instant::ZERO);
        assert_eq!(cc.ssthresh(), 70 * MSS);
        assert_eq!(cc.cwnd(), 70 * MSS);
        assert_eq!(cubic(&cc).w_max(), 100 * MSS);
    }

    #[test]
    fn fast_convergence_lowers_w_max_when_the_peak_fell_short() {
        let mut cc = after_loss_at_100(Instant::ZERO);
        // A second loss at 80 segments, below W_max = 100: W_max = 80·(1 + 0.7)/2 = 68.
        if let CongestionControl::Cubic(c) = &mut cc {
            c.w.cwnd = 80 * MSS;
        }
        cc.enter_recovery(Instant::ZERO, 80 * MSS);
        assert_eq!(cubic(&cc).w_max(), 68 * MSS);
        assert_eq!(cc.ssthresh(), 56 * MSS);
        assert_eq!(cc.cwnd(), 56 * MSS);
    }

    #[test]
    fn growth_is_concave_up_to_w_max_then_convex() {
        let rtt = Duration::from_millis(100);
        let mut cc = after_loss_at_100(Instant::ZERO);
        let mut t = Instant::ZERO;
        let mut windows = vec![cc.cwnd()];
        // 8 s: K ≈ 4.2 s is in the middle.
        for _ in 0..80 {
            t = round_trip(&mut cc, t, rtt);
            windows.push(cc.cwnd());
        }
        let k = cubic(&cc).k().unwrap().as_secs_f64();
        assert!((k - 4.2172).abs() < 0.01, "K = {k}");
        let w = |s: f64| windows[(s / 0.1) as usize] as f64 / f64::from(MSS);
        // Near K the window sits at W_max.
        assert!((w(k) - 100.0).abs() < 3.0, "w(K) = {}", w(k));
        // Concave before: the growth in the first second beats the growth in the second before K.
        assert!(w(1.0) - w(0.0) > w(k) - w(k - 1.0));
        // Convex after: the growth keeps accelerating.
        assert!(w(k + 2.0) - w(k + 1.0) > w(k + 1.0) - w(k));
        assert!(w(8.0) - w(7.0) > w(k + 2.0) - w(k + 1.0));
        // It never shrinks in congestion avoidance.
        assert!(windows.windows(2).all(|p| p[1] >= p[0]));
        // And is in the ballpark of the formula 3 s after K: W_max + C·3³ = 110.8.
        let expect = 100.0 + C * 27.0;
        assert!(
            (w(k + 3.0) - expect).abs() < 4.0,
            "{} vs {expect}",
            w(k + 3.0)
        );
    }

    #[test]
    fn without_a_known_w_max_the_window_grows_at_least_5_percent_a_round_trip() {
        // Slow start left at 100 segments without a loss (HyStart++): W_max unknown.
        let mut cc = CongestionControl::new(CcKind::Cubic, MSS);
        if let CongestionControl::Cubic(c) = &mut cc {
            c.w.cwnd = 100 * MSS;
            c.w.ssthresh = 100 * MSS;
        }
        let mut t = Instant::ZERO;
        for _ in 0..20 {
            t = round_trip(&mut cc, t, Duration::from_millis(40));
        }
        // 1.05^20 ≈ 2.65; the curve from K = 0 and W_est alone would give about 111.
        let segs = f64::from(cc.cwnd()) / f64::from(MSS);
        assert!(segs > 240.0, "cwnd = {segs}");
        // With a W_max (after a loss) the curve alone rules: concave toward it.
        let mut cc = after_loss_at_100(Instant::ZERO);
        for _ in 0..20 {
            t = round_trip(&mut cc, t, Duration::from_millis(40));
        }
        assert!(cc.cwnd() < 90 * MSS, "cwnd = {}", cc.cwnd() / MSS);
    }

    #[test]
    fn short_rtts_put_cubic_in_the_reno_friendly_region() {
        // At 1 ms RTT the curve would take K ≈ 4.2 s (4200 round trips) to return to W_max;
        // an AIMD flow with the same β grows α ≈ 0.53 segments per round trip, much faster.
        let rtt = Duration::from_millis(1);
        let mut cc = after_loss_at_100(Instant::ZERO);
        let mut t = Instant::ZERO;
        for _ in 0..20 {
            t = round_trip(&mut cc, t, rtt);
        }
        let segs = f64::from(cc.cwnd()) / f64::from(MSS);
        // 20 round trips · 0.53 ≈ 10.6 segments; the cubic curve alone gives well under 1.
        assert!((segs - (70.0 + 20.0 * ALPHA)).abs() < 1.5, "cwnd = {segs}");
        // Past cwnd_prior (100), α becomes 1: one segment per round trip.
        while cc.cwnd() < 101 * MSS {
            t = round_trip(&mut cc, t, rtt);
        }
        let before = cc.cwnd();
        for _ in 0..10 {
            t = round_trip(&mut cc, t, rtt);
        }
        let per_rtt = f64::from(cc.cwnd() - before) / f64::from(MSS) / 10.0;
        assert!((per_rtt - 1.0).abs() < 0.2, "{per_rtt} segments per RTT");
    }

    #[test]
    fn a_timeout_collapses_to_one_segment_and_restarts_the_curve_at_k_zero() {
        let mut cc = after_loss_at_100(Instant::ZERO);
        cc.on_rto(Instant::ZERO, 70 * MSS);
        assert_eq!(cc.cwnd(), MSS);
        assert_eq!(cc.ssthresh(), 49 * MSS);
        let mut t = Instant::ZERO;
        while cc.in_slow_start() {
            t = round_trip(&mut cc, t, Duration::from_millis(100));
        }
        // Slow start stopped at ssthresh; the rest of that round trip was already linear.
        assert!((49 * MSS..50 * MSS).contains(&cc.cwnd()), "{}", cc.cwnd());
        t = round_trip(&mut cc, t, Duration::from_millis(100));
        assert_eq!(cubic(&cc).k(), Some(Duration::ZERO));
        // Convex from the start: growth accelerates.
        let a = cc.cwnd();
        for _ in 0..10 {
            t = round_trip(&mut cc, t, Duration::from_millis(100));
        }
        let b = cc.cwnd();
        for _ in 0..10 {
            t = round_trip(&mut cc, t, Duration::from_millis(100));
        }
        let c = cc.cwnd();
        assert!(c - b > b - a);
    }

    #[test]
    fn application_limited_time_does_not_advance_the_curve() {
        let rtt = Duration::from_millis(100);
        let mut a = after_loss_at_100(Instant::ZERO);
        let mut b = a.clone();
        let mut ta = Instant::ZERO;
        let mut tb = Instant::ZERO;
        ta = round_trip(&mut a, ta, rtt);
        tb = round_trip(&mut b, tb, rtt);
        // b idles for 3 s with a trickle in flight: its window must not grow.
        let before = b.cwnd();
        for _ in 0..30 {
            tb += rtt;
            b.on_ack(tb, MSS, Some(rtt), MSS);
        }
        assert_eq!(b.cwnd(), before);
        // Afterwards both follow the same curve.
        for _ in 0..10 {
            ta = round_trip(&mut a, ta, rtt);
            tb = round_trip(&mut b, tb, rtt);
        }
        let diff = (i64::from(a.cwnd()) - i64::from(b.cwnd())).abs();
        assert!(diff < i64::from(2 * MSS), "{} vs {}", a.cwnd(), b.cwnd());
    }
}
