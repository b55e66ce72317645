//! The reference server on plain kernel sockets, with synack's port semantics: 7 echo,
//! 9 discard (sink; closes when the client closes), 19 source (repeating printable pattern).
//! A fixed pool of worker threads per port, each accepting and serving one connection at a
//! time (a thread per connection cannot keep up with connect-and-close bursts). Run on one end
//! of a veth pair so both ends are the kernel's TCP.

use std::io::{self, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::process::ExitCode;
use std::thread;

use clap::Parser;

/// Kernel-socket sink/source/echo server for the synack benchmark.
#[derive(Debug, Parser)]
#[command(name = "kernel-server")]
struct Args {
    /// Address to bind the three listeners to.
    #[arg(long, default_value = "198.18.1.2")]
    addr: IpAddr,
    /// Size of each read/write call, in bytes.
    #[arg(long, default_value_t = 128 * 1024)]
    chunk: usize,
    /// Worker threads per port (the most connections per port served at once; more wait in
    /// the accept queue).
    #[arg(long, default_value_t = 8)]
    workers: usize,
}

#[derive(Debug, Clone, Copy)]
enum Role {
    Echo,
    Sink,
    Source,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let mut listeners = Vec::new();
    for (port, role) in [(7, Role::Echo), (9, Role::Sink), (19, Role::Source)] {
        match TcpListener::bind(SocketAddr::new(args.addr, port)) {
            Ok(l) => {
                // std listens with a backlog of 128, which a burst of connect-and-close
                // overflows (each overflow costs the client a 1 s SYN retransmission):
                // listening again on the same socket raises it (capped by somaxconn).
                // SAFETY: listen(2) on a socket this process owns.
                unsafe { libc::listen(l.as_raw_fd(), 4096) };
                listeners.push((l, role));
            }
            Err(e) => {
                eprintln!("kernel-server: bind {}:{port}: {e}", args.addr);
                return ExitCode::FAILURE;
            }
        }
    }
    eprintln!("kernel-server: listening on {} ports 7 9 19", args.addr);
    let chunk = args.chunk.max(1);
    let mut workers = Vec::new();
    for (listener, role) in listeners {
        for _ in 0..args.workers.max(1) {
            let l = match listener.try_clone() {
                Ok(l) => l,
                Err(e) => {
                    eprintln!("kernel-server: {e}");
                    return ExitCode::FAILURE;
                }
            };
            workers.push(thread::spawn(move || worker(&l, role, chunk)));
        }
    }
    for w in workers {
        let _ = w.join();
    }
    ExitCode::SUCCESS
}

fn worker(listener: &TcpListener, role: Role, chunk: usize) {
    // Buffers live as long as the worker, not the connection.
    let mut buf = vec![0u8; chunk];
    let pattern = synack_bench::pattern_buffer(chunk);
    // A failed accept is skipped; errors while serving just end that connection (e.g. a client
    // resetting a source).
    for stream in listener.incoming().flatten() {
        let _ = serve(stream, role, &mut buf, &pattern);
    }
}

fn serve(mut s: TcpStream, role: Role, buf: &mut [u8], pattern: &[u8]) -> io::Result<()> {
    match role {
        Role::Sink => while s.read(buf)? > 0 {},
        Role::Echo => loop {
            let n = s.read(buf)?;
            if n == 0 {
                break;
            }
            s.write_all(&buf[..n])?;
        },
        Role::Source => {
            let chunk = buf.len();
            let mut sent = 0u64;
            loop {
                let off = (sent % 95) as usize;
                let n = s.write(&pattern[off..off + chunk])?;
                if n == 0 {
                    break;
                }
                sent += n as u64;
            }
        }
    }
    Ok(())
}
