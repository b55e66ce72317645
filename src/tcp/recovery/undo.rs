//! Undoing a congestion response that proved spurious (issue 19), as Linux's
//! `tcp_try_undo_*`: a fast recovery or a retransmission timeout whose retransmissions all
//! turn out to have been unnecessary gives the window back.
//!
//! Two proofs are taken: D-SACK (RFC 2883 §5; RFC 3708): the receiver reports every
//! retransmission of the episode as a duplicate; and timestamps (RFC 3522, Eifel detection):
//! an ACK of retransmitted data echoes a TSval older than the first retransmission, so the
//! original arrived; and, after a timeout on a connection without timestamps, F-RTO
//! (RFC 5682, `Frto` in `mod.rs`, driven from `conn.rs`).

use crate::seqnum::SeqNum;

/// What was undone, for the counters (Linux's names).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Undone {
    /// Every retransmission of a recovery was reported by D-SACK (`TCPDSACKUndo`).
    Dsack,
    /// A recovery ended and the timestamps show the originals arrived (`TCPFullUndo`).
    Full,
    /// On a partial ACK of a recovery, the same (`TCPPartialUndo`).
    Partial,
    /// After a retransmission timeout, the same (`TCPLossUndo`; a spurious RTO).
    Loss,
}

/// The state of one episode (a recovery, or the Loss state after a timeout).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Undo {
    /// SND.UNA when the episode began (Linux's `undo_marker`); `None`: nothing to undo.
    marker: Option<SeqNum>,
    /// Retransmissions of the episode not yet reported as duplicates (`undo_retrans`).
    retrans: u32,
    /// The window and threshold before the reduction (`prior_cwnd`, `prior_ssthresh`).
    pub prior_cwnd: u32,
    pub prior_ssthresh: u32,
    /// Our TSval when the episode's first retransmission went out (`retrans_stamp`).
    retrans_ts: Option<u32>,
}

impl Undo {
    /// An episode begins: SND.UNA, and the window and threshold about to be reduced.
    pub fn start(snd_una: SeqNum, cwnd: u32, ssthresh: u32) -> Undo {
        Undo {
            marker: Some(snd_una),
            retrans: 0,
            prior_cwnd: cwnd,
            prior_ssthresh: ssthresh,
            retrans_ts: None,
        }
    }

    /// Retransmissions from before the episode that are still in flight: `n` of them, the
    /// first sent at our TSval `first_ts`.
    pub fn with_outstanding(mut self, n: u32, first_ts: Option<u32>) -> Undo {
        self.retrans = n;
        self.retrans_ts = first_ts;
        self
    }

    /// Our TSval at the episode's first retransmission, while an episode is open.
    pub fn first_retransmission(&self) -> Option<u32> {
        self.marker.and(self.retrans_ts)
    }

    pub fn active(&self) -> bool {
        self.marker.is_some()
    }

    /// A segment was retransmitted at our TSval `ts`.
    pub fn on_retransmit(&mut self, ts: u32) {
        if self.marker.is_some() {
            self.retrans = self.retrans.saturating_add(1);
            self.retrans_ts.get_or_insert(ts);
        }
    }

    /// A D-SACK reported data from `left` (RFC 2883): if it lies in the episode, one
    /// retransmission was unnecessary. True when all of them were.
    pub fn on_dsack(&mut self, left: SeqNum) -> bool {
        match self.marker {
            Some(m) if left.ge(m) && self.retrans > 0 => {
                self.retrans -= 1;
                self.retrans == 0
            }
            _ => false,
        }
    }

    /// RFC 3522: an ACK echoing `tsecr` was caused by an original transmission (it echoes a
    /// TSval from before the first retransmission), so the retransmissions were spurious.
    pub fn eifel(&self, tsecr: Option<u32>) -> bool {
        match (self.marker, self.retrans_ts, tsecr) {
            (Some(_), Some(rt), Some(ecr)) if ecr != 0 => (ecr.wrapping_sub(rt) as i32) < 0,
            _ => false,
        }
    }

    /// The episode is over (undone or not).
    pub fn end(&mut self) {
        *self = Undo::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dsacks_for_every_retransmission_undo() {
        let s = |n: u32| SeqNum::new(u32::MAX - 10).add(n);
        let mut u = Undo::start(s(0), 20_000, u32::MAX);
        u.on_retransmit(100);
        u.on_retransmit(101);
        assert!(!u.on_dsack(s(0).sub(5)), "before the episode");
        assert!(!u.on_dsack(s(0)));
        assert!(u.on_dsack(s(1000)), "the second of two");
    }

    #[test]
    fn retransmissions_from_before_the_episode_count_and_set_the_eifel_mark() {
        // Two retransmissions still in flight, the first at TSval 50: an echo of 60 (one of
        // them) proves nothing, and two D-SACKs are needed, not one.
        let mut u = Undo::start(SeqNum::new(5), 20_000, 30_000).with_outstanding(2, Some(50));
        assert_eq!(u.first_retransmission(), Some(50));
        u.on_retransmit(100);
        assert!(!u.eifel(Some(60)));
        assert!(u.eifel(Some(49)));
        assert!(!u.on_dsack(SeqNum::new(5)));
        assert!(!u.on_dsack(SeqNum::new(5)));
        assert!(u.on_dsack(SeqNum::new(5)));
    }

    #[test]
    fn an_echo_older_than_the_first_retransmission_proves_it_spurious() {
        let mut u = Undo::start(SeqNum::new(5), 20_000, 30_000);
        assert!(!u.eifel(Some(99)), "nothing retransmitted yet");
        u.on_retransmit(100);
        u.on_retransmit(140);
        assert!(u.eifel(Some(99)));
        assert!(!u.eifel(Some(100)));
        assert!(!u.eifel(None));
        u.end();
        assert!(!u.active());
    }
}
