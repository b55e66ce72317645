//! The peer's state, inferred: synack knows its own state, and can follow the other side's
//! through RFC 9293's diagram (§3.3.2) from what the peer sent and what it was sent. Drawn
//! beside the peer's line, marked as inferred: a lost segment or a folded stretch of the trace
//! can fool it, and it assumes each segment we sent arrived when we sent it.
//!
//! The rules, per segment (the peer's state after it):
//! - its SYN: SYN-SENT; its SYN,ACK: SYN-RECEIVED (it was listening for our SYN);
//! - its ACK of our SYN (from SYN-SENT), or our ACK of its SYN (from SYN-RECEIVED): ESTABLISHED;
//! - its FIN: FIN-WAIT-1 (or, after ours, LAST-ACK from CLOSE-WAIT);
//! - our FIN: CLOSE-WAIT from ESTABLISHED; CLOSING from FIN-WAIT-1 (simultaneous close);
//!   TIME-WAIT from FIN-WAIT-2, or from FIN-WAIT-1 when it also acknowledges its FIN;
//! - our ACK of its FIN: FIN-WAIT-2 from FIN-WAIT-1; TIME-WAIT from CLOSING; CLOSED from
//!   LAST-ACK;
//! - a RST either way: CLOSED.

use crate::tcp::SeqNum;
use crate::tcp::State;
use crate::tcp::trace::{Direction, Event};

/// Follows the peer's state through a trace, one event at a time.
#[derive(Clone, Copy, Debug)]
pub struct PeerState {
    state: State,
    /// The sequence number just past the peer's FIN, once it has sent one.
    fin_end: Option<SeqNum>,
}

impl PeerState {
    /// Before the first event: a peer that opens (its SYN comes first) starts CLOSED; one we
    /// open to is listening.
    pub fn new(first: Option<&Event>) -> PeerState {
        let state = match first {
            Some(e) if e.direction == Direction::Out => State::Listen,
            _ => State::Closed,
        };
        PeerState {
            state,
            fin_end: None,
        }
    }

    pub fn state(&self) -> State {
        self.state
    }

    /// The peer's state after `e`.
    pub fn step(&mut self, e: &Event) -> State {
        use State::*;
        let f = e.flags;
        if f.rst() {
            self.state = Closed;
            return self.state;
        }
        match e.direction {
            Direction::In => {
                if f.syn() {
                    self.state = if f.ack() { SynReceived } else { SynSent };
                } else if f.ack() && self.state == SynSent {
                    self.state = Established;
                }
                if f.fin() {
                    let end = e.seq.add(e.len + 1);
                    self.fin_end = Some(end);
                    self.state = match self.state {
                        CloseWait => LastAck,
                        Established | SynReceived => FinWait1,
                        s => s,
                    };
                }
            }
            Direction::Out => {
                let acks_fin = f.ack() && self.fin_end.is_some_and(|end| e.ack.ge(end));
                if f.ack() && !f.syn() && self.state == SynReceived {
                    self.state = Established;
                }
                self.state = match (self.state, f.fin(), acks_fin) {
                    (Established, true, _) => CloseWait,
                    (FinWait1, true, true) | (FinWait2, true, _) => TimeWait,
                    (FinWait1, true, false) => Closing,
                    (FinWait1, false, true) => FinWait2,
                    (Closing, _, true) => TimeWait,
                    (LastAck, _, true) => Closed,
                    (s, _, _) => s,
                };
            }
        }
        self.state
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tcp::ladder::tests::seg;
    use crate::tcp::trace::Trace;
    use crate::time::Instant;
    use crate::wire::Flags;
    use Direction::{In, Out};

    /// The peer's states after each segment of `script` (direction, flags, seq, ack).
    fn follow(script: &[(Direction, Flags, u32, u32)]) -> Vec<State> {
        let mut t = Trace::new();
        for &(dir, flags, seq, ack) in script {
            t.record(
                dir,
                Instant::ZERO,
                &seg(dir, flags, seq, ack, b""),
                State::Established,
            );
        }
        let mut peer = PeerState::new(t.events().next().as_ref());
        t.events().map(|e| peer.step(&e)).collect()
    }

    const SYN: Flags = Flags::SYN;
    const ACK: Flags = Flags::ACK;
    const FIN: Flags = Flags::FIN.union(Flags::ACK);

    fn open() -> Vec<(Direction, Flags, u32, u32)> {
        vec![
            (In, SYN, 0, 0),
            (Out, SYN.union(ACK), 0, 1),
            (In, ACK, 1, 1),
        ]
    }

    #[test]
    fn the_handshake_of_a_peer_that_opens() {
        use State::*;
        assert_eq!(follow(&open()), [SynSent, SynSent, Established]);
    }

    #[test]
    fn a_peer_we_open_to_was_listening() {
        use State::*;
        let got = follow(&[
            (Out, SYN, 0, 0),
            (In, SYN.union(ACK), 0, 1),
            (Out, ACK, 1, 1),
        ]);
        assert_eq!(got, [Listen, SynReceived, Established]);
    }

    #[test]
    fn we_close_first_so_the_peer_closes_passively() {
        use State::*;
        let mut s = open();
        s.extend([
            (Out, FIN, 1, 1),
            (In, ACK, 1, 2),
            (In, FIN, 1, 2),
            (Out, ACK, 2, 2),
        ]);
        let got = follow(&s);
        assert_eq!(got[3..], [CloseWait, CloseWait, LastAck, Closed]);
    }

    #[test]
    fn the_peer_closes_first_and_waits_in_fin_wait_2_then_time_wait() {
        use State::*;
        let mut s = open();
        s.extend([
            (In, FIN, 1, 1),
            (Out, ACK, 1, 2),
            (Out, FIN, 1, 2),
            (In, ACK, 2, 2),
        ]);
        let got = follow(&s);
        assert_eq!(got[3..], [FinWait1, FinWait2, TimeWait, TimeWait]);
        // Our FIN carrying the ACK of its FIN: straight to TIME-WAIT.
        let mut s = open();
        s.extend([(In, FIN, 1, 1), (Out, FIN, 1, 2)]);
        assert_eq!(follow(&s)[3..], [FinWait1, TimeWait]);
    }

    #[test]
    fn a_simultaneous_close_passes_closing() {
        use State::*;
        let mut s = open();
        // Both FINs cross: ours does not yet acknowledge the peer's.
        s.extend([
            (In, FIN, 1, 1),
            (Out, FIN, 1, 1),
            (Out, ACK, 2, 2),
            (In, ACK, 2, 2),
        ]);
        let got = follow(&s);
        assert_eq!(got[3..], [FinWait1, Closing, TimeWait, TimeWait]);
    }

    #[test]
    fn a_reset_closes_the_peer_either_way() {
        let mut s = open();
        s.push((In, Flags::RST, 1, 0));
        assert_eq!(follow(&s).last(), Some(&State::Closed));
        let mut s = open();
        s.push((Out, Flags::RST, 1, 0));
        assert_eq!(follow(&s).last(), Some(&State::Closed));
    }
}
