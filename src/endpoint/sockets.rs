//! The socket API: synack's TCP driven by a program, as a POSIX program drives the kernel's.
//!
//! [`Endpoint::sockets`] lends a [`Sockets`], which opens, binds, listens on, accepts,
//! connects, reads, writes, shuts down and closes TCP sockets named by [`SocketHandle`]s, with
//! the nonblocking semantics and the errors ([`SocketError`], each with its `errno`) a POSIX
//! caller expects. It is sans-IO like the rest of the endpoint: no clock (calls that start
//! something take `now`), no system calls. After any call, run [`Endpoint::poll`]: segments the
//! call made due (a SYN, data, a FIN, a RST, a window update) go out there.
//!
//! Where RFC 9293's user interface (§3.9.1) and POSIX leave a choice, the calls do what
//! Linux's do, call by call:
//! - `connect` is nonblocking: `InProgress` once the SYN is queued, `Already` while it is in
//!   flight, `Ok` once (the first call after the handshake completed), `AlreadyConnected`
//!   after that; a refused, reset or timed-out attempt is returned by the next call (and by
//!   [`Sockets::take_error`], `SO_ERROR`).
//! - `recv` returns `Ok(0)` at the end of the stream (the peer's FIN, or `shutdown(Read)`), a
//!   pending error once, `WouldBlock` when nothing is queued yet.
//! - `send` on a socket whose sending side is shut, or never connected, is `BrokenPipe`
//!   (Linux's `EPIPE`); a full send buffer is `WouldBlock`.
//! - `close` with unread data, or with `SO_LINGER` 0, aborts with a RST (RFC 9293 §3.10.4
//!   SHLD-3, §3.10.5); otherwise a FIN follows the queued data and the connection ends on its
//!   own (FIN-WAIT, TIME-WAIT) with no socket left. Closing a socket in SYN-SENT drops the
//!   attempt silently; closing a listener resets the connections still in its accept queue.
//! - `listen(backlog)` holds `backlog + 1` established connections (Linux's
//!   `sk_acceptq_is_full`); beyond that the handshake's final ACK is dropped and the SYN,ACK
//!   retransmitted, as Linux does.
//!
//! A socket of one family takes addresses of its own family; an IPv6 socket also takes
//! IPv4-mapped addresses (`::ffff:198.18.0.2`), which stand for the IPv4 address, and one bound
//! to `::` listens on IPv4 too (Linux without `IPV6_V6ONLY`).

use super::limits::Queued;
use super::{Endpoint, Entry, ListenTarget, Listener, entry_mut};
use crate::services::{App, SocketApp};
use crate::tcp::{Connection, ResetCause, Socket, SocketInfo, State};
use crate::time::{Duration, Instant};
use crate::wire::IcmpErrorKind;
use crate::wire::Quad;
use std::collections::VecDeque;
use std::fmt;
use std::net::{IpAddr, SocketAddr};

/// The most connections `listen` may queue, as Linux's `net.core.somaxconn` (4096).
pub const SOMAXCONN: usize = 4096;

/// Names a socket, as a file descriptor does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SocketHandle(pub u32);

impl fmt::Display for SocketHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "socket {}", self.0)
    }
}

/// Why a socket call failed, as the errno a POSIX caller would get.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SocketError {
    /// Nothing to read, no room to write, no connection to accept yet (`EAGAIN`).
    WouldBlock,
    /// The SYN is queued; the handshake goes on (`EINPROGRESS`).
    InProgress,
    /// A connect is already in progress (`EALREADY`).
    Already,
    /// The peer answered the SYN with a RST (`ECONNREFUSED`).
    ConnectionRefused,
    /// The peer reset the connection (`ECONNRESET`).
    ConnectionReset,
    /// Retransmissions went unanswered (R2, `TCP_USER_TIMEOUT`, SYN retries: `ETIMEDOUT`).
    TimedOut,
    /// An ICMP host unreachable, time exceeded or administratively prohibited ended the
    /// connect, or was the last word before a time-out (`EHOSTUNREACH`).
    HostUnreachable,
    /// An ICMP parameter problem ended it (`EPROTO`).
    ProtocolError,
    /// The socket is not connected (`ENOTCONN`).
    NotConnected,
    /// The socket is connected, or listening (`EISCONN`).
    AlreadyConnected,
    /// A call that does not fit the socket's state, or a bad argument (`EINVAL`).
    InvalidArgument,
    /// Another socket or a built-in service holds that address and port (`EADDRINUSE`).
    AddrInUse,
    /// Not an address of ours, or no ephemeral port is left (`EADDRNOTAVAIL`).
    AddrNotAvailable,
    /// Nowhere to send to: no address of that family, or a non-unicast or own address
    /// (`ENETUNREACH`).
    NetworkUnreachable,
    /// Writing after `shutdown(Write)`, after the connection ended, or on a socket never
    /// connected (`EPIPE`).
    BrokenPipe,
    /// No such socket (`EBADF`).
    BadHandle,
    /// An option synack does not have (`ENOPROTOOPT`).
    NoSuchOption,
    /// The address family does not match the socket's (`EAFNOSUPPORT`).
    FamilyNotSupported,
    /// The endpoint is shutting down or holds `--max-connections` (`ENOBUFS`).
    NoBuffers,
}

impl SocketError {
    /// The errno (Linux's values, from `libc`).
    pub fn errno(self) -> i32 {
        match self {
            SocketError::WouldBlock => libc::EAGAIN,
            SocketError::InProgress => libc::EINPROGRESS,
            SocketError::Already => libc::EALREADY,
            SocketError::ConnectionRefused => libc::ECONNREFUSED,
            SocketError::ConnectionReset => libc::ECONNRESET,
            SocketError::TimedOut => libc::ETIMEDOUT,
            SocketError::HostUnreachable => libc::EHOSTUNREACH,
            SocketError::ProtocolError => libc::EPROTO,
            SocketError::NotConnected => libc::ENOTCONN,
            SocketError::AlreadyConnected => libc::EISCONN,
            SocketError::InvalidArgument => libc::EINVAL,
            SocketError::AddrInUse => libc::EADDRINUSE,
            SocketError::AddrNotAvailable => libc::EADDRNOTAVAIL,
            SocketError::NetworkUnreachable => libc::ENETUNREACH,
            SocketError::BrokenPipe => libc::EPIPE,
            SocketError::BadHandle => libc::EBADF,
            SocketError::NoSuchOption => libc::ENOPROTOOPT,
            SocketError::FamilyNotSupported => libc::EAFNOSUPPORT,
            SocketError::NoBuffers => libc::ENOBUFS,
        }
    }

    /// The error a connection that ended this way leaves on its socket (`SO_ERROR`).
    fn from_cause(cause: ResetCause) -> Option<SocketError> {
        match cause {
            ResetCause::Refused => Some(SocketError::ConnectionRefused),
            ResetCause::PeerReset => Some(SocketError::ConnectionReset),
            ResetCause::TimedOut => Some(SocketError::TimedOut),
            // As Linux's icmp_err_convert / icmpv6_err_convert.
            ResetCause::Unreachable(kind) => Some(match kind {
                IcmpErrorKind::NetUnreachable => SocketError::NetworkUnreachable,
                IcmpErrorKind::PortUnreachable => SocketError::ConnectionRefused,
                IcmpErrorKind::ProtocolUnreachable => SocketError::NoSuchOption,
                IcmpErrorKind::ParameterProblem => SocketError::ProtocolError,
                IcmpErrorKind::HostUnreachable
                | IcmpErrorKind::TimeExceeded
                | IcmpErrorKind::AdminProhibited
                | IcmpErrorKind::PacketTooBig { .. } => SocketError::HostUnreachable,
            }),
            // We aborted it ourselves (close, SO_LINGER 0, shutdown of the endpoint).
            ResetCause::Aborted => None,
        }
    }
}

impl fmt::Display for SocketError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SocketError::WouldBlock => "operation would block",
            SocketError::InProgress => "operation now in progress",
            SocketError::Already => "operation already in progress",
            SocketError::ConnectionRefused => "connection refused",
            SocketError::ConnectionReset => "connection reset by peer",
            SocketError::TimedOut => "connection timed out",
            SocketError::HostUnreachable => "no route to host",
            SocketError::ProtocolError => "protocol error",
            SocketError::NotConnected => "socket is not connected",
            SocketError::AlreadyConnected => "socket is already connected",
            SocketError::InvalidArgument => "invalid argument",
            SocketError::AddrInUse => "address already in use",
            SocketError::AddrNotAvailable => "cannot assign requested address",
            SocketError::NetworkUnreachable => "network is unreachable",
            SocketError::BrokenPipe => "broken pipe",
            SocketError::BadHandle => "bad socket handle",
            SocketError::NoSuchOption => "protocol not available",
            SocketError::FamilyNotSupported => "address family not supported",
            SocketError::NoBuffers => "no buffer space available",
        })
    }
}

impl std::error::Error for SocketError {}

/// Which side `shutdown` closes (`SHUT_RD`, `SHUT_WR`, `SHUT_RDWR`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shutdown {
    Read,
    Write,
    Both,
}

/// What a socket is ready for, as `poll` reports it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Readiness {
    /// `POLLIN`: data to read, the end of the stream, a connection to accept, or an error.
    pub readable: bool,
    /// `POLLOUT`: room in the send buffer of a connected socket.
    pub writable: bool,
    /// `POLLERR`: an error is pending (`SO_ERROR`).
    pub error: bool,
    /// `POLLHUP`: both directions are shut, or the connection is over.
    pub hangup: bool,
    /// `POLLRDHUP`: the peer closed its side (or we shut reading).
    pub read_hangup: bool,
}

/// A socket option and its value (`setsockopt` / `getsockopt`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SockOpt {
    /// `SO_REUSEADDR`.
    ReuseAddr(bool),
    /// `SO_KEEPALIVE`: keep-alive probes with the endpoint's settings (`--keepalive`, or
    /// Linux's defaults: 2 hours idle, 75 s apart, 9 probes).
    KeepAlive(bool),
    /// `TCP_NODELAY`: Nagle's algorithm off.
    NoDelay(bool),
    /// `SO_RCVBUF` / `SO_SNDBUF` in bytes. As on Linux the buffer is twice what is set (the
    /// other half stands for bookkeeping), and `getsockopt` reports that.
    RcvBuf(usize),
    SndBuf(usize),
    /// `SO_LINGER`: `Some(0)` makes `close` abort with a RST; other values are kept and
    /// reported (a nonblocking close never waits).
    Linger(Option<u32>),
    /// `TCP_MAXSEG`: the MSS announced in our SYN or SYN,ACK, and a cap on what we send.
    MaxSeg(u16),
    /// `TCP_USER_TIMEOUT` in milliseconds (0: off).
    UserTimeout(u32),
}

/// The name of an option, for [`Sockets::get_option`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SockOptName {
    ReuseAddr,
    KeepAlive,
    NoDelay,
    RcvBuf,
    SndBuf,
    Linger,
    MaxSeg,
    UserTimeout,
}

/// `TCP_INFO`, under Linux's names (see [`SocketInfo`]).
pub type SocketTcpInfo = SocketInfo;

/// Options set on a socket, kept for the connections it makes or accepts.
#[derive(Clone, Copy, Debug, Default)]
struct Options {
    reuse_addr: bool,
    keepalive: bool,
    nodelay: bool,
    rcvbuf: Option<usize>,
    sndbuf: Option<usize>,
    linger: Option<u32>,
    maxseg: Option<u16>,
    user_timeout: Option<u32>,
}

impl Options {
    /// Whether any option changes the TCP tunables a connection starts with.
    fn shapes_tcp(&self) -> bool {
        self.nodelay
            || self.rcvbuf.is_some()
            || self.sndbuf.is_some()
            || self.user_timeout.is_some()
    }

    /// `base` with these options applied.
    fn tcp_config(&self, base: &crate::tcp::Config) -> crate::tcp::Config {
        let mut cfg = base.clone();
        if self.nodelay {
            cfg.nagle = false;
        }
        if let Some(n) = self.rcvbuf {
            cfg.rmem = crate::tcp::BufferSizes::fixed(n);
        }
        if let Some(n) = self.sndbuf {
            cfg.wmem = crate::tcp::BufferSizes::fixed(n);
        }
        if let Some(ms) = self.user_timeout {
            cfg.user_timeout = Some(Duration::from_millis(u64::from(ms)));
        }
        cfg
    }
}

/// Where a socket is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Fresh, or bound.
    Idle,
    /// Listening: its listener's index.
    Listening(usize),
    /// Its connection is in the table: slot and generation. `reported`: a connect call has
    /// seen it established (later ones are `AlreadyConnected`).
    Connected {
        slot: usize,
        generation: u32,
        quad: Quad,
        reported: bool,
        active: bool,
    },
    /// Its connection has left the table (closed, reset, timed out).
    Ended { quad: Quad },
}

#[derive(Debug)]
struct SocketRec {
    v6: bool,
    bound: Option<SocketAddr>,
    phase: Phase,
    opts: Options,
    /// The pending error (`SO_ERROR`), taken by the next call that reports it.
    error: Option<SocketError>,
    shut_read: bool,
    shut_write: bool,
}

/// Every socket, indexed by handle: the lowest free number is reused, as for descriptors.
#[derive(Debug, Default)]
pub(super) struct SocketTable {
    socks: Vec<Option<SocketRec>>,
    /// Per listener index: the established connections `accept` has not handed out, oldest
    /// first (slot, generation).
    accept_queues: Vec<VecDeque<(usize, u32)>>,
}

impl SocketTable {
    fn get(&self, h: SocketHandle) -> Result<&SocketRec, SocketError> {
        self.socks
            .get(h.0 as usize)
            .and_then(Option::as_ref)
            .ok_or(SocketError::BadHandle)
    }

    fn get_mut(&mut self, h: SocketHandle) -> Result<&mut SocketRec, SocketError> {
        self.socks
            .get_mut(h.0 as usize)
            .and_then(Option::as_mut)
            .ok_or(SocketError::BadHandle)
    }

    fn insert(&mut self, rec: SocketRec) -> SocketHandle {
        let index = match self.socks.iter().position(Option::is_none) {
            Some(i) => i,
            None => {
                self.socks.push(None);
                self.socks.len() - 1
            }
        };
        if let Some(slot) = self.socks.get_mut(index) {
            *slot = Some(rec);
        }
        SocketHandle(u32::try_from(index).unwrap_or(u32::MAX))
    }

    /// The connection of `h` left the table: keep how it ended for the socket's next call.
    pub(super) fn connection_gone(&mut self, h: SocketHandle, cause: Option<ResetCause>) {
        if let Ok(rec) = self.get_mut(h)
            && let Phase::Connected { quad, .. } = rec.phase
        {
            rec.phase = Phase::Ended { quad };
            if rec.error.is_none() {
                rec.error = cause.and_then(SocketError::from_cause);
            }
        }
    }

    /// A connection of listener `listener` completed its handshake: queue it for `accept`.
    pub(super) fn enqueue_accept(&mut self, listener: usize, slot: usize, generation: u32) {
        if self.accept_queues.len() <= listener {
            self.accept_queues.resize_with(listener + 1, VecDeque::new);
        }
        if let Some(q) = self.accept_queues.get_mut(listener) {
            q.push_back((slot, generation));
        }
    }
}

/// The socket API over an endpoint; see the module docs. Borrowed from
/// [`Endpoint::sockets`].
pub struct Sockets<'a> {
    ep: &'a mut Endpoint,
}

impl Endpoint {
    /// The socket API (see [`Sockets`]).
    pub fn sockets(&mut self) -> Sockets<'_> {
        Sockets { ep: self }
    }
}

/// An IPv4-mapped IPv6 address stands for the IPv4 address.
fn canonical(addr: SocketAddr) -> SocketAddr {
    SocketAddr::new(addr.ip().to_canonical(), addr.port())
}

impl Sockets<'_> {
    /// `socket(AF_INET or AF_INET6, SOCK_STREAM, IPPROTO_TCP)`.
    pub fn socket(&mut self, v6: bool) -> SocketHandle {
        self.ep.sockets.insert(SocketRec {
            v6,
            bound: None,
            phase: Phase::Idle,
            opts: Options::default(),
            error: None,
            shut_read: false,
            shut_write: false,
        })
    }

    /// `bind`: the address must be one of ours or unspecified (any of ours); port 0 picks a
    /// free ephemeral port.
    pub fn bind(&mut self, h: SocketHandle, addr: SocketAddr) -> Result<(), SocketError> {
        let rec = self.ep.sockets.get(h)?;
        if rec.bound.is_some() || rec.phase != Phase::Idle {
            return Err(SocketError::InvalidArgument);
        }
        if addr.is_ipv6() && !rec.v6 {
            return Err(SocketError::FamilyNotSupported);
        }
        let reuse = rec.opts.reuse_addr;
        let addr = if addr.ip().is_unspecified() {
            addr
        } else {
            canonical(addr)
        };
        if !addr.ip().is_unspecified() && !self.ep.is_local(addr.ip()) {
            return Err(SocketError::AddrNotAvailable);
        }
        let port = if addr.port() == 0 {
            self.free_port(addr.ip()).ok_or(SocketError::AddrInUse)?
        } else {
            if self.port_taken(h, addr.ip(), addr.port(), reuse) {
                return Err(SocketError::AddrInUse);
            }
            addr.port()
        };
        self.ep.sockets.get_mut(h)?.bound = Some(SocketAddr::new(addr.ip(), port));
        Ok(())
    }

    /// Whether `port` on `ip` is held by a listener or another bound socket (unless both
    /// sockets set `SO_REUSEADDR`, and neither listens: a listener's port is never shared).
    fn port_taken(&self, h: SocketHandle, ip: IpAddr, port: u16, reuse: bool) -> bool {
        let overlaps = |other: Option<IpAddr>| match other {
            None => true,
            Some(o) => ip.is_unspecified() || o == ip || o.is_unspecified(),
        };
        let listening = self
            .ep
            .listeners
            .iter()
            .any(|l| l.open && l.port == port && overlaps(l.addr));
        if listening {
            return true;
        }
        self.ep.sockets.socks.iter().enumerate().any(|(i, s)| {
            s.as_ref().is_some_and(|s| {
                i != h.0 as usize
                    && s.bound
                        .is_some_and(|b| b.port() == port && overlaps(Some(b.ip())))
                    && !(reuse && s.opts.reuse_addr && matches!(s.phase, Phase::Idle))
            })
        })
    }

    /// A free ephemeral port on `ip` (RFC 6335's range), from the endpoint's cursor.
    fn free_port(&mut self, ip: IpAddr) -> Option<u16> {
        let (first, last) = (
            *super::client::EPHEMERAL_PORTS.start(),
            *super::client::EPHEMERAL_PORTS.end(),
        );
        (first..=last).find(|&p| {
            !self.ep.listeners.iter().any(|l| l.open && l.port == p)
                && !self.ep.sockets.socks.iter().flatten().any(|s| {
                    s.bound
                        .is_some_and(|b| b.port() == p && (b.ip() == ip || b.ip().is_unspecified()))
                })
        })
    }

    /// `listen`: take connections on the bound address (an unbound socket gets an ephemeral
    /// port on every address). Again on a listening socket: a new backlog.
    pub fn listen(&mut self, h: SocketHandle, backlog: usize) -> Result<(), SocketError> {
        let backlog = backlog.min(SOMAXCONN);
        let rec = self.ep.sockets.get(h)?;
        match rec.phase {
            Phase::Listening(l) => {
                if let Some(listener) = self.ep.listeners.get_mut(l) {
                    listener.backlog = Some(backlog);
                }
                return Ok(());
            }
            Phase::Idle => {}
            _ => return Err(SocketError::InvalidArgument),
        }
        if rec.bound.is_none() {
            let any = if rec.v6 {
                IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED)
            } else {
                IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED)
            };
            self.bind(h, SocketAddr::new(any, 0))?;
        }
        let rec = self.ep.sockets.get(h)?;
        let bound = rec.bound.ok_or(SocketError::InvalidArgument)?;
        if self
            .ep
            .listeners
            .iter()
            .any(|l| l.open && l.port == bound.port())
        {
            return Err(SocketError::AddrInUse);
        }
        let opts = rec.opts;
        let listener = Listener {
            port: bound.port(),
            addr: (!bound.ip().is_unspecified()).then_some(bound.ip()),
            v4_only: !rec.v6,
            target: ListenTarget::Socket(h),
            backlog: Some(backlog),
            tcp: opts
                .shapes_tcp()
                .then(|| std::sync::Arc::new(opts.tcp_config(&self.ep.tcp))),
            mss: opts.maxseg,
            open: true,
        };
        // Reuse a closed listener's slot once nothing is counted in its queues.
        let free = self.ep.listeners.iter().enumerate().position(|(i, l)| {
            !l.open
                && self.ep.queues.half_open(i) == 0
                && self.ep.queues.accept(i) == 0
                && self.ep.queues.fast_open(i) == 0
        });
        let index = match free {
            Some(i) => {
                if let Some(slot) = self.ep.listeners.get_mut(i) {
                    *slot = listener;
                }
                if let Some(at) = self.ep.cookies_sent_at.get_mut(i) {
                    *at = None;
                }
                i
            }
            None => {
                self.ep.listeners.push(listener);
                self.ep.cookies_sent_at.push(None);
                self.ep.queues.grow(self.ep.listeners.len());
                self.ep.listeners.len() - 1
            }
        };
        if let Some(q) = self.ep.sockets.accept_queues.get_mut(index) {
            q.clear();
        }
        self.ep.sockets.get_mut(h)?.phase = Phase::Listening(index);
        Ok(())
    }

    /// Stop listening: connections not yet accepted are reset (established) or dropped
    /// (half-open), as Linux's `inet_csk_listen_stop` does. The socket stays bound.
    pub fn unlisten(&mut self, h: SocketHandle) -> Result<(), SocketError> {
        let rec = self.ep.sockets.get_mut(h)?;
        let Phase::Listening(index) = rec.phase else {
            return Err(SocketError::InvalidArgument);
        };
        rec.phase = Phase::Idle;
        if let Some(l) = self.ep.listeners.get_mut(index) {
            l.open = false;
        }
        if let Some(q) = self.ep.sockets.accept_queues.get_mut(index) {
            q.clear();
        }
        let children: Vec<usize> = self
            .ep
            .slots
            .iter()
            .enumerate()
            .filter_map(|(i, s)| {
                let e = s.entry.as_ref()?;
                (e.listener.map(|l| l as usize) == Some(index) && e.awaiting_accept).then_some(i)
            })
            .collect();
        for id in children {
            if let Some(entry) = entry_mut(&mut self.ep.slots, id) {
                entry.awaiting_accept = false;
                if let App::Socket(app) = &mut entry.app {
                    app.detach();
                }
                if entry.conn.state() == State::SynReceived {
                    // A request not yet a connection: forgotten without a word.
                    self.ep.remove(id);
                    continue;
                }
                entry.conn.abort();
            }
            self.ep.requeue(id);
            self.ep.mark_dirty(id);
        }
        Ok(())
    }

    /// `accept`: the oldest established connection of a listening socket, as a new socket,
    /// with the peer's address.
    pub fn accept(&mut self, h: SocketHandle) -> Result<(SocketHandle, SocketAddr), SocketError> {
        let rec = self.ep.sockets.get(h)?;
        let Phase::Listening(index) = rec.phase else {
            return Err(SocketError::InvalidArgument);
        };
        let (v6, opts) = (rec.v6, rec.opts);
        loop {
            let Some((slot, generation)) = self
                .ep
                .sockets
                .accept_queues
                .get_mut(index)
                .and_then(VecDeque::pop_front)
            else {
                return Err(SocketError::WouldBlock);
            };
            let live = self.ep.slots.get(slot).is_some_and(|s| {
                s.generation == generation
                    && s.entry.as_ref().is_some_and(|e| {
                        e.awaiting_accept && e.listener.map(|l| l as usize) == Some(index)
                    })
            });
            if !live {
                // It ended before anyone accepted it (reset, timed out).
                continue;
            }
            let Some(entry) = entry_mut(&mut self.ep.slots, slot) else {
                continue;
            };
            let quad = entry.conn.quad();
            let child = self.ep.sockets.insert(SocketRec {
                v6,
                bound: Some(quad.local),
                phase: Phase::Connected {
                    slot,
                    generation,
                    quad,
                    reported: true,
                    active: false,
                },
                opts: Options {
                    reuse_addr: false,
                    ..opts
                },
                error: None,
                shut_read: false,
                shut_write: false,
            });
            if let Some(entry) = entry_mut(&mut self.ep.slots, slot) {
                entry.awaiting_accept = false;
                if let App::Socket(app) = &mut entry.app {
                    app.attach(child);
                }
            }
            self.ep.requeue(slot);
            return Ok((child, quad.remote));
        }
    }

    /// `connect` (RFC 9293 §3.10.1 OPEN, active), nonblocking: see the module docs for what
    /// each call returns as the handshake goes on.
    pub fn connect(
        &mut self,
        now: Instant,
        h: SocketHandle,
        remote: SocketAddr,
    ) -> Result<(), SocketError> {
        let rec = self.ep.sockets.get_mut(h)?;
        match rec.phase {
            Phase::Listening(_) => return Err(SocketError::AlreadyConnected),
            Phase::Connected {
                slot,
                generation,
                reported,
                ..
            } => {
                if reported {
                    return Err(SocketError::AlreadyConnected);
                }
                let state = self
                    .ep
                    .slots
                    .get(slot)
                    .filter(|s| s.generation == generation)
                    .and_then(|s| s.entry.as_ref())
                    .map(|e| e.conn.state());
                return match state {
                    Some(State::SynSent | State::SynReceived) => Err(SocketError::Already),
                    _ => {
                        if let Phase::Connected { reported, .. } = &mut rec.phase {
                            *reported = true;
                        }
                        Ok(())
                    }
                };
            }
            Phase::Ended { .. } => {
                // A failed attempt reports its error once; then the socket may try again.
                if let Some(err) = rec.error.take() {
                    rec.phase = Phase::Idle;
                    return Err(err);
                }
                return Err(SocketError::AlreadyConnected);
            }
            Phase::Idle => {}
        }
        if remote.is_ipv6() && !rec.v6 {
            return Err(SocketError::FamilyNotSupported);
        }
        let remote = canonical(remote);
        let (bound, opts) = (rec.bound, rec.opts);
        if !self.ep.accepting || self.ep.open_connections() >= self.ep.limits.max_connections {
            return Err(SocketError::NoBuffers);
        }
        if super::martian::is_martian(remote.ip())
            || self.ep.is_local(remote.ip())
            || remote.port() == 0
        {
            return Err(SocketError::NetworkUnreachable);
        }
        let local_ip = match bound {
            Some(b) if !b.ip().is_unspecified() => {
                if b.is_ipv4() != remote.is_ipv4() {
                    return Err(SocketError::NetworkUnreachable);
                }
                b.ip()
            }
            _ => self
                .ep
                .addrs
                .iter()
                .copied()
                .find(|a| a.is_ipv4() == remote.is_ipv4())
                .ok_or(SocketError::NetworkUnreachable)?,
        };
        let quad = match bound.map(|b| b.port()).filter(|&p| p != 0) {
            Some(port) => Quad {
                local: SocketAddr::new(local_ip, port),
                remote,
            },
            None => self
                .ep
                .free_quad(local_ip, remote)
                .ok_or(SocketError::AddrNotAvailable)?,
        };
        if self.ep.quad_in_use(&quad) {
            return Err(SocketError::AddrNotAvailable);
        }
        let iss = self.ep.isn.isn(now, &quad);
        let mss = match opts.maxseg {
            Some(clamp) => self.ep.local_mss(&quad).min(clamp),
            None => self.ep.local_mss(&quad),
        };
        let cfg = if opts.shapes_tcp() {
            std::sync::Arc::new(opts.tcp_config(&self.ep.tcp))
        } else {
            self.ep.tcp.clone()
        };
        let mut conn = Connection::connect(now, quad, iss, mss, &cfg);
        if opts.keepalive {
            conn.set_keepalive(Some(self.keepalive()));
        }
        conn.set_memory(
            self.ep
                .limits
                .max_buffer_memory
                .saturating_sub(self.ep.mem_used),
            self.ep.mem_pressure,
        );
        self.ep.counters.active_opens += 1;
        let id = self.ep.insert(
            now,
            quad,
            Entry::new(conn, App::Socket(SocketApp::held_by(h))),
        );
        let generation = self.ep.slots.get(id).map_or(0, |s| s.generation);
        self.ep.mark_dirty(id);
        let rec = self.ep.sockets.get_mut(h)?;
        rec.bound = Some(quad.local);
        rec.phase = Phase::Connected {
            slot: id,
            generation,
            quad,
            reported: false,
            active: true,
        };
        Err(SocketError::InProgress)
    }

    /// `sendto(fd, data, MSG_FASTOPEN, remote)`: [`Sockets::connect`] with TCP Fast Open (RFC
    /// 7413 §4.2.1). With a cookie for `remote`'s address (from an earlier connection's
    /// SYN,ACK), the SYN carries it and the front of `data`: returns how much of `data` was
    /// queued. Without one, the SYN asks for a cookie, nothing of `data` is taken, and the
    /// answer is `InProgress`, as Linux's (the program sends it once connected).
    pub fn connect_fast_open(
        &mut self,
        now: Instant,
        h: SocketHandle,
        remote: SocketAddr,
        data: &[u8],
    ) -> Result<usize, SocketError> {
        match self.connect(now, h, remote) {
            Err(SocketError::InProgress) => {}
            Ok(()) => return Err(SocketError::AlreadyConnected),
            Err(e) => return Err(e),
        }
        let Phase::Connected { slot, .. } = self.ep.sockets.get(h)?.phase else {
            return Err(SocketError::InProgress);
        };
        let cached = self.ep.fastopen_cookies.get(canonical(remote).ip());
        let Some(entry) = entry_mut(&mut self.ep.slots, slot) else {
            return Err(SocketError::InProgress);
        };
        match cached {
            Some((cookie, mss)) => Ok(entry.conn.connect_fast_open(cookie, data, mss)),
            None => {
                let request = crate::wire::FastOpenCookie::request(false);
                entry.conn.connect_fast_open(request, &[], 0);
                Err(SocketError::InProgress)
            }
        }
    }

    /// The keep-alive settings `SO_KEEPALIVE` turns on: the endpoint's, or Linux's defaults.
    fn keepalive(&self) -> crate::tcp::KeepAlive {
        crate::tcp::KeepAlive::after(
            self.ep
                .limits
                .keepalive
                .unwrap_or(Duration::from_secs(2 * 60 * 60)),
        )
    }

    /// The connection of `h`, if it is in the table.
    fn conn_mut(&mut self, h: SocketHandle) -> Result<(&mut Entry, usize), SocketError> {
        let rec = self.ep.sockets.get(h)?;
        let Phase::Connected {
            slot, generation, ..
        } = rec.phase
        else {
            return Err(SocketError::NotConnected);
        };
        match self.ep.slots.get_mut(slot) {
            Some(s) if s.generation == generation => s
                .entry
                .as_deref_mut()
                .map(|e| (e, slot))
                .ok_or(SocketError::NotConnected),
            _ => Err(SocketError::NotConnected),
        }
    }

    fn conn(&self, h: SocketHandle) -> Option<&Connection> {
        let rec = self.ep.sockets.get(h).ok()?;
        let Phase::Connected {
            slot, generation, ..
        } = rec.phase
        else {
            return None;
        };
        let s = self.ep.slots.get(slot)?;
        (s.generation == generation)
            .then_some(s.entry.as_deref())
            .flatten()
            .map(|e| &e.conn)
    }

    /// `recv` / `read` (`peek`: `MSG_PEEK`, the bytes stay queued). `Ok(0)` is the end of the
    /// stream.
    pub fn recv(
        &mut self,
        h: SocketHandle,
        buf: &mut [u8],
        peek: bool,
    ) -> Result<usize, SocketError> {
        let rec = self.ep.sockets.get_mut(h)?;
        let shut_read = rec.shut_read;
        match rec.phase {
            Phase::Idle | Phase::Listening(_) => return Err(SocketError::NotConnected),
            Phase::Ended { .. } => {
                return match rec.error.take() {
                    Some(err) => Err(err),
                    None => Ok(0),
                };
            }
            Phase::Connected { .. } => {}
        }
        let (entry, slot) = self.conn_mut(h)?;
        let conn = &mut entry.conn;
        let queued = conn.recv_queue();
        if queued > 0 && !buf.is_empty() {
            let n = if peek { conn.peek(buf) } else { conn.recv(buf) };
            if !peek {
                // The window may open: a window update may be due.
                self.ep.mark_dirty(slot);
            }
            return Ok(n);
        }
        if buf.is_empty() {
            return Ok(0);
        }
        if let Some(err) = self.ep.sockets.get_mut(h)?.error.take() {
            return Err(err);
        }
        let (entry, _) = self.conn_mut(h)?;
        let state = entry.conn.state();
        if shut_read || entry.conn.fin_received() || state == State::Closed {
            return Ok(0);
        }
        Err(SocketError::WouldBlock)
    }

    /// `send` / `write`: queue what fits in the send buffer; returns how much did.
    pub fn send(&mut self, h: SocketHandle, data: &[u8]) -> Result<usize, SocketError> {
        let rec = self.ep.sockets.get_mut(h)?;
        if let Some(err) = rec.error.take() {
            return Err(err);
        }
        if rec.shut_write {
            return Err(SocketError::BrokenPipe);
        }
        match rec.phase {
            Phase::Idle | Phase::Listening(_) | Phase::Ended { .. } => {
                return Err(SocketError::BrokenPipe);
            }
            Phase::Connected { .. } => {}
        }
        let (entry, slot) = self.conn_mut(h)?;
        let conn = &mut entry.conn;
        match conn.state() {
            State::SynSent | State::SynReceived => return Err(SocketError::WouldBlock),
            State::Established | State::CloseWait => {}
            _ => return Err(SocketError::BrokenPipe),
        }
        if data.is_empty() {
            return Ok(0);
        }
        let n = conn.send(data);
        if n == 0 {
            return Err(SocketError::WouldBlock);
        }
        self.ep.mark_dirty(slot);
        Ok(n)
    }

    /// `shutdown`: stop reading (later reads see the end of the stream), stop writing (a FIN
    /// follows what is queued: RFC 9293 §3.10.4 CLOSE as a half-close), or both.
    pub fn shutdown(&mut self, h: SocketHandle, how: Shutdown) -> Result<(), SocketError> {
        let rec = self.ep.sockets.get_mut(h)?;
        match rec.phase {
            Phase::Connected { .. } => {}
            Phase::Listening(_) if how != Shutdown::Write => return self.unlisten(h),
            _ => return Err(SocketError::NotConnected),
        }
        if matches!(how, Shutdown::Read | Shutdown::Both) {
            rec.shut_read = true;
        }
        if matches!(how, Shutdown::Write | Shutdown::Both) {
            rec.shut_write = true;
            let (entry, slot) = self.conn_mut(h)?;
            match entry.conn.state() {
                // Nothing sent yet that a FIN could follow: the attempt ends (Linux's
                // tcp_disconnect).
                State::SynSent => entry.conn.abort(),
                _ => entry.conn.shutdown_write(),
            }
            self.ep.mark_dirty(slot);
        }
        Ok(())
    }

    /// `close`: see the module docs (FIN, or RST with unread data or `SO_LINGER` 0; a
    /// listener stops listening). The handle is free for reuse afterwards.
    pub fn close(&mut self, h: SocketHandle) -> Result<(), SocketError> {
        let rec = self.ep.sockets.get(h)?;
        let linger_zero = rec.opts.linger == Some(0);
        match rec.phase {
            Phase::Listening(_) => {
                self.unlisten(h)?;
            }
            Phase::Connected { .. } => {
                if let Ok((entry, slot)) = self.conn_mut(h) {
                    if let App::Socket(app) = &mut entry.app {
                        app.detach();
                    }
                    let conn = &mut entry.conn;
                    match conn.state() {
                        // Linux's tcp_close: a SYN-SENT socket goes silently.
                        State::SynSent => conn.abort(),
                        _ if linger_zero => {
                            // RFC 9293 §3.10.5 ABORT (SO_LINGER with a zero timeout).
                            conn.abort();
                        }
                        _ => conn.close(),
                    }
                    self.ep.mark_dirty(slot);
                }
            }
            Phase::Idle | Phase::Ended { .. } => {}
        }
        if let Some(slot) = self.ep.sockets.socks.get_mut(h.0 as usize) {
            *slot = None;
        }
        Ok(())
    }

    /// What the socket is ready for (`poll`).
    pub fn readiness(&self, h: SocketHandle) -> Readiness {
        let Ok(rec) = self.ep.sockets.get(h) else {
            return Readiness {
                error: true,
                hangup: true,
                ..Readiness::default()
            };
        };
        let error = rec.error.is_some();
        match rec.phase {
            Phase::Idle => Readiness {
                writable: false,
                hangup: true,
                error,
                ..Readiness::default()
            },
            Phase::Listening(index) => Readiness {
                readable: self.ep.sockets.accept_queues.get(index).is_some_and(|q| {
                    q.iter().any(|&(slot, generation)| {
                        self.ep.slots.get(slot).is_some_and(|s| {
                            s.generation == generation
                                && s.entry.as_ref().is_some_and(|e| e.awaiting_accept)
                        })
                    })
                }),
                error,
                ..Readiness::default()
            },
            Phase::Ended { .. } => Readiness {
                readable: true,
                writable: true,
                error,
                hangup: true,
                read_hangup: true,
            },
            Phase::Connected { .. } => {
                let Some(conn) = self.conn(h) else {
                    return Readiness::default();
                };
                let state = conn.state();
                let eof = rec.shut_read || conn.fin_received();
                let connecting = matches!(state, State::SynSent | State::SynReceived);
                Readiness {
                    readable: conn.recv_queue() > 0 || eof || error,
                    writable: !connecting
                        && (rec.shut_write
                            || !matches!(state, State::Established | State::CloseWait)
                            || conn.send_capacity() > 0),
                    error,
                    hangup: (rec.shut_write && eof) || state == State::Closed,
                    read_hangup: eof,
                }
            }
        }
    }

    /// `getsockopt(SO_ERROR)`: the pending error, cleared.
    pub fn take_error(&mut self, h: SocketHandle) -> Result<Option<SocketError>, SocketError> {
        Ok(self.ep.sockets.get_mut(h)?.error.take())
    }

    /// `setsockopt`. Options set on a listening socket apply to the connections it accepts
    /// from then on; on a connected socket, to its connection at once (buffer sizes and
    /// `TCP_MAXSEG` only before the handshake matters: the window scale and MSS are fixed
    /// by then).
    pub fn set_option(&mut self, h: SocketHandle, opt: SockOpt) -> Result<(), SocketError> {
        let keepalive = self.keepalive();
        let rec = self.ep.sockets.get_mut(h)?;
        let opts = &mut rec.opts;
        match opt {
            SockOpt::ReuseAddr(on) => opts.reuse_addr = on,
            SockOpt::KeepAlive(on) => opts.keepalive = on,
            SockOpt::NoDelay(on) => opts.nodelay = on,
            // Linux doubles what is set (sk_rcvbuf = 2 * val), with a floor.
            SockOpt::RcvBuf(n) => opts.rcvbuf = Some(n.saturating_mul(2).max(2304)),
            SockOpt::SndBuf(n) => opts.sndbuf = Some(n.saturating_mul(2).max(4608)),
            SockOpt::Linger(l) => opts.linger = l,
            SockOpt::MaxSeg(mss) => {
                // Linux's do_tcp_setsockopt: 88 ≤ TCP_MAXSEG ≤ MAX_TCP_WINDOW.
                if mss < 88 {
                    return Err(SocketError::InvalidArgument);
                }
                opts.maxseg = Some(mss);
            }
            SockOpt::UserTimeout(ms) => opts.user_timeout = (ms > 0).then_some(ms),
        }
        let opts = *opts;
        let phase = rec.phase;
        match phase {
            Phase::Listening(index) => {
                let base = self.ep.tcp.clone();
                if let Some(l) = self.ep.listeners.get_mut(index) {
                    l.tcp = opts
                        .shapes_tcp()
                        .then(|| std::sync::Arc::new(opts.tcp_config(&base)));
                    l.mss = opts.maxseg;
                }
            }
            Phase::Connected { .. } => {
                let (entry, slot) = self.conn_mut(h)?;
                let conn = &mut entry.conn;
                match opt {
                    SockOpt::NoDelay(on) => conn.set_nagle(!on),
                    SockOpt::UserTimeout(_) => conn.set_user_timeout(
                        opts.user_timeout
                            .map(|ms| Duration::from_millis(u64::from(ms))),
                    ),
                    SockOpt::RcvBuf(_) => conn.set_buffer_sizes(opts.rcvbuf, None),
                    SockOpt::SndBuf(_) => conn.set_buffer_sizes(None, opts.sndbuf),
                    SockOpt::KeepAlive(on) => conn.set_keepalive(on.then_some(keepalive)),
                    _ => {}
                }
                // TCP_NODELAY pushes out what Nagle held back (Linux: tcp_push_pending_frames).
                self.ep.mark_dirty(slot);
            }
            _ => {}
        }
        Ok(())
    }

    /// `getsockopt`.
    pub fn get_option(&self, h: SocketHandle, name: SockOptName) -> Result<SockOpt, SocketError> {
        let rec = self.ep.sockets.get(h)?;
        let opts = rec.opts;
        let conn = self.conn(h);
        Ok(match name {
            SockOptName::ReuseAddr => SockOpt::ReuseAddr(opts.reuse_addr),
            SockOptName::KeepAlive => SockOpt::KeepAlive(opts.keepalive),
            SockOptName::NoDelay => SockOpt::NoDelay(opts.nodelay),
            SockOptName::RcvBuf => SockOpt::RcvBuf(
                opts.rcvbuf
                    .or_else(|| conn.map(Connection::rcv_space))
                    .unwrap_or(self.ep.tcp.rmem.default),
            ),
            SockOptName::SndBuf => SockOpt::SndBuf(
                opts.sndbuf
                    .or_else(|| conn.map(Connection::snd_buf))
                    .unwrap_or(self.ep.tcp.wmem.default),
            ),
            SockOptName::Linger => SockOpt::Linger(opts.linger),
            // Linux: the user's TCP_MAXSEG if set, else the connection's mss_cache (the
            // segment payload, timestamps taken off), else the default 536.
            SockOptName::MaxSeg => SockOpt::MaxSeg(match (opts.maxseg, conn) {
                (Some(mss), _) => mss,
                (None, Some(c)) if c.state().is_synchronized() => c.segment_size(),
                _ => 536,
            }),
            SockOptName::UserTimeout => SockOpt::UserTimeout(opts.user_timeout.unwrap_or(0)),
        })
    }

    /// `getsockopt(TCP_INFO)`.
    pub fn tcp_info(&self, h: SocketHandle, now: Instant) -> Result<SocketTcpInfo, SocketError> {
        let rec = self.ep.sockets.get(h)?;
        match (rec.phase, self.conn(h)) {
            (_, Some(conn)) => Ok(conn.socket_info(now)),
            (Phase::Listening(_), None) => Ok(SocketTcpInfo {
                state: State::Listen.linux_number(),
                ..SocketTcpInfo::default()
            }),
            _ => Ok(SocketTcpInfo {
                state: State::Closed.linux_number(),
                ..SocketTcpInfo::default()
            }),
        }
    }

    /// `getsockname`.
    pub fn local_addr(&self, h: SocketHandle) -> Result<SocketAddr, SocketError> {
        let rec = self.ep.sockets.get(h)?;
        Ok(match rec.phase {
            Phase::Connected { quad, .. } | Phase::Ended { quad } => quad.local,
            _ => rec.bound.unwrap_or_else(|| {
                let ip = if rec.v6 {
                    IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED)
                } else {
                    IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED)
                };
                SocketAddr::new(ip, 0)
            }),
        })
    }

    /// `getpeername`.
    pub fn peer_addr(&self, h: SocketHandle) -> Result<SocketAddr, SocketError> {
        let rec = self.ep.sockets.get(h)?;
        match rec.phase {
            Phase::Connected { quad, .. } => Ok(quad.remote),
            _ => Err(SocketError::NotConnected),
        }
    }

    /// Received bytes not yet read (`FIONREAD`), and bytes queued and not yet acknowledged
    /// (`SIOCOUTQ`).
    pub fn queued(&self, h: SocketHandle) -> Result<(usize, usize), SocketError> {
        self.ep.sockets.get(h)?;
        Ok(self
            .conn(h)
            .map_or((0, 0), |c| (c.recv_queue(), c.send_queue())))
    }

    /// Whether the socket is an IPv6 one (`AF_INET6`).
    pub fn is_v6(&self, h: SocketHandle) -> Result<bool, SocketError> {
        Ok(self.ep.sockets.get(h)?.v6)
    }

    /// Whether this socket opened its connection itself (`connect`), not by `accept`.
    pub fn is_active(&self, h: SocketHandle) -> Result<bool, SocketError> {
        Ok(matches!(
            self.ep.sockets.get(h)?.phase,
            Phase::Connected { active: true, .. }
        ))
    }
}

impl Endpoint {
    /// A connection that came from a socket's listener reached a synchronized state: queue it
    /// for `accept`.
    pub(super) fn queue_for_accept(&mut self, id: usize) {
        let Some(slot) = self.slots.get(id) else {
            return;
        };
        let generation = slot.generation;
        if let Some(entry) = slot.entry.as_ref()
            && entry.awaiting_accept
            && let Some(listener) = entry.listener.map(|l| l as usize)
            && entry.queued() != Queued::No
        {
            self.sockets.enqueue_accept(listener, id, generation);
        }
    }
}

#[cfg(test)]
mod tests;
