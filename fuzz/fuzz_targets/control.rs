//! Fuzz the control-socket protocol (src/driver/control.rs): newline-delimited JSON.
//!
//! The input is what a client writes to the socket. It is framed as the daemon frames it
//! (`control_server`: everything up to the first newline, decoded as lossy UTF-8) and decoded
//! as a [`Request`]; the same line is also decoded as a [`Response`], as `synack status|stats|
//! connect|trace` decode what the daemon sends. Invariants: no panic; whatever decodes
//! survives encode → decode unchanged; every encoded message is exactly one line; a refused
//! request's error reply is itself a well-formed response; the tables render.

#![no_main]

use libfuzzer_sys::fuzz_target;
use synack::driver::control::{
    MAX_REQUEST_LINE, Response, decode_request, decode_response, encode, format_stats,
    format_status,
};

fuzz_target!(|data: &[u8]| {
    // The daemon waits for a newline and gives up past MAX_REQUEST_LINE.
    let end = data.iter().position(|&b| b == b'\n').unwrap_or(data.len());
    if end > MAX_REQUEST_LINE {
        return;
    }
    let line = String::from_utf8_lossy(&data[..end]);

    match decode_request(&line) {
        Ok(req) => {
            let encoded = encode(&req);
            assert_eq!(
                decode_request(one_line(&encoded)),
                Ok(req),
                "request round trip"
            );
        }
        Err(message) => {
            // What the daemon answers a bad request with must reach the client intact.
            let reply = Response::Error { message };
            let encoded = encode(&reply);
            let back = decode_response(one_line(&encoded));
            assert_eq!(back, Ok(reply), "error reply round trip");
        }
    }

    if let Ok(resp) = decode_response(&line) {
        let encoded = encode(&resp);
        let back = decode_response(one_line(&encoded));
        assert_eq!(back, Ok(resp.clone()), "response round trip");
        match &resp {
            Response::Status { rows } => {
                let _ = format_status(rows);
            }
            Response::Stats { counters } => {
                let _ = format_stats(counters);
            }
            _ => {}
        }
    }
});

/// `encoded` is one newline-terminated line; returns it without the newline.
fn one_line(encoded: &str) -> &str {
    let body = encoded
        .strip_suffix('\n')
        .expect("encode ends with a newline");
    assert!(
        !body.contains('\n'),
        "an encoded message spans lines: {body:?}"
    );
    body
}
