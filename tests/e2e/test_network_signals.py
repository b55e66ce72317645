"""What the network says besides TCP segments (issue 20): ICMP errors and the path MTU.

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
from harness import SYNACK4, SYNACK6, ip_layer
from scapy.all import TCP
from test_bulk import pattern_prefix

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
