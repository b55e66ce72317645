//! The built-in applications: echo (RFC 862), discard (RFC 863), chargen (RFC 864), http.
//!
//! A service is a pure state machine over a [`Socket`]: the endpoint calls [`App::poll`] after
//! anything happens on the connection, and the service reads what it can, writes what fits, and
//! closes when it is done. Services never block and never allocate per packet: a buffer a
//! service needs is taken when a request begins, bounded, and given back once the connection
//! is idle or closing, and what it holds is charged like the connection's queues
//! ([`App::memory`]).
//!
//! # When to poll
//! Call [`App::poll`] once right after the connection becomes ESTABLISHED (a service such as
//! chargen speaks first), and again after every event that could let it make progress: data
//! arrived, send-buffer space was freed by an ACK, or the peer's FIN was read. Polling when
//! nothing changed is harmless. Every service calls [`Socket::close`] at most once and never
//! writes after it; none of them calls [`Socket::abort`].

mod chargen;
mod client;
mod discard;
mod echo;
mod exec;
mod http;
#[cfg(test)]
mod mock;
mod relay;
mod socket;
mod socks5;

use crate::tcp::Socket;
use std::fmt;
use std::str::FromStr;

pub use chargen::Chargen;
pub use client::Client;
pub use discard::Discard;
pub use echo::Echo;
pub use exec::{ExecSpec, ForwardSpec};
pub use http::Http;
pub use relay::{PeerId, Relay, RelayIo};
pub use socket::SocketApp;
pub use socks5::{Socks5Client, Socks5Failure, Socks5Outcome, Socks5Reply, Socks5Spec};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ServiceKind {
    Echo,
    Discard,
    Chargen,
    Http,
    /// `exec:COMMAND [ARGS...]`: a program per connection on its stdin/stdout (the driver
    /// spawns it; the connection runs a [`Relay`]). The spec is parsed once at startup and
    /// lives as long as the process.
    Exec(&'static ExecSpec),
    /// `forward:HOST:PORT`: each connection relayed to a kernel TCP socket connected to the
    /// upstream (the driver connects it before the SYN is answered).
    Forward(&'static ForwardSpec),
    /// `direct`: each connection relayed, through the host's TCP, to the address and port the
    /// client asked for (a transparent relay, with `--addr any`).
    Direct,
    /// `socks5:[USER:PASSWORD@]HOST:PORT`: each connection relayed through a SOCKS5 proxy's
    /// CONNECT to the address and port the client asked for.
    Socks5(&'static Socks5Spec),
}

/// Where the upstream of a relayed connection (`forward:`, `direct`, `socks5:`) is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UpstreamTarget {
    /// `forward:HOST:PORT`.
    Fixed(&'static ForwardSpec),
    /// `direct`: the client's own destination.
    Direct(std::net::SocketAddr),
    /// `socks5:`: the proxy, asked to CONNECT to the client's destination.
    Socks5(&'static Socks5Spec, std::net::SocketAddr),
}

impl UpstreamTarget {
    /// The address the host's TCP connects to.
    pub fn connect_addr(&self) -> std::net::SocketAddr {
        match *self {
            UpstreamTarget::Fixed(spec) => spec.addr(),
            UpstreamTarget::Direct(dest) => dest,
            UpstreamTarget::Socks5(spec, _) => spec.proxy(),
        }
    }

    /// The destination the client asked for, where it is not the connect address.
    pub fn destination(&self) -> Option<std::net::SocketAddr> {
        match *self {
            UpstreamTarget::Socks5(_, dest) => Some(dest),
            _ => None,
        }
    }

    /// For logs: `forward:198.18.1.1:80`, `direct 198.19.1.10:80`,
    /// `socks5:198.18.1.1:1080 to 198.19.1.10:80`.
    pub fn describe(&self) -> String {
        match *self {
            UpstreamTarget::Fixed(spec) => spec.label().to_owned(),
            UpstreamTarget::Direct(dest) => format!("direct {dest}"),
            UpstreamTarget::Socks5(spec, dest) => format!("{} to {dest}", spec.label()),
        }
    }
}

/// The listeners synack opens when no `--listen` is given: the well-known ports of each service.
pub const DEFAULT_LISTENERS: [(u16, ServiceKind); 4] = [
    (7, ServiceKind::Echo),
    (9, ServiceKind::Discard),
    (19, ServiceKind::Chargen),
    (80, ServiceKind::Http),
];

impl ServiceKind {
    pub const ALL: [ServiceKind; 4] = [
        ServiceKind::Echo,
        ServiceKind::Discard,
        ServiceKind::Chargen,
        ServiceKind::Http,
    ];

    pub fn name(self) -> &'static str {
        match self {
            ServiceKind::Echo => "echo",
            ServiceKind::Discard => "discard",
            ServiceKind::Chargen => "chargen",
            ServiceKind::Http => "http",
            ServiceKind::Exec(spec) => spec.label(),
            ServiceKind::Forward(spec) => spec.label(),
            ServiceKind::Direct => "direct",
            ServiceKind::Socks5(spec) => spec.label(),
        }
    }

    /// The service's well-known port.
    pub const fn default_port(self) -> u16 {
        match self {
            ServiceKind::Echo => 7,
            ServiceKind::Discard => 9,
            ServiceKind::Chargen => 19,
            ServiceKind::Http => 80,
            // No well-known port: exec listeners are always given one.
            ServiceKind::Exec(_)
            | ServiceKind::Forward(_)
            | ServiceKind::Direct
            | ServiceKind::Socks5(_) => 0,
        }
    }

    /// Whether the service relays each connection to an upstream the driver connects before
    /// the SYN is answered (`forward:`, `direct`, `socks5:`).
    pub fn relays_upstream(self) -> bool {
        matches!(
            self,
            ServiceKind::Forward(_) | ServiceKind::Direct | ServiceKind::Socks5(_)
        )
    }

    /// `direct` and `socks5:`: the connection goes to the address the client asked for, so a
    /// connection to synack's own address has nowhere to go (see `Endpoint::listener_for`).
    pub fn relays_to_destination(self) -> bool {
        matches!(self, ServiceKind::Direct | ServiceKind::Socks5(_))
    }

    /// The upstream of a connection to `local` (the address and port the client asked
    /// for), for a service that relays to one.
    pub fn upstream(self, local: std::net::SocketAddr) -> Option<UpstreamTarget> {
        match self {
            ServiceKind::Forward(spec) => Some(UpstreamTarget::Fixed(spec)),
            ServiceKind::Direct => Some(UpstreamTarget::Direct(local)),
            ServiceKind::Socks5(spec) => Some(UpstreamTarget::Socks5(spec, local)),
            _ => None,
        }
    }
}

impl fmt::Display for ServiceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for ServiceKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "echo" => Ok(ServiceKind::Echo),
            "discard" => Ok(ServiceKind::Discard),
            "chargen" => Ok(ServiceKind::Chargen),
            "http" => Ok(ServiceKind::Http),
            "direct" => Ok(ServiceKind::Direct),
            other => {
                if let Some(command) = other.strip_prefix("exec:") {
                    Ok(ServiceKind::Exec(ExecSpec::parse(command)?.leak()))
                } else if let Some(target) = other.strip_prefix("forward:") {
                    Ok(ServiceKind::Forward(ForwardSpec::parse(target)?.leak()))
                } else if let Some(target) = other.strip_prefix("socks5:") {
                    Ok(ServiceKind::Socks5(Socks5Spec::parse(target)?.leak()))
                } else {
                    Err(format!(
                        "unknown service '{other}' (choose echo, discard, chargen, http, \
                         exec:COMMAND, forward:HOST:PORT, direct or socks5:HOST:PORT)"
                    ))
                }
            }
        }
    }
}

/// One connection's application state.
pub enum App {
    Echo(Echo),
    Discard(Discard),
    Chargen(Chargen),
    /// Its buffers and hash state live on the heap only while a request is in progress.
    Http(Http),
    /// `exec:` and `forward:`: bytes relayed to and from a peer stream the driver owns.
    Relay(ServiceKind, Relay),
    /// Not a service: the endpoint's own active open (`synack connect`). (Boxed: rare, and
    /// the largest variant; every other connection's `App` is 24 bytes smaller.)
    Client(Box<Client>),
    /// Not a service: a connection of the socket API, driven by the program that holds the
    /// socket (`crate::endpoint::Sockets`).
    Socket(SocketApp),
}

impl App {
    /// The state of a fresh connection to `kind`. No service allocates here: each takes
    /// memory when it needs it and gives it back when idle (see [`App::memory`]).
    pub fn new(kind: ServiceKind) -> App {
        match kind {
            ServiceKind::Echo => App::Echo(Echo::new()),
            ServiceKind::Discard => App::Discard(Discard::new()),
            ServiceKind::Chargen => App::Chargen(Chargen::new()),
            ServiceKind::Http => App::Http(Http::new()),
            ServiceKind::Exec(_)
            | ServiceKind::Forward(_)
            | ServiceKind::Direct
            | ServiceKind::Socks5(_) => App::Relay(kind, Relay::new()),
        }
    }

    /// The service, or `None` for the endpoint's own client.
    pub fn kind(&self) -> Option<ServiceKind> {
        match self {
            App::Echo(_) => Some(ServiceKind::Echo),
            App::Discard(_) => Some(ServiceKind::Discard),
            App::Chargen(_) => Some(ServiceKind::Chargen),
            App::Http(_) => Some(ServiceKind::Http),
            App::Relay(kind, _) => Some(*kind),
            App::Client(_) | App::Socket(_) => None,
        }
    }

    /// Make whatever progress the socket allows: read, write, close.
    pub fn poll(&mut self, sock: &mut dyn Socket) {
        match self {
            App::Echo(s) => s.poll(sock),
            App::Discard(s) => s.poll(sock),
            App::Chargen(s) => s.poll(sock),
            App::Http(s) => s.poll(sock),
            App::Relay(_, s) => s.poll(sock),
            App::Client(s) => s.poll(sock),
            App::Socket(s) => s.poll(sock),
        }
    }

    /// A page the service waits for the endpoint to render (only http asks; see
    /// [`Http::pending_page`]).
    pub fn pending_page(&self) -> Option<crate::observe::Page> {
        match self {
            App::Http(s) => s.pending_page(),
            _ => None,
        }
    }

    /// The endpoint's rendering of [`App::pending_page`] (`None`: no such page); poll again
    /// to send it.
    pub fn answer_page(&mut self, body: Option<(crate::observe::ContentType, &[u8])>) {
        if let App::Http(s) = self {
            s.answer_page(body);
        }
    }

    /// The heap the service holds now (its buffers), charged against `--max-buffer-memory`
    /// with the connection's queues. Zero for an idle connection and for one whose service
    /// has closed: a service holds memory only while it has something in hand.
    pub fn memory(&self) -> usize {
        match self {
            App::Http(s) => s.memory(),
            App::Echo(s) => s.memory(),
            // The relay holds no bytes (relay.rs); discard and chargen copy through the
            // stack. The endpoint's own client holds what `synack connect --send` handed it,
            // which the user chose: not charged, as a socket's caller's buffer is not.
            // A socket's connection: the program holds its own buffers.
            App::Discard(_)
            | App::Chargen(_)
            | App::Relay(..)
            | App::Client(_)
            | App::Socket(_) => 0,
        }
    }

    /// The service has called [`Socket::close`]; it will write nothing more.
    pub fn is_closed(&self) -> bool {
        match self {
            App::Echo(s) => s.is_closed(),
            App::Discard(s) => s.is_closed(),
            App::Chargen(s) => s.is_closed(),
            App::Http(s) => s.is_closed(),
            App::Relay(_, s) => s.is_closed(),
            App::Client(s) => s.is_closed(),
            App::Socket(s) => s.is_closed(),
        }
    }

    /// The relay's other side, if this is an `exec:` or `forward:` connection.
    pub fn relay_peer(&self) -> Option<PeerId> {
        match self {
            App::Relay(_, relay) => relay.peer(),
            _ => None,
        }
    }

    /// The relay of an `exec:` or `forward:` connection.
    pub fn relay_mut(&mut self) -> Option<&mut Relay> {
        match self {
            App::Relay(_, relay) => Some(relay),
            _ => None,
        }
    }
}

/// The size of the stack buffers services copy through.
const COPY_BUF: usize = 4096;

/// Read and drop everything the socket has received; returns how many bytes that was.
fn drain(sock: &mut dyn Socket) -> usize {
    // Most polls find nothing to read (a handshake's ACK, a FIN): skip zeroing the buffer.
    if sock.recv_queue() == 0 {
        return 0;
    }
    let mut buf = [0u8; COPY_BUF];
    let mut total = 0;
    loop {
        let n = sock.recv(&mut buf);
        if n == 0 {
            return total;
        }
        total += n;
    }
}

/// Close the socket the first time this is called; `closed` remembers that it was.
fn close_once(sock: &mut dyn Socket, closed: &mut bool) {
    if !*closed {
        *closed = true;
        sock.close();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_round_trip_through_names_and_default_ports() {
        for kind in ServiceKind::ALL {
            assert_eq!(kind.name().parse::<ServiceKind>(), Ok(kind));
            assert!(DEFAULT_LISTENERS.contains(&(kind.default_port(), kind)));
            assert_eq!(App::new(kind).kind(), Some(kind));
        }
        assert!("gopher".parse::<ServiceKind>().is_err());
    }

    #[test]
    fn drain_reads_everything_and_skips_an_empty_socket() {
        let mut sock = mock::MockSocket::new();
        // A handshake's ACK or a bare FIN leaves nothing to read: no recv, no buffer.
        assert_eq!(drain(&mut sock), 0);
        assert_eq!(sock.recvs, 0);
        sock.push(&[7; 3 * COPY_BUF + 5]);
        assert_eq!(drain(&mut sock), 3 * COPY_BUF + 5);
        assert_eq!(sock.recv_queue(), 0);
    }
}
