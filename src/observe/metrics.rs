//! `GET /metrics`: the endpoint's counters and gauges in the Prometheus text exposition
//! format, version 0.0.4 (one `# HELP` and `# TYPE` line per metric family, then its samples).
//! Counters are named `synack_<name>_total`, as Prometheus' naming conventions ask; gauges
//! carry their unit (`_bytes`).

use crate::tcp::State;
use std::fmt::Write;

/// What the endpoint holds right now (the counters only ever grow; these go up and down).
#[derive(Clone, Debug, Default)]
pub struct Gauges {
    /// Connections in each state (every state listed, zero or not).
    pub connections: Vec<(State, u64)>,
    /// Listening sockets (a port on one address).
    pub listeners: u64,
    /// Bytes charged to connections against `--max-buffer-memory`: buffers plus offered
    /// windows.
    pub buffer_memory_bytes: u64,
    /// The `--max-buffer-memory` cap.
    pub buffer_memory_limit_bytes: u64,
    /// Closed connections still listed on `/connections`.
    pub recently_closed: u64,
}

/// Render every counter (as `synack stats` names them) and the gauges; `help` says in one
/// line what a counter counts (and Linux's counter of the same meaning), for its HELP line.
pub fn render(counters: &[(&str, u64)], help: fn(&str) -> String, gauges: &Gauges) -> String {
    let mut out = String::with_capacity(160 * (counters.len() + 24));
    for (name, value) in counters {
        // The text format escapes backslash and newline in HELP (there are none to escape
        // in our help texts, which are one line).
        let text = help(name).replace('\\', "\\\\").replace('\n', " ");
        let _ = write!(
            out,
            "# HELP synack_{name}_total {text}\n# TYPE synack_{name}_total counter\n\
             synack_{name}_total {value}\n"
        );
    }
    out.push_str(
        "# HELP synack_connections Connections in each TCP state (RFC 9293 names).\n\
         # TYPE synack_connections gauge\n",
    );
    for (state, n) in &gauges.connections {
        let _ = writeln!(out, "synack_connections{{state=\"{}\"}} {n}", state.name());
    }
    for (name, help, value) in [
        (
            "listeners",
            "Listening sockets (port and address).",
            gauges.listeners,
        ),
        (
            "buffer_memory_bytes",
            "Buffer memory charged to connections (buffers and offered windows).",
            gauges.buffer_memory_bytes,
        ),
        (
            "buffer_memory_limit_bytes",
            "The --max-buffer-memory cap.",
            gauges.buffer_memory_limit_bytes,
        ),
        (
            "recently_closed_connections",
            "Closed connections still listed on /connections.",
            gauges.recently_closed,
        ),
    ] {
        let _ = write!(
            out,
            "# HELP synack_{name} {help}\n# TYPE synack_{name} gauge\nsynack_{name} {value}\n"
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_and_gauges_follow_the_text_format() {
        let gauges = Gauges {
            connections: vec![(State::Established, 2), (State::TimeWait, 1)],
            listeners: 8,
            buffer_memory_bytes: 4096,
            buffer_memory_limit_bytes: 1 << 30,
            recently_closed: 3,
        };
        let help = |name: &str| format!("What {name} counts (Linux: TcpInSegs)");
        let text = render(&[("segments_in", 7), ("drop_fragment", 0)], help, &gauges);
        assert!(text.contains(
            "# HELP synack_segments_in_total What segments_in counts (Linux: TcpInSegs)\n"
        ));
        assert!(
            text.contains("# TYPE synack_segments_in_total counter\nsynack_segments_in_total 7\n")
        );
        assert!(text.contains("synack_connections{state=\"TIME-WAIT\"} 1\n"));
        assert!(text.contains(
            "# TYPE synack_buffer_memory_bytes gauge\nsynack_buffer_memory_bytes 4096\n"
        ));
        // Every line is a comment or `name[{labels}] value`, names in the allowed alphabet.
        for line in text.lines() {
            if line.starts_with('#') {
                continue;
            }
            let (name, value) = line.rsplit_once(' ').unwrap();
            let bare = name.split('{').next().unwrap();
            assert!(bare.starts_with("synack_"), "{line}");
            assert!(
                bare.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
                "{line}"
            );
            assert!(value.parse::<u64>().is_ok(), "{line}");
        }
    }
}
