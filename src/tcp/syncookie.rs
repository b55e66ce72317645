//! A connection born from a SYN cookie (RFC 4987 §3.6): the listener kept no state for the
//! SYN; the final ACK carries everything needed to build the TCB.

use super::connection::{AckDue, Connection};
use super::{Config, SeqNum, State};
use crate::time::Instant;
use crate::wire::{Flags, TcpOptions, TcpSegment};

/// What a valid cookie (and the timestamp echoed with it) tells about the original SYN.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CookieSyn {
    /// The peer's MSS, as encoded in the cookie (rounded down to a table entry).
    pub mss: u16,
    /// The peer's window-scale shift, if it offered window scaling (kept only with
    /// timestamps).
    pub window_scale: Option<u8>,
    /// The peer offered SACK (kept only with timestamps).
    pub sack_permitted: bool,
    /// Both sides use timestamps.
    pub timestamps: bool,
}

impl Connection {
    /// The final ACK `ack` of a handshake whose SYN,ACK was a SYN cookie with ISS `iss`
    /// (ack − 1) arrived. Rebuild the SYN-RECEIVED TCB the cookie stood for, as if the SYN
    /// had been `syn`, then process the ACK through the normal SYN-RECEIVED rules
    /// (RFC 9293 §3.10.7.4), which moves it to ESTABLISHED and takes any data on it.
    pub fn from_cookie(
        now: Instant,
        quad: crate::wire::Quad,
        ack: &TcpSegment<'_>,
        syn: CookieSyn,
        local_mss: u16,
        cfg: &Config,
    ) -> Connection {
        let iss = ack.ack.sub(1);
        let mut conn = Connection::new(now, quad, iss, local_mss, cfg);
        conn.passive = true;
        conn.state = State::Listen;
        // The SYN as the cookie remembers it: IRS = SEG.SEQ − 1, and its options. Its TSval
        // is unknown; the ACK's TSval stands in for TS.Recent.
        let tsval = ack.options.timestamps.map(|(tsval, _)| (tsval, 0));
        let remembered = TcpSegment {
            seq: ack.seq.sub(1),
            ack: SeqNum::new(0),
            flags: Flags::SYN,
            window: ack.window,
            options: TcpOptions {
                mss: Some(syn.mss),
                window_scale: syn.window_scale,
                sack_permitted: syn.sack_permitted,
                timestamps: if syn.timestamps { tsval } else { None },
                ..TcpOptions::EMPTY
            },
            payload: &[],
            ..*ack
        };
        conn.learn_syn(&remembered);
        conn.set_state(State::SynReceived);
        // Our SYN,ACK was sent (by the endpoint, statelessly).
        conn.syn_due = false;
        conn.snd.nxt = iss.add(1);
        conn.tx_next = iss.add(1);
        conn.last_ack_sent = conn.rcv.nxt;
        conn.ack_due = AckDue::None;
        conn.on_segment(now, ack);
        conn
    }
}
