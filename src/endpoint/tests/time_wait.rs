//! TIME-WAIT as a record (issue 23) seen from outside: the wire, `status`, the traces, the
//! counts and limits.

use super::*;

const REQUEST: &[u8] = b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";

fn quad80() -> Quad {
    Quad {
        local: "198.18.0.2:80".parse().unwrap(),
        remote: "198.18.0.1:40000".parse().unwrap(),
    }
}

/// An HTTP request with `Connection: close`: synack closes first, the client ACKs and sends
/// its FIN, and synack's ACK of it leaves the connection in TIME-WAIT. Returns the client's
/// FIN.
fn into_time_wait(net: &mut Net) -> TcpSegment<'static> {
    into_time_wait_from(net, FROM_PEER.src_port)
}

/// `into_time_wait` from the peer's `src_port`.
fn into_time_wait_from(net: &mut Net, src_port: u16) -> TcpSegment<'static> {
    let from = TcpSegment {
        src_port,
        dst_port: 80,
        ..FROM_PEER
    };
    let out = net.send(&TcpSegment {
        flags: Flags::SYN,
        ..from
    });
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].flags, Flags::SYN | Flags::ACK);
    let iss = out[0].seq;
    let out = net.send(&TcpSegment {
        seq: PEER_ISN.add(1),
        ack: iss.add(1),
        flags: Flags::ACK | Flags::PSH,
        payload: REQUEST,
        ..from
    });
    let fin = out.last().unwrap();
    assert!(fin.flags.fin(), "we close first");
    let fin = TcpSegment {
        seq: PEER_ISN.add(1 + REQUEST.len() as u32),
        ack: fin.seq.add(fin.payload.len() as u32 + 1),
        flags: Flags::ACK | Flags::FIN,
        ..from
    };
    let out = net.send(&fin);
    assert_eq!(out.len(), 1, "the FIN is ACKed");
    fin
}

#[test]
fn a_connection_in_time_wait_becomes_a_record_that_status_lists() {
    let mut net = Net::v4();
    net.ep.set_collect_ladders(true);
    into_time_wait(&mut net);
    let quad = quad80();
    // The whole connection is gone from the table; the record stands for it.
    assert!(net.ep.table.is_empty());
    assert!(net.ep.slots.iter().all(|s| s.entry.is_none()));
    assert_eq!(net.ep.time_waits.len(), 1);
    assert_eq!(net.ep.time_wait_count(), 1);
    assert_eq!(net.ep.connection_count(), 1);
    assert_eq!(net.ep.connection_state(&quad), Some(State::TimeWait));
    assert_eq!(net.ep.states().collect::<Vec<_>>(), [State::TimeWait]);
    // `synack status`, whole and paged, lists it as TIME-WAIT with its service.
    let rows = net.ep.snapshot(net.now);
    let row = rows.iter().find(|r| r.peer == Some(quad.remote)).unwrap();
    assert_eq!(
        (row.state, row.app, row.local),
        (State::TimeWait, "http", quad.local)
    );
    for page in 1..4 {
        let mut cursor = StatusCursor::default();
        let mut paged = Vec::new();
        while !cursor.is_done() {
            paged.extend(net.ep.snapshot_page(net.now, &mut cursor, page));
        }
        assert_eq!(
            paged.iter().filter(|r| r.state == State::TimeWait).count(),
            1,
            "{paged:?}"
        );
    }
    // Not yet among the recently closed; its diagram is there, ending in TIME-WAIT.
    assert_eq!(net.ep.recently_closed().count(), 0);
    let svg = net.ep.ladder_svg(&quad).expect("its diagram");
    assert!(svg.contains("TIME-WAIT"));
    assert!(net.ep.take_finished_ladders().is_empty(), "not over yet");
    let (_, page) = net
        .ep
        .render_page(net.now, crate::observe::Page::Connection(quad))
        .expect("its page");
    assert!(
        page.contains("Open: reload") && page.contains("TIME-WAIT"),
        "{page}"
    );
    assert!(
        net.ep
            .metrics()
            .contains("synack_connections{state=\"TIME-WAIT\"} 1\n")
    );
    let (_, ladder) = net.ep.ladders().pop().expect("synack trace shows it");
    assert!(ladder.contains("→ TIME-WAIT"), "{ladder}");
    // 2·MSL later it ends: the ladder shows the end, the row is among the closed.
    let entered = net.now;
    assert!(net.advance().is_empty());
    assert_eq!(net.now - entered, Duration::from_secs(1));
    assert_eq!(net.ep.connection_count(), 0);
    assert_eq!(net.ep.time_wait_count(), 0);
    let ladders = net.ep.take_finished_ladders();
    assert_eq!(ladders.len(), 1);
    assert!(
        ladders[0].1.contains("TIME-WAIT → CLOSED (2·MSL elapsed)"),
        "{}",
        ladders[0].1
    );
    let closed: Vec<_> = net.ep.recently_closed().collect();
    assert_eq!(closed.len(), 1);
    assert_eq!(closed[0].state, State::Closed);
    assert_eq!(net.ep.poll_timeout(), None, "nothing left to wake for");
}

#[test]
fn records_are_found_by_their_four_tuple_as_the_index_grows_and_shrinks() {
    // Issue 23: the TIME-WAIT index keeps slot numbers only (index.rs), so growing and
    // shrinking it hash each record's own key again.
    let mut net = Net::v4();
    let quad = |port: u16| Quad {
        remote: SocketAddr::new(ip(PEER4), port),
        ..quad80()
    };
    let (early, late) = (30_000..30_300, 30_300..30_400);
    for port in early.clone() {
        into_time_wait_from(&mut net, port);
    }
    // Half of TIME-WAIT (1 s here) later, the last hundred.
    net.now += Duration::from_millis(500);
    for port in late.clone() {
        into_time_wait_from(&mut net, port);
    }
    assert_eq!(net.ep.time_waits.len(), 400);
    for port in early.clone().chain(late.clone()) {
        assert_eq!(net.ep.connection_state(&quad(port)), Some(State::TimeWait));
    }
    assert_eq!(net.ep.connection_state(&quad(29_999)), None);
    // The first 300 end; the index shrinks to the rest, which are still found.
    net.now += Duration::from_millis(600);
    let mut tx: Vec<Vec<u8>> = Vec::new();
    net.ep.poll(net.now, &mut tx);
    assert_eq!(net.ep.time_waits.len(), 100);
    net.ep.release_memory();
    for port in early {
        assert_eq!(net.ep.connection_state(&quad(port)), None, "{port}");
    }
    for port in late {
        assert_eq!(net.ep.connection_state(&quad(port)), Some(State::TimeWait));
    }
    // A new record takes a freed slot and is found.
    into_time_wait_from(&mut net, 31_000);
    assert_eq!(
        net.ep.connection_state(&quad(31_000)),
        Some(State::TimeWait)
    );
    assert_eq!(net.ep.time_waits.len(), 101);
}

#[test]
fn a_record_reacks_a_retransmitted_fin_restarts_2msl_and_its_trace_shows_it() {
    let mut net = Net::v4();
    let fin = into_time_wait(&mut net);
    net.now += Duration::from_millis(600);
    let out = net.send(&fin);
    assert_eq!(out.len(), 1, "re-ACKed");
    assert_eq!((out[0].flags, out[0].ack), (Flags::ACK, fin.seq.add(1)));
    let restarted = net.now;
    assert!(net.advance().is_empty());
    assert_eq!(net.now - restarted, Duration::from_secs(1), "2·MSL again");
    assert_eq!(net.ep.connection_count(), 0);
    let svg = net.ep.ladder_svg(&quad80()).unwrap();
    assert!(svg.contains("TIME-WAIT re-ACK"), "{svg}");
}

#[test]
fn a_rst_does_not_end_a_record_and_an_old_syn_gets_a_rate_limited_ack() {
    let mut net = Net::v4();
    let fin = into_time_wait(&mut net);
    // RFC 1337: a RST at RCV.NXT is ignored.
    let out = net.send(&TcpSegment {
        seq: fin.seq.add(1),
        flags: Flags::RST,
        ..fin
    });
    assert!(out.is_empty());
    assert_eq!(net.ep.connection_state(&quad80()), Some(State::TimeWait));
    // A SYN below RCV.NXT does not reopen it (RFC 6191): TIME-WAIT answers with an ACK,
    // one per half second at most.
    let syn = TcpSegment {
        seq: PEER_ISN,
        ack: SeqNum::new(0),
        flags: Flags::SYN,
        ..fin
    };
    assert_eq!(net.send(&syn).len(), 1);
    assert!(net.send(&syn).is_empty(), "rate-limited");
    assert_eq!(net.ep.stats().out_of_window_acks_skipped, 1);
    assert_eq!(net.ep.connection_state(&quad80()), Some(State::TimeWait));
}

#[test]
fn a_new_syn_reopens_a_record_with_a_higher_iss() {
    let mut net = Net::v4();
    let fin = into_time_wait(&mut net);
    let out = net.send(&TcpSegment {
        seq: fin.seq.add(100_000),
        ack: SeqNum::new(0),
        flags: Flags::SYN,
        ..fin
    });
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].flags, Flags::SYN | Flags::ACK);
    assert!(out[0].seq.gt(fin.ack), "ISS above the old SND.NXT (MAY-2)");
    assert_eq!(net.ep.time_waits.len(), 0);
    assert_eq!(net.ep.time_wait_count(), 0);
    assert_eq!(net.ep.connection_state(&quad80()), Some(State::SynReceived));
}

#[test]
fn records_count_against_max_time_wait_and_shutdown_drains_past_them() {
    let mut net = Net::v4();
    net.ep = std::mem::replace(
        &mut net.ep,
        Endpoint::new(EndpointConfig::default(), [0; 16], Instant::ZERO),
    )
    .with_limits(Limits {
        max_time_wait: 1,
        ..Limits::default()
    });
    into_time_wait(&mut net);
    assert_eq!(net.ep.time_waits.len(), 1);
    // The next connection to close would be the second: it skips TIME-WAIT.
    let iss = {
        let out = net.send(&TcpSegment {
            src_port: 40001,
            dst_port: 80,
            flags: Flags::SYN,
            ..FROM_PEER
        });
        out[0].seq
    };
    let out = net.send(&TcpSegment {
        src_port: 40001,
        dst_port: 80,
        seq: PEER_ISN.add(1),
        ack: iss.add(1),
        flags: Flags::ACK | Flags::PSH,
        payload: REQUEST,
        ..FROM_PEER
    });
    let last = out.last().unwrap();
    net.send(&TcpSegment {
        src_port: 40001,
        dst_port: 80,
        seq: PEER_ISN.add(1 + REQUEST.len() as u32),
        ack: last.seq.add(last.payload.len() as u32 + 1),
        flags: Flags::ACK | Flags::FIN,
        ..FROM_PEER
    });
    assert_eq!(net.ep.stats().time_wait_overflow, 1);
    assert_eq!(net.ep.time_wait_count(), 1);
    assert_eq!(net.ep.connection_count(), 1);
    // Shutting down: TIME-WAIT counts as drained.
    net.ep.shutdown(net.now);
    assert!(net.ep.is_drained());
}

#[test]
fn a_connection_our_client_or_a_socket_still_reads_stays_whole() {
    // A socket that still holds its connection reads it in TIME-WAIT (sockets.rs); so does
    // our own client (client.rs). Only connections nobody reads become records.
    let mut net = Net::v4();
    into_time_wait(&mut net);
    assert_eq!(
        net.ep.time_waits.len(),
        1,
        "a service's connection: a record"
    );
    let entry = Entry::new(
        Connection::connect(net.now, quad80(), SeqNum::new(1), 1460, &net.ep.tcp.clone()),
        App::Socket(crate::services::SocketApp::default()),
    );
    assert!(entry.may_retire(), "a socket's connection no program holds");
    let mut held = crate::services::SocketApp::default();
    held.attach(SocketHandle(1));
    let entry = Entry {
        app: App::Socket(held),
        ..entry
    };
    assert!(!entry.may_retire(), "a socket still held");
}
