//! TCP Fast Open (RFC 7413): data on the SYN, once the client holds a cookie from the server.
//!
//! - **Server** (`--fastopen`, `Config::fastopen`): the endpoint checks the SYN's cookie
//!   against [`FastOpenKey::cookie`] (`endpoint::on_listen`); with a valid one the connection is
//!   built by [`Connection::accept_fast_open`], which takes the SYN's data at once (RCV.NXT
//!   past it, so the SYN,ACK acknowledges it, RFC 7413 §4.2.2) and lets the service run in
//!   SYN-RECEIVED. A cookie request, or an invalid cookie, is answered with a cookie in the
//!   SYN,ACK ([`Connection::set_fast_open_reply`]) and an ordinary handshake.
//! - **Client** (`synack connect --fastopen`): the first SYN asks for a cookie
//!   ([`Connection::connect_fast_open`] with a request); the SYN,ACK's cookie is kept by the
//!   endpoint per server address; with it, the next SYN carries the cookie and as much of the
//!   data as fits. If the SYN,ACK acknowledges only the SYN, the data is sent again after the
//!   handshake as ordinary data (RFC 7413 §4.2.2 "the client MUST retransmit").

use super::connection::Connection;
use super::trace::Label;
use super::{Config, State};
use crate::time::Instant;
use crate::wire::{FastOpenCookie, MAX_OPTIONS_LEN, Quad, TcpSegment};
use siphasher::sip::SipHasher24;
use std::hash::Hasher;
use std::net::IpAddr;

/// The server's secret behind its cookies. Its `Debug` does not print it.
#[derive(Clone, Copy, Default, PartialEq, Eq)]
pub struct FastOpenKey(pub [u8; 16]);

impl std::fmt::Debug for FastOpenKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FastOpenKey(..)")
    }
}

impl FastOpenKey {
    /// Linux's `net.ipv4.tcp_fastopen_key` text (`a0bf63f7-ed803d81-cd641d30-cebc4a90`: four
    /// 32-bit words in hex, each stored little-endian, as `proc_tcp_fastopen_key` does), so
    /// that a packetdrill script's key gives Linux's cookies. A backup key after a comma is
    /// ignored.
    pub fn parse_linux(text: &str) -> Option<FastOpenKey> {
        let primary = text.split(',').next()?.trim();
        let mut key = [0u8; 16];
        let mut words = primary.split('-');
        for chunk in key.chunks_exact_mut(4) {
            let word = u32::from_str_radix(words.next()?, 16).ok()?;
            chunk.copy_from_slice(&word.to_le_bytes());
        }
        words.next().is_none().then_some(FastOpenKey(key))
    }

    /// RFC 7413 §4.1.2: the cookie of the client at `client` talking to our address `server`
    /// (a MAC of the client's address; RFC 7413 §4.1.3 suggests the server's too). Linux's
    /// function exactly (`__tcp_fastopen_cookie_gen_cipher`): SipHash-2-4 of the SYN's source
    /// then destination address under the key, as a little-endian 64-bit value. `None` if
    /// the two addresses are of different families.
    pub fn cookie(&self, client: IpAddr, server: IpAddr) -> Option<FastOpenCookie> {
        let k0 = u64::from_le_bytes(self.0.first_chunk::<8>().copied()?);
        let k1 = u64::from_le_bytes(self.0.last_chunk::<8>().copied()?);
        let mut h = SipHasher24::new_with_keys(k0, k1);
        match (client, server) {
            (IpAddr::V4(c), IpAddr::V4(s)) => {
                h.write(&c.octets());
                h.write(&s.octets());
            }
            (IpAddr::V6(c), IpAddr::V6(s)) => {
                h.write(&c.octets());
                h.write(&s.octets());
            }
            _ => return None,
        }
        FastOpenCookie::new(&h.finish().to_le_bytes(), false)
    }

    /// Whether `cookie` is the one we give the client at `client` (RFC 7413 §4.1.2).
    pub fn valid(&self, cookie: &FastOpenCookie, client: IpAddr, server: IpAddr) -> bool {
        self.cookie(client, server)
            .is_some_and(|ours| ours.as_bytes() == cookie.as_bytes())
    }
}

/// A connection's Fast Open state.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct FastOpenState {
    /// Passive: the cookie our SYN,ACK carries (for a request, or in place of an invalid one).
    pub reply: Option<FastOpenCookie>,
    /// Passive: the SYN carried a valid cookie (RFC 7413 §4.2.2): its data was taken, and the
    /// application runs before the handshake completes.
    pub accepted: bool,
    /// Active: the option our SYN carries (a cookie request, or the cached cookie).
    pub option: Option<FastOpenCookie>,
    /// Active: the most data the first SYN may carry, and what it carried.
    pub syn_data_max: usize,
    pub syn_data: u32,
    /// Active: the cookie the peer's SYN,ACK gave, until the endpoint takes it.
    pub learned: Option<FastOpenCookie>,
    /// Active: whether the SYN,ACK acknowledged our SYN's data, until the endpoint counts it
    /// (kept here rather than in `ConnEvents`, so that connections without Fast Open do not
    /// pay for it).
    pub data_acked: Option<bool>,
}

impl Connection {
    /// RFC 7413 §4.2.2: a SYN with a valid cookie. The connection is built as for any SYN, and
    /// its data is taken at once, so the SYN,ACK acknowledges it and the service reads it
    /// before the handshake completes.
    pub fn accept_fast_open(
        now: Instant,
        quad: Quad,
        syn: &TcpSegment<'_>,
        iss: crate::seqnum::SeqNum,
        local_mss: u16,
        cfg: &std::sync::Arc<Config>,
    ) -> Connection {
        Connection::accept_syn(now, quad, syn, iss, local_mss, cfg, true)
    }

    /// Take the data of a SYN with a valid cookie (in SYN-RECEIVED, just built from it);
    /// the label its trace event gets.
    pub(super) fn take_syn_data(&mut self, syn: &TcpSegment<'_>) -> Label {
        self.fast_open_mut().accepted = true;
        // Within the window the SYN,ACK will offer, like any data (Linux takes the SYN's
        // data whole: it is at most one MSS).
        let room = usize::try_from(self.rcv.wnd()).unwrap_or(0);
        let take = self.memory_admit(syn.payload.len().min(room));
        if take > 0 {
            self.queues
                .make_mut()
                .recv
                .extend(syn.payload.get(..take).unwrap_or(&[]));
        }
        self.rcv.nxt = self.rcv.nxt.add(u32::try_from(take).unwrap_or(0));
        if take > 0 {
            Label::FastOpen
        } else {
            Label::None
        }
    }

    /// The cookie our SYN,ACK carries (RFC 7413 §4.2.1: asked for, or replacing an invalid
    /// one).
    pub fn set_fast_open_reply(&mut self, cookie: FastOpenCookie) {
        self.fast_open_mut().reply = Some(cookie);
    }

    /// A passive connection whose SYN carried a valid Fast Open cookie.
    pub fn is_fast_open(&self) -> bool {
        self.fastopen.as_ref().is_some_and(|f| f.accepted)
    }

    /// Before the SYN goes out (SYN-SENT): Fast Open, with `option` a cookie request or the
    /// cookie the server gave; with a cookie, `data` rides on the SYN up to `mss` (the one the
    /// server announced before, or ours if smaller) less the most options can take (as
    /// Linux's `tcp_send_syn_data`), and the rest follows once the connection is
    /// established. Returns how much of `data` was queued.
    pub fn connect_fast_open(&mut self, option: FastOpenCookie, data: &[u8], mss: u16) -> usize {
        if self.state != State::SynSent {
            return 0;
        }
        let local_mss = self.local_mss;
        let fo = self.fast_open_mut();
        fo.option = Some(option);
        if option.is_request() {
            return 0;
        }
        fo.syn_data_max = usize::from(mss.min(local_mss)).saturating_sub(MAX_OPTIONS_LEN);
        let room = self.buf.sndbuf.saturating_sub(self.queues.send.len());
        let n = data.len().min(room);
        if n > 0 {
            self.queues
                .make_mut()
                .send
                .extend(data.get(..n).unwrap_or(&[]));
        }
        n
    }

    /// The cookie the server's SYN,ACK gave (once), with the MSS it announced, for the
    /// endpoint's cache (Linux keeps both in `tcp_metrics`).
    pub fn take_fast_open_cookie(&mut self) -> Option<(FastOpenCookie, u16)> {
        let cookie = self.fastopen.as_mut()?.learned.take()?;
        Some((cookie, self.send_mss))
    }

    /// Once, after the SYN,ACK: whether it acknowledged the data our SYN carried (Linux:
    /// `TCPFastOpenActive`) or only the SYN (`TCPFastOpenActiveFail`); `None` if our SYN
    /// carried none.
    pub fn take_fast_open_outcome(&mut self) -> Option<bool> {
        self.fastopen.as_mut()?.data_acked.take()
    }

    /// The Fast Open option of our SYN or SYN,ACK.
    pub(super) fn fast_open_option(&self) -> Option<FastOpenCookie> {
        let fo = self.fastopen.as_ref()?;
        if self.state == State::SynSent {
            fo.option
        } else {
            fo.reply
        }
    }

    /// The data our first SYN carries (SYN-SENT with a cookie): the front of the send
    /// buffer, up to what fits.
    pub(super) fn fast_open_syn_data(&self) -> &[u8] {
        let max = self.fastopen.as_ref().map_or(0, |f| f.syn_data_max);
        if self.state != State::SynSent || max == 0 {
            return &[];
        }
        let front = self.queues.send.as_slices().0;
        front.get(..front.len().min(max)).unwrap_or(&[])
    }

    /// SYN-SENT, a SYN,ACK arrived: keep its cookie, and if it acknowledged only our SYN
    /// and not the data on it, send the data again as ordinary data after the handshake
    /// (RFC 7413 §4.2.2; Linux's `tcp_rcv_fastopen_synack`: `TCPFastOpenActiveFail`). If
    /// all of it was acknowledged, `TCPFastOpenActive` (`take_fast_open_outcome`).
    pub(super) fn fast_open_on_syn_ack(&mut self, seg: &TcpSegment<'_>) {
        let syn_end = self.snd.iss.add(1);
        let Some(fo) = self.fastopen.as_deref_mut() else {
            return;
        };
        if let Some(cookie) = seg.options.fastopen.filter(|c| !c.is_request()) {
            fo.learned = Some(cookie);
        }
        let sent = fo.syn_data;
        fo.syn_data = 0;
        fo.syn_data_max = 0;
        if sent == 0 {
            return;
        }
        let acked = !seg.ack.lt(self.snd.nxt);
        fo.data_acked = Some(acked);
        if !acked {
            // The data counts as never sent: the output path sends it as new data now.
            self.snd.nxt = seg.ack.max(syn_end);
            self.tx_next = self.snd.nxt;
        }
    }

    fn fast_open_mut(&mut self) -> &mut FastOpenState {
        self.fastopen.get_or_insert_with(Box::default)
    }

    /// Our first SYN carried `len` bytes of data: SND.NXT lies past them.
    pub(super) fn fast_open_sent(&mut self, len: u32) {
        if let Some(fo) = self.fastopen.as_deref_mut() {
            fo.syn_data = len;
        }
    }

    /// A retransmitted SYN carries no data (as Linux's): it is sent again after the handshake,
    /// and counted as a failure, as Linux counts it once the SYN,ACK acknowledges only the SYN.
    pub(super) fn fast_open_syn_lost(&mut self) {
        if let Some(fo) = self.fastopen.as_deref_mut() {
            if fo.syn_data > 0 {
                fo.data_acked = Some(false);
            }
            fo.syn_data = 0;
            fo.syn_data_max = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn linux_key_text_gives_linux_cookies() {
        // packetdrill's fastopen/server/opt34/simple1.pkt: this key, a client at 10.248.0.2
        // and a server at 192.168.0.2 make the cookie 00abaaabe8e954c2.
        let key = FastOpenKey::parse_linux("a0bf63f7-ed803d81-cd641d30-cebc4a90").unwrap();
        let cookie = key
            .cookie(
                "10.248.0.2".parse().unwrap(),
                "192.168.0.2".parse().unwrap(),
            )
            .unwrap();
        assert_eq!(
            cookie.as_bytes(),
            &[0x00, 0xab, 0xaa, 0xab, 0xe8, 0xe9, 0x54, 0xc2]
        );
        assert!(key.valid(
            &cookie,
            "10.248.0.2".parse().unwrap(),
            "192.168.0.2".parse().unwrap()
        ));
        // Another client gets another cookie; mixed families none.
        assert!(!key.valid(
            &cookie,
            "10.248.0.3".parse().unwrap(),
            "192.168.0.2".parse().unwrap()
        ));
        assert!(
            key.cookie("10.0.0.1".parse().unwrap(), "2001:2::1".parse().unwrap())
                .is_none()
        );
        for bad in ["", "a0bf63f7-ed803d81-cd641d30", "a-b-c-d-e", "xyz-1-2-3"] {
            assert!(FastOpenKey::parse_linux(bad).is_none(), "{bad}");
        }
        assert!(FastOpenKey::parse_linux("1-2-3-4,5-6-7-8").is_some());
    }
}
