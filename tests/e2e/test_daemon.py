"""Issue 14: synack run the way daemons run on Linux.

- Without root: the README's "Without root" commands, run exactly as written by an ordinary
  user (`nobody`, through `setpriv`) with a copy of the binary given `cap_net_admin+ep`; the
  default control socket for such a user, and one warning (not an exit) when it cannot be made.
- systemd: `systemd-analyze verify` on contrib/synack.service, and the unit's ExecStart under
  the unit's credentials (a non-root user, only CAP_NET_ADMIN as an ambient capability, no new
  privileges, /run/synack as RuntimeDirectory= makes it) with a NOTIFY_SOCKET of the test's
  own: READY=1 comes only once 198.18.0.2 answers, STOPPING=1 on SIGTERM.
- `synack man` and `synack completions`: the page renders with man(1), the scripts load.
- The Debian package from scripts/package.sh installs with dpkg and works.

Everything that needs a user's view of the file system runs in `PrivateMounts`, a mount
namespace of the test's own (a tmpfs on /tmp and /run/synack), so nothing outside changes;
the package test alone installs into the system (and removes the package again).
"""

import os
import pwd
import re
import select
import shutil
import socket
import stat
import subprocess
import time
from pathlib import Path

import pytest

import harness
from conftest import synack_binary, synack_cmd
from harness import Daemon

pytestmark = pytest.mark.skipif(
    harness.oracle_mode(), reason="tests synack's packaging, not TCP behaviour"
)

NOBODY = pwd.getpwnam("nobody").pw_uid
PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
WORK = "/tmp/work"  # inside PrivateMounts: a checkout with target/release/synack
UNIT = harness.REPO_ROOT / "contrib/synack.service"
# The flags setpriv(1) needs to run a command as `nobody` with no capabilities at all except
# what the binary's file capabilities grant (no --no-new-privs: it would ignore them).
AS_NOBODY = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups",
             "--inh-caps=-all"]


class PrivateMounts:
    """A process holding a mount namespace of its own, for commands run with nsenter: a tmpfs
    on /tmp and on /run/synack, and a /dev/net/tun that every user may open (udev makes it
    mode 0666 on Debian; this machine's /dev may have it 0600)."""

    SETUP = (
        "set -e; mount -t tmpfs -o mode=1777 synack-tmp /tmp; "
        "mkdir -p /run/synack; mount -t tmpfs -o mode=0755 synack-run /run/synack; "
        'if [ "$(stat -L -c %a /dev/net/tun)" != 666 ]; then '
        "mknod -m 0666 /tmp/.tun c 10 200; mount --bind /tmp/.tun /dev/net/tun; fi; "
        "echo ready; exec sleep 600"
    )

    def __init__(self):
        self.proc = subprocess.Popen(
            ["unshare", "-m", "--propagation", "private", "--", "sh", "-c", self.SETUP],
            stdout=subprocess.PIPE,
        )
        ready, _, _ = select.select([self.proc.stdout], [], [], 10)
        if not ready or self.proc.stdout.readline().strip() != b"ready":
            self.close()
            pytest.fail("could not set up a private mount namespace", pytrace=False)

    def path(self, p) -> Path:
        """`p` as seen inside the namespace, reachable from outside."""
        return Path(f"/proc/{self.proc.pid}/root{p}")

    def argv(self, command, user=False, env=None):
        """argv running the shell `command` in the namespace (cwd WORK if it exists), as
        `nobody` if `user`, with only PATH, HOME and `env` in its environment."""
        prefix = ["nsenter", "-t", str(self.proc.pid), "-m", "--"]
        if user:
            prefix += AS_NOBODY
        variables = [f"PATH={PATH}", "HOME=/nonexistent", "NO_COLOR=1"]
        variables += [f"{k}={v}" for k, v in (env or {}).items()]
        script = f"cd {WORK} 2>/dev/null || cd /; {command}"
        return prefix + ["env", "-i", *variables, "sh", "-c", script]

    def run(self, command, user=False, env=None, timeout=10, input=None):
        return subprocess.run(self.argv(command, user, env), capture_output=True,
                              timeout=timeout, input=input)

    def close(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=5)


@pytest.fixture
def mounts():
    m = PrivateMounts()
    yield m
    m.close()


def readme_section(title):
    """The ```sh blocks of the README section `### title`, as lists of command lines."""
    text = (harness.REPO_ROOT / "README.md").read_text()
    start = text.index(f"### {title}\n")
    end = text.find("\n### ", start + 1)
    section = text[start:end if end >= 0 else len(text)]
    blocks = re.findall(r"```sh\n(.*?)```", section, re.S)
    return [[line for line in b.splitlines() if line.strip()] for b in blocks]


def start_daemon(mounts, tmp_path, command, user=True, env=None, name="synack.log"):
    """The daemon started by `command` in `mounts`, ready (it answers on port 7)."""
    d = Daemon("synack", [], tmp_path / name)
    # Every wrapper (nsenter, setpriv, env, sh) execs, so the process is synack itself.
    d.argv = mounts.argv(f"exec {command}", user=user, env=env)
    d.start()
    try:
        d.wait_ready()
    except harness.DaemonError as e:
        d.kill()
        pytest.fail(f"{e}\n{d.log()}", pytrace=False)
    return d


def stop_daemon(d):
    status = d.terminate(timeout=5)
    if status is None:
        d.kill()
    assert status == 0, f"synack exited with {status} after SIGTERM:\n{d.log_tail()}"
    assert harness.wait_until(lambda: not harness.iface_exists(), 3)


def control_warnings(log):
    return [line for line in log.splitlines() if "WARN" in line and "control socket" in line]


def install_work_copy(mounts):
    """A checkout-like directory with a copy of the binary at ./target/release/synack (copied
    from outside: the namespace has its own /tmp); returns its path inside."""
    copy = f"{WORK}/target/release/synack"
    mounts.path(copy).parent.mkdir(parents=True)
    shutil.copyfile(synack_binary(), mounts.path(copy))
    os.chmod(mounts.path(copy), 0o755)
    for d in (WORK, f"{WORK}/target", f"{WORK}/target/release"):
        os.chmod(mounts.path(d), 0o755)
    return copy


@pytest.mark.parametrize("xdg", [True, False], ids=["XDG_RUNTIME_DIR", "no-XDG_RUNTIME_DIR"])
def test_the_readme_without_root_section_works_as_written(mounts, tmp_path, xdg):
    setup, clients = readme_section("Without root")
    assert len(setup) == 2 and setup[0].startswith("sudo setcap"), setup
    install_work_copy(mounts)
    env = {}
    if xdg:
        # What pam_systemd gives a login: its own directory, mode 0700.
        runtime = "/tmp/xdg-runtime"
        mounts.run(f"install -d -m 0700 -o nobody {runtime}")
        env["XDG_RUNTIME_DIR"] = runtime
        sock_dir = f"{runtime}/synack"
    else:
        sock_dir = f"/tmp/synack-{NOBODY}"

    # `sudo setcap ...`, in the root shell the tests run in (no sudo there).
    r = mounts.run(setup[0].removeprefix("sudo "))
    assert r.returncode == 0, r.stderr.decode()
    d = start_daemon(mounts, tmp_path, setup[1], env=env)
    try:
        results = {line: mounts.run(line, user=True, env=env) for line in clients}
        for line, r in results.items():
            assert r.returncode == 0, f"`{line}` failed: {r.stderr.decode()}\n{d.log_tail()}"
            assert r.stdout, f"`{line}` printed nothing"
            if line.startswith("printf 'hi\\n' | nc"):
                assert r.stdout == b"hi\n"
            if "synack status" in line:
                assert b"LISTEN" in r.stdout, r.stdout.decode()

        # The daemon ran as nobody and put its socket where the subcommand looked.
        assert os.stat(f"/proc/{d.proc.pid}").st_uid == NOBODY
        dir_stat = os.lstat(mounts.path(sock_dir))
        assert stat.S_ISDIR(dir_stat.st_mode) and dir_stat.st_uid == NOBODY
        assert stat.S_IMODE(dir_stat.st_mode) == 0o700
        sock_stat = os.lstat(mounts.path(f"{sock_dir}/synack0.sock"))
        assert stat.S_ISSOCK(sock_stat.st_mode) and stat.S_IMODE(sock_stat.st_mode) == 0o600
        assert control_warnings(d.log()) == [], d.log_tail()
    finally:
        stop_daemon(d)
    assert not mounts.path(f"{sock_dir}/synack0.sock").exists()


def test_without_the_capability_an_ordinary_user_is_told_what_to_do(mounts, tmp_path):
    """The test above can fail: the same run without setcap stops at once, saying why."""
    install_work_copy(mounts)
    r = mounts.run("./target/release/synack", user=True)
    assert r.returncode == 1
    assert b"CAP_NET_ADMIN" in r.stderr, r.stderr.decode()
    assert not harness.iface_exists()


def test_a_per_user_directory_made_by_someone_else_is_refused_but_the_daemon_runs(mounts,
                                                                                   tmp_path):
    install_work_copy(mounts)
    mounts.run("setcap cap_net_admin+ep ./target/release/synack")
    # Another user (root here) made /tmp/synack-<uid> first and left it open.
    planted = f"/tmp/synack-{NOBODY}"
    mounts.run(f"install -d -m 0777 {planted}")
    d = start_daemon(mounts, tmp_path, "./target/release/synack")
    try:
        r = mounts.run("curl -s http://198.18.0.2/", user=True)
        assert r.returncode == 0 and b"198.18.0.2" in r.stdout
        warnings = control_warnings(d.log())
        assert len(warnings) == 1, d.log_tail()
        assert f"{planted}/synack0.sock" in warnings[0] and "--control PATH" in warnings[0]
        assert "owned by uid 0" in warnings[0], warnings[0]
        assert list(mounts.path(planted).iterdir()) == []

        r = mounts.run("./target/release/synack status", user=True)
        assert r.returncode == 1
        assert f"{planted} is owned by uid 0".encode() in r.stderr, r.stderr.decode()
    finally:
        stop_daemon(d)


@pytest.mark.synack_args("--control", "/dev/null/synack0.sock")
def test_a_control_socket_that_cannot_be_made_is_one_warning_not_an_exit(synack):
    # The fixture has checked that the endpoint answers over IPv4 and IPv6.
    warnings = control_warnings(synack.log())
    assert len(warnings) == 1, synack.log_tail()
    assert "/dev/null/synack0.sock" in warnings[0] and "--control PATH" in warnings[0]
    r = synack_cmd("--control", "/dev/null/synack0.sock", "status")
    assert r.returncode == 1


# ---------------------------------------------------------------------------------------------
# systemd


def unit_with_exec(tmp_path, binary):
    """contrib/synack.service with ExecStart pointing at `binary` (verify needs it to exist;
    the unit names /usr/bin/synack, where the package installs it)."""
    text = UNIT.read_text()
    assert "\nExecStart=/usr/bin/synack " in text
    path = tmp_path / "synack.service"
    path.write_text(text.replace("\nExecStart=/usr/bin/synack ", f"\nExecStart={binary} "))
    return path


def systemd_verify(unit, man_dir=None):
    env = dict(os.environ)
    if man_dir is not None:
        env["MANPATH"] = str(man_dir)  # Documentation=man:synack(1) is checked with man
    r = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True,
                       text=True, timeout=30, env=env)
    # verify exits 0 on unknown keys and bad values too, only warning about them.
    assert r.returncode == 0 and r.stderr.strip() == "", r.stderr
    return r


def unit_setting(name):
    return [line.split("=", 1)[1] for line in UNIT.read_text().splitlines()
            if line.startswith(f"{name}=")]


def test_the_unit_declares_what_the_issue_asks():
    assert unit_setting("Type") == ["notify"]
    assert unit_setting("DynamicUser") == ["yes"]
    assert unit_setting("AmbientCapabilities") == ["CAP_NET_ADMIN"]
    assert unit_setting("CapabilityBoundingSet") == ["CAP_NET_ADMIN"]
    assert unit_setting("RuntimeDirectory") == ["synack"]
    assert unit_setting("ProtectSystem") == ["strict"]
    assert unit_setting("NoNewPrivileges") == ["yes"]
    assert unit_setting("DeviceAllow") == ["/dev/net/tun rw"]
    assert unit_setting("PrivateDevices") == [], "PrivateDevices=yes hides /dev/net/tun"


def test_systemd_analyze_verify_passes_on_the_unit(tmp_path):
    man_dir = tmp_path / "man"
    (man_dir / "man1").mkdir(parents=True)
    (man_dir / "man1/synack.1").write_bytes(synack_cmd("man").stdout)
    systemd_verify(unit_with_exec(tmp_path, synack_binary()), man_dir)


def test_the_unit_is_hardened(tmp_path):
    """systemd's own exposure score for the unit (0 is best, 10 worst; 'OK' is below 3.5)."""
    unit = unit_with_exec(tmp_path, synack_binary())
    r = subprocess.run(["systemd-analyze", "security", "--offline=true", "--no-pager",
                        str(unit)], capture_output=True, text=True, timeout=30)
    m = re.search(r"Overall exposure level for synack\.service: (\d+\.\d+)", r.stdout)
    assert m, r.stdout + r.stderr
    assert float(m.group(1)) <= 2.0, r.stdout


def test_the_check_can_fail(tmp_path):
    """A misspelt setting makes systemd_verify fail, so the test above means something."""
    unit = unit_with_exec(tmp_path, synack_binary())
    unit.write_text(unit.read_text().replace("Type=notify", "Type=notifyy"))
    with pytest.raises(AssertionError, match="notifyy"):
        systemd_verify(unit, tmp_path)


def test_ready_only_once_it_answers_and_stopping_on_sigterm(mounts, tmp_path):
    """The unit's ExecStart as systemd would run it: a non-root user (DynamicUser=yes) with
    CAP_NET_ADMIN as its only capability, ambient (AmbientCapabilities=, CapabilityBounding
    Set=), NoNewPrivileges=yes, /run/synack made for that user (RuntimeDirectory=synack),
    and NOTIFY_SOCKET pointing at a datagram socket of the test's own."""
    (exec_start,) = unit_setting("ExecStart")
    assert exec_start.startswith("/usr/bin/synack ")
    binary = install_work_copy(mounts)
    command = exec_start.replace("/usr/bin/synack", binary, 1)
    mounts.run("chown nobody:nogroup /run/synack")

    notify_path = mounts.path("/tmp/notify.sock")
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(str(notify_path))
    os.chmod(notify_path, 0o666)
    notify.settimeout(10)
    d = Daemon("synack", [], tmp_path / "synack.log")
    d.argv = ["nsenter", "-t", str(mounts.proc.pid), "-m", "--",
              "setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups",
              "--inh-caps=-all,+net_admin", "--ambient-caps=+net_admin",
              "--bounding-set=-all,+net_admin", "--no-new-privs",
              "env", "-i", f"PATH={PATH}", "NO_COLOR=1", "NOTIFY_SOCKET=/tmp/notify.sock",
              *command.split()]
    d.start()
    try:
        try:
            message = notify.recv(4096).decode()
        except TimeoutError:
            pytest.fail(f"no READY=1 within 10 s:\n{d.log_tail()}", pytrace=False)
        assert "READY=1" in message.splitlines(), message
        # At once: both addresses answer, the interface is configured. IPv6 first: its local
        # route comes a few milliseconds after the link is up, and synack waits for it.
        for addr in (harness.SYNACK6, harness.SYNACK4):
            with socket.create_connection((addr, 7), timeout=1) as s:
                s.sendall(b"ready\n")
                assert s.recv(16) == b"ready\n"
        assert "STATUS=synack listening on 198.18.0.2" in message, message
        # The service's socket is root's default: plain `synack status` as root finds it.
        r = mounts.run(f"{binary} status")
        assert r.returncode == 0 and b"LISTEN" in r.stdout, r.stderr.decode()
        assert os.stat(f"/proc/{d.proc.pid}").st_uid == NOBODY
        # An ordinary user's default is elsewhere; they are told where the service's is.
        r = mounts.run(f"{binary} status", user=True)
        assert r.returncode == 1
        assert b"a synack run by root has /run/synack/synack0.sock" in r.stderr, r.stderr

        d.proc.send_signal(15)
        message = notify.recv(4096).decode()
        assert message.splitlines() == ["STOPPING=1"], message
    finally:
        stop_daemon(d)
        notify.close()


def test_an_unreachable_notify_socket_is_a_warning_not_an_exit(tmp_path):
    """Without NOTIFY_SOCKET nothing is sent and nothing breaks; with one that nobody
    reads (no such socket), synack warns once and keeps running."""
    d = Daemon(synack_binary(), ["-v"], tmp_path / "synack.log")
    os.environ["NOTIFY_SOCKET"] = str(tmp_path / "missing.sock")
    try:
        d.start()
    finally:
        del os.environ["NOTIFY_SOCKET"]
    try:
        d.wait_ready()
        assert d.wait_log(r"WARN.*cannot tell the service manager READY=1"), d.log_tail()
    finally:
        stop_daemon(d)


# ---------------------------------------------------------------------------------------------
# man page and completions


def test_the_man_page_renders_with_every_section_and_subcommand():
    page = synack_cmd("man")
    assert page.returncode == 0
    r = subprocess.run(["man", "-l", "-"], input=page.stdout, capture_output=True, timeout=30,
                       env={**os.environ, "MANWIDTH": "80", "MAN_KEEP_FORMATTING": "0",
                            "PAGER": "cat", "MANPAGER": "cat"})
    assert r.returncode == 0, r.stderr.decode()
    text = re.sub(r".\x08", "", r.stdout.decode())  # overstrike bold, if any
    for heading in ("NAME", "SYNOPSIS", "DESCRIPTION", "OPTIONS", "SUBCOMMANDS",
                    "CONTROL SOCKET", "ENVIRONMENT"):
        assert re.search(rf"^{heading}$", text, re.M), f"no {heading} in\n{text}"
    assert re.search(r"^ +synack - a complete TCP endpoint", text, re.M), text
    for sub in ("status", "stats", "connect", "trace", "completions", "man"):
        assert re.search(rf"^ +synack {sub}$", text, re.M), f"no synack {sub} in\n{text}"
    for flag in ("--iface", "--control", "--json", "--follow", "--send"):
        assert flag in text, flag


def test_the_completion_scripts_load():
    bash = synack_cmd("completions", "bash")
    assert bash.returncode == 0
    r = subprocess.run(["bash", "-n"], input=bash.stdout, capture_output=True, timeout=10)
    assert r.returncode == 0, r.stderr.decode()
    # Loaded for real, it completes the subcommands.
    script = (bash.stdout.decode() + "\nCOMP_WORDS=(synack st); COMP_CWORD=1; "
              "_synack synack st synack; printf '%s\\n' \"${COMPREPLY[@]}\"\n")
    r = subprocess.run(["bash", "-c", script], capture_output=True, timeout=10)
    assert r.returncode == 0, r.stderr.decode()
    assert set(r.stdout.decode().split()) == {"status", "stats"}
    for shell in ("zsh", "fish"):
        r = synack_cmd("completions", shell)
        assert r.returncode == 0 and b"synack" in r.stdout
    assert synack_cmd("completions", "tcsh").returncode == 2


# ---------------------------------------------------------------------------------------------
# the Debian package


def test_the_debian_package_installs_and_works(tmp_path):
    if shutil.which("cargo") is None or subprocess.run(
        ["cargo", "deb", "--version"], capture_output=True
    ).returncode != 0:
        pytest.fail("cargo-deb is missing: scripts/test.sh --deps-only installs it",
                    pytrace=False)
    script = harness.REPO_ROOT / "scripts/package.sh"
    r = subprocess.run([str(script)], capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    deb = r.stdout.strip().splitlines()[-1]
    contents = subprocess.run(["dpkg-deb", "-c", deb], capture_output=True, text=True,
                              timeout=30).stdout
    for path in ("./usr/bin/synack", "./usr/lib/systemd/system/synack.service",
                 "./usr/share/man/man1/synack.1.gz",
                 "./usr/share/bash-completion/completions/synack",
                 "./usr/share/zsh/vendor-completions/_synack",
                 "./usr/share/fish/vendor_completions.d/synack.fish"):
        assert path in contents, f"{path} not in the package:\n{contents}"

    was_installed = subprocess.run(["dpkg-query", "-W", "-f=${Status}", "synack"],
                                   capture_output=True, text=True).stdout
    # Minimised images exclude /usr/share/man from every package; not for this one.
    r = subprocess.run(["dpkg", "--path-include=/usr/share/man/man1/synack.1.gz", "-i", deb],
                       capture_output=True, text=True, timeout=120)
    try:
        assert r.returncode == 0, r.stderr
        # The post-install note: nothing started, how to grant the capability.
        assert "setcap cap_net_admin+ep /usr/bin/synack" in r.stdout, r.stdout
        version = subprocess.run(["/usr/bin/synack", "--version"], capture_output=True,
                                 text=True, timeout=10)
        assert version.returncode == 0 and version.stdout.startswith("synack "), version
        man = subprocess.run(["man", "-w", "synack"], capture_output=True, text=True,
                             timeout=30)
        assert man.returncode == 0, man.stderr
        assert man.stdout.strip() == "/usr/share/man/man1/synack.1.gz"
        r = subprocess.run(["bash", "-n", "/usr/share/bash-completion/completions/synack"],
                           capture_output=True, text=True, timeout=10)
        assert r.returncode == 0, r.stderr
        # The installed unit, with the installed binary and man page, as shipped.
        systemd_verify("/usr/lib/systemd/system/synack.service")
        assert os.stat("/usr/bin/synack").st_mode & 0o7777 == 0o755
        getcap = subprocess.run(["getcap", "/usr/bin/synack"], capture_output=True,
                                text=True, timeout=10)
        assert getcap.stdout.strip() == "", "no capability is granted by surprise"
    finally:
        if "installed" not in was_installed:
            subprocess.run(["dpkg", "-r", "synack"], capture_output=True, timeout=120)
    if "installed" not in was_installed:
        assert not Path("/usr/bin/synack").exists()
