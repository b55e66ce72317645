//! The application of a connection that belongs to a socket of the socket API
//! (`crate::endpoint::Sockets`): the program behind the socket reads and writes through the
//! endpoint, so polling does nothing here; it only remembers whether a socket still holds
//! the connection.

use crate::endpoint::SocketHandle;
use crate::tcp::Socket;

/// A socket's connection: which socket holds it (none yet: it waits in its listener's accept
/// queue; none any more: the socket was closed and the connection ends on its own).
#[derive(Debug, Default)]
pub struct SocketApp {
    handle: Option<SocketHandle>,
    closed: bool,
}

impl SocketApp {
    pub fn held_by(handle: SocketHandle) -> SocketApp {
        SocketApp {
            handle: Some(handle),
            closed: false,
        }
    }

    /// The socket that holds the connection.
    pub fn handle(&self) -> Option<SocketHandle> {
        self.handle
    }

    /// `accept` handed the connection to `handle`.
    pub fn attach(&mut self, handle: SocketHandle) {
        self.handle = Some(handle);
    }

    /// The socket was closed: nobody reads any more (the endpoint orphans the connection).
    pub fn detach(&mut self) {
        self.handle = None;
        self.closed = true;
    }

    /// The program drives the socket itself: nothing to do.
    pub fn poll(&mut self, _sock: &mut dyn Socket) {}

    pub fn is_closed(&self) -> bool {
        self.closed
    }
}
