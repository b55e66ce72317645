//! The smoltcp comparison server: the same ports and semantics as synack's defaults, on a TUN,
//! with smoltcp's own `TunTapInterface` device and its poll loop (`Interface::poll` +
//! `phy::wait`).
//!
//! Answers as 198.18.0.2 / 2001:2::2; the kernel side of the TUN gets 198.18.0.1/24 and
//! 2001:2::1/64. Ports: 7 echo, 9 discard (sink; closes when the client closes, so
//! connect-then-close measures accept-and-close), 19 source (sends a repeating printable
//! pattern as fast as the window allows). smoltcp needs one socket per connection, so each port
//! has a pool of listening sockets; a socket that reaches CLOSED listens again.

use std::os::fd::{AsRawFd, IntoRawFd};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};

use clap::Parser;
use smoltcp::iface::{Config, Interface, SocketHandle, SocketSet};
use smoltcp::phy::{self, Medium, TunTapInterface};
use smoltcp::socket::tcp;
use smoltcp::time::{Duration, Instant};
use smoltcp::wire::{HardwareAddress, IpAddress, IpCidr};

/// smoltcp TCP server on a TUN (echo 7, discard 9, source 19), for the synack benchmark.
#[derive(Debug, Parser)]
#[command(name = "smoltcp-server")]
struct Args {
    /// TUN interface to create (or attach to) and configure.
    #[arg(long, default_value = "smol0")]
    name: String,
    /// MTU of the TUN, in bytes (IP packet size).
    #[arg(long, default_value_t = 1500)]
    mtu: u32,
    /// Receive and send buffer size of every socket, in bytes.
    #[arg(long, default_value_t = 256 * 1024)]
    buffer: usize,
    /// Listening sockets per port (the most simultaneous connections per port).
    #[arg(long, default_value_t = 16)]
    pool: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Echo,
    Sink,
    Source,
}

impl Role {
    fn port(self) -> u16 {
        match self {
            Role::Echo => 7,
            Role::Sink => 9,
            Role::Source => 19,
        }
    }
}

struct Slot {
    handle: SocketHandle,
    role: Role,
    /// Bytes sent so far on the current connection (position in the source pattern).
    sent: u64,
}

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    STOP.store(true, Ordering::Relaxed);
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("smoltcp-server: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &Args) -> std::io::Result<()> {
    // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
    unsafe {
        libc::signal(libc::SIGTERM, on_signal as *const () as libc::sighandler_t);
        libc::signal(libc::SIGINT, on_signal as *const () as libc::sighandler_t);
    }
    let fd = synack_bench::tun::open_configured(&args.name, args.mtu)?;
    let mut device = TunTapInterface::from_fd(fd.into_raw_fd(), Medium::Ip, args.mtu as usize)?;

    let mut config = Config::new(HardwareAddress::Ip);
    config.random_seed = u64::from(std::process::id()) ^ 0x5eed_5eed_5eed_5eed;
    let mut iface = Interface::new(config, &mut device, Instant::now());
    iface.update_ip_addrs(|addrs| {
        let _ = addrs.push(IpCidr::new(IpAddress::v4(198, 18, 0, 2), 24));
        let _ = addrs.push(IpCidr::new(IpAddress::v6(0x2001, 2, 0, 0, 0, 0, 0, 2), 64));
    });

    let mut sockets = SocketSet::new(Vec::new());
    let mut slots = Vec::new();
    for role in [Role::Echo, Role::Sink, Role::Source] {
        for _ in 0..args.pool.max(1) {
            let mut socket = tcp::Socket::new(
                tcp::SocketBuffer::new(vec![0; args.buffer]),
                tcp::SocketBuffer::new(vec![0; args.buffer]),
            );
            socket
                .listen(role.port())
                .map_err(|e| std::io::Error::other(format!("listen {}: {e}", role.port())))?;
            slots.push(Slot {
                handle: sockets.add(socket),
                role,
                sent: 0,
            });
        }
    }

    let pattern = synack_bench::pattern_buffer(args.buffer);
    let mut scratch = vec![0u8; 64 * 1024];
    let fd = device.as_raw_fd();
    eprintln!(
        "smoltcp-server: {} up, mtu {}, answering as 198.18.0.2 on ports 7 9 19",
        args.name, args.mtu
    );
    while !STOP.load(Ordering::Relaxed) {
        iface.poll(Instant::now(), &mut device, &mut sockets);
        for slot in &mut slots {
            let socket = sockets.get_mut::<tcp::Socket>(slot.handle);
            service(slot, socket, &pattern, &mut scratch);
        }
        // smoltcp's phy::wait puts the whole duration's milliseconds into tv_usec, which the
        // kernel rejects at one second or more: keep each wait below a second.
        let delay = iface
            .poll_delay(Instant::now(), &sockets)
            .map(|d| d.min(Duration::from_millis(999)))
            .unwrap_or(Duration::from_millis(999));
        // EINTR (SIGTERM) and spurious wake-ups just go round the loop again.
        let _ = phy::wait(fd, Some(delay));
    }
    Ok(())
}

/// Moves data for one socket according to its role, closes it once the client has closed, and
/// makes it listen again once CLOSED.
fn service(slot: &mut Slot, socket: &mut tcp::Socket<'_>, pattern: &[u8], scratch: &mut [u8]) {
    match slot.role {
        Role::Sink => {
            while socket.can_recv() {
                if socket.recv(|b| (b.len(), ())).is_err() {
                    break;
                }
            }
        }
        Role::Source => {
            // The free space may wrap around the ring: at most two contiguous pieces.
            for _ in 0..2 {
                if !socket.can_send() {
                    break;
                }
                let start = (slot.sent % 95) as usize;
                let n = socket
                    .send(|b| {
                        let n = b.len().min(pattern.len() - start);
                        b[..n].copy_from_slice(&pattern[start..start + n]);
                        (n, n)
                    })
                    .unwrap_or(0);
                slot.sent += n as u64;
            }
            // Whatever the client sends to the source is discarded.
            while socket.can_recv() {
                if socket.recv(|b| (b.len(), ())).is_err() {
                    break;
                }
            }
        }
        Role::Echo => {
            while socket.can_recv() && socket.can_send() {
                let room = socket.send_capacity() - socket.send_queue();
                let n = socket
                    .recv(|b| {
                        let n = b.len().min(room).min(scratch.len());
                        scratch[..n].copy_from_slice(&b[..n]);
                        (n, n)
                    })
                    .unwrap_or(0);
                if n == 0 || socket.send_slice(&scratch[..n]).is_err() {
                    break;
                }
            }
        }
    }
    if socket.state() == tcp::State::CloseWait && !socket.can_recv() {
        // The client has closed: close our side too (FIN follows any queued data).
        socket.close();
    }
    if !socket.is_open() {
        slot.sent = 0;
        let _ = socket.listen(slot.role.port());
    }
}
