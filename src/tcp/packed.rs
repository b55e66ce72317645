//! A short record (a trace's events, the graphs' samples) packed into a few bytes while its
//! connection is idle (issue 23: a million idle connections in 1 GiB).
//!
//! A [`Record`] is a `Vec` while the connection is busy; when it goes idle it is written,
//! losslessly, as one boxed byte slice: each item as the differences from the one before it (times, sequence numbers, windows) in LEB128 varints, zigzagged where they
//! may be negative, with presence bits for what is usually absent or unchanged ([`Pack`]).
//! An echo connection's 6 events take 56 bytes there instead of 216, its 2 samples 29
//! instead of 112. Reading a packed record decodes it into a temporary (the
//! diagrams and the graphs, never the data path); the first item recorded after the
//! connection wakes decodes it back into its `Vec`, with room for exactly what it held, and
//! appends: one allocation at the idle → busy transition, none per packet while busy.

use std::borrow::Cow;

/// How the items of a [`Record`] are written: each after the previous one, which the
/// implementation keeps in its `Context` (the differences are from it).
pub trait Pack: Copy {
    /// What is remembered of the items before (their times, sequence numbers, windows).
    type Context: Default;

    fn encode(&self, cx: &mut Self::Context, out: &mut Vec<u8>);

    /// The next item, or `None` if the bytes end (they never do: the record wrote them).
    fn decode(cx: &mut Self::Context, r: &mut Reader<'_>) -> Option<Self>;
}

/// A connection's record of items: a `Vec` while busy, packed bytes while idle (see the
/// module docs). 24 bytes inline, as a `Vec`.
#[derive(Clone, Debug)]
pub enum Record<T> {
    Live(Vec<T>),
    /// The items one after the other ([`Pack`]), at least one.
    Packed(Box<[u8]>),
}

impl<T> Default for Record<T> {
    fn default() -> Self {
        Record::Live(Vec::new())
    }
}

impl<T: Pack> Record<T> {
    pub fn len(&self) -> usize {
        match self {
            Record::Live(v) => v.len(),
            // Counted as they are read: no count is written, a byte less (an echo's 6
            // events are 56 bytes, a 64-byte chunk for glibc's malloc; 57 would be 80).
            Record::Packed(bytes) => Items::<T>::new(bytes).count(),
        }
    }

    pub fn is_empty(&self) -> bool {
        match self {
            Record::Live(v) => v.is_empty(),
            Record::Packed(_) => false,
        }
    }

    pub fn is_packed(&self) -> bool {
        matches!(self, Record::Packed(_))
    }

    /// Bytes allocated.
    pub fn heap_bytes(&self) -> usize {
        match self {
            Record::Live(v) => v.capacity() * std::mem::size_of::<T>(),
            Record::Packed(bytes) => bytes.len(),
        }
    }

    /// The items, decoded into a temporary if packed.
    pub fn items(&self) -> Cow<'_, [T]> {
        match self {
            Record::Live(v) => Cow::Borrowed(v),
            Record::Packed(bytes) => Cow::Owned(decode(bytes)),
        }
    }

    /// The items to change or append to: a packed record is decoded back into a `Vec` with
    /// room for exactly what it held (it grows from there as it did before it was packed).
    pub fn live(&mut self) -> &mut Vec<T> {
        if let Record::Packed(bytes) = self {
            *self = Record::Live(decode(bytes));
        }
        match self {
            Record::Live(v) => v,
            // Unreachable: made live above.
            Record::Packed(_) => unreachable!("a record just decoded"),
        }
    }

    /// Write the items as bytes (an empty record holds nothing instead).
    pub fn pack(&mut self) {
        let Record::Live(v) = self else { return };
        if v.is_empty() {
            *v = Vec::new();
            return;
        }
        // Room for what an item usually takes (a plain event 7 bytes, a SYN's about 20, a
        // sample's about 15), given back below.
        let mut out = Vec::with_capacity(24 * v.len());
        let mut cx = T::Context::default();
        for item in v.iter() {
            item.encode(&mut cx, &mut out);
        }
        *self = Record::Packed(out.into_boxed_slice());
    }
}

/// The items of a packed record, with room for exactly them.
fn decode<T: Pack>(bytes: &[u8]) -> Vec<T> {
    let mut items = Vec::with_capacity(Items::<T>::new(bytes).count());
    items.extend(Items::<T>::new(bytes));
    items
}

/// The items of a packed record, read one after the other.
struct Items<'a, T: Pack> {
    r: Reader<'a>,
    cx: T::Context,
}

impl<'a, T: Pack> Items<'a, T> {
    fn new(bytes: &'a [u8]) -> Self {
        Items {
            r: Reader::new(bytes),
            cx: T::Context::default(),
        }
    }
}

impl<T: Pack> Iterator for Items<'_, T> {
    type Item = T;

    fn next(&mut self) -> Option<T> {
        if self.r.bytes.is_empty() {
            return None;
        }
        let item = T::decode(&mut self.cx, &mut self.r);
        debug_assert!(item.is_some(), "a packed record ends in an item");
        item
    }
}

/// Packs `items` and checks that they read back as they were, and that the first item
/// recorded after idling finds them in a `Vec` with room for exactly what it held.
#[cfg(test)]
pub fn round_trip<T: Pack + PartialEq + std::fmt::Debug>(items: Vec<T>) {
    let mut r = Record::Live(items.clone());
    r.pack();
    assert_eq!(r.is_packed(), !items.is_empty());
    assert_eq!(r.len(), items.len());
    assert_eq!(*r.items(), *items);
    let live = r.live();
    assert_eq!(*live, items);
    assert_eq!(live.capacity(), items.len());
}

/// Runs `ops` on two copies of a record, `apply` saying which op is the connection going
/// idle; there one copy is shrunk (`shrink`: packed if short) and the other not. They must
/// hold the same (`whole`: everything, decoded) after every op, and once both are shrunk,
/// the same bytes of heap.
#[cfg(test)]
pub fn idle_is_never<R: Clone, Op>(
    start: R,
    ops: &[Op],
    apply: impl Fn(&mut R, &Op) -> bool,
    shrink: impl Fn(&mut R),
    whole: impl Fn(&R) -> String,
    heap: impl Fn(&R) -> usize,
) {
    let (mut packed, mut never) = (start.clone(), start);
    for op in ops {
        apply(&mut never, op);
        if apply(&mut packed, op) {
            shrink(&mut packed);
        }
        assert_eq!(whole(&packed), whole(&never));
    }
    shrink(&mut packed);
    shrink(&mut never);
    assert_eq!(whole(&packed), whole(&never));
    assert_eq!(heap(&packed), heap(&never));
}

/// Numbers near the edges more often than not, for the records' tests: 0, the largest,
/// around the wrap, and small ones.
#[cfg(test)]
pub fn edgy32() -> impl proptest::strategy::Strategy<Value = u32> {
    use proptest::prelude::*;
    prop_oneof![
        any::<u32>(),
        Just(0),
        Just(u32::MAX),
        (0u32..64).prop_map(|d| u32::MAX - d),
        0u32..100_000,
    ]
}

/// LEB128: 7 bits a byte, low first, the top bit set on all but the last.
pub fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// A signed difference as a varint, small either side of 0 (zigzag: 0, -1, 1, -2 ... are
/// 0, 1, 2, 3 ...).
pub fn put_signed(out: &mut Vec<u8>, v: i64) {
    put_varint(out, ((v << 1) ^ (v >> 63)) as u64);
}

/// `v - base` between two u32s as a signed difference (wrapping: sequence space).
pub fn put_delta32(out: &mut Vec<u8>, v: u32, base: u32) {
    put_signed(out, i64::from(v.wrapping_sub(base) as i32));
}

/// Reads what the `put_*` functions wrote.
pub struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    pub fn new(bytes: &'a [u8]) -> Reader<'a> {
        Reader { bytes }
    }

    pub fn byte(&mut self) -> Option<u8> {
        let (&b, rest) = self.bytes.split_first()?;
        self.bytes = rest;
        Some(b)
    }

    pub fn varint(&mut self) -> Option<u64> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.byte()?;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Some(v);
            }
        }
        None
    }

    pub fn signed(&mut self) -> Option<i64> {
        let z = self.varint()?;
        Some((z >> 1) as i64 ^ -((z & 1) as i64))
    }

    /// What [`put_delta32`] wrote, added back to `base`.
    pub fn delta32(&mut self, base: u32) -> Option<u32> {
        Some(base.wrapping_add(self.signed()? as u32))
    }

    pub fn u16(&mut self) -> Option<u16> {
        u16::try_from(self.varint()?).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn numbers_read_back_as_written(
            vs in proptest::collection::vec((any::<u64>(), any::<i64>(), any::<u32>(), any::<u32>()), 0..20),
        ) {
            let mut out = Vec::new();
            for &(u, i, a, b) in &vs {
                put_varint(&mut out, u);
                put_signed(&mut out, i);
                put_delta32(&mut out, a, b);
            }
            let mut r = Reader::new(&out);
            for &(u, i, a, b) in &vs {
                prop_assert_eq!(r.varint(), Some(u));
                prop_assert_eq!(r.signed(), Some(i));
                prop_assert_eq!(r.delta32(b), Some(a));
            }
            prop_assert_eq!(r.byte(), None);
        }
    }

    #[test]
    fn small_numbers_take_a_byte() {
        let mut out = Vec::new();
        put_varint(&mut out, 127);
        put_signed(&mut out, -64);
        put_delta32(&mut out, 5, u32::MAX - 50);
        assert_eq!(out.len(), 3);
        put_varint(&mut out, u64::MAX);
        assert_eq!(out.len(), 3 + 10);
    }
}
