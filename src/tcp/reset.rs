//! The one function that builds a reset in reply to a segment, so that "never answer a RST"
//! (RFC 9293 §3.10.7.1) is enforced in one place.

use super::SeqNum;
use crate::wire::{Flags, SEGMENT_TEMPLATE, TcpSegment};

/// The RST to send in reply to `seg`, or `None` when `seg` is itself a RST.
///
/// RFC 9293 §3.10.7.1: "If the ACK bit is off, sequence number zero is used,
/// `<SEQ=0><ACK=SEG.SEQ+SEG.LEN><CTL=RST,ACK>`; if the ACK bit is on, `<SEQ=SEG.ACK><CTL=RST>`."
/// The same form is used in LISTEN (§3.10.7.2) and SYN-RECEIVED (§3.10.7.4).
pub fn rst_reply(seg: &TcpSegment<'_>) -> Option<TcpSegment<'static>> {
    if seg.flags.rst() {
        return None;
    }
    let base = TcpSegment {
        src_port: seg.dst_port,
        dst_port: seg.src_port,
        ..SEGMENT_TEMPLATE
    };
    Some(if seg.flags.ack() {
        TcpSegment {
            seq: seg.ack,
            flags: Flags::RST,
            ..base
        }
    } else {
        TcpSegment {
            seq: SeqNum::new(0),
            ack: seg.seq.add(seg.seg_len()),
            flags: Flags::RST | Flags::ACK,
            ..base
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEG: TcpSegment<'static> = TcpSegment {
        src_port: 40000,
        dst_port: 80,
        seq: SeqNum::new(1000),
        ..SEGMENT_TEMPLATE
    };

    #[test]
    fn a_rst_is_never_answered() {
        for extra in [Flags::NONE, Flags::ACK, Flags::SYN, Flags::FIN] {
            let seg = TcpSegment {
                flags: Flags::RST | extra,
                ..SEG
            };
            assert_eq!(rst_reply(&seg), None);
        }
    }

    #[test]
    fn an_ack_is_answered_with_seq_equal_to_its_ack() {
        let seg = TcpSegment {
            flags: Flags::ACK,
            ack: SeqNum::new(77),
            ..SEG
        };
        let rst = rst_reply(&seg).expect("a reply");
        assert_eq!((rst.seq, rst.flags), (SeqNum::new(77), Flags::RST));
        assert_eq!((rst.src_port, rst.dst_port), (80, 40000));
    }

    #[test]
    fn a_syn_is_answered_with_rst_ack_covering_the_syn_and_data() {
        let seg = TcpSegment {
            flags: Flags::SYN | Flags::FIN,
            payload: b"abc",
            ..SEG
        };
        let rst = rst_reply(&seg).expect("a reply");
        assert_eq!(rst.seq, SeqNum::new(0));
        assert_eq!(rst.ack, SeqNum::new(1005));
        assert_eq!(rst.flags, Flags::RST | Flags::ACK);
    }
}
