"""Any program behind synack's TCP (issue #11): `exec:` runs a program per connection on
its stdin/stdout, with the ucspi-tcp environment; `forward:` relays each connection to a
kernel TCP socket (an upstream on 127.0.0.1 inside the test namespace)."""

import hashlib
import json
import os
import selectors
import shutil
import re
import socket
import struct
import subprocess
import threading
import time
from pathlib import Path

import pytest

from harness import SYNACK4, oracle_mode, wait_until
from conftest import synack_binary, synack_cmd

pytestmark = pytest.mark.skipif(oracle_mode(), reason="synack's exec: and forward: services")

PORT = 5000


def connect(port=PORT, timeout=10.0):
    return socket.create_connection((SYNACK4, port), timeout=timeout)


def read_all(sock, timeout=30.0) -> bytes:
    """Everything until the peer's FIN (bounded in time)."""
    chunks = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        chunk = sock.recv(1 << 20)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)
    raise AssertionError(f"no FIN within {timeout} s ({sum(map(len, chunks))} bytes read)")


def reset(sock):
    """Close with a RST (SO_LINGER 0)."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def started_pid(synack, label, timeout=5.0) -> int:
    found = []

    def check():
        m = re.findall(r"started " + re.escape(label) + r" .*pid=(\d+)", synack.log())
        found[:] = m
        return bool(m)

    assert wait_until(check, timeout), f"no 'started {label}' in the log:\n{synack.log_tail(30)}"
    return int(found[-1])


def gone(pid) -> bool:
    """The process no longer exists, zombie included (it was reaped)."""
    return not os.path.exists(f"/proc/{pid}")


@pytest.mark.synack_args("-l", "7=echo", "-l", f"{PORT}=exec:cat")
def test_exec_cat_echoes(synack):
    with connect() as s:
        s.sendall(b"hello, program\n")
        s.shutdown(socket.SHUT_WR)
        assert read_all(s) == b"hello, program\n"
    assert wait_until(lambda: "program exited with status 0" in synack.log(), 5), synack.log_tail(20)


@pytest.mark.synack_args(
    "-l", "7=echo",
    "-l", f"{PORT}=exec:/bin/sh -c 'echo $PROTO $TCPLOCALIP $TCPLOCALPORT $TCPREMOTEIP $TCPREMOTEPORT; echo oops >&2'",
)
def test_exec_gets_the_ucspi_tcp_environment_and_stderr_is_logged(synack):
    with connect() as s:
        local = s.getsockname()
        got = read_all(s).decode()
    assert got == f"TCP {SYNACK4} {PORT} {local[0]} {local[1]}\n"
    assert wait_until(lambda: re.search(r"stderr: oops", synack.log()), 5), synack.log_tail(20)
    line = next(l for l in synack.log().splitlines() if "stderr: oops" in l)
    assert f"{local[0]}:{local[1]}" in line, f"stderr line without the 4-tuple: {line}"


@pytest.mark.synack_args("-l", "7=echo", "-l", f"{PORT}=exec:sha256sum")
def test_exec_sha256sum_hashes_64mib_after_the_half_close(synack):
    data = os.urandom(64 << 20)
    with connect(timeout=60) as s:
        s.sendall(data)
        s.shutdown(socket.SHUT_WR)
        got = read_all(s, timeout=60).decode()
    assert got.split()[0] == hashlib.sha256(data).hexdigest(), got


def status_row(sock):
    """This client's row in `synack status --json`."""
    out = synack_cmd("status", "--json")
    assert out.returncode == 0, out.stderr
    local = sock.getsockname()
    rows = [r for r in json.loads(out.stdout) if r.get("peer") == f"{local[0]}:{local[1]}"]
    assert len(rows) == 1, out.stdout
    return rows[0]


@pytest.mark.synack_args("-l", "7=echo", "-l", f"{PORT}=exec:/bin/sh -c 'sleep 5'")
def test_exec_client_reset_kills_the_program(synack):
    s = connect()
    pid = started_pid(synack, "exec:/bin/sh -c 'sleep 5'")
    assert not gone(pid)
    row = status_row(s)
    assert row["app"] == "exec:/bin/sh -c 'sleep 5'" and row["pid"] == pid, row
    reset(s)
    assert wait_until(lambda: gone(pid), 3), f"pid {pid} still there:\n{synack.log_tail(20)}"
    assert "killed by signal 9" in synack.log()


@pytest.mark.synack_args("-l", "7=echo", "-l", f"{PORT}=exec:/bin/sh -c 'echo partial; kill -9 $$'")
def test_exec_program_that_dies_uncleanly_resets_the_connection(synack):
    with connect() as s:
        with pytest.raises(ConnectionResetError):
            read_all(s, timeout=5)


@pytest.mark.synack_args("-l", "7=echo", "-l", f"{PORT}=exec:/bin/sh -c 'sleep 5'", "--max-exec", "1")
def test_exec_past_max_exec_is_refused(synack):
    first = connect()
    started_pid(synack, "exec:/bin/sh -c 'sleep 5'")
    with pytest.raises(ConnectionRefusedError):
        connect()
    reset(first)


@pytest.mark.parametrize(
    "listen, message",
    [
        (f"{PORT}=exec:/nonexistent/program", "does not exist"),
        (f"{PORT}=exec:{__file__}", "not an executable"),
        (f"{PORT}=exec:no-such-program-anywhere", "no program 'no-such-program-anywhere' in PATH"),
    ],
)
def test_exec_bad_command_is_a_startup_error(listen, message):
    r = subprocess.run([str(synack_binary()), "-l", listen], capture_output=True, timeout=10)
    assert r.returncode != 0
    assert message in r.stderr.decode(), r.stderr.decode()


# --- forward:

UPSTREAM = 8000
FWD = 8080


def lo_up():
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True, timeout=5)


@pytest.fixture
def http_upstream(tmp_path):
    """A Python http.server on 127.0.0.1:8000 serving a 256 MiB file of random bytes."""
    lo_up()
    root = tmp_path / "www"
    root.mkdir()
    digest = hashlib.sha256()
    with open(root / "big", "wb") as f:
        for _ in range(256):
            chunk = os.urandom(1 << 20)
            digest.update(chunk)
            f.write(chunk)
    server = subprocess.Popen(
        ["/usr/bin/python3", "-m", "http.server", str(UPSTREAM), "--bind", "127.0.0.1"],
        cwd=root, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )

    def up():
        try:
            socket.create_connection(("127.0.0.1", UPSTREAM), timeout=1).close()
            return True
        except OSError:
            return False

    assert wait_until(up, 10), "http.server did not start"
    yield digest.hexdigest()
    server.kill()
    server.wait(timeout=5)


def curl_sha256(url, tmp_path, timeout) -> str:
    out = tmp_path / "download"
    r = subprocess.run(["curl", "-sS", "-o", str(out), url], capture_output=True, timeout=timeout)
    assert r.returncode == 0, r.stderr.decode()
    digest = hashlib.sha256()
    with open(out, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    out.unlink()
    return digest.hexdigest()


@pytest.mark.synack_args("-l", "7=echo", "-l", f"{FWD}=forward:127.0.0.1:{UPSTREAM}")
def test_forward_256mib_download_is_byte_exact(synack, http_upstream, tmp_path):
    assert curl_sha256(f"http://{SYNACK4}:{FWD}/big", tmp_path, 120) == http_upstream


@pytest.mark.synack_args("-l", "7=echo", "-l", f"{FWD}=forward:127.0.0.1:{UPSTREAM}",
                         "--impair", "loss=1%,reorder=1%")
def test_forward_256mib_download_under_loss_and_reordering(synack, http_upstream, tmp_path):
    assert curl_sha256(f"http://{SYNACK4}:{FWD}/big", tmp_path, 300) == http_upstream


@pytest.mark.synack_args("-l", "7=echo", "-l", f"{FWD}=forward:127.0.0.1:{UPSTREAM}")
def test_forward_to_a_closed_port_is_connection_refused(synack):
    lo_up()
    r = subprocess.run(["curl", "-sv", f"http://{SYNACK4}:{FWD}/"], capture_output=True, timeout=10)
    assert r.returncode == 7, r.stderr.decode()
    assert "Connection refused" in r.stderr.decode() or "Couldn't connect" in r.stderr.decode()
    with pytest.raises(ConnectionRefusedError):
        connect(FWD)


class EchoUpstream:
    """A selectors echo server on 127.0.0.1:8000 in a thread, for many connections."""

    def __init__(self):
        lo_up()
        self.sel = selectors.DefaultSelector()
        self.lsock = socket.socket()
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind(("127.0.0.1", UPSTREAM))
        self.lsock.listen(4096)
        self.lsock.setblocking(False)
        self.sel.register(self.lsock, selectors.EVENT_READ)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        while not self.stop.is_set():
            for key, _ in self.sel.select(0.1):
                if key.fileobj is self.lsock:
                    try:
                        c, _ = self.lsock.accept()
                    except BlockingIOError:
                        continue
                    c.setblocking(False)
                    self.sel.register(c, selectors.EVENT_READ)
                    continue
                c = key.fileobj
                try:
                    data = c.recv(65536)
                except (BlockingIOError, ConnectionError):
                    data = b""
                if data:
                    c.sendall(data)
                else:
                    self.sel.unregister(c)
                    c.close()

    def close(self):
        self.stop.set()
        self.thread.join(5)
        self.lsock.close()


@pytest.mark.synack_args("-l", "7=echo", "-l", f"{FWD}=forward:127.0.0.1:{UPSTREAM}")
def test_forward_1000_concurrent_connections(synack):
    upstream = EchoUpstream()
    socks = []
    try:
        for _ in range(1000):
            socks.append(connect(FWD))
        row = status_row(socks[0])
        assert row["app"] == f"forward:127.0.0.1:{UPSTREAM}", row
        assert row["upstream_local"].startswith("127.0.0.1:"), row
        for i, s in enumerate(socks):
            s.sendall(f"conn {i}\n".encode())
        for i, s in enumerate(socks):
            want = f"conn {i}\n".encode()
            got = b""
            while len(got) < len(want):
                chunk = s.recv(100)
                assert chunk, f"connection {i} closed early"
                got += chunk
            assert got == want
        for s in socks:
            s.shutdown(socket.SHUT_WR)
        for i, s in enumerate(socks):
            assert read_all(s, timeout=10) == b"", f"connection {i}: no clean FIN"
    finally:
        for s in socks:
            s.close()
        upstream.close()


@pytest.mark.synack_args("-l", "7=echo", "-l", "2222=forward:127.0.0.1:22")
def test_ssh_across_synack(synack, tmp_path):
    if not (shutil.which("ssh") and Path("/usr/sbin/sshd").exists()):
        pytest.skip("openssh-server and openssh-client are needed (scripts/test.sh installs them)")
    lo_up()
    for name in ("host_key", "client_key"):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / name)],
                       check=True, timeout=20)
    (tmp_path / "authorized_keys").write_text((tmp_path / "client_key.pub").read_text())
    config = tmp_path / "sshd_config"
    config.write_text(
        f"HostKey {tmp_path}/host_key\n"
        f"AuthorizedKeysFile {tmp_path}/authorized_keys\n"
        f"PidFile {tmp_path}/sshd.pid\n"
        "PermitRootLogin prohibit-password\nPasswordAuthentication no\n"
        "KbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\n"
    )
    os.chmod(tmp_path, 0o700)
    # sshd wants its privilege-separation directory /run/sshd: give it a private /run (its
    # own mount namespace) rather than touch the machine's.
    sshd = subprocess.Popen(
        ["unshare", "-m", "sh", "-c",
         "mount -t tmpfs none /run && mkdir -m 755 /run/sshd && "
         f"exec /usr/sbin/sshd -D -e -f {config} -p 22 -o ListenAddress=127.0.0.1"],
        stdout=subprocess.DEVNULL, stderr=open(tmp_path / "sshd.log", "wb"),
    )
    try:
        def up():
            try:
                socket.create_connection(("127.0.0.1", 22), timeout=1).close()
                return True
            except OSError:
                return False

        assert wait_until(up, 10), (tmp_path / "sshd.log").read_text()
        r = subprocess.run(
            ["ssh", "-p", "2222", "-i", str(tmp_path / "client_key"),
             "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
             "-o", "BatchMode=yes", "-o", "ConnectTimeout=10",
             f"root@{SYNACK4}", "echo", "hi"],
            capture_output=True, timeout=30,
        )
        assert r.returncode == 0 and r.stdout == b"hi\n", (
            r.stderr.decode() + (tmp_path / "sshd.log").read_text()
        )
    finally:
        sshd.kill()
        sshd.wait(timeout=5)


@pytest.mark.synack_args("-l", "7=echo", "-l", f"{FWD}=forward:198.18.5.5:80")
def test_forward_to_an_unreachable_upstream_leaves_the_syn_unanswered(synack):
    # No route to 198.18.5.5 in the test namespace: the connect fails at once, and the
    # client hears nothing (its connect times out) rather than a RST.
    with pytest.raises((TimeoutError, socket.timeout)):
        socket.create_connection((SYNACK4, FWD), timeout=1.5)
    assert wait_until(lambda: "cannot connect to forward:198.18.5.5:80" in synack.log(), 3)


@pytest.mark.synack_args("-l", "7=echo", "-l", f"{FWD}=forward:127.0.0.1:{UPSTREAM}")
def test_forward_upstream_reset_resets_the_client(synack):
    lo_up()
    with socket.socket() as lsock:
        lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        lsock.bind(("127.0.0.1", UPSTREAM))
        lsock.listen(8)
        with connect(FWD) as s:
            lsock.settimeout(5)
            up, _ = lsock.accept()
            up.sendall(b"before the reset\n")
            # The bytes arrive first (a RST discards whatever is still unsent).
            s.settimeout(5)
            assert s.recv(100) == b"before the reset\n"
            reset(up)
            with pytest.raises(ConnectionResetError):
                chunk = s.recv(100)
                raise AssertionError(f"got {chunk!r} instead of a reset")


@pytest.mark.synack_args("-l", "7=echo", "-l", f"{PORT}=exec:cat")
def test_graceful_shutdown_closes_the_programs_side(synack):
    s = connect()
    s.sendall(b"still here\n")
    s.settimeout(5)
    assert s.recv(100) == b"still here\n"
    pid = started_pid(synack, "exec:cat")
    assert synack.terminate(timeout=5) == 0
    # The client got a FIN (or, past the grace period, a RST), and cat is gone (reaped).
    try:
        assert s.recv(100) == b""
    except ConnectionResetError:
        pass
    s.close()
    assert wait_until(lambda: gone(pid), 3), f"pid {pid} still there"
