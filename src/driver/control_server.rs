//! The daemon's side of the control socket: a Unix stream listener in the mio loop, one
//! [`Request`] per client, answered from the [`Endpoint`] (see `control.rs` for the protocol).
//!
//! The socket file is created mode 0600 (its directory too, if missing: see `socket_dir.rs`); a
//! stale file from a daemon that died is removed at startup, and ours is removed on exit.

use super::control::{
    MAX_REQUEST_LINE, Request, Response, STATUS_PAGE, StatusRow, client_responses, decode_request,
    encode,
};
use super::socket_dir::make_socket_dir;
use crate::config::plain;
use crate::endpoint::{ClientId, Endpoint, StatusCursor};
use crate::time::Instant;
use mio::net::{UnixListener, UnixStream};
use mio::{Interest, Registry, Token};
use std::collections::HashMap;
use std::io::{self, ErrorKind, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use tracing::{debug, warn};

/// The most control clients served at once; more are closed at once.
const MAX_CLIENTS: usize = 64;
/// How much unsent output a client may have before it is dropped (a `connect` of a fast
/// sender to a stalled reader).
const MAX_PENDING_OUTPUT: usize = 16 * 1024 * 1024;
/// A `status` client gets its next page once its unsent output is below this: the daemon
/// never holds more than about a page for it, however large the table.
const STATUS_LOW_WATER: usize = 256 * 1024;

/// What a client is waiting for.
enum Mode {
    /// Reading its request line.
    Request,
    /// Streaming a `connect`.
    Connect { id: ClientId, connected: bool },
    /// `trace --follow`: each connection's ladder as it closes (with `svg`, its picture too).
    Follow { svg: bool },
    /// `status`: the rows a page at a time, as the client reads them.
    Status {
        cursor: StatusCursor,
        info: bool,
        rows: u64,
    },
    /// Everything is said: close once the output is flushed.
    Done,
}

struct Client {
    stream: UnixStream,
    input: Vec<u8>,
    output: Vec<u8>,
    mode: Mode,
}

pub struct ControlServer {
    listener: UnixListener,
    path: PathBuf,
    /// Tokens from `first_token` up; the listener has `first_token` itself.
    first_token: usize,
    next_token: usize,
    clients: HashMap<Token, Client>,
}

impl ControlServer {
    /// Bind the socket at `path`, replacing a stale one. The error says why, in words.
    pub fn bind(path: &Path) -> Result<ControlServer, String> {
        let fail = |what: &str, e: io::Error| format!("{what}: {}", plain(&e));
        make_socket_dir(path)?;
        if path.exists() {
            if std::os::unix::net::UnixStream::connect(path).is_ok() {
                return Err("another synack is running on it".to_owned());
            }
            debug!(path = %path.display(), "removing a stale control socket");
            std::fs::remove_file(path).map_err(|e| fail("cannot remove the stale socket", e))?;
        }
        let listener = UnixListener::bind(path).map_err(|e| fail("cannot create it", e))?;
        let server = ControlServer {
            listener,
            path: path.to_owned(),
            first_token: 0,
            next_token: 0,
            clients: HashMap::new(),
        };
        // On failure `server` is dropped, which removes the file again.
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
            .map_err(|e| fail("cannot restrict it to its owner", e))?;
        Ok(server)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Register the listener with `token`; clients get the tokens after it.
    pub fn register(&mut self, registry: &Registry, token: Token) -> io::Result<()> {
        self.first_token = token.0;
        self.next_token = token.0 + 1;
        registry.register(&mut self.listener, token, Interest::READABLE)
    }

    pub fn owns(&self, token: Token) -> bool {
        token.0 >= self.first_token && self.first_token != 0
    }

    /// Whether some client follows the traces (the endpoint must collect ladders).
    pub fn has_followers(&self) -> bool {
        self.clients
            .values()
            .any(|c| matches!(c.mode, Mode::Follow { .. }))
    }

    /// Some `status` client has read its last page and waits for the next: the loop turns
    /// again at once (one page per client per turn, the data path served in between).
    pub fn wants_turn(&self) -> bool {
        self.clients
            .values()
            .any(|c| matches!(c.mode, Mode::Status { .. }) && c.output.len() < STATUS_LOW_WATER)
    }

    /// A readiness event for the listener or a client.
    pub fn on_event(&mut self, token: Token, registry: &Registry, ep: &mut Endpoint, now: Instant) {
        if token.0 == self.first_token {
            self.accept(registry);
            return;
        }
        let Some(client) = self.clients.get_mut(&token) else {
            return;
        };
        let open = client.read(ep, now) && client.flush();
        if !open {
            self.drop_client(token, registry, ep);
        }
    }

    fn accept(&mut self, registry: &Registry) {
        loop {
            match self.listener.accept() {
                Ok((mut stream, _)) => {
                    if self.clients.len() >= MAX_CLIENTS {
                        warn!("too many control clients; closing a new one");
                        continue;
                    }
                    let token = Token(self.next_token);
                    self.next_token += 1;
                    let interest = Interest::READABLE | Interest::WRITABLE;
                    if let Err(e) = registry.register(&mut stream, token, interest) {
                        warn!(error = %e, "cannot watch a control client");
                        continue;
                    }
                    self.clients.insert(
                        token,
                        Client {
                            stream,
                            input: Vec::new(),
                            output: Vec::new(),
                            mode: Mode::Request,
                        },
                    );
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => {
                    warn!(error = %e, "control socket accept failed");
                    return;
                }
            }
        }
    }

    /// After the endpoint's poll: stream client data and finished ladders, flush, close what is
    /// done.
    pub fn after_poll(
        &mut self,
        registry: &Registry,
        ep: &mut Endpoint,
        ladders: &[(crate::wire::Quad, String)],
        now: Instant,
    ) {
        let mut closed = Vec::new();
        for (token, client) in &mut self.clients {
            match &mut client.mode {
                Mode::Connect { id, connected } => {
                    if let Some(events) = ep.poll_client(*id) {
                        for r in client_responses(&events, connected) {
                            if matches!(r, Response::Closed { .. }) {
                                client.mode = Mode::Done;
                            }
                            client.send(&r);
                        }
                    } else {
                        client.send(&Response::Error {
                            message: "the connection is gone".into(),
                        });
                        client.mode = Mode::Done;
                    }
                }
                Mode::Follow { svg } => {
                    let svg = *svg;
                    for (quad, text) in ladders {
                        // Drawn from the recently closed connections the endpoint keeps.
                        let svg = svg.then(|| ep.ladder_svg(quad)).flatten();
                        client.send(&Response::Ladder {
                            local: quad.local,
                            peer: quad.remote,
                            finished: true,
                            text: text.clone(),
                            svg,
                        });
                    }
                }
                Mode::Status { .. } => client.status_page(ep, now),
                Mode::Request | Mode::Done => {}
            }
            let done = matches!(client.mode, Mode::Done) && client.output.is_empty();
            if !client.flush() || done || client.output.len() > MAX_PENDING_OUTPUT {
                closed.push(*token);
            }
        }
        for token in closed {
            self.drop_client(token, registry, ep);
        }
    }

    fn drop_client(&mut self, token: Token, registry: &Registry, ep: &mut Endpoint) {
        if let Some(mut client) = self.clients.remove(&token) {
            if let Mode::Connect { id, .. } = client.mode {
                ep.forget_client(id);
            }
            let _ = registry.deregister(&mut client.stream);
        }
    }
}

impl Drop for ControlServer {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

impl Client {
    fn send(&mut self, r: &Response) {
        self.output.extend_from_slice(encode(r).as_bytes());
    }

    /// Read what arrived; handle the request once its line is complete. False when the client
    /// has gone away.
    fn read(&mut self, ep: &mut Endpoint, now: Instant) -> bool {
        let mut buf = [0u8; 4096];
        loop {
            match self.stream.read(&mut buf) {
                Ok(0) => return false,
                Ok(n) => {
                    if matches!(self.mode, Mode::Request) {
                        self.input
                            .extend_from_slice(buf.get(..n).unwrap_or_default());
                    }
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => return false,
            }
        }
        if !matches!(self.mode, Mode::Request) {
            return true;
        }
        let Some(end) = self.input.iter().position(|&b| b == b'\n') else {
            if self.input.len() > MAX_REQUEST_LINE {
                self.send(&Response::Error {
                    message: "request too long".into(),
                });
                self.mode = Mode::Done;
            }
            return true;
        };
        let line = String::from_utf8_lossy(self.input.get(..end).unwrap_or_default()).into_owned();
        self.input = Vec::new();
        match decode_request(&line) {
            Ok(req) => self.handle(req, ep, now),
            Err(message) => {
                self.send(&Response::Error { message });
                self.mode = Mode::Done;
            }
        }
        true
    }

    fn handle(&mut self, req: Request, ep: &mut Endpoint, now: Instant) {
        match &req {
            Request::Connect {
                addr,
                data,
                fastopen,
            } => {
                debug!(%addr, bytes = data.len(), fastopen, "control request: connect");
            }
            other => debug!(request = ?other, "control request"),
        }
        self.mode = Mode::Done;
        match req {
            Request::Status { info } => {
                self.mode = Mode::Status {
                    cursor: StatusCursor::default(),
                    info,
                    rows: 0,
                };
                self.status_page(ep, now);
            }
            Request::Stats => {
                let counters = ep
                    .counters()
                    .into_iter()
                    .map(|(k, v)| (k.to_string(), v))
                    .collect();
                self.send(&Response::Stats { counters });
            }
            Request::Connect {
                addr,
                data,
                fastopen,
            } => match ep.connect_with(now, addr, data, fastopen) {
                Ok(id) => {
                    if let Some(local) = ep.client_local(id) {
                        let gives_up_after_ms =
                            u64::try_from(ep.syn_give_up_after().as_millis()).unwrap_or(u64::MAX);
                        self.send(&Response::Connecting {
                            local,
                            gives_up_after_ms,
                        });
                    }
                    self.mode = Mode::Connect {
                        id,
                        connected: false,
                    };
                }
                Err(e) => self.send(&Response::Error {
                    message: e.to_string(),
                }),
            },
            Request::Trace { follow, svg } => {
                for (quad, text) in ep.ladders() {
                    self.send(&Response::Ladder {
                        local: quad.local,
                        peer: quad.remote,
                        finished: false,
                        text,
                        svg: svg.then(|| ep.ladder_svg(&quad)).flatten(),
                    });
                }
                if follow {
                    self.mode = Mode::Follow { svg };
                }
            }
        }
    }

    /// The next page of a `status`, if the client has read the last one; the end once
    /// every row has been sent.
    fn status_page(&mut self, ep: &Endpoint, now: Instant) {
        let Mode::Status {
            mut cursor,
            info,
            mut rows,
        } = self.mode
        else {
            return;
        };
        if self.output.len() >= STATUS_LOW_WATER {
            return;
        }
        let page: Vec<StatusRow> = ep
            .snapshot_page(now, &mut cursor, STATUS_PAGE)
            .iter()
            .map(|r| {
                let mut row = StatusRow::from(r);
                if !info {
                    row.info = None;
                }
                row
            })
            .collect();
        if !page.is_empty() {
            rows += page.len() as u64;
            self.send(&Response::Status { rows: page });
        }
        self.mode = if cursor.is_done() {
            self.send(&Response::StatusEnd { rows });
            Mode::Done
        } else {
            Mode::Status { cursor, info, rows }
        };
    }

    /// Write what is pending; false when the client has gone away.
    fn flush(&mut self) -> bool {
        while !self.output.is_empty() {
            match self.stream.write(&self.output) {
                Ok(0) => return false,
                Ok(n) => {
                    self.output.drain(..n.min(self.output.len()));
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return true,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => return false,
            }
        }
        true
    }
}
