"""The contract of `exec:` and `forward:` (issue #11), black-box: kernel clients over the TUN,
a kernel upstream on 127.0.0.1 in the test's namespace, and what synack says about them (its
log, `synack status [--json]`, `synack stats --json`, `/metrics`, `--pcap`, `--ladder`).

test_exec_forward.py has the issue's own list (echo, hashes, resets, curl through forward:,
1,000 connections, ssh); this file pins the rest of the contract: the status columns, the
half-close each way, the client's RST, flow control each way with a stalled side, the
observation flags, impairment, a 256 MiB upload, bad specs, counters, and how a program's
stdin and stdout map to FINs.

Every daemon here gets a control socket of its own under the test's tmp_path (the `control`
fixture adds `--control` to the `synack` fixture's arguments)."""

import hashlib
import json
import os
import re
import select
import socket
import subprocess
import threading
import time

import pytest

from conftest import synack_binary, synack_cmd
from harness import HOST4, SYNACK4, SYNACK6, BackgroundSend, oracle_mode, run, wait_until
from test_exec_forward import (FWD, PORT, UPSTREAM, connect, gone, lo_up, read_all, reset,
                               started_pid)
from test_observe import daemon

pytestmark = pytest.mark.skipif(oracle_mode(), reason="synack's exec: and forward: services")

FORWARD = f"forward:127.0.0.1:{UPSTREAM}"
MiB = 1 << 20


@pytest.fixture(autouse=True)
def control(request, tmp_path):
    """This test's daemon's control socket (passed to the `synack` fixture as --control)."""
    path = tmp_path / "control.sock"
    request.node.add_marker(pytest.mark.synack_args("--control", str(path)))
    return path


def ctl(control, *args, timeout=10):
    """A subcommand against this test's daemon."""
    return synack_cmd("--control", str(control), *args, timeout=timeout)


def status_rows(control):
    out = ctl(control, "status", "--json")
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def row_of(control, sock):
    """The `synack status --json` row of the connection whose client end is `sock`."""
    host, port = sock.getsockname()[:2]
    name = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    rows = [r for r in status_rows(control) if r.get("peer") == name]
    assert len(rows) == 1, f"{len(rows)} rows for {name}: {rows}"
    return rows[0]


def stats(control):
    out = ctl(control, "stats", "--json")
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def recv_exactly(sock, n, timeout=10.0) -> bytes:
    """n bytes (bounded in time); an early EOF fails."""
    got = bytearray()
    deadline = time.monotonic() + timeout
    while len(got) < n:
        remaining = deadline - time.monotonic()
        assert remaining > 0, f"only {len(got)} of {n} bytes within {timeout} s: {bytes(got)!r}"
        sock.settimeout(remaining)
        chunk = sock.recv(n - len(got))
        assert chunk, f"EOF after {len(got)} of {n} bytes: {bytes(got)!r}"
        got += chunk
    return bytes(got)


def hash_until_eof(sock, timeout) -> tuple[int, str]:
    """Read to EOF, hashing; (byte count, sha256 hex)."""
    digest, count = hashlib.sha256(), 0
    deadline = time.monotonic() + timeout
    buf = bytearray(1 << 20)
    while True:
        remaining = deadline - time.monotonic()
        assert remaining > 0, f"no EOF within {timeout} s ({count} bytes read)"
        sock.settimeout(remaining)
        n = sock.recv_into(buf)
        if n == 0:
            return count, digest.hexdigest()
        digest.update(memoryview(buf)[:n])
        count += n


def send_until_stalled(sock, data, quiet=1.0, timeout=60.0) -> int:
    """Send `data` from a nonblocking socket until it takes nothing for `quiet` seconds (or
    all of it is sent); returns how many bytes it took."""
    sock.setblocking(False)
    view, sent = memoryview(data), 0
    deadline = time.monotonic() + timeout
    while sent < len(data):
        assert time.monotonic() < deadline, f"still sending after {timeout} s ({sent} bytes)"
        try:
            sent += sock.send(view[sent:sent + MiB])
        except BlockingIOError:
            _, writable, _ = select.select([], [sock], [], quiet)
            if not writable:
                break
    return sent


class Upstream:
    """A kernel TCP listener on 127.0.0.1:8000 (the namespace's loopback), for forward:."""

    def __init__(self):
        lo_up()
        self.lsock = socket.socket()
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind(("127.0.0.1", UPSTREAM))
        self.lsock.listen(16)
        self.accepted = []

    def accept(self, timeout=5.0):
        """The next connection synack opened to us, and its peer address as accept() saw it."""
        self.lsock.settimeout(timeout)
        conn, addr = self.lsock.accept()
        conn.settimeout(None)
        self.accepted.append(conn)
        return conn, addr

    def close(self):
        for c in self.accepted:
            c.close()
        self.lsock.close()


@pytest.fixture
def upstream():
    u = Upstream()
    yield u
    u.close()


class HashingUpstream(threading.Thread):
    """Accepts one connection, hashes what it receives until EOF, answers the byte count and
    the hex digest ("<count> <sha256>\\n"), and closes."""

    def __init__(self, upstream, timeout):
        super().__init__(daemon=True)
        self.upstream, self.timeout = upstream, timeout
        self.result, self.error = None, None

    def run(self):
        try:
            conn, _ = self.upstream.accept(timeout=10)
            self.result = hash_until_eof(conn, self.timeout)
            conn.sendall(f"{self.result[0]} {self.result[1]}\n".encode())
            conn.close()
        except Exception as e:  # reported by the test
            self.error = e


def upload_and_hash(upstream, total, timeout):
    """Upload `total` bytes of random data through forward: to a HashingUpstream; return
    (what we sent: count and digest, what the client got back)."""
    hasher = HashingUpstream(upstream, timeout)
    hasher.start()
    digest = hashlib.sha256()
    with connect(FWD, timeout=timeout) as c:
        for _ in range(total // MiB):
            chunk = os.urandom(MiB)
            digest.update(chunk)
            c.sendall(chunk)
        c.shutdown(socket.SHUT_WR)
        answer = read_all(c, timeout=timeout).decode()
    hasher.join(10)
    assert hasher.error is None, f"upstream: {hasher.error!r}"
    return f"{total} {digest.hexdigest()}\n", answer


# --- 1. status


@pytest.mark.synack_args("-l", "7=echo", "-l", f"{PORT}=exec:cat", "-l", f"{FWD}={FORWARD}")
def test_relay_contract_status_shows_the_app_the_pid_and_the_upstream_address(
        synack, control, upstream):
    with connect(PORT) as e, connect(FWD) as f:
        up, seen = upstream.accept()
        e.sendall(b"ping\n")
        assert recv_exactly(e, 5) == b"ping\n"

        erow, frow = row_of(control, e), row_of(control, f)
        assert erow["state"] == frow["state"] == "ESTABLISHED", (erow, frow)
        assert erow["app"] == "exec:cat", erow
        assert frow["app"] == FORWARD, frow
        # exec: the running cat, a child of synack, the one its log names.
        pid = erow["pid"]
        assert open(f"/proc/{pid}/comm").read().strip() == "cat", pid
        ppid = re.search(r"^PPid:\s*(\d+)", open(f"/proc/{pid}/status").read(), re.M)
        assert int(ppid.group(1)) == synack.proc.pid
        assert started_pid(synack, "exec:cat") == pid
        # forward: the local address of synack's socket, as the upstream's accept() saw it.
        assert frow["upstream_local"] == f"{seen[0]}:{seen[1]}", (frow, seen)
        assert "upstream_local" not in erow and "pid" not in frow, (erow, frow)

        out = ctl(control, "status")
        assert out.returncode == 0, out.stderr
        table = out.stdout.decode()
        for sock, app in ((e, "exec:cat"), (f, FORWARD)):
            name = "{}:{}".format(*sock.getsockname())
            lines = [l for l in table.splitlines() if f" {name} " in l]
            assert len(lines) == 1 and lines[0].split()[0] == "ESTABLISHED", table
            assert lines[0].split()[-1] == app, table
        assert table.splitlines()[0].split()[-1] == "App", table
        up.close()


# --- 2-4. forward: half-close each way, and the client's RST


@pytest.mark.synack_args("-l", "7=echo", "-l", f"{FWD}={FORWARD}")
def test_relay_contract_forward_client_half_close_reaches_the_upstream(
        synack, control, upstream):
    with connect(FWD) as c:
        up, _ = upstream.accept()
        c.sendall(b"request\n")
        c.shutdown(socket.SHUT_WR)
        # The upstream gets the bytes, then EOF: the client's FIN became shutdown(SHUT_WR).
        assert read_all(up, timeout=10) == b"request\n"
        assert wait_until(lambda: row_of(control, c)["state"] == "CLOSE-WAIT", 3), \
            row_of(control, c)
        # It can still answer, as often as it likes, and the client hears each answer
        # before the upstream closes.
        for i in range(3):
            reply = f"reply {i} after your FIN\n".encode()
            up.sendall(reply)
            assert recv_exactly(c, len(reply)) == reply
        # Then its close is our FIN, after the last byte.
        up.close()
        assert read_all(c, timeout=10) == b""
    assert synack.wait_log(r"LAST-ACK -> CLOSED", 5), synack.log_tail(20)


def half_closed_by_upstream(control, upstream):
    """A forward: connection whose upstream has sent b"greeting\\n" and shut its side: the
    client has read that and our FIN; returns (client, upstream) sockets."""
    c = connect(FWD)
    up, _ = upstream.accept()
    up.sendall(b"greeting\n")
    up.shutdown(socket.SHUT_WR)
    # The client gets the bytes, then our FIN (the upstream's EOF).
    assert read_all(c, timeout=10) == b"greeting\n"
    assert wait_until(lambda: row_of(control, c)["state"] == "FIN-WAIT-2", 3), row_of(control, c)
    return c, up


@pytest.mark.synack_args("-l", "7=echo", "-l", f"{FWD}={FORWARD}")
def test_relay_contract_forward_upstream_half_close_reaches_the_client(
        synack, control, upstream):
    c, up = half_closed_by_upstream(control, upstream)
    with c:
        # The other direction stays open: the client still talks to the upstream.
        for i in range(3):
            msg = f"message {i} after your FIN\n".encode()
            c.sendall(msg)
            assert recv_exactly(up, len(msg)) == msg
        assert row_of(control, c)["state"] == "FIN-WAIT-2"
    assert stats(control)["rst_out"] == 0


@pytest.mark.synack_args("-l", "7=echo", "-l", f"{FWD}={FORWARD}")
def test_relay_contract_forward_client_fin_after_upstream_half_close_reaches_the_upstream(
        synack, control, upstream):
    c, up = half_closed_by_upstream(control, upstream)
    with c:
        # The client's last words and its FIN, back to back (as `sendall(); close()` does).
        c.sendall(b"last words\n")
        c.shutdown(socket.SHUT_WR)
        assert synack.wait_log(r"FIN-WAIT-2 -> TIME-WAIT", 3), synack.log_tail(20)
        # The upstream reads them, then EOF, at once (not when TIME-WAIT ends).
        assert read_all(up, timeout=5) == b"last words\n"


@pytest.mark.synack_args("-l", "7=echo", "-l", f"{FWD}={FORWARD}")
def test_relay_contract_forward_client_reset_aborts_the_upstream(synack, upstream):
    c = connect(FWD)
    up, _ = upstream.accept()
    c.sendall(b"x")
    assert recv_exactly(up, 1) == b"x"
    reset(c)
    up.settimeout(5)
    with pytest.raises(ConnectionResetError):
        got = up.recv(100)
        raise AssertionError(f"the upstream got {got!r} (a clean EOF is b'') instead of a RST")


# --- 5-6. flow control, a stalled side each way


# The relay holds no bytes of its own (docs/ARCHITECTURE.md): every byte is in a queue of a
# connection. The receive queue may pass --rmem's MAX by the window's rounding (2^10 units).
WINDOW_SLACK = 64 * 1024
RMEM_MAX = 32 * MiB  # --rmem's default MAX: what autotuning may grow a receive buffer to


def kernel_queues(local, peer):
    """(Recv-Q, Send-Q) of the namespace's kernel TCP socket local -> peer (`ss`)."""
    name = lambda a: "{}:{}".format(*a)  # noqa: E731
    out = run(["ss", "-tnH", "state", "established"]).stdout
    for line in out.splitlines():
        f = line.split()
        if f[2:4] == [name(local), name(peer)]:
            return int(f[0]), int(f[1])
    raise AssertionError(f"no socket {name(local)} -> {name(peer)} in:\n{out}")


def settled(measure, timeout=5.0):
    """Measure until two measures in a row (0.1 s apart) agree; the last one."""
    last = [measure()]

    def same():
        now = measure()
        stable, last[0] = now == last[0], now
        return stable

    assert wait_until(same, timeout, interval=0.1), f"still changing: {last[0]}"
    return last[0]


@pytest.mark.synack_args("-l", "7=echo", "-l", f"{FWD}={FORWARD}")
def test_relay_contract_forward_slow_upstream_closes_the_clients_window(
        synack, control, upstream):
    data = os.urandom(128 * MiB)
    with connect(FWD) as c:
        up, _ = upstream.accept()
        # The upstream reads nothing: the client can send only as much as the buffers hold.
        sent = send_until_stalled(c, data, quiet=1.0, timeout=60)
        assert sent < len(data), "the client sent everything to an upstream that reads nothing"
        # synack offers the client a zero window, holding what it has unread.
        assert wait_until(lambda: row_of(control, c)["rcv_wnd"] == 0, 5), row_of(control, c)
        # Where every byte sent is, once nothing moves: in the client's send queue, synack's
        # receive queue, its socket to the upstream, the upstream's receive queue (synack
        # itself holds nothing else). Each is bounded, and they add up.
        client = c.getsockname(), c.getpeername()
        to_upstream = up.getpeername(), up.getsockname()

        def measure():
            return (kernel_queues(*client)[1], row_of(control, c)["recv_q"],
                    kernel_queues(*to_upstream)[1], kernel_queues(*reversed(to_upstream))[0])

        client_q, synack_q, synack_up_q, upstream_q = settled(measure)
        relay = sent - client_q - synack_q - synack_up_q - upstream_q
        where = (f"sent {sent}: client {client_q}, synack {synack_q}, relay {relay}, "
                 f"synack->upstream {synack_up_q}, upstream {upstream_q}")
        assert relay == 0, where
        # (The window is announced in units of 2^10 bytes, rounded up: the queue may pass
        # the buffer by a little; it has been seen 24 KB past --rmem's MAX.)
        assert 0 < synack_q <= RMEM_MAX + WINDOW_SLACK, where
        print(where)
        # The upstream catches up: every byte, in order, once; the client's FIN follows.
        c.setblocking(True)
        c.shutdown(socket.SHUT_WR)
        count, digest = hash_until_eof(up, timeout=60)
        assert (count, digest) == (sent, hashlib.sha256(data[:sent]).hexdigest())


@pytest.mark.synack_args("-l", "7=echo", "-l", f"{FWD}={FORWARD}")
def test_relay_contract_forward_slow_client_stops_the_upstream_reads(
        synack, control, upstream):
    data = os.urandom(64 * MiB)
    with connect(FWD) as c:
        up, _ = upstream.accept()
        # The client reads nothing: the upstream can write only as much as the buffers hold.
        wrote = send_until_stalled(up, data, quiet=1.0, timeout=60)
        assert wrote < len(data), "the upstream wrote everything to a client that reads nothing"
        # The client's window is shut; synack holds only what its send buffer takes.
        assert wait_until(lambda: row_of(control, c)["snd_wnd"] == 0, 5), row_of(control, c)
        client = c.getsockname(), c.getpeername()
        to_upstream = up.getpeername(), up.getsockname()

        def measure():
            row = row_of(control, c)
            return (kernel_queues(*reversed(to_upstream))[1], kernel_queues(*to_upstream)[0],
                    row["send_q"], row["snd_buf"], kernel_queues(*client)[0])

        upstream_q, synack_up_q, synack_q, snd_buf, client_q = settled(measure)
        relay = wrote - upstream_q - synack_up_q - synack_q - client_q
        where = (f"wrote {wrote}: upstream {upstream_q}, synack<-upstream {synack_up_q}, "
                 f"relay {relay}, synack {synack_q} (snd_buf {snd_buf}), client {client_q}")
        assert relay == 0, where
        assert 0 < synack_q <= snd_buf <= 4 * MiB, where
        print(where)
        # The client catches up: every byte, in order, then the upstream's FIN.
        up.setblocking(True)
        sender = BackgroundSend(up, memoryview(data)[wrote:], then=lambda s: s.close())
        count, digest = hash_until_eof(c, timeout=60)
        error = sender.join(10)
        assert error is None, error
        assert (count, digest) == (len(data), hashlib.sha256(data).hexdigest())


# --- 7. --pcap and --ladder


def test_relay_contract_exec_with_pcap_and_ladder(tmp_path):
    pcap = tmp_path / "synack.pcap"
    with daemon(tmp_path, "-l", "7=echo", "-l", f"{PORT}=exec:cat", "--pcap", str(pcap),
                "--ladder", "--control", str(tmp_path / "control.sock")) as d:
        with connect(PORT) as c:
            port = c.getsockname()[1]
            c.sendall(b"hello, pcap\n")
            c.shutdown(socket.SHUT_WR)
            assert read_all(c) == b"hello, pcap\n"
        # The ladder is printed, whole, when the connection closes.
        header = rf"(?m)^{re.escape(HOST4)}:{port}\s+{re.escape(SYNACK4)}:{PORT}$"
        assert d.wait_log(header + r"(?s:.*?)LAST-ACK → CLOSED", 5), d.log_tail()
    log = d.log()
    start = re.search(header, log).start()
    ladder = log[start:log.index("\n\n", start)]
    changes = ("LISTEN → SYN-RECEIVED", "SYN-RECEIVED → ESTABLISHED",
               "ESTABLISHED → CLOSE-WAIT", "(CLOSE-WAIT → LAST-ACK)", "LAST-ACK → CLOSED")
    for change in changes:
        assert change in ladder, ladder
    # The 12 bytes each way, in the order they crossed.
    rows = ladder.splitlines()
    data = [i for i, l in enumerate(rows) if "len=12" in l]
    assert len(data) == 2 and "──▶" in rows[data[0]] and "◀──" in rows[data[1]], ladder

    r = run(["tcpdump", "-nr", str(pcap), "-S", f"tcp port {port}"], timeout=10)
    assert r.returncode == 0, r.stderr
    client, server = f"{HOST4}.{port}", f"{SYNACK4}.{PORT}"

    def seen(frm, to, flags):
        rx = re.compile(rf" {re.escape(frm)} > {re.escape(to)}: Flags \[{flags}\]")
        return [l for l in r.stdout.splitlines() if rx.search(l)]

    assert len(seen(client, server, "S")) == 1, r.stdout
    assert len(seen(server, client, r"S\.")) == 1, r.stdout
    assert len(seen(client, server, r"FP?\.")) == 1, r.stdout
    assert len(seen(server, client, r"FP?\.")) == 1, r.stdout
    assert not seen(server, client, "R") and not seen(client, server, "R"), r.stdout
    for frm, to in ((client, server), (server, client)):
        assert sum("length 12" in l for l in seen(frm, to, r"[FP]+\.")) == 1, r.stdout
    # synack's FIN follows its last byte: SYN,ACK seq + 1 + 12.
    isn = int(re.search(r"seq (\d+)", seen(server, client, r"S\.")[0]).group(1))
    m = re.search(r"seq (\d+)(?::(\d+))?", seen(server, client, r"FP?\.")[0])
    assert int(m.group(2) or m.group(1)) == (isn + 13) % (1 << 32), r.stdout


# --- 8-9. impairment, and a large upload


IMPAIR = ("--impair", "loss=2%,reorder=2%")


def assert_impaired(synack):
    """Stop the daemon and check that its link really lost and reordered packets (the
    transfer was the only traffic); the impairment's counters are in its last log line."""
    assert synack.terminate(timeout=5) == 0
    last = synack.log().strip().splitlines()[-1]
    for fault in ("lost", "reordered"):
        m = re.search(rf"\bimpair_{fault}=(\d+)", last)
        assert m and int(m.group(1)) > 0, last


@pytest.mark.synack_args("-l", "7=echo", "-l", f"{PORT}=exec:cat", *IMPAIR)
def test_relay_contract_exec_cat_echoes_4mib_under_loss_and_reordering(synack, control):
    data = os.urandom(4 * MiB)
    with connect(PORT, timeout=60) as c:
        sender = BackgroundSend(c, data)
        got = read_all(c, timeout=120)
        error = sender.join(10)
    assert error is None, error
    assert len(got) == len(data) and got == data
    assert stats(control)["retransmissions"] > 0  # synack resent the echo the link lost
    assert_impaired(synack)


@pytest.mark.synack_args("-l", "7=echo", "-l", f"{FWD}={FORWARD}", *IMPAIR)
def test_relay_contract_forward_64mib_upload_under_loss_and_reordering(
        synack, control, upstream):
    want, got = upload_and_hash(upstream, 64 * MiB, timeout=150)
    assert got == want
    assert_impaired(synack)


@pytest.mark.synack_args("-l", "7=echo", "-l", f"{FWD}={FORWARD}")
def test_relay_contract_forward_256mib_upload_is_byte_exact(synack, upstream):
    want, got = upload_and_hash(upstream, 256 * MiB, timeout=120)
    assert got == want


# --- 10. bad specs


@pytest.mark.parametrize(
    "args, message",
    [
        (["-l", "8080=forward:nohost"], "'forward:nohost' is not forward:HOST:PORT"),
        (["-l", "8080=forward:127.0.0.1:99999"],
         "'forward:127.0.0.1:99999' is not forward:HOST:PORT"),
        (["-l", "8080=forward:[::1:80"], "'forward:[::1:80' is not forward:HOST:PORT"),
        (["-l", "8080=forward:127.0.0.1:0"], "cannot connect to 127.0.0.1:0"),
        (["--max-exec", "0"], "invalid value '0' for '--max-exec <N>': must be at least 1"),
    ],
)
def test_relay_contract_bad_spec_is_a_startup_error(tmp_path, args, message):
    # Run in the test's namespace; nothing may be created.
    r = subprocess.run([str(synack_binary()), "-l", "7=echo", *args,
                        "--control", str(tmp_path / "control.sock")],
                       capture_output=True, timeout=10)
    err = r.stderr.decode()
    assert r.returncode == 2, (r.returncode, err)
    assert message in err, err
    if "-l" in args:
        spec = args[1]
        assert f"invalid value '{spec}' for '--listen <PORT=SERVICE>'" in err, err
    assert not (tmp_path / "control.sock").exists()
    assert "synack0" not in run(["ip", "link"]).stdout


# --- 11. counters


@pytest.mark.synack_args("-l", "7=echo", "-l", "80=http", "-l", f"{FWD}={FORWARD}")
def test_relay_contract_a_refused_forward_is_counted(synack, control):
    lo_up()  # and nothing listens on 127.0.0.1:8000
    before = stats(control)
    with pytest.raises(ConnectionRefusedError):
        connect(FWD)
    after = stats(control)
    assert after["forward_refused"] == before["forward_refused"] + 1, (before, after)
    assert after["forward_connect_failures"] == before["forward_connect_failures"]
    assert after["passive_opens"] == before["passive_opens"], "a refused SYN opened nothing"
    assert synack.wait_log(r"refused the connection; resetting the client", 3)
    text = ctl(control, "stats").stdout.decode()
    assert re.search(rf"^forward_refused\s+{after['forward_refused']}$", text, re.M), text
    metrics = run(["curl", "-s", f"http://{SYNACK4}/metrics"], timeout=10).stdout
    assert f"synack_forward_refused_total {after['forward_refused']}\n" in metrics, metrics


# --- 12. exec: stdin, stdout and FINs


@pytest.mark.synack_args("-l", "7=echo", "-l", f"{PORT}=exec:/bin/sh -c 'wc -c; echo done'")
def test_relay_contract_exec_client_fin_closes_the_programs_stdin(synack, control):
    with connect(PORT) as c:
        c.sendall(b"x" * 100_000)
        pid = started_pid(synack, "exec:/bin/sh")
        # Still running: `wc` answers only at the end of its input.
        assert not gone(pid)
        assert row_of(control, c)["state"] == "ESTABLISHED"
        c.shutdown(socket.SHUT_WR)
        # Our FIN was its stdin's EOF, after every byte; its answer comes back, then FIN.
        assert read_all(c, timeout=10) == b"100000\ndone\n"
    assert wait_until(lambda: gone(pid), 5), f"pid {pid} still there"
    assert synack.wait_log(r"program exited with status 0", 3), synack.log_tail(20)


STDOUT_CLOSER = "exec:/bin/sh -c 'echo last; exec >&-; sleep 2; echo gone >&2'"


@pytest.mark.synack_args("-l", "7=echo", "-l", f"{PORT}={STDOUT_CLOSER}")
def test_relay_contract_exec_program_that_closes_stdout_gets_fin_after_its_last_byte(
        synack, control):
    with connect(PORT) as c:
        assert recv_exactly(c, 5) == b"last\n"
        pid = started_pid(synack, "exec:/bin/sh")
        t0 = time.monotonic()
        # Its stdout is closed (`sleep` inherits no copy of it) but it runs on for 2 s. The
        # issue: "When the program closes its stdout or exits, synack sends its FIN after
        # the last byte": the FIN comes (not a RST), and well before the program exits.
        assert read_all(c, timeout=10) == b""
        waited = time.monotonic() - t0
        assert waited < 1.5, f"FIN only {waited:.2f} s after the last byte"
        assert not gone(pid), "the program is still running"
        print(f"FIN {waited:.2f} s after the last byte")
    # We closed first; the client's FIN then ends the connection cleanly, and the program
    # exits in its own time (its stderr still reaches the log).
    assert synack.wait_log(r"FIN-WAIT-2 -> TIME-WAIT", 5), synack.log_tail(20)
    assert wait_until(lambda: gone(pid), 5)
    assert synack.wait_log(r"program exited with status 0", 5), synack.log_tail(20)
    assert "stderr: gone" in synack.log(), synack.log_tail(20)
    assert stats(control)["rst_out"] == 0


# --- IPv6, and the daemon's graceful shutdown


@pytest.mark.synack_args("-l", "7=echo", "-l", f"{FWD}=forward:[::1]:{UPSTREAM}")
def test_relay_contract_forward_to_an_ipv6_upstream_from_both_families(synack, control):
    lo_up()
    with socket.socket(socket.AF_INET6) as lsock:
        lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        lsock.bind(("::1", UPSTREAM))
        lsock.listen(4)
        lsock.settimeout(5)
        for family, addr in ((socket.AF_INET6, SYNACK6), (socket.AF_INET, SYNACK4)):
            with socket.socket(family) as c:
                c.settimeout(5)
                c.connect((addr, FWD))
                up, peer = lsock.accept()
                with up:
                    row = row_of(control, c)
                    assert row["app"] == f"forward:[::1]:{UPSTREAM}", row
                    assert row["upstream_local"] == f"[::1]:{peer[1]}", row
                    c.sendall(b"over IPv6 upstream\n")
                    assert recv_exactly(up, 19) == b"over IPv6 upstream\n"
                    up.sendall(b"back\n")
                    assert recv_exactly(c, 5) == b"back\n"
                    c.shutdown(socket.SHUT_WR)
                    up.settimeout(5)
                    assert up.recv(10) == b"", "the client's FIN reaches the upstream"
                    up.shutdown(socket.SHUT_WR)
                    assert read_all(c, timeout=5) == b""


@pytest.mark.synack_args("-l", "7=echo", "-l", f"{FWD}={FORWARD}")
def test_relay_contract_graceful_shutdown_closes_the_upstream_side(synack, upstream):
    c = connect(FWD)
    up, _ = upstream.accept()
    c.sendall(b"still here\n")
    assert recv_exactly(up, 11) == b"still here\n"
    assert synack.terminate(timeout=5) == 0
    # The upstream's socket is closed (EOF or, past the grace period, a reset), and so is
    # the client's connection: nothing is left open on either side.
    up.settimeout(5)
    try:
        assert up.recv(100) == b""
    except ConnectionResetError:
        pass
    c.settimeout(5)
    try:
        assert c.recv(100) == b""
    except ConnectionResetError:
        pass
    c.close()


@pytest.mark.synack_args("-l", "7=echo", "-l", f"{FWD}={FORWARD}")
def test_relay_contract_time_wait_does_not_hold_the_upstream_socket(synack, control, upstream):
    """Connections the upstream ends first leave synack in TIME-WAIT for 60 s; their upstream
    sockets are closed at once, so a busy forward port does not run out of descriptors."""

    def sockets():
        fds = os.listdir(f"/proc/{synack.proc.pid}/fd")
        links = [os.readlink(f"/proc/{synack.proc.pid}/fd/{fd}") for fd in fds]
        return sum(link.startswith("socket:") for link in links)

    before = sockets()
    for i in range(200):
        with connect(FWD) as c:
            up, _ = upstream.accept()
            up.sendall(b"bye\n")
            up.close()
            assert read_all(c, timeout=5) == b"bye\n", f"connection {i}"
    rows = status_rows(control)
    assert sum(r["state"] == "TIME-WAIT" for r in rows) == 200, rows[:3]
    assert wait_until(lambda: sockets() <= before + 5, 5), (
        f"{sockets() - before} sockets more than before the 200 connections")


BACKGROUNDER = "exec:/bin/sh -c 'echo hi; sleep 3 &'"


@pytest.mark.synack_args("-l", "7=echo", "-l", f"{PORT}={BACKGROUNDER}")
def test_relay_contract_exec_program_that_exits_gets_fin_though_a_child_holds_its_stdout(
        synack, control):
    # The shell exits at once; the `sleep` it left behind holds its stdout open for 3 s, so
    # the pipe sees no EOF. The issue: "when the program closes its stdout or exits, synack
    # sends its FIN after the last byte": the FIN follows the shell's exit, not the sleep's.
    with connect(PORT) as c:
        t0 = time.monotonic()
        assert read_all(c, timeout=10) == b"hi\n"
        waited = time.monotonic() - t0
        assert waited < 2, f"FIN {waited:.2f} s after connecting"
    assert synack.wait_log(r"program exited with status 0", 5), synack.log_tail(20)
    assert stats(control)["rst_out"] == 0
