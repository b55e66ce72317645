//! The connections in TIME-WAIT, as small records (issue 23; `tcp::TimeWait`): a slab of
//! records, an index from 4-tuple to record (index.rs, shared with the connections), a heap
//! of their deadlines, and the records with something to send at the next poll. Linux keeps
//! its `tcp_timewait_sock`s in the established hash the same way, apart from the sockets
//! they replaced.
//!
//! What one costs: the record (about 100 bytes, its 4-tuple in 12 bytes for IPv4, 36 for
//! IPv6), its index bucket (5 bytes: the slot number and a control byte) and a timer entry
//! (16 bytes), against the 1.5–1.8 KiB of a whole connection with its trace (tests/alloc.rs
//! measures it).

use super::index::{QuadBytes, QuadIndex};
use super::{Endpoint, Transmit, entry_mut};
use crate::tcp::trace::{Direction, Label};
use crate::tcp::{ConnEvents, ResetCause, State, TimeWait};
use crate::time::Instant;
use crate::wire::{Quad, TcpSegment};
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// Stale heap entries (a restarted timer leaves its old deadline behind) tolerated beyond
/// the number of records before the heap is compacted.
const TIMER_SLACK: usize = 64;

/// A 4-tuple in as few bytes as it takes (`QuadBytes`), an IPv6 one on the heap, so that
/// the IPv4 records of a busy server stay small.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Key {
    V4([u8; 12]),
    V6(Box<[u8; 36]>),
}

impl Key {
    fn of(quad: &Quad) -> Key {
        match QuadBytes::of(quad) {
            QuadBytes::V4(k) => Key::V4(k),
            QuadBytes::V6(k) => Key::V6(Box::new(k)),
        }
    }

    fn bytes(&self) -> QuadBytes {
        match self {
            Key::V4(k) => QuadBytes::V4(*k),
            Key::V6(k) => QuadBytes::V6(**k),
        }
    }

    fn as_slice(&self) -> &[u8] {
        match self {
            Key::V4(k) => k,
            Key::V6(k) => &**k,
        }
    }

    fn quad(&self) -> Quad {
        match self {
            &Key::V4([a, b, c, d, p0, p1, e, f, g, h, q0, q1]) => Quad {
                local: SocketAddr::new(
                    IpAddr::V4(Ipv4Addr::new(a, b, c, d)),
                    u16::from_be_bytes([p0, p1]),
                ),
                remote: SocketAddr::new(
                    IpAddr::V4(Ipv4Addr::new(e, f, g, h)),
                    u16::from_be_bytes([q0, q1]),
                ),
            },
            Key::V6(k) => {
                let k: &[u8; 36] = k;
                let part = |at: usize| {
                    let ip: [u8; 16] = k
                        .get(at..at + 16)
                        .and_then(|s| s.try_into().ok())
                        .unwrap_or_default();
                    let port: [u8; 2] = k
                        .get(at + 16..at + 18)
                        .and_then(|s| s.try_into().ok())
                        .unwrap_or_default();
                    SocketAddr::new(IpAddr::V6(Ipv6Addr::from(ip)), u16::from_be_bytes(port))
                };
                Quad {
                    local: part(0),
                    remote: part(18),
                }
            }
        }
    }
}

/// One connection in TIME-WAIT.
#[derive(Debug)]
pub(super) struct Record {
    key: Key,
    pub tw: TimeWait,
    /// On the list of records with something to send.
    dirty: bool,
}

impl Record {
    pub fn quad(&self) -> Quad {
        self.key.quad()
    }
}

#[derive(Debug, Default)]
struct Slot {
    generation: u32,
    record: Option<Record>,
}

/// The TIME-WAIT records; see the module docs.
#[derive(Debug)]
pub(super) struct TimeWaits {
    slots: Vec<Slot>,
    free: Vec<u32>,
    /// The slot of each record by its 4-tuple (index.rs: the key is compared in the record).
    index: QuadIndex,
    /// (deadline, slot, generation); an entry is live while its record still has that
    /// deadline.
    timers: BinaryHeap<Reverse<(Instant, u32, u32)>>,
    dirty: Vec<u32>,
    len: usize,
}

impl TimeWaits {
    /// `key` keys the 4-tuple index's hash (index.rs).
    pub fn new(key: [u8; 16]) -> Self {
        TimeWaits {
            slots: Vec::new(),
            free: Vec::new(),
            index: QuadIndex::new(key),
            timers: BinaryHeap::new(),
            dirty: Vec::new(),
            len: 0,
        }
    }

    /// How many connections are in TIME-WAIT as records.
    pub fn len(&self) -> usize {
        self.len
    }

    /// The record of `quad`, by its slot.
    pub fn find(&self, quad: &Quad) -> Option<u32> {
        let bytes = QuadBytes::of(quad);
        self.index.find(&bytes, |id| {
            self.get(id)
                .is_some_and(|r| r.key.as_slice() == bytes.as_slice())
        })
    }

    pub fn contains(&self, quad: &Quad) -> bool {
        self.find(quad).is_some()
    }

    pub fn get(&self, id: u32) -> Option<&Record> {
        self.slots.get(id as usize)?.record.as_ref()
    }

    pub fn get_mut(&mut self, id: u32) -> Option<&mut Record> {
        self.slots.get_mut(id as usize)?.record.as_mut()
    }

    /// Every record, in slab order.
    pub fn iter(&self) -> impl Iterator<Item = &Record> {
        self.slots.iter().filter_map(|s| s.record.as_ref())
    }

    /// The records of slots `from..`, with the slot after each, for a paged listing.
    pub fn iter_from(&self, from: usize) -> impl Iterator<Item = (usize, &Record)> {
        self.slots
            .iter()
            .enumerate()
            .skip(from)
            .filter_map(|(i, s)| Some((i + 1, s.record.as_ref()?)))
    }

    /// Keep `tw` for `quad` (which has no record yet) until its deadline.
    pub fn insert(&mut self, quad: &Quad, tw: TimeWait) {
        let id = match self.free.pop() {
            Some(id) => id,
            None => {
                self.slots.push(Slot::default());
                u32::try_from(self.slots.len() - 1).unwrap_or(u32::MAX)
            }
        };
        let key = Key::of(quad);
        let bytes = key.bytes();
        let deadline = tw.deadline();
        let Some(slot) = self.slots.get_mut(id as usize) else {
            return;
        };
        slot.record = Some(Record {
            key,
            tw,
            dirty: false,
        });
        self.timers.push(Reverse((deadline, id, slot.generation)));
        let slots = &self.slots;
        self.index.insert(&bytes, id, |id| bytes_of(slots, id));
        self.len += 1;
    }

    /// Delete the record in slot `id`.
    pub fn remove(&mut self, id: u32) -> Option<Record> {
        let slot = self.slots.get_mut(id as usize)?;
        let record = slot.record.take()?;
        slot.generation = slot.generation.wrapping_add(1);
        self.index.remove(&record.key.bytes(), id);
        self.free.push(id);
        self.len -= 1;
        Some(record)
    }

    /// After a segment: re-arm the timer if its deadline moved, and list the record for the
    /// next poll if it has something to send.
    pub fn touched(&mut self, id: u32, old_deadline: Instant) {
        let Some(slot) = self.slots.get_mut(id as usize) else {
            return;
        };
        let generation = slot.generation;
        let Some(record) = slot.record.as_mut() else {
            return;
        };
        let deadline = record.tw.deadline();
        if record.tw.has_output() && !record.dirty {
            record.dirty = true;
            self.dirty.push(id);
        }
        if deadline != old_deadline {
            self.timers.push(Reverse((deadline, id, generation)));
            if self.timers.len() > TIMER_SLACK + 2 * self.len {
                let slots = &self.slots;
                self.timers
                    .retain(|&Reverse((at, id, g))| timer_is_live(slots, at, id, g));
            }
            self.drop_stale();
        }
    }

    /// The records with something to send, each once; give the list back with
    /// `put_back_dirty` so that its room is reused.
    pub fn take_dirty(&mut self) -> Vec<u32> {
        let dirty = std::mem::take(&mut self.dirty);
        for &id in &dirty {
            if let Some(record) = self.get_mut(id) {
                record.dirty = false;
            }
        }
        dirty
    }

    pub fn put_back_dirty(&mut self, mut list: Vec<u32>) {
        if self.dirty.is_empty() {
            list.clear();
            self.dirty = list;
        }
    }

    pub fn has_dirty(&self) -> bool {
        !self.dirty.is_empty()
    }

    /// The next record whose deadline is at or before `until`, taken out of the table.
    pub fn pop_expired(&mut self, until: Instant) -> Option<Record> {
        while let Some(&Reverse((at, id, generation))) = self.timers.peek() {
            let live = timer_is_live(&self.slots, at, id, generation);
            if live && at > until {
                return None;
            }
            self.timers.pop();
            if live {
                let record = self.remove(id);
                self.drop_stale();
                return record;
            }
        }
        None
    }

    /// The earliest deadline. Stale entries are dropped from the top of the heap after
    /// every change (`touched`, `pop_expired`), so this is a record's.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.timers.peek().map(|Reverse((at, _, _))| *at)
    }

    /// Drop the stale entries at the top of the heap.
    fn drop_stale(&mut self) {
        while let Some(&Reverse((at, id, generation))) = self.timers.peek() {
            if timer_is_live(&self.slots, at, id, generation) {
                return;
            }
            self.timers.pop();
        }
    }

    /// Give back what the tables kept for records that are gone (`Endpoint::release_memory`).
    pub fn shrink(&mut self) {
        let slots = &self.slots;
        self.timers
            .retain(|&Reverse((at, id, g))| timer_is_live(slots, at, id, g));
        self.timers.shrink_to_fit();
        let used = self
            .slots
            .iter()
            .rposition(|slot| slot.record.is_some())
            .map_or(0, |last| last + 1);
        self.slots.truncate(used);
        self.slots.shrink_to_fit();
        self.free.retain(|&id| (id as usize) < used);
        self.free.shrink_to_fit();
        let slots = &self.slots;
        self.index.shrink(|id| bytes_of(slots, id));
        self.dirty.shrink_to_fit();
    }
}

impl Endpoint {
    /// A connection that has settled in TIME-WAIT after its run becomes a record: its slab
    /// slot, trace and timer go (the trace to the observers, as when a connection closes).
    /// Returns whether it did.
    pub(super) fn retire_to_time_wait(&mut self, now: Instant, id: usize) -> bool {
        let Some(entry) = entry_mut(&mut self.slots, id) else {
            return false;
        };
        if !entry.in_time_wait || !entry.may_retire() {
            return false;
        }
        let Some(tw) = entry.conn.time_wait_record() else {
            return false;
        };
        let quad = entry.conn.quad();
        self.account_end(now, id);
        let Some(entry) = self.take_entry(id) else {
            return false;
        };
        self.time_waits.insert(&quad, tw);
        self.on_removed(entry, true);
        true
    }

    /// A segment for a TIME-WAIT record (`on_segment`, when no SYN reopens it).
    pub(super) fn time_wait_segment(&mut self, now: Instant, id: u32, seg: &TcpSegment<'_>) {
        let time_wait = self.tcp.time_wait;
        let Some(record) = self.time_waits.get_mut(id) else {
            return;
        };
        let quad = record.quad();
        let before = record.tw.deadline();
        let mut events = ConnEvents::default();
        {
            let span = conn_span(&quad);
            let _enter = span.enter();
            record.tw.on_segment(now, seg, time_wait, &mut events);
        }
        self.counters.add_events(&events);
        self.time_waits.touched(id, before);
        self.record_time_wait(&quad, Direction::In, now, seg, Label::None);
    }

    /// Send what the TIME-WAIT records owe: ACKs, and challenge ACKs the global budget
    /// allows (RFC 5961 §7), as `service` does for a connection.
    pub(super) fn transmit_time_waits(&mut self, now: Instant, tx: &mut dyn Transmit) {
        let dirty = self.time_waits.take_dirty();
        for &id in &dirty {
            let Some(record) = self.time_waits.get_mut(id) else {
                continue;
            };
            if record.tw.take_challenge() {
                if self.challenges.allow(now) {
                    record.tw.grant_challenge();
                    self.counters.challenge_acks += 1;
                } else {
                    self.counters.challenge_acks_limited += 1;
                }
            }
            let quad = record.quad();
            let (buf, counters) = (&mut self.tx_buf, &mut self.counters);
            let mut sent = None;
            record.tw.transmit(
                now,
                (quad.local.port(), quad.remote.port()),
                &mut |seg, label| {
                    Endpoint::emit(
                        buf,
                        counters,
                        quad.local.ip(),
                        quad.remote.ip(),
                        seg,
                        None,
                        tx,
                    );
                    sent = Some((
                        TcpSegment {
                            payload: &[],
                            ..*seg
                        },
                        label,
                    ));
                },
            );
            if let Some((seg, label)) = sent {
                self.record_time_wait(&quad, Direction::Out, now, &seg, label);
            }
        }
        self.time_waits.put_back_dirty(dirty);
    }

    /// RFC 9293 §3.10.8: "When the time-wait timeout expires, delete the TCB": the records
    /// whose 2·MSL ended by `until`.
    pub(super) fn expire_time_waits(&mut self, until: Instant) {
        while let Some(record) = self.time_waits.pop_expired(until) {
            self.time_wait = self.time_wait.saturating_sub(1);
            let quad = record.quad();
            {
                let span = conn_span(&quad);
                let _enter = span.enter();
                tracing::debug!("{} -> {}", State::TimeWait, State::Closed);
            }
            tracing::debug!(%quad, cause = ?None::<ResetCause>, "connection closed");
            self.time_wait_gone(&quad, true);
        }
    }
}

/// The logging context of a connection's events, as `Connection::span` makes it.
fn conn_span(quad: &Quad) -> tracing::Span {
    tracing::debug_span!("conn", local = %quad.local, remote = %quad.remote)
}

/// The 4-tuple of the record in slot `id`, as the index hashes it.
fn bytes_of(slots: &[Slot], id: u32) -> Option<QuadBytes> {
    Some(slots.get(id as usize)?.record.as_ref()?.key.bytes())
}

/// Whether the heap entry `(at, id, generation)` is its record's deadline.
fn timer_is_live(slots: &[Slot], at: Instant, id: u32, generation: u32) -> bool {
    slots.get(id as usize).is_some_and(|slot| {
        slot.generation == generation && slot.record.as_ref().is_some_and(|r| r.tw.deadline() == at)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_gives_back_its_four_tuple() {
        for (l, r) in [
            ("198.18.0.2:80", "198.18.0.1:40000"),
            ("[2001:2::2]:443", "[2001:2::1]:65535"),
        ] {
            let quad = Quad {
                local: l.parse().unwrap(),
                remote: r.parse().unwrap(),
            };
            assert_eq!(Key::of(&quad).quad(), quad);
        }
        assert!(matches!(
            Key::of(&Quad {
                local: "198.18.0.2:80".parse().unwrap(),
                remote: "198.18.0.1:1".parse().unwrap(),
            }),
            Key::V4(_)
        ));
    }

    #[test]
    fn a_slot_of_the_table_stays_small() {
        // Issue 23: a TIME-WAIT connection costs its slot, an index bucket (5 bytes,
        // index.rs) and a timer entry (16): well under Linux's 256-byte tcp_timewait_sock.
        assert!(
            std::mem::size_of::<Slot>() <= 136,
            "{}",
            std::mem::size_of::<Slot>()
        );
    }
}
