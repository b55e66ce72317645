//! synack — a complete TCP endpoint in userspace, served over a TUN interface.
//!
//! The crate is sans-IO down to [`driver`]: [`wire`] parses and emits packets, [`tcp`] holds
//! the per-connection state machine, [`endpoint`] owns the 4-tuple table, listeners and the
//! replies to strays, and [`services`] are the built-in applications. None of them reads the
//! clock or makes a syscall: they take bytes and `now` and return bytes and the next deadline.
//! Only [`device`] (the TUN) and [`driver`] (the mio loop) touch the operating system.
//!
//! See docs/ARCHITECTURE.md for the path of a packet through these modules.

// No panic on anything from the network (the house rules), checked: outside its tests the
// library uses no `unwrap`, `expect`, `panic!` or `[i]`/`[a..b]` (`.get()`, iterators, slice
// patterns and checked splits instead).
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )
)]

pub mod cli;
pub mod config;
pub mod device;
pub mod driver;
pub mod endpoint;
pub mod observe;
pub mod seqnum;
pub mod services;
pub mod tcp;
pub mod time;
pub mod wire;
