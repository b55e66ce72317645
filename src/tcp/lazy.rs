//! State that only a transfer uses, allocated on its first write and given back when the
//! connection is idle (issue 23: a million connections in 1 GiB).
//!
//! An idle connection's SACK scoreboard and SACK receiver hold nothing, yet cost 96 bytes
//! inline in every connection. [`Lazy`] keeps them behind one pointer: reads of an
//! unallocated one see the type's empty value (a `static`), writes allocate it
//! ([`Lazy::make_mut`]), and [`Lazy::free_if_empty`] frees it once it is empty again. Operations
//! that do nothing on an empty value take [`Lazy::existing_mut`] and allocate nothing, so a
//! connection that never sees a SACK block never allocates either.

use std::ops::Deref;

/// A value with an empty state that costs nothing to re-create.
pub(super) trait Empty: Sized + 'static {
    /// The empty value, as a new connection has it (what an unallocated [`Lazy`] reads as).
    fn empty() -> &'static Self;
    /// Nothing in it outlives this moment: freeing it and re-creating it empty later
    /// changes nothing.
    fn is_empty_state(&self) -> bool;
}

/// `T`, allocated on its first write (see the module docs).
#[derive(Clone, Debug)]
pub(super) struct Lazy<T>(Option<Box<T>>);

impl<T: Empty> Lazy<T> {
    pub const fn new() -> Self {
        Lazy(None)
    }

    /// The value, allocated (as `make` makes it) if it was not.
    pub fn get_or_insert_with(&mut self, make: impl FnOnce() -> T) -> &mut T {
        self.0.get_or_insert_with(|| Box::new(make()))
    }

    /// The value if it is allocated; `None` means it is empty.
    pub fn existing_mut(&mut self) -> Option<&mut T> {
        self.0.as_deref_mut()
    }

    /// Free it if it is empty.
    pub fn free_if_empty(&mut self) {
        if self.0.as_deref().is_some_and(T::is_empty_state) {
            self.0 = None;
        }
    }

    /// Free it whatever it holds: back to the empty value.
    pub fn reset(&mut self) {
        self.0 = None;
    }

    /// The bytes it holds allocated (not counting what `T` allocates itself).
    pub fn box_bytes(&self) -> usize {
        self.0.as_ref().map_or(0, |_| std::mem::size_of::<T>())
    }
}

impl<T: Empty + Default> Lazy<T> {
    /// The value, allocated (empty: `T::default()`) if it was not.
    pub fn make_mut(&mut self) -> &mut T {
        self.get_or_insert_with(T::default)
    }
}

impl<T: Empty> Default for Lazy<T> {
    fn default() -> Self {
        Lazy::new()
    }
}

impl<T: Empty> Deref for Lazy<T> {
    type Target = T;
    fn deref(&self) -> &T {
        self.0.as_deref().unwrap_or_else(|| T::empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Default, PartialEq)]
    struct Counter(u32);
    static ZERO: Counter = Counter(0);
    impl Empty for Counter {
        fn empty() -> &'static Self {
            &ZERO
        }
        fn is_empty_state(&self) -> bool {
            self.0 == 0
        }
    }

    #[test]
    fn reads_allocate_nothing_writes_allocate_and_empty_values_are_freed() {
        let mut l: Lazy<Counter> = Lazy::new();
        assert!(l.0.is_none());
        assert_eq!(*l, Counter(0));
        assert!(l.existing_mut().is_none());
        assert_eq!(l.box_bytes(), 0);
        l.make_mut().0 = 3;
        assert_eq!(*l, Counter(3));
        l.free_if_empty();
        assert_eq!(l.box_bytes(), 4, "not empty: kept");
        l.make_mut().0 = 0;
        l.free_if_empty();
        assert_eq!(l.box_bytes(), 0, "empty: freed");
        l.get_or_insert_with(|| Counter(5));
        assert_eq!(*l, Counter(5));
        l.reset();
        assert_eq!(*l, Counter(0));
        assert_eq!(std::mem::size_of::<Lazy<Counter>>(), 8);
    }
}
