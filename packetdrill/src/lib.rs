//! libsynack_packetdrill.so: synack's TCP behind packetdrill's shared-object interface.
//!
//! `packetdrill --so_filename=libsynack_packetdrill.so --so_flags=FLAGS script.pkt` loads
//! this library and calls `packetdrill_interface_init`, which fills packetdrill's callback
//! table (src/ffi.rs): socket calls go to synack's socket API (src/sockets.rs), packets in and
//! out are bare IP (`netdev_send` / `netdev_receive`), and all of packetdrill's time comes
//! from the library's virtual clock (src/clock.rs), so a script runs in no wall-clock time.
//! scripts/packetdrill.sh builds and runs it; docs/PACKETDRILL.md explains the modes.
//!
//! FLAGS, comma-separated:
//! - `local_ip=ADDR`: the address synack answers as (packetdrill's `--local_ip`); repeatable.
//! - `mtu=N`: the interface MTU synack's MSS derives from (default 1500; packetdrill's IPv6
//!   runs use 1520, for an MSS of 1460).
//! - `sysctl_file=PATH`: where the scripts' `sysctl` settings are written (src/sysctl.rs).

use std::ffi::{c_char, c_int, c_void};
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicPtr, Ordering};

use synack::endpoint::{Endpoint, EndpointConfig};

mod api;
pub mod clock;
mod ffi;
pub mod sockets;
pub mod sysctl;
mod tcp_info;

use ffi::{PacketdrillInterface, Shared};

/// A note on stderr (what a script's setting did in synack's mode); the runner does not
/// take these for packetdrill's error line.
pub(crate) fn note(message: &str) {
    eprintln!("synack-packetdrill: note: {message}");
}

/// Why the library made packetdrill fail, on stderr before packetdrill's own message.
pub(crate) fn error(message: &str) {
    eprintln!("synack-packetdrill: error: {message}");
}

/// The parsed `--so_flags`.
#[derive(Debug, PartialEq, Eq)]
pub struct Options {
    pub local_ips: Vec<IpAddr>,
    pub mtu: u16,
    pub sysctl_file: Option<PathBuf>,
}

impl Options {
    pub fn parse(flags: &str) -> Result<Options, String> {
        let mut options = Options {
            local_ips: Vec::new(),
            mtu: 1500,
            sysctl_file: None,
        };
        for flag in flags.split(',').map(str::trim).filter(|f| !f.is_empty()) {
            let (key, value) = flag
                .split_once('=')
                .ok_or_else(|| format!("--so_flags: '{flag}' is not key=value"))?;
            match key {
                "local_ip" => options.local_ips.push(
                    value
                        .parse()
                        .map_err(|e| format!("--so_flags: local_ip={value}: {e}"))?,
                ),
                "mtu" => {
                    options.mtu = value
                        .parse()
                        .map_err(|e| format!("--so_flags: mtu={value}: {e}"))?;
                }
                "sysctl_file" => options.sysctl_file = Some(PathBuf::from(value)),
                _ => {
                    return Err(format!(
                        "--so_flags: unknown key '{key}' (local_ip, mtu, sysctl_file)"
                    ));
                }
            }
        }
        if options.local_ips.is_empty() {
            return Err("--so_flags: local_ip=ADDR is required (packetdrill's --local_ip)".into());
        }
        Ok(options)
    }
}

/// A fixed key for synack's ISN and cookie functions: runs are repeatable.
const SECRET: [u8; 16] = *b"synack-packetdri";

/// The instance, for the preloaded `getsockopt` below.
static INSTANCE: AtomicPtr<Shared> = AtomicPtr::new(std::ptr::null_mut());

fn forget_instance(shared: *mut Shared) {
    let _ = INSTANCE.compare_exchange(
        shared,
        std::ptr::null_mut(),
        Ordering::AcqRel,
        Ordering::Acquire,
    );
}

/// packetdrill's entry point: fill `ifc` for a new endpoint configured by `flags`.
///
/// # Safety
/// `flags` is NUL-terminated or null; `ifc` points to packetdrill's table.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn packetdrill_interface_init(
    flags: *const c_char,
    ifc: *mut PacketdrillInterface,
) {
    let options = match Options::parse(unsafe { ffi::flags_str(flags) }) {
        Ok(options) => options,
        Err(message) => {
            error(&message);
            std::process::exit(1);
        }
    };
    let config = EndpointConfig {
        addrs: options.local_ips,
        listeners: vec![],
        mtu: options.mtu,
        ..EndpointConfig::default()
    };
    let ep = Endpoint::new(config, SECRET, clock::START);
    let stack = sockets::Stack::new(clock::Clocked::new(ep), options.sysctl_file);
    let shared = Box::into_raw(Box::new(Shared::new(stack)));
    INSTANCE.store(shared, Ordering::Release);
    // The preload is for packetdrill's own getsockopt calls: the scripts' commands (a shell,
    // python for `%{ }%`) need not load this library too.
    // SAFETY: packetdrill is still single-threaded when it initialises the library.
    unsafe { std::env::remove_var("LD_PRELOAD") };
    // SAFETY: packetdrill's table, ours to fill.
    unsafe { ifc.write(ffi::interface(shared)) };
}

/// The next definition of a C library function, past this library (which preloaded
/// overrides it).
unsafe fn next_symbol(name: &std::ffi::CStr) -> *mut c_void {
    // SAFETY: dlsym with RTLD_NEXT and a NUL-terminated name.
    unsafe { libc::dlsym(libc::RTLD_NEXT, name.as_ptr()) }
}

/// The live instance, if `fd` is one of its descriptors' numbers. Descriptors below
/// `FIRST_FD` are never ours and are passed on without taking the instance's lock (the
/// library's own file reads close descriptors while holding it).
fn instance_for(fd: c_int) -> Option<&'static Shared> {
    if fd < sockets::FIRST_FD {
        return None;
    }
    let shared = INSTANCE.load(Ordering::Acquire);
    // SAFETY: the instance lives until packetdrill's free, which forgets it first.
    (!shared.is_null()).then(|| unsafe { &*shared })
}

/// The C library's getsockopt, answered for our descriptors when this library is preloaded
/// (`LD_PRELOAD`): packetdrill's `%{ }%` blocks read TCP_INFO with a real getsockopt() on
/// the descriptor the library gave it. Every other descriptor goes to the C library.
///
/// # Safety
/// As getsockopt(2).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn getsockopt(
    fd: c_int,
    level: c_int,
    name: c_int,
    value: *mut c_void,
    len: *mut libc::socklen_t,
) -> c_int {
    if let Some(shared) = instance_for(fd) {
        return ffi::c_result(unsafe { ffi::get_option(shared, fd, level, name, value, len) });
    }
    type GetSockOpt =
        unsafe extern "C" fn(c_int, c_int, c_int, *mut c_void, *mut libc::socklen_t) -> c_int;
    unsafe {
        let next = next_symbol(c"getsockopt");
        if next.is_null() {
            return ffi::c_result(Err(libc::ENOSYS));
        }
        // SAFETY: the C library's getsockopt has this signature.
        let next: GetSockOpt = std::mem::transmute(next);
        next(fd, level, name, value, len)
    }
}

/// The C library's close, answered for our descriptors when this library is preloaded:
/// packetdrill closes the descriptors a script left open with a real close() when the script
/// ends (its so mode calls the library only for the script's own close calls).
///
/// # Safety
/// As close(2).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn close(fd: c_int) -> c_int {
    if let Some(shared) = instance_for(fd) {
        return ffi::c_result(ffi::close_fd(shared, fd));
    }
    type Close = unsafe extern "C" fn(c_int) -> c_int;
    unsafe {
        let next = next_symbol(c"close");
        if next.is_null() {
            return ffi::c_result(Err(libc::ENOSYS));
        }
        // SAFETY: the C library's close has this signature.
        let next: Close = std::mem::transmute(next);
        next(fd)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn so_flags_name_the_addresses_the_mtu_and_the_sysctl_file() {
        let o = Options::parse("local_ip=198.18.0.1,mtu=1520,sysctl_file=/tmp/s").unwrap();
        assert_eq!(o.local_ips, vec!["198.18.0.1".parse::<IpAddr>().unwrap()]);
        assert_eq!(o.mtu, 1520);
        assert_eq!(o.sysctl_file, Some(PathBuf::from("/tmp/s")));
    }

    #[test]
    fn so_flags_without_an_address_or_with_an_unknown_key_are_refused() {
        assert!(Options::parse("mtu=1500").is_err());
        assert!(Options::parse("local_ip=198.18.0.1,colour=blue").is_err());
        assert!(Options::parse("local_ip=nowhere").is_err());
    }
}
