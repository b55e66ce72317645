"""Any program behind synack's TCP (issue #11): `exec:` runs a program per connection on
its stdin/stdout, with the ucspi-tcp environment."""

import hashlib
import os
import re
import socket
import struct
import subprocess
import time

import pytest

from harness import SYNACK4, oracle_mode, wait_until
from conftest import synack_binary

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


@pytest.mark.synack_args("-l", "7=echo", "-l", f"{PORT}=exec:/bin/sh -c 'sleep 5'")
def test_exec_client_reset_kills_the_program(synack):
    s = connect()
    pid = started_pid(synack, "exec:/bin/sh -c 'sleep 5'")
    assert not gone(pid)
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
