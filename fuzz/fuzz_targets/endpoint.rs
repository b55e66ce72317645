//! Fuzz the whole endpoint: the input is a sequence of (time step, packet) for an `Endpoint`
//! with every service on a virtual clock (format: src/endpoint/scenario.rs). Most packets are
//! built from structured fields through `wire::emit_tcp`, so they are well-formed and reach
//! the state machine; some are raw bytes. `scenario::run` panics if an invariant breaks: a
//! packet we send does not parse, a RST answers a RST, a TCB lingers in CLOSED or LISTEN,
//! or the connection count, a listener's queues or the buffer memory exceed their limits.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = synack::endpoint::scenario::run(data);
});
