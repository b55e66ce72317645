"""Starting and stopping: readiness, the startup line, setup errors, SIGTERM."""

import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import pytest

from harness import (
    IFACE,
    SYNACK4,
    SYNACK6,
    TCP,
    describe_all,
    flagset,
    iface_exists,
    log_has,
    run,
    wait_until,
)
from conftest import synack_binary


def test_startup_line_says_where_synack_is_reachable(synack):
    assert log_has(synack, r"198\.18\.0\.2"), "startup log does not name 198.18.0.2"
    assert log_has(synack, r"nc 198\.18\.0\.2 7|curl http://198\.18\.0\.2/"), (
        "startup log does not say how to try it"
    )


def test_interface_is_configured_as_documented(synack):
    link = run(["ip", "-o", "link", "show", "dev", IFACE]).stdout
    assert "mtu 1500" in link, link
    addrs = run(["ip", "-o", "addr", "show", "dev", IFACE]).stdout
    assert "198.18.0.1/24" in addrs and "2001:2::1/64" in addrs, addrs
    v6 = [line for line in addrs.splitlines() if "2001:2::1/64" in line]
    assert v6 and "tentative" not in v6[0], f"IPv6 address still doing DAD:\n{addrs}"


@pytest.mark.parametrize("family,addr", [(socket.AF_INET, SYNACK4), (socket.AF_INET6, SYNACK6)],
                         ids=["ipv4", "ipv6"])
def test_sigterm_closes_open_connections_with_fin_and_exits_0(synack, capture, family, addr):
    with capture() as cap, socket.socket(family, socket.SOCK_STREAM) as s:
        s.settimeout(5)
        s.connect((addr, 7))
        port = s.getsockname()[1]
        s.sendall(b"ping\n")
        assert s.recv(100) == b"ping\n"
        status = synack.terminate(timeout=5)
        assert status == 0, f"exit status after SIGTERM: {status}"
        assert s.recv(100) == b"", "connection not closed with a FIN"
        pkts = [p for p in cap.packets() if port in (p[TCP].sport, p[TCP].dport)]
    assert any(p.src == addr and "F" in flagset(p) for p in pkts), describe_all(pkts)
    assert wait_until(lambda: not iface_exists(), 3), f"{IFACE} still exists after exit"
    assert run(["ip", "link", "show", IFACE]).returncode != 0


@pytest.mark.kernel_differs("there is no binary to start")
def test_second_instance_on_the_same_interface_fails_with_one_clear_sentence(synack):
    r = subprocess.run([str(synack_binary())], capture_output=True, text=True, timeout=10)
    assert r.returncode != 0
    assert IFACE in r.stderr, f"error does not name the interface: {r.stderr!r}"
    assert "panicked" not in r.stderr, r.stderr
    assert synack.alive() and iface_exists()


@pytest.mark.kernel_differs("there is no binary to start")
def test_bad_flag_is_rejected():
    r = subprocess.run([str(synack_binary()), "--no-such-flag"], capture_output=True,
                       text=True, timeout=10)
    assert r.returncode != 0
    assert "--no-such-flag" in r.stderr, r.stderr


@pytest.mark.kernel_differs("there is no binary to start")
def test_without_privileges_it_says_what_to_do():
    workdir = Path(tempfile.mkdtemp(prefix="synack-e2e-"))
    try:
        workdir.chmod(0o755)
        binary = workdir / "synack"
        shutil.copy(synack_binary(), binary)
        binary.chmod(0o755)
        r = subprocess.run(
            ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all",
             str(binary), "--iface", "synack9"],
            capture_output=True, text=True, timeout=10,
        )
    finally:
        shutil.rmtree(workdir)
    assert r.returncode != 0
    text = r.stderr.lower()
    assert "root" in text or "cap_net_admin" in text, r.stderr
    assert "panicked" not in text, r.stderr
    assert not iface_exists("synack9")
