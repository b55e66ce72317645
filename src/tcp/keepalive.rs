//! TCP keep-alive (RFC 9293 §3.8.4, MUST-24..29), as Linux does it (tcp_keepalive_timer).
//!
//! Off unless the endpoint enables it for the connection's listener (MUST-24/25). When the
//! connection has heard nothing from the peer for `idle`, and has nothing in flight or
//! queued (the retransmission timer already watches the peer then), it sends a probe
//! `<SEQ=SND.NXT-1><ACK=RCV.NXT><CTL=ACK>` with no data (MUST-29): a sequence number the peer
//! has already acknowledged, which its TCP must answer with an ACK. A single lost probe means
//! nothing (MUST-27): probes repeat every `interval`, and only after `probes` unanswered ones
//! is the connection aborted with a RST, as Linux does. Any acceptable segment from the peer
//! counts as an answer.

use super::connection::Connection;
use super::{ResetCause, State};
use crate::time::{Duration, Instant};
use tracing::debug;

/// Keep-alive parameters of one connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KeepAlive {
    /// Idle time before the first probe (Linux: tcp_keepalive_time, 2 h; MUST-26: the
    /// default, if keep-alive is on by default, is at least two hours).
    pub idle: Duration,
    /// Time between unanswered probes (Linux: tcp_keepalive_intvl, 75 s).
    pub interval: Duration,
    /// Unanswered probes before the connection is aborted (Linux: tcp_keepalive_probes, 9).
    pub probes: u32,
}

impl KeepAlive {
    /// Linux's probe interval and count.
    pub const LINUX_INTERVAL: Duration = Duration::from_secs(75);
    pub const LINUX_PROBES: u32 = 9;

    /// Keep-alive after `idle` without traffic: 9 probes (as Linux), `idle` apart but never
    /// more than Linux's 75 s, so `--keepalive 2h` behaves exactly like Linux's defaults and
    /// `--keepalive 10s` gives up on a dead peer within 100 s.
    pub fn after(idle: Duration) -> KeepAlive {
        KeepAlive {
            idle,
            interval: idle.min(Self::LINUX_INTERVAL).max(Duration::from_millis(1)),
            probes: Self::LINUX_PROBES,
        }
    }
}

/// Keep-alive state inside a connection: when the peer was last heard, and the rest only
/// while keep-alive is on (issue 23: 16 bytes inline instead of 56, since most connections
/// never use it).
#[derive(Clone, Debug)]
pub(super) struct KeepAliveState {
    /// When the last acceptable segment arrived (Linux: icsk_ack.lrcvtime / rcv_tstamp).
    pub last_heard: Instant,
    pub on: Option<Box<KeepAliveOn>>,
}

/// What keep-alive needs while it is on.
#[derive(Clone, Copy, Debug)]
pub(super) struct KeepAliveOn {
    pub config: KeepAlive,
    /// Probes sent since the peer was last heard.
    pub probes_out: u32,
    /// A probe is to be sent by the next `poll_transmit`.
    pub probe_due: bool,
}

impl KeepAliveState {
    pub fn new(now: Instant) -> Self {
        KeepAliveState {
            last_heard: now,
            on: None,
        }
    }
}

impl Connection {
    /// Enable (or, with `None`, disable) keep-alive for this connection.
    pub fn set_keepalive(&mut self, config: Option<KeepAlive>) {
        match (config, self.keepalive.on.as_mut()) {
            (None, _) => {
                self.keepalive.on = None;
                self.timers.keepalive = None;
                return;
            }
            (Some(config), Some(on)) => on.config = config,
            (Some(config), None) => {
                self.keepalive.on = Some(Box::new(KeepAliveOn {
                    config,
                    probes_out: 0,
                    probe_due: false,
                }));
            }
        }
        if self.state.is_synchronized() {
            let at = self.keepalive.last_heard;
            self.arm_keepalive(at);
        }
    }

    /// The keep-alive settings, if enabled.
    pub fn keepalive(&self) -> Option<KeepAlive> {
        self.keepalive.on.as_ref().map(|on| on.config)
    }

    /// An acceptable segment arrived: the peer is alive; the idle time starts again.
    pub(super) fn keepalive_heard(&mut self, now: Instant) {
        self.keepalive.last_heard = now;
        if let Some(on) = self.keepalive.on.as_mut() {
            on.probes_out = 0;
        }
        self.arm_keepalive(now);
    }

    /// Arm the timer for `idle` after `from` (only ESTABLISHED and CLOSE-WAIT are probed,
    /// like Linux; the closing states have their own timers).
    fn arm_keepalive(&mut self, from: Instant) {
        match self.keepalive() {
            Some(ka) if matches!(self.state, State::Established | State::CloseWait) => {
                self.timers.keepalive = Some(from + ka.idle);
            }
            _ => self.timers.keepalive = None,
        }
    }

    /// The keep-alive timer fired (RFC 9293 §3.8.4; Linux tcp_keepalive_timer).
    pub(super) fn on_keepalive_timeout(&mut self, now: Instant) {
        let Some(ka) = self.keepalive() else {
            return;
        };
        if !matches!(self.state, State::Established | State::CloseWait) {
            return;
        }
        // Only an idle connection is probed: with data in flight or queued, the
        // retransmission and persist timers already find out whether the peer is there.
        if self.in_flight() || self.has_unsent() {
            self.timers.keepalive = Some(now + ka.idle);
            return;
        }
        let idle_for = now.saturating_since(self.keepalive.last_heard);
        if idle_for < ka.idle {
            self.timers.keepalive = Some(self.keepalive.last_heard + ka.idle);
            return;
        }
        let probes_out = self.keepalive.on.as_ref().map_or(0, |on| on.probes_out);
        if probes_out >= ka.probes {
            // MUST-27 is satisfied: this is after `probes` unanswered probes, not one.
            let span = self.span();
            let _enter = span.enter();
            debug!(
                probes = probes_out,
                "keep-alive: no answer from the peer, aborting"
            );
            drop(_enter);
            self.events_mut().keepalive_timeouts += 1;
            self.rst_due = true;
            self.reset = Some(ResetCause::TimedOut);
            return;
        }
        if let Some(on) = self.keepalive.on.as_mut() {
            on.probes_out += 1;
            on.probe_due = true;
        }
        self.events_mut().keepalive_probes += 1;
        self.timers.keepalive = Some(now + ka.interval);
    }

    /// Send a due keep-alive probe: `<SEQ=SND.NXT-1><ACK=RCV.NXT><CTL=ACK>`, no data
    /// (RFC 9293 §3.8.4, MUST-29 allows one garbage octet for old peers; Linux sends none).
    pub(super) fn transmit_keepalive(&mut self, now: Instant, emit: &mut super::output::Emit<'_>) {
        let due = self
            .keepalive
            .on
            .as_mut()
            .map(|on| std::mem::take(&mut on.probe_due));
        if due != Some(true) {
            return;
        }
        let seq = self.snd.nxt.sub(1);
        let label = super::trace::Label::KeepAlive;
        self.emit_segment(now, seq, crate::wire::Flags::ACK, &[], label, emit);
    }
}
