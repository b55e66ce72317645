"""A hostile link (issue #4): blind injection against a real kernel connection, a SYN flood
with a real client connecting during it, SYN cookies, limits, keep-alive, and malformed
headers and options. Crafted packets come from the harness's Peer (AF_PACKET on synack0)."""

import random
import re
import socket
import struct
import subprocess
import threading
import time

import pytest

from harness import (
    HOST4,
    IP,
    SYNACK4,
    TCP,
    IPv6,
    describe,
    describe_all,
    flagset,
    log_has,
    oracle_mode,
    payload,
    seq_add,
    tcp_options,
)

pytestmark = pytest.mark.skipif(oracle_mode(), reason="synack's limits and counters")


def counters_at_exit(synack) -> dict:
    """Stop the daemon (SIGTERM) and return the counters it logs on the way out."""
    assert synack.terminate(timeout=5) == 0
    m = re.search(r"counters: (.*)$", synack.log(), re.M)
    assert m, f"no counters line in the log:\n{synack.log_tail(20)}"
    return {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", m.group(1))}


def echo_roundtrip(sock, data: bytes, timeout=5.0) -> bytes:
    sock.sendall(data)
    got = b""
    deadline = time.monotonic() + timeout
    while len(got) < len(data) and time.monotonic() < deadline:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        chunk = sock.recv(65536)
        if not chunk:
            break
        got += chunk
    return got


def assert_silent(p, timeout=0.7):
    got = p.expect_nothing(timeout)
    assert got == [], f"expected no answer, got:\n{describe_all(got)}"


# --- blind injection against a real connection (RFC 5961, RFC 9293 §3.10.7.4)


def test_blind_rst_syn_and_data_leave_a_real_connection_intact(synack, peer):
    """A kernel client talks to echo; an off-path attacker who knows the 4-tuple but not the
    sequence numbers sends RSTs, SYNs and data. The connection sees no reset, and its bytes
    arrive exactly as sent."""
    sock = socket.create_connection((SYNACK4, 7), timeout=5)
    cport = sock.getsockname()[1]
    attacker = peer(4, 7, sport=cport)
    attacker.src = HOST4  # spoof the kernel client's own address and port
    first = bytes(random.getrandbits(8) for _ in range(3000))
    assert echo_roundtrip(sock, first) == first
    # What the attacker cannot know, the test does: synack's last segment to the client.
    seen_all = attacker.expect_nothing(0.5)
    assert seen_all, "the echo was not seen on synack0"
    seen = seen_all[-1]
    rcv_nxt = seen[TCP].ack  # synack's RCV.NXT

    blind = []
    for k in range(64):  # guesses spread over the sequence space
        guess = (rcv_nxt + (k << 26) + 12345) % (1 << 32)
        blind.append(attacker.segment("R", seq=guess, ack=0))
        blind.append(attacker.segment("S", seq=guess, ack=0))
        # Data whose ACK field is outside [SND.UNA − MAX.SND.WND, SND.NXT]: never delivered.
        blind.append(
            attacker.segment("PA", seq=guess, ack=(seen[TCP].seq + (1 << 31)) % (1 << 32),
                             payload=b"INJECTED")
        )
    # And the worst case for the in-window checks: exactly in the window, just not at RCV.NXT.
    blind.append(attacker.segment("R", seq=seq_add(rcv_nxt, 1), ack=0))
    blind.append(attacker.segment("S", seq=seq_add(rcv_nxt, 1), ack=0))
    blind.append(attacker.segment("PA", seq=rcv_nxt, ack=seq_add(seen[TCP].seq, 1 << 30),
                                  payload=b"INJECTED"))
    for pkt in blind:
        attacker.send_raw(bytes(pkt))
    # What came back is ACKs only (challenge ACKs and duplicate ACKs), never a RST.
    answers = attacker.expect_nothing(1.0)
    assert all(flagset(a) == {"A"} and not payload(a) for a in answers), describe_all(answers)
    assert any(a[TCP].ack == rcv_nxt for a in answers), "no challenge ACK for the in-window RST"

    second = bytes(random.getrandbits(8) for _ in range(3000))
    assert echo_roundtrip(sock, second) == second, "the stream was corrupted"
    sock.shutdown(socket.SHUT_WR)
    sock.settimeout(3)
    assert sock.recv(10) == b"", "the connection did not close cleanly"
    sock.close()
    c = counters_at_exit(synack)
    assert c.get("established_resets", 0) == 0 and c.get("peer_resets", 0) == 0
    assert c.get("out_of_window_rst", 0) >= 60, c
    assert c.get("rst_challenged", 0) >= 1 and c.get("syn_challenged", 0) >= 1, c


# --- SYN flood (RFC 4987) and SYN cookies


def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def spoofed_syns(n, dport=7):
    """n IPv4 SYNs with MSS and timestamps from spoofed sources 198.18.0.16-250 (addresses
    nobody in the namespace owns: the SYN,ACKs go nowhere), checksums precomputed."""
    dst = socket.inet_aton(SYNACK4)
    out = []
    rnd = random.Random(4987)
    for i in range(n):
        src = socket.inet_aton(f"198.18.0.{16 + i % 235}")
        sport = 1024 + (i // 235) % 60000
        seq = rnd.getrandbits(32)
        opts = struct.pack("!BBH", 2, 4, 1460) + struct.pack("!BBBBII", 1, 1, 8, 10, i, 0)
        tcp = struct.pack("!HHIIBBHHH", sport, dport, seq, 0, (5 + len(opts) // 4) << 4, 0x02,
                          64240, 0, 0) + opts
        pseudo = src + dst + struct.pack("!BBH", 0, 6, len(tcp))
        tcp = tcp[:16] + struct.pack("!H", _checksum(pseudo + tcp)) + tcp[18:]
        ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp), i & 0xFFFF, 0, 64, 6, 0,
                         src, dst)
        ip = ip[:10] + struct.pack("!H", _checksum(ip)) + ip[12:]
        out.append(ip + tcp)
    return out


def vm_rss_kib(pid) -> int:
    with open(f"/proc/{pid}/status") as f:
        return int(re.search(r"VmRSS:\s+(\d+)", f.read()).group(1))


@pytest.mark.synack_args("--backlog", "64")
def test_a_100k_syn_flood_leaves_memory_bounded_and_a_real_nc_connects(synack):
    packets = spoofed_syns(100_000)
    pid = synack.proc.pid
    rss_before = vm_rss_kib(pid)
    tx = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM)
    results = {}

    def nc_during_flood():
        r = subprocess.run(["nc", "-N", "-w", "10", SYNACK4, "7"], input=b"through the flood\n",
                           capture_output=True, timeout=20)
        results["nc"] = r.stdout

    client = threading.Thread(target=nc_during_flood)
    started = time.monotonic()
    peak = rss_before
    for i, pkt in enumerate(packets):
        if i == 10_000:
            # The real client connects once the flood is well under way.
            client.start()
        try:
            tx.sendto(pkt, ("synack0", 0x0800, 0, 0, b""))
        except BlockingIOError:
            time.sleep(0.001)
        if i % 5000 == 0:
            peak = max(peak, vm_rss_kib(pid))
            assert time.monotonic() - started < 60, "the flood took too long to send"
    tx.close()
    client.join(timeout=25)
    peak = max(peak, vm_rss_kib(pid))
    assert results.get("nc") == b"through the flood\n", f"nc during the flood got {results}"
    assert synack.alive()
    # Bounded: the backlog's 64 half-open connections, no per-SYN state.
    assert peak - rss_before < 20 * 1024, f"RSS grew from {rss_before} to {peak} KiB"
    # After the flood a fresh client still gets in at once.
    with socket.create_connection((SYNACK4, 7), timeout=5) as s:
        assert echo_roundtrip(s, b"after\n") == b"after\n"
    c = counters_at_exit(synack)
    assert c.get("syn_cookies_sent", 0) > 10_000, c
    assert c.get("backlog_full") == c.get("syn_cookies_sent"), c
    assert c.get("syn_cookies_accepted", 0) >= 1, c


@pytest.mark.synack_args("--backlog", "1")
def test_forged_cookie_acks_create_nothing_and_a_genuine_one_connects(synack, peer):
    hog = peer(4, 7)
    hog.syn()
    hog.expect_synack()  # never answered: the half-open queue of port 7 is now full
    p = peer(4, 7)
    p.syn([("MSS", 1460)])
    sa = p.expect_synack()
    assert tcp_options(sa).get("WScale") is None, "no window scaling without timestamps"
    cookie = sa[TCP].seq
    forged = [seq_add(cookie, 1 + 100), seq_add(cookie, 1 - 100), seq_add(cookie, 1 + (1 << 24)),
              random.getrandbits(32)]
    for ack in forged:
        p.send("A", seq=p.snd_nxt, ack=ack)
        r = p.expect(lambda x: "R" in flagset(x), timeout=2)
        assert r is not None and r[TCP].seq == ack, f"no RST for a forged cookie: {describe(r)}"
    assert_silent(p, 0.3)
    # Nothing was created: data on a forged ACK is refused too.
    p.send("PA", seq=p.snd_nxt, ack=forged[0], payload=b"x")
    assert p.expect(lambda x: "R" in flagset(x), timeout=2) is not None
    # The genuine cookie opens the connection, which echoes.
    p.send_data(b"cookie monster\n")
    data, _ = p.collect(until=lambda d, f: len(d) >= 15, timeout=3)
    assert data == b"cookie monster\n"
    c = counters_at_exit(synack)
    assert c.get("syn_cookies_rejected") == 5, c
    assert c.get("syn_cookies_accepted") == 1, c


@pytest.mark.synack_args("--backlog", "1")
def test_a_cookie_keeps_window_scale_and_sack_through_timestamps(synack, peer):
    hog = peer(4, 7)
    hog.syn()
    hog.expect_synack()
    p = peer(4, 7)
    opts = [("MSS", 1460), ("SAckOK", b""), ("Timestamp", (1000, 0)), ("NOP", None),
            ("WScale", 7)]
    p.syn(opts)
    sa = p.expect_synack()
    o = tcp_options(sa)
    assert o.get("WScale") is not None and "SAckOK" in o, describe(sa)
    tsval, tsecr = o["Timestamp"]
    assert tsecr == 1000 and tsval & 0xF == 7 and tsval & 0x10, describe(sa)
    p.send("A", options=[("NOP", None), ("NOP", None), ("Timestamp", (1001, tsval))])
    p.send("PA", payload=b"scaled\n",
           options=[("NOP", None), ("NOP", None), ("Timestamp", (1002, tsval))])
    p.snd_nxt = seq_add(p.snd_nxt, 7)
    data, _ = p.collect(until=lambda d, f: len(d) >= 7, timeout=3)
    assert data == b"scaled\n"


@pytest.mark.synack_args("--max-connections", "2")
def test_past_max_connections_new_syns_are_dropped_silently(synack, peer):
    a = socket.create_connection((SYNACK4, 7), timeout=5)
    b = socket.create_connection((SYNACK4, 7), timeout=5)
    p = peer(4, 7)
    p.syn()
    assert_silent(p, 1.0)  # neither SYN,ACK nor RST
    for s in (a, b):
        assert echo_roundtrip(s, b"still here\n") == b"still here\n"
        s.close()
    c = counters_at_exit(synack)
    assert c.get("connection_limit", 0) >= 1, c


# --- keep-alive (RFC 9293 §3.8.4)


@pytest.mark.synack_args("--keepalive", "7=1s")
def test_keepalive_probes_an_idle_connection_with_snd_nxt_minus_1(synack, peer):
    p = peer(4, 7)
    p.handshake()
    probe = p.expect(flags="A", timeout=3)
    assert probe is not None, "no keep-alive probe after 1 s idle"
    assert probe[TCP].seq == seq_add(p.rcv_nxt, -1) and not payload(probe), describe(probe)
    p.send("A")  # answer it, as a TCP does
    again = p.expect(flags="A", timeout=3)
    assert again is not None and again.time - probe.time >= 0.8, "probes are idle-time apart"
    p.send_data(b"alive\n")
    echoed, _ = p.collect(until=lambda d, f: len(d) >= 6, timeout=3)
    assert echoed == b"alive\n"


def test_the_peers_keepalive_probes_are_answered(peer):
    p = peer(4, 7)
    p.handshake()
    for body in (b"", b"?"):  # Linux's probe, and BSD's with one garbage byte
        p.send("A", seq=seq_add(p.snd_nxt, -1), payload=body)
        a = p.expect(flags="A", timeout=2)
        assert a is not None, "keep-alive probe not answered"
        assert (a[TCP].seq, a[TCP].ack) == (p.rcv_nxt, p.snd_nxt), describe(a)


# --- hostile headers and options


def _v4(p, **tcp):
    return bytes(p.segment("S", seq=p.iss, ack=0, options=[("MSS", 1460)], **tcp))


MALFORMED = {
    "ihl-below-5": lambda p: bytes([0x44]) + _v4(p)[1:],
    "header-longer-than-packet": lambda p: bytes([0x4F]) + _v4(p)[1:24],
    "total-length-beyond-read": lambda p: (lambda b: b[:2] + struct.pack("!H", len(b) + 40)
                                           + b[4:])(_v4(p)),
    "ipv4-more-fragments": lambda p: bytes(IP(src=p.src, dst=p.dst, flags="MF")
                                          / TCP(sport=p.sport, dport=7, flags="S", seq=p.iss)),
    "ipv4-fragment-offset": lambda p: bytes(IP(src=p.src, dst=p.dst, frag=3)
                                           / TCP(sport=p.sport, dport=7, flags="S", seq=p.iss)),
    "tcp-data-offset-past-end": lambda p: bytes(p.segment("S", seq=p.iss, ack=0, dataofs=15)),
    "option-running-past-header": lambda p: bytes(
        p.segment("S", seq=p.iss, ack=0, payload=b"\x03\x09\x07\x00", dataofs=6)),
}


@pytest.mark.parametrize("name", MALFORMED)
def test_malformed_headers_are_dropped_silently_and_harmlessly(synack, peer, name):
    p = peer(4, 7)
    p.send_raw(MALFORMED[name](p))
    assert_silent(p)
    assert synack.alive()
    p.syn()
    p.expect_synack()


def test_ipv6_fragment_header_is_dropped_never_parsed_as_tcp(synack, peer):
    from scapy.all import IPv6ExtHdrFragment

    p = peer(6, 7)
    p.send_raw(bytes(IPv6(src=p.src, dst=p.dst) / IPv6ExtHdrFragment(m=1)
                     / TCP(sport=p.sport, dport=7, flags="S", seq=p.iss)))
    assert_silent(p)
    p.syn()
    p.expect_synack()


def test_window_scale_above_14_is_clamped_and_mss_0_still_makes_progress(peer):
    p = peer(4, 7)
    p.syn([("MSS", 0), ("WScale", 15), ("NOP", None), ("Unknown", (99, b"zz"))])
    sa = p.expect_synack()
    assert "R" not in flagset(sa)
    p.send("A")
    msg = bytes(range(256)) * 2
    p.send_data(msg)
    data, _ = p.collect(until=lambda d, f: len(d) >= len(msg), timeout=5)
    assert data == msg, "MSS 0 stalled or corrupted the stream"


def test_urgent_data_leaves_the_byte_stream_intact(peer):
    p = peer(4, 7)
    p.handshake()
    p.send("PAU", payload=b"ab!cd", urgptr=3)
    p.snd_nxt = seq_add(p.snd_nxt, 5)
    p.send("PAU", payload=b"ef", urgptr=60000)
    p.snd_nxt = seq_add(p.snd_nxt, 2)
    data, _ = p.collect(until=lambda d, f: len(d) >= 7, timeout=3)
    assert data == b"ab!cdef"


@pytest.mark.parametrize("bits", [pytest.param(0x40 | 0x80, id="ece-cwr"),
                                  pytest.param(0x100, id="reserved")])
def test_reserved_and_ecn_bits_on_a_syn_do_not_provoke_a_rst(peer, bits):
    p = peer(4, 7)
    pkt = p.segment("S", seq=p.iss, ack=0, options=[("MSS", 1460)])
    pkt[TCP].flags = int(pkt[TCP].flags) | (bits & 0xFF)
    if bits & 0x100:
        pkt[TCP].reserved = 1
    p.send_raw(bytes(pkt))
    p.snd_nxt = seq_add(p.iss, 1)
    sa = p.expect_synack()
    assert "R" not in flagset(sa)


# SYNs (and everything else) from broadcast, multicast, loopback or our own addresses:
# test_conformance.py (martian sources).
