"""Fixtures for synack's end-to-end tests.

Run by scripts/test.sh as root inside a fresh network namespace:
    unshare -n -- /usr/bin/python3 -m pytest -v tests/e2e

`synack` starts the binary (env SYNACK_BIN, default target/release/synack), waits until it is
reachable, yields a harness.Daemon, and on teardown sends SIGTERM and requires exit status 0
and the interface gone, all within bounded times. Extra arguments per test:
    @pytest.mark.synack_args("--time-wait", "1s")
The daemon always runs with -v so state transitions are in its log, which is attached to the
report of any failing test.

SYNACK_E2E_ORACLE=kernel runs the same tests against Linux's own TCP behind a veth pair (see
oracle_server.py) to validate the harness; tests marked `kernel_differs` are expected to fail
there, and assertions on synack's log are not made.
"""

import json
import os
import subprocess
from pathlib import Path

import pytest

import harness
from harness import Capture, Daemon, DaemonError, KernelOracle, Peer


def _same_netns_as_init() -> bool:
    try:
        return os.stat("/proc/self/ns/net").st_ino == os.stat("/proc/1/ns/net").st_ino
    except OSError:
        return False


def pytest_configure(config):
    config.addinivalue_line("markers", "synack_args(*args): extra command-line arguments")
    config.addinivalue_line(
        "markers", "kernel_differs(reason): Linux behaves differently; xfail in oracle mode"
    )
    if config.option.collectonly:
        return
    if os.geteuid() != 0:
        pytest.exit("end-to-end tests need root: run scripts/test.sh as root", returncode=2)
    if _same_netns_as_init() and not os.environ.get("SYNACK_E2E_ALLOW_HOST_NETNS"):
        pytest.exit(
            "refusing to run in the machine's own network namespace: use scripts/test.sh, "
            "which runs the tests under `unshare -n`",
            returncode=2,
        )
    harness.run(["ip", "link", "set", "lo", "up"], check=True)


def pytest_collection_modifyitems(config, items):
    if not harness.oracle_mode():
        return
    for item in items:
        marker = item.get_closest_marker("kernel_differs")
        if marker:
            reason = marker.args[0] if marker.args else "Linux differs here"
            item.add_marker(pytest.mark.xfail(reason=f"kernel oracle: {reason}", strict=False))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    daemon = getattr(item, "_synack_daemon", None)
    if daemon is not None and report.failed:
        report.sections.append((f"{daemon.name} log ({report.when})", daemon.log_tail()))


def pytest_sessionfinish(session, exitstatus):
    # End-to-end tests must never be skipped in CI.
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = len(reporter.stats.get("skipped", [])) if reporter else 0
    if os.environ.get("CI") and skipped and session.exitstatus == 0:
        print(f"\nCI: {skipped} end-to-end test(s) were skipped; that is a failure in CI")
        session.exitstatus = 1


def synack_binary() -> Path:
    path = Path(os.environ.get("SYNACK_BIN", harness.REPO_ROOT / "target/release/synack"))
    if not path.is_file() or not os.access(path, os.X_OK):
        pytest.fail(
            f"synack binary not found at {path}: build it with `cargo build` "
            f"(scripts/test.sh does) or point SYNACK_BIN at it",
            pytrace=False,
        )
    return path


def synack_cmd(*args, input=None, timeout=10):
    """Run a synack subcommand (`stats`, `status`, `connect`, ...) and return its result."""
    return subprocess.run([str(synack_binary()), *args], input=input, capture_output=True,
                          timeout=timeout)


def synack_stats() -> dict:
    """The running daemon's counters, as `synack stats --json` prints them."""
    out = synack_cmd("stats", "--json")
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


@pytest.fixture
def synack(request, tmp_path):
    """The running endpoint (or the kernel oracle), ready for connections."""
    args = ["-v"]
    for marker in reversed(list(request.node.iter_markers("synack_args"))):
        args += [str(a) for a in marker.args]
    log_path = tmp_path / "synack.log"
    if harness.oracle_mode():
        daemon = KernelOracle(args, log_path)
    else:
        daemon = Daemon(synack_binary(), args, log_path)
    request.node._synack_daemon = daemon
    if harness.iface_exists():
        pytest.fail(f"{harness.IFACE} already exists before the test started", pytrace=False)
    daemon.start()
    error = None
    try:
        daemon.wait_ready()
    except DaemonError as e:
        error = str(e)
    if error:  # its log is attached to the report by pytest_runtest_makereport
        daemon.kill()
        pytest.fail(error, pytrace=False)
    yield daemon
    status = daemon.terminate(timeout=5)
    if status is None:
        daemon.kill()
        pytest.fail(f"{daemon.name} did not exit within 5 s of SIGTERM", pytrace=False)
    assert status == 0, f"{daemon.name} exited with status {status} after SIGTERM"
    assert harness.wait_until(lambda: not harness.iface_exists(), 3), (
        f"{harness.IFACE} still exists after {daemon.name} exited"
    )


@pytest.fixture
def capture(tmp_path):
    """Factory: `with capture() as cap:` captures TCP on synack0 (bpf filter optional)."""
    counter = iter(range(1000))

    def make(bpf="tcp"):
        return Capture(tmp_path / f"capture{next(counter)}.pcap", bpf=bpf)

    return make


@pytest.fixture
def peer(synack):
    """Factory for crafted-packet peers: `p = peer(family=4, dport=7)`."""
    peers = []

    def make(family=4, dport=7, **kw):
        p = Peer(family=family, dport=dport, **kw)
        peers.append(p)
        return p

    yield make
    for p in peers:
        p.close()

