"""Numbers that hold at scale (issue 22): what a connection costs the daemon, that the memory
comes back once the connections are gone, and `synack status` with tens of thousands of rows.

- 10,000 keep-alive HTTP connections, one `GET /` each, held open: the daemon's RSS grows by
  no more than the README's per-connection figure (an idle connection holds no buffer, and
  the http service holds nothing between requests).
- With `--time-wait 1s`, once those connections are closed and out of TIME-WAIT, RSS comes
  back near where it started (the driver shrinks the tables and returns free heap pages:
  docs/PERFORMANCE.md, "Memory after a burst").
- 70,000 connections: `synack status` and `synack status --json` list every one of them
  (the daemon sends the rows a page at a time), and the JSON parses.
- `synack status --watch | head -1` ends with status 0 and says nothing on stderr.
"""

import json
import subprocess
import sys
import time

import pytest

import harness
from conftest import synack_binary, synack_cmd
from harness import SYNACK4

sys.path.insert(0, str(harness.REPO_ROOT / "scripts"))
from echo_clients import EchoClients  # noqa: E402

# README, "Buffers and memory": an idle connection costs about 0.9 KiB of heap (tests/alloc.rs
# measures it for every service), and about 3 KiB of RSS right after a burst of requests (the
# allocator keeps the space the requests' buffers used, for the next ones): 2.9 in CI after
# issue 23's fourth session (3.9 before it); 4.5 was seen on a machine shared with builds,
# where the daemon read ACKs late and spurious timeouts left event counts behind. The README
# says at most 5.
PER_CONNECTION_KIB = 5.0
HTTP_CONNS = 10_000


def rss_kib(daemon):
    return harness.wait_until(lambda: _rss(daemon.proc.pid), 1)


def _rss(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return None


@pytest.fixture
def say(capsys):
    def out(text):
        with capsys.disabled():
            print(f"\n    {text}", end="", flush=True)

    return out


@pytest.fixture
def port_range():
    """A wide ephemeral range (10000-65535: 55,000 ports per source address) for this test
    only, put back afterwards. It stays above the fixed ports other tests listen on with the
    kernel (8080 in test_observe): the clients' TIME-WAIT sockets would otherwise hold them
    for a minute after this test."""
    path = "/proc/sys/net/ipv4/ip_local_port_range"
    with open(path) as f:
        saved = f.read()
    with open(path, "w") as f:
        f.write("10000 65535")
    yield
    with open(path, "w") as f:
        f.write(saved)


@pytest.mark.kernel_differs("measures synack's own memory")
@pytest.mark.synack_args("--time-wait", "1s")
def test_ten_thousand_http_connections_cost_the_readmes_figure_and_give_it_back(synack, say,
                                                                             port_range):
    start = rss_kib(synack)
    with EchoClients(SYNACK4, 80, procs=2, http=True) as clients:
        opened = clients.open(HTTP_CONNS, timeout=60)
        assert opened["conns"] == HTTP_CONNS, opened
        answered = clients.echo(timeout=60)
        assert answered["ok"] == HTTP_CONNS, answered
        held = rss_kib(synack)
        per_conn = (held - start) / HTTP_CONNS
        say(f"RSS {start} KiB idle, {held} KiB with {HTTP_CONNS} idle http connections "
            f"after one request each: {per_conn:.2f} KiB per connection")
        assert per_conn <= PER_CONNECTION_KIB, (
            f"{per_conn:.2f} KiB of RSS per idle http connection (README: at most about "
            f"{PER_CONNECTION_KIB} KiB)")
    # The clients closed every connection; none of them is in TIME-WAIT here (the client
    # closed first), but let any straggler go and the driver trim.
    assert harness.wait_until(lambda: count_rows() <= 8, 20), "the connections did not go"
    # The C library's arena keeps 1-3 MiB above the start (docs/PERFORMANCE.md, "Memory
    # after a burst"); a CI run saw 2.5 MiB once.
    end = harness.wait_until(lambda: (r := rss_kib(synack)) <= start + 3072 and r, 5) or \
        rss_kib(synack)
    say(f"RSS {end} KiB once they are gone")
    assert end <= start + 3072, f"RSS {end} KiB after the burst, {start} KiB before"


def count_rows():
    out = synack_cmd("status", "--json", timeout=60)
    return len(json.loads(out.stdout)) if out.returncode == 0 else 1 << 30


@pytest.mark.kernel_differs("measures synack's own memory")
@pytest.mark.synack_args("--time-wait", "1s")
def test_after_time_wait_rss_returns_near_its_start(synack, say, port_range):
    start = rss_kib(synack)
    # `Connection: close` on every request: synack closes first and each connection waits
    # out TIME-WAIT here.
    script = (
        "import socket\n"
        "for i in range(4000):\n"
        "    s = socket.create_connection(('198.18.0.2', 80))\n"
        "    s.sendall(b'GET / HTTP/1.1\\r\\nHost: x\\r\\nConnection: close\\r\\n\\r\\n')\n"
        "    while s.recv(65536): pass\n"
        "    s.close()\n"
    )
    subprocess.run([sys.executable, "-c", script], check=True, timeout=120)
    peak = rss_kib(synack)
    assert harness.wait_until(lambda: count_rows() <= 8, 20), "TIME-WAIT did not end"
    # The C library's arena keeps 1-3 MiB above the start (docs/PERFORMANCE.md, "Memory
    # after a burst"); a CI run saw 2.5 MiB once.
    end = harness.wait_until(lambda: (r := rss_kib(synack)) <= start + 3072 and r, 5) or \
        rss_kib(synack)
    say(f"RSS {start} KiB before, {peak} KiB after 4,000 closes, {end} KiB once TIME-WAIT "
        "is over")
    assert end <= start + 3072, f"RSS {end} KiB after TIME-WAIT, {start} KiB before"


STATUS_CONNS = 70_000


@pytest.mark.kernel_differs("synack status is synack's")
# A backlog above the count: 70,000 handshakes at once would otherwise meet SYN cookies, and a
# cookie handshake whose last ACK is lost leaves the client with a connection synack never had
# (and a stray ACK of a closed one can pass as a cookie): the row count would not be exact.
@pytest.mark.synack_args("--max-connections", "80000", "--backlog", "80000")
def test_status_lists_seventy_thousand_connections_in_text_and_json(synack, say, port_range):
    # Two source addresses: one gives at most 64,512 ports towards one port of ours.
    extra = "198.18.0.11"
    harness.run(["ip", "addr", "add", f"{extra}/24", "dev", harness.IFACE], check=True)
    with EchoClients(SYNACK4, 7, procs=8, sources=(harness.HOST4, extra),
                     max_per_proc=9_000) as clients:
        opened = clients.open(STATUS_CONNS, timeout=120)
        assert opened["conns"] == STATUS_CONNS, opened
        start = time.monotonic()
        text = synack_cmd("status", timeout=120)
        text_secs = time.monotonic() - start
        assert text.returncode == 0, text.stderr.decode()
        lines = text.stdout.decode().splitlines()
        # Every connection (the last handshakes may still be completing on our side).
        conns = [line for line in lines[1:] if not line.startswith("LISTEN")]
        metrics = harness.run(["curl", "-s", f"http://{SYNACK4}/metrics"]).stdout
        gauges = [m for m in metrics.splitlines() if m.startswith("synack_connections")]
        assert len(conns) == STATUS_CONNS, f"{len(conns)} connection rows; {gauges}"
        start = time.monotonic()
        out = synack_cmd("status", "--json", timeout=120)
        json_secs = time.monotonic() - start
        assert out.returncode == 0, out.stderr.decode()
        rows = json.loads(out.stdout)
        peers = {r["peer"] for r in rows if r["peer"]}
        assert len(peers) == STATUS_CONNS, f"{len(peers)} connections in the JSON"
        say(f"status: {len(lines)} lines in {text_secs:.1f} s; --json: {len(rows)} rows in "
            f"{json_secs:.1f} s")
        # 70,000 FINs at once would overflow the TUN's queue again and again (their
        # retransmissions come in step): 500 at a time per client process.
        clients.stop(batch=500)
    # Let the 70,000 closes finish before SIGTERM.
    if not harness.wait_until(lambda: count_rows() <= 8, 120, interval=2):
        out = synack_cmd("status", "--json", timeout=60)
        states = {}
        for r in json.loads(out.stdout):
            states[r["state"]] = states.get(r["state"], 0) + 1
        pytest.fail(f"the closes stalled: {states}")


@pytest.mark.kernel_differs("synack status is synack's")
def test_status_watch_into_head_ends_quietly_with_status_zero(synack):
    cmd = f"{synack_binary()} status --watch | head -1; echo \"${{PIPESTATUS[0]}}\" >&2"
    out = subprocess.run(["bash", "-c", cmd], capture_output=True, text=True, timeout=20)
    assert out.stdout.startswith("\x1b[H\x1b[2J") or out.stdout.startswith("State"), out.stdout
    assert out.stderr.strip() == "0", f"status and stderr: {out.stderr!r}"
