//! What the loop does besides moving packets: the pcap capture (`--pcap`), the ladders of
//! closed connections (`--ladder`) and the control socket (`synack status|stats|connect|trace`).

use super::control_server::ControlServer;
use super::pcap::PcapWriter;
use crate::config::SetupError;
use crate::endpoint::Endpoint;
use crate::time::Instant;
use mio::{Registry, Token};
use std::io::{self, BufWriter, Write};
use std::path::Path;
use tracing::warn;

/// The pcap file or stream; off when there is none. A write error (the reader of `--pcap -`
/// went away, the disk is full) stops the capture with one warning.
#[derive(Default)]
pub struct Capture {
    writer: Option<PcapWriter<Box<dyn Write>>>,
}

impl Capture {
    /// Open `path` (`-` for stdout) and write the pcap header.
    pub fn open(path: &Path) -> Result<Capture, SetupError> {
        let out: Box<dyn Write> = if path == Path::new("-") {
            Box::new(BufWriter::new(io::stdout()))
        } else {
            let file = std::fs::File::create(path).map_err(|source| SetupError::Io {
                what: "cannot create the --pcap file",
                source,
            })?;
            Box::new(BufWriter::new(file))
        };
        let writer = PcapWriter::new(out).map_err(|source| SetupError::Io {
            what: "cannot write the --pcap header",
            source,
        })?;
        Ok(Capture {
            writer: Some(writer),
        })
    }

    pub fn is_on(&self) -> bool {
        self.writer.is_some()
    }

    /// Record one packet, received or sent, stamped with the wall clock.
    pub fn packet(&mut self, packet: &[u8]) {
        self.packet_parts(packet, &[]);
    }

    /// A packet in two parts (headers, then the payload where it lies).
    pub fn packet_parts(&mut self, headers: &[u8], payload: &[u8]) {
        let Some(w) = self.writer.as_mut() else {
            return;
        };
        let micros = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX));
        if let Err(e) = w.write_packet_parts(micros, headers, payload) {
            self.fail(&e);
        }
    }

    /// Make what was captured visible to readers (once per turn of the loop).
    pub fn flush(&mut self) {
        if let Some(w) = self.writer.as_mut()
            && let Err(e) = w.flush()
        {
            self.fail(&e);
        }
    }

    fn fail(&mut self, e: &io::Error) {
        warn!(error = %e, "--pcap: cannot write the capture; capturing stops");
        self.writer = None;
    }
}

/// Where `--ladder` prints: stdout, or stderr when stdout carries the pcap stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LadderOut {
    Stdout,
    Stderr,
}

impl LadderOut {
    fn print(self, text: &str) {
        // User-facing output (like `ss` or `tcpdump` prints), not a diagnostic log line.
        let _ = match self {
            LadderOut::Stdout => {
                let mut out = io::stdout().lock();
                out.write_all(text.as_bytes())
                    .and_then(|()| out.write_all(b"\n"))
                    .and_then(|()| out.flush())
            }
            LadderOut::Stderr => {
                let mut out = io::stderr().lock();
                out.write_all(text.as_bytes())
                    .and_then(|()| out.write_all(b"\n"))
            }
        };
    }
}

/// Everything the loop observes with.
#[derive(Default)]
pub struct Observers {
    pub capture: Capture,
    pub ladder: Option<LadderOut>,
    pub control: Option<ControlServer>,
}

impl Observers {
    /// A control client (or the listener) is ready.
    pub fn on_control_event(
        control: &mut Option<ControlServer>,
        token: Token,
        registry: &Registry,
        ep: Option<&mut Endpoint>,
        now: Instant,
    ) {
        if let (Some(ctl), Some(ep)) = (control.as_mut(), ep) {
            ctl.on_event(token, registry, ep, now);
        }
    }

    /// After the endpoint's poll: print and stream the ladders of closed connections, answer
    /// the control clients, flush the capture.
    pub fn after_poll(&mut self, registry: &Registry, ep: Option<&mut Endpoint>, now: Instant) {
        if let Some(ep) = ep {
            let followers = self.control.as_ref().is_some_and(|c| c.has_followers());
            ep.set_collect_ladders(self.ladder.is_some() || followers);
            let ladders = ep.take_finished_ladders();
            if let Some(out) = self.ladder {
                for (_, text) in &ladders {
                    out.print(text);
                }
            }
            if let Some(ctl) = self.control.as_mut() {
                ctl.after_poll(registry, ep, &ladders, now);
            }
        }
        self.capture.flush();
    }
}
