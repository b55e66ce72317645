//! Checked reads from untrusted bytes and a bounds-checked writer. Nothing here can panic:
//! every access goes through `get`/`get_mut` and reports failure as `None`/`Err`.

use super::EmitError;

/// The `N` bytes of `b` starting at `at`, as an array, or `None` if they are not all there.
pub(super) fn array<const N: usize>(b: &[u8], at: usize) -> Option<&[u8; N]> {
    b.get(at..at.checked_add(N)?)?.try_into().ok()
}

/// The big-endian `u32` at `at`.
pub(super) fn be_u32(b: &[u8], at: usize) -> Option<u32> {
    array(b, at).map(|a| u32::from_be_bytes(*a))
}

/// Writes bytes one field after another into a caller's buffer, failing (never panicking)
/// when the buffer is full.
pub(super) struct Writer<'a> {
    buf: &'a mut [u8],
    pos: usize,
}

impl<'a> Writer<'a> {
    pub(super) fn new(buf: &'a mut [u8]) -> Self {
        Writer { buf, pos: 0 }
    }

    /// The next `n` bytes of the buffer, now counted as written.
    fn reserve(&mut self, n: usize) -> Result<&mut [u8], EmitError> {
        let end = self.pos.checked_add(n).ok_or(EmitError::BufferTooSmall)?;
        let out = self
            .buf
            .get_mut(self.pos..end)
            .ok_or(EmitError::BufferTooSmall)?;
        self.pos = end;
        Ok(out)
    }

    /// Append `bytes`.
    pub(super) fn put(&mut self, bytes: &[u8]) -> Result<(), EmitError> {
        self.reserve(bytes.len())?.copy_from_slice(bytes);
        Ok(())
    }

    /// Append `n` copies of `byte`.
    pub(super) fn fill(&mut self, byte: u8, n: usize) -> Result<(), EmitError> {
        self.reserve(n)?.fill(byte);
        Ok(())
    }

    /// How many bytes have been written.
    pub(super) fn len(&self) -> usize {
        self.pos
    }
}

/// Overwrite the big-endian `u16` at `at` (used to patch checksums in).
pub(super) fn set_be_u16(buf: &mut [u8], at: usize, value: u16) -> Result<(), EmitError> {
    let end = at.checked_add(2).ok_or(EmitError::BufferTooSmall)?;
    buf.get_mut(at..end)
        .ok_or(EmitError::BufferTooSmall)?
        .copy_from_slice(&value.to_be_bytes());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_past_the_end_are_none() {
        let b = [1, 2, 3, 4, 5];
        assert_eq!(be_u32(&b, 1), Some(0x0203_0405));
        assert_eq!(be_u32(&b, 2), None);
        assert_eq!(array::<2>(&b, usize::MAX), None);
    }

    #[test]
    fn writer_refuses_to_overflow() {
        let mut buf = [0u8; 3];
        let mut w = Writer::new(&mut buf);
        assert_eq!(w.put(&[1, 2]), Ok(()));
        assert_eq!(w.put(&[3, 4]), Err(EmitError::BufferTooSmall));
        assert_eq!(w.fill(9, 1), Ok(()));
        assert_eq!(w.len(), 3);
        assert_eq!(w.fill(9, 1), Err(EmitError::BufferTooSmall));
        assert_eq!(buf, [1, 2, 9]);
        assert_eq!(set_be_u16(&mut buf, 2, 7), Err(EmitError::BufferTooSmall));
    }
}
