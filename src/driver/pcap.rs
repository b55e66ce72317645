//! A pcap writer (the classic libpcap format, microsecond timestamps) with LINKTYPE_RAW: each
//! record is one IP packet as it crossed the TUN, readable by tcpdump and Wireshark.
//!
//! Pure over [`std::io::Write`]: the driver gives it a file or stdout, the wall-clock time of
//! each packet, and calls [`PcapWriter::flush`] after each batch so that a reader following
//! the file (or a pipe into `tcpdump -r -`) sees packets promptly.

use std::io::{self, Write};

/// The classic pcap magic number, microsecond resolution.
pub const MAGIC: u32 = 0xa1b2_c3d4;
/// LINKTYPE_RAW: the packet begins with an IPv4 or IPv6 header.
pub const LINKTYPE_RAW: u32 = 101;
/// The most bytes kept of one packet; the MTU is at most 65535.
pub const SNAPLEN: u32 = 65535;

const RECORD_HEADER: usize = 16;

pub struct PcapWriter<W: Write> {
    out: W,
    /// One record (header and packet) is assembled here and written with one call, so that a
    /// reader never sees half a record even on an unbuffered pipe.
    record: Vec<u8>,
}

impl<W: Write> PcapWriter<W> {
    /// Write the global header.
    pub fn new(mut out: W) -> io::Result<Self> {
        let mut header = [0u8; 24];
        header[0..4].copy_from_slice(&MAGIC.to_le_bytes());
        header[4..6].copy_from_slice(&2u16.to_le_bytes()); // version 2.4
        header[6..8].copy_from_slice(&4u16.to_le_bytes());
        // thiszone (8..12) and sigfigs (12..16) stay zero.
        header[16..20].copy_from_slice(&SNAPLEN.to_le_bytes());
        header[20..24].copy_from_slice(&LINKTYPE_RAW.to_le_bytes());
        out.write_all(&header)?;
        out.flush()?;
        Ok(PcapWriter {
            out,
            record: Vec::with_capacity(RECORD_HEADER + SNAPLEN as usize),
        })
    }

    /// Append one packet seen at `unix_micros` (microseconds since 1970).
    pub fn write_packet(&mut self, unix_micros: u64, packet: &[u8]) -> io::Result<()> {
        self.write_packet_parts(unix_micros, packet, &[])
    }

    /// [`PcapWriter::write_packet`] for a packet in two parts, `headers` then `payload`.
    pub fn write_packet_parts(
        &mut self,
        unix_micros: u64,
        headers: &[u8],
        payload: &[u8],
    ) -> io::Result<()> {
        let orig_len = u32::try_from(headers.len() + payload.len()).unwrap_or(u32::MAX);
        let incl_len = orig_len.min(SNAPLEN);
        let secs = u32::try_from(unix_micros / 1_000_000).unwrap_or(u32::MAX);
        let micros = (unix_micros % 1_000_000) as u32;
        self.record.clear();
        self.record.extend_from_slice(&secs.to_le_bytes());
        self.record.extend_from_slice(&micros.to_le_bytes());
        self.record.extend_from_slice(&incl_len.to_le_bytes());
        self.record.extend_from_slice(&orig_len.to_le_bytes());
        let from_headers = headers.len().min(incl_len as usize);
        self.record
            .extend_from_slice(headers.get(..from_headers).unwrap_or(headers));
        let from_payload = (incl_len as usize).saturating_sub(from_headers);
        self.record
            .extend_from_slice(payload.get(..from_payload).unwrap_or(payload));
        self.out.write_all(&self.record)
    }

    pub fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }

    pub fn into_inner(self) -> W {
        self.out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::testutil::{LINUX_SYN_V4, LINUX_SYN_V6, hex};

    /// magic, version major and minor, snaplen, link type.
    type Global = (u32, u16, u16, u32, u32);
    /// seconds, microseconds, packet.
    type Record = (u32, u32, Vec<u8>);

    /// A minimal reader: the global header's fields, then the records.
    fn read(bytes: &[u8]) -> (Global, Vec<Record>) {
        let u32_at = |b: &[u8], i: usize| u32::from_le_bytes(b[i..i + 4].try_into().unwrap());
        let u16_at = |b: &[u8], i: usize| u16::from_le_bytes(b[i..i + 2].try_into().unwrap());
        let global = (
            u32_at(bytes, 0),
            u16_at(bytes, 4),
            u16_at(bytes, 6),
            u32_at(bytes, 16),
            u32_at(bytes, 20),
        );
        let mut records = Vec::new();
        let mut at = 24;
        while at < bytes.len() {
            let (secs, micros) = (u32_at(bytes, at), u32_at(bytes, at + 4));
            let (incl, orig) = (u32_at(bytes, at + 8) as usize, u32_at(bytes, at + 12));
            assert_eq!(incl as u32, orig);
            records.push((secs, micros, bytes[at + 16..at + 16 + incl].to_vec()));
            at += 16 + incl;
        }
        assert_eq!(at, bytes.len(), "no trailing bytes");
        (global, records)
    }

    fn sample() -> (Vec<u8>, Vec<u8>, Vec<u8>) {
        let (v4, v6) = (hex(LINUX_SYN_V4), hex(LINUX_SYN_V6));
        let mut w = PcapWriter::new(Vec::new()).unwrap();
        w.write_packet(1_700_000_000_123_456, &v4).unwrap();
        w.write_packet(1_700_000_001_000_001, &v6).unwrap();
        w.flush().unwrap();
        (w.into_inner(), v4, v6)
    }

    #[test]
    fn a_packet_in_two_parts_is_recorded_as_the_joined_packet() {
        let v4 = hex(LINUX_SYN_V4);
        let (headers, payload) = v4.split_at(20);
        let mut joined = PcapWriter::new(Vec::new()).unwrap();
        joined.write_packet(7, &v4).unwrap();
        let mut parts = PcapWriter::new(Vec::new()).unwrap();
        parts.write_packet_parts(7, headers, payload).unwrap();
        assert_eq!(parts.into_inner(), joined.into_inner());
        // Past the snap length, the payload is cut; the original length is kept.
        let big = vec![0x5a; SNAPLEN as usize + 100];
        let mut w = PcapWriter::new(Vec::new()).unwrap();
        w.write_packet_parts(7, &big[..40], &big[40..]).unwrap();
        let bytes = w.into_inner();
        let incl = u32::from_le_bytes(bytes[24 + 8..24 + 12].try_into().unwrap());
        let orig = u32::from_le_bytes(bytes[24 + 12..24 + 16].try_into().unwrap());
        assert_eq!((incl, orig), (SNAPLEN, SNAPLEN + 100));
        assert_eq!(bytes.len(), 24 + 16 + SNAPLEN as usize);
    }

    #[test]
    fn packets_read_back_with_their_timestamps() {
        let (file, v4, v6) = sample();
        let (global, records) = read(&file);
        assert_eq!(global, (MAGIC, 2, 4, SNAPLEN, LINKTYPE_RAW));
        assert_eq!(
            records,
            vec![(1_700_000_000, 123_456, v4), (1_700_000_001, 1, v6)]
        );
    }

    #[test]
    fn tcpdump_reads_the_file() {
        let Ok(probe) = std::process::Command::new("tcpdump")
            .arg("--version")
            .output()
        else {
            eprintln!("tcpdump not installed: skipping the tcpdump check");
            return;
        };
        assert!(probe.status.success());
        let (file, _, _) = sample();
        let path =
            std::env::temp_dir().join(format!("synack-pcap-test-{}.pcap", std::process::id()));
        std::fs::write(&path, &file).unwrap();
        let out = std::process::Command::new("tcpdump")
            .args(["-nn", "-tt", "-r"])
            .arg(&path)
            .output()
            .unwrap();
        std::fs::remove_file(&path).ok();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2, "{text}");
        assert!(
            lines[0].starts_with("1700000000.123456 IP 198.18.0.1."),
            "{text}"
        );
        assert!(lines[0].contains("Flags [S]"), "{text}");
        assert!(
            lines[1].starts_with("1700000001.000001 IP6 2001:2::1."),
            "{text}"
        );
    }
}
