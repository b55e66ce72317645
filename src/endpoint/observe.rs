//! What the endpoint shows of itself: a row per connection and listener for `synack status`
//! (like `ss -tan`), and the ladder of each connection that closes, for `--ladder`.

use super::{Endpoint, Entry};
use crate::services::App;
use crate::tcp::State;
use crate::time::{Duration, Instant};
use crate::wire::Quad;
use std::collections::VecDeque;
use std::net::SocketAddr;

/// The most closed connections' ladders kept for the driver; older ones are dropped (counted).
pub const MAX_FINISHED_LADDERS: usize = 1024;

/// One row of `synack status`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnStatus {
    pub state: State,
    /// Bytes received and not read by the application.
    pub recv_q: usize,
    /// Bytes queued for sending and not yet acknowledged.
    pub send_q: usize,
    pub local: SocketAddr,
    /// `None` for a listener (`*:*`).
    pub peer: Option<SocketAddr>,
    /// The service on a listener or connection, `client` for our own active opens.
    pub app: &'static str,
    /// Smoothed RTT (RFC 6298), once measured.
    pub rtt: Option<Duration>,
    pub rto: Option<Duration>,
    pub cwnd: Option<u32>,
    pub retransmissions: u64,
    /// Time since the connection was created (`None` for listeners).
    pub age: Option<Duration>,
    /// Bytes of window offered now (RCV.WND), the receive buffer autotuning chose, the
    /// peer's window (SND.WND), the send buffer limit, and the bytes the connection holds
    /// (`tcp::memory`); 0 for listeners.
    pub rcv_wnd: u32,
    pub rcv_space: usize,
    pub snd_wnd: u32,
    pub snd_buf: usize,
    pub mem: usize,
}

/// The ladders of closed connections, collected when `--ladder` asks for them.
#[derive(Debug, Default)]
pub(super) struct Ladders {
    queue: Option<VecDeque<(Quad, String)>>,
    dropped: u64,
}

impl Ladders {
    fn push(&mut self, ladder: (Quad, String)) {
        if let Some(q) = self.queue.as_mut() {
            if q.len() >= MAX_FINISHED_LADDERS {
                q.pop_front();
                self.dropped += 1;
            }
            q.push_back(ladder);
        }
    }
}

fn app_name(app: &App) -> &'static str {
    app.kind().map_or("client", |k| k.name())
}

impl Endpoint {
    /// Collect the ladder of every connection when it is removed from the table (off by
    /// default: then nothing is rendered).
    pub fn set_collect_ladders(&mut self, on: bool) {
        if on == self.collecting_ladders() {
            return;
        }
        match (on, self.ladders.queue.is_some()) {
            (true, false) => self.ladders.queue = Some(VecDeque::new()),
            (false, true) => self.ladders.queue = None,
            _ => {}
        }
    }

    /// The ladders of the connections closed since the last call, oldest first.
    pub fn take_finished_ladders(&mut self) -> Vec<(Quad, String)> {
        self.ladders
            .queue
            .as_mut()
            .map(|q| q.drain(..).collect())
            .unwrap_or_default()
    }

    pub fn collecting_ladders(&self) -> bool {
        self.ladders.queue.is_some()
    }

    /// Ladders dropped because the driver did not take them in time.
    pub fn ladders_dropped(&self) -> u64 {
        self.ladders.dropped
    }

    /// Called for every entry leaving the table (closed, or replaced from TIME-WAIT).
    pub(super) fn on_removed(&mut self, mut entry: Entry) {
        if self.ladders.queue.is_some() {
            self.ladders.push((entry.conn.quad(), entry.conn.ladder()));
        }
        if let App::Client(client) = &mut entry.app {
            if !entry.counted_established {
                self.counters.attempt_fails += 1;
            }
            self.clients
                .finish(&mut entry.conn, client, entry.counted_established);
        }
    }

    /// The current ladder of every connection, ordered by 4-tuple.
    pub fn ladders(&self) -> Vec<(Quad, String)> {
        let mut v: Vec<(Quad, String)> = self
            .entries()
            .map(|e| (e.conn.quad(), e.conn.ladder()))
            .collect();
        v.sort_by_key(|(q, _)| (q.local, q.remote));
        v
    }

    fn entries(&self) -> impl Iterator<Item = &Entry> {
        self.slots.iter().filter_map(|s| s.entry.as_ref())
    }

    /// One row per listener and address (LISTEN), then one per connection, ordered by local
    /// then peer address, as `ss -tan` lists them.
    pub fn snapshot(&self, now: Instant) -> Vec<ConnStatus> {
        let mut rows = Vec::new();
        if self.accepting {
            for (port, service) in &self.listeners {
                for addr in &self.addrs {
                    rows.push(ConnStatus {
                        state: State::Listen,
                        recv_q: 0,
                        send_q: 0,
                        local: SocketAddr::new(*addr, *port),
                        peer: None,
                        app: service.name(),
                        rtt: None,
                        rto: None,
                        cwnd: None,
                        retransmissions: 0,
                        age: None,
                        rcv_wnd: 0,
                        rcv_space: 0,
                        snd_wnd: 0,
                        snd_buf: 0,
                        mem: 0,
                    });
                }
            }
        }
        let mut conns: Vec<ConnStatus> = self
            .entries()
            .map(|e| {
                let c = &e.conn;
                ConnStatus {
                    state: c.state(),
                    recv_q: crate::tcp::Socket::recv_queue(c),
                    send_q: c.send_queue(),
                    local: c.quad().local,
                    peer: Some(c.quad().remote),
                    app: app_name(&e.app),
                    rtt: c.srtt(),
                    rto: Some(c.rto()),
                    cwnd: Some(c.cwnd()),
                    retransmissions: c.retransmissions(),
                    age: Some(now.saturating_since(c.created())),
                    rcv_wnd: c.rcv_wnd(),
                    rcv_space: c.rcv_space(),
                    snd_wnd: c.snd_wnd(),
                    snd_buf: c.snd_buf(),
                    mem: c.memory(),
                }
            })
            .collect();
        rows.sort_by_key(|r| r.local);
        conns.sort_by_key(|r| (r.local, r.peer));
        rows.extend(conns);
        rows
    }
}

#[cfg(test)]
#[path = "observe_tests.rs"]
mod tests;
