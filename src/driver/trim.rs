//! Giving memory back after a burst (issue 22): once the connection table has fallen to half
//! its peak (and by at least [`MIN_DROP`] connections), the endpoint shrinks its tables and
//! the C library returns the free pages of its heap to the system (`malloc_trim(3)`), so
//! RSS comes back down when the connections are gone. The same for the bytes: once the
//! buffer memory of all connections has fallen to half its peak, by at least
//! [`MIN_BUFFER_DROP`] (a few bulk transfers ended), the heap is trimmed too: glibc raises
//! its mmap threshold after freeing a large buffer, so the next ones come from the heap and
//! would otherwise stay resident when freed. What stays is in docs/PERFORMANCE.md
//! ("Memory after a burst").

use crate::endpoint::Endpoint;
use crate::time::{Duration, Instant};

/// The smallest drop worth a trim: below it, what a trim returns is not worth walking the heap.
const MIN_DROP: usize = 256;

/// The smallest peak worth a trim once the table is empty.
const MIN_EMPTY: usize = 64;

/// The smallest fall of the connections' buffer memory worth a trim.
const MIN_BUFFER_DROP: usize = 4 << 20;

/// At most one trim for the bytes this often: a bulk transfer's queues fill and drain all
/// the time, and a trim walks the heap.
const BUFFER_TRIM_EVERY: Duration = Duration::from_secs(1);

/// The table's peak since the last trim.
#[derive(Debug, Default)]
pub struct HeapTrim {
    peak: usize,
    /// The connections' buffer memory's peak since the last trim.
    mem_peak: usize,
    /// When the bytes last called for a trim.
    last_buffer_trim: Option<Instant>,
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

    /// Whether buffer memory of `used` bytes, after a peak of `peak`, calls for a trim.
    fn bytes_due(peak: usize, used: usize) -> bool {
        used <= peak / 2 && peak - used >= MIN_BUFFER_DROP
    }

    /// Call after each turn of the loop.
    pub fn after_poll(&mut self, ep: &mut Endpoint, now: Instant) {
        let used = ep.memory_used();
        let recent = self
            .last_buffer_trim
            .is_some_and(|at| now.saturating_since(at) < BUFFER_TRIM_EVERY);
        if used > self.mem_peak {
            self.mem_peak = used;
        } else if !recent && Self::bytes_due(self.mem_peak, used) {
            tracing::debug!(
                peak = self.mem_peak,
                used,
                "buffer memory freed: returning free memory"
            );
            release_free_heap();
            self.mem_peak = used;
            self.last_buffer_trim = Some(now);
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
    }

    #[test]
    fn a_trim_follows_the_bytes_once_half_of_a_worthwhile_peak_is_freed() {
        assert!(HeapTrim::bytes_due(64 << 20, 0), "a bulk transfer ended");
        assert!(HeapTrim::bytes_due(64 << 20, 32 << 20));
        assert!(HeapTrim::bytes_due(8 << 20, 0), "a few MiB of queues gone");
        assert!(!HeapTrim::bytes_due(64 << 20, 33 << 20), "not yet halved");
        assert!(
            !HeapTrim::bytes_due(6 << 20, 3 << 20),
            "too little to be worth it"
        );
        assert!(!HeapTrim::bytes_due(0, 0));
    }
}
