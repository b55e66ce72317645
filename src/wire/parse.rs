//! Validating parser: bytes from the TUN in, a typed [`Packet`] or a [`DropReason`] out.

use super::{DropReason, Packet};

/// Parse one IP packet as read from a TUN device (no packet-info header).
///
/// Validates: IP version; IPv4 IHL, total length and header checksum (bytes after the total
/// length are ignored, IP options skipped); IPv6 payload length and extension-header chain;
/// fragments are dropped; TCP data offset, option lengths and checksum; ICMP checksums.
pub fn parse(buf: &[u8]) -> Result<Packet<'_>, DropReason> {
    let _ = buf;
    todo!("wire::parse")
}
