//! Configuration types shared by the layers below the command line: the kernel-side
//! addresses of the interface ([`HostAddr`]) and the setup errors shown to the user
//! ([`SetupError`]). A leaf: `device` and `driver` depend on it, `cli` builds and prints them,
//! and it imports nothing of synack's.

mod error;

pub use error::{SetupError, plain};

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

/// One `--host-addr IP/PREFIX`: an address for the kernel's side of the interface.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HostAddr {
    pub addr: IpAddr,
    pub prefix_len: u8,
}

impl HostAddr {
    /// Whether `ip` lies inside this address's prefix (so the kernel routes it to the TUN).
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix_len))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix_len))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

impl FromStr for HostAddr {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let Some((addr, prefix)) = s.split_once('/') else {
            return Err(format!(
                "'{s}' needs a prefix length, like 198.18.0.1/24 or 2001:2::1/64"
            ));
        };
        let addr: IpAddr = addr
            .parse()
            .map_err(|_| format!("'{addr}' is not an IPv4 or IPv6 address"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix_len = prefix
            .parse::<u8>()
            .ok()
            .filter(|p| *p <= max)
            .ok_or_else(|| format!("'{prefix}' is not a prefix length between 0 and {max}"))?;
        if addr.is_unspecified() || addr.is_multicast() || addr.is_loopback() {
            return Err(format!("{addr} cannot be an interface address"));
        }
        Ok(HostAddr { addr, prefix_len })
    }
}

impl fmt::Display for HostAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix_len)
    }
}
