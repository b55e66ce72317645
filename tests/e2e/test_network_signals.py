"""What the network says besides TCP segments (issue 20): ICMP errors and the path MTU, ECN,
TCP Fast Open (kernel clients and servers, and crafted SYNs, against `--fastopen`).

`--impair mtu=1280` is a router whose next hop takes at most 1280 bytes: larger packets are
dropped and answered with ICMP "fragmentation needed" / ICMPv6 "packet too big", both ways,
so synack (sending) and the kernel's client (sending) each have to discover the path MTU.
`--impair blackhole-mtu=1280` drops them without a word.
"""

import hashlib
import json
import os
import socket
import subprocess
import time

from conftest import synack_cmd
from harness import HOST4, SYNACK4, SYNACK6, ip_layer, wait_until
from scapy.all import TCP
from test_bulk import pattern_prefix
from test_exec_forward import FWD, UPSTREAM, curl_sha256, http_upstream  # noqa: F401

import pytest

MIB4 = 4 << 20


def stats() -> dict:
    out = synack_cmd("stats", "--json")
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def curl_download(host: str, n: int) -> str:
    url = f"http://[{host}]/bytes/{n}" if ":" in host else f"http://{host}/bytes/{n}"
    cmd = f"curl -sS -g --max-time 60 '{url}' | sha256sum"
    out = subprocess.run(["bash", "-o", "pipefail", "-c", cmd], capture_output=True, text=True,
                         timeout=70)
    assert out.returncode == 0, out.stderr
    return out.stdout.split()[0]


@pytest.mark.synack_args("--impair", "mtu=1280,seed=1")
@pytest.mark.parametrize("host", [SYNACK4, SYNACK6])
def test_a_download_through_a_1280_byte_hop_completes_at_the_smaller_size(synack, capture, host):
    with capture("tcp") as cap:
        start = time.time()
        assert curl_download(host, MIB4) == hashlib.sha256(pattern_prefix(MIB4)).hexdigest()
        assert time.time() - start < 10, "no RTO waited for: PMTUD answered at once"
    s = stats()
    assert s["pmtu_lowered"] >= 1, s
    too_big = s["icmp_in_dest_unreachs"] if ":" not in host else s["icmp6_in_pkt_too_bigs"]
    assert too_big >= 1, s
    # What crossed the hop: nothing from synack above 1280 bytes.
    sizes = [len(ip_layer(p)) for p in cap.packets() if p[TCP].sport == 80]
    assert sizes and max(sizes) <= 1280, max(sizes)


@pytest.mark.synack_args("--impair", "mtu=1280,seed=1")
@pytest.mark.parametrize("host", [SYNACK4, SYNACK6])
def test_the_kernel_client_learns_the_path_mtu_from_the_impairer(synack, capture, host):
    data = os.urandom(1 << 20)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with capture("tcp") as cap:
        s = socket.socket(family, socket.SOCK_STREAM)
        s.settimeout(20)
        s.connect((host, 7))
        got = bytearray()
        s.sendall(data[:65536])
        while len(got) < 65536:
            b = s.recv(1 << 16)
            assert b
            got += b
        s.sendall(data[65536:])
        s.shutdown(socket.SHUT_WR)
        while True:
            b = s.recv(1 << 16)
            if not b:
                break
            got += b
        s.close()
    assert bytes(got) == data
    # The kernel holds the path MTU it learned from the impairer's ICMP (a route exception,
    # as `ip route get` shows it), and its segments shrank to fit.
    route = subprocess.run(["ip", "route", "get", host], capture_output=True, text=True).stdout
    assert "mtu 1280" in route, route
    kernel_sizes = [len(ip_layer(p)) for p in cap.packets() if TCP in p and p[TCP].dport == 7]
    assert max(kernel_sizes) == 1500, "the first full-sized segments met the small hop"
    assert kernel_sizes[-1] <= 1280


@pytest.mark.synack_args("--impair", "blackhole-mtu=1280,seed=1")
@pytest.mark.parametrize("host", [SYNACK4, SYNACK6])
def test_a_download_through_a_black_hole_completes_after_the_fallback(synack, host):
    # No ICMP comes back: after three timeouts in a row (about 1.4 s at the minimum RTO)
    # synack falls back to an MSS of 1024 (IPv6: 1220), which passes (--mtu-probing blackhole,
    # the default, as Linux's tcp_mtu_probing=1).
    start = time.time()
    assert curl_download(host, MIB4) == hashlib.sha256(pattern_prefix(MIB4)).hexdigest()
    assert time.time() - start < 30
    s = stats()
    assert s["mtu_blackhole_fallbacks"] >= 1, s
    assert s["pmtu_lowered"] == 0, s


@pytest.mark.synack_args("--impair", "blackhole-mtu=1280,seed=1", "--mtu-probing", "always")
def test_mtu_probing_always_starts_small_and_needs_no_fallback(synack):
    start = time.time()
    assert curl_download(SYNACK4, MIB4) == hashlib.sha256(pattern_prefix(MIB4)).hexdigest()
    assert time.time() - start < 5
    assert stats()["mtu_blackhole_fallbacks"] == 0


@pytest.mark.synack_args("-l", "7=echo", "-l", f"{FWD}=forward:127.0.0.1:{UPSTREAM}",
                         "--impair", "mtu=1280,seed=1")
def test_a_forward_download_through_a_1280_byte_hop_completes_at_the_smaller_size(
        synack, http_upstream, capture, tmp_path):
    # The upstream side is the host's loopback; the hop is between synack and its client.
    with capture("tcp") as cap:
        start = time.time()
        assert curl_sha256(f"http://{SYNACK4}:{FWD}/big", tmp_path, 120) == http_upstream
        assert time.time() - start < 60
    assert stats()["pmtu_lowered"] >= 1
    sizes = [len(ip_layer(p)) for p in cap.packets() if p[TCP].sport == FWD]
    assert sizes and max(sizes) <= 1280, max(sizes)


@pytest.mark.synack_args("-l", "7=echo", "-l", f"{FWD}=forward:127.0.0.1:{UPSTREAM}",
                         "--impair", "blackhole-mtu=1280,seed=1")
def test_a_forward_download_through_a_black_hole_completes_after_the_fallback(
        synack, http_upstream, tmp_path):
    assert curl_sha256(f"http://{SYNACK4}:{FWD}/big", tmp_path, 120) == http_upstream
    s = stats()
    assert s["mtu_blackhole_fallbacks"] >= 1, s
    assert s["pmtu_lowered"] == 0, s


# --- ECN (RFC 3168) ---------------------------------------------------------------------

@pytest.fixture
def kernel_ecn():
    """The kernel's TCP asks for ECN on its SYNs (net.ipv4.tcp_ecn=1), in this namespace."""
    path = "/proc/sys/net/ipv4/tcp_ecn"
    old = open(path).read().strip()
    with open(path, "w") as f:
        f.write("1")
    yield
    with open(path, "w") as f:
        f.write(old)


@pytest.mark.synack_args("--impair", "ce=5%,seed=1")
def test_a_kernel_ecn_client_under_ce_marks_downloads_without_a_retransmission(
        synack, kernel_ecn, capture):
    with capture("tcp port 80") as cap:
        assert curl_download(SYNACK4, MIB4) == hashlib.sha256(pattern_prefix(MIB4)).hexdigest()
    s = stats()
    # CE marks on our ECT(0) data reached the kernel, which echoed ECE; synack reduced its
    # window for them instead of losing anything.
    assert s["ecn_cwnd_reductions"] >= 1, s
    assert s["retransmissions"] == 0, s
    pkts = cap.packets()
    syn = next(p for p in pkts if p[TCP].flags == "SEC")
    synack_ = next(p for p in pkts if p[TCP].sport == 80 and p[TCP].flags.S)
    assert synack_[TCP].flags == "SAE", synack_[TCP].flags
    assert syn is not None
    data = [p for p in pkts if p[TCP].sport == 80 and len(p[TCP].payload) > 0]
    assert all((p.tos & 3) in (2, 3) for p in data[:50]), "new data goes out ECT(0)"
    assert any(p[TCP].flags.C for p in data), "CWR after a reduction"


@pytest.mark.synack_args("--impair", "ce=5%,seed=1")
def test_a_kernel_ecn_client_uploading_hears_ece_for_ce_marks(synack, kernel_ecn):
    data = os.urandom(4 << 20)
    s = socket.create_connection((SYNACK4, 9), timeout=20)
    s.sendall(data)
    s.close()
    # The discard service has taken every byte once the counters say so.
    assert wait_until(lambda: stats()["bytes_in"] >= len(data), 10)
    st = stats()
    assert st["in_ce_pkts"] >= 1, st
    assert st["in_ect0_pkts"] >= 1, st


# --- crafted packets --------------------------------------------------------------------

def icmp_about(p, pkt, kind: str):
    """An ICMP/ICMPv6 error of `kind` from a router on the path, quoting our segment `pkt`."""
    from scapy.all import IP, ICMP, IPv6, ICMPv6DestUnreach, ICMPv6PacketTooBig
    quoted = bytes(pkt)
    if p.family == 4:
        code = {"port": 3, "host": 1, "frag": 4}[kind]
        icmp = ICMP(type=3, code=code, nexthopmtu=1280 if kind == "frag" else 0)
        return IP(src="198.18.0.254", dst=p.dst) / icmp / quoted[:548]
    if kind == "frag":
        icmp = ICMPv6PacketTooBig(mtu=1280)
    else:
        icmp = ICMPv6DestUnreach(code={"port": 4, "host": 3}[kind])
    return IPv6(src="2001:2::fe", dst=p.dst) / icmp / quoted[:1232]


@pytest.mark.parametrize("family", [4, 6])
def test_icmp_quoting_in_window_and_out_of_window_sequence_numbers(synack, peer, family):
    p = peer(family, 7)
    p.syn()
    p.expect_synack()
    p.send_data(b"x" * 100)
    echoed = p.expect(lambda q: len(q[TCP].payload) == 100)
    assert echoed is not None
    # Out of window: the quoted sequence number is not in flight. Counted, ignored.
    stale = echoed.copy()
    stale[TCP].seq = (stale[TCP].seq + (1 << 20)) % (1 << 32)
    p.send_raw(bytes(icmp_about(p, stale, "port")))
    assert wait_until(lambda: stats()["out_of_window_icmps"] == 1, 3)
    # (Acknowledging the echo, so that Nagle lets the next one out.)
    p.rcv_nxt = (echoed[TCP].seq + 100) % (1 << 32)
    p.send_data(b"still here")
    live = p.expect(lambda q: bytes(q[TCP].payload) == b"still here")
    assert live is not None  # and left unacknowledged: in flight
    # In window, soft (host unreachable): the connection goes on.
    p.send_raw(bytes(icmp_about(p, live, "host")))
    assert wait_until(lambda: stats()["icmp_soft_errors"] == 1, 3)
    # In window, hard (port unreachable): the connection is aborted, without a RST.
    p.send_raw(bytes(icmp_about(p, live, "port")))
    assert wait_until(lambda: stats()["icmp_aborts"] == 1, 3)
    assert p.expect(lambda q: "R" in str(q[TCP].flags), timeout=0.5) is None


def test_an_ecn_setup_syn_gets_ece_on_the_syn_ack(synack, peer):
    p = peer(4, 7)
    p.send("SEC", seq=p.iss, ack=0, options=[("MSS", 1460)])
    p.snd_nxt = (p.iss + 1) % (1 << 32)
    sa = p.expect(lambda q: q[TCP].flags.S)
    assert sa is not None
    assert str(sa[TCP].flags) == "SAE", sa[TCP].flags
    assert sa.tos & 3 == 0, "the SYN,ACK itself is not ECN-capable"
    p.peer_iss = sa[TCP].seq
    p.rcv_nxt = (sa[TCP].seq + 1) % (1 << 32)
    p.send_data(b"marked", flags="PA")
    got = p.expect(lambda q: bytes(q[TCP].payload) == b"marked")
    assert got is not None and got.tos & 3 == 2, "ECT(0) data"


def test_an_accecn_syn_gets_the_reflecting_ace_and_ce_counts_come_back(synack, peer):
    """RFC 9768 with crafted packets: a SYN with AE, CWR and ECE (sent ECT(0)) gets a
    SYN,ACK whose ACE field reflects that (100: AE alone) with the AccECN option (kind 172);
    after the handshake's ACK (ACE 010), a CE-marked segment is acknowledged with r.cep 6
    (ACE 110: AE and CWR) and the echo goes out ECT(0)."""
    from scapy.all import IP
    p = peer(4, 7)
    # scapy's "N" is the bit RFC 9768 names AE.
    p.send("SECN", seq=p.iss, ack=0, options=[("MSS", 1460)], ip=IP(src=p.src, dst=p.dst, tos=2))
    p.snd_nxt = (p.iss + 1) % (1 << 32)
    sa = p.expect(lambda q: q[TCP].flags.S)
    assert sa is not None
    assert str(sa[TCP].flags) == "SAN", sa[TCP].flags
    assert sa.tos & 3 == 0, "the SYN,ACK itself is not ECN-capable"
    assert any(o[0] == 172 for o in sa[TCP].options), sa[TCP].options
    p.peer_iss = sa[TCP].seq
    p.rcv_nxt = (sa[TCP].seq + 1) % (1 << 32)
    p.send("AC")
    assert wait_until(lambda: stats()["accecn_negotiated"] == 1, 3)
    p.send("PAEN", payload=b"marked", ip=IP(src=p.src, dst=p.dst, tos=3))
    p.snd_nxt = (p.snd_nxt + 6) % (1 << 32)
    got = p.expect(lambda q: bytes(q[TCP].payload) == b"marked")
    assert got is not None and got.tos & 3 == 2, "ECT(0) data"
    ace = (got[TCP].flags.value >> 6) & 7
    assert ace == 0b110, f"ACE {ace:03b}: r.cep is 5 + 1 CE mark"
    assert stats()["in_ce_pkts"] == 1


# --- TCP Fast Open (RFC 7413) -----------------------------------------------------------

def kernel_tcp_fastopen(bits: str):
    """net.ipv4.tcp_fastopen=`bits` in this namespace for the test, with the kernel's cookie
    cache emptied before and after (tcp_metrics keeps the cookies it got per destination)."""
    path = "/proc/sys/net/ipv4/tcp_fastopen"
    old = open(path).read().strip()
    with open(path, "w") as f:
        f.write(bits)
    subprocess.run(["ip", "tcp_metrics", "flush", "all"], check=True, timeout=5)
    yield
    subprocess.run(["ip", "tcp_metrics", "flush", "all"], check=True, timeout=5)
    with open(path, "w") as f:
        f.write(old)


@pytest.fixture
def kernel_fastopen():
    """The kernel's TCP may use Fast Open as a client (1); curl --tcp-fastopen asks for it."""
    yield from kernel_tcp_fastopen("1")


@pytest.fixture
def kernel_fastopen_server():
    """The kernel's listeners may use Fast Open too (3), if they set TCP_FASTOPEN."""
    yield from kernel_tcp_fastopen("3")


def tfo_option(pkt):
    """The Fast Open option of a segment as bytes (b"" for a cookie request), or None."""
    import struct
    for name, value in pkt[TCP].options:
        if name == "TFO":
            return value if isinstance(value, bytes) else struct.pack("!II", *value)
    return None


@pytest.mark.kernel_differs("synack's --fastopen, connect --fastopen and counters")
@pytest.mark.synack_args("--fastopen")
def test_curl_tcp_fastopen_twice_sends_the_request_in_the_second_syn(
        synack, kernel_fastopen, capture):
    with capture("tcp port 80") as cap:
        for _ in range(2):
            out = subprocess.run(
                ["curl", "-sS", "--max-time", "10", "--tcp-fastopen", "-o", "/dev/null",
                 "-w", "%{http_code}", f"http://{SYNACK4}/bytes/100"],
                capture_output=True, text=True, timeout=15)
            assert out.returncode == 0 and out.stdout == "200", out
    pkts = cap.packets()
    syns = [p for p in pkts if p[TCP].flags == "S"]
    syn_acks = [p for p in pkts if p[TCP].flags == "SA"]
    assert len(syns) == 2 and len(syn_acks) == 2, [str(p[TCP].flags) for p in pkts]
    # First: the kernel asks for a cookie, synack gives one, the request follows the handshake.
    assert tfo_option(syns[0]) == b"" and len(syns[0][TCP].payload) == 0
    cookie = tfo_option(syn_acks[0])
    assert cookie is not None and len(cookie) == 8
    assert syn_acks[0][TCP].ack == (syns[0][TCP].seq + 1) % (1 << 32)
    # Second: the cookie and the request ride on the SYN; the SYN,ACK acknowledges both.
    request = bytes(syns[1][TCP].payload)
    assert tfo_option(syns[1]) == cookie
    assert request.startswith(b"GET /bytes/100 HTTP/1.1\r\n"), request
    assert syn_acks[1][TCP].ack == (syns[1][TCP].seq + 1 + len(request)) % (1 << 32)
    assert tfo_option(syn_acks[1]) is None
    s = stats()
    assert s["fastopen_cookie_reqd"] == 1, s
    assert s["fastopen_passive"] == 1, s
    assert s["fastopen_passive_fail"] == 0, s


@pytest.mark.kernel_differs("synack's --fastopen, connect --fastopen and counters")
def test_without_fastopen_curl_gets_no_cookie(synack, kernel_fastopen, capture):
    with capture("tcp port 80") as cap:
        for _ in range(2):
            out = subprocess.run(
                ["curl", "-sS", "--max-time", "10", "--tcp-fastopen", "-o", "/dev/null",
                 f"http://{SYNACK4}/bytes/100"], capture_output=True, text=True, timeout=15)
            assert out.returncode == 0, out
    pkts = cap.packets()
    assert all(tfo_option(p) is None for p in pkts if p[TCP].sport == 80)
    assert all(len(p[TCP].payload) == 0 for p in pkts if p[TCP].flags == "S")
    assert stats()["fastopen_passive"] == 0


@pytest.mark.kernel_differs("synack's --fastopen, connect --fastopen and counters")
@pytest.mark.synack_args("--fastopen")
def test_a_crafted_fast_open_syn_with_data_is_acknowledged_and_served(synack, peer):
    import struct
    first = peer(4, 7)
    first.syn(options=[("MSS", 1460), ("TFO", b"")])
    cookie = tfo_option(first.expect_synack())
    assert cookie is not None and len(cookie) == 8
    p = peer(4, 7)
    p.send("S", seq=p.iss, ack=0, payload=b"hello\n",
           options=[("MSS", 1460), ("TFO", struct.unpack("!II", cookie))])
    p.snd_nxt = (p.iss + 1 + 6) % (1 << 32)
    sa = p.expect_synack()
    assert sa[TCP].ack == p.snd_nxt, "the SYN,ACK acknowledges the data"
    p.send("A")
    echo, _ = p.collect(until=lambda data, fin: data == b"hello\n")
    assert echo == b"hello\n"
    # A wrong cookie: an ordinary handshake, the data not taken, the right cookie given.
    q = peer(4, 7)
    q.send("S", seq=q.iss, ack=0, payload=b"hello\n",
           options=[("MSS", 1460), ("TFO", (1, 2))])
    q.snd_nxt = (q.iss + 1) % (1 << 32)
    sa = q.expect_synack()
    assert sa[TCP].ack == q.snd_nxt
    assert tfo_option(sa) == cookie
    s = stats()
    assert (s["fastopen_passive"], s["fastopen_passive_fail"]) == (1, 1), s


@pytest.mark.kernel_differs("synack's --fastopen, connect --fastopen and counters")
def test_synack_connect_fastopen_sends_its_data_on_the_second_syn_to_a_kernel_server(
        synack, kernel_fastopen_server, capture):
    import threading
    port = 8092
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.setsockopt(socket.IPPROTO_TCP, getattr(socket, "TCP_FASTOPEN", 23), 16)
    srv.bind((HOST4, port))
    srv.listen(16)
    srv.settimeout(10)
    got = []

    def serve():
        for _ in range(2):
            conn, _ = srv.accept()
            conn.settimeout(10)
            data = b""
            while chunk := conn.recv(4096):
                data += chunk
            got.append(data)
            conn.sendall(b"ok\n")
            conn.close()

    server = threading.Thread(target=serve, daemon=True)
    server.start()
    request = b"hello over Fast Open\n"
    try:
        with capture(f"tcp port {port}") as cap:
            for _ in range(2):
                out = synack_cmd("connect", f"{HOST4}:{port}", "--fastopen", "--send", "-",
                                 input=request)
                assert out.returncode == 0 and out.stdout == b"ok\n", out
        server.join(10)
    finally:
        srv.close()
    assert got == [request, request]
    pkts = cap.packets()
    syns = [p for p in pkts if p[TCP].flags == "S"]
    syn_acks = [p for p in pkts if p[TCP].flags == "SA"]
    assert len(syns) == 2 and len(syn_acks) == 2
    # No cookie yet: synack asks; the kernel's SYN,ACK gives one.
    assert tfo_option(syns[0]) == b"" and len(syns[0][TCP].payload) == 0
    cookie = tfo_option(syn_acks[0])
    assert cookie
    # With it, the data rides on the SYN and the kernel acknowledges it in its SYN,ACK.
    assert tfo_option(syns[1]) == cookie
    assert bytes(syns[1][TCP].payload) == request
    assert syn_acks[1][TCP].ack == (syns[1][TCP].seq + 1 + len(request)) % (1 << 32)
    s = stats()
    assert (s["fastopen_active"], s["fastopen_active_fail"]) == (1, 0), s
