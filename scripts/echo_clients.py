#!/usr/bin/env python3
"""Many concurrent echo clients, spread over several processes (issue 9).

One process may hold at most 20,000 file descriptors on the machines we test on, so the
connections are spread over worker processes (at most 10,000 each). The coordinator drives
them in steps, and every step is bounded in time:

  open N   every worker connects until the workers hold N established connections in all
  echo     every connection sends one line of its own and reads it back; each echo is checked
  close    every connection is closed (FIN) and the workers exit

Used by the end-to-end test (tests/e2e/test_scale.py, as a module) and by the benchmark
(scripts/bench.sh --suite scale, as a command that prints one JSON object per step):

  echo_clients.py --addr 198.18.0.2 --port 7 --stages 1000,10000,100000 --procs 10 \\
      --bind 198.18.0.11,198.18.0.12 --timeout 300 [--rss-pid PID]

Connections are made from the given source addresses in turn (several addresses give several
ephemeral port spaces: the port is chosen per 4-tuple at connect time thanks to
IP_BIND_ADDRESS_NO_PORT). Only the addresses you pass are used; the caller keeps them inside
its own network namespace.
"""

import argparse
import errno
import json
import os
import resource
import select
import socket
import subprocess
import sys
import time

MAX_PER_PROC = 10_000
# Connections a worker has in SYN-SENT at once: enough to keep the endpoint's SYN queue busy
# without making the kernel retransmit SYNs the endpoint had no room for.
IN_FLIGHT = 256
IP_BIND_ADDRESS_NO_PORT = getattr(socket, "IP_BIND_ADDRESS_NO_PORT", 24)


# ---------------------------------------------------------------------------------------------
# Worker: holds its share of the connections, answers one line per command on stdout.


HTTP_REQUEST = b"GET / HTTP/1.1\r\nHost: synack\r\n\r\n"
# The same request asking synack to close first: its side then waits out TIME-WAIT.
HTTP_CLOSE_REQUEST = b"GET / HTTP/1.1\r\nHost: synack\r\nConnection: close\r\n\r\n"


def http_response_done(got):
    """Whether `got` holds a whole HTTP response (head and Content-Length body)."""
    head, sep, body = got.partition(b"\r\n\r\n")
    if not sep:
        return False
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return len(body) >= int(value.strip())
    return True


class Worker:
    def __init__(self, wid, addr, port, sources, http=False):
        # http: the "line" is one `GET /` ("close": with `Connection: close`), and its answer
        # a 200 response.
        self.http = http
        self.wid = wid
        self.dst = (addr, port)
        self.family = socket.AF_INET6 if ":" in addr else socket.AF_INET
        self.sources = sources
        self.socks = []  # established connections, in order
        self.failed = 0
        self.errors = {}
        self.next_source = 0

    def _fail(self, err):
        self.failed += 1
        name = errno.errorcode.get(err, str(err)) if isinstance(err, int) else str(err)
        self.errors[name] = self.errors.get(name, 0) + 1

    def _new_socket(self):
        s = socket.socket(self.family, socket.SOCK_STREAM)
        s.setblocking(False)
        if self.sources:
            src = self.sources[self.next_source % len(self.sources)]
            self.next_source += 1
            s.setsockopt(socket.IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, 1)
            s.bind((src, 0))
        return s

    def open(self, target, deadline):
        """Connect until `target` connections are established (or the deadline passes)."""
        ep = select.epoll()
        pending = {}
        start = time.monotonic()
        try:
            while len(self.socks) < target or pending:
                now = time.monotonic()
                if now >= deadline:
                    break
                while len(pending) < IN_FLIGHT and len(self.socks) + len(pending) < target:
                    try:
                        s = self._new_socket()
                    except OSError as e:
                        self._fail(e.errno)
                        break
                    err = s.connect_ex(self.dst)
                    if err in (0, errno.EINPROGRESS):
                        pending[s.fileno()] = s
                        ep.register(s.fileno(), select.EPOLLOUT)
                    else:
                        self._fail(err)
                        s.close()
                if not pending:
                    if len(self.socks) < target and self.failed > 10 * target:
                        break  # nothing works: do not spin until the deadline
                    continue
                for fd, _ in ep.poll(min(0.5, deadline - now)):
                    s = pending.pop(fd)
                    ep.unregister(fd)
                    err = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                    if err == 0:
                        self.socks.append(s)
                    else:
                        self._fail(err)
                        s.close()
        finally:
            for s in pending.values():
                self._fail("timeout")
                s.close()
            ep.close()
        return {"conns": len(self.socks), "failed": self.failed, "errors": self.errors,
                "secs": time.monotonic() - start}

    def line(self, i):
        if self.http == "close":
            return HTTP_CLOSE_REQUEST
        if self.http:
            return HTTP_REQUEST
        return f"echo {self.wid}.{i} {os.getpid()} {i * 7919 % 100003:06d}\n".encode()

    def echo(self, deadline):
        """Send one line on each connection, read every echo back, compare."""
        start = time.monotonic()
        ep = select.epoll()
        want = {}
        got = {}
        send_failed = 0
        for i, s in enumerate(self.socks):
            line = self.line(i)
            try:
                n = s.send(line)
            except OSError:
                n = -1
            if n != len(line):  # a one-line write into an empty buffer never goes short
                send_failed += 1
                continue
            want[s.fileno()] = line
            got[s.fileno()] = b""
            ep.register(s.fileno(), select.EPOLLIN)
        by_fd = {s.fileno(): s for s in self.socks}
        ok = bad = closed = 0
        samples = []
        while want and time.monotonic() < deadline:
            for fd, _ in ep.poll(min(0.5, deadline - time.monotonic())):
                try:
                    data = by_fd[fd].recv(4096)
                except OSError:
                    data = b""
                if not data:
                    closed += 1
                    ep.unregister(fd)
                    del want[fd]
                    continue
                got[fd] += data
                if self.http and http_response_done(got[fd]):
                    if got[fd].startswith(b"HTTP/1.1 200 "):
                        ok += 1
                    else:
                        bad += 1
                    ep.unregister(fd)
                    del want[fd]
                elif not self.http and len(got[fd]) >= len(want[fd]):
                    if got[fd] == want[fd]:
                        ok += 1
                    else:
                        bad += 1
                        if len(samples) < 3:
                            samples.append([want[fd].decode(errors="replace"),
                                            got[fd].decode(errors="replace")])
                    ep.unregister(fd)
                    del want[fd]
        ep.close()
        return {"ok": ok, "bad": bad, "closed": closed, "missing": len(want),
                "send_failed": send_failed, "samples": samples,
                "secs": time.monotonic() - start}

    def close(self, batch=0):
        """Close every connection; with `batch`, that many at a time 20 ms apart, so that
        tens of thousands of FINs do not overflow the TUN's queue all at once."""
        for i, s in enumerate(self.socks):
            s.close()
            if batch and i % batch == batch - 1:
                time.sleep(0.02)
        n = len(self.socks)
        self.socks = []
        return {"closed": n}


def worker_main(args):
    need = args.max_conns + 64
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < need:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(need, hard), hard))
    w = Worker(args.worker, args.addr, args.port, args.sources(), http=args.http_mode())
    print(json.dumps({"ready": True}), flush=True)
    for cmd in sys.stdin:
        words = cmd.split()
        if not words:
            continue
        deadline = time.monotonic() + float(words[-1])
        if words[0] == "open":
            out = w.open(int(words[1]), deadline)
        elif words[0] == "echo":
            out = w.echo(deadline)
        elif words[0] == "close":
            batch = int(words[1]) if len(words) > 2 else 0
            print(json.dumps(w.close(batch)), flush=True)
            return
        else:
            out = {"error": f"unknown command {words[0]!r}"}
        print(json.dumps(out), flush=True)


# ---------------------------------------------------------------------------------------------
# Coordinator


class ClientError(Exception):
    pass


class EchoClients:
    """`procs` worker processes holding connections to addr:port between them.

    with EchoClients("198.18.0.2", 7, procs=4) as c:
        c.open(20_000, timeout=60)   # {"conns": ..., "failed": ..., "secs": ...}
        c.echo(timeout=60)           # {"ok": ..., "bad": ..., "missing": ..., ...}
    """

    def __init__(self, addr, port, procs, sources=(), max_per_proc=MAX_PER_PROC, http=False):
        self.procs = []
        self.max_per_proc = max_per_proc
        srcs = ",".join(sources)
        for wid in range(procs):
            cmd = [sys.executable, os.path.abspath(__file__), "--worker", str(wid),
                   "--addr", addr, "--port", str(port), "--max-conns", str(max_per_proc)]
            if srcs:
                cmd += ["--bind", srcs]
            if http == "close":
                cmd += ["--http-close"]
            elif http:
                cmd += ["--http"]
            self.procs.append(subprocess.Popen(cmd, stdin=subprocess.PIPE,
                                               stdout=subprocess.PIPE, text=True))
        self._collect(10, "start")

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()

    def _collect(self, timeout, what):
        """One JSON line from every worker within `timeout` seconds."""
        deadline = time.monotonic() + timeout
        answers = {}
        while len(answers) < len(self.procs):
            left = deadline - time.monotonic()
            waiting = [p.stdout for i, p in enumerate(self.procs) if i not in answers]
            ready, _, _ = select.select(waiting, [], [], max(0.0, left))
            if not ready:
                raise ClientError(f"{len(waiting)} worker(s) did not answer {what!r} "
                                  f"within {timeout:.0f} s")
            for f in ready:
                i = next(i for i, p in enumerate(self.procs) if p.stdout is f)
                line = f.readline()
                if not line:
                    raise ClientError(f"worker {i} exited during {what!r} "
                                      f"(status {self.procs[i].poll()})")
                answers[i] = json.loads(line)
        return [answers[i] for i in range(len(self.procs))]

    def _command(self, words, timeout, what):
        for p in self.procs:
            p.stdin.write(f"{words} {timeout}\n")
            p.stdin.flush()
        # Each worker stops at its own deadline and then answers: allow a little more.
        return self._collect(timeout + 15, what)

    def open(self, total, timeout):
        """Grow to `total` established connections in all (split evenly over the workers)."""
        n = len(self.procs)
        if total > n * self.max_per_proc:
            raise ValueError(f"{total} connections need more than {n} workers")
        start = time.monotonic()
        shares = [total // n + (1 if i < total % n else 0) for i in range(n)]
        for p, share in zip(self.procs, shares):
            p.stdin.write(f"open {share} {timeout}\n")
            p.stdin.flush()
        answers = self._collect(timeout + 15, "open")
        errors = {}
        for a in answers:
            for k, v in a["errors"].items():
                errors[k] = errors.get(k, 0) + v
        return {"conns": sum(a["conns"] for a in answers),
                "failed": sum(a["failed"] for a in answers), "errors": errors,
                "secs": time.monotonic() - start}

    def echo(self, timeout):
        start = time.monotonic()
        answers = self._command("echo", timeout, "echo")
        out = {k: sum(a[k] for a in answers)
               for k in ("ok", "bad", "closed", "missing", "send_failed")}
        out["samples"] = [s for a in answers for s in a["samples"]][:3]
        out["secs"] = time.monotonic() - start
        return out

    def stop(self, batch=0):
        """Close every connection (`batch` at a time per worker, if given) and end the
        workers (bounded; kills what does not exit)."""
        for p in self.procs:
            try:
                p.stdin.write(f"close {batch} 0\n" if batch else "close 0\n")
                p.stdin.close()
            except (BrokenPipeError, ValueError):
                pass
        deadline = time.monotonic() + 15
        for p in self.procs:
            try:
                p.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
            p.stdout.close()
        self.procs = []


# ---------------------------------------------------------------------------------------------
# Command line (for scripts/bench.sh): one JSON object per step on stdout.


def vm_rss_kib(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


SLABS = ("TCP", "TCPv6", "tcp_bind_bucket", "tcp_bind2_bucket", "sock_inode_cache",
         "request_sock_TCP", "tw_sock_TCP", "filp", "dentry", "eventpoll_epi", "eventpoll_pwq")


def slab_bytes():
    """Bytes in use per slab cache of interest (active objects × object size), from
    /proc/slabinfo. Machine-wide, so other work on the machine adds noise."""
    out = {}
    try:
        with open("/proc/slabinfo") as f:
            for line in f:
                w = line.split()
                if w and w[0] in SLABS:
                    out[w[0]] = int(w[1]) * int(w[3])
    except (OSError, ValueError, IndexError):
        pass
    return out


def tcp_mem_bytes():
    """TCP buffer memory in use (`/proc/net/sockstat` "TCP: ... mem N", in pages)."""
    try:
        with open("/proc/net/sockstat") as f:
            for line in f:
                if line.startswith("TCP:"):
                    w = line.split()
                    return int(w[w.index("mem") + 1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError):
        pass
    return None


def cli_main(args):
    stages = [int(s) for s in args.stages.split(",")]
    procs = args.procs or -(-stages[-1] // MAX_PER_PROC)
    sources = args.sources()
    base_slab, base_mem = slab_bytes(), tcp_mem_bytes()

    def emit(obj):
        print(json.dumps(obj), flush=True)

    status = 0
    with EchoClients(args.addr, args.port, procs, sources, http=args.http_mode()) as c:
        held = 0
        if args.rss_pid:
            emit({"step": "idle", "rss_kib": vm_rss_kib(args.rss_pid)})
        for total in stages:
            r = c.open(total, args.timeout)
            held = r["conns"]
            r.update(step="open", target=total, procs=procs)
            if args.rss_pid:
                r["rss_kib"] = vm_rss_kib(args.rss_pid)
            slab, mem = slab_bytes(), tcp_mem_bytes()
            r["kernel_slab_bytes"] = {k: v - base_slab.get(k, 0) for k, v in slab.items()}
            r["kernel_tcp_mem_bytes"] = None if mem is None or base_mem is None else mem - base_mem
            emit(r)
            if held < total:
                status = 1
                break
        r = c.echo(args.timeout)
        r.update(step="echo", conns=held)
        if args.rss_pid:
            r["rss_kib"] = vm_rss_kib(args.rss_pid)
        emit(r)
        if r["ok"] != held:
            status = 1
    if args.settle and args.rss_pid:
        # Every connection closed: RSS once they are gone (and out of TIME-WAIT, given a
        # --time-wait shorter than the settling time).
        time.sleep(args.settle)
        emit({"step": "gone", "rss_kib": vm_rss_kib(args.rss_pid), "settle_s": args.settle})
    return status


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--addr", default="198.18.0.2")
    ap.add_argument("--port", type=int, default=7)
    ap.add_argument("--bind", default="", help="comma-separated source addresses")
    ap.add_argument("--stages", default="1000", help="comma-separated connection totals")
    ap.add_argument("--procs", type=int, default=0, help="worker processes (default: enough)")
    ap.add_argument("--timeout", type=float, default=120, help="seconds per step")
    ap.add_argument("--rss-pid", type=int, help="report this process's VmRSS at each step")
    ap.add_argument("--http", action="store_true",
                    help="send one keep-alive `GET /` per connection instead of an echo line")
    ap.add_argument("--http-close", action="store_true",
                    help="the same with `Connection: close`: synack closes first (TIME-WAIT)")
    ap.add_argument("--settle", type=float, default=0,
                    help="after the last step, close everything, wait this long, report RSS")
    ap.add_argument("--worker", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--max-conns", type=int, default=MAX_PER_PROC, help=argparse.SUPPRESS)
    args = ap.parse_args()
    args.sources = lambda: [s for s in args.bind.split(",") if s]
    args.http_mode = lambda: "close" if args.http_close else args.http
    if args.worker is not None:
        worker_main(args)
        return 0
    return cli_main(args)


if __name__ == "__main__":
    sys.exit(main())
