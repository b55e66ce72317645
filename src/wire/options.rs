//! TCP options (RFC 9293 §3.1, §3.2; RFC 7323; RFC 2018).

use crate::tcp::SeqNum;

pub const MAX_SACK_BLOCKS: usize = 4;

/// One SACK block: the half-open range `[left, right)` of sequence numbers received.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SackBlock {
    pub left: SeqNum,
    pub right: SeqNum,
}

/// The options of one segment that synack understands; others are skipped (MUST-6).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TcpOptions {
    /// Maximum segment size (kind 2). Sent only on SYNs (MUST-65).
    pub mss: Option<u16>,
    /// Window scale shift (kind 3), as on the wire (not yet clamped to 14).
    pub window_scale: Option<u8>,
    /// SACK-permitted (kind 4).
    pub sack_permitted: bool,
    /// Timestamps (kind 8): (TSval, TSecr).
    pub timestamps: Option<(u32, u32)>,
    /// SACK blocks (kind 5), the first `sack_count` entries are valid.
    pub sack_blocks: [SackBlock; MAX_SACK_BLOCKS],
    pub sack_count: u8,
}

impl TcpOptions {
    pub const EMPTY: TcpOptions = TcpOptions {
        mss: None,
        window_scale: None,
        sack_permitted: false,
        timestamps: None,
        sack_blocks: [SackBlock {
            left: SeqNum::new(0),
            right: SeqNum::new(0),
        }; MAX_SACK_BLOCKS],
        sack_count: 0,
    };

    /// The valid SACK blocks.
    pub fn sack(&self) -> &[SackBlock] {
        let n = usize::from(self.sack_count).min(MAX_SACK_BLOCKS);
        self.sack_blocks.get(..n).unwrap_or(&[])
    }
}

impl Default for TcpOptions {
    fn default() -> Self {
        TcpOptions::EMPTY
    }
}
