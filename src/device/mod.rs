//! The TUN device: creating it and configuring addresses, MTU and link state.

pub mod impair;
