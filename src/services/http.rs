//! A small HTTP/1.1 server (RFC 9110, RFC 9112) whose one page describes the visitor's own
//! TCP connection, with two endpoints for measuring and verifying bulk transfers.
//!
//! `GET /` answers 200 with a plain-text page built from [`Socket::info`]; `GET /handshake` with
//! the sequence diagram of the connection so far ([`Socket::ladder`]); `HEAD` sends the
//! same headers without the body. `GET /bytes/<N>` sends N bytes of [`pattern_byte`];
//! `PUT` or `POST` to any path reads the body and answers with its length and SHA-256, so
//! curl alone can measure and verify both directions; a body announced with `Expect:
//! 100-continue` is asked for at once with `100 Continue`. `/favicon.ico` gets 204 (browsers
//! ask for it on every visit), `OPTIONS` 204 with `Allow`, other methods 501 with `Allow`,
//! and other paths 404. Requests are read from a bounded buffer and answered one at a
//! time, in order, so pipelined requests work and a client that stops reading stops us
//! reading too. Keep-alive is the default for HTTP/1.1; `Connection: close`
//! (or HTTP/1.0 without keep-alive) makes us close after the response, which is the active
//! close of RFC 9293 §3.6. Anything malformed gets 400 and a close.

use super::{COPY_BUF, close_once, drain};
use crate::observe::{self, ContentType, Page};
use crate::tcp::{self, ConnInfo, Socket, State};
use sha2::{Digest, Sha256};
use std::io::Write;

/// The byte at offset `i` of every `GET /bytes/<N>` body: byte `i mod 8` of the big-endian
/// 64-bit number `i / 8`. So the body is the counter 0, 1, 2, … as 8-byte words, and a byte
/// out of place is detectable wherever it lands. In Python:
/// `b"".join(k.to_bytes(8, "big") for k in range(n // 8 + 1))[:n]`.
pub fn pattern_byte(i: u64) -> u8 {
    (i / 8)
        .to_be_bytes()
        .get((i % 8) as usize)
        .copied()
        .unwrap_or(0)
}

/// Fill `out` with the pattern from offset `start`, a 64-bit word at a time.
fn fill_pattern(start: u64, out: &mut [u8]) {
    // The unaligned head, byte by byte.
    let head = usize::try_from((8 - start % 8) % 8)
        .unwrap_or(0)
        .min(out.len());
    let (first, rest) = out.split_at_mut(head);
    for (b, i) in first.iter_mut().zip(start..) {
        *b = pattern_byte(i);
    }
    let mut i = start + head as u64;
    let mut words = rest.chunks_exact_mut(8);
    for word in &mut words {
        word.copy_from_slice(&(i / 8).to_be_bytes());
        i += 8;
    }
    for (b, i) in words.into_remainder().iter_mut().zip(i..) {
        *b = pattern_byte(i);
    }
}

/// The largest `/bytes/<N>` we serve (1 TiB): bounded, yet far beyond any test.
pub const MAX_BYTES: u64 = 1 << 40;

/// The largest request head (request line and header fields) we accept.
pub const MAX_HEAD: usize = 8 * 1024;
/// What the response and body buffers may keep between two responses of one busy exchange;
/// past it they are given back (a page, a diagram, the connection list can be large).
const OUT_CAPACITY: usize = 4096;
const BODY_CAPACITY: usize = 3072;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Method {
    Get,
    Head,
    Put,
    Post,
    Options,
}

/// The methods we implement, for `Allow` (RFC 9110 §10.2.1).
const ALLOW: &str = "GET, HEAD, PUT, POST, OPTIONS";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Route {
    /// `/`: the page about this connection.
    Connection,
    /// `/handshake`: the sequence diagram of this connection so far (text, or an HTML page
    /// for a client that accepts `text/html`).
    Handshake,
    /// `/handshake.svg`: the diagram alone, as a standalone SVG document.
    HandshakeSvg,
    /// A page drawn from the endpoint's view of every connection (`/metrics`,
    /// `/connections`…): the endpoint renders it and hands it to [`Http::answer_page`].
    Page(Page),
    /// `/bytes/<N>`: N bytes of the pattern.
    Bytes(u64),
    /// The target of a PUT or POST: the body is counted and hashed.
    Upload,
    /// `/favicon.ico`: no icon, and no error either (204).
    Favicon,
    /// Any target of OPTIONS: what we allow (204 with `Allow`).
    Options,
    NotFound,
}

/// What we keep of a parsed request head.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Request {
    method: Method,
    route: Route,
    /// HTTP/1.0, which needs `Connection: keep-alive` echoed to stay open.
    http10: bool,
    keep_alive: bool,
    /// The client accepts `text/html` (RFC 9110 §12.5.1): browsers get pages, curl text.
    html: bool,
    /// Body length from Content-Length (RFC 9112 §6.2); 0 when absent.
    content_length: u64,
    /// `Expect: 100-continue` (RFC 9110 §10.1.1): the client waits for `100 Continue`
    /// before it sends the body (curl does so for a second, for bodies over 1 MB).
    expect_continue: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Status {
    Continue,
    Ok,
    NoContent,
    BadRequest,
    NotFound,
    HeaderTooLarge,
    NotImplemented,
}

impl Status {
    const fn line(self) -> &'static str {
        match self {
            Status::Continue => "100 Continue",
            Status::Ok => "200 OK",
            Status::NoContent => "204 No Content",
            Status::BadRequest => "400 Bad Request",
            Status::NotFound => "404 Not Found",
            Status::HeaderTooLarge => "431 Request Header Fields Too Large",
            Status::NotImplemented => "501 Not Implemented",
        }
    }
}

/// Why a request head was refused, and the one sentence we tell the client.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Reject {
    status: Status,
    why: &'static str,
}

const fn bad(why: &'static str) -> Reject {
    Reject {
        status: Status::BadRequest,
        why,
    }
}

/// RFC 9110 §9.1: a method we do not implement "SHOULD" get 501 (with `Allow`, §10.2.1).
const NOT_IMPLEMENTED_METHOD: Reject = Reject {
    status: Status::NotImplemented,
    why: "That method is not implemented here; GET, HEAD, PUT, POST and OPTIONS are.",
};

enum Phase {
    /// Waiting for (the rest of) a request head.
    Head,
    /// Reading `remaining` more bytes of `req`'s body; the response follows the body.
    Body { req: Request, remaining: u64 },
    /// Sending the body of `/bytes/<N>`: pattern bytes from `offset` up to `end`.
    Stream { offset: u64, end: u64 },
    /// Waiting for the endpoint to render `req`'s page ([`Http::pending_page`]).
    Page { req: Request, page: Page },
}

/// Whether the poll loop can go on.
enum Step {
    Progress,
    Wait,
}

/// The http service's per-connection state: nothing on the heap while the connection is idle
/// (between requests) and nothing once it is closing (our FIN queued, TIME-WAIT), so an
/// idle keep-alive connection costs what an idle echo connection costs (README, "Buffers and
/// memory"). The buffers of an exchange are taken when its first byte arrives, grow with
/// what it needs (at most [`MAX_HEAD`] for the head) and are given back as soon as the
/// response is queued and nothing more is waiting.
pub struct Http {
    state: HttpState,
}

enum HttpState {
    /// Between requests: no request bytes held, no response pending.
    Idle,
    /// A request or response in progress.
    Busy(Box<Session>),
    /// We queued our FIN: whatever still arrives is read and dropped.
    Closed,
}

impl Default for Http {
    fn default() -> Self {
        Http::new()
    }
}

impl Http {
    pub fn new() -> Self {
        Http {
            state: HttpState::Idle,
        }
    }

    pub fn is_closed(&self) -> bool {
        matches!(self.state, HttpState::Closed)
    }

    pub fn poll(&mut self, sock: &mut dyn Socket) {
        if let HttpState::Idle = self.state {
            if sock.recv_queue() == 0 && !sock.peer_closed() {
                return;
            }
            self.state = HttpState::Busy(Box::new(Session::new()));
        }
        let HttpState::Busy(session) = &mut self.state else {
            // Closed: whatever still arrives has no one to answer it.
            drain(sock);
            return;
        };
        session.poll(sock);
        self.settle();
    }

    /// Give back what the exchange held once it is over (the connection idle or closing).
    fn settle(&mut self) {
        if let HttpState::Busy(session) = &self.state {
            if session.closed {
                self.state = HttpState::Closed;
            } else if session.is_idle() {
                self.state = HttpState::Idle;
            }
        }
    }

    /// The heap this connection's service holds now: what it is charged against
    /// `--max-buffer-memory`, like the connection's queues.
    pub fn memory(&self) -> usize {
        match &self.state {
            HttpState::Busy(session) => session.memory(),
            HttpState::Idle | HttpState::Closed => 0,
        }
    }

    /// The exchange in progress, if any.
    #[cfg(test)]
    fn session(&self) -> Option<&Session> {
        match &self.state {
            HttpState::Busy(session) => Some(session),
            HttpState::Idle | HttpState::Closed => None,
        }
    }

    /// The endpoint-wide page this connection is waiting for, if any: the endpoint renders it
    /// after running the service and passes it to [`Http::answer_page`].
    pub fn pending_page(&self) -> Option<Page> {
        match &self.state {
            HttpState::Busy(session) => session.pending_page(),
            HttpState::Idle | HttpState::Closed => None,
        }
    }

    /// The pending page's body and type, or `None` when there is no such page (404). Queues
    /// the response; the next [`Http::poll`] sends it.
    pub fn answer_page(&mut self, body: Option<(ContentType, &[u8])>) {
        if let HttpState::Busy(session) = &mut self.state {
            session.answer_page(body);
        }
    }
}

/// One exchange in progress (a request head, its body, its response): the state an idle
/// connection does not keep.
struct Session {
    /// Received bytes not yet consumed: the next request head, perhaps more. Never longer
    /// than [`MAX_HEAD`].
    inbuf: Vec<u8>,
    /// How much of `inbuf` has been searched for the end of the head without finding it.
    /// Each byte that arrives is searched once: rescanning from the start would make a head
    /// sent a byte per segment cost O(n²) (found by the `http` fuzz target, docs/FUZZING.md).
    head_scanned: usize,
    /// The response being sent; `out[out_sent..]` is what `send` has not yet taken.
    out: Vec<u8>,
    out_sent: usize,
    /// Where a body is composed before its headers, which carry its length; once they are
    /// queued in `out`, sent from here (`scratch[body_sent..]`, while `body_queued`) with no
    /// copy.
    scratch: Vec<u8>,
    body_queued: bool,
    body_sent: usize,
    /// The request body so far: its length and SHA-256 (for PUT and POST).
    body_len: u64,
    body_hash: Sha256,
    phase: Phase,
    /// Close as soon as `out` is fully queued.
    close_after: bool,
    closed: bool,
}

impl Session {
    fn new() -> Self {
        Session {
            inbuf: Vec::new(),
            head_scanned: 0,
            out: Vec::new(),
            out_sent: 0,
            scratch: Vec::new(),
            body_queued: false,
            body_sent: 0,
            body_len: 0,
            body_hash: Sha256::new(),
            phase: Phase::Head,
            close_after: false,
            closed: false,
        }
    }

    /// Nothing received and not yet answered, nothing left to send: the exchange is over.
    fn is_idle(&self) -> bool {
        matches!(self.phase, Phase::Head)
            && self.inbuf.is_empty()
            && self.out.is_empty()
            && !self.body_queued
            && !self.close_after
    }

    /// The heap this exchange holds: its own state and its buffers' capacity.
    fn memory(&self) -> usize {
        std::mem::size_of::<Session>()
            .saturating_add(self.inbuf.capacity())
            .saturating_add(self.out.capacity())
            .saturating_add(self.scratch.capacity())
    }

    fn poll(&mut self, sock: &mut dyn Socket) {
        loop {
            // One response at a time: until it is queued we read nothing more, so a client
            // that pipelines without reading meets a full receive window.
            if !self.flush(sock) {
                return;
            }
            if self.close_after && !matches!(self.phase, Phase::Stream { .. }) {
                // RFC 9293 §3.10.4: our FIN follows the response already queued (and, for
                // /bytes/<N>, its streamed body).
                close_once(sock, &mut self.closed);
            }
            if self.closed {
                // Whatever still arrives has no one to answer it.
                drain(sock);
                return;
            }
            let step = match self.phase {
                Phase::Head => self.read_head(sock),
                Phase::Body { .. } => self.read_body(sock),
                Phase::Stream { .. } => self.stream(sock),
                Phase::Page { .. } => Step::Wait,
            };
            if let Step::Wait = step {
                return;
            }
        }
    }

    /// Queue as much of the pending response as fits; true when none is left.
    fn flush(&mut self, sock: &mut dyn Socket) -> bool {
        if let Some(rest) = self.out.get(self.out_sent..).filter(|r| !r.is_empty()) {
            self.out_sent += sock.send(rest);
        }
        if self.out_sent < self.out.len() {
            return false;
        }
        if self.body_queued {
            if let Some(rest) = self.scratch.get(self.body_sent..).filter(|r| !r.is_empty()) {
                self.body_sent += sock.send(rest);
            }
            if self.body_sent < self.scratch.len() {
                return false;
            }
            self.body_queued = false;
            self.body_sent = 0;
            self.scratch.clear();
            if self.scratch.capacity() > 4 * BODY_CAPACITY {
                self.scratch.shrink_to(BODY_CAPACITY);
            }
        }
        self.out.clear();
        self.out_sent = 0;
        // A page (a diagram, the connection list) may have grown the buffer: give it back, so
        // an idle keep-alive connection holds only its usual few KiB.
        if self.out.capacity() > 4 * OUT_CAPACITY {
            self.out.shrink_to(OUT_CAPACITY);
        }
        true
    }

    fn pending_page(&self) -> Option<Page> {
        match self.phase {
            Phase::Page { page, .. } => Some(page),
            _ => None,
        }
    }

    fn answer_page(&mut self, body: Option<(ContentType, &[u8])>) {
        let Phase::Page { req, .. } = self.phase else {
            return;
        };
        self.phase = Phase::Head;
        self.scratch.clear();
        let (status, content_type) = match body {
            Some((content_type, body)) => {
                self.scratch.extend_from_slice(body);
                (Status::Ok, content_type)
            }
            None => {
                self.scratch.extend_from_slice(NOT_FOUND);
                (Status::NotFound, ContentType::Text)
            }
        };
        let connection = self.connection_header(&req);
        let length = self.scratch.len() as u64;
        self.write_response(
            status,
            content_type,
            connection,
            false,
            req.method == Method::Head,
            length,
        );
    }

    fn read_head(&mut self, sock: &mut dyn Socket) -> Step {
        self.fill(sock);
        // RFC 9112 §2.2: a server SHOULD ignore at least one empty line before the
        // request-line (some clients send an extra CRLF after a body).
        let blank = self
            .inbuf
            .iter()
            .take_while(|&&b| b == b'\r' || b == b'\n')
            .count();
        if blank > 0 {
            self.inbuf.drain(..blank);
            self.head_scanned = 0;
        }

        let Some(end) = head_end(&self.inbuf, self.head_scanned) else {
            self.head_scanned = self.inbuf.len();
            if self.inbuf.len() >= MAX_HEAD {
                // RFC 6585 §5.
                self.reject(
                    sock,
                    Reject {
                        status: Status::HeaderTooLarge,
                        why: "The request header is larger than 8 KiB.",
                    },
                );
                return Step::Progress;
            }
            if sock.peer_closed() {
                if self.inbuf.is_empty() {
                    // The client is done and every request has its response queued.
                    close_once(sock, &mut self.closed);
                } else {
                    self.reject(
                        sock,
                        bad("The connection ended in the middle of a request."),
                    );
                }
                return Step::Progress;
            }
            return Step::Wait;
        };

        let parsed = self.inbuf.get(..end).map_or(Err(bad("")), parse_head);
        self.inbuf.drain(..end.min(self.inbuf.len()));
        self.head_scanned = 0;
        match parsed {
            Ok(req) => {
                // Each request's body is counted and hashed from its first byte.
                self.body_len = 0;
                self.body_hash = Sha256::new();
                // RFC 9110 §10.1.1: a server that receives 100-continue "ought to" send an
                // immediate 100 (Continue) response when it means to read the content, and
                // need not when the content is already on its way. A 1xx response has no
                // Content-Length (§8.6).
                if req.expect_continue && req.content_length > 0 && self.inbuf.is_empty() {
                    let _ = write!(self.out, "HTTP/1.1 {}\r\n\r\n", Status::Continue.line());
                }
                self.phase = Phase::Body {
                    req,
                    remaining: req.content_length,
                };
            }
            Err(reject) => self.reject(sock, reject),
        }
        Step::Progress
    }

    /// Send as much of the `/bytes/<N>` body as the send buffer takes.
    fn stream(&mut self, sock: &mut dyn Socket) -> Step {
        let Phase::Stream { offset, end } = self.phase else {
            return Step::Progress;
        };
        if offset >= end {
            self.phase = Phase::Head;
            return Step::Progress;
        }
        let mut buf = [0u8; COPY_BUF];
        let want = usize::try_from(end - offset).unwrap_or(usize::MAX);
        let n = want.min(buf.len()).min(sock.send_capacity());
        if n == 0 {
            return Step::Wait;
        }
        fill_pattern(offset, buf.get_mut(..n).unwrap_or_default());
        let sent = sock.send(buf.get(..n).unwrap_or_default());
        self.phase = Phase::Stream {
            offset: offset + sent as u64,
            end,
        };
        if sent == 0 {
            Step::Wait
        } else {
            Step::Progress
        }
    }

    /// A piece of the request body arrived: count it and hash it.
    fn on_body(&mut self, chunk: &[u8]) {
        self.body_len += chunk.len() as u64;
        self.body_hash.update(chunk);
    }

    fn read_body(&mut self, sock: &mut dyn Socket) -> Step {
        let Phase::Body { req, remaining } = self.phase else {
            return Step::Progress;
        };
        if remaining == 0 {
            self.phase = Phase::Head;
            self.respond(sock, &req);
            return Step::Progress;
        }
        let want = usize::try_from(remaining).unwrap_or(usize::MAX);
        // Body bytes that came in with the head first, then straight from the socket.
        let got = if self.inbuf.is_empty() {
            let mut buf = [0u8; COPY_BUF];
            let n = buf
                .get_mut(..want.min(COPY_BUF))
                .map_or(0, |room| sock.recv(room));
            self.on_body(buf.get(..n).unwrap_or_default());
            n
        } else {
            let n = want.min(self.inbuf.len());
            let (len, hash) = (&mut self.body_len, &mut self.body_hash);
            let chunk = self.inbuf.get(..n).unwrap_or_default();
            *len += chunk.len() as u64;
            hash.update(chunk);
            self.inbuf.drain(..n);
            n
        };
        if got == 0 {
            if sock.peer_closed() {
                // The body was cut short: there is no request to answer.
                close_once(sock, &mut self.closed);
                return Step::Progress;
            }
            return Step::Wait;
        }
        self.phase = Phase::Body {
            req,
            remaining: remaining.saturating_sub(got as u64),
        };
        Step::Progress
    }

    /// Read from the socket into `inbuf`, up to [`MAX_HEAD`] buffered.
    fn fill(&mut self, sock: &mut dyn Socket) {
        let mut buf = [0u8; COPY_BUF];
        loop {
            let room = MAX_HEAD.saturating_sub(self.inbuf.len()).min(buf.len());
            if room == 0 {
                return;
            }
            let n = buf.get_mut(..room).map_or(0, |room| sock.recv(room));
            if n == 0 {
                return;
            }
            self.inbuf
                .extend_from_slice(buf.get(..n).unwrap_or_default());
        }
    }

    fn respond(&mut self, sock: &dyn Socket, req: &Request) {
        self.scratch.clear();
        let mut streamed = None;
        let mut content_type = ContentType::Text;
        let diagram = sock.diagram().filter(|_| req.html);
        let status = match req.route {
            Route::Connection => {
                write_connection_page(&mut self.scratch, &sock.info());
                if let Some((trace, view)) = diagram {
                    let text = String::from_utf8_lossy(&self.scratch).into_owned();
                    let page = observe::html::about_page(&text, trace, &view);
                    self.scratch.clear();
                    self.scratch.extend_from_slice(page.as_bytes());
                    content_type = ContentType::Html;
                }
                Status::Ok
            }
            Route::Handshake => {
                match diagram {
                    Some((trace, view)) => {
                        let page = observe::html::handshake_page(trace, &view);
                        self.scratch.extend_from_slice(page.as_bytes());
                        content_type = ContentType::Html;
                    }
                    None => self.scratch.extend_from_slice(sock.ladder().as_bytes()),
                }
                Status::Ok
            }
            Route::HandshakeSvg => match sock.diagram() {
                Some((trace, view)) => {
                    let svg = observe::svg::ladder_document(trace, &view);
                    self.scratch.extend_from_slice(svg.as_bytes());
                    content_type = ContentType::Svg;
                    Status::Ok
                }
                None => {
                    self.scratch.extend_from_slice(NOT_FOUND);
                    Status::NotFound
                }
            },
            Route::Page(page) => {
                // Drawn by the endpoint, which sees every connection: wait for it.
                self.phase = Phase::Page { req: *req, page };
                return;
            }
            Route::Bytes(n) => {
                streamed = Some(n);
                Status::Ok
            }
            Route::Upload => {
                let hash = std::mem::take(&mut self.body_hash).finalize();
                let _ = write!(self.scratch, "received {} bytes\nsha256 ", self.body_len);
                for b in hash.iter() {
                    let _ = write!(self.scratch, "{b:02x}");
                }
                self.scratch.push(b'\n');
                self.body_len = 0;
                Status::Ok
            }
            Route::Favicon | Route::Options => Status::NoContent,
            Route::NotFound => {
                self.scratch.extend_from_slice(NOT_FOUND);
                Status::NotFound
            }
        };
        let connection = self.connection_header(req);
        let head_only = req.method == Method::Head;
        let length = streamed.unwrap_or(self.scratch.len() as u64);
        let allow = req.route == Route::Options;
        self.write_response(status, content_type, connection, allow, head_only, length);
        if let (Some(end), false) = (streamed, head_only) {
            self.phase = Phase::Stream { offset: 0, end };
        }
    }

    /// The Connection header field of the response to `req`; arranges the close it announces.
    fn connection_header(&mut self, req: &Request) -> Option<&'static str> {
        if !req.keep_alive {
            self.close_after = true;
            Some("close")
        } else if req.http10 {
            Some("keep-alive")
        } else {
            None
        }
    }

    /// Answer a request we could not parse or will not serve, then close: after a malformed
    /// request we cannot tell where the next one would start (RFC 9112 §2.2, §6.3).
    fn reject(&mut self, sock: &dyn Socket, reject: Reject) {
        tracing::debug!(quad = %sock.info().quad, status = reject.status.line(), reason = reject.why, "http: request rejected");
        self.scratch.clear();
        self.scratch.extend_from_slice(reject.why.as_bytes());
        self.scratch.push(b'\n');
        self.close_after = true;
        let length = self.scratch.len() as u64;
        let allow = reject == NOT_IMPLEMENTED_METHOD;
        self.write_response(
            reject.status,
            ContentType::Text,
            Some("close"),
            allow,
            false,
            length,
        );
    }

    /// Queue status line and header fields, and (unless `head_only`) the body in `scratch`;
    /// `length` is the Content-Length (the scratch body's, or a streamed body's); `allow`
    /// adds the methods we implement (RFC 9110 §10.2.1).
    fn write_response(
        &mut self,
        status: Status,
        content_type: ContentType,
        connection: Option<&str>,
        allow: bool,
        head_only: bool,
        length: u64,
    ) {
        let out = &mut self.out;
        // Writing to a Vec cannot fail.
        let _ = write!(out, "HTTP/1.1 {}\r\nServer: synack\r\n", status.line());
        // RFC 9110 §8.6: no Content-Length in a 204 (No Content), which has no content.
        if status != Status::NoContent {
            let _ = write!(
                out,
                "Content-Type: {}\r\nContent-Length: {length}\r\n",
                content_type.header()
            );
        }
        if allow {
            let _ = write!(out, "Allow: {ALLOW}\r\n");
        }
        if let Some(value) = connection {
            let _ = write!(out, "Connection: {value}\r\n");
        }
        out.extend_from_slice(b"\r\n");
        // RFC 9110 §9.3.2: HEAD gets the same header fields as GET, and no content. The body
        // follows the head from `scratch` (`flush`).
        self.body_queued = !head_only && !self.scratch.is_empty();
        self.body_sent = 0;
    }
}

/// The body of a 404: what there is.
const NOT_FOUND: &[u8] = b"Not found. Try / (your TCP connection), /handshake, /handshake.svg, \
      /connections, /metrics, /bytes/<N>, or PUT or POST to any path.\n";

/// `<N>` of `/bytes/<N>`: decimal digits only, at most [`MAX_BYTES`].
fn parse_count(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() || digits.len() > 19 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let n: u64 = std::str::from_utf8(digits).ok()?.parse().ok()?;
    (n <= MAX_BYTES).then_some(n)
}

/// The length of the request head including its empty last line, if it is all there.
fn head_end(buf: &[u8], scanned: usize) -> Option<usize> {
    // RFC 9112 §2.2: a recipient MAY take a bare LF as a line terminator, so the head ends at
    // the first LF that follows another LF with at most a CR between them. The first
    // `scanned` bytes held no end; one that the new bytes complete starts at most two bytes
    // before them.
    let start = scanned.saturating_sub(2).min(buf.len());
    let mut prev_lf: Option<usize> = None;
    for (i, &b) in buf.iter().enumerate().skip(start) {
        if b == b'\n' {
            if let Some(p) = prev_lf
                && (i == p + 1 || (i == p + 2 && buf.get(p + 1) == Some(&b'\r')))
            {
                return Some(i + 1);
            }
            prev_lf = Some(i);
        }
    }
    None
}

/// The head's lines without terminators (CRLF or bare LF), up to the empty last line.
fn lines(head: &[u8]) -> impl Iterator<Item = &[u8]> {
    head.split(|&b| b == b'\n')
        .map(|line| line.strip_suffix(b"\r").unwrap_or(line))
        .take_while(|line| !line.is_empty())
}

/// RFC 9110 §5.6.2: tchar.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

fn parse_head(head: &[u8]) -> Result<Request, Reject> {
    let mut lines = lines(head);
    let request_line = lines.next().ok_or(bad("The request is empty."))?;
    let (method, route, http10) = parse_request_line(request_line)?;

    let mut hosts = 0usize;
    let mut content_length: Option<u64> = None;
    let mut close = false;
    let mut keep_alive = false;
    let mut html = false;
    let mut expect_continue = false;
    for line in lines {
        // RFC 9110 §5.5: CR, LF and NUL are never allowed in a field value.
        if line.iter().any(|&b| b == b'\r' || b == 0) {
            return Err(bad("A header line contains a stray CR or NUL."));
        }
        // RFC 9112 §5.2: a server MUST reject obsolete line folding or replace it; we reject.
        if line.first().is_some_and(|&b| b == b' ' || b == b'\t') {
            return Err(bad("Header lines must not be folded."));
        }
        let colon = line
            .iter()
            .position(|&b| b == b':')
            .ok_or(bad("A header line has no colon."))?;
        let (name, value) = line.split_at(colon);
        // RFC 9112 §5.1: no whitespace between the field name and the colon (MUST reject).
        if name.is_empty() || !name.iter().all(|&b| is_tchar(b)) {
            return Err(bad("A header field name is not valid."));
        }
        let value = value.get(1..).unwrap_or_default().trim_ascii();
        if name.eq_ignore_ascii_case(b"host") {
            hosts += 1;
        } else if name.eq_ignore_ascii_case(b"content-length") {
            let n = parse_content_length(value)?;
            // RFC 9112 §6.3: differing Content-Length values are unrecoverable.
            if content_length.is_some_and(|m| m != n) {
                return Err(bad("The request has conflicting Content-Length fields."));
            }
            content_length = Some(n);
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            // RFC 9112 §6.1: a transfer coding we do not decode SHOULD get 501; without
            // decoding it we cannot find the next request, so we also close.
            return Err(Reject {
                status: Status::NotImplemented,
                why: "Request bodies with Transfer-Encoding are not supported; send Content-Length.",
            });
        } else if name.eq_ignore_ascii_case(b"accept") {
            html |= accepts_html(value);
        } else if name.eq_ignore_ascii_case(b"expect") {
            // RFC 9110 §10.1.1: the one expectation defined; case-insensitive.
            expect_continue |= value.eq_ignore_ascii_case(b"100-continue");
        } else if name.eq_ignore_ascii_case(b"connection") {
            // RFC 9110 §7.6.1: a comma-separated list of case-insensitive options.
            for option in value.split(|&b| b == b',').map(<[u8]>::trim_ascii) {
                close |= option.eq_ignore_ascii_case(b"close");
                keep_alive |= option.eq_ignore_ascii_case(b"keep-alive");
            }
        }
    }
    // RFC 9112 §3.2: a server MUST respond 400 to an HTTP/1.1 request without exactly one
    // Host field (and to any request with more than one).
    if hosts > 1 || (!http10 && hosts == 0) {
        return Err(bad("An HTTP/1.1 request needs exactly one Host header."));
    }
    Ok(Request {
        method,
        route,
        http10,
        // RFC 9112 §9.3: HTTP/1.1 connections persist unless "close" is sent; HTTP/1.0 ones
        // only with "keep-alive".
        keep_alive: !close && (!http10 || keep_alive),
        html,
        content_length: content_length.unwrap_or(0),
        // RFC 9110 §10.1.1: "A server that receives a 100-continue expectation in an
        // HTTP/1.0 request MUST ignore that expectation."
        expect_continue: expect_continue && !http10,
    })
}

/// RFC 9112 §3: `method SP request-target SP HTTP-version`.
fn parse_request_line(line: &[u8]) -> Result<(Method, Route, bool), Reject> {
    let mut parts = line.split(|&b| b == b' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(bad("The request line is not 'METHOD /path HTTP/1.1'."));
    };
    let method = match method {
        b"GET" => Method::Get,
        b"HEAD" => Method::Head,
        b"PUT" => Method::Put,
        b"POST" => Method::Post,
        b"OPTIONS" => Method::Options,
        // RFC 9110 §9.1: methods are case-sensitive tokens; a well-formed one we do not
        // implement gets 501, anything else is not a request line.
        m if !m.is_empty() && m.iter().all(|&b| is_tchar(b)) => {
            return Err(NOT_IMPLEMENTED_METHOD);
        }
        _ => return Err(bad("The request method is not a valid token.")),
    };
    let http10 = match version {
        b"HTTP/1.1" => false,
        b"HTTP/1.0" => true,
        _ => return Err(bad("Only HTTP/1.1 and HTTP/1.0 are supported.")),
    };
    if !target.iter().all(|&b| b.is_ascii_graphic()) {
        return Err(bad("The request target is not valid."));
    }
    let path = match strip_prefix_ignore_case(target, b"http://") {
        // RFC 9112 §3.2.2: a server MUST accept the absolute form; we use only its path,
        // and an empty path means "/" (RFC 9110 §4.2.3).
        Some(rest) => rest
            .iter()
            .position(|&b| b == b'/' || b == b'?' || b == b'#')
            .and_then(|i| rest.get(i..))
            .unwrap_or_default(),
        None if target.starts_with(b"/") => target,
        // RFC 9112 §3.2.4: the asterisk form, for OPTIONS only.
        None if target == b"*" && method == Method::Options => target,
        None => return Err(bad("The request target must start with '/'.")),
    };
    let path = path
        .split(|&b| b == b'?' || b == b'#')
        .next()
        .unwrap_or_default();
    let route = match (method, path) {
        (Method::Put | Method::Post, _) => Route::Upload,
        // RFC 9110 §9.3.7: OPTIONS on a path or on the server as a whole ("*").
        (Method::Options, _) => Route::Options,
        (_, b"/favicon.ico") => Route::Favicon,
        (_, b"" | b"/") => Route::Connection,
        (_, b"/handshake") => Route::Handshake,
        (_, b"/handshake.svg") => Route::HandshakeSvg,
        (_, b"/metrics") => Route::Page(Page::Metrics),
        (_, b"/connections") => Route::Page(Page::Connections),
        (_, b"/connections.json") => Route::Page(Page::ConnectionsJson),
        (_, p) => {
            if let Some(n) = p.strip_prefix(b"/bytes/").and_then(parse_count) {
                Route::Bytes(n)
            } else if let Some(quad) = p
                .strip_prefix(b"/connections/")
                .and_then(observe::parse_connection_path)
            {
                Route::Page(Page::Connection(quad))
            } else {
                Route::NotFound
            }
        }
    };
    Ok((method, route, http10))
}

/// RFC 9110 §12.5.1: whether an Accept field value lists `text/html` with a non-zero weight
/// (`text/html,application/xhtml+xml,*/*;q=0.8`, as browsers send). A `*/*` alone does not
/// count: curl sends that, and gets text.
fn accepts_html(value: &[u8]) -> bool {
    value.split(|&b| b == b',').any(|range| {
        let mut params = range.split(|&b| b == b';').map(<[u8]>::trim_ascii);
        let media = params.next().unwrap_or_default();
        media.eq_ignore_ascii_case(b"text/html")
            && !params.any(|p| {
                strip_prefix_ignore_case(p, b"q=")
                    .is_some_and(|q| q.iter().all(|&b| b == b'0' || b == b'.'))
            })
    })
}

fn strip_prefix_ignore_case<'a>(s: &'a [u8], prefix: &[u8]) -> Option<&'a [u8]> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| s.get(prefix.len()..))
        .flatten()
}

/// RFC 9110 §8.6: `Content-Length = 1*DIGIT`.
fn parse_content_length(value: &[u8]) -> Result<u64, Reject> {
    let invalid = bad("Content-Length is not a number.");
    if value.is_empty() {
        return Err(invalid);
    }
    value.iter().try_fold(0u64, |n, &b| {
        if !b.is_ascii_digit() {
            return Err(invalid);
        }
        n.checked_mul(10)
            .and_then(|n| n.checked_add(u64::from(b - b'0')))
            .ok_or(invalid)
    })
}

/// The page at `/`: the visitor's own connection, with a few words on what each line means.
fn write_connection_page(w: &mut Vec<u8>, info: &ConnInfo) {
    let yes_no = |b: bool| if b { "yes" } else { "no" };
    let _ = write!(
        w,
        "synack: the TCP connection that carried this request\n\
         ====================================================\n\
         \n\
         You (client)         {remote}\n\
         Me (server)          {local}\n\
         State (my side)      {state}\n\
         \n\
         Initial sequence numbers\n\
         \x20 yours (IRS)        {irs}\n\
         \x20 mine  (ISS)        {iss}\n\
         \n\
         Maximum segment size (MSS)\n\
         \x20 I announced        {local_mss}\n",
        remote = info.quad.remote,
        local = info.quad.local,
        state = info.state,
        irs = info.irs.raw(),
        iss = info.iss.raw(),
        local_mss = info.local_mss,
    );
    match info.peer_mss {
        Some(mss) => {
            let _ = writeln!(w, "  you announced      {mss}");
        }
        None => {
            // RFC 9293 §3.7.1: without the option, the default send MSS applies.
            let default = tcp::default_mss(&info.quad);
            let _ = writeln!(
                w,
                "  you announced      nothing (so the default {default} applies)"
            );
        }
    }
    let _ = write!(
        w,
        "  I send at most     {send_mss} bytes per segment\n\
         \n\
         Options (used only when both the SYN and the SYN+ACK carry them)\n",
        send_mss = info.send_mss,
    );
    match info.window_scale {
        Some((ours, theirs)) => {
            let _ = writeln!(
                w,
                "  window scale       yes (my shift {ours}, yours {theirs})"
            );
        }
        None => {
            let _ = writeln!(w, "  window scale       no");
        }
    }
    let _ = write!(
        w,
        "  SACK permitted     {sack}\n\
         \x20 timestamps         {ts}\n\
         \n\
         What you are looking at\n\
         - A TCP connection is named by its 4-tuple: your address and port and mine.\n\
         \x20 Every segment carries them; that is how I found this connection.\n\
         - Each side's SYN picks a random initial sequence number. Data is numbered from\n\
         \x20 it (the SYN itself takes one number, so your first byte was IRS+1 and mine\n\
         \x20 ISS+1), and each ACK says \"I have everything before this number\".\n\
         - The MSS is the most payload a side accepts in one segment. I send segments no\n\
         \x20 larger than the smaller of the two.\n\
         - {explain}\n\
         - Send 'Connection: close' and I close first: then my side goes through FIN-WAIT-1,\n\
         \x20 FIN-WAIT-2 and TIME-WAIT, while yours passes CLOSE-WAIT and LAST-ACK.\n\
         \n\
         Watch it on the wire: tcpdump -ni synack0 -S tcp   (-S: absolute sequence numbers)\n",
        sack = yes_no(info.sack_permitted),
        ts = yes_no(info.timestamps),
        explain = explain_state(info.state),
    );
}

fn explain_state(state: State) -> &'static str {
    match state {
        State::Established => {
            "ESTABLISHED: the three-way handshake (SYN, SYN+ACK, ACK) is done and data\n  \
             flows both ways."
        }
        State::CloseWait => {
            "CLOSE-WAIT: you sent your FIN, so you will send nothing more, but I can still\n  \
             send; I close my side once this reply is queued."
        }
        _ => "This is my side's state in the diagram of RFC 9293 section 3.3.2.",
    }
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod handshake_tests;
