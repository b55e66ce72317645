"""Scale like a real TCP (issue 9): many connections, long fat paths, ordinary load.

Every test here runs synack with its defaults (apart from the impairment it studies) and real
kernel clients:

- 20,000 concurrent echo connections, spread over several client processes (one process may
  hold at most 20,000 file descriptors), all open at once, then one line on each: every echo
  must come back, correct.
- 64 MiB at `--impair delay=20ms` (40 ms round trip): the window synack offers (upload to
  discard) and its send buffer (download from chargen), read from `synack status --json`
  during the transfer, must grow well past 256 KiB.
- `ab -n 20000 -c 100` without keep-alive against http: every request answered. ab's `-l`
  accepts responses of varying length: synack's page at `/` describes the connection that
  carried it (client port, ISNs), so its length varies, and without `-l` ab counts every
  response longer or shorter than the first as "failed" (Length).

Sysctls are changed only inside the test's private network namespace, and put back after.
The figures these tests print (timings) are for the reader; the targets on them are measured
by `scripts/bench.sh --suite scale`, not asserted here.
"""

import json
import re
import socket
import sys
import threading
import time
from pathlib import Path

import pytest

import harness
from conftest import synack_cmd
from harness import SYNACK4

sys.path.insert(0, str(harness.REPO_ROOT / "scripts"))
from echo_clients import ClientError, EchoClients  # noqa: E402

KIB, MIB = 1 << 10, 1 << 20


@pytest.fixture
def sysctl():
    """`sysctl("net.ipv4.tcp_rmem", "4096 131072 33554432")` for this test only: the
    namespace-local value is put back afterwards."""
    saved = {}

    def set_value(name, value):
        path = Path("/proc/sys") / name.replace(".", "/")
        saved.setdefault(path, path.read_text())
        path.write_text(value)

    yield set_value
    for path, value in saved.items():
        path.write_text(value)


@pytest.fixture
def say(capsys):
    """`say(text)`: a figure for the reader of the test log, shown also when the test passes."""

    def out(text):
        with capsys.disabled():
            print(f"\n    {text}", end="", flush=True)

    return out


def counters() -> dict:
    out = synack_cmd("stats", "--json")
    return json.loads(out.stdout) if out.returncode == 0 else {}


def memory_counters() -> str:
    c = counters()
    keys = ("buffer_memory_used", "buffer_memory_limited", "connection_limit", "backlog_full",
            "accept_queue_full", "passive_opens", "established")
    return ", ".join(f"{k}={c[k]}" for k in keys if k in c)


CONNS = 20_000
PROCS = 4  # 5,000 connections per client process


@pytest.mark.kernel_differs("the oracle serves each connection on a thread of one process, "
                            "which may hold at most 20,000 descriptors")
def test_twenty_thousand_concurrent_echo_connections_are_all_served(synack, sysctl, say):
    # One source address, so the clients need the whole ephemeral port range.
    sysctl("net.ipv4.ip_local_port_range", "1024 65535")
    start = time.monotonic()
    deadline = start + 120
    with EchoClients(SYNACK4, 7, procs=PROCS) as clients:
        opened = clients.open(CONNS, timeout=60)
        say(f"{opened['conns']} connections open in {opened['secs']:.1f} s "
            f"({opened['failed']} failed {opened['errors']}); synack: {memory_counters()}")
        assert opened["conns"] == CONNS and opened["failed"] == 0, (
            f"opened {opened['conns']} of {CONNS} ({opened['failed']} failed: "
            f"{opened['errors']}); synack: {memory_counters()}"
        )
        echoed = clients.echo(timeout=max(10.0, deadline - time.monotonic()))
        say(f"{echoed['ok']} echoes correct in {echoed['secs']:.1f} s; "
            f"synack: {memory_counters()}")
        assert echoed["ok"] == CONNS, (
            f"{echoed['ok']} of {CONNS} echoed correctly within {echoed['secs']:.0f} s: "
            f"{echoed['missing']} never answered, {echoed['bad']} wrong "
            f"(e.g. {echoed['samples']}), {echoed['closed']} closed, "
            f"{echoed['send_failed']} could not send; synack: {memory_counters()}"
        )
    say(f"20,000 connections opened and echoed in {time.monotonic() - start:.1f} s")


# ---------------------------------------------------------------------------------------------
# Long fat path: 40 ms round trip.

DELAY = "delay=20ms"
TRANSFER = 64 * MIB
# What a fixed buffer allowed before issue 9 (0.05 Gbit/s at 40 ms): the window must grow
# well past it.
FIXED_WINDOW = 256 * KIB


def raise_client_buffers(sysctl):
    """The kernel client may grow its buffers to 32 MiB (the issue's setting)."""
    sysctl("net.ipv4.tcp_rmem", f"4096 131072 {32 * MIB}")
    sysctl("net.ipv4.tcp_wmem", f"4096 16384 {32 * MIB}")


class StatusPoller:
    """Polls `synack status --json` in a thread and keeps the largest value of `field` seen
    on the connection from `local_port` (the client's port)."""

    def __init__(self, local_port, field):
        self.peer = f"198.18.0.1:{local_port}"
        self.field = field
        self.max = None
        self.samples = 0
        self.missing_field = False
        self.first_max_at = None
        self.start = time.monotonic()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        while not self.stop.is_set():
            out = synack_cmd("status", "--json")
            if out.returncode == 0:
                for row in json.loads(out.stdout):
                    if row.get("peer") != self.peer:
                        continue
                    self.samples += 1
                    value = row.get(self.field)
                    if value is None:
                        self.missing_field = True
                    elif self.max is None or value > self.max:
                        self.max = value
                        self.first_max_at = time.monotonic() - self.start
            self.stop.wait(0.02)

    def finish(self):
        self.stop.set()
        self.thread.join(15)
        return self

    def describe(self):
        if self.missing_field:
            return f"`synack status --json` has no {self.field!r} for the connection"
        if self.max is None:
            return f"the connection never appeared in {self.samples} polls of `status --json`"
        return (f"largest {self.field} seen: {self.max} bytes ({self.max / KIB:.0f} KiB, first "
                f"at {self.first_max_at:.2f} s) in {self.samples} samples")


def report_transfer(say, what, n, secs, poller):
    say(f"{what}: {n} bytes in {secs:.1f} s ({n * 8 / secs / 1e9:.3f} Gbit/s); "
        f"{poller.describe()}")


@pytest.mark.kernel_differs("the window is read from synack's own status")
@pytest.mark.synack_args("--impair", DELAY)
def test_upload_at_40ms_rtt_grows_the_offered_window_well_past_256_kib(synack, sysctl, say):
    raise_client_buffers(sysctl)
    block = bytes(range(256)) * 4096  # 1 MiB
    s = socket.create_connection((SYNACK4, 9), timeout=30)
    poller = StatusPoller(s.getsockname()[1], "rcv_wnd")
    start = time.monotonic()
    sent = 0
    try:
        s.settimeout(5)
        while sent < TRANSFER and time.monotonic() < start + 90:
            sent += s.send(block[: min(len(block), TRANSFER - sent)])
        s.shutdown(socket.SHUT_WR)
        # discard closes once it has read everything: that is the end of the transfer.
        s.settimeout(max(1.0, start + 100 - time.monotonic()))
        assert s.recv(1) == b""
    finally:
        secs = time.monotonic() - start
        s.close()
        poller.finish()
    report_transfer(say, "upload to discard at 40 ms RTT", sent, secs, poller)
    assert sent == TRANSFER, f"sent {sent} of {TRANSFER} bytes in {secs:.0f} s"
    assert not poller.missing_field and poller.max is not None, poller.describe()
    assert poller.max > FIXED_WINDOW, poller.describe()


@pytest.mark.kernel_differs("the send buffer is read from synack's own status")
@pytest.mark.synack_args("--impair", DELAY)
def test_download_at_40ms_rtt_grows_the_send_buffer_well_past_256_kib(synack, sysctl, say):
    raise_client_buffers(sysctl)
    s = socket.create_connection((SYNACK4, 19), timeout=30)
    poller = StatusPoller(s.getsockname()[1], "snd_buf")
    start = time.monotonic()
    got = 0
    buf = bytearray(MIB)
    try:
        s.settimeout(5)
        while got < TRANSFER and time.monotonic() < start + 90:
            n = s.recv_into(buf)
            if not n:
                break
            got += n
    finally:
        secs = time.monotonic() - start
        s.close()
        poller.finish()
    report_transfer(say, "download from chargen at 40 ms RTT", got, secs, poller)
    assert got >= TRANSFER, f"received {got} of {TRANSFER} bytes in {secs:.0f} s"
    assert not poller.missing_field and poller.max is not None, poller.describe()
    assert poller.max > FIXED_WINDOW, poller.describe()


# ---------------------------------------------------------------------------------------------
# Ordinary load: ApacheBench without keep-alive.

AB_REQUESTS = 20_000


def ab_figure(out, label):
    m = re.search(rf"^{re.escape(label)}:\s+([\d.]+)", out, re.M)
    return float(m.group(1)) if m else None


def test_ab_twenty_thousand_requests_without_keepalive_are_all_answered(synack, sysctl, say):
    sysctl("net.ipv4.ip_local_port_range", "1024 65535")
    # -s: ab gives up on a request that waits this long (it then stops the whole run).
    # -l: the page at / varies in length (it shows the connection's port and ISNs).
    out = harness.run(["ab", "-l", "-n", str(AB_REQUESTS), "-c", "100", "-s", "20",
                       f"http://{SYNACK4}/"], timeout=150)
    text = out.stdout + out.stderr
    complete = ab_figure(text, "Complete requests")
    failed = ab_figure(text, "Failed requests")
    kinds = re.search(r"\(Connect: (\d+), Receive: (\d+), Length: (\d+), Exceptions: (\d+)\)", text)
    longest = re.search(r"100%\s+(\d+) \(longest request\)", text)
    say(f"ab: {complete} complete, {failed} failed, "
        f"{ab_figure(text, 'Requests per second')} requests/s, longest "
        f"{longest.group(1) if longest else '?'} ms; synack: {memory_counters()}")
    tail = "\n".join(text.splitlines()[-25:])
    assert out.returncode == 0, f"ab failed (status {out.returncode}):\n{tail}"
    assert complete == AB_REQUESTS, f"ab completed {complete} of {AB_REQUESTS}:\n{tail}"
    assert failed == 0, f"ab counted {failed} failed requests ({kinds and kinds.group(0)}):\n{tail}"
    assert "Non-2xx responses" not in text, tail


def test_echo_clients_report_a_server_that_does_not_answer():
    """The client harness itself: connections nobody accepts are counted as failures, not
    reported as served (a closed port on a namespace of our own answers with RSTs)."""
    with EchoClients("127.0.0.1", 9, procs=2) as clients:
        opened = clients.open(10, timeout=5)
    assert opened["conns"] == 0 and opened["failed"] > 0, opened


def test_echo_clients_check_each_echo():
    """The client harness itself, against a tiny local echo server that corrupts one reply
    in every ten: each line is checked, not just counted."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(64)
    port = srv.getsockname()[1]
    stop = threading.Event()

    def serve():
        waiting, done = [], []
        srv.settimeout(0.05)
        while not stop.is_set():
            try:
                c, _ = srv.accept()
                c.settimeout(0)
                waiting.append(c)
            except OSError:
                pass
            for c in list(waiting):
                try:
                    line = c.recv(100)
                except BlockingIOError:
                    continue
                c.sendall(line.replace(b"echo 1.", b"ECHO 1.", 1))
                waiting.remove(c)
                done.append(c)
        for c in waiting + done:
            c.close()
        srv.close()

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    try:
        with EchoClients("127.0.0.1", port, procs=2) as clients:
            assert clients.open(20, timeout=10)["conns"] == 20
            echoed = clients.echo(timeout=10)
    except ClientError as e:
        pytest.fail(str(e))
    finally:
        stop.set()
        t.join(5)
    assert echoed["ok"] == 10 and echoed["bad"] == 10, echoed
