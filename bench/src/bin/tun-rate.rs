//! The raw TUN ceiling: how many MTU-sized packets per second a userspace program can read
//! from, or write to, a TUN on this machine, with no TCP at all.
//!
//! - `read`: the kernel blasts MTU-sized UDP datagrams at 198.18.0.2 (a sender thread in this
//!   process, ordinary UDP sockets) and the main thread reads and counts them from the TUN.
//!   This bounds client→server throughput of any TUN endpoint.
//! - `write`: the main thread writes valid MTU-sized IPv4/UDP packets (198.18.0.2 → 198.18.0.1)
//!   into the TUN as fast as it can; a UDP socket bound on 198.18.0.1 counts what the kernel
//!   delivered. This bounds server→client throughput.
//!
//! With `--offload` the TUN is opened as synack opens it by default (`IFF_VNET_HDR` and
//! `TUNSETOFFLOAD`, here with UDP segmentation offload): `read` then takes each UDP GSO send of
//! the kernel as one super-packet of up to 64 KiB, and `write` hands the kernel super-packets
//! of MTU-sized datagrams (received whole by a `UDP_GRO` socket). The figures are the ceiling
//! of a TUN endpoint that moves data in 64 KiB super-segments, as synack's TCP does with
//! segmentation offload.
//!
//! Must run inside a private network namespace (it creates and configures the TUN).

use std::io;
use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::os::fd::{AsRawFd, OwnedFd};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use clap::{Parser, ValueEnum};
use synack_bench::json::Line;
use synack_bench::tun::VNET_HDR_LEN;

/// Raw TUN packet-rate ceiling (read or write), for the synack benchmark.
#[derive(Debug, Parser)]
#[command(name = "tun-rate")]
struct Args {
    /// Which direction to measure.
    mode: Dir,
    /// TUN interface to create and configure.
    #[arg(long, default_value = "tunrate0")]
    name: String,
    /// MTU of the TUN; every packet is this size.
    #[arg(long, default_value_t = 1500)]
    mtu: u32,
    /// Measurement duration, in seconds (after a short warm-up).
    #[arg(long, default_value_t = 3.0)]
    secs: f64,
    /// Open the TUN with offloads (virtio-net headers, UDP segmentation offload) and move
    /// 64 KiB super-packets instead of single packets.
    #[arg(long)]
    offload: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Dir {
    Read,
    Write,
}

const HOST: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
const PEER: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);
const WARMUP: Duration = Duration::from_millis(200);
/// IPv4 header (20) + UDP header (8).
const HEADERS: usize = 28;

fn main() -> ExitCode {
    let args = Args::parse();
    let result = if !(576..=65535).contains(&args.mtu) {
        Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "mtu must be in 576..=65535",
        ))
    } else {
        let offloads = args
            .offload
            .then_some(libc::TUN_F_CSUM | libc::TUN_F_USO4 | libc::TUN_F_USO6);
        synack_bench::tun::open_configured_with(&args.name, args.mtu, offloads).and_then(|fd| {
            let secs = Duration::from_secs_f64(args.secs.clamp(0.1, 60.0));
            match args.mode {
                Dir::Read => read_rate(&fd, args.mtu as usize, secs, args.offload),
                Dir::Write => write_rate(&fd, args.mtu as usize, secs, args.offload),
            }
        })
    };
    match result {
        Ok(line) => {
            line.str("iface", &args.name)
                .int("mtu", args.mtu.into())
                .bool("offload", args.offload)
                .print();
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("tun-rate: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Waits up to `ms` for `fd` to become readable.
fn poll_in(fd: &OwnedFd, ms: i32) {
    let mut p = libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd, count 1.
    unsafe { libc::poll(&mut p, 1, ms) };
}

fn read_rate(fd: &OwnedFd, mtu: usize, secs: Duration, offload: bool) -> io::Result<Line> {
    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicU64::new(0));
    let sock = UdpSocket::bind(SocketAddrV4::new(HOST, 0))?;
    sock.connect(SocketAddrV4::new(PEER, 9))?;
    // UDP GSO (one send, many MTU-sized datagrams, segmented in software before the TUN)
    // keeps the sender's per-packet cost close to a bulk TCP writer's, so the reader is what
    // is measured. Without it, one datagram per send.
    let seg = mtu - HEADERS;
    let gso = set_udp_segment(&sock, seg);
    let per_send = if gso { (65507 / seg).clamp(1, 64) } else { 1 };
    // Flow control, as TCP would have: the sender keeps at most IN_FLIGHT packets between
    // itself and the reader, below the TUN's queue (txqueuelen 500), so no work is wasted on
    // packets the queue would drop; the rate measured is the reader's.
    const IN_FLIGHT: u64 = 256;
    let read_total = Arc::new(AtomicU64::new(0));
    let sender = {
        let (stop, sent, read_total) = (
            Arc::clone(&stop),
            Arc::clone(&sent),
            Arc::clone(&read_total),
        );
        thread::spawn(move || {
            let payload = synack_bench::pattern_buffer(seg * per_send);
            let payload = &payload[..seg * per_send];
            while !stop.load(Ordering::Relaxed) {
                let in_flight = sent.load(Ordering::Relaxed) - read_total.load(Ordering::Relaxed);
                if in_flight + per_send as u64 > IN_FLIGHT {
                    thread::sleep(Duration::from_micros(20));
                    continue;
                }
                // A failed send (ENOBUFS) is simply not counted.
                if sock.send(payload).is_ok() {
                    sent.fetch_add(per_send as u64, Ordering::Relaxed);
                }
            }
        })
    };
    let hdr = if offload { VNET_HDR_LEN } else { 0 };
    let mut buf = vec![0u8; if offload { hdr + 65536 } else { mtu + 64 }];
    let begin = Instant::now() + WARMUP;
    let end = begin + secs;
    let (mut packets, mut bytes, mut all) = (0u64, 0u64, 0u64);
    let mut sent_at_begin = None;
    loop {
        let now = Instant::now();
        if now >= end {
            break;
        }
        let counting = now >= begin;
        if counting && sent_at_begin.is_none() {
            sent_at_begin = Some(sent.load(Ordering::Relaxed));
        }
        // Drain until WouldBlock, then wait for more.
        loop {
            // SAFETY: `buf` is valid for `buf.len()` bytes.
            let n = unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
            if n <= 0 {
                break;
            }
            // With offload, a read is a super-packet of `segments` datagrams (its virtio-net
            // header says how many); the bytes are its IP bytes.
            let (len, segments) = if offload {
                let len = (n as usize).saturating_sub(hdr);
                (len as u64, super_packet_segments(&buf[..hdr], len))
            } else {
                (n as u64, 1)
            };
            all += segments;
            if all % 16 < segments {
                read_total.store(all, Ordering::Relaxed);
            }
            if counting {
                packets += segments;
                bytes += len;
            }
            if packets % 1024 == 0 && Instant::now() >= end {
                break;
            }
        }
        read_total.store(all, Ordering::Relaxed);
        poll_in(fd, 20);
    }
    let sent_total = sent.load(Ordering::Relaxed) - sent_at_begin.unwrap_or(0);
    stop.store(true, Ordering::Relaxed);
    let _ = sender.join();
    let s = secs.as_secs_f64();
    Ok(Line::new()
        .str("mode", "tun-read")
        .num("secs", s)
        .int("packets", packets)
        .int("bytes", bytes)
        .int("sent", sent_total)
        .bool("udp_gso", gso)
        .num("pps", packets as f64 / s)
        .num("gbps", bytes as f64 * 8.0 / s / 1e9))
}

/// How many datagrams a super-packet of `len` IP bytes read with virtio-net header `hdr`
/// stands for: its payload over `gso_size`, or 1 when it is not a GSO packet.
fn super_packet_segments(hdr: &[u8], len: usize) -> u64 {
    let gso_type = hdr[1];
    let hdr_len = usize::from(u16::from_ne_bytes([hdr[2], hdr[3]])).max(HEADERS);
    let gso_size = usize::from(u16::from_ne_bytes([hdr[4], hdr[5]]));
    if gso_type == 0 || gso_size == 0 {
        return 1;
    }
    len.saturating_sub(hdr_len).div_ceil(gso_size).max(1) as u64
}

/// Sets an integer socket option; false if the kernel refused it.
fn set_int_option(sock: &UdpSocket, level: libc::c_int, name: libc::c_int, value: i32) -> bool {
    let v: libc::c_int = value;
    // SAFETY: setsockopt with a valid c_int option value and its size.
    let rc = unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            level,
            name,
            (&v as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    rc == 0
}

/// Turns on UDP generic segmentation offload with `size`-byte segments; false if unsupported.
fn set_udp_segment(sock: &UdpSocket, size: usize) -> bool {
    set_int_option(sock, libc::SOL_UDP, libc::UDP_SEGMENT, size as i32)
}

/// Internet checksum (RFC 1071) of `data`.
fn checksum(data: &[u8]) -> u16 {
    let mut sum = 0u32;
    for pair in data.chunks(2) {
        let hi = u32::from(pair[0]) << 8;
        let lo = pair.get(1).map_or(0, |&b| u32::from(b));
        sum += hi | lo;
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// A complete IPv4/UDP packet of `len` bytes from PEER:5000 to HOST:`port` (UDP checksum 0,
/// which IPv4 allows).
fn udp_packet(len: usize, port: u16) -> Vec<u8> {
    let mut p = synack_bench::pattern_buffer(len);
    p.truncate(len);
    let total = (len as u16).to_be_bytes();
    let udp_len = ((len - 20) as u16).to_be_bytes();
    let header = [
        0x45, 0, total[0], total[1], 0, 0, 0x40, 0, 64, 17, 0, 0, // ver/ihl .. proto, cksum
    ];
    p[..12].copy_from_slice(&header);
    p[12..16].copy_from_slice(&PEER.octets());
    p[16..20].copy_from_slice(&HOST.octets());
    let ck = checksum(&p[..20]).to_be_bytes();
    p[10..12].copy_from_slice(&ck);
    p[20..22].copy_from_slice(&5000u16.to_be_bytes());
    p[22..24].copy_from_slice(&port.to_be_bytes());
    p[24..26].copy_from_slice(&udp_len);
    p[26..28].copy_from_slice(&[0, 0]);
    p
}

/// A virtio-net header and an IPv4/UDP super-packet of `count` datagrams of `seg` payload
/// bytes each (PEER:5000 → HOST:`port`), for the kernel to split (UDP segmentation offload):
/// the UDP length and checksum cover the whole payload, the checksum field holding only the
/// pseudo-header sum for the kernel to complete.
fn udp_super_packet(seg: usize, count: usize, port: u16) -> Vec<u8> {
    let payload = seg * count;
    let mut p = udp_packet(HEADERS + payload, port);
    let udp_len = (8 + payload) as u16;
    let mut sum: u32 = 0;
    for pair in PEER.octets().chunks(2).chain(HOST.octets().chunks(2)) {
        sum += u32::from(u16::from_be_bytes([pair[0], pair[1]]));
    }
    sum += 17 + u32::from(udp_len);
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    p[26..28].copy_from_slice(&(sum as u16).to_be_bytes());
    // struct virtio_net_hdr: NEEDS_CSUM, GSO_UDP_L4, hdr_len, gso_size, csum_start, csum_offset.
    const NEEDS_CSUM: u8 = 1;
    const GSO_UDP_L4: u8 = 5;
    let mut out = vec![NEEDS_CSUM, GSO_UDP_L4];
    for field in [HEADERS as u16, seg as u16, 20, 6] {
        out.extend_from_slice(&field.to_ne_bytes());
    }
    out.extend_from_slice(&p);
    out
}

fn write_rate(fd: &OwnedFd, mtu: usize, secs: Duration, offload: bool) -> io::Result<Line> {
    let sock = UdpSocket::bind(SocketAddrV4::new(HOST, 5001))?;
    sock.set_read_timeout(Some(Duration::from_millis(100)))?;
    // Best effort (needs CAP_NET_ADMIN): a deep receive queue, so delivery is not the limit.
    set_int_option(&sock, libc::SOL_SOCKET, libc::SO_RCVBUFFORCE, 16 << 20);
    // With offload, super-packets are received whole (one recv for all their datagrams).
    let seg = mtu - HEADERS;
    let gro = offload && set_int_option(&sock, libc::SOL_UDP, libc::UDP_GRO, 1);
    let stop = Arc::new(AtomicBool::new(false));
    let receiver = {
        let stop = Arc::clone(&stop);
        thread::spawn(move || {
            let mut buf = vec![0u8; 65536];
            let mut got = 0u64;
            while !stop.load(Ordering::Relaxed) {
                if let Ok(n) = sock.recv(&mut buf) {
                    got += n.div_ceil(seg).max(1) as u64;
                }
            }
            got
        })
    };
    // Offload: one write carries `per_write` datagrams of `seg` payload bytes.
    let per_write = if offload { 65507 / seg } else { 1 };
    let packet = if offload {
        udp_super_packet(seg, per_write, 5001)
    } else {
        udp_packet(mtu, 5001)
    };
    // No warm-up here: every written packet and every delivery is counted over the same span.
    let start = Instant::now();
    let end = start + secs;
    let (mut written, mut errors) = (0u64, 0u64);
    for i in 0u64.. {
        if i % 64 == 0 && Instant::now() >= end {
            break;
        }
        // SAFETY: `packet` is valid for `packet.len()` bytes.
        let n = unsafe { libc::write(fd.as_raw_fd(), packet.as_ptr().cast(), packet.len()) };
        if n == packet.len() as isize {
            written += per_write as u64;
        } else {
            errors += 1;
        }
    }
    let s = start.elapsed().as_secs_f64();
    // Let the receiver drain what is already queued for it, then stop it.
    thread::sleep(Duration::from_millis(200));
    stop.store(true, Ordering::Relaxed);
    let delivered = receiver.join().unwrap_or(0);
    Ok(Line::new()
        .str("mode", "tun-write")
        .num("secs", s)
        .int("packets", written)
        .int("bytes", written * mtu as u64)
        .int("errors", errors)
        .int("delivered", delivered)
        .bool("udp_gro", gro)
        .num("pps", written as f64 / s)
        .num("gbps", (written * mtu as u64) as f64 * 8.0 / s / 1e9)
        .num(
            "delivered_gbps",
            (delivered * mtu as u64) as f64 * 8.0 / s / 1e9,
        ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packet_header_checksums_to_zero() {
        let p = udp_packet(1500, 5001);
        assert_eq!(p.len(), 1500);
        assert_eq!(checksum(&p[..20]), 0);
        assert_eq!(u16::from_be_bytes([p[2], p[3]]), 1500);
        assert_eq!(u16::from_be_bytes([p[24], p[25]]), 1480);
    }
}
