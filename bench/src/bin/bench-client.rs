//! The one client used against synack, smoltcp and the kernel: plain `std::net` sockets and
//! threads. Prints one JSON object per result on stdout.
//!
//! - `upload ADDR BYTES [-c N]`: connect, write BYTES (split over N connections), shut down
//!   the write side, wait for the server to close. Needs a sink (port 9).
//! - `download ADDR BYTES [-c N]`: connect, read BYTES (split over N connections), close.
//!   Needs a source (port 19).
//! - `parallel-upload` / `parallel-download`: the same with `-c` defaulting to 4.
//! - `connrate ADDR COUNT [-c N]`: connect and close at once, COUNT times, sequentially
//!   (`-c 1`) or from N threads; prints connections per second.
//! - `wait ADDR`: retry connecting until it works (readiness probe for the script).
//!
//! `--server-pid PID` adds the server's CPU time over the measurement (from /proc).
//! Every wait is bounded: connect, read and write time-outs and `--max-secs` for a whole run.

use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddr, SocketAddrV4, TcpStream};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};
use synack_bench::json::Line;
use synack_bench::procstat;

#[derive(Debug, Parser)]
#[command(name = "bench-client")]
struct Args {
    #[command(subcommand)]
    mode: Mode,
    /// PID of the server process, to report its CPU time over the measurement.
    #[arg(long, global = true)]
    server_pid: Option<u32>,
    /// Upper bound on the duration of the whole measurement, in seconds: a transfer stops
    /// there and reports what it moved (with "complete": false).
    #[arg(long, global = true, default_value_t = 30.0)]
    max_secs: f64,
    /// Size of each write/read call, in bytes.
    #[arg(long, global = true, default_value_t = 128 * 1024)]
    chunk: usize,
}

#[derive(Debug, Subcommand)]
enum Mode {
    /// Client→server throughput: write BYTES to a sink.
    Upload {
        addr: SocketAddr,
        bytes: u64,
        /// Number of parallel connections (the bytes are split between them).
        #[arg(short = 'c', long, default_value_t = 1)]
        conns: usize,
    },
    /// Server→client throughput: read BYTES from a source.
    Download {
        addr: SocketAddr,
        bytes: u64,
        #[arg(short = 'c', long, default_value_t = 1)]
        conns: usize,
    },
    /// `upload` with several connections.
    ParallelUpload {
        addr: SocketAddr,
        bytes: u64,
        #[arg(short = 'c', long, default_value_t = 4)]
        conns: usize,
    },
    /// `download` with several connections.
    ParallelDownload {
        addr: SocketAddr,
        bytes: u64,
        #[arg(short = 'c', long, default_value_t = 4)]
        conns: usize,
    },
    /// Connections per second: connect and close immediately, COUNT times.
    Connrate {
        addr: SocketAddr,
        count: u64,
        /// Number of threads connecting concurrently.
        #[arg(short = 'c', long, default_value_t = 1)]
        concurrency: usize,
        /// Local IPv4 address to connect from. A fresh address per measurement gives a fresh
        /// port space: each closed client port sits in TIME-WAIT for 60 s.
        #[arg(long)]
        bind: Option<Ipv4Addr>,
    },
    /// Wait until ADDR accepts a connection (at most --max-secs).
    Wait { addr: SocketAddr },
}

const IO_TIMEOUT: Duration = Duration::from_secs(10);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

fn main() -> ExitCode {
    let args = Args::parse();
    let deadline = Duration::from_secs_f64(args.max_secs.max(0.1));
    let cpu_before = args.server_pid.and_then(procstat::cpu_seconds);
    let result = match args.mode {
        Mode::Upload { addr, bytes, conns } | Mode::ParallelUpload { addr, bytes, conns } => {
            transfer(Dir::Upload, addr, bytes, conns, args.chunk, deadline)
        }
        Mode::Download { addr, bytes, conns } | Mode::ParallelDownload { addr, bytes, conns } => {
            transfer(Dir::Download, addr, bytes, conns, args.chunk, deadline)
        }
        Mode::Connrate {
            addr,
            count,
            concurrency,
            bind,
        } => connrate(addr, bind, count, concurrency, deadline),
        Mode::Wait { addr } => wait(addr, deadline),
    };
    match result {
        Ok(line) => {
            let cpu = match (cpu_before, args.server_pid.and_then(procstat::cpu_seconds)) {
                (Some(a), Some(b)) => Some(b - a),
                _ => None,
            };
            let line = if args.server_pid.is_some() {
                line.opt("server_cpu_s", cpu)
            } else {
                line
            };
            line.print();
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("bench-client: {e}");
            ExitCode::FAILURE
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dir {
    Upload,
    Download,
}

fn connect(addr: SocketAddr) -> io::Result<TcpStream> {
    let s = TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT)?;
    s.set_read_timeout(Some(IO_TIMEOUT))?;
    s.set_write_timeout(Some(IO_TIMEOUT))?;
    Ok(s)
}

/// Moves `bytes` in direction `dir` over `conns` connections; all connections are set up
/// first and the clock starts when the first byte is about to move.
fn transfer(
    dir: Dir,
    addr: SocketAddr,
    bytes: u64,
    conns: usize,
    chunk: usize,
    max: Duration,
) -> io::Result<Line> {
    let conns = conns.max(1);
    let streams = (0..conns)
        .map(|_| connect(addr))
        .collect::<io::Result<Vec<_>>>()?;
    let moved = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let deadline = start + max;
    let per = bytes / conns as u64;
    let handles: Vec<_> = streams
        .into_iter()
        .enumerate()
        .map(|(i, s)| {
            // The first connection also carries the remainder.
            let share = if i == 0 {
                per + bytes % conns as u64
            } else {
                per
            };
            let moved = Arc::clone(&moved);
            thread::spawn(move || match dir {
                Dir::Upload => upload_one(s, share, chunk, deadline, &moved),
                Dir::Download => download_one(s, share, chunk, deadline, &moved),
            })
        })
        .collect();
    let mut complete = true;
    let mut first_err = None;
    for h in handles {
        match h.join() {
            Ok(Ok(done)) => complete &= done,
            Ok(Err(e)) => {
                complete = false;
                first_err.get_or_insert(e);
            }
            Err(_) => {
                complete = false;
                first_err.get_or_insert(io::Error::other("worker panicked"));
            }
        }
    }
    let secs = start.elapsed().as_secs_f64();
    let moved = moved.load(Ordering::Relaxed);
    if moved == 0 {
        return Err(first_err.unwrap_or_else(|| io::Error::other("no data moved")));
    }
    Ok(Line::new()
        .str(
            "mode",
            match dir {
                Dir::Upload => "upload",
                Dir::Download => "download",
            },
        )
        .int("conns", conns as u64)
        .int("bytes", moved)
        .int("requested", bytes)
        .bool("complete", complete && moved == bytes)
        .num("secs", secs)
        .num("gbps", moved as f64 * 8.0 / secs / 1e9)
        .str(
            "error",
            &first_err.map(|e| e.to_string()).unwrap_or_default(),
        ))
}

/// Writes `n` bytes, shuts down the write side and waits for the server to close. Returns
/// whether everything was written and the close seen before the deadline.
fn upload_one(
    mut s: TcpStream,
    n: u64,
    chunk: usize,
    deadline: Instant,
    moved: &AtomicU64,
) -> io::Result<bool> {
    let buf = synack_bench::pattern_buffer(chunk);
    let mut left = n;
    while left > 0 {
        if Instant::now() >= deadline {
            return Ok(false);
        }
        let want = left.min(chunk as u64) as usize;
        let off = ((n - left) % 95) as usize;
        let w = s.write(&buf[off..off + want])?;
        if w == 0 {
            return Err(io::Error::new(io::ErrorKind::WriteZero, "write returned 0"));
        }
        left -= w as u64;
        moved.fetch_add(w as u64, Ordering::Relaxed);
    }
    s.shutdown(Shutdown::Write)?;
    // The sink closes once it has read everything: that is the end of the transfer.
    let mut sink = [0u8; 4096];
    loop {
        if Instant::now() >= deadline {
            return Ok(false);
        }
        match s.read(&mut sink) {
            Ok(0) => return Ok(true),
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// Reads `n` bytes, then closes.
fn download_one(
    mut s: TcpStream,
    n: u64,
    chunk: usize,
    deadline: Instant,
    moved: &AtomicU64,
) -> io::Result<bool> {
    let mut buf = vec![0u8; chunk];
    let mut left = n;
    while left > 0 {
        if Instant::now() >= deadline {
            return Ok(false);
        }
        let want = left.min(chunk as u64) as usize;
        match s.read(&mut buf[..want]) {
            Ok(0) => {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "source closed",
                ));
            }
            Ok(r) => {
                left -= r as u64;
                moved.fetch_add(r as u64, Ordering::Relaxed);
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(true)
}

/// Connects to `dst`, from local address `src` if given (the port is still chosen at connect
/// time, per 4-tuple, thanks to IP_BIND_ADDRESS_NO_PORT).
fn connect_from(src: Option<Ipv4Addr>, dst: SocketAddr) -> io::Result<TcpStream> {
    let (Some(src), SocketAddr::V4(dst)) = (src, dst) else {
        return TcpStream::connect_timeout(&dst, CONNECT_TIMEOUT);
    };
    let sockaddr = |a: SocketAddrV4| libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: a.port().to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from(*a.ip()).to_be(),
        },
        sin_zero: [0; 8],
    };
    let len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
    // SAFETY: plain socket(2); the descriptor is owned right away.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` is a fresh descriptor nothing else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let one: libc::c_int = 1;
    let timeout = libc::timeval {
        tv_sec: CONNECT_TIMEOUT.as_secs() as libc::time_t,
        tv_usec: 0,
    };
    let local = sockaddr(SocketAddrV4::new(src, 0));
    let remote = sockaddr(dst);
    // SAFETY: each call gets a valid pointer to a value of the size it is told; a blocking
    // connect is bounded by SO_SNDTIMEO.
    let rc = unsafe {
        let raw = fd.as_raw_fd();
        if libc::setsockopt(
            raw,
            libc::IPPROTO_IP,
            libc::IP_BIND_ADDRESS_NO_PORT,
            (&one as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        ) < 0
            || libc::setsockopt(
                raw,
                libc::SOL_SOCKET,
                libc::SO_SNDTIMEO,
                (&timeout as *const libc::timeval).cast(),
                std::mem::size_of::<libc::timeval>() as libc::socklen_t,
            ) < 0
            || libc::bind(raw, (&local as *const libc::sockaddr_in).cast(), len) < 0
        {
            -1
        } else {
            libc::connect(raw, (&remote as *const libc::sockaddr_in).cast(), len)
        }
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(TcpStream::from(fd))
}

/// Connect-and-close `count` times from `concurrency` threads.
fn connrate(
    addr: SocketAddr,
    bind: Option<Ipv4Addr>,
    count: u64,
    concurrency: usize,
    max: Duration,
) -> io::Result<Line> {
    let concurrency = concurrency.max(1);
    let next = Arc::new(AtomicU64::new(0));
    let ok = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let deadline = start + max;
    let handles: Vec<_> = (0..concurrency)
        .map(|_| {
            let (next, ok, failed) = (Arc::clone(&next), Arc::clone(&ok), Arc::clone(&failed));
            thread::spawn(move || {
                while next.fetch_add(1, Ordering::Relaxed) < count && Instant::now() < deadline {
                    match connect_from(bind, addr) {
                        // Dropping the stream closes it (FIN) at once.
                        Ok(s) => {
                            drop(s);
                            ok.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(_) => {
                            failed.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            })
        })
        .collect();
    for h in handles {
        let _ = h.join();
    }
    let secs = start.elapsed().as_secs_f64();
    let ok = ok.load(Ordering::Relaxed);
    let failed = failed.load(Ordering::Relaxed);
    if ok == 0 {
        return Err(io::Error::other(format!(
            "no connection succeeded ({failed} failed)"
        )));
    }
    Ok(Line::new()
        .str("mode", "connrate")
        .int("concurrency", concurrency as u64)
        .int("connections", ok)
        .int("failed", failed)
        .int("requested", count)
        .bool("complete", ok == count)
        .num("secs", secs)
        .num("conns_per_s", ok as f64 / secs))
}

/// Retries connecting until it works or `max` passes.
fn wait(addr: SocketAddr, max: Duration) -> io::Result<Line> {
    let start = Instant::now();
    let mut tries = 0u64;
    loop {
        tries += 1;
        match TcpStream::connect_timeout(&addr, Duration::from_millis(500)) {
            Ok(_) => {
                return Ok(Line::new()
                    .str("mode", "wait")
                    .int("tries", tries)
                    .num("secs", start.elapsed().as_secs_f64()));
            }
            Err(e) if start.elapsed() >= max => return Err(e),
            Err(_) => thread::sleep(Duration::from_millis(100)),
        }
    }
}
