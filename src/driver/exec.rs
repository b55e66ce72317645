//! The programs behind `exec:` listeners: the driver's half of the relay (the endpoint's half
//! is `services::Relay`). For each ESTABLISHED connection to an exec port it spawns the
//! program (no shell) with the ucspi-tcp environment, registers its stdin/stdout/stderr pipes
//! (nonblocking) with mio, and moves bytes between them and the connection's own queues
//! (through `RelayIo`). Children are reaped on SIGCHLD, through the event loop.

use crate::endpoint::{Endpoint, RelayEvent};
use crate::services::{ExecSpec, PeerId};
use crate::time::{Duration, Instant};
use crate::wire::Quad;
use mio::unix::SourceFd;
use mio::{Interest, Registry, Token};
use std::collections::HashMap;
use std::io::{self, ErrorKind, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStderr, ChildStdin, ChildStdout, Command, ExitStatus, Stdio};
use tracing::{debug, info, warn};

/// The first token of the programs' pipes; each program takes three (stdin, stdout, stderr).
pub const FIRST_TOKEN: usize = 1 << 40;
/// The longest stderr line logged as one; longer ones are logged in pieces of this size.
const STDERR_LINE: usize = 1024;
/// How long a program's closed stdout waits for its exit status before it is taken for a
/// deliberate close (FIN). A dying program's pipes close a moment before it can be reaped,
/// and one killed by a signal must reset its connection, not end it cleanly: its status
/// comes within microseconds; a program that closed its stdout and runs on gets its FIN
/// this much later.
const STDOUT_CLOSE_GRACE: Duration = Duration::from_millis(100);

/// Check at startup that `spec`'s program exists and is executable (searching `PATH` for a
/// name without `/`, as the spawn will).
pub fn check_program(spec: &ExecSpec) -> Result<PathBuf, String> {
    let program = spec.program();
    let candidates: Vec<PathBuf> = if program.contains('/') {
        vec![PathBuf::from(program)]
    } else {
        std::env::var_os("PATH")
            .map(|p| std::env::split_paths(&p).map(|d| d.join(program)).collect())
            .unwrap_or_default()
    };
    let executable = |p: &Path| {
        std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    if let Some(found) = candidates.iter().find(|p| executable(p)) {
        return Ok(found.clone());
    }
    if program.contains('/') && Path::new(program).exists() {
        Err(format!(
            "{}: '{program}' is not an executable file (check its permissions)",
            spec.label()
        ))
    } else if program.contains('/') {
        Err(format!("{}: '{program}' does not exist", spec.label()))
    } else {
        Err(format!(
            "{}: no program '{program}' in PATH (give its full path, or install it)",
            spec.label()
        ))
    }
}

/// One running (or not yet reaped) program.
struct Program {
    quad: Quad,
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: Option<ChildStdout>,
    stderr: Option<ChildStderr>,
    /// The last write or read would have blocked; wait for mio's event.
    stdin_blocked: bool,
    stdout_blocked: bool,
    /// stderr may have something to read.
    stderr_ready: bool,
    /// A partial stderr line.
    line: Vec<u8>,
    /// The connection is gone (its End event came).
    ended: bool,
    /// We killed it (the client reset the connection).
    killed: bool,
    /// Its stdout was read to the end.
    stdout_eof: bool,
    /// When its stdout ended while it was still running (see [`STDOUT_CLOSE_GRACE`]).
    stdout_eof_at: Option<Instant>,
    /// Its end was told to the relay (FIN or RST); nothing more is.
    end_delivered: bool,
    /// It was reaped, and how it ended.
    status: Option<ExitStatus>,
}

/// Every program the driver runs, by the first of its three tokens.
#[derive(Default)]
pub struct Programs {
    by_token: HashMap<usize, Program>,
    by_quad: HashMap<Quad, usize>,
    next: usize,
    /// Programs to pump this turn (by base token): a pipe reported an event, or their
    /// connection ran (the endpoint's `take_relay_ready`).
    active: Vec<usize>,
    /// Closed stdouts waiting out [`STDOUT_CLOSE_GRACE`]: when, and whose.
    graces: Vec<(Instant, usize)>,
    /// A program may be reaped and read to the end: look for ones to forget.
    maybe_finished: bool,
}

impl Programs {
    /// Whether `token` belongs to a program's pipe.
    pub fn owns(token: Token) -> bool {
        (FIRST_TOKEN..super::forward::FIRST_TOKEN).contains(&token.0)
    }

    /// A pipe is ready: try it again.
    pub fn on_event(&mut self, token: Token) {
        let base = FIRST_TOKEN + (token.0 - FIRST_TOKEN) / 3 * 3;
        if let Some(p) = self.by_token.get_mut(&base) {
            match token.0 - base {
                0 => p.stdin_blocked = false,
                1 => p.stdout_blocked = false,
                _ => p.stderr_ready = true,
            }
            self.active.push(base);
        }
    }

    /// Start or stop a program as the endpoint says (other events are not for programs).
    pub fn on_relay_event(&mut self, event: &RelayEvent, ep: &mut Endpoint, registry: &Registry) {
        match *event {
            RelayEvent::Start { quad, spec } => self.start(ep, registry, quad, spec),
            RelayEvent::End { quad, reset } => self.end(registry, &quad, reset),
            RelayEvent::Connect { .. } => {}
        }
    }

    /// Move what can be moved between the pipes and the relays, for the programs that had a
    /// pipe event, whose connection is in `ran` (see `Endpoint::take_relay_ready`), or whose
    /// closed stdout's grace is over (they get their FIN): the others have nothing to move.
    pub fn pump(&mut self, ep: &mut Endpoint, registry: &Registry, now: Instant, ran: &[Quad]) {
        self.active
            .extend(ran.iter().filter_map(|q| self.by_quad.get(q).copied()));
        let active = &mut self.active;
        self.graces.retain(|&(at, base)| {
            let due = now >= at;
            if due {
                active.push(base);
            }
            !due
        });
        self.active.sort_unstable();
        self.active.dedup();
        for base in self.active.drain(..) {
            if let Some(p) = self.by_token.get_mut(&base)
                && !p.ended
            {
                let graced = p.stdout_eof_at.is_some();
                p.pump(ep, registry, now);
                if !graced && let Some(at) = p.stdout_eof_at {
                    self.graces.push((at + STDOUT_CLOSE_GRACE, base));
                }
                self.maybe_finished |= p.stdout.is_none();
            }
        }
        self.forget_finished();
    }

    /// When [`Programs::pump`] must run again without an event: the earliest grace end of a
    /// closed stdout.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.graces.iter().map(|&(at, _)| at).min()
    }

    /// SIGCHLD: reap every program that exited and log how. A program is forgotten once it
    /// has been reaped and its stdout has been read to the end (or its connection is gone):
    /// its last bytes may still sit in the pipe when SIGCHLD arrives.
    pub fn reap(&mut self, ep: &mut Endpoint, registry: &Registry) {
        for (&base, p) in &mut self.by_token {
            if p.status.is_none()
                && let Ok(Some(status)) = p.child.try_wait()
            {
                p.exited(ep, registry, status);
                self.active.push(base);
            }
        }
        self.maybe_finished = true;
        self.forget_finished();
    }

    fn forget_finished(&mut self) {
        if !std::mem::take(&mut self.maybe_finished) {
            return;
        }
        let by_quad = &mut self.by_quad;
        self.by_token.retain(|&base, p| {
            let done = p.status.is_some() && (p.ended || p.stdout.is_none());
            if done && by_quad.get(&p.quad) == Some(&base) {
                by_quad.remove(&p.quad);
            }
            !done
        });
    }

    /// The daemon is stopping: kill what is still running and reap it.
    pub fn stop_all(&mut self) {
        for (_, mut p) in self.by_token.drain() {
            if p.status.is_some() {
                continue;
            }
            if matches!(p.child.try_wait(), Ok(None)) {
                let _ = p.child.kill();
            }
            if let Ok(status) = p.child.wait() {
                info!(quad = %p.quad, pid = p.child.id(), "program {}", describe(status));
            }
        }
        self.by_quad.clear();
    }

    fn start(&mut self, ep: &mut Endpoint, registry: &Registry, quad: Quad, spec: &ExecSpec) {
        match spawn(spec, &quad) {
            Ok(mut child) => {
                let base = FIRST_TOKEN + self.next * 3;
                self.next += 1;
                let stdin = child.stdin.take();
                let stdout = child.stdout.take();
                let stderr = child.stderr.take();
                let mut ok = true;
                for (i, fd) in [
                    stdin.as_ref().map(AsRawFd::as_raw_fd),
                    stdout.as_ref().map(AsRawFd::as_raw_fd),
                    stderr.as_ref().map(AsRawFd::as_raw_fd),
                ]
                .into_iter()
                .enumerate()
                {
                    let interest = if i == 0 {
                        Interest::WRITABLE
                    } else {
                        Interest::READABLE
                    };
                    ok &= fd.is_some_and(|fd| {
                        set_nonblocking(fd).is_ok()
                            && registry
                                .register(&mut SourceFd(&fd), Token(base + i), interest)
                                .is_ok()
                    });
                }
                info!(%quad, pid = child.id(), "started {}", spec.label());
                if let Some(mut relay) = ep.relay_io(&quad) {
                    relay.set_peer(PeerId::Pid(child.id()));
                }
                let program = Program {
                    quad,
                    child,
                    stdin,
                    stdout,
                    stderr,
                    stdin_blocked: false,
                    stdout_blocked: false,
                    stderr_ready: true,
                    line: Vec::new(),
                    ended: false,
                    killed: false,
                    stdout_eof: false,
                    stdout_eof_at: None,
                    end_delivered: false,
                    status: None,
                };
                self.by_token.insert(base, program);
                self.by_quad.insert(quad, base);
                // The client's first bytes may be waiting already.
                self.active.push(base);
                if !ok {
                    warn!(%quad, "cannot watch the program's pipes; resetting the connection");
                    ep.relay_spawn_failed(&quad);
                    self.end(registry, &quad, true);
                }
            }
            Err(e) => {
                warn!(%quad, error = %e, "cannot start {}; resetting the connection", spec.label());
                ep.relay_spawn_failed(&quad);
            }
        }
    }

    fn end(&mut self, registry: &Registry, quad: &Quad, reset: bool) {
        let Some(base) = self.by_quad.remove(quad) else {
            return;
        };
        let Some(p) = self.by_token.get_mut(&base) else {
            return;
        };
        p.ended = true;
        self.maybe_finished = true;
        if reset && p.status.is_none() {
            // Killed before its pipes close, so that it dies of our SIGKILL rather than of
            // the SIGPIPE a write to its closed stdout would bring; its exit is logged once,
            // with the reason (`exit_message`).
            p.killed = true;
            let _ = p.child.kill();
        }
        // Its pipes close; a program still reading sees EOF, one still writing EPIPE.
        p.close_stdin(registry);
        p.close_stdout(registry);
    }
}

impl Program {
    /// Move bytes between the pipes and the relay.
    fn pump(&mut self, ep: &mut Endpoint, registry: &Registry, now: Instant) {
        let quad = self.quad;
        let mut changed = false;
        if let Some(at) = self.stdout_eof_at
            && self.status.is_none()
            && !self.end_delivered
            && now >= at + STDOUT_CLOSE_GRACE
        {
            // It closed its stdout and runs on: that was its end of the stream.
            debug!(%quad, pid = self.child.id(), "the program closed its stdout: FIN");
            self.end_delivered = true;
            if let Some(mut relay) = ep.relay_io(&quad) {
                relay.peer_eof();
                changed = true;
            }
        }
        // Client → program.
        if let Some(stdin) = self.stdin.as_mut()
            && !self.stdin_blocked
            && let Some(mut relay) = ep.relay_io(&quad)
        {
            loop {
                let data = relay.peer_pending();
                if data.is_empty() {
                    break;
                }
                match stdin.write(data) {
                    Ok(n) => {
                        relay.peer_wrote(n);
                        changed = true;
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => {
                        self.stdin_blocked = true;
                        break;
                    }
                    Err(e) if e.kind() == ErrorKind::Interrupted => {}
                    Err(e) => {
                        // EPIPE: the program reads no more.
                        debug!(%quad, error = %e, "the program's stdin is closed");
                        relay.peer_gone();
                        changed = true;
                        break;
                    }
                }
            }
        }
        let shut = ep
            .relay_io(&quad)
            .is_some_and(|r| r.peer_should_shut_input());
        if self.stdin.is_some() && shut {
            // The client's FIN: the program's stdin closes (EOF).
            self.close_stdin(registry);
        }
        // Program → client, only as far as the relay has room (the client's window).
        while !self.stdout_blocked
            && let Some(stdout) = self.stdout.as_mut()
            && let Some(mut relay) = ep.relay_io(&quad)
        {
            let Some(outcome) = super::read_into(&mut relay, stdout) else {
                break;
            };
            // The stream is over at EOF, and once the program has exited, also when its
            // pipe is empty: everything it wrote has been read. A process it left behind
            // may hold the pipe open (no EOF), but the program's stream is over: "when the
            // program ... exits, synack sends its FIN after the last byte".
            let over = match &outcome {
                Ok(0) => true,
                Err(e) => e.kind() == ErrorKind::WouldBlock && self.status.is_some(),
                Ok(_) => false,
            };
            if over {
                self.close_stdout(registry);
                self.stdout_eof = true;
                if self.status.is_none()
                    && let Ok(Some(status)) = self.child.try_wait()
                {
                    self.exited(ep, registry, status);
                } else if self.status.is_none() {
                    // Its stdout is closed. A program closes it as it dies, a moment before
                    // it can be reaped: the FIN waits for the exit status (at most
                    // STDOUT_CLOSE_GRACE), so that a crash becomes a reset rather than a
                    // clean end (`exited` sends it).
                    self.stdout_eof_at = Some(now);
                } else {
                    self.deliver_end(ep);
                }
                break;
            }
            match outcome {
                Ok(_) => changed = true,
                Err(e) if e.kind() == ErrorKind::WouldBlock => self.stdout_blocked = true,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => {
                    debug!(%quad, error = %e, "reading the program's stdout failed");
                    relay.peer_failed();
                    changed = true;
                    self.close_stdout(registry);
                }
            }
        }
        if changed {
            ep.relay_changed(&quad);
        }
        if self.stderr_ready {
            self.log_stderr(registry);
        }
    }

    /// Log what the program wrote to stderr, a line at a time (bounded).
    fn log_stderr(&mut self, registry: &Registry) {
        let mut buf = [0u8; 4096];
        loop {
            let Some(stderr) = self.stderr.as_mut() else {
                return;
            };
            match stderr.read(&mut buf) {
                Ok(0) => {
                    self.flush_line();
                    if let Some(s) = self.stderr.take() {
                        let _ = registry.deregister(&mut SourceFd(&s.as_raw_fd()));
                    }
                    return;
                }
                Ok(n) => {
                    for &b in buf.get(..n).unwrap_or_default() {
                        if b == b'\n' {
                            self.flush_line();
                        } else {
                            self.line.push(b);
                            if self.line.len() >= STDERR_LINE {
                                self.flush_line();
                            }
                        }
                    }
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => {
                    self.stderr_ready = false;
                    return;
                }
            }
        }
    }

    fn flush_line(&mut self) {
        if !self.line.is_empty() {
            info!(quad = %self.quad, pid = self.child.id(), "stderr: {}",
                String::from_utf8_lossy(&self.line));
            self.line.clear();
        }
    }

    fn close_stdin(&mut self, registry: &Registry) {
        if let Some(s) = self.stdin.take() {
            let _ = registry.deregister(&mut SourceFd(&s.as_raw_fd()));
        }
    }

    fn close_stdout(&mut self, registry: &Registry) {
        if let Some(s) = self.stdout.take() {
            let _ = registry.deregister(&mut SourceFd(&s.as_raw_fd()));
        }
    }

    /// The program exited: log how; a program killed by a signal (other than by us) resets
    /// its connection, one that exited reads no more.
    fn exited(&mut self, ep: &mut Endpoint, registry: &Registry, status: ExitStatus) {
        self.status = Some(status);
        self.log_stderr(registry);
        self.flush_line();
        let quad = self.quad;
        info!(%quad, pid = self.child.id(), "{}", exit_message(status, self.killed));
        self.close_stdin(registry);
        if self.ended || self.killed {
            return;
        }
        if let Some(mut relay) = ep.relay_io(&quad) {
            relay.peer_gone();
            ep.relay_changed(&quad);
        }
        // Read its stdout dry at the next pump: what is in the pipe is the rest of its
        // stream (see the WouldBlock case there).
        self.stdout_blocked = false;
        self.deliver_end(ep);
    }

    /// Tell the relay how the program ended, once that is known: killed by a signal, at once
    /// (reset); otherwise when its stdout has also been read to the end (FIN after the last
    /// byte it wrote).
    fn deliver_end(&mut self, ep: &mut Endpoint) {
        let Some(status) = self.status else {
            return;
        };
        if self.end_delivered {
            // It closed its stdout and got its FIN before it ended: whatever its status,
            // the stream it wrote was whole.
            return;
        }
        let quad = self.quad;
        if let Some(mut relay) = ep.relay_io(&quad) {
            if status.signal().is_some() {
                relay.peer_failed();
                self.end_delivered = true;
            } else if self.stdout_eof {
                relay.peer_eof();
                self.end_delivered = true;
            }
            ep.relay_changed(&quad);
        }
    }
}

/// The one line logged when a program ends: how, and, when the client's RST made synack
/// stop it, that this is why.
fn exit_message(status: ExitStatus, killed_for_reset: bool) -> String {
    if killed_for_reset {
        format!(
            "the client reset the connection, so synack stopped the program ({})",
            describe(status)
        )
    } else {
        format!("program {}", describe(status))
    }
}

/// "exited with status 0", "killed by signal 9".
fn describe(status: ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exited with status {code}"),
        (None, Some(sig)) => format!("killed by signal {sig}"),
        _ => format!("ended ({status})"),
    }
}

/// Spawn `spec` for the connection `quad`: no shell, pipes for stdin/stdout/stderr, and the
/// ucspi-tcp environment (PROTO, TCPLOCALIP, TCPLOCALPORT, TCPREMOTEIP, TCPREMOTEPORT).
fn spawn(spec: &ExecSpec, quad: &Quad) -> io::Result<Child> {
    Command::new(spec.program())
        .args(spec.args())
        .env("PROTO", "TCP")
        .env("TCPLOCALIP", quad.local.ip().to_string())
        .env("TCPLOCALPORT", quad.local.port().to_string())
        .env("TCPREMOTEIP", quad.remote.ip().to_string())
        .env("TCPREMOTEPORT", quad.remote.port().to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
}

fn set_nonblocking(fd: i32) -> io::Result<()> {
    // SAFETY: fcntl on a descriptor we own; F_GETFL/F_SETFL take and return plain ints.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    if flags < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: as above.
    if unsafe { libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::ExitStatusExt;

    #[test]
    fn a_program_stopped_for_a_client_reset_is_logged_once_with_the_reason() {
        // Raw wait statuses: 13 is "killed by SIGPIPE", 9 << 8 "exited with status 9".
        let sigpipe = ExitStatus::from_raw(13);
        assert_eq!(
            exit_message(sigpipe, true),
            "the client reset the connection, so synack stopped the program (killed by signal 13)"
        );
        assert_eq!(exit_message(sigpipe, false), "program killed by signal 13");
        assert_eq!(
            exit_message(ExitStatus::from_raw(9 << 8), false),
            "program exited with status 9"
        );
    }
}
