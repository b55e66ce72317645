"""Issue 13 on the wire: segment-arrival edge cases where synack departed from RFC 9293.

Crafted packets from 198.18.0.7, as in test_crafted.py: the peer's `snd_nxt` is synack's
RCV.NXT and its `rcv_nxt` synack's SND.NXT. The active-open cases drive `synack connect`
against the crafted peer, which answers the daemon's SYN itself.
"""

import json
import subprocess
import time

import pytest

from conftest import synack_binary, synack_cmd
from harness import PEER4, TCP, describe, describe_all, flagset, payload, seq_add

CHARGEN, ECHO = 19, 7


def data_packets(pkts):
    """The distinct data segments among `pkts`, by sequence number (retransmissions once)."""
    seen = {}
    for p in pkts:
        if payload(p):
            seen.setdefault(p[TCP].seq, payload(p))
    return seen


# --- 1. A zero window with data in flight (RFC 9293 §3.8.6.1, MUST-36/37)


def test_a_window_shut_with_data_in_flight_is_probed_with_the_head_segment(peer):
    p = peer(4, CHARGEN)
    p.send("S", seq=p.iss, ack=0, options=[("MSS", 1000)], window=2000)
    p.snd_nxt = seq_add(p.iss, 1)
    p.expect_synack()
    p.send("A", window=2000)
    first = p.expect(lambda x: payload(x), timeout=3)
    second = p.expect(lambda x: payload(x), timeout=3)
    assert first is not None and second is not None, describe_all(p.backlog)
    assert first[TCP].seq == p.rcv_nxt, describe(first)
    assert second[TCP].seq == seq_add(p.rcv_nxt, 1000), describe(second)
    head = seq_add(p.rcv_nxt, 1000)
    p.drain()
    # ACK the first segment with a zero window: the second is in flight beyond it.
    p.send("A", ack=head, window=0)
    probes = []
    for _ in range(4):
        probe = p.expect(lambda x: x[TCP].seq == head and payload(x), timeout=4)
        assert probe is not None, (
            f"no probe of the zero window after {len(probes)}; got {describe_all(p.backlog)}"
        )
        assert len(payload(probe)) == 1000, describe(probe)
        probes.append(probe.time)
        # The peer answers each probe, still with a zero window.
        p.send("A", ack=head, window=0)
    gaps = [b - a for a, b in zip(probes, probes[1:])]
    assert all(b > a for a, b in zip(gaps, gaps[1:])), f"probes back off: {gaps}"
    # The window opens: the stream goes on from the head segment.
    p.send("A", ack=head, window=2000)
    more = p.expect(lambda x: x[TCP].seq == head and payload(x), timeout=3)
    assert more is not None, describe_all(p.backlog)


# --- 2. Data numbered after a FIN (§3.10.7.4, seventh and eighth steps)


def echo_after(p, timeout=1.5):
    """What synack sends within `timeout` (not ACKed): its echoed bytes by sequence number,
    the highest ACK it sent, and whether it sent a FIN."""
    got = p.expect_nothing(timeout)
    echoed = data_packets(got)
    acks = [x[TCP].ack for x in got if "A" in flagset(x)]
    top = max(acks, key=lambda a: (a - p.snd_nxt + (1 << 31)) % (1 << 32)) if acks else None
    return echoed, top, any("F" in flagset(x) for x in got), got


def test_data_queued_beyond_a_fin_is_not_delivered(peer):
    p = peer(4, ECHO)
    p.handshake()
    base = p.snd_nxt
    # [100, 200) out of order, then [0, 100) with a FIN: the FIN takes number 100.
    p.send("PA", seq=seq_add(base, 100), payload=b"B" * 100)
    p.send("FPA", seq=base, payload=b"A" * 100)
    p.snd_nxt = seq_add(base, 101)
    echoed, top, _, got = echo_after(p)
    assert b"".join(echoed.values()) == b"A" * 100, describe_all(got)
    assert top == p.snd_nxt, f"ACK {top} instead of {p.snd_nxt}: {describe_all(got)}"


def test_data_at_or_beyond_an_early_fin_is_dropped_and_the_fin_counts(peer):
    p = peer(4, ECHO)
    p.handshake()
    base = p.snd_nxt
    # [50, 100) with a FIN at 100 beyond a hole, then [100, 200), then the hole.
    p.send("FPA", seq=seq_add(base, 50), payload=b"b" * 50)
    p.send("PA", seq=seq_add(base, 100), payload=b"C" * 100)
    p.send("PA", seq=base, payload=b"a" * 50)
    p.snd_nxt = seq_add(base, 101)
    echoed, top, fin, got = echo_after(p)
    assert b"".join(echoed[s] for s in sorted(echoed, key=lambda s: (s - base) % (1 << 32))) \
        == b"a" * 50 + b"b" * 50, describe_all(got)
    assert top == p.snd_nxt, f"ACK {top} instead of {p.snd_nxt}: {describe_all(got)}"
    assert fin, f"the FIN was taken, so echo closes too: {describe_all(got)}"


# --- 5. The window is updated only from SND.UNA =< SEG.ACK =< SND.NXT (§3.10.7.4)


def test_an_old_ack_with_a_newer_seq_does_not_shut_the_window(peer):
    p = peer(4, CHARGEN)
    p.send("S", seq=p.iss, ack=0, options=[("MSS", 1000)], window=3000)
    p.snd_nxt = seq_add(p.iss, 1)
    p.expect_synack()
    base = p.rcv_nxt
    p.send("A", window=3000)
    for i in range(3):
        seg = p.expect(lambda x, i=i: x[TCP].seq == seq_add(base, 1000 * i) and payload(x),
                       timeout=3)
        assert seg is not None, f"segment {i}: {describe_all(p.backlog)}"
    # SND.UNA moves to 1000; the window lets one more segment out.
    p.send("A", ack=seq_add(base, 1000), window=3000)
    assert p.expect(lambda x: x[TCP].seq == seq_add(base, 3000) and payload(x), timeout=3)
    # An old ACK (SEG.ACK < SND.UNA) with a newer SEQ and a zero window: no window update.
    p.send("A", seq=seq_add(p.snd_nxt, 10), ack=base, window=0)
    # Then a window update at the usual SEQ: SND.WL1 was not moved, so it is taken.
    p.send("A", ack=seq_add(base, 1000), window=6000)
    more = p.expect(lambda x: x[TCP].seq == seq_add(base, 4000) and payload(x), timeout=2)
    assert more is not None, f"the window stayed shut: {describe_all(p.backlog)}"


# --- 6. Karn's rule after a duplicate SYN (RFC 6298 §3), seen in `synack status`


@pytest.mark.kernel_differs("`synack status` is synack's own")
def test_a_synack_resent_for_a_duplicate_syn_gives_no_rtt_sample(peer):
    p = peer(4, ECHO)
    p.syn()  # no timestamps: the RTT can only be measured from the SYN,ACK's timing
    p.expect_synack()
    time.sleep(0.9)  # the peer's SYN "retransmission" timer, not a wait for synack
    p.syn()
    assert p.expect(flags="SA", timeout=3) is not None, "the SYN,ACK again"
    time.sleep(0.05)
    p.send("A")
    rows = json.loads(synack_cmd("status", "--json").stdout)
    row = next(r for r in rows if r["peer"] == f"{PEER4}:{p.sport}")
    assert row["state"] == "ESTABLISHED", row
    # No sample from the ambiguous exchange (not ~950 ms), and RFC 6298 §5.7's 3 s RTO.
    assert row["rtt_us"] is None, row
    assert row["rto_us"] == 3_000_000, row


# --- Active opens: `synack connect` to the crafted peer

active_open = pytest.mark.kernel_differs("`synack connect` is synack's own")


def start_connect(port, *args, data=None):
    return subprocess.Popen([str(synack_binary()), "connect", f"{PEER4}:{port}", *args],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)


def finish(proc, data=None, timeout=10):
    out, err = proc.communicate(input=data, timeout=timeout)
    return proc.returncode, out, err


# --- 3. A SYN at a TIME-WAIT of synack's own active open (MAY-2)


@active_open
def test_a_syn_at_the_time_wait_of_an_active_open_gets_an_ack(peer):
    p = peer(4, dport=None, sport=9000)
    proc = start_connect(9000)
    p.expect_active_open()
    p.send("SA", seq=p.iss, ack=p.rcv_nxt, options=[("MSS", 1460)])
    p.snd_nxt = seq_add(p.iss, 1)
    fin = p.expect(lambda x: "F" in flagset(x), timeout=3)
    assert fin is not None, describe_all(p.backlog)
    p.rcv_nxt = seq_add(fin[TCP].seq, len(payload(fin)) + 1)
    # ACK its FIN with ours: synack ACKs and lingers in TIME-WAIT.
    p.send("FA")
    p.snd_nxt = seq_add(p.snd_nxt, 1)
    last = p.expect(lambda x: x[TCP].ack == p.snd_nxt, flags="A", timeout=3)
    assert last is not None, describe_all(p.backlog)
    code, _, err = finish(proc)
    assert code == 0, err
    p.drain()
    # A SYN above RCV.NXT: no listener takes it, so TIME-WAIT stays and answers with an ACK.
    p.send("S", seq=seq_add(p.snd_nxt, 1000), ack=0, options=[("MSS", 1460)])
    reply = p.expect(timeout=3)
    assert reply is not None, "no answer to the SYN"
    assert flagset(reply) == {"A"}, f"expected an ACK, got {describe(reply)}"
    assert (reply[TCP].seq, reply[TCP].ack) == (p.rcv_nxt, p.snd_nxt), describe(reply)
    rows = json.loads(synack_cmd("status", "--json").stdout)
    states = [r.get("state") for r in rows if str(p.dport) in json.dumps(r)]
    assert "TIME-WAIT" in states, rows


# --- 4. Simultaneous open: the SYN,ACK's window is not scaled (RFC 7323 §2.2)


@active_open
def test_simultaneous_open_takes_the_syn_acks_window_unscaled(peer):
    p = peer(4, dport=None, sport=9001)
    proc = start_connect(9001, "--send", "-")
    proc.stdin.write(b"x" * 6000)
    proc.stdin.close()
    syn = p.expect_active_open()
    # Our SYN crosses synack's: it answers with a SYN,ACK (SYN-RECEIVED).
    ws7 = [("MSS", 1000), ("WScale", 7)]
    p.send("S", seq=p.iss, ack=0, options=ws7, window=1000)
    p.snd_nxt = seq_add(p.iss, 1)
    synack = p.expect(flags="SA", timeout=3)
    assert synack is not None, describe_all(p.backlog)
    assert synack[TCP].seq == syn[TCP].seq and synack[TCP].ack == p.snd_nxt, describe(synack)
    # Our SYN,ACK to its SYN: window 1000, which a SYN never scales.
    p.send("SA", seq=p.iss, ack=p.rcv_nxt, options=ws7, window=1000)
    got = p.expect_nothing(1.0)
    sent = sum(len(payload(x)) for x in got)
    assert sent == 1000, f"{sent} bytes sent into a window of 1000: {describe_all(got)}"
    proc.kill()
    proc.wait()


# --- 8. A RST in SYN-RECEIVED of an active open is "connection refused" (§3.10.7.4)


@active_open
def test_a_rst_after_a_simultaneous_open_is_connection_refused(peer):
    p = peer(4, dport=None, sport=9002)
    proc = start_connect(9002)
    p.expect_active_open()
    p.send("S", seq=p.iss, ack=0, options=[("MSS", 1460)])
    p.snd_nxt = seq_add(p.iss, 1)
    assert p.expect(flags="SA", timeout=3) is not None, describe_all(p.backlog)
    p.send("R", seq=p.snd_nxt, ack=0)
    code, _, err = finish(proc)
    assert code == 1
    assert b"connection refused" in err, err
