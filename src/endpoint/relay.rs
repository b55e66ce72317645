//! The endpoint's side of `exec:` connections: it tells the driver when a program must be
//! started or stopped, and lets the driver move bytes through the connection's relay.
//! The endpoint itself stays sans-IO: the driver owns the processes and their pipes.

use super::{Endpoint, Entry, Transmit};
use crate::services::{App, ExecSpec, RelayIo, ServiceKind, UpstreamTarget};
use crate::tcp::{Connection, ResetCause, SeqNum, Socket, State, rst_reply};
use crate::time::Instant;
use crate::wire::{self, IcmpErrorKind, Quad, TcpSegment};

/// A SYN to a `forward:` port held until the upstream connect succeeds or fails.
#[derive(Clone, Copy, Debug)]
pub(super) struct PendingSyn {
    /// The SYN, without any data it carried (the client sends it again).
    syn: TcpSegment<'static>,
    listener: usize,
    /// It reopens a TIME-WAIT connection: the ISS must lie above this (MAY-2).
    iss_floor: Option<SeqNum>,
}

/// What the driver must do for an `exec:` or `forward:` connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RelayEvent {
    /// The connection reached ESTABLISHED: start its program.
    Start { quad: Quad, spec: &'static ExecSpec },
    /// A SYN came for a `forward:`, `direct` or `socks5:` port: connect to the upstream,
    /// then answer with [`Endpoint::forward_connected`], [`Endpoint::forward_refused`] or
    /// [`Endpoint::forward_failed`]. The SYN waits unanswered until then.
    Connect { quad: Quad, target: UpstreamTarget },
    /// The connection is gone. `reset`: it ended in a reset (the client's RST, our abort, a
    /// time-out), so its program is killed or its upstream aborted (SO_LINGER 0); otherwise
    /// its pipes or socket are just closed.
    End { quad: Quad, reset: bool },
}

impl Endpoint {
    /// The program starts and stops the driver owes since the last call.
    pub fn take_relay_events(&mut self) -> Vec<RelayEvent> {
        std::mem::take(&mut self.relay_events)
    }

    /// The `exec:` and `forward:` connections that ran since the last call (appended to
    /// `into`): data came or left, an ACK freed room, a FIN arrived, or the driver moved
    /// bytes. Only these, and the pipes and sockets mio reports, need the driver's look;
    /// the others have nothing to move (no allocation once `into` has grown).
    pub fn take_relay_ready(&mut self, into: &mut Vec<Quad>) {
        for quad in self.relay_ready.drain(..) {
            if let Some(id) = super::lookup(&self.table, &self.slots, &quad)
                && let Some(entry) = super::entry_mut(&mut self.slots, id)
            {
                entry.relay_ready = false;
            }
            into.push(quad);
        }
    }

    /// Whether any start or stop is waiting for the driver (no allocation).
    pub fn has_relay_events(&self) -> bool {
        !self.relay_events.is_empty()
    }

    /// The relay of the `exec:` or `forward:` connection `quad` with the connection itself,
    /// for the driver to move bytes between its queues and the peer stream. Call
    /// [`Endpoint::relay_changed`] after moving any.
    pub fn relay_io(&mut self, quad: &Quad) -> Option<RelayIo<'_>> {
        let id = self.lookup(quad)?;
        let entry = super::entry_mut(&mut self.slots, id)?;
        let relay = entry.app.relay_mut()?;
        Some(RelayIo::new(relay, &mut entry.conn))
    }

    /// The driver moved bytes through `quad`'s relay (or told it of an end): run the
    /// connection at the next [`Endpoint::poll`].
    pub fn relay_changed(&mut self, quad: &Quad) {
        if let Some(id) = self.lookup(quad) {
            self.mark_dirty(id);
        }
    }

    /// A program could not be started: count it; its connection is reset.
    pub fn relay_spawn_failed(&mut self, quad: &Quad) {
        self.counters.exec_spawn_failures += 1;
        if let Some(mut io) = self.relay_io(quad) {
            io.peer_failed();
        }
        self.relay_changed(quad);
    }

    /// A SYN for the `forward:`, `direct` or `socks5:` listener `listener`: hold it and ask
    /// the driver to connect.
    /// A retransmitted SYN while the connect is under way is absorbed. Returns false when
    /// the pending table is full (the SYN is then dropped).
    pub(super) fn hold_syn(
        &mut self,
        quad: Quad,
        seg: &TcpSegment<'_>,
        listener: usize,
        target: UpstreamTarget,
        iss_floor: Option<SeqNum>,
    ) {
        if self.pending.contains_key(&quad) {
            self.counters.forward_syn_absorbed += 1;
            return;
        }
        // Bounded: as many connects under way as one listener's backlog.
        if self.pending.len() >= self.limits.backlog {
            self.counters.forward_pending_full += 1;
            self.counters.listen_drops += 1;
            return;
        }
        let syn = TcpSegment {
            payload: &[],
            ..*seg
        };
        self.pending.insert(
            quad,
            PendingSyn {
                syn,
                listener,
                iss_floor,
            },
        );
        self.relay_events.push(RelayEvent::Connect { quad, target });
    }

    /// The upstream connect for `quad` succeeded: answer the held SYN (SYN,ACK). Returns
    /// false if there is nothing to answer any more (the endpoint is shutting down, or the
    /// table is full): the driver then closes the upstream socket.
    pub fn forward_connected(&mut self, now: Instant, quad: &Quad) -> bool {
        let Some(p) = self.pending.remove(quad) else {
            return false;
        };
        if !self.accepting || self.open_connections() >= self.limits.max_connections {
            self.counters.connection_limit += 1;
            return false;
        }
        let mut iss = self.isn.isn(now, quad);
        // RFC 9293 §3.10.7.4 MAY-2: a reopened connection's ISS lies above the old SND.NXT.
        if let Some(floor) = p.iss_floor
            && !iss.gt(floor)
        {
            iss = floor.add(1 << 16);
        }
        let mss = self.local_mss(quad);
        let conn = Connection::accept(now, *quad, &p.syn, iss, mss, &self.tcp);
        self.counters.passive_opens += 1;
        self.admit(now, conn, p.listener);
        true
    }

    /// The upstream refused (RST): the client's SYN is answered with RST, so it sees
    /// "connection refused" too. Sent at the next [`Endpoint::poll`].
    pub fn forward_refused(&mut self, quad: &Quad) {
        if self.refuse_held_syn(quad, None) {
            self.counters.forward_refused += 1;
        }
    }

    /// Answer the held SYN for `quad` at the next poll: RST, or the ICMP error `icmp`.
    /// False if no SYN is held for it (answered, or given up, already).
    fn refuse_held_syn(&mut self, quad: &Quad, icmp: Option<IcmpErrorKind>) -> bool {
        let Some(p) = self.pending.remove(quad) else {
            return false;
        };
        self.refusals.push((*quad, p.syn, icmp));
        true
    }

    /// The SYN for `quad` came from one of synack's own upstream sockets, still connecting:
    /// the relay loops back into its own interface. It is refused with RST, which fails that
    /// upstream's connect (ECONNREFUSED), whose own client is then refused in turn, instead of
    /// each looped SYN opening one more upstream until `--backlog` connects are pending.
    pub fn relay_loop(&mut self, quad: &Quad) {
        if self.refuse_held_syn(quad, None) {
            self.counters.relay_loops += 1;
        }
    }

    /// The host could not reach the client's own destination (`direct`: the connect
    /// failed with EHOSTUNREACH or ENETUNREACH; `socks5:`: the proxy replied host or
    /// network unreachable, or TTL expired): the client's SYN is answered with the ICMP
    /// error the host got, from that destination, as the router that could not reach it
    /// would answer (RFC 1812 §4.3.2, RFC 4443 §3.1), so the client's `connect()` fails at
    /// once with the same error instead of retrying its SYN for two minutes. `forward:`
    /// keeps its SYN unanswered: its client asked for synack's own address, not for the
    /// host that failed. Sent at the next [`Endpoint::poll`].
    pub fn forward_unreachable(&mut self, quad: &Quad, kind: IcmpErrorKind) {
        if self.refuse_held_syn(quad, Some(kind)) {
            self.counters.forward_connect_failures += 1;
            self.counters.forward_unreachable += 1;
        }
    }

    /// The upstream could not be reached (unreachable, timed out): forget the SYN and leave
    /// it unanswered; the client retries, then gives up, as it would with the upstream.
    pub fn forward_failed(&mut self, quad: &Quad) {
        if self.pending.remove(quad).is_some() {
            self.counters.forward_connect_failures += 1;
        }
    }

    /// Send the RSTs of refused forward connects.
    pub(super) fn send_refusals(&mut self, tx: &mut dyn Transmit) {
        for (quad, syn, icmp) in std::mem::take(&mut self.refusals) {
            match icmp {
                None => {
                    if let Some(rst) = rst_reply(&syn) {
                        self.send_reply(quad.local.ip(), quad.remote.ip(), &rst, tx);
                    }
                }
                Some(kind) => self.send_unreachable(&quad, &syn, kind, tx),
            }
        }
    }

    /// The ICMP error `kind` from the client's destination to the client, quoting its SYN
    /// (rebuilt from the held segment: IP header and TCP header, which is all a host reads
    /// of a quote, RFC 5927 §4.1).
    fn send_unreachable(
        &mut self,
        quad: &Quad,
        syn: &TcpSegment<'static>,
        kind: IcmpErrorKind,
        tx: &mut dyn Transmit,
    ) {
        let mut quote = [0u8; 128];
        let Ok(n) = wire::emit_tcp(&mut quote, quad.remote.ip(), quad.local.ip(), syn) else {
            return;
        };
        let Some(quote) = quote.get(..n) else {
            return;
        };
        if let Ok(len) = wire::emit_icmp_error(
            &mut self.tx_buf,
            quad.local.ip(),
            quad.remote.ip(),
            kind,
            quote,
        ) {
            tx.transmit(self.tx_buf.get(..len).unwrap_or(&[]));
        }
    }

    /// A `forward:` connection in TIME-WAIT owes its upstream nothing more once the driver
    /// has handed on the client's last bytes (both FINs are in, ours acknowledged): its
    /// upstream socket is closed now rather than when TIME-WAIT ends, or every connection we
    /// closed first would hold a file descriptor for 2·MSL (60 s), and a busy forward port
    /// would run out of them. The 4-tuple itself stays in TIME-WAIT (RFC 9293 §3.6).
    pub(super) fn relay_time_wait(&mut self, id: usize) {
        let Some(entry) = super::entry_mut(&mut self.slots, id) else {
            return;
        };
        if entry.relay_ended
            || entry.conn.state() != State::TimeWait
            || entry.conn.recv_queue() > 0
            || !matches!(&entry.app, App::Relay(kind, _) if kind.relays_upstream())
        {
            return;
        }
        entry.relay_ended = true;
        self.relay_events.push(RelayEvent::End {
            quad: entry.conn.quad(),
            reset: false,
        });
    }

    /// An `exec:` or `forward:` connection left the table: tell the driver.
    pub(super) fn relay_removed(&mut self, entry: &Entry) {
        if entry.relay_ended {
            return;
        }
        if let App::Relay(kind, relay) = &entry.app {
            if let ServiceKind::Exec(_) = kind {
                self.exec_count = self.exec_count.saturating_sub(1);
            }
            // A forward connection has its upstream from before the handshake.
            if entry.counted_established || kind.relays_upstream() {
                // Never established (a RST or a time-out in SYN-RECEIVED) counts as a reset.
                let reset = relay.aborted()
                    || !entry.counted_established
                    || matches!(
                        entry.conn.reset_cause(),
                        Some(
                            ResetCause::PeerReset
                                | ResetCause::Aborted
                                | ResetCause::TimedOut
                                | ResetCause::Unreachable(_)
                        )
                    );
                self.relay_events.push(RelayEvent::End {
                    quad: entry.conn.quad(),
                    reset,
                });
            }
        }
    }
}
