//! A connection's buffers: their sizes, autotuning, and its share of the endpoint's buffer
//! memory (`--max-buffer-memory`).
//!
//! **What is charged.** A connection is charged for the bytes it really holds: its send queue,
//! its receive queue and its out-of-order data ([`Connection::memory`]), as Linux charges
//! `tcp_mem` for the buffers it has allocated. A window offered but not yet filled costs
//! nothing. The endpoint keeps the sum and hands the connection, before each run, a budget
//! (what the limit leaves after every other connection) and whether memory is under pressure.
//!
//! **Pressure**, as Linux's `tcp_mem` pressure mode (the endpoint decides when it is on):
//!
//! 1. buffers stop growing: no receive or send autotuning;
//! 2. new windows are offered smaller: at most four segments beyond RCV.NXT (Linux clamps
//!    `rcv_ssthresh` to `4 * advmss`), never moving a right edge already offered to the left
//!    (RFC 9293 §3.8.6, SHLD-14); counted as `rcv_window_clamped` (once per connection and
//!    episode);
//! 3. at the hard limit (the budget is used up), new data beyond what is held is dropped and
//!    counted (`rcv_memory_drops`, Linux's `TCPRcvQDrop`), even inside the window: the peer
//!    retransmits it, and our ACK tells it where we are. The window's right edge stays.
//!    As in Linux, every connection may still hold `--rmem`'s MIN of received data and
//!    `--wmem`'s MIN of queued data (`tcp_rmem[0]`, `tcp_wmem[0]`), so none starves
//!    entirely: the limit can be passed by at most that much per connection.
//!
//! A connection that was held back by memory (window clamped or not opened, data dropped, a
//! send refused) says so ([`Connection::take_memory_starved`]); the endpoint re-runs it once
//! memory frees, and it then sends a window update without waiting for the peer's probe.
//!
//! The application can queue only what the budget leaves, where bytes received and not yet
//! read count as room: reading them frees them, so a relay such as echo, which sends back
//! what it reads, never stalls on its own receive queue.
//!
//! **Receive autotuning** (dynamic right-sizing, Linux's `tcp_rcv_space_adjust`): once per
//! round trip the connection looks at what the application drained in it; when that is more
//! than in any round trip before, the receive buffer grows so that the window is at least
//! twice that (Linux 4.x's formula: `2 * copied + 16 * MSS`, plus twice the growth rate while
//! the sender is in slow start), up to `--rmem`'s maximum. The RTT is the receiver's own
//! estimate: from timestamps (the age of the TSecr echoed on new data) or, without them, the
//! time one window of data takes to arrive (Linux's `tcp_rcv_rtt_measure`).
//!
//! **Send autotuning** (Linux's `tcp_sndbuf_expand`): the send buffer grows to twice the most
//! the connection may have in flight, `min(cwnd, the peer's largest window)`, up to
//! `--wmem`'s maximum, so a bulk sender always has the next round trip's data queued. On a
//! loss-free path cwnd grows without bound, so the growth is also capped at four times what
//! the path holds (the best delivery rate times the smallest RTT, as BBR estimates the BDP;
//! at least 1 MiB): more would only queue in front of the receiver and inflate the RTT.
//!
//! **Idle connections give back their memory**: when a run of the connection brought no new
//! data and found both queues and the reassembly queue empty, their allocations are freed
//! (taken again on demand). TIME-WAIT and CLOSED free them at once (all but received bytes
//! the application has not read yet, which stay until it does or the connection goes).

use super::{Connection, SeqNum, State};
use crate::time::Instant;
use std::collections::VecDeque;

/// A connection's buffer sizes, its memory grant, and the autotuning state.
#[derive(Clone, Copy, Debug)]
pub(super) struct Buffers {
    /// The receive buffer now (autotuned within `rmem`): the window we offer is its free
    /// space.
    pub rcvbuf: usize,
    /// The send buffer now (autotuned within `wmem`).
    pub sndbuf: usize,
    /// The most bytes this connection may hold: its share of `--max-buffer-memory`.
    pub budget: usize,
    /// The endpoint is under memory pressure.
    pub pressure: bool,
    /// DRS: the most bytes the application drained in one measured round trip, and where
    /// and when the current measurement began (Linux's `rcvq_space`).
    /// (`u32`s here and below: at most 2^30 bytes, 71 minutes; issue 23.)
    pub space: u32,
    pub space_seq: SeqNum,
    pub space_time: Option<Instant>,
    /// The receiver's RTT estimate in microseconds (0: none yet), and the window-based
    /// measurement in progress (Linux's `rcv_rtt_est`).
    pub rcv_rtt_us: u32,
    pub rtt_seq: SeqNum,
    pub rtt_time: Option<Instant>,
    /// Send autotuning: the best delivery rate measured (bytes per second), and where and
    /// when the current measurement began.
    pub snd_rate: u64,
    pub snd_rate_una: SeqNum,
    pub snd_rate_time: Option<Instant>,
    /// Held back by memory since the endpoint last asked.
    pub starved: bool,
    /// The window is clamped by memory pressure (counted once per episode).
    pub clamped: bool,
    /// The window was held back by memory at the last transmission, and the most it could
    /// then reach beyond RCV.NXT.
    pub held_back: bool,
    pub last_limit: u32,
    /// Memory freed after the window was held back: send a window update.
    pub room_opened: bool,
    /// New data arrived since the last `poll_transmit`.
    pub rx_since_poll: bool,
}

impl Buffers {
    pub fn new(cfg: &super::Config) -> Buffers {
        Buffers {
            rcvbuf: cfg.rmem.default.clamp(1, cfg.rmem.max.max(1)),
            sndbuf: cfg.wmem.default.min(cfg.wmem.max),
            budget: usize::MAX,
            pressure: false,
            space: 0,
            space_seq: SeqNum::new(0),
            space_time: None,
            rcv_rtt_us: 0,
            rtt_seq: SeqNum::new(0),
            rtt_time: None,
            snd_rate: 0,
            snd_rate_una: SeqNum::new(0),
            snd_rate_time: None,
            starved: false,
            clamped: false,
            held_back: false,
            last_limit: 0,
            room_opened: false,
            rx_since_poll: false,
        }
    }
}

/// Send autotuning does not hold the send buffer below this for want of a measured path. On
/// the zero-delay TUN the path holds a few tens of KiB, and the buffer is what an application
/// refills between two turns of the event loop: with 256 KiB a `forward:` download spent a
/// third more CPU per byte (each turn moved less) and ran at 14 Gbit/s, with 1 MiB at 17-23,
/// and chargen's 1.3x faster (docs/PERFORMANCE.md, "Forward throughput"). It is still far
/// from the 25 MB an uncapped buffer reached (13 ms of queue): 1 MiB is 0.3 ms at 30 Gbit/s.
const SNDBUF_PATH_FLOOR: usize = 1024 * 1024;

/// Under pressure a new window reaches at most this many segments beyond RCV.NXT.
const PRESSURE_WINDOW_SEGMENTS: usize = 4;

impl Connection {
    /// The bytes this connection holds and is charged for: send queue, receive queue and
    /// out-of-order data.
    pub fn memory(&self) -> usize {
        let reasm = usize::try_from(self.reasm.queued_bytes()).unwrap_or(usize::MAX);
        self.queues
            .send
            .len()
            .saturating_add(self.queues.recv.len())
            .saturating_add(reasm)
    }

    /// Bytes allocated for the queues (capacity, not length): what an idle connection
    /// should have given back.
    pub fn allocated(&self) -> usize {
        self.queues
            .send
            .capacity()
            .saturating_add(self.send_straddle.as_ref().map_or(0, |s| s.capacity()))
            .saturating_add(self.queues.recv.capacity())
            .saturating_add(self.reasm.allocated())
            .saturating_add(self.reasm.box_bytes())
            .saturating_add(self.scoreboard.box_bytes())
            .saturating_add(self.sack_rx.box_bytes())
    }

    /// Set the most this connection may hold (its share of `--max-buffer-memory`) and
    /// whether memory is under pressure (see the module docs).
    pub fn set_memory(&mut self, budget: usize, pressure: bool) {
        self.buf.budget = budget;
        self.buf.pressure = pressure;
        // Before our first SYN,ACK nothing was promised yet: the window it will offer follows
        // the pressure clamp too.
        if self.state == State::SynReceived && self.snd.nxt == self.snd.iss {
            let wnd = self.rcv.wnd().min(self.recv_space());
            self.rcv.right_edge = self.rcv.nxt.add(wnd);
        }
    }

    /// Whether memory held this connection back since the last call (the endpoint keeps it
    /// on its list of connections to re-run when memory frees).
    pub fn take_memory_starved(&mut self) -> bool {
        std::mem::take(&mut self.buf.starved)
    }

    /// The receive buffer autotuning chose (`rcv_space` in `status`).
    pub fn rcv_space(&self) -> usize {
        self.buf.rcvbuf
    }

    /// The send buffer limit now (`snd_buf` in `status`).
    pub fn snd_buf(&self) -> usize {
        self.buf.sndbuf
    }

    /// RCV.WND as last offered, and SND.WND, in bytes (`rcv_wnd`, `snd_wnd` in `status`).
    pub fn rcv_wnd(&self) -> u32 {
        self.rcv.wnd()
    }

    pub fn snd_wnd(&self) -> u32 {
        self.snd.wnd
    }

    /// The window memory allows beyond RCV.NXT: what the budget leaves once both queues are
    /// counted (out-of-order bytes sit inside the window, so they are not subtracted), but
    /// never less than `--rmem`'s MIN of received data (see `rmem_floor`).
    fn memory_window(&self) -> usize {
        self.buf
            .budget
            .saturating_sub(self.queues.send.len())
            .saturating_sub(self.queues.recv.len())
            .max(self.cfg.rmem.min.saturating_sub(self.queues.recv.len()))
    }

    /// Linux guarantees every socket `tcp_rmem[0]` of received data and `tcp_wmem[0]` of
    /// queued data even past `tcp_mem`'s hard limit (`__sk_mem_raise_allocated`), so that no
    /// connection starves entirely: what this connection may still take whatever the budget.
    fn rmem_floor(&self) -> usize {
        let reasm = usize::try_from(self.reasm.queued_bytes()).unwrap_or(usize::MAX);
        self.cfg
            .rmem
            .min
            .saturating_sub(self.queues.recv.len())
            .saturating_sub(reasm)
    }

    /// The receive buffer's free space, before memory limits.
    fn buffer_free(&self) -> usize {
        self.buf.rcvbuf.saturating_sub(self.queues.recv.len())
    }

    /// The window we may offer beyond RCV.NXT now: the receive buffer's free space, within
    /// the memory budget and, under pressure, four segments (see the module docs).
    pub(super) fn recv_space(&self) -> u32 {
        let mut free = self.buffer_free().min(self.memory_window());
        if self.buf.pressure {
            free = free.min(PRESSURE_WINDOW_SEGMENTS * usize::from(self.local_mss));
        }
        u32::try_from(free)
            .unwrap_or(u32::MAX)
            .min(self.window_cap())
    }

    /// How many more bytes the application may queue within the budget (unread bytes count
    /// as room, see the module docs).
    pub(super) fn send_budget(&self) -> usize {
        let reasm = usize::try_from(self.reasm.queued_bytes()).unwrap_or(usize::MAX);
        self.buf
            .budget
            .saturating_sub(self.queues.send.len())
            .saturating_sub(reasm)
            .max(self.cfg.wmem.min.saturating_sub(self.queues.send.len()))
    }

    /// The send buffer's free space within the budget.
    pub(super) fn send_room(&self) -> usize {
        self.buf
            .sndbuf
            .saturating_sub(self.queues.send.len())
            .min(self.send_budget())
    }

    /// Of `n` new bytes arriving inside the window, how many memory lets us keep: at the hard
    /// limit the rest is dropped and counted (Linux: `TCPRcvQDrop`), and the connection is
    /// noted for a window update once memory frees.
    pub(super) fn memory_admit(&mut self, n: usize) -> usize {
        let room = self
            .buf
            .budget
            .saturating_sub(self.memory())
            .max(self.rmem_floor());
        if n > room {
            self.events_mut().rcv_memory_drops += 1;
            self.buf.starved = true;
        }
        let taken = n.min(room);
        self.buf.rx_since_poll |= taken > 0;
        taken
    }

    /// Receiver RTT estimate (Linux `tcp_rcv_rtt_measure_ts` / `tcp_rcv_rtt_measure`), on new
    /// in-order data: from the TSecr it echoes when timestamps are on, else from the time one
    /// window takes to arrive.
    pub(super) fn rcv_rtt_measure(&mut self, now: Instant, tsecr: Option<u32>) {
        if self.opts.ts {
            if let Some(tsecr) = tsecr.filter(|&t| t != 0) {
                let ms = self.ts_now(now).wrapping_sub(tsecr);
                if ms < 60_000 {
                    // Timestamps count milliseconds: a sample of 0 is under 1 ms.
                    self.rcv_rtt_update(u64::from(ms.max(1)) * 1000, false);
                }
            }
            return;
        }
        match self.buf.rtt_time {
            Some(_) if self.rcv.nxt.lt(self.buf.rtt_seq) => {}
            Some(start) => {
                let us = u64::try_from(now.saturating_since(start).as_micros()).unwrap_or(0);
                self.rcv_rtt_update(us.max(1), true);
                self.buf.rtt_seq = self.rcv.nxt.add(self.rcv.wnd());
                self.buf.rtt_time = Some(now);
            }
            None => {
                self.buf.rtt_seq = self.rcv.nxt.add(self.rcv.wnd());
                self.buf.rtt_time = Some(now);
            }
        }
    }

    /// Linux `tcp_rcv_rtt_update`: a window-based sample (`win_dep`) only ever lowers the
    /// estimate; a timestamp sample is smoothed with gain 1/8, and a lower one taken at once.
    fn rcv_rtt_update(&mut self, sample_us: u64, win_dep: bool) {
        let sample_us = u32::try_from(sample_us).unwrap_or(u32::MAX);
        let old = self.buf.rcv_rtt_us;
        self.buf.rcv_rtt_us = if old == 0 || sample_us < old {
            sample_us
        } else if win_dep {
            old
        } else {
            old - old / 8 + sample_us / 8
        };
    }

    /// The bytes the application has read: RCV.NXT less what is queued (and the FIN).
    fn copied_seq(&self) -> SeqNum {
        let queued = u32::try_from(self.queues.recv.len()).unwrap_or(u32::MAX);
        self.rcv
            .nxt
            .sub(queued.saturating_add(u32::from(self.fin_received)))
    }

    /// Before each transmission: receive and send autotuning, and what memory pressure does
    /// to the window (see the module docs).
    pub(super) fn tune_buffers(&mut self, now: Instant) {
        if self.state.is_synchronized() && !self.buf.pressure {
            self.rcv_space_adjust(now);
            self.sndbuf_expand(now);
        }
        if !self.state.is_synchronized() {
            return;
        }
        // Is the window we would offer held back by memory, and the application's writes?
        let unclamped = self.buffer_free();
        let budgeted = unclamped.min(self.memory_window());
        let pressure_cap = PRESSURE_WINDOW_SEGMENTS * usize::from(self.local_mss);
        let clamped = self.buf.pressure && budgeted > pressure_cap;
        if clamped && !self.buf.clamped {
            self.events_mut().rcv_window_clamped += 1;
        }
        self.buf.clamped = clamped;
        let held_back = budgeted < unclamped || clamped;
        let send_limited =
            self.send_budget() < self.buf.sndbuf.saturating_sub(self.queues.send.len());
        if held_back || send_limited {
            self.buf.starved = true;
        }
        // Memory freed since a window was held back: a window update may be due, read or
        // no read (`window_update_due` decides whether it opened enough).
        let limit = usize::try_from(self.recv_space()).unwrap_or(usize::MAX);
        if self.buf.held_back && limit > self.buf.last_limit as usize {
            self.buf.room_opened = true;
        }
        self.buf.held_back = held_back;
        self.buf.last_limit = self.recv_space();
    }

    /// Linux `tcp_rcv_space_adjust` (see the module docs).
    fn rcv_space_adjust(&mut self, now: Instant) {
        let copied_seq = self.copied_seq();
        let Some(start) = self.buf.space_time else {
            self.buf.space_seq = copied_seq;
            self.buf.space_time = Some(now);
            let space = self.buf.rcvbuf.min(10 * usize::from(self.local_mss)).max(1);
            self.buf.space = u32::try_from(space).unwrap_or(u32::MAX);
            return;
        };
        let rtt_us = match self.buf.rcv_rtt_us {
            0 => match self.rtt.srtt() {
                Some(srtt) => u64::try_from(srtt.as_micros()).unwrap_or(u64::MAX),
                None => return,
            },
            us => u64::from(us),
        };
        if u64::try_from(now.saturating_since(start).as_micros()).unwrap_or(0) < rtt_us {
            return;
        }
        let copied = if copied_seq.gt(self.buf.space_seq) {
            copied_seq.distance_from(self.buf.space_seq) as usize
        } else {
            0
        };
        if copied > self.buf.space as usize {
            let max = self.cfg.rmem.max;
            if self.buf.rcvbuf < max {
                let mss = usize::from(self.local_mss);
                let mut rcvwin = copied.saturating_mul(2).saturating_add(16 * mss);
                // While the sender is in slow start (what is drained grows from one RTT to
                // the next), leave room for its growth: Linux 4.x.
                let space = (self.buf.space as usize).max(1);
                let grow = rcvwin.saturating_mul(copied - space) / space;
                rcvwin = rcvwin.saturating_add(grow.saturating_mul(2));
                let rcvbuf = rcvwin.min(max);
                if rcvbuf > self.buf.rcvbuf {
                    self.buf.rcvbuf = rcvbuf;
                    if let Some(q) = self.reasm.existing_mut() {
                        q.set_capacity(rcvbuf);
                    }
                }
            }
            self.buf.space = u32::try_from(copied).unwrap_or(u32::MAX);
        }
        self.buf.space_seq = copied_seq;
        self.buf.space_time = Some(now);
    }

    /// Linux `tcp_sndbuf_expand`: twice what may be in flight, but no more than four times
    /// what the path holds (see the module docs).
    fn sndbuf_expand(&mut self, now: Instant) {
        let Some(min_rtt) = self.rtt.min_rtt() else {
            return;
        };
        // The delivery rate, measured over intervals of at least the path's RTT (1 ms at
        // least, our timestamps' granularity); the best one is kept.
        let interval = min_rtt.max(crate::time::Duration::from_millis(1));
        match self.buf.snd_rate_time {
            Some(start) if now.saturating_since(start) >= interval => {
                let us = u64::try_from(now.saturating_since(start).as_micros()).unwrap_or(1);
                let acked = u64::from(self.snd.una.distance_from(self.buf.snd_rate_una));
                let rate = acked.saturating_mul(1_000_000) / us.max(1);
                self.buf.snd_rate = self.buf.snd_rate.max(rate);
                self.buf.snd_rate_una = self.snd.una;
                self.buf.snd_rate_time = Some(now);
            }
            Some(_) => {}
            None => {
                self.buf.snd_rate_una = self.snd.una;
                self.buf.snd_rate_time = Some(now);
            }
        }
        let rtt_us = u64::try_from(min_rtt.as_micros()).unwrap_or(u64::MAX);
        let path = usize::try_from(self.buf.snd_rate.saturating_mul(rtt_us) / 1_000_000)
            .unwrap_or(usize::MAX);
        let flight = usize::try_from(self.cc.cwnd().min(self.snd.max_wnd)).unwrap_or(usize::MAX);
        let want = flight
            .saturating_mul(2)
            .min(path.saturating_mul(4).max(SNDBUF_PATH_FLOOR))
            .min(self.cfg.wmem.max);
        if want > self.buf.sndbuf {
            self.buf.sndbuf = want;
        }
    }

    /// After each transmission: an idle connection gives its queues' memory back (see the
    /// module docs).
    pub(super) fn release_if_idle(&mut self) {
        if !std::mem::take(&mut self.buf.rx_since_poll)
            && self.queues.send.is_empty()
            && self.queues.recv.is_empty()
            && self.reasm.is_empty()
        {
            self.release_buffers();
            // An idle connection keeps the events it recorded and not the room for more:
            // the room grows again, at most up to the trace's bound, when it is busy again
            // (issue 23: 80 bytes of an idle echo connection's 2.3 KiB). So do the graphs'
            // samples (an echo's 2 in room for 8: 400 bytes). Not in the states that end
            // within a round trip (a handshake's or a close's last ACK): packing there is
            // unpacked at once, three times in each short connection's life (issue 21: a
            // sixth of the daemon's own CPU per sequential connection).
            if !matches!(
                self.state,
                State::SynReceived | State::SynSent | State::LastAck | State::Closing
            ) {
                self.trace.shrink();
                self.samples.shrink();
            }
        }
    }

    /// The reassembly queue, allocated if it was not, with the receive buffer's size as its
    /// capacity (what it would have had all along: `set_capacity` follows `rcvbuf`).
    pub(super) fn reasm_mut(&mut self) -> &mut super::Reassembly {
        let capacity = self.buf.rcvbuf;
        self.reasm.get_or_insert_with(|| {
            super::Reassembly::new(capacity, super::assembler::DEFAULT_MAX_RANGES)
        })
    }

    /// Free the allocations of the queues that are empty (and of the send queue, which holds
    /// nothing the peer still needs once the connection is over). Received bytes are never
    /// thrown away here: an application may still read them (our own client reads what is
    /// left when its connection is removed).
    pub(super) fn release_buffers(&mut self) {
        let closed = self.state == State::Closed;
        if let Some(q) = self.queues.existing_mut() {
            if q.send.capacity() > 0 && (q.send.is_empty() || closed) {
                q.send = VecDeque::new();
            }
            if q.recv.is_empty() && q.recv.capacity() > 0 {
                q.recv = VecDeque::new();
            }
        }
        self.queues.free_if_empty();
        if self.send_straddle.is_some() {
            self.send_straddle = None;
        }
        if matches!(self.state, State::TimeWait | State::Closed) {
            // Out-of-order data can no longer be completed.
            self.reasm.reset();
            // What is left to record is a re-ACK or two: TIME-WAIT costs its record and no
            // more (issue 22).
            self.trace.shrink();
            self.samples.shrink();
        }
        if let Some(q) = self.reasm.existing_mut() {
            q.release();
        }
        self.reasm.free_if_empty();
        if let Some(sb) = self.scoreboard.existing_mut() {
            sb.release();
        }
        self.scoreboard.free_if_empty();
        if self.reasm.is_empty() {
            self.sack_rx.free_if_empty();
        }
        if matches!(self.state, State::TimeWait | State::Closed) {
            // Nothing is or will be in flight: what RACK-TLP learnt about the path is of no
            // more use (TIME-WAIT keeps what RFC 9293 §3.6 needs, nothing else).
            self.rec.st = None;
        }
        // Not during a reduction: PRR's counts live there (a CWR after an ECE goes on with
        // nothing in RACK's ring on a connection without SACK).
        if !self.in_cwr() && !self.cc.in_recovery() {
            self.rec.release();
        }
    }
}
