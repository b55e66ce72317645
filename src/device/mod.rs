//! The TUN device: creating it and configuring addresses, MTU and link state.
//!
//! The interface is created without the `persist` flag, so it disappears when the process
//! (the last holder of its file descriptor) exits. Configuration uses the kernel's interfaces
//! directly (rtnetlink for addresses, ioctls for MTU and link state); nothing shells out to `ip`.

pub mod impair;
mod link;
mod netlink;

use crate::config::{HostAddr, SetupError};
use crate::wire::{Gso, RxMeta};
use std::ffi::CString;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::{AsRawFd, RawFd};

const TUN_PATH: &str = "/dev/net/tun";

/// The virtio-net header (`struct virtio_net_hdr`, include/uapi/linux/virtio_net.h) that
/// precedes every packet on a TUN opened with `IFF_VNET_HDR`: 10 bytes, fields in the
/// host's byte order (legacy virtio, the TUN's default).
const VNET_HDR_LEN: usize = 10;
const VNET_F_NEEDS_CSUM: u8 = 1;
const VNET_F_DATA_VALID: u8 = 2;
const VNET_GSO_TCPV4: u8 = 1;
const VNET_GSO_TCPV6: u8 = 4;

/// An open TUN interface in non-blocking mode, carrying raw IP packets (no packet info header).
///
/// With offloads (the default, see [`Tun::open`]) every packet is preceded by a virtio-net
/// header and TCP may cross in super-segments of up to 64 KiB: the kernel hands over what its
/// TCP sent as one GSO packet, with the checksum left partial, and takes ours the same way
/// (`src/wire/gso.rs`). This is how wireguard-go and gVisor move bulk data through a TUN: the
/// per-packet cost of a `read`/`write` is paid once per 64 KiB instead of once per MSS.
pub struct Tun {
    handle: Handle,
    name: String,
    /// TUNSETOFFLOAD accepted checksum and TCP segmentation offload.
    offloads: bool,
}

/// Who holds the TUN's file descriptor.
enum Handle {
    /// A plain TUN, opened by the `tun-tap` crate (offload off).
    TunTap(tun_tap::Iface),
    /// A TUN whose packets carry a virtio-net header, opened here: `tun-tap` cannot ask for
    /// `IFF_VNET_HDR`.
    Vnet(File),
}

impl Tun {
    /// Create the interface `name`; with `offload`, ask for segmentation and checksum offload
    /// (`IFF_VNET_HDR`, `TUNSETOFFLOAD` with `TUN_F_CSUM|TUN_F_TSO4|TUN_F_TSO6`). A kernel that
    /// refuses the offloads gets a plain TUN. Fails with [`SetupError::NameTaken`] if any
    /// interface of that name exists already (the kernel would otherwise silently attach to a
    /// persistent TUN).
    pub fn open(name: &str, offload: bool) -> Result<Tun, SetupError> {
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
        let created = if offload {
            create_vnet(name)
        } else {
            tun_tap::Iface::without_packet_info(name, tun_tap::Mode::Tun).map(|iface| Tun {
                name: iface.name().to_owned(),
                handle: Handle::TunTap(iface),
                offloads: false,
            })
        };
        let mut tun = created.map_err(|e| {
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
        if matches!(tun.handle, Handle::Vnet(_)) {
            let features = libc::TUN_F_CSUM | libc::TUN_F_TSO4 | libc::TUN_F_TSO6;
            // SAFETY: TUNSETOFFLOAD takes its argument by value; the fd is open.
            let rc = unsafe {
                libc::ioctl(
                    tun.as_raw_fd(),
                    libc::TUNSETOFFLOAD,
                    libc::c_ulong::from(features),
                )
            };
            tun.offloads = rc == 0;
        }
        set_non_blocking(tun.as_raw_fd()).map_err(|source| SetupError::Io {
            what: "cannot make the TUN device non-blocking",
            source,
        })?;
        Ok(tun)
    }

    /// The interface's name as the kernel knows it.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether TCP super-segments may be sent (and will be received): segmentation offload
    /// is on.
    pub fn offloads(&self) -> bool {
        self.offloads
    }

    /// Read one IP packet into `buf`: its length, and what the kernel said about its
    /// checksum. `WouldBlock` when none is queued.
    pub fn recv(&self, buf: &mut [u8]) -> io::Result<(usize, RxMeta)> {
        let fd = match &self.handle {
            Handle::TunTap(iface) => return iface.recv(buf).map(|n| (n, RxMeta::default())),
            Handle::Vnet(file) => file.as_raw_fd(),
        };
        let mut hdr = [0u8; VNET_HDR_LEN];
        let n = readv(fd, &mut hdr, buf)?;
        // A read shorter than the header carries no packet: an empty one, dropped as malformed.
        let len = n.saturating_sub(VNET_HDR_LEN);
        let trusted = n >= VNET_HDR_LEN && hdr[0] & (VNET_F_NEEDS_CSUM | VNET_F_DATA_VALID) != 0;
        Ok((
            len,
            RxMeta {
                checksum_trusted: trusted,
            },
        ))
    }

    /// Write one IP packet; `WouldBlock` (or ENOBUFS) when the kernel cannot take it now.
    pub fn send(&self, packet: &[u8]) -> io::Result<usize> {
        match &self.handle {
            Handle::TunTap(iface) => iface.send(packet),
            // No flags, no GSO: a complete packet with its checksum.
            Handle::Vnet(file) => write(file.as_raw_fd(), &[&[0u8; VNET_HDR_LEN], packet, &[]]),
        }
    }

    /// Write one TCP super-segment, which the kernel splits (or takes whole) as `gso` says.
    /// `Unsupported` when offloads are off.
    pub fn send_gso(&self, packet: &[u8], gso: Gso) -> io::Result<usize> {
        self.send_gso_parts(packet, &[], gso)
    }

    /// Whether super-segments may be sent in two parts ([`Tun::send_gso_parts`]).
    pub fn gathers(&self) -> bool {
        self.offloads
    }

    /// [`Tun::send_gso`] for a super-segment whose payload lies apart from its headers: one
    /// `writev` gathers the virtio-net header, the headers and the payload, so the payload
    /// is copied once, by the kernel, straight from where it lies.
    pub fn send_gso_parts(&self, headers: &[u8], payload: &[u8], gso: Gso) -> io::Result<usize> {
        if !self.offloads {
            return Err(io::ErrorKind::Unsupported.into());
        }
        let mut hdr = [0u8; VNET_HDR_LEN];
        hdr[0] = VNET_F_NEEDS_CSUM;
        hdr[1] = if gso.ipv6 {
            VNET_GSO_TCPV6
        } else {
            VNET_GSO_TCPV4
        };
        hdr[2..4].copy_from_slice(&gso.hdr_len.to_ne_bytes());
        hdr[4..6].copy_from_slice(&gso.segment_size.to_ne_bytes());
        hdr[6..8].copy_from_slice(&gso.csum_start.to_ne_bytes());
        hdr[8..10].copy_from_slice(&Gso::CSUM_OFFSET.to_ne_bytes());
        write(self.as_raw_fd(), &[&hdr, headers, payload])
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
        link::set_txqueuelen(name, TX_QUEUE_LEN).map_err(|e| {
            SetupError::configure(name, format!("set txqueuelen {TX_QUEUE_LEN}"), e, false)
        })?;
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

    /// Whether the kernel delivers every one of `host_addrs` locally yet (`ip route get`
    /// says `local`). An IPv6 address added before the link came up gets its local route
    /// only when the kernel's address-configuration work has run, a few milliseconds after
    /// the link is up (even with IFA_F_NODAD), and a SYN,ACK to an address without one is
    /// dropped; so "configured" means this holds (the driver waits for it).
    pub fn host_addrs_local(&self, host_addrs: &[HostAddr]) -> io::Result<bool> {
        let mut rtnl = netlink::Route::open()?;
        for host in host_addrs {
            if !rtnl.is_local(host.addr)? {
                return Ok(false);
            }
        }
        Ok(true)
    }
}

impl AsRawFd for Tun {
    fn as_raw_fd(&self) -> RawFd {
        match &self.handle {
            Handle::TunTap(iface) => iface.as_raw_fd(),
            Handle::Vnet(file) => file.as_raw_fd(),
        }
    }
}

/// TUNSETIFF: create the TUN `name` with `IFF_TUN | IFF_NO_PI | IFF_VNET_HDR`.
fn create_vnet(name: &str) -> io::Result<Tun> {
    let file = OpenOptions::new().read(true).write(true).open(TUN_PATH)?;
    // SAFETY: `ifreq` is plain old data; all zeroes is a valid value.
    let mut ifr: libc::ifreq = unsafe { std::mem::zeroed() };
    if name.len() >= ifr.ifr_name.len() || name.as_bytes().contains(&0) {
        return Err(io::ErrorKind::InvalidInput.into());
    }
    for (dst, src) in ifr.ifr_name.iter_mut().zip(name.as_bytes()) {
        *dst = *src as libc::c_char;
    }
    ifr.ifr_ifru.ifru_flags =
        (libc::IFF_TUN | libc::IFF_NO_PI | libc::IFF_VNET_HDR) as libc::c_short;
    // SAFETY: TUNSETIFF reads and writes the `ifreq` we pass, which outlives the call.
    if unsafe { libc::ioctl(file.as_raw_fd(), libc::TUNSETIFF, &mut ifr) } < 0 {
        return Err(io::Error::last_os_error());
    }
    let name: String = ifr
        .ifr_name
        .iter()
        .take_while(|&&c| c != 0)
        .map(|&c| char::from(c as u8))
        .collect();
    Ok(Tun {
        handle: Handle::Vnet(file),
        name,
        offloads: false,
    })
}

fn set_non_blocking(fd: RawFd) -> io::Result<()> {
    // SAFETY: F_GETFL/F_SETFL on an open fd.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    if flags < 0 || unsafe { libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// One packet in two parts: the virtio-net header, then the IP packet (one syscall, no copy).
fn readv(fd: RawFd, hdr: &mut [u8], buf: &mut [u8]) -> io::Result<usize> {
    let iov = [
        libc::iovec {
            iov_base: hdr.as_mut_ptr().cast(),
            iov_len: hdr.len(),
        },
        libc::iovec {
            iov_base: buf.as_mut_ptr().cast(),
            iov_len: buf.len(),
        },
    ];
    // SAFETY: both buffers are valid for writes of their lengths and outlive the call.
    let n = unsafe { libc::readv(fd, iov.as_ptr(), 2) };
    usize::try_from(n).map_err(|_| io::Error::last_os_error())
}

/// Write `parts` as one packet (one syscall, no copy); empty parts are left out.
fn write(fd: RawFd, parts: &[&[u8]; 3]) -> io::Result<usize> {
    let mut iov = [libc::iovec {
        iov_base: std::ptr::null_mut(),
        iov_len: 0,
    }; 3];
    let mut count = 0;
    for part in parts.iter().filter(|p| !p.is_empty()) {
        if let Some(v) = iov.get_mut(count) {
            *v = libc::iovec {
                iov_base: part.as_ptr().cast_mut().cast(),
                iov_len: part.len(),
            };
            count += 1;
        }
    }
    // SAFETY: the first `count` iovecs point at buffers valid for reads of their lengths
    // that outlive the call; the kernel does not write through `iov_base` for writev.
    let n = unsafe { libc::writev(fd, iov.as_ptr(), count as libc::c_int) };
    usize::try_from(n).map_err(|_| io::Error::last_os_error())
}

/// The length of the queue of packets the kernel holds for synack (`txqueuelen`). A TUN gets
/// 500 by default, which a burst of connections overflows: 100,000 clients opening at once
/// lost 900,000 packets there, and a client whose line was dropped waits out its RTO backoff.
/// 20,000 carried that burst without a drop (docs/PERFORMANCE.md), but not 100,000 clients
/// that held the daemon's two CPUs for a minute (430,891 drops, issue 23): 100,000 packets
/// (the kernel's ring of pointers is 800 KB; the packets in it are only held while it is
/// full). Departure: Linux's own NICs default to 1000, but they are drained by interrupts,
/// not by one userspace reader.
pub const TX_QUEUE_LEN: u32 = 100_000;

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
    cmds.push(format!(
        "ip link set dev {iface} mtu {mtu} txqueuelen {TX_QUEUE_LEN} up"
    ));
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
