//! TCP Fast Open (RFC 7413) at the endpoint: which SYNs to a listener may have their data
//! taken (Linux's `tcp_try_fastopen`), and the client's cookie cache (Linux's `tcp_metrics`).
//! The connection's part is `tcp/fastopen.rs`.

use super::Endpoint;
use crate::tcp::FastOpenKey;
use crate::wire::{FastOpenCookie, Quad, TcpSegment};
use std::collections::HashMap;
use std::net::IpAddr;

/// The most servers whose cookies the client side keeps (Linux's `tcp_metrics` table is
/// bounded likewise); past it the cache starts over.
pub const CACHE_SIZE: usize = 1024;

/// What a listener does with a SYN's Fast Open option.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Verdict {
    /// No Fast Open: an ordinary handshake, nothing added to the SYN,ACK.
    None,
    /// A valid cookie: take the SYN's data (RFC 7413 §4.2.2).
    Accept,
    /// An ordinary handshake whose SYN,ACK carries this cookie: the client asked for one, or
    /// sent an invalid one (RFC 7413 §4.2.1).
    Reply(FastOpenCookie),
}

/// The cookies servers gave our active opens, by server address (RFC 7413 §4.1.3: the
/// client caches them per server IP), with the MSS each announced.
#[derive(Debug, Default)]
pub(super) struct CookieCache {
    cookies: HashMap<IpAddr, (FastOpenCookie, u16)>,
}

impl CookieCache {
    pub fn get(&self, server: IpAddr) -> Option<(FastOpenCookie, u16)> {
        self.cookies.get(&server).copied()
    }

    pub fn learn(&mut self, server: IpAddr, cookie: FastOpenCookie, mss: u16) {
        if self.cookies.len() >= CACHE_SIZE && !self.cookies.contains_key(&server) {
            self.cookies.clear();
        }
        self.cookies.insert(server, (cookie, mss));
    }
}

impl Endpoint {
    /// Replace the key of the Fast Open cookies we give (packetdrill's `tcp_fastopen_key`,
    /// so that a script's expected cookies are Linux's).
    pub fn set_fast_open_key(&mut self, key: FastOpenKey) {
        self.fastopen_key = key;
    }

    /// RFC 7413 §4.2.2, as Linux's `tcp_try_fastopen`: a listener with Fast Open on, a SYN
    /// with the option, and fewer Fast Open connections pending than the listener's backlog
    /// (§5.1; Linux's `tcp_fastopen_queue_check` with the backlog as the limit, as
    /// `tcp_fastopen=0x400` sets it); then a valid cookie is accepted, a request or an
    /// invalid cookie answered with the client's cookie.
    pub(super) fn fast_open_verdict(
        &mut self,
        quad: &Quad,
        syn: &TcpSegment<'_>,
        listener: usize,
        server: bool,
    ) -> Verdict {
        let Some(option) = syn.options.fastopen else {
            return Verdict::None;
        };
        if option.is_request() {
            // Linux counts every request, whether or not it can answer.
            self.counters.fastopen_cookie_reqd += 1;
        }
        if !server {
            return Verdict::None;
        }
        if self.queues.fast_open(listener) >= self.backlog_of(listener) {
            self.counters.fastopen_listen_overflow += 1;
            return Verdict::None;
        }
        let Some(mut ours) = self.fastopen_key.cookie(quad.remote.ip(), quad.local.ip()) else {
            return Verdict::None;
        };
        if !option.is_request() {
            if ours.as_bytes() == option.as_bytes() {
                self.counters.fastopen_passive += 1;
                return Verdict::Accept;
            }
            self.counters.fastopen_passive_fail += 1;
        }
        // In the form the client used (Linux: `valid_foc.exp = foc->exp`).
        ours.exp = option.exp;
        Verdict::Reply(ours)
    }
}
