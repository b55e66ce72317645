//! The deterministic byte streams the test applications send, and the checker that verifies,
//! byte by byte, what arrives.

/// splitmix64's finaliser: a good 64-bit mix, used as a counter-mode generator.
pub fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Fill `buf` with the bytes of stream `stream` starting at byte `offset`.
pub fn fill(stream: u64, offset: u64, buf: &mut [u8]) {
    let mut pos = offset;
    let mut i = 0;
    while i < buf.len() {
        let word = mix(stream.wrapping_mul(0x100_0000_01b3) ^ (pos / 8)).to_le_bytes();
        let start = (pos % 8) as usize;
        let n = (8 - start).min(buf.len() - i);
        buf[i..i + n].copy_from_slice(&word[start..start + n]);
        i += n;
        pos += n as u64;
    }
}

/// A stream that is sent, `total` bytes of pattern `stream`.
#[derive(Debug)]
pub struct Source {
    pub stream: u64,
    pub total: u64,
    pub sent: u64,
}

impl Source {
    pub fn new(stream: u64, total: u64) -> Source {
        Source {
            stream,
            total,
            sent: 0,
        }
    }

    /// Queue as much as the socket takes.
    pub fn pump(&mut self, sock: &mut dyn synack::tcp::Socket) {
        let mut buf = [0u8; 16384];
        while self.sent < self.total {
            let want = (self.total - self.sent)
                .min(buf.len() as u64)
                .min(sock.send_capacity() as u64) as usize;
            if want == 0 {
                return;
            }
            fill(self.stream, self.sent, &mut buf[..want]);
            let n = sock.send(&buf[..want]);
            self.sent += n as u64;
            if n < want {
                return;
            }
        }
    }

    pub fn done(&self) -> bool {
        self.sent == self.total
    }
}

/// Verifies a received stream against pattern `stream`: every byte in order, each once, and
/// `expected` bytes in all.
#[derive(Debug)]
pub struct Checker {
    pub stream: u64,
    pub expected: u64,
    pub received: u64,
    /// The first offset at which the data differed from the pattern.
    pub first_mismatch: Option<u64>,
    /// FNV-1a of everything received, for the report.
    pub hash: u64,
    scratch: Vec<u8>,
}

impl Checker {
    pub fn new(stream: u64, expected: u64) -> Checker {
        Checker {
            stream,
            expected,
            received: 0,
            first_mismatch: None,
            hash: 0xcbf2_9ce4_8422_2325,
            scratch: Vec::new(),
        }
    }

    pub fn feed(&mut self, data: &[u8]) {
        for &b in data {
            self.hash = (self.hash ^ u64::from(b)).wrapping_mul(0x100_0000_01b3);
        }
        if self.first_mismatch.is_none() {
            self.scratch.resize(data.len(), 0);
            fill(self.stream, self.received, &mut self.scratch);
            if let Some(i) = data.iter().zip(&self.scratch).position(|(a, b)| a != b) {
                self.first_mismatch = Some(self.received + i as u64);
            }
        }
        self.received += data.len() as u64;
    }

    /// Read everything the socket holds.
    pub fn drain(&mut self, sock: &mut dyn synack::tcp::Socket) {
        let mut buf = [0u8; 16384];
        loop {
            let n = sock.recv(&mut buf);
            if n == 0 {
                return;
            }
            self.feed(&buf[..n]);
        }
    }

    /// What is wrong with the stream so far, if anything (`complete`: it should have ended).
    pub fn verdict(&self, complete: bool) -> Result<(), String> {
        if let Some(at) = self.first_mismatch {
            return Err(format!(
                "stream {:#x}: byte {at} differs from what was sent",
                self.stream
            ));
        }
        if self.received > self.expected || (complete && self.received != self.expected) {
            return Err(format!(
                "stream {:#x}: received {} bytes, expected {}",
                self.stream, self.received, self.expected
            ));
        }
        Ok(())
    }
}

#[test]
fn pattern_is_the_same_whatever_the_chunking() {
    let mut whole = vec![0u8; 1000];
    fill(7, 3, &mut whole);
    let mut c = Checker::new(7, 1003);
    let mut head = [0u8; 3];
    fill(7, 0, &mut head);
    c.feed(&head);
    for chunk in whole.chunks(13) {
        c.feed(chunk);
    }
    assert_eq!(c.verdict(true), Ok(()));
    let mut other = Checker::new(8, 1003);
    other.feed(&head);
    assert!(other.verdict(false).is_err());
}
