//! The two graphs of a connection's page, drawn with `plotters` (SVG backend only) from the
//! sender's own samples (`tcp::samples`):
//!
//! - the **time-sequence graph**, in tcptrace's style: each data segment sent as a vertical bar
//!   from its first to its last byte (retransmissions in red), the ACK line (SND.UNA), the
//!   peer's receive-window line (SND.UNA + SND.WND) and the SACK blocks the peer reported;
//! - the **congestion graph**: cwnd, ssthresh, bytes in flight (SACK-aware, RFC 6675 pipe) and
//!   the peer's window in bytes, and SRTT and RTO in milliseconds on the right axis; with
//!   ECN, a mark on the cwnd line where the peer reported CE marks (ECE, or AccECN's ACE
//!   field growing) and one on the time axis where a segment arrived marked CE.
//!
//! Slow start is cwnd doubling each RTT, fast recovery a halving with retransmissions and
//! little flight lost, an RTO a fall to one segment with the RTO line doubling. The congestion
//! graph shades each recovery episode (fast recovery in amber, the Loss state after a
//! retransmission timeout in red) and marks each undo (a reduction that D-SACK, timestamps or
//! F-RTO proved spurious, its window given back) with a green line labelled `undo`.

use crate::tcp::samples::{Episode, Sample, SampleKind};
use plotters::coord::Shift;
use plotters::prelude::*;

/// The whole picture: the plot on the left, its legend in a column of its own on the right,
/// where it can never cover a curve (issue 22: an RTO spike hid under it).
const SIZE: (u32, u32) = (1160, 420);
/// The legend's column.
const LEGEND_WIDTH: u32 = 260;
const SENT: RGBColor = RGBColor(31, 95, 168);
const RETRANSMIT: RGBColor = RGBColor(200, 30, 30);
const ACK: RGBColor = RGBColor(42, 125, 42);
const WINDOW: RGBColor = RGBColor(200, 140, 0);
const SACKED: RGBColor = RGBColor(140, 60, 170);
const GREY: RGBColor = RGBColor(120, 120, 120);
/// ECN marks: the peer's congestion feedback, and a CE mark on an arriving segment.
const ECE_MARK: RGBColor = RGBColor(230, 90, 0);
const CE_MARK: RGBColor = RGBColor(0, 150, 160);
/// The shading of a fast recovery and of the Loss state after a timeout.
const FAST_RECOVERY: RGBColor = RGBColor(255, 196, 96);
const RTO_LOSS: RGBColor = RGBColor(240, 128, 128);
const UNDO: RGBColor = RGBColor(0, 160, 90);

/// The recovery episodes in the samples: (start, end in seconds, kind). An episode lasts from
/// its first sample to the next sample outside it (or the last sample).
pub fn episodes(samples: &[Sample]) -> Vec<(f64, f64, Episode)> {
    let Some(t0) = samples.first() else {
        return Vec::new();
    };
    let mut out: Vec<(f64, f64, Episode)> = Vec::new();
    let mut open: Option<(f64, Episode)> = None;
    for s in samples {
        let x = secs(s, t0);
        match open {
            Some((_, kind)) if kind == s.episode => continue,
            Some((start, kind)) => out.push((start, x, kind)),
            None => {}
        }
        open = (s.episode != Episode::None).then_some((x, s.episode));
    }
    if let (Some((start, kind)), Some(last)) = (open, samples.last()) {
        out.push((start, secs(last, t0), kind));
    }
    out
}

/// When reductions were undone: the seconds of each sample whose undo count differs from the
/// sample before it.
pub fn undos(samples: &[Sample]) -> Vec<f64> {
    let Some(t0) = samples.first() else {
        return Vec::new();
    };
    samples
        .windows(2)
        .filter_map(|w| match w {
            [a, b] if a.undos != b.undos => Some(secs(b, t0)),
            _ => None,
        })
        .collect()
}

/// Seconds since the first sample.
fn secs(s: &Sample, t0: &Sample) -> f64 {
    s.at.saturating_since(t0.at).as_secs_f64()
}

fn x_range(samples: &[Sample]) -> (f64, f64) {
    let end = match (samples.first(), samples.last()) {
        (Some(a), Some(b)) => secs(b, a),
        _ => 0.0,
    };
    (0.0, if end > 0.0 { end * 1.02 } else { 0.001 })
}

/// The time-sequence graph as a standalone SVG; `None` when nothing was sent.
pub fn time_sequence(samples: &[Sample]) -> Option<String> {
    let t0 = samples.first()?;
    let (x0, x1) = x_range(samples);
    let top = samples
        .iter()
        .map(|s| match s.kind {
            SampleKind::Ack => u64::from(s.seq) + u64::from(s.wnd),
            _ => u64::from(s.seq) + u64::from(s.len),
        })
        .max()
        .unwrap_or(1)
        .max(1) as f64;
    let bottom = samples.iter().map(|s| s.seq).min().unwrap_or(0) as f64;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
        root.fill(&WHITE).ok()?;
        let (plot, legend_column) = root.split_horizontally(SIZE.0 - LEGEND_WIDTH);
        let mut chart = ChartBuilder::on(&plot)
            .caption(
                "Time-sequence graph (what synack sent and what was acknowledged)",
                ("sans-serif", 16),
            )
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(80)
            .build_cartesian_2d(x0..x1, bottom..top * 1.02)
            .ok()?;
        chart
            .configure_mesh()
            .x_desc("seconds")
            .y_desc("sequence number (kB from ISS)")
            .y_label_formatter(&|v| kb(*v))
            .light_line_style(WHITE.mix(0.0))
            .draw()
            .ok()?;
        for (kind, color) in [
            (SampleKind::Sent, SENT),
            (SampleKind::Retransmitted, RETRANSMIT),
        ] {
            chart
                .draw_series(samples.iter().filter(|s| s.kind == kind).map(|s| {
                    let x = secs(s, t0);
                    PathElement::new(
                        vec![
                            (x, f64::from(s.seq)),
                            (x, f64::from(s.seq) + f64::from(s.len)),
                        ],
                        color.stroke_width(2),
                    )
                }))
                .ok()?;
        }
        // Retransmissions stand out at any scale: a ring around each.
        chart
            .draw_series(
                samples
                    .iter()
                    .filter(|s| s.kind == SampleKind::Retransmitted)
                    .map(|s| {
                        Circle::new(
                            (secs(s, t0), f64::from(s.seq)),
                            4,
                            RETRANSMIT.stroke_width(1),
                        )
                    }),
            )
            .ok()?;
        let acks: Vec<&Sample> = samples
            .iter()
            .filter(|s| s.kind == SampleKind::Ack)
            .collect();
        let ack_line = step(acks.iter().map(|s| (secs(s, t0), f64::from(s.seq))));
        chart
            .draw_series(LineSeries::new(ack_line, ACK.stroke_width(1)))
            .ok()?;
        let window_line = step(
            acks.iter()
                .map(|s| (secs(s, t0), f64::from(s.seq) + f64::from(s.wnd))),
        );
        chart
            .draw_series(LineSeries::new(window_line, WINDOW.stroke_width(1)))
            .ok()?;
        chart
            .draw_series(acks.iter().filter_map(|s| {
                let (a, b) = s.sack.get()?;
                let x = secs(s, t0);
                Some(PathElement::new(
                    vec![(x, f64::from(a)), (x, f64::from(b))],
                    SACKED.stroke_width(3),
                ))
            }))
            .ok()?;
        legend(
            &legend_column,
            &[
                ("data sent", SENT, 2),
                ("retransmitted", RETRANSMIT, 2),
                ("ACK (SND.UNA)", ACK, 2),
                ("receive window (SND.UNA + SND.WND)", WINDOW, 2),
                ("SACK block", SACKED, 3),
            ],
        )?;
        root.present().ok()?;
    }
    Some(svg)
}

/// The congestion graph as a standalone SVG; `None` when nothing was sent.
pub fn congestion(samples: &[Sample]) -> Option<String> {
    let t0 = samples.first()?;
    let (x0, x1) = x_range(samples);
    // The scale is the sender's: cwnd and flight. The peer's window, often far larger, is
    // clipped at the top (its line then runs along the top edge).
    let bytes_top = samples
        .iter()
        .map(|s| s.cwnd.max(s.flight))
        .max()
        .unwrap_or(1)
        .max(1)
        .saturating_mul(3)
        / 2;
    // ssthresh starts "infinite": drawn only once it means something on this scale.
    let shown_ssthresh = |s: &&Sample| s.ssthresh <= bytes_top.saturating_mul(2);
    let top = samples
        .iter()
        .filter(shown_ssthresh)
        .map(|s| s.ssthresh)
        .max()
        .unwrap_or(0)
        .max(bytes_top) as f64;
    let ms_top = samples
        .iter()
        .map(|s| s.rto_us.max(s.srtt_us))
        .max()
        .unwrap_or(1)
        .max(1) as f64
        / 1000.0;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
        root.fill(&WHITE).ok()?;
        let (plot, legend_column) = root.split_horizontally(SIZE.0 - LEGEND_WIDTH);
        let mut chart = ChartBuilder::on(&plot)
            .caption("Congestion graph (synack's own state)", ("sans-serif", 16))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(80)
            .right_y_label_area_size(60)
            .build_cartesian_2d(x0..x1, 0f64..top * 1.05)
            .ok()?
            .set_secondary_coord(x0..x1, 0f64..ms_top * 1.05);
        chart
            .configure_mesh()
            .x_desc("seconds")
            .y_desc("kB")
            .y_label_formatter(&|v| kb(*v))
            .light_line_style(WHITE.mix(0.0))
            .draw()
            .ok()?;
        chart
            .configure_secondary_axes()
            .y_desc("milliseconds")
            .draw()
            .ok()?;
        // The episodes, shaded under the curves, and the undos, a line from top to bottom.
        let y_top = top * 1.05;
        chart
            .draw_series(episodes(samples).into_iter().map(|(a, b, kind)| {
                let color = if kind == Episode::RtoLoss {
                    RTO_LOSS
                } else {
                    FAST_RECOVERY
                };
                // At least a pixel or so wide, however short the episode.
                let b = b.max(a + (x1 - x0) / 800.0);
                Rectangle::new([(a, 0.0), (b, y_top)], color.mix(0.35).filled())
            }))
            .ok()?;
        for x in undos(samples) {
            chart
                .draw_series(std::iter::once(PathElement::new(
                    vec![(x, 0.0), (x, y_top)],
                    UNDO.stroke_width(2),
                )))
                .ok()?;
            chart
                .draw_series(std::iter::once(Text::new(
                    "undo",
                    (x, y_top * 0.97),
                    ("sans-serif", 11).into_font().color(&UNDO),
                )))
                .ok()?;
        }
        type Pick = fn(&Sample) -> u32;
        // Flight changes at every segment and ACK: a thin line, under cwnd's thick one.
        let series: [(&str, RGBColor, u32, Pick); 3] = [
            ("bytes in flight", ACK, 1, |s| s.flight),
            ("cwnd", SENT, 2, |s| s.cwnd),
            ("peer's window (clipped)", WINDOW, 2, |s| s.wnd),
        ];
        for (_, color, width, pick) in series {
            let clip = top * 1.04;
            let points = step(
                samples
                    .iter()
                    .map(|s| (secs(s, t0), f64::from(pick(s)).min(clip))),
            );
            chart
                .draw_series(LineSeries::new(points, color.stroke_width(width)))
                .ok()?;
        }
        let ssthresh = step(
            samples
                .iter()
                .filter(shown_ssthresh)
                .map(|s| (secs(s, t0), f64::from(s.ssthresh))),
        );
        chart
            .draw_series(LineSeries::new(ssthresh, RETRANSMIT.stroke_width(2)))
            .ok()?;
        let ms: [(&str, RGBColor, Pick); 2] = [
            ("SRTT (ms, right)", SACKED, |s| s.srtt_us),
            ("RTO (ms, right)", GREY, |s| s.rto_us),
        ];
        for (_, color, pick) in ms {
            let points = step(
                samples
                    .iter()
                    .map(|s| (secs(s, t0), f64::from(pick(s)) / 1000.0)),
            );
            chart
                .draw_secondary_series(LineSeries::new(points, color.stroke_width(1)))
                .ok()?;
        }
        // ECN: small triangles on the cwnd line for the peer's feedback, small circles on
        // the time axis for CE marks that reached us; named in the legend only if present.
        let ece: Vec<_> = samples
            .iter()
            .filter(|s| s.ecn.ece)
            .map(|s| (secs(s, t0), f64::from(s.cwnd)))
            .collect();
        let ce: Vec<_> = samples
            .iter()
            .filter(|s| s.ecn.ce)
            .map(|s| (secs(s, t0), 0.0))
            .collect();
        chart
            .draw_series(
                ece.iter()
                    .map(|&p| TriangleMarker::new(p, 5, ECE_MARK.filled())),
            )
            .ok()?;
        chart
            .draw_series(ce.iter().map(|&p| Circle::new(p, 3, CE_MARK.filled())))
            .ok()?;
        let mut entries: Vec<(&str, RGBColor, u32)> = series
            .iter()
            .map(|&(label, color, width, _)| (label, color, width))
            .collect();
        entries.push(("ssthresh", RETRANSMIT, 2));
        entries.extend(ms.iter().map(|&(label, color, _)| (label, color, 1)));
        if !ece.is_empty() {
            entries.push(("ECE received (▲ on cwnd)", ECE_MARK, 4));
        }
        if !ce.is_empty() {
            entries.push(("CE received (● on the axis)", CE_MARK, 4));
        }
        entries.extend([
            ("fast recovery (shaded)", FAST_RECOVERY, 10),
            ("RTO, Loss state (shaded)", RTO_LOSS, 10),
            ("undo (reduction proved spurious)", UNDO, 2),
        ]);
        legend(&legend_column, &entries)?;
        root.present().ok()?;
    }
    Some(svg)
}

/// The legend, in the column right of the plot: outside the plotting area, so that it covers
/// no curve (plotters keeps its own legend box inside the plot). One line per series: its
/// colour and width, and its name.
fn legend(
    area: &DrawingArea<SVGBackend<'_>, Shift>,
    entries: &[(&str, RGBColor, u32)],
) -> Option<()> {
    let (x, top) = (12i32, 40i32);
    let rows = i32::try_from(entries.len()).ok()?;
    let right = i32::try_from(LEGEND_WIDTH).ok()? - 8;
    area.draw(&Rectangle::new(
        [(4, top - 12), (right, top + 20 * rows - 4)],
        GREY.stroke_width(1),
    ))
    .ok()?;
    for (row, (name, color, width)) in (0..).zip(entries) {
        let y = top + 20 * row;
        area.draw(&PathElement::new(
            vec![(x, y), (x + 16, y)],
            color.stroke_width(*width),
        ))
        .ok()?;
        area.draw(&Text::new(*name, (x + 24, y - 6), ("sans-serif", 12)))
            .ok()?;
    }
    Some(())
}

/// An axis label in kB: `1500`, `12.5`.
fn kb(bytes: f64) -> String {
    let k = bytes / 1000.0;
    if k >= 100.0 || k == k.trunc() {
        format!("{k:.0}")
    } else {
        format!("{k:.1}")
    }
}

/// A step line through the points: each value holds until the next one.
fn step(points: impl Iterator<Item = (f64, f64)>) -> Vec<(f64, f64)> {
    let mut out: Vec<(f64, f64)> = Vec::new();
    for (x, y) in points {
        if let Some(&(_, prev)) = out.last() {
            out.push((x, prev));
        }
        out.push((x, y));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::Instant;

    fn sample(ms: u64, kind: SampleKind, seq: u32, len: u32) -> Sample {
        Sample {
            at: Instant::from_millis(ms),
            kind,
            seq,
            len,
            wnd: 65535,
            sack: crate::tcp::samples::SackBlock::new(
                (kind == SampleKind::Ack && seq == 1001).then_some((2001, 3001)),
            ),
            cwnd: 14600,
            ssthresh: if ms > 20 { 7300 } else { u32::MAX },
            flight: 2000,
            srtt_us: 1500,
            rto_us: 200_000,
            ecn: crate::tcp::samples::SampleEcn::default(),
            episode: Episode::None,
            undos: 0,
        }
    }

    fn story() -> Vec<Sample> {
        vec![
            sample(0, SampleKind::Sent, 1, 1000),
            sample(1, SampleKind::Sent, 1001, 1000),
            sample(2, SampleKind::Sent, 2001, 1000),
            sample(10, SampleKind::Ack, 1001, 0),
            sample(30, SampleKind::Retransmitted, 1001, 1000),
            sample(40, SampleKind::Ack, 3001, 0),
        ]
    }

    #[test]
    fn both_graphs_are_well_formed_svg_with_their_series() {
        let samples = story();
        for (svg, words) in [
            (
                time_sequence(&samples).unwrap(),
                &["data sent", "retransmitted", "SACK block"][..],
            ),
            (
                congestion(&samples).unwrap(),
                &["cwnd", "ssthresh", "bytes in flight", "RTO (ms, right)"][..],
            ),
        ] {
            let doc = roxmltree::Document::parse(&svg).unwrap_or_else(|e| panic!("{e}\n{svg}"));
            assert_eq!(doc.root_element().tag_name().name(), "svg");
            let texts: String = doc.descendants().filter_map(|n| n.text()).collect();
            for w in words {
                assert!(texts.contains(w), "{w} missing");
            }
        }
        // A retransmission is drawn in red.
        let ts = time_sequence(&samples).unwrap();
        assert!(ts.contains("#C81E1E"), "{ts}");
    }

    #[test]
    fn legends_sit_outside_the_plot_so_they_cover_no_curve() {
        let samples = story();
        let column = f64::from(SIZE.0 - LEGEND_WIDTH);
        for (svg, names) in [
            (
                time_sequence(&samples).unwrap(),
                &["data sent", "retransmitted", "SACK block"][..],
            ),
            (
                congestion(&samples).unwrap(),
                &["cwnd", "ssthresh", "bytes in flight", "RTO (ms, right)"][..],
            ),
        ] {
            let doc = roxmltree::Document::parse(&svg).unwrap();
            for name in names {
                let text = doc
                    .descendants()
                    .find(|n| n.has_tag_name("text") && n.text().map(str::trim) == Some(name))
                    .unwrap_or_else(|| panic!("no legend entry {name}"));
                let x: f64 = text.attribute("x").unwrap().parse().unwrap();
                assert!(x >= column, "{name} at x={x}, inside the plot (< {column})");
                assert!(x < f64::from(SIZE.0), "{name} at x={x}, off the picture");
            }
            // Every curve is drawn left of the legend's column.
            let mut curves = 0;
            for path in doc.descendants().filter(|n| n.has_tag_name("polyline")) {
                for point in path.attribute("points").unwrap().split_whitespace() {
                    let x: f64 = point.split(',').next().unwrap().parse().unwrap();
                    if x < column {
                        curves += 1;
                    } else {
                        // The legend's own sample lines, nothing else.
                        assert!(x <= column + 40.0, "a curve reaches x={x}");
                    }
                }
            }
            assert!(curves > 0);
        }
    }

    /// ECN: the peer's feedback and CE marks are drawn as marks, with legend entries, and
    /// only when they happened.
    #[test]
    fn the_congestion_graph_marks_ece_and_ce() {
        let plain = congestion(&story()).unwrap();
        assert!(!plain.contains("ECE received") && !plain.contains("CE received"));
        let mut samples = story();
        samples[3].ecn.ece = true;
        samples[5].ecn.ce = true;
        let svg = congestion(&samples).unwrap();
        let doc = roxmltree::Document::parse(&svg).unwrap();
        let texts: String = doc.descendants().filter_map(|n| n.text()).collect();
        assert!(texts.contains("ECE received"), "{texts}");
        assert!(texts.contains("CE received"), "{texts}");
        let filled = |color: &str| {
            doc.descendants()
                .filter(|n| {
                    n.attribute("fill")
                        .is_some_and(|f| f.eq_ignore_ascii_case(color))
                })
                .count()
        };
        assert!(filled("#E65A00") >= 1, "a triangle for the ECE");
        assert!(filled("#0096A0") >= 1, "a circle for the CE mark");
    }

    /// The fills of the SVG's rectangles with the given colour.
    fn rects_of(svg: &str, color: RGBColor) -> usize {
        let hex = format!("#{:02X}{:02X}{:02X}", color.0, color.1, color.2);
        let doc = roxmltree::Document::parse(svg).unwrap();
        doc.descendants()
            .filter(|n| n.has_tag_name("rect") && n.attribute("fill") == Some(hex.as_str()))
            .count()
    }

    #[test]
    fn the_congestion_graph_shades_recovery_episodes_and_marks_undos() {
        let mut samples = story();
        // A fast recovery from the retransmission at 30 ms to the ACK at 40 ms...
        samples[4].episode = Episode::FastRecovery;
        // ...then an RTO, undone at 70 ms (F-RTO), and a second RTO to the end.
        let mut more = vec![
            sample(50, SampleKind::Ack, 3001, 0),
            sample(60, SampleKind::Retransmitted, 3001, 1000),
            sample(70, SampleKind::Ack, 4001, 0),
            sample(80, SampleKind::Retransmitted, 4001, 1000),
        ];
        more[1].episode = Episode::RtoLoss;
        more[2].undos = 1;
        more[3].undos = 1;
        more[3].episode = Episode::RtoLoss;
        samples.extend(more);
        let eps = episodes(&samples);
        let kinds: Vec<Episode> = eps.iter().map(|e| e.2).collect();
        assert_eq!(
            kinds,
            [Episode::FastRecovery, Episode::RtoLoss, Episode::RtoLoss]
        );
        assert_eq!((eps[0].0, eps[0].1), (0.030, 0.040));
        assert_eq!((eps[1].0, eps[1].1), (0.060, 0.070));
        assert_eq!(eps[2].0, eps[2].1);
        assert_eq!(undos(&samples), [0.070]);
        let svg = congestion(&samples).unwrap();
        assert_eq!(rects_of(&svg, FAST_RECOVERY), 1);
        assert_eq!(rects_of(&svg, RTO_LOSS), 2);
        let doc = roxmltree::Document::parse(&svg).unwrap();
        let texts: Vec<&str> = doc
            .descendants()
            .filter(|n| n.has_tag_name("text"))
            .filter_map(|n| n.text())
            .collect();
        assert_eq!(texts.iter().filter(|t| t.trim() == "undo").count(), 1);
        for w in ["fast recovery (shaded)", "RTO, Loss state (shaded)"] {
            assert!(texts.iter().any(|t| t.trim() == w), "{w} missing");
        }
        // Without episodes: no shading, no undo.
        let plain = congestion(&story()).unwrap();
        assert_eq!(rects_of(&plain, FAST_RECOVERY), 0);
        assert!(!plain.contains(">undo<"));
    }

    #[test]
    fn nothing_sent_draws_nothing() {
        assert!(time_sequence(&[]).is_none());
        assert!(congestion(&[]).is_none());
    }
}
