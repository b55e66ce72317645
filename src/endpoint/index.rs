//! The 4-tuple index of the connection table and of the TIME-WAIT records (issue 23): a hash
//! table of slot numbers only. The 4-tuple itself lives once, in what the slot holds (the
//! connection's `quad`, the record's key), and a lookup compares against it there, so a
//! bucket costs 5 bytes (a `u32` and hashbrown's control byte) where a `HashMap<Quad, usize>`
//! bucket cost 73 (two `SocketAddr`s, the slot, the control byte): at a million connections
//! (2^21 buckets) about 10 MB instead of 150. Linux's established hash is the same idea:
//! an array of list heads, the 4-tuple in the socket.
//!
//! The hash is SipHash-1-3 (the function std's `HashMap` uses) under a key derived from the
//! endpoint's secret: the 4-tuple comes from the network, so a keyed hash keeps collisions out
//! of a flooder's reach (Linux keys its `inet_ehashfn` with a random secret the same way).
//! foldhash or ahash would be faster per hash, but the hash is one of 12 bytes (36 for IPv6)
//! per segment, a small part of a segment's cost, and a key from the secret keeps the core
//! sans-IO and a simulation's run repeatable, where `RandomState` reads the OS.

use crate::wire::Quad;
use hashbrown::HashTable;
use siphasher::sip::SipHasher13;
use std::hash::Hasher;
use std::net::IpAddr;

/// A 4-tuple's bytes as the index hashes them and the TIME-WAIT records keep them: local
/// address and port, then the peer's (IPv4 in 12 bytes; IPv6, or mixed families as
/// IPv4-mapped addresses, in 36). Made on the stack: a lookup per segment allocates nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum QuadBytes {
    V4([u8; 12]),
    V6([u8; 36]),
}

impl QuadBytes {
    pub fn of(quad: &Quad) -> QuadBytes {
        match (quad.local.ip(), quad.remote.ip()) {
            (IpAddr::V4(l), IpAddr::V4(r)) => {
                let mut k = [0; 12];
                fill(
                    &mut k,
                    l.octets()
                        .into_iter()
                        .chain(quad.local.port().to_be_bytes())
                        .chain(r.octets())
                        .chain(quad.remote.port().to_be_bytes()),
                );
                QuadBytes::V4(k)
            }
            (l, r) => {
                let v6 = |ip: IpAddr| match ip {
                    IpAddr::V4(a) => a.to_ipv6_mapped(),
                    IpAddr::V6(a) => a,
                };
                let mut k = [0; 36];
                fill(
                    &mut k,
                    v6(l)
                        .octets()
                        .into_iter()
                        .chain(quad.local.port().to_be_bytes())
                        .chain(v6(r).octets())
                        .chain(quad.remote.port().to_be_bytes()),
                );
                QuadBytes::V6(k)
            }
        }
    }

    pub fn as_slice(&self) -> &[u8] {
        match self {
            QuadBytes::V4(k) => k,
            QuadBytes::V6(k) => k,
        }
    }
}

fn fill(dst: &mut [u8], src: impl Iterator<Item = u8>) {
    for (d, s) in dst.iter_mut().zip(src) {
        *d = s;
    }
}

/// SipHash-1-3 under the index's key (see the module docs).
#[derive(Clone, Copy)]
struct KeyedHash {
    key: [u8; 16],
}

impl KeyedHash {
    fn hash(&self, bytes: &QuadBytes) -> u64 {
        let mut h = SipHasher13::new_with_key(&self.key);
        h.write(bytes.as_slice());
        h.finish()
    }
}

/// Slot numbers by 4-tuple; see the module docs. The caller owns the slots: `find` asks it
/// whether a slot holds the 4-tuple sought, and a table that grows or shrinks asks it for
/// the 4-tuple of every slot listed (`bytes_of`), to hash them again.
pub(super) struct QuadIndex {
    table: HashTable<u32>,
    hasher: KeyedHash,
}

impl std::fmt::Debug for QuadIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Not the key.
        f.debug_struct("QuadIndex")
            .field("len", &self.table.len())
            .finish_non_exhaustive()
    }
}

impl QuadIndex {
    pub fn new(key: [u8; 16]) -> Self {
        QuadIndex {
            table: HashTable::new(),
            hasher: KeyedHash { key },
        }
    }

    pub fn len(&self) -> usize {
        self.table.len()
    }

    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.table.is_empty()
    }

    /// How many slots it has room for before it grows.
    #[cfg(test)]
    pub fn capacity(&self) -> usize {
        self.table.capacity()
    }

    /// The slot listed under `quad` for which `holds` says yes: only the slots whose hash
    /// matches are asked (one, but for a rare collision).
    pub fn find(&self, quad: &QuadBytes, mut holds: impl FnMut(u32) -> bool) -> Option<u32> {
        self.table
            .find(self.hasher.hash(quad), |&id| holds(id))
            .copied()
    }

    /// List slot `id` under `quad`, which no slot listed holds.
    pub fn insert(
        &mut self,
        quad: &QuadBytes,
        id: u32,
        bytes_of: impl Fn(u32) -> Option<QuadBytes>,
    ) {
        let hasher = self.hasher;
        self.table.insert_unique(hasher.hash(quad), id, |&id| {
            bytes_of(id).map_or(0, |b| hasher.hash(&b))
        });
    }

    /// Take slot `id`, listed under `quad`, out of the index. Returns whether it was there.
    pub fn remove(&mut self, quad: &QuadBytes, id: u32) -> bool {
        match self.table.find_entry(self.hasher.hash(quad), |&x| x == id) {
            Ok(entry) => {
                entry.remove();
                true
            }
            Err(_) => false,
        }
    }

    /// Every slot listed, in no particular order.
    pub fn ids(&self) -> impl Iterator<Item = u32> + '_ {
        self.table.iter().copied()
    }

    /// Give back the buckets that its slots no longer need (`Endpoint::release_memory`).
    pub fn shrink(&mut self, bytes_of: impl Fn(u32) -> Option<QuadBytes>) {
        let hasher = self.hasher;
        self.table
            .shrink_to_fit(|&id| bytes_of(id).map_or(0, |b| hasher.hash(&b)));
    }
}

/// A slab slot's number in the index. A slab of 2^32 slots (64 GiB of empty ones) cannot be
/// reached before `--max-connections` or memory stops new ones.
pub(super) fn slot_id(id: usize) -> u32 {
    u32::try_from(id).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::endpoint::isn::tests::quad;

    fn bytes_of(slots: &[Option<Quad>], id: u32) -> Option<QuadBytes> {
        slots
            .get(id as usize)
            .copied()
            .flatten()
            .map(|q| QuadBytes::of(&q))
    }

    /// A slab of 4-tuples by slot, as the endpoint's is.
    struct Slab {
        slots: Vec<Option<Quad>>,
        index: QuadIndex,
    }

    impl Slab {
        fn new() -> Self {
            Slab {
                slots: Vec::new(),
                index: QuadIndex::new([7; 16]),
            }
        }

        fn find(&self, q: &Quad) -> Option<u32> {
            let slots = &self.slots;
            self.index.find(&QuadBytes::of(q), |id| {
                slots.get(id as usize).copied().flatten() == Some(*q)
            })
        }

        fn insert(&mut self, q: Quad) -> u32 {
            let id = match self.slots.iter().position(Option::is_none) {
                Some(free) => free,
                None => {
                    self.slots.push(None);
                    self.slots.len() - 1
                }
            };
            self.slots[id] = Some(q);
            let slots = &self.slots;
            self.index
                .insert(&QuadBytes::of(&q), slot_id(id), |id| bytes_of(slots, id));
            slot_id(id)
        }

        fn shrink(&mut self) {
            let slots = &self.slots;
            self.index.shrink(|id| bytes_of(slots, id));
        }

        fn remove(&mut self, id: u32) -> bool {
            let Some(q) = self.slots[id as usize].take() else {
                return false;
            };
            self.index.remove(&QuadBytes::of(&q), id)
        }
    }

    #[test]
    fn lookups_hold_through_many_inserts_and_removes() {
        let mut slab = Slab::new();
        let ids: Vec<u32> = (0..5_000).map(|p| slab.insert(quad(p))).collect();
        for (p, &id) in ids.iter().enumerate() {
            assert_eq!(slab.find(&quad(p as u16)), Some(id));
        }
        // Every other one goes: those are not found, the rest still are.
        for &id in ids.iter().step_by(2) {
            assert!(slab.remove(id));
        }
        assert!(
            !slab.index.remove(&QuadBytes::of(&quad(0)), ids[0]),
            "removed twice"
        );
        assert_eq!(slab.index.len(), 2_500);
        for (p, &id) in ids.iter().enumerate() {
            let expect = (p % 2 == 1).then_some(id);
            assert_eq!(slab.find(&quad(p as u16)), expect, "port {p}");
        }
        let ids: Vec<u32> = slab.index.ids().collect();
        assert_eq!(ids.len(), 2_500);
        assert!(ids.iter().all(|id| id % 2 == 1));
    }

    #[test]
    fn a_slot_reused_by_another_four_tuple_answers_only_for_it() {
        let mut slab = Slab::new();
        let old = slab.insert(quad(1000));
        assert!(slab.remove(old));
        let new = slab.insert(quad(2000));
        assert_eq!(new, old, "the slot is reused");
        assert_eq!(slab.find(&quad(1000)), None);
        assert_eq!(slab.find(&quad(2000)), Some(new));
    }

    #[test]
    fn shrinking_keeps_what_is_left_findable() {
        let mut slab = Slab::new();
        let ids: Vec<u32> = (0..4_000).map(|p| slab.insert(quad(p))).collect();
        let peak = slab.index.capacity();
        for &id in &ids[..3_990] {
            slab.remove(id);
        }
        slab.shrink();
        assert!(
            slab.index.capacity() < peak / 100,
            "{}",
            slab.index.capacity()
        );
        for p in 3_990..4_000 {
            assert_eq!(slab.find(&quad(p)), Some(ids[p as usize]));
        }
    }

    #[test]
    fn the_key_decides_the_hash() {
        // Keyed: a flooder who does not know the secret cannot aim at one bucket.
        let q = QuadBytes::of(&quad(1));
        let a = KeyedHash { key: [1; 16] }.hash(&q);
        let b = KeyedHash { key: [2; 16] }.hash(&q);
        assert_ne!(a, b);
    }

    #[test]
    fn a_bucket_costs_five_bytes() {
        // Issue 23: the slot number and hashbrown's control byte, not the 4-tuple.
        let mut slab = Slab::new();
        for p in 0..1000 {
            slab.insert(quad(p));
        }
        let buckets = slab.index.table.num_buckets();
        assert!(
            slab.index.table.allocation_size() <= buckets * 5 + 64,
            "{} bytes for {buckets} buckets",
            slab.index.table.allocation_size()
        );
    }

    #[test]
    fn mixed_families_are_keyed_as_ipv4_mapped() {
        let q = Quad {
            local: "198.18.0.2:80".parse().unwrap(),
            remote: "[2001:2::1]:1".parse().unwrap(),
        };
        assert!(matches!(QuadBytes::of(&q), QuadBytes::V6(_)));
        assert!(matches!(QuadBytes::of(&quad(1)), QuadBytes::V4(_)));
    }
}
