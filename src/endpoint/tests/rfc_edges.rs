//! Issue 13 at the endpoint: a SYN at TIME-WAIT (RFC 9293 §3.10.7.4 MAY-2, RFC 6191) and a
//! segment for a connection that closed earlier in the same batch (§3.10.7.1–2).

use super::*;

impl Net {
    /// Deliver every segment as one batch (as the driver does with what one read drains),
    /// then poll once.
    fn batch(&mut self, segs: &[TcpSegment<'_>]) -> Vec<Out> {
        let mut tx: Vec<Vec<u8>> = Vec::new();
        for seg in segs {
            let mut buf = vec![0; 65536];
            let n = wire::emit_tcp(&mut buf, self.peer, self.us, seg).unwrap();
            self.ep.receive(self.now, &buf[..n], &mut tx);
        }
        self.ep.poll(self.now, &mut tx);
        tx.iter().map(|p| parse_out(p)).collect()
    }
}

const PEER_PORT: u16 = 9000;

/// `synack connect` to the peer's port 9000, sending "hi", through to TIME-WAIT (we close
/// first). Returns our address, the peer's segment template and RCV.NXT.
fn active_open_in_time_wait(net: &mut Net) -> (SocketAddr, TcpSegment<'static>, SeqNum) {
    let remote = SocketAddr::new(net.peer, PEER_PORT);
    let id = net.ep.connect(net.now, remote, b"hi".to_vec()).unwrap();
    let local = net.ep.client_local(id).unwrap();
    let out = net.advance();
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].flags, Flags::SYN);
    let iss = out[0].seq;
    let from_peer = TcpSegment {
        src_port: PEER_PORT,
        dst_port: local.port(),
        ..FROM_PEER
    };
    let out = net.send(&TcpSegment {
        ack: iss.add(1),
        flags: Flags::SYN | Flags::ACK,
        options: TcpOptions {
            mss: Some(1460),
            ..TcpOptions::EMPTY
        },
        ..from_peer
    });
    let fin = out.iter().find(|o| o.flags.fin()).expect("data and FIN");
    let our_end = fin.seq.add(fin.payload.len() as u32 + 1);
    let rcv_nxt = PEER_ISN.add(1);
    net.send(&TcpSegment {
        seq: rcv_nxt,
        ack: our_end,
        flags: Flags::ACK | Flags::FIN,
        ..from_peer
    });
    let quad = Quad { local, remote };
    assert_eq!(net.ep.connection_state(&quad), Some(State::TimeWait));
    (
        local,
        TcpSegment {
            ack: our_end,
            ..from_peer
        },
        rcv_nxt.add(1),
    )
}

#[test]
fn a_syn_at_the_time_wait_of_our_own_active_open_is_answered_with_an_ack() {
    let mut net = Net::v4();
    let (local, from_peer, rcv_nxt) = active_open_in_time_wait(&mut net);
    // No listener on our ephemeral port: TIME-WAIT stays and answers with an ACK.
    let out = net.send(&TcpSegment {
        seq: rcv_nxt.add(1000),
        ack: SeqNum::new(0),
        flags: Flags::SYN,
        ..from_peer
    });
    assert_eq!(out.len(), 1, "{out:?}");
    assert_eq!(
        (out[0].flags, out[0].seq, out[0].ack),
        (Flags::ACK, from_peer.ack, rcv_nxt)
    );
    let quad = Quad {
        local,
        remote: SocketAddr::new(net.peer, PEER_PORT),
    };
    assert_eq!(net.ep.connection_state(&quad), Some(State::TimeWait));
}

/// A passive HTTP connection with timestamps (the peer's TSval starts at 1000), closed by us
/// (`Connection: close`), in TIME-WAIT. Returns the peer's template and RCV.NXT.
fn passive_time_wait_with_timestamps(net: &mut Net) -> (TcpSegment<'static>, SeqNum) {
    let ts = |tsval: u32| TcpOptions {
        timestamps: Some((tsval, 0)),
        ..TcpOptions::EMPTY
    };
    let from_peer = TcpSegment {
        dst_port: 80,
        ..FROM_PEER
    };
    let out = net.send(&TcpSegment {
        flags: Flags::SYN,
        options: TcpOptions {
            mss: Some(1460),
            ..ts(1000)
        },
        ..from_peer
    });
    let iss = out[0].seq;
    let req = b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    let out = net.send(&TcpSegment {
        seq: PEER_ISN.add(1),
        ack: iss.add(1),
        flags: Flags::ACK | Flags::PSH,
        payload: req,
        options: ts(1001),
        ..from_peer
    });
    let fin = out.iter().find(|o| o.flags.fin()).expect("we close first");
    let our_end = fin.seq.add(fin.payload.len() as u32 + 1);
    let rcv_nxt = PEER_ISN.add(1 + req.len() as u32);
    net.send(&TcpSegment {
        seq: rcv_nxt,
        ack: our_end,
        flags: Flags::ACK | Flags::FIN,
        options: ts(1002),
        ..from_peer
    });
    let quad = Quad {
        local: SocketAddr::new(net.us, 80),
        remote: SocketAddr::new(net.peer, 40000),
    };
    assert_eq!(net.ep.connection_state(&quad), Some(State::TimeWait));
    (
        TcpSegment {
            ack: our_end,
            ..from_peer
        },
        rcv_nxt.add(1),
    )
}

#[test]
fn with_timestamps_a_syn_reopens_time_wait_only_with_a_newer_tsval() {
    let mut net = Net::v4();
    let (from_peer, rcv_nxt) = passive_time_wait_with_timestamps(&mut net);
    let syn = |seq: SeqNum, tsval: u32| TcpSegment {
        seq,
        ack: SeqNum::new(0),
        flags: Flags::SYN,
        options: TcpOptions {
            mss: Some(1460),
            timestamps: Some((tsval, 0)),
            ..TcpOptions::EMPTY
        },
        ..from_peer
    };
    // RFC 6191: a SYN above RCV.NXT but with an older TSval may be an old duplicate: TIME-WAIT
    // stays (and answers with an ACK).
    let out = net.send(&syn(rcv_nxt.add(1000), 900));
    assert!(out.iter().all(|o| o.flags == Flags::ACK), "{out:?}");
    assert_eq!(net.ep.connection_count(), 1);
    assert_eq!(net.ep.states().next(), Some(State::TimeWait));
    // A newer TSval reopens it, even below RCV.NXT.
    let out = net.send(&syn(rcv_nxt.sub(10), 5000));
    assert_eq!(out.len(), 1, "{out:?}");
    assert_eq!(out[0].flags, Flags::SYN | Flags::ACK);
    assert!(
        out[0].seq.gt(from_peer.ack),
        "MAY-2 (1): ISS above the old SND.NXT"
    );
    assert_eq!(net.ep.states().next(), Some(State::SynReceived));
}

#[test]
fn a_segment_for_a_connection_closed_earlier_in_the_batch_is_for_no_connection() {
    // A RST closes the connection; a new SYN from the same port in the same batch gets a
    // SYN,ACK from the listener.
    let mut net = Net::v4();
    let iss = net.connect(7);
    let rst = TcpSegment {
        seq: PEER_ISN.add(1),
        flags: Flags::RST,
        ..FROM_PEER
    };
    let syn = TcpSegment {
        seq: PEER_ISN.add(100_000),
        flags: Flags::SYN,
        ..FROM_PEER
    };
    let out = net.batch(&[rst, syn]);
    assert_eq!(out.len(), 1, "{out:?}");
    assert_eq!(
        (out[0].flags, out[0].ack),
        (Flags::SYN | Flags::ACK, PEER_ISN.add(100_001))
    );
    assert_eq!(
        net.ep.stats().established_resets,
        1,
        "the first one was counted"
    );

    // An ACK after the RST, in the same batch: as for LISTEN, <SEQ=SEG.ACK><CTL=RST>.
    let mut net = Net::v4();
    let iss2 = net.connect(7);
    let ack = TcpSegment {
        seq: PEER_ISN.add(1),
        ack: iss2.add(1),
        flags: Flags::ACK,
        payload: b"late",
        ..FROM_PEER
    };
    let out = net.batch(&[rst, ack]);
    assert_eq!(out.len(), 1, "{out:?}");
    assert_eq!((out[0].flags, out[0].seq), (Flags::RST, iss2.add(1)));
    let _ = iss;
}
