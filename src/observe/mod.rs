//! Pictures and pages of what the endpoint knows, for a browser and for scrapers: the
//! sequence diagram as SVG (`svg.rs`), HTML pages (`html.rs`) and the Prometheus text format
//! (`metrics.rs`).
//!
//! Pure rendering: everything here is fed a connection's [`Trace`](crate::tcp::trace::Trace)
//! or the endpoint's counters and returns text. Nothing here calls back into the state
//! machine, and nothing runs on the data path: a page is drawn only when someone asks for it.
//! Layering: `services` (the http pages) and `endpoint` use this; it uses `tcp` and `wire`.

pub mod graphs;
pub mod html;
pub mod metrics;
pub mod peer;
pub mod svg;

use crate::wire::Quad;
use std::net::{IpAddr, SocketAddr};

/// A page the http service cannot draw from its own connection: it needs the endpoint's view
/// of every connection and its counters. The endpoint renders it
/// (`Endpoint::render_page`) and hands the body back to the service.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Page {
    /// `/metrics`: every counter and gauge in the Prometheus text format 0.0.4.
    Metrics,
    /// `/connections`: the listeners and connections, as `synack status`, in HTML.
    Connections,
    /// `/connections.json`: the same rows as `synack status --json`.
    ConnectionsJson,
    /// `/connections/<local ip>/<local port>/<remote ip>/<remote port>`: one connection, open
    /// or recently closed.
    Connection(Quad),
}

/// What a rendered page is, for the Content-Type header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ContentType {
    Text,
    Html,
    Svg,
    Json,
    /// `text/plain; version=0.0.4`: what Prometheus expects of the text format.
    Prometheus,
}

impl ContentType {
    pub const fn header(self) -> &'static str {
        match self {
            ContentType::Text => "text/plain; charset=utf-8",
            ContentType::Html => "text/html; charset=utf-8",
            ContentType::Svg => "image/svg+xml",
            ContentType::Json => "application/json",
            ContentType::Prometheus => "text/plain; version=0.0.4; charset=utf-8",
        }
    }
}

/// The path of a connection's page: `/connections/198.18.0.2/80/198.18.0.1/40000`.
pub fn connection_path(quad: &Quad) -> String {
    format!(
        "/connections/{}/{}/{}/{}",
        quad.local.ip(),
        quad.local.port(),
        quad.remote.ip(),
        quad.remote.port()
    )
}

/// The 4-tuple in a connection page's path (what follows `/connections/`), if it names one.
pub fn parse_connection_path(rest: &[u8]) -> Option<Quad> {
    let rest = std::str::from_utf8(rest).ok()?;
    let mut parts = rest.split('/');
    let (Some(lip), Some(lport), Some(rip), Some(rport), None) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return None;
    };
    let local = SocketAddr::new(lip.parse::<IpAddr>().ok()?, lport.parse().ok()?);
    let remote = SocketAddr::new(rip.parse::<IpAddr>().ok()?, rport.parse().ok()?);
    Some(Quad { local, remote })
}

/// Escape text for XML and HTML content and attribute values.
pub fn escape(s: &str) -> std::borrow::Cow<'_, str> {
    if !s.contains(['&', '<', '>', '"', '\'']) {
        return std::borrow::Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 16);
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    std::borrow::Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_paths_round_trip_for_both_families() {
        for (l, r) in [
            ("198.18.0.2:80", "198.18.0.1:40000"),
            ("[2001:2::2]:80", "[2001:2::1]:51000"),
        ] {
            let quad = Quad {
                local: l.parse().unwrap(),
                remote: r.parse().unwrap(),
            };
            let path = connection_path(&quad);
            let rest = path.strip_prefix("/connections/").unwrap();
            assert_eq!(parse_connection_path(rest.as_bytes()), Some(quad), "{path}");
        }
        assert_eq!(parse_connection_path(b"1.2.3.4/80/5.6.7.8"), None);
        assert_eq!(parse_connection_path(b"1.2.3.4/80/5.6.7.8/99999"), None);
        assert_eq!(parse_connection_path(b"x/80/5.6.7.8/1/"), None);
    }

    #[test]
    fn escaping_covers_markup() {
        assert_eq!(escape("a<b>&\"'"), "a&lt;b&gt;&amp;&quot;&#39;");
        assert!(matches!(escape("plain"), std::borrow::Cow::Borrowed(_)));
    }
}
