//! An echo server (RFC 862) on synack's TCP, written against its socket API
//! (`synack::endpoint::Sockets`) the way a POSIX program is written against the kernel's:
//! `socket`, `bind`, `listen`, `accept`, `recv`, `send`, `shutdown`, `close`, with readiness
//! instead of blocking.
//!
//! It creates a TUN interface, gives the kernel's side 198.18.0.1/24 and 2001:2::1/64, and
//! answers as 198.18.0.2 and 2001:2::2 (RFC 2544 / RFC 5180 benchmarking ranges). Needs root
//! or CAP_NET_ADMIN:
//!
//! ```sh
//! cargo build --release --example echo_server
//! sudo ./target/release/examples/echo_server --iface synecho0 --port 7 &
//! printf 'hi\n' | nc -N 198.18.0.2 7
//! ```
//!
//! Everything that is not the application (the TUN, the clock, waiting for packets) is a few
//! lines here: the endpoint is sans-IO, so the program owns the loop. It stops on SIGINT or
//! SIGTERM, closing its connections.

use std::collections::HashMap;
use std::error::Error;
use std::io;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use synack::config::HostAddr;
use synack::device::Tun;
use synack::endpoint::{Endpoint, EndpointConfig, SocketError, SocketHandle, Transmit};
use synack::time::Instant;

/// Writes what the endpoint sends into the TUN.
struct TunTx<'a>(&'a Tun);

impl Transmit for TunTx<'_> {
    fn transmit(&mut self, packet: &[u8]) {
        // A full device queue drops the packet, as a NIC would; TCP retransmits it.
        let _ = self.0.send(packet);
    }
}

/// One echo connection: bytes read and not yet written back.
#[derive(Default)]
struct Echo {
    pending: Vec<u8>,
    eof: bool,
}

fn main() -> Result<(), Box<dyn Error>> {
    let mut iface = "synecho0".to_string();
    let mut port: u16 = 7;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--iface" => iface = args.next().ok_or("--iface needs a name")?,
            "--port" => port = args.next().ok_or("--port needs a number")?.parse()?,
            other => return Err(format!("unknown argument {other} (use --iface, --port)").into()),
        }
    }

    let tun = Tun::open(&iface, false)?;
    let host: Vec<HostAddr> = vec!["198.18.0.1/24".parse()?, "2001:2::1/64".parse()?];
    tun.configure(&host, 1500)?;
    let config = EndpointConfig {
        addrs: vec!["198.18.0.2".parse()?, "2001:2::2".parse()?],
        listeners: vec![],
        ..EndpointConfig::default()
    };
    let mut secret = [0u8; 16];
    getrandom::fill(&mut secret).map_err(|e| format!("no randomness for the ISN key: {e}"))?;
    let start = std::time::Instant::now();
    let now = || Instant::from_micros(u64::try_from(start.elapsed().as_micros()).unwrap_or(0));
    let mut ep = Endpoint::new(config, secret, now());

    // An IPv6 socket bound to `::` listens on IPv4 too.
    let listener = ep.sockets().socket(true);
    ep.sockets()
        .bind(listener, SocketAddr::new("::".parse()?, port))?;
    ep.sockets().listen(listener, 128)?;

    let stop = Arc::new(AtomicBool::new(false));
    signal_hook::flag::register(signal_hook::consts::SIGINT, Arc::clone(&stop))?;
    signal_hook::flag::register(signal_hook::consts::SIGTERM, Arc::clone(&stop))?;
    eprintln!("echo server on [2001:2::2]:{port} and 198.18.0.2:{port} via {iface}");

    let mut conns: HashMap<SocketHandle, Echo> = HashMap::new();
    let mut buf = vec![0u8; 65536];
    let mut stopping_since = None;
    loop {
        // Packets in: drain the TUN.
        loop {
            match tun.recv(&mut buf) {
                Ok((n, meta)) => {
                    let packet = buf.get(..n).unwrap_or_default();
                    ep.receive_with(now(), packet, meta, &mut TunTx(&tun));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e.into()),
            }
        }
        // The application: accept, then echo what each connection has.
        let mut sockets = ep.sockets();
        while let Ok((s, _peer)) = sockets.accept(listener) {
            conns.insert(s, Echo::default());
        }
        conns.retain(|&s, echo| serve(&mut sockets, s, echo, &mut buf));
        if stop.load(Ordering::Relaxed) && stopping_since.is_none() {
            stopping_since = Some(std::time::Instant::now());
            let _ = ep.sockets().close(listener);
            for (&s, _) in conns.iter() {
                let _ = ep.sockets().shutdown(s, synack::endpoint::Shutdown::Write);
            }
        }
        // Packets out: whatever the calls above and the timers made due.
        ep.poll(now(), &mut TunTx(&tun));
        if let Some(since) = stopping_since
            && (conns.is_empty() || since.elapsed() > std::time::Duration::from_secs(2))
        {
            return Ok(());
        }
        // Wait for a packet or the endpoint's next deadline.
        let timeout = match ep.poll_timeout() {
            None => 1000,
            Some(at) => {
                let wait = at.saturating_since(now()).as_micros();
                i32::try_from(wait.div_ceil(1000))
                    .unwrap_or(i32::MAX)
                    .min(1000)
            }
        };
        let mut fds = libc::pollfd {
            fd: tun.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd, for the duration of the call.
        unsafe { libc::poll(&mut fds, 1, timeout) };
    }
}

/// Echo on one connection; `false` once it is closed and can be forgotten.
fn serve(
    sockets: &mut synack::endpoint::Sockets<'_>,
    s: SocketHandle,
    echo: &mut Echo,
    buf: &mut [u8],
) -> bool {
    loop {
        // Write back what is pending first: never read more than can be sent.
        while !echo.pending.is_empty() {
            match sockets.send(s, &echo.pending) {
                Ok(n) => {
                    echo.pending.drain(..n);
                }
                Err(SocketError::WouldBlock) => return true,
                Err(_) => {
                    let _ = sockets.close(s);
                    return false;
                }
            }
        }
        if echo.eof {
            // Everything echoed and the peer is done: close (a FIN).
            let _ = sockets.close(s);
            return false;
        }
        match sockets.recv(s, buf, false) {
            Ok(0) => echo.eof = true,
            Ok(n) => echo
                .pending
                .extend_from_slice(buf.get(..n).unwrap_or_default()),
            Err(SocketError::WouldBlock) => return true,
            Err(_) => {
                let _ = sockets.close(s);
                return false;
            }
        }
    }
}
