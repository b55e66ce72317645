//! The endpoint: the 4-tuple table, the listeners, ISN generation and replies to strays.
//!
//! It owns every [`Connection`] and its service, routes each parsed segment to its connection
//! or answers it as LISTEN or CLOSED would (RFC 9293 §3.10.7.1–2), runs the services, and
//! keeps the connections' timers in one heap so the driver learns a single next deadline.

mod client;
mod cookie;
mod counters;
mod fastopen;
mod icmp;
mod index;
mod isn;
mod limiter;
mod limits;
mod martian;
mod observe;
mod relay;
mod sockets;
mod time_wait;
// The fuzzing scenarios: built for unit tests and for `cargo fuzz` (which passes
// `--cfg fuzzing`), not into the daemon.
#[cfg(any(test, fuzzing))]
pub mod scenario;

pub use client::{ClientEvents, ClientId, ClientOutcome, ConnectError};
pub use cookie::{MSS_TABLE_V4, MSS_TABLE_V6, SpentCookies, SynCookies};
pub use counters::Counters;
use index::{QuadBytes, QuadIndex, slot_id};
pub use isn::IsnGenerator;
pub use limiter::ChallengeLimiter;
pub use limits::Limits;
use limits::{ListenQueues, QueueKind, Queued};
pub use observe::{ConnStatus, StatusCursor};
pub use relay::RelayEvent;
pub use sockets::{
    Readiness, Shutdown, SockOpt, SockOptName, SocketError, SocketHandle, SocketTcpInfo, Sockets,
};

use crate::services::{App, ServiceKind};
use crate::tcp::{
    self, CcKind, Connection, CookieSyn, ResetCause, SeqNum, Socket, State, rst_reply,
};
use crate::time::{Duration, Instant};
use crate::wire::{self, Gso, Packet, Quad, RxMeta, TcpSegment};
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::net::{IpAddr, SocketAddr};
use tracing::{debug, info, trace};

/// Where the endpoint writes the packets it sends. The driver writes them to the TUN;
/// tests collect them.
pub trait Transmit {
    fn transmit(&mut self, packet: &[u8]);

    /// A TCP super-segment, sent only by an endpoint configured for segmentation offload
    /// (`tcp::Config::gso_max`): the device splits it as `gso` says. By default it is split
    /// here in software, as the kernel would (allocating a scratch buffer: for tests and
    /// simulations, not for the driver, whose device takes super-segments whole).
    fn transmit_gso(&mut self, packet: &[u8], gso: Gso) {
        wire::gso::transmit_split(packet, gso, &mut |p| self.transmit(p));
    }

    /// Whether super-segments may come in two parts ([`Transmit::transmit_gso_parts`]):
    /// the driver's device gathers them in one `writev`, so the payload is never copied into
    /// a packet buffer.
    fn gathers(&self) -> bool {
        false
    }

    /// A super-segment as its headers (`wire::emit_tcp_gso_headers`: lengths and checksum
    /// count the payload) and its payload, where it lies (the connection's send buffer).
    /// Only sent to a transmitter that [`Transmit::gathers`]; by default joined and passed
    /// to [`Transmit::transmit_gso`] (allocating: for tests).
    fn transmit_gso_parts(&mut self, headers: &[u8], payload: &[u8], gso: Gso) {
        let mut packet = Vec::with_capacity(headers.len() + payload.len());
        packet.extend_from_slice(headers);
        packet.extend_from_slice(payload);
        self.transmit_gso(&packet, gso);
    }
}

impl Transmit for Vec<Vec<u8>> {
    fn transmit(&mut self, packet: &[u8]) {
        self.push(packet.to_vec());
    }
}

#[derive(Clone, Debug)]
pub struct EndpointConfig {
    /// The addresses the endpoint answers as.
    pub addrs: Vec<IpAddr>,
    /// `--addr any`: TCP to every destination routed into the interface is answered too, as
    /// a transparent relay does (ICMP echo only for `addrs`).
    pub any_addr: bool,
    /// Listening ports and their services; port 0: every port without a listener of its own
    /// (`-l '*=SERVICE'`).
    pub listeners: Vec<(u16, ServiceKind)>,
    /// The interface MTU; MSS = MTU − 40 (IPv4) or MTU − 60 (IPv6).
    pub mtu: u16,
    /// TIME-WAIT duration (2·MSL).
    pub time_wait: Duration,
    /// The congestion controller of every connection (`--cc`).
    pub cc: CcKind,
    /// Loss detection of every connection (`--recovery`): RACK-TLP or classic.
    pub recovery: tcp::RecoveryKind,
    /// The device splits TCP super-segments (segmentation offload, `src/wire/gso.rs`): bulk
    /// transfers then send up to 64 KiB per packet handed to it.
    pub gso: bool,
    /// Receive and send buffer sizes (`--rmem`, `--wmem`; `tcp::memory`).
    pub rmem: tcp::BufferSizes,
    pub wmem: tcp::BufferSizes,
    /// PLPMTUD black-hole detection (`--mtu-probing`).
    pub mtu_probing: tcp::MtuProbing,
    /// ECN (`--ecn`, RFC 3168).
    pub ecn: tcp::EcnMode,
    /// TCP Fast Open for listeners (`--fastopen`, RFC 7413).
    pub fastopen: bool,
}

impl Default for EndpointConfig {
    /// The daemon's defaults: 198.18.0.2 and 2001:2::2, the four services, MTU 1500,
    /// TIME-WAIT 60 s, CUBIC.
    fn default() -> Self {
        EndpointConfig {
            addrs: vec![
                IpAddr::V4(std::net::Ipv4Addr::new(198, 18, 0, 2)),
                IpAddr::V6(std::net::Ipv6Addr::new(0x2001, 2, 0, 0, 0, 0, 0, 2)),
            ],
            any_addr: false,
            listeners: crate::services::DEFAULT_LISTENERS.to_vec(),
            mtu: 1500,
            time_wait: Duration::from_secs(60),
            cc: CcKind::Cubic,
            recovery: tcp::RecoveryKind::Rack,
            gso: false,
            rmem: tcp::BufferSizes::RMEM,
            wmem: tcp::BufferSizes::WMEM,
            mtu_probing: tcp::MtuProbing::Blackhole,
            ecn: tcp::EcnMode::Server,
            fastopen: false,
        }
    }
}

/// The largest packet we build: the MTU is at most 65535.
const TX_BUFFER: usize = 65536;

/// Stale timer-heap entries tolerated beyond twice the connection count before the heap is
/// compacted (`Endpoint::compact_timers`).
const TIMER_SLACK: usize = 64;

/// A connection and its application.
struct Entry {
    conn: Connection,
    app: App,
    /// The earliest deadline this entry has in the timer heap.
    scheduled: Option<Instant>,
    /// Queued in `dirty` for the next `poll`.
    dirty: bool,
    /// The endpoint is shutting down: the application is no longer run.
    app_stopped: bool,
    /// Counted as established once; from then on the service has "accepted" it.
    counted_established: bool,
    /// The listener it came from (an index into `listeners`), if any.
    /// (A `u32`: eight bytes fewer per connection than an `Option<usize>`.)
    listener: Option<u32>,
    /// Where it is counted in its listener's queues.
    /// (Only which queue: the listener is `listener`, set once. `Entry::queued` puts them
    /// together; 7 bytes fewer in every connection, issue 23.)
    queue_kind: QueueKind,
    /// The bytes it was last charged for against `--max-buffer-memory` (what it and its
    /// service hold: `Entry::held`).
    /// (A `u32`: a connection holds at most `--rmem` and `--wmem`'s maxima, far below
    /// 4 GiB; with the `u32` listener index, the entry is 16 bytes smaller, issue 23.)
    charged: u32,
    /// Memory held it back the last time it ran (`buffer_memory_limited` counts each time
    /// this becomes true).
    memory_limited: bool,
    /// It is on the list of connections re-run when memory frees (`mem_waiters`).
    mem_waiting: bool,
    /// Counted in the endpoint's TIME-WAIT connections.
    in_time_wait: bool,
    /// A `forward:` connection whose upstream the driver was told to close (relay.rs).
    relay_ended: bool,
    /// On the endpoint's `relay_ready` list.
    relay_ready: bool,
    /// A connection of a socket's listener that `accept` has not handed out yet: it stays
    /// in its listener's accept queue (sockets.rs).
    awaiting_accept: bool,
}

impl Entry {
    /// Where it is counted in its listener's queues.
    fn queued(&self) -> Queued {
        match (self.queue_kind, self.listener) {
            (QueueKind::HalfOpen, Some(l)) => Queued::HalfOpen(l),
            (QueueKind::Accept, Some(l)) => Queued::Accept(l),
            (QueueKind::FastOpen, Some(l)) => Queued::FastOpen(l),
            _ => Queued::No,
        }
    }

    /// The bytes it holds and is charged for: the connection's queues and what its service
    /// holds (`App::memory`).
    fn held(&self) -> usize {
        self.conn.memory().saturating_add(self.app.memory())
    }

    /// Whether it may become a TIME-WAIT record: nothing will read from it any more (our own
    /// client and a socket still held read what is left; a relay's driver hands on the
    /// client's last bytes first), and no accept queue lists it.
    fn may_retire(&self) -> bool {
        !self.awaiting_accept
            && match &self.app {
                App::Client(_) => false,
                App::Socket(app) => app.handle().is_none(),
                App::Relay(..) => self.conn.recv_queue() == 0,
                _ => true,
            }
    }

    fn new(conn: Connection, app: App) -> Entry {
        Entry {
            conn,
            app,
            scheduled: None,
            dirty: false,
            app_stopped: false,
            counted_established: false,
            memory_limited: false,
            mem_waiting: false,
            in_time_wait: false,
            relay_ended: false,
            relay_ready: false,
            awaiting_accept: false,
            listener: None,
            queue_kind: QueueKind::No,
            charged: 0,
        }
    }
}

/// The TIME-WAIT connection a SYN reopens (RFC 9293 MAY-2): a whole one (its slot) or a
/// record (its slot in `TimeWaits`).
#[derive(Clone, Copy, Debug)]
enum Reopen {
    Entry(usize),
    Record(u32),
}

/// A listening port: a built-in service's (from the configuration, on every address of
/// ours), or a socket's (`sockets.rs`: `listen` at run time, on one address or all).
struct Listener {
    port: u16,
    /// The address it is bound to; `None`: every address of ours (of the family below).
    addr: Option<IpAddr>,
    /// A socket bound to `0.0.0.0` takes only IPv4; one bound to `::` both (Linux without
    /// `IPV6_V6ONLY`); services both.
    v4_only: bool,
    target: ListenTarget,
    /// The accept queue's limit (`listen`'s backlog; `--backlog` for services).
    backlog: Option<usize>,
    /// The TCP tunables its connections start with, when its socket set options
    /// (`TCP_NODELAY`, `SO_RCVBUF`, `TCP_MAXSEG`…); `None`: the endpoint's.
    tcp: Option<std::sync::Arc<tcp::Config>>,
    /// `TCP_MAXSEG` on the listening socket: the MSS its connections announce.
    mss: Option<u16>,
    /// `unlisten`ed (or its socket closed): the slot waits for reuse, its index stays valid
    /// for the queues.
    open: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ListenTarget {
    Service(ServiceKind),
    Socket(SocketHandle),
}

impl Listener {
    fn service(port: u16, service: ServiceKind) -> Listener {
        Listener {
            port,
            addr: None,
            v4_only: false,
            target: ListenTarget::Service(service),
            backlog: None,
            tcp: None,
            mss: None,
            open: true,
        }
    }

    fn service_kind(&self) -> Option<ServiceKind> {
        match self.target {
            ListenTarget::Service(kind) => Some(kind),
            ListenTarget::Socket(_) => None,
        }
    }

    /// `direct` or `socks5:` (see [`ServiceKind::relays_to_destination`]).
    fn relays_to_destination(&self) -> bool {
        self.service_kind()
            .is_some_and(ServiceKind::relays_to_destination)
    }

    /// Whether it takes a segment to `local` (a wildcard listener, port 0, takes any port:
    /// `listener_for` asks the others first).
    fn takes(&self, local: SocketAddr) -> bool {
        self.open
            && (self.port == local.port() || self.port == 0)
            && match self.addr {
                Some(addr) => addr == local.ip(),
                None => !(self.v4_only && local.is_ipv6()),
            }
    }
}

/// A slot of the connection slab; `generation` tells stale timer entries apart. The entry is
/// boxed so that a slot left free after a burst costs 16 bytes, not a whole connection, and
/// the memory of connections that are gone goes back to the allocator (issue 22).
struct Slot {
    generation: u32,
    entry: Option<Box<Entry>>,
}

/// The endpoint. See the module docs.
pub struct Endpoint {
    addrs: Vec<IpAddr>,
    any_addr: bool,
    listeners: Vec<Listener>,
    accepting: bool,
    /// Shared by every connection it makes (issue 23).
    tcp: std::sync::Arc<tcp::Config>,
    mss_v4: u16,
    mss_v6: u16,
    slots: Vec<Slot>,
    free: Vec<usize>,
    /// The slot of each connection by its 4-tuple (index.rs: 5 bytes a bucket, the 4-tuple
    /// compared in the connection itself).
    table: QuadIndex,
    timers: BinaryHeap<Reverse<(Instant, usize, u32)>>,
    dirty: Vec<usize>,
    isn: IsnGenerator,
    challenges: ChallengeLimiter,
    counters: Counters,
    tx_buf: Vec<u8>,
    /// Ladders of closed connections for `--ladder` (observe.rs).
    ladders: observe::Ladders,
    /// The last few closed connections, for `/connections` (observe.rs).
    finished: observe::Finished,
    /// How `/connections.json` is written: the driver's `synack status --json` encoder.
    status_json: Option<observe::StatusJson>,
    /// Our own active opens (client.rs).
    clients: client::Clients,
    limits: Limits,
    queues: ListenQueues,
    cookies: SynCookies,
    /// Per listener: when it last answered a SYN with a cookie. Final ACKs are checked as
    /// cookies only within two minutes of that (Linux: tcp_synq_no_recent_overflow).
    cookies_sent_at: Vec<Option<Instant>>,
    /// Connections made from cookies that ended within their cookie's lifetime (cookie.rs).
    cookies_spent: SpentCookies,
    /// The bytes all connections hold in their queues (`tcp::memory`).
    mem_used: usize,
    /// What the driver must do for `exec:` connections (relay.rs).
    relay_events: Vec<RelayEvent>,
    /// `exec:` and `forward:` connections that ran since the driver last asked: the ones
    /// whose pipes or socket may have something to move (relay.rs).
    relay_ready: Vec<Quad>,
    /// Connections to `exec:` ports in the table (`--max-exec`).
    exec_count: usize,
    /// SYNs to `forward:` ports waiting for their upstream connect (relay.rs).
    pending: HashMap<Quad, relay::PendingSyn>,
    /// Held SYNs whose upstream refused, or whose destination was unreachable: answered
    /// with RST, or with the ICMP error the host got, at the next poll.
    refusals: Vec<(Quad, TcpSegment<'static>, Option<wire::IcmpErrorKind>)>,
    /// Above two thirds of `--max-buffer-memory` until below one half (`tcp::memory`).
    mem_pressure: bool,
    /// Connections memory held back, re-run when it frees: (slot, generation).
    mem_waiters: Vec<(usize, u32)>,
    /// The most `mem_used` has been since the waiters were last woken, and whether pressure
    /// ended since.
    mem_peak: usize,
    mem_relieved: bool,
    /// Connections in TIME-WAIT (`--max-time-wait`): whole ones and records.
    time_wait: usize,
    /// Connections in TIME-WAIT reduced to records (time_wait.rs), out of `table`.
    time_waits: time_wait::TimeWaits,
    /// The sockets of the socket API (`sockets.rs`).
    sockets: sockets::SocketTable,
    /// Path MTUs learned from ICMP (`icmp.rs`).
    pmtu: icmp::PathMtuCache,
    /// TCP Fast Open cookies servers gave our active opens (`fastopen.rs`).
    fastopen_cookies: fastopen::CookieCache,
    /// The key of the Fast Open cookies we give (RFC 7413 §4.1.2), derived from the secret
    /// (not kept in `tcp::Config`, which every connection copies).
    fastopen_key: tcp::FastOpenKey,
    /// The `--impair` link's counters, handed over by the driver (`set_link_counters`).
    link_counters: Vec<(&'static str, u64)>,
}

impl Endpoint {
    /// `secret` keys the RFC 6528 ISN function; the driver draws it from getrandom.
    pub fn new(config: EndpointConfig, secret: [u8; 16], now: Instant) -> Self {
        let _ = now;
        let mss_v4 = config.mtu.saturating_sub(40).max(64);
        let mss_v6 = config.mtu.saturating_sub(60).max(64);
        let tcp = std::sync::Arc::new(tcp::Config {
            mss_v4,
            mss_v6,
            time_wait: config.time_wait,
            cc: config.cc,
            recovery: config.recovery,
            rmem: config.rmem,
            wmem: config.wmem,
            gso_max: if config.gso {
                wire::gso::MAX_PAYLOAD
            } else {
                0
            },
            ts_key: tcp::TsKey(isn::derive_key(&secret, b"tsval offset")),
            mtu_probing: config.mtu_probing,
            ecn: config.ecn,
            fastopen: config.fastopen,
            ..tcp::Config::default()
        });
        let listeners = config.listeners.len();
        // One key for both 4-tuple indexes (connections, TIME-WAIT records): index.rs.
        let index_key = isn::derive_key(&secret, b"4-tuple index");
        Endpoint {
            addrs: config.addrs,
            any_addr: config.any_addr,
            listeners: config
                .listeners
                .into_iter()
                .map(|(port, service)| Listener::service(port, service))
                .collect(),
            accepting: true,
            tcp,
            mss_v4,
            mss_v6,
            slots: Vec::new(),
            free: Vec::new(),
            table: QuadIndex::new(index_key),
            timers: BinaryHeap::new(),
            dirty: Vec::new(),
            isn: IsnGenerator::new(secret),
            challenges: ChallengeLimiter::new(
                ChallengeLimiter::DEFAULT_LIMIT,
                u64::from_le_bytes([
                    secret[0], secret[1], secret[2], secret[3], secret[4], secret[5], secret[6],
                    secret[7],
                ]) ^ 0x5eed,
            ),
            counters: Counters::default(),
            tx_buf: vec![0; TX_BUFFER],
            ladders: observe::Ladders::default(),
            finished: observe::Finished::default(),
            status_json: None,
            clients: client::Clients::default(),
            limits: Limits::default(),
            queues: ListenQueues::new(listeners),
            cookies: SynCookies::new(secret),
            cookies_sent_at: vec![None; listeners],
            cookies_spent: SpentCookies::default(),
            mem_used: 0,
            relay_events: Vec::new(),
            relay_ready: Vec::new(),
            exec_count: 0,
            pending: HashMap::new(),
            refusals: Vec::new(),
            mem_pressure: false,
            mem_waiters: Vec::new(),
            mem_peak: 0,
            mem_relieved: false,
            time_wait: 0,
            time_waits: time_wait::TimeWaits::new(index_key),
            sockets: sockets::SocketTable::default(),
            pmtu: icmp::PathMtuCache::default(),
            fastopen_cookies: fastopen::CookieCache::default(),
            fastopen_key: tcp::FastOpenKey(isn::derive_key(&secret, b"fast open cookie")),
            link_counters: Vec::new(),
        }
    }

    /// Set the resource limits (backlog, connections, buffer memory, keep-alive).
    #[must_use]
    pub fn with_limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// The resource limits in force.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// The bytes all connections hold in their queues, charged against
    /// `--max-buffer-memory`.
    pub fn memory_used(&self) -> usize {
        self.mem_used
    }

    /// Whether buffer memory is under pressure (`tcp::memory`).
    pub fn memory_pressure(&self) -> bool {
        self.mem_pressure
    }

    /// How many connections are in TIME-WAIT.
    pub fn time_wait_count(&self) -> usize {
        self.time_wait
    }

    /// The lengths of the half-open and accept queues of the listener on `port`.
    pub fn queue_lengths(&self, port: u16) -> Option<(usize, usize)> {
        let i = self
            .listeners
            .iter()
            .position(|l| l.open && l.port == port)?;
        Some((self.queues.half_open(i), self.queues.accept(i)))
    }

    /// The TCP tunables every new connection gets; tests adjust them.
    pub fn tcp_config_mut(&mut self) -> &mut tcp::Config {
        std::sync::Arc::make_mut(&mut self.tcp)
    }

    /// Process one IP packet read from the device; replies go to `tx`.
    pub fn receive(&mut self, now: Instant, packet: &[u8], tx: &mut dyn Transmit) {
        self.receive_with(now, packet, RxMeta::default(), tx);
    }

    /// [`Endpoint::receive`] for a packet the device says more about (offloads: its
    /// checksum was verified or left for offload by the local kernel).
    pub fn receive_with(
        &mut self,
        now: Instant,
        packet: &[u8],
        meta: RxMeta,
        tx: &mut dyn Transmit,
    ) {
        match wire::parse_with(packet, meta) {
            Err(reason) => {
                trace!(%reason, len = packet.len(), "dropped packet");
                self.counters.count_drop(reason);
            }
            Ok(Packet::Other { .. }) => self.counters.ignored += 1,
            Ok(Packet::Udp { .. }) => self.counters.udp_dropped += 1,
            Ok(Packet::EchoRequest {
                src,
                dst,
                ident,
                seq_no,
                data,
            }) => {
                // With `--addr any` too, only our own addresses answer pings.
                if !self.accepts(src, dst, false) {
                    return;
                }
                match wire::emit_echo_reply(&mut self.tx_buf, dst, src, ident, seq_no, data) {
                    Ok(n) => {
                        self.counters.echo_replies += 1;
                        tx.transmit(self.tx_buf.get(..n).unwrap_or(&[]));
                    }
                    Err(_) => self.counters.tx_errors += 1,
                }
            }
            Ok(Packet::IcmpError { src, dst, error }) => {
                // With `--addr any` an error may quote a segment we sent as a relayed
                // destination: it is addressed to that destination.
                let ours = self.is_local(error.quad.local.ip()) || self.any_addr;
                if !self.accepts(src, dst, self.any_addr) || !ours {
                    return;
                }
                self.on_icmp_error(now, src, &error);
            }
            Ok(Packet::Tcp { src, dst, seg }) => {
                if !self.accepts(src, dst, self.any_addr) {
                    return;
                }
                self.on_segment(now, src, dst, &seg, tx);
            }
        }
    }

    fn is_local(&self, ip: IpAddr) -> bool {
        self.addrs.contains(&ip)
    }

    /// Whether a packet from `src` to `dst` is ours to answer; counts it if not. A martian
    /// source (martian.rs) or one of our own addresses is dropped before TCP or ICMP sees it
    /// (RFC 1122 §3.2.1.3, RFC 4291; Linux: `ip_route_input_slow`, `ip6_rcv_core`, and
    /// `fib_validate_source` for a local address). This also covers RFC 9293 MUST-57 and
    /// MUST-63 (a SYN from a broadcast or multicast address is ignored).
    /// `any_dst`: a destination that is not ours is taken too (`--addr any`), but never a
    /// multicast or broadcast one.
    fn accepts(&mut self, src: IpAddr, dst: IpAddr, any_dst: bool) -> bool {
        let dst_ok = self.is_local(dst) || (any_dst && !martian::is_martian(dst));
        if !dst_ok {
            self.counters.not_ours += 1;
            return false;
        }
        if martian::is_martian(src) || self.is_local(src) {
            trace!(%src, "martian source dropped");
            self.counters.martian_source += 1;
            return false;
        }
        true
    }

    fn on_segment(
        &mut self,
        now: Instant,
        src: IpAddr,
        dst: IpAddr,
        seg: &TcpSegment<'_>,
        tx: &mut dyn Transmit,
    ) {
        let quad = Quad {
            local: SocketAddr::new(dst, seg.dst_port),
            remote: SocketAddr::new(src, seg.src_port),
        };
        // A super-segment (the kernel's GSO through the TUN's offload) counts as the
        // full-sized segments it stands for.
        let size = usize::from(self.local_mss(&quad)).saturating_sub(seg.options.wire_len());
        let segments = wire::gso::segment_count(seg.payload.len(), size);
        self.counters.segments_in += segments as u64;
        if segments > 1 {
            self.counters.super_segments_in += 1;
        }
        self.counters.bytes_in += seg.payload.len() as u64;
        *match seg.ecn {
            wire::Ecn::NotEct => &mut self.counters.in_no_ect_pkts,
            wire::Ecn::Ect1 => &mut self.counters.in_ect1_pkts,
            wire::Ecn::Ect0 => &mut self.counters.in_ect0_pkts,
            wire::Ecn::Ce => &mut self.counters.in_ce_pkts,
        } += segments as u64;
        if seg.flags.rst() {
            self.counters.rst_in += 1;
        }
        let listener = self.listener_for(quad.local).filter(|_| self.accepting);
        // One table lookup per segment (hashing the 4-tuple is a visible part of its cost).
        let mut found = self.lookup(&quad);
        if let Some(id) = found
            && entry_mut(&mut self.slots, id).is_some_and(|e| e.conn.state() == State::Closed)
        {
            // The connection reached CLOSED earlier in this batch and is not reaped yet: the
            // segment is for no connection (RFC 9293 §3.10.7.1, or LISTEN, §3.10.7.2).
            self.reap(now, id);
            found = self.lookup(&quad);
        }
        let mut reopen = None;
        if found.is_none()
            && let Some(tw) = self.time_waits.find(&quad)
            && let Some(record) = self.time_waits.get(tw)
        {
            // A TIME-WAIT record: the same rules as the whole connection's, below.
            if listener.is_some() && !seg.flags.fin() && record.tw.accepts_syn(seg) {
                reopen = Some((Reopen::Record(tw), record.tw.snd_nxt()));
            } else {
                self.time_wait_segment(now, tw, seg);
                return;
            }
        }
        if let Some(id) = found
            && let Some(entry) = entry_mut(&mut self.slots, id)
        {
            // RFC 9293 §3.10.7.4 (MAY-2): a new SYN in TIME-WAIT may open a new connection
            // when a listener would take it (otherwise TIME-WAIT answers it with an ACK, as
            // Linux's tcp_timewait_state_process does), with an ISS above the old SND.NXT, and
            // only once it is known not to be an old duplicate (RFC 6191): TIME-WAIT is
            // deleted when the new connection is made, not before. A SYN+FIN does not reopen
            // it: LISTEN would drop it (see `on_listen`); TIME-WAIT answers it.
            let reopens =
                listener.is_some() && !seg.flags.fin() && entry.conn.time_wait_accepts_syn(seg);
            if !reopens {
                // The accept queue is full: drop the handshake's final ACK, as Linux does on
                // listen overflow; our SYN,ACK is retransmitted and the peer tries again.
                if let Queued::HalfOpen(l) | Queued::FastOpen(l) = entry.queued()
                    && entry.conn.state() == State::SynReceived
                    && seg.flags.ack()
                    && !seg.flags.rst()
                    && !seg.flags.syn()
                    && accept_full(
                        &self.queues,
                        &self.listeners,
                        self.limits.backlog,
                        l as usize,
                    )
                {
                    // Linux counts both ListenOverflows and ListenDrops here.
                    self.counters.accept_queue_full += 1;
                    self.counters.listen_drops += 1;
                    return;
                }
                let others = self.mem_used.saturating_sub(entry.charged as usize);
                entry.conn.set_memory(
                    self.limits.max_buffer_memory.saturating_sub(others),
                    self.mem_pressure,
                );
                let reply = entry.conn.on_segment(now, seg);
                self.settle(id, false);
                self.requeue(id);
                self.mark_dirty(id);
                if let Some(rst) = reply {
                    self.send_reply(quad.local.ip(), quad.remote.ip(), &rst, tx);
                }
                return;
            }
            reopen = Some((Reopen::Entry(id), entry.conn.snd_nxt()));
        }
        match listener {
            Some(listener) => self.on_listen(now, quad, seg, listener, reopen, tx),
            // RFC 9293 §3.10.7.1: CLOSED (no listener): reset anything but a reset.
            _ => {
                if let Some(rst) = rst_reply(seg) {
                    self.send_reply(quad.local.ip(), quad.remote.ip(), &rst, tx);
                }
            }
        }
    }

    /// RFC 9293 §3.10.7.2: a segment for a listening port with no connection, or a SYN that
    /// may reopen the TIME-WAIT connection `reopen` names (which, and its SND.NXT).
    fn on_listen(
        &mut self,
        now: Instant,
        quad: Quad,
        seg: &TcpSegment<'_>,
        listener: usize,
        reopen: Option<(Reopen, SeqNum)>,
        tx: &mut dyn Transmit,
    ) {
        // "First, check for a RST: an incoming RST should be ignored."
        if seg.flags.rst() {
            self.counters.listen_ignored += 1;
            return;
        }
        // "Second, check for an ACK: any acknowledgment is bad if it arrives on a connection
        // still in the LISTEN state. An acceptable reset segment should be formed."
        if seg.flags.ack() {
            // Unless it is the final ACK of a handshake answered with a SYN cookie.
            if !seg.flags.rst() && !seg.flags.syn() && self.cookies_recent(listener, now) {
                match self.cookies.check(now, &quad, seg) {
                    // A late ACK of a connection that ended (cookie.rs, SpentCookies).
                    Some(_) if self.cookies_spent.contains(now, &quad) => {
                        self.counters.syn_cookies_rejected += 1;
                    }
                    Some(syn) => {
                        self.accept_cookie(now, quad, seg, listener, syn);
                        return;
                    }
                    None => self.counters.syn_cookies_rejected += 1,
                }
            }
            if let Some(rst) = rst_reply(seg) {
                self.send_reply(quad.local.ip(), quad.remote.ip(), &rst, tx);
            }
            return;
        }
        // "Third, check for a SYN"; anything else "should be dropped".
        if !seg.flags.syn() {
            self.counters.listen_ignored += 1;
            return;
        }
        // SYN+FIN: RFC 9293 §3.10.7.2 would process the SYN now and the FIN once ESTABLISHED
        // (§3.10.7.4 eighth step); Linux (tcp_rcv_state_process) drops it, as a combination
        // no TCP sends and scanners do (nmap, hping3), and so do we: no SYN,ACK, no TCB.
        if seg.flags.fin() {
            self.counters.listen_syn_fin += 1;
            return;
        }
        // Past --max-connections a SYN is dropped silently (see limits.rs). A reopening SYN
        // takes the place of its TIME-WAIT, which is not counted.
        if self.open_connections() >= self.limits.max_connections {
            self.counters.connection_limit += 1;
            self.counters.listen_drops += 1;
            return;
        }
        // --max-exec: a program per connection; past the limit the client hears "refused".
        let service = self
            .listeners
            .get(listener)
            .and_then(Listener::service_kind);
        if let Some(ServiceKind::Exec(_)) = service
            && self.exec_count >= self.limits.max_exec
        {
            self.counters.exec_limit += 1;
            if let Some(rst) = rst_reply(seg) {
                self.send_reply(quad.local.ip(), quad.remote.ip(), &rst, tx);
            }
            return;
        }
        // forward: the SYN is answered only once the upstream connect succeeded (relay.rs).
        // A SYN reopening TIME-WAIT ends the old connection now and is held like any other;
        // its ISS will still lie above the old SND.NXT (MAY-2).
        if let Some(target) = service.and_then(|s| s.upstream(quad.local)) {
            let floor = reopen.map(|(old, floor)| {
                self.remove_reopened(old);
                floor
            });
            self.hold_syn(quad, seg, listener, target, floor);
            return;
        }
        // RFC 4987 §3.6: the half-open queue is full: answer with a SYN cookie, keep nothing.
        // (A SYN reopening TIME-WAIT replaces a TCB and needs its ISS above the old SND.NXT,
        // which a cookie cannot promise: it gets a TCB.)
        if reopen.is_none() && self.queues.half_open(listener) >= self.backlog_of(listener) {
            self.counters.backlog_full += 1;
            self.send_cookie(now, quad, seg, listener, tx);
            return;
        }
        let mut iss = self.isn.isn(now, &quad);
        if let Some((old, floor)) = reopen {
            // MAY-2 (1): the reopened connection's ISS lies above the old SND.NXT.
            if !iss.gt(floor) {
                iss = floor.add(1 << 16);
            }
            debug!(%quad, "new SYN in TIME-WAIT: reopening");
            self.remove_reopened(old);
        }
        let mss = self.listener_mss(listener, &quad);
        let fast_open = self.listener_tcp(listener).fastopen;
        let verdict = self.fast_open_verdict(&quad, seg, listener, fast_open);
        let cfg = self.listener_tcp(listener);
        let conn = match verdict {
            fastopen::Verdict::Accept => {
                Connection::accept_fast_open(now, quad, seg, iss, mss, cfg)
            }
            fastopen::Verdict::Reply(cookie) => {
                let mut conn = Connection::accept(now, quad, seg, iss, mss, cfg);
                conn.set_fast_open_reply(cookie);
                conn
            }
            fastopen::Verdict::None => Connection::accept(now, quad, seg, iss, mss, cfg),
        };
        self.counters.passive_opens += 1;
        self.admit(now, conn, listener);
    }

    /// Put a new passive connection of `listener` in the table and its queue.
    fn admit(&mut self, now: Instant, mut conn: Connection, listener: usize) {
        let Some(l) = self.listeners.get(listener) else {
            return;
        };
        let (port, target) = (l.port, l.target);
        conn.set_keepalive(self.limits.keepalive_for(port));
        // A new connection holds nothing yet: its share is what the others leave.
        conn.set_memory(
            self.limits.max_buffer_memory.saturating_sub(self.mem_used),
            self.mem_pressure,
        );
        let quad = conn.quad();
        let app = match target {
            ListenTarget::Service(service) => {
                if let ServiceKind::Exec(_) = service {
                    self.exec_count += 1;
                }
                App::new(service)
            }
            ListenTarget::Socket(_) => App::Socket(crate::services::SocketApp::default()),
        };
        let entry = Entry {
            listener: u32::try_from(listener).ok(),
            awaiting_accept: matches!(target, ListenTarget::Socket(_)),
            ..Entry::new(conn, app)
        };
        let id = self.insert(now, quad, entry);
        self.requeue(id);
        self.mark_dirty(id);
    }

    /// The open listener that takes segments to `local`: one bound to that address before
    /// one bound to all (as Linux's `__inet_lookup_listener` scores them).
    /// A listener for every port (`-l '*=SERVICE'`) comes last. `direct` and `socks5:` never
    /// take a connection to one of synack's own addresses: relayed to where the client asked,
    /// it would come back to synack, or leave through the upstream interface for an address
    /// that is ours; the port is closed to it instead, as to any port without a listener.
    fn listener_for(&self, local: SocketAddr) -> Option<usize> {
        let (mut best, mut wildcard) = (None, None);
        let ours = self.is_local(local.ip());
        for (i, l) in self.listeners.iter().enumerate() {
            if l.takes(local) && !(ours && l.relays_to_destination()) {
                if l.port == 0 {
                    wildcard = wildcard.or(Some(i));
                } else if l.addr.is_some() {
                    return Some(i);
                } else {
                    best = best.or(Some(i));
                }
            }
        }
        best.or(wildcard)
    }

    /// The TCP settings of `listener`'s connections: a socket's own, else the endpoint's.
    fn listener_tcp(&self, listener: usize) -> &std::sync::Arc<tcp::Config> {
        self.listeners
            .get(listener)
            .and_then(|l| l.tcp.as_ref())
            .unwrap_or(&self.tcp)
    }

    /// The accept-queue limit of `listener`.
    fn backlog_of(&self, listener: usize) -> usize {
        self.listeners
            .get(listener)
            .and_then(|l| l.backlog)
            .unwrap_or(self.limits.backlog)
    }

    /// Whether `listener`'s accept queue takes no more connections. A socket's backlog is
    /// Linux's: `listen(fd, n)` holds n + 1 (`sk_acceptq_is_full` compares with `>`).
    fn accept_queue_full(&self, listener: usize) -> bool {
        accept_full(&self.queues, &self.listeners, self.limits.backlog, listener)
    }

    /// The MSS a connection of `listener` announces: its socket's `TCP_MAXSEG`, if set.
    fn listener_mss(&self, listener: usize, quad: &Quad) -> u16 {
        let mss = self.local_mss(quad);
        match self.listeners.get(listener).and_then(|l| l.mss) {
            Some(clamp) => mss.min(clamp),
            None => mss,
        }
    }

    /// The MSS we announce on this 4-tuple's family.
    fn local_mss(&self, quad: &Quad) -> u16 {
        if quad.local.is_ipv4() {
            self.mss_v4
        } else {
            self.mss_v6
        }
    }

    /// Whether `listener` sent a SYN cookie in the last two minutes (a cookie's lifetime).
    fn cookies_recent(&self, listener: usize, now: Instant) -> bool {
        cookies_recent(&self.cookies_sent_at, listener, now)
    }

    /// RFC 4987 §3.6: answer `syn` with a SYN cookie (`Connection::cookie_syn_ack`) and keep
    /// no state.
    fn send_cookie(
        &mut self,
        now: Instant,
        quad: Quad,
        syn: &TcpSegment<'_>,
        listener: usize,
        tx: &mut dyn Transmit,
    ) {
        let peer_mss = syn.options.mss.unwrap_or(tcp::default_mss(&quad));
        let iss = self.cookies.make(now, &quad, syn.seq, peer_mss);
        // The window a new connection would offer (`tcp::memory`): its initial receive
        // buffer, four segments under memory pressure.
        let window_max = if self.mem_pressure {
            4 * usize::from(self.local_mss(&quad))
        } else {
            usize::MAX
        };
        let reply = Connection::cookie_syn_ack(
            now,
            &quad,
            syn,
            iss,
            self.local_mss(&quad),
            window_max,
            &self.tcp,
            SynCookies::timestamp,
        );
        if let Some(at) = self.cookies_sent_at.get_mut(listener) {
            *at = Some(now);
        }
        self.cookies_spent.forget(&quad);
        self.counters.syn_cookies_sent += 1;
        self.send_reply(quad.local.ip(), quad.remote.ip(), &reply, tx);
    }

    /// A valid cookie came back: build the connection in ESTABLISHED from it.
    fn accept_cookie(
        &mut self,
        now: Instant,
        quad: Quad,
        ack: &TcpSegment<'_>,
        listener: usize,
        syn: CookieSyn,
    ) {
        if self.open_connections() >= self.limits.max_connections {
            self.counters.connection_limit += 1;
            self.counters.listen_drops += 1;
            return;
        }
        if self.accept_queue_full(listener) {
            self.counters.accept_queue_full += 1;
            self.counters.listen_drops += 1;
            return;
        }
        let mss = self.local_mss(&quad);
        let conn = Connection::from_cookie(now, quad, ack, syn, mss, &self.tcp);
        if !conn.state().is_synchronized() {
            self.counters.syn_cookies_rejected += 1;
            return;
        }
        debug!(%quad, mss = syn.mss, "connection from a SYN cookie");
        self.counters.syn_cookies_accepted += 1;
        self.counters.passive_opens += 1;
        self.admit(now, conn, listener);
    }

    /// Count the connection in the right queue of its listener for its current state.
    fn requeue(&mut self, id: usize) {
        let Some(entry) = entry_mut(&mut self.slots, id) else {
            return;
        };
        let state = entry.conn.state();
        let want = match entry.listener {
            Some(l) if state == State::SynReceived && entry.conn.is_fast_open() => {
                Queued::FastOpen(l)
            }
            Some(l) if state == State::SynReceived => Queued::HalfOpen(l),
            Some(l)
                if state.is_synchronized()
                    && (!entry.counted_established || entry.awaiting_accept) =>
            {
                Queued::Accept(l)
            }
            _ => Queued::No,
        };
        self.queues.moved(entry.queued(), want);
        entry.queue_kind = QueueKind::of(want);
    }

    fn insert(&mut self, now: Instant, quad: Quad, entry: Entry) -> usize {
        let id = match self.free.pop() {
            Some(id) => id,
            None => {
                self.slots.push(Slot {
                    generation: 0,
                    entry: None,
                });
                self.slots.len() - 1
            }
        };
        let mut entry = entry;
        // RFC 1191 §5: a new connection starts from what was learned about its path.
        self.apply_path_mtu(now, &mut entry.conn);
        entry.charged = u32::try_from(entry.held()).unwrap_or(u32::MAX);
        self.mem_used = self.mem_used.saturating_add(entry.charged as usize);
        self.update_pressure();
        if let Some(slot) = self.slots.get_mut(id) {
            slot.entry = Some(Box::new(entry));
        }
        let slots = &self.slots;
        self.table.insert(&QuadBytes::of(&quad), slot_id(id), |id| {
            conn_bytes(slots, id)
        });
        id
    }

    fn remove(&mut self, id: usize) {
        if let Some(entry) = self.take_entry(id) {
            if entry.in_time_wait {
                self.time_wait = self.time_wait.saturating_sub(1);
            }
            self.on_removed(entry, false);
        }
    }

    /// Take entry `id` out of the slab, the table, its queue and the memory charge.
    fn take_entry(&mut self, id: usize) -> Option<Entry> {
        let slot = self.slots.get_mut(id)?;
        let entry = slot.entry.take()?;
        self.table
            .remove(&QuadBytes::of(&entry.conn.quad()), slot_id(id));
        self.queues.moved(entry.queued(), Queued::No);
        self.mem_used = self.mem_used.saturating_sub(entry.charged as usize);
        slot.generation = slot.generation.wrapping_add(1);
        self.free.push(id);
        Some(*entry)
    }

    /// A SYN reopens a TIME-WAIT connection (MAY-2): the old one goes.
    fn remove_reopened(&mut self, old: Reopen) {
        match old {
            Reopen::Entry(id) => self.remove(id),
            Reopen::Record(id) => {
                if let Some(record) = self.time_waits.remove(id) {
                    self.time_wait = self.time_wait.saturating_sub(1);
                    self.time_wait_gone(&record.quad(), false);
                }
            }
        }
    }

    fn mark_dirty(&mut self, id: usize) {
        if let Some(entry) = entry_mut(&mut self.slots, id)
            && !entry.dirty
        {
            entry.dirty = true;
            self.dirty.push(id);
        }
    }

    /// Emit a reply RST built by `rst_reply`.
    fn send_reply(
        &mut self,
        local: IpAddr,
        remote: IpAddr,
        rst: &TcpSegment<'_>,
        tx: &mut dyn Transmit,
    ) {
        Self::emit(
            &mut self.tx_buf,
            &mut self.counters,
            local,
            remote,
            rst,
            None,
            tx,
        );
    }

    /// Build `seg` and send it: as one packet, or, given a `segment_size` its payload
    /// exceeds, as a super-segment of `segment_size`-byte segments (segmentation offload).
    /// Reply RSTs pass `None`: they are always one packet.
    fn emit(
        buf: &mut [u8],
        counters: &mut Counters,
        local: IpAddr,
        remote: IpAddr,
        seg: &TcpSegment<'_>,
        segment_size: Option<u16>,
        tx: &mut dyn Transmit,
    ) {
        let len = seg.payload.len();
        let gso_size = segment_size.filter(|&size| size > 0 && len > usize::from(size));
        // A device that gathers gets the headers alone and the payload where it lies.
        let apart = gso_size.is_some() && tx.gathers();
        let result = match gso_size {
            Some(size) if apart => wire::emit_tcp_gso_headers(buf, local, remote, seg, size)
                .map(|(n, gso)| (n, Some(gso))),
            Some(size) => {
                wire::emit_tcp_gso(buf, local, remote, seg, size).map(|(n, gso)| (n, Some(gso)))
            }
            None => wire::emit_tcp(buf, local, remote, seg).map(|n| (n, None)),
        };
        match result {
            Ok((n, gso)) => {
                let segments =
                    gso_size.map_or(1, |size| wire::gso::segment_count(len, size.into()));
                counters.segments_out += segments as u64;
                counters.bytes_out += len as u64;
                if seg.flags.rst() {
                    counters.rst_out += 1;
                }
                let packet = buf.get(..n).unwrap_or(&[]);
                match gso {
                    Some(gso) => {
                        counters.super_segments_out += 1;
                        if apart {
                            tx.transmit_gso_parts(packet, seg.payload, gso);
                        } else {
                            tx.transmit_gso(packet, gso);
                        }
                    }
                    None => tx.transmit(packet),
                }
            }
            Err(_) => counters.tx_errors += 1,
        }
    }

    /// Run the services, the timers that are due and every pending transmission. Call after
    /// each batch of received packets and whenever `poll_timeout` is reached.
    pub fn poll(&mut self, now: Instant, tx: &mut dyn Transmit) {
        self.poll_timers_until(now, now, tx);
    }

    /// [`Endpoint::poll`], firing only the timers due at or before `timers_until` (at most
    /// `now`); the later ones wait for a later poll. The driver passes the moment its device
    /// began to hold a backlog of packets: a timer that fell due since may be answered by a
    /// packet still in that queue (an ACK read 200 ms late must not make a spurious RTO).
    pub fn poll_timers_until(
        &mut self,
        now: Instant,
        timers_until: Instant,
        tx: &mut dyn Transmit,
    ) {
        let timers_until = timers_until.min(now);
        if !self.refusals.is_empty() {
            self.send_refusals(tx);
        }
        self.expire_time_waits(timers_until);
        // Timers first: whatever they make due is sent in the same pass. Entries that no
        // longer stand for their connection's deadline are dropped on the way (see
        // `timer_is_live`).
        while let Some(&Reverse((at, id, generation))) = self.timers.peek() {
            let live = timer_is_live(&self.slots, at, id, generation);
            if live && at > timers_until {
                break;
            }
            self.timers.pop();
            if !live {
                continue;
            }
            if let Some(entry) = entry_mut(&mut self.slots, id) {
                entry.scheduled = None;
                entry.conn.handle_timeout(now);
                self.mark_dirty(id);
            }
        }

        loop {
            while let Some(id) = self.dirty.pop() {
                self.service(now, id, tx);
            }
            // Memory freed: connections it held back send their window updates now.
            if !self.wake_memory_waiters() {
                break;
            }
        }
        if self.time_waits.has_dirty() {
            self.transmit_time_waits(now, tx);
        }
        // What the services reaped may sit at the top of the heap now: drop it, so that
        // `poll_timeout` names a deadline some connection still has, not a stale one (which
        // would wake the driver for nothing).
        while let Some(&Reverse((at, id, generation))) = self.timers.peek() {
            if timer_is_live(&self.slots, at, id, generation) {
                break;
            }
            self.timers.pop();
        }
    }

    /// Run one connection's application, send what it owes, re-arm its timer, reap it if closed.
    fn service(&mut self, now: Instant, id: usize, tx: &mut dyn Transmit) {
        let Some(slot) = self.slots.get_mut(id) else {
            return;
        };
        let generation = slot.generation;
        let Some(entry) = slot.entry.as_deref_mut() else {
            return;
        };
        entry.dirty = false;
        if matches!(entry.app, App::Relay(..)) && !entry.relay_ready {
            // Something changed for it (data, an ACK, a FIN, the driver's own doing): the
            // driver looks at its pipes or socket next, and only at such connections'.
            entry.relay_ready = true;
            self.relay_ready.push(entry.conn.quad());
        }
        // This connection's share of --max-buffer-memory: what the others leave.
        let others = self.mem_used.saturating_sub(entry.charged as usize);
        entry.conn.set_memory(
            self.limits.max_buffer_memory.saturating_sub(others),
            self.mem_pressure,
        );
        // RFC 7413 §4.2.2: a Fast Open connection's data is handed to the service (or to
        // `accept`) at once, before the handshake completes, as Linux does.
        let state = entry.conn.state();
        let runs_app = (state.is_synchronized() && state != State::TimeWait)
            || (state == State::SynReceived && entry.conn.is_fast_open());
        let mut to_accept = false;
        if runs_app {
            if !entry.counted_established {
                entry.counted_established = true;
                to_accept = entry.awaiting_accept;
                self.counters.established += 1;
                if let App::Relay(ServiceKind::Exec(spec), _) = &entry.app {
                    self.relay_events.push(RelayEvent::Start {
                        quad: entry.conn.quad(),
                        spec,
                    });
                }
            }
            if !entry.app_stopped {
                entry.app.poll(&mut entry.conn);
                if let Some(page) = entry.app.pending_page() {
                    // A page about every connection (/metrics, /connections): drawn here,
                    // where the whole table is visible, then handed to the service.
                    self.serve_page(now, id, page);
                }
            }
        }
        if to_accept {
            self.queue_for_accept(id);
        }
        let Some(entry) = entry_mut(&mut self.slots, id) else {
            return;
        };
        let conn = &mut entry.conn;
        if runs_app && (entry.app_stopped || entry.app.is_closed()) {
            // The service reads no more: FIN-WAIT-2 may time out (tcp_fin_timeout).
            conn.orphan(now);
        }
        // RFC 5961 §7: challenge ACKs come out of one global budget; ACKs for unacceptable
        // (e.g. duplicate) data do not.
        if conn.take_challenge() {
            if self.challenges.allow(now) {
                conn.grant_challenge();
                self.counters.challenge_acks += 1;
            } else {
                self.counters.challenge_acks_limited += 1;
            }
        }
        let quad = conn.quad();
        let (local, remote) = (quad.local.ip(), quad.remote.ip());
        let (buf, counters) = (&mut self.tx_buf, &mut self.counters);
        let segment_size = conn.segment_size();
        conn.poll_transmit(now, &mut |seg| {
            Self::emit(buf, counters, local, remote, seg, Some(segment_size), tx);
        });
        self.counters.add_events(&conn.take_events());
        // Fast Open as a client: the cookie a SYN,ACK gave, and whether our SYN's data got
        // through (endpoint/fastopen.rs).
        if let Some((cookie, mss)) = conn.take_fast_open_cookie() {
            self.fastopen_cookies.learn(remote, cookie, mss);
        }
        match conn.take_fast_open_outcome() {
            Some(true) => self.counters.fastopen_active += 1,
            Some(false) => self.counters.fastopen_active_fail += 1,
            None => {}
        }
        if conn.state() == State::TimeWait
            && !entry.in_time_wait
            && self.time_wait >= self.limits.max_time_wait
        {
            // Past --max-time-wait, close instead of waiting (Linux: tcp_max_tw_buckets).
            debug!(quad = %conn.quad(), "TIME-WAIT table full: closing at once");
            self.counters.time_wait_overflow += 1;
            self.remove(id);
            return;
        }
        self.settle(id, true);
        self.relay_time_wait(id);
        if self.retire_to_time_wait(now, id) {
            return;
        }
        let Some(entry) = entry_mut(&mut self.slots, id) else {
            return;
        };
        let conn = &mut entry.conn;

        if conn.state() == State::Closed {
            self.reap(now, id);
            return;
        }
        // The heap entry that stands for this connection is the one at `scheduled`; when its
        // deadline moved (a timer armed, restarted or cancelled) the old entry goes stale and
        // is skipped without waking anyone (`timer_is_live`), so a cancelled timer costs no
        // wake-up, and a connection with no timer has no live entry.
        let next = conn.poll_timeout();
        if next != entry.scheduled {
            entry.scheduled = next;
            if let Some(at) = next {
                self.timers.push(Reverse((at, id, generation)));
            }
            self.compact_timers();
        }
        self.requeue(id);
    }

    /// Render `page` for the service of connection `id`, give it the body and run it again.
    fn serve_page(&mut self, now: Instant, id: usize, page: crate::observe::Page) {
        let rendered = self.render_page(now, page);
        if let Some(entry) = entry_mut(&mut self.slots, id) {
            entry
                .app
                .answer_page(rendered.as_ref().map(|(t, body)| (*t, body.as_bytes())));
            entry.app.poll(&mut entry.conn);
        }
    }

    /// Count how a CLOSED connection ended, and remove it.
    fn reap(&mut self, now: Instant, id: usize) {
        self.account_end(now, id);
        let Some(entry) = entry_mut(&mut self.slots, id) else {
            return;
        };
        let conn = &mut entry.conn;
        match conn.reset_cause() {
            Some(ResetCause::PeerReset) => self.counters.peer_resets += 1,
            Some(ResetCause::TimedOut) if !entry.counted_established => {
                self.counters.synack_timeouts += 1
            }
            Some(ResetCause::TimedOut) => self.counters.retransmit_timeouts += 1,
            _ => {}
        }
        debug!(quad = %conn.quad(), cause = ?conn.reset_cause(), "connection closed");
        self.remove(id);
    }

    /// The TCB of entry `id` ends (closed, or turned into a TIME-WAIT record): a connection
    /// made from a cookie that ends while the cookie is valid spends it (cookie.rs,
    /// SpentCookies), so that a late ACK of it cannot open it again; its events are counted.
    fn account_end(&mut self, now: Instant, id: usize) {
        let Some(entry) = entry_mut(&mut self.slots, id) else {
            return;
        };
        let conn = &mut entry.conn;
        let quad = conn.quad();
        if let Some(l) = entry.listener
            && cookies_recent(&self.cookies_sent_at, l as usize, now)
            && self.cookies.is_cookie(now, &quad, conn.iss(), conn.irs())
        {
            self.cookies_spent.insert(now, quad);
        }
        self.counters.add_events(&conn.take_events());
    }

    /// After a connection ran (`ran`: its application and output, not only a segment's
    /// input): charge it what it holds now, put it on the list of
    /// connections to re-run if memory held it back, count it in TIME-WAIT, and update the
    /// pressure state (`tcp::memory`).
    fn settle(&mut self, id: usize, ran: bool) {
        let Some(slot) = self.slots.get_mut(id) else {
            return;
        };
        let generation = slot.generation;
        let Some(entry) = slot.entry.as_deref_mut() else {
            return;
        };
        // (Charged as a `u32`, saturated the same way on both sides of the sum.)
        let held = u32::try_from(entry.held()).unwrap_or(u32::MAX);
        self.mem_used = self
            .mem_used
            .saturating_sub(entry.charged as usize)
            .saturating_add(held as usize);
        entry.charged = held;
        let starved = entry.conn.take_memory_starved();
        if starved && !entry.memory_limited {
            self.counters.buffer_memory_limited += 1;
            debug!(
                quad = %entry.conn.quad(),
                used = self.mem_used,
                "held back by --max-buffer-memory: window or writes limited"
            );
        }
        // An episode ends only with a whole run (application and output) not held back.
        if starved || ran {
            entry.memory_limited = starved;
        }
        if starved && !entry.mem_waiting {
            entry.mem_waiting = true;
            self.mem_waiters.push((id, generation));
        }
        // TIME-WAIT is counted after a whole run, which first checks `--max-time-wait`.
        let tw = entry.conn.state() == State::TimeWait;
        if ran && tw != entry.in_time_wait {
            entry.in_time_wait = tw;
            if tw {
                self.time_wait += 1;
            } else {
                self.time_wait = self.time_wait.saturating_sub(1);
            }
        }
        self.update_pressure();
    }

    /// Enter memory pressure above two thirds of `--max-buffer-memory`, leave it below one
    /// half: Linux's `tcp_mem` pressure and low marks stand in that ratio to its hard limit.
    /// Logged once per episode.
    fn update_pressure(&mut self) {
        let limit = self.limits.max_buffer_memory;
        let used = self.mem_used;
        self.mem_peak = self.mem_peak.max(used);
        if !self.mem_pressure && used > limit / 3 * 2 {
            self.mem_pressure = true;
            self.counters.memory_pressure_entered += 1;
            info!(
                used,
                limit, "buffer memory pressure: buffers stop growing, windows offered smaller"
            );
        } else if self.mem_pressure && used < limit / 2 {
            self.mem_pressure = false;
            self.mem_relieved = true;
            info!(used, limit, "buffer memory pressure over");
        }
    }

    /// Re-run the connections memory held back once it has freed: pressure ended, or a
    /// sixteenth of the limit was given back since they were last woken. Only the listed
    /// connections are visited, each once per listing; one still held back lists itself
    /// again and waits for the next sixteenth.
    fn wake_memory_waiters(&mut self) -> bool {
        let relieved = std::mem::take(&mut self.mem_relieved);
        if self.mem_waiters.is_empty() {
            self.mem_peak = self.mem_used;
            return false;
        }
        let step = (self.limits.max_buffer_memory / 16).max(1);
        if !relieved && self.mem_peak.saturating_sub(self.mem_used) < step {
            return false;
        }
        self.mem_peak = self.mem_used;
        let waiters = std::mem::take(&mut self.mem_waiters);
        for (id, generation) in waiters {
            if let Some(slot) = self.slots.get_mut(id)
                && slot.generation == generation
                && let Some(entry) = slot.entry.as_deref_mut()
            {
                entry.mem_waiting = false;
                self.mark_dirty(id);
            }
        }
        true
    }

    /// Connections that count against `--max-connections`: all but TIME-WAIT.
    fn open_connections(&self) -> usize {
        self.connection_count().saturating_sub(self.time_wait)
    }

    /// Drop the heap's stale entries once they outnumber the live ones. A reaped connection
    /// leaves its entry behind (a SYN,ACK's retransmission timer lives for a second), and a
    /// connection whose deadline moved earlier leaves the later one: at tens of thousands of
    /// short connections a second the heap would hold tens of thousands of dead entries,
    /// each pop a walk through cold memory. At most one entry per connection is live, so
    /// rebuilding at twice that (plus slack) costs O(1) per push, amortized.
    fn compact_timers(&mut self) {
        if self.timers.len() <= TIMER_SLACK + 2 * self.table.len() {
            return;
        }
        let slots = &self.slots;
        self.timers
            .retain(|&Reverse((at, id, generation))| timer_is_live(slots, at, id, generation));
    }

    /// Give back what the tables kept for connections that are gone: after a burst the slab,
    /// the 4-tuple index and the timer heap shrink to what the connections left need. O(slots
    /// + timers): the driver calls it only once the table has fallen well below its peak.
    pub fn release_memory(&mut self) {
        // Stale timer entries first, so that none names a slot about to go.
        let slots = &self.slots;
        self.timers
            .retain(|&Reverse((at, id, generation))| timer_is_live(slots, at, id, generation));
        self.timers.shrink_to_fit();
        // The free slots at the end of the slab go; those below stay on the free list.
        let used = self
            .slots
            .iter()
            .rposition(|slot| slot.entry.is_some())
            .map_or(0, |last| last + 1);
        self.slots.truncate(used);
        self.slots.shrink_to_fit();
        self.free.retain(|&id| id < used);
        self.free.shrink_to_fit();
        let slots = &self.slots;
        self.table.shrink(|id| conn_bytes(slots, id));
        self.pending.shrink_to_fit();
        self.dirty.shrink_to_fit();
        self.mem_waiters.shrink_to_fit();
        self.time_waits.shrink();
    }

    /// When `poll` must be called next, if nothing arrives before.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if !self.dirty.is_empty() || !self.refusals.is_empty() || self.time_waits.has_dirty() {
            return Some(Instant::ZERO);
        }
        let connections = self.timers.peek().map(|Reverse((at, _, _))| *at);
        [connections, self.time_waits.next_deadline()]
            .into_iter()
            .flatten()
            .min()
    }

    /// Stop accepting new connections and close every open one (FIN). Call `poll` until
    /// `is_drained` or a grace period expires, then `abort_all`.
    pub fn shutdown(&mut self, now: Instant) {
        let _ = now;
        self.accepting = false;
        let ids: Vec<usize> = self.table.ids().map(|id| id as usize).collect();
        for id in ids {
            if let Some(entry) = entry_mut(&mut self.slots, id) {
                entry.app_stopped = true;
                match entry.conn.state() {
                    State::SynReceived => entry.conn.abort(),
                    _ => entry.conn.close(),
                }
            }
            self.mark_dirty(id);
        }
    }

    /// No connection is left except in TIME-WAIT.
    pub fn is_drained(&self) -> bool {
        self.slots
            .iter()
            .filter_map(|s| s.entry.as_deref())
            .all(|e| matches!(e.conn.state(), State::TimeWait | State::Closed))
    }

    /// Reset every remaining connection (used when the shutdown grace period ends).
    pub fn abort_all(&mut self, now: Instant, tx: &mut dyn Transmit) {
        let ids: Vec<usize> = self.table.ids().map(|id| id as usize).collect();
        for id in ids {
            if let Some(entry) = entry_mut(&mut self.slots, id) {
                entry.app_stopped = true;
                if entry.conn.state() != State::TimeWait {
                    entry.conn.abort();
                }
            }
            self.mark_dirty(id);
        }
        self.poll(now, tx);
    }

    /// The counters, as (name, value) pairs, for logging at shutdown and `synack stats`,
    /// followed by the gauge `buffer_memory_used` (bytes held now).
    pub fn counters(&self) -> Vec<(&'static str, u64)> {
        let mut v = self.counters.entries();
        v.extend_from_slice(&self.link_counters);
        v.push(("buffer_memory_used", self.mem_used as u64));
        v
    }

    /// The `--impair` link's counters (`impair_lost`, ...), which the driver owns: listed by
    /// [`Endpoint::counters`] and `/metrics` after the endpoint's own.
    pub fn set_link_counters(&mut self, counters: &[(&'static str, u64)]) {
        self.link_counters.clear();
        self.link_counters.extend_from_slice(counters);
    }

    /// The counters themselves.
    pub fn stats(&self) -> &Counters {
        &self.counters
    }

    /// How many connections the table holds (any state, TIME-WAIT records included).
    pub fn connection_count(&self) -> usize {
        self.table.len() + self.time_waits.len()
    }

    /// Whether a connection (or a TIME-WAIT record) holds this 4-tuple.
    fn quad_in_use(&self, quad: &Quad) -> bool {
        self.lookup(quad).is_some() || self.time_waits.contains(quad)
    }

    /// What the connection with this 4-tuple negotiated, if it exists.
    pub fn connection_info(&self, quad: &Quad) -> Option<tcp::ConnInfo> {
        Some(self.find(quad)?.conn.info())
    }

    /// The state of every connection in the table.
    pub fn states(&self) -> impl Iterator<Item = State> + '_ {
        self.slots
            .iter()
            .filter_map(|s| s.entry.as_deref())
            .map(|e| e.conn.state())
            .chain(std::iter::repeat_n(State::TimeWait, self.time_waits.len()))
    }

    /// `--impair` dropped a packet on the link (`outbound`: one of ours, on its way to the
    /// peer; else one from the peer, before it reached us): the connection it belonged to
    /// marks it in its trace, so that the sequence diagrams show the loss and which side
    /// lost it (issue 19). Anything that is not a TCP segment of a connection is ignored.
    pub fn on_link_drop(&mut self, now: Instant, outbound: bool, packet: &[u8]) {
        // The link has not corrupted it (it dropped it): the checksums are not the point.
        let meta = RxMeta {
            checksum_trusted: true,
        };
        let Ok(Packet::Tcp { src, dst, seg }) = wire::parse_with(packet, meta) else {
            return;
        };
        let (quad, direction) = if outbound {
            let quad = Quad {
                local: SocketAddr::new(src, seg.src_port),
                remote: SocketAddr::new(dst, seg.dst_port),
            };
            (quad, crate::tcp::trace::Direction::Out)
        } else {
            let quad = Quad {
                local: SocketAddr::new(dst, seg.dst_port),
                remote: SocketAddr::new(src, seg.src_port),
            };
            (quad, crate::tcp::trace::Direction::In)
        };
        if let Some(id) = self.lookup(&quad)
            && let Some(entry) = entry_mut(&mut self.slots, id)
        {
            entry.conn.record_lost(direction, now, &seg);
        } else if self.time_waits.contains(&quad) {
            self.record_time_wait_lost(&quad, direction, now, &seg);
        }
    }

    /// The state of the connection with this 4-tuple, if any.
    pub fn connection_state(&self, quad: &Quad) -> Option<State> {
        match self.find(quad) {
            Some(entry) => Some(entry.conn.state()),
            None => self.time_waits.contains(quad).then_some(State::TimeWait),
        }
    }

    /// The slot of the connection with this 4-tuple: one hash, and the 4-tuple compared is
    /// the one the connection keeps (index.rs). Nothing allocated: a lookup per segment.
    fn lookup(&self, quad: &Quad) -> Option<usize> {
        lookup(&self.table, &self.slots, quad)
    }

    /// The entry of the connection with this 4-tuple.
    fn find(&self, quad: &Quad) -> Option<&Entry> {
        let id = self.lookup(quad)?;
        self.slots.get(id)?.entry.as_deref()
    }
}

/// Whether the timer-heap entry `(at, id, generation)` is the deadline its connection is
/// waiting for: the connection still exists (same generation) and `at` is its `scheduled`.
/// Every other entry is stale: `service` runs after every change to a connection and pushes
/// its deadline whenever it differs from `scheduled`, so a connection never needs a wake-up
/// other than at `scheduled`. The heap thus holds at most one live entry per connection;
/// stale ones are dropped when they reach the top or by `compact_timers`.
fn timer_is_live(slots: &[Slot], at: Instant, id: usize, generation: u32) -> bool {
    slots.get(id).is_some_and(|slot| {
        slot.generation == generation
            && slot
                .entry
                .as_deref()
                .is_some_and(|entry| entry.scheduled == Some(at))
    })
}

/// Whether `listener`'s accept queue is full (`Endpoint::accept_queue_full`); a free function
/// so that callers holding an entry can ask.
fn accept_full(queues: &ListenQueues, listeners: &[Listener], backlog: usize, l: usize) -> bool {
    let queued = queues.accept(l);
    match listeners.get(l).and_then(|l| l.backlog) {
        Some(backlog) => queued > backlog,
        None => queued >= backlog,
    }
}

/// The live entry in slot `id`, if any. A free function over the slots (not a method) so that
/// callers can go on using the endpoint's other fields while they hold it.
fn entry_mut(slots: &mut [Slot], id: usize) -> Option<&mut Entry> {
    slots.get_mut(id)?.entry.as_deref_mut()
}

/// `Endpoint::lookup`, for a caller that holds another field of the endpoint.
fn lookup(table: &QuadIndex, slots: &[Slot], quad: &Quad) -> Option<usize> {
    // Compared packed, as the connection keeps it: no unpacking per candidate.
    let packed = crate::wire::PackedQuad::from(*quad);
    let id = table.find(&QuadBytes::of(quad), |id| {
        slots
            .get(id as usize)
            .and_then(|s| s.entry.as_deref())
            .is_some_and(|e| *e.conn.packed_quad() == packed)
    })?;
    Some(id as usize)
}

/// The 4-tuple of the connection in slot `id`, as the index hashes it (when it grows or
/// shrinks).
fn conn_bytes(slots: &[Slot], id: u32) -> Option<QuadBytes> {
    let entry = slots.get(id as usize)?.entry.as_deref()?;
    Some(QuadBytes::of(&entry.conn.quad()))
}

#[cfg(test)]
mod tests;

/// Whether `listener` sent a SYN cookie in the last two minutes, a cookie's lifetime (Linux:
/// tcp_synq_no_recent_overflow), by `sent_at`, the endpoint's `cookies_sent_at`.
fn cookies_recent(sent_at: &[Option<Instant>], listener: usize, now: Instant) -> bool {
    sent_at
        .get(listener)
        .copied()
        .flatten()
        .is_some_and(|at| now.saturating_since(at) < Duration::from_secs(120))
}
