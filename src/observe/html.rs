//! Server-rendered HTML pages. Written as well-formed XHTML-compatible markup (every element
//! closed, every attribute quoted), so tests can parse them with an XML parser; no script but
//! the few lines that refresh `/connections`.

use super::{connection_path, escape, graphs, svg};
use crate::tcp::ladder::{self, View};
use crate::tcp::samples::Sample;
use crate::tcp::trace::Trace;
use std::fmt::Write;

const STYLE: &str = "body{font-family:sans-serif;margin:1.5em;color:#222;background:#fff}\
pre{background:#f6f6f6;padding:.8em;overflow-x:auto}\
table{border-collapse:collapse}td,th{padding:.2em .7em;text-align:left;\
border-bottom:1px solid #ddd;font-family:monospace}\
nav a{margin-right:1em}.closed{color:#777}.graph svg{max-width:100%;height:auto}";

/// The links every page carries.
const NAV: &str = "<nav><a href=\"/\">this connection</a><a href=\"/handshake\">its \
handshake</a><a href=\"/connections\">all connections</a><a href=\"/metrics\">metrics</a>\
</nav>\n";

/// `<!DOCTYPE html>` up to the opening of the body, with the title as heading.
/// `refresh_seconds` adds the few lines of script that reload the page.
pub fn start(out: &mut String, title: &str, refresh_seconds: Option<u32>) {
    let title = escape(title);
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"/>\
         <title>{title}</title><style>{STYLE}</style>"
    );
    if let Some(s) = refresh_seconds {
        // The one script of the pages: reload, keeping the scroll position.
        let _ = write!(
            out,
            "<script>setTimeout(function(){{location.reload();}},{ms});</script>",
            ms = s * 1000
        );
    }
    let _ = write!(out, "</head>\n<body>\n{NAV}<h1>{title}</h1>\n");
}

pub fn end(out: &mut String) {
    out.push_str("</body></html>\n");
}

/// Text inside `<pre>`.
pub fn pre(out: &mut String, text: &str) {
    let _ = writeln!(out, "<pre>{}</pre>", escape(text));
}

/// The diagram inline, then the same as text (what curl gets).
pub fn diagram(out: &mut String, trace: &Trace, view: &View) {
    out.push_str("<div class=\"diagram\">\n");
    svg::write_ladder(out, trace, view);
    out.push_str("</div>\n<details><summary>as text</summary>\n");
    pre(out, &ladder::render(trace, view));
    out.push_str("</details>\n");
}

/// The time-sequence and congestion graphs, or a sentence saying why there are none.
pub fn graphs(out: &mut String, samples: &[Sample]) {
    out.push_str("<h2>Graphs</h2>\n");
    match (graphs::time_sequence(samples), graphs::congestion(samples)) {
        (Some(ts), Some(cc)) => {
            let _ = write!(
                out,
                "<p>Drawn from synack's own state at each segment it sent and each ACK it \
                 received ({} samples; a long transfer keeps an evenly thinned record).</p>\n\
                 <div class=\"graph time-sequence\">{ts}</div>\n\
                 <div class=\"graph congestion\">{cc}</div>\n",
                samples.len()
            );
        }
        _ => out.push_str("<p>No data sent yet: nothing to graph.</p>\n"),
    }
}

/// `GET /handshake` for a browser: this connection's sequence diagram so far.
pub fn handshake_page(trace: &Trace, view: &View) -> String {
    let mut out = String::new();
    start(
        &mut out,
        &format!(
            "The sequence diagram of your connection {}",
            view.quad.remote
        ),
        None,
    );
    out.push_str(
        "<p>Every segment you and synack exchanged on this connection, up to this request: \
         yours from the left, synack's from the right, synack's state beside its line. \
         Sequence numbers are relative to each side's initial sequence number.</p>\n",
    );
    diagram(&mut out, trace, view);
    let _ = writeln!(
        out,
        "<p><a href=\"{}\">This connection's page</a> (it stays listed a while after it \
         closes) · <a href=\"/handshake.svg\">the diagram alone (SVG)</a></p>",
        connection_path(&view.quad)
    );
    end(&mut out);
    out
}

/// `GET /` for a browser: today's text page, the diagram, and links.
pub fn about_page(text: &str, trace: &Trace, view: &View) -> String {
    let mut out = String::new();
    start(
        &mut out,
        "synack: the TCP connection that carried this request",
        None,
    );
    pre(&mut out, text);
    out.push_str("<h2>Its sequence diagram so far</h2>\n");
    diagram(&mut out, trace, view);
    let _ = writeln!(
        out,
        "<p><a href=\"{}\">This connection's page</a>, with its graphs once it has sent \
         data · <a href=\"/connections\">every connection</a> · <a href=\"/metrics\">the \
         counters (Prometheus)</a></p>",
        connection_path(&view.quad)
    );
    end(&mut out);
    out
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::tcp::State;

    /// Parse a page as XML (the pages are XHTML-compatible); panics with the page on error.
    pub(crate) fn parse(page: &str) -> roxmltree::Document<'_> {
        let opts = roxmltree::ParsingOptions {
            allow_dtd: true,
            ..Default::default()
        };
        roxmltree::Document::parse_with_options(page, opts)
            .unwrap_or_else(|e| panic!("not well-formed: {e}\n{page}"))
    }

    #[test]
    fn the_handshake_page_is_well_formed_and_carries_the_diagram() {
        let t = crate::observe::svg::tests::story();
        let v = crate::observe::svg::tests::view(State::TimeWait);
        let page = handshake_page(&t, &v);
        assert!(page.starts_with("<!DOCTYPE html>\n"));
        let doc = parse(&page);
        let svgs = doc.descendants().filter(|n| n.has_tag_name("svg")).count();
        assert_eq!(svgs, 1);
        let arrows = doc
            .descendants()
            .filter(|n| n.attribute("class").is_some_and(|c| c.starts_with("seg ")))
            .count();
        assert_eq!(arrows, 9);
        assert!(page.contains("/connections/198.18.0.2/80/198.18.0.1/51234"));
        // No script on this page.
        assert!(!doc.descendants().any(|n| n.has_tag_name("script")));
    }

    #[test]
    fn the_about_page_escapes_the_text_page() {
        let t = crate::observe::svg::tests::story();
        let v = crate::observe::svg::tests::view(State::Established);
        let page = about_page("a <b> & \"c\"\n", &t, &v);
        let doc = parse(&page);
        let pre = doc.descendants().find(|n| n.has_tag_name("pre")).unwrap();
        assert_eq!(pre.text(), Some("a <b> & \"c\"\n"));
    }
}
