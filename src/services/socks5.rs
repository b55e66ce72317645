//! The client side of a SOCKS5 CONNECT (RFC 1928), with no authentication or with a user name
//! and password (RFC 1929), as a sans-IO state machine: the driver writes what
//! [`Socks5Client::to_send`] holds to the proxy, feeds every byte it reads to
//! [`Socks5Client::on_bytes`], and acts on the [`Socks5Outcome`]. Behind the `socks5:`
//! relay service (issue #21): the client's SYN is answered only once the proxy says the
//! CONNECT succeeded.

use crate::wire::IcmpErrorKind;
use std::fmt;
use std::net::SocketAddr;

/// A `socks5:[USER:PASSWORD@]HOST:PORT` service: where the proxy is and how to log in.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Socks5Spec {
    proxy: SocketAddr,
    auth: Option<(String, String)>,
    label: String,
}

impl Socks5Spec {
    /// Parse what follows `socks5:`. HOST is an IP address (IPv6 as `[ADDR]`), as for
    /// `forward:`; a user name and password (RFC 1929: 1 to 255 bytes each) may come first.
    pub fn parse(target: &str) -> Result<Socks5Spec, String> {
        let (auth, hostport) = match target.rsplit_once('@') {
            Some((creds, rest)) => {
                let Some((user, pass)) = creds.split_once(':') else {
                    return Err(format!(
                        "'socks5:{target}': give credentials as USER:PASSWORD@HOST:PORT"
                    ));
                };
                for (what, v) in [("user name", user), ("password", pass)] {
                    if v.is_empty() || v.len() > 255 {
                        return Err(format!(
                            "'socks5:{target}': the {what} must be 1 to 255 bytes (RFC 1929)"
                        ));
                    }
                }
                (Some((user.to_owned(), pass.to_owned())), rest)
            }
            None => (None, target),
        };
        let proxy: SocketAddr = hostport.parse().map_err(|_| {
            format!(
                "'socks5:{target}' is not socks5:HOST:PORT with HOST an IP address (IPv6 as \
                 [ADDR]:PORT), e.g. socks5:198.18.1.1:1080"
            )
        })?;
        if proxy.port() == 0 {
            return Err(format!("'socks5:{target}': the proxy's port cannot be 0"));
        }
        // The label never shows the password.
        let label = match &auth {
            Some((user, _)) => format!("socks5:{user}@{proxy}"),
            None => format!("socks5:{proxy}"),
        };
        Ok(Socks5Spec { proxy, auth, label })
    }

    /// Live as long as the process (specs are parsed once, from the flags).
    pub fn leak(self) -> &'static Socks5Spec {
        Box::leak(Box::new(self))
    }

    /// The proxy's address.
    pub fn proxy(&self) -> SocketAddr {
        self.proxy
    }

    /// `socks5:[USER@]HOST:PORT`, for logs and `status`.
    pub fn label(&self) -> &str {
        &self.label
    }

    /// A client for one CONNECT to `dest` through this proxy.
    pub fn client(&self, dest: SocketAddr) -> Socks5Client {
        Socks5Client::new(dest, self.auth.clone())
    }
}

impl fmt::Debug for Socks5Spec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.label)
    }
}

/// What the proxy's bytes so far mean.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Socks5Outcome {
    /// Not done yet: send [`Socks5Client::to_send`] (if anything) and read more.
    Pending,
    /// The CONNECT succeeded: from now on the stream carries the client's bytes.
    Connected,
    /// The destination refused the connection (reply 0x05), or the proxy's rules do not
    /// allow it (0x02): the client is reset, as a host that refused would.
    Refused(Socks5Reply),
    /// The destination could not be reached, or the proxy failed (every other reply, a
    /// refused login, an answer that is not SOCKS5): the client's SYN stays unanswered.
    Failed(Socks5Failure),
}

/// The reply codes of RFC 1928 §6.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Socks5Reply {
    Succeeded,
    GeneralFailure,
    NotAllowed,
    NetworkUnreachable,
    HostUnreachable,
    ConnectionRefused,
    TtlExpired,
    CommandNotSupported,
    AddressTypeNotSupported,
    Unassigned(u8),
}

impl Socks5Reply {
    pub fn from_code(code: u8) -> Socks5Reply {
        match code {
            0 => Socks5Reply::Succeeded,
            1 => Socks5Reply::GeneralFailure,
            2 => Socks5Reply::NotAllowed,
            3 => Socks5Reply::NetworkUnreachable,
            4 => Socks5Reply::HostUnreachable,
            5 => Socks5Reply::ConnectionRefused,
            6 => Socks5Reply::TtlExpired,
            7 => Socks5Reply::CommandNotSupported,
            8 => Socks5Reply::AddressTypeNotSupported,
            other => Socks5Reply::Unassigned(other),
        }
    }
}

impl fmt::Display for Socks5Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Socks5Reply::Succeeded => f.write_str("succeeded"),
            Socks5Reply::GeneralFailure => f.write_str("general SOCKS server failure"),
            Socks5Reply::NotAllowed => f.write_str("connection not allowed by ruleset"),
            Socks5Reply::NetworkUnreachable => f.write_str("network unreachable"),
            Socks5Reply::HostUnreachable => f.write_str("host unreachable"),
            Socks5Reply::ConnectionRefused => f.write_str("connection refused"),
            Socks5Reply::TtlExpired => f.write_str("TTL expired"),
            Socks5Reply::CommandNotSupported => f.write_str("command not supported"),
            Socks5Reply::AddressTypeNotSupported => f.write_str("address type not supported"),
            Socks5Reply::Unassigned(code) => write!(f, "unassigned reply {code:#04x}"),
        }
    }
}

/// Why a CONNECT failed without a refusal.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Socks5Failure {
    /// The CONNECT reply said so.
    Reply(Socks5Reply),
    /// The proxy accepts none of the methods we offered (0xFF), or wants one we did not
    /// offer.
    NoAcceptableMethod,
    /// RFC 1929: the proxy rejected the user name and password.
    AuthRejected,
    /// The bytes are not a SOCKS5 answer.
    Protocol,
}

impl Socks5Failure {
    /// The ICMP error a router would have sent the client for this reply: the proxy could
    /// not reach the destination (RFC 1928 §6: replies 0x03, 0x04 and 0x06).
    pub fn unreachable(self) -> Option<IcmpErrorKind> {
        match self {
            Socks5Failure::Reply(Socks5Reply::NetworkUnreachable) => {
                Some(IcmpErrorKind::NetUnreachable)
            }
            Socks5Failure::Reply(Socks5Reply::HostUnreachable) => {
                Some(IcmpErrorKind::HostUnreachable)
            }
            Socks5Failure::Reply(Socks5Reply::TtlExpired) => Some(IcmpErrorKind::TimeExceeded),
            _ => None,
        }
    }
}

impl fmt::Display for Socks5Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Socks5Failure::Reply(r) => write!(f, "the proxy answered: {r}"),
            Socks5Failure::NoAcceptableMethod => {
                f.write_str("the proxy accepts none of our authentication methods")
            }
            Socks5Failure::AuthRejected => f.write_str("the proxy rejected the user and password"),
            Socks5Failure::Protocol => f.write_str("the proxy's answer is not SOCKS5"),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Waiting for the method selection (RFC 1928 §3).
    Method,
    /// Waiting for the RFC 1929 status.
    Auth,
    /// Waiting for the CONNECT reply (RFC 1928 §6).
    Reply,
    Done(Socks5Outcome),
}

const VERSION: u8 = 5;
const METHOD_NONE: u8 = 0;
const METHOD_USERPASS: u8 = 2;
const NO_ACCEPTABLE: u8 = 0xff;
const CMD_CONNECT: u8 = 1;
const ATYP_V4: u8 = 1;
const ATYP_DOMAIN: u8 = 3;
const ATYP_V6: u8 = 4;

/// One CONNECT. See the module docs.
#[derive(Clone, Debug)]
pub struct Socks5Client {
    dest: SocketAddr,
    auth: Option<(String, String)>,
    phase: Phase,
    /// Bytes to write to the proxy (taken with [`Socks5Client::sent`]).
    out: Vec<u8>,
    /// Bytes read and not yet understood (a reply may come in pieces).
    inbuf: Vec<u8>,
}

impl Socks5Client {
    pub fn new(dest: SocketAddr, auth: Option<(String, String)>) -> Socks5Client {
        // RFC 1928 §3: VER, NMETHODS, METHODS. With credentials both are offered, as curl
        // does; the proxy picks.
        let mut out = vec![VERSION];
        if auth.is_some() {
            out.extend([2, METHOD_NONE, METHOD_USERPASS]);
        } else {
            out.extend([1, METHOD_NONE]);
        }
        Socks5Client {
            dest,
            auth,
            phase: Phase::Method,
            out,
            inbuf: Vec::new(),
        }
    }

    /// What to write to the proxy now.
    pub fn to_send(&self) -> &[u8] {
        &self.out
    }

    /// `n` bytes of [`Socks5Client::to_send`] were written.
    pub fn sent(&mut self, n: usize) {
        self.out.drain(..n.min(self.out.len()));
    }

    /// How many bytes to read from the proxy next: what the message awaited still lacks, so
    /// that a read never takes bytes beyond it. After a successful CONNECT reply the proxy
    /// relays the destination, and a destination that speaks first (an SSH banner, an SMTP
    /// greeting, a source of data) sends its first bytes right behind the reply: read with
    /// the reply, they were lost to the client, so the CONNECT had to fail (issue 21: ten
    /// relayed downloads through microsocks all failed). 0 once the exchange is over.
    pub fn wanted(&self) -> usize {
        let need = match self.phase {
            Phase::Method | Phase::Auth => 2,
            // VER, REP, RSV, ATYP and the first byte of BND.ADDR (a domain's length), then
            // the rest of BND.ADDR and BND.PORT.
            Phase::Reply => match (self.inbuf.get(3), self.inbuf.get(4)) {
                (Some(&ATYP_V4), Some(_)) => 4 + 4 + 2,
                (Some(&ATYP_V6), Some(_)) => 4 + 16 + 2,
                (Some(&ATYP_DOMAIN), Some(&len)) => 4 + 1 + usize::from(len) + 2,
                _ => 5,
            },
            Phase::Done(_) => return 0,
        };
        need.saturating_sub(self.inbuf.len()).max(1)
    }

    /// The outcome so far.
    pub fn outcome(&self) -> Socks5Outcome {
        match self.phase {
            Phase::Done(outcome) => outcome,
            _ => Socks5Outcome::Pending,
        }
    }

    /// Bytes the proxy sent. A proxy that sends past its reply (data from the destination
    /// before we sent anything) is not SOCKS5's business: those bytes are returned as the
    /// start of the stream.
    pub fn on_bytes(&mut self, data: &[u8]) -> (Socks5Outcome, Vec<u8>) {
        if matches!(self.phase, Phase::Done(_)) {
            return (self.outcome(), data.to_vec());
        }
        self.inbuf.extend_from_slice(data);
        loop {
            let before = self.phase;
            let step = match self.phase {
                Phase::Method => self.on_method(),
                Phase::Auth => self.on_auth(),
                Phase::Reply => self.on_reply(),
                Phase::Done(_) => break,
            };
            if let Some(outcome) = step {
                self.phase = Phase::Done(outcome);
            }
            if self.phase == before {
                break;
            }
        }
        let rest = if matches!(self.phase, Phase::Done(Socks5Outcome::Connected)) {
            std::mem::take(&mut self.inbuf)
        } else {
            Vec::new()
        };
        (self.outcome(), rest)
    }

    /// Take `n` bytes from the front of what was read, if that many are there.
    fn take(&mut self, n: usize) -> Option<Vec<u8>> {
        if self.inbuf.len() < n {
            return None;
        }
        Some(self.inbuf.drain(..n).collect())
    }

    fn on_method(&mut self) -> Option<Socks5Outcome> {
        let reply = self.take(2)?;
        let (&[ver, method], _) = reply.split_first_chunk::<2>()?;
        if ver != VERSION {
            return Some(Socks5Outcome::Failed(Socks5Failure::Protocol));
        }
        match (method, &self.auth) {
            (METHOD_NONE, _) => {
                self.queue_connect();
                self.phase = Phase::Reply;
                None
            }
            (METHOD_USERPASS, Some((user, pass))) => {
                // RFC 1929 §2: VER 1, ULEN, UNAME, PLEN, PASSWD (lengths checked at parse).
                let mut msg = vec![1, user.len().min(255) as u8];
                msg.extend_from_slice(user.as_bytes());
                msg.push(pass.len().min(255) as u8);
                msg.extend_from_slice(pass.as_bytes());
                self.out.extend(msg);
                self.phase = Phase::Auth;
                None
            }
            (NO_ACCEPTABLE, _) | (_, _) => {
                Some(Socks5Outcome::Failed(Socks5Failure::NoAcceptableMethod))
            }
        }
    }

    fn on_auth(&mut self) -> Option<Socks5Outcome> {
        let reply = self.take(2)?;
        // RFC 1929 §2: VER 1, STATUS 0 is success.
        if reply.get(1) != Some(&0) {
            return Some(Socks5Outcome::Failed(Socks5Failure::AuthRejected));
        }
        self.queue_connect();
        self.phase = Phase::Reply;
        None
    }

    /// RFC 1928 §4: VER, CMD CONNECT, RSV, ATYP, DST.ADDR, DST.PORT.
    fn queue_connect(&mut self) {
        self.out.extend([VERSION, CMD_CONNECT, 0]);
        match self.dest {
            SocketAddr::V4(a) => {
                self.out.push(ATYP_V4);
                self.out.extend(a.ip().octets());
            }
            SocketAddr::V6(a) => {
                self.out.push(ATYP_V6);
                self.out.extend(a.ip().octets());
            }
        }
        self.out.extend(self.dest.port().to_be_bytes());
    }

    fn on_reply(&mut self) -> Option<Socks5Outcome> {
        // VER, REP, RSV, ATYP, BND.ADDR (by ATYP), BND.PORT: wait for all of it.
        let head = self.inbuf.get(..5)?;
        let (ver, rep, atyp) = (*head.first()?, *head.get(1)?, *head.get(3)?);
        if ver != VERSION {
            return Some(Socks5Outcome::Failed(Socks5Failure::Protocol));
        }
        let addr_len = match atyp {
            ATYP_V4 => 4,
            ATYP_V6 => 16,
            ATYP_DOMAIN => 1 + usize::from(*head.get(4)?),
            _ => return Some(Socks5Outcome::Failed(Socks5Failure::Protocol)),
        };
        self.take(4 + addr_len + 2)?;
        Some(match Socks5Reply::from_code(rep) {
            Socks5Reply::Succeeded => Socks5Outcome::Connected,
            r @ (Socks5Reply::ConnectionRefused | Socks5Reply::NotAllowed) => {
                Socks5Outcome::Refused(r)
            }
            r => Socks5Outcome::Failed(Socks5Failure::Reply(r)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dest() -> SocketAddr {
        "198.18.1.10:80".parse().unwrap()
    }

    fn reply(code: u8) -> Vec<u8> {
        vec![5, code, 0, 1, 198, 18, 1, 1, 0x04, 0x38]
    }

    /// A client through the no-auth greeting, with the CONNECT queued.
    fn greeted() -> Socks5Client {
        let mut c = Socks5Client::new(dest(), None);
        assert_eq!(c.to_send(), &[5, 1, 0]);
        c.sent(3);
        assert_eq!(c.on_bytes(&[5, 0]).0, Socks5Outcome::Pending);
        assert_eq!(c.to_send(), &[5, 1, 0, 1, 198, 18, 1, 10, 0, 80]);
        c.sent(10);
        c
    }

    #[test]
    fn connect_without_authentication() {
        let mut c = greeted();
        assert_eq!(c.on_bytes(&reply(0)), (Socks5Outcome::Connected, vec![]));
    }

    #[test]
    fn every_reply_code_maps_onto_the_clients_view() {
        let cases = [
            (0, Socks5Outcome::Connected),
            (
                1,
                Socks5Outcome::Failed(Socks5Failure::Reply(Socks5Reply::GeneralFailure)),
            ),
            (2, Socks5Outcome::Refused(Socks5Reply::NotAllowed)),
            (
                3,
                Socks5Outcome::Failed(Socks5Failure::Reply(Socks5Reply::NetworkUnreachable)),
            ),
            (
                4,
                Socks5Outcome::Failed(Socks5Failure::Reply(Socks5Reply::HostUnreachable)),
            ),
            (5, Socks5Outcome::Refused(Socks5Reply::ConnectionRefused)),
            (
                6,
                Socks5Outcome::Failed(Socks5Failure::Reply(Socks5Reply::TtlExpired)),
            ),
            (
                7,
                Socks5Outcome::Failed(Socks5Failure::Reply(Socks5Reply::CommandNotSupported)),
            ),
            (
                8,
                Socks5Outcome::Failed(Socks5Failure::Reply(Socks5Reply::AddressTypeNotSupported)),
            ),
            (
                9,
                Socks5Outcome::Failed(Socks5Failure::Reply(Socks5Reply::Unassigned(9))),
            ),
        ];
        for (code, want) in cases {
            let mut c = greeted();
            assert_eq!(c.on_bytes(&reply(code)).0, want, "reply {code}");
        }
    }

    #[test]
    fn unreachable_replies_become_the_icmp_error_a_router_would_send() {
        let unreachable = |code| match greeted().on_bytes(&reply(code)).0 {
            Socks5Outcome::Failed(why) => why.unreachable(),
            _ => None,
        };
        assert_eq!(unreachable(3), Some(IcmpErrorKind::NetUnreachable));
        assert_eq!(unreachable(4), Some(IcmpErrorKind::HostUnreachable));
        assert_eq!(unreachable(6), Some(IcmpErrorKind::TimeExceeded));
        for code in [1, 7, 8, 9] {
            assert_eq!(unreachable(code), None, "reply {code}");
        }
        assert_eq!(Socks5Failure::AuthRejected.unreachable(), None);
    }

    /// Reading only what [`Socks5Client::wanted`] asks for never takes the destination's
    /// first bytes, which follow the reply on the same stream, whatever the reply's address
    /// type.
    #[test]
    fn reads_of_what_is_wanted_stop_at_the_end_of_the_reply() {
        let banner = b"SSH-2.0-upstream\r\n";
        let v4 = [VERSION, 0, 0, ATYP_V4, 198, 19, 1, 10, 0, 22];
        let mut v6 = vec![VERSION, 0, 0, ATYP_V6];
        v6.extend([0x20, 1, 0, 2, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 0, 22]);
        let mut domain = vec![VERSION, 0, 0, ATYP_DOMAIN, 4];
        domain.extend(b"host");
        domain.extend([0, 22]);
        for reply in [v4.to_vec(), v6, domain] {
            let mut c = greeted();
            // The reply, then the destination's banner: one stream.
            let mut stream = reply.clone();
            stream.extend(banner);
            let mut at = 0;
            while c.outcome() == Socks5Outcome::Pending {
                let n = c.wanted().min(stream.len() - at);
                assert!(n > 0, "{reply:?}: nothing left to read");
                let (_, early) = c.on_bytes(&stream[at..at + n]);
                assert!(early.is_empty(), "{reply:?}: read past the reply");
                at += n;
            }
            assert_eq!(c.outcome(), Socks5Outcome::Connected, "{reply:?}");
            assert_eq!(&stream[at..], banner, "{reply:?}");
            assert_eq!(c.wanted(), 0);
        }
    }

    #[test]
    fn a_reply_in_pieces_and_bytes_after_it() {
        let mut c = greeted();
        let mut r = vec![5, 0, 0, 4];
        r.extend([0u8; 16]);
        r.extend([0, 80]);
        r.extend(b"early");
        for b in &r[..r.len() - 6] {
            assert_eq!(c.on_bytes(&[*b]).0, Socks5Outcome::Pending);
        }
        let (outcome, rest) = c.on_bytes(&r[r.len() - 6..]);
        assert_eq!(outcome, Socks5Outcome::Connected);
        assert_eq!(rest, b"early");
        // A domain-name BND.ADDR is skipped by its length.
        let mut c = greeted();
        let mut r = vec![5, 0, 0, 3, 4];
        r.extend(b"host");
        r.extend([0, 80]);
        assert_eq!(c.on_bytes(&r).0, Socks5Outcome::Connected);
    }

    #[test]
    fn username_and_password() {
        let spec = Socks5Spec::parse("me:secret@198.18.1.1:1080").unwrap();
        assert_eq!(spec.label(), "socks5:me@198.18.1.1:1080");
        let mut c = spec.client("[2001:2:0:1::10]:443".parse().unwrap());
        assert_eq!(c.to_send(), &[5, 2, 0, 2]);
        c.sent(4);
        assert_eq!(c.on_bytes(&[5, 2]).0, Socks5Outcome::Pending);
        assert_eq!(c.to_send(), b"\x01\x02me\x06secret");
        c.sent(c.to_send().len());
        assert_eq!(c.on_bytes(&[1, 0]).0, Socks5Outcome::Pending);
        let connect = c.to_send().to_vec();
        assert_eq!(&connect[..4], &[5, 1, 0, 4]);
        assert_eq!(connect.len(), 4 + 16 + 2);
        c.sent(connect.len());
        assert_eq!(c.on_bytes(&reply(0)).0, Socks5Outcome::Connected);
        // A rejected login.
        let mut c = spec.client(dest());
        c.sent(4);
        c.on_bytes(&[5, 2]);
        assert_eq!(
            c.on_bytes(&[1, 1]).0,
            Socks5Outcome::Failed(Socks5Failure::AuthRejected)
        );
    }

    #[test]
    fn proxies_that_do_not_speak_our_language() {
        let mut c = Socks5Client::new(dest(), None);
        assert_eq!(
            c.on_bytes(&[5, 0xff]).0,
            Socks5Outcome::Failed(Socks5Failure::NoAcceptableMethod)
        );
        let mut c = Socks5Client::new(dest(), None);
        assert_eq!(
            c.on_bytes(&[5, 2]).0,
            Socks5Outcome::Failed(Socks5Failure::NoAcceptableMethod),
            "user/password asked but none given"
        );
        let mut c = Socks5Client::new(dest(), None);
        assert_eq!(
            c.on_bytes(b"HTTP/1.1 400 Bad Request\r\n").0,
            Socks5Outcome::Failed(Socks5Failure::Protocol)
        );
        let mut c = greeted();
        assert_eq!(
            c.on_bytes(&[5, 0, 0, 9, 0, 0]).0,
            Socks5Outcome::Failed(Socks5Failure::Protocol),
            "unknown address type"
        );
    }

    #[test]
    fn specs_parse_and_refuse_what_they_cannot_use() {
        let spec = Socks5Spec::parse("198.18.1.1:1080").unwrap();
        assert_eq!(spec.proxy(), "198.18.1.1:1080".parse().unwrap());
        assert_eq!(spec.label(), "socks5:198.18.1.1:1080");
        assert!(Socks5Spec::parse("[2001:2::9]:1080").is_ok());
        assert!(Socks5Spec::parse("proxy.example:1080").is_err());
        assert!(Socks5Spec::parse("198.18.1.1:0").is_err());
        assert!(Socks5Spec::parse("nopass@198.18.1.1:1080").is_err());
        assert!(Socks5Spec::parse(&format!("{}:x@198.18.1.1:1", "u".repeat(256))).is_err());
    }
}
