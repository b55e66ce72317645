//! Just enough rtnetlink to add an interface address, as `ip addr add` does, and to ask whether
//! the kernel delivers an address locally yet, as `ip route get` does. Netlink (rather than
//! SIOCSIFADDR) handles several addresses per family and IPv6 with IFA_F_NODAD alike.

use crate::config::HostAddr;
use std::io;
use std::net::IpAddr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

const NLMSG_HDRLEN: usize = 16;
const IFADDRMSG_LEN: usize = 8;
const NLMSG_ERROR: u16 = 2;
const RTM_NEWADDR: u16 = 20;
const RTM_NEWROUTE: u16 = 24;
const RTM_GETROUTE: u16 = 26;
const RTMSG_LEN: usize = 12;
const RTA_DST: u16 = 1;
/// A route of type "local": the address is this host's, packets to it are delivered here.
const RTN_LOCAL: u8 = 2;
const IFA_ADDRESS: u16 = 1;
const IFA_LOCAL: u16 = 2;
/// Skip duplicate address detection: the address is usable at once, never "tentative".
const IFA_F_NODAD: u8 = 0x02;
/// Scope "global" (RT_SCOPE_UNIVERSE).
const RT_SCOPE_UNIVERSE: u8 = 0;

/// A NETLINK_ROUTE socket talking to the kernel.
pub struct Route {
    sock: OwnedFd,
    seq: u32,
}

impl Route {
    pub fn open() -> io::Result<Route> {
        // SAFETY: plain syscall; the result is checked before use.
        let fd = unsafe {
            libc::socket(
                libc::AF_NETLINK,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                libc::NETLINK_ROUTE,
            )
        };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` was just returned by socket() and is owned by nobody else.
        let sock = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(Route { sock, seq: 0 })
    }

    /// `ip addr add ADDR/PREFIX dev INDEX` (plus `nodad` for IPv6); waits for the kernel's ack.
    pub fn add_address(&mut self, index: u32, host: &HostAddr) -> io::Result<()> {
        self.seq = self.seq.wrapping_add(1);
        let msg = new_addr_message(self.seq, index, host);
        // SAFETY: `msg` is a valid buffer of the given length; an unconnected netlink socket
        // sends to the kernel (port id 0).
        let sent = unsafe { libc::send(self.sock.as_raw_fd(), msg.as_ptr().cast(), msg.len(), 0) };
        if sent < 0 {
            return Err(io::Error::last_os_error());
        }
        self.wait_ack()
    }

    /// Whether the kernel delivers packets for `addr` locally yet (`ip route get ADDR` says
    /// `local`). An IPv6 address added before the link came up gets its local route only when
    /// the kernel's address configuration work has run, some milliseconds after the link is
    /// up, even with IFA_F_NODAD; until then replies to it are dropped.
    pub fn is_local(&mut self, addr: IpAddr) -> io::Result<bool> {
        self.seq = self.seq.wrapping_add(1);
        let msg = get_route_message(self.seq, addr);
        // SAFETY: as in add_address.
        let sent = unsafe { libc::send(self.sock.as_raw_fd(), msg.as_ptr().cast(), msg.len(), 0) };
        if sent < 0 {
            return Err(io::Error::last_os_error());
        }
        match self.wait_reply()? {
            Reply::Route { kind } => Ok(kind == RTN_LOCAL),
            Reply::Ack(Ok(())) => Ok(false),
            // No route at all yet (ENETUNREACH and the like): not local.
            Reply::Ack(Err(_)) => Ok(false),
        }
    }

    fn wait_ack(&self) -> io::Result<()> {
        match self.wait_reply()? {
            Reply::Ack(result) => result,
            Reply::Route { .. } => Ok(()),
        }
    }

    fn wait_reply(&self) -> io::Result<Reply> {
        let mut buf = [0u8; 8192];
        loop {
            // SAFETY: `buf` is writable for its whole length.
            let n =
                unsafe { libc::recv(self.sock.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
            let n = usize::try_from(n).map_err(|_| io::Error::last_os_error())?;
            if let Some(reply) = find_reply(buf.get(..n).unwrap_or_default(), self.seq) {
                return Ok(reply);
            }
        }
    }
}

/// The kernel's answer to one request.
#[derive(Debug)]
enum Reply {
    /// NLMSG_ERROR: an ack (errno 0) or the error.
    Ack(io::Result<()>),
    /// RTM_NEWROUTE answering RTM_GETROUTE, with the route's type (RTN_*).
    Route { kind: u8 },
}

/// `ip route get ADDR`: struct nlmsghdr, struct rtmsg, RTA_DST.
fn get_route_message(seq: u32, addr: IpAddr) -> Vec<u8> {
    let (family, octets): (u8, Vec<u8>) = match addr {
        IpAddr::V4(a) => (libc::AF_INET as u8, a.octets().to_vec()),
        IpAddr::V6(a) => (libc::AF_INET6 as u8, a.octets().to_vec()),
    };
    let total = NLMSG_HDRLEN + RTMSG_LEN + 4 + octets.len();
    let mut msg = Vec::with_capacity(total);
    msg.extend_from_slice(&(total as u32).to_ne_bytes());
    msg.extend_from_slice(&RTM_GETROUTE.to_ne_bytes());
    msg.extend_from_slice(&(libc::NLM_F_REQUEST as u16).to_ne_bytes());
    msg.extend_from_slice(&seq.to_ne_bytes());
    msg.extend_from_slice(&0u32.to_ne_bytes());
    // struct rtmsg: family, dst_len, src_len, tos, table, protocol, scope, type; u32 flags.
    let dst_len = (octets.len() * 8) as u8;
    msg.extend_from_slice(&[family, dst_len, 0, 0, 0, 0, 0, 0]);
    msg.extend_from_slice(&0u32.to_ne_bytes());
    msg.extend_from_slice(&((4 + octets.len()) as u16).to_ne_bytes());
    msg.extend_from_slice(&RTA_DST.to_ne_bytes());
    msg.extend_from_slice(&octets);
    msg
}

fn new_addr_message(seq: u32, index: u32, host: &HostAddr) -> Vec<u8> {
    let (family, flags, octets): (u8, u8, Vec<u8>) = match host.addr {
        IpAddr::V4(a) => (libc::AF_INET as u8, 0, a.octets().to_vec()),
        IpAddr::V6(a) => (libc::AF_INET6 as u8, IFA_F_NODAD, a.octets().to_vec()),
    };
    let mut msg = Vec::with_capacity(64);
    // struct nlmsghdr; the length is patched in at the end.
    msg.extend_from_slice(&0u32.to_ne_bytes());
    msg.extend_from_slice(&RTM_NEWADDR.to_ne_bytes());
    let nl_flags = libc::NLM_F_REQUEST | libc::NLM_F_ACK | libc::NLM_F_CREATE | libc::NLM_F_EXCL;
    msg.extend_from_slice(&(nl_flags as u16).to_ne_bytes());
    msg.extend_from_slice(&seq.to_ne_bytes());
    msg.extend_from_slice(&0u32.to_ne_bytes());
    // struct ifaddrmsg
    msg.extend_from_slice(&[family, host.prefix_len, flags, RT_SCOPE_UNIVERSE]);
    msg.extend_from_slice(&index.to_ne_bytes());
    debug_assert_eq!(msg.len(), NLMSG_HDRLEN + IFADDRMSG_LEN);
    for kind in [IFA_LOCAL, IFA_ADDRESS] {
        // struct rtattr followed by the address (4 or 16 bytes: already 4-aligned).
        let len = 4 + octets.len() as u16;
        msg.extend_from_slice(&len.to_ne_bytes());
        msg.extend_from_slice(&kind.to_ne_bytes());
        msg.extend_from_slice(&octets);
    }
    let total = msg.len() as u32;
    if let Some(len) = msg.get_mut(..4) {
        len.copy_from_slice(&total.to_ne_bytes());
    }
    msg
}

/// Look through a datagram of netlink messages for the reply answering `seq`.
fn find_reply(mut buf: &[u8], seq: u32) -> Option<Reply> {
    while buf.len() >= NLMSG_HDRLEN {
        let len = u32::from_ne_bytes(buf.get(0..4)?.try_into().ok()?) as usize;
        let kind = u16::from_ne_bytes(buf.get(4..6)?.try_into().ok()?);
        let msg_seq = u32::from_ne_bytes(buf.get(8..12)?.try_into().ok()?);
        if len < NLMSG_HDRLEN {
            return None;
        }
        if kind == NLMSG_ERROR && msg_seq == seq {
            let errno = i32::from_ne_bytes(buf.get(16..20)?.try_into().ok()?);
            return Some(Reply::Ack(if errno == 0 {
                Ok(())
            } else {
                Err(io::Error::from_raw_os_error(errno.saturating_neg()))
            }));
        }
        if kind == RTM_NEWROUTE && msg_seq == seq {
            // rtm_type, the last byte before rtm_flags.
            let kind = *buf.get(NLMSG_HDRLEN + 7)?;
            return Some(Reply::Route { kind });
        }
        // Messages are 4-byte aligned.
        let next = len.checked_add(3)? & !3;
        buf = buf.get(next..)?;
    }
    None
}

/// The ack answering `seq`, if `buf` holds it.
#[cfg(test)]
fn find_ack(buf: &[u8], seq: u32) -> Option<io::Result<()>> {
    match find_reply(buf, seq)? {
        Reply::Ack(result) => Some(result),
        Reply::Route { .. } => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_address_message_asks_for_nodad() {
        let host: HostAddr = "2001:2::1/64".parse().unwrap();
        let msg = new_addr_message(7, 3, &host);
        assert_eq!(msg.len(), 16 + 8 + 2 * (4 + 16));
        assert_eq!(
            u32::from_ne_bytes(msg[0..4].try_into().unwrap()) as usize,
            msg.len()
        );
        assert_eq!(msg[16], libc::AF_INET6 as u8);
        assert_eq!(msg[17], 64);
        assert_eq!(msg[18], IFA_F_NODAD);
        assert_eq!(u32::from_ne_bytes(msg[20..24].try_into().unwrap()), 3);
    }

    #[test]
    fn ipv4_address_message_carries_local_and_address() {
        let host: HostAddr = "198.18.0.1/24".parse().unwrap();
        let msg = new_addr_message(1, 9, &host);
        assert_eq!(msg.len(), 16 + 8 + 2 * 8);
        assert_eq!(msg[18], 0, "no NODAD for IPv4");
        assert_eq!(&msg[28..32], &[198, 18, 0, 1]);
        assert_eq!(&msg[36..40], &[198, 18, 0, 1]);
    }

    fn error_message(seq: u32, errno: i32) -> Vec<u8> {
        let mut m = Vec::new();
        m.extend_from_slice(&36u32.to_ne_bytes());
        m.extend_from_slice(&NLMSG_ERROR.to_ne_bytes());
        m.extend_from_slice(&0u16.to_ne_bytes());
        m.extend_from_slice(&seq.to_ne_bytes());
        m.extend_from_slice(&0u32.to_ne_bytes());
        m.extend_from_slice(&errno.to_ne_bytes());
        m.extend_from_slice(&[0; 16]);
        m
    }

    #[test]
    fn route_get_message_asks_for_the_host_route() {
        let msg = get_route_message(9, "2001:2::1".parse().unwrap());
        assert_eq!(msg.len(), 16 + 12 + 4 + 16);
        assert_eq!(
            u32::from_ne_bytes(msg[0..4].try_into().unwrap()) as usize,
            msg.len()
        );
        assert_eq!(
            u16::from_ne_bytes(msg[4..6].try_into().unwrap()),
            RTM_GETROUTE
        );
        assert_eq!(&msg[16..18], &[libc::AF_INET6 as u8, 128]);
        assert_eq!(u16::from_ne_bytes(msg[30..32].try_into().unwrap()), RTA_DST);
        assert_eq!(
            msg[32..48],
            "2001:2::1".parse::<std::net::Ipv6Addr>().unwrap().octets()
        );
        let msg = get_route_message(9, "198.18.0.1".parse().unwrap());
        assert_eq!(&msg[16..18], &[libc::AF_INET as u8, 32]);
    }

    #[test]
    fn route_reply_gives_the_route_type() {
        let mut m = Vec::new();
        m.extend_from_slice(&28u32.to_ne_bytes());
        m.extend_from_slice(&RTM_NEWROUTE.to_ne_bytes());
        m.extend_from_slice(&0u16.to_ne_bytes());
        m.extend_from_slice(&3u32.to_ne_bytes());
        m.extend_from_slice(&0u32.to_ne_bytes());
        m.extend_from_slice(&[libc::AF_INET6 as u8, 128, 0, 0, 255, 2, 0, RTN_LOCAL]);
        m.extend_from_slice(&0u32.to_ne_bytes());
        assert!(matches!(
            find_reply(&m, 3),
            Some(Reply::Route { kind: RTN_LOCAL })
        ));
        assert!(find_reply(&m, 4).is_none());
        assert!(find_reply(&m[..20], 3).is_none(), "truncated");
    }

    #[test]
    fn ack_with_errno_becomes_that_error() {
        let msg = error_message(5, -libc::EEXIST);
        let err = find_ack(&msg, 5).unwrap().unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EEXIST));
        assert!(find_ack(&error_message(5, 0), 5).unwrap().is_ok());
    }

    #[test]
    fn ack_for_another_sequence_is_skipped_and_truncation_is_harmless() {
        let mut buf = error_message(4, 0);
        buf.extend_from_slice(&error_message(5, -libc::EPERM));
        let err = find_ack(&buf, 5).unwrap().unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EPERM));
        assert!(find_ack(&buf[..20], 5).is_none());
        assert!(find_ack(&[], 5).is_none());
    }
}
