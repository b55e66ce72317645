//! The socket API the library drives: synack's own (`synack::endpoint::Sockets`).

pub use synack::endpoint::{
    Readiness, Shutdown, SockOpt, SockOptName, SocketError, SocketHandle, SocketTcpInfo,
};
