//! The mio event loop: the only code that reads the clock or makes syscalls.

pub mod control;
pub mod pcap;
