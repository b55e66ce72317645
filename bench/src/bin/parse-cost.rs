//! The per-packet cost of `synack::wire::parse`: parse a fixed set of recorded packets (the
//! `parse` fuzz seeds: full-sized IPv4 and IPv6 data segments, a SACK ACK, SYNs with every
//! option, IPv4 options, IPv6 extension headers, pings, a FIN, a RST) many times and report
//! nanoseconds per packet, with the TCP checksum verified and (as under offload) trusted.
//!
//!   cargo run --release -p synack-bench --bin parse-cost -- [ROUNDS [SEED...]]
//!
//! With SEED names (e.g. `v4_bulk v6_bulk`, the packets of a bulk transfer) only those are
//! parsed.
//!
//! Wall-clock figures move with the machine's load; for a repeatable figure count
//! instructions instead: `valgrind --tool=callgrind target/release/parse-cost 2000`
//! (docs/PERFORMANCE.md, "Parsing").

use std::hint::black_box;
use std::time::Instant;
use synack::wire::{Packet, RxMeta, parse_with};

macro_rules! seeds {
    ($($name:literal),* $(,)?) => {
        [$(($name, include_bytes!(concat!("../../../fuzz/corpus/parse/", $name)).as_slice())),*]
    };
}

const PACKETS: [(&str, &[u8]); 12] = seeds!(
    "v4_bulk",
    "v6_bulk",
    "v4_ack_sack",
    "v4_data",
    "v6_data_sack",
    "v4_syn",
    "v6_syn",
    "v4_ip_options",
    "v6_ext_headers",
    "v4_ping",
    "v4_fin",
    "v4_rst",
);

fn main() {
    let usage = "usage: parse-cost [ROUNDS [SEED...]]  (ROUNDS: a positive number of passes)";
    let mut args = std::env::args().skip(1);
    let rounds: u64 = match args.next().map(|a| a.parse()) {
        None => 200_000,
        Some(Ok(n)) if n > 0 => n,
        Some(_) => {
            eprintln!("{usage}");
            std::process::exit(2);
        }
    };
    let wanted: Vec<String> = args.collect();
    let packets: Vec<&[u8]> = PACKETS
        .iter()
        .filter(|(name, _)| wanted.is_empty() || wanted.iter().any(|w| w == name))
        .map(|(_, p)| *p)
        .collect();
    if packets.is_empty() {
        let names: Vec<&str> = PACKETS.iter().map(|(name, _)| *name).collect();
        eprintln!("parse-cost: no such seed; choose from {}", names.join(" "));
        std::process::exit(2);
    }
    for (name, p) in PACKETS {
        if !matches!(
            parse_with(p, RxMeta::default()),
            Ok(Packet::Tcp { .. } | Packet::EchoRequest { .. })
        ) {
            eprintln!("parse-cost: seed {name} does not parse as TCP or echo");
            std::process::exit(1);
        }
    }
    for trusted in [false, true] {
        let meta = RxMeta {
            checksum_trusted: trusted,
        };
        let start = Instant::now();
        let mut accepted = 0u64;
        for _ in 0..rounds {
            for p in &packets {
                accepted += u64::from(parse_with(black_box(p), meta).is_ok());
            }
        }
        let n = rounds * packets.len() as u64;
        let ns = start.elapsed().as_nanos() as f64 / n as f64;
        println!(
            "checksum {}: {n} parses, {ns:.1} ns/packet ({accepted} accepted)",
            if trusted { "trusted" } else { "verified" }
        );
    }
}
