//! The sequence diagram as an SVG picture, drawn by hand from a connection's trace: the peer's
//! line on the left, ours on the right, one sloping arrow per segment with the same words as
//! the text ladder (`tcp::ladder`) above it, and our state beside our line, as the textbook
//! draws a handshake.
//!
//! Every arrow is a `<g class="seg in">` (from the peer) or `<g class="seg out">` (ours), so a
//! test (or a person with the browser's inspector) can count the segments.

use super::escape;
use super::peer::PeerState;
use crate::tcp::State;
use crate::tcp::ladder::{self, View};
use crate::tcp::trace::{Direction, Event, Lost, Row, Trace};
use std::fmt::Write;

/// Horizontal layout: the peer's state column, the peer's line, our line, our state column.
const PEER_LINE: u32 = 180;
const OUR_LINE: u32 = 720;
const WIDTH: u32 = 960;
/// Vertical layout: the header, then one row per segment.
const TOP: u32 = 70;
const ROW: u32 = 28;
/// How far an arrow falls while it crosses: time passes on the way.
const FALL: u32 = 14;

const COLOR_IN: &str = "#1f5fa8";
const COLOR_OUT: &str = "#2a7d2a";
const COLOR_RST: &str = "#b3261e";

/// A standalone SVG document (with the XML declaration), for `/handshake.svg` and
/// `synack trace --svg`.
pub fn ladder_document(trace: &Trace, view: &View) -> String {
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    write_ladder(&mut out, trace, view);
    out
}

/// The `<svg>` element alone, to be placed inline in an HTML page.
pub fn write_ladder(out: &mut String, trace: &Trace, view: &View) {
    let rows = trace.rows().count() as u32 + 1;
    let height = TOP + rows * ROW + 20;
    let _ = write!(
        out,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"ladder\" width=\"{WIDTH}\" \
         height=\"{height}\" viewBox=\"0 0 {WIDTH} {height}\" font-family=\"monospace\" \
         font-size=\"12\">\n\
         <title>Sequence diagram of {peer} \u{2194} {local}</title>\n\
         <defs>\n",
        peer = escape(&view.quad.remote.to_string()),
        local = escape(&view.quad.local.to_string()),
    );
    for (id, color) in [("in", COLOR_IN), ("out", COLOR_OUT), ("rst", COLOR_RST)] {
        let _ = writeln!(
            out,
            "<marker id=\"head-{id}\" viewBox=\"0 0 10 10\" refX=\"10\" refY=\"5\" \
             markerWidth=\"8\" markerHeight=\"8\" orient=\"auto-start-reverse\">\
             <path d=\"M0,0 L10,5 L0,10 z\" fill=\"{color}\"/></marker>"
        );
    }
    out.push_str("</defs>\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n");
    // The two sides: who they are, and their lines down the page.
    let bottom = height - 10;
    let _ = write!(
        out,
        "<text x=\"{PEER_LINE}\" y=\"24\" text-anchor=\"middle\" font-weight=\"bold\">peer \
         {peer}</text>\n\
         <text x=\"{OUR_LINE}\" y=\"24\" text-anchor=\"middle\" font-weight=\"bold\">synack \
         {local}</text>\n\
         <text x=\"{OUR_LINE}\" y=\"42\" text-anchor=\"middle\" fill=\"#555\">(its state \
         on the right)</text>\n\
         <text x=\"{PEER_LINE}\" y=\"42\" text-anchor=\"middle\" fill=\"#555\">(its state on \
         the left, inferred)</text>\n\
         <line x1=\"{PEER_LINE}\" y1=\"50\" x2=\"{PEER_LINE}\" y2=\"{bottom}\" stroke=\"#999\" \
         stroke-width=\"2\"/>\n\
         <line x1=\"{OUR_LINE}\" y1=\"50\" x2=\"{OUR_LINE}\" y2=\"{bottom}\" stroke=\"#999\" \
         stroke-width=\"2\"/>\n",
        peer = escape(&view.quad.remote.to_string()),
        local = escape(&view.quad.local.to_string()),
    );
    let mut y = TOP;
    let mut peer = PeerState::new(trace.events().next().as_ref());
    for row in trace.rows() {
        match row {
            Row::Segment(e, lost) => arrow(out, &e, lost, view, &mut peer, y),
            Row::Fold(folded) => {
                let _ = writeln!(
                    out,
                    "<g class=\"fold\"><line x1=\"{PEER_LINE}\" y1=\"{y}\" x2=\"{OUR_LINE}\" \
                     y2=\"{y}\" stroke=\"#999\" stroke-dasharray=\"4 4\"/><text x=\"{mid}\" \
                     y=\"{ty}\" text-anchor=\"middle\" fill=\"#555\">\u{22ee} {text}</text></g>",
                    mid = (PEER_LINE + OUR_LINE) / 2,
                    ty = y + 16,
                    text = escape(&ladder::fold_text(&folded, "\u{2192}", "\u{2190}")),
                );
            }
        }
        y += ROW;
    }
    let last = trace.last_state();
    if view.state != last {
        let _ = writeln!(
            out,
            "<text class=\"state\" x=\"{x}\" y=\"{ty}\" font-weight=\"bold\">{last} \u{2192} \
             {now}{why}</text>",
            x = OUR_LINE + 10,
            ty = y + 12,
            now = view.state,
            why = ladder::closing_reason(view, last),
        );
    }
    out.push_str("</svg>\n");
}

/// One segment: a sloping arrow from its sender's line to its receiver's, its description
/// above, our state (after it) beside our line and the peer's, inferred, beside its own.
///
/// A segment `--impair` dropped (`<g class="seg in lost">`) is drawn dashed and stops halfway,
/// at a cross, with the reason after its words.
fn arrow(out: &mut String, e: &Event, lost: Lost, view: &View, peer: &mut PeerState, y: u32) {
    let (class, x1, x2) = match e.direction {
        Direction::In => ("in", PEER_LINE, OUR_LINE),
        Direction::Out => ("out", OUR_LINE, PEER_LINE),
    };
    let lost = lost == Lost::Impair;
    let mid = (PEER_LINE + OUR_LINE) / 2;
    // A lost segment's line ends at the middle, where the link dropped it.
    let (x2, y2, lost_class) = if lost {
        (mid, y + FALL / 2, " lost")
    } else {
        (x2, y + FALL, "")
    };
    let (color, head) = if e.flags.rst() {
        (COLOR_RST, "rst")
    } else if e.direction == Direction::In {
        (COLOR_IN, "in")
    } else {
        (COLOR_OUT, "out")
    };
    let mut desc = ladder::describe(e, view);
    if lost {
        desc.push(' ');
        desc.push_str(ladder::lost_text(e.direction));
    }
    let _ = write!(
        out,
        "<g class=\"seg {class}{lost_class}\"><line x1=\"{x1}\" y1=\"{y}\" x2=\"{x2}\" \
         y2=\"{y2}\" stroke=\"{color}\" stroke-width=\"1.5\"{tail}/>\
         <text x=\"{mid}\" y=\"{ty}\" text-anchor=\"middle\" fill=\"{color}\">{desc}</text>",
        tail = if lost {
            " stroke-dasharray=\"6 3\"".to_string()
        } else {
            format!(" marker-end=\"url(#head-{head})\"")
        },
        ty = y + FALL / 2 - 6,
        desc = escape(&desc),
    );
    if lost {
        let _ = write!(
            out,
            "<text class=\"drop\" x=\"{mid}\" y=\"{cy}\" text-anchor=\"middle\" \
             fill=\"{COLOR_RST}\" font-size=\"16\">\u{2715}</text>",
            cy = y + FALL / 2 + 5,
        );
    }
    let (text, bold) = state_text(e.before, e.after);
    let _ = write!(
        out,
        "<text class=\"state\" x=\"{x}\" y=\"{ty}\"{weight}>{text}</text>",
        x = OUR_LINE + 10,
        ty = y + FALL + 4,
        weight = if bold { " font-weight=\"bold\"" } else { "" },
    );
    // The peer's state where it sent or received the segment.
    let before = peer.state();
    let (text, bold) = state_text(before, peer.step(e));
    let _ = write!(
        out,
        "<text class=\"peer-state\" x=\"{x}\" y=\"{ty}\" text-anchor=\"end\" \
         font-style=\"italic\" fill=\"#444\"{weight}>{text}</text>",
        x = PEER_LINE - 10,
        ty = match e.direction {
            Direction::In => y + 4,
            Direction::Out => y + FALL + 4,
        },
        weight = if bold { " font-weight=\"bold\"" } else { "" },
    );
    out.push_str("</g>\n");
}

/// A state after a segment, as `A → B` (bold) when it changed.
fn state_text(before: State, after: State) -> (String, bool) {
    if before == after {
        (after.name().to_string(), false)
    } else {
        (format!("{before} \u{2192} {after}"), true)
    }
}

#[cfg(test)]
pub(crate) mod tests;
