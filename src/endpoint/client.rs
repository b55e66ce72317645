//! The endpoint as a client: `synack connect` opens a connection from one of our addresses and
//! an ephemeral port (RFC 9293 §3.10.1 OPEN, active), driven by the [`Client`] application.

use super::{Endpoint, Entry};
use crate::services::{App, Client};
use crate::tcp::{Connection, ResetCause, Socket, State};
use crate::time::Instant;
use crate::wire::{FastOpenCookie, Quad};
use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;

/// The ephemeral port range (RFC 6335 §6: 49152–65535).
pub const EPHEMERAL_PORTS: std::ops::RangeInclusive<u16> = 49152..=65535;

/// The most client connections whose results are held at once.
pub const MAX_CLIENTS: usize = 1024;

/// Names one connection opened with [`Endpoint::connect`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ClientId(pub u64);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConnectError {
    /// None of our addresses is of the remote address's family.
    NoLocalAddress,
    /// The remote address is not a unicast address, or is one of ours.
    BadRemote,
    /// Every ephemeral port is in use towards this remote address and port.
    NoPort,
    /// The endpoint is shutting down, or holds as many connections as it may.
    Busy,
}

impl fmt::Display for ConnectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ConnectError::NoLocalAddress => "synack has no address of that family",
            ConnectError::BadRemote => "not a unicast address of another host",
            ConnectError::NoPort => "no free ephemeral port towards that address",
            ConnectError::Busy => "synack is shutting down or has too many connections",
        })
    }
}

impl std::error::Error for ConnectError {}

/// How a client connection ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientOutcome {
    /// Both sides closed (we may linger in TIME-WAIT; the application is done).
    Closed,
    /// Our SYN was answered with a RST: "connection refused".
    Refused,
    /// The peer reset the connection.
    Reset,
    /// The SYN or data went unanswered (RFC 9293 §3.8.3).
    TimedOut,
    /// We aborted it (shutdown).
    Aborted,
    /// An ICMP error about our segments ended it (in SYN-SENT any; later a hard one), or a
    /// soft one was the last word before it timed out.
    Unreachable(crate::wire::IcmpErrorKind),
}

impl ClientOutcome {
    pub const fn name(self) -> &'static str {
        match self {
            ClientOutcome::Closed => "closed",
            ClientOutcome::Refused => "connection refused",
            ClientOutcome::Reset => "connection reset by peer",
            ClientOutcome::TimedOut => "connection timed out",
            ClientOutcome::Aborted => "connection aborted",
            ClientOutcome::Unreachable(kind) => match kind {
                crate::wire::IcmpErrorKind::PortUnreachable => {
                    "connection refused (ICMP port unreachable)"
                }
                crate::wire::IcmpErrorKind::NetUnreachable => {
                    "network is unreachable (ICMP from the path)"
                }
                crate::wire::IcmpErrorKind::HostUnreachable => {
                    "no route to host (ICMP host unreachable from the path)"
                }
                crate::wire::IcmpErrorKind::TimeExceeded => {
                    "no route to host (ICMP time exceeded: a routing loop or too few hops)"
                }
                crate::wire::IcmpErrorKind::AdminProhibited => {
                    "no route to host (ICMP: administratively prohibited by a filter)"
                }
                crate::wire::IcmpErrorKind::ProtocolUnreachable => {
                    "protocol not available (ICMP protocol unreachable: the host runs no TCP)"
                }
                crate::wire::IcmpErrorKind::ParameterProblem => {
                    "protocol error (ICMP parameter problem)"
                }
                crate::wire::IcmpErrorKind::PacketTooBig { .. } => "message too long",
            },
        }
    }

    fn from_cause(cause: Option<ResetCause>) -> ClientOutcome {
        match cause {
            None => ClientOutcome::Closed,
            Some(ResetCause::Refused) => ClientOutcome::Refused,
            Some(ResetCause::PeerReset) => ClientOutcome::Reset,
            Some(ResetCause::TimedOut) => ClientOutcome::TimedOut,
            Some(ResetCause::Aborted) => ClientOutcome::Aborted,
            Some(ResetCause::Unreachable(kind)) => ClientOutcome::Unreachable(kind),
        }
    }
}

/// What [`Endpoint::poll_client`] reports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientEvents {
    /// Our side of the connection.
    pub local: SocketAddr,
    /// Its state now (CLOSED once it has been removed).
    pub state: State,
    /// The handshake completed at some point.
    pub established: bool,
    /// Bytes received since the last poll.
    pub data: Vec<u8>,
    /// Set once the connection is over; the id is then forgotten.
    pub outcome: Option<ClientOutcome>,
}

struct Record {
    quad: Quad,
    established: bool,
    /// Set when the connection left the table: how it ended and what was still unread.
    finished: Option<(ClientOutcome, Vec<u8>)>,
}

/// The client connections the driver has not yet heard the end of.
#[derive(Default)]
pub(super) struct Clients {
    records: HashMap<ClientId, Record>,
    next_id: u64,
    /// Where the search for a free ephemeral port starts next.
    port_cursor: u16,
}

impl Clients {
    /// The connection left the table: keep its outcome and unread data for `poll_client`.
    pub(super) fn finish(&mut self, conn: &mut Connection, client: &mut Client, established: bool) {
        let quad = conn.quad();
        let Some(record) = self
            .records
            .values_mut()
            .find(|r| r.quad == quad && r.finished.is_none())
        else {
            return;
        };
        let mut data = client.take_received();
        let mut buf = [0u8; 4096];
        loop {
            let n = conn.recv(&mut buf);
            if n == 0 {
                break;
            }
            data.extend_from_slice(buf.get(..n).unwrap_or_default());
        }
        let outcome = ClientOutcome::from_cause(conn.reset_cause());
        record.established |= established;
        record.finished = Some((outcome, data));
    }
}

impl Endpoint {
    /// RFC 9293 §3.10.1 OPEN (active): connect to `remote` from our address of the same family
    /// and a free ephemeral port, send `data`, half-close, and collect the reply. The SYN goes
    /// out at the next [`Endpoint::poll`].
    /// How long an active open whose SYN is never answered lasts before it fails.
    pub fn syn_give_up_after(&self) -> crate::time::Duration {
        self.tcp.syn_give_up_after()
    }

    pub fn connect(
        &mut self,
        now: Instant,
        remote: SocketAddr,
        data: Vec<u8>,
    ) -> Result<ClientId, ConnectError> {
        self.connect_with(now, remote, data, false)
    }

    /// [`Endpoint::connect`], with TCP Fast Open if `fastopen` (RFC 7413 §4.2.1): without a
    /// cookie for `remote`'s address the SYN asks for one; with one, the SYN carries it and
    /// the front of `data`.
    pub fn connect_with(
        &mut self,
        now: Instant,
        remote: SocketAddr,
        data: Vec<u8>,
        fastopen: bool,
    ) -> Result<ClientId, ConnectError> {
        if !self.accepting
            || self.connection_count() >= self.limits.max_connections
            || self.clients.records.len() >= MAX_CLIENTS
        {
            return Err(ConnectError::Busy);
        }
        // Nowhere a reply could come from (martian.rs), or ourselves.
        if super::martian::is_martian(remote.ip())
            || self.is_local(remote.ip())
            || remote.port() == 0
        {
            return Err(ConnectError::BadRemote);
        }
        let local_ip = self
            .addrs
            .iter()
            .copied()
            .find(|a| a.is_ipv4() == remote.is_ipv4())
            .ok_or(ConnectError::NoLocalAddress)?;
        let quad = self
            .free_quad(local_ip, remote)
            .ok_or(ConnectError::NoPort)?;
        let iss = self.isn.isn(now, &quad);
        let local_mss = self.local_mss(&quad);
        let mut conn = Connection::connect(now, quad, iss, local_mss, &self.tcp);
        let mut queued = 0;
        if fastopen {
            queued = match self.fastopen_cookies.get(remote.ip()) {
                Some((cookie, mss)) => conn.connect_fast_open(cookie, &data, mss),
                None => conn.connect_fast_open(FastOpenCookie::request(false), &[], 0),
            };
        }
        self.counters.active_opens += 1;
        let app = App::Client(Box::new(Client::new(data).already_queued(queued)));
        let id = self.insert(now, quad, Entry::new(conn, app));
        self.mark_dirty(id);
        let client = ClientId(self.clients.next_id);
        self.clients.next_id += 1;
        self.clients.records.insert(
            client,
            Record {
                quad,
                established: false,
                finished: None,
            },
        );
        Ok(client)
    }

    /// An ephemeral port whose 4-tuple with `remote` is not in use, searched from a cursor that
    /// moves on with every connection.
    pub(super) fn free_quad(
        &mut self,
        local_ip: std::net::IpAddr,
        remote: SocketAddr,
    ) -> Option<Quad> {
        let (first, last) = (*EPHEMERAL_PORTS.start(), *EPHEMERAL_PORTS.end());
        let span = u32::from(last - first) + 1;
        if self.clients.port_cursor == 0 {
            // Start somewhere unpredictable (RFC 6056 §3.3.1): the ISN secret decides.
            let seed = self.isn.isn(
                Instant::ZERO,
                &Quad {
                    local: SocketAddr::new(local_ip, 0),
                    remote,
                },
            );
            self.clients.port_cursor = u16::try_from(seed.raw() % span).unwrap_or(0).max(1);
        }
        for i in 0..span {
            let offset = (u32::from(self.clients.port_cursor) + i) % span;
            let port = first + u16::try_from(offset).unwrap_or(0);
            let quad = Quad {
                local: SocketAddr::new(local_ip, port),
                remote,
            };
            let listening = self.listeners.iter().any(|l| l.open && l.port == port);
            if !listening && !self.quad_in_use(&quad) {
                self.clients.port_cursor = u16::try_from((offset + 1) % span).unwrap_or(0).max(1);
                return Some(quad);
            }
        }
        None
    }

    /// What happened on a client connection since the last call: the bytes received, and once
    /// it is over, how it ended (after which the id is forgotten). `None` for an unknown id.
    pub fn poll_client(&mut self, id: ClientId) -> Option<ClientEvents> {
        let record = self.clients.records.get_mut(&id)?;
        let quad = record.quad;
        if let Some((outcome, data)) = record.finished.take() {
            let established = record.established;
            self.clients.records.remove(&id);
            return Some(ClientEvents {
                local: quad.local,
                state: State::Closed,
                established,
                data,
                outcome: Some(outcome),
            });
        }
        let slot = super::lookup(&self.table, &self.slots, &quad)?;
        let entry = self
            .slots
            .get_mut(slot)
            .and_then(|s| s.entry.as_deref_mut())?;
        let App::Client(client) = &mut entry.app else {
            return None;
        };
        let state = entry.conn.state();
        if state.is_synchronized() {
            record.established = true;
            // Read what arrived, also in TIME-WAIT, where the endpoint no longer runs the app.
            client.poll(&mut entry.conn);
        }
        let data = client.take_received();
        // The application is done once both sides have closed, even if TIME-WAIT lingers.
        let done = matches!(state, State::TimeWait) && client.is_closed();
        let established = record.established;
        if done {
            self.clients.records.remove(&id);
        }
        self.mark_dirty(slot);
        Some(ClientEvents {
            local: quad.local,
            state,
            established,
            data,
            outcome: done.then_some(ClientOutcome::Closed),
        })
    }

    /// Our address and port on a client connection that is not over yet.
    pub fn client_local(&self, id: ClientId) -> Option<SocketAddr> {
        self.clients.records.get(&id).map(|r| r.quad.local)
    }

    /// The driver lost interest in a client connection (its controller went away); the
    /// connection itself goes on and closes normally.
    pub fn forget_client(&mut self, id: ClientId) {
        self.clients.records.remove(&id);
    }
}
