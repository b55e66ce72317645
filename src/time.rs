//! Time as a value. Nothing below the driver reads the clock: `now` is always an argument.

use std::fmt;
use std::num::NonZeroU64;
use std::ops::{Add, AddAssign, Sub};
pub use std::time::Duration;

/// A point in time, in microseconds since an arbitrary epoch chosen by the driver
/// (or by a test's virtual clock).
///
/// Stored as `micros + 1` in a `NonZeroU64`, so that `Option<Instant>` is 8 bytes, not 16:
/// a connection keeps a dozen optional deadlines and marks (issue 23, a million
/// connections). The last representable instant is `u64::MAX - 1` µs (584,000 years);
/// arithmetic saturates there.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Instant {
    micros_plus_one: NonZeroU64,
}

impl Instant {
    pub const ZERO: Instant = Instant::from_micros(0);
    /// The latest instant there is (what `from_micros(u64::MAX)` saturates to).
    pub const MAX: Instant = Instant::from_micros(u64::MAX);

    pub const fn from_micros(micros: u64) -> Self {
        let stored = if micros == u64::MAX {
            u64::MAX
        } else {
            micros + 1
        };
        match NonZeroU64::new(stored) {
            Some(micros_plus_one) => Instant { micros_plus_one },
            // Unreachable: `stored` is at least 1.
            None => Instant {
                micros_plus_one: NonZeroU64::MAX,
            },
        }
    }

    pub const fn from_millis(millis: u64) -> Self {
        Instant::from_micros(millis.saturating_mul(1000))
    }

    pub const fn as_micros(self) -> u64 {
        self.micros_plus_one.get() - 1
    }

    pub fn saturating_since(self, earlier: Instant) -> Duration {
        Duration::from_micros(self.as_micros().saturating_sub(earlier.as_micros()))
    }
}

impl Add<Duration> for Instant {
    type Output = Instant;
    fn add(self, d: Duration) -> Instant {
        let micros = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        Instant::from_micros(self.as_micros().saturating_add(micros))
    }
}

impl AddAssign<Duration> for Instant {
    fn add_assign(&mut self, d: Duration) {
        *self = *self + d;
    }
}

impl Sub<Instant> for Instant {
    type Output = Duration;
    fn sub(self, rhs: Instant) -> Duration {
        self.saturating_since(rhs)
    }
}

impl Default for Instant {
    fn default() -> Instant {
        Instant::ZERO
    }
}

impl fmt::Debug for Instant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Instant")
            .field("micros", &self.as_micros())
            .finish()
    }
}

impl fmt::Display for Instant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}.{:06}s",
            self.as_micros() / 1_000_000,
            self.as_micros() % 1_000_000
        )
    }
}

/// Parse a human duration such as `500ms`, `2s`, `1m`, `1h`, `250us` (a bare number is seconds).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let value: f64 = num
        .parse()
        .map_err(|_| format!("'{s}' is not a duration (try 500ms, 2s, 1m)"))?;
    let scale = match unit.trim() {
        "" | "s" | "sec" | "secs" => 1.0,
        "ms" => 1e-3,
        "us" | "µs" => 1e-6,
        "m" | "min" => 60.0,
        "h" => 3600.0,
        other => {
            return Err(format!(
                "unknown unit '{other}' in '{s}' (use us, ms, s, m or h)"
            ));
        }
    };
    let secs = value * scale;
    if !secs.is_finite() || !(0.0..=1e9).contains(&secs) {
        return Err(format!("'{s}' is out of range"));
    }
    Ok(Duration::from_secs_f64(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_in_every_unit() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2s"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_duration("1m"), Ok(Duration::from_secs(60)));
        assert_eq!(parse_duration("3"), Ok(Duration::from_secs(3)));
        assert!(parse_duration("fast").is_err());
        assert!(parse_duration("5y").is_err());
    }

    #[test]
    fn instant_arithmetic_saturates() {
        let t = Instant::from_millis(1000);
        assert_eq!(t + Duration::from_millis(5), Instant::from_millis(1005));
        assert_eq!(Instant::ZERO - t, Duration::ZERO);
        assert_eq!(t - Instant::ZERO, Duration::from_secs(1));
        assert_eq!(Instant::MAX + Duration::from_secs(1), Instant::MAX);
        assert_eq!(Instant::from_micros(u64::MAX - 1), Instant::MAX);
        assert_eq!(Instant::MAX.as_micros(), u64::MAX - 1);
        assert!(Instant::ZERO < Instant::from_micros(1));
        assert_eq!(Instant::default(), Instant::ZERO);
    }

    #[test]
    fn an_optional_instant_costs_no_more_than_an_instant() {
        assert_eq!(std::mem::size_of::<Option<Instant>>(), 8);
        assert_eq!(std::mem::size_of::<Instant>(), 8);
    }
}
