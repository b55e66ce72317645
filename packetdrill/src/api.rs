//! TEMPORARY: a stand-in for `synack::endpoint::api` (issue 18, being written on main), with
//! the names of its contract (notes/API.md), so the harness builds before it lands. Every
//! call fails with `EOPNOTSUPP`. Replaced by `pub use synack::endpoint::{...}` at the merge.
#![allow(dead_code, clippy::unused_self)]

use std::net::SocketAddr;

use synack::endpoint::Endpoint;
use synack::time::Instant;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SocketHandle(u32);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SocketError {
    WouldBlock,
    InProgress,
    Already,
    AlreadyConnected,
    NotSupported,
}

impl SocketError {
    pub fn errno(self) -> i32 {
        match self {
            SocketError::WouldBlock => libc::EAGAIN,
            SocketError::InProgress => libc::EINPROGRESS,
            SocketError::Already => libc::EALREADY,
            SocketError::AlreadyConnected => libc::EISCONN,
            SocketError::NotSupported => libc::EOPNOTSUPP,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shutdown {
    Read,
    Write,
    Both,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Readiness {
    pub readable: bool,
    pub writable: bool,
    pub error: bool,
    pub hangup: bool,
    pub read_hangup: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SockOpt {
    ReuseAddr(bool),
    NoDelay(bool),
    RcvBuf(usize),
    SndBuf(usize),
    Linger(Option<u32>),
    MaxSeg(u16),
    UserTimeout(u32),
    KeepAlive(bool),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SockOptName {
    ReuseAddr,
    NoDelay,
    RcvBuf,
    SndBuf,
    Linger,
    MaxSeg,
    UserTimeout,
    KeepAlive,
}

#[derive(Clone, Copy, Debug, Default)]
pub struct SocketTcpInfo {
    pub state: u8,
    pub ca_state: u8,
    pub retransmits: u8,
    pub backoff: u8,
    pub options: u8,
    pub snd_wscale: u8,
    pub rcv_wscale: u8,
    pub rto_us: u32,
    pub ato_us: u32,
    pub snd_mss: u32,
    pub rcv_mss: u32,
    pub unacked: u32,
    pub sacked: u32,
    pub lost: u32,
    pub retrans: u32,
    pub pmtu: u32,
    pub rcv_ssthresh: u32,
    pub rtt_us: u32,
    pub rttvar_us: u32,
    pub snd_ssthresh: u32,
    pub snd_cwnd: u32,
    pub advmss: u32,
    pub reordering: u32,
    pub total_retrans: u32,
}

pub struct Sockets<'a> {
    ep: &'a mut Endpoint,
}

pub trait SocketsExt {
    fn sockets(&mut self) -> Sockets<'_>;
}

impl SocketsExt for Endpoint {
    fn sockets(&mut self) -> Sockets<'_> {
        Sockets { ep: self }
    }
}

type Res<T> = Result<T, SocketError>;
const NO: SocketError = SocketError::NotSupported;

impl Sockets<'_> {
    pub fn socket(&mut self, _family_v6: bool) -> SocketHandle {
        SocketHandle(0)
    }
    pub fn bind(&mut self, _h: SocketHandle, _addr: SocketAddr) -> Res<()> {
        Err(NO)
    }
    pub fn listen(&mut self, _h: SocketHandle, _backlog: u32) -> Res<()> {
        Err(NO)
    }
    pub fn accept(&mut self, _h: SocketHandle) -> Res<(SocketHandle, SocketAddr)> {
        Err(NO)
    }
    pub fn connect(&mut self, _now: Instant, _h: SocketHandle, _remote: SocketAddr) -> Res<()> {
        Err(NO)
    }
    pub fn recv(&mut self, _h: SocketHandle, _buf: &mut [u8], _peek: bool) -> Res<usize> {
        Err(NO)
    }
    pub fn send(&mut self, _h: SocketHandle, _data: &[u8]) -> Res<usize> {
        Err(NO)
    }
    pub fn shutdown(&mut self, _h: SocketHandle, _how: Shutdown) -> Res<()> {
        Err(NO)
    }
    pub fn close(&mut self, _h: SocketHandle) -> Res<()> {
        Ok(())
    }
    pub fn readiness(&mut self, _h: SocketHandle) -> Readiness {
        let _ = &self.ep;
        Readiness::default()
    }
    pub fn take_error(&mut self, _h: SocketHandle) -> Option<SocketError> {
        None
    }
    pub fn set_option(&mut self, _h: SocketHandle, _opt: SockOpt) -> Res<()> {
        Err(NO)
    }
    pub fn get_option(&mut self, _h: SocketHandle, _name: SockOptName) -> Res<SockOpt> {
        Err(NO)
    }
    pub fn tcp_info(&mut self, _h: SocketHandle) -> Res<SocketTcpInfo> {
        Err(NO)
    }
    pub fn local_addr(&mut self, _h: SocketHandle) -> Res<SocketAddr> {
        Err(NO)
    }
    pub fn peer_addr(&mut self, _h: SocketHandle) -> Res<SocketAddr> {
        Err(NO)
    }
}
