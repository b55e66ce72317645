//! Emitting packets into a caller's buffer (no allocation).

use super::TcpSegment;
use std::net::IpAddr;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EmitError {
    /// The output buffer is too small for the packet.
    BufferTooSmall,
    /// Source and destination are not of the same IP version.
    MixedFamilies,
}

/// Write an IPv4 or IPv6 packet carrying `seg` into `buf`, with correct IP and TCP checksums.
/// Options are emitted in the order MSS, window scale, SACK-permitted, timestamps, SACK blocks,
/// NOP-padded to a multiple of four. Returns the packet's length.
pub fn emit_tcp(
    buf: &mut [u8],
    src: IpAddr,
    dst: IpAddr,
    seg: &TcpSegment<'_>,
) -> Result<usize, EmitError> {
    let _ = (buf, src, dst, seg);
    todo!("wire::emit_tcp")
}

/// Write an ICMP echo reply (IPv4) or ICMPv6 echo reply (IPv6) into `buf`.
pub fn emit_echo_reply(
    buf: &mut [u8],
    src: IpAddr,
    dst: IpAddr,
    ident: u16,
    seq_no: u16,
    data: &[u8],
) -> Result<usize, EmitError> {
    let _ = (buf, src, dst, ident, seq_no, data);
    todo!("wire::emit_echo_reply")
}
