//! A connection's own record of the segments it received and sent, for the sequence diagrams
//! (`--ladder`, `synack trace`, `GET /handshake`) and for `synack status`.
//!
//! The record is bounded: the first [`HEAD`] events (the handshake) are kept, then a ring of
//! the [`TAIL`] most recent ones. What falls out of the ring is only counted ([`Folded`]),
//! unless it is *notable* — anything but plain in-order data or its ACK: a retransmission
//! (ours or the peer's), a duplicate ACK, a segment with SACK blocks, out-of-order data, a
//! probe, a window update or a zero window, a SYN, FIN or RST, a packet `--impair` dropped,
//! or any segment we sent for a reason the diagram names ([`Label`]). Up to [`MIDDLE`] of
//! those are kept in order with the count of the plain run folded before each ([`Row`]), so
//! a folded diagram still shows every retransmission, duplicate ACK and SACK (issue 19).
//! The record grows on demand (doubling) up to that bound, so a short or idle connection
//! holds room for the few events it had (a handshake and an echo: 8), not for 64; what only a
//! long record needs (the ring's position, the counts of what was folded, the middle) is
//! allocated when the first event goes past the head into the ring, and the middle's room
//! when a notable event falls out of it; once full, recording a segment copies a few header
//! fields and allocates nothing. Every connection carries a `Trace` (64 bytes inline) and an
//! idle one keeps its few events (36 bytes each), so both are packed (issue 23); while the
//! connection idles, a short record's events are packed further, as the differences from one
//! to the next in a few bytes each ([`Trace::shrink`], `tcp::packed`).

use super::packed::{Pack, Reader, Record, put_delta32, put_signed, put_varint};
use super::{SeqNum, State};
use crate::time::Instant;
use crate::wire::{Flags, TcpSegment};

/// How many events from the start of a connection are always kept.
pub const HEAD: usize = 24;
/// How many of the most recent events are kept after the first [`HEAD`].
pub const TAIL: usize = 40;
/// How many notable events from between the head and the ring are kept.
pub const MIDDLE: usize = 48;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// From the peer to us.
    In,
    /// From us to the peer.
    Out,
}

/// The options a segment carried, as tcpdump would list them: 6 bytes, packed (an event is
/// kept for each segment, see [`Event`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OptionSummary {
    mss: u16,
    window_scale: u8,
    /// TCP Fast Open (RFC 7413): the cookie's length, 0 for a cookie request.
    fastopen: u8,
    /// Which of the above are present ([`OptionSummary::MSS`] ...), SACK-permitted,
    /// timestamps, and the number of SACK blocks in the top 3 bits.
    bits: u8,
}

impl OptionSummary {
    const MSS: u8 = 1;
    const WINDOW_SCALE: u8 = 1 << 1;
    const FASTOPEN: u8 = 1 << 2;
    const SACK_PERMITTED: u8 = 1 << 3;
    const TIMESTAMPS: u8 = 1 << 4;
    const SACK_BLOCKS_SHIFT: u32 = 5;

    /// What a segment's options say.
    pub fn of(o: &crate::wire::TcpOptions) -> OptionSummary {
        let fastopen = o
            .fastopen
            .map(|c| u8::try_from(c.as_bytes().len()).unwrap_or(u8::MAX));
        let flag = |on: bool, bit: u8| if on { bit } else { 0 };
        OptionSummary {
            mss: o.mss.unwrap_or(0),
            window_scale: o.window_scale.unwrap_or(0),
            fastopen: fastopen.unwrap_or(0),
            // At most four blocks fit in the options (RFC 2018 §3): three bits hold them.
            bits: flag(o.mss.is_some(), Self::MSS)
                | flag(o.window_scale.is_some(), Self::WINDOW_SCALE)
                | flag(fastopen.is_some(), Self::FASTOPEN)
                | flag(o.sack_permitted, Self::SACK_PERMITTED)
                | flag(o.timestamps.is_some(), Self::TIMESTAMPS)
                | (o.sack_count.min(7) << Self::SACK_BLOCKS_SHIFT),
        }
    }

    pub fn mss(&self) -> Option<u16> {
        (self.bits & Self::MSS != 0).then_some(self.mss)
    }

    pub fn window_scale(&self) -> Option<u8> {
        (self.bits & Self::WINDOW_SCALE != 0).then_some(self.window_scale)
    }

    pub fn sack_permitted(&self) -> bool {
        self.bits & Self::SACK_PERMITTED != 0
    }

    pub fn timestamps(&self) -> bool {
        self.bits & Self::TIMESTAMPS != 0
    }

    /// TCP Fast Open (RFC 7413): the cookie's length, 0 for a cookie request.
    pub fn fastopen(&self) -> Option<u8> {
        (self.bits & Self::FASTOPEN != 0).then_some(self.fastopen)
    }

    /// SACK blocks carried (RFC 2018).
    pub fn sack_blocks(&self) -> u8 {
        self.bits >> Self::SACK_BLOCKS_SHIFT
    }

    pub fn is_empty(&self) -> bool {
        *self == OptionSummary::default()
    }
}

const _: () = assert!(crate::wire::MAX_SACK_BLOCKS < 8);

/// Why we sent a segment, where the TCP knows more than the wire shows: recorded where the
/// output path decides to send (`tcp/output.rs`, `keepalive.rs`), drawn in the ladders.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Label {
    /// Nothing to say beyond the flags and numbers.
    #[default]
    None,
    /// Sent again after the retransmission timer expired (RFC 6298 §5.4; go-back-N).
    RtoRetransmit,
    /// Fast retransmit after three duplicate ACKs (RFC 5681 §3.2).
    FastRetransmit,
    /// A hole the peer's SACK blocks revealed, sent again in SACK recovery (RFC 6675 §5).
    SackRetransmit,
    /// A segment RACK deemed lost (a later one was delivered more than an RTT and the
    /// reordering window after it was sent), sent again (RFC 8985 §6).
    Rack,
    /// A tail loss probe (RFC 8985 §7): new data or the last segment, about two RTTs after
    /// the ACKs stopped.
    Tlp,
    /// An ACK carrying a D-SACK block: we got that data twice (RFC 2883).
    Dsack,
    /// New data sent during fast recovery as Proportional Rate Reduction allowed
    /// (RFC 9937).
    Prr,
    /// The n-th ACK in a row for the same RCV.NXT, sent because data arrived out of order
    /// (RFC 5681 §4.2).
    DupAck(u16),
    /// From the peer: data below what it had already sent (a retransmission, or a copy the
    /// network duplicated).
    PeerRetransmit,
    /// From the peer: data beyond a gap (something before it is missing or late).
    OutOfOrder,
    /// A probe of the peer's zero window (RFC 9293 §3.8.6.1).
    ZeroWindowProbe,
    /// An ACK sent only to announce a larger window (RFC 9293 §3.8.6.2.2).
    WindowUpdate,
    /// A keep-alive probe (RFC 9293 §3.8.4).
    KeepAlive,
    /// A challenge ACK (RFC 5961 §3.2, §4.2, §5.2).
    ChallengeAck,
    /// TIME-WAIT acknowledging a retransmitted FIN (RFC 9293 §3.10.7.4).
    TimeWaitReAck,
    /// Our SYN,ACK was a SYN cookie (RFC 4987 §3.6): sent without state, and drawn as the
    /// cookie remembers it once the final ACK rebuilt the connection.
    SynCookie,
    /// Sent again at once in smaller segments after an ICMP error lowered the path MTU
    /// (RFC 1191, RFC 8201).
    Pmtu,
    /// A SYN carrying data under TCP Fast Open (RFC 7413): ours, or the peer's that we
    /// accepted with its cookie.
    FastOpen,
}

impl Label {
    /// The words the ladders print in brackets after the segment, if any.
    pub fn text(self) -> Option<std::borrow::Cow<'static, str>> {
        use std::borrow::Cow::Borrowed;
        Some(match self {
            Label::None => return None,
            Label::RtoRetransmit => Borrowed("retransmission (RTO)"),
            Label::FastRetransmit => Borrowed("fast retransmission"),
            Label::SackRetransmit => Borrowed("SACK retransmission"),
            Label::Rack => Borrowed("RACK"),
            Label::Tlp => Borrowed("TLP"),
            Label::Dsack => Borrowed("D-SACK"),
            Label::Prr => Borrowed("PRR"),
            Label::DupAck(n) => std::borrow::Cow::Owned(format!("dup ACK #{n}")),
            Label::PeerRetransmit => Borrowed("retransmission"),
            Label::OutOfOrder => Borrowed("out of order"),
            Label::ZeroWindowProbe => Borrowed("zero-window probe"),
            Label::WindowUpdate => Borrowed("window update"),
            Label::KeepAlive => Borrowed("keep-alive"),
            Label::ChallengeAck => Borrowed("challenge ACK"),
            Label::TimeWaitReAck => Borrowed("TIME-WAIT re-ACK"),
            Label::SynCookie => Borrowed("SYN cookie"),
            Label::Pmtu => Borrowed("PMTU"),
            Label::FastOpen => Borrowed("TFO"),
        })
    }
}

/// One segment as the connection saw it: raw sequence numbers, and its state before and after.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Event {
    pub direction: Direction,
    /// When it was recorded ([`Event::at`]), in 48 bits of microseconds: the driver's clock
    /// starts at 0 when the daemon does, so they last 8.9 years of uptime (then saturate),
    /// in 4 bytes fewer per event than an [`Instant`].
    at_low: u32,
    at_high: u16,
    pub flags: Flags,
    pub seq: SeqNum,
    /// Meaningful only with the ACK flag.
    pub ack: SeqNum,
    /// Payload length (SYN and FIN not counted).
    pub len: u32,
    /// The window field as on the wire (unscaled).
    pub window: u16,
    pub options: OptionSummary,
    /// The connection's state when the previous event was recorded (or when it was created).
    pub before: State,
    /// Its state once the segment was processed (incoming) or sent (outgoing).
    pub after: State,
    /// Why we sent it; on a segment from the peer, what the trace noticed (a duplicate ACK,
    /// a retransmission, out-of-order data, a window update).
    pub label: Label,
}

/// The latest time an event keeps (see [`Event::at`]): 2^48 - 1 µs, 8.9 years.
const AT_MAX: u64 = (1 << 48) - 1;

impl Event {
    /// When the segment was recorded (sent or received).
    pub fn at(&self) -> Instant {
        Instant::from_micros(u64::from(self.at_high) << 32 | u64::from(self.at_low))
    }
}

/// What the events before the next one in a packed record tell of it (see [`Pack`]).
#[derive(Default)]
pub struct EventContext {
    at: u64,
    /// The state after the previous event.
    after: Option<State>,
    /// Per direction (in, out): where its last segment ended (its sequence number, length,
    /// SYN and FIN), and its window.
    end: [Option<SeqNum>; 2],
    window: [Option<u16>; 2],
}

impl EventContext {
    fn side(direction: Direction) -> usize {
        match direction {
            Direction::In => 0,
            Direction::Out => 1,
        }
    }

    /// The sequence number a segment is expected at, and the acknowledgment it is expected
    /// to carry: where the last one its way ended, and where the last one the other way did.
    fn expect(&self, direction: Direction) -> (Option<SeqNum>, SeqNum) {
        let side = Self::side(direction);
        let end = |i: usize| self.end.get(i).copied().flatten();
        (end(side), end(1 - side).unwrap_or(SeqNum::new(0)))
    }

    fn window(&self, direction: Direction) -> Option<u16> {
        self.window.get(Self::side(direction)).copied().flatten()
    }

    fn saw(&mut self, e: &Event) {
        let side = Self::side(e.direction);
        let end = e.seq.add(
            e.len
                .wrapping_add(u32::from(e.flags.syn()) + u32::from(e.flags.fin())),
        );
        if let Some(slot) = self.end.get_mut(side) {
            *slot = Some(end);
        }
        if let Some(slot) = self.window.get_mut(side) {
            *slot = Some(e.window);
        }
        self.at = e.at().as_micros();
        self.after = Some(e.after);
    }
}

/// The packed form of an event: a byte of [`EventBits`], the flags, the time since the
/// previous event, the sequence number from where this direction's last segment ended (the
/// first one whole, 4 bytes), the acknowledgment from where the other direction's ended, then
/// only what the bits say is there: the length, the window (when it changed), the options,
/// the label, the states (when they are not the previous event's `after` and no change).
/// Plain data or its ACK takes 6 or 7 bytes, a SYN with options about 20.
impl Pack for Event {
    type Context = EventContext;

    fn encode(&self, cx: &mut EventContext, out: &mut Vec<u8>) {
        let (seq, ack) = cx.expect(self.direction);
        let before = cx.after != Some(self.before);
        let window = cx.window(self.direction) != Some(self.window);
        let label = label_tag(self.label);
        let mut bits = 0;
        for (on, bit) in [
            (self.direction == Direction::Out, EventBits::OUT),
            (before, EventBits::BEFORE),
            (self.after != self.before, EventBits::AFTER),
            (!self.options.is_empty(), EventBits::OPTIONS),
            (label.0 != 0, EventBits::LABEL),
            (window, EventBits::WINDOW),
            (seq.is_none(), EventBits::SEQ_WHOLE),
            (self.len != 0, EventBits::LEN),
        ] {
            if on {
                bits |= bit;
            }
        }
        out.push(bits);
        put_varint(out, u64::from(self.flags.0));
        put_signed(out, self.at().as_micros().wrapping_sub(cx.at) as i64);
        match seq {
            Some(seq) => put_delta32(out, self.seq.raw(), seq.raw()),
            None => out.extend_from_slice(&self.seq.raw().to_le_bytes()),
        }
        put_delta32(out, self.ack.raw(), ack.raw());
        if self.len != 0 {
            put_varint(out, u64::from(self.len));
        }
        if window {
            out.extend_from_slice(&self.window.to_le_bytes());
        }
        if !self.options.is_empty() {
            let o = &self.options;
            out.push(o.bits);
            if let Some(mss) = o.mss() {
                put_varint(out, u64::from(mss));
            }
            out.extend(o.window_scale());
            out.extend(o.fastopen());
        }
        if label.0 != 0 {
            out.push(label.0);
            if let Label::DupAck(n) = self.label {
                put_varint(out, u64::from(n));
            }
        }
        if before {
            out.push(state_tag(self.before));
        }
        if self.after != self.before {
            out.push(state_tag(self.after));
        }
        cx.saw(self);
    }

    fn decode(cx: &mut EventContext, r: &mut Reader<'_>) -> Option<Event> {
        let bits = r.byte()?;
        let has = |bit: u8| bits & bit != 0;
        let direction = if has(EventBits::OUT) {
            Direction::Out
        } else {
            Direction::In
        };
        let (seq, ack) = cx.expect(direction);
        let flags = Flags(r.u16()?);
        let micros = cx.at.wrapping_add(r.signed()? as u64);
        let seq = match seq {
            Some(seq) if !has(EventBits::SEQ_WHOLE) => r.delta32(seq.raw())?,
            _ => u32::from_le_bytes([r.byte()?, r.byte()?, r.byte()?, r.byte()?]),
        };
        let ack = r.delta32(ack.raw())?;
        let len = if has(EventBits::LEN) {
            u32::try_from(r.varint()?).ok()?
        } else {
            0
        };
        let window = match cx.window(direction) {
            Some(window) if !has(EventBits::WINDOW) => window,
            _ => u16::from_le_bytes([r.byte()?, r.byte()?]),
        };
        let mut options = OptionSummary::default();
        if has(EventBits::OPTIONS) {
            options.bits = r.byte()?;
            if options.bits & OptionSummary::MSS != 0 {
                options.mss = r.u16()?;
            }
            if options.bits & OptionSummary::WINDOW_SCALE != 0 {
                options.window_scale = r.byte()?;
            }
            if options.bits & OptionSummary::FASTOPEN != 0 {
                options.fastopen = r.byte()?;
            }
        }
        let label = if has(EventBits::LABEL) {
            let tag = r.byte()?;
            let n = if tag == label_tag(Label::DupAck(0)).0 {
                r.u16()?
            } else {
                0
            };
            label_of(tag, n)?
        } else {
            Label::None
        };
        let before = match cx.after {
            Some(after) if !has(EventBits::BEFORE) => after,
            _ => state_of(r.byte()?)?,
        };
        let after = if has(EventBits::AFTER) {
            state_of(r.byte()?)?
        } else {
            before
        };
        let e = Event {
            direction,
            at_low: micros as u32,
            at_high: (micros >> 32) as u16,
            flags,
            seq: SeqNum::new(seq),
            ack: SeqNum::new(ack),
            len,
            window,
            options,
            before,
            after,
            label,
        };
        cx.saw(&e);
        Some(e)
    }
}

/// The first byte of a packed event (see `impl Pack for Event`).
struct EventBits;

impl EventBits {
    const OUT: u8 = 1;
    /// Its `before` is not the previous event's `after`: written.
    const BEFORE: u8 = 1 << 1;
    /// Its `after` is not its `before`: written.
    const AFTER: u8 = 1 << 2;
    const OPTIONS: u8 = 1 << 3;
    const LABEL: u8 = 1 << 4;
    /// Its window is not the last one its way: written.
    const WINDOW: u8 = 1 << 5;
    /// The first segment its way: its sequence number is written whole.
    const SEQ_WHOLE: u8 = 1 << 6;
    const LEN: u8 = 1 << 7;
}

fn state_tag(state: State) -> u8 {
    State::ALL
        .iter()
        .position(|&s| s == state)
        .and_then(|i| u8::try_from(i).ok())
        .unwrap_or(0)
}

fn state_of(tag: u8) -> Option<State> {
    State::ALL.get(usize::from(tag)).copied()
}

/// Every label but `DupAck`'s count, in the order of their tags (0 is `Label::None`).
const LABELS: [Label; 19] = [
    Label::None,
    Label::RtoRetransmit,
    Label::FastRetransmit,
    Label::SackRetransmit,
    Label::Rack,
    Label::Tlp,
    Label::Dsack,
    Label::Prr,
    Label::DupAck(0),
    Label::PeerRetransmit,
    Label::OutOfOrder,
    Label::ZeroWindowProbe,
    Label::WindowUpdate,
    Label::KeepAlive,
    Label::ChallengeAck,
    Label::TimeWaitReAck,
    Label::SynCookie,
    Label::Pmtu,
    Label::FastOpen,
];

/// A label's tag in [`LABELS`] (and its count, for a duplicate ACK).
fn label_tag(label: Label) -> (u8, u16) {
    let (plain, n) = match label {
        Label::DupAck(n) => (Label::DupAck(0), n),
        other => (other, 0),
    };
    let tag = LABELS
        .iter()
        .position(|&l| l == plain)
        .and_then(|i| u8::try_from(i).ok())
        .unwrap_or(0);
    (tag, n)
}

fn label_of(tag: u8, n: u16) -> Option<Label> {
    match LABELS.get(usize::from(tag)).copied()? {
        Label::DupAck(_) => Some(Label::DupAck(n)),
        other => Some(other),
    }
}

/// One row of a diagram, in order: a segment (and whether `--impair` dropped it), or a run of
/// plain segments folded into one line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Row {
    Segment(Event, Lost),
    Fold(Folded),
}

/// Whether a segment reached the other side: `--impair` drops it on the link, on the way to
/// us (`In`) or to the peer (`Out`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Lost {
    #[default]
    No,
    /// Dropped by `--impair` on its way (its direction says which way).
    Impair,
}

/// A notable event kept from the middle, with the plain run folded before it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Kept {
    pub before: Folded,
    pub event: Event,
    pub lost: Lost,
}

/// What the trace remembers of the segments so far, to tell the notable ones: 20 bytes,
/// where three `Option`s took 28 (it is in every connection).
#[derive(Clone, Copy, Debug, Default)]
struct Seen {
    /// The end of the highest data each side sent (SYN and FIN counted), valid with
    /// [`Seen::PEER_END`] and [`Seen::OUR_END`].
    peer_end: SeqNum,
    our_end: SeqNum,
    /// The peer's latest acknowledgment and window (valid with [`Seen::ACK`]), and how many
    /// times in a row it repeated.
    ack: SeqNum,
    wnd: u16,
    dups: u16,
    known: u8,
}

impl Seen {
    const PEER_END: u8 = 1;
    const OUR_END: u8 = 1 << 1;
    const ACK: u8 = 1 << 2;

    fn bit(direction: Direction) -> u8 {
        match direction {
            Direction::In => Seen::PEER_END,
            Direction::Out => Seen::OUR_END,
        }
    }

    /// The end of the highest data `direction` carried.
    fn end(&self, direction: Direction) -> Option<SeqNum> {
        let end = match direction {
            Direction::In => self.peer_end,
            Direction::Out => self.our_end,
        };
        (self.known & Seen::bit(direction) != 0).then_some(end)
    }

    fn set_end(&mut self, direction: Direction, end: SeqNum) {
        match direction {
            Direction::In => self.peer_end = end,
            Direction::Out => self.our_end = end,
        }
        self.known |= Seen::bit(direction);
    }

    /// The peer's latest acknowledgment and window.
    fn ack(&self) -> Option<(SeqNum, u16)> {
        (self.known & Seen::ACK != 0).then_some((self.ack, self.wnd))
    }

    fn set_ack(&mut self, ack: SeqNum, wnd: u16) {
        (self.ack, self.wnd) = (ack, wnd);
        self.known |= Seen::ACK;
    }
}

/// What was dropped from the middle of a long connection's record.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Folded {
    pub segments_in: u64,
    pub segments_out: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
    /// Notable segments among them: the record of them ([`MIDDLE`]) was full.
    pub notable: u64,
}

impl Folded {
    pub fn segments(&self) -> u64 {
        self.segments_in + self.segments_out
    }

    fn add_notable(&mut self, e: &Event) {
        self.add(e);
        self.notable += 1;
    }

    fn add(&mut self, e: &Event) {
        match e.direction {
            Direction::In => {
                self.segments_in += 1;
                self.bytes_in += u64::from(e.len);
            }
            Direction::Out => {
                self.segments_out += 1;
                self.bytes_out += u64::from(e.len);
            }
        }
    }
}

/// The bounded record. See the module docs.
///
/// 64 bytes in every connection: what a short record needs (the events, the segments seen,
/// the slots dropped by `--impair`) is inline; the machinery of a long one (the ring's
/// position, the notable events that fell out of it, the counts of the folded ones) is
/// [`Long`], allocated when the first event goes past the head into the ring (or when a
/// trace without room first counts one).
#[derive(Clone, Debug)]
pub struct Trace {
    /// `events[..HEAD]` is the head; `events[HEAD..]` the ring, oldest at `HEAD + next` once
    /// full. A trace made with `Default` has no room: it only counts (folds) events. Packed
    /// while the connection is idle if it has no [`Long`] (see [`Trace::shrink`]).
    events: Record<Event>,
    long: Option<Box<Long>>,
    /// One bit per slot of `events`: dropped by `--impair`.
    lost: u64,
    seen: Seen,
    last_state: State,
    /// Events are kept (false: only counted).
    room: bool,
}

/// The state only a long record needs (see [`Trace`]).
#[derive(Clone, Debug, Default)]
struct Long {
    /// The ring's oldest slot, once full, is `HEAD + next`.
    next: usize,
    /// Everything that fell out of the ring and was not kept in the middle, or was only
    /// counted.
    folded: Folded,
    /// One bit per slot of `events` in the ring: notable (kept in the middle when it falls
    /// out).
    notable: u64,
    /// Notable events that fell out of the ring (at most [`MIDDLE`]), allocated on the first.
    middle: Vec<Kept>,
    /// The plain events folded since the last one kept in the middle.
    run: Folded,
}

impl Default for Trace {
    /// A record with no room, which only counts: what `std::mem::take` leaves behind.
    fn default() -> Self {
        Trace {
            events: Record::default(),
            long: None,
            lost: 0,
            seen: Seen::default(),
            last_state: State::Closed,
            room: false,
        }
    }
}

impl Trace {
    /// An empty record that keeps up to [`HEAD`] + [`TAIL`] events (allocated as they come),
    /// for a connection that starts in CLOSED.
    pub fn new() -> Trace {
        Trace {
            room: true,
            ..Trace::default()
        }
    }

    /// Give back the room kept for events that have not come: a connection that will record
    /// little more (TIME-WAIT), or nothing for a while (idle), keeps exactly what it
    /// recorded. A short record (no [`Long`]) is packed: an echo's 6 events in 56
    /// bytes instead of 216 (see `tcp::packed`); the next event recorded unpacks it.
    pub fn shrink(&mut self) {
        match &mut self.long {
            None => self.events.pack(),
            Some(long) => {
                self.events.live().shrink_to_fit();
                long.middle.shrink_to_fit();
            }
        }
    }

    /// Whether the kept events are packed (an idle connection's short record).
    pub fn is_packed(&self) -> bool {
        self.events.is_packed()
    }

    /// Bytes allocated for kept events (and a long record's state).
    pub fn heap_bytes(&self) -> usize {
        self.events.heap_bytes()
            + self.long.as_ref().map_or(0, |long| {
                std::mem::size_of::<Long>() + long.middle.capacity() * std::mem::size_of::<Kept>()
            })
    }

    /// The state of a long record, allocated on first use.
    fn long(&mut self) -> &mut Long {
        self.long.get_or_insert_with(Box::default)
    }

    /// The state the next event starts from (LISTEN for a passive open).
    pub fn begin(&mut self, state: State) {
        self.last_state = state;
    }

    /// The state after the last recorded event.
    pub fn last_state(&self) -> State {
        self.last_state
    }

    /// How many events were recorded, kept or folded.
    pub fn total(&self) -> u64 {
        let long = self.long.as_ref().map_or(0, |long| {
            long.folded.segments() + u64::try_from(long.middle.len()).unwrap_or(u64::MAX)
        });
        u64::try_from(self.events.len())
            .unwrap_or(u64::MAX)
            .saturating_add(long)
    }

    pub fn folded(&self) -> Folded {
        self.long
            .as_ref()
            .map_or_else(Folded::default, |long| long.folded)
    }

    /// The ring's oldest slot, once full.
    fn next(&self) -> usize {
        self.long.as_ref().map_or(0, |long| long.next)
    }

    /// Every kept event in order (the folded ones sit between the head and the rest), the
    /// notable ones kept from the middle included.
    pub fn events(&self) -> impl Iterator<Item = Event> {
        self.rows().filter_map(|r| match r {
            Row::Segment(e, _) => Some(e),
            Row::Fold(_) => None,
        })
    }

    /// The diagram's rows in order: the head, the notable events of the middle each after
    /// the run folded before it, the last run folded, the ring. Gathered (and a packed
    /// record decoded) into a temporary: this is for the diagrams, not the data path.
    pub fn rows(&self) -> impl Iterator<Item = Row> {
        let kept = self.events.items();
        let lost = |slot: usize| {
            if self.lost & bit(slot) != 0 {
                Lost::Impair
            } else {
                Lost::No
            }
        };
        let mut rows = Vec::with_capacity(kept.len() + 2 * self.middle().len() + 1);
        rows.extend(
            (0..)
                .zip(head(&kept))
                .map(|(i, &e)| Row::Segment(e, lost(i))),
        );
        for k in self.middle() {
            if k.before.segments() > 0 {
                rows.push(Row::Fold(k.before));
            }
            rows.push(Row::Segment(k.event, k.lost));
        }
        if let Some(long) = self.long.as_ref().filter(|long| long.run.segments() > 0) {
            rows.push(Row::Fold(long.run));
        }
        rows.extend(ring(&kept, self.next()).map(|(i, &e)| Row::Segment(e, lost(i))));
        rows.into_iter()
    }

    /// The notable events kept from the middle.
    pub fn middle(&self) -> &[Kept] {
        self.long.as_ref().map_or(&[], |long| &long.middle)
    }

    /// Record a segment; its `before` state is the previous event's `after`.
    pub fn record(
        &mut self,
        direction: Direction,
        at: Instant,
        seg: &TcpSegment<'_>,
        after: State,
    ) {
        self.record_labeled(direction, at, seg, after, Label::None);
    }

    /// Record a segment we sent for a reason the diagram names.
    pub fn record_labeled(
        &mut self,
        direction: Direction,
        at: Instant,
        seg: &TcpSegment<'_>,
        after: State,
        label: Label,
    ) {
        let (label, notable) = self.classify(direction, seg, label);
        let event = self.event(direction, at, seg, after, label);
        self.push(event, notable, Lost::No);
    }

    /// `--impair` dropped a segment on the link: one we sent is marked on its arrow (the
    /// latest kept one with its numbers); one from the peer never reached the connection and
    /// is recorded, marked, with the state unchanged.
    pub fn record_lost(&mut self, direction: Direction, at: Instant, seg: &TcpSegment<'_>) {
        match direction {
            Direction::Out => {
                let len = u32::try_from(seg.payload.len()).unwrap_or(u32::MAX);
                let same = |e: &Event| {
                    e.direction == Direction::Out
                        && e.seq == seg.seq
                        && e.len == len
                        && e.flags == seg.flags
                };
                let kept = self.events.items();
                let newest = (0..)
                    .zip(head(&kept))
                    .chain(ring(&kept, self.next()))
                    .filter(|&(slot, e)| same(e) && self.lost & bit(slot) == 0)
                    .map(|(slot, _)| slot)
                    .last();
                drop(kept);
                if let Some(slot) = newest {
                    self.mark(slot, true, Lost::Impair);
                } else if let Some(k) = self
                    .long
                    .iter_mut()
                    .flat_map(|long| long.middle.iter_mut())
                    .rev()
                    .find(|k| same(&k.event) && k.lost == Lost::No)
                {
                    k.lost = Lost::Impair;
                }
            }
            Direction::In => {
                let state = self.last_state;
                let event = self.event(direction, at, seg, state, Label::None);
                self.push(event, true, Lost::Impair);
            }
        }
    }

    /// Whether a segment is notable (see the module docs), and the label of one from the
    /// peer; remembers what it needs to judge the next ones.
    fn classify(
        &mut self,
        direction: Direction,
        seg: &TcpSegment<'_>,
        label: Label,
    ) -> (Label, bool) {
        let f = seg.flags;
        let len = u32::try_from(seg.payload.len()).unwrap_or(u32::MAX);
        let end = seg
            .seq
            .add(len.saturating_add(u32::from(f.syn()) + u32::from(f.fin())));
        let special = f.syn()
            || f.fin()
            || f.rst()
            || seg.options.sack_count > 0
            || (seg.window == 0 && !f.rst());
        let seen = &mut self.seen;
        let high = seen.end(direction);
        let again = len > 0 && high.is_some_and(|h| seg.seq.lt(h));
        let gap = len > 0 && high.is_some_and(|h| seg.seq.gt(h));
        if high.is_none_or(|h| end.gt(h)) {
            seen.set_end(direction, end);
        }
        if direction == Direction::Out {
            return (label, special || again || label != Label::None);
        }
        // A label the input path gave (a Fast Open SYN's `[TFO]`) stands unless the segment
        // is a retransmission or out of order.
        let mut label = if again {
            Label::PeerRetransmit
        } else if gap {
            Label::OutOfOrder
        } else {
            label
        };
        if f.ack() && !f.syn() && !f.rst() {
            let outstanding = seen.end(Direction::Out).is_some_and(|e| e.gt(seg.ack));
            match seen.ack() {
                Some((ack, wnd)) if ack == seg.ack && len == 0 && !f.fin() => {
                    if wnd != seg.window {
                        label = Label::WindowUpdate;
                    } else if outstanding {
                        seen.dups = seen.dups.saturating_add(1);
                        label = Label::DupAck(seen.dups);
                    }
                }
                Some((ack, _)) if ack == seg.ack => {}
                _ => seen.dups = 0,
            }
            if seen.ack().is_none_or(|(ack, _)| seg.ack.ge(ack)) {
                seen.set_ack(seg.ack, seg.window);
            }
        }
        (label, special || label != Label::None)
    }

    fn event(
        &self,
        direction: Direction,
        at: Instant,
        seg: &TcpSegment<'_>,
        after: State,
        label: Label,
    ) -> Event {
        let micros = at.as_micros().min(AT_MAX);
        Event {
            direction,
            // The low 32 and the next 16 bits (`as` keeps the low bits).
            at_low: micros as u32,
            at_high: (micros >> 32) as u16,
            flags: seg.flags,
            seq: seg.seq,
            ack: seg.ack,
            len: u32::try_from(seg.payload.len()).unwrap_or(u32::MAX),
            window: seg.window,
            options: OptionSummary::of(&seg.options),
            before: self.last_state,
            after,
            label,
        }
    }

    fn push(&mut self, event: Event, notable: bool, lost: Lost) {
        self.last_state = event.after;
        let len = self.events.len();
        if len < HEAD + TAIL && self.room {
            // An idle record was packed: unpacked with room for what it held, it grows again.
            let events = self.events.live();
            if len == events.capacity() {
                // Grow by doubling, but never beyond the bound.
                let want = (len * 2).clamp(8, HEAD + TAIL);
                events.reserve_exact(want - len);
            }
            events.push(event);
            self.mark(len, notable, lost);
            return;
        }
        if len < HEAD + TAIL {
            // No room was allocated: count only.
            let long = self.long();
            long.folded.add(&event);
            long.run.add(&event);
            return;
        }
        let long = self.long();
        let slot = HEAD + long.next;
        long.next = (long.next + 1) % TAIL;
        let old_notable = long.notable & bit(slot) != 0;
        let old_lost = if self.lost & bit(slot) != 0 {
            Lost::Impair
        } else {
            Lost::No
        };
        if let Some(old) = self.events.live().get_mut(slot) {
            let old = std::mem::replace(old, event);
            self.evict(old, old_notable, old_lost);
        }
        self.mark(slot, notable, lost);
    }

    /// Mark a slot of `events` notable or not (only the ring's marks are kept: the head is
    /// never evicted), dropped by `--impair` or not.
    fn mark(&mut self, slot: usize, notable: bool, lost: Lost) {
        let b = bit(slot);
        self.lost = if lost == Lost::Impair {
            self.lost | b
        } else {
            self.lost & !b
        };
        if slot >= HEAD {
            let long = self.long();
            long.notable = if notable {
                long.notable | b
            } else {
                long.notable & !b
            };
        }
    }

    /// An event falls out of the ring: kept in the middle if notable (and there is room),
    /// else folded.
    fn evict(&mut self, old: Event, notable: bool, lost: Lost) {
        let long = self.long();
        if notable && long.middle.len() < MIDDLE {
            if long.middle.len() == long.middle.capacity() {
                let want = (long.middle.len() * 2).clamp(4, MIDDLE);
                long.middle.reserve_exact(want - long.middle.len());
            }
            let before = std::mem::take(&mut long.run);
            long.middle.push(Kept {
                before,
                event: old,
                lost,
            });
        } else if notable {
            long.folded.add_notable(&old);
            long.run.add_notable(&old);
        } else {
            long.folded.add(&old);
            long.run.add(&old);
        }
    }

    /// The most recently recorded event, if it was kept.
    fn last_mut(&mut self) -> Option<&mut Event> {
        let next = self.next();
        let events = self.events.live();
        if events.len() < HEAD + TAIL {
            return events.last_mut();
        }
        let slot = HEAD + (next + TAIL - 1) % TAIL;
        events.get_mut(slot)
    }

    /// The state changed after the last event was recorded, as a consequence of it (a RST we
    /// sent closes the connection).
    pub(super) fn settle(&mut self, state: State) {
        if self.last_state != state {
            self.last_state = state;
            // An idle record (packed) stays packed.
            let packed = self.events.is_packed();
            if let Some(e) = self.last_mut() {
                e.after = state;
            }
            if packed {
                self.events.pack();
            }
        }
    }
}

/// The head of a record's events (see [`Trace::events`]).
fn head(events: &[Event]) -> &[Event] {
    events.get(..HEAD.min(events.len())).unwrap_or(&[])
}

/// The ring of a record's events, oldest first (`next` is its oldest slot once full), with
/// their slots.
fn ring(events: &[Event], next: usize) -> impl Iterator<Item = (usize, &Event)> {
    let ring = events.get(HEAD..).unwrap_or(&[]);
    let split = if ring.len() == TAIL { next } else { 0 };
    let split = split.min(ring.len());
    let (older, newer) = ring.split_at(split);
    (HEAD + split..)
        .zip(newer)
        .chain((HEAD..).zip(older.iter()))
}

/// The bit of a slot of `events` (there are `HEAD + TAIL` = 64 of them).
fn bit(slot: usize) -> u64 {
    1u64.checked_shl(u32::try_from(slot).unwrap_or(u32::MAX))
        .unwrap_or(0)
}

const _: () = assert!(HEAD + TAIL <= 64);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tcp::packed::edgy32;
    use crate::tcp::{Config, Connection, Socket};
    use crate::wire::{Quad, SEGMENT_TEMPLATE, TcpOptions};
    use proptest::prelude::*;

    const ISS: SeqNum = SeqNum::new(1_000_000);
    const IRS: SeqNum = SeqNum::new(u32::MAX - 5);

    const FROM_PEER: TcpSegment<'static> = TcpSegment {
        src_port: 40000,
        dst_port: 80,
        seq: IRS.add(1),
        ack: ISS.add(1),
        flags: Flags::ACK,
        window: 64000,
        ..SEGMENT_TEMPLATE
    };

    fn quad() -> Quad {
        Quad {
            local: "198.18.0.2:80".parse().unwrap(),
            remote: "198.18.0.1:40000".parse().unwrap(),
        }
    }

    fn cfg() -> Config {
        Config {
            timestamps: false,
            window_scaling: false,
            sack: false,
            ..Config::default()
        }
    }

    fn drain(conn: &mut Connection, now: Instant) -> usize {
        let mut n = 0;
        conn.poll_transmit(now, &mut |_| n += 1);
        n
    }

    #[test]
    fn the_connection_records_its_own_story_from_listen_to_closed() {
        let mut now = Instant::from_millis(1000);
        let syn = TcpSegment {
            seq: IRS,
            flags: Flags::SYN,
            options: TcpOptions {
                mss: Some(1400),
                ..TcpOptions::EMPTY
            },
            ..FROM_PEER
        };
        let mut conn =
            Connection::accept(now, quad(), &syn, ISS, 1460, &std::sync::Arc::new(cfg()));
        assert_eq!(drain(&mut conn, now), 1);
        // The SYN,ACK is lost and sent again: one retransmission.
        now = conn.poll_timeout().unwrap();
        conn.handle_timeout(now);
        assert_eq!(drain(&mut conn, now), 1);
        assert_eq!(conn.retransmissions(), 1);
        conn.on_segment(now, &FROM_PEER);
        let hello = TcpSegment {
            flags: Flags::PSH | Flags::ACK,
            payload: b"hello",
            ..FROM_PEER
        };
        conn.on_segment(now, &hello);
        let mut buf = [0u8; 16];
        assert_eq!(conn.recv(&mut buf), 5);
        conn.close();
        assert_eq!(drain(&mut conn, now), 1);
        let fin_ack = TcpSegment {
            seq: IRS.add(6),
            ack: ISS.add(2),
            flags: Flags::FIN | Flags::ACK,
            ..FROM_PEER
        };
        conn.on_segment(now, &fin_ack);
        assert_eq!(drain(&mut conn, now), 1);
        assert_eq!(conn.state(), State::TimeWait);
        now = conn.poll_timeout().unwrap();
        conn.handle_timeout(now);
        assert_eq!(conn.state(), State::Closed);
        // Polling a closed connection sends nothing and does not rewrite the last arrow.
        assert_eq!(drain(&mut conn, now), 0);

        let expected = "\
198.18.0.1:40000                      198.18.0.2:80
 SYN seq=0 win=64000 <mss 1400>  ──▶  LISTEN → SYN-RECEIVED
                                 ◀──  SYN,ACK seq=0 ack=1 win=65535 <mss 1460>
                                 ◀──  SYN,ACK seq=0 ack=1 win=65535 <mss 1460> [retransmission (RTO)]
 ACK seq=1 ack=1                 ──▶  SYN-RECEIVED → ESTABLISHED
 PSH,ACK seq=1 ack=1 len=5       ──▶  ESTABLISHED
                                 ◀──  FIN,ACK seq=1 ack=6  (ESTABLISHED → FIN-WAIT-1)
 FIN,ACK seq=6 ack=2             ──▶  FIN-WAIT-1 → TIME-WAIT
                                 ◀──  ACK seq=2 ack=7
                                      TIME-WAIT → CLOSED (2·MSL elapsed)
";
        let got = conn.ladder();
        assert_eq!(got, expected, "\n{got}");
        assert_eq!(Socket::ladder(&conn), got);
        assert_eq!(conn.trace().total(), 8);
    }

    #[test]
    fn a_reply_rst_is_recorded_as_sent() {
        let now = Instant::ZERO;
        let syn = TcpSegment {
            seq: IRS,
            flags: Flags::SYN,
            ..FROM_PEER
        };
        let mut conn =
            Connection::accept(now, quad(), &syn, ISS, 1460, &std::sync::Arc::new(cfg()));
        drain(&mut conn, now);
        // An ACK of something we never sent, in SYN-RECEIVED: <SEQ=SEG.ACK><CTL=RST>.
        let bad = TcpSegment {
            ack: ISS.add(100),
            ..FROM_PEER
        };
        assert!(conn.on_segment(now, &bad).is_some());
        let last = conn.trace().events().last().unwrap();
        assert_eq!(last.direction, Direction::Out);
        assert_eq!(last.flags, Flags::RST);
    }

    /// A segment we sent: `len` bytes at `seq` (from ISS + 1), labelled when notable.
    fn sent(seq: u32, len: usize, label: Label) -> (TcpSegment<'static>, Label) {
        static DATA: [u8; 100] = [0; 100];
        let seg = TcpSegment {
            src_port: 80,
            dst_port: 40000,
            seq: ISS.add(1 + seq),
            ack: IRS.add(1),
            flags: Flags::ACK,
            window: 64000,
            payload: DATA.get(..len).unwrap_or(&DATA),
            ..SEGMENT_TEMPLATE
        };
        (seg, label)
    }

    #[test]
    fn a_short_record_has_no_long_state_and_allocates_it_past_the_head() {
        assert!(std::mem::size_of::<Trace>() <= 64);
        assert_eq!(std::mem::size_of::<Event>(), 36);
        let mut t = Trace::new();
        t.begin(State::Established);
        for i in 0..HEAD {
            let (seg, _) = sent(100 * i as u32, 100, Label::None);
            t.record(Direction::Out, Instant::ZERO, &seg, State::Established);
        }
        assert!(t.long.is_none(), "the head needs no fold state");
        assert_eq!(t.heap_bytes(), t.events.heap_bytes());
        assert_eq!(
            (t.total(), t.folded(), t.middle().len()),
            (HEAD as u64, Folded::default(), 0)
        );
        let (seg, _) = sent(100 * HEAD as u32, 100, Label::None);
        t.record(Direction::Out, Instant::ZERO, &seg, State::Established);
        assert!(t.long.is_some(), "the ring's first event");
        assert_eq!(
            t.heap_bytes(),
            t.events.heap_bytes() + std::mem::size_of::<Long>()
        );
        assert_eq!(t.total(), HEAD as u64 + 1);
    }

    #[test]
    fn a_long_record_folds_as_the_head_the_middle_and_the_ring_say() {
        // 1,000 segments, every 7th notable (a label) and one dropped on the link: checked
        // against the record's definition (module docs), written out plainly.
        let n = 1000usize;
        let segs: Vec<(TcpSegment<'static>, Label)> = (0..n)
            .map(|i| {
                let label = if i % 7 == 3 { Label::Prr } else { Label::None };
                sent(100 * i as u32, 100, label)
            })
            .collect();
        let mut t = Trace::new();
        t.begin(State::Established);
        let mut expected: Vec<(Event, Lost)> = Vec::new();
        for (i, (seg, label)) in segs.iter().enumerate() {
            let at = Instant::from_micros(i as u64);
            expected.push((
                t.event(Direction::Out, at, seg, State::Established, *label),
                Lost::No,
            ));
            t.record_labeled(Direction::Out, at, seg, State::Established, *label);
            if i == 200 {
                // Dropped: marked on its arrow, and so notable.
                t.record_lost(Direction::Out, at, seg);
                expected[i].1 = Lost::Impair;
            }
        }
        let notable = |i: usize| i % 7 == 3 || i == 200;
        // The definition: the head, then what fell out of the ring (notable ones kept in
        // order up to MIDDLE, each after the run folded before it), the last run, the ring.
        let mut rows: Vec<Result<(Event, Lost), Folded>> = Vec::new();
        let (mut run, mut folded, mut kept) = (Folded::default(), Folded::default(), 0);
        for (i, &(e, lost)) in expected.iter().enumerate().take(n - TAIL) {
            if i < HEAD {
                rows.push(Ok((e, lost)));
            } else if notable(i) && kept < MIDDLE {
                if run.segments() > 0 {
                    rows.push(Err(std::mem::take(&mut run)));
                }
                rows.push(Ok((e, lost)));
                kept += 1;
            } else if notable(i) {
                run.add_notable(&e);
                folded.add_notable(&e);
            } else {
                run.add(&e);
                folded.add(&e);
            }
        }
        rows.push(Err(run));
        rows.extend(expected[n - TAIL..].iter().map(|&r| Ok(r)));
        let got: Vec<Result<(Event, Lost), Folded>> = t
            .rows()
            .map(|r| match r {
                Row::Segment(e, lost) => Ok((e, lost)),
                Row::Fold(f) => Err(f),
            })
            .collect();
        assert_eq!(got, rows);
        assert_eq!(t.total(), n as u64);
        assert_eq!(t.folded(), folded);
        assert!(folded.notable > 0, "the middle overflowed");
        assert_eq!(t.middle().len(), MIDDLE);
        assert!(t.middle().iter().any(|k| k.lost == Lost::Impair));
        // An idle long record keeps what it holds and still folds on.
        t.shrink();
        assert_eq!(t.middle().len(), MIDDLE);
        let (seg, _) = sent(100 * n as u32, 100, Label::None);
        t.record(Direction::Out, Instant::ZERO, &seg, State::Established);
        assert_eq!(t.total(), n as u64 + 1);
        assert_eq!(t.folded().segments(), folded.segments() + 1);
    }

    #[test]
    fn an_event_keeps_its_time_to_the_microsecond_for_years() {
        let mut t = Trace::new();
        let years = Instant::from_micros(8 * 365 * 86_400 * 1_000_000 + 123_457);
        for at in [
            Instant::ZERO,
            Instant::from_micros(u64::from(u32::MAX) + 1),
            years,
        ] {
            t.record(Direction::In, at, &FROM_PEER, State::Established);
            assert_eq!(t.events().last().unwrap().at(), at);
        }
        // Past 8.9 years of uptime it saturates rather than wraps.
        t.record(
            Direction::In,
            Instant::from_micros(u64::MAX),
            &FROM_PEER,
            State::Established,
        );
        assert_eq!(
            t.events().last().unwrap().at(),
            Instant::from_micros(AT_MAX)
        );
    }

    #[test]
    fn options_are_summarised_without_loss() {
        let cookie = crate::wire::FastOpenCookie::new(&[7; 16], false).unwrap();
        let o = TcpOptions {
            mss: Some(0),
            window_scale: Some(255),
            sack_permitted: true,
            timestamps: Some((1, 2)),
            fastopen: Some(cookie),
            sack_count: 4,
            ..TcpOptions::EMPTY
        };
        let s = OptionSummary::of(&o);
        assert_eq!(s.mss(), Some(0));
        assert_eq!(s.window_scale(), Some(255));
        assert!(s.sack_permitted() && s.timestamps());
        assert_eq!(s.fastopen(), Some(16));
        assert_eq!(s.sack_blocks(), 4);
        let none = OptionSummary::of(&TcpOptions::EMPTY);
        assert!(none.is_empty());
        assert_eq!(
            (none.mss(), none.window_scale(), none.fastopen()),
            (None, None, None)
        );
        assert!(!none.sack_permitted() && !none.timestamps());
        assert_eq!(none.sack_blocks(), 0);
    }

    #[test]
    fn a_trace_without_room_only_counts() {
        let mut t = Trace::default();
        t.record(Direction::In, Instant::ZERO, &FROM_PEER, State::Established);
        assert_eq!(t.events().count(), 0);
        assert_eq!(t.folded().segments_in, 1);
        assert_eq!(t.last_state(), State::Established);
        // Drawn as one fold.
        assert!(matches!(t.rows().collect::<Vec<_>>()[..], [Row::Fold(f)] if f.segments_in == 1));
    }

    /// Any summary `OptionSummary::of` can make (absent values are 0), with any Fast Open
    /// cookie length and SACK block count the bits hold.
    fn summary() -> impl Strategy<Value = OptionSummary> {
        (
            any::<Option<u16>>(),
            any::<Option<u8>>(),
            any::<Option<u8>>(),
            any::<bool>(),
            any::<bool>(),
            0u8..8,
        )
            .prop_map(|(mss, ws, fo, sack_permitted, timestamps, blocks)| {
                let flag = |on: bool, bit: u8| if on { bit } else { 0 };
                OptionSummary {
                    mss: mss.unwrap_or(0),
                    window_scale: ws.unwrap_or(0),
                    fastopen: fo.unwrap_or(0),
                    bits: flag(mss.is_some(), OptionSummary::MSS)
                        | flag(ws.is_some(), OptionSummary::WINDOW_SCALE)
                        | flag(fo.is_some(), OptionSummary::FASTOPEN)
                        | flag(sack_permitted, OptionSummary::SACK_PERMITTED)
                        | flag(timestamps, OptionSummary::TIMESTAMPS)
                        | blocks << OptionSummary::SACK_BLOCKS_SHIFT,
                }
            })
    }

    fn state() -> impl Strategy<Value = State> {
        proptest::sample::select(State::ALL.to_vec())
    }

    fn label() -> impl Strategy<Value = Label> {
        (proptest::sample::select(LABELS.to_vec()), any::<u16>()).prop_map(|(l, n)| match l {
            Label::DupAck(_) => Label::DupAck(n),
            l => l,
        })
    }

    fn event() -> impl Strategy<Value = Event> {
        (
            (
                any::<bool>(),
                prop_oneof![Just(0), Just(AT_MAX), 0..=AT_MAX, 0u64..1_000_000],
                any::<u16>(),
                edgy32(),
                edgy32(),
                edgy32(),
            ),
            (
                prop_oneof![any::<u16>(), Just(0), Just(u16::MAX)],
                summary(),
                state(),
                state(),
                label(),
            ),
        )
            .prop_map(
                |((out, at, flags, seq, ack, len), (window, options, before, after, label))| {
                    let mut t = Trace::new();
                    t.begin(before);
                    let direction = if out { Direction::Out } else { Direction::In };
                    let at = Instant::from_micros(at);
                    let mut e = t.event(direction, at, &FROM_PEER, after, label);
                    (e.flags, e.seq, e.ack) = (Flags(flags), SeqNum::new(seq), SeqNum::new(ack));
                    (e.len, e.window, e.options) = (len, window, options);
                    e
                },
            )
    }

    /// A segment for the records below: numbers near the wrap, any flags, a few options.
    fn segment() -> impl Strategy<Value = TcpSegment<'static>> {
        static DATA: [u8; 100] = [0; 100];
        (
            edgy32(),
            edgy32(),
            any::<u16>(),
            // Often the same window as before (not written again).
            prop_oneof![any::<u16>(), Just(0), Just(64000)],
            0usize..=100,
            any::<Option<u16>>(),
            0u8..=4,
        )
            .prop_map(|(seq, ack, flags, window, len, mss, sacks)| TcpSegment {
                seq: SeqNum::new(seq),
                ack: SeqNum::new(ack),
                // Only the TCP header's flags: `Flags` keeps what the wire gave.
                flags: Flags(flags & 0x1ff),
                window,
                payload: DATA.get(..len).unwrap_or(&DATA),
                options: TcpOptions {
                    mss,
                    sack_count: sacks,
                    ..TcpOptions::EMPTY
                },
                ..SEGMENT_TEMPLATE
            })
    }

    #[derive(Clone, Debug)]
    enum Op {
        Record(bool, u64, TcpSegment<'static>, State, Label),
        Lost(bool, u64, TcpSegment<'static>),
        Settle(State),
        /// The connection idles: only the record under test is shrunk.
        Idle,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            6 => (any::<bool>(), 0u64..2_000_000, segment(), state(), label())
                .prop_map(|(out, at, seg, after, label)| Op::Record(out, at, seg, after, label)),
            1 => (any::<bool>(), 0u64..2_000_000, segment())
                .prop_map(|(out, at, seg)| Op::Lost(out, at, seg)),
            1 => state().prop_map(Op::Settle),
            2 => Just(Op::Idle),
        ]
    }

    /// Everything a trace holds, its events decoded.
    fn whole(t: &Trace) -> String {
        format!(
            "{} {:?} {:?} {:?} {:?} {:?} {:?} {:?}",
            t.total(),
            t.events.items(),
            t.long,
            t.lost,
            t.seen,
            t.last_state,
            t.room,
            t.rows().collect::<Vec<_>>()
        )
    }

    proptest! {
        #[test]
        fn packed_events_read_back_as_they_were(
            events in proptest::collection::vec(event(), 0..40),
        ) {
            super::super::packed::round_trip(events);
        }

        #[test]
        fn a_record_packed_while_idle_is_the_record_that_never_was(
            ops in proptest::collection::vec(op(), 0..80),
        ) {
            // Past the head too (the long record's machinery starts from an unpacked one).
            let mut start = Trace::new();
            start.begin(State::Listen);
            let dir = |out: bool| if out { Direction::Out } else { Direction::In };
            let apply = |t: &mut Trace, op: &Op| {
                match op {
                    Op::Record(out, at, seg, after, label) => t.record_labeled(
                        dir(*out), Instant::from_micros(*at), seg, *after, *label,
                    ),
                    Op::Lost(out, at, seg) => {
                        t.record_lost(dir(*out), Instant::from_micros(*at), seg)
                    }
                    Op::Settle(state) => t.settle(*state),
                    Op::Idle => return true,
                }
                false
            };
            super::super::packed::idle_is_never(
                start, &ops, apply, Trace::shrink, whole, Trace::heap_bytes,
            );
        }
    }

    #[test]
    fn an_idle_short_record_is_packed_and_a_long_one_is_not() {
        let mut t = Trace::new();
        t.begin(State::Listen);
        let syn = TcpSegment {
            seq: IRS,
            flags: Flags::SYN,
            options: TcpOptions {
                mss: Some(1460),
                window_scale: Some(7),
                ..TcpOptions::EMPTY
            },
            ..FROM_PEER
        };
        t.record(
            Direction::In,
            Instant::from_millis(100_000),
            &syn,
            State::SynReceived,
        );
        let (seg, _) = sent(0, 6, Label::None);
        t.record(
            Direction::Out,
            Instant::from_millis(100_000),
            &seg,
            State::SynReceived,
        );
        let events: Vec<Event> = t.events().collect();
        t.shrink();
        assert!(t.events.is_packed());
        assert!(t.heap_bytes() < 40, "{} bytes", t.heap_bytes());
        assert_eq!(t.events().collect::<Vec<_>>(), events);
        // A state change after the last event, while idle (the TIME-WAIT timer): it stays
        // packed.
        t.settle(State::Closed);
        assert!(t.events.is_packed());
        assert_eq!(t.events().last().map(|e| e.after), Some(State::Closed));
        // Past the head: a long record, left as it is when idle (its room given back).
        for i in 0..HEAD as u32 {
            let (seg, _) = sent(6 + 100 * i, 100, Label::None);
            t.record(Direction::Out, Instant::ZERO, &seg, State::Established);
        }
        assert!(t.long.is_some());
        t.shrink();
        assert!(!t.events.is_packed());
        assert_eq!(t.events.heap_bytes(), (HEAD + 2) * 36);
    }
}
