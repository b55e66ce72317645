//! Two nodes joined by an impaired link on a virtual clock, and the scenarios run over them.

use crate::nodes::{BareServer, Client, EndpointServer, Node, ServerApp};
use crate::pattern::{Checker, Source, mix};
use synack::device::impair::{Direction, ImpairSpec, Impairer};
use synack::services::{Echo, ServiceKind};
use synack::time::{Duration, Instant};

/// What runs behind the link.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ServerKind {
    /// A bare passive connection echoing.
    BareEcho,
    /// A bare passive connection verifying the client's stream.
    BareSink,
    /// A bare passive connection sending its own stream of `down` bytes.
    BareSource,
    /// The endpoint's echo service.
    EndpointEcho,
    /// The endpoint's discard service.
    EndpointDiscard,
}

impl ServerKind {
    pub const ALL: [ServerKind; 5] = [
        ServerKind::BareEcho,
        ServerKind::BareSink,
        ServerKind::BareSource,
        ServerKind::EndpointEcho,
        ServerKind::EndpointDiscard,
    ];
}

/// One simulated transfer.
#[derive(Clone, Debug)]
pub struct Scenario {
    pub server: ServerKind,
    /// Bytes the client sends (for `BareSource`, the bytes the server sends).
    pub bytes: u64,
    pub link: ImpairSpec,
    /// The virtual time the transfer and both closes must fit in.
    pub budget: Duration,
    /// The endpoint servers send TCP super-segments (segmentation offload), split into
    /// wire-sized segments before the link as the kernel splits them.
    pub gso: bool,
}

/// How a finished run went.
#[derive(Debug)]
pub struct Report {
    pub elapsed: Duration,
    pub link: Vec<(&'static str, u64)>,
    pub steps: u64,
}

/// The client's stream id and the server's.
const CLIENT_STREAM: u64 = 0xc1;
const SERVER_STREAM: u64 = 0x5e;

pub struct Pair {
    pub now: Instant,
    pub client: Client,
    pub server: Box<dyn Node>,
    pub link: Impairer,
    out: Vec<Vec<u8>>,
    pub steps: u64,
}

/// The most passes at one instant before the run is declared a livelock.
const MAX_PASSES_PER_INSTANT: u32 = 100_000;

impl Pair {
    pub fn new(sc: &Scenario) -> Pair {
        let now = Instant::from_millis(1_000);
        let seed = sc.link.seed;
        let client_iss = mix(seed ^ 0x1) as u32;
        let server_iss = mix(seed ^ 0x2) as u32;
        let (port, server, down): (u16, Box<dyn Node>, u64) = match sc.server {
            ServerKind::BareEcho => (
                7,
                Box::new(BareServer::new(7, server_iss, ServerApp::Echo(Echo::new()))),
                sc.bytes,
            ),
            ServerKind::BareSink => {
                let checker = Checker::new(CLIENT_STREAM, sc.bytes);
                let app = ServerApp::Sink(checker, false);
                (9, Box::new(BareServer::new(9, server_iss, app)), 0)
            }
            ServerKind::BareSource => {
                let app = ServerApp::Source(Source::new(SERVER_STREAM, sc.bytes), false);
                (19, Box::new(BareServer::new(19, server_iss, app)), sc.bytes)
            }
            ServerKind::EndpointEcho | ServerKind::EndpointDiscard => {
                let service = if sc.server == ServerKind::EndpointEcho {
                    ServiceKind::Echo
                } else {
                    ServiceKind::Discard
                };
                let mut secret = [0u8; 16];
                secret[..8].copy_from_slice(&mix(seed ^ 0x3).to_le_bytes());
                let down = if service == ServiceKind::Echo {
                    sc.bytes
                } else {
                    0
                };
                let server = EndpointServer::new(now, service, secret, sc.gso);
                (service.default_port(), Box::new(server), down)
            }
        };
        let (up, back_stream) = match sc.server {
            ServerKind::BareSource => (0, SERVER_STREAM),
            _ => (sc.bytes, CLIENT_STREAM),
        };
        let client = Client::new(
            now,
            port,
            client_iss,
            Source::new(CLIENT_STREAM, up),
            Checker::new(back_stream, down),
        );
        Pair {
            now,
            client,
            server,
            link: Impairer::new(sc.link.clone()),
            out: Vec::new(),
            steps: 0,
        }
    }

    /// Run both sides at `now` until neither has anything more to say and nothing on the link
    /// is due; returns whether anything happened.
    pub fn settle(&mut self) -> Result<(), String> {
        for _ in 0..MAX_PASSES_PER_INSTANT {
            self.steps += 1;
            self.client.poll(self.now, &mut self.out);
            for p in self.out.drain(..) {
                self.link.push(self.now, Direction::Outbound, &p);
            }
            self.server.poll(self.now, &mut self.out);
            for p in self.out.drain(..) {
                self.link.push(self.now, Direction::Inbound, &p);
            }
            let mut delivered = false;
            while let Some((dir, p)) = self.link.poll(self.now) {
                delivered = true;
                if tracing::enabled!(tracing::Level::TRACE) {
                    tracing::trace!(now = %self.now, %dir, "{}", summary(p));
                }
                // Outbound is client -> server.
                match dir {
                    Direction::Outbound => self.server.receive(self.now, p, &mut self.out),
                    Direction::Inbound => self.client.receive(self.now, p, &mut self.out),
                }
                // Immediate replies (RSTs) travel back the other way.
                let back = match dir {
                    Direction::Outbound => Direction::Inbound,
                    Direction::Inbound => Direction::Outbound,
                };
                for reply in self.out.drain(..) {
                    self.link.push(self.now, back, &reply);
                }
            }
            if !delivered {
                return Ok(());
            }
        }
        Err(format!("livelock at {}", self.now))
    }

    /// One step: settle at `now`, then jump the clock to the next deadline of either side or
    /// the link. Returns false when nothing will ever happen again.
    pub fn drive(&mut self) -> Result<bool, String> {
        self.settle()?;
        let next = [
            self.client.poll_timeout(),
            self.server.poll_timeout(),
            self.link.next_release(),
        ]
        .into_iter()
        .flatten()
        .min();
        match next {
            Some(at) => {
                self.now = self.now.max(at);
                Ok(true)
            }
            None => Ok(false),
        }
    }

    pub fn finished(&self) -> Result<bool, String> {
        // Both are checked (no short circuit), so that either side's failure is reported.
        let (client, server) = (self.client.finished()?, self.server.finished()?);
        Ok(client && server)
    }

    pub fn describe(&self) -> String {
        format!(
            "at {}: {}; {}; link {:?}",
            self.now,
            self.client.describe(),
            self.server.describe(),
            self.link.counters()
        )
    }
}

/// Run a scenario to its end: both sides closed cleanly, every byte verified, within the
/// virtual-time budget.
pub fn run(sc: &Scenario) -> Result<Report, String> {
    let mut pair = Pair::new(sc);
    let start = pair.now;
    let deadline = start + sc.budget;
    loop {
        let more = pair
            .drive()
            .map_err(|e| format!("{e}: {}", pair.describe()))?;
        match pair.finished() {
            Ok(true) => break,
            Ok(false) => {}
            Err(e) => return Err(format!("{e}: {}", pair.describe())),
        }
        if !more {
            return Err(format!("stalled: nothing left to do: {}", pair.describe()));
        }
        if pair.now > deadline {
            return Err(format!(
                "over the virtual-time budget of {:?}: {}",
                sc.budget,
                pair.describe()
            ));
        }
    }
    Ok(Report {
        elapsed: pair.now - start,
        link: pair.link.counters().to_vec(),
        steps: pair.steps,
    })
}

/// A one-line tcpdump-like view of a packet, for traces.
pub fn summary(p: &[u8]) -> String {
    match synack::wire::parse(p) {
        Ok(synack::wire::Packet::Tcp { seg, .. }) => format!(
            "{}>{} [{}] seq {} ack {} win {} len {}",
            seg.src_port,
            seg.dst_port,
            seg.flags,
            seg.seq.raw(),
            seg.ack.raw(),
            seg.window,
            seg.payload.len()
        ),
        Ok(other) => format!("{other:?}"),
        Err(e) => format!("unparsable: {e}"),
    }
}
