"""The socket API from a Rust program (issue 18): examples/echo_server.rs runs synack's TCP on
a TUN of its own, and the kernel's `nc` talks to it."""

import hashlib
import os
import signal
import subprocess
from pathlib import Path

import pytest

import harness

IFACE = "synecho0"


def example_binary() -> Path:
    path = Path(os.environ.get(
        "SYNACK_ECHO_EXAMPLE",
        harness.REPO_ROOT / "target" / "release" / "examples" / "echo_server"))
    if not path.exists():
        pytest.fail(f"{path} not found: build it with "
                    "`cargo build --release --example echo_server` (scripts/test.sh does)")
    return path


@pytest.fixture
def echo_server(tmp_path):
    log = open(tmp_path / "echo_server.log", "w+")
    proc = subprocess.Popen([str(example_binary()), "--iface", IFACE, "--port", "7"],
                            stdout=log, stderr=subprocess.STDOUT)
    try:
        up = harness.wait_until(lambda: harness._answers("198.18.0.2", 7), timeout=10)
        assert up, "the example never answered on 198.18.0.2:7"
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        log.seek(0)
        print(log.read())
        log.close()
    assert proc.returncode == 0, "SIGTERM is a clean exit"
    assert harness.wait_until(lambda: not harness.iface_exists(IFACE), timeout=5)


@pytest.mark.kernel_differs("the example is synack's own program")
def test_nc_gets_its_line_echoed_by_the_example(echo_server):
    for addr in ["198.18.0.2", "2001:2::2"]:
        out = subprocess.run(["nc", "-N", "-w", "5", addr, "7"], input=b"hi\n",
                             capture_output=True, timeout=15)
        assert out.stdout == b"hi\n", (addr, out)


@pytest.mark.kernel_differs("the example is synack's own program")
def test_the_example_echoes_a_megabyte_byte_exact(echo_server):
    data = os.urandom(1 << 20)
    out = subprocess.run(["nc", "-N", "-w", "10", "198.18.0.2", "7"], input=data,
                         capture_output=True, timeout=30)
    assert hashlib.sha256(out.stdout).hexdigest() == hashlib.sha256(data).hexdigest(), \
        f"got {len(out.stdout)} of {len(data)} bytes"
