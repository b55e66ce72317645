//! The endpoint on packetdrill's clock: virtual time, and the packets synack sends queued
//! with the (virtual) time they left.
//!
//! packetdrill asks the library for all of its time (`gettimeofday`, `usleep`), so synack
//! runs on a clock that moves only when packetdrill's does: a script that waits 30 s takes
//! no wall-clock time. Whenever the clock moves, every endpoint deadline in the interval runs
//! at its own instant (`Endpoint::poll_timeout` / `poll`), and what it sends is stamped with
//! that instant, as the tun device would have seen it.

use std::collections::VecDeque;
use std::time::Duration;

use synack::endpoint::Endpoint;
use synack::time::Instant;

/// What `gettimeofday` adds to the virtual clock: the wall-clock instant virtual time 0
/// stands for (2023-11-14), so packetdrill's logs show plausible dates.
pub const EPOCH_MICROS: u64 = 1_700_000_000_000_000;

/// Virtual time at the start: 1 s, so that no deadline is ever at `Instant::ZERO`.
pub const START: Instant = Instant::from_micros(1_000_000);

/// Each `gettimeofday` moves the clock on by this much: packetdrill spins on it for the last
/// 20 µs before each event, and a clock that never moved would spin forever.
pub const TICK: Duration = Duration::from_micros(1);

/// How long `next_packet` lets virtual time run, waiting for synack to send something,
/// before it gives up: longer than any retransmission back-off a script waits for.
pub const PATIENCE: Duration = Duration::from_secs(15 * 60);

/// Deadlines run per clock move, at most: a guard against a deadline that never moves on.
const MAX_POLLS: usize = 100_000;

/// Why `next_packet` has no packet.
#[derive(Debug, PartialEq, Eq)]
pub enum Silence {
    /// Nothing queued and no timer pending: synack will never send anything by itself.
    NoTimer,
    /// Nothing was sent within [`PATIENCE`] of virtual time.
    Patience,
}

impl std::fmt::Display for Silence {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Silence::NoTimer => f.write_str(
                "synack has nothing to send and no timer pending, while packetdrill waits for a packet",
            ),
            Silence::Patience => write!(
                f,
                "synack sent nothing within {} s of virtual time, while packetdrill waits for a packet",
                PATIENCE.as_secs()
            ),
        }
    }
}

/// The endpoint, the virtual clock, and the packets it sent that packetdrill has not read.
pub struct Clocked {
    pub ep: Endpoint,
    now: Instant,
    sent: VecDeque<(Instant, Vec<u8>)>,
}

impl Clocked {
    pub fn new(ep: Endpoint) -> Self {
        Clocked {
            ep,
            now: START,
            sent: VecDeque::new(),
        }
    }

    pub fn now(&self) -> Instant {
        self.now
    }

    /// `gettimeofday`: the virtual time as wall-clock microseconds, one [`TICK`] on.
    pub fn gettimeofday(&mut self) -> u64 {
        self.advance_to(self.now + TICK);
        EPOCH_MICROS + self.now.as_micros()
    }

    /// `usleep`: virtual time moves on at once.
    pub fn sleep(&mut self, duration: Duration) {
        self.advance_to(self.now + duration);
    }

    /// Move the clock to `to`, running every deadline on the way at its own instant.
    pub fn advance_to(&mut self, to: Instant) {
        for _ in 0..MAX_POLLS {
            match self.ep.poll_timeout() {
                Some(deadline) if deadline <= to => {
                    self.now = self.now.max(deadline);
                    if !self.poll()
                        && deadline <= self.now
                        && self.ep.poll_timeout() == Some(deadline)
                    {
                        // A deadline that did nothing and stays put: leave it to the next move.
                        break;
                    }
                }
                _ => break,
            }
        }
        self.now = self.now.max(to);
    }

    /// `netdev_send`: a packet from packetdrill into synack, then whatever is due.
    pub fn receive(&mut self, packet: &[u8]) {
        let mut tx: Vec<Vec<u8>> = Vec::new();
        self.ep.receive(self.now, packet, &mut tx);
        self.queue(tx);
        self.poll();
    }

    /// Send what is due now (after every socket call and packet). True if anything was sent.
    pub fn poll(&mut self) -> bool {
        let mut tx: Vec<Vec<u8>> = Vec::new();
        self.ep.poll(self.now, &mut tx);
        let sent = !tx.is_empty();
        self.queue(tx);
        sent
    }

    fn queue(&mut self, tx: Vec<Vec<u8>>) {
        let now = self.now;
        self.sent.extend(tx.into_iter().map(|p| (now, p)));
    }

    /// `netdev_receive`: the oldest packet synack sent, with the virtual time it left. If
    /// none is queued, virtual time runs on to synack's next deadlines until one is sent.
    pub fn next_packet(&mut self) -> Result<(Instant, Vec<u8>), Silence> {
        let give_up = self.now + PATIENCE;
        for _ in 0..MAX_POLLS {
            if let Some(packet) = self.sent.pop_front() {
                return Ok(packet);
            }
            match self.ep.poll_timeout() {
                None => return Err(Silence::NoTimer),
                Some(deadline) if deadline > give_up => return Err(Silence::Patience),
                Some(deadline) => {
                    self.now = self.now.max(deadline);
                    self.poll();
                }
            }
        }
        Err(Silence::Patience)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{IpAddr, Ipv4Addr};
    use synack::endpoint::EndpointConfig;

    fn endpoint() -> Clocked {
        let config = EndpointConfig {
            addrs: vec![IpAddr::V4(Ipv4Addr::new(198, 18, 0, 1))],
            listeners: vec![],
            ..EndpointConfig::default()
        };
        Clocked::new(Endpoint::new(config, [7; 16], START))
    }

    /// A SYN from 198.19.0.1:40000 to 198.18.0.1:8080 (IPv4 + TCP, 20 + 20 bytes), by hand.
    fn syn() -> Vec<u8> {
        let mut p = vec![
            0x45, 0, 0, 40, 0, 1, 0x40, 0, 64, 6, 0, 0, 198, 19, 0, 1, 198, 18, 0, 1, // IPv4
            0x9c, 0x40, 0x1f, 0x90, 0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x02, 0x72, 0x10, 0, 0, 0,
            0, // TCP SYN, window 29200
        ];
        let ip = checksum(&p[..20]);
        p[10..12].copy_from_slice(&ip.to_be_bytes());
        let mut pseudo = vec![198, 19, 0, 1, 198, 18, 0, 1, 0, 6, 0, 20];
        pseudo.extend_from_slice(&p[20..]);
        let tcp = checksum(&pseudo);
        p[36..38].copy_from_slice(&tcp.to_be_bytes());
        p
    }

    fn checksum(bytes: &[u8]) -> u16 {
        let mut sum: u32 = bytes
            .chunks(2)
            .map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)])))
            .sum();
        while sum > 0xffff {
            sum = (sum & 0xffff) + (sum >> 16);
        }
        !(sum as u16)
    }

    #[test]
    fn gettimeofday_moves_the_clock_one_tick_per_call() {
        let mut c = endpoint();
        let a = c.gettimeofday();
        let b = c.gettimeofday();
        assert_eq!(b - a, 1);
        assert_eq!(a, EPOCH_MICROS + START.as_micros() + 1);
    }

    #[test]
    fn sleeping_takes_no_wall_clock_time() {
        let mut c = endpoint();
        let wall = std::time::Instant::now();
        c.sleep(Duration::from_secs(3600));
        assert_eq!(c.now(), START + Duration::from_secs(3600));
        assert!(wall.elapsed() < Duration::from_secs(1));
    }

    #[test]
    fn a_packet_synack_answers_is_queued_with_the_time_it_left() {
        let mut c = endpoint();
        c.sleep(Duration::from_millis(100));
        c.receive(&syn());
        let (at, reply) = c.next_packet().expect("a RST for the closed port");
        assert_eq!(at, START + Duration::from_millis(100));
        assert_eq!(reply.get(33).map(|flags| flags & 0x04), Some(0x04), "RST");
    }

    #[test]
    fn with_nothing_to_send_and_no_timer_next_packet_fails_instead_of_waiting() {
        let mut c = endpoint();
        assert_eq!(c.next_packet(), Err(Silence::NoTimer));
    }
}
