//! HyStart++ (RFC 9406): leave slow start when the RTT starts to grow (a queue is forming),
//! before the first loss, through a phase of cautious growth (Conservative Slow Start, CSS)
//! in case the RTT rise was noise. For CUBIC and NewReno alike; only in the initial slow
//! start (RFC 9406 §4.2 allows it after a timeout too; we do not).
//!
//! Departure: Linux still uses the older HyStart (`tcp_cubic.c`: ACK trains and delay, and
//! straight to congestion avoidance); we follow the RFC for the delay, and add Linux's ACK
//! train test beside it (below).
//!
//! The ACK train (departure from RFC 9406, as Linux's HyStart does it): when the ACKs of one
//! round keep coming, each within [`ACK_TRAIN_GAP`] of the last, for half the path's minimum
//! RTT, the bottleneck has been busy for half a round trip: slow start ends there (ssthresh =
//! cwnd). RFC 9406's delay test does not see a shallow queue that drains between flights:
//! through 100 Mbit/s at 40 ms with a 100-packet queue (a third of the BDP), each round's
//! first ACKs find the queue empty. The train ends slow start at about one and a half BDPs
//! there (487 segments in the simulation, 489 through the loss suite's bridge, where Linux's
//! `TCPHystartTrainCwnd` read 493), and the overflow's reduction leaves cwnd at about the
//! BDP, as Linux's does (issue 19's bottleneck row). Only from 16 segments
//! (Linux's `hystart_low_window`) and on paths whose minimum RTT is at least
//! [`ACK_TRAIN_MIN_RTT`]: below that the train's length is the event loop's batching, not
//! the path (Linux has no such floor and leaves slow start early on short paths).

use crate::seqnum::SeqNum;
use crate::time::{Duration, Instant};

/// RFC 9406 §4.3 constants.
const MIN_RTT_THRESH: Duration = Duration::from_millis(4);
const MAX_RTT_THRESH: Duration = Duration::from_millis(16);
const MIN_RTT_DIVISOR: u32 = 8;
const N_RTT_SAMPLE: u32 = 8;
/// CSS grows cwnd by a quarter of what slow start would.
pub const CSS_GROWTH_DIVISOR: u32 = 4;
const CSS_ROUNDS: u32 = 5;
/// ACK train: the largest gap between two ACKs of one train (Linux's `hystart_ack_delta`,
/// 2 ms).
const ACK_TRAIN_GAP: Duration = Duration::from_millis(2);
/// ACK train: the smallest window it is tested at, in segments (Linux's
/// `hystart_low_window`).
const ACK_TRAIN_LOW_WINDOW: u32 = 16;
/// ACK train: the shortest minimum RTT it is tested on (twice the gap: a train must be able
/// to last longer than one gap).
const ACK_TRAIN_MIN_RTT: Duration = Duration::from_millis(4);

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
    /// A round's ACK train lasted half the minimum RTT: congestion avoidance (ssthresh =
    /// cwnd), as Linux's HyStart.
    AckTrain,
}

/// What HyStart needs from one ACK.
#[derive(Clone, Copy, Debug)]
pub struct AckInfo {
    /// The ACK field, and SND.NXT when it arrived.
    pub ack: SeqNum,
    pub snd_nxt: SeqNum,
    /// An RTT sample from this ACK, if any.
    pub rtt: Option<Duration>,
    pub now: Instant,
    /// The path's smallest RTT so far.
    pub min_rtt: Option<Duration>,
    /// cwnd in segments.
    pub cwnd_segments: u32,
}

#[derive(Clone, Copy, Debug, Default)]
pub struct HyStart {
    /// windowEnd: SND.NXT when the round began; the round ends when the byte at windowEnd
    /// (the first sent after the round began) is acknowledged.
    window_end: Option<SeqNum>,
    last_round_min: Option<Duration>,
    current_round_min: Option<Duration>,
    samples: u32,
    /// cssBaselineMinRtt; `Some` while in CSS.
    css_baseline: Option<Duration>,
    css_rounds: u32,
    /// When this round's first ACK came, and the last ACK of its train.
    round_start: Option<Instant>,
    train_last: Option<Instant>,
    /// HyStart++ is over for this connection (congestion avoidance or a loss).
    pub done: bool,
}

impl HyStart {
    pub fn in_css(&self) -> bool {
        self.css_baseline.is_some()
    }

    /// RFC 9406 §4.2: an ACK in (initial) slow start or CSS: `ack` its ACK field, `snd_nxt`,
    /// `rtt` an RTT sample from it, if any.
    pub fn on_ack(&mut self, a: AckInfo) -> Step {
        let AckInfo {
            ack,
            snd_nxt,
            rtt,
            now,
            ..
        } = a;
        if self.done {
            return Step::Stay;
        }
        let mut step = Step::Stay;
        // RFC 9406 §4.2: "When windowEnd is ACKed, the current round ends and windowEnd is set
        // to SND.NXT": the byte numbered windowEnd, the first sent after the round began, is
        // acknowledged (SEG.ACK > windowEnd, as Linux's `after(snd_una, end_seq)`). So a round
        // starts with the first ACK of a flight's train, whose RTT samples see the queue at
        // its shortest. Not SEG.ACK >= windowEnd: that ACK covers data sent before the round
        // began, and since SND.NXT is read before this ACK's own answer is sent (a batch of
        // ACKs is read before anything is sent), each round began earlier in the previous
        // train than the one before, the distance doubling every round: by the sixth round
        // its first eight samples were the previous train's tail, queued behind a whole
        // flight, and the delay test fired on a queue that drains every round (issue 19's
        // bottleneck row: CSS at 270 segments where the BDP is 345).
        // A new round: "lastRoundMinRTT = currentRoundMinRTT; currentRoundMinRTT = infinity;
        // rttSampleCount = 0".
        if self.window_end.is_none_or(|end| ack.gt(end)) {
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
            self.round_start = Some(now);
            self.train_last = Some(now);
        } else if self.ack_train(&a) {
            self.done = true;
            return Step::AckTrain;
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

    /// Linux's ACK-train test (see the module docs): whether this ACK, within
    /// [`ACK_TRAIN_GAP`] of the train's last, makes the round's train half a minimum RTT long.
    /// The round is RFC 9406's: it starts with the first ACK of a flight, as Linux's
    /// `end_seq` round does.
    fn ack_train(&mut self, a: &AckInfo) -> bool {
        let (Some(start), Some(last), Some(min_rtt)) =
            (self.round_start, self.train_last, a.min_rtt)
        else {
            return false;
        };
        if a.cwnd_segments < ACK_TRAIN_LOW_WINDOW
            || min_rtt < ACK_TRAIN_MIN_RTT
            || a.now.saturating_since(last) > ACK_TRAIN_GAP
        {
            return false;
        }
        self.train_last = Some(a.now);
        a.now.saturating_since(start) >= min_rtt / 2
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An ACK with an RTT sample, on a short path (no ACK train test) at a fixed time.
    fn at(ack: SeqNum, snd_nxt: SeqNum, rtt: Duration) -> AckInfo {
        AckInfo {
            ack,
            snd_nxt,
            rtt: Some(rtt),
            now: Instant::from_millis(1000),
            min_rtt: Some(Duration::from_millis(1)),
            cwnd_segments: 100,
        }
    }

    #[test]
    fn a_rising_rtt_leads_through_css_to_congestion_avoidance() {
        let s = |n: u32| SeqNum::new(1000).add(n);
        let ms = Duration::from_millis;
        let mut h = HyStart::default();
        // Round 1 (up to 100): 40 ms.
        assert_eq!(h.on_ack(at(s(0), s(100), ms(40))), Step::Stay);
        for k in 1..10 {
            h.on_ack(at(s(k), s(100), ms(40)));
        }
        // Round 2 (up to 300): 44 ms is within the threshold (40 / 8 = 5 ms).
        for k in 100..110 {
            assert_eq!(h.on_ack(at(s(k), s(300), ms(44))), Step::Stay);
        }
        // Round 3: 50 ms ≥ 44 + 5.5: CSS on the eighth sample.
        let steps: Vec<_> = (300..310)
            .map(|k| h.on_ack(at(s(k), s(600), ms(50))))
            .collect();
        assert_eq!(steps.iter().filter(|&&x| x == Step::EnterCss).count(), 1);
        assert!(h.in_css());
        // Five more rounds of CSS: congestion avoidance.
        let mut end = 600;
        let mut last = Step::Stay;
        for _ in 0..5 {
            last = h.on_ack(at(s(end + 1), s(end + 300), ms(50)));
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
            h.on_ack(at(s(k), s(100), ms(40)));
        }
        for k in 100..110 {
            h.on_ack(at(s(k), s(300), ms(50)));
        }
        assert!(h.in_css());
        // The round ends with the first ACK beyond 300.
        assert_eq!(h.on_ack(at(s(300), s(600), ms(50))), Step::Stay);
        for k in 301..310 {
            h.on_ack(at(s(k), s(600), ms(41)));
        }
        assert_eq!(h.on_ack(at(s(601), s(900), ms(41))), Step::ResumeSlowStart);
        assert!(!h.in_css());
    }

    /// Slow start through a queue that drains between flights: each flight's ACKs come as a
    /// train whose RTT rises along it (40 ms, then 0.06 ms more per segment queued ahead)
    /// and falls back to 40 ms at the next train's first ACK. ACKs are read two at a time
    /// (within a train) before anything is sent, so SND.NXT lags two ACKs' answers. The
    /// rounds must start with each train's first ACK; when they began with the ACK that
    /// covers windowEnd, they slid back into the previous train's tail a little further
    /// every round, and by the fifth the delay test saw only queued samples and entered CSS.
    #[test]
    fn rounds_start_with_a_train_s_first_ack_even_when_snd_nxt_lags() {
        let s = |n: u32| SeqNum::new(1000).add(n);
        // Trains of segments: 1..=10, 11..=30, 31..=70, ...: each ACK asks for two more.
        let mut trains = vec![(1u32, 10u32)];
        while trains.len() < 6 {
            let &(start, end) = trains.last().unwrap_or(&(1, 10));
            trains.push((end + 1, end + 2 * (end - start + 1)));
        }
        let mut h = HyStart::default();
        let mut answered = 0; // ACKs whose answers have been sent
        for &(start, end) in &trains {
            for n in start..=end {
                // A batch of two ACKs is read before the answers to either are sent.
                if (n - start) % 2 == 0 {
                    answered = n - 1;
                }
                let rtt = Duration::from_micros(40_000 + 60 * u64::from(n - start));
                let step = h.on_ack(at(s(n), s(10 + 2 * answered), rtt));
                assert_ne!(step, Step::EnterCss, "at the ACK of segment {n}");
            }
        }
        assert!(!h.in_css());
    }

    /// Linux's ACK train: ACKs of one round each within 2 ms of the last, for half the
    /// minimum RTT, end slow start; a gap breaks the train; not below 16 segments or on a
    /// path shorter than 4 ms.
    #[test]
    fn an_ack_train_of_half_the_minimum_rtt_ends_slow_start() {
        let s = |n: u32| SeqNum::new(1000).add(n);
        let ack = |h: &mut HyStart, k: u32, us: u64, min_ms: u64, cwnd: u32| {
            h.on_ack(AckInfo {
                ack: s(k),
                snd_nxt: s(100_000),
                rtt: None,
                now: Instant::from_millis(1000) + Duration::from_micros(us),
                min_rtt: Some(Duration::from_millis(min_ms)),
                cwnd_segments: cwnd,
            })
        };
        // 40 ms path: ACKs every 1 ms; the 20th ms ends it.
        let mut h = HyStart::default();
        for k in 0..20 {
            assert_eq!(
                ack(&mut h, k, u64::from(k) * 1000, 40, 100),
                Step::Stay,
                "{k}"
            );
        }
        assert_eq!(ack(&mut h, 20, 20_000, 40, 100), Step::AckTrain);
        assert!(h.done);
        // A 3 ms gap breaks the train: no exit in that round.
        let mut h = HyStart::default();
        for k in 0..10 {
            ack(&mut h, k, u64::from(k) * 1000, 40, 100);
        }
        for k in 10..40 {
            assert_eq!(
                ack(&mut h, k, 3_000 + u64::from(k) * 1000, 40, 100),
                Step::Stay
            );
        }
        // A small window, or a short path: never.
        for (min_ms, cwnd) in [(40, 15), (3, 100)] {
            let mut h = HyStart::default();
            for k in 0..100 {
                assert_eq!(ack(&mut h, k, u64::from(k) * 100, min_ms, cwnd), Step::Stay);
            }
        }
    }
}
