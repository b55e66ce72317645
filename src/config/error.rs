//! Setup failures, each shown to the user as one sentence: what failed, why, what to do.

use std::fmt;
use std::io;

#[derive(Debug)]
pub enum SetupError {
    /// Opening /dev/net/tun was refused.
    TunOpenDenied { exe: String },
    /// Creating the interface (TUNSETIFF) needs CAP_NET_ADMIN.
    TunCreateDenied { iface: String, exe: String },
    /// /dev/net/tun is missing.
    TunMissing,
    /// /dev/net/tun exists but no driver answers behind it.
    TunDriverMissing,
    /// An interface of that name exists already.
    NameTaken { iface: String },
    /// Any other failure creating the TUN interface.
    Tun { iface: String, source: io::Error },
    /// Assigning an address, setting the MTU or bringing the link up failed.
    Configure {
        iface: String,
        action: String,
        source: io::Error,
        hint: &'static str,
    },
    /// The OS random source failed (needed for the RFC 6528 ISN secret).
    Random(String),
    /// The event loop could not be set up or the device failed while running.
    Io {
        what: &'static str,
        source: io::Error,
    },
}

/// "Permission denied (os error 13)" -> "permission denied".
pub fn plain(e: &io::Error) -> String {
    let s = e.to_string();
    let s = s.split(" (os error").next().unwrap_or_default();
    let mut chars = s.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}

impl SetupError {
    /// A failed configuration step; `ipv6` says whether it concerned an IPv6 address, which
    /// changes what EACCES means (IPv6 disabled on the interface rather than no privilege).
    pub fn configure(iface: &str, action: String, source: io::Error, ipv6: bool) -> SetupError {
        let hint = configure_hint(&source, ipv6);
        SetupError::Configure {
            iface: iface.to_owned(),
            action,
            source,
            hint,
        }
    }
}

fn configure_hint(source: &io::Error, ipv6: bool) -> &'static str {
    match source.raw_os_error() {
        Some(libc::EACCES | libc::EAFNOSUPPORT | libc::EOPNOTSUPP | libc::EADDRNOTAVAIL)
            if ipv6 =>
        {
            "IPv6 seems disabled here; enable it (sysctl net.ipv6.conf.all.disable_ipv6=0) or \
             give only IPv4 addresses with --addr and --host-addr"
        }
        Some(libc::EPERM | libc::EACCES) => {
            "run as root or give the binary CAP_NET_ADMIN, or pass --no-configure and run the \
             printed ip commands yourself"
        }
        Some(libc::EEXIST) => {
            "the address is already assigned; pick another --host-addr or remove it"
        }
        Some(libc::EINVAL) => "check --mtu and --host-addr, or pass --no-configure",
        _ => "pass --no-configure and configure the interface yourself",
    }
}

impl fmt::Display for SetupError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SetupError::TunOpenDenied { exe } => write!(
                f,
                "cannot open /dev/net/tun: permission denied — run as root or give the binary \
                 CAP_NET_ADMIN (setcap cap_net_admin+ep {exe}); if it still fails, /dev/net/tun \
                 itself is not accessible to you (chmod 0666 /dev/net/tun)"
            ),
            SetupError::TunCreateDenied { iface, exe } => write!(
                f,
                "cannot create interface {iface}: permission denied — run as root or give the \
                 binary CAP_NET_ADMIN (setcap cap_net_admin+ep {exe})"
            ),
            SetupError::TunMissing => {
                f.write_str("/dev/net/tun does not exist — load the tun module (modprobe tun)")
            }
            SetupError::TunDriverMissing => f.write_str(
                "/dev/net/tun exists but the tun driver is not loaded — load it (modprobe tun)",
            ),
            SetupError::NameTaken { iface } => write!(
                f,
                "interface name {iface} is already taken — pick another with --iface or remove \
                 it (ip link del {iface})"
            ),
            SetupError::Tun { iface, source } => {
                write!(f, "cannot create TUN interface {iface}: {}", plain(source))
            }
            SetupError::Configure {
                iface,
                action,
                source,
                hint,
            } => write!(f, "cannot {action} on {iface}: {} — {hint}", plain(source)),
            SetupError::Random(e) => write!(
                f,
                "cannot read the operating system's random source for the sequence-number \
                 secret: {e}"
            ),
            SetupError::Io { what, source } => write!(f, "{what}: {}", plain(source)),
        }
    }
}

impl std::error::Error for SetupError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            SetupError::Tun { source, .. }
            | SetupError::Configure { source, .. }
            | SetupError::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}
