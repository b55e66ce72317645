//! The scripts' `sysctl` settings, mapped onto synack's configuration.
//!
//! In synack's mode a script's shell commands must not change the host: scripts/packetdrill.sh
//! puts a `sysctl` stand-in first on PATH, which appends each `key=value` it is given to a
//! file (`sysctl_file=` in `--so_flags`). The library reads the new lines before every socket
//! call and every packet in, and maps those synack has an equivalent for onto `tcp::Config`;
//! it says on stderr what it mapped and what it ignored.

use std::time::Duration;

use synack::tcp::{self, BufferSizes, CcKind};

/// What one `key=value` setting did.
#[derive(Debug, PartialEq, Eq)]
pub enum Applied {
    /// Mapped onto synack's configuration: what it set.
    Mapped(String),
    /// No equivalent in synack (or a value synack cannot take): why it is ignored.
    Ignored(String),
    /// `tcp_fastopen_key`: the endpoint's Fast Open cookie key (not part of `tcp::Config`).
    FastOpenKey(tcp::FastOpenKey),
}

/// Apply one `key=value` line (as `sysctl` takes it: `net.ipv4.tcp_sack=1`, or the
/// `/proc/sys` form `net/ipv4/tcp_sack`) to `config`.
pub fn apply(config: &mut tcp::Config, line: &str) -> Applied {
    let Some((key, value)) = line.split_once('=') else {
        return Applied::Ignored("not a key=value setting".into());
    };
    let key = key
        .trim()
        .trim_start_matches("/proc/sys/")
        .replace('/', ".");
    let value = value.trim().trim_matches('"').trim_matches('\'');
    let Some(name) = key.strip_prefix("net.ipv4.") else {
        return Applied::Ignored("not a TCP setting".into());
    };
    let flag = || match value {
        "0" => Some(false),
        "1" => Some(true),
        _ => None,
    };
    let number = || value.parse::<u64>().ok();
    let bad = || Applied::Ignored(format!("value '{value}' not understood"));
    match name {
        "tcp_rmem" | "tcp_wmem" => {
            let Some(sizes) = buffer_sizes(value) else {
                return bad();
            };
            let (target, what) = if name == "tcp_rmem" {
                (&mut config.rmem, "rmem")
            } else {
                (&mut config.wmem, "wmem")
            };
            *target = sizes;
            Applied::Mapped(format!(
                "{what} = {} {} {}",
                sizes.min, sizes.default, sizes.max
            ))
        }
        "tcp_timestamps" | "tcp_sack" | "tcp_window_scaling" => {
            let Some(on) = flag() else { return bad() };
            let (target, what) = match name {
                "tcp_timestamps" => (&mut config.timestamps, "timestamps"),
                "tcp_sack" => (&mut config.sack, "sack"),
                _ => (&mut config.window_scaling, "window_scaling"),
            };
            *target = on;
            Applied::Mapped(format!("{what} = {on}"))
        }
        "tcp_syn_retries" | "tcp_synack_retries" | "tcp_retries2" => {
            let Some(n) = number().and_then(|n| u32::try_from(n).ok()) else {
                return bad();
            };
            let (target, what) = match name {
                "tcp_syn_retries" => (&mut config.syn_retries, "syn_retries"),
                "tcp_synack_retries" => (&mut config.synack_retries, "synack_retries"),
                _ => (&mut config.r2_retries, "r2_retries"),
            };
            *target = n;
            Applied::Mapped(format!("{what} = {n}"))
        }
        "tcp_rfc1337" => match flag() {
            // RFC 1337: a RST in TIME-WAIT is ignored. synack always does this (decisions
            // table, "RST in TIME-WAIT"); Linux does it with tcp_rfc1337=1.
            Some(true) => Applied::Mapped("rfc1337 (synack's only behaviour)".into()),
            Some(false) => Applied::Ignored(
                "synack always ignores a RST in TIME-WAIT (RFC 1337); Linux's 0 ends TIME-WAIT"
                    .into(),
            ),
            None => bad(),
        },
        "tcp_fin_timeout" => {
            let Some(secs) = number() else { return bad() };
            config.fin_wait_2_timeout = Duration::from_secs(secs);
            Applied::Mapped(format!("fin_wait_2_timeout = {secs} s"))
        }
        "tcp_congestion_control" => {
            // Linux's "reno" is NewReno (RFC 6582 recovery); synack has NewReno and CUBIC.
            let cc = match value {
                "cubic" => CcKind::Cubic,
                "reno" => CcKind::NewReno,
                other => {
                    return Applied::Ignored(format!(
                        "synack has no '{other}' (only cubic and reno)"
                    ));
                }
            };
            config.cc = cc;
            Applied::Mapped(format!("cc = {cc}"))
        }
        "tcp_ecn" => {
            // --ecn, as net.ipv4.tcp_ecn: 0 off, 1 on (ask and accept), 2 server, 3 accecn
            // (ask for AccECN); 4 and 5 accept AccECN too (as synack's on and server do) and
            // ask RFC 3168 or nothing.
            let mode = match value {
                "0" => tcp::EcnMode::Off,
                "1" | "4" => tcp::EcnMode::On,
                "2" | "5" => tcp::EcnMode::Server,
                "3" => tcp::EcnMode::AccEcn,
                _ => return Applied::Ignored(format!("tcp_ecn={value}: no such mode")),
            };
            config.ecn = mode;
            Applied::Mapped(format!("ecn = {mode}"))
        }
        "tcp_fastopen" => {
            // A bit mask: 0x2 enables the server side (--fastopen); the client bit (0x1) and
            // the rest (cookies not required, ...) have no equivalent.
            let parsed = match value
                .strip_prefix("0x")
                .or_else(|| value.strip_prefix("0X"))
            {
                Some(hex) => u64::from_str_radix(hex, 16).ok(),
                None => number(),
            };
            let Some(bits) = parsed else { return bad() };
            config.fastopen = bits & 0x2 != 0;
            Applied::Mapped(format!("fastopen = {}", config.fastopen))
        }
        "tcp_fastopen_key" => {
            let Some(key) = tcp::FastOpenKey::parse_linux(value) else {
                return bad();
            };
            Applied::FastOpenKey(key)
        }
        _ => Applied::Ignored("no equivalent in synack".into()),
    }
}

/// `"4096 540000 15728640"` (tabs or spaces) as min, default, max.
fn buffer_sizes(value: &str) -> Option<BufferSizes> {
    let mut fields = value.split_whitespace().map(str::parse::<usize>);
    let (Some(Ok(min)), Some(Ok(default)), Some(Ok(max)), None) =
        (fields.next(), fields.next(), fields.next(), fields.next())
    else {
        return None;
    };
    (min <= default && default <= max).then_some(BufferSizes { min, default, max })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_sh_buffer_sizes_map_onto_rmem_and_wmem() {
        let mut config = tcp::Config::default();
        let applied = apply(&mut config, "net.ipv4.tcp_rmem=4096 540000 15728640");
        assert_eq!(
            applied,
            Applied::Mapped("rmem = 4096 540000 15728640".into())
        );
        assert_eq!(config.rmem.default, 540_000);
        apply(&mut config, "net.ipv4.tcp_wmem=\"4096 262144 4194304\"");
        assert_eq!(config.wmem.default, 262_144);
        assert_eq!(config.wmem.max, 4_194_304);
    }

    #[test]
    fn switches_and_counts_are_mapped() {
        let mut config = tcp::Config::default();
        apply(&mut config, "net.ipv4.tcp_timestamps=0");
        apply(&mut config, "net/ipv4/tcp_sack=0");
        apply(&mut config, "net.ipv4.tcp_syn_retries=5");
        apply(&mut config, "net.ipv4.tcp_congestion_control=reno");
        assert!(!config.timestamps);
        assert!(!config.sack);
        assert_eq!(config.syn_retries, 5);
        assert_eq!(config.cc, CcKind::NewReno);
    }

    #[test]
    fn fast_open_bits_and_key_are_mapped() {
        let mut config = tcp::Config::default();
        apply(&mut config, "net.ipv4.tcp_fastopen=0x70403");
        assert!(config.fastopen);
        apply(&mut config, "net.ipv4.tcp_fastopen=1");
        assert!(!config.fastopen);
        let applied = apply(
            &mut config,
            "net.ipv4.tcp_fastopen_key=a0bf63f7-ed803d81-cd641d30-cebc4a90",
        );
        assert_eq!(
            applied,
            Applied::FastOpenKey(
                tcp::FastOpenKey::parse_linux("a0bf63f7-ed803d81-cd641d30-cebc4a90").unwrap()
            )
        );
        assert!(matches!(
            apply(&mut config, "net.ipv4.tcp_fastopen_key=nonsense"),
            Applied::Ignored(_)
        ));
    }

    #[test]
    fn rfc1337_on_is_synacks_behaviour_and_off_is_not_available() {
        let mut config = tcp::Config::default();
        assert!(matches!(
            apply(&mut config, "net.ipv4.tcp_rfc1337=1"),
            Applied::Mapped(_)
        ));
        assert!(matches!(
            apply(&mut config, "net.ipv4.tcp_rfc1337=0"),
            Applied::Ignored(_)
        ));
    }

    #[test]
    fn what_synack_lacks_is_ignored_and_leaves_the_configuration_alone() {
        let mut config = tcp::Config::default();
        for line in [
            "net.ipv4.tcp_ecn=6",
            "net.ipv4.tcp_congestion_control=bbr",
            "net.ipv4.tcp_timestamps=yes",
            "net.ipv4.tcp_rmem=1 2",
            "kernel.printk=4",
        ] {
            assert!(
                matches!(apply(&mut config, line), Applied::Ignored(_)),
                "{line}"
            );
        }
        assert_eq!(config.cc, CcKind::Cubic);
        assert!(config.timestamps);
        assert_eq!(config.rmem.default, BufferSizes::RMEM.default);
    }
}
