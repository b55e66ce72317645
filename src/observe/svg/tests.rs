use super::*;
use crate::tcp::ladder::tests::seg;
use crate::time::Instant;
use crate::wire::Flags;

/// The view of the tests' connection: `198.18.0.1:51234` to `198.18.0.2:80`.
pub(crate) fn view(state: State) -> View {
    ladder::tests::view(state, None)
}

/// A passive open, a request (with `<` and `&` in nothing but the addresses' escaping), our
/// active close and the TIME-WAIT: nine segments.
pub(crate) fn story() -> Trace {
    use Direction::{In, Out};
    let mut t = Trace::new();
    let now = Instant::from_millis(1);
    t.begin(State::Listen);
    t.record(In, now, &seg(In, Flags::SYN, 0, 0, b""), State::SynReceived);
    t.record(
        Out,
        now,
        &seg(Out, Flags::SYN | Flags::ACK, 0, 1, b""),
        State::SynReceived,
    );
    t.record(In, now, &seg(In, Flags::ACK, 1, 1, b""), State::Established);
    t.record(
        In,
        now,
        &seg(In, Flags::PSH | Flags::ACK, 1, 1, b"GET / HTTP/1.0\r\n\r\n"),
        State::Established,
    );
    t.record(
        Out,
        now,
        &seg(Out, Flags::FIN | Flags::ACK, 1, 19, b"hi"),
        State::FinWait1,
    );
    t.record(In, now, &seg(In, Flags::ACK, 19, 4, b""), State::FinWait2);
    t.record(
        In,
        now,
        &seg(In, Flags::FIN | Flags::ACK, 19, 4, b""),
        State::TimeWait,
    );
    t.record(Out, now, &seg(Out, Flags::ACK, 4, 20, b""), State::TimeWait);
    t.record(In, now, &seg(In, Flags::RST, 20, 0, b""), State::TimeWait);
    t
}

fn segments(doc: &roxmltree::Document<'_>) -> Vec<(String, String)> {
    doc.descendants()
        .filter(|n| {
            n.has_tag_name("g") && n.attribute("class").is_some_and(|c| c.starts_with("seg "))
        })
        .map(|g| {
            let class = g.attribute("class").unwrap().to_string();
            let label = g
                .children()
                .find(|c| c.has_tag_name("text"))
                .and_then(|t| t.text())
                .unwrap_or_default()
                .to_string();
            (class, label)
        })
        .collect()
}

#[test]
fn the_ladder_is_a_well_formed_svg_with_one_arrow_per_segment() {
    let t = story();
    let svg = ladder_document(&t, &view(State::Closed));
    let doc = roxmltree::Document::parse(&svg).expect("well-formed SVG");
    let root = doc.root_element();
    assert_eq!(root.tag_name().name(), "svg");
    assert_eq!(
        root.tag_name().namespace(),
        Some("http://www.w3.org/2000/svg")
    );
    let segs = segments(&doc);
    assert_eq!(segs.len(), 9);
    let ins = segs.iter().filter(|(c, _)| c == "seg in").count();
    assert_eq!(ins, 6);
    // The words are the text ladder's.
    assert_eq!(segs[0].1, "SYN seq=0 win=502");
    assert_eq!(segs[4].1, "FIN,ACK seq=1 ack=19 len=2");
    // Our state beside our line, and the last change after the last segment.
    let texts: Vec<&str> = doc.descendants().filter_map(|n| n.text()).collect();
    assert!(texts.contains(&"LISTEN \u{2192} SYN-RECEIVED"), "{texts:?}");
    assert!(
        texts.contains(&"TIME-WAIT \u{2192} CLOSED (2·MSL elapsed)"),
        "{texts:?}"
    );
}

#[test]
fn a_long_connection_folds_its_middle_into_one_line() {
    use Direction::In;
    let mut t = Trace::new();
    t.begin(State::Established);
    for i in 0..200u32 {
        t.record(
            In,
            Instant::ZERO,
            &seg(In, Flags::ACK, 1 + 10 * i, 1, b"0123456789"),
            State::Established,
        );
    }
    let svg = ladder_document(&t, &view(State::Established));
    let doc = roxmltree::Document::parse(&svg).expect("well-formed SVG");
    let kept = t.events().count();
    assert_eq!(segments(&doc).len(), kept);
    let fold = doc
        .descendants()
        .find(|n| n.attribute("class") == Some("fold"))
        .expect("a fold line");
    let text = fold
        .descendants()
        .filter_map(|n| n.text())
        .collect::<String>();
    assert!(
        text.contains(&format!("{} segments folded", 200 - kept)),
        "{text}"
    );
}

#[test]
fn a_dropped_segment_is_a_dashed_half_arrow_with_a_cross_and_folds_show_what_they_keep() {
    use Direction::{In, Out};
    let mut t = Trace::new();
    t.begin(State::Established);
    let now = Instant::ZERO;
    let data = seg(Out, Flags::ACK, 1, 1, b"abc");
    t.record(Out, now, &data, State::Established);
    t.record_lost(Out, now, &data);
    t.record_lost(In, now, &seg(In, Flags::ACK, 1, 4, b""));
    t.record(In, now, &seg(In, Flags::ACK, 1, 4, b""), State::Established);
    let svg = ladder_document(&t, &view(State::Established));
    let doc = roxmltree::Document::parse(&svg).unwrap();
    let class = |c: &str| {
        doc.descendants()
            .filter(|n| n.has_tag_name("g") && n.attribute("class") == Some(c))
            .count()
    };
    assert_eq!(class("seg out lost"), 1, "{svg}");
    assert_eq!(class("seg in lost"), 1, "{svg}");
    assert_eq!(class("seg in"), 1, "{svg}");
    assert_eq!(svg.matches('\u{2715}').count(), 2);
    assert!(svg.contains("dropped by --impair on its way to the peer"));
    assert!(svg.contains("dropped by --impair on its way to synack"));
}
