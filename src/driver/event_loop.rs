//! The mio loop itself, generic over the device and the sans-IO core so tests can drive it
//! with a socket pair and a scripted core.

use super::exec::{self, Programs};
use super::forward::Upstreams;
use super::observe::{Capture, Observers};
use crate::config::SetupError;
use crate::endpoint::{Endpoint, Transmit};
use crate::time::{Duration, Instant};
use crate::wire::{Gso, RxMeta};
use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token};
use signal_hook_mio::v1_0::Signals;
use std::io::{self, ErrorKind};
use std::os::fd::AsRawFd;
use tracing::{debug, info};

const DEVICE: Token = Token(0);
const SIGNALS: Token = Token(1);
/// The control socket's listener; its clients get the tokens after it.
const CONTROL: Token = Token(2);
/// SIGCHLD: a program behind an `exec:` listener exited (its pipes take the tokens from
/// `exec::FIRST_TOKEN`).
const CHILD: Token = Token(exec::FIRST_TOKEN - 1);
/// Packets read before the core gets a `poll` (so due ACKs and timers are not starved by a
/// flood); the rest are read on the next turn without waiting.
const BATCH: usize = 256;
/// How long timers may wait while the device holds a backlog of packets (see
/// [`TimerHold`]). Longer than the worst queueing delay seen when the kernel's clients burst
/// (10,000 HTTP requests at once: ~200 ms on two CPUs), short beside the 1 s of a SYN,ACK
/// retransmission.
const MAX_TIMER_HOLD: Duration = Duration::from_millis(500);
/// Larger than any packet a TUN can deliver: an IPv6 packet's payload alone may be 65535
/// bytes, and a GSO super-segment is at most 64 KiB (the TUN's `gso_max_size`).
const BUF_LEN: usize = 65536 + 256;

/// What the loop needs from a packet device. [`crate::device::Tun`] is the real one.
pub trait Device: AsRawFd {
    /// Read one packet into `buf`: its length and what the device says about it.
    fn recv(&self, buf: &mut [u8]) -> io::Result<(usize, RxMeta)>;
    fn send(&self, packet: &[u8]) -> io::Result<usize>;
    /// Send a TCP super-segment for the device to split; `Unsupported` without offloads.
    fn send_gso(&self, _packet: &[u8], _gso: Gso) -> io::Result<usize> {
        Err(ErrorKind::Unsupported.into())
    }
    /// Whether it takes super-segments in two parts ([`Device::send_gso_parts`]).
    fn gathers(&self) -> bool {
        false
    }
    /// A super-segment as its headers and its payload, gathered in one write.
    fn send_gso_parts(&self, _headers: &[u8], _payload: &[u8], _gso: Gso) -> io::Result<usize> {
        Err(ErrorKind::Unsupported.into())
    }
}

impl Device for crate::device::Tun {
    fn recv(&self, buf: &mut [u8]) -> io::Result<(usize, RxMeta)> {
        crate::device::Tun::recv(self, buf)
    }
    fn send(&self, packet: &[u8]) -> io::Result<usize> {
        crate::device::Tun::send(self, packet)
    }
    fn send_gso(&self, packet: &[u8], gso: Gso) -> io::Result<usize> {
        crate::device::Tun::send_gso(self, packet, gso)
    }
    fn gathers(&self) -> bool {
        crate::device::Tun::gathers(self)
    }
    fn send_gso_parts(&self, headers: &[u8], payload: &[u8], gso: Gso) -> io::Result<usize> {
        crate::device::Tun::send_gso_parts(self, headers, payload, gso)
    }
}

/// What the loop needs from the sans-IO core. [`Endpoint`] is the real one.
pub trait Core {
    fn receive(&mut self, now: Instant, packet: &[u8], meta: RxMeta, tx: &mut dyn Transmit);
    fn poll(&mut self, now: Instant, tx: &mut dyn Transmit);
    /// `poll`, firing only the timers due by `timers_until` (see
    /// [`Endpoint::poll_timers_until`]).
    fn poll_timers_until(&mut self, now: Instant, timers_until: Instant, tx: &mut dyn Transmit) {
        let _ = timers_until;
        self.poll(now, tx);
    }
    fn poll_timeout(&self) -> Option<Instant>;
    fn shutdown(&mut self, now: Instant);
    fn is_drained(&self) -> bool;
    fn abort_all(&mut self, now: Instant, tx: &mut dyn Transmit);
    fn counters(&self) -> Vec<(&'static str, u64)>;
    /// The endpoint itself, for the control socket and `--ladder`; scripted cores have none.
    fn endpoint(&mut self) -> Option<&mut Endpoint> {
        None
    }
    /// `--impair` dropped `packet` on the link (`outbound`: on its way to the peer).
    fn on_link_drop(&mut self, now: Instant, outbound: bool, packet: &[u8]) {
        let _ = (now, outbound, packet);
    }
}

impl Core for Endpoint {
    fn on_link_drop(&mut self, now: Instant, outbound: bool, packet: &[u8]) {
        Endpoint::on_link_drop(self, now, outbound, packet);
    }
    fn receive(&mut self, now: Instant, packet: &[u8], meta: RxMeta, tx: &mut dyn Transmit) {
        Endpoint::receive_with(self, now, packet, meta, tx);
    }
    fn poll(&mut self, now: Instant, tx: &mut dyn Transmit) {
        Endpoint::poll(self, now, tx);
    }
    fn poll_timers_until(&mut self, now: Instant, timers_until: Instant, tx: &mut dyn Transmit) {
        Endpoint::poll_timers_until(self, now, timers_until, tx);
    }
    fn poll_timeout(&self) -> Option<Instant> {
        Endpoint::poll_timeout(self)
    }
    fn shutdown(&mut self, now: Instant) {
        Endpoint::shutdown(self, now);
    }
    fn is_drained(&self) -> bool {
        Endpoint::is_drained(self)
    }
    fn abort_all(&mut self, now: Instant, tx: &mut dyn Transmit) {
        Endpoint::abort_all(self, now, tx);
    }
    fn counters(&self) -> Vec<(&'static str, u64)> {
        Endpoint::counters(self)
    }
    fn endpoint(&mut self) -> Option<&mut Endpoint> {
        Some(self)
    }
}

/// Maps the OS clock to [`crate::time::Instant`]: microseconds since the driver started.
pub struct Clock {
    start: std::time::Instant,
}

impl Clock {
    pub fn start() -> Clock {
        Clock {
            start: std::time::Instant::now(),
        }
    }

    pub fn now(&self) -> Instant {
        let micros = self.start.elapsed().as_micros();
        Instant::from_micros(u64::try_from(micros).unwrap_or(u64::MAX))
    }
}

/// How the loop ended, for the shutdown log line and for tests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LoopStats {
    pub packets_read: u64,
    pub packets_written: u64,
    /// Of those, the segments that carry data, a SYN or a FIN (not pure ACKs): what a peer
    /// answers at once (`--busy-poll` spins after them).
    pub replies: u64,
    /// Turns that polled without sleeping because of `--busy-poll`.
    pub spins: u64,
    /// Outgoing packets the device refused (WouldBlock, ENOBUFS, ...) and that were dropped.
    pub packets_dropped: u64,
    /// The grace period ended (or a second signal came) with connections still open.
    pub aborted: bool,
}

/// Writes the core's packets to the device; a packet the device cannot take is dropped and
/// counted (TCP retransmits what matters).
struct DeviceTx<'a, D> {
    dev: &'a D,
    stats: &'a mut LoopStats,
    /// `--pcap`: what went out, as the interface saw it.
    capture: &'a mut Capture,
}

impl<D> DeviceTx<'_, D> {
    /// Count and capture what the device took; count and log what it refused.
    fn sent(&mut self, result: io::Result<usize>, packet: &[u8]) {
        self.sent_parts(result, packet, &[]);
    }

    /// [`DeviceTx::sent`] for a packet in two parts.
    fn sent_parts(&mut self, result: io::Result<usize>, headers: &[u8], payload: &[u8]) {
        match result {
            Ok(_) => {
                self.stats.packets_written += 1;
                self.capture.packet_parts(headers, payload);
            }
            Err(e) => {
                self.stats.packets_dropped += 1;
                let len = headers.len() + payload.len();
                debug!(len, error = %e, "device refused a packet; dropped");
            }
        }
    }
}

impl<D: Device> Transmit for DeviceTx<'_, D> {
    fn transmit(&mut self, packet: &[u8]) {
        let result = self.dev.send(packet);
        if result.is_ok() && expects_answer(packet) {
            self.stats.replies += 1;
        }
        self.sent(result, packet);
    }

    fn transmit_gso(&mut self, packet: &[u8], gso: Gso) {
        match self.dev.send_gso(packet, gso) {
            Err(e) if e.kind() == ErrorKind::Unsupported => {
                // Not configured so (the endpoint sends super-segments only when the device
                // offloads); split in software rather than lose the data.
                crate::wire::gso::transmit_split(packet, gso, &mut |p| self.transmit(p));
            }
            result => {
                if result.is_ok() {
                    self.stats.replies += 1;
                }
                self.sent(result, packet);
            }
        }
    }

    fn gathers(&self) -> bool {
        self.dev.gathers()
    }

    fn transmit_gso_parts(&mut self, headers: &[u8], payload: &[u8], gso: Gso) {
        let result = self.dev.send_gso_parts(headers, payload, gso);
        if result.is_ok() {
            self.stats.replies += 1;
        }
        self.sent_parts(result, headers, payload);
    }
}

/// The registered poll: the device's fd and the shutdown signals. Created before the startup
/// line is logged, so a signal sent as soon as that line appears is already caught.
pub struct EventLoop<'d, D: Device> {
    dev: &'d D,
    poll: Poll,
    signals: Signals,
    /// SIGCHLD, kept apart from the shutdown signals.
    children: Signals,
    programs: Programs,
    /// The upstream sockets of `forward:` connections.
    upstreams: Upstreams,
    grace: Duration,
    obs: Observers,
    /// Memory given back after a burst (`trim.rs`).
    trim: super::trim::HeapTrim,
    /// How long to keep polling without sleeping after sending data, a SYN or a FIN
    /// (`--busy-poll`).
    busy_poll: Duration,
}

impl<'d, D: Device> EventLoop<'d, D> {
    /// Register `dev` and `signals`; the first of these signals starts a graceful shutdown that
    /// lasts at most `grace`, the second aborts at once.
    pub fn new(dev: &'d D, signals: &[libc::c_int], grace: Duration) -> Result<Self, SetupError> {
        let io_err = |what| move |source| SetupError::Io { what, source };
        let poll = Poll::new().map_err(io_err("cannot create the event loop"))?;
        let mut signals =
            Signals::new(signals).map_err(io_err("cannot install the signal handlers"))?;
        poll.registry()
            .register(&mut SourceFd(&dev.as_raw_fd()), DEVICE, Interest::READABLE)
            .map_err(io_err("cannot watch the TUN device"))?;
        poll.registry()
            .register(&mut signals, SIGNALS, Interest::READABLE)
            .map_err(io_err("cannot watch for signals"))?;
        let mut children =
            Signals::new([libc::SIGCHLD]).map_err(io_err("cannot install the signal handlers"))?;
        poll.registry()
            .register(&mut children, CHILD, Interest::READABLE)
            .map_err(io_err("cannot watch for signals"))?;
        Ok(EventLoop {
            dev,
            poll,
            signals,
            children,
            programs: Programs::default(),
            upstreams: Upstreams::default(),
            grace,
            obs: Observers::default(),
            trim: Default::default(),
            busy_poll: Duration::ZERO,
        })
    }

    /// After sending data, a SYN or a FIN, poll without sleeping for up to `window` for the
    /// answer (`--busy-poll`; zero sleeps at once).
    #[must_use]
    pub fn busy_poll(mut self, window: Duration) -> Self {
        self.busy_poll = window;
        self
    }

    /// Bind and mark the relay's upstream sockets as `options` says.
    #[must_use]
    pub fn upstream_options(mut self, options: super::UpstreamOptions) -> Self {
        self.upstreams.options = options;
        self
    }

    /// Capture packets, print ladders, serve the control socket, as `obs` says.
    pub fn observe(mut self, mut obs: Observers) -> Result<Self, SetupError> {
        if let Some(ctl) = obs.control.as_mut() {
            ctl.register(self.poll.registry(), CONTROL)
                .map_err(|source| SetupError::Io {
                    what: "cannot watch the control socket",
                    source,
                })?;
        }
        self.obs = obs;
        Ok(self)
    }

    /// Run until shut down by a signal; then log the counters.
    pub fn run<C: Core>(mut self, core: &mut C, clock: &Clock) -> Result<LoopStats, SetupError> {
        let mut stats = LoopStats::default();
        let result = self.turn_until_done(core, clock, &mut stats);
        // The programs of the connections the shutdown closed or reset.
        self.programs.stop_all();
        self.upstreams.stop_all();
        // The ladders of the connections the shutdown closed.
        self.obs
            .after_poll(self.poll.registry(), core.endpoint(), clock.now());
        log_counters(core, &stats);
        result.map(|()| stats)
    }

    fn turn_until_done<C: Core>(
        &mut self,
        core: &mut C,
        clock: &Clock,
        stats: &mut LoopStats,
    ) -> Result<(), SetupError> {
        let mut events = Events::with_capacity(16);
        let mut buf = vec![0u8; BUF_LEN];
        let mut backlog = false;
        let mut hold = TimerHold::default();
        let mut grace_end: Option<Instant> = None;
        // The relayed connections that ran in a turn (reused: no allocation per turn).
        let mut ran = Vec::new();
        // When a turn last sent a segment the peer answers at once (for `--busy-poll`).
        let mut last_reply: Option<Instant> = None;
        let mut replies = 0;
        loop {
            let now = clock.now();
            let deadline = [core.poll_timeout(), grace_end, self.programs.poll_timeout()]
                .into_iter()
                .flatten()
                .min();
            // A `status` client waiting for its next page (control_server.rs) is served on
            // the next turn, as a backlog of packets is.
            let paging = self.obs.control.as_ref().is_some_and(|c| c.wants_turn());
            let spinning = !backlog && !paging && self.busy(last_reply, now);
            if spinning {
                stats.spins += 1;
            }
            let timeout = if backlog || paging || spinning {
                Some(Duration::ZERO)
            } else {
                deadline.map(|d| d.saturating_since(now))
            };
            match self.poll.poll(&mut events, timeout) {
                Ok(()) => {}
                Err(e) if e.kind() == ErrorKind::Interrupted => events.clear(),
                Err(source) => {
                    return Err(SetupError::Io {
                        what: "the event loop failed",
                        source,
                    });
                }
            }
            if spinning && events.is_empty() && deadline.is_none_or(|d| d > now) {
                // Nothing yet, nothing due: poll again, after whatever else wants this CPU
                // (the peer itself, when it shares it).
                std::thread::yield_now();
                continue;
            }

            let mut readable = backlog;
            let mut signalled = Vec::new();
            let mut control = Vec::new();
            let mut child_exited = false;
            for event in events.iter() {
                match event.token() {
                    DEVICE => readable = true,
                    SIGNALS => signalled.extend(self.signals.pending()),
                    CHILD => child_exited = self.children.pending().count() > 0 || child_exited,
                    token if Programs::owns(token) => self.programs.on_event(token),
                    token if Upstreams::owns(token) => self.upstreams.on_event(token),
                    other => control.push(other),
                }
            }

            let mut tx = DeviceTx {
                dev: self.dev,
                stats: &mut *stats,
                capture: &mut self.obs.capture,
            };
            for signal in signalled {
                let now = clock.now();
                if grace_end.is_some() {
                    info!(
                        "{} during shutdown: resetting the remaining connections",
                        signal_name(signal)
                    );
                    core.abort_all(now, &mut tx);
                    tx.stats.aborted = true;
                    return Ok(());
                }
                info!(
                    "{}: closing open connections (at most {:?}; send it again to abort)",
                    signal_name(signal),
                    self.grace
                );
                super::notify::stopping();
                core.shutdown(now);
                grace_end = Some(now + self.grace);
            }

            if readable {
                backlog = drain(self.dev, core, clock, &mut buf, &mut tx)?;
            }
            for token in control {
                let now = clock.now();
                let registry = self.poll.registry();
                Observers::on_control_event(
                    &mut self.obs.control,
                    token,
                    registry,
                    core.endpoint(),
                    now,
                );
            }

            // After every batch and every timeout, so no due ACK or FIN waits for a packet.
            let now = clock.now();
            let mut tx = DeviceTx {
                dev: self.dev,
                stats: &mut *stats,
                capture: &mut self.obs.capture,
            };
            core.poll_timers_until(now, hold.timers_until(now, backlog), &mut tx);
            if let Some(ep) = core.endpoint() {
                // Programs behind `exec:`: reap, start, stop, move bytes. What moved marks its
                // connection for the next `poll`, which then comes at once.
                let registry = self.poll.registry();
                if child_exited {
                    self.programs.reap(ep, registry);
                }
                if ep.has_relay_events() {
                    for event in ep.take_relay_events() {
                        self.programs.on_relay_event(&event, ep, registry);
                        self.upstreams.on_relay_event(&event, ep, registry);
                    }
                }
                ep.take_relay_ready(&mut ran);
                self.programs.pump(ep, registry, now, &ran);
                self.upstreams.pump(ep, registry, now, &ran);
                ran.clear();
                self.trim.after_poll(ep, now);
            }
            self.obs
                .after_poll(self.poll.registry(), core.endpoint(), now);
            let mut tx = DeviceTx {
                dev: self.dev,
                stats: &mut *stats,
                capture: &mut self.obs.capture,
            };

            if tx.stats.replies != replies {
                replies = tx.stats.replies;
                last_reply = Some(clock.now());
            }

            if let Some(end) = grace_end {
                if core.is_drained() {
                    info!("all connections closed");
                    return Ok(());
                }
                if now >= end {
                    info!("grace period over: resetting the remaining connections");
                    core.abort_all(now, &mut tx);
                    tx.stats.aborted = true;
                    return Ok(());
                }
            }
        }
    }
}

impl<D: Device> EventLoop<'_, D> {
    /// Busy polling, as Linux's `net.core.busy_poll` does for a socket: for `busy_poll`
    /// after the last segment the peer answers at once (data, a SYN or a FIN), the loop asks
    /// epoll without sleeping. A request/response peer's answer usually comes within tens of
    /// microseconds, and sleeping in between costs a wake-up on each side (issue 21: 23,000
    /// sequential connections/s became 27,000). Not after pure ACKs: a bulk receiver would
    /// spin while its sender is the slower side (CPU per GiB received rose 1.5× when every
    /// read started a spin). An idle daemon sleeps.
    fn busy(&self, last_reply: Option<Instant>, now: Instant) -> bool {
        last_reply.is_some_and(|t| now.saturating_since(t) < self.busy_poll)
    }
}

/// Timers wait while the device holds a backlog of packets, for at most [`MAX_TIMER_HOLD`]
/// at a time. The packets in the kernel's queue arrived before the timers that fell due
/// while they waited: a burst of 10,000 requests kept ACKs ~200 ms in the queue on two CPUs,
/// and firing the retransmission timers first sent thousands of spurious TLPs and RTOs (each
/// answered by a D-SACK, and each costing its connection the memory of its recovery). Linux
/// meets no such queue: its backlog (`netdev_max_backlog`, 1,000 packets) drops instead;
/// synack's TUN queue holds 100,000 so that nothing is dropped (issue 23). In a sustained
/// overload the timers still fire, every `MAX_TIMER_HOLD`.
#[derive(Debug, Default)]
struct TimerHold {
    /// When the current backlog was first seen (or the hold last gave way).
    since: Option<Instant>,
}

impl TimerHold {
    /// After a drain that left `backlog` packets waiting (or none): the instant up to which
    /// the due timers fire now.
    fn timers_until(&mut self, now: Instant, backlog: bool) -> Instant {
        if !backlog {
            self.since = None;
            return now;
        }
        match self.since {
            Some(since) if now.saturating_since(since) < MAX_TIMER_HOLD => since,
            _ => {
                self.since = Some(now);
                now
            }
        }
    }
}

/// Whether `packet` (one of ours) is a TCP segment with data, a SYN or a FIN: one its peer
/// answers at once. ICMP and pure ACKs are not.
fn expects_answer(packet: &[u8]) -> bool {
    const SYN_FIN: u8 = 0x03;
    let byte = |i: usize| packet.get(i).copied().unwrap_or(0);
    let (ip_len, proto, total) = match byte(0) >> 4 {
        4 => (
            usize::from(byte(0) & 0x0f) * 4,
            byte(9),
            usize::from(u16::from_be_bytes([byte(2), byte(3)])),
        ),
        6 => (
            40,
            byte(6),
            40 + usize::from(u16::from_be_bytes([byte(4), byte(5)])),
        ),
        _ => return false,
    };
    if proto != 6 {
        return false;
    }
    let data_offset = usize::from(byte(ip_len + 12) >> 4) * 4;
    byte(ip_len + 13) & SYN_FIN != 0 || total > ip_len + data_offset
}

/// Read up to [`BATCH`] packets into the core. Returns whether more may be waiting.
fn drain<D: Device, C: Core>(
    dev: &D,
    core: &mut C,
    clock: &Clock,
    buf: &mut [u8],
    tx: &mut DeviceTx<'_, D>,
) -> Result<bool, SetupError> {
    let mut read = 0;
    // One clock read per batch: the packets of a batch arrive within microseconds of each
    // other, and a read per packet showed up in profiles (vDSO clock_gettime).
    let now = clock.now();
    while read < BATCH {
        match dev.recv(buf) {
            Ok((len, meta)) => {
                read += 1;
                tx.stats.packets_read += 1;
                let packet = buf.get(..len).unwrap_or_default();
                tx.capture.packet(packet);
                core.receive(now, packet, meta, tx);
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(false),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(source) => {
                return Err(SetupError::Io {
                    what: "reading from the TUN device failed",
                    source,
                });
            }
        }
    }
    Ok(true)
}

fn signal_name(signal: libc::c_int) -> String {
    match signal {
        libc::SIGINT => "SIGINT".to_owned(),
        libc::SIGTERM => "SIGTERM".to_owned(),
        other => format!("signal {other}"),
    }
}

fn log_counters<C: Core>(core: &C, stats: &LoopStats) {
    let driver = [
        ("packets_read", stats.packets_read),
        ("packets_written", stats.packets_written),
        ("packets_dropped_by_device", stats.packets_dropped),
    ];
    let line = core
        .counters()
        .into_iter()
        .chain(driver)
        .filter(|(_, v)| *v != 0)
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(" ");
    info!(
        "synack stopped; counters: {}",
        if line.is_empty() { "all zero" } else { &line }
    );
}

#[cfg(test)]
mod tests;
