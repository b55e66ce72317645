//! Buffer autotuning over a long fat path (issue 9): the endpoint's receive window grows to
//! the path (Linux's dynamic right-sizing) and our sender's buffer follows its congestion
//! window, so one connection fills a 40 ms path. Virtual time, deterministic.

use crate::pair::{Pair, Scenario, ServerKind};
use synack::time::Duration;

/// Move `bytes` over `rate` bit/s and 40 ms of round trip: uploaded to the endpoint's
/// discard service, or downloaded from a bare connection sending them (`BareSource`).
/// Returns (the largest window the receiver offered, when it first reached `2 * BDP`, how
/// long until every byte was delivered).
fn transfer(server: ServerKind, bytes: u64, rate: u64) -> (u32, Option<Duration>, Duration) {
    let sc = Scenario {
        server,
        bytes,
        link: format!(
            "delay=20ms,rate={}mbit,limit=100000,seed=9",
            rate / 1_000_000
        )
        .parse()
        .unwrap(),
        budget: Duration::from_secs(120),
        gso: false,
        edges: Default::default(),
    };
    let bdp = u32::try_from(rate / 8 / 25).unwrap();
    let mut pair = Pair::new(&sc);
    let start = pair.now;
    let (mut max_wnd, mut full_at) = (0, None);
    loop {
        let more = pair.drive().unwrap();
        // The window the receiver offered: as the client sees it on an upload, as the
        // client offers it on a download.
        let wnd = if server == ServerKind::BareSource {
            pair.client.conn.rcv_wnd()
        } else {
            pair.client.conn.snd_wnd()
        };
        max_wnd = max_wnd.max(wnd);
        if full_at.is_none() && wnd >= 2 * bdp {
            full_at = Some(pair.now - start);
        }
        let done = if server == ServerKind::BareSource {
            pair.client.checker.received == bytes
        } else {
            pair.client.source.done() && pair.client.conn.send_queue() == 0
        };
        if done {
            return (max_wnd, full_at, pair.now - start);
        }
        assert!(
            more && pair.now - start < sc.budget,
            "stalled: {}",
            pair.describe()
        );
    }
}

#[test]
fn receive_autotuning_reaches_twice_the_bdp_and_fills_a_40_ms_path() {
    let rate = 200_000_000;
    let bytes = 48 << 20;
    let bdp = u32::try_from(rate / 8 / 25).unwrap();
    let (max_wnd, full_at, elapsed) = transfer(ServerKind::EndpointDiscard, bytes, rate);
    eprintln!(
        "autotuning at 40 ms: max window {max_wnd}, 2 x BDP after {full_at:?}, done after {elapsed:?}"
    );
    assert!(
        max_wnd >= 2 * bdp,
        "the window reached only {max_wnd} bytes (BDP {bdp})"
    );
    let full_at = full_at.expect("reached 2 x BDP");
    assert!(
        full_at < Duration::from_secs(1),
        "2 x BDP only after {full_at:?}"
    );
    // The bytes need 2.0 s at the link's rate; slow start and the handshake take a few round
    // trips more. A fixed 256 KiB window would need 6.3 s.
    let ideal = Duration::from_micros(bytes * 8 * 1_000_000 / rate);
    assert!(
        elapsed < ideal + ideal / 4,
        "{elapsed:?} for {bytes} bytes (the path needs {ideal:?})"
    );
}

#[test]
fn send_autotuning_keeps_a_bulk_sender_ahead_of_a_40_ms_path() {
    // Our own connection sends: its send buffer starts at 64 KiB and must grow with cwnd and
    // the receiver's window (tcp_sndbuf_expand), or the path stays mostly empty.
    let rate = 200_000_000;
    let bytes = 48 << 20;
    let (max_wnd, _, elapsed) = transfer(ServerKind::BareSource, bytes, rate);
    eprintln!("download at 40 ms: max window {max_wnd}, done after {elapsed:?}");
    let ideal = Duration::from_micros(bytes * 8 * 1_000_000 / rate);
    assert!(
        elapsed < ideal + ideal / 4,
        "{elapsed:?} for {bytes} bytes (the path needs {ideal:?})"
    );
}

/// Echo 4 MiB through the endpoint under a `--max-buffer-memory` of 40 KiB: memory pressure
/// comes and goes, the transfer never stalls, and the window the endpoint offers never moves
/// its right edge left.
#[test]
fn memory_pressure_is_entered_and_left_smoothly_without_a_stall_or_a_shrunk_window() {
    use crate::nodes::EndpointServer;
    use synack::endpoint::Limits;
    use synack::services::ServiceKind;

    let bytes = 4 << 20;
    let sc = Scenario {
        server: ServerKind::EndpointEcho,
        bytes,
        link: "delay=5ms,rate=100mbit,seed=3".parse().unwrap(),
        budget: Duration::from_secs(120),
        gso: false,
        edges: Default::default(),
    };
    let mut pair = Pair::new(&sc);
    let limits = Limits {
        max_buffer_memory: 40 << 10,
        ..Limits::default()
    };
    let server = EndpointServer::with_limits(pair.now, ServiceKind::Echo, [7; 16], false, limits);
    pair.server = Box::new(server);
    let start = pair.now;
    let mut edge = None;
    let counters;
    loop {
        let more = pair.drive().unwrap();
        // The right edge of the window the endpoint offered, as the client sees it.
        let conn = &pair.client.conn;
        if conn.state().is_synchronized() {
            let right = conn.snd_una().add(conn.snd_wnd());
            if let Some(prev) = edge {
                assert!(
                    right.ge(prev),
                    "the right edge moved left: {}",
                    pair.describe()
                );
            }
            edge = Some(right);
        }
        if pair.client.checker.received == bytes {
            counters = pair.server.describe();
            break;
        }
        assert!(
            more && pair.now - start < Duration::from_secs(60),
            "stalled: {}",
            pair.describe()
        );
    }
    let elapsed = pair.now - start;
    eprintln!("echo under a 40 KiB memory cap: {elapsed:?}; {counters}");
    assert!(counters.contains("memory_pressure_entered"), "{counters}");
    // 4 MiB each way at 100 Mbit/s is 0.34 s; no stall waits for a probe or an RTO.
    assert!(elapsed < Duration::from_secs(10), "{elapsed:?}");
}

#[test]
fn send_autotuning_does_not_queue_more_than_a_short_path_holds() {
    // 200 Mbit/s and 2 ms of round trip hold 50 KB; the link queues whatever it is given
    // and never drops, so cwnd and the receiver's window grow without bound. The sender's
    // buffer stays near what the path holds instead of filling the queue (bufferbloat).
    let bytes = 16 << 20;
    let sc = Scenario {
        server: ServerKind::EndpointDiscard,
        bytes,
        link: "delay=1ms,rate=200mbit,limit=100000,seed=5"
            .parse()
            .unwrap(),
        budget: Duration::from_secs(60),
        gso: false,
        edges: Default::default(),
    };
    let mut pair = Pair::new(&sc);
    let start = pair.now;
    let (mut max_buf, mut max_cwnd) = (0, 0);
    while !(pair.client.source.done() && pair.client.conn.send_queue() == 0) {
        let more = pair.drive().unwrap();
        max_buf = max_buf.max(pair.client.conn.snd_buf());
        max_cwnd = max_cwnd.max(pair.client.conn.cwnd());
        assert!(more && pair.now - start < sc.budget, "{}", pair.describe());
    }
    let elapsed = pair.now - start;
    eprintln!("short path: send buffer at most {max_buf}, cwnd {max_cwnd}, {elapsed:?}");
    assert!(max_buf <= 1 << 20, "the send buffer grew to {max_buf}");
    let ideal = Duration::from_micros(bytes * 8 / 200);
    assert!(
        elapsed < ideal + ideal / 4,
        "{elapsed:?} (the path needs {ideal:?})"
    );
}
