//! `GET /handshake`: the diagram of the client's own connection, through a [`MockSocket`].

use super::*;
use crate::services::mock::MockSocket;

fn get(path: &str, extra: &str) -> MockSocket {
    let mut sock = MockSocket::new();
    sock.ladder =
        "198.18.0.1:40000   198.18.0.2:80\n SYN seq=0  ──▶  LISTEN → SYN-RECEIVED\n".into();
    let mut http = Http::new();
    sock.push(format!("GET {path} HTTP/1.1\r\nHost: 198.18.0.2\r\n{extra}\r\n").as_bytes());
    http.poll(&mut sock);
    sock
}

#[test]
fn get_handshake_answers_with_the_ladder_of_the_connection() {
    let sock = get("/handshake", "");
    let text = String::from_utf8(sock.sent.clone()).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert!(head.contains("Content-Type: text/plain; charset=utf-8\r\n"));
    assert!(
        head.split("\r\n")
            .any(|l| l == format!("Content-Length: {}", sock.ladder.len())),
        "{head}"
    );
    assert_eq!(body, sock.ladder);
    assert_eq!(sock.closes, 0, "keep-alive by default");
}

#[test]
fn handshake_with_a_query_string_and_close_still_answers_then_closes() {
    let sock = get("/handshake?x=1", "Connection: close\r\n");
    let text = String::from_utf8(sock.sent.clone()).unwrap();
    assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
    assert!(text.ends_with(&sock.ladder));
    assert_eq!(sock.closes, 1);
}

#[test]
fn the_404_page_names_both_pages() {
    let sock = get("/handshakes", "");
    let text = String::from_utf8(sock.sent.clone()).unwrap();
    assert!(text.starts_with("HTTP/1.1 404"), "{text}");
    assert!(text.contains("/handshake"), "{text}");
}

#[test]
fn a_streamed_body_is_sent_in_full_before_connection_close() {
    for extra in ["Connection: close\r\n", ""] {
        let mut sock = MockSocket::with_capacity(1000);
        let mut http = Http::new();
        let version = if extra.is_empty() {
            "HTTP/1.0"
        } else {
            "HTTP/1.1"
        };
        sock.push(format!("GET /bytes/3000 {version}\r\nHost: x\r\n{extra}\r\n").as_bytes());
        http.poll(&mut sock);
        let mut all = sock.take_sent();
        for _ in 0..10 {
            sock.ack(1000);
            http.poll(&mut sock);
            let more = sock.take_sent();
            if more.is_empty() {
                break;
            }
            all.extend(more);
        }
        let head_end = all.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
        assert_eq!(all.len() - head_end, 3000, "{extra:?}");
        assert_eq!(sock.closes, 1, "closed after the body");
    }
}

/// A socket whose connection has a (short) trace: the SYN that opened it.
fn with_trace() -> MockSocket {
    use crate::tcp::trace::{Direction, Trace};
    let mut sock = MockSocket::new();
    let mut trace = Trace::new();
    trace.begin(State::Listen);
    let syn = crate::wire::TcpSegment {
        seq: sock.info.irs,
        flags: crate::wire::Flags::SYN,
        ..crate::wire::SEGMENT_TEMPLATE
    };
    trace.record(
        Direction::In,
        crate::time::Instant::ZERO,
        &syn,
        State::SynReceived,
    );
    sock.trace = Some(trace);
    sock.ladder = "the text ladder\n".into();
    sock
}

fn exchange(sock: &mut MockSocket, request: &str) -> (String, String) {
    let mut http = Http::new();
    sock.push(request.as_bytes());
    http.poll(sock);
    let text = String::from_utf8(sock.take_sent()).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    (head.to_string(), body.to_string())
}

#[test]
fn a_browser_gets_the_handshake_as_a_page_and_curl_as_text() {
    const BROWSER: &str = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8";
    let mut sock = with_trace();
    let (head, body) = exchange(
        &mut sock,
        &format!("GET /handshake HTTP/1.1\r\nHost: x\r\nAccept: {BROWSER}\r\n\r\n"),
    );
    assert!(
        head.contains("Content-Type: text/html; charset=utf-8\r\n"),
        "{head}"
    );
    let doc = crate::observe::html::tests::parse(&body);
    let arrows = doc
        .descendants()
        .filter(|n| n.attribute("class") == Some("seg in"))
        .count();
    assert_eq!(arrows, 1);
    // curl says */*: text, as docs/HANDSHAKES.md shows it.
    for accept in ["Accept: */*\r\n", "", "Accept: text/html;q=0\r\n"] {
        let (head, body) = exchange(
            &mut sock,
            &format!("GET /handshake HTTP/1.1\r\nHost: x\r\n{accept}\r\n"),
        );
        assert!(
            head.contains("Content-Type: text/plain"),
            "{accept}: {head}"
        );
        assert_eq!(body, "the text ladder\n");
    }
    // `/` too: the text page inside the HTML one.
    let (head, body) = exchange(
        &mut sock,
        &format!("GET / HTTP/1.1\r\nHost: x\r\nAccept: {BROWSER}\r\n\r\n"),
    );
    assert!(head.contains("text/html"), "{head}");
    assert!(body.contains("Initial sequence numbers"), "{body}");
    crate::observe::html::tests::parse(&body);
}

#[test]
fn handshake_svg_is_a_standalone_svg_document() {
    let mut sock = with_trace();
    let (head, body) = exchange(&mut sock, "GET /handshake.svg HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(head.contains("Content-Type: image/svg+xml\r\n"), "{head}");
    assert!(body.starts_with("<?xml"));
    let doc = roxmltree::Document::parse(&body).unwrap();
    assert_eq!(doc.root_element().tag_name().name(), "svg");
    // Without a trace there is no picture.
    let (head, _) = exchange(
        &mut MockSocket::new(),
        "GET /handshake.svg HTTP/1.1\r\nHost: x\r\n\r\n",
    );
    assert!(head.starts_with("HTTP/1.1 404"), "{head}");
}

#[test]
fn endpoint_pages_wait_for_the_endpoint_then_keep_the_connection_going() {
    let mut sock = MockSocket::new();
    let mut http = Http::new();
    sock.push(
        b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\nGET /handshake HTTP/1.1\r\nHost: x\r\n\r\n",
    );
    http.poll(&mut sock);
    assert!(sock.sent.is_empty());
    assert_eq!(http.pending_page(), Some(Page::Metrics));
    // Polling again changes nothing until the page comes.
    http.poll(&mut sock);
    assert!(sock.sent.is_empty());
    http.answer_page(Some((ContentType::Prometheus, b"synack_x_total 1\n")));
    assert_eq!(http.pending_page(), None);
    http.poll(&mut sock);
    let text = String::from_utf8(sock.take_sent()).unwrap();
    assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
    assert!(text.contains("Content-Type: text/plain; version=0.0.4; charset=utf-8\r\n"));
    // The pipelined request after it is answered in turn.
    assert!(text.ends_with("synack_x_total 1\n") || text.contains("HTTP/1.1 200 OK\r\nServer"));
    assert_eq!(text.matches("HTTP/1.1 200 OK").count(), 2, "{text}");
    // An unknown connection's page: 404.
    sock.push(b"GET /connections/1.2.3.4/80/5.6.7.8/9 HTTP/1.1\r\nHost: x\r\n\r\n");
    http.poll(&mut sock);
    assert!(matches!(http.pending_page(), Some(Page::Connection(_))));
    http.answer_page(None);
    http.poll(&mut sock);
    let text = String::from_utf8(sock.take_sent()).unwrap();
    assert!(text.starts_with("HTTP/1.1 404"), "{text}");
    assert_eq!(sock.closes, 0);
}
