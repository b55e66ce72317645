//! Character generator (RFC 864): an endless stream of text, whatever the client sends.
//!
//! The stream is RFC 864's recognisable pattern: the 95 printable ASCII characters (space
//! through `~`) in a ring; line `i` is the 72 characters starting at ring position `i mod 95`,
//! followed by CRLF. After 95 lines the pattern repeats.

use super::{COPY_BUF, close_once, drain};
use crate::tcp::Socket;

/// The printable ASCII characters, space (0x20) through `~` (0x7e).
const RING: usize = 95;
const FIRST: u8 = b' ';
/// RFC 864: "lines of 72 characters" plus CR LF.
const LINE_CHARS: usize = 72;
const LINE_LEN: usize = LINE_CHARS + 2;
/// The pattern's period in bytes: 95 lines.
const PERIOD: usize = RING * LINE_LEN;

/// The byte at `offset` (below [`PERIOD`]) of the pattern.
const fn pattern_byte(offset: usize) -> u8 {
    let (line, col) = (offset / LINE_LEN, offset % LINE_LEN);
    if col < LINE_CHARS {
        FIRST + ((line + col) % RING) as u8
    } else if col == LINE_CHARS {
        b'\r'
    } else {
        b'\n'
    }
}

/// One period of the pattern, computed at compile time, so that sending is a copy.
static PATTERN: [u8; PERIOD] = {
    let mut p = [0u8; PERIOD];
    let mut rest: &mut [u8] = &mut p;
    let mut i = 0;
    while let [byte, tail @ ..] = rest {
        *byte = pattern_byte(i);
        rest = tail;
        i += 1;
    }
    p
};

/// Chargen's per-connection state: where in the pattern the stream is.
#[derive(Debug, Default)]
pub struct Chargen {
    /// Offset of the next byte to send within the pattern's period.
    offset: usize,
    closed: bool,
}

impl Chargen {
    pub fn new() -> Self {
        Chargen::default()
    }

    pub fn is_closed(&self) -> bool {
        self.closed
    }

    pub fn poll(&mut self, sock: &mut dyn Socket) {
        // RFC 864: "Any data received is thrown away."
        drain(sock);
        if self.closed {
            return;
        }
        // RFC 864 leaves the ending to the user; we stop when the client closes its side and
        // close ours cleanly (RFC 9293 §3.10.4), rather than sending into a half-closed
        // connection forever.
        if sock.peer_closed() {
            close_once(sock, &mut self.closed);
            return;
        }
        loop {
            // Straight from the precomputed period, up to its end (the next pass wraps).
            let rest = PATTERN.get(self.offset..).unwrap_or_default();
            let n = sock.send_capacity().min(rest.len()).min(COPY_BUF * 4);
            if n == 0 {
                return;
            }
            let chunk = rest.get(..n).unwrap_or_default();
            let sent = sock.send(chunk);
            // Advance by what was accepted, so the stream stays continuous across polls.
            self.offset = (self.offset + sent) % PERIOD;
            if sent < n {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::services::mock::MockSocket;

    /// The pattern built the obvious way, line by line.
    fn expected(lines: usize) -> Vec<u8> {
        let ring: Vec<u8> = (b' '..=b'~').collect();
        assert_eq!(ring.len(), 95);
        let mut out = Vec::new();
        for i in 0..lines {
            for j in 0..72 {
                out.push(ring[(i + j) % 95]);
            }
            out.extend_from_slice(b"\r\n");
        }
        out
    }

    #[test]
    fn chargen_first_lines_are_rfc864_pattern() {
        let mut sock = MockSocket::with_capacity(2 * 74);
        Chargen::new().poll(&mut sock);
        let text = String::from_utf8(sock.sent).unwrap();
        let mut lines = text.split("\r\n");
        assert_eq!(
            lines.next().unwrap(),
            " !\"#$%&'()*+,-./0123456789:;<=>?@ABCDEFGHIJKLMNOPQRSTUVWXYZ[\\]^_`abcdefg"
        );
        assert_eq!(
            lines.next().unwrap(),
            "!\"#$%&'()*+,-./0123456789:;<=>?@ABCDEFGHIJKLMNOPQRSTUVWXYZ[\\]^_`abcdefgh"
        );
    }

    #[test]
    fn chargen_stream_is_continuous_across_polls_and_wraps_after_95_lines() {
        let mut sock = MockSocket::with_capacity(0);
        let mut chargen = Chargen::new();
        // Odd-sized windows so polls end mid-line, on CR, between CR and LF, ...
        let mut step = 1;
        while sock.sent.len() < 3 * PERIOD {
            sock.ack(step);
            chargen.poll(&mut sock);
            assert_eq!(sock.capacity, 0, "chargen fills every byte of room it has");
            step = step % 997 + 73;
        }
        let want = expected(3 * 95 + 40);
        assert_eq!(&sock.sent[..], &want[..sock.sent.len()]);
    }

    #[test]
    fn chargen_fills_capacity_larger_than_its_copy_buffer() {
        let mut sock = MockSocket::with_capacity(3 * COPY_BUF + 5);
        Chargen::new().poll(&mut sock);
        assert_eq!(sock.sent.len(), 3 * COPY_BUF + 5);
        assert_eq!(&sock.sent[..], &expected(200)[..sock.sent.len()]);
    }

    #[test]
    fn chargen_discards_input_and_stops_on_peer_close() {
        let mut sock = MockSocket::with_capacity(100);
        let mut chargen = Chargen::new();
        sock.push(b"ignored");
        chargen.poll(&mut sock);
        assert_eq!(sock.recv_queue(), 0);
        assert_eq!(sock.sent.len(), 100);

        sock.push(b"more");
        sock.push_fin();
        sock.ack(500);
        chargen.poll(&mut sock);
        assert_eq!(sock.sent.len(), 100, "nothing more after the client's FIN");
        assert_eq!(sock.closes, 1);
        chargen.poll(&mut sock);
        assert_eq!(sock.closes, 1);
        assert!(chargen.is_closed());
    }
}
