//! The endpoint's side of `exec:` connections: it tells the driver when a program must be
//! started or stopped, and lets the driver move bytes through the connection's [`Relay`].
//! The endpoint itself stays sans-IO: the driver owns the processes and their pipes.

use super::{Endpoint, Entry};
use crate::services::{App, ExecSpec, Relay, ServiceKind};
use crate::tcp::ResetCause;
use crate::wire::Quad;

/// What the driver must do for an `exec:` connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RelayEvent {
    /// The connection reached ESTABLISHED: start its program.
    Start { quad: Quad, spec: &'static ExecSpec },
    /// The connection is gone. `reset`: it ended in a reset (the client's RST, our abort, a
    /// time-out), so its program is killed; otherwise its pipes are just closed.
    End { quad: Quad, reset: bool },
}

impl Endpoint {
    /// The program starts and stops the driver owes since the last call.
    pub fn take_relay_events(&mut self) -> Vec<RelayEvent> {
        std::mem::take(&mut self.relay_events)
    }

    /// Whether any start or stop is waiting for the driver (no allocation).
    pub fn has_relay_events(&self) -> bool {
        !self.relay_events.is_empty()
    }

    /// The relay of the `exec:` connection `quad`, for the driver to move bytes through.
    /// Call [`Endpoint::relay_changed`] after moving any.
    pub fn relay_mut(&mut self, quad: &Quad) -> Option<&mut Relay> {
        let id = *self.table.get(quad)?;
        super::entry_mut(&mut self.slots, id)?.app.relay_mut()
    }

    /// The driver moved bytes through `quad`'s relay (or told it of an end): run the
    /// connection at the next [`Endpoint::poll`].
    pub fn relay_changed(&mut self, quad: &Quad) {
        if let Some(&id) = self.table.get(quad) {
            self.mark_dirty(id);
        }
    }

    /// A program could not be started: count it; its connection is reset.
    pub fn relay_spawn_failed(&mut self, quad: &Quad) {
        self.counters.exec_spawn_failures += 1;
        if let Some(relay) = self.relay_mut(quad) {
            relay.peer_failed();
        }
        self.relay_changed(quad);
    }

    /// An `exec:` connection left the table: tell the driver.
    pub(super) fn relay_removed(&mut self, entry: &Entry) {
        if let App::Relay(kind, relay) = &entry.app {
            if let ServiceKind::Exec(_) = kind {
                self.exec_count = self.exec_count.saturating_sub(1);
            }
            if entry.counted_established {
                let reset = relay.aborted()
                    || matches!(
                        entry.conn.reset_cause(),
                        Some(ResetCause::PeerReset | ResetCause::Aborted | ResetCause::TimedOut)
                    );
                self.relay_events.push(RelayEvent::End {
                    quad: entry.conn.quad(),
                    reset,
                });
            }
        }
    }
}
