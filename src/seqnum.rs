//! Sequence-number arithmetic modulo 2^32 (RFC 9293 §3.4).
//!
//! Sequence values are compared only through these methods, never with `<` on raw `u32`s.
//! Like gVisor's `seqnum`, there is deliberately no `PartialOrd`: "less than" on a circle is
//! not transitive, so it must not masquerade as an ordering.

use std::fmt;

/// A TCP sequence (or acknowledgment) number.
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct SeqNum(u32);

impl SeqNum {
    pub const fn new(raw: u32) -> Self {
        SeqNum(raw)
    }

    /// The raw 32-bit value, for the wire.
    pub const fn raw(self) -> u32 {
        self.0
    }

    /// `self + n` modulo 2^32.
    #[must_use]
    pub const fn add(self, n: u32) -> Self {
        SeqNum(self.0.wrapping_add(n))
    }

    /// `self - n` modulo 2^32.
    #[must_use]
    pub const fn sub(self, n: u32) -> Self {
        SeqNum(self.0.wrapping_sub(n))
    }

    /// The signed distance from `other` to `self` (positive when `self` is after `other`).
    pub const fn diff(self, other: SeqNum) -> i32 {
        self.0.wrapping_sub(other.0) as i32
    }

    /// The number of sequence numbers from `earlier` up to `self`, modulo 2^32.
    /// Meaningful only when `earlier` is known not to be after `self`.
    pub const fn distance_from(self, earlier: SeqNum) -> u32 {
        self.0.wrapping_sub(earlier.0)
    }

    /// `self < other` in sequence space (RFC 9293 §3.4).
    pub const fn lt(self, other: SeqNum) -> bool {
        self.diff(other) < 0
    }

    /// `self =< other` in sequence space.
    pub const fn le(self, other: SeqNum) -> bool {
        self.diff(other) <= 0
    }

    /// `self > other` in sequence space.
    pub const fn gt(self, other: SeqNum) -> bool {
        self.diff(other) > 0
    }

    /// `self >= other` in sequence space.
    pub const fn ge(self, other: SeqNum) -> bool {
        self.diff(other) >= 0
    }

    /// The later of two sequence numbers.
    #[must_use]
    pub const fn max(self, other: SeqNum) -> SeqNum {
        if self.lt(other) { other } else { self }
    }

    /// The earlier of two sequence numbers.
    #[must_use]
    pub const fn min(self, other: SeqNum) -> SeqNum {
        if self.lt(other) { self } else { other }
    }

    /// `start =< self < end`: half-open range membership. An empty range contains nothing.
    pub const fn in_range(self, start: SeqNum, end: SeqNum) -> bool {
        self.distance_from(start) < end.distance_from(start)
    }

    /// `start =< self < start + size`: membership in a window of `size` sequence numbers.
    pub const fn in_window(self, start: SeqNum, size: u32) -> bool {
        self.distance_from(start) < size
    }
}

impl fmt::Debug for SeqNum {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SeqNum({})", self.0)
    }
}

impl fmt::Display for SeqNum {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn comparisons_hold_across_the_wrap() {
        let before = SeqNum::new(u32::MAX - 10);
        let after = before.add(20);
        assert_eq!(after.raw(), 9);
        assert!(before.lt(after));
        assert!(after.gt(before));
        assert!(before.le(before));
        assert_eq!(after.diff(before), 20);
        assert_eq!(before.diff(after), -20);
        assert_eq!(after.distance_from(before), 20);
        assert_eq!(before.max(after), after);
        assert_eq!(before.min(after), before);
    }

    #[test]
    fn windows_are_half_open_and_may_straddle_zero() {
        let start = SeqNum::new(u32::MAX - 1);
        assert!(start.in_window(start, 4));
        assert!(SeqNum::new(1).in_window(start, 4));
        assert!(!SeqNum::new(2).in_window(start, 4));
        assert!(!start.sub(1).in_window(start, 4));
        assert!(!start.in_window(start, 0));
        assert!(!start.in_range(start, start));
    }

    proptest! {
        #[test]
        fn adding_a_positive_step_is_always_later(base: u32, step in 1u32..(1 << 31)) {
            let a = SeqNum::new(base);
            let b = a.add(step);
            prop_assert!(a.lt(b));
            prop_assert!(b.gt(a));
            prop_assert!(!b.le(a));
            prop_assert_eq!(b.distance_from(a), step);
            prop_assert_eq!(b.sub(step), a);
        }

        #[test]
        fn exactly_one_of_lt_eq_gt_holds(a: u32, b: u32) {
            let (a, b) = (SeqNum::new(a), SeqNum::new(b));
            // Half a circle away is the one ambiguous point: both sides call the other "less".
            prop_assume!(a.distance_from(b) != 1 << 31);
            let n = [a.lt(b), a == b, a.gt(b)].iter().filter(|x| **x).count();
            prop_assert_eq!(n, 1);
            prop_assert_eq!(a.lt(b), b.gt(a));
            prop_assert_eq!(a.le(b), !a.gt(b));
        }

        #[test]
        fn in_window_matches_offset_arithmetic(start: u32, size in 0u32..(1 << 31), off: u32) {
            let s = SeqNum::new(start);
            prop_assert_eq!(s.add(off).in_window(s, size), off < size);
            prop_assert_eq!(s.add(off).in_range(s, s.add(size)), off < size);
        }
    }
}
