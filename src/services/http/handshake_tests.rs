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
