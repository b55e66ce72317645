//! Proportional Rate Reduction (RFC 9937): during fast recovery, how much may be sent on
//! each ACK, so that what is in flight falls smoothly to ssthresh (not all at once, as
//! setting cwnd to ssthresh did: then nothing went out until the pipe drained below it) and
//! ends there, in step with what the ACKs say was delivered.

/// PRR's state for one recovery episode (bytes).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Prr {
    /// prr_delivered: bytes delivered to the receiver since recovery began.
    delivered: u64,
    /// prr_out: bytes sent since recovery began.
    out: u64,
    /// RecoverFS: the flight the reduction is proportional to. Departure: the congestion
    /// window before the reduction, as Linux's `prior_cwnd` (RFC 9937 uses the pipe when
    /// recovery begins, RFC 6937 SND.NXT − SND.UNA).
    recover_fs: u64,
}

impl Prr {
    /// Recovery begins (RFC 9937 §6 "On entering fast recovery").
    pub fn start(prior_cwnd: u32) -> Prr {
        Prr {
            delivered: 0,
            out: 0,
            recover_fs: u64::from(prior_cwnd).max(1),
        }
    }

    /// Bytes sent (new or retransmitted) during recovery.
    pub fn on_sent(&mut self, bytes: u32) {
        self.out = self.out.saturating_add(u64::from(bytes));
    }

    /// RFC 9937 §6 "On every ACK starting or during fast recovery": `delivered` the bytes
    /// this ACK newly acknowledged or SACKed, `pipe` the bytes in flight now, `safe_ack`
    /// whether SND.UNA advanced and no further loss was found (then PRR-SSRB may add a
    /// segment). Returns the congestion window: pipe + sndcnt.
    pub fn on_ack(
        &mut self,
        delivered: u32,
        pipe: u32,
        ssthresh: u32,
        safe_ack: bool,
        smss: u32,
    ) -> u32 {
        self.delivered = self.delivered.saturating_add(u64::from(delivered));
        let (pipe64, ssthresh64, smss64) = (u64::from(pipe), u64::from(ssthresh), u64::from(smss));
        let mut sndcnt = if pipe64 > ssthresh64 {
            // Proportional Rate Reduction: CEIL(prr_delivered · ssthresh / RecoverFS), in
            // whole segments (Linux counts packets; in bytes, half a segment of room would
            // send nothing), minus prr_out.
            let share = (self.delivered.saturating_mul(ssthresh64)).div_ceil(self.recover_fs);
            share
                .div_ceil(smss64.max(1))
                .saturating_mul(smss64)
                .saturating_sub(self.out)
        } else {
            // PRR-CRB, and PRR-SSRB on a safe ACK; then catch up to ssthresh as permitted.
            let mut n = self
                .delivered
                .saturating_sub(self.out)
                .max(u64::from(delivered));
            if safe_ack {
                n = n.saturating_add(smss64);
            }
            n.min(ssthresh64.saturating_sub(pipe64))
        };
        // The fast retransmission goes out on entering recovery.
        if self.out == 0 && sndcnt == 0 {
            sndcnt = smss64;
        }
        u32::try_from(pipe64.saturating_add(sndcnt)).unwrap_or(u32::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MSS: u32 = 1000;

    #[test]
    fn rfc_9937_example_sends_about_one_segment_for_every_two_delivered() {
        // A window of 20 segments, one lost; ssthresh = 10 (a halving). Each ACK delivers one
        // segment: PRR sends on about every other ACK, spreading the reduction over the
        // round trip (RFC 9937 §9, Figure 2), instead of sending nothing for ten ACKs and
        // then one per ACK (RFC 6675 with cwnd = ssthresh).
        let mut prr = Prr::start(20 * MSS);
        let mut pipe = 19 * MSS; // 20 sent, 1 lost
        let mut pattern = Vec::new();
        for _ in 0..19 {
            pipe -= MSS; // one delivered
            let cwnd = prr.on_ack(MSS, pipe, 10 * MSS, false, MSS);
            let mut sent = 0;
            while cwnd >= pipe + MSS {
                prr.on_sent(MSS);
                pipe += MSS;
                sent += 1;
            }
            pattern.push(sent);
        }
        // One segment for every two ACKs while the pipe is above ssthresh; once it is down
        // to ssthresh, as much as is delivered (PRR-CRB), so it stays there.
        assert_eq!(
            pattern,
            [1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 0, 1, 1],
            "segments sent per ACK"
        );
        // At the end the flight is ssthresh.
        assert_eq!(pipe, 10 * MSS);
    }

    #[test]
    fn below_ssthresh_it_sends_what_was_delivered_and_a_segment_more_on_safe_acks() {
        let mut prr = Prr::start(10 * MSS);
        // Heavy loss: the pipe is far below ssthresh = 7.
        let cwnd = prr.on_ack(MSS, 3 * MSS, 7 * MSS, false, MSS);
        assert_eq!(cwnd, 4 * MSS, "PRR-CRB: as much as was delivered");
        prr.on_sent(MSS);
        let cwnd = prr.on_ack(MSS, 3 * MSS, 7 * MSS, true, MSS);
        assert_eq!(cwnd, 5 * MSS, "PRR-SSRB: one more on a safe ACK");
        // Never beyond ssthresh.
        let cwnd = prr.on_ack(20 * MSS, 6 * MSS, 7 * MSS, true, MSS);
        assert_eq!(cwnd, 7 * MSS);
    }

    #[test]
    fn the_first_ack_always_lets_the_fast_retransmission_out() {
        let mut prr = Prr::start(10 * MSS);
        let cwnd = prr.on_ack(0, 9 * MSS, 7 * MSS, false, MSS);
        assert_eq!(cwnd, 10 * MSS);
    }
}
