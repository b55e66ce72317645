//! The impairing bridge of the loss suite (issue 19): forwards IP packets between two TUN
//! devices, dropping them at random (seeded Bernoulli loss), holding each for a fixed one-way
//! delay and, optionally, passing them through a rate-limited bottleneck with a drop-tail
//! queue of so many packets. `tc netem` does not exist on these kernels; this stands in for it.
//!
//! Each side is `NETNS:IFNAME`: the bridge enters the namespace (`/run/netns/NAME` or any
//! namespace file; empty: its own) and attaches to the TUN there, creating it if needed.
//! `scripts/bench.sh --suite loss` makes persistent TUNs (`ip tuntap add`) and configures them
//! once, so that a bridge can be restarted with other impairments without touching addresses.
//!
//! A packet's path, per direction: loss → bottleneck queue (serialised at `--rate`, at most
//! `--queue` packets waiting or in service, else dropped) → `--delay` → written to the other
//! TUN. With a fixed delay every packet leaves in the order it came, so each direction is one
//! FIFO ring of preallocated slots: the packet is read straight into its slot and written from
//! it, nothing is allocated per packet. One thread, epoll on both TUNs, a timerfd armed at the
//! earliest departure (nanosecond resolution) and a signalfd for SIGINT/SIGTERM.
//!
//! On SIGINT/SIGTERM it prints one JSON line: per direction the packets read, lost, dropped
//! at the queue (and for want of a slot), written, the deepest queue seen; and its own CPU
//! time (user + system) and wall time, so the benchmark can show it is not the bottleneck.

use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::process::ExitCode;

use clap::{Parser, ValueEnum};
use synack_bench::json::Line;

/// Impairing bridge between two TUN devices (seeded loss, fixed delay, optional bottleneck).
#[derive(Debug, Parser)]
#[command(name = "impair-bridge")]
struct Args {
    /// Side A as NETNS:IFNAME (NETNS a name under /run/netns, a path, or empty for this one).
    #[arg(long)]
    a: String,
    /// Side B as NETNS:IFNAME.
    #[arg(long)]
    b: String,
    /// Loss probability per packet, in percent (e.g. 1 or 0.5).
    #[arg(long, default_value_t = 0.0)]
    loss: f64,
    /// Which direction the loss applies to.
    #[arg(long, value_enum, default_value_t = LossDir::Both)]
    loss_dir: LossDir,
    /// Seed of the loss generator (each direction draws from its own stream).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Fixed one-way delay, in milliseconds (both directions).
    #[arg(long, default_value_t = 0.0)]
    delay_ms: f64,
    /// Bottleneck rate in Mbit/s, both directions (0: none).
    #[arg(long, default_value_t = 0.0)]
    rate_mbit: f64,
    /// Bottleneck queue in packets (waiting or being serialised); beyond it, drop-tail.
    #[arg(long, default_value_t = 100)]
    queue: usize,
    /// Largest packet, in bytes (the TUNs' MTU).
    #[arg(long, default_value_t = 1500)]
    mtu: usize,
    /// Packets each direction can hold in its delay line.
    #[arg(long, default_value_t = 16384)]
    slots: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum LossDir {
    Both,
    /// A → B only.
    AToB,
    /// B → A only.
    BToA,
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("impair-bridge: {e}");
            ExitCode::FAILURE
        }
    }
}

/// One direction: its loss generator, its bottleneck and its FIFO delay line.
struct Dir {
    name: &'static str,
    from: RawFd,
    to: RawFd,
    /// Loss threshold on a 64-bit uniform draw (0: no loss).
    loss_below: u64,
    rng: u64,
    /// Nanoseconds to serialise one byte at the bottleneck (0.0: no bottleneck).
    ns_per_byte: f64,
    queue_max: usize,
    /// When the bottleneck finishes the last packet given to it.
    link_free: u64,
    delay_ns: u64,
    slot_len: usize,
    buf: Vec<u8>,
    lens: Vec<u32>,
    /// Per slot: when the packet has left the bottleneck, and when it leaves the bridge.
    served: Vec<u64>,
    release: Vec<u64>,
    /// Ring indices (monotonic counters; slot = index % capacity): `head` is the next to
    /// write out, `qhead` the first still in the bottleneck, `tail` the next free.
    head: usize,
    qhead: usize,
    tail: usize,
    stats: DirStats,
}

#[derive(Debug, Default)]
struct DirStats {
    read: u64,
    lost: u64,
    queue_drops: u64,
    overflow: u64,
    written: u64,
    write_errors: u64,
    max_queue: usize,
}

impl Dir {
    fn capacity(&self) -> usize {
        self.lens.len()
    }

    /// Next draw of a xorshift64* generator.
    fn draw(&mut self) -> u64 {
        let mut x = self.rng;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Reads every packet waiting on `from` (at most a batch), admitting or dropping each.
    fn read_all(&mut self, scratch: &mut [u8]) -> io::Result<()> {
        for _ in 0..256 {
            let full = self.tail - self.head == self.capacity();
            let slot = self.tail % self.capacity();
            let dst: &mut [u8] = if full {
                &mut scratch[..]
            } else {
                let off = slot * self.slot_len;
                &mut self.buf[off..off + self.slot_len]
            };
            // SAFETY: `dst` is a valid writable buffer of `dst.len()` bytes.
            let n = unsafe { libc::read(self.from, dst.as_mut_ptr().cast(), dst.len()) };
            if n < 0 {
                let e = io::Error::last_os_error();
                return match e.kind() {
                    io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted => Ok(()),
                    _ => Err(e),
                };
            }
            self.stats.read += 1;
            if full {
                self.stats.overflow += 1;
                continue;
            }
            if self.loss_below != 0 && self.draw() < self.loss_below {
                self.stats.lost += 1;
                continue;
            }
            let now = now_ns();
            let served = if self.ns_per_byte > 0.0 {
                // Drop-tail: packets still waiting or in service at the bottleneck.
                while self.qhead < self.tail && self.served[self.qhead % self.capacity()] <= now {
                    self.qhead += 1;
                }
                let depth = self.tail - self.qhead;
                if depth >= self.queue_max {
                    self.stats.queue_drops += 1;
                    continue;
                }
                self.stats.max_queue = self.stats.max_queue.max(depth + 1);
                let start = now.max(self.link_free);
                self.link_free = start + (n as f64 * self.ns_per_byte) as u64;
                self.link_free
            } else {
                now
            };
            self.lens[slot] = n as u32;
            self.served[slot] = served;
            self.release[slot] = served + self.delay_ns;
            self.tail += 1;
        }
        Ok(())
    }

    /// Writes out every packet whose time has come; returns the next departure, if any.
    fn release_due(&mut self, now: u64) -> Option<u64> {
        while self.head < self.tail {
            let slot = self.head % self.capacity();
            if self.release[slot] > now {
                return Some(self.release[slot]);
            }
            let off = slot * self.slot_len;
            let pkt = &self.buf[off..off + self.lens[slot] as usize];
            // SAFETY: `pkt` is a valid readable buffer of `pkt.len()` bytes.
            let n = unsafe { libc::write(self.to, pkt.as_ptr().cast(), pkt.len()) };
            if n < 0 {
                self.stats.write_errors += 1;
            } else {
                self.stats.written += 1;
            }
            self.head += 1;
            self.qhead = self.qhead.max(self.head);
        }
        None
    }

    fn report(&self, line: Line) -> Line {
        let s = &self.stats;
        let p = self.name;
        line.int(&format!("{p}_read"), s.read)
            .int(&format!("{p}_lost"), s.lost)
            .int(&format!("{p}_queue_drops"), s.queue_drops)
            .int(&format!("{p}_overflow"), s.overflow)
            .int(&format!("{p}_written"), s.written)
            .int(&format!("{p}_write_errors"), s.write_errors)
            .int(&format!("{p}_max_queue"), s.max_queue as u64)
    }
}

fn now_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec, which `ts` is.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

fn cvt(rc: libc::c_int) -> io::Result<libc::c_int> {
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

/// Enters network namespace `ns` (a name under /run/netns, a path, or empty: stay) and opens
/// TUN `ifname` there.
fn open_side(spec: &str) -> io::Result<OwnedFd> {
    let (ns, ifname) = spec.rsplit_once(':').unwrap_or(("", spec));
    if !ns.is_empty() {
        let path = if ns.contains('/') {
            ns.to_string()
        } else {
            format!("/run/netns/{ns}")
        };
        let f = File::open(&path).map_err(|e| io::Error::new(e.kind(), format!("{path}: {e}")))?;
        // SAFETY: setns on a namespace file descriptor we own.
        cvt(unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) })?;
    }
    if synack_bench::tun::in_initial_netns() {
        return Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            "refusing to attach to a TUN in the machine's own network namespace",
        ));
    }
    synack_bench::tun::open(ifname).map_err(|e| io::Error::new(e.kind(), format!("{ifname}: {e}")))
}

fn make_dir(
    args: &Args,
    name: &'static str,
    from: RawFd,
    to: RawFd,
    lossy: bool,
    stream: u64,
) -> Dir {
    let p = if lossy {
        (args.loss / 100.0).clamp(0.0, 1.0)
    } else {
        0.0
    };
    // splitmix64 of the seed and the stream, never 0 (xorshift's fixed point).
    let mut z = args
        .seed
        .wrapping_add(stream.wrapping_mul(0x9e37_79b9_7f4a_7c15));
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^= z >> 31;
    let slots = args.slots.clamp(64, 1 << 20);
    let slot_len = args.mtu.clamp(576, 65535);
    Dir {
        name,
        from,
        to,
        loss_below: (p * u64::MAX as f64) as u64,
        rng: z | 1,
        ns_per_byte: if args.rate_mbit > 0.0 {
            8000.0 / args.rate_mbit
        } else {
            0.0
        },
        queue_max: args.queue.max(1),
        link_free: 0,
        delay_ns: (args.delay_ms.max(0.0) * 1e6) as u64,
        slot_len,
        buf: vec![0; slots * slot_len],
        lens: vec![0; slots],
        served: vec![0; slots],
        release: vec![0; slots],
        head: 0,
        qhead: 0,
        tail: 0,
        stats: DirStats::default(),
    }
}

fn run(args: &Args) -> io::Result<()> {
    let a = open_side(&args.a)?;
    let b = open_side(&args.b)?;
    let mut dirs = [
        make_dir(
            args,
            "a2b",
            a.as_raw_fd(),
            b.as_raw_fd(),
            args.loss_dir != LossDir::BToA,
            1,
        ),
        make_dir(
            args,
            "b2a",
            b.as_raw_fd(),
            a.as_raw_fd(),
            args.loss_dir != LossDir::AToB,
            2,
        ),
    ];
    let mut scratch = vec![0u8; 65536];

    // SIGINT/SIGTERM through a signalfd, so the loop can report and exit cleanly.
    // SAFETY: sigset manipulation on a local set, then blocking those signals for this thread
    // (the only one) before creating the signalfd.
    let sfd = unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::sigaddset(&mut set, libc::SIGTERM);
        cvt(libc::sigprocmask(
            libc::SIG_BLOCK,
            &set,
            std::ptr::null_mut(),
        ))?;
        cvt(libc::signalfd(-1, &set, libc::SFD_CLOEXEC))?
    };
    // SAFETY: plain syscalls creating descriptors this function owns until exit.
    let tfd = cvt(unsafe {
        libc::timerfd_create(
            libc::CLOCK_MONOTONIC,
            libc::TFD_NONBLOCK | libc::TFD_CLOEXEC,
        )
    })?;
    // SAFETY: as above.
    let ep = cvt(unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) })?;
    for (fd, tag) in [
        (a.as_raw_fd(), 0u64),
        (b.as_raw_fd(), 1),
        (tfd, 2),
        (sfd, 3),
    ] {
        let mut ev = libc::epoll_event {
            events: libc::EPOLLIN as u32,
            u64: tag,
        };
        // SAFETY: registers a valid descriptor with a valid event.
        cvt(unsafe { libc::epoll_ctl(ep, libc::EPOLL_CTL_ADD, fd, &mut ev) })?;
    }
    let start = now_ns();
    let mut armed: Option<u64> = None;
    let mut events = [libc::epoll_event { events: 0, u64: 0 }; 8];
    'outer: loop {
        // SAFETY: `events` has room for its length.
        let n = unsafe { libc::epoll_wait(ep, events.as_mut_ptr(), events.len() as i32, -1) };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        for ev in &events[..n as usize] {
            match ev.u64 {
                0 => dirs[0].read_all(&mut scratch)?,
                1 => dirs[1].read_all(&mut scratch)?,
                2 => {
                    let mut expirations = [0u8; 8];
                    // SAFETY: reads the 8-byte expiration count into a buffer of 8 bytes.
                    unsafe { libc::read(tfd, expirations.as_mut_ptr().cast(), 8) };
                    armed = None;
                }
                _ => break 'outer,
            }
        }
        let now = now_ns();
        let next = dirs.iter_mut().filter_map(|d| d.release_due(now)).min();
        if next != armed {
            armed = next;
            let at = next.unwrap_or(0);
            let spec = libc::itimerspec {
                it_interval: libc::timespec {
                    tv_sec: 0,
                    tv_nsec: 0,
                },
                // All zero disarms; otherwise an absolute time, at least 1 ns.
                it_value: libc::timespec {
                    tv_sec: (at / 1_000_000_000) as libc::time_t,
                    tv_nsec: (at % 1_000_000_000) as libc::c_long,
                },
            };
            // SAFETY: arms the timerfd with a valid itimerspec.
            cvt(unsafe {
                libc::timerfd_settime(tfd, libc::TFD_TIMER_ABSTIME, &spec, std::ptr::null_mut())
            })?;
        }
    }
    let wall = (now_ns() - start) as f64 / 1e9;
    // SAFETY: getrusage fills one rusage, which `ru` is.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    let mut line = Line::new()
        .num("wall_s", wall)
        .num("cpu_user_s", secs(ru.ru_utime))
        .num("cpu_sys_s", secs(ru.ru_stime));
    for d in &dirs {
        line = d.report(line);
    }
    line.print();
    Ok(())
}
