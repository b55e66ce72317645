//! The two ends of a simulated link: our active opener with a test application, and either a
//! bare passive [`Connection`] with a test application or a whole [`Endpoint`] with a built-in
//! service. Each takes packet bytes in and produces packet bytes out, on a virtual clock.

use crate::pattern::{Checker, Source};
use std::net::SocketAddr;
use synack::endpoint::{Endpoint, EndpointConfig, Limits, Transmit};
use synack::services::{Echo, ServiceKind};
use synack::tcp::{Config, Connection, SeqNum, Socket, State};
use synack::time::{Duration, Instant};
use synack::wire::{self, Gso, Packet, Quad, gso};

pub const CLIENT: &str = "198.18.0.1:40000";
pub const SERVER_IP: &str = "198.18.0.2";
pub const MSS: u16 = 1460;
/// 2·MSL in the simulation: long enough to re-acknowledge a peer's retransmitted FIN (the
/// point of TIME-WAIT, RFC 9293 §3.6), short enough not to dominate the run.
pub const TIME_WAIT: Duration = Duration::from_secs(30);

/// One side of the link.
pub trait Node {
    /// A packet arrived; anything sent at once goes to `out`.
    fn receive(&mut self, now: Instant, packet: &[u8], out: &mut Vec<Vec<u8>>);
    /// Run due timers and the application, and send what is due.
    fn poll(&mut self, now: Instant, out: &mut Vec<Vec<u8>>);
    fn poll_timeout(&self) -> Option<Instant>;
    /// Finished cleanly, or an error saying why it cannot.
    fn finished(&self) -> Result<bool, String>;
    fn describe(&self) -> String;
}

/// The stack's defaults, but for a shorter TIME-WAIT (the sweeps would otherwise spend most
/// of their virtual time there).
pub fn sim_config() -> Config {
    Config {
        time_wait: TIME_WAIT,
        ..Config::default()
    }
}

/// Emit `seg` from `src` to `dst` as packet bytes.
fn emit(buf: &mut [u8], quad: &Quad, seg: &wire::TcpSegment<'_>, out: &mut Vec<Vec<u8>>) {
    let n = wire::emit_tcp(buf, quad.local.ip(), quad.remote.ip(), seg).expect("emit");
    out.push(buf[..n].to_vec());
}

/// Feed a packet to `conn` if it parses and belongs to it; a RST it calls for goes to `out`.
/// Returns false for packets that do not parse (corrupted on the link).
fn deliver(
    conn: &mut Connection,
    now: Instant,
    packet: &[u8],
    buf: &mut [u8],
    out: &mut Vec<Vec<u8>>,
) -> bool {
    let Ok(Packet::Tcp { src, dst, seg }) = wire::parse(packet) else {
        return false;
    };
    let quad = conn.quad();
    if src != quad.remote.ip()
        || dst != quad.local.ip()
        || seg.src_port != quad.remote.port()
        || seg.dst_port != quad.local.port()
    {
        return true;
    }
    if let Some(rst) = conn.on_segment(now, &seg) {
        emit(buf, &quad, &rst, out);
    }
    true
}

/// Timers, challenge ACKs and transmission for a bare connection.
fn run_conn(conn: &mut Connection, now: Instant, buf: &mut [u8], out: &mut Vec<Vec<u8>>) {
    if conn.poll_timeout().is_some_and(|t| t <= now) {
        conn.handle_timeout(now);
    }
    if conn.take_challenge() {
        conn.grant_challenge();
    }
    let quad = conn.quad();
    conn.poll_transmit(now, &mut |seg| emit(buf, &quad, seg, out));
}

fn closed_cleanly(conn: &Connection, who: &str) -> Result<bool, String> {
    match conn.reset_cause() {
        Some(cause) => Err(format!("{who} connection ended abnormally: {cause:?}")),
        None => Ok(conn.state() == State::Closed),
    }
}

/// The active side: sends `up` bytes of its pattern, half-closes, and checks what comes back.
pub struct Client {
    pub conn: Connection,
    pub source: Source,
    pub checker: Checker,
    closed: bool,
    buf: Vec<u8>,
    pub unparsable: u64,
}

impl Client {
    pub fn new(now: Instant, server_port: u16, iss: u32, source: Source, checker: Checker) -> Self {
        let quad = Quad {
            local: CLIENT.parse().unwrap(),
            remote: SocketAddr::new(SERVER_IP.parse().unwrap(), server_port),
        };
        Client {
            conn: Connection::connect(
                now,
                quad,
                SeqNum::new(iss),
                MSS,
                &std::sync::Arc::new(sim_config()),
            ),
            source,
            checker,
            closed: false,
            buf: vec![0; 65536],
            unparsable: 0,
        }
    }

    fn run_app(&mut self) {
        let sock: &mut dyn Socket = &mut self.conn;
        self.checker.drain(sock);
        if !matches!(self.conn.state(), State::Established | State::CloseWait) {
            return;
        }
        self.source.pump(&mut self.conn);
        // Half-close once everything is queued; read on until the peer closes too. (close()
        // with unread data would abort, so it follows the drain above.)
        if self.source.done() && !self.closed {
            self.closed = true;
            self.conn.close();
        }
    }
}

impl Node for Client {
    fn receive(&mut self, now: Instant, packet: &[u8], out: &mut Vec<Vec<u8>>) {
        if !deliver(&mut self.conn, now, packet, &mut self.buf, out) {
            self.unparsable += 1;
        }
    }

    fn poll(&mut self, now: Instant, out: &mut Vec<Vec<u8>>) {
        self.run_app();
        run_conn(&mut self.conn, now, &mut self.buf, out);
        // The timers may have changed the state (e.g. ESTABLISHED after a retransmitted SYN).
        self.run_app();
        run_conn(&mut self.conn, now, &mut self.buf, out);
    }

    fn poll_timeout(&self) -> Option<Instant> {
        self.conn.poll_timeout()
    }

    fn finished(&self) -> Result<bool, String> {
        let closed = closed_cleanly(&self.conn, "client")?;
        self.checker.verdict(closed)?;
        if closed && !self.source.done() {
            return Err(format!(
                "client closed after queueing only {} of {} bytes",
                self.source.sent, self.source.total
            ));
        }
        Ok(closed)
    }

    fn describe(&self) -> String {
        format!(
            "client {} sent {}/{} received {}/{} (unparsable {})",
            self.conn.state(),
            self.source.sent,
            self.source.total,
            self.checker.received,
            self.checker.expected,
            self.unparsable
        )
    }
}

/// What a bare passive connection runs.
pub enum ServerApp {
    Echo(Echo),
    /// Reads and verifies the client's stream, closes when the client has.
    Sink(Checker, bool),
    /// Sends its own stream, then closes; reads (and discards) whatever the client sends.
    Source(Source, bool),
}

/// A bare passive connection, accepted from the first SYN.
pub struct BareServer {
    pub port: u16,
    pub iss: u32,
    pub conn: Option<Connection>,
    pub app: ServerApp,
    buf: Vec<u8>,
    pub unparsable: u64,
}

impl BareServer {
    pub fn new(port: u16, iss: u32, app: ServerApp) -> Self {
        BareServer {
            port,
            iss,
            conn: None,
            app,
            buf: vec![0; 65536],
            unparsable: 0,
        }
    }

    /// Open actively towards the client at once, instead of waiting for its SYN in LISTEN:
    /// the two SYNs cross (simultaneous open, RFC 9293 §3.5 Figure 8).
    pub fn open_actively(&mut self, now: Instant) {
        let quad = Quad {
            local: SocketAddr::new(SERVER_IP.parse().unwrap(), self.port),
            remote: CLIENT.parse().unwrap(),
        };
        let iss = SeqNum::new(self.iss);
        self.conn = Some(Connection::connect(
            now,
            quad,
            iss,
            MSS,
            &std::sync::Arc::new(sim_config()),
        ));
    }

    fn run_app(&mut self) {
        let Some(conn) = self.conn.as_mut() else {
            return;
        };
        if !conn.state().is_synchronized() || conn.state() == State::TimeWait {
            return;
        }
        match &mut self.app {
            ServerApp::Echo(echo) => echo.poll(conn),
            ServerApp::Sink(checker, closed) => {
                checker.drain(conn);
                if conn.peer_closed() && !*closed {
                    *closed = true;
                    conn.close();
                }
            }
            ServerApp::Source(source, closed) => {
                let mut sink = [0u8; 4096];
                while conn.recv(&mut sink) > 0 {}
                source.pump(conn);
                if source.done() && !*closed {
                    *closed = true;
                    conn.close();
                }
            }
        }
    }
}

impl Node for BareServer {
    fn receive(&mut self, now: Instant, packet: &[u8], out: &mut Vec<Vec<u8>>) {
        if let Some(conn) = self.conn.as_mut() {
            if !deliver(conn, now, packet, &mut self.buf, out) {
                self.unparsable += 1;
            }
            return;
        }
        // LISTEN (RFC 9293 §3.10.7.2): the first SYN creates the connection.
        let Ok(Packet::Tcp { src, dst, seg }) = wire::parse(packet) else {
            self.unparsable += 1;
            return;
        };
        if seg.dst_port != self.port || !seg.flags.syn() || seg.flags.ack() || seg.flags.rst() {
            return;
        }
        let quad = Quad {
            local: SocketAddr::new(dst, seg.dst_port),
            remote: SocketAddr::new(src, seg.src_port),
        };
        let conn = Connection::accept(
            now,
            quad,
            &seg,
            SeqNum::new(self.iss),
            MSS,
            &std::sync::Arc::new(sim_config()),
        );
        self.conn = Some(conn);
    }

    fn poll(&mut self, now: Instant, out: &mut Vec<Vec<u8>>) {
        for _ in 0..2 {
            self.run_app();
            if let Some(conn) = self.conn.as_mut() {
                run_conn(conn, now, &mut self.buf, out);
            }
        }
    }

    fn poll_timeout(&self) -> Option<Instant> {
        self.conn.as_ref().and_then(Connection::poll_timeout)
    }

    fn finished(&self) -> Result<bool, String> {
        let Some(conn) = self.conn.as_ref() else {
            return Ok(false);
        };
        let closed = closed_cleanly(conn, "server")?;
        match &self.app {
            ServerApp::Sink(checker, _) => checker.verdict(closed)?,
            ServerApp::Source(source, _) if closed && !source.done() => {
                return Err(format!(
                    "server closed after queueing {} of {} bytes",
                    source.sent, source.total
                ));
            }
            _ => {}
        }
        Ok(closed)
    }

    fn describe(&self) -> String {
        let state = self
            .conn
            .as_ref()
            .map_or("LISTEN".to_string(), |c| c.state().to_string());
        let app = match &self.app {
            ServerApp::Echo(_) => "echo".to_string(),
            ServerApp::Sink(c, _) => format!("sink received {}/{}", c.received, c.expected),
            ServerApp::Source(s, _) => format!("source sent {}/{}", s.sent, s.total),
        };
        format!("bare server {state} {app} (unparsable {})", self.unparsable)
    }
}

/// The whole endpoint with its built-in services, as the daemon runs it.
pub struct EndpointServer {
    pub ep: Endpoint,
    pub service: ServiceKind,
    seen: bool,
    gso: bool,
    /// Super-segments the endpoint sent (with `gso`), split before the link.
    super_segments: u64,
}

/// The endpoint's output, counting super-segments and splitting them as the kernel would.
struct SplitOut<'a> {
    out: &'a mut Vec<Vec<u8>>,
    super_segments: &'a mut u64,
}

impl Transmit for SplitOut<'_> {
    fn transmit(&mut self, packet: &[u8]) {
        self.out.push(packet.to_vec());
    }

    fn transmit_gso(&mut self, packet: &[u8], gso: Gso) {
        *self.super_segments += 1;
        let out = &mut *self.out;
        gso::split(packet, gso, &mut |p| out.push(p.to_vec()))
            .expect("the endpoint's super-segments are well formed");
    }
}

impl EndpointServer {
    pub fn new(now: Instant, service: ServiceKind, secret: [u8; 16], gso: bool) -> Self {
        Self::with_limits(now, service, secret, gso, Limits::default())
    }

    /// The endpoint with other limits than the daemon's defaults (e.g. a small
    /// `--max-buffer-memory`).
    pub fn with_limits(
        now: Instant,
        service: ServiceKind,
        secret: [u8; 16],
        gso: bool,
        limits: Limits,
    ) -> Self {
        let cfg = EndpointConfig {
            addrs: vec![SERVER_IP.parse().unwrap()],
            listeners: vec![(service.default_port(), service)],
            mtu: MSS + 40,
            time_wait: TIME_WAIT,
            gso,
            ..EndpointConfig::default()
        };
        let ep = Endpoint::new(cfg, secret, now).with_limits(limits);
        EndpointServer {
            ep,
            service,
            seen: false,
            gso,
            super_segments: 0,
        }
    }
}

impl Node for EndpointServer {
    fn receive(&mut self, now: Instant, packet: &[u8], out: &mut Vec<Vec<u8>>) {
        let mut out = SplitOut {
            out,
            super_segments: &mut self.super_segments,
        };
        self.ep.receive(now, packet, &mut out);
        self.seen |= self.ep.connection_count() > 0;
    }

    fn poll(&mut self, now: Instant, out: &mut Vec<Vec<u8>>) {
        let mut out = SplitOut {
            out,
            super_segments: &mut self.super_segments,
        };
        self.ep.poll(now, &mut out);
    }

    fn poll_timeout(&self) -> Option<Instant> {
        self.ep.poll_timeout()
    }

    fn finished(&self) -> Result<bool, String> {
        let s = self.ep.stats();
        if s.peer_resets + s.established_resets + s.retransmit_timeouts + s.synack_timeouts > 0 {
            return Err(format!(
                "endpoint connection ended abnormally: {:?}",
                self.ep.counters()
            ));
        }
        let done = self.seen && self.ep.connection_count() == 0;
        if done && self.gso && self.service == ServiceKind::Echo && self.super_segments == 0 {
            return Err("segmentation offload on, but no super-segment was sent".into());
        }
        Ok(done)
    }

    fn describe(&self) -> String {
        format!(
            "endpoint ({}) connections {} super-segments {} counters {:?}",
            self.service,
            self.ep.connection_count(),
            self.super_segments,
            self.ep
                .counters()
                .into_iter()
                .filter(|(_, v)| *v > 0)
                .collect::<Vec<_>>()
        )
    }
}
