//! `synack status|stats|connect|trace`: the client side of the control socket. Each command
//! sends one request to the running daemon and prints what comes back. (`man` and
//! `completions` need no daemon: see `cli::generate`.)

use super::generate;
use super::{Args, Command};
use crate::config::plain;
use crate::driver::control::{
    Request, Response, StatusRow, StatusTable, decode_response, encode, format_stats, row_json,
};
use crate::driver::socket_dir::{self, check_socket_dir};
use std::io::{self, BufRead, BufReader, ErrorKind, Read, Write};
use std::net::SocketAddr;
use std::os::unix::net::UnixStream;
use std::path::Path;

/// Run `cmd` against the daemon `args` point at. The error is one sentence for the user.
pub fn run(args: &Args, cmd: &Command) -> Result<(), String> {
    match cmd {
        Command::Status { json, watch, info } => status(args, *json, *watch, *info),
        Command::Stats { json } => stats(args, *json),
        Command::Connect {
            addr,
            send,
            fastopen,
        } => {
            let data = match send.as_deref() {
                None => Vec::new(),
                Some(p) if p == std::path::Path::new("-") => {
                    let mut v = Vec::new();
                    io::stdin()
                        .read_to_end(&mut v)
                        .map_err(|e| format!("cannot read standard input: {e}"))?;
                    v
                }
                Some(p) => std::fs::read(p)
                    .map_err(|e| format!("cannot read {}: {}", p.display(), plain(&e)))?,
            };
            connect(
                args,
                Request::Connect {
                    addr: *addr,
                    data,
                    fastopen: *fastopen,
                },
            )
        }
        Command::Trace { follow, svg } => trace(args, *follow, svg.as_deref()),
        Command::Completions { shell } => generate::print(Ok(generate::completions(*shell))),
        Command::Man => generate::print(generate::man_page()),
    }
}

/// Root's default socket for this interface, when it is not ours and exists.
fn root_socket(args: &Args) -> Option<std::path::PathBuf> {
    let root = socket_dir::root_socket_path(&args.iface);
    (args.control.is_none() && args.control_path() != root && root.exists()).then_some(root)
}

/// A connection to the daemon with `req` sent.
fn request(args: &Args, req: &Request) -> Result<BufReader<UnixStream>, String> {
    let path = args.control_path();
    check_socket_dir(&path)?;
    let mut stream = UnixStream::connect(&path).map_err(|e| match e.kind() {
        ErrorKind::NotFound | ErrorKind::ConnectionRefused => match root_socket(args) {
            // A daemon started with sudo (or the systemd service) is root's.
            Some(root) => format!(
                "nothing answers at {}, your default; a synack run by root has {}: run this \
                 as root (sudo synack ...), or give --control {}",
                path.display(),
                root.display(),
                root.display()
            ),
            None => format!(
                "no synack running on {}? (nothing answers at {}; start it with `synack -i \
                 {}`, or point --control at its socket)",
                args.iface,
                path.display(),
                args.iface
            ),
        },
        ErrorKind::PermissionDenied => format!(
            "cannot open {}: permission denied (run this as the user running synack, \
             or as root)",
            path.display()
        ),
        _ => format!("cannot reach synack at {}: {}", path.display(), plain(&e)),
    })?;
    stream
        .write_all(encode(req).as_bytes())
        .map_err(|e| format!("cannot talk to synack: {}", plain(&e)))?;
    Ok(BufReader::new(stream))
}

/// The next response, `None` at the end of the stream.
fn next(reader: &mut BufReader<UnixStream>) -> Result<Option<Response>, String> {
    let mut line = String::new();
    match reader.read_line(&mut line) {
        Ok(0) => Ok(None),
        // A line cut short: the daemon closed the stream in the middle of a response.
        Ok(_) if !line.ends_with('\n') => Err(CUT_SHORT.into()),
        Ok(_) => match decode_response(&line)? {
            Response::Error { message } => Err(message),
            r => Ok(Some(r)),
        },
        Err(e) => Err(format!("lost the connection to synack: {}", plain(&e))),
    }
}

/// What the client says when the daemon ends the stream before the response is complete.
const CUT_SHORT: &str = "synack closed the control connection before its answer was complete \
     (it was stopped, or it dropped this client for reading too slowly: a control client may \
     fall at most 16 MiB behind); run the command again";

/// A write to standard output failed. A closed pipe is the reader's normal end (`synack
/// status --watch | head`): the command stops at once, silently, with status 0, as a Unix
/// filter does; anything else is an error to report.
fn output_failed(e: io::Error) -> String {
    if is_normal_end(&e) {
        std::process::exit(0);
    }
    format!("cannot write the output: {}", plain(&e))
}

fn is_normal_end(e: &io::Error) -> bool {
    e.kind() == ErrorKind::BrokenPipe
}

/// Write `bytes` to standard output now.
fn emit(out: &mut impl Write, bytes: &[u8]) -> Result<(), String> {
    out.write_all(bytes)
        .and_then(|()| out.flush())
        .map_err(output_failed)
}

/// Ask for the status and hand each page of rows to `page` as it arrives (the daemon sends
/// them as they are read, so a table of any size streams through in bounded memory).
fn status_pages(
    args: &Args,
    info: bool,
    mut page: impl FnMut(Vec<StatusRow>) -> Result<(), String>,
) -> Result<(), String> {
    let mut r = request(args, &Request::Status { info })?;
    let mut received = 0u64;
    loop {
        match next(&mut r)? {
            Some(Response::Status { rows }) => {
                received += rows.len() as u64;
                page(rows)?;
            }
            Some(Response::StatusEnd { rows }) if rows == received => return Ok(()),
            Some(Response::StatusEnd { rows }) => {
                return Err(format!(
                    "synack announced {rows} status rows but sent {received}; run the \
                     command again"
                ));
            }
            Some(_) => return Err("synack sent something other than status rows".into()),
            None if received == 0 => return Err("synack sent no status".into()),
            None => return Err(CUT_SHORT.into()),
        }
    }
}

fn status(args: &Args, json: bool, watch: bool, info: bool) -> Result<(), String> {
    loop {
        let mut out = io::stdout().lock();
        if watch && !json {
            // Clear the screen and go home, as `watch` does.
            emit(&mut out, b"\x1b[H\x1b[2J")?;
        }
        if json {
            // One JSON array, written a row at a time: a valid document however many rows.
            let mut first = true;
            status_pages(args, info, |rows| {
                let mut text = String::new();
                for row in &rows {
                    text.push_str(if first { "[\n  " } else { ",\n  " });
                    first = false;
                    text.push_str(&row_json(row));
                }
                emit(&mut out, text.as_bytes())
            })?;
            emit(&mut out, if first { b"[]\n" } else { b"\n]\n" })?;
        } else {
            // The columns are sized by the first page (the listeners and the first
            // connections); a wider cell later widens its own line only, as in `ss`.
            let mut table: Option<StatusTable> = None;
            status_pages(args, info, |rows| {
                let table = table.get_or_insert_with(|| StatusTable::new(&rows));
                let text = if info {
                    table.format_info(&rows)
                } else {
                    table.format(&rows)
                };
                emit(&mut out, text.as_bytes())
            })?;
        }
        drop(out);
        if !watch {
            return Ok(());
        }
        std::thread::sleep(std::time::Duration::from_secs(1));
    }
}

fn stats(args: &Args, json: bool) -> Result<(), String> {
    let mut r = request(args, &Request::Stats)?;
    let Some(Response::Stats { counters }) = next(&mut r)? else {
        return Err("synack sent no counters".into());
    };
    let text = if json {
        // An object in the daemon's order (serde_json's map would sort the names).
        let fields: Vec<String> = counters
            .iter()
            .map(|(k, v)| format!("  {}: {v}", serde_json::Value::from(k.as_str())))
            .collect();
        format!("{{\n{}\n}}\n", fields.join(",\n"))
    } else {
        format_stats(&counters)
    };
    io::stdout()
        .write_all(text.as_bytes())
        .map_err(output_failed)
}

/// How long `connect` waits for the handshake before it says the SYN goes unanswered: the
/// first retransmission comes after the initial RTO of 1 s (RFC 6298 §2.1).
const SYN_NOTICE_AFTER: std::time::Duration = std::time::Duration::from_millis(1500);

/// What `connect` says, once, when the peer has not answered its SYN.
fn syn_retry_notice(addr: SocketAddr, gives_up_after_ms: u64) -> String {
    format!(
        "synack: no answer from {addr} yet: retransmitting the SYN for up to {} s before \
         giving up (Ctrl-C stops it sooner)",
        gives_up_after_ms.div_ceil(1000)
    )
}

fn connect(args: &Args, req: Request) -> Result<(), String> {
    let addr = match &req {
        Request::Connect { addr, .. } => Some(*addr),
        _ => None,
    };
    let mut r = request(args, &req)?;
    let mut out = io::stdout().lock();
    // The first answer is Connecting; until the handshake completes, a silence longer than
    // the first RTO is the SYN going unanswered: say so once.
    let mut pending_notice = None;
    loop {
        let resp = match next(&mut r) {
            Ok(Some(resp)) => resp,
            Ok(None) => break,
            Err(_)
                if pending_notice.is_some()
                    && r.get_ref().read_timeout().ok().flatten().is_some() =>
            {
                if let (Some(addr), Some(ms)) = (addr, pending_notice.take()) {
                    eprintln!("{}", syn_retry_notice(addr, ms));
                }
                let _ = r.get_ref().set_read_timeout(None);
                continue;
            }
            Err(e) => return Err(e),
        };
        if !matches!(resp, Response::Connecting { .. }) && pending_notice.take().is_some() {
            let _ = r.get_ref().set_read_timeout(None);
        }
        match resp {
            Response::Connecting {
                gives_up_after_ms, ..
            } => {
                pending_notice = Some(gives_up_after_ms);
                let _ = r.get_ref().set_read_timeout(Some(SYN_NOTICE_AFTER));
            }
            Response::Data { data } => {
                out.write_all(&data)
                    .and_then(|()| out.flush())
                    .map_err(output_failed)?;
            }
            Response::Closed { outcome } if outcome == "closed" => return Ok(()),
            Response::Closed { outcome } => return Err(outcome),
            _ => {}
        }
    }
    Err("synack stopped before the connection ended".into())
}

fn trace(args: &Args, follow: bool, svg_dir: Option<&Path>) -> Result<(), String> {
    if let Some(dir) = svg_dir {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create {}: {}", dir.display(), plain(&e)))?;
    }
    let svg = svg_dir.is_some();
    let mut r = request(args, &Request::Trace { follow, svg })?;
    let mut out = io::stdout().lock();
    while let Some(resp) = next(&mut r)? {
        let Response::Ladder {
            local,
            peer,
            text,
            svg,
            ..
        } = resp
        else {
            continue;
        };
        match (svg_dir, svg) {
            (Some(dir), Some(picture)) => {
                // One file per connection, named by its 4-tuple; a closed connection's
                // picture replaces the one written while it was open.
                let path = dir.join(svg_file_name(&local, &peer));
                std::fs::write(&path, picture)
                    .map_err(|e| format!("cannot write {}: {}", path.display(), plain(&e)))?;
                writeln!(out, "{}", path.display())
                    .and_then(|()| out.flush())
                    .map_err(output_failed)?;
            }
            // Gone from the endpoint's memory before it could be drawn: nothing to write.
            (Some(_), None) => {}
            (None, _) => out
                .write_all(text.as_bytes())
                .and_then(|()| out.write_all(b"\n"))
                .and_then(|()| out.flush())
                .map_err(output_failed)?,
        }
    }
    Ok(())
}

/// `198.18.0.2_80-198.18.0.1_40000.svg`: our address and port, then the peer's.
fn svg_file_name(local: &SocketAddr, peer: &SocketAddr) -> String {
    format!(
        "{}_{}-{}_{}.svg",
        local.ip(),
        local.port(),
        peer.ip(),
        peer.port()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_closed_pipe_is_a_normal_end_and_other_write_errors_are_not() {
        assert!(is_normal_end(&io::Error::from(ErrorKind::BrokenPipe)));
        let full = io::Error::from_raw_os_error(libc::ENOSPC);
        assert!(!is_normal_end(&full));
        assert!(output_failed(full).starts_with("cannot write the output: "));
    }

    #[test]
    fn an_unanswered_syn_is_announced_once_with_how_long_it_will_try() {
        let notice = syn_retry_notice("198.18.0.1:8080".parse().unwrap(), 123_000);
        assert_eq!(
            notice,
            "synack: no answer from 198.18.0.1:8080 yet: retransmitting the SYN for up to \
             123 s before giving up (Ctrl-C stops it sooner)"
        );
        assert_eq!(
            crate::tcp::Config::default().syn_give_up_after().as_secs(),
            123
        );
    }

    #[test]
    fn a_response_cut_short_says_what_happened_and_what_to_do() {
        assert!(CUT_SHORT.contains("16 MiB"));
        assert!(CUT_SHORT.ends_with("run the command again"));
    }
}
