//! Stack bugs the simulation found, each kept as the smallest test that failed, now passing:
//! regressions. (Fixed: SWS avoidance and Nagle apply to new data only and a timer runs while
//! data is in flight; the FIN-WAIT-2 timeout is for orphans only; R2 counts retransmissions
//! like Linux and timestamps give RTT samples during recovery.)

use crate::pair::{Scenario, ServerKind, run};
use crate::scripted::{Bare, OUR_ISS, PEER_ISN};
use synack::tcp::{Config, Socket, State};
use synack::time::Duration;

/// After a retransmission timeout, go-back-N restarts at SND.UNA; when the peer's window
/// there is below one MSS and below half the largest window it offered, sender SWS avoidance
/// (RFC 9293 §3.8.6.2.1) refuses to resend the data, and since the retransmission timer is
/// only re-armed when something is sent, no timer is left: the data in flight is never
/// retransmitted and the connection hangs (the peer, whose window our pure ACKs at SND.NXT now
/// fall outside of, eventually gives up after R2). Found by
/// `SIM_SEED=1 cargo test --test sim large_echo_16_mib_under_mixed_faults -- --ignored`.
/// SWS avoidance is for new data, and RFC 6298 §5.4-5.6 retransmits and restarts the timer.
#[test]
fn retransmission_into_a_small_window_is_not_blocked_by_sws_avoidance() {
    let mut b = Bare::established(4000, Config::default());
    b.send(10_000);
    // Two full segments; the 1080 bytes left in the window wait (SWS: 1080 < 4000 / 2).
    assert_eq!(b.output(), [(0, 1460), (1460, 1460)]);
    // The peer ACKs both; its buffer is full but for 1080 bytes (right edge unmoved).
    b.ack(2920, 1080);
    assert!(b.output().is_empty());
    // The persist timer overrides SWS avoidance: 1080 bytes go out. The peer loses them.
    b.advance().expect("persist timer");
    assert_eq!(b.output(), [(2920, 1080)]);
    // The retransmission timer fires: those 1080 bytes must be sent again.
    b.advance().expect("retransmission timer");
    let out = b.output();
    assert!(
        out.contains(&(2920, 1080)) || b.conn.poll_timeout().is_some(),
        "data in flight, nothing retransmitted and no timer armed: the connection hangs"
    );
}

/// `Socket::close` is RFC 9293's CLOSE, a half-close: "the user can continue to RECEIVE"
/// (§3.10.4). The stack arms Linux's orphan timeout (tcp_fin_timeout, 60 s) on entering
/// FIN-WAIT-2 even though the application is still reading, and resets the connection 60 s
/// later however much data is still arriving. Linux applies it only to orphaned sockets (not
/// after shutdown(SHUT_WR)). Found by the sweeps with the default timeout, e.g.
/// `SIM_SEED=27 cargo test --test sim sweep_loss_2` before `sim_config` raised it.
#[test]
fn half_closed_download_outlives_the_fin_wait_2_timeout() {
    let mut b = Bare::established(65535, Config::default());
    b.conn.close();
    assert_eq!(b.output(), [(0, 0)]); // our FIN
    b.ack(1, 65535);
    assert_eq!(b.conn.state(), State::FinWait2);
    // The peer keeps sending, 1000 bytes every 10 s, for two minutes; we read everything.
    let start = b.now;
    let data = [7u8; 1000];
    let mut offset = 0u32;
    while b.now - start < Duration::from_secs(120) {
        let seg = synack::wire::TcpSegment {
            payload: &data,
            ack: OUR_ISS.add(2),
            ..Bare::peer_segment(PEER_ISN.add(1).add(offset), 65535)
        };
        b.conn.on_segment(b.now, &seg);
        offset += 1000;
        let mut sink = [0u8; 2000];
        while b.conn.recv(&mut sink) > 0 {}
        b.output();
        b.now += Duration::from_secs(10);
        if b.conn.poll_timeout().is_some_and(|t| t <= b.now) {
            b.conn.handle_timeout(b.now);
            b.output();
        }
        assert_eq!(
            b.conn.reset_cause(),
            None,
            "reset after {:?} in FIN-WAIT-2 while data was still arriving",
            b.now - start
        );
    }
}

/// Under 10 % loss with the stack's default RTO ceiling (60 s), the backed-off RTO never
/// collapses during go-back-N recovery (no RTT sample is possible, RFC 6298 §3/§5), so it
/// climbs to 60 s and two consecutive losses of one segment exceed R2 (100 s): the connection
/// is aborted. Linux counts R2 in retransmissions (tcp_retries2 = 15), not in time. The
/// sweeps run with a 2 s ceiling (`nodes::MAX_RTO`) until recovery is fixed (fast retransmit,
/// SACK, timestamps).
#[test]
fn ten_percent_loss_with_the_default_rto_ceiling_completes() {
    let sc = Scenario {
        server: ServerKind::BareSink,
        bytes: 1_037_028,
        link: "loss=10%,delay=7ms,jitter=1293us,seed=16".parse().unwrap(),
        budget: Duration::from_secs(3600),
        gso: false,
        edges: Default::default(),
    };
    if let Err(e) = run(&sc) {
        panic!("--impair {}: {e}", sc.link);
    }
}
