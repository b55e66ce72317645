//! TUN device setup shared by `smoltcp-server` and `tun-rate`.
//!
//! The device is opened in-process (`TUNSETIFF`, IP mode, no packet-info header, non-blocking)
//! and the kernel side is configured with the `ip` command, like synack does: MTU, up,
//! 198.18.0.1/24 and 2001:2::1/64. Refuses to touch interfaces in the machine's own network
//! namespace: the benchmark runs only inside namespaces that `scripts/bench.sh` creates.

use std::fs;
use std::io;
use std::os::fd::{FromRawFd, OwnedFd};
use std::process::Command;

/// True when this process may be in the machine's own network namespace: the same namespace
/// as PID 1 or, where PID 1's namespace cannot be read (as in some sandboxes), one with a
/// default route. A private namespace made for the benchmark has neither.
pub fn in_initial_netns() -> bool {
    if let (Ok(a), Ok(b)) = (
        fs::read_link("/proc/self/ns/net"),
        fs::read_link("/proc/1/ns/net"),
    ) {
        return a == b;
    }
    has_default_route()
}

fn has_default_route() -> bool {
    // /proc/net/route: "Iface Destination Gateway ..." with the destination in hex.
    let v4 = fs::read_to_string("/proc/net/route").map_or(true, |t| {
        t.lines()
            .skip(1)
            .any(|l| l.split_whitespace().nth(1) == Some("00000000"))
    });
    // /proc/net/ipv6_route: "dest plen src splen next-hop metric refcnt use flags iface"; the
    // kernel keeps a reject default route on `lo` in every namespace, which does not count.
    let v6 = fs::read_to_string("/proc/net/ipv6_route").is_ok_and(|t| {
        t.lines().any(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            f.len() >= 10 && f[0].bytes().all(|c| c == b'0') && f[1] == "00" && f[9] != "lo"
        })
    });
    v4 || v6
}

/// Opens (creating if needed) the TUN device `name` in IP mode without packet info, with
/// `O_NONBLOCK` set on the returned descriptor.
pub fn open(name: &str) -> io::Result<OwnedFd> {
    open_with(name, None)
}

/// The size of the virtio-net header that precedes every packet on a TUN opened with offloads.
pub const VNET_HDR_LEN: usize = 10;

/// [`open`], and with `offloads` also `IFF_VNET_HDR` (every packet then carries a 10-byte
/// virtio-net header) and `TUNSETOFFLOAD` with those features (`libc::TUN_F_*`).
pub fn open_with(name: &str, offloads: Option<libc::c_uint>) -> io::Result<OwnedFd> {
    if name.is_empty() || name.len() >= libc::IFNAMSIZ {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "bad interface name",
        ));
    }
    // SAFETY: a plain open(2) of a constant NUL-terminated path.
    let fd = unsafe { libc::open(c"/dev/net/tun".as_ptr(), libc::O_RDWR | libc::O_NONBLOCK) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` is a freshly opened descriptor that nothing else owns.
    let owned = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: ifreq is plain old data; all-zero is a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in req.ifr_name.iter_mut().zip(name.bytes()) {
        *dst = src as libc::c_char;
    }
    let mut flags = libc::IFF_TUN | libc::IFF_NO_PI;
    if offloads.is_some() {
        flags |= libc::IFF_VNET_HDR;
    }
    req.ifr_ifru.ifru_flags = flags as libc::c_short;
    // SAFETY: TUNSETIFF reads and writes one `ifreq`, which `req` is.
    let rc = unsafe { libc::ioctl(fd, libc::TUNSETIFF, &mut req as *mut libc::ifreq) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    if let Some(features) = offloads {
        // SAFETY: TUNSETOFFLOAD takes its argument by value.
        let rc = unsafe { libc::ioctl(fd, libc::TUNSETOFFLOAD, libc::c_ulong::from(features)) };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(owned)
}

fn ip(args: &[&str]) -> io::Result<()> {
    let status = Command::new("ip").args(args).status()?;
    if status.success() {
        Ok(())
    } else {
        Err(io::Error::other(format!(
            "ip {} failed: {status}",
            args.join(" ")
        )))
    }
}

/// Gives the kernel side of TUN `name` its MTU and addresses (198.18.0.1/24, 2001:2::1/64) and
/// brings it up. Refuses to run in the machine's own network namespace.
pub fn configure_host_side(name: &str, mtu: u32) -> io::Result<()> {
    if in_initial_netns() {
        return Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            "refusing to configure a TUN in the machine's own network namespace; \
             run inside a private one (unshare -n / ip netns exec)",
        ));
    }
    let mtu = mtu.to_string();
    ip(&["link", "set", "dev", name, "mtu", &mtu])?;
    ip(&["addr", "add", crate::HOST_V4_CIDR, "dev", name])?;
    // IPv6 is optional for the benchmark (it measures over IPv4): tolerate its absence.
    if let Err(e) = ip(&[
        "-6",
        "addr",
        "add",
        crate::HOST_V6_CIDR,
        "dev",
        name,
        "nodad",
    ]) {
        eprintln!("warning: no IPv6 on {name}: {e}");
    }
    ip(&["link", "set", "dev", name, "up"])
}

/// Opens TUN `name` and configures its kernel side; see [`open`] and [`configure_host_side`].
pub fn open_configured(name: &str, mtu: u32) -> io::Result<OwnedFd> {
    open_configured_with(name, mtu, None)
}

/// [`open_configured`] with offloads; see [`open_with`].
pub fn open_configured_with(
    name: &str,
    mtu: u32,
    offloads: Option<libc::c_uint>,
) -> io::Result<OwnedFd> {
    let fd = open_with(name, offloads)?;
    configure_host_side(name, mtu)?;
    Ok(fd)
}
