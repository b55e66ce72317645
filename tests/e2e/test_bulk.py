"""Bulk data with the kernel as peer (issue 3): gigabytes both ways, byte-exact.

Each transfer is checked by SHA-256 of what arrived against what was sent, and bounded in
time. A client that stops reading must lose nothing: synack stops producing, advertises a zero
window once its buffers are full, and resumes when the client reads again.
"""

import hashlib
import json
import os
import socket
import struct
import subprocess
import threading
import time

import pytest

from conftest import synack_cmd
from harness import SYNACK4, Capture
from scapy.all import TCP

GIB = 1 << 30
# SHA-256 of the first GiB of /bytes/<N>'s pattern (the big-endian 64-bit counter 0, 1, 2,
# ...), computed once with pattern_prefix() below; test_pattern_formula checks that formula
# against synack on a small N every run.
PATTERN_1GIB_SHA256 = "62ba14afc6add24f887180cd7128f8c3779453c6cd8ab3f453a4e7db17e4bdd9"


def pattern_prefix(n: int) -> bytes:
    words = n // 8 + 1
    return struct.pack(f">{words}Q", *range(words))[:n]


def block_stream(total: int, block: bytes):
    """`total` bytes made of `block` with an 8-byte counter stamped into each copy, so that a
    misplaced block changes the hash."""
    sent, k = 0, 0
    while sent < total:
        chunk = struct.pack(">Q", k) + block[8:]
        chunk = chunk[: total - sent]
        yield chunk
        sent += len(chunk)
        k += 1


def transfer_echo(total: int, deadline: float):
    """Send `total` bytes through echo while reading them back; (sent hash, received hash)."""
    block = os.urandom(1 << 16)
    sent_hash, recv_hash = hashlib.sha256(), hashlib.sha256()
    s = socket.create_connection((SYNACK4, 7), timeout=30)
    received = [0]

    def reader():
        while received[0] < total and time.time() < deadline:
            b = s.recv(1 << 20)
            if not b:
                break
            recv_hash.update(b)
            received[0] += len(b)

    t = threading.Thread(target=reader)
    t.start()
    for chunk in block_stream(total, block):
        sent_hash.update(chunk)
        s.sendall(chunk)
        if time.time() > deadline:
            break
    s.shutdown(socket.SHUT_WR)
    t.join(max(1.0, deadline - time.time()))
    s.close()
    return sent_hash.hexdigest(), recv_hash.hexdigest(), received[0]


def test_one_gib_through_echo_comes_back_byte_exact(synack):
    start = time.time()
    sent, got, n = transfer_echo(GIB, deadline=start + 300)
    assert n == GIB, f"received {n} of {GIB} bytes in {time.time() - start:.0f} s"
    assert got == sent


def test_pattern_formula(synack):
    out = subprocess.run(
        ["curl", "-sS", "--max-time", "10", f"http://{SYNACK4}/bytes/100003"],
        capture_output=True,
        check=True,
    ).stdout
    assert out == pattern_prefix(100003)


def test_curl_downloads_one_gib_byte_exact(synack):
    cmd = f"curl -sS --max-time 300 http://{SYNACK4}/bytes/{GIB} | sha256sum"
    out = subprocess.run(["bash", "-o", "pipefail", "-c", cmd], capture_output=True, text=True,
                         timeout=320)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split()[0] == PATTERN_1GIB_SHA256


def test_curl_uploads_one_gib_and_synack_hashes_it(synack, tmp_path):
    path = tmp_path / "upload.bin"
    h = hashlib.sha256()
    block = os.urandom(1 << 20)
    with open(path, "wb") as f:
        for chunk in block_stream(GIB, block):
            h.update(chunk)
            f.write(chunk)
    try:
        out = subprocess.run(
            ["curl", "-sS", "--max-time", "300", "-T", str(path), f"http://{SYNACK4}/upload"],
            capture_output=True,
            text=True,
            timeout=320,
        )
    finally:
        path.unlink()
    assert out.returncode == 0, out.stderr
    assert out.stdout == f"received {GIB} bytes\nsha256 {h.hexdigest()}\n"


def test_a_client_that_stops_reading_loses_nothing(synack, tmp_path):
    """The client writes 16 MiB to echo without reading for 3 s: synack's buffers fill, it
    advertises a zero window, and the client's writes stall; then the client reads everything
    back, byte-exact."""
    total = 16 << 20
    block = os.urandom(1 << 16)
    sent_hash, recv_hash = hashlib.sha256(), hashlib.sha256()
    # Only synack's zero-window segments are captured (the window field is tcp[14:2]).
    zero_window = f"tcp and src host {SYNACK4} and src port 7 and tcp[14:2] = 0"
    with Capture(tmp_path / "zw.pcap", bpf=zero_window) as cap:
        s = socket.create_connection((SYNACK4, 7), timeout=30)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 16)
        writer_done = threading.Event()

        def writer():
            for chunk in block_stream(total, block):
                sent_hash.update(chunk)
                s.sendall(chunk)
            s.shutdown(socket.SHUT_WR)
            writer_done.set()

        t = threading.Thread(target=writer)
        t.start()
        # Not reading: this pause is the scenario under test, not a wait for an event.
        time.sleep(3)
        assert not writer_done.is_set(), "flow control should have stalled the writer"
        pkts = cap.wait_for(lambda pkts: len(pkts) > 0, timeout=3)
        assert any(p.haslayer(TCP) and p[TCP].window == 0 for p in pkts), (
            "synack never advertised a zero window"
        )
        received = 0
        deadline = time.time() + 60
        while received < total and time.time() < deadline:
            b = s.recv(1 << 20)
            if not b:
                break
            recv_hash.update(b)
            received += len(b)
        t.join(10)
        s.close()
    assert received == total
    assert recv_hash.hexdigest() == sent_hash.hexdigest()


IMPAIR = "loss=2%,reorder=2%,dup=1%,seed=7"
MIB64 = 64 << 20


@pytest.mark.synack_args("--impair", IMPAIR)
def test_64_mib_through_echo_over_an_impaired_link(synack):
    start = time.time()
    sent, got, n = transfer_echo(MIB64, deadline=start + 240)
    assert n == MIB64, f"received {n} of {MIB64} bytes in {time.time() - start:.0f} s"
    assert got == sent
    assert "impairing the link" in synack.log()


@pytest.mark.synack_args("--impair", IMPAIR)
def test_curl_download_64_mib_over_an_impaired_link(synack):
    cmd = f"curl -sS --max-time 240 http://{SYNACK4}/bytes/{MIB64} | sha256sum"
    out = subprocess.run(["bash", "-o", "pipefail", "-c", cmd], capture_output=True, text=True,
                         timeout=260)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split()[0] == hashlib.sha256(pattern_prefix(MIB64)).hexdigest()


@pytest.mark.synack_args("--impair", IMPAIR)
def test_curl_upload_64_mib_over_an_impaired_link(synack, tmp_path):
    path = tmp_path / "upload.bin"
    data = b"".join(block_stream(MIB64, os.urandom(1 << 20)))
    path.write_bytes(data)
    out = subprocess.run(
        ["curl", "-sS", "--max-time", "240", "-T", str(path), f"http://{SYNACK4}/upload"],
        capture_output=True,
        text=True,
        timeout=260,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout == f"received {MIB64} bytes\nsha256 {hashlib.sha256(data).hexdigest()}\n"


# Segmentation offload (the TUN's IFF_VNET_HDR + TUNSETOFFLOAD, on by default): bulk data
# crosses synack0 in super-segments of up to 64 KiB; `--no-offload` keeps every packet
# wire-sized. Only packets longer than the MTU are captured.
OVERSIZED = "tcp and greater 1501"


def download(total: int, sockopts=()) -> None:
    """GET /bytes/<total> over a Python socket with the given (level, name, value) options
    set before connecting, and check the body against the pattern."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        for level, name, value in sockopts:
            s.setsockopt(level, name, value)
        s.settimeout(30)
        s.connect((SYNACK4, 80))
        s.sendall(f"GET /bytes/{total} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        got = bytearray()
        while b := s.recv(1 << 20):
            got += b
    body = bytes(got).split(b"\r\n\r\n", 1)[1]
    assert body == pattern_prefix(total)


def upload(total: int) -> None:
    """Upload `total` random bytes with curl; synack's reply states their count and hash."""
    data = os.urandom(total)
    out = subprocess.run(
        ["curl", "-sS", "--max-time", "60", "--data-binary", "@-", f"http://{SYNACK4}/upload"],
        input=data,
        capture_output=True,
        timeout=70,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.decode() == f"received {total} bytes\nsha256 {hashlib.sha256(data).hexdigest()}\n"


def bulk_both_ways(total: int):
    """Download and upload `total` bytes with curl, each verified by its hash."""
    cmd = f"curl -sS --max-time 60 http://{SYNACK4}/bytes/{total} | sha256sum"
    out = subprocess.run(["bash", "-o", "pipefail", "-c", cmd], capture_output=True, text=True,
                         timeout=70)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split()[0] == hashlib.sha256(pattern_prefix(total)).hexdigest()
    upload(total)


def super_segment_counters() -> dict:
    out = synack_cmd("stats", "--json")
    counters = json.loads(out.stdout) if out.returncode == 0 else {}
    return {k: v for k, v in counters.items() if k.startswith("super_segments")}


@pytest.mark.kernel_differs("the oracle's veth offloads are its own")
def test_bulk_data_crosses_the_tun_in_super_segments_both_ways(synack, tmp_path):
    # The downloading client's 4 MiB receive buffer fixes its window at megabytes from the
    # first ACK on, so whether synack may send super-segments (a window past 64 KiB) does not
    # hang on how fast the kernel's receive autotuning opens it on a loaded machine.
    with Capture(tmp_path / "big.pcap", bpf=OVERSIZED) as cap:
        download(8 << 20, [(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)])
        upload(8 << 20)

        def both_ways(pkts):
            ours = [p for p in pkts if p.src == SYNACK4]
            theirs = [p for p in pkts if p.dst == SYNACK4]
            return ours and theirs

        pkts = cap.wait_for(both_ways, timeout=3)
    ours = [p for p in pkts if p.src == SYNACK4]
    counters = super_segment_counters()
    assert ours, f"synack sent no super-segment ({len(pkts)} captured; {counters})"
    assert [p for p in pkts if p.dst == SYNACK4], f"the kernel sent no super-segment ({counters})"
    assert max(len(p) for p in ours) <= 65535


@pytest.mark.kernel_differs("the oracle has no --no-offload")
@pytest.mark.synack_args("--no-offload")
def test_no_offload_keeps_every_packet_wire_sized(synack, tmp_path):
    with Capture(tmp_path / "big.pcap", bpf=OVERSIZED) as cap:
        bulk_both_ways(8 << 20)
    # Stopping tcpdump flushes everything it captured; nothing above the MTU is expected.
    pkts = cap.packets()
    assert pkts == [], f"{len(pkts)} packets above the MTU"


def test_a_clamped_mss_gets_wire_sized_segments_even_in_bulk(synack, tmp_path):
    """A client that clamps its MSS (TCP_MAXSEG 1000) gets no segment above it from synack,
    through an 8 MiB download: no super-segment either."""
    with Capture(tmp_path / "big.pcap", bpf=f"tcp and src host {SYNACK4} and greater 1053") as cap:
        download(8 << 20, [(socket.IPPROTO_TCP, socket.TCP_MAXSEG, 1000)])
    # Stopping tcpdump flushes everything it captured; nothing above the clamped MSS is expected.
    pkts = cap.packets()
    # IPv4 20 + TCP 20 + timestamps 12 + 1000 bytes of payload = 1052.
    assert pkts == [], f"{len(pkts)} segments above the clamped MSS"
