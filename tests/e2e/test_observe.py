"""Watching TCP work (issue #5): --pcap, the control socket and its subcommands (status,
stats, connect, trace), --ladder and GET /handshake, against the kernel's clients."""

import contextlib
import json
import socket
import subprocess
import time

import pytest
from scapy.all import PcapReader

import harness
from harness import HOST4, IFACE, SYNACK4, TCP, Daemon, ip_layer, run, wait_until
from conftest import synack_binary, synack_cmd

pytestmark = pytest.mark.kernel_differs("synack's own observation features")


@contextlib.contextmanager
def daemon(tmp_path, *args, stdout=None):
    """A daemon with extra flags, like the `synack` fixture but started here (the flags name
    files under tmp_path)."""
    d = Daemon(synack_binary(), ["-v", *args], tmp_path / "synack.log")
    if stdout is not None:
        d.start = lambda: _start_with_stdout(d, stdout)
    d.start()
    try:
        d.wait_ready()
        yield d
    finally:
        status = d.terminate(timeout=5)
        if status is None:
            d.kill()
        assert status == 0, f"synack exited with {status}:\n{d.log_tail()}"
        assert wait_until(lambda: not harness.iface_exists(), 3)


def _start_with_stdout(d, stdout):
    import os

    env = {k: v for k, v in os.environ.items() if k != "RUST_LOG"}
    env["NO_COLOR"] = "1"
    logf = open(d.log_path, "wb")
    d.proc = subprocess.Popen(d.argv, stdin=subprocess.DEVNULL, stdout=stdout, stderr=logf,
                              env=env)


def read_pcap(path):
    with PcapReader(str(path)) as r:
        return [bytes(ip_layer(p)) for p in r if ip_layer(p) is not None]


def status_rows():
    out = synack_cmd("status", "--json")
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def states():
    return {r["state"] for r in status_rows()}


def echo_once(port=7, data=b"hello\n"):
    with socket.create_connection((SYNACK4, port), timeout=5) as s:
        s.sendall(data)
        got = b""
        while len(got) < len(data):
            chunk = s.recv(100)
            assert chunk
            got += chunk
        return s.getsockname()[1], got


def _parse(raw):
    return harness.IP(raw) if raw[0] >> 4 == 4 else harness.IPv6(raw)


def _of_port(raws, port):
    return sorted(r for r in raws if _parse(r).haslayer(TCP)
                  and port in (_parse(r)[TCP].sport, _parse(r)[TCP].dport))


def test_pcap_packets_equal_what_tcpdump_captured_on_the_interface(tmp_path, capture):
    """Every packet tcpdump sees on synack0 is in the --pcap file, byte for byte, and for at
    least one conversation the two are identical. (tcpdump on this kind of machine sometimes
    loses a packet and says "packets dropped by kernel"; the daemon's file never does.)"""
    pcap = tmp_path / "synack.pcap"
    attempts = []
    with daemon(tmp_path, "--pcap", str(pcap)):
        for _ in range(5):
            with capture() as cap:
                port, got = echo_once()
                assert got == b"hello\n"
                # Until the conversation's last ACKs are in the capture.
                cap.wait_for(lambda ps: len(_of_port([bytes(p) for p in ps], port)) >= 9, 3)
            attempts.append((port, [bytes(p) for p in cap.packets()]))
            if len(_of_port(attempts[-1][1], port)) >= 9:
                break
        # The file is readable while the daemon runs (flushed promptly).
        assert wait_until(lambda: len(read_pcap(pcap)) > 0, 3)
        out = run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}",
                   f"http://{SYNACK4}/"], timeout=10)
        assert out.stdout == "200"
    mine = read_pcap(pcap)
    exact = 0
    for port, theirs in attempts:
        ours, seen = _of_port(mine, port), _of_port(theirs, port)
        assert seen, "tcpdump captured nothing"
        missing = [r for r in seen if r not in ours]
        assert not missing, harness.describe_all([_parse(r) for r in missing])
        exact += ours == seen
    assert exact, f"tcpdump lost packets in all {len(attempts)} attempts"


def test_pcap_to_stdout_pipes_into_tcpdump(tmp_path):
    td = subprocess.Popen(["tcpdump", "-nr", "-", "-l"], stdin=subprocess.PIPE,
                          stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        with daemon(tmp_path, "--pcap", "-", stdout=td.stdin):
            echo_once()
        td.stdin.close()
        td.wait(timeout=5)
        out = td.stdout.read()
    finally:
        if td.poll() is None:
            td.kill()
    text = out.decode()
    assert f"{HOST4}." in text and f"{SYNACK4}.7: Flags [S]" in text, text
    assert "Flags [F." in text, text


def test_status_shows_every_state_a_connection_is_in(synack):
    # LISTEN: the listeners. ESTABLISHED: an idle connection to echo.
    idle = socket.create_connection((SYNACK4, 7), timeout=5)
    # CLOSE-WAIT: the client has sent its FIN, and we still have a large response to queue.
    big = socket.create_connection((SYNACK4, 80), timeout=5)
    big.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    big.sendall(b"GET /bytes/100000000 HTTP/1.1\r\nHost: x\r\n\r\n")
    big.shutdown(socket.SHUT_WR)
    # FIN-WAIT-2: we closed first (Connection: close) and the client has not closed yet.
    half = socket.create_connection((SYNACK4, 80), timeout=5)
    half.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    body = b""
    while chunk := half.recv(65536):
        body += chunk
    assert b"200 OK" in body
    try:
        assert wait_until(lambda: {"LISTEN", "ESTABLISHED", "CLOSE-WAIT", "FIN-WAIT-2"}
                          <= states(), 5), status_rows()
        # TIME-WAIT: the client now closes too.
        half.close()
        assert wait_until(lambda: "TIME-WAIT" in states(), 5), status_rows()
        rows = status_rows()
        est = [r for r in rows if r["state"] == "ESTABLISHED"]
        assert est and est[0]["peer"].startswith(HOST4) and est[0]["app"] == "echo", rows
        assert all(r["rto_us"] for r in est)
        cw = [r for r in rows if r["state"] == "CLOSE-WAIT"][0]
        assert cw["send_q"] > 0, cw
        table = synack_cmd("status").stdout.decode()
        for word in ("State", "Recv-Q", "Send-Q", "LISTEN", "CLOSE-WAIT", "TIME-WAIT"):
            assert word in table, table
    finally:
        idle.close()
        big.close()


def test_stats_counts_like_nstat(synack):
    echo_once()
    out = synack_cmd("stats", "--json")
    assert out.returncode == 0, out.stderr
    counters = json.loads(out.stdout)
    for name in ("segments_in", "segments_out", "passive_opens", "active_opens",
                 "established_resets", "retransmissions", "rst_in", "rst_out", "bytes_in",
                 "bytes_out", "drop_bad_tcp_checksum"):
        assert name in counters, counters
    assert counters["passive_opens"] >= 1 and counters["bytes_in"] >= 6
    text = synack_cmd("stats").stdout.decode()
    assert "segments_in" in text


def test_connect_reaches_a_kernel_listener_and_prints_its_reply(synack):
    nc = subprocess.Popen(["nc", "-N", "-l", HOST4, "8080"], stdin=subprocess.PIPE,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert wait_until(lambda: ":8080" in run(["ss", "-ltn"]).stdout, 3)
        nc.stdin.write(b"reply from the kernel\n")
        nc.stdin.close()
        out = synack_cmd("connect", f"{HOST4}:8080", "--send", "-",
                         input=b"hello from synack\n")
        nc.wait(timeout=5)
        got = nc.stdout.read()
    finally:
        if nc.poll() is None:
            nc.kill()
    assert out.returncode == 0, out.stderr
    assert out.stdout == b"reply from the kernel\n"
    assert got == b"hello from synack\n"
    assert json.loads(synack_cmd("stats", "--json").stdout)["active_opens"] == 1


def test_connect_to_a_closed_port_reports_connection_refused(synack):
    out = synack_cmd("connect", f"{HOST4}:8081")
    assert out.returncode == 1
    assert b"connection refused" in out.stderr, out.stderr


def test_a_missing_or_stale_control_socket_says_no_synack_is_running(tmp_path):
    sock = tmp_path / "gone.sock"
    out = synack_cmd("--control", str(sock), "status")
    assert out.returncode == 1
    assert b"no synack running on synack0?" in out.stderr, out.stderr
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(str(sock))
    stale.close()
    out = synack_cmd("--control", str(sock), "stats")
    assert out.returncode == 1
    assert b"no synack running on synack0?" in out.stderr, out.stderr


def test_the_control_socket_is_private_and_removed_on_exit(tmp_path):
    path = tmp_path / "ctl" / "s.sock"
    with daemon(tmp_path, "--control", str(path)):
        assert path.is_socket()
        assert path.stat().st_mode & 0o777 == 0o600
        assert synack_cmd("--control", str(path), "status").returncode == 0
    assert not path.exists()


def test_ladder_flag_prints_each_closed_connection(tmp_path):
    with daemon(tmp_path, "--ladder") as d:
        port, _ = echo_once()
        assert d.wait_log(rf"{HOST4}:{port} .*{SYNACK4}:7", 5), d.log_tail()
        assert d.wait_log(r"LAST-ACK → CLOSED", 3), d.log_tail()
    log = d.log()
    assert "LISTEN → SYN-RECEIVED" in log
    assert "SYN-RECEIVED → ESTABLISHED" in log


def test_handshake_page_shows_the_clients_own_connection(synack):
    out = run(["curl", "-s", f"http://{SYNACK4}/handshake"], timeout=10)
    text = out.stdout
    assert "SYN seq=0" in text and "──▶  LISTEN → SYN-RECEIVED" in text, text
    assert "◀──  SYN,ACK seq=0 ack=1" in text, text
    assert "SYN-RECEIVED → ESTABLISHED" in text, text
    assert "len=" in text, text  # the GET itself


def test_trace_shows_open_connections(synack):
    with socket.create_connection((SYNACK4, 7), timeout=5) as s:
        port = s.getsockname()[1]
        s.sendall(b"x\n")
        assert s.recv(10) == b"x\n"
        out = synack_cmd("trace")
    assert out.returncode == 0, out.stderr
    text = out.stdout.decode()
    assert f"{HOST4}:{port}" in text and "SYN-RECEIVED → ESTABLISHED" in text, text
