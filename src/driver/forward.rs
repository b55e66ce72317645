//! The upstreams behind `forward:`, `direct` and `socks5:` listeners: the driver's half of
//! the relay. For each SYN the endpoint holds, it opens a nonblocking kernel TCP connection
//! to the upstream (`forward:`'s fixed address, the client's own destination for `direct`,
//! the proxy for `socks5:`, which is then asked to CONNECT: `services::Socks5Client`); when
//! that succeeds the endpoint answers the SYN, when it is refused the client gets RST, and
//! otherwise the SYN stays unanswered. Then bytes move between the socket and the
//! connection's relay buffers; the client's FIN becomes `shutdown(SHUT_WR)`, the upstream's
//! EOF our FIN, an upstream RST a reset, and a client RST an abortive close (SO_LINGER 0).
//! The sockets are bound to `--upstream-interface` (SO_BINDTODEVICE) and marked with
//! `--upstream-mark` (SO_MARK), so that they are never routed back into synack.

use crate::endpoint::{Endpoint, RelayEvent};
use crate::services::{PeerId, Socks5Client, Socks5Outcome, UpstreamTarget};
use crate::time::Instant;
use crate::wire::{IcmpErrorKind, PackedQuad, Quad};
use mio::net::TcpStream;
use mio::{Interest, Registry, Token};
use std::collections::HashMap;
use std::io::{self, ErrorKind, Read, Write};
use std::net::Shutdown;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use tracing::{debug, info, warn};

/// The first token of the upstream sockets (one each); exec's pipes are below it.
pub const FIRST_TOKEN: usize = 1 << 41;

/// How the relay's own sockets leave the host: never back into synack's interface.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UpstreamOptions {
    /// `--upstream-interface`: SO_BINDTODEVICE.
    pub interface: Option<String>,
    /// `--upstream-mark`: SO_MARK, for a routing rule.
    pub mark: Option<u32>,
}

/// A nonblocking connect to `addr` from a socket bound and marked as `opts` says.
fn connect(addr: SocketAddr, opts: &UpstreamOptions) -> std::io::Result<TcpStream> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_nonblocking(true)?;
    if let Some(iface) = &opts.interface {
        socket.bind_device(Some(iface.as_bytes()))?;
    }
    if let Some(mark) = opts.mark {
        socket.set_mark(mark)?;
    }
    match socket.connect(&addr.into()) {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {}
        Err(e) => return Err(e),
    }
    Ok(TcpStream::from_std(socket.into()))
}

/// One upstream socket.
///
/// Issue 21 (and 23): 96 bytes, not 256 — the 4-tuple packed, the SOCKS5 exchange boxed and
/// dropped once the proxy has connected — since every relayed connection keeps one, in a map
/// whose buckets are this size.
struct Upstream {
    quad: PackedQuad,
    target: UpstreamTarget,
    stream: TcpStream,
    /// The SOCKS5 CONNECT under way (`socks5:`), between the TCP connect and the SYN,ACK.
    socks: Option<Box<Socks5Client>>,
    /// The connect finished and the endpoint answered the SYN.
    connected: bool,
    write_blocked: bool,
    read_blocked: bool,
    /// `shutdown(SHUT_WR)` done (the client's FIN).
    shut: bool,
    /// The upstream's EOF was read, or the socket failed.
    done_reading: bool,
}

/// Every upstream socket, by token.
#[derive(Default)]
pub struct Upstreams {
    by_token: HashMap<usize, Upstream>,
    by_quad: HashMap<PackedQuad, usize>,
    next: usize,
    /// Connects that finished (their socket reported an event) and must be checked.
    ready: Vec<usize>,
    /// Where the upstream sockets may go (`--upstream-interface`, `--upstream-mark`).
    pub options: UpstreamOptions,
    /// Upstreams to pump this turn: their socket reported an event, or their connection ran
    /// (the endpoint's `take_relay_ready`). The others have nothing to move: with thousands
    /// of idle forwarded connections a turn of the loop stays as cheap as with none.
    active: Vec<usize>,
    /// The upstream sockets still connecting, by local address: a relayed SYN from one of
    /// them is the relay looping into its own interface ([`Endpoint::relay_loop`]).
    connecting: Connecting,
    /// Loops seen, for the log (said at 1, 2, 4, 8, ...).
    loops: u64,
}

/// The local addresses of the upstream sockets whose connect is under way (at most
/// `--backlog` of them, not every relayed connection), both ways: by address for a SYN's
/// source, by token to forget one once its connect is over (no `getsockname` then).
#[derive(Default)]
struct Connecting {
    by_addr: HashMap<SocketAddr, usize>,
    by_token: HashMap<usize, SocketAddr>,
}

impl Connecting {
    fn insert(&mut self, local: SocketAddr, token: usize) {
        self.by_addr.insert(local, token);
        self.by_token.insert(token, local);
    }

    /// The socket connecting from `local`, if one is.
    fn from(&self, local: &SocketAddr) -> Option<usize> {
        self.by_addr.get(local).copied()
    }

    /// `token`'s connect is over (done, failed or closed): a SYN from its address is no loop.
    fn forget(&mut self, token: usize) {
        if let Some(local) = self.by_token.remove(&token) {
            self.by_addr.remove(&local);
        }
    }

    fn clear(&mut self) {
        self.by_addr.clear();
        self.by_token.clear();
    }
}

impl Upstreams {
    pub fn owns(token: Token) -> bool {
        token.0 >= FIRST_TOKEN
    }

    pub fn on_event(&mut self, token: Token) {
        if let Some(u) = self.by_token.get_mut(&token.0) {
            u.write_blocked = false;
            u.read_blocked = false;
            if u.connected {
                self.active.push(token.0);
            } else {
                self.ready.push(token.0);
            }
        }
    }

    /// Connect or close as the endpoint says (other events are not for upstreams).
    pub fn on_relay_event(&mut self, event: &RelayEvent, ep: &mut Endpoint, registry: &Registry) {
        match *event {
            RelayEvent::Connect { quad, target } => {
                // Ours: from one of our connecting sockets, to where it connects (a client
                // of the host may share its address and port towards another destination).
                let looped = self
                    .connecting
                    .from(&quad.remote)
                    .and_then(|t| self.by_token.get(&t))
                    .is_some_and(|u| u.target.connect_addr() == quad.local);
                if looped {
                    self.loops += 1;
                    if self.loops.is_power_of_two() {
                        warn!(
                            %quad,
                            loops = self.loops,
                            "the relay loops: this SYN came from synack's own upstream socket, \
                             routed back into its interface; refusing it. Bind the upstream \
                             sockets with --upstream-interface IFACE, or give --upstream-mark N \
                             a routing rule that matches it (ip rule add fwmark N lookup TABLE)"
                        );
                    }
                    ep.relay_loop(&quad);
                    return;
                }
                match connect(target.connect_addr(), &self.options) {
                    Ok(mut stream) => {
                        let token = FIRST_TOKEN + self.next;
                        self.next += 1;
                        if let Err(e) = registry.register(
                            &mut stream,
                            Token(token),
                            Interest::READABLE | Interest::WRITABLE,
                        ) {
                            warn!(%quad, error = %e, "cannot watch the upstream socket");
                            ep.forward_failed(&quad);
                            return;
                        }
                        // A nonblocking connect has its local address already.
                        if let Ok(local) = stream.local_addr() {
                            self.connecting.insert(local, token);
                        }
                        let socks = match target {
                            UpstreamTarget::Socks5(spec, dest) => Some(Box::new(spec.client(dest))),
                            _ => None,
                        };
                        self.by_token.insert(
                            token,
                            Upstream {
                                quad: quad.into(),
                                target,
                                stream,
                                socks,
                                connected: false,
                                write_blocked: true,
                                read_blocked: true,
                                shut: false,
                                done_reading: false,
                            },
                        );
                        self.by_quad.insert(quad.into(), token);
                    }
                    Err(e) => connect_failed(ep, &quad, &target, &e),
                }
            }
            RelayEvent::End { quad, reset } => {
                let Some(token) = self.by_quad.remove(&PackedQuad::from(quad)) else {
                    return;
                };
                if let Some(mut u) = self.by_token.remove(&token) {
                    self.connecting.forget(token);
                    if reset {
                        // The client reset: abort the upstream too (RST, not FIN).
                        abortive(&u.stream);
                    }
                    let _ = registry.deregister(&mut u.stream);
                }
            }
            RelayEvent::Start { .. } => {}
        }
    }

    /// Finish connects, then move what can be moved for the upstreams that had an event and
    /// those of the connections in `ran` (see `Endpoint::take_relay_ready`).
    pub fn pump(&mut self, ep: &mut Endpoint, registry: &Registry, now: Instant, ran: &[Quad]) {
        self.active.extend(
            ran.iter()
                .filter_map(|&q| self.by_quad.get(&q.into()).copied()),
        );
        for token in std::mem::take(&mut self.ready) {
            let Some(u) = self.by_token.get_mut(&token) else {
                continue;
            };
            if u.connected {
                continue;
            }
            let quad = u.quad.get();
            let error = match u.stream.take_error() {
                Ok(Some(e)) | Err(e) => Some(e),
                Ok(None) => None,
            };
            let outcome = match error {
                Some(e) => Err(e),
                None => match u.stream.peer_addr() {
                    Ok(_) => Ok(()),
                    // Still connecting.
                    Err(e) if e.kind() == ErrorKind::NotConnected => continue,
                    Err(e) => Err(e),
                },
            };
            // socks5: the proxy is connected; the CONNECT to the destination comes next.
            let outcome = match (outcome, u.socks.as_deref_mut()) {
                (Ok(()), Some(socks)) => match socks_step(&mut u.stream, socks) {
                    Ok(Socks5Outcome::Pending) => continue,
                    Ok(Socks5Outcome::Connected) => {
                        // The exchange is over: its state goes.
                        u.socks = None;
                        Ok(())
                    }
                    Ok(Socks5Outcome::Refused(reply)) => {
                        info!(%quad, %reply, "{}: refused; resetting the client", u.target.describe());
                        ep.forward_refused(&quad);
                        self.close(registry, token);
                        continue;
                    }
                    Ok(Socks5Outcome::Failed(why)) => {
                        warn!(%quad, %why, "{}: the CONNECT failed", u.target.describe());
                        match why.unreachable() {
                            Some(kind) => ep.forward_unreachable(&quad, kind),
                            None => ep.forward_failed(&quad),
                        }
                        self.close(registry, token);
                        continue;
                    }
                    Err(e) => Err(e),
                },
                (outcome, _) => outcome,
            };
            match outcome {
                Ok(()) => {
                    if ep.forward_connected(now, &quad) {
                        self.connecting.forget(token);
                        u.connected = true;
                        // Its first bytes may already be waiting (an SSH banner).
                        self.active.push(token);
                        if let (Some(mut relay), Ok(local)) =
                            (ep.relay_io(&quad), u.stream.local_addr())
                        {
                            relay.set_peer(PeerId::Upstream(local));
                        }
                        debug!(%quad, upstream = ?u.stream.local_addr().ok(), "upstream connected");
                    } else {
                        self.close(registry, token);
                    }
                }
                Err(e) => {
                    connect_failed(ep, &quad, &u.target, &e);
                    self.close(registry, token);
                }
            }
        }
        self.active.sort_unstable();
        self.active.dedup();
        for token in self.active.drain(..) {
            if let Some(u) = self.by_token.get_mut(&token)
                && u.connected
            {
                u.pump(ep);
            }
        }
    }

    fn close(&mut self, registry: &Registry, token: usize) {
        if let Some(mut u) = self.by_token.remove(&token) {
            self.connecting.forget(token);
            let _ = registry.deregister(&mut u.stream);
            if self.by_quad.get(&u.quad) == Some(&token) {
                self.by_quad.remove(&u.quad);
            }
        }
    }

    /// The daemon is stopping: close what is left.
    pub fn stop_all(&mut self) {
        self.by_token.clear();
        self.by_quad.clear();
        self.connecting.clear();
    }
}

impl Upstream {
    fn pump(&mut self, ep: &mut Endpoint) {
        let quad = self.quad.get();
        let Some(mut relay) = ep.relay_io(&quad) else {
            return;
        };
        let mut changed = false;
        // Client → upstream.
        while !self.write_blocked && !self.shut {
            let data = relay.peer_pending();
            if data.is_empty() {
                break;
            }
            match self.stream.write(data) {
                Ok(n) => {
                    relay.peer_wrote(n);
                    changed = true;
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => self.write_blocked = true,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => {
                    debug!(%quad, error = %e, "writing to the upstream failed");
                    relay.peer_failed();
                    changed = true;
                    self.done_reading = true;
                    break;
                }
            }
        }
        // The client's FIN, once the upstream has every byte before it.
        if !self.shut && relay.peer_should_shut_input() {
            self.shut = true;
            let _ = self.stream.shutdown(Shutdown::Write);
        }
        // Upstream → client, as far as the relay has room (the client's window).
        while !self.read_blocked && !self.done_reading {
            let Some(outcome) = super::read_into(&mut relay, &mut self.stream) else {
                break;
            };
            match outcome {
                Ok(0) => {
                    self.done_reading = true;
                    relay.peer_eof();
                    changed = true;
                }
                Ok(_) => changed = true,
                Err(e) if e.kind() == ErrorKind::WouldBlock => self.read_blocked = true,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => {
                    // ECONNRESET: the upstream reset; so is the client.
                    debug!(%quad, error = %e, "the upstream failed; resetting the client");
                    self.done_reading = true;
                    relay.peer_failed();
                    changed = true;
                }
            }
        }
        if changed {
            ep.relay_changed(&quad);
        }
    }
}

/// Move the SOCKS5 CONNECT on: write what the client has to say, read what the proxy
/// answered. `Pending` until the proxy's reply is complete (a `WouldBlock` waits for the next
/// event). Each read takes only what the awaited message lacks ([`Socks5Client::wanted`]),
/// so a destination that speaks first (its bytes right behind the reply) stays in the socket
/// for the relay, which reads it after the client's handshake. `on_bytes` can then hand back
/// nothing past the reply; should it, the connect fails rather than lose those bytes.
fn socks_step(stream: &mut TcpStream, socks: &mut Socks5Client) -> std::io::Result<Socks5Outcome> {
    loop {
        while !socks.to_send().is_empty() {
            match stream.write(socks.to_send()) {
                Ok(n) => socks.sent(n),
                Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(Socks5Outcome::Pending),
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        // Only what the reply still lacks: the destination's first bytes may follow it.
        let mut buf = [0u8; 512];
        let want = socks.wanted().clamp(1, buf.len());
        match stream.read(buf.get_mut(..want).unwrap_or_default()) {
            Ok(0) => return Err(ErrorKind::UnexpectedEof.into()),
            Ok(n) => {
                let (outcome, early) = socks.on_bytes(buf.get(..n).unwrap_or_default());
                if !early.is_empty() {
                    return Ok(Socks5Outcome::Failed(
                        crate::services::Socks5Failure::Protocol,
                    ));
                }
                if outcome != Socks5Outcome::Pending {
                    return Ok(outcome);
                }
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(Socks5Outcome::Pending),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// SO_LINGER 0: closing the socket sends RST.
/// The upstream connect failed with `e`: a refusal resets the client; a `direct`
/// destination the host could not reach answers it with the same ICMP error
/// ([`Endpoint::forward_unreachable`]); anything else leaves its SYN unanswered.
fn connect_failed(ep: &mut Endpoint, quad: &Quad, target: &UpstreamTarget, e: &io::Error) {
    let unreachable = match (target, e.kind()) {
        (UpstreamTarget::Direct(_), ErrorKind::HostUnreachable) => {
            Some(IcmpErrorKind::HostUnreachable)
        }
        (UpstreamTarget::Direct(_), ErrorKind::NetworkUnreachable) => {
            Some(IcmpErrorKind::NetUnreachable)
        }
        _ => None,
    };
    if e.kind() == ErrorKind::ConnectionRefused {
        info!(%quad, "{} refused the connection; resetting the client", target.describe());
        ep.forward_refused(quad);
    } else if let Some(kind) = unreachable {
        info!(%quad, error = %e, "cannot connect to {}; telling the client", target.describe());
        ep.forward_unreachable(quad, kind);
    } else {
        warn!(%quad, error = %e, "cannot connect to {}", target.describe());
        ep.forward_failed(quad);
    }
}

fn abortive(stream: &TcpStream) {
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: setsockopt on a socket we own, with a correctly sized `linger`.
    let _ = unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&raw const linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        )
    };
}
