//! Giving memory back after a burst (issue 22): once the connection table has fallen to half
//! its peak (and by at least [`MIN_DROP`] connections), the endpoint shrinks its tables and
//! the C library returns the free pages of its heap to the system (`malloc_trim(3)`), so
//! RSS comes back down when the connections are gone. What stays is in docs/PERFORMANCE.md
//! ("Memory after a burst").
//!
//! The same after a burst of buffers (issue 23): a million connections that each echoed a line
//! at about the same time took a buffer each and gave it back, and the freed heap stayed in
//! the process (RSS 1.8 GiB before the lines, 3.1 GiB after). Once the bytes the connections
//! hold (`Endpoint::memory_used`) fall to a quarter of a peak of at least [`MIN_BUFFER_PEAK`],
//! the free pages go back too.

use crate::endpoint::Endpoint;

/// The smallest drop worth a trim: below it, what a trim returns is not worth walking the heap.
const MIN_DROP: usize = 256;

/// The smallest peak worth a trim once the table is empty.
const MIN_EMPTY: usize = 64;

/// The table's peak since the last trim.
/// The smallest peak of buffer memory worth a trim once it is mostly given back.
const MIN_BUFFER_PEAK: usize = 32 << 20;

#[derive(Debug, Default)]
pub struct HeapTrim {
    peak: usize,
    /// The most buffer memory the connections held since the last trim.
    buffer_peak: usize,
    /// Trims done (for the tests and the log).
    pub trims: u64,
}

impl HeapTrim {
    /// Whether a table of `count` connections, after a peak of `peak`, calls for a trim.
    fn due(peak: usize, count: usize) -> bool {
        // Halved by a worthwhile amount, or emptied after a small burst (so that the end of
        // a burst leaves nothing behind).
        (count <= peak / 2 && peak - count >= MIN_DROP) || (count == 0 && peak >= MIN_EMPTY)
    }

    /// Call after each turn of the loop.
    /// Whether buffer memory fell from a worthwhile `peak` to a quarter of it.
    fn buffers_due(peak: usize, held: usize) -> bool {
        peak >= MIN_BUFFER_PEAK && held <= peak / 4
    }

    pub fn after_poll(&mut self, ep: &mut Endpoint) {
        let held = ep.memory_used();
        if held > self.buffer_peak {
            self.buffer_peak = held;
        } else if Self::buffers_due(self.buffer_peak, held) {
            tracing::debug!(
                peak = self.buffer_peak,
                held,
                "buffers given back: returning free memory"
            );
            release_free_heap();
            self.buffer_peak = held;
            self.trims += 1;
        }
        let count = ep.connection_count();
        if count > self.peak {
            self.peak = count;
        } else if Self::due(self.peak, count) {
            tracing::debug!(
                peak = self.peak,
                count,
                "connections gone: shrinking the tables, returning free memory"
            );
            ep.release_memory();
            release_free_heap();
            self.peak = count;
            self.trims += 1;
        }
    }
}

/// Return the free pages of the C library's heap to the system.
fn release_free_heap() {
    // SAFETY: malloc_trim only walks the allocator's own free lists; it takes the arena
    // locks and is safe to call at any time.
    #[cfg(target_env = "gnu")]
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_trim_waits_for_the_table_to_halve_by_a_worthwhile_amount() {
        assert!(!HeapTrim::due(100_000, 60_000), "not yet halved");
        assert!(HeapTrim::due(100_000, 50_000));
        assert!(HeapTrim::due(100_000, 0));
        assert!(!HeapTrim::due(300, 100), "too few to be worth it");
        assert!(HeapTrim::due(600, 0));
        assert!(HeapTrim::due(100, 0), "the end of a small burst");
        assert!(
            !HeapTrim::due(10, 0),
            "a connection or two coming and going"
        );
        assert!(!HeapTrim::due(0, 0));
        assert!(HeapTrim::buffers_due(64 << 20, 16 << 20));
        assert!(
            !HeapTrim::buffers_due(64 << 20, 17 << 20),
            "not yet a quarter"
        );
        assert!(
            !HeapTrim::buffers_due(16 << 20, 0),
            "too little to be worth it"
        );
    }
}
