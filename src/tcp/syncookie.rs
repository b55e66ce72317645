//! A connection born from a SYN cookie (RFC 4987 §3.6): the listener kept no state for the
//! SYN; the final ACK carries everything needed to build the TCB.

use super::connection::{AckDue, Connection};
use super::trace::{Direction, Label};
use super::{Config, SeqNum, State};
use crate::time::Instant;
use crate::wire::{Flags, Quad, TcpOptions, TcpSegment};

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
    /// We accepted the SYN's ECN request (kept only with timestamps, as Linux's TS_OPT_ECN):
    /// RFC 3168, or AccECN if the final ACK's ACE field says so (`from_cookie`).
    pub ecn: bool,
}

impl Connection {
    /// RFC 4987 §3.6: the SYN,ACK that answers `syn` with the cookie `iss` and keeps no state,
    /// `<SEQ=cookie><ACK=SEG.SEQ+1><CTL=SYN,ACK>`, offering what a TCB's SYN,ACK would: our
    /// MSS `local_mss`, the window shift for `cfg.recv_buffer` and our TSval clock for this
    /// address pair (so that [`Connection::from_cookie`] continues it). Window scale and SACK are
    /// offered only with timestamps, which carry them: `encode_ts(ts_now, peer_ws, sack, ecn)`
    /// folds them into our TSval; so is ECN (RFC 3168, or AccECN with its SYN,ACK reflecting
    /// the SYN's IP-ECN field, `ecn.rs`). The window is capped by `window_max` (memory
    /// pressure).
    #[allow(clippy::too_many_arguments)]
    pub fn cookie_syn_ack(
        now: Instant,
        quad: &Quad,
        syn: &TcpSegment<'_>,
        iss: SeqNum,
        local_mss: u16,
        window_max: usize,
        cfg: &Config,
        encode_ts: fn(u32, Option<u8>, bool, bool) -> u32,
    ) -> TcpSegment<'static> {
        let tsval_peer = syn
            .options
            .timestamps
            .filter(|_| cfg.timestamps)
            .map(|(tsval, _)| tsval);
        let with_ts = tsval_peer.is_some();
        // RFC 7323 §2.3: a shift above 14 is used as 14.
        let peer_ws = syn
            .options
            .window_scale
            .filter(|_| cfg.window_scaling && with_ts)
            .map(|ws| ws.min(14));
        let sack = syn.options.sack_permitted && cfg.sack && with_ts;
        let mut flags = Flags::SYN | Flags::ACK;
        let mut accecn = None;
        let ecn = with_ts && Self::cookie_syn_ack_ecn(cfg.ecn, syn, &mut flags, &mut accecn);
        let timestamps = tsval_peer.map(|echo| {
            // RFC 7323 §5.4: the same TSval clock the connection will use (`ts_now`).
            let ts_now =
                ((now.as_micros() / 1000) as u32).wrapping_add(Self::ts_offset_for(cfg, quad));
            (encode_ts(ts_now, peer_ws, sack, ecn), echo)
        });
        // The window of a new connection (`memory.rs`): its initial receive buffer, within
        // `window_max` (four segments under memory pressure).
        let window = cfg.rmem.default.min(usize::from(u16::MAX)).min(window_max);
        TcpSegment {
            src_port: quad.local.port(),
            dst_port: quad.remote.port(),
            seq: iss,
            ack: syn.seq.add(1),
            flags,
            window: u16::try_from(window).unwrap_or(u16::MAX),
            urgent: 0,
            options: TcpOptions {
                mss: Some(local_mss),
                window_scale: peer_ws.map(|_| Self::shift_for(cfg.rmem.max)),
                sack_permitted: sack,
                timestamps,
                accecn,
                ..TcpOptions::EMPTY
            },
            payload: &[],
            ecn: crate::wire::Ecn::NotEct,
        }
    }

    /// The final ACK `ack` of a handshake whose SYN,ACK was a SYN cookie with ISS `iss`
    /// (ack − 1) arrived. Rebuild the SYN-RECEIVED TCB the cookie stood for, as if the SYN
    /// had been `syn`, then process the ACK through the normal SYN-RECEIVED rules
    /// (RFC 9293 §3.10.7.4), which moves it to ESTABLISHED and takes any data on it.
    pub fn from_cookie(
        now: Instant,
        quad: Quad,
        ack: &TcpSegment<'_>,
        syn: CookieSyn,
        local_mss: u16,
        cfg: &std::sync::Arc<Config>,
    ) -> Connection {
        let iss = ack.ack.sub(1);
        let mut conn = Connection::new(now, quad, iss, local_mss, cfg);
        conn.passive = true;
        conn.state = State::Listen;
        // The SYN as the cookie remembers it: IRS = SEG.SEQ − 1, and its options. Its TSval
        // is unknown; the ACK's TSval stands in for TS.Recent.
        let tsval = ack.options.timestamps.map(|(tsval, _)| (tsval, 0));
        // ECN as the SYN asked for it: AccECN if the ACK's ACE field reflects our SYN,ACK
        // (Linux's cookie_accecn_ok: ACE > 1; an RFC 3168 client's ACK has 0), else RFC 3168.
        let ecn_flags = match (syn.ecn, ack.flags.ace() > 1) {
            (false, _) => Flags::NONE,
            (true, true) => Flags::AE | Flags::CWR | Flags::ECE,
            (true, false) => Flags::CWR | Flags::ECE,
        };
        let remembered = TcpSegment {
            seq: ack.seq.sub(1),
            ack: SeqNum::new(0),
            flags: Flags::SYN | ecn_flags,
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
        // The diagram shows the handshake as the cookie remembers it: the SYN, and our
        // stateless SYN,ACK, labelled (their times are not known: both are drawn at `now`).
        conn.trace.begin(State::Listen);
        conn.trace
            .record(Direction::In, now, &remembered, State::SynReceived);
        let syn_ack = TcpSegment {
            src_port: quad.local.port(),
            dst_port: quad.remote.port(),
            seq: iss,
            ack: remembered.seq.add(1),
            flags: Flags::SYN | Flags::ACK,
            window: u16::try_from(cfg.rmem.default).unwrap_or(u16::MAX),
            options: TcpOptions {
                mss: Some(local_mss),
                ..TcpOptions::EMPTY
            },
            payload: &[],
            ..*ack
        };
        conn.trace.record_labeled(
            Direction::Out,
            now,
            &syn_ack,
            State::SynReceived,
            Label::SynCookie,
        );
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
