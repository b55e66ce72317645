//! Link settings through the classic interface ioctls: MTU (SIOCSIFMTU), the transmit queue
//! length (SIOCSIFTXQLEN) and IFF_UP.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// A throwaway datagram socket to issue interface ioctls on.
fn control_socket() -> io::Result<OwnedFd> {
    // SAFETY: plain syscall; the result is checked before use.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` was just returned by socket() and is owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn ifreq_for(name: &str) -> io::Result<libc::ifreq> {
    // SAFETY: ifreq is plain old data; all-zero is a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    let bytes = name.as_bytes();
    if bytes.len() >= req.ifr_name.len() || bytes.contains(&0) {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    }
    for (dst, src) in req.ifr_name.iter_mut().zip(bytes) {
        *dst = *src as libc::c_char;
    }
    Ok(req)
}

fn ioctl(sock: &OwnedFd, request: libc::c_ulong, req: &mut libc::ifreq) -> io::Result<()> {
    // SAFETY: `req` is a valid, initialised ifreq that the kernel reads or fills in place.
    let rc = unsafe { libc::ioctl(sock.as_raw_fd(), request as _, req as *mut libc::ifreq) };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

pub fn set_mtu(name: &str, mtu: u16) -> io::Result<()> {
    let sock = control_socket()?;
    let mut req = ifreq_for(name)?;
    req.ifr_ifru.ifru_mtu = libc::c_int::from(mtu);
    ioctl(&sock, libc::SIOCSIFMTU as _, &mut req)
}

/// The length of the queue in which the kernel holds packets for synack to read (for a TUN,
/// the size of its packet ring).
pub fn set_txqueuelen(name: &str, len: u32) -> io::Result<()> {
    let sock = control_socket()?;
    let mut req = ifreq_for(name)?;
    req.ifr_ifru.ifru_ifindex = libc::c_int::try_from(len).unwrap_or(libc::c_int::MAX);
    ioctl(&sock, libc::SIOCSIFTXQLEN as _, &mut req)
}

pub fn set_up(name: &str) -> io::Result<()> {
    let sock = control_socket()?;
    let mut req = ifreq_for(name)?;
    ioctl(&sock, libc::SIOCGIFFLAGS as _, &mut req)?;
    // SAFETY: SIOCGIFFLAGS filled in the flags member of the union.
    let flags = unsafe { req.ifr_ifru.ifru_flags };
    req.ifr_ifru.ifru_flags = flags | (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short;
    ioctl(&sock, libc::SIOCSIFFLAGS as _, &mut req)
}
