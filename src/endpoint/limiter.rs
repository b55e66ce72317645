//! The global challenge-ACK budget (RFC 5961 §7).

use crate::time::{Duration, Instant};

/// At most a randomized number of challenge ACKs per second, for all connections together.
///
/// RFC 5961 §7 recommends a limit. A fixed global limit is itself a side channel
/// (CVE-2016-5696: an off-path attacker counts the challenge ACKs it provokes), so, as Linux
/// has done since then (tcp_send_challenge_ack), each one-second window gets a budget drawn
/// uniformly from [limit/2, limit/2 + limit). A connection asks only after its own limit of
/// one challenge ACK per 500 ms has let the ACK through (`tcp::input`, Linux's
/// `tcp_invalid_ratelimit`), so one connection cannot spend the whole budget.
pub struct ChallengeLimiter {
    limit: u32,
    window_start: Option<Instant>,
    remaining: u32,
    rng: u64,
}

impl ChallengeLimiter {
    /// Linux's net.ipv4.tcp_challenge_ack_limit before it became per-socket (1000 per second).
    pub const DEFAULT_LIMIT: u32 = 1000;

    pub fn new(limit: u32, seed: u64) -> Self {
        ChallengeLimiter {
            limit,
            window_start: None,
            remaining: 0,
            // xorshift64* must not start at zero.
            rng: seed | 1,
        }
    }

    /// May a challenge ACK be sent at `now`? Counts it if so.
    pub fn allow(&mut self, now: Instant) -> bool {
        let fresh = self
            .window_start
            .is_none_or(|start| now.saturating_since(start) >= Duration::from_secs(1));
        if fresh {
            self.window_start = Some(now);
            let half = self.limit.div_ceil(2);
            let jitter = if self.limit == 0 {
                0
            } else {
                (self.next_random() % u64::from(self.limit)) as u32
            };
            self.remaining = half.saturating_add(jitter);
        }
        if self.remaining == 0 {
            return false;
        }
        self.remaining -= 1;
        true
    }

    /// xorshift64* (Vigna): the budget needs to be unpredictable to an off-path observer, not
    /// cryptographic; it is seeded from the per-process secret.
    fn next_random(&mut self) -> u64 {
        let mut x = self.rng;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn budget(l: &mut ChallengeLimiter, now: Instant) -> u32 {
        let mut n = 0;
        while l.allow(now) {
            n += 1;
            assert!(n < 10_000);
        }
        n
    }

    #[test]
    fn each_second_gets_a_random_budget_between_half_and_one_and_a_half_limits() {
        let mut l = ChallengeLimiter::new(1000, 42);
        let mut seen = std::collections::HashSet::new();
        for s in 0..20 {
            let n = budget(&mut l, Instant::from_millis(s * 1000));
            assert!((500..1500).contains(&n), "{n}");
            seen.insert(n);
        }
        assert!(seen.len() > 10, "the budget varies from second to second");
    }

    #[test]
    fn an_exhausted_budget_refills_only_after_a_second() {
        let mut l = ChallengeLimiter::new(10, 7);
        budget(&mut l, Instant::from_millis(0));
        assert!(!l.allow(Instant::from_millis(999)));
        assert!(l.allow(Instant::from_millis(1000)));
    }
}
