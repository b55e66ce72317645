"""Crafted packets from 198.18.0.7 / 2001:2::7 for what kernel clients cannot produce.

Naming: the peer's `snd_nxt` is synack's RCV.NXT and the peer's `rcv_nxt` is synack's SND.NXT.
Every "nothing comes back" test then shows the path still works with a valid segment, so a
dead daemon or a broken harness cannot pass it.
"""

import time

import pytest

from harness import (
    DEFAULT_MSS,
    IP,
    TCP,
    describe,
    describe_all,
    flagset,
    log_has,
    mss,
    payload,
    seq_add,
)

FAMILIES = [pytest.param(4, id="ipv4"), pytest.param(6, id="ipv6")]


def assert_answers_syn(peer, family=4, dport=7):
    """A fresh SYN from another port gets a SYN+ACK: synack is alive and listening."""
    fresh = peer(family, dport)
    fresh.syn()
    fresh.expect_synack()


def assert_silent(p, timeout=1.0):
    got = p.expect_nothing(timeout)
    assert got == [], f"expected no answer, got:\n{describe_all(got)}"


def assert_challenge_ack(p, timeout=2.0):
    """<SEQ=SND.NXT><ACK=RCV.NXT><CTL=ACK> (RFC 9293 §3.10.7.4, RFC 5961)."""
    a = p.expect(flags="A", timeout=timeout)
    assert a is not None, f"no ACK; other packets: {describe_all(p.backlog)}"
    assert (a[TCP].seq, a[TCP].ack) == (p.rcv_nxt, p.snd_nxt), describe(a)
    assert not payload(a), describe(a)


def assert_echo_alive(p, msg=b"still there?\n"):
    p.send_data(msg)
    data, _ = p.collect(until=lambda d, f: len(d) >= len(msg), timeout=3)
    assert data == msg, f"connection not usable any more: got {data!r}"


# --- opening


@pytest.mark.parametrize("family", FAMILIES)
def test_syn_gets_synack_with_mss(peer, family):
    p = peer(family, 7)
    p.syn()
    sa = p.expect_synack()
    assert sa[TCP].ack == seq_add(p.iss, 1), describe(sa)
    assert mss(sa) == DEFAULT_MSS[family], describe(sa)


def test_duplicate_syn_in_syn_received_gets_the_same_synack(peer):
    p = peer(4, 7)
    syn = p.syn()
    first = p.expect_synack()
    sent = time.monotonic()
    p.send_raw(bytes(syn))
    again = p.expect(flags="SA", timeout=2)
    assert again is not None, "duplicate SYN not answered"
    assert again.time - sent < 0.5, "answer came only with the retransmission timer"
    assert (again[TCP].seq, again[TCP].ack) == (first[TCP].seq, first[TCP].ack), (
        f"{describe(first)}\n{describe(again)}"
    )


def test_withheld_final_ack_synack_is_retransmitted_with_backoff(peer):
    p = peer(4, 7)
    p.syn()
    first = p.expect_synack()
    second = p.expect(flags="SA", timeout=2.5)
    assert second is not None, "SYN+ACK not retransmitted within 2.5 s"
    third = p.expect(flags="SA", timeout=4)
    assert third is not None, "SYN+ACK not retransmitted a second time within 4 s"
    for again in (second, third):
        assert (again[TCP].seq, again[TCP].ack) == (first[TCP].seq, first[TCP].ack)
    gap1, gap2 = second.time - first.time, third.time - second.time
    assert 0.8 <= gap1 <= 1.8, f"first retransmission after {gap1:.2f}s (initial RTO is 1 s)"
    assert 1.6 <= gap2 <= 3.0 and gap2 > 1.5 * gap1, (
        f"second retransmission after another {gap2:.2f}s: no exponential backoff"
    )


def test_data_on_the_final_ack_is_delivered(peer):
    p = peer(4, 7)
    p.syn()
    p.expect_synack()
    p.send_data(b"hello\n")  # the handshake-completing ACK carries the data
    data, _ = p.collect(until=lambda d, f: len(d) >= 6, timeout=3)
    assert data == b"hello\n"


# --- segments for no connection (RFC 9293 §3.10.7.1, §3.10.7.2)


@pytest.mark.parametrize("flags", ["A", "SA", "PA"])
def test_stray_ack_to_an_open_port_gets_rst_with_seq_of_its_ack(peer, flags):
    p = peer(4, 7)
    p.send(flags, seq=1000, ack=123456789, payload=b"x" if "P" in flags else b"")
    r = p.expect(lambda x: "R" in flagset(x), timeout=2)
    assert r is not None, "no RST"
    assert flagset(r) == {"R"} and r[TCP].seq == 123456789, describe(r)


def test_stray_ack_to_a_closed_port_gets_rst(peer):
    p = peer(4, 5555)
    p.send("A", seq=1000, ack=987654)
    r = p.expect(lambda x: "R" in flagset(x), timeout=2)
    assert r is not None and flagset(r) == {"R"} and r[TCP].seq == 987654, describe(r)


@pytest.mark.parametrize("dport", [7, 5555])
@pytest.mark.parametrize("flags", ["R", "RA"])
def test_rst_for_no_connection_is_never_answered(peer, dport, flags):
    p = peer(4, dport)
    p.send(flags, seq=5000, ack=6000)
    assert_silent(p)
    assert_answers_syn(peer)


@pytest.mark.parametrize("family", FAMILIES)
def test_syn_to_a_closed_port_gets_rst_ack_seq_0(peer, family):
    p = peer(family, 5555)
    p.syn()
    r = p.expect(lambda x: "R" in flagset(x), timeout=2)
    assert r is not None, "no RST"
    assert flagset(r) == {"R", "A"}, describe(r)
    assert (r[TCP].seq, r[TCP].ack) == (0, seq_add(p.iss, 1)), describe(r)


# --- malformed input: dropped, never answered, never fatal


@pytest.mark.parametrize("family", FAMILIES)
def test_syn_with_a_bad_tcp_checksum_is_dropped(peer, family):
    p = peer(family, 7)
    syn = p.segment("S", seq=p.iss, ack=0, options=[("MSS", 1400)])
    good = syn.__class__(bytes(syn))[TCP].chksum
    syn[TCP].chksum = good ^ 0x5A5A
    p.send_raw(bytes(syn))
    assert_silent(p)
    p.syn()  # the same SYN with its checksum right
    p.expect_synack()


def test_bad_ipv4_header_checksum_is_dropped(peer):
    p = peer(4, 7)
    syn = p.segment("S", seq=p.iss, ack=0, options=[("MSS", 1400)])
    good = IP(bytes(syn)).chksum
    syn[IP].chksum = good ^ 0x5A5A
    p.send_raw(bytes(syn))
    assert_silent(p)
    p.syn()
    p.expect_synack()


def test_tcp_data_offset_below_5_is_dropped(peer, synack):
    p = peer(4, 7)
    p.send_raw(bytes(p.segment("S", seq=p.iss, ack=0, dataofs=4)))
    assert_silent(p)
    assert synack.alive()
    p.syn()
    p.expect_synack()


@pytest.mark.kernel_differs("Linux stops parsing options at a bad length and answers")
@pytest.mark.parametrize(
    "options",
    [
        pytest.param(b"\x02\x00\x05\xb4", id="mss-length-0"),
        pytest.param(b"\x02\x01\x05\xb4", id="mss-length-1"),
        pytest.param(b"\x01\x01\xfe\x00", id="unknown-length-0"),
        pytest.param(b"\x01\x01\x02\x08\x05\xb4\x00\x00", id="length-past-header"),
    ],
)
def test_syn_with_an_illegal_option_length_is_dropped_and_harmless(peer, synack, options):
    p = peer(4, 7)
    dataofs = 5 + len(options) // 4
    p.send_raw(bytes(p.segment("S", seq=p.iss, ack=0, payload=options, dataofs=dataofs)))
    assert_silent(p)
    assert synack.alive()
    assert_answers_syn(peer)


# --- synchronized states (RFC 9293 §3.10.7.4, RFC 5961)


def test_rst_at_rcv_nxt_aborts_the_connection(peer, synack):
    p = peer(4, 7)
    p.handshake()
    p.send("R", seq=p.snd_nxt, ack=0)
    assert_silent(p, 0.5)
    p.send("A")
    r = p.expect(lambda x: "R" in flagset(x), timeout=2)
    assert r is not None, "connection still there after a valid RST"
    assert flagset(r) == {"R"} and r[TCP].seq == p.rcv_nxt, describe(r)
    assert log_has(synack, rf"(?m)^(?=.*\b{p.sport}\b).*(CLOSED|reset|RST)"), (
        "the abort is not in the log"
    )


def test_in_window_rst_not_at_rcv_nxt_gets_a_challenge_ack(peer):
    p = peer(4, 7)
    p.handshake()
    p.send("R", seq=seq_add(p.snd_nxt, 100), ack=0)
    assert_challenge_ack(p)
    assert_echo_alive(p)


def test_out_of_window_rst_is_ignored(peer):
    p = peer(4, 7)
    p.handshake()
    p.send("R", seq=seq_add(p.snd_nxt, 1 << 24), ack=0)
    assert_silent(p)
    assert_echo_alive(p)


def test_syn_in_established_gets_a_challenge_ack(peer):
    p = peer(4, 7)
    p.handshake()
    p.send("S", seq=seq_add(p.snd_nxt, 10), ack=0)
    assert_challenge_ack(p)
    assert_echo_alive(p)


def test_out_of_window_data_gets_an_ack_and_is_not_delivered(peer):
    p = peer(4, 7)
    p.handshake()
    p.send("PA", seq=seq_add(p.snd_nxt, 1 << 24), payload=b"far away")
    assert_challenge_ack(p)
    assert_echo_alive(p, b"first\n")
    # an old duplicate of what was already received: ACKed again, not echoed again
    p.send("PA", seq=seq_add(p.snd_nxt, -6), payload=b"first\n")
    assert_challenge_ack(p)
    again = p.expect(lambda x: len(payload(x)) > 0, timeout=1)
    assert again is None, f"old duplicate delivered twice: {describe(again)}"


def test_out_of_order_data_is_acked_at_rcv_nxt_and_never_delivered_twice(peer):
    p = peer(4, 7)
    p.handshake()
    base = p.snd_nxt
    p.send("PA", seq=seq_add(base, 5), payload=b"WORLD")  # a hole of 5 bytes before it
    dup = p.expect(lambda x: x[TCP].ack == base and not payload(x), timeout=2)
    assert dup is not None, f"no ACK of RCV.NXT: {describe_all(p.backlog)}"
    p.send("PA", seq=base, payload=b"HELLO")  # fill the hole
    acked = p.expect(
        lambda x: x[TCP].ack in (seq_add(base, 5), seq_add(base, 10)), timeout=3, consume=False
    )
    assert acked is not None, f"HELLO not ACKed: {describe_all(p.backlog)}"
    if acked[TCP].ack == seq_add(base, 5):  # WORLD was dropped, not queued: send it again
        p.send("PA", seq=seq_add(base, 5), payload=b"WORLD")
    p.snd_nxt = seq_add(base, 10)
    data, _ = p.collect(until=lambda d, f: len(d) >= 10, timeout=4)
    assert data == b"HELLOWORLD"
    more, _ = p.collect(until=lambda d, f: False, timeout=1)
    assert more == b"", f"delivered twice: {more!r}"


# --- active close and TIME-WAIT


REQUEST = b"GET / HTTP/1.1\r\nHost: synack\r\nConnection: close\r\n\r\n"


def close_from_synack(p):
    """Request with Connection: close; receive the page and synack's FIN, ACK it (synack
    goes to FIN-WAIT-2), then send our FIN and expect its ACK (TIME-WAIT). Returns our FIN."""
    p.handshake()
    p.send_data(REQUEST)
    data, fin = p.collect(until=lambda d, f: f is not None, timeout=5)
    assert data.startswith(b"HTTP/1.1 200"), data[:100]
    assert fin is not None, "synack did not close after Connection: close"
    our_fin = p.send("FA")
    p.snd_nxt = seq_add(p.snd_nxt, 1)
    a = p.expect(lambda x: x[TCP].ack == p.snd_nxt, timeout=2)
    assert a is not None, f"our FIN not ACKed: {describe_all(p.backlog)}"
    assert flagset(a) == {"A"} and a[TCP].seq == p.rcv_nxt, describe(a)
    return our_fin


def test_active_close_goes_through_fin_wait_and_time_wait_reacks_a_retransmitted_fin(
    peer, synack
):
    p = peer(4, 80)
    our_fin = close_from_synack(p)
    for before, after in (("ESTABLISHED", "FIN-WAIT-1"), ("FIN-WAIT-1", "FIN-WAIT-2"),
                          ("FIN-WAIT-2", "TIME-WAIT")):
        assert log_has(synack, rf"(?m)^(?=.*\b{p.sport}\b).*{before}\s*(?:->|→)\s*{after}"), (
            f"no {before} -> {after} for port {p.sport} in the log"
        )
    p.send_raw(bytes(our_fin))  # the retransmitted FIN
    a = p.expect(lambda x: x[TCP].ack == p.snd_nxt, timeout=2)
    assert a is not None, "retransmitted FIN not re-ACKed in TIME-WAIT"
    assert flagset(a) == {"A"} and a[TCP].seq == p.rcv_nxt, describe(a)


@pytest.mark.kernel_differs("Linux's TIME-WAIT lasts 60 s")
@pytest.mark.synack_args("--time-wait", "1s")
def test_after_time_wait_expires_an_ack_gets_rst(peer):
    p = peer(4, 80)
    close_from_synack(p)
    entered = time.monotonic()
    rst = None
    while rst is None and time.monotonic() - entered < 5:
        p.send("A")
        rst = p.expect(lambda x: "R" in flagset(x), timeout=0.2)
    assert rst is not None, "still in TIME-WAIT 5 s after it began (--time-wait 1s)"
    assert rst.time - entered >= 0.8, f"TIME-WAIT lasted only {rst.time - entered:.2f}s"
    assert flagset(rst) == {"R"} and rst[TCP].seq == p.rcv_nxt, describe(rst)
