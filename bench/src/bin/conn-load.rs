//! A load generator that can hold a million TCP connections on one machine (issue 23):
//! epoll-driven worker processes of at most `--per-worker` sockets each (a process may hold
//! 20,000 descriptors here), ports chosen at connect time (`IP_BIND_ADDRESS_NO_PORT`) from
//! several source addresses, handshakes ramped (`--in-flight` SYNs outstanding per worker) so
//! that the clients never starve the daemon they share the CPUs with.
//!
//! ```text
//! conn-load --addr 198.18.0.2 --port 7 --stages 100000,1000000 \
//!     --bind 198.18.0.11,198.18.0.12,... [--per-worker 15000] [--in-flight 256] \
//!     [--timeout 600] [--rss-pid PID]
//! ```
//!
//! The coordinator re-executes itself as workers (`--worker`) and drives them in steps, each
//! bounded in time, printing one JSON line per step: `open N` (the workers hold N established
//! connections in all), `echo` (every connection sends a line of its own and reads it back,
//! checked), `close`. Only the source addresses given are used; the caller keeps them inside
//! its own network namespace.
//!
//! `--churn N` instead makes N short HTTP requests with `Connection: close` (port 80), at most
//! `--in-flight` at once per worker: the server closes first, so with synack each connection
//! ends in its TIME-WAIT, while the client's side closes second and keeps nothing. Ports come
//! from the source addresses in turn, so with enough of them no 4-tuple is used twice (the
//! ab-style churn of issue 23, beyond one address's ports).

use std::io::{BufRead, BufReader, Write};
use std::net::{IpAddr, SocketAddr};
use std::os::fd::RawFd;
use std::process::{Child, ChildStdin, ChildStdout, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use clap::Parser;
use synack_bench::json::Line;

#[derive(Debug, Parser)]
#[command(name = "conn-load")]
struct Args {
    #[arg(long, default_value = "198.18.0.2")]
    addr: IpAddr,
    #[arg(long, default_value_t = 7)]
    port: u16,
    /// Comma-separated totals of established connections to reach, in order.
    #[arg(long, default_value = "1000")]
    stages: String,
    /// Comma-separated source addresses (each gives its own port space).
    #[arg(long, default_value = "")]
    bind: String,
    /// The most sockets one worker process holds.
    #[arg(long, default_value_t = 15_000)]
    per_worker: usize,
    /// SYNs outstanding at once per worker (the ramp).
    #[arg(long, default_value_t = 256)]
    in_flight: usize,
    /// Seconds each step may take.
    #[arg(long, default_value_t = 600.0)]
    timeout: f64,
    /// Report this process's VmRSS (the daemon) at each step.
    #[arg(long)]
    rss_pid: Option<u32>,
    /// Report this interface's TX drops at each step (`ip -s link`: the packets the kernel
    /// dropped at the TUN queue because the daemon did not read them in time).
    #[arg(long)]
    tun: Option<String>,
    /// After the echo, measure the daemon's CPU (`--rss-pid`) over this many seconds with every
    /// connection idle (0: not measured).
    #[arg(long, default_value_t = 0.0)]
    idle: f64,
    /// The workers' nice value: the daemon they share the CPUs with goes first, so the
    /// clients cannot starve it (the kernel's queue in front of it then overflows).
    #[arg(long, default_value_t = 10)]
    nice: i32,
    /// Make this many short `Connection: close` HTTP requests instead of holding connections
    /// (0: hold connections, the default).
    #[arg(long, default_value_t = 0)]
    churn: u64,
    #[arg(long, hide = true)]
    worker: Option<usize>,
}

const IP_BIND_ADDRESS_NO_PORT: libc::c_int = 24;

fn main() -> ExitCode {
    let args = Args::parse();
    let result = match args.worker {
        Some(id) => worker(&args, id),
        None => coordinator(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("conn-load: {e}");
            ExitCode::FAILURE
        }
    }
}

fn sources(args: &Args) -> Result<Vec<IpAddr>, String> {
    args.bind
        .split(',')
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse()
                .map_err(|_| format!("--bind: '{s}' is not an address"))
        })
        .collect()
}

/// The step's shared figures: the daemon's RSS, the TUN's TX drops, and the kernel's slab
/// (`Slab:` of /proc/meminfo: the client sockets' cost, machine-wide).
fn figures(args: &Args, mut line: Line) -> Line {
    if let Some(pid) = args.rss_pid {
        line = line.int("rss_kib", vm_rss_kib(pid).unwrap_or(0));
    }
    if let Some(dev) = &args.tun {
        let path = format!("/sys/class/net/{dev}/statistics/tx_dropped");
        let drops = std::fs::read_to_string(path).ok();
        line = line.int(
            "tun_tx_dropped",
            drops.and_then(|d| d.trim().parse().ok()).unwrap_or(0),
        );
    }
    line.int("slab_kib", meminfo_kib("Slab:").unwrap_or(0))
}

fn meminfo_kib(key: &str) -> Option<u64> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = info.lines().find(|l| l.starts_with(key))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// A process's CPU time so far (user + system), in clock ticks (/proc/PID/stat).
fn cpu_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The fields after the command name, which is in parentheses and may hold spaces.
    let rest = stat.rsplit_once(')')?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = f.get(11)?.parse().ok()?;
    let stime: u64 = f.get(12)?.parse().ok()?;
    Some(utime + stime)
}

fn vm_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

struct Worker {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl Worker {
    fn ask(&mut self, cmd: &str) -> Result<String, String> {
        writeln!(self.stdin, "{cmd}").map_err(|e| format!("worker gone: {e}"))?;
        self.stdin
            .flush()
            .map_err(|e| format!("worker gone: {e}"))?;
        let mut line = String::new();
        self.stdout
            .read_line(&mut line)
            .map_err(|e| format!("worker gone: {e}"))?;
        Ok(line)
    }
}

/// A number from a worker's `key=value` answer.
fn field(answer: &str, key: &str) -> u64 {
    answer
        .split_whitespace()
        .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('=')?.parse().ok())
        .unwrap_or(0)
}

fn coordinator(args: &Args) -> Result<(), String> {
    let stages: Vec<usize> = args
        .stages
        .split(',')
        .map(|s| s.trim().parse().map_err(|_| format!("--stages: '{s}'")))
        .collect::<Result<_, _>>()?;
    let total = stages.iter().copied().max().unwrap_or(0);
    let per = args.per_worker.clamp(1, 18_000);
    // Churning holds at most `--in-flight` sockets a worker: a few workers do.
    let procs = if args.churn > 0 {
        sources(args)?.len().clamp(1, 4)
    } else {
        total.div_ceil(per).max(1)
    };
    let srcs = sources(args)?;
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let mut workers = Vec::new();
    for id in 0..procs {
        // Each worker takes its share of the source addresses, so no two share a port space.
        let mine: Vec<String> = srcs
            .iter()
            .enumerate()
            .filter(|(i, _)| srcs.len() < procs || i % procs == id)
            .map(|(_, a)| a.to_string())
            .collect();
        let mut child = Command::new(&exe)
            .args([
                "--worker",
                &id.to_string(),
                "--addr",
                &args.addr.to_string(),
            ])
            .args(["--port", &args.port.to_string(), "--bind", &mine.join(",")])
            .args(["--in-flight", &args.in_flight.to_string()])
            .args(["--per-worker", &per.to_string()])
            .args(["--nice", &args.nice.to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot start a worker: {e}"))?;
        let stdin = child.stdin.take().ok_or("no stdin")?;
        let stdout = BufReader::new(child.stdout.take().ok_or("no stdout")?);
        workers.push(Worker {
            child,
            stdin,
            stdout,
        });
    }
    let mut status = Ok(());
    let timeout = args.timeout;
    if args.churn > 0 {
        return churn(args, &mut workers);
    }
    for target in stages {
        let start = Instant::now();
        // Shares: the target spread evenly; each worker ramps its own.
        let mut answers = Vec::new();
        for (i, w) in workers.iter_mut().enumerate() {
            let share = target / procs + usize::from(i < target % procs);
            writeln!(w.stdin, "open {share} {timeout}").map_err(|e| e.to_string())?;
            w.stdin.flush().map_err(|e| e.to_string())?;
        }
        for w in workers.iter_mut() {
            let mut line = String::new();
            w.stdout.read_line(&mut line).map_err(|e| e.to_string())?;
            answers.push(line);
        }
        let conns: u64 = answers.iter().map(|a| field(a, "conns")).sum();
        let failed: u64 = answers.iter().map(|a| field(a, "failed")).sum();
        let mut line = Line::new()
            .str("step", "open")
            .int("target", target as u64)
            .int("conns", conns)
            .int("failed", failed)
            .int("procs", procs as u64)
            .num("secs", start.elapsed().as_secs_f64());
        line = figures(args, line);
        println!("{}", line.finish());
        if (conns as usize) < target {
            status = Err(format!("held {conns} of {target}"));
            break;
        }
    }
    let start = Instant::now();
    let mut ok = 0;
    let mut held = 0;
    for w in workers.iter_mut() {
        let a = w.ask(&format!("echo {timeout}"))?;
        ok += field(&a, "ok");
        held += field(&a, "conns");
    }
    let line = Line::new()
        .str("step", "echo")
        .int("conns", held)
        .int("ok", ok)
        .num("secs", start.elapsed().as_secs_f64());
    println!("{}", figures(args, line).finish());
    if let Some(pid) = args.rss_pid.filter(|_| args.idle > 0.0) {
        // Every connection idle: the daemon's CPU over `--idle` seconds (what
        // `perf stat -e task-clock -p PID` counts).
        let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
        let before = cpu_ticks(pid).unwrap_or(0);
        std::thread::sleep(Duration::from_secs_f64(args.idle));
        let used = cpu_ticks(pid).unwrap_or(0).saturating_sub(before) as f64 / hz;
        let line = Line::new()
            .str("step", "idle")
            .int("conns", held)
            .num("secs", args.idle)
            .num("cpu_pct", 100.0 * used / args.idle);
        println!("{}", figures(args, line).finish());
    }
    if ok != held && status.is_ok() {
        status = Err(format!("{} of {held} echoes wrong or missing", held - ok));
    }
    for w in workers.iter_mut() {
        let _ = w.ask("close");
        let _ = w.child.wait();
    }
    status
}

/// `--churn`: each worker makes its share of the requests; one JSON line for the step.
fn churn(args: &Args, workers: &mut [Worker]) -> Result<(), String> {
    let start = Instant::now();
    let procs = workers.len() as u64;
    for (i, w) in workers.iter_mut().enumerate() {
        let share = args.churn / procs + u64::from((i as u64) < args.churn % procs);
        writeln!(w.stdin, "churn {share} {}", args.timeout).map_err(|e| e.to_string())?;
        w.stdin.flush().map_err(|e| e.to_string())?;
    }
    let (mut done, mut failed) = (0, 0);
    for w in workers.iter_mut() {
        let mut line = String::new();
        w.stdout.read_line(&mut line).map_err(|e| e.to_string())?;
        done += field(&line, "done");
        failed += field(&line, "failed");
    }
    let secs = start.elapsed().as_secs_f64();
    let line = Line::new()
        .str("step", "churn")
        .int("target", args.churn)
        .int("done", done)
        .int("failed", failed)
        .num("secs", secs)
        .num("per_s", done as f64 / secs.max(1e-9));
    println!("{}", figures(args, line).finish());
    for w in workers.iter_mut() {
        let _ = w.ask("close");
        let _ = w.child.wait();
    }
    if done < args.churn {
        return Err(format!("{done} of {} requests completed", args.churn));
    }
    Ok(())
}

const CHURN_REQUEST: &[u8] = b"GET / HTTP/1.1\r\nHost: synack\r\nConnection: close\r\n\r\n";

/// A worker's churn: `want` requests, at most `in_flight` at once; returns (done, failed).
fn churn_worker(
    args: &Args,
    ep: &Epoll,
    srcs: &[IpAddr],
    next_src: &mut usize,
    want: u64,
    deadline: Instant,
) -> (u64, u64) {
    let dst = SocketAddr::new(args.addr, args.port);
    // Slot i holds a socket and whether it is still connecting.
    let mut slots: Vec<Option<(RawFd, bool)>> = vec![None; args.in_flight.max(1)];
    let (mut started, mut done, mut failed) = (0u64, 0u64, 0u64);
    let mut events = vec![libc::epoll_event { events: 0, u64: 0 }; 1024];
    let mut buf = [0u8; 16384];
    let close = |fd: RawFd| {
        // SAFETY: our own descriptor (closing removes it from the epoll set).
        unsafe { libc::close(fd) };
    };
    while done + failed < want && Instant::now() < deadline {
        for (i, slot) in slots.iter_mut().enumerate() {
            if slot.is_some() || started >= want {
                continue;
            }
            let src = (!srcs.is_empty()).then(|| srcs[*next_src % srcs.len()]);
            *next_src += 1;
            started += 1;
            match start_connect(src, dst) {
                Ok(fd) => {
                    let mut ev = libc::epoll_event {
                        events: (libc::EPOLLOUT | libc::EPOLLIN | libc::EPOLLET) as u32,
                        u64: i as u64,
                    };
                    // SAFETY: valid descriptors and event.
                    unsafe { libc::epoll_ctl(ep.0, libc::EPOLL_CTL_ADD, fd, &mut ev) };
                    *slot = Some((fd, true));
                }
                Err(_) => failed += 1,
            }
        }
        // SAFETY: `events` has room for its length.
        let n = unsafe { libc::epoll_wait(ep.0, events.as_mut_ptr(), events.len() as i32, 100) };
        for ev in events.iter().take(n.max(0) as usize) {
            let i = ev.u64 as usize;
            let Some(Some((fd, connecting))) = slots.get(i).copied() else {
                continue;
            };
            if connecting {
                let mut err: libc::c_int = 0;
                let mut len = 4 as libc::socklen_t;
                // SAFETY: reading an int option of our own socket.
                unsafe {
                    libc::getsockopt(
                        fd,
                        libc::SOL_SOCKET,
                        libc::SO_ERROR,
                        (&raw mut err).cast(),
                        &mut len,
                    )
                };
                if err != 0 || ev.events & libc::EPOLLOUT as u32 == 0 {
                    if err != 0 {
                        close(fd);
                        slots[i] = None;
                        failed += 1;
                    }
                    continue;
                }
                // SAFETY: writing a constant buffer to our own socket.
                let w =
                    unsafe { libc::write(fd, CHURN_REQUEST.as_ptr().cast(), CHURN_REQUEST.len()) };
                if w != CHURN_REQUEST.len() as isize {
                    close(fd);
                    slots[i] = None;
                    failed += 1;
                    continue;
                }
                slots[i] = Some((fd, false));
            }
            // Read the response to its end: the server's FIN.
            loop {
                // SAFETY: reading into our own buffer.
                let r = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
                if r > 0 {
                    continue;
                }
                if r == 0 {
                    close(fd);
                    slots[i] = None;
                    done += 1;
                } else if std::io::Error::last_os_error().raw_os_error() != Some(libc::EAGAIN) {
                    close(fd);
                    slots[i] = None;
                    failed += 1;
                }
                break;
            }
        }
    }
    for (fd, _) in slots.into_iter().flatten() {
        close(fd);
    }
    (done, failed)
}

/// One connection of a worker.
struct Conn {
    fd: RawFd,
    established: bool,
    /// The echo line's bytes read back so far.
    echoed: usize,
}

struct Epoll(RawFd);

impl Drop for Epoll {
    fn drop(&mut self) {
        // SAFETY: our own descriptor.
        unsafe { libc::close(self.0) };
    }
}

fn check(rc: libc::c_int, what: &str) -> Result<libc::c_int, String> {
    if rc < 0 {
        Err(format!("{what}: {}", std::io::Error::last_os_error()))
    } else {
        Ok(rc)
    }
}

/// A nonblocking socket bound to `src` (port chosen at connect time), connecting to `dst`.
fn start_connect(src: Option<IpAddr>, dst: SocketAddr) -> Result<RawFd, String> {
    let family = if dst.is_ipv4() {
        libc::AF_INET
    } else {
        libc::AF_INET6
    };
    // SAFETY: plain socket calls on a descriptor we own; the sockaddr is fully initialised.
    unsafe {
        let fd = check(
            libc::socket(
                family,
                libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
                0,
            ),
            "socket",
        )?;
        let one: libc::c_int = 1;
        libc::setsockopt(
            fd,
            libc::IPPROTO_IP,
            IP_BIND_ADDRESS_NO_PORT,
            (&raw const one).cast(),
            4,
        );
        if let Some(src) = src {
            let (sa, len) = sockaddr(SocketAddr::new(src, 0));
            if libc::bind(fd, (&raw const sa).cast(), len) < 0 {
                let e = std::io::Error::last_os_error();
                libc::close(fd);
                return Err(format!("bind {src}: {e}"));
            }
        }
        let (sa, len) = sockaddr(dst);
        if libc::connect(fd, (&raw const sa).cast(), len) < 0 {
            let e = std::io::Error::last_os_error();
            if e.raw_os_error() != Some(libc::EINPROGRESS) {
                libc::close(fd);
                return Err(format!("connect: {e}"));
            }
        }
        Ok(fd)
    }
}

fn sockaddr(a: SocketAddr) -> (libc::sockaddr_storage, libc::socklen_t) {
    // SAFETY: an all-zero sockaddr_storage is valid; we fill the family's fields.
    let mut ss: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    match a {
        SocketAddr::V4(v4) => {
            let sin = (&raw mut ss).cast::<libc::sockaddr_in>();
            // SAFETY: sockaddr_storage is large enough and aligned for sockaddr_in.
            unsafe {
                (*sin).sin_family = libc::AF_INET as libc::sa_family_t;
                (*sin).sin_port = v4.port().to_be();
                (*sin).sin_addr.s_addr = u32::from_ne_bytes(v4.ip().octets());
            }
            (
                ss,
                std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
            )
        }
        SocketAddr::V6(v6) => {
            let sin6 = (&raw mut ss).cast::<libc::sockaddr_in6>();
            // SAFETY: as above, for sockaddr_in6.
            unsafe {
                (*sin6).sin6_family = libc::AF_INET6 as libc::sa_family_t;
                (*sin6).sin6_port = v6.port().to_be();
                (*sin6).sin6_addr.s6_addr = v6.ip().octets();
            }
            (
                ss,
                std::mem::size_of::<libc::sockaddr_in6>() as libc::socklen_t,
            )
        }
    }
}

fn line_of(i: usize) -> String {
    format!("conn-load {i:09}\n")
}

fn worker(args: &Args, _id: usize) -> Result<(), String> {
    // SAFETY: lowers this process's own priority; no pointers involved.
    unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, args.nice) };
    let srcs = sources(args)?;
    let dst = SocketAddr::new(args.addr, args.port);
    // SAFETY: a new epoll descriptor, closed on drop.
    let ep = Epoll(check(
        unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) },
        "epoll",
    )?);
    let mut conns: Vec<Conn> = Vec::new();
    let mut failed = 0u64;
    let mut next_src = 0usize;
    let stdin = std::io::stdin();
    let mut out = std::io::stdout();
    let mut events = vec![libc::epoll_event { events: 0, u64: 0 }; 1024];
    for cmd in stdin.lock().lines() {
        let cmd = cmd.map_err(|e| e.to_string())?;
        let mut words = cmd.split_whitespace();
        let verb = words.next().unwrap_or("");
        let mut arg = || {
            words
                .next()
                .and_then(|w| w.parse::<f64>().ok())
                .unwrap_or(0.0)
        };
        match verb {
            "open" => {
                let want = (arg() as usize).min(args.per_worker);
                let deadline = Instant::now() + Duration::from_secs_f64(arg().max(1.0));
                let mut pending = 0usize;
                while conns.iter().filter(|c| c.established).count() < want
                    && Instant::now() < deadline
                {
                    // Ramp: at most `in_flight` SYNs outstanding.
                    while pending < args.in_flight && conns.len() < want {
                        let src = (!srcs.is_empty()).then(|| srcs[next_src % srcs.len()]);
                        next_src += 1;
                        match start_connect(src, dst) {
                            Ok(fd) => {
                                let mut ev = libc::epoll_event {
                                    events: (libc::EPOLLOUT | libc::EPOLLET) as u32,
                                    u64: conns.len() as u64,
                                };
                                // SAFETY: valid descriptors and event.
                                unsafe { libc::epoll_ctl(ep.0, libc::EPOLL_CTL_ADD, fd, &mut ev) };
                                conns.push(Conn {
                                    fd,
                                    established: false,
                                    echoed: 0,
                                });
                                pending += 1;
                            }
                            Err(_) => {
                                failed += 1;
                                break;
                            }
                        }
                    }
                    // SAFETY: `events` has room for its length.
                    let n = unsafe {
                        libc::epoll_wait(ep.0, events.as_mut_ptr(), events.len() as i32, 100)
                    };
                    for ev in events.iter().take(n.max(0) as usize) {
                        let i = ev.u64 as usize;
                        let Some(c) = conns.get_mut(i) else { continue };
                        if c.established {
                            continue;
                        }
                        let mut err: libc::c_int = 0;
                        let mut len = 4 as libc::socklen_t;
                        // SAFETY: reading an int option of our own socket.
                        unsafe {
                            libc::getsockopt(
                                c.fd,
                                libc::SOL_SOCKET,
                                libc::SO_ERROR,
                                (&raw mut err).cast(),
                                &mut len,
                            )
                        };
                        pending = pending.saturating_sub(1);
                        if err == 0 {
                            c.established = true;
                            let mut ev = libc::epoll_event {
                                events: (libc::EPOLLIN | libc::EPOLLET) as u32,
                                u64: i as u64,
                            };
                            // SAFETY: valid descriptors and event.
                            unsafe { libc::epoll_ctl(ep.0, libc::EPOLL_CTL_MOD, c.fd, &mut ev) };
                        } else {
                            failed += 1;
                            // Retry it: close and reconnect in the same slot.
                            // SAFETY: our own descriptor.
                            unsafe { libc::close(c.fd) };
                            let src = (!srcs.is_empty()).then(|| srcs[next_src % srcs.len()]);
                            next_src += 1;
                            if let Ok(fd) = start_connect(src, dst) {
                                c.fd = fd;
                                let mut ev = libc::epoll_event {
                                    events: (libc::EPOLLOUT | libc::EPOLLET) as u32,
                                    u64: i as u64,
                                };
                                // SAFETY: valid descriptors and event.
                                unsafe { libc::epoll_ctl(ep.0, libc::EPOLL_CTL_ADD, fd, &mut ev) };
                                pending += 1;
                            }
                        }
                    }
                }
                let held = conns.iter().filter(|c| c.established).count();
                writeln!(out, "conns={held} failed={failed}").map_err(|e| e.to_string())?;
                out.flush().map_err(|e| e.to_string())?;
            }
            "echo" => {
                let deadline = Instant::now() + Duration::from_secs_f64(arg().max(1.0));
                let want = conns.len();
                for c in conns.iter_mut() {
                    c.echoed = 0;
                }
                // Ramped as the handshakes are: at most `--in-flight` lines unanswered per
                // worker, so a million lines do not land in the daemon's queue at once.
                let mut next = 0usize;
                let (mut done, mut ok) = (0usize, 0usize);
                let mut buf = [0u8; 64];
                let mut sweep = false;
                while done < want && Instant::now() < deadline {
                    while next < want && next - done < args.in_flight.max(1) {
                        let l = line_of(next);
                        if let Some(c) = conns.get_mut(next) {
                            // SAFETY: writing our own buffer to our own socket.
                            let n = unsafe { libc::write(c.fd, l.as_ptr().cast(), l.len()) };
                            if n != l.len() as isize {
                                c.echoed = usize::MAX;
                                done += 1;
                            }
                        }
                        next += 1;
                    }
                    let ready: Vec<usize> = if sweep {
                        // Nothing came for a while: read every line still unanswered once,
                        // in case an edge was missed.
                        sweep = false;
                        (0..next)
                            .filter(|&i| conns.get(i).is_some_and(|c| c.echoed < line_of(i).len()))
                            .collect()
                    } else {
                        // SAFETY: `events` has room for its length.
                        let n = unsafe {
                            libc::epoll_wait(ep.0, events.as_mut_ptr(), events.len() as i32, 100)
                        };
                        sweep = n == 0;
                        events
                            .iter()
                            .take(n.max(0) as usize)
                            .map(|e| e.u64 as usize)
                            .collect()
                    };
                    for i in ready {
                        let Some(c) = conns.get_mut(i) else { continue };
                        let l = line_of(i);
                        while i < next && c.echoed < l.len() {
                            // SAFETY: reading into our own buffer.
                            let n = unsafe { libc::read(c.fd, buf.as_mut_ptr().cast(), buf.len()) };
                            if n <= 0 {
                                break;
                            }
                            let got = &buf[..n as usize];
                            if l.as_bytes().get(c.echoed..c.echoed + got.len()) == Some(got) {
                                c.echoed += got.len();
                                if c.echoed == l.len() {
                                    ok += 1;
                                    done += 1;
                                }
                            } else {
                                c.echoed = usize::MAX;
                                done += 1;
                                break;
                            }
                        }
                    }
                }
                writeln!(out, "conns={want} ok={ok}").map_err(|e| e.to_string())?;
                out.flush().map_err(|e| e.to_string())?;
            }
            "churn" => {
                let want = arg() as u64;
                let deadline = Instant::now() + Duration::from_secs_f64(arg().max(1.0));
                let (done, failed) = churn_worker(args, &ep, &srcs, &mut next_src, want, deadline);
                writeln!(out, "done={done} failed={failed}").map_err(|e| e.to_string())?;
                out.flush().map_err(|e| e.to_string())?;
            }
            "close" => {
                for c in conns.drain(..) {
                    // SAFETY: our own descriptor.
                    unsafe { libc::close(c.fd) };
                }
                writeln!(out, "closed").map_err(|e| e.to_string())?;
                out.flush().map_err(|e| e.to_string())?;
                return Ok(());
            }
            _ => return Err(format!("unknown command '{cmd}'")),
        }
    }
    Ok(())
}
