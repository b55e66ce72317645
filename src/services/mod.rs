//! The built-in applications: echo (RFC 862), discard (RFC 863), chargen (RFC 864), http.
//!
//! A service is a pure state machine over a [`Socket`]: the endpoint calls [`App::poll`] after
//! anything happens on the connection, and the service reads what it can, writes what fits, and
//! closes when it is done. Services never block and never allocate per packet.

use crate::tcp::Socket;
use std::fmt;
use std::str::FromStr;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ServiceKind {
    Echo,
    Discard,
    Chargen,
    Http,
}

impl ServiceKind {
    pub const fn name(self) -> &'static str {
        match self {
            ServiceKind::Echo => "echo",
            ServiceKind::Discard => "discard",
            ServiceKind::Chargen => "chargen",
            ServiceKind::Http => "http",
        }
    }
}

impl fmt::Display for ServiceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for ServiceKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "echo" => Ok(ServiceKind::Echo),
            "discard" => Ok(ServiceKind::Discard),
            "chargen" => Ok(ServiceKind::Chargen),
            "http" => Ok(ServiceKind::Http),
            other => Err(format!(
                "unknown service '{other}' (choose echo, discard, chargen or http)"
            )),
        }
    }
}

/// One connection's application state.
pub struct App {
    _private: (),
}

impl App {
    pub fn new(kind: ServiceKind) -> App {
        let _ = kind;
        todo!("App::new")
    }

    /// Make whatever progress the socket allows: read, write, close.
    pub fn poll(&mut self, sock: &mut dyn Socket) {
        let _ = sock;
        todo!("App::poll")
    }
}
