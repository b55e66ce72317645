//! HyStart++ (RFC 9406): leave slow start when the RTT starts to grow (a queue is forming),
//! before the first loss, through a phase of cautious growth (Conservative Slow Start, CSS)
//! in case the RTT rise was noise. For CUBIC and NewReno alike; only in the initial slow
//! start (RFC 9406 §4.2 allows it after a timeout too; we do not).
//!
//! Departure: Linux still uses the older HyStart (`tcp_cubic.c`: ACK trains and delay, and
//! straight to congestion avoidance); we follow the RFC.

use crate::seqnum::SeqNum;
use crate::time::Duration;

/// RFC 9406 §4.3 constants.
const MIN_RTT_THRESH: Duration = Duration::from_millis(4);
const MAX_RTT_THRESH: Duration = Duration::from_millis(16);
const MIN_RTT_DIVISOR: u32 = 8;
const N_RTT_SAMPLE: u32 = 8;
/// CSS grows cwnd by a quarter of what slow start would.
pub const CSS_GROWTH_DIVISOR: u32 = 4;
const CSS_ROUNDS: u32 = 5;

/// What an ACK tells the controller to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// Nothing new.
    Stay,
    /// The RTT rose: Conservative Slow Start.
    EnterCss,
    /// The RTT fell again during CSS: back to slow start.
    ResumeSlowStart,
    /// CSS lasted CSS_ROUNDS rounds: congestion avoidance (ssthresh = cwnd).
    EnterCongestionAvoidance,
}

#[derive(Clone, Copy, Debug, Default)]
pub struct HyStart {
    /// windowEnd: the round ends when an ACK covers it.
    window_end: Option<SeqNum>,
    last_round_min: Option<Duration>,
    current_round_min: Option<Duration>,
    samples: u32,
    /// cssBaselineMinRtt; `Some` while in CSS.
    css_baseline: Option<Duration>,
    css_rounds: u32,
    /// HyStart++ is over for this connection (congestion avoidance or a loss).
    pub done: bool,
}

impl HyStart {
    pub fn in_css(&self) -> bool {
        self.css_baseline.is_some()
    }

    /// RFC 9406 §4.2: an ACK in (initial) slow start or CSS: `ack` its ACK field, `snd_nxt`,
    /// `rtt` an RTT sample from it, if any.
    pub fn on_ack(&mut self, ack: SeqNum, snd_nxt: SeqNum, rtt: Option<Duration>) -> Step {
        if self.done {
            return Step::Stay;
        }
        let mut step = Step::Stay;
        // A new round: "lastRoundMinRTT = currentRoundMinRTT; currentRoundMinRTT = infinity;
        // rttSampleCount = 0".
        if self.window_end.is_none_or(|end| ack.ge(end)) {
            if self.window_end.is_some() {
                if let Some(baseline) = self.css_baseline {
                    self.css_rounds += 1;
                    if self.current_round_min.is_some_and(|m| m < baseline) {
                        self.css_baseline = None;
                        self.css_rounds = 0;
                        step = Step::ResumeSlowStart;
                    } else if self.css_rounds >= CSS_ROUNDS {
                        self.done = true;
                        return Step::EnterCongestionAvoidance;
                    }
                }
                self.last_round_min = self.current_round_min;
            }
            self.window_end = Some(snd_nxt);
            self.current_round_min = None;
            self.samples = 0;
        }
        if let Some(r) = rtt {
            self.current_round_min = Some(self.current_round_min.map_or(r, |m| m.min(r)));
            self.samples += 1;
        }
        if self.css_baseline.is_none()
            && self.samples >= N_RTT_SAMPLE
            && let (Some(cur), Some(last)) = (self.current_round_min, self.last_round_min)
        {
            let thresh = (last / MIN_RTT_DIVISOR).clamp(MIN_RTT_THRESH, MAX_RTT_THRESH);
            if cur >= last + thresh {
                self.css_baseline = Some(cur);
                self.css_rounds = 0;
                return Step::EnterCss;
            }
        }
        step
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rising_rtt_leads_through_css_to_congestion_avoidance() {
        let s = |n: u32| SeqNum::new(1000).add(n);
        let ms = Duration::from_millis;
        let mut h = HyStart::default();
        // Round 1 (up to 100): 40 ms.
        assert_eq!(h.on_ack(s(0), s(100), Some(ms(40))), Step::Stay);
        for k in 1..10 {
            h.on_ack(s(k), s(100), Some(ms(40)));
        }
        // Round 2 (up to 300): 44 ms is within the threshold (40 / 8 = 5 ms).
        for k in 100..110 {
            assert_eq!(h.on_ack(s(k), s(300), Some(ms(44))), Step::Stay);
        }
        // Round 3: 50 ms ≥ 44 + 5.5: CSS on the eighth sample.
        let steps: Vec<_> = (300..310)
            .map(|k| h.on_ack(s(k), s(600), Some(ms(50))))
            .collect();
        assert_eq!(steps.iter().filter(|&&x| x == Step::EnterCss).count(), 1);
        assert!(h.in_css());
        // Five more rounds of CSS: congestion avoidance.
        let mut end = 600;
        let mut last = Step::Stay;
        for _ in 0..5 {
            last = h.on_ack(s(end), s(end + 300), Some(ms(50)));
            end += 300;
        }
        assert_eq!(last, Step::EnterCongestionAvoidance);
        assert!(h.done);
    }

    #[test]
    fn an_rtt_that_falls_again_in_css_resumes_slow_start() {
        let s = |n: u32| SeqNum::new(1000).add(n);
        let ms = Duration::from_millis;
        let mut h = HyStart::default();
        for k in 0..10 {
            h.on_ack(s(k), s(100), Some(ms(40)));
        }
        for k in 100..110 {
            h.on_ack(s(k), s(300), Some(ms(50)));
        }
        assert!(h.in_css());
        for k in 300..310 {
            h.on_ack(s(k), s(600), Some(ms(41)));
        }
        assert_eq!(
            h.on_ack(s(600), s(900), Some(ms(41))),
            Step::ResumeSlowStart
        );
        assert!(!h.in_css());
    }
}
