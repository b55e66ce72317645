//! packetdrill's socket calls on synack's socket API: descriptors, addresses, flags and
//! errno, as Linux's system calls have them.
//!
//! Every call returns `Err(errno)` where the system call would return -1. A call that would
//! block on a blocking descriptor returns `EAGAIN` like a nonblocking one: src/ffi.rs waits
//! (on a condition variable, as a thread blocked in the kernel would) and calls again.

use std::collections::BTreeMap;
use std::net::{SocketAddr, SocketAddrV6};
use std::path::PathBuf;

use crate::api::{
    Readiness, Shutdown, SockOpt, SockOptName, SocketError, SocketHandle, SocketTcpInfo,
};
use crate::clock::Clocked;
use crate::sysctl::{self, Applied};
use synack::time::{Duration, Instant};

pub type Errno = i32;
pub type SysResult<T> = Result<T, Errno>;

/// The first descriptor number handed out: far above the process's real ones, so a
/// descriptor of ours is never mistaken for one of packetdrill's files.
pub const FIRST_FD: i32 = 1000;

/// One descriptor.
struct Fd {
    handle: SocketHandle,
    /// AF_INET6: addresses are reported as IPv6 (IPv4 peers as IPv4-mapped).
    v6: bool,
    nonblocking: bool,
}

/// The library's state: the endpoint on its clock, and the descriptors.
pub struct Stack {
    pub clock: Clocked,
    fds: BTreeMap<i32, Fd>,
    next_fd: i32,
    sysctl_file: Option<PathBuf>,
    sysctl_seen: usize,
}

fn err(e: SocketError) -> Errno {
    e.errno()
}

/// An address as a socket of this family reports it: IPv4 on an AF_INET6 socket is mapped.
pub fn map_for(v6: bool, addr: SocketAddr) -> SocketAddr {
    match addr {
        SocketAddr::V4(v4) if v6 => {
            SocketAddr::V6(SocketAddrV6::new(v4.ip().to_ipv6_mapped(), v4.port(), 0, 0))
        }
        _ => addr,
    }
}

impl Stack {
    pub fn new(clock: Clocked, sysctl_file: Option<PathBuf>) -> Self {
        Stack {
            clock,
            fds: BTreeMap::new(),
            next_fd: FIRST_FD,
            sysctl_file,
            sysctl_seen: 0,
        }
    }

    fn fd(&self, fd: i32) -> SysResult<&Fd> {
        self.fds.get(&fd).ok_or(libc::EBADF)
    }

    fn handle(&self, fd: i32) -> SysResult<SocketHandle> {
        self.fd(fd).map(|f| f.handle)
    }

    /// Whether a call that would block on `fd` should wait (a blocking descriptor).
    pub fn blocks(&self, fd: i32) -> bool {
        self.fds.get(&fd).is_some_and(|f| !f.nonblocking)
    }

    fn add(&mut self, handle: SocketHandle, v6: bool, nonblocking: bool) -> i32 {
        let fd = self.next_fd;
        self.next_fd += 1;
        self.fds.insert(
            fd,
            Fd {
                handle,
                v6,
                nonblocking,
            },
        );
        fd
    }

    /// Apply the scripts' sysctl settings written since the last call (src/sysctl.rs): before
    /// every socket call and every packet in, so a setting is in force from the next one.
    pub fn apply_sysctls(&mut self) {
        let Some(path) = &self.sysctl_file else {
            return;
        };
        let Ok(text) = std::fs::read_to_string(path) else {
            return;
        };
        let lines: Vec<&str> = text.lines().collect();
        if lines.len() <= self.sysctl_seen {
            return;
        }
        for line in &lines[self.sysctl_seen..] {
            match sysctl::apply(self.clock.ep.tcp_config_mut(), line) {
                Applied::Mapped(what) => {
                    crate::note(&format!("sysctl {line}: mapped onto synack's {what}"));
                }
                Applied::Ignored(why) => crate::note(&format!("sysctl {line}: ignored ({why})")),
                Applied::FastOpenKey(key) => {
                    self.clock.ep.set_fast_open_key(key);
                    crate::note(&format!(
                        "sysctl {line}: mapped onto synack's Fast Open key"
                    ));
                }
            }
        }
        self.sysctl_seen = lines.len();
    }

    /// After every call: send what it made due.
    pub fn settle(&mut self) {
        self.clock.poll();
    }

    pub fn socket(&mut self, domain: i32, ty: i32, protocol: i32) -> SysResult<i32> {
        let v6 = match domain {
            libc::AF_INET => false,
            libc::AF_INET6 => true,
            _ => return Err(libc::EAFNOSUPPORT),
        };
        let flags = libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC;
        if ty & !flags != libc::SOCK_STREAM {
            return Err(libc::ESOCKTNOSUPPORT);
        }
        if protocol != 0 && protocol != libc::IPPROTO_TCP {
            return Err(libc::EPROTONOSUPPORT);
        }
        let handle = self.clock.ep.sockets().socket(v6);
        Ok(self.add(handle, v6, ty & libc::SOCK_NONBLOCK != 0))
    }

    pub fn bind(&mut self, fd: i32, addr: SocketAddr) -> SysResult<()> {
        let h = self.handle(fd)?;
        self.clock.ep.sockets().bind(h, addr).map_err(err)
    }

    pub fn listen(&mut self, fd: i32, backlog: i32) -> SysResult<()> {
        let h = self.handle(fd)?;
        let backlog = usize::try_from(backlog).unwrap_or(0);
        self.clock.ep.sockets().listen(h, backlog).map_err(err)
    }

    /// accept: the new descriptor (blocking, as Linux's accept() makes it) and the peer.
    pub fn accept(&mut self, fd: i32) -> SysResult<(i32, SocketAddr)> {
        let (h, v6) = self.fd(fd).map(|f| (f.handle, f.v6))?;
        let (child, peer) = self.clock.ep.sockets().accept(h).map_err(err)?;
        Ok((self.add(child, v6, false), map_for(v6, peer)))
    }

    /// connect: `EINPROGRESS`, then `EALREADY` while the handshake runs; 0 once established.
    pub fn connect(&mut self, fd: i32, remote: SocketAddr) -> SysResult<()> {
        let h = self.handle(fd)?;
        let now = self.clock.now();
        self.clock.ep.sockets().connect(now, h, remote).map_err(err)
    }

    pub fn recv(&mut self, fd: i32, buf: &mut [u8], flags: i32) -> SysResult<usize> {
        let h = self.handle(fd)?;
        let peek = flags & libc::MSG_PEEK != 0;
        self.clock.ep.sockets().recv(h, buf, peek).map_err(err)
    }

    pub fn send(&mut self, fd: i32, data: &[u8]) -> SysResult<usize> {
        let h = self.handle(fd)?;
        self.clock.ep.sockets().send(h, data).map_err(err)
    }

    pub fn shutdown(&mut self, fd: i32, how: i32) -> SysResult<()> {
        let h = self.handle(fd)?;
        let how = match how {
            libc::SHUT_RD => Shutdown::Read,
            libc::SHUT_WR => Shutdown::Write,
            libc::SHUT_RDWR => Shutdown::Both,
            _ => return Err(libc::EINVAL),
        };
        self.clock.ep.sockets().shutdown(h, how).map_err(err)
    }

    pub fn close(&mut self, fd: i32) -> SysResult<()> {
        let f = self.fds.remove(&fd).ok_or(libc::EBADF)?;
        self.clock.ep.sockets().close(f.handle).map_err(err)
    }

    pub fn readiness(&mut self, fd: i32) -> SysResult<Readiness> {
        let h = self.handle(fd)?;
        Ok(self.clock.ep.sockets().readiness(h))
    }

    /// `poll`'s revents for one descriptor (POLLNVAL if it is not ours).
    pub fn revents(&mut self, fd: i32, events: i16) -> i16 {
        let Ok(r) = self.readiness(fd) else {
            return libc::POLLNVAL;
        };
        let mut revents = 0;
        if r.readable {
            revents |= libc::POLLIN | libc::POLLRDNORM;
        }
        if r.writable {
            revents |= libc::POLLOUT | libc::POLLWRNORM;
        }
        if r.read_hangup {
            revents |= libc::POLLRDHUP;
        }
        // POLLERR and POLLHUP are reported whether asked for or not.
        revents &= events;
        if r.error {
            revents |= libc::POLLERR;
        }
        if r.hangup {
            revents |= libc::POLLHUP;
        }
        revents
    }

    pub fn nonblocking(&self, fd: i32) -> SysResult<bool> {
        self.fd(fd).map(|f| f.nonblocking)
    }

    pub fn set_nonblocking(&mut self, fd: i32, on: bool) -> SysResult<()> {
        let f = self.fds.get_mut(&fd).ok_or(libc::EBADF)?;
        f.nonblocking = on;
        Ok(())
    }

    /// FIONREAD / SIOCINQ (bytes received, not yet read) and SIOCOUTQ (bytes sent, not yet
    /// acknowledged).
    pub fn queued(&mut self, fd: i32) -> SysResult<(usize, usize)> {
        let h = self.handle(fd)?;
        self.clock.ep.sockets().queued(h).map_err(err)
    }

    pub fn set_option(&mut self, fd: i32, opt: SockOpt) -> SysResult<()> {
        let h = self.handle(fd)?;
        self.clock.ep.sockets().set_option(h, opt).map_err(err)
    }

    pub fn get_option(&mut self, fd: i32, name: SockOptName) -> SysResult<SockOpt> {
        let h = self.handle(fd)?;
        self.clock.ep.sockets().get_option(h, name).map_err(err)
    }

    /// SO_ERROR: the pending error's errno (cleared), or 0.
    pub fn take_error(&mut self, fd: i32) -> SysResult<i32> {
        let h = self.handle(fd)?;
        let pending = self.clock.ep.sockets().take_error(h).map_err(err)?;
        Ok(pending.map_or(0, err))
    }

    pub fn tcp_info(&mut self, fd: i32) -> SysResult<SocketTcpInfo> {
        let h = self.handle(fd)?;
        let now = self.clock.now();
        self.clock.ep.sockets().tcp_info(h, now).map_err(err)
    }

    pub fn peer_addr(&mut self, fd: i32) -> SysResult<SocketAddr> {
        let (h, v6) = self.fd(fd).map(|f| (f.handle, f.v6))?;
        let addr = self.clock.ep.sockets().peer_addr(h).map_err(err)?;
        Ok(map_for(v6, addr))
    }

    /// The virtual time, for `poll`'s timeout.
    pub fn now(&self) -> Instant {
        self.clock.now()
    }

    pub fn deadline_after(&self, millis: i32) -> Option<Instant> {
        u64::try_from(millis)
            .ok()
            .map(|ms| self.clock.now() + Duration::from_millis(ms))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use synack::endpoint::{Endpoint, EndpointConfig};

    #[test]
    fn sysctl_lines_written_between_calls_are_applied_once_each() {
        let path = std::env::temp_dir().join(format!("synack-pd-sysctl-{}", std::process::id()));
        std::fs::write(&path, "net.ipv4.tcp_timestamps=0\n").unwrap();
        let ep = Endpoint::new(EndpointConfig::default(), [7; 16], crate::clock::START);
        let mut stack = Stack::new(Clocked::new(ep), Some(path.clone()));
        stack.apply_sysctls();
        assert!(!stack.clock.ep.tcp_config_mut().timestamps);
        // A later setting is applied; the earlier line is not read again.
        stack.clock.ep.tcp_config_mut().timestamps = true;
        std::fs::write(&path, "net.ipv4.tcp_timestamps=0\nnet.ipv4.tcp_sack=0\n").unwrap();
        stack.apply_sysctls();
        assert!(stack.clock.ep.tcp_config_mut().timestamps);
        assert!(!stack.clock.ep.tcp_config_mut().sack);
        std::fs::remove_file(path).unwrap();
    }

    #[test]
    fn an_inet6_socket_reports_an_ipv4_peer_as_ipv4_mapped() {
        let mapped: SocketAddr = "[::ffff:198.18.0.1]:8080".parse().unwrap();
        let plain: SocketAddr = "198.18.0.1:8080".parse().unwrap();
        assert_eq!(map_for(true, plain), mapped);
        assert_eq!(map_for(false, plain), plain);
        let v6: SocketAddr = "[2001:2::1]:8080".parse().unwrap();
        assert_eq!(map_for(true, v6), v6);
    }
}
