"""Harness for synack's end-to-end tests.

Everything here runs as root inside a private network namespace (scripts/test.sh starts pytest
under `unshare -n`). Nothing touches the machine's own namespace.

- `Daemon` starts the real binary, waits until it is reachable and stops it with SIGTERM.
- `KernelOracle` stands in for the daemon with the Linux kernel behind a veth pair (see
  oracle_server.py); it exists to validate this harness, because Linux is the reference.
- `Capture` is a tcpdump capture whose pcap is read back with scapy.
- `Peer` is a crafted-packet TCP peer at an address the namespace does not own, so the kernel
  never interferes with the conversation; it talks to the interface through AF_PACKET sockets.
"""

import os
import random
import re
import select
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

from scapy.all import IP, TCP, IPv6, PcapReader, Raw  # noqa: F401 (Raw re-exported)

IFACE = "synack0"
HOST4, HOST6 = "198.18.0.1", "2001:2::1"
SYNACK4, SYNACK6 = "198.18.0.2", "2001:2::2"
PEER4, PEER6 = "198.18.0.7", "2001:2::7"
DEFAULT_MSS = {4: 1460, 6: 1440}

ETH_P_ALL, ETH_P_IP, ETH_P_IPV6 = 0x0003, 0x0800, 0x86DD
PACKET_OUTGOING = 4
# SO_TIMESTAMPNS on Linux (asm-generic/socket.h); Python's socket module does not name it.
SO_TIMESTAMPNS = 35


def _arrival(ancillary):
    """When a packet reached the capture socket, on time.monotonic()'s scale: the kernel's
    receive timestamp (SO_TIMESTAMPNS, wall clock) moved back by its age, or now without
    one. Timing tests (probe and retransmission back-off) then measure the daemon, not how
    late this process got to read."""
    now = time.monotonic()
    for level, kind, data in ancillary:
        if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS and len(data) >= 16:
            sec, nsec = struct.unpack("qq", data[:16])
            age = time.time() - (sec + nsec / 1e9)
            return now - min(max(age, 0.0), 60.0)
    return now

# Oracle mode only: the veth MAC addresses (test side, oracle side).
ORACLE_HOST_MAC = "02:00:5e:12:00:01"
ORACLE_PEER_MAC = "02:00:5e:12:00:02"

REPO_ROOT = Path(__file__).resolve().parents[2]


def oracle_mode() -> bool:
    """True when the suite runs against the Linux kernel instead of synack."""
    return os.environ.get("SYNACK_E2E_ORACLE", "") == "kernel"


def wait_until(pred, timeout, interval=0.02):
    """Poll `pred` until it returns something truthy or `timeout` seconds pass."""
    deadline = time.monotonic() + timeout
    while True:
        value = pred()
        if value or time.monotonic() >= deadline:
            return value
        time.sleep(interval)


class BackgroundSend:
    """Send `data` on `sock` from a thread, then `then(sock)` (by default shutdown(SHUT_WR)),
    for a test that reads the other direction meanwhile (a peer that echoes would otherwise
    deadlock a sender that does not read). `join()` returns the error the sender met, if
    any."""

    def __init__(self, sock, data, then=lambda s: s.shutdown(socket.SHUT_WR)):
        self.error = None

        def send():
            try:
                sock.sendall(data)
                then(sock)
            except Exception as e:  # reported by join()
                self.error = e

        self.thread = threading.Thread(target=send, daemon=True)
        self.thread.start()

    def join(self, timeout=10):
        self.thread.join(timeout)
        return self.error


def run(cmd, timeout=5, check=False, **kw):
    """subprocess.run with a bounded timeout and captured text output."""
    return subprocess.run(
        cmd, capture_output=True, text=True, timeout=timeout, check=check, **kw
    )


def log_has(daemon, pattern, timeout=3.0) -> bool:
    """Whether synack's log gets a line matching `pattern` within `timeout` seconds. Always
    true against the kernel oracle, which has no such log."""
    if oracle_mode():
        return True
    return daemon.wait_log(pattern, timeout) is not None


def iface_exists(iface=IFACE) -> bool:
    return run(["ip", "link", "show", "dev", iface]).returncode == 0


# ---------------------------------------------------------------------------------------------
# The process under test


class DaemonError(Exception):
    pass


class _Process:
    """Shared part of Daemon and KernelOracle: a child whose output goes to a log file."""

    name = "process"

    def __init__(self, log_path: Path, iface=IFACE):
        self.log_path = Path(log_path)
        self.iface = iface
        self.proc = None
        self.returncode = None

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, lines=200) -> str:
        text = self.log().splitlines()
        skipped = len(text) - lines
        head = [f"... ({skipped} earlier lines in {self.log_path})"] if skipped > 0 else []
        return "\n".join(head + text[-lines:])

    def wait_log(self, pattern, timeout=3.0):
        """Wait until a log line matches `pattern` (a regex); return the match or None."""
        rx = re.compile(pattern)
        return wait_until(lambda: rx.search(self.log()), timeout, interval=0.05)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def terminate(self, timeout=5.0):
        """SIGTERM and wait; returns the exit status, or None if it did not exit in time."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                return None
        self.returncode = self.proc.returncode
        return self.returncode

    def kill(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=5)

    def wait_ready(self, timeout=10.0, port=7):
        """Wait until the interface is up with both host addresses and the endpoint accepts a
        TCP connection on `port` over IPv4 and IPv6."""
        deadline = time.monotonic() + timeout
        stage = "interface"
        while time.monotonic() < deadline:
            if not self.alive():
                raise DaemonError(
                    f"{self.name} exited with status {self.proc.poll()} before it was ready"
                )
            if stage == "interface":
                link = run(["ip", "-o", "link", "show", "dev", self.iface]).stdout
                addrs = run(["ip", "-o", "addr", "show", "dev", self.iface]).stdout
                flags = re.search(r"<([^>]*)>", link)
                if (
                    flags
                    and "UP" in flags.group(1).split(",")
                    and f"{HOST4}/24" in addrs
                    and f"{HOST6}/64" in addrs
                ):
                    stage = "tcp"
            if stage == "tcp" and _answers(SYNACK4, port) and _answers(SYNACK6, port):
                return
            time.sleep(0.05)
        raise DaemonError(
            f"{self.name} not ready within {timeout}s (stuck waiting for: {stage}); "
            f"`ip addr` says:\n{run(['ip', 'addr']).stdout}"
        )


def _answers(addr, port) -> bool:
    family = socket.AF_INET6 if ":" in addr else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.settimeout(0.5)
        try:
            s.connect((addr, port))
            return True
        except OSError:
            return False


class Daemon(_Process):
    """The real synack binary."""

    name = "synack"

    def __init__(self, binary, args, log_path, iface=IFACE):
        super().__init__(log_path, iface)
        self.argv = [str(binary), *args]

    def start(self):
        env = {k: v for k, v in os.environ.items() if k != "RUST_LOG"}
        env["NO_COLOR"] = "1"
        env.setdefault("RUST_BACKTRACE", "1")
        with open(self.log_path, "wb") as logf:
            logf.write(f"$ {' '.join(self.argv)}\n".encode())
            logf.flush()
            self.proc = subprocess.Popen(
                self.argv, stdin=subprocess.DEVNULL, stdout=logf, stderr=logf, env=env
            )


class KernelOracle(_Process):
    """Linux's own TCP in a second namespace, behind a veth pair named like synack's TUN.

    oracle_server.py answers as 198.18.0.2 / 2001:2::2 with the same four services. The
    crafted-packet peer's addresses get permanent neighbour entries there, so replies to them
    go out on the wire (and are then dropped by this namespace, which does not own them)."""

    name = "kernel oracle"

    def __init__(self, args, log_path, iface=IFACE):
        super().__init__(log_path, iface)
        self.args = args

    def start(self):
        server = Path(__file__).with_name("oracle_server.py")
        with open(self.log_path, "wb") as logf:
            self.proc = subprocess.Popen(
                ["unshare", "-n", "--", sys.executable, str(server), *self.args],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=logf,
            )
        ready, _, _ = select.select([self.proc.stdout], [], [], 10)
        if not ready or self.proc.stdout.readline().strip() != b"netns-ready":
            raise DaemonError("kernel oracle did not start")
        pid = str(self.proc.pid)
        for cmd in (
            f"ip link add {self.iface} address {ORACLE_HOST_MAC} type veth"
            f" peer name oracle0 address {ORACLE_PEER_MAC} netns {pid}",
            f"ip addr add {HOST4}/24 dev {self.iface}",
            f"ip addr add {HOST6}/64 dev {self.iface} nodad",
            f"ip link set {self.iface} up",
        ):
            run(cmd.split(), check=True)
        self.proc.stdin.write(b"go\n")
        self.proc.stdin.flush()

    def terminate(self, timeout=5.0):
        status = super().terminate(timeout)
        # The kernel tears an abandoned namespace down asynchronously, sometimes slowly;
        # don't let that leak into the next test.
        if status is not None and iface_exists(self.iface):
            run(["ip", "link", "del", self.iface])
        return status


# ---------------------------------------------------------------------------------------------
# tcpdump


class Capture:
    """`with Capture(path) as cap:` runs tcpdump on synack0 writing a pcap, and returns only
    once tcpdump is listening. `cap.packets()` reads what has been captured so far (IP or IPv6
    packets, whatever the link type); `cap.wait_for(pred)` polls until pred(packets) holds."""

    def __init__(self, path, iface=IFACE, bpf="tcp"):
        self.path = Path(path)
        self.iface = iface
        self.bpf = bpf
        self.proc = None
        self.stderr = ""

    def __enter__(self):
        cmd = ["tcpdump", "-ni", self.iface, "-S", "-U", "--immediate-mode", "-Z", "root"]
        cmd += ["-w", str(self.path), *self.bpf.split()]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            ready, _, _ = select.select([self.proc.stderr], [], [], 0.1)
            if ready:
                line = self.proc.stderr.readline().decode(errors="replace")
                self.stderr += line
                if "listening on" in line:
                    return self
                if not line and self.proc.poll() is not None:
                    break
        self.proc.kill()
        raise RuntimeError(f"tcpdump did not start listening: {self.stderr}")

    def __exit__(self, *exc):
        self.stop()

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def packets(self):
        out = []
        try:
            with PcapReader(str(self.path)) as reader:
                for pkt in reader:
                    ip = ip_layer(pkt)
                    if ip is not None:
                        ip.time = pkt.time
                        out.append(ip)
        except Exception:  # a record still being written at the end of the file
            pass
        return out

    def wait_for(self, pred, timeout=3.0):
        """Poll the capture until pred(packets) is truthy; returns the packets either way."""
        pkts = []

        def check():
            nonlocal pkts
            pkts = self.packets()
            return pred(pkts)

        wait_until(check, timeout, interval=0.05)
        return pkts


def ip_layer(pkt):
    if IP in pkt:
        return pkt[IP]
    if IPv6 in pkt:
        return pkt[IPv6]
    return None


# ---------------------------------------------------------------------------------------------
# Looking at packets


def flags(pkt) -> str:
    """TCP flags in canonical order, e.g. 'SA', 'FA', 'RA', 'R', 'PA'."""
    value = int(pkt[TCP].flags)
    bits = ((1, "F"), (2, "S"), (4, "R"), (8, "P"), (16, "A"), (32, "U"))
    return "".join(c for bit, c in bits if value & bit)


def flagset(pkt) -> set:
    return set(flags(pkt))


def payload(pkt) -> bytes:
    return bytes(pkt[TCP].payload)


def seg_len(pkt) -> int:
    """SEG.LEN: payload plus one for each of SYN and FIN."""
    f = flagset(pkt)
    return len(payload(pkt)) + ("S" in f) + ("F" in f)


def src(pkt):
    return pkt.src


def dst(pkt):
    return pkt.dst


def tcp_options(pkt) -> dict:
    return {name: value for name, value in pkt[TCP].options if isinstance(name, str)}


def mss(pkt):
    return tcp_options(pkt).get("MSS")


def describe(pkt) -> str:
    if pkt is None:
        return "<nothing>"
    if TCP not in pkt:
        return pkt.summary()
    t = pkt[TCP]
    return (
        f"{pkt.src}.{t.sport} > {pkt.dst}.{t.dport} [{flags(pkt)}] seq={t.seq} ack={t.ack}"
        f" win={t.window} len={len(payload(pkt))} opts={t.options}"
    )


def describe_all(pkts) -> str:
    return "\n".join(describe(p) for p in pkts) or "<no packets>"


def checksums_ok(pkt) -> bool:
    """Recompute the IPv4 header checksum and the TCP checksum and compare."""
    raw = bytes(pkt)
    fresh = pkt.__class__(raw)
    if IP in fresh:
        want = fresh[IP].chksum
        del fresh[IP].chksum
        if IP(bytes(fresh[IP]))[IP].chksum != want:
            return False
        fresh = pkt.__class__(raw)
    if TCP in fresh:
        want = fresh[TCP].chksum
        del fresh[TCP].chksum
        if pkt.__class__(bytes(fresh))[TCP].chksum != want:
            return False
    return True


def seq_add(a, n) -> int:
    return (a + n) % (1 << 32)


# ---------------------------------------------------------------------------------------------
# Crafted-packet peer


class Peer:
    """A TCP peer made of crafted packets, from an address nobody in the namespace owns.

    Packets are written straight onto the interface with an AF_PACKET socket and the daemon's
    answers are read back from another AF_PACKET socket bound to the interface, opened in the
    constructor, so no reply can slip by before a test starts listening.

    Sequence bookkeeping is explicit: `snd_nxt` is our next sequence number, `rcv_nxt` the
    daemon's; `handshake()`, `send_data()` and `collect()` keep them up to date, `send()` never
    does."""

    def __init__(self, family=4, dport=7, sport=None, iface=IFACE, check_checksums=None):
        self.family = family
        self.src = PEER6 if family == 6 else PEER4
        self.dst = SYNACK6 if family == 6 else SYNACK4
        self.dport = dport
        self.sport = sport or random.randint(20000, 60999)
        self.iface = iface
        self.iss = random.getrandbits(32)
        self.snd_nxt = self.iss
        self.rcv_nxt = 0
        self.peer_iss = None
        self.backlog = []
        self.check_checksums = (not oracle_mode()) if check_checksums is None else check_checksums
        link = run(["ip", "-o", "link", "show", "dev", iface]).stdout
        self.lladdr = _mac(ORACLE_PEER_MAC) if "link/ether" in link else b""
        self.rx = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, socket.htons(ETH_P_ALL))
        self.rx.bind((iface, ETH_P_ALL))
        # The rx socket also sees every packet the peer itself sends (PACKET_OUTGOING). A test
        # that fires hundreds of segments in a burst would fill the default receive buffer
        # (~270 small packets) with its own copies and lose the daemon's answers: give it room
        # (SO_RCVBUFFORCE: we are root).
        self.rx.setsockopt(socket.SOL_SOCKET, getattr(socket, "SO_RCVBUFFORCE", 33), 16 << 20)
        # The kernel's receive timestamp of each packet (see `_arrival`): on a machine busy
        # with other tests this process may read a packet long after it came.
        self.rx.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        self.tx = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM)

    def close(self):
        self.rx.close()
        self.tx.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # -- sending

    def ip(self, **fields):
        if self.family == 6:
            return IPv6(src=self.src, dst=self.dst, **fields)
        return IP(src=self.src, dst=self.dst, **fields)

    def segment(self, flags="A", seq=None, ack=None, payload=b"", options=None, window=65535,
                ip=None, **tcp_fields):
        """Build (but do not send) a segment; seq defaults to snd_nxt, ack to rcv_nxt when
        the ACK bit is set."""
        if seq is None:
            seq = self.snd_nxt
        if ack is None:
            ack = self.rcv_nxt if "A" in flags else 0
        tcp = TCP(sport=self.sport, dport=self.dport, flags=flags, seq=seq, ack=ack,
                  window=window, options=options or [], **tcp_fields)
        pkt = (ip if ip is not None else self.ip()) / tcp
        if payload:
            pkt = pkt / Raw(payload)
        return pkt

    def send_raw(self, data: bytes):
        proto = ETH_P_IPV6 if self.family == 6 else ETH_P_IP
        self.tx.sendto(bytes(data), (self.iface, proto, 0, 0, self.lladdr))

    def send(self, flags="A", seq=None, ack=None, payload=b"", options=None, **kw):
        pkt = self.segment(flags, seq, ack, payload, options, **kw)
        self.send_raw(bytes(pkt))
        return pkt

    def send_data(self, data: bytes, flags="PA"):
        pkt = self.send(flags, payload=data)
        self.snd_nxt = seq_add(self.snd_nxt, len(data))
        return pkt

    # -- receiving

    def _from_daemon(self, pkt) -> bool:
        return (
            TCP in pkt
            and pkt.src == self.dst
            and pkt.dst == self.src
            and (self.dport is None or pkt[TCP].sport == self.dport)
            and pkt[TCP].dport == self.sport
        )

    def _read(self, timeout):
        """Next packet of this conversation sent by the daemon, or None at timeout."""
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            ready, _, _ = select.select([self.rx], [], [], remaining)
            if not ready:
                return None
            data, ancillary, _, addr = self.rx.recvmsg(65535, socket.CMSG_SPACE(16))
            if addr[2] == PACKET_OUTGOING:
                continue
            if addr[1] == ETH_P_IP:
                pkt = IP(data)
            elif addr[1] == ETH_P_IPV6:
                pkt = IPv6(data)
            else:
                continue
            if not self._from_daemon(pkt):
                continue
            pkt.time = _arrival(ancillary)
            if self.check_checksums:
                assert checksums_ok(pkt), f"bad checksum from the daemon: {describe(pkt)}"
            return pkt

    def expect(self, pred=None, timeout=3.0, flags=None, consume=True):
        """The first packet from the daemon on this 4-tuple that has exactly `flags` (if
        given) and satisfies `pred` (if given), within `timeout` seconds; None otherwise.
        Packets that don't match are kept and offered to later calls; so is the match
        itself with consume=False."""

        def matches(p):
            return (flags is None or flagset(p) == set(flags)) and (pred is None or pred(p))

        for i, p in enumerate(self.backlog):
            if matches(p):
                return self.backlog.pop(i) if consume else p
        deadline = time.monotonic() + timeout
        while True:
            p = self._read(deadline - time.monotonic())
            if p is None:
                return None
            if matches(p):
                if not consume:
                    self.backlog.append(p)
                return p
            self.backlog.append(p)

    def expect_nothing(self, timeout=1.0):
        """Everything the daemon sends on this 4-tuple within `timeout` (expected: [])."""
        got = list(self.backlog)
        self.backlog.clear()
        deadline = time.monotonic() + timeout
        while True:
            p = self._read(deadline - time.monotonic())
            if p is None:
                return got
            got.append(p)

    def drain(self):
        self.expect_nothing(timeout=0)

    # -- conversations

    def syn(self, options=None):
        opts = options if options is not None else [("MSS", DEFAULT_MSS[self.family])]
        self.snd_nxt = self.iss
        pkt = self.send("S", seq=self.iss, ack=0, options=opts)
        self.snd_nxt = seq_add(self.iss, 1)
        return pkt

    def expect_synack(self, timeout=3.0):
        synack = self.expect(flags="SA", timeout=timeout)
        assert synack is not None, (
            f"no SYN+ACK from {self.dst}.{self.dport} within {timeout}s; other packets: "
            f"{describe_all(self.backlog)}"
        )
        self.peer_iss = synack[TCP].seq
        self.rcv_nxt = seq_add(synack[TCP].seq, 1)
        return synack

    def expect_active_open(self, timeout=5.0):
        """The daemon's SYN to our port `sport` (its active open, `synack connect`): learn
        the daemon's port (our `dport`) and ISS from it. Returns the SYN."""
        self.dport = None
        syn = self.expect(flags="S", timeout=timeout)
        assert syn is not None, f"no SYN to port {self.sport}: {describe_all(self.backlog)}"
        self.dport = syn[TCP].sport
        self.backlog = [p for p in self.backlog if p[TCP].sport == self.dport]
        self.peer_iss = syn[TCP].seq
        self.rcv_nxt = seq_add(syn[TCP].seq, 1)
        return syn

    def handshake(self, options=None):
        """SYN, SYN+ACK, ACK. Returns the SYN+ACK."""
        self.syn(options)
        synack = self.expect_synack()
        self.send("A")
        return synack

    def ack_now(self):
        return self.send("A")

    def collect(self, until, timeout=5.0):
        """Receive the daemon's data in order, ACKing as we go, until `until(data, fin)`
        holds or `timeout` passes. Retransmitted bytes are checked against what was already
        received. Returns (data, fin_packet_or_None)."""
        data = bytearray()
        fin = None
        deadline = time.monotonic() + timeout
        while not until(bytes(data), fin):
            p = self.expect(timeout=max(0.0, deadline - time.monotonic()))
            if p is None:
                break
            body = payload(p)
            offset = (p[TCP].seq - self.rcv_nxt) % (1 << 32)
            if offset >= 1 << 31:  # starts before rcv_nxt: (partly) a retransmission
                back = (1 << 32) - offset
                already = bytes(data[len(data) - back:]) if back <= len(data) else None
                if already is not None:
                    overlap = body[:back]
                    assert already[: len(overlap)] == overlap, (
                        f"retransmission differs from the original: {describe(p)}"
                    )
                body = body[back:]
                offset = 0
            if offset == 0 and body:
                data += body
                self.rcv_nxt = seq_add(self.rcv_nxt, len(body))
            if "F" in flagset(p) and seq_add(p[TCP].seq, len(payload(p))) == self.rcv_nxt:
                if fin is None:
                    self.rcv_nxt = seq_add(self.rcv_nxt, 1)
                fin = p
            if body or "F" in flagset(p):
                self.send("A")
        return bytes(data), fin


def _mac(text) -> bytes:
    return bytes(int(x, 16) for x in text.split(":"))


def chargen_line(i: int) -> bytes:
    """Line i (from 0) of the RFC 864 pattern: 72 printable characters starting at the i-th
    of the 95 (space .. ~), wrapping around, then CR LF."""
    chars = bytes(range(32, 127))
    start = i % len(chars)
    return (chars + chars)[start : start + 72] + b"\r\n"
