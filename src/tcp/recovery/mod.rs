//! Loss detection and recovery beside input and output, as Linux keeps `tcp_recovery.c`
//! beside `tcp_input.c` (issue 19): the segments in flight with their transmit times
//! (`sent.rs`), RACK's time-based loss detection (`rack.rs`, RFC 8985 §6) and tail loss
//! probes (`tlp.rs`, RFC 8985 §7). The congestion controllers (`cc/`) only hear events from
//! here: recovery entered, a loss repaired by a probe.
//!
//! `--recovery rack` (the default, as Linux's `net.ipv4.tcp_recovery = 1`) detects losses
//! with RACK and probes tails with TLP on connections that negotiated SACK;
//! `--recovery classic` keeps three duplicate ACKs and RFC 6675's IsLost() (and so does a
//! connection without SACK, as in Linux, whose RACK needs SACK).

mod conn;
pub mod prr;
pub mod rack;
pub mod sent;
pub mod tlp;
pub mod undo;

use crate::time::Instant;
use std::fmt;
use std::str::FromStr;

pub use super::sack::DUP_THRESH;
pub use prr::Prr;
pub use rack::Rack;
pub use sent::{Delivered, SentLog};
pub use tlp::{ProbeOutcome, Tlp};
pub use undo::{Undo, Undone};

/// How losses are detected (`--recovery rack|classic`, default rack).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum RecoveryKind {
    /// RACK-TLP (RFC 8985).
    #[default]
    Rack,
    /// Three duplicate ACKs (RFC 5681, RFC 6582) and RFC 6675's IsLost().
    Classic,
}

impl FromStr for RecoveryKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "rack" => Ok(RecoveryKind::Rack),
            "classic" => Ok(RecoveryKind::Classic),
            other => Err(format!(
                "unknown loss recovery '{other}' (use rack or classic)"
            )),
        }
    }
}

impl fmt::Display for RecoveryKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RecoveryKind::Rack => "rack",
            RecoveryKind::Classic => "classic",
        })
    }
}

/// The sender's congestion state as Linux names it (`icsk_ca_state`), for `status --info`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CaState {
    /// Nothing unusual.
    Open,
    /// Duplicate ACKs or SACKs seen, no loss yet.
    Disorder,
    /// The window is being reduced after an ECN congestion signal (RFC 3168 §6.1.2).
    Cwr,
    /// Fast recovery (RFC 6675 / RFC 6582).
    Recovery,
    /// After a retransmission timeout, until what was in flight then is acknowledged.
    Loss,
}

impl CaState {
    pub fn name(self) -> &'static str {
        match self {
            CaState::Open => "open",
            CaState::Disorder => "disorder",
            CaState::Cwr => "cwr",
            CaState::Recovery => "recovery",
            CaState::Loss => "loss",
        }
    }
}

/// A connection's loss-recovery state. What only RACK-TLP needs lives in a box allocated
/// on first use and given back when the connection idles (`RackTlp`), so that a connection
/// table slot stays small.
#[derive(Clone, Debug, Default)]
pub struct Recovery {
    pub st: Option<Box<RackTlp>>,
}

/// The segments in flight, RACK's and TLP's state, PRR's, and the Loss state.
#[derive(Clone, Debug, Default)]
pub struct RackTlp {
    /// The segments in flight with their transmit times.
    pub sent: SentLog,
    pub rack: Rack,
    pub tlp: Tlp,
    /// Proportional Rate Reduction in the current recovery, RFC 9937.
    pub prr: Prr,
    /// The last fast recovery ended with lost segments of a later window still in flight
    /// (`rack_on_recovery_exit`): the next ACK starts a new one.
    pub losses_outlived_recovery: bool,
    /// Without SACK: the bytes the duplicate ACKs of the current recovery said left the
    /// network (Linux's `sacked_out` for Reno), for PRR's pipe and DeliveredData.
    pub reno_sacked: u32,
    /// What to restore if the current recovery or timeout proves spurious.
    pub undo: Undo,
    /// F-RTO (RFC 5682) after a timeout: `None`, or what the next ACK decides.
    pub frto: Option<Frto>,
    /// HyStart++ (RFC 9406) in the initial slow start (`cc/hystart.rs`).
    pub hystart: crate::tcp::cc::HyStart,
    /// RACK.fack: the highest end sequence delivered so far.
    pub fack: Option<crate::seqnum::SeqNum>,
    /// RACK's reordering timer (RFC 8985 §6.3): when to look for losses again.
    pub reo_deadline: Option<Instant>,
    /// In the Loss state: a retransmission timeout happened and SND.UNA has not yet reached
    /// what was in flight then.
    pub in_loss: bool,
    /// The probe timer fired: the output path sends a probe.
    pub probe_due: bool,
}

/// F-RTO (RFC 5682 §2): after a timeout and its one retransmission, the first ACK that
/// acknowledges new data lets two new segments go instead of more retransmissions; if the
/// next ACK acknowledges new data too, the segments were not lost and the timeout was
/// spurious.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Frto {
    /// Step 2: waiting for the first ACK after the timeout; `high` = SND.NXT then.
    First { high: crate::seqnum::SeqNum },
    /// Step 3: two new segments may go, up to `limit`; waiting for the ACK that decides.
    Second { limit: crate::seqnum::SeqNum },
}

/// The RACK-TLP state, allocated on first use.
pub fn state(st: &mut Option<Box<RackTlp>>) -> &mut RackTlp {
    st.get_or_insert_with(Box::default)
}

impl Recovery {
    /// A retransmission timeout: everything in flight is lost (Linux's `tcp_enter_loss`),
    /// what was SACKed is forgotten (RFC 2018 §8), no probe or reordering timer is pending.
    pub fn on_rto(&mut self) {
        let st = state(&mut self.st);
        st.sent.mark_all_lost(true);
        st.tlp.clear();
        st.reo_deadline = None;
        st.probe_due = false;
        st.in_loss = true;
    }

    /// In the Loss state (after a retransmission timeout).
    pub fn in_loss(&self) -> bool {
        self.st.as_ref().is_some_and(|st| st.in_loss)
    }

    /// The earliest of RACK's and TLP's timers.
    pub fn next_timer(&self) -> Option<Instant> {
        let st = self.st.as_ref()?;
        [st.reo_deadline, st.tlp.deadline]
            .into_iter()
            .flatten()
            .min()
    }

    /// RACK's reordering window as last computed.
    pub fn reo_wnd(&self) -> crate::time::Duration {
        self.st
            .as_ref()
            .map_or(crate::time::Duration::ZERO, |st| st.rack.reo_wnd)
    }

    /// Give memory back while nothing is in flight: the ring, and the RACK-TLP state unless
    /// it learnt something worth keeping (reordering seen, a widened window) or a reduction
    /// may still be undone (the D-SACKs of its retransmissions come after the ACK that left
    /// nothing in flight).
    pub fn release(&mut self) {
        if self.st.as_ref().is_some_and(|st| {
            st.sent.is_empty()
                && st.rack.pristine()
                && !st.undo.active()
                && st.tlp.end_seq.is_none()
                && !st.in_loss
                && !st.hystart.in_css()
        }) {
            self.st = None;
        }
    }

    /// The segments in flight (none before the first is sent).
    pub fn sent(&self) -> &SentLog {
        self.st.as_ref().map_or(&sent::EMPTY, |st| &st.sent)
    }

    /// The segments in flight, to change.
    pub fn sent_mut(&mut self) -> &mut SentLog {
        &mut state(&mut self.st).sent
    }
}
