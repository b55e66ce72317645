//! What the endpoint shows of itself: a row per connection and listener for `synack status`
//! (like `ss -tan`), the ladder of each connection that closes, for `--ladder`, and the pages
//! the http service serves about every connection (`/metrics`, `/connections`…), drawn by
//! `crate::observe` from what is collected here.

use super::{Endpoint, Entry};
use crate::observe::{self, ContentType, Page, html, metrics};
use crate::services::{App, PeerId};
use crate::tcp::ladder::View;
use crate::tcp::samples::Samples;
use crate::tcp::trace::Trace;
use crate::tcp::{Connection, State};
use crate::time::{Duration, Instant};
use crate::wire::Quad;
use std::collections::VecDeque;
use std::fmt::Write;
use std::net::SocketAddr;

/// The most closed connections' ladders kept for the driver; older ones are dropped (counted).
pub const MAX_FINISHED_LADDERS: usize = 1024;

/// The most rows `/connections` draws (the JSON has them all).
pub const MAX_LISTED: usize = 1000;

/// How many closed connections `/connections` keeps listing (with their diagrams), so a
/// learner can look at a finished connection's close and TIME-WAIT.
pub const RECENTLY_CLOSED: usize = 64;

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
    /// `exec:`: the program's PID; `forward:`: the upstream socket's local address.
    pub relay_peer: Option<PeerId>,
    /// `synack status --info` (`None` for listeners).
    pub info: Option<crate::tcp::TcpInfo>,
    /// Bytes of window offered now (RCV.WND), the receive buffer autotuning chose, the
    /// peer's window (SND.WND), the send buffer limit, and the bytes the connection holds
    /// (`tcp::memory`); 0 for listeners.
    pub rcv_wnd: u32,
    pub rcv_space: usize,
    pub snd_wnd: u32,
    pub snd_buf: usize,
    pub mem: usize,
}

impl ConnStatus {
    /// A row with no connection state behind it (a listener, a TIME-WAIT record): no
    /// queues, no RTT or window figures, no `--info`.
    pub(crate) fn bare(
        state: State,
        local: SocketAddr,
        peer: Option<SocketAddr>,
        app: &'static str,
    ) -> Self {
        ConnStatus {
            state,
            recv_q: 0,
            send_q: 0,
            local,
            peer,
            app,
            rtt: None,
            rto: None,
            cwnd: None,
            retransmissions: 0,
            age: None,
            relay_peer: None,
            info: None,
            rcv_wnd: 0,
            rcv_space: 0,
            snd_wnd: 0,
            snd_buf: 0,
            mem: 0,
        }
    }
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

/// A closed connection as `/connections` remembers it: its last status row and its trace
/// (moved out of the connection, not copied).
#[derive(Debug)]
pub(super) struct Closed {
    status: ConnStatus,
    trace: Trace,
    view: View,
    samples: Samples,
}

/// A connection a page asks about.
enum Known<'a> {
    Open(&'a Entry),
    Closed(&'a Closed),
}

/// The last [`RECENTLY_CLOSED`] connections, oldest first.
#[derive(Debug, Default)]
pub(super) struct Finished {
    queue: VecDeque<Closed>,
}

impl Finished {
    /// Keep `closed`; returns the oldest one if it had to make room.
    fn push(&mut self, closed: Closed) -> Option<Closed> {
        let evicted = if self.queue.len() >= RECENTLY_CLOSED {
            self.queue.pop_front()
        } else {
            None
        };
        self.queue.push_back(closed);
        evicted
    }

    /// The latest connection of `quad` that was last seen in TIME-WAIT (a record now).
    fn time_wait_mut(&mut self, quad: &Quad) -> Option<&mut Closed> {
        self.queue.iter_mut().rev().find(|c| {
            c.status.state == State::TimeWait
                && c.status.local == quad.local
                && c.status.peer == Some(quad.remote)
        })
    }

    fn find(&self, quad: &Quad) -> Option<&Closed> {
        // The most recent, should a 4-tuple have been used twice.
        self.queue
            .iter()
            .rev()
            .find(|c| c.status.local == quad.local && c.status.peer == Some(quad.remote))
    }
}

/// One connection's `synack status` row.
fn status_row(c: &Connection, app: &App, now: Instant) -> ConnStatus {
    ConnStatus {
        state: c.state(),
        recv_q: crate::tcp::Socket::recv_queue(c),
        send_q: c.send_queue(),
        local: c.quad().local,
        peer: Some(c.quad().remote),
        app: app_name(app),
        rtt: c.srtt(),
        rto: Some(c.rto()),
        cwnd: Some(c.cwnd()),
        retransmissions: c.retransmissions(),
        age: Some(now.saturating_since(c.created())),
        info: Some(c.tcp_info(now.saturating_since(c.created()))),
        relay_peer: app.relay_peer(),
        rcv_wnd: c.rcv_wnd(),
        rcv_space: c.rcv_space(),
        snd_wnd: c.snd_wnd(),
        snd_buf: c.snd_buf(),
        mem: c.memory().saturating_add(app.memory()),
    }
}

fn app_name(app: &App) -> &'static str {
    match app {
        App::Socket(_) => "socket",
        _ => app.kind().map_or("client", |k| k.name()),
    }
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

    /// Called for every entry leaving the table (closed, replaced from TIME-WAIT, or, with
    /// `time_wait`, become a TIME-WAIT record: its ladder is then given when the record
    /// ends, `time_wait_gone`).
    pub(super) fn on_removed(&mut self, mut entry: Entry, time_wait: bool) {
        self.relay_removed(&entry);
        if self.ladders.queue.is_some() && !time_wait {
            self.ladders.push((entry.conn.quad(), entry.conn.ladder()));
        }
        // Kept for /connections: the status row (its age unknown here) and the trace itself.
        let mut status = status_row(&entry.conn, &entry.app, entry.conn.created());
        status.age = None;
        let view = entry.conn.ladder_view();
        let trace = entry.conn.take_trace();
        let samples = entry.conn.take_samples();
        let evicted = self.finished.push(Closed {
            status,
            trace,
            view,
            samples,
        });
        // A record still in TIME-WAIT whose trace makes room: its ladder now, as it is.
        if let Some(old) = evicted
            && self.ladders.queue.is_some()
            && old.status.state == State::TimeWait
            && let Some(peer) = old.status.peer
        {
            let quad = Quad {
                local: old.status.local,
                remote: peer,
            };
            if self.time_waits.contains(&quad) {
                let ladder = crate::tcp::ladder::render(&old.trace, &old.view);
                self.ladders.push((quad, ladder));
            }
        }
        if let App::Socket(app) = &entry.app
            && let Some(handle) = app.handle()
        {
            self.sockets
                .connection_gone(handle, entry.conn.reset_cause());
        }
        if let App::Client(client) = &mut entry.app {
            if !entry.counted_established {
                self.counters.attempt_fails += 1;
            }
            self.clients
                .finish(&mut entry.conn, client, entry.counted_established);
        }
    }

    /// A TIME-WAIT record ended (`expired`: 2·MSL elapsed; else a SYN reopened it): its
    /// trace, among the recently closed, shows it, and `--ladder` gets its ladder.
    pub(super) fn time_wait_gone(&mut self, quad: &Quad, expired: bool) {
        let Some(closed) = self.finished.time_wait_mut(quad) else {
            return;
        };
        if expired {
            closed.view.state = State::Closed;
            closed.status.state = State::Closed;
        }
        if self.ladders.queue.is_some() {
            let ladder = crate::tcp::ladder::render(&closed.trace, &closed.view);
            self.ladders.push((*quad, ladder));
        }
    }

    /// A segment a TIME-WAIT record received or sent, in its trace while it is among the
    /// recently closed (as the whole connection records it).
    pub(super) fn record_time_wait(
        &mut self,
        quad: &Quad,
        direction: crate::tcp::trace::Direction,
        now: Instant,
        seg: &crate::wire::TcpSegment<'_>,
        label: crate::tcp::trace::Label,
    ) {
        if let Some(closed) = self.finished.time_wait_mut(quad) {
            closed
                .trace
                .record_labeled(direction, now, seg, State::TimeWait, label);
        }
    }

    /// `--impair` dropped a segment of a TIME-WAIT record: marked in its trace, as
    /// `Connection::record_lost` marks it.
    pub(super) fn record_time_wait_lost(
        &mut self,
        quad: &Quad,
        direction: crate::tcp::trace::Direction,
        now: Instant,
        seg: &crate::wire::TcpSegment<'_>,
    ) {
        if let Some(closed) = self.finished.time_wait_mut(quad) {
            closed.trace.record_lost(direction, now, seg);
        }
    }

    /// The `status` row of a TIME-WAIT record: its state, 4-tuple, window, and the service
    /// of the listener its port has (a socket's otherwise: only they make active opens that
    /// become records).
    fn time_wait_row(&self, record: &super::time_wait::Record) -> ConnStatus {
        let quad = record.quad();
        let app = self
            .listener_for(quad.local)
            .and_then(|l| self.listeners.get(l))
            .and_then(super::Listener::service_kind)
            .map_or("socket", |kind| kind.name());
        ConnStatus {
            rcv_wnd: record.tw.rcv_wnd(),
            ..ConnStatus::bare(State::TimeWait, quad.local, Some(quad.remote), app)
        }
    }

    /// The current ladder of every connection, ordered by 4-tuple (a TIME-WAIT record's
    /// while its trace is among the recently closed).
    pub fn ladders(&self) -> Vec<(Quad, String)> {
        let mut v: Vec<(Quad, String)> = self
            .entries()
            .map(|e| (e.conn.quad(), e.conn.ladder()))
            .collect();
        for c in self.finished.queue.iter() {
            if let (State::TimeWait, Some(remote)) = (c.status.state, c.status.peer) {
                let quad = Quad {
                    local: c.status.local,
                    remote,
                };
                if self.time_waits.contains(&quad) && !v.iter().any(|(q, _)| *q == quad) {
                    v.push((quad, crate::tcp::ladder::render(&c.trace, &c.view)));
                }
            }
        }
        v.sort_by_key(|(q, _)| (q.local, q.remote));
        v
    }

    fn entries(&self) -> impl Iterator<Item = &Entry> {
        self.slots.iter().filter_map(|s| s.entry.as_deref())
    }

    /// One row per listener and address (LISTEN), then one per connection, ordered by local
    /// then peer address, as `ss -tan` lists them.
    pub fn snapshot(&self, now: Instant) -> Vec<ConnStatus> {
        let mut rows = self.listener_rows();
        let mut conns: Vec<ConnStatus> = self
            .entries()
            .map(|e| status_row(&e.conn, &e.app, now))
            .chain(self.time_waits.iter().map(|r| self.time_wait_row(r)))
            .collect();
        conns.sort_by_key(|r| (r.local, r.peer));
        rows.extend(conns);
        rows
    }

    /// The next rows of a paged `synack status`: the listeners first, then at most `max`
    /// connections from where `cursor` stopped, in table order (as `ss` lists a netlink dump
    /// in hash order). O(rows) per page, so that a table of a million connections is listed
    /// a page per turn of the loop without stalling the data path; like a netlink dump, a
    /// connection opened or closed between two pages may be listed or not.
    pub fn snapshot_page(
        &self,
        now: Instant,
        cursor: &mut StatusCursor,
        max: usize,
    ) -> Vec<ConnStatus> {
        let mut rows = Vec::new();
        if !cursor.listeners_done {
            cursor.listeners_done = true;
            rows = self.listener_rows();
        }
        let mut taken = 0;
        while taken < max {
            let Some(slot) = self.slots.get(cursor.next_slot) else {
                break;
            };
            cursor.next_slot += 1;
            if let Some(e) = slot.entry.as_deref() {
                rows.push(status_row(&e.conn, &e.app, now));
                taken += 1;
            }
        }
        // Then the TIME-WAIT records.
        if cursor.next_slot >= self.slots.len() {
            let left = max - taken;
            let mut listed = 0;
            for (next, record) in self.time_waits.iter_from(cursor.next_tw).take(left) {
                rows.push(self.time_wait_row(record));
                cursor.next_tw = next;
                listed += 1;
            }
            if listed < left || self.time_waits.iter_from(cursor.next_tw).next().is_none() {
                cursor.done = true;
            }
        }
        rows
    }

    /// A row per listening address and port (none once shutting down), sorted.
    fn listener_rows(&self) -> Vec<ConnStatus> {
        let mut rows = Vec::new();
        if self.accepting {
            for listener in self.listeners.iter().filter(|l| l.open) {
                let port = &listener.port;
                let service = match listener.target {
                    super::ListenTarget::Service(kind) => kind.name(),
                    super::ListenTarget::Socket(_) => "socket",
                };
                for addr in self
                    .addrs
                    .iter()
                    .filter(|a| listener.takes(SocketAddr::new(**a, *port)))
                {
                    rows.push(ConnStatus::bare(
                        State::Listen,
                        SocketAddr::new(*addr, *port),
                        None,
                        service,
                    ));
                }
            }
        }
        rows.sort_by_key(|r| r.local);
        rows
    }
}

/// How `/connections.json` is written from the open rows and the recently closed ones.
pub type StatusJson = fn(&[ConnStatus], &[ConnStatus]) -> String;

/// Where a paged `synack status` has got to ([`Endpoint::snapshot_page`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StatusCursor {
    listeners_done: bool,
    next_slot: usize,
    /// The next slot of the TIME-WAIT records, once the connections are listed.
    next_tw: usize,
    done: bool,
}

impl StatusCursor {
    /// Every row has been given.
    pub fn is_done(&self) -> bool {
        self.done
    }
}

#[cfg(test)]
#[path = "observe_tests.rs"]
mod tests;

impl Endpoint {
    /// How `/connections.json` is encoded: the driver passes `synack status --json`'s
    /// encoder, so both give the same data (the core does not depend on a JSON crate).
    /// Without one, `/connections.json` is 404.
    pub fn set_status_json(&mut self, encode: StatusJson) {
        self.status_json = Some(encode);
    }

    /// Closed connections still listed on `/connections`, oldest first.
    /// A connection in TIME-WAIT as a record is listed as open (`snapshot`), not here.
    pub fn recently_closed(&self) -> impl DoubleEndedIterator<Item = &ConnStatus> {
        self.finished
            .queue
            .iter()
            .map(|c| &c.status)
            .filter(|s| !(s.state == State::TimeWait && self.still_in_time_wait(s)))
    }

    /// Whether the connection of a recently closed row is a TIME-WAIT record now.
    fn still_in_time_wait(&self, row: &ConnStatus) -> bool {
        row.peer.is_some_and(|remote| {
            self.time_waits.contains(&Quad {
                local: row.local,
                remote,
            })
        })
    }

    /// A page about every connection, for the http service (`/metrics`, `/connections`…);
    /// `None` when there is no such page (an unknown connection).
    pub fn render_page(&self, now: Instant, page: Page) -> Option<(ContentType, String)> {
        match page {
            Page::Metrics => Some((ContentType::Prometheus, self.metrics())),
            Page::ConnectionsJson => {
                let encode = self.status_json?;
                // As /connections lists them: the open ones, then the recently closed, most
                // recent first, with the state they ended in.
                let closed: Vec<ConnStatus> = self.recently_closed().rev().cloned().collect();
                Some((ContentType::Json, encode(&self.snapshot(now), &closed)))
            }
            Page::Connections => Some((ContentType::Html, self.connections_page(now))),
            Page::Connection(quad) => self
                .connection_page(now, &quad)
                .map(|page| (ContentType::Html, page)),
        }
    }

    /// The sequence diagram of a connection, open or among the recently closed, as a
    /// standalone SVG document (`synack trace --svg`).
    pub fn ladder_svg(&self, quad: &Quad) -> Option<String> {
        let (trace, view) = match self.known(quad)? {
            Known::Open(e) => (e.conn.trace(), e.conn.ladder_view()),
            Known::Closed(c) => (&c.trace, c.view),
        };
        Some(observe::svg::ladder_document(trace, &view))
    }

    /// The connection with this 4-tuple: open, or else the latest recently closed one.
    fn known(&self, quad: &Quad) -> Option<Known<'_>> {
        match self.find(quad) {
            Some(e) => Some(Known::Open(e)),
            None => self.finished.find(quad).map(Known::Closed),
        }
    }

    /// `/metrics`: the counters and the gauges of what the endpoint holds now.
    pub fn metrics(&self) -> String {
        let mut by_state: Vec<(State, u64)> = State::ALL.iter().map(|&s| (s, 0)).collect();
        for state in self.states() {
            if let Some(n) = by_state.iter_mut().find(|(s, _)| *s == state) {
                n.1 += 1;
            }
        }
        let listeners = if self.accepting {
            self.listeners
                .iter()
                .map(|l| {
                    self.addrs
                        .iter()
                        .filter(|a| l.takes(SocketAddr::new(**a, l.port)))
                        .count()
                })
                .sum()
        } else {
            0
        };
        let gauges = metrics::Gauges {
            connections: by_state,
            listeners: listeners as u64,
            buffer_memory_bytes: self.mem_used as u64,
            buffer_memory_limit_bytes: self.limits.max_buffer_memory as u64,
            recently_closed: self.recently_closed().count() as u64,
        };
        let mut counters = self.counters.entries();
        counters.extend_from_slice(&self.link_counters);
        metrics::render(&counters, super::Counters::help, &gauges)
    }

    fn connections_page(&self, now: Instant) -> String {
        let mut out = String::new();
        html::start(&mut out, "synack: every connection", Some(2));
        let _ = writeln!(
            out,
            "<p>What <code>synack status</code> shows, refreshed every two seconds; the last \
             {RECENTLY_CLOSED} closed connections stay listed below. Each connection links to \
             its sequence diagram. As JSON: <a href=\"/connections.json\">/connections.json</a>.\
             </p>"
        );
        out.push_str("<h2>Listeners and open connections</h2>\n");
        let mut rows = self.snapshot(now);
        if rows.len() > MAX_LISTED {
            // A page a browser can show: the rest is in /connections.json.
            let _ = writeln!(
                out,
                "<p>The first {MAX_LISTED} of {} rows; all of them are in \
                 <a href=\"/connections.json\">/connections.json</a>.</p>",
                rows.len()
            );
            rows.truncate(MAX_LISTED);
        }
        status_table(&mut out, &rows, "open");
        out.push_str("<h2>Recently closed</h2>\n");
        let closed: Vec<ConnStatus> = self
            .finished
            .queue
            .iter()
            .rev()
            .map(|c| c.status.clone())
            .collect();
        status_table(&mut out, &closed, "closed");
        html::end(&mut out);
        out
    }

    fn connection_page(&self, now: Instant, quad: &Quad) -> Option<String> {
        let (status, trace, view, samples, open) = match self.known(quad)? {
            Known::Open(e) => (
                status_row(&e.conn, &e.app, now),
                e.conn.trace(),
                e.conn.ladder_view(),
                e.conn.samples(),
                true,
            ),
            // A TIME-WAIT record: its trace is among the recently closed, its row its own.
            Known::Closed(c) if self.still_in_time_wait(&c.status) => {
                let row = self
                    .time_waits
                    .find(quad)
                    .and_then(|id| self.time_waits.get(id))
                    .map_or_else(|| c.status.clone(), |r| self.time_wait_row(r));
                (row, &c.trace, c.view, &c.samples, true)
            }
            Known::Closed(c) => (c.status.clone(), &c.trace, c.view, &c.samples, false),
        };
        let mut out = String::new();
        let title = format!("Connection {} \u{2194} {}", quad.remote, quad.local);
        html::start(&mut out, &title, None);
        let _ = writeln!(
            out,
            "<p>{}</p>",
            if open {
                "Open: reload to see it grow."
            } else {
                "Closed: this is how it ended."
            }
        );
        status_table(&mut out, std::slice::from_ref(&status), "this");
        html::graphs(&mut out, &samples.read());
        out.push_str("<h2>Sequence diagram</h2>\n");
        html::diagram(&mut out, trace, &view);
        html::end(&mut out);
        Some(out)
    }
}

/// A `synack status` table in HTML; each connection's peer links to its page.
fn status_table(out: &mut String, rows: &[ConnStatus], class: &str) {
    let ms = |d: Option<Duration>| {
        d.map_or(String::new(), |d| {
            format!("{:.1}ms", d.as_micros() as f64 / 1000.0)
        })
    };
    let _ = writeln!(
        out,
        "<table class=\"{class}\"><tr><th>State</th><th>Recv-Q</th><th>Send-Q</th>\
         <th>Local Address:Port</th><th>Peer Address:Port</th><th>RTT</th><th>RTO</th>\
         <th>cwnd</th><th>Retrans</th><th>Age</th><th>App</th></tr>"
    );
    for r in rows {
        let peer = match r.peer {
            Some(p) => {
                let path = observe::connection_path(&Quad {
                    local: r.local,
                    remote: p,
                });
                format!("<a href=\"{path}\">{}</a>", observe::escape(&p.to_string()))
            }
            None => "*:*".to_string(),
        };
        let _ = writeln!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{peer}</td><td>{}</td>\
             <td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            r.state,
            r.recv_q,
            r.send_q,
            observe::escape(&r.local.to_string()),
            ms(r.rtt),
            ms(r.rto),
            r.cwnd.map_or(String::new(), |c| c.to_string()),
            if r.peer.is_some() {
                r.retransmissions.to_string()
            } else {
                String::new()
            },
            r.age
                .map_or(String::new(), |a| format!("{:.1}s", a.as_secs_f64())),
            r.app,
        );
    }
    out.push_str("</table>\n");
}
