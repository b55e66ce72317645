//! Two nodes joined by an impaired link on a virtual clock, and the scenarios run over them.

use crate::nodes::{BareServer, Client, EndpointServer, Node, ServerApp};
use crate::pattern::{Checker, Source, mix};
use synack::device::impair::{Direction, ImpairSpec, Impairer};
use synack::services::{Echo, ServiceKind};
use synack::time::{Duration, Instant};
use synack::wire::{Packet, TcpSegment};

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
    /// Paths exercised beyond the link's faults.
    pub edges: Edges,
}

/// Paths the sweeps exercise beyond the link's faults (issue 13), each drawn from the seed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Edges {
    /// For stretches of 50-300 ms every 2-6 s, every ACK the receiver of the main stream sends is
    /// rewritten to a zero window: its window shrinks to zero with data in flight, and the
    /// sender must probe it (RFC 9293 §3.8.6, §3.8.6.1) without timing out while the probes
    /// are answered. One side only: a receiver shrinks its window, the sender does not
    /// (were both to shrink at once with data crossing, each side's ACKs, sent at the right
    /// edge the other offered, would be older than the other's RCV.NXT, and both would drop
    /// them as unacceptable, RFC 9293 Table 6).
    pub shrink: bool,
    /// A segment carrying a FIN overtakes the data segment sent just before it, so the FIN
    /// arrives beyond a hole (§3.10.7.4, eighth step).
    pub fin_reorder: bool,
    /// A bare server opens actively too, its SYN crossing the client's (simultaneous open,
    /// RFC 9293 §3.5 Figure 8).
    pub simultaneous_open: bool,
}

impl Edges {
    /// Each path on for about a quarter of the seeds (simultaneous open for half of those
    /// with a bare server).
    pub fn draw(r: u64) -> Edges {
        Edges {
            shrink: (r >> 51) & 3 == 0,
            fin_reorder: (r >> 53) & 3 == 0,
            simultaneous_open: (r >> 55) & 1 == 1,
        }
    }
}

/// What `Edges` does to the packets on their way onto the link.
struct Shaper {
    edges: Edges,
    seed: u64,
    draws: u64,
    /// The direction whose ACKs are shrunk: the receiver of the main stream.
    shrink_dir: Direction,
    /// Shrinking: the windows are shut until `until`; the next stretch starts at `next`.
    shut: Option<Instant>,
    next: Instant,
    /// FIN reordering: the last data segment of each direction's batch, held back.
    held: [Option<Vec<u8>>; 2],
}

impl Shaper {
    fn new(edges: Edges, seed: u64, now: Instant, shrink_dir: Direction) -> Shaper {
        let mut s = Shaper {
            edges,
            seed,
            draws: 0,
            shrink_dir,
            shut: None,
            next: now,
            held: [None, None],
        };
        s.next = now + s.millis(200, 2000);
        s
    }

    fn millis(&mut self, lo: u64, hi: u64) -> Duration {
        self.draws += 1;
        Duration::from_millis(lo + mix(self.seed ^ 0x5_4a9e ^ self.draws) % (hi - lo))
    }

    /// Push `p` onto the link, shaped.
    fn push(&mut self, link: &mut Impairer, now: Instant, dir: Direction, p: Vec<u8>) {
        let p = if self.edges.shrink && dir == self.shrink_dir {
            self.shrink(now, p)
        } else {
            p
        };
        let slot = usize::from(dir == Direction::Inbound);
        if !self.edges.fin_reorder {
            link.push(now, dir, &p);
            return;
        }
        let Ok(Packet::Tcp { seg, .. }) = synack::wire::parse(&p) else {
            link.push(now, dir, &p);
            return;
        };
        if seg.flags.fin() {
            // The FIN overtakes the data segment before it.
            link.push(now, dir, &p);
            if let Some(held) = self.held[slot].take() {
                link.push(now, dir, &held);
            }
        } else if !seg.payload.is_empty() && !seg.flags.syn() && !seg.flags.rst() {
            if let Some(held) = self.held[slot].replace(p) {
                link.push(now, dir, &held);
            }
        } else {
            link.push(now, dir, &p);
        }
    }

    /// The end of a batch: nothing is held past it.
    fn flush(&mut self, link: &mut Impairer, now: Instant, dir: Direction) {
        let slot = usize::from(dir == Direction::Inbound);
        if let Some(held) = self.held[slot].take() {
            link.push(now, dir, &held);
        }
    }

    fn shrink(&mut self, now: Instant, p: Vec<u8>) -> Vec<u8> {
        if let Some(until) = self.shut
            && now >= until
        {
            self.shut = None;
            self.next = now + self.millis(2000, 6000);
        }
        if self.shut.is_none() && now >= self.next {
            self.shut = Some(now + self.millis(50, 300));
        }
        if self.shut.is_none() {
            return p;
        }
        let Ok(Packet::Tcp { src, dst, seg }) = synack::wire::parse(&p) else {
            return p;
        };
        if !seg.flags.ack() || seg.flags.syn() || seg.flags.rst() || seg.window == 0 {
            return p;
        }
        let shut = TcpSegment { window: 0, ..seg };
        let mut buf = vec![0; p.len() + 64];
        let n = synack::wire::emit_tcp(&mut buf, src, dst, &shut).expect("re-emit");
        buf.truncate(n);
        buf
    }
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
    shaper: Shaper,
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
        let bare = |port: u16, app: ServerApp| -> Box<dyn Node> {
            let mut server = BareServer::new(port, server_iss, app);
            if sc.edges.simultaneous_open {
                server.open_actively(now);
            }
            Box::new(server)
        };
        let (port, server, down): (u16, Box<dyn Node>, u64) = match sc.server {
            ServerKind::BareEcho => (7, bare(7, ServerApp::Echo(Echo::new())), sc.bytes),
            ServerKind::BareSink => {
                let checker = Checker::new(CLIENT_STREAM, sc.bytes);
                (9, bare(9, ServerApp::Sink(checker, false)), 0)
            }
            ServerKind::BareSource => {
                let app = ServerApp::Source(Source::new(SERVER_STREAM, sc.bytes), false);
                (19, bare(19, app), sc.bytes)
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
            // The server's ACKs (inbound) unless the server is the one sending.
            shaper: Shaper::new(
                sc.edges,
                seed,
                now,
                if sc.server == ServerKind::BareSource {
                    Direction::Outbound
                } else {
                    Direction::Inbound
                },
            ),
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
            self.send(Direction::Outbound);
            self.server.poll(self.now, &mut self.out);
            self.send(Direction::Inbound);
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
                self.send(back);
            }
            if !delivered {
                return Ok(());
            }
        }
        Err(format!("livelock at {}", self.now))
    }

    /// Put what a side just sent onto the link, through the shaper.
    fn send(&mut self, dir: Direction) {
        for p in self.out.drain(..) {
            self.shaper.push(&mut self.link, self.now, dir, p);
        }
        self.shaper.flush(&mut self.link, self.now, dir);
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
