//! The sequence diagram ("ladder") of a connection, drawn from its [`Trace`].
//!
//! Two columns: the peer on the left, the endpoint on the right, one arrow per segment.
//! Segments from the peer are described on the left (`──▶`) with the endpoint's state after
//! processing them on the right; our segments (`◀──`) are described on the right. Sequence and
//! acknowledgment numbers are relative to each side's initial sequence number, as tcpdump prints
//! them without `-S`: the SYN has seq=0.
//!
//! ```text
//! 198.18.0.1:40000                    198.18.0.2:80
//!  SYN seq=0 win=64240 <mss 1460>  ──▶  LISTEN → SYN-RECEIVED
//!                                  ◀──  SYN,ACK seq=0 ack=1 win=65535 <mss 1460>
//!  ACK seq=1 ack=1                 ──▶  SYN-RECEIVED → ESTABLISHED
//! ```

use super::trace::{Direction, Event, Folded, Lost, Row, Trace};
use super::{ResetCause, SeqNum, State};
use crate::wire::Quad;
use std::fmt::Write;

/// What the diagram needs to know of the connection besides its trace.
#[derive(Clone, Copy, Debug)]
pub struct View {
    pub quad: Quad,
    /// Our ISS and the peer's IRS, the zeros of the relative numbers.
    pub iss: SeqNum,
    pub irs: SeqNum,
    /// The connection's state now; drawn as a last line when it changed after the last segment.
    pub state: State,
    pub cause: Option<ResetCause>,
}

pub const ARROW_IN: &str = "──▶";
pub const ARROW_OUT: &str = "◀──";

/// Render the whole diagram, header included; every line ends with a newline.
pub fn render(trace: &Trace, view: &View) -> String {
    let peer = view.quad.remote.to_string();
    let width = trace
        .rows()
        .filter_map(|r| match r {
            Row::Segment(e, lost) if e.direction == Direction::In => {
                let extra = if lost == Lost::Impair {
                    1 + lost_text(e.direction).len()
                } else {
                    0
                };
                Some(describe(&e, view).len() + extra)
            }
            _ => None,
        })
        .chain([peer.len()])
        .max()
        .unwrap_or(0);
    let mut out = String::new();
    let _ = writeln!(out, "{peer:<w$}{}", view.quad.local, w = width + 8);
    for row in trace.rows() {
        match row {
            Row::Segment(e, lost) => line(&mut out, &e, lost, view, width),
            Row::Fold(folded) => {
                let _ = writeln!(out, " ⋮ {}", fold_text(&folded, ARROW_IN, ARROW_OUT));
            }
        }
    }
    let last = trace.last_state();
    if view.state != last {
        let text = format!("{last} → {}{}", view.state, closing_reason(view, last));
        let _ = writeln!(out, " {:<width$}       {text}", "");
    }
    out
}

/// Why the state changed after the last segment: ` (timed out)`, ` (2·MSL elapsed)`…
pub fn closing_reason(view: &View, last: State) -> &'static str {
    match (view.cause, last) {
        (Some(ResetCause::TimedOut), _) => " (timed out)",
        (Some(ResetCause::Aborted), _) => " (aborted)",
        (Some(ResetCause::PeerReset), _) => " (reset)",
        (Some(ResetCause::Refused), _) => " (refused)",
        (Some(ResetCause::Unreachable(_)), _) => " (ICMP error)",
        (None, State::TimeWait) => " (2·MSL elapsed)",
        (None, _) => "",
    }
}

/// A run of plain segments folded into one line: `12 segments folded: 6 ──▶ (8688 bytes),
/// 6 ◀── (0 bytes)`, and how many notable ones are among them when their record was full.
pub fn fold_text(f: &Folded, arrow_in: &str, arrow_out: &str) -> String {
    let mut s = format!(
        "{} segments folded: {} {arrow_in} ({} bytes), {} {arrow_out} ({} bytes)",
        f.segments(),
        f.segments_in,
        f.bytes_in,
        f.segments_out,
        f.bytes_out,
    );
    if f.notable > 0 {
        let _ = write!(
            s,
            ", {} of them notable (too many to keep them all)",
            f.notable
        );
    }
    s
}

/// The arrow of a segment `--impair` dropped, broken where the link lost it.
pub const ARROW_IN_LOST: &str = "─✕▶";
pub const ARROW_OUT_LOST: &str = "◀✕─";

/// Why a dropped segment's arrow is broken: which side lost it.
pub fn lost_text(direction: Direction) -> &'static str {
    match direction {
        Direction::In => "[dropped by --impair on its way to synack]",
        Direction::Out => "[dropped by --impair on its way to the peer]",
    }
}

/// One arrow.
fn line(out: &mut String, e: &Event, lost: Lost, view: &View, width: usize) {
    let mut desc = describe(e, view);
    let (arrow_in, arrow_out) = if lost == Lost::Impair {
        desc.push(' ');
        desc.push_str(lost_text(e.direction));
        (ARROW_IN_LOST, ARROW_OUT_LOST)
    } else {
        (ARROW_IN, ARROW_OUT)
    };
    let change = if e.before == e.after {
        None
    } else {
        Some(format!("{} → {}", e.before, e.after))
    };
    let text = match e.direction {
        Direction::In => {
            let state = change.unwrap_or_else(|| e.after.to_string());
            format!(" {desc:<width$}  {arrow_in}  {state}")
        }
        Direction::Out => match change {
            Some(change) => format!(" {:<width$}  {arrow_out}  {desc}  ({change})", ""),
            None => format!(" {:<width$}  {arrow_out}  {desc}", ""),
        },
    };
    out.push_str(text.trim_end());
    out.push('\n');
}

/// `SYN,ACK seq=0 ack=1 win=65535 <mss 1460,sackOK,TS,wscale 7>`: flags, relative numbers,
/// the length when there is data, the window on SYNs and when it is zero, options on SYNs.
pub fn describe(e: &Event, view: &View) -> String {
    let (seq_zero, ack_zero) = match e.direction {
        Direction::In => (view.irs, view.iss),
        Direction::Out => (view.iss, view.irs),
    };
    let mut s = format!("{} seq={}", e.flags, e.seq.distance_from(seq_zero));
    if e.flags.ack() {
        let _ = write!(s, " ack={}", e.ack.distance_from(ack_zero));
    }
    if e.len > 0 {
        let _ = write!(s, " len={}", e.len);
    }
    if !e.flags.rst() && (e.flags.syn() || e.window == 0) {
        let _ = write!(s, " win={}", e.window);
    }
    if !e.flags.syn() && e.options.sack_blocks() > 0 {
        let n = e.options.sack_blocks();
        let _ = write!(s, " <SACK, {n} block{}>", if n == 1 { "" } else { "s" });
    }
    if e.flags.syn() && !e.options.is_empty() {
        let o = &e.options;
        let mut parts: Vec<String> = Vec::new();
        if let Some(mss) = o.mss() {
            parts.push(format!("mss {mss}"));
        }
        if o.sack_permitted() {
            parts.push("sackOK".into());
        }
        if o.timestamps() {
            parts.push("TS".into());
        }
        if let Some(ws) = o.window_scale() {
            parts.push(format!("wscale {ws}"));
        }
        // As tcpdump names the Fast Open option.
        match o.fastopen() {
            Some(0) => parts.push("tfo cookiereq".into()),
            Some(_) => parts.push("tfo cookie".into()),
            None => {}
        }
        let _ = write!(s, " <{}>", parts.join(","));
    }
    if let Some(label) = e.label.text() {
        let _ = write!(s, " [{label}]");
    }
    s
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::tcp::trace::{HEAD, TAIL};
    use crate::time::Instant;
    use crate::wire::{Flags, SEGMENT_TEMPLATE, TcpOptions, TcpSegment};

    pub(crate) const IRS: u32 = 4_000_000_000;
    pub(crate) const ISS: u32 = 1_000;

    pub(crate) fn view(state: State, cause: Option<ResetCause>) -> View {
        View {
            quad: Quad {
                local: "198.18.0.2:80".parse().unwrap(),
                remote: "198.18.0.1:51234".parse().unwrap(),
            },
            iss: SeqNum::new(ISS),
            irs: SeqNum::new(IRS),
            state,
            cause,
        }
    }

    /// A segment with relative numbers: `seq` from its sender's ISN, `ack` from the other's.
    pub(crate) fn seg(
        dir: Direction,
        flags: Flags,
        seq: u32,
        ack: u32,
        payload: &'static [u8],
    ) -> TcpSegment<'static> {
        let (s0, a0) = match dir {
            Direction::In => (IRS, ISS),
            Direction::Out => (ISS, IRS),
        };
        TcpSegment {
            seq: SeqNum::new(s0.wrapping_add(seq)),
            ack: SeqNum::new(a0.wrapping_add(ack)),
            flags,
            window: 502,
            payload,
            ..SEGMENT_TEMPLATE
        }
    }

    #[test]
    fn handshake_data_and_close_draw_as_a_ladder() {
        use Direction::{In, Out};
        let mut t = Trace::new();
        let now = Instant::from_millis(1);
        t.begin(State::Listen);
        let syn = TcpSegment {
            window: 64240,
            options: TcpOptions {
                mss: Some(1460),
                sack_permitted: true,
                timestamps: Some((7, 0)),
                window_scale: Some(7),
                ..TcpOptions::EMPTY
            },
            ..seg(In, Flags::SYN, 0, 0, b"")
        };
        t.record(In, now, &syn, State::SynReceived);
        let synack = TcpSegment {
            window: 65535,
            options: TcpOptions {
                mss: Some(1460),
                ..TcpOptions::EMPTY
            },
            ..seg(Out, Flags::SYN | Flags::ACK, 0, 1, b"")
        };
        t.record(Out, now, &synack, State::SynReceived);
        t.record(In, now, &seg(In, Flags::ACK, 1, 1, b""), State::Established);
        let get = seg(In, Flags::PSH | Flags::ACK, 1, 1, b"GET / HTTP/1.0\r\n\r\n");
        t.record(In, now, &get, State::Established);
        t.record(
            Out,
            now,
            &seg(Out, Flags::ACK, 1, 19, b""),
            State::Established,
        );
        // The application closed: the FIN goes out in FIN-WAIT-1.
        let fin = seg(
            Out,
            Flags::FIN | Flags::PSH | Flags::ACK,
            1,
            19,
            b"HTTP/1.0 200 OK\r\n",
        );
        t.record(Out, now, &fin, State::FinWait1);
        t.record(In, now, &seg(In, Flags::ACK, 19, 19, b""), State::FinWait2);
        t.record(
            In,
            now,
            &seg(In, Flags::FIN | Flags::ACK, 19, 19, b""),
            State::TimeWait,
        );
        t.record(
            Out,
            now,
            &seg(Out, Flags::ACK, 19, 20, b""),
            State::TimeWait,
        );

        let expected = "\
198.18.0.1:51234                                         198.18.0.2:80
 SYN seq=0 win=64240 <mss 1460,sackOK,TS,wscale 7>  ──▶  LISTEN → SYN-RECEIVED
                                                    ◀──  SYN,ACK seq=0 ack=1 win=65535 <mss 1460>
 ACK seq=1 ack=1                                    ──▶  SYN-RECEIVED → ESTABLISHED
 PSH,ACK seq=1 ack=1 len=18                         ──▶  ESTABLISHED
                                                    ◀──  ACK seq=1 ack=19
                                                    ◀──  FIN,PSH,ACK seq=1 ack=19 len=17  (ESTABLISHED → FIN-WAIT-1)
 ACK seq=19 ack=19                                  ──▶  FIN-WAIT-1 → FIN-WAIT-2
 FIN,ACK seq=19 ack=19                              ──▶  FIN-WAIT-2 → TIME-WAIT
                                                    ◀──  ACK seq=19 ack=20
                                                         TIME-WAIT → CLOSED (2·MSL elapsed)
";
        let got = render(&t, &view(State::Closed, None));
        assert_eq!(got, expected, "\n{got}");
        // Still open: no closing line.
        let got = render(&t, &view(State::TimeWait, None));
        assert!(!got.contains("CLOSED"), "{got}");
    }

    #[test]
    fn long_transfers_fold_into_one_line() {
        use Direction::{In, Out};
        let mut t = Trace::new();
        let now = Instant::ZERO;
        t.begin(State::Established);
        let data: &'static [u8] = &[0; 100];
        let n = (HEAD + TAIL + 10) as u32;
        for i in 0..n {
            t.record(
                In,
                now,
                &seg(In, Flags::ACK, 1 + 100 * i, 1, data),
                State::Established,
            );
            t.record(
                Out,
                now,
                &seg(Out, Flags::ACK, 1, 101 + 100 * i, b""),
                State::Established,
            );
        }
        let total = 2 * u64::from(n);
        assert_eq!(t.total(), total);
        let kept = (HEAD + TAIL) as u64;
        assert_eq!(t.folded().segments(), total - kept);
        assert_eq!(t.events().count(), HEAD + TAIL);
        let got = render(&t, &view(State::Established, None));
        let lines: Vec<&str> = got.lines().collect();
        // Header, head, one fold line, ring.
        assert_eq!(lines.len(), 1 + HEAD + 1 + TAIL, "{got}");
        let folded = total - kept;
        assert_eq!(
            lines[1 + HEAD],
            format!(
                " ⋮ {folded} segments folded: {} ──▶ ({} bytes), {} ◀── (0 bytes)",
                folded / 2,
                folded / 2 * 100,
                folded / 2
            )
        );
        // The last line is the last segment sent.
        let last_ack = 101 + 100 * (n - 1);
        assert!(
            lines
                .last()
                .unwrap()
                .ends_with(&format!("◀──  ACK seq=1 ack={last_ack}"))
        );
        // The ring is in order: the first kept after the fold is the oldest survivor.
        let first_in_ring = lines[2 + HEAD];
        assert!(first_in_ring.contains("──▶"), "{first_in_ring}");
    }

    /// A long download with a loss in the middle: our data, the peer's ACKs.
    fn download_with_a_loss(t: &mut Trace, n: u32, loss_at: u32) {
        use Direction::{In, Out};
        let now = Instant::ZERO;
        let data: &'static [u8] = &[0; 100];
        t.begin(State::Established);
        for i in 0..n {
            t.record(
                Out,
                now,
                &seg(Out, Flags::ACK, 1 + 100 * i, 1, data),
                State::Established,
            );
            if i == loss_at {
                // Segment i is lost: the peer repeats its ACK for i - 1 twice, with SACK.
                continue;
            }
            let ack = if (loss_at + 1..loss_at + 3).contains(&i) {
                1 + 100 * loss_at
            } else {
                101 + 100 * i
            };
            let mut a = seg(In, Flags::ACK, 1, ack, b"");
            if (loss_at + 1..loss_at + 3).contains(&i) {
                a.options.sack_count = 1;
            }
            t.record(In, now, &a, State::Established);
            if i == loss_at + 2 {
                t.record_labeled(
                    Out,
                    now,
                    &seg(Out, Flags::ACK, 1 + 100 * loss_at, 1, data),
                    State::Established,
                    crate::tcp::trace::Label::FastRetransmit,
                );
            }
        }
    }

    #[test]
    fn a_fold_keeps_retransmissions_duplicate_acks_and_sacks() {
        let mut t = Trace::new();
        let n = (HEAD + TAIL) as u32 + 40;
        download_with_a_loss(&mut t, n, 40);
        let got = render(&t, &view(State::Established, None));
        let lines: Vec<&str> = got.lines().collect();
        // Header, head, the middle, ring. The middle: the two duplicate ACKs and the
        // retransmission, each after the run folded before it, and the last run.
        let middle = &lines[1 + HEAD..lines.len() - TAIL];
        let (folds, kept): (Vec<&str>, Vec<&str>) =
            middle.iter().partition(|l| l.starts_with(" ⋮ "));
        assert_eq!(folds.len(), 3, "{got}");
        assert!(middle[0].starts_with(" ⋮ ") && middle.last().unwrap().starts_with(" ⋮ "));
        assert_eq!(kept.len(), 3, "{got}");
        assert!(
            kept[0].contains("ack=4001 <SACK, 1 block> [dup ACK #1]  ──▶"),
            "{got}"
        );
        assert!(kept[1].contains("[dup ACK #2]"), "{got}");
        assert!(
            kept[2].ends_with("◀──  ACK seq=4001 ack=1 len=100 [fast retransmission]"),
            "{got}"
        );
        // Nothing is lost from the counts: the folds and the kept add up to the total.
        let folded: u64 = t
            .rows()
            .map(|r| match r {
                Row::Fold(f) => f.segments(),
                Row::Segment(..) => 1,
            })
            .sum();
        assert_eq!(folded, t.total());
        assert_eq!(t.middle().len(), 3);
    }

    #[test]
    fn segments_impair_dropped_are_marked_with_the_side_that_lost_them() {
        use Direction::{In, Out};
        let mut t = Trace::new();
        t.begin(State::Established);
        let now = Instant::ZERO;
        let data = seg(Out, Flags::ACK, 1, 1, b"abc");
        t.record(Out, now, &data, State::Established);
        t.record(
            Out,
            now,
            &seg(Out, Flags::ACK, 4, 1, b"def"),
            State::Established,
        );
        t.record_lost(Out, now, &data);
        t.record_lost(In, now, &seg(In, Flags::ACK, 1, 7, b""));
        let got = render(&t, &view(State::Established, None));
        let lines: Vec<&str> = got.lines().collect();
        assert_eq!(lines.len(), 4, "{got}");
        assert!(
            lines[1].ends_with(
                "◀✕─  ACK seq=1 ack=1 len=3 [dropped by --impair on its way to the peer]"
            ),
            "{got}"
        );
        assert!(lines[2].ends_with("◀──  ACK seq=4 ack=1 len=3"), "{got}");
        assert!(
            lines[3].contains("ACK seq=1 ack=7 [dropped by --impair on its way to synack]  ─✕▶"),
            "{got}"
        );
        // Dropped segments are notable: a fold keeps them.
        let mut t = Trace::new();
        t.begin(State::Established);
        t.record_lost(In, now, &seg(In, Flags::ACK, 1, 7, b""));
        for _ in 0..HEAD + TAIL {
            t.record_lost(In, now, &seg(In, Flags::ACK, 1, 7, b""));
        }
        assert_eq!(t.middle().len(), 1);
        assert!(t.rows().all(|r| matches!(r, Row::Segment(_, Lost::Impair))));
    }

    #[test]
    fn a_refused_active_open_shows_the_rst_and_the_zero_window() {
        use Direction::{In, Out};
        let mut t = Trace::new();
        let syn = TcpSegment {
            window: 0,
            ..seg(Out, Flags::SYN, 0, 0, b"")
        };
        t.record(Out, Instant::ZERO, &syn, State::SynSent);
        let rst = TcpSegment {
            seq: SeqNum::new(0),
            ack: SeqNum::new(ISS + 1),
            flags: Flags::RST | Flags::ACK,
            ..SEGMENT_TEMPLATE
        };
        t.record(In, Instant::ZERO, &rst, State::Closed);
        let v = View {
            irs: SeqNum::new(0),
            ..view(State::Closed, Some(ResetCause::Refused))
        };
        let got = render(&t, &v);
        let expected = "\
198.18.0.1:51234           198.18.0.2:80
                      ◀──  SYN seq=0 win=0  (CLOSED → SYN-SENT)
 RST,ACK seq=0 ack=1  ──▶  SYN-SENT → CLOSED
";
        assert_eq!(got, expected, "\n{got}");
    }
}
