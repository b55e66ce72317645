//! How much of the congestion window a round trip used, for the "is the window being used?"
//! test that gates its growth (RFC 7661 §4.3; RFC 5681 §3.1 and RFC 9438 §5.8 say an
//! application-limited flow must not grow it).
//!
//! The flight left after each ACK is the wrong measure: when a round's ACKs arrive in one
//! batch, before anything more is sent, the flight shrinks ACK by ACK and growth stopped
//! half-way (issue 19: slow start grew 1.4× per round trip instead of 2×). As Linux
//! (`tcp_cwnd_validate` keeps `max_packets_out`, the largest flight since `cwnd_usage_seq`;
//! `tcp_is_cwnd_limited` compares cwnd with twice it), the test looks at the largest flight
//! of the round: a round ends when SND.UNA passes what had been sent when it began.

use crate::seqnum::SeqNum;

#[derive(Clone, Copy, Debug)]
pub struct CwndUsage {
    /// The largest flight (SND.NXT − SND.UNA after a send) since the round began.
    max_flight: u32,
    /// SND.NXT when the round began: the round is over once SND.UNA reaches it (Linux:
    /// `cwnd_usage_seq`).
    round_end: SeqNum,
}

impl CwndUsage {
    pub fn new(iss: SeqNum) -> Self {
        CwndUsage {
            max_flight: 0,
            round_end: iss,
        }
    }

    /// Something was sent: SND.UNA and SND.NXT after it. A new round starts (and forgets
    /// the last one's largest flight) once the previous one is acknowledged.
    pub fn on_send(&mut self, snd_una: SeqNum, snd_nxt: SeqNum) {
        let flight = snd_nxt.distance_from(snd_una);
        if self.round_end.le(snd_una) || flight > self.max_flight {
            self.max_flight = flight;
            self.round_end = snd_nxt;
        }
    }

    /// The flight that tells whether the window is being used: the largest of this round,
    /// or `flight_now` if larger.
    pub fn flight(&self, flight_now: u32) -> u32 {
        self.max_flight.max(flight_now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_largest_flight_of_the_round_is_kept_until_the_round_is_acknowledged() {
        let s = |n: u32| SeqNum::new(u32::MAX - 10).add(n);
        let mut u = CwndUsage::new(s(0));
        u.on_send(s(0), s(10));
        // A batch of ACKs: the flight left shrinks to 2, the round's stays 10.
        assert_eq!(u.flight(2), 10);
        // More sent before the round ends: the larger flight counts.
        u.on_send(s(4), s(16));
        assert_eq!(u.flight(0), 12);
        // A smaller flight in the same round does not lower it.
        u.on_send(s(14), s(17));
        assert_eq!(u.flight(3), 12);
        // The round (up to 16) is acknowledged: the next send starts a new one.
        u.on_send(s(16), s(18));
        assert_eq!(u.flight(2), 2);
    }
}
