//! Resource limits (RFC 4987 defences and memory bounds) and the per-listener queues.
//!
//! - **Half-open queue** (`--backlog`): connections of a listener in SYN-RECEIVED. When it is
//!   full, further SYNs are answered with SYN cookies and create no state.
//! - **Accept queue** (also `--backlog`, as Linux's listen(2) backlog bounds both): connections
//!   whose handshake has completed but whose service has not run yet. The endpoint runs the
//!   services after every batch of packets, so this queue only fills within one batch; when it
//!   is full, a final ACK is dropped (the peer retransmits it, or its data), as Linux drops it
//!   on accept-queue overflow.
//! - **Connections** (`--max-connections`): the table's size, every state but TIME-WAIT
//!   included. Past it a SYN is dropped silently, as Linux drops SYNs when it cannot queue
//!   them: the client retries and may get in later, rather than being refused outright.
//! - **TIME-WAIT** (`--max-time-wait`): connections in TIME-WAIT are counted apart, as Linux
//!   keeps them as small `tcp_timewait_sock`s capped by `tcp_max_tw_buckets`. They hold no
//!   buffers; past the cap a connection that would enter TIME-WAIT is closed at once instead
//!   (`time_wait_overflow`, Linux's `TCPTimeWaitOverflow`), so a burst of short connections
//!   never blocks new SYNs.
//! - **Buffer memory** (`--max-buffer-memory`): see `tcp::memory`.

use crate::tcp::KeepAlive;
use crate::time::Duration;

/// The limits of an endpoint. The defaults are the command line's.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Per listener: the most half-open connections, and the most established but not yet
    /// accepted ones.
    pub backlog: usize,
    /// The most connections (any state but TIME-WAIT) the table holds.
    pub max_connections: usize,
    /// The most connections in TIME-WAIT.
    pub max_time_wait: usize,
    /// The most bytes all connections together may hold in their queues (`tcp::memory`).
    pub max_buffer_memory: usize,
    /// Keep-alive idle time for every listener, unless `keepalive_ports` names the port.
    pub keepalive: Option<Duration>,
    pub keepalive_ports: Vec<(u16, Duration)>,
    /// `--max-exec`: the most connections to `exec:` ports at once (each runs a program).
    /// Past it a SYN to an exec port is answered with RST and counted (`exec_limit`).
    pub max_exec: usize,
}

impl Limits {
    pub const DEFAULT_BACKLOG: usize = 1024;
    pub const DEFAULT_MAX_CONNECTIONS: usize = 65536;
    pub const DEFAULT_MAX_TIME_WAIT: usize = 65536;
    pub const DEFAULT_MAX_BUFFER_MEMORY: usize = 512 << 20;
    pub const DEFAULT_MAX_EXEC: usize = 1024;

    /// The keep-alive settings for connections to `port`, if any.
    pub fn keepalive_for(&self, port: u16) -> Option<KeepAlive> {
        self.keepalive_ports
            .iter()
            .find(|(p, _)| *p == port)
            .map(|(_, d)| *d)
            .or(self.keepalive)
            .map(KeepAlive::after)
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            backlog: Self::DEFAULT_BACKLOG,
            max_connections: Self::DEFAULT_MAX_CONNECTIONS,
            max_time_wait: Self::DEFAULT_MAX_TIME_WAIT,
            max_buffer_memory: Self::DEFAULT_MAX_BUFFER_MEMORY,
            keepalive: None,
            keepalive_ports: Vec::new(),
            max_exec: Self::DEFAULT_MAX_EXEC,
        }
    }
}

/// Where a connection sits in its listener's queues. (Listener indexes are `u32`s, as in
/// `Entry::listener`: 8 bytes in every connection, not 16.)
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Queued {
    /// Not counted in any queue (accepted, or not from a listener).
    No,
    /// In listener `i`'s half-open queue (SYN-RECEIVED).
    HalfOpen(u32),
    /// In listener `i`'s accept queue (established, service not yet run).
    Accept(u32),
    /// In SYN-RECEIVED after a Fast Open SYN (RFC 7413 §5.1: bounded per listener by its
    /// backlog); not in the half-open queue, as Linux queues such a connection for accept.
    FastOpen(u32),
}

/// Which queue, without the listener (an entry keeps its listener apart: `Entry::queued`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum QueueKind {
    No,
    HalfOpen,
    Accept,
    FastOpen,
}

impl QueueKind {
    pub fn of(q: Queued) -> QueueKind {
        match q {
            Queued::No => QueueKind::No,
            Queued::HalfOpen(_) => QueueKind::HalfOpen,
            Queued::Accept(_) => QueueKind::Accept,
            Queued::FastOpen(_) => QueueKind::FastOpen,
        }
    }
}

/// Per-listener queue lengths, indexed like the endpoint's listeners.
#[derive(Debug, Default)]
pub(super) struct ListenQueues {
    half_open: Vec<usize>,
    accept: Vec<usize>,
    fast_open: Vec<usize>,
}

impl ListenQueues {
    pub fn new(listeners: usize) -> Self {
        ListenQueues {
            half_open: vec![0; listeners],
            accept: vec![0; listeners],
            fast_open: vec![0; listeners],
        }
    }

    /// Room for `listeners` listeners (a socket's `listen` adds one).
    pub fn grow(&mut self, listeners: usize) {
        if self.half_open.len() < listeners {
            self.half_open.resize(listeners, 0);
            self.accept.resize(listeners, 0);
            self.fast_open.resize(listeners, 0);
        }
    }

    pub fn half_open(&self, listener: usize) -> usize {
        self.half_open.get(listener).copied().unwrap_or(0)
    }

    /// Fast Open connections of `listener` still in SYN-RECEIVED.
    pub fn fast_open(&self, listener: usize) -> usize {
        self.fast_open.get(listener).copied().unwrap_or(0)
    }

    pub fn accept(&self, listener: usize) -> usize {
        self.accept.get(listener).copied().unwrap_or(0)
    }

    /// Move a connection from `from` to `to`, keeping the counts right.
    pub fn moved(&mut self, from: Queued, to: Queued) {
        if from == to {
            return;
        }
        match from {
            Queued::HalfOpen(i) => dec(&mut self.half_open, i),
            Queued::Accept(i) => dec(&mut self.accept, i),
            Queued::FastOpen(i) => dec(&mut self.fast_open, i),
            Queued::No => {}
        }
        match to {
            Queued::HalfOpen(i) => inc(&mut self.half_open, i),
            Queued::Accept(i) => inc(&mut self.accept, i),
            Queued::FastOpen(i) => inc(&mut self.fast_open, i),
            Queued::No => {}
        }
    }
}

fn inc(v: &mut [usize], i: u32) {
    if let Some(n) = v.get_mut(i as usize) {
        *n += 1;
    }
}

fn dec(v: &mut [usize], i: u32) {
    if let Some(n) = v.get_mut(i as usize) {
        *n = n.saturating_sub(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keepalive_for_a_port_overrides_the_default() {
        let l = Limits {
            keepalive: Some(Duration::from_secs(600)),
            keepalive_ports: vec![(7, Duration::from_secs(30))],
            ..Limits::default()
        };
        assert_eq!(l.keepalive_for(7).unwrap().idle, Duration::from_secs(30));
        assert_eq!(
            l.keepalive_for(7).unwrap().interval,
            Duration::from_secs(30)
        );
        assert_eq!(l.keepalive_for(80).unwrap().idle, Duration::from_secs(600));
        assert_eq!(
            l.keepalive_for(80).unwrap().interval,
            Duration::from_secs(75)
        );
        assert_eq!(Limits::default().keepalive_for(7), None);
    }

    #[test]
    fn queue_moves_keep_counts() {
        let mut q = ListenQueues::new(2);
        q.moved(Queued::No, Queued::HalfOpen(1));
        q.moved(Queued::No, Queued::HalfOpen(1));
        assert_eq!((q.half_open(1), q.accept(1)), (2, 0));
        q.moved(Queued::HalfOpen(1), Queued::Accept(1));
        assert_eq!((q.half_open(1), q.accept(1)), (1, 1));
        q.moved(Queued::Accept(1), Queued::No);
        q.moved(Queued::HalfOpen(1), Queued::No);
        assert_eq!((q.half_open(1), q.accept(1), q.half_open(0)), (0, 0, 0));
        q.moved(Queued::No, Queued::HalfOpen(9));
    }
}
