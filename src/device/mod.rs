//! The TUN device: creating it and configuring addresses, MTU and link state.
//!
//! The interface is created without the `persist` flag, so it disappears when the process
//! (the last holder of its file descriptor) exits. Configuration uses the kernel's interfaces
//! directly (rtnetlink for addresses, ioctls for MTU and link state); nothing shells out to `ip`.

pub mod impair;
mod link;
mod netlink;

use crate::cli::{HostAddr, SetupError};
use std::ffi::CString;
use std::fs::OpenOptions;
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use tun_tap::{Iface, Mode};

const TUN_PATH: &str = "/dev/net/tun";

/// An open TUN interface in non-blocking mode, carrying raw IP packets (no packet info header).
pub struct Tun {
    iface: Iface,
}

impl Tun {
    /// Create the interface `name`. Fails with [`SetupError::NameTaken`] if any interface of that
    /// name exists already (the kernel would otherwise silently attach to a persistent TUN).
    pub fn open(name: &str) -> Result<Tun, SetupError> {
        // Open the control device once ourselves, so that its errors (missing file, file
        // permissions) are told apart from TUNSETIFF's (privilege, name in use).
        if let Err(e) = OpenOptions::new().read(true).write(true).open(TUN_PATH) {
            return Err(match e.raw_os_error() {
                Some(libc::ENOENT) => SetupError::TunMissing,
                Some(libc::ENODEV | libc::ENXIO) => SetupError::TunDriverMissing,
                Some(libc::EACCES | libc::EPERM) => SetupError::TunOpenDenied { exe: exe_path() },
                _ => SetupError::Tun {
                    iface: name.to_owned(),
                    source: e,
                },
            });
        }
        if interface_index(name).is_some() {
            return Err(SetupError::NameTaken {
                iface: name.to_owned(),
            });
        }
        let iface = Iface::without_packet_info(name, Mode::Tun).map_err(|e| {
            match e.raw_os_error() {
                Some(libc::EPERM | libc::EACCES) => SetupError::TunCreateDenied {
                    iface: name.to_owned(),
                    exe: exe_path(),
                },
                // EBUSY: a TUN of that name is attached elsewhere; EINVAL: a non-TUN interface
                // holds the name (created between our check and the ioctl).
                Some(libc::EBUSY | libc::EEXIST | libc::EINVAL) => SetupError::NameTaken {
                    iface: name.to_owned(),
                },
                _ => SetupError::Tun {
                    iface: name.to_owned(),
                    source: e,
                },
            }
        })?;
        iface.set_non_blocking().map_err(|source| SetupError::Io {
            what: "cannot make the TUN device non-blocking",
            source,
        })?;
        Ok(Tun { iface })
    }

    /// The interface's name as the kernel knows it.
    pub fn name(&self) -> &str {
        self.iface.name()
    }

    /// Read one IP packet; `WouldBlock` when none is queued.
    pub fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.iface.recv(buf)
    }

    /// Write one IP packet; `WouldBlock` (or ENOBUFS) when the kernel cannot take it now.
    pub fn send(&self, packet: &[u8]) -> io::Result<usize> {
        self.iface.send(packet)
    }

    /// Set the MTU, assign every host address (IPv6 without duplicate address detection, so
    /// it is usable at once) and bring the link up.
    pub fn configure(&self, host_addrs: &[HostAddr], mtu: u16) -> Result<(), SetupError> {
        let name = self.name();
        let index = interface_index(name).ok_or_else(|| {
            SetupError::configure(
                name,
                "look up the interface index".to_owned(),
                io::Error::last_os_error(),
                false,
            )
        })?;
        // MTU first: the kernel keeps IPv6 off an interface whose MTU is below 1280.
        link::set_mtu(name, mtu)
            .map_err(|e| SetupError::configure(name, format!("set MTU {mtu}"), e, false))?;
        let mut rtnl = netlink::Route::open().map_err(|e| {
            SetupError::configure(name, "open a netlink socket".to_owned(), e, false)
        })?;
        for host in host_addrs {
            rtnl.add_address(index, host).map_err(|e| {
                SetupError::configure(name, format!("add address {host}"), e, host.addr.is_ipv6())
            })?;
        }
        link::set_up(name)
            .map_err(|e| SetupError::configure(name, "bring the link up".to_owned(), e, false))
    }
}

impl AsRawFd for Tun {
    fn as_raw_fd(&self) -> RawFd {
        self.iface.as_raw_fd()
    }
}

/// The `ip` commands that do what [`Tun::configure`] does, for `--no-configure`.
pub fn ip_commands(iface: &str, host_addrs: &[HostAddr], mtu: u16) -> Vec<String> {
    let mut cmds: Vec<String> = host_addrs
        .iter()
        .map(|h| {
            if h.addr.is_ipv6() {
                format!("ip -6 addr add {h} dev {iface} nodad")
            } else {
                format!("ip addr add {h} dev {iface}")
            }
        })
        .collect();
    cmds.push(format!("ip link set dev {iface} mtu {mtu} up"));
    cmds
}

fn interface_index(name: &str) -> Option<u32> {
    let c_name = CString::new(name).ok()?;
    // SAFETY: `c_name` is a valid NUL-terminated string that outlives the call.
    let index = unsafe { libc::if_nametoindex(c_name.as_ptr()) };
    (index != 0).then_some(index)
}

/// The running binary's path, for the `setcap` hint.
fn exe_path() -> String {
    std::env::current_exe()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|_| "./synack".to_owned())
}

#[cfg(test)]
mod tests;
