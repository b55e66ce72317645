//! The hardening flags: `--backlog`, `--max-connections`, `--max-buffer-memory`,
//! `--keepalive`, and how they become the endpoint's [`Limits`].

use super::Args;
use crate::endpoint::Limits;
use crate::tcp::BufferSizes;
use crate::time::{Duration, parse_duration};
use std::fmt;
use std::str::FromStr;

/// A byte count such as `512MiB`, `64KiB`, `1GiB` or `1048576` (plain bytes). Units are
/// binary (KiB = 1024); `K`, `M`, `G` and `KB`, `MB`, `GB` are read the same way.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ByteSize(pub usize);

impl FromStr for ByteSize {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let t = s.trim();
        let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
        let (num, unit) = t.split_at(split);
        let n: usize = num
            .parse()
            .map_err(|_| format!("'{s}' is not a size (try 512MiB, 64KiB or a number of bytes)"))?;
        let shift = match unit.trim().to_ascii_lowercase().as_str() {
            "" | "b" => 0,
            "k" | "kb" | "kib" => 10,
            "m" | "mb" | "mib" => 20,
            "g" | "gb" | "gib" => 30,
            other => {
                return Err(format!(
                    "unknown unit '{other}' in '{s}' (use KiB, MiB, GiB or plain bytes)"
                ));
            }
        };
        let bytes = n
            .checked_mul(1usize << shift)
            .ok_or_else(|| format!("'{s}' is too large"))?;
        if bytes == 0 {
            return Err(format!("'{s}' is zero: a size must be above zero"));
        }
        Ok(ByteSize(bytes))
    }
}

impl fmt::Display for ByteSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.0;
        for (shift, unit) in [(30, "GiB"), (20, "MiB"), (10, "KiB")] {
            if n >= 1 << shift && n.is_multiple_of(1 << shift) {
                return write!(f, "{}{unit}", n >> shift);
            }
        }
        write!(f, "{n}")
    }
}

/// `--rmem`/`--wmem`: `MIN,DEFAULT,MAX`, each a [`ByteSize`], with MIN ≤ DEFAULT ≤ MAX.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BufferTriple(pub BufferSizes);

impl FromStr for BufferTriple {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let parts: Vec<&str> = s.split(',').collect();
        let [min, default, max] = parts.as_slice() else {
            return Err(format!(
                "'{s}' is not MIN,DEFAULT,MAX (three sizes, e.g. 4KiB,128KiB,32MiB)"
            ));
        };
        let size = |p: &str| p.parse::<ByteSize>().map(|b| b.0);
        let (min, default, max) = (size(min)?, size(default)?, size(max)?);
        if !(min <= default && default <= max) {
            return Err(format!(
                "'{s}': the sizes must be in order, MIN <= DEFAULT <= MAX"
            ));
        }
        if max > 1 << 30 {
            return Err(format!(
                "'{s}': MAX is above 1GiB, the largest window TCP can offer (RFC 7323)"
            ));
        }
        Ok(BufferTriple(BufferSizes { min, default, max }))
    }
}

impl fmt::Display for BufferTriple {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0;
        write!(
            f,
            "{},{},{}",
            ByteSize(b.min),
            ByteSize(b.default),
            ByteSize(b.max)
        )
    }
}

/// A whole number of at least 1 (for `--backlog` and `--max-connections`).
pub(super) fn parse_count(s: &str) -> Result<usize, String> {
    match s.trim().parse::<usize>() {
        Ok(0) => Err("must be at least 1".into()),
        Ok(n) => Ok(n),
        Err(_) => Err(format!("'{s}' is not a whole number")),
    }
}

/// An `--mtu`: a whole number of bytes from IPv4's minimum up; IPv6's higher minimum is
/// checked once the addresses are known (`Args::daemon_config`). Said in words, not in
/// Rust's range syntax.
pub(super) fn parse_mtu(s: &str) -> Result<u16, String> {
    let range = || {
        format!(
            "must be between {} and 65535 ({} with IPv6 addresses)",
            super::IPV4_MIN_MTU,
            super::IPV6_MIN_MTU
        )
    };
    match s.trim().parse::<u64>() {
        Ok(n) => u16::try_from(n)
            .ok()
            .filter(|&n| n >= super::IPV4_MIN_MTU)
            .ok_or_else(range),
        Err(_) => Err(format!(
            "'{s}' is not a whole number of bytes; it {}",
            range()
        )),
    }
}

/// One `--keepalive [PORT=]DURATION`: for every listener, or for the one on PORT.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KeepaliveArg {
    pub port: Option<u16>,
    pub idle: Duration,
}

impl FromStr for KeepaliveArg {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (port, duration) = match s.split_once('=') {
            Some((p, d)) => {
                let port = match p.trim().parse::<u16>() {
                    Ok(0) | Err(_) => {
                        return Err(format!("'{p}' is not a port number between 1 and 65535"));
                    }
                    Ok(p) => p,
                };
                (Some(port), d)
            }
            None => (None, s),
        };
        let idle = parse_duration(duration)?;
        if idle < Duration::from_millis(1) {
            return Err(format!(
                "keep-alive after '{duration}' is too short (at least 1ms)"
            ));
        }
        Ok(KeepaliveArg { port, idle })
    }
}

impl fmt::Display for KeepaliveArg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.port {
            Some(p) => write!(f, "{p}={:?}", self.idle),
            None => write!(f, "{:?}", self.idle),
        }
    }
}

impl Args {
    /// The endpoint's resource limits from the flags.
    pub fn limits(&self) -> Limits {
        Limits {
            backlog: self.backlog,
            max_connections: self.max_connections,
            max_time_wait: self.max_time_wait,
            max_buffer_memory: self.max_buffer_memory.0,
            keepalive: self
                .keepalive
                .iter()
                .rev()
                .find(|k| k.port.is_none())
                .map(|k| k.idle),
            keepalive_ports: self
                .keepalive
                .iter()
                .filter_map(|k| k.port.map(|p| (p, k.idle)))
                .collect(),
            max_exec: self.max_exec,
        }
    }

    /// `--keepalive PORT=...` must name a listening port.
    pub(super) fn validate_keepalive(&self) -> Result<(), String> {
        for k in &self.keepalive {
            if let Some(port) = k.port
                && !self.listen.iter().any(|l| l.port == port)
            {
                return Err(format!(
                    "--keepalive {k} names port {port}, which has no --listen"
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(extra: &[&str]) -> Result<Args, clap::Error> {
        Args::try_from_iter(std::iter::once("synack").chain(extra.iter().copied()))
    }

    #[test]
    fn sizes_parse_in_binary_units_and_plain_bytes() {
        let b = |s: &str| s.parse::<ByteSize>().map(|b| b.0);
        assert_eq!(b("512MiB"), Ok(512 << 20));
        assert_eq!(b("64KiB"), Ok(64 << 10));
        assert_eq!(b("2GiB"), Ok(2 << 30));
        assert_eq!(b("1m"), Ok(1 << 20));
        assert_eq!(b("4096"), Ok(4096));
        assert!(b("0").is_err());
        assert!(b("12 parsecs").is_err());
        assert!(b("MiB").is_err());
        assert!(b("99999999999999999999GiB").is_err());
        assert_eq!(ByteSize(512 << 20).to_string(), "512MiB");
        assert_eq!(ByteSize(1000).to_string(), "1000");
    }

    #[test]
    fn hardening_defaults_match_the_issue() {
        let l = parse(&[]).unwrap().limits();
        assert_eq!(l, Limits::default());
        assert_eq!(l.backlog, 1024);
        assert_eq!(l.max_connections, 65536);
        assert_eq!(l.max_buffer_memory, 512 << 20);
        assert_eq!(l.keepalive, None, "keep-alive is off by default (MUST-25)");
    }

    #[test]
    fn hardening_flags_reach_the_limits() {
        let l = parse(&[
            "--backlog",
            "8",
            "--max-connections",
            "100",
            "--max-buffer-memory",
            "64MiB",
            "--keepalive",
            "2h",
            "--keepalive",
            "7=30s",
        ])
        .unwrap()
        .limits();
        assert_eq!((l.backlog, l.max_connections), (8, 100));
        assert_eq!(l.max_buffer_memory, 64 << 20);
        assert_eq!(l.keepalive, Some(Duration::from_secs(7200)));
        assert_eq!(l.keepalive_ports, vec![(7, Duration::from_secs(30))]);
    }

    #[test]
    fn rmem_and_wmem_take_min_default_max_like_the_sysctls() {
        let a = parse(&[]).unwrap();
        let c = a.endpoint_config();
        assert_eq!(c.rmem, BufferSizes::RMEM);
        assert_eq!(c.wmem, BufferSizes::WMEM);
        assert_eq!(
            (c.rmem.min, c.rmem.default, c.rmem.max),
            (4096, 128 << 10, 32 << 20)
        );
        assert_eq!(a.max_time_wait, 65536);
        let c = parse(&["--rmem", "4096,87380,6291456", "--wmem", "8KiB,16KiB,4MiB"])
            .unwrap()
            .endpoint_config();
        assert_eq!((c.rmem.default, c.rmem.max), (87380, 6291456));
        assert_eq!(
            (c.wmem.min, c.wmem.default, c.wmem.max),
            (8 << 10, 16 << 10, 4 << 20)
        );
        assert_eq!(BufferTriple(c.wmem).to_string(), "8KiB,16KiB,4MiB");
        for bad in [
            "1MiB",
            "4KiB,1MiB",
            "4KiB,1MiB,64KiB",
            "0,1,2",
            "4KiB,64KiB,2GiB",
            "a,b,c",
            "1,2,3,4",
        ] {
            assert!(bad.parse::<BufferTriple>().is_err(), "{bad} accepted");
            assert!(parse(&["--rmem", bad]).is_err(), "--rmem {bad} accepted");
        }
    }

    #[test]
    fn bad_hardening_values_are_rejected() {
        for bad in [
            &["--backlog", "0"][..],
            &["--max-connections", "0"],
            &["--max-time-wait", "0"],
            &["--max-buffer-memory", "lots"],
            &["--keepalive", "soon"],
            &["--keepalive", "0=5s"],
            &["--keepalive", "5555=5s"],
        ] {
            assert!(parse(bad).is_err(), "{bad:?} accepted");
        }
    }
}
