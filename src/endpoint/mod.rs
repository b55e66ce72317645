//! The endpoint: the 4-tuple table, the listeners, ISN generation and replies to strays.

use crate::services::ServiceKind;
use crate::time::{Duration, Instant};
use std::net::IpAddr;

/// Where the endpoint writes the packets it sends. The driver writes them to the TUN;
/// tests collect them.
pub trait Transmit {
    fn transmit(&mut self, packet: &[u8]);
}

impl Transmit for Vec<Vec<u8>> {
    fn transmit(&mut self, packet: &[u8]) {
        self.push(packet.to_vec());
    }
}

#[derive(Clone, Debug)]
pub struct EndpointConfig {
    /// The addresses the endpoint answers as.
    pub addrs: Vec<IpAddr>,
    /// Listening ports and their services.
    pub listeners: Vec<(u16, ServiceKind)>,
    /// The interface MTU; MSS = MTU − 40 (IPv4) or MTU − 60 (IPv6).
    pub mtu: u16,
    /// TIME-WAIT duration (2·MSL).
    pub time_wait: Duration,
}

/// The endpoint. See the module docs.
pub struct Endpoint {
    _private: (),
}

impl Endpoint {
    /// `secret` keys the RFC 6528 ISN function; the driver draws it from getrandom.
    pub fn new(config: EndpointConfig, secret: [u8; 16], now: Instant) -> Self {
        let _ = (config, secret, now);
        todo!("Endpoint::new")
    }

    /// Process one IP packet read from the device; replies go to `tx`.
    pub fn receive(&mut self, now: Instant, packet: &[u8], tx: &mut dyn Transmit) {
        let _ = (now, packet, tx);
        todo!("Endpoint::receive")
    }

    /// Run the services, the timers that are due and every pending transmission. Call after
    /// each batch of received packets and whenever `poll_timeout` is reached.
    pub fn poll(&mut self, now: Instant, tx: &mut dyn Transmit) {
        let _ = (now, tx);
        todo!("Endpoint::poll")
    }

    /// When `poll` must be called next, if nothing arrives before.
    pub fn poll_timeout(&self) -> Option<Instant> {
        todo!("Endpoint::poll_timeout")
    }

    /// Stop accepting new connections and close every open one (FIN). Call `poll` until
    /// `is_drained` or a grace period expires, then `abort_all`.
    pub fn shutdown(&mut self, now: Instant) {
        let _ = now;
        todo!("Endpoint::shutdown")
    }

    /// No connection is left except in TIME-WAIT.
    pub fn is_drained(&self) -> bool {
        todo!("Endpoint::is_drained")
    }

    /// Reset every remaining connection (used when the shutdown grace period ends).
    pub fn abort_all(&mut self, now: Instant, tx: &mut dyn Transmit) {
        let _ = (now, tx);
        todo!("Endpoint::abort_all")
    }

    /// The counters, as (name, value) pairs, for logging at shutdown.
    pub fn counters(&self) -> Vec<(&'static str, u64)> {
        todo!("Endpoint::counters")
    }
}
